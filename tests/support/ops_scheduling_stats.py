"""Helpers for the scheduling analytics tests (no tests here): booked and on-demand sessions
written with known times, their status events and no-show records, as the lifecycle leaves them."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from tests.support.harness import Db

UTC = dt.UTC


def utc(text: str) -> dt.datetime:
    """'2026-11-01 05:00' → an aware UTC datetime."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def past_session(
    db: Db,
    mechanic: uuid.UUID,
    customer: uuid.UUID,
    *,
    minutes: int,
    created: str,
    booked_for: str | None = None,
    opened: str | None = None,
    started: str | None = None,
    cancelled: tuple[str, str, str] | None = None,
    no_show: str | None = None,
) -> uuid.UUID:
    """A session as the lifecycle leaves it, with its status events at the given UTC times:
    `booked_for` (a booked session's start; None: on demand), `opened` (→ waiting), `started`
    (→ live, then completed `minutes` later), `cancelled` = (at, from status, actor role), and the
    no-show side recorded by the sweep. Written with triggers off (session_replication_role), since
    the lifecycle only moves sessions at the current time."""
    plan = db.one("select code, session_type, duration_type from public.service_plans order by code limit 1")
    assert plan is not None
    status = "cancelled" if cancelled else "completed" if started else "waiting" if opened else "scheduled"
    db.execute("set local session_replication_role = replica")
    try:
        session = db.scalar(
            "insert into public.sessions (customer_id, mechanic_id, plan_code, session_type, duration_type,"
            " planned_minutes, price_cents, status, scheduled_for, started_at, ended_at, created_at, status_changed_at)"
            " values (%(c)s, %(m)s, %(plan)s, %(st)s, %(dt)s, %(min)s, 0, %(status)s, %(booked)s, %(started)s,"
            " %(ended)s, %(created)s, %(created)s) returning id",
            {
                "c": customer,
                "m": mechanic,
                "plan": plan["code"],
                "st": plan["session_type"],
                "dt": plan["duration_type"],
                "min": minutes,
                "status": status,
                "booked": booked_for and utc(booked_for),
                "started": started and utc(started),
                "ended": started and utc(started) + dt.timedelta(minutes=minutes),
                "created": utc(created),
            },
        )
        events: list[tuple[str | None, str, str, dt.datetime]] = []
        first = "scheduled" if booked_for else "waiting"
        events.append((None, first, "customer", utc(created)))
        if booked_for and opened:
            events.append(("scheduled", "waiting", "system", utc(opened)))
        if started:
            events.append(("waiting", "live", "mechanic", utc(started)))
            events.append(("live", "completed", "mechanic", utc(started) + dt.timedelta(minutes=minutes)))
        if cancelled:
            events.append((cancelled[1], "cancelled", cancelled[2], utc(cancelled[0])))
        for frm, to, role, at in events:
            db.execute(
                "insert into public.session_events (session_id, entity, from_status, to_status, actor_role, at)"
                " values (%s, 'session', %s, %s, %s, %s)",
                (session, frm, to, role, at),
            )
        if no_show:
            db.execute(
                "insert into private.session_no_shows (session_id, side, at) values (%s, %s, %s)",
                (session, no_show, utc(cancelled[0]) if cancelled else utc(created)),
            )
    finally:
        db.execute("set local session_replication_role = origin")
    return uuid.UUID(str(session))


def figures(out: dict[str, Any], mechanic: uuid.UUID) -> dict[str, Any]:
    rows = [m for m in out["mechanics"] if m["mechanic_id"] == str(mechanic)]
    assert len(rows) == 1, out
    return dict(rows[0])
