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
