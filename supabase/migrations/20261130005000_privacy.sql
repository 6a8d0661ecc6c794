-- Privacy: each person's export of their data, and the erasure of their account after a grace
-- period (docs/privacy.md). Money records required by law are kept, without identity.

insert into private.error_codes (sqlstate, name, http_status, description) values
  ('AD280', 'erasure_blocked', 409,
   'The account still has open work or unsettled money; the message lists what remains.'),
  ('AD281', 'deletion_not_requested', 409, 'There is no pending deletion of this account to cancel.'),
  ('AD282', 'account_erased', 409, 'This account has been erased.');

insert into private.settings (key, value, value_type, description) values
  ('privacy.erasure_grace', '"30 days"', 'interval',
   'time between a request to delete an account and its erasure; the person may cancel within it'),
  ('privacy.export_max_sessions', '2000', 'integer',
   'most recent sessions (with their messages) one export includes per role; older ones are counted, not listed');

-- One row per person who asked to be erased: pending until due, then erased (or blocked while
-- open work or unsettled money remains, retried by the job), or cancelled within the grace.
create table private.account_deletions (
  user_id uuid primary key references auth.users (id) on delete cascade,
  status text not null default 'pending'
    constraint account_deletions_status check (status in ('pending', 'blocked', 'erased', 'cancelled')),
  requested_at timestamptz not null default now(),
  due_at timestamptz not null,
  cancelled_at timestamptz,
  erased_at timestamptz,
  attempts int not null default 0,
  remaining jsonb not null default '[]',
  request_no int not null default 1
);
alter table private.account_deletions enable row level security;
create index account_deletions_due on private.account_deletions (due_at) where status in ('pending', 'blocked');
comment on table private.account_deletions is
  'Requests to erase an account (docs/privacy.md#erasure): pending until due_at, cancellable within it.';

insert into private.rpc_rate_classes (function_name, class) values
  ('export_my_data', 'write'),
  ('request_account_deletion', 'write'),
  ('cancel_account_deletion', 'write')
on conflict (function_name) do update set class = excluded.class;
