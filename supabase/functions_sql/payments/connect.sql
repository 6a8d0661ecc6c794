-- Payments: Stripe Connect onboarding.

-- ---------------------------------------------------------------------------------------------
-- Connect onboarding (functions/connect.py)
-- ---------------------------------------------------------------------------------------------
-- Who gets the connected account: the caller as an approved mechanic, or a workshop it owns.
create or replace function private.prepare_connect_account(p_user_id uuid, p_organization_id uuid) returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_mechanic public.mechanics;
  v_org public.organizations;
  v_role public.organization_role;
begin
  if p_user_id is null then
    perform private.raise_error('not_authenticated', 'sign in first');
  end if;
  if p_organization_id is null then
    select * into v_mechanic from public.mechanics where id = p_user_id;
    if not found or v_mechanic.status <> 'approved' then
      perform private.raise_error('not_allowed', 'only approved mechanics and workshop owners set up payouts');
    end if;
    return jsonb_build_object('owner_kind', 'mechanic', 'owner_id', v_mechanic.id, 'country', v_mechanic.country,
      'email', (select u.email from auth.users u where u.id = p_user_id),
      'stripe_account_id', (select a.stripe_account_id from public.payout_accounts a where a.mechanic_id = p_user_id));
  end if;
  select om.role into v_role from public.organization_members om
  where om.organization_id = p_organization_id and om.user_id = p_user_id;
  if not found then
    perform private.raise_error('not_found', 'no such workshop');
  end if;
  if v_role <> 'owner' then
    perform private.raise_error('not_allowed', 'only the workshop''s owner sets up its payouts');
  end if;
  select * into v_org from public.organizations where id = p_organization_id;
  return jsonb_build_object('owner_kind', 'workshop', 'owner_id', v_org.id, 'country', v_org.country,
    'email', (select u.email from auth.users u where u.id = p_user_id),
    'stripe_account_id', (select a.stripe_account_id from public.payout_accounts a
                          where a.organization_id = p_organization_id));
end
$$;
revoke execute on function private.prepare_connect_account(uuid, uuid) from public;
grant execute on function private.prepare_connect_account(uuid, uuid) to service_role;

-- Stores the connected account once; a concurrent second one loses and the stored one is returned.
create or replace function private.record_connect_account(p_owner_kind text, p_owner_id uuid, p_stripe_account_id text)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_stored text;
begin
  if p_owner_kind not in ('mechanic', 'workshop') or p_owner_id is null
     or p_stripe_account_id !~ '^acct_[A-Za-z0-9]{1,250}$' then
    perform private.raise_error('invalid_input', 'an owner and a Stripe account id are required');
  end if;
  insert into public.payout_accounts (mechanic_id, organization_id, stripe_account_id)
  values (case when p_owner_kind = 'mechanic' then p_owner_id end,
          case when p_owner_kind = 'workshop' then p_owner_id end, p_stripe_account_id)
  on conflict do nothing;
  select a.stripe_account_id into v_stored from public.payout_accounts a
  where (p_owner_kind = 'mechanic' and a.mechanic_id = p_owner_id)
     or (p_owner_kind = 'workshop' and a.organization_id = p_owner_id);
  return jsonb_build_object('stripe_account_id', v_stored, 'created', v_stored = p_stripe_account_id);
end
$$;
revoke execute on function private.record_connect_account(text, uuid, text) from public;
grant execute on function private.record_connect_account(text, uuid, text) to service_role;
