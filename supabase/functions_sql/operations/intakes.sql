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
