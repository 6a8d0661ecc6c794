-- Local Supabase platform shim.
--
-- Recreates, on plain PostgreSQL, the few Supabase objects our migrations depend on, with the
-- names, types, signatures and behaviour hosted Supabase gives them (see docs/platform-shim.md).
-- Every object is created only where it is absent, so on a real Supabase database this file
-- changes nothing. It is never part of supabase/migrations/.
--
-- Applied by `autodoctor db migrate` in one transaction, before any migration.

-- ---------------------------------------------------------------------------------------------
-- Roles (cluster-wide: created idempotently)
-- ---------------------------------------------------------------------------------------------
-- @when absent role anon
create role anon nologin inherit;
alter role anon set statement_timeout = '3s';
grant anon to postgres;

-- @when absent role authenticated
create role authenticated nologin inherit;
alter role authenticated set statement_timeout = '8s';
grant authenticated to postgres;

-- @when absent role service_role
create role service_role nologin inherit bypassrls;
grant service_role to postgres;

-- @when absent role authenticator
create role authenticator login noinherit;
grant anon, authenticated, service_role to authenticator;

-- @when absent role supabase_auth_admin
create role supabase_auth_admin nologin noinherit;

-- @when absent role supabase_storage_admin
create role supabase_storage_admin nologin noinherit;

-- @when absent role supabase_realtime_admin
create role supabase_realtime_admin nologin noinherit;

-- ---------------------------------------------------------------------------------------------
-- Schemas. `platform_shim` holds the shim's own helpers (absent on hosted Supabase).
-- The hosted defaults for a fresh database are reproduced only when this database had no `auth`
-- schema before the shim ran (that is: it is not a Supabase database).
-- ---------------------------------------------------------------------------------------------
-- @when absent schema extensions
create schema extensions;
grant usage on schema extensions to anon, authenticated, service_role;

-- @when absent schema platform_shim
create schema platform_shim;

-- A database without an `auth` schema is not a Supabase database: give it the hosted defaults.
-- 2026 hosted default: new public tables are not granted to the API roles beyond these;
-- sequences keep UPDATE; functions stay executable by PUBLIC and are granted to the API roles.
-- @when absent schema auth
create schema auth authorization supabase_auth_admin;
grant usage on schema auth to anon, authenticated, service_role;
grant usage on schema public to anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  grant truncate, references, trigger on tables to anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  grant update on sequences to anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  grant execute on functions to anon, authenticated, service_role;
do $$
begin
  if current_setting('server_version_num')::int >= 170000 then
    execute 'alter default privileges for role postgres in schema public
             grant maintain on tables to anon, authenticated, service_role';
  end if;
end
$$;

-- @when absent schema storage
create schema storage authorization supabase_storage_admin;
grant usage on schema storage to anon, authenticated, service_role;

-- @when absent schema realtime
create schema realtime authorization supabase_realtime_admin;
grant usage on schema realtime to anon, authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- auth
-- ---------------------------------------------------------------------------------------------
-- @when absent table auth.users
create table auth.users (
  instance_id uuid,
  id uuid not null primary key,
  aud varchar(255),
  role varchar(255),
  email varchar(255),
  encrypted_password varchar(255),
  email_confirmed_at timestamptz,
  invited_at timestamptz,
  confirmation_token varchar(255),
  recovery_token varchar(255),
  last_sign_in_at timestamptz,
  raw_app_meta_data jsonb,
  raw_user_meta_data jsonb,
  is_super_admin boolean,
  created_at timestamptz,
  updated_at timestamptz,
  phone text unique default null,
  phone_confirmed_at timestamptz,
  confirmed_at timestamptz generated always as (least(email_confirmed_at, phone_confirmed_at)) stored,
  banned_until timestamptz,
  is_sso_user boolean not null default false,
  deleted_at timestamptz,
  is_anonymous boolean not null default false
);
create index users_instance_id_idx on auth.users (instance_id);
create unique index users_email_partial_key on auth.users (email) where (is_sso_user = false);
alter table auth.users enable row level security;
alter table auth.users owner to supabase_auth_admin;

-- @when absent function auth.uid()
create function auth.uid() returns uuid
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.sub', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
  )::uuid
$$;
alter function auth.uid() owner to supabase_auth_admin;
grant execute on function auth.uid() to anon, authenticated, service_role;

