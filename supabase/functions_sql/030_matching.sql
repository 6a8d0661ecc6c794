-- Matching and routing: presence, keyword extraction, ranking with explained scores, the
-- available-mechanics listing, routing of requests (preferred window → targeted offers →
-- broadcast), offer broadcasts, and the admin metrics views. Re-runnable.

-- ---------------------------------------------------------------------------------------------
-- Presence
-- ---------------------------------------------------------------------------------------------
-- online: chose to be available and heartbeat recent; busy: holds work; offline: otherwise.
create or replace function private.presence(
  p_is_available boolean, p_last_seen_at timestamptz, p_busy boolean, p_window interval, p_now timestamptz
) returns text
language sql immutable parallel safe set search_path = ''
as $$
  select case
    when p_busy then 'busy'
    when p_is_available and p_last_seen_at >= p_now - p_window then 'online'
    else 'offline' end
$$;
revoke execute on function private.presence(boolean, timestamptz, boolean, interval, timestamptz) from public;
grant execute on function private.presence(boolean, timestamptz, boolean, interval, timestamptz)
  to anon, authenticated, service_role;

drop view if exists public.mechanic_presence;
create view public.mechanic_presence with (security_invoker = true) as
select m.id as mechanic_id,
       private.presence(m.is_available, m.last_seen_at, m.id in (select private.busy_mechanic_ids()),
                        private.setting_interval('presence.online_window'), now()) as presence,
       m.last_seen_at
from public.mechanics m
where m.status = 'approved';
grant select on public.mechanic_presence to anon, authenticated, service_role;
comment on view public.mechanic_presence is 'online / busy / offline per approved mechanic (seed 001).';

-- Presence changes are broadcast on mechanics:presence (status_changed {mechanic_id, presence}).
create or replace function private.tg_mechanics__broadcast_presence() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_busy boolean := exists (select 1 from public.mechanic_commitments c
                            where c.mechanic_id = new.id and c.status = 'in_progress');
begin
  if new.is_available is distinct from old.is_available or new.status is distinct from old.status then
    perform realtime.send(
      jsonb_build_object('mechanic_id', new.id,
                         'presence', case when new.status <> 'approved' then 'offline'
                                          else private.presence(new.is_available, new.last_seen_at, v_busy,
                                                 private.setting_interval('presence.online_window'), now()) end),
      'status_changed', 'mechanics:presence', true);
  end if;
  return null;
end
$$;
drop trigger if exists _300_broadcast_presence on public.mechanics;
create trigger _300_broadcast_presence after update of is_available, status on public.mechanics
  for each row execute function private.tg_mechanics__broadcast_presence();

create or replace function private.tg_mechanic_commitments__broadcast_presence() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_mechanic public.mechanics;
begin
  if (tg_op = 'INSERT' and new.status = 'in_progress')
     or (tg_op = 'UPDATE' and (old.status = 'in_progress') <> (new.status = 'in_progress')) then
    select * into v_mechanic from public.mechanics where id = new.mechanic_id;
    perform realtime.send(
      jsonb_build_object('mechanic_id', new.mechanic_id,
                         'presence', private.presence(v_mechanic.is_available, v_mechanic.last_seen_at,
                                       new.status = 'in_progress',
                                       private.setting_interval('presence.online_window'), now())),
      'status_changed', 'mechanics:presence', true);
  end if;
  return null;
end
$$;
drop trigger if exists _300_broadcast_presence on public.mechanic_commitments;
create trigger _300_broadcast_presence after insert or update of status on public.mechanic_commitments
  for each row execute function private.tg_mechanic_commitments__broadcast_presence();

-- ---------------------------------------------------------------------------------------------
-- Keywords
-- ---------------------------------------------------------------------------------------------
create or replace function private.extract_keywords(p_text text) returns text[]
language sql stable parallel safe security definer set search_path = ''
as $$
  select coalesce(array_agg(k.keyword order by k.keyword), '{}')
  from public.automotive_keywords k
  where exists (select 1 from unnest(k.patterns) p where lower(coalesce(p_text, '')) ~ p)
$$;
revoke execute on function private.extract_keywords(text) from public;
grant execute on function private.extract_keywords(text) to authenticated, service_role;

