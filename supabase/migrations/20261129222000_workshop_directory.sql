-- Workshops: brand specialists marked by their workshop, dispatch of micro-sessions (pauses and
-- the approval of accepts when a workshop does not accept automatically), and the public directory
-- of verified workshops with a nearest-first search (docs/workshops.md).

-- Distances on the earth (cube + earthdistance, both on Supabase and in the embedded server).
create extension if not exists cube with schema extensions;
create extension if not exists earthdistance with schema extensions;

insert into private.error_codes (sqlstate, name, http_status, description) values
  ('AD160', 'micro_paused', 409, 'A dispatcher of the mechanic''s workshop paused its micro-sessions.'),
  ('AD161', 'micro_approval_pending', 409,
   'The accept of this micro-session waits for a dispatcher of the mechanic''s workshop.'),
  ('AD162', 'micro_approval_not_pending', 409, 'This request has no accept waiting for approval.'),
  ('AD163', 'micro_approval_window_closed', 409,
   'The time to approve this accept has passed: the request goes back to the other mechanics.');

insert into private.settings (key, value, value_type, description) values
  ('workshops.micro_approval_window', '"2 minutes"', 'interval',
   'a workshop mechanic''s accept of a micro-session waits this long for a dispatcher when the workshop does not '
   'accept automatically; then the request goes back to the other mechanics'),
  ('workshops.max_micro_pause', '"24 hours"', 'interval',
   'a dispatcher pauses a mechanic''s micro-sessions for at most this long at a time');

insert into private.rpc_rate_classes (function_name, class) values
  ('set_mechanic_specialization', 'write'),
  ('pause_micro', 'write'),
  ('resume_micro', 'write'),
  ('approve_micro_accept', 'accept')
on conflict (function_name) do update set class = excluded.class;

-- Specialists: who marked the mechanic, and when (the mechanic itself cannot).
alter table public.mechanics
  add column specialization_set_by uuid references auth.users (id) on delete set null,
  add column specialization_set_at timestamptz,
  -- Dispatch: no micro-session is accepted until then (null: not paused).
  add column micro_paused_until timestamptz,
  add column micro_paused_by uuid references auth.users (id) on delete set null;
create index mechanics_specialization_set_by_idx on public.mechanics (specialization_set_by);  -- FK
create index mechanics_micro_paused_by_idx on public.mechanics (micro_paused_by);  -- FK
-- The eligibility branch reads only the paused mechanics.
create index mechanics_micro_paused_until_idx on public.mechanics (micro_paused_until)
  where micro_paused_until is not null;
comment on column public.mechanics.micro_paused_until is
  'a dispatcher of its workshop paused its micro-sessions until then (pause_micro / resume_micro)';

-- Dispatch approval of a micro accept: the request stays `accepted`, its session `waiting`, until a
-- dispatcher approves or the window lapses.
alter table public.session_requests
  add column approval_pending_until timestamptz,
  add column approved_by uuid references auth.users (id) on delete set null,
  add column approved_at timestamptz;
create index session_requests_approved_by_idx on public.session_requests (approved_by);  -- FK
create index session_requests_approval_pending_idx on public.session_requests (approval_pending_until)
  where approval_pending_until is not null;
comment on column public.session_requests.approval_pending_until is
  'the accept waits for a dispatcher of the mechanic''s workshop until then (approve_micro_accept); the sweep '
  'returns the request to the other mechanics after it';

-- A lapsed approval is a release by the system: the mechanic may not take that request again, and
-- it does not count towards the mechanic's release limit.
alter table private.request_releases add column by_system boolean not null default false;

-- Until now nothing acted on auto_accept_micro, so every workshop accepted automatically: existing
-- workshops keep that, and a new workshop does too until it turns it off.
alter table public.organizations alter column auto_accept_micro set default true;
update public.organizations set auto_accept_micro = true where not auto_accept_micro;

-- The directory's nearest search: an earth point per verified workshop with coordinates.
create or replace function private.earth_point(p_latitude double precision, p_longitude double precision)
returns extensions.earth
language sql immutable strict parallel safe set search_path = extensions
as $$ select extensions.ll_to_earth(p_latitude, p_longitude) $$;
revoke execute on function private.earth_point(double precision, double precision) from public;
grant execute on function private.earth_point(double precision, double precision) to anon, authenticated, service_role;
create index organizations_directory_earth_idx on public.organizations
  using gist (private.earth_point(latitude, longitude))
  where status = 'verified' and latitude is not null;
