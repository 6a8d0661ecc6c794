"""Helpers for the interactions and funnel tests: a world of interactions at chosen times, recorded
through private.crm_record as service_role (the way the database's own events record them)."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from pathlib import Path
from typing import Any

from tests.support.factories import make_intake
from tests.support.harness import Db

UTC = dt.UTC
MIGRATION = Path(__file__).resolve().parents[2] / "supabase/migrations/20261129235800_crm_funnel.sql"


def at(text: str) -> dt.datetime:
    """'2026-06-01 10:00:00' as a UTC instant."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def record(
    db: Db,
    customer: uuid.UUID,
    kind: str,
    when: dt.datetime,
    *,
    intake: uuid.UUID | None = None,
    session: uuid.UUID | None = None,
    subject: uuid.UUID | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    with db.as_service():
        db.execute(
            "select private.crm_record(%s, %s, %s, %s, %s, %s, %s::jsonb)",
            (customer, kind, when, intake, session, subject, json.dumps(data or {})),
        )


def bare_intake(db: Db, customer: uuid.UUID) -> uuid.UUID:
    """An intake whose own intake_created (stamped now() by the trigger) is removed, so that the test
    records it at a time of its choosing."""
    intake = make_intake(db, customer)
    db.execute("delete from public.crm_interactions where intake_id = %s", (intake,))
    return intake


def bare_session(db: Db, customer: uuid.UUID, intake: uuid.UUID) -> uuid.UUID:
    """A pending session row of the intake (no request: nothing recorded), for interactions that
    refer to a session."""
    sid: uuid.UUID = db.scalar(
        "insert into public.sessions (customer_id, plan_code, session_type, duration_type, planned_minutes, "
        "price_cents, intake_id) select %s, code, session_type, duration_type, minutes, price_cents, %s "
        "from public.service_plans where code = 'chat10' returning id",
        (customer, intake),
    )
    return sid


def crm_rows(db: Db, customer: uuid.UUID) -> list[dict[str, Any]]:
    return db.all(
        "select kind, occurred_at, intake_id, session_id, subject_id, data from public.crm_interactions "
        "where customer_id = %s order by occurred_at, id",
        (customer,),
    )


def crm_count(db: Db) -> int:
    return int(db.scalar("select count(*) from public.crm_interactions"))


def backfill_sql() -> str:
    """The backfill section of the migration, to run it again."""
    text = MIGRATION.read_text()
    found = re.search(r"-- crm-backfill:begin\n(.*)-- crm-backfill:end", text, re.S)
    assert found is not None
    return found.group(1)
