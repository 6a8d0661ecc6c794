-- Scheduling: availability management RPCs.

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
  perform private.require_arg('p_time_off_id', p_time_off_id);
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
  perform private.require_arg('p_organization_id', p_organization_id);
  if not private.workshop_can(p_organization_id, (select auth.uid()), 'edit_hours')
     or not exists (select 1 from public.organizations o where o.id = p_organization_id) then
    perform private.raise_error('not_allowed', 'only the workshop''s staff with edit_hours set its hours');
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
    if not private.workshop_can(p_organization_id, (select auth.uid()), 'edit_hours')
     or not exists (select 1 from public.organizations o where o.id = p_organization_id) then
      perform private.raise_error('not_allowed', 'only the workshop''s staff with edit_hours set its dates');
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
