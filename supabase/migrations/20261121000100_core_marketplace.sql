-- Core marketplace: accounts, workshops, mechanics, catalog, vehicles, intakes, sessions and
-- requests with their offers, participants, audit events, chat and files; the committed-time
-- table that keeps a mechanic to one job at a time; RLS on every table; the Realtime policies.
--
-- Writes to sessions, requests, offers, participants and events happen only through the RPCs in
-- supabase/functions_sql/ (security definer); clients get SELECT on them, filtered by RLS.

-- ---------------------------------------------------------------------------------------------
-- Error codes of this domain
-- ---------------------------------------------------------------------------------------------
insert into private.error_codes (sqlstate, name, http_status, description) values
  ('AD008', 'payment_required', 402, 'The plan is paid: book it through checkout.'),
  ('AD009', 'request_not_available', 409, 'The request was already taken, cancelled or expired.'),
  ('AD010', 'mechanic_busy', 409, 'The mechanic already holds an accepted request or an active session.');

insert into private.settings (key, value, description) values
  ('pricing.specialist_surcharge_cents', '1000', 'brand-specialist surcharge on a plan''s price (seed 001)'),
  ('text.max_length', '4000', 'longest free text accepted in a concern, note, reason or chat message');

-- ---------------------------------------------------------------------------------------------
-- Types
-- ---------------------------------------------------------------------------------------------
create type public.session_type as enum ('chat', 'video', 'diagnostic');
create type public.duration_type as enum ('micro', 'standard', 'extended');
create type public.session_status as enum ('pending', 'scheduled', 'waiting', 'live', 'completed', 'cancelled');
create type public.request_status as enum ('pending', 'accepted', 'unattended', 'expired', 'cancelled');
create type public.mechanic_status as enum ('pending', 'approved', 'suspended');
create type public.mechanic_account_type as enum ('individual_mechanic', 'workshop_mechanic');
create type public.mechanic_type as enum ('virtual_only', 'independent_workshop', 'workshop_affiliated');
create type public.intake_status as enum
  ('new', 'pending', 'in_review', 'in_progress', 'awaiting_customer', 'resolved', 'cancelled');
create type public.offer_status as enum ('offered', 'queued', 'accepted', 'declined', 'expired', 'withdrawn');
create type public.participant_role as enum ('customer', 'mechanic');
create type public.organization_role as enum ('owner', 'admin', 'mechanic');
create type public.commitment_kind as enum ('on_demand', 'scheduled', 'hold');
create type public.commitment_status as enum ('held', 'confirmed', 'in_progress', 'released', 'done', 'expired');

-- ---------------------------------------------------------------------------------------------
-- Helpers used by constraints
-- ---------------------------------------------------------------------------------------------
-- IANA zone names, copied from pg_timezone_names (which reads the zone files on every call, ~20 ms):
-- a lookup here costs microseconds. Refresh after a server upgrade: select private.refresh_time_zones().
create table private.time_zones (
  name text primary key
);
alter table private.time_zones enable row level security;

create function private.refresh_time_zones() returns int
language sql volatile security definer set search_path = ''
as $$
  with added as (
    insert into private.time_zones (name) select t.name from pg_catalog.pg_timezone_names t
    on conflict (name) do nothing returning 1)
  select count(*)::int from added
$$;
revoke execute on function private.refresh_time_zones() from public;
select private.refresh_time_zones();

create function private.is_valid_timezone(p_zone text) returns boolean
language sql stable strict parallel safe security definer
set search_path = ''
as $$ select exists (select 1 from private.time_zones z where z.name = p_zone) $$;
grant execute on function private.is_valid_timezone(text) to anon, authenticated, service_role;

create function private.try_uuid(p_text text) returns uuid
language plpgsql immutable parallel safe
set search_path = ''
as $$
begin
  return p_text::uuid;
exception when invalid_text_representation then
  return null;
