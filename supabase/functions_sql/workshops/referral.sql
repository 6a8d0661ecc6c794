-- Workshops: the referral fee (docs/workshops.md, "Referral fee"). A completed appointment that
-- came from a delivered diagnostic session by a virtual-only mechanic accrues
-- workshops.referral_fee_bps of its invoice (rounded down to a cent), owed by the workshop to
-- that mechanic; the workshop's next payouts are lowered by it (oldest fee first) and a referral
-- payout of the same payment pays the mechanic through the normal transfer path.
--
-- Locking order: payment → payouts → referral fees (refunds take payment → payouts; a workshop
-- payout being released holds its own row, then locks the workshop's open fees).

drop trigger if exists _010_set_updated_at on public.referral_fees;
create trigger _010_set_updated_at before update on public.referral_fees
  for each row execute function private.tg__set_updated_at();

-- ---------------------------------------------------------------------------------------------
-- Accrual: called by complete_appointment (workshops/appointments) in its transaction. Idempotent
-- (one fee per appointment). No fee when: no referring mechanic; an invoice of 0; the diagnostic
-- session is not the referrer's, not the same customer's, not completed or not delivered (a
-- mechanic booking itself through a second customer account gains nothing without evidence of
-- delivery); the referrer was not virtual-only when the diagnosis was settled (its payment's split
-- rule records the type; a session without a payment: the type now); the referrer belongs to the
-- appointment's workshop (a member of its staff, or affiliated with it) — self-referral.
-- ---------------------------------------------------------------------------------------------
create or replace function private.referral_on_appointment_completed(p_appointment_id uuid) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_appt public.workshop_appointments;
  v_session public.sessions;
  v_type public.mechanic_type;
  v_bps int;
  v_amount int;
begin
  select * into v_appt from public.workshop_appointments where id = p_appointment_id for update;
  if not found or v_appt.status <> 'completed' or v_appt.referring_mechanic_id is null
     or coalesce(v_appt.invoice_cents, 0) <= 0 or v_appt.diagnostic_session_id is null then
    return;
  end if;
  if exists (select 1 from public.referral_fees f where f.appointment_id = p_appointment_id) then
    return;
  end if;
  select * into v_session from public.sessions where id = v_appt.diagnostic_session_id;
  if v_session.id is null or v_session.mechanic_id is distinct from v_appt.referring_mechanic_id
     or v_session.customer_id <> v_appt.customer_id or v_session.status <> 'completed'
     or v_session.delivery is distinct from 'delivered' then
    return;
  end if;
  v_type := coalesce(
    (select r.mechanic_type from public.payments p join public.revenue_split_rules r on r.id = p.split_rule_id
     where p.session_id = v_session.id and p.extension_id is null and p.settled_at is not null limit 1),
    (select m.mechanic_type from public.mechanics m where m.id = v_appt.referring_mechanic_id));
  if v_type is distinct from 'virtual_only' then
    return;
  end if;
  if exists (select 1 from public.organization_members om
             where om.organization_id = v_appt.workshop_id and om.user_id = v_appt.referring_mechanic_id)
     or exists (select 1 from public.mechanics m
                where m.id = v_appt.referring_mechanic_id and m.organization_id = v_appt.workshop_id) then
    return;
  end if;
  v_bps := private.setting_int('workshops.referral_fee_bps');
  v_amount := floor(v_appt.invoice_cents::numeric * v_bps / 10000)::int;
  if v_amount <= 0 then
    return;
  end if;
  insert into public.referral_fees (appointment_id, workshop_id, mechanic_id, diagnostic_session_id, referrer_type,
                                    invoice_cents, fee_bps, amount_cents, currency, accrued_at)
  values (v_appt.id, v_appt.workshop_id, v_appt.referring_mechanic_id, v_session.id, v_type,
          v_appt.invoice_cents, v_bps, v_amount, v_appt.currency, coalesce(v_appt.completed_at, now()))
  on conflict (appointment_id) do nothing;
end
$$;
revoke execute on function private.referral_on_appointment_completed(uuid) from public;
grant execute on function private.referral_on_appointment_completed(uuid) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Settlement: a workshop payout never attempted that becomes `queued` (released after the
-- objection window, its payee activated, an admin's decision: every path, hence a trigger) pays
-- the workshop's open fees first, oldest first, up to its amount. Its amount is lowered (its
-- original_amount_cents stays), each deduction recorded, and per mechanic a referral payout of the
-- same payment carries the deducted cents: queued for its stripe.transfer job, or waiting
-- (private.payout_wait_reason: no active payout account, the mechanic's standing). A payout fully
-- used for fees ends `cancelled` at 0. The fee rows are locked, so two payouts released at once
-- never settle the same cents twice.
-- ---------------------------------------------------------------------------------------------
create or replace function private.tg_payouts__referral_fees() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_fee public.referral_fees;
  v_ref public.payouts;
  v_left int := new.amount_cents;
  v_cut int;
  v_reason text;
begin
  if old.status = 'queued' then
    return new;
  end if;
  for v_fee in
    select * from public.referral_fees f
    where f.workshop_id = new.organization_id and f.status = 'accrued' and f.currency = new.currency
    order by f.accrued_at, f.id
    for update
  loop
    exit when v_left <= 0;
    v_cut := least(v_left, v_fee.amount_cents - v_fee.settled_cents);
    continue when v_cut <= 0;
    select * into v_ref from public.payouts p
    where p.referral_of_payout_id = new.id and p.mechanic_id = v_fee.mechanic_id for update;
    if found then
      continue when v_ref.destination_account is not null or v_ref.status not in ('waiting', 'queued');
      update public.payouts set original_amount_cents = original_amount_cents + v_cut,
                                amount_cents = amount_cents + v_cut
      where id = v_ref.id returning * into v_ref;
    else
      insert into public.payouts (payment_id, session_id, payee_kind, mechanic_id, share_bps, original_amount_cents,
                                  amount_cents, currency, status, waiting_reason, release_at, referral_of_payout_id)
      values (new.payment_id, new.session_id, 'mechanic', v_fee.mechanic_id, 0, v_cut, v_cut, new.currency,
              'waiting', 'settling', least(coalesce(new.release_at, now()), now()), new.id)
      returning * into v_ref;
    end if;
    insert into public.referral_fee_deductions (fee_id, workshop_payout_id, referral_payout_id, amount_cents)
    values (v_fee.id, new.id, v_ref.id, v_cut);
    update public.referral_fees
    set settled_cents = settled_cents + v_cut,
        status = case when settled_cents + v_cut = amount_cents then 'settled' else 'accrued' end,
        settled_at = case when settled_cents + v_cut = amount_cents then now() end
    where id = v_fee.id;
    v_left := v_left - v_cut;
    v_reason := private.payout_wait_reason(v_ref.id, now());
    if v_reason is null and v_ref.status = 'waiting' then
      update public.payouts set status = 'queued', waiting_reason = null where id = v_ref.id;
    elsif v_reason is not null then
      update public.payouts set status = 'waiting', waiting_reason = v_reason where id = v_ref.id;
    end if;
  end loop;
  new.amount_cents := v_left;
  if v_left = 0 then
    new.status := 'cancelled';
    new.waiting_reason := 'used in full for referral fees owed by the workshop';
  end if;
  return new;
end
$$;
revoke execute on function private.tg_payouts__referral_fees() from public;
drop trigger if exists _200_referral_fees on public.payouts;
create trigger _200_referral_fees before update of status on public.payouts
  for each row when (new.status = 'queued' and new.payee_kind = 'workshop' and new.destination_account is null
                     and new.amount_cents > 0)
  execute function private.tg_payouts__referral_fees();

-- A refund of the payment took p_cents back from a referral payout (lowered in place or reversed,
-- payments/refunds.sql): those cents of its fees are owed again (newest deduction first), and the
-- workshop's next payouts pay them.
create or replace function private.referral_restore(p_referral_payout_id uuid, p_cents int) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_row public.referral_fee_deductions;
  v_left int := p_cents;
  v_back int;
begin
  for v_row in
    select * from public.referral_fee_deductions d
    where d.referral_payout_id = p_referral_payout_id and d.restored_cents < d.amount_cents
    order by d.created_at desc, d.id desc
    for update
  loop
    exit when v_left <= 0;
    v_back := least(v_left, v_row.amount_cents - v_row.restored_cents);
    update public.referral_fee_deductions set restored_cents = restored_cents + v_back where id = v_row.id;
    update public.referral_fees set settled_cents = settled_cents - v_back, status = 'accrued', settled_at = null
    where id = v_row.fee_id;
    v_left := v_left - v_back;
  end loop;
end
$$;
revoke execute on function private.referral_restore(uuid, int) from public;
grant execute on function private.referral_restore(uuid, int) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Earnings: the caller's referral fees as a mechanic (no workshop given), or what a workshop owes
-- and paid (staff with see_earnings, admins). Per currency: owed_cents (accrued, not yet settled),
-- paid_cents (settled so far), fees (how many), plus the fees themselves, newest first.
-- ---------------------------------------------------------------------------------------------
create or replace function public.referral_earnings(p_workshop_id uuid default null) returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
begin
  if p_workshop_id is not null then
    if not exists (select 1 from public.organizations o where o.id = p_workshop_id)
       or (private.workshop_role(p_workshop_id, v_uid) is null and not private.is_admin()) then
      perform private.raise_error('not_found', 'no such workshop');
    end if;
    if not private.workshop_can(p_workshop_id, v_uid, 'see_earnings') then
      perform private.raise_error('not_allowed', 'the workshop''s earnings are for its owner and managers');
    end if;
  end if;
  return (
    with f as (
      select * from public.referral_fees x
      where (p_workshop_id is null and x.mechanic_id = v_uid) or x.workshop_id = p_workshop_id)
    select jsonb_build_object(
      'as', case when p_workshop_id is null then 'mechanic' else 'workshop' end,
      'mechanic_id', case when p_workshop_id is null then v_uid end,
      'workshop_id', p_workshop_id,
      'totals', coalesce((select jsonb_agg(jsonb_build_object('currency', t.currency, 'owed_cents', t.owed,
                                                              'paid_cents', t.paid, 'fees', t.n) order by t.currency)
                          from (select f.currency, sum(f.amount_cents - f.settled_cents)::int as owed,
                                       sum(f.settled_cents)::int as paid, count(*)::int as n
                                from f group by f.currency) t), '[]'::jsonb),
      'fees', coalesce((select jsonb_agg(jsonb_build_object(
                          'fee_id', f.id, 'appointment_id', f.appointment_id, 'workshop_id', f.workshop_id,
                          'mechanic_id', f.mechanic_id, 'invoice_cents', f.invoice_cents, 'fee_bps', f.fee_bps,
                          'amount_cents', f.amount_cents, 'settled_cents', f.settled_cents, 'currency', f.currency,
                          'status', f.status, 'accrued_at', f.accrued_at, 'settled_at', f.settled_at)
                          order by f.accrued_at desc, f.id)
                        from (select * from f order by f.accrued_at desc limit 200) f), '[]'::jsonb)));
end
$$;
revoke execute on function public.referral_earnings(uuid) from public, anon;
grant execute on function public.referral_earnings(uuid) to authenticated, service_role;
