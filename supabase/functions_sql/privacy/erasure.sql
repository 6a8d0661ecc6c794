-- Privacy: erasure of an account after a grace period (docs/privacy.md#erasure).
-- The right to erasure (PIPEDA principle 4.5.3, GDPR art. 17) stops where the law requires records
-- to be kept: payments, refunds, credits, payouts and referral fees (tax and accounting law) stay,
-- tied to an id that no longer names anyone.

-- What keeps the person from being erased now: open work, or money not settled. An array of
-- {"item", "count"}; empty when nothing remains. Erasing then would leave a customer without the
-- session they paid for, a refund claim without a payee to recover it from, or a debt unpaid.
create or replace function private.erasure_blockers(p_user uuid) returns jsonb
language sql stable security definer set search_path = ''
as $$
  select coalesce(jsonb_agg(jsonb_build_object('item', b.item, 'count', b.n) order by b.item), '[]'::jsonb)
  from (
    select 'open_sessions' as item, count(*) as n from public.sessions s
      where (s.customer_id = p_user or s.mechanic_id = p_user)
        and s.status in ('pending', 'scheduled', 'waiting', 'live')
    union all
    select 'accepted_requests', count(*) from public.session_requests r
      join public.sessions s on s.id = r.session_id
      where r.mechanic_id = p_user and r.status = 'accepted'
        and s.status in ('pending', 'scheduled', 'waiting', 'live')
    union all
    select 'unsettled_payouts', count(*) from public.payouts p
      where (p.mechanic_id = p_user
             or p.organization_id in (select m.organization_id from public.organization_members m
                                      where m.user_id = p_user and m.role = 'owner'))
        and p.status in ('waiting', 'queued', 'processing', 'failed')
    union all
    select 'pending_refunds', count(*) from public.refunds f
      join public.payments pay on pay.id = f.payment_id
      join public.sessions s on s.id = pay.session_id
      where (s.mechanic_id = p_user or f.customer_id = p_user) and f.status in ('queued', 'processing')
    union all
    select 'undecided_problem_reports', count(*) from public.session_problem_reports pr
      join public.sessions s on s.id = pr.session_id
      where (s.mechanic_id = p_user or pr.customer_id = p_user)
        and not exists (select 1 from public.session_delivery_decisions d where d.session_id = pr.session_id)
    union all
    select 'unsettled_referral_fees', count(*) from public.referral_fees rf
      where rf.status = 'accrued'
        and (rf.mechanic_id = p_user
             or rf.workshop_id in (select m.organization_id from public.organization_members m
                                   where m.user_id = p_user and m.role = 'owner'))
    union all
    select 'open_appointments', count(*) from public.workshop_appointments a
      where a.status in ('requested', 'proposed', 'confirmed')
        and (a.customer_id = p_user or a.mechanic_id = p_user
             or a.workshop_id in (select m.organization_id from public.organization_members m
                                  where m.user_id = p_user and m.role = 'owner'))
    union all
    select 'negative_credit_balance', count(*) from (
      select 1 from public.credit_ledger c where c.customer_id = p_user
      having coalesce(sum(c.amount_cents), 0) < 0) neg
  ) b
  where b.n > 0
$$;
revoke execute on function private.erasure_blockers(uuid) from public;

create or replace function private.erasure_blocked_message(p_blockers jsonb) returns text
language sql immutable set search_path = ''
as $$
  select 'the account cannot be erased until this is settled: '
         || string_agg(format('%s (%s)', b ->> 'item', b ->> 'count'), ', ')
  from jsonb_array_elements(p_blockers) b
$$;
revoke execute on function private.erasure_blocked_message(jsonb) from public;

-- The caller asks for their account to be erased after privacy.erasure_grace. Idempotent: asking
-- again while a request is pending returns it unchanged (same due date). Refused (erasure_blocked)
-- while open work or unsettled money remains, so nobody waits a month to learn it.
create or replace function public.request_account_deletion() returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := (select auth.uid());
  v_row private.account_deletions;
  v_blockers jsonb;
begin
  if v_uid is null then
    perform private.raise_error('not_authenticated', 'sign in to delete your account');
  end if;
  perform pg_advisory_xact_lock(hashtextextended('account_deletion:' || v_uid::text, 0));
  select * into v_row from private.account_deletions d where d.user_id = v_uid for update;
  if v_row.status = 'erased' then
    perform private.raise_error('account_erased', 'this account has been erased');
  end if;
  if v_row.status in ('pending', 'blocked') then
    return jsonb_build_object('status', v_row.status, 'requested_at', v_row.requested_at, 'due_at', v_row.due_at,
                              'already_requested', true);
  end if;
  v_blockers := private.erasure_blockers(v_uid);
  if jsonb_array_length(v_blockers) > 0 then
    perform private.raise_error('erasure_blocked', private.erasure_blocked_message(v_blockers), v_blockers::text);
  end if;
  insert into private.account_deletions as d (user_id, status, requested_at, due_at, request_no)
  values (v_uid, 'pending', now(), now() + private.setting_interval('privacy.erasure_grace'), 1)
  on conflict (user_id) do update
    set status = 'pending', requested_at = excluded.requested_at, due_at = excluded.due_at,
        cancelled_at = null, attempts = 0, remaining = '[]', request_no = d.request_no + 1
  returning * into v_row;
  perform private.enqueue('privacy.erase_account', format('privacy.erase_account:%s:%s', v_uid, v_row.request_no),
                          jsonb_build_object('user_id', v_uid, 'request_no', v_row.request_no), v_row.due_at);
  return jsonb_build_object('status', v_row.status, 'requested_at', v_row.requested_at, 'due_at', v_row.due_at,
                            'already_requested', false);
end
$$;
revoke execute on function public.request_account_deletion() from public, anon;
grant execute on function public.request_account_deletion() to authenticated, service_role;

-- Within the grace period the person changes their mind: the request ends, the queued job finds
-- nothing to do.
create or replace function public.cancel_account_deletion() returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := (select auth.uid());
  v_row private.account_deletions;
begin
  if v_uid is null then
    perform private.raise_error('not_authenticated', 'sign in to cancel the deletion of your account');
  end if;
  update private.account_deletions d set status = 'cancelled', cancelled_at = now()
  where d.user_id = v_uid and d.status in ('pending', 'blocked')
  returning * into v_row;
  if v_row.user_id is null then
    perform private.raise_error('deletion_not_requested', 'no deletion of this account is pending');
  end if;
  return jsonb_build_object('status', v_row.status, 'cancelled_at', v_row.cancelled_at);
end
$$;
revoke execute on function public.cancel_account_deletion() from public, anon;
grant execute on function public.cancel_account_deletion() to authenticated, service_role;

-- Admins see every request not yet erased or cancelled (with what blocks it), and the recent ones.
create or replace function public.admin_account_deletions(p_status text default null, p_limit int default 100)
returns setof jsonb
language plpgsql security definer set search_path = ''
as $$
begin
  perform private.require_admin();
  if p_status is not null and p_status not in ('pending', 'blocked', 'erased', 'cancelled') then
    perform private.raise_error('invalid_input', 'p_status: pending, blocked, erased or cancelled');
  end if;
  if p_limit is null or p_limit < 1 or p_limit > 1000 then
    perform private.raise_error('invalid_input', 'p_limit: 1 to 1000');
  end if;
  perform private.record_admin_action('privacy.list_deletions', 'account_deletion', null, null,
                                      jsonb_build_object('status', p_status, 'limit', p_limit));
  return query
    select jsonb_build_object('user_id', d.user_id, 'status', d.status, 'requested_at', d.requested_at,
                              'due_at', d.due_at, 'cancelled_at', d.cancelled_at, 'erased_at', d.erased_at,
                              'attempts', d.attempts, 'remaining', d.remaining)
    from private.account_deletions d
    where (p_status is null or d.status = p_status)
    order by d.due_at
    limit p_limit;
end
$$;
revoke execute on function public.admin_account_deletions(text, int) from public, anon;
grant execute on function public.admin_account_deletions(text, int) to authenticated, service_role;

-- The text of a jsonb value with every occurrence of the markers replaced.
create or replace function private.scrub_jsonb(p_value jsonb, p_markers text[]) returns jsonb
language plpgsql immutable set search_path = ''
as $$
declare
  v_text text := p_value::text;
  v_marker text;
begin
  foreach v_marker in array p_markers loop
    if v_marker is not null and char_length(v_marker) >= 3 then
      v_text := replace(v_text, v_marker, '[erased]');
    end if;
  end loop;
  return v_text::jsonb;
end
$$;
revoke execute on function private.scrub_jsonb(jsonb, text[]) from public;

create or replace function private.scrub_text(p_value text, p_markers text[]) returns text
language plpgsql immutable set search_path = ''
as $$
declare
  v_text text := p_value;
  v_marker text;
begin
  foreach v_marker in array p_markers loop
    if v_marker is not null and char_length(v_marker) >= 3 then
      v_text := replace(v_text, v_marker, '[erased]');
    end if;
  end loop;
  return v_text;
end
$$;
revoke execute on function private.scrub_text(text, text[]) from public;

-- Erases one person whose request is due (the `privacy.erase_account` job). Returns
-- {"status": "erased", "objects": [{bucket, name}]} — the Storage objects the job then deletes
-- through the Storage API (deleting the rows alone would leave the bytes) — or
-- {"status": "blocked", "remaining": [...]} (the job fails and retries: the person is erased as
-- soon as it is settled), or {"status": "cancelled" | "not_due" | "none"}. Erasing twice is
-- erasing once: an erased account answers "erased" with the objects still left.
create or replace function private.erase_account(p_user uuid, p_now timestamptz default now()) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_row private.account_deletions;
  v_blockers jsonb;
  v_email text;
  v_markers text[];
  v_erased_email text := format('erased+%s@invalid', p_user);
  v_marker constant text := '[erased]';
  v_counts jsonb := '{}';
  v_n int;
begin
  select * into v_row from private.account_deletions d where d.user_id = p_user for update;
  if v_row.user_id is null then
    return jsonb_build_object('status', 'none');
  end if;
  if v_row.status = 'cancelled' then
    return jsonb_build_object('status', 'cancelled');
  end if;
  if v_row.status = 'erased' then
    return jsonb_build_object('status', 'erased', 'objects', private.erasure_objects(p_user));
  end if;
  if v_row.due_at > p_now then
    return jsonb_build_object('status', 'not_due', 'due_at', v_row.due_at);
  end if;
  v_blockers := private.erasure_blockers(p_user);
  if jsonb_array_length(v_blockers) > 0 then
    update private.account_deletions d set status = 'blocked', remaining = v_blockers, attempts = d.attempts + 1
    where d.user_id = p_user;
    return jsonb_build_object('status', 'blocked', 'remaining', v_blockers,
                              'message', private.erasure_blocked_message(v_blockers));
  end if;

  -- the strings that identify the person, scrubbed from free text and event payloads
  select array_remove(array[u.email, u.phone, p.full_name, p.phone, m.display_name,
                            u.raw_user_meta_data ->> 'full_name'], null)
    into v_markers
  from auth.users u left join public.profiles p on p.id = u.id left join public.mechanics m on m.id = u.id
  where u.id = p_user;
  select u.email into v_email from auth.users u where u.id = p_user;
  v_markers := coalesce(v_markers, '{}') || array(
    select distinct x from (select i.contact_name from public.intakes i where i.customer_id = p_user
                            union select i.contact_email from public.intakes i where i.customer_id = p_user
                            union select i.contact_phone from public.intakes i where i.customer_id = p_user) t(x)
    where x is not null);

  -- the person
  update public.profiles set full_name = null, phone = null, avatar_url = null, city = null, postal_code = null,
                             marketing_emails = false
  where id = p_user;
  update public.mechanics set display_name = 'Former mechanic', photo_url = null, bio = null, city = null,
                              postal_code = null, is_available = false, can_accept_sessions = false,
                              status = 'suspended'
  where id = p_user;
  delete from private.admins where user_id = p_user;
  delete from public.organization_members where user_id = p_user;
  delete from public.mechanic_weekly_availability where mechanic_id = p_user;
  delete from public.booking_rules where mechanic_id = p_user;
  update public.availability_overrides set reason = null where mechanic_id = p_user;
  update public.mechanic_time_off set reason = null where mechanic_id = p_user;
  update public.mechanic_shift_logs set location = null, notes = null where mechanic_id = p_user;
  delete from private.rate_buckets where user_id = p_user;

  -- what the person wrote or gave: contacts, vehicles, messages, reviews' names, questions
  update public.intakes set contact_name = null, contact_email = null, contact_phone = null, vin = null,
                            plate = null, city = null, details = null, concern = v_marker
  where customer_id = p_user;
  update public.session_requests set concern = v_marker where customer_id = p_user and concern is not null;
  update public.vehicles set vin = null, plate = null, nickname = null where owner_id = p_user;
  update public.waiver_acceptances set ip_address = null, user_agent = null where user_id = p_user;
  update public.chat_messages set content = v_marker, attachments = '[]' where sender_id = p_user;
  get diagnostics v_n = row_count;
  v_counts := v_counts || jsonb_build_object('messages', v_n);
  update public.mechanic_reviews set reviewer_first_name = null, body = null where customer_id = p_user;
  update private.review_cards c set reviewer_first_name = null, body = null
  from public.mechanic_reviews r where r.id = c.review_id and r.customer_id = p_user;
  update public.follow_ups set question = v_marker, photo_paths = '{}' where customer_id = p_user;
  update public.workshop_appointments set notes = null, concern = null
  where customer_id = p_user;
  delete from public.crm_interactions where customer_id = p_user;
  update public.workshop_invitations set email = v_erased_email where lower(email) = lower(v_email);

  -- free text others wrote and event payloads may name the person: the markers are replaced
  update public.sessions set mechanic_notes = private.scrub_text(mechanic_notes, v_markers),
                             cancel_reason = private.scrub_text(cancel_reason, v_markers)
  where (customer_id = p_user or mechanic_id = p_user);
  update public.chat_messages m set content = private.scrub_text(m.content, v_markers)
  from public.sessions s where s.id = m.session_id and (s.customer_id = p_user or s.mechanic_id = p_user)
    and m.sender_id <> p_user;
  update public.mechanic_vetting_decisions set note = private.scrub_text(note, v_markers)
  where mechanic_id = p_user and note is not null;
  update public.session_summaries set findings = private.scrub_text(findings, v_markers)
  where session_id in (select s.id from public.sessions s where s.customer_id = p_user or s.mechanic_id = p_user);

  -- emails: the address goes; the delivery record (what was sent, when) stays without it
  update private.email_deliveries set to_address = v_erased_email where user_id = p_user or to_address = v_email;
  delete from private.email_suppressions where lower(address) = lower(v_email);
  update private.outbox set payload = private.scrub_jsonb(payload, v_markers),
                            status = case when status = 'pending' and kind = 'email.send' then 'skipped'
                                          else status end,
                            last_error = case when status = 'pending' and kind = 'email.send'
                                              then 'skipped: the account was erased' else last_error end
  where (kind = 'email.send' and payload ->> 'user_id' = p_user::text)
     or payload::text ilike any (array(select '%' || x || '%' from unnest(v_markers) x));
  update private.resend_events set payload = private.scrub_jsonb(payload, v_markers)
  where payload::text ilike any (array(select '%' || x || '%' from unnest(v_markers) x));
  update private.stripe_events set payload = private.scrub_jsonb(payload, v_markers)
  where payload::text ilike any (array(select '%' || x || '%' from unnest(v_markers) x));
  update private.admin_actions set reason = private.scrub_text(reason, v_markers),
                                   data = private.scrub_jsonb(data, v_markers)
  where subject_id = p_user or data::text ilike any (array(select '%' || x || '%' from unnest(v_markers) x));

  -- files: the rows go now, the bytes through the Storage API (the job)
  delete from public.session_files where uploaded_by = p_user;

  -- the sign-in: anonymized, banned, kept by id so that money rows keep their foreign keys
  update auth.users set email = v_erased_email, phone = null, raw_user_meta_data = '{}',
                        raw_app_meta_data = '{"provider": "email", "erased": true}',
                        encrypted_password = null, confirmation_token = null, recovery_token = null,
                        banned_until = p_now + interval '100 years', deleted_at = p_now, updated_at = p_now
  where id = p_user;

  update private.account_deletions set status = 'erased', erased_at = p_now, remaining = '[]',
                                       attempts = attempts + 1
  where user_id = p_user;
  return jsonb_build_object('status', 'erased', 'counts', v_counts, 'objects', private.erasure_objects(p_user));
end
$$;
revoke execute on function private.erase_account(uuid, timestamptz) from public;
grant execute on function private.erase_account(uuid, timestamptz) to service_role;

-- The Storage objects of the person: those they own, and their vetting documents.
create or replace function private.erasure_objects(p_user uuid) returns jsonb
language sql stable security definer set search_path = ''
as $$
  select coalesce(jsonb_agg(jsonb_build_object('bucket', o.bucket_id, 'name', o.name) order by o.bucket_id, o.name),
                  '[]'::jsonb)
  from storage.objects o
  where o.owner_id = p_user::text or o.owner = p_user
     or (o.bucket_id = 'mechanic-documents' and o.name like 'mechanics/' || p_user::text || '/%')
$$;
revoke execute on function private.erasure_objects(uuid) from public;
grant execute on function private.erasure_objects(uuid) to service_role;

-- An erased account stays erased: no admin path brings it back (reinstating, approving or
-- reviewing an erased mechanic raises account_erased). Its sign-in is banned and its personal
-- data gone; a person who wants to work again signs up anew.
create or replace function private.require_not_erased(p_user_id uuid) returns void
language plpgsql stable security definer set search_path = ''
as $$
begin
  if exists (select 1 from private.account_deletions d where d.user_id = p_user_id and d.status = 'erased') then
    perform private.raise_error('account_erased', 'this account has been erased');
  end if;
end
$$;
revoke execute on function private.require_not_erased(uuid) from public;
grant execute on function private.require_not_erased(uuid) to service_role;
