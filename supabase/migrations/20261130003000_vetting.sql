-- Operations (docs/operations.md, "Vetting" and "Suspension"): the documents a mechanic applicant
-- sends (a private bucket, its policies and their helpers), the history of the admins' decisions,
-- the settings, errors, rate classes and the decision email.

-- ---------------------------------------------------------------------------------------------
-- Documents: a private bucket, objects under mechanics/<mechanic_id>/<kind>/<file>
-- ---------------------------------------------------------------------------------------------
-- Identity papers: PDF scans and phone photos; 10 MB covers a multi-page scan. Storage refuses
-- anything larger or of another type before a byte is stored; the insert policy checks the same
-- limits again from the object's metadata when it carries them.
insert into storage.buckets (id, name, public, file_size_limit, allowed_mime_types)
values ('mechanic-documents', 'mechanic-documents', false, 10485760,
        array['application/pdf', 'image/jpeg', 'image/png', 'image/heic'])
on conflict (id) do nothing;

insert into private.settings (key, value, value_type, description) values
  ('vetting.required_documents', '["licence", "insurance"]', 'text[]',
   'kinds of document (licence, certification, insurance) an applicant must have sent before an admin can approve it'),
  ('vetting.max_documents', '30', 'integer',
   'documents one mechanic may send in all (the mechanic-documents bucket)');

-- The mechanic of an object name mechanics/<mechanic_id>/<kind>/<file> with a known kind; null
-- for any other shape.
create function private.mechanic_document_owner(p_name text) returns uuid
language sql immutable set search_path = ''
as $$
  select case when cardinality(string_to_array(p_name, '/')) = 4
               and split_part(p_name, '/', 1) = 'mechanics'
               and split_part(p_name, '/', 2) ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
               and split_part(p_name, '/', 3) in ('licence', 'certification', 'insurance')
               and split_part(p_name, '/', 4) ~ '^[A-Za-z0-9][A-Za-z0-9._ -]{0,119}$'
         then split_part(p_name, '/', 2)::uuid end
$$;

-- The caller may send a document: into its own folder only, while it is an applicant whose last
-- decision is not a rejection (pending, or asked for more), or an approved mechanic renewing one;
-- a suspended mechanic sends nothing. Size and type again from the metadata, and a cap on the count.
create function private.can_add_mechanic_document(p_name text, p_metadata jsonb) returns boolean
language plpgsql volatile security definer set search_path = ''
as $$
declare
  v_mechanic uuid := private.mechanic_document_owner(p_name);
  v_limit bigint;
  v_types text[];
