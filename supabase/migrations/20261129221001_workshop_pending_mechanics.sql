-- Workshops: a workshop's pending mechanic rows (applicants) are read by the staff who manage its
-- roster, not by every member (every signed-in user reads approved mechanics anyway).
drop policy select_directory_self_workshop_or_admin on public.mechanics;
create policy select_directory_self_workshop_or_admin on public.mechanics for select to authenticated
  using (status = 'approved' or id = (select auth.uid())
         or organization_id in (select private.my_workshop_ids('manage_roster')) or (select private.is_admin()));
