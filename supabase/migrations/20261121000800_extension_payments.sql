-- Paid session extensions through checkout: a booking (and its payment) may pay for a
-- `session_extensions` row of a live session instead of a new session. Such a booking has no plan,
-- intake, vehicle, preferred mechanic, specialist or hold; it names the session it extends from the
-- start. A session therefore has one payment of its own (the booking that created it) and any
-- number of extension payments: payment ↔ booking stays 1:1, payouts are one per payee per payment.
-- docs/payments.md ("Paid session extensions") describes the flow.

-- ---------------------------------------------------------------------------------------------
-- Bookings: an extension booking
-- ---------------------------------------------------------------------------------------------
alter table public.bookings
  add column extension_id uuid references public.session_extensions (id) on delete restrict,
  alter column plan_code drop not null,
  alter column intake_id drop not null,
  -- a session booking has its plan and intake; an extension booking has neither (nor a vehicle,
  -- preferred mechanic, specialist or hold) and names the session it extends
  add constraint bookings_session_or_extension check (
    (extension_id is null and plan_code is not null and intake_id is not null)
    or (extension_id is not null and plan_code is null and intake_id is null and vehicle_id is null
        and preferred_mechanic_id is null and not specialist and hold_id is null and session_id is not null));
comment on column public.bookings.extension_id is
  'The paid session extension this booking pays for (then session_id is the extended session from the start).';

-- A session is created by one booking; extension bookings point at it too.
alter table public.bookings drop constraint bookings_session_id_key;
create unique index bookings_one_per_session on public.bookings (session_id) where extension_id is null;
create index bookings_session_id_idx on public.bookings (session_id);  -- FK
-- An extension is paid once (a second paid checkout of it is refunded as unfulfilled).
create unique index bookings_one_paid_per_extension on public.bookings (extension_id) where status = 'paid';
create index bookings_extension_id_idx on public.bookings (extension_id, status);  -- FK; reuse of an open checkout

-- ---------------------------------------------------------------------------------------------
-- Payments: a session's own payment and its extension payments
-- ---------------------------------------------------------------------------------------------
-- Not unique: a second paid checkout of one extension is recorded too (and refunded in full).
alter table public.payments
  add column extension_id uuid references public.session_extensions (id) on delete restrict;
comment on column public.payments.extension_id is
  'Set on the payment of a paid session extension (null: the session''s own payment).';
create index payments_extension_id_idx on public.payments (extension_id);  -- FK
alter table public.payments drop constraint payments_session_id_key;
create unique index payments_one_per_session on public.payments (session_id) where extension_id is null;
create index payments_session_id_idx on public.payments (session_id);  -- FK; a session's payments
grant select (extension_id) on public.payments to authenticated;

-- ---------------------------------------------------------------------------------------------
-- Payouts: one per payee per payment (a session with an extension pays each payee twice)
-- ---------------------------------------------------------------------------------------------
alter table public.payouts drop constraint payouts_one_per_payee;
alter table public.payouts add constraint payouts_one_per_payee_per_payment unique (payment_id, payee_id);
create index payouts_session_id_idx on public.payouts (session_id);  -- FK
-- payouts_payment_id_idx is now covered by the unique constraint's index
drop index public.payouts_payment_id_idx;
