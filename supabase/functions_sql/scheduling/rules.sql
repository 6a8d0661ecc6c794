-- Scheduling: booking rules and small helpers.

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

-- The per-mechanic lock every writer of committed time takes first, so two writers for one mechanic never interleave.
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

