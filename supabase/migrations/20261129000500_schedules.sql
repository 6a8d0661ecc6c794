-- Schedules declared in the database: the jobs that are pure SQL run where the data is. On Supabase
-- pg_cron runs each row's command (private.sync_pg_cron(), supabase/functions_sql/jobs/schedules.sql,
-- schedules them when the extension is installed); locally `autodoctor serve` runs the same rows.
-- Nothing here refers to pg_cron: the embedded PostgreSQL and the test servers do not have it.

create table private.schedules (
  name text primary key constraint schedules_name_format check (name ~ '^[a-z][a-z0-9_]*$'),
  cron text not null constraint schedules_cron_format
    check (cron ~ '^\S+( \S+){4}$'),  -- five fields: minute hour day-of-month month day-of-week
  command text not null constraint schedules_command_one_statement
    check (btrim(command) <> '' and position(';' in rtrim(btrim(command), ';')) = 0),
  description text not null default ''
);
alter table private.schedules enable row level security;
comment on table private.schedules is
  'Jobs run inside the database: pg_cron on Supabase (private.sync_pg_cron), autodoctor serve locally';

insert into private.schedules (name, cron, command, description) values
  ('sweep_requests', '* * * * *', 'select private.run_job(''sweep_requests'')',
   'pending → unattended (5 min); pending/unattended → expired (120 min, refunded); accepted but never '
   'joined → cancelled (30 min); orphaned waiting sessions → cancelled (60 min)'),
  ('dispatch', '* * * * *', 'select private.run_job(''dispatch'')',
   'routes due requests: preferred window ends, expired targeted offers, declines, releases (200 per run)'),
  ('session_timers', '* * * * *', 'select private.run_job(''session_timers'')',
   'ends live sessions past deadline + grace; "session starting" notices; expires slot holds; opens booked '
   'sessions for joining (four steps, each in its own subtransaction)'),
  ('nudges', '* * * * *', 'select private.run_job(''nudges'')',
   'accepted, not started after 3 min → nudge the mechanic; after 5 min → alert support (once each)');
