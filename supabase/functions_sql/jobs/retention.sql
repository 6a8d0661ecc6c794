-- Jobs: retention (docs/jobs.md#retention). The steps of the `retention` job, one per table that
-- grows with every call, job or webhook. Each step deletes (or trims) only rows that are due, found
-- oldest first through an index, at most p_limit of each kind per run (default
-- retention.batch_size), with skip locked so two runs never fight over a row; a second run at the
-- same time finds nothing left. Every period is a setting (retention.*), every step takes p_now.

-- The batch of a step: p_limit, else retention.batch_size; never negative.
create or replace function private.retention_limit(p_limit int) returns int
language sql stable security definer set search_path = ''
as $$
  select greatest(coalesce(p_limit, private.setting_int('retention.batch_size')), 0)
$$;
revoke execute on function private.retention_limit(int) from public;

-- ---------------------------------------------------------------------------------------------
-- The job queue: sent and skipped jobs after retention.jobs_finished, dead-lettered ones after
-- retention.jobs_dead (counted from their last attempt). Pending and running jobs are never
-- touched. Once a finished job is gone its dedupe key is free again; every enqueue happens at a
-- status change of a row that cannot recur that late (docs/jobs.md#retention).
-- ---------------------------------------------------------------------------------------------
create or replace function private.retain_jobs(p_now timestamptz default now(), p_limit int default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_limit int := private.retention_limit(p_limit);
  v_finished int;
  v_dead int;
begin
  with due as (
    select o.id from private.outbox o
    where o.status in ('sent', 'skipped') and o.sent_at < p_now - private.setting_interval('retention.jobs_finished')
    order by o.sent_at
    limit v_limit
    for update skip locked)
  delete from private.outbox o using due where o.id = due.id;
  get diagnostics v_finished = row_count;
  with due as (
    select o.id from private.outbox o
    where o.status = 'dead' and o.next_attempt_at < p_now - private.setting_interval('retention.jobs_dead')
    order by o.next_attempt_at
    limit v_limit
    for update skip locked)
  delete from private.outbox o using due where o.id = due.id;
  get diagnostics v_dead = row_count;
  return jsonb_build_object('jobs_deleted', v_finished, 'dead_jobs_deleted', v_dead);
end
$$;
revoke execute on function private.retain_jobs(timestamptz, int) from public;

-- ---------------------------------------------------------------------------------------------
-- Run records: older than retention.cron_runs, except the newest run of each job (what an
-- operator looks at first).
-- ---------------------------------------------------------------------------------------------
create or replace function private.retain_cron_runs(p_now timestamptz default now(), p_limit int default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_n int;
begin
  with due as (
    select r.id from private.cron_runs r
    where r.started_at < p_now - private.setting_interval('retention.cron_runs')
      and exists (select 1 from private.cron_runs n where n.job = r.job and n.started_at > r.started_at)
    order by r.started_at
    limit private.retention_limit(p_limit)
    for update skip locked)
  delete from private.cron_runs r using due where r.id = due.id;
  get diagnostics v_n = row_count;
  return jsonb_build_object('cron_runs_deleted', v_n);
end
$$;
revoke execute on function private.retain_cron_runs(timestamptz, int) from public;

-- ---------------------------------------------------------------------------------------------
-- Webhook ledgers. The row (event id) is the dedupe record: it stays for retention.webhook_events,
-- longer than any provider redelivers, so a late duplicate is still answered `duplicate`. The
-- payload is only needed until the event is settled; retention.webhook_payloads after processing
-- it is replaced by the event's id and type. Events not processed yet (a failing handler that the
-- provider retries) keep everything.
-- ---------------------------------------------------------------------------------------------

-- Stripe. Settled: processed, and — for a charge or refund event about a payment intent — the
-- checkout of that payment intent recorded (a payment exists): until then the checkout's arrival
-- replays these events from their payloads (payments/stripe_events.sql).
create or replace function private.retain_stripe_events(p_now timestamptz default now(), p_limit int default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_limit int := private.retention_limit(p_limit);
  v_trimmed int;
  v_deleted int;
begin
  with due as (
    select e.id from private.stripe_events e
    where e.processed_at is not null and e.payload_trimmed_at is null
      and e.processed_at < p_now - private.setting_interval('retention.webhook_payloads')
      and (e.payment_intent_id is null
           or exists (select 1 from public.payments p where p.stripe_payment_intent_id = e.payment_intent_id))
    order by e.processed_at
    limit v_limit
    for update skip locked)
  update private.stripe_events e
  set payload = jsonb_build_object('id', e.id, 'type', e.type), payload_trimmed_at = p_now
  from due where e.id = due.id;
  get diagnostics v_trimmed = row_count;
  with due as (
    select e.id from private.stripe_events e
    where e.processed_at is not null and e.processed_at < p_now - private.setting_interval('retention.webhook_events')
    order by e.processed_at
    limit v_limit
    for update skip locked)
  delete from private.stripe_events e using due where e.id = due.id;
  get diagnostics v_deleted = row_count;
  return jsonb_build_object('stripe_payloads_trimmed', v_trimmed, 'stripe_events_deleted', v_deleted);
end
$$;
revoke execute on function private.retain_stripe_events(timestamptz, int) from public;

-- LiveKit. An event is applied in the transaction that records it (rooms/livekit_events.sql), so
-- it is settled once it is there; LiveKit does not redeliver an event later than 30 seconds.
create or replace function private.retain_livekit_events(p_now timestamptz default now(), p_limit int default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_limit int := private.retention_limit(p_limit);
  v_trimmed int;
  v_deleted int;
begin
  with due as (
    select e.id from private.livekit_events e
    where e.payload_trimmed_at is null
      and e.received_at < p_now - private.setting_interval('retention.webhook_payloads')
    order by e.received_at
    limit v_limit
    for update skip locked)
  update private.livekit_events e
  set payload = jsonb_build_object('id', e.id, 'event', e.event), payload_trimmed_at = p_now
  from due where e.id = due.id;
  get diagnostics v_trimmed = row_count;
  with due as (
    select e.id from private.livekit_events e
    where e.received_at < p_now - private.setting_interval('retention.webhook_events')
    order by e.received_at
    limit v_limit
    for update skip locked)
  delete from private.livekit_events e using due where e.id = due.id;
  get diagnostics v_deleted = row_count;
  return jsonb_build_object('livekit_payloads_trimmed', v_trimmed, 'livekit_events_deleted', v_deleted);
end
$$;
revoke execute on function private.retain_livekit_events(timestamptz, int) from public;

-- Resend. Settled: processed and about an email we know; an `unknown_email` event is applied from
-- its payload when the sender records the email (journey/email_events.sql), so it keeps it. A row
-- an address's suppression points at (why the address is suppressed) is trimmed but kept.
create or replace function private.retain_resend_events(p_now timestamptz default now(), p_limit int default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_limit int := private.retention_limit(p_limit);
  v_trimmed int;
  v_deleted int;
begin
  with due as (
    select e.id from private.resend_events e
    where e.processed_at is not null and e.payload_trimmed_at is null
      and e.processed_at < p_now - private.setting_interval('retention.webhook_payloads')
      and e.outcome is distinct from 'unknown_email'
    order by e.processed_at
    limit v_limit
    for update skip locked)
  update private.resend_events e
  set payload = jsonb_build_object('id', e.id, 'type', e.type), payload_trimmed_at = p_now
  from due where e.id = due.id;
  get diagnostics v_trimmed = row_count;
  with due as (
    select e.id from private.resend_events e
    where e.processed_at is not null and e.processed_at < p_now - private.setting_interval('retention.webhook_events')
      and not exists (select 1 from private.email_suppressions s where s.resend_event_id = e.id)
    order by e.processed_at
    limit v_limit
    for update skip locked)
  delete from private.resend_events e using due where e.id = due.id;
  get diagnostics v_deleted = row_count;
  return jsonb_build_object('resend_payloads_trimmed', v_trimmed, 'resend_events_deleted', v_deleted);
end
$$;
revoke execute on function private.retain_resend_events(timestamptz, int) from public;

-- ---------------------------------------------------------------------------------------------
-- Session status history. The events of a session go together (a timeline is whole or gone), and
-- only when nothing may still ask about it: the session is completed or cancelled, its last status
-- change is older than retention.session_events, and it has no open money or delivery question —
-- a refund, payout or transfer reversal not final, or a delivery that is unverified or reported
-- with no decision. Events made by an admin are the audit of admin actions (operations/
-- audit_read.sql) and always stay. The table is append-only (core/transitions.sql): the step names
-- it in the transaction-local setting autodoctor.retention, which lets only this owner's deletes
-- through.
-- ---------------------------------------------------------------------------------------------
create or replace function private.session_has_open_question(p_session_id uuid) returns boolean
language sql stable security definer set search_path = ''
as $$
  select exists (select 1 from public.payments p join public.refunds f on f.payment_id = p.id
                 where p.session_id = p_session_id and f.status in ('queued', 'processing'))
      or exists (select 1 from public.payouts o
                 where o.session_id = p_session_id and o.status in ('waiting', 'queued', 'processing'))
      or exists (select 1 from public.payouts o join public.transfer_reversals t on t.payout_id = o.id
                 where o.session_id = p_session_id and t.status in ('queued', 'processing'))
      or exists (select 1 from public.sessions s
                 where s.id = p_session_id
                   and (s.delivery = 'unverified'
                        or exists (select 1 from public.session_problem_reports r where r.session_id = s.id))
                   and not exists (select 1 from public.session_delivery_decisions d where d.session_id = s.id))
$$;
revoke execute on function private.session_has_open_question(uuid) from public;

create or replace function private.retain_session_events(p_now timestamptz default now(), p_limit int default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_limit int := private.retention_limit(p_limit);
  v_cutoff timestamptz := p_now - private.setting_interval('retention.session_events');
  v_session uuid;
  v_n int;
  v_deleted int := 0;
  v_sessions int := 0;
  v_kept int := 0;
begin
  perform set_config('autodoctor.retention', 'public.session_events', true);
  -- The sessions of the oldest events first; a session still held is looked at and kept. At most
  -- 10 × the batch of events are looked at per run, so a run stays bounded whatever is held.
  for v_session in
    select x.session_id
    from (select e.session_id, e.at from public.session_events e
          where e.at < v_cutoff and e.actor_role <> 'admin'
          order by e.at
          limit v_limit * 10) x
    group by x.session_id
    order by min(x.at)
  loop
    if exists (select 1 from public.sessions s
               where s.id = v_session and s.status in ('completed', 'cancelled') and s.status_changed_at < v_cutoff
                 and not exists (select 1 from public.session_events e2
                                 where e2.session_id = s.id and e2.at >= v_cutoff))
       and not private.session_has_open_question(v_session) then
      exit when v_deleted > 0
                and v_deleted + (select count(*) from public.session_events e3
                                 where e3.session_id = v_session and e3.actor_role <> 'admin') > v_limit;
      delete from public.session_events e where e.session_id = v_session and e.actor_role <> 'admin';
      get diagnostics v_n = row_count;
      v_deleted := v_deleted + v_n;
      v_sessions := v_sessions + 1;
    else
      v_kept := v_kept + 1;
    end if;
  end loop;
  perform set_config('autodoctor.retention', '', true);
  return jsonb_build_object('session_events_deleted', v_deleted, 'session_histories_deleted', v_sessions,
                            'session_histories_held', v_kept);
end
$$;
revoke execute on function private.retain_session_events(timestamptz, int) from public;

-- ---------------------------------------------------------------------------------------------
-- Slot holds: every slot a customer picks is a hold (scheduling/holds.sql); one that expired or was
-- let go without a booking is nobody's time any more. It goes retention.holds after it expired —
-- later than a paid hold's checkout can complete (Checkout expires within a day, Stripe redelivers
-- for 3 days), whose completion looks the hold up again (`p_rehold`). A hold that a booking still
-- waiting for its payment (pending, or failed with its Checkout still open) points at stays.
-- ---------------------------------------------------------------------------------------------
create or replace function private.retain_holds(p_now timestamptz default now(), p_limit int default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_n int;
begin
  with due as (
    select c.id from public.mechanic_commitments c
    where c.kind = 'hold' and c.status in ('expired', 'released')
      and c.expires_at < p_now - private.setting_interval('retention.holds')
      and not exists (select 1 from public.bookings b where b.hold_id = c.id and b.status in ('pending', 'failed'))
    order by c.expires_at
    limit private.retention_limit(p_limit)
    for update of c skip locked)
  delete from public.mechanic_commitments c using due where c.id = due.id;
  get diagnostics v_n = row_count;
  return jsonb_build_object('holds_deleted', v_n);
end
$$;
revoke execute on function private.retain_holds(timestamptz, int) from public;

-- ---------------------------------------------------------------------------------------------
-- Rate-limit buckets: one per user and class that ever called. A bucket idle for
-- retention.rate_buckets and refilled to its capacity is the same as no bucket (the first call
-- starts a full one, trust/rate_limit.sql), so it goes. The table is small and unlogged; it has no
-- index on updated_at on purpose: every write RPC updates it, and such an index would cost each of
-- them its HOT update. The scan stops at the batch.
-- ---------------------------------------------------------------------------------------------
create or replace function private.retain_rate_buckets(p_now timestamptz default now(), p_limit int default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_n int;
begin
  with due as (
    select b.user_id, b.class from private.rate_buckets b
    join private.settings c on c.key = format('rate_limit.%s.capacity', b.class)
    join private.settings r on r.key = format('rate_limit.%s.refill_per_minute', b.class)
    where b.updated_at < p_now - private.setting_interval('retention.rate_buckets')
      and b.tokens + extract(epoch from (p_now - b.updated_at)) * (r.value)::numeric / 60 >= (c.value)::numeric
    limit private.retention_limit(p_limit)
    for update of b skip locked)
  delete from private.rate_buckets b using due where b.user_id = due.user_id and b.class = due.class;
  get diagnostics v_n = row_count;
  return jsonb_build_object('rate_buckets_deleted', v_n);
end
$$;
revoke execute on function private.retain_rate_buckets(timestamptz, int) from public;
