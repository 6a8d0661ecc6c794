-- Video and chat rooms (LiveKit): the webhook event ledger, participants' presence in the room,
-- session deadlines and extensions, and the outbox through which side effects (closing a room)
-- leave the database reliably.

insert into private.error_codes (sqlstate, name, http_status, description) values
  ('AD030', 'extension_not_allowed', 409, 'This session cannot be extended (kind, state or limit).');

insert into private.settings (key, value, description) values
  ('livekit.token_grace', '"10 minutes"', 'a room token expires this long after the session''s planned end'),
  ('sessions.deadline_grace', '"2 minutes"', 'a live session past its deadline by this much is ended by the timer job'),
  ('sessions.reconcile_empty_after', '"5 minutes"', 'a live session whose room has been empty this long is completed by reconcile'),
  ('extensions.standard_minutes', '15', 'minutes a paid extension of a standard or extended session adds'),
  ('extensions.standard_price_cents', '999', 'price of one paid extension (seed 002 names the endpoint, not the price)'),
  ('outbox.max_attempts', '8', 'deliveries of an outbox row before it is dead-lettered'),
  ('outbox.base_backoff', '"30 seconds"', 'first retry delay; doubles with each attempt'),
  ('outbox.lease', '"5 minutes"', 'a row claimed by a delivery run that crashed is retried after this');

-- ---------------------------------------------------------------------------------------------
-- Sessions: deadline and extensions; participants: who is in the room
-- ---------------------------------------------------------------------------------------------
alter table public.sessions
  add column deadline_at timestamptz,
  add column extension_minutes int not null default 0
    constraint sessions_extension_minutes_nonneg check (extension_minutes >= 0),
  add column room_finished_at timestamptz;
comment on column public.sessions.deadline_at is
  'When a live session''s time is up: started_at + planned minutes + granted extensions.';
create index sessions_live_deadline_idx on public.sessions (deadline_at) where status = 'live';  -- timer job

create type public.extension_status as enum ('pending_payment', 'granted', 'cancelled');
create type public.extension_kind as enum ('micro_free', 'paid');

create table public.session_extensions (
  id uuid primary key default gen_random_uuid(),
  session_id uuid not null references public.sessions (id) on delete cascade,
  requested_by uuid not null references auth.users (id) on delete cascade,
  kind public.extension_kind not null,
  minutes int not null constraint session_extensions_minutes_range check (minutes between 1 and 120),
  price_cents int not null default 0 constraint session_extensions_price_nonneg check (price_cents >= 0),
  currency text not null default 'usd' constraint session_extensions_currency_format check (currency ~ '^[a-z]{3}$'),
  status public.extension_status not null,
  created_at timestamptz not null default now(),
  granted_at timestamptz
);
create index session_extensions_session_id_idx on public.session_extensions (session_id);  -- FK
create index session_extensions_requested_by_idx on public.session_extensions (requested_by);  -- FK
-- A micro session is extended once (seed 000).
create unique index session_extensions_one_micro on public.session_extensions (session_id)
  where kind = 'micro_free' and status <> 'cancelled';

alter table public.session_extensions enable row level security;
create policy select_session_members on public.session_extensions for select to authenticated
  using (session_id in (select private.my_session_ids()) or (select private.is_admin()));
grant select on public.session_extensions to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- LiveKit webhook ledger (keyed by the event id: duplicates have no second effect)
-- ---------------------------------------------------------------------------------------------
create table private.livekit_events (
  id text primary key constraint livekit_events_id_length check (char_length(id) between 1 and 200),
  event text not null,
  room_name text,
  participant_identity text,
  session_id uuid references public.sessions (id) on delete set null,
  occurred_at timestamptz not null,
  received_at timestamptz not null default now(),
  outcome text,
  payload jsonb not null
);
create index livekit_events_session_id_idx on private.livekit_events (session_id);  -- FK; a session's room log
alter table private.livekit_events enable row level security;

-- ---------------------------------------------------------------------------------------------
-- Outbox: every external side effect, written in the transaction that causes it.
-- ---------------------------------------------------------------------------------------------
create type private.outbox_status as enum ('pending', 'processing', 'sent', 'dead');

create table private.outbox (
  id bigint generated always as identity primary key,
  kind text not null constraint outbox_kind_format check (kind ~ '^[a-z_]+\.[a-z_]+$'),
  dedupe_key text not null constraint outbox_dedupe_key_unique unique,
  payload jsonb not null,
  status private.outbox_status not null default 'pending',
  attempts int not null default 0,
  next_attempt_at timestamptz not null default now(),
  locked_until timestamptz,
  last_error text,
  created_at timestamptz not null default now(),
  sent_at timestamptz
);
create index outbox_due_idx on private.outbox (next_attempt_at) where status in ('pending', 'processing');  -- delivery
alter table private.outbox enable row level security;
comment on table private.outbox is
  'Side effects to perform outside the database (room close, email, Stripe call), with retries and dead letters.';
