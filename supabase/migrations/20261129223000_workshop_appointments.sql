-- Workshop appointments: what a request carries from a diagnostic session, the workshop's
-- proposal, reasons, the calendar sequence, the assigned mechanic's committed time, the audit
-- trail, the realtime board topic, settings, errors, email templates and rate classes
-- (docs/workshops.md, "Appointments").

-- An assigned mechanic's time at an appointment is committed time like a booked session.
alter type public.commitment_kind add value if not exists 'appointment';

alter table public.workshop_appointments
  add column notes text constraint workshop_appointments_notes_length check (char_length(notes) <= 2000),
  add column concern text constraint workshop_appointments_concern_length check (char_length(concern) <= 4000),
  add column diagnostic_summary text
    constraint workshop_appointments_summary_length check (char_length(diagnostic_summary) <= 10000),
  add column proposed_start timestamptz,
  add column proposal_note text constraint workshop_appointments_proposal_note_length
    check (char_length(proposal_note) <= 500),
  add column decline_reason text constraint workshop_appointments_decline_reason_length
    check (char_length(decline_reason) <= 500),
  add column cancel_reason text constraint workshop_appointments_cancel_reason_length
    check (char_length(cancel_reason) <= 500),
  add column cancelled_by text constraint workshop_appointments_cancelled_by_values
    check (cancelled_by in ('customer', 'workshop')),
  add column commitment_id uuid references public.mechanic_commitments (id) on delete set null,
  add column calendar_sequence int not null default 0
    constraint workshop_appointments_calendar_sequence_nonneg check (calendar_sequence >= 0),
  add column status_changed_at timestamptz not null default now(),
  add constraint workshop_appointments_preferred_count check (cardinality(preferred_starts) <= 3),
  add constraint workshop_appointments_proposal_when_proposed check ((status = 'proposed') = (proposed_start is not null)),
  add constraint workshop_appointments_time_when_booked check (
    status not in ('confirmed', 'completed', 'no_show') or (starts_at is not null and ends_at is not null));
create index workshop_appointments_commitment_idx on public.workshop_appointments (commitment_id);  -- FK
-- the capacity count: confirmed appointments of a workshop by time
create index workshop_appointments_confirmed_idx on public.workshop_appointments (workshop_id, starts_at)
  where status = 'confirmed';
comment on column public.workshop_appointments.concern is 'the concern of the diagnostic session the request came from';
comment on column public.workshop_appointments.diagnostic_summary is
  'the mechanic''s summary (sessions.mechanic_notes) of the diagnostic session the request came from';
comment on column public.workshop_appointments.calendar_sequence is
  'the .ics SEQUENCE of the appointment: +1 on cancellation';

-- The audit trail: every creation and change of status, with its actor (written by a trigger).
create table private.appointment_events (
  id bigint generated always as identity primary key,
  appointment_id uuid not null references public.workshop_appointments (id) on delete cascade,
  from_status text,
  to_status text not null,
  actor_id uuid,
  actor_role text not null constraint appointment_events_actor_role_values
    check (actor_role in ('customer', 'workshop', 'admin', 'system')),
  note text constraint appointment_events_note_length check (char_length(note) <= 500),
  created_at timestamptz not null default now()
);
create index appointment_events_appointment_idx on private.appointment_events (appointment_id, id);
alter table private.appointment_events enable row level security;
comment on table private.appointment_events is
  'Append-only audit of workshop appointments: every creation and change of status with its actor.';

-- Realtime: the workshop's appointment board, `workshop:<id>`. Staff who handle appointments
-- (and platform admins) receive its broadcasts; nobody sends on it.
create policy autodoctor_receive_workshop on realtime.messages for select to authenticated
  using (extension = 'broadcast' and (select realtime.topic()) like 'workshop:%'
         and (select private.workshop_can(private.try_uuid(substr((select realtime.topic()), 10)),
                                          (select auth.uid()), 'handle_appointments')));

insert into private.error_codes (sqlstate, name, http_status, description) values
  ('AD170', 'workshop_not_bookable', 409, 'The workshop is not verified: it takes no appointment requests.'),
  ('AD171', 'outside_workshop_hours', 422, 'The appointment time is not inside the workshop''s opening hours (or is in the past).'),
  ('AD172', 'workshop_full', 409, 'The workshop''s capacity for that time is taken by confirmed appointments.'),
  ('AD173', 'appointment_cancel_too_late', 409, 'Too close to the appointment''s start for the customer to cancel.'),
  ('AD174', 'appointment_not_started', 409, 'The appointment has not started yet: it cannot be completed or marked a no-show.'),
  ('AD175', 'mechanic_not_in_workshop', 422, 'The mechanic is not an approved mechanic of this workshop.');

insert into private.settings (key, value, value_type, description) values
  ('workshops.appointment_minutes', '60', 'integer',
   'how long an in-person workshop appointment takes (its capacity and the assigned mechanic''s committed time)'),
  ('workshops.open_appointments_per_customer', '3', 'integer',
   'appointments one customer may have open at once (requested, proposed, or confirmed and not yet started)'),
  ('workshops.customer_cancel_cutoff', '"2 hours"', 'interval',
   'a customer cancels a confirmed appointment no later than this before its start'),
  ('workshops.appointment_max_advance', '"90 days"', 'interval',
   'how far ahead an appointment may be requested, proposed or confirmed');

insert into private.email_templates (name, has_html, transactional, description) values
  ('appointment_requested', true, true, 'to the workshop''s staff who handle appointments: a customer requested an appointment'),
  ('appointment_confirmed', true, true, 'the workshop confirmed an appointment (with its .ics)'),
  ('appointment_proposed', true, true, 'the workshop proposed another time for an appointment'),
  ('appointment_declined', true, true, 'the workshop declined an appointment request'),
  ('appointment_cancelled', true, true, 'an appointment was cancelled (with its .ics cancellation when it had a time)'),
  ('appointment_reminder', true, true, 'a confirmed appointment starts in 24 hours or in 1 hour (with its .ics)');

insert into private.rpc_rate_classes (function_name, class) values
  ('request_workshop_appointment', 'request'),
  ('accept_appointment_proposal', 'request'),
  ('decline_appointment_proposal', 'request'),
  ('cancel_appointment', 'request'),
  ('confirm_appointment', 'write'),
  ('propose_appointment_time', 'write'),
  ('decline_appointment', 'write'),
  ('complete_appointment', 'write'),
  ('mark_no_show', 'write'),
  ('assign_appointment_mechanic', 'write')
on conflict (function_name) do update set class = excluded.class;
