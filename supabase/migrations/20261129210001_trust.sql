-- trust: supabase/functions_sql/ as of this migration, written by `autodoctor db commit`.
-- Whole files, re-runnable, in path order; then the drops of what they no longer define.
-- Edit the files in supabase/functions_sql/, never this migration (see docs/migrations.md).
set check_function_bodies = off;

-- >>> functions_sql core/directory.sql sha256=97061e15165f3460c9f89023ee7162fa3b68d758e42d9d514665d237c6eb604d
-- The public mechanic directory.

-- ---------------------------------------------------------------------------------------------
-- Views
-- ---------------------------------------------------------------------------------------------
-- The public mechanic directory: approved mechanics, no contact or payout details. Clients order it
-- as the listings do: rating_score (the Bayesian rating) desc, then customers_served desc.
create or replace view public.mechanic_directory with (security_invoker = true) as
select m.id, m.display_name, m.photo_url, m.bio, m.years_experience, m.specialties, m.brand_specializations,
       m.is_brand_specialist, m.service_keywords, m.city, m.country, m.timezone, m.mechanic_type,
       m.rating_avg, m.rating_count, m.completed_sessions, m.is_available, m.last_seen_at,
       m.rating_score, m.customers_served
from public.mechanics m
where m.status = 'approved';
grant select on public.mechanic_directory to anon, authenticated, service_role;
comment on view public.mechanic_directory is 'Approved mechanics as customers (and anon) may see them.';
-- <<< functions_sql core/directory.sql

-- >>> functions_sql core/errors.sql sha256=3162f074770469a2c8f8cc6e582405853f74e510e71a3961234876f8a544d9d2
-- Raising registered errors (private.error_codes, docs/error_codes.md).
--
-- An error raises its own SQLSTATE (class AD) with the message, the detail and its name in HINT;
-- PostgREST answers it with HTTP 400 (any SQLSTATE it does not know). An error registered with
-- http_status 429 (limit_reached, rate_limited) is raised in PostgREST's own form instead:
-- SQLSTATE PGRST, the message a JSON object {"code", "message", "details", "hint"} (our code, our
-- message, our name in hint) and the detail {"status": 429, "headers": {"Retry-After": "<s>"}},
-- from which PostgREST (11.2 and later) sets the response's status and headers. The JSON body
-- the client reads is the same shape as for every other error. shared/errors.py and the test
-- harness read our code back from the JSON.

-- Raises the registered error `p_name` (message defaults to the registry's description). An
-- unknown name is a programming error (XX000).
create or replace function private.raise_error(p_name text, p_message text default null, p_detail text default null)
returns void
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_code text;
  v_description text;
  v_status int;
begin
  select e.sqlstate, e.description, e.http_status into v_code, v_description, v_status
  from private.error_codes as e where e.name = p_name;
  if v_code is null then
    raise exception 'unregistered error name %', p_name using errcode = 'XX000';
  end if;
  if v_status = 429 then
    perform private.raise_error_retry(p_name, p_message, null, p_detail);
  end if;
  raise exception using
    errcode = v_code,
    message = coalesce(p_message, v_description),
    detail = coalesce(p_detail, ''),
    hint = p_name;
end
$$;
revoke execute on function private.raise_error(text, text, text) from public;
grant execute on function private.raise_error(text, text, text) to anon, authenticated, service_role;
comment on function private.raise_error(text, text, text) is
  'Raise a registered error: SQLSTATE from private.error_codes, the name in HINT (429s in PostgREST''s PGRST form).';

-- The same, telling the client when to try again (`Retry-After`, whole seconds, at least 1) when
-- the error answers 429; other errors raise exactly as private.raise_error.
create or replace function private.raise_error_retry(
  p_name text, p_message text, p_retry_after_seconds numeric, p_detail text default null
) returns void
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_code text;
  v_description text;
  v_status int;
  v_body jsonb;
  v_headers jsonb := '{}';
begin
  select e.sqlstate, e.description, e.http_status into v_code, v_description, v_status
  from private.error_codes as e where e.name = p_name;
  if v_code is null then
    raise exception 'unregistered error name %', p_name using errcode = 'XX000';
  end if;
  if v_status <> 429 then
    raise exception using errcode = v_code, message = coalesce(p_message, v_description),
      detail = coalesce(p_detail, ''), hint = p_name;
  end if;
  v_body := jsonb_build_object('code', v_code, 'message', coalesce(p_message, v_description), 'hint', p_name,
                               'details', nullif(p_detail, ''));
  if p_retry_after_seconds is not null then
    v_headers := jsonb_build_object('Retry-After', greatest(1, ceil(p_retry_after_seconds))::bigint::text);
  end if;
  raise exception using
    errcode = 'PGRST',
    message = v_body::text,
    detail = jsonb_build_object('status', v_status, 'headers', v_headers)::text;
end
$$;
revoke execute on function private.raise_error_retry(text, text, numeric, text) from public;
grant execute on function private.raise_error_retry(text, text, numeric, text) to anon, authenticated, service_role;

-- Our registered code of an error caught in SQL (`exception when others`): its SQLSTATE, or for
-- a 429 raised in PostgREST's form the code inside its JSON message. Null for any other error.
create or replace function private.caught_error_code(p_sqlstate text, p_message text) returns text
language plpgsql immutable set search_path = ''
as $$
begin
  if p_sqlstate like 'AD%' then
    return p_sqlstate;
  end if;
  if p_sqlstate = 'PGRST' then
    begin
      return nullif(p_message::jsonb ->> 'code', '');
    exception when others then
      return null;
    end;
  end if;
  return null;
end
$$;
revoke execute on function private.caught_error_code(text, text) from public;
grant execute on function private.caught_error_code(text, text) to service_role;

-- The human message of an error caught in SQL (the JSON message's `message` for the PGRST form).
create or replace function private.caught_error_message(p_sqlstate text, p_message text) returns text
language plpgsql immutable set search_path = ''
as $$
begin
  if p_sqlstate = 'PGRST' then
    begin
      return coalesce(p_message::jsonb ->> 'message', p_message);
    exception when others then
      return p_message;
    end;
  end if;
  return p_message;
end
$$;
revoke execute on function private.caught_error_message(text, text) from public;
grant execute on function private.caught_error_message(text, text) to service_role;
-- <<< functions_sql core/errors.sql

-- >>> functions_sql core/lifecycle.sql sha256=b1783170c8d43ebf2ade46245be38fd317ffe58a334d115034c123e35b92dc00
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
  v_delivery text;
  v_first_for_customer boolean;
begin
  -- 1. core: live → completed, delivered or unverified (trust/delivery.sql: both took part, long
  --    enough); the held time is done, the intake is resolved. A delivered session counts for the
  --    mechanic: completed_sessions + 1, and customers_served + 1 for this customer's first one
  --    (the mechanic row is locked first, so two completions for one pair count the customer once).
  perform private.lifecycle_allow(p_session_id);
  update public.sessions s
  set status = 'completed', ended_at = p_now, status_changed_at = p_now,
      duration_minutes = greatest(0, ceil(extract(epoch from (p_now - coalesce(s.started_at, p_now))) / 60))::int,
      mechanic_notes = coalesce(p_notes, s.mechanic_notes), cancel_reason = coalesce(p_reason, s.cancel_reason),
      delivery = private.session_delivery(s.id, s.started_at, p_now)
  where s.id = p_session_id and s.status = 'live'
  returning * into v_session;
  perform private.lifecycle_allow(null);
  if v_session.id is null then
    perform private.raise_error('invalid_transition', 'only a live session can be ended');
  end if;
  v_delivery := v_session.delivery;
  perform private.release_commitment(p_session_id, 'done', p_now);
  if v_delivery = 'delivered' then
    perform 1 from public.mechanics where id = v_session.mechanic_id for update;
    v_first_for_customer := not exists (
      select 1 from public.sessions s
      where s.mechanic_id = v_session.mechanic_id and s.customer_id = v_session.customer_id
        and s.status = 'completed' and s.delivery = 'delivered' and s.id <> v_session.id);
    update public.mechanics
    set completed_sessions = completed_sessions + 1,
        customers_served = customers_served + case when v_first_for_customer then 1 else 0 end
    where id = v_session.mechanic_id;
  end if;
  update public.intakes set status = 'resolved' where id = v_session.intake_id;

  -- 2. rooms: delete the LiveKit room (outbox job)                       rooms/timers.sql
  perform private.rooms_on_session_ended(v_session.id, 'live');
  -- 3. micro: count the actual micro minutes and the shift's counters    micro/caps.sql
  perform private.micro_settle(v_session.id, now());
  -- 4. payments: delivered: split every unsettled payment into payouts   payments/settlement.sql
  --    that wait for the objection window (payments.payout_hold). Unverified: not settled; an
  --    admin decides (admin_resolve_delivery) or the customer is refunded after
  --    trust.unverified_refund_after (trust/delivery.sql).
  if v_delivery = 'delivered' then
    perform private.settle_payment(v_session.id, now());
  end if;
  -- 5. emails: session_ended, and summary_delivered with notes           jobs/emails.sql
  perform private.emails_on_session_completed(v_session.id);
  -- 6. reviews: a delivered session may be reviewed                     reviews/prompts.sql
  if v_delivery = 'delivered' then
    perform private.reviews_on_session_delivered(v_session.id);
  end if;

  perform private.lifecycle_actor_restore(v_prev_actor);
  return jsonb_build_object('session_id', v_session.id, 'status', 'completed', 'ended_at', v_session.ended_at,
                            'duration_minutes', v_session.duration_minutes, 'delivery', v_delivery);
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

-- >>> functions_sql core/rpc.sql sha256=0afd2101e03a88382d75a94895222335664c23bbd705275deaab3bbc2cee17ea
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

-- >>> functions_sql core/sessions.sql sha256=2acb446aaeef473e102cfb4ec05a8226727c6cfadc1d3671e215e188c8b5a9d4
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
  -- input errors first, then the customer's limits (trust/limits.sql) under the customer's lock,
  -- taken before the intake's
  perform private.check_intake_unlocked(p_customer_id, p_intake_id, p_vehicle_id);
  perform private.check_preferred_mechanic(p_customer_id, p_preferred_mechanic_id);
  perform private.check_demand_limits(p_customer_id, p_price_cents, p_preferred_mechanic_id, p_now);
  v_intake := private.check_booking_intake(p_customer_id, p_intake_id, p_vehicle_id);
  select * into v_vehicle from public.vehicles where id = coalesce(p_vehicle_id, v_intake.vehicle_id);

  insert into public.sessions (customer_id, plan_code, session_type, duration_type, planned_minutes, price_cents,
                               currency, specialist, intake_id, vehicle_id, status, status_changed_at)
  values (p_customer_id, v_plan.code, v_plan.session_type, v_plan.duration_type, v_plan.minutes, p_price_cents,
          v_plan.currency, coalesce(p_specialist, false), v_intake.id, v_vehicle.id, 'pending', p_now)
  returning id into v_session_id;

  begin
    insert into public.session_requests (session_id, customer_id, plan_code, session_type, status, status_changed_at,
                                         preferred_mechanic_id, specialist, vehicle_make, vehicle_model, vehicle_year,
                                         concern, created_at)
    values (v_session_id, p_customer_id, v_plan.code, v_plan.session_type, 'pending', p_now, p_preferred_mechanic_id,
            coalesce(p_specialist, false), coalesce(v_vehicle.make, v_intake.vehicle_make),
            coalesce(v_vehicle.model, v_intake.vehicle_model), coalesce(v_vehicle.year, v_intake.vehicle_year),
            v_intake.concern, p_now)
    returning id into v_request_id;
  exception when unique_violation then
    declare
      v_constraint text;
    begin
      get stacked diagnostics v_constraint = constraint_name;
      perform private.raise_if_preferred_limit(v_constraint);
      raise;
    end;
  end;

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
  -- Accept-and-release (trust/contact.sql): not a request it released, not while paused; admins
  -- assigning (p_bypass_window) are not held to it.
  if not p_bypass_window then
    perform private.check_release_limits(v_mechanic, p_request_id, p_now);
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

-- >>> functions_sql jobs/emails.sql sha256=db635bd482915c74b6fcdf0a8cc48a20726515e7cdb0adf29ae02a7cf96d60ab
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
    -- sent only once the assignment has held (trust/contact.sql): an accept-and-release sends nothing
    perform private.enqueue_assignment_notice(new, now());
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

-- >>> functions_sql jobs/nudges.sql sha256=2c190ede7b490ef8f2ff1cd61d1b4a4b5a7c9222e325f13f0cee406020ebb121
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
-- <<< functions_sql jobs/nudges.sql

-- >>> functions_sql jobs/schedules.sql sha256=4e8e976a728a09a61379714146d22924855ca524ca7f4e2f392532bcc31e80d1
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
    when 'delivery' then array['release_held_payouts', 'refund_unverified_sessions']
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
    when 'release_held_payouts' then return private.release_held_payouts(p_now, 200);        -- trust/delivery.sql
    when 'refund_unverified_sessions' then return private.refund_unverified_sessions(p_now, 200);
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

-- >>> functions_sql matching/listing.sql sha256=3fe126794fb7ae8aeaac46108933767ecec0f7430e52b0c0fdf954eeeafeb649
-- Matching: the available-mechanics listing for customers.

-- ---------------------------------------------------------------------------------------------
-- Available mechanics for customers (the first step of a request): online first, then the Bayesian
-- rating (rating_score), then customers served. The average
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
             l.rating_score desc, l.customers_served desc, l.id
    limit p_limit
  )
  select p.id, p.display_name, p.photo_url, p.rating_avg, p.rating_count, p.completed_sessions,
         p.years_experience, p.brand_specializations, p.is_brand_specialist, p.city, p.presence,
         (select round(avg(extract(epoch from (o.responded_at - o.offered_at)) / 60)::numeric, 1)
          from public.session_offers o
          where o.mechanic_id = p.id and o.status = 'accepted' and o.responded_at >= o.offered_at)
  from page p
  order by case p.presence when 'online' then 0 when 'busy' then 1 else 2 end,
           p.rating_score desc, p.customers_served desc, p.id;
end
$$;
revoke execute on function public.available_mechanics(text, boolean, text, text, int) from public, anon;
grant execute on function public.available_mechanics(text, boolean, text, text, int) to authenticated, service_role;
-- <<< functions_sql matching/listing.sql

-- >>> functions_sql matching/ranking.sql sha256=79691d024eea19b79204a38924e802489e5bcd816e4517eec8bb57b87eb0be94
-- Matching: ranking mechanics for a request, with explained scores.

-- ---------------------------------------------------------------------------------------------
-- Ranking (points per reason, read from the matching.weights setting). The rating points come from
-- the Bayesian rating_score (reviews/reputation.sql), so a handful of reviews cannot outrank hundreds;
-- experience for ties is customers_served, so one customer's many sessions count once. Eligible = approved, may accept, not busy,
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
    select m.id, m.rating_score, m.rating_count, m.customers_served, m.years_experience,
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
           case when c.rating_score >= 4.75 then w_rating_5
                when c.rating_score >= 4.5 then w_rating_45
                when c.rating_score >= 4.0 then w_rating_40
                when c.rating_score >= 3.5 then w_rating_35 else 0 end as p_rating
    from cand c
    where not v_req.specialist or c.brand_match
  ),
  top as (
    select s.*, s.p_presence + s.p_keywords + s.p_brand + s.p_experience + s.p_location + s.p_rating as total
    from scored s
    order by total desc, s.rating_score desc, s.customers_served desc, s.years_experience desc, s.id
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
            (6, case when t.rating_count > 0 then 'rating:' else 'rating_prior:' end || to_char(t.rating_score, 'FM0.00'),
             t.p_rating)) as r(ord, reason, points)
          where r.points > 0),
         (row_number() over (order by t.total desc, t.rating_score desc, t.customers_served desc,
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

-- >>> functions_sql micro/clock.sql sha256=4eb4a4e6af7d64879a0bba9e7377c64ee1297da824edb94e3cdfc9393ea7d280
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

-- Each mechanic's availability status, for itself, its workshop's admins and platform admins. The
-- shift columns of public.mechanics are not selectable by authenticated (docs/access.md): a
-- security definer function reads the rows the caller may see, the view shows them.
drop view if exists public.mechanic_availability_status;
create or replace function private.my_availability_rows()
returns table (mechanic_id uuid, display_name text, organization_id uuid, participation_mode public.participation_mode,
               currently_on_shift boolean, last_clock_in timestamptz, last_clock_out timestamptz)
language sql stable security definer set search_path = ''
as $$
  select m.id, m.display_name, m.organization_id, m.participation_mode, m.currently_on_shift, m.last_clock_in,
         m.last_clock_out
  from public.mechanics m
  where m.id = (select auth.uid()) or m.organization_id in (select private.my_admin_org_ids())
     or (select private.is_admin())
$$;
revoke execute on function private.my_availability_rows() from public;
grant execute on function private.my_availability_rows() to authenticated, service_role;

create view public.mechanic_availability_status with (security_invoker = true) as
select m.mechanic_id, m.display_name, m.organization_id, m.participation_mode, m.currently_on_shift,
       m.last_clock_in, m.last_clock_out,
       private.availability_status(m.currently_on_shift, m.participation_mode) as availability_status,
       private.micro_cap(m.mechanic_id) as daily_micro_minutes_cap,
       private.micro_minutes_used(m.mechanic_id, now()) as daily_micro_minutes_used,
       greatest(private.micro_cap(m.mechanic_id) - private.micro_minutes_used(m.mechanic_id, now()), 0)
         as micro_minutes_remaining
from private.my_availability_rows() m;
grant select on public.mechanic_availability_status to authenticated, service_role;
-- <<< functions_sql micro/clock.sql

-- >>> functions_sql payments/checkout.sql sha256=6b2edd65f5b39f3aa6a8673a415c393753c9fd18a44e634ce746636ae401f384
-- Payments: checkout (card or credit) of sessions and extensions.

-- ---------------------------------------------------------------------------------------------
-- Checkout (called by functions/checkout.py as service_role, with the verified customer id)
-- ---------------------------------------------------------------------------------------------
-- Validates a paid booking and either pays it with the customer's credit at once (session and
-- request created, credit debited) or records a pending card booking for a Checkout Session. The
-- price always comes from our catalog (plan price + specialist surcharge, which applies when a
-- brand specialist for the vehicle's make is chosen any way: private.specialist_applies).
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
  v_specialist boolean;
  v_booking public.bookings;
  v_balance int;
  v_ids jsonb;
  v_payment_id uuid;
begin
  if p_customer_id is null or p_plan_code is null or p_intake_id is null then
    perform private.raise_error('invalid_input', 'plan_code and intake_id are required');
  end if;
  perform private.require_waiver(p_customer_id);
  select * into v_plan from public.service_plans where code = p_plan_code and active;
  if not found then
    perform private.raise_error('not_found', format('no active plan %L', left(p_plan_code, 60)));
  end if;
  v_specialist := private.specialist_applies(p_customer_id, p_intake_id, p_vehicle_id, p_preferred_mechanic_id,
                                             p_specialist);
  v_price := private.plan_price_cents(v_plan.code, v_specialist);
  if v_price <= 0 then
    perform private.raise_error('invalid_input', format('plan %s is free: book it with request_session', v_plan.code));
  end if;
  -- input errors first, then the customer's limits before any money moves (checked again when
  -- the request is created); the customer's lock before the intake's
  perform private.check_intake_unlocked(p_customer_id, p_intake_id, p_vehicle_id);
  perform private.check_preferred_mechanic(p_customer_id, p_preferred_mechanic_id);
  perform private.check_demand_limits(p_customer_id, v_price, p_preferred_mechanic_id, p_now);
  v_intake := private.check_booking_intake(p_customer_id, p_intake_id, p_vehicle_id);
  v_vehicle_id := coalesce(p_vehicle_id, v_intake.vehicle_id);

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
      format('the session is %s: it cannot be extended', v_session.status));
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

