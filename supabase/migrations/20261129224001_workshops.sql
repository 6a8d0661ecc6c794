-- workshops: supabase/functions_sql/ as of this migration, written by `autodoctor db commit`.
-- Whole files, re-runnable, in path order; then the drops of what they no longer define.
-- Edit the files in supabase/functions_sql/, never this migration (see docs/migrations.md).
set check_function_bodies = off;

-- >>> functions_sql core/rpc.sql sha256=ab9059793859f4a0aa99e39153809a125acc486aa8ba9bd6475725fc83334ffa
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

-- >>> functions_sql core/sessions.sql sha256=34d1c57c543b4af7a31971a73c346d28281f718ba53fc1ae184a9f1a8bf931f1
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
  -- assigning (p_bypass_window) are not held to it.
  if not p_bypass_window then
    perform private.check_release_limits(v_mechanic, p_request_id, p_now);
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

-- >>> functions_sql jobs/schedules.sql sha256=7fd96d235d3fdbf1629e27457c32f256036082972cfcd47bda8dc008df14baf8
-- Jobs: the jobs declared in private.schedules (migration 20261129000500), what each one runs, and
-- their scheduling with pg_cron where the extension is installed.

-- ---------------------------------------------------------------------------------------------
-- The steps of each job. A step is one SQL function returning jsonb counts; a job runs its steps in
-- order, each in its own subtransaction.
-- ---------------------------------------------------------------------------------------------
create or replace function private.job_steps(p_job text) returns text[]
language sql immutable set search_path = ''
as $$
  select case p_job
    when 'sweep_requests' then array['sweep_requests', 'lapse_micro_approvals']
    when 'dispatch' then array['dispatch_due']
    when 'nudges' then array['send_nudges']
    when 'session_timers' then array['end_overdue_sessions', 'send_starting_notices', 'expire_holds',
                                     'open_scheduled_sessions']
    when 'delivery' then array['release_held_payouts', 'refund_unverified_sessions']
  end
$$;
revoke execute on function private.job_steps(text) from public;

create or replace function private.run_job_step(p_step text, p_now timestamptz) returns jsonb
language plpgsql security definer set search_path = ''
as $$
begin
  case p_step
    when 'sweep_requests' then return private.sweep_requests(p_now);
    when 'lapse_micro_approvals' then return private.lapse_micro_approvals(p_now, 200);  -- workshops/dispatch.sql
    when 'dispatch_due' then return private.dispatch_due(p_now, 200);
    when 'send_nudges' then return private.send_nudges(p_now);
    when 'end_overdue_sessions' then return private.end_overdue_sessions(p_now, 200);
    when 'send_starting_notices' then return private.send_starting_notices(p_now);
    when 'expire_holds' then return private.expire_holds(p_now);
    when 'open_scheduled_sessions' then return private.open_scheduled_sessions(p_now);
    when 'release_held_payouts' then return private.release_held_payouts(p_now, 200);        -- trust/delivery.sql
    when 'refund_unverified_sessions' then return private.refund_unverified_sessions(p_now, 200);
  end case;
end
$$;
revoke execute on function private.run_job_step(text, timestamptz) from public;

-- Runs one job and records the run in private.cron_runs as `cron_<job>` (start; then ok with the
-- merged counts of its steps, or not ok with the errors of the steps that failed). A failing step
-- rolls back its own subtransaction only: the other steps keep their work, the run record is kept,
-- and the error is returned (not raised) so that the record commits.
create or replace function private.run_job(p_job text, p_now timestamptz default now()) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_steps text[] := private.job_steps(p_job);
  v_step text;
  v_run bigint;
  v_part jsonb;
  v_result jsonb := '{}';
  v_errors text[] := '{}';
begin
  if v_steps is null then
    perform private.raise_error('not_found', format('no such job: %s', p_job));
  end if;
  v_run := private.cron_run_start('cron_' || p_job);
  foreach v_step in array v_steps loop
    begin
      v_part := private.run_job_step(v_step, p_now);
      v_result := v_result || coalesce(v_part, '{}');
    exception when others then
      v_errors := v_errors || format('%s: %s (%s)', v_step, sqlerrm, sqlstate);
    end;
  end loop;
  if cardinality(v_errors) = 0 then
    perform private.cron_run_finish(v_run, true, v_result, null);
    return v_result;
  end if;
  perform private.cron_run_finish(v_run, false, nullif(v_result, '{}'), array_to_string(v_errors, '; '));
  return v_result || jsonb_build_object('errors', to_jsonb(v_errors));
