-- Scheduling: reschedule and cancel.

-- ---------------------------------------------------------------------------------------------
-- Reschedule and cancel
-- ---------------------------------------------------------------------------------------------
-- A reschedule is priced exactly as a new booking of the new slot would be: the plan's price ×
-- the slot's multiplier (private.take_slot, as hold_slot), plus the specialist surcharge when the
-- mechanic is a brand specialist for the vehicle's make (private.specialist_applies). Dearer than
-- the session's price: price_changed, and nothing changes (the whole call rolls back). Equal or
-- cheaper: the session takes the new price and the difference goes back to where it was paid
-- from (private.refund_price_difference). So a booking's price can only go down by moving it, and
-- a free booking moves only to a free slot.
create or replace function private.reschedule_session(
  p_user_id uuid, p_session_id uuid, p_new_start timestamptz, p_now timestamptz default now()
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_session public.sessions;
  v_old public.mechanic_commitments;
  v_new public.mechanic_commitments;
  v_is_admin boolean := exists (select 1 from private.admins a where a.user_id = p_user_id);
  v_specialist boolean;
  v_price int;
  v_refunded int := 0;
begin
  if p_session_id is null or p_new_start is null or not isfinite(p_new_start) then
    perform private.raise_error('invalid_input', 'p_session_id and p_new_start are required');
  end if;
  select * into v_session from public.sessions where id = p_session_id;
  if not found or (v_session.customer_id <> p_user_id and v_session.mechanic_id is distinct from p_user_id
                   and not v_is_admin) then
    perform private.raise_error('not_found', 'no such session');
  end if;
  if v_session.mechanic_id is null then
    perform private.raise_error('invalid_transition', 'only a booked session can be rescheduled');
  end if;
  perform private.lock_mechanic(v_session.mechanic_id);  -- lock order: mechanic, then session
  select * into v_session from public.sessions where id = p_session_id for update;
  if v_session.status <> 'scheduled' then
    perform private.raise_error('invalid_transition', format('the session is %s: it cannot be rescheduled', v_session.status));
  end if;
  if v_session.scheduled_for - p_now < private.setting_interval('scheduling.change_cutoff') and not v_is_admin then
    perform private.raise_error('change_cutoff_passed',
      format('a booking cannot be moved within %s of its start', private.setting_text('scheduling.change_cutoff')));
  end if;
  perform private.set_actor(case when v_session.customer_id = p_user_id then 'customer'
                                 when v_session.mechanic_id = p_user_id then 'mechanic' else 'admin' end,
                            'rescheduled');
  update public.mechanic_commitments set status = 'released'
  where session_id = v_session.id and status = 'confirmed'
  returning * into v_old;
  perform private.expire_mechanic_holds(v_session.mechanic_id, p_now);
  -- the commitment records the slot's own price (plan × multiplier), as a hold does
  v_new := private.take_slot(v_session.mechanic_id, p_new_start, v_session.plan_code, v_session.customer_id,
                             'scheduled', 'confirmed', v_session.id, null, p_now, null);
  v_specialist := private.specialist_applies(v_session.customer_id, v_session.intake_id, v_session.vehicle_id,
                                             v_session.mechanic_id, false);
  v_price := v_new.price_cents + private.specialist_surcharge_cents(v_specialist);
  if v_price > v_session.price_cents then
    perform private.raise_error('price_changed',
      format('the new time costs %s cents, the booking %s: book the new time and cancel this booking instead',
             v_price, v_session.price_cents));
  end if;
  if v_price < v_session.price_cents then
    v_refunded := private.refund_price_difference(
      v_session.id, v_session.price_cents - v_price,
      format('rescheduled to a cheaper time (%s cents instead of %s)', v_price, v_session.price_cents),
      p_user_id, p_now);
  end if;
  update public.sessions
  set scheduled_for = p_new_start, calendar_sequence = calendar_sequence + 1, price_cents = v_price,
      specialist = v_specialist
  where id = v_session.id returning * into v_session;
  perform private.drop_reminders(v_session.id);
  perform private.schedule_reminders(v_session.id, p_now);
  perform private.messages_on_booking_rescheduled(v_session, lower(v_old.during));  -- journey/messages.sql
  return jsonb_build_object('session_id', v_session.id, 'scheduled_for', v_session.scheduled_for,
                            'calendar_sequence', v_session.calendar_sequence,
                            'previous_start', lower(v_old.during),
                            'price_cents', v_session.price_cents, 'refunded_cents', v_refunded,
                            'specialist', v_session.specialist);
end
$$;
revoke execute on function private.reschedule_session(uuid, uuid, timestamptz, timestamptz) from public;
grant execute on function private.reschedule_session(uuid, uuid, timestamptz, timestamptz) to service_role;

-- The customer cancels up to the cut-off; the mechanic (or an admin) any time before the start.
-- Either way a paid booking is refunded in full: the cancel lifecycle (core/lifecycle.sql) refunds
-- a session cancelled from `scheduled` (payments.auto_refund_from_statuses).
create or replace function private.cancel_scheduled_session(
  p_user_id uuid, p_session_id uuid, p_reason text, p_now timestamptz default now()
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_session public.sessions;
  v_side text;
  v_reason text;
begin
  perform private.require_arg('p_session_id', p_session_id);
  select * into v_session from public.sessions where id = p_session_id;
  v_side := case when not found then null
                 when v_session.customer_id = p_user_id then 'customer'
                 when v_session.mechanic_id = p_user_id then 'mechanic'
                 when exists (select 1 from private.admins a where a.user_id = p_user_id) then 'admin' end;
  if v_side is null then
    perform private.raise_error('not_found', 'no such session');
  end if;
  if v_session.mechanic_id is not null then
    perform private.lock_mechanic(v_session.mechanic_id);
  end if;
  perform 1 from public.session_requests where session_id = p_session_id for update;
  select * into v_session from public.sessions where id = p_session_id for update;
  if v_session.status <> 'scheduled' then
    perform private.raise_error('invalid_transition', format('the session is %s: it cannot be cancelled here', v_session.status));
  end if;
  if v_side = 'customer'
     and v_session.scheduled_for - p_now < private.setting_interval('scheduling.change_cutoff') then
    perform private.raise_error('change_cutoff_passed',
      format('a booking cannot be cancelled within %s of its start', private.setting_text('scheduling.change_cutoff')));
  end if;
  v_reason := coalesce(p_reason, format('cancelled by the %s', v_side));
  perform private.cancel_session(p_session_id, v_reason, p_now, v_side);
  select * into v_session from public.sessions where id = p_session_id;
  return jsonb_build_object('session_id', v_session.id, 'status', v_session.status, 'cancelled_by', v_side,
                            'calendar_sequence', v_session.calendar_sequence,
                            'refund', exists (select 1 from public.payments p where p.session_id = p_session_id));
end
$$;
revoke execute on function private.cancel_scheduled_session(uuid, uuid, text, timestamptz) from public;
grant execute on function private.cancel_scheduled_session(uuid, uuid, text, timestamptz) to service_role;
