-- Jobs: the one queue of side effects (enqueue, claim, settle, dead letter). Each kind's retry
-- policy is a row of private.job_kinds; shared/worker.py runs the handlers.

-- ---------------------------------------------------------------------------------------------
-- Enqueue
-- ---------------------------------------------------------------------------------------------
-- The registered kind (unknown_job_kind otherwise); an email job's template must be registered too.
create or replace function private.check_job(p_kind text, p_payload jsonb) returns void
language plpgsql stable security definer set search_path = ''
as $$
begin
  if p_kind is null or not exists (select 1 from private.job_kinds k where k.kind = p_kind) then
    perform private.raise_error('unknown_job_kind', format('no job kind %L is registered', p_kind));
  end if;
  if p_kind = 'email.send' and not exists (select 1 from private.email_templates t
                                            where t.name = p_payload ->> 'template') then
    perform private.raise_error('unknown_email_template',
                                format('no email template %L is registered', p_payload ->> 'template'));
  end if;
end
$$;
revoke execute on function private.check_job(text, jsonb) from public;
grant execute on function private.check_job(text, jsonb) to service_role;

-- Adds a side effect once, in the caller's transaction: a second enqueue with the same dedupe key
-- is a no-op (whatever the first one's state). Returns the id (of the new row, or the existing one).
create or replace function private.enqueue(
  p_kind text, p_dedupe_key text, p_payload jsonb, p_not_before timestamptz default now()
) returns bigint
language plpgsql security definer set search_path = ''
as $$
declare
  v_id bigint;
begin
  perform private.check_job(p_kind, p_payload);
  insert into private.outbox (kind, dedupe_key, payload, next_attempt_at)
  values (p_kind, p_dedupe_key, p_payload, coalesce(p_not_before, now()))
  on conflict (dedupe_key) do nothing
  returning id into v_id;
  if v_id is null then
    select id into v_id from private.outbox where dedupe_key = p_dedupe_key;
  end if;
  return v_id;
end
$$;
revoke execute on function private.enqueue(text, text, jsonb, timestamptz) from public;
grant execute on function private.enqueue(text, text, jsonb, timestamptz) to service_role;

-- Like enqueue, but a finished job (sent or dead) with this key is put back in line with fresh
-- attempts: for work whose domain row can become due again (a payout queued once more, an account
-- to refetch again). A job pending or in progress is left as it is.
create or replace function private.enqueue_again(
  p_kind text, p_dedupe_key text, p_payload jsonb, p_not_before timestamptz default now()
) returns bigint
language plpgsql security definer set search_path = ''
as $$
declare
  v_id bigint;
begin
  perform private.check_job(p_kind, p_payload);
  insert into private.outbox as o (kind, dedupe_key, payload, next_attempt_at)
  values (p_kind, p_dedupe_key, p_payload, coalesce(p_not_before, now()))
  on conflict (dedupe_key) do update
    set status = 'pending', attempts = 0, next_attempt_at = excluded.next_attempt_at, payload = excluded.payload,
        locked_until = null, last_error = null, sent_at = null
    where o.status in ('sent', 'dead')
  returning id into v_id;
  if v_id is null then
    select id into v_id from private.outbox where dedupe_key = p_dedupe_key;
  end if;
  return v_id;
end
$$;
revoke execute on function private.enqueue_again(text, text, jsonb, timestamptz) from public;
grant execute on function private.enqueue_again(text, text, jsonb, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Claim
-- ---------------------------------------------------------------------------------------------
-- Up to p_limit due rows of the given kinds (all when null): pending and due, or processing whose
-- lease ran out after a crash. Skip locked, so concurrent runs never take the same row; each row
-- is leased for its kind's `lease`.
create or replace function private.outbox_claim(p_now timestamptz, p_limit int, p_kinds text[] default null)
returns setof private.outbox
language sql security definer set search_path = ''
as $$
  update private.outbox o
  set status = 'processing', attempts = o.attempts + 1, locked_until = p_now + k.lease
  from private.job_kinds k
  where k.kind = o.kind
    and o.id in (
      select x.id from private.outbox x
      where ((x.status = 'pending' and x.next_attempt_at <= p_now)
             or (x.status = 'processing' and x.locked_until <= p_now))
        and (p_kinds is null or x.kind = any (p_kinds))
      order by x.next_attempt_at, x.id
      limit greatest(p_limit, 0)
      for update of x skip locked)
  returning o.*
$$;
revoke execute on function private.outbox_claim(timestamptz, int, text[]) from public;
grant execute on function private.outbox_claim(timestamptz, int, text[]) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Settle
-- ---------------------------------------------------------------------------------------------
-- When a failed job is tried again: base × 2^(attempts−1), at most max_backoff.
create or replace function private.job_retry_at(p_kind text, p_attempts int, p_now timestamptz) returns timestamptz
language sql stable security definer set search_path = ''
as $$
  select p_now + least(coalesce(k.max_backoff, k.base_backoff * power(2, 20)),
                       k.base_backoff * power(2, least(greatest(p_attempts, 1) - 1, 20)))
  from private.job_kinds k where k.kind = p_kind
$$;
revoke execute on function private.job_retry_at(text, int, timestamptz) from public;
grant execute on function private.job_retry_at(text, int, timestamptz) to service_role;

-- Records the outcome of one attempt: sent; or failed — tried again after the kind's backoff, or
-- dead-lettered after its max_attempts. A failure also calls the kind's on_failure hook in this
-- transaction (p_dead tells it whether this was the last attempt), so a domain row goes back in
-- line or ends failed together with its job. A row no longer processing is left alone.
create or replace function private.outbox_settle(p_id bigint, p_ok boolean, p_error text,
                                                 p_now timestamptz default now())
returns private.outbox_status
language plpgsql security definer set search_path = ''
as $$
declare
  v_row private.outbox;
  v_kind private.job_kinds;
  v_status private.outbox_status;
begin
  select * into v_row from private.outbox where id = p_id for update;
  if not found or v_row.status <> 'processing' then
    return v_row.status;
  end if;
  if p_ok then
    update private.outbox set status = 'sent', sent_at = p_now, locked_until = null, last_error = null
    where id = p_id;
    return 'sent';
  end if;
  select * into v_kind from private.job_kinds where kind = v_row.kind;
  v_status := case when v_row.attempts >= v_kind.max_attempts then 'dead' else 'pending' end;
  update private.outbox
  set status = v_status, locked_until = null, last_error = left(p_error, 2000),
      next_attempt_at = case when v_status = 'pending' then private.job_retry_at(v_row.kind, v_row.attempts, p_now)
                             else next_attempt_at end
  where id = p_id;
  if v_kind.on_failure is not null then
    execute format('select %s($1, $2, $3, $4)', v_kind.on_failure::regproc)
      using v_row, left(p_error, 2000), v_status = 'dead', p_now;
  end if;
  return v_status;
end
$$;
revoke execute on function private.outbox_settle(bigint, boolean, text, timestamptz) from public;
grant execute on function private.outbox_settle(bigint, boolean, text, timestamptz) to service_role;

-- A job that cannot apply here (its provider is not configured): ended as `skipped`, once, with
-- the reason; no retry and no on_failure hook (nothing failed).
create or replace function private.outbox_skip(p_id bigint, p_reason text, p_now timestamptz default now())
returns private.outbox_status
language plpgsql security definer set search_path = ''
as $$
begin
  update private.outbox set status = 'skipped', sent_at = p_now, locked_until = null, last_error = left(p_reason, 2000)
  where id = p_id and status = 'processing';
  return (select o.status from private.outbox o where o.id = p_id);
end
$$;
revoke execute on function private.outbox_skip(bigint, text, timestamptz) from public;
grant execute on function private.outbox_skip(bigint, text, timestamptz) to service_role;
