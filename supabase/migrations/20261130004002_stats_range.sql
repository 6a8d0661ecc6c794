-- Scheduling analytics: a quarter at most per call. A year over 500 mechanics took 6.4 s (a month
-- 0.4 s), too long for a call that holds a connection; a quarter covers every reporting period.
update private.settings set value = '92'
where key = 'operations.stats_max_days';
