-- Recommendations (docs/journey.md#recommendations): the rules, as data, that turn a session's
-- delivery or its submitted summary into offers to the customer, and the offers themselves with
-- their funnel (shown, clicked, purchased).

-- ---------------------------------------------------------------------------------------------
-- The rules: one row per rule; private.recommendations_evaluate reads every column. A new rule is a
-- new row (a migration), never code.
-- ---------------------------------------------------------------------------------------------
create table public.recommendation_rules (
  code text primary key constraint recommendation_rules_code_format check (code ~ '^[a-z][a-z0-9_]{1,60}$'),
  -- the event at which the rule is evaluated
  event text not null constraint recommendation_rules_event_check check (event in ('session_delivered', 'summary_submitted')),
  -- conditions, all of which must hold (null: any)
  session_types public.session_type[],
  duration_types public.duration_type[],
  -- urgencies of the session's latest submitted summary (a rule with urgencies needs a summary)
  urgencies text[] constraint recommendation_rules_urgencies_check
    check (urgencies <@ array['none', 'soon', 'urgent', 'unsafe_to_drive']::text[] and cardinality(urgencies) >= 1),
  -- the latest submitted summary lists at least one part
  requires_parts boolean not null default false,
  -- a micro-session that ran to its cap: actual minutes ≥ planned + granted extensions, or ended by the time cap
  requires_ran_to_cap boolean not null default false,
  -- the session was delivered (trust/delivery.sql), not only completed
  delivered_only boolean not null default true,
  -- the offer lists the verified workshops near the customer (the workshop directory); with none
  -- the rule does not fire
  lists_workshops boolean not null default false,
  -- what it produces
  kind text not null constraint recommendation_rules_kind_check
    check (kind in ('follow_up', 'maintenance_plan', 'premium_upgrade', 'workshop_visit')),
  title text not null constraint recommendation_rules_title_length check (char_length(title) between 1 and 120),
  description text not null
    constraint recommendation_rules_description_length check (char_length(description) between 1 and 1000),
  -- the catalog plan it sells (its price is read from service_plans when the offer is made)
  plan_code text references public.service_plans (code) on delete restrict,
  -- an app path; {session_id} is replaced by the session's id
  deep_link_template text not null
    constraint recommendation_rules_deep_link_format check (deep_link_template ~ '^/[A-Za-z0-9/_{}?=&.-]{0,250}$'),
  active boolean not null default true,
  -- the order in which a session's offers are made (lower first)
  priority int not null default 100,
  created_at timestamptz not null default now()
);
create index recommendation_rules_plan_code_idx on public.recommendation_rules (plan_code);  -- FK
alter table public.recommendation_rules enable row level security;
revoke all on public.recommendation_rules from anon, authenticated;
grant select on public.recommendation_rules to authenticated, service_role;
grant insert, update on public.recommendation_rules to service_role;
create policy recommendation_rules_select_admin on public.recommendation_rules for select to authenticated
  using ((select private.is_admin()));
comment on table public.recommendation_rules is
  'Recommendation rules as data: the event, the conditions and what the offer says; read by admins.';

-- ---------------------------------------------------------------------------------------------
-- The offers: one per (session, rule), written only by the functions and RPCs
-- ---------------------------------------------------------------------------------------------
create table public.recommendations (
  id uuid primary key default gen_random_uuid(),
  customer_id uuid not null references auth.users (id) on delete restrict,
  session_id uuid not null references public.sessions (id) on delete restrict,
  rule_code text not null references public.recommendation_rules (code) on delete restrict,
  kind text not null constraint recommendations_kind_check
    check (kind in ('follow_up', 'maintenance_plan', 'premium_upgrade', 'workshop_visit')),
  title text not null,
  description text not null,
  -- the plan's catalog price when the offer was made (null: no plan)
  price_cents int constraint recommendations_price_nonneg check (price_cents >= 0),
  currency text constraint recommendations_currency_format check (currency ~ '^[a-z]{3}$'),
  plan_code text references public.service_plans (code) on delete restrict,
  deep_link text not null,
  -- what the offer shows besides: the nearby workshops, the parts
  data jsonb not null default '{}' constraint recommendations_data_object check (jsonb_typeof(data) = 'object'),
  status text not null default 'new'
    constraint recommendations_status_check check (status in ('new', 'shown', 'clicked', 'purchased')),
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  shown_at timestamptz,
  clicked_at timestamptz,
  purchased_at timestamptz,
  -- the booking, follow-up or appointment that bought it
  purchase_subject_id uuid,
  constraint recommendations_session_rule_key unique (session_id, rule_code),
  constraint recommendations_price_with_plan check ((price_cents is null) = (plan_code is null)
                                                    and (currency is null) = (plan_code is null)),
  constraint recommendations_funnel_order check (
    (status = 'new') = (shown_at is null)
    and (clicked_at is null or shown_at is not null)
    and (status in ('clicked', 'purchased') or clicked_at is null)
    and (status = 'purchased') = (purchased_at is not null)
    and (status = 'purchased') = (purchase_subject_id is not null))
);
-- one purchase buys one offer of a kind
create unique index recommendations_purchase_subject_key on public.recommendations (purchase_subject_id, kind)
  where purchase_subject_id is not null;
create index recommendations_customer_idx on public.recommendations (customer_id, created_at desc);  -- FK
create index recommendations_rule_code_idx on public.recommendations (rule_code);  -- FK
create index recommendations_plan_code_idx on public.recommendations (plan_code);  -- FK
alter table public.recommendations enable row level security;
revoke all on public.recommendations from anon, authenticated;
grant select on public.recommendations to authenticated, service_role;
grant insert, update on public.recommendations to service_role;
-- The customer reads its own while they are current (an expired offer is no longer shown unless it
-- was bought); admins read all.
create policy recommendations_select on public.recommendations for select to authenticated
  using ((select private.is_admin())
         or (customer_id = (select auth.uid()) and (expires_at > now() or status = 'purchased')));
comment on table public.recommendations is
  'Offers made to a customer after a session by the recommendation rules, with their funnel timestamps.';

-- ---------------------------------------------------------------------------------------------
-- Settings, errors, rate classes
-- ---------------------------------------------------------------------------------------------
insert into private.settings (key, value, value_type, description) values
  ('recommendations.attribution_window', '"7 days"', 'interval',
   'a paid booking of a recommended plan counts as the recommendation''s purchase when it is paid within this long after the recommendation was shown'),
  ('recommendations.ttl', '"30 days"', 'interval',
   'how long a recommendation is offered after it is made; an expired one is no longer shown'),
  ('recommendations.max_workshops', '5', 'integer',
   'how many nearby verified workshops a workshop-visit recommendation lists');

insert into private.error_codes (sqlstate, name, http_status, description) values
  ('AD225', 'recommendation_expired', 409, 'The recommendation expired before it was shown or clicked: it is no longer offered.');

insert into private.rpc_rate_classes (function_name, class) values
  ('recommendation_shown', 'write'),
  ('recommendation_clicked', 'write')
on conflict (function_name) do update set class = excluded.class;

-- ---------------------------------------------------------------------------------------------
-- The rules the product starts with
-- ---------------------------------------------------------------------------------------------
insert into public.recommendation_rules
  (code, event, session_types, duration_types, urgencies, requires_parts, requires_ran_to_cap, delivered_only,
   lists_workshops, kind, title, description, plan_code, deep_link_template, priority) values
  ('urgent_chat_workshop_visit', 'summary_submitted', '{chat}', null, '{urgent,unsafe_to_drive}', false, false, true,
   true, 'workshop_visit', 'Get your car looked at in person',
   'Your mechanic rated this problem urgent. These verified workshops near you can inspect and repair it.',
   null, '/sessions/{session_id}/workshops', 10),
  ('micro_cap_video_upgrade', 'session_delivered', null, '{micro}', null, false, true, true,
   false, 'premium_upgrade', 'Need more time? Continue on video',
   'Your quick session ran to its time limit. A 45-minute video session lets a mechanic see the problem and walk you through it.',
   'video15', '/sessions/{session_id}/upgrade?plan=video15', 20),
  ('diagnostic_parts_maintenance_plan', 'summary_submitted', '{diagnostic}', null, null, true, false, true,
   false, 'maintenance_plan', 'Plan the repairs your mechanic recommends',
   'Your diagnostic lists parts to replace. Keep them in a maintenance plan and book the work at a workshop.',
   null, '/sessions/{session_id}/maintenance-plan', 30),
  ('delivered_follow_up', 'session_delivered', null, null, null, false, false, true,
   false, 'follow_up', 'Ask a follow-up question',
   'Something still unclear? Ask the mechanic who helped you a follow-up question about this session.',
   null, '/sessions/{session_id}/follow-up', 90);
