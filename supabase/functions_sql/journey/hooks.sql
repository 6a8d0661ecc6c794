-- Journey: the lifecycle steps of the customer's journey around a session (docs/journey.md).
-- Each part of the journey has its own file; these two hooks call them in order.

-- Lifecycle step (core/lifecycle.sql, complete): the summary's window opens (summaries.sql), a
-- follow-up completes its parent's thread (follow_ups.sql), and a delivered session is counted
-- (crm.sql) and evaluated by the recommendation rules (recommendations.sql).
create or replace function private.journey_on_session_completed(p_session_id uuid, p_delivery text) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_s public.sessions;
begin
  select * into v_s from public.sessions where id = p_session_id;
  perform private.summaries_on_session_completed(p_session_id, p_delivery);
  perform private.follow_ups_on_session_completed(p_session_id, p_delivery);
  if p_delivery = 'delivered' then
    perform private.crm_record(v_s.customer_id, 'session_delivered', now(), v_s.intake_id, v_s.id, null, '{}');
    perform private.recommendations_evaluate(p_session_id, 'session_delivered');
  end if;
end
$$;
revoke execute on function private.journey_on_session_completed(uuid, text) from public;
grant execute on function private.journey_on_session_completed(uuid, text) to service_role;

-- Called by submit_summary (summaries.sql) once a version is submitted: the rules that read the
-- summary (urgency, parts) are evaluated again.
create or replace function private.journey_on_summary_submitted(p_session_id uuid, p_summary_id uuid) returns void
language plpgsql security definer set search_path = ''
as $$
begin
  perform private.recommendations_evaluate(p_session_id, 'summary_submitted');
end
$$;
revoke execute on function private.journey_on_summary_submitted(uuid, uuid) from public;
grant execute on function private.journey_on_summary_submitted(uuid, uuid) to service_role;