-- >>> functions_sql payments/integrity.sql sha256=13795330ae99c92e63c7033ece7f02289a627ad3178c354ec67f339917bef043
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

-- A payout of this payment left `waiting` (queued, processing, paid) while its session waits for an
-- admin's decision: unverified, or reported, and not decided (docs/trust.md).
create or replace function private.payment_released_undecided(p_payment_id uuid) returns boolean
language sql stable security definer set search_path = ''
as $$
  select exists (
    select 1 from public.payouts x join public.sessions s on s.id = x.session_id
    where x.payment_id = p_payment_id and x.status in ('queued', 'processing', 'paid')
      and (s.delivery = 'unverified'
           or exists (select 1 from public.session_problem_reports r where r.session_id = s.id))
      and not exists (select 1 from public.session_delivery_decisions d where d.session_id = s.id))
$$;
revoke execute on function private.payment_released_undecided(uuid) from public;
grant execute on function private.payment_released_undecided(uuid) to service_role;

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
         when private.payment_released_undecided(b.payment_id) then 'a payout left while its session waits for a decision'
       end as problem
from private.payment_balances b
where b.refunded_cents + b.refund_pending_cents + b.transferred_cents + b.payout_pending_cents
        + b.platform_fee_cents + b.unsettled_cents <> b.amount_cents
   or b.refunded_cents + b.refund_pending_cents > b.amount_cents
   or (b.settled_at is null and b.payouts > 0)
   or b.over_reversed_payouts > 0
   or private.payment_released_undecided(b.payment_id);

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

-- >>> functions_sql payments/refunds.sql sha256=9540ac9af6a807956c3a22edcd20aea9a30bbddb0900b8c42d80ee3886f0ca8a
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
-- session has not started (nobody should serve a refunded request), unless p_keep_session (a
-- booking re-priced to a lower price keeps its session: trust/pricing.sql).
drop function if exists private.request_refund(uuid, int, text, text, uuid, text, public.refund_status, timestamptz);
create or replace function private.request_refund(
  p_payment_id uuid,
  p_amount_cents int,
  p_origin text,
  p_reason text,
  p_requested_by uuid default null,
  p_stripe_refund_id text default null,
  p_status public.refund_status default null,
  p_now timestamptz default now(),
  p_keep_session boolean default false
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
    if v_amount >= v_refundable and v_payment.session_id is not null and not coalesce(p_keep_session, false) then
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
revoke execute on function private.request_refund(uuid, int, text, text, uuid, text, public.refund_status, timestamptz, boolean)
  from public;
grant execute on function private.request_refund(uuid, int, text, text, uuid, text, public.refund_status, timestamptz, boolean)
  to service_role;

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

-- >>> functions_sql payments/settlement.sql sha256=61eab335038603d3c5ca74c4d5482699ff096571f76b57d4ec1be1fe4f84f015
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
-- extensions), each by the same rule, into one payout per payee. The payouts are created waiting,
-- released at the session's end + payments.payout_hold (the objection window), and then only as
-- private.payout_wait_reason allows (trust/delivery.sql). An unverified session no admin decided
-- is never settled.
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
  v_release timestamptz;
begin
  select * into v_session from public.sessions where id = p_session_id;
  if v_session.delivery = 'unverified'
     and not exists (select 1 from public.session_delivery_decisions d where d.session_id = p_session_id) then
    return;
  end if;
  v_release := coalesce(v_session.ended_at, p_now) + private.setting_interval('payments.payout_hold');
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
      insert into public.payouts (payment_id, session_id, payee_kind, mechanic_id, share_bps, original_amount_cents,
                                  amount_cents, currency, status, waiting_reason, release_at)
      values (v_payment.id, p_session_id, 'mechanic', v_mechanic.id,
              v_rule.mechanic_bps + case when v_mechanic.organization_id is null then v_rule.workshop_bps else 0 end,
              v_mechanic_cents, v_mechanic_cents, v_payment.currency, 'waiting', 'settling', v_release);
    end if;
    if v_workshop_cents > 0 then
      insert into public.payouts (payment_id, session_id, payee_kind, organization_id, share_bps, original_amount_cents,
                                  amount_cents, currency, status, waiting_reason, release_at)
      values (v_payment.id, p_session_id, 'workshop', v_mechanic.organization_id, v_rule.workshop_bps,
              v_workshop_cents, v_workshop_cents, v_payment.currency, 'waiting', 'settling', v_release);
    end if;
    update public.payments
    set settled_at = p_now, settled_base_cents = v_base, split_rule_id = v_rule.id,
        platform_fee_cents = v_base - v_mechanic_cents - v_workshop_cents
    where id = v_payment.id;
  end loop;
  perform private.refresh_payouts(p_session_id, p_now);  -- each payout's reason to wait, or queued
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

-- >>> functions_sql payments/stripe_events.sql sha256=19f646e133262b47e99dbe1c8ff74e408899abaee620c4a62c9b2ea91c099792
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
      if private.caught_error_code(sqlstate, sqlerrm) is null then  -- ours: AD…, or a 429 in PGRST form
        raise;
      end if;
      v_error := private.caught_error_message(sqlstate, sqlerrm);
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
  v_session_id uuid;
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
    -- each waiting payout goes if nothing else holds it (objection window, report, standing:
    -- private.payout_wait_reason); a stripe.transfer job each
    for v_session_id in
      select distinct p.session_id from public.payouts p
      where p.status = 'waiting' and p.payee_id = coalesce(v_new.mechanic_id, v_new.organization_id)
    loop
      perform private.refresh_payouts(v_session_id, p_now);
    end loop;
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

-- >>> functions_sql payments/stripe_worker.sql sha256=975d130e426303bdea81476466bee8043ca0f20ec5192fbf1845a1fb8db84265
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

-- extension_id: set for a paid extension's payout. A payout that must wait
-- (private.payout_wait_reason: a report, the objection window, the mechanic's standing, a payee
-- that can no longer receive transfers) waits again with the reason visible.
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
  -- everything that holds a payout (objection window, report, standing, payout account)
  v_reason := private.payout_wait_reason(v_payout.id, p_now);
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

-- >>> functions_sql reviews/prompts.sql sha256=e3c52363528fd28863d3b82dba2a77c539334fee239d433a2c08860bc8182791
-- Reviews: the review prompt. An hour (reviews.prompt_delay) after a delivered session ended, its
-- customer is asked for a review unless one exists by then; the sender asks
-- private.review_prompt_skip_reason at delivery time and skips the email when it gives a reason.

-- Lifecycle step (called by private.complete_session when a session completes as delivered).
create or replace function private.reviews_on_session_delivered(p_session_id uuid) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_s public.sessions;
begin
  select * into v_s from public.sessions where id = p_session_id;
  if v_s.id is null or v_s.delivery is distinct from 'delivered' then
    return;
  end if;
  perform private.enqueue(
    'email.send',
    format('email:review_prompt:%s:%s', v_s.id, v_s.customer_id),
    jsonb_build_object('template', 'review_prompt', 'user_id', v_s.customer_id, 'session_id', v_s.id,
                       'data', '{}'::jsonb),
    coalesce(v_s.ended_at, now()) + private.setting_interval('reviews.prompt_delay'));
end
$$;
revoke execute on function private.reviews_on_session_delivered(uuid) from public;
grant execute on function private.reviews_on_session_delivered(uuid) to service_role;

