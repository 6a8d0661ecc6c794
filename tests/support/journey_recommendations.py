"""Helpers for the recommendation tests (no tests here): delivered sessions of any plan, submitted
summaries, verified workshops in a city, and the funnel's rows."""

from __future__ import annotations

import json
import uuid
from typing import Any

from tests.support.harness import Db
from tests.support.reviews import session_between


def delivered(
    db: Db, customer: uuid.UUID, mechanic: uuid.UUID, *, plan: str = "chat10", delivery: str = "delivered"
) -> uuid.UUID:
    """A completed session of `plan` (20 minutes long) with its delivery set, evaluated at
    session_delivered as the lifecycle step does for a delivered one."""
    session = session_between(db, customer, mechanic, plan=plan, delivery=delivery)
    db.execute("select private.recommendations_evaluate(%s, 'session_delivered')", (session,))
    return session


def submit_summary(
    db: Db,
    session: uuid.UUID,
    *,
    urgency: str = "none",
    parts: list[dict[str, Any]] | None = None,
    version: int | None = None,
) -> uuid.UUID:
    """A submitted summary version of the session (as its mechanic wrote it), then the journey hook
    the summary's submit calls."""
    row = db.one("select mechanic_id from public.sessions where id = %s", (session,))
    assert row is not None
    if version is None:
        version = 1 + db.scalar("select count(*) from public.session_summaries where session_id = %s", (session,))
    summary = db.scalar(
        "insert into public.session_summaries (session_id, version, status, author_id, findings, parts, urgency, "
        "submitted_at) values (%s, %s, 'submitted', %s, 'Findings', %s::jsonb, %s, now()) returning id",
        (session, version, row["mechanic_id"], json.dumps(parts or []), urgency),
    )
    db.execute("select private.journey_on_summary_submitted(%s, %s)", (session, summary))
    return summary


def verified_shop(
    db: Db, name: str, city: str, postal_code: str | None = None, *, status: str = "verified"
) -> uuid.UUID:
    shop = db.scalar(
        "insert into public.organizations (name, timezone, city, postal_code) values (%s, 'UTC', %s, %s) returning id",
        (name, city, postal_code),
    )
    db.execute(
        "update public.organizations set status = %s, verified_at = case when %s = 'verified' then now() end "
        "where id = %s",
        (status, status, shop),
    )
    return shop


def recs(db: Db, session: uuid.UUID) -> dict[str, dict[str, Any]]:
    """The session's recommendations by kind."""
    return {r["kind"]: r for r in db.all("select * from public.recommendations where session_id = %s", (session,))}


def crm(db: Db, customer: uuid.UUID, kind: str) -> list[dict[str, Any]]:
    return db.all(
        "select * from public.crm_interactions where customer_id = %s and kind = %s order by id", (customer, kind)
    )


def show(db: Db, customer: uuid.UUID, rec: Any, *, click: bool = False) -> dict[str, Any]:
    with db.as_user(customer):
        out: dict[str, Any] = db.rpc("recommendation_clicked" if click else "recommendation_shown", p_id=rec)
    return out


def hostile_cases(w: Any, unknown: uuid.UUID) -> list[tuple[Any, str, dict[str, Any], str]]:
    """The recommendation RPCs' rows of tests/core/test_hostile.py (persona, rpc, kwargs, SQLSTATE)."""
    rows: list[tuple[Any, str, dict[str, Any], str]] = []
    for rpc in ("recommendation_shown", "recommendation_clicked"):
        rows += [
            (w.customer, rpc, {"p_id": None}, "AD001"),
            (w.customer, rpc, {"p_id": unknown}, "AD004"),
            (w.customer, rpc, {"p_id": "not-a-uuid"}, "22P02"),
            (w.mechanic, rpc, {"p_id": unknown}, "AD004"),
            (None, rpc, {"p_id": unknown}, "AD002"),
        ]
    return rows
