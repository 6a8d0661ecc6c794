-- Workshops: the public directory of verified workshops and the search over it. What anyone (anon
-- included) reads of a workshop: name, city, postal area, country, services, brands, open hours,
-- rating, photo, description and coordinates rounded to 2 decimals (about 1 km) — never its phone,
-- street address or legal name (its members read those in the table, under RLS).

-- The public columns of the verified workshops (`p_id`: one workshop). Security definer: the
-- organizations' RLS shows a workshop to its members only; this returns the public columns only.
-- Rating: the Bayesian score (private.reviews_score) of its mechanics' visible reviews taken
-- together, null while they have none.
create or replace function private.workshop_cards(p_id uuid default null)
returns table (
  id uuid, name text, city text, postal_area text, country text, services text[], brands text[],
  hours jsonb, rating numeric, rating_count int, photo_url text, description text,
  latitude numeric, longitude numeric, verified_at timestamptz
)
language sql stable security definer set search_path = ''
as $$
  select o.id, o.name, o.city, nullif(upper(left(replace(o.postal_code, ' ', ''), 3)), ''), o.country,
         o.services, o.brands,
         coalesce((select jsonb_agg(jsonb_build_object(
                     'day_of_week', h.day_of_week, 'open', h.open_time, 'close', h.close_time,
                     'break_start', h.break_start, 'break_end', h.break_end) order by h.day_of_week)
                   from public.workshop_hours h where h.organization_id = o.id and h.is_open), '[]'),
         case when r.n > 0 then round(private.reviews_score(r.s, r.n), 2) end, r.n,
         o.photo_url, o.description,
         round(o.latitude::numeric, 2), round(o.longitude::numeric, 2), o.verified_at
  from public.organizations o
  cross join lateral (select coalesce(sum(m.rating_sum), 0)::int as s, coalesce(sum(m.rating_count), 0)::int as n
                      from public.mechanics m where m.organization_id = o.id) r
  where o.status = 'verified' and (p_id is null or o.id = p_id)
$$;
revoke execute on function private.workshop_cards(uuid) from public;
grant execute on function private.workshop_cards(uuid) to anon, authenticated, service_role;

create or replace view public.workshop_directory with (security_invoker = true) as
select c.id, c.name, c.city, c.postal_area, c.country, c.services, c.brands, c.hours, c.rating, c.rating_count,
       c.photo_url, c.description, c.latitude, c.longitude, c.verified_at
from private.workshop_cards() c;
grant select on public.workshop_directory to anon, authenticated, service_role;
comment on view public.workshop_directory is
  'Verified workshops as anyone may see them: name, city, postal area, services, brands, hours, rating, photo, '
  'description, coordinates rounded to 2 decimals. No phone, street address or legal name.';

-- Great-circle distance in km between two earth points. earthdistance's own functions name their
-- helpers without a schema: they run here with `extensions` on the path.
create or replace function private.earth_distance_km(p_a extensions.earth, p_b extensions.earth)
returns double precision
language sql immutable strict parallel safe set search_path = extensions
as $$ select extensions.earth_distance(p_a, p_b) / 1000 $$;
revoke execute on function private.earth_distance_km(extensions.earth, extensions.earth) from public;
grant execute on function private.earth_distance_km(extensions.earth, extensions.earth)
  to anon, authenticated, service_role;

-- Search: nearest first when coordinates are given (great-circle distance in km; workshops without
-- coordinates come last), otherwise by city, postal area and name; filtered by city, service and
-- brand (case-insensitive, trimmed). Anyone may call it.
create or replace function public.find_workshops(
  p_latitude double precision default null,
  p_longitude double precision default null,
  p_city text default null,
  p_service text default null,
  p_brand text default null,
  p_limit int default 20
) returns table (
  id uuid, name text, city text, postal_area text, country text, services text[], brands text[],
  hours jsonb, rating numeric, rating_count int, photo_url text, description text,
  latitude numeric, longitude numeric, distance_km numeric
)
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_city text := lower(btrim(p_city));
  v_service text := lower(btrim(p_service));
  v_brand text := lower(btrim(p_brand));
  v_here extensions.earth;