-- @when absent function auth.role()
create function auth.role() returns text
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.role', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
  )::text
$$;
alter function auth.role() owner to supabase_auth_admin;
grant execute on function auth.role() to anon, authenticated, service_role;

-- @when absent function auth.email()
create function auth.email() returns text
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.email', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'email')
  )::text
$$;
alter function auth.email() owner to supabase_auth_admin;
grant execute on function auth.email() to anon, authenticated, service_role;

-- @when absent function auth.jwt()
create function auth.jwt() returns jsonb
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim', true), ''),
    nullif(current_setting('request.jwt.claims', true), '')
  )::jsonb
$$;
alter function auth.jwt() owner to supabase_auth_admin;
grant execute on function auth.jwt() to anon, authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- storage
-- ---------------------------------------------------------------------------------------------
-- @when absent table storage.buckets
create table storage.buckets (
  id text not null primary key,
  name text not null,
  owner uuid,
  owner_id text,
  public boolean default false,
  avif_autodetection boolean default false,
  file_size_limit bigint,
  allowed_mime_types text[],
  created_at timestamptz default now(),
  updated_at timestamptz default now()
);
create unique index bname on storage.buckets (name);
alter table storage.buckets enable row level security;
alter table storage.buckets owner to supabase_storage_admin;

-- @when absent table storage.objects
create table storage.objects (
  id uuid not null default gen_random_uuid() primary key,
  bucket_id text references storage.buckets (id),
  name text,
  owner uuid,
  owner_id text,
  metadata jsonb,
  user_metadata jsonb,
  version text,
  path_tokens text[] generated always as (string_to_array(name, '/')) stored,
  created_at timestamptz default now(),
  updated_at timestamptz default now(),
  last_accessed_at timestamptz default now()
);
create unique index bucketid_objname on storage.objects (bucket_id, name);
create index name_prefix_search on storage.objects (name text_pattern_ops);
alter table storage.objects enable row level security;
alter table storage.objects owner to supabase_storage_admin;

-- @when absent function storage.foldername(text)
create function storage.foldername(name text) returns text[]
language plpgsql immutable
as $$
declare
  _parts text[];
begin
  select string_to_array(name, '/') into _parts;
  return _parts[1 : array_length(_parts, 1) - 1];
end
$$;
alter function storage.foldername(text) owner to supabase_storage_admin;

-- @when absent function storage.filename(text)
create function storage.filename(name text) returns text
language plpgsql immutable
as $$
declare
  _parts text[];
begin
  select string_to_array(name, '/') into _parts;
  return _parts[array_length(_parts, 1)];
end
$$;
alter function storage.filename(text) owner to supabase_storage_admin;

-- @when absent function storage.extension(text)
create function storage.extension(name text) returns text
language plpgsql immutable
as $$
declare
  _parts text[];
  _filename text;
begin
  select string_to_array(name, '/') into _parts;
  select _parts[array_length(_parts, 1)] into _filename;
  return reverse(split_part(reverse(_filename), '.', 1));
end
$$;

alter function storage.extension(text) owner to supabase_storage_admin;

-- Direct deletes from the storage tables lose files in the object store: blocked unless the
-- Storage API (which sets storage.allow_delete_query) does it.
-- @when absent function storage.protect_delete()
create function storage.protect_delete() returns trigger
language plpgsql
as $$
begin
  if coalesce(current_setting('storage.allow_delete_query', true), 'false') <> 'true' then
    raise exception 'Direct deletion from storage tables is not allowed. Use the Storage API instead.'
      using hint = 'This prevents accidental data loss from orphaned objects.',
            errcode = '42501';
  end if;
  return null;
end
$$;

do $shim$
begin
  if not exists (select 1 from pg_trigger where tgname = 'protect_buckets_delete'
                 and tgrelid = 'storage.buckets'::regclass) then
    create trigger protect_buckets_delete before delete on storage.buckets
      for each statement execute function storage.protect_delete();
  end if;
  if not exists (select 1 from pg_trigger where tgname = 'protect_objects_delete'
                 and tgrelid = 'storage.objects'::regclass) then
    create trigger protect_objects_delete before delete on storage.objects
      for each statement execute function storage.protect_delete();
  end if;
end
$shim$;

grant select, insert, update, delete on storage.buckets, storage.objects
  to anon, authenticated, service_role;
