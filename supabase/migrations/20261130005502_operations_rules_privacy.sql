-- operations_rules_privacy: supabase/functions_sql/ as of this migration, written by `autodoctor db commit`.
-- Whole files, re-runnable, in path order; then the drops of what they no longer define.
-- Edit the files in supabase/functions_sql/, never this migration (see docs/migrations.md).
set check_function_bodies = off;

-- >>> functions_sql core/admin.sql sha256=f3423df9a7c70656d684d4eacda964fa8cd797385cbe652f801bc08abd55edc0
-- Core admin RPCs: mechanic status, manual assignment, force-ending a session.

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
  if v_status <> 'suspended' then
    perform private.require_not_erased(p_mechanic_id);  -- privacy/erasure.sql
  end if;
  update public.mechanics
  set status = v_status,
      approved_at = case when v_status = 'approved' then coalesce(approved_at, now()) else approved_at end,
      is_available = case when v_status = 'approved' then is_available else false end
  where id = p_mechanic_id
  returning * into v_row;
  if not found then
    perform private.raise_error('not_found', 'no such mechanic');
  end if;
  perform private.record_admin_action('mechanic.set_status', 'mechanic', v_row.id, null,
                                      jsonb_build_object('to', v_row.status));
  return jsonb_build_object('mechanic_id', v_row.id, 'status', v_row.status, 'approved_at', v_row.approved_at);
end
$$;
revoke execute on function public.admin_set_mechanic_status(uuid, text) from public, anon;
grant execute on function public.admin_set_mechanic_status(uuid, text) to authenticated, service_role;

-- A manual assignment is an offer, not an order: mechanics are contractors who may always decline.
-- The admin offers the request to one mechanic, who has it alone for matching.admin_offer_window and
-- accepts (accept_request) or declines (decline_offer) it (private.offer_request, matching/routing.sql).
create or replace function public.admin_assign_request(p_request_id uuid, p_mechanic_id uuid) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_result jsonb;
begin
  perform private.require_admin();
  if p_request_id is null or p_mechanic_id is null then
    perform private.raise_error('invalid_input', 'p_request_id and p_mechanic_id are required');
  end if;
  v_result := private.offer_request(p_request_id, p_mechanic_id, now());
  perform private.record_admin_action('request.offer', 'request', p_request_id, null,
                                      jsonb_build_object('mechanic_id', p_mechanic_id));
  return v_result;
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
  perform private.require_arg('p_session_id', p_session_id);
  select status into v_status from public.sessions where id = p_session_id for update;
  if not found then
    perform private.raise_error('not_found', 'no such session');
  end if;
  if v_status = 'live' then
    return private.complete_session(p_session_id, null, v_reason, now(), 'admin');
  elsif v_status in ('pending', 'scheduled', 'waiting') then
    perform private.cancel_session(p_session_id, v_reason, now(), 'admin');
    return jsonb_build_object('session_id', p_session_id, 'status', 'cancelled');
  end if;
  perform private.raise_error('invalid_transition', format('the session is already %s', v_status));
  return null;
end
$$;
revoke execute on function public.admin_force_end_session(uuid, text) from public, anon;
grant execute on function public.admin_force_end_session(uuid, text) to authenticated, service_role;
-- <<< functions_sql core/admin.sql

-- >>> functions_sql core/rpc.sql sha256=a1fd838cb4fc123595c3b065b2fa6c2034654aeb479050921f7bf4509b15cea6
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
  perform private.check_preferred_mechanic(v_uid, p_preferred_mechanic_id);
  perform private.check_preferred_eligible(p_preferred_mechanic_id, p_plan_code, now());
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
  perform private.require_micro_approved(v_session.id);
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

-- >>> functions_sql core/sessions.sql sha256=dc306360e4147de60a109be0b93dc249b6c67ff6abd0771b50bbd0a76e6ced5d
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
-- <<< functions_sql core/sessions.sql

-- >>> functions_sql jobs/nudges.sql sha256=133086b270ff41327c4314b308a0dd05c773f505a6d22e28d7d5b769bc5b18f0
-- Jobs: nudges, support alerts and starting notices.

-- ---------------------------------------------------------------------------------------------
-- cron_nudges: accepted but not started after 3 minutes → nudge the mechanic (Realtime + email),
-- after 2 minutes → alert support (admin:queue + email). Each once per session.
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

-- >>> functions_sql matching/listing.sql sha256=6e0c8a27974f244f39be7827a632071f6755ee5675563f3dd1c0d2093e9f3734
-- Matching: the available-mechanics listing for customers.

-- ---------------------------------------------------------------------------------------------
-- Available mechanics for customers (the first step of a request): only those who can take the
-- session now — online, not holding an accepted request or a live session, not on time off — so a
-- customer never picks (and waits on) a mechanic who cannot accept. p_session_type filters by the
-- micro-session rules (micro/caps.sql private.micro_refusal, as can_accept_session): `micro` lists
-- mechanics whose participation mode, shift, workshop and daily cap allow the shortest micro plan;
-- a full session (standard, extended, or chat/video/diagnostic) leaves out micro-only mechanics.
-- Ordered by the Bayesian rating (rating_score), then customers served. The average minutes from
-- offer to acceptance come from real history, null when there is none.
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
  v_micro_minutes int := (select min(p.minutes) from public.service_plans p
                          where p.active and p.duration_type = 'micro');
