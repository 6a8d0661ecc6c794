-- The micro rules are checked at accept time on the rows the accept holds
-- (private.check_and_reserve_accept_rows); the by-id wrapper had no caller left.
drop function if exists private.check_and_reserve_accept(uuid, uuid, timestamptz);