alter function storage.protect_delete() owner to supabase_storage_admin;

-- ---------------------------------------------------------------------------------------------
-- realtime
-- ---------------------------------------------------------------------------------------------
-- @when absent table realtime.messages
create table realtime.messages (
  topic text not null,
  extension text not null,
  payload jsonb,
  event text,
  private boolean default false,
  updated_at timestamp not null default now(),
  inserted_at timestamp not null default now(),
  id uuid not null default gen_random_uuid(),
  binary_payload bytea,
  primary key (id, inserted_at)
) partition by range (inserted_at);
create index messages_inserted_at_topic_index
  on realtime.messages (inserted_at desc, topic)
  where extension = 'broadcast' and private is true;
alter table realtime.messages enable row level security;
alter table realtime.messages owner to supabase_realtime_admin;
grant select, insert, update on realtime.messages to anon, authenticated, service_role;

-- @when absent function realtime.topic()
create function realtime.topic() returns text
language sql stable
as $$
  select nullif(current_setting('realtime.topic', true), '')::text;
$$;
alter function realtime.topic() owner to supabase_realtime_admin;
grant execute on function realtime.topic() to anon, authenticated, service_role;

-- Never raises: any failure becomes a WARNING and the message is lost (as on hosted).
-- @when absent function realtime.send(jsonb,text,text,boolean)
create function realtime.send(payload jsonb, event text, topic text, private boolean default true)
returns void
language plpgsql
as $$
declare
  v_id uuid := gen_random_uuid();
  v_payload jsonb;
begin
  begin
    if payload ? 'id' then
      v_payload := payload;
    else
      v_payload := jsonb_set(payload, '{id}', to_jsonb(v_id));
    end if;
    execute format('set local realtime.topic to %L', topic);
    insert into realtime.messages (id, payload, event, topic, private, extension)
    values (v_id, v_payload, event, topic, private, 'broadcast');
  exception when others then
    raise warning 'ErrorSendingBroadcastMessage: %', sqlerrm;
  end;
end
$$;
alter function realtime.send(jsonb,text,text,boolean) owner to supabase_realtime_admin;

-- @when absent function realtime.broadcast_changes(text,text,text,text,text,record,record,text)
create function realtime.broadcast_changes(
  topic_name text, event_name text, operation text, table_name text, table_schema text,
  new record, old record, level text default 'ROW'
) returns void
language plpgsql
as $$
declare
  v_row_data jsonb := null;
  v_old_data jsonb := null;
  v_payload jsonb;
begin
  if level = 'ROW' then
    if operation in ('INSERT', 'UPDATE') then
      v_row_data := to_jsonb(new);
    end if;
    if operation in ('UPDATE', 'DELETE') then
      v_old_data := to_jsonb(old);
    end if;
  end if;
  v_payload := jsonb_build_object(
    'old_record', v_old_data, 'record', v_row_data, 'operation', operation,
    'table', table_name, 'schema', table_schema);
  perform realtime.send(v_payload, event_name, topic_name, true);
end
$$;

alter function realtime.broadcast_changes(text,text,text,text,text,record,record,text) owner to supabase_realtime_admin;

-- The Realtime server keeps daily partitions (yesterday .. today+3, days in UTC) and drops old
-- ones; locally this helper creates them (it drops nothing). Returns how many it created.
-- @when absent function platform_shim.ensure_realtime_partitions(int,date)
create function platform_shim.ensure_realtime_partitions(
  p_days_ahead int default 3, p_today date default (now() at time zone 'utc')::date
) returns int
language plpgsql
as $$
declare
  v_day date;
  v_name text;
  v_created int := 0;
begin
  for v_day in
    select d::date from generate_series(p_today - 1, p_today + p_days_ahead, interval '1 day') as d
  loop
    v_name := 'messages_' || to_char(v_day, 'YYYY_MM_DD');
    if to_regclass('realtime.' || v_name) is null then
      execute format(
        'create table realtime.%I partition of realtime.messages for values from (%L) to (%L)',
        v_name, v_day::timestamp, (v_day + 1)::timestamp);
      execute format('alter table realtime.%I owner to supabase_realtime_admin', v_name);
      v_created := v_created + 1;
    end if;
  end loop;
  return v_created;
end
$$;
revoke all on function platform_shim.ensure_realtime_partitions(int, date) from public;

