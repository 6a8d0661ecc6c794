-- functions_sql_baseline: supabase/functions_sql/ as of this migration, written by `autodoctor db commit`.
-- Whole files, re-runnable, in path order; then the drops of what they no longer define.
-- Edit the files in supabase/functions_sql/, never this migration (see docs/migrations.md).
set check_function_bodies = off;

-- >>> functions_sql core/admin.sql sha256=3ffcd3451d9f9aa0ebd9a8065c10592403dd1886d07e32da52a70c4f31ce01d0
-- Core admin RPCs: mechanic status, manual assignment, force-ending a session.

-- ---------------------------------------------------------------------------------------------
-- Admin RPCs
-- ---------------------------------------------------------------------------------------------
create or replace function private.require_admin() returns uuid
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
begin
  if not private.is_admin() then
    perform private.raise_error('not_allowed', 'admins only');
  end if;
  return v_uid;
end
$$;
revoke execute on function private.require_admin() from public;
grant execute on function private.require_admin() to authenticated, service_role;

create or replace function public.admin_set_mechanic_status(p_mechanic_id uuid, p_status text) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_status public.mechanic_status;
  v_row public.mechanics;
begin
  perform private.require_admin();
  if p_mechanic_id is null or p_status is null
     or p_status not in ('pending', 'approved', 'suspended') then
    perform private.raise_error('invalid_input', 'p_status must be pending, approved or suspended');
  end if;
  v_status := p_status::public.mechanic_status;
  update public.mechanics
  set status = v_status,
      approved_at = case when v_status = 'approved' then coalesce(approved_at, now()) else approved_at end,
      is_available = case when v_status = 'approved' then is_available else false end
  where id = p_mechanic_id
  returning * into v_row;
  if not found then
    perform private.raise_error('not_found', 'no such mechanic');
  end if;
  return jsonb_build_object('mechanic_id', v_row.id, 'status', v_row.status, 'approved_at', v_row.approved_at);
end
$$;
revoke execute on function public.admin_set_mechanic_status(uuid, text) from public, anon;
grant execute on function public.admin_set_mechanic_status(uuid, text) to authenticated, service_role;

create or replace function public.admin_assign_request(p_request_id uuid, p_mechanic_id uuid) returns jsonb
language plpgsql security definer set search_path = ''
as $$
begin
  perform private.require_admin();
  if p_request_id is null or p_mechanic_id is null then
    perform private.raise_error('invalid_input', 'p_request_id and p_mechanic_id are required');
  end if;
  perform private.set_actor('admin', 'assigned by an admin');
  return private.assign_request(p_request_id, p_mechanic_id, now(), true);
end
$$;
revoke execute on function public.admin_assign_request(uuid, uuid) from public, anon;
grant execute on function public.admin_assign_request(uuid, uuid) to authenticated, service_role;

-- A live session is completed (the work happened); one not yet started is cancelled.
create or replace function public.admin_force_end_session(p_session_id uuid, p_reason text) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_reason text;
  v_status public.session_status;
begin
  perform private.require_admin();
  v_reason := private.check_text('p_reason', p_reason, true);
  perform private.require_arg('p_session_id', p_session_id);
  select status into v_status from public.sessions where id = p_session_id for update;
  if not found then
    perform private.raise_error('not_found', 'no such session');
  end if;
  if v_status = 'live' then
    return private.complete_session(p_session_id, null, v_reason, now(), 'admin');
  elsif v_status in ('pending', 'scheduled', 'waiting') then
    perform private.cancel_session(p_session_id, v_reason, now(), 'admin');
    return jsonb_build_object('session_id', p_session_id, 'status', 'cancelled');
  end if;
  perform private.raise_error('invalid_transition', format('the session is already %s', v_status));
  return null;
end
$$;
revoke execute on function public.admin_force_end_session(uuid, text) from public, anon;
grant execute on function public.admin_force_end_session(uuid, text) to authenticated, service_role;
-- <<< functions_sql core/admin.sql

-- >>> functions_sql core/broadcasts.sql sha256=4273cae87264abe2ae314a241f5498dcf154f8a87832d657e0405886f5b673ce
-- Core Realtime broadcasts of requests and sessions.

-- ---------------------------------------------------------------------------------------------
-- Realtime broadcasts, sent inside the transaction that made the change (lost if it rolls back).
-- Payloads carry ids and card fields only: never an email, phone or address.
-- ---------------------------------------------------------------------------------------------
create or replace function private.tg_session_requests__broadcast() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_card jsonb := jsonb_build_object(
    'request_id', new.id, 'session_id', new.session_id, 'session_type', new.session_type,
    'plan_code', new.plan_code, 'specialist', new.specialist, 'vehicle_make', new.vehicle_make,
    'vehicle_model', new.vehicle_model, 'vehicle_year', new.vehicle_year, 'concern', left(new.concern, 140),
    'preferred_mechanic_id', new.preferred_mechanic_id, 'created_at', new.created_at);
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

-- >>> functions_sql core/directory.sql sha256=bc92ebaf83f9d3782a918145c2a44fd3995622dff057f908249c81dd7289c92f
-- The public mechanic directory.

-- ---------------------------------------------------------------------------------------------
-- Views
-- ---------------------------------------------------------------------------------------------
-- The public mechanic directory: approved mechanics, no contact or payout details.
create or replace view public.mechanic_directory with (security_invoker = true) as
select m.id, m.display_name, m.photo_url, m.bio, m.years_experience, m.specialties, m.brand_specializations,
       m.is_brand_specialist, m.service_keywords, m.city, m.country, m.timezone, m.mechanic_type,
       m.rating_avg, m.rating_count, m.completed_sessions, m.is_available, m.last_seen_at
from public.mechanics m
where m.status = 'approved';
grant select on public.mechanic_directory to anon, authenticated, service_role;
comment on view public.mechanic_directory is 'Approved mechanics as customers (and anon) may see them.';
-- <<< functions_sql core/directory.sql

-- >>> functions_sql core/helpers.sql sha256=3a77982775e195585c47d130d06d472ccdc57afd4496628b611918efbfa36ef8
-- Core helpers: who acts (for the audit), the caller's user id, checks of free text, updated_at.

-- ---------------------------------------------------------------------------------------------
-- Small helpers
-- ---------------------------------------------------------------------------------------------
-- Who acts in this transaction, for the audit: set by RPCs (transaction-local). The lifecycle
-- functions (core/lifecycle.sql) take the actor as a parameter and set it here themselves.
create or replace function private.set_actor(p_role text, p_reason text default null) returns void
language sql volatile set search_path = ''
as $$
  select set_config('autodoctor.actor_role', p_role, true), set_config('autodoctor.reason', coalesce(p_reason, ''), true);
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

-- >>> functions_sql core/lifecycle.sql sha256=815b45d37248758734d48e8deb38a716f2235832343c8fafc41ee983ac3ef7f3
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
  for each row execute function private.tg__lifecycle_only();
drop trigger if exists _105_lifecycle_only on public.session_requests;
create trigger _105_lifecycle_only before update of status on public.session_requests
  for each row execute function private.tg__lifecycle_only();

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

-- >>> functions_sql core/rpc.sql sha256=2876d36e295a06aea26ae1ddca03aa678fa2a4ba70eccc349d0267aca1b69427
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
begin
  if p_plan_code is null or p_intake_id is null then
    perform private.raise_error('invalid_input', 'p_plan_code and p_intake_id are required');
  end if;
  v_price := private.plan_price_cents(p_plan_code, p_specialist);
  if v_price is null then
    perform private.raise_error('not_found', format('no active plan %L', left(p_plan_code, 60)));
  end if;
  if v_price > 0 then
    -- Validate everything else first so the client learns of a bad intake before paying.
    perform 1 from public.intakes where id = p_intake_id and customer_id = v_uid;
    if not found then
      perform private.raise_error('not_found', 'no such intake');
    end if;
    perform private.raise_error('payment_required',
      format('plan %s costs %s cents: book it through create_checkout', p_plan_code, v_price));
  end if;
  perform private.set_actor('customer');
  return private.create_session_request(v_uid, p_plan_code, p_intake_id, p_vehicle_id, p_preferred_mechanic_id,
                                        p_specialist, 0, now());
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
  select status into v_status from public.session_requests where id = p_request_id;
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
        format('a %s request cannot be cancelled by the customer', v_request.status));
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
  update public.intakes set status = 'pending' where id = v_session.intake_id;
  return jsonb_build_object('request_id', v_request.id, 'session_id', v_session.id, 'status', 'pending');
end
$$;
revoke execute on function public.cancel_request(uuid, text) from public, anon;
grant execute on function public.cancel_request(uuid, text) to authenticated, service_role;

create or replace function public.start_session(p_session_id uuid) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_session public.sessions;
begin
  v_session := private.lock_session_as_participant(p_session_id, v_uid);
  if v_session.status <> 'waiting' then
    perform private.raise_error('invalid_transition', format('a %s session cannot be started', v_session.status));
  end if;
  perform private.set_actor(case when v_session.customer_id = v_uid then 'customer' else 'mechanic' end);
  update public.sessions set status = 'live', started_at = now(), status_changed_at = now()
  where id = p_session_id returning * into v_session;
  return jsonb_build_object('session_id', v_session.id, 'status', 'live', 'started_at', v_session.started_at);
end
$$;
revoke execute on function public.start_session(uuid) from public, anon;
grant execute on function public.start_session(uuid) to authenticated, service_role;

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
    perform private.raise_error('invalid_transition', format('a %s session cannot be ended', v_session.status));
  end if;
  if v_session.mechanic_id = v_uid then
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

-- >>> functions_sql core/sessions.sql sha256=793771d65d0dd71f2e2b9ecb89d90fd77d805cdde6093462533459b5d2484c16
-- Core building blocks behind the RPCs: creating a session with its request, plan prices,
-- assigning a request to a mechanic, releasing held time. Completing and cancelling a session are
-- in core/lifecycle.sql.

-- ---------------------------------------------------------------------------------------------
-- Private building blocks (also used by payments, matching and jobs)
-- ---------------------------------------------------------------------------------------------

-- The intake a customer books with, locked (two bookings of one intake serialize here): it must
-- be the customer's and still `new`, and the vehicle (given, else the intake's) the customer's.
create or replace function private.check_booking_intake(p_customer_id uuid, p_intake_id uuid, p_vehicle_id uuid)
returns public.intakes
language plpgsql security definer set search_path = ''
as $$
declare
  v_intake public.intakes;
begin
  select * into v_intake from public.intakes where id = p_intake_id and customer_id = p_customer_id for update;
  if not found then
    perform private.raise_error('not_found', 'no such intake');
  end if;
  if v_intake.status <> 'new' then
    perform private.raise_error('conflict', format('the intake is %s, not new', v_intake.status));
  end if;
  if coalesce(p_vehicle_id, v_intake.vehicle_id) is not null
     and not exists (select 1 from public.vehicles
                     where id = coalesce(p_vehicle_id, v_intake.vehicle_id) and owner_id = p_customer_id) then
    perform private.raise_error('not_found', 'no such vehicle');
  end if;
  return v_intake;
end
$$;
revoke execute on function private.check_booking_intake(uuid, uuid, uuid) from public;
grant execute on function private.check_booking_intake(uuid, uuid, uuid) to service_role;

-- A preferred mechanic must be an approved mechanic other than the customer.
create or replace function private.check_preferred_mechanic(p_customer_id uuid, p_mechanic_id uuid) returns void
language plpgsql stable security definer set search_path = ''
as $$
begin
  if p_mechanic_id is null then
    return;
  end if;
  if p_mechanic_id = p_customer_id then
    perform private.raise_error('invalid_input', 'the preferred mechanic cannot be the customer');
  end if;
  if not exists (select 1 from public.mechanics where id = p_mechanic_id and status = 'approved') then
    perform private.raise_error('not_found', 'no such approved mechanic');
  end if;
end
$$;
revoke execute on function private.check_preferred_mechanic(uuid, uuid) from public;
grant execute on function private.check_preferred_mechanic(uuid, uuid) to service_role;

