-- Core admin RPCs: mechanic status, manual assignment, force-ending a session.

-- ---------------------------------------------------------------------------------------------
-- Admin RPCs
-- ---------------------------------------------------------------------------------------------
create or replace function private.require_admin() returns uuid
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
begin
  if not private.is_admin() then
    perform private.raise_error('not_allowed', 'admins only');
  end if;
  return v_uid;
end
$$;
revoke execute on function private.require_admin() from public;
grant execute on function private.require_admin() to authenticated, service_role;

create or replace function public.admin_set_mechanic_status(p_mechanic_id uuid, p_status text) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_status public.mechanic_status;
  v_row public.mechanics;
begin
  perform private.require_admin();
  if p_mechanic_id is null or p_status is null
     or p_status not in ('pending', 'approved', 'suspended') then
    perform private.raise_error('invalid_input', 'p_status must be pending, approved or suspended');
  end if;
  v_status := p_status::public.mechanic_status;
  if v_status <> 'suspended' then
    perform private.require_not_erased(p_mechanic_id);  -- privacy/erasure.sql
  end if;
  update public.mechanics
  set status = v_status,
      approved_at = case when v_status = 'approved' then coalesce(approved_at, now()) else approved_at end,
      is_available = case when v_status = 'approved' then is_available else false end
  where id = p_mechanic_id
  returning * into v_row;
  if not found then
    perform private.raise_error('not_found', 'no such mechanic');
  end if;
  perform private.record_admin_action('mechanic.set_status', 'mechanic', v_row.id, null,
                                      jsonb_build_object('to', v_row.status));
  return jsonb_build_object('mechanic_id', v_row.id, 'status', v_row.status, 'approved_at', v_row.approved_at);
end
$$;
revoke execute on function public.admin_set_mechanic_status(uuid, text) from public, anon;
grant execute on function public.admin_set_mechanic_status(uuid, text) to authenticated, service_role;

-- A manual assignment is an offer, not an order: mechanics are contractors who may always decline.
-- The admin offers the request to one mechanic, who has it alone for matching.admin_offer_window and
-- accepts (accept_request) or declines (decline_offer) it (private.offer_request, matching/routing.sql).
create or replace function public.admin_assign_request(p_request_id uuid, p_mechanic_id uuid) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_result jsonb;
begin
  perform private.require_admin();
  if p_request_id is null or p_mechanic_id is null then
    perform private.raise_error('invalid_input', 'p_request_id and p_mechanic_id are required');
  end if;
  v_result := private.offer_request(p_request_id, p_mechanic_id, now());
  perform private.record_admin_action('request.offer', 'request', p_request_id, null,
                                      jsonb_build_object('mechanic_id', p_mechanic_id));
  return v_result;
end
$$;
revoke execute on function public.admin_assign_request(uuid, uuid) from public, anon;
grant execute on function public.admin_assign_request(uuid, uuid) to authenticated, service_role;

-- A live session is completed (the work happened); one not yet started is cancelled.
create or replace function public.admin_force_end_session(p_session_id uuid, p_reason text) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_reason text;
  v_status public.session_status;
begin
  perform private.require_admin();
  v_reason := private.check_text('p_reason', p_reason, true);
  perform private.require_arg('p_session_id', p_session_id);
  select status into v_status from public.sessions where id = p_session_id for update;
  if not found then
    perform private.raise_error('not_found', 'no such session');
  end if;
  if v_status = 'live' then
    return private.complete_session(p_session_id, null, v_reason, now(), 'admin');
  elsif v_status in ('pending', 'scheduled', 'waiting') then
    perform private.cancel_session(p_session_id, v_reason, now(), 'admin');
    return jsonb_build_object('session_id', p_session_id, 'status', 'cancelled');
  end if;
  perform private.raise_error('invalid_transition', format('the session is already %s', v_status));
  return null;
end
$$;
revoke execute on function public.admin_force_end_session(uuid, text) from public, anon;
grant execute on function public.admin_force_end_session(uuid, text) to authenticated, service_role;
