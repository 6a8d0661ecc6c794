-- Privacy: the export of everything the platform holds about the caller (docs/privacy.md#export).
-- The right of access (PIPEDA principle 4.9, GDPR art. 15 and 20): one machine-readable document.

-- Every column that refers to a person (a foreign key to auth.users, public.profiles or
-- public.mechanics), with where the export puts its rows and what erasure does to them. A test
-- compares this list with the catalog, so a new table that refers to a person cannot be added
-- without deciding both.
create or replace function private.personal_data_map()
returns table (table_name text, column_name text, export_section text, erasure text)
language sql immutable set search_path = ''
as $$
  values
    ('public.profiles', 'id', 'profile', 'anonymized'),
    ('private.admins', 'user_id', 'not exported: the admin grant', 'removed'),
    ('public.organizations', 'created_by', 'workshops', 'kept (workshop record)'),
    ('public.organization_members', 'user_id', 'workshops', 'removed'),
    ('public.mechanics', 'id', 'mechanic', 'anonymized'),
    ('public.mechanics', 'micro_paused_by', 'not exported: an admin or owner id', 'kept'),
    ('public.mechanics', 'specialization_set_by', 'not exported: an admin id', 'kept'),
    ('public.vehicles', 'owner_id', 'vehicles', 'anonymized'),
    ('public.intakes', 'customer_id', 'intakes', 'anonymized'),
    ('public.waiver_acceptances', 'user_id', 'waiver_acceptances', 'anonymized'),
    ('public.sessions', 'customer_id', 'sessions_as_customer', 'kept (money)'),
    ('public.sessions', 'mechanic_id', 'sessions_as_mechanic', 'kept (money)'),
    ('public.session_requests', 'approved_by', 'not exported: a workshop owner id', 'kept'),
    ('public.session_requests', 'customer_id', 'requests', 'anonymized'),
    ('public.session_requests', 'mechanic_id', 'requests', 'kept'),
    ('public.session_requests', 'preferred_mechanic_id', 'requests', 'kept'),
    ('public.session_requests', 'offered_mechanic_id', 'requests', 'kept'),
    ('public.session_participants', 'user_id', 'participations', 'kept'),
    ('public.session_events', 'actor_id', 'session_events', 'kept'),
    ('public.session_offers', 'mechanic_id', 'offers', 'kept'),
    ('public.chat_messages', 'sender_id', 'messages', 'anonymized'),
    ('public.session_files', 'uploaded_by', 'files', 'removed'),
    ('public.mechanic_commitments', 'customer_id', 'commitments', 'kept'),
    ('public.mechanic_commitments', 'mechanic_id', 'commitments', 'kept'),
    ('public.bookings', 'customer_id', 'bookings', 'kept (money)'),
    ('public.bookings', 'preferred_mechanic_id', 'bookings', 'kept'),
    ('public.payments', 'customer_id', 'payments', 'kept (money)'),
    ('public.refunds', 'customer_id', 'refunds', 'kept (money)'),
    ('public.refunds', 'requested_by', 'refunds', 'kept (money)'),
    ('public.credit_ledger', 'customer_id', 'credits', 'kept (money)'),
    ('public.credit_ledger', 'created_by', 'not exported: an admin id', 'kept (money)'),
    ('public.session_extensions', 'requested_by', 'extensions', 'kept (money)'),
    ('public.mechanic_time_off', 'created_by', 'not exported: an admin or owner id', 'kept'),
    ('public.mechanic_time_off', 'mechanic_id', 'availability', 'anonymized'),
    ('public.session_problem_reports', 'customer_id', 'problem_reports', 'anonymized'),
    ('public.session_delivery_decisions', 'decided_by', 'not exported: an admin id', 'kept (money)'),
    ('public.mechanic_reviews', 'customer_id', 'reviews_written', 'anonymized'),
    ('public.mechanic_reviews', 'mechanic_id', 'reviews_received', 'kept'),
    ('public.mechanic_reviews', 'hidden_by', 'not exported: an admin id', 'kept'),
    ('public.workshop_appointments', 'customer_id', 'appointments', 'anonymized'),
    ('public.workshop_appointments', 'mechanic_id', 'appointments', 'kept'),
    ('public.workshop_appointments', 'referring_mechanic_id', 'appointments', 'kept'),
    ('public.workshop_invitations', 'accepted_by', 'workshops', 'anonymized'),
    ('public.workshop_invitations', 'invited_by', 'workshops', 'anonymized'),
    ('public.session_summaries', 'author_id', 'summaries', 'kept'),
    ('public.crm_interactions', 'customer_id', 'crm', 'removed'),
    ('public.follow_ups', 'customer_id', 'follow_ups', 'anonymized'),
    ('public.recommendations', 'customer_id', 'recommendations', 'anonymized'),
    ('private.email_deliveries', 'user_id', 'emails', 'anonymized'),
    ('private.email_suppressions', 'lifted_by', 'not exported: an admin id', 'kept'),
    ('private.admin_actions', 'admin_id', 'admin_actions_about_you', 'kept (audit)'),
    ('public.payout_accounts', 'mechanic_id', 'payout_accounts', 'kept (money)'),
    ('public.payouts', 'mechanic_id', 'payouts', 'kept (money)'),
    ('public.mechanic_shift_logs', 'mechanic_id', 'shifts', 'anonymized'),
    ('public.micro_minute_usage', 'mechanic_id', 'micro_minutes', 'kept'),
    ('public.mechanic_weekly_availability', 'mechanic_id', 'availability', 'removed'),
    ('public.availability_overrides', 'mechanic_id', 'availability', 'anonymized'),
    ('public.booking_rules', 'mechanic_id', 'availability', 'removed'),
    ('private.review_cards', 'mechanic_id', 'not exported: a copy of reviews_received', 'anonymized'),
    ('private.request_releases', 'mechanic_id', 'releases', 'kept'),
    ('public.referral_fees', 'mechanic_id', 'referral_fees', 'kept (money)'),
    ('private.account_deletions', 'user_id', 'deletion_request', 'kept (the erasure record)'),
    ('public.mechanic_vetting_decisions', 'mechanic_id', 'vetting', 'anonymized'),
    ('public.mechanic_vetting_decisions', 'decided_by', 'not exported: an admin id', 'kept')
$$;
revoke execute on function private.personal_data_map() from public;

-- A section: the rows of a query as a JSON array (never null).
create or replace function private.export_rows(p_rows jsonb) returns jsonb
language sql immutable set search_path = ''
as $$ select coalesce(p_rows, '[]'::jsonb) $$;
revoke execute on function private.export_rows(jsonb) from public;

-- The caller's data, every section of private.personal_data_map(). Sessions (and their messages)
-- are the only part that grows without bound: the most recent privacy.export_max_sessions per
-- role are listed, and the totals say how many there are.
create or replace function public.export_my_data() returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_uid uuid := (select auth.uid());
  v_max int;
  v_doc jsonb;
  v_cust uuid[];
  v_mech uuid[];
  v_cust_total int;
  v_mech_total int;
begin
  if v_uid is null then
    perform private.raise_error('not_authenticated', 'sign in to export your data');
  end if;
  if exists (select 1 from private.account_deletions d where d.user_id = v_uid and d.status = 'erased') then
    perform private.raise_error('account_erased', 'this account has been erased');
  end if;
  v_max := private.setting_int('privacy.export_max_sessions');

  select count(*)::int, (array_agg(s.id order by s.created_at desc))[1:v_max]
    into v_cust_total, v_cust from public.sessions s where s.customer_id = v_uid;
  select count(*)::int, (array_agg(s.id order by s.created_at desc))[1:v_max]
    into v_mech_total, v_mech from public.sessions s where s.mechanic_id = v_uid;
  v_cust := coalesce(v_cust, '{}');
  v_mech := coalesce(v_mech, '{}');

  v_doc := jsonb_build_object(
    'format', 'autodoctor.export.v1',
    'generated_at', now(),
    'user_id', v_uid,
    'account', (select jsonb_build_object('email', u.email, 'phone', u.phone, 'created_at', u.created_at,
                                          'last_sign_in_at', u.last_sign_in_at,
                                          'user_metadata', u.raw_user_meta_data)
                  from auth.users u where u.id = v_uid),
    'profile', (select to_jsonb(p) from public.profiles p where p.id = v_uid),
    'waiver_acceptances', private.export_rows((select jsonb_agg(to_jsonb(w) order by w.accepted_at)
                                               from public.waiver_acceptances w where w.user_id = v_uid)),
    'vehicles', private.export_rows((select jsonb_agg(to_jsonb(v) order by v.created_at)
                                     from public.vehicles v where v.owner_id = v_uid)),
    'intakes', private.export_rows((select jsonb_agg(to_jsonb(i) order by i.created_at)
                                    from public.intakes i where i.customer_id = v_uid)),
    'requests', private.export_rows((select jsonb_agg(to_jsonb(r) - 'keyword_bits' order by r.created_at)
                                     from public.session_requests r
                                     where r.customer_id = v_uid or r.mechanic_id = v_uid
                                        or r.preferred_mechanic_id = v_uid or r.offered_mechanic_id = v_uid)),
    'bookings', private.export_rows((select jsonb_agg(to_jsonb(b) - 'checkout_url' order by b.created_at)
                                     from public.bookings b
                                     where b.customer_id = v_uid or b.preferred_mechanic_id = v_uid)),
    'sessions_total', jsonb_build_object('as_customer', v_cust_total, 'as_mechanic', v_mech_total,
                                         'listed_per_role_at_most', v_max),
    'sessions_as_customer', private.export_rows((select jsonb_agg(to_jsonb(s) order by s.created_at)
                                                 from public.sessions s where s.id = any (v_cust))),
    'sessions_as_mechanic', private.export_rows((select jsonb_agg(to_jsonb(s) order by s.created_at)
                                                 from public.sessions s where s.id = any (v_mech))),
    'participations', private.export_rows((select jsonb_agg(to_jsonb(p) order by p.created_at)
                                           from public.session_participants p where p.user_id = v_uid)),
    'session_events', private.export_rows((select jsonb_agg(to_jsonb(e) order by e.id)
                                           from public.session_events e where e.actor_id = v_uid)),
    'messages', private.export_rows((select jsonb_agg(jsonb_build_object(
                                        'id', m.id, 'session_id', m.session_id,
                                        'from', case when m.sender_id = v_uid then 'you' else 'other' end,
                                        'content', m.content, 'attachments', m.attachments,
                                        'created_at', m.created_at) order by m.created_at)
                                     from public.chat_messages m
                                     where m.session_id = any (v_cust || v_mech)
                                        or m.sender_id = v_uid)),
    'files', jsonb_build_object(
      'note', 'object names in Storage; download each with a signed URL from the Storage API '
              '(createSignedUrl), which only the object''s session participants may obtain',
      'session_files', private.export_rows((select jsonb_agg(to_jsonb(f) order by f.created_at)
                                            from public.session_files f where f.uploaded_by = v_uid)),
      'objects', private.export_rows((select jsonb_agg(jsonb_build_object(
                                          'bucket', o.bucket_id, 'name', o.name, 'created_at', o.created_at,
                                          'metadata', o.metadata) order by o.created_at)
                                      from storage.objects o where o.owner_id = v_uid::text))),
    'summaries', private.export_rows((select jsonb_agg(to_jsonb(s) order by s.created_at)
                                      from public.session_summaries s
                                      where s.author_id = v_uid
                                         or (s.session_id = any (v_cust) and s.status = 'submitted'))),
    'follow_ups', private.export_rows((select jsonb_agg(to_jsonb(f) order by f.created_at)
                                       from public.follow_ups f where f.customer_id = v_uid)),
    'recommendations', private.export_rows((select jsonb_agg(to_jsonb(r) order by r.created_at)
                                            from public.recommendations r where r.customer_id = v_uid)),
    'reviews_written', private.export_rows((select jsonb_agg(to_jsonb(r) - 'hidden_by' order by r.created_at)
                                            from public.mechanic_reviews r where r.customer_id = v_uid)),
    'reviews_received', private.export_rows((select jsonb_agg(to_jsonb(r) - 'hidden_by' - 'customer_id'
                                                              order by r.created_at)
                                             from public.mechanic_reviews r where r.mechanic_id = v_uid)),
    'problem_reports', private.export_rows((select jsonb_agg(to_jsonb(r) order by r.reported_at)
                                            from public.session_problem_reports r where r.customer_id = v_uid)),
    'extensions', private.export_rows((select jsonb_agg(to_jsonb(e) order by e.created_at)
                                       from public.session_extensions e where e.requested_by = v_uid)),
    'commitments', private.export_rows((select jsonb_agg(to_jsonb(c) order by c.created_at)
                                        from public.mechanic_commitments c
                                        where c.customer_id = v_uid or c.mechanic_id = v_uid)),
    'appointments', private.export_rows((select jsonb_agg(to_jsonb(a) order by a.created_at)
                                         from public.workshop_appointments a
                                         where a.customer_id = v_uid or a.mechanic_id = v_uid
                                            or a.referring_mechanic_id = v_uid)),
    'payments', private.export_rows((select jsonb_agg(to_jsonb(p) order by p.created_at)
                                     from public.payments p where p.customer_id = v_uid)),
    'refunds', private.export_rows((select jsonb_agg(to_jsonb(r) order by r.created_at)
                                    from public.refunds r where r.customer_id = v_uid or r.requested_by = v_uid)),
    'credits', private.export_rows((select jsonb_agg(to_jsonb(c) - 'created_by' order by c.seq)
                                    from public.credit_ledger c where c.customer_id = v_uid)),
    'payouts', private.export_rows((select jsonb_agg(to_jsonb(p) order by p.created_at)
                                    from public.payouts p where p.mechanic_id = v_uid)),
    'payout_accounts', private.export_rows((select jsonb_agg(to_jsonb(a) order by a.created_at)
                                            from public.payout_accounts a where a.mechanic_id = v_uid)),
    'referral_fees', private.export_rows((select jsonb_agg(to_jsonb(f) order by f.accrued_at)
                                          from public.referral_fees f where f.mechanic_id = v_uid)),
    'emails', private.export_rows((select jsonb_agg(jsonb_build_object(
                                      'template', d.template, 'session_id', d.session_id, 'to', d.to_address,
                                      'status', d.status, 'sent_at', d.sent_at, 'delivered_at', d.delivered_at,
                                      'bounced_at', d.bounced_at) order by d.id)
                                   from private.email_deliveries d where d.user_id = v_uid)),
    'emails_queued', private.export_rows((select jsonb_agg(jsonb_build_object(
                                             'template', o.payload ->> 'template',
                                             'session_id', o.payload ->> 'session_id',
                                             'status', o.status, 'created_at', o.created_at,
                                             'sent_at', o.sent_at) order by o.id)
                                          from private.outbox o
                                          where o.kind = 'email.send' and o.payload ->> 'user_id' = v_uid::text)),
    'crm', private.export_rows((select jsonb_agg(to_jsonb(c) order by c.id)
                                from public.crm_interactions c where c.customer_id = v_uid)),
    'mechanic', (select to_jsonb(m) - 'keyword_bits' from public.mechanics m where m.id = v_uid),
    'vetting', jsonb_build_object(
      'decisions', private.export_rows((select jsonb_agg(jsonb_build_object(
                                           'decision', d.decision, 'note', d.note, 'decided_at', d.decided_at)
                                           order by d.decided_at)
                                        from public.mechanic_vetting_decisions d where d.mechanic_id = v_uid)),
      'documents', private.export_rows((select jsonb_agg(jsonb_build_object(
                                           'name', o.name, 'created_at', o.created_at, 'metadata', o.metadata)
                                           order by o.name)
                                        from storage.objects o
                                        where o.bucket_id = 'mechanic-documents'
                                          and o.name like 'mechanics/' || v_uid::text || '/%'))),
    'availability', jsonb_build_object(
      'weekly', private.export_rows((select jsonb_agg(to_jsonb(w) order by w.day_of_week, w.start_time)
                                     from public.mechanic_weekly_availability w where w.mechanic_id = v_uid)),
      'overrides', private.export_rows((select jsonb_agg(to_jsonb(o) order by o.on_date)
                                        from public.availability_overrides o where o.mechanic_id = v_uid)),
      'time_off', private.export_rows((select jsonb_agg(to_jsonb(t) - 'created_by' order by t.created_at)
                                       from public.mechanic_time_off t where t.mechanic_id = v_uid)),
      'booking_rules', (select to_jsonb(b) from public.booking_rules b where b.mechanic_id = v_uid)),
    'offers', private.export_rows((select jsonb_agg(to_jsonb(o) order by o.created_at)
                                   from public.session_offers o where o.mechanic_id = v_uid)),
    'releases', private.export_rows((select jsonb_agg(to_jsonb(r) order by r.id)
                                     from private.request_releases r where r.mechanic_id = v_uid)),
    'shifts', private.export_rows((select jsonb_agg(to_jsonb(s) order by s.clock_in_at)
                                   from public.mechanic_shift_logs s where s.mechanic_id = v_uid)),
    'micro_minutes', private.export_rows((select jsonb_agg(to_jsonb(u) order by u.created_at)
                                          from public.micro_minute_usage u where u.mechanic_id = v_uid)),
    'workshops', jsonb_build_object(
      'memberships', private.export_rows((select jsonb_agg(jsonb_build_object(
                                             'workshop_id', om.organization_id, 'workshop', o.name,
                                             'role', om.role, 'since', om.created_at) order by om.created_at)
                                          from public.organization_members om
                                          join public.organizations o on o.id = om.organization_id
                                          where om.user_id = v_uid)),
      'created', private.export_rows((select jsonb_agg(jsonb_build_object('id', o.id, 'name', o.name,
                                                                         'created_at', o.created_at))
                                      from public.organizations o where o.created_by = v_uid)),
      'invitations', private.export_rows((select jsonb_agg(to_jsonb(i) - 'token_hash' order by i.created_at)
                                          from public.workshop_invitations i
                                          where i.invited_by = v_uid or i.accepted_by = v_uid))),
    'admin_actions_about_you', private.export_rows((select jsonb_agg(jsonb_build_object(
                                                       'action', a.action, 'reason', a.reason, 'at', a.at)
                                                       order by a.id)
                                                    from private.admin_actions a where a.subject_id = v_uid)),
    'deletion_request', (select jsonb_build_object('status', d.status, 'requested_at', d.requested_at,
                                                   'due_at', d.due_at)
                           from private.account_deletions d where d.user_id = v_uid)
  );
  return v_doc;
end
$$;
revoke execute on function public.export_my_data() from public, anon;
grant execute on function public.export_my_data() to authenticated, service_role;
comment on function public.export_my_data() is
  'Everything the platform holds about the caller, as one JSON document (docs/privacy.md#export).';
