-- journey_hooks: supabase/functions_sql/ as of this migration, written by `autodoctor db commit`.
-- Whole files, re-runnable, in path order; then the drops of what they no longer define.
-- Edit the files in supabase/functions_sql/, never this migration (see docs/migrations.md).
set check_function_bodies = off;

-- >>> functions_sql core/lifecycle.sql sha256=af8ff6dcf1d6d41c4f2169fe0438dcfd66cc4ea5ba19ef81ffd335afe79922d0
-- Core: the lifecycles of a session, readable in one place. Completing a session, cancelling it
-- and expiring its request are functions that change the status and then call each domain's step,
-- in the order listed in their bodies (docs/lifecycles.md lists them too). Triggers on sessions and
-- requests keep only invariants: the transition check, the audit, updated_at, Realtime broadcasts,
-- the deadline and its timer, and the guard below, which refuses a final status written any other
-- way.
--
-- Every lifecycle function takes the actor recorded in session_events (`p_actor`: customer,
-- mechanic, admin or system, and `p_audit_reason`, which defaults to `p_reason`). A null
-- `p_actor` keeps the actor already set for this transaction (private.set_actor), or `system`:
-- that is how a refund that cancels an unstarted session records whoever asked for the refund.
-- The previous actor is restored when the function returns.
--
-- Effects that move money or counters (settlement, refunds, micro minutes) are stamped with the
-- transaction's time, now(), as the queue workers expect; `p_now` may be a past event's time
-- (LiveKit) or a sweep's clock and only stamps the session, its request and the held time.

-- ---------------------------------------------------------------------------------------------
-- The guard: a final status only through the lifecycle functions
-- ---------------------------------------------------------------------------------------------
-- The lifecycle functions allow the one session they change, for the statement that changes it
-- (transaction-local; cleared right after).
create or replace function private.lifecycle_allow(p_session_id uuid) returns void
language sql volatile set search_path = ''
as $$
  select set_config('autodoctor.lifecycle', coalesce(p_session_id::text, ''), true);
$$;
revoke execute on function private.lifecycle_allow(uuid) from public;
grant execute on function private.lifecycle_allow(uuid) to service_role;

-- Sessions: completed and cancelled; requests: expired and cancelled. Runs after the transition
-- check (_100), so a forbidden change still fails with invalid_transition (AD006) first.
-- Its WHEN clause calls it only for a change to a final status (never on an accept or a start).
create or replace function private.tg__lifecycle_only() returns trigger
language plpgsql set search_path = ''
as $$
declare
  v_session_id uuid;
begin
  if tg_table_name = 'sessions' then
    v_session_id := new.id;
  else
    v_session_id := new.session_id;
  end if;
  if new.status is distinct from old.status
     and new.status::text in ('completed', 'cancelled', 'expired')
     and current_setting('autodoctor.lifecycle', true) is distinct from v_session_id::text then
    perform private.raise_error('lifecycle_bypassed',
      format('%s: %s only through private.complete_session, private.cancel_session or private.expire_request',
             tg_table_name, new.status));
  end if;
  return new;
end
$$;
revoke execute on function private.tg__lifecycle_only() from public;
drop trigger if exists _105_lifecycle_only on public.sessions;
create trigger _105_lifecycle_only before update of status on public.sessions
  for each row
  when (new.status is distinct from old.status and new.status::text in ('completed', 'cancelled', 'expired'))
  execute function private.tg__lifecycle_only();
drop trigger if exists _105_lifecycle_only on public.session_requests;
create trigger _105_lifecycle_only before update of status on public.session_requests
  for each row
  when (new.status is distinct from old.status and new.status::text in ('completed', 'cancelled', 'expired'))
  execute function private.tg__lifecycle_only();

-- ---------------------------------------------------------------------------------------------
-- The actor for the audit (read by private.tg__record_status_event)
-- ---------------------------------------------------------------------------------------------
-- Sets the actor unless p_actor is null; returns the previous one for private.lifecycle_actor_restore.
create or replace function private.lifecycle_actor(p_actor text, p_reason text) returns text[]
language plpgsql volatile set search_path = ''
as $$
declare
  v_prev text[] := array[coalesce(current_setting('autodoctor.actor_role', true), ''),
                         coalesce(current_setting('autodoctor.reason', true), '')];
