-- Core marketplace triggers: signup (profiles, admins, mechanics), updated_at, lifecycle checks,
-- the append-only audit in session_events, and Realtime broadcasts. Re-applied by the runner
-- whenever this file changes: every object is created with `create or replace` or dropped first.

-- ---------------------------------------------------------------------------------------------
-- Small helpers
-- ---------------------------------------------------------------------------------------------
-- Who acts in this transaction, for the audit: set by RPCs (transaction-local).
create or replace function private.set_actor(p_role text, p_reason text default null) returns void
language sql volatile set search_path = ''
as $$
  select set_config('autodoctor.actor_role', p_role, true), set_config('autodoctor.reason', coalesce(p_reason, ''), true);
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
-- Signup: profile, admin capability, pending mechanic. Total by design: a failing trigger would
-- block every signup, so user-supplied values are trimmed to what the columns accept.
-- ---------------------------------------------------------------------------------------------
create or replace function private.tg_auth_users__on_signup() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_meta jsonb := coalesce(new.raw_user_meta_data, '{}'::jsonb);
  v_name text := left(nullif(btrim(coalesce(v_meta ->> 'full_name', v_meta ->> 'name', '')), ''), 200);
  v_zone text := v_meta ->> 'timezone';
begin
  if v_zone is null or not private.is_valid_timezone(v_zone) then
    v_zone := 'UTC';
  end if;
  insert into public.profiles (id, full_name, phone, timezone)
  values (new.id, v_name,
          case when new.phone ~ '^\+?[0-9 ()-]{5,32}$' then new.phone end,
          v_zone)
  on conflict (id) do nothing;

  if coalesce(new.raw_app_meta_data ->> 'role', '') = 'admin' then
    insert into private.admins (user_id) values (new.id) on conflict do nothing;
  end if;

  -- Asking to be a mechanic creates a pending application; it grants nothing until approved.
  if v_meta ->> 'account_type' = 'mechanic' then
    insert into public.mechanics (id, display_name, timezone)
    values (new.id, coalesce(left(v_name, 120), left(nullif(split_part(coalesce(new.email, ''), '@', 1), ''), 120), 'Mechanic'),
            v_zone)
    on conflict (id) do nothing;
  end if;
  return new;
end
$$;

-- App metadata is set only by the server: keep the admin capability in step with it.
create or replace function private.tg_auth_users__sync_admin() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if coalesce(new.raw_app_meta_data ->> 'role', '') = 'admin' then
    insert into private.admins (user_id) values (new.id) on conflict do nothing;
  else
    delete from private.admins where user_id = new.id;
  end if;
  return new;
end
$$;

drop trigger if exists _100_on_signup on auth.users;
create trigger _100_on_signup after insert on auth.users
  for each row execute function private.tg_auth_users__on_signup();
drop trigger if exists _110_sync_admin on auth.users;
create trigger _110_sync_admin after update of raw_app_meta_data on auth.users
  for each row when (old.raw_app_meta_data is distinct from new.raw_app_meta_data)
  execute function private.tg_auth_users__sync_admin();

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

-- ---------------------------------------------------------------------------------------------
-- Lifecycles (ARCHITECTURE.md): any other change of status fails with invalid_transition (AD006)
-- ---------------------------------------------------------------------------------------------
-- The allowed changes of status, one list for both lifecycles.
create or replace function private.status_transition_allowed(p_entity text, p_from text, p_to text)
returns boolean
language sql immutable set search_path = ''
as $$
  select (p_entity, p_from, p_to) in (
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
    ('session_requests', 'accepted', 'cancelled'))
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
    v_session_id := (to_jsonb(new) ->> 'session_id')::uuid;
    v_request_id := new.id;
  end if;
  insert into public.session_events (session_id, request_id, entity, from_status, to_status, actor_id, actor_role, reason)
  values (v_session_id, v_request_id, case when v_request_id is null then 'session' else 'request' end,
          v_from, new.status::text, case when v_role = 'system' then null else (select auth.uid()) end,
          v_role, v_reason);
  return null;
end
$$;

drop trigger if exists _200_record_event on public.sessions;
create trigger _200_record_event after insert or update of status on public.sessions
  for each row execute function private.tg__record_status_event();
