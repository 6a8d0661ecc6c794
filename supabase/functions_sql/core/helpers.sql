-- Core helpers: who acts (for the audit), the caller's user id, checks of free text, updated_at.

-- ---------------------------------------------------------------------------------------------
-- Small helpers
-- ---------------------------------------------------------------------------------------------
-- Who acts in this transaction, for the audit: set by RPCs (transaction-local). The lifecycle
-- functions (core/lifecycle.sql) take the actor as a parameter and set it here themselves.
create or replace function private.set_actor(p_role text, p_reason text default null) returns void
language plpgsql volatile set search_path = ''
as $$
begin
  -- PL/pgSQL: planned once per session (a SQL function with a fixed search_path is planned in
  -- every transaction before PostgreSQL 18; every accept and lifecycle step calls this)
  perform set_config('autodoctor.actor_role', p_role, true), set_config('autodoctor.reason', coalesce(p_reason, ''), true);
end
$$;
revoke execute on function private.set_actor(text, text) from public;
grant execute on function private.set_actor(text, text) to service_role;

-- The caller's user id, or not_authenticated (AD002).
create or replace function private.require_user() returns uuid
language plpgsql stable set search_path = ''
as $$
declare
  v_uid uuid := (select auth.uid());
begin
  if v_uid is null then
    perform private.raise_error('not_authenticated', 'sign in first');
  end if;
  return v_uid;
end
$$;
revoke execute on function private.require_user() from public;
grant execute on function private.require_user() to authenticated, service_role;

-- A required argument: null is invalid_input (AD001), '<p_name> is required'.
create or replace function private.require_arg(p_name text, p_value anyelement) returns void
language plpgsql stable set search_path = ''
as $$
begin
  if p_value is null then
    perform private.raise_error('invalid_input', format('%s is required', p_name));
  end if;
end
$$;
revoke execute on function private.require_arg(text, anyelement) from public;
grant execute on function private.require_arg(text, anyelement) to authenticated, service_role;

-- The session one of its two participants (the customer or the mechanic) is changing, row locked;
-- for anyone else it is not_found (AD004), as a session that does not exist.
create or replace function private.lock_session_as_participant(p_session_id uuid, p_uid uuid)
returns public.sessions
language plpgsql volatile security definer set search_path = ''
as $$
declare
  v_session public.sessions;
begin
  perform private.require_arg('p_session_id', p_session_id);
  select * into v_session from public.sessions where id = p_session_id for update;
  if not found or (v_session.customer_id <> p_uid and v_session.mechanic_id is distinct from p_uid) then
    perform private.raise_error('not_found', 'no such session');
  end if;
  return v_session;
end
$$;
revoke execute on function private.lock_session_as_participant(uuid, uuid) from public;
grant execute on function private.lock_session_as_participant(uuid, uuid) to service_role;

-- Free text from a caller: null stays null; longer than the limit is invalid_input (AD001).
create or replace function private.check_text(p_name text, p_value text, p_required boolean default false)
returns text
language plpgsql stable set search_path = ''
as $$
begin
  if p_value is null or btrim(p_value) = '' then
    if p_required then
      perform private.raise_error('invalid_input', format('%s is required', p_name));
    end if;
    return null;
  end if;
  if char_length(p_value) > private.setting_int('text.max_length') then
    perform private.raise_error('invalid_input',
      format('%s is longer than %s characters', p_name, private.setting_int('text.max_length')));
  end if;
  return btrim(p_value);
end
$$;
revoke execute on function private.check_text(text, text, boolean) from public;
grant execute on function private.check_text(text, text, boolean) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- updated_at
-- ---------------------------------------------------------------------------------------------
create or replace function private.tg__set_updated_at() returns trigger
language plpgsql set search_path = ''
as $$
begin
  new.updated_at := now();
  return new;
end
$$;
revoke execute on function private.tg__set_updated_at() from public;

do $$
declare
  v_table text;
begin
  foreach v_table in array array['profiles', 'organizations', 'mechanics', 'payout_accounts', 'vehicles',
                                 'intakes', 'sessions', 'session_requests', 'mechanic_commitments']
  loop
    execute format('drop trigger if exists _010_set_updated_at on public.%I', v_table);
    execute format('create trigger _010_set_updated_at before update on public.%I '
                   'for each row execute function private.tg__set_updated_at()', v_table);
  end loop;
end
$$;
