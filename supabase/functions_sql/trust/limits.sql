-- Trust: limits per account (docs/trust.md, "Limits per account and rate limits").
--
-- Every cap is counted under the customer's own lock (a transaction-scoped advisory lock on the
-- customer's id), so parallel calls of one account serialize there and the count is exact: of
-- any number of racing requests, exactly as many pass as the cap leaves room for. Lock order:
-- a mechanic's row (scheduling) before the customer's limits lock, and the customer's limits lock
-- before the intake, the credit and everything a request creates.

-- ---------------------------------------------------------------------------------------------
-- The customer's lock and what is counted
-- ---------------------------------------------------------------------------------------------
create or replace function private.lock_customer_limits(p_customer_id uuid) returns void
language sql security definer set search_path = ''
as $$ select pg_advisory_xact_lock(hashtextextended('autodoctor.customer_limits:' || p_customer_id::text, 0)) $$;
revoke execute on function private.lock_customer_limits(uuid) from public;
grant execute on function private.lock_customer_limits(uuid) to service_role;

-- On-demand requests the customer has open: pending, unattended, or accepted with the session
-- not ended (a session still pending, waiting or live).
create or replace function private.open_requests_count(p_customer_id uuid) returns int
language sql stable security definer set search_path = ''
as $$
  select count(*)::int
  from public.session_requests r
  join public.sessions s on s.id = r.session_id
  where r.customer_id = p_customer_id
    and r.status in ('pending', 'unattended', 'accepted')
    and s.status in ('pending', 'waiting', 'live')
$$;
revoke execute on function private.open_requests_count(uuid) from public;
grant execute on function private.open_requests_count(uuid) to service_role;

-- Free sessions the account has used: every session priced 0 (the free plan, on demand or
-- booked), except one that ended (cancelled) without any mechanic having it, which gave the
-- customer nothing: an expired request, or one cancelled before anyone took it. A session a
-- mechanic took counts even when cancelled later, so cancel-and-retry gains nothing. Free live
-- holds count too (p_with_holds), so two free slots cannot be held at once. A free follow-up
-- question (parent_session_id set) is counted on its thread instead (journey/follow_ups.sql).
create or replace function private.free_sessions_used(
  p_customer_id uuid, p_with_holds boolean, p_exclude_hold_id uuid, p_now timestamptz
) returns int
language sql stable security definer set search_path = ''
as $$
  select (select count(*)::int from public.sessions s
          where s.customer_id = p_customer_id and s.price_cents = 0 and s.parent_session_id is null
            and not (s.status = 'cancelled' and s.mechanic_id is null))
       + case when p_with_holds then
           (select count(*)::int from public.mechanic_commitments c
            where c.customer_id = p_customer_id and c.kind = 'hold' and c.status = 'held' and c.expires_at > p_now
              and c.price_cents = 0 and c.id is distinct from p_exclude_hold_id)
         else 0 end
$$;
revoke execute on function private.free_sessions_used(uuid, boolean, uuid, timestamptz) from public;
grant execute on function private.free_sessions_used(uuid, boolean, uuid, timestamptz) to service_role;

-- Future bookings: booked sessions not ended yet (scheduled, waiting or live) and live holds.
create or replace function private.future_bookings_count(p_customer_id uuid, p_exclude_hold_id uuid, p_now timestamptz)
returns int
language sql stable security definer set search_path = ''
as $$
  select (select count(*)::int from public.sessions s
          where s.customer_id = p_customer_id and s.scheduled_for is not null
            and s.status in ('scheduled', 'waiting', 'live'))
       + (select count(*)::int from public.mechanic_commitments c
          where c.customer_id = p_customer_id and c.kind = 'hold' and c.status = 'held' and c.expires_at > p_now
            and c.id is distinct from p_exclude_hold_id)
$$;
revoke execute on function private.future_bookings_count(uuid, uuid, timestamptz) from public;
grant execute on function private.future_bookings_count(uuid, uuid, timestamptz) to service_role;

create or replace function private.check_free_session(
  p_customer_id uuid, p_with_holds boolean, p_exclude_hold_id uuid, p_now timestamptz
) returns void
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_cap int := private.setting_int('limits.free_sessions_per_account');
begin
  if private.free_sessions_used(p_customer_id, p_with_holds, p_exclude_hold_id, p_now) >= v_cap then
    perform private.raise_error('limit_reached',
      format('the free plan is for %s session(s) per account, and this account has used it: choose a paid plan',
             v_cap));
  end if;
