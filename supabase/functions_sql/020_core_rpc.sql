-- Core marketplace RPCs (the client contract, docs/api.md) and the private functions behind
-- them. Every public RPC is security definer because it writes rows the caller may only read;
-- each one checks who calls, what they may do and its input first, raises a registered error
-- (docs/error_codes.md), and only then writes — all in the caller's one transaction.

-- ---------------------------------------------------------------------------------------------
-- Private building blocks (also used by payments, matching and jobs)
-- ---------------------------------------------------------------------------------------------

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
  -- Lock the intake: two requests for one intake serialize here.
  select * into v_intake from public.intakes where id = p_intake_id and customer_id = p_customer_id for update;
  if not found then
    perform private.raise_error('not_found', 'no such intake');
  end if;
  if v_intake.status <> 'new' then
    perform private.raise_error('conflict', format('the intake is %s, not new', v_intake.status));
  end if;
  if coalesce(p_vehicle_id, v_intake.vehicle_id) is not null then
    select * into v_vehicle from public.vehicles
    where id = coalesce(p_vehicle_id, v_intake.vehicle_id) and owner_id = p_customer_id;
    if not found then
      perform private.raise_error('not_found', 'no such vehicle');
    end if;
  end if;
  if p_preferred_mechanic_id is not null then
    if p_preferred_mechanic_id = p_customer_id then
      perform private.raise_error('invalid_input', 'the preferred mechanic cannot be the customer');
    end if;
    perform 1 from public.mechanics where id = p_preferred_mechanic_id and status = 'approved';
    if not found then
      perform private.raise_error('not_found', 'no such approved mechanic');
    end if;
  end if;

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
  v_buffer interval := private.setting_interval('scheduling.buffer');
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

  update public.sessions s
  set status = 'waiting', mechanic_id = p_mechanic_id, status_changed_at = p_now
  where s.id = v_request.session_id and s.status = 'pending'
  returning * into v_session;
  if not found then
    perform private.raise_error('conflict', 'the session of this request is no longer pending');
  end if;

  -- Participation mode, shift and daily micro cap (micro-sessions domain); reserves micro minutes.
  perform private.check_and_reserve_accept(p_mechanic_id, v_session.id, p_now);

  insert into public.session_participants (session_id, user_id, role)
  values (v_session.id, v_session.customer_id, 'customer'), (v_session.id, p_mechanic_id, 'mechanic')
  on conflict (session_id, user_id) do nothing;

  insert into public.mechanic_commitments (mechanic_id, kind, status, during, session_id, request_id)
  values (p_mechanic_id, 'on_demand', 'in_progress',
          tstzrange(p_now, p_now + make_interval(mins => v_session.planned_minutes) + v_buffer),
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

-- Cancels a session that has not ended, with its request and held time.
create or replace function private.cancel_session(p_session_id uuid, p_reason text, p_now timestamptz default now())
returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_intake uuid;
begin
  update public.sessions set status = 'cancelled', cancel_reason = p_reason, status_changed_at = p_now,
         ended_at = case when status = 'live' then p_now else ended_at end
  where id = p_session_id and status in ('pending', 'scheduled', 'waiting', 'live')
  returning intake_id into v_intake;
  update public.session_requests set status = 'cancelled', cancel_reason = p_reason, status_changed_at = p_now
  where session_id = p_session_id and status in ('pending', 'unattended', 'accepted');
  update public.session_offers set status = 'withdrawn'
  where request_id in (select r.id from public.session_requests r where r.session_id = p_session_id)
    and status in ('offered', 'queued');
  perform private.release_commitment(p_session_id, 'released', p_now);
  update public.intakes set status = 'new' where id = v_intake and status in ('pending', 'in_progress');
end
$$;
revoke execute on function private.cancel_session(uuid, text, timestamptz) from public;
grant execute on function private.cancel_session(uuid, text, timestamptz) to service_role;

-- Completes a live session.
create or replace function private.complete_session(
  p_session_id uuid, p_notes text, p_reason text, p_now timestamptz default now()
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_session public.sessions;
begin
  update public.sessions s
  set status = 'completed', ended_at = p_now, status_changed_at = p_now,
      duration_minutes = greatest(0, ceil(extract(epoch from (p_now - coalesce(s.started_at, p_now))) / 60))::int,
      mechanic_notes = coalesce(p_notes, s.mechanic_notes), cancel_reason = coalesce(p_reason, s.cancel_reason)
  where s.id = p_session_id and s.status = 'live'
  returning * into v_session;
  if not found then
    perform private.raise_error('invalid_transition', 'only a live session can be ended');
  end if;
  perform private.release_commitment(p_session_id, 'done', p_now);
  update public.mechanics set completed_sessions = completed_sessions + 1 where id = v_session.mechanic_id;
  update public.intakes set status = 'resolved' where id = v_session.intake_id;
  return jsonb_build_object('session_id', v_session.id, 'status', 'completed', 'ended_at', v_session.ended_at,
                            'duration_minutes', v_session.duration_minutes);
end
$$;
revoke execute on function private.complete_session(uuid, text, text, timestamptz) from public;
grant execute on function private.complete_session(uuid, text, text, timestamptz) to service_role;

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
  if p_request_id is null then
    perform private.raise_error('invalid_input', 'p_request_id is required');
  end if;
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
  if p_request_id is null then
    perform private.raise_error('invalid_input', 'p_request_id is required');
  end if;
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
    perform private.set_actor('customer', coalesce(v_reason, 'cancelled by the customer'));
    perform private.cancel_session(v_request.session_id, coalesce(v_reason, 'cancelled by the customer'), now());
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
  if p_session_id is null then
    perform private.raise_error('invalid_input', 'p_session_id is required');
  end if;
  select * into v_session from public.sessions where id = p_session_id for update;
  if not found or (v_session.customer_id <> v_uid and v_session.mechanic_id is distinct from v_uid) then
    perform private.raise_error('not_found', 'no such session');
  end if;
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
  if p_session_id is null then
    perform private.raise_error('invalid_input', 'p_session_id is required');
  end if;
  select * into v_session from public.sessions where id = p_session_id for update;
  if not found or (v_session.customer_id <> v_uid and v_session.mechanic_id is distinct from v_uid) then
    perform private.raise_error('not_found', 'no such session');
  end if;
  if v_session.status <> 'live' then
    perform private.raise_error('invalid_transition', format('a %s session cannot be ended', v_session.status));
  end if;
  if v_session.mechanic_id = v_uid then
    perform private.set_actor('mechanic');
    return private.complete_session(p_session_id, v_notes, null, now());
  end if;
  -- The customer's notes are not the mechanic's summary: they are not stored as such.
  perform private.set_actor('customer');
  return private.complete_session(p_session_id, null, null, now());
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
  if p_online is null then
    perform private.raise_error('invalid_input', 'p_online is required');
  end if;
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
  if p_session_id is null then
    perform private.raise_error('invalid_input', 'p_session_id is required');
  end if;
  select status into v_status from public.sessions where id = p_session_id for update;
  if not found then
    perform private.raise_error('not_found', 'no such session');
  end if;
  perform private.set_actor('admin', v_reason);
  if v_status = 'live' then
    return private.complete_session(p_session_id, null, v_reason, now());
  elsif v_status in ('pending', 'scheduled', 'waiting') then
    perform private.cancel_session(p_session_id, v_reason, now());
    return jsonb_build_object('session_id', p_session_id, 'status', 'cancelled');
  end if;
  perform private.raise_error('invalid_transition', format('the session is already %s', v_status));
  return null;
end
$$;
revoke execute on function public.admin_force_end_session(uuid, text) from public, anon;
grant execute on function public.admin_force_end_session(uuid, text) to authenticated, service_role;

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
