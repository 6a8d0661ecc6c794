-- Payments: the Stripe calls as jobs (refunds, transfers, reversals, account refetches).

-- ---------------------------------------------------------------------------------------------
-- Enqueue: a domain row that becomes due is a job, in the transaction that made it due. The job's
-- dedupe key is the Stripe idempotency key the handler sends (refund:<payment_id>:<n>,
-- transfer:<session_id>:<payee>[:<payment_id> for a paid extension], reversal:<payout_id>:<refund_id>).
-- enqueue_again: a row that becomes due again (a payout queued once more) puts its finished job
-- back in line under the same key, so Stripe still answers a repeated call with the first result.
-- ---------------------------------------------------------------------------------------------
create or replace function private.transfer_job_key(p_payout public.payouts) returns text
language sql stable security definer set search_path = ''
as $$
  select case when p_payout.referral_of_payout_id is not null  -- a referral payout (workshops/referral.sql)
              then format('transfer:referral:%s', p_payout.id)
              else format('transfer:%s:%s', p_payout.session_id, p_payout.payee_id)
                   || coalesce((select ':' || p_payout.payment_id::text from public.payments pay
                                where pay.id = p_payout.payment_id and pay.extension_id is not null), '')
         end
$$;
revoke execute on function private.transfer_job_key(public.payouts) from public;
grant execute on function private.transfer_job_key(public.payouts) to service_role;

create or replace function private.tg_refunds__stripe_job() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if new.destination = 'card' and new.stripe_refund_id is null then
    perform private.enqueue_again('stripe.refund', format('refund:%s:%s', new.payment_id, new.seq),
                                  jsonb_build_object('refund_id', new.id));
  end if;
  return null;
end
$$;
revoke execute on function private.tg_refunds__stripe_job() from public;
drop trigger if exists _900_stripe_job on public.refunds;
create trigger _900_stripe_job after insert or update of status on public.refunds
  for each row when (new.status = 'queued') execute function private.tg_refunds__stripe_job();

-- A queued payout is a transfer job; a paid one lets its queued reversals go.
create or replace function private.tg_payouts__stripe_job() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_reversal public.transfer_reversals;
begin
  if new.status = 'queued' then
    perform private.enqueue_again('stripe.transfer', private.transfer_job_key(new),
                                  jsonb_build_object('payout_id', new.id));
  elsif new.status = 'paid' then
    for v_reversal in select * from public.transfer_reversals where payout_id = new.id and status = 'queued' loop
      perform private.enqueue_again('stripe.transfer_reversal',
                                    format('reversal:%s:%s', v_reversal.payout_id, v_reversal.refund_id),
                                    jsonb_build_object('reversal_id', v_reversal.id));
    end loop;
  end if;
  return null;
end
$$;
revoke execute on function private.tg_payouts__stripe_job() from public;
drop trigger if exists _900_stripe_job on public.payouts;
create trigger _900_stripe_job after insert or update of status on public.payouts
  for each row when (new.status in ('queued', 'paid')) execute function private.tg_payouts__stripe_job();

-- A reversal waits for its payout's transfer (the payouts trigger above lets it go once paid).
create or replace function private.tg_transfer_reversals__stripe_job() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if exists (select 1 from public.payouts p where p.id = new.payout_id and p.status = 'paid') then
    perform private.enqueue_again('stripe.transfer_reversal', format('reversal:%s:%s', new.payout_id, new.refund_id),
                                  jsonb_build_object('reversal_id', new.id));
  end if;
  return null;
end
$$;
revoke execute on function private.tg_transfer_reversals__stripe_job() from public;
drop trigger if exists _900_stripe_job on public.transfer_reversals;
create trigger _900_stripe_job after insert or update of status on public.transfer_reversals
  for each row when (new.status = 'queued') execute function private.tg_transfer_reversals__stripe_job();

-- ---------------------------------------------------------------------------------------------
-- The handlers' steps (shared/payments.py): start (the row → processing, returns what Stripe
-- needs; nothing when there is nothing to do) → commit → call Stripe outside any lock → record.
-- A job not settled within its lease is claimed again; the idempotency key makes the repeated
-- call return the first result.
-- ---------------------------------------------------------------------------------------------
create or replace function private.start_refund_job(p_refund_id uuid, p_now timestamptz default now())
returns table (refund_id uuid, payment_id uuid, amount_cents int, currency text, payment_intent_id text)
language sql volatile security definer set search_path = ''
as $$
  update public.refunds r set status = 'processing'
  from public.payments p
  where r.id = p_refund_id and p.id = r.payment_id and r.destination = 'card'
    and r.status in ('queued', 'processing') and r.stripe_refund_id is null
  returning r.id, r.payment_id, r.amount_cents, r.currency, p.stripe_payment_intent_id
