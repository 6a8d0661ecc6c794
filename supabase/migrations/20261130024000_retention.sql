-- Retention (docs/jobs.md#retention): the tables that grow with every call, job or webhook keep
-- what is still needed and lose the rest, in bounded batches, through the `retention` job
-- (private.retain_* in supabase/functions_sql/jobs/retention.sql). This migration adds what the job
-- needs: its settings, a marker for trimmed webhook payloads, the indexes that find the due rows,
-- and the schedule row.

insert into private.settings (key, value, value_type, description) values
  ('retention.batch_size', '2000', 'integer',
   'most rows each retention step deletes (and, separately, trims) per run of the retention job'),
  ('retention.jobs_finished', '"30 days"', 'interval',
   'sent and skipped jobs of the job queue (private.outbox) are deleted this long after they finished'),
  ('retention.jobs_dead', '"90 days"', 'interval',
   'dead-lettered jobs (private.outbox) are deleted this long after their last attempt: time for an admin to retry them'),
  ('retention.cron_runs', '"14 days"', 'interval',
   'job run records (private.cron_runs) older than this are deleted; the newest run of each job stays'),
  ('retention.webhook_payloads', '"30 days"', 'interval',
   'the payload of a processed, settled webhook event (Stripe, LiveKit, Resend) is trimmed this long after it was processed'),
  ('retention.webhook_events', '"90 days"', 'interval',
   'webhook ledger rows (event id, type, outcome) are deleted this long after processing; longer than any provider redelivers an event'),
  ('retention.session_events', '"730 days"', 'interval',
   'status history (public.session_events) of a closed session with no open money or delivery question is deleted this long after its last change; admins'' actions stay'),
  ('retention.holds', '"7 days"', 'interval',
   'slot holds that expired or were let go (no booking made of them) are deleted this long after they expired; a checkout still open keeps its hold'),
  ('retention.rate_buckets', '"1 day"', 'interval',
   'rate-limit buckets (private.rate_buckets) idle this long, and full again, are deleted (a missing bucket is a full one)');

-- A trimmed payload keeps the event's id and type only; the row stays for dedupe.
alter table private.stripe_events add column payload_trimmed_at timestamptz;
alter table private.livekit_events add column payload_trimmed_at timestamptz;
alter table private.resend_events add column payload_trimmed_at timestamptz;
comment on column private.stripe_events.payload_trimmed_at is
  'when the retention job replaced the payload by {id, type}; the row stays for dedupe';
comment on column private.livekit_events.payload_trimmed_at is
  'when the retention job replaced the payload by {id, event}; the row stays for dedupe';
comment on column private.resend_events.payload_trimmed_at is
  'when the retention job replaced the payload by {id, type}; the row stays for dedupe';

-- The due rows of each step, found through an index (oldest first).
create index outbox_finished_idx on private.outbox (sent_at) where status in ('sent', 'skipped');
create index outbox_dead_idx on private.outbox (next_attempt_at) where status = 'dead';
create index cron_runs_started_idx on private.cron_runs (started_at);
create index stripe_events_processed_idx on private.stripe_events (processed_at) where processed_at is not null;
create index stripe_events_untrimmed_idx on private.stripe_events (processed_at)
  where processed_at is not null and payload_trimmed_at is null;
create index livekit_events_received_idx on private.livekit_events (received_at);
create index livekit_events_untrimmed_idx on private.livekit_events (received_at) where payload_trimmed_at is null;
create index resend_events_processed_idx on private.resend_events (processed_at) where processed_at is not null;
create index resend_events_untrimmed_idx on private.resend_events (processed_at)
  where processed_at is not null and payload_trimmed_at is null;
create index session_events_at_idx on public.session_events (at) where actor_role <> 'admin';
create index mechanic_commitments_lapsed_hold_idx on public.mechanic_commitments (expires_at)
  where kind = 'hold' and status in ('expired', 'released');

insert into private.schedules (name, cron, command, description) values
  ('retention', '*/5 * * * *', 'select private.run_job(''retention'')',
   'deletes or trims what the retention settings let go: finished jobs, run records, webhook payloads and '
   'ledger rows, old status history of settled sessions, lapsed slot holds, idle rate-limit buckets (bounded batches)');
