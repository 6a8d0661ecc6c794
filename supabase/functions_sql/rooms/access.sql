-- Rooms: who may join a session's LiveKit room and until when.

-- ---------------------------------------------------------------------------------------------
-- Room access: participants publish and subscribe; admins observe hidden; nobody else.
-- ---------------------------------------------------------------------------------------------
create or replace function private.room_grant(p_session_id uuid, p_user_id uuid, p_now timestamptz default now())
returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_session public.sessions;
  v_role text;
  v_name text;
  v_end timestamptz;
begin
  if p_session_id is null or p_user_id is null then
    perform private.raise_error('invalid_input', 'session and user are required');
  end if;
  select * into v_session from public.sessions where id = p_session_id;
  if found and v_session.customer_id = p_user_id then
    v_role := 'customer';
  elsif found and v_session.mechanic_id = p_user_id then
    v_role := 'mechanic';
  elsif found and exists (select 1 from private.admins a where a.user_id = p_user_id) then
    v_role := 'observer';
  else
    -- the same answer whether or not the session exists
    perform private.raise_error('not_allowed', 'only the session''s participants may join its room');
  end if;
  if v_session.status not in ('waiting', 'live') then
    perform private.raise_error('conflict', format('the session is %s: its room is closed', v_session.status));
  end if;
  if v_session.status = 'waiting' then
    perform private.require_micro_approved(v_session.id);  -- workshops/dispatch.sql
  end if;
  -- The planned end: the deadline of a live session; for a waiting one, as if it started now.
  v_end := coalesce(v_session.deadline_at,
                    p_now + make_interval(mins => v_session.planned_minutes + v_session.extension_minutes));
  select coalesce(p.full_name, case v_role when 'mechanic' then m.display_name end, v_role)
  into v_name
  from public.profiles p left join public.mechanics m on m.id = p.id
  where p.id = p_user_id;
  return jsonb_build_object(
    'room', 'session-' || v_session.id::text, 'identity', p_user_id, 'name', coalesce(v_name, v_role),
    'role', v_role, 'session_type', v_session.session_type,
    'expires_at', v_end + private.setting_interval('livekit.token_grace'));
end
$$;
revoke execute on function private.room_grant(uuid, uuid, timestamptz) from public;
grant execute on function private.room_grant(uuid, uuid, timestamptz) to service_role;
