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
  -- 7. journey: the summary window, a follow-up's thread, the CRM record  journey/hooks.sql
  --    and the recommendation rules of a delivered session
  perform private.journey_on_session_completed(v_session.id, v_delivery);

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
  -- 6. journey: cancelled by an admin: the customer is told               journey/messages.sql
  perform private.messages_on_session_cancelled(p_session_id, v_from);

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
    -- 4. journey: the customer is told, with the amount refunded         journey/messages.sql
    perform private.messages_on_request_expired(p_session_id, p_now);
  end if;

  perform private.lifecycle_actor_restore(v_prev_actor);
  return v_expired > 0;
end
$$;
revoke execute on function private.expire_request(uuid, text, timestamptz, text, text) from public;
grant execute on function private.expire_request(uuid, text, timestamptz, text, text) to service_role;
