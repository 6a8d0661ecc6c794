-- The public mechanic directory.

-- ---------------------------------------------------------------------------------------------
-- Views
-- ---------------------------------------------------------------------------------------------
-- The public mechanic directory: approved mechanics, no contact or payout details. Clients order it
-- as the listings do: rating_score (the Bayesian rating) desc, then customers_served desc.
create or replace view public.mechanic_directory with (security_invoker = true) as
select m.id, m.display_name, m.photo_url, m.bio, m.years_experience, m.specialties, m.brand_specializations,
       m.is_brand_specialist, m.service_keywords, m.city, m.country, m.timezone, m.mechanic_type,
       m.rating_avg, m.rating_count, m.completed_sessions, m.is_available, m.last_seen_at,
       m.rating_score, m.customers_served
from public.mechanics m
where m.status = 'approved';
grant select on public.mechanic_directory to anon, authenticated, service_role;
comment on view public.mechanic_directory is 'Approved mechanics as customers (and anon) may see them.';

-- ---------------------------------------------------------------------------------------------
-- Walking the directory order
-- ---------------------------------------------------------------------------------------------
-- A search that wants the first N mechanics of the directory order who pass its rules
-- (mechanics_free_at, available_mechanics) walks that order and stops at N, instead of checking
-- every mechanic of the marketplace and sorting: a cursor over the ids of the mechanics who take
-- sessions, in directory order (rating_score desc, customers_served desc, id), read in batches that
-- the caller checks set-based. Two queries, so that each has its index (the marketplace's, or one
-- city's).
create or replace function private.directory_cursor(p_city text) returns refcursor
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_cur refcursor;
  v_city text := lower(btrim(p_city));
begin
  if v_city is null then
    open v_cur for  -- mechanics_directory_order_idx
      select m.id from public.mechanics m
      where m.status = 'approved' and m.can_accept_sessions
      order by m.rating_score desc, m.customers_served desc, m.id;
  else
    open v_cur for  -- mechanics_city_directory_order_idx
      select m.id from public.mechanics m
      where m.city_key = v_city and m.status = 'approved' and m.can_accept_sessions
      order by m.rating_score desc, m.customers_served desc, m.id;
  end if;
  return v_cur;
end
$$;
revoke execute on function private.directory_cursor(text) from public;
grant execute on function private.directory_cursor(text) to service_role;

-- The next `p_size` ids of a directory cursor (fewer at its end, none after it), in order.
create or replace function private.directory_batch(p_cur refcursor, p_size int) returns uuid[]
language plpgsql security definer set search_path = ''
as $$
declare
  v_id uuid;
  v_batch uuid[] := '{}';
begin
  for i in 1 .. p_size loop
    fetch p_cur into v_id;
    exit when not found;
    v_batch := v_batch || v_id;
  end loop;
  return v_batch;
end
$$;
revoke execute on function private.directory_batch(refcursor, int) from public;
grant execute on function private.directory_batch(refcursor, int) to service_role;
