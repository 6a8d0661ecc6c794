-- Matching: presence (online, busy, offline) and its broadcasts.

-- ---------------------------------------------------------------------------------------------
-- Presence
-- ---------------------------------------------------------------------------------------------
-- online: chose to be available and heartbeat recent; busy: holds work; offline: otherwise.
create or replace function private.presence(
  p_is_available boolean, p_last_seen_at timestamptz, p_busy boolean, p_window interval, p_now timestamptz
) returns text
language plpgsql immutable parallel safe set search_path = ''
as $$
begin
  -- PL/pgSQL: its one expression is planned once per session, where a SQL function with a fixed
  -- search_path is planned again in every transaction (PostgreSQL before 18)
  return case
    when p_busy then 'busy'
    when p_is_available and p_last_seen_at >= p_now - p_window then 'online'
    else 'offline' end;
end
$$;
revoke execute on function private.presence(boolean, timestamptz, boolean, interval, timestamptz) from public;
grant execute on function private.presence(boolean, timestamptz, boolean, interval, timestamptz)
  to anon, authenticated, service_role;

-- The window is read once per query (a scalar subquery), not once per mechanic: as a plain call it
-- was looked up for every row, which made reading the presence of 4,000 mechanics cost ~180 ms.
drop view if exists public.mechanic_presence;
create view public.mechanic_presence with (security_invoker = true) as
select m.id as mechanic_id,
       private.presence(m.is_available, m.last_seen_at, m.id in (select private.busy_mechanic_ids()),
                        (select private.setting_interval('presence.online_window')), now()) as presence,
       m.last_seen_at
from public.mechanics m
where m.status = 'approved';
grant select on public.mechanic_presence to anon, authenticated, service_role;
comment on view public.mechanic_presence is 'online / busy / offline per approved mechanic.';

-- Presence changes are broadcast on mechanics:presence (status_changed {mechanic_id, presence}).
create or replace function private.tg_mechanics__broadcast_presence() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_busy boolean := exists (select 1 from public.mechanic_commitments c
                            where c.mechanic_id = new.id and c.status = 'in_progress');
begin
  if new.is_available is distinct from old.is_available or new.status is distinct from old.status then
    perform realtime.send(
      jsonb_build_object('mechanic_id', new.id,
                         'presence', case when new.status <> 'approved' then 'offline'
                                          else private.presence(new.is_available, new.last_seen_at, v_busy,
                                                 private.setting_interval('presence.online_window'), now()) end),
      'status_changed', 'mechanics:presence', true);
  end if;
  return null;
end
$$;
revoke execute on function private.tg_mechanics__broadcast_presence() from public;
drop trigger if exists _300_broadcast_presence on public.mechanics;
create trigger _300_broadcast_presence after update of is_available, status on public.mechanics
  for each row execute function private.tg_mechanics__broadcast_presence();

create or replace function private.tg_mechanic_commitments__broadcast_presence() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_mechanic public.mechanics;
  v_presence text;
begin
  if (tg_op = 'INSERT' and new.status = 'in_progress')
     or (tg_op = 'UPDATE' and (old.status = 'in_progress') <> (new.status = 'in_progress')) then
    if new.status = 'in_progress' then
      -- busy whatever the mechanic's availability and heartbeat: nothing to read (every accept)
      v_presence := private.presence(null, null, true, null, now());
    else
      select * into v_mechanic from public.mechanics where id = new.mechanic_id;
      v_presence := private.presence(v_mechanic.is_available, v_mechanic.last_seen_at, false,
                                     private.setting_interval('presence.online_window'), now());
    end if;
    perform realtime.send(jsonb_build_object('mechanic_id', new.mechanic_id, 'presence', v_presence),
                          'status_changed', 'mechanics:presence', true);
  end if;
  return null;
end
$$;
revoke execute on function private.tg_mechanic_commitments__broadcast_presence() from public;
drop trigger if exists _300_broadcast_presence on public.mechanic_commitments;
create trigger _300_broadcast_presence after insert or update of status on public.mechanic_commitments
  for each row execute function private.tg_mechanic_commitments__broadcast_presence();
