-- Follow-up questions (docs/journey.md#follow-up-questions): a customer asks a short question about
-- a delivered session; it becomes a small chat session of its own, linked to its parent, offered
-- to the parent's mechanic first. The rules are in supabase/functions_sql/journey/follow_ups.sql.

insert into private.error_codes (sqlstate, name, http_status, description) values
  ('AD215', 'follow_up_not_available', 409, 'The session cannot take a follow-up question: it did not end completed and delivered.'),
  ('AD216', 'follow_up_window_closed', 409, 'The window for follow-up questions on this session has closed.'),
  ('AD217', 'follow_up_bad_photo', 400, 'A photo of a follow-up question is not a file of the session it follows.');

insert into private.settings (key, value, value_type, description) values
  ('follow_ups.window', '"7 days"', 'interval',
   'how long after a delivered session ends its customer may ask a follow-up question'),
  ('follow_ups.same_mechanic_window', '"30 minutes"', 'interval',
   'a follow-up question is offered to the mechanic of the session it follows alone for this long, then routed as usual'),
  ('follow_ups.free_per_session', '1', 'integer',
   'free follow-up questions per session (counted over the session and the follow-ups that descend from it); more are paid through checkout (plan follow_up)');

-- The plan a paid follow-up is priced with: an advice-only chat capped like a micro session.
-- Cheaper than the micro plan (499) because the mechanic already knows the vehicle and the case.
-- Not active: `active` is what customers book directly (request_session, create_checkout with a
-- plan_code, hold_slot), and a follow-up without the session it follows would be a cheap micro
-- session. ask_follow_up and its checkout read the row whatever `active` says.
insert into public.service_plans
  (code, name, description, session_type, duration_type, minutes, price_cents, advice_only, active, sort_order) values
  ('follow_up', 'Follow-up Question (up to 10 min)',
   'A question about a session already delivered, answered in chat by the same mechanic first.',
   'chat', 'micro', 10, 299, true, false, 60);

-- A follow-up session names the session it follows.
alter table public.sessions add column parent_session_id uuid references public.sessions (id) on delete restrict;
create index sessions_parent_session_id_idx on public.sessions (parent_session_id);  -- FK

-- ---------------------------------------------------------------------------------------------
-- Follow-up questions: asked (pending payment when past the free ones) → filed (its session exists)
-- ---------------------------------------------------------------------------------------------
create table public.follow_ups (
  id uuid primary key default gen_random_uuid(),
  customer_id uuid not null references auth.users (id) on delete restrict,
  -- the delivered session the question is about
  parent_session_id uuid not null references public.sessions (id) on delete restrict,
  -- the first session of the thread (not itself a follow-up): free follow-ups are counted on it
  root_session_id uuid not null references public.sessions (id) on delete restrict,
  -- the follow-up's own intake: the parent's vehicle, the question as its concern
  intake_id uuid not null references public.intakes (id) on delete restrict,
  -- the follow-up's session, once filed
  session_id uuid constraint follow_ups_session_id_key unique references public.sessions (id) on delete restrict,
  question text not null constraint follow_ups_question_length check (char_length(question) between 3 and 2000),
  -- Storage object names (bucket session-files) of files of the parent session
  photo_paths text[] not null default '{}' constraint follow_ups_photos_size check (cardinality(photo_paths) <= 10),
  free boolean not null,
  price_cents int not null constraint follow_ups_price_nonneg check (price_cents >= 0),
  status text not null constraint follow_ups_status_check check (status in ('pending_payment', 'filed')),
  created_at timestamptz not null default now(),
  filed_at timestamptz,
  constraint follow_ups_filed_has_session check ((status = 'filed') = (session_id is not null and filed_at is not null)),
  constraint follow_ups_free_is_free check (not free or price_cents = 0)
);
create index follow_ups_customer_id_idx on public.follow_ups (customer_id, created_at desc);  -- FK
create index follow_ups_parent_session_id_idx on public.follow_ups (parent_session_id);      -- FK
create index follow_ups_root_session_id_idx on public.follow_ups (root_session_id);          -- FK; free count
create index follow_ups_intake_id_idx on public.follow_ups (intake_id);                      -- FK
alter table public.follow_ups enable row level security;
revoke all on public.follow_ups from anon, authenticated;
grant select on public.follow_ups to authenticated;
grant select, insert, update on public.follow_ups to service_role;
-- Written only by ask_follow_up and its checkout. The customer reads its own; the mechanic of the
-- parent session (offered it first) and the mechanic who took it read it; admins all.
create policy follow_ups_select on public.follow_ups for select to authenticated
  using (customer_id = (select auth.uid())
         or (select private.is_admin())
         or exists (select 1 from public.sessions s
                    where s.id in (follow_ups.parent_session_id, follow_ups.session_id)
                      and s.mechanic_id = (select auth.uid())));

-- A paid follow-up's booking names it.
alter table public.bookings add column follow_up_id uuid references public.follow_ups (id) on delete restrict;
create index bookings_follow_up_id_idx on public.bookings (follow_up_id, status);  -- FK; reuse of an open checkout

-- Storage: the participants of a follow-up read the parent session's files its question refers
-- to (the mechanic who takes it may not be the parent's), and no other file of that session.
create policy follow_up_files_select on storage.objects for select to authenticated
  using (bucket_id = 'session-files' and (storage.foldername(name))[1] = 'sessions'
         and exists (select 1 from public.follow_ups f
                     where f.session_id is not null and storage.objects.name = any (f.photo_paths)
                       and (select private.can_access_session(f.session_id))));

insert into private.rpc_rate_classes (function_name, class) values ('ask_follow_up', 'request');
