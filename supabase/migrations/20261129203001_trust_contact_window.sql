-- Trust: the contact window's policy helpers as one SQL predicate. The profiles and intakes
-- policies evaluate private.my_contact_customer_ids() / my_contact_intake_ids() for every query of
-- a mechanic: they now read the settings once and call no function per session row.
-- private.contact_window_open (the same rule for one session) is kept in
-- supabase/functions_sql/trust/contact.sql, for the platform's functions only.

-- The calling mechanic's sessions inside their contact window now (the rule of
-- private.contact_window_open: keep the two the same).
create function private.my_contact_sessions() returns table (session_id uuid, customer_id uuid, intake_id uuid)
language sql stable security definer set search_path = ''
as $$
  select s.id, s.customer_id, s.intake_id from public.sessions s
  where s.mechanic_id = (select auth.uid())
    and (s.status = 'live'
         or (s.scheduled_for is not null and s.status in ('scheduled', 'waiting', 'completed')
             and s.scheduled_for <= now() + (select private.setting_interval('contact.before_start'))
             and coalesce(s.ended_at, s.scheduled_for + make_interval(mins => s.planned_minutes + s.extension_minutes))
                 >= now() - (select private.setting_interval('contact.after_end'))))
$$;
revoke execute on function private.my_contact_sessions() from public;
grant execute on function private.my_contact_sessions() to authenticated, service_role;

create or replace function private.my_contact_customer_ids() returns setof uuid
language sql stable security definer set search_path = ''
as $$ select c.customer_id from private.my_contact_sessions() c $$;

create or replace function private.my_contact_intake_ids() returns setof uuid
language sql stable security definer set search_path = ''
as $$ select c.intake_id from private.my_contact_sessions() c where c.intake_id is not null $$;

create or replace function private.mechanic_may_contact(p_session_id uuid) returns boolean
language sql stable security definer set search_path = ''
as $$ select exists (select 1 from private.my_contact_sessions() c where c.session_id = p_session_id) $$;

revoke execute on function private.contact_window_open(public.sessions, timestamptz) from authenticated;
