-- Limits per account and rate limits (docs/trust.md, "Limits per account and rate limits").
-- Both errors answer HTTP 429: private.raise_error raises them in PostgREST's own error form
-- (SQLSTATE PGRST) so PostgREST sets the status and the Retry-After header.
insert into private.error_codes (sqlstate, name, http_status, description) values
  ('AD130', 'limit_reached', 429, 'A limit of this account is reached (open requests, free sessions, future bookings, intakes per hour, one open request per preferred mechanic).'),
  ('AD131', 'rate_limited', 429, 'Too many calls of this kind in a short time; try again after Retry-After seconds.');

insert into private.settings (key, value, value_type, description) values
  ('limits.open_requests_per_customer', '2', 'integer',
   'on-demand requests one customer may have open at once (pending, unattended, or accepted with the session not ended)'),
  ('limits.free_sessions_per_account', '1', 'integer',
   'free sessions one account may ever have, on demand or booked; a free request that ended without any mechanic taking it does not count'),
  ('limits.future_bookings_per_customer', '3', 'integer',
   'booked sessions not yet ended plus live holds one customer may have at once'),
  ('limits.intakes_per_hour', '20', 'integer',
   'intakes one customer may create in any hour'),
  ('rate_limit.enabled', 'true', 'boolean',
   'whether write RPCs called through the API take a token from the caller''s bucket (private.pre_request)'),
  ('rate_limit.request.capacity', '30', 'integer',
   'bucket size of RPC class request (creating demand: requests, holds, bookings): calls one user may make in a burst'),
  ('rate_limit.request.refill_per_minute', '10', 'number',
   'tokens per minute added back to a user''s bucket of RPC class request'),
  ('rate_limit.accept.capacity', '60', 'integer',
   'bucket size of RPC class accept (taking, declining and releasing requests)'),
  ('rate_limit.accept.refill_per_minute', '30', 'number',
   'tokens per minute added back to a user''s bucket of RPC class accept'),
  ('rate_limit.session.capacity', '120', 'integer',
   'bucket size of RPC class session (starting, ending, extending sessions; heartbeats, shifts)'),
  ('rate_limit.session.refill_per_minute', '60', 'number',
   'tokens per minute added back to a user''s bucket of RPC class session'),
  ('rate_limit.write.capacity', '120', 'integer',
   'bucket size of RPC class write (every other write RPC: settings, calendars, admin actions)'),
  ('rate_limit.write.refill_per_minute', '60', 'number',
   'tokens per minute added back to a user''s bucket of RPC class write');

-- One open request aimed at one preferred mechanic per customer: a customer cannot hide many
-- requests from every other mechanic behind one preferred mechanic's exclusive window. The
-- count under the customer's lock refuses first with limit_reached; this index holds under any race.
create unique index session_requests_one_open_per_preferred on public.session_requests
  (customer_id, preferred_mechanic_id)
  where preferred_mechanic_id is not null and status in ('pending', 'unattended');

-- Which bucket each write RPC of `public` takes its token from. A test requires a row for every
-- function of `public` that authenticated may execute and that is not read-only.
create table private.rpc_rate_classes (
  function_name text primary key constraint rpc_rate_classes_name_format check (function_name ~ '^[a-z][a-z0-9_]*$'),
  class text not null constraint rpc_rate_classes_class_format check (class ~ '^[a-z][a-z_]*$')
);
alter table private.rpc_rate_classes enable row level security;
comment on table private.rpc_rate_classes is
  'Rate-limit class of each write RPC (settings rate_limit.<class>.capacity and .refill_per_minute).';

insert into private.rpc_rate_classes (function_name, class) values
  ('request_session', 'request'),
  ('hold_slot', 'request'),
  ('book_slot', 'request'),
  ('release_hold', 'request'),
  ('reschedule_session', 'request'),
  ('cancel_scheduled_session', 'request'),
  ('accept_request', 'accept'),
  ('decline_offer', 'accept'),
  ('cancel_request', 'accept'),
  ('start_session', 'session'),
  ('end_session', 'session'),
  ('request_extension', 'session'),
  ('heartbeat', 'session'),
  ('set_online', 'session'),
  ('clock', 'session'),
  ('add_time_off', 'write'),
  ('remove_time_off', 'write'),
  ('set_booking_rules', 'write'),
  ('set_date_override', 'write'),
  ('set_mechanic_micro_settings', 'write'),
  ('set_weekly_availability', 'write'),
  ('set_workshop_hours', 'write'),
  ('reset_daily_micro_minutes', 'write'),
  ('admin_assign_request', 'write'),
  ('admin_force_end_session', 'write'),
  ('admin_grant_credit', 'write'),
  ('admin_refund', 'write'),
  ('admin_retry_outbox', 'write'),
  ('admin_set_mechanic_status', 'write'),
  ('admin_rank_request', 'write'),
  ('admin_payment_integrity', 'write'),
  ('admin_outbox', 'write'),
  ('admin_micro_dashboard', 'write'),
  ('mechanic_micro_dashboard', 'write'),
  ('workshop_micro_dashboard', 'write'),
  ('clock_status', 'write'),
  ('can_accept_session', 'write'),
  ('mechanic_calendar', 'write'),
  ('available_mechanics', 'write');

-- Token buckets, one per (user, class). UNLOGGED: no WAL for a row written on every write call;
-- after a crash the table is empty, which only refills every bucket (a limit is briefly looser,
-- never stricter), and it is not copied to read replicas (nothing reads it there).
create unlogged table private.rate_buckets (
  user_id uuid not null,
  class text not null,
  tokens double precision not null,
  updated_at timestamptz not null,
  primary key (user_id, class)
);
alter table private.rate_buckets enable row level security;
comment on table private.rate_buckets is
  'Per-user token buckets of the write-RPC rate limit (unlogged: emptied by a crash, which only refills them).';

-- PostgREST calls private.pre_request() at the start of every request's transaction, after it set
-- the role and request.* settings. On Supabase this role setting is how a project configures it;
-- PostgREST reads it at start and on `notify pgrst, 'reload config'`.
alter role authenticator set pgrst.db_pre_request to 'private.pre_request';
notify pgrst, 'reload config';
