-- Scheduling (issue #8): weekly availability as local wall-clock blocks with price multipliers,
-- date overrides, time off, workshop hours, per-mechanic booking rules; holds, booked
-- (scheduled) sessions, reschedules and reminders on top of the committed-time table
-- public.mechanic_commitments (its exclusion constraint is the last word on double booking).
--
-- Writers of committed time lock the mechanic's row first (`for no key update`, as
-- private.assign_request does): SCHEDULING.md measured that the constraint alone deadlocks under
-- contention. The functions are in supabase/functions_sql/080_scheduling.sql; docs/scheduling.md
-- describes the model, the rules and the decisions.

-- ---------------------------------------------------------------------------------------------
-- Error codes of this domain (AD050-AD069)
-- ---------------------------------------------------------------------------------------------
insert into private.error_codes (sqlstate, name, http_status, description) values
  ('AD050', 'slot_taken', 409, 'The time is no longer free: someone holds or booked it, or the mechanic is busy.'),
  ('AD051', 'schedule_conflict', 409, 'The work would run into a booked or held session of the mechanic.'),
  ('AD052', 'slot_unavailable', 409, 'The time is outside the mechanic''s availability, notice or booking window.'),
  ('AD053', 'hold_expired', 409, 'The hold expired or was released.'),
  ('AD054', 'change_cutoff_passed', 409, 'The session starts too soon to be changed or cancelled this way.'),
  ('AD055', 'too_many_holds', 409, 'The customer already holds the maximum number of slots.');

insert into private.settings (key, value, description) values
  ('scheduling.slot_step', '"30 minutes"', 'default distance between two slot starts'),
  ('scheduling.instant_booking', 'true', 'default: customers may book a mechanic''s slots directly'),
  ('scheduling.max_sessions_per_day', '8', 'default: booked sessions per mechanic per local day'),
  ('scheduling.change_cutoff', '"24 hours"', 'a customer cannot reschedule or cancel a booking closer to its start'),
  ('scheduling.open_before', '"15 minutes"', 'a scheduled session opens for joining (scheduled → waiting) this long before'),
  ('scheduling.max_holds_per_customer', '3', 'live holds one customer may keep at once'),
  ('scheduling.reminder_leads', '["24 hours", "1 hour"]', 'reminder emails before a booked session (plus the starting notice)'),
  ('scheduling.max_query_range', '"62 days"', 'longest range one slots or calendar query may cover');

-- ---------------------------------------------------------------------------------------------
-- Weekly availability: local wall-clock blocks (0 = Sunday), in the mechanic's zone
-- (public.mechanics.timezone). A block ends on the same local day ('24:00' allowed).
-- ---------------------------------------------------------------------------------------------
create table public.mechanic_weekly_availability (
  id uuid primary key default gen_random_uuid(),
  mechanic_id uuid not null references public.mechanics (id) on delete cascade,
  day_of_week int not null constraint mechanic_weekly_availability_day_range check (day_of_week between 0 and 6),
  start_time time not null,
  end_time time not null,
  price_multiplier numeric(4, 2) not null default 1.0
    constraint mechanic_weekly_availability_multiplier_range check (price_multiplier between 0.25 and 5),
  created_at timestamptz not null default now(),
  constraint mechanic_weekly_availability_end_after_start check (end_time > start_time),
  constraint mechanic_weekly_availability_no_overlap exclude using gist (
    mechanic_id with =, day_of_week with =,
    tsrange(date '2000-01-02' + start_time, date '2000-01-02' + end_time) with &&)
);
comment on table public.mechanic_weekly_availability is
  'Weekly blocks as local wall-clock times in the mechanic''s zone; price_multiplier is seed 003 §5 peak pricing.';

