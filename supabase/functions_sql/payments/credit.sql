-- Payments: customer credit.

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
revoke execute on function private.lock_credit(uuid) from public;
revoke execute on function private.credit_balance(uuid) from public;
grant execute on function private.lock_credit(uuid) to service_role;
grant execute on function private.credit_balance(uuid) to service_role;

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
revoke execute on function private.add_credit_entry(uuid, public.credit_entry_kind, int, text, uuid, uuid, text, uuid) from public;
grant execute on function private.add_credit_entry(uuid, public.credit_entry_kind, int, text, uuid, uuid, text, uuid) to service_role;

-- A booking paid from the customer's credit: the debit and the payment, for the booking's price
-- and session (and extension). The caller holds the customer's credit lock and has checked the
-- balance. Returns the payment's id.
create or replace function private.pay_booking_with_credit(p_booking_id uuid, p_note text,
                                                           p_now timestamptz default now())
returns uuid
language plpgsql security definer set search_path = ''
as $$
declare
  v_booking public.bookings;
  v_payment_id uuid;
begin
  select * into v_booking from public.bookings where id = p_booking_id;
  perform private.add_credit_entry(v_booking.customer_id, 'debit', -v_booking.price_cents, v_booking.currency,
                                   v_booking.id, null, p_note, v_booking.customer_id);
  insert into public.payments (booking_id, customer_id, session_id, extension_id, method, amount_cents, currency,
                               transfer_group, paid_at)
  values (v_booking.id, v_booking.customer_id, v_booking.session_id, v_booking.extension_id, 'credit',
          v_booking.price_cents, v_booking.currency, 'booking_' || v_booking.id::text, p_now)
  returning id into v_payment_id;
  return v_payment_id;
end
$$;
revoke execute on function private.pay_booking_with_credit(uuid, text, timestamptz) from public;
grant execute on function private.pay_booking_with_credit(uuid, text, timestamptz) to service_role;

-- The balance per customer (RLS of credit_ledger applies: customers see their own).
create or replace view public.credit_balances with (security_invoker = true) as
select distinct on (l.customer_id) l.customer_id, l.balance_after_cents as balance_cents, l.currency,
       l.created_at as updated_at
from public.credit_ledger l
order by l.customer_id, l.seq desc;
grant select on public.credit_balances to authenticated, service_role;
comment on view public.credit_balances is 'Each customer''s credit balance: its last ledger entry''s running balance.';
