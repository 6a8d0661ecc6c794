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
