-- Payments: small helpers and table triggers.
--
-- Locking order everywhere in payments: booking → payment → refund / payouts → credit (advisory,
-- per customer). Stripe is never called from SQL: the Python side claims rows, commits, calls,
-- then records.

-- ---------------------------------------------------------------------------------------------
-- Small helpers
-- ---------------------------------------------------------------------------------------------
-- A Stripe reference that is either an id or an expanded object.
create or replace function private.stripe_id(p_value jsonb) returns text
language sql immutable parallel safe set search_path = ''
as $$
  select case jsonb_typeof(p_value) when 'string' then p_value #>> '{}' when 'object' then p_value ->> 'id' end
$$;
revoke execute on function private.stripe_id(jsonb) from public;
grant execute on function private.stripe_id(jsonb) to service_role;

-- Why a payee cannot receive transfers now (null when it can).
create or replace function private.payee_waiting_reason(p_mechanic_id uuid, p_organization_id uuid) returns text
language sql stable security definer set search_path = ''
as $$
  select case
    when a.id is null then 'no payout account: the payee has not set up payouts'
    when not a.transfers_active then 'the payout account cannot receive transfers yet (transfers capability not active)'
  end
  from (select 1) one
  left join public.payout_accounts a
    on (p_mechanic_id is not null and a.mechanic_id = p_mechanic_id)
    or (p_organization_id is not null and a.organization_id = p_organization_id)
$$;
revoke execute on function private.payee_waiting_reason(uuid, uuid) from public;
grant execute on function private.payee_waiting_reason(uuid, uuid) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Table triggers: updated_at, append-only credit ledger, default split rules stay
-- ---------------------------------------------------------------------------------------------
do $$
declare
  v_table text;
begin
  foreach v_table in array array['revenue_split_rules', 'bookings', 'payments', 'refunds', 'payouts',
                                 'transfer_reversals']
  loop
    execute format('drop trigger if exists _010_set_updated_at on public.%I', v_table);
    execute format('create trigger _010_set_updated_at before update on public.%I '
                   'for each row execute function private.tg__set_updated_at()', v_table);
  end loop;
end
$$;

drop trigger if exists _100_append_only on public.credit_ledger;
create trigger _100_append_only before update or delete on public.credit_ledger
  for each row execute function private.tg__append_only();  -- core/transitions.sql
drop trigger if exists _101_append_only_truncate on public.credit_ledger;
create trigger _101_append_only_truncate before truncate on public.credit_ledger
  for each statement execute function private.tg__append_only();  -- core/transitions.sql

-- Every mechanic type keeps a `default` rule, so settlement always finds one.
create or replace function private.tg_revenue_split_rules__keep_defaults() returns trigger
language plpgsql set search_path = ''
as $$
begin
  if old.session_kind = 'default'
     and (tg_op = 'DELETE' or new.session_kind <> 'default' or new.mechanic_type <> old.mechanic_type) then
    perform private.raise_error('not_allowed', 'the default split rule of a mechanic type can be changed, not removed');
  end if;
  return case when tg_op = 'DELETE' then old else new end;
end
$$;
drop trigger if exists _100_keep_defaults on public.revenue_split_rules;
create trigger _100_keep_defaults before update or delete on public.revenue_split_rules
  for each row execute function private.tg_revenue_split_rules__keep_defaults();

revoke execute on function private.tg_revenue_split_rules__keep_defaults() from public;