begin
  if v_mechanic is null or v_mechanic is distinct from auth.uid() then
    return false;
  end if;
  if not exists (
    select 1 from public.mechanics m
    where m.id = v_mechanic
      and (m.status = 'approved'
           or (m.status = 'pending'
               and coalesce((select d.decision from public.mechanic_vetting_decisions d
                             where d.mechanic_id = m.id order by d.decided_at desc, d.id desc limit 1), '')
                   <> 'rejected'))) then
    return false;
  end if;
  select b.file_size_limit, b.allowed_mime_types into v_limit, v_types
  from storage.buckets b where b.id = 'mechanic-documents';
  if jsonb_typeof(p_metadata) = 'object' then
    if p_metadata ? 'size' and (jsonb_typeof(p_metadata -> 'size') <> 'number'
                                or (p_metadata ->> 'size')::numeric not between 1 and v_limit) then
      return false;
    end if;
    if p_metadata ? 'mimetype' and (jsonb_typeof(p_metadata -> 'mimetype') <> 'string'
                                    or not ((p_metadata ->> 'mimetype') = any (v_types))) then
      return false;
    end if;
  end if;
  perform pg_advisory_xact_lock(hashtextextended('mechanic-documents:' || v_mechanic::text, 0));
  return (select count(*) from storage.objects o
          where o.bucket_id = 'mechanic-documents' and o.name like 'mechanics/' || v_mechanic::text || '/%')
         < private.setting_int('vetting.max_documents');
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Decisions: the history, one row per admin decision
-- ---------------------------------------------------------------------------------------------
create table public.mechanic_vetting_decisions (
  id bigint generated always as identity primary key,
  mechanic_id uuid not null references public.mechanics (id) on delete cascade,
  decision text not null
    constraint mechanic_vetting_decisions_decision check (decision in ('approved', 'rejected', 'needs_more_info')),
  -- what the applicant reads: the reason of a rejection, what is missing, or a word of welcome
  note text constraint mechanic_vetting_decisions_note_length check (char_length(note) <= 2000),
  -- the admin who decided; not readable by the applicant (column grants below)
  decided_by uuid references auth.users (id) on delete set null,
  decided_at timestamptz not null default now(),
  constraint mechanic_vetting_decisions_note_required
    check (decision = 'approved' or nullif(btrim(note), '') is not null)
);
create index mechanic_vetting_decisions_mechanic_idx on public.mechanic_vetting_decisions (mechanic_id, decided_at);
create index mechanic_vetting_decisions_decided_by_idx on public.mechanic_vetting_decisions (decided_by);  -- FK
alter table public.mechanic_vetting_decisions enable row level security;
revoke all on public.mechanic_vetting_decisions from public, anon, authenticated;
-- Written only by admin_review_mechanic; the admin's id is read by admins through admin_mechanic_vetting.
grant select (id, mechanic_id, decision, note, decided_at) on public.mechanic_vetting_decisions to authenticated;
grant all on public.mechanic_vetting_decisions to service_role;
create policy mechanic_vetting_decisions_select on public.mechanic_vetting_decisions for select to authenticated
  using (mechanic_id = (select auth.uid()) or (select private.is_admin()));

revoke execute on function private.mechanic_document_owner(text), private.can_add_mechanic_document(text, jsonb)
  from public;
grant execute on function private.mechanic_document_owner(text), private.can_add_mechanic_document(text, jsonb)
  to authenticated, service_role;

-- Documents are identity papers: only admins select them (and so only admins can sign URLs for
-- them). The applicant does not read them back: a stolen session would otherwise be a way to take
-- a licence and an insurance certificate away; it lists what it sent through my_vetting (names and
-- kinds). Nobody updates or deletes one through the API (no upsert): a renewed document is a new file.
create policy mechanic_documents_select on storage.objects for select to authenticated
  using (bucket_id = 'mechanic-documents' and (select private.is_admin()));
create policy mechanic_documents_insert on storage.objects for insert to authenticated
  with check (bucket_id = 'mechanic-documents' and owner_id = (select auth.uid())::text
              and (select private.can_add_mechanic_document(name, metadata)));

-- ---------------------------------------------------------------------------------------------
-- Errors, rate classes, the email
-- ---------------------------------------------------------------------------------------------
insert into private.error_codes (sqlstate, name, http_status, description) values
  ('AD260', 'vetting_documents_missing', 409,
   'The applicant has not sent every kind of document approval requires (vetting.required_documents): the message lists the missing kinds.'),
  ('AD261', 'mechanic_not_under_review', 409,
   'Only an applicant (a mechanic pending approval) is reviewed; an approved or suspended mechanic is suspended or reinstated instead.'),
  ('AD265', 'mechanic_not_suspendable', 409,
   'Only an approved mechanic is suspended (an applicant is rejected instead; a suspended one is suspended already).'),
  ('AD266', 'mechanic_not_suspended', 409,
   'Only a suspended mechanic is reinstated.');

insert into private.rpc_rate_classes (function_name, class) values
  ('admin_review_mechanic', 'admin'),
  ('admin_suspend_mechanic', 'admin'),
  ('admin_reinstate_mechanic', 'admin');

insert into private.email_templates (name, has_html, transactional, description) values
  ('vetting_decision', true, true,
   'to a mechanic applicant at each admin decision: approved, rejected (with the reason) or more information needed (what is missing)');