begin
  if p_actor is not null then
    perform private.set_actor(p_actor, p_reason);
  end if;
  return v_prev;
end
$$;
revoke execute on function private.lifecycle_actor(text, text) from public;
grant execute on function private.lifecycle_actor(text, text) to service_role;

create or replace function private.lifecycle_actor_restore(p_prev text[]) returns void
language sql volatile set search_path = ''
as $$
  select set_config('autodoctor.actor_role', p_prev[1], true), set_config('autodoctor.reason', p_prev[2], true);
$$;
revoke execute on function private.lifecycle_actor_restore(text[]) from public;
grant execute on function private.lifecycle_actor_restore(text[]) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Complete: a live session ends normally
-- ---------------------------------------------------------------------------------------------
-- Callers: public.end_session, public.admin_force_end_session, LiveKit room_finished and
-- reconcile (rooms/livekit_events.sql), the time cap (rooms/timers.sql).
drop function if exists private.complete_session(uuid, text, text, timestamptz);
create or replace function private.complete_session(
  p_session_id uuid, p_notes text, p_reason text, p_now timestamptz default now(),
  p_actor text default null, p_audit_reason text default null
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_prev_actor text[] := private.lifecycle_actor(p_actor, coalesce(p_audit_reason, p_reason));
  v_session public.sessions;
  v_delivery text;
  v_first_for_customer boolean;
begin
  -- 1. core: live → completed, delivered or unverified (trust/delivery.sql: both took part, long
  --    enough); the held time is done, the intake is resolved. A delivered session counts for the
  --    mechanic: completed_sessions + 1, and customers_served + 1 for this customer's first one
  --    (the mechanic row is locked first, so two completions for one pair count the customer once).
  perform private.lifecycle_allow(p_session_id);
  update public.sessions s
  set status = 'completed', ended_at = p_now, status_changed_at = p_now,
      duration_minutes = greatest(0, ceil(extract(epoch from (p_now - coalesce(s.started_at, p_now))) / 60))::int,
      mechanic_notes = coalesce(p_notes, s.mechanic_notes), cancel_reason = coalesce(p_reason, s.cancel_reason),
      delivery = private.session_delivery(s.id, s.started_at, p_now)
  where s.id = p_session_id and s.status = 'live'
  returning * into v_session;
  perform private.lifecycle_allow(null);
  if v_session.id is null then
    perform private.raise_error('invalid_transition', 'only a live session can be ended');
  end if;
  v_delivery := v_session.delivery;
  perform private.release_commitment(p_session_id, 'done', p_now);
  if v_delivery = 'delivered' then
    perform 1 from public.mechanics where id = v_session.mechanic_id for update;
    v_first_for_customer := not exists (
      select 1 from public.sessions s
      where s.mechanic_id = v_session.mechanic_id and s.customer_id = v_session.customer_id
        and s.status = 'completed' and s.delivery = 'delivered' and s.id <> v_session.id);
    update public.mechanics
    set completed_sessions = completed_sessions + 1,
        customers_served = customers_served + case when v_first_for_customer then 1 else 0 end
    where id = v_session.mechanic_id;
  end if;
  update public.intakes set status = 'resolved' where id = v_session.intake_id;

  -- 2. rooms: delete the LiveKit room (outbox job)                       rooms/timers.sql
  perform private.rooms_on_session_ended(v_session.id, 'live');
  -- 3. micro: count the actual micro minutes and the shift's counters    micro/caps.sql
  perform private.micro_settle(v_session.id, now());
  -- 4. payments: delivered: split every unsettled payment into payouts   payments/settlement.sql
  --    that wait for the objection window (payments.payout_hold). Unverified: not settled; an
  --    admin decides (admin_resolve_delivery) or the customer is refunded after
  --    trust.unverified_refund_after (trust/delivery.sql).
  if v_delivery = 'delivered' then
    perform private.settle_payment(v_session.id, now());
  end if;
  -- 5. emails: session_ended, and summary_delivered with notes           jobs/emails.sql
  perform private.emails_on_session_completed(v_session.id);
  -- 6. reviews: a delivered session may be reviewed                     reviews/prompts.sql
  if v_delivery = 'delivered' then
    perform private.reviews_on_session_delivered(v_session.id);
  end if;
  -- 7. journey: the summary window, a follow-up's thread, the CRM record  journey/hooks.sql
  --    and the recommendation rules of a delivered session
  perform private.journey_on_session_completed(v_session.id, v_delivery);

  perform private.lifecycle_actor_restore(v_prev_actor);
  return jsonb_build_object('session_id', v_session.id, 'status', 'completed', 'ended_at', v_session.ended_at,
                            'duration_minutes', v_session.duration_minutes, 'delivery', v_delivery);
end
$$;
revoke execute on function private.complete_session(uuid, text, text, timestamptz, text, text) from public;
grant execute on function private.complete_session(uuid, text, text, timestamptz, text, text) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Cancel: a session that has not ended, with its request and held time
-- ---------------------------------------------------------------------------------------------
-- Callers: public.cancel_request (customer), public.admin_force_end_session, the sweeps
-- (jobs/sweep_requests.sql), private.cancel_scheduled_session, private.expire_request below, and a
-- full refund of a session not yet started (private.request_refund in payments/refunds.sql, with
-- the actor of the refund). A session already ended is left as it is.
drop function if exists private.cancel_session(uuid, text, timestamptz);
create or replace function private.cancel_session(
  p_session_id uuid, p_reason text, p_now timestamptz default now(),
  p_actor text default null, p_audit_reason text default null
) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_prev_actor text[] := private.lifecycle_actor(p_actor, coalesce(p_audit_reason, p_reason));
  v_from public.session_status;
  v_intake uuid;
begin
  select status into v_from from public.sessions where id = p_session_id for update;
  if v_from is null or v_from in ('completed', 'cancelled') then
    perform private.lifecycle_actor_restore(v_prev_actor);
    return;  -- no such session, or it already ended: nothing to do
  end if;

  -- 1. core: → cancelled; the request is cancelled, open offers withdrawn, the held time released,
  --    the intake back to new
  perform private.lifecycle_allow(p_session_id);
  update public.sessions set status = 'cancelled', cancel_reason = p_reason, status_changed_at = p_now,
         ended_at = case when status = 'live' then p_now else ended_at end
  where id = p_session_id and status in ('pending', 'scheduled', 'waiting', 'live')
  returning intake_id into v_intake;
  update public.session_requests set status = 'cancelled', cancel_reason = p_reason, status_changed_at = p_now
  where session_id = p_session_id and status in ('pending', 'unattended', 'accepted');
  perform private.lifecycle_allow(null);
  update public.session_offers set status = 'withdrawn'
  where request_id in (select r.id from public.session_requests r where r.session_id = p_session_id)
    and status in ('offered', 'queued');
  perform private.release_commitment(p_session_id, 'released', p_now);
  update public.intakes set status = 'new' where id = v_intake and status in ('pending', 'in_progress');

  -- 2. rooms: delete the LiveKit room if it was waiting or live          rooms/timers.sql
  perform private.rooms_on_session_ended(p_session_id, v_from);
  -- 3. micro: the reserved micro minutes count nothing                    micro/caps.sql
  perform private.micro_settle(p_session_id, now());
  -- 4. payments: full refund if cancelled before a mechanic took it       payments/settlement.sql
  --    (from payments.auto_refund_from_statuses: pending, scheduled)
  perform private.payments_on_session_cancelled(p_session_id, v_from, now());
  -- 5. scheduling: a booked session: calendar SEQUENCE + 1, reminders     scheduling/reminders.sql
  --    dropped, booking_cancelled emails to both sides
  perform private.scheduling_on_session_cancelled(p_session_id, v_from);

  perform private.lifecycle_actor_restore(v_prev_actor);
end
$$;
revoke execute on function private.cancel_session(uuid, text, timestamptz, text, text) from public;
grant execute on function private.cancel_session(uuid, text, timestamptz, text, text) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Expire: nobody took the request within requests.expire_after
-- ---------------------------------------------------------------------------------------------
-- Caller: the expiry sweep (jobs/sweep_requests.sql). Returns whether the request expired.
create or replace function private.expire_request(
  p_session_id uuid, p_reason text, p_now timestamptz default now(),
  p_actor text default null, p_audit_reason text default null
) returns boolean
language plpgsql security definer set search_path = ''
as $$
declare
  v_prev_actor text[] := private.lifecycle_actor(p_actor, coalesce(p_audit_reason, p_reason));
  v_expired int;
begin
  -- 1. core: the request → expired
  perform private.lifecycle_allow(p_session_id);
  update public.session_requests set status = 'expired', status_changed_at = p_now
  where session_id = p_session_id and status in ('pending', 'unattended');
  get diagnostics v_expired = row_count;
  perform private.lifecycle_allow(null);

  if v_expired > 0 then
    -- 2. payments: a paid session is refunded in full; the refund       payments/settlement.sql
    --    cancels the session (private.cancel_session, same actor)
    perform private.payments_on_request_expired(p_session_id, now());
    -- 3. core: the session is cancelled (nothing left to do if the refund did it)
    perform private.cancel_session(p_session_id, p_reason, p_now);
  end if;

  perform private.lifecycle_actor_restore(v_prev_actor);
  return v_expired > 0;
end
$$;
revoke execute on function private.expire_request(uuid, text, timestamptz, text, text) from public;
grant execute on function private.expire_request(uuid, text, timestamptz, text, text) to service_role;
-- <<< functions_sql core/lifecycle.sql

-- >>> functions_sql journey/crm.sql sha256=ec939e52183d95577528b6f0a282cf9b65610125af3647e47b8cd7ee4d80c184
-- Journey: CRM interactions (docs/journey.md#interactions-and-the-funnel).

-- Records one interaction of a customer. Called by the database's own events (triggers and
-- lifecycle steps) and by the RPCs that record a view or a click.
create or replace function private.crm_record(
  p_customer_id uuid, p_kind text, p_occurred_at timestamptz, p_intake_id uuid, p_session_id uuid,
  p_subject_id uuid, p_data jsonb default '{}'
) returns void
language plpgsql security definer set search_path = ''
as $$
begin
  if p_customer_id is null then
    return;
  end if;
  insert into public.crm_interactions (customer_id, kind, occurred_at, intake_id, session_id, subject_id, data)
  values (p_customer_id, p_kind, coalesce(p_occurred_at, now()), p_intake_id, p_session_id, p_subject_id,
          coalesce(p_data, '{}'));
end
$$;
revoke execute on function private.crm_record(uuid, text, timestamptz, uuid, uuid, uuid, jsonb) from public;
grant execute on function private.crm_record(uuid, text, timestamptz, uuid, uuid, uuid, jsonb) to service_role;
-- <<< functions_sql journey/crm.sql

-- >>> functions_sql journey/follow_ups.sql sha256=0dc20f6ab92cb6b4e126a0964bd58f6b4eeca22fff1dc8118d20ff4701d96494
-- Journey: follow-up questions (docs/journey.md#follow-up-questions).

-- Lifecycle step (journey/hooks.sql): a completed follow-up session.
create or replace function private.follow_ups_on_session_completed(p_session_id uuid, p_delivery text) returns void
language plpgsql security definer set search_path = ''
as $$
begin
  null;
end
$$;
revoke execute on function private.follow_ups_on_session_completed(uuid, text) from public;
grant execute on function private.follow_ups_on_session_completed(uuid, text) to service_role;
-- <<< functions_sql journey/follow_ups.sql

-- >>> functions_sql journey/hooks.sql sha256=99325e75fecf99286655b1520e96ed28be92671201653795c6fc543383152cad
-- Journey: the lifecycle steps of the customer's journey around a session (docs/journey.md).
-- Each part of the journey has its own file; these two hooks call them in order.

-- Lifecycle step (core/lifecycle.sql, complete): the summary's window opens (summaries.sql), a
-- follow-up completes its parent's thread (follow_ups.sql), and a delivered session is counted
-- (crm.sql) and evaluated by the recommendation rules (recommendations.sql).
create or replace function private.journey_on_session_completed(p_session_id uuid, p_delivery text) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_s public.sessions;
begin
  select * into v_s from public.sessions where id = p_session_id;
  perform private.summaries_on_session_completed(p_session_id, p_delivery);
  perform private.follow_ups_on_session_completed(p_session_id, p_delivery);
  if p_delivery = 'delivered' then
    perform private.crm_record(v_s.customer_id, 'session_delivered', now(), v_s.intake_id, v_s.id, null, '{}');
    perform private.recommendations_evaluate(p_session_id, 'session_delivered');
  end if;
end
$$;
revoke execute on function private.journey_on_session_completed(uuid, text) from public;
grant execute on function private.journey_on_session_completed(uuid, text) to service_role;

-- Called by submit_summary (summaries.sql) once a version is submitted: the rules that read the
-- summary (urgency, parts) are evaluated again.
create or replace function private.journey_on_summary_submitted(p_session_id uuid, p_summary_id uuid) returns void
language plpgsql security definer set search_path = ''
as $$
begin
  perform private.recommendations_evaluate(p_session_id, 'summary_submitted');
end
$$;
revoke execute on function private.journey_on_summary_submitted(uuid, uuid) from public;
grant execute on function private.journey_on_summary_submitted(uuid, uuid) to service_role;
-- <<< functions_sql journey/hooks.sql

-- >>> functions_sql journey/recommendations.sql sha256=49299c3c98aaf0814ee18a9d740b98eef12d3fb3acdbabfd9cfc45534aa0a179
-- Journey: recommendations (docs/journey.md#recommendations).

-- Evaluates the recommendation rules of a session at an event (session_delivered,
-- summary_submitted).
create or replace function private.recommendations_evaluate(p_session_id uuid, p_event text) returns void
language plpgsql security definer set search_path = ''
as $$
begin
  null;
end
$$;
revoke execute on function private.recommendations_evaluate(uuid, text) from public;
grant execute on function private.recommendations_evaluate(uuid, text) to service_role;
-- <<< functions_sql journey/recommendations.sql

-- >>> functions_sql journey/summaries.sql sha256=7949a6828874d1709221438e64171b670407f64b334a16f57bb49313a5c41491
-- Journey: the mechanic's structured summary (docs/journey.md#structured-summary).

-- Lifecycle step (journey/hooks.sql): a completed session's summary window opens.
create or replace function private.summaries_on_session_completed(p_session_id uuid, p_delivery text) returns void
language plpgsql security definer set search_path = ''
as $$
begin
  null;
end
$$;
revoke execute on function private.summaries_on_session_completed(uuid, text) from public;
grant execute on function private.summaries_on_session_completed(uuid, text) to service_role;
-- <<< functions_sql journey/summaries.sql

reset check_function_bodies;

-- functions_sql-manifest: the state of supabase/functions_sql/ after this migration
-- functions_sql-manifest core/admin.sql sha256=3ffcd3451d9f9aa0ebd9a8065c10592403dd1886d07e32da52a70c4f31ce01d0
-- functions_sql-manifest core/broadcasts.sql sha256=c93578c48e0d8c0c565a87dcb05642e2db63a0c8f168c31dee9dff2d1c798cec
-- functions_sql-manifest core/directory.sql sha256=97061e15165f3460c9f89023ee7162fa3b68d758e42d9d514665d237c6eb604d
-- functions_sql-manifest core/errors.sql sha256=3162f074770469a2c8f8cc6e582405853f74e510e71a3961234876f8a544d9d2
-- functions_sql-manifest core/helpers.sql sha256=fa1872c37c33a27b6875c41ae6e7c365f5d0a366926f2c758b43d0f067205e2e
-- functions_sql-manifest core/lifecycle.sql sha256=af8ff6dcf1d6d41c4f2169fe0438dcfd66cc4ea5ba19ef81ffd335afe79922d0
-- functions_sql-manifest core/rpc.sql sha256=ab9059793859f4a0aa99e39153809a125acc486aa8ba9bd6475725fc83334ffa
-- functions_sql-manifest core/sessions.sql sha256=34d1c57c543b4af7a31971a73c346d28281f718ba53fc1ae184a9f1a8bf931f1
-- functions_sql-manifest core/signup.sql sha256=c1eaadc2d934df2bed3300c53885004a45fe59fb472bdbece20a33b0f704bd17
-- functions_sql-manifest core/transitions.sql sha256=098fdf6854df746cfb9fab11e2976507138ad996dc669984166c96a30e18f979
-- functions_sql-manifest jobs/admin.sql sha256=a431c8c37cae7835a803b49b41130f31e66f3e6dc2910f9e6f350a8b69944b13
-- functions_sql-manifest jobs/emails.sql sha256=db635bd482915c74b6fcdf0a8cc48a20726515e7cdb0adf29ae02a7cf96d60ab
-- functions_sql-manifest jobs/nudges.sql sha256=2c190ede7b490ef8f2ff1cd61d1b4a4b5a7c9222e325f13f0cee406020ebb121
-- functions_sql-manifest jobs/outbox.sql sha256=2b71c342ff6ea91cdda0c0de9cb671b3d678768aabd67044c635de6c5b65ba86
-- functions_sql-manifest jobs/runs.sql sha256=22697585fd787eecd46440d55f7e68b6096ccbffae106360d2eca48014e3fd98
-- functions_sql-manifest jobs/schedules.sql sha256=7fd96d235d3fdbf1629e27457c32f256036082972cfcd47bda8dc008df14baf8
-- functions_sql-manifest jobs/sweep_requests.sql sha256=b71a7b97d2dec4579abcbd95477cd30cdcb2e1eb45123abd343bd2aaf4b2d948
-- functions_sql-manifest journey/crm.sql sha256=ec939e52183d95577528b6f0a282cf9b65610125af3647e47b8cd7ee4d80c184
-- functions_sql-manifest journey/follow_ups.sql sha256=0dc20f6ab92cb6b4e126a0964bd58f6b4eeca22fff1dc8118d20ff4701d96494
-- functions_sql-manifest journey/hooks.sql sha256=99325e75fecf99286655b1520e96ed28be92671201653795c6fc543383152cad
-- functions_sql-manifest journey/recommendations.sql sha256=49299c3c98aaf0814ee18a9d740b98eef12d3fb3acdbabfd9cfc45534aa0a179
-- functions_sql-manifest journey/summaries.sql sha256=7949a6828874d1709221438e64171b670407f64b334a16f57bb49313a5c41491
-- functions_sql-manifest matching/eligibility.sql sha256=36c72d1964b3eefc61cdaae0f878816a7865860aadcee9a881b7ba82d8b1b12f
-- functions_sql-manifest matching/keywords.sql sha256=152d4fe0de3480e326b93190271c153a66f37f4f4cbf3b64bcc90821769a37a6
-- functions_sql-manifest matching/listing.sql sha256=3fe126794fb7ae8aeaac46108933767ecec0f7430e52b0c0fdf954eeeafeb649
-- functions_sql-manifest matching/metrics.sql sha256=16e0bfa047e423ebe70c19b3ca3e25ca809a7c0649361b46516eccb088b98145
-- functions_sql-manifest matching/presence.sql sha256=421df5980727f44db43fb1f9d2d00e506c103f9cf5a1c41dc5bc75ed7ebdfac7
-- functions_sql-manifest matching/ranking.sql sha256=79691d024eea19b79204a38924e802489e5bcd816e4517eec8bb57b87eb0be94
-- functions_sql-manifest matching/routing.sql sha256=b3a2f3e4e7eeed9b1c5a4d10136809fb13dd99f0d72fa5018c2384fc8a52a7cf
-- functions_sql-manifest micro/caps.sql sha256=fdb53cb5189eed36f0ef794df0db47f8211a1d85db656a09f976cd5fa0555de6
-- functions_sql-manifest micro/clock.sql sha256=32f42427523e5c8be8e9fef6f730b3c8c24fa1054af8a6d2c488b821b12782ca
-- functions_sql-manifest micro/dashboards.sql sha256=1d84b7005d832d8d31bd90af0f51609bb0835cad1c1adb80b551238a8e1d3fee
-- functions_sql-manifest micro/settings.sql sha256=356a78efd80f0d129aee86690203858fd1eb41951ee61f292cd27c6c455a53b6
-- functions_sql-manifest payments/admin.sql sha256=1e117ff190427ab5d40ab22de5fc00ab39dc4e8c7ae9c0f8063d3463907e2f1a
-- functions_sql-manifest payments/checkout.sql sha256=6b2edd65f5b39f3aa6a8673a415c393753c9fd18a44e634ce746636ae401f384
-- functions_sql-manifest payments/connect.sql sha256=a8b79815e5f06ce6f00f3f5f82767bb9579e5e9c5f750338fc5c905c866b306d
-- functions_sql-manifest payments/credit.sql sha256=46ca316d088673f86ba57da14e97a14d761a4570debc1f3ad5d74e2538deb54f
-- functions_sql-manifest payments/helpers.sql sha256=564335851c5012a83791aa07b04ab1e2be627799d5b7fb91e995d57776037964
-- functions_sql-manifest payments/integrity.sql sha256=6c2bba7a49c6003ae582231db463a52ae56cde445b3c027d38edb86ffe550532
-- functions_sql-manifest payments/refunds.sql sha256=cae62e292095da8bea25a5efa26fee737f917ddad64674940e764dbdd029a64f
-- functions_sql-manifest payments/settlement.sql sha256=61eab335038603d3c5ca74c4d5482699ff096571f76b57d4ec1be1fe4f84f015
-- functions_sql-manifest payments/stripe_events.sql sha256=19f646e133262b47e99dbe1c8ff74e408899abaee620c4a62c9b2ea91c099792
-- functions_sql-manifest payments/stripe_worker.sql sha256=7a1794a993228bf0823b97a16ae0d8c7460154642cef84408597c4004e8603ae
-- functions_sql-manifest reviews/prompts.sql sha256=e3c52363528fd28863d3b82dba2a77c539334fee239d433a2c08860bc8182791
-- functions_sql-manifest reviews/public_view.sql sha256=3163f057402af1cc7203ef9ca04b483045d3e1e48322d23e5b7deb6c30c03414
-- functions_sql-manifest reviews/reputation.sql sha256=94a660258d69a38250c8f5efcd36415d5d0e8347bec1a6c772634db1fe37054a
-- functions_sql-manifest reviews/reviews.sql sha256=acb29b4bdf4a2cccae60ad261d0aebd3b2c0ec8dd85824ac9060ecc5d46cad36
-- functions_sql-manifest rooms/access.sql sha256=1b63c186ad327a61c6f7c2eea4436148cd145987bec6902fa111b45b7639ae8f
-- functions_sql-manifest rooms/extensions.sql sha256=ecdb7236fec9d57e29a438797584ac830db6c0cf66795c8b03df65da3635e495
-- functions_sql-manifest rooms/livekit_events.sql sha256=cc2b9fea2937b577fdb85e91e226156f3d7dd339706f5a61c3892c359d9a4e4a
-- functions_sql-manifest rooms/timers.sql sha256=5265ead1f8b4bfd63c4236d6fc0d07afe4bc0053d21060682f6d557b921261c8
-- functions_sql-manifest scheduling/availability_rpc.sql sha256=fa16f1151e8b6ae87c87d4803aa9ca30ae76b2fc0e9eae062b18db3b80635acd
-- functions_sql-manifest scheduling/booking_rpc.sql sha256=fd78b54227728a48cd2ea95a1fb64e3d5389e40fdd95ea5070ff511d77f5e4f4
-- functions_sql-manifest scheduling/calendar.sql sha256=6100fcc60a2a22bf1e09c2b682833fb40ba154ad5e9064b7c0bcd8c53b3a8324
-- functions_sql-manifest scheduling/changes.sql sha256=aefc0baa5011c8d6243dc426251306b273c06e0e3b8cfb8fc629d5c258ae32c9
-- functions_sql-manifest scheduling/committed_time.sql sha256=ddd38c89b02e59607f7f40768eae0c22b177f351729f61bf8b9c6c5b3784f553
-- functions_sql-manifest scheduling/holds.sql sha256=80e66dfab8e5e885da721fd24e96a859f0414b15c115b629c3713175da08cd35
-- functions_sql-manifest scheduling/jobs.sql sha256=0e6312d573231b426c54900221c5b0ecbf53894ff7a9f634acf5d59fec14b64a
-- functions_sql-manifest scheduling/open_time.sql sha256=4a300a2863905f3ba4bac94f8c68b972ce223b96c2d83e3c9b53abc4b0d02805
-- functions_sql-manifest scheduling/reminders.sql sha256=025401df24f13a2de6d28c5ef71abd2134b287a87e25f0a98b395e69bc743734
-- functions_sql-manifest scheduling/rules.sql sha256=77e8204836c14debf06ee1933b26252a7fee4d3089fe7720ddf73d0adbed1af3
-- functions_sql-manifest trust/contact.sql sha256=b7992cc67d68723ea04b1986c3ee163f46210619cb7fbc5fd973b0b0f80f323c
-- functions_sql-manifest trust/delivery.sql sha256=13cf9a7795fabfc1598e9b01f993e1352becf53f8f60d52481d37361cbf191ad
-- functions_sql-manifest trust/limits.sql sha256=f8317282989aefc92e368510883453bceea024dbaaae3d9836d326ad0a5328b6
-- functions_sql-manifest trust/pricing.sql sha256=3075961d25ecc4ccd99e6bbf25ad3012a836d5697935c502ed26095ec7359950
-- functions_sql-manifest trust/rate_limit.sql sha256=dc51a19ec7cff8e1b01d341ec68e6f3c11de7c17d23ef7185b0b0c79850bcb2c
-- functions_sql-manifest trust/standing.sql sha256=9bd4e9285f6eaef814fee4f492354878c824fe6cd88f0c76005eab6032938f80
-- functions_sql-manifest trust/waiver.sql sha256=e55e17a34963e554f36bec304c2212fe7765268192081a2d2502a28c9ca38b41
-- functions_sql-manifest workshops/appointments.sql sha256=5f6530bed3befb05a76302182e756dc65303c345cb474afd3fe6db59db4b7273
-- functions_sql-manifest workshops/appointments_notify.sql sha256=50c518c61b4fc52577450080ed5407dd64a20d205da2f504932b11d47cc228cb
-- functions_sql-manifest workshops/appointments_rpc.sql sha256=f88d70f5575415327a86ef0017bceacc6b7454be95e3983d1e847d0552acaee6
-- functions_sql-manifest workshops/directory.sql sha256=b4ca0b3283f5e9f382ac3aa61acf49ff546d43813a20baccbd4944bec3c7f93b
-- functions_sql-manifest workshops/dispatch.sql sha256=db61193624f16d01338b25aacc63226c1e4a0a26de073f1545f5b6f4ae96b2a4
-- functions_sql-manifest workshops/hooks.sql sha256=99e01f958c1f3ab8d67144edc06dd9df28f576f36731ea05f68d45e364ae57be
-- functions_sql-manifest workshops/onboarding.sql sha256=e87adb002d0f385a05e4eb6d5afcfb9be7709db45545929d201c575f507b8cb7
-- functions_sql-manifest workshops/referral.sql sha256=6bada6ae6e424f43ccae0e5cfeb7f479c054fe63e09c36d0d9a5fa91026b5f75
-- functions_sql-manifest workshops/roster.sql sha256=54b139b2071afad60fa701efeddf2dba296ddb2162f689aba18640a68036f187
-- functions_sql-manifest workshops/specialists.sql sha256=8005a20dd10a143a3921224766e65c28f4c8d57d9e3402851b96556e60b9c291
