-- operations: supabase/functions_sql/ as of this migration, written by `autodoctor db commit`.
-- Whole files, re-runnable, in path order; then the drops of what they no longer define.
-- Edit the files in supabase/functions_sql/, never this migration (see docs/migrations.md).
set check_function_bodies = off;

-- >>> functions_sql core/admin.sql sha256=9fac754d527bb2a0226e93080de425ef580333f167e3e0624f34c07f8633293c
-- Core admin RPCs: mechanic status, manual assignment, force-ending a session.

-- ---------------------------------------------------------------------------------------------
-- Admin RPCs
-- ---------------------------------------------------------------------------------------------
create or replace function private.require_admin() returns uuid
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
begin
  if not private.is_admin() then
    perform private.raise_error('not_allowed', 'admins only');
  end if;
  return v_uid;
end
$$;
revoke execute on function private.require_admin() from public;
grant execute on function private.require_admin() to authenticated, service_role;

create or replace function public.admin_set_mechanic_status(p_mechanic_id uuid, p_status text) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_status public.mechanic_status;
  v_row public.mechanics;
begin
  perform private.require_admin();
  if p_mechanic_id is null or p_status is null
     or p_status not in ('pending', 'approved', 'suspended') then
    perform private.raise_error('invalid_input', 'p_status must be pending, approved or suspended');
  end if;
  v_status := p_status::public.mechanic_status;
  update public.mechanics
  set status = v_status,
      approved_at = case when v_status = 'approved' then coalesce(approved_at, now()) else approved_at end,
      is_available = case when v_status = 'approved' then is_available else false end
  where id = p_mechanic_id
  returning * into v_row;
  if not found then
    perform private.raise_error('not_found', 'no such mechanic');
  end if;
  perform private.record_admin_action('mechanic.set_status', 'mechanic', v_row.id, null,
                                      jsonb_build_object('to', v_row.status));
  return jsonb_build_object('mechanic_id', v_row.id, 'status', v_row.status, 'approved_at', v_row.approved_at);
end
$$;
revoke execute on function public.admin_set_mechanic_status(uuid, text) from public, anon;
grant execute on function public.admin_set_mechanic_status(uuid, text) to authenticated, service_role;

create or replace function public.admin_assign_request(p_request_id uuid, p_mechanic_id uuid) returns jsonb
language plpgsql security definer set search_path = ''
as $$
begin
  perform private.require_admin();
  if p_request_id is null or p_mechanic_id is null then
    perform private.raise_error('invalid_input', 'p_request_id and p_mechanic_id are required');
  end if;
  perform private.set_actor('admin', 'assigned by an admin');
  return private.assign_request(p_request_id, p_mechanic_id, now(), true);
end
$$;
revoke execute on function public.admin_assign_request(uuid, uuid) from public, anon;
grant execute on function public.admin_assign_request(uuid, uuid) to authenticated, service_role;

-- A live session is completed (the work happened); one not yet started is cancelled.
create or replace function public.admin_force_end_session(p_session_id uuid, p_reason text) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_reason text;
  v_status public.session_status;
begin
  perform private.require_admin();
  v_reason := private.check_text('p_reason', p_reason, true);
  perform private.require_arg('p_session_id', p_session_id);
  select status into v_status from public.sessions where id = p_session_id for update;
  if not found then
    perform private.raise_error('not_found', 'no such session');
  end if;
  if v_status = 'live' then
    return private.complete_session(p_session_id, null, v_reason, now(), 'admin');
  elsif v_status in ('pending', 'scheduled', 'waiting') then
    perform private.cancel_session(p_session_id, v_reason, now(), 'admin');
    return jsonb_build_object('session_id', p_session_id, 'status', 'cancelled');
  end if;
  perform private.raise_error('invalid_transition', format('the session is already %s', v_status));
  return null;
end
$$;
revoke execute on function public.admin_force_end_session(uuid, text) from public, anon;
grant execute on function public.admin_force_end_session(uuid, text) to authenticated, service_role;
-- <<< functions_sql core/admin.sql

-- >>> functions_sql jobs/sweep_requests.sql sha256=a23a55209d25dfa04d0381b4a044ef8988c369bfd5d5f75342eeb081ffa24fc4
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
-- <<< functions_sql jobs/sweep_requests.sql

