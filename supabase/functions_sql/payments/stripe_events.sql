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
