-- Scheduled jobs: the request and session sweeps (two-tier timeouts, seed 002 §7.4), nudges and
-- support alerts (seed 003), starting notices, milestone emails through the outbox, the cron run
-- record, and the admin view of the outbox. Every function takes p_now; every sweep claims rows
-- with skip locked and is bounded, so runs may overlap safely. Re-runnable.

-- ---------------------------------------------------------------------------------------------
-- Cron run record
-- ---------------------------------------------------------------------------------------------
create or replace function private.cron_run_start(p_job text) returns bigint
language sql security definer set search_path = ''
as $$ insert into private.cron_runs (job) values (p_job) returning id $$;

create or replace function private.cron_run_finish(p_id bigint, p_ok boolean, p_result jsonb, p_error text)
returns void
language sql security definer set search_path = ''
as $$
  update private.cron_runs set finished_at = now(), ok = p_ok, result = p_result, error = left(p_error, 2000)
  where id = p_id
$$;
revoke execute on function private.cron_run_start(text), private.cron_run_finish(bigint, boolean, jsonb, text)
  from public;
grant execute on function private.cron_run_start(text), private.cron_run_finish(bigint, boolean, jsonb, text)
  to service_role;

-- ---------------------------------------------------------------------------------------------
-- Emails: enqueued in the transaction of the change that causes them; rendered and sent by
-- cron_outbox (shared/email.py). One per (template, session, recipient).
-- ---------------------------------------------------------------------------------------------
create or replace function private.enqueue_email(
  p_template text, p_user_id uuid, p_session_id uuid, p_data jsonb default '{}', p_key_suffix text default ''
) returns bigint
language sql security definer set search_path = ''
as $$
  select private.enqueue(
    'email.send',
    format('email:%s:%s:%s%s', p_template, p_session_id, p_user_id, p_key_suffix),
    jsonb_build_object('template', p_template, 'user_id', p_user_id, 'session_id', p_session_id, 'data', p_data))
$$;
revoke execute on function private.enqueue_email(text, uuid, uuid, jsonb, text) from public;
grant execute on function private.enqueue_email(text, uuid, uuid, jsonb, text) to service_role;

create or replace function private.tg_sessions__milestone_emails() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if tg_op = 'INSERT' then
    perform private.enqueue_email('booking_confirmed', new.customer_id, new.id);
    return null;
  end if;
  if new.mechanic_id is not null and new.mechanic_id is distinct from old.mechanic_id then
    perform private.enqueue_email('mechanic_assigned', new.customer_id, new.id,
                                  jsonb_build_object('mechanic_id', new.mechanic_id), ':' || new.mechanic_id::text);
  end if;
  if new.status = 'completed' and old.status is distinct from 'completed' then
    perform private.enqueue_email('session_ended', new.customer_id, new.id);
    if new.mechanic_notes is not null then
      perform private.enqueue_email('summary_delivered', new.customer_id, new.id);
    end if;
  end if;
  return null;
end
$$;
drop trigger if exists _400_milestone_emails on public.sessions;
create trigger _400_milestone_emails after insert or update of status, mechanic_id on public.sessions
  for each row execute function private.tg_sessions__milestone_emails();