end
$$;
grant execute on function private.try_uuid(text) to anon, authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- Accounts
-- ---------------------------------------------------------------------------------------------
create table public.profiles (
  id uuid primary key references auth.users (id) on delete cascade,
  full_name text constraint profiles_full_name_length check (char_length(full_name) <= 200),
  phone text constraint profiles_phone_format check (phone ~ '^\+?[0-9 ()-]{5,32}$'),
  avatar_url text constraint profiles_avatar_url_format check (avatar_url ~ '^https?://' and char_length(avatar_url) <= 2000),
  timezone text not null default 'UTC' constraint profiles_timezone_valid check (private.is_valid_timezone(timezone)),
  city text constraint profiles_city_length check (char_length(city) <= 120),
  postal_code text constraint profiles_postal_code_length check (char_length(postal_code) <= 20),
  country text constraint profiles_country_format check (country ~ '^[A-Z]{2}$'),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table public.profiles is 'One per auth user, created by a trigger on auth.users.';

-- Platform admins: granted by app_metadata.role = 'admin' (server-set), mirrored here by trigger.
create table private.admins (
  user_id uuid primary key references auth.users (id) on delete cascade,
  created_at timestamptz not null default now()
);
alter table private.admins enable row level security;

create table public.organizations (
  id uuid primary key default gen_random_uuid(),
  name text not null constraint organizations_name_length check (char_length(name) between 1 and 200),
  timezone text not null default 'UTC' constraint organizations_timezone_valid check (private.is_valid_timezone(timezone)),
  city text constraint organizations_city_length check (char_length(city) <= 120),
  postal_code text constraint organizations_postal_code_length check (char_length(postal_code) <= 20),
  country text constraint organizations_country_format check (country ~ '^[A-Z]{2}$'),
  created_by uuid references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index organizations_created_by_idx on public.organizations (created_by);  -- FK
comment on table public.organizations is 'Workshops. Members are in organization_members.';

create table public.organization_members (
  organization_id uuid not null references public.organizations (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  role public.organization_role not null,
  created_at timestamptz not null default now(),
  primary key (organization_id, user_id)
);
create index organization_members_user_id_idx on public.organization_members (user_id);  -- "my workshops"

-- ---------------------------------------------------------------------------------------------
-- Supply: mechanics (id = the mechanic's auth user id)
-- ---------------------------------------------------------------------------------------------
create table public.mechanics (
  id uuid primary key references auth.users (id) on delete cascade,
  display_name text not null constraint mechanics_display_name_length check (char_length(display_name) between 1 and 120),
  photo_url text constraint mechanics_photo_url_format check (photo_url ~ '^https?://' and char_length(photo_url) <= 2000),
  bio text constraint mechanics_bio_length check (char_length(bio) <= 4000),
  years_experience int not null default 0 constraint mechanics_years_experience_range check (years_experience between 0 and 80),
  specialties text[] not null default '{}' constraint mechanics_specialties_size check (cardinality(specialties) <= 50),
  brand_specializations text[] not null default '{}'
    constraint mechanics_brand_specializations_size check (cardinality(brand_specializations) <= 50),
  is_brand_specialist boolean not null default false,
  service_keywords text[] not null default '{}'
    constraint mechanics_service_keywords_size check (cardinality(service_keywords) <= 100),
  city text constraint mechanics_city_length check (char_length(city) <= 120),
  postal_code text constraint mechanics_postal_code_length check (char_length(postal_code) <= 20),
  country text constraint mechanics_country_format check (country ~ '^[A-Z]{2}$'),
  timezone text not null default 'UTC' constraint mechanics_timezone_valid check (private.is_valid_timezone(timezone)),
  organization_id uuid references public.organizations (id) on delete set null,
  account_type public.mechanic_account_type not null default 'individual_mechanic',
  mechanic_type public.mechanic_type not null generated always as (
    case
      when organization_id is null then 'virtual_only'::public.mechanic_type
      when account_type = 'workshop_mechanic' then 'workshop_affiliated'::public.mechanic_type
      else 'independent_workshop'::public.mechanic_type
    end) stored,
  status public.mechanic_status not null default 'pending',
  approved_at timestamptz,
  can_accept_sessions boolean not null default true,
  is_available boolean not null default false,
  last_seen_at timestamptz,
  rating_avg numeric(3, 2) constraint mechanics_rating_avg_range check (rating_avg between 1 and 5),
  rating_count int not null default 0 constraint mechanics_rating_count_nonneg check (rating_count >= 0),
  completed_sessions int not null default 0 constraint mechanics_completed_sessions_nonneg check (completed_sessions >= 0),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index mechanics_organization_id_idx on public.mechanics (organization_id);  -- FK; workshop rosters
create index mechanics_status_idx on public.mechanics (status) where status = 'approved';  -- directory
comment on column public.mechanics.mechanic_type is 'Derived (seed 004 §2.2): no workshop → virtual_only; '
  'workshop + workshop_mechanic → workshop_affiliated; workshop + individual_mechanic → independent_workshop.';

-- Connected Stripe accounts of mechanics and workshops: kept apart so that only the owner sees them.
create table public.payout_accounts (
  id uuid primary key default gen_random_uuid(),
  mechanic_id uuid constraint payout_accounts_mechanic_id_key unique references public.mechanics (id) on delete cascade,
  organization_id uuid constraint payout_accounts_organization_id_key unique
    references public.organizations (id) on delete cascade,
  stripe_account_id text not null constraint payout_accounts_stripe_account_id_key unique,
  charges_enabled boolean not null default false,
  payouts_enabled boolean not null default false,
  details_submitted boolean not null default false,
  transfers_active boolean not null default false,
  stripe_updated_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint payout_accounts_one_owner check (num_nonnulls(mechanic_id, organization_id) = 1)
);

-- ---------------------------------------------------------------------------------------------
-- Catalog
-- ---------------------------------------------------------------------------------------------
create table public.service_plans (
  code text primary key constraint service_plans_code_format check (code ~ '^[a-z][a-z0-9_]{1,40}$'),
  name text not null,
  description text,
  session_type public.session_type not null,
  duration_type public.duration_type not null,
  minutes int not null constraint service_plans_minutes_range check (minutes between 1 and 480),
  price_cents int not null constraint service_plans_price_nonneg check (price_cents >= 0),
  currency text not null default 'usd' constraint service_plans_currency_format check (currency ~ '^[a-z]{3}$'),
  advice_only boolean not null default false,
  active boolean not null default true,
  sort_order int not null default 0,
  constraint service_plans_micro_is_short check (duration_type <> 'micro' or minutes <= 10)
);
insert into public.service_plans
  (code, name, description, session_type, duration_type, minutes, price_cents, advice_only, sort_order) values
  ('free', 'Free Session (5 min)', 'Sample the platform: a short advice-only chat.', 'chat', 'micro', 5, 0, true, 10),
  ('micro', 'Quick Advice (up to 10 min)', 'Advice-only chat with one photo for a quick answer.', 'chat', 'micro', 10, 499, true, 20),
  ('chat10', 'Quick Chat (30 min)', 'Text-based consult for fast reassurance and triage.', 'chat', 'standard', 30, 999, false, 30),
  ('video15', 'Standard Video (45 min)', 'Live video walkthrough to diagnose complex issues.', 'video', 'standard', 45, 2999, false, 40),
  ('diagnostic', 'Full Diagnostic (60 min)', 'Comprehensive diagnostic session with written summary.', 'diagnostic', 'extended', 60, 4999, false, 50);

-- ---------------------------------------------------------------------------------------------
-- Demand: vehicles, intakes, waivers
-- ---------------------------------------------------------------------------------------------
create table public.vehicles (
  id uuid primary key default gen_random_uuid(),
  owner_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  make text not null constraint vehicles_make_length check (char_length(make) between 1 and 60),
  model text not null constraint vehicles_model_length check (char_length(model) between 1 and 60),
  year int not null constraint vehicles_year_range check (year between 1900 and 2100),
  vin text constraint vehicles_vin_format check (vin ~ '^[A-HJ-NPR-Z0-9]{17}$'),
  color text constraint vehicles_color_length check (char_length(color) <= 40),
  mileage int constraint vehicles_mileage_range check (mileage between 0 and 3000000),
  plate text constraint vehicles_plate_length check (char_length(plate) <= 20),
  nickname text constraint vehicles_nickname_length check (char_length(nickname) <= 60),
  is_primary boolean not null default false,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index vehicles_owner_id_idx on public.vehicles (owner_id);  -- FK; "my vehicles"
create unique index vehicles_one_primary_per_owner on public.vehicles (owner_id) where is_primary;

create table public.intakes (
  id uuid primary key default gen_random_uuid(),
  customer_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  vehicle_id uuid references public.vehicles (id) on delete set null,
  plan_code text references public.service_plans (code) on delete restrict,
  status public.intake_status not null default 'new',
  concern text not null constraint intakes_concern_length check (char_length(concern) between 3 and 4000),
  details text constraint intakes_details_length check (char_length(details) <= 4000),
  vehicle_make text constraint intakes_vehicle_make_length check (char_length(vehicle_make) <= 60),
  vehicle_model text constraint intakes_vehicle_model_length check (char_length(vehicle_model) <= 60),
  vehicle_year int constraint intakes_vehicle_year_range check (vehicle_year between 1900 and 2100),
  vin text constraint intakes_vin_format check (vin ~ '^[A-HJ-NPR-Z0-9]{17}$'),
  odometer int constraint intakes_odometer_range check (odometer between 0 and 3000000),
  plate text constraint intakes_plate_length check (char_length(plate) <= 20),
  contact_name text constraint intakes_contact_name_length check (char_length(contact_name) <= 200),
  contact_email text constraint intakes_contact_email_format check (contact_email ~ '^[^@\s]{1,64}@[^@\s]{1,255}$'),
  contact_phone text constraint intakes_contact_phone_format check (contact_phone ~ '^\+?[0-9 ()-]{5,32}$'),
  city text constraint intakes_city_length check (char_length(city) <= 120),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index intakes_customer_id_idx on public.intakes (customer_id);  -- FK; "my intakes"
create index intakes_vehicle_id_idx on public.intakes (vehicle_id);  -- FK
create index intakes_plan_code_idx on public.intakes (plan_code);  -- FK

create table public.waiver_acceptances (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  waiver_version text not null default 'v1.0' constraint waiver_acceptances_version_length check (char_length(waiver_version) <= 20),
  ip_address inet,
  user_agent text constraint waiver_acceptances_user_agent_length check (char_length(user_agent) <= 500),
  accepted_at timestamptz not null default now()
);
create index waiver_acceptances_user_id_idx on public.waiver_acceptances (user_id);  -- FK

-- ---------------------------------------------------------------------------------------------
-- Sessions and requests
-- ---------------------------------------------------------------------------------------------
create table public.sessions (
  id uuid primary key default gen_random_uuid(),
  customer_id uuid not null references auth.users (id) on delete restrict,
  mechanic_id uuid references public.mechanics (id) on delete restrict,
  plan_code text not null references public.service_plans (code) on delete restrict,
  session_type public.session_type not null,
  duration_type public.duration_type not null,
  planned_minutes int not null constraint sessions_planned_minutes_range check (planned_minutes between 1 and 480),
  price_cents int not null constraint sessions_price_nonneg check (price_cents >= 0),
  currency text not null default 'usd' constraint sessions_currency_format check (currency ~ '^[a-z]{3}$'),
  specialist boolean not null default false,
  intake_id uuid references public.intakes (id) on delete set null,
  vehicle_id uuid references public.vehicles (id) on delete set null,
  status public.session_status not null default 'pending',
  status_changed_at timestamptz not null default now(),
  scheduled_for timestamptz,
  started_at timestamptz,
  ended_at timestamptz,
  duration_minutes int constraint sessions_duration_nonneg check (duration_minutes >= 0),
  mechanic_notes text constraint sessions_mechanic_notes_length check (char_length(mechanic_notes) <= 4000),
  cancel_reason text constraint sessions_cancel_reason_length check (char_length(cancel_reason) <= 4000),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint sessions_mechanic_when_assigned check (status in ('pending', 'scheduled', 'cancelled') or mechanic_id is not null),
  constraint sessions_customer_is_not_mechanic check (mechanic_id is null or mechanic_id <> customer_id),
  constraint sessions_ended_after_started check (ended_at is null or started_at is null or ended_at >= started_at)
);
create index sessions_customer_id_idx on public.sessions (customer_id, created_at desc);  -- FK; history
create index sessions_mechanic_id_idx on public.sessions (mechanic_id, created_at desc);  -- FK; history
create index sessions_plan_code_idx on public.sessions (plan_code);  -- FK
create index sessions_vehicle_id_idx on public.sessions (vehicle_id);  -- FK
create index sessions_status_idx on public.sessions (status, status_changed_at)
  where status in ('pending', 'scheduled', 'waiting', 'live');  -- sweeps touch only active rows
create index sessions_intake_id_idx on public.sessions (intake_id);  -- FK
-- An intake feeds at most one active session.
create unique index sessions_one_active_per_intake on public.sessions (intake_id)
  where status in ('pending', 'scheduled', 'waiting', 'live');

create table public.session_requests (
  id uuid primary key default gen_random_uuid(),
  session_id uuid not null constraint session_requests_session_id_key unique
    references public.sessions (id) on delete cascade,
  customer_id uuid not null references auth.users (id) on delete restrict,
  plan_code text not null references public.service_plans (code) on delete restrict,
  session_type public.session_type not null,
  status public.request_status not null default 'pending',
  status_changed_at timestamptz not null default now(),
  mechanic_id uuid references public.mechanics (id) on delete restrict,
  preferred_mechanic_id uuid references public.mechanics (id) on delete set null,
  specialist boolean not null default false,
  -- what a mechanic needs to decide, with no contact details
  vehicle_make text,
  vehicle_model text,
  vehicle_year int,
  concern text not null,
  accepted_at timestamptz,
  cancel_reason text constraint session_requests_cancel_reason_length check (char_length(cancel_reason) <= 4000),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint session_requests_mechanic_matches_status check (
    (status = 'accepted' and mechanic_id is not null)
    or (status in ('pending', 'unattended') and mechanic_id is null)
    or status in ('expired', 'cancelled'))
);
create index session_requests_customer_id_idx on public.session_requests (customer_id, created_at desc);  -- FK
create index session_requests_mechanic_id_idx on public.session_requests (mechanic_id);  -- FK
create index session_requests_preferred_mechanic_id_idx on public.session_requests (preferred_mechanic_id);  -- FK
create index session_requests_plan_code_idx on public.session_requests (plan_code);  -- FK
create index session_requests_open_idx on public.session_requests (status, status_changed_at)
  where status in ('pending', 'unattended', 'accepted');  -- open feed and sweeps

create table public.session_offers (
  id uuid primary key default gen_random_uuid(),
  request_id uuid not null references public.session_requests (id) on delete cascade,
  mechanic_id uuid references public.mechanics (id) on delete cascade,  -- null: a broadcast offer
  status public.offer_status not null default 'offered',
  score numeric,
  reasons jsonb not null default '[]',
  offered_at timestamptz not null default now(),
  expires_at timestamptz,
  responded_at timestamptz,
  created_at timestamptz not null default now()
);
create index session_offers_request_id_idx on public.session_offers (request_id);  -- FK
create index session_offers_mechanic_id_idx on public.session_offers (mechanic_id, status);  -- FK; "my offers"
create unique index session_offers_one_per_mechanic on public.session_offers (request_id, mechanic_id)
  where mechanic_id is not null;

create table public.session_participants (
  session_id uuid not null references public.sessions (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  role public.participant_role not null,
  joined_at timestamptz,
  left_at timestamptz,
  created_at timestamptz not null default now(),
  primary key (session_id, user_id)
);
create index session_participants_user_id_idx on public.session_participants (user_id);  -- FK; "my sessions"

-- Append-only audit of every status change of a session or a request.
create table public.session_events (
  id bigint generated always as identity primary key,
  session_id uuid not null references public.sessions (id) on delete cascade,
  request_id uuid references public.session_requests (id) on delete cascade,
  entity text not null constraint session_events_entity_values check (entity in ('session', 'request')),
  from_status text,
  to_status text not null,
  actor_id uuid references auth.users (id) on delete set null,
  actor_role text not null constraint session_events_actor_role_values
    check (actor_role in ('customer', 'mechanic', 'admin', 'system')),
  reason text,
  at timestamptz not null default now()
);
create index session_events_session_id_idx on public.session_events (session_id, id);  -- FK; timeline
create index session_events_request_id_idx on public.session_events (request_id);  -- FK
create index session_events_actor_id_idx on public.session_events (actor_id);  -- FK

create table public.chat_messages (
  id uuid primary key default gen_random_uuid(),
  session_id uuid not null references public.sessions (id) on delete cascade,
  sender_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  content text not null constraint chat_messages_content_length check (char_length(content) between 1 and 4000),
  attachments jsonb not null default '[]' constraint chat_messages_attachments_array check (jsonb_typeof(attachments) = 'array'),
  created_at timestamptz not null default now()
);
create index chat_messages_session_id_idx on public.chat_messages (session_id, created_at);  -- FK; transcript
create index chat_messages_sender_id_idx on public.chat_messages (sender_id);  -- FK

create table public.session_files (
  id uuid primary key default gen_random_uuid(),
  session_id uuid not null references public.sessions (id) on delete cascade,
  uploaded_by uuid not null default auth.uid() references auth.users (id) on delete cascade,
  file_name text not null constraint session_files_file_name_length check (char_length(file_name) between 1 and 255),
  file_size bigint not null constraint session_files_file_size_range check (file_size between 1 and 26214400),
  content_type text not null constraint session_files_content_type_format check (content_type ~ '^[a-z]+/[a-zA-Z0-9.+-]+$'),
  storage_path text not null constraint session_files_storage_path_key unique,
  description text constraint session_files_description_length check (char_length(description) <= 1000),
  created_at timestamptz not null default now(),
  constraint session_files_path_in_session_folder check (storage_path like 'sessions/' || session_id::text || '/%')
);
create index session_files_session_id_idx on public.session_files (session_id);  -- FK
create index session_files_uploaded_by_idx on public.session_files (uploaded_by);  -- FK

-- ---------------------------------------------------------------------------------------------
-- Committed time: one row per stretch of a mechanic's time that is taken. On-demand work is
-- `in_progress` from acceptance; the scheduling domain adds holds and confirmed bookings.
-- Writers take the mechanic's row lock first (SCHEDULING.md: the constraint alone deadlocks).
-- ---------------------------------------------------------------------------------------------
create table public.mechanic_commitments (
  id uuid primary key default gen_random_uuid(),
  mechanic_id uuid not null references public.mechanics (id) on delete cascade,
  kind public.commitment_kind not null,
  status public.commitment_status not null,
  during tstzrange not null constraint mechanic_commitments_during_bounded check (not isempty(during)),
  session_id uuid references public.sessions (id) on delete cascade,
  request_id uuid references public.session_requests (id) on delete cascade,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint mechanic_commitments_no_overlap exclude using gist (mechanic_id with =, during with &&)
    where (status in ('held', 'confirmed', 'in_progress'))
);
-- One job at a time: at most one in-progress commitment per mechanic.
create unique index mechanic_commitments_one_job_at_a_time on public.mechanic_commitments (mechanic_id)
  where status = 'in_progress';
create index mechanic_commitments_session_id_idx on public.mechanic_commitments (session_id);  -- FK
create index mechanic_commitments_request_id_idx on public.mechanic_commitments (request_id);  -- FK

-- ---------------------------------------------------------------------------------------------
-- Storage bucket for session files (objects under sessions/<session_id>/...)
-- ---------------------------------------------------------------------------------------------
insert into storage.buckets (id, name, public, file_size_limit, allowed_mime_types)
values ('session-files', 'session-files', false, 26214400,
        array['image/jpeg', 'image/png', 'image/webp', 'image/heic', 'video/mp4', 'video/quicktime',
              'application/pdf', 'text/plain'])
on conflict (id) do nothing;

-- ---------------------------------------------------------------------------------------------
-- RLS helpers (security definer: they read rows the caller's RLS would hide; each returns only
-- facts about the caller). Policies call them as (select private.fn()).
-- ---------------------------------------------------------------------------------------------
create function private.is_admin() returns boolean
language sql stable security definer set search_path = ''
as $$ select exists (select 1 from private.admins a where a.user_id = (select auth.uid())) $$;

create function private.is_mechanic() returns boolean
language sql stable security definer set search_path = ''
as $$ select exists (select 1 from public.mechanics m where m.id = (select auth.uid())) $$;

create function private.is_approved_mechanic() returns boolean
language sql stable security definer set search_path = ''
as $$ select exists (select 1 from public.mechanics m where m.id = (select auth.uid()) and m.status = 'approved') $$;

-- Sessions the caller takes part in (customer or assigned mechanic).
create function private.my_session_ids() returns setof uuid
language sql stable security definer set search_path = ''
as $$
  select s.id from public.sessions s where s.customer_id = (select auth.uid())
  union
  select s.id from public.sessions s where s.mechanic_id = (select auth.uid())
$$;

-- Workshops where the caller is owner or admin.
create function private.my_admin_org_ids() returns setof uuid
language sql stable security definer set search_path = ''
as $$
  select om.organization_id from public.organization_members om
  where om.user_id = (select auth.uid()) and om.role in ('owner', 'admin')
$$;

-- Workshops the caller belongs to, in any role.
create function private.my_org_ids() returns setof uuid
language sql stable security definer set search_path = ''
as $$ select om.organization_id from public.organization_members om where om.user_id = (select auth.uid()) $$;

-- Sessions of mechanics of workshops the caller administers.
create function private.my_workshop_session_ids() returns setof uuid
language sql stable security definer set search_path = ''
as $$
  select s.id from public.sessions s
  join public.mechanics m on m.id = s.mechanic_id
  join public.organization_members om on om.organization_id = m.organization_id
  where om.user_id = (select auth.uid()) and om.role in ('owner', 'admin')
$$;

-- Users the caller has a session with that a mechanic holds or held to the end (their contact
-- details are then shared); a released or cancelled session shares nothing.
create function private.my_counterpart_ids() returns setof uuid
language sql stable security definer set search_path = ''
as $$
  select s.mechanic_id from public.sessions s
  where s.customer_id = (select auth.uid()) and s.mechanic_id is not null
    and s.status in ('scheduled', 'waiting', 'live', 'completed')
  union
  select s.customer_id from public.sessions s
  where s.mechanic_id = (select auth.uid()) and s.status in ('scheduled', 'waiting', 'live', 'completed')
$$;

-- Intakes of the sessions the caller holds (or completed) as their mechanic.
create function private.my_held_intake_ids() returns setof uuid
language sql stable security definer set search_path = ''
as $$
  select s.intake_id from public.sessions s
  where s.mechanic_id = (select auth.uid()) and s.intake_id is not null
    and s.status in ('scheduled', 'waiting', 'live', 'completed')
$$;

-- Whether the caller may see session `p_session_id` (participant or platform admin).
create function private.can_access_session(p_session_id uuid) returns boolean
language sql stable security definer set search_path = ''
as $$
  select p_session_id is not null and (
    exists (select 1 from public.sessions s where s.id = p_session_id
            and (s.customer_id = (select auth.uid()) or s.mechanic_id = (select auth.uid())))
    or (select private.is_admin()))
$$;

-- Whether the caller may write into session `p_session_id` now (participant of an active session).
create function private.can_write_session(p_session_id uuid) returns boolean
language sql stable security definer set search_path = ''
as $$
  select exists (select 1 from public.sessions s where s.id = p_session_id and s.status in ('waiting', 'live')
                 and (s.customer_id = (select auth.uid()) or s.mechanic_id = (select auth.uid())))
$$;

-- Realtime: which private topics the caller may receive (ARCHITECTURE.md, realtime contract).
create function private.realtime_can_receive(p_topic text, p_extension text) returns boolean
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_uid uuid := (select auth.uid());
begin
  if v_uid is null or p_topic is null then
    return false;
  end if;
  if p_topic = 'mechanics:presence' then
    return p_extension in ('presence', 'broadcast');  -- tracked presence, and the database's presence events
  end if;
  if p_extension <> 'broadcast' then
    return false;
  end if;
  if p_topic = 'mechanics:requests' then
    return private.is_approved_mechanic() or private.is_admin();
  elsif p_topic = 'admin:queue' then
    return private.is_admin();
  elsif p_topic like 'mechanic:%' then
    return p_topic = 'mechanic:' || v_uid::text or private.is_admin();
  elsif p_topic like 'session:%' then
    return private.can_access_session(private.try_uuid(substr(p_topic, 9)));
  end if;
  return false;
end
$$;

-- Realtime: which topics the caller may send to / track presence on.
create function private.realtime_can_send(p_topic text, p_extension text) returns boolean
language sql stable security definer set search_path = ''
as $$
  select p_extension = 'presence' and p_topic = 'mechanics:presence' and private.is_approved_mechanic()
$$;

revoke execute on function private.is_admin(), private.is_mechanic(), private.is_approved_mechanic(),
  private.my_session_ids(), private.my_admin_org_ids(), private.my_org_ids(), private.my_workshop_session_ids(),
  private.my_counterpart_ids(), private.my_held_intake_ids(), private.can_access_session(uuid),
  private.can_write_session(uuid), private.realtime_can_receive(text, text), private.realtime_can_send(text, text)
  from public;
grant execute on function private.is_admin(), private.is_mechanic(), private.is_approved_mechanic(),
  private.my_session_ids(), private.my_admin_org_ids(), private.my_org_ids(), private.my_workshop_session_ids(),
  private.my_counterpart_ids(), private.my_held_intake_ids(), private.can_access_session(uuid),
  private.can_write_session(uuid), private.realtime_can_receive(text, text), private.realtime_can_send(text, text)
  to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- RLS and policies (one per command and audience), then grants (column lists for writes)
-- ---------------------------------------------------------------------------------------------
alter table public.profiles enable row level security;
create policy select_self_counterpart_or_admin on public.profiles for select to authenticated
  using (id = (select auth.uid()) or id in (select private.my_counterpart_ids()) or (select private.is_admin()));
create policy update_self on public.profiles for update to authenticated
  using (id = (select auth.uid())) with check (id = (select auth.uid()));
grant select on public.profiles to authenticated, service_role;
grant update (full_name, phone, avatar_url, timezone, city, postal_code, country) on public.profiles to authenticated;
grant update on public.profiles to service_role;

alter table public.organizations enable row level security;
create policy select_member_or_admin on public.organizations for select to authenticated
  using (id in (select private.my_org_ids()) or (select private.is_admin()));
create policy update_workshop_admin on public.organizations for update to authenticated
  using (id in (select private.my_admin_org_ids())) with check (id in (select private.my_admin_org_ids()));
grant select on public.organizations to authenticated, service_role;
grant update (name, timezone, city, postal_code, country) on public.organizations to authenticated;
grant insert, update, delete on public.organizations to service_role;

alter table public.organization_members enable row level security;
create policy select_member_or_admin on public.organization_members for select to authenticated
  using (organization_id in (select private.my_org_ids()) or (select private.is_admin()));
grant select on public.organization_members to authenticated, service_role;
grant insert, update, delete on public.organization_members to service_role;

alter table public.mechanics enable row level security;
create policy select_directory on public.mechanics for select to anon using (status = 'approved');
create policy select_directory_self_workshop_or_admin on public.mechanics for select to authenticated
  using (status = 'approved' or id = (select auth.uid())
         or organization_id in (select private.my_admin_org_ids()) or (select private.is_admin()));
create policy update_self on public.mechanics for update to authenticated
  using (id = (select auth.uid())) with check (id = (select auth.uid()));
-- The directory columns only: no contact details exist on this table, and status fields are read-only.
grant select (id, display_name, photo_url, bio, years_experience, specialties, brand_specializations,
  is_brand_specialist, service_keywords, city, country, timezone, mechanic_type, organization_id, status,
  rating_avg, rating_count, completed_sessions, is_available, last_seen_at, created_at)
  on public.mechanics to anon;
grant select on public.mechanics to authenticated, service_role;
grant update (display_name, photo_url, bio, years_experience, specialties, brand_specializations,
  service_keywords, city, postal_code, country, timezone) on public.mechanics to authenticated;
grant insert, update on public.mechanics to service_role;

alter table public.payout_accounts enable row level security;
create policy select_owner_or_admin on public.payout_accounts for select to authenticated
  using (mechanic_id = (select auth.uid()) or organization_id in (select private.my_admin_org_ids())
         or (select private.is_admin()));
grant select on public.payout_accounts to authenticated, service_role;
grant insert, update on public.payout_accounts to service_role;

alter table public.service_plans enable row level security;
create policy select_active on public.service_plans for select to anon using (active);
create policy select_active_or_admin on public.service_plans for select to authenticated
  using (active or (select private.is_admin()));
grant select on public.service_plans to anon, authenticated, service_role;
grant insert, update on public.service_plans to service_role;

alter table public.vehicles enable row level security;
create policy select_own_or_admin on public.vehicles for select to authenticated
  using (owner_id = (select auth.uid()) or (select private.is_admin()));
create policy insert_own on public.vehicles for insert to authenticated with check (owner_id = (select auth.uid()));
create policy update_own on public.vehicles for update to authenticated
  using (owner_id = (select auth.uid())) with check (owner_id = (select auth.uid()));
create policy delete_own on public.vehicles for delete to authenticated using (owner_id = (select auth.uid()));
grant select, delete on public.vehicles to authenticated;
grant insert (make, model, year, vin, color, mileage, plate, nickname, is_primary) on public.vehicles to authenticated;
grant update (make, model, year, vin, color, mileage, plate, nickname, is_primary) on public.vehicles to authenticated;
grant select, insert, update, delete on public.vehicles to service_role;

alter table public.intakes enable row level security;
-- A mechanic sees an intake (with its contact fields) only once it holds the session.
create policy select_own_assigned_or_admin on public.intakes for select to authenticated
  using (customer_id = (select auth.uid()) or id in (select private.my_held_intake_ids())
         or (select private.is_admin()));
create policy insert_own on public.intakes for insert to authenticated
  with check (customer_id = (select auth.uid()) and status = 'new');
create policy update_own_new on public.intakes for update to authenticated
  using (customer_id = (select auth.uid()) and status = 'new')
  with check (customer_id = (select auth.uid()) and status = 'new');
grant select on public.intakes to authenticated;
grant insert (vehicle_id, plan_code, concern, details, vehicle_make, vehicle_model, vehicle_year, vin, odometer,
  plate, contact_name, contact_email, contact_phone, city) on public.intakes to authenticated;
grant update (vehicle_id, plan_code, concern, details, vehicle_make, vehicle_model, vehicle_year, vin, odometer,
  plate, contact_name, contact_email, contact_phone, city) on public.intakes to authenticated;
grant select, insert, update on public.intakes to service_role;

alter table public.waiver_acceptances enable row level security;
create policy select_own_or_admin on public.waiver_acceptances for select to authenticated
  using (user_id = (select auth.uid()) or (select private.is_admin()));
create policy insert_own on public.waiver_acceptances for insert to authenticated
  with check (user_id = (select auth.uid()));
grant select on public.waiver_acceptances to authenticated, service_role;
grant insert (waiver_version, ip_address, user_agent) on public.waiver_acceptances to authenticated;

alter table public.sessions enable row level security;
create policy select_participant_workshop_or_admin on public.sessions for select to authenticated
  using (id in (select private.my_session_ids()) or id in (select private.my_workshop_session_ids())
         or (select private.is_admin()));
grant select on public.sessions to authenticated, service_role;

alter table public.session_requests enable row level security;
-- Approved mechanics see the open feed (no contact fields exist here); customers their own.
create policy select_own_open_or_admin on public.session_requests for select to authenticated
  using (customer_id = (select auth.uid()) or mechanic_id = (select auth.uid())
         or (status in ('pending', 'unattended') and (select private.is_approved_mechanic()))
         or (select private.is_admin()));
grant select on public.session_requests to authenticated, service_role;

alter table public.session_offers enable row level security;
create policy select_own_or_admin on public.session_offers for select to authenticated
  using (mechanic_id = (select auth.uid()) or (select private.is_admin()));
grant select on public.session_offers to authenticated, service_role;

alter table public.session_participants enable row level security;
create policy select_session_members on public.session_participants for select to authenticated
  using (session_id in (select private.my_session_ids()) or session_id in (select private.my_workshop_session_ids())
         or (select private.is_admin()));
grant select on public.session_participants to authenticated, service_role;

alter table public.session_events enable row level security;
create policy select_session_members on public.session_events for select to authenticated
  using (session_id in (select private.my_session_ids()) or session_id in (select private.my_workshop_session_ids())
         or (select private.is_admin()));
grant select on public.session_events to authenticated, service_role;

alter table public.chat_messages enable row level security;
create policy select_session_members on public.chat_messages for select to authenticated
  using (session_id in (select private.my_session_ids()) or (select private.is_admin()));
create policy insert_participant on public.chat_messages for insert to authenticated
  with check (sender_id = (select auth.uid()) and (select private.can_write_session(session_id)));
grant select on public.chat_messages to authenticated, service_role;
grant insert (session_id, content, attachments) on public.chat_messages to authenticated;

alter table public.session_files enable row level security;
create policy select_session_members on public.session_files for select to authenticated
  using (session_id in (select private.my_session_ids()) or (select private.is_admin()));
create policy insert_participant on public.session_files for insert to authenticated
  with check (uploaded_by = (select auth.uid()) and (select private.can_write_session(session_id)));
grant select on public.session_files to authenticated, service_role;
grant insert (session_id, file_name, file_size, content_type, storage_path, description)
  on public.session_files to authenticated;

alter table public.mechanic_commitments enable row level security;
create policy select_own_or_admin on public.mechanic_commitments for select to authenticated
  using (mechanic_id = (select auth.uid()) or (select private.is_admin()));
grant select on public.mechanic_commitments to authenticated, service_role;

-- Storage: participants read and upload files of their session's folder; nobody updates or deletes.
create policy session_files_select_participant on storage.objects for select to authenticated
  using (bucket_id = 'session-files' and (storage.foldername(name))[1] = 'sessions'
         and (select private.can_access_session(private.try_uuid((storage.foldername(name))[2]))));
create policy session_files_insert_participant on storage.objects for insert to authenticated
  with check (bucket_id = 'session-files' and (storage.foldername(name))[1] = 'sessions'
              and owner_id = (select auth.uid())::text
              and (select private.can_write_session(private.try_uuid((storage.foldername(name))[2]))));

-- Realtime private channels: receive (select) and send/track (insert).
create policy autodoctor_receive on realtime.messages for select to authenticated
  using ((select private.realtime_can_receive((select realtime.topic()), extension)));
create policy autodoctor_send on realtime.messages for insert to authenticated
  with check ((select private.realtime_can_send((select realtime.topic()), extension)));
