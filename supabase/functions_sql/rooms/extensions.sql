-- Rooms: extensions of a live session.

-- ---------------------------------------------------------------------------------------------
-- Extensions
-- ---------------------------------------------------------------------------------------------
-- Adds granted minutes to a live session (the deadline trigger moves the deadline and announces it).
create or replace function private.grant_extension(p_extension_id uuid, p_now timestamptz default now())
returns boolean
language plpgsql security definer set search_path = ''
as $$
declare
  v_ext public.session_extensions;
begin
  select * into v_ext from public.session_extensions where id = p_extension_id for update;
  if not found or v_ext.status = 'granted' then
    return found;
  end if;
  update public.sessions set extension_minutes = extension_minutes + v_ext.minutes
  where id = v_ext.session_id and status = 'live';
  if not found then
    update public.session_extensions set status = 'cancelled' where id = v_ext.id;
    return false;  -- the session ended meanwhile: the caller refunds a paid extension
  end if;
  update public.session_extensions set status = 'granted', granted_at = p_now where id = v_ext.id;
  perform realtime.send(jsonb_build_object('session_id', v_ext.session_id, 'extension_id', v_ext.id,
                                           'minutes', v_ext.minutes, 'kind', v_ext.kind),
                        'extension', 'session:' || v_ext.session_id::text, true);
  return true;
end
$$;
revoke execute on function private.grant_extension(uuid, timestamptz) from public;
grant execute on function private.grant_extension(uuid, timestamptz) to service_role;

-- request_extension: a micro session once by micro.extension_minutes (2), free and at once;
-- a standard or extended session by extensions.standard_minutes, paid — the result
-- says payment_required with the extension to pay for through checkout.
create or replace function public.request_extension(p_session_id uuid, p_minutes int) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_session public.sessions;
  v_id uuid;
  v_minutes int;
  v_price int;
begin
  perform private.require_arg('p_minutes', p_minutes);
  v_session := private.lock_session_as_participant(p_session_id, v_uid);
  if v_session.status <> 'live' then
    perform private.raise_error('extension_not_allowed', format('the session is %s: it cannot be extended', v_session.status));
  end if;
  perform private.require_good_standing(v_session.mechanic_id);  -- trust/standing.sql
  if v_session.duration_type = 'micro' then
    -- the workshop's extension rules apply to its mechanics (micro-sessions domain)
    v_minutes := private.micro_extension_minutes(v_session.id);
    if v_minutes = 0 then
      perform private.raise_error('extension_not_allowed', 'the workshop does not allow extensions');
    end if;
    if p_minutes <> v_minutes then
      perform private.raise_error('invalid_input', format('a micro session is extended by %s minutes', v_minutes));
    end if;
    if exists (select 1 from public.session_extensions e
               where e.session_id = v_session.id and e.kind = 'micro_free' and e.status <> 'cancelled') then
      perform private.raise_error('extension_not_allowed', 'a micro session is extended once');
    end if;
    insert into public.session_extensions (session_id, requested_by, kind, minutes, status)
    values (v_session.id, v_uid, 'micro_free', v_minutes, 'pending_payment')
    returning id into v_id;
    perform private.grant_extension(v_id, now());
    return jsonb_build_object('extension_id', v_id, 'status', 'granted', 'minutes', v_minutes,
                              'deadline_at', (select s.deadline_at from public.sessions s where s.id = v_session.id));
  end if;
  if v_session.customer_id <> v_uid then
    perform private.raise_error('not_allowed', 'the customer asks for (and pays) an extension');
  end if;
  v_minutes := private.setting_int('extensions.standard_minutes');
  if p_minutes <> v_minutes then
    perform private.raise_error('invalid_input', format('an extension adds %s minutes', v_minutes));
  end if;
  v_price := private.setting_int('extensions.standard_price_cents');
  insert into public.session_extensions (session_id, requested_by, kind, minutes, price_cents, currency, status)
  values (v_session.id, v_uid, 'paid', v_minutes, v_price, v_session.currency, 'pending_payment')
  returning id into v_id;
  return jsonb_build_object('extension_id', v_id, 'status', 'payment_required', 'minutes', v_minutes,
                            'price_cents', v_price, 'currency', v_session.currency);
end
$$;
revoke execute on function public.request_extension(uuid, int) from public, anon;
grant execute on function public.request_extension(uuid, int) to authenticated, service_role;

-- Sessions whose rooms reconcile should look at (live, or waiting with someone assigned).
create or replace function private.rooms_to_reconcile(p_limit int default 200)
returns table (session_id uuid, room text, status public.session_status)
language sql stable security definer set search_path = ''
as $$
  select s.id, 'session-' || s.id::text, s.status from public.sessions s
  where s.status in ('waiting', 'live')
  order by s.status_changed_at
  limit p_limit
$$;
revoke execute on function private.rooms_to_reconcile(int) from public;
grant execute on function private.rooms_to_reconcile(int) to service_role;

