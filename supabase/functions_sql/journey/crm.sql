-- Journey: CRM interactions (docs/journey.md#interactions-and-the-funnel).
--
-- Every interaction is recorded by the database's own events: the triggers below (an intake, a
-- filed request or booked slot, a review, a payment), the lifecycle step of a completed session
-- (hooks.sql: session_delivered), and the RPCs of the other parts of the journey (a summary
-- viewed, a recommendation shown, clicked or purchased, a follow-up asked). No client writes the
-- table, so no customer can add to the funnel or to another customer's timeline.

-- Records one interaction of a customer. An event that happens once per thing (an intake created,
-- a request filed or a session delivered per session, a review, a payment, a follow-up or a
-- purchased recommendation per subject) is recorded once: the unique indexes of crm_interactions
-- turn a repeat (a webhook delivered twice, a retried job, the backfill run again) into nothing.
create or replace function private.crm_record(
  p_customer_id uuid, p_kind text, p_occurred_at timestamptz, p_intake_id uuid, p_session_id uuid,
  p_subject_id uuid, p_data jsonb default '{}'
) returns void
language plpgsql security definer set search_path = ''
as $$
begin
  if p_customer_id is null then
    return;
  end if;
  insert into public.crm_interactions (customer_id, kind, occurred_at, intake_id, session_id, subject_id, data)
  values (p_customer_id, p_kind, coalesce(p_occurred_at, now()), p_intake_id, p_session_id, p_subject_id,
          coalesce(p_data, '{}'))
  on conflict do nothing;
end
$$;
revoke execute on function private.crm_record(uuid, text, timestamptz, uuid, uuid, uuid, jsonb) from public;
grant execute on function private.crm_record(uuid, text, timestamptz, uuid, uuid, uuid, jsonb) to service_role;

-- ---------------------------------------------------------------------------------------------
-- The triggers. Each stamps the interaction with the transaction's time (now()): a client never
-- chooses when its interaction happened.
-- ---------------------------------------------------------------------------------------------
-- intake_created: a customer wrote an intake (insert into public.intakes)
create or replace function private.tg_crm__intake_created() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  perform private.crm_record(new.customer_id, 'intake_created', now(), new.id, null, null,
                             jsonb_build_object('plan', new.plan_code));
  return null;
end
$$;
revoke execute on function private.tg_crm__intake_created() from public;
drop trigger if exists _700_crm on public.intakes;
create trigger _700_crm after insert on public.intakes
  for each row execute function private.tg_crm__intake_created();

-- request_filed: a request was filed (request_session, checkout, credit), with its session's intake
create or replace function private.tg_crm__request_filed() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  perform private.crm_record(new.customer_id, 'request_filed', now(),
                             (select s.intake_id from public.sessions s where s.id = new.session_id), new.session_id,
                             null, jsonb_build_object('plan', new.plan_code, 'session_type', new.session_type,
                                                      'booked', false));
  return null;
end
$$;
revoke execute on function private.tg_crm__request_filed() from public;
drop trigger if exists _700_crm on public.session_requests;
create trigger _700_crm after insert on public.session_requests
  for each row execute function private.tg_crm__request_filed();

-- request_filed, booked: a slot booked with a mechanic is a scheduled session without a request
-- (scheduling/holds.sql); it is the same step of the funnel
create or replace function private.tg_crm__session_booked() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  perform private.crm_record(new.customer_id, 'request_filed', now(), new.intake_id, new.id, null,
                             jsonb_build_object('plan', new.plan_code, 'session_type', new.session_type,
                                                'booked', true));
  return null;
end
$$;
revoke execute on function private.tg_crm__session_booked() from public;
drop trigger if exists _700_crm on public.sessions;
create trigger _700_crm after insert on public.sessions
  for each row when (new.status = 'scheduled') execute function private.tg_crm__session_booked();

-- review_written: a customer reviewed a delivered session (submit_review's first submit; an edit
-- updates the row and is not a new review)
create or replace function private.tg_crm__review_written() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  perform private.crm_record(new.customer_id, 'review_written', now(),
                             (select s.intake_id from public.sessions s where s.id = new.session_id), new.session_id,
                             new.id, jsonb_build_object('rating', new.rating));
  return null;
end
$$;
revoke execute on function private.tg_crm__review_written() from public;
drop trigger if exists _700_crm on public.mechanic_reviews;
create trigger _700_crm after insert on public.mechanic_reviews
  for each row execute function private.tg_crm__review_written();

-- purchase: money received. A payment row exists only once it succeeded: a card payment is
-- inserted by the Stripe webhook's checkout.session.completed (payments/stripe_events.sql, once
-- per booking), a credit payment by pay_booking_with_credit (payments/credit.sql). A refund later
-- does not remove the purchase. The subject is the payment; data: amount, currency, plan (null for
-- a session extension), method, and whether it extends a session already bought.
create or replace function private.tg_crm__purchase() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_booking public.bookings;
begin
  select * into v_booking from public.bookings where id = new.booking_id;
  perform private.crm_record(new.customer_id, 'purchase', now(),
                             coalesce(v_booking.intake_id,
                                      (select s.intake_id from public.sessions s where s.id = new.session_id)),
                             new.session_id, new.id,
                             jsonb_build_object('amount_cents', new.amount_cents, 'currency', new.currency,
                                                'plan', v_booking.plan_code, 'method', new.method,
                                                'extension', new.extension_id is not null));
  return null;
end
$$;
revoke execute on function private.tg_crm__purchase() from public;
drop trigger if exists _700_crm on public.payments;
create trigger _700_crm after insert on public.payments
  for each row execute function private.tg_crm__purchase();

-- A card payment is recorded before the session it pays for exists (the webhook creates the
-- session right after): the purchase takes the session when the payment does.
create or replace function private.tg_crm__purchase_session() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  update public.crm_interactions c
  set session_id = new.session_id,
      intake_id = coalesce(c.intake_id, (select s.intake_id from public.sessions s where s.id = new.session_id))
  where c.kind = 'purchase' and c.subject_id = new.id and c.session_id is null;
  return null;
end
$$;
revoke execute on function private.tg_crm__purchase_session() from public;
drop trigger if exists _710_crm_session on public.payments;
create trigger _710_crm_session after update of session_id on public.payments
  for each row when (old.session_id is null and new.session_id is not null)
  execute function private.tg_crm__purchase_session();
