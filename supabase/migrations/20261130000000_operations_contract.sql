-- Operations (docs/operations.md): the record of every admin action that has no audit of its own
-- elsewhere (intake edits, exports, vetting decisions, suspensions, sweeps run by hand, …). Read
-- through admin_audit, which also reads the audits that already exist (session_events by an admin,
-- delivery decisions, refunds, credit grants, hidden reviews).
create table private.admin_actions (
  id bigint generated always as identity primary key,
  -- the admin who acted; null when the platform itself acted on an admin's standing rule
  admin_id uuid references auth.users (id) on delete set null,
  action text not null constraint admin_actions_action_format check (action ~ '^[a-z][a-z_.]{1,60}$'),
  subject_type text not null constraint admin_actions_subject_type_format check (subject_type ~ '^[a-z][a-z_]{1,40}$'),
  subject_id uuid,
  reason text constraint admin_actions_reason_length check (char_length(reason) <= 2000),
  data jsonb not null default '{}' constraint admin_actions_data_object check (jsonb_typeof(data) = 'object'),
  at timestamptz not null default now()
);
create index admin_actions_subject_idx on private.admin_actions (subject_id, at);
create index admin_actions_at_idx on private.admin_actions (at);
create index admin_actions_admin_id_idx on private.admin_actions (admin_id);  -- FK
revoke all on private.admin_actions from public, anon, authenticated;
grant select, insert on private.admin_actions to service_role;
