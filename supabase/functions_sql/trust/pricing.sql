-- Trust: prices follow the slot and the mechanic.
--
-- One function decides whether the brand-specialist surcharge applies (every booking path and
-- the reschedule call it), and a reschedule refunds the difference when the new slot is cheaper.

-- ---------------------------------------------------------------------------------------------
-- The specialist surcharge
-- ---------------------------------------------------------------------------------------------
-- The make of the vehicle a booking is for: the vehicle's (given, else the intake's), else what
-- the intake says. Only the customer's own vehicle and intake count (null otherwise).
create or replace function private.booking_vehicle_make(p_customer_id uuid, p_intake_id uuid, p_vehicle_id uuid)
returns text
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_intake public.intakes;
  v_make text;
begin
  select * into v_intake from public.intakes where id = p_intake_id and customer_id = p_customer_id;
  select v.make into v_make from public.vehicles v
  where v.id = coalesce(p_vehicle_id, v_intake.vehicle_id) and v.owner_id = p_customer_id;
  return nullif(lower(btrim(coalesce(v_make, v_intake.vehicle_make))), '');
end
$$;
revoke execute on function private.booking_vehicle_make(uuid, uuid, uuid) from public;
grant execute on function private.booking_vehicle_make(uuid, uuid, uuid) to service_role;

-- Whether mechanic `p_mechanic_id` is a brand specialist for make `p_make` (lowercase): the same
-- test the ranking and the listing use (is_brand_specialist and the make among its brands).
create or replace function private.is_specialist_for(p_mechanic_id uuid, p_make text) returns boolean
language plpgsql stable security definer set search_path = ''
as $$
begin
  if p_mechanic_id is null or p_make is null then
    return false;
  end if;
  return exists (select 1 from public.mechanics m
                 where m.id = p_mechanic_id and m.is_brand_specialist and m.brand_keys @> array[p_make]);
end
$$;
revoke execute on function private.is_specialist_for(uuid, text) from public;
grant execute on function private.is_specialist_for(uuid, text) to service_role;

-- The one rule for the surcharge: it applies when the customer chose a brand specialist for the
-- vehicle's make, whichever way — asked for specialists (`p_specialist`, the request is routed to
-- specialists of the make only), or named a mechanic (a preferred mechanic, or the mechanic whose
-- slot is booked) who is a brand specialist for that make — and never otherwise (a specialist of
-- another brand, a mechanic who is no specialist).
create or replace function private.specialist_applies(
  p_customer_id uuid, p_intake_id uuid, p_vehicle_id uuid, p_mechanic_id uuid, p_specialist boolean
) returns boolean
language plpgsql stable security definer set search_path = ''
as $$
begin
  if coalesce(p_specialist, false) then
    return true;
  end if;
  return private.is_specialist_for(p_mechanic_id,
                                   private.booking_vehicle_make(p_customer_id, p_intake_id, p_vehicle_id));
end
$$;
revoke execute on function private.specialist_applies(uuid, uuid, uuid, uuid, boolean) from public;
grant execute on function private.specialist_applies(uuid, uuid, uuid, uuid, boolean) to service_role;

create or replace function private.specialist_surcharge_cents(p_applies boolean) returns int
language plpgsql stable security definer set search_path = ''
as $$
begin
  return case when coalesce(p_applies, false) then private.setting_int('pricing.specialist_surcharge_cents') else 0 end;
end
$$;
revoke execute on function private.specialist_surcharge_cents(boolean) from public;
grant execute on function private.specialist_surcharge_cents(boolean) to service_role;

-- The price of booking hold `p_hold` for this intake and vehicle: the slot's price (plan ×
-- multiplier, on the hold) plus the specialist surcharge when the hold's mechanic is a brand
-- specialist for the vehicle's make (private.specialist_applies).
create or replace function private.hold_booking_price(
  p_hold public.mechanic_commitments, p_customer_id uuid, p_intake_id uuid, p_vehicle_id uuid,
  out price_cents int, out specialist boolean
)
language plpgsql stable security definer set search_path = ''
as $$
begin
  specialist := private.specialist_applies(p_customer_id, p_intake_id, p_vehicle_id, p_hold.mechanic_id, false);
  price_cents := p_hold.price_cents + private.specialist_surcharge_cents(specialist);
end
$$;
revoke execute on function private.hold_booking_price(public.mechanic_commitments, uuid, uuid, uuid) from public;
grant execute on function private.hold_booking_price(public.mechanic_commitments, uuid, uuid, uuid) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Re-pricing a booked session
-- ---------------------------------------------------------------------------------------------
-- Gives `p_cents` of a booked session's price back to where it was paid from: its own payments
-- (not extensions), oldest first, each up to what remains refundable on it — credit back to
-- credit at once, a card through a queued refund (the stripe.refund job). The session stays
-- booked even when a payment is refunded in full (its new price is then 0). The caller holds the
-- mechanic's and the session's locks. Returns the cents refunded.
create or replace function private.refund_price_difference(
  p_session_id uuid, p_cents int, p_reason text, p_requested_by uuid, p_now timestamptz default now()
) returns int
language plpgsql security definer set search_path = ''
as $$
declare
  v_payment public.payments;
  v_left int := p_cents;
  v_refundable int;
  v_cut int;
begin
  if p_cents is null or p_cents <= 0 then
    return 0;
  end if;
  for v_payment in
    select * from public.payments where session_id = p_session_id and extension_id is null
    order by paid_at, id for update
  loop
    exit when v_left <= 0;
    v_refundable := v_payment.amount_cents
      - coalesce((select sum(r.amount_cents) from public.refunds r
                  where r.payment_id = v_payment.id and r.status not in ('failed', 'canceled')), 0);
    v_cut := least(v_left, v_refundable);
    continue when v_cut <= 0;
    perform private.request_refund(v_payment.id, v_cut, 'automatic', p_reason, p_requested_by, null, null, p_now,
                                   true);
    v_left := v_left - v_cut;
  end loop;
  return p_cents - v_left;
end
$$;
revoke execute on function private.refund_price_difference(uuid, int, text, uuid, timestamptz) from public;
grant execute on function private.refund_price_difference(uuid, int, text, uuid, timestamptz) to service_role;