-- >>> functions_sql operations/audit_read.sql sha256=79a5ce8d7aac6cfd8492db628d05b2361ead8b3e40bbc0e4fc97931e2eb18944
-- Operations: reading the audit of admin actions (docs/operations.md#audit). Every admin action
-- is on record in one place: private.admin_actions for the actions without an audit of their own,
-- and the audits the domains already keep, each mapped to the same row.

-- Every admin action, newest first, about p_subject_id (null: any) at or after p_from (null:
-- any time), at most p_limit rows (1 to operations.audit_max_limit).
create or replace function public.admin_audit(p_subject_id uuid default null, p_from timestamptz default null,
                                              p_limit int default 100)
returns table (at timestamptz, admin_id uuid, action text, subject_type text, subject_id uuid, reason text, data jsonb)
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_max int := private.setting_int('operations.audit_max_limit');
begin
  perform private.require_admin();
  if p_limit is null or p_limit < 1 or p_limit > v_max then
    perform private.raise_error('invalid_input', format('p_limit must be between 1 and %s', v_max));
  end if;
  if p_from is not null and not isfinite(p_from) then
    perform private.raise_error('invalid_input', 'p_from must be a finite time');
  end if;
  return query
  select a.* from (
    -- actions without an audit of their own (intake edits, exports, vetting, suspensions, …)
    select x.at, x.admin_id, x.action, x.subject_type, x.subject_id, x.reason, x.data
    from private.admin_actions x
    union all
    -- status changes made by an admin: assignments (request → accepted), force-ends, cancellations
    select e.at, e.actor_id, e.entity || '.' || e.to_status, 'session', e.session_id, e.reason,
           jsonb_build_object('entity', e.entity, 'request_id', e.request_id, 'from', e.from_status, 'to', e.to_status)
    from public.session_events e
    where e.actor_role = 'admin'
    union all
    -- decisions on unverified or reported sessions (null decided_by: the automatic refund)
    select d.decided_at, d.decided_by, 'delivery.decide', 'session', d.session_id, d.reason,
           jsonb_build_object('outcome', d.outcome, 'refund_cents', d.refund_cents)
    from public.session_delivery_decisions d
    where d.decided_by is not null
    union all
    -- refunds an admin asked for
    select f.created_at, f.requested_by, 'refund.create', 'session', pm.session_id, f.reason,
           jsonb_build_object('refund_id', f.id, 'payment_id', f.payment_id, 'customer_id', f.customer_id,
                              'amount_cents', f.amount_cents, 'currency', f.currency,
                              'destination', f.destination, 'status', f.status)
    from public.refunds f join public.payments pm on pm.id = f.payment_id
    where f.origin = 'admin'
    union all
    -- credit granted by an admin
    select c.created_at, c.created_by, 'credit.grant', 'customer', c.customer_id, c.note,
           jsonb_build_object('entry_id', c.id, 'amount_cents', c.amount_cents, 'currency', c.currency)
    from public.credit_ledger c
    where c.kind = 'grant' and c.created_by is not null
    union all
    -- reviews hidden by an admin
    select rv.hidden_at, rv.hidden_by, 'review.hide', 'review', rv.id, rv.hidden_reason,
           jsonb_build_object('mechanic_id', rv.mechanic_id)
    from public.mechanic_reviews rv
    where rv.hidden_by is not null
    union all
    -- email suppressions lifted by an admin
    select sp.lifted_at, sp.lifted_by, 'email.lift_suppression', 'email_suppression', null::uuid, sp.lift_note,
           jsonb_build_object('suppression_id', sp.id, 'address', sp.address, 'suppressed_for', sp.reason)
    from private.email_suppressions sp
    where sp.lifted_by is not null
  ) a
  where (p_subject_id is null or a.subject_id = p_subject_id)
    and (p_from is null or a.at >= p_from)
  order by a.at desc, a.action, a.subject_id
  limit p_limit;
end
$$;
revoke execute on function public.admin_audit(uuid, timestamptz, int) from public, anon;
grant execute on function public.admin_audit(uuid, timestamptz, int) to authenticated, service_role;
-- <<< functions_sql operations/audit_read.sql

-- >>> functions_sql operations/intakes.sql sha256=5a26a15d43af2b32955d467c57c0081cd0717e4b954c731b12a062eb09eb5f4f
-- Operations: intakes fixed by admins, one or in bulk, and the export of intakes
-- (docs/operations.md#intakes).

-- ---------------------------------------------------------------------------------------------
-- Updates: all or nothing
-- ---------------------------------------------------------------------------------------------
-- An admin sets an intake to `new` (open for booking again), `resolved` or `cancelled` (closed).
-- `pending` and `in_progress` say that a request or session of the intake is under way: only the
-- lifecycle writes them (request_session, accept, release, complete, cancel), so an admin never
-- sets them and never moves an intake that feeds an active session or an open checkout (the
-- session would end by resetting an intake someone else closed, and a paid checkout would find
-- its intake gone). `in_review` and `awaiting_customer` are not part of any flow.
--
-- The intakes are locked in id order before anything is checked: two bulk updates over
-- overlapping sets wait for one another instead of deadlocking, and a booking of one of the
-- intakes (which locks its intake first, core/sessions.sql) either ends before the check sees its
-- session or finds the intake no longer `new`. The first refusal, in id order, names its intake
-- and rolls back every change of the call. An intake already in the target status is left as it
-- is and not audited.
create or replace function private.admin_set_intakes(p_intake_ids uuid[], p_status text, p_note text)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_ids uuid[];
  v_note text;
  v_row record;
  v_missing uuid;
  v_updated uuid[] := '{}';
  v_unchanged uuid[] := '{}';
  v_cap int := private.setting_int('operations.bulk_intakes_max');
begin
  if p_status is null or p_status not in (select unnest(enum_range(null::public.intake_status))::text) then
    perform private.raise_error('invalid_input',
      'p_status must be an intake status (new, pending, in_review, in_progress, awaiting_customer, resolved, cancelled)');
  end if;
  if p_status not in ('new', 'resolved', 'cancelled') then
    perform private.raise_error('intake_status_not_allowed',
      format('an admin sets an intake to new, resolved or cancelled, not %s', p_status));
  end if;
  v_note := private.check_text('p_note', p_note);
  if char_length(v_note) > 2000 then
    perform private.raise_error('invalid_input', 'p_note must be at most 2000 characters');
  end if;
  if p_intake_ids is null or cardinality(p_intake_ids) = 0 then
    perform private.raise_error('invalid_input', 'p_intake_ids must name at least one intake');
  end if;
  if cardinality(p_intake_ids) > v_cap then
    perform private.raise_error('intake_batch_too_large',
      format('at most %s intakes per call, %s given', v_cap, cardinality(p_intake_ids)));
  end if;
  if array_position(p_intake_ids, null) is not null then
    perform private.raise_error('invalid_input', 'p_intake_ids must not contain null');
  end if;
  select array_agg(distinct u order by u) into v_ids from unnest(p_intake_ids) u;

  perform 1 from public.intakes i where i.id = any (v_ids) order by i.id for update;
  select u into v_missing from unnest(v_ids) u
  where not exists (select 1 from public.intakes i where i.id = u) order by u limit 1;
  if v_missing is not null then
    perform private.raise_error('not_found', format('no such intake: %s', v_missing));
  end if;

  for v_row in
    select i.id, i.status::text as status from public.intakes i where i.id = any (v_ids) order by i.id
  loop
    if exists (select 1 from public.sessions s
               where s.intake_id = v_row.id and s.status in ('pending', 'scheduled', 'waiting', 'live'))
       or exists (select 1 from public.bookings b
                  where b.intake_id = v_row.id and b.status = 'pending') then
      perform private.raise_error('intake_has_active_session',
        format('intake %s feeds an active session or an open checkout: its status follows that session', v_row.id));
    end if;
    if v_row.status = p_status then
      v_unchanged := v_unchanged || v_row.id;
      continue;
    end if;
    update public.intakes set status = p_status::public.intake_status, updated_at = now() where id = v_row.id;
    perform private.record_admin_action('intake.update', 'intake', v_row.id, v_note,
                                        jsonb_build_object('from', v_row.status, 'to', p_status));
    v_updated := v_updated || v_row.id;
  end loop;
  return jsonb_build_object('status', p_status, 'updated', to_jsonb(v_updated), 'unchanged', to_jsonb(v_unchanged));
end
$$;
revoke execute on function private.admin_set_intakes(uuid[], text, text) from public;
grant execute on function private.admin_set_intakes(uuid[], text, text) to service_role;

create or replace function public.admin_update_intake(p_intake_id uuid, p_status text, p_note text default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
begin
  perform private.require_admin();
  perform private.require_arg('p_intake_id', p_intake_id);
  return private.admin_set_intakes(array[p_intake_id], p_status, p_note);
end
$$;
revoke execute on function public.admin_update_intake(uuid, text, text) from public, anon;
grant execute on function public.admin_update_intake(uuid, text, text) to authenticated, service_role;

create or replace function public.admin_bulk_update_intakes(p_intake_ids uuid[], p_status text, p_note text default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
begin
  perform private.require_admin();
  return private.admin_set_intakes(p_intake_ids, p_status, p_note);
end
$$;
revoke execute on function public.admin_bulk_update_intakes(uuid[], text, text) from public, anon;
grant execute on function public.admin_bulk_update_intakes(uuid[], text, text) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- Export
-- ---------------------------------------------------------------------------------------------
-- One row per intake created in [p_from, p_to] (UTC days; null: unbounded), for admins only:
-- anyone else gets no rows. The request and session columns are the intake's latest session's;
-- the outcome is that session's: delivered or unverified (completed), expired (its request found
-- no mechanic in time), cancelled, or none (no session, or one still under way). Refunded cents
-- are every refund of the intake's sessions not failed or canceled (sent or on their way).
create or replace function private.intake_export_rows(p_from date, p_to date)
returns table (
  intake_id uuid, created_at timestamptz, customer_id uuid, customer_name text, contact_name text,
  contact_email text, concern text, vehicle_make text, vehicle_model text, vehicle_year int, plan_code text,
  status text, requested_at timestamptz, scheduled_for timestamptz, started_at timestamptz,
  ended_at timestamptz, outcome text, refunded_cents bigint
)
language sql stable security definer set search_path = ''
as $$
  select i.id, i.created_at, i.customer_id, p.full_name, i.contact_name, i.contact_email, i.concern,
         coalesce(i.vehicle_make, v.make), coalesce(i.vehicle_model, v.model), coalesce(i.vehicle_year, v.year),
         coalesce(s.plan_code, i.plan_code), i.status::text,
         r.created_at, s.scheduled_for, s.started_at, s.ended_at,
         case when s.id is null then 'none'
              when s.status = 'completed' then coalesce(s.delivery, 'unverified')
              when s.status = 'cancelled' and r.status = 'expired' then 'expired'
              when s.status = 'cancelled' then 'cancelled'
              else 'none' end,
         coalesce((select sum(f.amount_cents) from public.refunds f join public.payments pm on pm.id = f.payment_id
                   join public.sessions s2 on s2.id = pm.session_id
                   where s2.intake_id = i.id and f.status not in ('failed', 'canceled')), 0)::bigint
  from public.intakes i
  left join public.profiles p on p.id = i.customer_id
  left join public.vehicles v on v.id = i.vehicle_id
  left join lateral (select s1.* from public.sessions s1 where s1.intake_id = i.id
                     order by s1.created_at desc, s1.id desc limit 1) s on true
  left join public.session_requests r on r.session_id = s.id
  where (select private.is_admin())
    and (p_from is null or i.created_at >= (p_from::timestamp at time zone 'UTC'))
    and (p_to is null or i.created_at < ((p_to + 1)::timestamp at time zone 'UTC'))
  order by i.created_at, i.id
$$;
revoke execute on function private.intake_export_rows(date, date) from public;
grant execute on function private.intake_export_rows(date, date) to authenticated, service_role;

drop view if exists public.admin_intakes_export cascade;
create view public.admin_intakes_export with (security_invoker = true) as
select * from private.intake_export_rows(null, null);
grant select on public.admin_intakes_export to authenticated, service_role;
comment on view public.admin_intakes_export is
  'Admins only (others read no rows): one row per intake, shaped for export (Accept: text/csv).';

-- The audited export: a GET of the view runs in a read-only transaction and records nothing, so
-- an export that must be on record is this RPC, called with POST.
create or replace function public.admin_export_intakes(p_from date, p_to date)
returns setof public.admin_intakes_export
language plpgsql security definer set search_path = ''
as $$
declare
  v_rows bigint;
  v_max int := private.setting_int('operations.export_max_days');
begin
  perform private.require_admin();
  perform private.require_arg('p_from', p_from);
  perform private.require_arg('p_to', p_to);
  if not isfinite(p_from) or not isfinite(p_to) or p_from > p_to then
    perform private.raise_error('invalid_input', 'p_from and p_to must be finite dates, p_from not after p_to');
  end if;
  if p_to - p_from + 1 > v_max then
    perform private.raise_error('export_range_too_long', format('at most %s days per export', v_max));
  end if;
  return query select * from private.intake_export_rows(p_from, p_to);
  get diagnostics v_rows = row_count;
  perform private.record_admin_action('export.intakes', 'intake', null, null,
                                      jsonb_build_object('from', p_from, 'to', p_to, 'rows', v_rows));
end
$$;
revoke execute on function public.admin_export_intakes(date, date) from public, anon;
grant execute on function public.admin_export_intakes(date, date) to authenticated, service_role;
-- <<< functions_sql operations/intakes.sql

-- >>> functions_sql operations/overview.sql sha256=3df15bfd5fd6d5c44b2644335d8fef6a5455f270c8951e97631c500514d4f63f
-- Operations: the overview of the business and the request sweep run by hand
-- (docs/operations.md#overview).

-- Which rule holds a waiting payout now, as a stable key. The reason is the one
-- private.payout_wait_reason gives (trust/delivery.sql: the rule every path that queues a payout
-- asks), so the overview never disagrees with the payouts themselves; `ready` means nothing holds
-- it any more and the `delivery` job queues it on its next run.
create or replace function private.overview_wait_key(p_reason text) returns text
language sql immutable set search_path = ''
as $$
  select case
    when p_reason is null then 'ready'
    when p_reason like 'problem reported%' then 'problem_reported'
    when p_reason like 'delivery unverified%' then 'delivery_unverified'
    when p_reason like 'objection window%' then 'objection_window'
    when p_reason like 'mechanic payouts held%' then 'suspension_hold'
    when p_reason like 'mechanic %' then 'mechanic_not_approved'
    when p_reason like 'no payout account%' then 'no_payout_account'
    when p_reason like 'the payout account cannot receive%' then 'transfers_inactive'
    else 'other'
  end
$$;
revoke execute on function private.overview_wait_key(text) from public;
grant execute on function private.overview_wait_key(text) to service_role;

-- ---------------------------------------------------------------------------------------------
-- admin_overview: the business over [p_from, p_to) (half-open: a day is [midnight, next
-- midnight)), and the state of things now. Each figure is defined in docs/operations.md#overview;
-- amounts are in cents.
-- ---------------------------------------------------------------------------------------------
create or replace function public.admin_overview(p_from timestamptz, p_to timestamptz)
returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_now timestamptz := now();
  v_sessions jsonb;
  v_revenue jsonb;
  v_refunds jsonb;
  v_credits jsonb;
  v_payouts jsonb;
  v_queue jsonb;
  v_mechanics jsonb;
  v_accept jsonb;
  v_delivery jsonb;
  v_ratings jsonb;
begin
  perform private.require_admin();
  perform private.require_arg('p_from', p_from);
  perform private.require_arg('p_to', p_to);
  if not isfinite(p_from) or not isfinite(p_to) or p_to <= p_from then
    perform private.raise_error('overview_range_invalid', 'p_to must be later than p_from, both finite');
  end if;
  if p_to - p_from > make_interval(days => private.setting_int('operations.overview_max_days')) then
    perform private.raise_error('overview_range_too_long',
      format('the range may span at most %s days', private.setting_int('operations.overview_max_days')));
  end if;

  -- sessions created in the range, by status (now) and by type
  with created as materialized (
    select s.status, s.session_type from public.sessions s
    where s.created_at >= p_from and s.created_at < p_to
  )
  select jsonb_build_object(
           'created', (select count(*) from created),
           'by_status', (select jsonb_object_agg(st::text, (select count(*) from created c where c.status = st))
                         from unnest(enum_range(null::public.session_status)) st),
           'by_type', (select jsonb_object_agg(ty::text, (select count(*) from created c where c.session_type = ty))
                       from unnest(enum_range(null::public.session_type)) ty))
  into v_sessions;

  -- money received (payments paid in the range) and the platform's share (payments settled in the range)
  select jsonb_build_object(
           'payments', count(*),
           'gross_cents', coalesce(sum(p.amount_cents), 0),
           'card_cents', coalesce(sum(p.amount_cents) filter (where p.method = 'card'), 0),
           'credit_cents', coalesce(sum(p.amount_cents) filter (where p.method = 'credit'), 0))
  into v_revenue
  from public.payments p
  where p.paid_at >= p_from and p.paid_at < p_to;
  v_revenue := v_revenue || (
    select jsonb_build_object('settled', jsonb_build_object(
             'payments', count(*),
             'base_cents', coalesce(sum(p.settled_base_cents), 0),
             'platform_fee_cents', coalesce(sum(p.platform_fee_cents), 0),
             'payees_cents', coalesce(sum(p.settled_base_cents - p.platform_fee_cents), 0)))
    from public.payments p
    where p.settled_at >= p_from and p.settled_at < p_to);

  -- refunds requested in the range; failed and canceled ones apart (their money stayed)
  select jsonb_build_object(
           'count', count(*) filter (where r.status not in ('failed', 'canceled')),
           'amount_cents', coalesce(sum(r.amount_cents) filter (where r.status not in ('failed', 'canceled')), 0),
           'card_cents', coalesce(sum(r.amount_cents) filter (where r.status not in ('failed', 'canceled')
                                                               and r.destination = 'card'), 0),
           'credit_cents', coalesce(sum(r.amount_cents) filter (where r.status not in ('failed', 'canceled')
                                                                 and r.destination = 'credit'), 0),
           'succeeded', count(*) filter (where r.status = 'succeeded'),
           'in_flight', count(*) filter (where r.status in ('queued', 'processing')),
           'failed', count(*) filter (where r.status in ('failed', 'canceled')),
           'failed_cents', coalesce(sum(r.amount_cents) filter (where r.status in ('failed', 'canceled')), 0))
  into v_refunds
  from public.refunds r
  where r.created_at >= p_from and r.created_at < p_to;

  -- credit: granted by admins, used to pay, returned by refunds (entries of the range)
  select jsonb_build_object(
           'granted', count(*) filter (where l.kind = 'grant'),
           'granted_cents', coalesce(sum(l.amount_cents) filter (where l.kind = 'grant'), 0),
           'used', count(*) filter (where l.kind = 'debit'),
           'used_cents', coalesce(-sum(l.amount_cents) filter (where l.kind = 'debit'), 0),
           'refunded', count(*) filter (where l.kind = 'refund'),
           'refunded_cents', coalesce(sum(l.amount_cents) filter (where l.kind = 'refund'), 0))
  into v_credits
  from public.credit_ledger l
  where l.created_at >= p_from and l.created_at < p_to;

  -- payouts: sent (paid in the range); waiting, queued and failed now, the waiting ones by the
  -- rule that holds each
  with waiting as (
    select p.amount_cents, private.overview_wait_key(private.payout_wait_reason(p.id, v_now)) as wait_key
    from public.payouts p where p.status = 'waiting'
  ), keys(wait_key) as (
    values ('objection_window'), ('delivery_unverified'), ('problem_reported'), ('mechanic_not_approved'),
           ('suspension_hold'), ('no_payout_account'), ('transfers_inactive'), ('ready'), ('other')
  )
  select jsonb_build_object(
           'sent', (select jsonb_build_object('count', count(*), 'amount_cents', coalesce(sum(p.amount_cents), 0))
                    from public.payouts p
                    where p.status = 'paid' and p.paid_at >= p_from and p.paid_at < p_to),
           'waiting', jsonb_build_object(
              'count', (select count(*) from waiting),
              'amount_cents', (select coalesce(sum(w.amount_cents), 0) from waiting w),
              'by_reason', (select jsonb_object_agg(k.wait_key, jsonb_build_object(
                                     'count', (select count(*) from waiting w where w.wait_key = k.wait_key),
                                     'amount_cents', (select coalesce(sum(w.amount_cents), 0) from waiting w
                                                      where w.wait_key = k.wait_key)))
                            from keys k)),
           'in_flight', (select jsonb_build_object('count', count(*), 'amount_cents', coalesce(sum(p.amount_cents), 0))
                         from public.payouts p where p.status in ('queued', 'processing')),
           'failed', (select jsonb_build_object('count', count(*), 'amount_cents', coalesce(sum(p.amount_cents), 0))
                      from public.payouts p where p.status = 'failed'))
  into v_payouts;

  -- the unattended queue now
  select jsonb_build_object(
           'unattended', count(*) filter (where r.status = 'unattended'),
           'oldest_unattended_at', min(r.created_at) filter (where r.status = 'unattended'),
           'oldest_unattended_age_seconds',
             floor(extract(epoch from v_now - min(r.created_at) filter (where r.status = 'unattended')))::bigint,
           'pending', count(*) filter (where r.status = 'pending'))
  into v_queue
  from public.session_requests r
  where r.status in ('pending', 'unattended');

  -- approved mechanics now, by presence as matching defines it (public.mechanic_presence)
  select jsonb_build_object(
           'online', count(*) filter (where mp.presence = 'online'),
           'busy', count(*) filter (where mp.presence = 'busy'),
           'offline', count(*) filter (where mp.presence = 'offline'))
  into v_mechanics
  from public.mechanic_presence mp;

  -- time from filing to acceptance of the requests accepted in the range
  select jsonb_build_object(
           'accepted', count(*),
           'median_seconds', round((percentile_cont(0.5) within group (order by x.seconds))::numeric, 1),
           'p90_seconds', round((percentile_cont(0.9) within group (order by x.seconds))::numeric, 1))
  into v_accept
  from (select extract(epoch from r.accepted_at - r.created_at) as seconds
        from public.session_requests r
        where r.accepted_at >= p_from and r.accepted_at < p_to) x;

  -- delivery: sessions completed (ended) in the range, delivered among them
  select jsonb_build_object(
           'completed', count(*),
           'delivered', count(*) filter (where s.delivery = 'delivered'),
           'unverified', count(*) filter (where s.delivery = 'unverified'),
           'rate', case when count(*) > 0
                        then round(count(*) filter (where s.delivery = 'delivered')::numeric / count(*), 4) end)
  into v_delivery
  from public.sessions s
  where s.status = 'completed' and s.ended_at >= p_from and s.ended_at < p_to;

  -- ratings: visible reviews (not hidden by an admin) written in the range, and of all time
  select jsonb_build_object(
           'reviews', count(*) filter (where mr.created_at >= p_from and mr.created_at < p_to),
           'average', round(avg(mr.rating) filter (where mr.created_at >= p_from and mr.created_at < p_to), 2),
           'reviews_overall', count(*),
           'average_overall', round(avg(mr.rating), 2))
  into v_ratings
  from public.mechanic_reviews mr
  where mr.hidden_at is null;

  return jsonb_build_object(
    'from', p_from, 'to', p_to, 'as_of', v_now,
    'sessions', v_sessions, 'revenue', v_revenue, 'refunds', v_refunds, 'credits', v_credits,
    'payouts', v_payouts, 'queue', v_queue, 'mechanics', v_mechanics, 'time_to_accept', v_accept,
    'delivery', v_delivery, 'ratings', v_ratings);
end
$$;
revoke execute on function public.admin_overview(timestamptz, timestamptz) from public, anon;
grant execute on function public.admin_overview(timestamptz, timestamptz) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- admin_run_sweep: the scheduled `sweep_requests` job run now, exactly as the schedule runs it
-- (private.run_job: its steps, each in its own subtransaction, recorded in private.cron_runs as
-- `cron_sweep_requests`), and audited as `sweep.run` with what it did. The sweep claims its rows
-- with `for update skip locked`, so a run by hand alongside a scheduled run never handles a row
-- twice: each row goes to whichever run locks it first.
-- ---------------------------------------------------------------------------------------------
create or replace function public.admin_run_sweep() returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_result jsonb;
begin
  perform private.require_admin();
  v_result := private.run_job('sweep_requests', now());
  perform private.record_admin_action('sweep.run', 'schedule', null, null, v_result);
  return v_result;
end
$$;
revoke execute on function public.admin_run_sweep() from public, anon;
grant execute on function public.admin_run_sweep() to authenticated, service_role;
-- <<< functions_sql operations/overview.sql

-- >>> functions_sql operations/scheduling_stats.sql sha256=55e0a6dbb3bff3100576945b75e2938690e7493c8940e9d2be4059eafec40e75
-- Operations: scheduling analytics (docs/operations.md#scheduling-analytics) — utilization,
-- no-shows, lead time, booked versus on demand, cancellations against the cut-off, per mechanic
-- and overall, each mechanic counted in its own local days.

-- ---------------------------------------------------------------------------------------------
-- No-shows: which side never showed up (called by the request sweep as it cancels)
-- ---------------------------------------------------------------------------------------------
-- A side showed up when it called start_session (ready_at) or joined the room (joined_at). A
-- session both sides showed up for is not a no-show (it failed for another reason) and gets no
-- row. Called before the cancellation, in its transaction: the row and the cancellation commit
-- together.
create or replace function private.record_no_show(p_session_id uuid, p_now timestamptz default now())
returns text
language plpgsql security definer set search_path = ''
as $$
declare
  v_customer boolean;
  v_mechanic boolean;
  v_side text;
begin
  select coalesce(bool_or(p.user_id = s.customer_id and (p.joined_at is not null or p.ready_at is not null)), false),
         coalesce(bool_or(p.user_id = s.mechanic_id and (p.joined_at is not null or p.ready_at is not null)), false)
  into v_customer, v_mechanic
  from public.sessions s
  left join public.session_participants p on p.session_id = s.id
  where s.id = p_session_id and s.mechanic_id is not null
  group by s.id;
  if not found or (v_customer and v_mechanic) then
    return null;
  end if;
  v_side := case when not v_customer and not v_mechanic then 'both' when not v_customer then 'customer' else 'mechanic' end;
  insert into private.session_no_shows (session_id, side, at) values (p_session_id, v_side, p_now)
  on conflict (session_id) do nothing;
  return v_side;
end
$$;
revoke execute on function private.record_no_show(uuid, timestamptz) from public;
grant execute on function private.record_no_show(uuid, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- The figures
-- ---------------------------------------------------------------------------------------------
-- Local dates p_from..p_to (both included) of mechanic p_mechanic_id, or of every mechanic (null).
-- Each mechanic's window is [p_from 00:00, p_to + 1 00:00) on its own wall clock
-- (mechanics.timezone, the zone of its availability), so a DST day is 23 or 25 hours long.
-- Returns {mechanics: [...], overall: {...}}; the shape of each is in docs/operations.md.
create or replace function private.scheduling_stats(p_from date, p_to date, p_mechanic_id uuid)
returns jsonb
language plpgsql stable security definer set search_path = '' set jit = off
as $$
declare
  v_cutoff interval := private.setting_interval('scheduling.change_cutoff');
  -- the earliest and latest instants any zone's window can reach (UTC+14 … UTC−12)
  v_lo timestamptz := p_from::timestamp at time zone 'Etc/GMT-14';
  v_hi timestamptz := (p_to + 1)::timestamp at time zone 'Etc/GMT+12';
  v_out jsonb;
begin
  with m as (
    select mm.id, mm.display_name, mm.timezone as tz,
           tstzrange(p_from::timestamp at time zone mm.timezone, (p_to + 1)::timestamp at time zone mm.timezone) as w
    from public.mechanics mm
    where mm.id = p_mechanic_id
    union all
    select mm.id, mm.display_name, mm.timezone,
           tstzrange(p_from::timestamp at time zone mm.timezone, (p_to + 1)::timestamp at time zone mm.timezone)
    from public.mechanics mm
    where p_mechanic_id is null
  ),
  -- open time: the availability model's own function (rules, overrides, workshop hours), clipped
  -- to the mechanic's window, minus its time off
  open_t as (
    select o.mechanic_id, range_agg(o.r) as mr
    from private.open_ranges(p_mechanic_id, v_lo, v_hi) o
    group by o.mechanic_id
  ),
  off_t as (
    select t.mechanic_id, range_agg(t.during) as mr
    from public.mechanic_time_off t join m on m.id = t.mechanic_id
    where t.during && m.w
    group by t.mechanic_id
  ),
  avail as (
    select m.id, coalesce((select sum(extract(epoch from upper(x.r) - lower(x.r))) / 60
                           from unnest((o.mr * multirange(m.w)) - coalesce(f.mr, '{}'::tstzmultirange)) x(r)), 0) as minutes
    from m join open_t o on o.mechanic_id = m.id
    left join off_t f on f.mechanic_id = m.id
  ),
  -- booked time: booked sessions not cancelled before they opened, clipped to the window
  booked as (
    select m.id, sum(extract(epoch from upper(x) - lower(x)) / 60) as minutes
    from m join public.sessions s on s.mechanic_id = m.id and s.scheduled_for is not null
    cross join lateral (select tstzrange(s.scheduled_for, s.scheduled_for + make_interval(mins => s.planned_minutes)) * m.w as x) b
    where s.scheduled_for < upper(m.w) and s.scheduled_for + make_interval(mins => s.planned_minutes) > lower(m.w)
      and not (s.status = 'cancelled' and exists (
        select 1 from public.session_events e
        where e.session_id = s.id and e.entity = 'session' and e.to_status = 'cancelled' and e.from_status = 'scheduled'))
    group by m.id
  ),
  -- the sessions of the range: a booked one by its booked start, an on-demand one by the time it
  -- opened for joining (accepted); never-accepted requests have no mechanic and no local day
  s as (
    select x.*
    from (
      select m.id as mid, s.id, s.scheduled_for is not null as is_booked, s.scheduled_for, s.created_at, s.started_at,
             op.at as opened_at, c.at as cancelled_at, c.actor_role as cancelled_by, c.from_status as cancelled_from,
             ns.side as no_show, coalesce(s.scheduled_for, op.at) as ref, m.w
      from m join public.sessions s on s.mechanic_id = m.id
      left join lateral (select e.at from public.session_events e
                         where e.session_id = s.id and e.entity = 'session' and e.to_status = 'waiting'
                         order by e.id limit 1) op on true
      left join lateral (select e.at, e.actor_role, e.from_status from public.session_events e
                         where e.session_id = s.id and e.entity = 'session' and e.to_status = 'cancelled'
                         order by e.id desc limit 1) c on true
      left join private.session_no_shows ns on ns.session_id = s.id
      where s.created_at < upper(m.w)
    ) x
    where x.ref <@ x.w
  ),
  per as (
    select m.id, m.display_name, m.tz,
           coalesce(a.minutes, 0) as available, coalesce(b.minutes, 0) as booked,
           count(s.id) filter (where s.is_booked and s.started_at is not null) as held_booked,
           count(s.id) filter (where not s.is_booked and s.started_at is not null) as held_on_demand,
           count(s.id) filter (where s.opened_at is not null) as opened,
           count(s.id) filter (where s.no_show in ('customer', 'both')) as ns_customer,
           count(s.id) filter (where s.no_show in ('mechanic', 'both')) as ns_mechanic,
           count(s.id) filter (where s.is_booked) as bookings,
           percentile_cont(0.5) within group (order by extract(epoch from s.scheduled_for - s.created_at) / 60)
             filter (where s.is_booked) as lead_median,
           percentile_cont(0.9) within group (order by extract(epoch from s.scheduled_for - s.created_at) / 60)
             filter (where s.is_booked) as lead_p90,
           count(s.id) filter (where s.is_booked and s.cancelled_from = 'scheduled'
                               and s.scheduled_for - s.cancelled_at < v_cutoff) as cancel_inside,
           count(s.id) filter (where s.is_booked and s.cancelled_from = 'scheduled'
                               and s.scheduled_for - s.cancelled_at >= v_cutoff) as cancel_outside,
           jsonb_build_object(
             'customer', count(s.id) filter (where s.cancelled_from = 'scheduled' and s.is_booked and s.cancelled_by = 'customer'),
             'mechanic', count(s.id) filter (where s.cancelled_from = 'scheduled' and s.is_booked and s.cancelled_by = 'mechanic'),
             'admin', count(s.id) filter (where s.cancelled_from = 'scheduled' and s.is_booked and s.cancelled_by = 'admin'),
             'system', count(s.id) filter (where s.cancelled_from = 'scheduled' and s.is_booked and s.cancelled_by = 'system')) as cancel_by,
           jsonb_build_object(
             'customer', count(s.id) filter (where s.cancelled_from = 'scheduled' and s.is_booked and s.cancelled_by = 'customer'
                                             and s.scheduled_for - s.cancelled_at < v_cutoff),
             'mechanic', count(s.id) filter (where s.cancelled_from = 'scheduled' and s.is_booked and s.cancelled_by = 'mechanic'
                                             and s.scheduled_for - s.cancelled_at < v_cutoff),
             'admin', count(s.id) filter (where s.cancelled_from = 'scheduled' and s.is_booked and s.cancelled_by = 'admin'
                                          and s.scheduled_for - s.cancelled_at < v_cutoff),
             'system', count(s.id) filter (where s.cancelled_from = 'scheduled' and s.is_booked and s.cancelled_by = 'system'
                                           and s.scheduled_for - s.cancelled_at < v_cutoff)) as cancel_inside_by
    from m
    left join avail a on a.id = m.id
    left join booked b on b.id = m.id
    left join s on s.mid = m.id
    group by m.id, m.display_name, m.tz, a.minutes, b.minutes
  ),
  shown as (
    select * from per
    where p_mechanic_id is not null or available > 0 or booked > 0 or opened > 0 or bookings > 0
  ),
  leads as (
    select percentile_cont(0.5) within group (order by extract(epoch from s.scheduled_for - s.created_at) / 60) as med,
           percentile_cont(0.9) within group (order by extract(epoch from s.scheduled_for - s.created_at) / 60) as p90
    from s where s.is_booked
  )
  select jsonb_build_object(
    'mechanics', coalesce((
      select jsonb_agg(private.scheduling_stats_figures(
               jsonb_build_object('mechanic_id', p.id, 'display_name', p.display_name, 'timezone', p.tz),
               p.available, p.booked, p.held_booked, p.held_on_demand, p.opened, p.ns_customer, p.ns_mechanic,
               p.bookings, p.lead_median, p.lead_p90, p.cancel_inside, p.cancel_outside, p.cancel_by, p.cancel_inside_by)
             order by p.display_name, p.id)
      from shown p), '[]'),
    'overall', (
      select private.scheduling_stats_figures(
               jsonb_build_object('mechanics', count(*)),
               coalesce(sum(p.available), 0), coalesce(sum(p.booked), 0), coalesce(sum(p.held_booked), 0)::bigint,
               coalesce(sum(p.held_on_demand), 0)::bigint, coalesce(sum(p.opened), 0)::bigint,
               coalesce(sum(p.ns_customer), 0)::bigint, coalesce(sum(p.ns_mechanic), 0)::bigint,
               coalesce(sum(p.bookings), 0)::bigint, (select l.med from leads l), (select l.p90 from leads l),
               coalesce(sum(p.cancel_inside), 0)::bigint, coalesce(sum(p.cancel_outside), 0)::bigint,
               jsonb_build_object(
                 'customer', coalesce(sum((p.cancel_by ->> 'customer')::int), 0),
                 'mechanic', coalesce(sum((p.cancel_by ->> 'mechanic')::int), 0),
                 'admin', coalesce(sum((p.cancel_by ->> 'admin')::int), 0),
                 'system', coalesce(sum((p.cancel_by ->> 'system')::int), 0)),
               jsonb_build_object(
                 'customer', coalesce(sum((p.cancel_inside_by ->> 'customer')::int), 0),
                 'mechanic', coalesce(sum((p.cancel_inside_by ->> 'mechanic')::int), 0),
                 'admin', coalesce(sum((p.cancel_inside_by ->> 'admin')::int), 0),
                 'system', coalesce(sum((p.cancel_inside_by ->> 'system')::int), 0)))
      from shown p))
  into v_out;
  return v_out || jsonb_build_object('from', p_from, 'to', p_to, 'change_cutoff', private.setting_text('scheduling.change_cutoff'));
end
$$;
revoke execute on function private.scheduling_stats(date, date, uuid) from public;
grant execute on function private.scheduling_stats(date, date, uuid) to service_role;

-- One block of figures (a mechanic's or the overall one) from its counts; ratios are null when
-- their denominator is 0.
create or replace function private.scheduling_stats_figures(
  p_head jsonb, p_available numeric, p_booked numeric, p_held_booked bigint, p_held_on_demand bigint,
  p_opened bigint, p_ns_customer bigint, p_ns_mechanic bigint, p_bookings bigint,
  p_lead_median double precision, p_lead_p90 double precision, p_cancel_inside bigint, p_cancel_outside bigint,
  p_cancel_by jsonb, p_cancel_inside_by jsonb
) returns jsonb
language sql immutable set search_path = ''
as $$
  select p_head || jsonb_build_object(
    'available_minutes', round(p_available, 2),
    'booked_minutes', round(p_booked, 2),
    'utilization', case when p_available > 0 then round(p_booked / p_available, 4) end,
    'sessions', jsonb_build_object(
      'booked', p_held_booked, 'on_demand', p_held_on_demand,
      'booked_share', case when p_held_booked + p_held_on_demand > 0
                           then round(p_held_booked::numeric / (p_held_booked + p_held_on_demand), 4) end),
    'no_shows', jsonb_build_object(
      'opened', p_opened, 'customer', p_ns_customer, 'mechanic', p_ns_mechanic,
      'customer_rate', case when p_opened > 0 then round(p_ns_customer::numeric / p_opened, 4) end,
      'mechanic_rate', case when p_opened > 0 then round(p_ns_mechanic::numeric / p_opened, 4) end),
    'lead_time_minutes', jsonb_build_object(
      'bookings', p_bookings,
      'median', round(p_lead_median::numeric, 1),
      'p90', round(p_lead_p90::numeric, 1)),
    'cancellations', jsonb_build_object(
      'total', p_cancel_inside + p_cancel_outside,
      'inside_cutoff', p_cancel_inside, 'outside_cutoff', p_cancel_outside,
      'by', p_cancel_by, 'inside_cutoff_by', p_cancel_inside_by));
$$;
revoke execute on function private.scheduling_stats_figures(jsonb, numeric, numeric, bigint, bigint, bigint, bigint, bigint,
  bigint, double precision, double precision, bigint, bigint, jsonb, jsonb) from public;

-- The range rules of both reports: both dates given, from ≤ to, at most operations.stats_max_days
-- local days (both ends included).
create or replace function private.check_stats_range(p_from date, p_to date) returns void
language plpgsql stable set search_path = ''
as $$
begin
  perform private.require_arg('p_from', p_from);
  perform private.require_arg('p_to', p_to);
  if p_to < p_from then
    perform private.raise_error('stats_range_reversed', format('p_to (%s) is before p_from (%s)', p_to, p_from));
  end if;
  if p_to - p_from + 1 > private.setting_int('operations.stats_max_days') then
    perform private.raise_error('stats_range_too_long',
      format('the range covers %s days, at most %s', p_to - p_from + 1, private.setting_int('operations.stats_max_days')));
  end if;
end
$$;
revoke execute on function private.check_stats_range(date, date) from public;
grant execute on function private.check_stats_range(date, date) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- RPCs
-- ---------------------------------------------------------------------------------------------
-- Admins: every mechanic with open time, booked time or sessions in the range, and the overall
-- figures. Recorded as `scheduling.stats` in the audit of admin actions (who read which range).
create or replace function public.admin_scheduling_stats(p_from date, p_to date) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_out jsonb;
begin
  perform private.require_admin();
  perform private.check_stats_range(p_from, p_to);
  v_out := private.scheduling_stats(p_from, p_to, null);
  perform private.record_admin_action('scheduling.stats', 'report', null, null,
                                      jsonb_build_object('from', p_from, 'to', p_to));
  return v_out;
end
$$;
revoke execute on function public.admin_scheduling_stats(date, date) from public, anon;
grant execute on function public.admin_scheduling_stats(date, date) to authenticated, service_role;

-- An approved mechanic: its own figures only. There is no mechanic argument: whose figures these
-- are is the caller, so no one can ask for someone else's.
create or replace function public.my_scheduling_stats(p_from date, p_to date) returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_out jsonb;
begin
  if not exists (select 1 from public.mechanics m where m.id = v_uid and m.status = 'approved') then
    perform private.raise_error('not_an_approved_mechanic', 'only an approved mechanic has scheduling figures');
  end if;
  perform private.check_stats_range(p_from, p_to);
  v_out := private.scheduling_stats(p_from, p_to, v_uid);
  return (v_out -> 'mechanics' -> 0) || jsonb_build_object('from', v_out -> 'from', 'to', v_out -> 'to',
                                                           'change_cutoff', v_out -> 'change_cutoff');
end
$$;
revoke execute on function public.my_scheduling_stats(date, date) from public, anon;
grant execute on function public.my_scheduling_stats(date, date) to authenticated, service_role;
-- <<< functions_sql operations/scheduling_stats.sql

-- >>> functions_sql operations/suspension.sql sha256=677e36bdea878cea7f63da47f0bc24a124373d4cc41424f2fc97d037b8987adb
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
-- <<< functions_sql operations/suspension.sql

-- >>> functions_sql operations/vetting.sql sha256=526d634854d6c06516a276b806ddbbb6c836d4ad0eb1126f8c2c47ac392e1022
-- Operations: vetting a mechanic applicant (docs/operations.md, "Vetting"). The applicant sends its
-- documents into the mechanic-documents bucket (mechanics/<mechanic_id>/<kind>/<file>; the bucket,
-- its policies and their helpers are in the migration); an admin reads them through signed URLs
-- and decides with admin_review_mechanic. mechanics.status stays the standing (pending, approved,
-- suspended); the vetting state is the last decision of public.mechanic_vetting_decisions.

-- The documents a mechanic sent: kind, file name, when (never the content).
create or replace function private.mechanic_documents(p_mechanic_id uuid) returns jsonb
language sql stable security definer set search_path = ''
as $$
  select coalesce(jsonb_agg(jsonb_build_object(
           'kind', split_part(o.name, '/', 3), 'file', split_part(o.name, '/', 4), 'sent_at', o.created_at)
         order by o.created_at, o.name), '[]'::jsonb)
  from storage.objects o
  where o.bucket_id = 'mechanic-documents' and o.name like 'mechanics/' || p_mechanic_id::text || '/%'
    and private.mechanic_document_owner(o.name) = p_mechanic_id
$$;
revoke execute on function private.mechanic_documents(uuid) from public;
grant execute on function private.mechanic_documents(uuid) to service_role;

-- The vetting state: the last decision, or submitted (documents sent, no decision yet), or new.
create or replace function private.vetting_state(p_mechanic_id uuid) returns text
language sql stable security definer set search_path = ''
as $$
  select coalesce(
    (select d.decision from public.mechanic_vetting_decisions d
     where d.mechanic_id = p_mechanic_id order by d.decided_at desc, d.id desc limit 1),
    case when exists (select 1 from storage.objects o
                      where o.bucket_id = 'mechanic-documents'
                        and o.name like 'mechanics/' || p_mechanic_id::text || '/%')
         then 'submitted' else 'new' end)
$$;
revoke execute on function private.vetting_state(uuid) from public;
grant execute on function private.vetting_state(uuid) to service_role;

-- The applicant's own view: its standing, the vetting state, what it sent (names and kinds only:
-- documents are not read back) and the decisions with their notes (not who decided).
create or replace function public.my_vetting() returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_status public.mechanic_status;
begin
  select m.status into v_status from public.mechanics m where m.id = v_uid;
  if not found then
    perform private.raise_error('not_allowed', 'mechanics only');
  end if;
  return jsonb_build_object(
    'mechanic_id', v_uid, 'status', v_status, 'vetting_state', private.vetting_state(v_uid),
    'required_documents', to_jsonb(private.setting('vetting.required_documents')),
    'documents', private.mechanic_documents(v_uid),
    'decisions', coalesce((select jsonb_agg(jsonb_build_object('decision', d.decision, 'note', d.note,
                                                               'decided_at', d.decided_at) order by d.decided_at, d.id)
                           from public.mechanic_vetting_decisions d where d.mechanic_id = v_uid), '[]'::jsonb));
end
$$;
revoke execute on function public.my_vetting() from public, anon;
grant execute on function public.my_vetting() to authenticated, service_role;

-- Admin: one mechanic's file — its documents with their object names (bucket mechanic-documents:
-- sign them with Storage's createSignedUrl, which the admins-only select policy allows), the
-- decisions with who decided, and what approval still lacks.
create or replace function public.admin_mechanic_vetting(p_mechanic_id uuid) returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_m public.mechanics;
begin
  perform private.require_admin();
  perform private.require_arg('p_mechanic_id', p_mechanic_id);
  select * into v_m from public.mechanics where id = p_mechanic_id;
  if not found then
    perform private.raise_error('not_found', 'no such mechanic');
  end if;
  return jsonb_build_object(
    'mechanic_id', v_m.id, 'status', v_m.status, 'vetting_state', private.vetting_state(v_m.id),
    'documents', coalesce((select jsonb_agg(d || jsonb_build_object(
                            'bucket', 'mechanic-documents',
                            'path', format('mechanics/%s/%s/%s', v_m.id, d ->> 'kind', d ->> 'file')))
                           from jsonb_array_elements(private.mechanic_documents(v_m.id)) d), '[]'::jsonb),
    'missing_documents', to_jsonb(private.missing_documents(v_m.id)),
    'decisions', coalesce((select jsonb_agg(jsonb_build_object('decision', d.decision, 'note', d.note,
                                                               'decided_by', d.decided_by, 'decided_at', d.decided_at)
                                            order by d.decided_at, d.id)
                           from public.mechanic_vetting_decisions d where d.mechanic_id = v_m.id), '[]'::jsonb));
end
$$;
revoke execute on function public.admin_mechanic_vetting(uuid) from public, anon;
grant execute on function public.admin_mechanic_vetting(uuid) to authenticated, service_role;

-- The kinds approval requires (vetting.required_documents) that the mechanic has not sent.
create or replace function private.missing_documents(p_mechanic_id uuid) returns text[]
language sql stable security definer set search_path = ''
as $$
  select coalesce(array_agg(k order by k), '{}')
  from jsonb_array_elements_text(private.setting('vetting.required_documents')) k
  where not exists (select 1 from storage.objects o
                    where o.bucket_id = 'mechanic-documents'
                      and o.name like 'mechanics/' || p_mechanic_id::text || '/' || k || '/%'
                      and private.mechanic_document_owner(o.name) = p_mechanic_id)
$$;
revoke execute on function private.missing_documents(uuid) from public;
grant execute on function private.missing_documents(uuid) to service_role;

-- Admin: decides on an applicant (a mechanic pending approval). approved makes it an approved
-- mechanic (only with every required kind of document sent); rejected (the note is the reason the
-- applicant reads) and needs_more_info (the note says what is missing) leave it pending. Each
-- decision is kept, emailed to the applicant (vetting_decision) and audited (mechanic.review).
create or replace function public.admin_review_mechanic(p_mechanic_id uuid, p_decision text, p_note text)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_admin uuid := private.require_admin();
  v_note text;
  v_m public.mechanics;
  v_missing text[];
  v_id bigint;
begin
  perform private.require_arg('p_mechanic_id', p_mechanic_id);
  if p_decision is null or p_decision not in ('approved', 'rejected', 'needs_more_info') then
    perform private.raise_error('invalid_input', 'p_decision is approved, rejected or needs_more_info');
  end if;
  v_note := private.check_text('p_note', p_note, p_decision <> 'approved');
  select * into v_m from public.mechanics where id = p_mechanic_id for update;
  if not found then
    perform private.raise_error('not_found', 'no such mechanic');
  end if;
  if v_m.status <> 'pending' then
    perform private.raise_error('mechanic_not_under_review',
      format('the mechanic is %s: only an applicant is reviewed', v_m.status));
  end if;
  if p_decision = 'approved' then
    v_missing := private.missing_documents(p_mechanic_id);
    if cardinality(v_missing) > 0 then
      perform private.raise_error('vetting_documents_missing',
        format('approval requires these documents, not sent yet: %s', array_to_string(v_missing, ', ')));
    end if;
  end if;
  perform private.set_actor('admin', format('vetting: %s', p_decision));
  insert into public.mechanic_vetting_decisions (mechanic_id, decision, note, decided_by)
  values (p_mechanic_id, p_decision, v_note, v_admin)
  returning id into v_id;
  if p_decision = 'approved' then
    update public.mechanics set status = 'approved', approved_at = coalesce(approved_at, now())
    where id = p_mechanic_id;
  end if;
  perform private.enqueue_email('vetting_decision', p_mechanic_id, null,
    jsonb_build_object('decision', p_decision, 'note', v_note), format(':%s', v_id));
  perform private.record_admin_action('mechanic.review', 'mechanic', p_mechanic_id, v_note,
    jsonb_build_object('decision', p_decision, 'decision_id', v_id));
  return jsonb_build_object('mechanic_id', p_mechanic_id, 'decision_id', v_id, 'decision', p_decision,
                            'note', v_note, 'status', (select m.status from public.mechanics m where m.id = p_mechanic_id),
                            'vetting_state', p_decision);
end
$$;
revoke execute on function public.admin_review_mechanic(uuid, text, text) from public, anon;
grant execute on function public.admin_review_mechanic(uuid, text, text) to authenticated, service_role;
-- <<< functions_sql operations/vetting.sql

-- >>> functions_sql trust/standing.sql sha256=48f60135d88420982e9a0d1f847a97ce41ab3b62f9105b935f35b16f4f5c8a07
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
-- <<< functions_sql trust/standing.sql

-- >>> functions_sql workshops/onboarding.sql sha256=1a65ec1d4b5f8f731fdf657e65ae84c0bc504c6a2c55ca6983e9e267a03dbe0d
-- Workshops: onboarding. Any signed-in user creates a workshop and becomes its owner; it stays
-- `pending` (neither listed nor bookable) until a platform admin verifies it. Details are edited by
-- the staff with edit_details (docs/workshops.md, "Onboarding").

-- Applies a details object to a workshop: only the keys given change; an unknown key, a wrong type
-- or an out-of-range value is invalid_input and nothing changes. null clears a key (services and
-- brands: to the empty list).
create or replace function private.apply_workshop_details(p_workshop_id uuid, p_details jsonb) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_key text;
  v_type text;
  v_services text[];
  v_brands text[];
  v_lat double precision;
  v_lon double precision;
begin
  if p_details is null or jsonb_typeof(p_details) <> 'object' then
    perform private.raise_error('invalid_input', 'p_details must be a JSON object');
  end if;
  for v_key in select jsonb_object_keys(p_details) loop
    if v_key not in ('legal_name', 'address_line', 'city', 'postal_code', 'country', 'latitude', 'longitude',
                     'phone', 'description', 'services', 'brands', 'photo_url') then
      perform private.raise_error('invalid_input', format('unknown detail %s', left(v_key, 60)));
    end if;
    v_type := (case when v_key in ('latitude', 'longitude') then 'number'
                    when v_key in ('services', 'brands') then 'array' else 'string' end);
    if jsonb_typeof(p_details -> v_key) not in ('null', v_type) then
      perform private.raise_error('invalid_input', format('%s has the wrong type', v_key));
    end if;
  end loop;
  if (p_details ? 'latitude') <> (p_details ? 'longitude')
     or (jsonb_typeof(p_details -> 'latitude') = 'null') <> (jsonb_typeof(p_details -> 'longitude') = 'null') then
    perform private.raise_error('invalid_input', 'latitude and longitude are given together');
  end if;
  v_lat := (p_details ->> 'latitude')::double precision;
  v_lon := (p_details ->> 'longitude')::double precision;
  if v_lat not between -90 and 90 or v_lon not between -180 and 180 then
    perform private.raise_error('invalid_input', 'latitude -90..90, longitude -180..180');
  end if;
  if char_length(p_details ->> 'legal_name') > 200 or char_length(p_details ->> 'address_line') > 300
     or char_length(p_details ->> 'city') > 120 or char_length(p_details ->> 'description') > 4000 then
    perform private.raise_error('invalid_input', 'legal_name ≤ 200, address_line ≤ 300, city ≤ 120, description ≤ 4000');
  end if;
  if (p_details ->> 'postal_code') !~ '^[A-Za-z0-9 -]{2,20}$' then
    perform private.raise_error('invalid_input', 'postal_code: 2..20 letters, digits, spaces or dashes');
  end if;
  if (p_details ->> 'country') !~ '^[A-Za-z]{2}$' then
    perform private.raise_error('invalid_input', 'country: an ISO 3166 two-letter code');
  end if;
  if (p_details ->> 'phone') !~ '^\+?[0-9][0-9 ().-]{4,38}$' then
    perform private.raise_error('invalid_input', 'phone: digits, spaces, dots, dashes and parentheses, 5..40');
  end if;
  if (p_details ->> 'photo_url') !~ '^https://[^\s]+$' or char_length(p_details ->> 'photo_url') > 2000 then
    perform private.raise_error('invalid_input', 'photo_url: an https:// URL of at most 2000 characters');
  end if;
  if jsonb_typeof(p_details -> 'services') = 'array' then
    if jsonb_array_length(p_details -> 'services') > 50
       or exists (select 1 from jsonb_array_elements(p_details -> 'services') e
                  where jsonb_typeof(e) <> 'string'
                     or not exists (select 1 from public.workshop_services ws where ws.code = e #>> '{}')) then
      perform private.raise_error('invalid_input', 'services: at most 50 codes of public.workshop_services');
    end if;
    select coalesce(array_agg(distinct e #>> '{}' order by e #>> '{}'), '{}') into v_services
    from jsonb_array_elements(p_details -> 'services') e;
  end if;
  if jsonb_typeof(p_details -> 'brands') = 'array' then
    if jsonb_array_length(p_details -> 'brands') > 50
       or exists (select 1 from jsonb_array_elements(p_details -> 'brands') e
                  where jsonb_typeof(e) <> 'string' or char_length(btrim(e #>> '{}')) not between 1 and 60
                     or (e #>> '{}') ~ '[[:cntrl:]]') then
      perform private.raise_error('invalid_input', 'brands: at most 50 names of 1..60 characters');
    end if;
    select coalesce(array_agg(distinct btrim(e #>> '{}') order by btrim(e #>> '{}')), '{}') into v_brands
    from jsonb_array_elements(p_details -> 'brands') e;
  end if;
  if exists (select 1 from jsonb_each_text(p_details) kv where kv.value ~ '[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]') then
    perform private.raise_error('invalid_input', 'details may not contain control characters');
  end if;
  update public.organizations o set
    legal_name = case when p_details ? 'legal_name' then nullif(btrim(p_details ->> 'legal_name'), '') else o.legal_name end,
    address_line = case when p_details ? 'address_line' then nullif(btrim(p_details ->> 'address_line'), '')
                        else o.address_line end,
    city = case when p_details ? 'city' then nullif(btrim(p_details ->> 'city'), '') else o.city end,
    postal_code = case when p_details ? 'postal_code' then upper(btrim(p_details ->> 'postal_code')) else o.postal_code end,
    country = case when p_details ? 'country' then upper(p_details ->> 'country') else o.country end,
    latitude = case when p_details ? 'latitude' then v_lat else o.latitude end,
    longitude = case when p_details ? 'longitude' then v_lon else o.longitude end,
    phone = case when p_details ? 'phone' then btrim(p_details ->> 'phone') else o.phone end,
    description = case when p_details ? 'description' then nullif(btrim(p_details ->> 'description'), '')
                       else o.description end,
    services = case when p_details ? 'services' then coalesce(v_services, '{}') else o.services end,
    brands = case when p_details ? 'brands' then coalesce(v_brands, '{}') else o.brands end,
    photo_url = case when p_details ? 'photo_url' then p_details ->> 'photo_url' else o.photo_url end,
    updated_at = now()
  where o.id = p_workshop_id;
end
$$;
revoke execute on function private.apply_workshop_details(uuid, jsonb) from public;
grant execute on function private.apply_workshop_details(uuid, jsonb) to service_role;

-- The workshop as its staff see it (details, status, the caller's role).
create or replace function private.workshop_json(p_workshop_id uuid, p_user_id uuid) returns jsonb
language sql stable security definer set search_path = ''
as $$
  select jsonb_build_object('workshop_id', o.id, 'name', o.name, 'timezone', o.timezone, 'status', o.status,
    'verified_at', o.verified_at, 'legal_name', o.legal_name, 'address_line', o.address_line, 'city', o.city,
    'postal_code', o.postal_code, 'country', o.country, 'latitude', o.latitude, 'longitude', o.longitude,
    'phone', o.phone, 'description', o.description, 'services', to_jsonb(o.services), 'brands', to_jsonb(o.brands),
    'photo_url', o.photo_url, 'role', private.workshop_role(o.id, p_user_id))
  from public.organizations o where o.id = p_workshop_id
$$;
revoke execute on function private.workshop_json(uuid, uuid) from public;
grant execute on function private.workshop_json(uuid, uuid) to service_role;

-- ---------------------------------------------------------------------------------------------
-- create_workshop: the caller becomes the owner of a new pending workshop
-- ---------------------------------------------------------------------------------------------
create or replace function public.create_workshop(p_name text, p_timezone text, p_details jsonb default '{}')
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_name text := btrim(p_name);
  v_id uuid;
begin
  if v_name is null or char_length(v_name) not between 1 and 200 or v_name ~ '[[:cntrl:]]' then
    perform private.raise_error('invalid_input', 'p_name: 1..200 characters');
  end if;
  if p_timezone is null or char_length(p_timezone) > 64 or not private.is_valid_timezone(p_timezone) then
    perform private.raise_error('invalid_input', 'p_timezone must be an IANA zone name');
  end if;
  -- one creation at a time per user: the pending count below cannot be raced past
  perform pg_advisory_xact_lock(hashtextextended('create_workshop:' || v_uid::text, 0));
  if (select count(*) from public.organizations o
      where o.created_by = v_uid and o.status = 'pending') >= private.setting_int('workshops.max_pending_per_user') then
    perform private.raise_error('too_many_pending_workshops',
      format('at most %s workshops awaiting verification', private.setting_int('workshops.max_pending_per_user')));
  end if;
  insert into public.organizations (name, timezone, created_by, status)
  values (v_name, p_timezone, v_uid, 'pending') returning id into v_id;
  perform private.apply_workshop_details(v_id, coalesce(p_details, '{}'::jsonb));
  insert into public.organization_members (organization_id, user_id, role) values (v_id, v_uid, 'owner');
  return private.workshop_json(v_id, v_uid);
end
$$;
revoke execute on function public.create_workshop(text, text, jsonb) from public, anon;
grant execute on function public.create_workshop(text, text, jsonb) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- update_workshop_details: edit_details (the status is the platform's)
-- ---------------------------------------------------------------------------------------------
create or replace function public.update_workshop_details(p_workshop_id uuid, p_details jsonb) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
begin
  perform private.require_arg('p_workshop_id', p_workshop_id);
  perform 1 from public.organizations o where o.id = p_workshop_id for update;
  if not found or (private.workshop_role(p_workshop_id, v_uid) is null and not private.is_admin()) then
    perform private.raise_error('not_found', 'no such workshop among yours');
  end if;
  if not private.workshop_can(p_workshop_id, v_uid, 'edit_details') then
    perform private.raise_error('not_allowed', 'your role does not edit the workshop''s details');
  end if;
  perform private.apply_workshop_details(p_workshop_id, p_details);
  return private.workshop_json(p_workshop_id, v_uid);
end
$$;
revoke execute on function public.update_workshop_details(uuid, jsonb) from public, anon;
grant execute on function public.update_workshop_details(uuid, jsonb) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- admin_set_workshop_status: platform admins verify or suspend a workshop
-- ---------------------------------------------------------------------------------------------
create or replace function public.admin_set_workshop_status(p_workshop_id uuid, p_status text) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_org public.organizations;
begin
  if not private.is_admin() then
    perform private.raise_error('not_allowed', 'platform admins only');
  end if;
  perform private.require_arg('p_workshop_id', p_workshop_id);
  if p_status is null or p_status not in ('verified', 'suspended') then
    perform private.raise_error('invalid_input', 'p_status is verified or suspended');
  end if;
  select * into v_org from public.organizations where id = p_workshop_id for update;
  if not found then
    perform private.raise_error('not_found', 'no such workshop');
  end if;
  if v_org.status = p_status then
    perform private.raise_error('invalid_transition', format('the workshop is %s already', p_status));
  end if;
  update public.organizations
  set status = p_status,
      verified_at = case when p_status = 'verified' then now() else verified_at end,
      updated_at = now()
  where id = p_workshop_id;
  perform private.record_admin_action('workshop.set_status', 'workshop', p_workshop_id, null,
                                      jsonb_build_object('from', v_org.status, 'to', p_status));
  return private.workshop_json(p_workshop_id, v_uid);
end
$$;
revoke execute on function public.admin_set_workshop_status(uuid, text) from public, anon;
grant execute on function public.admin_set_workshop_status(uuid, text) to authenticated, service_role;
-- <<< functions_sql workshops/onboarding.sql

reset check_function_bodies;

-- functions_sql-manifest: the state of supabase/functions_sql/ after this migration
-- functions_sql-manifest core/admin.sql sha256=9fac754d527bb2a0226e93080de425ef580333f167e3e0624f34c07f8633293c
-- functions_sql-manifest core/broadcasts.sql sha256=c93578c48e0d8c0c565a87dcb05642e2db63a0c8f168c31dee9dff2d1c798cec
-- functions_sql-manifest core/directory.sql sha256=97061e15165f3460c9f89023ee7162fa3b68d758e42d9d514665d237c6eb604d
-- functions_sql-manifest core/errors.sql sha256=3162f074770469a2c8f8cc6e582405853f74e510e71a3961234876f8a544d9d2
-- functions_sql-manifest core/helpers.sql sha256=fa1872c37c33a27b6875c41ae6e7c365f5d0a366926f2c758b43d0f067205e2e
-- functions_sql-manifest core/lifecycle.sql sha256=5f3ed2f9a8e654d5ca93bbf7edf248cd364e4ce5a123279775841ea40f774886
-- functions_sql-manifest core/rpc.sql sha256=ab9059793859f4a0aa99e39153809a125acc486aa8ba9bd6475725fc83334ffa
-- functions_sql-manifest core/sessions.sql sha256=34d1c57c543b4af7a31971a73c346d28281f718ba53fc1ae184a9f1a8bf931f1
-- functions_sql-manifest core/signup.sql sha256=c1eaadc2d934df2bed3300c53885004a45fe59fb472bdbece20a33b0f704bd17
-- functions_sql-manifest core/transitions.sql sha256=098fdf6854df746cfb9fab11e2976507138ad996dc669984166c96a30e18f979
-- functions_sql-manifest jobs/admin.sql sha256=a431c8c37cae7835a803b49b41130f31e66f3e6dc2910f9e6f350a8b69944b13
-- functions_sql-manifest jobs/emails.sql sha256=b143b84726f6a930f3e53cd3b60f284b256b874ae0607350a333069d929dccb4
-- functions_sql-manifest jobs/nudges.sql sha256=2c190ede7b490ef8f2ff1cd61d1b4a4b5a7c9222e325f13f0cee406020ebb121
-- functions_sql-manifest jobs/outbox.sql sha256=2b71c342ff6ea91cdda0c0de9cb671b3d678768aabd67044c635de6c5b65ba86
-- functions_sql-manifest jobs/runs.sql sha256=22697585fd787eecd46440d55f7e68b6096ccbffae106360d2eca48014e3fd98
-- functions_sql-manifest jobs/schedules.sql sha256=7fd96d235d3fdbf1629e27457c32f256036082972cfcd47bda8dc008df14baf8
-- functions_sql-manifest jobs/sweep_requests.sql sha256=a23a55209d25dfa04d0381b4a044ef8988c369bfd5d5f75342eeb081ffa24fc4
-- functions_sql-manifest journey/crm.sql sha256=ad947defb07bf2514d234e48196f06c8003de9198be44edafd931324da9eed77
-- functions_sql-manifest journey/email_events.sql sha256=b51ce4a220f681ed20c686fa4c446662e0c2a5934a48c89aa63291f5e0abf175
-- functions_sql-manifest journey/follow_ups.sql sha256=ffeac60955f0629f182850ca5860cbfb58d3f8e34fa43ddd1e3711f0e97ba7b7
-- functions_sql-manifest journey/funnel.sql sha256=5b3c8672caaabd8ac657b194f79cd4a298aa5821d8c2638ffa1e1bc7f66251cf
-- functions_sql-manifest journey/hooks.sql sha256=99325e75fecf99286655b1520e96ed28be92671201653795c6fc543383152cad
-- functions_sql-manifest journey/media.sql sha256=51f76abb9d8ccc2bdfa3bfa5a51394c1dbeaa570e90441c6ae07cb52faed8074
-- functions_sql-manifest journey/messages.sql sha256=9c982cb359e36289c3719de9113c0f35712d88bc0c0de88750a250951602c698
-- functions_sql-manifest journey/recommendations.sql sha256=a036ac293c55e400a131907958b2b0f47f31e1f70b026e95f911350f3d9ffbcb
-- functions_sql-manifest journey/summaries.sql sha256=8f846c9f411f14f5c050216d66b7ebf0e543e4d692c9212e5fed8a2504988aca
-- functions_sql-manifest matching/eligibility.sql sha256=36c72d1964b3eefc61cdaae0f878816a7865860aadcee9a881b7ba82d8b1b12f
-- functions_sql-manifest matching/keywords.sql sha256=152d4fe0de3480e326b93190271c153a66f37f4f4cbf3b64bcc90821769a37a6
-- functions_sql-manifest matching/listing.sql sha256=3fe126794fb7ae8aeaac46108933767ecec0f7430e52b0c0fdf954eeeafeb649
-- functions_sql-manifest matching/metrics.sql sha256=16e0bfa047e423ebe70c19b3ca3e25ca809a7c0649361b46516eccb088b98145
-- functions_sql-manifest matching/presence.sql sha256=421df5980727f44db43fb1f9d2d00e506c103f9cf5a1c41dc5bc75ed7ebdfac7
-- functions_sql-manifest matching/ranking.sql sha256=79691d024eea19b79204a38924e802489e5bcd816e4517eec8bb57b87eb0be94
-- functions_sql-manifest matching/routing.sql sha256=b3a2f3e4e7eeed9b1c5a4d10136809fb13dd99f0d72fa5018c2384fc8a52a7cf
-- functions_sql-manifest micro/caps.sql sha256=fdb53cb5189eed36f0ef794df0db47f8211a1d85db656a09f976cd5fa0555de6
-- functions_sql-manifest micro/clock.sql sha256=32f42427523e5c8be8e9fef6f730b3c8c24fa1054af8a6d2c488b821b12782ca
-- functions_sql-manifest micro/dashboards.sql sha256=1d84b7005d832d8d31bd90af0f51609bb0835cad1c1adb80b551238a8e1d3fee
-- functions_sql-manifest micro/settings.sql sha256=356a78efd80f0d129aee86690203858fd1eb41951ee61f292cd27c6c455a53b6
-- functions_sql-manifest operations/audit.sql sha256=36151fb12fbe00fc18cfa4ab2b483a8124de04a2f0ce94320f000bd8f58afac9
-- functions_sql-manifest operations/audit_read.sql sha256=79a5ce8d7aac6cfd8492db628d05b2361ead8b3e40bbc0e4fc97931e2eb18944
-- functions_sql-manifest operations/intakes.sql sha256=5a26a15d43af2b32955d467c57c0081cd0717e4b954c731b12a062eb09eb5f4f
-- functions_sql-manifest operations/overview.sql sha256=3df15bfd5fd6d5c44b2644335d8fef6a5455f270c8951e97631c500514d4f63f
-- functions_sql-manifest operations/scheduling_stats.sql sha256=55e0a6dbb3bff3100576945b75e2938690e7493c8940e9d2be4059eafec40e75
-- functions_sql-manifest operations/suspension.sql sha256=677e36bdea878cea7f63da47f0bc24a124373d4cc41424f2fc97d037b8987adb
-- functions_sql-manifest operations/vetting.sql sha256=526d634854d6c06516a276b806ddbbb6c836d4ad0eb1126f8c2c47ac392e1022
-- functions_sql-manifest payments/admin.sql sha256=1e117ff190427ab5d40ab22de5fc00ab39dc4e8c7ae9c0f8063d3463907e2f1a
-- functions_sql-manifest payments/checkout.sql sha256=6b2edd65f5b39f3aa6a8673a415c393753c9fd18a44e634ce746636ae401f384
-- functions_sql-manifest payments/connect.sql sha256=a8b79815e5f06ce6f00f3f5f82767bb9579e5e9c5f750338fc5c905c866b306d
-- functions_sql-manifest payments/credit.sql sha256=46ca316d088673f86ba57da14e97a14d761a4570debc1f3ad5d74e2538deb54f
-- functions_sql-manifest payments/helpers.sql sha256=564335851c5012a83791aa07b04ab1e2be627799d5b7fb91e995d57776037964
-- functions_sql-manifest payments/integrity.sql sha256=6c2bba7a49c6003ae582231db463a52ae56cde445b3c027d38edb86ffe550532
-- functions_sql-manifest payments/refunds.sql sha256=cae62e292095da8bea25a5efa26fee737f917ddad64674940e764dbdd029a64f
-- functions_sql-manifest payments/settlement.sql sha256=61eab335038603d3c5ca74c4d5482699ff096571f76b57d4ec1be1fe4f84f015
-- functions_sql-manifest payments/stripe_events.sql sha256=4ce61ce9cfefa4baac3f3e9bcea7fde138656823399523df35da2611f8a94edb
-- functions_sql-manifest payments/stripe_worker.sql sha256=7a1794a993228bf0823b97a16ae0d8c7460154642cef84408597c4004e8603ae
-- functions_sql-manifest reviews/prompts.sql sha256=e3c52363528fd28863d3b82dba2a77c539334fee239d433a2c08860bc8182791
-- functions_sql-manifest reviews/public_view.sql sha256=3163f057402af1cc7203ef9ca04b483045d3e1e48322d23e5b7deb6c30c03414
-- functions_sql-manifest reviews/reputation.sql sha256=94a660258d69a38250c8f5efcd36415d5d0e8347bec1a6c772634db1fe37054a
-- functions_sql-manifest reviews/reviews.sql sha256=acb29b4bdf4a2cccae60ad261d0aebd3b2c0ec8dd85824ac9060ecc5d46cad36
-- functions_sql-manifest rooms/access.sql sha256=1b63c186ad327a61c6f7c2eea4436148cd145987bec6902fa111b45b7639ae8f
-- functions_sql-manifest rooms/extensions.sql sha256=ecdb7236fec9d57e29a438797584ac830db6c0cf66795c8b03df65da3635e495
-- functions_sql-manifest rooms/livekit_events.sql sha256=cc2b9fea2937b577fdb85e91e226156f3d7dd339706f5a61c3892c359d9a4e4a
-- functions_sql-manifest rooms/timers.sql sha256=5265ead1f8b4bfd63c4236d6fc0d07afe4bc0053d21060682f6d557b921261c8
-- functions_sql-manifest scheduling/availability_rpc.sql sha256=fa16f1151e8b6ae87c87d4803aa9ca30ae76b2fc0e9eae062b18db3b80635acd
-- functions_sql-manifest scheduling/booking_rpc.sql sha256=fd78b54227728a48cd2ea95a1fb64e3d5389e40fdd95ea5070ff511d77f5e4f4
-- functions_sql-manifest scheduling/calendar.sql sha256=6100fcc60a2a22bf1e09c2b682833fb40ba154ad5e9064b7c0bcd8c53b3a8324
-- functions_sql-manifest scheduling/changes.sql sha256=9e87d0da79c6f8a24def78eb05896b5b82b7818be3e4e503ddd3e3c46cebae77
-- functions_sql-manifest scheduling/committed_time.sql sha256=ddd38c89b02e59607f7f40768eae0c22b177f351729f61bf8b9c6c5b3784f553
-- functions_sql-manifest scheduling/holds.sql sha256=80e66dfab8e5e885da721fd24e96a859f0414b15c115b629c3713175da08cd35
-- functions_sql-manifest scheduling/jobs.sql sha256=0e6312d573231b426c54900221c5b0ecbf53894ff7a9f634acf5d59fec14b64a
-- functions_sql-manifest scheduling/open_time.sql sha256=4a300a2863905f3ba4bac94f8c68b972ce223b96c2d83e3c9b53abc4b0d02805
-- functions_sql-manifest scheduling/reminders.sql sha256=a6dc4c21da22223a56fdc58f4507ed12770b057dcaf5543048bbbd5511e850ee
-- functions_sql-manifest scheduling/rules.sql sha256=77e8204836c14debf06ee1933b26252a7fee4d3089fe7720ddf73d0adbed1af3
-- functions_sql-manifest trust/contact.sql sha256=b7992cc67d68723ea04b1986c3ee163f46210619cb7fbc5fd973b0b0f80f323c
-- functions_sql-manifest trust/delivery.sql sha256=13cf9a7795fabfc1598e9b01f993e1352becf53f8f60d52481d37361cbf191ad
-- functions_sql-manifest trust/limits.sql sha256=fad6fd79cdb0a0347458353a0df26e95f8dabac768a6b44c7a28160c32ab47fe
-- functions_sql-manifest trust/pricing.sql sha256=3075961d25ecc4ccd99e6bbf25ad3012a836d5697935c502ed26095ec7359950
-- functions_sql-manifest trust/rate_limit.sql sha256=dc51a19ec7cff8e1b01d341ec68e6f3c11de7c17d23ef7185b0b0c79850bcb2c
-- functions_sql-manifest trust/standing.sql sha256=48f60135d88420982e9a0d1f847a97ce41ab3b62f9105b935f35b16f4f5c8a07
-- functions_sql-manifest trust/waiver.sql sha256=e55e17a34963e554f36bec304c2212fe7765268192081a2d2502a28c9ca38b41
-- functions_sql-manifest workshops/appointments.sql sha256=5f6530bed3befb05a76302182e756dc65303c345cb474afd3fe6db59db4b7273
-- functions_sql-manifest workshops/appointments_notify.sql sha256=50c518c61b4fc52577450080ed5407dd64a20d205da2f504932b11d47cc228cb
-- functions_sql-manifest workshops/appointments_rpc.sql sha256=f88d70f5575415327a86ef0017bceacc6b7454be95e3983d1e847d0552acaee6
-- functions_sql-manifest workshops/directory.sql sha256=b4ca0b3283f5e9f382ac3aa61acf49ff546d43813a20baccbd4944bec3c7f93b
-- functions_sql-manifest workshops/dispatch.sql sha256=db61193624f16d01338b25aacc63226c1e4a0a26de073f1545f5b6f4ae96b2a4
-- functions_sql-manifest workshops/hooks.sql sha256=99e01f958c1f3ab8d67144edc06dd9df28f576f36731ea05f68d45e364ae57be
-- functions_sql-manifest workshops/onboarding.sql sha256=1a65ec1d4b5f8f731fdf657e65ae84c0bc504c6a2c55ca6983e9e267a03dbe0d
-- functions_sql-manifest workshops/referral.sql sha256=6bada6ae6e424f43ccae0e5cfeb7f479c054fe63e09c36d0d9a5fa91026b5f75
-- functions_sql-manifest workshops/roster.sql sha256=54b139b2071afad60fa701efeddf2dba296ddb2162f689aba18640a68036f187
-- functions_sql-manifest workshops/specialists.sql sha256=8005a20dd10a143a3921224766e65c28f4c8d57d9e3402851b96556e60b9c291
