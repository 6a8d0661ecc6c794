-- Micro-sessions and shifts: effective settings, minutes used per local day, can_accept_session,
-- the accept-time check and reservation, settlement at the end, clock in/out and status, the
-- availability view, settings RPCs and dashboards. Re-runnable.

-- ---------------------------------------------------------------------------------------------
-- Effective settings and usage
-- ---------------------------------------------------------------------------------------------
-- The mechanic's daily micro cap: its own, else its workshop's default, else the platform's.
create or replace function private.micro_cap(p_mechanic_id uuid) returns int
language sql stable security definer set search_path = ''
as $$
  select coalesce(m.daily_micro_minutes_cap, o.default_daily_micro_cap, private.setting_int('micro.daily_cap_minutes'))
  from public.mechanics m left join public.organizations o on o.id = m.organization_id
  where m.id = p_mechanic_id
$$;

-- Micro minutes used on the mechanic's current local day (settled minutes, else reserved ones).
create or replace function private.micro_minutes_used(p_mechanic_id uuid, p_now timestamptz default now())
returns int
language sql stable security definer set search_path = ''
as $$
  select coalesce(sum(coalesce(u.actual_minutes, u.reserved_minutes)), 0)::int
  from public.micro_minute_usage u join public.mechanics m on m.id = u.mechanic_id
  where u.mechanic_id = p_mechanic_id and u.local_day = (p_now at time zone m.timezone)::date
$$;
revoke execute on function private.micro_cap(uuid), private.micro_minutes_used(uuid, timestamptz) from public;
grant execute on function private.micro_cap(uuid), private.micro_minutes_used(uuid, timestamptz)
  to authenticated, service_role;

-- The rules of seed 000, as data: {can_accept, reason, minutes_remaining}.
create or replace function private.micro_eligibility(
  p_mechanic_id uuid, p_duration_type text, p_minutes int, p_now timestamptz default now()
) returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_m public.mechanics;
  v_o public.organizations;
  v_cap int;
  v_used int;
  v_remaining int;
begin
  select * into v_m from public.mechanics where id = p_mechanic_id;
  if not found then
    return jsonb_build_object('can_accept', false, 'reason', 'not_a_mechanic', 'minutes_remaining', 0);
  end if;
  select * into v_o from public.organizations where id = v_m.organization_id;
  v_cap := private.micro_cap(p_mechanic_id);
  v_used := private.micro_minutes_used(p_mechanic_id, p_now);
  v_remaining := greatest(v_cap - v_used, 0);
  if v_m.status <> 'approved' or not v_m.can_accept_sessions then
    return jsonb_build_object('can_accept', false, 'reason', 'not_approved', 'minutes_remaining', v_remaining);
  end if;
  if p_duration_type = 'micro' then
    if v_m.participation_mode = 'full_only' then
      return jsonb_build_object('can_accept', false, 'reason', 'participation_mode', 'minutes_remaining', v_remaining);
    end if;
    if v_o.id is not null and not v_o.micro_sessions_enabled then
      return jsonb_build_object('can_accept', false, 'reason', 'workshop_micro_disabled',
                                'minutes_remaining', v_remaining);
    end if;
    -- Workshop mechanics take micro sessions only on shift; independent ones any time (seed 000).
    if v_m.mechanic_type = 'workshop_affiliated' and not v_m.currently_on_shift then
      return jsonb_build_object('can_accept', false, 'reason', 'not_on_shift', 'minutes_remaining', v_remaining);
    end if;
    if v_o.id is not null and p_minutes > v_o.micro_max_duration then
      return jsonb_build_object('can_accept', false, 'reason', 'longer_than_workshop_maximum',
                                'minutes_remaining', v_remaining);
    end if;
    if p_minutes > v_remaining then
      return jsonb_build_object('can_accept', false, 'reason', 'daily_cap_reached', 'minutes_remaining', v_remaining);
    end if;
  elsif v_m.participation_mode = 'micro_only' then
    return jsonb_build_object('can_accept', false, 'reason', 'participation_mode', 'minutes_remaining', v_remaining);
  end if;
  return jsonb_build_object('can_accept', true, 'reason', null, 'minutes_remaining', v_remaining);
