-- Journey: the admin's funnel, retention and a customer's timeline, counted from crm_interactions
-- (docs/journey.md#interactions-and-the-funnel). Days are UTC days: a date d covers
-- [d 00:00 UTC, d+1 00:00 UTC), and a week starts on Monday 00:00 UTC.
--
-- The reports are volatile on purpose: the pre-request hook charges them to the admin rate class,
-- so a script cannot run the heaviest reads of the database in a loop.

-- Checks a report's range: both dates, from not after to, at most crm.report_max_days days (both
-- ends included), inside years 1970–9999 (so that to + 1 day is a timestamp).
create or replace function private.crm_check_range(p_from date, p_to date) returns void
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_max int := private.setting_int('crm.report_max_days');
begin
  if p_from is null or p_to is null then
    perform private.raise_error('report_range_invalid', 'p_from and p_to are required');
  end if;
  if p_from > p_to then
    perform private.raise_error('report_range_invalid', 'p_from is after p_to');
  end if;
  if p_from < date '1970-01-01' or p_to > date '9999-12-31' then
    perform private.raise_error('report_range_invalid', 'the dates must be between 1970-01-01 and 9999-12-31');
  end if;
  if p_to - p_from + 1 > v_max then
    perform private.raise_error('report_range_too_long', format('the range is at most %s days', v_max));
  end if;
end
$$;
revoke execute on function private.crm_check_range(date, date) from public;
grant execute on function private.crm_check_range(date, date) to authenticated, service_role;

-- n / d rounded to 4 decimals; null when d is 0 (no step before, no conversion)
create or replace function private.crm_ratio(p_n bigint, p_d bigint) returns numeric
language sql immutable set search_path = ''
as $$
  select case when coalesce(p_d, 0) = 0 then null else round(p_n::numeric / p_d, 4) end;
$$;
revoke execute on function private.crm_ratio(bigint, bigint) from public;
grant execute on function private.crm_ratio(bigint, bigint) to authenticated, service_role;

-- One cohort (or the totals) of admin_funnel, with the conversion of each step from the one before.
create or replace function private.crm_funnel_row(p_period date, p_intakes bigint, p_requested bigint,
                                                  p_delivered bigint, p_returned bigint, p_followed_up bigint,
                                                  p_repurchased bigint)
returns jsonb
language sql immutable set search_path = ''
as $$
  select jsonb_build_object(
    'period_start', p_period, 'intakes', p_intakes, 'requested', p_requested, 'delivered', p_delivered,
    'returned', p_returned, 'followed_up', p_followed_up, 'repurchased', p_repurchased,
    'conversion', jsonb_build_object(
      'intake_to_request', private.crm_ratio(p_requested, p_intakes),
      'request_to_delivered', private.crm_ratio(p_delivered, p_requested),
      'delivered_to_returned', private.crm_ratio(p_returned, p_delivered),
      'intake_to_returned', private.crm_ratio(p_returned, p_intakes)));
$$;
revoke execute on function private.crm_funnel_row(date, bigint, bigint, bigint, bigint, bigint, bigint) from public;
grant execute on function private.crm_funnel_row(date, bigint, bigint, bigint, bigint, bigint, bigint)
  to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- admin_funnel: cohorts of intakes by the UTC week (or month) of their intake_created, and for
-- each the intakes that went on to each step. Each step counts among the intakes of the step
-- before it, so the figures never grow down the funnel:
--   intakes    intake_created in [p_from, p_to] (not the intake a follow-up question creates)
--   requested  … with a request_filed of the intake (a request, or a booked slot)
--   delivered  … and a session_delivered of the intake
--   returned   … and, after that, a follow_up_asked on the intake (its intake_id, or the session of
--              one of its interactions) or a purchase by the same customer later than the intake's
--              first delivered session (an extension of a session is not a new purchase)
-- followed_up and repurchased split returned (an intake may be in both).
-- ---------------------------------------------------------------------------------------------
create or replace function public.admin_funnel(p_from date, p_to date, p_group text default 'week')
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_cohorts jsonb;
  v_totals jsonb;
