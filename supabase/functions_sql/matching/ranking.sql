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
    select m.id, m.rating_score, m.rating_count, m.customers_served, m.years_experience,
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
           case when c.rating_score >= 4.75 then w_rating_5
                when c.rating_score >= 4.5 then w_rating_45
                when c.rating_score >= 4.0 then w_rating_40
                when c.rating_score >= 3.5 then w_rating_35 else 0 end as p_rating
    from cand c
    where not v_req.specialist or c.brand_match
  ),
  top as (
    select s.*, s.p_presence + s.p_keywords + s.p_brand + s.p_experience + s.p_location + s.p_rating as total
    from scored s
    order by total desc, s.rating_score desc, s.customers_served desc, s.years_experience desc, s.id
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
            (6, case when t.rating_count > 0 then 'rating:' else 'rating_prior:' end || to_char(t.rating_score, 'FM0.00'),
             t.p_rating)) as r(ord, reason, points)
          where r.points > 0),
         (row_number() over (order by t.total desc, t.rating_score desc, t.customers_served desc,
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
