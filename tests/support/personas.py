"""Acting as an API user on a connection of one's own (races, committed state), the way PostgREST
serves a request: one transaction that starts with `shared.db.set_request_context`.

On the `db` fixture use `Db.as_user` / `as_anon` / `as_service` / `as_role`, built on the same call.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from shared.db import set_request_context
from shared.errors import error_code


def user_claims(user: uuid.UUID | str, **extra: Any) -> dict[str, Any]:
    """The JWT payload of a signed-in user, as far as our SQL reads it."""
    return {"sub": str(user), "role": "authenticated", "aud": "authenticated", **extra}


@contextmanager
def request_as(
    conn: psycopg.Connection, role: str, claims: dict[str, Any] | None, *, method: str = "POST", path: str = "/",
    headers: dict[str, str] | None = None,
) -> Iterator[psycopg.Connection]:
    """One request's transaction acting as `role` with `claims` and request `headers` (committed on
    success, rolled back on error)."""
    with conn.transaction():
        set_request_context(conn, role, claims, method=method, path=path, headers=headers)
        yield conn


def request_as_user(conn: psycopg.Connection, user: uuid.UUID | str) -> Any:
    """`request_as` for a signed-in user."""
    return request_as(conn, "authenticated", user_claims(user))


def call_as(conn: psycopg.Connection, user: uuid.UUID, query: str, params: tuple[Any, ...]) -> tuple[str, Any]:
    """One PostgREST-style request: a transaction acting as `user`. Returns ("ok", value) or ("err", sqlstate);
    for a 429 raised in PostgREST's PGRST form, our code inside it (shared.errors.error_code)."""
    try:
        with request_as_user(conn, user):
            return "ok", conn.execute(query, params).fetchone()[0]
    except psycopg.Error as exc:
        return "err", error_code(exc)


def race(calls: list[tuple[psycopg.Connection, uuid.UUID, str, tuple[Any, ...]]]) -> list[tuple[str, Any]]:
    """Start every `call_as` at the same moment (a barrier), one thread per connection."""
    barrier = threading.Barrier(len(calls))
    results: list[tuple[str, Any]] = [("err", "not run")] * len(calls)

    def run(i: int) -> None:
        conn, user, query, params = calls[i]
        barrier.wait()
        results[i] = call_as(conn, user, query, params)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results
