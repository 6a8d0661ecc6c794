-- Rate limit of write RPCs: admin actions get a class of their own (an admin works through queues
-- faster than a customer or a mechanic), read-only RPCs need no class (the pre-request hook never
-- charges a stable function), and the write RPCs of reviews, delivery and the waiver are classed.
insert into private.settings (key, value, value_type, description) values
  ('rate_limit.admin.capacity', '600', 'integer',
   'bucket size of RPC class admin (admin actions: approvals, assignments, credit, refunds)'),
  ('rate_limit.admin.refill_per_minute', '300', 'number',
   'tokens per minute added back to a user''s bucket of RPC class admin');
update private.settings
set description = 'bucket size of RPC class write (every other write RPC: availability, rules, time off; and a volatile RPC without a class)'
where key = 'rate_limit.write.capacity';

delete from private.rpc_rate_classes
where function_name in ('reset_daily_micro_minutes', 'admin_rank_request', 'admin_payment_integrity', 'admin_outbox',
                        'admin_micro_dashboard', 'mechanic_micro_dashboard', 'workshop_micro_dashboard',
                        'clock_status', 'can_accept_session', 'mechanic_calendar', 'available_mechanics');
insert into private.rpc_rate_classes (function_name, class) values
  ('admin_assign_request', 'admin'),
  ('admin_force_end_session', 'admin'),
  ('admin_grant_credit', 'admin'),
  ('admin_refund', 'admin'),
  ('admin_retry_outbox', 'admin'),
  ('admin_set_mechanic_status', 'admin'),
  ('submit_review', 'write'),
  ('reply_to_review', 'write'),
  ('report_problem', 'write'),
  ('admin_hide_review', 'admin'),
  ('admin_resolve_delivery', 'admin'),
  ('accept_waiver', 'write')
on conflict (function_name) do update set class = excluded.class;
