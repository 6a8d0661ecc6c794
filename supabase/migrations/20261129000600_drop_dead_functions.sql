-- Functions nothing calls any more: a wall-clock helper that the slot query inlines, a capability
-- check no policy or function uses, and the on-shift probe's old signature (the flag is a column of
-- sessions since micro-sessions exist, so the mechanic row is no longer read).
drop function if exists private.local_start(date, time, text);
drop function if exists private.is_mechanic();
drop function if exists private.session_split_kind(public.sessions, public.mechanics);
