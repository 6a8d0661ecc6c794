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
