-- Baseline: the private schema, deny-by-default function privileges, btree_gist, the settings
-- table with typed accessors, and the registry of our own SQLSTATE codes with the helper that
-- raises them. Everything later builds on these.

-- ---------------------------------------------------------------------------------------------
-- Schemas and default privileges
-- ---------------------------------------------------------------------------------------------
create schema if not exists private;
comment on schema private is
  'Helpers, trigger functions, internal RPCs and side tables. Never exposed through the Data API.';
revoke all on schema private from public;
-- Policies and security invoker views call private helpers as the requesting role.
grant usage on schema private to anon, authenticated, service_role;

-- Deny by default: a new function is executable by nobody until its migration grants it.
alter default privileges revoke execute on functions from public;
alter default privileges in schema public revoke execute on functions from anon, authenticated, service_role;
alter default privileges in schema private revoke execute on functions from public;

create extension if not exists btree_gist with schema extensions;

-- ---------------------------------------------------------------------------------------------
-- Error registry: our own 5-character SQLSTATEs (class AD). docs/error_codes.md lists the same.
-- ---------------------------------------------------------------------------------------------
create table private.error_codes (
  sqlstate text primary key constraint error_codes_sqlstate_format check (sqlstate ~ '^AD[0-9A-Z]{3}$'),
  name text not null constraint error_codes_name_key unique
    constraint error_codes_name_format check (name ~ '^[a-z][a-z_]*$'),
  http_status int not null constraint error_codes_http_status_range check (http_status between 400 and 599),
  description text not null
);
alter table private.error_codes enable row level security;
comment on table private.error_codes is 'Registry of the SQLSTATEs our functions raise; stable once published.';

insert into private.error_codes (sqlstate, name, http_status, description) values
  ('AD001', 'invalid_input', 400, 'An argument is missing, malformed or out of range.'),
  ('AD002', 'not_authenticated', 401, 'The call needs a signed-in user.'),
  ('AD003', 'not_allowed', 403, 'The caller may not do this.'),
  ('AD004', 'not_found', 404, 'The object does not exist or is not visible to the caller.'),
  ('AD005', 'conflict', 409, 'The object is in a state that does not allow this.'),
  ('AD006', 'invalid_transition', 409, 'The lifecycle does not allow this change of status.'),
  ('AD007', 'setting_missing', 500, 'A required setting is absent or has the wrong type.');

-- Raises the registered error `p_name` with its SQLSTATE; the message defaults to the registry's
-- description. An unknown name is a programming error (XX000).
create function private.raise_error(p_name text, p_message text default null, p_detail text default null)
returns void
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  v_code text;
  v_description text;
begin
  select e.sqlstate, e.description into v_code, v_description
  from private.error_codes as e where e.name = p_name;
  if v_code is null then
    raise exception 'unregistered error name %', p_name using errcode = 'XX000';
  end if;
  raise exception using
    errcode = v_code,
    message = coalesce(p_message, v_description),
    detail = coalesce(p_detail, ''),
    hint = p_name;
end
$$;
revoke execute on function private.raise_error(text, text, text) from public;
grant execute on function private.raise_error(text, text, text) to anon, authenticated, service_role;
comment on function private.raise_error(text, text, text) is
  'Raise a registered error: SQLSTATE from private.error_codes, the name in HINT.';

-- ---------------------------------------------------------------------------------------------
-- Settings: every tunable (timeouts, windows, weights, prices of extras) lives here, not in code.
-- ---------------------------------------------------------------------------------------------
create table private.settings (
  key text primary key constraint settings_key_format check (key ~ '^[a-z][a-z0-9_.]*$'),
  value jsonb not null,
  description text not null,
  updated_at timestamptz not null default now()
);
alter table private.settings enable row level security;
comment on table private.settings is 'Tunables read through private.setting_*(); changed by admins or migrations.';

