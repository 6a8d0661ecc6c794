-- Scheduling: reminders as delayed outbox rows.

-- ---------------------------------------------------------------------------------------------
-- Reminders: delayed outbox rows keyed (session, kind[, sequence]); moved on reschedule, dropped
-- on cancellation. The "starting" notice uses the same key as private.send_starting_notices, and
-- a booked session is marked (starting_notice_at) so that sweep leaves it to this row.
-- ---------------------------------------------------------------------------------------------
create or replace function private.drop_reminders(p_session_id uuid) returns int
language sql security definer set search_path = ''
as $$
  with d as (
    delete from private.outbox o
    where (o.payload ->> 'session_id') = p_session_id::text and o.kind = 'email.send' and o.status = 'pending'
      and o.payload ->> 'template' in ('session_reminder', 'session_starting')
    returning 1)
  select count(*)::int from d
$$;
revoke execute on function private.drop_reminders(uuid) from public;
grant execute on function private.drop_reminders(uuid) to service_role;

create or replace function private.schedule_reminders(p_session_id uuid, p_now timestamptz default now()) returns int
language plpgsql security definer set search_path = ''
as $$
declare
  v_s public.sessions;
  v_suffix text;
  v_lead text;
  v_user uuid;
  v_at timestamptz;
  v_n int := 0;
begin
  select * into v_s from public.sessions where id = p_session_id;
  if not found or v_s.status <> 'scheduled' or v_s.scheduled_for is null then
    return 0;
  end if;
  v_suffix := case when v_s.calendar_sequence = 0 then '' else ':s' || v_s.calendar_sequence end;
  foreach v_user in array array_remove(array[v_s.customer_id, v_s.mechanic_id], null) loop
    for v_lead in select jsonb_array_elements_text(private.setting('scheduling.reminder_leads')) loop
      v_at := v_s.scheduled_for - v_lead::interval;
      if v_at > p_now then
        perform private.enqueue('email.send',
          format('email:session_reminder:%s:%s:%s%s', v_s.id, v_user, replace(v_lead, ' ', ''), v_suffix),
          jsonb_build_object('template', 'session_reminder', 'user_id', v_user, 'session_id', v_s.id,
                             'data', jsonb_build_object('lead', v_lead)), v_at);
        v_n := v_n + 1;
      end if;
    end loop;
    v_at := greatest(v_s.scheduled_for - private.setting_interval('sessions.starting_notice'), p_now);
    perform private.enqueue('email.send', format('email:session_starting:%s:%s%s', v_s.id, v_user, v_suffix),
      jsonb_build_object('template', 'session_starting', 'user_id', v_user, 'session_id', v_s.id, 'data', '{}'::jsonb),
      v_at);
    v_n := v_n + 1;
  end loop;
  update public.sessions set starting_notice_at = coalesce(starting_notice_at, p_now) where id = v_s.id;
  return v_n;
end
$$;
revoke execute on function private.schedule_reminders(uuid, timestamptz) from public;
grant execute on function private.schedule_reminders(uuid, timestamptz) to service_role;

-- Lifecycle step (core/lifecycle.sql): a booked session that is cancelled, by any path: SEQUENCE +1
-- (the .ics becomes a cancellation), its reminders go, both participants hear of it.
drop trigger if exists _120_calendar_sequence on public.sessions;
drop function if exists private.tg_sessions__calendar_sequence();
drop trigger if exists _450_scheduling on public.sessions;
drop function if exists private.tg_sessions__scheduling();
create or replace function private.scheduling_on_session_cancelled(p_session_id uuid, p_from public.session_status)
returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_s public.sessions;
begin
  if p_from <> 'scheduled' then
    return;
  end if;
  update public.sessions set calendar_sequence = calendar_sequence + 1 where id = p_session_id returning * into v_s;
  perform private.drop_reminders(v_s.id);
  perform private.messages_on_booking_cancelled(v_s);  -- both sides: journey/messages.sql
end
$$;
revoke execute on function private.scheduling_on_session_cancelled(uuid, public.session_status) from public;
grant execute on function private.scheduling_on_session_cancelled(uuid, public.session_status) to service_role;

-- A paid booking of a hold that could not be kept (the slot was taken after the hold expired) is
-- refunded by the payments code; the customer is told why.
create or replace function private.tg_bookings__slot_lost() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if new.hold_id is not null and new.status = 'unfulfilled' and old.status is distinct from 'unfulfilled' then
    perform private.enqueue('email.send', format('email:booking_slot_lost:%s', new.id),
      jsonb_build_object('template', 'booking_slot_lost', 'user_id', new.customer_id, 'session_id', null,
                         'data', jsonb_build_object('booking_id', new.id, 'price_cents', new.price_cents,
                                                    'currency', new.currency)));
  end if;
  return null;
end
$$;
drop trigger if exists _450_slot_lost on public.bookings;
create trigger _450_slot_lost after update of status on public.bookings
  for each row execute function private.tg_bookings__slot_lost();
revoke execute on function private.tg_bookings__slot_lost() from public;
