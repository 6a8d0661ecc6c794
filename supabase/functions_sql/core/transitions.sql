-- Core lifecycles: the allowed changes of status, initial states, and the append-only audit in
-- session_events (every creation and change of status, with its actor).

-- ---------------------------------------------------------------------------------------------
-- Lifecycles (docs/data-model.md): any other change of status fails with invalid_transition (AD006)
-- ---------------------------------------------------------------------------------------------
-- The allowed changes of status, one list for both lifecycles.
create or replace function private.status_transition_allowed(p_entity text, p_from text, p_to text)
returns boolean
language plpgsql immutable set search_path = ''
as $$
begin
  -- PL/pgSQL: the list is parsed and planned once per session; as a SQL function with a fixed
  -- search_path it was planned again in every transaction that changed a status (before PG 18)
  return (p_entity, p_from, p_to) in (
    ('sessions', 'pending', 'waiting'), ('sessions', 'pending', 'scheduled'), ('sessions', 'pending', 'cancelled'),
    ('sessions', 'scheduled', 'waiting'), ('sessions', 'scheduled', 'cancelled'),
    ('sessions', 'waiting', 'live'), ('sessions', 'waiting', 'cancelled'),
    ('sessions', 'waiting', 'pending'),  -- the mechanic released an accepted request before the start
    ('sessions', 'live', 'completed'), ('sessions', 'live', 'cancelled'),
    ('session_requests', 'pending', 'accepted'), ('session_requests', 'pending', 'unattended'),
    ('session_requests', 'pending', 'expired'), ('session_requests', 'pending', 'cancelled'),
    ('session_requests', 'unattended', 'accepted'), ('session_requests', 'unattended', 'expired'),
    ('session_requests', 'unattended', 'cancelled'),
    ('session_requests', 'accepted', 'pending'),  -- the mechanic released it: back to the others
    ('session_requests', 'accepted', 'cancelled'));
end
$$;
revoke execute on function private.status_transition_allowed(text, text, text) from public;
grant execute on function private.status_transition_allowed(text, text, text) to authenticated, service_role;

create or replace function private.tg__check_transition() returns trigger
language plpgsql set search_path = ''
as $$
begin
  if new.status is distinct from old.status then
    if not private.status_transition_allowed(tg_table_name, old.status::text, new.status::text) then
      perform private.raise_error('invalid_transition',
        format('%s: cannot go from %s to %s', tg_table_name, old.status, new.status));
    end if;
    if new.status_changed_at is not distinct from old.status_changed_at then
      new.status_changed_at := now();
    end if;
  end if;
  return new;
end
$$;
revoke execute on function private.tg__check_transition() from public;

drop trigger if exists _100_check_transition on public.sessions;
create trigger _100_check_transition before update of status on public.sessions
  for each row execute function private.tg__check_transition();
drop trigger if exists _100_check_transition on public.session_requests;
create trigger _100_check_transition before update of status on public.session_requests
  for each row execute function private.tg__check_transition();

-- New rows start at the start of their lifecycle.
create or replace function private.tg__check_initial_status() returns trigger
language plpgsql set search_path = ''
as $$
begin
  if (tg_table_name = 'sessions' and new.status::text not in ('pending', 'scheduled'))
     or (tg_table_name = 'session_requests' and new.status::text <> 'pending') then
    perform private.raise_error('invalid_transition', format('a new %s cannot start as %s', tg_table_name, new.status));
  end if;
  return new;
end
$$;
revoke execute on function private.tg__check_initial_status() from public;
drop trigger if exists _090_check_initial_status on public.sessions;
create trigger _090_check_initial_status before insert on public.sessions
  for each row execute function private.tg__check_initial_status();
drop trigger if exists _090_check_initial_status on public.session_requests;
create trigger _090_check_initial_status before insert on public.session_requests
  for each row execute function private.tg__check_initial_status();

-- ---------------------------------------------------------------------------------------------
-- Audit: every creation and change of status lands in session_events, with its actor.
-- ---------------------------------------------------------------------------------------------
create or replace function private.tg__record_status_event() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_role text := coalesce(nullif(current_setting('autodoctor.actor_role', true), ''), 'system');
  v_reason text := nullif(current_setting('autodoctor.reason', true), '');
  v_from text;
  v_session_id uuid;
  v_request_id uuid;
begin
  if tg_op = 'UPDATE' then
    v_from := old.status::text;
  end if;
  if tg_op = 'UPDATE' and new.status is not distinct from old.status then
    return null;
  end if;
  if tg_table_name = 'sessions' then
    v_session_id := new.id;
  else
    v_session_id := new.session_id;  -- compiled per table: this branch only runs on requests
    v_request_id := new.id;
  end if;
  insert into public.session_events (session_id, request_id, entity, from_status, to_status, actor_id, actor_role, reason)
  values (v_session_id, v_request_id, case when v_request_id is null then 'session' else 'request' end,
          v_from, new.status::text, case when v_role = 'system' then null else (select auth.uid()) end,
          v_role, v_reason);
  return null;
end
$$;
revoke execute on function private.tg__record_status_event() from public;

drop trigger if exists _200_record_event on public.sessions;
create trigger _200_record_event after insert or update of status on public.sessions
  for each row execute function private.tg__record_status_event();
drop trigger if exists _200_record_event on public.session_requests;
create trigger _200_record_event after insert or update of status on public.session_requests
  for each row execute function private.tg__record_status_event();

-- Append-only tables (the audit here, the credit ledger in payments): rows are corrected by adding rows.
-- One exception: the retention job (jobs/retention.sql) deletes old rows of the table it names in the
-- transaction-local setting autodoctor.retention, as the table's owner; no other role, statement or
-- table gets through.
create or replace function private.tg__append_only() returns trigger
language plpgsql set search_path = ''
as $$
begin
  if tg_op = 'DELETE' and tg_level = 'ROW'
     and current_setting('autodoctor.retention', true) = format('%s.%s', tg_table_schema, tg_table_name)
     and current_user = (select pg_catalog.pg_get_userbyid(c.relowner) from pg_catalog.pg_class c where c.oid = tg_relid) then
    return old;
  end if;
  perform private.raise_error('not_allowed', format('%s is append-only: add a correcting row instead', tg_table_name));
  return null;
end
$$;
revoke execute on function private.tg__append_only() from public;
drop trigger if exists _100_append_only on public.session_events;
create trigger _100_append_only before update or delete on public.session_events
  for each row execute function private.tg__append_only();
drop trigger if exists _101_append_only_truncate on public.session_events;
create trigger _101_append_only_truncate before truncate on public.session_events
  for each statement execute function private.tg__append_only();
