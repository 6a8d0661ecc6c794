-- Workshops: the roster. Invitations by email with a single-use token (only its SHA-256 stored),
-- acceptance by the account with that email, removal, leaving and the transfer of ownership
-- (docs/workshops.md, "Roster"). Every change locks the workshop row first, so roster changes of
-- one workshop are serialized.

-- The caller's view of a workshop it acts on: not_found when the workshop does not exist or the
-- caller is neither a member nor a platform admin (no oracle); not_allowed when its role lacks the
-- permission. Locks the workshop row.
create or replace function private.lock_workshop_for(p_workshop_id uuid, p_user_id uuid, p_permission text)
returns public.organizations
language plpgsql security definer set search_path = ''
as $$
declare
  v_org public.organizations;
begin
  perform private.require_arg('p_workshop_id', p_workshop_id);
  select * into v_org from public.organizations where id = p_workshop_id for update;
  if not found or (private.workshop_role(p_workshop_id, p_user_id) is null and not private.is_admin()) then
    perform private.raise_error('not_found', 'no such workshop among yours');
  end if;
  if p_permission is not null and not private.workshop_can(p_workshop_id, p_user_id, p_permission) then
    perform private.raise_error('not_allowed', format('your role in this workshop lacks %s', p_permission));
  end if;
  return v_org;
end
$$;
revoke execute on function private.lock_workshop_for(uuid, uuid, text) from public;
grant execute on function private.lock_workshop_for(uuid, uuid, text) to service_role;

-- A member leaves the roster. A mechanic's row is unlinked from the workshop: it becomes an
-- individual (virtual-only) mechanic again and keeps its sessions and bookings; sessions settled
-- from now on pay it directly (settlement reads mechanics.organization_id); payouts already created
-- stay with the workshop.
create or replace function private.detach_workshop_member(p_workshop_id uuid, p_user_id uuid) returns void
language plpgsql security definer set search_path = ''
as $$
begin
  delete from public.organization_members where organization_id = p_workshop_id and user_id = p_user_id;
  update public.mechanics
  set organization_id = null, account_type = 'individual_mechanic', updated_at = now()
  where id = p_user_id and organization_id = p_workshop_id;
end
$$;
revoke execute on function private.detach_workshop_member(uuid, uuid) from public;
grant execute on function private.detach_workshop_member(uuid, uuid) to service_role;

-- ---------------------------------------------------------------------------------------------
-- invite_to_workshop (manage_roster)
-- ---------------------------------------------------------------------------------------------
create or replace function public.invite_to_workshop(p_workshop_id uuid, p_email text, p_role text) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_org public.organizations;
  v_email text := lower(btrim(p_email));
  v_token text;
  v_id uuid;
  v_expires timestamptz := now() + private.setting_interval('workshops.invitation_ttl');
begin
  if v_email is null or char_length(v_email) > 254 or v_email !~ '^[^@\s]+@[^@\s]+\.[^@\s]+$' then
    perform private.raise_error('invalid_input', 'p_email must be an email address');
  end if;
  if p_role is null or p_role not in ('manager', 'dispatcher', 'mechanic') then
    perform private.raise_error('invalid_input',
      'p_role is manager, dispatcher or mechanic (ownership is transferred, never invited)');
  end if;
  v_org := private.lock_workshop_for(p_workshop_id, v_uid, 'manage_roster');
  if v_org.status = 'suspended' then
    perform private.raise_error('not_allowed', 'a suspended workshop does not invite');
  end if;
  if exists (select 1 from public.organization_members om join auth.users u on u.id = om.user_id
             where om.organization_id = p_workshop_id and lower(u.email) = v_email) then
    perform private.raise_error('conflict', 'this email is a member already');
  end if;
  -- an expired invitation no longer blocks a new one
  update public.workshop_invitations set status = 'expired', decided_at = now()
  where workshop_id = p_workshop_id and email = v_email and status = 'pending' and expires_at <= now();
  if exists (select 1 from public.workshop_invitations
             where workshop_id = p_workshop_id and email = v_email and status = 'pending') then
    perform private.raise_error('conflict', 'a pending invitation to this email exists: revoke it first');
  end if;
  -- 244 random bits (two v4 UUIDs), URL-safe; only the SHA-256 is kept
  v_token := rtrim(translate(encode(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()), 'base64'),
                             '+/', '-_'), '=');
  insert into public.workshop_invitations (workshop_id, email, role, token_hash, invited_by, expires_at)
  values (p_workshop_id, v_email, p_role::public.organization_role, sha256(convert_to(v_token, 'UTF8')), v_uid,
          v_expires)
  returning id into v_id;
  perform private.enqueue('email.send', format('email:workshop_invitation:%s', v_id), jsonb_build_object(
    'template', 'workshop_invitation', 'user_id', null, 'session_id', null, 'to_email', v_email,
    'data', jsonb_build_object('workshop_name', v_org.name, 'role', p_role, 'token', v_token,
                               'expires_at', v_expires,
                               'inviter_name', (select coalesce(p.full_name, 'A workshop manager')
                                                from public.profiles p where p.id = v_uid))));
  return jsonb_build_object('invitation_id', v_id, 'workshop_id', p_workshop_id, 'email', v_email, 'role', p_role,
                            'expires_at', v_expires);
