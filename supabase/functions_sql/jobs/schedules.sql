-- Jobs: the jobs declared in private.schedules (migration 20261129000500), what each one runs, and
-- their scheduling with pg_cron where the extension is installed.

-- ---------------------------------------------------------------------------------------------
-- The steps of each job. A step is one SQL function returning jsonb counts; a job runs its steps in
-- order, each in its own subtransaction.
-- ---------------------------------------------------------------------------------------------
create or replace function private.job_steps(p_job text) returns text[]
language sql immutable set search_path = ''
as $$
  select case p_job
    when 'sweep_requests' then array['sweep_requests', 'lapse_micro_approvals']
    when 'dispatch' then array['dispatch_due']
    when 'nudges' then array['send_nudges']
    when 'session_timers' then array['end_overdue_sessions', 'send_starting_notices', 'expire_holds',
                                     'open_scheduled_sessions']
    when 'delivery' then array['release_held_payouts', 'refund_unverified_sessions']
    when 'retention' then array['retain_jobs', 'retain_cron_runs', 'retain_stripe_events', 'retain_livekit_events',
                                'retain_resend_events', 'retain_session_events', 'retain_holds', 'retain_rate_buckets']
  end
$$;
revoke execute on function private.job_steps(text) from public;

create or replace function private.run_job_step(p_step text, p_now timestamptz) returns jsonb
language plpgsql security definer set search_path = ''
as $$
begin
  case p_step
    when 'sweep_requests' then return private.sweep_requests(p_now);
    when 'lapse_micro_approvals' then return private.lapse_micro_approvals(p_now, 200);  -- workshops/dispatch.sql
    when 'dispatch_due' then return private.dispatch_due(p_now, 200);
    when 'send_nudges' then return private.send_nudges(p_now);
    when 'end_overdue_sessions' then return private.end_overdue_sessions(p_now, 200);
    when 'send_starting_notices' then return private.send_starting_notices(p_now);
    when 'expire_holds' then return private.expire_holds(p_now);
    when 'open_scheduled_sessions' then return private.open_scheduled_sessions(p_now);
    when 'release_held_payouts' then return private.release_held_payouts(p_now, 200);        -- trust/delivery.sql
    when 'refund_unverified_sessions' then return private.refund_unverified_sessions(p_now, 200);
    when 'retain_jobs' then return private.retain_jobs(p_now);                                 -- jobs/retention.sql
    when 'retain_cron_runs' then return private.retain_cron_runs(p_now);
    when 'retain_stripe_events' then return private.retain_stripe_events(p_now);
    when 'retain_livekit_events' then return private.retain_livekit_events(p_now);
    when 'retain_resend_events' then return private.retain_resend_events(p_now);
    when 'retain_session_events' then return private.retain_session_events(p_now);
    when 'retain_holds' then return private.retain_holds(p_now);
    when 'retain_rate_buckets' then return private.retain_rate_buckets(p_now);
  end case;
end
$$;
revoke execute on function private.run_job_step(text, timestamptz) from public;

-- Runs one job and records the run in private.cron_runs as `cron_<job>` (start; then ok with the
-- merged counts of its steps, or not ok with the errors of the steps that failed). A failing step
-- rolls back its own subtransaction only: the other steps keep their work, the run record is kept,
-- and the error is returned (not raised) so that the record commits.
create or replace function private.run_job(p_job text, p_now timestamptz default now()) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_steps text[] := private.job_steps(p_job);
  v_step text;
  v_run bigint;
  v_part jsonb;
  v_result jsonb := '{}';
  v_errors text[] := '{}';
begin
  if v_steps is null then
    perform private.raise_error('not_found', format('no such job: %s', p_job));
  end if;
  v_run := private.cron_run_start('cron_' || p_job);
  foreach v_step in array v_steps loop
    begin
      v_part := private.run_job_step(v_step, p_now);
      v_result := v_result || coalesce(v_part, '{}');
    exception when others then
      v_errors := v_errors || format('%s: %s (%s)', v_step, sqlerrm, sqlstate);
    end;
  end loop;
  if cardinality(v_errors) = 0 then
    perform private.cron_run_finish(v_run, true, v_result, null);
    return v_result;
  end if;
  perform private.cron_run_finish(v_run, false, nullif(v_result, '{}'), array_to_string(v_errors, '; '));
  return v_result || jsonb_build_object('errors', to_jsonb(v_errors));
end
$$;
revoke execute on function private.run_job(text, timestamptz) from public;
grant execute on function private.run_job(text, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- pg_cron: one pg_cron job named `autodoctor.<name>` per row. Schedules (or updates) every row and
-- unschedules our jobs whose row is gone; leaves other pg_cron jobs alone. Does nothing where
-- pg_cron is absent (the embedded PostgreSQL, the test servers): the `cron` schema is only ever
-- named in dynamic SQL, after checking that cron.schedule and cron.job exist. Idempotent.
-- ---------------------------------------------------------------------------------------------
create or replace function private.sync_pg_cron() returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_row record;
  v_jobname text;
  v_scheduled text[] := '{}';
  v_unscheduled text[] := '{}';
begin
  if to_regprocedure('cron.schedule(text,text,text)') is null or to_regprocedure('cron.unschedule(text)') is null
     or to_regclass('cron.job') is null then
    return jsonb_build_object('pg_cron', false);
  end if;
  for v_row in select s.name, s.cron, s.command from private.schedules s order by s.name loop
    execute 'select cron.schedule($1, $2, $3)' using 'autodoctor.' || v_row.name, v_row.cron, v_row.command;
    v_scheduled := v_scheduled || v_row.name;
  end loop;
  for v_jobname in execute
    'select j.jobname from cron.job j where j.jobname like ''autodoctor.%'' order by j.jobname'
  loop
    if not exists (select 1 from private.schedules s where 'autodoctor.' || s.name = v_jobname) then
      execute 'select cron.unschedule($1)' using v_jobname;
      v_unscheduled := v_unscheduled || v_jobname;
    end if;
  end loop;
  return jsonb_build_object('pg_cron', true, 'scheduled', to_jsonb(v_scheduled),
                            'unscheduled', to_jsonb(v_unscheduled));
end
$$;
revoke execute on function private.sync_pg_cron() from public;

-- A migration that adds, changes or removes a row reschedules in its own transaction.
create or replace function private.tg_schedules__sync_pg_cron() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  perform private.sync_pg_cron();
  return null;
end
$$;
revoke execute on function private.tg_schedules__sync_pg_cron() from public;
drop trigger if exists _100_sync_pg_cron on private.schedules;
create trigger _100_sync_pg_cron after insert or update or delete or truncate on private.schedules
  for each statement execute function private.tg_schedules__sync_pg_cron();

-- The rows inserted by the migration (before this trigger existed), and any change to this file.
select private.sync_pg_cron();
