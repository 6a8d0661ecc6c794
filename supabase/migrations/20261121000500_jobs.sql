-- Scheduled jobs and milestone emails: the record of every cron run, the columns that make nudges
-- and alerts happen once, users' choice about non-transactional mail, and the indexes that let the
-- sweeps touch only due rows.

insert into private.settings (key, value, description) values
  ('nudges.support_alert_after', '"5 minutes"', 'accepted but not started this long: alert support (seed 003)'),
  ('sessions.starting_notice', '"5 minutes"', 'a scheduled session''s "starting" notice goes out this long before'),
  ('jobs.batch_size', '500', 'rows one run of a sweep handles at most');

-- Every run of every cron function: when, how it ended, what it did.
create table private.cron_runs (
  id bigint generated always as identity primary key,
  job text not null constraint cron_runs_job_format check (job ~ '^cron_[a-z_]+$'),
  started_at timestamptz not null default now(),
  finished_at timestamptz,
  ok boolean,
  result jsonb,
  error text
);
create index cron_runs_job_started_idx on private.cron_runs (job, started_at desc);  -- "last runs of X"
alter table private.cron_runs enable row level security;

-- Nudge, alert and notice happen once per session (conditional updates on these columns).
alter table public.sessions
  add column nudged_at timestamptz,
  add column support_alerted_at timestamptz,
  add column starting_notice_at timestamptz;

-- Non-transactional mail (e.g. the post-session follow-up) only to users who want it.
alter table public.profiles add column marketing_emails boolean not null default true;
grant update (marketing_emails) on public.profiles to authenticated;

-- The expiry sweep reads open requests by age.
create index session_requests_open_created_idx on public.session_requests (created_at)
  where status in ('pending', 'unattended');
-- The starting notice reads scheduled sessions by start.
create index sessions_scheduled_for_idx on public.sessions (scheduled_for) where status = 'scheduled';