end
$$;
revoke execute on function public.invite_to_workshop(uuid, text, text) from public, anon;
grant execute on function public.invite_to_workshop(uuid, text, text) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- accept_workshop_invitation: by the signed-in account whose email the invitation names
-- ---------------------------------------------------------------------------------------------
create or replace function public.accept_workshop_invitation(p_token text) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_inv public.workshop_invitations;
  v_mechanic public.mechanics;
  v_email text;
begin
  if p_token is null or char_length(p_token) not between 1 and 200 then
    perform private.raise_error('invitation_invalid', 'this invitation is not valid (anymore)');
  end if;
  select * into v_inv from public.workshop_invitations
  where token_hash = sha256(convert_to(p_token, 'UTF8')) for update;
  -- unknown, expired, used and revoked tokens: one answer
  if not found or v_inv.status <> 'pending' or v_inv.expires_at <= now() then
    perform private.raise_error('invitation_invalid', 'this invitation is not valid (anymore)');
  end if;
  select lower(u.email) into v_email from auth.users u where u.id = v_uid;
  if v_email is distinct from v_inv.email then
    perform private.raise_error('invitation_wrong_account', 'this invitation was sent to another email address');
  end if;
  perform 1 from public.organizations o where o.id = v_inv.workshop_id for update;
  if private.workshop_role(v_inv.workshop_id, v_uid) is not null then
    perform private.raise_error('conflict', 'you are a member of this workshop already');
  end if;
  if v_inv.role = 'mechanic' then
    select * into v_mechanic from public.mechanics where id = v_uid for update;
    if found and v_mechanic.organization_id is not null and v_mechanic.organization_id <> v_inv.workshop_id then
      perform private.raise_error('mechanic_in_other_workshop', 'leave your current workshop first');
    end if;
    if not found then
      insert into public.mechanics (id, display_name, status, organization_id, account_type)
      values (v_uid, left(coalesce((select nullif(btrim(p.full_name), '') from public.profiles p where p.id = v_uid),
                                   split_part(v_email, '@', 1)), 120),
              'pending', v_inv.workshop_id, 'workshop_mechanic');
    else
      update public.mechanics set organization_id = v_inv.workshop_id, account_type = 'workshop_mechanic',
                                  updated_at = now()
      where id = v_uid;
    end if;
  end if;
  insert into public.organization_members (organization_id, user_id, role) values (v_inv.workshop_id, v_uid, v_inv.role);
  update public.workshop_invitations set status = 'accepted', accepted_by = v_uid, decided_at = now()
  where id = v_inv.id;
  return jsonb_build_object('workshop_id', v_inv.workshop_id, 'role', v_inv.role);
