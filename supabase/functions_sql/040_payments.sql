-- Payments: checkout and credit bookings, the Stripe webhook ledger and its handlers, refunds
-- (automatic on cancellation, admin full or partial), settlement into payouts by the revenue
-- split rules, the claim/record steps of the Stripe worker, Connect accounts, customer credit,
-- and the money integrity views. Re-applied by the runner whenever this file changes: every
-- object is created with `create or replace` or dropped first.
--
-- Locking order everywhere: booking → payment → refund / payouts → credit (advisory, per customer).
-- Stripe is never called from here: the Python side claims rows, commits, calls, then records.

-- ---------------------------------------------------------------------------------------------
-- Small helpers
-- ---------------------------------------------------------------------------------------------
-- A Stripe reference that is either an id or an expanded object.
create or replace function private.stripe_id(p_value jsonb) returns text
language sql immutable parallel safe set search_path = ''
as $$
  select case jsonb_typeof(p_value) when 'string' then p_value #>> '{}' when 'object' then p_value ->> 'id' end
$$;
revoke execute on function private.stripe_id(jsonb) from public;
grant execute on function private.stripe_id(jsonb) to service_role;

-- When a failed Stripe call is tried again: base × 2^(attempts-1), at most retry_max.
create or replace function private.payments_retry_at(p_attempts int, p_now timestamptz) returns timestamptz
language sql stable security definer set search_path = ''
as $$
  select p_now + least(private.setting_interval('payments.retry_max'),
                        private.setting_interval('payments.retry_base') * power(2, least(greatest(p_attempts, 1) - 1, 20)))
$$;
revoke execute on function private.payments_retry_at(int, timestamptz) from public;
grant execute on function private.payments_retry_at(int, timestamptz) to service_role;

-- Why a payee cannot receive transfers now (null when it can).
create or replace function private.payee_waiting_reason(p_mechanic_id uuid, p_organization_id uuid) returns text
language sql stable security definer set search_path = ''
as $$
  select case
    when a.id is null then 'no payout account: the payee has not set up payouts'
    when not a.transfers_active then 'the payout account cannot receive transfers yet (transfers capability not active)'
  end
  from (select 1) one
  left join public.payout_accounts a
    on (p_mechanic_id is not null and a.mechanic_id = p_mechanic_id)
    or (p_organization_id is not null and a.organization_id = p_organization_id)
$$;
revoke execute on function private.payee_waiting_reason(uuid, uuid) from public;
grant execute on function private.payee_waiting_reason(uuid, uuid) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Table triggers: updated_at, append-only credit ledger, default split rules stay
-- ---------------------------------------------------------------------------------------------
do $$
declare
  v_table text;
begin
  foreach v_table in array array['revenue_split_rules', 'bookings', 'payments', 'refunds', 'payouts',
                                 'transfer_reversals']
  loop
    execute format('drop trigger if exists _010_set_updated_at on public.%I', v_table);
    execute format('create trigger _010_set_updated_at before update on public.%I '
                   'for each row execute function private.tg__set_updated_at()', v_table);
  end loop;
end
$$;

drop trigger if exists _100_append_only on public.credit_ledger;
create trigger _100_append_only before update or delete on public.credit_ledger
  for each row execute function private.tg__append_only();  -- 010_core_triggers.sql
drop trigger if exists _101_append_only_truncate on public.credit_ledger;
create trigger _101_append_only_truncate before truncate on public.credit_ledger
  for each statement execute function private.tg__append_only();  -- 010_core_triggers.sql

-- Every mechanic type keeps a `default` rule, so settlement always finds one.
create or replace function private.tg_revenue_split_rules__keep_defaults() returns trigger
language plpgsql set search_path = ''
as $$
begin
  if old.session_kind = 'default'
     and (tg_op = 'DELETE' or new.session_kind <> 'default' or new.mechanic_type <> old.mechanic_type) then
    perform private.raise_error('not_allowed', 'the default split rule of a mechanic type can be changed, not removed');
  end if;
  return case when tg_op = 'DELETE' then old else new end;
end
$$;
drop trigger if exists _100_keep_defaults on public.revenue_split_rules;
create trigger _100_keep_defaults before update or delete on public.revenue_split_rules
  for each row execute function private.tg_revenue_split_rules__keep_defaults();

revoke execute on function private.tg_revenue_split_rules__keep_defaults() from public;

-- ---------------------------------------------------------------------------------------------
-- Customer credit
-- ---------------------------------------------------------------------------------------------
-- Serializes one customer's credit entries (transaction-scoped): the balance read and the entry
-- written under it cannot interleave with another debit.
create or replace function private.lock_credit(p_customer_id uuid) returns void
language sql volatile security definer set search_path = ''
as $$ select pg_advisory_xact_lock(hashtextextended('autodoctor.credit:' || p_customer_id::text, 0)) $$;

create or replace function private.credit_balance(p_customer_id uuid) returns int
language sql stable security definer set search_path = ''
as $$
  select coalesce((select l.balance_after_cents from public.credit_ledger l
                   where l.customer_id = p_customer_id order by l.seq desc limit 1), 0)
$$;

-- Appends an entry; a debit beyond the balance is insufficient_credit (AD022). The running
-- balance has a check constraint (>= 0) and (customer, seq) is unique, so even a writer that
-- skipped the lock could not take the balance below zero.
create or replace function private.add_credit_entry(
  p_customer_id uuid,
  p_kind public.credit_entry_kind,
  p_amount_cents int,
  p_currency text default null,
  p_booking_id uuid default null,
  p_refund_id uuid default null,
  p_note text default null,
  p_created_by uuid default null
) returns public.credit_ledger
language plpgsql security definer set search_path = ''
as $$
declare
  v_last public.credit_ledger;
  v_row public.credit_ledger;
  v_currency text;
begin
  if p_customer_id is null or p_kind is null or p_amount_cents is null or p_amount_cents = 0
     or (p_kind = 'debit') <> (p_amount_cents < 0) then
    perform private.raise_error('invalid_input', 'a credit entry needs a customer, a kind and an amount of its sign');
  end if;
  perform private.lock_credit(p_customer_id);
  select * into v_last from public.credit_ledger where customer_id = p_customer_id order by seq desc limit 1;
  v_currency := coalesce(p_currency, v_last.currency, 'usd');
  if v_last.currency is not null and v_last.currency <> v_currency then
    perform private.raise_error('invalid_input', format('credit is held in %s', v_last.currency));
  end if;
  if coalesce(v_last.balance_after_cents, 0) + p_amount_cents < 0 then
    perform private.raise_error('insufficient_credit',
      format('the credit balance is %s cents', coalesce(v_last.balance_after_cents, 0)));
  end if;
  insert into public.credit_ledger (customer_id, seq, kind, amount_cents, balance_after_cents, currency, booking_id,
                                    refund_id, note, created_by)
  values (p_customer_id, coalesce(v_last.seq, 0) + 1, p_kind, p_amount_cents,
          coalesce(v_last.balance_after_cents, 0) + p_amount_cents, v_currency, p_booking_id, p_refund_id,
          left(p_note, 4000), p_created_by)
  returning * into v_row;
  return v_row;
end
$$;
revoke execute on function private.lock_credit(uuid), private.credit_balance(uuid),
  private.add_credit_entry(uuid, public.credit_entry_kind, int, text, uuid, uuid, text, uuid) from public;
grant execute on function private.lock_credit(uuid), private.credit_balance(uuid),
  private.add_credit_entry(uuid, public.credit_entry_kind, int, text, uuid, uuid, text, uuid) to service_role;

-- The balance per customer (RLS of credit_ledger applies: customers see their own).
create or replace view public.credit_balances with (security_invoker = true) as
select distinct on (l.customer_id) l.customer_id, l.balance_after_cents as balance_cents, l.currency,
       l.created_at as updated_at
from public.credit_ledger l
order by l.customer_id, l.seq desc;
grant select on public.credit_balances to authenticated, service_role;
comment on view public.credit_balances is 'Each customer''s credit balance: its last ledger entry''s running balance.';

-- ---------------------------------------------------------------------------------------------
-- Refunds: requested (allocated at once), then sent by the worker; Stripe reports the outcome.
-- ---------------------------------------------------------------------------------------------
create or replace function private.refund_rank(p_status public.refund_status) returns int
language sql immutable parallel safe set search_path = ''
as $$
  select case p_status when 'queued' then 0 when 'processing' then 1 when 'succeeded' then 2 else 3 end
$$;

create or replace function private.refund_status_from_stripe(p_status text) returns public.refund_status
language sql immutable parallel safe set search_path = ''
as $$
  select case p_status
    when 'succeeded' then 'succeeded'::public.refund_status
    when 'failed' then 'failed'::public.refund_status
    when 'canceled' then 'canceled'::public.refund_status
    else 'processing'::public.refund_status  -- pending, requires_action
  end
$$;

-- payments.status follows the refunds that succeeded (money actually returned).
create or replace function private.refresh_payment_status(p_payment_id uuid) returns void
language sql volatile security definer set search_path = ''
as $$
  update public.payments p
  set status = case when r.done = 0 then 'succeeded'::public.payment_status
                    when r.done >= p.amount_cents then 'refunded'::public.payment_status
                    else 'partially_refunded'::public.payment_status end
  from (select coalesce(sum(x.amount_cents) filter (where x.status = 'succeeded'), 0) as done
        from public.refunds x where x.payment_id = p_payment_id) r
  where p.id = p_payment_id
    and p.status is distinct from (case when r.done = 0 then 'succeeded'::public.payment_status
                                        when r.done >= p.amount_cents then 'refunded'::public.payment_status
                                        else 'partially_refunded'::public.payment_status end)
$$;

