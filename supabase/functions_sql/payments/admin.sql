-- Payments: admin refunds and credit grants.

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

comment on function public.admin_refund(uuid, int, text) is
  'Admin: refund a session''s payment fully or partly; reverses payouts proportionally after payout.';
