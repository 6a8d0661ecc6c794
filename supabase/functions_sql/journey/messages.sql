-- Journey: a message at every turn (docs/journey.md). When a request or a session changes without
-- its customer (or, for a booking, its mechanic) doing it, they get an email and an event on the
-- session's topic (`session:<id>`), both in the transaction of the change: a change that rolls back
-- tells nobody. One change, one message: a refund that is part of the change (an expiry, an admin's
-- cancellation, a cancelled or cheaper booking) is announced by that change's email, with its
-- amount, and recorded in private.refund_notices so that it is never announced again; every other
-- refund is announced once, when it succeeded.
--
-- Dedupe keys (private.enqueue_email's suffix; the key is email:<template>:<session>:<user><suffix>):
--   request_unattended  :unattended:<epoch of the transition>  (a request may go unattended again
--                                                                after a release, once per time)
--   request_expired     (none)                                  (a request expires once)
--   request_released    :released:<request_releases.id>
--   session_cancelled   (none)                                  (a session is cancelled once)
--   refund_succeeded    :refund:<refund id>
--   booking_cancelled   (none), booking_rescheduled :s<calendar sequence>
-- Events are sent only when the change happened (the transition, or the first notice of a refund),
-- so a retried sweep or a duplicate Stripe event sends neither an email nor an event.

-- The event of a change on the session's topic. Payloads carry ids, times, amounts and roles:
-- never an email address, a phone number or free text an admin wrote.
create or replace function private.message_event(p_session_id uuid, p_event text, p_payload jsonb) returns void
language plpgsql security definer set search_path = ''
as $$
begin
  if p_session_id is not null then
    perform realtime.send(jsonb_build_object('session_id', p_session_id) || p_payload, p_event,
                          'session:' || p_session_id::text, true);
  end if;
end
$$;
revoke execute on function private.message_event(uuid, text, jsonb) from public;
grant execute on function private.message_event(uuid, text, jsonb) to service_role;

-- The refunds of a session's payments not yet announced (any not failed or canceled: a card refund
-- still on its way counts) are claimed by the message `p_notice`; returns their total.
create or replace function private.messages_claim_refunds(p_session_id uuid, p_notice text) returns int
language sql volatile security definer set search_path = ''
as $$
  with claimed as (
    insert into private.refund_notices (refund_id, notice)
    select r.id, p_notice
    from public.refunds r join public.payments p on p.id = r.payment_id
    where p.session_id = p_session_id and r.status not in ('failed', 'canceled')
    on conflict (refund_id) do nothing
    returning refund_id)
  select coalesce(sum(r.amount_cents), 0)::int from claimed c join public.refunds r on r.id = c.refund_id
$$;
revoke execute on function private.messages_claim_refunds(uuid, text) from public;
grant execute on function private.messages_claim_refunds(uuid, text) to service_role;

-- Who made the change: the actor of this transaction (private.set_actor), else the system.
create or replace function private.messages_actor() returns text
language sql stable set search_path = ''
as $$
  select case when current_setting('autodoctor.actor_role', true) in ('customer', 'mechanic', 'admin')
              then current_setting('autodoctor.actor_role', true) else 'system' end
$$;
revoke execute on function private.messages_actor() from public;
grant execute on function private.messages_actor() to service_role;

-- ---------------------------------------------------------------------------------------------
-- Unattended: nobody accepted within requests.unattended_after (jobs/sweep_requests.sql); the
-- admins' queue will assign a mechanic. Fires on the transition itself, whatever made it, and is
-- checked at commit (a deferred trigger): a request that went unattended and expired in the same
-- sweep (a sweep that ran late) is told only that it expired.
-- ---------------------------------------------------------------------------------------------
create or replace function private.tg_session_requests__messages() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if not exists (select 1 from public.session_requests r
                 where r.id = new.id and r.status = 'unattended' and r.status_changed_at = new.status_changed_at) then
    return null;  -- it moved on in the same transaction: its later message says what happened
  end if;
  perform private.enqueue_email('request_unattended', new.customer_id, new.session_id,
    jsonb_build_object('request_id', new.id),
    format(':unattended:%s', extract(epoch from new.status_changed_at)));
  perform private.message_event(new.session_id, 'request_unattended',
    jsonb_build_object('request_id', new.id, 'at', new.status_changed_at));
  return null;
end
$$;
revoke execute on function private.tg_session_requests__messages() from public;
drop trigger if exists _500_messages on public.session_requests;
create constraint trigger _500_messages after update of status on public.session_requests
  deferrable initially deferred
  for each row when (new.status = 'unattended' and old.status is distinct from 'unattended')
  execute function private.tg_session_requests__messages();

