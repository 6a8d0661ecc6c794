-- Trust: contact details on a need-to-know basis, accept-and-release, the columns each role reads,
-- and the waiver. The rules are stated in docs/trust.md ("Contact details, columns and the waiver");
-- the columns every role may read are listed in docs/access.md.

-- ---------------------------------------------------------------------------------------------
-- Error codes and settings
-- ---------------------------------------------------------------------------------------------
insert into private.error_codes (sqlstate, name, http_status, description) values
  ('AD120', 'too_many_releases', 429,
   'The mechanic released too many accepted requests in the last hour: accepting is paused for a while.'),
  ('AD121', 'request_released', 409, 'The mechanic released this request before: it cannot accept it again.'),
  ('AD122', 'waiver_required', 403, 'Accept the current terms (accept_waiver) before filing a request or booking.'),
  ('AD123', 'waiver_outdated', 409, 'The terms accepted are not the current version: read and accept the current terms.');

insert into private.settings (key, value, value_type, description) values
  ('contact.before_start', '"15 minutes"', 'interval',
   'a booked session''s mechanic sees the customer''s contact details from this long before its scheduled start'),
  ('contact.after_end', '"24 hours"', 'interval',
   'a booked session''s mechanic sees the customer''s contact details until this long after its end'),
  ('trust.max_releases_per_hour', '3', 'integer',
   'accepted requests a mechanic may release within an hour; reaching it pauses accepting for trust.release_cooldown'),
  ('trust.release_cooldown', '"30 minutes"', 'interval',
   'how long accepting is refused (too_many_releases) once a mechanic reached trust.max_releases_per_hour'),
  ('notifications.assignment_notice_delay', '"2 minutes"', 'interval',
   'the mechanic_assigned email goes only once an assignment has held this long (an accept-and-release sends nothing)'),
  ('waiver.current_version', '"v1.0"', 'text',
   'the terms version a customer must have accepted (with the 18+ confirmation) to file a request or booking');

-- ---------------------------------------------------------------------------------------------
-- Contact details: a mechanic sees its customer's contact details (the intake's contact and
-- vehicle identifiers, the customer's profile) only while their session is live, or for a booked
-- session from contact.before_start before its start to contact.after_end after its end.
-- ---------------------------------------------------------------------------------------------
-- Whether session `s` is, at `p_now`, inside its mechanic's contact window.
create function private.contact_window_open(s public.sessions, p_now timestamptz) returns boolean
language plpgsql stable security definer set search_path = ''
as $$
begin
  if s.mechanic_id is null then
    return false;
  end if;
  if s.status = 'live' then
    return true;
  end if;
  return s.scheduled_for is not null
     and s.status in ('scheduled', 'waiting', 'completed')
     and p_now >= s.scheduled_for - private.setting_interval('contact.before_start')
     and p_now <= coalesce(s.ended_at,
                           s.scheduled_for + make_interval(mins => s.planned_minutes + s.extension_minutes))
                  + private.setting_interval('contact.after_end');
end
$$;

-- Customers whose contact details the calling mechanic may read now.
create function private.my_contact_customer_ids() returns setof uuid
language sql stable security definer set search_path = ''
as $$
  select s.customer_id from public.sessions s
  where s.mechanic_id = (select auth.uid()) and private.contact_window_open(s, now())
$$;

-- Intakes whose contact details the calling mechanic may read now.
create function private.my_contact_intake_ids() returns setof uuid
language sql stable security definer set search_path = ''
as $$
  select s.intake_id from public.sessions s
  where s.mechanic_id = (select auth.uid()) and s.intake_id is not null and private.contact_window_open(s, now())
$$;

-- Whether the calling user may contact the customer of session `p_session_id` now (its mechanic,
-- inside the window).
create function private.mechanic_may_contact(p_session_id uuid) returns boolean
language sql stable security definer set search_path = ''
as $$
  select exists (select 1 from public.sessions s
                 where s.id = p_session_id and s.mechanic_id = (select auth.uid())
                   and private.contact_window_open(s, now()))
$$;