end
$$;
revoke execute on function public.accept_workshop_invitation(text) from public, anon;
grant execute on function public.accept_workshop_invitation(text) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- revoke_invitation (manage_roster)
-- ---------------------------------------------------------------------------------------------
create or replace function public.revoke_invitation(p_invitation_id uuid) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_inv public.workshop_invitations;
begin
  perform private.require_arg('p_invitation_id', p_invitation_id);
  select * into v_inv from public.workshop_invitations where id = p_invitation_id;
  if not found then
    perform private.raise_error('not_found', 'no such invitation among yours');
  end if;
  perform private.lock_workshop_for(v_inv.workshop_id, v_uid, 'manage_roster');
  select * into v_inv from public.workshop_invitations where id = p_invitation_id for update;
  if v_inv.status <> 'pending' then
    perform private.raise_error('invalid_transition', format('the invitation is %s', v_inv.status));
  end if;
  update public.workshop_invitations set status = 'revoked', decided_at = now() where id = p_invitation_id;
  return jsonb_build_object('invitation_id', p_invitation_id, 'status', 'revoked');
end
$$;
revoke execute on function public.revoke_invitation(uuid) from public, anon;
grant execute on function public.revoke_invitation(uuid) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- remove_workshop_member (manage_roster), leave_workshop (any member but the owner)
-- ---------------------------------------------------------------------------------------------
create or replace function public.remove_workshop_member(p_workshop_id uuid, p_user_id uuid) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_role text;
begin
  perform private.require_arg('p_user_id', p_user_id);
  perform private.lock_workshop_for(p_workshop_id, v_uid, 'manage_roster');
  v_role := private.workshop_role(p_workshop_id, p_user_id);
  if v_role is null then
    perform private.raise_error('not_found', 'no such member');
  end if;
  if v_role = 'owner' then
    perform private.raise_error('owner_must_transfer', 'the owner is removed only after a transfer of ownership');
  end if;
  perform private.detach_workshop_member(p_workshop_id, p_user_id);
  return jsonb_build_object('workshop_id', p_workshop_id, 'user_id', p_user_id, 'removed', true);
end
$$;
revoke execute on function public.remove_workshop_member(uuid, uuid) from public, anon;
grant execute on function public.remove_workshop_member(uuid, uuid) to authenticated, service_role;

create or replace function public.leave_workshop(p_workshop_id uuid) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_role text;
begin
  perform private.require_arg('p_workshop_id', p_workshop_id);
  perform 1 from public.organizations where id = p_workshop_id for update;
  v_role := private.workshop_role(p_workshop_id, v_uid);
  if v_role is null then
    perform private.raise_error('not_found', 'you are not a member of this workshop');
  end if;
  if v_role = 'owner' then
    perform private.raise_error('owner_must_transfer', 'transfer the ownership before leaving');
  end if;
  perform private.detach_workshop_member(p_workshop_id, v_uid);
  return jsonb_build_object('workshop_id', p_workshop_id, 'user_id', v_uid, 'removed', true);
end
$$;
revoke execute on function public.leave_workshop(uuid) from public, anon;
grant execute on function public.leave_workshop(uuid) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- transfer_workshop_ownership (transfer_ownership): to an existing member; the old owner becomes
-- a manager
-- ---------------------------------------------------------------------------------------------
create or replace function public.transfer_workshop_ownership(p_workshop_id uuid, p_new_owner_id uuid) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_role text;
begin
  perform private.require_arg('p_new_owner_id', p_new_owner_id);
  perform private.lock_workshop_for(p_workshop_id, v_uid, 'transfer_ownership');
  v_role := private.workshop_role(p_workshop_id, p_new_owner_id);
  if v_role is null then
    perform private.raise_error('not_found', 'the new owner must be a member of the workshop');
  end if;
  if v_role = 'owner' then
    perform private.raise_error('conflict', 'this member owns the workshop already');
  end if;
  update public.organization_members set role = 'manager'
  where organization_id = p_workshop_id and role = 'owner';
  update public.organization_members set role = 'owner'
  where organization_id = p_workshop_id and user_id = p_new_owner_id;
  return jsonb_build_object('workshop_id', p_workshop_id, 'owner_id', p_new_owner_id);
end
$$;
revoke execute on function public.transfer_workshop_ownership(uuid, uuid) from public, anon;
grant execute on function public.transfer_workshop_ownership(uuid, uuid) to authenticated, service_role;
