-- Follow-up photos (docs/journey.md#follow-up-questions): the Storage policy that lets a follow-up's
-- participants read the parent session's files its question names matches them through a GIN index
-- on follow_ups.photo_paths (array containment), instead of scanning every follow-up for each object.
create index follow_ups_photo_paths_idx on public.follow_ups using gin (photo_paths);

drop policy follow_up_files_select on storage.objects;
create policy follow_up_files_select on storage.objects for select to authenticated
  using (bucket_id = 'session-files' and (storage.foldername(name))[1] = 'sessions'
         and exists (select 1 from public.follow_ups f
                     where f.session_id is not null and f.photo_paths @> array[storage.objects.name]
                       and (select private.can_access_session(f.session_id))));
