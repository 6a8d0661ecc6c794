-- Operations: suspension that cleans up (docs/operations.md, "Suspension"). Suspending a mechanic
-- is one transaction, under the lock of its mechanics row (the accept path takes the same lock, so
-- an accept either happens before and is released here, or after and is refused):
--   * accepted requests not yet started go back to the queue, released by the system (no count
--     towards the mechanic's release limit; the customer is told: journey/messages.sql);
--   * offers waiting for it are withdrawn (routing offers the request to the next mechanic);
--   * it goes offline and leaves approved standing; trust/standing.sql does the rest of losing
--     standing: its future bookings are cancelled and refunded in full (the cancel lifecycle emails
--     each customer booking_cancelled), its payouts are held;
--   * it is taken off the workshop appointments it was to work (confirmed, not started): each stays
--     confirmed with its workshop, its committed time freed, for the workshop to assign another;
--   * live sessions run to their end (completion does not require standing).
-- Reinstating restores approved standing and releases the payout hold (admin_release_payouts);
-- what was cancelled stays cancelled.

-- Releases, by the system, the accepted requests of mechanic `p_mechanic_id` whose session has not
-- started; returns their ids.
create or replace function private.release_accepted_requests(p_mechanic_id uuid, p_now timestamptz)
returns uuid[]
language plpgsql security definer set search_path = ''
as $$
declare
  v_r public.session_requests;
  v_ids uuid[] := '{}';
begin
  for v_r in
    select r.* from public.session_requests r join public.sessions s on s.id = r.session_id
    where r.mechanic_id = p_mechanic_id and r.status = 'accepted' and s.status = 'waiting'
    order by r.id
    for update of r, s
  loop
    update public.session_requests
    set status = 'pending', mechanic_id = null, accepted_at = null, status_changed_at = p_now,
        approval_pending_until = null
    where id = v_r.id;
    update public.sessions set status = 'pending', mechanic_id = null, status_changed_at = p_now
    where id = v_r.session_id;
    perform private.micro_settle(v_r.session_id, p_now);  -- reserved micro minutes count nothing
    delete from public.session_participants where session_id = v_r.session_id and user_id = p_mechanic_id;
    perform private.release_commitment(v_r.session_id, 'released', p_now);
    update public.session_offers set status = 'declined', responded_at = p_now
    where request_id = v_r.id and mechanic_id = p_mechanic_id;
    insert into private.request_releases (request_id, mechanic_id, released_at, by_system)
    values (v_r.id, p_mechanic_id, p_now, true);
    update public.intakes set status = 'pending'
    where id = (select s.intake_id from public.sessions s where s.id = v_r.session_id);
    v_ids := v_ids || v_r.id;
  end loop;
  return v_ids;
end
$$;
revoke execute on function private.release_accepted_requests(uuid, timestamptz) from public;
grant execute on function private.release_accepted_requests(uuid, timestamptz) to service_role;

create or replace function public.admin_suspend_mechanic(p_mechanic_id uuid, p_reason text) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_admin uuid := private.require_admin();
  v_reason text := private.check_text('p_reason', p_reason, true);
  v_m public.mechanics;
  v_released uuid[];
  v_withdrawn int;
  v_cancelled uuid[];
  v_unassigned uuid[] := '{}';
  v_a public.workshop_appointments;
  v_result jsonb;
begin
  perform private.require_arg('p_mechanic_id', p_mechanic_id);
  select * into v_m from public.mechanics where id = p_mechanic_id for update;
  if not found then
    perform private.raise_error('not_found', 'no such mechanic');
  end if;
  if v_m.status <> 'approved' then
    perform private.raise_error('mechanic_not_suspendable',
      format('the mechanic is %s: only an approved mechanic is suspended', v_m.status));
  end if;
  perform private.set_actor('admin', format('mechanic suspended: %s', v_reason));
  v_released := private.release_accepted_requests(p_mechanic_id, now());
  with w as (
    update public.session_offers set status = 'withdrawn'
    where mechanic_id = p_mechanic_id and status in ('offered', 'queued')
    returning 1)
  select count(*) into v_withdrawn from w;
  for v_a in
    select * from public.workshop_appointments a
    where a.mechanic_id = p_mechanic_id and a.status = 'confirmed' and a.starts_at > now()
    order by a.id for update
  loop
    perform private.release_appointment_mechanic(v_a, 'released');
    update public.workshop_appointments set mechanic_id = null, commitment_id = null where id = v_a.id;
    v_unassigned := v_unassigned || v_a.id;
  end loop;
  -- what losing standing cancels (trust/standing.sql): its sessions not yet started
  select coalesce(array_agg(s.id order by s.id), '{}') into v_cancelled
  from public.sessions s where s.mechanic_id = p_mechanic_id and s.status in ('scheduled', 'waiting');
  update public.mechanics set status = 'suspended', is_available = false where id = p_mechanic_id;
  v_result := jsonb_build_object(
    'mechanic_id', p_mechanic_id, 'status', 'suspended',
    'released_requests', to_jsonb(v_released), 'offers_withdrawn', v_withdrawn,
    'cancelled_sessions', to_jsonb(v_cancelled), 'appointments_unassigned', to_jsonb(v_unassigned),
    'live_sessions', (select count(*) from public.sessions s where s.mechanic_id = p_mechanic_id and s.status = 'live'),
    'payouts_held', (select m.payouts_held from public.mechanics m where m.id = p_mechanic_id));
  perform private.record_admin_action('mechanic.suspend', 'mechanic', p_mechanic_id, v_reason, v_result);
  return v_result;
end
$$;
revoke execute on function public.admin_suspend_mechanic(uuid, text) from public, anon;
grant execute on function public.admin_suspend_mechanic(uuid, text) to authenticated, service_role;

create or replace function public.admin_reinstate_mechanic(p_mechanic_id uuid, p_note text default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_admin uuid := private.require_admin();
  v_note text := private.check_text('p_note', p_note);
  v_m public.mechanics;
  v_payouts jsonb;
  v_result jsonb;
begin
  perform private.require_arg('p_mechanic_id', p_mechanic_id);
  select * into v_m from public.mechanics where id = p_mechanic_id for update;
  if not found then
    perform private.raise_error('not_found', 'no such mechanic');
  end if;
  perform private.require_not_erased(p_mechanic_id);
  if v_m.status <> 'suspended' then
    perform private.raise_error('mechanic_not_suspended',
      format('the mechanic is %s: only a suspended mechanic is reinstated', v_m.status));
  end if;
  perform private.set_actor('admin', coalesce(format('mechanic reinstated: %s', v_note), 'mechanic reinstated'));
  -- it comes back offline: it goes online itself when it is ready
  update public.mechanics set status = 'approved', approved_at = coalesce(approved_at, now())
  where id = p_mechanic_id;
  v_payouts := public.admin_release_payouts(p_mechanic_id);
  v_result := jsonb_build_object('mechanic_id', p_mechanic_id, 'status', 'approved',
    'payouts_held', v_payouts -> 'payouts_held', 'payouts_queued', v_payouts -> 'payouts_queued',
    'payouts_waiting', v_payouts -> 'payouts_waiting');
  perform private.record_admin_action('mechanic.reinstate', 'mechanic', p_mechanic_id, v_note, v_result);
  return v_result;
end
$$;
revoke execute on function public.admin_reinstate_mechanic(uuid, text) from public, anon;
grant execute on function public.admin_reinstate_mechanic(uuid, text) to authenticated, service_role;