begin
  if p_limit is null or p_limit < 1 or p_limit > 100 then
    perform private.raise_error('invalid_input', 'p_limit must be between 1 and 100');
  end if;
  if (p_latitude is null) <> (p_longitude is null)
     or p_latitude not between -90 and 90 or p_longitude not between -180 and 180
     or p_latitude = 'NaN'::float8 or p_longitude = 'NaN'::float8 then
    perform private.raise_error('invalid_input',
      'p_latitude (-90..90) and p_longitude (-180..180) are given together or not at all');
  end if;
  if char_length(p_city) > 120 or char_length(p_service) > 80 or char_length(p_brand) > 60 then
    perform private.raise_error('invalid_input', 'p_city (120), p_service (80) or p_brand (60) is too long');
  end if;
  if v_city = '' or v_service = '' or v_brand = '' then
    perform private.raise_error('invalid_input', 'p_city, p_service and p_brand are null or not blank');
  end if;

  if p_latitude is not null then
    v_here := private.earth_point(p_latitude, p_longitude);
    return query
    with near as (  -- nearest first through the gist index on the earth points
      select o.id, private.earth_distance_km(private.earth_point(o.latitude, o.longitude), v_here) as km,
             private.earth_point(o.latitude, o.longitude) operator(extensions.<->) v_here as chord
      from public.organizations o
      where o.status = 'verified' and o.latitude is not null
        and (v_city is null or lower(btrim(o.city)) = v_city)
        and (v_service is null or exists (select 1 from unnest(o.services) x where lower(btrim(x)) = v_service))
        and (v_brand is null or exists (select 1 from unnest(o.brands) x where lower(btrim(x)) = v_brand))
      order by private.earth_point(o.latitude, o.longitude) operator(extensions.<->) v_here
      limit p_limit),
    far as (  -- then those without coordinates
      select o.id, null::float8 as km, null::float8 as chord
      from public.organizations o
      where o.status = 'verified' and o.latitude is null
        and (v_city is null or lower(btrim(o.city)) = v_city)
        and (v_service is null or exists (select 1 from unnest(o.services) x where lower(btrim(x)) = v_service))
        and (v_brand is null or exists (select 1 from unnest(o.brands) x where lower(btrim(x)) = v_brand))
      order by lower(o.city), o.postal_code, o.name, o.id
      limit p_limit)
    select c.id, c.name, c.city, c.postal_area, c.country, c.services, c.brands, c.hours, c.rating,
           c.rating_count, c.photo_url, c.description, c.latitude, c.longitude, round(x.km::numeric, 1)
    from (select * from near union all select * from far) x
    cross join lateral private.workshop_cards(x.id) c
    order by x.chord nulls last, lower(c.city), c.postal_area, c.name, c.id
    limit p_limit;
  else
    return query
    select c.id, c.name, c.city, c.postal_area, c.country, c.services, c.brands, c.hours, c.rating,
           c.rating_count, c.photo_url, c.description, c.latitude, c.longitude, null::numeric
    from (select o.id from public.organizations o
          where o.status = 'verified'
            and (v_city is null or lower(btrim(o.city)) = v_city)
            and (v_service is null or exists (select 1 from unnest(o.services) x where lower(btrim(x)) = v_service))
            and (v_brand is null or exists (select 1 from unnest(o.brands) x where lower(btrim(x)) = v_brand))
          order by lower(btrim(o.city)), upper(replace(o.postal_code, ' ', '')), o.name, o.id
          limit p_limit) x
    cross join lateral private.workshop_cards(x.id) c
    order by lower(btrim(c.city)), c.postal_area, c.name, c.id;
  end if;
end
$$;
revoke execute on function public.find_workshops(double precision, double precision, text, text, text, int)
  from public;
grant execute on function public.find_workshops(double precision, double precision, text, text, text, int)
  to anon, authenticated, service_role;
