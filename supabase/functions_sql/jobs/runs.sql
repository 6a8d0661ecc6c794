-- Jobs: the record of every scheduled run.

-- ---------------------------------------------------------------------------------------------
-- Cron run record
-- ---------------------------------------------------------------------------------------------
create or replace function private.cron_run_start(p_job text) returns bigint
language sql security definer set search_path = ''
as $$ insert into private.cron_runs (job) values (p_job) returning id $$;

create or replace function private.cron_run_finish(p_id bigint, p_ok boolean, p_result jsonb, p_error text)
returns void
language sql security definer set search_path = ''
as $$
  update private.cron_runs set finished_at = now(), ok = p_ok, result = p_result, error = left(p_error, 2000)
  where id = p_id
$$;
revoke execute on function private.cron_run_start(text) from public;
revoke execute on function private.cron_run_finish(bigint, boolean, jsonb, text) from public;
grant execute on function private.cron_run_start(text) to service_role;
grant execute on function private.cron_run_finish(bigint, boolean, jsonb, text) to service_role;
