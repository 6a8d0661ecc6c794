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