-- Creates the session (pending) and its request (pending) for a customer, after checking the
-- plan, the intake, the vehicle and the preferred mechanic. The price is what the caller charged
-- (free, credits or a paid checkout); the session records it.
create or replace function private.create_session_request(
  p_customer_id uuid,
  p_plan_code text,
  p_intake_id uuid,
  p_vehicle_id uuid,
  p_preferred_mechanic_id uuid,
  p_specialist boolean,
  p_price_cents int,
  p_now timestamptz default now()
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_plan public.service_plans;
  v_intake public.intakes;
  v_vehicle public.vehicles;
  v_session_id uuid;
  v_request_id uuid;
begin
  if p_customer_id is null or p_plan_code is null or p_intake_id is null or p_price_cents is null
     or p_price_cents < 0 then
    perform private.raise_error('invalid_input', 'customer, plan, intake and price are required');
  end if;
  select * into v_plan from public.service_plans where code = p_plan_code and active;
  if not found then
    perform private.raise_error('not_found', format('no active plan %L', left(p_plan_code, 60)));
  end if;
  v_intake := private.check_booking_intake(p_customer_id, p_intake_id, p_vehicle_id);
  select * into v_vehicle from public.vehicles where id = coalesce(p_vehicle_id, v_intake.vehicle_id);
  perform private.check_preferred_mechanic(p_customer_id, p_preferred_mechanic_id);

  insert into public.sessions (customer_id, plan_code, session_type, duration_type, planned_minutes, price_cents,
                               currency, specialist, intake_id, vehicle_id, status, status_changed_at)
  values (p_customer_id, v_plan.code, v_plan.session_type, v_plan.duration_type, v_plan.minutes, p_price_cents,
          v_plan.currency, coalesce(p_specialist, false), v_intake.id, v_vehicle.id, 'pending', p_now)
  returning id into v_session_id;

  insert into public.session_requests (session_id, customer_id, plan_code, session_type, status, status_changed_at,
                                       preferred_mechanic_id, specialist, vehicle_make, vehicle_model, vehicle_year,
                                       concern, created_at)
  values (v_session_id, p_customer_id, v_plan.code, v_plan.session_type, 'pending', p_now, p_preferred_mechanic_id,
          coalesce(p_specialist, false), coalesce(v_vehicle.make, v_intake.vehicle_make),
          coalesce(v_vehicle.model, v_intake.vehicle_model), coalesce(v_vehicle.year, v_intake.vehicle_year),
          v_intake.concern, p_now)
  returning id into v_request_id;

  update public.intakes set status = 'pending', plan_code = v_plan.code where id = v_intake.id;
  return jsonb_build_object('session_id', v_session_id, 'request_id', v_request_id);
end
$$;
revoke execute on function private.create_session_request(uuid, text, uuid, uuid, uuid, boolean, int, timestamptz)
  from public;
grant execute on function private.create_session_request(uuid, text, uuid, uuid, uuid, boolean, int, timestamptz)
  to service_role;

-- The price of a plan for this request: catalog price plus the specialist surcharge.
create or replace function private.plan_price_cents(p_plan_code text, p_specialist boolean) returns int
language sql stable security definer set search_path = ''
as $$
  select p.price_cents + case when coalesce(p_specialist, false)
                              then private.setting_int('pricing.specialist_surcharge_cents') else 0 end
  from public.service_plans p where p.code = p_plan_code and p.active
$$;
revoke execute on function private.plan_price_cents(text, boolean) from public;
grant execute on function private.plan_price_cents(text, boolean) to service_role;

-- Gives request `p_request_id` to mechanic `p_mechanic_id`: the first valid call wins.
-- The mechanic's row lock serializes one mechanic's accepts (so the busy check is exact and the
-- unique index on in-progress commitments never has to break a tie); the request is taken with
-- one conditional update, so of many mechanics racing for one request exactly one wins.
drop function if exists private.assign_request(uuid, uuid, timestamptz);
create or replace function private.assign_request(
  p_request_id uuid, p_mechanic_id uuid, p_now timestamptz default now(), p_bypass_window boolean default false
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_mechanic public.mechanics;
  v_request public.session_requests;
  v_session public.sessions;
begin
  if p_request_id is null or p_mechanic_id is null then
    perform private.raise_error('invalid_input', 'request and mechanic are required');
  end if;
  -- no key update: serializes this mechanic's accepts without blocking foreign-key checks on the row
  select * into v_mechanic from public.mechanics where id = p_mechanic_id for no key update;
  if not found or v_mechanic.status <> 'approved' or not v_mechanic.can_accept_sessions then
    perform private.raise_error('not_allowed', 'only an approved mechanic who may accept sessions can take requests');
  end if;
  if exists (select 1 from public.mechanic_commitments c
             where c.mechanic_id = p_mechanic_id and c.status = 'in_progress') then
    perform private.raise_error('mechanic_busy', 'finish or release your current session first');
  end if;

  -- During a preferred mechanic's exclusive window only that mechanic may take it (admins assign
  -- through p_bypass_window).
  update public.session_requests r
  set status = 'accepted', mechanic_id = p_mechanic_id, accepted_at = p_now, status_changed_at = p_now
  where r.id = p_request_id and r.status in ('pending', 'unattended') and r.customer_id <> p_mechanic_id
    and (p_bypass_window or r.broadcast_at <= p_now or r.preferred_mechanic_id = p_mechanic_id)
  returning * into v_request;
  if not found then
    select * into v_request from public.session_requests where id = p_request_id;
    if not found then
      perform private.raise_error('not_found', 'no such request');
    elsif v_request.customer_id = p_mechanic_id then
      perform private.raise_error('not_allowed', 'a mechanic cannot take its own request');
    elsif v_request.status in ('pending', 'unattended') then
      perform private.raise_error('request_not_available', 'the customer''s preferred mechanic has it first');
    end if;
    perform private.raise_error('request_not_available', format('the request is %s', v_request.status));
  end if;

  -- on_shift: whether it was taken on shift (micro-sessions domain), read from the locked row
  update public.sessions s
  set status = 'waiting', mechanic_id = p_mechanic_id, status_changed_at = p_now,
      on_shift = v_mechanic.currently_on_shift
  where s.id = v_request.session_id and s.status = 'pending'
  returning * into v_session;
  if not found then
    perform private.raise_error('conflict', 'the session of this request is no longer pending');
  end if;

  -- Participation mode, shift and daily micro cap (micro-sessions domain); reserves micro minutes.
  perform private.check_and_reserve_accept_rows(v_mechanic, v_session, p_now);

  insert into public.session_participants (session_id, user_id, role)
  values (v_session.id, v_session.customer_id, 'customer'), (v_session.id, p_mechanic_id, 'mechanic')
  on conflict (session_id, user_id) do nothing;

  insert into public.mechanic_commitments (mechanic_id, kind, status, during, session_id, request_id)
  values (p_mechanic_id, 'on_demand', 'in_progress',
          tstzrange(p_now, p_now + make_interval(mins => v_session.planned_minutes)
                           + private.setting_interval('scheduling.buffer')),
          v_session.id, v_request.id);

  update public.session_offers o
  set status = case when o.mechanic_id = p_mechanic_id then 'accepted'::public.offer_status
                    else 'withdrawn'::public.offer_status end,
      responded_at = case when o.mechanic_id = p_mechanic_id then p_now else o.responded_at end
  where o.request_id = v_request.id and o.status in ('offered', 'queued');
  -- A mechanic who took it from the open feed was offered it when it opened to everyone.
  insert into public.session_offers (request_id, mechanic_id, status, offered_at, responded_at)
  values (v_request.id, p_mechanic_id, 'accepted',
          least(p_now, coalesce((select min(o.offered_at) from public.session_offers o
                                 where o.request_id = v_request.id and o.mechanic_id is null),
                                v_request.broadcast_at, v_request.created_at)), p_now)
  on conflict (request_id, mechanic_id) where mechanic_id is not null
  do update set status = 'accepted', responded_at = p_now;

  update public.intakes set status = 'in_progress' where id = v_session.intake_id;
  return jsonb_build_object('request_id', v_request.id, 'session_id', v_session.id, 'status', 'accepted');
end
$$;
revoke execute on function private.assign_request(uuid, uuid, timestamptz, boolean) from public;
grant execute on function private.assign_request(uuid, uuid, timestamptz, boolean) to service_role;

-- Frees the mechanic's time held for a session.
create or replace function private.release_commitment(
  p_session_id uuid, p_status public.commitment_status, p_now timestamptz default now()
) returns void
language sql security definer set search_path = ''
as $$
  update public.mechanic_commitments c
  set status = p_status,
      during = tstzrange(lower(c.during), greatest(p_now, lower(c.during) + interval '1 microsecond'))
  where c.session_id = p_session_id and c.status in ('held', 'confirmed', 'in_progress');
$$;
revoke execute on function private.release_commitment(uuid, public.commitment_status, timestamptz) from public;
grant execute on function private.release_commitment(uuid, public.commitment_status, timestamptz) to service_role;
-- <<< functions_sql core/sessions.sql

-- >>> functions_sql core/signup.sql sha256=c1eaadc2d934df2bed3300c53885004a45fe59fb472bdbece20a33b0f704bd17
-- ---------------------------------------------------------------------------------------------
-- Signup: profile, admin capability, pending mechanic. Total by design: a failing trigger would
-- block every signup, so user-supplied values are trimmed to what the columns accept.
-- ---------------------------------------------------------------------------------------------
create or replace function private.tg_auth_users__on_signup() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_meta jsonb := coalesce(new.raw_user_meta_data, '{}'::jsonb);
  v_name text := left(nullif(btrim(coalesce(v_meta ->> 'full_name', v_meta ->> 'name', '')), ''), 200);
  v_zone text := v_meta ->> 'timezone';
begin
  if v_zone is null or not private.is_valid_timezone(v_zone) then
    v_zone := 'UTC';
  end if;
  insert into public.profiles (id, full_name, phone, timezone)
  values (new.id, v_name,
          case when new.phone ~ '^\+?[0-9 ()-]{5,32}$' then new.phone end,
          v_zone)
  on conflict (id) do nothing;

  if coalesce(new.raw_app_meta_data ->> 'role', '') = 'admin' then
    insert into private.admins (user_id) values (new.id) on conflict do nothing;
  end if;

  -- Asking to be a mechanic creates a pending application; it grants nothing until approved.
  if v_meta ->> 'account_type' = 'mechanic' then
    insert into public.mechanics (id, display_name, timezone)
    values (new.id, coalesce(left(v_name, 120), left(nullif(split_part(coalesce(new.email, ''), '@', 1), ''), 120), 'Mechanic'),
            v_zone)
    on conflict (id) do nothing;
  end if;
  return new;
end
$$;
revoke execute on function private.tg_auth_users__on_signup() from public;

-- App metadata is set only by the server: keep the admin capability in step with it.
create or replace function private.tg_auth_users__sync_admin() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if coalesce(new.raw_app_meta_data ->> 'role', '') = 'admin' then
    insert into private.admins (user_id) values (new.id) on conflict do nothing;
  else
    delete from private.admins where user_id = new.id;
  end if;
  return new;
end
$$;
revoke execute on function private.tg_auth_users__sync_admin() from public;

drop trigger if exists _100_on_signup on auth.users;
create trigger _100_on_signup after insert on auth.users
  for each row execute function private.tg_auth_users__on_signup();
drop trigger if exists _110_sync_admin on auth.users;
create trigger _110_sync_admin after update of raw_app_meta_data on auth.users
  for each row when (old.raw_app_meta_data is distinct from new.raw_app_meta_data)
  execute function private.tg_auth_users__sync_admin();
-- <<< functions_sql core/signup.sql

-- >>> functions_sql core/transitions.sql sha256=e06258bb0ad614737d56808456f0a990ed475c1e053661e720540207767bed3c
-- Core lifecycles: the allowed changes of status, initial states, and the append-only audit in
-- session_events (every creation and change of status, with its actor).

-- ---------------------------------------------------------------------------------------------
-- Lifecycles (docs/data-model.md): any other change of status fails with invalid_transition (AD006)
-- ---------------------------------------------------------------------------------------------
-- The allowed changes of status, one list for both lifecycles.
create or replace function private.status_transition_allowed(p_entity text, p_from text, p_to text)
returns boolean
language sql immutable set search_path = ''
as $$
  select (p_entity, p_from, p_to) in (
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
    ('session_requests', 'accepted', 'cancelled'))
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
    v_session_id := (to_jsonb(new) ->> 'session_id')::uuid;
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

-- >>> functions_sql jobs/admin.sql sha256=a4f0886a56193d41a2c45144a3b8b64fbf764a8df29314ce2e1add3575594675
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

-- >>> functions_sql jobs/emails.sql sha256=f46bba0114bc68dbcc2d033d2e8ebc7f96ab5793ad23f8761cc2b64528cfc9de
-- Jobs: milestone emails, enqueued in the transaction of the change that causes them.

-- ---------------------------------------------------------------------------------------------
-- Emails: enqueued in the transaction of the change that causes them; rendered and sent by
-- the job worker (shared/email.py). One per (template, session, recipient). The template must be
-- registered (private.email_templates): a typo fails here, in the transaction that caused it.
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

-- >>> functions_sql jobs/nudges.sql sha256=c0b8d99bdc129ca4cbc3b46334391a788fcad25bce5fb0c06b4b3a775ffad85a
-- Jobs: nudges, support alerts and starting notices.

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
-- <<< functions_sql jobs/nudges.sql

-- >>> functions_sql jobs/outbox.sql sha256=bf82864fb2cf3aaf6c77942185c4eebe60c03ddf8575a9446fdb5a79f09b2b13
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
-- <<< functions_sql jobs/outbox.sql

-- >>> functions_sql jobs/runs.sql sha256=22697585fd787eecd46440d55f7e68b6096ccbffae106360d2eca48014e3fd98
-- Jobs: the record of every scheduled run.

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
revoke execute on function private.cron_run_start(text) from public;
revoke execute on function private.cron_run_finish(bigint, boolean, jsonb, text) from public;
grant execute on function private.cron_run_start(text) to service_role;
grant execute on function private.cron_run_finish(bigint, boolean, jsonb, text) to service_role;
-- <<< functions_sql jobs/runs.sql

-- >>> functions_sql jobs/schedules.sql sha256=092f997db095e599bef8a1b5f156c41e6bd61e1180e33d07c0d3e4f291b2391f
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
    when 'sweep_requests' then array['sweep_requests']
    when 'dispatch' then array['dispatch_due']
    when 'nudges' then array['send_nudges']
    when 'session_timers' then array['end_overdue_sessions', 'send_starting_notices', 'expire_holds',
                                     'open_scheduled_sessions']
  end
$$;
revoke execute on function private.job_steps(text) from public;

create or replace function private.run_job_step(p_step text, p_now timestamptz) returns jsonb
language plpgsql security definer set search_path = ''
as $$
begin
  case p_step
    when 'sweep_requests' then return private.sweep_requests(p_now);
    when 'dispatch_due' then return private.dispatch_due(p_now, 200);
    when 'send_nudges' then return private.send_nudges(p_now);
    when 'end_overdue_sessions' then return private.end_overdue_sessions(p_now, 200);
    when 'send_starting_notices' then return private.send_starting_notices(p_now);
    when 'expire_holds' then return private.expire_holds(p_now);
    when 'open_scheduled_sessions' then return private.open_scheduled_sessions(p_now);
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

-- >>> functions_sql jobs/sweep_requests.sql sha256=b71a7b97d2dec4579abcbd95477cd30cdcb2e1eb45123abd343bd2aaf4b2d948
-- Jobs: the request and session sweep (two-tier timeouts). Every sweep claims rows with skip
-- locked and is bounded, so runs may overlap safely.

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
  -- and a paid one refunded (private.expire_request, core/lifecycle.sql).
  for v_id in
    select r.session_id from public.session_requests r
    where r.status in ('pending', 'unattended')
      and r.created_at <= p_now - private.setting_interval('requests.expire_after')
    order by r.created_at
    limit v_limit
    for update skip locked
  loop
    perform private.expire_request(v_id, 'expired: no mechanic accepted within the window', p_now,
                                   'system', 'expired: no mechanic within the window');
    v_expired := v_expired + 1;
  end loop;

  -- Accepted, but the customer never joined within 30 minutes → cancelled; the mechanic is freed.
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
    perform private.cancel_session(v_id, 'the customer did not join within the window', p_now,
                                   'system', 'the customer did not join');
    v_no_show := v_no_show + 1;
  end loop;

  -- Waiting sessions nobody started within 60 minutes → cancelled.
  for v_id in
    select s.id from public.sessions s
    where s.status = 'waiting'
      and s.status_changed_at <= p_now - private.setting_interval('sessions.orphaned_waiting_cancel_after')
    order by s.status_changed_at
    limit v_limit
    for update skip locked
  loop
    perform private.cancel_session(v_id, 'the session was never started', p_now, 'system');
    v_orphaned := v_orphaned + 1;
  end loop;

  return jsonb_build_object('unattended', v_unattended, 'expired', v_expired, 'no_show_cancelled', v_no_show,
                            'orphaned_cancelled', v_orphaned);
end
$$;
revoke execute on function private.sweep_requests(timestamptz, int) from public;
grant execute on function private.sweep_requests(timestamptz, int) to service_role;
-- <<< functions_sql jobs/sweep_requests.sql

-- >>> functions_sql matching/eligibility.sql sha256=eff05764dacec6d36fe29bd5115957a4f5b6f99fc84ba99dc8ffc3a8d3e8c7e4
-- Matching: the eligibility hook used by ranking and routing: the mechanics that may not take a
-- request for reasons other domains own (shifts and micro caps, bookings). Each domain adds its
-- branch here.

create or replace function private.eligibility_exclusions(p_request_id uuid, p_now timestamptz)
returns setof uuid
language sql stable security definer set search_path = ''
as $$
  with r as (  -- the request, and settings read once (not per mechanic row)
    select s.duration_type, s.planned_minutes, private.setting_int('micro.daily_cap_minutes') as default_cap,
           private.setting_interval('scheduling.buffer') as buffer
    from public.session_requests q join public.sessions s on s.id = q.session_id
    where q.id = p_request_id),
  used as (  -- micro minutes per mechanic and local day, around now (any zone's "today")
    select u.mechanic_id, u.local_day, sum(coalesce(u.actual_minutes, u.reserved_minutes)) as minutes
    from public.micro_minute_usage u
    where u.local_day between (p_now - interval '1 day')::date and (p_now + interval '1 day')::date
    group by u.mechanic_id, u.local_day)
  -- micro-sessions: full sessions never reach micro-only mechanics ...
  select m.id from public.mechanics m, r
  where r.duration_type <> 'micro' and m.participation_mode = 'micro_only'
  union all
  -- ... and micro sessions reach only mechanics whose mode, workshop, shift and cap allow them.
  -- Each branch reads only the mechanics it can exclude (partial indexes), not all of them.
  select m.id from public.mechanics m, r
  where r.duration_type = 'micro' and m.participation_mode = 'full_only'
  union all
  select m.id
  from r cross join public.mechanics m
  join public.organizations o on o.id = m.organization_id
  left join used on used.mechanic_id = m.id and used.local_day = (p_now at time zone m.timezone)::date
  where r.duration_type = 'micro' and m.organization_id is not null
    and (not o.micro_sessions_enabled
         or (m.mechanic_type = 'workshop_affiliated' and not m.currently_on_shift)
         or r.planned_minutes > o.micro_max_duration
         or r.planned_minutes > coalesce(m.daily_micro_minutes_cap, o.default_daily_micro_cap, r.default_cap)
                                - coalesce(used.minutes, 0))
  union all
  select m.id  -- mechanics without a workshop who used micro minutes today
  from r cross join used u
  join public.mechanics m on m.id = u.mechanic_id and u.local_day = (p_now at time zone m.timezone)::date
  where r.duration_type = 'micro' and m.organization_id is null
    and r.planned_minutes > coalesce(m.daily_micro_minutes_cap, r.default_cap) - u.minutes
  union all
  select m.id  -- mechanics without a workshop whose own cap is below the request
  from r cross join public.mechanics m
  where r.duration_type = 'micro' and m.organization_id is null
    and m.daily_micro_minutes_cap is not null and m.daily_micro_minutes_cap < r.planned_minutes
  union all
  select m.id  -- the platform default itself is below the request (no own cap, no workshop)
  from r cross join public.mechanics m
  where r.duration_type = 'micro' and r.default_cap < r.planned_minutes
    and m.organization_id is null and m.daily_micro_minutes_cap is null
  union all
  -- scheduling: on time off now, or the on-demand range [now, now + planned + buffer) would run
  -- into a held or booked session (accepting it would fail with schedule_conflict)
  select t.mechanic_id from public.mechanic_time_off t where t.during @> p_now
  union all
  select c.mechanic_id from public.mechanic_commitments c, r
  where (c.status = 'confirmed' or (c.status = 'held' and c.expires_at > p_now))
    and c.during && tstzrange(p_now, p_now + make_interval(mins => r.planned_minutes) + r.buffer)
$$;
revoke execute on function private.eligibility_exclusions(uuid, timestamptz) from public;
grant execute on function private.eligibility_exclusions(uuid, timestamptz) to service_role;
-- <<< functions_sql matching/eligibility.sql

-- >>> functions_sql matching/keywords.sql sha256=152d4fe0de3480e326b93190271c153a66f37f4f4cbf3b64bcc90821769a37a6
-- Matching: keyword extraction and keyword sets as bits over the vocabulary.

-- ---------------------------------------------------------------------------------------------
-- Keywords
-- ---------------------------------------------------------------------------------------------
create or replace function private.extract_keywords(p_text text) returns text[]
language sql stable parallel safe security definer set search_path = ''
as $$
  select coalesce(array_agg(k.keyword order by k.keyword), '{}')
  from public.automotive_keywords k
  where exists (select 1 from unnest(k.patterns) p where lower(coalesce(p_text, '')) ~ p)
$$;
revoke execute on function private.extract_keywords(text) from public;
grant execute on function private.extract_keywords(text) to authenticated, service_role;

-- A set of vocabulary keywords as bits (automotive_keywords.bit_position); unknown words add nothing.
create or replace function private.keyword_bits(p_keywords text[]) returns bit(256)
language sql stable security definer set search_path = ''
as $$
  select coalesce(bit_or((repeat('0', k.bit_position) || '1' || repeat('0', 255 - k.bit_position))::bit(256)),
                  repeat('0', 256)::bit(256))
  from public.automotive_keywords k
  where k.keyword = any (p_keywords)
$$;
revoke execute on function private.keyword_bits(text[]) from public;
grant execute on function private.keyword_bits(text[]) to service_role;

-- The vocabulary changed: recompute the mechanics' keyword bits.
create or replace function private.tg_automotive_keywords__refresh_bits() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  update public.mechanics m set keyword_bits = private.keyword_bits(m.service_keywords)
  where m.keyword_bits is distinct from private.keyword_bits(m.service_keywords);
  return null;
end
$$;
revoke execute on function private.tg_automotive_keywords__refresh_bits() from public;
drop trigger if exists _100_refresh_bits on public.automotive_keywords;
create trigger _100_refresh_bits after insert or update or delete on public.automotive_keywords
  for each statement execute function private.tg_automotive_keywords__refresh_bits();

-- Service keywords are vocabulary words: stored lowercase, trimmed, without duplicates; brand
-- names keep their spelling and get a lowercase copy for matching.
create or replace function private.tg_mechanics__normalize_keywords() returns trigger
language plpgsql set search_path = ''
as $$
begin
  new.service_keywords := coalesce(
    (select array_agg(distinct lower(btrim(k))) from unnest(new.service_keywords) k where btrim(k) <> ''), '{}');
  new.brand_keys := coalesce(
    (select array_agg(distinct lower(btrim(b))) from unnest(new.brand_specializations) b where btrim(b) <> ''), '{}');
  new.keyword_bits := private.keyword_bits(new.service_keywords);
  return new;
end
$$;
revoke execute on function private.tg_mechanics__normalize_keywords() from public;
drop trigger if exists _020_normalize_keywords on public.mechanics;
create trigger _020_normalize_keywords before insert or update of service_keywords, brand_specializations
  on public.mechanics
  for each row execute function private.tg_mechanics__normalize_keywords();

-- Eligibility hook: private.eligibility_exclusions(request, now) (matching/eligibility.sql)
-- gathers the mechanics other domains exclude (shifts and micro caps; scheduling later).
-- <<< functions_sql matching/keywords.sql

-- >>> functions_sql matching/listing.sql sha256=1c4eb1fc60a30bc8a6473d2f601769d85979620a89d344f9a4ffa9e93e5186ed
-- Matching: the available-mechanics listing for customers.

-- ---------------------------------------------------------------------------------------------
-- Available mechanics for customers (the first step of a request): online first, then rating. The average
-- minutes from offer to acceptance come from real history, null when there is none.
-- ---------------------------------------------------------------------------------------------
create or replace function public.available_mechanics(
  p_session_type text default null,
  p_specialist boolean default false,
  p_brand text default null,
  p_city text default null,
  p_limit int default 10
) returns table (
  id uuid, display_name text, photo_url text, rating_avg numeric, rating_count int, completed_sessions int,
  years_experience int, brand_specializations text[], is_brand_specialist boolean, city text, presence text,
  avg_accept_minutes numeric
)
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_window interval := private.setting_interval('presence.online_window');
begin
  perform private.require_user();
  if p_limit is null or p_limit < 1 or p_limit > 100 then
    perform private.raise_error('invalid_input', 'p_limit must be between 1 and 100');
  end if;
  if p_session_type is not null and p_session_type not in ('chat', 'video', 'diagnostic') then
    perform private.raise_error('invalid_input', 'p_session_type must be chat, video or diagnostic');
  end if;
  if char_length(p_brand) > 60 or char_length(p_city) > 120 then
    perform private.raise_error('invalid_input', 'p_brand or p_city is too long');
  end if;
  if coalesce(p_specialist, false) and p_brand is null then
    perform private.raise_error('invalid_input', 'a specialist search needs p_brand');
  end if;
  return query
  with busy as (
    select c.mechanic_id from public.mechanic_commitments c where c.status = 'in_progress'
  ),
  listed as (
    select m.*, private.presence(m.is_available, m.last_seen_at, m.id in (select b.mechanic_id from busy b),
                                 v_window, now()) as presence
    from public.mechanics m
    where m.status = 'approved' and m.can_accept_sessions
      and (not coalesce(p_specialist, false)
           or (m.is_brand_specialist
               and m.brand_keys @> array[lower(btrim(p_brand))]))
      and (p_city is null or m.city_key = lower(btrim(p_city)))
  ),
  page as (
    select l.* from listed l
    order by case l.presence when 'online' then 0 when 'busy' then 1 else 2 end,
             l.rating_avg desc nulls last, l.completed_sessions desc, l.id
    limit p_limit
  )
  select p.id, p.display_name, p.photo_url, p.rating_avg, p.rating_count, p.completed_sessions,
         p.years_experience, p.brand_specializations, p.is_brand_specialist, p.city, p.presence,
         (select round(avg(extract(epoch from (o.responded_at - o.offered_at)) / 60)::numeric, 1)
          from public.session_offers o
          where o.mechanic_id = p.id and o.status = 'accepted' and o.responded_at >= o.offered_at)
  from page p
  order by case p.presence when 'online' then 0 when 'busy' then 1 else 2 end,
           p.rating_avg desc nulls last, p.completed_sessions desc, p.id;
end
$$;
revoke execute on function public.available_mechanics(text, boolean, text, text, int) from public, anon;
grant execute on function public.available_mechanics(text, boolean, text, text, int) to authenticated, service_role;
-- <<< functions_sql matching/listing.sql

-- >>> functions_sql matching/metrics.sql sha256=16e0bfa047e423ebe70c19b3ca3e25ca809a7c0649361b46516eccb088b98145
-- Matching: admin metrics.

-- ---------------------------------------------------------------------------------------------
-- Admin metrics (the marketplace's success metrics), by UTC day. security_invoker: rows follow RLS, so
-- admins see the whole platform.
-- ---------------------------------------------------------------------------------------------
drop view if exists public.admin_matching_daily;
create view public.admin_matching_daily with (security_invoker = true) as
select date_trunc('day', r.created_at at time zone 'UTC')::date as day,
       count(*) as requests,
       round(avg((r.preferred_mechanic_id is not null)::int)::numeric, 3) as chosen_mechanic_share,
       round((avg(extract(epoch from (r.accepted_at - r.created_at))) filter (where r.accepted_at is not null)
              / 60)::numeric, 2) as avg_minutes_to_accept,
       round((percentile_cont(0.5) within group (order by extract(epoch from (r.accepted_at - r.created_at))))
              ::numeric / 60, 2) as median_minutes_to_accept,
       round((avg(extract(epoch from (s.started_at - r.created_at))) filter (where s.started_at is not null)
              / 60)::numeric, 2) as avg_minutes_to_start,
       round(avg((exists (select 1 from public.session_events e where e.request_id = r.id
                          and e.to_status = 'unattended'))::int)::numeric, 3) as unattended_rate
from public.session_requests r
join public.sessions s on s.id = r.session_id
group by 1;
grant select on public.admin_matching_daily to authenticated, service_role;
comment on view public.admin_matching_daily is
  'Per day: requests, share with a chosen mechanic, minutes to acceptance and to start, unattended rate.';
-- <<< functions_sql matching/metrics.sql

-- >>> functions_sql matching/presence.sql sha256=3d650ac68e07a00f5897681cb1210dbc37b4b6501323330bebba7d3c72ace4c4
-- Matching: presence (online, busy, offline) and its broadcasts.

-- ---------------------------------------------------------------------------------------------
-- Presence
-- ---------------------------------------------------------------------------------------------
-- online: chose to be available and heartbeat recent; busy: holds work; offline: otherwise.
create or replace function private.presence(
  p_is_available boolean, p_last_seen_at timestamptz, p_busy boolean, p_window interval, p_now timestamptz
) returns text
language sql immutable parallel safe set search_path = ''
as $$
  select case
    when p_busy then 'busy'
    when p_is_available and p_last_seen_at >= p_now - p_window then 'online'
    else 'offline' end
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

-- >>> functions_sql matching/ranking.sql sha256=02e0875522aa2a246c45717eb04ed2a31d77c41ab1a206e6e729d28e42fcb873
-- Matching: ranking mechanics for a request, with explained scores.

-- ---------------------------------------------------------------------------------------------
-- Ranking (points per reason, read from the matching.weights setting). Eligible = approved, may accept, not busy,
-- not the customer, did not decline this request, passes the eligibility hook, and for a
-- specialist request a specialist of the vehicle's make. Declines and acceptance rate never
-- lower a score.
-- ---------------------------------------------------------------------------------------------
create or replace function private.rank_mechanics(
  p_request_id uuid,
  p_limit int default null,
  p_now timestamptz default now(),
  p_exclude_offered boolean default false
) returns table (mechanic_id uuid, score int, reasons jsonb, rank int)
language plpgsql stable security definer set search_path = '' set jit = off  -- compiling costs more than it saves here
as $$
declare
  v_w jsonb := private.setting('matching.weights');
  w_online_now int := (v_w ->> 'online_now')::int;
  w_seen_30m int := (v_w ->> 'seen_30m')::int;
  w_seen_1h int := (v_w ->> 'seen_1h')::int;
  w_seen_today int := (v_w ->> 'seen_today')::int;
  w_keyword int := (v_w ->> 'keyword')::int;
  w_brand_specialist int := (v_w ->> 'brand_specialist')::int;
  w_experience_10 int := (v_w ->> 'experience_10')::int;
  w_experience_5 int := (v_w ->> 'experience_5')::int;
  w_same_fsa int := (v_w ->> 'same_fsa')::int;
  w_same_city int := (v_w ->> 'same_city')::int;
  w_rating_5 int := (v_w ->> 'rating_5')::int;
  w_rating_45 int := (v_w ->> 'rating_45')::int;
  w_rating_40 int := (v_w ->> 'rating_40')::int;
  w_rating_35 int := (v_w ->> 'rating_35')::int;
  v_window interval := private.setting_interval('presence.online_window');
  v_limit int := coalesce(p_limit, private.setting_int('matching.top_n'));
  v_req public.session_requests;
  v_city text;
  v_fsa text;
  v_make text;
  v_make_key text[];
  v_bits bit(256);
begin
  if v_limit is null or v_limit < 1 or v_limit > 1000 then
    perform private.raise_error('invalid_input', 'the limit must be between 1 and 1000');
  end if;
  select * into v_req from public.session_requests where id = p_request_id;
  if not found then
    perform private.raise_error('not_found', 'no such request');
  end if;
  v_bits := v_req.keyword_bits;
  v_make := lower(v_req.vehicle_make);
  v_make_key := array[coalesce(v_make, '')];  -- '' is never a brand key
  select lower(btrim(coalesce(p.city, i.city))), nullif(upper(left(replace(p.postal_code, ' ', ''), 3)), '')
  into v_city, v_fsa
  from public.sessions s
  left join public.profiles p on p.id = s.customer_id
  left join public.intakes i on i.id = s.intake_id
  where s.id = v_req.session_id;

  -- Sets computed once (hashed), then one pass over the mechanics computing levels and points;
  -- reasons are spelled out only for the rows returned. Keyword hits are one AND and a bit count.
  return query
  with busy as (
    select c.mechanic_id from public.mechanic_commitments c where c.status = 'in_progress'
  ),
  asked as (
    select o.mechanic_id from public.session_offers o
    where o.request_id = v_req.id and o.mechanic_id is not null and (o.status = 'declined' or p_exclude_offered)
  ),
  excluded as (
    select x from private.eligibility_exclusions(v_req.id, p_now) x where x is not null
  ),
  cand as (
    select m.id, m.rating_avg, m.completed_sessions, m.years_experience,
           case when m.is_available and m.last_seen_at >= p_now - v_window then 4
                when m.last_seen_at >= p_now - interval '30 minutes' then 3
                when m.last_seen_at >= p_now - interval '1 hour' then 2
                when m.last_seen_at >= p_now - interval '26 hours'  -- no local day starts earlier
                     and m.last_seen_at >= (date_trunc('day', p_now at time zone m.timezone) at time zone m.timezone)
                  then 1
                else 0 end as presence_level,
           bit_count(m.keyword_bits & v_bits)::int as keyword_hits,
           (m.is_brand_specialist and m.brand_keys @> v_make_key) as brand_match,
           case when m.postal_area = v_fsa then 2 when m.city_key = v_city then 1 else 0 end as location_level
    from public.mechanics m
    where m.status = 'approved' and m.can_accept_sessions and m.id <> v_req.customer_id
      and m.id not in (select b.mechanic_id from busy b)
      and m.id not in (select a.mechanic_id from asked a)
      and m.id not in (select e.x from excluded e)
  ),
  scored as (
    select c.*,
           case c.presence_level when 4 then w_online_now when 3 then w_seen_30m when 2 then w_seen_1h
                                 when 1 then w_seen_today else 0 end as p_presence,
           c.keyword_hits * w_keyword as p_keywords,
           case when c.brand_match then w_brand_specialist else 0 end as p_brand,
           case when c.years_experience >= 10 then w_experience_10
                when c.years_experience >= 5 then w_experience_5 else 0 end as p_experience,
           case c.location_level when 2 then w_same_fsa when 1 then w_same_city else 0 end as p_location,
           case when c.rating_avg >= 5.0 then w_rating_5
                when c.rating_avg >= 4.5 then w_rating_45
                when c.rating_avg >= 4.0 then w_rating_40
                when c.rating_avg >= 3.5 then w_rating_35 else 0 end as p_rating
    from cand c
    where not v_req.specialist or c.brand_match
  ),
  top as (
    select s.*, s.p_presence + s.p_keywords + s.p_brand + s.p_experience + s.p_location + s.p_rating as total
    from scored s
    order by total desc, s.rating_avg desc nulls last, s.completed_sessions desc, s.years_experience desc, s.id
    limit v_limit
  )
  select t.id, t.total,
         (select coalesce(jsonb_agg(jsonb_build_object('reason', r.reason, 'points', r.points) order by r.ord), '[]')
          from (values
            (1, case t.presence_level when 4 then 'online_now' when 3 then 'seen_within_30_minutes'
                                      when 2 then 'seen_within_1_hour' when 1 then 'seen_today' end, t.p_presence),
            (2, 'keywords_matched:' || t.keyword_hits, t.p_keywords),
            (3, 'brand_specialist:' || coalesce(v_make, ''), t.p_brand),
            (4, 'experience_years:' || t.years_experience, t.p_experience),
            (5, case t.location_level when 2 then 'same_postal_area' else 'same_city' end, t.p_location),
            (6, 'rating:' || t.rating_avg, t.p_rating)) as r(ord, reason, points)
          where r.points > 0),
         (row_number() over (order by t.total desc, t.rating_avg desc nulls last, t.completed_sessions desc,
                                      t.years_experience desc, t.id))::int
  from top t
  order by 4;
end
$$;
revoke execute on function private.rank_mechanics(uuid, int, timestamptz, boolean) from public;
grant execute on function private.rank_mechanics(uuid, int, timestamptz, boolean) to service_role;

-- Admins see the ranking of any request, with its reasons.
create or replace function public.admin_rank_request(p_request_id uuid, p_limit int default 10)
returns table (mechanic_id uuid, display_name text, score int, reasons jsonb, rank int)
language plpgsql stable security definer set search_path = ''
as $$
begin
  perform private.require_admin();
  perform private.require_arg('p_request_id', p_request_id);
  return query
  select k.mechanic_id, m.display_name, k.score, k.reasons, k.rank
  from private.rank_mechanics(p_request_id, p_limit, now()) k
  join public.mechanics m on m.id = k.mechanic_id
  order by k.rank;
end
$$;
revoke execute on function public.admin_rank_request(uuid, int) from public, anon;
grant execute on function public.admin_rank_request(uuid, int) to authenticated, service_role;
-- <<< functions_sql matching/ranking.sql

-- >>> functions_sql matching/routing.sql sha256=b3a2f3e4e7eeed9b1c5a4d10136809fb13dd99f0d72fa5018c2384fc8a52a7cf
-- Matching: routing of requests (preferred window → targeted offers → broadcast).

-- ---------------------------------------------------------------------------------------------
-- Routing state on requests
-- ---------------------------------------------------------------------------------------------
create or replace function private.tg_session_requests__routing_defaults() returns trigger
language plpgsql set search_path = ''
as $$
begin
  if tg_op = 'INSERT' then
    new.keywords := private.extract_keywords(new.concern);
    new.keyword_bits := private.keyword_bits(new.keywords);
    new.broadcast_at := case when new.preferred_mechanic_id is not null
                             then new.created_at + private.setting_interval('matching.preferred_window')
                             else new.created_at end;
    new.next_route_at := new.created_at;
  elsif new.status = 'pending' and old.status = 'accepted' then
    new.next_route_at := now();  -- released by its mechanic: route it again
  elsif new.status not in ('pending', 'unattended') then
    new.next_route_at := null;
  end if;
  return new;
end
$$;
revoke execute on function private.tg_session_requests__routing_defaults() from public;
drop trigger if exists _050_routing_defaults on public.session_requests;
create trigger _050_routing_defaults before insert or update of status on public.session_requests
  for each row execute function private.tg_session_requests__routing_defaults();

-- A decline moves the request on: the next mechanic is offered it at the next dispatch; the
-- preferred mechanic declining opens the request to everyone at once.
create or replace function private.tg_session_offers__decline_moves_on() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  update public.session_requests r
  set next_route_at = now(),
      broadcast_at = case when r.preferred_mechanic_id = new.mechanic_id and r.broadcast_at > now()
                          then now() else r.broadcast_at end
  where r.id = new.request_id and r.status in ('pending', 'unattended');
  return null;
end
$$;
revoke execute on function private.tg_session_offers__decline_moves_on() from public;
drop trigger if exists _200_decline_moves_on on public.session_offers;
create trigger _200_decline_moves_on after insert or update of status on public.session_offers
  for each row when (new.status = 'declined' and new.mechanic_id is not null)
  execute function private.tg_session_offers__decline_moves_on();

-- Offers reach the mechanic: `offer` on insert, `offer_withdrawn` when withdrawn or expired.
create or replace function private.tg_session_offers__broadcast() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_req public.session_requests;
begin
  if new.mechanic_id is null then
    return null;
  end if;
  if tg_op = 'INSERT' and new.status = 'offered' then
    select * into v_req from public.session_requests where id = new.request_id;
    perform realtime.send(
      jsonb_build_object('request_id', v_req.id, 'session_id', v_req.session_id, 'session_type', v_req.session_type,
                         'plan_code', v_req.plan_code, 'specialist', v_req.specialist,
                         'vehicle_make', v_req.vehicle_make, 'vehicle_model', v_req.vehicle_model,
                         'vehicle_year', v_req.vehicle_year, 'concern', left(v_req.concern, 140),
                         'preferred', coalesce(v_req.preferred_mechanic_id = new.mechanic_id, false),
                         'score', new.score, 'reasons', new.reasons, 'expires_at', new.expires_at),
      'offer', 'mechanic:' || new.mechanic_id::text, true);
  elsif tg_op = 'UPDATE' and old.status = 'offered' and new.status in ('withdrawn', 'expired') then
    perform realtime.send(jsonb_build_object('request_id', new.request_id, 'reason', new.status),
                          'offer_withdrawn', 'mechanic:' || new.mechanic_id::text, true);
  end if;
  return null;
end
$$;
revoke execute on function private.tg_session_offers__broadcast() from public;
drop trigger if exists _300_broadcast on public.session_offers;
create trigger _300_broadcast after insert or update of status on public.session_offers
  for each row execute function private.tg_session_offers__broadcast();

-- The card of a request that mechanics see (new_request, request_unattended): ids and card fields
-- only, never an email, phone or address.
create or replace function private.request_card(p_request public.session_requests) returns jsonb
language sql immutable set search_path = ''
as $$
  select jsonb_build_object(
    'request_id', p_request.id, 'session_id', p_request.session_id, 'session_type', p_request.session_type,
    'plan_code', p_request.plan_code, 'specialist', p_request.specialist, 'vehicle_make', p_request.vehicle_make,
    'vehicle_model', p_request.vehicle_model, 'vehicle_year', p_request.vehicle_year,
    'concern', left(p_request.concern, 140), 'preferred_mechanic_id', p_request.preferred_mechanic_id,
    'created_at', p_request.created_at)
$$;
revoke execute on function private.request_card(public.session_requests) from public;
grant execute on function private.request_card(public.session_requests) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Routing: preferred mechanic's exclusive window → targeted offers to the best mechanics and a
-- broadcast to every eligible one. Returns what it did. Idempotent: running it twice at the same
-- moment adds nothing.
-- ---------------------------------------------------------------------------------------------
create or replace function private.route_request(p_request_id uuid, p_now timestamptz default now())
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_req public.session_requests;
  v_targeted int := private.setting_int('matching.targeted_count');
  v_ttl interval := private.setting_interval('matching.offer_ttl');
  v_open int;
  v_new int := 0;
  v_broadcast boolean := false;
  v_next timestamptz;
begin
  select * into v_req from public.session_requests where id = p_request_id for update;
  if not found then
    perform private.raise_error('not_found', 'no such request');
  end if;
  if v_req.status not in ('pending', 'unattended') then
    update public.session_offers set status = 'withdrawn'
    where request_id = v_req.id and status in ('offered', 'queued');
    update public.session_requests set next_route_at = null where id = v_req.id and next_route_at is not null;
    return jsonb_build_object('request_id', v_req.id, 'stage', 'closed', 'status', v_req.status);
  end if;

  update public.session_offers set status = 'expired', responded_at = p_now
  where request_id = v_req.id and status = 'offered' and mechanic_id is not null and expires_at <= p_now;

  -- 1. The preferred mechanic's exclusive window.
  if v_req.preferred_mechanic_id is not null and p_now < v_req.broadcast_at then
    insert into public.session_offers (request_id, mechanic_id, status, reasons, offered_at, expires_at)
    values (v_req.id, v_req.preferred_mechanic_id, 'offered',
            '[{"reason": "preferred_by_customer", "points": 0}]', p_now, v_req.broadcast_at)
    on conflict (request_id, mechanic_id) where mechanic_id is not null do nothing;
    get diagnostics v_new = row_count;
    update public.session_requests set next_route_at = v_req.broadcast_at where id = v_req.id;
    return jsonb_build_object('request_id', v_req.id, 'stage', 'preferred', 'offers_created', v_new,
                              'next_route_at', v_req.broadcast_at);
  end if;

  -- 2. Open to everyone: one broadcast offer row; announce it when the creation did not.
  if not exists (select 1 from public.session_offers o where o.request_id = v_req.id and o.mechanic_id is null) then
    insert into public.session_offers (request_id, mechanic_id, status, reasons, offered_at)
    values (v_req.id, null, 'offered', '[{"reason": "broadcast", "points": 0}]', p_now);
    v_broadcast := true;
    if v_req.preferred_mechanic_id is not null then
      perform realtime.send(private.request_card(v_req), 'new_request', 'mechanics:requests', true);
    end if;
  end if;

  -- 3. Keep the targeted offers topped up with the next best mechanics not yet asked.
  select count(*) into v_open from public.session_offers o
  where o.request_id = v_req.id and o.mechanic_id is not null and o.status = 'offered' and o.expires_at > p_now;
  if v_open < v_targeted then
    insert into public.session_offers (request_id, mechanic_id, status, score, reasons, offered_at, expires_at)
    select v_req.id, k.mechanic_id, 'offered', k.score, k.reasons, p_now, p_now + v_ttl
    from private.rank_mechanics(v_req.id, v_targeted - v_open, p_now, true) k
    order by k.rank;
    get diagnostics v_new = row_count;
  end if;

  select min(o.expires_at) into v_next from public.session_offers o
  where o.request_id = v_req.id and o.mechanic_id is not null and o.status = 'offered' and o.expires_at > p_now;
  update public.session_requests set next_route_at = v_next where id = v_req.id;
  return jsonb_build_object('request_id', v_req.id, 'stage', 'targeted', 'offers_created', v_new,
                            'broadcast', v_broadcast, 'next_route_at', v_next);
end
$$;
revoke execute on function private.route_request(uuid, timestamptz) from public;
grant execute on function private.route_request(uuid, timestamptz) to service_role;

-- Routes every request that is due, claiming them with skip locked so that concurrent runs
-- share the work. Returns counts.
create or replace function private.dispatch_due(p_now timestamptz default now(), p_limit int default 200)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_id uuid;
  v_result jsonb;
  v_routed int := 0;
  v_offers int := 0;
begin
  if p_limit is null or p_limit < 1 or p_limit > 10000 then
    perform private.raise_error('invalid_input', 'p_limit must be between 1 and 10000');
  end if;
  for v_id in
    select r.id from public.session_requests r
    where r.status in ('pending', 'unattended') and r.next_route_at <= p_now
    order by r.next_route_at
    limit p_limit
    for update skip locked
  loop
    v_result := private.route_request(v_id, p_now);
    v_routed := v_routed + 1;
    v_offers := v_offers + coalesce((v_result ->> 'offers_created')::int, 0);
  end loop;
  return jsonb_build_object('routed', v_routed, 'offers_created', v_offers);
end
$$;
revoke execute on function private.dispatch_due(timestamptz, int) from public;
grant execute on function private.dispatch_due(timestamptz, int) to service_role;

-- ---------------------------------------------------------------------------------------------
-- A request is routed in the transaction that files it: the preferred mechanic's offer, or the
-- broadcast offer row and the targeted offers to the best mechanics. Later routing (window ends,
-- expiries, declines, releases) is the `dispatch` job's (private.schedules).
-- ---------------------------------------------------------------------------------------------
create or replace function private.tg_session_requests__route() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  perform private.route_request(new.id, now());
  return null;
end
$$;
revoke execute on function private.tg_session_requests__route() from public;
drop trigger if exists _500_route on public.session_requests;
create trigger _500_route after insert on public.session_requests
  for each row execute function private.tg_session_requests__route();
-- <<< functions_sql matching/routing.sql

-- >>> functions_sql micro/caps.sql sha256=d71b498252fab291a7ec7ac3bfa265c8a899b11190c7aba25ceb38c324988a32
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

-- The rules of seed 000, as data: {can_accept, reason, minutes_remaining}.
create or replace function private.micro_eligibility(
  p_mechanic_id uuid, p_duration_type text, p_minutes int, p_now timestamptz default now()
) returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_m public.mechanics;
  v_o public.organizations;
  v_cap int;
  v_used int;
  v_remaining int;
begin
  select * into v_m from public.mechanics where id = p_mechanic_id;
  if not found then
    return jsonb_build_object('can_accept', false, 'reason', 'not_a_mechanic', 'minutes_remaining', 0);
  end if;
  select * into v_o from public.organizations where id = v_m.organization_id;
  v_cap := private.micro_cap(p_mechanic_id);
  v_used := private.micro_minutes_used(p_mechanic_id, p_now);
  v_remaining := greatest(v_cap - v_used, 0);
  if v_m.status <> 'approved' or not v_m.can_accept_sessions then
    return jsonb_build_object('can_accept', false, 'reason', 'not_approved', 'minutes_remaining', v_remaining);
  end if;
  if p_duration_type = 'micro' then
    if v_m.participation_mode = 'full_only' then
      return jsonb_build_object('can_accept', false, 'reason', 'participation_mode', 'minutes_remaining', v_remaining);
    end if;
    if v_o.id is not null and not v_o.micro_sessions_enabled then
      return jsonb_build_object('can_accept', false, 'reason', 'workshop_micro_disabled',
                                'minutes_remaining', v_remaining);
    end if;
    -- Workshop mechanics take micro sessions only on shift; independent ones any time (seed 000).
    if v_m.mechanic_type = 'workshop_affiliated' and not v_m.currently_on_shift then
      return jsonb_build_object('can_accept', false, 'reason', 'not_on_shift', 'minutes_remaining', v_remaining);
    end if;
    if v_o.id is not null and p_minutes > v_o.micro_max_duration then
      return jsonb_build_object('can_accept', false, 'reason', 'longer_than_workshop_maximum',
                                'minutes_remaining', v_remaining);
    end if;
    if p_minutes > v_remaining then
      return jsonb_build_object('can_accept', false, 'reason', 'daily_cap_reached', 'minutes_remaining', v_remaining);
    end if;
  elsif v_m.participation_mode = 'micro_only' then
    return jsonb_build_object('can_accept', false, 'reason', 'participation_mode', 'minutes_remaining', v_remaining);
  end if;
  return jsonb_build_object('can_accept', true, 'reason', null, 'minutes_remaining', v_remaining);
end
$$;
revoke execute on function private.micro_eligibility(uuid, text, int, timestamptz) from public;
grant execute on function private.micro_eligibility(uuid, text, int, timestamptz) to service_role;

-- can_accept_session (seed 000's contract): p_session_type is a duration type (micro / standard /
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

-- Called by private.assign_request with the mechanic's row locked and the rows it already holds:
-- refuses what seed 000 forbids and reserves the planned minutes of a micro session on the
-- mechanic's local day (so concurrent accepts can never exceed the cap). The rules are
-- micro_eligibility's, tested on the rows in hand; only a refusal asks micro_eligibility, for the
-- same reason and detail. The caller records on_shift in its own update of the session.
create or replace function private.check_and_reserve_accept_rows(
  p_m public.mechanics, p_s public.sessions, p_now timestamptz
) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_ok boolean := p_m.status = 'approved' and p_m.can_accept_sessions;
  v_o public.organizations;
  v_check jsonb;
begin
  if p_s.duration_type = 'micro' then
    v_ok := v_ok and p_m.participation_mode <> 'full_only'
            and not (p_m.mechanic_type = 'workshop_affiliated' and not p_m.currently_on_shift);
    if v_ok and p_m.organization_id is not null then
      select * into v_o from public.organizations where id = p_m.organization_id;
      v_ok := v_o.id is null or (v_o.micro_sessions_enabled and p_s.planned_minutes <= v_o.micro_max_duration);
    end if;
    v_ok := v_ok and p_s.planned_minutes <= greatest(
      coalesce(p_m.daily_micro_minutes_cap, v_o.default_daily_micro_cap, private.setting_int('micro.daily_cap_minutes'))
      - (select coalesce(sum(coalesce(u.actual_minutes, u.reserved_minutes)), 0)::int
         from public.micro_minute_usage u
         where u.mechanic_id = p_m.id and u.local_day = (p_now at time zone p_m.timezone)::date), 0);
  else
    v_ok := v_ok and p_m.participation_mode <> 'micro_only';
  end if;
  if not coalesce(v_ok, false) then
    v_check := private.micro_eligibility(p_m.id, case when p_s.duration_type = 'micro' then 'micro' else 'full' end,
                                         p_s.planned_minutes, p_now);
    if not (v_check ->> 'can_accept')::boolean then
      perform private.raise_error('session_not_eligible', format('cannot take this session: %s', v_check ->> 'reason'),
                                  v_check::text);
    end if;
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

-- The same by ids, for callers without the rows: also records whether the session was taken on shift.
create or replace function private.check_and_reserve_accept(
  p_mechanic_id uuid, p_session_id uuid, p_now timestamptz
) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_s public.sessions;
  v_m public.mechanics;
begin
  select * into v_s from public.sessions where id = p_session_id;
  select * into v_m from public.mechanics where id = p_mechanic_id;
  perform private.check_and_reserve_accept_rows(v_m, v_s, p_now);
  update public.sessions set on_shift = v_m.currently_on_shift where id = p_session_id;
end
$$;
revoke execute on function private.check_and_reserve_accept(uuid, uuid, timestamptz) from public;
grant execute on function private.check_and_reserve_accept(uuid, uuid, timestamptz) to service_role;

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

-- >>> functions_sql micro/clock.sql sha256=3ed971a87065095252709e7157e2617fbcae92b5878ad82d9f0e098532569bc1
-- Micro-sessions: clock in and out, the availability status and its view.

-- ---------------------------------------------------------------------------------------------
-- Clock in / out (public.clock and public.clock_status)
-- ---------------------------------------------------------------------------------------------
create or replace function private.availability_status(p_on_shift boolean, p_mode public.participation_mode)
returns text
language sql immutable set search_path = ''
as $$
  select case when p_on_shift and p_mode in ('micro_only', 'both') then 'on_shift'
              when not p_on_shift and p_mode in ('full_only', 'both') then 'off_shift'
              else 'offline' end
$$;
revoke execute on function private.availability_status(boolean, public.participation_mode) from public;
grant execute on function private.availability_status(boolean, public.participation_mode) to authenticated, service_role;

create or replace function public.clock(p_action text, p_location text default null, p_notes text default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_m public.mechanics;
  v_log public.mechanic_shift_logs;
  v_now timestamptz := now();
begin
  if p_action is null or p_action not in ('clock_in', 'clock_out') then
    perform private.raise_error('invalid_input', 'p_action must be clock_in or clock_out');
  end if;
  if char_length(p_location) > 200 or char_length(p_notes) > 2000 then
    perform private.raise_error('invalid_input', 'p_location (200) or p_notes (2000) is too long');
  end if;
  select * into v_m from public.mechanics where id = v_uid for no key update;
  if not found or v_m.status <> 'approved' then
    perform private.raise_error('not_allowed', 'only approved mechanics clock in');
  end if;
  if p_action = 'clock_in' then
    if v_m.currently_on_shift then
      perform private.raise_error('already_clocked_in', 'already on shift since ' || v_m.last_clock_in::text);
    end if;
    insert into public.mechanic_shift_logs (mechanic_id, organization_id, clock_in_at, location, notes)
    values (v_uid, v_m.organization_id, v_now, nullif(btrim(p_location), ''), nullif(btrim(p_notes), ''));
    update public.mechanics set currently_on_shift = true, last_clock_in = v_now where id = v_uid;
    return jsonb_build_object('ok', true, 'action', 'clock_in', 'message', 'Successfully clocked in',
                              'clocked_in_at', v_now, 'status',
                              private.availability_status(true, v_m.participation_mode));
  end if;
  if not v_m.currently_on_shift then
    perform private.raise_error('not_clocked_in', 'not on shift');
  end if;
  update public.mechanic_shift_logs
  set clock_out_at = v_now,
      shift_duration_minutes = floor(extract(epoch from (v_now - clock_in_at)) / 60)::int,
      notes = coalesce(nullif(btrim(p_notes), ''), notes)
  where mechanic_id = v_uid and clock_out_at is null
  returning * into v_log;
  update public.mechanics set currently_on_shift = false, last_clock_out = v_now where id = v_uid;
  return jsonb_build_object('ok', true, 'action', 'clock_out', 'message', 'Successfully clocked out',
                            'clocked_out_at', v_now, 'shift_duration_minutes', coalesce(v_log.shift_duration_minutes, 0),
                            'status', private.availability_status(false, v_m.participation_mode));
end
$$;
revoke execute on function public.clock(text, text, text) from public, anon;
grant execute on function public.clock(text, text, text) to authenticated, service_role;

create or replace function public.clock_status() returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_m public.mechanics;
  v_log public.mechanic_shift_logs;
  v_cap int;
  v_used int;
begin
  select * into v_m from public.mechanics where id = v_uid;
  if not found then
    perform private.raise_error('not_allowed', 'only mechanics have a clock');
  end if;
  select * into v_log from public.mechanic_shift_logs where mechanic_id = v_uid and clock_out_at is null;
  v_cap := private.micro_cap(v_uid);
  v_used := private.micro_minutes_used(v_uid, now());
  return jsonb_build_object(
    'ok', true,
    'status', jsonb_build_object(
      'currently_on_shift', v_m.currently_on_shift,
      'availability_status', private.availability_status(v_m.currently_on_shift, v_m.participation_mode),
      'participation_mode', v_m.participation_mode, 'daily_micro_minutes_cap', v_cap,
      'daily_micro_minutes_used', v_used, 'micro_minutes_remaining', greatest(v_cap - v_used, 0),
      'last_clock_in', v_m.last_clock_in, 'last_clock_out', v_m.last_clock_out,
      'workshop_name', (select o.name from public.organizations o where o.id = v_m.organization_id)),
    'current_shift', case when v_log.id is null then null else jsonb_build_object(
      'id', v_log.id, 'clocked_in_at', v_log.clock_in_at,
      'duration_minutes', floor(extract(epoch from (now() - v_log.clock_in_at)) / 60)::int,
      'location', v_log.location, 'micro_sessions_taken', v_log.micro_sessions_taken,
      'micro_minutes_used', v_log.micro_minutes_used, 'full_sessions_taken', v_log.full_sessions_taken) end);
end
$$;
revoke execute on function public.clock_status() from public, anon;
grant execute on function public.clock_status() to authenticated, service_role;

-- A midnight reset, kept for schedules that call it: usage is per local date, so this only records that
-- each mechanic's local day has started (idempotent; returns how many mechanics rolled over).
create or replace function public.reset_daily_micro_minutes(p_now timestamptz default now()) returns int
language sql security definer set search_path = ''
as $$
  with rolled as (
    update public.mechanics m set last_micro_reset_date = (p_now at time zone m.timezone)::date
    where m.last_micro_reset_date is distinct from (p_now at time zone m.timezone)::date
    returning 1)
  select count(*)::int from rolled
$$;
revoke execute on function public.reset_daily_micro_minutes(timestamptz) from public, anon, authenticated;
grant execute on function public.reset_daily_micro_minutes(timestamptz) to service_role;

-- Each mechanic's availability status, for itself, its workshop's admins and platform admins.
drop view if exists public.mechanic_availability_status;
create view public.mechanic_availability_status with (security_invoker = true) as
select m.id as mechanic_id, m.display_name, m.organization_id, m.participation_mode, m.currently_on_shift,
       m.last_clock_in, m.last_clock_out,
       private.availability_status(m.currently_on_shift, m.participation_mode) as availability_status,
       private.micro_cap(m.id) as daily_micro_minutes_cap,
       private.micro_minutes_used(m.id, now()) as daily_micro_minutes_used,
       greatest(private.micro_cap(m.id) - private.micro_minutes_used(m.id, now()), 0) as micro_minutes_remaining
from public.mechanics m
where m.id = (select auth.uid()) or m.organization_id in (select private.my_admin_org_ids())
   or (select private.is_admin());
grant select on public.mechanic_availability_status to authenticated, service_role;
-- <<< functions_sql micro/clock.sql

-- >>> functions_sql micro/dashboards.sql sha256=87de41f51896fe6618f4546f3232db8ebc05fe1321b1368be3738ed7ec7adfa9
-- Micro-sessions: dashboards.

-- ---------------------------------------------------------------------------------------------
-- Dashboards for mechanics, workshops and admins. Periods end now and span p_days days.
-- ---------------------------------------------------------------------------------------------
create or replace function public.mechanic_micro_dashboard(p_days int default 30) returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_since timestamptz;
  v_shift_hours numeric;
  v_sessions_on_shift int;
begin
  if p_days is null or p_days < 1 or p_days > 366 then
    perform private.raise_error('invalid_input', 'p_days must be 1..366');
  end if;
  if not exists (select 1 from public.mechanics where id = v_uid) then
    perform private.raise_error('not_allowed', 'mechanics only');
  end if;
  v_since := now() - make_interval(days => p_days);
  select coalesce(sum(extract(epoch from (coalesce(l.clock_out_at, now()) - greatest(l.clock_in_at, v_since)))) / 3600, 0)
  into v_shift_hours
  from public.mechanic_shift_logs l where l.mechanic_id = v_uid and coalesce(l.clock_out_at, now()) > v_since;
  select count(*) into v_sessions_on_shift from public.sessions s
  where s.mechanic_id = v_uid and s.status = 'completed' and s.on_shift and s.ended_at >= v_since;
  return jsonb_build_object(
    'daily_micro_minutes_cap', private.micro_cap(v_uid),
    'daily_micro_minutes_used', private.micro_minutes_used(v_uid, now()),
    'micro_sessions', (select count(*) from public.sessions s where s.mechanic_id = v_uid and s.status = 'completed'
                       and s.duration_type = 'micro' and s.ended_at >= v_since),
    'avg_micro_duration_minutes', (select round(avg(s.duration_minutes)::numeric, 1) from public.sessions s
                                   where s.mechanic_id = v_uid and s.status = 'completed'
                                     and s.duration_type = 'micro' and s.ended_at >= v_since),
    'on_shift_hours', round(v_shift_hours, 2),
    'sessions_per_on_shift_hour', case when v_shift_hours > 0
                                       then round(v_sessions_on_shift / v_shift_hours, 2) end);
end
$$;
revoke execute on function public.mechanic_micro_dashboard(int) from public, anon;
grant execute on function public.mechanic_micro_dashboard(int) to authenticated, service_role;

-- Downtime earnings: the price of micro sessions its mechanics completed on shift (gross, cents).
create or replace function public.workshop_micro_dashboard(p_organization_id uuid, p_days int default 30)
returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_since timestamptz;
begin
  perform private.require_user();
  if p_organization_id is null or p_days is null or p_days < 1 or p_days > 366 then
    perform private.raise_error('invalid_input', 'p_organization_id is required; p_days 1..366');
  end if;
  if not (p_organization_id in (select private.my_admin_org_ids()) or private.is_admin()) then
    perform private.raise_error('not_allowed', 'workshop owners and admins only');
  end if;
  v_since := now() - make_interval(days => p_days);
  return (
    with s as (
      select s.* from public.sessions s join public.mechanics m on m.id = s.mechanic_id
      where m.organization_id = p_organization_id and s.status = 'completed' and s.ended_at >= v_since)
    select jsonb_build_object(
      'on_shift_hours', (select round(coalesce(sum(extract(epoch from (coalesce(l.clock_out_at, now())
                                       - greatest(l.clock_in_at, v_since)))) / 3600, 0)::numeric, 2)
                         from public.mechanic_shift_logs l
                         where l.organization_id = p_organization_id and coalesce(l.clock_out_at, now()) > v_since),
      'micro_sessions', (select count(*) from s where s.duration_type = 'micro'),
      'full_sessions', (select count(*) from s where s.duration_type <> 'micro'),
      'micro_to_full_ratio', (select round(count(*) filter (where s.duration_type = 'micro')::numeric
                                           / nullif(count(*) filter (where s.duration_type <> 'micro'), 0), 2) from s),
      'avg_micro_handle_minutes', (select round(avg(s.duration_minutes)::numeric, 1) from s
                                   where s.duration_type = 'micro'),
      'downtime_earnings_cents', (select coalesce(sum(s.price_cents), 0) from s
                                  where s.duration_type = 'micro' and s.on_shift)));
end
$$;
revoke execute on function public.workshop_micro_dashboard(uuid, int) from public, anon;
grant execute on function public.workshop_micro_dashboard(uuid, int) to authenticated, service_role;

create or replace function public.admin_micro_dashboard(p_days int default 30) returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_since timestamptz;
begin
  perform private.require_admin();
  if p_days is null or p_days < 1 or p_days > 366 then
    perform private.raise_error('invalid_input', 'p_days must be 1..366');
  end if;
  v_since := now() - make_interval(days => p_days);
  return (
    with s as (select * from public.sessions where status = 'completed' and ended_at >= v_since),
    days as (
      select u.mechanic_id, u.local_day, sum(coalesce(u.actual_minutes, u.reserved_minutes)) as used
      from public.micro_minute_usage u where u.created_at >= v_since group by 1, 2)
    select jsonb_build_object(
      'micro_share_of_sessions', (select round(avg((s.duration_type = 'micro')::int)::numeric, 3) from s),
      'mechanics_taking_micro_share', (select round(count(distinct s.mechanic_id) filter (where s.duration_type = 'micro')::numeric
                                                    / nullif(count(distinct s.mechanic_id), 0), 3) from s),
      'avg_micro_duration_minutes', (select round(avg(s.duration_minutes)::numeric, 1) from s
                                     where s.duration_type = 'micro'),
      'extension_frequency', (select round(avg((s.extension_minutes > 0)::int)::numeric, 3) from s
                              where s.duration_type = 'micro'),
      'cap_utilization', (select round(avg(d.used::numeric / nullif(private.micro_cap(d.mechanic_id), 0)), 3)
                          from days d)));
end
$$;
revoke execute on function public.admin_micro_dashboard(int) from public, anon;
grant execute on function public.admin_micro_dashboard(int) to authenticated, service_role;

-- The workshop's extension rules apply to micro extensions of its mechanics' sessions.
create or replace function private.micro_extension_minutes(p_session_id uuid) returns int
language sql stable security definer set search_path = ''
as $$
  select case when o.id is null then private.setting_int('micro.extension_minutes')
              when not o.allow_extensions then 0 else o.extension_minutes end
  from public.sessions s join public.mechanics m on m.id = s.mechanic_id
  left join public.organizations o on o.id = m.organization_id
  where s.id = p_session_id
$$;
revoke execute on function private.micro_extension_minutes(uuid) from public;
grant execute on function private.micro_extension_minutes(uuid) to service_role;
-- <<< functions_sql micro/dashboards.sql

-- >>> functions_sql micro/settings.sql sha256=493874142af29110c71f935052e330a06823ec4d0a1eaa08b0c273666ea539fd
-- Micro-sessions: participation mode and cap settings.

-- A mechanic sets its own participation mode; its workshop (owner/admin) or a platform admin sets
-- mode and cap. p_daily_cap null keeps the cap; -1 clears it (back to the workshop's default).
create or replace function public.set_mechanic_micro_settings(
  p_mechanic_id uuid, p_participation_mode text default null, p_daily_cap int default null
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_staff boolean;
begin
  if p_mechanic_id is null or (p_participation_mode is not null
                               and p_participation_mode not in ('micro_only', 'full_only', 'both'))
     or (p_daily_cap is not null and (p_daily_cap < -1 or p_daily_cap > 1440)) then
    perform private.raise_error('invalid_input', 'mode micro_only/full_only/both; cap 0..1440 (-1 clears)');
  end if;
  v_staff := private.is_admin() or exists (select 1 from public.mechanics m where m.id = p_mechanic_id
                                           and m.organization_id in (select private.my_admin_org_ids()));
  if not v_staff and (p_mechanic_id <> v_uid or p_daily_cap is not null) then
    perform private.raise_error('not_allowed', 'a mechanic sets its mode; its workshop or an admin sets caps');
  end if;
  update public.mechanics
  set participation_mode = coalesce(p_participation_mode::public.participation_mode, participation_mode),
      daily_micro_minutes_cap = case when p_daily_cap is null then daily_micro_minutes_cap
                                     when p_daily_cap = -1 then null else p_daily_cap end
  where id = p_mechanic_id;
  if not found then
    perform private.raise_error('not_found', 'no such mechanic');
  end if;
  return jsonb_build_object('mechanic_id', p_mechanic_id,
                            'participation_mode', (select participation_mode from public.mechanics where id = p_mechanic_id),
                            'daily_micro_minutes_cap', private.micro_cap(p_mechanic_id));
end
$$;
revoke execute on function public.set_mechanic_micro_settings(uuid, text, int) from public, anon;
grant execute on function public.set_mechanic_micro_settings(uuid, text, int) to authenticated, service_role;
-- <<< functions_sql micro/settings.sql

-- >>> functions_sql payments/admin.sql sha256=1e117ff190427ab5d40ab22de5fc00ab39dc4e8c7ae9c0f8063d3463907e2f1a
-- Payments: admin refunds and credit grants.

-- ---------------------------------------------------------------------------------------------
-- Admin RPCs
-- ---------------------------------------------------------------------------------------------
-- Refunds a session's payments fully (null amount: all that remains) or partly, to where they
-- came from (card through Stripe, credit at once). A session with paid extensions has several
-- payments: a partial amount is taken from its own payment first, then from the extensions in
-- the order they were paid. After payout the payees' share is reversed proportionally. A full
-- refund of a session not yet started cancels it.
create or replace function public.admin_refund(p_session_id uuid, p_amount_cents int default null,
                                               p_reason text default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_admin uuid := private.require_admin();
  v_reason text := private.check_text('p_reason', p_reason, true);
  v_payment record;
  v_left int := p_amount_cents;
  v_total int := 0;
  v_cut int;
  v_refund public.refunds;
  v_refunds jsonb := '[]'::jsonb;
  v_first public.refunds;
begin
  if p_session_id is null or (p_amount_cents is not null and p_amount_cents <= 0) then
    perform private.raise_error('invalid_input', 'p_session_id is required and p_amount_cents must be positive');
  end if;
  perform 1 from public.payments where session_id = p_session_id;
  if not found then
    perform private.raise_error('not_found', 'no payment for this session');
  end if;
  perform private.lock_session_for_refund(p_session_id);
  perform private.set_actor('admin', v_reason);
  for v_payment in
    select p.id, p.amount_cents - coalesce((select sum(r.amount_cents) from public.refunds r
                                            where r.payment_id = p.id and r.status not in ('failed', 'canceled')), 0)
             as refundable
    from public.payments p where p.session_id = p_session_id
    order by p.extension_id is not null, p.paid_at, p.id
  loop
    v_total := v_total + greatest(v_payment.refundable, 0);
    continue when v_payment.refundable <= 0 or (v_left is not null and v_left <= 0);
    v_cut := case when v_left is null then null else least(v_left, v_payment.refundable) end;
    v_refund := private.request_refund(v_payment.id, v_cut, 'admin', v_reason, v_admin, null, null, now());
    v_left := v_left - v_refund.amount_cents;
    v_first := coalesce(v_first, v_refund);
    v_refunds := v_refunds || jsonb_build_object('refund_id', v_refund.id, 'payment_id', v_refund.payment_id,
                                                 'amount_cents', v_refund.amount_cents,
                                                 'destination', v_refund.destination, 'status', v_refund.status);
  end loop;
  if v_first.id is null or v_left > 0 then
    perform private.raise_error('refund_too_large', format('%s cents remain refundable on this session', v_total));
  end if;
  return jsonb_build_object('refund_id', v_first.id, 'payment_id', v_first.payment_id, 'session_id', p_session_id,
                            'amount_cents', (select sum((r ->> 'amount_cents')::int) from jsonb_array_elements(v_refunds) r),
                            'currency', v_first.currency, 'destination', v_first.destination,
                            'status', v_first.status, 'refunds', v_refunds);
end
$$;
revoke execute on function public.admin_refund(uuid, int, text) from public, anon;
grant execute on function public.admin_refund(uuid, int, text) to authenticated, service_role;

create or replace function public.admin_grant_credit(p_customer_id uuid, p_amount_cents int, p_reason text default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_admin uuid := private.require_admin();
  v_reason text := private.check_text('p_reason', p_reason, true);
  v_entry public.credit_ledger;
begin
  if p_customer_id is null or p_amount_cents is null or p_amount_cents <= 0
     or p_amount_cents > private.setting_int('payments.max_credit_grant_cents') then
    perform private.raise_error('invalid_input', format('p_amount_cents must be between 1 and %s',
                                                        private.setting_int('payments.max_credit_grant_cents')));
  end if;
  perform 1 from auth.users where id = p_customer_id;
  if not found then
    perform private.raise_error('not_found', 'no such customer');
  end if;
  v_entry := private.add_credit_entry(p_customer_id, 'grant', p_amount_cents, null, null, null, v_reason, v_admin);
  return jsonb_build_object('customer_id', p_customer_id, 'entry_id', v_entry.id,
                            'amount_cents', v_entry.amount_cents, 'balance_cents', v_entry.balance_after_cents,
                            'currency', v_entry.currency);
end
$$;
revoke execute on function public.admin_grant_credit(uuid, int, text) from public, anon;
grant execute on function public.admin_grant_credit(uuid, int, text) to authenticated, service_role;

comment on function public.admin_refund(uuid, int, text) is
  'Admin: refund a session''s payment fully or partly; reverses payouts proportionally after payout.';
-- <<< functions_sql payments/admin.sql

-- >>> functions_sql payments/checkout.sql sha256=816b01d9ac96747ba491e3aef36f92c7f70988e1cecb02b68d727e211bd25160
-- Payments: checkout (card or credit) of sessions and extensions.

-- ---------------------------------------------------------------------------------------------
-- Checkout (called by functions/checkout.py as service_role, with the verified customer id)
-- ---------------------------------------------------------------------------------------------
-- Validates a paid booking and either pays it with the customer's credit at once (session and
-- request created, credit debited) or records a pending card booking for a Checkout Session. The
-- price always comes from our catalog (plan price + specialist surcharge).
create or replace function private.prepare_checkout(
  p_customer_id uuid,
  p_plan_code text,
  p_intake_id uuid,
  p_vehicle_id uuid,
  p_preferred_mechanic_id uuid,
  p_specialist boolean,
  p_now timestamptz default now()
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_plan public.service_plans;
  v_price int;
  v_intake public.intakes;
  v_vehicle_id uuid;
  v_specialist boolean := coalesce(p_specialist, false);
  v_booking public.bookings;
  v_balance int;
  v_ids jsonb;
  v_payment_id uuid;
begin
  if p_customer_id is null or p_plan_code is null or p_intake_id is null then
    perform private.raise_error('invalid_input', 'plan_code and intake_id are required');
  end if;
  select * into v_plan from public.service_plans where code = p_plan_code and active;
  if not found then
    perform private.raise_error('not_found', format('no active plan %L', left(p_plan_code, 60)));
  end if;
  v_price := private.plan_price_cents(v_plan.code, v_specialist);
  if v_price <= 0 then
    perform private.raise_error('invalid_input', format('plan %s is free: book it with request_session', v_plan.code));
  end if;
  v_intake := private.check_booking_intake(p_customer_id, p_intake_id, p_vehicle_id);
  v_vehicle_id := coalesce(p_vehicle_id, v_intake.vehicle_id);
  perform private.check_preferred_mechanic(p_customer_id, p_preferred_mechanic_id);

  -- Credit that covers the whole price pays at once (decided under the customer's credit lock).
  perform private.lock_credit(p_customer_id);
  v_balance := private.credit_balance(p_customer_id);
  if v_balance >= v_price then
    insert into public.bookings (customer_id, plan_code, intake_id, vehicle_id, preferred_mechanic_id, specialist,
                                 price_cents, currency, method, status, status_changed_at)
    values (p_customer_id, v_plan.code, v_intake.id, v_vehicle_id, p_preferred_mechanic_id, v_specialist, v_price,
            v_plan.currency, 'credit', 'pending', p_now)
    returning * into v_booking;
    perform private.set_actor('customer', 'paid with credit');
    v_ids := private.create_session_request(p_customer_id, v_plan.code, v_intake.id, v_vehicle_id,
                                            p_preferred_mechanic_id, v_specialist, v_price, p_now);
    update public.bookings set status = 'paid', session_id = (v_ids ->> 'session_id')::uuid, status_changed_at = p_now
    where id = v_booking.id;
    v_payment_id := private.pay_booking_with_credit(v_booking.id, format('%s booking', v_plan.code), p_now);
    return jsonb_build_object('mode', 'credit', 'booking_id', v_booking.id, 'payment_id', v_payment_id,
                              'session_id', v_ids ->> 'session_id', 'request_id', v_ids ->> 'request_id',
                              'price_cents', v_price, 'currency', v_plan.currency,
                              'credit_balance_cents', v_balance - v_price);
  end if;

  -- The same open checkout again (a double click, a retry): its URL is still good.
  select * into v_booking from public.bookings b
  where b.intake_id = v_intake.id and b.customer_id = p_customer_id and b.status = 'pending' and b.method = 'card'
    and b.plan_code = v_plan.code and b.specialist = v_specialist and b.price_cents = v_price
    and b.vehicle_id is not distinct from v_vehicle_id and b.preferred_mechanic_id is not distinct from p_preferred_mechanic_id
    and b.checkout_url is not null and b.expires_at > p_now + interval '5 minutes'
  order by b.created_at desc
  limit 1;
  if found then
    return jsonb_build_object('mode', 'stripe', 'reused', true, 'booking_id', v_booking.id, 'url', v_booking.checkout_url,
                              'price_cents', v_booking.price_cents, 'currency', v_booking.currency);
  end if;

  insert into public.bookings (customer_id, plan_code, intake_id, vehicle_id, preferred_mechanic_id, specialist,
                               price_cents, currency, method, status, status_changed_at, expires_at)
  values (p_customer_id, v_plan.code, v_intake.id, v_vehicle_id, p_preferred_mechanic_id, v_specialist, v_price,
          v_plan.currency, 'card', 'pending', p_now, p_now + private.setting_interval('payments.checkout_expires_after'))
  returning * into v_booking;
  return jsonb_build_object('mode', 'stripe', 'reused', false, 'booking_id', v_booking.id,
                            'price_cents', v_price, 'currency', v_plan.currency,
                            'product_name', v_plan.name || case when v_specialist then ' + brand specialist' else '' end,
                            'plan_code', v_plan.code, 'customer_id', p_customer_id,
                            'customer_email', (select u.email from auth.users u where u.id = p_customer_id),
                            'expires_at', floor(extract(epoch from v_booking.expires_at))::bigint);
end
$$;
revoke execute on function private.prepare_checkout(uuid, text, uuid, uuid, uuid, boolean, timestamptz) from public;
grant execute on function private.prepare_checkout(uuid, text, uuid, uuid, uuid, boolean, timestamptz) to service_role;

-- A paid extension of a live session (create_checkout with extension_id; the extension comes
-- from public.request_extension). Price and currency come from the extension row. Credit that
-- covers the price pays it at once and the extension is granted; otherwise a pending card booking
-- (naming the session it extends) waits for a Checkout Session. Same answer shape as
-- prepare_checkout. Lock order as in every lifecycle path: request → session, then the
-- extension, then the customer's credit.
create or replace function private.prepare_extension_checkout(
  p_customer_id uuid,
  p_extension_id uuid,
  p_now timestamptz default now()
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_ext public.session_extensions;
  v_session public.sessions;
  v_booking public.bookings;
  v_balance int;
  v_payment_id uuid;
begin
  if p_customer_id is null or p_extension_id is null then
    perform private.raise_error('invalid_input', 'extension_id is required');
  end if;
  select * into v_ext from public.session_extensions where id = p_extension_id;
  if found then
    select * into v_session from public.sessions where id = v_ext.session_id;
  end if;
  if v_ext.id is null or v_session.customer_id is distinct from p_customer_id then
    perform private.raise_error('not_found', 'no such extension');
  end if;
  perform private.lock_session_for_refund(v_session.id);
  select * into v_session from public.sessions where id = v_ext.session_id;
  select * into v_ext from public.session_extensions where id = p_extension_id for update;
  if v_ext.kind <> 'paid' then
    perform private.raise_error('invalid_input', 'this extension is free: it needs no payment');
  end if;
  if v_ext.status <> 'pending_payment' then
    perform private.raise_error('conflict', format('the extension is %s, not pending payment', v_ext.status));
  end if;
  if v_session.status <> 'live' then
    perform private.raise_error('extension_not_allowed',
      format('a %s session cannot be extended', v_session.status));
  end if;
  if v_ext.price_cents <= 0 then
    perform private.raise_error('invalid_input', 'this extension has no price');
  end if;

  -- Credit that covers the whole price pays at once; the session is live and locked: granted.
  perform private.lock_credit(p_customer_id);
  v_balance := private.credit_balance(p_customer_id);
  if v_balance >= v_ext.price_cents then
    insert into public.bookings (customer_id, extension_id, session_id, price_cents, currency, method, status,
                                 status_changed_at)
    values (p_customer_id, v_ext.id, v_session.id, v_ext.price_cents, v_ext.currency, 'credit', 'pending', p_now)
    returning * into v_booking;
    v_payment_id := private.pay_booking_with_credit(v_booking.id,
                                                    format('%s-minute session extension', v_ext.minutes), p_now);
    if not private.grant_extension(v_ext.id, p_now) then
      perform private.raise_error('extension_not_allowed', 'the session is no longer live');
    end if;
    update public.bookings set status = 'paid', status_changed_at = p_now where id = v_booking.id;
    return jsonb_build_object('mode', 'credit', 'booking_id', v_booking.id, 'payment_id', v_payment_id,
                              'session_id', v_session.id, 'request_id', null, 'extension_id', v_ext.id,
                              'extension_status', 'granted', 'minutes', v_ext.minutes,
                              'deadline_at', (select s.deadline_at from public.sessions s where s.id = v_session.id),
                              'price_cents', v_ext.price_cents, 'currency', v_ext.currency,
                              'credit_balance_cents', v_balance - v_ext.price_cents);
  end if;

  -- The same open checkout again (a double click, a retry): its URL is still good.
  select * into v_booking from public.bookings b
  where b.extension_id = v_ext.id and b.customer_id = p_customer_id and b.status = 'pending' and b.method = 'card'
    and b.price_cents = v_ext.price_cents and b.checkout_url is not null and b.expires_at > p_now + interval '5 minutes'
  order by b.created_at desc
  limit 1;
  if found then
    return jsonb_build_object('mode', 'stripe', 'reused', true, 'booking_id', v_booking.id, 'url', v_booking.checkout_url,
                              'price_cents', v_booking.price_cents, 'currency', v_booking.currency,
                              'extension_id', v_ext.id, 'session_id', v_session.id);
  end if;

  insert into public.bookings (customer_id, extension_id, session_id, price_cents, currency, method, status,
                               status_changed_at, expires_at)
  values (p_customer_id, v_ext.id, v_session.id, v_ext.price_cents, v_ext.currency, 'card', 'pending', p_now,
          p_now + private.setting_interval('payments.checkout_expires_after'))
  returning * into v_booking;
  return jsonb_build_object('mode', 'stripe', 'reused', false, 'booking_id', v_booking.id,
                            'price_cents', v_ext.price_cents, 'currency', v_ext.currency,
                            'product_name', format('Session extension (%s minutes)', v_ext.minutes),
                            'plan_code', null, 'extension_id', v_ext.id, 'session_id', v_session.id,
                            'customer_id', p_customer_id,
                            'customer_email', (select u.email from auth.users u where u.id = p_customer_id),
                            'expires_at', floor(extract(epoch from v_booking.expires_at))::bigint);
end
$$;
revoke execute on function private.prepare_extension_checkout(uuid, uuid, timestamptz) from public;
grant execute on function private.prepare_extension_checkout(uuid, uuid, timestamptz) to service_role;

-- The Checkout Session created for a pending card booking (after the Stripe call).
create or replace function private.record_checkout_session(p_booking_id uuid, p_checkout_session_id text, p_url text)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_booking public.bookings;
begin
  update public.bookings
  set stripe_checkout_session_id = coalesce(stripe_checkout_session_id, p_checkout_session_id),
      checkout_url = coalesce(checkout_url, p_url)
  where id = p_booking_id and method = 'card'
  returning * into v_booking;
  if not found then
    perform private.raise_error('not_found', 'no such booking');
  end if;
  return jsonb_build_object('booking_id', v_booking.id, 'url', v_booking.checkout_url, 'status', v_booking.status);
end
$$;
revoke execute on function private.record_checkout_session(uuid, text, text) from public;
grant execute on function private.record_checkout_session(uuid, text, text) to service_role;

-- Stripe refused to create the Checkout Session: the booking failed.
create or replace function private.fail_checkout(p_booking_id uuid, p_reason text, p_now timestamptz default now())
returns void
language sql volatile security definer set search_path = ''
as $$
  update public.bookings set status = 'failed', failure_reason = left(p_reason, 1000), status_changed_at = p_now
  where id = p_booking_id and status = 'pending' and stripe_checkout_session_id is null
$$;
revoke execute on function private.fail_checkout(uuid, text, timestamptz) from public;
grant execute on function private.fail_checkout(uuid, text, timestamptz) to service_role;
-- <<< functions_sql payments/checkout.sql

-- >>> functions_sql payments/connect.sql sha256=a8b79815e5f06ce6f00f3f5f82767bb9579e5e9c5f750338fc5c905c866b306d
-- Payments: Stripe Connect onboarding.

-- ---------------------------------------------------------------------------------------------
-- Connect onboarding (functions/connect.py)
-- ---------------------------------------------------------------------------------------------
-- Who gets the connected account: the caller as an approved mechanic, or a workshop it owns.
create or replace function private.prepare_connect_account(p_user_id uuid, p_organization_id uuid) returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_mechanic public.mechanics;
  v_org public.organizations;
  v_role public.organization_role;
begin
  if p_user_id is null then
    perform private.raise_error('not_authenticated', 'sign in first');
  end if;
  if p_organization_id is null then
    select * into v_mechanic from public.mechanics where id = p_user_id;
    if not found or v_mechanic.status <> 'approved' then
      perform private.raise_error('not_allowed', 'only approved mechanics and workshop owners set up payouts');
    end if;
    return jsonb_build_object('owner_kind', 'mechanic', 'owner_id', v_mechanic.id, 'country', v_mechanic.country,
      'email', (select u.email from auth.users u where u.id = p_user_id),
      'stripe_account_id', (select a.stripe_account_id from public.payout_accounts a where a.mechanic_id = p_user_id));
  end if;
  select om.role into v_role from public.organization_members om
  where om.organization_id = p_organization_id and om.user_id = p_user_id;
  if not found then
    perform private.raise_error('not_found', 'no such workshop');
  end if;
  if v_role <> 'owner' then
    perform private.raise_error('not_allowed', 'only the workshop''s owner sets up its payouts');
  end if;
  select * into v_org from public.organizations where id = p_organization_id;
  return jsonb_build_object('owner_kind', 'workshop', 'owner_id', v_org.id, 'country', v_org.country,
    'email', (select u.email from auth.users u where u.id = p_user_id),
    'stripe_account_id', (select a.stripe_account_id from public.payout_accounts a
                          where a.organization_id = p_organization_id));
end
$$;
revoke execute on function private.prepare_connect_account(uuid, uuid) from public;
grant execute on function private.prepare_connect_account(uuid, uuid) to service_role;

-- Stores the connected account once; a concurrent second one loses and the stored one is returned.
create or replace function private.record_connect_account(p_owner_kind text, p_owner_id uuid, p_stripe_account_id text)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_stored text;
begin
  if p_owner_kind not in ('mechanic', 'workshop') or p_owner_id is null
     or p_stripe_account_id !~ '^acct_[A-Za-z0-9]{1,250}$' then
    perform private.raise_error('invalid_input', 'an owner and a Stripe account id are required');
  end if;
  insert into public.payout_accounts (mechanic_id, organization_id, stripe_account_id)
  values (case when p_owner_kind = 'mechanic' then p_owner_id end,
          case when p_owner_kind = 'workshop' then p_owner_id end, p_stripe_account_id)
  on conflict do nothing;
  select a.stripe_account_id into v_stored from public.payout_accounts a
  where (p_owner_kind = 'mechanic' and a.mechanic_id = p_owner_id)
     or (p_owner_kind = 'workshop' and a.organization_id = p_owner_id);
  return jsonb_build_object('stripe_account_id', v_stored, 'created', v_stored = p_stripe_account_id);
end
$$;
revoke execute on function private.record_connect_account(text, uuid, text) from public;
grant execute on function private.record_connect_account(text, uuid, text) to service_role;
-- <<< functions_sql payments/connect.sql

-- >>> functions_sql payments/credit.sql sha256=46ca316d088673f86ba57da14e97a14d761a4570debc1f3ad5d74e2538deb54f
-- Payments: customer credit.

-- ---------------------------------------------------------------------------------------------
-- Customer credit
-- ---------------------------------------------------------------------------------------------
-- Serializes one customer's credit entries (transaction-scoped): the balance read and the entry
-- written under it cannot interleave with another debit.
create or replace function private.lock_credit(p_customer_id uuid) returns void
language sql volatile security definer set search_path = ''
as $$ select pg_advisory_xact_lock(hashtextextended('autodoctor.credit:' || p_customer_id::text, 0)) $$;

create or replace function private.credit_balance(p_customer_id uuid) returns int
language sql stable security definer set search_path = ''
as $$
  select coalesce((select l.balance_after_cents from public.credit_ledger l
                   where l.customer_id = p_customer_id order by l.seq desc limit 1), 0)
$$;
revoke execute on function private.lock_credit(uuid) from public;
revoke execute on function private.credit_balance(uuid) from public;
grant execute on function private.lock_credit(uuid) to service_role;
grant execute on function private.credit_balance(uuid) to service_role;

-- Appends an entry; a debit beyond the balance is insufficient_credit (AD022). The running
-- balance has a check constraint (>= 0) and (customer, seq) is unique, so even a writer that
-- skipped the lock could not take the balance below zero.
create or replace function private.add_credit_entry(
  p_customer_id uuid,
  p_kind public.credit_entry_kind,
  p_amount_cents int,
  p_currency text default null,
  p_booking_id uuid default null,
  p_refund_id uuid default null,
  p_note text default null,
  p_created_by uuid default null
) returns public.credit_ledger
language plpgsql security definer set search_path = ''
as $$
declare
  v_last public.credit_ledger;
  v_row public.credit_ledger;
  v_currency text;
begin
  if p_customer_id is null or p_kind is null or p_amount_cents is null or p_amount_cents = 0
     or (p_kind = 'debit') <> (p_amount_cents < 0) then
    perform private.raise_error('invalid_input', 'a credit entry needs a customer, a kind and an amount of its sign');
  end if;
  perform private.lock_credit(p_customer_id);
  select * into v_last from public.credit_ledger where customer_id = p_customer_id order by seq desc limit 1;
  v_currency := coalesce(p_currency, v_last.currency, 'usd');
  if v_last.currency is not null and v_last.currency <> v_currency then
    perform private.raise_error('invalid_input', format('credit is held in %s', v_last.currency));
  end if;
  if coalesce(v_last.balance_after_cents, 0) + p_amount_cents < 0 then
    perform private.raise_error('insufficient_credit',
      format('the credit balance is %s cents', coalesce(v_last.balance_after_cents, 0)));
  end if;
  insert into public.credit_ledger (customer_id, seq, kind, amount_cents, balance_after_cents, currency, booking_id,
                                    refund_id, note, created_by)
  values (p_customer_id, coalesce(v_last.seq, 0) + 1, p_kind, p_amount_cents,
          coalesce(v_last.balance_after_cents, 0) + p_amount_cents, v_currency, p_booking_id, p_refund_id,
          left(p_note, 4000), p_created_by)
  returning * into v_row;
  return v_row;
end
$$;
revoke execute on function private.add_credit_entry(uuid, public.credit_entry_kind, int, text, uuid, uuid, text, uuid) from public;
grant execute on function private.add_credit_entry(uuid, public.credit_entry_kind, int, text, uuid, uuid, text, uuid) to service_role;

-- A booking paid from the customer's credit: the debit and the payment, for the booking's price
-- and session (and extension). The caller holds the customer's credit lock and has checked the
-- balance. Returns the payment's id.
create or replace function private.pay_booking_with_credit(p_booking_id uuid, p_note text,
                                                           p_now timestamptz default now())
returns uuid
language plpgsql security definer set search_path = ''
as $$
declare
  v_booking public.bookings;
  v_payment_id uuid;
begin
  select * into v_booking from public.bookings where id = p_booking_id;
  perform private.add_credit_entry(v_booking.customer_id, 'debit', -v_booking.price_cents, v_booking.currency,
                                   v_booking.id, null, p_note, v_booking.customer_id);
  insert into public.payments (booking_id, customer_id, session_id, extension_id, method, amount_cents, currency,
                               transfer_group, paid_at)
  values (v_booking.id, v_booking.customer_id, v_booking.session_id, v_booking.extension_id, 'credit',
          v_booking.price_cents, v_booking.currency, 'booking_' || v_booking.id::text, p_now)
  returning id into v_payment_id;
  return v_payment_id;
end
$$;
revoke execute on function private.pay_booking_with_credit(uuid, text, timestamptz) from public;
grant execute on function private.pay_booking_with_credit(uuid, text, timestamptz) to service_role;

-- The balance per customer (RLS of credit_ledger applies: customers see their own).
create or replace view public.credit_balances with (security_invoker = true) as
select distinct on (l.customer_id) l.customer_id, l.balance_after_cents as balance_cents, l.currency,
       l.created_at as updated_at
from public.credit_ledger l
order by l.customer_id, l.seq desc;
grant select on public.credit_balances to authenticated, service_role;
comment on view public.credit_balances is 'Each customer''s credit balance: its last ledger entry''s running balance.';
-- <<< functions_sql payments/credit.sql

-- >>> functions_sql payments/helpers.sql sha256=564335851c5012a83791aa07b04ab1e2be627799d5b7fb91e995d57776037964
-- Payments: small helpers and table triggers.
--
-- Locking order everywhere in payments: booking → payment → refund / payouts → credit (advisory,
-- per customer). Stripe is never called from SQL: the Python side claims rows, commits, calls,
-- then records.

-- ---------------------------------------------------------------------------------------------
-- Small helpers
-- ---------------------------------------------------------------------------------------------
-- A Stripe reference that is either an id or an expanded object.
create or replace function private.stripe_id(p_value jsonb) returns text
language sql immutable parallel safe set search_path = ''
as $$
  select case jsonb_typeof(p_value) when 'string' then p_value #>> '{}' when 'object' then p_value ->> 'id' end
$$;
revoke execute on function private.stripe_id(jsonb) from public;
grant execute on function private.stripe_id(jsonb) to service_role;

-- Why a payee cannot receive transfers now (null when it can).
create or replace function private.payee_waiting_reason(p_mechanic_id uuid, p_organization_id uuid) returns text
language sql stable security definer set search_path = ''
as $$
  select case
    when a.id is null then 'no payout account: the payee has not set up payouts'
    when not a.transfers_active then 'the payout account cannot receive transfers yet (transfers capability not active)'
  end
  from (select 1) one
  left join public.payout_accounts a
    on (p_mechanic_id is not null and a.mechanic_id = p_mechanic_id)
    or (p_organization_id is not null and a.organization_id = p_organization_id)
$$;
revoke execute on function private.payee_waiting_reason(uuid, uuid) from public;
grant execute on function private.payee_waiting_reason(uuid, uuid) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Table triggers: updated_at, append-only credit ledger, default split rules stay
-- ---------------------------------------------------------------------------------------------
do $$
declare
  v_table text;
begin
  foreach v_table in array array['revenue_split_rules', 'bookings', 'payments', 'refunds', 'payouts',
                                 'transfer_reversals']
  loop
    execute format('drop trigger if exists _010_set_updated_at on public.%I', v_table);
    execute format('create trigger _010_set_updated_at before update on public.%I '
                   'for each row execute function private.tg__set_updated_at()', v_table);
  end loop;
end
$$;

drop trigger if exists _100_append_only on public.credit_ledger;
create trigger _100_append_only before update or delete on public.credit_ledger
  for each row execute function private.tg__append_only();  -- core/transitions.sql
drop trigger if exists _101_append_only_truncate on public.credit_ledger;
create trigger _101_append_only_truncate before truncate on public.credit_ledger
  for each statement execute function private.tg__append_only();  -- core/transitions.sql

-- Every mechanic type keeps a `default` rule, so settlement always finds one.
create or replace function private.tg_revenue_split_rules__keep_defaults() returns trigger
language plpgsql set search_path = ''
as $$
begin
  if old.session_kind = 'default'
     and (tg_op = 'DELETE' or new.session_kind <> 'default' or new.mechanic_type <> old.mechanic_type) then
    perform private.raise_error('not_allowed', 'the default split rule of a mechanic type can be changed, not removed');
  end if;
  return case when tg_op = 'DELETE' then old else new end;
end
$$;
drop trigger if exists _100_keep_defaults on public.revenue_split_rules;
create trigger _100_keep_defaults before update or delete on public.revenue_split_rules
  for each row execute function private.tg_revenue_split_rules__keep_defaults();

revoke execute on function private.tg_revenue_split_rules__keep_defaults() from public;
-- <<< functions_sql payments/helpers.sql

-- >>> functions_sql payments/integrity.sql sha256=53638ac80faedb77c2e9dfcb8a44542f7fea7660de2751adb6fd25577b9c90e0
-- Payments: money integrity views.

-- ---------------------------------------------------------------------------------------------
-- Money integrity: every payment's amount is fully accounted for
--   amount = refunded + refunds in flight + transferred (net of reversals) + payouts in flight
--            (net of reversals in flight) + platform fee (once settled) + unsettled remainder
-- ---------------------------------------------------------------------------------------------
create or replace view private.payment_balances as
select p.id as payment_id, p.session_id, p.customer_id, p.method, p.amount_cents, p.currency, p.settled_at,
       coalesce(r.refunded, 0)::int as refunded_cents,
       coalesce(r.in_flight, 0)::int as refund_pending_cents,
       (coalesce(o.paid, 0) - coalesce(v.succeeded, 0))::int as transferred_cents,
       (coalesce(o.in_flight, 0) - coalesce(v.in_flight, 0))::int as payout_pending_cents,
       case when p.settled_at is null then 0 else p.platform_fee_cents end as platform_fee_cents,
       case when p.settled_at is null then p.amount_cents - coalesce(r.refunded, 0) - coalesce(r.in_flight, 0)
            else 0 end::int as unsettled_cents,
       coalesce(o.count_, 0)::int as payouts,
       coalesce(v.over_reversed, 0)::int as over_reversed_payouts
from public.payments p
left join lateral (
  select sum(x.amount_cents) filter (where x.status = 'succeeded') as refunded,
         sum(x.amount_cents) filter (where x.status in ('queued', 'processing')) as in_flight
  from public.refunds x where x.payment_id = p.id) r on true
left join lateral (
  select sum(x.amount_cents) filter (where x.status = 'paid') as paid,
         sum(x.amount_cents) filter (where x.status in ('waiting', 'queued', 'processing', 'failed')) as in_flight,
         count(*) as count_
  from public.payouts x where x.payment_id = p.id) o on true
left join lateral (
  select sum(y.succeeded) as succeeded, sum(y.in_flight) as in_flight,
         count(*) filter (where y.total > y.payout_amount) as over_reversed
  from (select sum(t.amount_cents) filter (where t.status = 'succeeded') as succeeded,
               sum(t.amount_cents) filter (where t.status in ('queued', 'processing', 'failed')) as in_flight,
               sum(t.amount_cents) as total, x.amount_cents as payout_amount
        from public.payouts x join public.transfer_reversals t on t.payout_id = x.id
        where x.payment_id = p.id group by x.id, x.amount_cents) y) v on true;

create or replace view private.payment_integrity_issues as
select b.*,
       b.refunded_cents + b.refund_pending_cents + b.transferred_cents + b.payout_pending_cents
         + b.platform_fee_cents + b.unsettled_cents as accounted_cents,
       case
         when b.refunded_cents + b.refund_pending_cents > b.amount_cents then 'refunds exceed the payment'
         when b.settled_at is null and b.payouts > 0 then 'payouts before the session completed'
         when b.over_reversed_payouts > 0 then 'a payout reversed by more than it paid'
         when b.refunded_cents + b.refund_pending_cents + b.transferred_cents + b.payout_pending_cents
              + b.platform_fee_cents + b.unsettled_cents <> b.amount_cents then 'amount is not fully accounted for'
       end as problem
from private.payment_balances b
where b.refunded_cents + b.refund_pending_cents + b.transferred_cents + b.payout_pending_cents
        + b.platform_fee_cents + b.unsettled_cents <> b.amount_cents
   or b.refunded_cents + b.refund_pending_cents > b.amount_cents
   or (b.settled_at is null and b.payouts > 0)
   or b.over_reversed_payouts > 0;

-- Customers whose running credit balance disagrees with the sum of their entries.
create or replace view private.credit_integrity_issues as
select l.customer_id, sum(l.amount_cents)::int as entries_sum_cents,
       (array_agg(l.balance_after_cents order by l.seq desc))[1] as balance_cents,
       count(*)::int as entries, max(l.seq) as last_seq
from public.credit_ledger l
group by l.customer_id
having sum(l.amount_cents) <> (array_agg(l.balance_after_cents order by l.seq desc))[1] or count(*) <> max(l.seq);

revoke all on private.payment_balances, private.payment_integrity_issues, private.credit_integrity_issues from public;
grant select on private.payment_balances, private.payment_integrity_issues, private.credit_integrity_issues
  to service_role;
comment on view private.payment_integrity_issues is
  'Payments whose amount is not exactly refunds + transfers + platform fee + pending; empty when the books balance.';

-- Admins read the integrity report through the API.
create or replace function public.admin_payment_integrity() returns setof jsonb
language plpgsql stable security definer set search_path = ''
as $$
begin
  perform private.require_admin();
  return query
    select to_jsonb(i) || jsonb_build_object('kind', 'payment') from private.payment_integrity_issues i
    union all
    select to_jsonb(c) || jsonb_build_object('kind', 'credit') from private.credit_integrity_issues c;
end
$$;
revoke execute on function public.admin_payment_integrity() from public, anon;
grant execute on function public.admin_payment_integrity() to authenticated, service_role;
-- <<< functions_sql payments/integrity.sql

-- >>> functions_sql payments/refunds.sql sha256=4edb68f527fb1003c755f4ec54da1214e1e63810003107ad81db117692e51fb7
-- Payments: refunds.

-- ---------------------------------------------------------------------------------------------
-- Refunds: requested (allocated at once), then sent by a stripe.refund job; Stripe reports the outcome.
-- ---------------------------------------------------------------------------------------------
create or replace function private.refund_rank(p_status public.refund_status) returns int
language sql immutable parallel safe set search_path = ''
as $$
  select case p_status when 'queued' then 0 when 'processing' then 1 when 'succeeded' then 2 else 3 end
$$;
revoke execute on function private.refund_rank(public.refund_status) from public;
grant execute on function private.refund_rank(public.refund_status) to service_role;

create or replace function private.refund_status_from_stripe(p_status text) returns public.refund_status
language sql immutable parallel safe set search_path = ''
as $$
  select case p_status
    when 'succeeded' then 'succeeded'::public.refund_status
    when 'failed' then 'failed'::public.refund_status
    when 'canceled' then 'canceled'::public.refund_status
    else 'processing'::public.refund_status  -- pending, requires_action
  end
$$;
revoke execute on function private.refund_status_from_stripe(text) from public;
grant execute on function private.refund_status_from_stripe(text) to service_role;

-- payments.status follows the refunds that succeeded (money actually returned).
create or replace function private.refresh_payment_status(p_payment_id uuid) returns void
language sql volatile security definer set search_path = ''
as $$
  update public.payments p
  set status = case when r.done = 0 then 'succeeded'::public.payment_status
                    when r.done >= p.amount_cents then 'refunded'::public.payment_status
                    else 'partially_refunded'::public.payment_status end
  from (select coalesce(sum(x.amount_cents) filter (where x.status = 'succeeded'), 0) as done
        from public.refunds x where x.payment_id = p_payment_id) r
  where p.id = p_payment_id
    and p.status is distinct from (case when r.done = 0 then 'succeeded'::public.payment_status
                                        when r.done >= p.amount_cents then 'refunded'::public.payment_status
                                        else 'partially_refunded'::public.payment_status end)
$$;
revoke execute on function private.refresh_payment_status(uuid) from public;
grant execute on function private.refresh_payment_status(uuid) to service_role;

-- A refund of a settled payment takes the payees' proportional share back: from a payout that
-- was never attempted by lowering its amount, otherwise by a queued transfer reversal. What the
-- payees do not return comes out of the platform's fee. The last refund (nothing left after it)
-- takes back everything that remains, so rounding never leaves a cent behind.
create or replace function private.allocate_refund(p_payment public.payments, p_refund public.refunds, p_all boolean,
                                                   p_now timestamptz)
returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_payout public.payouts;
  v_remaining int;
  v_cut int;
  v_taken int := 0;
begin
  if coalesce(p_payment.settled_base_cents, 0) > 0 then
    for v_payout in
      select * from public.payouts where payment_id = p_payment.id and status <> 'cancelled' order by id for update
    loop
      v_remaining := v_payout.amount_cents
        - coalesce((select sum(v.amount_cents) from public.transfer_reversals v where v.payout_id = v_payout.id), 0);
      v_cut := case when p_all then v_remaining
                    else least(v_remaining, floor(v_payout.original_amount_cents::numeric * p_refund.amount_cents
                                                  / p_payment.settled_base_cents)::int) end;
      continue when v_cut <= 0;
      -- never attempted (no destination yet): Stripe never saw its amount, lower it in place
      if v_payout.destination_account is null and v_payout.status in ('waiting', 'queued') then
        update public.payouts
        set amount_cents = amount_cents - v_cut,
            status = case when amount_cents - v_cut = 0 then 'cancelled'::public.payout_status else status end
        where id = v_payout.id;
      else
        insert into public.transfer_reversals (payout_id, refund_id, amount_cents)
        values (v_payout.id, p_refund.id, v_cut);
      end if;
      v_taken := v_taken + v_cut;
    end loop;
  end if;
  update public.payments set platform_fee_cents = platform_fee_cents - (p_refund.amount_cents - v_taken)
  where id = p_payment.id;
end
$$;
revoke execute on function private.allocate_refund(public.payments, public.refunds, boolean, timestamptz) from public;
grant execute on function private.allocate_refund(public.payments, public.refunds, boolean, timestamptz) to service_role;

-- Moves a refund forward (queued → processing → succeeded → failed/canceled; never back). A
-- refund that fails after the payment was settled leaves the money with the platform (its fee
-- grows by the amount): the payees' share was already taken back.
create or replace function private.set_refund_status(
  p_refund_id uuid, p_status public.refund_status, p_error text default null, p_now timestamptz default now()
) returns boolean
language plpgsql security definer set search_path = ''
as $$
declare
  v_refund public.refunds;
  v_settled timestamptz;
begin
  select * into v_refund from public.refunds where id = p_refund_id for update;
  if not found or private.refund_rank(p_status) <= private.refund_rank(v_refund.status) then
    return false;
  end if;
  update public.refunds
  set status = p_status, succeeded_at = case when p_status = 'succeeded' then p_now else succeeded_at end,
      last_error = coalesce(left(p_error, 2000), last_error)
  where id = p_refund_id;
  if p_status in ('failed', 'canceled') and v_refund.status not in ('failed', 'canceled') then
    select settled_at into v_settled from public.payments where id = v_refund.payment_id;
    if v_settled is not null then
      update public.payments set platform_fee_cents = platform_fee_cents + v_refund.amount_cents
      where id = v_refund.payment_id;
    end if;
  end if;
  perform private.refresh_payment_status(v_refund.payment_id);
  return true;
end
$$;
revoke execute on function private.set_refund_status(uuid, public.refund_status, text, timestamptz) from public;
grant execute on function private.set_refund_status(uuid, public.refund_status, text, timestamptz) to service_role;

-- Takes a session's request and session row locks, in the order every lifecycle path takes
-- them (request → session → payment): a refund that may cancel the session locks these before
-- the payment, so it never deadlocks with a customer cancelling or the expiry sweep.
create or replace function private.lock_session_for_refund(p_session_id uuid) returns void
language plpgsql security definer set search_path = ''
as $$
begin
  if p_session_id is not null then
    perform 1 from public.session_requests where session_id = p_session_id for update;
    perform 1 from public.sessions where id = p_session_id for update;
  end if;
end
$$;

-- Records a refund of `p_payment_id` (null amount: all that remains). A card refund is queued for
-- a stripe.refund job (or, from Stripe, recorded as Stripe reports it); a credit refund goes back to the
-- customer's credit at once. A payment that is then fully refunded cancels its session if the
-- session has not started (nobody should serve a refunded request).
create or replace function private.request_refund(
  p_payment_id uuid,
  p_amount_cents int,
  p_origin text,
  p_reason text,
  p_requested_by uuid default null,
  p_stripe_refund_id text default null,
  p_status public.refund_status default null,
  p_now timestamptz default now()
) returns public.refunds
language plpgsql security definer set search_path = ''
as $$
declare
  v_payment public.payments;
  v_open int;
  v_refundable int;
  v_amount int;
  v_refund public.refunds;
  v_victim public.refunds;
  v_session_status public.session_status;
begin
  select * into v_payment from public.payments where id = p_payment_id for update;
  if not found then
    perform private.raise_error('not_found', 'no such payment');
  end if;
  select coalesce(sum(amount_cents) filter (where status not in ('failed', 'canceled')), 0) into v_open
  from public.refunds where payment_id = p_payment_id;
  v_refundable := v_payment.amount_cents - v_open;
  v_amount := coalesce(p_amount_cents, v_refundable);

  if p_origin = 'stripe' then
    -- Stripe already moved the money: record it. Our own refunds not yet sent make room for it.
    while v_amount > v_refundable loop
      select * into v_victim from public.refunds
      where payment_id = p_payment_id and status = 'queued' and stripe_refund_id is null and destination = 'card'
      order by seq desc limit 1;
      exit when not found;
      perform private.set_refund_status(v_victim.id, 'canceled', 'superseded by a refund made in Stripe', p_now);
      v_refundable := v_refundable + v_victim.amount_cents;
    end loop;
  elsif v_amount is null or v_amount <= 0 or v_amount > v_refundable then
    perform private.raise_error('refund_too_large',
      format('%s cents remain refundable on this payment', greatest(v_refundable, 0)));
  end if;

  insert into public.refunds (payment_id, customer_id, seq, amount_cents, currency, destination, origin, reason,
                              requested_by, status, stripe_refund_id)
  values (v_payment.id, v_payment.customer_id,
          coalesce((select max(seq) from public.refunds where payment_id = v_payment.id), 0) + 1,
          v_amount, v_payment.currency, v_payment.method, p_origin, left(p_reason, 4000), p_requested_by,
          case when v_payment.method = 'credit' then 'succeeded'::public.refund_status
               else coalesce(p_status, 'queued'::public.refund_status) end,
          p_stripe_refund_id)
  returning * into v_refund;
  if v_refund.status = 'succeeded' then
    update public.refunds set succeeded_at = p_now where id = v_refund.id returning * into v_refund;
  end if;

  if v_payment.method = 'credit' then
    perform private.add_credit_entry(v_payment.customer_id, 'refund', v_amount, v_payment.currency, null, v_refund.id,
                                     coalesce(p_reason, 'refund'), p_requested_by);
  end if;
  if v_refund.status not in ('failed', 'canceled') then
    if v_payment.settled_at is not null then
      perform private.allocate_refund(v_payment, v_refund, v_amount >= v_refundable, p_now);
    end if;
    if v_amount >= v_refundable and v_payment.session_id is not null then
      -- Callers that may get here took the request and session locks first
      -- (private.lock_session_for_refund, or the lifecycle update that fired the trigger).
      select status into v_session_status from public.sessions where id = v_payment.session_id;
      if v_session_status in ('pending', 'scheduled', 'waiting') then
        perform private.cancel_session(v_payment.session_id, coalesce(left(p_reason, 4000), 'refunded'), p_now);
      end if;
    end if;
  end if;
  perform private.refresh_payment_status(v_payment.id);
  return v_refund;
end
$$;
revoke execute on function private.request_refund(uuid, int, text, text, uuid, text, public.refund_status, timestamptz) from public;
grant execute on function private.request_refund(uuid, int, text, text, uuid, text, public.refund_status, timestamptz) to service_role;

-- A paid session cancelled before any mechanic took it (or whose request expired) is refunded in
-- full, whatever path cancelled it.
create or replace function private.auto_refund(p_session_id uuid, p_reason text, p_now timestamptz default now())
returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_payment public.payments;
  v_open int;
begin
  -- the session's own payment and any paid extensions
  for v_payment in
    select * from public.payments where session_id = p_session_id order by paid_at, id for update
  loop
    select coalesce(sum(amount_cents) filter (where status not in ('failed', 'canceled')), 0) into v_open
    from public.refunds where payment_id = v_payment.id;
    if v_payment.amount_cents - v_open > 0 then
      perform private.request_refund(v_payment.id, null, 'automatic', p_reason, null, null, null, p_now);
    end if;
  end loop;
end
$$;
revoke execute on function private.auto_refund(uuid, text, timestamptz) from public;
grant execute on function private.auto_refund(uuid, text, timestamptz) to service_role;

revoke execute on function private.lock_session_for_refund(uuid) from public;
grant execute on function private.lock_session_for_refund(uuid) to service_role;
-- <<< functions_sql payments/refunds.sql

-- >>> functions_sql payments/settlement.sql sha256=0735e958fe9a2a1d5c6876e38fe4deb0f07c6b6b79694bf34d016d43d92462d5
-- Payments: settlement into payouts by the revenue split rules, and the lifecycle steps.

-- ---------------------------------------------------------------------------------------------
-- Settlement: a completed session's payment is split into payouts by the revenue split rules.
-- ---------------------------------------------------------------------------------------------
-- Which split rule applies: a micro session on the mechanic's shift (recorded on the session when
-- it was accepted) is `micro_on_shift`, another micro session `micro`, the rest `default`.
create or replace function private.session_split_kind(p_session public.sessions)
returns public.split_session_kind
language sql immutable set search_path = ''
as $$
  select case
    when p_session.duration_type <> 'micro' then 'default'::public.split_session_kind
    when p_session.on_shift then 'micro_on_shift'::public.split_session_kind
    else 'micro'::public.split_session_kind
  end
$$;
revoke execute on function private.session_split_kind(public.sessions) from public;
grant execute on function private.session_split_kind(public.sessions) to service_role;

-- The most specific rule: (type, kind), then (type, micro) for an on-shift micro session, then
-- (type, default).
create or replace function private.split_rule_for(p_type public.mechanic_type, p_kind public.split_session_kind)
returns public.revenue_split_rules
language sql stable security definer set search_path = ''
as $$
  select r.* from public.revenue_split_rules r
  where r.mechanic_type = p_type
    and r.session_kind in (p_kind, case when p_kind = 'micro_on_shift' then 'micro'::public.split_session_kind end,
                           'default')
  order by case r.session_kind when p_kind then 0 when 'micro' then 1 else 2 end
  limit 1
$$;
revoke execute on function private.split_rule_for(public.mechanic_type, public.split_session_kind) from public;
grant execute on function private.split_rule_for(public.mechanic_type, public.split_session_kind) to service_role;

-- Splits every unsettled payment of a completed session (its own payment and any paid
-- extensions), each by the same rule, into one payout per payee.
create or replace function private.settle_payment(p_session_id uuid, p_now timestamptz default now()) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_payment public.payments;
  v_session public.sessions;
  v_mechanic public.mechanics;
  v_rule public.revenue_split_rules;
  v_base int;
  v_mechanic_cents int;
  v_workshop_cents int;
  v_reason text;
begin
  select * into v_session from public.sessions where id = p_session_id;
  select * into v_mechanic from public.mechanics where id = v_session.mechanic_id;
  if v_mechanic.id is not null then
    v_rule := private.split_rule_for(v_mechanic.mechanic_type, private.session_split_kind(v_session));
  end if;
  for v_payment in
    select * from public.payments where session_id = p_session_id and settled_at is null
    order by paid_at, id for update
  loop
    v_base := v_payment.amount_cents - coalesce((select sum(r.amount_cents) from public.refunds r
                                                 where r.payment_id = v_payment.id
                                                   and r.status not in ('failed', 'canceled')), 0);
    if v_base <= 0 or v_mechanic.id is null then
      update public.payments set settled_at = p_now, settled_base_cents = greatest(v_base, 0),
             platform_fee_cents = greatest(v_base, 0)
      where id = v_payment.id;
      continue;
    end if;
    v_mechanic_cents := floor(v_base::numeric * v_rule.mechanic_bps / 10000)::int;
    v_workshop_cents := floor(v_base::numeric * v_rule.workshop_bps / 10000)::int;
    if v_mechanic.organization_id is null then  -- no workshop to pay: its share goes to the mechanic
      v_mechanic_cents := v_mechanic_cents + v_workshop_cents;
      v_workshop_cents := 0;
    end if;

    if v_mechanic_cents > 0 then
      v_reason := private.payee_waiting_reason(v_mechanic.id, null);
      insert into public.payouts (payment_id, session_id, payee_kind, mechanic_id, share_bps, original_amount_cents,
                                  amount_cents, currency, status, waiting_reason)
      values (v_payment.id, p_session_id, 'mechanic', v_mechanic.id,
              v_rule.mechanic_bps + case when v_mechanic.organization_id is null then v_rule.workshop_bps else 0 end,
              v_mechanic_cents, v_mechanic_cents, v_payment.currency,
              case when v_reason is null then 'queued'::public.payout_status else 'waiting'::public.payout_status end,
              v_reason);
    end if;
    if v_workshop_cents > 0 then
      v_reason := private.payee_waiting_reason(null, v_mechanic.organization_id);
      insert into public.payouts (payment_id, session_id, payee_kind, organization_id, share_bps, original_amount_cents,
                                  amount_cents, currency, status, waiting_reason)
      values (v_payment.id, p_session_id, 'workshop', v_mechanic.organization_id, v_rule.workshop_bps,
              v_workshop_cents, v_workshop_cents, v_payment.currency,
              case when v_reason is null then 'queued'::public.payout_status else 'waiting'::public.payout_status end,
              v_reason);
    end if;
    update public.payments
    set settled_at = p_now, settled_base_cents = v_base, split_rule_id = v_rule.id,
        platform_fee_cents = v_base - v_mechanic_cents - v_workshop_cents
    where id = v_payment.id;
  end loop;
end
$$;
revoke execute on function private.settle_payment(uuid, timestamptz) from public;
grant execute on function private.settle_payment(uuid, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Lifecycle steps (called from core/lifecycle.sql; completing calls private.settle_payment above)
-- ---------------------------------------------------------------------------------------------
drop trigger if exists _400_payments on public.sessions;
drop function if exists private.tg_sessions__payments();
drop trigger if exists _400_payments on public.session_requests;
drop function if exists private.tg_session_requests__payments();

-- A paid session cancelled before a mechanic took it (from payments.auto_refund_from_statuses),
-- whatever path cancelled it, is refunded in full.
create or replace function private.payments_on_session_cancelled(
  p_session_id uuid, p_from public.session_status, p_now timestamptz default now()
) returns void
language plpgsql security definer set search_path = ''
as $$
begin
  if exists (select 1 from jsonb_array_elements_text(private.setting('payments.auto_refund_from_statuses')) s
             where s = p_from::text) then
    perform private.auto_refund(p_session_id,
      coalesce((select s.cancel_reason from public.sessions s where s.id = p_session_id),
               'cancelled before a mechanic took it'), p_now);
  end if;
end
$$;
revoke execute on function private.payments_on_session_cancelled(uuid, public.session_status, timestamptz) from public;
grant execute on function private.payments_on_session_cancelled(uuid, public.session_status, timestamptz)
  to service_role;

-- A request that expired had no mechanic: its session's payment is refunded in full (the refund
-- then cancels the session).
create or replace function private.payments_on_request_expired(p_session_id uuid, p_now timestamptz default now())
returns void
language plpgsql security definer set search_path = ''
as $$
begin
  if exists (select 1 from public.sessions s where s.id = p_session_id and s.status::text in (
               select jsonb_array_elements_text(private.setting('payments.auto_refund_from_statuses')))) then
    perform private.auto_refund(p_session_id,
      coalesce((select r.cancel_reason from public.session_requests r where r.session_id = p_session_id),
               'no mechanic took the request in time'), p_now);
  end if;
end
$$;
revoke execute on function private.payments_on_request_expired(uuid, timestamptz) from public;
grant execute on function private.payments_on_request_expired(uuid, timestamptz) to service_role;
-- <<< functions_sql payments/settlement.sql

-- >>> functions_sql payments/stripe_events.sql sha256=e9afa113c50d272f865dcc0fb91ab7698503b2241c4381c27b94dd8de600e7bd
-- Payments: the Stripe webhook's ledger and its event handlers.

-- ---------------------------------------------------------------------------------------------
-- Stripe event handlers (each returns an outcome word stored in the ledger)
-- ---------------------------------------------------------------------------------------------
create or replace function private.stripe_record_charge(p_payment_intent_id text, p_charge_id text) returns text
language plpgsql security definer set search_path = ''
as $$
begin
  if p_payment_intent_id is null or p_charge_id is null then
    return 'ignored';
  end if;
  update public.payments set stripe_charge_id = p_charge_id
  where stripe_payment_intent_id = p_payment_intent_id and stripe_charge_id is null;
  return case when found then 'applied' else 'no_change' end;
end
$$;
revoke execute on function private.stripe_record_charge(text, text) from public;
grant execute on function private.stripe_record_charge(text, text) to service_role;

-- A refund object from Stripe (refund.created / refund.updated, or inside charge.refunded).
create or replace function private.stripe_refund(p_refund jsonb, p_now timestamptz) returns text
language plpgsql security definer set search_path = ''
as $$
declare
  v_stripe_id text := p_refund ->> 'id';
  v_status public.refund_status := private.refund_status_from_stripe(p_refund ->> 'status');
  v_pi text := private.stripe_id(p_refund -> 'payment_intent');
  v_charge text := private.stripe_id(p_refund -> 'charge');
  v_ours uuid := private.try_uuid(p_refund #>> '{metadata,refund_id}');
  v_payment_id uuid;
  v_refund public.refunds;
  v_amount int;
begin
  if v_stripe_id is null or jsonb_typeof(p_refund -> 'amount') <> 'number' then
    return 'ignored';
  end if;
  v_amount := (p_refund ->> 'amount')::int;
  select r.payment_id into v_payment_id from public.refunds r
  where r.stripe_refund_id = v_stripe_id or (v_ours is not null and r.id = v_ours and r.stripe_refund_id is null)
  limit 1;
  if v_payment_id is null then
    select p.id into v_payment_id from public.payments p
    where (v_pi is not null and p.stripe_payment_intent_id = v_pi) or (v_charge is not null and p.stripe_charge_id = v_charge)
    limit 1;
  end if;
  if v_payment_id is null then
    return 'ignored';  -- not a payment of ours (yet: a later checkout.session.completed replays this event)
  end if;
  perform private.lock_session_for_refund((select p.session_id from public.payments p where p.id = v_payment_id));
  perform 1 from public.payments where id = v_payment_id for update;
  perform private.stripe_record_charge(v_pi, v_charge);

  select * into v_refund from public.refunds where stripe_refund_id = v_stripe_id for update;
  if not found and v_ours is not null then
    select * into v_refund from public.refunds where id = v_ours and payment_id = v_payment_id
      and stripe_refund_id is null for update;
  end if;
  if not found then
    -- made outside our API (e.g. the Dashboard): adopt a queued refund of the same amount we have
    -- not sent yet, else record it as Stripe's
    select * into v_refund from public.refunds
    where payment_id = v_payment_id and status = 'queued' and stripe_refund_id is null and destination = 'card'
      and amount_cents = v_amount
    order by seq limit 1 for update;
  end if;
  if found then
    update public.refunds set stripe_refund_id = v_stripe_id where id = v_refund.id and stripe_refund_id is null;
    return case when private.set_refund_status(v_refund.id, v_status, p_refund ->> 'failure_reason', p_now)
                then 'applied' else 'no_change' end;
  end if;
  if v_amount <= 0 then
    return 'ignored';
  end if;
  perform private.request_refund(v_payment_id, v_amount, 'stripe', coalesce(p_refund ->> 'reason', 'refunded in Stripe'),
                                 null, v_stripe_id, v_status, p_now);
  return 'applied';
end
$$;
revoke execute on function private.stripe_refund(jsonb, timestamptz) from public;
grant execute on function private.stripe_refund(jsonb, timestamptz) to service_role;

-- The Checkout Session was paid: record the payment (what Checkout charged), create the session
-- and request once, then replay charge and refund events that arrived before this one.
create or replace function private.stripe_checkout_paid(p_session jsonb, p_now timestamptz) returns text
language plpgsql security definer set search_path = ''
as $$
declare
  v_booking public.bookings;
  v_payment public.payments;
  v_pi text := private.stripe_id(p_session -> 'payment_intent');
  v_preferred uuid;
  v_ids jsonb;
  v_error text;
  v_event record;
  v_ext_status public.extension_status;
begin
  if coalesce(p_session ->> 'payment_status', '') not in ('paid', 'no_payment_required') then
    return 'awaiting_payment';  -- an asynchronous method: checkout.session.async_payment_* follows
  end if;
  select * into v_booking from public.bookings
  where id = private.try_uuid(p_session #>> '{metadata,booking_id}') for update;
  if not found then
    select * into v_booking from public.bookings where stripe_checkout_session_id = p_session ->> 'id' for update;
  end if;
  if not found or v_booking.method <> 'card' or v_booking.stripe_checkout_session_id <> p_session ->> 'id' then
    return 'ignored';  -- not ours, or another Checkout Session than the one recorded for the booking
  end if;
  update public.bookings set stripe_checkout_session_id = p_session ->> 'id'
  where id = v_booking.id and stripe_checkout_session_id is null;
  if v_booking.extension_id is not null then
    -- an extension changes a live session: its locks first, in lifecycle order (request → session)
    perform private.lock_session_for_refund(v_booking.session_id);
  end if;

  insert into public.payments (booking_id, customer_id, session_id, extension_id, method, amount_cents, currency,
                               stripe_checkout_session_id, stripe_payment_intent_id, transfer_group, paid_at)
  values (v_booking.id, v_booking.customer_id, case when v_booking.extension_id is not null then v_booking.session_id end,
          v_booking.extension_id, 'card', coalesce((p_session ->> 'amount_total')::int, v_booking.price_cents),
          coalesce(lower(p_session ->> 'currency'), v_booking.currency), p_session ->> 'id', v_pi,
          'booking_' || v_booking.id::text, p_now)
  on conflict (booking_id) do nothing
  returning * into v_payment;
  if not found then
    return 'already_recorded';
  end if;

  if v_booking.extension_id is not null and v_booking.status in ('pending', 'failed', 'expired') then
    -- a paid session extension: granted if still pending and the session is live; otherwise (the
    -- session ended meanwhile, or the extension was paid or cancelled already) refunded in full
    select status into v_ext_status from public.session_extensions where id = v_booking.extension_id for update;
    if v_ext_status = 'pending_payment' and private.grant_extension(v_booking.extension_id, p_now) then
      update public.bookings set status = 'paid', status_changed_at = p_now, failure_reason = null
      where id = v_booking.id;
      v_ids := jsonb_build_object('session_id', v_booking.session_id, 'extension_id', v_booking.extension_id);
    else
      v_error := case v_ext_status
                   when 'pending_payment' then 'the session ended before the extension was granted'
                   else format('the extension was %s already', v_ext_status) end;
      update public.bookings set status = 'unfulfilled', status_changed_at = p_now,
             failure_reason = left('paid, but the extension could not be granted: ' || v_error, 1000)
      where id = v_booking.id;
      perform private.request_refund(v_payment.id, null, 'unfulfilled', v_error, null, null, null, p_now);
      if (select s.status from public.sessions s where s.id = v_booking.session_id) = 'completed' then
        -- settled already: this payment too (nothing left of it after the refund: no payouts)
        perform private.settle_payment(v_booking.session_id, p_now);
      end if;
    end if;
  elsif v_booking.status in ('pending', 'failed', 'expired') then
    -- a preferred mechanic who is no longer approved is dropped rather than failing a paid booking
    v_preferred := (select m.id from public.mechanics m where m.id = v_booking.preferred_mechanic_id
                    and m.status = 'approved');
    begin
      perform private.set_actor('system', 'paid through checkout');
      if v_booking.hold_id is not null then
        -- a held slot: it books the slot or raises slot_taken, and then this booking is refunded
        -- like any unfulfilled one
        v_ids := private.book_paid_hold(v_booking.id, v_payment.amount_cents, p_now);
      else
        v_ids := private.create_session_request(v_booking.customer_id, v_booking.plan_code, v_booking.intake_id,
                                                v_booking.vehicle_id, v_preferred, v_booking.specialist,
                                                v_payment.amount_cents, p_now);
      end if;
    exception when others then
      if sqlstate not like 'AD%' then
        raise;
      end if;
      v_error := sqlerrm;
    end;
    if v_ids is not null then
      update public.bookings set status = 'paid', session_id = (v_ids ->> 'session_id')::uuid, status_changed_at = p_now,
             failure_reason = null
      where id = v_booking.id;
      update public.payments set session_id = (v_ids ->> 'session_id')::uuid where id = v_payment.id;
    else
      update public.bookings set status = 'unfulfilled', status_changed_at = p_now,
             failure_reason = left('paid, but the session could not be created: ' || v_error, 1000)
      where id = v_booking.id;
      perform private.request_refund(v_payment.id, null, 'unfulfilled', left(v_error, 4000), null, null, null, p_now);
    end if;
  end if;

  -- charge and refund events of this payment intent that came first (ledger order by created)
  for v_event in
    select e.type, e.payload #> '{data,object}' as obj from private.stripe_events e
    where v_pi is not null and e.payment_intent_id = v_pi and e.processed_at is not null
      and e.type not like 'checkout.session.%'
    order by e.created, e.id
  loop
    perform private.apply_stripe_event(v_event.type, v_event.obj, null, p_now);
  end loop;
  return case when v_ids is not null then 'paid' else 'unfulfilled' end;
end
$$;
revoke execute on function private.stripe_checkout_paid(jsonb, timestamptz) from public;
grant execute on function private.stripe_checkout_paid(jsonb, timestamptz) to service_role;

-- checkout.session.expired / async_payment_failed: an open booking ends without payment. A
-- failed card attempt (payment_intent.payment_failed) leaves the Checkout open, so its expiry
-- still ends the booking as expired: both orders end the same.
create or replace function private.stripe_checkout_ended(p_session jsonb, p_status public.booking_status,
                                                         p_reason text, p_now timestamptz)
returns text
language plpgsql security definer set search_path = ''
as $$
begin
  update public.bookings set status = p_status, failure_reason = p_reason, status_changed_at = p_now
  where (id = private.try_uuid(p_session #>> '{metadata,booking_id}') or stripe_checkout_session_id = p_session ->> 'id')
    and method = 'card'
    and (status = 'pending' or (status = 'failed' and p_status = 'expired'));
  return case when found then 'applied' else 'no_change' end;
end
$$;
revoke execute on function private.stripe_checkout_ended(jsonb, public.booking_status, text, timestamptz) from public;
grant execute on function private.stripe_checkout_ended(jsonb, public.booking_status, text, timestamptz) to service_role;

create or replace function private.stripe_payment_failed(p_intent jsonb, p_now timestamptz) returns text
language plpgsql security definer set search_path = ''
as $$
begin
  update public.bookings
  set status = 'failed', status_changed_at = p_now,
      failure_reason = left(coalesce(p_intent #>> '{last_payment_error,message}', 'the payment failed'), 1000)
  where id = private.try_uuid(p_intent #>> '{metadata,booking_id}') and method = 'card' and status = 'pending';
  return case when found then 'applied' else 'no_change' end;
end
$$;
revoke execute on function private.stripe_payment_failed(jsonb, timestamptz) from public;
grant execute on function private.stripe_payment_failed(jsonb, timestamptz) to service_role;

-- account.updated: a snapshot applied only if newer than the stored one (event.created; a tie
-- with a different snapshot asks the worker to refetch the account). `p_force` applies a refetch.
create or replace function private.apply_account_snapshot(p_account jsonb, p_created timestamptz, p_force boolean,
                                                          p_now timestamptz)
returns text
language plpgsql security definer set search_path = ''
as $$
declare
  v_old public.payout_accounts;
  v_new public.payout_accounts;
  v_active boolean := coalesce(p_account #>> '{capabilities,transfers}' = 'active', false);
  v_charges boolean := coalesce((p_account ->> 'charges_enabled')::boolean, false);
  v_payouts boolean := coalesce((p_account ->> 'payouts_enabled')::boolean, false);
  v_details boolean := coalesce((p_account ->> 'details_submitted')::boolean, false);
begin
  select * into v_old from public.payout_accounts where stripe_account_id = p_account ->> 'id' for update;
  if not found then
    return 'ignored';
  end if;
  if not p_force and v_old.stripe_updated_at is not null and p_created <= v_old.stripe_updated_at then
    if p_created < v_old.stripe_updated_at then
      return 'stale';
    end if;
    if (v_old.charges_enabled, v_old.payouts_enabled, v_old.details_submitted, v_old.transfers_active)
       = (v_charges, v_payouts, v_details, v_active) then
      return 'no_change';
    end if;
    update public.payout_accounts set stripe_refresh_requested_at = p_now where id = v_old.id;
    perform private.enqueue_again('stripe.refresh_account', 'refresh_account:' || v_old.stripe_account_id,
                                  jsonb_build_object('account', v_old.stripe_account_id), p_now);
    return 'refresh_requested';
  end if;
  update public.payout_accounts
  set charges_enabled = v_charges, payouts_enabled = v_payouts, details_submitted = v_details,
      transfers_active = v_active, stripe_updated_at = p_created, stripe_refresh_requested_at = null
  where id = v_old.id
  returning * into v_new;
  if v_new.transfers_active and not v_old.transfers_active then
    update public.payouts set status = 'queued', waiting_reason = null  -- a stripe.transfer job each
    where status = 'waiting' and payee_id = coalesce(v_new.mechanic_id, v_new.organization_id);
  end if;
  return 'applied';
end
$$;
revoke execute on function private.apply_account_snapshot(jsonb, timestamptz, boolean, timestamptz) from public;
grant execute on function private.apply_account_snapshot(jsonb, timestamptz, boolean, timestamptz) to service_role;

-- One event's effect, by type. Unknown types are acknowledged and stored.
create or replace function private.apply_stripe_event(p_type text, p_object jsonb, p_created timestamptz,
                                                      p_now timestamptz)
returns text
language plpgsql security definer set search_path = ''
as $$
declare
  v_outcome text := 'no_change';
  v_refund jsonb;
begin
  case p_type
    when 'checkout.session.completed', 'checkout.session.async_payment_succeeded' then
      return private.stripe_checkout_paid(p_object, p_now);
    when 'checkout.session.expired' then
      return private.stripe_checkout_ended(p_object, 'expired', 'the checkout expired', p_now);
    when 'checkout.session.async_payment_failed' then
      return private.stripe_checkout_ended(p_object, 'failed', 'the payment failed', p_now);
    when 'payment_intent.payment_failed' then
      return private.stripe_payment_failed(p_object, p_now);
    when 'payment_intent.succeeded' then
      return private.stripe_record_charge(p_object ->> 'id', private.stripe_id(p_object -> 'latest_charge'));
    when 'charge.succeeded', 'charge.captured', 'charge.updated' then
      return private.stripe_record_charge(private.stripe_id(p_object -> 'payment_intent'), p_object ->> 'id');
    when 'charge.refunded' then
      v_outcome := private.stripe_record_charge(private.stripe_id(p_object -> 'payment_intent'), p_object ->> 'id');
      for v_refund in select * from jsonb_array_elements(coalesce(p_object #> '{refunds,data}', '[]'::jsonb)) loop
        if private.stripe_refund(v_refund || jsonb_build_object(
             'payment_intent', coalesce(v_refund -> 'payment_intent', p_object -> 'payment_intent'),
             'charge', coalesce(v_refund -> 'charge', p_object -> 'id')), p_now) = 'applied' then
          v_outcome := 'applied';
        end if;
      end loop;
      return v_outcome;
    when 'refund.created', 'refund.updated', 'charge.refund.updated' then
      return private.stripe_refund(p_object, p_now);
    when 'account.updated' then
      if p_created is null then
        return 'ignored';
      end if;
      return private.apply_account_snapshot(p_object, p_created, false, p_now);
    else
      return 'ignored';
  end case;
end
$$;
revoke execute on function private.apply_stripe_event(text, jsonb, timestamptz, timestamptz) from public;
grant execute on function private.apply_stripe_event(text, jsonb, timestamptz, timestamptz) to service_role;

-- What an event is about, for replays: the payment intent of a charge, refund or payment intent.
create or replace function private.stripe_event_payment_intent(p_type text, p_object jsonb) returns text
language sql immutable parallel safe set search_path = ''
as $$
  select case
    when p_type like 'payment_intent.%' then p_object ->> 'id'
    when p_type like 'charge.%' or p_type like 'refund.%' then private.stripe_id(p_object -> 'payment_intent')
  end
$$;
revoke execute on function private.stripe_event_payment_intent(text, jsonb) from public;
grant execute on function private.stripe_event_payment_intent(text, jsonb) to service_role;

-- event.created as a time (null unless a plausible epoch number).
create or replace function private.stripe_event_created(p_event jsonb) returns timestamptz
language sql immutable parallel safe set search_path = ''
as $$
  select case when jsonb_typeof(p_event -> 'created') = 'number' then
           case when (p_event ->> 'created')::numeric between 0 and 100000000000
                then to_timestamp(floor((p_event ->> 'created')::numeric)) end end
$$;
revoke execute on function private.stripe_event_created(jsonb) from public;
grant execute on function private.stripe_event_created(jsonb) to service_role;

-- The webhook's one transaction: ledger row (insert on conflict do nothing) → lock it → a
-- processed event is a duplicate → else apply it and mark it processed. Two deliveries of one
-- event at once serialize on the ledger row; a failure rolls all of it back.
create or replace function private.handle_stripe_event(p_event jsonb, p_now timestamptz default now()) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_id text := p_event ->> 'id';
  v_type text := p_event ->> 'type';
  v_object jsonb := p_event #> '{data,object}';
  v_created timestamptz;
  v_row private.stripe_events;
  v_outcome text;
  v_intent text;
begin
  if jsonb_typeof(p_event) <> 'object' or v_id is null or v_id !~ '^evt_[A-Za-z0-9_]{1,250}$'
     or v_type is null or char_length(v_type) > 200 or jsonb_typeof(v_object) is distinct from 'object'
     or private.stripe_event_created(p_event) is null then
    perform private.raise_error('invalid_input', 'not a Stripe event');
  end if;
  v_created := private.stripe_event_created(p_event);
  -- Events about one payment intent serialize: a charge or refund event handled while its
  -- checkout is being recorded waits for it, so the checkout's replay never misses it.
  v_intent := coalesce(private.stripe_event_payment_intent(v_type, v_object),
                       case when v_type like 'checkout.session.%' then private.stripe_id(v_object -> 'payment_intent') end);
  if v_intent is not null then
    perform pg_advisory_xact_lock(hashtextextended('autodoctor.payment_intent:' || v_intent, 0));
  end if;
  insert into private.stripe_events (id, type, account, created, payment_intent_id, payload)
  values (v_id, v_type, p_event ->> 'account', v_created, private.stripe_event_payment_intent(v_type, v_object), p_event)
  on conflict (id) do nothing;
  select * into v_row from private.stripe_events where id = v_id for update;
  if v_row.processed_at is not null then
    return jsonb_build_object('event_id', v_id, 'type', v_type, 'outcome', 'duplicate');
  end if;
  v_outcome := private.apply_stripe_event(v_type, v_object, v_created, p_now);
  update private.stripe_events
  set processed_at = p_now, outcome = v_outcome, attempts = attempts + 1, last_error = null
  where id = v_id;
  return jsonb_build_object('event_id', v_id, 'type', v_type, 'outcome', v_outcome);
end
$$;
revoke execute on function private.handle_stripe_event(jsonb, timestamptz) from public;
grant execute on function private.handle_stripe_event(jsonb, timestamptz) to service_role;

-- A handler failed (its transaction rolled back): remember the event and the error, in a
-- transaction of its own, so that operators see it; Stripe's retry processes it later.
create or replace function private.record_stripe_event_error(p_event jsonb, p_error text, p_now timestamptz default now())
returns void
language plpgsql security definer set search_path = ''
as $$
begin
  if coalesce(p_event ->> 'id', '') !~ '^evt_[A-Za-z0-9_]{1,250}$' or p_event ->> 'type' is null
     or private.stripe_event_created(p_event) is null then
    return;
  end if;
  insert into private.stripe_events (id, type, account, created, payment_intent_id, payload, attempts, last_error,
                                     last_error_at)
  values (p_event ->> 'id', left(p_event ->> 'type', 200), p_event ->> 'account',
          private.stripe_event_created(p_event),
          private.stripe_event_payment_intent(p_event ->> 'type', p_event #> '{data,object}'), p_event, 1,
          left(p_error, 2000), p_now)
  on conflict (id) do update
  set attempts = private.stripe_events.attempts + 1, last_error = excluded.last_error, last_error_at = p_now
  where private.stripe_events.processed_at is null;
end
$$;
revoke execute on function private.record_stripe_event_error(jsonb, text, timestamptz) from public;
grant execute on function private.record_stripe_event_error(jsonb, text, timestamptz) to service_role;

comment on function private.handle_stripe_event(jsonb, timestamptz) is
  'One verified Stripe event, applied once (ledger private.stripe_events).';
-- <<< functions_sql payments/stripe_events.sql

-- >>> functions_sql payments/stripe_worker.sql sha256=1782c4903cee22796340dbe8043d1ae0f3b1446280d7d4259f6bda91cc80fe6c
-- Payments: the Stripe calls as jobs (refunds, transfers, reversals, account refetches).

-- ---------------------------------------------------------------------------------------------
-- Enqueue: a domain row that becomes due is a job, in the transaction that made it due. The job's
-- dedupe key is the Stripe idempotency key the handler sends (refund:<payment_id>:<n>,
-- transfer:<session_id>:<payee>[:<payment_id> for a paid extension], reversal:<payout_id>:<refund_id>).
-- enqueue_again: a row that becomes due again (a payout queued once more) puts its finished job
-- back in line under the same key, so Stripe still answers a repeated call with the first result.
-- ---------------------------------------------------------------------------------------------
create or replace function private.transfer_job_key(p_payout public.payouts) returns text
language sql stable security definer set search_path = ''
as $$
  select format('transfer:%s:%s', p_payout.session_id, p_payout.payee_id)
         || coalesce((select ':' || p_payout.payment_id::text from public.payments pay
                      where pay.id = p_payout.payment_id and pay.extension_id is not null), '')
$$;
revoke execute on function private.transfer_job_key(public.payouts) from public;
grant execute on function private.transfer_job_key(public.payouts) to service_role;

create or replace function private.tg_refunds__stripe_job() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if new.destination = 'card' and new.stripe_refund_id is null then
    perform private.enqueue_again('stripe.refund', format('refund:%s:%s', new.payment_id, new.seq),
                                  jsonb_build_object('refund_id', new.id));
  end if;
  return null;
end
$$;
revoke execute on function private.tg_refunds__stripe_job() from public;
drop trigger if exists _900_stripe_job on public.refunds;
create trigger _900_stripe_job after insert or update of status on public.refunds
  for each row when (new.status = 'queued') execute function private.tg_refunds__stripe_job();

-- A queued payout is a transfer job; a paid one lets its queued reversals go.
create or replace function private.tg_payouts__stripe_job() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_reversal public.transfer_reversals;
begin
  if new.status = 'queued' then
    perform private.enqueue_again('stripe.transfer', private.transfer_job_key(new),
                                  jsonb_build_object('payout_id', new.id));
  elsif new.status = 'paid' then
    for v_reversal in select * from public.transfer_reversals where payout_id = new.id and status = 'queued' loop
      perform private.enqueue_again('stripe.transfer_reversal',
                                    format('reversal:%s:%s', v_reversal.payout_id, v_reversal.refund_id),
                                    jsonb_build_object('reversal_id', v_reversal.id));
    end loop;
  end if;
  return null;
end
$$;
revoke execute on function private.tg_payouts__stripe_job() from public;
drop trigger if exists _900_stripe_job on public.payouts;
create trigger _900_stripe_job after insert or update of status on public.payouts
  for each row when (new.status in ('queued', 'paid')) execute function private.tg_payouts__stripe_job();

-- A reversal waits for its payout's transfer (the payouts trigger above lets it go once paid).
create or replace function private.tg_transfer_reversals__stripe_job() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if exists (select 1 from public.payouts p where p.id = new.payout_id and p.status = 'paid') then
    perform private.enqueue_again('stripe.transfer_reversal', format('reversal:%s:%s', new.payout_id, new.refund_id),
                                  jsonb_build_object('reversal_id', new.id));
  end if;
  return null;
end
$$;
revoke execute on function private.tg_transfer_reversals__stripe_job() from public;
drop trigger if exists _900_stripe_job on public.transfer_reversals;
create trigger _900_stripe_job after insert or update of status on public.transfer_reversals
  for each row when (new.status = 'queued') execute function private.tg_transfer_reversals__stripe_job();

-- ---------------------------------------------------------------------------------------------
-- The handlers' steps (shared/payments.py): start (the row → processing, returns what Stripe
-- needs; nothing when there is nothing to do) → commit → call Stripe outside any lock → record.
-- A job not settled within its lease is claimed again; the idempotency key makes the repeated
-- call return the first result.
-- ---------------------------------------------------------------------------------------------
create or replace function private.start_refund_job(p_refund_id uuid, p_now timestamptz default now())
returns table (refund_id uuid, payment_id uuid, amount_cents int, currency text, payment_intent_id text)
language sql volatile security definer set search_path = ''
as $$
  update public.refunds r set status = 'processing'
  from public.payments p
  where r.id = p_refund_id and p.id = r.payment_id and r.destination = 'card'
    and r.status in ('queued', 'processing') and r.stripe_refund_id is null
  returning r.id, r.payment_id, r.amount_cents, r.currency, p.stripe_payment_intent_id
$$;
revoke execute on function private.start_refund_job(uuid, timestamptz) from public;
grant execute on function private.start_refund_job(uuid, timestamptz) to service_role;

create or replace function private.record_refund_sent(p_refund_id uuid, p_stripe_refund_id text, p_stripe_status text,
                                                      p_now timestamptz default now())
returns text
language plpgsql security definer set search_path = ''
as $$
declare
  v_payment_id uuid := (select r.payment_id from public.refunds r where r.id = p_refund_id);
begin
  perform 1 from public.payments where id = v_payment_id for update;
  update public.refunds set stripe_refund_id = p_stripe_refund_id, last_error = null
  where id = p_refund_id and stripe_refund_id is null;
  perform private.set_refund_status(p_refund_id, private.refund_status_from_stripe(p_stripe_status), null, p_now);
  return (select r.status::text from public.refunds r where r.id = p_refund_id);
end
$$;
revoke execute on function private.record_refund_sent(uuid, text, text, timestamptz) from public;
grant execute on function private.record_refund_sent(uuid, text, text, timestamptz) to service_role;

-- extension_id: set for a paid extension's payout. A payee that can no longer receive transfers
-- waits again (reason visible; its activation queues it again).
drop function if exists private.start_payout_job(uuid, timestamptz);
create function private.start_payout_job(p_payout_id uuid, p_now timestamptz default now())
returns table (payout_id uuid, session_id uuid, payment_id uuid, payee_id uuid, amount_cents int, currency text,
               destination text, method public.payment_method, charge_id text, payment_intent_id text,
               transfer_group text, extension_id uuid)
language plpgsql security definer set search_path = ''
as $$
declare
  v_payout public.payouts;
  v_reason text;
  v_destination text;
begin
  select * into v_payout from public.payouts p where p.id = p_payout_id and p.status in ('queued', 'processing')
  for update;
  if not found then
    return;
  end if;
  v_reason := private.payee_waiting_reason(v_payout.mechanic_id, v_payout.organization_id);
  select a.stripe_account_id into v_destination from public.payout_accounts a
  where a.transfers_active and (a.mechanic_id = v_payout.mechanic_id or a.organization_id = v_payout.organization_id)
  limit 1;
  if v_reason is not null or v_destination is null then
    update public.payouts p set status = 'waiting', waiting_reason = coalesce(v_reason, 'no active payout account')
    where p.id = p_payout_id;
    return;
  end if;
  return query
  update public.payouts p set status = 'processing', destination_account = v_destination
  from public.payments pay
  where p.id = p_payout_id and pay.id = p.payment_id
  returning p.id, p.session_id, p.payment_id, p.payee_id, p.amount_cents, p.currency, p.destination_account,
            pay.method, pay.stripe_charge_id, pay.stripe_payment_intent_id, pay.transfer_group, pay.extension_id;
end
$$;
revoke execute on function private.start_payout_job(uuid, timestamptz) from public;
grant execute on function private.start_payout_job(uuid, timestamptz) to service_role;

create or replace function private.record_payout_paid(p_payout_id uuid, p_transfer_id text, p_now timestamptz default now())
returns boolean
language plpgsql security definer set search_path = ''
as $$
begin
  update public.payouts set status = 'paid', stripe_transfer_id = p_transfer_id, paid_at = p_now,
         last_error = null, waiting_reason = null
  where id = p_payout_id and status = 'processing';
  return found;
end
$$;
revoke execute on function private.record_payout_paid(uuid, text, timestamptz) from public;
grant execute on function private.record_payout_paid(uuid, text, timestamptz) to service_role;

-- The charge a payout transfers from (source_transaction), when the worker had to fetch it.
create or replace function private.record_payment_charge(p_payment_id uuid, p_charge_id text) returns void
language sql volatile security definer set search_path = ''
as $$
  update public.payments set stripe_charge_id = p_charge_id
  where id = p_payment_id and stripe_charge_id is null and p_charge_id is not null
$$;
revoke execute on function private.record_payment_charge(uuid, text) from public;
grant execute on function private.record_payment_charge(uuid, text) to service_role;

create or replace function private.start_reversal_job(p_reversal_id uuid, p_now timestamptz default now())
returns table (reversal_id uuid, payout_id uuid, refund_id uuid, transfer_id text, amount_cents int)
language sql volatile security definer set search_path = ''
as $$
  update public.transfer_reversals v set status = 'processing'
  from public.payouts p
  where v.id = p_reversal_id and p.id = v.payout_id and p.status = 'paid' and v.status in ('queued', 'processing')
  returning v.id, v.payout_id, v.refund_id, p.stripe_transfer_id, v.amount_cents
$$;
revoke execute on function private.start_reversal_job(uuid, timestamptz) from public;
grant execute on function private.start_reversal_job(uuid, timestamptz) to service_role;

create or replace function private.record_reversal_done(p_reversal_id uuid, p_stripe_reversal_id text,
                                                        p_now timestamptz default now())
returns boolean
language plpgsql security definer set search_path = ''
as $$
begin
  update public.transfer_reversals
  set status = 'succeeded', stripe_reversal_id = p_stripe_reversal_id, succeeded_at = p_now, last_error = null
  where id = p_reversal_id and status = 'processing';
  return found;
end
$$;
revoke execute on function private.record_reversal_done(uuid, text, timestamptz) from public;
grant execute on function private.record_reversal_done(uuid, text, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- on_failure hooks (private.job_kinds): called by private.outbox_settle after a failed attempt,
-- in its transaction. Not the last attempt: the row goes back to queued with the error; the last
-- (p_dead): it ends failed, as it always did after payments' last attempt.
-- ---------------------------------------------------------------------------------------------
create or replace function private.refund_job_failed(p_job private.outbox, p_error text, p_dead boolean,
                                                     p_now timestamptz default now())
returns text
language plpgsql security definer set search_path = ''
as $$
declare
  v_refund public.refunds;
begin
  select * into v_refund from public.refunds where id = (p_job.payload ->> 'refund_id')::uuid;
  if not found then
    return 'no_change';
  end if;
  perform 1 from public.payments where id = v_refund.payment_id for update;
  select * into v_refund from public.refunds where id = v_refund.id and status in ('queued', 'processing')
    and stripe_refund_id is null for update;
  if not found then
    return 'no_change';
  end if;
  if p_dead then
    perform private.set_refund_status(v_refund.id, 'failed', p_error, p_now);
    return 'failed';
  end if;
  update public.refunds set status = 'queued', last_error = left(p_error, 2000) where id = v_refund.id;
  return 'queued';
end
$$;
revoke execute on function private.refund_job_failed(private.outbox, text, boolean, timestamptz) from public;
grant execute on function private.refund_job_failed(private.outbox, text, boolean, timestamptz) to service_role;

create or replace function private.payout_job_failed(p_job private.outbox, p_error text, p_dead boolean,
                                                     p_now timestamptz default now())
returns text
language plpgsql security definer set search_path = ''
as $$
declare
  v_status public.payout_status;
begin
  update public.payouts
  set status = case when p_dead then 'failed'::public.payout_status else 'queued'::public.payout_status end,
      last_error = left(p_error, 2000)
  where id = (p_job.payload ->> 'payout_id')::uuid and status in ('queued', 'processing')
  returning status into v_status;
  return coalesce(v_status::text, 'no_change');
end
$$;
revoke execute on function private.payout_job_failed(private.outbox, text, boolean, timestamptz) from public;
grant execute on function private.payout_job_failed(private.outbox, text, boolean, timestamptz) to service_role;

create or replace function private.reversal_job_failed(p_job private.outbox, p_error text, p_dead boolean,
                                                       p_now timestamptz default now())
returns text
language plpgsql security definer set search_path = ''
as $$
declare
  v_status public.reversal_status;
begin
  update public.transfer_reversals
  set status = case when p_dead then 'failed'::public.reversal_status else 'queued'::public.reversal_status end,
      last_error = left(p_error, 2000)
  where id = (p_job.payload ->> 'reversal_id')::uuid and status in ('queued', 'processing')
  returning status into v_status;
  return coalesce(v_status::text, 'no_change');
end
$$;
revoke execute on function private.reversal_job_failed(private.outbox, text, boolean, timestamptz) from public;
grant execute on function private.reversal_job_failed(private.outbox, text, boolean, timestamptz) to service_role;
-- <<< functions_sql payments/stripe_worker.sql

-- >>> functions_sql rooms/access.sql sha256=a07718bc391f20859bd2562f9ed876e7465f94d1363c6673677a15292db0ce36
-- Rooms: who may join a session's LiveKit room and until when.

-- ---------------------------------------------------------------------------------------------
-- Room access: participants publish and subscribe; admins observe hidden; nobody else.
-- ---------------------------------------------------------------------------------------------
create or replace function private.room_grant(p_session_id uuid, p_user_id uuid, p_now timestamptz default now())
returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_session public.sessions;
  v_role text;
  v_name text;
  v_end timestamptz;
begin
  if p_session_id is null or p_user_id is null then
    perform private.raise_error('invalid_input', 'session and user are required');
  end if;
  select * into v_session from public.sessions where id = p_session_id;
  if found and v_session.customer_id = p_user_id then
    v_role := 'customer';
  elsif found and v_session.mechanic_id = p_user_id then
    v_role := 'mechanic';
  elsif found and exists (select 1 from private.admins a where a.user_id = p_user_id) then
    v_role := 'observer';
  else
    -- the same answer whether or not the session exists
    perform private.raise_error('not_allowed', 'only the session''s participants may join its room');
  end if;
  if v_session.status not in ('waiting', 'live') then
    perform private.raise_error('conflict', format('the session is %s: its room is closed', v_session.status));
  end if;
  -- The planned end: the deadline of a live session; for a waiting one, as if it started now.
  v_end := coalesce(v_session.deadline_at,
                    p_now + make_interval(mins => v_session.planned_minutes + v_session.extension_minutes));
  select coalesce(p.full_name, case v_role when 'mechanic' then m.display_name end, v_role)
  into v_name
  from public.profiles p left join public.mechanics m on m.id = p.id
  where p.id = p_user_id;
  return jsonb_build_object(
    'room', 'session-' || v_session.id::text, 'identity', p_user_id, 'name', coalesce(v_name, v_role),
    'role', v_role, 'session_type', v_session.session_type,
    'expires_at', v_end + private.setting_interval('livekit.token_grace'));
end
$$;
revoke execute on function private.room_grant(uuid, uuid, timestamptz) from public;
grant execute on function private.room_grant(uuid, uuid, timestamptz) to service_role;
-- <<< functions_sql rooms/access.sql

-- >>> functions_sql rooms/extensions.sql sha256=1b876e75a5550a87cb0fb6faf27a3554da0cd294647baccaa9c6df91b3f18939
-- Rooms: extensions of a live session.

-- ---------------------------------------------------------------------------------------------
-- Extensions
-- ---------------------------------------------------------------------------------------------
-- Adds granted minutes to a live session (the deadline trigger moves the deadline and announces it).
create or replace function private.grant_extension(p_extension_id uuid, p_now timestamptz default now())
returns boolean
language plpgsql security definer set search_path = ''
as $$
declare
  v_ext public.session_extensions;
begin
  select * into v_ext from public.session_extensions where id = p_extension_id for update;
  if not found or v_ext.status = 'granted' then
    return found;
  end if;
  update public.sessions set extension_minutes = extension_minutes + v_ext.minutes
  where id = v_ext.session_id and status = 'live';
  if not found then
    update public.session_extensions set status = 'cancelled' where id = v_ext.id;
    return false;  -- the session ended meanwhile: the caller refunds a paid extension
  end if;
  update public.session_extensions set status = 'granted', granted_at = p_now where id = v_ext.id;
  perform realtime.send(jsonb_build_object('session_id', v_ext.session_id, 'extension_id', v_ext.id,
                                           'minutes', v_ext.minutes, 'kind', v_ext.kind),
                        'extension', 'session:' || v_ext.session_id::text, true);
  return true;
end
$$;
revoke execute on function private.grant_extension(uuid, timestamptz) from public;
grant execute on function private.grant_extension(uuid, timestamptz) to service_role;

-- request_extension: a micro session once by micro.extension_minutes (2), free and at once;
-- a standard or extended session by extensions.standard_minutes, paid — the result
-- says payment_required with the extension to pay for through checkout.
create or replace function public.request_extension(p_session_id uuid, p_minutes int) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_session public.sessions;
  v_id uuid;
  v_minutes int;
  v_price int;
begin
  perform private.require_arg('p_minutes', p_minutes);
  v_session := private.lock_session_as_participant(p_session_id, v_uid);
  if v_session.status <> 'live' then
    perform private.raise_error('extension_not_allowed', format('a %s session cannot be extended', v_session.status));
  end if;
  if v_session.duration_type = 'micro' then
    -- the workshop's extension rules apply to its mechanics (micro-sessions domain)
    v_minutes := private.micro_extension_minutes(v_session.id);
    if v_minutes = 0 then
      perform private.raise_error('extension_not_allowed', 'the workshop does not allow extensions');
    end if;
    if p_minutes <> v_minutes then
      perform private.raise_error('invalid_input', format('a micro session is extended by %s minutes', v_minutes));
    end if;
    if exists (select 1 from public.session_extensions e
               where e.session_id = v_session.id and e.kind = 'micro_free' and e.status <> 'cancelled') then
      perform private.raise_error('extension_not_allowed', 'a micro session is extended once');
    end if;
    insert into public.session_extensions (session_id, requested_by, kind, minutes, status)
    values (v_session.id, v_uid, 'micro_free', v_minutes, 'pending_payment')
    returning id into v_id;
    perform private.grant_extension(v_id, now());
    return jsonb_build_object('extension_id', v_id, 'status', 'granted', 'minutes', v_minutes,
                              'deadline_at', (select s.deadline_at from public.sessions s where s.id = v_session.id));
  end if;
  if v_session.customer_id <> v_uid then
    perform private.raise_error('not_allowed', 'the customer asks for (and pays) an extension');
  end if;
  v_minutes := private.setting_int('extensions.standard_minutes');
  if p_minutes <> v_minutes then
    perform private.raise_error('invalid_input', format('an extension adds %s minutes', v_minutes));
  end if;
  v_price := private.setting_int('extensions.standard_price_cents');
  insert into public.session_extensions (session_id, requested_by, kind, minutes, price_cents, currency, status)
  values (v_session.id, v_uid, 'paid', v_minutes, v_price, v_session.currency, 'pending_payment')
  returning id into v_id;
  return jsonb_build_object('extension_id', v_id, 'status', 'payment_required', 'minutes', v_minutes,
                            'price_cents', v_price, 'currency', v_session.currency);
end
$$;
revoke execute on function public.request_extension(uuid, int) from public, anon;
grant execute on function public.request_extension(uuid, int) to authenticated, service_role;

-- Sessions whose rooms reconcile should look at (live, or waiting with someone assigned).
create or replace function private.rooms_to_reconcile(p_limit int default 200)
returns table (session_id uuid, room text, status public.session_status)
language sql stable security definer set search_path = ''
as $$
  select s.id, 'session-' || s.id::text, s.status from public.sessions s
  where s.status in ('waiting', 'live')
  order by s.status_changed_at
  limit p_limit
$$;
revoke execute on function private.rooms_to_reconcile(int) from public;
grant execute on function private.rooms_to_reconcile(int) to service_role;
-- <<< functions_sql rooms/extensions.sql

-- >>> functions_sql rooms/livekit_events.sql sha256=b63917c708016a2c5b78a960c3e9bbce14be641ad2a8278f0f213df60c70fe78
-- Rooms: LiveKit webhook events driving the session lifecycle, and reconcile repairs.

-- ---------------------------------------------------------------------------------------------
-- LiveKit webhook events → session lifecycle. One call per event, in the webhook's transaction.
-- The session row is locked first, so concurrent deliveries for one room apply one at a time:
-- "both joined → live" happens exactly once whatever the order and the duplicates.
-- ---------------------------------------------------------------------------------------------
create or replace function private.apply_livekit_event(
  p_event_id text, p_event text, p_room text, p_identity text, p_occurred_at timestamptz, p_payload jsonb
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_session_id uuid;
  v_session public.sessions;
  v_user uuid;
  v_outcome text;
  v_inserted int;
begin
  if p_event_id is null or p_event is null or p_occurred_at is null then
    perform private.raise_error('invalid_input', 'event id, type and time are required');
  end if;
  if p_room ~ '^session-[0-9a-f-]{36}$' then
    v_session_id := private.try_uuid(substr(p_room, 9));
  end if;
  if v_session_id is not null then
    -- lock before the ledger insert: a duplicate delivered concurrently waits, then sees the row
    select * into v_session from public.sessions where id = v_session_id for update;
    if not found then
      v_session_id := null;
    end if;
  end if;
  insert into private.livekit_events (id, event, room_name, participant_identity, session_id, occurred_at, payload)
  values (p_event_id, p_event, p_room, p_identity, v_session_id, p_occurred_at, coalesce(p_payload, '{}'))
  on conflict (id) do nothing;
  get diagnostics v_inserted = row_count;
  if v_inserted = 0 then
    return jsonb_build_object('outcome', 'duplicate');
  end if;

  if v_session_id is null then
    v_outcome := 'ignored: unknown room';
  elsif v_session.status not in ('waiting', 'live') then
    v_outcome := format('ignored: session %s', v_session.status);
  elsif p_event in ('participant_joined', 'participant_left') then
    v_user := private.try_uuid(p_identity);
    if v_user is null or v_user not in (v_session.customer_id, v_session.mechanic_id) then
      v_outcome := 'ignored: not a participant';
    else
      insert into public.session_participants (session_id, user_id, role, joined_at, left_at)
      values (v_session.id, v_user,
              case when v_user = v_session.customer_id then 'customer'::public.participant_role
                   else 'mechanic'::public.participant_role end,
              case when p_event = 'participant_joined' then p_occurred_at end,
              case when p_event = 'participant_left' then p_occurred_at end)
      on conflict (session_id, user_id) do update
      set joined_at = case when p_event = 'participant_joined'
                           then least(coalesce(public.session_participants.joined_at, p_occurred_at), p_occurred_at)
                           else public.session_participants.joined_at end,
          left_at = case when p_event = 'participant_left'
                         then greatest(coalesce(public.session_participants.left_at, p_occurred_at), p_occurred_at)
                         else public.session_participants.left_at end;
      v_outcome := 'recorded';
      if p_event = 'participant_joined' and v_session.status = 'waiting' and v_session.room_finished_at is null
         and (select count(*) from public.session_participants sp
              where sp.session_id = v_session.id and sp.joined_at is not null
                and sp.user_id in (v_session.customer_id, v_session.mechanic_id)) = 2 then
        perform private.set_actor('system', 'both participants joined the room');
        update public.sessions
        set status = 'live', status_changed_at = p_occurred_at,
            started_at = (select max(sp.joined_at) from public.session_participants sp
                          where sp.session_id = v_session.id
                            and sp.user_id in (v_session.customer_id, v_session.mechanic_id))
        where id = v_session.id;
        v_outcome := 'live';
      end if;
    end if;
  elsif p_event = 'room_finished' then
    update public.sessions set room_finished_at = coalesce(room_finished_at, p_occurred_at) where id = v_session.id;
    if v_session.status = 'live' then
      perform private.complete_session(v_session.id, null, null, greatest(p_occurred_at, v_session.started_at),
                                       'system', 'the room finished');
      v_outcome := 'completed';
    else
      v_outcome := 'recorded: waiting session left to the sweeps';
    end if;
  else
    v_outcome := 'ignored: event type';
  end if;
  update private.livekit_events set outcome = v_outcome where id = p_event_id;
  return jsonb_build_object('outcome', v_outcome, 'session_id', v_session_id);
end
$$;
revoke execute on function private.apply_livekit_event(text, text, text, text, timestamptz, jsonb) from public;
grant execute on function private.apply_livekit_event(text, text, text, text, timestamptz, jsonb) to service_role;

-- Reconcile one session with what LiveKit's room service reports (missed or dropped events):
-- a waiting session whose two participants are in the room goes live; a live session whose room
-- is gone, or has been empty since long enough, is completed.
create or replace function private.reconcile_room(
  p_session_id uuid, p_room_exists boolean, p_present text[], p_now timestamptz default now()
) returns text
language plpgsql security definer set search_path = ''
as $$
declare
  v_session public.sessions;
  v_last_left timestamptz;
begin
  select * into v_session from public.sessions where id = p_session_id for update;
  if not found or v_session.status not in ('waiting', 'live') then
    return 'skipped';
  end if;
  if v_session.status = 'waiting' and p_room_exists
     and v_session.customer_id::text = any (p_present) and v_session.mechanic_id::text = any (p_present) then
    insert into public.session_participants (session_id, user_id, role, joined_at)
    values (v_session.id, v_session.customer_id, 'customer', p_now), (v_session.id, v_session.mechanic_id, 'mechanic', p_now)
    on conflict (session_id, user_id) do update
    set joined_at = coalesce(public.session_participants.joined_at, excluded.joined_at);
    perform private.set_actor('system', 'reconcile: both participants are in the room');
    update public.sessions set status = 'live', started_at = p_now, status_changed_at = p_now where id = v_session.id;
    return 'live';
  end if;
  if v_session.status = 'live' and (not p_room_exists or cardinality(coalesce(p_present, '{}')) = 0) then
    select max(sp.left_at) into v_last_left from public.session_participants sp where sp.session_id = v_session.id;
    if not p_room_exists
       or coalesce(v_last_left, v_session.started_at) <= p_now - private.setting_interval('sessions.reconcile_empty_after') then
      perform private.complete_session(v_session.id, null, 'room ended (reconciled)',
                                       greatest(coalesce(v_last_left, p_now), v_session.started_at),
                                       'system', 'reconcile: the room is gone or empty');
      return 'completed';
    end if;
  end if;
  return 'ok';
end
$$;
revoke execute on function private.reconcile_room(uuid, boolean, text[], timestamptz) from public;
grant execute on function private.reconcile_room(uuid, boolean, text[], timestamptz) to service_role;
-- <<< functions_sql rooms/livekit_events.sql

-- >>> functions_sql rooms/timers.sql sha256=d455d91be44498b485a847af7ecfec899f0360e1436b85f3c40e43406d4d460b
-- Rooms: deadlines and timers.

-- ---------------------------------------------------------------------------------------------
-- Deadlines and timers
-- ---------------------------------------------------------------------------------------------
-- A session that goes live gets its deadline. Kept as a trigger: the deadline is a pure
-- consequence of the status, started_at and extension_minutes columns, and every path that starts
-- a session or grants an extension (RPC, LiveKit webhook, reconcile, payments) would otherwise
-- have to repeat the formula.
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
  for each row execute function private.tg_sessions__deadline();

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
  for each row execute function private.tg_sessions__timer();

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

-- >>> functions_sql scheduling/availability_rpc.sql sha256=6ba1e8bdbaf284ff3c92a76157bc70f073d3a842761f80369e14aa6cebf35514
-- Scheduling: availability management RPCs.

-- ---------------------------------------------------------------------------------------------
-- Public RPCs: availability management
-- ---------------------------------------------------------------------------------------------
-- The mechanic whose schedule the caller edits: itself, or (p_mechanic_id) one of its workshop's.
create or replace function private.schedule_target(p_mechanic_id uuid) returns uuid
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_target uuid := coalesce(p_mechanic_id, v_uid);
begin
  if not exists (select 1 from public.mechanics where id = v_target) then
    if p_mechanic_id is null then
      perform private.raise_error('not_allowed', 'only mechanics have a schedule');
    end if;
    perform private.raise_error('not_found', 'no such mechanic');
  end if;
  if v_target <> v_uid and v_target not in (select private.my_workshop_mechanic_ids()) then
    perform private.raise_error('not_allowed', 'only the mechanic or its workshop''s admins edit its schedule');
  end if;
  return v_target;
end
$$;
revoke execute on function private.schedule_target(uuid) from public;
grant execute on function private.schedule_target(uuid) to authenticated, service_role;

create or replace function public.set_weekly_availability(p_timezone text, p_blocks jsonb, p_mechanic_id uuid default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_target uuid := private.schedule_target(p_mechanic_id);
  v_block jsonb;
  v_rows jsonb := '[]'::jsonb;
  v_dow int;
  v_mult numeric;
begin
  if p_timezone is null or char_length(p_timezone) > 64 or not private.is_valid_timezone(p_timezone) then
    perform private.raise_error('invalid_input', 'p_timezone must be an IANA zone name such as Europe/Berlin');
  end if;
  if p_blocks is null or jsonb_typeof(p_blocks) <> 'array' or jsonb_array_length(p_blocks) > 100 then
    perform private.raise_error('invalid_input', 'p_blocks must be an array of at most 100 blocks');
  end if;
  for v_block in select * from jsonb_array_elements(p_blocks) loop
    if jsonb_typeof(v_block) <> 'object' or jsonb_typeof(v_block -> 'day_of_week') <> 'number'
       or (v_block ? 'price_multiplier' and jsonb_typeof(v_block -> 'price_multiplier') <> 'number')
       or exists (select 1 from jsonb_object_keys(v_block) k
                  where k not in ('day_of_week', 'start', 'end', 'price_multiplier')) then
      perform private.raise_error('invalid_input',
        'each block is {"day_of_week": 0-6, "start": "HH:MM", "end": "HH:MM", "price_multiplier": 1.0}');
    end if;
    if (v_block ->> 'day_of_week')::numeric not in (0, 1, 2, 3, 4, 5, 6) then
      perform private.raise_error('invalid_input', 'day_of_week must be 0 (Sunday) to 6');
    end if;
    v_dow := (v_block ->> 'day_of_week')::int;
    v_mult := coalesce((v_block ->> 'price_multiplier')::numeric, 1.0);
    if v_mult < 0.25 or v_mult > 5 or v_mult <> round(v_mult, 2) then
      perform private.raise_error('invalid_input', 'price_multiplier must be between 0.25 and 5 (two decimals)');
    end if;
    if private.parse_clock('end', v_block ->> 'end') <= private.parse_clock('start', v_block ->> 'start', false) then
      perform private.raise_error('invalid_input', 'a block must end after it starts (split overnight blocks)');
    end if;
    v_rows := v_rows || jsonb_build_object('d', v_dow, 's', v_block ->> 'start', 'e', v_block ->> 'end', 'm', v_mult);
  end loop;
  if exists (select 1 from jsonb_array_elements(v_rows) a, jsonb_array_elements(v_rows) b
             where a <> b and a -> 'd' = b -> 'd'
               and (a ->> 's')::time < (b ->> 'e')::time and (b ->> 's')::time < (a ->> 'e')::time)
     or (select count(*) from jsonb_array_elements(v_rows)) <> (select count(distinct x) from jsonb_array_elements(v_rows) x) then
    perform private.raise_error('invalid_input', 'blocks of one day must not overlap');
  end if;

  update public.mechanics set timezone = p_timezone where id = v_target;
  delete from public.mechanic_weekly_availability where mechanic_id = v_target;
  insert into public.mechanic_weekly_availability (mechanic_id, day_of_week, start_time, end_time, price_multiplier)
  select v_target, (x ->> 'd')::int, (x ->> 's')::time, (x ->> 'e')::time, (x ->> 'm')::numeric
  from jsonb_array_elements(v_rows) x;
  return jsonb_build_object('mechanic_id', v_target, 'timezone', p_timezone, 'blocks', jsonb_array_length(v_rows));
end
$$;
revoke execute on function public.set_weekly_availability(text, jsonb, uuid) from public, anon;
grant execute on function public.set_weekly_availability(text, jsonb, uuid) to authenticated, service_role;

create or replace function public.add_time_off(
  p_start timestamptz, p_end timestamptz, p_reason text default null, p_mechanic_id uuid default null
) returns uuid
language plpgsql security definer set search_path = ''
as $$
declare
  v_target uuid := private.schedule_target(p_mechanic_id);
  v_id uuid;
begin
  if p_start is null or p_end is null or not isfinite(p_start) or not isfinite(p_end) or p_end <= p_start then
    perform private.raise_error('invalid_input', 'time off needs a start before its end');
  end if;
  if p_end - p_start > interval '366 days' or p_end < now() - interval '1 day' then
    perform private.raise_error('invalid_input', 'time off is at most 366 days and not in the past');
  end if;
  if char_length(p_reason) > 500 then
    perform private.raise_error('invalid_input', 'p_reason is longer than 500 characters');
  end if;
  insert into public.mechanic_time_off (mechanic_id, during, reason, created_by)
  values (v_target, tstzrange(p_start, p_end), nullif(btrim(p_reason), ''), (select auth.uid()))
  returning id into v_id;
  return v_id;
end
$$;
revoke execute on function public.add_time_off(timestamptz, timestamptz, text, uuid) from public, anon;
grant execute on function public.add_time_off(timestamptz, timestamptz, text, uuid) to authenticated, service_role;

create or replace function public.remove_time_off(p_time_off_id uuid) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_mechanic uuid;
begin
  perform private.require_user();
  perform private.require_arg('p_time_off_id', p_time_off_id);
  select mechanic_id into v_mechanic from public.mechanic_time_off where id = p_time_off_id;
  if v_mechanic is null or not (v_mechanic = (select auth.uid()) or v_mechanic in (select private.my_workshop_mechanic_ids())) then
    perform private.raise_error('not_found', 'no such time off');
  end if;
  delete from public.mechanic_time_off where id = p_time_off_id;
  return jsonb_build_object('time_off_id', p_time_off_id, 'removed', true);
end
$$;
revoke execute on function public.remove_time_off(uuid) from public, anon;
grant execute on function public.remove_time_off(uuid) to authenticated, service_role;

create or replace function public.set_booking_rules(p_rules jsonb, p_mechanic_id uuid default null) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_target uuid := private.schedule_target(p_mechanic_id);
  v_key text;
  v_limits constant jsonb := '{"buffer_minutes": [0, 240], "min_notice_minutes": [0, 43200],
    "max_advance_days": [1, 365], "slot_step_minutes": [5, 240], "max_sessions_per_day": [1, 48]}';
  v_row public.booking_rules;
begin
  if p_rules is null or jsonb_typeof(p_rules) <> 'object' then
    perform private.raise_error('invalid_input', 'p_rules must be an object');
  end if;
  for v_key in select jsonb_object_keys(p_rules) loop
    if v_key = 'instant_booking' then
      if jsonb_typeof(p_rules -> v_key) not in ('boolean', 'null') then
        perform private.raise_error('invalid_input', 'instant_booking must be true, false or null');
      end if;
    elsif not v_limits ? v_key then
      perform private.raise_error('invalid_input', format('unknown rule %s', left(v_key, 60)));
    elsif jsonb_typeof(p_rules -> v_key) = 'null' then
      null;  -- back to the default
    elsif jsonb_typeof(p_rules -> v_key) <> 'number'
          or (p_rules ->> v_key)::numeric <> trunc((p_rules ->> v_key)::numeric)
          or (p_rules ->> v_key)::numeric < (v_limits -> v_key ->> 0)::numeric
          or (p_rules ->> v_key)::numeric > (v_limits -> v_key ->> 1)::numeric
          or (v_key = 'slot_step_minutes' and (p_rules ->> v_key)::int % 5 <> 0) then
      perform private.raise_error('invalid_input',
        format('%s must be a whole number from %s to %s', v_key, v_limits -> v_key ->> 0, v_limits -> v_key ->> 1));
    end if;
  end loop;
  insert into public.booking_rules (mechanic_id) values (v_target) on conflict (mechanic_id) do nothing;
  update public.booking_rules r set
    buffer_minutes = case when p_rules ? 'buffer_minutes' then (p_rules ->> 'buffer_minutes')::int else r.buffer_minutes end,
    min_notice_minutes = case when p_rules ? 'min_notice_minutes' then (p_rules ->> 'min_notice_minutes')::int
                              else r.min_notice_minutes end,
    max_advance_days = case when p_rules ? 'max_advance_days' then (p_rules ->> 'max_advance_days')::int
                            else r.max_advance_days end,
    slot_step_minutes = case when p_rules ? 'slot_step_minutes' then (p_rules ->> 'slot_step_minutes')::int
                             else r.slot_step_minutes end,
    max_sessions_per_day = case when p_rules ? 'max_sessions_per_day' then (p_rules ->> 'max_sessions_per_day')::int
                                else r.max_sessions_per_day end,
    instant_booking = case when p_rules ? 'instant_booking' then (p_rules ->> 'instant_booking')::boolean
                           else r.instant_booking end,
    updated_at = now()
  where r.mechanic_id = v_target
  returning * into v_row;
  return (select to_jsonb(x) from (
    select v_target as mechanic_id, (extract(epoch from e.buffer) / 60)::int as buffer_minutes,
           (extract(epoch from e.min_notice) / 60)::int as min_notice_minutes,
           extract(day from e.max_advance)::int as max_advance_days,
           (extract(epoch from e.step) / 60)::int as slot_step_minutes,
           e.max_per_day as max_sessions_per_day, e.instant as instant_booking
    from private.booking_rules_for(v_target) e) x);
end
$$;
revoke execute on function public.set_booking_rules(jsonb, uuid) from public, anon;
grant execute on function public.set_booking_rules(jsonb, uuid) to authenticated, service_role;

-- Workshop hours: [{"day_of_week", "open", "close", "break_start"?, "break_end"?}] replaces the
-- week; a day not listed is closed. Owners and admins of the workshop only.
create or replace function public.set_workshop_hours(
  p_organization_id uuid, p_hours jsonb, p_timezone text default null, p_capacity int default 1
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_day jsonb;
  v_days int[] := '{}';
  v_open time;
  v_close time;
  v_bs time;
  v_be time;
begin
  perform private.require_user();
  perform private.require_arg('p_organization_id', p_organization_id);
  if p_organization_id not in (select private.my_admin_org_ids()) then
    perform private.raise_error('not_allowed', 'only the workshop''s owners and admins set its hours');
  end if;
  if p_timezone is not null and (char_length(p_timezone) > 64 or not private.is_valid_timezone(p_timezone)) then
    perform private.raise_error('invalid_input', 'p_timezone must be an IANA zone name');
  end if;
  if p_capacity is null or p_capacity < 1 or p_capacity > 100 then
    perform private.raise_error('invalid_input', 'p_capacity must be 1..100');
  end if;
  if p_hours is null or jsonb_typeof(p_hours) <> 'array' or jsonb_array_length(p_hours) > 7 then
    perform private.raise_error('invalid_input', 'p_hours must be an array of at most 7 days');
  end if;
  for v_day in select * from jsonb_array_elements(p_hours) loop
    if jsonb_typeof(v_day) <> 'object' or jsonb_typeof(v_day -> 'day_of_week') <> 'number'
       or (v_day ->> 'day_of_week')::numeric not in (0, 1, 2, 3, 4, 5, 6)
       or (v_day ->> 'day_of_week')::int = any (v_days)
       or exists (select 1 from jsonb_object_keys(v_day) k
                  where k not in ('day_of_week', 'open', 'close', 'break_start', 'break_end')) then
      perform private.raise_error('invalid_input',
        'each day is {"day_of_week": 0-6 (once), "open": "HH:MM", "close": "HH:MM", "break_start"?, "break_end"?}');
    end if;
    v_days := v_days || (v_day ->> 'day_of_week')::int;
    v_open := private.parse_clock('open', v_day ->> 'open', false);
    v_close := private.parse_clock('close', v_day ->> 'close');
    v_bs := case when v_day ? 'break_start' then private.parse_clock('break_start', v_day ->> 'break_start', false) end;
    v_be := case when v_day ? 'break_end' then private.parse_clock('break_end', v_day ->> 'break_end', false) end;
    if v_close <= v_open or (v_bs is null) <> (v_be is null)
       or (v_bs is not null and not (v_bs > v_open and v_be > v_bs and v_be < v_close)) then
      perform private.raise_error('invalid_input', 'close after open; a break lies inside the day');
    end if;
  end loop;
  if p_timezone is not null then
    update public.organizations set timezone = p_timezone where id = p_organization_id;
  end if;
  delete from public.workshop_hours where organization_id = p_organization_id;
  insert into public.workshop_hours (organization_id, day_of_week, is_open, open_time, close_time, break_start,
                                     break_end, capacity)
  select p_organization_id, (d ->> 'day_of_week')::int, true, (d ->> 'open')::time, (d ->> 'close')::time,
         (d ->> 'break_start')::time, (d ->> 'break_end')::time, p_capacity
  from jsonb_array_elements(p_hours) d;
  return jsonb_build_object('organization_id', p_organization_id, 'open_days', cardinality(v_days));
end
$$;
revoke execute on function public.set_workshop_hours(uuid, jsonb, text, int) from public, anon;
grant execute on function public.set_workshop_hours(uuid, jsonb, text, int) to authenticated, service_role;

-- A date override of the caller (or of its workshop's mechanic, or of a workshop it
-- administers): p_blocks [] = day off / closed, [{"start", "end", "price_multiplier"?}] = these
-- hours instead of the week's, null = remove the override.
create or replace function public.set_date_override(
  p_date date, p_blocks jsonb, p_reason text default null, p_mechanic_id uuid default null,
  p_organization_id uuid default null
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_mechanic uuid;
  v_block jsonb;
  v_n int := 0;
begin
  perform private.require_user();
  if p_date is null or not isfinite(p_date) or p_date < current_date - 1 or p_date > current_date + 730 then
    perform private.raise_error('invalid_input', 'p_date must be a date from yesterday to two years ahead');
  end if;
  if char_length(p_reason) > 500 then
    perform private.raise_error('invalid_input', 'p_reason is longer than 500 characters');
  end if;
  if p_organization_id is not null then
    if p_mechanic_id is not null then
      perform private.raise_error('invalid_input', 'give a mechanic or a workshop, not both');
    end if;
    if p_organization_id not in (select private.my_admin_org_ids()) then
      perform private.raise_error('not_allowed', 'only the workshop''s owners and admins set its dates');
    end if;
  else
    v_mechanic := private.schedule_target(p_mechanic_id);
  end if;
  if p_blocks is not null and (jsonb_typeof(p_blocks) <> 'array' or jsonb_array_length(p_blocks) > 24) then
    perform private.raise_error('invalid_input', 'p_blocks must be null, [] or an array of at most 24 blocks');
  end if;
  delete from public.availability_overrides
  where on_date = p_date and (mechanic_id = v_mechanic or organization_id = p_organization_id);
  if p_blocks is null then
    return jsonb_build_object('on_date', p_date, 'override', 'removed');
  end if;
  if jsonb_array_length(p_blocks) = 0 then
    insert into public.availability_overrides (mechanic_id, organization_id, on_date, is_available, reason)
    values (v_mechanic, p_organization_id, p_date, false, nullif(btrim(p_reason), ''));
    return jsonb_build_object('on_date', p_date, 'override', 'day_off');
  end if;
  for v_block in select * from jsonb_array_elements(p_blocks) loop
    if jsonb_typeof(v_block) <> 'object'
       or (v_block ? 'price_multiplier' and jsonb_typeof(v_block -> 'price_multiplier') <> 'number')
       or exists (select 1 from jsonb_object_keys(v_block) k where k not in ('start', 'end', 'price_multiplier'))
       or coalesce((v_block ->> 'price_multiplier')::numeric, 1) not between 0.25 and 5 then
      perform private.raise_error('invalid_input', 'each block is {"start": "HH:MM", "end": "HH:MM", "price_multiplier"?}');
    end if;
    if private.parse_clock('end', v_block ->> 'end') <= private.parse_clock('start', v_block ->> 'start', false) then
      perform private.raise_error('invalid_input', 'a block must end after it starts');
    end if;
    begin
      insert into public.availability_overrides (mechanic_id, organization_id, on_date, is_available, start_time,
                                                 end_time, price_multiplier, reason)
      values (v_mechanic, p_organization_id, p_date, true, (v_block ->> 'start')::time, (v_block ->> 'end')::time,
              round(coalesce((v_block ->> 'price_multiplier')::numeric, 1), 2), nullif(btrim(p_reason), ''));
    exception when exclusion_violation then
      perform private.raise_error('invalid_input', 'blocks of one date must not overlap');
    end;
    v_n := v_n + 1;
  end loop;
  return jsonb_build_object('on_date', p_date, 'override', 'hours', 'blocks', v_n);
end
$$;
revoke execute on function public.set_date_override(date, jsonb, text, uuid, uuid) from public, anon;
grant execute on function public.set_date_override(date, jsonb, text, uuid, uuid) to authenticated, service_role;
-- <<< functions_sql scheduling/availability_rpc.sql

-- >>> functions_sql scheduling/booking_rpc.sql sha256=e5ff81674f7b6982fc33b2124ebe6ca52d85fd1deb3c169b31ebdcbb7b887b1c
-- Scheduling: slots, search, holds, booking and changes RPCs.

-- ---------------------------------------------------------------------------------------------
-- Public RPCs: slots, search, holds, booking, changes
-- ---------------------------------------------------------------------------------------------
create or replace function private.check_query_range(p_from timestamptz, p_to timestamptz) returns void
language plpgsql stable set search_path = ''
as $$
begin
  if p_from is null or p_to is null or not isfinite(p_from) or not isfinite(p_to) or p_to <= p_from
     or p_to - p_from > private.setting_interval('scheduling.max_query_range') then
    perform private.raise_error('invalid_input',
      format('p_from must be before p_to, at most %s apart', private.setting_text('scheduling.max_query_range')));
  end if;
end
$$;
revoke execute on function private.check_query_range(timestamptz, timestamptz) from public;
grant execute on function private.check_query_range(timestamptz, timestamptz) to authenticated, service_role;

create or replace function public.available_slots(
  p_mechanic_id uuid, p_from timestamptz, p_to timestamptz, p_plan_code text
) returns table (slot_start timestamptz, slot_end timestamptz, price_cents int)
language plpgsql stable security definer set search_path = '' set jit = off
as $$
begin
  perform private.require_user();
  if p_mechanic_id is null or p_plan_code is null then
    perform private.raise_error('invalid_input', 'p_mechanic_id and p_plan_code are required');
  end if;
  perform private.check_query_range(p_from, p_to);
  if not exists (select 1 from public.service_plans where code = p_plan_code and active) then
    perform private.raise_error('not_found', format('no active plan %L', left(p_plan_code, 60)));
  end if;
  if not exists (select 1 from public.mechanics where id = p_mechanic_id and status = 'approved') then
    perform private.raise_error('not_found', 'no such approved mechanic');
  end if;
  return query select s.slot_start, s.slot_end, s.price_cents
               from private.slots(p_mechanic_id, p_from, p_to, p_plan_code, now()) s;
end
$$;
revoke execute on function public.available_slots(uuid, timestamptz, timestamptz, text) from public, anon;
grant execute on function public.available_slots(uuid, timestamptz, timestamptz, text) to authenticated, service_role;

-- Who can take a session at p_start (matching for scheduled requests: candidates in directory
-- order; the customer holds one of them).
create or replace function public.mechanics_free_at(
  p_start timestamptz, p_plan_code text, p_city text default null, p_brand text default null, p_limit int default 20
) returns table (mechanic_id uuid, display_name text, photo_url text, rating_avg numeric, rating_count int,
                 mechanic_type public.mechanic_type, price_cents int, price_multiplier numeric)
language plpgsql stable security definer set search_path = '' set jit = off
as $$
begin
  perform private.require_user();
  if p_start is null or not isfinite(p_start) or p_plan_code is null then
    perform private.raise_error('invalid_input', 'p_start and p_plan_code are required');
  end if;
  if p_limit is null or p_limit < 1 or p_limit > 100 then
    perform private.raise_error('invalid_input', 'p_limit must be between 1 and 100');
  end if;
  if char_length(p_brand) > 60 or char_length(p_city) > 120 then
    perform private.raise_error('invalid_input', 'p_brand or p_city is too long');
  end if;
  if not exists (select 1 from public.service_plans where code = p_plan_code and active) then
    perform private.raise_error('not_found', format('no active plan %L', left(p_plan_code, 60)));
  end if;
  return query
  select f.mechanic_id, m.display_name, m.photo_url, m.rating_avg, m.rating_count, m.mechanic_type, f.price_cents,
         f.multiplier
  from private.free_at(p_start, p_plan_code, p_city, p_brand, p_limit, now()) f
  join public.mechanics m on m.id = f.mechanic_id;
end
$$;
revoke execute on function public.mechanics_free_at(timestamptz, text, text, text, int) from public, anon;
grant execute on function public.mechanics_free_at(timestamptz, text, text, text, int) to authenticated, service_role;

create or replace function public.hold_slot(p_mechanic_id uuid, p_start timestamptz, p_plan_code text) returns jsonb
language plpgsql security definer set search_path = ''
as $$
begin
  return private.hold_slot(private.require_user(), p_mechanic_id, p_start, p_plan_code, now());
end
$$;
revoke execute on function public.hold_slot(uuid, timestamptz, text) from public, anon;
grant execute on function public.hold_slot(uuid, timestamptz, text) to authenticated, service_role;

create or replace function public.release_hold(p_hold_id uuid) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_hold public.mechanic_commitments;
begin
  perform private.require_arg('p_hold_id', p_hold_id);
  select * into v_hold from public.mechanic_commitments where id = p_hold_id and kind = 'hold';
  if not found or v_hold.customer_id <> v_uid then
    perform private.raise_error('not_found', 'no such hold');
  end if;
  perform private.lock_mechanic(v_hold.mechanic_id);
  update public.mechanic_commitments set status = 'released'
  where id = p_hold_id and status = 'held'
  returning * into v_hold;
  if not found then
    select * into v_hold from public.mechanic_commitments where id = p_hold_id;
  end if;
  return jsonb_build_object('hold_id', p_hold_id, 'status', v_hold.status);
end
$$;
revoke execute on function public.release_hold(uuid) from public, anon;
grant execute on function public.release_hold(uuid) to authenticated, service_role;

create or replace function public.book_slot(p_hold_id uuid, p_intake_id uuid, p_vehicle_id uuid default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
begin
  return private.book_slot(private.require_user(), p_hold_id, p_intake_id, p_vehicle_id, now());
end
$$;
revoke execute on function public.book_slot(uuid, uuid, uuid) from public, anon;
grant execute on function public.book_slot(uuid, uuid, uuid) to authenticated, service_role;

create or replace function public.reschedule_session(p_session_id uuid, p_new_start timestamptz) returns jsonb
language plpgsql security definer set search_path = ''
as $$
begin
  return private.reschedule_session(private.require_user(), p_session_id, p_new_start, now());
end
$$;
revoke execute on function public.reschedule_session(uuid, timestamptz) from public, anon;
grant execute on function public.reschedule_session(uuid, timestamptz) to authenticated, service_role;

create or replace function public.cancel_scheduled_session(p_session_id uuid, p_reason text default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
begin
  return private.cancel_scheduled_session(v_uid, p_session_id, private.check_text('p_reason', p_reason), now());
end
$$;
revoke execute on function public.cancel_scheduled_session(uuid, text) from public, anon;
grant execute on function public.cancel_scheduled_session(uuid, text) to authenticated, service_role;

-- The mechanic's calendar for a range: booked sessions, live holds, open availability (with
-- multipliers) and time off. The mechanic itself, its workshop's admins, platform admins.
create or replace function public.mechanic_calendar(
  p_from timestamptz, p_to timestamptz, p_mechanic_id uuid default null
) returns jsonb
language plpgsql stable security definer set search_path = '' set jit = off
as $$
declare
  v_uid uuid := private.require_user();
  v_target uuid := coalesce(p_mechanic_id, v_uid);
begin
  perform private.check_query_range(p_from, p_to);
  if not exists (select 1 from public.mechanics where id = v_target) then
    perform private.raise_error(case when p_mechanic_id is null then 'not_allowed' else 'not_found' end,
                                'no such mechanic');
  end if;
  if not private.can_manage_mechanic(v_target) then
    perform private.raise_error('not_allowed', 'only the mechanic, its workshop''s admins and admins see this');
  end if;
  return jsonb_build_object(
    'mechanic_id', v_target,
    'timezone', (select m.timezone from public.mechanics m where m.id = v_target),
    'sessions', coalesce((
      select jsonb_agg(jsonb_build_object('session_id', s.id, 'status', s.status, 'start', s.scheduled_for,
                                          'end', s.scheduled_for + make_interval(mins => s.planned_minutes),
                                          'plan_code', s.plan_code, 'session_type', s.session_type)
                       order by s.scheduled_for)
      from public.sessions s
      where s.mechanic_id = v_target and s.scheduled_for >= p_from - interval '1 day' and s.scheduled_for < p_to
        and s.scheduled_for + make_interval(mins => s.planned_minutes) > p_from), '[]'::jsonb),
    'holds', coalesce((
      select jsonb_agg(jsonb_build_object('hold_id', c.id, 'start', lower(c.during), 'expires_at', c.expires_at)
                       order by lower(c.during))
      from public.mechanic_commitments c
      where c.mechanic_id = v_target and c.status = 'held' and c.expires_at > now()
        and c.during && tstzrange(p_from, p_to)), '[]'::jsonb),
    'availability', coalesce((
      select jsonb_agg(jsonb_build_object('start', lower(o.r), 'end', upper(o.r), 'price_multiplier', o.multiplier)
                       order by lower(o.r))
      from private.open_ranges(v_target, p_from, p_to) o), '[]'::jsonb),
    'time_off', coalesce((
      select jsonb_agg(jsonb_build_object('time_off_id', t.id, 'start', lower(t.during), 'end', upper(t.during),
                                          'reason', t.reason) order by lower(t.during))
      from public.mechanic_time_off t
      where t.mechanic_id = v_target and t.during && tstzrange(p_from, p_to)), '[]'::jsonb));
end
$$;
revoke execute on function public.mechanic_calendar(timestamptz, timestamptz, uuid) from public, anon;
grant execute on function public.mechanic_calendar(timestamptz, timestamptz, uuid) to authenticated, service_role;
-- <<< functions_sql scheduling/booking_rpc.sql

-- >>> functions_sql scheduling/calendar.sql sha256=6100fcc60a2a22bf1e09c2b682833fb40ba154ad5e9064b7c0bcd8c53b3a8324
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
-- <<< functions_sql scheduling/calendar.sql

-- >>> functions_sql scheduling/changes.sql sha256=65b5f8b1f79d134e4a1afbf22d4c5f9956acdb7530b68fbd44585499e6bb598e
-- Scheduling: reschedule and cancel.

-- ---------------------------------------------------------------------------------------------
-- Reschedule and cancel
-- ---------------------------------------------------------------------------------------------
create or replace function private.reschedule_session(
  p_user_id uuid, p_session_id uuid, p_new_start timestamptz, p_now timestamptz default now()
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_session public.sessions;
  v_old public.mechanic_commitments;
  v_is_admin boolean := exists (select 1 from private.admins a where a.user_id = p_user_id);
begin
  if p_session_id is null or p_new_start is null or not isfinite(p_new_start) then
    perform private.raise_error('invalid_input', 'p_session_id and p_new_start are required');
  end if;
  select * into v_session from public.sessions where id = p_session_id;
  if not found or (v_session.customer_id <> p_user_id and v_session.mechanic_id is distinct from p_user_id
                   and not v_is_admin) then
    perform private.raise_error('not_found', 'no such session');
  end if;
  if v_session.mechanic_id is null then
    perform private.raise_error('invalid_transition', 'only a booked session can be rescheduled');
  end if;
  perform private.lock_mechanic(v_session.mechanic_id);  -- lock order: mechanic, then session
  select * into v_session from public.sessions where id = p_session_id for update;
  if v_session.status <> 'scheduled' then
    perform private.raise_error('invalid_transition', format('a %s session cannot be rescheduled', v_session.status));
  end if;
  if v_session.scheduled_for - p_now < private.setting_interval('scheduling.change_cutoff') and not v_is_admin then
    perform private.raise_error('change_cutoff_passed',
      format('a booking cannot be moved within %s of its start', private.setting_text('scheduling.change_cutoff')));
  end if;
  perform private.set_actor(case when v_session.customer_id = p_user_id then 'customer'
                                 when v_session.mechanic_id = p_user_id then 'mechanic' else 'admin' end,
                            'rescheduled');
  update public.mechanic_commitments set status = 'released'
  where session_id = v_session.id and status = 'confirmed'
  returning * into v_old;
  perform private.expire_mechanic_holds(v_session.mechanic_id, p_now);
  perform private.take_slot(v_session.mechanic_id, p_new_start, v_session.plan_code, v_session.customer_id,
                            'scheduled', 'confirmed', v_session.id, null, p_now, v_session.price_cents);
  update public.sessions
  set scheduled_for = p_new_start, calendar_sequence = calendar_sequence + 1
  where id = v_session.id returning * into v_session;
  perform private.drop_reminders(v_session.id);
  perform private.schedule_reminders(v_session.id, p_now);
  perform private.enqueue_email('booking_rescheduled', v_session.customer_id, v_session.id, '{}'::jsonb,
                                ':s' || v_session.calendar_sequence);
  perform private.enqueue_email('booking_rescheduled', v_session.mechanic_id, v_session.id, '{}'::jsonb,
                                ':s' || v_session.calendar_sequence);
  return jsonb_build_object('session_id', v_session.id, 'scheduled_for', v_session.scheduled_for,
                            'calendar_sequence', v_session.calendar_sequence,
                            'previous_start', lower(v_old.during));
end
$$;
revoke execute on function private.reschedule_session(uuid, uuid, timestamptz, timestamptz) from public;
grant execute on function private.reschedule_session(uuid, uuid, timestamptz, timestamptz) to service_role;

-- The customer cancels up to the cut-off; the mechanic (or an admin) any time before the start.
-- Either way a paid booking is refunded in full: the cancel lifecycle (core/lifecycle.sql) refunds
-- a session cancelled from `scheduled` (payments.auto_refund_from_statuses).
create or replace function private.cancel_scheduled_session(
  p_user_id uuid, p_session_id uuid, p_reason text, p_now timestamptz default now()
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_session public.sessions;
  v_side text;
  v_reason text;
begin
  perform private.require_arg('p_session_id', p_session_id);
  select * into v_session from public.sessions where id = p_session_id;
  v_side := case when not found then null
                 when v_session.customer_id = p_user_id then 'customer'
                 when v_session.mechanic_id = p_user_id then 'mechanic'
                 when exists (select 1 from private.admins a where a.user_id = p_user_id) then 'admin' end;
  if v_side is null then
    perform private.raise_error('not_found', 'no such session');
  end if;
  if v_session.mechanic_id is not null then
    perform private.lock_mechanic(v_session.mechanic_id);
  end if;
  perform 1 from public.session_requests where session_id = p_session_id for update;
  select * into v_session from public.sessions where id = p_session_id for update;
  if v_session.status <> 'scheduled' then
    perform private.raise_error('invalid_transition', format('a %s session cannot be cancelled here', v_session.status));
  end if;
  if v_side = 'customer'
     and v_session.scheduled_for - p_now < private.setting_interval('scheduling.change_cutoff') then
    perform private.raise_error('change_cutoff_passed',
      format('a booking cannot be cancelled within %s of its start', private.setting_text('scheduling.change_cutoff')));
  end if;
  v_reason := coalesce(p_reason, format('cancelled by the %s', v_side));
  perform private.cancel_session(p_session_id, v_reason, p_now, v_side);
  select * into v_session from public.sessions where id = p_session_id;
  return jsonb_build_object('session_id', v_session.id, 'status', v_session.status, 'cancelled_by', v_side,
                            'calendar_sequence', v_session.calendar_sequence,
                            'refund', exists (select 1 from public.payments p where p.session_id = p_session_id));
end
$$;
revoke execute on function private.cancel_scheduled_session(uuid, uuid, text, timestamptz) from public;
grant execute on function private.cancel_scheduled_session(uuid, uuid, text, timestamptz) to service_role;
-- <<< functions_sql scheduling/changes.sql

-- >>> functions_sql scheduling/committed_time.sql sha256=ddd38c89b02e59607f7f40768eae0c22b177f351729f61bf8b9c6c5b3784f553
-- Scheduling: the explicit overlap check of committed time.

-- ---------------------------------------------------------------------------------------------
-- Committed time: the explicit overlap check (the exclusion constraint stays the backstop)
-- ---------------------------------------------------------------------------------------------
-- Writers hold the mechanic's row lock, so this check is exact: on-demand work that would run
-- into a held or booked session fails with schedule_conflict (AD051); a hold or booking over
-- any committed time fails with slot_taken (AD050) — never a raw exclusion violation.
create or replace function private.tg_mechanic_commitments__check_free() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if new.status in ('held', 'confirmed', 'in_progress') and exists (
       select 1 from public.mechanic_commitments c
       where c.mechanic_id = new.mechanic_id and c.id <> new.id
         and c.status in ('held', 'confirmed', 'in_progress') and c.during && new.during) then
    if new.kind = 'on_demand' then
      perform private.raise_error('schedule_conflict',
        'this session would run into a booked session of yours: finish it before the booking starts');
    end if;
    perform private.raise_error('slot_taken', 'the time is no longer free');
  end if;
  return new;
end
$$;
drop trigger if exists _150_check_free on public.mechanic_commitments;
create trigger _150_check_free before insert or update of status, during on public.mechanic_commitments
  for each row execute function private.tg_mechanic_commitments__check_free();
revoke execute on function private.tg_mechanic_commitments__check_free() from public;
-- <<< functions_sql scheduling/committed_time.sql

-- >>> functions_sql scheduling/holds.sql sha256=b5c8d45faa65a01d118217605eaa7aeb6d386c0a8c1d9377135c2610cfe43b1f
-- Scheduling: holds and bookings.

-- ---------------------------------------------------------------------------------------------
-- Holds
-- ---------------------------------------------------------------------------------------------
-- Lazy expiry inside the mechanic's locked transaction.
create or replace function private.expire_mechanic_holds(p_mechanic_id uuid, p_now timestamptz) returns void
language plpgsql security definer set search_path = ''
as $$
begin
  update public.mechanic_commitments set status = 'expired'
  where mechanic_id = p_mechanic_id and status = 'held' and expires_at <= p_now;
end
$$;
revoke execute on function private.expire_mechanic_holds(uuid, timestamptz) from public;
grant execute on function private.expire_mechanic_holds(uuid, timestamptz) to service_role;

-- Why [p_start, p_start + plan) cannot be had: slot_taken if committed time is in the way,
-- else slot_unavailable. Raises; never returns normally.
create or replace function private.raise_slot_refusal(
  p_mechanic_id uuid, p_start timestamptz, p_dur interval, p_buffer interval, p_now timestamptz
) returns void
language plpgsql stable security definer set search_path = '' set jit = off
as $$
begin
  if exists (select 1 from public.mechanic_commitments c
             where c.mechanic_id = p_mechanic_id
               and (c.status in ('confirmed', 'in_progress') or (c.status = 'held' and c.expires_at > p_now))
               and c.during && tstzrange(p_start - p_buffer, p_start + p_dur + p_buffer)) then
    perform private.raise_error('slot_taken', 'the time is no longer free');
  end if;
  perform private.raise_error('slot_unavailable',
    'the mechanic does not offer this time (availability, step, notice, booking window, time off or daily limit)');
end
$$;
revoke execute on function private.raise_slot_refusal(uuid, timestamptz, interval, interval, timestamptz) from public;
grant execute on function private.raise_slot_refusal(uuid, timestamptz, interval, interval, timestamptz) to service_role;

-- Inserts committed time for [p_start, p_start + plan + buffer) after checking that the slot is
-- offered; the caller holds the mechanic's lock. Returns the new commitment.
create or replace function private.take_slot(
  p_mechanic_id uuid, p_start timestamptz, p_plan_code text, p_customer_id uuid, p_kind public.commitment_kind,
  p_status public.commitment_status, p_session_id uuid, p_expires_at timestamptz, p_now timestamptz,
  p_price_cents int default null
) returns public.mechanic_commitments
language plpgsql security definer set search_path = '' set jit = off
as $$
declare
  v_rules record;
  v_dur interval;
  v_price int;
  v_row public.mechanic_commitments;
begin
  select * into v_rules from private.booking_rules_for(p_mechanic_id);
  select make_interval(mins => minutes) into v_dur from public.service_plans where code = p_plan_code;
  select s.price_cents into v_price
  from private.slots(p_mechanic_id, p_start, p_start + v_dur, p_plan_code, p_now) s where s.slot_start = p_start;
  if not found then
    perform private.raise_slot_refusal(p_mechanic_id, p_start, v_dur, v_rules.buffer, p_now);
  end if;
  begin
    insert into public.mechanic_commitments (mechanic_id, kind, status, during, session_id, customer_id, plan_code,
                                             price_cents, buffer_minutes, expires_at)
    values (p_mechanic_id, p_kind, p_status, tstzrange(p_start, p_start + v_dur + v_rules.buffer), p_session_id,
            p_customer_id, p_plan_code, coalesce(p_price_cents, v_price),
            (extract(epoch from v_rules.buffer) / 60)::int, p_expires_at)
    returning * into v_row;
  exception when exclusion_violation then
    perform private.raise_error('slot_taken', 'the time is no longer free');
  end;
  return v_row;
end
$$;
revoke execute on function private.take_slot(uuid, timestamptz, text, uuid, public.commitment_kind,
  public.commitment_status, uuid, timestamptz, timestamptz, int) from public;
grant execute on function private.take_slot(uuid, timestamptz, text, uuid, public.commitment_kind,
  public.commitment_status, uuid, timestamptz, timestamptz, int) to service_role;

create or replace function private.hold_slot(
  p_customer_id uuid, p_mechanic_id uuid, p_start timestamptz, p_plan_code text, p_now timestamptz default now()
) returns jsonb
language plpgsql security definer set search_path = '' set jit = off
  set plan_cache_mode = force_generic_plan
as $$
declare
  v_mechanic public.mechanics;
  v_tz text;
  v_plan public.service_plans;
  v_hold public.mechanic_commitments;
  v_dur interval;
  v_rules record;
  v_buffer interval;
  v_max_per_day int;
  v_price int;
begin
  if p_customer_id is null or p_mechanic_id is null or p_start is null or p_plan_code is null
     or not isfinite(p_start) then
    perform private.raise_error('invalid_input', 'mechanic, start and plan are required');
  end if;
  select * into v_plan from public.service_plans where code = p_plan_code and active;
  if not found then
    perform private.raise_error('not_found', format('no active plan %L', left(p_plan_code, 60)));
  end if;
  if p_customer_id = p_mechanic_id then
    perform private.raise_error('not_allowed', 'a mechanic cannot book itself');
  end if;
  select mm.timezone into v_tz from public.mechanics mm where mm.id = p_mechanic_id and mm.status = 'approved';
  if not found then
    perform private.raise_error('not_found', 'no such approved mechanic');
  end if;
  -- Before the lock: is the time offered at all (blocks, step, notice, window, time off, daily
  -- limit, committed time as of now)? None of that depends on racing holds except committed time,
  -- which is re-checked exactly under the lock (then the trigger and the exclusion constraint).
  -- Keeping this check out of the lock keeps the queue short (bench_scheduling.py). It is
  -- private.slots(p_mechanic_id, p_start, p_start + plan, …) for the one start p_start, written
  -- for one slot (the open ranges of the one or two local dates around p_start, then indexed
  -- lookups) instead of computing the whole slot list: 32 clients run it at once on 2 cores.
  select * into v_rules from private.booking_rules_for(p_mechanic_id);
  v_dur := make_interval(mins => v_plan.minutes);
  v_buffer := v_rules.buffer;
  v_max_per_day := v_rules.max_per_day;
  if v_rules.instant and p_start >= p_now + v_rules.min_notice and p_start + v_dur <= p_now + v_rules.max_advance
     and not exists (select 1 from public.mechanic_commitments c
                     where c.mechanic_id = p_mechanic_id
                       and (c.status in ('confirmed', 'in_progress') or (c.status = 'held' and c.expires_at > p_now))
                       and c.during && tstzrange(p_start, p_start + v_dur + v_buffer))
     and not exists (select 1 from public.mechanic_time_off t
                     where t.mechanic_id = p_mechanic_id and t.during && tstzrange(p_start, p_start + v_dur))
     and (select count(*) from public.mechanic_commitments c
          where c.mechanic_id = p_mechanic_id and c.kind in ('hold', 'scheduled')
            and (c.status = 'confirmed' or (c.status = 'held' and c.expires_at > p_now))
            and (lower(c.during) at time zone v_tz)::date = (p_start at time zone v_tz)::date
            and c.during && tstzrange(p_start - interval '2 days', p_start + v_dur + interval '2 days'))
         < v_max_per_day then
    -- on the step grid of an open range that holds the whole session; the highest multiplier wins
    select round(v_plan.price_cents * max(o.multiplier))::int into v_price
    from private.open_ranges(p_mechanic_id, p_start, p_start + v_dur) o
    where o.r @> tstzrange(p_start, p_start + v_dur)
      and p_start in (select g from generate_series(lower(o.r), upper(o.r) - v_dur, v_rules.step) g);
  end if;
  if v_price is null then
    perform private.raise_slot_refusal(p_mechanic_id, p_start, v_dur, v_buffer, p_now);
  end if;
  v_mechanic := private.lock_mechanic(p_mechanic_id);
  -- Under the lock, first the one thing a racing hold can have changed: live committed time
  -- overlapping the range the insert would take (what the trigger and the constraint would
  -- refuse with slot_taken). The losers of a race leave here after one index lookup instead of
  -- going through the counts and a failing insert.
  if exists (select 1 from public.mechanic_commitments c
             where c.mechanic_id = p_mechanic_id
               and (c.status in ('confirmed', 'in_progress') or (c.status = 'held' and c.expires_at > p_now))
               and c.during && tstzrange(p_start, p_start + v_dur + v_buffer)) then
    perform private.raise_error('slot_taken', 'the time is no longer free');
  end if;
  perform private.expire_mechanic_holds(p_mechanic_id, p_now);
  -- the daily limit again, exactly, under the lock
  if (select count(*) from public.mechanic_commitments c
      where c.mechanic_id = p_mechanic_id and c.kind in ('hold', 'scheduled')
        and (c.status = 'confirmed' or (c.status = 'held' and c.expires_at > p_now))
        and (lower(c.during) at time zone v_mechanic.timezone)::date = (p_start at time zone v_mechanic.timezone)::date
        and c.during && tstzrange(p_start - interval '2 days', p_start + interval '2 days')) >= v_max_per_day then
    perform private.raise_error('slot_unavailable', 'the mechanic''s day is fully booked');
  end if;
  -- anti-hoarding: the customer's live holds, counted under the customer's profile lock
  perform 1 from public.profiles where id = p_customer_id for no key update;
  if (select count(*) from public.mechanic_commitments c
      where c.customer_id = p_customer_id and c.status = 'held' and c.expires_at > p_now)
     >= private.setting_int('scheduling.max_holds_per_customer') then
    perform private.raise_error('too_many_holds', 'release a hold or let it expire first');
  end if;
  begin
    insert into public.mechanic_commitments (mechanic_id, kind, status, during, customer_id, plan_code, price_cents,
                                             buffer_minutes, expires_at)
    values (p_mechanic_id, 'hold', 'held', tstzrange(p_start, p_start + v_dur + v_buffer), p_customer_id, v_plan.code,
            v_price, (extract(epoch from v_buffer) / 60)::int,
            p_now + private.setting_interval('scheduling.hold_duration'))
    returning * into v_hold;
  exception when exclusion_violation then
    perform private.raise_error('slot_taken', 'the time is no longer free');
  end;
  return jsonb_build_object('hold_id', v_hold.id, 'expires_at', v_hold.expires_at, 'mechanic_id', p_mechanic_id,
                            'slot_start', p_start, 'slot_end', p_start + make_interval(mins => v_plan.minutes),
                            'plan_code', v_plan.code, 'price_cents', v_hold.price_cents, 'currency', v_plan.currency);
end
$$;
revoke execute on function private.hold_slot(uuid, uuid, timestamptz, text, timestamptz) from public;
grant execute on function private.hold_slot(uuid, uuid, timestamptz, text, timestamptz) to service_role;

-- Turns hold `p_hold_id` into a booked session (status scheduled). With p_rehold (a payment that
-- arrived after the hold expired) the same time is taken again if it is still free; otherwise
-- slot_taken (the payments code then refunds). Creates the session, participants and reminders.
create or replace function private.confirm_hold(
  p_hold_id uuid, p_customer_id uuid, p_intake_id uuid, p_vehicle_id uuid, p_price_cents int, p_rehold boolean,
  p_now timestamptz default now()
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_hold public.mechanic_commitments;
  v_plan public.service_plans;
  v_intake public.intakes;
  v_vehicle_id uuid;
  v_session public.sessions;
begin
  select * into v_hold from public.mechanic_commitments where id = p_hold_id and kind = 'hold';
  if not found or v_hold.customer_id is distinct from p_customer_id then
    perform private.raise_error('not_found', 'no such hold');
  end if;
  perform private.lock_mechanic(v_hold.mechanic_id);
  select * into v_hold from public.mechanic_commitments where id = p_hold_id for update;
  if v_hold.status = 'held' and v_hold.expires_at <= p_now then
    update public.mechanic_commitments set status = 'expired' where id = v_hold.id returning * into v_hold;
  end if;
  if v_hold.status <> 'held' then
    if not p_rehold or v_hold.status not in ('expired', 'released') then
      perform private.raise_error('hold_expired', format('the hold is %s', v_hold.status));
    end if;
  end if;
  select * into v_plan from public.service_plans where code = v_hold.plan_code;
  v_intake := private.check_booking_intake(p_customer_id, p_intake_id, p_vehicle_id);
  v_vehicle_id := coalesce(p_vehicle_id, v_intake.vehicle_id);

  perform private.set_actor('customer', 'booked a slot');
  insert into public.sessions (customer_id, mechanic_id, plan_code, session_type, duration_type, planned_minutes,
                               price_cents, currency, intake_id, vehicle_id, status, status_changed_at, scheduled_for)
  values (p_customer_id, v_hold.mechanic_id, v_plan.code, v_plan.session_type, v_plan.duration_type, v_plan.minutes,
          p_price_cents, v_plan.currency, v_intake.id, v_vehicle_id, 'scheduled', p_now, lower(v_hold.during))
  returning * into v_session;
  insert into public.session_participants (session_id, user_id, role)
  values (v_session.id, p_customer_id, 'customer'), (v_session.id, v_hold.mechanic_id, 'mechanic');

  if v_hold.status = 'held' then
    update public.mechanic_commitments
    set kind = 'scheduled', status = 'confirmed', session_id = v_session.id, expires_at = null
    where id = v_hold.id;
  else
    -- re-hold: the same time again, checked like a new booking (notice is not re-applied: the
    -- customer paid inside the hold's window)
    begin
      insert into public.mechanic_commitments (mechanic_id, kind, status, during, session_id, customer_id, plan_code,
                                               price_cents, buffer_minutes)
      values (v_hold.mechanic_id, 'scheduled', 'confirmed', v_hold.during, v_session.id, p_customer_id,
              v_hold.plan_code, v_hold.price_cents, v_hold.buffer_minutes);
    exception when exclusion_violation then
      perform private.raise_error('slot_taken', 'the held time was taken after the hold expired');
    end;
    if exists (select 1 from public.mechanic_time_off t
               where t.mechanic_id = v_hold.mechanic_id and t.during && v_hold.during) then
      perform private.raise_error('slot_taken', 'the mechanic took time off after the hold expired');
    end if;
  end if;
  update public.intakes set status = 'pending', plan_code = v_plan.code where id = v_intake.id;
  perform private.schedule_reminders(v_session.id, p_now);
  return jsonb_build_object('session_id', v_session.id, 'status', 'scheduled', 'scheduled_for', v_session.scheduled_for,
                            'mechanic_id', v_hold.mechanic_id, 'price_cents', p_price_cents);
end
$$;
revoke execute on function private.confirm_hold(uuid, uuid, uuid, uuid, int, boolean, timestamptz) from public;
grant execute on function private.confirm_hold(uuid, uuid, uuid, uuid, int, boolean, timestamptz) to service_role;

-- A held slot booked without Stripe: free, or paid from the customer's credit.
create or replace function private.book_slot(
  p_customer_id uuid, p_hold_id uuid, p_intake_id uuid, p_vehicle_id uuid, p_now timestamptz default now()
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_hold public.mechanic_commitments;
  v_plan public.service_plans;
  v_booking_id uuid;
  v_result jsonb;
begin
  if p_hold_id is null or p_intake_id is null then
    perform private.raise_error('invalid_input', 'p_hold_id and p_intake_id are required');
  end if;
  select * into v_hold from public.mechanic_commitments where id = p_hold_id and kind = 'hold';
  if not found or v_hold.customer_id is distinct from p_customer_id then
    perform private.raise_error('not_found', 'no such hold');
  end if;
  if v_hold.price_cents = 0 then
    return private.confirm_hold(p_hold_id, p_customer_id, p_intake_id, p_vehicle_id, 0, false, p_now);
  end if;
  -- lock order: mechanic (inside confirm_hold, first), then the customer's credit
  perform private.lock_mechanic(v_hold.mechanic_id);
  perform private.lock_credit(p_customer_id);
  if private.credit_balance(p_customer_id) < v_hold.price_cents then
    perform private.raise_error('payment_required',
      format('this slot costs %s cents: pay through create_checkout with hold_id', v_hold.price_cents));
  end if;
  select * into v_plan from public.service_plans where code = v_hold.plan_code;
  v_result := private.confirm_hold(p_hold_id, p_customer_id, p_intake_id, p_vehicle_id, v_hold.price_cents, false, p_now);
  insert into public.bookings (customer_id, plan_code, intake_id, vehicle_id, preferred_mechanic_id, price_cents,
                               currency, method, status, status_changed_at, hold_id, session_id)
  values (p_customer_id, v_plan.code, p_intake_id,
          (select s.vehicle_id from public.sessions s where s.id = (v_result ->> 'session_id')::uuid),
          v_hold.mechanic_id, v_hold.price_cents, v_plan.currency, 'credit', 'paid', p_now, p_hold_id,
          (v_result ->> 'session_id')::uuid)
  returning id into v_booking_id;
  perform private.pay_booking_with_credit(v_booking_id, format('%s booking', v_plan.code), p_now);
  return v_result || jsonb_build_object('booking_id', v_booking_id, 'mode', 'credit');
end
$$;
revoke execute on function private.book_slot(uuid, uuid, uuid, uuid, timestamptz) from public;
grant execute on function private.book_slot(uuid, uuid, uuid, uuid, timestamptz) to service_role;

-- A Checkout for a held slot (create_checkout with hold_id): the pending card booking carries the
-- hold; credit that covers the price books at once. Same answer shape as prepare_checkout.
create or replace function private.prepare_hold_checkout(
  p_customer_id uuid, p_hold_id uuid, p_intake_id uuid, p_vehicle_id uuid, p_now timestamptz default now()
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_hold public.mechanic_commitments;
  v_plan public.service_plans;
  v_intake public.intakes;
  v_booking public.bookings;
  v_result jsonb;
begin
  if p_customer_id is null or p_hold_id is null or p_intake_id is null then
    perform private.raise_error('invalid_input', 'hold_id and intake_id are required');
  end if;
  select * into v_hold from public.mechanic_commitments where id = p_hold_id and kind = 'hold';
  if not found or v_hold.customer_id is distinct from p_customer_id then
    perform private.raise_error('not_found', 'no such hold');
  end if;
  if v_hold.status <> 'held' or v_hold.expires_at <= p_now then
    perform private.raise_error('hold_expired', 'the hold expired: hold the slot again');
  end if;
  select * into v_plan from public.service_plans where code = v_hold.plan_code;
  if v_hold.price_cents = 0 then
    perform private.raise_error('invalid_input', 'this slot is free: book it with book_slot');
  end if;
  select * into v_intake from public.intakes where id = p_intake_id and customer_id = p_customer_id;
  if not found then
    perform private.raise_error('not_found', 'no such intake');
  end if;
  if v_intake.status <> 'new' then
    perform private.raise_error('conflict', format('the intake is %s, not new', v_intake.status));
  end if;
  if private.credit_balance(p_customer_id) >= v_hold.price_cents then
    v_result := private.book_slot(p_customer_id, p_hold_id, p_intake_id, p_vehicle_id, p_now);
    return jsonb_build_object('mode', 'credit', 'booking_id', v_result ->> 'booking_id',
                              'session_id', v_result ->> 'session_id', 'request_id', null,
                              'price_cents', v_hold.price_cents, 'currency', v_plan.currency,
                              'credit_balance_cents', private.credit_balance(p_customer_id));
  end if;
  select * into v_booking from public.bookings b
  where b.hold_id = p_hold_id and b.status = 'pending' and b.method = 'card' and b.checkout_url is not null
    and b.expires_at > p_now + interval '5 minutes'
  order by b.created_at desc limit 1;
  if found then
    return jsonb_build_object('mode', 'stripe', 'reused', true, 'booking_id', v_booking.id, 'url', v_booking.checkout_url,
                              'price_cents', v_booking.price_cents, 'currency', v_booking.currency);
  end if;
  -- Stripe's shortest Checkout lifetime is 30 minutes: a payment after the hold's end takes the
  -- re-hold-or-refund path (private.confirm_hold with p_rehold).
  insert into public.bookings (customer_id, plan_code, intake_id, vehicle_id, preferred_mechanic_id, price_cents,
                               currency, method, status, status_changed_at, expires_at, hold_id)
  values (p_customer_id, v_plan.code, v_intake.id, coalesce(p_vehicle_id, v_intake.vehicle_id), v_hold.mechanic_id,
          v_hold.price_cents, v_plan.currency, 'card', 'pending', p_now,
          greatest(v_hold.expires_at, p_now + interval '30 minutes') + interval '1 minute', p_hold_id)
  returning * into v_booking;
  return jsonb_build_object('mode', 'stripe', 'reused', false, 'booking_id', v_booking.id,
                            'price_cents', v_booking.price_cents, 'currency', v_plan.currency,
                            'product_name', v_plan.name || ' at ' ||
                              to_char(lower(v_hold.during) at time zone 'UTC', 'YYYY-MM-DD HH24:MI "UTC"'),
                            'plan_code', v_plan.code, 'customer_id', p_customer_id,
                            'customer_email', (select u.email from auth.users u where u.id = p_customer_id),
                            'expires_at', floor(extract(epoch from v_booking.expires_at))::bigint);
end
$$;
revoke execute on function private.prepare_hold_checkout(uuid, uuid, uuid, uuid, timestamptz) from public;
grant execute on function private.prepare_hold_checkout(uuid, uuid, uuid, uuid, timestamptz) to service_role;

-- checkout.session.completed of a hold's booking (called by private.stripe_checkout_paid).
create or replace function private.book_paid_hold(p_booking_id uuid, p_amount_cents int, p_now timestamptz)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_booking public.bookings;
begin
  select * into v_booking from public.bookings where id = p_booking_id;
  return private.confirm_hold(v_booking.hold_id, v_booking.customer_id, v_booking.intake_id, v_booking.vehicle_id,
                              p_amount_cents, true, p_now);
end
$$;
revoke execute on function private.book_paid_hold(uuid, int, timestamptz) from public;
grant execute on function private.book_paid_hold(uuid, int, timestamptz) to service_role;
-- <<< functions_sql scheduling/holds.sql

-- >>> functions_sql scheduling/jobs.sql sha256=0e6312d573231b426c54900221c5b0ecbf53894ff7a9f634acf5d59fec14b64a
-- Scheduling: hold expiry and opening booked sessions for joining.

-- ---------------------------------------------------------------------------------------------
-- Jobs (cron_session_timers): hold expiry and opening booked sessions for joining
-- ---------------------------------------------------------------------------------------------
create or replace function private.expire_holds(p_now timestamptz default now(), p_limit int default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_n int;
begin
  update public.mechanic_commitments c set status = 'expired'
  where c.id in (select x.id from public.mechanic_commitments x
                 where x.status = 'held' and x.expires_at <= p_now
                 order by x.expires_at limit coalesce(p_limit, private.setting_int('jobs.batch_size'))
                 for update skip locked);
  get diagnostics v_n = row_count;
  return jsonb_build_object('holds_expired', v_n);
end
$$;
revoke execute on function private.expire_holds(timestamptz, int) from public;
grant execute on function private.expire_holds(timestamptz, int) to service_role;

-- scheduled → waiting 15 minutes before the start (same LiveKit flow from there). The waiting
-- clock of the sweeps and nudges (status_changed_at) counts from the booked start, so a session
-- opened early is not a no-show before it has begun.
create or replace function private.open_scheduled_sessions(p_now timestamptz default now(), p_limit int default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_n int;
begin
  perform private.set_actor('system', 'the booked session opens');
  update public.sessions s set status = 'waiting', status_changed_at = greatest(s.scheduled_for, p_now)
  where s.id in (select x.id from public.sessions x
                 where x.status = 'scheduled' and x.mechanic_id is not null
                   and x.scheduled_for <= p_now + private.setting_interval('scheduling.open_before')
                 order by x.scheduled_for limit coalesce(p_limit, private.setting_int('jobs.batch_size'))
                 for update skip locked);
  get diagnostics v_n = row_count;
  return jsonb_build_object('sessions_opened', v_n);
end
$$;
revoke execute on function private.open_scheduled_sessions(timestamptz, int) from public;
grant execute on function private.open_scheduled_sessions(timestamptz, int) to service_role;
-- <<< functions_sql scheduling/jobs.sql

-- >>> functions_sql scheduling/open_time.sql sha256=1825042aaf3c81077d65b47f47ae38afe1173a8b9ea12e338de9fc6041f5513c
-- Scheduling: open time, the one source of truth for when a mechanic may be booked, computed
-- set-based from local wall-clock blocks converted per date with `at time zone` (DST-correct).

-- ---------------------------------------------------------------------------------------------
-- Open time: the one source of truth for "when may this mechanic be booked"
-- ---------------------------------------------------------------------------------------------
-- (jit = off on these three: their row estimates cross jit_above_cost, and on servers built with
-- LLVM compiling the plan took ~650 ms of a query that runs in a few ms. They are PL/pgSQL with
-- plan_cache_mode = force_generic_plan: each query is planned once per session, not per call —
-- PostgreSQL 15 planned a SQL function's body on every call, ~1-3 ms, more than the work — and
-- the queries are written so that the generic plan is the good one: no `p_x is null or col =
-- p_x` filters that need the value to pick an index, per-date index lookups (`offset 0`
-- laterals) instead of hashing every mechanic's blocks, no join back to a CTE whose row count
-- the planner cannot know. bench/bench_scheduling.py measured the difference.)
-- Open ranges of mechanic `p_mechanic_id` (null: every approved mechanic that takes bookings)
-- meeting [p_from, p_to), with the price multiplier of each. By mechanic type:
-- virtual_only → its own blocks; independent_workshop → its blocks ∩ its workshop's hours;
-- workshop_affiliated → the workshop's hours (multiplier 1). Own blocks come from the weekly
-- table unless the local date has an override (which then replaces them); the same for a
-- workshop. Each local date is converted on its own with `at time zone`, so DST days get their
-- real hours (a time inside the spring-forward gap moves forward; a fall-back time takes its
-- first instance). Time off, bookings and notice are not subtracted here.
create or replace function private.open_ranges(p_mechanic_id uuid, p_from timestamptz, p_to timestamptz)
returns table (mechanic_id uuid, r tstzrange, multiplier numeric)
language plpgsql stable security definer set search_path = '' set jit = off
  set plan_cache_mode = force_generic_plan
as $$
#variable_conflict use_column
begin
  -- PL/pgSQL, not SQL: the plan is cached per session (PostgreSQL 15 re-planned a SQL function's
  -- query on every call, ~1-3 ms). The query is written to have one good generic plan for both
  -- callers: one mechanic (the first branch of m, index lookups per local date) and every
  -- mechanic (the second branch, gated by `p_mechanic_id is null`); the final joins no longer
  -- go back to m, whose row estimate differs by 1,000x between the two.
  return query
  with m as (
    select mm.id, mm.timezone as tz, mm.mechanic_type as mtype, mm.organization_id as org,
           coalesce(o.timezone, mm.timezone) as wtz
    from public.mechanics mm
    left join public.organizations o on o.id = mm.organization_id
    where mm.id = p_mechanic_id
      and mm.status = 'approved' and mm.can_accept_sessions
      and (mm.mechanic_type = 'virtual_only' or mm.organization_id is not null)
    union all
    select mm.id, mm.timezone, mm.mechanic_type, mm.organization_id, coalesce(o.timezone, mm.timezone)
    from public.mechanics mm
    left join public.organizations o on o.id = mm.organization_id
    where p_mechanic_id is null
      and mm.status = 'approved' and mm.can_accept_sessions
      and (mm.mechanic_type = 'virtual_only' or mm.organization_id is not null)
  ),
  -- local dates (in the mechanic's zone) that can meet the range
  mdays as (
    select m.id, m.tz, m.mtype, m.org, d::date as d
    from m cross join lateral generate_series((p_from at time zone m.tz)::date - 1,
                                              (p_to at time zone m.tz)::date, interval '1 day') d
    where m.mtype <> 'workshop_affiliated'
  ),
  own as (
    select md.id, md.mtype, md.org, tstzrange(case when (((((md.d + o.start_time) at time zone md.tz)) - interval '1 hour') at time zone md.tz) = (md.d + o.start_time) then ((md.d + o.start_time) at time zone md.tz) - interval '1 hour' when (((((md.d + o.start_time) at time zone md.tz)) - interval '30 minutes') at time zone md.tz) = (md.d + o.start_time) then ((md.d + o.start_time) at time zone md.tz) - interval '30 minutes' else ((md.d + o.start_time) at time zone md.tz) end, (md.d + o.end_time) at time zone md.tz) as r,
           o.price_multiplier as mult
    from mdays md join public.availability_overrides o on o.mechanic_id = md.id and o.on_date = md.d and o.is_available
    union all
    select md.id, md.mtype, md.org, tstzrange(case when (((((md.d + b.start_time) at time zone md.tz)) - interval '1 hour') at time zone md.tz) = (md.d + b.start_time) then ((md.d + b.start_time) at time zone md.tz) - interval '1 hour' when (((((md.d + b.start_time) at time zone md.tz)) - interval '30 minutes') at time zone md.tz) = (md.d + b.start_time) then ((md.d + b.start_time) at time zone md.tz) - interval '30 minutes' else ((md.d + b.start_time) at time zone md.tz) end, (md.d + b.end_time) at time zone md.tz),
           b.price_multiplier
    from mdays md cross join lateral (  -- offset 0: an index lookup per local date, never a scan of all blocks
      select wb.start_time, wb.end_time, wb.price_multiplier from public.mechanic_weekly_availability wb
      where wb.mechanic_id = md.id and wb.day_of_week = extract(dow from md.d)::int offset 0) b
    where not exists (select 1 from public.availability_overrides o where o.mechanic_id = md.id and o.on_date = md.d)
  ),
  orgs as (select distinct m.org, m.wtz from m where m.mtype <> 'virtual_only'),
  wdays as (
    select g.org, g.wtz, d::date as d
    from orgs g cross join lateral generate_series((p_from at time zone g.wtz)::date - 1,
                                                   (p_to at time zone g.wtz)::date, interval '1 day') d
  ),
  wranges as (
    select w.org, tstzrange(case when (((((w.d + o.start_time) at time zone w.wtz)) - interval '1 hour') at time zone w.wtz) = (w.d + o.start_time) then ((w.d + o.start_time) at time zone w.wtz) - interval '1 hour' when (((((w.d + o.start_time) at time zone w.wtz)) - interval '30 minutes') at time zone w.wtz) = (w.d + o.start_time) then ((w.d + o.start_time) at time zone w.wtz) - interval '30 minutes' else ((w.d + o.start_time) at time zone w.wtz) end, (w.d + o.end_time) at time zone w.wtz) as r
    from wdays w join public.availability_overrides o on o.organization_id = w.org and o.on_date = w.d and o.is_available
    union all
    select w.org, tstzrange(case when (((((w.d + h.open_time) at time zone w.wtz)) - interval '1 hour') at time zone w.wtz) = (w.d + h.open_time) then ((w.d + h.open_time) at time zone w.wtz) - interval '1 hour' when (((((w.d + h.open_time) at time zone w.wtz)) - interval '30 minutes') at time zone w.wtz) = (w.d + h.open_time) then ((w.d + h.open_time) at time zone w.wtz) - interval '30 minutes' else ((w.d + h.open_time) at time zone w.wtz) end,
                            (w.d + coalesce(h.break_start, h.close_time)) at time zone w.wtz)
    from wdays w join public.workshop_hours h on h.organization_id = w.org and h.day_of_week = extract(dow from w.d)::int
    where h.is_open
      and not exists (select 1 from public.availability_overrides o where o.organization_id = w.org and o.on_date = w.d)
    union all
    select w.org, tstzrange(case when (((((w.d + h.break_end) at time zone w.wtz)) - interval '1 hour') at time zone w.wtz) = (w.d + h.break_end) then ((w.d + h.break_end) at time zone w.wtz) - interval '1 hour' when (((((w.d + h.break_end) at time zone w.wtz)) - interval '30 minutes') at time zone w.wtz) = (w.d + h.break_end) then ((w.d + h.break_end) at time zone w.wtz) - interval '30 minutes' else ((w.d + h.break_end) at time zone w.wtz) end, (w.d + h.close_time) at time zone w.wtz)
    from wdays w join public.workshop_hours h on h.organization_id = w.org and h.day_of_week = extract(dow from w.d)::int
    where h.is_open and h.break_end is not null
      and not exists (select 1 from public.availability_overrides o where o.organization_id = w.org and o.on_date = w.d)
  ),
  ws as (select w.org, range_agg(w.r) as mr from wranges w where not isempty(w.r) group by w.org)
  select own.id, own.r, own.mult
  from own
  where own.mtype = 'virtual_only' and own.r && tstzrange(p_from, p_to)
  union all
  select own.id, x.r, own.mult
  from own join ws on ws.org = own.org
  cross join lateral unnest(multirange(own.r) * ws.mr) as x(r)
  where own.mtype = 'independent_workshop' and x.r && tstzrange(p_from, p_to)
  union all
  select m.id, x.r, 1.0
  from m join ws on ws.org = m.org
  cross join lateral unnest(ws.mr) as x(r)
  where m.mtype = 'workshop_affiliated' and x.r && tstzrange(p_from, p_to);
end
$$;
revoke execute on function private.open_ranges(uuid, timestamptz, timestamptz) from public;
grant execute on function private.open_ranges(uuid, timestamptz, timestamptz) to service_role;

-- Free slots of one mechanic for plan `p_plan_code` in [p_from, p_to): open ranges minus time
-- off and committed time (widened by the buffer before, as the stored ranges are after), clamped
-- to [now + notice, now + max advance), cut on the step from each block's start; a local day
-- that already has max_sessions_per_day bookings offers nothing. Price = plan price × multiplier.
create or replace function private.slots(
  p_mechanic_id uuid, p_from timestamptz, p_to timestamptz, p_plan_code text, p_now timestamptz default now()
) returns table (slot_start timestamptz, slot_end timestamptz, price_cents int)
language plpgsql stable security definer set search_path = '' set jit = off
  set plan_cache_mode = force_generic_plan
as $$
#variable_conflict use_column
declare
  v_tz text;
  v_dur interval;
  v_plan_price int;
  v_rules record;
  v_lo timestamptz;
  v_hi timestamptz;
begin
  -- PL/pgSQL with scalars first (rules and settings read once), then one cached query over this
  -- mechanic's rows only: PostgreSQL 15 re-planned the SQL version on every call.
  select mm.timezone, make_interval(mins => p.minutes), p.price_cents into v_tz, v_dur, v_plan_price
  from public.mechanics mm join public.service_plans p on p.code = p_plan_code and p.active
  where mm.id = p_mechanic_id;
  if not found then
    return;
  end if;
  select * into v_rules from private.booking_rules_for(p_mechanic_id);
  if not v_rules.instant then
    return;
  end if;
  v_lo := greatest(p_from, p_now + v_rules.min_notice);
  v_hi := least(p_to, p_now + v_rules.max_advance);
  if not (v_lo < v_hi) then
    return;
  end if;
  return query
  with busy as (
    select coalesce(range_agg(b.r), '{}'::tstzmultirange) as mr
    from (
      select tstzrange(lower(c.during) - v_rules.buffer, upper(c.during)) as r
      from public.mechanic_commitments c
      where c.mechanic_id = p_mechanic_id
        and (c.status in ('confirmed', 'in_progress') or (c.status = 'held' and c.expires_at > p_now))
        and c.during && tstzrange(v_lo - v_rules.buffer, v_hi + v_dur + v_rules.buffer)
      union all
      select t.during from public.mechanic_time_off t
      where t.mechanic_id = p_mechanic_id and t.during && tstzrange(v_lo, v_hi)
    ) b
  ),
  full_days as (
    select (lower(c.during) at time zone v_tz)::date as d
    from public.mechanic_commitments c
    where c.mechanic_id = p_mechanic_id and c.kind in ('hold', 'scheduled')
      and (c.status = 'confirmed' or (c.status = 'held' and c.expires_at > p_now))
      and c.during && tstzrange(v_lo - interval '2 days', v_hi + interval '2 days')
    group by 1
    having count(*) >= v_rules.max_per_day
  )
  -- A start on a block's grid is free when [s, s + plan) lies inside the block and the window
  -- and touches no busy range: one binary search in the busy multirange per candidate instead
  -- of a multirange difference per block (the same answer: a busy-free interval inside
  -- block ∩ window lies inside one piece of (block ∩ window) − busy).
  select distinct on (s) s, s + v_dur, round(v_plan_price * o.multiplier)::int
  from private.open_ranges(p_mechanic_id, v_lo, v_hi + v_dur) o
  cross join lateral generate_series(lower(o.r), upper(o.r) - v_dur, v_rules.step) s
  cross join busy
  where s >= v_lo and s + v_dur <= v_hi
    and not (busy.mr && tstzrange(s, s + v_dur))
    and (s at time zone v_tz)::date not in (select f.d from full_days f)
  order by s, o.multiplier desc;
end
$$;
revoke execute on function private.slots(uuid, timestamptz, timestamptz, text, timestamptz) from public;
grant execute on function private.slots(uuid, timestamptz, timestamptz, text, timestamptz) to service_role;

-- Mechanics who can take a session of plan `p_plan_code` starting at `p_start`, in one set-based
-- query over all mechanics (never a loop): the session fits inside one open range on the step
-- grid of that range, meets notice and window, touches no time off, no committed time (with
-- the buffer either side) and no full day. Ordered as the directory orders (rating, experience).
create or replace function private.free_at(
  p_start timestamptz, p_plan_code text, p_city text, p_brand text, p_limit int, p_now timestamptz default now()
) returns table (mechanic_id uuid, price_cents int, multiplier numeric)
language plpgsql stable security definer set search_path = '' set jit = off
  set plan_cache_mode = force_generic_plan
as $$
#variable_conflict use_column
declare
  v_dur interval;
  v_price int;
  -- the scheduling.* defaults, read once (booking_rules_for per candidate read six settings per row)
  v_buffer interval := private.setting_interval('scheduling.buffer');
  v_min_notice interval := private.setting_interval('scheduling.min_notice');
  v_max_advance interval := private.setting_interval('scheduling.max_advance');
  v_step interval := private.setting_interval('scheduling.slot_step');
  v_max_per_day int := private.setting_int('scheduling.max_sessions_per_day');
  v_instant boolean := private.setting_bool('scheduling.instant_booking');
begin
  select make_interval(mins => sp.minutes), sp.price_cents into v_dur, v_price
  from public.service_plans sp where sp.code = p_plan_code and sp.active;
  if not found then
    return;
  end if;
  return query
  with cand as (
    select o.mechanic_id, o.r, o.multiplier
    from private.open_ranges(null, p_start, p_start + v_dur) o
    where o.r @> tstzrange(p_start, p_start + v_dur)
  ),
  ok as (
    select c.mechanic_id, round(v_price * c.multiplier)::int as price_cents, c.multiplier,
           coalesce(make_interval(mins => rl.buffer_minutes), v_buffer) as buffer,
           coalesce(rl.max_sessions_per_day, v_max_per_day) as max_per_day,
           m.timezone, m.rating_avg, m.completed_sessions
    from cand c
    join public.mechanics m on m.id = c.mechanic_id
    left join public.booking_rules rl on rl.mechanic_id = c.mechanic_id
    where coalesce(rl.instant_booking, v_instant)
      and p_start >= p_now + coalesce(make_interval(mins => rl.min_notice_minutes), v_min_notice)
      and p_start < p_now + coalesce(make_interval(days => rl.max_advance_days), v_max_advance)
      and mod(extract(epoch from (p_start - lower(c.r)))::numeric,
              extract(epoch from coalesce(make_interval(mins => rl.slot_step_minutes), v_step))::numeric) = 0
      and (p_city is null or lower(m.city) = lower(btrim(p_city)))
      and (p_brand is null or exists (select 1 from unnest(m.brand_specializations) b where lower(b) = lower(p_brand)))
  )
  select ok.mechanic_id, ok.price_cents, ok.multiplier
  from ok
  where not exists (select 1 from public.mechanic_commitments c
                    where c.mechanic_id = ok.mechanic_id
                      and (c.status in ('confirmed', 'in_progress') or (c.status = 'held' and c.expires_at > p_now))
                      and c.during && tstzrange(p_start - ok.buffer, p_start + v_dur + ok.buffer))
    and not exists (select 1 from public.mechanic_time_off t
                    where t.mechanic_id = ok.mechanic_id and t.during && tstzrange(p_start, p_start + v_dur))
    and (select count(*) from public.mechanic_commitments c
         where c.mechanic_id = ok.mechanic_id and c.kind in ('hold', 'scheduled')
           and (c.status = 'confirmed' or (c.status = 'held' and c.expires_at > p_now))
           and (lower(c.during) at time zone ok.timezone)::date = (p_start at time zone ok.timezone)::date
           and c.during && tstzrange(p_start - interval '2 days', p_start + interval '2 days')) < ok.max_per_day
  order by ok.rating_avg desc nulls last, ok.completed_sessions desc, ok.mechanic_id
  limit p_limit;
end
$$;
revoke execute on function private.free_at(timestamptz, text, text, text, int, timestamptz) from public;
grant execute on function private.free_at(timestamptz, text, text, text, int, timestamptz) to service_role;
-- <<< functions_sql scheduling/open_time.sql

-- >>> functions_sql scheduling/reminders.sql sha256=025401df24f13a2de6d28c5ef71abd2134b287a87e25f0a98b395e69bc743734
-- Scheduling: reminders as delayed outbox rows.

-- ---------------------------------------------------------------------------------------------
-- Reminders: delayed outbox rows keyed (session, kind[, sequence]); moved on reschedule, dropped
-- on cancellation. The "starting" notice uses the same key as private.send_starting_notices, and
-- a booked session is marked (starting_notice_at) so that sweep leaves it to this row.
-- ---------------------------------------------------------------------------------------------
create or replace function private.drop_reminders(p_session_id uuid) returns int
language sql security definer set search_path = ''
as $$
  with d as (
    delete from private.outbox o
    where (o.payload ->> 'session_id') = p_session_id::text and o.kind = 'email.send' and o.status = 'pending'
      and o.payload ->> 'template' in ('session_reminder', 'session_starting')
    returning 1)
  select count(*)::int from d
$$;
revoke execute on function private.drop_reminders(uuid) from public;
grant execute on function private.drop_reminders(uuid) to service_role;

create or replace function private.schedule_reminders(p_session_id uuid, p_now timestamptz default now()) returns int
language plpgsql security definer set search_path = ''
as $$
declare
  v_s public.sessions;
  v_suffix text;
  v_lead text;
  v_user uuid;
  v_at timestamptz;
  v_n int := 0;
begin
  select * into v_s from public.sessions where id = p_session_id;
  if not found or v_s.status <> 'scheduled' or v_s.scheduled_for is null then
    return 0;
  end if;
  v_suffix := case when v_s.calendar_sequence = 0 then '' else ':s' || v_s.calendar_sequence end;
  foreach v_user in array array_remove(array[v_s.customer_id, v_s.mechanic_id], null) loop
    for v_lead in select jsonb_array_elements_text(private.setting('scheduling.reminder_leads')) loop
      v_at := v_s.scheduled_for - v_lead::interval;
      if v_at > p_now then
        perform private.enqueue('email.send',
          format('email:session_reminder:%s:%s:%s%s', v_s.id, v_user, replace(v_lead, ' ', ''), v_suffix),
          jsonb_build_object('template', 'session_reminder', 'user_id', v_user, 'session_id', v_s.id,
                             'data', jsonb_build_object('lead', v_lead)), v_at);
        v_n := v_n + 1;
      end if;
    end loop;
    v_at := greatest(v_s.scheduled_for - private.setting_interval('sessions.starting_notice'), p_now);
    perform private.enqueue('email.send', format('email:session_starting:%s:%s%s', v_s.id, v_user, v_suffix),
      jsonb_build_object('template', 'session_starting', 'user_id', v_user, 'session_id', v_s.id, 'data', '{}'::jsonb),
      v_at);
    v_n := v_n + 1;
  end loop;
  update public.sessions set starting_notice_at = coalesce(starting_notice_at, p_now) where id = v_s.id;
  return v_n;
end
$$;
revoke execute on function private.schedule_reminders(uuid, timestamptz) from public;
grant execute on function private.schedule_reminders(uuid, timestamptz) to service_role;

-- Lifecycle step (core/lifecycle.sql): a booked session that is cancelled, by any path: SEQUENCE +1
-- (the .ics becomes a cancellation), its reminders go, both participants hear of it.
drop trigger if exists _120_calendar_sequence on public.sessions;
drop function if exists private.tg_sessions__calendar_sequence();
drop trigger if exists _450_scheduling on public.sessions;
drop function if exists private.tg_sessions__scheduling();
create or replace function private.scheduling_on_session_cancelled(p_session_id uuid, p_from public.session_status)
returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_s public.sessions;
begin
  if p_from <> 'scheduled' then
    return;
  end if;
  update public.sessions set calendar_sequence = calendar_sequence + 1 where id = p_session_id returning * into v_s;
  perform private.drop_reminders(v_s.id);
  perform private.enqueue_email('booking_cancelled', v_s.customer_id, v_s.id, '{}'::jsonb);
  if v_s.mechanic_id is not null then
    perform private.enqueue_email('booking_cancelled', v_s.mechanic_id, v_s.id, '{}'::jsonb);
  end if;
end
$$;
revoke execute on function private.scheduling_on_session_cancelled(uuid, public.session_status) from public;
grant execute on function private.scheduling_on_session_cancelled(uuid, public.session_status) to service_role;

-- A paid booking of a hold that could not be kept (the slot was taken after the hold expired) is
-- refunded by the payments code; the customer is told why.
create or replace function private.tg_bookings__slot_lost() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if new.hold_id is not null and new.status = 'unfulfilled' and old.status is distinct from 'unfulfilled' then
    perform private.enqueue('email.send', format('email:booking_slot_lost:%s', new.id),
      jsonb_build_object('template', 'booking_slot_lost', 'user_id', new.customer_id, 'session_id', null,
                         'data', jsonb_build_object('booking_id', new.id, 'price_cents', new.price_cents,
                                                    'currency', new.currency)));
  end if;
  return null;
end
$$;
drop trigger if exists _450_slot_lost on public.bookings;
create trigger _450_slot_lost after update of status on public.bookings
  for each row execute function private.tg_bookings__slot_lost();
revoke execute on function private.tg_bookings__slot_lost() from public;
-- <<< functions_sql scheduling/reminders.sql

-- >>> functions_sql scheduling/rules.sql sha256=77e8204836c14debf06ee1933b26252a7fee4d3089fe7720ddf73d0adbed1af3
-- Scheduling: booking rules and small helpers.

-- ---------------------------------------------------------------------------------------------
-- Rules and small helpers
-- ---------------------------------------------------------------------------------------------
-- A mechanic's effective booking rules: its own values, else the scheduling.* settings.
create or replace function private.booking_rules_for(p_mechanic_id uuid)
returns table (buffer interval, min_notice interval, max_advance interval, step interval, max_per_day int,
               instant boolean)
language plpgsql stable security definer set search_path = ''
as $$
#variable_conflict use_column
begin
  -- PL/pgSQL for its cached plan (a SQL function was planned on every call on PostgreSQL 15);
  -- a setting is read only when the mechanic has no value of its own.
  return query
  select coalesce(make_interval(mins => r.buffer_minutes), private.setting_interval('scheduling.buffer')),
         coalesce(make_interval(mins => r.min_notice_minutes), private.setting_interval('scheduling.min_notice')),
         coalesce(make_interval(days => r.max_advance_days), private.setting_interval('scheduling.max_advance')),
         coalesce(make_interval(mins => r.slot_step_minutes), private.setting_interval('scheduling.slot_step')),
         coalesce(r.max_sessions_per_day, private.setting_int('scheduling.max_sessions_per_day')),
         coalesce(r.instant_booking, private.setting_bool('scheduling.instant_booking'))
  from (select p_mechanic_id as id) x
  left join public.booking_rules r on r.mechanic_id = x.id;
end
$$;
revoke execute on function private.booking_rules_for(uuid) from public;
grant execute on function private.booking_rules_for(uuid) to service_role;

-- The per-mechanic lock every writer of committed time takes first, so two writers for one mechanic never interleave.
create or replace function private.lock_mechanic(p_mechanic_id uuid) returns public.mechanics
language plpgsql security definer set search_path = ''
as $$
declare
  v_mechanic public.mechanics;
begin
  select * into v_mechanic from public.mechanics where id = p_mechanic_id for no key update;
  return v_mechanic;
end
$$;
revoke execute on function private.lock_mechanic(uuid) from public;
grant execute on function private.lock_mechanic(uuid) to service_role;

-- Whether the caller may manage mechanic `p_mechanic_id`'s schedule (itself, or its workshop's admin).
create or replace function private.can_manage_mechanic(p_mechanic_id uuid) returns boolean
language sql stable security definer set search_path = ''
as $$
  select p_mechanic_id is not null and (
    p_mechanic_id = (select auth.uid())
    or p_mechanic_id in (select private.my_workshop_mechanic_ids())
    or (select private.is_admin()))
$$;
revoke execute on function private.can_manage_mechanic(uuid) from public;
grant execute on function private.can_manage_mechanic(uuid) to authenticated, service_role;

-- "HH:MM" (or "24:00" when p_allow_24) → time; anything else is invalid_input.
create or replace function private.parse_clock(p_name text, p_value text, p_allow_24 boolean default true)
returns time
language plpgsql immutable set search_path = ''
as $$
begin
  if p_value is null or p_value !~ '^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$' or (p_value = '24:00' and not p_allow_24) then
    perform private.raise_error('invalid_input', format('%s must be HH:MM', p_name));
  end if;
  return p_value::time;
end
$$;
revoke execute on function private.parse_clock(text, text, boolean) from public;
grant execute on function private.parse_clock(text, text, boolean) to authenticated, service_role;
-- <<< functions_sql scheduling/rules.sql

reset check_function_bodies;

-- functions_sql-manifest: the state of supabase/functions_sql/ after this migration
-- functions_sql-manifest core/admin.sql sha256=3ffcd3451d9f9aa0ebd9a8065c10592403dd1886d07e32da52a70c4f31ce01d0
-- functions_sql-manifest core/broadcasts.sql sha256=4273cae87264abe2ae314a241f5498dcf154f8a87832d657e0405886f5b673ce
-- functions_sql-manifest core/directory.sql sha256=bc92ebaf83f9d3782a918145c2a44fd3995622dff057f908249c81dd7289c92f
-- functions_sql-manifest core/helpers.sql sha256=3a77982775e195585c47d130d06d472ccdc57afd4496628b611918efbfa36ef8
-- functions_sql-manifest core/lifecycle.sql sha256=815b45d37248758734d48e8deb38a716f2235832343c8fafc41ee983ac3ef7f3
-- functions_sql-manifest core/rpc.sql sha256=2876d36e295a06aea26ae1ddca03aa678fa2a4ba70eccc349d0267aca1b69427
-- functions_sql-manifest core/sessions.sql sha256=793771d65d0dd71f2e2b9ecb89d90fd77d805cdde6093462533459b5d2484c16
-- functions_sql-manifest core/signup.sql sha256=c1eaadc2d934df2bed3300c53885004a45fe59fb472bdbece20a33b0f704bd17
-- functions_sql-manifest core/transitions.sql sha256=e06258bb0ad614737d56808456f0a990ed475c1e053661e720540207767bed3c
-- functions_sql-manifest jobs/admin.sql sha256=a4f0886a56193d41a2c45144a3b8b64fbf764a8df29314ce2e1add3575594675
-- functions_sql-manifest jobs/emails.sql sha256=f46bba0114bc68dbcc2d033d2e8ebc7f96ab5793ad23f8761cc2b64528cfc9de
-- functions_sql-manifest jobs/nudges.sql sha256=c0b8d99bdc129ca4cbc3b46334391a788fcad25bce5fb0c06b4b3a775ffad85a
-- functions_sql-manifest jobs/outbox.sql sha256=bf82864fb2cf3aaf6c77942185c4eebe60c03ddf8575a9446fdb5a79f09b2b13
-- functions_sql-manifest jobs/runs.sql sha256=22697585fd787eecd46440d55f7e68b6096ccbffae106360d2eca48014e3fd98
-- functions_sql-manifest jobs/schedules.sql sha256=092f997db095e599bef8a1b5f156c41e6bd61e1180e33d07c0d3e4f291b2391f
-- functions_sql-manifest jobs/sweep_requests.sql sha256=b71a7b97d2dec4579abcbd95477cd30cdcb2e1eb45123abd343bd2aaf4b2d948
-- functions_sql-manifest matching/eligibility.sql sha256=eff05764dacec6d36fe29bd5115957a4f5b6f99fc84ba99dc8ffc3a8d3e8c7e4
-- functions_sql-manifest matching/keywords.sql sha256=152d4fe0de3480e326b93190271c153a66f37f4f4cbf3b64bcc90821769a37a6
-- functions_sql-manifest matching/listing.sql sha256=1c4eb1fc60a30bc8a6473d2f601769d85979620a89d344f9a4ffa9e93e5186ed
-- functions_sql-manifest matching/metrics.sql sha256=16e0bfa047e423ebe70c19b3ca3e25ca809a7c0649361b46516eccb088b98145
-- functions_sql-manifest matching/presence.sql sha256=3d650ac68e07a00f5897681cb1210dbc37b4b6501323330bebba7d3c72ace4c4
-- functions_sql-manifest matching/ranking.sql sha256=02e0875522aa2a246c45717eb04ed2a31d77c41ab1a206e6e729d28e42fcb873
-- functions_sql-manifest matching/routing.sql sha256=b3a2f3e4e7eeed9b1c5a4d10136809fb13dd99f0d72fa5018c2384fc8a52a7cf
-- functions_sql-manifest micro/caps.sql sha256=d71b498252fab291a7ec7ac3bfa265c8a899b11190c7aba25ceb38c324988a32
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
-- functions_sql-manifest rooms/timers.sql sha256=d455d91be44498b485a847af7ecfec899f0360e1436b85f3c40e43406d4d460b
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