drop trigger if exists _200_record_event on public.session_requests;
create trigger _200_record_event after insert or update of status on public.session_requests
  for each row execute function private.tg__record_status_event();

-- Append-only tables (the audit here, the credit ledger in payments): rows are corrected by adding rows.
create or replace function private.tg__append_only() returns trigger
language plpgsql set search_path = ''
as $$
begin
  perform private.raise_error('not_allowed', format('%s is append-only: add a correcting row instead', tg_table_name));
  return null;
end
$$;
drop trigger if exists _100_append_only on public.session_events;
create trigger _100_append_only before update or delete on public.session_events
  for each row execute function private.tg__append_only();
drop trigger if exists _101_append_only_truncate on public.session_events;
create trigger _101_append_only_truncate before truncate on public.session_events
  for each statement execute function private.tg__append_only();

-- ---------------------------------------------------------------------------------------------
-- Realtime broadcasts, sent inside the transaction that made the change (lost if it rolls back).
-- Payloads carry ids and card fields only: never an email, phone or address.
-- ---------------------------------------------------------------------------------------------
create or replace function private.tg_session_requests__broadcast() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_card jsonb := jsonb_build_object(
    'request_id', new.id, 'session_id', new.session_id, 'session_type', new.session_type,
    'plan_code', new.plan_code, 'specialist', new.specialist, 'vehicle_make', new.vehicle_make,
    'vehicle_model', new.vehicle_model, 'vehicle_year', new.vehicle_year, 'concern', left(new.concern, 140),
    'preferred_mechanic_id', new.preferred_mechanic_id, 'created_at', new.created_at);
begin
  if (tg_op = 'INSERT' and coalesce(new.broadcast_at <= now(), true))  -- not during a preferred window
     or (tg_op = 'UPDATE' and old.status = 'accepted' and new.status = 'pending') then
    perform realtime.send(v_card, 'new_request', 'mechanics:requests', true);
  elsif new.status is distinct from old.status then
    case new.status
      when 'accepted' then
        perform realtime.send(jsonb_build_object('request_id', new.id, 'mechanic_id', new.mechanic_id),
                              'request_accepted', 'mechanics:requests', true);
      when 'unattended' then
        perform realtime.send(jsonb_build_object('request_id', new.id), 'request_unattended', 'mechanics:requests', true);
        perform realtime.send(v_card, 'request_unattended', 'admin:queue', true);
      when 'cancelled', 'expired' then
        perform realtime.send(jsonb_build_object('request_id', new.id, 'reason', new.status),
                              'request_cancelled', 'mechanics:requests', true);
      else
        null;
    end case;
  end if;
  return null;
end
$$;

create or replace function private.tg_sessions__broadcast() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_topic text := 'session:' || new.id::text;
begin
  if new.status is distinct from old.status then
    perform realtime.send(
      jsonb_build_object('session_id', new.id, 'from', old.status, 'to', new.status, 'at', new.status_changed_at),
      'status_changed', v_topic, true);
  end if;
  if new.mechanic_id is distinct from old.mechanic_id and new.mechanic_id is not null then
    perform realtime.send(
      jsonb_build_object('session_id', new.id, 'mechanic_id', new.mechanic_id,
                         'display_name', (select m.display_name from public.mechanics m where m.id = new.mechanic_id),
                         'photo_url', (select m.photo_url from public.mechanics m where m.id = new.mechanic_id)),
      'mechanic_assigned', v_topic, true);
  end if;
  return null;
end
$$;

drop trigger if exists _300_broadcast on public.session_requests;
create trigger _300_broadcast after insert or update of status on public.session_requests
  for each row execute function private.tg_session_requests__broadcast();
drop trigger if exists _300_broadcast on public.sessions;
create trigger _300_broadcast after update of status, mechanic_id on public.sessions
  for each row execute function private.tg_sessions__broadcast();

revoke execute on function private.tg_auth_users__on_signup(), private.tg_auth_users__sync_admin(),
  private.tg__set_updated_at(), private.tg__check_transition(),
  private.tg__check_initial_status(), private.tg__record_status_event(), private.tg__append_only(),
  private.tg_session_requests__broadcast(), private.tg_sessions__broadcast() from public;
