-- Trust: the waiver. A customer files demand (a request, a checkout, a hold or a booking) only with
-- the current terms accepted and the 18+ confirmation (docs/trust.md).

-- Whether user `p_user_id` accepted the current terms (waiver.current_version) as an adult.
create or replace function private.has_current_waiver(p_user_id uuid) returns boolean
language sql stable security definer set search_path = ''
as $$
  select exists (select 1 from public.waiver_acceptances w
                 where w.user_id = p_user_id and w.waiver_version = private.setting_text('waiver.current_version')
                   and w.adult_confirmed)
$$;
revoke execute on function private.has_current_waiver(uuid) from public;
grant execute on function private.has_current_waiver(uuid) to authenticated, service_role;

-- Raises waiver_required unless user `p_user_id` accepted the current terms.
create or replace function private.require_waiver(p_user_id uuid) returns void
language plpgsql stable security definer set search_path = ''
as $$
begin
  if not private.has_current_waiver(p_user_id) then
    perform private.raise_error('waiver_required',
      format('accept the current terms (%s) with accept_waiver first', private.setting_text('waiver.current_version')));
  end if;
end
$$;
revoke execute on function private.require_waiver(uuid) from public;
grant execute on function private.require_waiver(uuid) to service_role;

-- The client's address and user agent from the headers PostgREST passes to the database
-- (request.headers: JSON, lower-case names): the first address of X-Forwarded-For, else
-- X-Real-IP; an address that is not one is recorded as null. Never from the request body.
create or replace function private.request_client() returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_headers jsonb;
  v_candidate text;
  v_ip inet;
begin
  begin
    v_headers := nullif(current_setting('request.headers', true), '')::jsonb;
  exception when others then
    v_headers := null;
  end;
  if jsonb_typeof(v_headers) is distinct from 'object' then
    v_headers := '{}';
  end if;
  v_candidate := nullif(btrim(split_part(v_headers ->> 'x-forwarded-for', ',', 1)), '');
  if v_candidate is null then
    v_candidate := nullif(btrim(v_headers ->> 'x-real-ip'), '');
  end if;
  if v_candidate is not null and char_length(v_candidate) <= 64 then
    begin
      v_ip := v_candidate::inet;
    exception when others then
      v_ip := null;
    end;
  end if;
  return jsonb_build_object('ip_address', host(v_ip), 'user_agent', left(v_headers ->> 'user-agent', 500));
end
$$;
revoke execute on function private.request_client() from public;
grant execute on function private.request_client() to service_role;

-- Records that the caller accepts terms `p_version` (which must be the current one) and confirms
-- being 18 or older. Accepting the same version again returns the first acceptance.
create or replace function public.accept_waiver(p_version text, p_adult boolean) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_current text := private.setting_text('waiver.current_version');
  v_client jsonb;
  v_row public.waiver_acceptances;
begin
  perform private.require_arg('p_version', p_version);
  perform private.require_arg('p_adult', p_adult);
  if char_length(p_version) > 20 then
    perform private.raise_error('invalid_input', 'p_version is at most 20 characters');
  end if;
  if not p_adult then
    perform private.raise_error('invalid_input', 'the terms can only be accepted by someone 18 or older');
  end if;
  if p_version <> v_current then
    perform private.raise_error('waiver_outdated', format('the current terms are %s', v_current));
  end if;
  select * into v_row from public.waiver_acceptances w
  where w.user_id = v_uid and w.waiver_version = v_current and w.adult_confirmed
  order by w.accepted_at limit 1;
  if not found then
    v_client := private.request_client();
    insert into public.waiver_acceptances (user_id, waiver_version, adult_confirmed, ip_address, user_agent)
    values (v_uid, v_current, true, (v_client ->> 'ip_address')::inet, v_client ->> 'user_agent')
    returning * into v_row;
  end if;
  return jsonb_build_object('waiver_id', v_row.id, 'waiver_version', v_row.waiver_version,
                            'accepted_at', v_row.accepted_at);
end
$$;
revoke execute on function public.accept_waiver(text, boolean) from public, anon;
grant execute on function public.accept_waiver(text, boolean) to authenticated, service_role;
