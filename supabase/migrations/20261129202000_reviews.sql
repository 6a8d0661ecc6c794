-- Reviews and reputation (docs/trust.md, "Reviews and reputation").
-- One review per delivered session, by its customer; the mechanic's aggregates (rating_count,
-- rating_sum, rating_avg, and the Bayesian rating_score the ranking orders by) are kept exact in the
-- transaction of every submit, edit and hide. The public sees visible reviews only through
-- public.mechanic_reviews_public, which reads a projection holding nothing but public columns.

insert into private.error_codes (sqlstate, name, http_status, description) values
  ('AD110', 'session_not_delivered', 409, 'The session was not completed as delivered: it cannot be reviewed.'),
  ('AD111', 'review_window_closed', 409, 'The time to review this session is over.'),
  ('AD112', 'review_edit_window_closed', 409, 'The review can no longer be edited.'),
  ('AD113', 'review_already_replied', 409, 'The mechanic already replied to this review.'),
  ('AD114', 'review_already_hidden', 409, 'The review is already hidden.'),
  ('AD115', 'review_hidden', 409, 'The review was hidden by an admin: it can no longer be edited or replied to.');

insert into private.settings (key, value, value_type, description) values
  ('reviews.submit_window', '"14 days"', 'interval',
   'a delivered session can be reviewed by its customer this long after it ended'),
  ('reviews.edit_window', '"48 hours"', 'interval',
   'a review can be edited (submitted again) this long after it was first submitted'),
  ('reviews.prompt_delay', '"1 hour"', 'interval',
   'the review prompt email goes this long after a delivered session ended, if no review was written'),
  ('reviews.prior_mean', '4.5', 'number',
   'Bayesian rating: the rating a mechanic is assumed to have before its reviews (1 to 5)'),
  ('reviews.prior_weight', '10', 'number',
   'Bayesian rating: how many reviews the prior mean weighs (more: a mechanic needs more reviews to move away from it)');

insert into private.email_templates (name, has_html, transactional, description) values
  ('review_prompt', true, false, 'an hour after a delivered session with no review yet: asks for one');

-- ---------------------------------------------------------------------------------------------
-- The tag vocabulary
-- ---------------------------------------------------------------------------------------------
create table public.review_tags (
  tag text primary key constraint review_tags_tag_format check (tag ~ '^[a-z][a-z_]{1,40}$'),
  label text not null constraint review_tags_label_length check (char_length(label) between 1 and 60),
  sort_order int not null default 0
);
insert into public.review_tags (tag, label, sort_order) values
  ('clear_explanation', 'Clear explanation', 1),
  ('solved_problem', 'Solved my problem', 2),
  ('on_time', 'On time', 3),
  ('friendly', 'Friendly', 4),
  ('good_value', 'Good value', 5),
  ('knowledgeable', 'Knowledgeable', 6);
alter table public.review_tags enable row level security;
create policy select_all on public.review_tags for select to anon, authenticated using (true);
grant select on public.review_tags to anon, authenticated, service_role;
grant insert, update, delete on public.review_tags to service_role;

