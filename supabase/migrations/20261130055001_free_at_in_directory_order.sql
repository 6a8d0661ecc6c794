-- free_at_in_directory_order: supabase/functions_sql/ as of this migration, written by `autodoctor db commit`.
-- Whole files, re-runnable, in path order; then the drops of what they no longer define.
-- Edit the files in supabase/functions_sql/, never this migration (see docs/migrations.md).
set check_function_bodies = off;

-- >>> functions_sql matching/eligibility.sql sha256=8684a176b58836a1626509e024956f9f7b77ef548d3d49f111ec8e3128c8e6f9
-- Matching: the eligibility hook used by ranking and routing: the mechanics that may not take a
-- request for reasons other domains own (shifts and micro caps, bookings). Each domain adds its
-- branch here.

create or replace function private.eligibility_exclusions(p_request_id uuid, p_now timestamptz)
returns setof uuid
language plpgsql stable security definer set search_path = ''
as $$
begin
  -- PL/pgSQL so that the plan is cached per session: as a SQL function (security definer, so never
  -- inlined) PostgreSQL 15 planned this query on every routing of every request (~4 ms).
  return query
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
    and c.during && tstzrange(p_now, p_now + make_interval(mins => r.planned_minutes) + r.buffer);
end
$$;
revoke execute on function private.eligibility_exclusions(uuid, timestamptz) from public;
grant execute on function private.eligibility_exclusions(uuid, timestamptz) to service_role;
-- <<< functions_sql matching/eligibility.sql

