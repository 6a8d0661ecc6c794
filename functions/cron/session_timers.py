"""cron_session_timers: ends live sessions past their deadline (plus grace) — their rooms close
through the outbox — sends "session starting" notices 5 minutes before scheduled sessions, expires
slot holds and opens booked sessions for joining 15 minutes before their start (scheduling)."""

from __future__ import annotations

from shared import db, jobs
from shared.http import Ctx, endpoint


def _timers() -> dict:
    with db.transaction() as conn:
        ended = conn.execute("select private.end_overdue_sessions(now(), 200) as r").fetchone()["r"]
    with db.transaction() as conn:
        notices = conn.execute("select private.send_starting_notices(now()) as r").fetchone()["r"]
    with db.transaction() as conn:
        holds = conn.execute("select private.expire_holds(now()) as r").fetchone()["r"]
    with db.transaction() as conn:
        opened = conn.execute("select private.open_scheduled_sessions(now()) as r").fetchone()["r"]
    return {**ended, **notices, **holds, **opened}


@endpoint(methods=("POST",), auth="cron")
def cron_session_timers(ctx: Ctx) -> dict:
    return jobs.run("cron_session_timers", _timers)
