-- journey: supabase/functions_sql/ as of this migration, written by `autodoctor db commit`.
-- Whole files, re-runnable, in path order; then the drops of what they no longer define.
-- Edit the files in supabase/functions_sql/, never this migration (see docs/migrations.md).
set check_function_bodies = off;

-- >>> functions_sql core/lifecycle.sql sha256=5f3ed2f9a8e654d5ca93bbf7edf248cd364e4ce5a123279775841ea40f774886
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
  -- 5. emails: session_ended (the summary is emailed on submit)          jobs/emails.sql
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
-- <<< functions_sql core/lifecycle.sql

-- >>> functions_sql jobs/emails.sql sha256=b143b84726f6a930f3e53cd3b60f284b256b874ae0607350a333069d929dccb4
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

-- Lifecycle step (core/lifecycle.sql): a completed session tells the customer. The mechanic's
-- summary is emailed when the mechanic submits it (submit_summary, journey/summaries.sql), not here.
create or replace function private.emails_on_session_completed(p_session_id uuid) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_s public.sessions;
begin
  select * into v_s from public.sessions where id = p_session_id;
  perform private.enqueue_email('session_ended', v_s.customer_id, v_s.id);
end
$$;
revoke execute on function private.emails_on_session_completed(uuid) from public;
grant execute on function private.emails_on_session_completed(uuid) to service_role;
-- <<< functions_sql jobs/emails.sql

-- >>> functions_sql journey/crm.sql sha256=ad947defb07bf2514d234e48196f06c8003de9198be44edafd931324da9eed77
-- Journey: CRM interactions (docs/journey.md#interactions-and-the-funnel).
--
-- Every interaction is recorded by the database's own events: the triggers below (an intake, a
-- filed request or booked slot, a review, a payment), the lifecycle step of a completed session
-- (hooks.sql: session_delivered), and the RPCs of the other parts of the journey (a summary
-- viewed, a recommendation shown, clicked or purchased, a follow-up asked). No client writes the
-- table, so no customer can add to the funnel or to another customer's timeline.

-- Records one interaction of a customer. An event that happens once per thing (an intake created,
-- a request filed or a session delivered per session, a review, a payment, a follow-up or a
-- purchased recommendation per subject) is recorded once: the unique indexes of crm_interactions
-- turn a repeat (a webhook delivered twice, a retried job, the backfill run again) into nothing.
create or replace function private.crm_record(
  p_customer_id uuid, p_kind text, p_occurred_at timestamptz, p_intake_id uuid, p_session_id uuid,
  p_subject_id uuid, p_data jsonb default '{}'
) returns void
language plpgsql security definer set search_path = ''
as $$
begin
  if p_customer_id is null then
    return;
  end if;
  insert into public.crm_interactions (customer_id, kind, occurred_at, intake_id, session_id, subject_id, data)
  values (p_customer_id, p_kind, coalesce(p_occurred_at, now()), p_intake_id, p_session_id, p_subject_id,
          coalesce(p_data, '{}'))
  on conflict do nothing;
end
$$;
revoke execute on function private.crm_record(uuid, text, timestamptz, uuid, uuid, uuid, jsonb) from public;
grant execute on function private.crm_record(uuid, text, timestamptz, uuid, uuid, uuid, jsonb) to service_role;

-- ---------------------------------------------------------------------------------------------
-- The triggers. Each stamps the interaction with the transaction's time (now()): a client never
-- chooses when its interaction happened.
-- ---------------------------------------------------------------------------------------------
-- intake_created: a customer wrote an intake (insert into public.intakes)
create or replace function private.tg_crm__intake_created() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  perform private.crm_record(new.customer_id, 'intake_created', now(), new.id, null, null,
                             jsonb_build_object('plan', new.plan_code));
  return null;
end
$$;
revoke execute on function private.tg_crm__intake_created() from public;
drop trigger if exists _700_crm on public.intakes;
create trigger _700_crm after insert on public.intakes
  for each row execute function private.tg_crm__intake_created();

-- request_filed: a request was filed (request_session, checkout, credit), with its session's intake
create or replace function private.tg_crm__request_filed() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  perform private.crm_record(new.customer_id, 'request_filed', now(),
                             (select s.intake_id from public.sessions s where s.id = new.session_id), new.session_id,
                             null, jsonb_build_object('plan', new.plan_code, 'session_type', new.session_type,
                                                      'booked', false));
  return null;
end
$$;
revoke execute on function private.tg_crm__request_filed() from public;
drop trigger if exists _700_crm on public.session_requests;
create trigger _700_crm after insert on public.session_requests
  for each row execute function private.tg_crm__request_filed();

-- request_filed, booked: a slot booked with a mechanic is a scheduled session without a request
-- (scheduling/holds.sql); it is the same step of the funnel
create or replace function private.tg_crm__session_booked() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  perform private.crm_record(new.customer_id, 'request_filed', now(), new.intake_id, new.id, null,
                             jsonb_build_object('plan', new.plan_code, 'session_type', new.session_type,
                                                'booked', true));
  return null;
end
$$;
revoke execute on function private.tg_crm__session_booked() from public;
drop trigger if exists _700_crm on public.sessions;
create trigger _700_crm after insert on public.sessions
  for each row when (new.status = 'scheduled') execute function private.tg_crm__session_booked();

-- review_written: a customer reviewed a delivered session (submit_review's first submit; an edit
-- updates the row and is not a new review)
create or replace function private.tg_crm__review_written() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  perform private.crm_record(new.customer_id, 'review_written', now(),
                             (select s.intake_id from public.sessions s where s.id = new.session_id), new.session_id,
                             new.id, jsonb_build_object('rating', new.rating));
  return null;
end
$$;
revoke execute on function private.tg_crm__review_written() from public;
drop trigger if exists _700_crm on public.mechanic_reviews;
create trigger _700_crm after insert on public.mechanic_reviews
  for each row execute function private.tg_crm__review_written();

-- purchase: money received. A payment row exists only once it succeeded: a card payment is
-- inserted by the Stripe webhook's checkout.session.completed (payments/stripe_events.sql, once
-- per booking), a credit payment by pay_booking_with_credit (payments/credit.sql). A refund later
-- does not remove the purchase. The subject is the payment; data: amount, currency, plan (null for
-- a session extension), method, and whether it extends a session already bought.
create or replace function private.tg_crm__purchase() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_booking public.bookings;
begin
  select * into v_booking from public.bookings where id = new.booking_id;
  perform private.crm_record(new.customer_id, 'purchase', now(),
                             coalesce(v_booking.intake_id,
                                      (select s.intake_id from public.sessions s where s.id = new.session_id)),
                             new.session_id, new.id,
                             jsonb_build_object('amount_cents', new.amount_cents, 'currency', new.currency,
                                                'plan', v_booking.plan_code, 'method', new.method,
                                                'extension', new.extension_id is not null));
  return null;
end
$$;
revoke execute on function private.tg_crm__purchase() from public;
drop trigger if exists _700_crm on public.payments;
create trigger _700_crm after insert on public.payments
  for each row execute function private.tg_crm__purchase();

-- A card payment is recorded before the session it pays for exists (the webhook creates the
-- session right after): the purchase takes the session when the payment does.
create or replace function private.tg_crm__purchase_session() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  update public.crm_interactions c
  set session_id = new.session_id,
      intake_id = coalesce(c.intake_id, (select s.intake_id from public.sessions s where s.id = new.session_id))
  where c.kind = 'purchase' and c.subject_id = new.id and c.session_id is null;
  return null;
end
$$;
revoke execute on function private.tg_crm__purchase_session() from public;
drop trigger if exists _710_crm_session on public.payments;
create trigger _710_crm_session after update of session_id on public.payments
  for each row when (old.session_id is null and new.session_id is not null)
  execute function private.tg_crm__purchase_session();
-- <<< functions_sql journey/crm.sql

-- >>> functions_sql journey/email_events.sql sha256=b51ce4a220f681ed20c686fa4c446662e0c2a5934a48c89aa63291f5e0abf175
-- Journey: delivery events of our email (docs/journey.md, "Delivery events"). Resend's signed
-- webhook events (verified by functions/webhooks/resend.py) are stored once in
-- private.resend_events and applied to the email they name (private.email_deliveries, recorded by
-- the sender with the id Resend gave it). A hard bounce or a complaint suppresses the address for
-- marketing email (private.email_suppressions); transactional email still goes.

-- ---------------------------------------------------------------------------------------------
-- Statuses and their order
-- ---------------------------------------------------------------------------------------------
-- The order a delivery's status only moves forward in. Events arrive in any order and more than
-- once, so the status is the furthest one reached, never the last one received: a late
-- `delivered` after `bounced` leaves it bounced; a complaint (which follows a delivery) is the
-- end. Each event still stamps its own time (first occurrence) whatever the status.
create or replace function private.email_status_rank(p_status text) returns int
language sql immutable parallel safe set search_path = ''
as $$
  select case p_status
    when 'sent' then 0
    when 'delivery_delayed' then 1
    when 'delivered' then 2
    when 'bounced' then 3
    when 'complained' then 4
  end
$$;
revoke execute on function private.email_status_rank(text) from public;
grant execute on function private.email_status_rank(text) to service_role;

-- An address as suppressions store it.
create or replace function private.email_address_key(p_address text) returns text
language sql immutable parallel safe set search_path = ''
as $$
  select lower(btrim(p_address))
$$;
revoke execute on function private.email_address_key(text) from public;
grant execute on function private.email_address_key(text) to service_role;

-- The active suppression of an address ({reason, at}), or null. Read by the sender at delivery
-- time for every non-transactional email.
create or replace function private.email_suppression(p_address text) returns jsonb
language sql stable security definer set search_path = ''
as $$
  select jsonb_build_object('reason', s.reason, 'at', s.created_at)
  from private.email_suppressions s
  where s.address = private.email_address_key(p_address) and s.lifted_at is null
$$;
revoke execute on function private.email_suppression(text) from public;
grant execute on function private.email_suppression(text) to service_role;

-- A Resend bounce is hard when its type says so (Resend passes on the receiving side's
-- classification: `Permanent`; anything else — `Transient`, `Undetermined`, none — is soft).
create or replace function private.resend_bounce_is_hard(p_bounce jsonb) returns boolean
language sql immutable parallel safe set search_path = ''
as $$
  select jsonb_typeof(p_bounce) = 'object' and jsonb_typeof(p_bounce -> 'type') = 'string'
         and lower(p_bounce ->> 'type') in ('permanent', 'hard')
$$;
revoke execute on function private.resend_bounce_is_hard(jsonb) from public;
grant execute on function private.resend_bounce_is_hard(jsonb) to service_role;

