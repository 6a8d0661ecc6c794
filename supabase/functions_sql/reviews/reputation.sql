-- Reviews: a mechanic's reputation, kept exact from its visible reviews.

-- The Bayesian rating of `p_count` visible reviews summing to `p_sum`: the prior mean weighs as
-- `reviews.prior_weight` reviews, so a few reviews move a newcomer little and many move it far.
create or replace function private.reviews_score(p_sum int, p_count int) returns numeric
language plpgsql stable set search_path = ''
as $$
declare
  v_mean numeric := private.setting_numeric('reviews.prior_mean');
  v_weight numeric := greatest(private.setting_numeric('reviews.prior_weight'), 0);
begin
  if v_weight + p_count = 0 then
    return v_mean;
  end if;
  return round((v_weight * v_mean + p_sum) / (v_weight + p_count), 5);
end
$$;
revoke execute on function private.reviews_score(int, int) from public;
grant execute on function private.reviews_score(int, int) to service_role;

-- rating_avg and rating_score follow rating_sum and rating_count, whoever writes them.
create or replace function private.tg_mechanics__rating() returns trigger
language plpgsql set search_path = ''
as $$
begin
  new.rating_avg := case when new.rating_count > 0 then round(new.rating_sum::numeric / new.rating_count, 2) end;
  new.rating_score := private.reviews_score(new.rating_sum, new.rating_count);
  return new;
end
$$;
revoke execute on function private.tg_mechanics__rating() from public;
drop trigger if exists _030_rating on public.mechanics;
create trigger _030_rating before insert or update of rating_sum, rating_count on public.mechanics
  for each row execute function private.tg_mechanics__rating();

-- Recount a mechanic's visible reviews into its aggregates. The caller holds the mechanic's row
-- lock (private.reviews_lock_mechanic), so two reviews of one mechanic never interleave; the
-- count is a statement of its own, so it sees every review committed before the lock was granted.
create or replace function private.reviews_refresh_mechanic(p_mechanic_id uuid) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_count int;
  v_sum int;
begin
  select count(*)::int, coalesce(sum(r.rating), 0)::int into v_count, v_sum
  from public.mechanic_reviews r
  where r.mechanic_id = p_mechanic_id and r.hidden_at is null;
  update public.mechanics set rating_count = v_count, rating_sum = v_sum
  where id = p_mechanic_id and (rating_count, rating_sum) is distinct from (v_count, v_sum);
end
$$;
revoke execute on function private.reviews_refresh_mechanic(uuid) from public;
grant execute on function private.reviews_refresh_mechanic(uuid) to service_role;

create or replace function private.reviews_lock_mechanic(p_mechanic_id uuid) returns void
language plpgsql security definer set search_path = ''
as $$
begin
  perform 1 from public.mechanics where id = p_mechanic_id for no key update;
end
$$;
revoke execute on function private.reviews_lock_mechanic(uuid) from public;
grant execute on function private.reviews_lock_mechanic(uuid) to service_role;

-- A change of the prior recomputes every mechanic's score, in the transaction of the change (a
-- prior mean outside 1–5 fails the score's check, and the change with it).
create or replace function private.tg_settings__reviews_prior() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  update public.mechanics m set rating_score = private.reviews_score(m.rating_sum, m.rating_count)
  where m.rating_score is distinct from private.reviews_score(m.rating_sum, m.rating_count);
  return null;
end
$$;
revoke execute on function private.tg_settings__reviews_prior() from public;
drop trigger if exists _500_reviews_prior on private.settings;
create trigger _500_reviews_prior after insert or update of value on private.settings
  for each row when (new.key in ('reviews.prior_mean', 'reviews.prior_weight'))
  execute function private.tg_settings__reviews_prior();
