-- Journey: follow-up questions (docs/journey.md#follow-up-questions).

-- Lifecycle step (journey/hooks.sql): a completed follow-up session.
create or replace function private.follow_ups_on_session_completed(p_session_id uuid, p_delivery text) returns void
language plpgsql security definer set search_path = ''
as $$
begin
  null;
end
$$;
revoke execute on function private.follow_ups_on_session_completed(uuid, text) from public;
grant execute on function private.follow_ups_on_session_completed(uuid, text) to service_role;
