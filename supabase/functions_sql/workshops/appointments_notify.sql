-- Workshops: what an appointment change tells others — the board broadcast on `workshop:<id>`
-- and the emails through the outbox (docs/workshops.md, "Appointments"; docs/jobs.md).

-- The email data of an appointment: what the templates and the .ics need (shared/email.py,
-- shared/calendar.py). No customer contact details: the workshop's staff see the name only.
create or replace function private.appointment_email_data(p_a public.workshop_appointments) returns jsonb
language sql stable security definer set search_path = ''
as $$
  select jsonb_build_object('appointment', jsonb_build_object(
    'id', p_a.id, 'status', p_a.status, 'service_type', p_a.service_type,
    'workshop_name', o.name, 'workshop_address', o.address_line,
    'starts_at', p_a.starts_at, 'ends_at', p_a.ends_at, 'proposed_start', p_a.proposed_start,
    'preferred_starts', to_jsonb(p_a.preferred_starts), 'proposal_note', p_a.proposal_note,
    'decline_reason', p_a.decline_reason, 'cancel_reason', p_a.cancel_reason, 'cancelled_by', p_a.cancelled_by,
    'customer_name', coalesce(pr.full_name, 'A customer'), 'concern', p_a.concern,
    'vehicle', nullif(concat_ws(' ', v.year, v.make, v.model), ''), 'sequence', p_a.calendar_sequence))
  from public.organizations o
  left join public.profiles pr on pr.id = p_a.customer_id
  left join public.vehicles v on v.id = p_a.vehicle_id
  where o.id = p_a.workshop_id
$$;
revoke execute on function private.appointment_email_data(public.workshop_appointments) from public;
grant execute on function private.appointment_email_data(public.workshop_appointments) to service_role;

-- Whether an appointment email is still due when the worker sends it: a reminder only while the
-- appointment is confirmed at the time the reminder was queued for.
create or replace function private.appointment_email_due(p_template text, p_data jsonb) returns boolean
language sql stable security definer set search_path = ''
as $$
  select case when p_template = 'appointment_reminder' then
    exists (select 1 from public.workshop_appointments a
            where a.id = private.try_uuid(p_data -> 'appointment' ->> 'id') and a.status = 'confirmed'
              and a.starts_at = (p_data -> 'appointment' ->> 'starts_at')::timestamptz)
  else true end
$$;
revoke execute on function private.appointment_email_due(text, jsonb) from public;
grant execute on function private.appointment_email_due(text, jsonb) to service_role;

create or replace function private.enqueue_appointment_email(
  p_template text, p_user_id uuid, p_data jsonb, p_key text, p_not_before timestamptz default now()
) returns bigint
language plpgsql security definer set search_path = ''
as $$
begin
  if not exists (select 1 from private.email_templates t where t.name = p_template) then
    perform private.raise_error('unknown_email_template', format('no email template %L', p_template));
  end if;
  return private.enqueue(
    'email.send', format('email:%s:appointment:%s:%s', p_template, p_user_id, p_key),
    jsonb_build_object('template', p_template, 'user_id', p_user_id, 'session_id', null, 'data', p_data),
    p_not_before);
end
$$;
revoke execute on function private.enqueue_appointment_email(text, uuid, jsonb, text, timestamptz) from public;
grant execute on function private.enqueue_appointment_email(text, uuid, jsonb, text, timestamptz) to service_role;

create or replace function private.tg_workshop_appointments__notify() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_data jsonb := private.appointment_email_data(new);
  v_staff uuid;
  v_lead interval;
begin
  -- the board: every change, ids and times only
  perform realtime.send(
    jsonb_build_object('appointment_id', new.id, 'from', case when tg_op = 'UPDATE' then old.status end,
                       'status', new.status, 'service_type', new.service_type,
                       'preferred_starts', to_jsonb(new.preferred_starts), 'proposed_start', new.proposed_start,
                       'starts_at', new.starts_at, 'ends_at', new.ends_at, 'mechanic_id', new.mechanic_id,
                       'at', new.updated_at),
    'appointment_changed', 'workshop:' || new.workshop_id::text, true);

  if tg_op = 'INSERT' then
    -- the staff who handle appointments (owners, managers, dispatchers)
    for v_staff in
      select om.user_id from public.organization_members om
      join private.workshop_role_permissions rp on rp.role = om.role::text and rp.permission = 'handle_appointments'
      where om.organization_id = new.workshop_id
    loop
      perform private.enqueue_appointment_email('appointment_requested', v_staff, v_data, new.id::text);
    end loop;
    return null;
  end if;

  if new.status = 'proposed' and new.proposed_start is distinct from old.proposed_start then
    perform private.enqueue_appointment_email('appointment_proposed', new.customer_id, v_data,
      format('%s:%s', new.id, extract(epoch from new.proposed_start)::bigint));
  end if;
  if new.status is distinct from old.status then
    case new.status
      when 'confirmed' then
        perform private.enqueue_appointment_email('appointment_confirmed', new.customer_id, v_data, new.id::text);
        foreach v_lead in array array[interval '24 hours', interval '1 hour'] loop
          if new.starts_at - v_lead > now() then
            perform private.enqueue_appointment_email('appointment_reminder', new.customer_id,
              v_data || jsonb_build_object('lead', case when v_lead = interval '1 hour' then '1 hour' else '24 hours' end),
              format('%s:%s:%s', new.id, extract(epoch from v_lead)::int, extract(epoch from new.starts_at)::bigint),
              new.starts_at - v_lead);
          end if;
        end loop;
      when 'declined' then
        perform private.enqueue_appointment_email('appointment_declined', new.customer_id, v_data, new.id::text);
      when 'cancelled' then
        perform private.enqueue_appointment_email('appointment_cancelled', new.customer_id, v_data, new.id::text);
      else
        null;
    end case;
  end if;
  return null;
end
$$;
revoke execute on function private.tg_workshop_appointments__notify() from public;
drop trigger if exists _300_notify on public.workshop_appointments;
create trigger _300_notify after insert or update on public.workshop_appointments
  for each row execute function private.tg_workshop_appointments__notify();
