-- Jobs: the admin view of the job queue (private.outbox) and a retry.

-- ---------------------------------------------------------------------------------------------
-- Admin: the outbox (dead letters) and a retry
-- ---------------------------------------------------------------------------------------------
create or replace function public.admin_outbox(p_status text default 'dead', p_limit int default 100)
returns table (id bigint, kind text, dedupe_key text, status text, attempts int, next_attempt_at timestamptz,
               last_error text, created_at timestamptz, sent_at timestamptz)
language plpgsql stable security definer set search_path = ''
as $$
begin
  perform private.require_admin();
  if p_status is null or p_status not in ('pending', 'processing', 'sent', 'dead', 'skipped')
     or p_limit is null or p_limit < 1 or p_limit > 1000 then
    perform private.raise_error('invalid_input', 'p_status must be pending/processing/sent/dead/skipped; p_limit 1..1000');
  end if;
  return query
  select o.id, o.kind, o.dedupe_key, o.status::text, o.attempts, o.next_attempt_at, o.last_error, o.created_at,
         o.sent_at
  from private.outbox o where o.status::text = p_status
  order by o.id desc limit p_limit;
end
$$;
revoke execute on function public.admin_outbox(text, int) from public, anon;
grant execute on function public.admin_outbox(text, int) to authenticated, service_role;

create or replace function public.admin_retry_outbox(p_id bigint) returns jsonb
language plpgsql security definer set search_path = ''
as $$
begin
  perform private.require_admin();
  perform private.require_arg('p_id', p_id);
  -- a kind with a domain row (a refund, a payout, a reversal) ended that row when its job died:
  -- it is retried through the row (status back to 'queued' puts its job back in line)
  if exists (select 1 from private.outbox o join private.job_kinds k on k.kind = o.kind
             where o.id = p_id and o.status = 'dead' and k.on_failure is not null) then
    perform private.raise_error('conflict', 'this job is retried by putting its domain row back in queued');
  end if;
  update private.outbox set status = 'pending', attempts = 0, next_attempt_at = now(), last_error = null,
         locked_until = null
  where id = p_id and status = 'dead';
  if not found then
    if exists (select 1 from private.outbox where id = p_id) then
      perform private.raise_error('conflict', 'only a dead-lettered row can be retried');
    end if;
    perform private.raise_error('not_found', 'no such outbox row');
  end if;
  return jsonb_build_object('id', p_id, 'status', 'pending');
end
$$;
revoke execute on function public.admin_retry_outbox(bigint) from public, anon;
grant execute on function public.admin_retry_outbox(bigint) to authenticated, service_role;

