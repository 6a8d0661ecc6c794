-- Operations: the overview of the business and the request sweep run by hand (docs/operations.md#overview).

insert into private.error_codes (sqlstate, name, http_status, description) values
  ('AD255', 'overview_range_invalid', 400, 'The overview''s range must be finite and end after it starts.'),
  ('AD256', 'overview_range_too_long', 400, 'The overview''s range is longer than operations.overview_max_days days.');

insert into private.settings (key, value, value_type, description) values
  ('operations.overview_max_days', '366', 'integer',
   'longest range, in days, of admin_overview (p_to − p_from)');

insert into private.rpc_rate_classes (function_name, class) values
  ('admin_overview', 'admin'),
  ('admin_run_sweep', 'admin')
on conflict (function_name) do update set class = excluded.class;

-- The overview's range reads: payments by paid_at and by settled_at, payouts by paid_at, refunds,
-- credit entries and reviews by created_at, sessions by ended_at, requests by accepted_at.
create index if not exists payments_paid_at_idx on public.payments (paid_at);
create index if not exists payments_settled_at_idx on public.payments (settled_at) where settled_at is not null;
create index if not exists payouts_paid_at_idx on public.payouts (paid_at) where paid_at is not null;
create index if not exists refunds_created_at_idx on public.refunds (created_at);
create index if not exists credit_ledger_created_at_idx on public.credit_ledger (created_at);
create index if not exists sessions_created_at_idx on public.sessions (created_at);
create index if not exists sessions_ended_at_idx on public.sessions (ended_at) where ended_at is not null;
create index if not exists session_requests_accepted_at_idx on public.session_requests (accepted_at)
  where accepted_at is not null;
create index if not exists mechanic_reviews_created_at_idx on public.mechanic_reviews (created_at);
