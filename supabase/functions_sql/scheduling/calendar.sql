-- Scheduling: calendar data (.ics).

-- ---------------------------------------------------------------------------------------------
-- Calendar data (functions/session_calendar.py builds the .ics from it)
-- ---------------------------------------------------------------------------------------------
-- A booked session as a calendar event, for one of its participants (or any, with null user).
create or replace function private.session_calendar_data(p_session_id uuid, p_user_id uuid) returns jsonb
language sql stable security definer set search_path = ''
as $$
  select jsonb_build_object(
    'session_id', s.id, 'status', s.status, 'scheduled_for', s.scheduled_for,
    'ends_at', s.scheduled_for + make_interval(mins => s.planned_minutes), 'sequence', s.calendar_sequence,
    'plan', sp.name, 'session_type', s.session_type, 'mechanic_name', m.display_name,
    'customer_name', coalesce(p.full_name, 'Customer'), 'created_at', s.created_at, 'updated_at', s.updated_at,
    'role', case when s.customer_id = p_user_id then 'customer' else 'mechanic' end)
  from public.sessions s
  join public.service_plans sp on sp.code = s.plan_code
  left join public.mechanics m on m.id = s.mechanic_id
  left join public.profiles p on p.id = s.customer_id
  where s.id = p_session_id and s.scheduled_for is not null
    and (p_user_id is null or s.customer_id = p_user_id or s.mechanic_id = p_user_id)
$$;
revoke execute on function private.session_calendar_data(uuid, uuid) from public;
grant execute on function private.session_calendar_data(uuid, uuid) to service_role;
