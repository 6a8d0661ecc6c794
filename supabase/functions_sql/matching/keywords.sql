-- Matching: keyword extraction and keyword sets as bits over the vocabulary.

-- ---------------------------------------------------------------------------------------------
-- Keywords
-- ---------------------------------------------------------------------------------------------
create or replace function private.extract_keywords(p_text text) returns text[]
language sql stable parallel safe security definer set search_path = ''
as $$
  select coalesce(array_agg(k.keyword order by k.keyword), '{}')
  from public.automotive_keywords k
  where exists (select 1 from unnest(k.patterns) p where lower(coalesce(p_text, '')) ~ p)
$$;
revoke execute on function private.extract_keywords(text) from public;
grant execute on function private.extract_keywords(text) to authenticated, service_role;

-- A set of vocabulary keywords as bits (automotive_keywords.bit_position); unknown words add nothing.
create or replace function private.keyword_bits(p_keywords text[]) returns bit(256)
language sql stable security definer set search_path = ''
as $$
  select coalesce(bit_or((repeat('0', k.bit_position) || '1' || repeat('0', 255 - k.bit_position))::bit(256)),
                  repeat('0', 256)::bit(256))
  from public.automotive_keywords k
  where k.keyword = any (p_keywords)
$$;
revoke execute on function private.keyword_bits(text[]) from public;
grant execute on function private.keyword_bits(text[]) to service_role;

-- The vocabulary changed: recompute the mechanics' keyword bits.
create or replace function private.tg_automotive_keywords__refresh_bits() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  update public.mechanics m set keyword_bits = private.keyword_bits(m.service_keywords)
  where m.keyword_bits is distinct from private.keyword_bits(m.service_keywords);
  return null;
end
$$;
revoke execute on function private.tg_automotive_keywords__refresh_bits() from public;
drop trigger if exists _100_refresh_bits on public.automotive_keywords;
create trigger _100_refresh_bits after insert or update or delete on public.automotive_keywords
  for each statement execute function private.tg_automotive_keywords__refresh_bits();

-- Service keywords are vocabulary words: stored lowercase, trimmed, without duplicates; brand
-- names keep their spelling and get a lowercase copy for matching.
create or replace function private.tg_mechanics__normalize_keywords() returns trigger
language plpgsql set search_path = ''
as $$
begin
  new.service_keywords := coalesce(
    (select array_agg(distinct lower(btrim(k))) from unnest(new.service_keywords) k where btrim(k) <> ''), '{}');
  new.brand_keys := coalesce(
    (select array_agg(distinct lower(btrim(b))) from unnest(new.brand_specializations) b where btrim(b) <> ''), '{}');
  new.keyword_bits := private.keyword_bits(new.service_keywords);
  return new;
end
$$;
revoke execute on function private.tg_mechanics__normalize_keywords() from public;
drop trigger if exists _020_normalize_keywords on public.mechanics;
create trigger _020_normalize_keywords before insert or update of service_keywords, brand_specializations
  on public.mechanics
  for each row execute function private.tg_mechanics__normalize_keywords();

-- Eligibility hook: private.eligibility_exclusions(request, now) (matching/eligibility.sql)
-- gathers the mechanics other domains exclude (shifts and micro caps; scheduling later).
