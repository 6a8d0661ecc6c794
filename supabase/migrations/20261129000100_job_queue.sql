-- One job queue for every side effect: emails, room closes and Stripe calls (refunds, transfers,
-- transfer reversals, account refetches) are rows of private.outbox, each of a registered kind
-- (private.job_kinds) that carries its retry policy (attempts, backoff, lease) and, for kinds with
-- a domain row, the SQL hook that puts that row back in line or ends it when a call fails.
-- Emails name a registered template (private.email_templates). The payments tables keep their
-- business status; their retry columns (attempts, next_attempt_at, claimed_at) move into the queue.
-- docs/jobs.md describes the queue, docs/payments.md the Stripe jobs.

-- ---------------------------------------------------------------------------------------------
-- Error codes of the jobs domain (AD040-AD049)
-- ---------------------------------------------------------------------------------------------
insert into private.error_codes (sqlstate, name, http_status, description) values
  ('AD040', 'unknown_job_kind', 500, 'No job kind of this name is registered (private.job_kinds).'),
  ('AD041', 'unknown_email_template', 500, 'No email template of this name is registered (private.email_templates).');

-- ---------------------------------------------------------------------------------------------
-- Job kinds: the registry the queue references, one retry policy per kind
-- ---------------------------------------------------------------------------------------------
create table private.job_kinds (
  kind text primary key constraint job_kinds_kind_format check (kind ~ '^[a-z_]+\.[a-z_]+$'),
  max_attempts int not null constraint job_kinds_max_attempts_range check (max_attempts between 1 and 100),
  base_backoff interval not null constraint job_kinds_base_backoff_positive check (base_backoff > interval '0'),
  -- the longest wait between two attempts (null: base × 2^(attempt−1) without a cap)
  max_backoff interval constraint job_kinds_max_backoff_range check (max_backoff >= base_backoff),
  lease interval not null constraint job_kinds_lease_positive check (lease > interval '0'),
  -- private.<fn>(p_job private.outbox, p_error text, p_dead boolean, p_now timestamptz) returns text,
  -- called by private.outbox_settle in its transaction after every failed attempt of this kind
  on_failure text constraint job_kinds_on_failure_format check (on_failure ~ '^private\.[a-z_][a-z0-9_]*$'),
  description text not null constraint job_kinds_description_length check (char_length(description) <= 500)
);
alter table private.job_kinds enable row level security;
comment on table private.job_kinds is
  'Registered job kinds with their retry policy; every kind has a handler in shared/worker.py.';

