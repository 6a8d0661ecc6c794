"""Delivery of the outbox: claim due rows (skip locked), perform each side effect with no database
lock held, record the outcome (sent, retried with backoff, or dead-lettered). Safe to run many
times at once; a crash mid-batch leaves rows that are claimed again when their lease runs out."""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
from collections.abc import Callable
from typing import Any

from shared import db
from shared.logs import log

Handler = Callable[[dict[str, Any]], Any]


def handlers() -> dict[str, Handler]:
    from shared import email, rooms

    return {
        "livekit.delete_room": rooms.delete_room,
        "email.send": email.send_outbox_email,
        "email.support_alert": email.send_support_alert,
    }


def deliver(now: dt.datetime | None = None, limit: int = 50, kinds: list[str] | None = None,
            registry: dict[str, Handler] | None = None) -> dict[str, int]:
    registry = registry if registry is not None else handlers()
    now = now or dt.datetime.now(dt.UTC)
    with db.transaction() as conn:
        rows = conn.execute("select * from private.outbox_claim(%s, %s, %s)", (now, limit, kinds)).fetchall()
    counts = {"claimed": len(rows), "sent": 0, "retry": 0, "dead": 0}
    for row in rows:
        error: str | None = None
        handler = registry.get(row["kind"])
        try:
            if handler is None:
                raise LookupError(f"no handler for {row['kind']}")
            result = handler({**row["payload"], "_dedupe_key": row["dedupe_key"]})
            if inspect.isawaitable(result):
                asyncio.run(result)  # type: ignore[arg-type]
        except Exception as exc:  # any failure is retried, then dead-lettered
            error = f"{exc.__class__.__name__}: {exc}"[:2000]
            log("warning", "outbox delivery failed", outbox_id=row["id"], kind=row["kind"], attempt=row["attempts"],
                error=error)
        with db.transaction() as conn:
            status = db.one(conn, "select private.outbox_settle(%s, %s, %s, %s) as s",
                            (row["id"], error is None, error, now))["s"]
        counts["sent" if status == "sent" else "dead" if status == "dead" else "retry"] += 1
    return counts
