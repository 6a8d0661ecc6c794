-- Workshops as tenants: the roles of a workshop's staff and what each may do, the workshop's
-- verification status, and the in-person appointments a workshop receives.

-- Roles: owner, manager (was `admin`), dispatcher, mechanic. Policies that named `admin` keep
-- working: an enum value renamed keeps its identity.
alter type public.organization_role rename value 'admin' to 'manager';
alter type public.organization_role add value if not exists 'dispatcher' before 'mechanic';

-- The helpers behind the workshop policies named the old value as text: the same sets, by the new
-- name (owners and managers administer a workshop).
create or replace function private.my_admin_org_ids() returns setof uuid
language sql stable security definer set search_path = ''
as $$
  select om.organization_id from public.organization_members om
  where om.user_id = (select auth.uid()) and om.role in ('owner', 'manager')
$$;
create or replace function private.my_workshop_session_ids() returns setof uuid
language sql stable security definer set search_path = ''
as $$
  select s.id from public.sessions s
  join public.mechanics m on m.id = s.mechanic_id
  join public.organization_members om on om.organization_id = m.organization_id
  where om.user_id = (select auth.uid()) and om.role in ('owner', 'manager')
$$;
create or replace function private.my_workshop_mechanic_ids() returns setof uuid
language sql stable security definer set search_path = ''
as $$
  select m.id from public.mechanics m
  where m.organization_id in (select om.organization_id from public.organization_members om
                              where om.user_id = (select auth.uid()) and om.role in ('owner', 'manager'))
$$;

-- What each role may do. One row per (role, permission); checked by private.workshop_can().
create table private.workshop_role_permissions (
  role text not null constraint workshop_role_permissions_role check (role in ('owner', 'manager', 'dispatcher', 'mechanic')),
  permission text not null constraint workshop_role_permissions_permission check (permission in (
    'edit_details', 'edit_hours', 'manage_roster', 'transfer_ownership', 'mark_specialists', 'micro_settings',
    'dispatch', 'handle_appointments', 'see_earnings', 'see_members')),
  primary key (role, permission)
);
alter table private.workshop_role_permissions enable row level security;
comment on table private.workshop_role_permissions is
  'What each workshop role may do (docs/workshops.md has the table); read by private.workshop_can().';
insert into private.workshop_role_permissions (role, permission) values
  ('owner', 'edit_details'), ('owner', 'edit_hours'), ('owner', 'manage_roster'), ('owner', 'transfer_ownership'),
  ('owner', 'mark_specialists'), ('owner', 'micro_settings'), ('owner', 'dispatch'), ('owner', 'handle_appointments'),
  ('owner', 'see_earnings'), ('owner', 'see_members'),
  ('manager', 'edit_details'), ('manager', 'edit_hours'), ('manager', 'manage_roster'), ('manager', 'mark_specialists'),
  ('manager', 'micro_settings'), ('manager', 'dispatch'), ('manager', 'handle_appointments'), ('manager', 'see_earnings'),
  ('manager', 'see_members'),
  ('dispatcher', 'dispatch'), ('dispatcher', 'handle_appointments'), ('dispatcher', 'see_members'),
  ('mechanic', 'see_members');

-- A user's role in a workshop, and whether it has a permission (platform admins have all).
create or replace function private.workshop_role(p_workshop_id uuid, p_user_id uuid) returns text
language sql stable security definer set search_path = ''
as $$
  select om.role::text from public.organization_members om
  where om.organization_id = p_workshop_id and om.user_id = p_user_id
$$;
revoke execute on function private.workshop_role(uuid, uuid) from public;
grant execute on function private.workshop_role(uuid, uuid) to authenticated, service_role;

create or replace function private.workshop_can(p_workshop_id uuid, p_user_id uuid, p_permission text)
returns boolean
language sql stable security definer set search_path = ''
as $$
  select exists (select 1 from private.admins a where a.user_id = p_user_id)
      or exists (select 1 from public.organization_members om
                 join private.workshop_role_permissions rp on rp.role = om.role::text
                 where om.organization_id = p_workshop_id and om.user_id = p_user_id
                   and rp.permission = p_permission)
$$;
revoke execute on function private.workshop_can(uuid, uuid, text) from public;
grant execute on function private.workshop_can(uuid, uuid, text) to authenticated, service_role;

-- Verification: a workshop is listed and bookable only once verified. Workshops that exist
-- already were created by the platform itself: they are verified.
alter table public.organizations
  add column status text not null default 'pending'
    constraint organizations_status_values check (status in ('pending', 'verified', 'suspended')),
  add column verified_at timestamptz;
update public.organizations set status = 'verified', verified_at = coalesce(verified_at, created_at);
create index organizations_status_idx on public.organizations (status);

-- In-person appointments: requested by a customer, answered by the workshop.
create table public.workshop_appointments (
  id uuid primary key default gen_random_uuid(),
  workshop_id uuid not null references public.organizations (id) on delete restrict,
  customer_id uuid not null references auth.users (id) on delete restrict,
  vehicle_id uuid references public.vehicles (id) on delete set null,
  diagnostic_session_id uuid references public.sessions (id) on delete set null,
  referring_mechanic_id uuid references public.mechanics (id) on delete set null,
  mechanic_id uuid references public.mechanics (id) on delete set null,
  service_type text not null constraint workshop_appointments_service_type_length
    check (char_length(service_type) between 1 and 80),
  status text not null default 'requested' constraint workshop_appointments_status_values check (status in (
    'requested', 'proposed', 'confirmed', 'declined', 'cancelled', 'completed', 'no_show')),
  preferred_starts timestamptz[] not null default '{}',
  starts_at timestamptz,
  ends_at timestamptz,
  invoice_cents int constraint workshop_appointments_invoice_nonneg check (invoice_cents >= 0),
  currency text not null default 'usd' constraint workshop_appointments_currency_format check (currency ~ '^[a-z]{3}$'),
  completed_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint workshop_appointments_ends_after_start check (ends_at is null or starts_at is null or ends_at > starts_at),
  constraint workshop_appointments_invoice_when_completed check ((status = 'completed') = (invoice_cents is not null))
);
create index workshop_appointments_workshop_idx on public.workshop_appointments (workshop_id, starts_at);
create index workshop_appointments_customer_idx on public.workshop_appointments (customer_id, created_at desc);
create index workshop_appointments_vehicle_idx on public.workshop_appointments (vehicle_id);
create index workshop_appointments_session_idx on public.workshop_appointments (diagnostic_session_id);
create index workshop_appointments_referrer_idx on public.workshop_appointments (referring_mechanic_id);
create index workshop_appointments_mechanic_idx on public.workshop_appointments (mechanic_id);
alter table public.workshop_appointments enable row level security;
grant select on public.workshop_appointments to authenticated, service_role;
-- Read by its customer, the staff of its workshop who handle appointments, its assigned mechanic,
-- and platform admins; written only through the appointment RPCs.
create policy select_own_or_workshop on public.workshop_appointments for select to authenticated
  using (customer_id = (select auth.uid())
         or mechanic_id = (select auth.uid())
         or private.workshop_can(workshop_id, (select auth.uid()), 'handle_appointments'));
comment on table public.workshop_appointments is
  'In-person appointments at a workshop: requested by a customer, confirmed, proposed or declined by the workshop.';
comment on column public.workshop_appointments.referring_mechanic_id is
  'the virtual-only mechanic whose delivered diagnostic session led to this appointment (earns the referral fee)';
