-- Trust: what counts as delivered service, the objection window before payouts leave, the
-- customer's report and the admin's decision (docs/trust.md, "Delivery, the objection window and
-- standing").
--
-- Locking order, as everywhere: request → session → payment → refunds / payouts → mechanic.

-- ---------------------------------------------------------------------------------------------
-- Evidence: 'delivered' when both took part and the session lasted trust.min_delivered_minutes.
-- Chat: each side sent at least one message while the session was live. Video and diagnostic:
-- both joined the LiveKit room (session_participants.joined_at, written by LiveKit events).
-- ---------------------------------------------------------------------------------------------
create or replace function private.session_delivery(p_session_id uuid, p_started timestamptz, p_ended timestamptz)
returns text
language sql stable security definer set search_path = ''
as $$
  select case
    when s.mechanic_id is null or p_started is null or p_ended is null then 'unverified'
    when p_ended - p_started < make_interval(mins => private.setting_int('trust.min_delivered_minutes')) then 'unverified'
    when s.session_type = 'chat' then
      case when exists (select 1 from public.chat_messages m where m.session_id = s.id and m.sender_id = s.customer_id
                          and m.created_at between p_started and p_ended)
            and exists (select 1 from public.chat_messages m where m.session_id = s.id and m.sender_id = s.mechanic_id
                          and m.created_at between p_started and p_ended)
           then 'delivered' else 'unverified' end
    when (select count(*) from public.session_participants sp
          where sp.session_id = s.id and sp.joined_at is not null
            and sp.user_id in (s.customer_id, s.mechanic_id)) = 2 then 'delivered'
    else 'unverified'
  end
  from public.sessions s where s.id = p_session_id
$$;
revoke execute on function private.session_delivery(uuid, timestamptz, timestamptz) from public;
grant execute on function private.session_delivery(uuid, timestamptz, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Why a payout must wait (null: it may go). The one rule every path that queues a payout asks:
-- settlement, the release job, an admin's decision or release, a payout account's activation
-- (payments/stripe_events.sql) and the transfer worker (payments/stripe_worker.sql).
--   1. a problem reported by the customer and not yet decided by an admin
--   2. an unverified session no admin decided (normally never settled; defensive)
--   3. the objection window (payouts.release_at), unless an admin decided the session
--   4. the session's mechanic is not in good standing, unless an admin released this payout
--   5. the payee cannot receive transfers (private.payee_waiting_reason)
-- Volatile: each call reads what is committed now (a report committed a moment ago counts).
-- ---------------------------------------------------------------------------------------------
create or replace function private.payout_wait_reason(p_payout_id uuid, p_now timestamptz default now())
returns text
language sql volatile security definer set search_path = ''
as $$
  select case
    when d.session_id is null and r.session_id is not null
      then 'problem reported by the customer: waits for an admin decision'
    when d.session_id is null and s.delivery = 'unverified'
      then 'delivery unverified: waits for an admin decision'
    when d.session_id is null and p.release_at > p_now
      then 'objection window: released at ' || to_char(p.release_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC'
    when p.admin_released_at is null and m.status <> 'approved'
      then 'mechanic ' || m.status::text || ': payouts wait for an admin release'
    when p.admin_released_at is null and m.payouts_held
      then 'mechanic payouts held since a suspension: wait for an admin release'
    else private.payee_waiting_reason(p.mechanic_id, p.organization_id)
  end
  from public.payouts p
  join public.sessions s on s.id = p.session_id
  -- the session's mechanic; a referral payout's own payee (workshops/referral.sql)
  left join public.mechanics m on m.id = coalesce(p.mechanic_id, s.mechanic_id)
  left join public.session_delivery_decisions d on d.session_id = p.session_id
  left join public.session_problem_reports r on r.session_id = p.session_id
  where p.id = p_payout_id
$$;
revoke execute on function private.payout_wait_reason(uuid, timestamptz) from public;
grant execute on function private.payout_wait_reason(uuid, timestamptz) to service_role;

-- Applies the rule to a session's payouts: waiting → queued when nothing holds it (the payouts
-- trigger enqueues its stripe.transfer job); queued → waiting when something does and no transfer
-- was attempted yet (the worker checks the others: private.start_payout_job); the reason is kept
-- up to date. Returns how many are queued now.
create or replace function private.refresh_payouts(p_session_id uuid, p_now timestamptz default now())
returns int
language plpgsql security definer set search_path = ''
as $$
declare
  v_payout public.payouts;
  v_reason text;
  v_queued int := 0;
begin
  for v_payout in
    select * from public.payouts p
    where p.session_id = p_session_id
      and (p.status = 'waiting' or (p.status = 'queued' and p.destination_account is null))
    order by p.id for update
  loop
    v_reason := private.payout_wait_reason(v_payout.id, p_now);
    if v_reason is null then
      if v_payout.status = 'waiting' then
        update public.payouts set status = 'queued', waiting_reason = null where id = v_payout.id;
      end if;
      v_queued := v_queued + 1;
    elsif v_payout.status = 'queued' or v_payout.waiting_reason is distinct from v_reason then
      update public.payouts set status = 'waiting', waiting_reason = v_reason where id = v_payout.id;
    end if;
  end loop;
  return v_queued;
end
$$;
revoke execute on function private.refresh_payouts(uuid, timestamptz) from public;
grant execute on function private.refresh_payouts(uuid, timestamptz) to service_role;

-- The refundable cents of a session's payments (its own and paid extensions).
create or replace function private.session_refundable_cents(p_session_id uuid) returns int
language sql stable security definer set search_path = ''
as $$
  select coalesce(sum(p.amount_cents - coalesce((select sum(r.amount_cents) from public.refunds r
                                                  where r.payment_id = p.id and r.status not in ('failed', 'canceled')), 0)),
                  0)::int
  from public.payments p where p.session_id = p_session_id
$$;
revoke execute on function private.session_refundable_cents(uuid) from public;
grant execute on function private.session_refundable_cents(uuid) to service_role;

-- Refunds p_cents (null: everything left) of a session's payments, its own payment first, then
-- the extensions in the order they were paid. Returns the cents refunded.
create or replace function private.refund_session(p_session_id uuid, p_cents int, p_origin text, p_reason text,
                                                  p_by uuid, p_now timestamptz default now())
returns int
language plpgsql security definer set search_path = ''
as $$
declare
  v_payment record;
  v_left int := p_cents;
  v_done int := 0;
  v_refund public.refunds;
begin
  for v_payment in
    select p.id, p.amount_cents - coalesce((select sum(r.amount_cents) from public.refunds r
                                            where r.payment_id = p.id and r.status not in ('failed', 'canceled')), 0)
             ::int as refundable
    from public.payments p where p.session_id = p_session_id
    order by p.extension_id is not null, p.paid_at, p.id
  loop
    continue when v_payment.refundable <= 0 or (v_left is not null and v_left <= 0);
    v_refund := private.request_refund(v_payment.id,
                                       case when v_left is null then null else least(v_left, v_payment.refundable) end,
                                       p_origin, p_reason, p_by, null::text, null::public.refund_status, p_now);
    v_left := v_left - v_refund.amount_cents;
    v_done := v_done + v_refund.amount_cents;
  end loop;
  return v_done;
end
$$;
revoke execute on function private.refund_session(uuid, int, text, text, uuid, timestamptz) from public;
grant execute on function private.refund_session(uuid, int, text, text, uuid, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- The customer objects: report_problem within payments.payout_hold after the end
-- ---------------------------------------------------------------------------------------------
create or replace function public.report_problem(p_session_id uuid, p_reason text) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_reason text := private.check_text('p_reason', p_reason, true);
  v_session public.sessions;
  v_report public.session_problem_reports;
begin
  perform private.require_arg('p_session_id', p_session_id);
  select * into v_session from public.sessions where id = p_session_id for update;
  if not found or (v_session.customer_id <> v_uid and v_session.mechanic_id is distinct from v_uid) then
    perform private.raise_error('not_found', 'no such session');
  end if;
  if v_session.customer_id <> v_uid then
    perform private.raise_error('not_allowed', 'only the session''s customer can report a problem');
  end if;
  if v_session.status <> 'completed' then
    perform private.raise_error('invalid_transition',
      format('the session is %s: a problem is reported after it ended', v_session.status));
  end if;
  if exists (select 1 from public.session_delivery_decisions d where d.session_id = p_session_id) then
    perform private.raise_error('delivery_already_decided', 'an admin already decided this session');
  end if;
  if exists (select 1 from public.session_problem_reports r where r.session_id = p_session_id) then
    perform private.raise_error('problem_already_reported', 'a problem with this session was already reported');
  end if;
  if v_session.delivery = 'unverified' then
    perform private.raise_error('conflict', 'the session is unverified: it already waits for an admin decision');
  end if;
  -- the window: until the payouts' release (a payout already released closes it too)
  if now() >= v_session.ended_at + private.setting_interval('payments.payout_hold')
     or exists (select 1 from public.payouts p where p.session_id = p_session_id
                and p.status not in ('waiting', 'cancelled')) then
    perform private.raise_error('report_window_closed',
      format('problems are reported within %s of the session''s end', private.setting_text('payments.payout_hold')));
  end if;
  insert into public.session_problem_reports (session_id, customer_id, reason)
  values (p_session_id, v_uid, v_reason)
  returning * into v_report;
  perform private.refresh_payouts(p_session_id, now());
  return jsonb_build_object('session_id', p_session_id, 'status', 'reported', 'reported_at', v_report.reported_at,
                            'payouts_waiting', (select count(*) from public.payouts p
                                                where p.session_id = p_session_id and p.status = 'waiting'));
end
$$;
revoke execute on function public.report_problem(uuid, text) from public, anon;
grant execute on function public.report_problem(uuid, text) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- The admin decides an unverified or reported session: pay, refund, or partial
-- ---------------------------------------------------------------------------------------------
create or replace function public.admin_resolve_delivery(p_session_id uuid, p_outcome text,
                                                         p_refund_cents int default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_admin uuid := private.require_admin();
  v_session public.sessions;
  v_refundable int;
  v_refunded int := 0;
  v_reason text;
begin
  if p_session_id is null or p_outcome is null or p_outcome not in ('pay', 'refund', 'partial') then
    perform private.raise_error('invalid_input', 'p_session_id and p_outcome (pay, refund or partial) are required');
  end if;
  if (p_outcome = 'partial') <> (p_refund_cents is not null) then
    perform private.raise_error('invalid_input', 'p_refund_cents is given for partial, and only for partial');
  end if;
  perform 1 from public.sessions where id = p_session_id;
  if not found then
    perform private.raise_error('not_found', 'no such session');
  end if;
  perform private.lock_session_for_refund(p_session_id);
  select * into v_session from public.sessions where id = p_session_id;
  if exists (select 1 from public.session_delivery_decisions d where d.session_id = p_session_id) then
    perform private.raise_error('delivery_already_decided', 'this session was already decided');
  end if;
  if v_session.status <> 'completed'
     or (v_session.delivery = 'delivered'
         and not exists (select 1 from public.session_problem_reports r where r.session_id = p_session_id)) then
    perform private.raise_error('nothing_to_decide', 'the session is neither unverified nor reported');
  end if;
  v_refundable := private.session_refundable_cents(p_session_id);
  if p_outcome = 'partial' and (p_refund_cents < 1 or p_refund_cents >= v_refundable) then
    perform private.raise_error('invalid_input',
      format('p_refund_cents must be between 1 and %s', greatest(v_refundable - 1, 0)));
  end if;
  v_reason := 'delivery decided by an admin: ' || p_outcome;
  perform private.set_actor('admin', v_reason);
  -- the decision first: settlement and the payout rule read it
  insert into public.session_delivery_decisions (session_id, outcome, decided_by)
  values (p_session_id, p_outcome, v_admin);
  if p_outcome in ('refund', 'partial') and v_refundable > 0 then
    v_refunded := private.refund_session(p_session_id, case when p_outcome = 'partial' then p_refund_cents end,
                                         'admin', v_reason, v_admin, now());
  end if;
  if p_outcome in ('pay', 'partial') and v_session.delivery = 'unverified' then
    perform private.settle_payment(p_session_id, now());
  end if;
  update public.session_delivery_decisions set refund_cents = v_refunded where session_id = p_session_id;
  perform private.refresh_payouts(p_session_id, now());
  return jsonb_build_object(
    'session_id', p_session_id, 'outcome', p_outcome, 'refund_cents', v_refunded, 'decided_by', v_admin,
    'payouts', coalesce((select jsonb_agg(jsonb_build_object('payout_id', p.id, 'amount_cents', p.amount_cents,
                                                             'status', p.status, 'waiting_reason', p.waiting_reason)
                                          order by p.id)
                         from public.payouts p where p.session_id = p_session_id), '[]'::jsonb));
end
$$;
revoke execute on function public.admin_resolve_delivery(uuid, text, int) from public, anon;
grant execute on function public.admin_resolve_delivery(uuid, text, int) to authenticated, service_role;

-- Admin: the sessions that wait for a decision (unverified, or reported within the window).
create or replace function public.admin_delivery_queue() returns setof jsonb
language plpgsql stable security definer set search_path = ''
as $$
begin
  perform private.require_admin();
  return query
    select jsonb_build_object(
             'session_id', s.id, 'kind', case when r.session_id is not null then 'reported' else 'unverified' end,
             'delivery', s.delivery, 'customer_id', s.customer_id, 'mechanic_id', s.mechanic_id,
             'session_type', s.session_type, 'plan_code', s.plan_code, 'started_at', s.started_at,
             'ended_at', s.ended_at, 'duration_minutes', s.duration_minutes,
             'paid_cents', (select coalesce(sum(p.amount_cents), 0) from public.payments p where p.session_id = s.id),
             'refundable_cents', private.session_refundable_cents(s.id),
             'report_reason', r.reason, 'reported_at', r.reported_at,
             'auto_refund_at', case when s.delivery = 'unverified'
                                    then s.ended_at + private.setting_interval('trust.unverified_refund_after') end)
    from public.sessions s
    left join public.session_problem_reports r on r.session_id = s.id
    where s.status = 'completed' and (s.delivery = 'unverified' or r.session_id is not null)
      and not exists (select 1 from public.session_delivery_decisions d where d.session_id = s.id)
    order by s.ended_at, s.id;
end
$$;
revoke execute on function public.admin_delivery_queue() from public, anon;
grant execute on function public.admin_delivery_queue() to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- The scheduled job `delivery` (jobs/schedules.sql): release payouts whose window ended; refund
-- unverified sessions no admin decided in time.
-- ---------------------------------------------------------------------------------------------
create or replace function private.release_held_payouts(p_now timestamptz default now(), p_limit int default 200)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_session_id uuid;
  v_released int := 0;
  v_sessions int := 0;
begin
  for v_session_id in
    select distinct p.session_id from public.payouts p
    where p.status = 'waiting' and p.release_at <= p_now and p.waiting_reason like 'objection window%'
    limit p_limit
  loop
    -- the session lock orders this with report_problem and admin_resolve_delivery
    perform 1 from public.sessions where id = v_session_id for update;
    v_released := v_released + private.refresh_payouts(v_session_id, p_now);
    v_sessions := v_sessions + 1;
  end loop;
  return jsonb_build_object('hold_sessions_checked', v_sessions, 'payouts_released', v_released);
end
$$;
revoke execute on function private.release_held_payouts(timestamptz, int) from public;
grant execute on function private.release_held_payouts(timestamptz, int) to service_role;

create or replace function private.refund_unverified_sessions(p_now timestamptz default now(), p_limit int default 200)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_session_id uuid;
  v_count int := 0;
  v_refunded int;
  v_prev text[];
begin
  for v_session_id in
    select s.id from public.sessions s
    where s.delivery = 'unverified'
      and s.ended_at <= p_now - private.setting_interval('trust.unverified_refund_after')
      and not exists (select 1 from public.session_delivery_decisions d where d.session_id = s.id)
    order by s.ended_at limit p_limit
  loop
    perform private.lock_session_for_refund(v_session_id);
    continue when exists (select 1 from public.session_delivery_decisions d where d.session_id = v_session_id);
    v_prev := private.lifecycle_actor('system', 'unverified delivery: refunded automatically');
    insert into public.session_delivery_decisions (session_id, outcome, decided_by, reason)
    values (v_session_id, 'refund', null, 'no evidence of delivery and no admin decision in time');
    v_refunded := private.refund_session(v_session_id, null, 'automatic',
                                         'no evidence that the session was delivered', null, now());
    update public.session_delivery_decisions set refund_cents = v_refunded where session_id = v_session_id;
    perform private.lifecycle_actor_restore(v_prev);
    v_count := v_count + 1;
  end loop;
  return jsonb_build_object('unverified_refunded', v_count);
end
$$;
revoke execute on function private.refund_unverified_sessions(timestamptz, int) from public;
grant execute on function private.refund_unverified_sessions(timestamptz, int) to service_role;