end
$$;
revoke execute on function private.micro_eligibility(uuid, text, int, timestamptz) from public;
grant execute on function private.micro_eligibility(uuid, text, int, timestamptz) to service_role;

-- can_accept_session (seed 000's contract): p_session_type is a duration type (micro / standard /
-- extended) or a session type (chat / video / diagnostic, which are full sessions). The mechanic
-- itself, its workshop's owners and admins, and platform admins may ask.
create or replace function public.can_accept_session(
  p_mechanic_id uuid, p_session_type text, p_duration_minutes int
) returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
begin
  if p_mechanic_id is null or p_session_type is null or p_duration_minutes is null
     or p_duration_minutes < 1 or p_duration_minutes > 480
     or p_session_type not in ('micro', 'standard', 'extended', 'chat', 'video', 'diagnostic') then
    perform private.raise_error('invalid_input',
      'p_session_type is micro/standard/extended (or chat/video/diagnostic); minutes 1..480');
  end if;
  if p_mechanic_id <> v_uid and not private.is_admin()
     and not exists (select 1 from public.mechanics m where m.id = p_mechanic_id
                     and m.organization_id in (select private.my_admin_org_ids())) then
    perform private.raise_error('not_allowed', 'only the mechanic, its workshop and admins may ask');
  end if;
  return private.micro_eligibility(p_mechanic_id, case when p_session_type = 'micro' then 'micro' else 'full' end,
                                   p_duration_minutes, now());
end
$$;
revoke execute on function public.can_accept_session(uuid, text, int) from public, anon;
grant execute on function public.can_accept_session(uuid, text, int) to authenticated, service_role;

-- Called by private.assign_request with the mechanic's row locked: refuses what seed 000 forbids,
-- reserves the planned minutes of a micro session on the mechanic's local day (so concurrent
-- accepts can never exceed the cap), and records whether the session was taken on shift.
create or replace function private.check_and_reserve_accept(
  p_mechanic_id uuid, p_session_id uuid, p_now timestamptz
) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_s public.sessions;
  v_check jsonb;
  v_m public.mechanics;
begin
  select * into v_s from public.sessions where id = p_session_id;
  v_check := private.micro_eligibility(p_mechanic_id, case when v_s.duration_type = 'micro' then 'micro' else 'full' end,
                                       v_s.planned_minutes, p_now);
  if not (v_check ->> 'can_accept')::boolean then
    perform private.raise_error('session_not_eligible', format('cannot take this session: %s', v_check ->> 'reason'),
                                v_check::text);
  end if;
  select * into v_m from public.mechanics where id = p_mechanic_id;
  update public.sessions set on_shift = v_m.currently_on_shift where id = p_session_id;
  if v_s.duration_type = 'micro' then
    insert into public.micro_minute_usage (session_id, mechanic_id, local_day, reserved_minutes)
    values (p_session_id, p_mechanic_id, (p_now at time zone v_m.timezone)::date, v_s.planned_minutes)
    on conflict (session_id) do update
    set mechanic_id = excluded.mechanic_id, local_day = excluded.local_day,
        reserved_minutes = excluded.reserved_minutes, actual_minutes = null, settled_at = null;
  end if;
end
$$;
revoke execute on function private.check_and_reserve_accept(uuid, uuid, timestamptz) from public;
grant execute on function private.check_and_reserve_accept(uuid, uuid, timestamptz) to service_role;

