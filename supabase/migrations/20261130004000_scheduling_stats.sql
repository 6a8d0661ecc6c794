-- Scheduling analytics (docs/operations.md#scheduling-analytics): who failed to show up when a
-- session was cancelled because it never started, the range cap of the reports, their errors.
--
-- A no-show is decided by the request sweep (jobs/sweep_requests.sql) when it cancels a session
-- that opened for joining and never went live. The cancel reason alone cannot say which side was
-- missing (a session "never started" may lack the mechanic, the customer or both), so the sweep
-- records the side here, from the participants' own traces (start_session's ready_at, the LiveKit
-- room's joined_at) at the moment it cancels.
create table private.session_no_shows (
  session_id uuid primary key references public.sessions (id) on delete cascade,
  side text not null constraint session_no_shows_side_values check (side in ('customer', 'mechanic', 'both')),
  at timestamptz not null default now()
);
revoke all on private.session_no_shows from public, anon, authenticated;
grant select, insert on private.session_no_shows to service_role;

-- Sessions the sweep cancelled before this table existed: the same rule, from the same traces.
insert into private.session_no_shows (session_id, side, at)
select s.id,
       case when not c_showed and not m_showed then 'both' when not c_showed then 'customer' else 'mechanic' end,
       s.status_changed_at
from public.sessions s
cross join lateral (
  select coalesce(bool_or(p.user_id = s.customer_id and (p.joined_at is not null or p.ready_at is not null)), false) as c_showed,
         coalesce(bool_or(p.user_id = s.mechanic_id and (p.joined_at is not null or p.ready_at is not null)), false) as m_showed
  from public.session_participants p where p.session_id = s.id) x
where s.status = 'cancelled' and s.mechanic_id is not null
  and s.cancel_reason in ('the customer did not join within the window', 'the session was never started')
  and not (c_showed and m_showed);

insert into private.error_codes (sqlstate, name, http_status, description) values
  ('AD270', 'stats_range_reversed', 400, 'The report range ends before it starts.'),
  ('AD271', 'stats_range_too_long', 400, 'The report range is longer than the longest one allowed.'),
  ('AD272', 'not_an_approved_mechanic', 403, 'Only an approved mechanic has figures of its own to read.');

insert into private.settings (key, value, value_type, description) values
  ('operations.stats_max_days', '366', 'integer',
   'longest range, in local days (both ends included), of admin_scheduling_stats and my_scheduling_stats');

insert into private.rpc_rate_classes (function_name, class) values
  ('admin_scheduling_stats', 'admin');
