-- Jobs: the request and session sweep (two-tier timeouts). Every sweep claims rows with skip
-- locked and is bounded, so runs may overlap safely.

-- ---------------------------------------------------------------------------------------------
-- cron_sweep_requests: the two-tier timeouts and the session clean-ups
-- ---------------------------------------------------------------------------------------------
create or replace function private.sweep_requests(p_now timestamptz default now(), p_limit int default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_limit int := coalesce(p_limit, private.setting_int('jobs.batch_size'));
  v_unattended int := 0;
  v_expired int := 0;
  v_no_show int := 0;
  v_orphaned int := 0;
  v_id uuid;
begin
  if v_limit < 1 or v_limit > 100000 then
    perform private.raise_error('invalid_input', 'the limit must be between 1 and 100000');
  end if;

  -- Tier 1: pending for 5 minutes → unattended (the admin queue hears of it by trigger).
  perform private.set_actor('system', 'no mechanic accepted in time');
  with due as (
    select r.id from public.session_requests r
    where r.status = 'pending'
      and r.status_changed_at <= p_now - private.setting_interval('requests.unattended_after')
    order by r.status_changed_at
    limit v_limit
    for update skip locked)
  update public.session_requests r set status = 'unattended', status_changed_at = p_now
  from due where r.id = due.id;
  get diagnostics v_unattended = row_count;

  -- Tier 2: pending or unattended for 120 minutes from filing → expired; its session is cancelled
  -- and a paid one refunded (private.expire_request, core/lifecycle.sql).
  for v_id in
    select r.session_id from public.session_requests r
    where r.status in ('pending', 'unattended')
      and r.created_at <= p_now - private.setting_interval('requests.expire_after')
    order by r.created_at
    limit v_limit
    for update skip locked
  loop
    perform private.expire_request(v_id, 'expired: no mechanic accepted within the window', p_now,
                                   'system', 'expired: no mechanic within the window');
    v_expired := v_expired + 1;
  end loop;

  -- Accepted, but the customer never joined within 30 minutes → cancelled; the mechanic is freed.
  for v_id in
    select s.id from public.sessions s
    where s.status = 'waiting'
      and s.status_changed_at <= p_now - private.setting_interval('requests.accepted_no_join_cancel_after')
      and not exists (select 1 from public.session_participants p
                      where p.session_id = s.id and p.user_id = s.customer_id and p.joined_at is not null)
    order by s.status_changed_at
    limit v_limit
    for update skip locked
  loop
    perform private.record_no_show(v_id, p_now);  -- which side never showed (operations/scheduling_stats.sql)
    perform private.cancel_session(v_id, 'the customer did not join within the window', p_now,
                                   'system', 'the customer did not join');
    v_no_show := v_no_show + 1;
  end loop;

  -- Waiting sessions nobody started within 60 minutes → cancelled (a no-show of the side that
  -- never showed up, if one did not).
  for v_id in
    select s.id from public.sessions s
    where s.status = 'waiting'
      and s.status_changed_at <= p_now - private.setting_interval('sessions.orphaned_waiting_cancel_after')
    order by s.status_changed_at
    limit v_limit
    for update skip locked
  loop
    perform private.record_no_show(v_id, p_now);
    perform private.cancel_session(v_id, 'the session was never started', p_now, 'system');
    v_orphaned := v_orphaned + 1;
  end loop;

  return jsonb_build_object('unattended', v_unattended, 'expired', v_expired, 'no_show_cancelled', v_no_show,
                            'orphaned_cancelled', v_orphaned);
end
$$;
revoke execute on function private.sweep_requests(timestamptz, int) from public;
grant execute on function private.sweep_requests(timestamptz, int) to service_role;
