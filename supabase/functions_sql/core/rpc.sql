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
  -- The request's row first, then the offer (whose trigger updates the request again): the order
  -- accept_request and routing take them in. Touching the offer first deadlocked with an accept of
  -- the same request (the accept holds the request and waits for the offers it withdraws).
  select status into v_status from public.session_requests where id = p_request_id for no key update;
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