-- ---------------------------------------------------------------------------------------------
-- cron_sweep_requests: the two-tier timeouts and the session clean-ups
-- ---------------------------------------------------------------------------------------------
create or replace function private.sweep_requests(p_now timestamptz default now(), p_limit int default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_limit int := coalesce(p_limit, private.setting_int('jobs.batch_size'));
  v_unattended int := 0;
  v_expired int := 0;
  v_no_show int := 0;
  v_orphaned int := 0;
  v_id uuid;
begin
  if v_limit < 1 or v_limit > 100000 then
    perform private.raise_error('invalid_input', 'the limit must be between 1 and 100000');
  end if;

  -- Tier 1: pending for 5 minutes → unattended (the admin queue hears of it by trigger).
  perform private.set_actor('system', 'no mechanic accepted in time');
  with due as (
    select r.id from public.session_requests r
    where r.status = 'pending'
      and r.status_changed_at <= p_now - private.setting_interval('requests.unattended_after')
    order by r.status_changed_at
    limit v_limit
    for update skip locked)
  update public.session_requests r set status = 'unattended', status_changed_at = p_now
  from due where r.id = due.id;
  get diagnostics v_unattended = row_count;

  -- Tier 2: pending or unattended for 120 minutes from filing → expired; its session is cancelled
  -- (a paid one is refunded by the payments trigger on that cancellation).
  perform private.set_actor('system', 'expired: no mechanic within the window');
  for v_id in
    select r.session_id from public.session_requests r
    where r.status in ('pending', 'unattended')
      and r.created_at <= p_now - private.setting_interval('requests.expire_after')
    order by r.created_at
    limit v_limit
    for update skip locked
  loop
    update public.session_requests set status = 'expired', status_changed_at = p_now
    where session_id = v_id and status in ('pending', 'unattended');
    perform private.cancel_session(v_id, 'expired: no mechanic accepted within the window', p_now);
    v_expired := v_expired + 1;
  end loop;

  -- Accepted, but the customer never joined within 30 minutes → cancelled; the mechanic is freed.
  perform private.set_actor('system', 'the customer did not join');
  for v_id in
    select s.id from public.sessions s
    where s.status = 'waiting'
      and s.status_changed_at <= p_now - private.setting_interval('requests.accepted_no_join_cancel_after')
      and not exists (select 1 from public.session_participants p
                      where p.session_id = s.id and p.user_id = s.customer_id and p.joined_at is not null)
    order by s.status_changed_at
    limit v_limit
    for update skip locked
  loop
    perform private.cancel_session(v_id, 'the customer did not join within the window', p_now);
    v_no_show := v_no_show + 1;
  end loop;

  -- Waiting sessions nobody started within 60 minutes → cancelled.
  perform private.set_actor('system', 'the session was never started');
  for v_id in
    select s.id from public.sessions s
    where s.status = 'waiting'
      and s.status_changed_at <= p_now - private.setting_interval('sessions.orphaned_waiting_cancel_after')
    order by s.status_changed_at
    limit v_limit
    for update skip locked
  loop
    perform private.cancel_session(v_id, 'the session was never started', p_now);
    v_orphaned := v_orphaned + 1;
  end loop;

  return jsonb_build_object('unattended', v_unattended, 'expired', v_expired, 'no_show_cancelled', v_no_show,
                            'orphaned_cancelled', v_orphaned);
end
$$;
revoke execute on function private.sweep_requests(timestamptz, int) from public;
grant execute on function private.sweep_requests(timestamptz, int) to service_role;

-- ---------------------------------------------------------------------------------------------
-- cron_nudges: accepted but not started after 3 minutes → nudge the mechanic (Realtime + email),
-- after 5 minutes → alert support (admin:queue + email). Each once per session.
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

-- "Session starting" notices for scheduled sessions (seed 003): to both participants, once.
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
      'concern', r.concern) end)
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

-- ---------------------------------------------------------------------------------------------
-- Admin: the outbox (dead letters) and a retry
-- ---------------------------------------------------------------------------------------------
create or replace function public.admin_outbox(p_status text default 'dead', p_limit int default 100)
returns table (id bigint, kind text, dedupe_key text, status text, attempts int, next_attempt_at timestamptz,
               last_error text, created_at timestamptz, sent_at timestamptz)
language plpgsql stable security definer set search_path = ''
as $$
begin
  perform private.require_admin();
  if p_status is null or p_status not in ('pending', 'processing', 'sent', 'dead')
     or p_limit is null or p_limit < 1 or p_limit > 1000 then
    perform private.raise_error('invalid_input', 'p_status must be pending/processing/sent/dead; p_limit 1..1000');
  end if;
  return query
  select o.id, o.kind, o.dedupe_key, o.status::text, o.attempts, o.next_attempt_at, o.last_error, o.created_at,
         o.sent_at
  from private.outbox o where o.status::text = p_status
  order by o.id desc limit p_limit;
end
$$;
revoke execute on function public.admin_outbox(text, int) from public, anon;
grant execute on function public.admin_outbox(text, int) to authenticated, service_role;

create or replace function public.admin_retry_outbox(p_id bigint) returns jsonb
language plpgsql security definer set search_path = ''
as $$
begin
  perform private.require_admin();
  if p_id is null then
    perform private.raise_error('invalid_input', 'p_id is required');
  end if;
  update private.outbox set status = 'pending', attempts = 0, next_attempt_at = now(), last_error = null
  where id = p_id and status = 'dead';
  if not found then
    if exists (select 1 from private.outbox where id = p_id) then
      perform private.raise_error('conflict', 'only a dead-lettered row can be retried');
    end if;
    perform private.raise_error('not_found', 'no such outbox row');
  end if;
  return jsonb_build_object('id', p_id, 'status', 'pending');
end
$$;
revoke execute on function public.admin_retry_outbox(bigint) from public, anon;
grant execute on function public.admin_retry_outbox(bigint) to authenticated, service_role;

revoke execute on function private.tg_sessions__milestone_emails() from public;
