-- ---------------------------------------------------------------------------------------------
-- Signup: profile, admin capability, pending mechanic. Total by design: a failing trigger would
-- block every signup, so user-supplied values are trimmed to what the columns accept.
-- ---------------------------------------------------------------------------------------------
create or replace function private.tg_auth_users__on_signup() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_meta jsonb := coalesce(new.raw_user_meta_data, '{}'::jsonb);
  v_name text := left(nullif(btrim(coalesce(v_meta ->> 'full_name', v_meta ->> 'name', '')), ''), 200);
  v_zone text := v_meta ->> 'timezone';
begin
  if v_zone is null or not private.is_valid_timezone(v_zone) then
    v_zone := 'UTC';
  end if;
  insert into public.profiles (id, full_name, phone, timezone)
  values (new.id, v_name,
          case when new.phone ~ '^\+?[0-9 ()-]{5,32}$' then new.phone end,
          v_zone)
  on conflict (id) do nothing;

  if coalesce(new.raw_app_meta_data ->> 'role', '') = 'admin' then
    insert into private.admins (user_id) values (new.id) on conflict do nothing;
  end if;

  -- Asking to be a mechanic creates a pending application; it grants nothing until approved.
  if v_meta ->> 'account_type' = 'mechanic' then
    insert into public.mechanics (id, display_name, timezone)
    values (new.id, coalesce(left(v_name, 120), left(nullif(split_part(coalesce(new.email, ''), '@', 1), ''), 120), 'Mechanic'),
            v_zone)
    on conflict (id) do nothing;
  end if;
  return new;
end
$$;
revoke execute on function private.tg_auth_users__on_signup() from public;

-- App metadata is set only by the server: keep the admin capability in step with it.
create or replace function private.tg_auth_users__sync_admin() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if coalesce(new.raw_app_meta_data ->> 'role', '') = 'admin' then
    insert into private.admins (user_id) values (new.id) on conflict do nothing;
  else
    delete from private.admins where user_id = new.id;
  end if;
  return new;
end
$$;
revoke execute on function private.tg_auth_users__sync_admin() from public;

drop trigger if exists _100_on_signup on auth.users;
create trigger _100_on_signup after insert on auth.users
  for each row execute function private.tg_auth_users__on_signup();
drop trigger if exists _110_sync_admin on auth.users;
create trigger _110_sync_admin after update of raw_app_meta_data on auth.users
  for each row when (old.raw_app_meta_data is distinct from new.raw_app_meta_data)
  execute function private.tg_auth_users__sync_admin();
