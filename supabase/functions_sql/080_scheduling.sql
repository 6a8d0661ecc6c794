-- Scheduling (issue #8; docs/scheduling.md): open time computed set-based from local wall-clock
-- blocks converted per date with `at time zone` (DST-correct), free slots as multirange algebra,
-- who-is-free-at-T across all mechanics in one query, holds, bookings (free, credit or Checkout),
-- reschedule and cancel with a cut-off, reminders as delayed outbox rows, the mechanic calendar,
-- and the jobs (hold expiry, opening sessions). Every writer of committed time takes the
-- mechanic's row lock first (private.lock_mechanic). Re-runnable.

-- ---------------------------------------------------------------------------------------------
-- Rules and small helpers
-- ---------------------------------------------------------------------------------------------
-- A mechanic's effective booking rules: its own values, else the scheduling.* settings.
create or replace function private.booking_rules_for(p_mechanic_id uuid)
returns table (buffer interval, min_notice interval, max_advance interval, step interval, max_per_day int,
               instant boolean)
language plpgsql stable security definer set search_path = ''
as $$
#variable_conflict use_column
begin
  -- PL/pgSQL for its cached plan (a SQL function was planned on every call on PostgreSQL 15);
  -- a setting is read only when the mechanic has no value of its own.
  return query
  select coalesce(make_interval(mins => r.buffer_minutes), private.setting_interval('scheduling.buffer')),
         coalesce(make_interval(mins => r.min_notice_minutes), private.setting_interval('scheduling.min_notice')),
         coalesce(make_interval(days => r.max_advance_days), private.setting_interval('scheduling.max_advance')),
         coalesce(make_interval(mins => r.slot_step_minutes), private.setting_interval('scheduling.slot_step')),
         coalesce(r.max_sessions_per_day, private.setting_int('scheduling.max_sessions_per_day')),
         coalesce(r.instant_booking, private.setting_bool('scheduling.instant_booking'))
  from (select p_mechanic_id as id) x
  left join public.booking_rules r on r.mechanic_id = x.id;
end
$$;
revoke execute on function private.booking_rules_for(uuid) from public;
grant execute on function private.booking_rules_for(uuid) to service_role;

-- The per-mechanic lock every writer of committed time takes first (SCHEDULING.md).
create or replace function private.lock_mechanic(p_mechanic_id uuid) returns public.mechanics
language plpgsql security definer set search_path = ''
as $$
declare
  v_mechanic public.mechanics;
begin
  select * into v_mechanic from public.mechanics where id = p_mechanic_id for no key update;
  return v_mechanic;
end
$$;
revoke execute on function private.lock_mechanic(uuid) from public;
grant execute on function private.lock_mechanic(uuid) to service_role;

-- Whether the caller may manage mechanic `p_mechanic_id`'s schedule (itself, or its workshop's admin).
create or replace function private.can_manage_mechanic(p_mechanic_id uuid) returns boolean
language sql stable security definer set search_path = ''
as $$
  select p_mechanic_id is not null and (
    p_mechanic_id = (select auth.uid())
    or p_mechanic_id in (select private.my_workshop_mechanic_ids())
    or (select private.is_admin()))
$$;
revoke execute on function private.can_manage_mechanic(uuid) from public;
grant execute on function private.can_manage_mechanic(uuid) to authenticated, service_role;

-- "HH:MM" (or "24:00" when p_allow_24) → time; anything else is invalid_input.
create or replace function private.parse_clock(p_name text, p_value text, p_allow_24 boolean default true)
returns time
language plpgsql immutable set search_path = ''
as $$
begin
  if p_value is null or p_value !~ '^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$' or (p_value = '24:00' and not p_allow_24) then
    perform private.raise_error('invalid_input', format('%s must be HH:MM', p_name));
  end if;
  return p_value::time;
end
$$;
revoke execute on function private.parse_clock(text, text, boolean) from public;
grant execute on function private.parse_clock(text, text, boolean) to authenticated, service_role;

-- The first instant at which the wall clock in zone `p_zone` reads `p_day p_time` (open_ranges
-- inlines the same expression: a function call per block row cost more than the whole query). PostgreSQL
-- maps an ambiguous fall-back time to its later (standard-time) instance; a block's start takes
-- the earlier one, so "01:00-03:00" on a fall-back night covers all three real hours. (A start
-- inside a spring-forward gap moves forward by the gap, as PostgreSQL does.) A block's end uses
-- plain `at time zone` (the later instance): a block is every instant whose wall clock reads
-- inside it.
create or replace function private.local_start(p_day date, p_time time, p_zone text) returns timestamptz
language sql immutable parallel safe set search_path = ''
as $$
  select coalesce(
    (select c from unnest(array[t - interval '1 hour', t - interval '30 minutes']) c
     where (c at time zone p_zone) = p_day + p_time order by c limit 1), t)
  from (select (p_day + p_time) at time zone p_zone as t) x
$$;
revoke execute on function private.local_start(date, time, text) from public;
grant execute on function private.local_start(date, time, text) to authenticated, service_role;

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
-- Open ranges of mechanic `p_mechanic_id` (null: every approved mechanic that takes bookings)
-- meeting [p_from, p_to), with the price multiplier of each. By mechanic type (seed 004 §2.3):
-- virtual_only → its own blocks; independent_workshop → its blocks ∩ its workshop's hours;
-- workshop_affiliated → the workshop's hours (multiplier 1). Own blocks come from the weekly
-- table unless the local date has an override (which then replaces them); the same for a
-- workshop. Each local date is converted on its own with `at time zone`, so DST days get their
-- real hours (a time inside the spring-forward gap moves forward; a fall-back time takes its
-- first instance). Time off, bookings and notice are not subtracted here.
create or replace function private.open_ranges(p_mechanic_id uuid, p_from timestamptz, p_to timestamptz)
returns table (mechanic_id uuid, r tstzrange, multiplier numeric)
language plpgsql stable security definer set search_path = '' set jit = off
  set plan_cache_mode = force_generic_plan
