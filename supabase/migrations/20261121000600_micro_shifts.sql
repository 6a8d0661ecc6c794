-- Micro-sessions and mechanics on shift (seed 000): participation modes, clock in/out with shift
-- logs, daily micro-minute caps counted per local day, and workshop settings that apply to a
-- workshop's mechanics unless a mechanic's own value overrides them.

insert into private.error_codes (sqlstate, name, http_status, description) values
  ('AD070', 'session_not_eligible', 409, 'The mechanic may not take this kind of session now (mode, shift or cap).'),
  ('AD071', 'already_clocked_in', 409, 'The mechanic is already on shift.'),
  ('AD072', 'not_clocked_in', 409, 'The mechanic is not on shift.');

create type public.participation_mode as enum ('micro_only', 'full_only', 'both');

-- Mechanic settings. A null cap means: the workshop's default, else micro.daily_cap_minutes.
alter table public.mechanics
  add column participation_mode public.participation_mode not null default 'both',
  add column currently_on_shift boolean not null default false,
  add column last_clock_in timestamptz,
  add column last_clock_out timestamptz,
  add column daily_micro_minutes_cap int
    constraint mechanics_daily_micro_minutes_cap_range check (daily_micro_minutes_cap between 0 and 1440),
  add column last_micro_reset_date date;

-- Eligibility reads only the mechanics a rule can exclude.
create index mechanics_participation_mode_idx on public.mechanics (participation_mode)
  where participation_mode <> 'both';
create index mechanics_daily_micro_cap_idx on public.mechanics (daily_micro_minutes_cap)
  where daily_micro_minutes_cap is not null;

-- Workshop settings (seed 000 §Configuration).
alter table public.organizations
  add column micro_sessions_enabled boolean not null default true,
  add column default_daily_micro_cap int
    constraint organizations_default_daily_micro_cap_range check (default_daily_micro_cap between 0 and 1440),
  add column micro_max_duration int not null default 10
    constraint organizations_micro_max_duration_range check (micro_max_duration between 1 and 10),
  add column allow_extensions boolean not null default true,
  add column extension_minutes int not null default 2
    constraint organizations_extension_minutes_range check (extension_minutes between 1 and 10),
  add column auto_accept_micro boolean not null default false;
grant update (micro_sessions_enabled, default_daily_micro_cap, micro_max_duration, allow_extensions,
  extension_minutes, auto_accept_micro) on public.organizations to authenticated;

-- Whether the mechanic was on shift when it took the session (payments' micro on-shift split).
alter table public.sessions add column on_shift boolean not null default false;

-- Shifts.
create table public.mechanic_shift_logs (
  id uuid primary key default gen_random_uuid(),
  mechanic_id uuid not null references public.mechanics (id) on delete cascade,
  organization_id uuid references public.organizations (id) on delete set null,
  clock_in_at timestamptz not null,
  clock_out_at timestamptz,
  shift_duration_minutes int constraint mechanic_shift_logs_duration_nonneg check (shift_duration_minutes >= 0),
  micro_sessions_taken int not null default 0,
  micro_minutes_used int not null default 0,
  full_sessions_taken int not null default 0,
  location text constraint mechanic_shift_logs_location_length check (char_length(location) <= 200),
  notes text constraint mechanic_shift_logs_notes_length check (char_length(notes) <= 2000),
  constraint mechanic_shift_logs_out_after_in check (clock_out_at is null or clock_out_at >= clock_in_at)
);
create index mechanic_shift_logs_mechanic_id_idx on public.mechanic_shift_logs (mechanic_id, clock_in_at desc);  -- FK
create index mechanic_shift_logs_organization_id_idx on public.mechanic_shift_logs (organization_id, clock_in_at);  -- FK
create unique index mechanic_shift_logs_one_open_shift on public.mechanic_shift_logs (mechanic_id)
  where clock_out_at is null;

alter table public.mechanic_shift_logs enable row level security;
create policy select_own_workshop_or_admin on public.mechanic_shift_logs for select to authenticated
  using (mechanic_id = (select auth.uid()) or organization_id in (select private.my_admin_org_ids())
         or (select private.is_admin()));
grant select on public.mechanic_shift_logs to authenticated, service_role;

-- Micro minutes: reserved at accept (planned minutes), settled at the end (actual minutes), on the
-- mechanic's local day of the accept. "Used today" is a sum over the local date, so a late, missed
-- or repeated midnight job changes nothing.
create table public.micro_minute_usage (
  session_id uuid primary key references public.sessions (id) on delete cascade,
  mechanic_id uuid not null references public.mechanics (id) on delete cascade,
  local_day date not null,
  reserved_minutes int not null constraint micro_minute_usage_reserved_nonneg check (reserved_minutes >= 0),
  actual_minutes int constraint micro_minute_usage_actual_nonneg check (actual_minutes >= 0),
  created_at timestamptz not null default now(),
  settled_at timestamptz
);
create index micro_minute_usage_mechanic_day_idx on public.micro_minute_usage (mechanic_id, local_day);  -- FK; today
alter table public.micro_minute_usage enable row level security;
create policy select_own_workshop_or_admin on public.micro_minute_usage for select to authenticated
  using (mechanic_id = (select auth.uid())
         or mechanic_id in (select m.id from public.mechanics m
                            where m.organization_id in (select private.my_admin_org_ids()))
         or (select private.is_admin()));
grant select on public.micro_minute_usage to authenticated, service_role;
