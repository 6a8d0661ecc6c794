-- Trust: delivery evidence, the objection window and the mechanic's standing.
--
-- session_participants.ready_at: when the participant called start_session; a session goes live
-- once both are ready (or both joined the LiveKit room).
alter table public.session_participants add column ready_at timestamptz;
comment on column public.session_participants.ready_at is
  'when this participant called start_session; the session goes live once both are ready';

-- payouts.release_at: end of the objection window (the session''s end + payments.payout_hold);
-- payouts.admin_released_at: an admin released it although the mechanic is not in good standing.
alter table public.payouts
  add column release_at timestamptz,
  add column admin_released_at timestamptz;
comment on column public.payouts.release_at is
  'not released before this time (the objection window, payments.payout_hold after the session ended)';
comment on column public.payouts.admin_released_at is
  'an admin released this payout (admin_release_payouts) although its mechanic was not in good standing';
create index payouts_release_due_idx on public.payouts (release_at) where status = 'waiting';  -- release job

-- mechanics.payouts_held: set when an approved mechanic is suspended (or sent back to pending);
-- cleared only by admin_release_payouts, so re-approval alone does not release money.
alter table public.mechanics add column payouts_held boolean not null default false;
comment on column public.mechanics.payouts_held is
  'payouts wait until an admin releases them (set when the mechanic left approved standing)';

-- A customer's objection to a delivered session within the objection window.
create table public.session_problem_reports (
  session_id uuid primary key references public.sessions (id) on delete cascade,
  customer_id uuid not null references auth.users (id) on delete cascade,
  reason text not null constraint session_problem_reports_reason_length check (char_length(reason) between 1 and 4000),
  reported_at timestamptz not null default now()
);
create index session_problem_reports_customer_id_idx on public.session_problem_reports (customer_id);  -- FK
alter table public.session_problem_reports enable row level security;
create policy select_own_or_admin on public.session_problem_reports for select to authenticated
  using (customer_id = (select auth.uid()) or session_id in (select private.my_session_ids())
         or (select private.is_admin()));
grant select on public.session_problem_reports to authenticated, service_role;
comment on table public.session_problem_reports is
  'A customer''s objection (report_problem): the session''s payouts wait for admin_resolve_delivery';

-- An admin's (or the automatic refund's) decision on an unverified or reported session: one per session.
create table public.session_delivery_decisions (
  session_id uuid primary key references public.sessions (id) on delete cascade,
  outcome text not null constraint session_delivery_decisions_outcome_values check (outcome in ('pay', 'refund', 'partial')),
  refund_cents int not null default 0 constraint session_delivery_decisions_refund_nonneg check (refund_cents >= 0),
  decided_by uuid references auth.users (id) on delete set null,  -- null: the automatic refund
  decided_at timestamptz not null default now(),
  reason text constraint session_delivery_decisions_reason_length check (char_length(reason) <= 4000)
);
create index session_delivery_decisions_decided_by_idx on public.session_delivery_decisions (decided_by);  -- FK
alter table public.session_delivery_decisions enable row level security;
create policy select_members_or_admin on public.session_delivery_decisions for select to authenticated
  using (session_id in (select private.my_session_ids()) or (select private.is_admin()));
grant select on public.session_delivery_decisions to authenticated, service_role;
comment on table public.session_delivery_decisions is
  'Who decided an unverified or reported session (admin_resolve_delivery, or null: the automatic refund), when, how';

insert into private.settings (key, value, value_type, description) values
  ('trust.min_delivered_minutes', '2', 'integer',
   'a session counts as delivered only if it was live at least this many minutes (and both sides took part)'),
  ('trust.unverified_refund_after', '"24 hours"', 'interval',
   'an unverified session not decided by an admin within this time after its end is refunded in full'),
  ('payments.payout_hold', '"24 hours"', 'interval',
   'payouts of a delivered session are released this long after its end; the customer may report a problem until then');

insert into private.error_codes (sqlstate, name, http_status, description) values
  ('AD100', 'report_window_closed', 409, 'The time to report a problem with this session has passed, or its payouts left.'),
  ('AD101', 'problem_already_reported', 409, 'A problem with this session was already reported.'),
  ('AD102', 'delivery_already_decided', 409, 'An admin (or the automatic refund) already decided this session.'),
  ('AD103', 'nothing_to_decide', 409, 'The session is neither unverified nor reported: there is nothing to decide.'),
  ('AD104', 'mechanic_not_in_good_standing', 403, 'The mechanic is pending or suspended: the session cannot start, end or be extended by them.');

insert into private.schedules (name, cron, command, description) values
  ('delivery', '* * * * *', 'select private.run_job(''delivery'')',
   'releases payouts whose objection window ended (payments.payout_hold); refunds unverified sessions no admin '
   'decided within trust.unverified_refund_after');

-- Sessions completed before delivery evidence existed were settled and paid under the old rule:
-- they count as delivered, and customers_served is the distinct customers among them.
-- completed_sessions is left as it is.
update public.sessions set delivery = 'delivered' where status = 'completed' and delivery is null;
update public.mechanics m set customers_served = c.n
from (select s.mechanic_id, count(distinct s.customer_id)::int as n from public.sessions s
      where s.status = 'completed' and s.mechanic_id is not null group by s.mechanic_id) c
where c.mechanic_id = m.id;

create index sessions_unverified_idx on public.sessions (ended_at) where delivery = 'unverified';  -- refund job
