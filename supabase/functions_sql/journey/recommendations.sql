-- Journey: recommendations (docs/journey.md#recommendations).

-- Evaluates the recommendation rules of a session at an event (session_delivered,
-- summary_submitted).
create or replace function private.recommendations_evaluate(p_session_id uuid, p_event text) returns void
language plpgsql security definer set search_path = ''
as $$
begin
  null;
end
$$;
revoke execute on function private.recommendations_evaluate(uuid, text) from public;
grant execute on function private.recommendations_evaluate(uuid, text) to service_role;
