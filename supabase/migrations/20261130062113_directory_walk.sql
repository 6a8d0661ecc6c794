-- directory_walk: supabase/functions_sql/ as of this migration, written by `autodoctor db commit`.
-- Whole files, re-runnable, in path order; then the drops of what they no longer define.
-- Edit the files in supabase/functions_sql/, never this migration (see docs/migrations.md).
set check_function_bodies = off;

-- >>> functions_sql core/directory.sql sha256=c6580df89ca816d46c7baa4b713d76b69f9ba5f6479421e7965160f8db061495
-- The public mechanic directory.

-- ---------------------------------------------------------------------------------------------
-- Views
-- ---------------------------------------------------------------------------------------------
-- The public mechanic directory: approved mechanics, no contact or payout details. Clients order it
-- as the listings do: rating_score (the Bayesian rating) desc, then customers_served desc.
create or replace view public.mechanic_directory with (security_invoker = true) as
select m.id, m.display_name, m.photo_url, m.bio, m.years_experience, m.specialties, m.brand_specializations,
       m.is_brand_specialist, m.service_keywords, m.city, m.country, m.timezone, m.mechanic_type,
       m.rating_avg, m.rating_count, m.completed_sessions, m.is_available, m.last_seen_at,
       m.rating_score, m.customers_served
from public.mechanics m
where m.status = 'approved';
grant select on public.mechanic_directory to anon, authenticated, service_role;
comment on view public.mechanic_directory is 'Approved mechanics as customers (and anon) may see them.';