-- A set of vocabulary keywords as bits (automotive_keywords.bit_position); unknown words add nothing.
create or replace function private.keyword_bits(p_keywords text[]) returns bit(256)
language sql stable security definer set search_path = ''
as $$
  select coalesce(bit_or((repeat('0', k.bit_position) || '1' || repeat('0', 255 - k.bit_position))::bit(256)),
                  repeat('0', 256)::bit(256))
  from public.automotive_keywords k
  where k.keyword = any (p_keywords)
$$;
revoke execute on function private.keyword_bits(text[]) from public;
grant execute on function private.keyword_bits(text[]) to service_role;

-- The vocabulary changed: recompute the mechanics' keyword bits.
create or replace function private.tg_automotive_keywords__refresh_bits() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  update public.mechanics m set keyword_bits = private.keyword_bits(m.service_keywords)
  where m.keyword_bits is distinct from private.keyword_bits(m.service_keywords);
  return null;
end
$$;
drop trigger if exists _100_refresh_bits on public.automotive_keywords;
create trigger _100_refresh_bits after insert or update or delete on public.automotive_keywords
  for each statement execute function private.tg_automotive_keywords__refresh_bits();

-- Service keywords are vocabulary words: stored lowercase, trimmed, without duplicates; brand
-- names keep their spelling and get a lowercase copy for matching.
create or replace function private.tg_mechanics__normalize_keywords() returns trigger
language plpgsql set search_path = ''
as $$
begin
  new.service_keywords := coalesce(
    (select array_agg(distinct lower(btrim(k))) from unnest(new.service_keywords) k where btrim(k) <> ''), '{}');
  new.brand_keys := coalesce(
    (select array_agg(distinct lower(btrim(b))) from unnest(new.brand_specializations) b where btrim(b) <> ''), '{}');
  new.keyword_bits := private.keyword_bits(new.service_keywords);
  return new;
end
$$;
drop trigger if exists _020_normalize_keywords on public.mechanics;
create trigger _020_normalize_keywords before insert or update of service_keywords, brand_specializations
  on public.mechanics
  for each row execute function private.tg_mechanics__normalize_keywords();

-- Eligibility hook: private.eligibility_exclusions(request, now) (supabase/functions_sql/090_eligibility.sql)
-- gathers the mechanics other domains exclude (shifts and micro caps; scheduling later).