$$;
revoke execute on function private.start_refund_job(uuid, timestamptz) from public;
grant execute on function private.start_refund_job(uuid, timestamptz) to service_role;

create or replace function private.record_refund_sent(p_refund_id uuid, p_stripe_refund_id text, p_stripe_status text,
                                                      p_now timestamptz default now())
returns text
language plpgsql security definer set search_path = ''
as $$
declare
  v_payment_id uuid := (select r.payment_id from public.refunds r where r.id = p_refund_id);
begin
  perform 1 from public.payments where id = v_payment_id for update;
  update public.refunds set stripe_refund_id = p_stripe_refund_id, last_error = null
  where id = p_refund_id and stripe_refund_id is null;
  perform private.set_refund_status(p_refund_id, private.refund_status_from_stripe(p_stripe_status), null, p_now);
  return (select r.status::text from public.refunds r where r.id = p_refund_id);
end
$$;
revoke execute on function private.record_refund_sent(uuid, text, text, timestamptz) from public;
grant execute on function private.record_refund_sent(uuid, text, text, timestamptz) to service_role;

-- extension_id: set for a paid extension's payout. A payout that must wait
-- (private.payout_wait_reason: a report, the objection window, the mechanic's standing, a payee
-- that can no longer receive transfers) waits again with the reason visible.
drop function if exists private.start_payout_job(uuid, timestamptz);
create function private.start_payout_job(p_payout_id uuid, p_now timestamptz default now())
returns table (payout_id uuid, session_id uuid, payment_id uuid, payee_id uuid, amount_cents int, currency text,
               destination text, method public.payment_method, charge_id text, payment_intent_id text,
               transfer_group text, extension_id uuid)
language plpgsql security definer set search_path = ''
as $$
declare
  v_payout public.payouts;
  v_reason text;
  v_destination text;
begin
  select * into v_payout from public.payouts p where p.id = p_payout_id and p.status in ('queued', 'processing')
  for update;
  if not found then
    return;
  end if;
  -- everything that holds a payout (objection window, report, standing, payout account)
  v_reason := private.payout_wait_reason(v_payout.id, p_now);
  select a.stripe_account_id into v_destination from public.payout_accounts a
  where a.transfers_active and (a.mechanic_id = v_payout.mechanic_id or a.organization_id = v_payout.organization_id)
  limit 1;
  if v_reason is not null or v_destination is null then
    update public.payouts p set status = 'waiting', waiting_reason = coalesce(v_reason, 'no active payout account')
    where p.id = p_payout_id;
    return;
  end if;
  return query
  update public.payouts p set status = 'processing', destination_account = v_destination
  from public.payments pay
  where p.id = p_payout_id and pay.id = p.payment_id
  returning p.id, p.session_id, p.payment_id, p.payee_id, p.amount_cents, p.currency, p.destination_account,
            pay.method, pay.stripe_charge_id, pay.stripe_payment_intent_id, pay.transfer_group, pay.extension_id;
end
$$;
revoke execute on function private.start_payout_job(uuid, timestamptz) from public;
grant execute on function private.start_payout_job(uuid, timestamptz) to service_role;

create or replace function private.record_payout_paid(p_payout_id uuid, p_transfer_id text, p_now timestamptz default now())
returns boolean
language plpgsql security definer set search_path = ''
as $$
begin
  update public.payouts set status = 'paid', stripe_transfer_id = p_transfer_id, paid_at = p_now,
         last_error = null, waiting_reason = null
  where id = p_payout_id and status = 'processing';
  return found;
end
$$;
revoke execute on function private.record_payout_paid(uuid, text, timestamptz) from public;
grant execute on function private.record_payout_paid(uuid, text, timestamptz) to service_role;

-- The charge a payout transfers from (source_transaction), when the worker had to fetch it.
create or replace function private.record_payment_charge(p_payment_id uuid, p_charge_id text) returns void
language sql volatile security definer set search_path = ''
as $$
  update public.payments set stripe_charge_id = p_charge_id
  where id = p_payment_id and stripe_charge_id is null and p_charge_id is not null