-- ---------------------------------------------------------------------------------------------
-- Date overrides of a mechanic or of a workshop: on that local date these blocks replace the
-- weekly ones; a row with is_available = false (no times) is a day off / closed day.
-- ---------------------------------------------------------------------------------------------
create table public.availability_overrides (
  id uuid primary key default gen_random_uuid(),
  mechanic_id uuid references public.mechanics (id) on delete cascade,
  organization_id uuid references public.organizations (id) on delete cascade,
  on_date date not null,
  is_available boolean not null,
  start_time time,
  end_time time,
  price_multiplier numeric(4, 2) not null default 1.0
    constraint availability_overrides_multiplier_range check (price_multiplier between 0.25 and 5),
  reason text constraint availability_overrides_reason_length check (char_length(reason) <= 500),
  created_at timestamptz not null default now(),
  constraint availability_overrides_one_owner check (num_nonnulls(mechanic_id, organization_id) = 1),
  constraint availability_overrides_times check (
    (is_available and start_time is not null and end_time is not null and end_time > start_time)
    or (not is_available and start_time is null and end_time is null)),
  constraint availability_overrides_no_overlap exclude using gist (
    coalesce(mechanic_id, organization_id) with =, on_date with =,
    tsrange(date '2000-01-02' + coalesce(start_time, time '00:00'),
            date '2000-01-02' + coalesce(end_time, time '24:00')) with &&)
);
create index availability_overrides_mechanic_idx on public.availability_overrides (mechanic_id, on_date);  -- FK; by date
create index availability_overrides_organization_idx on public.availability_overrides (organization_id, on_date);  -- FK

-- ---------------------------------------------------------------------------------------------
-- Time off: absolute ranges (vacations, appointments); nothing is bookable inside them.
-- ---------------------------------------------------------------------------------------------
create table public.mechanic_time_off (
  id uuid primary key default gen_random_uuid(),
  mechanic_id uuid not null references public.mechanics (id) on delete cascade,
  during tstzrange not null constraint mechanic_time_off_bounded check (
    not isempty(during) and not lower_inf(during) and not upper_inf(during)),
  reason text constraint mechanic_time_off_reason_length check (char_length(reason) <= 500),
  created_by uuid references auth.users (id) on delete set null,
  created_at timestamptz not null default now()
);
create index mechanic_time_off_mechanic_during_idx on public.mechanic_time_off using gist (mechanic_id, during);  -- FK; overlap
create index mechanic_time_off_created_by_idx on public.mechanic_time_off (created_by);  -- FK

-- ---------------------------------------------------------------------------------------------
-- Workshop hours (seed 004 workshop_availability): one row per open weekday in the workshop's
-- zone (organizations.timezone); a missing day or is_open = false is closed. Capacity is how many
-- in-person appointments run at once (kept for in-person bookings; virtual sessions ignore it).
-- ---------------------------------------------------------------------------------------------
create table public.workshop_hours (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  day_of_week int not null constraint workshop_hours_day_range check (day_of_week between 0 and 6),
  is_open boolean not null default true,
  open_time time not null default '09:00',
  close_time time not null default '17:00',
  break_start time,
  break_end time,
  capacity int not null default 1 constraint workshop_hours_capacity_range check (capacity between 1 and 100),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint workshop_hours_one_per_day unique (organization_id, day_of_week),
  constraint workshop_hours_close_after_open check (close_time > open_time),
  constraint workshop_hours_break_inside check (
    (break_start is null and break_end is null)
    or (break_start is not null and break_end is not null and break_start > open_time and break_end > break_start
        and break_end < close_time))
);

-- ---------------------------------------------------------------------------------------------
-- Booking rules per mechanic; a null column means the scheduling.* setting.
-- ---------------------------------------------------------------------------------------------
create table public.booking_rules (
  mechanic_id uuid primary key references public.mechanics (id) on delete cascade,
  buffer_minutes int constraint booking_rules_buffer_range check (buffer_minutes between 0 and 240),
  min_notice_minutes int constraint booking_rules_min_notice_range check (min_notice_minutes between 0 and 43200),
  max_advance_days int constraint booking_rules_max_advance_range check (max_advance_days between 1 and 365),
  slot_step_minutes int constraint booking_rules_slot_step_range check (
    slot_step_minutes between 5 and 240 and slot_step_minutes % 5 = 0),
  max_sessions_per_day int constraint booking_rules_max_sessions_range check (max_sessions_per_day between 1 and 48),
  instant_booking boolean,
  updated_at timestamptz not null default now()
);

-- ---------------------------------------------------------------------------------------------
-- Committed time: what a hold / booking needs beyond the range. during = [start, end + buffer).
-- ---------------------------------------------------------------------------------------------
alter table public.mechanic_commitments
  add column customer_id uuid references auth.users (id) on delete cascade,
  add column plan_code text references public.service_plans (code) on delete restrict,
  add column price_cents int constraint mechanic_commitments_price_nonneg check (price_cents >= 0),
  add column buffer_minutes int not null default 0
    constraint mechanic_commitments_buffer_range check (buffer_minutes between 0 and 240),
  add column expires_at timestamptz,
  add constraint mechanic_commitments_hold_expires check (status <> 'held' or expires_at is not null);
