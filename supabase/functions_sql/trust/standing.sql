-- Trust: a mechanic's standing. Only an approved mechanic starts, ends or extends sessions (and
-- accepts work: private.assign_request). A mechanic who leaves approved standing has its payouts
-- held until an admin releases them (admin_release_payouts); approving it again does not release
-- them by itself: what was earned while suspended is looked at by a person first.

-- Raises mechanic_not_in_good_standing (AD104) unless the session's mechanic is approved.
create or replace function private.require_good_standing(p_mechanic_id uuid) returns void
language plpgsql stable security definer set search_path = ''
as $$
begin
  if not exists (select 1 from public.mechanics m where m.id = p_mechanic_id and m.status = 'approved') then
    perform private.raise_error('mechanic_not_in_good_standing',
      format('the mechanic is %s: the session cannot be started, ended or extended by them',
             coalesce((select m.status::text from public.mechanics m where m.id = p_mechanic_id), 'unknown')));
  end if;
end
$$;
revoke execute on function private.require_good_standing(uuid) from public;
grant execute on function private.require_good_standing(uuid) to service_role;

-- Leaving approved standing holds the payouts (flag, kept until an admin releases them).
create or replace function private.tg_mechanics__hold_payouts() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if old.status = 'approved' and new.status <> 'approved' then
    new.payouts_held := true;
  end if;
  return new;
end
$$;
revoke execute on function private.tg_mechanics__hold_payouts() from public;
drop trigger if exists _050_hold_payouts on public.mechanics;
create trigger _050_hold_payouts before update of status on public.mechanics
  for each row when (old.status is distinct from new.status) execute function private.tg_mechanics__hold_payouts();

-- Leaving approved standing: its sessions not yet started (booked, or accepted and waiting) can
-- no longer go live with it: they are cancelled and the customer refunded in full (a booked one by
-- the cancel lifecycle's own rule, a waiting one here). Payouts of its sessions not yet attempted
-- go back to waiting, with the reason.
create or replace function private.tg_mechanics__refresh_payouts() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_session_id uuid;
  v_reason text := format('the mechanic is %s', new.status);
begin
  if old.status = 'approved' and new.status <> 'approved' then
    for v_session_id in
      select s.id from public.sessions s
      where s.mechanic_id = new.id and s.status in ('scheduled', 'waiting')
      order by s.id
    loop
      perform private.lock_session_for_refund(v_session_id);
      perform private.cancel_session(v_session_id, v_reason, now());
      perform private.auto_refund(v_session_id, v_reason, now());
    end loop;
  end if;
  for v_session_id in
    select distinct p.session_id from public.payouts p join public.sessions s on s.id = p.session_id
    where s.mechanic_id = new.id and p.status in ('waiting', 'queued') and p.destination_account is null
  loop
    perform private.refresh_payouts(v_session_id, now());
  end loop;
  return null;
end
$$;
revoke execute on function private.tg_mechanics__refresh_payouts() from public;
drop trigger if exists _450_refresh_payouts on public.mechanics;
create trigger _450_refresh_payouts after update of status, payouts_held on public.mechanics
  for each row when (old.status is distinct from new.status or old.payouts_held is distinct from new.payouts_held)
  execute function private.tg_mechanics__refresh_payouts();

-- Admin: releases the payouts held for a mechanic's standing. Every payout of its sessions still
-- waiting is released from the standing rule (the objection window, a report and the payout
-- account still apply); the hold on future payouts is lifted only if the mechanic is approved.
create or replace function public.admin_release_payouts(p_mechanic_id uuid) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_admin uuid := private.require_admin();
  v_mechanic public.mechanics;
  v_session_id uuid;
  v_released bigint;
begin
  perform private.require_arg('p_mechanic_id', p_mechanic_id);
  select * into v_mechanic from public.mechanics where id = p_mechanic_id for update;
  if not found then
    perform private.raise_error('not_found', 'no such mechanic');
  end if;
  perform private.set_actor('admin', 'payouts released');
  update public.payouts p set admin_released_at = now()
  from public.sessions s
  where s.id = p.session_id and s.mechanic_id = p_mechanic_id and p.status in ('waiting', 'queued')
    and p.admin_released_at is null;
  get diagnostics v_released = row_count;
  perform private.record_admin_action('payouts.release', 'mechanic', p_mechanic_id, null,
                                      jsonb_build_object('payouts_released', v_released));
  if v_mechanic.status = 'approved' and v_mechanic.payouts_held then
    update public.mechanics set payouts_held = false where id = p_mechanic_id;  -- refreshes its payouts
  end if;
  for v_session_id in
    select distinct p.session_id from public.payouts p join public.sessions s on s.id = p.session_id
    where s.mechanic_id = p_mechanic_id and p.status = 'waiting'
  loop
    perform private.refresh_payouts(v_session_id, now());
  end loop;
  return jsonb_build_object(
    'mechanic_id', p_mechanic_id, 'released_by', v_admin,
    'payouts_held', (select m.payouts_held from public.mechanics m where m.id = p_mechanic_id),
    'payouts_queued', (select count(*) from public.payouts p join public.sessions s on s.id = p.session_id
                       where s.mechanic_id = p_mechanic_id and p.status = 'queued'),
    'payouts_waiting', coalesce((select jsonb_agg(jsonb_build_object('payout_id', p.id, 'waiting_reason', p.waiting_reason)
                                                  order by p.id)
                                 from public.payouts p join public.sessions s on s.id = p.session_id
                                 where s.mechanic_id = p_mechanic_id and p.status = 'waiting'), '[]'::jsonb));
end
$$;
revoke execute on function public.admin_release_payouts(uuid) from public, anon;
grant execute on function public.admin_release_payouts(uuid) to authenticated, service_role;