begin
  perform private.require_user();
  if p_limit is null or p_limit < 1 or p_limit > 100 then
    perform private.raise_error('invalid_input', 'p_limit must be between 1 and 100');
  end if;
  if p_session_type is not null
     and p_session_type not in ('chat', 'video', 'diagnostic', 'micro', 'standard', 'extended') then
    perform private.raise_error('invalid_input',
      'p_session_type must be chat, video, diagnostic, micro, standard or extended');
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
      and not exists (select 1 from public.mechanic_time_off t where t.mechanic_id = m.id and t.during @> now())
      and (p_session_type is null
           or (private.micro_refusal(m, p_session_type = 'micro',
                                     case when p_session_type = 'micro' then v_micro_minutes else 0 end, now())).reason
              is null)
      and (not coalesce(p_specialist, false)
           or (m.is_brand_specialist
               and m.brand_keys @> array[lower(btrim(p_brand))]))
      and (p_city is null or m.city_key = lower(btrim(p_city)))
  ),
  page as (
    select l.* from listed l
    where l.presence = 'online'
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

-- >>> functions_sql matching/routing.sql sha256=58ba5a184a80e0036de26d1265fd8e96cf3f2556ad35f0ddc3fd7e0bc5d0cb9d
-- Matching: routing of requests (preferred window → targeted offers → broadcast).

-- ---------------------------------------------------------------------------------------------
-- Routing state on requests
-- ---------------------------------------------------------------------------------------------
create or replace function private.tg_session_requests__routing_defaults() returns trigger
language plpgsql set search_path = ''
as $$
begin
  if tg_op = 'INSERT' then
    new.keywords := private.extract_keywords(new.concern);
    new.keyword_bits := private.keyword_bits(new.keywords);
    new.broadcast_at := case when new.preferred_mechanic_id is not null
                             then new.created_at + private.setting_interval('matching.preferred_window')
                             else new.created_at end;
    new.next_route_at := new.created_at;
  elsif new.status = 'pending' and old.status = 'accepted' then
    new.next_route_at := now();  -- released by its mechanic: route it again
  elsif new.status not in ('pending', 'unattended') then
    new.next_route_at := null;
  end if;
  return new;
end
$$;
revoke execute on function private.tg_session_requests__routing_defaults() from public;
drop trigger if exists _050_routing_defaults on public.session_requests;
create trigger _050_routing_defaults before insert or update of status on public.session_requests
  for each row execute function private.tg_session_requests__routing_defaults();

-- A decline moves the request on: the next mechanic is offered it at the next dispatch; the
-- mechanic of an exclusive window (preferred by the customer, or offered it by an admin) declining
-- opens the request to everyone at once.
create or replace function private.tg_session_offers__decline_moves_on() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  update public.session_requests r
  set next_route_at = now(),
      broadcast_at = case when coalesce(r.offered_mechanic_id, r.preferred_mechanic_id) = new.mechanic_id
                               and r.broadcast_at > now()
                          then now() else r.broadcast_at end
  where r.id = new.request_id and r.status in ('pending', 'unattended');
  return null;
end
$$;
revoke execute on function private.tg_session_offers__decline_moves_on() from public;
drop trigger if exists _200_decline_moves_on on public.session_offers;
create trigger _200_decline_moves_on after insert or update of status on public.session_offers
  for each row when (new.status = 'declined' and new.mechanic_id is not null)
  execute function private.tg_session_offers__decline_moves_on();

-- Offers reach the mechanic: `offer` on insert, `offer_withdrawn` when withdrawn or expired.
create or replace function private.tg_session_offers__broadcast() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_req public.session_requests;
begin
  if new.mechanic_id is null then
    return null;
  end if;
  -- a new offer, or an offer made again (an admin's offer to a mechanic offered it before)
  if new.status = 'offered'
     and (tg_op = 'INSERT' or old.status <> 'offered' or new.expires_at is distinct from old.expires_at) then
    select * into v_req from public.session_requests where id = new.request_id;
    perform realtime.send(
      jsonb_build_object('request_id', v_req.id, 'session_id', v_req.session_id, 'session_type', v_req.session_type,
                         'plan_code', v_req.plan_code, 'specialist', v_req.specialist,
                         'vehicle_make', v_req.vehicle_make, 'vehicle_model', v_req.vehicle_model,
                         'vehicle_year', v_req.vehicle_year, 'concern', left(v_req.concern, 140),
                         'preferred', coalesce(v_req.preferred_mechanic_id = new.mechanic_id, false),
                         'offered_by_admin', coalesce(v_req.offered_mechanic_id = new.mechanic_id, false),
                         'score', new.score, 'reasons', new.reasons, 'expires_at', new.expires_at),
      'offer', 'mechanic:' || new.mechanic_id::text, true);
  elsif tg_op = 'UPDATE' and old.status = 'offered' and new.status in ('withdrawn', 'expired') then
    perform realtime.send(jsonb_build_object('request_id', new.request_id, 'reason', new.status),
                          'offer_withdrawn', 'mechanic:' || new.mechanic_id::text, true);
  end if;
  return null;
end
$$;
revoke execute on function private.tg_session_offers__broadcast() from public;
drop trigger if exists _300_broadcast on public.session_offers;
create trigger _300_broadcast after insert or update of status, expires_at on public.session_offers
  for each row execute function private.tg_session_offers__broadcast();

-- The card of a request that mechanics see (new_request, request_unattended): ids and card fields
-- only, never an email, phone or address.
create or replace function private.request_card(p_request public.session_requests) returns jsonb
language sql immutable set search_path = ''
as $$
  select jsonb_build_object(
    'request_id', p_request.id, 'session_id', p_request.session_id, 'session_type', p_request.session_type,
    'plan_code', p_request.plan_code, 'specialist', p_request.specialist, 'vehicle_make', p_request.vehicle_make,
    'vehicle_model', p_request.vehicle_model, 'vehicle_year', p_request.vehicle_year,
    'concern', left(p_request.concern, 140), 'preferred_mechanic_id', p_request.preferred_mechanic_id,
    'created_at', p_request.created_at)
$$;
revoke execute on function private.request_card(public.session_requests) from public;
grant execute on function private.request_card(public.session_requests) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Routing: preferred mechanic's exclusive window → targeted offers to the best mechanics and a
-- broadcast to every eligible one. Returns what it did. Idempotent: running it twice at the same
-- moment adds nothing.
-- ---------------------------------------------------------------------------------------------
create or replace function private.route_request(p_request_id uuid, p_now timestamptz default now())
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_req public.session_requests;
  v_targeted int := private.setting_int('matching.targeted_count');
  v_ttl interval := private.setting_interval('matching.offer_ttl');
  v_open int;
  v_new int := 0;
  v_broadcast boolean := false;
  v_next timestamptz;
begin
  select * into v_req from public.session_requests where id = p_request_id for update;
  if not found then
    perform private.raise_error('not_found', 'no such request');
  end if;
  if v_req.status not in ('pending', 'unattended') then
    update public.session_offers set status = 'withdrawn'
    where request_id = v_req.id and status in ('offered', 'queued');
    update public.session_requests set next_route_at = null where id = v_req.id and next_route_at is not null;
    return jsonb_build_object('request_id', v_req.id, 'stage', 'closed', 'status', v_req.status);
  end if;

  update public.session_offers set status = 'expired', responded_at = p_now
  where request_id = v_req.id and status = 'offered' and mechanic_id is not null and expires_at <= p_now;

  -- 1. The exclusive window: the mechanic an admin offered it to, else the preferred mechanic.
  if coalesce(v_req.offered_mechanic_id, v_req.preferred_mechanic_id) is not null and p_now < v_req.broadcast_at then
    insert into public.session_offers (request_id, mechanic_id, status, reasons, offered_at, expires_at)
    values (v_req.id, coalesce(v_req.offered_mechanic_id, v_req.preferred_mechanic_id), 'offered',
            case when v_req.offered_mechanic_id is not null then '[{"reason": "offered_by_admin", "points": 0}]'
                 else '[{"reason": "preferred_by_customer", "points": 0}]' end::jsonb, p_now, v_req.broadcast_at)
    on conflict (request_id, mechanic_id) where mechanic_id is not null do nothing;
    get diagnostics v_new = row_count;
    update public.session_requests set next_route_at = v_req.broadcast_at where id = v_req.id;
    return jsonb_build_object('request_id', v_req.id, 'stage', 'preferred', 'offers_created', v_new,
                              'next_route_at', v_req.broadcast_at);
  end if;

  -- 2. Open to everyone: one broadcast offer row; announce it when the creation did not.
  if not exists (select 1 from public.session_offers o where o.request_id = v_req.id and o.mechanic_id is null) then
    insert into public.session_offers (request_id, mechanic_id, status, reasons, offered_at)
    values (v_req.id, null, 'offered', '[{"reason": "broadcast", "points": 0}]', p_now);
    v_broadcast := true;
    if coalesce(v_req.offered_mechanic_id, v_req.preferred_mechanic_id) is not null then
      perform realtime.send(private.request_card(v_req), 'new_request', 'mechanics:requests', true);
    end if;
  end if;

  -- 3. Keep the targeted offers topped up with the next best mechanics not yet asked.
  select count(*) into v_open from public.session_offers o
  where o.request_id = v_req.id and o.mechanic_id is not null and o.status = 'offered' and o.expires_at > p_now;
  if v_open < v_targeted then
    insert into public.session_offers (request_id, mechanic_id, status, score, reasons, offered_at, expires_at)
    select v_req.id, k.mechanic_id, 'offered', k.score, k.reasons, p_now, p_now + v_ttl
    from private.rank_mechanics(v_req.id, v_targeted - v_open, p_now, true) k
    order by k.rank;
    get diagnostics v_new = row_count;
  end if;

  select min(o.expires_at) into v_next from public.session_offers o
  where o.request_id = v_req.id and o.mechanic_id is not null and o.status = 'offered' and o.expires_at > p_now;
  update public.session_requests set next_route_at = v_next where id = v_req.id;
  return jsonb_build_object('request_id', v_req.id, 'stage', 'targeted', 'offers_created', v_new,
                            'broadcast', v_broadcast, 'next_route_at', v_next);
end
$$;
revoke execute on function private.route_request(uuid, timestamptz) from public;
grant execute on function private.route_request(uuid, timestamptz) to service_role;

-- Routes every request that is due, claiming them with skip locked so that concurrent runs
-- share the work. Returns counts.
create or replace function private.dispatch_due(p_now timestamptz default now(), p_limit int default 200)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_id uuid;
  v_result jsonb;
  v_routed int := 0;
  v_offers int := 0;
begin
  if p_limit is null or p_limit < 1 or p_limit > 10000 then
    perform private.raise_error('invalid_input', 'p_limit must be between 1 and 10000');
  end if;
  for v_id in
    select r.id from public.session_requests r
    where r.status in ('pending', 'unattended') and r.next_route_at <= p_now
    order by r.next_route_at
    limit p_limit
    for update skip locked
  loop
    v_result := private.route_request(v_id, p_now);
    v_routed := v_routed + 1;
    v_offers := v_offers + coalesce((v_result ->> 'offers_created')::int, 0);
  end loop;
  return jsonb_build_object('routed', v_routed, 'offers_created', v_offers);
end
$$;
revoke execute on function private.dispatch_due(timestamptz, int) from public;
grant execute on function private.dispatch_due(timestamptz, int) to service_role;

-- ---------------------------------------------------------------------------------------------
-- A request is routed in the transaction that files it: the preferred mechanic's offer, or the
-- broadcast offer row and the targeted offers to the best mechanics. Later routing (window ends,
-- expiries, declines, releases) is the `dispatch` job's (private.schedules).
-- ---------------------------------------------------------------------------------------------
create or replace function private.tg_session_requests__route() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  perform private.route_request(new.id, now());
  return null;
end
$$;
revoke execute on function private.tg_session_requests__route() from public;
drop trigger if exists _500_route on public.session_requests;
create trigger _500_route after insert on public.session_requests
  for each row execute function private.tg_session_requests__route();

-- ---------------------------------------------------------------------------------------------
-- An admin's offer (public.admin_assign_request): a manual assignment is an offer, not an order,
-- since mechanics are contractors who may always decline. The request becomes the mechanic's alone
-- for matching.admin_offer_window — the exclusive window of matching (offered_mechanic_id,
-- broadcast_at), as for a preferred mechanic: other mechanics' open offers are withdrawn and the
-- open feed's offer row goes (it comes back, announced, when the window ends). The mechanic gets
-- its `offer` on mechanic:<id>; it accepts (accept_request) or declines (decline_offer, which opens
-- the request to everyone at once). The customer is told by email and by `request_offered` on
-- session:<id>. Only a mechanic who could accept it now may be offered it (mechanic_unavailable).
-- ---------------------------------------------------------------------------------------------
create or replace function private.offer_request(p_request_id uuid, p_mechanic_id uuid, p_now timestamptz default now())
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_m public.mechanics;
  v_req public.session_requests;
  v_session public.sessions;
  v_reason text;
  v_until timestamptz := p_now + private.setting_interval('matching.admin_offer_window');
begin
  -- the mechanic's row first, then the request's: the order of the accept (private.assign_request)
  select * into v_m from public.mechanics where id = p_mechanic_id for no key update;
  if not found then
    perform private.raise_error('not_allowed', 'only a mechanic can be offered a request');
  end if;
  select * into v_req from public.session_requests where id = p_request_id for update;
  if not found then
    perform private.raise_error('not_found', 'no such request');
  end if;
  if v_req.customer_id = p_mechanic_id then
    perform private.raise_error('not_allowed', 'a mechanic cannot be offered its own request');
  end if;
  if v_req.status not in ('pending', 'unattended') then
    perform private.raise_error('request_not_available', format('the request is %s', v_req.status));
  end if;
  select * into v_session from public.sessions where id = v_req.session_id;
  -- the reasons it could not accept now: standing, micro rules (micro/caps.sql), busy, schedule
  v_reason := (private.micro_refusal(v_m, v_session.duration_type = 'micro', v_session.planned_minutes, p_now)).reason;
  if v_reason is null and exists (select 1 from public.mechanic_commitments c
                                  where c.mechanic_id = p_mechanic_id and c.status = 'in_progress') then
    v_reason := 'busy';
  end if;
  if v_reason is null and p_mechanic_id in (select private.eligibility_exclusions(v_req.id, p_now)) then
    v_reason := 'schedule';
  end if;
  if v_reason is not null then
    perform private.raise_error('mechanic_unavailable', format('the mechanic cannot take this request now: %s', v_reason),
                                jsonb_build_object('reason', v_reason)::text);
  end if;

  update public.session_offers set status = 'withdrawn'
  where request_id = v_req.id and mechanic_id <> p_mechanic_id and status in ('offered', 'queued');
  delete from public.session_offers where request_id = v_req.id and mechanic_id is null;
  update public.session_requests
  set offered_mechanic_id = p_mechanic_id, broadcast_at = v_until, next_route_at = v_until
  where id = v_req.id;
  insert into public.session_offers (request_id, mechanic_id, status, reasons, offered_at, expires_at)
  values (v_req.id, p_mechanic_id, 'offered', '[{"reason": "offered_by_admin", "points": 0}]', p_now, v_until)
  on conflict (request_id, mechanic_id) where mechanic_id is not null
  do update set status = 'offered', reasons = excluded.reasons, offered_at = p_now, expires_at = v_until,
                responded_at = null;

  perform private.enqueue_email('request_offered', v_req.customer_id, v_req.session_id,
    jsonb_build_object('request_id', v_req.id, 'offered_mechanic_name', v_m.display_name, 'offer_until', v_until),
    format(':offered:%s', extract(epoch from p_now)));
  perform private.message_event(v_req.session_id, 'request_offered',
    jsonb_build_object('request_id', v_req.id, 'mechanic_id', p_mechanic_id, 'display_name', v_m.display_name,
                       'photo_url', v_m.photo_url, 'expires_at', v_until));
  return jsonb_build_object('request_id', v_req.id, 'session_id', v_req.session_id, 'status', 'offered',
                            'mechanic_id', p_mechanic_id, 'expires_at', v_until);
end
$$;
revoke execute on function private.offer_request(uuid, uuid, timestamptz) from public;
grant execute on function private.offer_request(uuid, uuid, timestamptz) to service_role;
-- <<< functions_sql matching/routing.sql

-- >>> functions_sql micro/caps.sql sha256=e9fc3ffe6455befad8600e9ed215dc19a7aa536239b9edbf1a6e71318fd1197f
-- Micro-sessions: effective settings, minutes used per local day, can_accept_session, the
-- accept-time check and reservation, settlement at the end.

-- ---------------------------------------------------------------------------------------------
-- Effective settings and usage
-- ---------------------------------------------------------------------------------------------
-- The mechanic's daily micro cap: its own, else its workshop's default, else the platform's.
create or replace function private.micro_cap(p_mechanic_id uuid) returns int
language sql stable security definer set search_path = ''
as $$
  select coalesce(m.daily_micro_minutes_cap, o.default_daily_micro_cap, private.setting_int('micro.daily_cap_minutes'))
  from public.mechanics m left join public.organizations o on o.id = m.organization_id
  where m.id = p_mechanic_id
$$;
revoke execute on function private.micro_cap(uuid) from public;
grant execute on function private.micro_cap(uuid) to authenticated, service_role;

-- Micro minutes used on the mechanic's current local day (settled minutes, else reserved ones).
create or replace function private.micro_minutes_used(p_mechanic_id uuid, p_now timestamptz default now())
returns int
language sql stable security definer set search_path = ''
as $$
  select coalesce(sum(coalesce(u.actual_minutes, u.reserved_minutes)), 0)::int
  from public.micro_minute_usage u join public.mechanics m on m.id = u.mechanic_id
  where u.mechanic_id = p_mechanic_id and u.local_day = (p_now at time zone m.timezone)::date
$$;
revoke execute on function private.micro_minutes_used(uuid, timestamptz) from public;
grant execute on function private.micro_minutes_used(uuid, timestamptz) to authenticated, service_role;

-- The micro-session rules, once, on a mechanic's row: why it may not take a session of p_minutes
-- (null: it may), and the micro minutes it has left on its local day (counted for a micro session,
-- or for any when p_count). Read by micro_eligibility (ids) and by the accept (the locked row).
create or replace function private.micro_refusal(
  p_m public.mechanics, p_micro boolean, p_minutes int, p_now timestamptz, p_count boolean default false,
  out reason text, out minutes_remaining int
)
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_o public.organizations;
begin
  if p_micro or p_count then
    if p_m.organization_id is not null then
      select * into v_o from public.organizations where id = p_m.organization_id;
    end if;
    -- the cap: the mechanic's own, else its workshop's default, else the platform's (micro_cap)
    minutes_remaining := greatest(
      coalesce(p_m.daily_micro_minutes_cap, v_o.default_daily_micro_cap, private.setting_int('micro.daily_cap_minutes'))
      - (select coalesce(sum(coalesce(u.actual_minutes, u.reserved_minutes)), 0)::int
         from public.micro_minute_usage u
         where u.mechanic_id = p_m.id and u.local_day = (p_now at time zone p_m.timezone)::date), 0);
  end if;
  reason := case
    when p_m.status <> 'approved' or not p_m.can_accept_sessions then 'not_approved'
    when not p_micro then case when p_m.participation_mode = 'micro_only' then 'participation_mode' end
    when p_m.participation_mode = 'full_only' then 'participation_mode'
    -- a dispatcher of its workshop paused its micro-sessions (workshops/dispatch.sql)
    when p_m.micro_paused_until > p_now then 'paused_by_dispatcher'
    when v_o.id is not null and not v_o.micro_sessions_enabled then 'workshop_micro_disabled'
    -- Workshop mechanics take micro sessions only on shift; independent ones any time.
    when p_m.mechanic_type = 'workshop_affiliated' and not p_m.currently_on_shift then 'not_on_shift'
    when v_o.id is not null and p_minutes > v_o.micro_max_duration then 'longer_than_workshop_maximum'
    when p_minutes > minutes_remaining then 'daily_cap_reached'
  end;
end
$$;
revoke execute on function private.micro_refusal(public.mechanics, boolean, int, timestamptz, boolean) from public;
grant execute on function private.micro_refusal(public.mechanics, boolean, int, timestamptz, boolean) to service_role;

-- The micro-session rules, as data: {can_accept, reason, minutes_remaining}.
create or replace function private.micro_eligibility(
  p_mechanic_id uuid, p_duration_type text, p_minutes int, p_now timestamptz default now()
) returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_m public.mechanics;
  v_r record;
begin
  select * into v_m from public.mechanics where id = p_mechanic_id;
  if not found then
    return jsonb_build_object('can_accept', false, 'reason', 'not_a_mechanic', 'minutes_remaining', 0);
  end if;
  select * into v_r from private.micro_refusal(v_m, p_duration_type = 'micro', p_minutes, p_now, true);
  return jsonb_build_object('can_accept', v_r.reason is null, 'reason', v_r.reason,
                            'minutes_remaining', v_r.minutes_remaining);
end
$$;
revoke execute on function private.micro_eligibility(uuid, text, int, timestamptz) from public;
grant execute on function private.micro_eligibility(uuid, text, int, timestamptz) to service_role;

-- can_accept_session: p_session_type is a duration type (micro / standard /
-- extended) or a session type (chat / video / diagnostic, which are full sessions). The mechanic
-- itself, its workshop's owners and admins, and platform admins may ask.
create or replace function public.can_accept_session(
  p_mechanic_id uuid, p_session_type text, p_duration_minutes int
) returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
begin
  if p_mechanic_id is null or p_session_type is null or p_duration_minutes is null
     or p_duration_minutes < 1 or p_duration_minutes > 480
     or p_session_type not in ('micro', 'standard', 'extended', 'chat', 'video', 'diagnostic') then
    perform private.raise_error('invalid_input',
      'p_session_type is micro/standard/extended (or chat/video/diagnostic); minutes 1..480');
  end if;
  if p_mechanic_id <> v_uid and not private.is_admin()
     and not exists (select 1 from public.mechanics m where m.id = p_mechanic_id
                     and private.workshop_can(m.organization_id, v_uid, 'dispatch')) then
    perform private.raise_error('not_allowed', 'only the mechanic, its workshop and admins may ask');
  end if;
  return private.micro_eligibility(p_mechanic_id, case when p_session_type = 'micro' then 'micro' else 'full' end,
                                   p_duration_minutes, now());
end
$$;
revoke execute on function public.can_accept_session(uuid, text, int) from public, anon;
grant execute on function public.can_accept_session(uuid, text, int) to authenticated, service_role;

-- Called by private.assign_request with the mechanic's row locked and the session row its update
-- returned: refuses what the micro rules forbid (micro_refusal, on the rows in hand) and reserves the
-- planned minutes of a micro session on the mechanic's local day (so concurrent accepts can never
-- exceed the cap). A refusal carries micro_eligibility's answer as its detail. The caller records
-- on_shift in its own update of the session.
create or replace function private.check_and_reserve_accept_rows(
  p_m public.mechanics, p_s public.sessions, p_now timestamptz
) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_reason text := (private.micro_refusal(p_m, p_s.duration_type = 'micro', p_s.planned_minutes, p_now)).reason;
begin
  if v_reason = 'paused_by_dispatcher' then  -- workshops/dispatch.sql
    perform private.raise_error('micro_paused',
      format('a dispatcher of your workshop paused your micro-sessions until %s', p_m.micro_paused_until));
  end if;
  if v_reason is not null then
    perform private.raise_error('session_not_eligible', format('cannot take this session: %s', v_reason),
      private.micro_eligibility(p_m.id, case when p_s.duration_type = 'micro' then 'micro' else 'full' end,
                                p_s.planned_minutes, p_now)::text);
  end if;
  if p_s.duration_type = 'micro' then
    insert into public.micro_minute_usage (session_id, mechanic_id, local_day, reserved_minutes)
    values (p_s.id, p_m.id, (p_now at time zone p_m.timezone)::date, p_s.planned_minutes)
    on conflict (session_id) do update
    set mechanic_id = excluded.mechanic_id, local_day = excluded.local_day,
        reserved_minutes = excluded.reserved_minutes, actual_minutes = null, settled_at = null;
  end if;
end
$$;
revoke execute on function private.check_and_reserve_accept_rows(public.mechanics, public.sessions, timestamptz)
  from public;
grant execute on function private.check_and_reserve_accept_rows(public.mechanics, public.sessions, timestamptz)
  to service_role;

-- Lifecycle step (core/lifecycle.sql, and the release in public.cancel_request): a completed micro
-- session counts its actual minutes (never more than it was allowed, planned + extensions); a
-- cancelled or released one counts nothing. The open shift's counters grow as sessions end.
drop trigger if exists _420_micro_settle on public.sessions;
drop function if exists private.tg_sessions__micro_settle();
create or replace function private.micro_settle(p_session_id uuid, p_now timestamptz default now()) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_s public.sessions;
  v_minutes int;
begin
  select * into v_s from public.sessions where id = p_session_id;
  if v_s.status = 'completed' then
    v_minutes := least(coalesce(v_s.duration_minutes, 0), v_s.planned_minutes + v_s.extension_minutes);
    if v_s.duration_type = 'micro' then
      update public.micro_minute_usage set actual_minutes = v_minutes, settled_at = p_now
      where session_id = v_s.id;
    end if;
    if v_s.on_shift then
      update public.mechanic_shift_logs l
      set micro_sessions_taken = l.micro_sessions_taken + (v_s.duration_type = 'micro')::int,
          micro_minutes_used = l.micro_minutes_used + case when v_s.duration_type = 'micro' then v_minutes else 0 end,
          full_sessions_taken = l.full_sessions_taken + (v_s.duration_type <> 'micro')::int
      where l.mechanic_id = v_s.mechanic_id and l.clock_out_at is null;
    end if;
  elsif v_s.status in ('cancelled', 'pending') then  -- cancelled, or released back to pending
    update public.micro_minute_usage set actual_minutes = 0, settled_at = p_now where session_id = v_s.id;
  end if;
end
$$;
revoke execute on function private.micro_settle(uuid, timestamptz) from public;
grant execute on function private.micro_settle(uuid, timestamptz) to service_role;

-- A customer's preferred mechanic must be able to take the plan's kind of session (the micro rules:
-- participation mode, shift, workshop, daily cap), else the customer would wait out the preferred
-- window on a mechanic who cannot accept: preferred_mechanic_not_eligible names why. Checked where
-- the customer chooses (request_session, prepare_checkout), before any money moves; not when a paid
-- request is created, which must not fail after payment.
create or replace function private.check_preferred_eligible(
  p_mechanic_id uuid, p_plan_code text, p_now timestamptz default now()
) returns void
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_m public.mechanics;
  v_plan public.service_plans;
  v_reason text;
begin
  if p_mechanic_id is null then
    return;
  end if;
  select * into v_m from public.mechanics where id = p_mechanic_id;
  select * into v_plan from public.service_plans where code = p_plan_code;
  if v_m.id is null or v_plan.code is null then
    return;  -- check_preferred_mechanic and the plan's check answer these
  end if;
  v_reason := (private.micro_refusal(v_m, v_plan.duration_type = 'micro', v_plan.minutes, p_now)).reason;
  if v_reason is not null and v_reason <> 'not_approved' then
    perform private.raise_error('preferred_mechanic_not_eligible',
      format('the preferred mechanic cannot take this session: %s', v_reason),
      jsonb_build_object('reason', v_reason)::text);
  end if;
end
$$;
revoke execute on function private.check_preferred_eligible(uuid, text, timestamptz) from public;
grant execute on function private.check_preferred_eligible(uuid, text, timestamptz) to service_role;
-- <<< functions_sql micro/caps.sql

-- >>> functions_sql operations/suspension.sql sha256=d7cb210ae69fdcd3ce3869fa5704005f1d589dc3287654f4683f81db76fa9d68
-- Operations: suspension that cleans up (docs/operations.md, "Suspension"). Suspending a mechanic
-- is one transaction, under the lock of its mechanics row (the accept path takes the same lock, so
-- an accept either happens before and is released here, or after and is refused):
--   * accepted requests not yet started go back to the queue, released by the system (no count
--     towards the mechanic's release limit; the customer is told: journey/messages.sql);
--   * offers waiting for it are withdrawn (routing offers the request to the next mechanic);
--   * it goes offline and leaves approved standing; trust/standing.sql does the rest of losing
--     standing: its future bookings are cancelled and refunded in full (the cancel lifecycle emails
--     each customer booking_cancelled), its payouts are held;
--   * it is taken off the workshop appointments it was to work (confirmed, not started): each stays
--     confirmed with its workshop, its committed time freed, for the workshop to assign another;
--   * live sessions run to their end (completion does not require standing).
-- Reinstating restores approved standing and releases the payout hold (admin_release_payouts);
-- what was cancelled stays cancelled.

-- Releases, by the system, the accepted requests of mechanic `p_mechanic_id` whose session has not
-- started; returns their ids.
create or replace function private.release_accepted_requests(p_mechanic_id uuid, p_now timestamptz)
returns uuid[]
language plpgsql security definer set search_path = ''
as $$
declare
  v_r public.session_requests;
  v_ids uuid[] := '{}';
begin
  for v_r in
    select r.* from public.session_requests r join public.sessions s on s.id = r.session_id
    where r.mechanic_id = p_mechanic_id and r.status = 'accepted' and s.status = 'waiting'
    order by r.id
    for update of r, s
  loop
    update public.session_requests
    set status = 'pending', mechanic_id = null, accepted_at = null, status_changed_at = p_now,
        approval_pending_until = null
    where id = v_r.id;
    update public.sessions set status = 'pending', mechanic_id = null, status_changed_at = p_now
    where id = v_r.session_id;
    perform private.micro_settle(v_r.session_id, p_now);  -- reserved micro minutes count nothing
    delete from public.session_participants where session_id = v_r.session_id and user_id = p_mechanic_id;
    perform private.release_commitment(v_r.session_id, 'released', p_now);
    update public.session_offers set status = 'declined', responded_at = p_now
    where request_id = v_r.id and mechanic_id = p_mechanic_id;
    insert into private.request_releases (request_id, mechanic_id, released_at, by_system)
    values (v_r.id, p_mechanic_id, p_now, true);
    update public.intakes set status = 'pending'
    where id = (select s.intake_id from public.sessions s where s.id = v_r.session_id);
    v_ids := v_ids || v_r.id;
  end loop;
  return v_ids;
end
$$;
revoke execute on function private.release_accepted_requests(uuid, timestamptz) from public;
grant execute on function private.release_accepted_requests(uuid, timestamptz) to service_role;

create or replace function public.admin_suspend_mechanic(p_mechanic_id uuid, p_reason text) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_admin uuid := private.require_admin();
  v_reason text := private.check_text('p_reason', p_reason, true);
  v_m public.mechanics;
  v_released uuid[];
  v_withdrawn int;
  v_cancelled uuid[];
  v_unassigned uuid[] := '{}';
  v_a public.workshop_appointments;
  v_result jsonb;
begin
  perform private.require_arg('p_mechanic_id', p_mechanic_id);
  select * into v_m from public.mechanics where id = p_mechanic_id for update;
  if not found then
    perform private.raise_error('not_found', 'no such mechanic');
  end if;
  if v_m.status <> 'approved' then
    perform private.raise_error('mechanic_not_suspendable',
      format('the mechanic is %s: only an approved mechanic is suspended', v_m.status));
  end if;
  perform private.set_actor('admin', format('mechanic suspended: %s', v_reason));
  v_released := private.release_accepted_requests(p_mechanic_id, now());
  with w as (
    update public.session_offers set status = 'withdrawn'
    where mechanic_id = p_mechanic_id and status in ('offered', 'queued')
    returning 1)
  select count(*) into v_withdrawn from w;
  for v_a in
    select * from public.workshop_appointments a
    where a.mechanic_id = p_mechanic_id and a.status = 'confirmed' and a.starts_at > now()
    order by a.id for update
  loop
    perform private.release_appointment_mechanic(v_a, 'released');
    update public.workshop_appointments set mechanic_id = null, commitment_id = null where id = v_a.id;
    v_unassigned := v_unassigned || v_a.id;
  end loop;
  -- what losing standing cancels (trust/standing.sql): its sessions not yet started
  select coalesce(array_agg(s.id order by s.id), '{}') into v_cancelled
  from public.sessions s where s.mechanic_id = p_mechanic_id and s.status in ('scheduled', 'waiting');
  update public.mechanics set status = 'suspended', is_available = false where id = p_mechanic_id;
  v_result := jsonb_build_object(
    'mechanic_id', p_mechanic_id, 'status', 'suspended',
    'released_requests', to_jsonb(v_released), 'offers_withdrawn', v_withdrawn,
    'cancelled_sessions', to_jsonb(v_cancelled), 'appointments_unassigned', to_jsonb(v_unassigned),
    'live_sessions', (select count(*) from public.sessions s where s.mechanic_id = p_mechanic_id and s.status = 'live'),
    'payouts_held', (select m.payouts_held from public.mechanics m where m.id = p_mechanic_id));
  perform private.record_admin_action('mechanic.suspend', 'mechanic', p_mechanic_id, v_reason, v_result);
  return v_result;
end
$$;
revoke execute on function public.admin_suspend_mechanic(uuid, text) from public, anon;
grant execute on function public.admin_suspend_mechanic(uuid, text) to authenticated, service_role;

create or replace function public.admin_reinstate_mechanic(p_mechanic_id uuid, p_note text default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_admin uuid := private.require_admin();
  v_note text := private.check_text('p_note', p_note);
  v_m public.mechanics;
  v_payouts jsonb;
  v_result jsonb;
begin
  perform private.require_arg('p_mechanic_id', p_mechanic_id);
  select * into v_m from public.mechanics where id = p_mechanic_id for update;
  if not found then
    perform private.raise_error('not_found', 'no such mechanic');
  end if;
  perform private.require_not_erased(p_mechanic_id);
  if v_m.status <> 'suspended' then
    perform private.raise_error('mechanic_not_suspended',
      format('the mechanic is %s: only a suspended mechanic is reinstated', v_m.status));
  end if;
  perform private.set_actor('admin', coalesce(format('mechanic reinstated: %s', v_note), 'mechanic reinstated'));
  -- it comes back offline: it goes online itself when it is ready
  update public.mechanics set status = 'approved', approved_at = coalesce(approved_at, now())
  where id = p_mechanic_id;
  v_payouts := public.admin_release_payouts(p_mechanic_id);
  v_result := jsonb_build_object('mechanic_id', p_mechanic_id, 'status', 'approved',
    'payouts_held', v_payouts -> 'payouts_held', 'payouts_queued', v_payouts -> 'payouts_queued',
    'payouts_waiting', v_payouts -> 'payouts_waiting');
  perform private.record_admin_action('mechanic.reinstate', 'mechanic', p_mechanic_id, v_note, v_result);
  return v_result;
end
$$;
revoke execute on function public.admin_reinstate_mechanic(uuid, text) from public, anon;
grant execute on function public.admin_reinstate_mechanic(uuid, text) to authenticated, service_role;
-- <<< functions_sql operations/suspension.sql

-- >>> functions_sql payments/checkout.sql sha256=8836fa4de643e4f763bd2c65db490614b4b4ea1d5b1679b6375c0206c2c583d7
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
-- <<< functions_sql payments/checkout.sql

-- >>> functions_sql privacy/erasure.sql sha256=a7b8ff17f6a6318fb461c687b5e31c848282093830f02abdce487adfd26eab91
-- Privacy: erasure of an account after a grace period (docs/privacy.md#erasure).
-- The right to erasure (PIPEDA principle 4.5.3, GDPR art. 17) stops where the law requires records
-- to be kept: payments, refunds, credits, payouts and referral fees (tax and accounting law) stay,
-- tied to an id that no longer names anyone.

-- What keeps the person from being erased now: open work, or money not settled. An array of
-- {"item", "count"}; empty when nothing remains. Erasing then would leave a customer without the
-- session they paid for, a refund claim without a payee to recover it from, or a debt unpaid.
create or replace function private.erasure_blockers(p_user uuid) returns jsonb
language sql stable security definer set search_path = ''
as $$
  select coalesce(jsonb_agg(jsonb_build_object('item', b.item, 'count', b.n) order by b.item), '[]'::jsonb)
  from (
    select 'open_sessions' as item, count(*) as n from public.sessions s
      where (s.customer_id = p_user or s.mechanic_id = p_user)
        and s.status in ('pending', 'scheduled', 'waiting', 'live')
    union all
    select 'accepted_requests', count(*) from public.session_requests r
      join public.sessions s on s.id = r.session_id
      where r.mechanic_id = p_user and r.status = 'accepted'
        and s.status in ('pending', 'scheduled', 'waiting', 'live')
    union all
    select 'unsettled_payouts', count(*) from public.payouts p
      where (p.mechanic_id = p_user
             or p.organization_id in (select m.organization_id from public.organization_members m
                                      where m.user_id = p_user and m.role = 'owner'))
        and p.status in ('waiting', 'queued', 'processing', 'failed')
    union all
    select 'pending_refunds', count(*) from public.refunds f
      join public.payments pay on pay.id = f.payment_id
      join public.sessions s on s.id = pay.session_id
      where (s.mechanic_id = p_user or f.customer_id = p_user) and f.status in ('queued', 'processing')
    union all
    select 'undecided_problem_reports', count(*) from public.session_problem_reports pr
      join public.sessions s on s.id = pr.session_id
      where (s.mechanic_id = p_user or pr.customer_id = p_user)
        and not exists (select 1 from public.session_delivery_decisions d where d.session_id = pr.session_id)
    union all
    select 'unsettled_referral_fees', count(*) from public.referral_fees rf
      where rf.status = 'accrued'
        and (rf.mechanic_id = p_user
             or rf.workshop_id in (select m.organization_id from public.organization_members m
                                   where m.user_id = p_user and m.role = 'owner'))
    union all
    select 'open_appointments', count(*) from public.workshop_appointments a
      where a.status in ('requested', 'proposed', 'confirmed')
        and (a.customer_id = p_user or a.mechanic_id = p_user
             or a.workshop_id in (select m.organization_id from public.organization_members m
                                  where m.user_id = p_user and m.role = 'owner'))
    union all
    select 'negative_credit_balance', count(*) from (
      select 1 from public.credit_ledger c where c.customer_id = p_user
      having coalesce(sum(c.amount_cents), 0) < 0) neg
  ) b
  where b.n > 0
$$;
revoke execute on function private.erasure_blockers(uuid) from public;

create or replace function private.erasure_blocked_message(p_blockers jsonb) returns text
language sql immutable set search_path = ''
as $$
  select 'the account cannot be erased until this is settled: '
         || string_agg(format('%s (%s)', b ->> 'item', b ->> 'count'), ', ')
  from jsonb_array_elements(p_blockers) b
$$;
revoke execute on function private.erasure_blocked_message(jsonb) from public;

-- The caller asks for their account to be erased after privacy.erasure_grace. Idempotent: asking
-- again while a request is pending returns it unchanged (same due date). Refused (erasure_blocked)
-- while open work or unsettled money remains, so nobody waits a month to learn it.
create or replace function public.request_account_deletion() returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := (select auth.uid());
  v_row private.account_deletions;
  v_blockers jsonb;
begin
  if v_uid is null then
    perform private.raise_error('not_authenticated', 'sign in to delete your account');
  end if;
  perform pg_advisory_xact_lock(hashtextextended('account_deletion:' || v_uid::text, 0));
  select * into v_row from private.account_deletions d where d.user_id = v_uid for update;
  if v_row.status = 'erased' then
    perform private.raise_error('account_erased', 'this account has been erased');
  end if;
  if v_row.status in ('pending', 'blocked') then
    return jsonb_build_object('status', v_row.status, 'requested_at', v_row.requested_at, 'due_at', v_row.due_at,
                              'already_requested', true);
  end if;
  v_blockers := private.erasure_blockers(v_uid);
  if jsonb_array_length(v_blockers) > 0 then
    perform private.raise_error('erasure_blocked', private.erasure_blocked_message(v_blockers), v_blockers::text);
  end if;
  insert into private.account_deletions as d (user_id, status, requested_at, due_at, request_no)
  values (v_uid, 'pending', now(), now() + private.setting_interval('privacy.erasure_grace'), 1)
  on conflict (user_id) do update
    set status = 'pending', requested_at = excluded.requested_at, due_at = excluded.due_at,
        cancelled_at = null, attempts = 0, remaining = '[]', request_no = d.request_no + 1
  returning * into v_row;
  perform private.enqueue('privacy.erase_account', format('privacy.erase_account:%s:%s', v_uid, v_row.request_no),
                          jsonb_build_object('user_id', v_uid, 'request_no', v_row.request_no), v_row.due_at);
  return jsonb_build_object('status', v_row.status, 'requested_at', v_row.requested_at, 'due_at', v_row.due_at,
                            'already_requested', false);
end
$$;
revoke execute on function public.request_account_deletion() from public, anon;
grant execute on function public.request_account_deletion() to authenticated, service_role;

-- Within the grace period the person changes their mind: the request ends, the queued job finds
-- nothing to do.
create or replace function public.cancel_account_deletion() returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := (select auth.uid());
  v_row private.account_deletions;
begin
  if v_uid is null then
    perform private.raise_error('not_authenticated', 'sign in to cancel the deletion of your account');
  end if;
  update private.account_deletions d set status = 'cancelled', cancelled_at = now()
  where d.user_id = v_uid and d.status in ('pending', 'blocked')
  returning * into v_row;
  if v_row.user_id is null then
    perform private.raise_error('deletion_not_requested', 'no deletion of this account is pending');
  end if;
  return jsonb_build_object('status', v_row.status, 'cancelled_at', v_row.cancelled_at);
end
$$;
revoke execute on function public.cancel_account_deletion() from public, anon;
grant execute on function public.cancel_account_deletion() to authenticated, service_role;

-- Admins see every request not yet erased or cancelled (with what blocks it), and the recent ones.
create or replace function public.admin_account_deletions(p_status text default null, p_limit int default 100)
returns setof jsonb
language plpgsql security definer set search_path = ''
as $$
begin
  perform private.require_admin();
  if p_status is not null and p_status not in ('pending', 'blocked', 'erased', 'cancelled') then
    perform private.raise_error('invalid_input', 'p_status: pending, blocked, erased or cancelled');
  end if;
  if p_limit is null or p_limit < 1 or p_limit > 1000 then
    perform private.raise_error('invalid_input', 'p_limit: 1 to 1000');
  end if;
  perform private.record_admin_action('privacy.list_deletions', 'account_deletion', null, null,
                                      jsonb_build_object('status', p_status, 'limit', p_limit));
  return query
    select jsonb_build_object('user_id', d.user_id, 'status', d.status, 'requested_at', d.requested_at,
                              'due_at', d.due_at, 'cancelled_at', d.cancelled_at, 'erased_at', d.erased_at,
                              'attempts', d.attempts, 'remaining', d.remaining)
    from private.account_deletions d
    where (p_status is null or d.status = p_status)
    order by d.due_at
    limit p_limit;
end
$$;
revoke execute on function public.admin_account_deletions(text, int) from public, anon;
grant execute on function public.admin_account_deletions(text, int) to authenticated, service_role;

-- The text of a jsonb value with every occurrence of the markers replaced.
create or replace function private.scrub_jsonb(p_value jsonb, p_markers text[]) returns jsonb
language plpgsql immutable set search_path = ''
as $$
declare
  v_text text := p_value::text;
  v_marker text;
begin
  foreach v_marker in array p_markers loop
    if v_marker is not null and char_length(v_marker) >= 3 then
      v_text := replace(v_text, v_marker, '[erased]');
    end if;
  end loop;
  return v_text::jsonb;
end
$$;
revoke execute on function private.scrub_jsonb(jsonb, text[]) from public;

create or replace function private.scrub_text(p_value text, p_markers text[]) returns text
language plpgsql immutable set search_path = ''
as $$
declare
  v_text text := p_value;
  v_marker text;
begin
  foreach v_marker in array p_markers loop
    if v_marker is not null and char_length(v_marker) >= 3 then
      v_text := replace(v_text, v_marker, '[erased]');
    end if;
  end loop;
  return v_text;
end
$$;
revoke execute on function private.scrub_text(text, text[]) from public;

-- Erases one person whose request is due (the `privacy.erase_account` job). Returns
-- {"status": "erased", "objects": [{bucket, name}]} — the Storage objects the job then deletes
-- through the Storage API (deleting the rows alone would leave the bytes) — or
-- {"status": "blocked", "remaining": [...]} (the job fails and retries: the person is erased as
-- soon as it is settled), or {"status": "cancelled" | "not_due" | "none"}. Erasing twice is
-- erasing once: an erased account answers "erased" with the objects still left.
create or replace function private.erase_account(p_user uuid, p_now timestamptz default now()) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_row private.account_deletions;
  v_blockers jsonb;
  v_email text;
  v_markers text[];
  v_erased_email text := format('erased+%s@invalid', p_user);
  v_marker constant text := '[erased]';
  v_counts jsonb := '{}';
  v_n int;
begin
  select * into v_row from private.account_deletions d where d.user_id = p_user for update;
  if v_row.user_id is null then
    return jsonb_build_object('status', 'none');
  end if;
  if v_row.status = 'cancelled' then
    return jsonb_build_object('status', 'cancelled');
  end if;
  if v_row.status = 'erased' then
    return jsonb_build_object('status', 'erased', 'objects', private.erasure_objects(p_user));
  end if;
  if v_row.due_at > p_now then
    return jsonb_build_object('status', 'not_due', 'due_at', v_row.due_at);
  end if;
  v_blockers := private.erasure_blockers(p_user);
  if jsonb_array_length(v_blockers) > 0 then
    update private.account_deletions d set status = 'blocked', remaining = v_blockers, attempts = d.attempts + 1
    where d.user_id = p_user;
    return jsonb_build_object('status', 'blocked', 'remaining', v_blockers,
                              'message', private.erasure_blocked_message(v_blockers));
  end if;

  -- the strings that identify the person, scrubbed from free text and event payloads
  select array_remove(array[u.email, u.phone, p.full_name, p.phone, m.display_name,
                            u.raw_user_meta_data ->> 'full_name'], null)
    into v_markers
  from auth.users u left join public.profiles p on p.id = u.id left join public.mechanics m on m.id = u.id
  where u.id = p_user;
  select u.email into v_email from auth.users u where u.id = p_user;
  v_markers := coalesce(v_markers, '{}') || array(
    select distinct x from (select i.contact_name from public.intakes i where i.customer_id = p_user
                            union select i.contact_email from public.intakes i where i.customer_id = p_user
                            union select i.contact_phone from public.intakes i where i.customer_id = p_user) t(x)
    where x is not null);

  -- the person
  update public.profiles set full_name = null, phone = null, avatar_url = null, city = null, postal_code = null,
                             marketing_emails = false
  where id = p_user;
  update public.mechanics set display_name = 'Former mechanic', photo_url = null, bio = null, city = null,
                              postal_code = null, is_available = false, can_accept_sessions = false,
                              status = 'suspended'
  where id = p_user;
  delete from private.admins where user_id = p_user;
  delete from public.organization_members where user_id = p_user;
  delete from public.mechanic_weekly_availability where mechanic_id = p_user;
  delete from public.booking_rules where mechanic_id = p_user;
  update public.availability_overrides set reason = null where mechanic_id = p_user;
  update public.mechanic_time_off set reason = null where mechanic_id = p_user;
  update public.mechanic_shift_logs set location = null, notes = null where mechanic_id = p_user;
  delete from private.rate_buckets where user_id = p_user;

  -- what the person wrote or gave: contacts, vehicles, messages, reviews' names, questions
  update public.intakes set contact_name = null, contact_email = null, contact_phone = null, vin = null,
                            plate = null, city = null, details = null, concern = v_marker
  where customer_id = p_user;
  update public.session_requests set concern = v_marker where customer_id = p_user and concern is not null;
  update public.vehicles set vin = null, plate = null, nickname = null where owner_id = p_user;
  update public.waiver_acceptances set ip_address = null, user_agent = null where user_id = p_user;
  update public.chat_messages set content = v_marker, attachments = '[]' where sender_id = p_user;
  get diagnostics v_n = row_count;
  v_counts := v_counts || jsonb_build_object('messages', v_n);
  update public.mechanic_reviews set reviewer_first_name = null, body = null where customer_id = p_user;
  update private.review_cards c set reviewer_first_name = null, body = null
  from public.mechanic_reviews r where r.id = c.review_id and r.customer_id = p_user;
  update public.follow_ups set question = v_marker, photo_paths = '{}' where customer_id = p_user;
  update public.workshop_appointments set notes = null, concern = null
  where customer_id = p_user;
  delete from public.crm_interactions where customer_id = p_user;
  update public.workshop_invitations set email = v_erased_email where lower(email) = lower(v_email);

  -- free text others wrote and event payloads may name the person: the markers are replaced
  update public.sessions set mechanic_notes = private.scrub_text(mechanic_notes, v_markers),
                             cancel_reason = private.scrub_text(cancel_reason, v_markers)
  where (customer_id = p_user or mechanic_id = p_user);
  update public.chat_messages m set content = private.scrub_text(m.content, v_markers)
  from public.sessions s where s.id = m.session_id and (s.customer_id = p_user or s.mechanic_id = p_user)
    and m.sender_id <> p_user;
  update public.mechanic_vetting_decisions set note = private.scrub_text(note, v_markers)
  where mechanic_id = p_user and note is not null;
  update public.session_summaries set findings = private.scrub_text(findings, v_markers)
  where session_id in (select s.id from public.sessions s where s.customer_id = p_user or s.mechanic_id = p_user);

  -- emails: the address goes; the delivery record (what was sent, when) stays without it
  update private.email_deliveries set to_address = v_erased_email where user_id = p_user or to_address = v_email;
  delete from private.email_suppressions where lower(address) = lower(v_email);
  update private.outbox set payload = private.scrub_jsonb(payload, v_markers),
                            status = case when status = 'pending' and kind = 'email.send' then 'skipped'
                                          else status end,
                            last_error = case when status = 'pending' and kind = 'email.send'
                                              then 'skipped: the account was erased' else last_error end
  where (kind = 'email.send' and payload ->> 'user_id' = p_user::text)
     or payload::text ilike any (array(select '%' || x || '%' from unnest(v_markers) x));
  update private.resend_events set payload = private.scrub_jsonb(payload, v_markers)
  where payload::text ilike any (array(select '%' || x || '%' from unnest(v_markers) x));
  update private.stripe_events set payload = private.scrub_jsonb(payload, v_markers)
  where payload::text ilike any (array(select '%' || x || '%' from unnest(v_markers) x));
  update private.admin_actions set reason = private.scrub_text(reason, v_markers),
                                   data = private.scrub_jsonb(data, v_markers)
  where subject_id = p_user or data::text ilike any (array(select '%' || x || '%' from unnest(v_markers) x));

  -- files: the rows go now, the bytes through the Storage API (the job)
  delete from public.session_files where uploaded_by = p_user;

  -- the sign-in: anonymized, banned, kept by id so that money rows keep their foreign keys
  update auth.users set email = v_erased_email, phone = null, raw_user_meta_data = '{}',
                        raw_app_meta_data = '{"provider": "email", "erased": true}',
                        encrypted_password = null, confirmation_token = null, recovery_token = null,
                        banned_until = p_now + interval '100 years', deleted_at = p_now, updated_at = p_now
  where id = p_user;

  update private.account_deletions set status = 'erased', erased_at = p_now, remaining = '[]',
                                       attempts = attempts + 1
  where user_id = p_user;
  return jsonb_build_object('status', 'erased', 'counts', v_counts, 'objects', private.erasure_objects(p_user));
end
$$;
revoke execute on function private.erase_account(uuid, timestamptz) from public;
grant execute on function private.erase_account(uuid, timestamptz) to service_role;

-- The Storage objects of the person: those they own, and their vetting documents.
create or replace function private.erasure_objects(p_user uuid) returns jsonb
language sql stable security definer set search_path = ''
as $$
  select coalesce(jsonb_agg(jsonb_build_object('bucket', o.bucket_id, 'name', o.name) order by o.bucket_id, o.name),
                  '[]'::jsonb)
  from storage.objects o
  where o.owner_id = p_user::text or o.owner = p_user
     or (o.bucket_id = 'mechanic-documents' and o.name like 'mechanics/' || p_user::text || '/%')
$$;
revoke execute on function private.erasure_objects(uuid) from public;
grant execute on function private.erasure_objects(uuid) to service_role;

-- An erased account stays erased: no admin path brings it back (reinstating, approving or
-- reviewing an erased mechanic raises account_erased). Its sign-in is banned and its personal
-- data gone; a person who wants to work again signs up anew.
create or replace function private.require_not_erased(p_user_id uuid) returns void
language plpgsql stable security definer set search_path = ''
as $$
begin
  if exists (select 1 from private.account_deletions d where d.user_id = p_user_id and d.status = 'erased') then
    perform private.raise_error('account_erased', 'this account has been erased');
  end if;
end
$$;
revoke execute on function private.require_not_erased(uuid) from public;
grant execute on function private.require_not_erased(uuid) to service_role;
-- <<< functions_sql privacy/erasure.sql

-- >>> functions_sql privacy/export.sql sha256=1258822ddbe9235321fca8c04cb70f4f95f46b0283849118fec4478dc1d6190c
-- Privacy: the export of everything the platform holds about the caller (docs/privacy.md#export).
-- The right of access (PIPEDA principle 4.9, GDPR art. 15 and 20): one machine-readable document.

-- Every column that refers to a person (a foreign key to auth.users, public.profiles or
-- public.mechanics), with where the export puts its rows and what erasure does to them. A test
-- compares this list with the catalog, so a new table that refers to a person cannot be added
-- without deciding both.
create or replace function private.personal_data_map()
returns table (table_name text, column_name text, export_section text, erasure text)
language sql immutable set search_path = ''
as $$
  values
    ('public.profiles', 'id', 'profile', 'anonymized'),
    ('private.admins', 'user_id', 'not exported: the admin grant', 'removed'),
    ('public.organizations', 'created_by', 'workshops', 'kept (workshop record)'),
    ('public.organization_members', 'user_id', 'workshops', 'removed'),
    ('public.mechanics', 'id', 'mechanic', 'anonymized'),
    ('public.mechanics', 'micro_paused_by', 'not exported: an admin or owner id', 'kept'),
    ('public.mechanics', 'specialization_set_by', 'not exported: an admin id', 'kept'),
    ('public.vehicles', 'owner_id', 'vehicles', 'anonymized'),
    ('public.intakes', 'customer_id', 'intakes', 'anonymized'),
    ('public.waiver_acceptances', 'user_id', 'waiver_acceptances', 'anonymized'),
    ('public.sessions', 'customer_id', 'sessions_as_customer', 'kept (money)'),
    ('public.sessions', 'mechanic_id', 'sessions_as_mechanic', 'kept (money)'),
    ('public.session_requests', 'approved_by', 'not exported: a workshop owner id', 'kept'),
    ('public.session_requests', 'customer_id', 'requests', 'anonymized'),
    ('public.session_requests', 'mechanic_id', 'requests', 'kept'),
    ('public.session_requests', 'preferred_mechanic_id', 'requests', 'kept'),
    ('public.session_participants', 'user_id', 'participations', 'kept'),
    ('public.session_events', 'actor_id', 'session_events', 'kept'),
    ('public.session_offers', 'mechanic_id', 'offers', 'kept'),
    ('public.chat_messages', 'sender_id', 'messages', 'anonymized'),
    ('public.session_files', 'uploaded_by', 'files', 'removed'),
    ('public.mechanic_commitments', 'customer_id', 'commitments', 'kept'),
    ('public.mechanic_commitments', 'mechanic_id', 'commitments', 'kept'),
    ('public.bookings', 'customer_id', 'bookings', 'kept (money)'),
    ('public.bookings', 'preferred_mechanic_id', 'bookings', 'kept'),
    ('public.payments', 'customer_id', 'payments', 'kept (money)'),
    ('public.refunds', 'customer_id', 'refunds', 'kept (money)'),
    ('public.refunds', 'requested_by', 'refunds', 'kept (money)'),
    ('public.credit_ledger', 'customer_id', 'credits', 'kept (money)'),
    ('public.credit_ledger', 'created_by', 'not exported: an admin id', 'kept (money)'),
    ('public.session_extensions', 'requested_by', 'extensions', 'kept (money)'),
    ('public.mechanic_time_off', 'created_by', 'not exported: an admin or owner id', 'kept'),
    ('public.mechanic_time_off', 'mechanic_id', 'availability', 'anonymized'),
    ('public.session_problem_reports', 'customer_id', 'problem_reports', 'anonymized'),
    ('public.session_delivery_decisions', 'decided_by', 'not exported: an admin id', 'kept (money)'),
    ('public.mechanic_reviews', 'customer_id', 'reviews_written', 'anonymized'),
    ('public.mechanic_reviews', 'mechanic_id', 'reviews_received', 'kept'),
    ('public.mechanic_reviews', 'hidden_by', 'not exported: an admin id', 'kept'),
    ('public.workshop_appointments', 'customer_id', 'appointments', 'anonymized'),
    ('public.workshop_appointments', 'mechanic_id', 'appointments', 'kept'),
    ('public.workshop_appointments', 'referring_mechanic_id', 'appointments', 'kept'),
    ('public.workshop_invitations', 'accepted_by', 'workshops', 'anonymized'),
    ('public.workshop_invitations', 'invited_by', 'workshops', 'anonymized'),
    ('public.session_summaries', 'author_id', 'summaries', 'kept'),
    ('public.crm_interactions', 'customer_id', 'crm', 'removed'),
    ('public.follow_ups', 'customer_id', 'follow_ups', 'anonymized'),
    ('public.recommendations', 'customer_id', 'recommendations', 'anonymized'),
    ('private.email_deliveries', 'user_id', 'emails', 'anonymized'),
    ('private.email_suppressions', 'lifted_by', 'not exported: an admin id', 'kept'),
    ('private.admin_actions', 'admin_id', 'admin_actions_about_you', 'kept (audit)'),
    ('public.payout_accounts', 'mechanic_id', 'payout_accounts', 'kept (money)'),
    ('public.payouts', 'mechanic_id', 'payouts', 'kept (money)'),
    ('public.mechanic_shift_logs', 'mechanic_id', 'shifts', 'anonymized'),
    ('public.micro_minute_usage', 'mechanic_id', 'micro_minutes', 'kept'),
    ('public.mechanic_weekly_availability', 'mechanic_id', 'availability', 'removed'),
    ('public.availability_overrides', 'mechanic_id', 'availability', 'anonymized'),
    ('public.booking_rules', 'mechanic_id', 'availability', 'removed'),
    ('private.review_cards', 'mechanic_id', 'not exported: a copy of reviews_received', 'anonymized'),
    ('private.request_releases', 'mechanic_id', 'releases', 'kept'),
    ('public.referral_fees', 'mechanic_id', 'referral_fees', 'kept (money)'),
    ('private.account_deletions', 'user_id', 'deletion_request', 'kept (the erasure record)'),
    ('public.mechanic_vetting_decisions', 'mechanic_id', 'vetting', 'anonymized'),
    ('public.mechanic_vetting_decisions', 'decided_by', 'not exported: an admin id', 'kept')
$$;
revoke execute on function private.personal_data_map() from public;

-- A section: the rows of a query as a JSON array (never null).
create or replace function private.export_rows(p_rows jsonb) returns jsonb
language sql immutable set search_path = ''
as $$ select coalesce(p_rows, '[]'::jsonb) $$;
revoke execute on function private.export_rows(jsonb) from public;

-- The caller's data, every section of private.personal_data_map(). Sessions (and their messages)
-- are the only part that grows without bound: the most recent privacy.export_max_sessions per
-- role are listed, and the totals say how many there are.
create or replace function public.export_my_data() returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_uid uuid := (select auth.uid());
  v_max int;
  v_doc jsonb;
  v_cust uuid[];
  v_mech uuid[];
  v_cust_total int;
  v_mech_total int;
begin
  if v_uid is null then
    perform private.raise_error('not_authenticated', 'sign in to export your data');
  end if;
  if exists (select 1 from private.account_deletions d where d.user_id = v_uid and d.status = 'erased') then
    perform private.raise_error('account_erased', 'this account has been erased');
  end if;
  v_max := private.setting_int('privacy.export_max_sessions');

  select count(*)::int, (array_agg(s.id order by s.created_at desc))[1:v_max]
    into v_cust_total, v_cust from public.sessions s where s.customer_id = v_uid;
  select count(*)::int, (array_agg(s.id order by s.created_at desc))[1:v_max]
    into v_mech_total, v_mech from public.sessions s where s.mechanic_id = v_uid;
  v_cust := coalesce(v_cust, '{}');
  v_mech := coalesce(v_mech, '{}');

  v_doc := jsonb_build_object(
    'format', 'autodoctor.export.v1',
    'generated_at', now(),
    'user_id', v_uid,
    'account', (select jsonb_build_object('email', u.email, 'phone', u.phone, 'created_at', u.created_at,
                                          'last_sign_in_at', u.last_sign_in_at,
                                          'user_metadata', u.raw_user_meta_data)
                  from auth.users u where u.id = v_uid),
    'profile', (select to_jsonb(p) from public.profiles p where p.id = v_uid),
    'waiver_acceptances', private.export_rows((select jsonb_agg(to_jsonb(w) order by w.accepted_at)
                                               from public.waiver_acceptances w where w.user_id = v_uid)),
    'vehicles', private.export_rows((select jsonb_agg(to_jsonb(v) order by v.created_at)
                                     from public.vehicles v where v.owner_id = v_uid)),
    'intakes', private.export_rows((select jsonb_agg(to_jsonb(i) order by i.created_at)
                                    from public.intakes i where i.customer_id = v_uid)),
    'requests', private.export_rows((select jsonb_agg(to_jsonb(r) - 'keyword_bits' order by r.created_at)
                                     from public.session_requests r
                                     where r.customer_id = v_uid or r.mechanic_id = v_uid
                                        or r.preferred_mechanic_id = v_uid)),
    'bookings', private.export_rows((select jsonb_agg(to_jsonb(b) - 'checkout_url' order by b.created_at)
                                     from public.bookings b
                                     where b.customer_id = v_uid or b.preferred_mechanic_id = v_uid)),
    'sessions_total', jsonb_build_object('as_customer', v_cust_total, 'as_mechanic', v_mech_total,
                                         'listed_per_role_at_most', v_max),
    'sessions_as_customer', private.export_rows((select jsonb_agg(to_jsonb(s) order by s.created_at)
                                                 from public.sessions s where s.id = any (v_cust))),
    'sessions_as_mechanic', private.export_rows((select jsonb_agg(to_jsonb(s) order by s.created_at)
                                                 from public.sessions s where s.id = any (v_mech))),
    'participations', private.export_rows((select jsonb_agg(to_jsonb(p) order by p.created_at)
                                           from public.session_participants p where p.user_id = v_uid)),
    'session_events', private.export_rows((select jsonb_agg(to_jsonb(e) order by e.id)
                                           from public.session_events e where e.actor_id = v_uid)),
    'messages', private.export_rows((select jsonb_agg(jsonb_build_object(
                                        'id', m.id, 'session_id', m.session_id,
                                        'from', case when m.sender_id = v_uid then 'you' else 'other' end,
                                        'content', m.content, 'attachments', m.attachments,
                                        'created_at', m.created_at) order by m.created_at)
                                     from public.chat_messages m
                                     where m.session_id = any (v_cust || v_mech)
                                        or m.sender_id = v_uid)),
    'files', jsonb_build_object(
      'note', 'object names in Storage; download each with a signed URL from the Storage API '
              '(createSignedUrl), which only the object''s session participants may obtain',
      'session_files', private.export_rows((select jsonb_agg(to_jsonb(f) order by f.created_at)
                                            from public.session_files f where f.uploaded_by = v_uid)),
      'objects', private.export_rows((select jsonb_agg(jsonb_build_object(
                                          'bucket', o.bucket_id, 'name', o.name, 'created_at', o.created_at,
                                          'metadata', o.metadata) order by o.created_at)
                                      from storage.objects o where o.owner_id = v_uid::text))),
    'summaries', private.export_rows((select jsonb_agg(to_jsonb(s) order by s.created_at)
                                      from public.session_summaries s
                                      where s.author_id = v_uid
                                         or (s.session_id = any (v_cust) and s.status = 'submitted'))),
    'follow_ups', private.export_rows((select jsonb_agg(to_jsonb(f) order by f.created_at)
                                       from public.follow_ups f where f.customer_id = v_uid)),
    'recommendations', private.export_rows((select jsonb_agg(to_jsonb(r) order by r.created_at)
                                            from public.recommendations r where r.customer_id = v_uid)),
    'reviews_written', private.export_rows((select jsonb_agg(to_jsonb(r) - 'hidden_by' order by r.created_at)
                                            from public.mechanic_reviews r where r.customer_id = v_uid)),
    'reviews_received', private.export_rows((select jsonb_agg(to_jsonb(r) - 'hidden_by' - 'customer_id'
                                                              order by r.created_at)
                                             from public.mechanic_reviews r where r.mechanic_id = v_uid)),
    'problem_reports', private.export_rows((select jsonb_agg(to_jsonb(r) order by r.reported_at)
                                            from public.session_problem_reports r where r.customer_id = v_uid)),
    'extensions', private.export_rows((select jsonb_agg(to_jsonb(e) order by e.created_at)
                                       from public.session_extensions e where e.requested_by = v_uid)),
    'commitments', private.export_rows((select jsonb_agg(to_jsonb(c) order by c.created_at)
                                        from public.mechanic_commitments c
                                        where c.customer_id = v_uid or c.mechanic_id = v_uid)),
    'appointments', private.export_rows((select jsonb_agg(to_jsonb(a) order by a.created_at)
                                         from public.workshop_appointments a
                                         where a.customer_id = v_uid or a.mechanic_id = v_uid
                                            or a.referring_mechanic_id = v_uid)),
    'payments', private.export_rows((select jsonb_agg(to_jsonb(p) order by p.created_at)
                                     from public.payments p where p.customer_id = v_uid)),
    'refunds', private.export_rows((select jsonb_agg(to_jsonb(r) order by r.created_at)
                                    from public.refunds r where r.customer_id = v_uid or r.requested_by = v_uid)),
    'credits', private.export_rows((select jsonb_agg(to_jsonb(c) - 'created_by' order by c.seq)
                                    from public.credit_ledger c where c.customer_id = v_uid)),
    'payouts', private.export_rows((select jsonb_agg(to_jsonb(p) order by p.created_at)
                                    from public.payouts p where p.mechanic_id = v_uid)),
    'payout_accounts', private.export_rows((select jsonb_agg(to_jsonb(a) order by a.created_at)
                                            from public.payout_accounts a where a.mechanic_id = v_uid)),
    'referral_fees', private.export_rows((select jsonb_agg(to_jsonb(f) order by f.accrued_at)
                                          from public.referral_fees f where f.mechanic_id = v_uid)),
    'emails', private.export_rows((select jsonb_agg(jsonb_build_object(
                                      'template', d.template, 'session_id', d.session_id, 'to', d.to_address,
                                      'status', d.status, 'sent_at', d.sent_at, 'delivered_at', d.delivered_at,
                                      'bounced_at', d.bounced_at) order by d.id)
                                   from private.email_deliveries d where d.user_id = v_uid)),
    'emails_queued', private.export_rows((select jsonb_agg(jsonb_build_object(
                                             'template', o.payload ->> 'template',
                                             'session_id', o.payload ->> 'session_id',
                                             'status', o.status, 'created_at', o.created_at,
                                             'sent_at', o.sent_at) order by o.id)
                                          from private.outbox o
                                          where o.kind = 'email.send' and o.payload ->> 'user_id' = v_uid::text)),
    'crm', private.export_rows((select jsonb_agg(to_jsonb(c) order by c.id)
                                from public.crm_interactions c where c.customer_id = v_uid)),
    'mechanic', (select to_jsonb(m) - 'keyword_bits' from public.mechanics m where m.id = v_uid),
    'vetting', jsonb_build_object(
      'decisions', private.export_rows((select jsonb_agg(jsonb_build_object(
                                           'decision', d.decision, 'note', d.note, 'decided_at', d.decided_at)
                                           order by d.decided_at)
                                        from public.mechanic_vetting_decisions d where d.mechanic_id = v_uid)),
      'documents', private.export_rows((select jsonb_agg(jsonb_build_object(
                                           'name', o.name, 'created_at', o.created_at, 'metadata', o.metadata)
                                           order by o.name)
                                        from storage.objects o
                                        where o.bucket_id = 'mechanic-documents'
                                          and o.name like 'mechanics/' || v_uid::text || '/%'))),
    'availability', jsonb_build_object(
      'weekly', private.export_rows((select jsonb_agg(to_jsonb(w) order by w.day_of_week, w.start_time)
                                     from public.mechanic_weekly_availability w where w.mechanic_id = v_uid)),
      'overrides', private.export_rows((select jsonb_agg(to_jsonb(o) order by o.on_date)
                                        from public.availability_overrides o where o.mechanic_id = v_uid)),
      'time_off', private.export_rows((select jsonb_agg(to_jsonb(t) - 'created_by' order by t.created_at)
                                       from public.mechanic_time_off t where t.mechanic_id = v_uid)),
      'booking_rules', (select to_jsonb(b) from public.booking_rules b where b.mechanic_id = v_uid)),
    'offers', private.export_rows((select jsonb_agg(to_jsonb(o) order by o.created_at)
                                   from public.session_offers o where o.mechanic_id = v_uid)),
    'releases', private.export_rows((select jsonb_agg(to_jsonb(r) order by r.id)
                                     from private.request_releases r where r.mechanic_id = v_uid)),
    'shifts', private.export_rows((select jsonb_agg(to_jsonb(s) order by s.clock_in_at)
                                   from public.mechanic_shift_logs s where s.mechanic_id = v_uid)),
    'micro_minutes', private.export_rows((select jsonb_agg(to_jsonb(u) order by u.created_at)
                                          from public.micro_minute_usage u where u.mechanic_id = v_uid)),
    'workshops', jsonb_build_object(
      'memberships', private.export_rows((select jsonb_agg(jsonb_build_object(
                                             'workshop_id', om.organization_id, 'workshop', o.name,
                                             'role', om.role, 'since', om.created_at) order by om.created_at)
                                          from public.organization_members om
                                          join public.organizations o on o.id = om.organization_id
                                          where om.user_id = v_uid)),
      'created', private.export_rows((select jsonb_agg(jsonb_build_object('id', o.id, 'name', o.name,
                                                                         'created_at', o.created_at))
                                      from public.organizations o where o.created_by = v_uid)),
      'invitations', private.export_rows((select jsonb_agg(to_jsonb(i) - 'token_hash' order by i.created_at)
                                          from public.workshop_invitations i
                                          where i.invited_by = v_uid or i.accepted_by = v_uid))),
    'admin_actions_about_you', private.export_rows((select jsonb_agg(jsonb_build_object(
                                                       'action', a.action, 'reason', a.reason, 'at', a.at)
                                                       order by a.id)
                                                    from private.admin_actions a where a.subject_id = v_uid)),
    'deletion_request', (select jsonb_build_object('status', d.status, 'requested_at', d.requested_at,
                                                   'due_at', d.due_at)
                           from private.account_deletions d where d.user_id = v_uid)
  );
  return v_doc;
end
$$;
revoke execute on function public.export_my_data() from public, anon;
grant execute on function public.export_my_data() to authenticated, service_role;
comment on function public.export_my_data() is
  'Everything the platform holds about the caller, as one JSON document (docs/privacy.md#export).';
-- <<< functions_sql privacy/export.sql

-- >>> functions_sql rooms/timers.sql sha256=5f5346a4e0cc3d12ffb926f1f08893bc970a8444b177207bc3aa1f6f42940896
-- Rooms: deadlines and timers.

-- ---------------------------------------------------------------------------------------------
-- Deadlines and timers
-- ---------------------------------------------------------------------------------------------
-- A session that goes live gets its deadline. Kept as a trigger: the deadline is a pure
-- consequence of the status, started_at and extension_minutes columns, and every path that starts
-- a session or grants an extension (RPC, LiveKit webhook, reconcile, payments) would otherwise
-- have to repeat the formula.
-- The triggers' WHEN clauses repeat their functions' conditions, so PostgreSQL does not call
-- them on the other changes of status (an accept, a release, an end).
create or replace function private.tg_sessions__deadline() returns trigger
language plpgsql set search_path = ''
as $$
begin
  if new.status = 'live' and (old.status is distinct from 'live' or new.extension_minutes <> old.extension_minutes) then
    new.deadline_at := coalesce(new.started_at, now())
                       + make_interval(mins => new.planned_minutes + new.extension_minutes);
  end if;
  return new;
end
$$;
revoke execute on function private.tg_sessions__deadline() from public;
drop trigger if exists _110_deadline on public.sessions;
create trigger _110_deadline before update of status, extension_minutes on public.sessions
  for each row
  when (new.status = 'live' and (old.status is distinct from 'live' or new.extension_minutes <> old.extension_minutes))
  execute function private.tg_sessions__deadline();

-- A change of deadline is announced as `timer` to the session's participants. A trigger: it is a
-- pure consequence of the column (set by _110_deadline, or by an extension), whoever changed it.
drop trigger if exists _310_rooms on public.sessions;
drop function if exists private.tg_sessions__rooms();
create or replace function private.tg_sessions__timer() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if new.deadline_at is distinct from old.deadline_at and new.deadline_at is not null then
    perform realtime.send(
      jsonb_build_object('session_id', new.id, 'started_at', new.started_at, 'deadline_at', new.deadline_at,
                         'planned_minutes', new.planned_minutes, 'extension_minutes', new.extension_minutes,
                         'server_now', now()),
      'timer', 'session:' || new.id::text, true);
  end if;
  return null;
end
$$;
revoke execute on function private.tg_sessions__timer() from public;
drop trigger if exists _310_timer on public.sessions;
create trigger _310_timer after update of status, deadline_at on public.sessions
  for each row
  when (new.deadline_at is distinct from old.deadline_at and new.deadline_at is not null)
  execute function private.tg_sessions__timer();

-- Lifecycle step (core/lifecycle.sql): a session that had a room (it was waiting or live) and
-- ended: close the room, through the outbox, once.
create or replace function private.rooms_on_session_ended(p_session_id uuid, p_from public.session_status)
returns void
language plpgsql security definer set search_path = ''
as $$
begin
  if p_from in ('waiting', 'live') then
    perform private.enqueue('livekit.delete_room', 'livekit.delete_room:' || p_session_id::text,
                            jsonb_build_object('room', 'session-' || p_session_id::text, 'session_id', p_session_id));
  end if;
end
$$;
revoke execute on function private.rooms_on_session_ended(uuid, public.session_status) from public;
grant execute on function private.rooms_on_session_ended(uuid, public.session_status) to service_role;

-- Ends live sessions past their deadline plus the grace; returns how many. A micro-session has no
-- grace: its limit is hard (10 minutes at most, priced and counted in the mechanic's daily micro
-- minutes as planned + extensions), so every minute past the deadline would be unpaid and
-- uncounted; it ends at the first run at or after its deadline.
create or replace function private.end_overdue_sessions(p_now timestamptz default now(), p_limit int default 200)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_id uuid;
  v_ended int := 0;
  v_grace interval := private.setting_interval('sessions.deadline_grace');
begin
  for v_id in
    select s.id from public.sessions s
    where s.status = 'live'
      and s.deadline_at + case when s.duration_type = 'micro' then interval '0' else v_grace end <= p_now
    order by s.deadline_at
    limit p_limit
    for update skip locked
  loop
    perform private.complete_session(v_id, null, 'time cap reached', p_now, 'system');
    v_ended := v_ended + 1;
  end loop;
  return jsonb_build_object('ended', v_ended);
end
$$;
revoke execute on function private.end_overdue_sessions(timestamptz, int) from public;
grant execute on function private.end_overdue_sessions(timestamptz, int) to service_role;
-- <<< functions_sql rooms/timers.sql

reset check_function_bodies;

-- functions_sql-manifest: the state of supabase/functions_sql/ after this migration
-- functions_sql-manifest core/admin.sql sha256=f3423df9a7c70656d684d4eacda964fa8cd797385cbe652f801bc08abd55edc0
-- functions_sql-manifest core/broadcasts.sql sha256=c93578c48e0d8c0c565a87dcb05642e2db63a0c8f168c31dee9dff2d1c798cec
-- functions_sql-manifest core/directory.sql sha256=97061e15165f3460c9f89023ee7162fa3b68d758e42d9d514665d237c6eb604d
-- functions_sql-manifest core/errors.sql sha256=3162f074770469a2c8f8cc6e582405853f74e510e71a3961234876f8a544d9d2
-- functions_sql-manifest core/helpers.sql sha256=fa1872c37c33a27b6875c41ae6e7c365f5d0a366926f2c758b43d0f067205e2e
-- functions_sql-manifest core/lifecycle.sql sha256=5f3ed2f9a8e654d5ca93bbf7edf248cd364e4ce5a123279775841ea40f774886
-- functions_sql-manifest core/rpc.sql sha256=a1fd838cb4fc123595c3b065b2fa6c2034654aeb479050921f7bf4509b15cea6
-- functions_sql-manifest core/sessions.sql sha256=dc306360e4147de60a109be0b93dc249b6c67ff6abd0771b50bbd0a76e6ced5d
-- functions_sql-manifest core/signup.sql sha256=c1eaadc2d934df2bed3300c53885004a45fe59fb472bdbece20a33b0f704bd17
-- functions_sql-manifest core/transitions.sql sha256=098fdf6854df746cfb9fab11e2976507138ad996dc669984166c96a30e18f979
-- functions_sql-manifest jobs/admin.sql sha256=a431c8c37cae7835a803b49b41130f31e66f3e6dc2910f9e6f350a8b69944b13
-- functions_sql-manifest jobs/emails.sql sha256=b143b84726f6a930f3e53cd3b60f284b256b874ae0607350a333069d929dccb4
-- functions_sql-manifest jobs/nudges.sql sha256=133086b270ff41327c4314b308a0dd05c773f505a6d22e28d7d5b769bc5b18f0
-- functions_sql-manifest jobs/outbox.sql sha256=2b71c342ff6ea91cdda0c0de9cb671b3d678768aabd67044c635de6c5b65ba86
-- functions_sql-manifest jobs/runs.sql sha256=22697585fd787eecd46440d55f7e68b6096ccbffae106360d2eca48014e3fd98
-- functions_sql-manifest jobs/schedules.sql sha256=7fd96d235d3fdbf1629e27457c32f256036082972cfcd47bda8dc008df14baf8
-- functions_sql-manifest jobs/sweep_requests.sql sha256=a23a55209d25dfa04d0381b4a044ef8988c369bfd5d5f75342eeb081ffa24fc4
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
-- functions_sql-manifest matching/listing.sql sha256=6e0c8a27974f244f39be7827a632071f6755ee5675563f3dd1c0d2093e9f3734
-- functions_sql-manifest matching/metrics.sql sha256=16e0bfa047e423ebe70c19b3ca3e25ca809a7c0649361b46516eccb088b98145
-- functions_sql-manifest matching/presence.sql sha256=421df5980727f44db43fb1f9d2d00e506c103f9cf5a1c41dc5bc75ed7ebdfac7
-- functions_sql-manifest matching/ranking.sql sha256=79691d024eea19b79204a38924e802489e5bcd816e4517eec8bb57b87eb0be94
-- functions_sql-manifest matching/routing.sql sha256=58ba5a184a80e0036de26d1265fd8e96cf3f2556ad35f0ddc3fd7e0bc5d0cb9d
-- functions_sql-manifest micro/caps.sql sha256=e9fc3ffe6455befad8600e9ed215dc19a7aa536239b9edbf1a6e71318fd1197f
-- functions_sql-manifest micro/clock.sql sha256=32f42427523e5c8be8e9fef6f730b3c8c24fa1054af8a6d2c488b821b12782ca
-- functions_sql-manifest micro/dashboards.sql sha256=1d84b7005d832d8d31bd90af0f51609bb0835cad1c1adb80b551238a8e1d3fee
-- functions_sql-manifest micro/settings.sql sha256=356a78efd80f0d129aee86690203858fd1eb41951ee61f292cd27c6c455a53b6
-- functions_sql-manifest operations/audit.sql sha256=36151fb12fbe00fc18cfa4ab2b483a8124de04a2f0ce94320f000bd8f58afac9
-- functions_sql-manifest operations/audit_read.sql sha256=79a5ce8d7aac6cfd8492db628d05b2361ead8b3e40bbc0e4fc97931e2eb18944
-- functions_sql-manifest operations/intakes.sql sha256=5a26a15d43af2b32955d467c57c0081cd0717e4b954c731b12a062eb09eb5f4f
-- functions_sql-manifest operations/overview.sql sha256=3df15bfd5fd6d5c44b2644335d8fef6a5455f270c8951e97631c500514d4f63f
-- functions_sql-manifest operations/scheduling_stats.sql sha256=55e0a6dbb3bff3100576945b75e2938690e7493c8940e9d2be4059eafec40e75
-- functions_sql-manifest operations/suspension.sql sha256=d7cb210ae69fdcd3ce3869fa5704005f1d589dc3287654f4683f81db76fa9d68
-- functions_sql-manifest operations/vetting.sql sha256=526d634854d6c06516a276b806ddbbb6c836d4ad0eb1126f8c2c47ac392e1022
-- functions_sql-manifest payments/admin.sql sha256=1e117ff190427ab5d40ab22de5fc00ab39dc4e8c7ae9c0f8063d3463907e2f1a
-- functions_sql-manifest payments/checkout.sql sha256=8836fa4de643e4f763bd2c65db490614b4b4ea1d5b1679b6375c0206c2c583d7
-- functions_sql-manifest payments/connect.sql sha256=a8b79815e5f06ce6f00f3f5f82767bb9579e5e9c5f750338fc5c905c866b306d
-- functions_sql-manifest payments/credit.sql sha256=46ca316d088673f86ba57da14e97a14d761a4570debc1f3ad5d74e2538deb54f
-- functions_sql-manifest payments/helpers.sql sha256=564335851c5012a83791aa07b04ab1e2be627799d5b7fb91e995d57776037964
-- functions_sql-manifest payments/integrity.sql sha256=6c2bba7a49c6003ae582231db463a52ae56cde445b3c027d38edb86ffe550532
-- functions_sql-manifest payments/refunds.sql sha256=cae62e292095da8bea25a5efa26fee737f917ddad64674940e764dbdd029a64f
-- functions_sql-manifest payments/settlement.sql sha256=61eab335038603d3c5ca74c4d5482699ff096571f76b57d4ec1be1fe4f84f015
-- functions_sql-manifest payments/stripe_events.sql sha256=4ce61ce9cfefa4baac3f3e9bcea7fde138656823399523df35da2611f8a94edb
-- functions_sql-manifest payments/stripe_worker.sql sha256=7a1794a993228bf0823b97a16ae0d8c7460154642cef84408597c4004e8603ae
-- functions_sql-manifest privacy/erasure.sql sha256=a7b8ff17f6a6318fb461c687b5e31c848282093830f02abdce487adfd26eab91
-- functions_sql-manifest privacy/export.sql sha256=1258822ddbe9235321fca8c04cb70f4f95f46b0283849118fec4478dc1d6190c
-- functions_sql-manifest reviews/prompts.sql sha256=e3c52363528fd28863d3b82dba2a77c539334fee239d433a2c08860bc8182791
-- functions_sql-manifest reviews/public_view.sql sha256=3163f057402af1cc7203ef9ca04b483045d3e1e48322d23e5b7deb6c30c03414
-- functions_sql-manifest reviews/reputation.sql sha256=94a660258d69a38250c8f5efcd36415d5d0e8347bec1a6c772634db1fe37054a
-- functions_sql-manifest reviews/reviews.sql sha256=acb29b4bdf4a2cccae60ad261d0aebd3b2c0ec8dd85824ac9060ecc5d46cad36
-- functions_sql-manifest rooms/access.sql sha256=1b63c186ad327a61c6f7c2eea4436148cd145987bec6902fa111b45b7639ae8f
-- functions_sql-manifest rooms/extensions.sql sha256=ecdb7236fec9d57e29a438797584ac830db6c0cf66795c8b03df65da3635e495
-- functions_sql-manifest rooms/livekit_events.sql sha256=cc2b9fea2937b577fdb85e91e226156f3d7dd339706f5a61c3892c359d9a4e4a
-- functions_sql-manifest rooms/timers.sql sha256=5f5346a4e0cc3d12ffb926f1f08893bc970a8444b177207bc3aa1f6f42940896
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
-- functions_sql-manifest trust/standing.sql sha256=48f60135d88420982e9a0d1f847a97ce41ab3b62f9105b935f35b16f4f5c8a07
-- functions_sql-manifest trust/waiver.sql sha256=e55e17a34963e554f36bec304c2212fe7765268192081a2d2502a28c9ca38b41
-- functions_sql-manifest workshops/appointments.sql sha256=5f6530bed3befb05a76302182e756dc65303c345cb474afd3fe6db59db4b7273
-- functions_sql-manifest workshops/appointments_notify.sql sha256=50c518c61b4fc52577450080ed5407dd64a20d205da2f504932b11d47cc228cb
-- functions_sql-manifest workshops/appointments_rpc.sql sha256=f88d70f5575415327a86ef0017bceacc6b7454be95e3983d1e847d0552acaee6
-- functions_sql-manifest workshops/directory.sql sha256=b4ca0b3283f5e9f382ac3aa61acf49ff546d43813a20baccbd4944bec3c7f93b
-- functions_sql-manifest workshops/dispatch.sql sha256=db61193624f16d01338b25aacc63226c1e4a0a26de073f1545f5b6f4ae96b2a4
-- functions_sql-manifest workshops/hooks.sql sha256=99e01f958c1f3ab8d67144edc06dd9df28f576f36731ea05f68d45e364ae57be
-- functions_sql-manifest workshops/onboarding.sql sha256=1a65ec1d4b5f8f731fdf657e65ae84c0bc504c6a2c55ca6983e9e267a03dbe0d
-- functions_sql-manifest workshops/referral.sql sha256=6bada6ae6e424f43ccae0e5cfeb7f479c054fe63e09c36d0d9a5fa91026b5f75
-- functions_sql-manifest workshops/roster.sql sha256=54b139b2071afad60fa701efeddf2dba296ddb2162f689aba18640a68036f187
-- functions_sql-manifest workshops/specialists.sql sha256=8005a20dd10a143a3921224766e65c28f4c8d57d9e3402851b96556e60b9c291