begin
  perform private.require_admin();
  perform private.crm_check_range(p_from, p_to);
  if p_group is null or p_group not in ('week', 'month') then
    perform private.raise_error('report_group_unknown', 'p_group must be week or month');
  end if;

  -- set-based: each step is one pass over the interactions of the cohort's intakes (by intake_id
  -- or session_id, both indexed), never a query per intake
  with cohort as materialized (
    select c.intake_id, c.customer_id,
           date_trunc(p_group, c.occurred_at at time zone 'UTC')::date as period
    from public.crm_interactions c
    where c.kind = 'intake_created' and c.intake_id is not null
      -- a follow-up's own intake continues its parent's journey: it is that intake's follow-up
      -- step, not a new intake
      and not exists (select 1 from public.follow_ups fu where fu.intake_id = c.intake_id)
      and c.occurred_at >= p_from::timestamp at time zone 'UTC'
      and c.occurred_at < (p_to::timestamp + interval '1 day') at time zone 'UTC'
  ), of_intake as materialized (
    -- every interaction that carries one of the cohort's intakes
    select x.intake_id, x.kind, x.occurred_at, x.session_id
    from public.crm_interactions x
    join cohort k on k.intake_id = x.intake_id
  ), requested as (
    select distinct o.intake_id from of_intake o where o.kind = 'request_filed'
  ), delivered as (
    select o.intake_id, min(o.occurred_at) as delivered_at from of_intake o
    where o.kind = 'session_delivered' group by o.intake_id
  ), followed_up as (
    select o.intake_id from of_intake o where o.kind = 'follow_up_asked'
    union
    select o.intake_id
    from (select distinct o2.intake_id, o2.session_id from of_intake o2 where o2.session_id is not null) o
    join public.crm_interactions f on f.session_id = o.session_id and f.kind = 'follow_up_asked'
  ), last_purchase as (
    -- a purchase later than the delivery exists when the customer's latest one is later
    select p.customer_id, max(p.occurred_at) as last_at
    from public.crm_interactions p
    where p.kind = 'purchase' and p.data ->> 'extension' is distinct from 'true'
      and p.customer_id in (select k.customer_id from cohort k)
    group by p.customer_id
  ), counted as (
    select k.period,
           r.intake_id is not null as requested,
           r.intake_id is not null and d.intake_id is not null as delivered,
           r.intake_id is not null and d.intake_id is not null and f.intake_id is not null as followed_up,
           r.intake_id is not null and d.intake_id is not null and coalesce(lp.last_at > d.delivered_at, false)
             as repurchased
    from cohort k
    left join requested r on r.intake_id = k.intake_id
    left join delivered d on d.intake_id = k.intake_id
    left join (select distinct intake_id from followed_up) f on f.intake_id = k.intake_id
    left join last_purchase lp on lp.customer_id = k.customer_id
  ), per as (
    select c.period,
           count(*) as intakes,
           count(*) filter (where c.requested) as requested,
           count(*) filter (where c.delivered) as delivered,
           count(*) filter (where c.followed_up or c.repurchased) as returned,
           count(*) filter (where c.followed_up) as followed_up,
           count(*) filter (where c.repurchased) as repurchased
    from counted c
    group by grouping sets ((c.period), ())
  )
  select coalesce(jsonb_agg(private.crm_funnel_row(p.period, p.intakes, p.requested, p.delivered, p.returned,
                                                   p.followed_up, p.repurchased) order by p.period)
                    filter (where p.period is not null), '[]'),
         (select private.crm_funnel_row(null, t.intakes, t.requested, t.delivered, t.returned, t.followed_up,
                                        t.repurchased) - 'period_start'
          from per t where t.period is null)
  into v_cohorts, v_totals
  from per p;

  return jsonb_build_object('from', p_from, 'to', p_to, 'group', p_group, 'timezone', 'UTC',
                            'cohorts', coalesce(v_cohorts, '[]'),
                            'totals', coalesce(v_totals, private.crm_funnel_row(null, 0, 0, 0, 0, 0, 0) - 'period_start'));
end
$$;
revoke execute on function public.admin_funnel(date, date, text) from public, anon;
grant execute on function public.admin_funnel(date, date, text) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- admin_retention: customers by the UTC month of their first purchase ever (extensions are not
-- purchases of their own), kept when that first purchase falls in [p_from, p_to]; for 30 and 90
-- days, the customers whose window has fully elapsed (first purchase + N days ≤ now) and, of
-- those, the ones with a second purchase at most N days after the first. A customer whose window
-- is still open is in `customers` but in neither the eligible count nor the retained one: an open
-- window would count as "not retained" a customer who may still return.
-- ---------------------------------------------------------------------------------------------
create or replace function public.admin_retention(p_from date, p_to date)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_cohorts jsonb;
  v_totals jsonb;
  v_now timestamptz := now();