create index mechanic_commitments_customer_id_idx on public.mechanic_commitments (customer_id, status);  -- FK; my holds
create index mechanic_commitments_plan_code_idx on public.mechanic_commitments (plan_code);  -- FK
-- The expiry job reads live holds by expiry.
create index mechanic_commitments_held_expiry_idx on public.mechanic_commitments (expires_at) where status = 'held';

-- A paid booking of a held slot (create_checkout with hold_id).
alter table public.bookings
  add column hold_id uuid references public.mechanic_commitments (id) on delete set null;
create index bookings_hold_id_idx on public.bookings (hold_id);  -- FK; the booking of a hold

-- The .ics SEQUENCE of a booked session: +1 on every reschedule and on cancellation.
alter table public.sessions
  add column calendar_sequence int not null default 0
    constraint sessions_calendar_sequence_nonneg check (calendar_sequence >= 0);

-- Pending reminders of a session are found (moved or dropped) by session id.
create index outbox_pending_session_email_idx on private.outbox ((payload ->> 'session_id'))
  where kind = 'email.send' and status = 'pending';

-- ---------------------------------------------------------------------------------------------
-- RLS helpers
-- ---------------------------------------------------------------------------------------------
-- Mechanics of the workshops the caller administers (owner or admin).
create function private.my_workshop_mechanic_ids() returns setof uuid
language sql stable security definer set search_path = ''
as $$
  select m.id from public.mechanics m
  where m.organization_id in (select om.organization_id from public.organization_members om
                              where om.user_id = (select auth.uid()) and om.role in ('owner', 'admin'))
$$;
revoke execute on function private.my_workshop_mechanic_ids() from public;
grant execute on function private.my_workshop_mechanic_ids() to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- RLS and policies: the mechanic and its workshop's admins edit; platform admins read.
-- ---------------------------------------------------------------------------------------------
alter table public.mechanic_weekly_availability enable row level security;
create policy select_owner_workshop_or_admin on public.mechanic_weekly_availability for select to authenticated
  using (mechanic_id = (select auth.uid()) or mechanic_id in (select private.my_workshop_mechanic_ids())
         or (select private.is_admin()));
create policy insert_owner_or_workshop on public.mechanic_weekly_availability for insert to authenticated
  with check (mechanic_id = (select auth.uid()) or mechanic_id in (select private.my_workshop_mechanic_ids()));
create policy update_owner_or_workshop on public.mechanic_weekly_availability for update to authenticated
  using (mechanic_id = (select auth.uid()) or mechanic_id in (select private.my_workshop_mechanic_ids()))
  with check (mechanic_id = (select auth.uid()) or mechanic_id in (select private.my_workshop_mechanic_ids()));
create policy delete_owner_or_workshop on public.mechanic_weekly_availability for delete to authenticated
  using (mechanic_id = (select auth.uid()) or mechanic_id in (select private.my_workshop_mechanic_ids()));
grant select, delete on public.mechanic_weekly_availability to authenticated;
grant insert (mechanic_id, day_of_week, start_time, end_time, price_multiplier)
  on public.mechanic_weekly_availability to authenticated;
grant update (day_of_week, start_time, end_time, price_multiplier) on public.mechanic_weekly_availability to authenticated;
grant select, insert, update, delete on public.mechanic_weekly_availability to service_role;

alter table public.availability_overrides enable row level security;
create policy select_owner_workshop_or_admin on public.availability_overrides for select to authenticated
  using (mechanic_id = (select auth.uid()) or mechanic_id in (select private.my_workshop_mechanic_ids())
         or organization_id in (select private.my_org_ids()) or (select private.is_admin()));
create policy insert_owner_or_workshop on public.availability_overrides for insert to authenticated
  with check (mechanic_id = (select auth.uid()) or mechanic_id in (select private.my_workshop_mechanic_ids())
              or organization_id in (select private.my_admin_org_ids()));
create policy update_owner_or_workshop on public.availability_overrides for update to authenticated
  using (mechanic_id = (select auth.uid()) or mechanic_id in (select private.my_workshop_mechanic_ids())
         or organization_id in (select private.my_admin_org_ids()))
  with check (mechanic_id = (select auth.uid()) or mechanic_id in (select private.my_workshop_mechanic_ids())
              or organization_id in (select private.my_admin_org_ids()));
