-- Workshops: the appointment lifecycle (allowed changes of status, the audit trail), opening
-- hours, capacity and the assigned mechanic's committed time (docs/workshops.md, "Appointments").

-- ---------------------------------------------------------------------------------------------
-- Lifecycle: any other change of status fails with invalid_transition (AD006)
-- ---------------------------------------------------------------------------------------------
--   requested → proposed | confirmed | declined | cancelled
--   proposed  → confirmed (the customer accepts) | requested (the customer declines the proposal)
--               | declined | cancelled
--   confirmed → completed | no_show | cancelled
--   declined, cancelled, completed, no_show: final
create or replace function private.appointment_transition_allowed(p_from text, p_to text) returns boolean
language plpgsql immutable set search_path = ''
as $$
begin
  return (p_from, p_to) in (
    ('requested', 'proposed'), ('requested', 'confirmed'), ('requested', 'declined'), ('requested', 'cancelled'),
    ('proposed', 'confirmed'), ('proposed', 'requested'), ('proposed', 'declined'), ('proposed', 'cancelled'),
    ('confirmed', 'completed'), ('confirmed', 'no_show'), ('confirmed', 'cancelled'));
end
$$;
revoke execute on function private.appointment_transition_allowed(text, text) from public;
grant execute on function private.appointment_transition_allowed(text, text) to authenticated, service_role;

create or replace function private.tg_workshop_appointments__check_status() returns trigger
language plpgsql set search_path = ''
as $$
begin
  if tg_op = 'INSERT' then
    if new.status <> 'requested' then
      perform private.raise_error('invalid_transition', format('a new appointment cannot start as %s', new.status));
    end if;
    new.status_changed_at := now();
    return new;
  end if;
  if old.status in ('declined', 'cancelled', 'completed', 'no_show')
     and (new.starts_at, new.ends_at, new.mechanic_id, new.invoice_cents)
         is distinct from (old.starts_at, old.ends_at, old.mechanic_id, old.invoice_cents) then
    perform private.raise_error('invalid_transition', format('the appointment is %s: it no longer changes', old.status));
  end if;
  if new.status is distinct from old.status then
    if not private.appointment_transition_allowed(old.status, new.status) then
      perform private.raise_error('invalid_transition',
        format('workshop_appointments: cannot go from %s to %s', old.status, new.status));
    end if;
    new.status_changed_at := now();
  end if;
  new.updated_at := now();
  return new;
end
$$;
revoke execute on function private.tg_workshop_appointments__check_status() from public;
drop trigger if exists _100_check_status on public.workshop_appointments;
create trigger _100_check_status before insert or update on public.workshop_appointments
  for each row execute function private.tg_workshop_appointments__check_status();

-- The audit trail: every creation and change of status, with the actor the RPC set
-- (private.set_actor: customer, workshop, admin; anything else is the system).
create or replace function private.tg_workshop_appointments__audit() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_role text := nullif(current_setting('autodoctor.actor_role', true), '');
begin
  if tg_op = 'INSERT' or new.status is distinct from old.status
     or new.proposed_start is distinct from old.proposed_start then
    insert into private.appointment_events (appointment_id, from_status, to_status, actor_id, actor_role, note)
    values (new.id, case when tg_op = 'UPDATE' then old.status end, new.status, (select auth.uid()),
            case when v_role in ('customer', 'workshop', 'admin') then v_role else 'system' end,
            left(nullif(current_setting('autodoctor.reason', true), ''), 500));
  end if;
  return null;
end
$$;
revoke execute on function private.tg_workshop_appointments__audit() from public;
drop trigger if exists _200_audit on public.workshop_appointments;
create trigger _200_audit after insert or update on public.workshop_appointments
  for each row execute function private.tg_workshop_appointments__audit();

-- ---------------------------------------------------------------------------------------------
-- Opening hours
-- ---------------------------------------------------------------------------------------------
-- Whether [p_start, p_end) lies inside one open stretch of the workshop's day, in its zone
-- (organizations.timezone): a date override of the workshop (availability_overrides) replaces
-- the weekday's hours (workshop_hours, 0 = Sunday; a missing day or is_open = false is closed);
-- a break splits the day.
create or replace function private.workshop_open_for(p_workshop_id uuid, p_start timestamptz, p_end timestamptz)
returns boolean
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_tz text;
  v_ls timestamp;
  v_le timestamp;
  v_day date;
begin
  select o.timezone into v_tz from public.organizations o where o.id = p_workshop_id;
  if v_tz is null or p_start is null or p_end is null or p_end <= p_start then
    return false;
  end if;
  v_ls := p_start at time zone v_tz;
  v_le := p_end at time zone v_tz;
  v_day := v_ls::date;
  if exists (select 1 from public.availability_overrides ao where ao.organization_id = p_workshop_id and ao.on_date = v_day) then
    return exists (select 1 from public.availability_overrides ao
                   where ao.organization_id = p_workshop_id and ao.on_date = v_day and ao.is_available
                     and v_ls >= v_day + ao.start_time and v_le <= v_day + ao.end_time);
  end if;
  return exists (
    select 1 from public.workshop_hours h
    where h.organization_id = p_workshop_id and h.day_of_week = extract(dow from v_day)::int and h.is_open
      and ((v_ls >= v_day + h.open_time and v_le <= v_day + coalesce(h.break_start, h.close_time))
           or (h.break_end is not null and v_ls >= v_day + h.break_end and v_le <= v_day + h.close_time)));
