-- Micro-sessions: dashboards.

-- ---------------------------------------------------------------------------------------------
-- Dashboards for mechanics, workshops and admins. Periods end now and span p_days days.
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
  if not private.workshop_can(p_organization_id, (select auth.uid()), 'dispatch') then
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