-- The event's created_at as a time; null unless an ISO 8601 timestamp.
create or replace function private.resend_event_time(p_value jsonb) returns timestamptz
language plpgsql immutable set search_path = ''
as $$
begin
  if jsonb_typeof(p_value) <> 'string' or char_length(p_value #>> '{}') > 64
     or (p_value #>> '{}') !~ '^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}(:?\d{2})?)?$' then
    return null;
  end if;
  return (p_value #>> '{}')::timestamptz;
exception when others then
  return null;
end
$$;
revoke execute on function private.resend_event_time(jsonb) from public;
grant execute on function private.resend_event_time(jsonb) to service_role;

-- ---------------------------------------------------------------------------------------------
-- One event's effect on its email
-- ---------------------------------------------------------------------------------------------
create or replace function private.apply_resend_event(p_event_id text, p_type text, p_data jsonb,
                                                      p_at timestamptz)
returns text
language plpgsql security definer set search_path = ''
as $$
declare
  v_d private.email_deliveries;
  v_status text;
  v_reason text;
begin
  v_status := case p_type
    when 'email.sent' then 'sent'
    when 'email.delivery_delayed' then 'delivery_delayed'
    when 'email.delivered' then 'delivered'
    when 'email.bounced' then 'bounced'
    when 'email.complained' then 'complained'
  end;
  if v_status is null then
    return 'ignored';
  end if;
  select * into v_d from private.email_deliveries where resend_id = p_data ->> 'email_id' for update;
  if not found then
    return 'unknown_email';
  end if;
  update private.email_deliveries
  set status = case when private.email_status_rank(v_status) > private.email_status_rank(status)
                    then v_status else status end,
      bounce_type = case when v_status = 'bounced' and bounced_at is null
                         then left(p_data #>> '{bounce,type}', 100) else bounce_type end,
      delivery_delayed_at = case when v_status = 'delivery_delayed' then least(delivery_delayed_at, p_at)
                                 else delivery_delayed_at end,
      delivered_at = case when v_status = 'delivered' then least(delivered_at, p_at) else delivered_at end,
      bounced_at = case when v_status = 'bounced' then least(bounced_at, p_at) else bounced_at end,
      complained_at = case when v_status = 'complained' then least(complained_at, p_at) else complained_at end,
      updated_at = now()
  where id = v_d.id;
  -- a hard bounce or a complaint: no more marketing email to that address (one active row)
  v_reason := case
    when v_status = 'complained' then 'complaint'
    when v_status = 'bounced' and private.resend_bounce_is_hard(p_data -> 'bounce') then 'hard_bounce'
  end;
  if v_reason is not null then
    insert into private.email_suppressions (address, reason, resend_event_id, delivery_id, created_at)
    values (private.email_address_key(v_d.to_address), v_reason, p_event_id, v_d.id, p_at)
    on conflict (address) where lifted_at is null do nothing;
  end if;
  if v_status = 'sent' and v_d.status = 'sent' then
    return 'no_change';
  end if;
  return 'applied';
end
$$;
revoke execute on function private.apply_resend_event(text, text, jsonb, timestamptz) from public;
grant execute on function private.apply_resend_event(text, text, jsonb, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- The webhook's one transaction: check the event → ledger row (insert on conflict do nothing) →
-- lock it → a processed event is a duplicate (nothing changes) → else apply it and mark it
-- processed. Events of one email serialize on it, with the sender's record of that email.
-- ---------------------------------------------------------------------------------------------
create or replace function private.handle_resend_event(p_id text, p_event jsonb, p_now timestamptz default now())
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_type text;
  v_data jsonb;
  v_email_id text;
  v_created timestamptz;
  v_row private.resend_events;
  v_outcome text;
begin
  if p_id is null or p_id !~ '^[A-Za-z0-9_.:-]{1,255}$' then
    perform private.raise_error('invalid_input', 'the svix-id header is not an event id');
  end if;
  if p_event is null or jsonb_typeof(p_event) <> 'object' then
    perform private.raise_error('invalid_input', 'the event must be a JSON object');
  end if;
  if jsonb_typeof(p_event -> 'type') is distinct from 'string'
     or char_length(p_event ->> 'type') not between 1 and 200 then
    perform private.raise_error('invalid_input', 'type: must be a string of 1 to 200 characters');
  end if;
  v_type := p_event ->> 'type';
  v_created := private.resend_event_time(p_event -> 'created_at');
  if v_created is null then
    perform private.raise_error('invalid_input', 'created_at: must be an ISO 8601 timestamp');
  end if;
  v_data := p_event -> 'data';
  if jsonb_typeof(v_data) is distinct from 'object' then
    perform private.raise_error('invalid_input', 'data: must be an object');
  end if;
  if v_type like 'email.%' then
    if jsonb_typeof(v_data -> 'email_id') is distinct from 'string'
       or char_length(v_data ->> 'email_id') not between 1 and 200 then
      perform private.raise_error('invalid_input', 'data.email_id: must be a string of 1 to 200 characters');
    end if;
    v_email_id := v_data ->> 'email_id';
    if v_data ? 'bounce' and jsonb_typeof(v_data -> 'bounce') not in ('object', 'null') then
      perform private.raise_error('invalid_input', 'data.bounce: must be an object');
    end if;
    perform pg_advisory_xact_lock(hashtextextended('autodoctor.resend_email:' || v_email_id, 0));
  end if;
  insert into private.resend_events (id, type, email_id, created, payload, received_at)
  values (p_id, v_type, v_email_id, v_created, p_event, p_now)
  on conflict (id) do nothing;
  select * into v_row from private.resend_events where id = p_id for update;
  if v_row.processed_at is not null then
    return jsonb_build_object('event_id', p_id, 'type', v_row.type, 'outcome', 'duplicate');
  end if;
  v_outcome := private.apply_resend_event(p_id, v_type, v_data, v_created);
  update private.resend_events set processed_at = p_now, outcome = v_outcome where id = p_id;
  return jsonb_build_object('event_id', p_id, 'type', v_type, 'outcome', v_outcome);
end
$$;
revoke execute on function private.handle_resend_event(text, jsonb, timestamptz) from public;
grant execute on function private.handle_resend_event(text, jsonb, timestamptz) to service_role;

comment on function private.handle_resend_event(text, jsonb, timestamptz) is
  'One verified Resend event, applied once (ledger private.resend_events, keyed by svix-id).';

-- ---------------------------------------------------------------------------------------------
-- The sender's record of an email Resend accepted (shared/email.py), once per Resend id: a retry
-- of the job gets the same id back (the job's key is Resend's idempotency key). Events that came
-- before it (stored as unknown_email) are applied now, in their own order.
-- ---------------------------------------------------------------------------------------------
create or replace function private.record_email_sent(p_resend_id text, p_dedupe_key text, p_template text,
                                                     p_user_id uuid, p_session_id uuid, p_to text,
                                                     p_now timestamptz default now())
returns bigint
language plpgsql security definer set search_path = ''
as $$
declare
  v_id bigint;
  v_event record;
begin
  if p_resend_id is null or char_length(p_resend_id) not between 1 and 200 or p_template is null or p_to is null then
    perform private.raise_error('invalid_input', 'a sent email needs its Resend id, template and recipient');
  end if;
  perform pg_advisory_xact_lock(hashtextextended('autodoctor.resend_email:' || p_resend_id, 0));
  insert into private.email_deliveries (resend_id, outbox_id, dedupe_key, template, user_id, session_id, to_address,
                                        sent_at, updated_at)
  values (p_resend_id, (select o.id from private.outbox o where o.dedupe_key = p_dedupe_key), p_dedupe_key,
          left(p_template, 100), (select u.id from auth.users u where u.id = p_user_id),
          (select s.id from public.sessions s where s.id = p_session_id), left(p_to, 320), p_now, p_now)
  on conflict (resend_id) do nothing
  returning id into v_id;
  if v_id is null then
    return (select d.id from private.email_deliveries d where d.resend_id = p_resend_id);
  end if;
  for v_event in
    select e.id, e.type, e.payload -> 'data' as data, e.created from private.resend_events e
    where e.email_id = p_resend_id and e.outcome = 'unknown_email'
    order by e.created, e.received_at, e.id
  loop
    update private.resend_events
    set outcome = private.apply_resend_event(v_event.id, v_event.type, v_event.data, v_event.created)
    where id = v_event.id;
  end loop;
  return v_id;
end
$$;
revoke execute on function private.record_email_sent(text, text, text, uuid, uuid, text, timestamptz) from public;
grant execute on function private.record_email_sent(text, text, text, uuid, uuid, text, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Admin: suppressions, a user's emails with their delivery history, and lifting a suppression
-- ---------------------------------------------------------------------------------------------
create or replace function public.admin_email_suppressions(p_active_only boolean default true,
                                                           p_limit int default 100)
returns table (id bigint, address text, reason text, created_at timestamptz, resend_event_id text,
               template text, user_id uuid, lifted_at timestamptz, lifted_by uuid, lift_note text)
language plpgsql stable security definer set search_path = ''
as $$
begin
  perform private.require_admin();
  if p_active_only is null or p_limit is null or p_limit < 1 or p_limit > 1000 then
    perform private.raise_error('invalid_input', 'p_active_only is required; p_limit 1..1000');
  end if;
  return query
  select s.id, s.address, s.reason, s.created_at, s.resend_event_id, d.template, d.user_id, s.lifted_at,
         s.lifted_by, s.lift_note
  from private.email_suppressions s
  left join private.email_deliveries d on d.id = s.delivery_id
  where not p_active_only or s.lifted_at is null
  order by s.created_at desc, s.id desc
  limit p_limit;
end
$$;
revoke execute on function public.admin_email_suppressions(boolean, int) from public, anon;
grant execute on function public.admin_email_suppressions(boolean, int) to authenticated, service_role;

create or replace function public.admin_email_deliveries(p_user_id uuid, p_limit int default 100)
returns table (id bigint, template text, session_id uuid, to_address text, resend_id text, status text,
               bounce_type text, sent_at timestamptz, delivery_delayed_at timestamptz, delivered_at timestamptz,
               bounced_at timestamptz, complained_at timestamptz, suppressed boolean, events jsonb)
language plpgsql stable security definer set search_path = ''
as $$
begin
  perform private.require_admin();
  perform private.require_arg('p_user_id', p_user_id);
  if p_limit is null or p_limit < 1 or p_limit > 1000 then
    perform private.raise_error('invalid_input', 'p_limit must be 1..1000');
  end if;
  return query
  select d.id, d.template, d.session_id, d.to_address, d.resend_id, d.status, d.bounce_type, d.sent_at,
         d.delivery_delayed_at, d.delivered_at, d.bounced_at, d.complained_at,
         private.email_suppression(d.to_address) is not null,
         coalesce((select jsonb_agg(jsonb_build_object('event_id', e.id, 'type', e.type, 'at', e.created,
                                                       'received_at', e.received_at, 'outcome', e.outcome)
                                    order by e.created, e.received_at)
                   from private.resend_events e where e.email_id = d.resend_id), '[]'::jsonb)
  from private.email_deliveries d
  where d.user_id = p_user_id
  order by d.sent_at desc, d.id desc
  limit p_limit;
end
$$;
revoke execute on function public.admin_email_deliveries(uuid, int) from public, anon;
grant execute on function public.admin_email_deliveries(uuid, int) to authenticated, service_role;

create or replace function public.admin_lift_email_suppression(p_address text, p_note text default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_admin uuid := private.require_admin();
  v_address text;
  v_note text;
  v_row private.email_suppressions;
begin
  v_address := private.check_text('p_address', p_address, true);
  if char_length(v_address) > 320 then
    perform private.raise_error('invalid_input', 'p_address must be at most 320 characters');
  end if;
  v_note := private.check_text('p_note', p_note);
  if char_length(v_note) > 1000 then
    perform private.raise_error('invalid_input', 'p_note must be at most 1000 characters');
  end if;
  update private.email_suppressions
  set lifted_at = now(), lifted_by = v_admin, lift_note = v_note
  where address = private.email_address_key(v_address) and lifted_at is null
  returning * into v_row;
  if not found then
    perform private.raise_error('not_found', 'this address is not suppressed');
  end if;
  return jsonb_build_object('id', v_row.id, 'address', v_row.address, 'reason', v_row.reason,
                            'lifted_at', v_row.lifted_at);
end
$$;
revoke execute on function public.admin_lift_email_suppression(text, text) from public, anon;
grant execute on function public.admin_lift_email_suppression(text, text) to authenticated, service_role;
-- <<< functions_sql journey/email_events.sql

-- >>> functions_sql journey/follow_ups.sql sha256=ffeac60955f0629f182850ca5860cbfb58d3f8e34fa43ddd1e3711f0e97ba7b7
-- Journey: follow-up questions (docs/journey.md#follow-up-questions).
--
-- A customer asks a question about a session that ended completed and delivered, within
-- follow_ups.window of its end. The question becomes a small chat session of its own (plan
-- follow_up, capped like a micro session), with its own intake (the parent's vehicle, the question
-- as its concern), linked to its parent (sessions.parent_session_id, public.follow_ups). It is
-- offered to the parent's mechanic alone for follow_ups.same_mechanic_window — the preferred
-- mechanic's exclusive window of matching (broadcast_at), with this setting as its length — and
-- then routed as usual. follow_ups.free_per_session are free per thread (the first session that is
-- not a follow-up and every follow-up descending from it); the next ones wait for payment through
-- create_checkout (follow_up_id). A free follow-up neither needs nor uses the account's free
-- session; the open-request cap, the preferred-mechanic cap, intakes per hour and the rate limit
-- apply as to any request. Lock order: the customer's limits, then the intake, then the credit.

-- ---------------------------------------------------------------------------------------------
-- Guards and the same-mechanic window
-- ---------------------------------------------------------------------------------------------
-- The follow_up plan is filed only as a follow-up: request_session or a plain checkout of it would
-- buy a cheap session with no thread behind it.
create or replace function private.tg_sessions__follow_up_plan() returns trigger
language plpgsql set search_path = ''
as $$
begin
  if new.plan_code = 'follow_up' and new.parent_session_id is null then
    perform private.raise_error('invalid_input', 'the follow_up plan is asked with ask_follow_up on a delivered session');
  end if;
  if new.parent_session_id is not null and new.plan_code <> 'follow_up' then
    perform private.raise_error('invalid_input', 'a follow-up session uses the follow_up plan');
  end if;
  return new;
end
$$;
revoke execute on function private.tg_sessions__follow_up_plan() from public;
drop trigger if exists _020_follow_up_plan on public.sessions;
create trigger _020_follow_up_plan before insert or update of plan_code, parent_session_id on public.sessions
  for each row execute function private.tg_sessions__follow_up_plan();

-- A follow-up's request keeps the preferred mechanic's exclusive window of matching, with
-- follow_ups.same_mechanic_window as its length (runs after _050_routing_defaults set broadcast_at).
create or replace function private.tg_session_requests__follow_up_window() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if new.preferred_mechanic_id is not null
     and exists (select 1 from public.sessions s where s.id = new.session_id and s.parent_session_id is not null) then
    new.broadcast_at := new.created_at + private.setting_interval('follow_ups.same_mechanic_window');
  end if;
  return new;
end
$$;
revoke execute on function private.tg_session_requests__follow_up_window() from public;
drop trigger if exists _060_follow_up_window on public.session_requests;
create trigger _060_follow_up_window before insert on public.session_requests
  for each row execute function private.tg_session_requests__follow_up_window();

-- ---------------------------------------------------------------------------------------------
-- Counting and filing
-- ---------------------------------------------------------------------------------------------
-- Free follow-ups used in a thread: filed free follow-ups, except one that ended cancelled without
-- any mechanic having it (expired, or cancelled before anyone took it), which gave nothing — the
-- same rule as the account's free session. One a mechanic took counts even when cancelled later.
create or replace function private.follow_ups_free_used(p_root_session_id uuid) returns int
language sql stable security definer set search_path = ''
as $$
  select count(*)::int
  from public.follow_ups f
  join public.sessions s on s.id = f.session_id
  where f.root_session_id = p_root_session_id and f.free and f.status = 'filed'
    and not (s.status = 'cancelled' and s.mechanic_id is null)
$$;
revoke execute on function private.follow_ups_free_used(uuid) from public;
grant execute on function private.follow_ups_free_used(uuid) to service_role;

-- Creates the session (pending, plan follow_up, linked to its parent) and its request (offered to
-- the parent's mechanic first when still approved) of a follow-up asked or paid, and records
-- follow_up_asked. The customer's limits are checked again (its lock is re-entrant). Returns
-- {session_id, request_id}. A follow-up filed buys the parent's `follow_up` recommendation
-- (journey/recommendations.sql) when the customer was shown it.
create or replace function private.file_follow_up(p_follow_up_id uuid, p_price_cents int, p_now timestamptz default now())
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_fu public.follow_ups;
  v_parent public.sessions;
  v_plan public.service_plans;
  v_intake public.intakes;
  v_preferred uuid;
  v_session_id uuid;
  v_request_id uuid;
begin
  select * into v_fu from public.follow_ups where id = p_follow_up_id;
  if not found then
    perform private.raise_error('not_found', 'no such follow-up');
  end if;
  select * into v_parent from public.sessions where id = v_fu.parent_session_id;
  v_preferred := (select m.id from public.mechanics m where m.id = v_parent.mechanic_id and m.status = 'approved');
  perform private.check_open_request_limits(v_fu.customer_id, v_preferred, p_now);
  select * into v_fu from public.follow_ups where id = p_follow_up_id for update;
  if v_fu.status <> 'pending_payment' then
    perform private.raise_error('conflict', 'this follow-up was filed already');
  end if;
  v_intake := private.check_booking_intake(v_fu.customer_id, v_fu.intake_id, null);
  select * into v_plan from public.service_plans where code = 'follow_up';

  insert into public.sessions (customer_id, plan_code, session_type, duration_type, planned_minutes, price_cents,
                               currency, specialist, intake_id, vehicle_id, status, status_changed_at,
                               parent_session_id)
  values (v_fu.customer_id, v_plan.code, v_plan.session_type, v_plan.duration_type, v_plan.minutes, p_price_cents,
          v_plan.currency, false, v_intake.id, v_intake.vehicle_id, 'pending', p_now, v_parent.id)
  returning id into v_session_id;
  begin
    insert into public.session_requests (session_id, customer_id, plan_code, session_type, status, status_changed_at,
                                         preferred_mechanic_id, specialist, vehicle_make, vehicle_model, vehicle_year,
                                         concern, created_at)
    values (v_session_id, v_fu.customer_id, v_plan.code, v_plan.session_type, 'pending', p_now, v_preferred, false,
            v_intake.vehicle_make, v_intake.vehicle_model, v_intake.vehicle_year, v_intake.concern, p_now)
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
  update public.follow_ups set status = 'filed', session_id = v_session_id, filed_at = p_now, price_cents = p_price_cents
  where id = v_fu.id;
  perform private.crm_record(v_fu.customer_id, 'follow_up_asked', p_now, v_intake.id, v_parent.id, v_fu.id,
                             jsonb_build_object('follow_up_session_id', v_session_id, 'root_session_id',
                                                v_fu.root_session_id, 'free', v_fu.free, 'price_cents', p_price_cents));
  -- the parent session's follow_up offer, when the customer was shown it, is bought by this follow-up
  perform private.recommendations_mark_purchased(v_fu.customer_id, 'follow_up', v_parent.id, v_fu.id);
  return jsonb_build_object('session_id', v_session_id, 'request_id', v_request_id);
end
$$;
revoke execute on function private.file_follow_up(uuid, int, timestamptz) from public;
grant execute on function private.file_follow_up(uuid, int, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- ask_follow_up
-- ---------------------------------------------------------------------------------------------
create or replace function public.ask_follow_up(p_session_id uuid, p_question text, p_photo_paths text[] default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_question text;
  v_photos text[] := coalesce(p_photo_paths, '{}');
  v_path text;
  v_parent public.sessions;
  v_parent_intake public.intakes;
  v_vehicle public.vehicles;
  v_root uuid;
  v_free boolean;
  v_price int;
  v_preferred uuid;
  v_intake_id uuid;
  v_fu public.follow_ups;
  v_ids jsonb;
begin
  -- input first
  perform private.require_arg('p_session_id', p_session_id);
  v_question := btrim(p_question);
  if v_question is null or v_question = '' then
    perform private.raise_error('invalid_input', 'p_question is required');
  end if;
  if char_length(v_question) < 3 or char_length(v_question) > 2000 then
    perform private.raise_error('invalid_input', 'p_question must be 3 to 2000 characters');
  end if;
  if cardinality(v_photos) > 10 then
    perform private.raise_error('invalid_input', 'at most 10 photos per follow-up question');
  end if;
  if array_position(v_photos, null) is not null
     or exists (select 1 from unnest(v_photos) p where char_length(p) not between 1 and 1024) then
    perform private.raise_error('follow_up_bad_photo', 'a photo path is empty or too long');
  end if;
  if (select count(distinct p) from unnest(v_photos) p) <> cardinality(v_photos) then
    perform private.raise_error('invalid_input', 'a photo is given twice');
  end if;

  -- the caller and the session: only its customer asks; a session it cannot see does not exist
  select * into v_parent from public.sessions where id = p_session_id;
  if not found or (v_parent.customer_id <> v_uid and v_parent.mechanic_id is distinct from v_uid) then
    perform private.raise_error('not_found', 'no such session');
  end if;
  if v_parent.customer_id <> v_uid then
    perform private.raise_error('not_allowed', 'only the customer of a session asks it a follow-up question');
  end if;
  perform private.require_waiver(v_uid);
  if v_parent.status <> 'completed' or v_parent.delivery is distinct from 'delivered' then
    perform private.raise_error('follow_up_not_available',
      format('the session is %s%s: only a delivered session takes follow-up questions', v_parent.status,
             case when v_parent.status = 'completed' then ' and ' || coalesce(v_parent.delivery, 'not delivered')
                  else '' end));
  end if;
  if now() > v_parent.ended_at + private.setting_interval('follow_ups.window') then
    perform private.raise_error('follow_up_window_closed',
      format('follow-up questions are taken for %s after the session ends',
             private.setting_interval('follow_ups.window')));
  end if;
  foreach v_path in array v_photos loop
    if not exists (select 1 from storage.objects o
                   where o.bucket_id = 'session-files' and o.name = v_path
                     and (storage.foldername(o.name))[1] = 'sessions'
                     and (storage.foldername(o.name))[2] = v_parent.id::text) then
      perform private.raise_error('follow_up_bad_photo',
        format('%L is not a file of session %s (bucket session-files, sessions/%s/…)', left(v_path, 200),
               v_parent.id, v_parent.id));
    end if;
  end loop;

  -- The customer's lock: the free count and the open-request cap are exact under concurrency.
  -- The one-open-request-per-preferred-mechanic cap is checked when the follow-up is filed (now
  -- when free, at checkout and payment otherwise): a question waiting for payment is no request.
  perform private.set_actor('customer');
  perform private.check_open_request_limits(v_uid, null, now());
  v_preferred := (select m.id from public.mechanics m where m.id = v_parent.mechanic_id and m.status = 'approved');
  v_root := coalesce((select f.root_session_id from public.follow_ups f where f.session_id = v_parent.id), v_parent.id);
  v_free := private.follow_ups_free_used(v_root) < private.setting_int('follow_ups.free_per_session');
  v_price := case when v_free then 0 else (select p.price_cents from public.service_plans p where p.code = 'follow_up') end;

  -- its own intake: the parent's vehicle and contact, the question as its concern
  select * into v_parent_intake from public.intakes where id = v_parent.intake_id;
  select * into v_vehicle from public.vehicles where id = v_parent.vehicle_id and owner_id = v_uid;
  insert into public.intakes (customer_id, vehicle_id, plan_code, concern, vehicle_make, vehicle_model, vehicle_year,
                              vin, odometer, plate, contact_name, contact_email, contact_phone, city)
  values (v_uid, v_vehicle.id, 'follow_up', v_question,
          coalesce(v_vehicle.make, v_parent_intake.vehicle_make), coalesce(v_vehicle.model, v_parent_intake.vehicle_model),
          coalesce(v_vehicle.year, v_parent_intake.vehicle_year), v_parent_intake.vin, v_parent_intake.odometer,
          v_parent_intake.plate, v_parent_intake.contact_name, v_parent_intake.contact_email,
          v_parent_intake.contact_phone, v_parent_intake.city)
  returning id into v_intake_id;

  insert into public.follow_ups (customer_id, parent_session_id, root_session_id, intake_id, question, photo_paths,
                                 free, price_cents, status)
  values (v_uid, v_parent.id, v_root, v_intake_id, v_question, v_photos, v_free, v_price, 'pending_payment')
  returning * into v_fu;
  if v_free then
    v_ids := private.file_follow_up(v_fu.id, 0, now());
  end if;
  return jsonb_build_object(
    'follow_up_id', v_fu.id, 'status', case when v_free then 'filed' else 'payment_required' end,
    'free', v_free, 'price_cents', v_price, 'currency', (select p.currency from public.service_plans p where p.code = 'follow_up'),
    'plan_code', 'follow_up', 'parent_session_id', v_parent.id, 'root_session_id', v_root, 'intake_id', v_intake_id,
    'session_id', v_ids ->> 'session_id', 'request_id', v_ids ->> 'request_id',
    'preferred_mechanic_id', case when v_free then v_preferred end,
    'broadcast_at', (select r.broadcast_at from public.session_requests r where r.id = (v_ids ->> 'request_id')::uuid));
end
$$;
revoke execute on function public.ask_follow_up(uuid, text, text[]) from public, anon;
grant execute on function public.ask_follow_up(uuid, text, text[]) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- Checkout of a follow-up past the free ones (create_checkout with follow_up_id)
-- ---------------------------------------------------------------------------------------------
-- Same answer shape as private.prepare_checkout. The price comes from the follow_up plan; credit
-- that covers it pays at once (the follow-up is filed); otherwise a pending card booking names the
-- follow-up, and the payment's webhook files it (private.file_paid_follow_up).
create or replace function private.prepare_follow_up_checkout(
  p_customer_id uuid, p_follow_up_id uuid, p_now timestamptz default now()
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_fu public.follow_ups;
  v_parent public.sessions;
  v_plan public.service_plans;
  v_price int;
  v_preferred uuid;
  v_booking public.bookings;
  v_balance int;
  v_ids jsonb;
  v_payment_id uuid;
begin
  if p_customer_id is null or p_follow_up_id is null then
    perform private.raise_error('invalid_input', 'follow_up_id is required');
  end if;
  select * into v_fu from public.follow_ups where id = p_follow_up_id and customer_id = p_customer_id;
  if not found then
    perform private.raise_error('not_found', 'no such follow-up');
  end if;
  perform private.require_waiver(p_customer_id);
  if v_fu.status <> 'pending_payment' then
    perform private.raise_error('conflict', format('the follow-up is %s, not pending payment', v_fu.status));
  end if;
  select * into v_parent from public.sessions where id = v_fu.parent_session_id;
  if p_now > v_parent.ended_at + private.setting_interval('follow_ups.window') then
    perform private.raise_error('follow_up_window_closed', 'the window for follow-up questions on this session has closed');
  end if;
  select * into v_plan from public.service_plans where code = 'follow_up';
  v_price := v_plan.price_cents;
  if v_price <= 0 then
    perform private.raise_error('invalid_input', 'the follow_up plan is free: nothing to pay');
  end if;
  v_preferred := (select m.id from public.mechanics m where m.id = v_parent.mechanic_id and m.status = 'approved');
  -- the customer's limits before any money moves (checked again when it is filed)
  perform private.check_open_request_limits(p_customer_id, v_preferred, p_now);
  perform private.check_booking_intake(p_customer_id, v_fu.intake_id, null);

  perform private.lock_credit(p_customer_id);
  v_balance := private.credit_balance(p_customer_id);
  if v_balance >= v_price then
    insert into public.bookings (customer_id, plan_code, intake_id, vehicle_id, preferred_mechanic_id, specialist,
                                 price_cents, currency, method, status, status_changed_at, follow_up_id)
    values (p_customer_id, v_plan.code, v_fu.intake_id, (select i.vehicle_id from public.intakes i where i.id = v_fu.intake_id),
            v_preferred, false, v_price, v_plan.currency, 'credit', 'pending', p_now, v_fu.id)
    returning * into v_booking;
    perform private.set_actor('customer', 'paid with credit');
    v_ids := private.file_follow_up(v_fu.id, v_price, p_now);
    update public.bookings set status = 'paid', session_id = (v_ids ->> 'session_id')::uuid, status_changed_at = p_now
    where id = v_booking.id;
    v_payment_id := private.pay_booking_with_credit(v_booking.id, 'follow-up question', p_now);
    return jsonb_build_object('mode', 'credit', 'booking_id', v_booking.id, 'payment_id', v_payment_id,
                              'session_id', v_ids ->> 'session_id', 'request_id', v_ids ->> 'request_id',
                              'follow_up_id', v_fu.id, 'price_cents', v_price, 'currency', v_plan.currency,
                              'credit_balance_cents', v_balance - v_price);
  end if;

  -- The same open checkout again (a double click, a retry): its URL is still good.
  select * into v_booking from public.bookings b
  where b.follow_up_id = v_fu.id and b.customer_id = p_customer_id and b.status = 'pending' and b.method = 'card'
    and b.price_cents = v_price and b.checkout_url is not null and b.expires_at > p_now + interval '5 minutes'
  order by b.created_at desc
  limit 1;
  if found then
    return jsonb_build_object('mode', 'stripe', 'reused', true, 'booking_id', v_booking.id, 'url', v_booking.checkout_url,
                              'price_cents', v_booking.price_cents, 'currency', v_booking.currency,
                              'follow_up_id', v_fu.id);
  end if;

  insert into public.bookings (customer_id, plan_code, intake_id, vehicle_id, preferred_mechanic_id, specialist,
                               price_cents, currency, method, status, status_changed_at, expires_at, follow_up_id)
  values (p_customer_id, v_plan.code, v_fu.intake_id, (select i.vehicle_id from public.intakes i where i.id = v_fu.intake_id),
          v_preferred, false, v_price, v_plan.currency, 'card', 'pending', p_now,
          p_now + private.setting_interval('payments.checkout_expires_after'), v_fu.id)
  returning * into v_booking;
  return jsonb_build_object('mode', 'stripe', 'reused', false, 'booking_id', v_booking.id,
                            'price_cents', v_price, 'currency', v_plan.currency, 'product_name', v_plan.name,
                            'plan_code', v_plan.code, 'follow_up_id', v_fu.id, 'customer_id', p_customer_id,
                            'customer_email', (select u.email from auth.users u where u.id = p_customer_id),
                            'expires_at', floor(extract(epoch from v_booking.expires_at))::bigint);
end
$$;
revoke execute on function private.prepare_follow_up_checkout(uuid, uuid, timestamptz) from public;
grant execute on function private.prepare_follow_up_checkout(uuid, uuid, timestamptz) to service_role;

-- The card payment of a follow-up's booking completed (payments/stripe_events.sql): the follow-up
-- is filed at the price paid, or a coded error makes the booking unfulfilled and refunded.
create or replace function private.file_paid_follow_up(p_booking_id uuid, p_amount_cents int, p_now timestamptz)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_booking public.bookings;
begin
  select * into v_booking from public.bookings where id = p_booking_id;
  if v_booking.follow_up_id is null then
    perform private.raise_error('not_found', 'no such follow-up booking');
  end if;
  perform private.lock_customer_limits(v_booking.customer_id);
  if (select f.status from public.follow_ups f where f.id = v_booking.follow_up_id for update) <> 'pending_payment' then
    perform private.raise_error('conflict', 'this follow-up was filed already');
  end if;
  return private.file_follow_up(v_booking.follow_up_id, p_amount_cents, p_now);
end
$$;
revoke execute on function private.file_paid_follow_up(uuid, int, timestamptz) from public;
grant execute on function private.file_paid_follow_up(uuid, int, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Lifecycle step (journey/hooks.sql): a completed follow-up session
-- ---------------------------------------------------------------------------------------------
-- A follow-up completes like the micro session it is (its cap, end_session, delivery evidence,
-- settlement). Nothing else is owed: the thread's free count reads the sessions' own status, and
-- the customer may ask again about the follow-up itself (it is a delivered session of the thread).
create or replace function private.follow_ups_on_session_completed(p_session_id uuid, p_delivery text) returns void
language plpgsql security definer set search_path = ''
as $$
begin
  null;
end
$$;
revoke execute on function private.follow_ups_on_session_completed(uuid, text) from public;
grant execute on function private.follow_ups_on_session_completed(uuid, text) to service_role;
-- <<< functions_sql journey/follow_ups.sql

-- >>> functions_sql journey/funnel.sql sha256=5b3c8672caaabd8ac657b194f79cd4a298aa5821d8c2638ffa1e1bc7f66251cf
-- Journey: the admin's funnel, retention and a customer's timeline, counted from crm_interactions
-- (docs/journey.md#interactions-and-the-funnel). Days are UTC days: a date d covers
-- [d 00:00 UTC, d+1 00:00 UTC), and a week starts on Monday 00:00 UTC.
--
-- The reports are volatile on purpose: the pre-request hook charges them to the admin rate class,
-- so a script cannot run the heaviest reads of the database in a loop.

-- Checks a report's range: both dates, from not after to, at most crm.report_max_days days (both
-- ends included), inside years 1970–9999 (so that to + 1 day is a timestamp).
create or replace function private.crm_check_range(p_from date, p_to date) returns void
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_max int := private.setting_int('crm.report_max_days');
begin
  if p_from is null or p_to is null then
    perform private.raise_error('report_range_invalid', 'p_from and p_to are required');
  end if;
  if p_from > p_to then
    perform private.raise_error('report_range_invalid', 'p_from is after p_to');
  end if;
  if p_from < date '1970-01-01' or p_to > date '9999-12-31' then
    perform private.raise_error('report_range_invalid', 'the dates must be between 1970-01-01 and 9999-12-31');
  end if;
  if p_to - p_from + 1 > v_max then
    perform private.raise_error('report_range_too_long', format('the range is at most %s days', v_max));
  end if;
end
$$;
revoke execute on function private.crm_check_range(date, date) from public;
grant execute on function private.crm_check_range(date, date) to authenticated, service_role;

-- n / d rounded to 4 decimals; null when d is 0 (no step before, no conversion)
create or replace function private.crm_ratio(p_n bigint, p_d bigint) returns numeric
language sql immutable set search_path = ''
as $$
  select case when coalesce(p_d, 0) = 0 then null else round(p_n::numeric / p_d, 4) end;
$$;
revoke execute on function private.crm_ratio(bigint, bigint) from public;
grant execute on function private.crm_ratio(bigint, bigint) to authenticated, service_role;

-- One cohort (or the totals) of admin_funnel, with the conversion of each step from the one before.
create or replace function private.crm_funnel_row(p_period date, p_intakes bigint, p_requested bigint,
                                                  p_delivered bigint, p_returned bigint, p_followed_up bigint,
                                                  p_repurchased bigint)
returns jsonb
language sql immutable set search_path = ''
as $$
  select jsonb_build_object(
    'period_start', p_period, 'intakes', p_intakes, 'requested', p_requested, 'delivered', p_delivered,
    'returned', p_returned, 'followed_up', p_followed_up, 'repurchased', p_repurchased,
    'conversion', jsonb_build_object(
      'intake_to_request', private.crm_ratio(p_requested, p_intakes),
      'request_to_delivered', private.crm_ratio(p_delivered, p_requested),
      'delivered_to_returned', private.crm_ratio(p_returned, p_delivered),
      'intake_to_returned', private.crm_ratio(p_returned, p_intakes)));
$$;
revoke execute on function private.crm_funnel_row(date, bigint, bigint, bigint, bigint, bigint, bigint) from public;
grant execute on function private.crm_funnel_row(date, bigint, bigint, bigint, bigint, bigint, bigint)
  to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- admin_funnel: cohorts of intakes by the UTC week (or month) of their intake_created, and for
-- each the intakes that went on to each step. Each step counts among the intakes of the step
-- before it, so the figures never grow down the funnel:
--   intakes    intake_created in [p_from, p_to] (not the intake a follow-up question creates)
--   requested  … with a request_filed of the intake (a request, or a booked slot)
--   delivered  … and a session_delivered of the intake
--   returned   … and, after that, a follow_up_asked on the intake (its intake_id, or the session of
--              one of its interactions) or a purchase by the same customer later than the intake's
--              first delivered session (an extension of a session is not a new purchase)
-- followed_up and repurchased split returned (an intake may be in both).
-- ---------------------------------------------------------------------------------------------
create or replace function public.admin_funnel(p_from date, p_to date, p_group text default 'week')
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_cohorts jsonb;
  v_totals jsonb;
begin
  perform private.require_admin();
  perform private.crm_check_range(p_from, p_to);
  if p_group is null or p_group not in ('week', 'month') then
    perform private.raise_error('report_group_unknown', 'p_group must be week or month');
  end if;

  -- set-based: each step is one pass over the interactions of the cohort's intakes (by intake_id
  -- or session_id, both indexed), never a query per intake
  with cohort as materialized (
    select c.intake_id, c.customer_id,
           date_trunc(p_group, c.occurred_at at time zone 'UTC')::date as period
    from public.crm_interactions c
    where c.kind = 'intake_created' and c.intake_id is not null
      -- a follow-up's own intake continues its parent's journey: it is that intake's follow-up
      -- step, not a new intake
      and not exists (select 1 from public.follow_ups fu where fu.intake_id = c.intake_id)
      and c.occurred_at >= p_from::timestamp at time zone 'UTC'
      and c.occurred_at < (p_to::timestamp + interval '1 day') at time zone 'UTC'
  ), of_intake as materialized (
    -- every interaction that carries one of the cohort's intakes
    select x.intake_id, x.kind, x.occurred_at, x.session_id
    from public.crm_interactions x
    join cohort k on k.intake_id = x.intake_id
  ), requested as (
    select distinct o.intake_id from of_intake o where o.kind = 'request_filed'
  ), delivered as (
    select o.intake_id, min(o.occurred_at) as delivered_at from of_intake o
    where o.kind = 'session_delivered' group by o.intake_id
  ), followed_up as (
    select o.intake_id from of_intake o where o.kind = 'follow_up_asked'
    union
    select o.intake_id
    from (select distinct o2.intake_id, o2.session_id from of_intake o2 where o2.session_id is not null) o
    join public.crm_interactions f on f.session_id = o.session_id and f.kind = 'follow_up_asked'
  ), last_purchase as (
    -- a purchase later than the delivery exists when the customer's latest one is later
    select p.customer_id, max(p.occurred_at) as last_at
    from public.crm_interactions p
    where p.kind = 'purchase' and p.data ->> 'extension' is distinct from 'true'
      and p.customer_id in (select k.customer_id from cohort k)
    group by p.customer_id
  ), counted as (
    select k.period,
           r.intake_id is not null as requested,
           r.intake_id is not null and d.intake_id is not null as delivered,
           r.intake_id is not null and d.intake_id is not null and f.intake_id is not null as followed_up,
           r.intake_id is not null and d.intake_id is not null and coalesce(lp.last_at > d.delivered_at, false)
             as repurchased
    from cohort k
    left join requested r on r.intake_id = k.intake_id
    left join delivered d on d.intake_id = k.intake_id
    left join (select distinct intake_id from followed_up) f on f.intake_id = k.intake_id
    left join last_purchase lp on lp.customer_id = k.customer_id
  ), per as (
    select c.period,
           count(*) as intakes,
           count(*) filter (where c.requested) as requested,
           count(*) filter (where c.delivered) as delivered,
           count(*) filter (where c.followed_up or c.repurchased) as returned,
           count(*) filter (where c.followed_up) as followed_up,
           count(*) filter (where c.repurchased) as repurchased
    from counted c
    group by grouping sets ((c.period), ())
  )
  select coalesce(jsonb_agg(private.crm_funnel_row(p.period, p.intakes, p.requested, p.delivered, p.returned,
                                                   p.followed_up, p.repurchased) order by p.period)
                    filter (where p.period is not null), '[]'),
         (select private.crm_funnel_row(null, t.intakes, t.requested, t.delivered, t.returned, t.followed_up,
                                        t.repurchased) - 'period_start'
          from per t where t.period is null)
  into v_cohorts, v_totals
  from per p;

  return jsonb_build_object('from', p_from, 'to', p_to, 'group', p_group, 'timezone', 'UTC',
                            'cohorts', coalesce(v_cohorts, '[]'),
                            'totals', coalesce(v_totals, private.crm_funnel_row(null, 0, 0, 0, 0, 0, 0) - 'period_start'));
end
$$;
revoke execute on function public.admin_funnel(date, date, text) from public, anon;
grant execute on function public.admin_funnel(date, date, text) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- admin_retention: customers by the UTC month of their first purchase ever (extensions are not
-- purchases of their own), kept when that first purchase falls in [p_from, p_to]; for 30 and 90
-- days, the customers whose window has fully elapsed (first purchase + N days ≤ now) and, of
-- those, the ones with a second purchase at most N days after the first. A customer whose window
-- is still open is in `customers` but in neither the eligible count nor the retained one: an open
-- window would count as "not retained" a customer who may still return.
-- ---------------------------------------------------------------------------------------------
create or replace function public.admin_retention(p_from date, p_to date)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_cohorts jsonb;
  v_totals jsonb;
  v_now timestamptz := now();
begin
  perform private.require_admin();
  perform private.crm_check_range(p_from, p_to);

  with ranked as (
    -- one pass: each purchase with the customer's next one
    select c.customer_id, c.occurred_at,
           row_number() over w as n,
           lead(c.occurred_at) over w as next_at
    from public.crm_interactions c
    where c.kind = 'purchase' and c.data ->> 'extension' is distinct from 'true'
    window w as (partition by c.customer_id order by c.occurred_at, c.id)
  ), firsts as (
    select f.customer_id, f.occurred_at as first_at, f.next_at as second_at,
           date_trunc('month', f.occurred_at at time zone 'UTC')::date as period
    from ranked f
    where f.n = 1
      and f.occurred_at >= p_from::timestamp at time zone 'UTC'
      and f.occurred_at < (p_to::timestamp + interval '1 day') at time zone 'UTC'
  ), per as (
    select f.period, count(*) as customers,
           count(*) filter (where f.first_at + interval '30 days' <= v_now) as eligible_30,
           count(*) filter (where f.first_at + interval '30 days' <= v_now
                              and f.second_at <= f.first_at + interval '30 days') as retained_30,
           count(*) filter (where f.first_at + interval '90 days' <= v_now) as eligible_90,
           count(*) filter (where f.first_at + interval '90 days' <= v_now
                              and f.second_at <= f.first_at + interval '90 days') as retained_90
    from firsts f
    group by grouping sets ((f.period), ())
  ), rows as (
    select p.period, jsonb_build_object(
             'period_start', p.period, 'customers', p.customers,
             'eligible_30', p.eligible_30, 'retained_30', p.retained_30,
             'rate_30', private.crm_ratio(p.retained_30, p.eligible_30),
             'eligible_90', p.eligible_90, 'retained_90', p.retained_90,
             'rate_90', private.crm_ratio(p.retained_90, p.eligible_90)) as j
    from per p
  )
  select coalesce(jsonb_agg(r.j order by r.period) filter (where r.period is not null), '[]'),
         (select t.j - 'period_start' from rows t where t.period is null)
  into v_cohorts, v_totals
  from rows r;

  return jsonb_build_object('from', p_from, 'to', p_to, 'group', 'month', 'timezone', 'UTC', 'as_of', v_now,
                            'cohorts', coalesce(v_cohorts, '[]'),
                            'totals', coalesce(v_totals, jsonb_build_object(
                              'customers', 0, 'eligible_30', 0, 'retained_30', 0, 'rate_30', null,
                              'eligible_90', 0, 'retained_90', 0, 'rate_90', null)));
end
$$;
revoke execute on function public.admin_retention(date, date) from public, anon;
grant execute on function public.admin_retention(date, date) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- admin_customer_timeline: every interaction of one customer, oldest first (ties in the order
-- they were recorded), each with what it refers to.
-- ---------------------------------------------------------------------------------------------
create or replace function public.admin_customer_timeline(p_customer_id uuid)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_items jsonb;
begin
  perform private.require_admin();
  if p_customer_id is null then
    perform private.raise_error('invalid_input', 'p_customer_id is required');
  end if;
  if not exists (select 1 from auth.users u where u.id = p_customer_id) then
    perform private.raise_error('not_found', 'no such customer');
  end if;
  select coalesce(jsonb_agg(jsonb_build_object(
           'id', c.id, 'kind', c.kind, 'occurred_at', c.occurred_at, 'intake_id', c.intake_id,
           'session_id', c.session_id, 'subject_id', c.subject_id,
           'subject_type', case
             when c.kind like 'recommendation_%' then 'recommendation'
             when c.kind = 'follow_up_asked' then 'follow_up'
             when c.kind = 'review_written' then 'review'
             when c.kind = 'purchase' then 'payment'
             when c.kind = 'summary_viewed' then 'summary' end,
           'data', c.data) order by c.occurred_at, c.id), '[]')
  into v_items
  from public.crm_interactions c
  where c.customer_id = p_customer_id;
  return jsonb_build_object('customer_id', p_customer_id, 'interactions', v_items);
end
$$;
revoke execute on function public.admin_customer_timeline(uuid) from public, anon;
grant execute on function public.admin_customer_timeline(uuid) to authenticated, service_role;
-- <<< functions_sql journey/funnel.sql

-- >>> functions_sql journey/media.sql sha256=51f76abb9d8ccc2bdfa3bfa5a51394c1dbeaa570e90441c6ae07cb52faed8074
-- Journey: photos and short videos attached to an intake before the match
-- (docs/journey.md#media-before-the-match). The bucket, its policies and their helpers are in the
-- migration that made them (policies are checked when created); this file lists the files.

-- The intake a request was filed from, or a session's intake (null when none). Definer: a mechanic
-- deciding on a request cannot read the session row yet. Callers check visibility first.
create or replace function private.request_or_session_intake_id(p_request_id uuid, p_session_id uuid) returns uuid
language sql stable security definer set search_path = ''
as $$
  select s.intake_id from public.sessions s
  where (p_request_id is not null and s.id = (select r.session_id from public.session_requests r where r.id = p_request_id))
     or (p_request_id is null and s.id = p_session_id)
$$;
revoke execute on function private.request_or_session_intake_id(uuid, uuid) from public;
grant execute on function private.request_or_session_intake_id(uuid, uuid) to authenticated, service_role;

-- The files of the intake behind a request (a mechanic deciding whether to take it; its customer)
-- or behind a session (its participants): [{name, size, mimetype, created_at}], oldest first. The
-- caller passes one of the two ids. The request or session must be visible to the caller (else
-- not_found); the files listed are those Storage lets the caller read (the intake-files policies).
-- Security invoker on purpose: both answers come from the caller's own row level security, so the
-- list is exactly what the caller could sign URLs for (createSignedUrl on bucket intake-files).
create or replace function public.list_intake_files(p_request_id uuid default null, p_session_id uuid default null)
returns jsonb
language plpgsql stable security invoker set search_path = ''
as $$
declare
  v_intake uuid;
begin
  perform private.require_user();
  if (p_request_id is null) = (p_session_id is null) then
    perform private.raise_error('invalid_input', 'pass exactly one of p_request_id and p_session_id');
  end if;
  if p_request_id is not null then
    perform 1 from public.session_requests r where r.id = p_request_id;
  else
    perform 1 from public.sessions s where s.id = p_session_id;
  end if;
  if not found then
    perform private.raise_error('not_found', case when p_request_id is not null then 'no such request' else 'no such session' end);
  end if;
  v_intake := private.request_or_session_intake_id(p_request_id, p_session_id);
  if v_intake is null then
    return '[]'::jsonb;
  end if;
  return coalesce((
    select jsonb_agg(jsonb_build_object('name', o.name, 'size', o.metadata -> 'size',
                                        'mimetype', o.metadata -> 'mimetype', 'created_at', o.created_at)
                     order by o.created_at, o.name)
    from storage.objects o
    where o.bucket_id = 'intake-files' and o.name like 'intakes/' || v_intake::text || '/%'), '[]'::jsonb);
end
$$;
revoke execute on function public.list_intake_files(uuid, uuid) from public, anon;
grant execute on function public.list_intake_files(uuid, uuid) to authenticated, service_role;
-- <<< functions_sql journey/media.sql

-- >>> functions_sql journey/messages.sql sha256=9c982cb359e36289c3719de9113c0f35712d88bc0c0de88750a250951602c698
-- Journey: a message at every turn (docs/journey.md). When a request or a session changes without
-- its customer (or, for a booking, its mechanic) doing it, they get an email and an event on the
-- session's topic (`session:<id>`), both in the transaction of the change: a change that rolls back
-- tells nobody. One change, one message: a refund that is part of the change (an expiry, an admin's
-- cancellation, a cancelled or cheaper booking) is announced by that change's email, with its
-- amount, and recorded in private.refund_notices so that it is never announced again; every other
-- refund is announced once, when it succeeded.
--
-- Dedupe keys (private.enqueue_email's suffix; the key is email:<template>:<session>:<user><suffix>):
--   request_unattended  :unattended:<epoch of the transition>  (a request may go unattended again
--                                                                after a release, once per time)
--   request_expired     (none)                                  (a request expires once)
--   request_released    :released:<request_releases.id>
--   session_cancelled   (none)                                  (a session is cancelled once)
--   refund_succeeded    :refund:<refund id>
--   booking_cancelled   (none), booking_rescheduled :s<calendar sequence>
-- Events are sent only when the change happened (the transition, or the first notice of a refund),
-- so a retried sweep or a duplicate Stripe event sends neither an email nor an event.

-- The event of a change on the session's topic. Payloads carry ids, times, amounts and roles:
-- never an email address, a phone number or free text an admin wrote.
create or replace function private.message_event(p_session_id uuid, p_event text, p_payload jsonb) returns void
language plpgsql security definer set search_path = ''
as $$
begin
  if p_session_id is not null then
    perform realtime.send(jsonb_build_object('session_id', p_session_id) || p_payload, p_event,
                          'session:' || p_session_id::text, true);
  end if;
end
$$;
revoke execute on function private.message_event(uuid, text, jsonb) from public;
grant execute on function private.message_event(uuid, text, jsonb) to service_role;

-- The refunds of a session's payments not yet announced (any not failed or canceled: a card refund
-- still on its way counts) are claimed by the message `p_notice`; returns their total.
create or replace function private.messages_claim_refunds(p_session_id uuid, p_notice text) returns int
language sql volatile security definer set search_path = ''
as $$
  with claimed as (
    insert into private.refund_notices (refund_id, notice)
    select r.id, p_notice
    from public.refunds r join public.payments p on p.id = r.payment_id
    where p.session_id = p_session_id and r.status not in ('failed', 'canceled')
    on conflict (refund_id) do nothing
    returning refund_id)
  select coalesce(sum(r.amount_cents), 0)::int from claimed c join public.refunds r on r.id = c.refund_id
$$;
revoke execute on function private.messages_claim_refunds(uuid, text) from public;
grant execute on function private.messages_claim_refunds(uuid, text) to service_role;

-- Who made the change: the actor of this transaction (private.set_actor), else the system.
create or replace function private.messages_actor() returns text
language sql stable set search_path = ''
as $$
  select case when current_setting('autodoctor.actor_role', true) in ('customer', 'mechanic', 'admin')
              then current_setting('autodoctor.actor_role', true) else 'system' end
$$;
revoke execute on function private.messages_actor() from public;
grant execute on function private.messages_actor() to service_role;

-- ---------------------------------------------------------------------------------------------
-- Unattended: nobody accepted within requests.unattended_after (jobs/sweep_requests.sql); the
-- admins' queue will assign a mechanic. Fires on the transition itself, whatever made it, and is
-- checked at commit (a deferred trigger): a request that went unattended and expired in the same
-- sweep (a sweep that ran late) is told only that it expired.
-- ---------------------------------------------------------------------------------------------
create or replace function private.tg_session_requests__messages() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if not exists (select 1 from public.session_requests r
                 where r.id = new.id and r.status = 'unattended' and r.status_changed_at = new.status_changed_at) then
    return null;  -- it moved on in the same transaction: its later message says what happened
  end if;
  perform private.enqueue_email('request_unattended', new.customer_id, new.session_id,
    jsonb_build_object('request_id', new.id),
    format(':unattended:%s', extract(epoch from new.status_changed_at)));
  perform private.message_event(new.session_id, 'request_unattended',
    jsonb_build_object('request_id', new.id, 'at', new.status_changed_at));
  return null;
end
$$;
revoke execute on function private.tg_session_requests__messages() from public;
drop trigger if exists _500_messages on public.session_requests;
create constraint trigger _500_messages after update of status on public.session_requests
  deferrable initially deferred
  for each row when (new.status = 'unattended' and old.status is distinct from 'unattended')
  execute function private.tg_session_requests__messages();

-- ---------------------------------------------------------------------------------------------
-- Expired: lifecycle step of private.expire_request (core/lifecycle.sql), after the refund and the
-- cancellation: one email, with the amount refunded (0 for a free request).
-- ---------------------------------------------------------------------------------------------
create or replace function private.messages_on_request_expired(p_session_id uuid, p_now timestamptz) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_s public.sessions;
  v_request_id uuid;
  v_refunded int;
begin
  select * into v_s from public.sessions where id = p_session_id;
  select id into v_request_id from public.session_requests where session_id = p_session_id;
  v_refunded := private.messages_claim_refunds(p_session_id, 'request_expired');
  perform private.enqueue_email('request_expired', v_s.customer_id, v_s.id,
    jsonb_build_object('request_id', v_request_id, 'refunded_cents', v_refunded, 'currency', v_s.currency));
  perform private.message_event(v_s.id, 'request_expired',
    jsonb_build_object('request_id', v_request_id, 'refunded_cents', v_refunded, 'currency', v_s.currency,
                       'at', p_now));
end
$$;
revoke execute on function private.messages_on_request_expired(uuid, timestamptz) from public;
grant execute on function private.messages_on_request_expired(uuid, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Released: an accepted request goes back to the queue, let go by its mechanic (cancel_request)
-- or by the system (a workshop's approval that lapsed: workshops/dispatch.sql). Both record the
-- release in private.request_releases, which is where this fires. The customer is emailed only if
-- told of that mechanic (its mechanic_assigned email was sent: trust/contact.sql): an
-- accept-and-release the customer never heard of is not news worth an email, only an event for the
-- app, which showed the assignment live (mechanic_assigned on the same topic).
-- ---------------------------------------------------------------------------------------------
create or replace function private.tg_request_releases__messages() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_r public.session_requests;
  v_told boolean;
  v_by text := case when new.by_system then 'system' else 'mechanic' end;
begin
  select * into v_r from public.session_requests where id = new.request_id;
  v_told := exists (
    select 1 from private.outbox o
    where o.dedupe_key in (format('email:mechanic_assigned:%s:%s:%s', v_r.session_id, v_r.customer_id, new.mechanic_id),
                           format('email:mechanic_assigned:%s:%s:%s:approved', v_r.session_id, v_r.customer_id,
                                  new.mechanic_id))
      and o.status = 'sent');
  if v_told then
    perform private.enqueue_email('request_released', v_r.customer_id, v_r.session_id,
      jsonb_build_object('request_id', v_r.id, 'released_by', v_by), format(':released:%s', new.id));
  end if;
  perform private.message_event(v_r.session_id, 'request_released',
    jsonb_build_object('request_id', v_r.id, 'released_by', v_by, 'emailed', v_told, 'at', new.released_at));
  return null;
end
$$;
revoke execute on function private.tg_request_releases__messages() from public;
drop trigger if exists _500_messages on private.request_releases;
create trigger _500_messages after insert on private.request_releases
  for each row execute function private.tg_request_releases__messages();

-- ---------------------------------------------------------------------------------------------
-- Cancelled by an admin: lifecycle step of private.cancel_session (core/lifecycle.sql), whatever
-- admin path cancelled it (admin_force_end_session, an admin's full refund of a session not yet
-- started, an admin cancelling a booking through cancel_scheduled_session). A booking's
-- cancellation is told by booking_cancelled (below), with who cancelled it, so not twice.
-- ---------------------------------------------------------------------------------------------
create or replace function private.messages_on_session_cancelled(p_session_id uuid, p_from public.session_status)
returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_s public.sessions;
  v_refunded int;
begin
  if private.messages_actor() <> 'admin' or p_from = 'scheduled' then
    return;
  end if;
  select * into v_s from public.sessions where id = p_session_id;
  v_refunded := private.messages_claim_refunds(p_session_id, 'session_cancelled');
  perform private.enqueue_email('session_cancelled', v_s.customer_id, v_s.id,
    jsonb_build_object('cancelled_by', 'admin', 'refunded_cents', v_refunded, 'currency', v_s.currency));
  perform private.message_event(v_s.id, 'session_cancelled',
    jsonb_build_object('cancelled_by', 'admin', 'refunded_cents', v_refunded, 'currency', v_s.currency,
                       'at', v_s.status_changed_at));
end
$$;
revoke execute on function private.messages_on_session_cancelled(uuid, public.session_status) from public;
grant execute on function private.messages_on_session_cancelled(uuid, public.session_status) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Bookings: cancelled (scheduling/reminders.sql) or moved (scheduling/changes.sql). Both sides get
-- the email, each with the times in their own zone (rendered from `timezone`), who made the change,
-- and, for the customer, the refund it made.
-- ---------------------------------------------------------------------------------------------
create or replace function private.messages_on_booking_cancelled(p_s public.sessions) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_by text := private.messages_actor();
  v_refunded int := private.messages_claim_refunds(p_s.id, 'booking_cancelled');
  v_data jsonb := jsonb_build_object('cancelled_by', v_by, 'scheduled_for', p_s.scheduled_for,
                                     'currency', p_s.currency);
begin
  perform private.enqueue_email('booking_cancelled', p_s.customer_id, p_s.id,
    v_data || jsonb_build_object('recipient', 'customer', 'refunded_cents', v_refunded));
  if p_s.mechanic_id is not null then
    perform private.enqueue_email('booking_cancelled', p_s.mechanic_id, p_s.id,
      v_data || jsonb_build_object('recipient', 'mechanic'));
  end if;
  perform private.message_event(p_s.id, 'booking_cancelled',
    jsonb_build_object('cancelled_by', v_by, 'scheduled_for', p_s.scheduled_for,
                       'calendar_sequence', p_s.calendar_sequence));
end
$$;
revoke execute on function private.messages_on_booking_cancelled(public.sessions) from public;
grant execute on function private.messages_on_booking_cancelled(public.sessions) to service_role;

create or replace function private.messages_on_booking_rescheduled(p_s public.sessions, p_previous_start timestamptz)
returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_by text := private.messages_actor();
  v_refunded int := private.messages_claim_refunds(p_s.id, 'booking_rescheduled');
  v_data jsonb := jsonb_build_object('rescheduled_by', v_by, 'previous_start', p_previous_start,
                                     'scheduled_for', p_s.scheduled_for, 'currency', p_s.currency);
begin
  perform private.enqueue_email('booking_rescheduled', p_s.customer_id, p_s.id,
    v_data || jsonb_build_object('recipient', 'customer', 'refunded_cents', v_refunded),
    ':s' || p_s.calendar_sequence);
  perform private.enqueue_email('booking_rescheduled', p_s.mechanic_id, p_s.id,
    v_data || jsonb_build_object('recipient', 'mechanic'), ':s' || p_s.calendar_sequence);
  perform private.message_event(p_s.id, 'booking_rescheduled',
    jsonb_build_object('rescheduled_by', v_by, 'previous_start', p_previous_start,
                       'scheduled_for', p_s.scheduled_for, 'calendar_sequence', p_s.calendar_sequence));
end
$$;
revoke execute on function private.messages_on_booking_rescheduled(public.sessions, timestamptz) from public;
grant execute on function private.messages_on_booking_rescheduled(public.sessions, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Refunded: a refund that succeeded (money back on the card, or in the customer's credit), for any
-- reason: an admin's partial refund, a cancelled paid request, a refund made in Stripe. Checked at
-- commit (a deferred trigger), after every other step of the same change had its say, so a
-- refund the change's own email announced (claimed in private.refund_notices) is not announced
-- again, and a refund whose booking could not be kept is told by booking_slot_lost.
-- ---------------------------------------------------------------------------------------------
create or replace function private.tg_refunds__messages() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_r public.refunds;
  v_p public.payments;
  v_notice text := 'refund_succeeded';
  v_claimed uuid;
  v_total int;
begin
  select * into v_r from public.refunds where id = new.id;
  if v_r.status is distinct from 'succeeded' then
    return null;
  end if;
  select * into v_p from public.payments where id = v_r.payment_id;
  if exists (select 1 from private.outbox o where o.dedupe_key = 'email:booking_slot_lost:' || v_p.booking_id) then
    v_notice := 'booking_slot_lost';
  end if;
  insert into private.refund_notices (refund_id, notice) values (v_r.id, v_notice)
  on conflict (refund_id) do nothing
  returning refund_id into v_claimed;
  if v_claimed is null or v_notice <> 'refund_succeeded' then
    return null;  -- announced already (or by the booking's own email)
  end if;
  select coalesce(sum(x.amount_cents), 0) into v_total from public.refunds x
  where x.payment_id = v_p.id and x.status = 'succeeded';
  perform private.enqueue_email('refund_succeeded', v_p.customer_id, v_p.session_id,
    jsonb_build_object('refund_id', v_r.id, 'amount_cents', v_r.amount_cents, 'currency', v_r.currency,
                       'destination', v_r.destination, 'origin', v_r.origin, 'paid_cents', v_p.amount_cents,
                       'refunded_total_cents', v_total, 'partial', v_total < v_p.amount_cents),
    ':refund:' || v_r.id);
  perform private.message_event(v_p.session_id, 'refund_succeeded',
    jsonb_build_object('refund_id', v_r.id, 'amount_cents', v_r.amount_cents, 'currency', v_r.currency,
                       'destination', v_r.destination, 'partial', v_total < v_p.amount_cents,
                       'at', v_r.succeeded_at));
  return null;
end
$$;
revoke execute on function private.tg_refunds__messages() from public;
drop trigger if exists _900_messages on public.refunds;
create constraint trigger _900_messages after insert or update of status on public.refunds
  deferrable initially deferred
  for each row when (new.status = 'succeeded')
  execute function private.tg_refunds__messages();
-- <<< functions_sql journey/messages.sql

-- >>> functions_sql journey/recommendations.sql sha256=a036ac293c55e400a131907958b2b0f47f31e1f70b026e95f911350f3d9ffbcb
-- Journey: recommendations (docs/journey.md#recommendations). The rules are rows of
-- public.recommendation_rules; this file is the one evaluator that reads them, the funnel RPCs
-- (shown, clicked) and the purchase attribution (a paid booking of the plan, a follow-up, a
-- workshop appointment).

-- ---------------------------------------------------------------------------------------------
-- Evaluation
-- ---------------------------------------------------------------------------------------------
-- The verified workshops near a customer, as the public directory shows them
-- (private.workshop_cards): customers give a city and a postal code, never coordinates, so "near"
-- is the city of the session's intake (else of the customer's profile), the customer's postal area
-- first, then the best rated. No city: no workshop is near.
create or replace function private.recommendations_nearby_workshops(p_customer_id uuid, p_intake_id uuid, p_limit int)
returns jsonb
language sql stable security definer set search_path = ''
as $$
  with here as (
    select lower(btrim(coalesce(nullif(btrim(i.city), ''), nullif(btrim(p.city), '')))) as city,
           nullif(upper(left(replace(p.postal_code, ' ', ''), 3)), '') as postal_area
    from (select 1) one
    left join public.intakes i on i.id = p_intake_id
    left join public.profiles p on p.id = p_customer_id),
  near as (  -- the city's verified workshops first (as find_workshops filters), then their cards
    select c.*, (c.postal_area is not distinct from h.postal_area and h.postal_area is not null) as same_area
    from here h
    join public.organizations o on o.status = 'verified' and lower(btrim(o.city)) = h.city
    cross join lateral private.workshop_cards(o.id) c
    order by same_area desc, c.rating desc nulls last, c.name, c.id
    limit greatest(p_limit, 0))
  select coalesce(jsonb_agg(jsonb_build_object(
           'workshop_id', n.id, 'name', n.name, 'city', n.city, 'postal_area', n.postal_area,
           'services', to_jsonb(n.services), 'rating', n.rating, 'rating_count', n.rating_count,
           'photo_url', n.photo_url, 'same_postal_area', n.same_area)
         order by n.same_area desc, n.rating desc nulls last, n.name, n.id), '[]')
  from near n
$$;
revoke execute on function private.recommendations_nearby_workshops(uuid, uuid, int) from public;
grant execute on function private.recommendations_nearby_workshops(uuid, uuid, int) to service_role;

-- Evaluates the active rules of a session's event (session_delivered, summary_submitted) and makes
-- each matching rule's offer once per (session, rule): a rule already applied is skipped, and a
-- concurrent evaluation of the same session inserts nothing twice (the unique key, on conflict do
-- nothing). The conditions read the session and its latest submitted summary; the price is the
-- plan's catalog price now (an inactive plan makes no offer).
create or replace function private.recommendations_evaluate(p_session_id uuid, p_event text) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_s public.sessions;
  v_sum public.session_summaries;
  v_ran_to_cap boolean;
  v_rule public.recommendation_rules;
  v_plan public.service_plans;
  v_data jsonb;
  v_workshops jsonb;
  v_id uuid;
begin
  if p_event is null or p_event not in ('session_delivered', 'summary_submitted') then
    perform private.raise_error('invalid_input', 'p_event is session_delivered or summary_submitted');
  end if;
  select * into v_s from public.sessions where id = p_session_id;
  if not found or v_s.status <> 'completed' then
    return;
  end if;
  select * into v_sum from public.session_summaries ss
  where ss.session_id = v_s.id and ss.status = 'submitted'
  order by ss.version desc limit 1;
  -- ran to its cap: it used every minute it was allowed (planned + granted extensions), or the time
  -- cap ended it (rooms/timers.sql, end_overdue_sessions)
  v_ran_to_cap := v_s.duration_type = 'micro'
                  and (coalesce(v_s.duration_minutes, 0) >= v_s.planned_minutes + v_s.extension_minutes
                       or v_s.cancel_reason = 'time cap reached');

  for v_rule in
    select r.* from public.recommendation_rules r
    where r.active and r.event = p_event
      and (not r.delivered_only or v_s.delivery = 'delivered')
      and (r.session_types is null or v_s.session_type = any (r.session_types))
      and (r.duration_types is null or v_s.duration_type = any (r.duration_types))
      and (r.urgencies is null or coalesce(v_sum.urgency = any (r.urgencies), false))
      and (not r.requires_parts or coalesce(jsonb_array_length(v_sum.parts) > 0, false))
      and (not r.requires_ran_to_cap or v_ran_to_cap)
      and not exists (select 1 from public.recommendations x where x.session_id = v_s.id and x.rule_code = r.code)
    order by r.priority, r.code
  loop
    v_plan := null;
    if v_rule.plan_code is not null then
      select * into v_plan from public.service_plans p where p.code = v_rule.plan_code and p.active;
      if not found then
        continue;
      end if;
    end if;
    v_data := jsonb_build_object('event', p_event);
    if v_sum.id is not null and (v_rule.urgencies is not null or v_rule.requires_parts) then
      v_data := v_data || jsonb_build_object('summary_id', v_sum.id, 'summary_version', v_sum.version,
                                             'urgency', v_sum.urgency);
    end if;
    if v_rule.requires_parts then
      v_data := v_data || jsonb_build_object(
        'parts', v_sum.parts,
        'estimated_total_cents', (select sum((p ->> 'estimated_cost_cents')::bigint)
                                  from jsonb_array_elements(v_sum.parts) p
                                  where jsonb_typeof(p -> 'estimated_cost_cents') = 'number'));
    end if;
    if v_rule.requires_ran_to_cap then
      v_data := v_data || jsonb_build_object('minutes_used', v_s.duration_minutes,
                                             'minutes_allowed', v_s.planned_minutes + v_s.extension_minutes);
    end if;
    if v_rule.lists_workshops then
      v_workshops := private.recommendations_nearby_workshops(v_s.customer_id, v_s.intake_id,
                                                              private.setting_int('recommendations.max_workshops'));
      if jsonb_array_length(v_workshops) = 0 then
        continue;  -- nothing near to recommend; a later evaluation may find one
      end if;
      v_data := v_data || jsonb_build_object('workshops', v_workshops);
    end if;

    v_id := null;
    insert into public.recommendations (customer_id, session_id, rule_code, kind, title, description, price_cents,
                                        currency, plan_code, deep_link, data, expires_at)
    values (v_s.customer_id, v_s.id, v_rule.code, v_rule.kind, v_rule.title, v_rule.description, v_plan.price_cents,
            v_plan.currency, v_plan.code, replace(v_rule.deep_link_template, '{session_id}', v_s.id::text), v_data,
            now() + private.setting_interval('recommendations.ttl'))
    on conflict (session_id, rule_code) do nothing
    returning id into v_id;
    if v_id is not null then
      perform realtime.send(
        jsonb_build_object('recommendation_id', v_id, 'session_id', v_s.id, 'kind', v_rule.kind,
                           'title', v_rule.title),
        'recommendation', 'session:' || v_s.id::text, true);
    end if;
  end loop;
end
$$;
revoke execute on function private.recommendations_evaluate(uuid, text) from public;
grant execute on function private.recommendations_evaluate(uuid, text) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Shown and clicked (the customer's client)
-- ---------------------------------------------------------------------------------------------
create or replace function private.recommendation_json(p_r public.recommendations) returns jsonb
language sql stable security definer set search_path = ''
as $$
  select jsonb_build_object(
    'recommendation_id', p_r.id, 'session_id', p_r.session_id, 'kind', p_r.kind, 'title', p_r.title,
    'description', p_r.description, 'price_cents', p_r.price_cents, 'currency', p_r.currency,
    'plan_code', p_r.plan_code, 'deep_link', p_r.deep_link, 'data', p_r.data, 'status', p_r.status,
    'created_at', p_r.created_at, 'expires_at', p_r.expires_at, 'shown_at', p_r.shown_at,
    'clicked_at', p_r.clicked_at, 'purchased_at', p_r.purchased_at)
$$;
revoke execute on function private.recommendation_json(public.recommendations) from public;
grant execute on function private.recommendation_json(public.recommendations) to service_role;

-- Records that the customer's client showed (p_click false) or opened (p_click true) one of its
-- recommendations. Only its own (another's, or one that does not exist: not_found); the first time
-- is kept, so a repeated call changes nothing and records nothing; a click implies it was shown.
-- An expired offer is not shown or opened for the first time (recommendation_expired).
create or replace function private.recommendation_touch(p_uid uuid, p_id uuid, p_click boolean) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_r public.recommendations;
  v_intake uuid;
  v_now timestamptz := now();
begin
  select * into v_r from public.recommendations r where r.id = p_id and r.customer_id = p_uid for update;
  if not found then
    perform private.raise_error('not_found', 'no such recommendation of yours');
  end if;
  if (v_r.shown_at is null or (p_click and v_r.clicked_at is null)) and v_r.expires_at <= v_now then
    perform private.raise_error('recommendation_expired', format('the recommendation expired at %s', v_r.expires_at));
  end if;
  select s.intake_id into v_intake from public.sessions s where s.id = v_r.session_id;
  if v_r.shown_at is null then
    update public.recommendations
    set shown_at = v_now, status = case when status = 'new' then 'shown' else status end
    where id = v_r.id returning * into v_r;
    perform private.crm_record(v_r.customer_id, 'recommendation_shown', v_now, v_intake, v_r.session_id, v_r.id,
                               jsonb_build_object('kind', v_r.kind, 'rule_code', v_r.rule_code));
  end if;
  if p_click and v_r.clicked_at is null then
    update public.recommendations
    set clicked_at = v_now, status = case when status in ('new', 'shown') then 'clicked' else status end
    where id = v_r.id returning * into v_r;
    perform private.crm_record(v_r.customer_id, 'recommendation_clicked', v_now, v_intake, v_r.session_id, v_r.id,
                               jsonb_build_object('kind', v_r.kind, 'rule_code', v_r.rule_code));
  end if;
  return private.recommendation_json(v_r);
end
$$;
revoke execute on function private.recommendation_touch(uuid, uuid, boolean) from public;
grant execute on function private.recommendation_touch(uuid, uuid, boolean) to service_role;

create or replace function public.recommendation_shown(p_id uuid) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
begin
  perform private.require_arg('p_id', p_id);
  return private.recommendation_touch(v_uid, p_id, false);
end
$$;
revoke execute on function public.recommendation_shown(uuid) from public, anon;
grant execute on function public.recommendation_shown(uuid) to authenticated, service_role;

create or replace function public.recommendation_clicked(p_id uuid) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
begin
  perform private.require_arg('p_id', p_id);
  return private.recommendation_touch(v_uid, p_id, true);
end
$$;
revoke execute on function public.recommendation_clicked(uuid) from public, anon;
grant execute on function public.recommendation_clicked(uuid) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- Purchases
-- ---------------------------------------------------------------------------------------------
-- Marks the newest matching recommendation of the customer purchased by p_subject_id (a booking, a
-- follow-up, an appointment): the newest clicked one, else the newest shown one, of the given kind
-- (null: any), session (null: any), plan (null: any) and listed workshop (null: any), shown no
-- more than recommendations.attribution_window before now. Never one that was not shown (a purchase
-- made before the customer saw the offer is not its effect), never one bought already, and one
-- subject buys at most one offer of a kind. Records recommendation_purchased. Returns the
-- recommendation's id, or null when none matches.
create or replace function private.recommendations_purchase(
  p_customer_id uuid, p_kind text, p_session_id uuid, p_plan_code text, p_workshop_id uuid, p_subject_id uuid,
  p_data jsonb default '{}'
) returns uuid
language plpgsql security definer set search_path = ''
as $$
declare
  v_now timestamptz := now();
  v_window interval := private.setting_interval('recommendations.attribution_window');
  v_r public.recommendations;
begin
  if p_customer_id is null or p_subject_id is null then
    return null;
  end if;
  select * into v_r from public.recommendations r
  where r.customer_id = p_customer_id and r.status in ('shown', 'clicked')
    and r.shown_at <= v_now and r.shown_at + v_window >= v_now
    and (p_kind is null or r.kind = p_kind)
    and (p_session_id is null or r.session_id = p_session_id)
    and (p_plan_code is null or r.plan_code = p_plan_code)
    and (p_workshop_id is null
         or coalesce(r.data -> 'workshops', '[]') @> jsonb_build_array(jsonb_build_object('workshop_id', p_workshop_id)))
    and not exists (select 1 from public.recommendations y
                    where y.purchase_subject_id = p_subject_id and y.kind = r.kind)
  order by (r.clicked_at is not null) desc, coalesce(r.clicked_at, r.shown_at) desc, r.id
  limit 1
  for update;
  if not found or v_r.status not in ('shown', 'clicked') then
    return null;
  end if;
  update public.recommendations
  set status = 'purchased', purchased_at = v_now, purchase_subject_id = p_subject_id
  where id = v_r.id returning * into v_r;
  perform private.crm_record(v_r.customer_id, 'recommendation_purchased', v_now,
                             (select s.intake_id from public.sessions s where s.id = v_r.session_id), v_r.session_id,
                             v_r.id, jsonb_build_object('kind', v_r.kind, 'rule_code', v_r.rule_code,
                                                        'plan_code', v_r.plan_code, 'purchase_subject_id', p_subject_id)
                                     || coalesce(p_data, '{}'));
  return v_r.id;
end
$$;
revoke execute on function private.recommendations_purchase(uuid, text, uuid, text, uuid, uuid, jsonb) from public;
grant execute on function private.recommendations_purchase(uuid, text, uuid, text, uuid, uuid, jsonb) to service_role;

-- For the purchases that are not a plan booking, called by the part that makes them: a follow-up
-- asked on a session (kind follow_up, the follow-up as subject).
create or replace function private.recommendations_mark_purchased(
  p_customer_id uuid, p_kind text, p_session_id uuid, p_subject_id uuid
) returns uuid
language plpgsql security definer set search_path = ''
as $$
begin
  if p_kind is null or p_kind not in ('follow_up', 'maintenance_plan', 'premium_upgrade', 'workshop_visit') then
    perform private.raise_error('invalid_input', 'p_kind is follow_up, maintenance_plan, premium_upgrade or workshop_visit');
  end if;
  return private.recommendations_purchase(p_customer_id, p_kind, p_session_id, null, null, p_subject_id, '{}');
end
$$;
revoke execute on function private.recommendations_mark_purchased(uuid, text, uuid, uuid) from public;
grant execute on function private.recommendations_mark_purchased(uuid, text, uuid, uuid) to service_role;

-- A booking of the customer paid (by card through the Stripe webhook, or with credit: every path
-- that makes a booking `paid`, payments/checkout.sql and payments/stripe_events.sql) buys the
-- newest matching recommendation of its plan. A trigger: the purchase is a consequence of the
-- status, whichever path paid it.
create or replace function private.tg_bookings__recommendation_purchase() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if new.status = 'paid' and old.status is distinct from 'paid' and new.plan_code is not null then
    perform private.recommendations_purchase(new.customer_id, null, null, new.plan_code, null, new.id,
                                             jsonb_build_object('booking_id', new.id, 'price_cents', new.price_cents,
                                                                'currency', new.currency, 'method', new.method));
  end if;
  return null;
end
$$;
revoke execute on function private.tg_bookings__recommendation_purchase() from public;
drop trigger if exists _460_recommendation_purchase on public.bookings;
create trigger _460_recommendation_purchase after update of status on public.bookings
  for each row
  when (new.status = 'paid' and old.status is distinct from 'paid' and new.plan_code is not null)
  execute function private.tg_bookings__recommendation_purchase();

-- A workshop appointment the customer requests (workshops/appointments_rpc.sql) buys the newest
-- workshop-visit recommendation that listed that workshop; when it is requested from a diagnostic
-- session, it also buys that session's maintenance-plan recommendation (the work it planned).
create or replace function private.tg_workshop_appointments__recommendation_purchase() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  perform private.recommendations_purchase(new.customer_id, 'workshop_visit', null, null, new.workshop_id, new.id,
                                           jsonb_build_object('appointment_id', new.id, 'workshop_id', new.workshop_id));
  if new.diagnostic_session_id is not null then
    perform private.recommendations_purchase(new.customer_id, 'maintenance_plan', new.diagnostic_session_id, null, null,
                                             new.id, jsonb_build_object('appointment_id', new.id,
                                                                        'workshop_id', new.workshop_id));
  end if;
  return null;
end
$$;
revoke execute on function private.tg_workshop_appointments__recommendation_purchase() from public;
drop trigger if exists _460_recommendation_purchase on public.workshop_appointments;
create trigger _460_recommendation_purchase after insert on public.workshop_appointments
  for each row execute function private.tg_workshop_appointments__recommendation_purchase();
-- <<< functions_sql journey/recommendations.sql

-- >>> functions_sql journey/summaries.sql sha256=8f846c9f411f14f5c050216d66b7ebf0e543e4d692c9212e5fed8a2504988aca
-- Journey: the mechanic's structured summary (docs/journey.md#structured-summary).
--
-- public.session_summaries holds one draft at most per session and every submitted version. The
-- mechanic saves the draft from the moment the session is live until summaries.submit_window after
-- its end, and submits it once the session completed, within the same window; a correction is a
-- new draft (the next version) submitted again. The customer reads the submitted versions only.

-- ---------------------------------------------------------------------------------------------
-- Validation: one coded error (summary_invalid) naming the field path; nothing is written
-- ---------------------------------------------------------------------------------------------
create or replace function private.summary_invalid(p_path text, p_reason text) returns void
language plpgsql stable set search_path = ''
as $$
begin
  perform private.raise_error('summary_invalid', format('%s: %s', p_path, p_reason), p_path);
end
$$;
revoke execute on function private.summary_invalid(text, text) from public;
grant execute on function private.summary_invalid(text, text) to service_role;

-- A JSON string, trimmed, 1..p_max characters; JSON null is null unless required.
create or replace function private.summary_text(p_path text, p_value jsonb, p_max int, p_required boolean)
returns text
language plpgsql stable set search_path = ''
as $$
begin
  if p_value is null or jsonb_typeof(p_value) = 'null' then
    if p_required then
      perform private.summary_invalid(p_path, 'is required');
    end if;
    return null;
  end if;
  if jsonb_typeof(p_value) <> 'string' then
    perform private.summary_invalid(p_path, 'must be a string');
  end if;
  if btrim(p_value #>> '{}') = '' then
    perform private.summary_invalid(p_path, 'must not be empty');
  end if;
  if char_length(btrim(p_value #>> '{}')) > p_max then
    perform private.summary_invalid(p_path, format('must be at most %s characters', p_max));
  end if;
  return btrim(p_value #>> '{}');
end
$$;
revoke execute on function private.summary_text(text, jsonb, int, boolean) from public;
grant execute on function private.summary_text(text, jsonb, int, boolean) to service_role;

-- A JSON array of at most summaries.max_items elements (absent or null: empty).
create or replace function private.summary_array(p_path text, p_value jsonb, p_max int) returns jsonb
language plpgsql stable set search_path = ''
as $$
begin
  if p_value is null or jsonb_typeof(p_value) = 'null' then
    return '[]'::jsonb;
  end if;
  if jsonb_typeof(p_value) <> 'array' then
    perform private.summary_invalid(p_path, 'must be an array');
  end if;
  if jsonb_array_length(p_value) > p_max then
    perform private.summary_invalid(p_path, format('must have at most %s items', p_max));
  end if;
  return p_value;
end
$$;
revoke execute on function private.summary_array(text, jsonb, int) from public;
grant execute on function private.summary_array(text, jsonb, int) to service_role;

-- The summary a mechanic sends, checked and normalised (strings trimmed, absent lists empty):
-- {findings, steps_taken, parts, next_steps, urgency, photo_paths}. Paths count from 0
-- (parts[0] is the first part). A photo is an object of this session's files
-- (session-files: sessions/<session_id>/…) or of its intake's (intake-files: intakes/<intake_id>/…)
-- that exists in Storage.
create or replace function private.summary_validate(p_session public.sessions, p_summary jsonb) returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_max int := private.setting_int('summaries.max_items');
  v_max_cost int := private.setting_int('summaries.max_part_cost_cents');
  v_key text;
  v_item jsonb;
  v_i int;
  v_steps jsonb := '[]';
  v_next jsonb := '[]';
  v_parts jsonb := '[]';
  v_photos text[] := '{}';
  v_path text;
  v_cost jsonb;
  v_urgency text;
  v_list text;
begin
  if p_summary is null or jsonb_typeof(p_summary) <> 'object' then
    perform private.summary_invalid('$', 'must be a JSON object');
  end if;
  for v_key in select jsonb_object_keys(p_summary) loop
    if v_key not in ('findings', 'steps_taken', 'parts', 'next_steps', 'urgency', 'photo_paths') then
      perform private.summary_invalid(v_key, 'is not a field of a summary');
    end if;
  end loop;
  foreach v_list in array array['steps_taken', 'next_steps'] loop
    v_i := 0;
    for v_item in select e from jsonb_array_elements(private.summary_array(v_list, p_summary -> v_list, v_max)) e loop
      if v_list = 'steps_taken' then
        v_steps := v_steps || to_jsonb(private.summary_text(format('%s[%s]', v_list, v_i), v_item, 500, true));
      else
        v_next := v_next || to_jsonb(private.summary_text(format('%s[%s]', v_list, v_i), v_item, 500, true));
      end if;
      v_i := v_i + 1;
    end loop;
  end loop;
  v_i := 0;
  for v_item in select e from jsonb_array_elements(private.summary_array('parts', p_summary -> 'parts', v_max)) e loop
    v_path := format('parts[%s]', v_i);
    if jsonb_typeof(v_item) <> 'object' then
      perform private.summary_invalid(v_path, 'must be an object {name, part_number, estimated_cost_cents}');
    end if;
    for v_key in select jsonb_object_keys(v_item) loop
      if v_key not in ('name', 'part_number', 'estimated_cost_cents') then
        perform private.summary_invalid(v_path || '.' || v_key, 'is not a field of a part');
      end if;
    end loop;
    v_cost := v_item -> 'estimated_cost_cents';
    if v_cost is not null and jsonb_typeof(v_cost) <> 'null' then
      if jsonb_typeof(v_cost) <> 'number' or (v_cost #>> '{}')::numeric <> trunc((v_cost #>> '{}')::numeric)
         or (v_cost #>> '{}')::numeric not between 0 and v_max_cost then
        perform private.summary_invalid(v_path || '.estimated_cost_cents',
          format('must be a whole number of cents between 0 and %s', v_max_cost));
      end if;
    else
      v_cost := 'null';
    end if;
    v_parts := v_parts || jsonb_build_array(jsonb_build_object(
      'name', private.summary_text(v_path || '.name', v_item -> 'name', 200, true),
      'part_number', private.summary_text(v_path || '.part_number', v_item -> 'part_number', 100, false),
      'estimated_cost_cents', case when jsonb_typeof(v_cost) = 'null' then null else (v_cost #>> '{}')::numeric::int end));
    v_i := v_i + 1;
  end loop;
  v_urgency := coalesce(private.summary_text('urgency', p_summary -> 'urgency', 40, false), 'none');
  if v_urgency not in ('none', 'soon', 'urgent', 'unsafe_to_drive') then
    perform private.summary_invalid('urgency', 'must be one of none, soon, urgent, unsafe_to_drive');
  end if;
  v_i := 0;
  for v_item in select e from jsonb_array_elements(private.summary_array('photo_paths', p_summary -> 'photo_paths', 20)) e loop
    v_path := private.summary_text(format('photo_paths[%s]', v_i), v_item, 1024, true);
    if v_path = any (v_photos) then
      perform private.summary_invalid(format('photo_paths[%s]', v_i), 'is listed twice');
    end if;
    if not exists (select 1 from storage.objects o
                   where (o.bucket_id = 'session-files' and o.name = v_path
                          and v_path like 'sessions/' || p_session.id::text || '/%')
                      or (o.bucket_id = 'intake-files' and o.name = v_path and p_session.intake_id is not null
                          and v_path like 'intakes/' || p_session.intake_id::text || '/%')) then
      perform private.summary_invalid(format('photo_paths[%s]', v_i),
        'is not a file of this session or of its intake');
    end if;
    v_photos := v_photos || v_path;
    v_i := v_i + 1;
  end loop;
  return jsonb_build_object(
    'findings', private.summary_text('findings', p_summary -> 'findings', 8000, false),
    'steps_taken', v_steps, 'parts', v_parts, 'next_steps', v_next, 'urgency', v_urgency,
    'photo_paths', to_jsonb(v_photos));
end
$$;
revoke execute on function private.summary_validate(public.sessions, jsonb) from public;
grant execute on function private.summary_validate(public.sessions, jsonb) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Reading and writing
-- ---------------------------------------------------------------------------------------------
create or replace function private.summary_json(p_row public.session_summaries) returns jsonb
language sql stable set search_path = ''
as $$
  select case when p_row.id is null then null else jsonb_build_object(
    'id', p_row.id, 'session_id', p_row.session_id, 'version', p_row.version, 'status', p_row.status,
    'author_id', p_row.author_id, 'findings', p_row.findings, 'steps_taken', p_row.steps_taken,
    'parts', p_row.parts, 'next_steps', p_row.next_steps, 'urgency', p_row.urgency,
    'photo_paths', to_jsonb(p_row.photo_paths), 'created_at', p_row.created_at, 'updated_at', p_row.updated_at,
    'submitted_at', p_row.submitted_at) end
$$;
revoke execute on function private.summary_json(public.session_summaries) from public;
grant execute on function private.summary_json(public.session_summaries) to service_role;

-- The session's draft with `p_fields` (keys of the normalised summary) written over it; a new
-- draft (version = last + 1, starting from the latest submitted version) when there is none.
-- The caller holds the session's row lock, so two writers never both create a draft.
create or replace function private.summary_write_draft(p_session public.sessions, p_author uuid, p_fields jsonb)
returns public.session_summaries
language plpgsql volatile security definer set search_path = ''
as $$
declare
  v_row public.session_summaries;
begin
  select * into v_row from public.session_summaries where session_id = p_session.id and status = 'draft' for update;
  if v_row.id is null then
    select * into v_row from public.session_summaries where session_id = p_session.id
    order by version desc limit 1;
    insert into public.session_summaries (session_id, version, status, author_id, findings, steps_taken, parts,
                                          next_steps, urgency, photo_paths)
    values (p_session.id, coalesce(v_row.version, 0) + 1, 'draft', p_author, v_row.findings,
            coalesce(v_row.steps_taken, '[]'), coalesce(v_row.parts, '[]'), coalesce(v_row.next_steps, '[]'),
            coalesce(v_row.urgency, 'none'), coalesce(v_row.photo_paths, '{}'))
    returning * into v_row;
  end if;
  update public.session_summaries s set
    author_id = p_author,
    findings = case when p_fields ? 'findings' then p_fields ->> 'findings' else s.findings end,
    steps_taken = coalesce(p_fields -> 'steps_taken', s.steps_taken),
    parts = coalesce(p_fields -> 'parts', s.parts),
    next_steps = coalesce(p_fields -> 'next_steps', s.next_steps),
    urgency = coalesce(p_fields ->> 'urgency', s.urgency),
    photo_paths = case when p_fields ? 'photo_paths'
                       then array(select jsonb_array_elements_text(p_fields -> 'photo_paths')) else s.photo_paths end,
    updated_at = now()
  where s.id = v_row.id
  returning * into v_row;
  return v_row;
end
$$;
revoke execute on function private.summary_write_draft(public.sessions, uuid, jsonb) from public;
grant execute on function private.summary_write_draft(public.sessions, uuid, jsonb) to service_role;

-- The session, locked, when the caller is its mechanic; not_found for strangers, not_allowed for
-- its customer (a customer never writes the mechanic's summary).
create or replace function private.summary_lock_session(p_session_id uuid, p_uid uuid) returns public.sessions
language plpgsql volatile security definer set search_path = ''
as $$
declare
  v_s public.sessions := private.lock_session_as_participant(p_session_id, p_uid);
begin
  if v_s.mechanic_id is distinct from p_uid then
    perform private.raise_error('not_allowed', 'only the session''s mechanic writes its summary');
  end if;
  return v_s;
end
$$;
revoke execute on function private.summary_lock_session(uuid, uuid) from public;
grant execute on function private.summary_lock_session(uuid, uuid) to service_role;

-- Whether the summary of session `p_s` may still be written at `p_now`: live, or completed and
-- within summaries.submit_window of its end. Raises the reason otherwise.
create or replace function private.summary_check_open(p_s public.sessions, p_now timestamptz, p_submit boolean)
returns void
language plpgsql stable set search_path = ''
as $$
begin
  if p_s.status = 'live' and p_submit then
    perform private.raise_error('summary_not_submittable', 'the session is live: submit its summary once it ended');
  end if;
  if p_s.status not in ('live', 'completed') then
    perform private.raise_error('summary_not_open', format('the session is %s: it has no summary', p_s.status));
  end if;
  if p_s.status = 'completed' and p_now > p_s.ended_at + private.setting_interval('summaries.submit_window') then
    perform private.raise_error('summary_window_closed',
      format('the summary could be written until %s', p_s.ended_at + private.setting_interval('summaries.submit_window')));
  end if;
end
$$;
revoke execute on function private.summary_check_open(public.sessions, timestamptz, boolean) from public;
grant execute on function private.summary_check_open(public.sessions, timestamptz, boolean) to service_role;

-- ---------------------------------------------------------------------------------------------
-- RPCs
-- ---------------------------------------------------------------------------------------------
-- The session's mechanic saves the draft: the whole summary as given (absent lists are empty,
-- absent urgency is none). Returns the draft.
create or replace function public.save_summary(p_session_id uuid, p_summary jsonb) returns jsonb
language plpgsql volatile security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_s public.sessions;
  v_fields jsonb;
begin
  perform private.require_arg('p_session_id', p_session_id);
  v_s := private.summary_lock_session(p_session_id, v_uid);
  v_fields := private.summary_validate(v_s, p_summary);
  perform private.summary_check_open(v_s, now(), false);
  return private.summary_json(private.summary_write_draft(v_s, v_uid, v_fields));
end
$$;
revoke execute on function public.save_summary(uuid, jsonb) from public, anon;
grant execute on function public.save_summary(uuid, jsonb) to authenticated, service_role;

-- The summary as the customer's email shows it: parts with their costs in words, the total.
create or replace function private.summary_email_data(p_row public.session_summaries, p_s public.sessions) returns jsonb
language sql stable set search_path = ''
as $$
  select jsonb_build_object(
    'id', p_row.id, 'version', p_row.version,
    'corrected', exists (select 1 from public.session_summaries x
                         where x.session_id = p_row.session_id and x.status = 'submitted' and x.version < p_row.version),
    'findings', p_row.findings, 'steps_taken', p_row.steps_taken, 'next_steps', p_row.next_steps,
    'urgency', p_row.urgency,
    'parts', coalesce((select jsonb_agg(jsonb_build_object(
                         'name', e ->> 'name', 'part_number', e ->> 'part_number',
                         'estimated_cost', case when e ->> 'estimated_cost_cents' is null then null
                           else private.summary_money((e ->> 'estimated_cost_cents')::bigint, p_s.currency) end)
                         order by n)
                       from jsonb_array_elements(p_row.parts) with ordinality as t(e, n)), '[]'),
    'parts_total', case when exists (select 1 from jsonb_array_elements(p_row.parts) e
                                     where e ->> 'estimated_cost_cents' is not null)
                   then private.summary_money((select sum((e ->> 'estimated_cost_cents')::bigint)
                                               from jsonb_array_elements(p_row.parts) e)::bigint, p_s.currency) end,
    'photo_count', cardinality(p_row.photo_paths))
$$;
revoke execute on function private.summary_email_data(public.session_summaries, public.sessions) from public;
grant execute on function private.summary_email_data(public.session_summaries, public.sessions) to service_role;

-- 12345 cents, usd → "123.45 USD".
create or replace function private.summary_money(p_cents bigint, p_currency text) returns text
language sql immutable set search_path = ''
as $$ select to_char(p_cents / 100.0, 'FM999999999990.00') || ' ' || upper(p_currency) $$;
revoke execute on function private.summary_money(bigint, text) from public;
grant execute on function private.summary_money(bigint, text) to service_role;

-- The session's mechanic submits the draft once the session completed, within
-- summaries.submit_window of its end: the customer gets the summary_delivered email (each version
-- its own) and a summary_ready event on session:<id>; the journey's rules read it
-- (journey_on_summary_submitted). Two submits at once: the session's row lock orders them, the
-- second finds no draft (summary_not_submittable).
-- Submits the draft `p_row` of session `p_s`: the version is final, the customer gets the
-- summary_delivered email and the session's topic a summary_ready event, and the recommendation
-- rules that read a summary run (journey/hooks.sql).
create or replace function private.summary_submit(p_s public.sessions, p_row public.session_summaries)
returns public.session_summaries
language plpgsql volatile security definer set search_path = ''
as $$
declare
  v_row public.session_summaries;
begin
  if p_row.findings is null then
    perform private.summary_invalid('findings', 'is required to submit');
  end if;
  update public.session_summaries set status = 'submitted', submitted_at = now(), updated_at = now()
  where id = p_row.id
  returning * into v_row;
  perform private.enqueue_email('summary_delivered', p_s.customer_id, p_s.id,
                                jsonb_build_object('summary', private.summary_email_data(v_row, p_s)),
                                format(':v%s', v_row.version));
  perform realtime.send(jsonb_build_object('session_id', p_s.id, 'summary_id', v_row.id, 'version', v_row.version,
                                           'urgency', v_row.urgency),
                        'summary_ready', 'session:' || p_s.id::text, true);
  perform private.journey_on_summary_submitted(p_s.id, v_row.id);
  return v_row;
end
$$;
revoke execute on function private.summary_submit(public.sessions, public.session_summaries) from public;
grant execute on function private.summary_submit(public.sessions, public.session_summaries) to service_role;

create or replace function public.submit_summary(p_session_id uuid) returns jsonb
language plpgsql volatile security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_s public.sessions;
  v_row public.session_summaries;
begin
  perform private.require_arg('p_session_id', p_session_id);
  v_s := private.summary_lock_session(p_session_id, v_uid);
  perform private.summary_check_open(v_s, now(), true);
  select * into v_row from public.session_summaries where session_id = v_s.id and status = 'draft' for update;
  if v_row.id is null then
    perform private.raise_error('summary_not_submittable', 'there is no draft to submit: save one first');
  end if;
  return private.summary_json(private.summary_submit(v_s, v_row));
end
$$;
revoke execute on function public.submit_summary(uuid) from public, anon;
grant execute on function public.submit_summary(uuid) to authenticated, service_role;

-- A session's summary: {session_id, latest, history, draft}. latest is the newest submitted version
-- (null before the first submit), history every submitted version newest first, draft the open
-- draft (the mechanic and admins only; null for the customer). Readers: the session's customer,
-- its mechanic, admins; anyone else not_found. The customer's first read of each submitted
-- version is recorded as summary_viewed (crm_interactions).
create or replace function public.get_session_summary(p_session_id uuid) returns jsonb
language plpgsql volatile security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_s public.sessions;
  v_admin boolean := private.is_admin();
  v_latest public.session_summaries;
  v_draft public.session_summaries;
  v_history jsonb;
begin
  perform private.require_arg('p_session_id', p_session_id);
  select * into v_s from public.sessions where id = p_session_id;
  if v_s.id is null or not (v_admin or v_s.customer_id = v_uid or v_s.mechanic_id is not distinct from v_uid) then
    perform private.raise_error('not_found', 'no such session');
  end if;
  select * into v_latest from public.session_summaries
  where session_id = v_s.id and status = 'submitted' order by version desc limit 1;
  select coalesce(jsonb_agg(private.summary_json(x) order by x.version desc), '[]') into v_history
  from public.session_summaries x where x.session_id = v_s.id and x.status = 'submitted';
  if v_admin or v_s.mechanic_id is not distinct from v_uid then
    select * into v_draft from public.session_summaries where session_id = v_s.id and status = 'draft';
  end if;
  if v_s.customer_id = v_uid and v_latest.id is not null
     and not exists (select 1 from public.crm_interactions c
                     where c.customer_id = v_uid and c.kind = 'summary_viewed' and c.subject_id = v_latest.id) then
    perform private.crm_record(v_uid, 'summary_viewed', now(), v_s.intake_id, v_s.id, v_latest.id,
                               jsonb_build_object('version', v_latest.version));
  end if;
  return jsonb_build_object('session_id', v_s.id, 'latest', private.summary_json(v_latest), 'history', v_history,
                            'draft', private.summary_json(v_draft));
end
$$;
revoke execute on function public.get_session_summary(uuid) from public, anon;
grant execute on function public.get_session_summary(uuid) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- Lifecycle step (journey/hooks.sql): a completed session's summary window opens. The notes a
-- mechanic passes to end_session become the findings of the draft (created when there is none),
-- so clients that only send notes still leave a summary to submit; sessions.mechanic_notes keeps
-- them too.
-- ---------------------------------------------------------------------------------------------
create or replace function private.summaries_on_session_completed(p_session_id uuid, p_delivery text) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_s public.sessions;
  v_untouched boolean;
  v_row public.session_summaries;
begin
  select * into v_s from public.sessions where id = p_session_id;
  if v_s.mechanic_notes is null or v_s.mechanic_id is null then
    return;
  end if;
  -- A client that never wrote a structured summary for this session (only end_session's notes)
  -- gets what it always had: the notes delivered to the customer at the end, as version 1. A
  -- client that keeps a draft gets the notes as the draft's findings and submits it itself.
  v_untouched := not exists (select 1 from public.session_summaries x where x.session_id = v_s.id);
  if v_untouched or not exists (select 1 from public.session_summaries x
                                where x.session_id = v_s.id and x.status = 'draft'
                                  and x.findings = v_s.mechanic_notes) then
    v_row := private.summary_write_draft(v_s, v_s.mechanic_id, jsonb_build_object('findings', v_s.mechanic_notes));
    if v_untouched then
      perform private.summary_submit(v_s, v_row);
    end if;
  end if;
end
$$;
revoke execute on function private.summaries_on_session_completed(uuid, text) from public;
grant execute on function private.summaries_on_session_completed(uuid, text) to service_role;
-- <<< functions_sql journey/summaries.sql

-- >>> functions_sql payments/stripe_events.sql sha256=4ce61ce9cfefa4baac3f3e9bcea7fde138656823399523df35da2611f8a94edb
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
      elsif v_booking.follow_up_id is not null then
        -- a follow-up question past the free ones (journey/follow_ups.sql): filed, or refunded
        -- like any unfulfilled booking
        v_ids := private.file_paid_follow_up(v_booking.id, v_payment.amount_cents, p_now);
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

-- >>> functions_sql scheduling/changes.sql sha256=9e87d0da79c6f8a24def78eb05896b5b82b7818be3e4e503ddd3e3c46cebae77
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
  perform private.messages_on_booking_rescheduled(v_session, lower(v_old.during));  -- journey/messages.sql
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

-- >>> functions_sql scheduling/reminders.sql sha256=a6dc4c21da22223a56fdc58f4507ed12770b057dcaf5543048bbbd5511e850ee
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
  perform private.messages_on_booking_cancelled(v_s);  -- both sides: journey/messages.sql
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

-- >>> functions_sql trust/limits.sql sha256=fad6fd79cdb0a0347458353a0df26e95f8dabac768a6b44c7a28160c32ab47fe
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
-- holds count too (p_with_holds), so two free slots cannot be held at once. A free follow-up
-- question (parent_session_id set) is counted on its thread instead (journey/follow_ups.sql).
create or replace function private.free_sessions_used(
  p_customer_id uuid, p_with_holds boolean, p_exclude_hold_id uuid, p_now timestamptz
) returns int
language sql stable security definer set search_path = ''
as $$
  select (select count(*)::int from public.sessions s
          where s.customer_id = p_customer_id and s.price_cents = 0 and s.parent_session_id is null
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
-- Takes the customer's lock and refuses with limit_reached: too many open requests, a second open
-- request for the same preferred mechanic. Every request counts, a follow-up question too
-- (journey/follow_ups.sql calls it directly: its free ones are counted on their thread).
create or replace function private.check_open_request_limits(
  p_customer_id uuid, p_preferred_mechanic_id uuid, p_now timestamptz default now()
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
end
$$;
revoke execute on function private.check_open_request_limits(uuid, uuid, timestamptz) from public;
grant execute on function private.check_open_request_limits(uuid, uuid, timestamptz) to service_role;

-- The open-request limits above and, for a free request, the free sessions of the account.
-- Called by private.create_session_request (every path that creates a request) and, before any
-- money moves, by private.prepare_checkout.
create or replace function private.check_demand_limits(
  p_customer_id uuid, p_price_cents int, p_preferred_mechanic_id uuid, p_now timestamptz default now()
) returns void
language plpgsql security definer set search_path = ''
as $$
begin
  perform private.check_open_request_limits(p_customer_id, p_preferred_mechanic_id, p_now);
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

reset check_function_bodies;

-- functions_sql-manifest: the state of supabase/functions_sql/ after this migration
-- functions_sql-manifest core/admin.sql sha256=3ffcd3451d9f9aa0ebd9a8065c10592403dd1886d07e32da52a70c4f31ce01d0
-- functions_sql-manifest core/broadcasts.sql sha256=c93578c48e0d8c0c565a87dcb05642e2db63a0c8f168c31dee9dff2d1c798cec
-- functions_sql-manifest core/directory.sql sha256=97061e15165f3460c9f89023ee7162fa3b68d758e42d9d514665d237c6eb604d
-- functions_sql-manifest core/errors.sql sha256=3162f074770469a2c8f8cc6e582405853f74e510e71a3961234876f8a544d9d2
-- functions_sql-manifest core/helpers.sql sha256=fa1872c37c33a27b6875c41ae6e7c365f5d0a366926f2c758b43d0f067205e2e
-- functions_sql-manifest core/lifecycle.sql sha256=5f3ed2f9a8e654d5ca93bbf7edf248cd364e4ce5a123279775841ea40f774886
-- functions_sql-manifest core/rpc.sql sha256=ab9059793859f4a0aa99e39153809a125acc486aa8ba9bd6475725fc83334ffa
-- functions_sql-manifest core/sessions.sql sha256=34d1c57c543b4af7a31971a73c346d28281f718ba53fc1ae184a9f1a8bf931f1
-- functions_sql-manifest core/signup.sql sha256=c1eaadc2d934df2bed3300c53885004a45fe59fb472bdbece20a33b0f704bd17
-- functions_sql-manifest core/transitions.sql sha256=098fdf6854df746cfb9fab11e2976507138ad996dc669984166c96a30e18f979
-- functions_sql-manifest jobs/admin.sql sha256=a431c8c37cae7835a803b49b41130f31e66f3e6dc2910f9e6f350a8b69944b13
-- functions_sql-manifest jobs/emails.sql sha256=b143b84726f6a930f3e53cd3b60f284b256b874ae0607350a333069d929dccb4
-- functions_sql-manifest jobs/nudges.sql sha256=2c190ede7b490ef8f2ff1cd61d1b4a4b5a7c9222e325f13f0cee406020ebb121
-- functions_sql-manifest jobs/outbox.sql sha256=2b71c342ff6ea91cdda0c0de9cb671b3d678768aabd67044c635de6c5b65ba86
-- functions_sql-manifest jobs/runs.sql sha256=22697585fd787eecd46440d55f7e68b6096ccbffae106360d2eca48014e3fd98
-- functions_sql-manifest jobs/schedules.sql sha256=7fd96d235d3fdbf1629e27457c32f256036082972cfcd47bda8dc008df14baf8
-- functions_sql-manifest jobs/sweep_requests.sql sha256=b71a7b97d2dec4579abcbd95477cd30cdcb2e1eb45123abd343bd2aaf4b2d948
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
-- functions_sql-manifest matching/listing.sql sha256=3fe126794fb7ae8aeaac46108933767ecec0f7430e52b0c0fdf954eeeafeb649
-- functions_sql-manifest matching/metrics.sql sha256=16e0bfa047e423ebe70c19b3ca3e25ca809a7c0649361b46516eccb088b98145
-- functions_sql-manifest matching/presence.sql sha256=421df5980727f44db43fb1f9d2d00e506c103f9cf5a1c41dc5bc75ed7ebdfac7
-- functions_sql-manifest matching/ranking.sql sha256=79691d024eea19b79204a38924e802489e5bcd816e4517eec8bb57b87eb0be94
-- functions_sql-manifest matching/routing.sql sha256=b3a2f3e4e7eeed9b1c5a4d10136809fb13dd99f0d72fa5018c2384fc8a52a7cf
-- functions_sql-manifest micro/caps.sql sha256=fdb53cb5189eed36f0ef794df0db47f8211a1d85db656a09f976cd5fa0555de6
-- functions_sql-manifest micro/clock.sql sha256=32f42427523e5c8be8e9fef6f730b3c8c24fa1054af8a6d2c488b821b12782ca
-- functions_sql-manifest micro/dashboards.sql sha256=1d84b7005d832d8d31bd90af0f51609bb0835cad1c1adb80b551238a8e1d3fee
-- functions_sql-manifest micro/settings.sql sha256=356a78efd80f0d129aee86690203858fd1eb41951ee61f292cd27c6c455a53b6
-- functions_sql-manifest payments/admin.sql sha256=1e117ff190427ab5d40ab22de5fc00ab39dc4e8c7ae9c0f8063d3463907e2f1a
-- functions_sql-manifest payments/checkout.sql sha256=6b2edd65f5b39f3aa6a8673a415c393753c9fd18a44e634ce746636ae401f384
-- functions_sql-manifest payments/connect.sql sha256=a8b79815e5f06ce6f00f3f5f82767bb9579e5e9c5f750338fc5c905c866b306d
-- functions_sql-manifest payments/credit.sql sha256=46ca316d088673f86ba57da14e97a14d761a4570debc1f3ad5d74e2538deb54f
-- functions_sql-manifest payments/helpers.sql sha256=564335851c5012a83791aa07b04ab1e2be627799d5b7fb91e995d57776037964
-- functions_sql-manifest payments/integrity.sql sha256=6c2bba7a49c6003ae582231db463a52ae56cde445b3c027d38edb86ffe550532
-- functions_sql-manifest payments/refunds.sql sha256=cae62e292095da8bea25a5efa26fee737f917ddad64674940e764dbdd029a64f
-- functions_sql-manifest payments/settlement.sql sha256=61eab335038603d3c5ca74c4d5482699ff096571f76b57d4ec1be1fe4f84f015
-- functions_sql-manifest payments/stripe_events.sql sha256=4ce61ce9cfefa4baac3f3e9bcea7fde138656823399523df35da2611f8a94edb
-- functions_sql-manifest payments/stripe_worker.sql sha256=7a1794a993228bf0823b97a16ae0d8c7460154642cef84408597c4004e8603ae
-- functions_sql-manifest reviews/prompts.sql sha256=e3c52363528fd28863d3b82dba2a77c539334fee239d433a2c08860bc8182791
-- functions_sql-manifest reviews/public_view.sql sha256=3163f057402af1cc7203ef9ca04b483045d3e1e48322d23e5b7deb6c30c03414
-- functions_sql-manifest reviews/reputation.sql sha256=94a660258d69a38250c8f5efcd36415d5d0e8347bec1a6c772634db1fe37054a
-- functions_sql-manifest reviews/reviews.sql sha256=acb29b4bdf4a2cccae60ad261d0aebd3b2c0ec8dd85824ac9060ecc5d46cad36
-- functions_sql-manifest rooms/access.sql sha256=1b63c186ad327a61c6f7c2eea4436148cd145987bec6902fa111b45b7639ae8f
-- functions_sql-manifest rooms/extensions.sql sha256=ecdb7236fec9d57e29a438797584ac830db6c0cf66795c8b03df65da3635e495
-- functions_sql-manifest rooms/livekit_events.sql sha256=cc2b9fea2937b577fdb85e91e226156f3d7dd339706f5a61c3892c359d9a4e4a
-- functions_sql-manifest rooms/timers.sql sha256=5265ead1f8b4bfd63c4236d6fc0d07afe4bc0053d21060682f6d557b921261c8
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
-- functions_sql-manifest trust/standing.sql sha256=9bd4e9285f6eaef814fee4f492354878c824fe6cd88f0c76005eab6032938f80
-- functions_sql-manifest trust/waiver.sql sha256=e55e17a34963e554f36bec304c2212fe7765268192081a2d2502a28c9ca38b41
-- functions_sql-manifest workshops/appointments.sql sha256=5f6530bed3befb05a76302182e756dc65303c345cb474afd3fe6db59db4b7273
-- functions_sql-manifest workshops/appointments_notify.sql sha256=50c518c61b4fc52577450080ed5407dd64a20d205da2f504932b11d47cc228cb
-- functions_sql-manifest workshops/appointments_rpc.sql sha256=f88d70f5575415327a86ef0017bceacc6b7454be95e3983d1e847d0552acaee6
-- functions_sql-manifest workshops/directory.sql sha256=b4ca0b3283f5e9f382ac3aa61acf49ff546d43813a20baccbd4944bec3c7f93b
-- functions_sql-manifest workshops/dispatch.sql sha256=db61193624f16d01338b25aacc63226c1e4a0a26de073f1545f5b6f4ae96b2a4
-- functions_sql-manifest workshops/hooks.sql sha256=99e01f958c1f3ab8d67144edc06dd9df28f576f36731ea05f68d45e364ae57be
-- functions_sql-manifest workshops/onboarding.sql sha256=e87adb002d0f385a05e4eb6d5afcfb9be7709db45545929d201c575f507b8cb7
-- functions_sql-manifest workshops/referral.sql sha256=6bada6ae6e424f43ccae0e5cfeb7f479c054fe63e09c36d0d9a5fa91026b5f75
-- functions_sql-manifest workshops/roster.sql sha256=54b139b2071afad60fa701efeddf2dba296ddb2162f689aba18640a68036f187
-- functions_sql-manifest workshops/specialists.sql sha256=8005a20dd10a143a3921224766e65c28f4c8d57d9e3402851b96556e60b9c291
