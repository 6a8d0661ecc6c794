-- Journey: CRM interactions (docs/journey.md#interactions-and-the-funnel).

-- Records one interaction of a customer. Called by the database's own events (triggers and
-- lifecycle steps) and by the RPCs that record a view or a click.
create or replace function private.crm_record(
  p_customer_id uuid, p_kind text, p_occurred_at timestamptz, p_intake_id uuid, p_session_id uuid,
  p_subject_id uuid, p_data jsonb default '{}'
) returns void
language plpgsql security definer set search_path = ''
as $$
begin
  if p_customer_id is null then
    return;
  end if;
  insert into public.crm_interactions (customer_id, kind, occurred_at, intake_id, session_id, subject_id, data)
  values (p_customer_id, p_kind, coalesce(p_occurred_at, now()), p_intake_id, p_session_id, p_subject_id,
          coalesce(p_data, '{}'));
end
$$;
revoke execute on function private.crm_record(uuid, text, timestamptz, uuid, uuid, uuid, jsonb) from public;
grant execute on function private.crm_record(uuid, text, timestamptz, uuid, uuid, uuid, jsonb) to service_role;