as $$
#variable_conflict use_column
begin
  -- PL/pgSQL, not SQL: the plan is cached per session (PostgreSQL 15 re-planned a SQL function's
  -- query on every call, ~1-3 ms). The query is written to have one good generic plan for both
  -- callers: one mechanic (the first branch of m, index lookups per local date) and every
  -- mechanic (the second branch, gated by `p_mechanic_id is null`); the final joins no longer
  -- go back to m, whose row estimate differs by 1,000x between the two.
  return query
  with m as (
    select mm.id, mm.timezone as tz, mm.mechanic_type as mtype, mm.organization_id as org,
           coalesce(o.timezone, mm.timezone) as wtz
    from public.mechanics mm
    left join public.organizations o on o.id = mm.organization_id
    where mm.id = p_mechanic_id
      and mm.status = 'approved' and mm.can_accept_sessions
      and (mm.mechanic_type = 'virtual_only' or mm.organization_id is not null)
    union all
    select mm.id, mm.timezone, mm.mechanic_type, mm.organization_id, coalesce(o.timezone, mm.timezone)
    from public.mechanics mm
    left join public.organizations o on o.id = mm.organization_id
    where p_mechanic_id is null
      and mm.status = 'approved' and mm.can_accept_sessions
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
revoke execute on function private.open_ranges(uuid, timestamptz, timestamptz) from public;
grant execute on function private.open_ranges(uuid, timestamptz, timestamptz) to service_role;

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
  from private.open_ranges(p_mechanic_id, v_lo, v_hi + v_dur) o
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

-- Mechanics who can take a session of plan `p_plan_code` starting at `p_start`, in one set-based
-- query over all mechanics (never a loop): the session fits inside one open range on the step
-- grid of that range, meets notice and window, touches no time off, no committed time (with
-- the buffer either side) and no full day. Ordered as the directory orders (rating, experience).
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
begin
  select make_interval(mins => sp.minutes), sp.price_cents into v_dur, v_price
  from public.service_plans sp where sp.code = p_plan_code and sp.active;
  if not found then
    return;
  end if;
  return query
  with cand as (
    select o.mechanic_id, o.r, o.multiplier
    from private.open_ranges(null, p_start, p_start + v_dur) o
    where o.r @> tstzrange(p_start, p_start + v_dur)
  ),
  ok as (
    select c.mechanic_id, round(v_price * c.multiplier)::int as price_cents, c.multiplier,
           coalesce(make_interval(mins => rl.buffer_minutes), v_buffer) as buffer,
           coalesce(rl.max_sessions_per_day, v_max_per_day) as max_per_day,
           m.timezone, m.rating_avg, m.completed_sessions
    from cand c
    join public.mechanics m on m.id = c.mechanic_id
    left join public.booking_rules rl on rl.mechanic_id = c.mechanic_id
    where coalesce(rl.instant_booking, v_instant)
      and p_start >= p_now + coalesce(make_interval(mins => rl.min_notice_minutes), v_min_notice)
      and p_start < p_now + coalesce(make_interval(days => rl.max_advance_days), v_max_advance)
      and mod(extract(epoch from (p_start - lower(c.r)))::numeric,
              extract(epoch from coalesce(make_interval(mins => rl.slot_step_minutes), v_step))::numeric) = 0
      and (p_city is null or lower(m.city) = lower(btrim(p_city)))
      and (p_brand is null or exists (select 1 from unnest(m.brand_specializations) b where lower(b) = lower(p_brand)))
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
  order by ok.rating_avg desc nulls last, ok.completed_sessions desc, ok.mechanic_id
  limit p_limit;
end
$$;
revoke execute on function private.free_at(timestamptz, text, text, text, int, timestamptz) from public;
grant execute on function private.free_at(timestamptz, text, text, text, int, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Committed time: the explicit overlap check (the exclusion constraint stays the backstop)
-- ---------------------------------------------------------------------------------------------
-- Writers hold the mechanic's row lock, so this check is exact: on-demand work that would run
-- into a held or booked session fails with schedule_conflict (AD051); a hold or booking over
-- any committed time fails with slot_taken (AD050) — never a raw exclusion violation.
create or replace function private.tg_mechanic_commitments__check_free() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if new.status in ('held', 'confirmed', 'in_progress') and exists (
       select 1 from public.mechanic_commitments c
       where c.mechanic_id = new.mechanic_id and c.id <> new.id
         and c.status in ('held', 'confirmed', 'in_progress') and c.during && new.during) then
    if new.kind = 'on_demand' then
      perform private.raise_error('schedule_conflict',
        'this session would run into a booked session of yours: finish it before the booking starts');
    end if;
    perform private.raise_error('slot_taken', 'the time is no longer free');
  end if;
  return new;
end
$$;
drop trigger if exists _150_check_free on public.mechanic_commitments;
create trigger _150_check_free before insert or update of status, during on public.mechanic_commitments
  for each row execute function private.tg_mechanic_commitments__check_free();
revoke execute on function private.tg_mechanic_commitments__check_free() from public;

-- ---------------------------------------------------------------------------------------------
-- Reminders: delayed outbox rows keyed (session, kind[, sequence]); moved on reschedule, dropped
-- on cancellation. The "starting" notice uses the same key as private.send_starting_notices, and
-- a booked session is marked (starting_notice_at) so that sweep leaves it to this row.
-- ---------------------------------------------------------------------------------------------
create or replace function private.drop_reminders(p_session_id uuid) returns int
language sql security definer set search_path = ''
as $$
  with d as (
    delete from private.outbox o
    where (o.payload ->> 'session_id') = p_session_id::text and o.kind = 'email.send' and o.status = 'pending'
      and o.payload ->> 'template' in ('session_reminder', 'session_starting')
    returning 1)
  select count(*)::int from d
$$;

create or replace function private.schedule_reminders(p_session_id uuid, p_now timestamptz default now()) returns int
language plpgsql security definer set search_path = ''
as $$
declare
  v_s public.sessions;
  v_suffix text;
  v_lead text;
  v_user uuid;
  v_at timestamptz;
  v_n int := 0;
begin
  select * into v_s from public.sessions where id = p_session_id;
  if not found or v_s.status <> 'scheduled' or v_s.scheduled_for is null then
    return 0;
  end if;
  v_suffix := case when v_s.calendar_sequence = 0 then '' else ':s' || v_s.calendar_sequence end;
  foreach v_user in array array_remove(array[v_s.customer_id, v_s.mechanic_id], null) loop
    for v_lead in select jsonb_array_elements_text(private.setting('scheduling.reminder_leads')) loop
      v_at := v_s.scheduled_for - v_lead::interval;
      if v_at > p_now then
        perform private.enqueue('email.send',
          format('email:session_reminder:%s:%s:%s%s', v_s.id, v_user, replace(v_lead, ' ', ''), v_suffix),
          jsonb_build_object('template', 'session_reminder', 'user_id', v_user, 'session_id', v_s.id,
                             'data', jsonb_build_object('lead', v_lead)), v_at);
        v_n := v_n + 1;
      end if;
    end loop;
    v_at := greatest(v_s.scheduled_for - private.setting_interval('sessions.starting_notice'), p_now);
    perform private.enqueue('email.send', format('email:session_starting:%s:%s%s', v_s.id, v_user, v_suffix),
      jsonb_build_object('template', 'session_starting', 'user_id', v_user, 'session_id', v_s.id, 'data', '{}'::jsonb),
      v_at);
    v_n := v_n + 1;
  end loop;
  update public.sessions set starting_notice_at = coalesce(starting_notice_at, p_now) where id = v_s.id;
  return v_n;
end
$$;
revoke execute on function private.drop_reminders(uuid), private.schedule_reminders(uuid, timestamptz) from public;
grant execute on function private.drop_reminders(uuid), private.schedule_reminders(uuid, timestamptz) to service_role;

-- A booked session that is cancelled by any path: SEQUENCE +1 (the .ics becomes a cancellation),
-- its reminders go, both participants hear of it.
create or replace function private.tg_sessions__calendar_sequence() returns trigger
language plpgsql set search_path = ''
as $$
begin
  if new.status = 'cancelled' and old.status = 'scheduled' then
    new.calendar_sequence := old.calendar_sequence + 1;
  end if;
  return new;
end
$$;
drop trigger if exists _120_calendar_sequence on public.sessions;
create trigger _120_calendar_sequence before update of status on public.sessions
  for each row execute function private.tg_sessions__calendar_sequence();

create or replace function private.tg_sessions__scheduling() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if new.status = 'cancelled' and old.status = 'scheduled' then
    perform private.drop_reminders(new.id);
    perform private.enqueue_email('booking_cancelled', new.customer_id, new.id, '{}'::jsonb);
    if new.mechanic_id is not null then
      perform private.enqueue_email('booking_cancelled', new.mechanic_id, new.id, '{}'::jsonb);
    end if;
  end if;
  return null;
end
$$;
drop trigger if exists _450_scheduling on public.sessions;
create trigger _450_scheduling after update of status on public.sessions
  for each row when (old.status is distinct from new.status)
  execute function private.tg_sessions__scheduling();
revoke execute on function private.tg_sessions__calendar_sequence(), private.tg_sessions__scheduling() from public;

-- A paid booking of a hold that could not be kept (the slot was taken after the hold expired) is
-- refunded by the payments code; the customer is told why.
create or replace function private.tg_bookings__slot_lost() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if new.hold_id is not null and new.status = 'unfulfilled' and old.status is distinct from 'unfulfilled' then
    perform private.enqueue('email.send', format('email:booking_slot_lost:%s', new.id),
      jsonb_build_object('template', 'booking_slot_lost', 'user_id', new.customer_id, 'session_id', null,
                         'data', jsonb_build_object('booking_id', new.id, 'price_cents', new.price_cents,
                                                    'currency', new.currency)));
  end if;
  return null;
end
$$;
drop trigger if exists _450_slot_lost on public.bookings;
create trigger _450_slot_lost after update of status on public.bookings
  for each row execute function private.tg_bookings__slot_lost();
revoke execute on function private.tg_bookings__slot_lost() from public;

-- ---------------------------------------------------------------------------------------------
-- Holds
-- ---------------------------------------------------------------------------------------------
-- Lazy expiry inside the mechanic's locked transaction.
create or replace function private.expire_mechanic_holds(p_mechanic_id uuid, p_now timestamptz) returns void
language plpgsql security definer set search_path = ''
as $$
begin
  update public.mechanic_commitments set status = 'expired'
  where mechanic_id = p_mechanic_id and status = 'held' and expires_at <= p_now;
end
$$;
revoke execute on function private.expire_mechanic_holds(uuid, timestamptz) from public;
grant execute on function private.expire_mechanic_holds(uuid, timestamptz) to service_role;

-- Why [p_start, p_start + plan) cannot be had: slot_taken if committed time is in the way,
-- else slot_unavailable. Raises; never returns normally.
create or replace function private.raise_slot_refusal(
  p_mechanic_id uuid, p_start timestamptz, p_dur interval, p_buffer interval, p_now timestamptz
) returns void
language plpgsql stable security definer set search_path = '' set jit = off
as $$
begin
  if exists (select 1 from public.mechanic_commitments c
             where c.mechanic_id = p_mechanic_id
               and (c.status in ('confirmed', 'in_progress') or (c.status = 'held' and c.expires_at > p_now))
               and c.during && tstzrange(p_start - p_buffer, p_start + p_dur + p_buffer)) then
    perform private.raise_error('slot_taken', 'the time is no longer free');
  end if;
  perform private.raise_error('slot_unavailable',
    'the mechanic does not offer this time (availability, step, notice, booking window, time off or daily limit)');
end
$$;
revoke execute on function private.raise_slot_refusal(uuid, timestamptz, interval, interval, timestamptz) from public;
grant execute on function private.raise_slot_refusal(uuid, timestamptz, interval, interval, timestamptz) to service_role;

-- Inserts committed time for [p_start, p_start + plan + buffer) after checking that the slot is
-- offered; the caller holds the mechanic's lock. Returns the new commitment.
create or replace function private.take_slot(
  p_mechanic_id uuid, p_start timestamptz, p_plan_code text, p_customer_id uuid, p_kind public.commitment_kind,
  p_status public.commitment_status, p_session_id uuid, p_expires_at timestamptz, p_now timestamptz,
  p_price_cents int default null
) returns public.mechanic_commitments
language plpgsql security definer set search_path = '' set jit = off
as $$
declare
  v_rules record;
  v_dur interval;
  v_price int;
  v_row public.mechanic_commitments;
begin
  select * into v_rules from private.booking_rules_for(p_mechanic_id);
  select make_interval(mins => minutes) into v_dur from public.service_plans where code = p_plan_code;
  select s.price_cents into v_price
  from private.slots(p_mechanic_id, p_start, p_start + v_dur, p_plan_code, p_now) s where s.slot_start = p_start;
  if not found then
    perform private.raise_slot_refusal(p_mechanic_id, p_start, v_dur, v_rules.buffer, p_now);
  end if;
  begin
    insert into public.mechanic_commitments (mechanic_id, kind, status, during, session_id, customer_id, plan_code,
                                             price_cents, buffer_minutes, expires_at)
    values (p_mechanic_id, p_kind, p_status, tstzrange(p_start, p_start + v_dur + v_rules.buffer), p_session_id,
            p_customer_id, p_plan_code, coalesce(p_price_cents, v_price),
            (extract(epoch from v_rules.buffer) / 60)::int, p_expires_at)
    returning * into v_row;
  exception when exclusion_violation then
    perform private.raise_error('slot_taken', 'the time is no longer free');
  end;
  return v_row;
end
$$;
revoke execute on function private.take_slot(uuid, timestamptz, text, uuid, public.commitment_kind,
  public.commitment_status, uuid, timestamptz, timestamptz, int) from public;
grant execute on function private.take_slot(uuid, timestamptz, text, uuid, public.commitment_kind,
  public.commitment_status, uuid, timestamptz, timestamptz, int) to service_role;

create or replace function private.hold_slot(
  p_customer_id uuid, p_mechanic_id uuid, p_start timestamptz, p_plan_code text, p_now timestamptz default now()
) returns jsonb
language plpgsql security definer set search_path = '' set jit = off
  set plan_cache_mode = force_generic_plan
as $$
declare
  v_mechanic public.mechanics;
  v_tz text;
  v_plan public.service_plans;
  v_hold public.mechanic_commitments;
  v_dur interval;
  v_rules record;
  v_buffer interval;
  v_max_per_day int;
  v_price int;
begin
  if p_customer_id is null or p_mechanic_id is null or p_start is null or p_plan_code is null
     or not isfinite(p_start) then
    perform private.raise_error('invalid_input', 'mechanic, start and plan are required');
  end if;
  select * into v_plan from public.service_plans where code = p_plan_code and active;
  if not found then
    perform private.raise_error('not_found', format('no active plan %L', left(p_plan_code, 60)));
  end if;
  if p_customer_id = p_mechanic_id then
    perform private.raise_error('not_allowed', 'a mechanic cannot book itself');
  end if;
  select mm.timezone into v_tz from public.mechanics mm where mm.id = p_mechanic_id and mm.status = 'approved';
  if not found then
    perform private.raise_error('not_found', 'no such approved mechanic');
  end if;
  -- Before the lock: is the time offered at all (blocks, step, notice, window, time off, daily
  -- limit, committed time as of now)? None of that depends on racing holds except committed time,
  -- which is re-checked exactly under the lock (then the trigger and the exclusion constraint).
  -- Keeping this check out of the lock keeps the queue short (bench_scheduling.py). It is
  -- private.slots(p_mechanic_id, p_start, p_start + plan, …) for the one start p_start, written
  -- for one slot (the open ranges of the one or two local dates around p_start, then indexed
  -- lookups) instead of computing the whole slot list: 32 clients run it at once on 2 cores.
  select * into v_rules from private.booking_rules_for(p_mechanic_id);
  v_dur := make_interval(mins => v_plan.minutes);
  v_buffer := v_rules.buffer;
  v_max_per_day := v_rules.max_per_day;
  if v_rules.instant and p_start >= p_now + v_rules.min_notice and p_start + v_dur <= p_now + v_rules.max_advance
     and not exists (select 1 from public.mechanic_commitments c
                     where c.mechanic_id = p_mechanic_id
                       and (c.status in ('confirmed', 'in_progress') or (c.status = 'held' and c.expires_at > p_now))
                       and c.during && tstzrange(p_start, p_start + v_dur + v_buffer))
     and not exists (select 1 from public.mechanic_time_off t
                     where t.mechanic_id = p_mechanic_id and t.during && tstzrange(p_start, p_start + v_dur))
     and (select count(*) from public.mechanic_commitments c
          where c.mechanic_id = p_mechanic_id and c.kind in ('hold', 'scheduled')
            and (c.status = 'confirmed' or (c.status = 'held' and c.expires_at > p_now))
            and (lower(c.during) at time zone v_tz)::date = (p_start at time zone v_tz)::date
            and c.during && tstzrange(p_start - interval '2 days', p_start + v_dur + interval '2 days'))
         < v_max_per_day then
    -- on the step grid of an open range that holds the whole session; the highest multiplier wins
    select round(v_plan.price_cents * max(o.multiplier))::int into v_price
    from private.open_ranges(p_mechanic_id, p_start, p_start + v_dur) o
    where o.r @> tstzrange(p_start, p_start + v_dur)
      and p_start in (select g from generate_series(lower(o.r), upper(o.r) - v_dur, v_rules.step) g);
  end if;
  if v_price is null then
    perform private.raise_slot_refusal(p_mechanic_id, p_start, v_dur, v_buffer, p_now);
  end if;
  v_mechanic := private.lock_mechanic(p_mechanic_id);
  -- Under the lock, first the one thing a racing hold can have changed: live committed time
  -- overlapping the range the insert would take (what the trigger and the constraint would
  -- refuse with slot_taken). The losers of a race leave here after one index lookup instead of
  -- going through the counts and a failing insert.
  if exists (select 1 from public.mechanic_commitments c
             where c.mechanic_id = p_mechanic_id
               and (c.status in ('confirmed', 'in_progress') or (c.status = 'held' and c.expires_at > p_now))
               and c.during && tstzrange(p_start, p_start + v_dur + v_buffer)) then
    perform private.raise_error('slot_taken', 'the time is no longer free');
  end if;
  perform private.expire_mechanic_holds(p_mechanic_id, p_now);
  -- the daily limit again, exactly, under the lock
  if (select count(*) from public.mechanic_commitments c
      where c.mechanic_id = p_mechanic_id and c.kind in ('hold', 'scheduled')
        and (c.status = 'confirmed' or (c.status = 'held' and c.expires_at > p_now))
        and (lower(c.during) at time zone v_mechanic.timezone)::date = (p_start at time zone v_mechanic.timezone)::date
        and c.during && tstzrange(p_start - interval '2 days', p_start + interval '2 days')) >= v_max_per_day then
    perform private.raise_error('slot_unavailable', 'the mechanic''s day is fully booked');
  end if;
  -- anti-hoarding: the customer's live holds, counted under the customer's profile lock
  perform 1 from public.profiles where id = p_customer_id for no key update;
  if (select count(*) from public.mechanic_commitments c
      where c.customer_id = p_customer_id and c.status = 'held' and c.expires_at > p_now)
     >= private.setting_int('scheduling.max_holds_per_customer') then
    perform private.raise_error('too_many_holds', 'release a hold or let it expire first');
  end if;
  begin
    insert into public.mechanic_commitments (mechanic_id, kind, status, during, customer_id, plan_code, price_cents,
                                             buffer_minutes, expires_at)
    values (p_mechanic_id, 'hold', 'held', tstzrange(p_start, p_start + v_dur + v_buffer), p_customer_id, v_plan.code,
            v_price, (extract(epoch from v_buffer) / 60)::int,
            p_now + private.setting_interval('scheduling.hold_duration'))
    returning * into v_hold;
  exception when exclusion_violation then
    perform private.raise_error('slot_taken', 'the time is no longer free');
  end;
  return jsonb_build_object('hold_id', v_hold.id, 'expires_at', v_hold.expires_at, 'mechanic_id', p_mechanic_id,
                            'slot_start', p_start, 'slot_end', p_start + make_interval(mins => v_plan.minutes),
                            'plan_code', v_plan.code, 'price_cents', v_hold.price_cents, 'currency', v_plan.currency);
end
$$;
revoke execute on function private.hold_slot(uuid, uuid, timestamptz, text, timestamptz) from public;
grant execute on function private.hold_slot(uuid, uuid, timestamptz, text, timestamptz) to service_role;

-- Turns hold `p_hold_id` into a booked session (status scheduled). With p_rehold (a payment that
-- arrived after the hold expired) the same time is taken again if it is still free; otherwise
-- slot_taken (the payments code then refunds). Creates the session, participants and reminders.
create or replace function private.confirm_hold(
  p_hold_id uuid, p_customer_id uuid, p_intake_id uuid, p_vehicle_id uuid, p_price_cents int, p_rehold boolean,
  p_now timestamptz default now()
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_hold public.mechanic_commitments;
  v_plan public.service_plans;
  v_intake public.intakes;
  v_vehicle_id uuid;
  v_session public.sessions;
begin
  select * into v_hold from public.mechanic_commitments where id = p_hold_id and kind = 'hold';
  if not found or v_hold.customer_id is distinct from p_customer_id then
    perform private.raise_error('not_found', 'no such hold');
  end if;
  perform private.lock_mechanic(v_hold.mechanic_id);
  select * into v_hold from public.mechanic_commitments where id = p_hold_id for update;
  if v_hold.status = 'held' and v_hold.expires_at <= p_now then
    update public.mechanic_commitments set status = 'expired' where id = v_hold.id returning * into v_hold;
  end if;
  if v_hold.status <> 'held' then
    if not p_rehold or v_hold.status not in ('expired', 'released') then
      perform private.raise_error('hold_expired', format('the hold is %s', v_hold.status));
    end if;
  end if;
  select * into v_plan from public.service_plans where code = v_hold.plan_code;
  select * into v_intake from public.intakes where id = p_intake_id and customer_id = p_customer_id for update;
  if not found then
    perform private.raise_error('not_found', 'no such intake');
  end if;
  if v_intake.status <> 'new' then
    perform private.raise_error('conflict', format('the intake is %s, not new', v_intake.status));
  end if;
  v_vehicle_id := coalesce(p_vehicle_id, v_intake.vehicle_id);
  if v_vehicle_id is not null and not exists (select 1 from public.vehicles where id = v_vehicle_id
                                                and owner_id = p_customer_id) then
    perform private.raise_error('not_found', 'no such vehicle');
  end if;

  perform private.set_actor('customer', 'booked a slot');
  insert into public.sessions (customer_id, mechanic_id, plan_code, session_type, duration_type, planned_minutes,
                               price_cents, currency, intake_id, vehicle_id, status, status_changed_at, scheduled_for)
  values (p_customer_id, v_hold.mechanic_id, v_plan.code, v_plan.session_type, v_plan.duration_type, v_plan.minutes,
          p_price_cents, v_plan.currency, v_intake.id, v_vehicle_id, 'scheduled', p_now, lower(v_hold.during))
  returning * into v_session;
  insert into public.session_participants (session_id, user_id, role)
  values (v_session.id, p_customer_id, 'customer'), (v_session.id, v_hold.mechanic_id, 'mechanic');

  if v_hold.status = 'held' then
    update public.mechanic_commitments
    set kind = 'scheduled', status = 'confirmed', session_id = v_session.id, expires_at = null
    where id = v_hold.id;
  else
    -- re-hold: the same time again, checked like a new booking (notice is not re-applied: the
    -- customer paid inside the hold's window)
    begin
      insert into public.mechanic_commitments (mechanic_id, kind, status, during, session_id, customer_id, plan_code,
                                               price_cents, buffer_minutes)
      values (v_hold.mechanic_id, 'scheduled', 'confirmed', v_hold.during, v_session.id, p_customer_id,
              v_hold.plan_code, v_hold.price_cents, v_hold.buffer_minutes);
    exception when exclusion_violation then
      perform private.raise_error('slot_taken', 'the held time was taken after the hold expired');
    end;
    if exists (select 1 from public.mechanic_time_off t
               where t.mechanic_id = v_hold.mechanic_id and t.during && v_hold.during) then
      perform private.raise_error('slot_taken', 'the mechanic took time off after the hold expired');
    end if;
  end if;
  update public.intakes set status = 'pending', plan_code = v_plan.code where id = v_intake.id;
  perform private.schedule_reminders(v_session.id, p_now);
  return jsonb_build_object('session_id', v_session.id, 'status', 'scheduled', 'scheduled_for', v_session.scheduled_for,
                            'mechanic_id', v_hold.mechanic_id, 'price_cents', p_price_cents);
end
$$;
revoke execute on function private.confirm_hold(uuid, uuid, uuid, uuid, int, boolean, timestamptz) from public;
grant execute on function private.confirm_hold(uuid, uuid, uuid, uuid, int, boolean, timestamptz) to service_role;

-- A held slot booked without Stripe: free, or paid from the customer's credit.
create or replace function private.book_slot(
  p_customer_id uuid, p_hold_id uuid, p_intake_id uuid, p_vehicle_id uuid, p_now timestamptz default now()
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_hold public.mechanic_commitments;
  v_plan public.service_plans;
  v_booking_id uuid;
  v_result jsonb;
begin
  if p_hold_id is null or p_intake_id is null then
    perform private.raise_error('invalid_input', 'p_hold_id and p_intake_id are required');
  end if;
  select * into v_hold from public.mechanic_commitments where id = p_hold_id and kind = 'hold';
  if not found or v_hold.customer_id is distinct from p_customer_id then
    perform private.raise_error('not_found', 'no such hold');
  end if;
  if v_hold.price_cents = 0 then
    return private.confirm_hold(p_hold_id, p_customer_id, p_intake_id, p_vehicle_id, 0, false, p_now);
  end if;
  -- lock order: mechanic (inside confirm_hold, first), then the customer's credit
  perform private.lock_mechanic(v_hold.mechanic_id);
  perform private.lock_credit(p_customer_id);
  if private.credit_balance(p_customer_id) < v_hold.price_cents then
    perform private.raise_error('payment_required',
      format('this slot costs %s cents: pay through create_checkout with hold_id', v_hold.price_cents));
  end if;
  select * into v_plan from public.service_plans where code = v_hold.plan_code;
  v_result := private.confirm_hold(p_hold_id, p_customer_id, p_intake_id, p_vehicle_id, v_hold.price_cents, false, p_now);
  insert into public.bookings (customer_id, plan_code, intake_id, vehicle_id, preferred_mechanic_id, price_cents,
                               currency, method, status, status_changed_at, hold_id, session_id)
  values (p_customer_id, v_plan.code, p_intake_id,
          (select s.vehicle_id from public.sessions s where s.id = (v_result ->> 'session_id')::uuid),
          v_hold.mechanic_id, v_hold.price_cents, v_plan.currency, 'credit', 'paid', p_now, p_hold_id,
          (v_result ->> 'session_id')::uuid)
  returning id into v_booking_id;
  perform private.add_credit_entry(p_customer_id, 'debit', -v_hold.price_cents, v_plan.currency, v_booking_id, null,
                                   format('%s booking', v_plan.code), p_customer_id);
  insert into public.payments (booking_id, customer_id, session_id, method, amount_cents, currency, transfer_group,
                               paid_at)
  values (v_booking_id, p_customer_id, (v_result ->> 'session_id')::uuid, 'credit', v_hold.price_cents, v_plan.currency,
          'booking_' || v_booking_id::text, p_now);
  return v_result || jsonb_build_object('booking_id', v_booking_id, 'mode', 'credit');
end
$$;
revoke execute on function private.book_slot(uuid, uuid, uuid, uuid, timestamptz) from public;
grant execute on function private.book_slot(uuid, uuid, uuid, uuid, timestamptz) to service_role;

-- A Checkout for a held slot (create_checkout with hold_id): the pending card booking carries the
-- hold; credit that covers the price books at once. Same answer shape as prepare_checkout.
create or replace function private.prepare_hold_checkout(
  p_customer_id uuid, p_hold_id uuid, p_intake_id uuid, p_vehicle_id uuid, p_now timestamptz default now()
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_hold public.mechanic_commitments;
  v_plan public.service_plans;
  v_intake public.intakes;
  v_booking public.bookings;
  v_result jsonb;
begin
  if p_customer_id is null or p_hold_id is null or p_intake_id is null then
    perform private.raise_error('invalid_input', 'hold_id and intake_id are required');
  end if;
  select * into v_hold from public.mechanic_commitments where id = p_hold_id and kind = 'hold';
  if not found or v_hold.customer_id is distinct from p_customer_id then
    perform private.raise_error('not_found', 'no such hold');
  end if;
  if v_hold.status <> 'held' or v_hold.expires_at <= p_now then
    perform private.raise_error('hold_expired', 'the hold expired: hold the slot again');
  end if;
  select * into v_plan from public.service_plans where code = v_hold.plan_code;
  if v_hold.price_cents = 0 then
    perform private.raise_error('invalid_input', 'this slot is free: book it with book_slot');
  end if;
  select * into v_intake from public.intakes where id = p_intake_id and customer_id = p_customer_id;
  if not found then
    perform private.raise_error('not_found', 'no such intake');
  end if;
  if v_intake.status <> 'new' then
    perform private.raise_error('conflict', format('the intake is %s, not new', v_intake.status));
  end if;
  if private.credit_balance(p_customer_id) >= v_hold.price_cents then
    v_result := private.book_slot(p_customer_id, p_hold_id, p_intake_id, p_vehicle_id, p_now);
    return jsonb_build_object('mode', 'credit', 'booking_id', v_result ->> 'booking_id',
                              'session_id', v_result ->> 'session_id', 'request_id', null,
                              'price_cents', v_hold.price_cents, 'currency', v_plan.currency,
                              'credit_balance_cents', private.credit_balance(p_customer_id));
  end if;
  select * into v_booking from public.bookings b
  where b.hold_id = p_hold_id and b.status = 'pending' and b.method = 'card' and b.checkout_url is not null
    and b.expires_at > p_now + interval '5 minutes'
  order by b.created_at desc limit 1;
  if found then
    return jsonb_build_object('mode', 'stripe', 'reused', true, 'booking_id', v_booking.id, 'url', v_booking.checkout_url,
                              'price_cents', v_booking.price_cents, 'currency', v_booking.currency);
  end if;
  -- Stripe's shortest Checkout lifetime is 30 minutes: a payment after the hold's end takes the
  -- re-hold-or-refund path (private.confirm_hold with p_rehold).
  insert into public.bookings (customer_id, plan_code, intake_id, vehicle_id, preferred_mechanic_id, price_cents,
                               currency, method, status, status_changed_at, expires_at, hold_id)
  values (p_customer_id, v_plan.code, v_intake.id, coalesce(p_vehicle_id, v_intake.vehicle_id), v_hold.mechanic_id,
          v_hold.price_cents, v_plan.currency, 'card', 'pending', p_now,
          greatest(v_hold.expires_at, p_now + interval '30 minutes') + interval '1 minute', p_hold_id)
  returning * into v_booking;
  return jsonb_build_object('mode', 'stripe', 'reused', false, 'booking_id', v_booking.id,
                            'price_cents', v_booking.price_cents, 'currency', v_plan.currency,
                            'product_name', v_plan.name || ' at ' ||
                              to_char(lower(v_hold.during) at time zone 'UTC', 'YYYY-MM-DD HH24:MI "UTC"'),
                            'plan_code', v_plan.code, 'customer_id', p_customer_id,
                            'customer_email', (select u.email from auth.users u where u.id = p_customer_id),
                            'expires_at', floor(extract(epoch from v_booking.expires_at))::bigint);
end
$$;
revoke execute on function private.prepare_hold_checkout(uuid, uuid, uuid, uuid, timestamptz) from public;
grant execute on function private.prepare_hold_checkout(uuid, uuid, uuid, uuid, timestamptz) to service_role;

-- checkout.session.completed of a hold's booking (called by private.stripe_checkout_paid).
create or replace function private.book_paid_hold(p_booking_id uuid, p_amount_cents int, p_now timestamptz)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_booking public.bookings;
begin
  select * into v_booking from public.bookings where id = p_booking_id;
  return private.confirm_hold(v_booking.hold_id, v_booking.customer_id, v_booking.intake_id, v_booking.vehicle_id,
                              p_amount_cents, true, p_now);
end
$$;
revoke execute on function private.book_paid_hold(uuid, int, timestamptz) from public;
grant execute on function private.book_paid_hold(uuid, int, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Reschedule and cancel
-- ---------------------------------------------------------------------------------------------
create or replace function private.reschedule_session(
  p_user_id uuid, p_session_id uuid, p_new_start timestamptz, p_now timestamptz default now()
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_session public.sessions;
  v_old public.mechanic_commitments;
  v_is_admin boolean := exists (select 1 from private.admins a where a.user_id = p_user_id);
begin
  if p_session_id is null or p_new_start is null or not isfinite(p_new_start) then
    perform private.raise_error('invalid_input', 'p_session_id and p_new_start are required');
  end if;
  select * into v_session from public.sessions where id = p_session_id;
  if not found or (v_session.customer_id <> p_user_id and v_session.mechanic_id is distinct from p_user_id
                   and not v_is_admin) then
    perform private.raise_error('not_found', 'no such session');
  end if;
  if v_session.mechanic_id is null then
    perform private.raise_error('invalid_transition', 'only a booked session can be rescheduled');
  end if;
  perform private.lock_mechanic(v_session.mechanic_id);  -- lock order: mechanic, then session
  select * into v_session from public.sessions where id = p_session_id for update;
  if v_session.status <> 'scheduled' then
    perform private.raise_error('invalid_transition', format('a %s session cannot be rescheduled', v_session.status));
  end if;
  if v_session.scheduled_for - p_now < private.setting_interval('scheduling.change_cutoff') and not v_is_admin then
    perform private.raise_error('change_cutoff_passed',
      format('a booking cannot be moved within %s of its start', private.setting_text('scheduling.change_cutoff')));
  end if;
  perform private.set_actor(case when v_session.customer_id = p_user_id then 'customer'
                                 when v_session.mechanic_id = p_user_id then 'mechanic' else 'admin' end,
                            'rescheduled');
  update public.mechanic_commitments set status = 'released'
  where session_id = v_session.id and status = 'confirmed'
  returning * into v_old;
  perform private.expire_mechanic_holds(v_session.mechanic_id, p_now);
  perform private.take_slot(v_session.mechanic_id, p_new_start, v_session.plan_code, v_session.customer_id,
                            'scheduled', 'confirmed', v_session.id, null, p_now, v_session.price_cents);
  update public.sessions
  set scheduled_for = p_new_start, calendar_sequence = calendar_sequence + 1
  where id = v_session.id returning * into v_session;
  perform private.drop_reminders(v_session.id);
  perform private.schedule_reminders(v_session.id, p_now);
  perform private.enqueue_email('booking_rescheduled', v_session.customer_id, v_session.id, '{}'::jsonb,
                                ':s' || v_session.calendar_sequence);
  perform private.enqueue_email('booking_rescheduled', v_session.mechanic_id, v_session.id, '{}'::jsonb,
                                ':s' || v_session.calendar_sequence);
  return jsonb_build_object('session_id', v_session.id, 'scheduled_for', v_session.scheduled_for,
                            'calendar_sequence', v_session.calendar_sequence,
                            'previous_start', lower(v_old.during));
end
$$;
revoke execute on function private.reschedule_session(uuid, uuid, timestamptz, timestamptz) from public;
grant execute on function private.reschedule_session(uuid, uuid, timestamptz, timestamptz) to service_role;

-- The customer cancels up to the cut-off; the mechanic (or an admin) any time before the start.
-- Either way a paid booking is refunded in full: payments' trigger refunds a session cancelled
-- from `scheduled` (payments.auto_refund_from_statuses).
create or replace function private.cancel_scheduled_session(
  p_user_id uuid, p_session_id uuid, p_reason text, p_now timestamptz default now()
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_session public.sessions;
  v_side text;
  v_reason text;
begin
  if p_session_id is null then
    perform private.raise_error('invalid_input', 'p_session_id is required');
  end if;
  select * into v_session from public.sessions where id = p_session_id;
  v_side := case when not found then null
                 when v_session.customer_id = p_user_id then 'customer'
                 when v_session.mechanic_id = p_user_id then 'mechanic'
                 when exists (select 1 from private.admins a where a.user_id = p_user_id) then 'admin' end;
  if v_side is null then
    perform private.raise_error('not_found', 'no such session');
  end if;
  if v_session.mechanic_id is not null then
    perform private.lock_mechanic(v_session.mechanic_id);
  end if;
  perform 1 from public.session_requests where session_id = p_session_id for update;
  select * into v_session from public.sessions where id = p_session_id for update;
  if v_session.status <> 'scheduled' then
    perform private.raise_error('invalid_transition', format('a %s session cannot be cancelled here', v_session.status));
  end if;
  if v_side = 'customer'
     and v_session.scheduled_for - p_now < private.setting_interval('scheduling.change_cutoff') then
    perform private.raise_error('change_cutoff_passed',
      format('a booking cannot be cancelled within %s of its start', private.setting_text('scheduling.change_cutoff')));
  end if;
  v_reason := coalesce(p_reason, format('cancelled by the %s', v_side));
  perform private.set_actor(v_side, v_reason);
  perform private.cancel_session(p_session_id, v_reason, p_now);
  select * into v_session from public.sessions where id = p_session_id;
  return jsonb_build_object('session_id', v_session.id, 'status', v_session.status, 'cancelled_by', v_side,
                            'calendar_sequence', v_session.calendar_sequence,
                            'refund', exists (select 1 from public.payments p where p.session_id = p_session_id));
end
$$;
revoke execute on function private.cancel_scheduled_session(uuid, uuid, text, timestamptz) from public;
grant execute on function private.cancel_scheduled_session(uuid, uuid, text, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Jobs (cron_session_timers): hold expiry and opening booked sessions for joining
-- ---------------------------------------------------------------------------------------------
create or replace function private.expire_holds(p_now timestamptz default now(), p_limit int default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_n int;
begin
  update public.mechanic_commitments c set status = 'expired'
  where c.id in (select x.id from public.mechanic_commitments x
                 where x.status = 'held' and x.expires_at <= p_now
                 order by x.expires_at limit coalesce(p_limit, private.setting_int('jobs.batch_size'))
                 for update skip locked);
  get diagnostics v_n = row_count;
  return jsonb_build_object('holds_expired', v_n);
end
$$;
revoke execute on function private.expire_holds(timestamptz, int) from public;
grant execute on function private.expire_holds(timestamptz, int) to service_role;

-- scheduled → waiting 15 minutes before the start (same LiveKit flow from there). The waiting
-- clock of the sweeps and nudges (status_changed_at) counts from the booked start, so a session
-- opened early is not a no-show before it has begun.
create or replace function private.open_scheduled_sessions(p_now timestamptz default now(), p_limit int default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_n int;
begin
  perform private.set_actor('system', 'the booked session opens');
  update public.sessions s set status = 'waiting', status_changed_at = greatest(s.scheduled_for, p_now)
  where s.id in (select x.id from public.sessions x
                 where x.status = 'scheduled' and x.mechanic_id is not null
                   and x.scheduled_for <= p_now + private.setting_interval('scheduling.open_before')
                 order by x.scheduled_for limit coalesce(p_limit, private.setting_int('jobs.batch_size'))
                 for update skip locked);
  get diagnostics v_n = row_count;
  return jsonb_build_object('sessions_opened', v_n);
end
$$;
revoke execute on function private.open_scheduled_sessions(timestamptz, int) from public;
grant execute on function private.open_scheduled_sessions(timestamptz, int) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Calendar data (functions/session_calendar.py builds the .ics from it)
-- ---------------------------------------------------------------------------------------------
-- A booked session as a calendar event, for one of its participants (or any, with null user).
create or replace function private.session_calendar_data(p_session_id uuid, p_user_id uuid) returns jsonb
language sql stable security definer set search_path = ''
as $$
  select jsonb_build_object(
    'session_id', s.id, 'status', s.status, 'scheduled_for', s.scheduled_for,
    'ends_at', s.scheduled_for + make_interval(mins => s.planned_minutes), 'sequence', s.calendar_sequence,
    'plan', sp.name, 'session_type', s.session_type, 'mechanic_name', m.display_name,
    'customer_name', coalesce(p.full_name, 'Customer'), 'created_at', s.created_at, 'updated_at', s.updated_at,
    'role', case when s.customer_id = p_user_id then 'customer' else 'mechanic' end)
  from public.sessions s
  join public.service_plans sp on sp.code = s.plan_code
  left join public.mechanics m on m.id = s.mechanic_id
  left join public.profiles p on p.id = s.customer_id
  where s.id = p_session_id and s.scheduled_for is not null
    and (p_user_id is null or s.customer_id = p_user_id or s.mechanic_id = p_user_id)
$$;
revoke execute on function private.session_calendar_data(uuid, uuid) from public;
grant execute on function private.session_calendar_data(uuid, uuid) to service_role;

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
  if p_time_off_id is null then
    perform private.raise_error('invalid_input', 'p_time_off_id is required');
  end if;
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
  if p_organization_id is null then
    perform private.raise_error('invalid_input', 'p_organization_id is required');
  end if;
  if p_organization_id not in (select private.my_admin_org_ids()) then
    perform private.raise_error('not_allowed', 'only the workshop''s owners and admins set its hours');
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
    if p_organization_id not in (select private.my_admin_org_ids()) then
      perform private.raise_error('not_allowed', 'only the workshop''s owners and admins set its dates');
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

-- ---------------------------------------------------------------------------------------------
-- Public RPCs: slots, search, holds, booking, changes
-- ---------------------------------------------------------------------------------------------
create or replace function private.check_query_range(p_from timestamptz, p_to timestamptz) returns void
language plpgsql stable set search_path = ''
as $$
begin
  if p_from is null or p_to is null or not isfinite(p_from) or not isfinite(p_to) or p_to <= p_from
     or p_to - p_from > private.setting_interval('scheduling.max_query_range') then
    perform private.raise_error('invalid_input',
      format('p_from must be before p_to, at most %s apart', private.setting_text('scheduling.max_query_range')));
  end if;
end
$$;
revoke execute on function private.check_query_range(timestamptz, timestamptz) from public;
grant execute on function private.check_query_range(timestamptz, timestamptz) to authenticated, service_role;

create or replace function public.available_slots(
  p_mechanic_id uuid, p_from timestamptz, p_to timestamptz, p_plan_code text
) returns table (slot_start timestamptz, slot_end timestamptz, price_cents int)
language plpgsql stable security definer set search_path = '' set jit = off
as $$
begin
  perform private.require_user();
  if p_mechanic_id is null or p_plan_code is null then
    perform private.raise_error('invalid_input', 'p_mechanic_id and p_plan_code are required');
  end if;
  perform private.check_query_range(p_from, p_to);
  if not exists (select 1 from public.service_plans where code = p_plan_code and active) then
    perform private.raise_error('not_found', format('no active plan %L', left(p_plan_code, 60)));
  end if;
  if not exists (select 1 from public.mechanics where id = p_mechanic_id and status = 'approved') then
    perform private.raise_error('not_found', 'no such approved mechanic');
  end if;
  return query select s.slot_start, s.slot_end, s.price_cents
               from private.slots(p_mechanic_id, p_from, p_to, p_plan_code, now()) s;
end
$$;
revoke execute on function public.available_slots(uuid, timestamptz, timestamptz, text) from public, anon;
grant execute on function public.available_slots(uuid, timestamptz, timestamptz, text) to authenticated, service_role;

-- Who can take a session at p_start (matching for scheduled requests: candidates in directory
-- order; the customer holds one of them).
create or replace function public.mechanics_free_at(
  p_start timestamptz, p_plan_code text, p_city text default null, p_brand text default null, p_limit int default 20
) returns table (mechanic_id uuid, display_name text, photo_url text, rating_avg numeric, rating_count int,
                 mechanic_type public.mechanic_type, price_cents int, price_multiplier numeric)
language plpgsql stable security definer set search_path = '' set jit = off
as $$
begin
  perform private.require_user();
  if p_start is null or not isfinite(p_start) or p_plan_code is null then
    perform private.raise_error('invalid_input', 'p_start and p_plan_code are required');
  end if;
  if p_limit is null or p_limit < 1 or p_limit > 100 then
    perform private.raise_error('invalid_input', 'p_limit must be between 1 and 100');
  end if;
  if char_length(p_brand) > 60 or char_length(p_city) > 120 then
    perform private.raise_error('invalid_input', 'p_brand or p_city is too long');
  end if;
  if not exists (select 1 from public.service_plans where code = p_plan_code and active) then
    perform private.raise_error('not_found', format('no active plan %L', left(p_plan_code, 60)));
  end if;
  return query
  select f.mechanic_id, m.display_name, m.photo_url, m.rating_avg, m.rating_count, m.mechanic_type, f.price_cents,
         f.multiplier
  from private.free_at(p_start, p_plan_code, p_city, p_brand, p_limit, now()) f
  join public.mechanics m on m.id = f.mechanic_id;
end
$$;
revoke execute on function public.mechanics_free_at(timestamptz, text, text, text, int) from public, anon;
grant execute on function public.mechanics_free_at(timestamptz, text, text, text, int) to authenticated, service_role;

create or replace function public.hold_slot(p_mechanic_id uuid, p_start timestamptz, p_plan_code text) returns jsonb
language plpgsql security definer set search_path = ''
as $$
begin
  return private.hold_slot(private.require_user(), p_mechanic_id, p_start, p_plan_code, now());
end
$$;
revoke execute on function public.hold_slot(uuid, timestamptz, text) from public, anon;
grant execute on function public.hold_slot(uuid, timestamptz, text) to authenticated, service_role;

create or replace function public.release_hold(p_hold_id uuid) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_hold public.mechanic_commitments;
begin
  if p_hold_id is null then
    perform private.raise_error('invalid_input', 'p_hold_id is required');
  end if;
  select * into v_hold from public.mechanic_commitments where id = p_hold_id and kind = 'hold';
  if not found or v_hold.customer_id <> v_uid then
    perform private.raise_error('not_found', 'no such hold');
  end if;
  perform private.lock_mechanic(v_hold.mechanic_id);
  update public.mechanic_commitments set status = 'released'
  where id = p_hold_id and status = 'held'
  returning * into v_hold;
  if not found then
    select * into v_hold from public.mechanic_commitments where id = p_hold_id;
  end if;
  return jsonb_build_object('hold_id', p_hold_id, 'status', v_hold.status);
end
$$;
revoke execute on function public.release_hold(uuid) from public, anon;
grant execute on function public.release_hold(uuid) to authenticated, service_role;

create or replace function public.book_slot(p_hold_id uuid, p_intake_id uuid, p_vehicle_id uuid default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
begin
  return private.book_slot(private.require_user(), p_hold_id, p_intake_id, p_vehicle_id, now());
end
$$;
revoke execute on function public.book_slot(uuid, uuid, uuid) from public, anon;
grant execute on function public.book_slot(uuid, uuid, uuid) to authenticated, service_role;

create or replace function public.reschedule_session(p_session_id uuid, p_new_start timestamptz) returns jsonb
language plpgsql security definer set search_path = ''
as $$
begin
  return private.reschedule_session(private.require_user(), p_session_id, p_new_start, now());
end
$$;
revoke execute on function public.reschedule_session(uuid, timestamptz) from public, anon;
grant execute on function public.reschedule_session(uuid, timestamptz) to authenticated, service_role;

create or replace function public.cancel_scheduled_session(p_session_id uuid, p_reason text default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
begin
  return private.cancel_scheduled_session(v_uid, p_session_id, private.check_text('p_reason', p_reason), now());
end
$$;
revoke execute on function public.cancel_scheduled_session(uuid, text) from public, anon;
grant execute on function public.cancel_scheduled_session(uuid, text) to authenticated, service_role;

-- The mechanic's calendar for a range: booked sessions, live holds, open availability (with
-- multipliers) and time off. The mechanic itself, its workshop's admins, platform admins.
create or replace function public.mechanic_calendar(
  p_from timestamptz, p_to timestamptz, p_mechanic_id uuid default null
) returns jsonb
language plpgsql stable security definer set search_path = '' set jit = off
as $$
declare
  v_uid uuid := private.require_user();
  v_target uuid := coalesce(p_mechanic_id, v_uid);
begin
  perform private.check_query_range(p_from, p_to);
  if not exists (select 1 from public.mechanics where id = v_target) then
    perform private.raise_error(case when p_mechanic_id is null then 'not_allowed' else 'not_found' end,
                                'no such mechanic');
  end if;
  if not private.can_manage_mechanic(v_target) then
    perform private.raise_error('not_allowed', 'only the mechanic, its workshop''s admins and admins see this');
  end if;
  return jsonb_build_object(
    'mechanic_id', v_target,
    'timezone', (select m.timezone from public.mechanics m where m.id = v_target),
    'sessions', coalesce((
      select jsonb_agg(jsonb_build_object('session_id', s.id, 'status', s.status, 'start', s.scheduled_for,
                                          'end', s.scheduled_for + make_interval(mins => s.planned_minutes),
                                          'plan_code', s.plan_code, 'session_type', s.session_type)
                       order by s.scheduled_for)
      from public.sessions s
      where s.mechanic_id = v_target and s.scheduled_for >= p_from - interval '1 day' and s.scheduled_for < p_to
        and s.scheduled_for + make_interval(mins => s.planned_minutes) > p_from), '[]'::jsonb),
    'holds', coalesce((
      select jsonb_agg(jsonb_build_object('hold_id', c.id, 'start', lower(c.during), 'expires_at', c.expires_at)
                       order by lower(c.during))
      from public.mechanic_commitments c
      where c.mechanic_id = v_target and c.status = 'held' and c.expires_at > now()
        and c.during && tstzrange(p_from, p_to)), '[]'::jsonb),
    'availability', coalesce((
      select jsonb_agg(jsonb_build_object('start', lower(o.r), 'end', upper(o.r), 'price_multiplier', o.multiplier)
                       order by lower(o.r))
      from private.open_ranges(v_target, p_from, p_to) o), '[]'::jsonb),
    'time_off', coalesce((
      select jsonb_agg(jsonb_build_object('time_off_id', t.id, 'start', lower(t.during), 'end', upper(t.during),
                                          'reason', t.reason) order by lower(t.during))
      from public.mechanic_time_off t
      where t.mechanic_id = v_target and t.during && tstzrange(p_from, p_to)), '[]'::jsonb));
end
$$;
revoke execute on function public.mechanic_calendar(timestamptz, timestamptz, uuid) from public, anon;
grant execute on function public.mechanic_calendar(timestamptz, timestamptz, uuid) to authenticated, service_role;
