-- Matching: admin metrics.

-- ---------------------------------------------------------------------------------------------
-- Admin metrics (the marketplace's success metrics), by UTC day. security_invoker: rows follow RLS, so
-- admins see the whole platform.
-- ---------------------------------------------------------------------------------------------
drop view if exists public.admin_matching_daily;
create view public.admin_matching_daily with (security_invoker = true) as
select date_trunc('day', r.created_at at time zone 'UTC')::date as day,
       count(*) as requests,
       round(avg((r.preferred_mechanic_id is not null)::int)::numeric, 3) as chosen_mechanic_share,
       round((avg(extract(epoch from (r.accepted_at - r.created_at))) filter (where r.accepted_at is not null)
              / 60)::numeric, 2) as avg_minutes_to_accept,
       round((percentile_cont(0.5) within group (order by extract(epoch from (r.accepted_at - r.created_at))))
              ::numeric / 60, 2) as median_minutes_to_accept,
       round((avg(extract(epoch from (s.started_at - r.created_at))) filter (where s.started_at is not null)
              / 60)::numeric, 2) as avg_minutes_to_start,
       round(avg((exists (select 1 from public.session_events e where e.request_id = r.id
                          and e.to_status = 'unattended'))::int)::numeric, 3) as unattended_rate
from public.session_requests r
join public.sessions s on s.id = r.session_id
group by 1;
grant select on public.admin_matching_daily to authenticated, service_role;
comment on view public.admin_matching_daily is
  'Per day: requests, share with a chosen mechanic, minutes to acceptance and to start, unattended rate.';

