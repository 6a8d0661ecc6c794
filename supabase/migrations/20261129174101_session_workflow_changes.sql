-- session_workflow_changes: supabase/functions_sql/ as of this migration, written by `autodoctor db commit`.
-- Whole files, re-runnable, in path order; then the drops of what they no longer define.
-- Edit the files in supabase/functions_sql/, never this migration (see docs/migrations.md).
set check_function_bodies = off;

-- >>> functions_sql core/broadcasts.sql sha256=c93578c48e0d8c0c565a87dcb05642e2db63a0c8f168c31dee9dff2d1c798cec
-- Core Realtime broadcasts of requests and sessions.

-- ---------------------------------------------------------------------------------------------
-- Realtime broadcasts, sent inside the transaction that made the change (lost if it rolls back).
-- Payloads carry ids and card fields only: never an email, phone or address.
-- ---------------------------------------------------------------------------------------------
create or replace function private.tg_session_requests__broadcast() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_card jsonb := private.request_card(new);
begin
  if (tg_op = 'INSERT' and coalesce(new.broadcast_at <= now(), true))  -- not during a preferred window
     or (tg_op = 'UPDATE' and old.status = 'accepted' and new.status = 'pending') then
    perform realtime.send(v_card, 'new_request', 'mechanics:requests', true);
  elsif new.status is distinct from old.status then
    case new.status
      when 'accepted' then
        perform realtime.send(jsonb_build_object('request_id', new.id, 'mechanic_id', new.mechanic_id),
                              'request_accepted', 'mechanics:requests', true);
      when 'unattended' then
        perform realtime.send(jsonb_build_object('request_id', new.id), 'request_unattended', 'mechanics:requests', true);
        perform realtime.send(v_card, 'request_unattended', 'admin:queue', true);
      when 'cancelled', 'expired' then
        perform realtime.send(jsonb_build_object('request_id', new.id, 'reason', new.status),
                              'request_cancelled', 'mechanics:requests', true);
      else
        null;
    end case;
  end if;
  return null;
end
$$;
revoke execute on function private.tg_session_requests__broadcast() from public;

create or replace function private.tg_sessions__broadcast() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_topic text := 'session:' || new.id::text;
begin
  if new.status is distinct from old.status then
    perform realtime.send(
      jsonb_build_object('session_id', new.id, 'from', old.status, 'to', new.status, 'at', new.status_changed_at),
      'status_changed', v_topic, true);
  end if;
  if new.mechanic_id is distinct from old.mechanic_id and new.mechanic_id is not null then
    perform realtime.send(
      (select jsonb_build_object('session_id', new.id, 'mechanic_id', new.mechanic_id,
                                 'display_name', m.display_name, 'photo_url', m.photo_url)
       from (select 1) one left join public.mechanics m on m.id = new.mechanic_id),
      'mechanic_assigned', v_topic, true);
  end if;
  return null;
end
$$;
revoke execute on function private.tg_sessions__broadcast() from public;

drop trigger if exists _300_broadcast on public.session_requests;
create trigger _300_broadcast after insert or update of status on public.session_requests
  for each row execute function private.tg_session_requests__broadcast();
drop trigger if exists _300_broadcast on public.sessions;
create trigger _300_broadcast after update of status, mechanic_id on public.sessions
  for each row execute function private.tg_sessions__broadcast();
-- <<< functions_sql core/broadcasts.sql

-- >>> functions_sql core/helpers.sql sha256=fa1872c37c33a27b6875c41ae6e7c365f5d0a366926f2c758b43d0f067205e2e
-- Core helpers: who acts (for the audit), the caller's user id, checks of free text, updated_at.

-- ---------------------------------------------------------------------------------------------
-- Small helpers
-- ---------------------------------------------------------------------------------------------
-- Who acts in this transaction, for the audit: set by RPCs (transaction-local). The lifecycle
-- functions (core/lifecycle.sql) take the actor as a parameter and set it here themselves.
create or replace function private.set_actor(p_role text, p_reason text default null) returns void
language plpgsql volatile set search_path = ''
as $$
begin
  -- PL/pgSQL: planned once per session (a SQL function with a fixed search_path is planned in
  -- every transaction before PostgreSQL 18; every accept and lifecycle step calls this)
  perform set_config('autodoctor.actor_role', p_role, true), set_config('autodoctor.reason', coalesce(p_reason, ''), true);
end
$$;
revoke execute on function private.set_actor(text, text) from public;
grant execute on function private.set_actor(text, text) to service_role;

-- The caller's user id, or not_authenticated (AD002).
create or replace function private.require_user() returns uuid
language plpgsql stable set search_path = ''
as $$
declare
  v_uid uuid := (select auth.uid());
begin
  if v_uid is null then
    perform private.raise_error('not_authenticated', 'sign in first');
  end if;
  return v_uid;
end
$$;
revoke execute on function private.require_user() from public;
grant execute on function private.require_user() to authenticated, service_role;

-- A required argument: null is invalid_input (AD001), '<p_name> is required'.
create or replace function private.require_arg(p_name text, p_value anyelement) returns void
language plpgsql stable set search_path = ''
as $$
begin
  if p_value is null then
    perform private.raise_error('invalid_input', format('%s is required', p_name));
  end if;
end
$$;
revoke execute on function private.require_arg(text, anyelement) from public;
grant execute on function private.require_arg(text, anyelement) to authenticated, service_role;

-- The session one of its two participants (the customer or the mechanic) is changing, row locked;
-- for anyone else it is not_found (AD004), as a session that does not exist.
create or replace function private.lock_session_as_participant(p_session_id uuid, p_uid uuid)
returns public.sessions
language plpgsql volatile security definer set search_path = ''
as $$
declare
  v_session public.sessions;
begin
  perform private.require_arg('p_session_id', p_session_id);
  select * into v_session from public.sessions where id = p_session_id for update;
  if not found or (v_session.customer_id <> p_uid and v_session.mechanic_id is distinct from p_uid) then
    perform private.raise_error('not_found', 'no such session');
  end if;
  return v_session;
end
$$;
revoke execute on function private.lock_session_as_participant(uuid, uuid) from public;
grant execute on function private.lock_session_as_participant(uuid, uuid) to service_role;

-- Free text from a caller: null stays null; longer than the limit is invalid_input (AD001).
create or replace function private.check_text(p_name text, p_value text, p_required boolean default false)
returns text
language plpgsql stable set search_path = ''
as $$
begin
  if p_value is null or btrim(p_value) = '' then
    if p_required then
      perform private.raise_error('invalid_input', format('%s is required', p_name));
    end if;
    return null;
  end if;
  if char_length(p_value) > private.setting_int('text.max_length') then
    perform private.raise_error('invalid_input',
      format('%s is longer than %s characters', p_name, private.setting_int('text.max_length')));
  end if;
  return btrim(p_value);
end
$$;
revoke execute on function private.check_text(text, text, boolean) from public;
grant execute on function private.check_text(text, text, boolean) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- updated_at
-- ---------------------------------------------------------------------------------------------
create or replace function private.tg__set_updated_at() returns trigger
language plpgsql set search_path = ''
as $$
begin
  new.updated_at := now();
  return new;
end
$$;
revoke execute on function private.tg__set_updated_at() from public;

do $$
declare
  v_table text;
