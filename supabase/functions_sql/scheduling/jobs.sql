-- Scheduling: hold expiry and opening booked sessions for joining.

-- ---------------------------------------------------------------------------------------------
-- Jobs (cron_session_timers): hold expiry and opening booked sessions for joining
-- ---------------------------------------------------------------------------------------------
create or replace function private.expire_holds(p_now timestamptz default now(), p_limit int default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_n int;
begin
  update public.mechanic_commitments c set status = 'expired'
  where c.id in (select x.id from public.mechanic_commitments x
                 where x.status = 'held' and x.expires_at <= p_now
                 order by x.expires_at limit coalesce(p_limit, private.setting_int('jobs.batch_size'))
                 for update skip locked);
  get diagnostics v_n = row_count;
  return jsonb_build_object('holds_expired', v_n);
end
$$;
revoke execute on function private.expire_holds(timestamptz, int) from public;
grant execute on function private.expire_holds(timestamptz, int) to service_role;

-- scheduled → waiting 15 minutes before the start (same LiveKit flow from there). The waiting
-- clock of the sweeps and nudges (status_changed_at) counts from the booked start, so a session
-- opened early is not a no-show before it has begun.
create or replace function private.open_scheduled_sessions(p_now timestamptz default now(), p_limit int default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_n int;
begin
  perform private.set_actor('system', 'the booked session opens');
  update public.sessions s set status = 'waiting', status_changed_at = greatest(s.scheduled_for, p_now)
  where s.id in (select x.id from public.sessions x
                 where x.status = 'scheduled' and x.mechanic_id is not null
                   and x.scheduled_for <= p_now + private.setting_interval('scheduling.open_before')
                 order by x.scheduled_for limit coalesce(p_limit, private.setting_int('jobs.batch_size'))
                 for update skip locked);
  get diagnostics v_n = row_count;
  return jsonb_build_object('sessions_opened', v_n);
end
$$;
revoke execute on function private.open_scheduled_sessions(timestamptz, int) from public;
grant execute on function private.open_scheduled_sessions(timestamptz, int) to service_role;
