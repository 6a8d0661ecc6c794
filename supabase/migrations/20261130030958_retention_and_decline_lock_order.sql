-- retention_and_decline_lock_order: supabase/functions_sql/ as of this migration, written by `autodoctor db commit`.
-- Whole files, re-runnable, in path order; then the drops of what they no longer define.
-- Edit the files in supabase/functions_sql/, never this migration (see docs/migrations.md).
set check_function_bodies = off;

-- >>> functions_sql core/rpc.sql sha256=b7d028c2ec383050171607f4dbec654b0803f556c52ca56f8e0050afb390ee47
-- Core client RPCs. Every public RPC is security definer because it writes rows the caller may
-- only read; each one checks who calls, what they may do and its input first, raises a registered
-- error (docs/error_codes.md), and only then writes, all in the caller's one transaction.

-- ---------------------------------------------------------------------------------------------
-- Public RPCs (authenticated)
-- ---------------------------------------------------------------------------------------------
create or replace function public.request_session(
  p_plan_code text,
  p_intake_id uuid,
  p_vehicle_id uuid default null,
  p_preferred_mechanic_id uuid default null,
  p_specialist boolean default false
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_price int;
  -- a brand specialist chosen any way (p_specialist, or a preferred mechanic who is one for the
  -- vehicle's make) adds the surcharge, and the request records it (trust/pricing.sql)
  v_specialist boolean;
begin
  if p_plan_code is null or p_intake_id is null then
    perform private.raise_error('invalid_input', 'p_plan_code and p_intake_id are required');
  end if;
  perform private.require_waiver(v_uid);
  v_specialist := private.specialist_applies(v_uid, p_intake_id, p_vehicle_id, p_preferred_mechanic_id, p_specialist);
  v_price := private.plan_price_cents(p_plan_code, v_specialist);
  if v_price is null then
    perform private.raise_error('not_found', format('no active plan %L', left(p_plan_code, 60)));
  end if;
  perform private.check_preferred_mechanic(v_uid, p_preferred_mechanic_id);
  perform private.check_preferred_eligible(p_preferred_mechanic_id, p_plan_code, now());
  if v_price > 0 then
    -- Validate everything else first so the client learns of a bad intake before paying.
    perform 1 from public.intakes where id = p_intake_id and customer_id = v_uid;
    if not found then
      perform private.raise_error('not_found', 'no such intake');
    end if;
    perform private.raise_error('payment_required',
      format('plan %s costs %s cents%s: book it through create_checkout', p_plan_code, v_price,
             case when v_specialist then ' with a brand specialist' else '' end));
  end if;
  perform private.set_actor('customer');
  return private.create_session_request(v_uid, p_plan_code, p_intake_id, p_vehicle_id, p_preferred_mechanic_id,
                                        v_specialist, 0, now());
end
$$;
revoke execute on function public.request_session(text, uuid, uuid, uuid, boolean) from public, anon;
grant execute on function public.request_session(text, uuid, uuid, uuid, boolean) to authenticated, service_role;

create or replace function public.accept_request(p_request_id uuid) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
begin
  if p_request_id is null then
    perform private.raise_error('invalid_input', 'p_request_id is required');
  end if;
  perform private.set_actor('mechanic');
  return private.assign_request(p_request_id, v_uid, now());
end
$$;
revoke execute on function public.accept_request(uuid) from public, anon;
grant execute on function public.accept_request(uuid) to authenticated, service_role;

create or replace function public.decline_offer(p_request_id uuid) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_status public.request_status;
begin
  perform private.require_arg('p_request_id', p_request_id);
  if not private.is_approved_mechanic() then
    perform private.raise_error('not_allowed', 'only approved mechanics receive offers');
  end if;
  -- The request's row first, then the offer (whose trigger updates the request again): the order
  -- accept_request and routing take them in. Touching the offer first deadlocked with an accept of
  -- the same request (the accept holds the request and waits for the offers it withdraws).
  select status into v_status from public.session_requests where id = p_request_id for no key update;
  if not found then
    perform private.raise_error('not_found', 'no such request');
  end if;
  if v_status not in ('pending', 'unattended') then
    perform private.raise_error('request_not_available', format('the request is %s', v_status));
  end if;
  insert into public.session_offers (request_id, mechanic_id, status, responded_at)
  values (p_request_id, v_uid, 'declined', now())
  on conflict (request_id, mechanic_id) where mechanic_id is not null
  do update set status = 'declined', responded_at = now()
  where public.session_offers.status in ('offered', 'queued', 'declined');
  return jsonb_build_object('request_id', p_request_id, 'status', 'declined');
end
$$;
revoke execute on function public.decline_offer(uuid) from public, anon;
grant execute on function public.decline_offer(uuid) to authenticated, service_role;

create or replace function public.cancel_request(p_request_id uuid, p_reason text default null) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_reason text := private.check_text('p_reason', p_reason);
  v_request public.session_requests;
  v_session public.sessions;
begin
  perform private.require_arg('p_request_id', p_request_id);
  select * into v_request from public.session_requests where id = p_request_id for update;
  if not found or (v_request.customer_id <> v_uid and v_request.mechanic_id is distinct from v_uid
                   and not private.is_approved_mechanic()) then
    perform private.raise_error('not_found', 'no such request');
  end if;

  if v_request.customer_id = v_uid then
    if v_request.status not in ('pending', 'unattended') then
      perform private.raise_error('invalid_transition',
        format('the request is %s: it cannot be cancelled by the customer', v_request.status));
    end if;
    perform private.cancel_session(v_request.session_id, coalesce(v_reason, 'cancelled by the customer'), now(),
                                   'customer');
    return jsonb_build_object('request_id', v_request.id, 'session_id', v_request.session_id, 'status', 'cancelled');
  end if;

  if v_request.mechanic_id is distinct from v_uid then
    perform private.raise_error('not_allowed', 'only the customer or the accepting mechanic can cancel');
  end if;
  -- The accepting mechanic releases the request: it goes back to the others.
  select * into v_session from public.sessions where id = v_request.session_id for update;
  if v_request.status <> 'accepted' or v_session.status <> 'waiting' then
    perform private.raise_error('invalid_transition', 'only an accepted request not yet started can be released');
  end if;
  perform private.set_actor('mechanic', coalesce(v_reason, 'released by the mechanic'));
  update public.session_requests
  set status = 'pending', mechanic_id = null, accepted_at = null, status_changed_at = now()
  where id = v_request.id;
  update public.sessions set status = 'pending', mechanic_id = null, status_changed_at = now()
  where id = v_session.id;
  perform private.micro_settle(v_session.id, now());  -- reserved micro minutes count nothing
  delete from public.session_participants where session_id = v_session.id and user_id = v_uid;
  perform private.release_commitment(v_session.id, 'released', now());
  update public.session_offers set status = 'declined', responded_at = now()
  where request_id = v_request.id and mechanic_id = v_uid;
  -- It cannot take this request again; too many releases pause its accepting (trust/contact.sql).
  perform private.record_release(v_request.id, v_uid, now());
  update public.intakes set status = 'pending' where id = v_session.intake_id;
  return jsonb_build_object('request_id', v_request.id, 'session_id', v_session.id, 'status', 'pending');
end
$$;
revoke execute on function public.cancel_request(uuid, text) from public, anon;
grant execute on function public.cancel_request(uuid, text) to authenticated, service_role;

-- A session goes live when both participants are ready: each calls start_session (its
-- session_participants.ready_at), or both join the LiveKit room (rooms/livekit_events.sql). One
-- participant alone cannot take it live. Repeated calls answer the same. Only a session whose
-- mechanic is in good standing starts (trust/standing.sql).
create or replace function public.start_session(p_session_id uuid) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_session public.sessions;
  v_role public.participant_role;
  v_waiting_for text;
begin
  v_session := private.lock_session_as_participant(p_session_id, v_uid);
  v_role := case when v_session.customer_id = v_uid then 'customer' else 'mechanic' end;
  if v_session.status = 'live' then
    return jsonb_build_object('session_id', v_session.id, 'status', 'live', 'started_at', v_session.started_at,
                              'waiting_for', null);
  end if;
  if v_session.status <> 'waiting' then
    perform private.raise_error('invalid_transition', format('the session is %s: it cannot be started', v_session.status));
  end if;
  perform private.require_good_standing(v_session.mechanic_id);
  perform private.require_micro_approved(v_session.id);
  insert into public.session_participants (session_id, user_id, role, ready_at)
  values (v_session.id, v_uid, v_role, now())
  on conflict (session_id, user_id) do update
  set ready_at = coalesce(public.session_participants.ready_at, excluded.ready_at);
  select case when c.ready_at is null then 'customer' when m.ready_at is null then 'mechanic' end
  into v_waiting_for
  from (select 1) one
  left join public.session_participants c on c.session_id = v_session.id and c.user_id = v_session.customer_id
  left join public.session_participants m on m.session_id = v_session.id and m.user_id = v_session.mechanic_id;
  if v_waiting_for is not null then
    return jsonb_build_object('session_id', v_session.id, 'status', 'waiting', 'started_at', null,
                              'waiting_for', v_waiting_for);
  end if;
  perform private.set_actor(v_role::text, 'both participants are ready');
  update public.sessions set status = 'live', started_at = now(), status_changed_at = now()
  where id = p_session_id returning * into v_session;
  return jsonb_build_object('session_id', v_session.id, 'status', 'live', 'started_at', v_session.started_at,
                            'waiting_for', null);
end
$$;
revoke execute on function public.start_session(uuid) from public, anon;
grant execute on function public.start_session(uuid) to authenticated, service_role;

-- Either participant ends a live session; the mechanic only while in good standing (the customer
-- can always end it).
create or replace function public.end_session(p_session_id uuid, p_notes text default null) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_notes text := private.check_text('p_notes', p_notes);
  v_session public.sessions;
begin
  v_session := private.lock_session_as_participant(p_session_id, v_uid);
  if v_session.status <> 'live' then
    perform private.raise_error('invalid_transition', format('the session is %s: it cannot be ended', v_session.status));
  end if;
  if v_session.mechanic_id = v_uid then
    perform private.require_good_standing(v_uid);
    return private.complete_session(p_session_id, v_notes, null, now(), 'mechanic');
  end if;
  -- The customer's notes are not the mechanic's summary: they are not stored as such.
  return private.complete_session(p_session_id, null, null, now(), 'customer');
end
$$;
revoke execute on function public.end_session(uuid, text) from public, anon;
grant execute on function public.end_session(uuid, text) to authenticated, service_role;

create or replace function public.set_online(p_online boolean) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_row public.mechanics;
begin
  perform private.require_arg('p_online', p_online);
  update public.mechanics set is_available = p_online, last_seen_at = now()
  where id = v_uid and status = 'approved'
  returning * into v_row;
  if not found then
    perform private.raise_error('not_allowed', 'only approved mechanics go online');
  end if;
  return jsonb_build_object('mechanic_id', v_row.id, 'is_available', v_row.is_available,
                            'last_seen_at', v_row.last_seen_at);
end
$$;
revoke execute on function public.set_online(boolean) from public, anon;
grant execute on function public.set_online(boolean) to authenticated, service_role;

create or replace function public.heartbeat() returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_seen timestamptz;
begin
  update public.mechanics set last_seen_at = now() where id = v_uid and status = 'approved'
  returning last_seen_at into v_seen;
  if not found then
    perform private.raise_error('not_allowed', 'only approved mechanics send heartbeats');
  end if;
  return jsonb_build_object('mechanic_id', v_uid, 'last_seen_at', v_seen);
end
$$;
revoke execute on function public.heartbeat() from public, anon;
grant execute on function public.heartbeat() to authenticated, service_role;
-- <<< functions_sql core/rpc.sql

-- >>> functions_sql core/transitions.sql sha256=05daf7ab50a29daff4b0e07fd41fbe145d0a6eab20fefab4a8108bb176a8754a
-- Core lifecycles: the allowed changes of status, initial states, and the append-only audit in
-- session_events (every creation and change of status, with its actor).

-- ---------------------------------------------------------------------------------------------
-- Lifecycles (docs/data-model.md): any other change of status fails with invalid_transition (AD006)
-- ---------------------------------------------------------------------------------------------
-- The allowed changes of status, one list for both lifecycles.
create or replace function private.status_transition_allowed(p_entity text, p_from text, p_to text)
returns boolean
language plpgsql immutable set search_path = ''
as $$
begin
  -- PL/pgSQL: the list is parsed and planned once per session; as a SQL function with a fixed
  -- search_path it was planned again in every transaction that changed a status (before PG 18)
  return (p_entity, p_from, p_to) in (
    ('sessions', 'pending', 'waiting'), ('sessions', 'pending', 'scheduled'), ('sessions', 'pending', 'cancelled'),
    ('sessions', 'scheduled', 'waiting'), ('sessions', 'scheduled', 'cancelled'),
    ('sessions', 'waiting', 'live'), ('sessions', 'waiting', 'cancelled'),
    ('sessions', 'waiting', 'pending'),  -- the mechanic released an accepted request before the start
    ('sessions', 'live', 'completed'), ('sessions', 'live', 'cancelled'),
    ('session_requests', 'pending', 'accepted'), ('session_requests', 'pending', 'unattended'),
    ('session_requests', 'pending', 'expired'), ('session_requests', 'pending', 'cancelled'),
    ('session_requests', 'unattended', 'accepted'), ('session_requests', 'unattended', 'expired'),
    ('session_requests', 'unattended', 'cancelled'),
    ('session_requests', 'accepted', 'pending'),  -- the mechanic released it: back to the others
    ('session_requests', 'accepted', 'cancelled'));
end
$$;
revoke execute on function private.status_transition_allowed(text, text, text) from public;
grant execute on function private.status_transition_allowed(text, text, text) to authenticated, service_role;

create or replace function private.tg__check_transition() returns trigger
language plpgsql set search_path = ''
as $$
begin
  if new.status is distinct from old.status then
    if not private.status_transition_allowed(tg_table_name, old.status::text, new.status::text) then
      perform private.raise_error('invalid_transition',
        format('%s: cannot go from %s to %s', tg_table_name, old.status, new.status));
    end if;
    if new.status_changed_at is not distinct from old.status_changed_at then
      new.status_changed_at := now();
    end if;
  end if;
  return new;
end
$$;
revoke execute on function private.tg__check_transition() from public;

drop trigger if exists _100_check_transition on public.sessions;
create trigger _100_check_transition before update of status on public.sessions
  for each row execute function private.tg__check_transition();
drop trigger if exists _100_check_transition on public.session_requests;
create trigger _100_check_transition before update of status on public.session_requests
  for each row execute function private.tg__check_transition();

-- New rows start at the start of their lifecycle.
create or replace function private.tg__check_initial_status() returns trigger
language plpgsql set search_path = ''
as $$
begin
  if (tg_table_name = 'sessions' and new.status::text not in ('pending', 'scheduled'))
     or (tg_table_name = 'session_requests' and new.status::text <> 'pending') then
    perform private.raise_error('invalid_transition', format('a new %s cannot start as %s', tg_table_name, new.status));
  end if;
  return new;
end
$$;
revoke execute on function private.tg__check_initial_status() from public;
drop trigger if exists _090_check_initial_status on public.sessions;
create trigger _090_check_initial_status before insert on public.sessions
  for each row execute function private.tg__check_initial_status();
drop trigger if exists _090_check_initial_status on public.session_requests;
create trigger _090_check_initial_status before insert on public.session_requests
  for each row execute function private.tg__check_initial_status();

-- ---------------------------------------------------------------------------------------------
-- Audit: every creation and change of status lands in session_events, with its actor.
-- ---------------------------------------------------------------------------------------------
create or replace function private.tg__record_status_event() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_role text := coalesce(nullif(current_setting('autodoctor.actor_role', true), ''), 'system');
  v_reason text := nullif(current_setting('autodoctor.reason', true), '');
  v_from text;
  v_session_id uuid;
  v_request_id uuid;
begin
  if tg_op = 'UPDATE' then
    v_from := old.status::text;
  end if;
  if tg_op = 'UPDATE' and new.status is not distinct from old.status then
    return null;
  end if;
  if tg_table_name = 'sessions' then
    v_session_id := new.id;
  else
    v_session_id := new.session_id;  -- compiled per table: this branch only runs on requests
    v_request_id := new.id;
  end if;
  insert into public.session_events (session_id, request_id, entity, from_status, to_status, actor_id, actor_role, reason)
  values (v_session_id, v_request_id, case when v_request_id is null then 'session' else 'request' end,
          v_from, new.status::text, case when v_role = 'system' then null else (select auth.uid()) end,
          v_role, v_reason);
  return null;
end
$$;
revoke execute on function private.tg__record_status_event() from public;

drop trigger if exists _200_record_event on public.sessions;
create trigger _200_record_event after insert or update of status on public.sessions
  for each row execute function private.tg__record_status_event();
drop trigger if exists _200_record_event on public.session_requests;
create trigger _200_record_event after insert or update of status on public.session_requests
  for each row execute function private.tg__record_status_event();

-- Append-only tables (the audit here, the credit ledger in payments): rows are corrected by adding rows.
-- One exception: the retention job (jobs/retention.sql) deletes old rows of the table it names in the
-- transaction-local setting autodoctor.retention, as the table's owner; no other role, statement or
-- table gets through.
create or replace function private.tg__append_only() returns trigger
language plpgsql set search_path = ''
as $$
begin
  if tg_op = 'DELETE' and tg_level = 'ROW'
     and current_setting('autodoctor.retention', true) = format('%s.%s', tg_table_schema, tg_table_name)
     and current_user = (select pg_catalog.pg_get_userbyid(c.relowner) from pg_catalog.pg_class c where c.oid = tg_relid) then
    return old;
  end if;
  perform private.raise_error('not_allowed', format('%s is append-only: add a correcting row instead', tg_table_name));
  return null;
end
$$;
revoke execute on function private.tg__append_only() from public;
drop trigger if exists _100_append_only on public.session_events;
create trigger _100_append_only before update or delete on public.session_events
  for each row execute function private.tg__append_only();
drop trigger if exists _101_append_only_truncate on public.session_events;
create trigger _101_append_only_truncate before truncate on public.session_events
  for each statement execute function private.tg__append_only();
-- <<< functions_sql core/transitions.sql

-- >>> functions_sql jobs/retention.sql sha256=69a597011866200c3f8c5ccc485b31b206c94b0b60023b00f91b76ecd20ee960
-- Jobs: retention (docs/jobs.md#retention). The steps of the `retention` job, one per table that
-- grows with every call, job or webhook. Each step deletes (or trims) only rows that are due, found
-- oldest first through an index, at most p_limit of each kind per run (default
-- retention.batch_size), with skip locked so two runs never fight over a row; a second run at the
-- same time finds nothing left. Every period is a setting (retention.*), every step takes p_now.

-- The batch of a step: p_limit, else retention.batch_size; never negative.
create or replace function private.retention_limit(p_limit int) returns int
language sql stable security definer set search_path = ''
as $$
  select greatest(coalesce(p_limit, private.setting_int('retention.batch_size')), 0)
$$;
revoke execute on function private.retention_limit(int) from public;

-- ---------------------------------------------------------------------------------------------
-- The job queue: sent and skipped jobs after retention.jobs_finished, dead-lettered ones after
-- retention.jobs_dead (counted from their last attempt). Pending and running jobs are never
-- touched. Once a finished job is gone its dedupe key is free again; every enqueue happens at a
-- status change of a row that cannot recur that late (docs/jobs.md#retention).
-- ---------------------------------------------------------------------------------------------
create or replace function private.retain_jobs(p_now timestamptz default now(), p_limit int default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_limit int := private.retention_limit(p_limit);
  v_finished int;
  v_dead int;
begin
  with due as (
    select o.id from private.outbox o
    where o.status in ('sent', 'skipped') and o.sent_at < p_now - private.setting_interval('retention.jobs_finished')
    order by o.sent_at
    limit v_limit
    for update skip locked)
  delete from private.outbox o using due where o.id = due.id;
  get diagnostics v_finished = row_count;
  with due as (
    select o.id from private.outbox o
    where o.status = 'dead' and o.next_attempt_at < p_now - private.setting_interval('retention.jobs_dead')
    order by o.next_attempt_at
    limit v_limit
    for update skip locked)
  delete from private.outbox o using due where o.id = due.id;
  get diagnostics v_dead = row_count;
  return jsonb_build_object('jobs_deleted', v_finished, 'dead_jobs_deleted', v_dead);
end
$$;
revoke execute on function private.retain_jobs(timestamptz, int) from public;

-- ---------------------------------------------------------------------------------------------
-- Run records: older than retention.cron_runs, except the newest run of each job (what an
-- operator looks at first).
-- ---------------------------------------------------------------------------------------------
create or replace function private.retain_cron_runs(p_now timestamptz default now(), p_limit int default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_n int;
begin
  with due as (
    select r.id from private.cron_runs r
    where r.started_at < p_now - private.setting_interval('retention.cron_runs')
      and exists (select 1 from private.cron_runs n where n.job = r.job and n.started_at > r.started_at)
    order by r.started_at
    limit private.retention_limit(p_limit)
    for update skip locked)
  delete from private.cron_runs r using due where r.id = due.id;
  get diagnostics v_n = row_count;
  return jsonb_build_object('cron_runs_deleted', v_n);
end
$$;
revoke execute on function private.retain_cron_runs(timestamptz, int) from public;

-- ---------------------------------------------------------------------------------------------
-- Webhook ledgers. The row (event id) is the dedupe record: it stays for retention.webhook_events,
-- longer than any provider redelivers, so a late duplicate is still answered `duplicate`. The
-- payload is only needed until the event is settled; retention.webhook_payloads after processing
-- it is replaced by the event's id and type. Events not processed yet (a failing handler that the
-- provider retries) keep everything.
-- ---------------------------------------------------------------------------------------------

-- Stripe. Settled: processed, and — for a charge or refund event about a payment intent — the
-- checkout of that payment intent recorded (a payment exists): until then the checkout's arrival
-- replays these events from their payloads (payments/stripe_events.sql).
create or replace function private.retain_stripe_events(p_now timestamptz default now(), p_limit int default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_limit int := private.retention_limit(p_limit);
  v_trimmed int;
  v_deleted int;
begin
  with due as (
    select e.id from private.stripe_events e
    where e.processed_at is not null and e.payload_trimmed_at is null
      and e.processed_at < p_now - private.setting_interval('retention.webhook_payloads')
      and (e.payment_intent_id is null
           or exists (select 1 from public.payments p where p.stripe_payment_intent_id = e.payment_intent_id))
    order by e.processed_at
    limit v_limit
    for update skip locked)
  update private.stripe_events e
  set payload = jsonb_build_object('id', e.id, 'type', e.type), payload_trimmed_at = p_now
  from due where e.id = due.id;
  get diagnostics v_trimmed = row_count;
  with due as (
    select e.id from private.stripe_events e
    where e.processed_at is not null and e.processed_at < p_now - private.setting_interval('retention.webhook_events')
    order by e.processed_at
    limit v_limit
    for update skip locked)
  delete from private.stripe_events e using due where e.id = due.id;
  get diagnostics v_deleted = row_count;
  return jsonb_build_object('stripe_payloads_trimmed', v_trimmed, 'stripe_events_deleted', v_deleted);
end
$$;
revoke execute on function private.retain_stripe_events(timestamptz, int) from public;

-- LiveKit. An event is applied in the transaction that records it (rooms/livekit_events.sql), so
-- it is settled once it is there; LiveKit does not redeliver an event later than 30 seconds.
create or replace function private.retain_livekit_events(p_now timestamptz default now(), p_limit int default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_limit int := private.retention_limit(p_limit);
  v_trimmed int;
  v_deleted int;
begin
  with due as (
    select e.id from private.livekit_events e
    where e.payload_trimmed_at is null
      and e.received_at < p_now - private.setting_interval('retention.webhook_payloads')
    order by e.received_at
    limit v_limit
    for update skip locked)
  update private.livekit_events e
  set payload = jsonb_build_object('id', e.id, 'event', e.event), payload_trimmed_at = p_now
  from due where e.id = due.id;
  get diagnostics v_trimmed = row_count;
  with due as (
    select e.id from private.livekit_events e
    where e.received_at < p_now - private.setting_interval('retention.webhook_events')
    order by e.received_at
    limit v_limit
    for update skip locked)
  delete from private.livekit_events e using due where e.id = due.id;
  get diagnostics v_deleted = row_count;
  return jsonb_build_object('livekit_payloads_trimmed', v_trimmed, 'livekit_events_deleted', v_deleted);
end
$$;
revoke execute on function private.retain_livekit_events(timestamptz, int) from public;

-- Resend. Settled: processed and about an email we know; an `unknown_email` event is applied from
-- its payload when the sender records the email (journey/email_events.sql), so it keeps it. A row
-- an address's suppression points at (why the address is suppressed) is trimmed but kept.
create or replace function private.retain_resend_events(p_now timestamptz default now(), p_limit int default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_limit int := private.retention_limit(p_limit);
  v_trimmed int;
  v_deleted int;
begin
  with due as (
    select e.id from private.resend_events e
    where e.processed_at is not null and e.payload_trimmed_at is null
      and e.processed_at < p_now - private.setting_interval('retention.webhook_payloads')
      and e.outcome is distinct from 'unknown_email'
    order by e.processed_at
    limit v_limit
    for update skip locked)
  update private.resend_events e
  set payload = jsonb_build_object('id', e.id, 'type', e.type), payload_trimmed_at = p_now
  from due where e.id = due.id;
  get diagnostics v_trimmed = row_count;
  with due as (
    select e.id from private.resend_events e
    where e.processed_at is not null and e.processed_at < p_now - private.setting_interval('retention.webhook_events')
      and not exists (select 1 from private.email_suppressions s where s.resend_event_id = e.id)
    order by e.processed_at
    limit v_limit
    for update skip locked)
  delete from private.resend_events e using due where e.id = due.id;
  get diagnostics v_deleted = row_count;
  return jsonb_build_object('resend_payloads_trimmed', v_trimmed, 'resend_events_deleted', v_deleted);
end
$$;
revoke execute on function private.retain_resend_events(timestamptz, int) from public;

-- ---------------------------------------------------------------------------------------------
-- Session status history. The events of a session go together (a timeline is whole or gone), and
-- only when nothing may still ask about it: the session is completed or cancelled, its last status
-- change is older than retention.session_events, and it has no open money or delivery question —
-- a refund, payout or transfer reversal not final, or a delivery that is unverified or reported
-- with no decision. Events made by an admin are the audit of admin actions (operations/
-- audit_read.sql) and always stay. The table is append-only (core/transitions.sql): the step names
-- it in the transaction-local setting autodoctor.retention, which lets only this owner's deletes
-- through.
-- ---------------------------------------------------------------------------------------------
create or replace function private.session_has_open_question(p_session_id uuid) returns boolean
language sql stable security definer set search_path = ''
as $$
  select exists (select 1 from public.payments p join public.refunds f on f.payment_id = p.id
                 where p.session_id = p_session_id and f.status in ('queued', 'processing'))
      or exists (select 1 from public.payouts o
                 where o.session_id = p_session_id and o.status in ('waiting', 'queued', 'processing'))
      or exists (select 1 from public.payouts o join public.transfer_reversals t on t.payout_id = o.id
                 where o.session_id = p_session_id and t.status in ('queued', 'processing'))
      or exists (select 1 from public.sessions s
                 where s.id = p_session_id
                   and (s.delivery = 'unverified'
                        or exists (select 1 from public.session_problem_reports r where r.session_id = s.id))
                   and not exists (select 1 from public.session_delivery_decisions d where d.session_id = s.id))
$$;
revoke execute on function private.session_has_open_question(uuid) from public;

create or replace function private.retain_session_events(p_now timestamptz default now(), p_limit int default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_limit int := private.retention_limit(p_limit);
  v_cutoff timestamptz := p_now - private.setting_interval('retention.session_events');
  v_session uuid;
  v_n int;
  v_deleted int := 0;
  v_sessions int := 0;
  v_kept int := 0;
begin
  perform set_config('autodoctor.retention', 'public.session_events', true);
  -- The sessions of the oldest events first; a session still held is looked at and kept. At most
  -- 10 × the batch of events are looked at per run, so a run stays bounded whatever is held.
  for v_session in
    select x.session_id
    from (select e.session_id, e.at from public.session_events e
          where e.at < v_cutoff and e.actor_role <> 'admin'
          order by e.at
          limit v_limit * 10) x
    group by x.session_id
    order by min(x.at)
  loop
    if exists (select 1 from public.sessions s
               where s.id = v_session and s.status in ('completed', 'cancelled') and s.status_changed_at < v_cutoff
                 and not exists (select 1 from public.session_events e2
                                 where e2.session_id = s.id and e2.at >= v_cutoff))
       and not private.session_has_open_question(v_session) then
      exit when v_deleted > 0
                and v_deleted + (select count(*) from public.session_events e3
                                 where e3.session_id = v_session and e3.actor_role <> 'admin') > v_limit;
      delete from public.session_events e where e.session_id = v_session and e.actor_role <> 'admin';
      get diagnostics v_n = row_count;
      v_deleted := v_deleted + v_n;
      v_sessions := v_sessions + 1;
    else
      v_kept := v_kept + 1;
    end if;
  end loop;
  perform set_config('autodoctor.retention', '', true);
  return jsonb_build_object('session_events_deleted', v_deleted, 'session_histories_deleted', v_sessions,
                            'session_histories_held', v_kept);
end
$$;
revoke execute on function private.retain_session_events(timestamptz, int) from public;

-- ---------------------------------------------------------------------------------------------
-- Slot holds: every slot a customer picks is a hold (scheduling/holds.sql); one that expired or was
-- let go without a booking is nobody's time any more. It goes retention.holds after it expired —
-- later than a paid hold's checkout can complete (Checkout expires within a day, Stripe redelivers
-- for 3 days), whose completion looks the hold up again (`p_rehold`). A hold that a booking still
-- waiting for its payment (pending, or failed with its Checkout still open) points at stays.
-- ---------------------------------------------------------------------------------------------
create or replace function private.retain_holds(p_now timestamptz default now(), p_limit int default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_n int;
begin
  with due as (
    select c.id from public.mechanic_commitments c
    where c.kind = 'hold' and c.status in ('expired', 'released')
      and c.expires_at < p_now - private.setting_interval('retention.holds')
      and not exists (select 1 from public.bookings b where b.hold_id = c.id and b.status in ('pending', 'failed'))
    order by c.expires_at
    limit private.retention_limit(p_limit)
    for update of c skip locked)
  delete from public.mechanic_commitments c using due where c.id = due.id;
  get diagnostics v_n = row_count;
  return jsonb_build_object('holds_deleted', v_n);
end
$$;
revoke execute on function private.retain_holds(timestamptz, int) from public;

-- ---------------------------------------------------------------------------------------------
-- Rate-limit buckets: one per user and class that ever called. A bucket idle for
-- retention.rate_buckets and refilled to its capacity is the same as no bucket (the first call
-- starts a full one, trust/rate_limit.sql), so it goes. The table is small and unlogged; it has no
-- index on updated_at on purpose: every write RPC updates it, and such an index would cost each of
-- them its HOT update. The scan stops at the batch.
-- ---------------------------------------------------------------------------------------------
create or replace function private.retain_rate_buckets(p_now timestamptz default now(), p_limit int default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_n int;
begin
  with due as (
    select b.user_id, b.class from private.rate_buckets b
    join private.settings c on c.key = format('rate_limit.%s.capacity', b.class)
    join private.settings r on r.key = format('rate_limit.%s.refill_per_minute', b.class)
    where b.updated_at < p_now - private.setting_interval('retention.rate_buckets')
      and b.tokens + extract(epoch from (p_now - b.updated_at)) * (r.value)::numeric / 60 >= (c.value)::numeric
    limit private.retention_limit(p_limit)
    for update of b skip locked)
  delete from private.rate_buckets b using due where b.user_id = due.user_id and b.class = due.class;
  get diagnostics v_n = row_count;
  return jsonb_build_object('rate_buckets_deleted', v_n);
end
$$;
revoke execute on function private.retain_rate_buckets(timestamptz, int) from public;
-- <<< functions_sql jobs/retention.sql

-- >>> functions_sql jobs/schedules.sql sha256=0f29827750fe354e4d3aafa4224e183a932ab76143e021603707362417a70674
-- Jobs: the jobs declared in private.schedules (migration 20261129000500), what each one runs, and
-- their scheduling with pg_cron where the extension is installed.

-- ---------------------------------------------------------------------------------------------
-- The steps of each job. A step is one SQL function returning jsonb counts; a job runs its steps in
-- order, each in its own subtransaction.
-- ---------------------------------------------------------------------------------------------
create or replace function private.job_steps(p_job text) returns text[]
language sql immutable set search_path = ''
as $$
  select case p_job
    when 'sweep_requests' then array['sweep_requests', 'lapse_micro_approvals']
    when 'dispatch' then array['dispatch_due']
    when 'nudges' then array['send_nudges']
    when 'session_timers' then array['end_overdue_sessions', 'send_starting_notices', 'expire_holds',
                                     'open_scheduled_sessions']
    when 'delivery' then array['release_held_payouts', 'refund_unverified_sessions']
    when 'retention' then array['retain_jobs', 'retain_cron_runs', 'retain_stripe_events', 'retain_livekit_events',
                                'retain_resend_events', 'retain_session_events', 'retain_holds', 'retain_rate_buckets']
  end
$$;
revoke execute on function private.job_steps(text) from public;

create or replace function private.run_job_step(p_step text, p_now timestamptz) returns jsonb
language plpgsql security definer set search_path = ''
as $$
begin
  case p_step
    when 'sweep_requests' then return private.sweep_requests(p_now);
    when 'lapse_micro_approvals' then return private.lapse_micro_approvals(p_now, 200);  -- workshops/dispatch.sql
    when 'dispatch_due' then return private.dispatch_due(p_now, 200);
    when 'send_nudges' then return private.send_nudges(p_now);
    when 'end_overdue_sessions' then return private.end_overdue_sessions(p_now, 200);
    when 'send_starting_notices' then return private.send_starting_notices(p_now);
    when 'expire_holds' then return private.expire_holds(p_now);
    when 'open_scheduled_sessions' then return private.open_scheduled_sessions(p_now);
    when 'release_held_payouts' then return private.release_held_payouts(p_now, 200);        -- trust/delivery.sql
    when 'refund_unverified_sessions' then return private.refund_unverified_sessions(p_now, 200);
    when 'retain_jobs' then return private.retain_jobs(p_now);                                 -- jobs/retention.sql
    when 'retain_cron_runs' then return private.retain_cron_runs(p_now);
    when 'retain_stripe_events' then return private.retain_stripe_events(p_now);
    when 'retain_livekit_events' then return private.retain_livekit_events(p_now);
    when 'retain_resend_events' then return private.retain_resend_events(p_now);
    when 'retain_session_events' then return private.retain_session_events(p_now);
    when 'retain_holds' then return private.retain_holds(p_now);
    when 'retain_rate_buckets' then return private.retain_rate_buckets(p_now);
  end case;
end
$$;
revoke execute on function private.run_job_step(text, timestamptz) from public;

-- Runs one job and records the run in private.cron_runs as `cron_<job>` (start; then ok with the
-- merged counts of its steps, or not ok with the errors of the steps that failed). A failing step
-- rolls back its own subtransaction only: the other steps keep their work, the run record is kept,
-- and the error is returned (not raised) so that the record commits.
create or replace function private.run_job(p_job text, p_now timestamptz default now()) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_steps text[] := private.job_steps(p_job);
  v_step text;
  v_run bigint;
  v_part jsonb;
  v_result jsonb := '{}';
  v_errors text[] := '{}';
begin
  if v_steps is null then
    perform private.raise_error('not_found', format('no such job: %s', p_job));
  end if;
  v_run := private.cron_run_start('cron_' || p_job);
  foreach v_step in array v_steps loop
    begin
      v_part := private.run_job_step(v_step, p_now);
      v_result := v_result || coalesce(v_part, '{}');
    exception when others then
      v_errors := v_errors || format('%s: %s (%s)', v_step, sqlerrm, sqlstate);
    end;
  end loop;
  if cardinality(v_errors) = 0 then
    perform private.cron_run_finish(v_run, true, v_result, null);
    return v_result;
  end if;
  perform private.cron_run_finish(v_run, false, nullif(v_result, '{}'), array_to_string(v_errors, '; '));
  return v_result || jsonb_build_object('errors', to_jsonb(v_errors));
end
$$;
revoke execute on function private.run_job(text, timestamptz) from public;
grant execute on function private.run_job(text, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- pg_cron: one pg_cron job named `autodoctor.<name>` per row. Schedules (or updates) every row and
-- unschedules our jobs whose row is gone; leaves other pg_cron jobs alone. Does nothing where
-- pg_cron is absent (the embedded PostgreSQL, the test servers): the `cron` schema is only ever
-- named in dynamic SQL, after checking that cron.schedule and cron.job exist. Idempotent.
-- ---------------------------------------------------------------------------------------------
create or replace function private.sync_pg_cron() returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_row record;
  v_jobname text;
  v_scheduled text[] := '{}';
  v_unscheduled text[] := '{}';
begin
  if to_regprocedure('cron.schedule(text,text,text)') is null or to_regprocedure('cron.unschedule(text)') is null
     or to_regclass('cron.job') is null then
    return jsonb_build_object('pg_cron', false);
  end if;
  for v_row in select s.name, s.cron, s.command from private.schedules s order by s.name loop
    execute 'select cron.schedule($1, $2, $3)' using 'autodoctor.' || v_row.name, v_row.cron, v_row.command;
    v_scheduled := v_scheduled || v_row.name;
  end loop;
  for v_jobname in execute
    'select j.jobname from cron.job j where j.jobname like ''autodoctor.%'' order by j.jobname'
  loop
    if not exists (select 1 from private.schedules s where 'autodoctor.' || s.name = v_jobname) then
      execute 'select cron.unschedule($1)' using v_jobname;
      v_unscheduled := v_unscheduled || v_jobname;
    end if;
  end loop;
  return jsonb_build_object('pg_cron', true, 'scheduled', to_jsonb(v_scheduled),
                            'unscheduled', to_jsonb(v_unscheduled));
end
$$;
revoke execute on function private.sync_pg_cron() from public;

-- A migration that adds, changes or removes a row reschedules in its own transaction.
create or replace function private.tg_schedules__sync_pg_cron() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  perform private.sync_pg_cron();
  return null;
end
$$;
revoke execute on function private.tg_schedules__sync_pg_cron() from public;
drop trigger if exists _100_sync_pg_cron on private.schedules;
create trigger _100_sync_pg_cron after insert or update or delete or truncate on private.schedules
  for each statement execute function private.tg_schedules__sync_pg_cron();

-- The rows inserted by the migration (before this trigger existed), and any change to this file.
select private.sync_pg_cron();
-- <<< functions_sql jobs/schedules.sql

reset check_function_bodies;

-- functions_sql-manifest: the state of supabase/functions_sql/ after this migration
-- functions_sql-manifest core/admin.sql sha256=f3423df9a7c70656d684d4eacda964fa8cd797385cbe652f801bc08abd55edc0
-- functions_sql-manifest core/broadcasts.sql sha256=c93578c48e0d8c0c565a87dcb05642e2db63a0c8f168c31dee9dff2d1c798cec
-- functions_sql-manifest core/directory.sql sha256=97061e15165f3460c9f89023ee7162fa3b68d758e42d9d514665d237c6eb604d
-- functions_sql-manifest core/errors.sql sha256=3162f074770469a2c8f8cc6e582405853f74e510e71a3961234876f8a544d9d2
-- functions_sql-manifest core/helpers.sql sha256=fa1872c37c33a27b6875c41ae6e7c365f5d0a366926f2c758b43d0f067205e2e
-- functions_sql-manifest core/lifecycle.sql sha256=5f3ed2f9a8e654d5ca93bbf7edf248cd364e4ce5a123279775841ea40f774886
-- functions_sql-manifest core/rpc.sql sha256=b7d028c2ec383050171607f4dbec654b0803f556c52ca56f8e0050afb390ee47
-- functions_sql-manifest core/sessions.sql sha256=dc306360e4147de60a109be0b93dc249b6c67ff6abd0771b50bbd0a76e6ced5d
-- functions_sql-manifest core/signup.sql sha256=c1eaadc2d934df2bed3300c53885004a45fe59fb472bdbece20a33b0f704bd17
-- functions_sql-manifest core/transitions.sql sha256=05daf7ab50a29daff4b0e07fd41fbe145d0a6eab20fefab4a8108bb176a8754a
-- functions_sql-manifest jobs/admin.sql sha256=a431c8c37cae7835a803b49b41130f31e66f3e6dc2910f9e6f350a8b69944b13
-- functions_sql-manifest jobs/emails.sql sha256=b143b84726f6a930f3e53cd3b60f284b256b874ae0607350a333069d929dccb4
-- functions_sql-manifest jobs/nudges.sql sha256=133086b270ff41327c4314b308a0dd05c773f505a6d22e28d7d5b769bc5b18f0
-- functions_sql-manifest jobs/outbox.sql sha256=2b71c342ff6ea91cdda0c0de9cb671b3d678768aabd67044c635de6c5b65ba86
-- functions_sql-manifest jobs/retention.sql sha256=69a597011866200c3f8c5ccc485b31b206c94b0b60023b00f91b76ecd20ee960
-- functions_sql-manifest jobs/runs.sql sha256=22697585fd787eecd46440d55f7e68b6096ccbffae106360d2eca48014e3fd98
-- functions_sql-manifest jobs/schedules.sql sha256=0f29827750fe354e4d3aafa4224e183a932ab76143e021603707362417a70674
-- functions_sql-manifest jobs/sweep_requests.sql sha256=a23a55209d25dfa04d0381b4a044ef8988c369bfd5d5f75342eeb081ffa24fc4
-- functions_sql-manifest journey/crm.sql sha256=ad947defb07bf2514d234e48196f06c8003de9198be44edafd931324da9eed77
-- functions_sql-manifest journey/email_events.sql sha256=b51ce4a220f681ed20c686fa4c446662e0c2a5934a48c89aa63291f5e0abf175
-- functions_sql-manifest journey/follow_ups.sql sha256=ffeac60955f0629f182850ca5860cbfb58d3f8e34fa43ddd1e3711f0e97ba7b7
-- functions_sql-manifest journey/funnel.sql sha256=5b3c8672caaabd8ac657b194f79cd4a298aa5821d8c2638ffa1e1bc7f66251cf
-- functions_sql-manifest journey/hooks.sql sha256=99325e75fecf99286655b1520e96ed28be92671201653795c6fc543383152cad
-- functions_sql-manifest journey/media.sql sha256=51f76abb9d8ccc2bdfa3bfa5a51394c1dbeaa570e90441c6ae07cb52faed8074
-- functions_sql-manifest journey/messages.sql sha256=9c982cb359e36289c3719de9113c0f35712d88bc0c0de88750a250951602c698
-- functions_sql-manifest journey/recommendations.sql sha256=a036ac293c55e400a131907958b2b0f47f31e1f70b026e95f911350f3d9ffbcb
-- functions_sql-manifest journey/summaries.sql sha256=8f846c9f411f14f5c050216d66b7ebf0e543e4d692c9212e5fed8a2504988aca
-- functions_sql-manifest matching/eligibility.sql sha256=36c72d1964b3eefc61cdaae0f878816a7865860aadcee9a881b7ba82d8b1b12f
-- functions_sql-manifest matching/keywords.sql sha256=152d4fe0de3480e326b93190271c153a66f37f4f4cbf3b64bcc90821769a37a6
-- functions_sql-manifest matching/listing.sql sha256=6e0c8a27974f244f39be7827a632071f6755ee5675563f3dd1c0d2093e9f3734
-- functions_sql-manifest matching/metrics.sql sha256=16e0bfa047e423ebe70c19b3ca3e25ca809a7c0649361b46516eccb088b98145
-- functions_sql-manifest matching/presence.sql sha256=421df5980727f44db43fb1f9d2d00e506c103f9cf5a1c41dc5bc75ed7ebdfac7
-- functions_sql-manifest matching/ranking.sql sha256=79691d024eea19b79204a38924e802489e5bcd816e4517eec8bb57b87eb0be94
-- functions_sql-manifest matching/routing.sql sha256=58ba5a184a80e0036de26d1265fd8e96cf3f2556ad35f0ddc3fd7e0bc5d0cb9d
-- functions_sql-manifest micro/caps.sql sha256=e9fc3ffe6455befad8600e9ed215dc19a7aa536239b9edbf1a6e71318fd1197f
-- functions_sql-manifest micro/clock.sql sha256=32f42427523e5c8be8e9fef6f730b3c8c24fa1054af8a6d2c488b821b12782ca
-- functions_sql-manifest micro/dashboards.sql sha256=1d84b7005d832d8d31bd90af0f51609bb0835cad1c1adb80b551238a8e1d3fee
-- functions_sql-manifest micro/settings.sql sha256=356a78efd80f0d129aee86690203858fd1eb41951ee61f292cd27c6c455a53b6
-- functions_sql-manifest operations/audit.sql sha256=36151fb12fbe00fc18cfa4ab2b483a8124de04a2f0ce94320f000bd8f58afac9
-- functions_sql-manifest operations/audit_read.sql sha256=79a5ce8d7aac6cfd8492db628d05b2361ead8b3e40bbc0e4fc97931e2eb18944
-- functions_sql-manifest operations/intakes.sql sha256=5a26a15d43af2b32955d467c57c0081cd0717e4b954c731b12a062eb09eb5f4f
-- functions_sql-manifest operations/overview.sql sha256=3df15bfd5fd6d5c44b2644335d8fef6a5455f270c8951e97631c500514d4f63f
-- functions_sql-manifest operations/scheduling_stats.sql sha256=55e0a6dbb3bff3100576945b75e2938690e7493c8940e9d2be4059eafec40e75
-- functions_sql-manifest operations/suspension.sql sha256=d7cb210ae69fdcd3ce3869fa5704005f1d589dc3287654f4683f81db76fa9d68
-- functions_sql-manifest operations/vetting.sql sha256=526d634854d6c06516a276b806ddbbb6c836d4ad0eb1126f8c2c47ac392e1022
-- functions_sql-manifest payments/admin.sql sha256=1e117ff190427ab5d40ab22de5fc00ab39dc4e8c7ae9c0f8063d3463907e2f1a
-- functions_sql-manifest payments/checkout.sql sha256=8836fa4de643e4f763bd2c65db490614b4b4ea1d5b1679b6375c0206c2c583d7
-- functions_sql-manifest payments/connect.sql sha256=a8b79815e5f06ce6f00f3f5f82767bb9579e5e9c5f750338fc5c905c866b306d
-- functions_sql-manifest payments/credit.sql sha256=46ca316d088673f86ba57da14e97a14d761a4570debc1f3ad5d74e2538deb54f
-- functions_sql-manifest payments/helpers.sql sha256=564335851c5012a83791aa07b04ab1e2be627799d5b7fb91e995d57776037964
-- functions_sql-manifest payments/integrity.sql sha256=6c2bba7a49c6003ae582231db463a52ae56cde445b3c027d38edb86ffe550532
-- functions_sql-manifest payments/refunds.sql sha256=cae62e292095da8bea25a5efa26fee737f917ddad64674940e764dbdd029a64f
-- functions_sql-manifest payments/settlement.sql sha256=61eab335038603d3c5ca74c4d5482699ff096571f76b57d4ec1be1fe4f84f015
-- functions_sql-manifest payments/stripe_events.sql sha256=4ce61ce9cfefa4baac3f3e9bcea7fde138656823399523df35da2611f8a94edb
-- functions_sql-manifest payments/stripe_worker.sql sha256=7a1794a993228bf0823b97a16ae0d8c7460154642cef84408597c4004e8603ae
-- functions_sql-manifest privacy/erasure.sql sha256=a7b8ff17f6a6318fb461c687b5e31c848282093830f02abdce487adfd26eab91
-- functions_sql-manifest privacy/export.sql sha256=734a19b7fdd193141bf0c6a577100c2acb4735b81f9f037d97b406d6976409c8
-- functions_sql-manifest reviews/prompts.sql sha256=e3c52363528fd28863d3b82dba2a77c539334fee239d433a2c08860bc8182791
-- functions_sql-manifest reviews/public_view.sql sha256=3163f057402af1cc7203ef9ca04b483045d3e1e48322d23e5b7deb6c30c03414
-- functions_sql-manifest reviews/reputation.sql sha256=94a660258d69a38250c8f5efcd36415d5d0e8347bec1a6c772634db1fe37054a
-- functions_sql-manifest reviews/reviews.sql sha256=acb29b4bdf4a2cccae60ad261d0aebd3b2c0ec8dd85824ac9060ecc5d46cad36
-- functions_sql-manifest rooms/access.sql sha256=1b63c186ad327a61c6f7c2eea4436148cd145987bec6902fa111b45b7639ae8f
-- functions_sql-manifest rooms/extensions.sql sha256=ecdb7236fec9d57e29a438797584ac830db6c0cf66795c8b03df65da3635e495
-- functions_sql-manifest rooms/livekit_events.sql sha256=cc2b9fea2937b577fdb85e91e226156f3d7dd339706f5a61c3892c359d9a4e4a
-- functions_sql-manifest rooms/timers.sql sha256=5f5346a4e0cc3d12ffb926f1f08893bc970a8444b177207bc3aa1f6f42940896
-- functions_sql-manifest scheduling/availability_rpc.sql sha256=fa16f1151e8b6ae87c87d4803aa9ca30ae76b2fc0e9eae062b18db3b80635acd
-- functions_sql-manifest scheduling/booking_rpc.sql sha256=fd78b54227728a48cd2ea95a1fb64e3d5389e40fdd95ea5070ff511d77f5e4f4
-- functions_sql-manifest scheduling/calendar.sql sha256=6100fcc60a2a22bf1e09c2b682833fb40ba154ad5e9064b7c0bcd8c53b3a8324
-- functions_sql-manifest scheduling/changes.sql sha256=9e87d0da79c6f8a24def78eb05896b5b82b7818be3e4e503ddd3e3c46cebae77
-- functions_sql-manifest scheduling/committed_time.sql sha256=ddd38c89b02e59607f7f40768eae0c22b177f351729f61bf8b9c6c5b3784f553
-- functions_sql-manifest scheduling/holds.sql sha256=80e66dfab8e5e885da721fd24e96a859f0414b15c115b629c3713175da08cd35
-- functions_sql-manifest scheduling/jobs.sql sha256=0e6312d573231b426c54900221c5b0ecbf53894ff7a9f634acf5d59fec14b64a
-- functions_sql-manifest scheduling/open_time.sql sha256=4a300a2863905f3ba4bac94f8c68b972ce223b96c2d83e3c9b53abc4b0d02805
-- functions_sql-manifest scheduling/reminders.sql sha256=a6dc4c21da22223a56fdc58f4507ed12770b057dcaf5543048bbbd5511e850ee
-- functions_sql-manifest scheduling/rules.sql sha256=77e8204836c14debf06ee1933b26252a7fee4d3089fe7720ddf73d0adbed1af3
-- functions_sql-manifest trust/contact.sql sha256=b7992cc67d68723ea04b1986c3ee163f46210619cb7fbc5fd973b0b0f80f323c
-- functions_sql-manifest trust/delivery.sql sha256=13cf9a7795fabfc1598e9b01f993e1352becf53f8f60d52481d37361cbf191ad
-- functions_sql-manifest trust/limits.sql sha256=fad6fd79cdb0a0347458353a0df26e95f8dabac768a6b44c7a28160c32ab47fe
-- functions_sql-manifest trust/pricing.sql sha256=3075961d25ecc4ccd99e6bbf25ad3012a836d5697935c502ed26095ec7359950
-- functions_sql-manifest trust/rate_limit.sql sha256=dc51a19ec7cff8e1b01d341ec68e6f3c11de7c17d23ef7185b0b0c79850bcb2c
-- functions_sql-manifest trust/standing.sql sha256=48f60135d88420982e9a0d1f847a97ce41ab3b62f9105b935f35b16f4f5c8a07
-- functions_sql-manifest trust/waiver.sql sha256=e55e17a34963e554f36bec304c2212fe7765268192081a2d2502a28c9ca38b41
-- functions_sql-manifest workshops/appointments.sql sha256=5f6530bed3befb05a76302182e756dc65303c345cb474afd3fe6db59db4b7273
-- functions_sql-manifest workshops/appointments_notify.sql sha256=50c518c61b4fc52577450080ed5407dd64a20d205da2f504932b11d47cc228cb
-- functions_sql-manifest workshops/appointments_rpc.sql sha256=f88d70f5575415327a86ef0017bceacc6b7454be95e3983d1e847d0552acaee6
-- functions_sql-manifest workshops/directory.sql sha256=b4ca0b3283f5e9f382ac3aa61acf49ff546d43813a20baccbd4944bec3c7f93b
-- functions_sql-manifest workshops/dispatch.sql sha256=db61193624f16d01338b25aacc63226c1e4a0a26de073f1545f5b6f4ae96b2a4
-- functions_sql-manifest workshops/hooks.sql sha256=99e01f958c1f3ab8d67144edc06dd9df28f576f36731ea05f68d45e364ae57be
-- functions_sql-manifest workshops/onboarding.sql sha256=1a65ec1d4b5f8f731fdf657e65ae84c0bc504c6a2c55ca6983e9e267a03dbe0d
-- functions_sql-manifest workshops/referral.sql sha256=6bada6ae6e424f43ccae0e5cfeb7f479c054fe63e09c36d0d9a5fa91026b5f75
-- functions_sql-manifest workshops/roster.sql sha256=54b139b2071afad60fa701efeddf2dba296ddb2162f689aba18640a68036f187
-- functions_sql-manifest workshops/specialists.sql sha256=8005a20dd10a143a3921224766e65c28f4c8d57d9e3402851b96556e60b9c291
