-- Micro-sessions: effective settings, minutes used per local day, can_accept_session, the
-- accept-time check and reservation, settlement at the end.

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
revoke execute on function private.micro_cap(uuid) from public;
grant execute on function private.micro_cap(uuid) to authenticated, service_role;

-- Micro minutes used on the mechanic's current local day (settled minutes, else reserved ones).
create or replace function private.micro_minutes_used(p_mechanic_id uuid, p_now timestamptz default now())
returns int
language sql stable security definer set search_path = ''
as $$
  select coalesce(sum(coalesce(u.actual_minutes, u.reserved_minutes)), 0)::int
  from public.micro_minute_usage u join public.mechanics m on m.id = u.mechanic_id
  where u.mechanic_id = p_mechanic_id and u.local_day = (p_now at time zone m.timezone)::date
$$;
revoke execute on function private.micro_minutes_used(uuid, timestamptz) from public;
grant execute on function private.micro_minutes_used(uuid, timestamptz) to authenticated, service_role;

-- The micro-session rules, once, on a mechanic's row: why it may not take a session of p_minutes
-- (null: it may), and the micro minutes it has left on its local day (counted for a micro session,
-- or for any when p_count). Read by micro_eligibility (ids) and by the accept (the locked row).
create or replace function private.micro_refusal(
  p_m public.mechanics, p_micro boolean, p_minutes int, p_now timestamptz, p_count boolean default false,
  out reason text, out minutes_remaining int
)
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_o public.organizations;
begin
  if p_micro or p_count then
    if p_m.organization_id is not null then
      select * into v_o from public.organizations where id = p_m.organization_id;
    end if;
    -- the cap: the mechanic's own, else its workshop's default, else the platform's (micro_cap)
    minutes_remaining := greatest(
      coalesce(p_m.daily_micro_minutes_cap, v_o.default_daily_micro_cap, private.setting_int('micro.daily_cap_minutes'))
      - (select coalesce(sum(coalesce(u.actual_minutes, u.reserved_minutes)), 0)::int
         from public.micro_minute_usage u
         where u.mechanic_id = p_m.id and u.local_day = (p_now at time zone p_m.timezone)::date), 0);
  end if;
  reason := case
    when p_m.status <> 'approved' or not p_m.can_accept_sessions then 'not_approved'
    when not p_micro then case when p_m.participation_mode = 'micro_only' then 'participation_mode' end
    when p_m.participation_mode = 'full_only' then 'participation_mode'
    -- a dispatcher of its workshop paused its micro-sessions (workshops/dispatch.sql)
    when p_m.micro_paused_until > p_now then 'paused_by_dispatcher'
    when v_o.id is not null and not v_o.micro_sessions_enabled then 'workshop_micro_disabled'
    -- Workshop mechanics take micro sessions only on shift; independent ones any time.
    when p_m.mechanic_type = 'workshop_affiliated' and not p_m.currently_on_shift then 'not_on_shift'
    when v_o.id is not null and p_minutes > v_o.micro_max_duration then 'longer_than_workshop_maximum'
    when p_minutes > minutes_remaining then 'daily_cap_reached'
  end;
end
$$;
revoke execute on function private.micro_refusal(public.mechanics, boolean, int, timestamptz, boolean) from public;
grant execute on function private.micro_refusal(public.mechanics, boolean, int, timestamptz, boolean) to service_role;

-- The micro-session rules, as data: {can_accept, reason, minutes_remaining}.
create or replace function private.micro_eligibility(
  p_mechanic_id uuid, p_duration_type text, p_minutes int, p_now timestamptz default now()
) returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_m public.mechanics;
  v_r record;
begin
  select * into v_m from public.mechanics where id = p_mechanic_id;
  if not found then
    return jsonb_build_object('can_accept', false, 'reason', 'not_a_mechanic', 'minutes_remaining', 0);
  end if;
  select * into v_r from private.micro_refusal(v_m, p_duration_type = 'micro', p_minutes, p_now, true);
  return jsonb_build_object('can_accept', v_r.reason is null, 'reason', v_r.reason,
                            'minutes_remaining', v_r.minutes_remaining);
end
$$;
revoke execute on function private.micro_eligibility(uuid, text, int, timestamptz) from public;
grant execute on function private.micro_eligibility(uuid, text, int, timestamptz) to service_role;

-- can_accept_session: p_session_type is a duration type (micro / standard /
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
                     and private.workshop_can(m.organization_id, v_uid, 'dispatch')) then
    perform private.raise_error('not_allowed', 'only the mechanic, its workshop and admins may ask');
  end if;
  return private.micro_eligibility(p_mechanic_id, case when p_session_type = 'micro' then 'micro' else 'full' end,
                                   p_duration_minutes, now());
end
$$;
revoke execute on function public.can_accept_session(uuid, text, int) from public, anon;
grant execute on function public.can_accept_session(uuid, text, int) to authenticated, service_role;

