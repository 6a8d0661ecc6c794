-- The customer's journey (docs/journey.md): photos and short videos attached to an intake before a
-- mechanic takes it (the intake-files bucket, its policies and their helpers), and the structured
-- summary's settings, errors, rate classes and email description.

-- ---------------------------------------------------------------------------------------------
-- Media before the match: a private bucket, objects under intakes/<intake_id>/<file>
-- ---------------------------------------------------------------------------------------------
-- 50 MB covers a short phone video; photos are far smaller. Storage refuses anything larger or of
-- another type before a byte is stored; the policies below check the same limits again from the
-- object's metadata when it carries them.
insert into storage.buckets (id, name, public, file_size_limit, allowed_mime_types)
values ('intake-files', 'intake-files', false, 52428800,
        array['image/jpeg', 'image/png', 'image/webp', 'image/heic', 'video/mp4', 'video/quicktime'])
on conflict (id) do nothing;

insert into private.settings (key, value, value_type, description) values
  ('media.max_files_per_intake', '10', 'integer',
   'photos and videos one intake may carry (the intake-files bucket)'),
  ('summaries.submit_window', '"24 hours"', 'interval',
   'how long after a session''s end its mechanic may still save, submit and correct the summary'),
  ('summaries.max_items', '30', 'integer',
   'most steps taken, parts or next steps one summary may list (each list)'),
  ('summaries.max_part_cost_cents', '10000000', 'integer',
   'highest estimated cost of one part in a summary, in cents (a larger one is a typo)');

-- The intake of an object name intakes/<intake_id>/<file>; null for any other shape.
create function private.intake_file_intake_id(p_name text) returns uuid
language sql immutable set search_path = ''
as $$
  select case when cardinality(string_to_array(p_name, '/')) = 3
                   and (string_to_array(p_name, '/'))[1] = 'intakes'
                   and (string_to_array(p_name, '/'))[3] <> ''
              then private.try_uuid((string_to_array(p_name, '/'))[2]) end
$$;

-- The open requests (pending, unattended) filed from an intake, whoever may see them.
create function private.intake_open_request_ids(p_intake_id uuid) returns setof uuid
language sql stable security definer set search_path = ''
as $$
  select r.id from public.session_requests r join public.sessions s on s.id = r.session_id
  where s.intake_id = p_intake_id and r.status in ('pending', 'unattended')
$$;

-- The caller is the intake's customer, or the mechanic of a session the intake feeds (scheduled,
-- waiting, live or completed: the files follow the intake into its session).
create function private.is_intake_party(p_intake_id uuid) returns boolean
language sql stable security definer set search_path = ''
as $$
  select exists (select 1 from public.intakes i where i.id = p_intake_id and i.customer_id = (select auth.uid()))
      or exists (select 1 from public.sessions s
                 where s.intake_id = p_intake_id and s.mechanic_id = (select auth.uid())
                   and s.status in ('scheduled', 'waiting', 'live', 'completed'))
$$;

-- Who reads an intake's files: its customer, the session's mechanic, admins, and every mechanic
-- to whom an open request of the intake is offered. The last is asked of session_requests under
-- the caller's own row level security (this function runs as the caller): a mechanic reads the
-- files exactly while it sees the request row (approved, the preferred mechanic's window, not yet
-- taken), and whatever that policy becomes, the files follow it.
create function private.can_read_intake_files(p_intake_id uuid) returns boolean
language sql stable security invoker set search_path = ''
as $$
  select p_intake_id is not null and (
    (select private.is_admin())
    or private.is_intake_party(p_intake_id)
    or exists (select 1 from public.session_requests r
               where r.id in (select private.intake_open_request_ids(p_intake_id))
                 and r.status in ('pending', 'unattended')))
$$;

-- The intake's customer changes its files while nobody holds it yet (intake new or pending).
create function private.can_change_intake_files(p_intake_id uuid) returns boolean
language sql stable security definer set search_path = ''
as $$
  select exists (select 1 from public.intakes i
                 where i.id = p_intake_id and i.customer_id = (select auth.uid()) and i.status in ('new', 'pending'))
$$;

-- A new object under intakes/<intake_id>/: the customer may change the intake's files; size and
-- type within the bucket's limits when the metadata carries them; fewer than
-- media.max_files_per_intake files already there. Volatile: it waits for the other uploads to the
-- same intake (a transaction-scoped advisory lock) and then counts with a fresh snapshot, so two
-- uploads at once cannot both take the last place.
create function private.can_add_intake_file(p_name text, p_metadata jsonb) returns boolean
language plpgsql volatile security definer set search_path = ''
as $$
declare
  v_intake uuid := private.intake_file_intake_id(p_name);
  v_limit bigint;
  v_types text[];
begin
  if v_intake is null or not private.can_change_intake_files(v_intake) then
    return false;
  end if;
  select b.file_size_limit, b.allowed_mime_types into v_limit, v_types from storage.buckets b where b.id = 'intake-files';
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
  perform pg_advisory_xact_lock(hashtextextended('intake-files:' || v_intake::text, 0));
  return (select count(*) from storage.objects o
          where o.bucket_id = 'intake-files' and o.name like 'intakes/' || v_intake::text || '/%')
         < private.setting_int('media.max_files_per_intake');
end
$$;

revoke execute on function private.intake_file_intake_id(text), private.intake_open_request_ids(uuid),
  private.is_intake_party(uuid), private.can_read_intake_files(uuid), private.can_change_intake_files(uuid),
  private.can_add_intake_file(text, jsonb) from public;
grant execute on function private.intake_file_intake_id(text), private.intake_open_request_ids(uuid),
  private.is_intake_party(uuid), private.can_read_intake_files(uuid), private.can_change_intake_files(uuid),
  private.can_add_intake_file(text, jsonb) to authenticated, service_role;

-- Nobody updates an intake file (no upsert): a changed photo is deleted and uploaded again.
create policy intake_files_select on storage.objects for select to authenticated
  using (bucket_id = 'intake-files' and (select private.can_read_intake_files(private.intake_file_intake_id(name))));
create policy intake_files_insert on storage.objects for insert to authenticated
  with check (bucket_id = 'intake-files' and owner_id = (select auth.uid())::text
              and (select private.can_add_intake_file(name, metadata)));
create policy intake_files_delete on storage.objects for delete to authenticated
  using (bucket_id = 'intake-files' and (select private.can_change_intake_files(private.intake_file_intake_id(name))));

-- ---------------------------------------------------------------------------------------------
-- Structured summary: errors, rate classes, the email's description
-- ---------------------------------------------------------------------------------------------
insert into private.error_codes (sqlstate, name, http_status, description) values
  ('AD205', 'summary_invalid', 422,
   'The summary is malformed: the message names the field (e.g. parts[1].estimated_cost_cents) and why; nothing was saved.'),
  ('AD206', 'summary_not_open', 409,
   'The session is not live or completed (not started, or cancelled): it has no summary to write.'),
  ('AD207', 'summary_window_closed', 409,
   'The time to save, submit or correct this session''s summary is over (summaries.submit_window after its end).'),
  ('AD208', 'summary_not_submittable', 409,
   'There is no draft to submit (already submitted, or never saved), or the session has not ended yet.');

insert into private.rpc_rate_classes (function_name, class) values
  ('save_summary', 'session'),
  ('submit_summary', 'session'),
  ('get_session_summary', 'session')
on conflict (function_name) do update set class = excluded.class;

update private.email_templates
set description = 'the mechanic submitted the session''s summary (each corrected version is sent again)'
where name = 'summary_delivered';
