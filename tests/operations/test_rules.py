"""Rules: a manual assignment is an offer the mechanic may decline; the listing shows who can take
a session now; support hears of an unstarted session at 2 minutes; a micro-session's limit is hard;
Connect accounts are Standard (tests/payments/test_connect.py pins the account type)."""

from __future__ import annotations

import datetime as dt
import uuid

from tests.support.delivery import start_both
from tests.support.factories import accept, make_world
from tests.support.harness import Db


def now_of(db: Db) -> dt.datetime:
    value: dt.datetime = db.scalar("select now()")
    return value


# ------------------------------------------------------------------------------------------------
# the support alert fires at 2 minutes
# ------------------------------------------------------------------------------------------------
def test_support_alert_fires_at_two_minutes_and_not_before(db: Db) -> None:
    assert db.scalar("select value #>> '{}' from private.settings where key = 'nudges.support_alert_after'") == \
        "2 minutes"
    w = make_world(db)
    accept(db, w.mechanic, w.request)
    t0 = db.scalar("select status_changed_at from public.sessions where id = %s", (w.session,))
    just_before = t0 + dt.timedelta(minutes=2) - dt.timedelta(seconds=1)
    assert db.scalar("select private.send_nudges(%s)", (just_before,))["alerted"] == 0
    assert db.scalar("select count(*) from private.outbox where dedupe_key = %s",
                     (f"email:support_alert:{w.session}",)) == 0
    assert db.scalar("select private.send_nudges(%s)", (t0 + dt.timedelta(minutes=2),))["alerted"] == 1
    assert db.scalar("select count(*) from private.outbox where dedupe_key = %s",
                     (f"email:support_alert:{w.session}",)) == 1
    assert db.scalar("select count(*) from realtime.messages where topic = 'admin:queue' and event = 'alert'"
                     " and payload->>'session_id' = %s", (str(w.session),)) == 1
    # once
    assert db.scalar("select private.send_nudges(%s)", (t0 + dt.timedelta(minutes=3),))["alerted"] == 0


# ------------------------------------------------------------------------------------------------
# a micro-session's limit is hard: no grace, no unpaid minutes
# ------------------------------------------------------------------------------------------------
def _live_micro(db: Db) -> tuple[object, uuid.UUID, dt.datetime]:
    w = make_world(db)
    accept(db, w.mechanic, w.request)
    start_both(db, w.session)
    s = db.one("select status::text, duration_type::text, planned_minutes, deadline_at from public.sessions"
               " where id = %s", (w.session,))
    assert (s["status"], s["duration_type"]) == ("live", "micro")
    return w, w.session, s["deadline_at"]


def test_micro_session_ends_at_its_deadline_without_grace(db: Db) -> None:
    w, session, deadline = _live_micro(db)
    assert db.scalar("select private.end_overdue_sessions(%s)", (deadline - dt.timedelta(seconds=1),)) == \
        {"ended": 0}
    assert db.scalar("select private.end_overdue_sessions(%s)", (deadline,)) == {"ended": 1}
    row = db.one("select status::text, cancel_reason, planned_minutes, extension_minutes from public.sessions"
                 " where id = %s", (session,))
    assert (row["status"], row["cancel_reason"]) == ("completed", "time cap reached")
    usage = db.one("select reserved_minutes, actual_minutes from public.micro_minute_usage where session_id = %s",
                   (session,))
    # every minute the mechanic spent is a minute counted (and paid): the planned ones, no more
    assert usage["actual_minutes"] == row["planned_minutes"] + row["extension_minutes"] == usage["reserved_minutes"]


def test_micro_cap_holds_across_the_deadline(db: Db) -> None:
    """A mechanic with a cap of exactly one micro-session cannot be kept working past it: the session
    ends at the deadline (no 2-minute grace), and the day's counted minutes equal the cap."""
    w, session, deadline = _live_micro(db)
    planned = db.scalar("select planned_minutes from public.sessions where id = %s", (session,))
    db.execute("update public.mechanics set daily_micro_minutes_cap = %s where id = %s", (planned, w.mechanic))
    # one minute into what used to be the grace: the session is over
    db.scalar("select private.end_overdue_sessions(%s)", (deadline + dt.timedelta(minutes=1),))
    assert db.scalar("select status::text from public.sessions where id = %s", (session,)) == "completed"
    assert db.scalar("select private.micro_minutes_used(%s, %s)", (w.mechanic, deadline)) == planned
    assert db.scalar("select private.micro_cap(%s)", (w.mechanic,)) == planned


def test_full_sessions_keep_their_grace(db: Db) -> None:
    w, session, deadline = _live_micro(db)
    db.execute("update public.sessions set duration_type = 'standard' where id = %s", (session,))
    grace = db.scalar("select private.setting_interval('sessions.deadline_grace')")
    assert db.scalar("select private.end_overdue_sessions(%s)", (deadline + grace - dt.timedelta(seconds=1),)) == \
        {"ended": 0}
    assert db.scalar("select private.end_overdue_sessions(%s)", (deadline + grace,)) == {"ended": 1}
