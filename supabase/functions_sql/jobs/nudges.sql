-- Jobs: nudges, support alerts and starting notices.

-- ---------------------------------------------------------------------------------------------
-- cron_nudges: accepted but not started after 3 minutes → nudge the mechanic (Realtime + email),
-- after 2 minutes → alert support (admin:queue + email). Each once per session.
-- ---------------------------------------------------------------------------------------------
create or replace function private.send_nudges(p_now timestamptz default now(), p_limit int default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_limit int := coalesce(p_limit, private.setting_int('jobs.batch_size'));
  v_session public.sessions;
  v_nudged int := 0;
  v_alerted int := 0;
begin
  for v_session in
    update public.sessions s set nudged_at = p_now
    where s.id in (
      select x.id from public.sessions x
      where x.status = 'waiting' and x.nudged_at is null
        and x.status_changed_at <= p_now - private.setting_interval('nudges.accepted_not_started_after')
      order by x.status_changed_at limit v_limit for update skip locked)
    returning s.*
  loop
    perform realtime.send(jsonb_build_object('session_id', v_session.id, 'reason', 'accepted_not_started',
                                             'waiting_since', v_session.status_changed_at),
                          'nudge', 'mechanic:' || v_session.mechanic_id::text, true);
    perform private.enqueue_email('mechanic_nudge', v_session.mechanic_id, v_session.id);
    v_nudged := v_nudged + 1;
  end loop;

  for v_session in
    update public.sessions s set support_alerted_at = p_now
    where s.id in (
      select x.id from public.sessions x
      where x.status = 'waiting' and x.support_alerted_at is null
        and x.status_changed_at <= p_now - private.setting_interval('nudges.support_alert_after')
      order by x.status_changed_at limit v_limit for update skip locked)
    returning s.*
  loop
    perform realtime.send(jsonb_build_object('session_id', v_session.id, 'mechanic_id', v_session.mechanic_id,
                                             'kind', 'accepted_not_started',
                                             'waiting_since', v_session.status_changed_at),
                          'alert', 'admin:queue', true);
    perform private.enqueue('email.support_alert', 'email:support_alert:' || v_session.id::text,
                            jsonb_build_object('session_id', v_session.id, 'kind', 'accepted_not_started'));
    v_alerted := v_alerted + 1;
  end loop;
  return jsonb_build_object('nudged', v_nudged, 'alerted', v_alerted);
end
$$;
revoke execute on function private.send_nudges(timestamptz, int) from public;
grant execute on function private.send_nudges(timestamptz, int) to service_role;

-- "Session starting" notices for scheduled sessions: to both participants, once.
create or replace function private.send_starting_notices(p_now timestamptz default now(), p_limit int default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_session public.sessions;
  v_sent int := 0;
begin
  for v_session in
    update public.sessions s set starting_notice_at = p_now
    where s.id in (
      select x.id from public.sessions x
      where x.status = 'scheduled' and x.starting_notice_at is null and x.scheduled_for > p_now
        and x.scheduled_for <= p_now + private.setting_interval('sessions.starting_notice')
      order by x.scheduled_for limit coalesce(p_limit, private.setting_int('jobs.batch_size')) for update skip locked)
    returning s.*
  loop
    perform private.enqueue_email('session_starting', v_session.customer_id, v_session.id);
    if v_session.mechanic_id is not null then
      perform private.enqueue_email('session_starting', v_session.mechanic_id, v_session.id);
    end if;
    v_sent := v_sent + 1;
  end loop;
  return jsonb_build_object('starting_notices', v_sent);
end
$$;
revoke execute on function private.send_starting_notices(timestamptz, int) from public;
grant execute on function private.send_starting_notices(timestamptz, int) to service_role;

-- What an email needs to render (read by the sender at delivery time).
create or replace function private.email_context(p_user_id uuid, p_session_id uuid) returns jsonb
language sql stable security definer set search_path = ''
as $$
  select jsonb_build_object(
    'to', u.email, 'name', coalesce(p.full_name, split_part(u.email, '@', 1)),
    'marketing_emails', coalesce(p.marketing_emails, true), 'timezone', coalesce(p.timezone, 'UTC'),
    'session', case when s.id is null then null else jsonb_build_object(
      'id', s.id, 'plan', sp.name, 'session_type', s.session_type, 'status', s.status,
      'scheduled_for', s.scheduled_for, 'started_at', s.started_at, 'ended_at', s.ended_at,
      'duration_minutes', s.duration_minutes, 'price_cents', s.price_cents, 'currency', s.currency,
      'mechanic_name', m.display_name, 'mechanic_notes', s.mechanic_notes,
      'vehicle', nullif(concat_ws(' ', r.vehicle_year, r.vehicle_make, r.vehicle_model), ''),
      'concern', r.concern, 'delivery', s.delivery,
      'review_until', s.ended_at + private.setting_interval('reviews.submit_window')) end)
  from auth.users u
  left join public.profiles p on p.id = u.id
  left join public.sessions s on s.id = p_session_id
  left join public.service_plans sp on sp.code = s.plan_code
  left join public.mechanics m on m.id = s.mechanic_id
  left join public.session_requests r on r.session_id = s.id
  where u.id = p_user_id
$$;
revoke execute on function private.email_context(uuid, uuid) from public;
grant execute on function private.email_context(uuid, uuid) to service_role;
