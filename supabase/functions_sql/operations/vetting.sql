-- Operations: vetting a mechanic applicant (docs/operations.md, "Vetting"). The applicant sends its
-- documents into the mechanic-documents bucket (mechanics/<mechanic_id>/<kind>/<file>; the bucket,
-- its policies and their helpers are in the migration); an admin reads them through signed URLs
-- and decides with admin_review_mechanic. mechanics.status stays the standing (pending, approved,
-- suspended); the vetting state is the last decision of public.mechanic_vetting_decisions.

-- The documents a mechanic sent: kind, file name, when (never the content).
create or replace function private.mechanic_documents(p_mechanic_id uuid) returns jsonb
language sql stable security definer set search_path = ''
as $$
  select coalesce(jsonb_agg(jsonb_build_object(
           'kind', split_part(o.name, '/', 3), 'file', split_part(o.name, '/', 4), 'sent_at', o.created_at)
         order by o.created_at, o.name), '[]'::jsonb)
  from storage.objects o
  where o.bucket_id = 'mechanic-documents' and o.name like 'mechanics/' || p_mechanic_id::text || '/%'
    and private.mechanic_document_owner(o.name) = p_mechanic_id
$$;
revoke execute on function private.mechanic_documents(uuid) from public;
grant execute on function private.mechanic_documents(uuid) to service_role;

-- The vetting state: the last decision, or submitted (documents sent, no decision yet), or new.
create or replace function private.vetting_state(p_mechanic_id uuid) returns text
language sql stable security definer set search_path = ''
as $$
  select coalesce(
    (select d.decision from public.mechanic_vetting_decisions d
     where d.mechanic_id = p_mechanic_id order by d.decided_at desc, d.id desc limit 1),
    case when exists (select 1 from storage.objects o
                      where o.bucket_id = 'mechanic-documents'
                        and o.name like 'mechanics/' || p_mechanic_id::text || '/%')
         then 'submitted' else 'new' end)
$$;
revoke execute on function private.vetting_state(uuid) from public;
grant execute on function private.vetting_state(uuid) to service_role;

-- The applicant's own view: its standing, the vetting state, what it sent (names and kinds only:
-- documents are not read back) and the decisions with their notes (not who decided).
create or replace function public.my_vetting() returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_status public.mechanic_status;
begin
  select m.status into v_status from public.mechanics m where m.id = v_uid;
  if not found then
    perform private.raise_error('not_allowed', 'mechanics only');
  end if;
  return jsonb_build_object(
    'mechanic_id', v_uid, 'status', v_status, 'vetting_state', private.vetting_state(v_uid),
    'required_documents', to_jsonb(private.setting('vetting.required_documents')),
    'documents', private.mechanic_documents(v_uid),
    'decisions', coalesce((select jsonb_agg(jsonb_build_object('decision', d.decision, 'note', d.note,
                                                               'decided_at', d.decided_at) order by d.decided_at, d.id)
                           from public.mechanic_vetting_decisions d where d.mechanic_id = v_uid), '[]'::jsonb));
end
$$;
revoke execute on function public.my_vetting() from public, anon;
grant execute on function public.my_vetting() to authenticated, service_role;

-- Admin: one mechanic's file — its documents with their object names (bucket mechanic-documents:
-- sign them with Storage's createSignedUrl, which the admins-only select policy allows), the
-- decisions with who decided, and what approval still lacks.
create or replace function public.admin_mechanic_vetting(p_mechanic_id uuid) returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_m public.mechanics;
begin
  perform private.require_admin();
  perform private.require_arg('p_mechanic_id', p_mechanic_id);
  select * into v_m from public.mechanics where id = p_mechanic_id;
  if not found then
    perform private.raise_error('not_found', 'no such mechanic');
  end if;
  return jsonb_build_object(
    'mechanic_id', v_m.id, 'status', v_m.status, 'vetting_state', private.vetting_state(v_m.id),
    'documents', coalesce((select jsonb_agg(d || jsonb_build_object(
                            'bucket', 'mechanic-documents',
                            'path', format('mechanics/%s/%s/%s', v_m.id, d ->> 'kind', d ->> 'file')))
                           from jsonb_array_elements(private.mechanic_documents(v_m.id)) d), '[]'::jsonb),
    'missing_documents', to_jsonb(private.missing_documents(v_m.id)),
    'decisions', coalesce((select jsonb_agg(jsonb_build_object('decision', d.decision, 'note', d.note,
                                                               'decided_by', d.decided_by, 'decided_at', d.decided_at)
                                            order by d.decided_at, d.id)
                           from public.mechanic_vetting_decisions d where d.mechanic_id = v_m.id), '[]'::jsonb));
