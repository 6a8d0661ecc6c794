-- Jobs: the outbox of side effects (enqueue, claim, settle).

-- ---------------------------------------------------------------------------------------------
-- Outbox
-- ---------------------------------------------------------------------------------------------
-- Adds a side effect once: a second enqueue with the same dedupe key is a no-op. Returns the id
-- (of the new row, or of the existing one).
create or replace function private.enqueue(
  p_kind text, p_dedupe_key text, p_payload jsonb, p_not_before timestamptz default now()
) returns bigint
language plpgsql security definer set search_path = ''
as $$
declare
  v_id bigint;
begin
  insert into private.outbox (kind, dedupe_key, payload, next_attempt_at)
  values (p_kind, p_dedupe_key, p_payload, p_not_before)
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

-- Claims up to p_limit due rows (pending, or processing whose lease ran out after a crash) for
-- one delivery run: skip locked, so concurrent runs never take the same row.
create or replace function private.outbox_claim(p_now timestamptz, p_limit int, p_kinds text[] default null)
returns setof private.outbox
language sql security definer set search_path = ''
as $$
  update private.outbox o
  set status = 'processing', attempts = o.attempts + 1,
      locked_until = p_now + private.setting_interval('outbox.lease')
  where o.id in (
    select x.id from private.outbox x
    where ((x.status = 'pending' and x.next_attempt_at <= p_now)
           or (x.status = 'processing' and x.locked_until <= p_now))
      and (p_kinds is null or x.kind = any (p_kinds))
    order by x.next_attempt_at, x.id
    limit p_limit
    for update skip locked)
  returning o.*
$$;
revoke execute on function private.outbox_claim(timestamptz, int, text[]) from public;
grant execute on function private.outbox_claim(timestamptz, int, text[]) to service_role;

-- Records the outcome of one delivery: sent, or failed (retried with exponential backoff, then
-- dead-lettered after outbox.max_attempts).
create or replace function private.outbox_settle(p_id bigint, p_ok boolean, p_error text, p_now timestamptz)
returns private.outbox_status
language plpgsql security definer set search_path = ''
as $$
declare
  v_row private.outbox;
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
  if v_row.attempts >= private.setting_int('outbox.max_attempts') then
    update private.outbox set status = 'dead', locked_until = null, last_error = left(p_error, 2000) where id = p_id;
    return 'dead';
  end if;
  update private.outbox
  set status = 'pending', locked_until = null, last_error = left(p_error, 2000),
      next_attempt_at = p_now + private.setting_interval('outbox.base_backoff') * power(2, v_row.attempts - 1)
  where id = p_id;
  return 'pending';
end
$$;
revoke execute on function private.outbox_settle(bigint, boolean, text, timestamptz) from public;
grant execute on function private.outbox_settle(bigint, boolean, text, timestamptz) to service_role;