begin
  perform private.require_admin();
  perform private.crm_check_range(p_from, p_to);

  with ranked as (
    -- one pass: each purchase with the customer's next one
    select c.customer_id, c.occurred_at,
           row_number() over w as n,
           lead(c.occurred_at) over w as next_at
    from public.crm_interactions c
    where c.kind = 'purchase' and c.data ->> 'extension' is distinct from 'true'
    window w as (partition by c.customer_id order by c.occurred_at, c.id)
  ), firsts as (
    select f.customer_id, f.occurred_at as first_at, f.next_at as second_at,
           date_trunc('month', f.occurred_at at time zone 'UTC')::date as period
    from ranked f
    where f.n = 1
      and f.occurred_at >= p_from::timestamp at time zone 'UTC'
      and f.occurred_at < (p_to::timestamp + interval '1 day') at time zone 'UTC'
  ), per as (
    select f.period, count(*) as customers,
           count(*) filter (where f.first_at + interval '30 days' <= v_now) as eligible_30,
           count(*) filter (where f.first_at + interval '30 days' <= v_now
                              and f.second_at <= f.first_at + interval '30 days') as retained_30,
           count(*) filter (where f.first_at + interval '90 days' <= v_now) as eligible_90,
           count(*) filter (where f.first_at + interval '90 days' <= v_now
                              and f.second_at <= f.first_at + interval '90 days') as retained_90
    from firsts f
    group by grouping sets ((f.period), ())
  ), rows as (
    select p.period, jsonb_build_object(
             'period_start', p.period, 'customers', p.customers,
             'eligible_30', p.eligible_30, 'retained_30', p.retained_30,
             'rate_30', private.crm_ratio(p.retained_30, p.eligible_30),
             'eligible_90', p.eligible_90, 'retained_90', p.retained_90,
             'rate_90', private.crm_ratio(p.retained_90, p.eligible_90)) as j
    from per p
  )
  select coalesce(jsonb_agg(r.j order by r.period) filter (where r.period is not null), '[]'),
         (select t.j - 'period_start' from rows t where t.period is null)
  into v_cohorts, v_totals
  from rows r;

  return jsonb_build_object('from', p_from, 'to', p_to, 'group', 'month', 'timezone', 'UTC', 'as_of', v_now,
                            'cohorts', coalesce(v_cohorts, '[]'),
                            'totals', coalesce(v_totals, jsonb_build_object(
                              'customers', 0, 'eligible_30', 0, 'retained_30', 0, 'rate_30', null,
                              'eligible_90', 0, 'retained_90', 0, 'rate_90', null)));
end
$$;
revoke execute on function public.admin_retention(date, date) from public, anon;
grant execute on function public.admin_retention(date, date) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- admin_customer_timeline: every interaction of one customer, oldest first (ties in the order
-- they were recorded), each with what it refers to.
-- ---------------------------------------------------------------------------------------------
create or replace function public.admin_customer_timeline(p_customer_id uuid)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_items jsonb;
begin
  perform private.require_admin();
  if p_customer_id is null then
    perform private.raise_error('invalid_input', 'p_customer_id is required');
  end if;
  if not exists (select 1 from auth.users u where u.id = p_customer_id) then
    perform private.raise_error('not_found', 'no such customer');
  end if;
  select coalesce(jsonb_agg(jsonb_build_object(
           'id', c.id, 'kind', c.kind, 'occurred_at', c.occurred_at, 'intake_id', c.intake_id,
           'session_id', c.session_id, 'subject_id', c.subject_id,
           'subject_type', case
             when c.kind like 'recommendation_%' then 'recommendation'
             when c.kind = 'follow_up_asked' then 'follow_up'
             when c.kind = 'review_written' then 'review'
             when c.kind = 'purchase' then 'payment'
             when c.kind = 'summary_viewed' then 'summary' end,
           'data', c.data) order by c.occurred_at, c.id), '[]')
  into v_items
  from public.crm_interactions c
  where c.customer_id = p_customer_id;
  return jsonb_build_object('customer_id', p_customer_id, 'interactions', v_items);
end
$$;
revoke execute on function public.admin_customer_timeline(uuid) from public, anon;
grant execute on function public.admin_customer_timeline(uuid) to authenticated, service_role;
