-- message_wording: supabase/functions_sql/ as of this migration, written by `autodoctor db commit`.
-- Whole files, re-runnable, in path order; then the drops of what they no longer define.
-- Edit the files in supabase/functions_sql/, never this migration (see docs/migrations.md).
set check_function_bodies = off;

-- >>> functions_sql core/rpc.sql sha256=6a9f56292ebdcfa9c67e6a3e885c18eb185ee551917a9bae617854e49ef35dbb
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
    perform private.raise_error('invalid_transition', format('the session is %s: it cannot be started', v_session.status));
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
    perform private.raise_error('invalid_transition', format('the session is %s: it cannot be ended', v_session.status));
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

-- >>> functions_sql payments/checkout.sql sha256=b1bed8c6bff974894bb274b364622547b672c43a2ef9a2ca0b964862dcf7d04c
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

-- >>> functions_sql rooms/extensions.sql sha256=77c1726910f36d5ac38ac3d30d499d9b9b90c8a67a1599562049464201d9328a
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

-- >>> functions_sql scheduling/changes.sql sha256=ea0d2fbf56d319a0e7d6bcdd2595e1f6323bb0bb7804a35103f07c1f1c7bda5e
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

reset check_function_bodies;

-- functions_sql-manifest: the state of supabase/functions_sql/ after this migration
-- functions_sql-manifest core/admin.sql sha256=3ffcd3451d9f9aa0ebd9a8065c10592403dd1886d07e32da52a70c4f31ce01d0
-- functions_sql-manifest core/broadcasts.sql sha256=c93578c48e0d8c0c565a87dcb05642e2db63a0c8f168c31dee9dff2d1c798cec
-- functions_sql-manifest core/directory.sql sha256=bc92ebaf83f9d3782a918145c2a44fd3995622dff057f908249c81dd7289c92f
-- functions_sql-manifest core/helpers.sql sha256=fa1872c37c33a27b6875c41ae6e7c365f5d0a366926f2c758b43d0f067205e2e
-- functions_sql-manifest core/lifecycle.sql sha256=085845aef043f282c520acbf6dd067d763d71d82b970c25e6286ab2db6ccd3d1
-- functions_sql-manifest core/rpc.sql sha256=6a9f56292ebdcfa9c67e6a3e885c18eb185ee551917a9bae617854e49ef35dbb
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
-- functions_sql-manifest payments/checkout.sql sha256=b1bed8c6bff974894bb274b364622547b672c43a2ef9a2ca0b964862dcf7d04c
-- functions_sql-manifest payments/connect.sql sha256=a8b79815e5f06ce6f00f3f5f82767bb9579e5e9c5f750338fc5c905c866b306d
-- functions_sql-manifest payments/credit.sql sha256=46ca316d088673f86ba57da14e97a14d761a4570debc1f3ad5d74e2538deb54f
-- functions_sql-manifest payments/helpers.sql sha256=564335851c5012a83791aa07b04ab1e2be627799d5b7fb91e995d57776037964
-- functions_sql-manifest payments/integrity.sql sha256=53638ac80faedb77c2e9dfcb8a44542f7fea7660de2751adb6fd25577b9c90e0
-- functions_sql-manifest payments/refunds.sql sha256=4edb68f527fb1003c755f4ec54da1214e1e63810003107ad81db117692e51fb7
-- functions_sql-manifest payments/settlement.sql sha256=0735e958fe9a2a1d5c6876e38fe4deb0f07c6b6b79694bf34d016d43d92462d5
-- functions_sql-manifest payments/stripe_events.sql sha256=e9afa113c50d272f865dcc0fb91ab7698503b2241c4381c27b94dd8de600e7bd
-- functions_sql-manifest payments/stripe_worker.sql sha256=1782c4903cee22796340dbe8043d1ae0f3b1446280d7d4259f6bda91cc80fe6c
-- functions_sql-manifest rooms/access.sql sha256=a07718bc391f20859bd2562f9ed876e7465f94d1363c6673677a15292db0ce36
-- functions_sql-manifest rooms/extensions.sql sha256=77c1726910f36d5ac38ac3d30d499d9b9b90c8a67a1599562049464201d9328a
-- functions_sql-manifest rooms/livekit_events.sql sha256=b63917c708016a2c5b78a960c3e9bbce14be641ad2a8278f0f213df60c70fe78
-- functions_sql-manifest rooms/timers.sql sha256=5265ead1f8b4bfd63c4236d6fc0d07afe4bc0053d21060682f6d557b921261c8
-- functions_sql-manifest scheduling/availability_rpc.sql sha256=6ba1e8bdbaf284ff3c92a76157bc70f073d3a842761f80369e14aa6cebf35514
-- functions_sql-manifest scheduling/booking_rpc.sql sha256=e5ff81674f7b6982fc33b2124ebe6ca52d85fd1deb3c169b31ebdcbb7b887b1c
-- functions_sql-manifest scheduling/calendar.sql sha256=6100fcc60a2a22bf1e09c2b682833fb40ba154ad5e9064b7c0bcd8c53b3a8324
-- functions_sql-manifest scheduling/changes.sql sha256=ea0d2fbf56d319a0e7d6bcdd2595e1f6323bb0bb7804a35103f07c1f1c7bda5e
-- functions_sql-manifest scheduling/committed_time.sql sha256=ddd38c89b02e59607f7f40768eae0c22b177f351729f61bf8b9c6c5b3784f553
-- functions_sql-manifest scheduling/holds.sql sha256=b5c8d45faa65a01d118217605eaa7aeb6d386c0a8c1d9377135c2610cfe43b1f
-- functions_sql-manifest scheduling/jobs.sql sha256=0e6312d573231b426c54900221c5b0ecbf53894ff7a9f634acf5d59fec14b64a
-- functions_sql-manifest scheduling/open_time.sql sha256=1825042aaf3c81077d65b47f47ae38afe1173a8b9ea12e338de9fc6041f5513c
-- functions_sql-manifest scheduling/reminders.sql sha256=025401df24f13a2de6d28c5ef71abd2134b287a87e25f0a98b395e69bc743734
-- functions_sql-manifest scheduling/rules.sql sha256=77e8204836c14debf06ee1933b26252a7fee4d3089fe7720ddf73d0adbed1af3