$$;
revoke execute on function private.record_payment_charge(uuid, text) from public;
grant execute on function private.record_payment_charge(uuid, text) to service_role;

create or replace function private.start_reversal_job(p_reversal_id uuid, p_now timestamptz default now())
returns table (reversal_id uuid, payout_id uuid, refund_id uuid, transfer_id text, amount_cents int)
language sql volatile security definer set search_path = ''
as $$
  update public.transfer_reversals v set status = 'processing'
  from public.payouts p
  where v.id = p_reversal_id and p.id = v.payout_id and p.status = 'paid' and v.status in ('queued', 'processing')
  returning v.id, v.payout_id, v.refund_id, p.stripe_transfer_id, v.amount_cents
$$;
revoke execute on function private.start_reversal_job(uuid, timestamptz) from public;
grant execute on function private.start_reversal_job(uuid, timestamptz) to service_role;

create or replace function private.record_reversal_done(p_reversal_id uuid, p_stripe_reversal_id text,
                                                        p_now timestamptz default now())
returns boolean
language plpgsql security definer set search_path = ''
as $$
begin
  update public.transfer_reversals
  set status = 'succeeded', stripe_reversal_id = p_stripe_reversal_id, succeeded_at = p_now, last_error = null
  where id = p_reversal_id and status = 'processing';
  return found;
end
$$;
revoke execute on function private.record_reversal_done(uuid, text, timestamptz) from public;
grant execute on function private.record_reversal_done(uuid, text, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- on_failure hooks (private.job_kinds): called by private.outbox_settle after a failed attempt,
-- in its transaction. Not the last attempt: the row goes back to queued with the error; the last
-- (p_dead): it ends failed, as it always did after payments' last attempt.
-- ---------------------------------------------------------------------------------------------
create or replace function private.refund_job_failed(p_job private.outbox, p_error text, p_dead boolean,
                                                     p_now timestamptz default now())
returns text
language plpgsql security definer set search_path = ''
as $$
declare
  v_refund public.refunds;
begin
  select * into v_refund from public.refunds where id = (p_job.payload ->> 'refund_id')::uuid;
  if not found then
    return 'no_change';
  end if;
  perform 1 from public.payments where id = v_refund.payment_id for update;
  select * into v_refund from public.refunds where id = v_refund.id and status in ('queued', 'processing')
    and stripe_refund_id is null for update;
  if not found then
    return 'no_change';
  end if;
  if p_dead then
    perform private.set_refund_status(v_refund.id, 'failed', p_error, p_now);
    return 'failed';
  end if;
  update public.refunds set status = 'queued', last_error = left(p_error, 2000) where id = v_refund.id;
  return 'queued';
end
$$;
revoke execute on function private.refund_job_failed(private.outbox, text, boolean, timestamptz) from public;
grant execute on function private.refund_job_failed(private.outbox, text, boolean, timestamptz) to service_role;

create or replace function private.payout_job_failed(p_job private.outbox, p_error text, p_dead boolean,
                                                     p_now timestamptz default now())
returns text
language plpgsql security definer set search_path = ''
as $$
declare
  v_status public.payout_status;
begin
  update public.payouts
  set status = case when p_dead then 'failed'::public.payout_status else 'queued'::public.payout_status end,
      last_error = left(p_error, 2000)
  where id = (p_job.payload ->> 'payout_id')::uuid and status in ('queued', 'processing')
  returning status into v_status;
  return coalesce(v_status::text, 'no_change');
end
$$;
revoke execute on function private.payout_job_failed(private.outbox, text, boolean, timestamptz) from public;
grant execute on function private.payout_job_failed(private.outbox, text, boolean, timestamptz) to service_role;

create or replace function private.reversal_job_failed(p_job private.outbox, p_error text, p_dead boolean,
                                                       p_now timestamptz default now())
returns text
language plpgsql security definer set search_path = ''
as $$
declare
  v_status public.reversal_status;
begin
  update public.transfer_reversals
  set status = case when p_dead then 'failed'::public.reversal_status else 'queued'::public.reversal_status end,
      last_error = left(p_error, 2000)
  where id = (p_job.payload ->> 'reversal_id')::uuid and status in ('queued', 'processing')
  returning status into v_status;
  return coalesce(v_status::text, 'no_change');
end
$$;
revoke execute on function private.reversal_job_failed(private.outbox, text, boolean, timestamptz) from public;
grant execute on function private.reversal_job_failed(private.outbox, text, boolean, timestamptz) to service_role;
