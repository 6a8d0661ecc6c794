"""cron_session_timers: ends live sessions past their deadline (plus grace); their rooms close
through the outbox."""

from __future__ import annotations

from shared import db
from shared.http import Ctx, endpoint


@endpoint(methods=("POST",), auth="cron")
def cron_session_timers(ctx: Ctx) -> dict:
    with db.transaction() as conn:
        return conn.execute("select private.end_overdue_sessions(now(), 200) as r").fetchone()["r"]
