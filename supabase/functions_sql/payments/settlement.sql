-- Payments: settlement into payouts by the revenue split rules, and the lifecycle steps.

-- ---------------------------------------------------------------------------------------------
-- Settlement: a completed session's payment is split into payouts by the revenue split rules.
-- ---------------------------------------------------------------------------------------------
-- Which split rule applies: a micro session on the mechanic's shift (recorded on the session when
-- it was accepted) is `micro_on_shift`, another micro session `micro`, the rest `default`.
create or replace function private.session_split_kind(p_session public.sessions)
returns public.split_session_kind
language sql immutable set search_path = ''
as $$
  select case
    when p_session.duration_type <> 'micro' then 'default'::public.split_session_kind
    when p_session.on_shift then 'micro_on_shift'::public.split_session_kind
    else 'micro'::public.split_session_kind
  end
$$;
revoke execute on function private.session_split_kind(public.sessions) from public;
grant execute on function private.session_split_kind(public.sessions) to service_role;

-- The most specific rule: (type, kind), then (type, micro) for an on-shift micro session, then
-- (type, default).
create or replace function private.split_rule_for(p_type public.mechanic_type, p_kind public.split_session_kind)
returns public.revenue_split_rules
language sql stable security definer set search_path = ''
as $$
  select r.* from public.revenue_split_rules r
  where r.mechanic_type = p_type
    and r.session_kind in (p_kind, case when p_kind = 'micro_on_shift' then 'micro'::public.split_session_kind end,
                           'default')
  order by case r.session_kind when p_kind then 0 when 'micro' then 1 else 2 end
  limit 1
$$;
revoke execute on function private.split_rule_for(public.mechanic_type, public.split_session_kind) from public;
grant execute on function private.split_rule_for(public.mechanic_type, public.split_session_kind) to service_role;

-- Splits every unsettled payment of a completed session (its own payment and any paid
-- extensions), each by the same rule, into one payout per payee. The payouts are created waiting,
-- released at the session's end + payments.payout_hold (the objection window), and then only as
-- private.payout_wait_reason allows (trust/delivery.sql). An unverified session no admin decided
-- is never settled.
create or replace function private.settle_payment(p_session_id uuid, p_now timestamptz default now()) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_payment public.payments;
  v_session public.sessions;
  v_mechanic public.mechanics;
  v_rule public.revenue_split_rules;
  v_base int;
  v_mechanic_cents int;
  v_workshop_cents int;
  v_release timestamptz;
begin
  select * into v_session from public.sessions where id = p_session_id;
  if v_session.delivery = 'unverified'
     and not exists (select 1 from public.session_delivery_decisions d where d.session_id = p_session_id) then
    return;
  end if;
  v_release := coalesce(v_session.ended_at, p_now) + private.setting_interval('payments.payout_hold');
  select * into v_mechanic from public.mechanics where id = v_session.mechanic_id;
  if v_mechanic.id is not null then
    v_rule := private.split_rule_for(v_mechanic.mechanic_type, private.session_split_kind(v_session));
  end if;
  for v_payment in
    select * from public.payments where session_id = p_session_id and settled_at is null
    order by paid_at, id for update
  loop
    v_base := v_payment.amount_cents - coalesce((select sum(r.amount_cents) from public.refunds r
                                                 where r.payment_id = v_payment.id
                                                   and r.status not in ('failed', 'canceled')), 0);
    if v_base <= 0 or v_mechanic.id is null then
      update public.payments set settled_at = p_now, settled_base_cents = greatest(v_base, 0),
             platform_fee_cents = greatest(v_base, 0)
      where id = v_payment.id;
      continue;
    end if;
    v_mechanic_cents := floor(v_base::numeric * v_rule.mechanic_bps / 10000)::int;
    v_workshop_cents := floor(v_base::numeric * v_rule.workshop_bps / 10000)::int;
    if v_mechanic.organization_id is null then  -- no workshop to pay: its share goes to the mechanic
      v_mechanic_cents := v_mechanic_cents + v_workshop_cents;
      v_workshop_cents := 0;
    end if;

    if v_mechanic_cents > 0 then
      insert into public.payouts (payment_id, session_id, payee_kind, mechanic_id, share_bps, original_amount_cents,
                                  amount_cents, currency, status, waiting_reason, release_at)
      values (v_payment.id, p_session_id, 'mechanic', v_mechanic.id,
              v_rule.mechanic_bps + case when v_mechanic.organization_id is null then v_rule.workshop_bps else 0 end,
              v_mechanic_cents, v_mechanic_cents, v_payment.currency, 'waiting', 'settling', v_release);
    end if;
    if v_workshop_cents > 0 then
      insert into public.payouts (payment_id, session_id, payee_kind, organization_id, share_bps, original_amount_cents,
                                  amount_cents, currency, status, waiting_reason, release_at)
      values (v_payment.id, p_session_id, 'workshop', v_mechanic.organization_id, v_rule.workshop_bps,
              v_workshop_cents, v_workshop_cents, v_payment.currency, 'waiting', 'settling', v_release);
    end if;
    update public.payments
    set settled_at = p_now, settled_base_cents = v_base, split_rule_id = v_rule.id,
        platform_fee_cents = v_base - v_mechanic_cents - v_workshop_cents
    where id = v_payment.id;
  end loop;
  perform private.refresh_payouts(p_session_id, p_now);  -- each payout's reason to wait, or queued
end
$$;
revoke execute on function private.settle_payment(uuid, timestamptz) from public;
grant execute on function private.settle_payment(uuid, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Lifecycle steps (called from core/lifecycle.sql; completing calls private.settle_payment above)
-- ---------------------------------------------------------------------------------------------
drop trigger if exists _400_payments on public.sessions;
drop function if exists private.tg_sessions__payments();
drop trigger if exists _400_payments on public.session_requests;
drop function if exists private.tg_session_requests__payments();

-- A paid session cancelled before a mechanic took it (from payments.auto_refund_from_statuses),
-- whatever path cancelled it, is refunded in full.
create or replace function private.payments_on_session_cancelled(
  p_session_id uuid, p_from public.session_status, p_now timestamptz default now()
) returns void
language plpgsql security definer set search_path = ''
as $$
begin
  if exists (select 1 from jsonb_array_elements_text(private.setting('payments.auto_refund_from_statuses')) s
             where s = p_from::text) then
    perform private.auto_refund(p_session_id,
      coalesce((select s.cancel_reason from public.sessions s where s.id = p_session_id),
               'cancelled before a mechanic took it'), p_now);
  end if;
end
$$;
revoke execute on function private.payments_on_session_cancelled(uuid, public.session_status, timestamptz) from public;
grant execute on function private.payments_on_session_cancelled(uuid, public.session_status, timestamptz)
  to service_role;

-- A request that expired had no mechanic: its session's payment is refunded in full (the refund
-- then cancels the session).
create or replace function private.payments_on_request_expired(p_session_id uuid, p_now timestamptz default now())
returns void
language plpgsql security definer set search_path = ''
as $$
begin
  if exists (select 1 from public.sessions s where s.id = p_session_id and s.status::text in (
               select jsonb_array_elements_text(private.setting('payments.auto_refund_from_statuses')))) then
    perform private.auto_refund(p_session_id,
      coalesce((select r.cancel_reason from public.session_requests r where r.session_id = p_session_id),
               'no mechanic took the request in time'), p_now);
  end if;
end
$$;
revoke execute on function private.payments_on_request_expired(uuid, timestamptz) from public;
grant execute on function private.payments_on_request_expired(uuid, timestamptz) to service_role;
