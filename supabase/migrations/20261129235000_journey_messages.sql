-- A message at every turn (docs/journey.md): the emails customers and mechanics get when a request
-- or a session changes without them, and the record of which refunds were already announced.

create table private.refund_notices (
  refund_id uuid primary key references public.refunds (id) on delete cascade,
  notice text not null constraint refund_notices_notice_format check (notice ~ '^[a-z_]+$'),
  created_at timestamptz not null default now()
);
alter table private.refund_notices enable row level security;
comment on table private.refund_notices is
  'Refunds a customer was already told of, and by which message (one change, one message).';

insert into private.email_templates (name, has_html, transactional, description) values
  ('request_unattended', true, true, 'no mechanic took the request in time: support will assign one'),
  ('request_expired', true, true, 'the request expired unanswered; with the amount refunded, if any'),
  ('request_released', true, true,
   'the mechanic the customer was told of let the request go: it is back in the queue'),
  ('session_cancelled', true, true, 'an admin cancelled the customer''s request or session; with the amount refunded'),
  ('refund_succeeded', true, true, 'a refund no other message announced reached the customer''s card or credit');
