-- The customer's journey around a session (docs/journey.md): the shared tables every part of it
-- writes or reads. The structured summary a mechanic writes for a session, in versions; the record
-- of a customer's interactions that the admin funnel counts.

-- ---------------------------------------------------------------------------------------------
-- Structured summaries: one draft at a time per session, submitted versions kept as history
-- ---------------------------------------------------------------------------------------------
create table public.session_summaries (
  id uuid primary key default gen_random_uuid(),
  session_id uuid not null references public.sessions (id) on delete restrict,
  version int not null constraint session_summaries_version_positive check (version >= 1),
  status text not null default 'draft'
    constraint session_summaries_status_check check (status in ('draft', 'submitted')),
  author_id uuid not null references auth.users (id) on delete restrict,
  -- what the mechanic found
  findings text constraint session_summaries_findings_length check (char_length(findings) <= 8000),
  -- ["checked the coolant level", …]
  steps_taken jsonb not null default '[]'
    constraint session_summaries_steps_array check (jsonb_typeof(steps_taken) = 'array'),
  -- [{"name": text, "part_number": text|null, "estimated_cost_cents": int|null}, …]
  parts jsonb not null default '[]'
    constraint session_summaries_parts_array check (jsonb_typeof(parts) = 'array'),
  -- ["replace the thermostat within a week", …]
  next_steps jsonb not null default '[]'
    constraint session_summaries_next_steps_array check (jsonb_typeof(next_steps) = 'array'),
  urgency text not null default 'none'
    constraint session_summaries_urgency_check check (urgency in ('none', 'soon', 'urgent', 'unsafe_to_drive')),
  -- Storage object names (bucket session-files) of the photos the summary shows
  photo_paths text[] not null default '{}'
    constraint session_summaries_photos_size check (cardinality(photo_paths) <= 20),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  submitted_at timestamptz,
  constraint session_summaries_version_key unique (session_id, version),
  constraint session_summaries_submitted_at check ((status = 'submitted') = (submitted_at is not null))
);
create unique index session_summaries_one_draft on public.session_summaries (session_id) where status = 'draft';
create index session_summaries_author_id_idx on public.session_summaries (author_id);  -- FK
alter table public.session_summaries enable row level security;
revoke all on public.session_summaries from anon, authenticated;
grant select, insert, update on public.session_summaries to service_role;
grant select on public.session_summaries to authenticated;
-- Written only by the summary RPCs. The session's mechanic reads every version (drafts too), the
-- customer the submitted ones, admins all.
create policy session_summaries_select on public.session_summaries for select to authenticated
  using ((select private.is_admin())
         or exists (select 1 from public.sessions s
                    where s.id = session_summaries.session_id
                      and (s.mechanic_id = (select auth.uid())
                           or (s.customer_id = (select auth.uid()) and session_summaries.status = 'submitted'))));

-- ---------------------------------------------------------------------------------------------
-- CRM interactions: written by the database's own events (and by the RPCs that record a view or a
-- click); read by admins only
-- ---------------------------------------------------------------------------------------------
create table public.crm_interactions (
  id bigint generated always as identity primary key,
  customer_id uuid not null references auth.users (id) on delete restrict,
  kind text not null constraint crm_interactions_kind_check check (kind in (
    'intake_created', 'request_filed', 'session_delivered', 'summary_viewed',
    'recommendation_shown', 'recommendation_clicked', 'recommendation_purchased',
    'follow_up_asked', 'review_written', 'purchase')),
  occurred_at timestamptz not null default now(),
  intake_id uuid references public.intakes (id) on delete set null,
  session_id uuid references public.sessions (id) on delete set null,
  -- the recommendation, follow-up, review or payment it is about, when there is one
  subject_id uuid,
  data jsonb not null default '{}' constraint crm_interactions_data_object check (jsonb_typeof(data) = 'object')
);
create index crm_interactions_customer_idx on public.crm_interactions (customer_id, occurred_at);
create index crm_interactions_kind_idx on public.crm_interactions (kind, occurred_at);
create index crm_interactions_intake_id_idx on public.crm_interactions (intake_id);    -- FK
create index crm_interactions_session_id_idx on public.crm_interactions (session_id);  -- FK
alter table public.crm_interactions enable row level security;
revoke all on public.crm_interactions from anon, authenticated;
grant select on public.crm_interactions to authenticated, service_role;
grant insert on public.crm_interactions to service_role;
create policy crm_interactions_select_admin on public.crm_interactions for select to authenticated
  using ((select private.is_admin()));
