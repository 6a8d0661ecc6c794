-- Trust: accept-and-release, the delayed assignment notice, and the RPCs that reach the columns of
-- public.mechanics that authenticated may not select (docs/trust.md, "Contact details, columns and
-- the waiver"). The contact window's policy helpers are in the migration (policies need them).

-- ---------------------------------------------------------------------------------------------
-- Accept-and-release
-- ---------------------------------------------------------------------------------------------
-- Records that mechanic `p_mechanic_id` released request `p_request_id` (called by cancel_request
-- with the mechanic's row not yet locked); reaching trust.max_releases_per_hour within the last
-- hour pauses its accepting for trust.release_cooldown.
create or replace function private.record_release(p_request_id uuid, p_mechanic_id uuid, p_now timestamptz)
returns void
language plpgsql security definer set search_path = ''
as $$
begin
  insert into private.request_releases (request_id, mechanic_id, released_at)
  values (p_request_id, p_mechanic_id, p_now);
  if (select count(*) from private.request_releases r
      where r.mechanic_id = p_mechanic_id and r.released_at > p_now - interval '1 hour' and not r.by_system)
     >= private.setting_int('trust.max_releases_per_hour') then
    update public.mechanics
    set releases_blocked_until = p_now + private.setting_interval('trust.release_cooldown')
    where id = p_mechanic_id;
  end if;
end
$$;
revoke execute on function private.record_release(uuid, uuid, timestamptz) from public;
grant execute on function private.record_release(uuid, uuid, timestamptz) to service_role;

-- The accept path's check (private.assign_request, after it locked the mechanic's row): one
-- indexed lookup for "released it before", and the row's releases_blocked_until.
create or replace function private.check_release_limits(
  p_mechanic public.mechanics, p_request_id uuid, p_now timestamptz
) returns void
language plpgsql stable security definer set search_path = ''
as $$
begin
  if p_mechanic.releases_blocked_until > p_now then
    perform private.raise_error('too_many_releases',
      format('you released %s accepted requests within an hour: accepting resumes at %s',
             private.setting_int('trust.max_releases_per_hour'), p_mechanic.releases_blocked_until));
  end if;
  if exists (select 1 from private.request_releases r
             where r.request_id = p_request_id and r.mechanic_id = p_mechanic.id) then
    perform private.raise_error('request_released', 'you released this request: it is for other mechanics now');
  end if;
end
$$;
revoke execute on function private.check_release_limits(public.mechanics, uuid, timestamptz) from public;
grant execute on function private.check_release_limits(public.mechanics, uuid, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- The assignment notice: mechanic_assigned is enqueued notifications.assignment_notice_delay
-- after the accept, and sent only if that mechanic still holds the session then.
-- ---------------------------------------------------------------------------------------------
create or replace function private.enqueue_assignment_notice(p_session public.sessions, p_now timestamptz)
returns bigint
language plpgsql security definer set search_path = ''
as $$
begin
  return private.enqueue(
    'email.send',
    format('email:mechanic_assigned:%s:%s:%s', p_session.id, p_session.customer_id, p_session.mechanic_id),
    jsonb_build_object('template', 'mechanic_assigned', 'user_id', p_session.customer_id, 'session_id', p_session.id,
                       'data', jsonb_build_object('mechanic_id', p_session.mechanic_id)),
    p_now + private.setting_interval('notifications.assignment_notice_delay'));
end
$$;
revoke execute on function private.enqueue_assignment_notice(public.sessions, timestamptz) from public;
grant execute on function private.enqueue_assignment_notice(public.sessions, timestamptz) to service_role;

-- Whether an email job is still due when the worker sends it (shared/email.py skips it otherwise):
-- a mechanic_assigned notice only while that mechanic still holds the session.
create or replace function private.email_still_due(p_template text, p_session_id uuid, p_data jsonb) returns boolean
language sql stable security definer set search_path = ''
as $$
  select case when p_template = 'mechanic_assigned' then
    exists (select 1 from public.sessions s
            where s.id = p_session_id and s.mechanic_id::text = p_data ->> 'mechanic_id'
              and s.status in ('waiting', 'live', 'completed'))
    -- an accept waiting for its workshop's dispatcher is not told (approve_micro_accept tells it)
    and not exists (select 1 from public.session_requests r
                    where r.session_id = p_session_id and r.approval_pending_until is not null)
  else true end
$$;
revoke execute on function private.email_still_due(text, uuid, jsonb) from public;
grant execute on function private.email_still_due(text, uuid, jsonb) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Columns of public.mechanics beyond the directory
-- ---------------------------------------------------------------------------------------------
-- The caller's own mechanic row, every column.
create or replace function public.get_my_mechanic() returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_row jsonb;
begin
  select to_jsonb(m) into v_row from public.mechanics m where m.id = v_uid;
  if v_row is null then
    perform private.raise_error('not_found', 'you have no mechanic profile');
  end if;
  return v_row;
end
$$;
revoke execute on function public.get_my_mechanic() from public, anon;
grant execute on function public.get_my_mechanic() to authenticated, service_role;

-- The members of a workshop with their contact details, for the staff who manage its roster
-- (manage_roster; platform admins: any): role, name and phone from the profile, and the full
-- mechanic row of those who are mechanics. Every member reads the plain roster
-- (organization_members: see_members).
create or replace function public.get_workshop_members(p_organization_id uuid) returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
begin
  perform private.require_arg('p_organization_id', p_organization_id);
  if not private.workshop_can(p_organization_id, v_uid, 'manage_roster') then
    -- the same answer whether or not the workshop exists
    perform private.raise_error('not_found', 'no such workshop among those you administer');
  end if;
  return coalesce((
    select jsonb_agg(jsonb_build_object(
             'user_id', om.user_id, 'role', om.role, 'joined_at', om.created_at,
             'full_name', p.full_name, 'phone', p.phone, 'mechanic', to_jsonb(m))
           order by om.role, p.full_name, om.user_id)
    from public.organization_members om
    left join public.profiles p on p.id = om.user_id
    left join public.mechanics m on m.id = om.user_id
    where om.organization_id = p_organization_id), '[]'::jsonb);
end
$$;
revoke execute on function public.get_workshop_members(uuid) from public, anon;
grant execute on function public.get_workshop_members(uuid) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- The contact window of one session
-- ---------------------------------------------------------------------------------------------
-- Whether session `s` is, at `p_now`, inside its mechanic's contact window (the rule of
-- private.my_contact_sessions, the policies' helper in the migration: keep them the same).
create or replace function private.contact_window_open(s public.sessions, p_now timestamptz) returns boolean
language plpgsql stable security definer set search_path = ''
as $$
begin
  if s.mechanic_id is null then
    return false;
  end if;
  if s.status = 'live' then
    return true;
  end if;
  return s.scheduled_for is not null
     and s.status in ('scheduled', 'waiting', 'completed')
     and p_now >= s.scheduled_for - private.setting_interval('contact.before_start')
     and p_now <= coalesce(s.ended_at,
                           s.scheduled_for + make_interval(mins => s.planned_minutes + s.extension_minutes))
                  + private.setting_interval('contact.after_end');
end
$$;
revoke execute on function private.contact_window_open(public.sessions, timestamptz) from public;
grant execute on function private.contact_window_open(public.sessions, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- What a session's mechanic needs to prepare, at any time (a booked session has no request row):
-- plan, time, concern and vehicle, never the customer's contact details or vehicle identifiers.
-- ---------------------------------------------------------------------------------------------
create or replace function public.get_session_brief(p_session_id uuid) returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_brief jsonb;
begin
  perform private.require_arg('p_session_id', p_session_id);
  select jsonb_build_object(
           'session_id', s.id, 'status', s.status, 'plan_code', s.plan_code, 'session_type', s.session_type,
           'planned_minutes', s.planned_minutes, 'scheduled_for', s.scheduled_for,
           'concern', i.concern, 'details', i.details,
           'vehicle_make', coalesce(v.make, i.vehicle_make), 'vehicle_model', coalesce(v.model, i.vehicle_model),
           'vehicle_year', coalesce(v.year, i.vehicle_year), 'odometer', coalesce(i.odometer, v.mileage),
           'contact_open', private.contact_window_open(s, now()))
  into v_brief
  from public.sessions s
  left join public.intakes i on i.id = s.intake_id
  left join public.vehicles v on v.id = s.vehicle_id
  where s.id = p_session_id
    and (s.mechanic_id = v_uid or s.customer_id = v_uid or private.is_admin());
  if v_brief is null then
    perform private.raise_error('not_found', 'no such session');
  end if;
  return v_brief;
end
$$;
revoke execute on function public.get_session_brief(uuid) from public, anon;
grant execute on function public.get_session_brief(uuid) to authenticated, service_role;