-- Settlement: a completed micro session counts its actual minutes (never more than it was allowed,
-- planned + extensions); a cancelled or released one counts nothing. The open shift's counters
-- grow as sessions end.
create or replace function private.tg_sessions__micro_settle() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_minutes int;
begin
  if new.status = 'completed' and old.status is distinct from 'completed' then
    v_minutes := least(coalesce(new.duration_minutes, 0), new.planned_minutes + new.extension_minutes);
    if new.duration_type = 'micro' then
      update public.micro_minute_usage set actual_minutes = v_minutes, settled_at = now()
      where session_id = new.id;
    end if;
    if new.on_shift then
      update public.mechanic_shift_logs l
      set micro_sessions_taken = l.micro_sessions_taken + (new.duration_type = 'micro')::int,
          micro_minutes_used = l.micro_minutes_used + case when new.duration_type = 'micro' then v_minutes else 0 end,
          full_sessions_taken = l.full_sessions_taken + (new.duration_type <> 'micro')::int
      where l.mechanic_id = new.mechanic_id and l.clock_out_at is null;
    end if;
  elsif (new.status = 'cancelled' and old.status is distinct from 'cancelled')
        or (new.status = 'pending' and old.status = 'waiting') then
    update public.micro_minute_usage set actual_minutes = 0, settled_at = now() where session_id = new.id;
  end if;
  return null;
end
$$;
drop trigger if exists _420_micro_settle on public.sessions;
create trigger _420_micro_settle after update of status on public.sessions
  for each row execute function private.tg_sessions__micro_settle();

