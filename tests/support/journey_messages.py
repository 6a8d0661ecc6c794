"""Helpers for the messages of the customer's journey: the emails and session events a change left."""

from __future__ import annotations

import json
import uuid
from typing import Any

from tests.support.harness import Db

# The templates and events of a message at every turn (docs/journey.md).
TEMPLATES = (
    "request_unattended",
    "request_expired",
    "request_released",
    "session_cancelled",
    "refund_succeeded",
    "booking_cancelled",
    "booking_rescheduled",
)
EVENTS = TEMPLATES


def flush(db: Db) -> None:
    """What a commit would do: the deferred checks (the unattended and refund messages) run now."""
    db.execute("set constraints all immediate")
    db.execute("set constraints all deferred")


def emails(db: Db, session: Any | None = None, template: str | None = None) -> list[dict[str, Any]]:
    """The message emails enqueued (optionally of one session / template), oldest first."""
    rows = db.all(
        "select dedupe_key, payload from private.outbox where kind = 'email.send'"
        " and payload ->> 'template' = any(%s)"
        " and (%s::text is null or payload ->> 'session_id' = %s::text)"
        " and (%s::text is null or payload ->> 'template' = %s::text) order by id",
        (
            list(TEMPLATES),
            None if session is None else str(session),
            None if session is None else str(session),
            template,
            template,
        ),
    )
    return [{"key": r["dedupe_key"], **r["payload"]} for r in rows]


def events(db: Db, session: Any, event: str | None = None) -> list[dict[str, Any]]:
    """The message events sent on the session's topic, oldest first."""
    rows = db.all(
        "select event, payload from realtime.messages where topic = %s and event = any(%s)"
        " and (%s::text is null or event = %s::text) order by inserted_at, id",
        (f"session:{session}", list(EVENTS), event, event),
    )
    return [{"event": r["event"], **r["payload"]} for r in rows]


def assert_no_contact(payload: dict[str, Any]) -> None:
    text = json.dumps(payload)
    assert "@" not in text and "email" not in payload and "phone" not in payload, payload


def user(value: Any) -> str:
    return str(uuid.UUID(str(value)))