-- Per-kind values from the settings they replace (whatever a deployment had tuned).
insert into private.job_kinds (kind, max_attempts, base_backoff, max_backoff, lease, on_failure, description)
select k.kind,
       coalesce((select (s.value #>> '{}')::int from private.settings s where s.key = k.attempts_key), 8),
       coalesce((select (s.value #>> '{}')::interval from private.settings s where s.key = k.backoff_key),
                k.default_backoff),
       case when k.max_backoff_key is null then null
            else coalesce((select (s.value #>> '{}')::interval from private.settings s where s.key = k.max_backoff_key),
                          interval '6 hours') end,
       coalesce((select (s.value #>> '{}')::interval from private.settings s where s.key = k.lease_key),
                interval '5 minutes'),
       k.on_failure, k.description
from (values
  ('email.send', 'outbox.max_attempts', 'outbox.base_backoff', interval '30 seconds', null, 'outbox.lease', null,
   'a templated email to a user (private.enqueue_email); Resend or .eml files'),
  ('email.support_alert', 'outbox.max_attempts', 'outbox.base_backoff', interval '30 seconds', null, 'outbox.lease',
   null, 'an alert to SUPPORT_EMAIL (an accepted session not started)'),
  ('livekit.delete_room', 'outbox.max_attempts', 'outbox.base_backoff', interval '30 seconds', null, 'outbox.lease',
   null, 'close a session''s LiveKit room'),
  ('stripe.refresh_account', 'payments.max_attempts', 'payments.retry_base', interval '1 minute',
   'payments.retry_max', 'payments.claim_lease', null,
   'refetch a Connect account whose account.updated events tied (accounts.retrieve)'),
  ('stripe.refund', 'payments.max_attempts', 'payments.retry_base', interval '1 minute', 'payments.retry_max',
   'payments.claim_lease', 'private.refund_job_failed', 'send a queued card refund (refunds.create)'),
  ('stripe.transfer', 'payments.max_attempts', 'payments.retry_base', interval '1 minute', 'payments.retry_max',
   'payments.claim_lease', 'private.payout_job_failed', 'pay a queued payout (transfers.create)'),
  ('stripe.transfer_reversal', 'payments.max_attempts', 'payments.retry_base', interval '1 minute',
   'payments.retry_max', 'payments.claim_lease', 'private.reversal_job_failed',
   'take a payee''s share back after a refund (transfers.reversals.create)')
) as k(kind, attempts_key, backoff_key, default_backoff, max_backoff_key, lease_key, on_failure, description);

delete from private.settings
where key in ('outbox.max_attempts', 'outbox.base_backoff', 'outbox.lease', 'payments.retry_base',
              'payments.retry_max', 'payments.max_attempts', 'payments.claim_lease');

-- The queue references the registry: a row of an unknown kind cannot exist.
alter table private.outbox
  add constraint outbox_kind_fkey foreign key (kind) references private.job_kinds (kind) on delete restrict;
create index outbox_kind_next_attempt_idx on private.outbox (kind, next_attempt_at);  -- FK; claim per kind
comment on table private.outbox is
  'The job queue: every side effect (email, room close, Stripe call), with retries, a lease and dead letters.';

-- ---------------------------------------------------------------------------------------------
-- Email templates: one row per template in shared/email_templates/ (a test compares them)
-- ---------------------------------------------------------------------------------------------
create table private.email_templates (
  name text primary key constraint email_templates_name_format check (name ~ '^[a-z][a-z0-9_]*$'),
  has_html boolean not null,  -- <name>.html next to <name>.txt
  transactional boolean not null default true,  -- false: only to users who keep marketing_emails on
  description text not null constraint email_templates_description_length check (char_length(description) <= 500)
);
alter table private.email_templates enable row level security;
comment on table private.email_templates is
  'Email templates private.enqueue_email accepts; each is a file pair in shared/email_templates/.';

insert into private.email_templates (name, has_html, transactional, description) values
  ('booking_confirmed', true, true, 'a session was booked (free, credit or paid)'),
  ('mechanic_assigned', true, true, 'a mechanic took the session'),
  ('session_starting', true, true, 'a scheduled session starts in 5 minutes'),
  ('session_ended', true, false, 'the session completed (review link)'),
  ('summary_delivered', true, true, 'the session completed with the mechanic''s notes'),
  ('mechanic_nudge', true, true, 'an accepted session was not started after 3 minutes'),
  ('support_alert', false, true, 'to SUPPORT_EMAIL: an accepted session was not started after 5 minutes'),
  ('session_reminder', true, true, 'a booked session starts soon'),
  ('booking_rescheduled', true, true, 'a booked session moved'),
  ('booking_cancelled', true, true, 'a booked session was cancelled'),
  ('booking_slot_lost', true, true, 'a paid hold could not be kept (refunded in full)');

-- ---------------------------------------------------------------------------------------------
-- The Stripe worker's rows become jobs (keys = the Stripe idempotency keys they always used)
-- ---------------------------------------------------------------------------------------------
-- A row claimed by a worker that never recorded it waits for the end of its lease, as before.
insert into private.outbox (kind, dedupe_key, payload, attempts, next_attempt_at, last_error, created_at)
select 'stripe.refund', format('refund:%s:%s', r.payment_id, r.seq), jsonb_build_object('refund_id', r.id),
       r.attempts,
       case when r.status = 'processing' then coalesce(r.claimed_at, now())
                                              + (select k.lease from private.job_kinds k where k.kind = 'stripe.refund')
            else coalesce(r.next_attempt_at, now()) end,
       r.last_error, r.created_at
from public.refunds r
where r.destination = 'card' and r.stripe_refund_id is null and r.status in ('queued', 'processing')
on conflict (dedupe_key) do nothing;

insert into private.outbox (kind, dedupe_key, payload, attempts, next_attempt_at, last_error, created_at)
select 'stripe.transfer',
       format('transfer:%s:%s', p.session_id, p.payee_id)
         || case when pay.extension_id is not null then ':' || p.payment_id::text else '' end,
       jsonb_build_object('payout_id', p.id), p.attempts,
       case when p.status = 'processing' then coalesce(p.claimed_at, now())
                                              + (select k.lease from private.job_kinds k where k.kind = 'stripe.transfer')
            else coalesce(p.next_attempt_at, now()) end,
       p.last_error, p.created_at
from public.payouts p join public.payments pay on pay.id = p.payment_id
where p.status in ('queued', 'processing')
on conflict (dedupe_key) do nothing;

insert into private.outbox (kind, dedupe_key, payload, attempts, next_attempt_at, last_error, created_at)
select 'stripe.transfer_reversal', format('reversal:%s:%s', v.payout_id, v.refund_id),
       jsonb_build_object('reversal_id', v.id), v.attempts,
       case when v.status = 'processing' then coalesce(v.claimed_at, now())
                                              + (select k.lease from private.job_kinds k
                                                 where k.kind = 'stripe.transfer_reversal')
            else coalesce(v.next_attempt_at, now()) end,
       v.last_error, v.created_at
from public.transfer_reversals v join public.payouts p on p.id = v.payout_id
where v.status in ('queued', 'processing') and p.status = 'paid'
on conflict (dedupe_key) do nothing;

insert into private.outbox (kind, dedupe_key, payload, next_attempt_at)
select 'stripe.refresh_account', 'refresh_account:' || a.stripe_account_id,
       jsonb_build_object('account', a.stripe_account_id), a.stripe_refresh_requested_at
from public.payout_accounts a
where a.stripe_refresh_requested_at is not null and a.stripe_account_id is not null
on conflict (dedupe_key) do nothing;

-- The per-table claim and record steps the queue replaces.
drop function if exists private.claim_refunds(int, timestamptz);
drop function if exists private.record_refund_failure(uuid, text, timestamptz);
drop function if exists private.claim_payouts(int, timestamptz);
drop function if exists private.record_payout_failure(uuid, text, timestamptz);
drop function if exists private.claim_reversals(int, timestamptz);
drop function if exists private.record_reversal_failure(uuid, text, timestamptz);
drop function if exists private.accounts_to_refresh(int);
drop function if exists private.payments_retry_at(int, timestamptz);

alter table public.refunds drop column attempts, drop column next_attempt_at, drop column claimed_at;
alter table public.payouts drop column attempts, drop column next_attempt_at, drop column claimed_at;
alter table public.transfer_reversals drop column attempts, drop column next_attempt_at, drop column claimed_at;
comment on table public.refunds is 'Refunds of a payment; card refunds are sent by stripe.refund jobs (shared/worker.py).';
comment on table public.payouts is
  'Transfers owed to mechanics and workshops; each queued payout is a stripe.transfer job (shared/worker.py).';
comment on column public.payouts.destination_account is
  'The account of the latest transfer attempt; null until a transfer is first attempted (its amount is then fixed).';