-- Called by private.assign_request with the mechanic's row locked and the session row its update
-- returned: refuses what the micro rules forbid (micro_refusal, on the rows in hand) and reserves the
-- planned minutes of a micro session on the mechanic's local day (so concurrent accepts can never
-- exceed the cap). A refusal carries micro_eligibility's answer as its detail. The caller records
-- on_shift in its own update of the session.
create or replace function private.check_and_reserve_accept_rows(
  p_m public.mechanics, p_s public.sessions, p_now timestamptz
) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_reason text := (private.micro_refusal(p_m, p_s.duration_type = 'micro', p_s.planned_minutes, p_now)).reason;
begin
  if v_reason = 'paused_by_dispatcher' then  -- workshops/dispatch.sql
    perform private.raise_error('micro_paused',
      format('a dispatcher of your workshop paused your micro-sessions until %s', p_m.micro_paused_until));
  end if;
  if v_reason is not null then
    perform private.raise_error('session_not_eligible', format('cannot take this session: %s', v_reason),
      private.micro_eligibility(p_m.id, case when p_s.duration_type = 'micro' then 'micro' else 'full' end,
                                p_s.planned_minutes, p_now)::text);
  end if;
  if p_s.duration_type = 'micro' then
    insert into public.micro_minute_usage (session_id, mechanic_id, local_day, reserved_minutes)
    values (p_s.id, p_m.id, (p_now at time zone p_m.timezone)::date, p_s.planned_minutes)
    on conflict (session_id) do update
    set mechanic_id = excluded.mechanic_id, local_day = excluded.local_day,
        reserved_minutes = excluded.reserved_minutes, actual_minutes = null, settled_at = null;
  end if;
end
$$;
revoke execute on function private.check_and_reserve_accept_rows(public.mechanics, public.sessions, timestamptz)
  from public;
grant execute on function private.check_and_reserve_accept_rows(public.mechanics, public.sessions, timestamptz)
  to service_role;

-- Lifecycle step (core/lifecycle.sql, and the release in public.cancel_request): a completed micro
-- session counts its actual minutes (never more than it was allowed, planned + extensions); a
-- cancelled or released one counts nothing. The open shift's counters grow as sessions end.
drop trigger if exists _420_micro_settle on public.sessions;
drop function if exists private.tg_sessions__micro_settle();
create or replace function private.micro_settle(p_session_id uuid, p_now timestamptz default now()) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_s public.sessions;
  v_minutes int;
begin
  select * into v_s from public.sessions where id = p_session_id;
  if v_s.status = 'completed' then
    v_minutes := least(coalesce(v_s.duration_minutes, 0), v_s.planned_minutes + v_s.extension_minutes);
    if v_s.duration_type = 'micro' then
      update public.micro_minute_usage set actual_minutes = v_minutes, settled_at = p_now
      where session_id = v_s.id;
    end if;
    if v_s.on_shift then
      update public.mechanic_shift_logs l
      set micro_sessions_taken = l.micro_sessions_taken + (v_s.duration_type = 'micro')::int,
          micro_minutes_used = l.micro_minutes_used + case when v_s.duration_type = 'micro' then v_minutes else 0 end,
          full_sessions_taken = l.full_sessions_taken + (v_s.duration_type <> 'micro')::int
      where l.mechanic_id = v_s.mechanic_id and l.clock_out_at is null;
    end if;
  elsif v_s.status in ('cancelled', 'pending') then  -- cancelled, or released back to pending
    update public.micro_minute_usage set actual_minutes = 0, settled_at = p_now where session_id = v_s.id;
  end if;
end
$$;
revoke execute on function private.micro_settle(uuid, timestamptz) from public;
grant execute on function private.micro_settle(uuid, timestamptz) to service_role;

-- A customer's preferred mechanic must be able to take the plan's kind of session (the micro rules:
-- participation mode, shift, workshop, daily cap), else the customer would wait out the preferred
-- window on a mechanic who cannot accept: preferred_mechanic_not_eligible names why. Checked where
-- the customer chooses (request_session, prepare_checkout), before any money moves; not when a paid
-- request is created, which must not fail after payment.
create or replace function private.check_preferred_eligible(
  p_mechanic_id uuid, p_plan_code text, p_now timestamptz default now()
) returns void
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_m public.mechanics;
  v_plan public.service_plans;
  v_reason text;
begin
  if p_mechanic_id is null then
    return;
  end if;
  select * into v_m from public.mechanics where id = p_mechanic_id;
  select * into v_plan from public.service_plans where code = p_plan_code;
  if v_m.id is null or v_plan.code is null then
    return;  -- check_preferred_mechanic and the plan's check answer these
  end if;
  v_reason := (private.micro_refusal(v_m, v_plan.duration_type = 'micro', v_plan.minutes, p_now)).reason;
  if v_reason is not null and v_reason <> 'not_approved' then
    perform private.raise_error('preferred_mechanic_not_eligible',
      format('the preferred mechanic cannot take this session: %s', v_reason),
      jsonb_build_object('reason', v_reason)::text);
  end if;
end
$$;
revoke execute on function private.check_preferred_eligible(uuid, text, timestamptz) from public;
grant execute on function private.check_preferred_eligible(uuid, text, timestamptz) to service_role;
