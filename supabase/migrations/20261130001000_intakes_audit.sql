-- Operations: intakes updated and exported by admins, and the reading of the admin audit
-- (docs/operations.md#intakes, docs/operations.md#audit). Functions and the export view are in
-- supabase/functions_sql/operations/intakes.sql and audit_read.sql.

insert into private.error_codes (sqlstate, name, http_status, description) values
  ('AD250', 'intake_status_not_allowed', 422,
   'An admin sets an intake to new, resolved or cancelled only; the other statuses follow its request and session.'),
  ('AD251', 'intake_has_active_session', 409,
   'The intake feeds an active session or an open checkout: its status follows that session until it ends.'),
  ('AD252', 'intake_batch_too_large', 422,
   'More intakes in one bulk update than operations.bulk_intakes_max allows.'),
  ('AD253', 'export_range_too_long', 422,
   'The export covers more days than operations.export_max_days allows.');

insert into private.settings (key, value, value_type, description) values
  ('operations.bulk_intakes_max', '500', 'integer',
   'the most intake ids one admin_bulk_update_intakes call may carry (duplicates included)'),
  ('operations.export_max_days', '366', 'integer',
   'the longest range of intake creation days one admin_export_intakes call may cover'),
  ('operations.audit_max_limit', '1000', 'integer',
   'the most rows one admin_audit call may return');

insert into private.rpc_rate_classes (function_name, class) values
  ('admin_update_intake', 'admin'),
  ('admin_bulk_update_intakes', 'admin'),
  ('admin_export_intakes', 'admin');