revoke execute on function private.contact_window_open(public.sessions, timestamptz), private.my_contact_customer_ids(),
  private.my_contact_intake_ids(), private.mechanic_may_contact(uuid) from public;
grant execute on function private.contact_window_open(public.sessions, timestamptz), private.my_contact_customer_ids(),
  private.my_contact_intake_ids(), private.mechanic_may_contact(uuid) to authenticated, service_role;

-- Profiles: the user, the mechanic inside its contact window, admins. Customers never read a
-- mechanic's profile (phone, postal code): they see the mechanic through public.mechanics.
drop policy select_self_counterpart_or_admin on public.profiles;
create policy select_self_contact_or_admin on public.profiles for select to authenticated
  using (id = (select auth.uid()) or id in (select private.my_contact_customer_ids()) or (select private.is_admin()));

-- Intakes (contact name, email, phone, VIN, plate, city): the customer, the mechanic inside its
-- contact window, admins. What a mechanic needs to decide is on session_requests.
drop policy select_own_assigned_or_admin on public.intakes;
create policy select_own_contact_or_admin on public.intakes for select to authenticated
  using (customer_id = (select auth.uid()) or id in (select private.my_contact_intake_ids())
         or (select private.is_admin()));

drop function private.my_counterpart_ids();
drop function private.my_held_intake_ids();

-- ---------------------------------------------------------------------------------------------
-- Accept-and-release: every release by the accepting mechanic is recorded; it cannot accept that
-- request again, and reaching trust.max_releases_per_hour pauses its accepting until
-- releases_blocked_until.
-- ---------------------------------------------------------------------------------------------
create table private.request_releases (
  id bigint generated always as identity primary key,
  request_id uuid not null references public.session_requests (id) on delete cascade,
  mechanic_id uuid not null references public.mechanics (id) on delete cascade,
  released_at timestamptz not null default now()
);
alter table private.request_releases enable row level security;
create index request_releases_request_mechanic_idx on private.request_releases (request_id, mechanic_id);  -- FK; accept
create index request_releases_mechanic_idx on private.request_releases (mechanic_id, released_at);  -- FK; per hour
comment on table private.request_releases is
  'Accepted requests released by their mechanic (cancel_request): never accepted again by that mechanic.';
grant select on private.request_releases to service_role;

alter table public.mechanics add column releases_blocked_until timestamptz;
comment on column public.mechanics.releases_blocked_until is
  'accepting is refused (too_many_releases) until then: set when the mechanic reached trust.max_releases_per_hour';

-- ---------------------------------------------------------------------------------------------
-- Columns: authenticated reads the directory columns of public.mechanics, as anon does; a
-- mechanic reads its own row through get_my_mechanic(), workshop owners/admins their members
-- through get_workshop_members(). The matching columns (postal area, city and brand keys,
-- keyword bits) are read by our functions only.
-- ---------------------------------------------------------------------------------------------
revoke select on public.mechanics from authenticated;
grant select (id, display_name, photo_url, bio, years_experience, specialties, brand_specializations,
  is_brand_specialist, service_keywords, city, country, timezone, mechanic_type, organization_id, status,
  rating_avg, rating_count, completed_sessions, is_available, last_seen_at, created_at)
  on public.mechanics to authenticated;

-- ---------------------------------------------------------------------------------------------
-- Waiver: accepted through accept_waiver() only (version checked, 18+ confirmed, IP address and
-- user agent from the request headers); clients no longer insert rows.
-- ---------------------------------------------------------------------------------------------
alter table public.waiver_acceptances add column adult_confirmed boolean not null default false;
comment on column public.waiver_acceptances.adult_confirmed is 'the user confirmed being 18 or older';
comment on column public.waiver_acceptances.ip_address is
  'first address of the X-Forwarded-For request header (else X-Real-IP), as PostgREST passed it';
comment on column public.waiver_acceptances.user_agent is 'the User-Agent request header, as PostgREST passed it';
drop policy insert_own on public.waiver_acceptances;
revoke insert on public.waiver_acceptances from authenticated;
grant insert on public.waiver_acceptances to service_role;
create index waiver_acceptances_user_version_idx on public.waiver_acceptances (user_id, waiver_version);