begin
  foreach v_table in array array['profiles', 'organizations', 'mechanics', 'payout_accounts', 'vehicles',
                                 'intakes', 'sessions', 'session_requests', 'mechanic_commitments']
  loop
    execute format('drop trigger if exists _010_set_updated_at on public.%I', v_table);
    execute format('create trigger _010_set_updated_at before update on public.%I '
                   'for each row execute function private.tg__set_updated_at()', v_table);
  end loop;
end
$$;
-- <<< functions_sql core/helpers.sql

-- >>> functions_sql core/lifecycle.sql sha256=085845aef043f282c520acbf6dd067d763d71d82b970c25e6286ab2db6ccd3d1
-- Core: the lifecycles of a session, readable in one place. Completing a session, cancelling it
-- and expiring its request are functions that change the status and then call each domain's step,
-- in the order listed in their bodies (docs/lifecycles.md lists them too). Triggers on sessions and
-- requests keep only invariants: the transition check, the audit, updated_at, Realtime broadcasts,
-- the deadline and its timer, and the guard below, which refuses a final status written any other
-- way.
--
-- Every lifecycle function takes the actor recorded in session_events (`p_actor`: customer,
-- mechanic, admin or system, and `p_audit_reason`, which defaults to `p_reason`). A null
-- `p_actor` keeps the actor already set for this transaction (private.set_actor), or `system`:
-- that is how a refund that cancels an unstarted session records whoever asked for the refund.
-- The previous actor is restored when the function returns.
--
-- Effects that move money or counters (settlement, refunds, micro minutes) are stamped with the
-- transaction's time, now(), as the queue workers expect; `p_now` may be a past event's time
-- (LiveKit) or a sweep's clock and only stamps the session, its request and the held time.

-- ---------------------------------------------------------------------------------------------
-- The guard: a final status only through the lifecycle functions
-- ---------------------------------------------------------------------------------------------
-- The lifecycle functions allow the one session they change, for the statement that changes it
-- (transaction-local; cleared right after).
create or replace function private.lifecycle_allow(p_session_id uuid) returns void
language sql volatile set search_path = ''
as $$
  select set_config('autodoctor.lifecycle', coalesce(p_session_id::text, ''), true);
$$;
revoke execute on function private.lifecycle_allow(uuid) from public;
grant execute on function private.lifecycle_allow(uuid) to service_role;

-- Sessions: completed and cancelled; requests: expired and cancelled. Runs after the transition
-- check (_100), so a forbidden change still fails with invalid_transition (AD006) first.
-- Its WHEN clause calls it only for a change to a final status (never on an accept or a start).
create or replace function private.tg__lifecycle_only() returns trigger
language plpgsql set search_path = ''
as $$
declare
  v_session_id uuid;
begin
  if tg_table_name = 'sessions' then
    v_session_id := new.id;
  else
    v_session_id := new.session_id;
  end if;
  if new.status is distinct from old.status
     and new.status::text in ('completed', 'cancelled', 'expired')
     and current_setting('autodoctor.lifecycle', true) is distinct from v_session_id::text then
    perform private.raise_error('lifecycle_bypassed',
      format('%s: %s only through private.complete_session, private.cancel_session or private.expire_request',
             tg_table_name, new.status));
  end if;
  return new;
end
$$;
revoke execute on function private.tg__lifecycle_only() from public;
drop trigger if exists _105_lifecycle_only on public.sessions;
create trigger _105_lifecycle_only before update of status on public.sessions
  for each row
  when (new.status is distinct from old.status and new.status::text in ('completed', 'cancelled', 'expired'))
  execute function private.tg__lifecycle_only();
drop trigger if exists _105_lifecycle_only on public.session_requests;
create trigger _105_lifecycle_only before update of status on public.session_requests
  for each row
  when (new.status is distinct from old.status and new.status::text in ('completed', 'cancelled', 'expired'))
  execute function private.tg__lifecycle_only();

-- ---------------------------------------------------------------------------------------------
-- The actor for the audit (read by private.tg__record_status_event)
-- ---------------------------------------------------------------------------------------------
-- Sets the actor unless p_actor is null; returns the previous one for private.lifecycle_actor_restore.
create or replace function private.lifecycle_actor(p_actor text, p_reason text) returns text[]
language plpgsql volatile set search_path = ''
as $$
declare
  v_prev text[] := array[coalesce(current_setting('autodoctor.actor_role', true), ''),
                         coalesce(current_setting('autodoctor.reason', true), '')];
begin
  if p_actor is not null then
    perform private.set_actor(p_actor, p_reason);
  end if;
  return v_prev;
end
$$;
revoke execute on function private.lifecycle_actor(text, text) from public;
grant execute on function private.lifecycle_actor(text, text) to service_role;

create or replace function private.lifecycle_actor_restore(p_prev text[]) returns void
language sql volatile set search_path = ''
as $$
  select set_config('autodoctor.actor_role', p_prev[1], true), set_config('autodoctor.reason', p_prev[2], true);