-- ---------------------------------------------------------------------------------------------
-- Ranking (seed 004's weights, read from settings). Eligible = approved, may accept, not busy,
-- not the customer, did not decline this request, passes the eligibility hook, and for a
-- specialist request a specialist of the vehicle's make. Declines and acceptance rate never
-- lower a score.
-- ---------------------------------------------------------------------------------------------
create or replace function private.rank_mechanics(
  p_request_id uuid,
  p_limit int default null,
  p_now timestamptz default now(),
  p_exclude_offered boolean default false
) returns table (mechanic_id uuid, score int, reasons jsonb, rank int)
language plpgsql stable security definer set search_path = '' set jit = off  -- compiling costs more than it saves here
as $$
declare
  v_w jsonb := private.setting('matching.weights');
  w_online_now int := (v_w ->> 'online_now')::int;
  w_seen_30m int := (v_w ->> 'seen_30m')::int;
  w_seen_1h int := (v_w ->> 'seen_1h')::int;
  w_seen_today int := (v_w ->> 'seen_today')::int;
  w_keyword int := (v_w ->> 'keyword')::int;
  w_brand_specialist int := (v_w ->> 'brand_specialist')::int;
  w_experience_10 int := (v_w ->> 'experience_10')::int;
  w_experience_5 int := (v_w ->> 'experience_5')::int;
  w_same_fsa int := (v_w ->> 'same_fsa')::int;
  w_same_city int := (v_w ->> 'same_city')::int;
  w_rating_5 int := (v_w ->> 'rating_5')::int;
  w_rating_45 int := (v_w ->> 'rating_45')::int;
  w_rating_40 int := (v_w ->> 'rating_40')::int;
  w_rating_35 int := (v_w ->> 'rating_35')::int;
  v_window interval := private.setting_interval('presence.online_window');
  v_limit int := coalesce(p_limit, private.setting_int('matching.top_n'));
  v_req public.session_requests;
  v_city text;
  v_fsa text;
  v_make text;
  v_make_key text[];
  v_bits bit(256);
begin
  if v_limit is null or v_limit < 1 or v_limit > 1000 then
    perform private.raise_error('invalid_input', 'the limit must be between 1 and 1000');
  end if;
  select * into v_req from public.session_requests where id = p_request_id;
  if not found then
    perform private.raise_error('not_found', 'no such request');
  end if;
  v_bits := v_req.keyword_bits;
  v_make := lower(v_req.vehicle_make);
  v_make_key := array[coalesce(v_make, '')];  -- '' is never a brand key
  select lower(btrim(coalesce(p.city, i.city))), nullif(upper(left(replace(p.postal_code, ' ', ''), 3)), '')
  into v_city, v_fsa
  from public.sessions s
  left join public.profiles p on p.id = s.customer_id
  left join public.intakes i on i.id = s.intake_id
  where s.id = v_req.session_id;

  -- Sets computed once (hashed), then one pass over the mechanics computing levels and points;
  -- reasons are spelled out only for the rows returned. Keyword hits are one AND and a bit count.
  return query
  with busy as (
    select c.mechanic_id from public.mechanic_commitments c where c.status = 'in_progress'
  ),
  asked as (
    select o.mechanic_id from public.session_offers o
    where o.request_id = v_req.id and o.mechanic_id is not null and (o.status = 'declined' or p_exclude_offered)
  ),
  excluded as (
    select x from private.eligibility_exclusions(v_req.id, p_now) x where x is not null
  ),
  cand as (
    select m.id, m.rating_avg, m.completed_sessions, m.years_experience,
           case when m.is_available and m.last_seen_at >= p_now - v_window then 4
                when m.last_seen_at >= p_now - interval '30 minutes' then 3
                when m.last_seen_at >= p_now - interval '1 hour' then 2
                when m.last_seen_at >= p_now - interval '26 hours'  -- no local day starts earlier
                     and m.last_seen_at >= (date_trunc('day', p_now at time zone m.timezone) at time zone m.timezone)
                  then 1
                else 0 end as presence_level,
           bit_count(m.keyword_bits & v_bits)::int as keyword_hits,
           (m.is_brand_specialist and m.brand_keys @> v_make_key) as brand_match,
           case when m.postal_area = v_fsa then 2 when m.city_key = v_city then 1 else 0 end as location_level
    from public.mechanics m
    where m.status = 'approved' and m.can_accept_sessions and m.id <> v_req.customer_id
      and m.id not in (select b.mechanic_id from busy b)
      and m.id not in (select a.mechanic_id from asked a)
      and m.id not in (select e.x from excluded e)
  ),
  scored as (
    select c.*,
           case c.presence_level when 4 then w_online_now when 3 then w_seen_30m when 2 then w_seen_1h
                                 when 1 then w_seen_today else 0 end as p_presence,
           c.keyword_hits * w_keyword as p_keywords,
           case when c.brand_match then w_brand_specialist else 0 end as p_brand,
           case when c.years_experience >= 10 then w_experience_10
                when c.years_experience >= 5 then w_experience_5 else 0 end as p_experience,
           case c.location_level when 2 then w_same_fsa when 1 then w_same_city else 0 end as p_location,
           case when c.rating_avg >= 5.0 then w_rating_5
                when c.rating_avg >= 4.5 then w_rating_45
                when c.rating_avg >= 4.0 then w_rating_40
                when c.rating_avg >= 3.5 then w_rating_35 else 0 end as p_rating
    from cand c
    where not v_req.specialist or c.brand_match
  ),
  top as (
    select s.*, s.p_presence + s.p_keywords + s.p_brand + s.p_experience + s.p_location + s.p_rating as total
    from scored s
    order by total desc, s.rating_avg desc nulls last, s.completed_sessions desc, s.years_experience desc, s.id
    limit v_limit
  )
  select t.id, t.total,
         (select coalesce(jsonb_agg(jsonb_build_object('reason', r.reason, 'points', r.points) order by r.ord), '[]')
          from (values
            (1, case t.presence_level when 4 then 'online_now' when 3 then 'seen_within_30_minutes'
                                      when 2 then 'seen_within_1_hour' when 1 then 'seen_today' end, t.p_presence),
            (2, 'keywords_matched:' || t.keyword_hits, t.p_keywords),
            (3, 'brand_specialist:' || coalesce(v_make, ''), t.p_brand),
            (4, 'experience_years:' || t.years_experience, t.p_experience),
            (5, case t.location_level when 2 then 'same_postal_area' else 'same_city' end, t.p_location),
            (6, 'rating:' || t.rating_avg, t.p_rating)) as r(ord, reason, points)
          where r.points > 0),
         (row_number() over (order by t.total desc, t.rating_avg desc nulls last, t.completed_sessions desc,
                                      t.years_experience desc, t.id))::int
  from top t
  order by 4;
end
$$;
revoke execute on function private.rank_mechanics(uuid, int, timestamptz, boolean) from public;
grant execute on function private.rank_mechanics(uuid, int, timestamptz, boolean) to service_role;

-- Admins see the ranking of any request, with its reasons.
create or replace function public.admin_rank_request(p_request_id uuid, p_limit int default 10)
returns table (mechanic_id uuid, display_name text, score int, reasons jsonb, rank int)
language plpgsql stable security definer set search_path = ''
as $$
begin
  perform private.require_admin();
  if p_request_id is null then
    perform private.raise_error('invalid_input', 'p_request_id is required');
  end if;
  return query
  select k.mechanic_id, m.display_name, k.score, k.reasons, k.rank
  from private.rank_mechanics(p_request_id, p_limit, now()) k
  join public.mechanics m on m.id = k.mechanic_id
  order by k.rank;
end
$$;
revoke execute on function public.admin_rank_request(uuid, int) from public, anon;
grant execute on function public.admin_rank_request(uuid, int) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- Available mechanics for customers (seed 001 step 1): online first, then rating. The average
-- minutes from offer to acceptance come from real history, null when there is none.
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
begin
  perform private.require_user();
  if p_limit is null or p_limit < 1 or p_limit > 100 then
    perform private.raise_error('invalid_input', 'p_limit must be between 1 and 100');
  end if;
  if p_session_type is not null and p_session_type not in ('chat', 'video', 'diagnostic') then
    perform private.raise_error('invalid_input', 'p_session_type must be chat, video or diagnostic');
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
      and (not coalesce(p_specialist, false)
           or (m.is_brand_specialist
               and m.brand_keys @> array[lower(btrim(p_brand))]))
      and (p_city is null or m.city_key = lower(btrim(p_city)))
  ),
  page as (
    select l.* from listed l
    order by case l.presence when 'online' then 0 when 'busy' then 1 else 2 end,
             l.rating_avg desc nulls last, l.completed_sessions desc, l.id
    limit p_limit
  )
  select p.id, p.display_name, p.photo_url, p.rating_avg, p.rating_count, p.completed_sessions,
         p.years_experience, p.brand_specializations, p.is_brand_specialist, p.city, p.presence,
         (select round(avg(extract(epoch from (o.responded_at - o.offered_at)) / 60)::numeric, 1)
          from public.session_offers o
          where o.mechanic_id = p.id and o.status = 'accepted' and o.responded_at >= o.offered_at)
  from page p
  order by case p.presence when 'online' then 0 when 'busy' then 1 else 2 end,
           p.rating_avg desc nulls last, p.completed_sessions desc, p.id;
