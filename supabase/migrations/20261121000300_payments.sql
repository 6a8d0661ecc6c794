-- Payments: paid bookings through Stripe Checkout (or the customer's credit), the payments they
-- produce, refunds, payouts to mechanics and workshops through Stripe Connect (separate charges
-- and transfers), transfer reversals, the customer credit ledger, revenue split rules, and the
-- ledger of Stripe webhook events that makes every event apply exactly once.
--
-- Money moves only through the functions in supabase/functions_sql/040_payments.sql (security
-- definer, called by our Python functions as service_role or by admins' RPCs); clients read their
-- own rows through RLS and write nothing directly. Amounts are integer cents with a currency.
-- docs/payments.md describes the flow, the rules and the decisions.

-- ---------------------------------------------------------------------------------------------
-- Error codes of this domain (AD020-AD029)
-- ---------------------------------------------------------------------------------------------
insert into private.error_codes (sqlstate, name, http_status, description) values
  ('AD020', 'invalid_signature', 400, 'The webhook signature is missing, malformed, stale or does not match.'),
  ('AD021', 'payments_not_configured', 503, 'Payments are not configured on this server.'),
  ('AD022', 'insufficient_credit', 409, 'The customer''s credit balance does not cover this.'),
  ('AD023', 'refund_too_large', 409, 'The refund is larger than what remains refundable on the payment.'),
  ('AD024', 'provider_error', 502, 'The payment provider failed or refused the call.');

insert into private.settings (key, value, description) values
  ('payments.checkout_expires_after', '"60 minutes"',
   'a Checkout Session expires this long after creation (Stripe accepts 30 minutes to 24 hours)'),
  ('payments.auto_refund_from_statuses', '["pending", "scheduled"]',
   'a paid session cancelled from one of these statuses (no mechanic has it) is refunded in full automatically'),
  ('payments.retry_base', '"1 minute"', 'first retry delay of a failed Stripe call; doubles per attempt'),
  ('payments.retry_max', '"6 hours"', 'longest delay between two retries of a Stripe call'),
  ('payments.max_attempts', '8', 'a transfer, refund or reversal that failed this many times is marked failed'),
  ('payments.claim_lease', '"5 minutes"',
   'a row claimed for a Stripe call and not recorded after this long may be claimed again (same idempotency key)'),
  ('payments.max_credit_grant_cents', '100000', 'largest credit an admin may grant at once ($1,000)');

-- ---------------------------------------------------------------------------------------------
-- Types
-- ---------------------------------------------------------------------------------------------
create type public.payment_method as enum ('card', 'credit');
-- pending: checkout open; paid: payment recorded and session created; expired / failed: checkout
-- ended without payment; unfulfilled: paid, but the session could not be created (refunded in full).
create type public.booking_status as enum ('pending', 'paid', 'expired', 'failed', 'unfulfilled');
create type public.payment_status as enum ('succeeded', 'partially_refunded', 'refunded');
-- queued: to be sent to Stripe; processing: claimed or sent, Stripe has not finished it.
create type public.refund_status as enum ('queued', 'processing', 'succeeded', 'failed', 'canceled');
-- waiting: the payee cannot receive transfers yet; queued: due for a transfer; processing: claimed.
create type public.payout_status as enum ('waiting', 'queued', 'processing', 'paid', 'failed', 'cancelled');
create type public.reversal_status as enum ('queued', 'processing', 'succeeded', 'failed');
create type public.credit_entry_kind as enum ('grant', 'debit', 'refund');
create type public.split_session_kind as enum ('default', 'micro', 'micro_on_shift');

-- ---------------------------------------------------------------------------------------------
-- Revenue split rules: basis points per party, keyed by mechanic type and session kind.
-- ---------------------------------------------------------------------------------------------
create table public.revenue_split_rules (
  id uuid primary key default gen_random_uuid(),
  mechanic_type public.mechanic_type not null,
  session_kind public.split_session_kind not null,
  mechanic_bps int not null constraint revenue_split_rules_mechanic_bps_range check (mechanic_bps between 0 and 10000),
  workshop_bps int not null constraint revenue_split_rules_workshop_bps_range check (workshop_bps between 0 and 10000),
  platform_bps int not null constraint revenue_split_rules_platform_bps_range check (platform_bps between 0 and 10000),
  description text not null constraint revenue_split_rules_description_length check (char_length(description) <= 500),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint revenue_split_rules_sum_is_whole check (mechanic_bps + workshop_bps + platform_bps = 10000),
  constraint revenue_split_rules_one_per_key unique (mechanic_type, session_kind)
);
comment on table public.revenue_split_rules is
  'Who gets what of a settled payment (basis points). The default rows cannot be deleted; docs/payments.md.';
insert into public.revenue_split_rules (mechanic_type, session_kind, mechanic_bps, workshop_bps, platform_bps, description)
values
  ('virtual_only', 'default', 7000, 0, 3000, 'seed 004: the mechanic 70%, the platform 30%'),
  ('independent_workshop', 'default', 7000, 0, 3000, 'seed 004: the owner-operator is paid directly, 70/30'),
  ('workshop_affiliated', 'default', 0, 7000, 3000, 'seed 004: a workshop-affiliated mechanic''s 70% goes to its workshop'),
  ('workshop_affiliated', 'micro_on_shift', 6500, 1500, 2000,
   'seed 000: on-shift micro session by a workshop''s mechanic: platform 20 / workshop 15 / mechanic 65');

-- ---------------------------------------------------------------------------------------------
-- Bookings: a customer's paid booking before (and after) payment.
-- ---------------------------------------------------------------------------------------------
create table public.bookings (
  id uuid primary key default gen_random_uuid(),
  customer_id uuid not null references auth.users (id) on delete restrict,
  plan_code text not null references public.service_plans (code) on delete restrict,
  intake_id uuid not null references public.intakes (id) on delete restrict,
  vehicle_id uuid references public.vehicles (id) on delete set null,
  preferred_mechanic_id uuid references public.mechanics (id) on delete set null,
  specialist boolean not null default false,
  price_cents int not null constraint bookings_price_positive check (price_cents > 0),
  currency text not null constraint bookings_currency_format check (currency ~ '^[a-z]{3}$'),
  method public.payment_method not null,
  status public.booking_status not null default 'pending',
  status_changed_at timestamptz not null default now(),
  stripe_checkout_session_id text constraint bookings_stripe_checkout_session_id_key unique
    constraint bookings_stripe_checkout_session_id_format check (stripe_checkout_session_id ~ '^cs_[A-Za-z0-9_]{1,250}$'),
  checkout_url text constraint bookings_checkout_url_format check (checkout_url ~ '^https?://' and char_length(checkout_url) <= 2000),
  expires_at timestamptz,
  session_id uuid constraint bookings_session_id_key unique references public.sessions (id) on delete set null,
  failure_reason text constraint bookings_failure_reason_length check (char_length(failure_reason) <= 1000),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint bookings_paid_has_session check (status <> 'paid' or session_id is not null)
);
create index bookings_customer_id_idx on public.bookings (customer_id, created_at desc);  -- FK; "my bookings"
create index bookings_intake_id_idx on public.bookings (intake_id, status);  -- FK; reuse of an open checkout
create index bookings_plan_code_idx on public.bookings (plan_code);  -- FK
create index bookings_vehicle_id_idx on public.bookings (vehicle_id);  -- FK
create index bookings_preferred_mechanic_id_idx on public.bookings (preferred_mechanic_id);  -- FK
comment on table public.bookings is 'A paid booking: checkout (or credit) → payment → session and request.';

-- ---------------------------------------------------------------------------------------------
-- Payments: money received for one booking (a Checkout payment, or the customer's credit).
-- ---------------------------------------------------------------------------------------------
create table public.payments (
  id uuid primary key default gen_random_uuid(),
  booking_id uuid not null constraint payments_booking_id_key unique references public.bookings (id) on delete restrict,
  customer_id uuid not null references auth.users (id) on delete restrict,
  session_id uuid constraint payments_session_id_key unique references public.sessions (id) on delete restrict,
  method public.payment_method not null,
  amount_cents int not null constraint payments_amount_nonneg check (amount_cents >= 0),
  currency text not null constraint payments_currency_format check (currency ~ '^[a-z]{3}$'),
  status public.payment_status not null default 'succeeded',
  stripe_checkout_session_id text constraint payments_stripe_checkout_session_id_key unique,
  stripe_payment_intent_id text constraint payments_stripe_payment_intent_id_key unique,
  stripe_charge_id text constraint payments_stripe_charge_id_key unique,
  transfer_group text not null,
  -- set when the session completes: the amount split (amount less refunds then) and what the
  -- platform keeps of it (adjusted by later refunds)
  settled_at timestamptz,
  settled_base_cents int constraint payments_settled_base_nonneg check (settled_base_cents >= 0),
  split_rule_id uuid references public.revenue_split_rules (id) on delete set null,
  platform_fee_cents int not null default 0,
  paid_at timestamptz not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint payments_card_from_stripe check (method = 'credit' or stripe_checkout_session_id is not null)
);
create index payments_customer_id_idx on public.payments (customer_id, created_at desc);  -- FK; "my payments"
create index payments_split_rule_id_idx on public.payments (split_rule_id);  -- FK
comment on table public.payments is 'Money received; amount_cents is what Checkout actually charged (or the credit used).';

-- ---------------------------------------------------------------------------------------------
-- Refunds: to the card (through Stripe, queued) or to the customer's credit (at once).
-- ---------------------------------------------------------------------------------------------
create table public.refunds (
  id uuid primary key default gen_random_uuid(),
  payment_id uuid not null references public.payments (id) on delete restrict,
  customer_id uuid not null references auth.users (id) on delete restrict,
  seq int not null constraint refunds_seq_positive check (seq > 0),  -- n of idempotency key refund:<payment_id>:<n>
  amount_cents int not null constraint refunds_amount_positive check (amount_cents > 0),
  currency text not null constraint refunds_currency_format check (currency ~ '^[a-z]{3}$'),
  destination public.payment_method not null,
  -- automatic: cancelled before a mechanic took it; admin: admin_refund; stripe: made outside our
  -- API (Dashboard); unfulfilled: paid booking whose session could not be created
  origin text not null constraint refunds_origin_values check (origin in ('automatic', 'admin', 'stripe', 'unfulfilled')),
  reason text constraint refunds_reason_length check (char_length(reason) <= 4000),
  requested_by uuid references auth.users (id) on delete set null,
  status public.refund_status not null default 'queued',
  stripe_refund_id text constraint refunds_stripe_refund_id_key unique,
  attempts int not null default 0 constraint refunds_attempts_nonneg check (attempts >= 0),
  next_attempt_at timestamptz,
  claimed_at timestamptz,
  last_error text constraint refunds_last_error_length check (char_length(last_error) <= 2000),
  succeeded_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint refunds_one_seq_per_payment unique (payment_id, seq)
);
create index refunds_customer_id_idx on public.refunds (customer_id);  -- FK; "my refunds"
create index refunds_requested_by_idx on public.refunds (requested_by);  -- FK
create index refunds_due_idx on public.refunds (next_attempt_at) where status in ('queued', 'processing');  -- worker
comment on table public.refunds is 'Refunds of a payment; card refunds are sent by shared.payments.process_payouts.';

-- ---------------------------------------------------------------------------------------------
-- Payouts: one transfer per payee per session (separate charges and transfers).
-- ---------------------------------------------------------------------------------------------
create table public.payouts (
  id uuid primary key default gen_random_uuid(),
  payment_id uuid not null references public.payments (id) on delete restrict,
  session_id uuid not null references public.sessions (id) on delete restrict,
  payee_kind text not null constraint payouts_payee_kind_values check (payee_kind in ('mechanic', 'workshop')),
  mechanic_id uuid references public.mechanics (id) on delete restrict,
  organization_id uuid references public.organizations (id) on delete restrict,
  payee_id uuid not null generated always as (coalesce(mechanic_id, organization_id)) stored,
  share_bps int not null constraint payouts_share_bps_range check (share_bps between 0 and 10000),
  original_amount_cents int not null constraint payouts_original_amount_positive check (original_amount_cents > 0),
  -- lowered in place by a refund while no transfer was attempted; afterwards refunds reverse
  amount_cents int not null constraint payouts_amount_range check (amount_cents between 0 and original_amount_cents),
  currency text not null constraint payouts_currency_format check (currency ~ '^[a-z]{3}$'),
  status public.payout_status not null,
  waiting_reason text,
  destination_account text,
  attempts int not null default 0 constraint payouts_attempts_nonneg check (attempts >= 0),
  next_attempt_at timestamptz,
  claimed_at timestamptz,
  last_error text constraint payouts_last_error_length check (char_length(last_error) <= 2000),
  stripe_transfer_id text constraint payouts_stripe_transfer_id_key unique,
  paid_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint payouts_one_payee check (
    (payee_kind = 'mechanic' and mechanic_id is not null and organization_id is null)
    or (payee_kind = 'workshop' and organization_id is not null and mechanic_id is null)),
  constraint payouts_paid_has_transfer check (status <> 'paid' or stripe_transfer_id is not null),
  constraint payouts_one_per_payee unique (session_id, payee_id)
);
create index payouts_payment_id_idx on public.payouts (payment_id);  -- FK
create index payouts_mechanic_id_idx on public.payouts (mechanic_id, created_at desc);  -- FK; "my payouts"
create index payouts_organization_id_idx on public.payouts (organization_id, created_at desc);  -- FK; workshop's
create index payouts_due_idx on public.payouts (next_attempt_at) where status in ('queued', 'processing');  -- worker
create index payouts_waiting_idx on public.payouts (payee_id) where status = 'waiting';  -- released on activation
comment on table public.payouts is
  'Transfers owed to mechanics and workshops; a queue worked by shared.payments.process_payouts.';

create table public.transfer_reversals (
  id uuid primary key default gen_random_uuid(),
  payout_id uuid not null references public.payouts (id) on delete restrict,
  refund_id uuid not null references public.refunds (id) on delete restrict,
  amount_cents int not null constraint transfer_reversals_amount_positive check (amount_cents > 0),
  status public.reversal_status not null default 'queued',
  stripe_reversal_id text constraint transfer_reversals_stripe_reversal_id_key unique,
  attempts int not null default 0 constraint transfer_reversals_attempts_nonneg check (attempts >= 0),
  next_attempt_at timestamptz,
  claimed_at timestamptz,
  last_error text constraint transfer_reversals_last_error_length check (char_length(last_error) <= 2000),
  succeeded_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint transfer_reversals_one_per_refund unique (payout_id, refund_id)
);
create index transfer_reversals_refund_id_idx on public.transfer_reversals (refund_id);  -- FK
create index transfer_reversals_due_idx on public.transfer_reversals (next_attempt_at)
  where status in ('queued', 'processing');  -- worker
comment on table public.transfer_reversals is 'A refund after payout takes back the payees'' proportional share.';

-- ---------------------------------------------------------------------------------------------
-- Customer credit: an append-only ledger with a running balance that cannot go below zero.
-- ---------------------------------------------------------------------------------------------
create table public.credit_ledger (
  id uuid primary key default gen_random_uuid(),
  customer_id uuid not null references auth.users (id) on delete restrict,
  seq int not null constraint credit_ledger_seq_positive check (seq > 0),
  kind public.credit_entry_kind not null,
  amount_cents int not null,
  balance_after_cents int not null constraint credit_ledger_balance_nonneg check (balance_after_cents >= 0),
  currency text not null default 'usd' constraint credit_ledger_currency_format check (currency ~ '^[a-z]{3}$'),
  booking_id uuid constraint credit_ledger_booking_id_key unique references public.bookings (id) on delete restrict,
  refund_id uuid constraint credit_ledger_refund_id_key unique references public.refunds (id) on delete restrict,
  note text constraint credit_ledger_note_length check (char_length(note) <= 4000),
  created_by uuid references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  constraint credit_ledger_one_seq_per_customer unique (customer_id, seq),
  constraint credit_ledger_sign_matches_kind check ((kind = 'debit') = (amount_cents < 0) and amount_cents <> 0),
  constraint credit_ledger_debit_has_booking check (kind <> 'debit' or booking_id is not null),
  constraint credit_ledger_refund_has_refund check (kind <> 'refund' or refund_id is not null)
);
create index credit_ledger_created_by_idx on public.credit_ledger (created_by);  -- FK
comment on table public.credit_ledger is
  'Credit grants, debits and refunds-to-credit; the balance is the last entry''s balance_after_cents.';

-- ---------------------------------------------------------------------------------------------
-- Stripe webhook events: the ledger that makes each event apply once (private: never exposed).
-- ---------------------------------------------------------------------------------------------
create table private.stripe_events (
  id text primary key constraint stripe_events_id_format check (id ~ '^evt_[A-Za-z0-9_]{1,250}$'),
  type text not null constraint stripe_events_type_length check (char_length(type) between 1 and 200),
  account text,  -- the connected account of a Connect event
  created timestamptz not null,  -- event.created (one-second resolution)
  payment_intent_id text,  -- for events about a payment: lets a late checkout replay earlier ones
  payload jsonb not null,
  received_at timestamptz not null default now(),
  processed_at timestamptz,
  outcome text,
  attempts int not null default 0,
  last_error text,
  last_error_at timestamptz
);
create index stripe_events_payment_intent_id_idx on private.stripe_events (payment_intent_id, created)
  where payment_intent_id is not null;  -- replay of charge and refund events that came before the checkout
create index stripe_events_unprocessed_idx on private.stripe_events (received_at) where processed_at is null;  -- ops
alter table private.stripe_events enable row level security;
comment on table private.stripe_events is 'Every verified Stripe event, once; processed_at set in the handling transaction.';

-- Connected accounts: a tie of event.created (one-second resolution) asks for a refetch.
alter table public.payout_accounts add column stripe_refresh_requested_at timestamptz;
comment on column public.payout_accounts.stripe_refresh_requested_at is
  'Set when two account.updated events carry the same second: the worker refetches the account from Stripe.';
create index payout_accounts_refresh_idx on public.payout_accounts (stripe_refresh_requested_at)
  where stripe_refresh_requested_at is not null;  -- worker

-- ---------------------------------------------------------------------------------------------
-- RLS helpers
-- ---------------------------------------------------------------------------------------------
-- Payouts the caller receives: as the mechanic, or for a workshop it owns or administers.
create function private.my_payout_ids() returns setof uuid
language sql stable security definer set search_path = ''
as $$
  select p.id from public.payouts p where p.mechanic_id = (select auth.uid())
  union all
  select p.id from public.payouts p where p.organization_id in (select private.my_admin_org_ids())
$$;
revoke execute on function private.my_payout_ids() from public;
grant execute on function private.my_payout_ids() to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- RLS and policies, then grants. Clients write nothing here: money moves through functions.
-- ---------------------------------------------------------------------------------------------
alter table public.revenue_split_rules enable row level security;
-- The split is public to signed-in users (seed 004: payment transparency).
create policy select_signed_in on public.revenue_split_rules for select to authenticated using (true);
grant select on public.revenue_split_rules to authenticated, service_role;
grant insert, update on public.revenue_split_rules to service_role;

alter table public.bookings enable row level security;
create policy select_own_or_admin on public.bookings for select to authenticated
  using (customer_id = (select auth.uid()) or (select private.is_admin()));
grant select on public.bookings to authenticated, service_role;

alter table public.payments enable row level security;
create policy select_own_or_admin on public.payments for select to authenticated
  using (customer_id = (select auth.uid()) or (select private.is_admin()));
-- The platform's share and the settled base are internal: not in the customer's columns.
grant select (id, booking_id, customer_id, session_id, method, amount_cents, currency, status,
  stripe_checkout_session_id, stripe_payment_intent_id, stripe_charge_id, settled_at, paid_at, created_at, updated_at)
  on public.payments to authenticated;
grant select on public.payments to service_role;

alter table public.refunds enable row level security;
create policy select_own_or_admin on public.refunds for select to authenticated
  using (customer_id = (select auth.uid()) or (select private.is_admin()));
grant select (id, payment_id, customer_id, seq, amount_cents, currency, destination, origin, reason, status,
  stripe_refund_id, succeeded_at, created_at, updated_at) on public.refunds to authenticated;
grant select on public.refunds to service_role;

alter table public.payouts enable row level security;
create policy select_payee_or_admin on public.payouts for select to authenticated
  using (mechanic_id = (select auth.uid()) or organization_id in (select private.my_admin_org_ids())
         or (select private.is_admin()));
grant select on public.payouts to authenticated, service_role;

alter table public.transfer_reversals enable row level security;
create policy select_payee_or_admin on public.transfer_reversals for select to authenticated
  using (payout_id in (select private.my_payout_ids()) or (select private.is_admin()));
grant select on public.transfer_reversals to authenticated, service_role;

alter table public.credit_ledger enable row level security;
create policy select_own_or_admin on public.credit_ledger for select to authenticated
  using (customer_id = (select auth.uid()) or (select private.is_admin()));
grant select on public.credit_ledger to authenticated, service_role;

grant select on private.stripe_events to service_role;