-- ---------------------------------------------------------------------------------------------
-- Walking the directory order
-- ---------------------------------------------------------------------------------------------
-- A search that wants the first N mechanics of the directory order who pass its rules
-- (mechanics_free_at, available_mechanics) walks that order and stops at N, instead of checking
-- every mechanic of the marketplace and sorting: a cursor over the ids of the mechanics who take
-- sessions, in directory order (rating_score desc, customers_served desc, id), read in batches that
-- the caller checks set-based. Two queries, so that each has its index (the marketplace's, or one
-- city's).
create or replace function private.directory_cursor(p_city text) returns refcursor
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_cur refcursor;
  v_city text := lower(btrim(p_city));
begin
  if v_city is null then
    open v_cur for  -- mechanics_directory_order_idx
      select m.id from public.mechanics m
      where m.status = 'approved' and m.can_accept_sessions
      order by m.rating_score desc, m.customers_served desc, m.id;
  else
    open v_cur for  -- mechanics_city_directory_order_idx
      select m.id from public.mechanics m
      where m.city_key = v_city and m.status = 'approved' and m.can_accept_sessions
      order by m.rating_score desc, m.customers_served desc, m.id;
  end if;
  return v_cur;
end
$$;
revoke execute on function private.directory_cursor(text) from public;
grant execute on function private.directory_cursor(text) to service_role;

-- The next `p_size` ids of a directory cursor (fewer at its end, none after it), in order.
create or replace function private.directory_batch(p_cur refcursor, p_size int) returns uuid[]
language plpgsql security definer set search_path = ''
as $$
declare
  v_id uuid;
  v_batch uuid[] := '{}';
begin
  for i in 1 .. p_size loop
    fetch p_cur into v_id;
    exit when not found;
    v_batch := v_batch || v_id;
  end loop;
  return v_batch;
end
$$;
revoke execute on function private.directory_batch(refcursor, int) from public;
grant execute on function private.directory_batch(refcursor, int) to service_role;
-- <<< functions_sql core/directory.sql

-- >>> functions_sql matching/listing.sql sha256=1e2680106a7b43696e9717d5765287f32abdd8d775e7a063ce52bc0255c5f5a8
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
  v_brand text[] := array[lower(btrim(p_brand))];
  v_cur refcursor;
  v_batch uuid[];
  v_size int;
  v_left int;
  v_found int;
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
  -- The directory order walked in batches until the page is full (core/directory.sql): the work
  -- follows the page, not the marketplace, when mechanics are online; with few online it reads
  -- every candidate once, as one query over all of them would.
  v_size := greatest(4 * p_limit, 32);
  v_left := p_limit;
  v_cur := private.directory_cursor(p_city);
  loop
    v_batch := private.directory_batch(v_cur, v_size);
    exit when cardinality(v_batch) = 0;
    return query
    select m.id, m.display_name, m.photo_url, m.rating_avg, m.rating_count, m.completed_sessions,
           m.years_experience, m.brand_specializations, m.is_brand_specialist, m.city, 'online'::text,
           (select round(avg(extract(epoch from (o.responded_at - o.offered_at)) / 60)::numeric, 1)
            from public.session_offers o
            where o.mechanic_id = m.id and o.status = 'accepted' and o.responded_at >= o.offered_at)
    from unnest(v_batch) with ordinality as b(id, ord)
    join public.mechanics m on m.id = b.id
    where case  -- in this order, cheapest first (a case is evaluated in order; an `and` is not)
            when not (m.is_available and m.last_seen_at >= now() - v_window) then false  -- not online
            when exists (select 1 from public.mechanic_commitments c
                         where c.mechanic_id = m.id and c.status = 'in_progress') then false  -- busy
            when coalesce(p_specialist, false) and not (m.is_brand_specialist and m.brand_keys @> v_brand) then false
            when exists (select 1 from public.mechanic_time_off t where t.mechanic_id = m.id and t.during @> now())
              then false
            when p_session_type is null then true
            else (private.micro_refusal(m, p_session_type = 'micro',
                                        case when p_session_type = 'micro' then v_micro_minutes else 0 end,
                                        now())).reason is null
          end
    order by b.ord
    limit v_left;
    get diagnostics v_found = row_count;
    v_left := v_left - v_found;
    exit when v_left <= 0 or cardinality(v_batch) < v_size;
    v_size := least(v_size * 2, 1024);
  end loop;
  close v_cur;
end
$$;
revoke execute on function public.available_mechanics(text, boolean, text, text, int) from public, anon;
grant execute on function public.available_mechanics(text, boolean, text, text, int) to authenticated, service_role;
-- <<< functions_sql matching/listing.sql

-- >>> functions_sql scheduling/open_time.sql sha256=34630099e08c42e19a6cb1a2684502f9298a5abc0f9895be56e2cab6eecd713a
-- Scheduling: open time, the one source of truth for when a mechanic may be booked, computed
-- set-based from local wall-clock blocks converted per date with `at time zone` (DST-correct).

-- ---------------------------------------------------------------------------------------------
-- Open time: the one source of truth for "when may this mechanic be booked"
-- ---------------------------------------------------------------------------------------------
-- (jit = off on these three: their row estimates cross jit_above_cost, and on servers built with
-- LLVM compiling the plan took ~650 ms of a query that runs in a few ms. They are PL/pgSQL with
-- plan_cache_mode = force_generic_plan: each query is planned once per session, not per call —
-- PostgreSQL 15 planned a SQL function's body on every call, ~1-3 ms, more than the work — and
-- the queries are written so that the generic plan is the good one: no `p_x is null or col =
-- p_x` filters that need the value to pick an index, per-date index lookups (`offset 0`
-- laterals) instead of hashing every mechanic's blocks, no join back to a CTE whose row count
-- the planner cannot know. bench/bench_scheduling.py measured the difference.)
-- Open ranges of the mechanics `p_mechanic_ids` (those approved and taking bookings) meeting
-- [p_from, p_to), with the price multiplier of each. By mechanic type:
-- virtual_only → its own blocks; independent_workshop → its blocks ∩ its workshop's hours;
-- workshop_affiliated → the workshop's hours (multiplier 1). Own blocks come from the weekly
-- table unless the local date has an override (which then replaces them); the same for a
-- workshop. Each local date is converted on its own with `at time zone`, so DST days get their
-- real hours (a time inside the spring-forward gap moves forward; a fall-back time takes its
-- first instance). Time off, bookings and notice are not subtracted here. Callers pass one
-- mechanic (slots, holds) or a small batch (free_at walks the directory order in batches), never
-- the whole marketplace: the work is per mechanic.
drop function if exists private.open_ranges(uuid, timestamptz, timestamptz);
create or replace function private.open_ranges(p_mechanic_ids uuid[], p_from timestamptz, p_to timestamptz)
returns table (mechanic_id uuid, r tstzrange, multiplier numeric)
language plpgsql stable security definer set search_path = '' set jit = off
  set plan_cache_mode = force_generic_plan
as $$
#variable_conflict use_column
begin
  -- PL/pgSQL, not SQL: the plan is cached per session (PostgreSQL 15 re-planned a SQL function's
  -- query on every call, ~1-3 ms). One generic plan serves one mechanic and a batch alike: index
  -- lookups by id, then per local date.
  return query
  with m as (
    select mm.id, mm.timezone as tz, mm.mechanic_type as mtype, mm.organization_id as org,
           coalesce(o.timezone, mm.timezone) as wtz
    from unnest(p_mechanic_ids) as x(id)  -- drives the plan: a primary-key lookup per id
    join public.mechanics mm on mm.id = x.id
    left join public.organizations o on o.id = mm.organization_id
    where mm.status = 'approved' and mm.can_accept_sessions
      and (mm.mechanic_type = 'virtual_only' or mm.organization_id is not null)
  ),
  -- local dates (in the mechanic's zone) that can meet the range
  mdays as (
    select m.id, m.tz, m.mtype, m.org, d::date as d
    from m cross join lateral generate_series((p_from at time zone m.tz)::date - 1,
                                              (p_to at time zone m.tz)::date, interval '1 day') d
    where m.mtype <> 'workshop_affiliated'
  ),
  own as (
    select md.id, md.mtype, md.org, tstzrange(case when (((((md.d + o.start_time) at time zone md.tz)) - interval '1 hour') at time zone md.tz) = (md.d + o.start_time) then ((md.d + o.start_time) at time zone md.tz) - interval '1 hour' when (((((md.d + o.start_time) at time zone md.tz)) - interval '30 minutes') at time zone md.tz) = (md.d + o.start_time) then ((md.d + o.start_time) at time zone md.tz) - interval '30 minutes' else ((md.d + o.start_time) at time zone md.tz) end, (md.d + o.end_time) at time zone md.tz) as r,
           o.price_multiplier as mult
    from mdays md join public.availability_overrides o on o.mechanic_id = md.id and o.on_date = md.d and o.is_available
    union all
    select md.id, md.mtype, md.org, tstzrange(case when (((((md.d + b.start_time) at time zone md.tz)) - interval '1 hour') at time zone md.tz) = (md.d + b.start_time) then ((md.d + b.start_time) at time zone md.tz) - interval '1 hour' when (((((md.d + b.start_time) at time zone md.tz)) - interval '30 minutes') at time zone md.tz) = (md.d + b.start_time) then ((md.d + b.start_time) at time zone md.tz) - interval '30 minutes' else ((md.d + b.start_time) at time zone md.tz) end, (md.d + b.end_time) at time zone md.tz),
           b.price_multiplier
    from mdays md cross join lateral (  -- offset 0: an index lookup per local date, never a scan of all blocks
      select wb.start_time, wb.end_time, wb.price_multiplier from public.mechanic_weekly_availability wb
      where wb.mechanic_id = md.id and wb.day_of_week = extract(dow from md.d)::int offset 0) b
    where not exists (select 1 from public.availability_overrides o where o.mechanic_id = md.id and o.on_date = md.d)
  ),
  orgs as (select distinct m.org, m.wtz from m where m.mtype <> 'virtual_only'),
  wdays as (
    select g.org, g.wtz, d::date as d
    from orgs g cross join lateral generate_series((p_from at time zone g.wtz)::date - 1,
                                                   (p_to at time zone g.wtz)::date, interval '1 day') d
  ),
  wranges as (
    select w.org, tstzrange(case when (((((w.d + o.start_time) at time zone w.wtz)) - interval '1 hour') at time zone w.wtz) = (w.d + o.start_time) then ((w.d + o.start_time) at time zone w.wtz) - interval '1 hour' when (((((w.d + o.start_time) at time zone w.wtz)) - interval '30 minutes') at time zone w.wtz) = (w.d + o.start_time) then ((w.d + o.start_time) at time zone w.wtz) - interval '30 minutes' else ((w.d + o.start_time) at time zone w.wtz) end, (w.d + o.end_time) at time zone w.wtz) as r
    from wdays w join public.availability_overrides o on o.organization_id = w.org and o.on_date = w.d and o.is_available
    union all
    select w.org, tstzrange(case when (((((w.d + h.open_time) at time zone w.wtz)) - interval '1 hour') at time zone w.wtz) = (w.d + h.open_time) then ((w.d + h.open_time) at time zone w.wtz) - interval '1 hour' when (((((w.d + h.open_time) at time zone w.wtz)) - interval '30 minutes') at time zone w.wtz) = (w.d + h.open_time) then ((w.d + h.open_time) at time zone w.wtz) - interval '30 minutes' else ((w.d + h.open_time) at time zone w.wtz) end,
                            (w.d + coalesce(h.break_start, h.close_time)) at time zone w.wtz)
    from wdays w join public.workshop_hours h on h.organization_id = w.org and h.day_of_week = extract(dow from w.d)::int
    where h.is_open
      and not exists (select 1 from public.availability_overrides o where o.organization_id = w.org and o.on_date = w.d)
    union all
    select w.org, tstzrange(case when (((((w.d + h.break_end) at time zone w.wtz)) - interval '1 hour') at time zone w.wtz) = (w.d + h.break_end) then ((w.d + h.break_end) at time zone w.wtz) - interval '1 hour' when (((((w.d + h.break_end) at time zone w.wtz)) - interval '30 minutes') at time zone w.wtz) = (w.d + h.break_end) then ((w.d + h.break_end) at time zone w.wtz) - interval '30 minutes' else ((w.d + h.break_end) at time zone w.wtz) end, (w.d + h.close_time) at time zone w.wtz)
    from wdays w join public.workshop_hours h on h.organization_id = w.org and h.day_of_week = extract(dow from w.d)::int
    where h.is_open and h.break_end is not null
      and not exists (select 1 from public.availability_overrides o where o.organization_id = w.org and o.on_date = w.d)
  ),
  ws as (select w.org, range_agg(w.r) as mr from wranges w where not isempty(w.r) group by w.org)
  select own.id, own.r, own.mult
  from own
  where own.mtype = 'virtual_only' and own.r && tstzrange(p_from, p_to)
  union all
  select own.id, x.r, own.mult
  from own join ws on ws.org = own.org
  cross join lateral unnest(multirange(own.r) * ws.mr) as x(r)
  where own.mtype = 'independent_workshop' and x.r && tstzrange(p_from, p_to)
  union all
  select m.id, x.r, 1.0
  from m join ws on ws.org = m.org
  cross join lateral unnest(ws.mr) as x(r)
  where m.mtype = 'workshop_affiliated' and x.r && tstzrange(p_from, p_to);
end
$$;
revoke execute on function private.open_ranges(uuid[], timestamptz, timestamptz) from public;
grant execute on function private.open_ranges(uuid[], timestamptz, timestamptz) to service_role;

-- Free slots of one mechanic for plan `p_plan_code` in [p_from, p_to): open ranges minus time
-- off and committed time (widened by the buffer before, as the stored ranges are after), clamped
-- to [now + notice, now + max advance), cut on the step from each block's start; a local day
-- that already has max_sessions_per_day bookings offers nothing. Price = plan price × multiplier.
create or replace function private.slots(
  p_mechanic_id uuid, p_from timestamptz, p_to timestamptz, p_plan_code text, p_now timestamptz default now()
) returns table (slot_start timestamptz, slot_end timestamptz, price_cents int)
language plpgsql stable security definer set search_path = '' set jit = off
  set plan_cache_mode = force_generic_plan
as $$
#variable_conflict use_column
declare
  v_tz text;
  v_dur interval;
  v_plan_price int;
  v_rules record;
  v_lo timestamptz;
  v_hi timestamptz;
begin
  -- PL/pgSQL with scalars first (rules and settings read once), then one cached query over this
  -- mechanic's rows only: PostgreSQL 15 re-planned the SQL version on every call.
  select mm.timezone, make_interval(mins => p.minutes), p.price_cents into v_tz, v_dur, v_plan_price
  from public.mechanics mm join public.service_plans p on p.code = p_plan_code and p.active
  where mm.id = p_mechanic_id;
  if not found then
    return;
  end if;
  select * into v_rules from private.booking_rules_for(p_mechanic_id);
  if not v_rules.instant then
    return;
  end if;
  v_lo := greatest(p_from, p_now + v_rules.min_notice);
  v_hi := least(p_to, p_now + v_rules.max_advance);
  if not (v_lo < v_hi) then
    return;
  end if;
  return query
  with busy as (
    select coalesce(range_agg(b.r), '{}'::tstzmultirange) as mr
    from (
      select tstzrange(lower(c.during) - v_rules.buffer, upper(c.during)) as r
      from public.mechanic_commitments c
      where c.mechanic_id = p_mechanic_id
        and (c.status in ('confirmed', 'in_progress') or (c.status = 'held' and c.expires_at > p_now))
        and c.during && tstzrange(v_lo - v_rules.buffer, v_hi + v_dur + v_rules.buffer)
      union all
      select t.during from public.mechanic_time_off t
      where t.mechanic_id = p_mechanic_id and t.during && tstzrange(v_lo, v_hi)
    ) b
  ),
  full_days as (
    select (lower(c.during) at time zone v_tz)::date as d
    from public.mechanic_commitments c
    where c.mechanic_id = p_mechanic_id and c.kind in ('hold', 'scheduled')
      and (c.status = 'confirmed' or (c.status = 'held' and c.expires_at > p_now))
      and c.during && tstzrange(v_lo - interval '2 days', v_hi + interval '2 days')
    group by 1
    having count(*) >= v_rules.max_per_day
  )
  -- A start on a block's grid is free when [s, s + plan) lies inside the block and the window
  -- and touches no busy range: one binary search in the busy multirange per candidate instead
  -- of a multirange difference per block (the same answer: a busy-free interval inside
  -- block ∩ window lies inside one piece of (block ∩ window) − busy).
  select distinct on (s) s, s + v_dur, round(v_plan_price * o.multiplier)::int
  from private.open_ranges(array[p_mechanic_id], v_lo, v_hi + v_dur) o
  cross join lateral generate_series(lower(o.r), upper(o.r) - v_dur, v_rules.step) s
  cross join busy
  where s >= v_lo and s + v_dur <= v_hi
    and not (busy.mr && tstzrange(s, s + v_dur))
    and (s at time zone v_tz)::date not in (select f.d from full_days f)
  order by s, o.multiplier desc;
end
$$;
revoke execute on function private.slots(uuid, timestamptz, timestamptz, text, timestamptz) from public;
grant execute on function private.slots(uuid, timestamptz, timestamptz, text, timestamptz) to service_role;

-- Mechanics who can take a session of plan `p_plan_code` starting at `p_start`, best first: the
-- session fits inside one open range on the step grid of that range, meets notice and window,
-- touches no time off, no committed time (with the buffer either side) and no full day. Ordered as
-- the directory orders (the Bayesian rating, then customers served, then id).
-- The work scales with the answer, not with the marketplace: mechanics are walked in that order
-- (private.directory_cursor: one city's when p_city is given) in batches that double, each batch
-- checked set-based, until p_limit are found. Most mechanics are free at a usual time, so
-- one batch is the common case; a time when few are free costs at most about one pass over the
-- candidates (the batches grow geometrically).
create or replace function private.free_at(
  p_start timestamptz, p_plan_code text, p_city text, p_brand text, p_limit int, p_now timestamptz default now()
) returns table (mechanic_id uuid, price_cents int, multiplier numeric)
language plpgsql stable security definer set search_path = '' set jit = off
  set plan_cache_mode = force_generic_plan
as $$
#variable_conflict use_column
declare
  v_dur interval;
  v_price int;
  -- the scheduling.* defaults, read once (booking_rules_for per candidate read six settings per row)
  v_buffer interval := private.setting_interval('scheduling.buffer');
  v_min_notice interval := private.setting_interval('scheduling.min_notice');
  v_max_advance interval := private.setting_interval('scheduling.max_advance');
  v_step interval := private.setting_interval('scheduling.slot_step');
  v_max_per_day int := private.setting_int('scheduling.max_sessions_per_day');
  v_instant boolean := private.setting_bool('scheduling.instant_booking');
  v_brand text[] := array[lower(btrim(coalesce(p_brand, '')))];
  v_cur refcursor;
  v_batch uuid[];
  v_size int := greatest(2 * p_limit, 16);
  v_left int := p_limit;
  v_found int;
begin
  select make_interval(mins => sp.minutes), sp.price_cents into v_dur, v_price
  from public.service_plans sp where sp.code = p_plan_code and sp.active;
  if not found or p_limit is null or p_limit < 1 then
    return;
  end if;
  v_cur := private.directory_cursor(p_city);
  loop
    v_batch := private.directory_batch(v_cur, v_size);
    exit when cardinality(v_batch) = 0;
    return query
    with cand as (
      select o.mechanic_id, o.r, o.multiplier
      from private.open_ranges(v_batch, p_start, p_start + v_dur) o
      where o.r @> tstzrange(p_start, p_start + v_dur)
    ),
    ok as (
      select c.mechanic_id, round(v_price * c.multiplier)::int as price_cents, c.multiplier,
             coalesce(make_interval(mins => rl.buffer_minutes), v_buffer) as buffer,
             coalesce(rl.max_sessions_per_day, v_max_per_day) as max_per_day,
             m.timezone, b.ord
      from cand c
      join unnest(v_batch) with ordinality as b(id, ord) on b.id = c.mechanic_id
      join public.mechanics m on m.id = c.mechanic_id
      left join public.booking_rules rl on rl.mechanic_id = c.mechanic_id
      where (p_brand is null or m.brand_keys @> v_brand)
        and coalesce(rl.instant_booking, v_instant)
        and p_start >= p_now + coalesce(make_interval(mins => rl.min_notice_minutes), v_min_notice)
        and p_start < p_now + coalesce(make_interval(days => rl.max_advance_days), v_max_advance)
        and mod(extract(epoch from (p_start - lower(c.r)))::numeric,
                extract(epoch from coalesce(make_interval(mins => rl.slot_step_minutes), v_step))::numeric) = 0
    )
    select ok.mechanic_id, ok.price_cents, ok.multiplier
    from ok
    where not exists (select 1 from public.mechanic_commitments c
                      where c.mechanic_id = ok.mechanic_id
                        and (c.status in ('confirmed', 'in_progress') or (c.status = 'held' and c.expires_at > p_now))
                        and c.during && tstzrange(p_start - ok.buffer, p_start + v_dur + ok.buffer))
      and not exists (select 1 from public.mechanic_time_off t
                      where t.mechanic_id = ok.mechanic_id and t.during && tstzrange(p_start, p_start + v_dur))
      and (select count(*) from public.mechanic_commitments c
           where c.mechanic_id = ok.mechanic_id and c.kind in ('hold', 'scheduled')
             and (c.status = 'confirmed' or (c.status = 'held' and c.expires_at > p_now))
             and (lower(c.during) at time zone ok.timezone)::date = (p_start at time zone ok.timezone)::date
             and c.during && tstzrange(p_start - interval '2 days', p_start + interval '2 days')) < ok.max_per_day
    order by ok.ord
    limit v_left;
    get diagnostics v_found = row_count;
    v_left := v_left - v_found;
    exit when v_left <= 0 or cardinality(v_batch) < v_size;
    v_size := least(v_size * 2, 1024);
  end loop;
  close v_cur;
end
$$;
revoke execute on function private.free_at(timestamptz, text, text, text, int, timestamptz) from public;
grant execute on function private.free_at(timestamptz, text, text, text, int, timestamptz) to service_role;
-- <<< functions_sql scheduling/open_time.sql

reset check_function_bodies;

-- functions_sql-manifest: the state of supabase/functions_sql/ after this migration
-- functions_sql-manifest core/admin.sql sha256=f3423df9a7c70656d684d4eacda964fa8cd797385cbe652f801bc08abd55edc0
-- functions_sql-manifest core/broadcasts.sql sha256=c93578c48e0d8c0c565a87dcb05642e2db63a0c8f168c31dee9dff2d1c798cec
-- functions_sql-manifest core/directory.sql sha256=c6580df89ca816d46c7baa4b713d76b69f9ba5f6479421e7965160f8db061495
-- functions_sql-manifest core/errors.sql sha256=3162f074770469a2c8f8cc6e582405853f74e510e71a3961234876f8a544d9d2
-- functions_sql-manifest core/helpers.sql sha256=fa1872c37c33a27b6875c41ae6e7c365f5d0a366926f2c758b43d0f067205e2e
-- functions_sql-manifest core/lifecycle.sql sha256=5f3ed2f9a8e654d5ca93bbf7edf248cd364e4ce5a123279775841ea40f774886
-- functions_sql-manifest core/rpc.sql sha256=b7d028c2ec383050171607f4dbec654b0803f556c52ca56f8e0050afb390ee47
-- functions_sql-manifest core/sessions.sql sha256=dc306360e4147de60a109be0b93dc249b6c67ff6abd0771b50bbd0a76e6ced5d
-- functions_sql-manifest core/signup.sql sha256=c1eaadc2d934df2bed3300c53885004a45fe59fb472bdbece20a33b0f704bd17
-- functions_sql-manifest core/transitions.sql sha256=05daf7ab50a29daff4b0e07fd41fbe145d0a6eab20fefab4a8108bb176a8754a
-- functions_sql-manifest jobs/admin.sql sha256=a431c8c37cae7835a803b49b41130f31e66f3e6dc2910f9e6f350a8b69944b13
-- functions_sql-manifest jobs/emails.sql sha256=b143b84726f6a930f3e53cd3b60f284b256b874ae0607350a333069d929dccb4
-- functions_sql-manifest jobs/nudges.sql sha256=133086b270ff41327c4314b308a0dd05c773f505a6d22e28d7d5b769bc5b18f0
-- functions_sql-manifest jobs/outbox.sql sha256=2b71c342ff6ea91cdda0c0de9cb671b3d678768aabd67044c635de6c5b65ba86
-- functions_sql-manifest jobs/retention.sql sha256=69a597011866200c3f8c5ccc485b31b206c94b0b60023b00f91b76ecd20ee960
-- functions_sql-manifest jobs/runs.sql sha256=22697585fd787eecd46440d55f7e68b6096ccbffae106360d2eca48014e3fd98
-- functions_sql-manifest jobs/schedules.sql sha256=0f29827750fe354e4d3aafa4224e183a932ab76143e021603707362417a70674
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
-- functions_sql-manifest matching/eligibility.sql sha256=8684a176b58836a1626509e024956f9f7b77ef548d3d49f111ec8e3128c8e6f9
-- functions_sql-manifest matching/keywords.sql sha256=152d4fe0de3480e326b93190271c153a66f37f4f4cbf3b64bcc90821769a37a6
-- functions_sql-manifest matching/listing.sql sha256=1e2680106a7b43696e9717d5765287f32abdd8d775e7a063ce52bc0255c5f5a8
-- functions_sql-manifest matching/metrics.sql sha256=16e0bfa047e423ebe70c19b3ca3e25ca809a7c0649361b46516eccb088b98145
-- functions_sql-manifest matching/presence.sql sha256=671eb0ca5ff2eabc4553ed517c548792601d1e6f93f40009f45c7a469590d434
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
-- functions_sql-manifest operations/scheduling_stats.sql sha256=b772a3a3f650581b86383104c41fc58c121d5fd9866799f5a7887998133e79b3
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
-- functions_sql-manifest privacy/export.sql sha256=734a19b7fdd193141bf0c6a577100c2acb4735b81f9f037d97b406d6976409c8
-- functions_sql-manifest reviews/prompts.sql sha256=e3c52363528fd28863d3b82dba2a77c539334fee239d433a2c08860bc8182791
-- functions_sql-manifest reviews/public_view.sql sha256=3163f057402af1cc7203ef9ca04b483045d3e1e48322d23e5b7deb6c30c03414
-- functions_sql-manifest reviews/reputation.sql sha256=94a660258d69a38250c8f5efcd36415d5d0e8347bec1a6c772634db1fe37054a
-- functions_sql-manifest reviews/reviews.sql sha256=acb29b4bdf4a2cccae60ad261d0aebd3b2c0ec8dd85824ac9060ecc5d46cad36
-- functions_sql-manifest rooms/access.sql sha256=1b63c186ad327a61c6f7c2eea4436148cd145987bec6902fa111b45b7639ae8f
-- functions_sql-manifest rooms/extensions.sql sha256=ecdb7236fec9d57e29a438797584ac830db6c0cf66795c8b03df65da3635e495
-- functions_sql-manifest rooms/livekit_events.sql sha256=cc2b9fea2937b577fdb85e91e226156f3d7dd339706f5a61c3892c359d9a4e4a
-- functions_sql-manifest rooms/timers.sql sha256=5f5346a4e0cc3d12ffb926f1f08893bc970a8444b177207bc3aa1f6f42940896
-- functions_sql-manifest scheduling/availability_rpc.sql sha256=fa16f1151e8b6ae87c87d4803aa9ca30ae76b2fc0e9eae062b18db3b80635acd
-- functions_sql-manifest scheduling/booking_rpc.sql sha256=288b0c42a20fcde3021153b8ca87419587435eb7d56dce47e8eb7b5b9b78cbed
-- functions_sql-manifest scheduling/calendar.sql sha256=6100fcc60a2a22bf1e09c2b682833fb40ba154ad5e9064b7c0bcd8c53b3a8324
-- functions_sql-manifest scheduling/changes.sql sha256=9e87d0da79c6f8a24def78eb05896b5b82b7818be3e4e503ddd3e3c46cebae77
-- functions_sql-manifest scheduling/committed_time.sql sha256=ddd38c89b02e59607f7f40768eae0c22b177f351729f61bf8b9c6c5b3784f553
-- functions_sql-manifest scheduling/holds.sql sha256=f8aee44aa98e1225386f30125690e6bad521a719e70e2eb66eb7b48647c2cb6d
-- functions_sql-manifest scheduling/jobs.sql sha256=0e6312d573231b426c54900221c5b0ecbf53894ff7a9f634acf5d59fec14b64a
-- functions_sql-manifest scheduling/open_time.sql sha256=34630099e08c42e19a6cb1a2684502f9298a5abc0f9895be56e2cab6eecd713a
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
