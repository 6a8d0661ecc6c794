-- Rooms: who may join a session's LiveKit room and until when, LiveKit's webhook events driving
-- the session lifecycle, reconcile repairs, deadlines and extensions, the timer job, and the
-- outbox (enqueue, claim, settle). Re-runnable.

-- ---------------------------------------------------------------------------------------------
-- Outbox
-- ---------------------------------------------------------------------------------------------
-- Adds a side effect once: a second enqueue with the same dedupe key is a no-op. Returns the id
-- (of the new row, or of the existing one).
create or replace function private.enqueue(
  p_kind text, p_dedupe_key text, p_payload jsonb, p_not_before timestamptz default now()
) returns bigint
language plpgsql security definer set search_path = ''
as $$
declare
  v_id bigint;
begin
  insert into private.outbox (kind, dedupe_key, payload, next_attempt_at)
  values (p_kind, p_dedupe_key, p_payload, p_not_before)
  on conflict (dedupe_key) do nothing
  returning id into v_id;
  if v_id is null then
    select id into v_id from private.outbox where dedupe_key = p_dedupe_key;
  end if;
  return v_id;
end
$$;
revoke execute on function private.enqueue(text, text, jsonb, timestamptz) from public;
grant execute on function private.enqueue(text, text, jsonb, timestamptz) to service_role;

-- Claims up to p_limit due rows (pending, or processing whose lease ran out after a crash) for
-- one delivery run: skip locked, so concurrent runs never take the same row.
create or replace function private.outbox_claim(p_now timestamptz, p_limit int, p_kinds text[] default null)
returns setof private.outbox
language sql security definer set search_path = ''
as $$
  update private.outbox o
  set status = 'processing', attempts = o.attempts + 1,
      locked_until = p_now + private.setting_interval('outbox.lease')
  where o.id in (
    select x.id from private.outbox x
    where ((x.status = 'pending' and x.next_attempt_at <= p_now)
           or (x.status = 'processing' and x.locked_until <= p_now))
      and (p_kinds is null or x.kind = any (p_kinds))
    order by x.next_attempt_at, x.id
    limit p_limit
    for update skip locked)
  returning o.*
$$;
revoke execute on function private.outbox_claim(timestamptz, int, text[]) from public;
grant execute on function private.outbox_claim(timestamptz, int, text[]) to service_role;

-- Records the outcome of one delivery: sent, or failed (retried with exponential backoff, then
-- dead-lettered after outbox.max_attempts).
create or replace function private.outbox_settle(p_id bigint, p_ok boolean, p_error text, p_now timestamptz)
returns private.outbox_status
language plpgsql security definer set search_path = ''
as $$
declare
  v_row private.outbox;
begin
  select * into v_row from private.outbox where id = p_id for update;
  if not found or v_row.status <> 'processing' then
    return v_row.status;
  end if;
  if p_ok then
    update private.outbox set status = 'sent', sent_at = p_now, locked_until = null, last_error = null
    where id = p_id;
    return 'sent';
  end if;
  if v_row.attempts >= private.setting_int('outbox.max_attempts') then
    update private.outbox set status = 'dead', locked_until = null, last_error = left(p_error, 2000) where id = p_id;
    return 'dead';
  end if;
  update private.outbox
  set status = 'pending', locked_until = null, last_error = left(p_error, 2000),
      next_attempt_at = p_now + private.setting_interval('outbox.base_backoff') * power(2, v_row.attempts - 1)
  where id = p_id;
  return 'pending';
