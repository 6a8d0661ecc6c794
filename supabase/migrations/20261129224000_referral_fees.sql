-- Referral fees: a diagnosis by a virtual-only mechanic that leads to a completed workshop
-- appointment earns that mechanic workshops.referral_fee_bps of the invoice, owed by the workshop
-- and settled by deducting it from the workshop's next payouts (docs/workshops.md, "Referral fee").

insert into private.settings (key, value, value_type, description) values
  ('workshops.referral_fee_bps', '200', 'integer',
   'referral fee of a virtual-only mechanic whose delivered diagnosis led to a completed workshop appointment, '
   'in basis points of the invoice (rounded down to a cent); owed by the workshop');

-- The ledger: one fee per completed appointment, accrued → settled (settled_cents grows as the
-- workshop's payouts are deducted; a refund that takes back a deducted part lowers it again).
create table public.referral_fees (
  id uuid primary key default gen_random_uuid(),
  appointment_id uuid not null constraint referral_fees_one_per_appointment unique
    references public.workshop_appointments (id) on delete restrict,
  workshop_id uuid not null references public.organizations (id) on delete restrict,
  mechanic_id uuid not null references public.mechanics (id) on delete restrict,
  diagnostic_session_id uuid not null references public.sessions (id) on delete restrict,
  referrer_type public.mechanic_type not null constraint referral_fees_referrer_virtual_only
    check (referrer_type = 'virtual_only'),
  invoice_cents int not null constraint referral_fees_invoice_positive check (invoice_cents > 0),
  fee_bps int not null constraint referral_fees_bps_range check (fee_bps between 0 and 10000),
  amount_cents int not null constraint referral_fees_amount_positive check (amount_cents > 0),
  settled_cents int not null default 0,
  currency text not null constraint referral_fees_currency_format check (currency ~ '^[a-z]{3}$'),
  status text not null default 'accrued' constraint referral_fees_status_values check (status in ('accrued', 'settled')),
  accrued_at timestamptz not null default now(),
  settled_at timestamptz,
  updated_at timestamptz not null default now(),
  constraint referral_fees_amount_is_the_rate check (amount_cents::bigint * 10000 <= invoice_cents::bigint * fee_bps),
  constraint referral_fees_settled_range check (settled_cents between 0 and amount_cents),
  constraint referral_fees_settled_when_paid_in_full check (
    (status = 'settled') = (settled_cents = amount_cents) and (status = 'settled') = (settled_at is not null))
);
create index referral_fees_open_idx on public.referral_fees (workshop_id, accrued_at, id) where status = 'accrued';
create index referral_fees_workshop_idx on public.referral_fees (workshop_id, accrued_at desc);
create index referral_fees_mechanic_idx on public.referral_fees (mechanic_id, accrued_at desc);
create index referral_fees_session_idx on public.referral_fees (diagnostic_session_id);
comment on table public.referral_fees is
  'Referral fees owed by a workshop to the virtual-only mechanic whose diagnosis led to a completed appointment.';
comment on column public.referral_fees.referrer_type is
  'the referrer''s mechanic type when the diagnostic session was settled (its split rule), else at accrual';

-- A payout paying (part of) a referral fee: a mechanic payout of the same payment as the
-- workshop payout it was deducted from.
alter table public.payouts add column referral_of_payout_id uuid references public.payouts (id) on delete restrict;
comment on column public.payouts.referral_of_payout_id is
  'a referral payout: the workshop payout whose amount was lowered to pay it (docs/workshops.md, "Referral fee")';
-- one payout per payee per payment, as before, for the split's payouts; referral payouts are one
-- per mechanic per workshop payout
alter table public.payouts drop constraint payouts_one_per_payee_per_payment;
create unique index payouts_one_per_payee_per_payment on public.payouts (payment_id, payee_id)
  where referral_of_payout_id is null;
create unique index payouts_one_referral_per_payee on public.payouts (referral_of_payout_id, payee_id)
  where referral_of_payout_id is not null;
create index payouts_payment_id_idx on public.payouts (payment_id);  -- FK

-- Each deduction: from which workshop payout, into which referral payout, how much; restored_cents
-- is the part a refund of that payment took back (owed again).
create table public.referral_fee_deductions (
  id uuid primary key default gen_random_uuid(),
  fee_id uuid not null references public.referral_fees (id) on delete restrict,
  workshop_payout_id uuid not null references public.payouts (id) on delete restrict,
  referral_payout_id uuid not null references public.payouts (id) on delete restrict,
  amount_cents int not null constraint referral_fee_deductions_amount_positive check (amount_cents > 0),
  restored_cents int not null default 0,
  created_at timestamptz not null default now(),
  constraint referral_fee_deductions_restored_range check (restored_cents between 0 and amount_cents)
);
create index referral_fee_deductions_fee_idx on public.referral_fee_deductions (fee_id);
create index referral_fee_deductions_workshop_payout_idx on public.referral_fee_deductions (workshop_payout_id);
create index referral_fee_deductions_referral_payout_idx on public.referral_fee_deductions (referral_payout_id);
comment on table public.referral_fee_deductions is
  'Referral fees settled: the workshop payout lowered and the referral payout that pays the mechanic.';

-- Read by the mechanic it is owed to, the workshop's staff who see its earnings, and admins
-- (private.workshop_can includes them); written only by the accrual hook and payout settlement.
alter table public.referral_fees enable row level security;
create policy select_referrer_or_workshop on public.referral_fees for select to authenticated
  using (mechanic_id = (select auth.uid())
         or private.workshop_can(workshop_id, (select auth.uid()), 'see_earnings'));
grant select on public.referral_fees to authenticated, service_role;

alter table public.referral_fee_deductions enable row level security;
create policy select_with_fee on public.referral_fee_deductions for select to authenticated
  using (fee_id in (select f.id from public.referral_fees f));
grant select on public.referral_fee_deductions to authenticated, service_role;