$$;
revoke execute on function private.lifecycle_actor_restore(text[]) from public;
grant execute on function private.lifecycle_actor_restore(text[]) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Complete: a live session ends normally
-- ---------------------------------------------------------------------------------------------
-- Callers: public.end_session, public.admin_force_end_session, LiveKit room_finished and
-- reconcile (rooms/livekit_events.sql), the time cap (rooms/timers.sql).
drop function if exists private.complete_session(uuid, text, text, timestamptz);
create or replace function private.complete_session(
  p_session_id uuid, p_notes text, p_reason text, p_now timestamptz default now(),
  p_actor text default null, p_audit_reason text default null
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_prev_actor text[] := private.lifecycle_actor(p_actor, coalesce(p_audit_reason, p_reason));
  v_session public.sessions;
begin
  -- 1. core: live → completed; the held time is done, the mechanic's count grows, the intake is resolved
  perform private.lifecycle_allow(p_session_id);
  update public.sessions s
  set status = 'completed', ended_at = p_now, status_changed_at = p_now,
      duration_minutes = greatest(0, ceil(extract(epoch from (p_now - coalesce(s.started_at, p_now))) / 60))::int,
      mechanic_notes = coalesce(p_notes, s.mechanic_notes), cancel_reason = coalesce(p_reason, s.cancel_reason)
  where s.id = p_session_id and s.status = 'live'
  returning * into v_session;
  perform private.lifecycle_allow(null);
  if v_session.id is null then
    perform private.raise_error('invalid_transition', 'only a live session can be ended');
  end if;
  perform private.release_commitment(p_session_id, 'done', p_now);
  update public.mechanics set completed_sessions = completed_sessions + 1 where id = v_session.mechanic_id;
  update public.intakes set status = 'resolved' where id = v_session.intake_id;

  -- 2. rooms: delete the LiveKit room (outbox job)                       rooms/timers.sql
  perform private.rooms_on_session_ended(v_session.id, 'live');
  -- 3. micro: count the actual micro minutes and the shift's counters    micro/caps.sql
  perform private.micro_settle(v_session.id, now());
  -- 4. payments: split every unsettled payment into payouts             payments/settlement.sql
  perform private.settle_payment(v_session.id, now());
  -- 5. emails: session_ended, and summary_delivered with notes           jobs/emails.sql
  perform private.emails_on_session_completed(v_session.id);

  perform private.lifecycle_actor_restore(v_prev_actor);
  return jsonb_build_object('session_id', v_session.id, 'status', 'completed', 'ended_at', v_session.ended_at,
                            'duration_minutes', v_session.duration_minutes);
end
$$;
revoke execute on function private.complete_session(uuid, text, text, timestamptz, text, text) from public;
grant execute on function private.complete_session(uuid, text, text, timestamptz, text, text) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Cancel: a session that has not ended, with its request and held time
-- ---------------------------------------------------------------------------------------------
-- Callers: public.cancel_request (customer), public.admin_force_end_session, the sweeps
-- (jobs/sweep_requests.sql), private.cancel_scheduled_session, private.expire_request below, and a
-- full refund of a session not yet started (private.request_refund in payments/refunds.sql, with
-- the actor of the refund). A session already ended is left as it is.
drop function if exists private.cancel_session(uuid, text, timestamptz);
create or replace function private.cancel_session(
  p_session_id uuid, p_reason text, p_now timestamptz default now(),
  p_actor text default null, p_audit_reason text default null
) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_prev_actor text[] := private.lifecycle_actor(p_actor, coalesce(p_audit_reason, p_reason));
  v_from public.session_status;
  v_intake uuid;
begin
  select status into v_from from public.sessions where id = p_session_id for update;
  if v_from is null or v_from in ('completed', 'cancelled') then
    perform private.lifecycle_actor_restore(v_prev_actor);
    return;  -- no such session, or it already ended: nothing to do
  end if;

  -- 1. core: → cancelled; the request is cancelled, open offers withdrawn, the held time released,
  --    the intake back to new
  perform private.lifecycle_allow(p_session_id);
  update public.sessions set status = 'cancelled', cancel_reason = p_reason, status_changed_at = p_now,
         ended_at = case when status = 'live' then p_now else ended_at end
  where id = p_session_id and status in ('pending', 'scheduled', 'waiting', 'live')
  returning intake_id into v_intake;
  update public.session_requests set status = 'cancelled', cancel_reason = p_reason, status_changed_at = p_now
  where session_id = p_session_id and status in ('pending', 'unattended', 'accepted');
  perform private.lifecycle_allow(null);
  update public.session_offers set status = 'withdrawn'
  where request_id in (select r.id from public.session_requests r where r.session_id = p_session_id)
    and status in ('offered', 'queued');
  perform private.release_commitment(p_session_id, 'released', p_now);
  update public.intakes set status = 'new' where id = v_intake and status in ('pending', 'in_progress');

  -- 2. rooms: delete the LiveKit room if it was waiting or live          rooms/timers.sql
  perform private.rooms_on_session_ended(p_session_id, v_from);
  -- 3. micro: the reserved micro minutes count nothing                    micro/caps.sql
  perform private.micro_settle(p_session_id, now());
  -- 4. payments: full refund if cancelled before a mechanic took it       payments/settlement.sql
  --    (from payments.auto_refund_from_statuses: pending, scheduled)
  perform private.payments_on_session_cancelled(p_session_id, v_from, now());
  -- 5. scheduling: a booked session: calendar SEQUENCE + 1, reminders     scheduling/reminders.sql
  --    dropped, booking_cancelled emails to both sides
  perform private.scheduling_on_session_cancelled(p_session_id, v_from);

  perform private.lifecycle_actor_restore(v_prev_actor);
end
$$;
revoke execute on function private.cancel_session(uuid, text, timestamptz, text, text) from public;
grant execute on function private.cancel_session(uuid, text, timestamptz, text, text) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Expire: nobody took the request within requests.expire_after
-- ---------------------------------------------------------------------------------------------
-- Caller: the expiry sweep (jobs/sweep_requests.sql). Returns whether the request expired.
create or replace function private.expire_request(
  p_session_id uuid, p_reason text, p_now timestamptz default now(),
  p_actor text default null, p_audit_reason text default null
) returns boolean
language plpgsql security definer set search_path = ''
as $$
declare
  v_prev_actor text[] := private.lifecycle_actor(p_actor, coalesce(p_audit_reason, p_reason));
  v_expired int;
begin
  -- 1. core: the request → expired
  perform private.lifecycle_allow(p_session_id);
  update public.session_requests set status = 'expired', status_changed_at = p_now
  where session_id = p_session_id and status in ('pending', 'unattended');
  get diagnostics v_expired = row_count;
  perform private.lifecycle_allow(null);

  if v_expired > 0 then
    -- 2. payments: a paid session is refunded in full; the refund       payments/settlement.sql
    --    cancels the session (private.cancel_session, same actor)
    perform private.payments_on_request_expired(p_session_id, now());
    -- 3. core: the session is cancelled (nothing left to do if the refund did it)
    perform private.cancel_session(p_session_id, p_reason, p_now);
  end if;

  perform private.lifecycle_actor_restore(v_prev_actor);
  return v_expired > 0;
end
$$;
revoke execute on function private.expire_request(uuid, text, timestamptz, text, text) from public;
grant execute on function private.expire_request(uuid, text, timestamptz, text, text) to service_role;
-- <<< functions_sql core/lifecycle.sql

-- >>> functions_sql core/transitions.sql sha256=098fdf6854df746cfb9fab11e2976507138ad996dc669984166c96a30e18f979
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
create or replace function private.tg__append_only() returns trigger
language plpgsql set search_path = ''
as $$
begin
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

-- >>> functions_sql jobs/admin.sql sha256=a431c8c37cae7835a803b49b41130f31e66f3e6dc2910f9e6f350a8b69944b13
-- Jobs: the admin view of the job queue (private.outbox) and a retry.

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
  if p_status is null or p_status not in ('pending', 'processing', 'sent', 'dead', 'skipped')
     or p_limit is null or p_limit < 1 or p_limit > 1000 then
    perform private.raise_error('invalid_input', 'p_status must be pending/processing/sent/dead/skipped; p_limit 1..1000');
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
  perform private.require_arg('p_id', p_id);
  -- a kind with a domain row (a refund, a payout, a reversal) ended that row when its job died:
  -- it is retried through the row (status back to 'queued' puts its job back in line)
  if exists (select 1 from private.outbox o join private.job_kinds k on k.kind = o.kind
             where o.id = p_id and o.status = 'dead' and k.on_failure is not null) then
    perform private.raise_error('conflict', 'this job is retried by putting its domain row back in queued');
  end if;
  update private.outbox set status = 'pending', attempts = 0, next_attempt_at = now(), last_error = null,
         locked_until = null
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
-- <<< functions_sql jobs/admin.sql

-- >>> functions_sql jobs/emails.sql sha256=6a1bfe3d3111c3552cfbbbd34001e834684b8997e98a0d24984646ed13770216
-- Jobs: milestone emails, enqueued in the transaction of the change that causes them.

-- ---------------------------------------------------------------------------------------------
-- Emails: enqueued in the transaction of the change that causes them; rendered and sent by
-- the job worker (shared/email.py). One per (template, session, recipient). The template must be
-- registered (private.email_templates): a typo fails here, in the transaction that caused it.
-- ---------------------------------------------------------------------------------------------
create or replace function private.enqueue_email(
  p_template text, p_user_id uuid, p_session_id uuid, p_data jsonb default '{}', p_key_suffix text default ''
) returns bigint
language plpgsql security definer set search_path = ''
as $$
begin
  -- PL/pgSQL, so the call is planned once per session (every accept enqueues one)
  return private.enqueue(
    'email.send',
    format('email:%s:%s:%s%s', p_template, p_session_id, p_user_id, p_key_suffix),
    jsonb_build_object('template', p_template, 'user_id', p_user_id, 'session_id', p_session_id, 'data', p_data));
end
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
  return null;
end
$$;
revoke execute on function private.tg_sessions__milestone_emails() from public;
drop trigger if exists _400_milestone_emails on public.sessions;
create trigger _400_milestone_emails after insert or update of mechanic_id on public.sessions
  for each row execute function private.tg_sessions__milestone_emails();

-- Lifecycle step (core/lifecycle.sql): a completed session tells the customer, and delivers the
-- mechanic's summary when there is one.
create or replace function private.emails_on_session_completed(p_session_id uuid) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_s public.sessions;
begin
  select * into v_s from public.sessions where id = p_session_id;
  perform private.enqueue_email('session_ended', v_s.customer_id, v_s.id);
  if v_s.mechanic_notes is not null then
    perform private.enqueue_email('summary_delivered', v_s.customer_id, v_s.id);
  end if;
end
$$;
revoke execute on function private.emails_on_session_completed(uuid) from public;
grant execute on function private.emails_on_session_completed(uuid) to service_role;
-- <<< functions_sql jobs/emails.sql

-- >>> functions_sql jobs/outbox.sql sha256=2b71c342ff6ea91cdda0c0de9cb671b3d678768aabd67044c635de6c5b65ba86
-- Jobs: the one queue of side effects (enqueue, claim, settle, dead letter). Each kind's retry
-- policy is a row of private.job_kinds; shared/worker.py runs the handlers.

-- ---------------------------------------------------------------------------------------------
-- Enqueue
-- ---------------------------------------------------------------------------------------------
-- The registered kind (unknown_job_kind otherwise); an email job's template must be registered too.
create or replace function private.check_job(p_kind text, p_payload jsonb) returns void
language plpgsql stable security definer set search_path = ''
as $$
begin
  if p_kind is null or not exists (select 1 from private.job_kinds k where k.kind = p_kind) then
    perform private.raise_error('unknown_job_kind', format('no job kind %L is registered', p_kind));
  end if;
  if p_kind = 'email.send' and not exists (select 1 from private.email_templates t
                                            where t.name = p_payload ->> 'template') then
    perform private.raise_error('unknown_email_template',
                                format('no email template %L is registered', p_payload ->> 'template'));
  end if;
end
$$;
revoke execute on function private.check_job(text, jsonb) from public;
grant execute on function private.check_job(text, jsonb) to service_role;

-- Adds a side effect once, in the caller's transaction: a second enqueue with the same dedupe key
-- is a no-op (whatever the first one's state). Returns the id (of the new row, or the existing one).
create or replace function private.enqueue(
  p_kind text, p_dedupe_key text, p_payload jsonb, p_not_before timestamptz default now()
) returns bigint
language plpgsql security definer set search_path = ''
as $$
declare
  v_id bigint;
begin
  perform private.check_job(p_kind, p_payload);
  insert into private.outbox (kind, dedupe_key, payload, next_attempt_at)
  values (p_kind, p_dedupe_key, p_payload, coalesce(p_not_before, now()))
  on conflict (dedupe_key) do nothing
  returning id into v_id;
  if v_id is null then
    select id into v_id from private.outbox where dedupe_key = p_dedupe_key;
  end if;
  return v_id;
end
$$;
revoke execute on function private.enqueue(text, text, jsonb, timestamptz) from public;
grant execute on function private.enqueue(text, text, jsonb, timestamptz) to service_role;

-- Like enqueue, but a finished job (sent or dead) with this key is put back in line with fresh
-- attempts: for work whose domain row can become due again (a payout queued once more, an account
-- to refetch again). A job pending or in progress is left as it is.
create or replace function private.enqueue_again(
  p_kind text, p_dedupe_key text, p_payload jsonb, p_not_before timestamptz default now()
) returns bigint
language plpgsql security definer set search_path = ''
as $$
declare
  v_id bigint;
begin
  perform private.check_job(p_kind, p_payload);
  insert into private.outbox as o (kind, dedupe_key, payload, next_attempt_at)
  values (p_kind, p_dedupe_key, p_payload, coalesce(p_not_before, now()))
  on conflict (dedupe_key) do update
    set status = 'pending', attempts = 0, next_attempt_at = excluded.next_attempt_at, payload = excluded.payload,
        locked_until = null, last_error = null, sent_at = null
    where o.status in ('sent', 'dead')
  returning id into v_id;
  if v_id is null then
    select id into v_id from private.outbox where dedupe_key = p_dedupe_key;
  end if;
  return v_id;
end
$$;
revoke execute on function private.enqueue_again(text, text, jsonb, timestamptz) from public;
grant execute on function private.enqueue_again(text, text, jsonb, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Claim
-- ---------------------------------------------------------------------------------------------
-- Up to p_limit due rows of the given kinds (all when null): pending and due, or processing whose
-- lease ran out after a crash. Skip locked, so concurrent runs never take the same row; each row
-- is leased for its kind's `lease`.
create or replace function private.outbox_claim(p_now timestamptz, p_limit int, p_kinds text[] default null)
returns setof private.outbox
language sql security definer set search_path = ''
as $$
  update private.outbox o
  set status = 'processing', attempts = o.attempts + 1, locked_until = p_now + k.lease
  from private.job_kinds k
  where k.kind = o.kind
    and o.id in (
      select x.id from private.outbox x
      where ((x.status = 'pending' and x.next_attempt_at <= p_now)
             or (x.status = 'processing' and x.locked_until <= p_now))
        and (p_kinds is null or x.kind = any (p_kinds))
      order by x.next_attempt_at, x.id
      limit greatest(p_limit, 0)
      for update of x skip locked)
  returning o.*
$$;
revoke execute on function private.outbox_claim(timestamptz, int, text[]) from public;
grant execute on function private.outbox_claim(timestamptz, int, text[]) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Settle
-- ---------------------------------------------------------------------------------------------
-- When a failed job is tried again: base × 2^(attempts−1), at most max_backoff.
create or replace function private.job_retry_at(p_kind text, p_attempts int, p_now timestamptz) returns timestamptz
language sql stable security definer set search_path = ''
as $$
  select p_now + least(coalesce(k.max_backoff, k.base_backoff * power(2, 20)),
                       k.base_backoff * power(2, least(greatest(p_attempts, 1) - 1, 20)))
  from private.job_kinds k where k.kind = p_kind
$$;
revoke execute on function private.job_retry_at(text, int, timestamptz) from public;
grant execute on function private.job_retry_at(text, int, timestamptz) to service_role;

-- Records the outcome of one attempt: sent; or failed — tried again after the kind's backoff, or
-- dead-lettered after its max_attempts. A failure also calls the kind's on_failure hook in this
-- transaction (p_dead tells it whether this was the last attempt), so a domain row goes back in
-- line or ends failed together with its job. A row no longer processing is left alone.
create or replace function private.outbox_settle(p_id bigint, p_ok boolean, p_error text,
                                                 p_now timestamptz default now())
returns private.outbox_status
language plpgsql security definer set search_path = ''
as $$
declare
  v_row private.outbox;
  v_kind private.job_kinds;
  v_status private.outbox_status;
begin
  select * into v_row from private.outbox where id = p_id for update;
  if not found or v_row.status <> 'processing' then
    return v_row.status;
  end if;
  if p_ok then
    update private.outbox set status = 'sent', sent_at = p_now, locked_until = null, last_error = null
    where id = p_id;
    return 'sent';
  end if;
  select * into v_kind from private.job_kinds where kind = v_row.kind;
  v_status := case when v_row.attempts >= v_kind.max_attempts then 'dead' else 'pending' end;
  update private.outbox
  set status = v_status, locked_until = null, last_error = left(p_error, 2000),
      next_attempt_at = case when v_status = 'pending' then private.job_retry_at(v_row.kind, v_row.attempts, p_now)
                             else next_attempt_at end
  where id = p_id;
  if v_kind.on_failure is not null then
    execute format('select %s($1, $2, $3, $4)', v_kind.on_failure::regproc)
      using v_row, left(p_error, 2000), v_status = 'dead', p_now;
  end if;
  return v_status;
end
$$;
revoke execute on function private.outbox_settle(bigint, boolean, text, timestamptz) from public;
grant execute on function private.outbox_settle(bigint, boolean, text, timestamptz) to service_role;

-- A job that cannot apply here (its provider is not configured): ended as `skipped`, once, with
-- the reason; no retry and no on_failure hook (nothing failed).
create or replace function private.outbox_skip(p_id bigint, p_reason text, p_now timestamptz default now())
returns private.outbox_status
language plpgsql security definer set search_path = ''
as $$
begin
  update private.outbox set status = 'skipped', sent_at = p_now, locked_until = null, last_error = left(p_reason, 2000)
  where id = p_id and status = 'processing';
  return (select o.status from private.outbox o where o.id = p_id);
end
$$;
revoke execute on function private.outbox_skip(bigint, text, timestamptz) from public;
grant execute on function private.outbox_skip(bigint, text, timestamptz) to service_role;
-- <<< functions_sql jobs/outbox.sql

-- >>> functions_sql matching/presence.sql sha256=421df5980727f44db43fb1f9d2d00e506c103f9cf5a1c41dc5bc75ed7ebdfac7
-- Matching: presence (online, busy, offline) and its broadcasts.

-- ---------------------------------------------------------------------------------------------
-- Presence
-- ---------------------------------------------------------------------------------------------
-- online: chose to be available and heartbeat recent; busy: holds work; offline: otherwise.
create or replace function private.presence(
  p_is_available boolean, p_last_seen_at timestamptz, p_busy boolean, p_window interval, p_now timestamptz
) returns text
language plpgsql immutable parallel safe set search_path = ''
as $$
begin
  -- PL/pgSQL: its one expression is planned once per session, where a SQL function with a fixed
  -- search_path is planned again in every transaction (PostgreSQL before 18)
  return case
    when p_busy then 'busy'
    when p_is_available and p_last_seen_at >= p_now - p_window then 'online'
    else 'offline' end;
end
$$;
revoke execute on function private.presence(boolean, timestamptz, boolean, interval, timestamptz) from public;
grant execute on function private.presence(boolean, timestamptz, boolean, interval, timestamptz)
  to anon, authenticated, service_role;

drop view if exists public.mechanic_presence;
create view public.mechanic_presence with (security_invoker = true) as
select m.id as mechanic_id,
       private.presence(m.is_available, m.last_seen_at, m.id in (select private.busy_mechanic_ids()),
                        private.setting_interval('presence.online_window'), now()) as presence,
       m.last_seen_at
from public.mechanics m
where m.status = 'approved';
grant select on public.mechanic_presence to anon, authenticated, service_role;
comment on view public.mechanic_presence is 'online / busy / offline per approved mechanic.';

-- Presence changes are broadcast on mechanics:presence (status_changed {mechanic_id, presence}).
create or replace function private.tg_mechanics__broadcast_presence() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_busy boolean := exists (select 1 from public.mechanic_commitments c
                            where c.mechanic_id = new.id and c.status = 'in_progress');
begin
  if new.is_available is distinct from old.is_available or new.status is distinct from old.status then
    perform realtime.send(
      jsonb_build_object('mechanic_id', new.id,
                         'presence', case when new.status <> 'approved' then 'offline'
                                          else private.presence(new.is_available, new.last_seen_at, v_busy,
                                                 private.setting_interval('presence.online_window'), now()) end),
      'status_changed', 'mechanics:presence', true);
  end if;
  return null;
end
$$;
revoke execute on function private.tg_mechanics__broadcast_presence() from public;
drop trigger if exists _300_broadcast_presence on public.mechanics;
create trigger _300_broadcast_presence after update of is_available, status on public.mechanics
  for each row execute function private.tg_mechanics__broadcast_presence();

create or replace function private.tg_mechanic_commitments__broadcast_presence() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_mechanic public.mechanics;
  v_presence text;
begin
  if (tg_op = 'INSERT' and new.status = 'in_progress')
     or (tg_op = 'UPDATE' and (old.status = 'in_progress') <> (new.status = 'in_progress')) then
    if new.status = 'in_progress' then
      -- busy whatever the mechanic's availability and heartbeat: nothing to read (every accept)
      v_presence := private.presence(null, null, true, null, now());
    else
      select * into v_mechanic from public.mechanics where id = new.mechanic_id;
      v_presence := private.presence(v_mechanic.is_available, v_mechanic.last_seen_at, false,
                                     private.setting_interval('presence.online_window'), now());
    end if;
    perform realtime.send(jsonb_build_object('mechanic_id', new.mechanic_id, 'presence', v_presence),
                          'status_changed', 'mechanics:presence', true);
  end if;
  return null;
end
$$;
revoke execute on function private.tg_mechanic_commitments__broadcast_presence() from public;
drop trigger if exists _300_broadcast_presence on public.mechanic_commitments;
create trigger _300_broadcast_presence after insert or update of status on public.mechanic_commitments
  for each row execute function private.tg_mechanic_commitments__broadcast_presence();
-- <<< functions_sql matching/presence.sql

-- >>> functions_sql micro/caps.sql sha256=09d21b2135fa52edd7a9e0f23450755c2393a33a9ad0d19d54a0cc643a10a10a
-- Micro-sessions: effective settings, minutes used per local day, can_accept_session, the
-- accept-time check and reservation, settlement at the end.

-- ---------------------------------------------------------------------------------------------
-- Effective settings and usage
-- ---------------------------------------------------------------------------------------------
-- The mechanic's daily micro cap: its own, else its workshop's default, else the platform's.
create or replace function private.micro_cap(p_mechanic_id uuid) returns int
language sql stable security definer set search_path = ''
as $$
  select coalesce(m.daily_micro_minutes_cap, o.default_daily_micro_cap, private.setting_int('micro.daily_cap_minutes'))
  from public.mechanics m left join public.organizations o on o.id = m.organization_id
  where m.id = p_mechanic_id
$$;
revoke execute on function private.micro_cap(uuid) from public;
grant execute on function private.micro_cap(uuid) to authenticated, service_role;

-- Micro minutes used on the mechanic's current local day (settled minutes, else reserved ones).
create or replace function private.micro_minutes_used(p_mechanic_id uuid, p_now timestamptz default now())
returns int
language sql stable security definer set search_path = ''
as $$
  select coalesce(sum(coalesce(u.actual_minutes, u.reserved_minutes)), 0)::int
  from public.micro_minute_usage u join public.mechanics m on m.id = u.mechanic_id
  where u.mechanic_id = p_mechanic_id and u.local_day = (p_now at time zone m.timezone)::date
$$;
revoke execute on function private.micro_minutes_used(uuid, timestamptz) from public;
grant execute on function private.micro_minutes_used(uuid, timestamptz) to authenticated, service_role;

-- The micro-session rules, once, on a mechanic's row: why it may not take a session of p_minutes
-- (null: it may), and the micro minutes it has left on its local day (counted for a micro session,
-- or for any when p_count). Read by micro_eligibility (ids) and by the accept (the locked row).
create or replace function private.micro_refusal(
  p_m public.mechanics, p_micro boolean, p_minutes int, p_now timestamptz, p_count boolean default false,
  out reason text, out minutes_remaining int
)
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_o public.organizations;
begin
  if p_micro or p_count then
    if p_m.organization_id is not null then
      select * into v_o from public.organizations where id = p_m.organization_id;
    end if;
    -- the cap: the mechanic's own, else its workshop's default, else the platform's (micro_cap)
    minutes_remaining := greatest(
      coalesce(p_m.daily_micro_minutes_cap, v_o.default_daily_micro_cap, private.setting_int('micro.daily_cap_minutes'))
      - (select coalesce(sum(coalesce(u.actual_minutes, u.reserved_minutes)), 0)::int
         from public.micro_minute_usage u
         where u.mechanic_id = p_m.id and u.local_day = (p_now at time zone p_m.timezone)::date), 0);
  end if;
  reason := case
    when p_m.status <> 'approved' or not p_m.can_accept_sessions then 'not_approved'
    when not p_micro then case when p_m.participation_mode = 'micro_only' then 'participation_mode' end
    when p_m.participation_mode = 'full_only' then 'participation_mode'
    when v_o.id is not null and not v_o.micro_sessions_enabled then 'workshop_micro_disabled'
    -- Workshop mechanics take micro sessions only on shift; independent ones any time.
    when p_m.mechanic_type = 'workshop_affiliated' and not p_m.currently_on_shift then 'not_on_shift'
    when v_o.id is not null and p_minutes > v_o.micro_max_duration then 'longer_than_workshop_maximum'
    when p_minutes > minutes_remaining then 'daily_cap_reached'
  end;
end
$$;
revoke execute on function private.micro_refusal(public.mechanics, boolean, int, timestamptz, boolean) from public;
grant execute on function private.micro_refusal(public.mechanics, boolean, int, timestamptz, boolean) to service_role;

-- The micro-session rules, as data: {can_accept, reason, minutes_remaining}.
create or replace function private.micro_eligibility(
  p_mechanic_id uuid, p_duration_type text, p_minutes int, p_now timestamptz default now()
) returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_m public.mechanics;
  v_r record;
begin
  select * into v_m from public.mechanics where id = p_mechanic_id;
  if not found then
    return jsonb_build_object('can_accept', false, 'reason', 'not_a_mechanic', 'minutes_remaining', 0);
  end if;
  select * into v_r from private.micro_refusal(v_m, p_duration_type = 'micro', p_minutes, p_now, true);
  return jsonb_build_object('can_accept', v_r.reason is null, 'reason', v_r.reason,
                            'minutes_remaining', v_r.minutes_remaining);
end
$$;
revoke execute on function private.micro_eligibility(uuid, text, int, timestamptz) from public;
grant execute on function private.micro_eligibility(uuid, text, int, timestamptz) to service_role;

-- can_accept_session: p_session_type is a duration type (micro / standard /
-- extended) or a session type (chat / video / diagnostic, which are full sessions). The mechanic
-- itself, its workshop's owners and admins, and platform admins may ask.
create or replace function public.can_accept_session(
  p_mechanic_id uuid, p_session_type text, p_duration_minutes int
) returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
begin
  if p_mechanic_id is null or p_session_type is null or p_duration_minutes is null
     or p_duration_minutes < 1 or p_duration_minutes > 480
     or p_session_type not in ('micro', 'standard', 'extended', 'chat', 'video', 'diagnostic') then
    perform private.raise_error('invalid_input',
      'p_session_type is micro/standard/extended (or chat/video/diagnostic); minutes 1..480');
  end if;
  if p_mechanic_id <> v_uid and not private.is_admin()
     and not exists (select 1 from public.mechanics m where m.id = p_mechanic_id
                     and m.organization_id in (select private.my_admin_org_ids())) then
    perform private.raise_error('not_allowed', 'only the mechanic, its workshop and admins may ask');
  end if;
  return private.micro_eligibility(p_mechanic_id, case when p_session_type = 'micro' then 'micro' else 'full' end,
                                   p_duration_minutes, now());
end
$$;
revoke execute on function public.can_accept_session(uuid, text, int) from public, anon;
grant execute on function public.can_accept_session(uuid, text, int) to authenticated, service_role;

-- Called by private.assign_request with the mechanic's row locked and the session row its update
-- returned: refuses what the micro rules forbid (micro_refusal, on the rows in hand) and reserves the
-- planned minutes of a micro session on the mechanic's local day (so concurrent accepts can never
-- exceed the cap). A refusal carries micro_eligibility's answer as its detail. The caller records
-- on_shift in its own update of the session.
create or replace function private.check_and_reserve_accept_rows(
  p_m public.mechanics, p_s public.sessions, p_now timestamptz
) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_reason text := (private.micro_refusal(p_m, p_s.duration_type = 'micro', p_s.planned_minutes, p_now)).reason;
begin
  if v_reason is not null then
    perform private.raise_error('session_not_eligible', format('cannot take this session: %s', v_reason),
      private.micro_eligibility(p_m.id, case when p_s.duration_type = 'micro' then 'micro' else 'full' end,
                                p_s.planned_minutes, p_now)::text);
  end if;
  if p_s.duration_type = 'micro' then
    insert into public.micro_minute_usage (session_id, mechanic_id, local_day, reserved_minutes)
    values (p_s.id, p_m.id, (p_now at time zone p_m.timezone)::date, p_s.planned_minutes)
    on conflict (session_id) do update
    set mechanic_id = excluded.mechanic_id, local_day = excluded.local_day,
        reserved_minutes = excluded.reserved_minutes, actual_minutes = null, settled_at = null;
  end if;
end
$$;
revoke execute on function private.check_and_reserve_accept_rows(public.mechanics, public.sessions, timestamptz)
  from public;
grant execute on function private.check_and_reserve_accept_rows(public.mechanics, public.sessions, timestamptz)
  to service_role;

-- Lifecycle step (core/lifecycle.sql, and the release in public.cancel_request): a completed micro
-- session counts its actual minutes (never more than it was allowed, planned + extensions); a
-- cancelled or released one counts nothing. The open shift's counters grow as sessions end.
drop trigger if exists _420_micro_settle on public.sessions;
drop function if exists private.tg_sessions__micro_settle();
create or replace function private.micro_settle(p_session_id uuid, p_now timestamptz default now()) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_s public.sessions;
  v_minutes int;
begin
  select * into v_s from public.sessions where id = p_session_id;
  if v_s.status = 'completed' then
    v_minutes := least(coalesce(v_s.duration_minutes, 0), v_s.planned_minutes + v_s.extension_minutes);
    if v_s.duration_type = 'micro' then
      update public.micro_minute_usage set actual_minutes = v_minutes, settled_at = p_now
      where session_id = v_s.id;
    end if;
    if v_s.on_shift then
      update public.mechanic_shift_logs l
      set micro_sessions_taken = l.micro_sessions_taken + (v_s.duration_type = 'micro')::int,
          micro_minutes_used = l.micro_minutes_used + case when v_s.duration_type = 'micro' then v_minutes else 0 end,
          full_sessions_taken = l.full_sessions_taken + (v_s.duration_type <> 'micro')::int
      where l.mechanic_id = v_s.mechanic_id and l.clock_out_at is null;
    end if;
  elsif v_s.status in ('cancelled', 'pending') then  -- cancelled, or released back to pending
    update public.micro_minute_usage set actual_minutes = 0, settled_at = p_now where session_id = v_s.id;
  end if;
end
$$;
revoke execute on function private.micro_settle(uuid, timestamptz) from public;
grant execute on function private.micro_settle(uuid, timestamptz) to service_role;
-- <<< functions_sql micro/caps.sql

-- >>> functions_sql rooms/timers.sql sha256=5265ead1f8b4bfd63c4236d6fc0d07afe4bc0053d21060682f6d557b921261c8
-- Rooms: deadlines and timers.

-- ---------------------------------------------------------------------------------------------
-- Deadlines and timers
-- ---------------------------------------------------------------------------------------------
-- A session that goes live gets its deadline. Kept as a trigger: the deadline is a pure
-- consequence of the status, started_at and extension_minutes columns, and every path that starts
-- a session or grants an extension (RPC, LiveKit webhook, reconcile, payments) would otherwise
-- have to repeat the formula.
-- The triggers' WHEN clauses repeat their functions' conditions, so PostgreSQL does not call
-- them on the other changes of status (an accept, a release, an end).
create or replace function private.tg_sessions__deadline() returns trigger
language plpgsql set search_path = ''
as $$
begin
  if new.status = 'live' and (old.status is distinct from 'live' or new.extension_minutes <> old.extension_minutes) then
    new.deadline_at := coalesce(new.started_at, now())
                       + make_interval(mins => new.planned_minutes + new.extension_minutes);
  end if;
  return new;
end
$$;
revoke execute on function private.tg_sessions__deadline() from public;
drop trigger if exists _110_deadline on public.sessions;
create trigger _110_deadline before update of status, extension_minutes on public.sessions
  for each row
  when (new.status = 'live' and (old.status is distinct from 'live' or new.extension_minutes <> old.extension_minutes))
  execute function private.tg_sessions__deadline();

-- A change of deadline is announced as `timer` to the session's participants. A trigger: it is a
-- pure consequence of the column (set by _110_deadline, or by an extension), whoever changed it.
drop trigger if exists _310_rooms on public.sessions;
drop function if exists private.tg_sessions__rooms();
create or replace function private.tg_sessions__timer() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if new.deadline_at is distinct from old.deadline_at and new.deadline_at is not null then
    perform realtime.send(
      jsonb_build_object('session_id', new.id, 'started_at', new.started_at, 'deadline_at', new.deadline_at,
                         'planned_minutes', new.planned_minutes, 'extension_minutes', new.extension_minutes,
                         'server_now', now()),
      'timer', 'session:' || new.id::text, true);
  end if;
  return null;
end
$$;
revoke execute on function private.tg_sessions__timer() from public;
drop trigger if exists _310_timer on public.sessions;
create trigger _310_timer after update of status, deadline_at on public.sessions
  for each row
  when (new.deadline_at is distinct from old.deadline_at and new.deadline_at is not null)
  execute function private.tg_sessions__timer();

-- Lifecycle step (core/lifecycle.sql): a session that had a room (it was waiting or live) and
-- ended: close the room, through the outbox, once.
create or replace function private.rooms_on_session_ended(p_session_id uuid, p_from public.session_status)
returns void
language plpgsql security definer set search_path = ''
as $$
begin
  if p_from in ('waiting', 'live') then
    perform private.enqueue('livekit.delete_room', 'livekit.delete_room:' || p_session_id::text,
                            jsonb_build_object('room', 'session-' || p_session_id::text, 'session_id', p_session_id));
  end if;
end
$$;
revoke execute on function private.rooms_on_session_ended(uuid, public.session_status) from public;
grant execute on function private.rooms_on_session_ended(uuid, public.session_status) to service_role;

-- Ends live sessions past their deadline plus the grace; returns how many.
create or replace function private.end_overdue_sessions(p_now timestamptz default now(), p_limit int default 200)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_id uuid;
  v_ended int := 0;
  v_grace interval := private.setting_interval('sessions.deadline_grace');
begin
  for v_id in
    select s.id from public.sessions s
    where s.status = 'live' and s.deadline_at + v_grace <= p_now
    order by s.deadline_at
    limit p_limit
    for update skip locked
  loop
    perform private.complete_session(v_id, null, 'time cap reached', p_now, 'system');
    v_ended := v_ended + 1;
  end loop;
  return jsonb_build_object('ended', v_ended);
end
$$;
revoke execute on function private.end_overdue_sessions(timestamptz, int) from public;
grant execute on function private.end_overdue_sessions(timestamptz, int) to service_role;
-- <<< functions_sql rooms/timers.sql

-- no longer defined in supabase/functions_sql/
drop function if exists private.check_and_reserve_accept(pg_catalog.uuid,pg_catalog.uuid,timestamp with time zone);

reset check_function_bodies;

-- functions_sql-manifest: the state of supabase/functions_sql/ after this migration
-- functions_sql-manifest core/admin.sql sha256=3ffcd3451d9f9aa0ebd9a8065c10592403dd1886d07e32da52a70c4f31ce01d0
-- functions_sql-manifest core/broadcasts.sql sha256=c93578c48e0d8c0c565a87dcb05642e2db63a0c8f168c31dee9dff2d1c798cec
-- functions_sql-manifest core/directory.sql sha256=bc92ebaf83f9d3782a918145c2a44fd3995622dff057f908249c81dd7289c92f
-- functions_sql-manifest core/helpers.sql sha256=fa1872c37c33a27b6875c41ae6e7c365f5d0a366926f2c758b43d0f067205e2e
-- functions_sql-manifest core/lifecycle.sql sha256=085845aef043f282c520acbf6dd067d763d71d82b970c25e6286ab2db6ccd3d1
-- functions_sql-manifest core/rpc.sql sha256=2876d36e295a06aea26ae1ddca03aa678fa2a4ba70eccc349d0267aca1b69427
-- functions_sql-manifest core/sessions.sql sha256=793771d65d0dd71f2e2b9ecb89d90fd77d805cdde6093462533459b5d2484c16
-- functions_sql-manifest core/signup.sql sha256=c1eaadc2d934df2bed3300c53885004a45fe59fb472bdbece20a33b0f704bd17
-- functions_sql-manifest core/transitions.sql sha256=098fdf6854df746cfb9fab11e2976507138ad996dc669984166c96a30e18f979
-- functions_sql-manifest jobs/admin.sql sha256=a431c8c37cae7835a803b49b41130f31e66f3e6dc2910f9e6f350a8b69944b13
-- functions_sql-manifest jobs/emails.sql sha256=6a1bfe3d3111c3552cfbbbd34001e834684b8997e98a0d24984646ed13770216
-- functions_sql-manifest jobs/nudges.sql sha256=c0b8d99bdc129ca4cbc3b46334391a788fcad25bce5fb0c06b4b3a775ffad85a
-- functions_sql-manifest jobs/outbox.sql sha256=2b71c342ff6ea91cdda0c0de9cb671b3d678768aabd67044c635de6c5b65ba86
-- functions_sql-manifest jobs/runs.sql sha256=22697585fd787eecd46440d55f7e68b6096ccbffae106360d2eca48014e3fd98
-- functions_sql-manifest jobs/schedules.sql sha256=092f997db095e599bef8a1b5f156c41e6bd61e1180e33d07c0d3e4f291b2391f
-- functions_sql-manifest jobs/sweep_requests.sql sha256=b71a7b97d2dec4579abcbd95477cd30cdcb2e1eb45123abd343bd2aaf4b2d948
-- functions_sql-manifest matching/eligibility.sql sha256=eff05764dacec6d36fe29bd5115957a4f5b6f99fc84ba99dc8ffc3a8d3e8c7e4
-- functions_sql-manifest matching/keywords.sql sha256=152d4fe0de3480e326b93190271c153a66f37f4f4cbf3b64bcc90821769a37a6
-- functions_sql-manifest matching/listing.sql sha256=1c4eb1fc60a30bc8a6473d2f601769d85979620a89d344f9a4ffa9e93e5186ed
-- functions_sql-manifest matching/metrics.sql sha256=16e0bfa047e423ebe70c19b3ca3e25ca809a7c0649361b46516eccb088b98145
-- functions_sql-manifest matching/presence.sql sha256=421df5980727f44db43fb1f9d2d00e506c103f9cf5a1c41dc5bc75ed7ebdfac7
-- functions_sql-manifest matching/ranking.sql sha256=02e0875522aa2a246c45717eb04ed2a31d77c41ab1a206e6e729d28e42fcb873
-- functions_sql-manifest matching/routing.sql sha256=b3a2f3e4e7eeed9b1c5a4d10136809fb13dd99f0d72fa5018c2384fc8a52a7cf
-- functions_sql-manifest micro/caps.sql sha256=09d21b2135fa52edd7a9e0f23450755c2393a33a9ad0d19d54a0cc643a10a10a
-- functions_sql-manifest micro/clock.sql sha256=3ed971a87065095252709e7157e2617fbcae92b5878ad82d9f0e098532569bc1
-- functions_sql-manifest micro/dashboards.sql sha256=87de41f51896fe6618f4546f3232db8ebc05fe1321b1368be3738ed7ec7adfa9
-- functions_sql-manifest micro/settings.sql sha256=493874142af29110c71f935052e330a06823ec4d0a1eaa08b0c273666ea539fd
-- functions_sql-manifest payments/admin.sql sha256=1e117ff190427ab5d40ab22de5fc00ab39dc4e8c7ae9c0f8063d3463907e2f1a
-- functions_sql-manifest payments/checkout.sql sha256=816b01d9ac96747ba491e3aef36f92c7f70988e1cecb02b68d727e211bd25160
-- functions_sql-manifest payments/connect.sql sha256=a8b79815e5f06ce6f00f3f5f82767bb9579e5e9c5f750338fc5c905c866b306d
-- functions_sql-manifest payments/credit.sql sha256=46ca316d088673f86ba57da14e97a14d761a4570debc1f3ad5d74e2538deb54f
-- functions_sql-manifest payments/helpers.sql sha256=564335851c5012a83791aa07b04ab1e2be627799d5b7fb91e995d57776037964
-- functions_sql-manifest payments/integrity.sql sha256=53638ac80faedb77c2e9dfcb8a44542f7fea7660de2751adb6fd25577b9c90e0
-- functions_sql-manifest payments/refunds.sql sha256=4edb68f527fb1003c755f4ec54da1214e1e63810003107ad81db117692e51fb7
-- functions_sql-manifest payments/settlement.sql sha256=0735e958fe9a2a1d5c6876e38fe4deb0f07c6b6b79694bf34d016d43d92462d5
-- functions_sql-manifest payments/stripe_events.sql sha256=e9afa113c50d272f865dcc0fb91ab7698503b2241c4381c27b94dd8de600e7bd
-- functions_sql-manifest payments/stripe_worker.sql sha256=1782c4903cee22796340dbe8043d1ae0f3b1446280d7d4259f6bda91cc80fe6c
-- functions_sql-manifest rooms/access.sql sha256=a07718bc391f20859bd2562f9ed876e7465f94d1363c6673677a15292db0ce36
-- functions_sql-manifest rooms/extensions.sql sha256=1b876e75a5550a87cb0fb6faf27a3554da0cd294647baccaa9c6df91b3f18939
-- functions_sql-manifest rooms/livekit_events.sql sha256=b63917c708016a2c5b78a960c3e9bbce14be641ad2a8278f0f213df60c70fe78
-- functions_sql-manifest rooms/timers.sql sha256=5265ead1f8b4bfd63c4236d6fc0d07afe4bc0053d21060682f6d557b921261c8
-- functions_sql-manifest scheduling/availability_rpc.sql sha256=6ba1e8bdbaf284ff3c92a76157bc70f073d3a842761f80369e14aa6cebf35514
-- functions_sql-manifest scheduling/booking_rpc.sql sha256=e5ff81674f7b6982fc33b2124ebe6ca52d85fd1deb3c169b31ebdcbb7b887b1c
-- functions_sql-manifest scheduling/calendar.sql sha256=6100fcc60a2a22bf1e09c2b682833fb40ba154ad5e9064b7c0bcd8c53b3a8324
-- functions_sql-manifest scheduling/changes.sql sha256=65b5f8b1f79d134e4a1afbf22d4c5f9956acdb7530b68fbd44585499e6bb598e
-- functions_sql-manifest scheduling/committed_time.sql sha256=ddd38c89b02e59607f7f40768eae0c22b177f351729f61bf8b9c6c5b3784f553
-- functions_sql-manifest scheduling/holds.sql sha256=b5c8d45faa65a01d118217605eaa7aeb6d386c0a8c1d9377135c2610cfe43b1f
-- functions_sql-manifest scheduling/jobs.sql sha256=0e6312d573231b426c54900221c5b0ecbf53894ff7a9f634acf5d59fec14b64a
-- functions_sql-manifest scheduling/open_time.sql sha256=1825042aaf3c81077d65b47f47ae38afe1173a8b9ea12e338de9fc6041f5513c
-- functions_sql-manifest scheduling/reminders.sql sha256=025401df24f13a2de6d28c5ef71abd2134b287a87e25f0a98b395e69bc743734
-- functions_sql-manifest scheduling/rules.sql sha256=77e8204836c14debf06ee1933b26252a7fee4d3089fe7720ddf73d0adbed1af3
