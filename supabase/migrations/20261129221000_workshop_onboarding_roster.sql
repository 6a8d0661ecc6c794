-- Workshops: onboarding (create, verify, details), the roster (invitations, members, ownership),
-- and the workshop-facing policies checked by permission (private.workshop_can) instead of role.

insert into private.error_codes (sqlstate, name, http_status, description) values
  ('AD150', 'invitation_invalid', 404,
   'No usable workshop invitation for this token: unknown, expired, already used or revoked (one answer for all).'),
  ('AD151', 'invitation_wrong_account', 403,
   'This workshop invitation was sent to another email address than the signed-in account''s.'),
  ('AD152', 'mechanic_in_other_workshop', 409,
   'The mechanic belongs to another workshop: it leaves that workshop first.'),
  ('AD153', 'owner_must_transfer', 409,
   'A workshop''s owner cannot leave or be removed: transfer the ownership to another member first.'),
  ('AD154', 'too_many_pending_workshops', 429,
   'The user already has the maximum number of workshops awaiting verification (workshops.max_pending_per_user).');

insert into private.settings (key, value, value_type, description) values
  ('workshops.invitation_ttl', '"7 days"', 'interval',
   'how long a workshop invitation''s token can be accepted'),
  ('workshops.max_pending_per_user', '3', 'integer',
   'workshops one user may own while they await verification (pending); stops spam sign-ups');

insert into private.rpc_rate_classes (function_name, class) values
  ('create_workshop', 'write'),
  ('admin_set_workshop_status', 'write'),
  ('update_workshop_details', 'write'),
  ('invite_to_workshop', 'write'),
  ('accept_workshop_invitation', 'write'),
  ('revoke_invitation', 'write'),
  ('remove_workshop_member', 'write'),
  ('leave_workshop', 'write'),
  ('transfer_workshop_ownership', 'write')
on conflict (function_name) do update set class = excluded.class;

insert into private.email_templates (name, has_html, transactional, description) values
  ('workshop_invitation', true, true, 'to an invited email address: join a workshop (single-use link, expires)');

-- The services a workshop may list: a fixed vocabulary (the directory filters on these codes).
create table public.workshop_services (
  code text primary key constraint workshop_services_code_format check (code ~ '^[a-z][a-z_]{1,39}$'),
  label text not null constraint workshop_services_label_length check (char_length(label) between 1 and 80)
);
alter table public.workshop_services enable row level security;
create policy select_everyone on public.workshop_services for select to anon, authenticated using (true);
grant select on public.workshop_services to anon, authenticated, service_role;
grant insert, update, delete on public.workshop_services to service_role;
comment on table public.workshop_services is
  'The services a workshop may list in its details (organizations.services holds these codes).';
insert into public.workshop_services (code, label) values
  ('diagnostics', 'Diagnostics'), ('oil_change', 'Oil change and fluids'), ('brakes', 'Brakes'),
  ('tires', 'Tires and wheels'), ('alignment', 'Alignment'), ('suspension', 'Suspension and steering'),
  ('engine', 'Engine repair'), ('transmission', 'Transmission and clutch'), ('electrical', 'Electrical'),
  ('battery', 'Battery'), ('ac_heating', 'Air conditioning and heating'), ('exhaust', 'Exhaust'),
  ('bodywork', 'Bodywork and paint'), ('glass', 'Glass'), ('inspection', 'Inspection'),
  ('ev_hybrid', 'Electric and hybrid'), ('maintenance', 'Scheduled maintenance');

-- ---------------------------------------------------------------------------------------------
-- Permission-based helpers of the workshop policies (private.workshop_role_permissions)
-- ---------------------------------------------------------------------------------------------
-- The workshops in which the caller's role has a permission (platform admins: by their own
-- policy clauses, not here).
create or replace function private.my_workshop_ids(p_permission text) returns setof uuid
language sql stable security definer set search_path = ''
as $$
  select om.organization_id from public.organization_members om
  join private.workshop_role_permissions rp on rp.role = om.role::text
  where om.user_id = (select auth.uid()) and rp.permission = p_permission
$$;
revoke execute on function private.my_workshop_ids(text) from public;
grant execute on function private.my_workshop_ids(text) to authenticated, service_role;

-- The old helpers, by permission: mechanics' schedules follow the workshop's hours (edit_hours);
-- the sessions of a workshop's mechanics are its earnings (see_earnings).
create or replace function private.my_admin_org_ids() returns setof uuid
language sql stable security definer set search_path = ''
as $$ select private.my_workshop_ids('manage_roster') $$;
create or replace function private.my_workshop_mechanic_ids() returns setof uuid
language sql stable security definer set search_path = ''
as $$
  select m.id from public.mechanics m
  where m.organization_id in (select private.my_workshop_ids('edit_hours'))
$$;
create or replace function private.my_workshop_session_ids() returns setof uuid
language sql stable security definer set search_path = ''
as $$
  select s.id from public.sessions s
  join public.mechanics m on m.id = s.mechanic_id
  where m.organization_id in (select private.my_workshop_ids('see_earnings'))
$$;
create or replace function private.my_payout_ids() returns setof uuid
language sql stable security definer set search_path = ''
as $$
  select p.id from public.payouts p where p.mechanic_id = (select auth.uid())
  union all
  select p.id from public.payouts p where p.organization_id in (select private.my_workshop_ids('see_earnings'))
$$;

