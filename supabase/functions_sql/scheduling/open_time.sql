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
