-- Payments: settlement into payouts by the revenue split rules, and the lifecycle hooks.

-- ---------------------------------------------------------------------------------------------
-- Settlement: a completed session's payment is split into payouts by the revenue split rules.
-- ---------------------------------------------------------------------------------------------
-- On shift: the micro-sessions domain will add the flag; until then this reads it from the
-- session row (`on_shift`) or the mechanic row (`currently_on_shift` / `on_shift`, seed 000) when
-- such a column exists, and is false otherwise.
create or replace function private.session_split_kind(p_session public.sessions, p_mechanic public.mechanics)
returns public.split_session_kind
language sql stable set search_path = ''
as $$
  select case
    when p_session.duration_type <> 'micro' then 'default'::public.split_session_kind
    when coalesce((to_jsonb(p_session) ->> 'on_shift')::boolean, (to_jsonb(p_mechanic) ->> 'currently_on_shift')::boolean,
                  (to_jsonb(p_mechanic) ->> 'on_shift')::boolean, false)
      then 'micro_on_shift'::public.split_session_kind
    else 'micro'::public.split_session_kind
  end
$$;
revoke execute on function private.session_split_kind(public.sessions, public.mechanics) from public;
grant execute on function private.session_split_kind(public.sessions, public.mechanics) to service_role;

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
-- extensions), each by the same rule, into one payout per payee.
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
  v_reason text;
begin
  select * into v_session from public.sessions where id = p_session_id;
  select * into v_mechanic from public.mechanics where id = v_session.mechanic_id;
  if v_mechanic.id is not null then
    v_rule := private.split_rule_for(v_mechanic.mechanic_type, private.session_split_kind(v_session, v_mechanic));
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
      v_reason := private.payee_waiting_reason(v_mechanic.id, null);
      insert into public.payouts (payment_id, session_id, payee_kind, mechanic_id, share_bps, original_amount_cents,
                                  amount_cents, currency, status, waiting_reason)
      values (v_payment.id, p_session_id, 'mechanic', v_mechanic.id,
              v_rule.mechanic_bps + case when v_mechanic.organization_id is null then v_rule.workshop_bps else 0 end,
              v_mechanic_cents, v_mechanic_cents, v_payment.currency,
              case when v_reason is null then 'queued'::public.payout_status else 'waiting'::public.payout_status end,
              v_reason);
    end if;
    if v_workshop_cents > 0 then
      v_reason := private.payee_waiting_reason(null, v_mechanic.organization_id);
      insert into public.payouts (payment_id, session_id, payee_kind, organization_id, share_bps, original_amount_cents,
                                  amount_cents, currency, status, waiting_reason)
      values (v_payment.id, p_session_id, 'workshop', v_mechanic.organization_id, v_rule.workshop_bps,
              v_workshop_cents, v_workshop_cents, v_payment.currency,
              case when v_reason is null then 'queued'::public.payout_status else 'waiting'::public.payout_status end,
              v_reason);
    end if;
    update public.payments
    set settled_at = p_now, settled_base_cents = v_base, split_rule_id = v_rule.id,
        platform_fee_cents = v_base - v_mechanic_cents - v_workshop_cents
    where id = v_payment.id;
  end loop;
end
$$;
revoke execute on function private.settle_payment(uuid, timestamptz) from public;
grant execute on function private.settle_payment(uuid, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Hooks on the core lifecycle (added from here: the core files do not know about payments)
-- ---------------------------------------------------------------------------------------------
create or replace function private.tg_sessions__payments() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if new.status = 'completed' then
    perform private.settle_payment(new.id, now());
  elsif new.status = 'cancelled' and exists (
      select 1 from jsonb_array_elements_text(private.setting('payments.auto_refund_from_statuses')) s
      where s = old.status::text) then
    perform private.auto_refund(new.id, coalesce(new.cancel_reason, 'cancelled before a mechanic took it'), now());
  end if;
  return null;
end
$$;
revoke execute on function private.tg_sessions__payments() from public;
drop trigger if exists _400_payments on public.sessions;
create trigger _400_payments after update of status on public.sessions
  for each row when (old.status is distinct from new.status and new.status in ('completed', 'cancelled'))
  execute function private.tg_sessions__payments();

-- A request that expires had no mechanic: its session's payment is refunded (the session is then
-- cancelled by the refund), whether or not the expiry sweep also cancels the session.
create or replace function private.tg_session_requests__payments() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if exists (select 1 from public.sessions s where s.id = new.session_id and s.status::text in (
               select jsonb_array_elements_text(private.setting('payments.auto_refund_from_statuses')))) then
    perform private.auto_refund(new.session_id, coalesce(new.cancel_reason, 'no mechanic took the request in time'),
                                now());
  end if;
  return null;
end
$$;
revoke execute on function private.tg_session_requests__payments() from public;
drop trigger if exists _400_payments on public.session_requests;
create trigger _400_payments after update of status on public.session_requests
  for each row when (old.status is distinct from new.status and new.status = 'expired')
  execute function private.tg_session_requests__payments();
