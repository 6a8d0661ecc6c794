"""cron_session_timers: ends live sessions past their deadline (plus grace) — their rooms close
through the outbox — sends "session starting" notices 5 minutes before scheduled sessions, expires
slot holds and opens booked sessions for joining 15 minutes before their start (scheduling)."""

from __future__ import annotations

from typing import Any

from shared import db, jobs
from shared.http import Ctx, endpoint


def _timers() -> dict[str, Any]:
    with db.transaction() as conn:
        ended = db.one(conn, "select private.end_overdue_sessions(now(), 200) as r")["r"]
    with db.transaction() as conn:
        notices = db.one(conn, "select private.send_starting_notices(now()) as r")["r"]
    with db.transaction() as conn:
        holds = db.one(conn, "select private.expire_holds(now()) as r")["r"]
    with db.transaction() as conn:
        opened = db.one(conn, "select private.open_scheduled_sessions(now()) as r")["r"]
    return {**ended, **notices, **holds, **opened}


@endpoint(methods=("POST",), auth="cron")
def cron_session_timers(ctx: Ctx) -> dict[str, Any]:
    return jobs.run("cron_session_timers", _timers)