end
$$;
revoke execute on function private.outbox_settle(bigint, boolean, text, timestamptz) from public;
grant execute on function private.outbox_settle(bigint, boolean, text, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Deadlines and timers
-- ---------------------------------------------------------------------------------------------
-- A session that goes live gets its deadline; every change of deadline is announced as `timer`.
create or replace function private.tg_sessions__deadline() returns trigger
language plpgsql set search_path = ''
as $$
begin
  if new.status = 'live' and (old.status is distinct from 'live' or new.extension_minutes <> old.extension_minutes) then
    new.deadline_at := coalesce(new.started_at, now())
                       + make_interval(mins => new.planned_minutes + new.extension_minutes);
  end if;
  return new;
end
$$;
drop trigger if exists _110_deadline on public.sessions;
create trigger _110_deadline before update of status, extension_minutes on public.sessions
  for each row execute function private.tg_sessions__deadline();

create or replace function private.tg_sessions__rooms() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if new.deadline_at is distinct from old.deadline_at and new.deadline_at is not null then
    perform realtime.send(
      jsonb_build_object('session_id', new.id, 'started_at', new.started_at, 'deadline_at', new.deadline_at,
                         'planned_minutes', new.planned_minutes, 'extension_minutes', new.extension_minutes,
                         'server_now', now()),
      'timer', 'session:' || new.id::text, true);
  end if;
  -- A session that had a room and ended: close the room (through the outbox, once).
  if new.status in ('completed', 'cancelled') and old.status in ('waiting', 'live') then
    perform private.enqueue('livekit.delete_room', 'livekit.delete_room:' || new.id::text,
                            jsonb_build_object('room', 'session-' || new.id::text, 'session_id', new.id));
  end if;
  return null;
end
$$;
drop trigger if exists _310_rooms on public.sessions;
create trigger _310_rooms after update of status, deadline_at on public.sessions
  for each row execute function private.tg_sessions__rooms();

-- Ends live sessions past their deadline plus the grace; returns how many.
create or replace function private.end_overdue_sessions(p_now timestamptz default now(), p_limit int default 200)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_id uuid;
  v_ended int := 0;
  v_grace interval := private.setting_interval('sessions.deadline_grace');
begin
  perform private.set_actor('system', 'time cap reached');
  for v_id in
    select s.id from public.sessions s
    where s.status = 'live' and s.deadline_at + v_grace <= p_now
    order by s.deadline_at
    limit p_limit
    for update skip locked
  loop
    perform private.complete_session(v_id, null, 'time cap reached', p_now);
    v_ended := v_ended + 1;
  end loop;
  return jsonb_build_object('ended', v_ended);
end
$$;
revoke execute on function private.end_overdue_sessions(timestamptz, int) from public;
grant execute on function private.end_overdue_sessions(timestamptz, int) to service_role;

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

-- ---------------------------------------------------------------------------------------------
-- LiveKit webhook events → session lifecycle. One call per event, in the webhook's transaction.
-- The session row is locked first, so concurrent deliveries for one room apply one at a time:
-- "both joined → live" happens exactly once whatever the order and the duplicates.
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
      perform private.set_actor('system', 'the room finished');
      perform private.complete_session(v_session.id, null, null, greatest(p_occurred_at, v_session.started_at));
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
     and v_session.customer_id::text = any (p_present) and v_session.mechanic_id::text = any (p_present) then
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
      perform private.set_actor('system', 'reconcile: the room is gone or empty');
      perform private.complete_session(v_session.id, null, 'room ended (reconciled)',
                                       greatest(coalesce(v_last_left, p_now), v_session.started_at));
      return 'completed';
    end if;
  end if;
  return 'ok';
end
$$;
revoke execute on function private.reconcile_room(uuid, boolean, text[], timestamptz) from public;
grant execute on function private.reconcile_room(uuid, boolean, text[], timestamptz) to service_role;

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

-- request_extension: a micro session once by micro.extension_minutes (2), free and at once
-- (seed 000); a standard or extended session by extensions.standard_minutes, paid — the result
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
  if p_session_id is null or p_minutes is null then
    perform private.raise_error('invalid_input', 'p_session_id and p_minutes are required');
  end if;
  select * into v_session from public.sessions where id = p_session_id for update;
  if not found or (v_session.customer_id <> v_uid and v_session.mechanic_id is distinct from v_uid) then
    perform private.raise_error('not_found', 'no such session');
  end if;
  if v_session.status <> 'live' then
    perform private.raise_error('extension_not_allowed', format('a %s session cannot be extended', v_session.status));
  end if;
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

revoke execute on function private.tg_sessions__deadline(), private.tg_sessions__rooms() from public;