-- >>> functions_sql operations/scheduling_stats.sql sha256=b772a3a3f650581b86383104c41fc58c121d5fd9866799f5a7887998133e79b3
-- Operations: scheduling analytics (docs/operations.md#scheduling-analytics) — utilization,
-- no-shows, lead time, booked versus on demand, cancellations against the cut-off, per mechanic
-- and overall, each mechanic counted in its own local days.

-- ---------------------------------------------------------------------------------------------
-- No-shows: which side never showed up (called by the request sweep as it cancels)
-- ---------------------------------------------------------------------------------------------
-- A side showed up when it called start_session (ready_at) or joined the room (joined_at). A
-- session both sides showed up for is not a no-show (it failed for another reason) and gets no
-- row. Called before the cancellation, in its transaction: the row and the cancellation commit
-- together.
create or replace function private.record_no_show(p_session_id uuid, p_now timestamptz default now())
returns text
language plpgsql security definer set search_path = ''
as $$
declare
  v_customer boolean;
  v_mechanic boolean;
  v_side text;
begin
  select coalesce(bool_or(p.user_id = s.customer_id and (p.joined_at is not null or p.ready_at is not null)), false),
         coalesce(bool_or(p.user_id = s.mechanic_id and (p.joined_at is not null or p.ready_at is not null)), false)
  into v_customer, v_mechanic
  from public.sessions s
  left join public.session_participants p on p.session_id = s.id
  where s.id = p_session_id and s.mechanic_id is not null
  group by s.id;
  if not found or (v_customer and v_mechanic) then
    return null;
  end if;
  v_side := case when not v_customer and not v_mechanic then 'both' when not v_customer then 'customer' else 'mechanic' end;
  insert into private.session_no_shows (session_id, side, at) values (p_session_id, v_side, p_now)
  on conflict (session_id) do nothing;
  return v_side;
end
$$;
revoke execute on function private.record_no_show(uuid, timestamptz) from public;
grant execute on function private.record_no_show(uuid, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- The figures
-- ---------------------------------------------------------------------------------------------
-- Local dates p_from..p_to (both included) of mechanic p_mechanic_id, or of every mechanic (null).
-- Each mechanic's window is [p_from 00:00, p_to + 1 00:00) on its own wall clock
-- (mechanics.timezone, the zone of its availability), so a DST day is 23 or 25 hours long.
-- Returns {mechanics: [...], overall: {...}}; the shape of each is in docs/operations.md.
create or replace function private.scheduling_stats(p_from date, p_to date, p_mechanic_id uuid)
returns jsonb
language plpgsql stable security definer set search_path = '' set jit = off
as $$
declare
  v_cutoff interval := private.setting_interval('scheduling.change_cutoff');
  -- the earliest and latest instants any zone's window can reach (UTC+14 … UTC−12)
  v_lo timestamptz := p_from::timestamp at time zone 'Etc/GMT-14';
  v_hi timestamptz := (p_to + 1)::timestamp at time zone 'Etc/GMT+12';
  v_out jsonb;
begin
  with m as (
    select mm.id, mm.display_name, mm.timezone as tz,
           tstzrange(p_from::timestamp at time zone mm.timezone, (p_to + 1)::timestamp at time zone mm.timezone) as w
    from public.mechanics mm
    where mm.id = p_mechanic_id
    union all
    select mm.id, mm.display_name, mm.timezone,
           tstzrange(p_from::timestamp at time zone mm.timezone, (p_to + 1)::timestamp at time zone mm.timezone)
    from public.mechanics mm
    where p_mechanic_id is null
  ),
  -- open time: the availability model's own function (rules, overrides, workshop hours), clipped
  -- to the mechanic's window, minus its time off
  open_t as (
    select o.mechanic_id, range_agg(o.r) as mr
    from private.open_ranges(array(select m.id from m), v_lo, v_hi) o
    group by o.mechanic_id
  ),
  off_t as (
    select t.mechanic_id, range_agg(t.during) as mr
    from public.mechanic_time_off t join m on m.id = t.mechanic_id
    where t.during && m.w
    group by t.mechanic_id
  ),
  avail as (
    select m.id, coalesce((select sum(extract(epoch from upper(x.r) - lower(x.r))) / 60
                           from unnest((o.mr * multirange(m.w)) - coalesce(f.mr, '{}'::tstzmultirange)) x(r)), 0) as minutes
    from m join open_t o on o.mechanic_id = m.id
    left join off_t f on f.mechanic_id = m.id
  ),
  -- booked time: booked sessions not cancelled before they opened, clipped to the window
  booked as (
    select m.id, sum(extract(epoch from upper(x) - lower(x)) / 60) as minutes
    from m join public.sessions s on s.mechanic_id = m.id and s.scheduled_for is not null
    cross join lateral (select tstzrange(s.scheduled_for, s.scheduled_for + make_interval(mins => s.planned_minutes)) * m.w as x) b
    where s.scheduled_for < upper(m.w) and s.scheduled_for + make_interval(mins => s.planned_minutes) > lower(m.w)
      and not (s.status = 'cancelled' and exists (
        select 1 from public.session_events e
        where e.session_id = s.id and e.entity = 'session' and e.to_status = 'cancelled' and e.from_status = 'scheduled'))
    group by m.id
  ),
  -- the sessions of the range: a booked one by its booked start, an on-demand one by the time it
  -- opened for joining (accepted); never-accepted requests have no mechanic and no local day
  s as (
    select x.*
    from (
      select m.id as mid, s.id, s.scheduled_for is not null as is_booked, s.scheduled_for, s.created_at, s.started_at,
             op.at as opened_at, c.at as cancelled_at, c.actor_role as cancelled_by, c.from_status as cancelled_from,
             ns.side as no_show, coalesce(s.scheduled_for, op.at) as ref, m.w
      from m join public.sessions s on s.mechanic_id = m.id
      left join lateral (select e.at from public.session_events e
                         where e.session_id = s.id and e.entity = 'session' and e.to_status = 'waiting'
                         order by e.id limit 1) op on true
      left join lateral (select e.at, e.actor_role, e.from_status from public.session_events e
                         where e.session_id = s.id and e.entity = 'session' and e.to_status = 'cancelled'
                         order by e.id desc limit 1) c on true
      left join private.session_no_shows ns on ns.session_id = s.id
      where s.created_at < upper(m.w)
    ) x
    where x.ref <@ x.w
  ),
  per as (
    select m.id, m.display_name, m.tz,
           coalesce(a.minutes, 0) as available, coalesce(b.minutes, 0) as booked,
           count(s.id) filter (where s.is_booked and s.started_at is not null) as held_booked,
           count(s.id) filter (where not s.is_booked and s.started_at is not null) as held_on_demand,
           count(s.id) filter (where s.opened_at is not null) as opened,
           count(s.id) filter (where s.no_show in ('customer', 'both')) as ns_customer,
           count(s.id) filter (where s.no_show in ('mechanic', 'both')) as ns_mechanic,
           count(s.id) filter (where s.is_booked) as bookings,
           percentile_cont(0.5) within group (order by extract(epoch from s.scheduled_for - s.created_at) / 60)
             filter (where s.is_booked) as lead_median,
           percentile_cont(0.9) within group (order by extract(epoch from s.scheduled_for - s.created_at) / 60)
             filter (where s.is_booked) as lead_p90,
           count(s.id) filter (where s.is_booked and s.cancelled_from = 'scheduled'
                               and s.scheduled_for - s.cancelled_at < v_cutoff) as cancel_inside,
           count(s.id) filter (where s.is_booked and s.cancelled_from = 'scheduled'
                               and s.scheduled_for - s.cancelled_at >= v_cutoff) as cancel_outside,
           jsonb_build_object(
             'customer', count(s.id) filter (where s.cancelled_from = 'scheduled' and s.is_booked and s.cancelled_by = 'customer'),
             'mechanic', count(s.id) filter (where s.cancelled_from = 'scheduled' and s.is_booked and s.cancelled_by = 'mechanic'),
             'admin', count(s.id) filter (where s.cancelled_from = 'scheduled' and s.is_booked and s.cancelled_by = 'admin'),
             'system', count(s.id) filter (where s.cancelled_from = 'scheduled' and s.is_booked and s.cancelled_by = 'system')) as cancel_by,
           jsonb_build_object(
             'customer', count(s.id) filter (where s.cancelled_from = 'scheduled' and s.is_booked and s.cancelled_by = 'customer'
                                             and s.scheduled_for - s.cancelled_at < v_cutoff),
             'mechanic', count(s.id) filter (where s.cancelled_from = 'scheduled' and s.is_booked and s.cancelled_by = 'mechanic'
                                             and s.scheduled_for - s.cancelled_at < v_cutoff),
             'admin', count(s.id) filter (where s.cancelled_from = 'scheduled' and s.is_booked and s.cancelled_by = 'admin'
                                          and s.scheduled_for - s.cancelled_at < v_cutoff),
             'system', count(s.id) filter (where s.cancelled_from = 'scheduled' and s.is_booked and s.cancelled_by = 'system'
                                           and s.scheduled_for - s.cancelled_at < v_cutoff)) as cancel_inside_by
    from m
    left join avail a on a.id = m.id
    left join booked b on b.id = m.id
    left join s on s.mid = m.id
    group by m.id, m.display_name, m.tz, a.minutes, b.minutes
  ),
  shown as (
    select * from per
    where p_mechanic_id is not null or available > 0 or booked > 0 or opened > 0 or bookings > 0
  ),
  leads as (
    select percentile_cont(0.5) within group (order by extract(epoch from s.scheduled_for - s.created_at) / 60) as med,
           percentile_cont(0.9) within group (order by extract(epoch from s.scheduled_for - s.created_at) / 60) as p90
    from s where s.is_booked
  )
  select jsonb_build_object(
    'mechanics', coalesce((
      select jsonb_agg(private.scheduling_stats_figures(
               jsonb_build_object('mechanic_id', p.id, 'display_name', p.display_name, 'timezone', p.tz),
               p.available, p.booked, p.held_booked, p.held_on_demand, p.opened, p.ns_customer, p.ns_mechanic,
               p.bookings, p.lead_median, p.lead_p90, p.cancel_inside, p.cancel_outside, p.cancel_by, p.cancel_inside_by)
             order by p.display_name, p.id)
      from shown p), '[]'),
    'overall', (
      select private.scheduling_stats_figures(
               jsonb_build_object('mechanics', count(*)),
               coalesce(sum(p.available), 0), coalesce(sum(p.booked), 0), coalesce(sum(p.held_booked), 0)::bigint,
               coalesce(sum(p.held_on_demand), 0)::bigint, coalesce(sum(p.opened), 0)::bigint,
               coalesce(sum(p.ns_customer), 0)::bigint, coalesce(sum(p.ns_mechanic), 0)::bigint,
               coalesce(sum(p.bookings), 0)::bigint, (select l.med from leads l), (select l.p90 from leads l),
               coalesce(sum(p.cancel_inside), 0)::bigint, coalesce(sum(p.cancel_outside), 0)::bigint,
               jsonb_build_object(
                 'customer', coalesce(sum((p.cancel_by ->> 'customer')::int), 0),
                 'mechanic', coalesce(sum((p.cancel_by ->> 'mechanic')::int), 0),
                 'admin', coalesce(sum((p.cancel_by ->> 'admin')::int), 0),
                 'system', coalesce(sum((p.cancel_by ->> 'system')::int), 0)),
               jsonb_build_object(
                 'customer', coalesce(sum((p.cancel_inside_by ->> 'customer')::int), 0),
                 'mechanic', coalesce(sum((p.cancel_inside_by ->> 'mechanic')::int), 0),
                 'admin', coalesce(sum((p.cancel_inside_by ->> 'admin')::int), 0),
                 'system', coalesce(sum((p.cancel_inside_by ->> 'system')::int), 0)))
      from shown p))
  into v_out;
  return v_out || jsonb_build_object('from', p_from, 'to', p_to, 'change_cutoff', private.setting_text('scheduling.change_cutoff'));
end
$$;
revoke execute on function private.scheduling_stats(date, date, uuid) from public;
grant execute on function private.scheduling_stats(date, date, uuid) to service_role;

-- One block of figures (a mechanic's or the overall one) from its counts; ratios are null when
-- their denominator is 0.
create or replace function private.scheduling_stats_figures(
  p_head jsonb, p_available numeric, p_booked numeric, p_held_booked bigint, p_held_on_demand bigint,
  p_opened bigint, p_ns_customer bigint, p_ns_mechanic bigint, p_bookings bigint,
  p_lead_median double precision, p_lead_p90 double precision, p_cancel_inside bigint, p_cancel_outside bigint,
  p_cancel_by jsonb, p_cancel_inside_by jsonb
) returns jsonb
language sql immutable set search_path = ''
as $$
  select p_head || jsonb_build_object(
    'available_minutes', round(p_available, 2),
    'booked_minutes', round(p_booked, 2),
    'utilization', case when p_available > 0 then round(p_booked / p_available, 4) end,
    'sessions', jsonb_build_object(
      'booked', p_held_booked, 'on_demand', p_held_on_demand,
      'booked_share', case when p_held_booked + p_held_on_demand > 0
                           then round(p_held_booked::numeric / (p_held_booked + p_held_on_demand), 4) end),
    'no_shows', jsonb_build_object(
      'opened', p_opened, 'customer', p_ns_customer, 'mechanic', p_ns_mechanic,
      'customer_rate', case when p_opened > 0 then round(p_ns_customer::numeric / p_opened, 4) end,
      'mechanic_rate', case when p_opened > 0 then round(p_ns_mechanic::numeric / p_opened, 4) end),
    'lead_time_minutes', jsonb_build_object(
      'bookings', p_bookings,
      'median', round(p_lead_median::numeric, 1),
      'p90', round(p_lead_p90::numeric, 1)),
    'cancellations', jsonb_build_object(
      'total', p_cancel_inside + p_cancel_outside,
      'inside_cutoff', p_cancel_inside, 'outside_cutoff', p_cancel_outside,
      'by', p_cancel_by, 'inside_cutoff_by', p_cancel_inside_by));
$$;
revoke execute on function private.scheduling_stats_figures(jsonb, numeric, numeric, bigint, bigint, bigint, bigint, bigint,
  bigint, double precision, double precision, bigint, bigint, jsonb, jsonb) from public;

-- The range rules of both reports: both dates given, from ≤ to, at most operations.stats_max_days
-- local days (both ends included).
create or replace function private.check_stats_range(p_from date, p_to date) returns void
language plpgsql stable set search_path = ''
as $$
begin
  perform private.require_arg('p_from', p_from);
  perform private.require_arg('p_to', p_to);
  if p_to < p_from then
    perform private.raise_error('stats_range_reversed', format('p_to (%s) is before p_from (%s)', p_to, p_from));
  end if;
  if p_to - p_from + 1 > private.setting_int('operations.stats_max_days') then
    perform private.raise_error('stats_range_too_long',
      format('the range covers %s days, at most %s', p_to - p_from + 1, private.setting_int('operations.stats_max_days')));
  end if;
end
$$;
revoke execute on function private.check_stats_range(date, date) from public;
grant execute on function private.check_stats_range(date, date) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- RPCs
-- ---------------------------------------------------------------------------------------------
-- Admins: every mechanic with open time, booked time or sessions in the range, and the overall
-- figures. Recorded as `scheduling.stats` in the audit of admin actions (who read which range).
create or replace function public.admin_scheduling_stats(p_from date, p_to date) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_out jsonb;
begin
  perform private.require_admin();
  perform private.check_stats_range(p_from, p_to);
  v_out := private.scheduling_stats(p_from, p_to, null);
  perform private.record_admin_action('scheduling.stats', 'report', null, null,
                                      jsonb_build_object('from', p_from, 'to', p_to));
  return v_out;
end
$$;
revoke execute on function public.admin_scheduling_stats(date, date) from public, anon;
grant execute on function public.admin_scheduling_stats(date, date) to authenticated, service_role;

-- An approved mechanic: its own figures only. There is no mechanic argument: whose figures these
-- are is the caller, so no one can ask for someone else's.
create or replace function public.my_scheduling_stats(p_from date, p_to date) returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_out jsonb;
begin
  if not exists (select 1 from public.mechanics m where m.id = v_uid and m.status = 'approved') then
    perform private.raise_error('not_an_approved_mechanic', 'only an approved mechanic has scheduling figures');
  end if;
  perform private.check_stats_range(p_from, p_to);
  v_out := private.scheduling_stats(p_from, p_to, v_uid);
  return (v_out -> 'mechanics' -> 0) || jsonb_build_object('from', v_out -> 'from', 'to', v_out -> 'to',
                                                           'change_cutoff', v_out -> 'change_cutoff');
end
$$;
revoke execute on function public.my_scheduling_stats(date, date) from public, anon;
grant execute on function public.my_scheduling_stats(date, date) to authenticated, service_role;
-- <<< functions_sql operations/scheduling_stats.sql

-- >>> functions_sql scheduling/booking_rpc.sql sha256=288b0c42a20fcde3021153b8ca87419587435eb7d56dce47e8eb7b5b9b78cbed
-- Scheduling: slots, search, holds, booking and changes RPCs.

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
  join public.mechanics m on m.id = f.mechanic_id
  order by m.rating_score desc, m.customers_served desc, m.id;  -- as free_at chose them (a join keeps no order)
end
$$;
revoke execute on function public.mechanics_free_at(timestamptz, text, text, text, int) from public, anon;
grant execute on function public.mechanics_free_at(timestamptz, text, text, text, int) to authenticated, service_role;

create or replace function public.hold_slot(p_mechanic_id uuid, p_start timestamptz, p_plan_code text) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
begin
  perform private.require_waiver(v_uid);
  return private.hold_slot(v_uid, p_mechanic_id, p_start, p_plan_code, now());
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
  perform private.require_arg('p_hold_id', p_hold_id);
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
declare
  v_uid uuid := private.require_user();
begin
  perform private.require_waiver(v_uid);
  return private.book_slot(v_uid, p_hold_id, p_intake_id, p_vehicle_id, now());
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
      from private.open_ranges(array[v_target], p_from, p_to) o), '[]'::jsonb),
    'time_off', coalesce((
      select jsonb_agg(jsonb_build_object('time_off_id', t.id, 'start', lower(t.during), 'end', upper(t.during),
                                          'reason', t.reason) order by lower(t.during))
      from public.mechanic_time_off t
      where t.mechanic_id = v_target and t.during && tstzrange(p_from, p_to)), '[]'::jsonb));
