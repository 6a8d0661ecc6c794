"""Helpers for the limits and rate-limit tests (no tests here)."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from shared.errors import error_code, retry_after
from tests.support.harness import Db


def set_setting(db: Db, key: str, value: Any) -> None:
    """Change a setting for the rest of the test (the `db` fixture rolls it back)."""
    db.execute("update private.settings set value = to_jsonb(%s::numeric) where key = %s", (value, key))


def allow_free_sessions(db: Db, count: int = 1000) -> None:
    """Let every account have `count` free sessions (tests whose world files several free requests
    of one customer and that test something else than the limits)."""
    set_setting(db, "limits.free_sessions_per_account", count)


def rpc_failure(db: Db, name: str, **params: Any) -> psycopg.Error:
    """Call an RPC that must fail; the error itself (for its Retry-After)."""
    try:
        db.rpc(name, **params)
    except psycopg.Error as exc:
        return exc
    raise AssertionError(f"expected {name} to fail")


def code_and_retry(exc: psycopg.Error) -> tuple[str, str | None]:
    return error_code(exc), retry_after(exc)


def open_requests(db: Db, customer: uuid.UUID) -> int:
    return int(db.scalar("select private.open_requests_count(%s)", (customer,)))


def sessions_of(db: Db, customer: uuid.UUID) -> int:
    return int(db.scalar("select count(*) from public.sessions where customer_id = %s", (customer,)))
