-- Operations: the overview of the business and the request sweep run by hand
-- (docs/operations.md#overview).

-- Which rule holds a waiting payout now, as a stable key. The reason is the one
-- private.payout_wait_reason gives (trust/delivery.sql: the rule every path that queues a payout
-- asks), so the overview never disagrees with the payouts themselves; `ready` means nothing holds
-- it any more and the `delivery` job queues it on its next run.
create or replace function private.overview_wait_key(p_reason text) returns text
language sql immutable set search_path = ''
as $$
  select case
    when p_reason is null then 'ready'
    when p_reason like 'problem reported%' then 'problem_reported'
    when p_reason like 'delivery unverified%' then 'delivery_unverified'
    when p_reason like 'objection window%' then 'objection_window'
    when p_reason like 'mechanic payouts held%' then 'suspension_hold'
    when p_reason like 'mechanic %' then 'mechanic_not_approved'
    when p_reason like 'no payout account%' then 'no_payout_account'
    when p_reason like 'the payout account cannot receive%' then 'transfers_inactive'
    else 'other'
  end
$$;
revoke execute on function private.overview_wait_key(text) from public;
grant execute on function private.overview_wait_key(text) to service_role;

-- ---------------------------------------------------------------------------------------------
-- admin_overview: the business over [p_from, p_to) (half-open: a day is [midnight, next
-- midnight)), and the state of things now. Each figure is defined in docs/operations.md#overview;
-- amounts are in cents.
-- ---------------------------------------------------------------------------------------------
create or replace function public.admin_overview(p_from timestamptz, p_to timestamptz)
returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_now timestamptz := now();
  v_sessions jsonb;
  v_revenue jsonb;
  v_refunds jsonb;
  v_credits jsonb;
  v_payouts jsonb;
  v_queue jsonb;
  v_mechanics jsonb;
  v_accept jsonb;
  v_delivery jsonb;
  v_ratings jsonb;
begin
  perform private.require_admin();
  perform private.require_arg('p_from', p_from);
  perform private.require_arg('p_to', p_to);
  if not isfinite(p_from) or not isfinite(p_to) or p_to <= p_from then
    perform private.raise_error('overview_range_invalid', 'p_to must be later than p_from, both finite');
  end if;
  if p_to - p_from > make_interval(days => private.setting_int('operations.overview_max_days')) then
    perform private.raise_error('overview_range_too_long',
      format('the range may span at most %s days', private.setting_int('operations.overview_max_days')));
  end if;

  -- sessions created in the range, by status (now) and by type
  with created as materialized (
    select s.status, s.session_type from public.sessions s
    where s.created_at >= p_from and s.created_at < p_to
  )
  select jsonb_build_object(
           'created', (select count(*) from created),
           'by_status', (select jsonb_object_agg(st::text, (select count(*) from created c where c.status = st))
                         from unnest(enum_range(null::public.session_status)) st),
           'by_type', (select jsonb_object_agg(ty::text, (select count(*) from created c where c.session_type = ty))
                       from unnest(enum_range(null::public.session_type)) ty))
  into v_sessions;

  -- money received (payments paid in the range) and the platform's share (payments settled in the range)
  select jsonb_build_object(
           'payments', count(*),
           'gross_cents', coalesce(sum(p.amount_cents), 0),
           'card_cents', coalesce(sum(p.amount_cents) filter (where p.method = 'card'), 0),
           'credit_cents', coalesce(sum(p.amount_cents) filter (where p.method = 'credit'), 0))
  into v_revenue
  from public.payments p
  where p.paid_at >= p_from and p.paid_at < p_to;
  v_revenue := v_revenue || (
    select jsonb_build_object('settled', jsonb_build_object(
             'payments', count(*),
             'base_cents', coalesce(sum(p.settled_base_cents), 0),
             'platform_fee_cents', coalesce(sum(p.platform_fee_cents), 0),
             'payees_cents', coalesce(sum(p.settled_base_cents - p.platform_fee_cents), 0)))
    from public.payments p
    where p.settled_at >= p_from and p.settled_at < p_to);

  -- refunds requested in the range; failed and canceled ones apart (their money stayed)
  select jsonb_build_object(
           'count', count(*) filter (where r.status not in ('failed', 'canceled')),
           'amount_cents', coalesce(sum(r.amount_cents) filter (where r.status not in ('failed', 'canceled')), 0),
           'card_cents', coalesce(sum(r.amount_cents) filter (where r.status not in ('failed', 'canceled')
                                                               and r.destination = 'card'), 0),
           'credit_cents', coalesce(sum(r.amount_cents) filter (where r.status not in ('failed', 'canceled')
                                                                 and r.destination = 'credit'), 0),
           'succeeded', count(*) filter (where r.status = 'succeeded'),
           'in_flight', count(*) filter (where r.status in ('queued', 'processing')),
           'failed', count(*) filter (where r.status in ('failed', 'canceled')),
           'failed_cents', coalesce(sum(r.amount_cents) filter (where r.status in ('failed', 'canceled')), 0))
  into v_refunds
  from public.refunds r
  where r.created_at >= p_from and r.created_at < p_to;

  -- credit: granted by admins, used to pay, returned by refunds (entries of the range)
  select jsonb_build_object(
           'granted', count(*) filter (where l.kind = 'grant'),
           'granted_cents', coalesce(sum(l.amount_cents) filter (where l.kind = 'grant'), 0),
           'used', count(*) filter (where l.kind = 'debit'),
           'used_cents', coalesce(-sum(l.amount_cents) filter (where l.kind = 'debit'), 0),
           'refunded', count(*) filter (where l.kind = 'refund'),
           'refunded_cents', coalesce(sum(l.amount_cents) filter (where l.kind = 'refund'), 0))
  into v_credits
  from public.credit_ledger l
  where l.created_at >= p_from and l.created_at < p_to;

  -- payouts: sent (paid in the range); waiting, queued and failed now, the waiting ones by the
  -- rule that holds each
  with waiting as (
    select p.amount_cents, private.overview_wait_key(private.payout_wait_reason(p.id, v_now)) as wait_key
    from public.payouts p where p.status = 'waiting'
  ), keys(wait_key) as (
    values ('objection_window'), ('delivery_unverified'), ('problem_reported'), ('mechanic_not_approved'),
           ('suspension_hold'), ('no_payout_account'), ('transfers_inactive'), ('ready'), ('other')
  )
  select jsonb_build_object(
           'sent', (select jsonb_build_object('count', count(*), 'amount_cents', coalesce(sum(p.amount_cents), 0))
                    from public.payouts p
                    where p.status = 'paid' and p.paid_at >= p_from and p.paid_at < p_to),
           'waiting', jsonb_build_object(
              'count', (select count(*) from waiting),
              'amount_cents', (select coalesce(sum(w.amount_cents), 0) from waiting w),
              'by_reason', (select jsonb_object_agg(k.wait_key, jsonb_build_object(
                                     'count', (select count(*) from waiting w where w.wait_key = k.wait_key),
                                     'amount_cents', (select coalesce(sum(w.amount_cents), 0) from waiting w
                                                      where w.wait_key = k.wait_key)))
                            from keys k)),
           'in_flight', (select jsonb_build_object('count', count(*), 'amount_cents', coalesce(sum(p.amount_cents), 0))
                         from public.payouts p where p.status in ('queued', 'processing')),
           'failed', (select jsonb_build_object('count', count(*), 'amount_cents', coalesce(sum(p.amount_cents), 0))
                      from public.payouts p where p.status = 'failed'))
  into v_payouts;

  -- the unattended queue now
  select jsonb_build_object(
           'unattended', count(*) filter (where r.status = 'unattended'),
           'oldest_unattended_at', min(r.created_at) filter (where r.status = 'unattended'),
           'oldest_unattended_age_seconds',
             floor(extract(epoch from v_now - min(r.created_at) filter (where r.status = 'unattended')))::bigint,
           'pending', count(*) filter (where r.status = 'pending'))
  into v_queue
  from public.session_requests r
  where r.status in ('pending', 'unattended');

  -- approved mechanics now, by presence as matching defines it (public.mechanic_presence)
  select jsonb_build_object(
           'online', count(*) filter (where mp.presence = 'online'),
           'busy', count(*) filter (where mp.presence = 'busy'),
           'offline', count(*) filter (where mp.presence = 'offline'))
  into v_mechanics
  from public.mechanic_presence mp;

  -- time from filing to acceptance of the requests accepted in the range
  select jsonb_build_object(
           'accepted', count(*),
           'median_seconds', round((percentile_cont(0.5) within group (order by x.seconds))::numeric, 1),
           'p90_seconds', round((percentile_cont(0.9) within group (order by x.seconds))::numeric, 1))
  into v_accept
  from (select extract(epoch from r.accepted_at - r.created_at) as seconds
        from public.session_requests r
        where r.accepted_at >= p_from and r.accepted_at < p_to) x;

  -- delivery: sessions completed (ended) in the range, delivered among them
  select jsonb_build_object(
           'completed', count(*),
           'delivered', count(*) filter (where s.delivery = 'delivered'),
           'unverified', count(*) filter (where s.delivery = 'unverified'),
           'rate', case when count(*) > 0
                        then round(count(*) filter (where s.delivery = 'delivered')::numeric / count(*), 4) end)
  into v_delivery
  from public.sessions s
  where s.status = 'completed' and s.ended_at >= p_from and s.ended_at < p_to;

  -- ratings: visible reviews (not hidden by an admin) written in the range, and of all time
  select jsonb_build_object(
           'reviews', count(*) filter (where mr.created_at >= p_from and mr.created_at < p_to),
           'average', round(avg(mr.rating) filter (where mr.created_at >= p_from and mr.created_at < p_to), 2),
           'reviews_overall', count(*),
           'average_overall', round(avg(mr.rating), 2))
  into v_ratings
  from public.mechanic_reviews mr
  where mr.hidden_at is null;

  return jsonb_build_object(
    'from', p_from, 'to', p_to, 'as_of', v_now,
    'sessions', v_sessions, 'revenue', v_revenue, 'refunds', v_refunds, 'credits', v_credits,
    'payouts', v_payouts, 'queue', v_queue, 'mechanics', v_mechanics, 'time_to_accept', v_accept,
    'delivery', v_delivery, 'ratings', v_ratings);
end
$$;
revoke execute on function public.admin_overview(timestamptz, timestamptz) from public, anon;
grant execute on function public.admin_overview(timestamptz, timestamptz) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- admin_run_sweep: the scheduled `sweep_requests` job run now, exactly as the schedule runs it
-- (private.run_job: its steps, each in its own subtransaction, recorded in private.cron_runs as
-- `cron_sweep_requests`), and audited as `sweep.run` with what it did. The sweep claims its rows
-- with `for update skip locked`, so a run by hand alongside a scheduled run never handles a row
-- twice: each row goes to whichever run locks it first.
-- ---------------------------------------------------------------------------------------------
create or replace function public.admin_run_sweep() returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_result jsonb;
begin
  perform private.require_admin();
  v_result := private.run_job('sweep_requests', now());
  perform private.record_admin_action('sweep.run', 'schedule', null, null, v_result);
  return v_result;
end
$$;
revoke execute on function public.admin_run_sweep() from public, anon;
grant execute on function public.admin_run_sweep() to authenticated, service_role;
