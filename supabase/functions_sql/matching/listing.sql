-- Matching: the available-mechanics listing for customers.

-- ---------------------------------------------------------------------------------------------
-- Available mechanics for customers (the first step of a request): only those who can take the
-- session now — online, not holding an accepted request or a live session, not on time off — so a
-- customer never picks (and waits on) a mechanic who cannot accept. p_session_type filters by the
-- micro-session rules (micro/caps.sql private.micro_refusal, as can_accept_session): `micro` lists
-- mechanics whose participation mode, shift, workshop and daily cap allow the shortest micro plan;
-- a full session (standard, extended, or chat/video/diagnostic) leaves out micro-only mechanics.
-- Ordered by the Bayesian rating (rating_score), then customers served. The average minutes from
-- offer to acceptance come from real history, null when there is none.
-- ---------------------------------------------------------------------------------------------
create or replace function public.available_mechanics(
  p_session_type text default null,
  p_specialist boolean default false,
  p_brand text default null,
  p_city text default null,
  p_limit int default 10
) returns table (
  id uuid, display_name text, photo_url text, rating_avg numeric, rating_count int, completed_sessions int,
  years_experience int, brand_specializations text[], is_brand_specialist boolean, city text, presence text,
  avg_accept_minutes numeric
)
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_window interval := private.setting_interval('presence.online_window');
  v_micro_minutes int := (select min(p.minutes) from public.service_plans p
                          where p.active and p.duration_type = 'micro');
  v_brand text[] := array[lower(btrim(p_brand))];
  v_cur refcursor;
  v_batch uuid[];
  v_size int;
  v_left int;
  v_found int;
begin
  perform private.require_user();
  if p_limit is null or p_limit < 1 or p_limit > 100 then
    perform private.raise_error('invalid_input', 'p_limit must be between 1 and 100');
  end if;
  if p_session_type is not null
     and p_session_type not in ('chat', 'video', 'diagnostic', 'micro', 'standard', 'extended') then
    perform private.raise_error('invalid_input',
      'p_session_type must be chat, video, diagnostic, micro, standard or extended');
  end if;
  if char_length(p_brand) > 60 or char_length(p_city) > 120 then
    perform private.raise_error('invalid_input', 'p_brand or p_city is too long');
  end if;
  if coalesce(p_specialist, false) and p_brand is null then
    perform private.raise_error('invalid_input', 'a specialist search needs p_brand');
  end if;
  -- The directory order walked in batches until the page is full (core/directory.sql): the work
  -- follows the page, not the marketplace, when mechanics are online; with few online it reads
  -- every candidate once, as one query over all of them would.
  v_size := greatest(4 * p_limit, 32);
  v_left := p_limit;
  v_cur := private.directory_cursor(p_city);
  loop
    v_batch := private.directory_batch(v_cur, v_size);
    exit when cardinality(v_batch) = 0;
    return query
    select m.id, m.display_name, m.photo_url, m.rating_avg, m.rating_count, m.completed_sessions,
           m.years_experience, m.brand_specializations, m.is_brand_specialist, m.city, 'online'::text,
           (select round(avg(extract(epoch from (o.responded_at - o.offered_at)) / 60)::numeric, 1)
            from public.session_offers o
            where o.mechanic_id = m.id and o.status = 'accepted' and o.responded_at >= o.offered_at)
    from unnest(v_batch) with ordinality as b(id, ord)
    join public.mechanics m on m.id = b.id
    where case  -- in this order, cheapest first (a case is evaluated in order; an `and` is not)
            when not (m.is_available and m.last_seen_at >= now() - v_window) then false  -- not online
            when exists (select 1 from public.mechanic_commitments c
                         where c.mechanic_id = m.id and c.status = 'in_progress') then false  -- busy
            when coalesce(p_specialist, false) and not (m.is_brand_specialist and m.brand_keys @> v_brand) then false
            when exists (select 1 from public.mechanic_time_off t where t.mechanic_id = m.id and t.during @> now())
              then false
            when p_session_type is null then true
            else (private.micro_refusal(m, p_session_type = 'micro',
                                        case when p_session_type = 'micro' then v_micro_minutes else 0 end,
                                        now())).reason is null
          end
    order by b.ord
    limit v_left;
    get diagnostics v_found = row_count;
    v_left := v_left - v_found;
    exit when v_left <= 0 or cardinality(v_batch) < v_size;
    v_size := least(v_size * 2, 1024);
  end loop;
  close v_cur;
end
$$;
revoke execute on function public.available_mechanics(text, boolean, text, text, int) from public, anon;
grant execute on function public.available_mechanics(text, boolean, text, text, int) to authenticated, service_role;