-- ---------------------------------------------------------------------------------------------
-- Reviews
-- ---------------------------------------------------------------------------------------------
create table public.mechanic_reviews (
  id uuid primary key default gen_random_uuid(),
  session_id uuid not null constraint mechanic_reviews_session_id_key unique
    references public.sessions (id) on delete restrict,
  customer_id uuid not null references auth.users (id) on delete restrict,
  mechanic_id uuid not null references public.mechanics (id) on delete restrict,
  rating smallint not null constraint mechanic_reviews_rating_range check (rating between 1 and 5),
  body text constraint mechanic_reviews_body_length check (char_length(body) between 1 and 2000),
  tags text[] not null default '{}' constraint mechanic_reviews_tags_size check (cardinality(tags) <= 20),
  reviewer_first_name text
    constraint mechanic_reviews_first_name_length check (char_length(reviewer_first_name) between 1 and 40),
  reply text constraint mechanic_reviews_reply_length check (char_length(reply) between 1 and 2000),
  replied_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  edit_count int not null default 0 constraint mechanic_reviews_edit_count_nonneg check (edit_count >= 0),
  hidden_at timestamptz,
  hidden_reason text constraint mechanic_reviews_hidden_reason_length check (char_length(hidden_reason) between 1 and 2000),
  hidden_by uuid references auth.users (id) on delete set null,
  constraint mechanic_reviews_reply_when check ((reply is null) = (replied_at is null)),
  constraint mechanic_reviews_hidden_when check ((hidden_at is null) = (hidden_reason is null)),
  constraint mechanic_reviews_customer_is_not_mechanic check (customer_id <> mechanic_id)
);
create index mechanic_reviews_mechanic_id_idx on public.mechanic_reviews (mechanic_id, created_at desc);  -- FK; aggregates
create index mechanic_reviews_customer_id_idx on public.mechanic_reviews (customer_id, created_at desc);  -- FK; own
create index mechanic_reviews_hidden_by_idx on public.mechanic_reviews (hidden_by) where hidden_by is not null;  -- FK
comment on table public.mechanic_reviews is
  'One review per delivered session, by its customer; written only through submit_review, reply_to_review '
  'and admin_hide_review. The public reads public.mechanic_reviews_public.';
comment on column public.mechanic_reviews.reviewer_first_name is
  'the customer''s first name when the review was first submitted (what the public view shows)';

alter table public.mechanic_reviews enable row level security;
create policy select_own_about_me_or_admin on public.mechanic_reviews for select to authenticated
  using (customer_id = (select auth.uid()) or mechanic_id = (select auth.uid()) or (select private.is_admin()));
grant select on public.mechanic_reviews to authenticated, service_role;
grant insert, update on public.mechanic_reviews to service_role;

-- What the public may see of visible reviews: one row per visible review, public columns only.
-- Written by the reviews functions (reviews/reviews.sql) in the transaction that changes the review;
-- read through the security-invoker view public.mechanic_reviews_public. A separate relation
-- because column privileges are per role, not per row: the table above must give a customer its
-- own review's session, and the public nobody's.
create table private.review_cards (
  review_id uuid primary key references public.mechanic_reviews (id) on delete cascade,
  mechanic_id uuid not null references public.mechanics (id) on delete cascade,
  rating smallint not null,
  body text,
  tags text[] not null,
  reply text,
  replied_at timestamptz,
  reviewer_first_name text,
  created_at timestamptz not null
);
create index review_cards_mechanic_id_idx on private.review_cards (mechanic_id, created_at desc);  -- FK; per mechanic
grant select on private.review_cards to anon, authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- The mechanic's reputation
-- ---------------------------------------------------------------------------------------------
-- rating_sum: sum of the visible ratings (with rating_count, the exact source of rating_avg and
-- rating_score). rating_score: the Bayesian average the ranking and listings order by,
-- (prior_weight * prior_mean + rating_sum) / (prior_weight + rating_count); derived by a trigger.
-- No review exists yet: every rating shown before this migration was not computed from reviews.
alter table public.mechanics
  add column rating_sum int not null default 0 constraint mechanics_rating_sum_nonneg check (rating_sum >= 0),
  add column rating_score numeric(7, 5) not null default 4.5
    constraint mechanics_rating_score_range check (rating_score between 1 and 5);
update public.mechanics set rating_avg = null, rating_count = 0, rating_sum = 0, rating_score = 4.5;
alter table public.mechanics add constraint mechanics_rating_sum_within_count
  check (rating_sum between rating_count and 5 * rating_count);
comment on column public.mechanics.rating_sum is 'sum of the ratings of the visible reviews about this mechanic';
comment on column public.mechanics.rating_score is
  'Bayesian rating: (reviews.prior_weight * reviews.prior_mean + rating_sum) / (reviews.prior_weight + rating_count)';
-- The directory shows the score and the customers served (the ranking's experience).
grant select (rating_score, customers_served) on public.mechanics to anon;
