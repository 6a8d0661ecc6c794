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
