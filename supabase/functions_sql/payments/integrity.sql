-- Payments: money integrity views.

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

-- A payout of this payment left `waiting` (queued, processing, paid) while its session waits for an
-- admin's decision: unverified, or reported, and not decided (docs/trust.md).
create or replace function private.payment_released_undecided(p_payment_id uuid) returns boolean
language sql stable security definer set search_path = ''
as $$
  select exists (
    select 1 from public.payouts x join public.sessions s on s.id = x.session_id
    where x.payment_id = p_payment_id and x.status in ('queued', 'processing', 'paid')
      and (s.delivery = 'unverified'
           or exists (select 1 from public.session_problem_reports r where r.session_id = s.id))
      and not exists (select 1 from public.session_delivery_decisions d where d.session_id = s.id))
$$;
revoke execute on function private.payment_released_undecided(uuid) from public;
grant execute on function private.payment_released_undecided(uuid) to service_role;

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
         when private.payment_released_undecided(b.payment_id) then 'a payout left while its session waits for a decision'
       end as problem
from private.payment_balances b
where b.refunded_cents + b.refund_pending_cents + b.transferred_cents + b.payout_pending_cents
        + b.platform_fee_cents + b.unsettled_cents <> b.amount_cents
   or b.refunded_cents + b.refund_pending_cents > b.amount_cents
   or (b.settled_at is null and b.payouts > 0)
   or b.over_reversed_payouts > 0
   or private.payment_released_undecided(b.payment_id);

-- Customers whose running credit balance disagrees with the sum of their entries.
create or replace view private.credit_integrity_issues as
select l.customer_id, sum(l.amount_cents)::int as entries_sum_cents,
       (array_agg(l.balance_after_cents order by l.seq desc))[1] as balance_cents,
       count(*)::int as entries, max(l.seq) as last_seq
from public.credit_ledger l
group by l.customer_id
having sum(l.amount_cents) <> (array_agg(l.balance_after_cents order by l.seq desc))[1] or count(*) <> max(l.seq);

-- Referral fees (workshops/referral.sql): a referral payout lowers its workshop payout by as much,
-- so payment_balances holds as it is; here the fees, their deductions and the payouts they move:
--   a fee never exceeds its appointment's invoice × the rate it accrued at, and settled_cents is
--     what its deductions still carry (deducted − restored by refunds);
--   a referral payout carries exactly its deductions (original) and, net of reversals, what they
--     still carry; it belongs to the same payment and session as its workshop payout;
--   a workshop payout was lowered by at least what was deducted from it.
create or replace view private.referral_integrity_issues as
select 'fee' as subject, f.id, f.amount_cents as expected_cents, coalesce(d.carried, 0)::int as actual_cents,
       case
         when a.id is null or a.status <> 'completed' or f.amount_cents::bigint * 10000 > a.invoice_cents::bigint * f.fee_bps
              or f.invoice_cents <> a.invoice_cents then 'fee exceeds the invoice × rate'
         else 'settled cents disagree with the deductions'
       end as problem
from public.referral_fees f
left join public.workshop_appointments a on a.id = f.appointment_id
left join lateral (select sum(x.amount_cents - x.restored_cents) as carried
                   from public.referral_fee_deductions x where x.fee_id = f.id) d on true
where a.id is null or a.status <> 'completed' or f.amount_cents::bigint * 10000 > a.invoice_cents::bigint * f.fee_bps
   or f.invoice_cents <> a.invoice_cents or f.settled_cents <> coalesce(d.carried, 0)
union all
select 'referral payout', p.id, coalesce(d.deducted, 0)::int, p.original_amount_cents,
       'referral payout disagrees with its deductions'
from public.payouts p
join public.payouts w on w.id = p.referral_of_payout_id
left join lateral (select sum(x.amount_cents) as deducted, sum(x.amount_cents - x.restored_cents) as carried
                   from public.referral_fee_deductions x where x.referral_payout_id = p.id) d on true
left join lateral (select sum(t.amount_cents) as reversed
                   from public.transfer_reversals t where t.payout_id = p.id) v on true
where p.original_amount_cents <> coalesce(d.deducted, 0)
   or p.amount_cents - coalesce(v.reversed, 0) <> coalesce(d.carried, 0)
   or p.payment_id <> w.payment_id or p.session_id <> w.session_id or p.payee_kind <> 'mechanic'
   or w.payee_kind <> 'workshop'
union all
select 'workshop payout', w.id, w.original_amount_cents - w.amount_cents, d.deducted::int,
       'workshop payout lowered by less than its referral deductions'
from public.payouts w
join lateral (select sum(x.amount_cents) as deducted
              from public.referral_fee_deductions x where x.workshop_payout_id = w.id) d on d.deducted is not null
where w.original_amount_cents - w.amount_cents < d.deducted;

revoke all on private.payment_balances, private.payment_integrity_issues, private.credit_integrity_issues,
  private.referral_integrity_issues from public;
grant select on private.payment_balances, private.payment_integrity_issues, private.credit_integrity_issues,
  private.referral_integrity_issues to service_role;
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
    select to_jsonb(c) || jsonb_build_object('kind', 'credit') from private.credit_integrity_issues c
    union all
    select to_jsonb(r) || jsonb_build_object('kind', 'referral') from private.referral_integrity_issues r;
end
$$;
revoke execute on function public.admin_payment_integrity() from public, anon;
grant execute on function public.admin_payment_integrity() to authenticated, service_role;