-- Invitations: one pending per (workshop, email); only the SHA-256 of the token is stored.
create table public.workshop_invitations (
  id uuid primary key default gen_random_uuid(),
  workshop_id uuid not null references public.organizations (id) on delete cascade,
  email text not null constraint workshop_invitations_email_format
    check (email = lower(email) and char_length(email) <= 254 and email ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$'),
  role public.organization_role not null constraint workshop_invitations_role_not_owner check (role <> 'owner'),
  token_hash bytea not null constraint workshop_invitations_token_hash_unique unique
    constraint workshop_invitations_token_hash_length check (octet_length(token_hash) = 32),
  status text not null default 'pending'
    constraint workshop_invitations_status_values check (status in ('pending', 'accepted', 'revoked', 'expired')),
  invited_by uuid references auth.users (id) on delete set null,
  expires_at timestamptz not null,
  accepted_by uuid references auth.users (id) on delete set null,
  decided_at timestamptz,
  created_at timestamptz not null default now(),
  constraint workshop_invitations_accepted_by check ((status = 'accepted') = (accepted_by is not null))
);
create unique index workshop_invitations_one_pending on public.workshop_invitations (workshop_id, email)
  where status = 'pending';
create index workshop_invitations_invited_by_idx on public.workshop_invitations (invited_by);  -- FK
create index workshop_invitations_accepted_by_idx on public.workshop_invitations (accepted_by);  -- FK
alter table public.workshop_invitations enable row level security;
-- Read by the staff who manage the roster and platform admins; the token hash is not selectable.
create policy select_roster_managers on public.workshop_invitations for select to authenticated
  using (workshop_id in (select private.my_workshop_ids('manage_roster')) or (select private.is_admin()));
grant select (id, workshop_id, email, role, status, invited_by, expires_at, accepted_by, decided_at, created_at)
  on public.workshop_invitations to authenticated;
grant select, insert, update, delete on public.workshop_invitations to service_role;
comment on table public.workshop_invitations is
  'Invitations to join a workshop in a role; single-use token (only its SHA-256 is stored), expires.';

-- organizations: members read; edit_details edits (the status and details columns: RPCs only).
drop policy update_workshop_admin on public.organizations;
create policy update_edit_details on public.organizations for update to authenticated
  using (id in (select private.my_workshop_ids('edit_details')))
  with check (id in (select private.my_workshop_ids('edit_details')));

-- mechanics: a workshop's roster (see_members) reads its mechanics' rows, approved or not.
drop policy select_directory_self_workshop_or_admin on public.mechanics;
create policy select_directory_self_workshop_or_admin on public.mechanics for select to authenticated
  using (status = 'approved' or id = (select auth.uid())
         or organization_id in (select private.my_workshop_ids('see_members')) or (select private.is_admin()));

-- Money of a workshop: see_earnings.
drop policy select_owner_or_admin on public.payout_accounts;
create policy select_owner_or_admin on public.payout_accounts for select to authenticated
  using (mechanic_id = (select auth.uid()) or organization_id in (select private.my_workshop_ids('see_earnings'))
         or (select private.is_admin()));
drop policy select_payee_or_admin on public.payouts;
create policy select_payee_or_admin on public.payouts for select to authenticated
  using (mechanic_id = (select auth.uid()) or organization_id in (select private.my_workshop_ids('see_earnings'))
         or (select private.is_admin()));

-- Shifts and micro minutes of a workshop's mechanics: those who dispatch them.
drop policy select_own_workshop_or_admin on public.mechanic_shift_logs;
create policy select_own_workshop_or_admin on public.mechanic_shift_logs for select to authenticated
  using (mechanic_id = (select auth.uid()) or organization_id in (select private.my_workshop_ids('dispatch'))
         or (select private.is_admin()));
drop policy select_own_workshop_or_admin on public.micro_minute_usage;
create policy select_own_workshop_or_admin on public.micro_minute_usage for select to authenticated
  using (mechanic_id = (select auth.uid())
         or mechanic_id in (select m.id from public.mechanics m
                            where m.organization_id in (select private.my_workshop_ids('dispatch')))
         or (select private.is_admin()));

-- Hours and date overrides of a workshop: edit_hours.
drop policy insert_owner_or_workshop on public.availability_overrides;
drop policy update_owner_or_workshop on public.availability_overrides;
drop policy delete_owner_or_workshop on public.availability_overrides;
create policy insert_owner_or_workshop on public.availability_overrides for insert to authenticated
  with check (mechanic_id = (select auth.uid()) or mechanic_id in (select private.my_workshop_mechanic_ids())
              or organization_id in (select private.my_workshop_ids('edit_hours')));
create policy update_owner_or_workshop on public.availability_overrides for update to authenticated
  using (mechanic_id = (select auth.uid()) or mechanic_id in (select private.my_workshop_mechanic_ids())
         or organization_id in (select private.my_workshop_ids('edit_hours')))
  with check (mechanic_id = (select auth.uid()) or mechanic_id in (select private.my_workshop_mechanic_ids())
              or organization_id in (select private.my_workshop_ids('edit_hours')));
create policy delete_owner_or_workshop on public.availability_overrides for delete to authenticated
  using (mechanic_id = (select auth.uid()) or mechanic_id in (select private.my_workshop_mechanic_ids())
         or organization_id in (select private.my_workshop_ids('edit_hours')));
drop policy insert_workshop_admin on public.workshop_hours;
drop policy update_workshop_admin on public.workshop_hours;
drop policy delete_workshop_admin on public.workshop_hours;
create policy insert_edit_hours on public.workshop_hours for insert to authenticated
  with check (organization_id in (select private.my_workshop_ids('edit_hours')));
create policy update_edit_hours on public.workshop_hours for update to authenticated
  using (organization_id in (select private.my_workshop_ids('edit_hours')))
  with check (organization_id in (select private.my_workshop_ids('edit_hours')));
create policy delete_edit_hours on public.workshop_hours for delete to authenticated
  using (organization_id in (select private.my_workshop_ids('edit_hours')));
