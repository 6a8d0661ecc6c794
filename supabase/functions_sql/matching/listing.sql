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
  return query
  with busy as (
    select c.mechanic_id from public.mechanic_commitments c where c.status = 'in_progress'
  ),
  listed as (
    select m.*, private.presence(m.is_available, m.last_seen_at, m.id in (select b.mechanic_id from busy b),
                                 v_window, now()) as presence
    from public.mechanics m
    where m.status = 'approved' and m.can_accept_sessions
      and not exists (select 1 from public.mechanic_time_off t where t.mechanic_id = m.id and t.during @> now())
      and (p_session_type is null
           or (private.micro_refusal(m, p_session_type = 'micro',
                                     case when p_session_type = 'micro' then v_micro_minutes else 0 end, now())).reason
              is null)
      and (not coalesce(p_specialist, false)
           or (m.is_brand_specialist
               and m.brand_keys @> array[lower(btrim(p_brand))]))
      and (p_city is null or m.city_key = lower(btrim(p_city)))
  ),
  page as (
    select l.* from listed l
    where l.presence = 'online'
    order by case l.presence when 'online' then 0 when 'busy' then 1 else 2 end,
             l.rating_score desc, l.customers_served desc, l.id
    limit p_limit
  )
  select p.id, p.display_name, p.photo_url, p.rating_avg, p.rating_count, p.completed_sessions,
         p.years_experience, p.brand_specializations, p.is_brand_specialist, p.city, p.presence,
         (select round(avg(extract(epoch from (o.responded_at - o.offered_at)) / 60)::numeric, 1)
          from public.session_offers o
          where o.mechanic_id = p.id and o.status = 'accepted' and o.responded_at >= o.offered_at)
  from page p
  order by case p.presence when 'online' then 0 when 'busy' then 1 else 2 end,
           p.rating_score desc, p.customers_served desc, p.id;
end
$$;
revoke execute on function public.available_mechanics(text, boolean, text, text, int) from public, anon;
grant execute on function public.available_mechanics(text, boolean, text, text, int) to authenticated, service_role;
