-- Journey: delivery events of our email (docs/journey.md, "Delivery events"). Resend's signed
-- webhook events (verified by functions/webhooks/resend.py) are stored once in
-- private.resend_events and applied to the email they name (private.email_deliveries, recorded by
-- the sender with the id Resend gave it). A hard bounce or a complaint suppresses the address for
-- marketing email (private.email_suppressions); transactional email still goes.

-- ---------------------------------------------------------------------------------------------
-- Statuses and their order
-- ---------------------------------------------------------------------------------------------
-- The order a delivery's status only moves forward in. Events arrive in any order and more than
-- once, so the status is the furthest one reached, never the last one received: a late
-- `delivered` after `bounced` leaves it bounced; a complaint (which follows a delivery) is the
-- end. Each event still stamps its own time (first occurrence) whatever the status.
create or replace function private.email_status_rank(p_status text) returns int
language sql immutable parallel safe set search_path = ''
as $$
  select case p_status
    when 'sent' then 0
    when 'delivery_delayed' then 1
    when 'delivered' then 2
    when 'bounced' then 3
    when 'complained' then 4
  end
$$;
revoke execute on function private.email_status_rank(text) from public;
grant execute on function private.email_status_rank(text) to service_role;

-- An address as suppressions store it.
create or replace function private.email_address_key(p_address text) returns text
language sql immutable parallel safe set search_path = ''
as $$
  select lower(btrim(p_address))
$$;
revoke execute on function private.email_address_key(text) from public;
grant execute on function private.email_address_key(text) to service_role;

-- The active suppression of an address ({reason, at}), or null. Read by the sender at delivery
-- time for every non-transactional email.
create or replace function private.email_suppression(p_address text) returns jsonb
language sql stable security definer set search_path = ''
as $$
  select jsonb_build_object('reason', s.reason, 'at', s.created_at)
  from private.email_suppressions s
  where s.address = private.email_address_key(p_address) and s.lifted_at is null
$$;
revoke execute on function private.email_suppression(text) from public;
grant execute on function private.email_suppression(text) to service_role;

-- A Resend bounce is hard when its type says so (Resend passes on the receiving side's
-- classification: `Permanent`; anything else — `Transient`, `Undetermined`, none — is soft).
create or replace function private.resend_bounce_is_hard(p_bounce jsonb) returns boolean
language sql immutable parallel safe set search_path = ''
as $$
  select jsonb_typeof(p_bounce) = 'object' and jsonb_typeof(p_bounce -> 'type') = 'string'
         and lower(p_bounce ->> 'type') in ('permanent', 'hard')
$$;
revoke execute on function private.resend_bounce_is_hard(jsonb) from public;
grant execute on function private.resend_bounce_is_hard(jsonb) to service_role;

