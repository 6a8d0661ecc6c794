-- Rooms: LiveKit webhook events driving the session lifecycle, and reconcile repairs.

-- ---------------------------------------------------------------------------------------------
-- LiveKit webhook events → session lifecycle. One call per event, in the webhook's transaction.
-- The session row is locked first, so concurrent deliveries for one room apply one at a time:
-- "both joined → live" happens exactly once whatever the order and the duplicates, and only for a
-- mechanic in good standing (trust/standing.sql).
-- ---------------------------------------------------------------------------------------------
create or replace function private.apply_livekit_event(
  p_event_id text, p_event text, p_room text, p_identity text, p_occurred_at timestamptz, p_payload jsonb
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_session_id uuid;
  v_session public.sessions;
  v_user uuid;
  v_outcome text;
  v_inserted int;
begin
  if p_event_id is null or p_event is null or p_occurred_at is null then
    perform private.raise_error('invalid_input', 'event id, type and time are required');
  end if;
  if p_room ~ '^session-[0-9a-f-]{36}$' then
    v_session_id := private.try_uuid(substr(p_room, 9));
  end if;
  if v_session_id is not null then
    -- lock before the ledger insert: a duplicate delivered concurrently waits, then sees the row
    select * into v_session from public.sessions where id = v_session_id for update;
    if not found then
      v_session_id := null;
    end if;
  end if;
  insert into private.livekit_events (id, event, room_name, participant_identity, session_id, occurred_at, payload)
  values (p_event_id, p_event, p_room, p_identity, v_session_id, p_occurred_at, coalesce(p_payload, '{}'))
  on conflict (id) do nothing;
  get diagnostics v_inserted = row_count;
  if v_inserted = 0 then
    return jsonb_build_object('outcome', 'duplicate');
  end if;

  if v_session_id is null then
    v_outcome := 'ignored: unknown room';
  elsif v_session.status not in ('waiting', 'live') then
    v_outcome := format('ignored: session %s', v_session.status);
  elsif p_event in ('participant_joined', 'participant_left') then
    v_user := private.try_uuid(p_identity);
    if v_user is null or v_user not in (v_session.customer_id, v_session.mechanic_id) then
      v_outcome := 'ignored: not a participant';
    else
      insert into public.session_participants (session_id, user_id, role, joined_at, left_at)
      values (v_session.id, v_user,
              case when v_user = v_session.customer_id then 'customer'::public.participant_role
                   else 'mechanic'::public.participant_role end,
              case when p_event = 'participant_joined' then p_occurred_at end,
              case when p_event = 'participant_left' then p_occurred_at end)
      on conflict (session_id, user_id) do update
      set joined_at = case when p_event = 'participant_joined'
                           then least(coalesce(public.session_participants.joined_at, p_occurred_at), p_occurred_at)
                           else public.session_participants.joined_at end,
          left_at = case when p_event = 'participant_left'
                         then greatest(coalesce(public.session_participants.left_at, p_occurred_at), p_occurred_at)
                         else public.session_participants.left_at end;
      v_outcome := 'recorded';
      if p_event = 'participant_joined' and v_session.status = 'waiting' and v_session.room_finished_at is null
         and (select count(*) from public.session_participants sp
              where sp.session_id = v_session.id and sp.joined_at is not null
                and sp.user_id in (v_session.customer_id, v_session.mechanic_id)) = 2
         and not exists (select 1 from public.mechanics m where m.id = v_session.mechanic_id and m.status = 'approved') then
        v_outcome := 'recorded: mechanic not in good standing';
      elsif p_event = 'participant_joined' and v_session.status = 'waiting' and v_session.room_finished_at is null
         and (select count(*) from public.session_participants sp
              where sp.session_id = v_session.id and sp.joined_at is not null
                and sp.user_id in (v_session.customer_id, v_session.mechanic_id)) = 2 then
        perform private.set_actor('system', 'both participants joined the room');
        update public.sessions
        set status = 'live', status_changed_at = p_occurred_at,
            started_at = (select max(sp.joined_at) from public.session_participants sp
                          where sp.session_id = v_session.id
                            and sp.user_id in (v_session.customer_id, v_session.mechanic_id))
        where id = v_session.id;
        v_outcome := 'live';
      end if;
    end if;
  elsif p_event = 'room_finished' then
    update public.sessions set room_finished_at = coalesce(room_finished_at, p_occurred_at) where id = v_session.id;
    if v_session.status = 'live' then
      perform private.complete_session(v_session.id, null, null, greatest(p_occurred_at, v_session.started_at),
                                       'system', 'the room finished');
      v_outcome := 'completed';
    else
      v_outcome := 'recorded: waiting session left to the sweeps';
    end if;
  else
    v_outcome := 'ignored: event type';
  end if;
  update private.livekit_events set outcome = v_outcome where id = p_event_id;
  return jsonb_build_object('outcome', v_outcome, 'session_id', v_session_id);
end
$$;
revoke execute on function private.apply_livekit_event(text, text, text, text, timestamptz, jsonb) from public;
grant execute on function private.apply_livekit_event(text, text, text, text, timestamptz, jsonb) to service_role;

-- Reconcile one session with what LiveKit's room service reports (missed or dropped events):
-- a waiting session whose two participants are in the room goes live; a live session whose room
-- is gone, or has been empty since long enough, is completed.
create or replace function private.reconcile_room(
  p_session_id uuid, p_room_exists boolean, p_present text[], p_now timestamptz default now()
) returns text
language plpgsql security definer set search_path = ''
as $$
declare
  v_session public.sessions;
  v_last_left timestamptz;
begin
  select * into v_session from public.sessions where id = p_session_id for update;
  if not found or v_session.status not in ('waiting', 'live') then
    return 'skipped';
  end if;
  if v_session.status = 'waiting' and p_room_exists
     and v_session.customer_id::text = any (p_present) and v_session.mechanic_id::text = any (p_present)
     and exists (select 1 from public.mechanics m where m.id = v_session.mechanic_id and m.status = 'approved') then
    insert into public.session_participants (session_id, user_id, role, joined_at)
    values (v_session.id, v_session.customer_id, 'customer', p_now), (v_session.id, v_session.mechanic_id, 'mechanic', p_now)
    on conflict (session_id, user_id) do update
    set joined_at = coalesce(public.session_participants.joined_at, excluded.joined_at);
    perform private.set_actor('system', 'reconcile: both participants are in the room');
    update public.sessions set status = 'live', started_at = p_now, status_changed_at = p_now where id = v_session.id;
    return 'live';
  end if;
  if v_session.status = 'live' and (not p_room_exists or cardinality(coalesce(p_present, '{}')) = 0) then
    select max(sp.left_at) into v_last_left from public.session_participants sp where sp.session_id = v_session.id;
    if not p_room_exists
       or coalesce(v_last_left, v_session.started_at) <= p_now - private.setting_interval('sessions.reconcile_empty_after') then
      perform private.complete_session(v_session.id, null, 'room ended (reconciled)',
                                       greatest(coalesce(v_last_left, p_now), v_session.started_at),
                                       'system', 'reconcile: the room is gone or empty');
      return 'completed';
    end if;
  end if;
  return 'ok';
end
$$;
revoke execute on function private.reconcile_room(uuid, boolean, text[], timestamptz) from public;
grant execute on function private.reconcile_room(uuid, boolean, text[], timestamptz) to service_role;
