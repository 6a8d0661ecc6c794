-- Workshops: the appointment RPCs of customers and of the workshop's staff (docs/workshops.md,
-- "Appointments"). The rules they share are in workshops/appointments.sql.

-- The answer of every appointment RPC.
create or replace function private.appointment_json(p_a public.workshop_appointments) returns jsonb
language sql stable security definer set search_path = ''
as $$
  select jsonb_build_object(
    'appointment_id', p_a.id, 'workshop_id', p_a.workshop_id, 'status', p_a.status,
    'service_type', p_a.service_type, 'preferred_starts', to_jsonb(p_a.preferred_starts),
    'proposed_start', p_a.proposed_start, 'starts_at', p_a.starts_at, 'ends_at', p_a.ends_at,
    'mechanic_id', p_a.mechanic_id, 'vehicle_id', p_a.vehicle_id,
    'diagnostic_session_id', p_a.diagnostic_session_id, 'invoice_cents', p_a.invoice_cents,
    'currency', p_a.currency)
$$;
revoke execute on function private.appointment_json(public.workshop_appointments) from public;
grant execute on function private.appointment_json(public.workshop_appointments) to service_role;

-- ---------------------------------------------------------------------------------------------
-- The customer's request
-- ---------------------------------------------------------------------------------------------
create or replace function public.request_workshop_appointment(
  p_workshop_id uuid, p_vehicle_id uuid, p_service_type text, p_preferred_starts timestamptz[],
  p_notes text default null, p_diagnostic_session_id uuid default null
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_now timestamptz := now();
  v_org public.organizations;
  v_service text := btrim(p_service_type);
  v_notes text;
  v_session public.sessions;
  v_vehicle_id uuid := p_vehicle_id;
  v_concern text;
  v_referrer uuid;
  v_start timestamptz;
  v_a public.workshop_appointments;
begin
  perform private.require_arg('p_workshop_id', p_workshop_id);
  if v_service is null or char_length(v_service) not between 1 and 80 then
    perform private.raise_error('invalid_input', 'p_service_type is 1 to 80 characters');
  end if;
  v_notes := private.appointment_text('p_notes', p_notes, 2000, false);
  if p_preferred_starts is null or cardinality(p_preferred_starts) not between 1 and 3
     or array_ndims(p_preferred_starts) <> 1 or array_position(p_preferred_starts, null) is not null
     or (select count(distinct s) from unnest(p_preferred_starts) s) <> cardinality(p_preferred_starts) then
    perform private.raise_error('invalid_input', 'p_preferred_starts is 1 to 3 distinct times');
  end if;
  perform private.require_waiver(v_uid);
  select * into v_org from public.organizations where id = p_workshop_id;
  if not found then
    perform private.raise_error('not_found', 'no such workshop');
  end if;
  if v_org.status <> 'verified' then
    perform private.raise_error('workshop_not_bookable', format('the workshop is %s', v_org.status));
  end if;
  -- From a delivered diagnostic session of the same customer: its vehicle, concern and summary,
  -- and its mechanic when virtual-only (the referral fee).
  if p_diagnostic_session_id is not null then
    select * into v_session from public.sessions s where s.id = p_diagnostic_session_id and s.customer_id = v_uid;
    if not found then
      perform private.raise_error('not_found', 'no such session of yours');
    end if;
    if v_session.session_type <> 'diagnostic' or v_session.delivery is distinct from 'delivered' then
      perform private.raise_error('invalid_input', 'only a delivered diagnostic session leads to an appointment');
    end if;
    if p_vehicle_id is not null and v_session.vehicle_id is not null and p_vehicle_id <> v_session.vehicle_id then
      perform private.raise_error('invalid_input', 'the vehicle is not the diagnostic session''s vehicle');
    end if;
    v_vehicle_id := coalesce(p_vehicle_id, v_session.vehicle_id);
    select coalesce(i.concern, r.concern) into v_concern
    from (select 1) one
    left join public.intakes i on i.id = v_session.intake_id
    left join public.session_requests r on r.session_id = v_session.id;
    select m.id into v_referrer from public.mechanics m
    where m.id = v_session.mechanic_id and m.mechanic_type = 'virtual_only';
  end if;
  perform private.require_arg('p_vehicle_id', v_vehicle_id);
  if not exists (select 1 from public.vehicles v where v.id = v_vehicle_id and v.owner_id = v_uid) then
    perform private.raise_error('not_found', 'no such vehicle of yours');
  end if;
  foreach v_start in array p_preferred_starts loop
    perform private.check_appointment_time(p_workshop_id, v_start, v_now);
  end loop;
  -- the cap on open appointments, counted under the customer's profile lock
  perform 1 from public.profiles where id = v_uid for no key update;
  -- one diagnosis leads to one workshop job at a time (and so to one referral fee): a declined or
  -- cancelled appointment frees the session for another workshop
  if v_session.id is not null and exists (
       select 1 from public.workshop_appointments a
       where a.diagnostic_session_id = v_session.id and a.status in ('requested', 'proposed', 'confirmed', 'completed')) then
    perform private.raise_error('conflict', 'this diagnostic session already has an appointment');
  end if;
  if (select count(*) from public.workshop_appointments a
      where a.customer_id = v_uid
        and (a.status in ('requested', 'proposed') or (a.status = 'confirmed' and a.starts_at > v_now)))
     >= private.setting_int('workshops.open_appointments_per_customer') then
    perform private.raise_error('limit_reached',
      format('you have %s open appointments: cancel one first', private.setting_int('workshops.open_appointments_per_customer')));
  end if;
  perform private.set_actor('customer', null);
  insert into public.workshop_appointments (workshop_id, customer_id, vehicle_id, diagnostic_session_id,
                                            referring_mechanic_id, service_type, preferred_starts, notes, concern,
                                            diagnostic_summary)
  values (p_workshop_id, v_uid, v_vehicle_id, v_session.id, v_referrer, v_service,
          (select array_agg(s order by s) from unnest(p_preferred_starts) s), v_notes, left(v_concern, 4000),
          v_session.mechanic_notes)
  returning * into v_a;
  return private.appointment_json(v_a);
end
$$;
revoke execute on function public.request_workshop_appointment(uuid, uuid, text, timestamptz[], text, uuid) from public, anon;
grant execute on function public.request_workshop_appointment(uuid, uuid, text, timestamptz[], text, uuid)
  to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- The workshop's answers
-- ---------------------------------------------------------------------------------------------
-- Confirms a requested appointment at any start inside the hours (not only a preferred one),
-- optionally with a mechanic of the workshop whose time it commits.
create or replace function public.confirm_appointment(p_appointment_id uuid, p_start timestamptz,
                                                      p_mechanic_id uuid default null) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_a public.workshop_appointments := private.appointment_for(p_appointment_id, v_uid, 'workshop');
  v_end timestamptz;
  v_commitment uuid;
begin
  if v_a.status <> 'requested' then
    perform private.raise_error('invalid_transition',
      format('the appointment is %s: only a requested appointment is confirmed by the workshop', v_a.status));
  end if;
  if (select o.status from public.organizations o where o.id = v_a.workshop_id) <> 'verified' then
    perform private.raise_error('workshop_not_bookable', 'the workshop is not verified');
  end if;
  v_end := private.check_appointment_time(v_a.workshop_id, p_start, now());
  perform private.check_workshop_capacity(v_a.workshop_id, v_a.id, p_start, v_end);
  if p_mechanic_id is not null then
    v_commitment := private.commit_appointment_mechanic(v_a.workshop_id, p_mechanic_id, v_a.customer_id, p_start, v_end);
  end if;
  update public.workshop_appointments
  set status = 'confirmed', starts_at = p_start, ends_at = v_end, mechanic_id = p_mechanic_id,
      commitment_id = v_commitment
  where id = v_a.id returning * into v_a;
  return private.appointment_json(v_a);
end
$$;
revoke execute on function public.confirm_appointment(uuid, timestamptz, uuid) from public, anon;
grant execute on function public.confirm_appointment(uuid, timestamptz, uuid) to authenticated, service_role;

-- Assigns (or with null unassigns) the mechanic of a confirmed appointment.
create or replace function public.assign_appointment_mechanic(p_appointment_id uuid, p_mechanic_id uuid default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_a public.workshop_appointments := private.appointment_for(p_appointment_id, v_uid, 'workshop');
  v_commitment uuid;
begin
  if v_a.status <> 'confirmed' then
    perform private.raise_error('invalid_transition', format('the appointment is %s, not confirmed', v_a.status));
  end if;
  if p_mechanic_id is not distinct from v_a.mechanic_id then
    return private.appointment_json(v_a);
  end if;
  perform private.release_appointment_mechanic(v_a, 'released');
  if p_mechanic_id is not null then
    v_commitment := private.commit_appointment_mechanic(v_a.workshop_id, p_mechanic_id, v_a.customer_id,
                                                        v_a.starts_at, v_a.ends_at);
  end if;
  update public.workshop_appointments set mechanic_id = p_mechanic_id, commitment_id = v_commitment
  where id = v_a.id returning * into v_a;
  return private.appointment_json(v_a);
end
$$;
revoke execute on function public.assign_appointment_mechanic(uuid, uuid) from public, anon;
grant execute on function public.assign_appointment_mechanic(uuid, uuid) to authenticated, service_role;

-- Proposes another time (a requested appointment, or a new proposal replacing the pending one);
-- capacity is checked when the customer accepts.
create or replace function public.propose_appointment_time(p_appointment_id uuid, p_start timestamptz,
                                                           p_note text default null) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_note text := private.appointment_text('p_note', p_note, 500, false);
  v_a public.workshop_appointments := private.appointment_for(p_appointment_id, v_uid, 'workshop', v_note);
begin
  if v_a.status not in ('requested', 'proposed') then
    perform private.raise_error('invalid_transition', format('the appointment is %s: nothing to propose', v_a.status));
  end if;
  perform private.check_appointment_time(v_a.workshop_id, p_start, now());
  update public.workshop_appointments set status = 'proposed', proposed_start = p_start, proposal_note = v_note
  where id = v_a.id returning * into v_a;
  return private.appointment_json(v_a);
end
$$;
revoke execute on function public.propose_appointment_time(uuid, timestamptz, text) from public, anon;
grant execute on function public.propose_appointment_time(uuid, timestamptz, text) to authenticated, service_role;

create or replace function public.decline_appointment(p_appointment_id uuid, p_reason text) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_reason text := private.appointment_text('p_reason', p_reason, 500, true);
  v_a public.workshop_appointments := private.appointment_for(p_appointment_id, v_uid, 'workshop', v_reason);
begin
  if v_a.status not in ('requested', 'proposed') then
    perform private.raise_error('invalid_transition', format('the appointment is %s: only a request is declined', v_a.status));
  end if;
  update public.workshop_appointments set status = 'declined', decline_reason = v_reason, proposed_start = null
  where id = v_a.id returning * into v_a;
  return private.appointment_json(v_a);
end
$$;
revoke execute on function public.decline_appointment(uuid, text) from public, anon;
grant execute on function public.decline_appointment(uuid, text) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- The customer's answer to a proposal
-- ---------------------------------------------------------------------------------------------
create or replace function public.accept_appointment_proposal(p_appointment_id uuid) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_a public.workshop_appointments := private.appointment_for(p_appointment_id, v_uid, 'customer');
  v_end timestamptz;
begin
  if v_a.status <> 'proposed' then
    perform private.raise_error('invalid_transition', format('the appointment is %s: no proposal to accept', v_a.status));
  end if;
  if (select o.status from public.organizations o where o.id = v_a.workshop_id) <> 'verified' then
    perform private.raise_error('workshop_not_bookable', 'the workshop is not verified');
  end if;
  v_end := private.check_appointment_time(v_a.workshop_id, v_a.proposed_start, now());
  perform private.check_workshop_capacity(v_a.workshop_id, v_a.id, v_a.proposed_start, v_end);
  update public.workshop_appointments
  set status = 'confirmed', starts_at = proposed_start, ends_at = v_end, proposed_start = null
  where id = v_a.id returning * into v_a;
  return private.appointment_json(v_a);
end
$$;
revoke execute on function public.accept_appointment_proposal(uuid) from public, anon;
grant execute on function public.accept_appointment_proposal(uuid) to authenticated, service_role;

-- Declining a proposal returns the request to the workshop (requested, with its preferred
-- starts): the workshop may confirm one, propose again or decline.
create or replace function public.decline_appointment_proposal(p_appointment_id uuid) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_a public.workshop_appointments := private.appointment_for(p_appointment_id, v_uid, 'customer');
begin
  if v_a.status <> 'proposed' then
    perform private.raise_error('invalid_transition', format('the appointment is %s: no proposal to decline', v_a.status));
  end if;
  update public.workshop_appointments set status = 'requested', proposed_start = null
  where id = v_a.id returning * into v_a;
  return private.appointment_json(v_a);
end
$$;
revoke execute on function public.decline_appointment_proposal(uuid) from public, anon;
grant execute on function public.decline_appointment_proposal(uuid) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- Either side cancels; the workshop completes or records a no-show
-- ---------------------------------------------------------------------------------------------
create or replace function public.cancel_appointment(p_appointment_id uuid, p_reason text) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_reason text := private.appointment_text('p_reason', p_reason, 500, true);
  v_a public.workshop_appointments := private.appointment_for(p_appointment_id, v_uid, 'either', v_reason);
  v_by text := case when v_a.customer_id = v_uid then 'customer' else 'workshop' end;
begin
  if v_a.status not in ('requested', 'proposed', 'confirmed') then
    perform private.raise_error('invalid_transition', format('the appointment is %s: nothing to cancel', v_a.status));
  end if;
  if v_a.status = 'confirmed' and now() >= v_a.starts_at then
    perform private.raise_error('appointment_cancel_too_late',
      'the appointment has started: the workshop completes it or records a no-show');
  end if;
  if v_a.status = 'confirmed' and v_by = 'customer'
     and now() > v_a.starts_at - private.setting_interval('workshops.customer_cancel_cutoff') then
    perform private.raise_error('appointment_cancel_too_late',
      format('a confirmed appointment is cancelled no later than %s before its start',
             private.setting_interval('workshops.customer_cancel_cutoff')));
  end if;
  perform private.release_appointment_mechanic(v_a, 'released');
  update public.workshop_appointments
  set status = 'cancelled', cancel_reason = v_reason, cancelled_by = v_by, proposed_start = null,
      calendar_sequence = calendar_sequence + case when starts_at is null then 0 else 1 end
  where id = v_a.id returning * into v_a;
  return private.appointment_json(v_a);
end
$$;
revoke execute on function public.cancel_appointment(uuid, text) from public, anon;
grant execute on function public.cancel_appointment(uuid, text) to authenticated, service_role;

create or replace function public.complete_appointment(p_appointment_id uuid, p_invoice_cents int) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_a public.workshop_appointments;
begin
  if p_invoice_cents is null or p_invoice_cents < 0 or p_invoice_cents > 10000000 then
    perform private.raise_error('invalid_input', 'p_invoice_cents is 0 to 10000000');
  end if;
  v_a := private.appointment_for(p_appointment_id, v_uid, 'workshop');
  if v_a.status <> 'confirmed' then
    perform private.raise_error('invalid_transition', format('the appointment is %s, not confirmed', v_a.status));
  end if;
  if now() < v_a.starts_at then
    perform private.raise_error('appointment_not_started', format('the appointment starts at %s', v_a.starts_at));
  end if;
  perform private.release_appointment_mechanic(v_a, 'done');
  update public.workshop_appointments set status = 'completed', invoice_cents = p_invoice_cents, completed_at = now()
  where id = v_a.id returning * into v_a;
  perform private.referral_on_appointment_completed(v_a.id);  -- workshops/hooks.sql
  return private.appointment_json(v_a);
end
$$;
revoke execute on function public.complete_appointment(uuid, int) from public, anon;
grant execute on function public.complete_appointment(uuid, int) to authenticated, service_role;

create or replace function public.mark_no_show(p_appointment_id uuid) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_a public.workshop_appointments := private.appointment_for(p_appointment_id, v_uid, 'workshop');
begin
  if v_a.status <> 'confirmed' then
    perform private.raise_error('invalid_transition', format('the appointment is %s, not confirmed', v_a.status));
  end if;
  if now() < v_a.starts_at then
    perform private.raise_error('appointment_not_started', format('the appointment starts at %s', v_a.starts_at));
  end if;
  perform private.release_appointment_mechanic(v_a, 'released');
  update public.workshop_appointments set status = 'no_show' where id = v_a.id returning * into v_a;
  return private.appointment_json(v_a);
end
$$;
revoke execute on function public.mark_no_show(uuid) from public, anon;
grant execute on function public.mark_no_show(uuid) to authenticated, service_role;
