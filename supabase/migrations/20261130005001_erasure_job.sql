-- Erasure: the admin list's rate class, and the job that erases an account when its grace ends.
insert into private.rpc_rate_classes (function_name, class) values
  ('admin_account_deletions', 'admin')
on conflict (function_name) do update set class = excluded.class;

-- While open work or unsettled money remains the job fails and is retried (hourly at first, then
-- daily, about two months) until it is settled.
insert into private.job_kinds (kind, max_attempts, base_backoff, max_backoff, lease, on_failure, description)
values ('privacy.erase_account', 60, '1 hour', '1 day', '10 minutes', null,
        'erase an account whose grace period ended (private.erase_account), then its Storage objects');