end
$$;
revoke execute on function public.available_mechanics(text, boolean, text, text, int) from public, anon;
grant execute on function public.available_mechanics(text, boolean, text, text, int) to authenticated, service_role;

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
drop trigger if exists _050_routing_defaults on public.session_requests;
create trigger _050_routing_defaults before insert or update of status on public.session_requests
  for each row execute function private.tg_session_requests__routing_defaults();

-- A decline moves the request on: the next mechanic is offered it at the next dispatch; the
-- preferred mechanic declining opens the request to everyone at once.
create or replace function private.tg_session_offers__decline_moves_on() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  update public.session_requests r
  set next_route_at = now(),
      broadcast_at = case when r.preferred_mechanic_id = new.mechanic_id and r.broadcast_at > now()
                          then now() else r.broadcast_at end
  where r.id = new.request_id and r.status in ('pending', 'unattended');
  return null;
end
$$;
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
  if tg_op = 'INSERT' and new.status = 'offered' then
    select * into v_req from public.session_requests where id = new.request_id;
    perform realtime.send(
      jsonb_build_object('request_id', v_req.id, 'session_id', v_req.session_id, 'session_type', v_req.session_type,
                         'plan_code', v_req.plan_code, 'specialist', v_req.specialist,
                         'vehicle_make', v_req.vehicle_make, 'vehicle_model', v_req.vehicle_model,
                         'vehicle_year', v_req.vehicle_year, 'concern', left(v_req.concern, 140),
                         'preferred', coalesce(v_req.preferred_mechanic_id = new.mechanic_id, false),
                         'score', new.score, 'reasons', new.reasons, 'expires_at', new.expires_at),
      'offer', 'mechanic:' || new.mechanic_id::text, true);
  elsif tg_op = 'UPDATE' and old.status = 'offered' and new.status in ('withdrawn', 'expired') then
    perform realtime.send(jsonb_build_object('request_id', new.request_id, 'reason', new.status),
                          'offer_withdrawn', 'mechanic:' || new.mechanic_id::text, true);
  end if;
  return null;
