-- Payments: the Stripe worker's claim and record steps (refunds, payouts, reversals, accounts).

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
revoke execute on function private.claim_refunds(int, timestamptz) from public;
grant execute on function private.claim_refunds(int, timestamptz) to service_role;

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
revoke execute on function private.record_refund_sent(uuid, text, text, timestamptz) from public;
grant execute on function private.record_refund_sent(uuid, text, text, timestamptz) to service_role;

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
revoke execute on function private.record_refund_failure(uuid, text, timestamptz) from public;
grant execute on function private.record_refund_failure(uuid, text, timestamptz) to service_role;

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
revoke execute on function private.claim_payouts(int, timestamptz) from public;
grant execute on function private.claim_payouts(int, timestamptz) to service_role;

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
revoke execute on function private.record_payout_paid(uuid, text, timestamptz) from public;
grant execute on function private.record_payout_paid(uuid, text, timestamptz) to service_role;

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
revoke execute on function private.record_payout_failure(uuid, text, timestamptz) from public;
grant execute on function private.record_payout_failure(uuid, text, timestamptz) to service_role;

-- The charge a payout transfers from (source_transaction), when the worker had to fetch it.
create or replace function private.record_payment_charge(p_payment_id uuid, p_charge_id text) returns void
language sql volatile security definer set search_path = ''
as $$
  update public.payments set stripe_charge_id = p_charge_id
  where id = p_payment_id and stripe_charge_id is null and p_charge_id is not null
$$;
revoke execute on function private.record_payment_charge(uuid, text) from public;
grant execute on function private.record_payment_charge(uuid, text) to service_role;

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
revoke execute on function private.claim_reversals(int, timestamptz) from public;
grant execute on function private.claim_reversals(int, timestamptz) to service_role;

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
revoke execute on function private.record_reversal_done(uuid, text, timestamptz) from public;
grant execute on function private.record_reversal_done(uuid, text, timestamptz) to service_role;

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
revoke execute on function private.record_reversal_failure(uuid, text, timestamptz) from public;
grant execute on function private.record_reversal_failure(uuid, text, timestamptz) to service_role;

-- Accounts whose state must be refetched (a tie of account.updated events).
create or replace function private.accounts_to_refresh(p_limit int default 50) returns setof text
language sql stable security definer set search_path = ''
as $$
  select a.stripe_account_id from public.payout_accounts a
  where a.stripe_refresh_requested_at is not null
  order by a.stripe_refresh_requested_at
  limit greatest(p_limit, 0)
$$;
revoke execute on function private.accounts_to_refresh(int) from public;
grant execute on function private.accounts_to_refresh(int) to service_role;
