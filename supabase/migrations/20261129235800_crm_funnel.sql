-- Interactions and the funnel (docs/journey.md#interactions-and-the-funnel): an event that happens
-- once per thing is recorded once (a retried webhook or a re-run backfill adds nothing), the
-- admin reports' errors, setting and rate class, and the history recorded from the rows that
-- existed before the recording did.

-- ---------------------------------------------------------------------------------------------
-- One row per event that happens once: private.crm_record inserts with `on conflict do nothing`.
-- Views and clicks (summary_viewed, recommendation_shown, recommendation_clicked) repeat by nature
-- and are kept as often as they happen.
-- ---------------------------------------------------------------------------------------------
create unique index crm_interactions_once_per_intake on public.crm_interactions (kind, intake_id)
  where kind = 'intake_created';
create unique index crm_interactions_once_per_session on public.crm_interactions (kind, session_id)
  where kind in ('request_filed', 'session_delivered');
create unique index crm_interactions_once_per_subject on public.crm_interactions (kind, subject_id)
  where kind in ('review_written', 'purchase', 'follow_up_asked', 'recommendation_purchased');

insert into private.error_codes (sqlstate, name, http_status, description) values
  ('AD245', 'report_range_invalid', 400, 'A report needs both dates (p_from, p_to), with p_from not after p_to.'),
  ('AD246', 'report_range_too_long', 400, 'The report''s range is longer than crm.report_max_days days.'),
  ('AD247', 'report_group_unknown', 400, 'The report''s grouping is not one of week or month.');

insert into private.settings (key, value, value_type, description) values
  ('crm.report_max_days', '366', 'integer',
   'longest range, in days (both ends included), of admin_funnel and admin_retention');

insert into private.rpc_rate_classes (function_name, class) values
  ('admin_funnel', 'admin'),
  ('admin_retention', 'admin'),
  ('admin_customer_timeline', 'admin')
on conflict (function_name) do update set class = excluded.class;

-- ---------------------------------------------------------------------------------------------
-- The history, at its original times. Idempotent through the unique indexes above: running it
-- again adds nothing.
-- ---------------------------------------------------------------------------------------------
-- crm-backfill:begin
insert into public.crm_interactions (customer_id, kind, occurred_at, intake_id, session_id, subject_id, data)
select i.customer_id, 'intake_created', i.created_at, i.id, null, null, '{}'
from public.intakes i
on conflict do nothing;

insert into public.crm_interactions (customer_id, kind, occurred_at, intake_id, session_id, subject_id, data)
select r.customer_id, 'request_filed', r.created_at, s.intake_id, s.id, null,
       jsonb_build_object('plan', r.plan_code, 'session_type', r.session_type, 'booked', false)
from public.session_requests r
join public.sessions s on s.id = r.session_id
on conflict do nothing;

-- a booked slot is filed as a scheduled session, without a request
insert into public.crm_interactions (customer_id, kind, occurred_at, intake_id, session_id, subject_id, data)
select s.customer_id, 'request_filed', s.created_at, s.intake_id, s.id, null,
       jsonb_build_object('plan', s.plan_code, 'session_type', s.session_type, 'booked', true)
from public.sessions s
where s.scheduled_for is not null
  and not exists (select 1 from public.session_requests r where r.session_id = s.id)
on conflict do nothing;

insert into public.crm_interactions (customer_id, kind, occurred_at, intake_id, session_id, subject_id, data)
select s.customer_id, 'session_delivered', coalesce(s.ended_at, s.status_changed_at), s.intake_id, s.id, null, '{}'
from public.sessions s
where s.status = 'completed' and s.delivery = 'delivered'
on conflict do nothing;

insert into public.crm_interactions (customer_id, kind, occurred_at, intake_id, session_id, subject_id, data)
select v.customer_id, 'review_written', v.created_at, s.intake_id, v.session_id, v.id,
       jsonb_build_object('rating', v.rating)
from public.mechanic_reviews v
join public.sessions s on s.id = v.session_id
on conflict do nothing;

insert into public.crm_interactions (customer_id, kind, occurred_at, intake_id, session_id, subject_id, data)
select p.customer_id, 'purchase', p.paid_at, coalesce(b.intake_id, s.intake_id), p.session_id, p.id,
       jsonb_build_object('amount_cents', p.amount_cents, 'currency', p.currency, 'plan', b.plan_code,
                          'method', p.method, 'extension', p.extension_id is not null)
from public.payments p
join public.bookings b on b.id = p.booking_id
left join public.sessions s on s.id = p.session_id
on conflict do nothing;
-- crm-backfill:end
