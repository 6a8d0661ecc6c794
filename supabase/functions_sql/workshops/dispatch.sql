-- Workshops: dispatch of micro-sessions. Dispatchers (permission `dispatch`) of a mechanic's
-- workshop pause and resume its micro-sessions, and, when the workshop does not accept micro-sessions
-- automatically (organizations.auto_accept_micro = false), approve each accept of a micro request by
-- one of its mechanics within workshops.micro_approval_window; a lapsed approval returns the request
-- to the other mechanics (docs/workshops.md, "Specialists and dispatch").

-- The mechanic's row, locked, for a dispatcher of its workshop (platform admins too).
create or replace function private.lock_mechanic_for_dispatch(p_mechanic_id uuid, p_uid uuid)
returns public.mechanics
language plpgsql security definer set search_path = ''
as $$
declare
  v_m public.mechanics;
begin
  perform private.require_arg('p_mechanic_id', p_mechanic_id);
  select * into v_m from public.mechanics where id = p_mechanic_id for no key update;
  if not found then
    perform private.raise_error('not_found', 'no such mechanic');
  end if;
  if v_m.organization_id is null then
    perform private.raise_error('not_allowed', 'only a workshop''s mechanics are dispatched');
  end if;
  if not private.workshop_can(v_m.organization_id, p_uid, 'dispatch') then
    perform private.raise_error('not_allowed', 'only the dispatchers of its workshop dispatch a mechanic');
  end if;
  return v_m;
end
$$;
revoke execute on function private.lock_mechanic_for_dispatch(uuid, uuid) from public;
grant execute on function private.lock_mechanic_for_dispatch(uuid, uuid) to service_role;

-- Pause: the mechanic accepts no micro-session until p_until (its sessions in hand go on).
create or replace function public.pause_micro(p_mechanic_id uuid, p_until timestamptz) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
begin
  perform private.require_arg('p_until', p_until);
  if p_until <= now() or p_until > now() + private.setting_interval('workshops.max_micro_pause') then
    perform private.raise_error('invalid_input',
      format('p_until is in the future, at most %s from now', private.setting_interval('workshops.max_micro_pause')));
  end if;
  perform private.lock_mechanic_for_dispatch(p_mechanic_id, v_uid);
  update public.mechanics set micro_paused_until = p_until, micro_paused_by = v_uid where id = p_mechanic_id;
  return jsonb_build_object('mechanic_id', p_mechanic_id, 'micro_paused_until', p_until);
end
$$;
revoke execute on function public.pause_micro(uuid, timestamptz) from public, anon;
grant execute on function public.pause_micro(uuid, timestamptz) to authenticated, service_role;

create or replace function public.resume_micro(p_mechanic_id uuid) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
begin
  perform private.lock_mechanic_for_dispatch(p_mechanic_id, v_uid);
  update public.mechanics set micro_paused_until = null, micro_paused_by = v_uid where id = p_mechanic_id;
  return jsonb_build_object('mechanic_id', p_mechanic_id, 'micro_paused_until', null);
end
$$;
revoke execute on function public.resume_micro(uuid) from public, anon;
grant execute on function public.resume_micro(uuid) to authenticated, service_role;

-- Called by private.assign_request after it took a micro request for mechanic `p_m` (its row
-- locked): when the mechanic's workshop does not accept automatically, the accept waits for a
-- dispatcher until the returned time (null: nothing to wait for). One primary-key read.
create or replace function private.micro_approval_until(p_m public.mechanics, p_now timestamptz)
returns timestamptz
language plpgsql stable security definer set search_path = ''
as $$
begin
  if p_m.organization_id is null then
    return null;
  end if;
  if exists (select 1 from public.organizations o where o.id = p_m.organization_id and not o.auto_accept_micro) then
    return p_now + private.setting_interval('workshops.micro_approval_window');
  end if;
  return null;
end
$$;
revoke execute on function private.micro_approval_until(public.mechanics, timestamptz) from public;
grant execute on function private.micro_approval_until(public.mechanics, timestamptz) to service_role;

-- A dispatcher of the accepting mechanic's workshop approves the accept within the window: the
-- session is the mechanic's from now on and the customer is told. The mechanic cannot approve its
-- own accept, whatever its role.
create or replace function public.approve_micro_accept(p_request_id uuid) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_r public.session_requests;
  v_org uuid;
  v_s public.sessions;
begin
  perform private.require_arg('p_request_id', p_request_id);
  -- the request's lock orders this against the sweep (which skips locked rows and re-checks)
  select * into v_r from public.session_requests where id = p_request_id for update;
  if not found then
    perform private.raise_error('not_found', 'no such request');
  end if;
  -- the accepting mechanic's workshop; once the window lapsed, the one whose accept lapsed
  select m.organization_id into v_org from public.mechanics m
  where m.id = coalesce(v_r.mechanic_id,
                        (select rr.mechanic_id from private.request_releases rr
                         where rr.request_id = v_r.id and rr.by_system order by rr.released_at desc limit 1));
  if v_org is null or not private.workshop_can(v_org, v_uid, 'dispatch') then
    -- someone else's request: as if it did not exist
    perform private.raise_error('not_found', 'no such request');
  end if;
  if v_r.mechanic_id = v_uid then
    perform private.raise_error('not_allowed', 'a mechanic cannot approve its own accept');
  end if;
  if v_r.mechanic_id is null then
    perform private.raise_error('micro_approval_window_closed',
      'the time to approve this accept has passed: the request went back to the other mechanics');
  end if;
  if v_r.status <> 'accepted' or v_r.approval_pending_until is null then
    perform private.raise_error('micro_approval_not_pending', 'this request has no accept waiting for approval');
  end if;
  if v_r.approval_pending_until <= now() then
    perform private.raise_error('micro_approval_window_closed',
      'the time to approve this accept has passed: the request goes back to the other mechanics');
  end if;
  update public.session_requests
  set approval_pending_until = null, approved_by = v_uid, approved_at = now()
  where id = v_r.id;
  -- the customer hears of the mechanic now (the notice was held while the accept waited)
  select * into v_s from public.sessions where id = v_r.session_id;
  perform private.enqueue(
    'email.send',
    format('email:mechanic_assigned:%s:%s:%s:approved', v_s.id, v_s.customer_id, v_s.mechanic_id),
    jsonb_build_object('template', 'mechanic_assigned', 'user_id', v_s.customer_id, 'session_id', v_s.id,
                       'data', jsonb_build_object('mechanic_id', v_s.mechanic_id)));
  return jsonb_build_object('request_id', v_r.id, 'session_id', v_r.session_id, 'status', 'accepted',
                            'approved_at', now());