end
$$;
revoke execute on function public.admin_mechanic_vetting(uuid) from public, anon;
grant execute on function public.admin_mechanic_vetting(uuid) to authenticated, service_role;

-- The kinds approval requires (vetting.required_documents) that the mechanic has not sent.
create or replace function private.missing_documents(p_mechanic_id uuid) returns text[]
language sql stable security definer set search_path = ''
as $$
  select coalesce(array_agg(k order by k), '{}')
  from jsonb_array_elements_text(private.setting('vetting.required_documents')) k
  where not exists (select 1 from storage.objects o
                    where o.bucket_id = 'mechanic-documents'
                      and o.name like 'mechanics/' || p_mechanic_id::text || '/' || k || '/%'
                      and private.mechanic_document_owner(o.name) = p_mechanic_id)
$$;
revoke execute on function private.missing_documents(uuid) from public;
grant execute on function private.missing_documents(uuid) to service_role;

-- Admin: decides on an applicant (a mechanic pending approval). approved makes it an approved
-- mechanic (only with every required kind of document sent); rejected (the note is the reason the
-- applicant reads) and needs_more_info (the note says what is missing) leave it pending. Each
-- decision is kept, emailed to the applicant (vetting_decision) and audited (mechanic.review).
create or replace function public.admin_review_mechanic(p_mechanic_id uuid, p_decision text, p_note text)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_admin uuid := private.require_admin();
  v_note text;
  v_m public.mechanics;
  v_missing text[];
  v_id bigint;
begin
  perform private.require_arg('p_mechanic_id', p_mechanic_id);
  if p_decision is null or p_decision not in ('approved', 'rejected', 'needs_more_info') then
    perform private.raise_error('invalid_input', 'p_decision is approved, rejected or needs_more_info');
  end if;
  v_note := private.check_text('p_note', p_note, p_decision <> 'approved');
  select * into v_m from public.mechanics where id = p_mechanic_id for update;
  if not found then
    perform private.raise_error('not_found', 'no such mechanic');
  end if;
  if v_m.status <> 'pending' then
    perform private.raise_error('mechanic_not_under_review',
      format('the mechanic is %s: only an applicant is reviewed', v_m.status));
  end if;
  if p_decision = 'approved' then
    v_missing := private.missing_documents(p_mechanic_id);
    if cardinality(v_missing) > 0 then
      perform private.raise_error('vetting_documents_missing',
        format('approval requires these documents, not sent yet: %s', array_to_string(v_missing, ', ')));
    end if;
  end if;
  perform private.set_actor('admin', format('vetting: %s', p_decision));
  insert into public.mechanic_vetting_decisions (mechanic_id, decision, note, decided_by)
  values (p_mechanic_id, p_decision, v_note, v_admin)
  returning id into v_id;
  if p_decision = 'approved' then
    update public.mechanics set status = 'approved', approved_at = coalesce(approved_at, now())
    where id = p_mechanic_id;
  end if;
  perform private.enqueue_email('vetting_decision', p_mechanic_id, null,
    jsonb_build_object('decision', p_decision, 'note', v_note), format(':%s', v_id));
  perform private.record_admin_action('mechanic.review', 'mechanic', p_mechanic_id, v_note,
    jsonb_build_object('decision', p_decision, 'decision_id', v_id));
  return jsonb_build_object('mechanic_id', p_mechanic_id, 'decision_id', v_id, 'decision', p_decision,
                            'note', v_note, 'status', (select m.status from public.mechanics m where m.id = p_mechanic_id),
                            'vetting_state', p_decision);
end
$$;
revoke execute on function public.admin_review_mechanic(uuid, text, text) from public, anon;
grant execute on function public.admin_review_mechanic(uuid, text, text) to authenticated, service_role;
