-- Raising registered errors (private.error_codes, docs/error_codes.md).
--
-- An error raises its own SQLSTATE (class AD) with the message, the detail and its name in HINT;
-- PostgREST answers it with HTTP 400 (any SQLSTATE it does not know). An error registered with
-- http_status 429 (limit_reached, rate_limited) is raised in PostgREST's own form instead:
-- SQLSTATE PGRST, the message a JSON object {"code", "message", "details", "hint"} (our code, our
-- message, our name in hint) and the detail {"status": 429, "headers": {"Retry-After": "<s>"}},
-- from which PostgREST (11.2 and later) sets the response's status and headers. The JSON body
-- the client reads is the same shape as for every other error. shared/errors.py and the test
-- harness read our code back from the JSON.

-- Raises the registered error `p_name` (message defaults to the registry's description). An
-- unknown name is a programming error (XX000).
create or replace function private.raise_error(p_name text, p_message text default null, p_detail text default null)
returns void
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_code text;
  v_description text;
  v_status int;
begin
  select e.sqlstate, e.description, e.http_status into v_code, v_description, v_status
  from private.error_codes as e where e.name = p_name;
  if v_code is null then
    raise exception 'unregistered error name %', p_name using errcode = 'XX000';
  end if;
  if v_status = 429 then
    perform private.raise_error_retry(p_name, p_message, null, p_detail);
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
  'Raise a registered error: SQLSTATE from private.error_codes, the name in HINT (429s in PostgREST''s PGRST form).';

-- The same, telling the client when to try again (`Retry-After`, whole seconds, at least 1) when
-- the error answers 429; other errors raise exactly as private.raise_error.
create or replace function private.raise_error_retry(
  p_name text, p_message text, p_retry_after_seconds numeric, p_detail text default null
) returns void
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_code text;
  v_description text;
  v_status int;
  v_body jsonb;
  v_headers jsonb := '{}';
begin
  select e.sqlstate, e.description, e.http_status into v_code, v_description, v_status
  from private.error_codes as e where e.name = p_name;
  if v_code is null then
    raise exception 'unregistered error name %', p_name using errcode = 'XX000';
  end if;
  if v_status <> 429 then
    raise exception using errcode = v_code, message = coalesce(p_message, v_description),
      detail = coalesce(p_detail, ''), hint = p_name;
  end if;
  v_body := jsonb_build_object('code', v_code, 'message', coalesce(p_message, v_description), 'hint', p_name,
                               'details', nullif(p_detail, ''));
  if p_retry_after_seconds is not null then
    v_headers := jsonb_build_object('Retry-After', greatest(1, ceil(p_retry_after_seconds))::bigint::text);
  end if;
  raise exception using
    errcode = 'PGRST',
    message = v_body::text,
    detail = jsonb_build_object('status', v_status, 'headers', v_headers)::text;
end
$$;
revoke execute on function private.raise_error_retry(text, text, numeric, text) from public;
grant execute on function private.raise_error_retry(text, text, numeric, text) to anon, authenticated, service_role;

-- Our registered code of an error caught in SQL (`exception when others`): its SQLSTATE, or for
-- a 429 raised in PostgREST's form the code inside its JSON message. Null for any other error.
create or replace function private.caught_error_code(p_sqlstate text, p_message text) returns text
language plpgsql immutable set search_path = ''
as $$
begin
  if p_sqlstate like 'AD%' then
    return p_sqlstate;
  end if;
  if p_sqlstate = 'PGRST' then
    begin
      return nullif(p_message::jsonb ->> 'code', '');
    exception when others then
      return null;
    end;
  end if;
  return null;
end
$$;
revoke execute on function private.caught_error_code(text, text) from public;
grant execute on function private.caught_error_code(text, text) to service_role;

-- The human message of an error caught in SQL (the JSON message's `message` for the PGRST form).
create or replace function private.caught_error_message(p_sqlstate text, p_message text) returns text
language plpgsql immutable set search_path = ''
as $$
begin
  if p_sqlstate = 'PGRST' then
    begin
      return coalesce(p_message::jsonb ->> 'message', p_message);
    exception when others then
      return p_message;
    end;
  end if;
  return p_message;
end
$$;
revoke execute on function private.caught_error_message(text, text) from public;
grant execute on function private.caught_error_message(text, text) to service_role;
