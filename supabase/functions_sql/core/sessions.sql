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
  v_approval_until timestamptz;
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
  -- assigning (p_bypass_window), and the mechanic an admin offered the request to (during the
  -- offer's window), are not held to it.
  if not p_bypass_window
     and not exists (select 1 from public.session_requests r
                     where r.id = p_request_id and r.offered_mechanic_id = p_mechanic_id and r.broadcast_at > p_now) then
    perform private.check_release_limits(v_mechanic, p_request_id, p_now);
  end if;
  if exists (select 1 from public.mechanic_commitments c
             where c.mechanic_id = p_mechanic_id and c.status = 'in_progress') then
    perform private.raise_error('mechanic_busy', 'finish or release your current session first');
  end if;

  -- During an exclusive window (the customer's preferred mechanic, or the mechanic an admin offered
  -- it to: private.offer_request) only that mechanic may take it.
  update public.session_requests r
  set status = 'accepted', mechanic_id = p_mechanic_id, accepted_at = p_now, status_changed_at = p_now
  where r.id = p_request_id and r.status in ('pending', 'unattended') and r.customer_id <> p_mechanic_id
    and (p_bypass_window or r.broadcast_at <= p_now
         or coalesce(r.offered_mechanic_id, r.preferred_mechanic_id) = p_mechanic_id)
  returning * into v_request;
  if not found then
    select * into v_request from public.session_requests where id = p_request_id;
    if not found then
      perform private.raise_error('not_found', 'no such request');
    elsif v_request.customer_id = p_mechanic_id then
      perform private.raise_error('not_allowed', 'a mechanic cannot take its own request');
    elsif v_request.status in ('pending', 'unattended') then
      perform private.raise_error('request_not_available', 'another mechanic has it first (an exclusive window)');
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
  -- A workshop that does not accept micro-sessions automatically approves the accept through a
  -- dispatcher within a window (workshops/dispatch.sql); admins assigning do not wait.
  if v_session.duration_type = 'micro' and v_mechanic.organization_id is not null and not p_bypass_window then
    v_approval_until := private.micro_approval_until(v_mechanic, p_now);
    if v_approval_until is not null then
      update public.session_requests set approval_pending_until = v_approval_until where id = v_request.id;
    end if;
  end if;

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
  return jsonb_build_object('request_id', v_request.id, 'session_id', v_session.id, 'status', 'accepted',
                            'approval_pending_until', v_approval_until);
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
