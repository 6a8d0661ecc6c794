-- Delivery events of our email (docs/journey.md, "Delivery events"): Resend's signed webhook
-- events, each stored once; what became of each email we sent through Resend; the addresses that
-- hard-bounced or complained, to which no marketing email goes any more.

insert into private.error_codes (sqlstate, name, http_status, description) values
  ('AD240', 'email_events_not_configured', 503,
   'Email delivery events are not configured on this server (RESEND_WEBHOOK_SECRET).');

-- ---------------------------------------------------------------------------------------------
-- Resend's webhook events: the ledger that makes each event apply once (keyed by its svix-id,
-- which Resend keeps across its retries of one event)
-- ---------------------------------------------------------------------------------------------
create table private.resend_events (
  id text primary key constraint resend_events_id_format check (id ~ '^[A-Za-z0-9_.:-]{1,255}$'),
  type text not null constraint resend_events_type_length check (char_length(type) between 1 and 200),
  email_id text constraint resend_events_email_id_length check (char_length(email_id) between 1 and 200),
  created timestamptz not null,  -- the event's created_at: its time, whatever order it arrives in
  payload jsonb not null,
  received_at timestamptz not null default now(),
  processed_at timestamptz,
  -- applied, no_change, ignored (a type we do not record), unknown_email (no email of ours has
  -- that id yet: replayed when one is recorded)
  outcome text
);
create index resend_events_email_id_idx on private.resend_events (email_id, created) where email_id is not null;
alter table private.resend_events enable row level security;
comment on table private.resend_events is
  'Every verified Resend webhook event, once (id = svix-id); processed_at set in the handling transaction.';

-- ---------------------------------------------------------------------------------------------
-- Emails sent through Resend, and what became of each
-- ---------------------------------------------------------------------------------------------
create table private.email_deliveries (
  id bigint generated always as identity primary key,
  resend_id text not null constraint email_deliveries_resend_id_key unique
    constraint email_deliveries_resend_id_length check (char_length(resend_id) between 1 and 200),
  outbox_id bigint references private.outbox (id) on delete set null,  -- the job that sent it
  dedupe_key text,
  template text not null constraint email_deliveries_template_length check (char_length(template) between 1 and 100),
  user_id uuid references auth.users (id) on delete set null,
  session_id uuid references public.sessions (id) on delete set null,
  to_address text not null constraint email_deliveries_to_address_length check (char_length(to_address) between 3 and 320),
  -- the furthest status reached (private.email_status_rank): never moves back
  status text not null default 'sent' constraint email_deliveries_status_check
    check (status in ('sent', 'delivery_delayed', 'delivered', 'bounced', 'complained')),
  bounce_type text constraint email_deliveries_bounce_type_length check (char_length(bounce_type) <= 100),
  sent_at timestamptz not null default now(),
  -- the first time each event happened (the event's own time)
  delivery_delayed_at timestamptz,
  delivered_at timestamptz,
  bounced_at timestamptz,
  complained_at timestamptz,
  updated_at timestamptz not null default now()
);
create index email_deliveries_user_id_idx on private.email_deliveries (user_id, sent_at);  -- admin; FK
create index email_deliveries_session_id_idx on private.email_deliveries (session_id);  -- FK
create index email_deliveries_outbox_id_idx on private.email_deliveries (outbox_id);  -- FK
create index email_deliveries_to_address_idx on private.email_deliveries (lower(to_address));
alter table private.email_deliveries enable row level security;
comment on table private.email_deliveries is
  'Each email sent through Resend (its id), the job and recipient, and the delivery events Resend reported.';

-- ---------------------------------------------------------------------------------------------
-- Suppressed addresses: a hard bounce or a complaint; lifted by an admin (the row stays, as history)
-- ---------------------------------------------------------------------------------------------
create table private.email_suppressions (
  id bigint generated always as identity primary key,
  address text not null constraint email_suppressions_address_lower
    check (address = lower(btrim(address)) and char_length(address) between 3 and 320),
  reason text not null constraint email_suppressions_reason_check check (reason in ('hard_bounce', 'complaint')),
  resend_event_id text references private.resend_events (id) on delete set null,
  delivery_id bigint references private.email_deliveries (id) on delete set null,
  created_at timestamptz not null default now(),  -- the event's time
  lifted_at timestamptz,
  lifted_by uuid references auth.users (id) on delete set null,
  lift_note text constraint email_suppressions_lift_note_length check (char_length(lift_note) <= 1000)
);
create unique index email_suppressions_active_key on private.email_suppressions (address) where lifted_at is null;
create index email_suppressions_resend_event_id_idx on private.email_suppressions (resend_event_id);  -- FK
create index email_suppressions_delivery_id_idx on private.email_suppressions (delivery_id);  -- FK
create index email_suppressions_lifted_by_idx on private.email_suppressions (lifted_by);  -- FK
alter table private.email_suppressions enable row level security;
comment on table private.email_suppressions is
  'Addresses that no marketing email goes to (hard bounce or complaint) while lifted_at is null.';

grant select, insert, update on private.resend_events, private.email_deliveries, private.email_suppressions
  to service_role;

-- The admin's lift of a suppression is a write RPC (rate class admin); the reads are stable.
insert into private.rpc_rate_classes (function_name, class) values
  ('admin_lift_email_suppression', 'admin');