-- The event's created_at as a time; null unless an ISO 8601 timestamp.
create or replace function private.resend_event_time(p_value jsonb) returns timestamptz
language plpgsql immutable set search_path = ''
as $$
begin
  if jsonb_typeof(p_value) <> 'string' or char_length(p_value #>> '{}') > 64
     or (p_value #>> '{}') !~ '^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}(:?\d{2})?)?$' then
    return null;
  end if;
  return (p_value #>> '{}')::timestamptz;
exception when others then
  return null;
end
$$;
revoke execute on function private.resend_event_time(jsonb) from public;
grant execute on function private.resend_event_time(jsonb) to service_role;

-- ---------------------------------------------------------------------------------------------
-- One event's effect on its email
-- ---------------------------------------------------------------------------------------------
create or replace function private.apply_resend_event(p_event_id text, p_type text, p_data jsonb,
                                                      p_at timestamptz)
returns text
language plpgsql security definer set search_path = ''
as $$
declare
  v_d private.email_deliveries;
  v_status text;
  v_reason text;
begin
  v_status := case p_type
    when 'email.sent' then 'sent'
    when 'email.delivery_delayed' then 'delivery_delayed'
    when 'email.delivered' then 'delivered'
    when 'email.bounced' then 'bounced'
    when 'email.complained' then 'complained'
  end;
  if v_status is null then
    return 'ignored';
  end if;
  select * into v_d from private.email_deliveries where resend_id = p_data ->> 'email_id' for update;
  if not found then
    return 'unknown_email';
  end if;
  update private.email_deliveries
  set status = case when private.email_status_rank(v_status) > private.email_status_rank(status)
                    then v_status else status end,
      bounce_type = case when v_status = 'bounced' and bounced_at is null
                         then left(p_data #>> '{bounce,type}', 100) else bounce_type end,
      delivery_delayed_at = case when v_status = 'delivery_delayed' then least(delivery_delayed_at, p_at)
                                 else delivery_delayed_at end,
      delivered_at = case when v_status = 'delivered' then least(delivered_at, p_at) else delivered_at end,
      bounced_at = case when v_status = 'bounced' then least(bounced_at, p_at) else bounced_at end,
      complained_at = case when v_status = 'complained' then least(complained_at, p_at) else complained_at end,
      updated_at = now()
  where id = v_d.id;
  -- a hard bounce or a complaint: no more marketing email to that address (one active row)
  v_reason := case
    when v_status = 'complained' then 'complaint'
    when v_status = 'bounced' and private.resend_bounce_is_hard(p_data -> 'bounce') then 'hard_bounce'
  end;
  if v_reason is not null then
    insert into private.email_suppressions (address, reason, resend_event_id, delivery_id, created_at)
    values (private.email_address_key(v_d.to_address), v_reason, p_event_id, v_d.id, p_at)
    on conflict (address) where lifted_at is null do nothing;
  end if;
  if v_status = 'sent' and v_d.status = 'sent' then
    return 'no_change';
  end if;
  return 'applied';
end
$$;
revoke execute on function private.apply_resend_event(text, text, jsonb, timestamptz) from public;
grant execute on function private.apply_resend_event(text, text, jsonb, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- The webhook's one transaction: check the event → ledger row (insert on conflict do nothing) →
-- lock it → a processed event is a duplicate (nothing changes) → else apply it and mark it
-- processed. Events of one email serialize on it, with the sender's record of that email.
-- ---------------------------------------------------------------------------------------------
create or replace function private.handle_resend_event(p_id text, p_event jsonb, p_now timestamptz default now())
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_type text;
  v_data jsonb;
  v_email_id text;
  v_created timestamptz;
  v_row private.resend_events;
  v_outcome text;
begin
  if p_id is null or p_id !~ '^[A-Za-z0-9_.:-]{1,255}$' then
    perform private.raise_error('invalid_input', 'the svix-id header is not an event id');
  end if;
  if p_event is null or jsonb_typeof(p_event) <> 'object' then
    perform private.raise_error('invalid_input', 'the event must be a JSON object');
  end if;
  if jsonb_typeof(p_event -> 'type') is distinct from 'string'
     or char_length(p_event ->> 'type') not between 1 and 200 then
    perform private.raise_error('invalid_input', 'type: must be a string of 1 to 200 characters');
  end if;
  v_type := p_event ->> 'type';
  v_created := private.resend_event_time(p_event -> 'created_at');
  if v_created is null then
    perform private.raise_error('invalid_input', 'created_at: must be an ISO 8601 timestamp');
  end if;
  v_data := p_event -> 'data';
  if jsonb_typeof(v_data) is distinct from 'object' then
    perform private.raise_error('invalid_input', 'data: must be an object');
  end if;
  if v_type like 'email.%' then
    if jsonb_typeof(v_data -> 'email_id') is distinct from 'string'
       or char_length(v_data ->> 'email_id') not between 1 and 200 then
      perform private.raise_error('invalid_input', 'data.email_id: must be a string of 1 to 200 characters');
    end if;
    v_email_id := v_data ->> 'email_id';
    if v_data ? 'bounce' and jsonb_typeof(v_data -> 'bounce') not in ('object', 'null') then
      perform private.raise_error('invalid_input', 'data.bounce: must be an object');
    end if;
    perform pg_advisory_xact_lock(hashtextextended('autodoctor.resend_email:' || v_email_id, 0));
  end if;
  insert into private.resend_events (id, type, email_id, created, payload, received_at)
  values (p_id, v_type, v_email_id, v_created, p_event, p_now)
  on conflict (id) do nothing;
  select * into v_row from private.resend_events where id = p_id for update;
  if v_row.processed_at is not null then
    return jsonb_build_object('event_id', p_id, 'type', v_row.type, 'outcome', 'duplicate');
  end if;
  v_outcome := private.apply_resend_event(p_id, v_type, v_data, v_created);
  update private.resend_events set processed_at = p_now, outcome = v_outcome where id = p_id;
  return jsonb_build_object('event_id', p_id, 'type', v_type, 'outcome', v_outcome);
end
$$;
revoke execute on function private.handle_resend_event(text, jsonb, timestamptz) from public;
grant execute on function private.handle_resend_event(text, jsonb, timestamptz) to service_role;

comment on function private.handle_resend_event(text, jsonb, timestamptz) is
  'One verified Resend event, applied once (ledger private.resend_events, keyed by svix-id).';

-- ---------------------------------------------------------------------------------------------
-- The sender's record of an email Resend accepted (shared/email.py), once per Resend id: a retry
-- of the job gets the same id back (the job's key is Resend's idempotency key). Events that came
-- before it (stored as unknown_email) are applied now, in their own order.
-- ---------------------------------------------------------------------------------------------
create or replace function private.record_email_sent(p_resend_id text, p_dedupe_key text, p_template text,
                                                     p_user_id uuid, p_session_id uuid, p_to text,
                                                     p_now timestamptz default now())
returns bigint
language plpgsql security definer set search_path = ''
as $$
declare
  v_id bigint;
  v_event record;
begin
  if p_resend_id is null or char_length(p_resend_id) not between 1 and 200 or p_template is null or p_to is null then
    perform private.raise_error('invalid_input', 'a sent email needs its Resend id, template and recipient');
  end if;
  perform pg_advisory_xact_lock(hashtextextended('autodoctor.resend_email:' || p_resend_id, 0));
  insert into private.email_deliveries (resend_id, outbox_id, dedupe_key, template, user_id, session_id, to_address,
                                        sent_at, updated_at)
  values (p_resend_id, (select o.id from private.outbox o where o.dedupe_key = p_dedupe_key), p_dedupe_key,
          left(p_template, 100), (select u.id from auth.users u where u.id = p_user_id),
          (select s.id from public.sessions s where s.id = p_session_id), left(p_to, 320), p_now, p_now)
  on conflict (resend_id) do nothing
  returning id into v_id;
  if v_id is null then
    return (select d.id from private.email_deliveries d where d.resend_id = p_resend_id);
  end if;
  for v_event in
    select e.id, e.type, e.payload -> 'data' as data, e.created from private.resend_events e
    where e.email_id = p_resend_id and e.outcome = 'unknown_email'
    order by e.created, e.received_at, e.id
  loop
    update private.resend_events
    set outcome = private.apply_resend_event(v_event.id, v_event.type, v_event.data, v_event.created)
    where id = v_event.id;
  end loop;
  return v_id;
end
$$;
revoke execute on function private.record_email_sent(text, text, text, uuid, uuid, text, timestamptz) from public;
grant execute on function private.record_email_sent(text, text, text, uuid, uuid, text, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Admin: suppressions, a user's emails with their delivery history, and lifting a suppression
-- ---------------------------------------------------------------------------------------------
create or replace function public.admin_email_suppressions(p_active_only boolean default true,
                                                           p_limit int default 100)
returns table (id bigint, address text, reason text, created_at timestamptz, resend_event_id text,
               template text, user_id uuid, lifted_at timestamptz, lifted_by uuid, lift_note text)
language plpgsql stable security definer set search_path = ''
as $$
begin
  perform private.require_admin();
  if p_active_only is null or p_limit is null or p_limit < 1 or p_limit > 1000 then
    perform private.raise_error('invalid_input', 'p_active_only is required; p_limit 1..1000');
  end if;
  return query
  select s.id, s.address, s.reason, s.created_at, s.resend_event_id, d.template, d.user_id, s.lifted_at,
         s.lifted_by, s.lift_note
  from private.email_suppressions s
  left join private.email_deliveries d on d.id = s.delivery_id
  where not p_active_only or s.lifted_at is null
  order by s.created_at desc, s.id desc
  limit p_limit;
end
$$;
revoke execute on function public.admin_email_suppressions(boolean, int) from public, anon;
grant execute on function public.admin_email_suppressions(boolean, int) to authenticated, service_role;

create or replace function public.admin_email_deliveries(p_user_id uuid, p_limit int default 100)
returns table (id bigint, template text, session_id uuid, to_address text, resend_id text, status text,
               bounce_type text, sent_at timestamptz, delivery_delayed_at timestamptz, delivered_at timestamptz,
               bounced_at timestamptz, complained_at timestamptz, suppressed boolean, events jsonb)
language plpgsql stable security definer set search_path = ''
as $$
begin
  perform private.require_admin();
  perform private.require_arg('p_user_id', p_user_id);
  if p_limit is null or p_limit < 1 or p_limit > 1000 then
    perform private.raise_error('invalid_input', 'p_limit must be 1..1000');
  end if;
  return query
  select d.id, d.template, d.session_id, d.to_address, d.resend_id, d.status, d.bounce_type, d.sent_at,
         d.delivery_delayed_at, d.delivered_at, d.bounced_at, d.complained_at,
         private.email_suppression(d.to_address) is not null,
         coalesce((select jsonb_agg(jsonb_build_object('event_id', e.id, 'type', e.type, 'at', e.created,
                                                       'received_at', e.received_at, 'outcome', e.outcome)
                                    order by e.created, e.received_at)
                   from private.resend_events e where e.email_id = d.resend_id), '[]'::jsonb)
  from private.email_deliveries d
  where d.user_id = p_user_id
  order by d.sent_at desc, d.id desc
  limit p_limit;
end
$$;
revoke execute on function public.admin_email_deliveries(uuid, int) from public, anon;
grant execute on function public.admin_email_deliveries(uuid, int) to authenticated, service_role;

create or replace function public.admin_lift_email_suppression(p_address text, p_note text default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_admin uuid := private.require_admin();
  v_address text;
  v_note text;
  v_row private.email_suppressions;
begin
  v_address := private.check_text('p_address', p_address, true);
  if char_length(v_address) > 320 then
    perform private.raise_error('invalid_input', 'p_address must be at most 320 characters');
  end if;
  v_note := private.check_text('p_note', p_note);
  if char_length(v_note) > 1000 then
    perform private.raise_error('invalid_input', 'p_note must be at most 1000 characters');
  end if;
  update private.email_suppressions
  set lifted_at = now(), lifted_by = v_admin, lift_note = v_note
  where address = private.email_address_key(v_address) and lifted_at is null
  returning * into v_row;
  if not found then
    perform private.raise_error('not_found', 'this address is not suppressed');
  end if;
  return jsonb_build_object('id', v_row.id, 'address', v_row.address, 'reason', v_row.reason,
                            'lifted_at', v_row.lifted_at);
end
$$;
revoke execute on function public.admin_lift_email_suppression(text, text) from public, anon;
grant execute on function public.admin_lift_email_suppression(text, text) to authenticated, service_role;