create policy delete_owner_or_workshop on public.availability_overrides for delete to authenticated
  using (mechanic_id = (select auth.uid()) or mechanic_id in (select private.my_workshop_mechanic_ids())
         or organization_id in (select private.my_admin_org_ids()));
grant select, delete on public.availability_overrides to authenticated;
grant insert (mechanic_id, organization_id, on_date, is_available, start_time, end_time, price_multiplier, reason)
  on public.availability_overrides to authenticated;
grant update (is_available, start_time, end_time, price_multiplier, reason) on public.availability_overrides to authenticated;
grant select, insert, update, delete on public.availability_overrides to service_role;

alter table public.mechanic_time_off enable row level security;
create policy select_owner_workshop_or_admin on public.mechanic_time_off for select to authenticated
  using (mechanic_id = (select auth.uid()) or mechanic_id in (select private.my_workshop_mechanic_ids())
         or (select private.is_admin()));
create policy insert_owner_or_workshop on public.mechanic_time_off for insert to authenticated
  with check (mechanic_id = (select auth.uid()) or mechanic_id in (select private.my_workshop_mechanic_ids()));
create policy delete_owner_or_workshop on public.mechanic_time_off for delete to authenticated
  using (mechanic_id = (select auth.uid()) or mechanic_id in (select private.my_workshop_mechanic_ids()));
grant select, delete on public.mechanic_time_off to authenticated;
grant insert (mechanic_id, during, reason) on public.mechanic_time_off to authenticated;
grant select, insert, update, delete on public.mechanic_time_off to service_role;

alter table public.workshop_hours enable row level security;
create policy select_member_or_admin on public.workshop_hours for select to authenticated
  using (organization_id in (select private.my_org_ids()) or (select private.is_admin()));
create policy insert_workshop_admin on public.workshop_hours for insert to authenticated
  with check (organization_id in (select private.my_admin_org_ids()));
create policy update_workshop_admin on public.workshop_hours for update to authenticated
  using (organization_id in (select private.my_admin_org_ids()))
  with check (organization_id in (select private.my_admin_org_ids()));
create policy delete_workshop_admin on public.workshop_hours for delete to authenticated
  using (organization_id in (select private.my_admin_org_ids()));
grant select, delete on public.workshop_hours to authenticated;
grant insert (organization_id, day_of_week, is_open, open_time, close_time, break_start, break_end, capacity)
  on public.workshop_hours to authenticated;
grant update (is_open, open_time, close_time, break_start, break_end, capacity) on public.workshop_hours to authenticated;
grant select, insert, update, delete on public.workshop_hours to service_role;

alter table public.booking_rules enable row level security;
create policy select_owner_workshop_or_admin on public.booking_rules for select to authenticated
  using (mechanic_id = (select auth.uid()) or mechanic_id in (select private.my_workshop_mechanic_ids())
         or (select private.is_admin()));
create policy insert_owner_or_workshop on public.booking_rules for insert to authenticated
  with check (mechanic_id = (select auth.uid()) or mechanic_id in (select private.my_workshop_mechanic_ids()));
create policy update_owner_or_workshop on public.booking_rules for update to authenticated
  using (mechanic_id = (select auth.uid()) or mechanic_id in (select private.my_workshop_mechanic_ids()))
  with check (mechanic_id = (select auth.uid()) or mechanic_id in (select private.my_workshop_mechanic_ids()));
grant select on public.booking_rules to authenticated;
grant insert (mechanic_id, buffer_minutes, min_notice_minutes, max_advance_days, slot_step_minutes,
  max_sessions_per_day, instant_booking) on public.booking_rules to authenticated;
grant update (buffer_minutes, min_notice_minutes, max_advance_days, slot_step_minutes, max_sessions_per_day,
  instant_booking) on public.booking_rules to authenticated;
grant select, insert, update, delete on public.booking_rules to service_role;

-- A customer sees its own holds (and, as before, a mechanic its commitments; admins all).
drop policy select_own_or_admin on public.mechanic_commitments;
create policy select_own_or_admin on public.mechanic_commitments for select to authenticated
  using (mechanic_id = (select auth.uid()) or customer_id = (select auth.uid()) or (select private.is_admin()));