-- A refund of a settled payment takes the payees' proportional share back: from a payout that
-- was never attempted by lowering its amount, otherwise by a queued transfer reversal. What the
-- payees do not return comes out of the platform's fee. The last refund (nothing left after it)
-- takes back everything that remains, so rounding never leaves a cent behind.
create or replace function private.allocate_refund(p_payment public.payments, p_refund public.refunds, p_all boolean,
                                                   p_now timestamptz)
returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_payout public.payouts;
  v_remaining int;
  v_cut int;
  v_taken int := 0;
begin
  if coalesce(p_payment.settled_base_cents, 0) > 0 then
    for v_payout in
      select * from public.payouts where payment_id = p_payment.id and status <> 'cancelled' order by id for update
    loop
      v_remaining := v_payout.amount_cents
        - coalesce((select sum(v.amount_cents) from public.transfer_reversals v where v.payout_id = v_payout.id), 0);
      v_cut := case when p_all then v_remaining
                    else least(v_remaining, floor(v_payout.original_amount_cents::numeric * p_refund.amount_cents
                                                  / p_payment.settled_base_cents)::int) end;
      continue when v_cut <= 0;
      if v_payout.attempts = 0 and v_payout.status in ('waiting', 'queued') then
        update public.payouts
        set amount_cents = amount_cents - v_cut,
            status = case when amount_cents - v_cut = 0 then 'cancelled'::public.payout_status else status end
        where id = v_payout.id;
      else
        insert into public.transfer_reversals (payout_id, refund_id, amount_cents, next_attempt_at)
        values (v_payout.id, p_refund.id, v_cut, p_now);
      end if;
      v_taken := v_taken + v_cut;
    end loop;
  end if;
  update public.payments set platform_fee_cents = platform_fee_cents - (p_refund.amount_cents - v_taken)
  where id = p_payment.id;
end
$$;

-- Moves a refund forward (queued → processing → succeeded → failed/canceled; never back). A
-- refund that fails after the payment was settled leaves the money with the platform (its fee
-- grows by the amount): the payees' share was already taken back.
create or replace function private.set_refund_status(
  p_refund_id uuid, p_status public.refund_status, p_error text default null, p_now timestamptz default now()
) returns boolean
language plpgsql security definer set search_path = ''
as $$
declare
  v_refund public.refunds;
  v_settled timestamptz;
begin
  select * into v_refund from public.refunds where id = p_refund_id for update;
  if not found or private.refund_rank(p_status) <= private.refund_rank(v_refund.status) then
    return false;
  end if;
  update public.refunds
  set status = p_status, succeeded_at = case when p_status = 'succeeded' then p_now else succeeded_at end,
      last_error = coalesce(left(p_error, 2000), last_error), claimed_at = null
  where id = p_refund_id;
  if p_status in ('failed', 'canceled') and v_refund.status not in ('failed', 'canceled') then
    select settled_at into v_settled from public.payments where id = v_refund.payment_id;
    if v_settled is not null then
      update public.payments set platform_fee_cents = platform_fee_cents + v_refund.amount_cents
      where id = v_refund.payment_id;
    end if;
  end if;
  perform private.refresh_payment_status(v_refund.payment_id);
  return true;
end
$$;

-- Takes a session's request and session row locks, in the order every lifecycle path takes
-- them (request → session → payment): a refund that may cancel the session locks these before
-- the payment, so it never deadlocks with a customer cancelling or the expiry sweep.
create or replace function private.lock_session_for_refund(p_session_id uuid) returns void
language plpgsql security definer set search_path = ''
as $$
begin
  if p_session_id is not null then
    perform 1 from public.session_requests where session_id = p_session_id for update;
    perform 1 from public.sessions where id = p_session_id for update;
  end if;
end
$$;

-- Records a refund of `p_payment_id` (null amount: all that remains). A card refund is queued for
-- the worker (or, from Stripe, recorded as Stripe reports it); a credit refund goes back to the
-- customer's credit at once. A payment that is then fully refunded cancels its session if the
-- session has not started (nobody should serve a refunded request).
create or replace function private.request_refund(
  p_payment_id uuid,
  p_amount_cents int,
  p_origin text,
  p_reason text,
  p_requested_by uuid default null,
  p_stripe_refund_id text default null,
  p_status public.refund_status default null,
  p_now timestamptz default now()
) returns public.refunds
language plpgsql security definer set search_path = ''
as $$
declare
  v_payment public.payments;
  v_open int;
  v_refundable int;
  v_amount int;
  v_refund public.refunds;
  v_victim public.refunds;
  v_session_status public.session_status;
begin
  select * into v_payment from public.payments where id = p_payment_id for update;
  if not found then
    perform private.raise_error('not_found', 'no such payment');
  end if;
  select coalesce(sum(amount_cents) filter (where status not in ('failed', 'canceled')), 0) into v_open
  from public.refunds where payment_id = p_payment_id;
  v_refundable := v_payment.amount_cents - v_open;
  v_amount := coalesce(p_amount_cents, v_refundable);

  if p_origin = 'stripe' then
    -- Stripe already moved the money: record it. Our own refunds not yet sent make room for it.
    while v_amount > v_refundable loop
      select * into v_victim from public.refunds
      where payment_id = p_payment_id and status = 'queued' and stripe_refund_id is null and destination = 'card'
      order by seq desc limit 1;
      exit when not found;
      perform private.set_refund_status(v_victim.id, 'canceled', 'superseded by a refund made in Stripe', p_now);
      v_refundable := v_refundable + v_victim.amount_cents;
    end loop;
  elsif v_amount is null or v_amount <= 0 or v_amount > v_refundable then
    perform private.raise_error('refund_too_large',
      format('%s cents remain refundable on this payment', greatest(v_refundable, 0)));
  end if;

  insert into public.refunds (payment_id, customer_id, seq, amount_cents, currency, destination, origin, reason,
                              requested_by, status, stripe_refund_id, next_attempt_at)
  values (v_payment.id, v_payment.customer_id,
          coalesce((select max(seq) from public.refunds where payment_id = v_payment.id), 0) + 1,
          v_amount, v_payment.currency, v_payment.method, p_origin, left(p_reason, 4000), p_requested_by,
          case when v_payment.method = 'credit' then 'succeeded'::public.refund_status
               else coalesce(p_status, 'queued'::public.refund_status) end,
          p_stripe_refund_id, p_now)
  returning * into v_refund;
  if v_refund.status = 'succeeded' then
    update public.refunds set succeeded_at = p_now where id = v_refund.id returning * into v_refund;
  end if;

  if v_payment.method = 'credit' then
    perform private.add_credit_entry(v_payment.customer_id, 'refund', v_amount, v_payment.currency, null, v_refund.id,
                                     coalesce(p_reason, 'refund'), p_requested_by);
  end if;
  if v_refund.status not in ('failed', 'canceled') then
    if v_payment.settled_at is not null then
      perform private.allocate_refund(v_payment, v_refund, v_amount >= v_refundable, p_now);
    end if;
    if v_amount >= v_refundable and v_payment.session_id is not null then
      -- Callers that may get here took the request and session locks first
      -- (private.lock_session_for_refund, or the lifecycle update that fired the trigger).
      select status into v_session_status from public.sessions where id = v_payment.session_id;
      if v_session_status in ('pending', 'scheduled', 'waiting') then
        perform private.cancel_session(v_payment.session_id, coalesce(left(p_reason, 4000), 'refunded'), p_now);
      end if;
    end if;
  end if;
  perform private.refresh_payment_status(v_payment.id);
  return v_refund;
end
$$;

-- A paid session cancelled before any mechanic took it (or whose request expired) is refunded in
-- full, whatever path cancelled it.
create or replace function private.auto_refund(p_session_id uuid, p_reason text, p_now timestamptz default now())
returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_payment public.payments;
  v_open int;
begin
  -- the session's own payment and any paid extensions
  for v_payment in
    select * from public.payments where session_id = p_session_id order by paid_at, id for update
  loop
    select coalesce(sum(amount_cents) filter (where status not in ('failed', 'canceled')), 0) into v_open
    from public.refunds where payment_id = v_payment.id;
    if v_payment.amount_cents - v_open > 0 then
      perform private.request_refund(v_payment.id, null, 'automatic', p_reason, null, null, null, p_now);
    end if;
  end loop;
end
$$;

revoke execute on function private.lock_session_for_refund(uuid) from public;
grant execute on function private.lock_session_for_refund(uuid) to service_role;
revoke execute on function private.refund_rank(public.refund_status), private.refund_status_from_stripe(text),
  private.refresh_payment_status(uuid), private.allocate_refund(public.payments, public.refunds, boolean, timestamptz),
  private.set_refund_status(uuid, public.refund_status, text, timestamptz),
  private.request_refund(uuid, int, text, text, uuid, text, public.refund_status, timestamptz),
  private.auto_refund(uuid, text, timestamptz) from public;
grant execute on function private.refund_rank(public.refund_status), private.refund_status_from_stripe(text),
  private.refresh_payment_status(uuid), private.allocate_refund(public.payments, public.refunds, boolean, timestamptz),
  private.set_refund_status(uuid, public.refund_status, text, timestamptz),
  private.request_refund(uuid, int, text, text, uuid, text, public.refund_status, timestamptz),
  private.auto_refund(uuid, text, timestamptz) to service_role;

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
                                  amount_cents, currency, status, waiting_reason, next_attempt_at)
      values (v_payment.id, p_session_id, 'mechanic', v_mechanic.id,
              v_rule.mechanic_bps + case when v_mechanic.organization_id is null then v_rule.workshop_bps else 0 end,
              v_mechanic_cents, v_mechanic_cents, v_payment.currency,
              case when v_reason is null then 'queued'::public.payout_status else 'waiting'::public.payout_status end,
              v_reason, p_now);
    end if;
    if v_workshop_cents > 0 then
      v_reason := private.payee_waiting_reason(null, v_mechanic.organization_id);
      insert into public.payouts (payment_id, session_id, payee_kind, organization_id, share_bps, original_amount_cents,
                                  amount_cents, currency, status, waiting_reason, next_attempt_at)
      values (v_payment.id, p_session_id, 'workshop', v_mechanic.organization_id, v_rule.workshop_bps,
              v_workshop_cents, v_workshop_cents, v_payment.currency,
              case when v_reason is null then 'queued'::public.payout_status else 'waiting'::public.payout_status end,
              v_reason, p_now);
    end if;
    update public.payments
    set settled_at = p_now, settled_base_cents = v_base, split_rule_id = v_rule.id,
        platform_fee_cents = v_base - v_mechanic_cents - v_workshop_cents
    where id = v_payment.id;
  end loop;