-- ---------------------------------------------------------------------------------------------
-- Clock in / out (seed 000's POST and GET /api/mechanic/clock)
-- ---------------------------------------------------------------------------------------------
create or replace function private.availability_status(p_on_shift boolean, p_mode public.participation_mode)
returns text
language sql immutable set search_path = ''
as $$
  select case when p_on_shift and p_mode in ('micro_only', 'both') then 'on_shift'
              when not p_on_shift and p_mode in ('full_only', 'both') then 'off_shift'
              else 'offline' end
$$;
revoke execute on function private.availability_status(boolean, public.participation_mode) from public;
grant execute on function private.availability_status(boolean, public.participation_mode) to authenticated, service_role;

create or replace function public.clock(p_action text, p_location text default null, p_notes text default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_m public.mechanics;
  v_log public.mechanic_shift_logs;
  v_now timestamptz := now();
begin
  if p_action is null or p_action not in ('clock_in', 'clock_out') then
    perform private.raise_error('invalid_input', 'p_action must be clock_in or clock_out');
  end if;
  if char_length(p_location) > 200 or char_length(p_notes) > 2000 then
    perform private.raise_error('invalid_input', 'p_location (200) or p_notes (2000) is too long');
  end if;
  select * into v_m from public.mechanics where id = v_uid for no key update;
  if not found or v_m.status <> 'approved' then
    perform private.raise_error('not_allowed', 'only approved mechanics clock in');
  end if;
  if p_action = 'clock_in' then
    if v_m.currently_on_shift then
      perform private.raise_error('already_clocked_in', 'already on shift since ' || v_m.last_clock_in::text);
    end if;
    insert into public.mechanic_shift_logs (mechanic_id, organization_id, clock_in_at, location, notes)
    values (v_uid, v_m.organization_id, v_now, nullif(btrim(p_location), ''), nullif(btrim(p_notes), ''));
    update public.mechanics set currently_on_shift = true, last_clock_in = v_now where id = v_uid;
    return jsonb_build_object('ok', true, 'action', 'clock_in', 'message', 'Successfully clocked in',
                              'clocked_in_at', v_now, 'status',
                              private.availability_status(true, v_m.participation_mode));
  end if;
  if not v_m.currently_on_shift then
    perform private.raise_error('not_clocked_in', 'not on shift');
  end if;
  update public.mechanic_shift_logs
  set clock_out_at = v_now,
      shift_duration_minutes = floor(extract(epoch from (v_now - clock_in_at)) / 60)::int,
      notes = coalesce(nullif(btrim(p_notes), ''), notes)
  where mechanic_id = v_uid and clock_out_at is null
  returning * into v_log;
  update public.mechanics set currently_on_shift = false, last_clock_out = v_now where id = v_uid;
  return jsonb_build_object('ok', true, 'action', 'clock_out', 'message', 'Successfully clocked out',
                            'clocked_out_at', v_now, 'shift_duration_minutes', coalesce(v_log.shift_duration_minutes, 0),
                            'status', private.availability_status(false, v_m.participation_mode));
end
$$;
revoke execute on function public.clock(text, text, text) from public, anon;
grant execute on function public.clock(text, text, text) to authenticated, service_role;

create or replace function public.clock_status() returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_m public.mechanics;
  v_log public.mechanic_shift_logs;
  v_cap int;
  v_used int;
begin
  select * into v_m from public.mechanics where id = v_uid;
  if not found then
    perform private.raise_error('not_allowed', 'only mechanics have a clock');
  end if;
  select * into v_log from public.mechanic_shift_logs where mechanic_id = v_uid and clock_out_at is null;
  v_cap := private.micro_cap(v_uid);
  v_used := private.micro_minutes_used(v_uid, now());
  return jsonb_build_object(
    'ok', true,
    'status', jsonb_build_object(
      'currently_on_shift', v_m.currently_on_shift,
      'availability_status', private.availability_status(v_m.currently_on_shift, v_m.participation_mode),
      'participation_mode', v_m.participation_mode, 'daily_micro_minutes_cap', v_cap,
      'daily_micro_minutes_used', v_used, 'micro_minutes_remaining', greatest(v_cap - v_used, 0),
      'last_clock_in', v_m.last_clock_in, 'last_clock_out', v_m.last_clock_out,
      'workshop_name', (select o.name from public.organizations o where o.id = v_m.organization_id)),
    'current_shift', case when v_log.id is null then null else jsonb_build_object(
      'id', v_log.id, 'clocked_in_at', v_log.clock_in_at,
      'duration_minutes', floor(extract(epoch from (now() - v_log.clock_in_at)) / 60)::int,
      'location', v_log.location, 'micro_sessions_taken', v_log.micro_sessions_taken,
      'micro_minutes_used', v_log.micro_minutes_used, 'full_sessions_taken', v_log.full_sessions_taken) end);
end
$$;
revoke execute on function public.clock_status() from public, anon;
grant execute on function public.clock_status() to authenticated, service_role;

-- seed 000's midnight reset, kept for its cron: usage is per local date, so this only records that
-- each mechanic's local day has started (idempotent; returns how many mechanics rolled over).
create or replace function public.reset_daily_micro_minutes(p_now timestamptz default now()) returns int
language sql security definer set search_path = ''
as $$
  with rolled as (
    update public.mechanics m set last_micro_reset_date = (p_now at time zone m.timezone)::date
    where m.last_micro_reset_date is distinct from (p_now at time zone m.timezone)::date
    returning 1)
  select count(*)::int from rolled
$$;
revoke execute on function public.reset_daily_micro_minutes(timestamptz) from public, anon, authenticated;
grant execute on function public.reset_daily_micro_minutes(timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Availability view and settings
-- ---------------------------------------------------------------------------------------------
drop view if exists public.mechanic_availability_status;
create view public.mechanic_availability_status with (security_invoker = true) as
select m.id as mechanic_id, m.display_name, m.organization_id, m.participation_mode, m.currently_on_shift,
       m.last_clock_in, m.last_clock_out,
       private.availability_status(m.currently_on_shift, m.participation_mode) as availability_status,
       private.micro_cap(m.id) as daily_micro_minutes_cap,
       private.micro_minutes_used(m.id, now()) as daily_micro_minutes_used,
       greatest(private.micro_cap(m.id) - private.micro_minutes_used(m.id, now()), 0) as micro_minutes_remaining
from public.mechanics m
where m.id = (select auth.uid()) or m.organization_id in (select private.my_admin_org_ids())
   or (select private.is_admin());
grant select on public.mechanic_availability_status to authenticated, service_role;

-- A mechanic sets its own participation mode; its workshop (owner/admin) or a platform admin sets
-- mode and cap. p_daily_cap null keeps the cap; -1 clears it (back to the workshop's default).
create or replace function public.set_mechanic_micro_settings(
  p_mechanic_id uuid, p_participation_mode text default null, p_daily_cap int default null
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_staff boolean;
begin
  if p_mechanic_id is null or (p_participation_mode is not null
                               and p_participation_mode not in ('micro_only', 'full_only', 'both'))
     or (p_daily_cap is not null and (p_daily_cap < -1 or p_daily_cap > 1440)) then
    perform private.raise_error('invalid_input', 'mode micro_only/full_only/both; cap 0..1440 (-1 clears)');
  end if;
  v_staff := private.is_admin() or exists (select 1 from public.mechanics m where m.id = p_mechanic_id
                                           and m.organization_id in (select private.my_admin_org_ids()));
  if not v_staff and (p_mechanic_id <> v_uid or p_daily_cap is not null) then
    perform private.raise_error('not_allowed', 'a mechanic sets its mode; its workshop or an admin sets caps');
  end if;
  update public.mechanics
  set participation_mode = coalesce(p_participation_mode::public.participation_mode, participation_mode),
      daily_micro_minutes_cap = case when p_daily_cap is null then daily_micro_minutes_cap
                                     when p_daily_cap = -1 then null else p_daily_cap end
  where id = p_mechanic_id;
  if not found then
    perform private.raise_error('not_found', 'no such mechanic');
  end if;
  return jsonb_build_object('mechanic_id', p_mechanic_id,
                            'participation_mode', (select participation_mode from public.mechanics where id = p_mechanic_id),
                            'daily_micro_minutes_cap', private.micro_cap(p_mechanic_id));
end
$$;
revoke execute on function public.set_mechanic_micro_settings(uuid, text, int) from public, anon;
grant execute on function public.set_mechanic_micro_settings(uuid, text, int) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- Dashboards (seed 000 §Analytics). Periods end now and span p_days days.
-- ---------------------------------------------------------------------------------------------
create or replace function public.mechanic_micro_dashboard(p_days int default 30) returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_since timestamptz;
  v_shift_hours numeric;
  v_sessions_on_shift int;
begin
  if p_days is null or p_days < 1 or p_days > 366 then
    perform private.raise_error('invalid_input', 'p_days must be 1..366');
  end if;
  if not exists (select 1 from public.mechanics where id = v_uid) then
    perform private.raise_error('not_allowed', 'mechanics only');
  end if;
  v_since := now() - make_interval(days => p_days);
  select coalesce(sum(extract(epoch from (coalesce(l.clock_out_at, now()) - greatest(l.clock_in_at, v_since)))) / 3600, 0)
  into v_shift_hours
  from public.mechanic_shift_logs l where l.mechanic_id = v_uid and coalesce(l.clock_out_at, now()) > v_since;
  select count(*) into v_sessions_on_shift from public.sessions s
  where s.mechanic_id = v_uid and s.status = 'completed' and s.on_shift and s.ended_at >= v_since;
  return jsonb_build_object(
    'daily_micro_minutes_cap', private.micro_cap(v_uid),
    'daily_micro_minutes_used', private.micro_minutes_used(v_uid, now()),
    'micro_sessions', (select count(*) from public.sessions s where s.mechanic_id = v_uid and s.status = 'completed'
                       and s.duration_type = 'micro' and s.ended_at >= v_since),
    'avg_micro_duration_minutes', (select round(avg(s.duration_minutes)::numeric, 1) from public.sessions s
                                   where s.mechanic_id = v_uid and s.status = 'completed'
                                     and s.duration_type = 'micro' and s.ended_at >= v_since),
    'on_shift_hours', round(v_shift_hours, 2),
    'sessions_per_on_shift_hour', case when v_shift_hours > 0
                                       then round(v_sessions_on_shift / v_shift_hours, 2) end);
end
$$;
revoke execute on function public.mechanic_micro_dashboard(int) from public, anon;
grant execute on function public.mechanic_micro_dashboard(int) to authenticated, service_role;

-- Downtime earnings: the price of micro sessions its mechanics completed on shift (gross, cents).
create or replace function public.workshop_micro_dashboard(p_organization_id uuid, p_days int default 30)
returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_since timestamptz;
begin
  perform private.require_user();
  if p_organization_id is null or p_days is null or p_days < 1 or p_days > 366 then
    perform private.raise_error('invalid_input', 'p_organization_id is required; p_days 1..366');
  end if;
  if not (p_organization_id in (select private.my_admin_org_ids()) or private.is_admin()) then
    perform private.raise_error('not_allowed', 'workshop owners and admins only');
  end if;
  v_since := now() - make_interval(days => p_days);
  return (
    with s as (
      select s.* from public.sessions s join public.mechanics m on m.id = s.mechanic_id
      where m.organization_id = p_organization_id and s.status = 'completed' and s.ended_at >= v_since)
    select jsonb_build_object(
      'on_shift_hours', (select round(coalesce(sum(extract(epoch from (coalesce(l.clock_out_at, now())
                                       - greatest(l.clock_in_at, v_since)))) / 3600, 0)::numeric, 2)
                         from public.mechanic_shift_logs l
                         where l.organization_id = p_organization_id and coalesce(l.clock_out_at, now()) > v_since),
      'micro_sessions', (select count(*) from s where s.duration_type = 'micro'),
      'full_sessions', (select count(*) from s where s.duration_type <> 'micro'),
      'micro_to_full_ratio', (select round(count(*) filter (where s.duration_type = 'micro')::numeric
                                           / nullif(count(*) filter (where s.duration_type <> 'micro'), 0), 2) from s),
      'avg_micro_handle_minutes', (select round(avg(s.duration_minutes)::numeric, 1) from s
                                   where s.duration_type = 'micro'),
      'downtime_earnings_cents', (select coalesce(sum(s.price_cents), 0) from s
                                  where s.duration_type = 'micro' and s.on_shift)));
end
$$;
revoke execute on function public.workshop_micro_dashboard(uuid, int) from public, anon;
grant execute on function public.workshop_micro_dashboard(uuid, int) to authenticated, service_role;

create or replace function public.admin_micro_dashboard(p_days int default 30) returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_since timestamptz;
begin
  perform private.require_admin();
  if p_days is null or p_days < 1 or p_days > 366 then
    perform private.raise_error('invalid_input', 'p_days must be 1..366');
  end if;
  v_since := now() - make_interval(days => p_days);
  return (
    with s as (select * from public.sessions where status = 'completed' and ended_at >= v_since),
    days as (
      select u.mechanic_id, u.local_day, sum(coalesce(u.actual_minutes, u.reserved_minutes)) as used
      from public.micro_minute_usage u where u.created_at >= v_since group by 1, 2)
    select jsonb_build_object(
      'micro_share_of_sessions', (select round(avg((s.duration_type = 'micro')::int)::numeric, 3) from s),
      'mechanics_taking_micro_share', (select round(count(distinct s.mechanic_id) filter (where s.duration_type = 'micro')::numeric
                                                    / nullif(count(distinct s.mechanic_id), 0), 3) from s),
      'avg_micro_duration_minutes', (select round(avg(s.duration_minutes)::numeric, 1) from s
                                     where s.duration_type = 'micro'),
      'extension_frequency', (select round(avg((s.extension_minutes > 0)::int)::numeric, 3) from s
                              where s.duration_type = 'micro'),
      'cap_utilization', (select round(avg(d.used::numeric / nullif(private.micro_cap(d.mechanic_id), 0)), 3)
                          from days d)));
end
$$;
revoke execute on function public.admin_micro_dashboard(int) from public, anon;
grant execute on function public.admin_micro_dashboard(int) to authenticated, service_role;

-- The workshop's extension rules apply to micro extensions of its mechanics' sessions.
create or replace function private.micro_extension_minutes(p_session_id uuid) returns int
language sql stable security definer set search_path = ''
as $$
  select case when o.id is null then private.setting_int('micro.extension_minutes')
              when not o.allow_extensions then 0 else o.extension_minutes end
  from public.sessions s join public.mechanics m on m.id = s.mechanic_id
  left join public.organizations o on o.id = m.organization_id
  where s.id = p_session_id
$$;
revoke execute on function private.micro_extension_minutes(uuid) from public;
grant execute on function private.micro_extension_minutes(uuid) to service_role;

revoke execute on function private.tg_sessions__micro_settle() from public;