-- ---------------------------------------------------------------------------------------------
-- Expired: lifecycle step of private.expire_request (core/lifecycle.sql), after the refund and the
-- cancellation: one email, with the amount refunded (0 for a free request).
-- ---------------------------------------------------------------------------------------------
create or replace function private.messages_on_request_expired(p_session_id uuid, p_now timestamptz) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_s public.sessions;
  v_request_id uuid;
  v_refunded int;
begin
  select * into v_s from public.sessions where id = p_session_id;
  select id into v_request_id from public.session_requests where session_id = p_session_id;
  v_refunded := private.messages_claim_refunds(p_session_id, 'request_expired');
  perform private.enqueue_email('request_expired', v_s.customer_id, v_s.id,
    jsonb_build_object('request_id', v_request_id, 'refunded_cents', v_refunded, 'currency', v_s.currency));
  perform private.message_event(v_s.id, 'request_expired',
    jsonb_build_object('request_id', v_request_id, 'refunded_cents', v_refunded, 'currency', v_s.currency,
                       'at', p_now));
end
$$;
revoke execute on function private.messages_on_request_expired(uuid, timestamptz) from public;
grant execute on function private.messages_on_request_expired(uuid, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Released: an accepted request goes back to the queue, let go by its mechanic (cancel_request)
-- or by the system (a workshop's approval that lapsed: workshops/dispatch.sql). Both record the
-- release in private.request_releases, which is where this fires. The customer is emailed only if
-- told of that mechanic (its mechanic_assigned email was sent: trust/contact.sql): an
-- accept-and-release the customer never heard of is not news worth an email, only an event for the
-- app, which showed the assignment live (mechanic_assigned on the same topic).
-- ---------------------------------------------------------------------------------------------
create or replace function private.tg_request_releases__messages() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_r public.session_requests;
  v_told boolean;
  v_by text := case when new.by_system then 'system' else 'mechanic' end;
begin
  select * into v_r from public.session_requests where id = new.request_id;
  v_told := exists (
    select 1 from private.outbox o
    where o.dedupe_key in (format('email:mechanic_assigned:%s:%s:%s', v_r.session_id, v_r.customer_id, new.mechanic_id),
                           format('email:mechanic_assigned:%s:%s:%s:approved', v_r.session_id, v_r.customer_id,
                                  new.mechanic_id))
      and o.status = 'sent');
  if v_told then
    perform private.enqueue_email('request_released', v_r.customer_id, v_r.session_id,
      jsonb_build_object('request_id', v_r.id, 'released_by', v_by), format(':released:%s', new.id));
  end if;
  perform private.message_event(v_r.session_id, 'request_released',
    jsonb_build_object('request_id', v_r.id, 'released_by', v_by, 'emailed', v_told, 'at', new.released_at));
  return null;
end
$$;
revoke execute on function private.tg_request_releases__messages() from public;
drop trigger if exists _500_messages on private.request_releases;
create trigger _500_messages after insert on private.request_releases
  for each row execute function private.tg_request_releases__messages();

-- ---------------------------------------------------------------------------------------------
-- Cancelled by an admin: lifecycle step of private.cancel_session (core/lifecycle.sql), whatever
-- admin path cancelled it (admin_force_end_session, an admin's full refund of a session not yet
-- started, an admin cancelling a booking through cancel_scheduled_session). A booking's
-- cancellation is told by booking_cancelled (below), with who cancelled it, so not twice.
-- ---------------------------------------------------------------------------------------------
create or replace function private.messages_on_session_cancelled(p_session_id uuid, p_from public.session_status)
returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_s public.sessions;
  v_refunded int;
begin
  if private.messages_actor() <> 'admin' or p_from = 'scheduled' then
    return;
  end if;
  select * into v_s from public.sessions where id = p_session_id;
  v_refunded := private.messages_claim_refunds(p_session_id, 'session_cancelled');
  perform private.enqueue_email('session_cancelled', v_s.customer_id, v_s.id,
    jsonb_build_object('cancelled_by', 'admin', 'refunded_cents', v_refunded, 'currency', v_s.currency));
  perform private.message_event(v_s.id, 'session_cancelled',
    jsonb_build_object('cancelled_by', 'admin', 'refunded_cents', v_refunded, 'currency', v_s.currency,
                       'at', v_s.status_changed_at));
end
$$;
revoke execute on function private.messages_on_session_cancelled(uuid, public.session_status) from public;
grant execute on function private.messages_on_session_cancelled(uuid, public.session_status) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Bookings: cancelled (scheduling/reminders.sql) or moved (scheduling/changes.sql). Both sides get
-- the email, each with the times in their own zone (rendered from `timezone`), who made the change,
-- and, for the customer, the refund it made.
-- ---------------------------------------------------------------------------------------------
create or replace function private.messages_on_booking_cancelled(p_s public.sessions) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_by text := private.messages_actor();
  v_refunded int := private.messages_claim_refunds(p_s.id, 'booking_cancelled');
  v_data jsonb := jsonb_build_object('cancelled_by', v_by, 'scheduled_for', p_s.scheduled_for,
                                     'currency', p_s.currency);
begin
  perform private.enqueue_email('booking_cancelled', p_s.customer_id, p_s.id,
    v_data || jsonb_build_object('recipient', 'customer', 'refunded_cents', v_refunded));
  if p_s.mechanic_id is not null then
    perform private.enqueue_email('booking_cancelled', p_s.mechanic_id, p_s.id,
      v_data || jsonb_build_object('recipient', 'mechanic'));
  end if;
  perform private.message_event(p_s.id, 'booking_cancelled',
    jsonb_build_object('cancelled_by', v_by, 'scheduled_for', p_s.scheduled_for,
                       'calendar_sequence', p_s.calendar_sequence));
end
$$;
revoke execute on function private.messages_on_booking_cancelled(public.sessions) from public;
grant execute on function private.messages_on_booking_cancelled(public.sessions) to service_role;

create or replace function private.messages_on_booking_rescheduled(p_s public.sessions, p_previous_start timestamptz)
returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_by text := private.messages_actor();
  v_refunded int := private.messages_claim_refunds(p_s.id, 'booking_rescheduled');
  v_data jsonb := jsonb_build_object('rescheduled_by', v_by, 'previous_start', p_previous_start,
                                     'scheduled_for', p_s.scheduled_for, 'currency', p_s.currency);
begin
  perform private.enqueue_email('booking_rescheduled', p_s.customer_id, p_s.id,
    v_data || jsonb_build_object('recipient', 'customer', 'refunded_cents', v_refunded),
    ':s' || p_s.calendar_sequence);
  perform private.enqueue_email('booking_rescheduled', p_s.mechanic_id, p_s.id,
    v_data || jsonb_build_object('recipient', 'mechanic'), ':s' || p_s.calendar_sequence);
  perform private.message_event(p_s.id, 'booking_rescheduled',
    jsonb_build_object('rescheduled_by', v_by, 'previous_start', p_previous_start,
                       'scheduled_for', p_s.scheduled_for, 'calendar_sequence', p_s.calendar_sequence));
end
$$;
revoke execute on function private.messages_on_booking_rescheduled(public.sessions, timestamptz) from public;
grant execute on function private.messages_on_booking_rescheduled(public.sessions, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Refunded: a refund that succeeded (money back on the card, or in the customer's credit), for any
-- reason: an admin's partial refund, a cancelled paid request, a refund made in Stripe. Checked at
-- commit (a deferred trigger), after every other step of the same change had its say, so a
-- refund the change's own email announced (claimed in private.refund_notices) is not announced
-- again, and a refund whose booking could not be kept is told by booking_slot_lost.
-- ---------------------------------------------------------------------------------------------
create or replace function private.tg_refunds__messages() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_r public.refunds;
  v_p public.payments;
  v_notice text := 'refund_succeeded';
  v_claimed uuid;
  v_total int;
begin
  select * into v_r from public.refunds where id = new.id;
  if v_r.status is distinct from 'succeeded' then
    return null;
  end if;
  select * into v_p from public.payments where id = v_r.payment_id;
  if exists (select 1 from private.outbox o where o.dedupe_key = 'email:booking_slot_lost:' || v_p.booking_id) then
    v_notice := 'booking_slot_lost';
  end if;
  insert into private.refund_notices (refund_id, notice) values (v_r.id, v_notice)
  on conflict (refund_id) do nothing
  returning refund_id into v_claimed;
  if v_claimed is null or v_notice <> 'refund_succeeded' then
    return null;  -- announced already (or by the booking's own email)
  end if;
  select coalesce(sum(x.amount_cents), 0) into v_total from public.refunds x
  where x.payment_id = v_p.id and x.status = 'succeeded';
  perform private.enqueue_email('refund_succeeded', v_p.customer_id, v_p.session_id,
    jsonb_build_object('refund_id', v_r.id, 'amount_cents', v_r.amount_cents, 'currency', v_r.currency,
                       'destination', v_r.destination, 'origin', v_r.origin, 'paid_cents', v_p.amount_cents,
                       'refunded_total_cents', v_total, 'partial', v_total < v_p.amount_cents),
    ':refund:' || v_r.id);
  perform private.message_event(v_p.session_id, 'refund_succeeded',
    jsonb_build_object('refund_id', v_r.id, 'amount_cents', v_r.amount_cents, 'currency', v_r.currency,
                       'destination', v_r.destination, 'partial', v_total < v_p.amount_cents,
                       'at', v_r.succeeded_at));
  return null;
end
$$;
revoke execute on function private.tg_refunds__messages() from public;
drop trigger if exists _900_messages on public.refunds;
create constraint trigger _900_messages after insert or update of status on public.refunds
  deferrable initially deferred
  for each row when (new.status = 'succeeded')
  execute function private.tg_refunds__messages();
