-- Operations: the audit of admin actions (docs/operations.md#audit).

-- Records one admin action, by the calling admin (auth.uid()), in the transaction of the action
-- itself: an action that rolls back leaves no record.
create or replace function private.record_admin_action(
  p_action text, p_subject_type text, p_subject_id uuid, p_reason text default null, p_data jsonb default '{}'
) returns bigint
language plpgsql security definer set search_path = ''
as $$
declare
  v_id bigint;
begin
  insert into private.admin_actions (admin_id, action, subject_type, subject_id, reason, data)
  values ((select auth.uid()), p_action, p_subject_type, p_subject_id, p_reason, coalesce(p_data, '{}'))
  returning id into v_id;
  return v_id;
end
$$;
revoke execute on function private.record_admin_action(text, text, uuid, text, jsonb) from public;
grant execute on function private.record_admin_action(text, text, uuid, text, jsonb) to service_role;