end
$$;
revoke execute on function public.mechanic_calendar(timestamptz, timestamptz, uuid) from public, anon;
grant execute on function public.mechanic_calendar(timestamptz, timestamptz, uuid) to authenticated, service_role;
-- <<< functions_sql scheduling/booking_rpc.sql

-- >>> functions_sql scheduling/holds.sql sha256=f8aee44aa98e1225386f30125690e6bad521a719e70e2eb66eb7b48647c2cb6d
-- Scheduling: holds and bookings.

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
    from private.open_ranges(array[p_mechanic_id], p_start, p_start + v_dur) o
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
  perform private.check_booking_limits(p_customer_id, v_price, null, p_now);  -- trust/limits.sql
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
  -- this hold becomes the booking: it is not one more (trust/limits.sql); input errors first
  perform private.check_intake_unlocked(p_customer_id, p_intake_id, p_vehicle_id);
  perform private.check_booking_limits(p_customer_id, p_price_cents, v_hold.id, p_now);
  v_intake := private.check_booking_intake(p_customer_id, p_intake_id, p_vehicle_id);
  v_vehicle_id := coalesce(p_vehicle_id, v_intake.vehicle_id);

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
  v_price int;
  v_specialist boolean;
begin
  if p_hold_id is null or p_intake_id is null then
    perform private.raise_error('invalid_input', 'p_hold_id and p_intake_id are required');
  end if;
  select * into v_hold from public.mechanic_commitments where id = p_hold_id and kind = 'hold';
  if not found or v_hold.customer_id is distinct from p_customer_id then
    perform private.raise_error('not_found', 'no such hold');
  end if;
  select h.price_cents, h.specialist into v_price, v_specialist
  from private.hold_booking_price(v_hold, p_customer_id, p_intake_id, p_vehicle_id) h;
  if v_price = 0 then
    return private.confirm_hold(p_hold_id, p_customer_id, p_intake_id, p_vehicle_id, 0, false, p_now);
  end if;
  -- lock order: mechanic (inside confirm_hold, first), the customer's limits, then the credit
  perform private.lock_mechanic(v_hold.mechanic_id);
  perform private.lock_customer_limits(p_customer_id);
  perform private.lock_credit(p_customer_id);
  if private.credit_balance(p_customer_id) < v_price then
    perform private.raise_error('payment_required',
      format('this slot costs %s cents%s: pay through create_checkout with hold_id', v_price,
             case when v_specialist then ' with the brand specialist surcharge' else '' end));
  end if;
  select * into v_plan from public.service_plans where code = v_hold.plan_code;
  v_result := private.confirm_hold(p_hold_id, p_customer_id, p_intake_id, p_vehicle_id, v_price, false, p_now);
  update public.sessions set specialist = v_specialist where id = (v_result ->> 'session_id')::uuid;
  insert into public.bookings (customer_id, plan_code, intake_id, vehicle_id, preferred_mechanic_id, specialist,
                               price_cents, currency, method, status, status_changed_at, hold_id, session_id)
  values (p_customer_id, v_plan.code, p_intake_id,
          (select s.vehicle_id from public.sessions s where s.id = (v_result ->> 'session_id')::uuid),
          v_hold.mechanic_id, v_specialist, v_price, v_plan.currency, 'credit', 'paid', p_now, p_hold_id,
          (v_result ->> 'session_id')::uuid)
  returning id into v_booking_id;
  perform private.pay_booking_with_credit(v_booking_id, format('%s booking', v_plan.code), p_now);
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
  v_price int;
  v_specialist boolean;
