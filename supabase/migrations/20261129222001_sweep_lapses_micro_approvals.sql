-- The sweep_requests job also returns to the other mechanics the micro accepts a workshop's
-- dispatcher did not approve in time (its step lapse_micro_approvals, workshops/dispatch.sql).
update private.schedules
set description = description || '; micro accepts a workshop did not approve within '
                               || 'workshops.micro_approval_window → back to the other mechanics'
where name = 'sweep_requests';
