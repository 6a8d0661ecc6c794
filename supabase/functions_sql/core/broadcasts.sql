-- Core Realtime broadcasts of requests and sessions.

-- ---------------------------------------------------------------------------------------------
-- Realtime broadcasts, sent inside the transaction that made the change (lost if it rolls back).
-- Payloads carry ids and card fields only: never an email, phone or address.
-- ---------------------------------------------------------------------------------------------
create or replace function private.tg_session_requests__broadcast() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_card jsonb := private.request_card(new);
begin
  if (tg_op = 'INSERT' and coalesce(new.broadcast_at <= now(), true))  -- not during a preferred window
     or (tg_op = 'UPDATE' and old.status = 'accepted' and new.status = 'pending') then
    perform realtime.send(v_card, 'new_request', 'mechanics:requests', true);
  elsif new.status is distinct from old.status then
    case new.status
      when 'accepted' then
        perform realtime.send(jsonb_build_object('request_id', new.id, 'mechanic_id', new.mechanic_id),
                              'request_accepted', 'mechanics:requests', true);
      when 'unattended' then
        perform realtime.send(jsonb_build_object('request_id', new.id), 'request_unattended', 'mechanics:requests', true);
        perform realtime.send(v_card, 'request_unattended', 'admin:queue', true);
      when 'cancelled', 'expired' then
        perform realtime.send(jsonb_build_object('request_id', new.id, 'reason', new.status),
                              'request_cancelled', 'mechanics:requests', true);
      else
        null;
    end case;
  end if;
  return null;
end
$$;
revoke execute on function private.tg_session_requests__broadcast() from public;

create or replace function private.tg_sessions__broadcast() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_topic text := 'session:' || new.id::text;
begin
  if new.status is distinct from old.status then
    perform realtime.send(
      jsonb_build_object('session_id', new.id, 'from', old.status, 'to', new.status, 'at', new.status_changed_at),
      'status_changed', v_topic, true);
  end if;
  if new.mechanic_id is distinct from old.mechanic_id and new.mechanic_id is not null then
    perform realtime.send(
      (select jsonb_build_object('session_id', new.id, 'mechanic_id', new.mechanic_id,
                                 'display_name', m.display_name, 'photo_url', m.photo_url)
       from (select 1) one left join public.mechanics m on m.id = new.mechanic_id),
      'mechanic_assigned', v_topic, true);
  end if;
  return null;
end
$$;
revoke execute on function private.tg_sessions__broadcast() from public;

drop trigger if exists _300_broadcast on public.session_requests;
create trigger _300_broadcast after insert or update of status on public.session_requests
  for each row execute function private.tg_session_requests__broadcast();
drop trigger if exists _300_broadcast on public.sessions;
create trigger _300_broadcast after update of status, mechanic_id on public.sessions
  for each row execute function private.tg_sessions__broadcast();

