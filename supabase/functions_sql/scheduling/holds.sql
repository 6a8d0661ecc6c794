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
    from private.open_ranges(array[p_mechanic_id], p_start, p_start + v_dur) o
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