insert into private.settings (key, value, description) values
  ('requests.unattended_after', '"5 minutes"', 'pending request → unattended (seed 002 tier 1)'),
  ('requests.expire_after', '"120 minutes"', 'pending/unattended request → expired (seed 002 tier 2)'),
  ('requests.accepted_no_join_cancel_after', '"30 minutes"', 'accepted, customer never joined → cancelled'),
  ('sessions.orphaned_waiting_cancel_after', '"60 minutes"', 'waiting session nobody started → cancelled'),
  ('matching.preferred_window', '"10 minutes"', 'preferred mechanic''s exclusive offer window (seed 001)'),
  ('nudges.accepted_not_started_after', '"3 minutes"', 'nudge a mechanic who accepted but has not started'),
  ('scheduling.hold_duration', '"15 minutes"', 'slot hold lifetime (seed 004)'),
  ('scheduling.min_notice', '"2 hours"', 'minimum booking notice (seed 004)'),
  ('scheduling.max_advance', '"30 days"', 'maximum advance booking (seed 004)'),
  ('scheduling.buffer', '"15 minutes"', 'buffer between sessions (seed 004)'),
  ('micro.extension_minutes', '2', 'a micro session may be extended once by this many minutes (seed 000)'),
  ('micro.daily_cap_minutes', '30', 'default daily micro-session minutes per mechanic (seed 000)');

create function private.setting(p_key text) returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  v_value jsonb;
begin
  select s.value into v_value from private.settings as s where s.key = p_key;
  if v_value is null then
    perform private.raise_error('setting_missing', format('setting %s is not set', p_key));
  end if;
  return v_value;
end
$$;

create function private.setting_text(p_key text) returns text
language sql stable security definer set search_path = ''
as $$ select private.setting(p_key) #>> '{}' $$;

create function private.setting_int(p_key text) returns int
language plpgsql stable security definer set search_path = ''
as $$
declare
  v jsonb := private.setting(p_key);
begin
  if jsonb_typeof(v) <> 'number' or (v #>> '{}')::numeric <> trunc((v #>> '{}')::numeric) then
    perform private.raise_error('setting_missing', format('setting %s is not an integer', p_key));
  end if;
  return (v #>> '{}')::int;
end
$$;

create function private.setting_numeric(p_key text) returns numeric
language plpgsql stable security definer set search_path = ''
as $$
declare
  v jsonb := private.setting(p_key);
begin
  if jsonb_typeof(v) <> 'number' then
    perform private.raise_error('setting_missing', format('setting %s is not a number', p_key));
  end if;
  return (v #>> '{}')::numeric;
end
$$;

create function private.setting_bool(p_key text) returns boolean
language plpgsql stable security definer set search_path = ''
as $$
declare
  v jsonb := private.setting(p_key);
begin
  if jsonb_typeof(v) <> 'boolean' then
    perform private.raise_error('setting_missing', format('setting %s is not a boolean', p_key));
  end if;
  return (v #>> '{}')::boolean;
end
$$;

create function private.setting_interval(p_key text) returns interval
language plpgsql stable security definer set search_path = ''
as $$
declare
  v jsonb := private.setting(p_key);
begin
  if jsonb_typeof(v) <> 'string' then
    perform private.raise_error('setting_missing', format('setting %s is not an interval', p_key));
  end if;
  return (v #>> '{}')::interval;
exception when invalid_datetime_format or datetime_field_overflow then
  perform private.raise_error('setting_missing', format('setting %s is not an interval', p_key));
  return null;
end
$$;

revoke execute on function private.setting(text), private.setting_text(text), private.setting_int(text),
  private.setting_numeric(text), private.setting_bool(text), private.setting_interval(text) from public;
grant execute on function private.setting(text), private.setting_text(text), private.setting_int(text),
  private.setting_numeric(text), private.setting_bool(text), private.setting_interval(text)
  to authenticated, service_role;

comment on function private.setting(text) is 'A setting''s raw JSON value; setting_missing (AD007) if absent.';
comment on function private.setting_interval(text) is 'A setting stored as a JSON string such as "5 minutes".';