end
$$;
drop trigger if exists _300_broadcast on public.session_offers;
create trigger _300_broadcast after insert or update of status on public.session_offers
  for each row execute function private.tg_session_offers__broadcast();

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

  -- 1. The preferred mechanic's exclusive window.
  if v_req.preferred_mechanic_id is not null and p_now < v_req.broadcast_at then
    insert into public.session_offers (request_id, mechanic_id, status, reasons, offered_at, expires_at)
    values (v_req.id, v_req.preferred_mechanic_id, 'offered',
            '[{"reason": "preferred_by_customer", "points": 0}]', p_now, v_req.broadcast_at)
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
    if v_req.preferred_mechanic_id is not null then
      perform realtime.send(
        jsonb_build_object('request_id', v_req.id, 'session_id', v_req.session_id,
                           'session_type', v_req.session_type, 'plan_code', v_req.plan_code,
                           'specialist', v_req.specialist, 'vehicle_make', v_req.vehicle_make,
                           'vehicle_model', v_req.vehicle_model, 'vehicle_year', v_req.vehicle_year,
                           'concern', left(v_req.concern, 140), 'preferred_mechanic_id', v_req.preferred_mechanic_id,
                           'created_at', v_req.created_at),
        'new_request', 'mechanics:requests', true);
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
-- Admin metrics (seed 001's success metrics), by UTC day. security_invoker: rows follow RLS, so
-- admins see the whole platform.
-- ---------------------------------------------------------------------------------------------
drop view if exists public.admin_matching_daily;
create view public.admin_matching_daily with (security_invoker = true) as
select date_trunc('day', r.created_at at time zone 'UTC')::date as day,
       count(*) as requests,
       round(avg((r.preferred_mechanic_id is not null)::int)::numeric, 3) as chosen_mechanic_share,
       round((avg(extract(epoch from (r.accepted_at - r.created_at))) filter (where r.accepted_at is not null)
              / 60)::numeric, 2) as avg_minutes_to_accept,
       round((percentile_cont(0.5) within group (order by extract(epoch from (r.accepted_at - r.created_at))))
              ::numeric / 60, 2) as median_minutes_to_accept,
       round((avg(extract(epoch from (s.started_at - r.created_at))) filter (where s.started_at is not null)
              / 60)::numeric, 2) as avg_minutes_to_start,
       round(avg((exists (select 1 from public.session_events e where e.request_id = r.id
                          and e.to_status = 'unattended'))::int)::numeric, 3) as unattended_rate
from public.session_requests r
join public.sessions s on s.id = r.session_id
group by 1;
grant select on public.admin_matching_daily to authenticated, service_role;
comment on view public.admin_matching_daily is
  'Per day: requests, share with a chosen mechanic, minutes to acceptance and to start, unattended rate.';

revoke execute on function private.tg_mechanics__normalize_keywords(),
  private.tg_automotive_keywords__refresh_bits() from public;
revoke execute on function private.tg_mechanics__broadcast_presence(),
  private.tg_mechanic_commitments__broadcast_presence(), private.tg_session_requests__routing_defaults(),
  private.tg_session_offers__decline_moves_on(), private.tg_session_offers__broadcast() from public;
