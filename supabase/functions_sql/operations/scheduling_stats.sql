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
