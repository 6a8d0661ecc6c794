-- Rooms: deadlines and timers.

-- ---------------------------------------------------------------------------------------------
-- Deadlines and timers
-- ---------------------------------------------------------------------------------------------
-- A session that goes live gets its deadline. Kept as a trigger: the deadline is a pure
-- consequence of the status, started_at and extension_minutes columns, and every path that starts
-- a session or grants an extension (RPC, LiveKit webhook, reconcile, payments) would otherwise
-- have to repeat the formula.
-- The triggers' WHEN clauses repeat their functions' conditions, so PostgreSQL does not call
-- them on the other changes of status (an accept, a release, an end).
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
revoke execute on function private.tg_sessions__deadline() from public;
drop trigger if exists _110_deadline on public.sessions;
create trigger _110_deadline before update of status, extension_minutes on public.sessions
  for each row
  when (new.status = 'live' and (old.status is distinct from 'live' or new.extension_minutes <> old.extension_minutes))
  execute function private.tg_sessions__deadline();

-- A change of deadline is announced as `timer` to the session's participants. A trigger: it is a
-- pure consequence of the column (set by _110_deadline, or by an extension), whoever changed it.
drop trigger if exists _310_rooms on public.sessions;
drop function if exists private.tg_sessions__rooms();
create or replace function private.tg_sessions__timer() returns trigger
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
  return null;
end
$$;
revoke execute on function private.tg_sessions__timer() from public;
drop trigger if exists _310_timer on public.sessions;
create trigger _310_timer after update of status, deadline_at on public.sessions
  for each row
  when (new.deadline_at is distinct from old.deadline_at and new.deadline_at is not null)
  execute function private.tg_sessions__timer();

-- Lifecycle step (core/lifecycle.sql): a session that had a room (it was waiting or live) and
-- ended: close the room, through the outbox, once.
create or replace function private.rooms_on_session_ended(p_session_id uuid, p_from public.session_status)
returns void
language plpgsql security definer set search_path = ''
as $$
begin
  if p_from in ('waiting', 'live') then
    perform private.enqueue('livekit.delete_room', 'livekit.delete_room:' || p_session_id::text,
                            jsonb_build_object('room', 'session-' || p_session_id::text, 'session_id', p_session_id));
  end if;
end
$$;
revoke execute on function private.rooms_on_session_ended(uuid, public.session_status) from public;
grant execute on function private.rooms_on_session_ended(uuid, public.session_status) to service_role;

-- Ends live sessions past their deadline plus the grace; returns how many. A micro-session has no
-- grace: its limit is hard (10 minutes at most, priced and counted in the mechanic's daily micro
-- minutes as planned + extensions), so every minute past the deadline would be unpaid and
-- uncounted; it ends at the first run at or after its deadline.
create or replace function private.end_overdue_sessions(p_now timestamptz default now(), p_limit int default 200)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_id uuid;
  v_ended int := 0;
  v_grace interval := private.setting_interval('sessions.deadline_grace');
begin
  for v_id in
    select s.id from public.sessions s
    where s.status = 'live'
      and s.deadline_at + case when s.duration_type = 'micro' then interval '0' else v_grace end <= p_now
    order by s.deadline_at
    limit p_limit
    for update skip locked
  loop
    perform private.complete_session(v_id, null, 'time cap reached', p_now, 'system');
    v_ended := v_ended + 1;
  end loop;
  return jsonb_build_object('ended', v_ended);
end
$$;
revoke execute on function private.end_overdue_sessions(timestamptz, int) from public;
grant execute on function private.end_overdue_sessions(timestamptz, int) to service_role;