end
$$;
revoke execute on function private.run_job(text, timestamptz) from public;
grant execute on function private.run_job(text, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- pg_cron: one pg_cron job named `autodoctor.<name>` per row. Schedules (or updates) every row and
-- unschedules our jobs whose row is gone; leaves other pg_cron jobs alone. Does nothing where
-- pg_cron is absent (the embedded PostgreSQL, the test servers): the `cron` schema is only ever
-- named in dynamic SQL, after checking that cron.schedule and cron.job exist. Idempotent.
-- ---------------------------------------------------------------------------------------------
create or replace function private.sync_pg_cron() returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_row record;
  v_jobname text;
  v_scheduled text[] := '{}';
  v_unscheduled text[] := '{}';
begin
  if to_regprocedure('cron.schedule(text,text,text)') is null or to_regprocedure('cron.unschedule(text)') is null
     or to_regclass('cron.job') is null then
    return jsonb_build_object('pg_cron', false);
  end if;
  for v_row in select s.name, s.cron, s.command from private.schedules s order by s.name loop
    execute 'select cron.schedule($1, $2, $3)' using 'autodoctor.' || v_row.name, v_row.cron, v_row.command;
    v_scheduled := v_scheduled || v_row.name;
  end loop;
  for v_jobname in execute
    'select j.jobname from cron.job j where j.jobname like ''autodoctor.%'' order by j.jobname'
  loop
    if not exists (select 1 from private.schedules s where 'autodoctor.' || s.name = v_jobname) then
      execute 'select cron.unschedule($1)' using v_jobname;
      v_unscheduled := v_unscheduled || v_jobname;
    end if;
  end loop;
  return jsonb_build_object('pg_cron', true, 'scheduled', to_jsonb(v_scheduled),
                            'unscheduled', to_jsonb(v_unscheduled));
end
$$;
revoke execute on function private.sync_pg_cron() from public;

-- A migration that adds, changes or removes a row reschedules in its own transaction.
create or replace function private.tg_schedules__sync_pg_cron() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  perform private.sync_pg_cron();
  return null;
end
$$;
revoke execute on function private.tg_schedules__sync_pg_cron() from public;
drop trigger if exists _100_sync_pg_cron on private.schedules;
create trigger _100_sync_pg_cron after insert or update or delete or truncate on private.schedules
  for each statement execute function private.tg_schedules__sync_pg_cron();

-- The rows inserted by the migration (before this trigger existed), and any change to this file.
select private.sync_pg_cron();
-- <<< functions_sql jobs/schedules.sql

-- >>> functions_sql matching/eligibility.sql sha256=36c72d1964b3eefc61cdaae0f878816a7865860aadcee9a881b7ba82d8b1b12f
-- Matching: the eligibility hook used by ranking and routing: the mechanics that may not take a
-- request for reasons other domains own (shifts and micro caps, bookings). Each domain adds its
-- branch here.

create or replace function private.eligibility_exclusions(p_request_id uuid, p_now timestamptz)
returns setof uuid
language sql stable security definer set search_path = ''
as $$
  with r as (  -- the request, and settings read once (not per mechanic row)
    select s.duration_type, s.planned_minutes, private.setting_int('micro.daily_cap_minutes') as default_cap,
           private.setting_interval('scheduling.buffer') as buffer
    from public.session_requests q join public.sessions s on s.id = q.session_id
    where q.id = p_request_id),
  used as (  -- micro minutes per mechanic and local day, around now (any zone's "today")
    select u.mechanic_id, u.local_day, sum(coalesce(u.actual_minutes, u.reserved_minutes)) as minutes
    from public.micro_minute_usage u
    where u.local_day between (p_now - interval '1 day')::date and (p_now + interval '1 day')::date
    group by u.mechanic_id, u.local_day)
  -- micro-sessions: full sessions never reach micro-only mechanics ...
  select m.id from public.mechanics m, r
  where r.duration_type <> 'micro' and m.participation_mode = 'micro_only'
  union all
  -- ... and micro sessions reach only mechanics whose mode, workshop, shift and cap allow them.
  -- Each branch reads only the mechanics it can exclude (partial indexes), not all of them.
  select m.id from public.mechanics m, r
  where r.duration_type = 'micro' and m.participation_mode = 'full_only'
  union all
  select m.id from public.mechanics m, r  -- paused by a dispatcher (workshops/dispatch.sql)
  where r.duration_type = 'micro' and m.micro_paused_until > p_now
  union all
  select m.id
  from r cross join public.mechanics m
  join public.organizations o on o.id = m.organization_id
  left join used on used.mechanic_id = m.id and used.local_day = (p_now at time zone m.timezone)::date
  where r.duration_type = 'micro' and m.organization_id is not null
    and (not o.micro_sessions_enabled
         or (m.mechanic_type = 'workshop_affiliated' and not m.currently_on_shift)
         or r.planned_minutes > o.micro_max_duration
         or r.planned_minutes > coalesce(m.daily_micro_minutes_cap, o.default_daily_micro_cap, r.default_cap)
                                - coalesce(used.minutes, 0))
  union all
  select m.id  -- mechanics without a workshop who used micro minutes today
  from r cross join used u
  join public.mechanics m on m.id = u.mechanic_id and u.local_day = (p_now at time zone m.timezone)::date
  where r.duration_type = 'micro' and m.organization_id is null
    and r.planned_minutes > coalesce(m.daily_micro_minutes_cap, r.default_cap) - u.minutes
  union all
  select m.id  -- mechanics without a workshop whose own cap is below the request
  from r cross join public.mechanics m
  where r.duration_type = 'micro' and m.organization_id is null
    and m.daily_micro_minutes_cap is not null and m.daily_micro_minutes_cap < r.planned_minutes
  union all
  select m.id  -- the platform default itself is below the request (no own cap, no workshop)
  from r cross join public.mechanics m
  where r.duration_type = 'micro' and r.default_cap < r.planned_minutes
    and m.organization_id is null and m.daily_micro_minutes_cap is null
  union all
  -- scheduling: on time off now, or the on-demand range [now, now + planned + buffer) would run
  -- into a held or booked session (accepting it would fail with schedule_conflict)
  select t.mechanic_id from public.mechanic_time_off t where t.during @> p_now
  union all
  select c.mechanic_id from public.mechanic_commitments c, r
  where (c.status = 'confirmed' or (c.status = 'held' and c.expires_at > p_now))
    and c.during && tstzrange(p_now, p_now + make_interval(mins => r.planned_minutes) + r.buffer)
$$;
revoke execute on function private.eligibility_exclusions(uuid, timestamptz) from public;
grant execute on function private.eligibility_exclusions(uuid, timestamptz) to service_role;
-- <<< functions_sql matching/eligibility.sql

-- >>> functions_sql micro/caps.sql sha256=fdb53cb5189eed36f0ef794df0db47f8211a1d85db656a09f976cd5fa0555de6
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
-- <<< functions_sql micro/caps.sql

-- >>> functions_sql micro/clock.sql sha256=32f42427523e5c8be8e9fef6f730b3c8c24fa1054af8a6d2c488b821b12782ca
-- Micro-sessions: clock in and out, the availability status and its view.

-- ---------------------------------------------------------------------------------------------
-- Clock in / out (public.clock and public.clock_status)
-- ---------------------------------------------------------------------------------------------
create or replace function private.availability_status(p_on_shift boolean, p_mode public.participation_mode)
returns text
language sql immutable set search_path = ''
as $$
  select case when p_on_shift and p_mode in ('micro_only', 'both') then 'on_shift'
              when not p_on_shift and p_mode in ('full_only', 'both') then 'off_shift'
              else 'offline' end
$$;
revoke execute on function private.availability_status(boolean, public.participation_mode) from public;
grant execute on function private.availability_status(boolean, public.participation_mode) to authenticated, service_role;

create or replace function public.clock(p_action text, p_location text default null, p_notes text default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_m public.mechanics;
  v_log public.mechanic_shift_logs;
  v_now timestamptz := now();
begin
  if p_action is null or p_action not in ('clock_in', 'clock_out') then
    perform private.raise_error('invalid_input', 'p_action must be clock_in or clock_out');
  end if;
  if char_length(p_location) > 200 or char_length(p_notes) > 2000 then
    perform private.raise_error('invalid_input', 'p_location (200) or p_notes (2000) is too long');
  end if;
  select * into v_m from public.mechanics where id = v_uid for no key update;
  if not found or v_m.status <> 'approved' then
    perform private.raise_error('not_allowed', 'only approved mechanics clock in');
  end if;
  if p_action = 'clock_in' then
    if v_m.currently_on_shift then
      perform private.raise_error('already_clocked_in', 'already on shift since ' || v_m.last_clock_in::text);
    end if;
    insert into public.mechanic_shift_logs (mechanic_id, organization_id, clock_in_at, location, notes)
    values (v_uid, v_m.organization_id, v_now, nullif(btrim(p_location), ''), nullif(btrim(p_notes), ''));
    update public.mechanics set currently_on_shift = true, last_clock_in = v_now where id = v_uid;
    return jsonb_build_object('ok', true, 'action', 'clock_in', 'message', 'Successfully clocked in',
                              'clocked_in_at', v_now, 'status',
                              private.availability_status(true, v_m.participation_mode));
  end if;
  if not v_m.currently_on_shift then
    perform private.raise_error('not_clocked_in', 'not on shift');
  end if;
  update public.mechanic_shift_logs
  set clock_out_at = v_now,
      shift_duration_minutes = floor(extract(epoch from (v_now - clock_in_at)) / 60)::int,
      notes = coalesce(nullif(btrim(p_notes), ''), notes)
  where mechanic_id = v_uid and clock_out_at is null
  returning * into v_log;
  update public.mechanics set currently_on_shift = false, last_clock_out = v_now where id = v_uid;
  return jsonb_build_object('ok', true, 'action', 'clock_out', 'message', 'Successfully clocked out',
                            'clocked_out_at', v_now, 'shift_duration_minutes', coalesce(v_log.shift_duration_minutes, 0),
                            'status', private.availability_status(false, v_m.participation_mode));
end
$$;
revoke execute on function public.clock(text, text, text) from public, anon;
grant execute on function public.clock(text, text, text) to authenticated, service_role;

create or replace function public.clock_status() returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_m public.mechanics;
  v_log public.mechanic_shift_logs;
  v_cap int;
  v_used int;
begin
  select * into v_m from public.mechanics where id = v_uid;
  if not found then
    perform private.raise_error('not_allowed', 'only mechanics have a clock');
  end if;
  select * into v_log from public.mechanic_shift_logs where mechanic_id = v_uid and clock_out_at is null;
  v_cap := private.micro_cap(v_uid);
  v_used := private.micro_minutes_used(v_uid, now());
  return jsonb_build_object(
    'ok', true,
    'status', jsonb_build_object(
      'currently_on_shift', v_m.currently_on_shift,
      'availability_status', private.availability_status(v_m.currently_on_shift, v_m.participation_mode),
      'participation_mode', v_m.participation_mode, 'daily_micro_minutes_cap', v_cap,
      'daily_micro_minutes_used', v_used, 'micro_minutes_remaining', greatest(v_cap - v_used, 0),
      'last_clock_in', v_m.last_clock_in, 'last_clock_out', v_m.last_clock_out,
      'workshop_name', (select o.name from public.organizations o where o.id = v_m.organization_id)),
    'current_shift', case when v_log.id is null then null else jsonb_build_object(
      'id', v_log.id, 'clocked_in_at', v_log.clock_in_at,
      'duration_minutes', floor(extract(epoch from (now() - v_log.clock_in_at)) / 60)::int,
      'location', v_log.location, 'micro_sessions_taken', v_log.micro_sessions_taken,
      'micro_minutes_used', v_log.micro_minutes_used, 'full_sessions_taken', v_log.full_sessions_taken) end);
end
$$;
revoke execute on function public.clock_status() from public, anon;
grant execute on function public.clock_status() to authenticated, service_role;

-- A midnight reset, kept for schedules that call it: usage is per local date, so this only records that
-- each mechanic's local day has started (idempotent; returns how many mechanics rolled over).
create or replace function public.reset_daily_micro_minutes(p_now timestamptz default now()) returns int
language sql security definer set search_path = ''
as $$
  with rolled as (
    update public.mechanics m set last_micro_reset_date = (p_now at time zone m.timezone)::date
    where m.last_micro_reset_date is distinct from (p_now at time zone m.timezone)::date
    returning 1)
  select count(*)::int from rolled
$$;
revoke execute on function public.reset_daily_micro_minutes(timestamptz) from public, anon, authenticated;
grant execute on function public.reset_daily_micro_minutes(timestamptz) to service_role;

-- Each mechanic's availability status, for itself, its workshop's admins and platform admins. The
-- shift columns of public.mechanics are not selectable by authenticated (docs/access.md): a
-- security definer function reads the rows the caller may see, the view shows them.
drop view if exists public.mechanic_availability_status;
create or replace function private.my_availability_rows()
returns table (mechanic_id uuid, display_name text, organization_id uuid, participation_mode public.participation_mode,
               currently_on_shift boolean, last_clock_in timestamptz, last_clock_out timestamptz)
language sql stable security definer set search_path = ''
as $$
  select m.id, m.display_name, m.organization_id, m.participation_mode, m.currently_on_shift, m.last_clock_in,
         m.last_clock_out
  from public.mechanics m
  where m.id = (select auth.uid()) or m.organization_id in (select private.my_workshop_ids('dispatch'))
     or (select private.is_admin())
$$;
revoke execute on function private.my_availability_rows() from public;
grant execute on function private.my_availability_rows() to authenticated, service_role;

create view public.mechanic_availability_status with (security_invoker = true) as
select m.mechanic_id, m.display_name, m.organization_id, m.participation_mode, m.currently_on_shift,
       m.last_clock_in, m.last_clock_out,
       private.availability_status(m.currently_on_shift, m.participation_mode) as availability_status,
       private.micro_cap(m.mechanic_id) as daily_micro_minutes_cap,
       private.micro_minutes_used(m.mechanic_id, now()) as daily_micro_minutes_used,
       greatest(private.micro_cap(m.mechanic_id) - private.micro_minutes_used(m.mechanic_id, now()), 0)
         as micro_minutes_remaining
from private.my_availability_rows() m;
grant select on public.mechanic_availability_status to authenticated, service_role;
-- <<< functions_sql micro/clock.sql

-- >>> functions_sql micro/dashboards.sql sha256=1d84b7005d832d8d31bd90af0f51609bb0835cad1c1adb80b551238a8e1d3fee
-- Micro-sessions: dashboards.

-- ---------------------------------------------------------------------------------------------
-- Dashboards for mechanics, workshops and admins. Periods end now and span p_days days.
-- ---------------------------------------------------------------------------------------------
create or replace function public.mechanic_micro_dashboard(p_days int default 30) returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_since timestamptz;
  v_shift_hours numeric;
  v_sessions_on_shift int;
begin
  if p_days is null or p_days < 1 or p_days > 366 then
    perform private.raise_error('invalid_input', 'p_days must be 1..366');
  end if;
  if not exists (select 1 from public.mechanics where id = v_uid) then
    perform private.raise_error('not_allowed', 'mechanics only');
  end if;
  v_since := now() - make_interval(days => p_days);
  select coalesce(sum(extract(epoch from (coalesce(l.clock_out_at, now()) - greatest(l.clock_in_at, v_since)))) / 3600, 0)
  into v_shift_hours
  from public.mechanic_shift_logs l where l.mechanic_id = v_uid and coalesce(l.clock_out_at, now()) > v_since;
  select count(*) into v_sessions_on_shift from public.sessions s
  where s.mechanic_id = v_uid and s.status = 'completed' and s.on_shift and s.ended_at >= v_since;
  return jsonb_build_object(
    'daily_micro_minutes_cap', private.micro_cap(v_uid),
    'daily_micro_minutes_used', private.micro_minutes_used(v_uid, now()),
    'micro_sessions', (select count(*) from public.sessions s where s.mechanic_id = v_uid and s.status = 'completed'
                       and s.duration_type = 'micro' and s.ended_at >= v_since),
    'avg_micro_duration_minutes', (select round(avg(s.duration_minutes)::numeric, 1) from public.sessions s
                                   where s.mechanic_id = v_uid and s.status = 'completed'
                                     and s.duration_type = 'micro' and s.ended_at >= v_since),
    'on_shift_hours', round(v_shift_hours, 2),
    'sessions_per_on_shift_hour', case when v_shift_hours > 0
                                       then round(v_sessions_on_shift / v_shift_hours, 2) end);
end
$$;
revoke execute on function public.mechanic_micro_dashboard(int) from public, anon;
grant execute on function public.mechanic_micro_dashboard(int) to authenticated, service_role;

-- Downtime earnings: the price of micro sessions its mechanics completed on shift (gross, cents).
create or replace function public.workshop_micro_dashboard(p_organization_id uuid, p_days int default 30)
returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_since timestamptz;
begin
  perform private.require_user();
  if p_organization_id is null or p_days is null or p_days < 1 or p_days > 366 then
    perform private.raise_error('invalid_input', 'p_organization_id is required; p_days 1..366');
  end if;
  if not private.workshop_can(p_organization_id, (select auth.uid()), 'dispatch') then
    perform private.raise_error('not_allowed', 'workshop owners and admins only');
  end if;
  v_since := now() - make_interval(days => p_days);
  return (
    with s as (
      select s.* from public.sessions s join public.mechanics m on m.id = s.mechanic_id
      where m.organization_id = p_organization_id and s.status = 'completed' and s.ended_at >= v_since)
    select jsonb_build_object(
      'on_shift_hours', (select round(coalesce(sum(extract(epoch from (coalesce(l.clock_out_at, now())
                                       - greatest(l.clock_in_at, v_since)))) / 3600, 0)::numeric, 2)
                         from public.mechanic_shift_logs l
                         where l.organization_id = p_organization_id and coalesce(l.clock_out_at, now()) > v_since),
      'micro_sessions', (select count(*) from s where s.duration_type = 'micro'),
      'full_sessions', (select count(*) from s where s.duration_type <> 'micro'),
      'micro_to_full_ratio', (select round(count(*) filter (where s.duration_type = 'micro')::numeric
                                           / nullif(count(*) filter (where s.duration_type <> 'micro'), 0), 2) from s),
      'avg_micro_handle_minutes', (select round(avg(s.duration_minutes)::numeric, 1) from s
                                   where s.duration_type = 'micro'),
      'downtime_earnings_cents', (select coalesce(sum(s.price_cents), 0) from s
                                  where s.duration_type = 'micro' and s.on_shift)));
end
$$;
revoke execute on function public.workshop_micro_dashboard(uuid, int) from public, anon;
grant execute on function public.workshop_micro_dashboard(uuid, int) to authenticated, service_role;

create or replace function public.admin_micro_dashboard(p_days int default 30) returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_since timestamptz;
begin
  perform private.require_admin();
  if p_days is null or p_days < 1 or p_days > 366 then
    perform private.raise_error('invalid_input', 'p_days must be 1..366');
  end if;
  v_since := now() - make_interval(days => p_days);
  return (
    with s as (select * from public.sessions where status = 'completed' and ended_at >= v_since),
    days as (
      select u.mechanic_id, u.local_day, sum(coalesce(u.actual_minutes, u.reserved_minutes)) as used
      from public.micro_minute_usage u where u.created_at >= v_since group by 1, 2)
    select jsonb_build_object(
      'micro_share_of_sessions', (select round(avg((s.duration_type = 'micro')::int)::numeric, 3) from s),
      'mechanics_taking_micro_share', (select round(count(distinct s.mechanic_id) filter (where s.duration_type = 'micro')::numeric
                                                    / nullif(count(distinct s.mechanic_id), 0), 3) from s),
      'avg_micro_duration_minutes', (select round(avg(s.duration_minutes)::numeric, 1) from s
                                     where s.duration_type = 'micro'),
      'extension_frequency', (select round(avg((s.extension_minutes > 0)::int)::numeric, 3) from s
                              where s.duration_type = 'micro'),
      'cap_utilization', (select round(avg(d.used::numeric / nullif(private.micro_cap(d.mechanic_id), 0)), 3)
                          from days d)));
end
$$;
revoke execute on function public.admin_micro_dashboard(int) from public, anon;
grant execute on function public.admin_micro_dashboard(int) to authenticated, service_role;

-- The workshop's extension rules apply to micro extensions of its mechanics' sessions.
create or replace function private.micro_extension_minutes(p_session_id uuid) returns int
language sql stable security definer set search_path = ''
as $$
  select case when o.id is null then private.setting_int('micro.extension_minutes')
              when not o.allow_extensions then 0 else o.extension_minutes end
  from public.sessions s join public.mechanics m on m.id = s.mechanic_id
  left join public.organizations o on o.id = m.organization_id
  where s.id = p_session_id
$$;
revoke execute on function private.micro_extension_minutes(uuid) from public;
grant execute on function private.micro_extension_minutes(uuid) to service_role;
-- <<< functions_sql micro/dashboards.sql

-- >>> functions_sql micro/settings.sql sha256=356a78efd80f0d129aee86690203858fd1eb41951ee61f292cd27c6c455a53b6
-- Micro-sessions: participation mode and cap settings.

-- A mechanic sets its own participation mode; its workshop (owner/admin) or a platform admin sets
-- mode and cap. p_daily_cap null keeps the cap; -1 clears it (back to the workshop's default).
create or replace function public.set_mechanic_micro_settings(
  p_mechanic_id uuid, p_participation_mode text default null, p_daily_cap int default null
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_staff boolean;
begin
  if p_mechanic_id is null or (p_participation_mode is not null
                               and p_participation_mode not in ('micro_only', 'full_only', 'both'))
     or (p_daily_cap is not null and (p_daily_cap < -1 or p_daily_cap > 1440)) then
    perform private.raise_error('invalid_input', 'mode micro_only/full_only/both; cap 0..1440 (-1 clears)');
  end if;
  v_staff := private.is_admin() or exists (select 1 from public.mechanics m where m.id = p_mechanic_id
                                           and private.workshop_can(m.organization_id, v_uid, 'micro_settings'));
  if not v_staff and (p_mechanic_id <> v_uid or p_daily_cap is not null) then
    perform private.raise_error('not_allowed', 'a mechanic sets its mode; its workshop or an admin sets caps');
  end if;
  update public.mechanics
  set participation_mode = coalesce(p_participation_mode::public.participation_mode, participation_mode),
      daily_micro_minutes_cap = case when p_daily_cap is null then daily_micro_minutes_cap
                                     when p_daily_cap = -1 then null else p_daily_cap end
  where id = p_mechanic_id;
  if not found then
    perform private.raise_error('not_found', 'no such mechanic');
  end if;
  return jsonb_build_object('mechanic_id', p_mechanic_id,
                            'participation_mode', (select participation_mode from public.mechanics where id = p_mechanic_id),
                            'daily_micro_minutes_cap', private.micro_cap(p_mechanic_id));
end
$$;
revoke execute on function public.set_mechanic_micro_settings(uuid, text, int) from public, anon;
grant execute on function public.set_mechanic_micro_settings(uuid, text, int) to authenticated, service_role;
-- <<< functions_sql micro/settings.sql

-- >>> functions_sql payments/integrity.sql sha256=6c2bba7a49c6003ae582231db463a52ae56cde445b3c027d38edb86ffe550532
-- Payments: money integrity views.

-- ---------------------------------------------------------------------------------------------
-- Money integrity: every payment's amount is fully accounted for
--   amount = refunded + refunds in flight + transferred (net of reversals) + payouts in flight
--            (net of reversals in flight) + platform fee (once settled) + unsettled remainder
-- ---------------------------------------------------------------------------------------------
create or replace view private.payment_balances as
select p.id as payment_id, p.session_id, p.customer_id, p.method, p.amount_cents, p.currency, p.settled_at,
       coalesce(r.refunded, 0)::int as refunded_cents,
       coalesce(r.in_flight, 0)::int as refund_pending_cents,
       (coalesce(o.paid, 0) - coalesce(v.succeeded, 0))::int as transferred_cents,
       (coalesce(o.in_flight, 0) - coalesce(v.in_flight, 0))::int as payout_pending_cents,
       case when p.settled_at is null then 0 else p.platform_fee_cents end as platform_fee_cents,
       case when p.settled_at is null then p.amount_cents - coalesce(r.refunded, 0) - coalesce(r.in_flight, 0)
            else 0 end::int as unsettled_cents,
       coalesce(o.count_, 0)::int as payouts,
       coalesce(v.over_reversed, 0)::int as over_reversed_payouts
from public.payments p
left join lateral (
  select sum(x.amount_cents) filter (where x.status = 'succeeded') as refunded,
         sum(x.amount_cents) filter (where x.status in ('queued', 'processing')) as in_flight
  from public.refunds x where x.payment_id = p.id) r on true
left join lateral (
  select sum(x.amount_cents) filter (where x.status = 'paid') as paid,
         sum(x.amount_cents) filter (where x.status in ('waiting', 'queued', 'processing', 'failed')) as in_flight,
         count(*) as count_
  from public.payouts x where x.payment_id = p.id) o on true
left join lateral (
  select sum(y.succeeded) as succeeded, sum(y.in_flight) as in_flight,
         count(*) filter (where y.total > y.payout_amount) as over_reversed
  from (select sum(t.amount_cents) filter (where t.status = 'succeeded') as succeeded,
               sum(t.amount_cents) filter (where t.status in ('queued', 'processing', 'failed')) as in_flight,
               sum(t.amount_cents) as total, x.amount_cents as payout_amount
        from public.payouts x join public.transfer_reversals t on t.payout_id = x.id
        where x.payment_id = p.id group by x.id, x.amount_cents) y) v on true;

-- A payout of this payment left `waiting` (queued, processing, paid) while its session waits for an
-- admin's decision: unverified, or reported, and not decided (docs/trust.md).
create or replace function private.payment_released_undecided(p_payment_id uuid) returns boolean
language sql stable security definer set search_path = ''
as $$
  select exists (
    select 1 from public.payouts x join public.sessions s on s.id = x.session_id
    where x.payment_id = p_payment_id and x.status in ('queued', 'processing', 'paid')
      and (s.delivery = 'unverified'
           or exists (select 1 from public.session_problem_reports r where r.session_id = s.id))
      and not exists (select 1 from public.session_delivery_decisions d where d.session_id = s.id))
$$;
revoke execute on function private.payment_released_undecided(uuid) from public;
grant execute on function private.payment_released_undecided(uuid) to service_role;

create or replace view private.payment_integrity_issues as
select b.*,
       b.refunded_cents + b.refund_pending_cents + b.transferred_cents + b.payout_pending_cents
         + b.platform_fee_cents + b.unsettled_cents as accounted_cents,
       case
         when b.refunded_cents + b.refund_pending_cents > b.amount_cents then 'refunds exceed the payment'
         when b.settled_at is null and b.payouts > 0 then 'payouts before the session completed'
         when b.over_reversed_payouts > 0 then 'a payout reversed by more than it paid'
         when b.refunded_cents + b.refund_pending_cents + b.transferred_cents + b.payout_pending_cents
              + b.platform_fee_cents + b.unsettled_cents <> b.amount_cents then 'amount is not fully accounted for'
         when private.payment_released_undecided(b.payment_id) then 'a payout left while its session waits for a decision'
       end as problem
from private.payment_balances b
where b.refunded_cents + b.refund_pending_cents + b.transferred_cents + b.payout_pending_cents
        + b.platform_fee_cents + b.unsettled_cents <> b.amount_cents
   or b.refunded_cents + b.refund_pending_cents > b.amount_cents
   or (b.settled_at is null and b.payouts > 0)
   or b.over_reversed_payouts > 0
   or private.payment_released_undecided(b.payment_id);

-- Customers whose running credit balance disagrees with the sum of their entries.
create or replace view private.credit_integrity_issues as
select l.customer_id, sum(l.amount_cents)::int as entries_sum_cents,
       (array_agg(l.balance_after_cents order by l.seq desc))[1] as balance_cents,
       count(*)::int as entries, max(l.seq) as last_seq
from public.credit_ledger l
group by l.customer_id
having sum(l.amount_cents) <> (array_agg(l.balance_after_cents order by l.seq desc))[1] or count(*) <> max(l.seq);

-- Referral fees (workshops/referral.sql): a referral payout lowers its workshop payout by as much,
-- so payment_balances holds as it is; here the fees, their deductions and the payouts they move:
--   a fee never exceeds its appointment's invoice × the rate it accrued at, and settled_cents is
--     what its deductions still carry (deducted − restored by refunds);
--   a referral payout carries exactly its deductions (original) and, net of reversals, what they
--     still carry; it belongs to the same payment and session as its workshop payout;
--   a workshop payout was lowered by at least what was deducted from it.
create or replace view private.referral_integrity_issues as
select 'fee' as subject, f.id, f.amount_cents as expected_cents, coalesce(d.carried, 0)::int as actual_cents,
       case
         when a.id is null or a.status <> 'completed' or f.amount_cents::bigint * 10000 > a.invoice_cents::bigint * f.fee_bps
              or f.invoice_cents <> a.invoice_cents then 'fee exceeds the invoice × rate'
         else 'settled cents disagree with the deductions'
       end as problem
from public.referral_fees f
left join public.workshop_appointments a on a.id = f.appointment_id
left join lateral (select sum(x.amount_cents - x.restored_cents) as carried
                   from public.referral_fee_deductions x where x.fee_id = f.id) d on true
where a.id is null or a.status <> 'completed' or f.amount_cents::bigint * 10000 > a.invoice_cents::bigint * f.fee_bps
   or f.invoice_cents <> a.invoice_cents or f.settled_cents <> coalesce(d.carried, 0)
union all
select 'referral payout', p.id, coalesce(d.deducted, 0)::int, p.original_amount_cents,
       'referral payout disagrees with its deductions'
from public.payouts p
join public.payouts w on w.id = p.referral_of_payout_id
left join lateral (select sum(x.amount_cents) as deducted, sum(x.amount_cents - x.restored_cents) as carried
                   from public.referral_fee_deductions x where x.referral_payout_id = p.id) d on true
left join lateral (select sum(t.amount_cents) as reversed
                   from public.transfer_reversals t where t.payout_id = p.id) v on true
where p.original_amount_cents <> coalesce(d.deducted, 0)
   or p.amount_cents - coalesce(v.reversed, 0) <> coalesce(d.carried, 0)
   or p.payment_id <> w.payment_id or p.session_id <> w.session_id or p.payee_kind <> 'mechanic'
   or w.payee_kind <> 'workshop'
union all
select 'workshop payout', w.id, w.original_amount_cents - w.amount_cents, d.deducted::int,
       'workshop payout lowered by less than its referral deductions'
from public.payouts w
join lateral (select sum(x.amount_cents) as deducted
              from public.referral_fee_deductions x where x.workshop_payout_id = w.id) d on d.deducted is not null
where w.original_amount_cents - w.amount_cents < d.deducted;

revoke all on private.payment_balances, private.payment_integrity_issues, private.credit_integrity_issues,
  private.referral_integrity_issues from public;
grant select on private.payment_balances, private.payment_integrity_issues, private.credit_integrity_issues,
  private.referral_integrity_issues to service_role;
comment on view private.payment_integrity_issues is
  'Payments whose amount is not exactly refunds + transfers + platform fee + pending; empty when the books balance.';

-- Admins read the integrity report through the API.
create or replace function public.admin_payment_integrity() returns setof jsonb
language plpgsql stable security definer set search_path = ''
as $$
begin
  perform private.require_admin();
  return query
    select to_jsonb(i) || jsonb_build_object('kind', 'payment') from private.payment_integrity_issues i
    union all
    select to_jsonb(c) || jsonb_build_object('kind', 'credit') from private.credit_integrity_issues c
    union all
    select to_jsonb(r) || jsonb_build_object('kind', 'referral') from private.referral_integrity_issues r;
end
$$;
revoke execute on function public.admin_payment_integrity() from public, anon;
grant execute on function public.admin_payment_integrity() to authenticated, service_role;
-- <<< functions_sql payments/integrity.sql

-- >>> functions_sql payments/refunds.sql sha256=cae62e292095da8bea25a5efa26fee737f917ddad64674940e764dbdd029a64f
-- Payments: refunds.

-- ---------------------------------------------------------------------------------------------
-- Refunds: requested (allocated at once), then sent by a stripe.refund job; Stripe reports the outcome.
-- ---------------------------------------------------------------------------------------------
create or replace function private.refund_rank(p_status public.refund_status) returns int
language sql immutable parallel safe set search_path = ''
as $$
  select case p_status when 'queued' then 0 when 'processing' then 1 when 'succeeded' then 2 else 3 end
$$;
revoke execute on function private.refund_rank(public.refund_status) from public;
grant execute on function private.refund_rank(public.refund_status) to service_role;

create or replace function private.refund_status_from_stripe(p_status text) returns public.refund_status
language sql immutable parallel safe set search_path = ''
as $$
  select case p_status
    when 'succeeded' then 'succeeded'::public.refund_status
    when 'failed' then 'failed'::public.refund_status
    when 'canceled' then 'canceled'::public.refund_status
    else 'processing'::public.refund_status  -- pending, requires_action
  end
$$;
revoke execute on function private.refund_status_from_stripe(text) from public;
grant execute on function private.refund_status_from_stripe(text) to service_role;

-- payments.status follows the refunds that succeeded (money actually returned).
create or replace function private.refresh_payment_status(p_payment_id uuid) returns void
language sql volatile security definer set search_path = ''
as $$
  update public.payments p
  set status = case when r.done = 0 then 'succeeded'::public.payment_status
                    when r.done >= p.amount_cents then 'refunded'::public.payment_status
                    else 'partially_refunded'::public.payment_status end
  from (select coalesce(sum(x.amount_cents) filter (where x.status = 'succeeded'), 0) as done
        from public.refunds x where x.payment_id = p_payment_id) r
  where p.id = p_payment_id
    and p.status is distinct from (case when r.done = 0 then 'succeeded'::public.payment_status
                                        when r.done >= p.amount_cents then 'refunded'::public.payment_status
                                        else 'partially_refunded'::public.payment_status end)
$$;
revoke execute on function private.refresh_payment_status(uuid) from public;
grant execute on function private.refresh_payment_status(uuid) to service_role;

-- A payout's share of its payment: its original amount, less what was deducted from it for
-- referral fees (those cents are the referral payouts' share: workshops/referral.sql).
create or replace function private.payout_share_cents(p_payout public.payouts) returns int
language sql stable security definer set search_path = ''
as $$
  select p_payout.original_amount_cents
         - coalesce((select sum(d.amount_cents) from public.referral_fee_deductions d
                     where d.workshop_payout_id = p_payout.id), 0)::int
$$;
revoke execute on function private.payout_share_cents(public.payouts) from public;
grant execute on function private.payout_share_cents(public.payouts) to service_role;

-- A refund of a settled payment takes the payees' proportional share back: from a payout that
-- was never attempted by lowering its amount, otherwise by a queued transfer reversal. What the
-- payees do not return comes out of the platform's fee. The last refund (nothing left after it)
-- takes back everything that remains, so rounding never leaves a cent behind.
-- A referral payout's part taken back is owed again by the workshop (private.referral_restore).
create or replace function private.allocate_refund(p_payment public.payments, p_refund public.refunds, p_all boolean,
                                                   p_now timestamptz)
returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_payout public.payouts;
  v_remaining int;
  v_cut int;
  v_taken int := 0;
begin
  if coalesce(p_payment.settled_base_cents, 0) > 0 then
    for v_payout in
      select * from public.payouts where payment_id = p_payment.id and status <> 'cancelled' order by id for update
    loop
      v_remaining := v_payout.amount_cents
        - coalesce((select sum(v.amount_cents) from public.transfer_reversals v where v.payout_id = v_payout.id), 0);
      v_cut := case when p_all then v_remaining
                    else least(v_remaining, floor(private.payout_share_cents(v_payout)::numeric * p_refund.amount_cents
                                                  / p_payment.settled_base_cents)::int) end;
      continue when v_cut <= 0;
      -- never attempted (no destination yet): Stripe never saw its amount, lower it in place
      if v_payout.destination_account is null and v_payout.status in ('waiting', 'queued') then
        update public.payouts
        set amount_cents = amount_cents - v_cut,
            status = case when amount_cents - v_cut = 0 then 'cancelled'::public.payout_status else status end
        where id = v_payout.id;
      else
        insert into public.transfer_reversals (payout_id, refund_id, amount_cents)
        values (v_payout.id, p_refund.id, v_cut);
      end if;
      if v_payout.referral_of_payout_id is not null then  -- a referral fee paid from it is owed again
        perform private.referral_restore(v_payout.id, v_cut);
      end if;
      v_taken := v_taken + v_cut;
    end loop;
  end if;
  update public.payments set platform_fee_cents = platform_fee_cents - (p_refund.amount_cents - v_taken)
  where id = p_payment.id;
end
$$;
revoke execute on function private.allocate_refund(public.payments, public.refunds, boolean, timestamptz) from public;
grant execute on function private.allocate_refund(public.payments, public.refunds, boolean, timestamptz) to service_role;

-- Moves a refund forward (queued → processing → succeeded → failed/canceled; never back). A
-- refund that fails after the payment was settled leaves the money with the platform (its fee
-- grows by the amount): the payees' share was already taken back.
create or replace function private.set_refund_status(
  p_refund_id uuid, p_status public.refund_status, p_error text default null, p_now timestamptz default now()
) returns boolean
language plpgsql security definer set search_path = ''
as $$
declare
  v_refund public.refunds;
  v_settled timestamptz;
begin
  select * into v_refund from public.refunds where id = p_refund_id for update;
  if not found or private.refund_rank(p_status) <= private.refund_rank(v_refund.status) then
    return false;
  end if;
  update public.refunds
  set status = p_status, succeeded_at = case when p_status = 'succeeded' then p_now else succeeded_at end,
      last_error = coalesce(left(p_error, 2000), last_error)
  where id = p_refund_id;
  if p_status in ('failed', 'canceled') and v_refund.status not in ('failed', 'canceled') then
    select settled_at into v_settled from public.payments where id = v_refund.payment_id;
    if v_settled is not null then
      update public.payments set platform_fee_cents = platform_fee_cents + v_refund.amount_cents
      where id = v_refund.payment_id;
    end if;
  end if;
  perform private.refresh_payment_status(v_refund.payment_id);
  return true;
end
$$;
revoke execute on function private.set_refund_status(uuid, public.refund_status, text, timestamptz) from public;
grant execute on function private.set_refund_status(uuid, public.refund_status, text, timestamptz) to service_role;

-- Takes a session's request and session row locks, in the order every lifecycle path takes
-- them (request → session → payment): a refund that may cancel the session locks these before
-- the payment, so it never deadlocks with a customer cancelling or the expiry sweep.
create or replace function private.lock_session_for_refund(p_session_id uuid) returns void
language plpgsql security definer set search_path = ''
as $$
begin
  if p_session_id is not null then
    perform 1 from public.session_requests where session_id = p_session_id for update;
    perform 1 from public.sessions where id = p_session_id for update;
  end if;
end
$$;

-- Records a refund of `p_payment_id` (null amount: all that remains). A card refund is queued for
-- a stripe.refund job (or, from Stripe, recorded as Stripe reports it); a credit refund goes back to the
-- customer's credit at once. A payment that is then fully refunded cancels its session if the
-- session has not started (nobody should serve a refunded request), unless p_keep_session (a
-- booking re-priced to a lower price keeps its session: trust/pricing.sql).
drop function if exists private.request_refund(uuid, int, text, text, uuid, text, public.refund_status, timestamptz);
create or replace function private.request_refund(
  p_payment_id uuid,
  p_amount_cents int,
  p_origin text,
  p_reason text,
  p_requested_by uuid default null,
  p_stripe_refund_id text default null,
  p_status public.refund_status default null,
  p_now timestamptz default now(),
  p_keep_session boolean default false
) returns public.refunds
language plpgsql security definer set search_path = ''
as $$
declare
  v_payment public.payments;
  v_open int;
  v_refundable int;
  v_amount int;
  v_refund public.refunds;
  v_victim public.refunds;
  v_session_status public.session_status;
begin
  select * into v_payment from public.payments where id = p_payment_id for update;
  if not found then
    perform private.raise_error('not_found', 'no such payment');
  end if;
  select coalesce(sum(amount_cents) filter (where status not in ('failed', 'canceled')), 0) into v_open
  from public.refunds where payment_id = p_payment_id;
  v_refundable := v_payment.amount_cents - v_open;
  v_amount := coalesce(p_amount_cents, v_refundable);

  if p_origin = 'stripe' then
    -- Stripe already moved the money: record it. Our own refunds not yet sent make room for it.
    while v_amount > v_refundable loop
      select * into v_victim from public.refunds
      where payment_id = p_payment_id and status = 'queued' and stripe_refund_id is null and destination = 'card'
      order by seq desc limit 1;
      exit when not found;
      perform private.set_refund_status(v_victim.id, 'canceled', 'superseded by a refund made in Stripe', p_now);
      v_refundable := v_refundable + v_victim.amount_cents;
    end loop;
  elsif v_amount is null or v_amount <= 0 or v_amount > v_refundable then
    perform private.raise_error('refund_too_large',
      format('%s cents remain refundable on this payment', greatest(v_refundable, 0)));
  end if;

  insert into public.refunds (payment_id, customer_id, seq, amount_cents, currency, destination, origin, reason,
                              requested_by, status, stripe_refund_id)
  values (v_payment.id, v_payment.customer_id,
          coalesce((select max(seq) from public.refunds where payment_id = v_payment.id), 0) + 1,
          v_amount, v_payment.currency, v_payment.method, p_origin, left(p_reason, 4000), p_requested_by,
          case when v_payment.method = 'credit' then 'succeeded'::public.refund_status
               else coalesce(p_status, 'queued'::public.refund_status) end,
          p_stripe_refund_id)
  returning * into v_refund;
  if v_refund.status = 'succeeded' then
    update public.refunds set succeeded_at = p_now where id = v_refund.id returning * into v_refund;
  end if;

  if v_payment.method = 'credit' then
    perform private.add_credit_entry(v_payment.customer_id, 'refund', v_amount, v_payment.currency, null, v_refund.id,
                                     coalesce(p_reason, 'refund'), p_requested_by);
  end if;
  if v_refund.status not in ('failed', 'canceled') then
    if v_payment.settled_at is not null then
      perform private.allocate_refund(v_payment, v_refund, v_amount >= v_refundable, p_now);
    end if;
    if v_amount >= v_refundable and v_payment.session_id is not null and not coalesce(p_keep_session, false) then
      -- Callers that may get here took the request and session locks first
      -- (private.lock_session_for_refund, or the lifecycle update that fired the trigger).
      select status into v_session_status from public.sessions where id = v_payment.session_id;
      if v_session_status in ('pending', 'scheduled', 'waiting') then
        perform private.cancel_session(v_payment.session_id, coalesce(left(p_reason, 4000), 'refunded'), p_now);
      end if;
    end if;
  end if;
  perform private.refresh_payment_status(v_payment.id);
  return v_refund;
end
$$;
revoke execute on function private.request_refund(uuid, int, text, text, uuid, text, public.refund_status, timestamptz, boolean)
  from public;
grant execute on function private.request_refund(uuid, int, text, text, uuid, text, public.refund_status, timestamptz, boolean)
  to service_role;

-- A paid session cancelled before any mechanic took it (or whose request expired) is refunded in
-- full, whatever path cancelled it.
create or replace function private.auto_refund(p_session_id uuid, p_reason text, p_now timestamptz default now())
returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_payment public.payments;
  v_open int;
begin
  -- the session's own payment and any paid extensions
  for v_payment in
    select * from public.payments where session_id = p_session_id order by paid_at, id for update
  loop
    select coalesce(sum(amount_cents) filter (where status not in ('failed', 'canceled')), 0) into v_open
    from public.refunds where payment_id = v_payment.id;
    if v_payment.amount_cents - v_open > 0 then
      perform private.request_refund(v_payment.id, null, 'automatic', p_reason, null, null, null, p_now);
    end if;
  end loop;
end
$$;
revoke execute on function private.auto_refund(uuid, text, timestamptz) from public;
grant execute on function private.auto_refund(uuid, text, timestamptz) to service_role;

revoke execute on function private.lock_session_for_refund(uuid) from public;
grant execute on function private.lock_session_for_refund(uuid) to service_role;
-- <<< functions_sql payments/refunds.sql

-- >>> functions_sql payments/stripe_worker.sql sha256=7a1794a993228bf0823b97a16ae0d8c7460154642cef84408597c4004e8603ae
-- Payments: the Stripe calls as jobs (refunds, transfers, reversals, account refetches).

-- ---------------------------------------------------------------------------------------------
-- Enqueue: a domain row that becomes due is a job, in the transaction that made it due. The job's
-- dedupe key is the Stripe idempotency key the handler sends (refund:<payment_id>:<n>,
-- transfer:<session_id>:<payee>[:<payment_id> for a paid extension], reversal:<payout_id>:<refund_id>).
-- enqueue_again: a row that becomes due again (a payout queued once more) puts its finished job
-- back in line under the same key, so Stripe still answers a repeated call with the first result.
-- ---------------------------------------------------------------------------------------------
create or replace function private.transfer_job_key(p_payout public.payouts) returns text
language sql stable security definer set search_path = ''
as $$
  select case when p_payout.referral_of_payout_id is not null  -- a referral payout (workshops/referral.sql)
              then format('transfer:referral:%s', p_payout.id)
              else format('transfer:%s:%s', p_payout.session_id, p_payout.payee_id)
                   || coalesce((select ':' || p_payout.payment_id::text from public.payments pay
                                where pay.id = p_payout.payment_id and pay.extension_id is not null), '')
         end
$$;
revoke execute on function private.transfer_job_key(public.payouts) from public;
grant execute on function private.transfer_job_key(public.payouts) to service_role;

create or replace function private.tg_refunds__stripe_job() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if new.destination = 'card' and new.stripe_refund_id is null then
    perform private.enqueue_again('stripe.refund', format('refund:%s:%s', new.payment_id, new.seq),
                                  jsonb_build_object('refund_id', new.id));
  end if;
  return null;
end
$$;
revoke execute on function private.tg_refunds__stripe_job() from public;
drop trigger if exists _900_stripe_job on public.refunds;
create trigger _900_stripe_job after insert or update of status on public.refunds
  for each row when (new.status = 'queued') execute function private.tg_refunds__stripe_job();

-- A queued payout is a transfer job; a paid one lets its queued reversals go.
create or replace function private.tg_payouts__stripe_job() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_reversal public.transfer_reversals;
begin
  if new.status = 'queued' then
    perform private.enqueue_again('stripe.transfer', private.transfer_job_key(new),
                                  jsonb_build_object('payout_id', new.id));
  elsif new.status = 'paid' then
    for v_reversal in select * from public.transfer_reversals where payout_id = new.id and status = 'queued' loop
      perform private.enqueue_again('stripe.transfer_reversal',
                                    format('reversal:%s:%s', v_reversal.payout_id, v_reversal.refund_id),
                                    jsonb_build_object('reversal_id', v_reversal.id));
    end loop;
  end if;
  return null;
end
$$;
revoke execute on function private.tg_payouts__stripe_job() from public;
drop trigger if exists _900_stripe_job on public.payouts;
create trigger _900_stripe_job after insert or update of status on public.payouts
  for each row when (new.status in ('queued', 'paid')) execute function private.tg_payouts__stripe_job();

-- A reversal waits for its payout's transfer (the payouts trigger above lets it go once paid).
create or replace function private.tg_transfer_reversals__stripe_job() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if exists (select 1 from public.payouts p where p.id = new.payout_id and p.status = 'paid') then
    perform private.enqueue_again('stripe.transfer_reversal', format('reversal:%s:%s', new.payout_id, new.refund_id),
                                  jsonb_build_object('reversal_id', new.id));
  end if;
  return null;
end
$$;
revoke execute on function private.tg_transfer_reversals__stripe_job() from public;
drop trigger if exists _900_stripe_job on public.transfer_reversals;
create trigger _900_stripe_job after insert or update of status on public.transfer_reversals
  for each row when (new.status = 'queued') execute function private.tg_transfer_reversals__stripe_job();

-- ---------------------------------------------------------------------------------------------
-- The handlers' steps (shared/payments.py): start (the row → processing, returns what Stripe
-- needs; nothing when there is nothing to do) → commit → call Stripe outside any lock → record.
-- A job not settled within its lease is claimed again; the idempotency key makes the repeated
-- call return the first result.
-- ---------------------------------------------------------------------------------------------
create or replace function private.start_refund_job(p_refund_id uuid, p_now timestamptz default now())
returns table (refund_id uuid, payment_id uuid, amount_cents int, currency text, payment_intent_id text)
language sql volatile security definer set search_path = ''
as $$
  update public.refunds r set status = 'processing'
  from public.payments p
  where r.id = p_refund_id and p.id = r.payment_id and r.destination = 'card'
    and r.status in ('queued', 'processing') and r.stripe_refund_id is null
  returning r.id, r.payment_id, r.amount_cents, r.currency, p.stripe_payment_intent_id
$$;
revoke execute on function private.start_refund_job(uuid, timestamptz) from public;
grant execute on function private.start_refund_job(uuid, timestamptz) to service_role;

create or replace function private.record_refund_sent(p_refund_id uuid, p_stripe_refund_id text, p_stripe_status text,
                                                      p_now timestamptz default now())
returns text
language plpgsql security definer set search_path = ''
as $$
declare
  v_payment_id uuid := (select r.payment_id from public.refunds r where r.id = p_refund_id);
begin
  perform 1 from public.payments where id = v_payment_id for update;
  update public.refunds set stripe_refund_id = p_stripe_refund_id, last_error = null
  where id = p_refund_id and stripe_refund_id is null;
  perform private.set_refund_status(p_refund_id, private.refund_status_from_stripe(p_stripe_status), null, p_now);
  return (select r.status::text from public.refunds r where r.id = p_refund_id);
end
$$;
revoke execute on function private.record_refund_sent(uuid, text, text, timestamptz) from public;
grant execute on function private.record_refund_sent(uuid, text, text, timestamptz) to service_role;

-- extension_id: set for a paid extension's payout. A payout that must wait
-- (private.payout_wait_reason: a report, the objection window, the mechanic's standing, a payee
-- that can no longer receive transfers) waits again with the reason visible.
drop function if exists private.start_payout_job(uuid, timestamptz);
create function private.start_payout_job(p_payout_id uuid, p_now timestamptz default now())
returns table (payout_id uuid, session_id uuid, payment_id uuid, payee_id uuid, amount_cents int, currency text,
               destination text, method public.payment_method, charge_id text, payment_intent_id text,
               transfer_group text, extension_id uuid)
language plpgsql security definer set search_path = ''
as $$
declare
  v_payout public.payouts;
  v_reason text;
  v_destination text;
begin
  select * into v_payout from public.payouts p where p.id = p_payout_id and p.status in ('queued', 'processing')
  for update;
  if not found then
    return;
  end if;
  -- everything that holds a payout (objection window, report, standing, payout account)
  v_reason := private.payout_wait_reason(v_payout.id, p_now);
  select a.stripe_account_id into v_destination from public.payout_accounts a
  where a.transfers_active and (a.mechanic_id = v_payout.mechanic_id or a.organization_id = v_payout.organization_id)
  limit 1;
  if v_reason is not null or v_destination is null then
    update public.payouts p set status = 'waiting', waiting_reason = coalesce(v_reason, 'no active payout account')
    where p.id = p_payout_id;
    return;
  end if;
  return query
  update public.payouts p set status = 'processing', destination_account = v_destination
  from public.payments pay
  where p.id = p_payout_id and pay.id = p.payment_id
  returning p.id, p.session_id, p.payment_id, p.payee_id, p.amount_cents, p.currency, p.destination_account,
            pay.method, pay.stripe_charge_id, pay.stripe_payment_intent_id, pay.transfer_group, pay.extension_id;
end
$$;
revoke execute on function private.start_payout_job(uuid, timestamptz) from public;
grant execute on function private.start_payout_job(uuid, timestamptz) to service_role;

create or replace function private.record_payout_paid(p_payout_id uuid, p_transfer_id text, p_now timestamptz default now())
returns boolean
language plpgsql security definer set search_path = ''
as $$
begin
  update public.payouts set status = 'paid', stripe_transfer_id = p_transfer_id, paid_at = p_now,
         last_error = null, waiting_reason = null
  where id = p_payout_id and status = 'processing';
  return found;
end
$$;
revoke execute on function private.record_payout_paid(uuid, text, timestamptz) from public;
grant execute on function private.record_payout_paid(uuid, text, timestamptz) to service_role;

-- The charge a payout transfers from (source_transaction), when the worker had to fetch it.
create or replace function private.record_payment_charge(p_payment_id uuid, p_charge_id text) returns void
language sql volatile security definer set search_path = ''
as $$
  update public.payments set stripe_charge_id = p_charge_id
  where id = p_payment_id and stripe_charge_id is null and p_charge_id is not null
$$;
revoke execute on function private.record_payment_charge(uuid, text) from public;
grant execute on function private.record_payment_charge(uuid, text) to service_role;

create or replace function private.start_reversal_job(p_reversal_id uuid, p_now timestamptz default now())
returns table (reversal_id uuid, payout_id uuid, refund_id uuid, transfer_id text, amount_cents int)
language sql volatile security definer set search_path = ''
as $$
  update public.transfer_reversals v set status = 'processing'
  from public.payouts p
  where v.id = p_reversal_id and p.id = v.payout_id and p.status = 'paid' and v.status in ('queued', 'processing')
  returning v.id, v.payout_id, v.refund_id, p.stripe_transfer_id, v.amount_cents
$$;
revoke execute on function private.start_reversal_job(uuid, timestamptz) from public;
grant execute on function private.start_reversal_job(uuid, timestamptz) to service_role;

create or replace function private.record_reversal_done(p_reversal_id uuid, p_stripe_reversal_id text,
                                                        p_now timestamptz default now())
returns boolean
language plpgsql security definer set search_path = ''
as $$
begin
  update public.transfer_reversals
  set status = 'succeeded', stripe_reversal_id = p_stripe_reversal_id, succeeded_at = p_now, last_error = null
  where id = p_reversal_id and status = 'processing';
  return found;
end
$$;
revoke execute on function private.record_reversal_done(uuid, text, timestamptz) from public;
grant execute on function private.record_reversal_done(uuid, text, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- on_failure hooks (private.job_kinds): called by private.outbox_settle after a failed attempt,
-- in its transaction. Not the last attempt: the row goes back to queued with the error; the last
-- (p_dead): it ends failed, as it always did after payments' last attempt.
-- ---------------------------------------------------------------------------------------------
create or replace function private.refund_job_failed(p_job private.outbox, p_error text, p_dead boolean,
                                                     p_now timestamptz default now())
returns text
language plpgsql security definer set search_path = ''
as $$
declare
  v_refund public.refunds;
begin
  select * into v_refund from public.refunds where id = (p_job.payload ->> 'refund_id')::uuid;
  if not found then
    return 'no_change';
  end if;
  perform 1 from public.payments where id = v_refund.payment_id for update;
  select * into v_refund from public.refunds where id = v_refund.id and status in ('queued', 'processing')
    and stripe_refund_id is null for update;
  if not found then
    return 'no_change';
  end if;
  if p_dead then
    perform private.set_refund_status(v_refund.id, 'failed', p_error, p_now);
    return 'failed';
  end if;
  update public.refunds set status = 'queued', last_error = left(p_error, 2000) where id = v_refund.id;
  return 'queued';
end
$$;
revoke execute on function private.refund_job_failed(private.outbox, text, boolean, timestamptz) from public;
grant execute on function private.refund_job_failed(private.outbox, text, boolean, timestamptz) to service_role;

create or replace function private.payout_job_failed(p_job private.outbox, p_error text, p_dead boolean,
                                                     p_now timestamptz default now())
returns text
language plpgsql security definer set search_path = ''
as $$
declare
  v_status public.payout_status;
begin
  update public.payouts
  set status = case when p_dead then 'failed'::public.payout_status else 'queued'::public.payout_status end,
      last_error = left(p_error, 2000)
  where id = (p_job.payload ->> 'payout_id')::uuid and status in ('queued', 'processing')
  returning status into v_status;
  return coalesce(v_status::text, 'no_change');
end
$$;
revoke execute on function private.payout_job_failed(private.outbox, text, boolean, timestamptz) from public;
grant execute on function private.payout_job_failed(private.outbox, text, boolean, timestamptz) to service_role;

create or replace function private.reversal_job_failed(p_job private.outbox, p_error text, p_dead boolean,
                                                       p_now timestamptz default now())
returns text
language plpgsql security definer set search_path = ''
as $$
declare
  v_status public.reversal_status;
begin
  update public.transfer_reversals
  set status = case when p_dead then 'failed'::public.reversal_status else 'queued'::public.reversal_status end,
      last_error = left(p_error, 2000)
  where id = (p_job.payload ->> 'reversal_id')::uuid and status in ('queued', 'processing')
  returning status into v_status;
  return coalesce(v_status::text, 'no_change');
end
$$;
revoke execute on function private.reversal_job_failed(private.outbox, text, boolean, timestamptz) from public;
grant execute on function private.reversal_job_failed(private.outbox, text, boolean, timestamptz) to service_role;
-- <<< functions_sql payments/stripe_worker.sql

-- >>> functions_sql rooms/access.sql sha256=1b63c186ad327a61c6f7c2eea4436148cd145987bec6902fa111b45b7639ae8f
-- Rooms: who may join a session's LiveKit room and until when.

-- ---------------------------------------------------------------------------------------------
-- Room access: participants publish and subscribe; admins observe hidden; nobody else.
-- ---------------------------------------------------------------------------------------------
create or replace function private.room_grant(p_session_id uuid, p_user_id uuid, p_now timestamptz default now())
returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_session public.sessions;
  v_role text;
  v_name text;
  v_end timestamptz;
begin
  if p_session_id is null or p_user_id is null then
    perform private.raise_error('invalid_input', 'session and user are required');
  end if;
  select * into v_session from public.sessions where id = p_session_id;
  if found and v_session.customer_id = p_user_id then
    v_role := 'customer';
  elsif found and v_session.mechanic_id = p_user_id then
    v_role := 'mechanic';
  elsif found and exists (select 1 from private.admins a where a.user_id = p_user_id) then
    v_role := 'observer';
  else
    -- the same answer whether or not the session exists
    perform private.raise_error('not_allowed', 'only the session''s participants may join its room');
  end if;
  if v_session.status not in ('waiting', 'live') then
    perform private.raise_error('conflict', format('the session is %s: its room is closed', v_session.status));
  end if;
  if v_session.status = 'waiting' then
    perform private.require_micro_approved(v_session.id);  -- workshops/dispatch.sql
  end if;
  -- The planned end: the deadline of a live session; for a waiting one, as if it started now.
  v_end := coalesce(v_session.deadline_at,
                    p_now + make_interval(mins => v_session.planned_minutes + v_session.extension_minutes));
  select coalesce(p.full_name, case v_role when 'mechanic' then m.display_name end, v_role)
  into v_name
  from public.profiles p left join public.mechanics m on m.id = p.id
  where p.id = p_user_id;
  return jsonb_build_object(
    'room', 'session-' || v_session.id::text, 'identity', p_user_id, 'name', coalesce(v_name, v_role),
    'role', v_role, 'session_type', v_session.session_type,
    'expires_at', v_end + private.setting_interval('livekit.token_grace'));
end
$$;
revoke execute on function private.room_grant(uuid, uuid, timestamptz) from public;
grant execute on function private.room_grant(uuid, uuid, timestamptz) to service_role;
-- <<< functions_sql rooms/access.sql

-- >>> functions_sql scheduling/availability_rpc.sql sha256=fa16f1151e8b6ae87c87d4803aa9ca30ae76b2fc0e9eae062b18db3b80635acd
-- Scheduling: availability management RPCs.

-- ---------------------------------------------------------------------------------------------
-- Public RPCs: availability management
-- ---------------------------------------------------------------------------------------------
-- The mechanic whose schedule the caller edits: itself, or (p_mechanic_id) one of its workshop's.
create or replace function private.schedule_target(p_mechanic_id uuid) returns uuid
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_target uuid := coalesce(p_mechanic_id, v_uid);
begin
  if not exists (select 1 from public.mechanics where id = v_target) then
    if p_mechanic_id is null then
      perform private.raise_error('not_allowed', 'only mechanics have a schedule');
    end if;
    perform private.raise_error('not_found', 'no such mechanic');
  end if;
  if v_target <> v_uid and v_target not in (select private.my_workshop_mechanic_ids()) then
    perform private.raise_error('not_allowed', 'only the mechanic or its workshop''s admins edit its schedule');
  end if;
  return v_target;
end
$$;
revoke execute on function private.schedule_target(uuid) from public;
grant execute on function private.schedule_target(uuid) to authenticated, service_role;

create or replace function public.set_weekly_availability(p_timezone text, p_blocks jsonb, p_mechanic_id uuid default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_target uuid := private.schedule_target(p_mechanic_id);
  v_block jsonb;
  v_rows jsonb := '[]'::jsonb;
  v_dow int;
  v_mult numeric;
begin
  if p_timezone is null or char_length(p_timezone) > 64 or not private.is_valid_timezone(p_timezone) then
    perform private.raise_error('invalid_input', 'p_timezone must be an IANA zone name such as Europe/Berlin');
  end if;
  if p_blocks is null or jsonb_typeof(p_blocks) <> 'array' or jsonb_array_length(p_blocks) > 100 then
    perform private.raise_error('invalid_input', 'p_blocks must be an array of at most 100 blocks');
  end if;
  for v_block in select * from jsonb_array_elements(p_blocks) loop
    if jsonb_typeof(v_block) <> 'object' or jsonb_typeof(v_block -> 'day_of_week') <> 'number'
       or (v_block ? 'price_multiplier' and jsonb_typeof(v_block -> 'price_multiplier') <> 'number')
       or exists (select 1 from jsonb_object_keys(v_block) k
                  where k not in ('day_of_week', 'start', 'end', 'price_multiplier')) then
      perform private.raise_error('invalid_input',
        'each block is {"day_of_week": 0-6, "start": "HH:MM", "end": "HH:MM", "price_multiplier": 1.0}');
    end if;
    if (v_block ->> 'day_of_week')::numeric not in (0, 1, 2, 3, 4, 5, 6) then
      perform private.raise_error('invalid_input', 'day_of_week must be 0 (Sunday) to 6');
    end if;
    v_dow := (v_block ->> 'day_of_week')::int;
    v_mult := coalesce((v_block ->> 'price_multiplier')::numeric, 1.0);
    if v_mult < 0.25 or v_mult > 5 or v_mult <> round(v_mult, 2) then
      perform private.raise_error('invalid_input', 'price_multiplier must be between 0.25 and 5 (two decimals)');
    end if;
    if private.parse_clock('end', v_block ->> 'end') <= private.parse_clock('start', v_block ->> 'start', false) then
      perform private.raise_error('invalid_input', 'a block must end after it starts (split overnight blocks)');
    end if;
    v_rows := v_rows || jsonb_build_object('d', v_dow, 's', v_block ->> 'start', 'e', v_block ->> 'end', 'm', v_mult);
  end loop;
  if exists (select 1 from jsonb_array_elements(v_rows) a, jsonb_array_elements(v_rows) b
             where a <> b and a -> 'd' = b -> 'd'
               and (a ->> 's')::time < (b ->> 'e')::time and (b ->> 's')::time < (a ->> 'e')::time)
     or (select count(*) from jsonb_array_elements(v_rows)) <> (select count(distinct x) from jsonb_array_elements(v_rows) x) then
    perform private.raise_error('invalid_input', 'blocks of one day must not overlap');
  end if;

  update public.mechanics set timezone = p_timezone where id = v_target;
  delete from public.mechanic_weekly_availability where mechanic_id = v_target;
  insert into public.mechanic_weekly_availability (mechanic_id, day_of_week, start_time, end_time, price_multiplier)
  select v_target, (x ->> 'd')::int, (x ->> 's')::time, (x ->> 'e')::time, (x ->> 'm')::numeric
  from jsonb_array_elements(v_rows) x;
  return jsonb_build_object('mechanic_id', v_target, 'timezone', p_timezone, 'blocks', jsonb_array_length(v_rows));
end
$$;
revoke execute on function public.set_weekly_availability(text, jsonb, uuid) from public, anon;
grant execute on function public.set_weekly_availability(text, jsonb, uuid) to authenticated, service_role;

create or replace function public.add_time_off(
  p_start timestamptz, p_end timestamptz, p_reason text default null, p_mechanic_id uuid default null
) returns uuid
language plpgsql security definer set search_path = ''
as $$
declare
  v_target uuid := private.schedule_target(p_mechanic_id);
  v_id uuid;
begin
  if p_start is null or p_end is null or not isfinite(p_start) or not isfinite(p_end) or p_end <= p_start then
    perform private.raise_error('invalid_input', 'time off needs a start before its end');
  end if;
  if p_end - p_start > interval '366 days' or p_end < now() - interval '1 day' then
    perform private.raise_error('invalid_input', 'time off is at most 366 days and not in the past');
  end if;
  if char_length(p_reason) > 500 then
    perform private.raise_error('invalid_input', 'p_reason is longer than 500 characters');
  end if;
  insert into public.mechanic_time_off (mechanic_id, during, reason, created_by)
  values (v_target, tstzrange(p_start, p_end), nullif(btrim(p_reason), ''), (select auth.uid()))
  returning id into v_id;
  return v_id;
end
$$;
revoke execute on function public.add_time_off(timestamptz, timestamptz, text, uuid) from public, anon;
grant execute on function public.add_time_off(timestamptz, timestamptz, text, uuid) to authenticated, service_role;

create or replace function public.remove_time_off(p_time_off_id uuid) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_mechanic uuid;
begin
  perform private.require_user();
  perform private.require_arg('p_time_off_id', p_time_off_id);
  select mechanic_id into v_mechanic from public.mechanic_time_off where id = p_time_off_id;
  if v_mechanic is null or not (v_mechanic = (select auth.uid()) or v_mechanic in (select private.my_workshop_mechanic_ids())) then
    perform private.raise_error('not_found', 'no such time off');
  end if;
  delete from public.mechanic_time_off where id = p_time_off_id;
  return jsonb_build_object('time_off_id', p_time_off_id, 'removed', true);
end
$$;
revoke execute on function public.remove_time_off(uuid) from public, anon;
grant execute on function public.remove_time_off(uuid) to authenticated, service_role;

create or replace function public.set_booking_rules(p_rules jsonb, p_mechanic_id uuid default null) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_target uuid := private.schedule_target(p_mechanic_id);
  v_key text;
  v_limits constant jsonb := '{"buffer_minutes": [0, 240], "min_notice_minutes": [0, 43200],
    "max_advance_days": [1, 365], "slot_step_minutes": [5, 240], "max_sessions_per_day": [1, 48]}';
  v_row public.booking_rules;
begin
  if p_rules is null or jsonb_typeof(p_rules) <> 'object' then
    perform private.raise_error('invalid_input', 'p_rules must be an object');
  end if;
  for v_key in select jsonb_object_keys(p_rules) loop
    if v_key = 'instant_booking' then
      if jsonb_typeof(p_rules -> v_key) not in ('boolean', 'null') then
        perform private.raise_error('invalid_input', 'instant_booking must be true, false or null');
      end if;
    elsif not v_limits ? v_key then
      perform private.raise_error('invalid_input', format('unknown rule %s', left(v_key, 60)));
    elsif jsonb_typeof(p_rules -> v_key) = 'null' then
      null;  -- back to the default
    elsif jsonb_typeof(p_rules -> v_key) <> 'number'
          or (p_rules ->> v_key)::numeric <> trunc((p_rules ->> v_key)::numeric)
          or (p_rules ->> v_key)::numeric < (v_limits -> v_key ->> 0)::numeric
          or (p_rules ->> v_key)::numeric > (v_limits -> v_key ->> 1)::numeric
          or (v_key = 'slot_step_minutes' and (p_rules ->> v_key)::int % 5 <> 0) then
      perform private.raise_error('invalid_input',
        format('%s must be a whole number from %s to %s', v_key, v_limits -> v_key ->> 0, v_limits -> v_key ->> 1));
    end if;
  end loop;
  insert into public.booking_rules (mechanic_id) values (v_target) on conflict (mechanic_id) do nothing;
  update public.booking_rules r set
    buffer_minutes = case when p_rules ? 'buffer_minutes' then (p_rules ->> 'buffer_minutes')::int else r.buffer_minutes end,
    min_notice_minutes = case when p_rules ? 'min_notice_minutes' then (p_rules ->> 'min_notice_minutes')::int
                              else r.min_notice_minutes end,
    max_advance_days = case when p_rules ? 'max_advance_days' then (p_rules ->> 'max_advance_days')::int
                            else r.max_advance_days end,
    slot_step_minutes = case when p_rules ? 'slot_step_minutes' then (p_rules ->> 'slot_step_minutes')::int
                             else r.slot_step_minutes end,
    max_sessions_per_day = case when p_rules ? 'max_sessions_per_day' then (p_rules ->> 'max_sessions_per_day')::int
                                else r.max_sessions_per_day end,
    instant_booking = case when p_rules ? 'instant_booking' then (p_rules ->> 'instant_booking')::boolean
                           else r.instant_booking end,
    updated_at = now()
  where r.mechanic_id = v_target
  returning * into v_row;
  return (select to_jsonb(x) from (
    select v_target as mechanic_id, (extract(epoch from e.buffer) / 60)::int as buffer_minutes,
           (extract(epoch from e.min_notice) / 60)::int as min_notice_minutes,
           extract(day from e.max_advance)::int as max_advance_days,
           (extract(epoch from e.step) / 60)::int as slot_step_minutes,
           e.max_per_day as max_sessions_per_day, e.instant as instant_booking
    from private.booking_rules_for(v_target) e) x);
end
$$;
revoke execute on function public.set_booking_rules(jsonb, uuid) from public, anon;
grant execute on function public.set_booking_rules(jsonb, uuid) to authenticated, service_role;

-- Workshop hours: [{"day_of_week", "open", "close", "break_start"?, "break_end"?}] replaces the
-- week; a day not listed is closed. Owners and admins of the workshop only.
create or replace function public.set_workshop_hours(
  p_organization_id uuid, p_hours jsonb, p_timezone text default null, p_capacity int default 1
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_day jsonb;
  v_days int[] := '{}';
  v_open time;
  v_close time;
  v_bs time;
  v_be time;
begin
  perform private.require_user();
  perform private.require_arg('p_organization_id', p_organization_id);
  if not private.workshop_can(p_organization_id, (select auth.uid()), 'edit_hours')
     or not exists (select 1 from public.organizations o where o.id = p_organization_id) then
    perform private.raise_error('not_allowed', 'only the workshop''s staff with edit_hours set its hours');
  end if;
  if p_timezone is not null and (char_length(p_timezone) > 64 or not private.is_valid_timezone(p_timezone)) then
    perform private.raise_error('invalid_input', 'p_timezone must be an IANA zone name');
  end if;
  if p_capacity is null or p_capacity < 1 or p_capacity > 100 then
    perform private.raise_error('invalid_input', 'p_capacity must be 1..100');
  end if;
  if p_hours is null or jsonb_typeof(p_hours) <> 'array' or jsonb_array_length(p_hours) > 7 then
    perform private.raise_error('invalid_input', 'p_hours must be an array of at most 7 days');
  end if;
  for v_day in select * from jsonb_array_elements(p_hours) loop
    if jsonb_typeof(v_day) <> 'object' or jsonb_typeof(v_day -> 'day_of_week') <> 'number'
       or (v_day ->> 'day_of_week')::numeric not in (0, 1, 2, 3, 4, 5, 6)
       or (v_day ->> 'day_of_week')::int = any (v_days)
       or exists (select 1 from jsonb_object_keys(v_day) k
                  where k not in ('day_of_week', 'open', 'close', 'break_start', 'break_end')) then
      perform private.raise_error('invalid_input',
        'each day is {"day_of_week": 0-6 (once), "open": "HH:MM", "close": "HH:MM", "break_start"?, "break_end"?}');
    end if;
    v_days := v_days || (v_day ->> 'day_of_week')::int;
    v_open := private.parse_clock('open', v_day ->> 'open', false);
    v_close := private.parse_clock('close', v_day ->> 'close');
    v_bs := case when v_day ? 'break_start' then private.parse_clock('break_start', v_day ->> 'break_start', false) end;
    v_be := case when v_day ? 'break_end' then private.parse_clock('break_end', v_day ->> 'break_end', false) end;
    if v_close <= v_open or (v_bs is null) <> (v_be is null)
       or (v_bs is not null and not (v_bs > v_open and v_be > v_bs and v_be < v_close)) then
      perform private.raise_error('invalid_input', 'close after open; a break lies inside the day');
    end if;
  end loop;
  if p_timezone is not null then
    update public.organizations set timezone = p_timezone where id = p_organization_id;
  end if;
  delete from public.workshop_hours where organization_id = p_organization_id;
  insert into public.workshop_hours (organization_id, day_of_week, is_open, open_time, close_time, break_start,
                                     break_end, capacity)
  select p_organization_id, (d ->> 'day_of_week')::int, true, (d ->> 'open')::time, (d ->> 'close')::time,
         (d ->> 'break_start')::time, (d ->> 'break_end')::time, p_capacity
  from jsonb_array_elements(p_hours) d;
  return jsonb_build_object('organization_id', p_organization_id, 'open_days', cardinality(v_days));
end
$$;
revoke execute on function public.set_workshop_hours(uuid, jsonb, text, int) from public, anon;
grant execute on function public.set_workshop_hours(uuid, jsonb, text, int) to authenticated, service_role;

-- A date override of the caller (or of its workshop's mechanic, or of a workshop it
-- administers): p_blocks [] = day off / closed, [{"start", "end", "price_multiplier"?}] = these
-- hours instead of the week's, null = remove the override.
create or replace function public.set_date_override(
  p_date date, p_blocks jsonb, p_reason text default null, p_mechanic_id uuid default null,
  p_organization_id uuid default null
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_mechanic uuid;
  v_block jsonb;
  v_n int := 0;
begin
  perform private.require_user();
  if p_date is null or not isfinite(p_date) or p_date < current_date - 1 or p_date > current_date + 730 then
    perform private.raise_error('invalid_input', 'p_date must be a date from yesterday to two years ahead');
  end if;
  if char_length(p_reason) > 500 then
    perform private.raise_error('invalid_input', 'p_reason is longer than 500 characters');
  end if;
  if p_organization_id is not null then
    if p_mechanic_id is not null then
      perform private.raise_error('invalid_input', 'give a mechanic or a workshop, not both');
    end if;
    if not private.workshop_can(p_organization_id, (select auth.uid()), 'edit_hours')
     or not exists (select 1 from public.organizations o where o.id = p_organization_id) then
      perform private.raise_error('not_allowed', 'only the workshop''s staff with edit_hours set its dates');
    end if;
  else
    v_mechanic := private.schedule_target(p_mechanic_id);
  end if;
  if p_blocks is not null and (jsonb_typeof(p_blocks) <> 'array' or jsonb_array_length(p_blocks) > 24) then
    perform private.raise_error('invalid_input', 'p_blocks must be null, [] or an array of at most 24 blocks');
  end if;
  delete from public.availability_overrides
  where on_date = p_date and (mechanic_id = v_mechanic or organization_id = p_organization_id);
  if p_blocks is null then
    return jsonb_build_object('on_date', p_date, 'override', 'removed');
  end if;
  if jsonb_array_length(p_blocks) = 0 then
    insert into public.availability_overrides (mechanic_id, organization_id, on_date, is_available, reason)
    values (v_mechanic, p_organization_id, p_date, false, nullif(btrim(p_reason), ''));
    return jsonb_build_object('on_date', p_date, 'override', 'day_off');
  end if;
  for v_block in select * from jsonb_array_elements(p_blocks) loop
    if jsonb_typeof(v_block) <> 'object'
       or (v_block ? 'price_multiplier' and jsonb_typeof(v_block -> 'price_multiplier') <> 'number')
       or exists (select 1 from jsonb_object_keys(v_block) k where k not in ('start', 'end', 'price_multiplier'))
       or coalesce((v_block ->> 'price_multiplier')::numeric, 1) not between 0.25 and 5 then
      perform private.raise_error('invalid_input', 'each block is {"start": "HH:MM", "end": "HH:MM", "price_multiplier"?}');
    end if;
    if private.parse_clock('end', v_block ->> 'end') <= private.parse_clock('start', v_block ->> 'start', false) then
      perform private.raise_error('invalid_input', 'a block must end after it starts');
    end if;
    begin
      insert into public.availability_overrides (mechanic_id, organization_id, on_date, is_available, start_time,
                                                 end_time, price_multiplier, reason)
      values (v_mechanic, p_organization_id, p_date, true, (v_block ->> 'start')::time, (v_block ->> 'end')::time,
              round(coalesce((v_block ->> 'price_multiplier')::numeric, 1), 2), nullif(btrim(p_reason), ''));
    exception when exclusion_violation then
      perform private.raise_error('invalid_input', 'blocks of one date must not overlap');
    end;
    v_n := v_n + 1;
  end loop;
  return jsonb_build_object('on_date', p_date, 'override', 'hours', 'blocks', v_n);
end
$$;
revoke execute on function public.set_date_override(date, jsonb, text, uuid, uuid) from public, anon;
grant execute on function public.set_date_override(date, jsonb, text, uuid, uuid) to authenticated, service_role;
-- <<< functions_sql scheduling/availability_rpc.sql

-- >>> functions_sql trust/contact.sql sha256=b7992cc67d68723ea04b1986c3ee163f46210619cb7fbc5fd973b0b0f80f323c
-- Trust: accept-and-release, the delayed assignment notice, and the RPCs that reach the columns of
-- public.mechanics that authenticated may not select (docs/trust.md, "Contact details, columns and
-- the waiver"). The contact window's policy helpers are in the migration (policies need them).

-- ---------------------------------------------------------------------------------------------
-- Accept-and-release
-- ---------------------------------------------------------------------------------------------
-- Records that mechanic `p_mechanic_id` released request `p_request_id` (called by cancel_request
-- with the mechanic's row not yet locked); reaching trust.max_releases_per_hour within the last
-- hour pauses its accepting for trust.release_cooldown.
create or replace function private.record_release(p_request_id uuid, p_mechanic_id uuid, p_now timestamptz)
returns void
language plpgsql security definer set search_path = ''
as $$
begin
  insert into private.request_releases (request_id, mechanic_id, released_at)
  values (p_request_id, p_mechanic_id, p_now);
  if (select count(*) from private.request_releases r
      where r.mechanic_id = p_mechanic_id and r.released_at > p_now - interval '1 hour' and not r.by_system)
     >= private.setting_int('trust.max_releases_per_hour') then
    update public.mechanics
    set releases_blocked_until = p_now + private.setting_interval('trust.release_cooldown')
    where id = p_mechanic_id;
  end if;
end
$$;
revoke execute on function private.record_release(uuid, uuid, timestamptz) from public;
grant execute on function private.record_release(uuid, uuid, timestamptz) to service_role;

-- The accept path's check (private.assign_request, after it locked the mechanic's row): one
-- indexed lookup for "released it before", and the row's releases_blocked_until.
create or replace function private.check_release_limits(
  p_mechanic public.mechanics, p_request_id uuid, p_now timestamptz
) returns void
language plpgsql stable security definer set search_path = ''
as $$
begin
  if p_mechanic.releases_blocked_until > p_now then
    perform private.raise_error('too_many_releases',
      format('you released %s accepted requests within an hour: accepting resumes at %s',
             private.setting_int('trust.max_releases_per_hour'), p_mechanic.releases_blocked_until));
  end if;
  if exists (select 1 from private.request_releases r
             where r.request_id = p_request_id and r.mechanic_id = p_mechanic.id) then
    perform private.raise_error('request_released', 'you released this request: it is for other mechanics now');
  end if;
end
$$;
revoke execute on function private.check_release_limits(public.mechanics, uuid, timestamptz) from public;
grant execute on function private.check_release_limits(public.mechanics, uuid, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- The assignment notice: mechanic_assigned is enqueued notifications.assignment_notice_delay
-- after the accept, and sent only if that mechanic still holds the session then.
-- ---------------------------------------------------------------------------------------------
create or replace function private.enqueue_assignment_notice(p_session public.sessions, p_now timestamptz)
returns bigint
language plpgsql security definer set search_path = ''
as $$
begin
  return private.enqueue(
    'email.send',
    format('email:mechanic_assigned:%s:%s:%s', p_session.id, p_session.customer_id, p_session.mechanic_id),
    jsonb_build_object('template', 'mechanic_assigned', 'user_id', p_session.customer_id, 'session_id', p_session.id,
                       'data', jsonb_build_object('mechanic_id', p_session.mechanic_id)),
    p_now + private.setting_interval('notifications.assignment_notice_delay'));
end
$$;
revoke execute on function private.enqueue_assignment_notice(public.sessions, timestamptz) from public;
grant execute on function private.enqueue_assignment_notice(public.sessions, timestamptz) to service_role;

-- Whether an email job is still due when the worker sends it (shared/email.py skips it otherwise):
-- a mechanic_assigned notice only while that mechanic still holds the session.
create or replace function private.email_still_due(p_template text, p_session_id uuid, p_data jsonb) returns boolean
language sql stable security definer set search_path = ''
as $$
  select case when p_template = 'mechanic_assigned' then
    exists (select 1 from public.sessions s
            where s.id = p_session_id and s.mechanic_id::text = p_data ->> 'mechanic_id'
              and s.status in ('waiting', 'live', 'completed'))
    -- an accept waiting for its workshop's dispatcher is not told (approve_micro_accept tells it)
    and not exists (select 1 from public.session_requests r
                    where r.session_id = p_session_id and r.approval_pending_until is not null)
  else true end
$$;
revoke execute on function private.email_still_due(text, uuid, jsonb) from public;
grant execute on function private.email_still_due(text, uuid, jsonb) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Columns of public.mechanics beyond the directory
-- ---------------------------------------------------------------------------------------------
-- The caller's own mechanic row, every column.
create or replace function public.get_my_mechanic() returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_row jsonb;
begin
  select to_jsonb(m) into v_row from public.mechanics m where m.id = v_uid;
  if v_row is null then
    perform private.raise_error('not_found', 'you have no mechanic profile');
  end if;
  return v_row;
end
$$;
revoke execute on function public.get_my_mechanic() from public, anon;
grant execute on function public.get_my_mechanic() to authenticated, service_role;

-- The members of a workshop with their contact details, for the staff who manage its roster
-- (manage_roster; platform admins: any): role, name and phone from the profile, and the full
-- mechanic row of those who are mechanics. Every member reads the plain roster
-- (organization_members: see_members).
create or replace function public.get_workshop_members(p_organization_id uuid) returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
begin
  perform private.require_arg('p_organization_id', p_organization_id);
  if not private.workshop_can(p_organization_id, v_uid, 'manage_roster') then
    -- the same answer whether or not the workshop exists
    perform private.raise_error('not_found', 'no such workshop among those you administer');
  end if;
  return coalesce((
    select jsonb_agg(jsonb_build_object(
             'user_id', om.user_id, 'role', om.role, 'joined_at', om.created_at,
             'full_name', p.full_name, 'phone', p.phone, 'mechanic', to_jsonb(m))
           order by om.role, p.full_name, om.user_id)
    from public.organization_members om
    left join public.profiles p on p.id = om.user_id
    left join public.mechanics m on m.id = om.user_id
    where om.organization_id = p_organization_id), '[]'::jsonb);
end
$$;
revoke execute on function public.get_workshop_members(uuid) from public, anon;
grant execute on function public.get_workshop_members(uuid) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- The contact window of one session
-- ---------------------------------------------------------------------------------------------
-- Whether session `s` is, at `p_now`, inside its mechanic's contact window (the rule of
-- private.my_contact_sessions, the policies' helper in the migration: keep them the same).
create or replace function private.contact_window_open(s public.sessions, p_now timestamptz) returns boolean
language plpgsql stable security definer set search_path = ''
as $$
begin
  if s.mechanic_id is null then
    return false;
  end if;
  if s.status = 'live' then
    return true;
  end if;
  return s.scheduled_for is not null
     and s.status in ('scheduled', 'waiting', 'completed')
     and p_now >= s.scheduled_for - private.setting_interval('contact.before_start')
     and p_now <= coalesce(s.ended_at,
                           s.scheduled_for + make_interval(mins => s.planned_minutes + s.extension_minutes))
                  + private.setting_interval('contact.after_end');
end
$$;
revoke execute on function private.contact_window_open(public.sessions, timestamptz) from public;
grant execute on function private.contact_window_open(public.sessions, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- What a session's mechanic needs to prepare, at any time (a booked session has no request row):
-- plan, time, concern and vehicle, never the customer's contact details or vehicle identifiers.
-- ---------------------------------------------------------------------------------------------
create or replace function public.get_session_brief(p_session_id uuid) returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_brief jsonb;
begin
  perform private.require_arg('p_session_id', p_session_id);
  select jsonb_build_object(
           'session_id', s.id, 'status', s.status, 'plan_code', s.plan_code, 'session_type', s.session_type,
           'planned_minutes', s.planned_minutes, 'scheduled_for', s.scheduled_for,
           'concern', i.concern, 'details', i.details,
           'vehicle_make', coalesce(v.make, i.vehicle_make), 'vehicle_model', coalesce(v.model, i.vehicle_model),
           'vehicle_year', coalesce(v.year, i.vehicle_year), 'odometer', coalesce(i.odometer, v.mileage),
           'contact_open', private.contact_window_open(s, now()))
  into v_brief
  from public.sessions s
  left join public.intakes i on i.id = s.intake_id
  left join public.vehicles v on v.id = s.vehicle_id
  where s.id = p_session_id
    and (s.mechanic_id = v_uid or s.customer_id = v_uid or private.is_admin());
  if v_brief is null then
    perform private.raise_error('not_found', 'no such session');
  end if;
  return v_brief;
end
$$;
revoke execute on function public.get_session_brief(uuid) from public, anon;
grant execute on function public.get_session_brief(uuid) to authenticated, service_role;
-- <<< functions_sql trust/contact.sql

-- >>> functions_sql trust/delivery.sql sha256=13cf9a7795fabfc1598e9b01f993e1352becf53f8f60d52481d37361cbf191ad
-- Trust: what counts as delivered service, the objection window before payouts leave, the
-- customer's report and the admin's decision (docs/trust.md, "Delivery, the objection window and
-- standing").
--
-- Locking order, as everywhere: request → session → payment → refunds / payouts → mechanic.

-- ---------------------------------------------------------------------------------------------
-- Evidence: 'delivered' when both took part and the session lasted trust.min_delivered_minutes.
-- Chat: each side sent at least one message while the session was live. Video and diagnostic:
-- both joined the LiveKit room (session_participants.joined_at, written by LiveKit events).
-- ---------------------------------------------------------------------------------------------
create or replace function private.session_delivery(p_session_id uuid, p_started timestamptz, p_ended timestamptz)
returns text
language sql stable security definer set search_path = ''
as $$
  select case
    when s.mechanic_id is null or p_started is null or p_ended is null then 'unverified'
    when p_ended - p_started < make_interval(mins => private.setting_int('trust.min_delivered_minutes')) then 'unverified'
    when s.session_type = 'chat' then
      case when exists (select 1 from public.chat_messages m where m.session_id = s.id and m.sender_id = s.customer_id
                          and m.created_at between p_started and p_ended)
            and exists (select 1 from public.chat_messages m where m.session_id = s.id and m.sender_id = s.mechanic_id
                          and m.created_at between p_started and p_ended)
           then 'delivered' else 'unverified' end
    when (select count(*) from public.session_participants sp
          where sp.session_id = s.id and sp.joined_at is not null
            and sp.user_id in (s.customer_id, s.mechanic_id)) = 2 then 'delivered'
    else 'unverified'
  end
  from public.sessions s where s.id = p_session_id
$$;
revoke execute on function private.session_delivery(uuid, timestamptz, timestamptz) from public;
grant execute on function private.session_delivery(uuid, timestamptz, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Why a payout must wait (null: it may go). The one rule every path that queues a payout asks:
-- settlement, the release job, an admin's decision or release, a payout account's activation
-- (payments/stripe_events.sql) and the transfer worker (payments/stripe_worker.sql).
--   1. a problem reported by the customer and not yet decided by an admin
--   2. an unverified session no admin decided (normally never settled; defensive)
--   3. the objection window (payouts.release_at), unless an admin decided the session
--   4. the session's mechanic is not in good standing, unless an admin released this payout
--   5. the payee cannot receive transfers (private.payee_waiting_reason)
-- Volatile: each call reads what is committed now (a report committed a moment ago counts).
-- ---------------------------------------------------------------------------------------------
create or replace function private.payout_wait_reason(p_payout_id uuid, p_now timestamptz default now())
returns text
language sql volatile security definer set search_path = ''
as $$
  select case
    when d.session_id is null and r.session_id is not null
      then 'problem reported by the customer: waits for an admin decision'
    when d.session_id is null and s.delivery = 'unverified'
      then 'delivery unverified: waits for an admin decision'
    when d.session_id is null and p.release_at > p_now
      then 'objection window: released at ' || to_char(p.release_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC'
    when p.admin_released_at is null and m.status <> 'approved'
      then 'mechanic ' || m.status::text || ': payouts wait for an admin release'
    when p.admin_released_at is null and m.payouts_held
      then 'mechanic payouts held since a suspension: wait for an admin release'
    else private.payee_waiting_reason(p.mechanic_id, p.organization_id)
  end
  from public.payouts p
  join public.sessions s on s.id = p.session_id
  -- the session's mechanic; a referral payout's own payee (workshops/referral.sql)
  left join public.mechanics m on m.id = coalesce(p.mechanic_id, s.mechanic_id)
  left join public.session_delivery_decisions d on d.session_id = p.session_id
  left join public.session_problem_reports r on r.session_id = p.session_id
  where p.id = p_payout_id
$$;
revoke execute on function private.payout_wait_reason(uuid, timestamptz) from public;
grant execute on function private.payout_wait_reason(uuid, timestamptz) to service_role;

-- Applies the rule to a session's payouts: waiting → queued when nothing holds it (the payouts
-- trigger enqueues its stripe.transfer job); queued → waiting when something does and no transfer
-- was attempted yet (the worker checks the others: private.start_payout_job); the reason is kept
-- up to date. Returns how many are queued now.
create or replace function private.refresh_payouts(p_session_id uuid, p_now timestamptz default now())
returns int
language plpgsql security definer set search_path = ''
as $$
declare
  v_payout public.payouts;
  v_reason text;
  v_queued int := 0;
begin
  for v_payout in
    select * from public.payouts p
    where p.session_id = p_session_id
      and (p.status = 'waiting' or (p.status = 'queued' and p.destination_account is null))
    order by p.id for update
  loop
    v_reason := private.payout_wait_reason(v_payout.id, p_now);
    if v_reason is null then
      if v_payout.status = 'waiting' then
        update public.payouts set status = 'queued', waiting_reason = null where id = v_payout.id;
      end if;
      v_queued := v_queued + 1;
    elsif v_payout.status = 'queued' or v_payout.waiting_reason is distinct from v_reason then
      update public.payouts set status = 'waiting', waiting_reason = v_reason where id = v_payout.id;
    end if;
  end loop;
  return v_queued;
end
$$;
revoke execute on function private.refresh_payouts(uuid, timestamptz) from public;
grant execute on function private.refresh_payouts(uuid, timestamptz) to service_role;

-- The refundable cents of a session's payments (its own and paid extensions).
create or replace function private.session_refundable_cents(p_session_id uuid) returns int
language sql stable security definer set search_path = ''
as $$
  select coalesce(sum(p.amount_cents - coalesce((select sum(r.amount_cents) from public.refunds r
                                                  where r.payment_id = p.id and r.status not in ('failed', 'canceled')), 0)),
                  0)::int
  from public.payments p where p.session_id = p_session_id
$$;
revoke execute on function private.session_refundable_cents(uuid) from public;
grant execute on function private.session_refundable_cents(uuid) to service_role;

-- Refunds p_cents (null: everything left) of a session's payments, its own payment first, then
-- the extensions in the order they were paid. Returns the cents refunded.
create or replace function private.refund_session(p_session_id uuid, p_cents int, p_origin text, p_reason text,
                                                  p_by uuid, p_now timestamptz default now())
returns int
language plpgsql security definer set search_path = ''
as $$
declare
  v_payment record;
  v_left int := p_cents;
  v_done int := 0;
  v_refund public.refunds;
begin
  for v_payment in
    select p.id, p.amount_cents - coalesce((select sum(r.amount_cents) from public.refunds r
                                            where r.payment_id = p.id and r.status not in ('failed', 'canceled')), 0)
             ::int as refundable
    from public.payments p where p.session_id = p_session_id
    order by p.extension_id is not null, p.paid_at, p.id
  loop
    continue when v_payment.refundable <= 0 or (v_left is not null and v_left <= 0);
    v_refund := private.request_refund(v_payment.id,
                                       case when v_left is null then null else least(v_left, v_payment.refundable) end,
                                       p_origin, p_reason, p_by, null::text, null::public.refund_status, p_now);
    v_left := v_left - v_refund.amount_cents;
    v_done := v_done + v_refund.amount_cents;
  end loop;
  return v_done;
end
$$;
revoke execute on function private.refund_session(uuid, int, text, text, uuid, timestamptz) from public;
grant execute on function private.refund_session(uuid, int, text, text, uuid, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- The customer objects: report_problem within payments.payout_hold after the end
-- ---------------------------------------------------------------------------------------------
create or replace function public.report_problem(p_session_id uuid, p_reason text) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_reason text := private.check_text('p_reason', p_reason, true);
  v_session public.sessions;
  v_report public.session_problem_reports;
begin
  perform private.require_arg('p_session_id', p_session_id);
  select * into v_session from public.sessions where id = p_session_id for update;
  if not found or (v_session.customer_id <> v_uid and v_session.mechanic_id is distinct from v_uid) then
    perform private.raise_error('not_found', 'no such session');
  end if;
  if v_session.customer_id <> v_uid then
    perform private.raise_error('not_allowed', 'only the session''s customer can report a problem');
  end if;
  if v_session.status <> 'completed' then
    perform private.raise_error('invalid_transition',
      format('the session is %s: a problem is reported after it ended', v_session.status));
  end if;
  if exists (select 1 from public.session_delivery_decisions d where d.session_id = p_session_id) then
    perform private.raise_error('delivery_already_decided', 'an admin already decided this session');
  end if;
  if exists (select 1 from public.session_problem_reports r where r.session_id = p_session_id) then
    perform private.raise_error('problem_already_reported', 'a problem with this session was already reported');
  end if;
  if v_session.delivery = 'unverified' then
    perform private.raise_error('conflict', 'the session is unverified: it already waits for an admin decision');
  end if;
  -- the window: until the payouts' release (a payout already released closes it too)
  if now() >= v_session.ended_at + private.setting_interval('payments.payout_hold')
     or exists (select 1 from public.payouts p where p.session_id = p_session_id
                and p.status not in ('waiting', 'cancelled')) then
    perform private.raise_error('report_window_closed',
      format('problems are reported within %s of the session''s end', private.setting_text('payments.payout_hold')));
  end if;
  insert into public.session_problem_reports (session_id, customer_id, reason)
  values (p_session_id, v_uid, v_reason)
  returning * into v_report;
  perform private.refresh_payouts(p_session_id, now());
  return jsonb_build_object('session_id', p_session_id, 'status', 'reported', 'reported_at', v_report.reported_at,
                            'payouts_waiting', (select count(*) from public.payouts p
                                                where p.session_id = p_session_id and p.status = 'waiting'));
end
$$;
revoke execute on function public.report_problem(uuid, text) from public, anon;
grant execute on function public.report_problem(uuid, text) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- The admin decides an unverified or reported session: pay, refund, or partial
-- ---------------------------------------------------------------------------------------------
create or replace function public.admin_resolve_delivery(p_session_id uuid, p_outcome text,
                                                         p_refund_cents int default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_admin uuid := private.require_admin();
  v_session public.sessions;
  v_refundable int;
  v_refunded int := 0;
  v_reason text;
begin
  if p_session_id is null or p_outcome is null or p_outcome not in ('pay', 'refund', 'partial') then
    perform private.raise_error('invalid_input', 'p_session_id and p_outcome (pay, refund or partial) are required');
  end if;
  if (p_outcome = 'partial') <> (p_refund_cents is not null) then
    perform private.raise_error('invalid_input', 'p_refund_cents is given for partial, and only for partial');
  end if;
  perform 1 from public.sessions where id = p_session_id;
  if not found then
    perform private.raise_error('not_found', 'no such session');
  end if;
  perform private.lock_session_for_refund(p_session_id);
  select * into v_session from public.sessions where id = p_session_id;
  if exists (select 1 from public.session_delivery_decisions d where d.session_id = p_session_id) then
    perform private.raise_error('delivery_already_decided', 'this session was already decided');
  end if;
  if v_session.status <> 'completed'
     or (v_session.delivery = 'delivered'
         and not exists (select 1 from public.session_problem_reports r where r.session_id = p_session_id)) then
    perform private.raise_error('nothing_to_decide', 'the session is neither unverified nor reported');
  end if;
  v_refundable := private.session_refundable_cents(p_session_id);
  if p_outcome = 'partial' and (p_refund_cents < 1 or p_refund_cents >= v_refundable) then
    perform private.raise_error('invalid_input',
      format('p_refund_cents must be between 1 and %s', greatest(v_refundable - 1, 0)));
  end if;
  v_reason := 'delivery decided by an admin: ' || p_outcome;
  perform private.set_actor('admin', v_reason);
  -- the decision first: settlement and the payout rule read it
  insert into public.session_delivery_decisions (session_id, outcome, decided_by)
  values (p_session_id, p_outcome, v_admin);
  if p_outcome in ('refund', 'partial') and v_refundable > 0 then
    v_refunded := private.refund_session(p_session_id, case when p_outcome = 'partial' then p_refund_cents end,
                                         'admin', v_reason, v_admin, now());
  end if;
  if p_outcome in ('pay', 'partial') and v_session.delivery = 'unverified' then
    perform private.settle_payment(p_session_id, now());
  end if;
  update public.session_delivery_decisions set refund_cents = v_refunded where session_id = p_session_id;
  perform private.refresh_payouts(p_session_id, now());
  return jsonb_build_object(
    'session_id', p_session_id, 'outcome', p_outcome, 'refund_cents', v_refunded, 'decided_by', v_admin,
    'payouts', coalesce((select jsonb_agg(jsonb_build_object('payout_id', p.id, 'amount_cents', p.amount_cents,
                                                             'status', p.status, 'waiting_reason', p.waiting_reason)
                                          order by p.id)
                         from public.payouts p where p.session_id = p_session_id), '[]'::jsonb));
end
$$;
revoke execute on function public.admin_resolve_delivery(uuid, text, int) from public, anon;
grant execute on function public.admin_resolve_delivery(uuid, text, int) to authenticated, service_role;

-- Admin: the sessions that wait for a decision (unverified, or reported within the window).
create or replace function public.admin_delivery_queue() returns setof jsonb
language plpgsql stable security definer set search_path = ''
as $$
begin
  perform private.require_admin();
  return query
    select jsonb_build_object(
             'session_id', s.id, 'kind', case when r.session_id is not null then 'reported' else 'unverified' end,
             'delivery', s.delivery, 'customer_id', s.customer_id, 'mechanic_id', s.mechanic_id,
             'session_type', s.session_type, 'plan_code', s.plan_code, 'started_at', s.started_at,
             'ended_at', s.ended_at, 'duration_minutes', s.duration_minutes,
             'paid_cents', (select coalesce(sum(p.amount_cents), 0) from public.payments p where p.session_id = s.id),
             'refundable_cents', private.session_refundable_cents(s.id),
             'report_reason', r.reason, 'reported_at', r.reported_at,
             'auto_refund_at', case when s.delivery = 'unverified'
                                    then s.ended_at + private.setting_interval('trust.unverified_refund_after') end)
    from public.sessions s
    left join public.session_problem_reports r on r.session_id = s.id
    where s.status = 'completed' and (s.delivery = 'unverified' or r.session_id is not null)
      and not exists (select 1 from public.session_delivery_decisions d where d.session_id = s.id)
    order by s.ended_at, s.id;
end
$$;
revoke execute on function public.admin_delivery_queue() from public, anon;
grant execute on function public.admin_delivery_queue() to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- The scheduled job `delivery` (jobs/schedules.sql): release payouts whose window ended; refund
-- unverified sessions no admin decided in time.
-- ---------------------------------------------------------------------------------------------
create or replace function private.release_held_payouts(p_now timestamptz default now(), p_limit int default 200)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_session_id uuid;
  v_released int := 0;
  v_sessions int := 0;
begin
  for v_session_id in
    select distinct p.session_id from public.payouts p
    where p.status = 'waiting' and p.release_at <= p_now and p.waiting_reason like 'objection window%'
    limit p_limit
  loop
    -- the session lock orders this with report_problem and admin_resolve_delivery
    perform 1 from public.sessions where id = v_session_id for update;
    v_released := v_released + private.refresh_payouts(v_session_id, p_now);
    v_sessions := v_sessions + 1;
  end loop;
  return jsonb_build_object('hold_sessions_checked', v_sessions, 'payouts_released', v_released);
end
$$;
revoke execute on function private.release_held_payouts(timestamptz, int) from public;
grant execute on function private.release_held_payouts(timestamptz, int) to service_role;

create or replace function private.refund_unverified_sessions(p_now timestamptz default now(), p_limit int default 200)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_session_id uuid;
  v_count int := 0;
  v_refunded int;
  v_prev text[];
begin
  for v_session_id in
    select s.id from public.sessions s
    where s.delivery = 'unverified'
      and s.ended_at <= p_now - private.setting_interval('trust.unverified_refund_after')
      and not exists (select 1 from public.session_delivery_decisions d where d.session_id = s.id)
    order by s.ended_at limit p_limit
  loop
    perform private.lock_session_for_refund(v_session_id);
    continue when exists (select 1 from public.session_delivery_decisions d where d.session_id = v_session_id);
    v_prev := private.lifecycle_actor('system', 'unverified delivery: refunded automatically');
    insert into public.session_delivery_decisions (session_id, outcome, decided_by, reason)
    values (v_session_id, 'refund', null, 'no evidence of delivery and no admin decision in time');
    v_refunded := private.refund_session(v_session_id, null, 'automatic',
                                         'no evidence that the session was delivered', null, now());
    update public.session_delivery_decisions set refund_cents = v_refunded where session_id = v_session_id;
    perform private.lifecycle_actor_restore(v_prev);
    v_count := v_count + 1;
  end loop;
  return jsonb_build_object('unverified_refunded', v_count);
end
$$;
revoke execute on function private.refund_unverified_sessions(timestamptz, int) from public;
grant execute on function private.refund_unverified_sessions(timestamptz, int) to service_role;
-- <<< functions_sql trust/delivery.sql

-- >>> functions_sql workshops/appointments.sql sha256=5f6530bed3befb05a76302182e756dc65303c345cb474afd3fe6db59db4b7273
-- Workshops: the appointment lifecycle (allowed changes of status, the audit trail), opening
-- hours, capacity and the assigned mechanic's committed time (docs/workshops.md, "Appointments").

-- ---------------------------------------------------------------------------------------------
-- Lifecycle: any other change of status fails with invalid_transition (AD006)
-- ---------------------------------------------------------------------------------------------
--   requested → proposed | confirmed | declined | cancelled
--   proposed  → confirmed (the customer accepts) | requested (the customer declines the proposal)
--               | declined | cancelled
--   confirmed → completed | no_show | cancelled
--   declined, cancelled, completed, no_show: final
create or replace function private.appointment_transition_allowed(p_from text, p_to text) returns boolean
language plpgsql immutable set search_path = ''
as $$
begin
  return (p_from, p_to) in (
    ('requested', 'proposed'), ('requested', 'confirmed'), ('requested', 'declined'), ('requested', 'cancelled'),
    ('proposed', 'confirmed'), ('proposed', 'requested'), ('proposed', 'declined'), ('proposed', 'cancelled'),
    ('confirmed', 'completed'), ('confirmed', 'no_show'), ('confirmed', 'cancelled'));
end
$$;
revoke execute on function private.appointment_transition_allowed(text, text) from public;
grant execute on function private.appointment_transition_allowed(text, text) to authenticated, service_role;

create or replace function private.tg_workshop_appointments__check_status() returns trigger
language plpgsql set search_path = ''
as $$
begin
  if tg_op = 'INSERT' then
    if new.status <> 'requested' then
      perform private.raise_error('invalid_transition', format('a new appointment cannot start as %s', new.status));
    end if;
    new.status_changed_at := now();
    return new;
  end if;
  if old.status in ('declined', 'cancelled', 'completed', 'no_show')
     and (new.starts_at, new.ends_at, new.mechanic_id, new.invoice_cents)
         is distinct from (old.starts_at, old.ends_at, old.mechanic_id, old.invoice_cents) then
    perform private.raise_error('invalid_transition', format('the appointment is %s: it no longer changes', old.status));
  end if;
  if new.status is distinct from old.status then
    if not private.appointment_transition_allowed(old.status, new.status) then
      perform private.raise_error('invalid_transition',
        format('workshop_appointments: cannot go from %s to %s', old.status, new.status));
    end if;
    new.status_changed_at := now();
  end if;
  new.updated_at := now();
  return new;
end
$$;
revoke execute on function private.tg_workshop_appointments__check_status() from public;
drop trigger if exists _100_check_status on public.workshop_appointments;
create trigger _100_check_status before insert or update on public.workshop_appointments
  for each row execute function private.tg_workshop_appointments__check_status();

-- The audit trail: every creation and change of status, with the actor the RPC set
-- (private.set_actor: customer, workshop, admin; anything else is the system).
create or replace function private.tg_workshop_appointments__audit() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_role text := nullif(current_setting('autodoctor.actor_role', true), '');
begin
  if tg_op = 'INSERT' or new.status is distinct from old.status
     or new.proposed_start is distinct from old.proposed_start then
    insert into private.appointment_events (appointment_id, from_status, to_status, actor_id, actor_role, note)
    values (new.id, case when tg_op = 'UPDATE' then old.status end, new.status, (select auth.uid()),
            case when v_role in ('customer', 'workshop', 'admin') then v_role else 'system' end,
            left(nullif(current_setting('autodoctor.reason', true), ''), 500));
  end if;
  return null;
end
$$;
revoke execute on function private.tg_workshop_appointments__audit() from public;
drop trigger if exists _200_audit on public.workshop_appointments;
create trigger _200_audit after insert or update on public.workshop_appointments
  for each row execute function private.tg_workshop_appointments__audit();

-- ---------------------------------------------------------------------------------------------
-- Opening hours
-- ---------------------------------------------------------------------------------------------
-- Whether [p_start, p_end) lies inside one open stretch of the workshop's day, in its zone
-- (organizations.timezone): a date override of the workshop (availability_overrides) replaces
-- the weekday's hours (workshop_hours, 0 = Sunday; a missing day or is_open = false is closed);
-- a break splits the day.
create or replace function private.workshop_open_for(p_workshop_id uuid, p_start timestamptz, p_end timestamptz)
returns boolean
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_tz text;
  v_ls timestamp;
  v_le timestamp;
  v_day date;
begin
  select o.timezone into v_tz from public.organizations o where o.id = p_workshop_id;
  if v_tz is null or p_start is null or p_end is null or p_end <= p_start then
    return false;
  end if;
  v_ls := p_start at time zone v_tz;
  v_le := p_end at time zone v_tz;
  v_day := v_ls::date;
  if exists (select 1 from public.availability_overrides ao where ao.organization_id = p_workshop_id and ao.on_date = v_day) then
    return exists (select 1 from public.availability_overrides ao
                   where ao.organization_id = p_workshop_id and ao.on_date = v_day and ao.is_available
                     and v_ls >= v_day + ao.start_time and v_le <= v_day + ao.end_time);
  end if;
  return exists (
    select 1 from public.workshop_hours h
    where h.organization_id = p_workshop_id and h.day_of_week = extract(dow from v_day)::int and h.is_open
      and ((v_ls >= v_day + h.open_time and v_le <= v_day + coalesce(h.break_start, h.close_time))
           or (h.break_end is not null and v_ls >= v_day + h.break_end and v_le <= v_day + h.close_time)));
end
$$;
revoke execute on function private.workshop_open_for(uuid, timestamptz, timestamptz) from public;
grant execute on function private.workshop_open_for(uuid, timestamptz, timestamptz) to service_role;

-- The end of an appointment starting at p_start, after checking the start: finite, in the
-- future, within workshops.appointment_max_advance and inside the workshop's hours.
create or replace function private.check_appointment_time(p_workshop_id uuid, p_start timestamptz, p_now timestamptz)
returns timestamptz
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_end timestamptz;
begin
  if p_start is null or not isfinite(p_start) then
    perform private.raise_error('invalid_input', 'a start time is required');
  end if;
  v_end := p_start + make_interval(mins => private.setting_int('workshops.appointment_minutes'));
  if p_start <= p_now then
    perform private.raise_error('outside_workshop_hours', 'the time is in the past');
  end if;
  if p_start > p_now + private.setting_interval('workshops.appointment_max_advance') then
    perform private.raise_error('outside_workshop_hours', 'the time is too far ahead');
  end if;
  if not private.workshop_open_for(p_workshop_id, p_start, v_end) then
    perform private.raise_error('outside_workshop_hours',
      format('the workshop is not open for the whole appointment at %s', p_start));
  end if;
  return v_end;
end
$$;
revoke execute on function private.check_appointment_time(uuid, timestamptz, timestamptz) from public;
grant execute on function private.check_appointment_time(uuid, timestamptz, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Capacity
-- ---------------------------------------------------------------------------------------------
-- Every writer of confirmed appointments (and so of capacity) locks the workshop's row first:
-- confirmations of one workshop serialize, so the count below is exact.
create or replace function private.lock_workshop(p_workshop_id uuid) returns public.organizations
language plpgsql security definer set search_path = ''
as $$
declare
  v_org public.organizations;
begin
  select * into v_org from public.organizations where id = p_workshop_id for no key update;
  return v_org;
end
$$;
revoke execute on function private.lock_workshop(uuid) from public;
grant execute on function private.lock_workshop(uuid) to service_role;

-- Raises workshop_full when confirming [p_start, p_end) would put, at some instant, more
-- confirmed appointments in the workshop than the capacity of that weekday (workshop_hours;
-- 1 on a day opened only by an override). The caller holds the workshop's lock.
create or replace function private.check_workshop_capacity(
  p_workshop_id uuid, p_appointment_id uuid, p_start timestamptz, p_end timestamptz
) returns void
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_capacity int;
  v_peak int;
begin
  select coalesce(max(h.capacity), 1) into v_capacity
  from public.organizations o
  left join public.workshop_hours h
    on h.organization_id = o.id and h.day_of_week = extract(dow from (p_start at time zone o.timezone))::int
  where o.id = p_workshop_id;
  -- the most confirmed appointments running at once inside the range: the peak is at the start
  -- of the range or at the start of one of the overlapping appointments
  with overlapping as (
    select a.starts_at, a.ends_at from public.workshop_appointments a
    where a.workshop_id = p_workshop_id and a.status = 'confirmed' and a.id <> p_appointment_id
      and a.starts_at < p_end and a.ends_at > p_start
  ), points as (
    select p_start as p union select o.starts_at from overlapping o where o.starts_at > p_start
  )
  select coalesce(max((select count(*) from overlapping o where o.starts_at <= pt.p and o.ends_at > pt.p)), 0)
  into v_peak from points pt;
  if v_peak + 1 > v_capacity then
    perform private.raise_error('workshop_full',
      format('the workshop already has %s confirmed appointments at that time (capacity %s)', v_peak, v_capacity));
  end if;
end
$$;
revoke execute on function private.check_workshop_capacity(uuid, uuid, timestamptz, timestamptz) from public;
grant execute on function private.check_workshop_capacity(uuid, uuid, timestamptz, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- The assigned mechanic's committed time
-- ---------------------------------------------------------------------------------------------
-- Takes [p_start, p_end) of mechanic `p_mechanic_id` (an approved member mechanic of the
-- workshop) as committed time of kind `appointment`: the same exclusion constraint as bookings,
-- so neither an online booking nor another appointment can take it (slot_taken, AD050).
-- Lock order: workshop, then mechanic (the scheduling writers' lock).
create or replace function private.commit_appointment_mechanic(
  p_workshop_id uuid, p_mechanic_id uuid, p_customer_id uuid, p_start timestamptz, p_end timestamptz
) returns uuid
language plpgsql security definer set search_path = ''
as $$
declare
  v_id uuid;
begin
  if not exists (select 1 from public.mechanics m
                 join public.organization_members om on om.user_id = m.id and om.organization_id = p_workshop_id
                 where m.id = p_mechanic_id and m.organization_id = p_workshop_id and m.status = 'approved') then
    perform private.raise_error('mechanic_not_in_workshop', 'the mechanic is not an approved mechanic of this workshop');
  end if;
  perform private.lock_mechanic(p_mechanic_id);
  if exists (select 1 from public.mechanic_time_off t
             where t.mechanic_id = p_mechanic_id and t.during && tstzrange(p_start, p_end)) then
    perform private.raise_error('slot_taken', 'the mechanic has time off then');
  end if;
  begin
    insert into public.mechanic_commitments (mechanic_id, kind, status, during, customer_id)
    values (p_mechanic_id, 'appointment', 'confirmed', tstzrange(p_start, p_end), p_customer_id)
    returning id into v_id;
  exception when exclusion_violation then
    perform private.raise_error('slot_taken', 'the mechanic is booked at that time');
  end;
  return v_id;
end
$$;
revoke execute on function private.commit_appointment_mechanic(uuid, uuid, uuid, timestamptz, timestamptz) from public;
grant execute on function private.commit_appointment_mechanic(uuid, uuid, uuid, timestamptz, timestamptz) to service_role;

-- Frees the mechanic's committed time of an appointment that ended (done) or will not happen
-- (released).
create or replace function private.release_appointment_mechanic(
  p_appointment public.workshop_appointments, p_status public.commitment_status
) returns void
language plpgsql security definer set search_path = ''
as $$
begin
  if p_appointment.commitment_id is null then
    return;
  end if;
  perform private.lock_mechanic(p_appointment.mechanic_id);
  update public.mechanic_commitments set status = p_status, updated_at = now()
  where id = p_appointment.commitment_id and status = 'confirmed';
end
$$;
revoke execute on function private.release_appointment_mechanic(public.workshop_appointments, public.commitment_status)
  from public;
grant execute on function private.release_appointment_mechanic(public.workshop_appointments, public.commitment_status)
  to service_role;

-- ---------------------------------------------------------------------------------------------
-- Who may act on an appointment
-- ---------------------------------------------------------------------------------------------
-- The appointment `p_appointment_id`, locked (after its workshop: the lock order of every
-- writer), for the side `p_side` ('customer', 'workshop' or 'either'). Someone who cannot see
-- the appointment gets not_found; someone who can but is not that side gets not_allowed.
-- Sets the actor of the audit trail.
create or replace function private.appointment_for(p_appointment_id uuid, p_uid uuid, p_side text, p_reason text default null)
returns public.workshop_appointments
language plpgsql security definer set search_path = ''
as $$
declare
  v_workshop_id uuid;
  v_a public.workshop_appointments;
  v_staff boolean;
begin
  perform private.require_arg('p_appointment_id', p_appointment_id);
  select * into v_a from public.workshop_appointments a where a.id = p_appointment_id;
  if v_a.id is null then
    perform private.raise_error('not_found', 'no such appointment');
  end if;
  v_workshop_id := v_a.workshop_id;
  v_staff := private.workshop_can(v_workshop_id, p_uid, 'handle_appointments');
  if v_a.customer_id = p_uid and p_side in ('customer', 'either') then
    perform private.set_actor('customer', p_reason);
  elsif v_staff and p_side in ('workshop', 'either') then
    perform private.set_actor(case when private.workshop_role(v_workshop_id, p_uid) is null then 'admin'
                                   else 'workshop' end, p_reason);
  elsif v_a.customer_id = p_uid or v_staff or v_a.mechanic_id = p_uid then
    perform private.raise_error('not_allowed',
      case p_side when 'customer' then 'only the appointment''s customer may do this'
                  else 'only the workshop''s staff who handle appointments may do this' end);
  else
    perform private.raise_error('not_found', 'no such appointment');
  end if;
  perform private.lock_workshop(v_workshop_id);
  select * into v_a from public.workshop_appointments where id = p_appointment_id for update;
  return v_a;
end
$$;
revoke execute on function private.appointment_for(uuid, uuid, text, text) from public;
grant execute on function private.appointment_for(uuid, uuid, text, text) to service_role;

-- A reason or note: trimmed, at most p_max characters; p_required refuses an empty one.
create or replace function private.appointment_text(p_name text, p_value text, p_max int, p_required boolean)
returns text
language plpgsql immutable set search_path = ''
as $$
declare
  v text := nullif(btrim(p_value), '');
begin
  if v is null and p_required then
    perform private.raise_error('invalid_input', format('%s is required', p_name));
  end if;
  if char_length(v) > p_max then
    perform private.raise_error('invalid_input', format('%s is longer than %s characters', p_name, p_max));
  end if;
  return v;
end
$$;
revoke execute on function private.appointment_text(text, text, int, boolean) from public;
grant execute on function private.appointment_text(text, text, int, boolean) to service_role;
-- <<< functions_sql workshops/appointments.sql

-- >>> functions_sql workshops/appointments_notify.sql sha256=50c518c61b4fc52577450080ed5407dd64a20d205da2f504932b11d47cc228cb
-- Workshops: what an appointment change tells others — the board broadcast on `workshop:<id>`
-- and the emails through the outbox (docs/workshops.md, "Appointments"; docs/jobs.md).

-- The email data of an appointment: what the templates and the .ics need (shared/email.py,
-- shared/calendar.py). No customer contact details: the workshop's staff see the name only.
create or replace function private.appointment_email_data(p_a public.workshop_appointments) returns jsonb
language sql stable security definer set search_path = ''
as $$
  select jsonb_build_object('appointment', jsonb_build_object(
    'id', p_a.id, 'status', p_a.status, 'service_type', p_a.service_type,
    'workshop_name', o.name, 'workshop_address', o.address_line,
    'starts_at', p_a.starts_at, 'ends_at', p_a.ends_at, 'proposed_start', p_a.proposed_start,
    'preferred_starts', to_jsonb(p_a.preferred_starts), 'proposal_note', p_a.proposal_note,
    'decline_reason', p_a.decline_reason, 'cancel_reason', p_a.cancel_reason, 'cancelled_by', p_a.cancelled_by,
    'customer_name', coalesce(pr.full_name, 'A customer'), 'concern', p_a.concern,
    'vehicle', nullif(concat_ws(' ', v.year, v.make, v.model), ''), 'sequence', p_a.calendar_sequence))
  from public.organizations o
  left join public.profiles pr on pr.id = p_a.customer_id
  left join public.vehicles v on v.id = p_a.vehicle_id
  where o.id = p_a.workshop_id
$$;
revoke execute on function private.appointment_email_data(public.workshop_appointments) from public;
grant execute on function private.appointment_email_data(public.workshop_appointments) to service_role;

-- Whether an appointment email is still due when the worker sends it: a reminder only while the
-- appointment is confirmed at the time the reminder was queued for.
create or replace function private.appointment_email_due(p_template text, p_data jsonb) returns boolean
language sql stable security definer set search_path = ''
as $$
  select case when p_template = 'appointment_reminder' then
    exists (select 1 from public.workshop_appointments a
            where a.id = private.try_uuid(p_data -> 'appointment' ->> 'id') and a.status = 'confirmed'
              and a.starts_at = (p_data -> 'appointment' ->> 'starts_at')::timestamptz)
  else true end
$$;
revoke execute on function private.appointment_email_due(text, jsonb) from public;
grant execute on function private.appointment_email_due(text, jsonb) to service_role;

create or replace function private.enqueue_appointment_email(
  p_template text, p_user_id uuid, p_data jsonb, p_key text, p_not_before timestamptz default now()
) returns bigint
language plpgsql security definer set search_path = ''
as $$
begin
  if not exists (select 1 from private.email_templates t where t.name = p_template) then
    perform private.raise_error('unknown_email_template', format('no email template %L', p_template));
  end if;
  return private.enqueue(
    'email.send', format('email:%s:appointment:%s:%s', p_template, p_user_id, p_key),
    jsonb_build_object('template', p_template, 'user_id', p_user_id, 'session_id', null, 'data', p_data),
    p_not_before);
end
$$;
revoke execute on function private.enqueue_appointment_email(text, uuid, jsonb, text, timestamptz) from public;
grant execute on function private.enqueue_appointment_email(text, uuid, jsonb, text, timestamptz) to service_role;

create or replace function private.tg_workshop_appointments__notify() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_data jsonb := private.appointment_email_data(new);
  v_staff uuid;
  v_lead interval;
begin
  -- the board: every change, ids and times only
  perform realtime.send(
    jsonb_build_object('appointment_id', new.id, 'from', case when tg_op = 'UPDATE' then old.status end,
                       'status', new.status, 'service_type', new.service_type,
                       'preferred_starts', to_jsonb(new.preferred_starts), 'proposed_start', new.proposed_start,
                       'starts_at', new.starts_at, 'ends_at', new.ends_at, 'mechanic_id', new.mechanic_id,
                       'at', new.updated_at),
    'appointment_changed', 'workshop:' || new.workshop_id::text, true);

  if tg_op = 'INSERT' then
    -- the staff who handle appointments (owners, managers, dispatchers)
    for v_staff in
      select om.user_id from public.organization_members om
      join private.workshop_role_permissions rp on rp.role = om.role::text and rp.permission = 'handle_appointments'
      where om.organization_id = new.workshop_id
    loop
      perform private.enqueue_appointment_email('appointment_requested', v_staff, v_data, new.id::text);
    end loop;
    return null;
  end if;

  if new.status = 'proposed' and new.proposed_start is distinct from old.proposed_start then
    perform private.enqueue_appointment_email('appointment_proposed', new.customer_id, v_data,
      format('%s:%s', new.id, extract(epoch from new.proposed_start)::bigint));
  end if;
  if new.status is distinct from old.status then
    case new.status
      when 'confirmed' then
        perform private.enqueue_appointment_email('appointment_confirmed', new.customer_id, v_data, new.id::text);
        foreach v_lead in array array[interval '24 hours', interval '1 hour'] loop
          if new.starts_at - v_lead > now() then
            perform private.enqueue_appointment_email('appointment_reminder', new.customer_id,
              v_data || jsonb_build_object('lead', case when v_lead = interval '1 hour' then '1 hour' else '24 hours' end),
              format('%s:%s:%s', new.id, extract(epoch from v_lead)::int, extract(epoch from new.starts_at)::bigint),
              new.starts_at - v_lead);
          end if;
        end loop;
      when 'declined' then
        perform private.enqueue_appointment_email('appointment_declined', new.customer_id, v_data, new.id::text);
      when 'cancelled' then
        perform private.enqueue_appointment_email('appointment_cancelled', new.customer_id, v_data, new.id::text);
      else
        null;
    end case;
  end if;
  return null;
end
$$;
revoke execute on function private.tg_workshop_appointments__notify() from public;
drop trigger if exists _300_notify on public.workshop_appointments;
create trigger _300_notify after insert or update on public.workshop_appointments
  for each row execute function private.tg_workshop_appointments__notify();
-- <<< functions_sql workshops/appointments_notify.sql

-- >>> functions_sql workshops/appointments_rpc.sql sha256=f88d70f5575415327a86ef0017bceacc6b7454be95e3983d1e847d0552acaee6
-- Workshops: the appointment RPCs of customers and of the workshop's staff (docs/workshops.md,
-- "Appointments"). The rules they share are in workshops/appointments.sql.

-- The answer of every appointment RPC.
create or replace function private.appointment_json(p_a public.workshop_appointments) returns jsonb
language sql stable security definer set search_path = ''
as $$
  select jsonb_build_object(
    'appointment_id', p_a.id, 'workshop_id', p_a.workshop_id, 'status', p_a.status,
    'service_type', p_a.service_type, 'preferred_starts', to_jsonb(p_a.preferred_starts),
    'proposed_start', p_a.proposed_start, 'starts_at', p_a.starts_at, 'ends_at', p_a.ends_at,
    'mechanic_id', p_a.mechanic_id, 'vehicle_id', p_a.vehicle_id,
    'diagnostic_session_id', p_a.diagnostic_session_id, 'invoice_cents', p_a.invoice_cents,
    'currency', p_a.currency)
$$;
revoke execute on function private.appointment_json(public.workshop_appointments) from public;
grant execute on function private.appointment_json(public.workshop_appointments) to service_role;

-- ---------------------------------------------------------------------------------------------
-- The customer's request
-- ---------------------------------------------------------------------------------------------
create or replace function public.request_workshop_appointment(
  p_workshop_id uuid, p_vehicle_id uuid, p_service_type text, p_preferred_starts timestamptz[],
  p_notes text default null, p_diagnostic_session_id uuid default null
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_now timestamptz := now();
  v_org public.organizations;
  v_service text := btrim(p_service_type);
  v_notes text;
  v_session public.sessions;
  v_vehicle_id uuid := p_vehicle_id;
  v_concern text;
  v_referrer uuid;
  v_start timestamptz;
  v_a public.workshop_appointments;
begin
  perform private.require_arg('p_workshop_id', p_workshop_id);
  if v_service is null or char_length(v_service) not between 1 and 80 then
    perform private.raise_error('invalid_input', 'p_service_type is 1 to 80 characters');
  end if;
  v_notes := private.appointment_text('p_notes', p_notes, 2000, false);
  if p_preferred_starts is null or cardinality(p_preferred_starts) not between 1 and 3
     or array_ndims(p_preferred_starts) <> 1 or array_position(p_preferred_starts, null) is not null
     or (select count(distinct s) from unnest(p_preferred_starts) s) <> cardinality(p_preferred_starts) then
    perform private.raise_error('invalid_input', 'p_preferred_starts is 1 to 3 distinct times');
  end if;
  perform private.require_waiver(v_uid);
  select * into v_org from public.organizations where id = p_workshop_id;
  if not found then
    perform private.raise_error('not_found', 'no such workshop');
  end if;
  if v_org.status <> 'verified' then
    perform private.raise_error('workshop_not_bookable', format('the workshop is %s', v_org.status));
  end if;
  -- From a delivered diagnostic session of the same customer: its vehicle, concern and summary,
  -- and its mechanic when virtual-only (the referral fee).
  if p_diagnostic_session_id is not null then
    select * into v_session from public.sessions s where s.id = p_diagnostic_session_id and s.customer_id = v_uid;
    if not found then
      perform private.raise_error('not_found', 'no such session of yours');
    end if;
    if v_session.session_type <> 'diagnostic' or v_session.delivery is distinct from 'delivered' then
      perform private.raise_error('invalid_input', 'only a delivered diagnostic session leads to an appointment');
    end if;
    if p_vehicle_id is not null and v_session.vehicle_id is not null and p_vehicle_id <> v_session.vehicle_id then
      perform private.raise_error('invalid_input', 'the vehicle is not the diagnostic session''s vehicle');
    end if;
    v_vehicle_id := coalesce(p_vehicle_id, v_session.vehicle_id);
    select coalesce(i.concern, r.concern) into v_concern
    from (select 1) one
    left join public.intakes i on i.id = v_session.intake_id
    left join public.session_requests r on r.session_id = v_session.id;
    select m.id into v_referrer from public.mechanics m
    where m.id = v_session.mechanic_id and m.mechanic_type = 'virtual_only';
  end if;
  perform private.require_arg('p_vehicle_id', v_vehicle_id);
  if not exists (select 1 from public.vehicles v where v.id = v_vehicle_id and v.owner_id = v_uid) then
    perform private.raise_error('not_found', 'no such vehicle of yours');
  end if;
  foreach v_start in array p_preferred_starts loop
    perform private.check_appointment_time(p_workshop_id, v_start, v_now);
  end loop;
  -- the cap on open appointments, counted under the customer's profile lock
  perform 1 from public.profiles where id = v_uid for no key update;
  -- one diagnosis leads to one workshop job at a time (and so to one referral fee): a declined or
  -- cancelled appointment frees the session for another workshop
  if v_session.id is not null and exists (
       select 1 from public.workshop_appointments a
       where a.diagnostic_session_id = v_session.id and a.status in ('requested', 'proposed', 'confirmed', 'completed')) then
    perform private.raise_error('conflict', 'this diagnostic session already has an appointment');
  end if;
  if (select count(*) from public.workshop_appointments a
      where a.customer_id = v_uid
        and (a.status in ('requested', 'proposed') or (a.status = 'confirmed' and a.starts_at > v_now)))
     >= private.setting_int('workshops.open_appointments_per_customer') then
    perform private.raise_error('limit_reached',
      format('you have %s open appointments: cancel one first', private.setting_int('workshops.open_appointments_per_customer')));
  end if;
  perform private.set_actor('customer', null);
  insert into public.workshop_appointments (workshop_id, customer_id, vehicle_id, diagnostic_session_id,
                                            referring_mechanic_id, service_type, preferred_starts, notes, concern,
                                            diagnostic_summary)
  values (p_workshop_id, v_uid, v_vehicle_id, v_session.id, v_referrer, v_service,
          (select array_agg(s order by s) from unnest(p_preferred_starts) s), v_notes, left(v_concern, 4000),
          v_session.mechanic_notes)
  returning * into v_a;
  return private.appointment_json(v_a);
end
$$;
revoke execute on function public.request_workshop_appointment(uuid, uuid, text, timestamptz[], text, uuid) from public, anon;
grant execute on function public.request_workshop_appointment(uuid, uuid, text, timestamptz[], text, uuid)
  to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- The workshop's answers
-- ---------------------------------------------------------------------------------------------
-- Confirms a requested appointment at any start inside the hours (not only a preferred one),
-- optionally with a mechanic of the workshop whose time it commits.
create or replace function public.confirm_appointment(p_appointment_id uuid, p_start timestamptz,
                                                      p_mechanic_id uuid default null) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_a public.workshop_appointments := private.appointment_for(p_appointment_id, v_uid, 'workshop');
  v_end timestamptz;
  v_commitment uuid;
begin
  if v_a.status <> 'requested' then
    perform private.raise_error('invalid_transition',
      format('the appointment is %s: only a requested appointment is confirmed by the workshop', v_a.status));
  end if;
  if (select o.status from public.organizations o where o.id = v_a.workshop_id) <> 'verified' then
    perform private.raise_error('workshop_not_bookable', 'the workshop is not verified');
  end if;
  v_end := private.check_appointment_time(v_a.workshop_id, p_start, now());
  perform private.check_workshop_capacity(v_a.workshop_id, v_a.id, p_start, v_end);
  if p_mechanic_id is not null then
    v_commitment := private.commit_appointment_mechanic(v_a.workshop_id, p_mechanic_id, v_a.customer_id, p_start, v_end);
  end if;
  update public.workshop_appointments
  set status = 'confirmed', starts_at = p_start, ends_at = v_end, mechanic_id = p_mechanic_id,
      commitment_id = v_commitment
  where id = v_a.id returning * into v_a;
  return private.appointment_json(v_a);
end
$$;
revoke execute on function public.confirm_appointment(uuid, timestamptz, uuid) from public, anon;
grant execute on function public.confirm_appointment(uuid, timestamptz, uuid) to authenticated, service_role;

-- Assigns (or with null unassigns) the mechanic of a confirmed appointment.
create or replace function public.assign_appointment_mechanic(p_appointment_id uuid, p_mechanic_id uuid default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_a public.workshop_appointments := private.appointment_for(p_appointment_id, v_uid, 'workshop');
  v_commitment uuid;
begin
  if v_a.status <> 'confirmed' then
    perform private.raise_error('invalid_transition', format('the appointment is %s, not confirmed', v_a.status));
  end if;
  if p_mechanic_id is not distinct from v_a.mechanic_id then
    return private.appointment_json(v_a);
  end if;
  perform private.release_appointment_mechanic(v_a, 'released');
  if p_mechanic_id is not null then
    v_commitment := private.commit_appointment_mechanic(v_a.workshop_id, p_mechanic_id, v_a.customer_id,
                                                        v_a.starts_at, v_a.ends_at);
  end if;
  update public.workshop_appointments set mechanic_id = p_mechanic_id, commitment_id = v_commitment
  where id = v_a.id returning * into v_a;
  return private.appointment_json(v_a);
end
$$;
revoke execute on function public.assign_appointment_mechanic(uuid, uuid) from public, anon;
grant execute on function public.assign_appointment_mechanic(uuid, uuid) to authenticated, service_role;

-- Proposes another time (a requested appointment, or a new proposal replacing the pending one);
-- capacity is checked when the customer accepts.
create or replace function public.propose_appointment_time(p_appointment_id uuid, p_start timestamptz,
                                                           p_note text default null) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_note text := private.appointment_text('p_note', p_note, 500, false);
  v_a public.workshop_appointments := private.appointment_for(p_appointment_id, v_uid, 'workshop', v_note);
begin
  if v_a.status not in ('requested', 'proposed') then
    perform private.raise_error('invalid_transition', format('the appointment is %s: nothing to propose', v_a.status));
  end if;
  perform private.check_appointment_time(v_a.workshop_id, p_start, now());
  update public.workshop_appointments set status = 'proposed', proposed_start = p_start, proposal_note = v_note
  where id = v_a.id returning * into v_a;
  return private.appointment_json(v_a);
end
$$;
revoke execute on function public.propose_appointment_time(uuid, timestamptz, text) from public, anon;
grant execute on function public.propose_appointment_time(uuid, timestamptz, text) to authenticated, service_role;

create or replace function public.decline_appointment(p_appointment_id uuid, p_reason text) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_reason text := private.appointment_text('p_reason', p_reason, 500, true);
  v_a public.workshop_appointments := private.appointment_for(p_appointment_id, v_uid, 'workshop', v_reason);
begin
  if v_a.status not in ('requested', 'proposed') then
    perform private.raise_error('invalid_transition', format('the appointment is %s: only a request is declined', v_a.status));
  end if;
  update public.workshop_appointments set status = 'declined', decline_reason = v_reason, proposed_start = null
  where id = v_a.id returning * into v_a;
  return private.appointment_json(v_a);
end
$$;
revoke execute on function public.decline_appointment(uuid, text) from public, anon;
grant execute on function public.decline_appointment(uuid, text) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- The customer's answer to a proposal
-- ---------------------------------------------------------------------------------------------
create or replace function public.accept_appointment_proposal(p_appointment_id uuid) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_a public.workshop_appointments := private.appointment_for(p_appointment_id, v_uid, 'customer');
  v_end timestamptz;
begin
  if v_a.status <> 'proposed' then
    perform private.raise_error('invalid_transition', format('the appointment is %s: no proposal to accept', v_a.status));
  end if;
  if (select o.status from public.organizations o where o.id = v_a.workshop_id) <> 'verified' then
    perform private.raise_error('workshop_not_bookable', 'the workshop is not verified');
  end if;
  v_end := private.check_appointment_time(v_a.workshop_id, v_a.proposed_start, now());
  perform private.check_workshop_capacity(v_a.workshop_id, v_a.id, v_a.proposed_start, v_end);
  update public.workshop_appointments
  set status = 'confirmed', starts_at = proposed_start, ends_at = v_end, proposed_start = null
  where id = v_a.id returning * into v_a;
  return private.appointment_json(v_a);
end
$$;
revoke execute on function public.accept_appointment_proposal(uuid) from public, anon;
grant execute on function public.accept_appointment_proposal(uuid) to authenticated, service_role;

-- Declining a proposal returns the request to the workshop (requested, with its preferred
-- starts): the workshop may confirm one, propose again or decline.
create or replace function public.decline_appointment_proposal(p_appointment_id uuid) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_a public.workshop_appointments := private.appointment_for(p_appointment_id, v_uid, 'customer');
begin
  if v_a.status <> 'proposed' then
    perform private.raise_error('invalid_transition', format('the appointment is %s: no proposal to decline', v_a.status));
  end if;
  update public.workshop_appointments set status = 'requested', proposed_start = null
  where id = v_a.id returning * into v_a;
  return private.appointment_json(v_a);
end
$$;
revoke execute on function public.decline_appointment_proposal(uuid) from public, anon;
grant execute on function public.decline_appointment_proposal(uuid) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- Either side cancels; the workshop completes or records a no-show
-- ---------------------------------------------------------------------------------------------
create or replace function public.cancel_appointment(p_appointment_id uuid, p_reason text) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_reason text := private.appointment_text('p_reason', p_reason, 500, true);
  v_a public.workshop_appointments := private.appointment_for(p_appointment_id, v_uid, 'either', v_reason);
  v_by text := case when v_a.customer_id = v_uid then 'customer' else 'workshop' end;
begin
  if v_a.status not in ('requested', 'proposed', 'confirmed') then
    perform private.raise_error('invalid_transition', format('the appointment is %s: nothing to cancel', v_a.status));
  end if;
  if v_a.status = 'confirmed' and now() >= v_a.starts_at then
    perform private.raise_error('appointment_cancel_too_late',
      'the appointment has started: the workshop completes it or records a no-show');
  end if;
  if v_a.status = 'confirmed' and v_by = 'customer'
     and now() > v_a.starts_at - private.setting_interval('workshops.customer_cancel_cutoff') then
    perform private.raise_error('appointment_cancel_too_late',
      format('a confirmed appointment is cancelled no later than %s before its start',
             private.setting_interval('workshops.customer_cancel_cutoff')));
  end if;
  perform private.release_appointment_mechanic(v_a, 'released');
  update public.workshop_appointments
  set status = 'cancelled', cancel_reason = v_reason, cancelled_by = v_by, proposed_start = null,
      calendar_sequence = calendar_sequence + case when starts_at is null then 0 else 1 end
  where id = v_a.id returning * into v_a;
  return private.appointment_json(v_a);
end
$$;
revoke execute on function public.cancel_appointment(uuid, text) from public, anon;
grant execute on function public.cancel_appointment(uuid, text) to authenticated, service_role;

create or replace function public.complete_appointment(p_appointment_id uuid, p_invoice_cents int) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_a public.workshop_appointments;
begin
  if p_invoice_cents is null or p_invoice_cents < 0 or p_invoice_cents > 10000000 then
    perform private.raise_error('invalid_input', 'p_invoice_cents is 0 to 10000000');
  end if;
  v_a := private.appointment_for(p_appointment_id, v_uid, 'workshop');
  if v_a.status <> 'confirmed' then
    perform private.raise_error('invalid_transition', format('the appointment is %s, not confirmed', v_a.status));
  end if;
  if now() < v_a.starts_at then
    perform private.raise_error('appointment_not_started', format('the appointment starts at %s', v_a.starts_at));
  end if;
  perform private.release_appointment_mechanic(v_a, 'done');
  update public.workshop_appointments set status = 'completed', invoice_cents = p_invoice_cents, completed_at = now()
  where id = v_a.id returning * into v_a;
  perform private.referral_on_appointment_completed(v_a.id);  -- workshops/hooks.sql
  return private.appointment_json(v_a);
end
$$;
revoke execute on function public.complete_appointment(uuid, int) from public, anon;
grant execute on function public.complete_appointment(uuid, int) to authenticated, service_role;

create or replace function public.mark_no_show(p_appointment_id uuid) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_a public.workshop_appointments := private.appointment_for(p_appointment_id, v_uid, 'workshop');
begin
  if v_a.status <> 'confirmed' then
    perform private.raise_error('invalid_transition', format('the appointment is %s, not confirmed', v_a.status));
  end if;
  if now() < v_a.starts_at then
    perform private.raise_error('appointment_not_started', format('the appointment starts at %s', v_a.starts_at));
  end if;
  perform private.release_appointment_mechanic(v_a, 'released');
  update public.workshop_appointments set status = 'no_show' where id = v_a.id returning * into v_a;
  return private.appointment_json(v_a);
end
$$;
revoke execute on function public.mark_no_show(uuid) from public, anon;
grant execute on function public.mark_no_show(uuid) to authenticated, service_role;
-- <<< functions_sql workshops/appointments_rpc.sql

-- >>> functions_sql workshops/directory.sql sha256=b4ca0b3283f5e9f382ac3aa61acf49ff546d43813a20baccbd4944bec3c7f93b
-- Workshops: the public directory of verified workshops and the search over it. What anyone (anon
-- included) reads of a workshop: name, city, postal area, country, services, brands, open hours,
-- rating, photo, description and coordinates rounded to 2 decimals (about 1 km) — never its phone,
-- street address or legal name (its members read those in the table, under RLS).

-- The public columns of the verified workshops (`p_id`: one workshop). Security definer: the
-- organizations' RLS shows a workshop to its members only; this returns the public columns only.
-- Rating: the Bayesian score (private.reviews_score) of its mechanics' visible reviews taken
-- together, null while they have none.
create or replace function private.workshop_cards(p_id uuid default null)
returns table (
  id uuid, name text, city text, postal_area text, country text, services text[], brands text[],
  hours jsonb, rating numeric, rating_count int, photo_url text, description text,
  latitude numeric, longitude numeric, verified_at timestamptz
)
language sql stable security definer set search_path = ''
as $$
  select o.id, o.name, o.city, nullif(upper(left(replace(o.postal_code, ' ', ''), 3)), ''), o.country,
         o.services, o.brands,
         coalesce((select jsonb_agg(jsonb_build_object(
                     'day_of_week', h.day_of_week, 'open', h.open_time, 'close', h.close_time,
                     'break_start', h.break_start, 'break_end', h.break_end) order by h.day_of_week)
                   from public.workshop_hours h where h.organization_id = o.id and h.is_open), '[]'),
         case when r.n > 0 then round(private.reviews_score(r.s, r.n), 2) end, r.n,
         o.photo_url, o.description,
         round(o.latitude::numeric, 2), round(o.longitude::numeric, 2), o.verified_at
  from public.organizations o
  cross join lateral (select coalesce(sum(m.rating_sum), 0)::int as s, coalesce(sum(m.rating_count), 0)::int as n
                      from public.mechanics m where m.organization_id = o.id) r
  where o.status = 'verified' and (p_id is null or o.id = p_id)
$$;
revoke execute on function private.workshop_cards(uuid) from public;
grant execute on function private.workshop_cards(uuid) to anon, authenticated, service_role;

create or replace view public.workshop_directory with (security_invoker = true) as
select c.id, c.name, c.city, c.postal_area, c.country, c.services, c.brands, c.hours, c.rating, c.rating_count,
       c.photo_url, c.description, c.latitude, c.longitude, c.verified_at
from private.workshop_cards() c;
grant select on public.workshop_directory to anon, authenticated, service_role;
comment on view public.workshop_directory is
  'Verified workshops as anyone may see them: name, city, postal area, services, brands, hours, rating, photo, '
  'description, coordinates rounded to 2 decimals. No phone, street address or legal name.';

-- Great-circle distance in km between two earth points. earthdistance's own functions name their
-- helpers without a schema: they run here with `extensions` on the path.
create or replace function private.earth_distance_km(p_a extensions.earth, p_b extensions.earth)
returns double precision
language sql immutable strict parallel safe set search_path = extensions
as $$ select extensions.earth_distance(p_a, p_b) / 1000 $$;
revoke execute on function private.earth_distance_km(extensions.earth, extensions.earth) from public;
grant execute on function private.earth_distance_km(extensions.earth, extensions.earth)
  to anon, authenticated, service_role;

-- Search: nearest first when coordinates are given (great-circle distance in km; workshops without
-- coordinates come last), otherwise by city, postal area and name; filtered by city, service and
-- brand (case-insensitive, trimmed). Anyone may call it.
create or replace function public.find_workshops(
  p_latitude double precision default null,
  p_longitude double precision default null,
  p_city text default null,
  p_service text default null,
  p_brand text default null,
  p_limit int default 20
) returns table (
  id uuid, name text, city text, postal_area text, country text, services text[], brands text[],
  hours jsonb, rating numeric, rating_count int, photo_url text, description text,
  latitude numeric, longitude numeric, distance_km numeric
)
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_city text := lower(btrim(p_city));
  v_service text := lower(btrim(p_service));
  v_brand text := lower(btrim(p_brand));
  v_here extensions.earth;
begin
  if p_limit is null or p_limit < 1 or p_limit > 100 then
    perform private.raise_error('invalid_input', 'p_limit must be between 1 and 100');
  end if;
  if (p_latitude is null) <> (p_longitude is null)
     or p_latitude not between -90 and 90 or p_longitude not between -180 and 180
     or p_latitude = 'NaN'::float8 or p_longitude = 'NaN'::float8 then
    perform private.raise_error('invalid_input',
      'p_latitude (-90..90) and p_longitude (-180..180) are given together or not at all');
  end if;
  if char_length(p_city) > 120 or char_length(p_service) > 80 or char_length(p_brand) > 60 then
    perform private.raise_error('invalid_input', 'p_city (120), p_service (80) or p_brand (60) is too long');
  end if;
  if v_city = '' or v_service = '' or v_brand = '' then
    perform private.raise_error('invalid_input', 'p_city, p_service and p_brand are null or not blank');
  end if;

  if p_latitude is not null then
    v_here := private.earth_point(p_latitude, p_longitude);
    return query
    with near as (  -- nearest first through the gist index on the earth points
      select o.id, private.earth_distance_km(private.earth_point(o.latitude, o.longitude), v_here) as km,
             private.earth_point(o.latitude, o.longitude) operator(extensions.<->) v_here as chord
      from public.organizations o
      where o.status = 'verified' and o.latitude is not null
        and (v_city is null or lower(btrim(o.city)) = v_city)
        and (v_service is null or exists (select 1 from unnest(o.services) x where lower(btrim(x)) = v_service))
        and (v_brand is null or exists (select 1 from unnest(o.brands) x where lower(btrim(x)) = v_brand))
      order by private.earth_point(o.latitude, o.longitude) operator(extensions.<->) v_here
      limit p_limit),
    far as (  -- then those without coordinates
      select o.id, null::float8 as km, null::float8 as chord
      from public.organizations o
      where o.status = 'verified' and o.latitude is null
        and (v_city is null or lower(btrim(o.city)) = v_city)
        and (v_service is null or exists (select 1 from unnest(o.services) x where lower(btrim(x)) = v_service))
        and (v_brand is null or exists (select 1 from unnest(o.brands) x where lower(btrim(x)) = v_brand))
      order by lower(o.city), o.postal_code, o.name, o.id
      limit p_limit)
    select c.id, c.name, c.city, c.postal_area, c.country, c.services, c.brands, c.hours, c.rating,
           c.rating_count, c.photo_url, c.description, c.latitude, c.longitude, round(x.km::numeric, 1)
    from (select * from near union all select * from far) x
    cross join lateral private.workshop_cards(x.id) c
    order by x.chord nulls last, lower(c.city), c.postal_area, c.name, c.id
    limit p_limit;
  else
    return query
    select c.id, c.name, c.city, c.postal_area, c.country, c.services, c.brands, c.hours, c.rating,
           c.rating_count, c.photo_url, c.description, c.latitude, c.longitude, null::numeric
    from (select o.id from public.organizations o
          where o.status = 'verified'
            and (v_city is null or lower(btrim(o.city)) = v_city)
            and (v_service is null or exists (select 1 from unnest(o.services) x where lower(btrim(x)) = v_service))
            and (v_brand is null or exists (select 1 from unnest(o.brands) x where lower(btrim(x)) = v_brand))
          order by lower(btrim(o.city)), upper(replace(o.postal_code, ' ', '')), o.name, o.id
          limit p_limit) x
    cross join lateral private.workshop_cards(x.id) c
    order by lower(btrim(c.city)), c.postal_area, c.name, c.id;
  end if;
end
$$;
revoke execute on function public.find_workshops(double precision, double precision, text, text, text, int)
  from public;
grant execute on function public.find_workshops(double precision, double precision, text, text, text, int)
  to anon, authenticated, service_role;
-- <<< functions_sql workshops/directory.sql

-- >>> functions_sql workshops/dispatch.sql sha256=db61193624f16d01338b25aacc63226c1e4a0a26de073f1545f5b6f4ae96b2a4
-- Workshops: dispatch of micro-sessions. Dispatchers (permission `dispatch`) of a mechanic's
-- workshop pause and resume its micro-sessions, and, when the workshop does not accept micro-sessions
-- automatically (organizations.auto_accept_micro = false), approve each accept of a micro request by
-- one of its mechanics within workshops.micro_approval_window; a lapsed approval returns the request
-- to the other mechanics (docs/workshops.md, "Specialists and dispatch").

-- The mechanic's row, locked, for a dispatcher of its workshop (platform admins too).
create or replace function private.lock_mechanic_for_dispatch(p_mechanic_id uuid, p_uid uuid)
returns public.mechanics
language plpgsql security definer set search_path = ''
as $$
declare
  v_m public.mechanics;
begin
  perform private.require_arg('p_mechanic_id', p_mechanic_id);
  select * into v_m from public.mechanics where id = p_mechanic_id for no key update;
  if not found then
    perform private.raise_error('not_found', 'no such mechanic');
  end if;
  if v_m.organization_id is null then
    perform private.raise_error('not_allowed', 'only a workshop''s mechanics are dispatched');
  end if;
  if not private.workshop_can(v_m.organization_id, p_uid, 'dispatch') then
    perform private.raise_error('not_allowed', 'only the dispatchers of its workshop dispatch a mechanic');
  end if;
  return v_m;
end
$$;
revoke execute on function private.lock_mechanic_for_dispatch(uuid, uuid) from public;
grant execute on function private.lock_mechanic_for_dispatch(uuid, uuid) to service_role;

-- Pause: the mechanic accepts no micro-session until p_until (its sessions in hand go on).
create or replace function public.pause_micro(p_mechanic_id uuid, p_until timestamptz) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
begin
  perform private.require_arg('p_until', p_until);
  if p_until <= now() or p_until > now() + private.setting_interval('workshops.max_micro_pause') then
    perform private.raise_error('invalid_input',
      format('p_until is in the future, at most %s from now', private.setting_interval('workshops.max_micro_pause')));
  end if;
  perform private.lock_mechanic_for_dispatch(p_mechanic_id, v_uid);
  update public.mechanics set micro_paused_until = p_until, micro_paused_by = v_uid where id = p_mechanic_id;
  return jsonb_build_object('mechanic_id', p_mechanic_id, 'micro_paused_until', p_until);
end
$$;
revoke execute on function public.pause_micro(uuid, timestamptz) from public, anon;
grant execute on function public.pause_micro(uuid, timestamptz) to authenticated, service_role;

create or replace function public.resume_micro(p_mechanic_id uuid) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
begin
  perform private.lock_mechanic_for_dispatch(p_mechanic_id, v_uid);
  update public.mechanics set micro_paused_until = null, micro_paused_by = v_uid where id = p_mechanic_id;
  return jsonb_build_object('mechanic_id', p_mechanic_id, 'micro_paused_until', null);
end
$$;
revoke execute on function public.resume_micro(uuid) from public, anon;
grant execute on function public.resume_micro(uuid) to authenticated, service_role;

-- Called by private.assign_request after it took a micro request for mechanic `p_m` (its row
-- locked): when the mechanic's workshop does not accept automatically, the accept waits for a
-- dispatcher until the returned time (null: nothing to wait for). One primary-key read.
create or replace function private.micro_approval_until(p_m public.mechanics, p_now timestamptz)
returns timestamptz
language plpgsql stable security definer set search_path = ''
as $$
begin
  if p_m.organization_id is null then
    return null;
  end if;
  if exists (select 1 from public.organizations o where o.id = p_m.organization_id and not o.auto_accept_micro) then
    return p_now + private.setting_interval('workshops.micro_approval_window');
  end if;
  return null;
end
$$;
revoke execute on function private.micro_approval_until(public.mechanics, timestamptz) from public;
grant execute on function private.micro_approval_until(public.mechanics, timestamptz) to service_role;

-- A dispatcher of the accepting mechanic's workshop approves the accept within the window: the
-- session is the mechanic's from now on and the customer is told. The mechanic cannot approve its
-- own accept, whatever its role.
create or replace function public.approve_micro_accept(p_request_id uuid) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_r public.session_requests;
  v_org uuid;
  v_s public.sessions;
begin
  perform private.require_arg('p_request_id', p_request_id);
  -- the request's lock orders this against the sweep (which skips locked rows and re-checks)
  select * into v_r from public.session_requests where id = p_request_id for update;
  if not found then
    perform private.raise_error('not_found', 'no such request');
  end if;
  -- the accepting mechanic's workshop; once the window lapsed, the one whose accept lapsed
  select m.organization_id into v_org from public.mechanics m
  where m.id = coalesce(v_r.mechanic_id,
                        (select rr.mechanic_id from private.request_releases rr
                         where rr.request_id = v_r.id and rr.by_system order by rr.released_at desc limit 1));
  if v_org is null or not private.workshop_can(v_org, v_uid, 'dispatch') then
    -- someone else's request: as if it did not exist
    perform private.raise_error('not_found', 'no such request');
  end if;
  if v_r.mechanic_id = v_uid then
    perform private.raise_error('not_allowed', 'a mechanic cannot approve its own accept');
  end if;
  if v_r.mechanic_id is null then
    perform private.raise_error('micro_approval_window_closed',
      'the time to approve this accept has passed: the request went back to the other mechanics');
  end if;
  if v_r.status <> 'accepted' or v_r.approval_pending_until is null then
    perform private.raise_error('micro_approval_not_pending', 'this request has no accept waiting for approval');
  end if;
  if v_r.approval_pending_until <= now() then
    perform private.raise_error('micro_approval_window_closed',
      'the time to approve this accept has passed: the request goes back to the other mechanics');
  end if;
  update public.session_requests
  set approval_pending_until = null, approved_by = v_uid, approved_at = now()
  where id = v_r.id;
  -- the customer hears of the mechanic now (the notice was held while the accept waited)
  select * into v_s from public.sessions where id = v_r.session_id;
  perform private.enqueue(
    'email.send',
    format('email:mechanic_assigned:%s:%s:%s:approved', v_s.id, v_s.customer_id, v_s.mechanic_id),
    jsonb_build_object('template', 'mechanic_assigned', 'user_id', v_s.customer_id, 'session_id', v_s.id,
                       'data', jsonb_build_object('mechanic_id', v_s.mechanic_id)));
  return jsonb_build_object('request_id', v_r.id, 'session_id', v_r.session_id, 'status', 'accepted',
                            'approved_at', now());
end
$$;
revoke execute on function public.approve_micro_accept(uuid) from public, anon;
grant execute on function public.approve_micro_accept(uuid) to authenticated, service_role;

-- The sweep (a step of the sweep_requests job): an accept whose approval window lapsed is released
-- by the system — the request is pending again for the other mechanics, the session pending, the
-- reserved micro minutes count nothing — and that mechanic may not take that request again, without
-- it counting towards its release limit (request_releases.by_system).
create or replace function private.lapse_micro_approvals(p_now timestamptz default now(), p_limit int default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_limit int := coalesce(p_limit, private.setting_int('jobs.batch_size'));
  v_r public.session_requests;
  v_lapsed int := 0;
begin
  perform private.set_actor('system', 'no dispatcher approved the accept in time');
  for v_r in
    select * from public.session_requests r
    where r.approval_pending_until <= p_now and r.status = 'accepted'
    order by r.approval_pending_until
    limit v_limit
    for update skip locked
  loop
    update public.session_requests
    set status = 'pending', mechanic_id = null, accepted_at = null, status_changed_at = p_now,
        approval_pending_until = null
    where id = v_r.id;
    update public.sessions set status = 'pending', mechanic_id = null, status_changed_at = p_now
    where id = v_r.session_id and status = 'waiting';
    perform private.micro_settle(v_r.session_id, p_now);
    delete from public.session_participants where session_id = v_r.session_id and user_id = v_r.mechanic_id;
    perform private.release_commitment(v_r.session_id, 'released', p_now);
    update public.session_offers set status = 'declined', responded_at = p_now
    where request_id = v_r.id and mechanic_id = v_r.mechanic_id;
    insert into private.request_releases (request_id, mechanic_id, released_at, by_system)
    values (v_r.id, v_r.mechanic_id, p_now, true);
    update public.intakes set status = 'pending'
    where id = (select s.intake_id from public.sessions s where s.id = v_r.session_id);
    v_lapsed := v_lapsed + 1;
  end loop;
  -- accepts that ended otherwise (cancelled by the customer, say) wait for nothing any more
  update public.session_requests r set approval_pending_until = null
  from (select q.id from public.session_requests q
        where q.approval_pending_until <= p_now and q.status <> 'accepted'
        limit v_limit for update skip locked) done
  where r.id = done.id;
  return jsonb_build_object('approvals_lapsed', v_lapsed);
end
$$;
revoke execute on function private.lapse_micro_approvals(timestamptz, int) from public;
grant execute on function private.lapse_micro_approvals(timestamptz, int) to service_role;

-- A session whose accept waits for a dispatcher does not start, and its room stays closed
-- (start_session, private.room_grant).
create or replace function private.require_micro_approved(p_session_id uuid) returns void
language plpgsql stable security definer set search_path = ''
as $$
begin
  if exists (select 1 from public.session_requests r
             where r.session_id = p_session_id and r.approval_pending_until is not null) then
    perform private.raise_error('micro_approval_pending',
      'the accept waits for a dispatcher of the mechanic''s workshop');
  end if;
end
$$;
revoke execute on function private.require_micro_approved(uuid) from public;
grant execute on function private.require_micro_approved(uuid) to service_role;

-- What waits for the dispatchers of workshop `p_workshop_id`: its mechanics' micro accepts not yet
-- approved, soonest deadline first, with what a dispatcher needs to decide (no contact details).
create or replace function public.micro_approvals_pending(p_workshop_id uuid) returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
begin
  perform private.require_arg('p_workshop_id', p_workshop_id);
  if not exists (select 1 from public.organizations o where o.id = p_workshop_id)
     or not private.workshop_can(p_workshop_id, v_uid, 'dispatch') then
    perform private.raise_error('not_found', 'no such workshop');
  end if;
  return coalesce((
    select jsonb_agg(jsonb_build_object(
             'request_id', r.id, 'session_id', r.session_id, 'mechanic_id', r.mechanic_id,
             'mechanic_name', m.display_name, 'approval_pending_until', r.approval_pending_until,
             'plan_code', r.plan_code, 'vehicle_make', r.vehicle_make, 'vehicle_model', r.vehicle_model,
             'vehicle_year', r.vehicle_year, 'concern', r.concern, 'accepted_at', r.accepted_at)
           order by r.approval_pending_until, r.id)
    from public.session_requests r join public.mechanics m on m.id = r.mechanic_id
    where r.approval_pending_until is not null and r.status = 'accepted' and m.organization_id = p_workshop_id),
    '[]'::jsonb);
end
$$;
revoke execute on function public.micro_approvals_pending(uuid) from public, anon;
grant execute on function public.micro_approvals_pending(uuid) to authenticated, service_role;
-- <<< functions_sql workshops/dispatch.sql

-- >>> functions_sql workshops/hooks.sql sha256=99e01f958c1f3ab8d67144edc06dd9df28f576f36731ea05f68d45e364ae57be
-- Workshops: hooks other workshop concerns fill in. (Who may do what: private.workshop_role and
-- private.workshop_can, with the policies that use them, are in the migrations.)

-- Called when an appointment completes (workshops/appointments): the referral fee accrues —
-- private.referral_on_appointment_completed(appointment_id), in workshops/referral.sql.
-- <<< functions_sql workshops/hooks.sql

-- >>> functions_sql workshops/onboarding.sql sha256=e87adb002d0f385a05e4eb6d5afcfb9be7709db45545929d201c575f507b8cb7
-- Workshops: onboarding. Any signed-in user creates a workshop and becomes its owner; it stays
-- `pending` (neither listed nor bookable) until a platform admin verifies it. Details are edited by
-- the staff with edit_details (docs/workshops.md, "Onboarding").

-- Applies a details object to a workshop: only the keys given change; an unknown key, a wrong type
-- or an out-of-range value is invalid_input and nothing changes. null clears a key (services and
-- brands: to the empty list).
create or replace function private.apply_workshop_details(p_workshop_id uuid, p_details jsonb) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_key text;
  v_type text;
  v_services text[];
  v_brands text[];
  v_lat double precision;
  v_lon double precision;
begin
  if p_details is null or jsonb_typeof(p_details) <> 'object' then
    perform private.raise_error('invalid_input', 'p_details must be a JSON object');
  end if;
  for v_key in select jsonb_object_keys(p_details) loop
    if v_key not in ('legal_name', 'address_line', 'city', 'postal_code', 'country', 'latitude', 'longitude',
                     'phone', 'description', 'services', 'brands', 'photo_url') then
      perform private.raise_error('invalid_input', format('unknown detail %s', left(v_key, 60)));
    end if;
    v_type := (case when v_key in ('latitude', 'longitude') then 'number'
                    when v_key in ('services', 'brands') then 'array' else 'string' end);
    if jsonb_typeof(p_details -> v_key) not in ('null', v_type) then
      perform private.raise_error('invalid_input', format('%s has the wrong type', v_key));
    end if;
  end loop;
  if (p_details ? 'latitude') <> (p_details ? 'longitude')
     or (jsonb_typeof(p_details -> 'latitude') = 'null') <> (jsonb_typeof(p_details -> 'longitude') = 'null') then
    perform private.raise_error('invalid_input', 'latitude and longitude are given together');
  end if;
  v_lat := (p_details ->> 'latitude')::double precision;
  v_lon := (p_details ->> 'longitude')::double precision;
  if v_lat not between -90 and 90 or v_lon not between -180 and 180 then
    perform private.raise_error('invalid_input', 'latitude -90..90, longitude -180..180');
  end if;
  if char_length(p_details ->> 'legal_name') > 200 or char_length(p_details ->> 'address_line') > 300
     or char_length(p_details ->> 'city') > 120 or char_length(p_details ->> 'description') > 4000 then
    perform private.raise_error('invalid_input', 'legal_name ≤ 200, address_line ≤ 300, city ≤ 120, description ≤ 4000');
  end if;
  if (p_details ->> 'postal_code') !~ '^[A-Za-z0-9 -]{2,20}$' then
    perform private.raise_error('invalid_input', 'postal_code: 2..20 letters, digits, spaces or dashes');
  end if;
  if (p_details ->> 'country') !~ '^[A-Za-z]{2}$' then
    perform private.raise_error('invalid_input', 'country: an ISO 3166 two-letter code');
  end if;
  if (p_details ->> 'phone') !~ '^\+?[0-9][0-9 ().-]{4,38}$' then
    perform private.raise_error('invalid_input', 'phone: digits, spaces, dots, dashes and parentheses, 5..40');
  end if;
  if (p_details ->> 'photo_url') !~ '^https://[^\s]+$' or char_length(p_details ->> 'photo_url') > 2000 then
    perform private.raise_error('invalid_input', 'photo_url: an https:// URL of at most 2000 characters');
  end if;
  if jsonb_typeof(p_details -> 'services') = 'array' then
    if jsonb_array_length(p_details -> 'services') > 50
       or exists (select 1 from jsonb_array_elements(p_details -> 'services') e
                  where jsonb_typeof(e) <> 'string'
                     or not exists (select 1 from public.workshop_services ws where ws.code = e #>> '{}')) then
      perform private.raise_error('invalid_input', 'services: at most 50 codes of public.workshop_services');
    end if;
    select coalesce(array_agg(distinct e #>> '{}' order by e #>> '{}'), '{}') into v_services
    from jsonb_array_elements(p_details -> 'services') e;
  end if;
  if jsonb_typeof(p_details -> 'brands') = 'array' then
    if jsonb_array_length(p_details -> 'brands') > 50
       or exists (select 1 from jsonb_array_elements(p_details -> 'brands') e
                  where jsonb_typeof(e) <> 'string' or char_length(btrim(e #>> '{}')) not between 1 and 60
                     or (e #>> '{}') ~ '[[:cntrl:]]') then
      perform private.raise_error('invalid_input', 'brands: at most 50 names of 1..60 characters');
    end if;
    select coalesce(array_agg(distinct btrim(e #>> '{}') order by btrim(e #>> '{}')), '{}') into v_brands
    from jsonb_array_elements(p_details -> 'brands') e;
  end if;
  if exists (select 1 from jsonb_each_text(p_details) kv where kv.value ~ '[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]') then
    perform private.raise_error('invalid_input', 'details may not contain control characters');
  end if;
  update public.organizations o set
    legal_name = case when p_details ? 'legal_name' then nullif(btrim(p_details ->> 'legal_name'), '') else o.legal_name end,
    address_line = case when p_details ? 'address_line' then nullif(btrim(p_details ->> 'address_line'), '')
                        else o.address_line end,
    city = case when p_details ? 'city' then nullif(btrim(p_details ->> 'city'), '') else o.city end,
    postal_code = case when p_details ? 'postal_code' then upper(btrim(p_details ->> 'postal_code')) else o.postal_code end,
    country = case when p_details ? 'country' then upper(p_details ->> 'country') else o.country end,
    latitude = case when p_details ? 'latitude' then v_lat else o.latitude end,
    longitude = case when p_details ? 'longitude' then v_lon else o.longitude end,
    phone = case when p_details ? 'phone' then btrim(p_details ->> 'phone') else o.phone end,
    description = case when p_details ? 'description' then nullif(btrim(p_details ->> 'description'), '')
                       else o.description end,
    services = case when p_details ? 'services' then coalesce(v_services, '{}') else o.services end,
    brands = case when p_details ? 'brands' then coalesce(v_brands, '{}') else o.brands end,
    photo_url = case when p_details ? 'photo_url' then p_details ->> 'photo_url' else o.photo_url end,
    updated_at = now()
  where o.id = p_workshop_id;
end
$$;
revoke execute on function private.apply_workshop_details(uuid, jsonb) from public;
grant execute on function private.apply_workshop_details(uuid, jsonb) to service_role;

-- The workshop as its staff see it (details, status, the caller's role).
create or replace function private.workshop_json(p_workshop_id uuid, p_user_id uuid) returns jsonb
language sql stable security definer set search_path = ''
as $$
  select jsonb_build_object('workshop_id', o.id, 'name', o.name, 'timezone', o.timezone, 'status', o.status,
    'verified_at', o.verified_at, 'legal_name', o.legal_name, 'address_line', o.address_line, 'city', o.city,
    'postal_code', o.postal_code, 'country', o.country, 'latitude', o.latitude, 'longitude', o.longitude,
    'phone', o.phone, 'description', o.description, 'services', to_jsonb(o.services), 'brands', to_jsonb(o.brands),
    'photo_url', o.photo_url, 'role', private.workshop_role(o.id, p_user_id))
  from public.organizations o where o.id = p_workshop_id
$$;
revoke execute on function private.workshop_json(uuid, uuid) from public;
grant execute on function private.workshop_json(uuid, uuid) to service_role;

-- ---------------------------------------------------------------------------------------------
-- create_workshop: the caller becomes the owner of a new pending workshop
-- ---------------------------------------------------------------------------------------------
create or replace function public.create_workshop(p_name text, p_timezone text, p_details jsonb default '{}')
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_name text := btrim(p_name);
  v_id uuid;
begin
  if v_name is null or char_length(v_name) not between 1 and 200 or v_name ~ '[[:cntrl:]]' then
    perform private.raise_error('invalid_input', 'p_name: 1..200 characters');
  end if;
  if p_timezone is null or char_length(p_timezone) > 64 or not private.is_valid_timezone(p_timezone) then
    perform private.raise_error('invalid_input', 'p_timezone must be an IANA zone name');
  end if;
  -- one creation at a time per user: the pending count below cannot be raced past
  perform pg_advisory_xact_lock(hashtextextended('create_workshop:' || v_uid::text, 0));
  if (select count(*) from public.organizations o
      where o.created_by = v_uid and o.status = 'pending') >= private.setting_int('workshops.max_pending_per_user') then
    perform private.raise_error('too_many_pending_workshops',
      format('at most %s workshops awaiting verification', private.setting_int('workshops.max_pending_per_user')));
  end if;
  insert into public.organizations (name, timezone, created_by, status)
  values (v_name, p_timezone, v_uid, 'pending') returning id into v_id;
  perform private.apply_workshop_details(v_id, coalesce(p_details, '{}'::jsonb));
  insert into public.organization_members (organization_id, user_id, role) values (v_id, v_uid, 'owner');
  return private.workshop_json(v_id, v_uid);
end
$$;
revoke execute on function public.create_workshop(text, text, jsonb) from public, anon;
grant execute on function public.create_workshop(text, text, jsonb) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- update_workshop_details: edit_details (the status is the platform's)
-- ---------------------------------------------------------------------------------------------
create or replace function public.update_workshop_details(p_workshop_id uuid, p_details jsonb) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
begin
  perform private.require_arg('p_workshop_id', p_workshop_id);
  perform 1 from public.organizations o where o.id = p_workshop_id for update;
  if not found or (private.workshop_role(p_workshop_id, v_uid) is null and not private.is_admin()) then
    perform private.raise_error('not_found', 'no such workshop among yours');
  end if;
  if not private.workshop_can(p_workshop_id, v_uid, 'edit_details') then
    perform private.raise_error('not_allowed', 'your role does not edit the workshop''s details');
  end if;
  perform private.apply_workshop_details(p_workshop_id, p_details);
  return private.workshop_json(p_workshop_id, v_uid);
end
$$;
revoke execute on function public.update_workshop_details(uuid, jsonb) from public, anon;
grant execute on function public.update_workshop_details(uuid, jsonb) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- admin_set_workshop_status: platform admins verify or suspend a workshop
-- ---------------------------------------------------------------------------------------------
create or replace function public.admin_set_workshop_status(p_workshop_id uuid, p_status text) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_org public.organizations;
begin
  if not private.is_admin() then
    perform private.raise_error('not_allowed', 'platform admins only');
  end if;
  perform private.require_arg('p_workshop_id', p_workshop_id);
  if p_status is null or p_status not in ('verified', 'suspended') then
    perform private.raise_error('invalid_input', 'p_status is verified or suspended');
  end if;
  select * into v_org from public.organizations where id = p_workshop_id for update;
  if not found then
    perform private.raise_error('not_found', 'no such workshop');
  end if;
  if v_org.status = p_status then
    perform private.raise_error('invalid_transition', format('the workshop is %s already', p_status));
  end if;
  update public.organizations
  set status = p_status,
      verified_at = case when p_status = 'verified' then now() else verified_at end,
      updated_at = now()
  where id = p_workshop_id;
  return private.workshop_json(p_workshop_id, v_uid);
end
$$;
revoke execute on function public.admin_set_workshop_status(uuid, text) from public, anon;
grant execute on function public.admin_set_workshop_status(uuid, text) to authenticated, service_role;
-- <<< functions_sql workshops/onboarding.sql

-- >>> functions_sql workshops/referral.sql sha256=6bada6ae6e424f43ccae0e5cfeb7f479c054fe63e09c36d0d9a5fa91026b5f75
-- Workshops: the referral fee (docs/workshops.md, "Referral fee"). A completed appointment that
-- came from a delivered diagnostic session by a virtual-only mechanic accrues
-- workshops.referral_fee_bps of its invoice (rounded down to a cent), owed by the workshop to
-- that mechanic; the workshop's next payouts are lowered by it (oldest fee first) and a referral
-- payout of the same payment pays the mechanic through the normal transfer path.
--
-- Locking order: payment → payouts → referral fees (refunds take payment → payouts; a workshop
-- payout being released holds its own row, then locks the workshop's open fees).

drop trigger if exists _010_set_updated_at on public.referral_fees;
create trigger _010_set_updated_at before update on public.referral_fees
  for each row execute function private.tg__set_updated_at();

-- ---------------------------------------------------------------------------------------------
-- Accrual: called by complete_appointment (workshops/appointments) in its transaction. Idempotent
-- (one fee per appointment). No fee when: no referring mechanic; an invoice of 0; the diagnostic
-- session is not the referrer's, not the same customer's, not completed or not delivered (a
-- mechanic booking itself through a second customer account gains nothing without evidence of
-- delivery); the referrer was not virtual-only when the diagnosis was settled (its payment's split
-- rule records the type; a session without a payment: the type now); the referrer belongs to the
-- appointment's workshop (a member of its staff, or affiliated with it) — self-referral.
-- ---------------------------------------------------------------------------------------------
create or replace function private.referral_on_appointment_completed(p_appointment_id uuid) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_appt public.workshop_appointments;
  v_session public.sessions;
  v_type public.mechanic_type;
  v_bps int;
  v_amount int;
begin
  select * into v_appt from public.workshop_appointments where id = p_appointment_id for update;
  if not found or v_appt.status <> 'completed' or v_appt.referring_mechanic_id is null
     or coalesce(v_appt.invoice_cents, 0) <= 0 or v_appt.diagnostic_session_id is null then
    return;
  end if;
  if exists (select 1 from public.referral_fees f where f.appointment_id = p_appointment_id) then
    return;
  end if;
  select * into v_session from public.sessions where id = v_appt.diagnostic_session_id;
  if v_session.id is null or v_session.mechanic_id is distinct from v_appt.referring_mechanic_id
     or v_session.customer_id <> v_appt.customer_id or v_session.status <> 'completed'
     or v_session.delivery is distinct from 'delivered' then
    return;
  end if;
  v_type := coalesce(
    (select r.mechanic_type from public.payments p join public.revenue_split_rules r on r.id = p.split_rule_id
     where p.session_id = v_session.id and p.extension_id is null and p.settled_at is not null limit 1),
    (select m.mechanic_type from public.mechanics m where m.id = v_appt.referring_mechanic_id));
  if v_type is distinct from 'virtual_only' then
    return;
  end if;
  if exists (select 1 from public.organization_members om
             where om.organization_id = v_appt.workshop_id and om.user_id = v_appt.referring_mechanic_id)
     or exists (select 1 from public.mechanics m
                where m.id = v_appt.referring_mechanic_id and m.organization_id = v_appt.workshop_id) then
    return;
  end if;
  v_bps := private.setting_int('workshops.referral_fee_bps');
  v_amount := floor(v_appt.invoice_cents::numeric * v_bps / 10000)::int;
  if v_amount <= 0 then
    return;
  end if;
  insert into public.referral_fees (appointment_id, workshop_id, mechanic_id, diagnostic_session_id, referrer_type,
                                    invoice_cents, fee_bps, amount_cents, currency, accrued_at)
  values (v_appt.id, v_appt.workshop_id, v_appt.referring_mechanic_id, v_session.id, v_type,
          v_appt.invoice_cents, v_bps, v_amount, v_appt.currency, coalesce(v_appt.completed_at, now()))
  on conflict (appointment_id) do nothing;
end
$$;
revoke execute on function private.referral_on_appointment_completed(uuid) from public;
grant execute on function private.referral_on_appointment_completed(uuid) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Settlement: a workshop payout never attempted that becomes `queued` (released after the
-- objection window, its payee activated, an admin's decision: every path, hence a trigger) pays
-- the workshop's open fees first, oldest first, up to its amount. Its amount is lowered (its
-- original_amount_cents stays), each deduction recorded, and per mechanic a referral payout of the
-- same payment carries the deducted cents: queued for its stripe.transfer job, or waiting
-- (private.payout_wait_reason: no active payout account, the mechanic's standing). A payout fully
-- used for fees ends `cancelled` at 0. The fee rows are locked, so two payouts released at once
-- never settle the same cents twice.
-- ---------------------------------------------------------------------------------------------
create or replace function private.tg_payouts__referral_fees() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_fee public.referral_fees;
  v_ref public.payouts;
  v_left int := new.amount_cents;
  v_cut int;
  v_reason text;
begin
  if old.status = 'queued' then
    return new;
  end if;
  for v_fee in
    select * from public.referral_fees f
    where f.workshop_id = new.organization_id and f.status = 'accrued' and f.currency = new.currency
    order by f.accrued_at, f.id
    for update
  loop
    exit when v_left <= 0;
    v_cut := least(v_left, v_fee.amount_cents - v_fee.settled_cents);
    continue when v_cut <= 0;
    select * into v_ref from public.payouts p
    where p.referral_of_payout_id = new.id and p.mechanic_id = v_fee.mechanic_id for update;
    if found then
      continue when v_ref.destination_account is not null or v_ref.status not in ('waiting', 'queued');
      update public.payouts set original_amount_cents = original_amount_cents + v_cut,
                                amount_cents = amount_cents + v_cut
      where id = v_ref.id returning * into v_ref;
    else
      insert into public.payouts (payment_id, session_id, payee_kind, mechanic_id, share_bps, original_amount_cents,
                                  amount_cents, currency, status, waiting_reason, release_at, referral_of_payout_id)
      values (new.payment_id, new.session_id, 'mechanic', v_fee.mechanic_id, 0, v_cut, v_cut, new.currency,
              'waiting', 'settling', least(coalesce(new.release_at, now()), now()), new.id)
      returning * into v_ref;
    end if;
    insert into public.referral_fee_deductions (fee_id, workshop_payout_id, referral_payout_id, amount_cents)
    values (v_fee.id, new.id, v_ref.id, v_cut);
    update public.referral_fees
    set settled_cents = settled_cents + v_cut,
        status = case when settled_cents + v_cut = amount_cents then 'settled' else 'accrued' end,
        settled_at = case when settled_cents + v_cut = amount_cents then now() end
    where id = v_fee.id;
    v_left := v_left - v_cut;
    v_reason := private.payout_wait_reason(v_ref.id, now());
    if v_reason is null and v_ref.status = 'waiting' then
      update public.payouts set status = 'queued', waiting_reason = null where id = v_ref.id;
    elsif v_reason is not null then
      update public.payouts set status = 'waiting', waiting_reason = v_reason where id = v_ref.id;
    end if;
  end loop;
  new.amount_cents := v_left;
  if v_left = 0 then
    new.status := 'cancelled';
    new.waiting_reason := 'used in full for referral fees owed by the workshop';
  end if;
  return new;
end
$$;
revoke execute on function private.tg_payouts__referral_fees() from public;
drop trigger if exists _200_referral_fees on public.payouts;
create trigger _200_referral_fees before update of status on public.payouts
  for each row when (new.status = 'queued' and new.payee_kind = 'workshop' and new.destination_account is null
                     and new.amount_cents > 0)
  execute function private.tg_payouts__referral_fees();

-- A refund of the payment took p_cents back from a referral payout (lowered in place or reversed,
-- payments/refunds.sql): those cents of its fees are owed again (newest deduction first), and the
-- workshop's next payouts pay them.
create or replace function private.referral_restore(p_referral_payout_id uuid, p_cents int) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_row public.referral_fee_deductions;
  v_left int := p_cents;
  v_back int;
begin
  for v_row in
    select * from public.referral_fee_deductions d
    where d.referral_payout_id = p_referral_payout_id and d.restored_cents < d.amount_cents
    order by d.created_at desc, d.id desc
    for update
  loop
    exit when v_left <= 0;
    v_back := least(v_left, v_row.amount_cents - v_row.restored_cents);
    update public.referral_fee_deductions set restored_cents = restored_cents + v_back where id = v_row.id;
    update public.referral_fees set settled_cents = settled_cents - v_back, status = 'accrued', settled_at = null
    where id = v_row.fee_id;
    v_left := v_left - v_back;
  end loop;
end
$$;
revoke execute on function private.referral_restore(uuid, int) from public;
grant execute on function private.referral_restore(uuid, int) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Earnings: the caller's referral fees as a mechanic (no workshop given), or what a workshop owes
-- and paid (staff with see_earnings, admins). Per currency: owed_cents (accrued, not yet settled),
-- paid_cents (settled so far), fees (how many), plus the fees themselves, newest first.
-- ---------------------------------------------------------------------------------------------
create or replace function public.referral_earnings(p_workshop_id uuid default null) returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
begin
  if p_workshop_id is not null then
    if not exists (select 1 from public.organizations o where o.id = p_workshop_id)
       or (private.workshop_role(p_workshop_id, v_uid) is null and not private.is_admin()) then
      perform private.raise_error('not_found', 'no such workshop');
    end if;
    if not private.workshop_can(p_workshop_id, v_uid, 'see_earnings') then
      perform private.raise_error('not_allowed', 'the workshop''s earnings are for its owner and managers');
    end if;
  end if;
  return (
    with f as (
      select * from public.referral_fees x
      where (p_workshop_id is null and x.mechanic_id = v_uid) or x.workshop_id = p_workshop_id)
    select jsonb_build_object(
      'as', case when p_workshop_id is null then 'mechanic' else 'workshop' end,
      'mechanic_id', case when p_workshop_id is null then v_uid end,
      'workshop_id', p_workshop_id,
      'totals', coalesce((select jsonb_agg(jsonb_build_object('currency', t.currency, 'owed_cents', t.owed,
                                                              'paid_cents', t.paid, 'fees', t.n) order by t.currency)
                          from (select f.currency, sum(f.amount_cents - f.settled_cents)::int as owed,
                                       sum(f.settled_cents)::int as paid, count(*)::int as n
                                from f group by f.currency) t), '[]'::jsonb),
      'fees', coalesce((select jsonb_agg(jsonb_build_object(
                          'fee_id', f.id, 'appointment_id', f.appointment_id, 'workshop_id', f.workshop_id,
                          'mechanic_id', f.mechanic_id, 'invoice_cents', f.invoice_cents, 'fee_bps', f.fee_bps,
                          'amount_cents', f.amount_cents, 'settled_cents', f.settled_cents, 'currency', f.currency,
                          'status', f.status, 'accrued_at', f.accrued_at, 'settled_at', f.settled_at)
                          order by f.accrued_at desc, f.id)
                        from (select * from f order by f.accrued_at desc limit 200) f), '[]'::jsonb)));
end
$$;
revoke execute on function public.referral_earnings(uuid) from public, anon;
grant execute on function public.referral_earnings(uuid) to authenticated, service_role;
-- <<< functions_sql workshops/referral.sql

-- >>> functions_sql workshops/roster.sql sha256=54b139b2071afad60fa701efeddf2dba296ddb2162f689aba18640a68036f187
-- Workshops: the roster. Invitations by email with a single-use token (only its SHA-256 stored),
-- acceptance by the account with that email, removal, leaving and the transfer of ownership
-- (docs/workshops.md, "Roster"). Every change locks the workshop row first, so roster changes of
-- one workshop are serialized.

-- The caller's view of a workshop it acts on: not_found when the workshop does not exist or the
-- caller is neither a member nor a platform admin (no oracle); not_allowed when its role lacks the
-- permission. Locks the workshop row.
create or replace function private.lock_workshop_for(p_workshop_id uuid, p_user_id uuid, p_permission text)
returns public.organizations
language plpgsql security definer set search_path = ''
as $$
declare
  v_org public.organizations;
begin
  perform private.require_arg('p_workshop_id', p_workshop_id);
  select * into v_org from public.organizations where id = p_workshop_id for update;
  if not found or (private.workshop_role(p_workshop_id, p_user_id) is null and not private.is_admin()) then
    perform private.raise_error('not_found', 'no such workshop among yours');
  end if;
  if p_permission is not null and not private.workshop_can(p_workshop_id, p_user_id, p_permission) then
    perform private.raise_error('not_allowed', format('your role in this workshop lacks %s', p_permission));
  end if;
  return v_org;
end
$$;
revoke execute on function private.lock_workshop_for(uuid, uuid, text) from public;
grant execute on function private.lock_workshop_for(uuid, uuid, text) to service_role;

-- A member leaves the roster. A mechanic's row is unlinked from the workshop: it becomes an
-- individual (virtual-only) mechanic again and keeps its sessions and bookings; sessions settled
-- from now on pay it directly (settlement reads mechanics.organization_id); payouts already created
-- stay with the workshop.
create or replace function private.detach_workshop_member(p_workshop_id uuid, p_user_id uuid) returns void
language plpgsql security definer set search_path = ''
as $$
begin
  delete from public.organization_members where organization_id = p_workshop_id and user_id = p_user_id;
  update public.mechanics
  set organization_id = null, account_type = 'individual_mechanic', updated_at = now()
  where id = p_user_id and organization_id = p_workshop_id;
end
$$;
revoke execute on function private.detach_workshop_member(uuid, uuid) from public;
grant execute on function private.detach_workshop_member(uuid, uuid) to service_role;

-- ---------------------------------------------------------------------------------------------
-- invite_to_workshop (manage_roster)
-- ---------------------------------------------------------------------------------------------
create or replace function public.invite_to_workshop(p_workshop_id uuid, p_email text, p_role text) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_org public.organizations;
  v_email text := lower(btrim(p_email));
  v_token text;
  v_id uuid;
  v_expires timestamptz := now() + private.setting_interval('workshops.invitation_ttl');
begin
  if v_email is null or char_length(v_email) > 254 or v_email !~ '^[^@\s]+@[^@\s]+\.[^@\s]+$' then
    perform private.raise_error('invalid_input', 'p_email must be an email address');
  end if;
  if p_role is null or p_role not in ('manager', 'dispatcher', 'mechanic') then
    perform private.raise_error('invalid_input',
      'p_role is manager, dispatcher or mechanic (ownership is transferred, never invited)');
  end if;
  v_org := private.lock_workshop_for(p_workshop_id, v_uid, 'manage_roster');
  if v_org.status = 'suspended' then
    perform private.raise_error('not_allowed', 'a suspended workshop does not invite');
  end if;
  if exists (select 1 from public.organization_members om join auth.users u on u.id = om.user_id
             where om.organization_id = p_workshop_id and lower(u.email) = v_email) then
    perform private.raise_error('conflict', 'this email is a member already');
  end if;
  -- an expired invitation no longer blocks a new one
  update public.workshop_invitations set status = 'expired', decided_at = now()
  where workshop_id = p_workshop_id and email = v_email and status = 'pending' and expires_at <= now();
  if exists (select 1 from public.workshop_invitations
             where workshop_id = p_workshop_id and email = v_email and status = 'pending') then
    perform private.raise_error('conflict', 'a pending invitation to this email exists: revoke it first');
  end if;
  -- 244 random bits (two v4 UUIDs), URL-safe; only the SHA-256 is kept
  v_token := rtrim(translate(encode(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()), 'base64'),
                             '+/', '-_'), '=');
  insert into public.workshop_invitations (workshop_id, email, role, token_hash, invited_by, expires_at)
  values (p_workshop_id, v_email, p_role::public.organization_role, sha256(convert_to(v_token, 'UTF8')), v_uid,
          v_expires)
  returning id into v_id;
  perform private.enqueue('email.send', format('email:workshop_invitation:%s', v_id), jsonb_build_object(
    'template', 'workshop_invitation', 'user_id', null, 'session_id', null, 'to_email', v_email,
    'data', jsonb_build_object('workshop_name', v_org.name, 'role', p_role, 'token', v_token,
                               'expires_at', v_expires,
                               'inviter_name', (select coalesce(p.full_name, 'A workshop manager')
                                                from public.profiles p where p.id = v_uid))));
  return jsonb_build_object('invitation_id', v_id, 'workshop_id', p_workshop_id, 'email', v_email, 'role', p_role,
                            'expires_at', v_expires);
end
$$;
revoke execute on function public.invite_to_workshop(uuid, text, text) from public, anon;
grant execute on function public.invite_to_workshop(uuid, text, text) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- accept_workshop_invitation: by the signed-in account whose email the invitation names
-- ---------------------------------------------------------------------------------------------
create or replace function public.accept_workshop_invitation(p_token text) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_inv public.workshop_invitations;
  v_mechanic public.mechanics;
  v_email text;
begin
  if p_token is null or char_length(p_token) not between 1 and 200 then
    perform private.raise_error('invitation_invalid', 'this invitation is not valid (anymore)');
  end if;
  select * into v_inv from public.workshop_invitations
  where token_hash = sha256(convert_to(p_token, 'UTF8')) for update;
  -- unknown, expired, used and revoked tokens: one answer
  if not found or v_inv.status <> 'pending' or v_inv.expires_at <= now() then
    perform private.raise_error('invitation_invalid', 'this invitation is not valid (anymore)');
  end if;
  select lower(u.email) into v_email from auth.users u where u.id = v_uid;
  if v_email is distinct from v_inv.email then
    perform private.raise_error('invitation_wrong_account', 'this invitation was sent to another email address');
  end if;
  perform 1 from public.organizations o where o.id = v_inv.workshop_id for update;
  if private.workshop_role(v_inv.workshop_id, v_uid) is not null then
    perform private.raise_error('conflict', 'you are a member of this workshop already');
  end if;
  if v_inv.role = 'mechanic' then
    select * into v_mechanic from public.mechanics where id = v_uid for update;
    if found and v_mechanic.organization_id is not null and v_mechanic.organization_id <> v_inv.workshop_id then
      perform private.raise_error('mechanic_in_other_workshop', 'leave your current workshop first');
    end if;
    if not found then
      insert into public.mechanics (id, display_name, status, organization_id, account_type)
      values (v_uid, left(coalesce((select nullif(btrim(p.full_name), '') from public.profiles p where p.id = v_uid),
                                   split_part(v_email, '@', 1)), 120),
              'pending', v_inv.workshop_id, 'workshop_mechanic');
    else
      update public.mechanics set organization_id = v_inv.workshop_id, account_type = 'workshop_mechanic',
                                  updated_at = now()
      where id = v_uid;
    end if;
  end if;
  insert into public.organization_members (organization_id, user_id, role) values (v_inv.workshop_id, v_uid, v_inv.role);
  update public.workshop_invitations set status = 'accepted', accepted_by = v_uid, decided_at = now()
  where id = v_inv.id;
  return jsonb_build_object('workshop_id', v_inv.workshop_id, 'role', v_inv.role);
end
$$;
revoke execute on function public.accept_workshop_invitation(text) from public, anon;
grant execute on function public.accept_workshop_invitation(text) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- revoke_invitation (manage_roster)
-- ---------------------------------------------------------------------------------------------
create or replace function public.revoke_invitation(p_invitation_id uuid) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_inv public.workshop_invitations;
begin
  perform private.require_arg('p_invitation_id', p_invitation_id);
  select * into v_inv from public.workshop_invitations where id = p_invitation_id;
  if not found then
    perform private.raise_error('not_found', 'no such invitation among yours');
  end if;
  perform private.lock_workshop_for(v_inv.workshop_id, v_uid, 'manage_roster');
  select * into v_inv from public.workshop_invitations where id = p_invitation_id for update;
  if v_inv.status <> 'pending' then
    perform private.raise_error('invalid_transition', format('the invitation is %s', v_inv.status));
  end if;
  update public.workshop_invitations set status = 'revoked', decided_at = now() where id = p_invitation_id;
  return jsonb_build_object('invitation_id', p_invitation_id, 'status', 'revoked');
end
$$;
revoke execute on function public.revoke_invitation(uuid) from public, anon;
grant execute on function public.revoke_invitation(uuid) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- remove_workshop_member (manage_roster), leave_workshop (any member but the owner)
-- ---------------------------------------------------------------------------------------------
create or replace function public.remove_workshop_member(p_workshop_id uuid, p_user_id uuid) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_role text;
begin
  perform private.require_arg('p_user_id', p_user_id);
  perform private.lock_workshop_for(p_workshop_id, v_uid, 'manage_roster');
  v_role := private.workshop_role(p_workshop_id, p_user_id);
  if v_role is null then
    perform private.raise_error('not_found', 'no such member');
  end if;
  if v_role = 'owner' then
    perform private.raise_error('owner_must_transfer', 'the owner is removed only after a transfer of ownership');
  end if;
  perform private.detach_workshop_member(p_workshop_id, p_user_id);
  return jsonb_build_object('workshop_id', p_workshop_id, 'user_id', p_user_id, 'removed', true);
end
$$;
revoke execute on function public.remove_workshop_member(uuid, uuid) from public, anon;
grant execute on function public.remove_workshop_member(uuid, uuid) to authenticated, service_role;

create or replace function public.leave_workshop(p_workshop_id uuid) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_role text;
begin
  perform private.require_arg('p_workshop_id', p_workshop_id);
  perform 1 from public.organizations where id = p_workshop_id for update;
  v_role := private.workshop_role(p_workshop_id, v_uid);
  if v_role is null then
    perform private.raise_error('not_found', 'you are not a member of this workshop');
  end if;
  if v_role = 'owner' then
    perform private.raise_error('owner_must_transfer', 'transfer the ownership before leaving');
  end if;
  perform private.detach_workshop_member(p_workshop_id, v_uid);
  return jsonb_build_object('workshop_id', p_workshop_id, 'user_id', v_uid, 'removed', true);
end
$$;
revoke execute on function public.leave_workshop(uuid) from public, anon;
grant execute on function public.leave_workshop(uuid) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- transfer_workshop_ownership (transfer_ownership): to an existing member; the old owner becomes
-- a manager
-- ---------------------------------------------------------------------------------------------
create or replace function public.transfer_workshop_ownership(p_workshop_id uuid, p_new_owner_id uuid) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_role text;
begin
  perform private.require_arg('p_new_owner_id', p_new_owner_id);
  perform private.lock_workshop_for(p_workshop_id, v_uid, 'transfer_ownership');
  v_role := private.workshop_role(p_workshop_id, p_new_owner_id);
  if v_role is null then
    perform private.raise_error('not_found', 'the new owner must be a member of the workshop');
  end if;
  if v_role = 'owner' then
    perform private.raise_error('conflict', 'this member owns the workshop already');
  end if;
  update public.organization_members set role = 'manager'
  where organization_id = p_workshop_id and role = 'owner';
  update public.organization_members set role = 'owner'
  where organization_id = p_workshop_id and user_id = p_new_owner_id;
  return jsonb_build_object('workshop_id', p_workshop_id, 'owner_id', p_new_owner_id);
end
$$;
revoke execute on function public.transfer_workshop_ownership(uuid, uuid) from public, anon;
grant execute on function public.transfer_workshop_ownership(uuid, uuid) to authenticated, service_role;
-- <<< functions_sql workshops/roster.sql

-- >>> functions_sql workshops/specialists.sql sha256=8005a20dd10a143a3921224766e65c28f4c8d57d9e3402851b96556e60b9c291
-- Workshops: brand specialists, marked by the mechanic's workshop (owners and managers,
-- `mark_specialists`) or a platform admin; never by the mechanic itself. The specialist surcharge,
-- the ranking and the listing read `is_brand_specialist` and `brand_keys` (the lowercase copy of
-- `brand_specializations` kept by matching/keywords.sql).

create or replace function public.set_mechanic_specialization(
  p_mechanic_id uuid, p_is_brand_specialist boolean, p_brands text[]
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_m public.mechanics;
  v_brands text[];
begin
  perform private.require_arg('p_mechanic_id', p_mechanic_id);
  perform private.require_arg('p_is_brand_specialist', p_is_brand_specialist);
  perform private.require_arg('p_brands', p_brands);
  if array_ndims(p_brands) > 1 or array_position(p_brands, null) is not null then
    perform private.raise_error('invalid_input', 'p_brands is a list of brand names without nulls');
  end if;
  if exists (select 1 from unnest(p_brands) b where btrim(b) = '' or char_length(btrim(b)) > 30) then
    perform private.raise_error('invalid_input', 'each brand is 1 to 30 characters');
  end if;
  -- trimmed, de-duplicated case-insensitively (the first spelling is kept), in the order given
  select coalesce(array_agg(d.brand order by d.first), '{}') into v_brands
  from (select distinct on (lower(btrim(b))) btrim(b) as brand, i as first
        from unnest(p_brands) with ordinality as u(b, i)
        order by lower(btrim(b)), i) d;
  if cardinality(v_brands) > 30 then
    perform private.raise_error('invalid_input', 'at most 30 brands');
  end if;
  if p_is_brand_specialist and cardinality(v_brands) = 0 then
    perform private.raise_error('invalid_input', 'a brand specialist names at least one brand');
  end if;

  select * into v_m from public.mechanics where id = p_mechanic_id for no key update;
  if not found then
    perform private.raise_error('not_found', 'no such mechanic');
  end if;
  if not private.is_admin() then
    if p_mechanic_id = v_uid then
      perform private.raise_error('not_allowed', 'a mechanic cannot mark itself a specialist');
    end if;
    if v_m.organization_id is null
       or not private.workshop_can(v_m.organization_id, v_uid, 'mark_specialists') then
      perform private.raise_error('not_allowed', 'only the owners and managers of its workshop mark a specialist');
    end if;
  end if;

  update public.mechanics
  set is_brand_specialist = p_is_brand_specialist, brand_specializations = v_brands,
      specialization_set_by = v_uid, specialization_set_at = now()
  where id = p_mechanic_id
  returning * into v_m;
  return jsonb_build_object('mechanic_id', v_m.id, 'is_brand_specialist', v_m.is_brand_specialist,
                            'brand_specializations', to_jsonb(v_m.brand_specializations),
                            'brand_keys', to_jsonb(v_m.brand_keys));
end
$$;
revoke execute on function public.set_mechanic_specialization(uuid, boolean, text[]) from public, anon;
grant execute on function public.set_mechanic_specialization(uuid, boolean, text[]) to authenticated, service_role;

-- A brand specialist's brands carry the surcharge: the mechanic itself cannot change them (it still
-- edits them while it is no specialist). The RPC above runs as its owner, not as `authenticated`.
create or replace function private.tg_mechanics__specialist_brands() returns trigger
language plpgsql set search_path = ''
as $$
begin
  if current_user in ('authenticated', 'anon') and old.is_brand_specialist
     and new.brand_specializations is distinct from old.brand_specializations then
    perform private.raise_error('not_allowed',
      'a brand specialist''s brands are set by its workshop or an admin (set_mechanic_specialization)');
  end if;
  return new;
end
$$;
revoke execute on function private.tg_mechanics__specialist_brands() from public;
drop trigger if exists _010_specialist_brands on public.mechanics;
create trigger _010_specialist_brands before update of brand_specializations on public.mechanics
  for each row execute function private.tg_mechanics__specialist_brands();
-- <<< functions_sql workshops/specialists.sql

reset check_function_bodies;

-- functions_sql-manifest: the state of supabase/functions_sql/ after this migration
-- functions_sql-manifest core/admin.sql sha256=3ffcd3451d9f9aa0ebd9a8065c10592403dd1886d07e32da52a70c4f31ce01d0
-- functions_sql-manifest core/broadcasts.sql sha256=c93578c48e0d8c0c565a87dcb05642e2db63a0c8f168c31dee9dff2d1c798cec
-- functions_sql-manifest core/directory.sql sha256=97061e15165f3460c9f89023ee7162fa3b68d758e42d9d514665d237c6eb604d
-- functions_sql-manifest core/errors.sql sha256=3162f074770469a2c8f8cc6e582405853f74e510e71a3961234876f8a544d9d2
-- functions_sql-manifest core/helpers.sql sha256=fa1872c37c33a27b6875c41ae6e7c365f5d0a366926f2c758b43d0f067205e2e
-- functions_sql-manifest core/lifecycle.sql sha256=b1783170c8d43ebf2ade46245be38fd317ffe58a334d115034c123e35b92dc00
-- functions_sql-manifest core/rpc.sql sha256=ab9059793859f4a0aa99e39153809a125acc486aa8ba9bd6475725fc83334ffa
-- functions_sql-manifest core/sessions.sql sha256=34d1c57c543b4af7a31971a73c346d28281f718ba53fc1ae184a9f1a8bf931f1
-- functions_sql-manifest core/signup.sql sha256=c1eaadc2d934df2bed3300c53885004a45fe59fb472bdbece20a33b0f704bd17
-- functions_sql-manifest core/transitions.sql sha256=098fdf6854df746cfb9fab11e2976507138ad996dc669984166c96a30e18f979
-- functions_sql-manifest jobs/admin.sql sha256=a431c8c37cae7835a803b49b41130f31e66f3e6dc2910f9e6f350a8b69944b13
-- functions_sql-manifest jobs/emails.sql sha256=db635bd482915c74b6fcdf0a8cc48a20726515e7cdb0adf29ae02a7cf96d60ab
-- functions_sql-manifest jobs/nudges.sql sha256=2c190ede7b490ef8f2ff1cd61d1b4a4b5a7c9222e325f13f0cee406020ebb121
-- functions_sql-manifest jobs/outbox.sql sha256=2b71c342ff6ea91cdda0c0de9cb671b3d678768aabd67044c635de6c5b65ba86
-- functions_sql-manifest jobs/runs.sql sha256=22697585fd787eecd46440d55f7e68b6096ccbffae106360d2eca48014e3fd98
-- functions_sql-manifest jobs/schedules.sql sha256=7fd96d235d3fdbf1629e27457c32f256036082972cfcd47bda8dc008df14baf8
-- functions_sql-manifest jobs/sweep_requests.sql sha256=b71a7b97d2dec4579abcbd95477cd30cdcb2e1eb45123abd343bd2aaf4b2d948
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
-- functions_sql-manifest payments/stripe_events.sql sha256=19f646e133262b47e99dbe1c8ff74e408899abaee620c4a62c9b2ea91c099792
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
-- functions_sql-manifest scheduling/changes.sql sha256=aefc0baa5011c8d6243dc426251306b273c06e0e3b8cfb8fc629d5c258ae32c9
-- functions_sql-manifest scheduling/committed_time.sql sha256=ddd38c89b02e59607f7f40768eae0c22b177f351729f61bf8b9c6c5b3784f553
-- functions_sql-manifest scheduling/holds.sql sha256=80e66dfab8e5e885da721fd24e96a859f0414b15c115b629c3713175da08cd35
-- functions_sql-manifest scheduling/jobs.sql sha256=0e6312d573231b426c54900221c5b0ecbf53894ff7a9f634acf5d59fec14b64a
-- functions_sql-manifest scheduling/open_time.sql sha256=4a300a2863905f3ba4bac94f8c68b972ce223b96c2d83e3c9b53abc4b0d02805
-- functions_sql-manifest scheduling/reminders.sql sha256=025401df24f13a2de6d28c5ef71abd2134b287a87e25f0a98b395e69bc743734
-- functions_sql-manifest scheduling/rules.sql sha256=77e8204836c14debf06ee1933b26252a7fee4d3089fe7720ddf73d0adbed1af3
-- functions_sql-manifest trust/contact.sql sha256=b7992cc67d68723ea04b1986c3ee163f46210619cb7fbc5fd973b0b0f80f323c
-- functions_sql-manifest trust/delivery.sql sha256=13cf9a7795fabfc1598e9b01f993e1352becf53f8f60d52481d37361cbf191ad
-- functions_sql-manifest trust/limits.sql sha256=f8317282989aefc92e368510883453bceea024dbaaae3d9836d326ad0a5328b6
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
