-- Trust: the per-user rate limit of write RPCs (docs/trust.md, "Limits per account and rate limits").
--
-- PostgREST runs private.pre_request() at the start of every request's transaction (the role
-- setting pgrst.db_pre_request of authenticator, set by migration), after it set the role,
-- request.jwt.claims, request.method and request.path. For `POST /rpc/<name>` by a signed-in user
-- it takes one token from the user's bucket of the function's class (private.rpc_rate_classes;
-- a volatile function without a row counts as class `write`; read-only functions are free).
-- Buckets refill continuously (rate_limit.<class>.refill_per_minute) up to their capacity
-- (rate_limit.<class>.capacity). An empty bucket answers rate_limited (HTTP 429, Retry-After: the
-- seconds until one token is back).
--
-- The token is taken in the request's own transaction: a call that fails rolls its token back
-- with everything else, so the limit counts calls that changed something (a flood of failing calls
-- is bounded by PostgREST's pool and statement timeouts instead). A user's calls of one class
-- serialize briefly on the bucket row.

-- Takes one token from (p_user_id, p_class) at p_now, or raises rate_limited.
create or replace function private.take_rate_token(p_user_id uuid, p_class text, p_now timestamptz default clock_timestamp())
returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_capacity double precision := private.setting_int(format('rate_limit.%s.capacity', p_class));
  v_per_second double precision := private.setting_numeric(format('rate_limit.%s.refill_per_minute', p_class)) / 60;
  v_tokens double precision;
begin
  insert into private.rate_buckets as b (user_id, class, tokens, updated_at)
  values (p_user_id, p_class, v_capacity - 1, p_now)
  on conflict (user_id, class) do update
    set tokens = least(v_capacity,
                       b.tokens + greatest(0, extract(epoch from (excluded.updated_at - b.updated_at))) * v_per_second) - 1,
        updated_at = greatest(b.updated_at, excluded.updated_at)
  returning b.tokens into v_tokens;
  if v_tokens < 0 then
    -- the update is rolled back with the request: a refused call costs nothing
    perform private.raise_error_retry('rate_limited',
      format('too many %s calls: try again in a moment', p_class),
      (case when v_per_second > 0 then -v_tokens / v_per_second else 3600 end)::numeric);
  end if;
end
$$;
revoke execute on function private.take_rate_token(uuid, text, timestamptz) from public;
grant execute on function private.take_rate_token(uuid, text, timestamptz) to service_role;

-- The rate class of a function of `public` called through /rpc: its row, else `write` for a
-- volatile function, else null (read-only: not limited).
create or replace function private.rpc_rate_class(p_function_name text) returns text
language sql stable security definer set search_path = ''
as $$
  select coalesce(
    (select c.class from private.rpc_rate_classes c where c.function_name = p_function_name),
    (select 'write' from pg_catalog.pg_proc p
     where p.pronamespace = 'public'::regnamespace and p.proname = p_function_name and p.provolatile = 'v'
     limit 1))
$$;
revoke execute on function private.rpc_rate_class(text) from public;
grant execute on function private.rpc_rate_class(text) to service_role;

-- PostgREST's pre-request hook. Callable by every API role (PostgREST calls it as the request's
-- role); it decides from the request settings alone and never raises for anything but the limit.
create or replace function private.pre_request() returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_path text := current_setting('request.path', true);
  v_user_id uuid;
  v_class text;
begin
  if current_setting('request.method', true) is distinct from 'POST' or v_path is null
     or v_path not like '/rpc/%' then
    return;
  end if;
  if coalesce(current_setting('request.jwt.claims', true), '') = ''
     or (current_setting('request.jwt.claims', true)::jsonb ->> 'role') is distinct from 'authenticated' then
    return;  -- anon calls no write RPC; service_role is the platform
  end if;
  v_user_id := private.try_uuid(current_setting('request.jwt.claims', true)::jsonb ->> 'sub');
  if v_user_id is null or not private.setting_bool('rate_limit.enabled') then
    return;
  end if;
  v_class := private.rpc_rate_class(lower(rtrim(substr(v_path, 6), '/')));
  if v_class is not null then
    perform private.take_rate_token(v_user_id, v_class, clock_timestamp());
  end if;
end
$$;
revoke execute on function private.pre_request() from public;
grant execute on function private.pre_request() to anon, authenticated, service_role;