end
$$;
revoke execute on function private.check_free_session(uuid, boolean, uuid, timestamptz) from public;
grant execute on function private.check_free_session(uuid, boolean, uuid, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- On-demand requests (request_session, a credit checkout, a paid card checkout and its webhook)
-- ---------------------------------------------------------------------------------------------
-- Takes the customer's lock and refuses with limit_reached: too many open requests, a second open
-- request for the same preferred mechanic. Every request counts, a follow-up question too
-- (journey/follow_ups.sql calls it directly: its free ones are counted on their thread).
create or replace function private.check_open_request_limits(
  p_customer_id uuid, p_preferred_mechanic_id uuid, p_now timestamptz default now()
) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_cap int;
begin
  perform private.lock_customer_limits(p_customer_id);
  v_cap := private.setting_int('limits.open_requests_per_customer');
  if private.open_requests_count(p_customer_id) >= v_cap then
    perform private.raise_error('limit_reached',
      format('at most %s open requests per customer: wait for one to end or cancel one', v_cap));
  end if;
  if p_preferred_mechanic_id is not null
     and exists (select 1 from public.session_requests r
                 where r.customer_id = p_customer_id and r.preferred_mechanic_id = p_preferred_mechanic_id
                   and r.status in ('pending', 'unattended')) then
    perform private.raise_error('limit_reached', 'you already have an open request for this mechanic');
  end if;
end
$$;
revoke execute on function private.check_open_request_limits(uuid, uuid, timestamptz) from public;
grant execute on function private.check_open_request_limits(uuid, uuid, timestamptz) to service_role;

-- The open-request limits above and, for a free request, the free sessions of the account.
-- Called by private.create_session_request (every path that creates a request) and, before any
-- money moves, by private.prepare_checkout.
create or replace function private.check_demand_limits(
  p_customer_id uuid, p_price_cents int, p_preferred_mechanic_id uuid, p_now timestamptz default now()
) returns void
language plpgsql security definer set search_path = ''
as $$
begin
  perform private.check_open_request_limits(p_customer_id, p_preferred_mechanic_id, p_now);
  if p_price_cents = 0 then
    perform private.check_free_session(p_customer_id, false, null, p_now);
  end if;
end
$$;
revoke execute on function private.check_demand_limits(uuid, int, uuid, timestamptz) from public;
grant execute on function private.check_demand_limits(uuid, int, uuid, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Booked sessions (hold_slot, confirm_hold)
-- ---------------------------------------------------------------------------------------------
-- Takes the customer's lock and refuses with limit_reached: future bookings (live holds count)
-- at the cap, or a free slot past the free sessions of the account. p_exclude_hold_id: the hold
-- being turned into a booking (it is the booking, not one more).
create or replace function private.check_booking_limits(
  p_customer_id uuid, p_price_cents int, p_exclude_hold_id uuid, p_now timestamptz default now()
) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_cap int;
begin
  perform private.lock_customer_limits(p_customer_id);
  v_cap := private.setting_int('limits.future_bookings_per_customer');
  if private.future_bookings_count(p_customer_id, p_exclude_hold_id, p_now) >= v_cap then
    perform private.raise_error('limit_reached',
      format('at most %s future bookings and holds per customer: wait for one to take place or cancel one', v_cap));
  end if;
  if p_price_cents = 0 then
    perform private.check_free_session(p_customer_id, true, p_exclude_hold_id, p_now);
  end if;
end
$$;
revoke execute on function private.check_booking_limits(uuid, int, uuid, timestamptz) from public;
grant execute on function private.check_booking_limits(uuid, int, uuid, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Intakes (inserted by clients through the table)
-- ---------------------------------------------------------------------------------------------
-- A signed-in user's insert: at most limits.intakes_per_hour in any hour, counted under the
-- customer's lock; Retry-After tells when the oldest of the hour leaves the window. Inserts by
-- the platform (service_role, migrations) are not limited.
create or replace function private.intakes_rate_limit() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_cap int;
  v_count int;
  v_oldest timestamptz;
begin
  if auth.uid() is null then
    return new;
  end if;
  perform private.lock_customer_limits(new.customer_id);
  v_cap := private.setting_int('limits.intakes_per_hour');
  select count(*)::int, min(i.created_at) into v_count, v_oldest
  from public.intakes i
  where i.customer_id = new.customer_id and i.created_at > now() - interval '1 hour';
  if v_count >= v_cap then
    perform private.raise_error_retry('limit_reached',
      format('at most %s intakes per hour: try again later', v_cap),
      extract(epoch from (v_oldest + interval '1 hour' - now())));
  end if;
  return new;
end
$$;
revoke execute on function private.intakes_rate_limit() from public;
drop trigger if exists _100_intakes_rate_limit on public.intakes;
create trigger _100_intakes_rate_limit before insert on public.intakes
  for each row execute function private.intakes_rate_limit();

-- The open-request-per-preferred-mechanic index's violation, as the error the API documents.
create or replace function private.raise_if_preferred_limit(p_constraint text) returns void
language plpgsql stable security definer set search_path = ''
as $$
begin
  if p_constraint = 'session_requests_one_open_per_preferred' then
    perform private.raise_error('limit_reached', 'you already have an open request for this mechanic');
  end if;
end
$$;
revoke execute on function private.raise_if_preferred_limit(text) from public;
grant execute on function private.raise_if_preferred_limit(text) to service_role;

-- The intake checks of private.check_booking_intake without its lock: run before the limits so
-- a bad input is reported as such (not_found, conflict) rather than as a limit; the locked check
-- runs again after the customer's lock (lock order: the customer's limits, then the intake).
create or replace function private.check_intake_unlocked(p_customer_id uuid, p_intake_id uuid, p_vehicle_id uuid)
returns void
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_intake public.intakes;
begin
  select * into v_intake from public.intakes where id = p_intake_id and customer_id = p_customer_id;
  if not found then
    perform private.raise_error('not_found', 'no such intake');
  end if;
  if v_intake.status <> 'new' then
    perform private.raise_error('conflict', format('the intake is %s, not new', v_intake.status));
  end if;
  if coalesce(p_vehicle_id, v_intake.vehicle_id) is not null
     and not exists (select 1 from public.vehicles
                     where id = coalesce(p_vehicle_id, v_intake.vehicle_id) and owner_id = p_customer_id) then
    perform private.raise_error('not_found', 'no such vehicle');
  end if;
end
$$;
revoke execute on function private.check_intake_unlocked(uuid, uuid, uuid) from public;
grant execute on function private.check_intake_unlocked(uuid, uuid, uuid) to service_role;
