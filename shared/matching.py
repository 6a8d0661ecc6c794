"""Routing of requests to mechanics. The rules live in SQL (private.route_request,
private.dispatch_due); this module runs them, one transaction per call, as the service."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from shared import db


def route(request_id: uuid.UUID | str, now: dt.datetime | None = None) -> dict[str, Any]:
    """Route one request now (right after it was created, or when a webhook says so)."""
    with db.transaction() as conn:
        result: dict[str, Any] = db.one(
            conn, "select private.route_request(%s, coalesce(%s, now())) as result", (str(request_id), now)
        )["result"]
    return result


def dispatch(now: dt.datetime | None = None, limit: int = 200) -> dict[str, Any]:
    """Route every request that is due (window ends, expiring offers, declines, new requests)."""
    with db.transaction() as conn:
        result: dict[str, Any] = db.one(
            conn, "select private.dispatch_due(coalesce(%s, now()), %s) as result", (now, limit)
        )["result"]
    return result
