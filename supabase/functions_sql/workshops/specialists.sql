-- Workshops: brand specialists, marked by the mechanic's workshop (owners and managers,
-- `mark_specialists`) or a platform admin; never by the mechanic itself. The specialist surcharge,
-- the ranking and the listing read `is_brand_specialist` and `brand_keys` (the lowercase copy of
-- `brand_specializations` kept by matching/keywords.sql).

create or replace function public.set_mechanic_specialization(
  p_mechanic_id uuid, p_is_brand_specialist boolean, p_brands text[]
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_m public.mechanics;
  v_brands text[];
begin
  perform private.require_arg('p_mechanic_id', p_mechanic_id);
  perform private.require_arg('p_is_brand_specialist', p_is_brand_specialist);
  perform private.require_arg('p_brands', p_brands);
  if array_ndims(p_brands) > 1 or array_position(p_brands, null) is not null then
    perform private.raise_error('invalid_input', 'p_brands is a list of brand names without nulls');
  end if;
  if exists (select 1 from unnest(p_brands) b where btrim(b) = '' or char_length(btrim(b)) > 30) then
    perform private.raise_error('invalid_input', 'each brand is 1 to 30 characters');
  end if;
  -- trimmed, de-duplicated case-insensitively (the first spelling is kept), in the order given
  select coalesce(array_agg(d.brand order by d.first), '{}') into v_brands
  from (select distinct on (lower(btrim(b))) btrim(b) as brand, i as first
        from unnest(p_brands) with ordinality as u(b, i)
        order by lower(btrim(b)), i) d;
  if cardinality(v_brands) > 30 then
    perform private.raise_error('invalid_input', 'at most 30 brands');
  end if;
  if p_is_brand_specialist and cardinality(v_brands) = 0 then
    perform private.raise_error('invalid_input', 'a brand specialist names at least one brand');
  end if;

  select * into v_m from public.mechanics where id = p_mechanic_id for no key update;
  if not found then
    perform private.raise_error('not_found', 'no such mechanic');
  end if;
  if not private.is_admin() then
    if p_mechanic_id = v_uid then
      perform private.raise_error('not_allowed', 'a mechanic cannot mark itself a specialist');
    end if;
    if v_m.organization_id is null
       or not private.workshop_can(v_m.organization_id, v_uid, 'mark_specialists') then
      perform private.raise_error('not_allowed', 'only the owners and managers of its workshop mark a specialist');
    end if;
  end if;

  update public.mechanics
  set is_brand_specialist = p_is_brand_specialist, brand_specializations = v_brands,
      specialization_set_by = v_uid, specialization_set_at = now()
  where id = p_mechanic_id
  returning * into v_m;
  return jsonb_build_object('mechanic_id', v_m.id, 'is_brand_specialist', v_m.is_brand_specialist,
                            'brand_specializations', to_jsonb(v_m.brand_specializations),
                            'brand_keys', to_jsonb(v_m.brand_keys));
end
$$;
revoke execute on function public.set_mechanic_specialization(uuid, boolean, text[]) from public, anon;
grant execute on function public.set_mechanic_specialization(uuid, boolean, text[]) to authenticated, service_role;

-- A brand specialist's brands carry the surcharge: the mechanic itself cannot change them (it still
-- edits them while it is no specialist). The RPC above runs as its owner, not as `authenticated`.
create or replace function private.tg_mechanics__specialist_brands() returns trigger
language plpgsql set search_path = ''
as $$
begin
  if current_user in ('authenticated', 'anon') and old.is_brand_specialist
     and new.brand_specializations is distinct from old.brand_specializations then
    perform private.raise_error('not_allowed',
      'a brand specialist''s brands are set by its workshop or an admin (set_mechanic_specialization)');
  end if;
  return new;
end
$$;
revoke execute on function private.tg_mechanics__specialist_brands() from public;
drop trigger if exists _010_specialist_brands on public.mechanics;
create trigger _010_specialist_brands before update of brand_specializations on public.mechanics
  for each row execute function private.tg_mechanics__specialist_brands();
