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