end
$$;
revoke execute on function private.workshop_open_for(uuid, timestamptz, timestamptz) from public;
grant execute on function private.workshop_open_for(uuid, timestamptz, timestamptz) to service_role;

-- The end of an appointment starting at p_start, after checking the start: finite, in the
-- future, within workshops.appointment_max_advance and inside the workshop's hours.
create or replace function private.check_appointment_time(p_workshop_id uuid, p_start timestamptz, p_now timestamptz)
returns timestamptz
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_end timestamptz;
begin
  if p_start is null or not isfinite(p_start) then
    perform private.raise_error('invalid_input', 'a start time is required');
  end if;
  v_end := p_start + make_interval(mins => private.setting_int('workshops.appointment_minutes'));
  if p_start <= p_now then
    perform private.raise_error('outside_workshop_hours', 'the time is in the past');
  end if;
  if p_start > p_now + private.setting_interval('workshops.appointment_max_advance') then
    perform private.raise_error('outside_workshop_hours', 'the time is too far ahead');
  end if;
  if not private.workshop_open_for(p_workshop_id, p_start, v_end) then
    perform private.raise_error('outside_workshop_hours',
      format('the workshop is not open for the whole appointment at %s', p_start));
  end if;
  return v_end;
end
$$;
revoke execute on function private.check_appointment_time(uuid, timestamptz, timestamptz) from public;
grant execute on function private.check_appointment_time(uuid, timestamptz, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Capacity
-- ---------------------------------------------------------------------------------------------
-- Every writer of confirmed appointments (and so of capacity) locks the workshop's row first:
-- confirmations of one workshop serialize, so the count below is exact.
create or replace function private.lock_workshop(p_workshop_id uuid) returns public.organizations
language plpgsql security definer set search_path = ''
as $$
declare
  v_org public.organizations;
begin
  select * into v_org from public.organizations where id = p_workshop_id for no key update;
  return v_org;
end
$$;
revoke execute on function private.lock_workshop(uuid) from public;
grant execute on function private.lock_workshop(uuid) to service_role;

-- Raises workshop_full when confirming [p_start, p_end) would put, at some instant, more
-- confirmed appointments in the workshop than the capacity of that weekday (workshop_hours;
-- 1 on a day opened only by an override). The caller holds the workshop's lock.
create or replace function private.check_workshop_capacity(
  p_workshop_id uuid, p_appointment_id uuid, p_start timestamptz, p_end timestamptz
) returns void
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_capacity int;
  v_peak int;
begin
  select coalesce(max(h.capacity), 1) into v_capacity
  from public.organizations o
  left join public.workshop_hours h
    on h.organization_id = o.id and h.day_of_week = extract(dow from (p_start at time zone o.timezone))::int
  where o.id = p_workshop_id;
  -- the most confirmed appointments running at once inside the range: the peak is at the start
  -- of the range or at the start of one of the overlapping appointments
  with overlapping as (
    select a.starts_at, a.ends_at from public.workshop_appointments a
    where a.workshop_id = p_workshop_id and a.status = 'confirmed' and a.id <> p_appointment_id
      and a.starts_at < p_end and a.ends_at > p_start
  ), points as (
    select p_start as p union select o.starts_at from overlapping o where o.starts_at > p_start
  )
  select coalesce(max((select count(*) from overlapping o where o.starts_at <= pt.p and o.ends_at > pt.p)), 0)
  into v_peak from points pt;
  if v_peak + 1 > v_capacity then
    perform private.raise_error('workshop_full',
      format('the workshop already has %s confirmed appointments at that time (capacity %s)', v_peak, v_capacity));
  end if;
end
$$;
revoke execute on function private.check_workshop_capacity(uuid, uuid, timestamptz, timestamptz) from public;
grant execute on function private.check_workshop_capacity(uuid, uuid, timestamptz, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- The assigned mechanic's committed time
-- ---------------------------------------------------------------------------------------------
-- Takes [p_start, p_end) of mechanic `p_mechanic_id` (an approved member mechanic of the
-- workshop) as committed time of kind `appointment`: the same exclusion constraint as bookings,
-- so neither an online booking nor another appointment can take it (slot_taken, AD050).
-- Lock order: workshop, then mechanic (the scheduling writers' lock).
create or replace function private.commit_appointment_mechanic(
  p_workshop_id uuid, p_mechanic_id uuid, p_customer_id uuid, p_start timestamptz, p_end timestamptz
) returns uuid
language plpgsql security definer set search_path = ''
as $$
declare
  v_id uuid;
begin
  if not exists (select 1 from public.mechanics m
                 join public.organization_members om on om.user_id = m.id and om.organization_id = p_workshop_id
                 where m.id = p_mechanic_id and m.organization_id = p_workshop_id and m.status = 'approved') then
    perform private.raise_error('mechanic_not_in_workshop', 'the mechanic is not an approved mechanic of this workshop');
  end if;
  perform private.lock_mechanic(p_mechanic_id);
  if exists (select 1 from public.mechanic_time_off t
             where t.mechanic_id = p_mechanic_id and t.during && tstzrange(p_start, p_end)) then
    perform private.raise_error('slot_taken', 'the mechanic has time off then');
  end if;
  begin
    insert into public.mechanic_commitments (mechanic_id, kind, status, during, customer_id)
    values (p_mechanic_id, 'appointment', 'confirmed', tstzrange(p_start, p_end), p_customer_id)
    returning id into v_id;
  exception when exclusion_violation then
    perform private.raise_error('slot_taken', 'the mechanic is booked at that time');
  end;
  return v_id;
end
$$;
revoke execute on function private.commit_appointment_mechanic(uuid, uuid, uuid, timestamptz, timestamptz) from public;
grant execute on function private.commit_appointment_mechanic(uuid, uuid, uuid, timestamptz, timestamptz) to service_role;

-- Frees the mechanic's committed time of an appointment that ended (done) or will not happen
-- (released).
create or replace function private.release_appointment_mechanic(
  p_appointment public.workshop_appointments, p_status public.commitment_status
) returns void
language plpgsql security definer set search_path = ''
as $$
begin
  if p_appointment.commitment_id is null then
    return;
  end if;
  perform private.lock_mechanic(p_appointment.mechanic_id);
  update public.mechanic_commitments set status = p_status, updated_at = now()
  where id = p_appointment.commitment_id and status = 'confirmed';
end
$$;
revoke execute on function private.release_appointment_mechanic(public.workshop_appointments, public.commitment_status)
  from public;
grant execute on function private.release_appointment_mechanic(public.workshop_appointments, public.commitment_status)
  to service_role;

-- ---------------------------------------------------------------------------------------------
-- Who may act on an appointment
-- ---------------------------------------------------------------------------------------------
-- The appointment `p_appointment_id`, locked (after its workshop: the lock order of every
-- writer), for the side `p_side` ('customer', 'workshop' or 'either'). Someone who cannot see
-- the appointment gets not_found; someone who can but is not that side gets not_allowed.
-- Sets the actor of the audit trail.
create or replace function private.appointment_for(p_appointment_id uuid, p_uid uuid, p_side text, p_reason text default null)
returns public.workshop_appointments
language plpgsql security definer set search_path = ''
as $$
declare
  v_workshop_id uuid;
  v_a public.workshop_appointments;
  v_staff boolean;
begin
  perform private.require_arg('p_appointment_id', p_appointment_id);
  select * into v_a from public.workshop_appointments a where a.id = p_appointment_id;
  if v_a.id is null then
    perform private.raise_error('not_found', 'no such appointment');
  end if;
  v_workshop_id := v_a.workshop_id;
  v_staff := private.workshop_can(v_workshop_id, p_uid, 'handle_appointments');
  if v_a.customer_id = p_uid and p_side in ('customer', 'either') then
    perform private.set_actor('customer', p_reason);
  elsif v_staff and p_side in ('workshop', 'either') then
    perform private.set_actor(case when private.workshop_role(v_workshop_id, p_uid) is null then 'admin'
                                   else 'workshop' end, p_reason);
  elsif v_a.customer_id = p_uid or v_staff or v_a.mechanic_id = p_uid then
    perform private.raise_error('not_allowed',
      case p_side when 'customer' then 'only the appointment''s customer may do this'
                  else 'only the workshop''s staff who handle appointments may do this' end);
  else
    perform private.raise_error('not_found', 'no such appointment');
  end if;
  perform private.lock_workshop(v_workshop_id);
  select * into v_a from public.workshop_appointments where id = p_appointment_id for update;
  return v_a;
end
$$;
revoke execute on function private.appointment_for(uuid, uuid, text, text) from public;
grant execute on function private.appointment_for(uuid, uuid, text, text) to service_role;

-- A reason or note: trimmed, at most p_max characters; p_required refuses an empty one.
create or replace function private.appointment_text(p_name text, p_value text, p_max int, p_required boolean)
returns text
language plpgsql immutable set search_path = ''
as $$
declare
  v text := nullif(btrim(p_value), '');
begin
  if v is null and p_required then
    perform private.raise_error('invalid_input', format('%s is required', p_name));
  end if;
  if char_length(v) > p_max then
    perform private.raise_error('invalid_input', format('%s is longer than %s characters', p_name, p_max));
  end if;
  return v;
end
$$;
revoke execute on function private.appointment_text(text, text, int, boolean) from public;
grant execute on function private.appointment_text(text, text, int, boolean) to service_role;