end
$$;
revoke execute on function private.session_split_kind(public.sessions, public.mechanics),
  private.split_rule_for(public.mechanic_type, public.split_session_kind), private.settle_payment(uuid, timestamptz)
  from public;
grant execute on function private.session_split_kind(public.sessions, public.mechanics),
  private.split_rule_for(public.mechanic_type, public.split_session_kind), private.settle_payment(uuid, timestamptz)
  to service_role;

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
drop trigger if exists _400_payments on public.session_requests;
create trigger _400_payments after update of status on public.session_requests
  for each row when (old.status is distinct from new.status and new.status = 'expired')
  execute function private.tg_session_requests__payments();
revoke execute on function private.tg_sessions__payments(), private.tg_session_requests__payments() from public;

-- ---------------------------------------------------------------------------------------------
-- Checkout (called by functions/checkout.py as service_role, with the verified customer id)
-- ---------------------------------------------------------------------------------------------
-- Validates a paid booking and either pays it with the customer's credit at once (session and
-- request created, credit debited) or records a pending card booking for a Checkout Session. The
-- price always comes from our catalog (plan price + specialist surcharge).
create or replace function private.prepare_checkout(
  p_customer_id uuid,
  p_plan_code text,
  p_intake_id uuid,
  p_vehicle_id uuid,
  p_preferred_mechanic_id uuid,
  p_specialist boolean,
  p_now timestamptz default now()
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_plan public.service_plans;
  v_price int;
  v_intake public.intakes;
  v_vehicle_id uuid;
  v_specialist boolean := coalesce(p_specialist, false);
  v_booking public.bookings;
  v_balance int;
  v_ids jsonb;
  v_payment_id uuid;
begin
  if p_customer_id is null or p_plan_code is null or p_intake_id is null then
    perform private.raise_error('invalid_input', 'plan_code and intake_id are required');
  end if;
  select * into v_plan from public.service_plans where code = p_plan_code and active;
  if not found then
    perform private.raise_error('not_found', format('no active plan %L', left(p_plan_code, 60)));
  end if;
  v_price := private.plan_price_cents(v_plan.code, v_specialist);
  if v_price <= 0 then
    perform private.raise_error('invalid_input', format('plan %s is free: book it with request_session', v_plan.code));
  end if;
  select * into v_intake from public.intakes where id = p_intake_id and customer_id = p_customer_id for update;
  if not found then
    perform private.raise_error('not_found', 'no such intake');
  end if;
  if v_intake.status <> 'new' then
    perform private.raise_error('conflict', format('the intake is %s, not new', v_intake.status));
  end if;
  v_vehicle_id := coalesce(p_vehicle_id, v_intake.vehicle_id);
  if v_vehicle_id is not null then
    perform 1 from public.vehicles where id = v_vehicle_id and owner_id = p_customer_id;
    if not found then
      perform private.raise_error('not_found', 'no such vehicle');
    end if;
  end if;
  if p_preferred_mechanic_id is not null then
    if p_preferred_mechanic_id = p_customer_id then
      perform private.raise_error('invalid_input', 'the preferred mechanic cannot be the customer');
    end if;
    perform 1 from public.mechanics where id = p_preferred_mechanic_id and status = 'approved';
    if not found then
      perform private.raise_error('not_found', 'no such approved mechanic');
    end if;
  end if;

  -- Credit that covers the whole price pays at once (decided under the customer's credit lock).
  perform private.lock_credit(p_customer_id);
  v_balance := private.credit_balance(p_customer_id);
  if v_balance >= v_price then
    insert into public.bookings (customer_id, plan_code, intake_id, vehicle_id, preferred_mechanic_id, specialist,
                                 price_cents, currency, method, status, status_changed_at)
    values (p_customer_id, v_plan.code, v_intake.id, v_vehicle_id, p_preferred_mechanic_id, v_specialist, v_price,
            v_plan.currency, 'credit', 'pending', p_now)
    returning * into v_booking;
    perform private.add_credit_entry(p_customer_id, 'debit', -v_price, v_plan.currency, v_booking.id, null,
                                     format('%s booking', v_plan.code), p_customer_id);
    perform private.set_actor('customer', 'paid with credit');
    v_ids := private.create_session_request(p_customer_id, v_plan.code, v_intake.id, v_vehicle_id,
                                            p_preferred_mechanic_id, v_specialist, v_price, p_now);
    update public.bookings set status = 'paid', session_id = (v_ids ->> 'session_id')::uuid, status_changed_at = p_now
    where id = v_booking.id;
    insert into public.payments (booking_id, customer_id, session_id, method, amount_cents, currency, transfer_group,
                                 paid_at)
    values (v_booking.id, p_customer_id, (v_ids ->> 'session_id')::uuid, 'credit', v_price, v_plan.currency,
            'booking_' || v_booking.id::text, p_now)
    returning id into v_payment_id;
    return jsonb_build_object('mode', 'credit', 'booking_id', v_booking.id, 'payment_id', v_payment_id,
                              'session_id', v_ids ->> 'session_id', 'request_id', v_ids ->> 'request_id',
                              'price_cents', v_price, 'currency', v_plan.currency,
                              'credit_balance_cents', v_balance - v_price);
  end if;

  -- The same open checkout again (a double click, a retry): its URL is still good.
  select * into v_booking from public.bookings b
  where b.intake_id = v_intake.id and b.customer_id = p_customer_id and b.status = 'pending' and b.method = 'card'
    and b.plan_code = v_plan.code and b.specialist = v_specialist and b.price_cents = v_price
    and b.vehicle_id is not distinct from v_vehicle_id and b.preferred_mechanic_id is not distinct from p_preferred_mechanic_id
    and b.checkout_url is not null and b.expires_at > p_now + interval '5 minutes'
  order by b.created_at desc
  limit 1;
  if found then
    return jsonb_build_object('mode', 'stripe', 'reused', true, 'booking_id', v_booking.id, 'url', v_booking.checkout_url,
                              'price_cents', v_booking.price_cents, 'currency', v_booking.currency);
  end if;

  insert into public.bookings (customer_id, plan_code, intake_id, vehicle_id, preferred_mechanic_id, specialist,
                               price_cents, currency, method, status, status_changed_at, expires_at)
  values (p_customer_id, v_plan.code, v_intake.id, v_vehicle_id, p_preferred_mechanic_id, v_specialist, v_price,
          v_plan.currency, 'card', 'pending', p_now, p_now + private.setting_interval('payments.checkout_expires_after'))
  returning * into v_booking;
  return jsonb_build_object('mode', 'stripe', 'reused', false, 'booking_id', v_booking.id,
                            'price_cents', v_price, 'currency', v_plan.currency,
                            'product_name', v_plan.name || case when v_specialist then ' + brand specialist' else '' end,
                            'plan_code', v_plan.code, 'customer_id', p_customer_id,
                            'customer_email', (select u.email from auth.users u where u.id = p_customer_id),
                            'expires_at', floor(extract(epoch from v_booking.expires_at))::bigint);
end
$$;

-- A paid extension of a live session (create_checkout with extension_id; the extension comes
-- from public.request_extension). Price and currency come from the extension row. Credit that
-- covers the price pays it at once and the extension is granted; otherwise a pending card booking
-- (naming the session it extends) waits for a Checkout Session. Same answer shape as
-- prepare_checkout. Lock order as in every lifecycle path: request → session, then the
-- extension, then the customer's credit.
create or replace function private.prepare_extension_checkout(
  p_customer_id uuid,
  p_extension_id uuid,
  p_now timestamptz default now()
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_ext public.session_extensions;
  v_session public.sessions;
  v_booking public.bookings;
  v_balance int;
  v_payment_id uuid;
begin
  if p_customer_id is null or p_extension_id is null then
    perform private.raise_error('invalid_input', 'extension_id is required');
  end if;
  select * into v_ext from public.session_extensions where id = p_extension_id;
  if found then
    select * into v_session from public.sessions where id = v_ext.session_id;
  end if;
  if v_ext.id is null or v_session.customer_id is distinct from p_customer_id then
    perform private.raise_error('not_found', 'no such extension');
  end if;
  perform private.lock_session_for_refund(v_session.id);
  select * into v_session from public.sessions where id = v_ext.session_id;
  select * into v_ext from public.session_extensions where id = p_extension_id for update;
  if v_ext.kind <> 'paid' then
    perform private.raise_error('invalid_input', 'this extension is free: it needs no payment');
  end if;
  if v_ext.status <> 'pending_payment' then
    perform private.raise_error('conflict', format('the extension is %s, not pending payment', v_ext.status));
  end if;
  if v_session.status <> 'live' then
    perform private.raise_error('extension_not_allowed',
      format('a %s session cannot be extended', v_session.status));
  end if;
  if v_ext.price_cents <= 0 then
    perform private.raise_error('invalid_input', 'this extension has no price');
  end if;

  -- Credit that covers the whole price pays at once; the session is live and locked: granted.
  perform private.lock_credit(p_customer_id);
  v_balance := private.credit_balance(p_customer_id);
  if v_balance >= v_ext.price_cents then
    insert into public.bookings (customer_id, extension_id, session_id, price_cents, currency, method, status,
                                 status_changed_at)
    values (p_customer_id, v_ext.id, v_session.id, v_ext.price_cents, v_ext.currency, 'credit', 'pending', p_now)
    returning * into v_booking;
    perform private.add_credit_entry(p_customer_id, 'debit', -v_ext.price_cents, v_ext.currency, v_booking.id, null,
                                     format('%s-minute session extension', v_ext.minutes), p_customer_id);
    insert into public.payments (booking_id, customer_id, session_id, extension_id, method, amount_cents, currency,
                                 transfer_group, paid_at)
    values (v_booking.id, p_customer_id, v_session.id, v_ext.id, 'credit', v_ext.price_cents, v_ext.currency,
            'booking_' || v_booking.id::text, p_now)
    returning id into v_payment_id;
    if not private.grant_extension(v_ext.id, p_now) then
      perform private.raise_error('extension_not_allowed', 'the session is no longer live');
    end if;
    update public.bookings set status = 'paid', status_changed_at = p_now where id = v_booking.id;
    return jsonb_build_object('mode', 'credit', 'booking_id', v_booking.id, 'payment_id', v_payment_id,
                              'session_id', v_session.id, 'request_id', null, 'extension_id', v_ext.id,
                              'extension_status', 'granted', 'minutes', v_ext.minutes,
                              'deadline_at', (select s.deadline_at from public.sessions s where s.id = v_session.id),
                              'price_cents', v_ext.price_cents, 'currency', v_ext.currency,
                              'credit_balance_cents', v_balance - v_ext.price_cents);
  end if;

  -- The same open checkout again (a double click, a retry): its URL is still good.
  select * into v_booking from public.bookings b
  where b.extension_id = v_ext.id and b.customer_id = p_customer_id and b.status = 'pending' and b.method = 'card'
    and b.price_cents = v_ext.price_cents and b.checkout_url is not null and b.expires_at > p_now + interval '5 minutes'
  order by b.created_at desc
  limit 1;
  if found then
    return jsonb_build_object('mode', 'stripe', 'reused', true, 'booking_id', v_booking.id, 'url', v_booking.checkout_url,
                              'price_cents', v_booking.price_cents, 'currency', v_booking.currency,
                              'extension_id', v_ext.id, 'session_id', v_session.id);
  end if;

  insert into public.bookings (customer_id, extension_id, session_id, price_cents, currency, method, status,
                               status_changed_at, expires_at)
  values (p_customer_id, v_ext.id, v_session.id, v_ext.price_cents, v_ext.currency, 'card', 'pending', p_now,
          p_now + private.setting_interval('payments.checkout_expires_after'))
  returning * into v_booking;
  return jsonb_build_object('mode', 'stripe', 'reused', false, 'booking_id', v_booking.id,
                            'price_cents', v_ext.price_cents, 'currency', v_ext.currency,
                            'product_name', format('Session extension (%s minutes)', v_ext.minutes),
                            'plan_code', null, 'extension_id', v_ext.id, 'session_id', v_session.id,
                            'customer_id', p_customer_id,
                            'customer_email', (select u.email from auth.users u where u.id = p_customer_id),
                            'expires_at', floor(extract(epoch from v_booking.expires_at))::bigint);
end
$$;
revoke execute on function private.prepare_extension_checkout(uuid, uuid, timestamptz) from public;
grant execute on function private.prepare_extension_checkout(uuid, uuid, timestamptz) to service_role;

-- The Checkout Session created for a pending card booking (after the Stripe call).
create or replace function private.record_checkout_session(p_booking_id uuid, p_checkout_session_id text, p_url text)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_booking public.bookings;
begin
  update public.bookings
  set stripe_checkout_session_id = coalesce(stripe_checkout_session_id, p_checkout_session_id),
      checkout_url = coalesce(checkout_url, p_url)
  where id = p_booking_id and method = 'card'
  returning * into v_booking;
  if not found then
    perform private.raise_error('not_found', 'no such booking');
  end if;
  return jsonb_build_object('booking_id', v_booking.id, 'url', v_booking.checkout_url, 'status', v_booking.status);
end
$$;

-- Stripe refused to create the Checkout Session: the booking failed.
create or replace function private.fail_checkout(p_booking_id uuid, p_reason text, p_now timestamptz default now())
returns void
language sql volatile security definer set search_path = ''
as $$
  update public.bookings set status = 'failed', failure_reason = left(p_reason, 1000), status_changed_at = p_now
  where id = p_booking_id and status = 'pending' and stripe_checkout_session_id is null
$$;
revoke execute on function private.prepare_checkout(uuid, text, uuid, uuid, uuid, boolean, timestamptz),
  private.record_checkout_session(uuid, text, text), private.fail_checkout(uuid, text, timestamptz) from public;
grant execute on function private.prepare_checkout(uuid, text, uuid, uuid, uuid, boolean, timestamptz),
  private.record_checkout_session(uuid, text, text), private.fail_checkout(uuid, text, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Stripe event handlers (each returns an outcome word stored in the ledger)
-- ---------------------------------------------------------------------------------------------
create or replace function private.stripe_record_charge(p_payment_intent_id text, p_charge_id text) returns text
language plpgsql security definer set search_path = ''
as $$
begin
  if p_payment_intent_id is null or p_charge_id is null then
    return 'ignored';
  end if;
  update public.payments set stripe_charge_id = p_charge_id
  where stripe_payment_intent_id = p_payment_intent_id and stripe_charge_id is null;
  return case when found then 'applied' else 'no_change' end;
end
$$;

-- A refund object from Stripe (refund.created / refund.updated, or inside charge.refunded).
create or replace function private.stripe_refund(p_refund jsonb, p_now timestamptz) returns text
language plpgsql security definer set search_path = ''
as $$
declare
  v_stripe_id text := p_refund ->> 'id';
  v_status public.refund_status := private.refund_status_from_stripe(p_refund ->> 'status');
  v_pi text := private.stripe_id(p_refund -> 'payment_intent');
  v_charge text := private.stripe_id(p_refund -> 'charge');
  v_ours uuid := private.try_uuid(p_refund #>> '{metadata,refund_id}');
  v_payment_id uuid;
  v_refund public.refunds;
  v_amount int;
begin
  if v_stripe_id is null or jsonb_typeof(p_refund -> 'amount') <> 'number' then
    return 'ignored';
  end if;
  v_amount := (p_refund ->> 'amount')::int;
  select r.payment_id into v_payment_id from public.refunds r
  where r.stripe_refund_id = v_stripe_id or (v_ours is not null and r.id = v_ours and r.stripe_refund_id is null)
  limit 1;
  if v_payment_id is null then
    select p.id into v_payment_id from public.payments p
    where (v_pi is not null and p.stripe_payment_intent_id = v_pi) or (v_charge is not null and p.stripe_charge_id = v_charge)
    limit 1;
  end if;
  if v_payment_id is null then
    return 'ignored';  -- not a payment of ours (yet: a later checkout.session.completed replays this event)
  end if;
  perform private.lock_session_for_refund((select p.session_id from public.payments p where p.id = v_payment_id));
  perform 1 from public.payments where id = v_payment_id for update;
  perform private.stripe_record_charge(v_pi, v_charge);

  select * into v_refund from public.refunds where stripe_refund_id = v_stripe_id for update;
  if not found and v_ours is not null then
    select * into v_refund from public.refunds where id = v_ours and payment_id = v_payment_id
      and stripe_refund_id is null for update;
  end if;
  if not found then
    -- made outside our API (e.g. the Dashboard): adopt a queued refund of the same amount we have
    -- not sent yet, else record it as Stripe's
    select * into v_refund from public.refunds
    where payment_id = v_payment_id and status = 'queued' and stripe_refund_id is null and destination = 'card'
      and amount_cents = v_amount
    order by seq limit 1 for update;
  end if;
  if found then
    update public.refunds set stripe_refund_id = v_stripe_id where id = v_refund.id and stripe_refund_id is null;
    return case when private.set_refund_status(v_refund.id, v_status, p_refund ->> 'failure_reason', p_now)
                then 'applied' else 'no_change' end;
  end if;
  if v_amount <= 0 then
    return 'ignored';
  end if;
  perform private.request_refund(v_payment_id, v_amount, 'stripe', coalesce(p_refund ->> 'reason', 'refunded in Stripe'),
                                 null, v_stripe_id, v_status, p_now);
  return 'applied';
end
$$;

-- The Checkout Session was paid: record the payment (what Checkout charged), create the session
-- and request once, then replay charge and refund events that arrived before this one.
create or replace function private.stripe_checkout_paid(p_session jsonb, p_now timestamptz) returns text
language plpgsql security definer set search_path = ''
as $$
declare
  v_booking public.bookings;
  v_payment public.payments;
  v_pi text := private.stripe_id(p_session -> 'payment_intent');
  v_preferred uuid;
  v_ids jsonb;
  v_error text;
  v_event record;
  v_ext_status public.extension_status;
begin
  if coalesce(p_session ->> 'payment_status', '') not in ('paid', 'no_payment_required') then
    return 'awaiting_payment';  -- an asynchronous method: checkout.session.async_payment_* follows
  end if;
  select * into v_booking from public.bookings
  where id = private.try_uuid(p_session #>> '{metadata,booking_id}') for update;
  if not found then
    select * into v_booking from public.bookings where stripe_checkout_session_id = p_session ->> 'id' for update;
  end if;
  if not found or v_booking.method <> 'card' or v_booking.stripe_checkout_session_id <> p_session ->> 'id' then
    return 'ignored';  -- not ours, or another Checkout Session than the one recorded for the booking
  end if;
  update public.bookings set stripe_checkout_session_id = p_session ->> 'id'
  where id = v_booking.id and stripe_checkout_session_id is null;
  if v_booking.extension_id is not null then
    -- an extension changes a live session: its locks first, in lifecycle order (request → session)
    perform private.lock_session_for_refund(v_booking.session_id);
  end if;

  insert into public.payments (booking_id, customer_id, session_id, extension_id, method, amount_cents, currency,
                               stripe_checkout_session_id, stripe_payment_intent_id, transfer_group, paid_at)
  values (v_booking.id, v_booking.customer_id, case when v_booking.extension_id is not null then v_booking.session_id end,
          v_booking.extension_id, 'card', coalesce((p_session ->> 'amount_total')::int, v_booking.price_cents),
          coalesce(lower(p_session ->> 'currency'), v_booking.currency), p_session ->> 'id', v_pi,
          'booking_' || v_booking.id::text, p_now)
  on conflict (booking_id) do nothing
  returning * into v_payment;
  if not found then
    return 'already_recorded';
  end if;

  if v_booking.extension_id is not null and v_booking.status in ('pending', 'failed', 'expired') then
    -- a paid session extension: granted if still pending and the session is live; otherwise (the
    -- session ended meanwhile, or the extension was paid or cancelled already) refunded in full
    select status into v_ext_status from public.session_extensions where id = v_booking.extension_id for update;
    if v_ext_status = 'pending_payment' and private.grant_extension(v_booking.extension_id, p_now) then
      update public.bookings set status = 'paid', status_changed_at = p_now, failure_reason = null
      where id = v_booking.id;
      v_ids := jsonb_build_object('session_id', v_booking.session_id, 'extension_id', v_booking.extension_id);
    else
      v_error := case v_ext_status
                   when 'pending_payment' then 'the session ended before the extension was granted'
                   else format('the extension was %s already', v_ext_status) end;
      update public.bookings set status = 'unfulfilled', status_changed_at = p_now,
             failure_reason = left('paid, but the extension could not be granted: ' || v_error, 1000)
      where id = v_booking.id;
      perform private.request_refund(v_payment.id, null, 'unfulfilled', v_error, null, null, null, p_now);
      if (select s.status from public.sessions s where s.id = v_booking.session_id) = 'completed' then
        -- settled already: this payment too (nothing left of it after the refund: no payouts)
        perform private.settle_payment(v_booking.session_id, p_now);
      end if;
    end if;
  elsif v_booking.status in ('pending', 'failed', 'expired') then
    -- a preferred mechanic who is no longer approved is dropped rather than failing a paid booking
    v_preferred := (select m.id from public.mechanics m where m.id = v_booking.preferred_mechanic_id
                    and m.status = 'approved');
    begin
      perform private.set_actor('system', 'paid through checkout');
      if to_jsonb(v_booking) ->> 'hold_id' is not null then
        -- a held slot (scheduling domain, installed when bookings has hold_id): it books the slot
        -- or raises slot_taken, and then this booking is refunded like any unfulfilled one
        execute 'select private.book_paid_hold($1, $2, $3)' into v_ids
          using v_booking.id, v_payment.amount_cents, p_now;
      else
        v_ids := private.create_session_request(v_booking.customer_id, v_booking.plan_code, v_booking.intake_id,
                                                v_booking.vehicle_id, v_preferred, v_booking.specialist,
                                                v_payment.amount_cents, p_now);
      end if;
    exception when others then
      if sqlstate not like 'AD%' then
        raise;
      end if;
      v_error := sqlerrm;
    end;
    if v_ids is not null then
      update public.bookings set status = 'paid', session_id = (v_ids ->> 'session_id')::uuid, status_changed_at = p_now,
             failure_reason = null
      where id = v_booking.id;
      update public.payments set session_id = (v_ids ->> 'session_id')::uuid where id = v_payment.id;
    else
      update public.bookings set status = 'unfulfilled', status_changed_at = p_now,
             failure_reason = left('paid, but the session could not be created: ' || v_error, 1000)
      where id = v_booking.id;
      perform private.request_refund(v_payment.id, null, 'unfulfilled', left(v_error, 4000), null, null, null, p_now);
    end if;
  end if;

  -- charge and refund events of this payment intent that came first (ledger order by created)
  for v_event in
    select e.type, e.payload #> '{data,object}' as obj from private.stripe_events e
    where v_pi is not null and e.payment_intent_id = v_pi and e.processed_at is not null
      and e.type not like 'checkout.session.%'
    order by e.created, e.id
  loop
    perform private.apply_stripe_event(v_event.type, v_event.obj, null, p_now);
  end loop;
  return case when v_ids is not null then 'paid' else 'unfulfilled' end;
end
$$;

-- checkout.session.expired / async_payment_failed: an open booking ends without payment. A
-- failed card attempt (payment_intent.payment_failed) leaves the Checkout open, so its expiry
-- still ends the booking as expired: both orders end the same.
create or replace function private.stripe_checkout_ended(p_session jsonb, p_status public.booking_status,
                                                         p_reason text, p_now timestamptz)
returns text
language plpgsql security definer set search_path = ''
as $$
begin
  update public.bookings set status = p_status, failure_reason = p_reason, status_changed_at = p_now
  where (id = private.try_uuid(p_session #>> '{metadata,booking_id}') or stripe_checkout_session_id = p_session ->> 'id')
    and method = 'card'
    and (status = 'pending' or (status = 'failed' and p_status = 'expired'));
  return case when found then 'applied' else 'no_change' end;
end
$$;

create or replace function private.stripe_payment_failed(p_intent jsonb, p_now timestamptz) returns text
language plpgsql security definer set search_path = ''
as $$
begin
  update public.bookings
  set status = 'failed', status_changed_at = p_now,
      failure_reason = left(coalesce(p_intent #>> '{last_payment_error,message}', 'the payment failed'), 1000)
  where id = private.try_uuid(p_intent #>> '{metadata,booking_id}') and method = 'card' and status = 'pending';
  return case when found then 'applied' else 'no_change' end;
end
$$;

-- account.updated: a snapshot applied only if newer than the stored one (event.created; a tie
-- with a different snapshot asks the worker to refetch the account). `p_force` applies a refetch.
create or replace function private.apply_account_snapshot(p_account jsonb, p_created timestamptz, p_force boolean,
                                                          p_now timestamptz)
returns text
language plpgsql security definer set search_path = ''
as $$
declare
  v_old public.payout_accounts;
  v_new public.payout_accounts;
  v_active boolean := coalesce(p_account #>> '{capabilities,transfers}' = 'active', false);
  v_charges boolean := coalesce((p_account ->> 'charges_enabled')::boolean, false);
  v_payouts boolean := coalesce((p_account ->> 'payouts_enabled')::boolean, false);
  v_details boolean := coalesce((p_account ->> 'details_submitted')::boolean, false);
begin
  select * into v_old from public.payout_accounts where stripe_account_id = p_account ->> 'id' for update;
  if not found then
    return 'ignored';
  end if;
  if not p_force and v_old.stripe_updated_at is not null and p_created <= v_old.stripe_updated_at then
    if p_created < v_old.stripe_updated_at then
      return 'stale';
    end if;
    if (v_old.charges_enabled, v_old.payouts_enabled, v_old.details_submitted, v_old.transfers_active)
       = (v_charges, v_payouts, v_details, v_active) then
      return 'no_change';
    end if;
    update public.payout_accounts set stripe_refresh_requested_at = p_now where id = v_old.id;
    return 'refresh_requested';
  end if;
  update public.payout_accounts
  set charges_enabled = v_charges, payouts_enabled = v_payouts, details_submitted = v_details,
      transfers_active = v_active, stripe_updated_at = p_created, stripe_refresh_requested_at = null
  where id = v_old.id
  returning * into v_new;
  if v_new.transfers_active and not v_old.transfers_active then
    update public.payouts set status = 'queued', waiting_reason = null, next_attempt_at = p_now
    where status = 'waiting' and payee_id = coalesce(v_new.mechanic_id, v_new.organization_id);
  end if;
  return 'applied';
end
$$;

-- One event's effect, by type. Unknown types are acknowledged and stored.
create or replace function private.apply_stripe_event(p_type text, p_object jsonb, p_created timestamptz,
                                                      p_now timestamptz)
returns text
language plpgsql security definer set search_path = ''
as $$
declare
  v_outcome text := 'no_change';
  v_refund jsonb;
begin
  case p_type
    when 'checkout.session.completed', 'checkout.session.async_payment_succeeded' then
      return private.stripe_checkout_paid(p_object, p_now);
    when 'checkout.session.expired' then
      return private.stripe_checkout_ended(p_object, 'expired', 'the checkout expired', p_now);
    when 'checkout.session.async_payment_failed' then
      return private.stripe_checkout_ended(p_object, 'failed', 'the payment failed', p_now);
    when 'payment_intent.payment_failed' then
      return private.stripe_payment_failed(p_object, p_now);
    when 'payment_intent.succeeded' then
      return private.stripe_record_charge(p_object ->> 'id', private.stripe_id(p_object -> 'latest_charge'));
    when 'charge.succeeded', 'charge.captured', 'charge.updated' then
      return private.stripe_record_charge(private.stripe_id(p_object -> 'payment_intent'), p_object ->> 'id');
    when 'charge.refunded' then
      v_outcome := private.stripe_record_charge(private.stripe_id(p_object -> 'payment_intent'), p_object ->> 'id');
      for v_refund in select * from jsonb_array_elements(coalesce(p_object #> '{refunds,data}', '[]'::jsonb)) loop
        if private.stripe_refund(v_refund || jsonb_build_object(
             'payment_intent', coalesce(v_refund -> 'payment_intent', p_object -> 'payment_intent'),
             'charge', coalesce(v_refund -> 'charge', p_object -> 'id')), p_now) = 'applied' then
          v_outcome := 'applied';
        end if;
      end loop;
      return v_outcome;
    when 'refund.created', 'refund.updated', 'charge.refund.updated' then
      return private.stripe_refund(p_object, p_now);
    when 'account.updated' then
      if p_created is null then
        return 'ignored';
      end if;
      return private.apply_account_snapshot(p_object, p_created, false, p_now);
    else
      return 'ignored';
  end case;
end
$$;

-- What an event is about, for replays: the payment intent of a charge, refund or payment intent.
create or replace function private.stripe_event_payment_intent(p_type text, p_object jsonb) returns text
language sql immutable parallel safe set search_path = ''
as $$
  select case
    when p_type like 'payment_intent.%' then p_object ->> 'id'
    when p_type like 'charge.%' or p_type like 'refund.%' then private.stripe_id(p_object -> 'payment_intent')
  end
$$;

-- event.created as a time (null unless a plausible epoch number).
create or replace function private.stripe_event_created(p_event jsonb) returns timestamptz
language sql immutable parallel safe set search_path = ''
as $$
  select case when jsonb_typeof(p_event -> 'created') = 'number' then
           case when (p_event ->> 'created')::numeric between 0 and 100000000000
                then to_timestamp(floor((p_event ->> 'created')::numeric)) end end
$$;

-- The webhook's one transaction: ledger row (insert on conflict do nothing) → lock it → a
-- processed event is a duplicate → else apply it and mark it processed. Two deliveries of one
-- event at once serialize on the ledger row; a failure rolls all of it back.
create or replace function private.handle_stripe_event(p_event jsonb, p_now timestamptz default now()) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_id text := p_event ->> 'id';
  v_type text := p_event ->> 'type';
  v_object jsonb := p_event #> '{data,object}';
  v_created timestamptz;
  v_row private.stripe_events;
  v_outcome text;
  v_intent text;
begin
  if jsonb_typeof(p_event) <> 'object' or v_id is null or v_id !~ '^evt_[A-Za-z0-9_]{1,250}$'
     or v_type is null or char_length(v_type) > 200 or jsonb_typeof(v_object) is distinct from 'object'
     or private.stripe_event_created(p_event) is null then
    perform private.raise_error('invalid_input', 'not a Stripe event');
  end if;
  v_created := private.stripe_event_created(p_event);
  -- Events about one payment intent serialize: a charge or refund event handled while its
  -- checkout is being recorded waits for it, so the checkout's replay never misses it.
  v_intent := coalesce(private.stripe_event_payment_intent(v_type, v_object),
                       case when v_type like 'checkout.session.%' then private.stripe_id(v_object -> 'payment_intent') end);
  if v_intent is not null then
    perform pg_advisory_xact_lock(hashtextextended('autodoctor.payment_intent:' || v_intent, 0));
  end if;
  insert into private.stripe_events (id, type, account, created, payment_intent_id, payload)
  values (v_id, v_type, p_event ->> 'account', v_created, private.stripe_event_payment_intent(v_type, v_object), p_event)
  on conflict (id) do nothing;
  select * into v_row from private.stripe_events where id = v_id for update;
  if v_row.processed_at is not null then
    return jsonb_build_object('event_id', v_id, 'type', v_type, 'outcome', 'duplicate');
  end if;
  v_outcome := private.apply_stripe_event(v_type, v_object, v_created, p_now);
  update private.stripe_events
  set processed_at = p_now, outcome = v_outcome, attempts = attempts + 1, last_error = null
  where id = v_id;
  return jsonb_build_object('event_id', v_id, 'type', v_type, 'outcome', v_outcome);
end
$$;

-- A handler failed (its transaction rolled back): remember the event and the error, in a
-- transaction of its own, so that operators see it; Stripe's retry processes it later.
create or replace function private.record_stripe_event_error(p_event jsonb, p_error text, p_now timestamptz default now())
returns void
language plpgsql security definer set search_path = ''
as $$
begin
  if coalesce(p_event ->> 'id', '') !~ '^evt_[A-Za-z0-9_]{1,250}$' or p_event ->> 'type' is null
     or private.stripe_event_created(p_event) is null then
    return;
  end if;
  insert into private.stripe_events (id, type, account, created, payment_intent_id, payload, attempts, last_error,
                                     last_error_at)
  values (p_event ->> 'id', left(p_event ->> 'type', 200), p_event ->> 'account',
          private.stripe_event_created(p_event),
          private.stripe_event_payment_intent(p_event ->> 'type', p_event #> '{data,object}'), p_event, 1,
          left(p_error, 2000), p_now)
  on conflict (id) do update
  set attempts = private.stripe_events.attempts + 1, last_error = excluded.last_error, last_error_at = p_now
  where private.stripe_events.processed_at is null;
end
$$;
revoke execute on function private.stripe_record_charge(text, text), private.stripe_refund(jsonb, timestamptz),
  private.stripe_checkout_paid(jsonb, timestamptz),
  private.stripe_checkout_ended(jsonb, public.booking_status, text, timestamptz),
  private.stripe_payment_failed(jsonb, timestamptz), private.apply_account_snapshot(jsonb, timestamptz, boolean, timestamptz),
  private.apply_stripe_event(text, jsonb, timestamptz, timestamptz), private.stripe_event_payment_intent(text, jsonb),
  private.handle_stripe_event(jsonb, timestamptz), private.record_stripe_event_error(jsonb, text, timestamptz),
  private.stripe_event_created(jsonb) from public;
grant execute on function private.stripe_record_charge(text, text), private.stripe_refund(jsonb, timestamptz),
  private.stripe_checkout_paid(jsonb, timestamptz),
  private.stripe_checkout_ended(jsonb, public.booking_status, text, timestamptz),
  private.stripe_payment_failed(jsonb, timestamptz), private.apply_account_snapshot(jsonb, timestamptz, boolean, timestamptz),
  private.apply_stripe_event(text, jsonb, timestamptz, timestamptz), private.stripe_event_payment_intent(text, jsonb),
  private.handle_stripe_event(jsonb, timestamptz), private.record_stripe_event_error(jsonb, text, timestamptz),
  private.stripe_event_created(jsonb) to service_role;

-- ---------------------------------------------------------------------------------------------
-- The Stripe worker's steps (shared.payments.process_payouts): claim (for update skip locked,
-- then commit) → call Stripe outside any lock → record. A claim not recorded within the lease is
-- claimed again; the idempotency key makes the repeated call return the first result.
-- ---------------------------------------------------------------------------------------------
create or replace function private.claim_refunds(p_limit int default 50, p_now timestamptz default now())
returns table (refund_id uuid, payment_id uuid, seq int, amount_cents int, currency text, payment_intent_id text,
               charge_id text, attempts int)
language plpgsql security definer set search_path = ''
as $$
declare
  v_lease interval := private.setting_interval('payments.claim_lease');
begin
  return query
  with due as (
    select r.id from public.refunds r
    where r.destination = 'card'
      and ((r.status = 'queued' and r.next_attempt_at <= p_now)
           or (r.status = 'processing' and r.stripe_refund_id is null and r.claimed_at <= p_now - v_lease))
    order by r.next_attempt_at
    limit greatest(p_limit, 0)
    for update of r skip locked
  )
  update public.refunds r
  set status = 'processing', attempts = r.attempts + 1, claimed_at = p_now
  from due, public.payments p
  where r.id = due.id and p.id = r.payment_id
  returning r.id, r.payment_id, r.seq, r.amount_cents, r.currency, p.stripe_payment_intent_id, p.stripe_charge_id,
            r.attempts;
end
$$;

create or replace function private.record_refund_sent(p_refund_id uuid, p_stripe_refund_id text, p_stripe_status text,
                                                      p_now timestamptz default now())
returns text
language plpgsql security definer set search_path = ''
as $$
declare
  v_payment_id uuid := (select r.payment_id from public.refunds r where r.id = p_refund_id);
begin
  perform 1 from public.payments where id = v_payment_id for update;
  update public.refunds set stripe_refund_id = p_stripe_refund_id, claimed_at = null, last_error = null
  where id = p_refund_id and stripe_refund_id is null;
  perform private.set_refund_status(p_refund_id, private.refund_status_from_stripe(p_stripe_status), null, p_now);
  return (select r.status::text from public.refunds r where r.id = p_refund_id);
end
$$;

create or replace function private.record_refund_failure(p_refund_id uuid, p_error text, p_now timestamptz default now())
returns text
language plpgsql security definer set search_path = ''
as $$
declare
  v_refund public.refunds;
begin
  select * into v_refund from public.refunds where id = p_refund_id;
  perform 1 from public.payments where id = v_refund.payment_id for update;
  select * into v_refund from public.refunds where id = p_refund_id and status = 'processing'
    and stripe_refund_id is null for update;
  if not found then
    return 'no_change';
  end if;
  if v_refund.attempts >= private.setting_int('payments.max_attempts') then
    perform private.set_refund_status(p_refund_id, 'failed', p_error, p_now);
    return 'failed';
  end if;
  update public.refunds set status = 'queued', claimed_at = null, last_error = left(p_error, 2000),
         next_attempt_at = private.payments_retry_at(v_refund.attempts, p_now)
  where id = p_refund_id;
  return 'queued';
end
$$;

-- extension_id: set for a paid extension's payout (its transfer's idempotency key names the
-- payment too: a session's own payment keeps transfer:<session_id>:<payee>).
drop function if exists private.claim_payouts(int, timestamptz);
create function private.claim_payouts(p_limit int default 50, p_now timestamptz default now())
returns table (payout_id uuid, session_id uuid, payment_id uuid, payee_id uuid, amount_cents int, currency text,
               destination text, method public.payment_method, charge_id text, payment_intent_id text,
               transfer_group text, attempts int, extension_id uuid)
language plpgsql security definer set search_path = ''
as $$
declare
  v_lease interval := private.setting_interval('payments.claim_lease');
begin
  -- a payee that can no longer receive transfers waits again (reason visible)
  with gone as (
    select p.id, private.payee_waiting_reason(p.mechanic_id, p.organization_id) as reason from public.payouts p
    where p.status = 'queued' and p.next_attempt_at <= p_now
      and private.payee_waiting_reason(p.mechanic_id, p.organization_id) is not null
    for update of p skip locked
  )
  update public.payouts p set status = 'waiting', waiting_reason = gone.reason from gone where p.id = gone.id;

  return query
  with due as (
    select p.id, a.stripe_account_id from public.payouts p
    join public.payout_accounts a
      on a.transfers_active and (a.mechanic_id = p.mechanic_id or a.organization_id = p.organization_id)
    where (p.status = 'queued' and p.next_attempt_at <= p_now)
       or (p.status = 'processing' and p.claimed_at <= p_now - v_lease)
    order by p.next_attempt_at
    limit greatest(p_limit, 0)
    for update of p skip locked
  )
  update public.payouts p
  set status = 'processing', attempts = p.attempts + 1, claimed_at = p_now, destination_account = due.stripe_account_id
  from due, public.payments pay
  where p.id = due.id and pay.id = p.payment_id
  returning p.id, p.session_id, p.payment_id, p.payee_id, p.amount_cents, p.currency, p.destination_account,
            pay.method, pay.stripe_charge_id, pay.stripe_payment_intent_id, pay.transfer_group, p.attempts,
            pay.extension_id;
end
$$;

create or replace function private.record_payout_paid(p_payout_id uuid, p_transfer_id text, p_now timestamptz default now())
returns boolean
language plpgsql security definer set search_path = ''
as $$
begin
  update public.payouts set status = 'paid', stripe_transfer_id = p_transfer_id, paid_at = p_now, claimed_at = null,
         last_error = null, waiting_reason = null
  where id = p_payout_id and status = 'processing';
  return found;
end
$$;

create or replace function private.record_payout_failure(p_payout_id uuid, p_error text, p_now timestamptz default now())
returns text
language plpgsql security definer set search_path = ''
as $$
declare
  v_status public.payout_status;
begin
  update public.payouts
  set status = case when attempts >= private.setting_int('payments.max_attempts') then 'failed'::public.payout_status
                    else 'queued'::public.payout_status end,
      last_error = left(p_error, 2000), claimed_at = null, next_attempt_at = private.payments_retry_at(attempts, p_now)
  where id = p_payout_id and status = 'processing'
  returning status into v_status;
  return coalesce(v_status::text, 'no_change');
end
$$;

-- The charge a payout transfers from (source_transaction), when the worker had to fetch it.
create or replace function private.record_payment_charge(p_payment_id uuid, p_charge_id text) returns void
language sql volatile security definer set search_path = ''
as $$
  update public.payments set stripe_charge_id = p_charge_id
  where id = p_payment_id and stripe_charge_id is null and p_charge_id is not null
$$;

create or replace function private.claim_reversals(p_limit int default 50, p_now timestamptz default now())
returns table (reversal_id uuid, payout_id uuid, refund_id uuid, transfer_id text, amount_cents int, attempts int)
language plpgsql security definer set search_path = ''
as $$
declare
  v_lease interval := private.setting_interval('payments.claim_lease');
begin
  return query
  with due as (
    select v.id from public.transfer_reversals v join public.payouts p on p.id = v.payout_id
    where p.status = 'paid'
      and ((v.status = 'queued' and v.next_attempt_at <= p_now)
           or (v.status = 'processing' and v.claimed_at <= p_now - v_lease))
    order by v.next_attempt_at
    limit greatest(p_limit, 0)
    for update of v skip locked
  )
  update public.transfer_reversals v
  set status = 'processing', attempts = v.attempts + 1, claimed_at = p_now
  from due, public.payouts p
  where v.id = due.id and p.id = v.payout_id
  returning v.id, v.payout_id, v.refund_id, p.stripe_transfer_id, v.amount_cents, v.attempts;
end
$$;

create or replace function private.record_reversal_done(p_reversal_id uuid, p_stripe_reversal_id text,
                                                        p_now timestamptz default now())
returns boolean
language plpgsql security definer set search_path = ''
as $$
begin
  update public.transfer_reversals
  set status = 'succeeded', stripe_reversal_id = p_stripe_reversal_id, succeeded_at = p_now, claimed_at = null,
      last_error = null
  where id = p_reversal_id and status = 'processing';
  return found;
end
$$;

create or replace function private.record_reversal_failure(p_reversal_id uuid, p_error text,
                                                           p_now timestamptz default now())
returns text
language plpgsql security definer set search_path = ''
as $$
declare
  v_status public.reversal_status;
begin
  update public.transfer_reversals
  set status = case when attempts >= private.setting_int('payments.max_attempts') then 'failed'::public.reversal_status
                    else 'queued'::public.reversal_status end,
      last_error = left(p_error, 2000), claimed_at = null, next_attempt_at = private.payments_retry_at(attempts, p_now)
  where id = p_reversal_id and status = 'processing'
  returning status into v_status;
  return coalesce(v_status::text, 'no_change');
end
$$;

-- Accounts whose state must be refetched (a tie of account.updated events).
create or replace function private.accounts_to_refresh(p_limit int default 50) returns setof text
language sql stable security definer set search_path = ''
as $$
  select a.stripe_account_id from public.payout_accounts a
  where a.stripe_refresh_requested_at is not null
  order by a.stripe_refresh_requested_at
  limit greatest(p_limit, 0)
$$;
revoke execute on function private.claim_refunds(int, timestamptz),
  private.record_refund_sent(uuid, text, text, timestamptz), private.record_refund_failure(uuid, text, timestamptz),
  private.claim_payouts(int, timestamptz), private.record_payout_paid(uuid, text, timestamptz),
  private.record_payout_failure(uuid, text, timestamptz), private.record_payment_charge(uuid, text),
  private.claim_reversals(int, timestamptz), private.record_reversal_done(uuid, text, timestamptz),
  private.record_reversal_failure(uuid, text, timestamptz), private.accounts_to_refresh(int) from public;
grant execute on function private.claim_refunds(int, timestamptz),
  private.record_refund_sent(uuid, text, text, timestamptz), private.record_refund_failure(uuid, text, timestamptz),
  private.claim_payouts(int, timestamptz), private.record_payout_paid(uuid, text, timestamptz),
  private.record_payout_failure(uuid, text, timestamptz), private.record_payment_charge(uuid, text),
  private.claim_reversals(int, timestamptz), private.record_reversal_done(uuid, text, timestamptz),
  private.record_reversal_failure(uuid, text, timestamptz), private.accounts_to_refresh(int) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Connect onboarding (functions/connect.py)
-- ---------------------------------------------------------------------------------------------
-- Who gets the connected account: the caller as an approved mechanic, or a workshop it owns.
create or replace function private.prepare_connect_account(p_user_id uuid, p_organization_id uuid) returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_mechanic public.mechanics;
  v_org public.organizations;
  v_role public.organization_role;
begin
  if p_user_id is null then
    perform private.raise_error('not_authenticated', 'sign in first');
  end if;
  if p_organization_id is null then
    select * into v_mechanic from public.mechanics where id = p_user_id;
    if not found or v_mechanic.status <> 'approved' then
      perform private.raise_error('not_allowed', 'only approved mechanics and workshop owners set up payouts');
    end if;
    return jsonb_build_object('owner_kind', 'mechanic', 'owner_id', v_mechanic.id, 'country', v_mechanic.country,
      'email', (select u.email from auth.users u where u.id = p_user_id),
      'stripe_account_id', (select a.stripe_account_id from public.payout_accounts a where a.mechanic_id = p_user_id));
  end if;
  select om.role into v_role from public.organization_members om
  where om.organization_id = p_organization_id and om.user_id = p_user_id;
  if not found then
    perform private.raise_error('not_found', 'no such workshop');
  end if;
  if v_role <> 'owner' then
    perform private.raise_error('not_allowed', 'only the workshop''s owner sets up its payouts');
  end if;
  select * into v_org from public.organizations where id = p_organization_id;
  return jsonb_build_object('owner_kind', 'workshop', 'owner_id', v_org.id, 'country', v_org.country,
    'email', (select u.email from auth.users u where u.id = p_user_id),
    'stripe_account_id', (select a.stripe_account_id from public.payout_accounts a
                          where a.organization_id = p_organization_id));
end
$$;

-- Stores the connected account once; a concurrent second one loses and the stored one is returned.
create or replace function private.record_connect_account(p_owner_kind text, p_owner_id uuid, p_stripe_account_id text)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_stored text;
begin
  if p_owner_kind not in ('mechanic', 'workshop') or p_owner_id is null
     or p_stripe_account_id !~ '^acct_[A-Za-z0-9]{1,250}$' then
    perform private.raise_error('invalid_input', 'an owner and a Stripe account id are required');
  end if;
  insert into public.payout_accounts (mechanic_id, organization_id, stripe_account_id)
  values (case when p_owner_kind = 'mechanic' then p_owner_id end,
          case when p_owner_kind = 'workshop' then p_owner_id end, p_stripe_account_id)
  on conflict do nothing;
  select a.stripe_account_id into v_stored from public.payout_accounts a
  where (p_owner_kind = 'mechanic' and a.mechanic_id = p_owner_id)
     or (p_owner_kind = 'workshop' and a.organization_id = p_owner_id);
  return jsonb_build_object('stripe_account_id', v_stored, 'created', v_stored = p_stripe_account_id);
end
$$;
revoke execute on function private.prepare_connect_account(uuid, uuid),
  private.record_connect_account(text, uuid, text) from public;
grant execute on function private.prepare_connect_account(uuid, uuid),
  private.record_connect_account(text, uuid, text) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Admin RPCs
-- ---------------------------------------------------------------------------------------------
-- Refunds a session's payments fully (null amount: all that remains) or partly, to where they
-- came from (card through Stripe, credit at once). A session with paid extensions has several
-- payments: a partial amount is taken from its own payment first, then from the extensions in
-- the order they were paid. After payout the payees' share is reversed proportionally. A full
-- refund of a session not yet started cancels it.
create or replace function public.admin_refund(p_session_id uuid, p_amount_cents int default null,
                                               p_reason text default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_admin uuid := private.require_admin();
  v_reason text := private.check_text('p_reason', p_reason, true);
  v_payment record;
  v_left int := p_amount_cents;
  v_total int := 0;
  v_cut int;
  v_refund public.refunds;
  v_refunds jsonb := '[]'::jsonb;
  v_first public.refunds;
begin
  if p_session_id is null or (p_amount_cents is not null and p_amount_cents <= 0) then
    perform private.raise_error('invalid_input', 'p_session_id is required and p_amount_cents must be positive');
  end if;
  perform 1 from public.payments where session_id = p_session_id;
  if not found then
    perform private.raise_error('not_found', 'no payment for this session');
  end if;
  perform private.lock_session_for_refund(p_session_id);
  perform private.set_actor('admin', v_reason);
  for v_payment in
    select p.id, p.amount_cents - coalesce((select sum(r.amount_cents) from public.refunds r
                                            where r.payment_id = p.id and r.status not in ('failed', 'canceled')), 0)
             as refundable
    from public.payments p where p.session_id = p_session_id
    order by p.extension_id is not null, p.paid_at, p.id
  loop
    v_total := v_total + greatest(v_payment.refundable, 0);
    continue when v_payment.refundable <= 0 or (v_left is not null and v_left <= 0);
    v_cut := case when v_left is null then null else least(v_left, v_payment.refundable) end;
    v_refund := private.request_refund(v_payment.id, v_cut, 'admin', v_reason, v_admin, null, null, now());
    v_left := v_left - v_refund.amount_cents;
    v_first := coalesce(v_first, v_refund);
    v_refunds := v_refunds || jsonb_build_object('refund_id', v_refund.id, 'payment_id', v_refund.payment_id,
                                                 'amount_cents', v_refund.amount_cents,
                                                 'destination', v_refund.destination, 'status', v_refund.status);
  end loop;
  if v_first.id is null or v_left > 0 then
    perform private.raise_error('refund_too_large', format('%s cents remain refundable on this session', v_total));
  end if;
  return jsonb_build_object('refund_id', v_first.id, 'payment_id', v_first.payment_id, 'session_id', p_session_id,
                            'amount_cents', (select sum((r ->> 'amount_cents')::int) from jsonb_array_elements(v_refunds) r),
                            'currency', v_first.currency, 'destination', v_first.destination,
                            'status', v_first.status, 'refunds', v_refunds);
end
$$;
revoke execute on function public.admin_refund(uuid, int, text) from public, anon;
grant execute on function public.admin_refund(uuid, int, text) to authenticated, service_role;

create or replace function public.admin_grant_credit(p_customer_id uuid, p_amount_cents int, p_reason text default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_admin uuid := private.require_admin();
  v_reason text := private.check_text('p_reason', p_reason, true);
  v_entry public.credit_ledger;
begin
  if p_customer_id is null or p_amount_cents is null or p_amount_cents <= 0
     or p_amount_cents > private.setting_int('payments.max_credit_grant_cents') then
    perform private.raise_error('invalid_input', format('p_amount_cents must be between 1 and %s',
                                                        private.setting_int('payments.max_credit_grant_cents')));
  end if;
  perform 1 from auth.users where id = p_customer_id;
  if not found then
    perform private.raise_error('not_found', 'no such customer');
  end if;
  v_entry := private.add_credit_entry(p_customer_id, 'grant', p_amount_cents, null, null, null, v_reason, v_admin);
  return jsonb_build_object('customer_id', p_customer_id, 'entry_id', v_entry.id,
                            'amount_cents', v_entry.amount_cents, 'balance_cents', v_entry.balance_after_cents,
                            'currency', v_entry.currency);
end
$$;
revoke execute on function public.admin_grant_credit(uuid, int, text) from public, anon;
grant execute on function public.admin_grant_credit(uuid, int, text) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- Money integrity: every payment's amount is fully accounted for
--   amount = refunded + refunds in flight + transferred (net of reversals) + payouts in flight
--            (net of reversals in flight) + platform fee (once settled) + unsettled remainder
-- ---------------------------------------------------------------------------------------------
create or replace view private.payment_balances as
select p.id as payment_id, p.session_id, p.customer_id, p.method, p.amount_cents, p.currency, p.settled_at,
       coalesce(r.refunded, 0)::int as refunded_cents,
       coalesce(r.in_flight, 0)::int as refund_pending_cents,
       (coalesce(o.paid, 0) - coalesce(v.succeeded, 0))::int as transferred_cents,
       (coalesce(o.in_flight, 0) - coalesce(v.in_flight, 0))::int as payout_pending_cents,
       case when p.settled_at is null then 0 else p.platform_fee_cents end as platform_fee_cents,
       case when p.settled_at is null then p.amount_cents - coalesce(r.refunded, 0) - coalesce(r.in_flight, 0)
            else 0 end::int as unsettled_cents,
       coalesce(o.count_, 0)::int as payouts,
       coalesce(v.over_reversed, 0)::int as over_reversed_payouts
from public.payments p
left join lateral (
  select sum(x.amount_cents) filter (where x.status = 'succeeded') as refunded,
         sum(x.amount_cents) filter (where x.status in ('queued', 'processing')) as in_flight
  from public.refunds x where x.payment_id = p.id) r on true
left join lateral (
  select sum(x.amount_cents) filter (where x.status = 'paid') as paid,
         sum(x.amount_cents) filter (where x.status in ('waiting', 'queued', 'processing', 'failed')) as in_flight,
         count(*) as count_
  from public.payouts x where x.payment_id = p.id) o on true
left join lateral (
  select sum(y.succeeded) as succeeded, sum(y.in_flight) as in_flight,
         count(*) filter (where y.total > y.payout_amount) as over_reversed
  from (select sum(t.amount_cents) filter (where t.status = 'succeeded') as succeeded,
               sum(t.amount_cents) filter (where t.status in ('queued', 'processing', 'failed')) as in_flight,
               sum(t.amount_cents) as total, x.amount_cents as payout_amount
        from public.payouts x join public.transfer_reversals t on t.payout_id = x.id
        where x.payment_id = p.id group by x.id, x.amount_cents) y) v on true;

create or replace view private.payment_integrity_issues as
select b.*,
       b.refunded_cents + b.refund_pending_cents + b.transferred_cents + b.payout_pending_cents
         + b.platform_fee_cents + b.unsettled_cents as accounted_cents,
       case
         when b.refunded_cents + b.refund_pending_cents > b.amount_cents then 'refunds exceed the payment'
         when b.settled_at is null and b.payouts > 0 then 'payouts before the session completed'
         when b.over_reversed_payouts > 0 then 'a payout reversed by more than it paid'
         when b.refunded_cents + b.refund_pending_cents + b.transferred_cents + b.payout_pending_cents
              + b.platform_fee_cents + b.unsettled_cents <> b.amount_cents then 'amount is not fully accounted for'
       end as problem
from private.payment_balances b
where b.refunded_cents + b.refund_pending_cents + b.transferred_cents + b.payout_pending_cents
        + b.platform_fee_cents + b.unsettled_cents <> b.amount_cents
   or b.refunded_cents + b.refund_pending_cents > b.amount_cents
   or (b.settled_at is null and b.payouts > 0)
   or b.over_reversed_payouts > 0;

-- Customers whose running credit balance disagrees with the sum of their entries.
create or replace view private.credit_integrity_issues as
select l.customer_id, sum(l.amount_cents)::int as entries_sum_cents,
       (array_agg(l.balance_after_cents order by l.seq desc))[1] as balance_cents,
       count(*)::int as entries, max(l.seq) as last_seq
from public.credit_ledger l
group by l.customer_id
having sum(l.amount_cents) <> (array_agg(l.balance_after_cents order by l.seq desc))[1] or count(*) <> max(l.seq);

revoke all on private.payment_balances, private.payment_integrity_issues, private.credit_integrity_issues from public;
grant select on private.payment_balances, private.payment_integrity_issues, private.credit_integrity_issues
  to service_role;
comment on view private.payment_integrity_issues is
  'Payments whose amount is not exactly refunds + transfers + platform fee + pending; empty when the books balance.';

-- Admins read the integrity report through the API.
create or replace function public.admin_payment_integrity() returns setof jsonb
language plpgsql stable security definer set search_path = ''
as $$
begin
  perform private.require_admin();
  return query
    select to_jsonb(i) || jsonb_build_object('kind', 'payment') from private.payment_integrity_issues i
    union all
    select to_jsonb(c) || jsonb_build_object('kind', 'credit') from private.credit_integrity_issues c;
end
$$;
revoke execute on function public.admin_payment_integrity() from public, anon;
grant execute on function public.admin_payment_integrity() to authenticated, service_role;

comment on function public.admin_refund(uuid, int, text) is
  'Admin: refund a session''s payment fully or partly; reverses payouts proportionally after payout.';
comment on function private.handle_stripe_event(jsonb, timestamptz) is
  'One verified Stripe event, applied once (ledger private.stripe_events).';
