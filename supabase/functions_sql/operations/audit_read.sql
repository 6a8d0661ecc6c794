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