begin
  if p_customer_id is null or p_hold_id is null or p_intake_id is null then
    perform private.raise_error('invalid_input', 'hold_id and intake_id are required');
  end if;
  perform private.require_waiver(p_customer_id);
  select * into v_hold from public.mechanic_commitments where id = p_hold_id and kind = 'hold';
  if not found or v_hold.customer_id is distinct from p_customer_id then
    perform private.raise_error('not_found', 'no such hold');
  end if;
  if v_hold.status <> 'held' or v_hold.expires_at <= p_now then
    perform private.raise_error('hold_expired', 'the hold expired: hold the slot again');
  end if;
  select * into v_plan from public.service_plans where code = v_hold.plan_code;
  select * into v_intake from public.intakes where id = p_intake_id and customer_id = p_customer_id;
  if not found then
    perform private.raise_error('not_found', 'no such intake');
  end if;
  select h.price_cents, h.specialist into v_price, v_specialist
  from private.hold_booking_price(v_hold, p_customer_id, p_intake_id, p_vehicle_id) h;
  if v_price = 0 then
    perform private.raise_error('invalid_input', 'this slot is free: book it with book_slot');
  end if;
  if v_intake.status <> 'new' then
    perform private.raise_error('conflict', format('the intake is %s, not new', v_intake.status));
  end if;
  if private.credit_balance(p_customer_id) >= v_price then
    v_result := private.book_slot(p_customer_id, p_hold_id, p_intake_id, p_vehicle_id, p_now);
    return jsonb_build_object('mode', 'credit', 'booking_id', v_result ->> 'booking_id',
                              'session_id', v_result ->> 'session_id', 'request_id', null,
                              'price_cents', v_price, 'currency', v_plan.currency,
                              'credit_balance_cents', private.credit_balance(p_customer_id));
  end if;
  -- the same open checkout again (same hold, intake, vehicle and so the same price)
  select * into v_booking from public.bookings b
  where b.hold_id = p_hold_id and b.status = 'pending' and b.method = 'card' and b.checkout_url is not null
    and b.intake_id = v_intake.id and b.vehicle_id is not distinct from coalesce(p_vehicle_id, v_intake.vehicle_id)
    and b.price_cents = v_price and b.specialist = v_specialist
    and b.expires_at > p_now + interval '5 minutes'
  order by b.created_at desc limit 1;
  if found then
    return jsonb_build_object('mode', 'stripe', 'reused', true, 'booking_id', v_booking.id, 'url', v_booking.checkout_url,
                              'price_cents', v_booking.price_cents, 'currency', v_booking.currency);
  end if;
  -- Stripe's shortest Checkout lifetime is 30 minutes: a payment after the hold's end takes the
  -- re-hold-or-refund path (private.confirm_hold with p_rehold).
  insert into public.bookings (customer_id, plan_code, intake_id, vehicle_id, preferred_mechanic_id, specialist,
                               price_cents, currency, method, status, status_changed_at, expires_at, hold_id)
  values (p_customer_id, v_plan.code, v_intake.id, coalesce(p_vehicle_id, v_intake.vehicle_id), v_hold.mechanic_id,
          v_specialist, v_price, v_plan.currency, 'card', 'pending', p_now,
          greatest(v_hold.expires_at, p_now + interval '30 minutes') + interval '1 minute', p_hold_id)
  returning * into v_booking;
  return jsonb_build_object('mode', 'stripe', 'reused', false, 'booking_id', v_booking.id,
                            'price_cents', v_booking.price_cents, 'currency', v_plan.currency,
                            'product_name', v_plan.name || case when v_specialist then ' + brand specialist' else '' end
                              || ' at ' || to_char(lower(v_hold.during) at time zone 'UTC', 'YYYY-MM-DD HH24:MI "UTC"'),
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
  v_result jsonb;
begin
  select * into v_booking from public.bookings where id = p_booking_id;
  v_result := private.confirm_hold(v_booking.hold_id, v_booking.customer_id, v_booking.intake_id, v_booking.vehicle_id,
                                   p_amount_cents, true, p_now);
  -- the session records what was charged: the booking's specialist flag (priced at checkout)
  update public.sessions set specialist = v_booking.specialist where id = (v_result ->> 'session_id')::uuid;
  return v_result;
end
$$;
revoke execute on function private.book_paid_hold(uuid, int, timestamptz) from public;
grant execute on function private.book_paid_hold(uuid, int, timestamptz) to service_role;
-- <<< functions_sql scheduling/holds.sql

-- >>> functions_sql scheduling/open_time.sql sha256=9ba9ed6612e9cb4fbaff5a4fea39b1198f31d62221f284555fe63b8e88c2b7d6
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
-- (mechanics_directory_order_idx, one city's when p_city is given) in batches that double, each
-- batch checked set-based, until p_limit are found. Most mechanics are free at a usual time, so
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
  v_city text := lower(btrim(p_city));
  v_brand text[] := array[lower(btrim(coalesce(p_brand, '')))];
  v_cur refcursor;
  v_id uuid;
  v_batch uuid[] := '{}';
  v_size int := greatest(2 * p_limit, 16);
  v_left int := p_limit;
  v_found int;
  v_done boolean := false;
begin
  select make_interval(mins => sp.minutes), sp.price_cents into v_dur, v_price
  from public.service_plans sp where sp.code = p_plan_code and sp.active;
  if not found or p_limit is null or p_limit < 1 then
    return;
  end if;
  -- the directory order of the mechanics that take bookings (the cheap per-row rules here; the
  -- open-time rules per batch below); two queries, so that each has its index
  if v_city is null then
    open v_cur for
      select m.id from public.mechanics m
      where m.status = 'approved' and m.can_accept_sessions
        and (m.mechanic_type = 'virtual_only' or m.organization_id is not null)
        and (p_brand is null or m.brand_keys @> v_brand)
      order by m.rating_score desc, m.customers_served desc, m.id;
  else
    open v_cur for
      select m.id from public.mechanics m
      where m.city_key = v_city and m.status = 'approved' and m.can_accept_sessions
        and (m.mechanic_type = 'virtual_only' or m.organization_id is not null)
        and (p_brand is null or m.brand_keys @> v_brand)
      order by m.rating_score desc, m.customers_served desc, m.id;
  end if;
  while not v_done loop
    fetch v_cur into v_id;
    if found then
      v_batch := v_batch || v_id;
    else
      v_done := true;
    end if;
    if cardinality(v_batch) >= v_size or (v_done and cardinality(v_batch) > 0) then
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
        where coalesce(rl.instant_booking, v_instant)
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
      exit when v_left <= 0;
      v_batch := '{}';
      v_size := least(v_size * 2, 1024);
    end if;
  end loop;
  close v_cur;
end
$$;
revoke execute on function private.free_at(timestamptz, text, text, text, int, timestamptz) from public;
grant execute on function private.free_at(timestamptz, text, text, text, int, timestamptz) to service_role;
-- <<< functions_sql scheduling/open_time.sql

-- no longer defined in supabase/functions_sql/
drop function if exists private.open_ranges(pg_catalog.uuid,timestamp with time zone,timestamp with time zone);

reset check_function_bodies;

-- functions_sql-manifest: the state of supabase/functions_sql/ after this migration
-- functions_sql-manifest core/admin.sql sha256=f3423df9a7c70656d684d4eacda964fa8cd797385cbe652f801bc08abd55edc0
-- functions_sql-manifest core/broadcasts.sql sha256=c93578c48e0d8c0c565a87dcb05642e2db63a0c8f168c31dee9dff2d1c798cec
-- functions_sql-manifest core/directory.sql sha256=97061e15165f3460c9f89023ee7162fa3b68d758e42d9d514665d237c6eb604d
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
-- functions_sql-manifest matching/listing.sql sha256=6e0c8a27974f244f39be7827a632071f6755ee5675563f3dd1c0d2093e9f3734
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
-- functions_sql-manifest scheduling/open_time.sql sha256=9ba9ed6612e9cb4fbaff5a4fea39b1198f31d62221f284555fe63b8e88c2b7d6
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
