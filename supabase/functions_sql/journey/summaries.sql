-- Journey: the mechanic's structured summary (docs/journey.md#structured-summary).

-- Lifecycle step (journey/hooks.sql): a completed session's summary window opens.
create or replace function private.summaries_on_session_completed(p_session_id uuid, p_delivery text) returns void
language plpgsql security definer set search_path = ''
as $$
begin
  null;
end
$$;
revoke execute on function private.summaries_on_session_completed(uuid, text) from public;
grant execute on function private.summaries_on_session_completed(uuid, text) to service_role;
