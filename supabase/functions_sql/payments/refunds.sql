-- Payments: refunds.

-- ---------------------------------------------------------------------------------------------
-- Refunds: requested (allocated at once), then sent by a stripe.refund job; Stripe reports the outcome.
-- ---------------------------------------------------------------------------------------------
create or replace function private.refund_rank(p_status public.refund_status) returns int
language sql immutable parallel safe set search_path = ''
as $$
  select case p_status when 'queued' then 0 when 'processing' then 1 when 'succeeded' then 2 else 3 end
$$;
revoke execute on function private.refund_rank(public.refund_status) from public;
grant execute on function private.refund_rank(public.refund_status) to service_role;

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
revoke execute on function private.refund_status_from_stripe(text) from public;
grant execute on function private.refund_status_from_stripe(text) to service_role;

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
revoke execute on function private.refresh_payment_status(uuid) from public;
grant execute on function private.refresh_payment_status(uuid) to service_role;

-- A payout's share of its payment: its original amount, less what was deducted from it for
-- referral fees (those cents are the referral payouts' share: workshops/referral.sql).
create or replace function private.payout_share_cents(p_payout public.payouts) returns int
language sql stable security definer set search_path = ''
as $$
  select p_payout.original_amount_cents
         - coalesce((select sum(d.amount_cents) from public.referral_fee_deductions d
                     where d.workshop_payout_id = p_payout.id), 0)::int
$$;
revoke execute on function private.payout_share_cents(public.payouts) from public;
grant execute on function private.payout_share_cents(public.payouts) to service_role;

-- A refund of a settled payment takes the payees' proportional share back: from a payout that
-- was never attempted by lowering its amount, otherwise by a queued transfer reversal. What the
-- payees do not return comes out of the platform's fee. The last refund (nothing left after it)
-- takes back everything that remains, so rounding never leaves a cent behind.
-- A referral payout's part taken back is owed again by the workshop (private.referral_restore).
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
                    else least(v_remaining, floor(private.payout_share_cents(v_payout)::numeric * p_refund.amount_cents
                                                  / p_payment.settled_base_cents)::int) end;
      continue when v_cut <= 0;
      -- never attempted (no destination yet): Stripe never saw its amount, lower it in place
      if v_payout.destination_account is null and v_payout.status in ('waiting', 'queued') then
        update public.payouts
        set amount_cents = amount_cents - v_cut,
            status = case when amount_cents - v_cut = 0 then 'cancelled'::public.payout_status else status end
        where id = v_payout.id;
      else
        insert into public.transfer_reversals (payout_id, refund_id, amount_cents)
        values (v_payout.id, p_refund.id, v_cut);
      end if;
      if v_payout.referral_of_payout_id is not null then  -- a referral fee paid from it is owed again
        perform private.referral_restore(v_payout.id, v_cut);
      end if;
      v_taken := v_taken + v_cut;
    end loop;
  end if;
  update public.payments set platform_fee_cents = platform_fee_cents - (p_refund.amount_cents - v_taken)
  where id = p_payment.id;
end
$$;
revoke execute on function private.allocate_refund(public.payments, public.refunds, boolean, timestamptz) from public;
grant execute on function private.allocate_refund(public.payments, public.refunds, boolean, timestamptz) to service_role;

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
      last_error = coalesce(left(p_error, 2000), last_error)
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
revoke execute on function private.set_refund_status(uuid, public.refund_status, text, timestamptz) from public;
grant execute on function private.set_refund_status(uuid, public.refund_status, text, timestamptz) to service_role;

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
-- a stripe.refund job (or, from Stripe, recorded as Stripe reports it); a credit refund goes back to the
-- customer's credit at once. A payment that is then fully refunded cancels its session if the
-- session has not started (nobody should serve a refunded request), unless p_keep_session (a
-- booking re-priced to a lower price keeps its session: trust/pricing.sql).
drop function if exists private.request_refund(uuid, int, text, text, uuid, text, public.refund_status, timestamptz);
create or replace function private.request_refund(
  p_payment_id uuid,
  p_amount_cents int,
  p_origin text,
  p_reason text,
  p_requested_by uuid default null,
  p_stripe_refund_id text default null,
  p_status public.refund_status default null,
  p_now timestamptz default now(),
  p_keep_session boolean default false
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
                              requested_by, status, stripe_refund_id)
  values (v_payment.id, v_payment.customer_id,
          coalesce((select max(seq) from public.refunds where payment_id = v_payment.id), 0) + 1,
          v_amount, v_payment.currency, v_payment.method, p_origin, left(p_reason, 4000), p_requested_by,
          case when v_payment.method = 'credit' then 'succeeded'::public.refund_status
               else coalesce(p_status, 'queued'::public.refund_status) end,
          p_stripe_refund_id)
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
    if v_amount >= v_refundable and v_payment.session_id is not null and not coalesce(p_keep_session, false) then
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
revoke execute on function private.request_refund(uuid, int, text, text, uuid, text, public.refund_status, timestamptz, boolean)
  from public;
grant execute on function private.request_refund(uuid, int, text, text, uuid, text, public.refund_status, timestamptz, boolean)
  to service_role;

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
revoke execute on function private.auto_refund(uuid, text, timestamptz) from public;
grant execute on function private.auto_refund(uuid, text, timestamptz) to service_role;

revoke execute on function private.lock_session_for_refund(uuid) from public;
grant execute on function private.lock_session_for_refund(uuid) to service_role;
