-- Matching: ranking mechanics for a request, with explained scores.

-- ---------------------------------------------------------------------------------------------
-- Ranking (points per reason, read from the matching.weights setting). The rating points come from
-- the Bayesian rating_score (reviews/reputation.sql), so a handful of reviews cannot outrank hundreds;
-- experience for ties is customers_served, so one customer's many sessions count once. Eligible = approved, may accept, not busy,
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
  -- points by level (level 0 earns nothing): presence 0..4, experience 0..2, location 0..2, rating 0..4
  v_presence_points int[] := array[0, w_seen_today, w_seen_1h, w_seen_30m, w_online_now];
  v_experience_points int[] := array[0, w_experience_5, w_experience_10];
  v_location_points int[] := array[0, w_same_city, w_same_fsa];
  v_rating_points int[] := array[0, w_rating_35, w_rating_40, w_rating_45, w_rating_5];
  -- presence thresholds as values: `timestamptz - interval` is not folded by the planner, so written
  -- in the query it would be computed again for every mechanic
  v_online_after timestamptz := p_now - v_window;
  v_seen_30m_after timestamptz := p_now - interval '30 minutes';
  v_seen_1h_after timestamptz := p_now - interval '1 hour';
  v_seen_26h_after timestamptz := p_now - interval '26 hours';  -- no local day starts earlier
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

  -- `levels` states each factor of a mechanic's score once. It is inlined twice: into the scan over
  -- every mechanic, which computes only the total (each factor once per mechanic), and into the
  -- lookup of the rows returned, which spells out their reasons. Exclusions (busy, declined, the
  -- eligibility hook) are hashed sets; keyword hits are one AND and a bit count.
  return query
  with levels as not materialized (
    select m.id, m.status, m.can_accept_sessions, m.rating_score, m.rating_count, m.customers_served,
           m.years_experience,
           case when m.is_available and m.last_seen_at >= v_online_after then 4
                when m.last_seen_at >= v_seen_30m_after then 3
                when m.last_seen_at >= v_seen_1h_after then 2
                when m.last_seen_at >= v_seen_26h_after
                     and m.last_seen_at >= (date_trunc('day', p_now at time zone m.timezone) at time zone m.timezone)
                  then 1
                else 0 end as presence_level,
           bit_count(m.keyword_bits & v_bits)::int as keyword_hits,
           (m.is_brand_specialist and m.brand_keys @> v_make_key) as brand_match,
           case when m.years_experience >= 10 then 2 when m.years_experience >= 5 then 1 else 0 end as experience_level,
           case when m.postal_area = v_fsa then 2 when m.city_key = v_city then 1 else 0 end as location_level,
           case when m.rating_score >= 4.75 then 4 when m.rating_score >= 4.5 then 3 when m.rating_score >= 4.0 then 2
                when m.rating_score >= 3.5 then 1 else 0 end as rating_level
    from public.mechanics m
  ),
  busy as (
    select c.mechanic_id from public.mechanic_commitments c where c.status = 'in_progress'
  ),
  asked as (
    select o.mechanic_id from public.session_offers o
    where o.request_id = v_req.id and o.mechanic_id is not null and (o.status = 'declined' or p_exclude_offered)
  ),
  excluded as (
    select x from private.eligibility_exclusions(v_req.id, p_now) x where x is not null
  ),
  top as (
    select l.id, l.rating_score, l.customers_served, l.years_experience,
           v_presence_points[l.presence_level + 1] + l.keyword_hits * w_keyword
           + case when l.brand_match then w_brand_specialist else 0 end + v_experience_points[l.experience_level + 1]
           + v_location_points[l.location_level + 1] + v_rating_points[l.rating_level + 1] as total
    from levels l
    where l.status = 'approved' and l.can_accept_sessions and l.id <> v_req.customer_id
      and l.id not in (select b.mechanic_id from busy b)
      and l.id not in (select a.mechanic_id from asked a)
      and l.id not in (select e.x from excluded e)
      and (not v_req.specialist or l.brand_match)
    order by total desc, l.rating_score desc, l.customers_served desc, l.years_experience desc, l.id
    limit v_limit
  )
  select t.id, t.total,
         (select coalesce(jsonb_agg(jsonb_build_object('reason', r.reason, 'points', r.points) order by r.ord), '[]')
          from (values
            (1, case l.presence_level when 4 then 'online_now' when 3 then 'seen_within_30_minutes'
                                      when 2 then 'seen_within_1_hour' when 1 then 'seen_today' end,
             v_presence_points[l.presence_level + 1]),
            (2, 'keywords_matched:' || l.keyword_hits, l.keyword_hits * w_keyword),
            (3, 'brand_specialist:' || coalesce(v_make, ''), case when l.brand_match then w_brand_specialist else 0 end),
            (4, 'experience_years:' || l.years_experience, v_experience_points[l.experience_level + 1]),
            (5, case l.location_level when 2 then 'same_postal_area' else 'same_city' end,
             v_location_points[l.location_level + 1]),
            (6, case when l.rating_count > 0 then 'rating:' else 'rating_prior:' end || to_char(l.rating_score, 'FM0.00'),
             v_rating_points[l.rating_level + 1])) as r(ord, reason, points)
          where r.points > 0),
         (row_number() over (order by t.total desc, t.rating_score desc, t.customers_served desc,
                                      t.years_experience desc, t.id))::int
  from top t
  join levels l on l.id = t.id
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
  perform private.require_arg('p_request_id', p_request_id);
  return query
  select k.mechanic_id, m.display_name, k.score, k.reasons, k.rank
  from private.rank_mechanics(p_request_id, p_limit, now()) k
  join public.mechanics m on m.id = k.mechanic_id
  order by k.rank;
end
$$;
revoke execute on function public.admin_rank_request(uuid, int) from public, anon;
grant execute on function public.admin_rank_request(uuid, int) to authenticated, service_role;
