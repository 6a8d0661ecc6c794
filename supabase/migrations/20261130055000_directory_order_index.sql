-- The directory order (Bayesian rating, customers served, id) of the mechanics who take sessions,
-- as an index: mechanics_free_at (private.free_at) walks it in batches and stops once it has its
-- page, instead of computing the open time of every mechanic of the marketplace. The second index is
-- the same order within one city. Neither holds last_seen_at or is_available, so a heartbeat's
-- update stays a heap-only (HOT) update.
create index mechanics_directory_order_idx on public.mechanics (rating_score desc, customers_served desc, id)
  where status = 'approved' and can_accept_sessions;
create index mechanics_city_directory_order_idx
  on public.mechanics (city_key, rating_score desc, customers_served desc, id)
  where status = 'approved' and can_accept_sessions;