end
$$;
revoke execute on function public.approve_micro_accept(uuid) from public, anon;
grant execute on function public.approve_micro_accept(uuid) to authenticated, service_role;

-- The sweep (a step of the sweep_requests job): an accept whose approval window lapsed is released
-- by the system — the request is pending again for the other mechanics, the session pending, the
-- reserved micro minutes count nothing — and that mechanic may not take that request again, without
-- it counting towards its release limit (request_releases.by_system).
create or replace function private.lapse_micro_approvals(p_now timestamptz default now(), p_limit int default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_limit int := coalesce(p_limit, private.setting_int('jobs.batch_size'));
  v_r public.session_requests;
  v_lapsed int := 0;
begin
  perform private.set_actor('system', 'no dispatcher approved the accept in time');
  for v_r in
    select * from public.session_requests r
    where r.approval_pending_until <= p_now and r.status = 'accepted'
    order by r.approval_pending_until
    limit v_limit
    for update skip locked
  loop
    update public.session_requests
    set status = 'pending', mechanic_id = null, accepted_at = null, status_changed_at = p_now,
        approval_pending_until = null
    where id = v_r.id;
    update public.sessions set status = 'pending', mechanic_id = null, status_changed_at = p_now
    where id = v_r.session_id and status = 'waiting';
    perform private.micro_settle(v_r.session_id, p_now);
    delete from public.session_participants where session_id = v_r.session_id and user_id = v_r.mechanic_id;
    perform private.release_commitment(v_r.session_id, 'released', p_now);
    update public.session_offers set status = 'declined', responded_at = p_now
    where request_id = v_r.id and mechanic_id = v_r.mechanic_id;
    insert into private.request_releases (request_id, mechanic_id, released_at, by_system)
    values (v_r.id, v_r.mechanic_id, p_now, true);
    update public.intakes set status = 'pending'
    where id = (select s.intake_id from public.sessions s where s.id = v_r.session_id);
    v_lapsed := v_lapsed + 1;
  end loop;
  -- accepts that ended otherwise (cancelled by the customer, say) wait for nothing any more
  update public.session_requests r set approval_pending_until = null
  from (select q.id from public.session_requests q
        where q.approval_pending_until <= p_now and q.status <> 'accepted'
        limit v_limit for update skip locked) done
  where r.id = done.id;
  return jsonb_build_object('approvals_lapsed', v_lapsed);
end
$$;
revoke execute on function private.lapse_micro_approvals(timestamptz, int) from public;
grant execute on function private.lapse_micro_approvals(timestamptz, int) to service_role;

-- A session whose accept waits for a dispatcher does not start, and its room stays closed
-- (start_session, private.room_grant).
create or replace function private.require_micro_approved(p_session_id uuid) returns void
language plpgsql stable security definer set search_path = ''
as $$
begin
  if exists (select 1 from public.session_requests r
             where r.session_id = p_session_id and r.approval_pending_until is not null) then
    perform private.raise_error('micro_approval_pending',
      'the accept waits for a dispatcher of the mechanic''s workshop');
  end if;
end
$$;
revoke execute on function private.require_micro_approved(uuid) from public;
grant execute on function private.require_micro_approved(uuid) to service_role;

-- What waits for the dispatchers of workshop `p_workshop_id`: its mechanics' micro accepts not yet
-- approved, soonest deadline first, with what a dispatcher needs to decide (no contact details).
create or replace function public.micro_approvals_pending(p_workshop_id uuid) returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
begin
  perform private.require_arg('p_workshop_id', p_workshop_id);
  if not exists (select 1 from public.organizations o where o.id = p_workshop_id)
     or not private.workshop_can(p_workshop_id, v_uid, 'dispatch') then
    perform private.raise_error('not_found', 'no such workshop');
  end if;
  return coalesce((
    select jsonb_agg(jsonb_build_object(
             'request_id', r.id, 'session_id', r.session_id, 'mechanic_id', r.mechanic_id,
             'mechanic_name', m.display_name, 'approval_pending_until', r.approval_pending_until,
             'plan_code', r.plan_code, 'vehicle_make', r.vehicle_make, 'vehicle_model', r.vehicle_model,
             'vehicle_year', r.vehicle_year, 'concern', r.concern, 'accepted_at', r.accepted_at)
           order by r.approval_pending_until, r.id)
    from public.session_requests r join public.mechanics m on m.id = r.mechanic_id
    where r.approval_pending_until is not null and r.status = 'accepted' and m.organization_id = p_workshop_id),
    '[]'::jsonb);
end
$$;
revoke execute on function public.micro_approvals_pending(uuid) from public, anon;
grant execute on function public.micro_approvals_pending(uuid) to authenticated, service_role;
