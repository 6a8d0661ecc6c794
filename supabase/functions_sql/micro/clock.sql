-- Micro-sessions: clock in and out, the availability status and its view.

-- ---------------------------------------------------------------------------------------------
-- Clock in / out (public.clock and public.clock_status)
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

-- A midnight reset, kept for schedules that call it: usage is per local date, so this only records that
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

-- Each mechanic's availability status, for itself, its workshop's admins and platform admins. The
-- shift columns of public.mechanics are not selectable by authenticated (docs/access.md): a
-- security definer function reads the rows the caller may see, the view shows them.
drop view if exists public.mechanic_availability_status;
create or replace function private.my_availability_rows()
returns table (mechanic_id uuid, display_name text, organization_id uuid, participation_mode public.participation_mode,
               currently_on_shift boolean, last_clock_in timestamptz, last_clock_out timestamptz)
language sql stable security definer set search_path = ''
as $$
  select m.id, m.display_name, m.organization_id, m.participation_mode, m.currently_on_shift, m.last_clock_in,
         m.last_clock_out
  from public.mechanics m
  where m.id = (select auth.uid()) or m.organization_id in (select private.my_workshop_ids('dispatch'))
     or (select private.is_admin())
$$;
revoke execute on function private.my_availability_rows() from public;
grant execute on function private.my_availability_rows() to authenticated, service_role;

create view public.mechanic_availability_status with (security_invoker = true) as
select m.mechanic_id, m.display_name, m.organization_id, m.participation_mode, m.currently_on_shift,
       m.last_clock_in, m.last_clock_out,
       private.availability_status(m.currently_on_shift, m.participation_mode) as availability_status,
       private.micro_cap(m.mechanic_id) as daily_micro_minutes_cap,
       private.micro_minutes_used(m.mechanic_id, now()) as daily_micro_minutes_used,
       greatest(private.micro_cap(m.mechanic_id) - private.micro_minutes_used(m.mechanic_id, now()), 0)
         as micro_minutes_remaining
from private.my_availability_rows() m;
grant select on public.mechanic_availability_status to authenticated, service_role;