-- Why a review prompt should not go out any more (null: send it): a review exists, the session is
-- no longer delivered (an admin's decision), or the time to review it is over.
create or replace function private.review_prompt_skip_reason(p_session_id uuid, p_now timestamptz default now())
returns text
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_s public.sessions;
begin
  select * into v_s from public.sessions where id = p_session_id;
  if v_s.id is null or v_s.status <> 'completed' or v_s.delivery is distinct from 'delivered' then
    return 'the session is not delivered';
  end if;
  if exists (select 1 from public.mechanic_reviews r where r.session_id = p_session_id) then
    return 'a review was written';
  end if;
  if p_now > v_s.ended_at + private.setting_interval('reviews.submit_window') then
    return 'the review window closed';
  end if;
  return null;
end
$$;
revoke execute on function private.review_prompt_skip_reason(uuid, timestamptz) from public;
grant execute on function private.review_prompt_skip_reason(uuid, timestamptz) to service_role;
-- <<< functions_sql reviews/prompts.sql

-- >>> functions_sql reviews/public_view.sql sha256=3163f057402af1cc7203ef9ca04b483045d3e1e48322d23e5b7deb6c30c03414
-- Reviews: what anyone (anon included) may read of a review. Visible reviews only, and of each
-- only the rating, the text, the tags, the mechanic's reply, the dates and the reviewer's first
-- name (a snapshot taken when it was first submitted): no customer, no session, no review id.
create or replace view public.mechanic_reviews_public with (security_invoker = true) as
select c.mechanic_id, c.rating, c.body as text, c.tags, c.reply, c.replied_at, c.created_at,
       c.reviewer_first_name
from private.review_cards c;
grant select on public.mechanic_reviews_public to anon, authenticated, service_role;
comment on view public.mechanic_reviews_public is
  'Visible reviews of mechanics as anyone may see them: rating, text, tags, reply, dates, reviewer''s first name.';
-- <<< functions_sql reviews/public_view.sql

-- >>> functions_sql reviews/reputation.sql sha256=94a660258d69a38250c8f5efcd36415d5d0e8347bec1a6c772634db1fe37054a
-- Reviews: a mechanic's reputation, kept exact from its visible reviews.

-- The Bayesian rating of `p_count` visible reviews summing to `p_sum`: the prior mean weighs as
-- `reviews.prior_weight` reviews, so a few reviews move a newcomer little and many move it far.
create or replace function private.reviews_score(p_sum int, p_count int) returns numeric
language plpgsql stable set search_path = ''
as $$
declare
  v_mean numeric := private.setting_numeric('reviews.prior_mean');
  v_weight numeric := greatest(private.setting_numeric('reviews.prior_weight'), 0);
begin
  if v_weight + p_count = 0 then
    return v_mean;
  end if;
  return round((v_weight * v_mean + p_sum) / (v_weight + p_count), 5);
end
$$;
revoke execute on function private.reviews_score(int, int) from public;
grant execute on function private.reviews_score(int, int) to service_role;

-- rating_avg and rating_score follow rating_sum and rating_count, whoever writes them.
create or replace function private.tg_mechanics__rating() returns trigger
language plpgsql set search_path = ''
as $$
begin
  new.rating_avg := case when new.rating_count > 0 then round(new.rating_sum::numeric / new.rating_count, 2) end;
  new.rating_score := private.reviews_score(new.rating_sum, new.rating_count);
  return new;
end
$$;
revoke execute on function private.tg_mechanics__rating() from public;
drop trigger if exists _030_rating on public.mechanics;
create trigger _030_rating before insert or update of rating_sum, rating_count on public.mechanics
  for each row execute function private.tg_mechanics__rating();

-- Recount a mechanic's visible reviews into its aggregates. The caller holds the mechanic's row
-- lock (private.reviews_lock_mechanic), so two reviews of one mechanic never interleave; the
-- count is a statement of its own, so it sees every review committed before the lock was granted.
create or replace function private.reviews_refresh_mechanic(p_mechanic_id uuid) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_count int;
  v_sum int;
begin
  select count(*)::int, coalesce(sum(r.rating), 0)::int into v_count, v_sum
  from public.mechanic_reviews r
  where r.mechanic_id = p_mechanic_id and r.hidden_at is null;
  update public.mechanics set rating_count = v_count, rating_sum = v_sum
  where id = p_mechanic_id and (rating_count, rating_sum) is distinct from (v_count, v_sum);
end
$$;
revoke execute on function private.reviews_refresh_mechanic(uuid) from public;
grant execute on function private.reviews_refresh_mechanic(uuid) to service_role;

create or replace function private.reviews_lock_mechanic(p_mechanic_id uuid) returns void
language plpgsql security definer set search_path = ''
as $$
begin
  perform 1 from public.mechanics where id = p_mechanic_id for no key update;
end
$$;
revoke execute on function private.reviews_lock_mechanic(uuid) from public;
grant execute on function private.reviews_lock_mechanic(uuid) to service_role;

-- A change of the prior recomputes every mechanic's score, in the transaction of the change (a
-- prior mean outside 1–5 fails the score's check, and the change with it).
create or replace function private.tg_settings__reviews_prior() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  update public.mechanics m set rating_score = private.reviews_score(m.rating_sum, m.rating_count)
  where m.rating_score is distinct from private.reviews_score(m.rating_sum, m.rating_count);
  return null;
end
$$;
revoke execute on function private.tg_settings__reviews_prior() from public;
drop trigger if exists _500_reviews_prior on private.settings;
create trigger _500_reviews_prior after insert or update of value on private.settings
  for each row when (new.key in ('reviews.prior_mean', 'reviews.prior_weight'))
  execute function private.tg_settings__reviews_prior();
-- <<< functions_sql reviews/reputation.sql

-- >>> functions_sql reviews/reviews.sql sha256=acb29b4bdf4a2cccae60ad261d0aebd3b2c0ec8dd85824ac9060ecc5d46cad36
-- Reviews: submit (or edit), the mechanic's reply, an admin's hide; the public projection.
-- Locks, in this order: the session (submit), the mechanic (every change that can move its
-- aggregates), the review.

-- ---------------------------------------------------------------------------------------------
-- The public projection (private.review_cards): a visible review's public columns, or nothing.
-- ---------------------------------------------------------------------------------------------
create or replace function private.reviews_publish(p_review_id uuid) returns void
language plpgsql security definer set search_path = ''
as $$
begin
  delete from private.review_cards c
  where c.review_id = p_review_id
    and not exists (select 1 from public.mechanic_reviews r where r.id = p_review_id and r.hidden_at is null);
  insert into private.review_cards (review_id, mechanic_id, rating, body, tags, reply, replied_at,
                                    reviewer_first_name, created_at)
  select r.id, r.mechanic_id, r.rating, r.body, r.tags, r.reply, r.replied_at, r.reviewer_first_name, r.created_at
  from public.mechanic_reviews r
  where r.id = p_review_id and r.hidden_at is null
  on conflict (review_id) do update
  set rating = excluded.rating, body = excluded.body, tags = excluded.tags, reply = excluded.reply,
      replied_at = excluded.replied_at, reviewer_first_name = excluded.reviewer_first_name;
end
$$;
revoke execute on function private.reviews_publish(uuid) from public;
grant execute on function private.reviews_publish(uuid) to service_role;

-- Free text of a review or a reply: null or blank → null (or invalid_input when required);
-- longer than 2,000 characters → invalid_input.
create or replace function private.reviews_text(p_name text, p_value text, p_required boolean) returns text
language plpgsql stable set search_path = ''
as $$
begin
  if p_value is null or btrim(p_value) = '' then
    if p_required then
      perform private.raise_error('invalid_input', format('%s is required', p_name));
    end if;
    return null;
  end if;
  if char_length(btrim(p_value)) > 2000 then
    perform private.raise_error('invalid_input', format('%s is longer than 2000 characters', p_name));
  end if;
  return btrim(p_value);
end
$$;
revoke execute on function private.reviews_text(text, text, boolean) from public;
grant execute on function private.reviews_text(text, text, boolean) to service_role;

-- Tags: each one a row of public.review_tags, none twice; null → none.
create or replace function private.reviews_tags(p_tags text[]) returns text[]
language plpgsql stable set search_path = ''
as $$
declare
  v_unknown text;
begin
  if p_tags is null then
    return '{}';
  end if;
  if array_ndims(p_tags) > 1 then
    perform private.raise_error('invalid_input', 'p_tags must be a list of tags');
  end if;
  if array_position(p_tags, null) is not null then
    perform private.raise_error('invalid_input', 'p_tags cannot contain null');
  end if;
  if cardinality(p_tags) > (select count(*) from public.review_tags) then
    perform private.raise_error('invalid_input', 'p_tags has more tags than the vocabulary');
  end if;
  select t into v_unknown from unnest(p_tags) t
  where not exists (select 1 from public.review_tags rt where rt.tag = t) limit 1;
  if v_unknown is not null then
    perform private.raise_error('invalid_input', format('unknown tag %L', left(v_unknown, 60)));
  end if;
  if cardinality(p_tags) <> (select count(distinct t) from unnest(p_tags) t) then
    perform private.raise_error('invalid_input', 'p_tags lists a tag twice');
  end if;
  return p_tags;
end
$$;
revoke execute on function private.reviews_tags(text[]) from public;
grant execute on function private.reviews_tags(text[]) to service_role;

-- ---------------------------------------------------------------------------------------------
-- submit_review: the customer of a delivered session reviews it, within reviews.submit_window
-- of its end; submitting again within reviews.edit_window of the first submission edits it.
-- ---------------------------------------------------------------------------------------------
create or replace function public.submit_review(
  p_session_id uuid, p_rating int, p_text text default null, p_tags text[] default null
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_now timestamptz := now();
  v_body text;
  v_tags text[];
  v_session public.sessions;
  v_review public.mechanic_reviews;
  v_first_name text;
  v_edited boolean := false;
begin
  perform private.require_arg('p_session_id', p_session_id);
  if p_rating is null or p_rating not between 1 and 5 then
    perform private.raise_error('invalid_input', 'p_rating must be a whole number from 1 to 5');
  end if;
  v_body := private.reviews_text('p_text', p_text, false);
  v_tags := private.reviews_tags(p_tags);

  -- one submit per session at a time: a second one waits, then edits what the first wrote
  select * into v_session from public.sessions where id = p_session_id for no key update;
  if not found or (v_session.customer_id <> v_uid and v_session.mechanic_id is distinct from v_uid
                   and not private.is_admin()) then
    perform private.raise_error('not_found', 'no such session');
  end if;
  if v_session.customer_id <> v_uid then
    perform private.raise_error('not_allowed', 'only the session''s customer reviews it');
  end if;
  if v_session.status <> 'completed' or v_session.delivery is distinct from 'delivered' then
    perform private.raise_error('session_not_delivered', 'only a session completed as delivered can be reviewed');
  end if;

  perform private.reviews_lock_mechanic(v_session.mechanic_id);
  select * into v_review from public.mechanic_reviews where session_id = p_session_id for update;
  if v_review.id is null then
    if v_now > v_session.ended_at + private.setting_interval('reviews.submit_window') then
      perform private.raise_error('review_window_closed',
        format('a session can be reviewed for %s after it ended', private.setting_text('reviews.submit_window')));
    end if;
    select nullif(left(split_part(btrim(p.full_name), ' ', 1), 40), '') into v_first_name
    from public.profiles p where p.id = v_uid;
    insert into public.mechanic_reviews (session_id, customer_id, mechanic_id, rating, body, tags,
                                         reviewer_first_name, created_at, updated_at)
    values (p_session_id, v_uid, v_session.mechanic_id, p_rating, v_body, v_tags, v_first_name, v_now, v_now)
    returning * into v_review;
  else
    if v_review.hidden_at is not null then
      perform private.raise_error('review_hidden');
    end if;
    if v_now > v_review.created_at + private.setting_interval('reviews.edit_window') then
      perform private.raise_error('review_edit_window_closed',
        format('a review can be edited for %s after it was first submitted',
               private.setting_text('reviews.edit_window')));
    end if;
    update public.mechanic_reviews
    set rating = p_rating, body = v_body, tags = v_tags, updated_at = v_now, edit_count = edit_count + 1
    where id = v_review.id
    returning * into v_review;
    v_edited := true;
  end if;
  perform private.reviews_publish(v_review.id);
  perform private.reviews_refresh_mechanic(v_session.mechanic_id);

  return jsonb_build_object(
    'review_id', v_review.id, 'session_id', v_review.session_id, 'mechanic_id', v_review.mechanic_id,
    'rating', v_review.rating, 'text', v_review.body, 'tags', to_jsonb(v_review.tags), 'edited', v_edited,
    'created_at', v_review.created_at, 'updated_at', v_review.updated_at,
    'editable_until', v_review.created_at + private.setting_interval('reviews.edit_window'));
end
$$;
revoke execute on function public.submit_review(uuid, int, text, text[]) from public, anon;
grant execute on function public.submit_review(uuid, int, text, text[]) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- reply_to_review: the reviewed mechanic answers once.
-- ---------------------------------------------------------------------------------------------
create or replace function public.reply_to_review(p_review_id uuid, p_text text) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_text text;
  v_review public.mechanic_reviews;
begin
  perform private.require_arg('p_review_id', p_review_id);
  v_text := private.reviews_text('p_text', p_text, true);
  select * into v_review from public.mechanic_reviews where id = p_review_id for update;
  if not found or (v_review.mechanic_id <> v_uid and v_review.customer_id <> v_uid and not private.is_admin()) then
    perform private.raise_error('not_found', 'no such review');
  end if;
  if v_review.mechanic_id <> v_uid then
    perform private.raise_error('not_allowed', 'only the reviewed mechanic replies');
  end if;
  if v_review.hidden_at is not null then
    perform private.raise_error('review_hidden');
  end if;
  if v_review.reply is not null then
    perform private.raise_error('review_already_replied');
  end if;
  update public.mechanic_reviews set reply = v_text, replied_at = now() where id = p_review_id
  returning * into v_review;
  perform private.reviews_publish(v_review.id);
  return jsonb_build_object('review_id', v_review.id, 'reply', v_review.reply, 'replied_at', v_review.replied_at);
end
$$;
revoke execute on function public.reply_to_review(uuid, text) from public, anon;
grant execute on function public.reply_to_review(uuid, text) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- admin_hide_review: kept, with the reason; out of the aggregates and the public view.
-- ---------------------------------------------------------------------------------------------
create or replace function public.admin_hide_review(p_review_id uuid, p_reason text) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_admin uuid := private.require_admin();
  v_reason text;
  v_mechanic uuid;
  v_review public.mechanic_reviews;
begin
  perform private.require_arg('p_review_id', p_review_id);
  v_reason := private.reviews_text('p_reason', p_reason, true);
  select mechanic_id into v_mechanic from public.mechanic_reviews where id = p_review_id;
  if v_mechanic is null then
    perform private.raise_error('not_found', 'no such review');
  end if;
  perform private.reviews_lock_mechanic(v_mechanic);
  select * into v_review from public.mechanic_reviews where id = p_review_id for update;
  if v_review.hidden_at is not null then
    perform private.raise_error('review_already_hidden');
  end if;
  update public.mechanic_reviews set hidden_at = now(), hidden_reason = v_reason, hidden_by = v_admin
  where id = p_review_id
  returning * into v_review;
  perform private.reviews_publish(v_review.id);
  perform private.reviews_refresh_mechanic(v_mechanic);
  return jsonb_build_object('review_id', v_review.id, 'hidden_at', v_review.hidden_at,
                            'hidden_reason', v_review.hidden_reason);
end
$$;
revoke execute on function public.admin_hide_review(uuid, text) from public, anon;
grant execute on function public.admin_hide_review(uuid, text) to authenticated, service_role;
-- <<< functions_sql reviews/reviews.sql

-- >>> functions_sql rooms/extensions.sql sha256=ecdb7236fec9d57e29a438797584ac830db6c0cf66795c8b03df65da3635e495
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
    perform private.raise_error('extension_not_allowed', format('the session is %s: it cannot be extended', v_session.status));
  end if;
  perform private.require_good_standing(v_session.mechanic_id);  -- trust/standing.sql
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

-- >>> functions_sql rooms/livekit_events.sql sha256=cc2b9fea2937b577fdb85e91e226156f3d7dd339706f5a61c3892c359d9a4e4a
-- Rooms: LiveKit webhook events driving the session lifecycle, and reconcile repairs.

-- ---------------------------------------------------------------------------------------------
-- LiveKit webhook events → session lifecycle. One call per event, in the webhook's transaction.
-- The session row is locked first, so concurrent deliveries for one room apply one at a time:
-- "both joined → live" happens exactly once whatever the order and the duplicates, and only for a
-- mechanic in good standing (trust/standing.sql).
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
                and sp.user_id in (v_session.customer_id, v_session.mechanic_id)) = 2
         and not exists (select 1 from public.mechanics m where m.id = v_session.mechanic_id and m.status = 'approved') then
        v_outcome := 'recorded: mechanic not in good standing';
      elsif p_event = 'participant_joined' and v_session.status = 'waiting' and v_session.room_finished_at is null
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
     and v_session.customer_id::text = any (p_present) and v_session.mechanic_id::text = any (p_present)
     and exists (select 1 from public.mechanics m where m.id = v_session.mechanic_id and m.status = 'approved') then
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

-- >>> functions_sql scheduling/booking_rpc.sql sha256=fd78b54227728a48cd2ea95a1fb64e3d5389e40fdd95ea5070ff511d77f5e4f4
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
  join public.mechanics m on m.id = f.mechanic_id
  order by m.rating_score desc, m.customers_served desc, m.id;  -- as free_at chose them (a join keeps no order)
end
$$;
revoke execute on function public.mechanics_free_at(timestamptz, text, text, text, int) from public, anon;
grant execute on function public.mechanics_free_at(timestamptz, text, text, text, int) to authenticated, service_role;

create or replace function public.hold_slot(p_mechanic_id uuid, p_start timestamptz, p_plan_code text) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
begin
  perform private.require_waiver(v_uid);
  return private.hold_slot(v_uid, p_mechanic_id, p_start, p_plan_code, now());
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
declare
  v_uid uuid := private.require_user();
begin
  perform private.require_waiver(v_uid);
  return private.book_slot(v_uid, p_hold_id, p_intake_id, p_vehicle_id, now());
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

-- >>> functions_sql scheduling/changes.sql sha256=aefc0baa5011c8d6243dc426251306b273c06e0e3b8cfb8fc629d5c258ae32c9
-- Scheduling: reschedule and cancel.

-- ---------------------------------------------------------------------------------------------
-- Reschedule and cancel
-- ---------------------------------------------------------------------------------------------
-- A reschedule is priced exactly as a new booking of the new slot would be: the plan's price ×
-- the slot's multiplier (private.take_slot, as hold_slot), plus the specialist surcharge when the
-- mechanic is a brand specialist for the vehicle's make (private.specialist_applies). Dearer than
-- the session's price: price_changed, and nothing changes (the whole call rolls back). Equal or
-- cheaper: the session takes the new price and the difference goes back to where it was paid
-- from (private.refund_price_difference). So a booking's price can only go down by moving it, and
-- a free booking moves only to a free slot.
create or replace function private.reschedule_session(
  p_user_id uuid, p_session_id uuid, p_new_start timestamptz, p_now timestamptz default now()
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_session public.sessions;
  v_old public.mechanic_commitments;
  v_new public.mechanic_commitments;
  v_is_admin boolean := exists (select 1 from private.admins a where a.user_id = p_user_id);
  v_specialist boolean;
  v_price int;
  v_refunded int := 0;
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
    perform private.raise_error('invalid_transition', format('the session is %s: it cannot be rescheduled', v_session.status));
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
  -- the commitment records the slot's own price (plan × multiplier), as a hold does
  v_new := private.take_slot(v_session.mechanic_id, p_new_start, v_session.plan_code, v_session.customer_id,
                             'scheduled', 'confirmed', v_session.id, null, p_now, null);
  v_specialist := private.specialist_applies(v_session.customer_id, v_session.intake_id, v_session.vehicle_id,
                                             v_session.mechanic_id, false);
  v_price := v_new.price_cents + private.specialist_surcharge_cents(v_specialist);
  if v_price > v_session.price_cents then
    perform private.raise_error('price_changed',
      format('the new time costs %s cents, the booking %s: book the new time and cancel this booking instead',
             v_price, v_session.price_cents));
  end if;
  if v_price < v_session.price_cents then
    v_refunded := private.refund_price_difference(
      v_session.id, v_session.price_cents - v_price,
      format('rescheduled to a cheaper time (%s cents instead of %s)', v_price, v_session.price_cents),
      p_user_id, p_now);
  end if;
  update public.sessions
  set scheduled_for = p_new_start, calendar_sequence = calendar_sequence + 1, price_cents = v_price,
      specialist = v_specialist
  where id = v_session.id returning * into v_session;
  perform private.drop_reminders(v_session.id);
  perform private.schedule_reminders(v_session.id, p_now);
  perform private.enqueue_email('booking_rescheduled', v_session.customer_id, v_session.id, '{}'::jsonb,
                                ':s' || v_session.calendar_sequence);
  perform private.enqueue_email('booking_rescheduled', v_session.mechanic_id, v_session.id, '{}'::jsonb,
                                ':s' || v_session.calendar_sequence);
  return jsonb_build_object('session_id', v_session.id, 'scheduled_for', v_session.scheduled_for,
                            'calendar_sequence', v_session.calendar_sequence,
                            'previous_start', lower(v_old.during),
                            'price_cents', v_session.price_cents, 'refunded_cents', v_refunded,
                            'specialist', v_session.specialist);
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
    perform private.raise_error('invalid_transition', format('the session is %s: it cannot be cancelled here', v_session.status));
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

-- >>> functions_sql scheduling/holds.sql sha256=80e66dfab8e5e885da721fd24e96a859f0414b15c115b629c3713175da08cd35
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
  perform private.check_booking_limits(p_customer_id, v_price, null, p_now);  -- trust/limits.sql
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
  -- this hold becomes the booking: it is not one more (trust/limits.sql); input errors first
  perform private.check_intake_unlocked(p_customer_id, p_intake_id, p_vehicle_id);
  perform private.check_booking_limits(p_customer_id, p_price_cents, v_hold.id, p_now);
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
  v_price int;
  v_specialist boolean;
begin
  if p_hold_id is null or p_intake_id is null then
    perform private.raise_error('invalid_input', 'p_hold_id and p_intake_id are required');
  end if;
  select * into v_hold from public.mechanic_commitments where id = p_hold_id and kind = 'hold';
  if not found or v_hold.customer_id is distinct from p_customer_id then
    perform private.raise_error('not_found', 'no such hold');
  end if;
  select h.price_cents, h.specialist into v_price, v_specialist
  from private.hold_booking_price(v_hold, p_customer_id, p_intake_id, p_vehicle_id) h;
  if v_price = 0 then
    return private.confirm_hold(p_hold_id, p_customer_id, p_intake_id, p_vehicle_id, 0, false, p_now);
  end if;
  -- lock order: mechanic (inside confirm_hold, first), the customer's limits, then the credit
  perform private.lock_mechanic(v_hold.mechanic_id);
  perform private.lock_customer_limits(p_customer_id);
  perform private.lock_credit(p_customer_id);
  if private.credit_balance(p_customer_id) < v_price then
    perform private.raise_error('payment_required',
      format('this slot costs %s cents%s: pay through create_checkout with hold_id', v_price,
             case when v_specialist then ' with the brand specialist surcharge' else '' end));
  end if;
  select * into v_plan from public.service_plans where code = v_hold.plan_code;
  v_result := private.confirm_hold(p_hold_id, p_customer_id, p_intake_id, p_vehicle_id, v_price, false, p_now);
  update public.sessions set specialist = v_specialist where id = (v_result ->> 'session_id')::uuid;
  insert into public.bookings (customer_id, plan_code, intake_id, vehicle_id, preferred_mechanic_id, specialist,
                               price_cents, currency, method, status, status_changed_at, hold_id, session_id)
  values (p_customer_id, v_plan.code, p_intake_id,
          (select s.vehicle_id from public.sessions s where s.id = (v_result ->> 'session_id')::uuid),
          v_hold.mechanic_id, v_specialist, v_price, v_plan.currency, 'credit', 'paid', p_now, p_hold_id,
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
  v_price int;
  v_specialist boolean;
begin
  if p_customer_id is null or p_hold_id is null or p_intake_id is null then
    perform private.raise_error('invalid_input', 'hold_id and intake_id are required');
  end if;
  perform private.require_waiver(p_customer_id);
  select * into v_hold from public.mechanic_commitments where id = p_hold_id and kind = 'hold';
  if not found or v_hold.customer_id is distinct from p_customer_id then
    perform private.raise_error('not_found', 'no such hold');
  end if;
  if v_hold.status <> 'held' or v_hold.expires_at <= p_now then
    perform private.raise_error('hold_expired', 'the hold expired: hold the slot again');
  end if;
  select * into v_plan from public.service_plans where code = v_hold.plan_code;
  select * into v_intake from public.intakes where id = p_intake_id and customer_id = p_customer_id;
  if not found then
    perform private.raise_error('not_found', 'no such intake');
  end if;
  select h.price_cents, h.specialist into v_price, v_specialist
  from private.hold_booking_price(v_hold, p_customer_id, p_intake_id, p_vehicle_id) h;
  if v_price = 0 then
    perform private.raise_error('invalid_input', 'this slot is free: book it with book_slot');
  end if;
  if v_intake.status <> 'new' then
    perform private.raise_error('conflict', format('the intake is %s, not new', v_intake.status));
  end if;
  if private.credit_balance(p_customer_id) >= v_price then
    v_result := private.book_slot(p_customer_id, p_hold_id, p_intake_id, p_vehicle_id, p_now);
    return jsonb_build_object('mode', 'credit', 'booking_id', v_result ->> 'booking_id',
                              'session_id', v_result ->> 'session_id', 'request_id', null,
                              'price_cents', v_price, 'currency', v_plan.currency,
                              'credit_balance_cents', private.credit_balance(p_customer_id));
  end if;
  -- the same open checkout again (same hold, intake, vehicle and so the same price)
  select * into v_booking from public.bookings b
  where b.hold_id = p_hold_id and b.status = 'pending' and b.method = 'card' and b.checkout_url is not null
    and b.intake_id = v_intake.id and b.vehicle_id is not distinct from coalesce(p_vehicle_id, v_intake.vehicle_id)
    and b.price_cents = v_price and b.specialist = v_specialist
    and b.expires_at > p_now + interval '5 minutes'
  order by b.created_at desc limit 1;
  if found then
    return jsonb_build_object('mode', 'stripe', 'reused', true, 'booking_id', v_booking.id, 'url', v_booking.checkout_url,
                              'price_cents', v_booking.price_cents, 'currency', v_booking.currency);
  end if;
  -- Stripe's shortest Checkout lifetime is 30 minutes: a payment after the hold's end takes the
  -- re-hold-or-refund path (private.confirm_hold with p_rehold).
  insert into public.bookings (customer_id, plan_code, intake_id, vehicle_id, preferred_mechanic_id, specialist,
                               price_cents, currency, method, status, status_changed_at, expires_at, hold_id)
  values (p_customer_id, v_plan.code, v_intake.id, coalesce(p_vehicle_id, v_intake.vehicle_id), v_hold.mechanic_id,
          v_specialist, v_price, v_plan.currency, 'card', 'pending', p_now,
          greatest(v_hold.expires_at, p_now + interval '30 minutes') + interval '1 minute', p_hold_id)
  returning * into v_booking;
  return jsonb_build_object('mode', 'stripe', 'reused', false, 'booking_id', v_booking.id,
                            'price_cents', v_booking.price_cents, 'currency', v_plan.currency,
                            'product_name', v_plan.name || case when v_specialist then ' + brand specialist' else '' end
                              || ' at ' || to_char(lower(v_hold.during) at time zone 'UTC', 'YYYY-MM-DD HH24:MI "UTC"'),
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
  v_result jsonb;
begin
  select * into v_booking from public.bookings where id = p_booking_id;
  v_result := private.confirm_hold(v_booking.hold_id, v_booking.customer_id, v_booking.intake_id, v_booking.vehicle_id,
                                   p_amount_cents, true, p_now);
  -- the session records what was charged: the booking's specialist flag (priced at checkout)
  update public.sessions set specialist = v_booking.specialist where id = (v_result ->> 'session_id')::uuid;
  return v_result;
end
$$;
revoke execute on function private.book_paid_hold(uuid, int, timestamptz) from public;
grant execute on function private.book_paid_hold(uuid, int, timestamptz) to service_role;
-- <<< functions_sql scheduling/holds.sql

-- >>> functions_sql scheduling/open_time.sql sha256=4a300a2863905f3ba4bac94f8c68b972ce223b96c2d83e3c9b53abc4b0d02805
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
-- the buffer either side) and no full day. Ordered as the directory orders (the Bayesian rating, then
-- customers served).
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
           m.timezone, m.rating_score, m.customers_served
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
  order by ok.rating_score desc, ok.customers_served desc, ok.mechanic_id
  limit p_limit;
end
$$;
revoke execute on function private.free_at(timestamptz, text, text, text, int, timestamptz) from public;
grant execute on function private.free_at(timestamptz, text, text, text, int, timestamptz) to service_role;
-- <<< functions_sql scheduling/open_time.sql

-- >>> functions_sql trust/contact.sql sha256=2b275dd2b4e2e3d085c93fe61a636a4b0d8e32dd2f11971a93c8b2c85956c5e0
-- Trust: accept-and-release, the delayed assignment notice, and the RPCs that reach the columns of
-- public.mechanics that authenticated may not select (docs/trust.md, "Contact details, columns and
-- the waiver"). The contact window's policy helpers are in the migration (policies need them).

-- ---------------------------------------------------------------------------------------------
-- Accept-and-release
-- ---------------------------------------------------------------------------------------------
-- Records that mechanic `p_mechanic_id` released request `p_request_id` (called by cancel_request
-- with the mechanic's row not yet locked); reaching trust.max_releases_per_hour within the last
-- hour pauses its accepting for trust.release_cooldown.
create or replace function private.record_release(p_request_id uuid, p_mechanic_id uuid, p_now timestamptz)
returns void
language plpgsql security definer set search_path = ''
as $$
begin
  insert into private.request_releases (request_id, mechanic_id, released_at)
  values (p_request_id, p_mechanic_id, p_now);
  if (select count(*) from private.request_releases r
      where r.mechanic_id = p_mechanic_id and r.released_at > p_now - interval '1 hour')
     >= private.setting_int('trust.max_releases_per_hour') then
    update public.mechanics
    set releases_blocked_until = p_now + private.setting_interval('trust.release_cooldown')
    where id = p_mechanic_id;
  end if;
end
$$;
revoke execute on function private.record_release(uuid, uuid, timestamptz) from public;
grant execute on function private.record_release(uuid, uuid, timestamptz) to service_role;

-- The accept path's check (private.assign_request, after it locked the mechanic's row): one
-- indexed lookup for "released it before", and the row's releases_blocked_until.
create or replace function private.check_release_limits(
  p_mechanic public.mechanics, p_request_id uuid, p_now timestamptz
) returns void
language plpgsql stable security definer set search_path = ''
as $$
begin
  if p_mechanic.releases_blocked_until > p_now then
    perform private.raise_error('too_many_releases',
      format('you released %s accepted requests within an hour: accepting resumes at %s',
             private.setting_int('trust.max_releases_per_hour'), p_mechanic.releases_blocked_until));
  end if;
  if exists (select 1 from private.request_releases r
             where r.request_id = p_request_id and r.mechanic_id = p_mechanic.id) then
    perform private.raise_error('request_released', 'you released this request: it is for other mechanics now');
  end if;
end
$$;
revoke execute on function private.check_release_limits(public.mechanics, uuid, timestamptz) from public;
grant execute on function private.check_release_limits(public.mechanics, uuid, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- The assignment notice: mechanic_assigned is enqueued notifications.assignment_notice_delay
-- after the accept, and sent only if that mechanic still holds the session then.
-- ---------------------------------------------------------------------------------------------
create or replace function private.enqueue_assignment_notice(p_session public.sessions, p_now timestamptz)
returns bigint
language plpgsql security definer set search_path = ''
as $$
begin
  return private.enqueue(
    'email.send',
    format('email:mechanic_assigned:%s:%s:%s', p_session.id, p_session.customer_id, p_session.mechanic_id),
    jsonb_build_object('template', 'mechanic_assigned', 'user_id', p_session.customer_id, 'session_id', p_session.id,
                       'data', jsonb_build_object('mechanic_id', p_session.mechanic_id)),
    p_now + private.setting_interval('notifications.assignment_notice_delay'));
end
$$;
revoke execute on function private.enqueue_assignment_notice(public.sessions, timestamptz) from public;
grant execute on function private.enqueue_assignment_notice(public.sessions, timestamptz) to service_role;

-- Whether an email job is still due when the worker sends it (shared/email.py skips it otherwise):
-- a mechanic_assigned notice only while that mechanic still holds the session.
create or replace function private.email_still_due(p_template text, p_session_id uuid, p_data jsonb) returns boolean
language sql stable security definer set search_path = ''
as $$
  select case when p_template = 'mechanic_assigned' then
    exists (select 1 from public.sessions s
            where s.id = p_session_id and s.mechanic_id::text = p_data ->> 'mechanic_id'
              and s.status in ('waiting', 'live', 'completed'))
  else true end
$$;
revoke execute on function private.email_still_due(text, uuid, jsonb) from public;
grant execute on function private.email_still_due(text, uuid, jsonb) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Columns of public.mechanics beyond the directory
-- ---------------------------------------------------------------------------------------------
-- The caller's own mechanic row, every column.
create or replace function public.get_my_mechanic() returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_row jsonb;
begin
  select to_jsonb(m) into v_row from public.mechanics m where m.id = v_uid;
  if v_row is null then
    perform private.raise_error('not_found', 'you have no mechanic profile');
  end if;
  return v_row;
end
$$;
revoke execute on function public.get_my_mechanic() from public, anon;
grant execute on function public.get_my_mechanic() to authenticated, service_role;

-- The members of a workshop the caller owns or administers (platform admins: any): role, name and
-- phone from the profile, and the full mechanic row of those who are mechanics.
create or replace function public.get_workshop_members(p_organization_id uuid) returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
begin
  perform private.require_arg('p_organization_id', p_organization_id);
  if not private.is_admin() and not exists (
       select 1 from public.organization_members om
       where om.organization_id = p_organization_id and om.user_id = v_uid and om.role in ('owner', 'admin')) then
    -- the same answer whether or not the workshop exists
    perform private.raise_error('not_found', 'no such workshop among those you administer');
  end if;
  return coalesce((
    select jsonb_agg(jsonb_build_object(
             'user_id', om.user_id, 'role', om.role, 'joined_at', om.created_at,
             'full_name', p.full_name, 'phone', p.phone, 'mechanic', to_jsonb(m))
           order by om.role, p.full_name, om.user_id)
    from public.organization_members om
    left join public.profiles p on p.id = om.user_id
    left join public.mechanics m on m.id = om.user_id
    where om.organization_id = p_organization_id), '[]'::jsonb);
end
$$;
revoke execute on function public.get_workshop_members(uuid) from public, anon;
grant execute on function public.get_workshop_members(uuid) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- The contact window of one session
-- ---------------------------------------------------------------------------------------------
-- Whether session `s` is, at `p_now`, inside its mechanic's contact window (the rule of
-- private.my_contact_sessions, the policies' helper in the migration: keep them the same).
create or replace function private.contact_window_open(s public.sessions, p_now timestamptz) returns boolean
language plpgsql stable security definer set search_path = ''
as $$
begin
  if s.mechanic_id is null then
    return false;
  end if;
  if s.status = 'live' then
    return true;
  end if;
  return s.scheduled_for is not null
     and s.status in ('scheduled', 'waiting', 'completed')
     and p_now >= s.scheduled_for - private.setting_interval('contact.before_start')
     and p_now <= coalesce(s.ended_at,
                           s.scheduled_for + make_interval(mins => s.planned_minutes + s.extension_minutes))
                  + private.setting_interval('contact.after_end');
end
$$;
revoke execute on function private.contact_window_open(public.sessions, timestamptz) from public;
grant execute on function private.contact_window_open(public.sessions, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- What a session's mechanic needs to prepare, at any time (a booked session has no request row):
-- plan, time, concern and vehicle, never the customer's contact details or vehicle identifiers.
-- ---------------------------------------------------------------------------------------------
create or replace function public.get_session_brief(p_session_id uuid) returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_brief jsonb;
begin
  perform private.require_arg('p_session_id', p_session_id);
  select jsonb_build_object(
           'session_id', s.id, 'status', s.status, 'plan_code', s.plan_code, 'session_type', s.session_type,
           'planned_minutes', s.planned_minutes, 'scheduled_for', s.scheduled_for,
           'concern', i.concern, 'details', i.details,
           'vehicle_make', coalesce(v.make, i.vehicle_make), 'vehicle_model', coalesce(v.model, i.vehicle_model),
           'vehicle_year', coalesce(v.year, i.vehicle_year), 'odometer', coalesce(i.odometer, v.mileage),
           'contact_open', private.contact_window_open(s, now()))
  into v_brief
  from public.sessions s
  left join public.intakes i on i.id = s.intake_id
  left join public.vehicles v on v.id = s.vehicle_id
  where s.id = p_session_id
    and (s.mechanic_id = v_uid or s.customer_id = v_uid or private.is_admin());
  if v_brief is null then
    perform private.raise_error('not_found', 'no such session');
  end if;
  return v_brief;
end
$$;
revoke execute on function public.get_session_brief(uuid) from public, anon;
grant execute on function public.get_session_brief(uuid) to authenticated, service_role;
-- <<< functions_sql trust/contact.sql

-- >>> functions_sql trust/delivery.sql sha256=a44ca8da36bdde676c007841e25980139b23945eab7fe6f5580feec057c61d03
-- Trust: what counts as delivered service, the objection window before payouts leave, the
-- customer's report and the admin's decision (docs/trust.md, "Delivery, the objection window and
-- standing").
--
-- Locking order, as everywhere: request → session → payment → refunds / payouts → mechanic.

-- ---------------------------------------------------------------------------------------------
-- Evidence: 'delivered' when both took part and the session lasted trust.min_delivered_minutes.
-- Chat: each side sent at least one message while the session was live. Video and diagnostic:
-- both joined the LiveKit room (session_participants.joined_at, written by LiveKit events).
-- ---------------------------------------------------------------------------------------------
create or replace function private.session_delivery(p_session_id uuid, p_started timestamptz, p_ended timestamptz)
returns text
language sql stable security definer set search_path = ''
as $$
  select case
    when s.mechanic_id is null or p_started is null or p_ended is null then 'unverified'
    when p_ended - p_started < make_interval(mins => private.setting_int('trust.min_delivered_minutes')) then 'unverified'
    when s.session_type = 'chat' then
      case when exists (select 1 from public.chat_messages m where m.session_id = s.id and m.sender_id = s.customer_id
                          and m.created_at between p_started and p_ended)
            and exists (select 1 from public.chat_messages m where m.session_id = s.id and m.sender_id = s.mechanic_id
                          and m.created_at between p_started and p_ended)
           then 'delivered' else 'unverified' end
    when (select count(*) from public.session_participants sp
          where sp.session_id = s.id and sp.joined_at is not null
            and sp.user_id in (s.customer_id, s.mechanic_id)) = 2 then 'delivered'
    else 'unverified'
  end
  from public.sessions s where s.id = p_session_id
$$;
revoke execute on function private.session_delivery(uuid, timestamptz, timestamptz) from public;
grant execute on function private.session_delivery(uuid, timestamptz, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Why a payout must wait (null: it may go). The one rule every path that queues a payout asks:
-- settlement, the release job, an admin's decision or release, a payout account's activation
-- (payments/stripe_events.sql) and the transfer worker (payments/stripe_worker.sql).
--   1. a problem reported by the customer and not yet decided by an admin
--   2. an unverified session no admin decided (normally never settled; defensive)
--   3. the objection window (payouts.release_at), unless an admin decided the session
--   4. the session's mechanic is not in good standing, unless an admin released this payout
--   5. the payee cannot receive transfers (private.payee_waiting_reason)
-- Volatile: each call reads what is committed now (a report committed a moment ago counts).
-- ---------------------------------------------------------------------------------------------
create or replace function private.payout_wait_reason(p_payout_id uuid, p_now timestamptz default now())
returns text
language sql volatile security definer set search_path = ''
as $$
  select case
    when d.session_id is null and r.session_id is not null
      then 'problem reported by the customer: waits for an admin decision'
    when d.session_id is null and s.delivery = 'unverified'
      then 'delivery unverified: waits for an admin decision'
    when d.session_id is null and p.release_at > p_now
      then 'objection window: released at ' || to_char(p.release_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC'
    when p.admin_released_at is null and m.status <> 'approved'
      then 'mechanic ' || m.status::text || ': payouts wait for an admin release'
    when p.admin_released_at is null and m.payouts_held
      then 'mechanic payouts held since a suspension: wait for an admin release'
    else private.payee_waiting_reason(p.mechanic_id, p.organization_id)
  end
  from public.payouts p
  join public.sessions s on s.id = p.session_id
  left join public.mechanics m on m.id = s.mechanic_id
  left join public.session_delivery_decisions d on d.session_id = p.session_id
  left join public.session_problem_reports r on r.session_id = p.session_id
  where p.id = p_payout_id
$$;
revoke execute on function private.payout_wait_reason(uuid, timestamptz) from public;
grant execute on function private.payout_wait_reason(uuid, timestamptz) to service_role;

-- Applies the rule to a session's payouts: waiting → queued when nothing holds it (the payouts
-- trigger enqueues its stripe.transfer job); queued → waiting when something does and no transfer
-- was attempted yet (the worker checks the others: private.start_payout_job); the reason is kept
-- up to date. Returns how many are queued now.
create or replace function private.refresh_payouts(p_session_id uuid, p_now timestamptz default now())
returns int
language plpgsql security definer set search_path = ''
as $$
declare
  v_payout public.payouts;
  v_reason text;
  v_queued int := 0;
begin
  for v_payout in
    select * from public.payouts p
    where p.session_id = p_session_id
      and (p.status = 'waiting' or (p.status = 'queued' and p.destination_account is null))
    order by p.id for update
  loop
    v_reason := private.payout_wait_reason(v_payout.id, p_now);
    if v_reason is null then
      if v_payout.status = 'waiting' then
        update public.payouts set status = 'queued', waiting_reason = null where id = v_payout.id;
      end if;
      v_queued := v_queued + 1;
    elsif v_payout.status = 'queued' or v_payout.waiting_reason is distinct from v_reason then
      update public.payouts set status = 'waiting', waiting_reason = v_reason where id = v_payout.id;
    end if;
  end loop;
  return v_queued;
end
$$;
revoke execute on function private.refresh_payouts(uuid, timestamptz) from public;
grant execute on function private.refresh_payouts(uuid, timestamptz) to service_role;

-- The refundable cents of a session's payments (its own and paid extensions).
create or replace function private.session_refundable_cents(p_session_id uuid) returns int
language sql stable security definer set search_path = ''
as $$
  select coalesce(sum(p.amount_cents - coalesce((select sum(r.amount_cents) from public.refunds r
                                                  where r.payment_id = p.id and r.status not in ('failed', 'canceled')), 0)),
                  0)::int
  from public.payments p where p.session_id = p_session_id
$$;
revoke execute on function private.session_refundable_cents(uuid) from public;
grant execute on function private.session_refundable_cents(uuid) to service_role;

-- Refunds p_cents (null: everything left) of a session's payments, its own payment first, then
-- the extensions in the order they were paid. Returns the cents refunded.
create or replace function private.refund_session(p_session_id uuid, p_cents int, p_origin text, p_reason text,
                                                  p_by uuid, p_now timestamptz default now())
returns int
language plpgsql security definer set search_path = ''
as $$
declare
  v_payment record;
  v_left int := p_cents;
  v_done int := 0;
  v_refund public.refunds;
begin
  for v_payment in
    select p.id, p.amount_cents - coalesce((select sum(r.amount_cents) from public.refunds r
                                            where r.payment_id = p.id and r.status not in ('failed', 'canceled')), 0)
             ::int as refundable
    from public.payments p where p.session_id = p_session_id
    order by p.extension_id is not null, p.paid_at, p.id
  loop
    continue when v_payment.refundable <= 0 or (v_left is not null and v_left <= 0);
    v_refund := private.request_refund(v_payment.id,
                                       case when v_left is null then null else least(v_left, v_payment.refundable) end,
                                       p_origin, p_reason, p_by, null::text, null::public.refund_status, p_now);
    v_left := v_left - v_refund.amount_cents;
    v_done := v_done + v_refund.amount_cents;
  end loop;
  return v_done;
end
$$;
revoke execute on function private.refund_session(uuid, int, text, text, uuid, timestamptz) from public;
grant execute on function private.refund_session(uuid, int, text, text, uuid, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- The customer objects: report_problem within payments.payout_hold after the end
-- ---------------------------------------------------------------------------------------------
create or replace function public.report_problem(p_session_id uuid, p_reason text) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_reason text := private.check_text('p_reason', p_reason, true);
  v_session public.sessions;
  v_report public.session_problem_reports;
begin
  perform private.require_arg('p_session_id', p_session_id);
  select * into v_session from public.sessions where id = p_session_id for update;
  if not found or (v_session.customer_id <> v_uid and v_session.mechanic_id is distinct from v_uid) then
    perform private.raise_error('not_found', 'no such session');
  end if;
  if v_session.customer_id <> v_uid then
    perform private.raise_error('not_allowed', 'only the session''s customer can report a problem');
  end if;
  if v_session.status <> 'completed' then
    perform private.raise_error('invalid_transition',
      format('the session is %s: a problem is reported after it ended', v_session.status));
  end if;
  if exists (select 1 from public.session_delivery_decisions d where d.session_id = p_session_id) then
    perform private.raise_error('delivery_already_decided', 'an admin already decided this session');
  end if;
  if exists (select 1 from public.session_problem_reports r where r.session_id = p_session_id) then
    perform private.raise_error('problem_already_reported', 'a problem with this session was already reported');
  end if;
  if v_session.delivery = 'unverified' then
    perform private.raise_error('conflict', 'the session is unverified: it already waits for an admin decision');
  end if;
  -- the window: until the payouts' release (a payout already released closes it too)
  if now() >= v_session.ended_at + private.setting_interval('payments.payout_hold')
     or exists (select 1 from public.payouts p where p.session_id = p_session_id
                and p.status not in ('waiting', 'cancelled')) then
    perform private.raise_error('report_window_closed',
      format('problems are reported within %s of the session''s end', private.setting_text('payments.payout_hold')));
  end if;
  insert into public.session_problem_reports (session_id, customer_id, reason)
  values (p_session_id, v_uid, v_reason)
  returning * into v_report;
  perform private.refresh_payouts(p_session_id, now());
  return jsonb_build_object('session_id', p_session_id, 'status', 'reported', 'reported_at', v_report.reported_at,
                            'payouts_waiting', (select count(*) from public.payouts p
                                                where p.session_id = p_session_id and p.status = 'waiting'));
end
$$;
revoke execute on function public.report_problem(uuid, text) from public, anon;
grant execute on function public.report_problem(uuid, text) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- The admin decides an unverified or reported session: pay, refund, or partial
-- ---------------------------------------------------------------------------------------------
create or replace function public.admin_resolve_delivery(p_session_id uuid, p_outcome text,
                                                         p_refund_cents int default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_admin uuid := private.require_admin();
  v_session public.sessions;
  v_refundable int;
  v_refunded int := 0;
  v_reason text;
begin
  if p_session_id is null or p_outcome is null or p_outcome not in ('pay', 'refund', 'partial') then
    perform private.raise_error('invalid_input', 'p_session_id and p_outcome (pay, refund or partial) are required');
  end if;
  if (p_outcome = 'partial') <> (p_refund_cents is not null) then
    perform private.raise_error('invalid_input', 'p_refund_cents is given for partial, and only for partial');
  end if;
  perform 1 from public.sessions where id = p_session_id;
  if not found then
    perform private.raise_error('not_found', 'no such session');
  end if;
  perform private.lock_session_for_refund(p_session_id);
  select * into v_session from public.sessions where id = p_session_id;
  if exists (select 1 from public.session_delivery_decisions d where d.session_id = p_session_id) then
    perform private.raise_error('delivery_already_decided', 'this session was already decided');
  end if;
  if v_session.status <> 'completed'
     or (v_session.delivery = 'delivered'
         and not exists (select 1 from public.session_problem_reports r where r.session_id = p_session_id)) then
    perform private.raise_error('nothing_to_decide', 'the session is neither unverified nor reported');
  end if;
  v_refundable := private.session_refundable_cents(p_session_id);
  if p_outcome = 'partial' and (p_refund_cents < 1 or p_refund_cents >= v_refundable) then
    perform private.raise_error('invalid_input',
      format('p_refund_cents must be between 1 and %s', greatest(v_refundable - 1, 0)));
  end if;
  v_reason := 'delivery decided by an admin: ' || p_outcome;
  perform private.set_actor('admin', v_reason);
  -- the decision first: settlement and the payout rule read it
  insert into public.session_delivery_decisions (session_id, outcome, decided_by)
  values (p_session_id, p_outcome, v_admin);
  if p_outcome in ('refund', 'partial') and v_refundable > 0 then
    v_refunded := private.refund_session(p_session_id, case when p_outcome = 'partial' then p_refund_cents end,
                                         'admin', v_reason, v_admin, now());
  end if;
  if p_outcome in ('pay', 'partial') and v_session.delivery = 'unverified' then
    perform private.settle_payment(p_session_id, now());
  end if;
  update public.session_delivery_decisions set refund_cents = v_refunded where session_id = p_session_id;
  perform private.refresh_payouts(p_session_id, now());
  return jsonb_build_object(
    'session_id', p_session_id, 'outcome', p_outcome, 'refund_cents', v_refunded, 'decided_by', v_admin,
    'payouts', coalesce((select jsonb_agg(jsonb_build_object('payout_id', p.id, 'amount_cents', p.amount_cents,
                                                             'status', p.status, 'waiting_reason', p.waiting_reason)
                                          order by p.id)
                         from public.payouts p where p.session_id = p_session_id), '[]'::jsonb));
end
$$;
revoke execute on function public.admin_resolve_delivery(uuid, text, int) from public, anon;
grant execute on function public.admin_resolve_delivery(uuid, text, int) to authenticated, service_role;

-- Admin: the sessions that wait for a decision (unverified, or reported within the window).
create or replace function public.admin_delivery_queue() returns setof jsonb
language plpgsql stable security definer set search_path = ''
as $$
begin
  perform private.require_admin();
  return query
    select jsonb_build_object(
             'session_id', s.id, 'kind', case when r.session_id is not null then 'reported' else 'unverified' end,
             'delivery', s.delivery, 'customer_id', s.customer_id, 'mechanic_id', s.mechanic_id,
             'session_type', s.session_type, 'plan_code', s.plan_code, 'started_at', s.started_at,
             'ended_at', s.ended_at, 'duration_minutes', s.duration_minutes,
             'paid_cents', (select coalesce(sum(p.amount_cents), 0) from public.payments p where p.session_id = s.id),
             'refundable_cents', private.session_refundable_cents(s.id),
             'report_reason', r.reason, 'reported_at', r.reported_at,
             'auto_refund_at', case when s.delivery = 'unverified'
                                    then s.ended_at + private.setting_interval('trust.unverified_refund_after') end)
    from public.sessions s
    left join public.session_problem_reports r on r.session_id = s.id
    where s.status = 'completed' and (s.delivery = 'unverified' or r.session_id is not null)
      and not exists (select 1 from public.session_delivery_decisions d where d.session_id = s.id)
    order by s.ended_at, s.id;
end
$$;
revoke execute on function public.admin_delivery_queue() from public, anon;
grant execute on function public.admin_delivery_queue() to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- The scheduled job `delivery` (jobs/schedules.sql): release payouts whose window ended; refund
-- unverified sessions no admin decided in time.
-- ---------------------------------------------------------------------------------------------
create or replace function private.release_held_payouts(p_now timestamptz default now(), p_limit int default 200)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_session_id uuid;
  v_released int := 0;
  v_sessions int := 0;
begin
  for v_session_id in
    select distinct p.session_id from public.payouts p
    where p.status = 'waiting' and p.release_at <= p_now and p.waiting_reason like 'objection window%'
    limit p_limit
  loop
    -- the session lock orders this with report_problem and admin_resolve_delivery
    perform 1 from public.sessions where id = v_session_id for update;
    v_released := v_released + private.refresh_payouts(v_session_id, p_now);
    v_sessions := v_sessions + 1;
  end loop;
  return jsonb_build_object('hold_sessions_checked', v_sessions, 'payouts_released', v_released);
end
$$;
revoke execute on function private.release_held_payouts(timestamptz, int) from public;
grant execute on function private.release_held_payouts(timestamptz, int) to service_role;

create or replace function private.refund_unverified_sessions(p_now timestamptz default now(), p_limit int default 200)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_session_id uuid;
  v_count int := 0;
  v_refunded int;
  v_prev text[];
begin
  for v_session_id in
    select s.id from public.sessions s
    where s.delivery = 'unverified'
      and s.ended_at <= p_now - private.setting_interval('trust.unverified_refund_after')
      and not exists (select 1 from public.session_delivery_decisions d where d.session_id = s.id)
    order by s.ended_at limit p_limit
  loop
    perform private.lock_session_for_refund(v_session_id);
    continue when exists (select 1 from public.session_delivery_decisions d where d.session_id = v_session_id);
    v_prev := private.lifecycle_actor('system', 'unverified delivery: refunded automatically');
    insert into public.session_delivery_decisions (session_id, outcome, decided_by, reason)
    values (v_session_id, 'refund', null, 'no evidence of delivery and no admin decision in time');
    v_refunded := private.refund_session(v_session_id, null, 'automatic',
                                         'no evidence that the session was delivered', null, now());
    update public.session_delivery_decisions set refund_cents = v_refunded where session_id = v_session_id;
    perform private.lifecycle_actor_restore(v_prev);
    v_count := v_count + 1;
  end loop;
  return jsonb_build_object('unverified_refunded', v_count);
end
$$;
revoke execute on function private.refund_unverified_sessions(timestamptz, int) from public;
grant execute on function private.refund_unverified_sessions(timestamptz, int) to service_role;
-- <<< functions_sql trust/delivery.sql

-- >>> functions_sql trust/limits.sql sha256=f8317282989aefc92e368510883453bceea024dbaaae3d9836d326ad0a5328b6
-- Trust: limits per account (docs/trust.md, "Limits per account and rate limits").
--
-- Every cap is counted under the customer's own lock (a transaction-scoped advisory lock on the
-- customer's id), so parallel calls of one account serialize there and the count is exact: of
-- any number of racing requests, exactly as many pass as the cap leaves room for. Lock order:
-- a mechanic's row (scheduling) before the customer's limits lock, and the customer's limits lock
-- before the intake, the credit and everything a request creates.

-- ---------------------------------------------------------------------------------------------
-- The customer's lock and what is counted
-- ---------------------------------------------------------------------------------------------
create or replace function private.lock_customer_limits(p_customer_id uuid) returns void
language sql security definer set search_path = ''
as $$ select pg_advisory_xact_lock(hashtextextended('autodoctor.customer_limits:' || p_customer_id::text, 0)) $$;
revoke execute on function private.lock_customer_limits(uuid) from public;
grant execute on function private.lock_customer_limits(uuid) to service_role;

-- On-demand requests the customer has open: pending, unattended, or accepted with the session
-- not ended (a session still pending, waiting or live).
create or replace function private.open_requests_count(p_customer_id uuid) returns int
language sql stable security definer set search_path = ''
as $$
  select count(*)::int
  from public.session_requests r
  join public.sessions s on s.id = r.session_id
  where r.customer_id = p_customer_id
    and r.status in ('pending', 'unattended', 'accepted')
    and s.status in ('pending', 'waiting', 'live')
$$;
revoke execute on function private.open_requests_count(uuid) from public;
grant execute on function private.open_requests_count(uuid) to service_role;

-- Free sessions the account has used: every session priced 0 (the free plan, on demand or
-- booked), except one that ended (cancelled) without any mechanic having it, which gave the
-- customer nothing: an expired request, or one cancelled before anyone took it. A session a
-- mechanic took counts even when cancelled later, so cancel-and-retry gains nothing. Free live
-- holds count too (p_with_holds), so two free slots cannot be held at once.
create or replace function private.free_sessions_used(
  p_customer_id uuid, p_with_holds boolean, p_exclude_hold_id uuid, p_now timestamptz
) returns int
language sql stable security definer set search_path = ''
as $$
  select (select count(*)::int from public.sessions s
          where s.customer_id = p_customer_id and s.price_cents = 0
            and not (s.status = 'cancelled' and s.mechanic_id is null))
       + case when p_with_holds then
           (select count(*)::int from public.mechanic_commitments c
            where c.customer_id = p_customer_id and c.kind = 'hold' and c.status = 'held' and c.expires_at > p_now
              and c.price_cents = 0 and c.id is distinct from p_exclude_hold_id)
         else 0 end
$$;
revoke execute on function private.free_sessions_used(uuid, boolean, uuid, timestamptz) from public;
grant execute on function private.free_sessions_used(uuid, boolean, uuid, timestamptz) to service_role;

-- Future bookings: booked sessions not ended yet (scheduled, waiting or live) and live holds.
create or replace function private.future_bookings_count(p_customer_id uuid, p_exclude_hold_id uuid, p_now timestamptz)
returns int
language sql stable security definer set search_path = ''
as $$
  select (select count(*)::int from public.sessions s
          where s.customer_id = p_customer_id and s.scheduled_for is not null
            and s.status in ('scheduled', 'waiting', 'live'))
       + (select count(*)::int from public.mechanic_commitments c
          where c.customer_id = p_customer_id and c.kind = 'hold' and c.status = 'held' and c.expires_at > p_now
            and c.id is distinct from p_exclude_hold_id)
$$;
revoke execute on function private.future_bookings_count(uuid, uuid, timestamptz) from public;
grant execute on function private.future_bookings_count(uuid, uuid, timestamptz) to service_role;

create or replace function private.check_free_session(
  p_customer_id uuid, p_with_holds boolean, p_exclude_hold_id uuid, p_now timestamptz
) returns void
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_cap int := private.setting_int('limits.free_sessions_per_account');
begin
  if private.free_sessions_used(p_customer_id, p_with_holds, p_exclude_hold_id, p_now) >= v_cap then
    perform private.raise_error('limit_reached',
      format('the free plan is for %s session(s) per account, and this account has used it: choose a paid plan',
             v_cap));
  end if;
end
$$;
revoke execute on function private.check_free_session(uuid, boolean, uuid, timestamptz) from public;
grant execute on function private.check_free_session(uuid, boolean, uuid, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- On-demand requests (request_session, a credit checkout, a paid card checkout and its webhook)
-- ---------------------------------------------------------------------------------------------
-- Takes the customer's lock and refuses with limit_reached: too many open requests, a free
-- request past the free sessions of the account, a second open request for the same preferred
-- mechanic. Called by private.create_session_request (every path that creates a request) and,
-- before any money moves, by private.prepare_checkout.
create or replace function private.check_demand_limits(
  p_customer_id uuid, p_price_cents int, p_preferred_mechanic_id uuid, p_now timestamptz default now()
) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_cap int;
begin
  perform private.lock_customer_limits(p_customer_id);
  v_cap := private.setting_int('limits.open_requests_per_customer');
  if private.open_requests_count(p_customer_id) >= v_cap then
    perform private.raise_error('limit_reached',
      format('at most %s open requests per customer: wait for one to end or cancel one', v_cap));
  end if;
  if p_preferred_mechanic_id is not null
     and exists (select 1 from public.session_requests r
                 where r.customer_id = p_customer_id and r.preferred_mechanic_id = p_preferred_mechanic_id
                   and r.status in ('pending', 'unattended')) then
    perform private.raise_error('limit_reached', 'you already have an open request for this mechanic');
  end if;
  if p_price_cents = 0 then
    perform private.check_free_session(p_customer_id, false, null, p_now);
  end if;
end
$$;
revoke execute on function private.check_demand_limits(uuid, int, uuid, timestamptz) from public;
grant execute on function private.check_demand_limits(uuid, int, uuid, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Booked sessions (hold_slot, confirm_hold)
-- ---------------------------------------------------------------------------------------------
-- Takes the customer's lock and refuses with limit_reached: future bookings (live holds count)
-- at the cap, or a free slot past the free sessions of the account. p_exclude_hold_id: the hold
-- being turned into a booking (it is the booking, not one more).
create or replace function private.check_booking_limits(
  p_customer_id uuid, p_price_cents int, p_exclude_hold_id uuid, p_now timestamptz default now()
) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_cap int;
begin
  perform private.lock_customer_limits(p_customer_id);
  v_cap := private.setting_int('limits.future_bookings_per_customer');
  if private.future_bookings_count(p_customer_id, p_exclude_hold_id, p_now) >= v_cap then
    perform private.raise_error('limit_reached',
      format('at most %s future bookings and holds per customer: wait for one to take place or cancel one', v_cap));
  end if;
  if p_price_cents = 0 then
    perform private.check_free_session(p_customer_id, true, p_exclude_hold_id, p_now);
  end if;
end
$$;
revoke execute on function private.check_booking_limits(uuid, int, uuid, timestamptz) from public;
grant execute on function private.check_booking_limits(uuid, int, uuid, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Intakes (inserted by clients through the table)
-- ---------------------------------------------------------------------------------------------
-- A signed-in user's insert: at most limits.intakes_per_hour in any hour, counted under the
-- customer's lock; Retry-After tells when the oldest of the hour leaves the window. Inserts by
-- the platform (service_role, migrations) are not limited.
create or replace function private.intakes_rate_limit() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_cap int;
  v_count int;
  v_oldest timestamptz;
begin
  if auth.uid() is null then
    return new;
  end if;
  perform private.lock_customer_limits(new.customer_id);
  v_cap := private.setting_int('limits.intakes_per_hour');
  select count(*)::int, min(i.created_at) into v_count, v_oldest
  from public.intakes i
  where i.customer_id = new.customer_id and i.created_at > now() - interval '1 hour';
  if v_count >= v_cap then
    perform private.raise_error_retry('limit_reached',
      format('at most %s intakes per hour: try again later', v_cap),
      extract(epoch from (v_oldest + interval '1 hour' - now())));
  end if;
  return new;
end
$$;
revoke execute on function private.intakes_rate_limit() from public;
drop trigger if exists _100_intakes_rate_limit on public.intakes;
create trigger _100_intakes_rate_limit before insert on public.intakes
  for each row execute function private.intakes_rate_limit();

-- The open-request-per-preferred-mechanic index's violation, as the error the API documents.
create or replace function private.raise_if_preferred_limit(p_constraint text) returns void
language plpgsql stable security definer set search_path = ''
as $$
begin
  if p_constraint = 'session_requests_one_open_per_preferred' then
    perform private.raise_error('limit_reached', 'you already have an open request for this mechanic');
  end if;
end
$$;
revoke execute on function private.raise_if_preferred_limit(text) from public;
grant execute on function private.raise_if_preferred_limit(text) to service_role;

-- The intake checks of private.check_booking_intake without its lock: run before the limits so
-- a bad input is reported as such (not_found, conflict) rather than as a limit; the locked check
-- runs again after the customer's lock (lock order: the customer's limits, then the intake).
create or replace function private.check_intake_unlocked(p_customer_id uuid, p_intake_id uuid, p_vehicle_id uuid)
returns void
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_intake public.intakes;
begin
  select * into v_intake from public.intakes where id = p_intake_id and customer_id = p_customer_id;
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
end
$$;
revoke execute on function private.check_intake_unlocked(uuid, uuid, uuid) from public;
grant execute on function private.check_intake_unlocked(uuid, uuid, uuid) to service_role;
-- <<< functions_sql trust/limits.sql

-- >>> functions_sql trust/pricing.sql sha256=3075961d25ecc4ccd99e6bbf25ad3012a836d5697935c502ed26095ec7359950
-- Trust: prices follow the slot and the mechanic.
--
-- One function decides whether the brand-specialist surcharge applies (every booking path and
-- the reschedule call it), and a reschedule refunds the difference when the new slot is cheaper.

-- ---------------------------------------------------------------------------------------------
-- The specialist surcharge
-- ---------------------------------------------------------------------------------------------
-- The make of the vehicle a booking is for: the vehicle's (given, else the intake's), else what
-- the intake says. Only the customer's own vehicle and intake count (null otherwise).
create or replace function private.booking_vehicle_make(p_customer_id uuid, p_intake_id uuid, p_vehicle_id uuid)
returns text
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_intake public.intakes;
  v_make text;
begin
  select * into v_intake from public.intakes where id = p_intake_id and customer_id = p_customer_id;
  select v.make into v_make from public.vehicles v
  where v.id = coalesce(p_vehicle_id, v_intake.vehicle_id) and v.owner_id = p_customer_id;
  return nullif(lower(btrim(coalesce(v_make, v_intake.vehicle_make))), '');
end
$$;
revoke execute on function private.booking_vehicle_make(uuid, uuid, uuid) from public;
grant execute on function private.booking_vehicle_make(uuid, uuid, uuid) to service_role;

-- Whether mechanic `p_mechanic_id` is a brand specialist for make `p_make` (lowercase): the same
-- test the ranking and the listing use (is_brand_specialist and the make among its brands).
create or replace function private.is_specialist_for(p_mechanic_id uuid, p_make text) returns boolean
language plpgsql stable security definer set search_path = ''
as $$
begin
  if p_mechanic_id is null or p_make is null then
    return false;
  end if;
  return exists (select 1 from public.mechanics m
                 where m.id = p_mechanic_id and m.is_brand_specialist and m.brand_keys @> array[p_make]);
end
$$;
revoke execute on function private.is_specialist_for(uuid, text) from public;
grant execute on function private.is_specialist_for(uuid, text) to service_role;

-- The one rule for the surcharge: it applies when the customer chose a brand specialist for the
-- vehicle's make, whichever way — asked for specialists (`p_specialist`, the request is routed to
-- specialists of the make only), or named a mechanic (a preferred mechanic, or the mechanic whose
-- slot is booked) who is a brand specialist for that make — and never otherwise (a specialist of
-- another brand, a mechanic who is no specialist).
create or replace function private.specialist_applies(
  p_customer_id uuid, p_intake_id uuid, p_vehicle_id uuid, p_mechanic_id uuid, p_specialist boolean
) returns boolean
language plpgsql stable security definer set search_path = ''
as $$
begin
  if coalesce(p_specialist, false) then
    return true;
  end if;
  return private.is_specialist_for(p_mechanic_id,
                                   private.booking_vehicle_make(p_customer_id, p_intake_id, p_vehicle_id));
end
$$;
revoke execute on function private.specialist_applies(uuid, uuid, uuid, uuid, boolean) from public;
grant execute on function private.specialist_applies(uuid, uuid, uuid, uuid, boolean) to service_role;

create or replace function private.specialist_surcharge_cents(p_applies boolean) returns int
language plpgsql stable security definer set search_path = ''
as $$
begin
  return case when coalesce(p_applies, false) then private.setting_int('pricing.specialist_surcharge_cents') else 0 end;
end
$$;
revoke execute on function private.specialist_surcharge_cents(boolean) from public;
grant execute on function private.specialist_surcharge_cents(boolean) to service_role;

-- The price of booking hold `p_hold` for this intake and vehicle: the slot's price (plan ×
-- multiplier, on the hold) plus the specialist surcharge when the hold's mechanic is a brand
-- specialist for the vehicle's make (private.specialist_applies).
create or replace function private.hold_booking_price(
  p_hold public.mechanic_commitments, p_customer_id uuid, p_intake_id uuid, p_vehicle_id uuid,
  out price_cents int, out specialist boolean
)
language plpgsql stable security definer set search_path = ''
as $$
begin
  specialist := private.specialist_applies(p_customer_id, p_intake_id, p_vehicle_id, p_hold.mechanic_id, false);
  price_cents := p_hold.price_cents + private.specialist_surcharge_cents(specialist);
end
$$;
revoke execute on function private.hold_booking_price(public.mechanic_commitments, uuid, uuid, uuid) from public;
grant execute on function private.hold_booking_price(public.mechanic_commitments, uuid, uuid, uuid) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Re-pricing a booked session
-- ---------------------------------------------------------------------------------------------
-- Gives `p_cents` of a booked session's price back to where it was paid from: its own payments
-- (not extensions), oldest first, each up to what remains refundable on it — credit back to
-- credit at once, a card through a queued refund (the stripe.refund job). The session stays
-- booked even when a payment is refunded in full (its new price is then 0). The caller holds the
-- mechanic's and the session's locks. Returns the cents refunded.
create or replace function private.refund_price_difference(
  p_session_id uuid, p_cents int, p_reason text, p_requested_by uuid, p_now timestamptz default now()
) returns int
language plpgsql security definer set search_path = ''
as $$
declare
  v_payment public.payments;
  v_left int := p_cents;
  v_refundable int;
  v_cut int;
begin
  if p_cents is null or p_cents <= 0 then
    return 0;
  end if;
  for v_payment in
    select * from public.payments where session_id = p_session_id and extension_id is null
    order by paid_at, id for update
  loop
    exit when v_left <= 0;
    v_refundable := v_payment.amount_cents
      - coalesce((select sum(r.amount_cents) from public.refunds r
                  where r.payment_id = v_payment.id and r.status not in ('failed', 'canceled')), 0);
    v_cut := least(v_left, v_refundable);
    continue when v_cut <= 0;
    perform private.request_refund(v_payment.id, v_cut, 'automatic', p_reason, p_requested_by, null, null, p_now,
                                   true);
    v_left := v_left - v_cut;
  end loop;
  return p_cents - v_left;
end
$$;
revoke execute on function private.refund_price_difference(uuid, int, text, uuid, timestamptz) from public;
grant execute on function private.refund_price_difference(uuid, int, text, uuid, timestamptz) to service_role;
-- <<< functions_sql trust/pricing.sql

-- >>> functions_sql trust/rate_limit.sql sha256=dc51a19ec7cff8e1b01d341ec68e6f3c11de7c17d23ef7185b0b0c79850bcb2c
-- Trust: the per-user rate limit of write RPCs (docs/trust.md, "Limits per account and rate limits").
--
-- PostgREST runs private.pre_request() at the start of every request's transaction (the role
-- setting pgrst.db_pre_request of authenticator, set by migration), after it set the role,
-- request.jwt.claims, request.method and request.path. For `POST /rpc/<name>` by a signed-in user
-- it takes one token from the user's bucket of the function's class (private.rpc_rate_classes;
-- a volatile function without a row counts as class `write`; read-only functions are free).
-- Buckets refill continuously (rate_limit.<class>.refill_per_minute) up to their capacity
-- (rate_limit.<class>.capacity). An empty bucket answers rate_limited (HTTP 429, Retry-After: the
-- seconds until one token is back).
--
-- The token is taken in the request's own transaction: a call that fails rolls its token back
-- with everything else, so the limit counts calls that changed something (a flood of failing calls
-- is bounded by PostgREST's pool and statement timeouts instead). A user's calls of one class
-- serialize briefly on the bucket row.

-- Takes one token from (p_user_id, p_class) at p_now, or raises rate_limited.
create or replace function private.take_rate_token(p_user_id uuid, p_class text, p_now timestamptz default clock_timestamp())
returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_capacity double precision := private.setting_int(format('rate_limit.%s.capacity', p_class));
  v_per_second double precision := private.setting_numeric(format('rate_limit.%s.refill_per_minute', p_class)) / 60;
  v_tokens double precision;
begin
  insert into private.rate_buckets as b (user_id, class, tokens, updated_at)
  values (p_user_id, p_class, v_capacity - 1, p_now)
  on conflict (user_id, class) do update
    set tokens = least(v_capacity,
                       b.tokens + greatest(0, extract(epoch from (excluded.updated_at - b.updated_at))) * v_per_second) - 1,
        updated_at = greatest(b.updated_at, excluded.updated_at)
  returning b.tokens into v_tokens;
  if v_tokens < 0 then
    -- the update is rolled back with the request: a refused call costs nothing
    perform private.raise_error_retry('rate_limited',
      format('too many %s calls: try again in a moment', p_class),
      (case when v_per_second > 0 then -v_tokens / v_per_second else 3600 end)::numeric);
  end if;
end
$$;
revoke execute on function private.take_rate_token(uuid, text, timestamptz) from public;
grant execute on function private.take_rate_token(uuid, text, timestamptz) to service_role;

-- The rate class of a function of `public` called through /rpc: its row, else `write` for a
-- volatile function, else null (read-only: not limited).
create or replace function private.rpc_rate_class(p_function_name text) returns text
language sql stable security definer set search_path = ''
as $$
  select coalesce(
    (select c.class from private.rpc_rate_classes c where c.function_name = p_function_name),
    (select 'write' from pg_catalog.pg_proc p
     where p.pronamespace = 'public'::regnamespace and p.proname = p_function_name and p.provolatile = 'v'
     limit 1))
$$;
revoke execute on function private.rpc_rate_class(text) from public;
grant execute on function private.rpc_rate_class(text) to service_role;

-- PostgREST's pre-request hook. Callable by every API role (PostgREST calls it as the request's
-- role); it decides from the request settings alone and never raises for anything but the limit.
create or replace function private.pre_request() returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_path text := current_setting('request.path', true);
  v_user_id uuid;
  v_class text;
begin
  if current_setting('request.method', true) is distinct from 'POST' or v_path is null
     or v_path not like '/rpc/%' then
    return;
  end if;
  if coalesce(current_setting('request.jwt.claims', true), '') = ''
     or (current_setting('request.jwt.claims', true)::jsonb ->> 'role') is distinct from 'authenticated' then
    return;  -- anon calls no write RPC; service_role is the platform
  end if;
  v_user_id := private.try_uuid(current_setting('request.jwt.claims', true)::jsonb ->> 'sub');
  if v_user_id is null or not private.setting_bool('rate_limit.enabled') then
    return;
  end if;
  v_class := private.rpc_rate_class(lower(rtrim(substr(v_path, 6), '/')));
  if v_class is not null then
    perform private.take_rate_token(v_user_id, v_class, clock_timestamp());
  end if;
end
$$;
revoke execute on function private.pre_request() from public;
grant execute on function private.pre_request() to anon, authenticated, service_role;
-- <<< functions_sql trust/rate_limit.sql

-- >>> functions_sql trust/standing.sql sha256=9bd4e9285f6eaef814fee4f492354878c824fe6cd88f0c76005eab6032938f80
-- Trust: a mechanic's standing. Only an approved mechanic starts, ends or extends sessions (and
-- accepts work: private.assign_request). A mechanic who leaves approved standing has its payouts
-- held until an admin releases them (admin_release_payouts); approving it again does not release
-- them by itself: what was earned while suspended is looked at by a person first.

-- Raises mechanic_not_in_good_standing (AD104) unless the session's mechanic is approved.
create or replace function private.require_good_standing(p_mechanic_id uuid) returns void
language plpgsql stable security definer set search_path = ''
as $$
begin
  if not exists (select 1 from public.mechanics m where m.id = p_mechanic_id and m.status = 'approved') then
    perform private.raise_error('mechanic_not_in_good_standing',
      format('the mechanic is %s: the session cannot be started, ended or extended by them',
             coalesce((select m.status::text from public.mechanics m where m.id = p_mechanic_id), 'unknown')));
  end if;
end
$$;
revoke execute on function private.require_good_standing(uuid) from public;
grant execute on function private.require_good_standing(uuid) to service_role;

-- Leaving approved standing holds the payouts (flag, kept until an admin releases them).
create or replace function private.tg_mechanics__hold_payouts() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if old.status = 'approved' and new.status <> 'approved' then
    new.payouts_held := true;
  end if;
  return new;
end
$$;
revoke execute on function private.tg_mechanics__hold_payouts() from public;
drop trigger if exists _050_hold_payouts on public.mechanics;
create trigger _050_hold_payouts before update of status on public.mechanics
  for each row when (old.status is distinct from new.status) execute function private.tg_mechanics__hold_payouts();

-- Leaving approved standing: its sessions not yet started (booked, or accepted and waiting) can
-- no longer go live with it: they are cancelled and the customer refunded in full (a booked one by
-- the cancel lifecycle's own rule, a waiting one here). Payouts of its sessions not yet attempted
-- go back to waiting, with the reason.
create or replace function private.tg_mechanics__refresh_payouts() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_session_id uuid;
  v_reason text := format('the mechanic is %s', new.status);
begin
  if old.status = 'approved' and new.status <> 'approved' then
    for v_session_id in
      select s.id from public.sessions s
      where s.mechanic_id = new.id and s.status in ('scheduled', 'waiting')
      order by s.id
    loop
      perform private.lock_session_for_refund(v_session_id);
      perform private.cancel_session(v_session_id, v_reason, now());
      perform private.auto_refund(v_session_id, v_reason, now());
    end loop;
  end if;
  for v_session_id in
    select distinct p.session_id from public.payouts p join public.sessions s on s.id = p.session_id
    where s.mechanic_id = new.id and p.status in ('waiting', 'queued') and p.destination_account is null
  loop
    perform private.refresh_payouts(v_session_id, now());
  end loop;
  return null;
end
$$;
revoke execute on function private.tg_mechanics__refresh_payouts() from public;
drop trigger if exists _450_refresh_payouts on public.mechanics;
create trigger _450_refresh_payouts after update of status, payouts_held on public.mechanics
  for each row when (old.status is distinct from new.status or old.payouts_held is distinct from new.payouts_held)
  execute function private.tg_mechanics__refresh_payouts();

-- Admin: releases the payouts held for a mechanic's standing. Every payout of its sessions still
-- waiting is released from the standing rule (the objection window, a report and the payout
-- account still apply); the hold on future payouts is lifted only if the mechanic is approved.
create or replace function public.admin_release_payouts(p_mechanic_id uuid) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_admin uuid := private.require_admin();
  v_mechanic public.mechanics;
  v_session_id uuid;
begin
  perform private.require_arg('p_mechanic_id', p_mechanic_id);
  select * into v_mechanic from public.mechanics where id = p_mechanic_id for update;
  if not found then
    perform private.raise_error('not_found', 'no such mechanic');
  end if;
  perform private.set_actor('admin', 'payouts released');
  update public.payouts p set admin_released_at = now()
  from public.sessions s
  where s.id = p.session_id and s.mechanic_id = p_mechanic_id and p.status in ('waiting', 'queued')
    and p.admin_released_at is null;
  if v_mechanic.status = 'approved' and v_mechanic.payouts_held then
    update public.mechanics set payouts_held = false where id = p_mechanic_id;  -- refreshes its payouts
  end if;
  for v_session_id in
    select distinct p.session_id from public.payouts p join public.sessions s on s.id = p.session_id
    where s.mechanic_id = p_mechanic_id and p.status = 'waiting'
  loop
    perform private.refresh_payouts(v_session_id, now());
  end loop;
  return jsonb_build_object(
    'mechanic_id', p_mechanic_id, 'released_by', v_admin,
    'payouts_held', (select m.payouts_held from public.mechanics m where m.id = p_mechanic_id),
    'payouts_queued', (select count(*) from public.payouts p join public.sessions s on s.id = p.session_id
                       where s.mechanic_id = p_mechanic_id and p.status = 'queued'),
    'payouts_waiting', coalesce((select jsonb_agg(jsonb_build_object('payout_id', p.id, 'waiting_reason', p.waiting_reason)
                                                  order by p.id)
                                 from public.payouts p join public.sessions s on s.id = p.session_id
                                 where s.mechanic_id = p_mechanic_id and p.status = 'waiting'), '[]'::jsonb));
end
$$;
revoke execute on function public.admin_release_payouts(uuid) from public, anon;
grant execute on function public.admin_release_payouts(uuid) to authenticated, service_role;
-- <<< functions_sql trust/standing.sql

-- >>> functions_sql trust/waiver.sql sha256=e55e17a34963e554f36bec304c2212fe7765268192081a2d2502a28c9ca38b41
-- Trust: the waiver. A customer files demand (a request, a checkout, a hold or a booking) only with
-- the current terms accepted and the 18+ confirmation (docs/trust.md).

-- Whether user `p_user_id` accepted the current terms (waiver.current_version) as an adult.
create or replace function private.has_current_waiver(p_user_id uuid) returns boolean
language sql stable security definer set search_path = ''
as $$
  select exists (select 1 from public.waiver_acceptances w
                 where w.user_id = p_user_id and w.waiver_version = private.setting_text('waiver.current_version')
                   and w.adult_confirmed)
$$;
revoke execute on function private.has_current_waiver(uuid) from public;
grant execute on function private.has_current_waiver(uuid) to authenticated, service_role;

-- Raises waiver_required unless user `p_user_id` accepted the current terms.
create or replace function private.require_waiver(p_user_id uuid) returns void
language plpgsql stable security definer set search_path = ''
as $$
begin
  if not private.has_current_waiver(p_user_id) then
    perform private.raise_error('waiver_required',
      format('accept the current terms (%s) with accept_waiver first', private.setting_text('waiver.current_version')));
  end if;
end
$$;
revoke execute on function private.require_waiver(uuid) from public;
grant execute on function private.require_waiver(uuid) to service_role;

-- The client's address and user agent from the headers PostgREST passes to the database
-- (request.headers: JSON, lower-case names): the first address of X-Forwarded-For, else
-- X-Real-IP; an address that is not one is recorded as null. Never from the request body.
create or replace function private.request_client() returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_headers jsonb;
  v_candidate text;
  v_ip inet;
begin
  begin
    v_headers := nullif(current_setting('request.headers', true), '')::jsonb;
  exception when others then
    v_headers := null;
  end;
  if jsonb_typeof(v_headers) is distinct from 'object' then
    v_headers := '{}';
  end if;
  v_candidate := nullif(btrim(split_part(v_headers ->> 'x-forwarded-for', ',', 1)), '');
  if v_candidate is null then
    v_candidate := nullif(btrim(v_headers ->> 'x-real-ip'), '');
  end if;
  if v_candidate is not null and char_length(v_candidate) <= 64 then
    begin
      v_ip := v_candidate::inet;
    exception when others then
      v_ip := null;
    end;
  end if;
  return jsonb_build_object('ip_address', host(v_ip), 'user_agent', left(v_headers ->> 'user-agent', 500));
end
$$;
revoke execute on function private.request_client() from public;
grant execute on function private.request_client() to service_role;

-- Records that the caller accepts terms `p_version` (which must be the current one) and confirms
-- being 18 or older. Accepting the same version again returns the first acceptance.
create or replace function public.accept_waiver(p_version text, p_adult boolean) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_current text := private.setting_text('waiver.current_version');
  v_client jsonb;
  v_row public.waiver_acceptances;
begin
  perform private.require_arg('p_version', p_version);
  perform private.require_arg('p_adult', p_adult);
  if char_length(p_version) > 20 then
    perform private.raise_error('invalid_input', 'p_version is at most 20 characters');
  end if;
  if not p_adult then
    perform private.raise_error('invalid_input', 'the terms can only be accepted by someone 18 or older');
  end if;
  if p_version <> v_current then
    perform private.raise_error('waiver_outdated', format('the current terms are %s', v_current));
  end if;
  select * into v_row from public.waiver_acceptances w
  where w.user_id = v_uid and w.waiver_version = v_current and w.adult_confirmed
  order by w.accepted_at limit 1;
  if not found then
    v_client := private.request_client();
    insert into public.waiver_acceptances (user_id, waiver_version, adult_confirmed, ip_address, user_agent)
    values (v_uid, v_current, true, (v_client ->> 'ip_address')::inet, v_client ->> 'user_agent')
    returning * into v_row;
  end if;
  return jsonb_build_object('waiver_id', v_row.id, 'waiver_version', v_row.waiver_version,
                            'accepted_at', v_row.accepted_at);
end
$$;
revoke execute on function public.accept_waiver(text, boolean) from public, anon;
grant execute on function public.accept_waiver(text, boolean) to authenticated, service_role;
-- <<< functions_sql trust/waiver.sql

-- no longer defined in supabase/functions_sql/
drop function if exists private.request_refund(pg_catalog.uuid,integer,pg_catalog.text,pg_catalog.text,pg_catalog.uuid,pg_catalog.text,public.refund_status,timestamp with time zone);

reset check_function_bodies;

-- functions_sql-manifest: the state of supabase/functions_sql/ after this migration
-- functions_sql-manifest core/admin.sql sha256=3ffcd3451d9f9aa0ebd9a8065c10592403dd1886d07e32da52a70c4f31ce01d0
-- functions_sql-manifest core/broadcasts.sql sha256=c93578c48e0d8c0c565a87dcb05642e2db63a0c8f168c31dee9dff2d1c798cec
-- functions_sql-manifest core/directory.sql sha256=97061e15165f3460c9f89023ee7162fa3b68d758e42d9d514665d237c6eb604d
-- functions_sql-manifest core/errors.sql sha256=3162f074770469a2c8f8cc6e582405853f74e510e71a3961234876f8a544d9d2
-- functions_sql-manifest core/helpers.sql sha256=fa1872c37c33a27b6875c41ae6e7c365f5d0a366926f2c758b43d0f067205e2e
-- functions_sql-manifest core/lifecycle.sql sha256=b1783170c8d43ebf2ade46245be38fd317ffe58a334d115034c123e35b92dc00
-- functions_sql-manifest core/rpc.sql sha256=0afd2101e03a88382d75a94895222335664c23bbd705275deaab3bbc2cee17ea
-- functions_sql-manifest core/sessions.sql sha256=2acb446aaeef473e102cfb4ec05a8226727c6cfadc1d3671e215e188c8b5a9d4
-- functions_sql-manifest core/signup.sql sha256=c1eaadc2d934df2bed3300c53885004a45fe59fb472bdbece20a33b0f704bd17
-- functions_sql-manifest core/transitions.sql sha256=098fdf6854df746cfb9fab11e2976507138ad996dc669984166c96a30e18f979
-- functions_sql-manifest jobs/admin.sql sha256=a431c8c37cae7835a803b49b41130f31e66f3e6dc2910f9e6f350a8b69944b13
-- functions_sql-manifest jobs/emails.sql sha256=db635bd482915c74b6fcdf0a8cc48a20726515e7cdb0adf29ae02a7cf96d60ab
-- functions_sql-manifest jobs/nudges.sql sha256=2c190ede7b490ef8f2ff1cd61d1b4a4b5a7c9222e325f13f0cee406020ebb121
-- functions_sql-manifest jobs/outbox.sql sha256=2b71c342ff6ea91cdda0c0de9cb671b3d678768aabd67044c635de6c5b65ba86
-- functions_sql-manifest jobs/runs.sql sha256=22697585fd787eecd46440d55f7e68b6096ccbffae106360d2eca48014e3fd98
-- functions_sql-manifest jobs/schedules.sql sha256=4e8e976a728a09a61379714146d22924855ca524ca7f4e2f392532bcc31e80d1
-- functions_sql-manifest jobs/sweep_requests.sql sha256=b71a7b97d2dec4579abcbd95477cd30cdcb2e1eb45123abd343bd2aaf4b2d948
-- functions_sql-manifest matching/eligibility.sql sha256=eff05764dacec6d36fe29bd5115957a4f5b6f99fc84ba99dc8ffc3a8d3e8c7e4
-- functions_sql-manifest matching/keywords.sql sha256=152d4fe0de3480e326b93190271c153a66f37f4f4cbf3b64bcc90821769a37a6
-- functions_sql-manifest matching/listing.sql sha256=3fe126794fb7ae8aeaac46108933767ecec0f7430e52b0c0fdf954eeeafeb649
-- functions_sql-manifest matching/metrics.sql sha256=16e0bfa047e423ebe70c19b3ca3e25ca809a7c0649361b46516eccb088b98145
-- functions_sql-manifest matching/presence.sql sha256=421df5980727f44db43fb1f9d2d00e506c103f9cf5a1c41dc5bc75ed7ebdfac7
-- functions_sql-manifest matching/ranking.sql sha256=79691d024eea19b79204a38924e802489e5bcd816e4517eec8bb57b87eb0be94
-- functions_sql-manifest matching/routing.sql sha256=b3a2f3e4e7eeed9b1c5a4d10136809fb13dd99f0d72fa5018c2384fc8a52a7cf
-- functions_sql-manifest micro/caps.sql sha256=09d21b2135fa52edd7a9e0f23450755c2393a33a9ad0d19d54a0cc643a10a10a
-- functions_sql-manifest micro/clock.sql sha256=4eb4a4e6af7d64879a0bba9e7377c64ee1297da824edb94e3cdfc9393ea7d280
-- functions_sql-manifest micro/dashboards.sql sha256=87de41f51896fe6618f4546f3232db8ebc05fe1321b1368be3738ed7ec7adfa9
-- functions_sql-manifest micro/settings.sql sha256=493874142af29110c71f935052e330a06823ec4d0a1eaa08b0c273666ea539fd
-- functions_sql-manifest payments/admin.sql sha256=1e117ff190427ab5d40ab22de5fc00ab39dc4e8c7ae9c0f8063d3463907e2f1a
-- functions_sql-manifest payments/checkout.sql sha256=6b2edd65f5b39f3aa6a8673a415c393753c9fd18a44e634ce746636ae401f384
-- functions_sql-manifest payments/connect.sql sha256=a8b79815e5f06ce6f00f3f5f82767bb9579e5e9c5f750338fc5c905c866b306d
-- functions_sql-manifest payments/credit.sql sha256=46ca316d088673f86ba57da14e97a14d761a4570debc1f3ad5d74e2538deb54f
-- functions_sql-manifest payments/helpers.sql sha256=564335851c5012a83791aa07b04ab1e2be627799d5b7fb91e995d57776037964
-- functions_sql-manifest payments/integrity.sql sha256=13795330ae99c92e63c7033ece7f02289a627ad3178c354ec67f339917bef043
-- functions_sql-manifest payments/refunds.sql sha256=9540ac9af6a807956c3a22edcd20aea9a30bbddb0900b8c42d80ee3886f0ca8a
-- functions_sql-manifest payments/settlement.sql sha256=61eab335038603d3c5ca74c4d5482699ff096571f76b57d4ec1be1fe4f84f015
-- functions_sql-manifest payments/stripe_events.sql sha256=19f646e133262b47e99dbe1c8ff74e408899abaee620c4a62c9b2ea91c099792
-- functions_sql-manifest payments/stripe_worker.sql sha256=975d130e426303bdea81476466bee8043ca0f20ec5192fbf1845a1fb8db84265
-- functions_sql-manifest reviews/prompts.sql sha256=e3c52363528fd28863d3b82dba2a77c539334fee239d433a2c08860bc8182791
-- functions_sql-manifest reviews/public_view.sql sha256=3163f057402af1cc7203ef9ca04b483045d3e1e48322d23e5b7deb6c30c03414
-- functions_sql-manifest reviews/reputation.sql sha256=94a660258d69a38250c8f5efcd36415d5d0e8347bec1a6c772634db1fe37054a
-- functions_sql-manifest reviews/reviews.sql sha256=acb29b4bdf4a2cccae60ad261d0aebd3b2c0ec8dd85824ac9060ecc5d46cad36
-- functions_sql-manifest rooms/access.sql sha256=a07718bc391f20859bd2562f9ed876e7465f94d1363c6673677a15292db0ce36
-- functions_sql-manifest rooms/extensions.sql sha256=ecdb7236fec9d57e29a438797584ac830db6c0cf66795c8b03df65da3635e495
-- functions_sql-manifest rooms/livekit_events.sql sha256=cc2b9fea2937b577fdb85e91e226156f3d7dd339706f5a61c3892c359d9a4e4a
-- functions_sql-manifest rooms/timers.sql sha256=5265ead1f8b4bfd63c4236d6fc0d07afe4bc0053d21060682f6d557b921261c8
-- functions_sql-manifest scheduling/availability_rpc.sql sha256=6ba1e8bdbaf284ff3c92a76157bc70f073d3a842761f80369e14aa6cebf35514
-- functions_sql-manifest scheduling/booking_rpc.sql sha256=fd78b54227728a48cd2ea95a1fb64e3d5389e40fdd95ea5070ff511d77f5e4f4
-- functions_sql-manifest scheduling/calendar.sql sha256=6100fcc60a2a22bf1e09c2b682833fb40ba154ad5e9064b7c0bcd8c53b3a8324
-- functions_sql-manifest scheduling/changes.sql sha256=aefc0baa5011c8d6243dc426251306b273c06e0e3b8cfb8fc629d5c258ae32c9
-- functions_sql-manifest scheduling/committed_time.sql sha256=ddd38c89b02e59607f7f40768eae0c22b177f351729f61bf8b9c6c5b3784f553
-- functions_sql-manifest scheduling/holds.sql sha256=80e66dfab8e5e885da721fd24e96a859f0414b15c115b629c3713175da08cd35
-- functions_sql-manifest scheduling/jobs.sql sha256=0e6312d573231b426c54900221c5b0ecbf53894ff7a9f634acf5d59fec14b64a
-- functions_sql-manifest scheduling/open_time.sql sha256=4a300a2863905f3ba4bac94f8c68b972ce223b96c2d83e3c9b53abc4b0d02805
-- functions_sql-manifest scheduling/reminders.sql sha256=025401df24f13a2de6d28c5ef71abd2134b287a87e25f0a98b395e69bc743734
-- functions_sql-manifest scheduling/rules.sql sha256=77e8204836c14debf06ee1933b26252a7fee4d3089fe7720ddf73d0adbed1af3
-- functions_sql-manifest trust/contact.sql sha256=2b275dd2b4e2e3d085c93fe61a636a4b0d8e32dd2f11971a93c8b2c85956c5e0
-- functions_sql-manifest trust/delivery.sql sha256=a44ca8da36bdde676c007841e25980139b23945eab7fe6f5580feec057c61d03
-- functions_sql-manifest trust/limits.sql sha256=f8317282989aefc92e368510883453bceea024dbaaae3d9836d326ad0a5328b6
-- functions_sql-manifest trust/pricing.sql sha256=3075961d25ecc4ccd99e6bbf25ad3012a836d5697935c502ed26095ec7359950
-- functions_sql-manifest trust/rate_limit.sql sha256=dc51a19ec7cff8e1b01d341ec68e6f3c11de7c17d23ef7185b0b0c79850bcb2c
-- functions_sql-manifest trust/standing.sql sha256=9bd4e9285f6eaef814fee4f492354878c824fe6cd88f0c76005eab6032938f80
-- functions_sql-manifest trust/waiver.sql sha256=e55e17a34963e554f36bec304c2212fe7765268192081a2d2502a28c9ca38b41
