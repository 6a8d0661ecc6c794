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
  perform private.check_preferred_eligible(p_preferred_mechanic_id, v_plan.code, p_now);
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
