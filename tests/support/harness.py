"""Test harness: act as anon / a user / service_role exactly as PostgREST does, run Realtime's
private-channel authorization probes, and create users through auth.users."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from shared.db import pre_request_function, run_pre_request, set_request_context
from shared.errors import error_code


class Db:
    """A connection inside one transaction (rolled back by the fixture), with persona helpers.

    Every statement runs in its own savepoint, so an expected error does not abort the test's
    transaction. Persona contexts set the same transaction-local settings PostgREST sets.
    """

    def __init__(self, conn: psycopg.Connection):
        self.conn = conn
        self.persona: str = "postgres"
        self.pre_request: str | None = None  # PostgREST's pre-request function, read when a persona starts

    # -- statements ------------------------------------------------------------------------
    def execute(self, query: str | sql.Composable, params: Any = None) -> psycopg.Cursor:
        with self.conn.transaction():
            return self.conn.execute(query, params)

    def all(self, query: str | sql.Composable, params: Any = None) -> list[dict[str, Any]]:
        with self.conn.transaction(), self.conn.cursor(row_factory=dict_row) as cur:
            cur.execute(query, params)
            return cur.fetchall()

    def one(self, query: str | sql.Composable, params: Any = None) -> dict[str, Any] | None:
        rows = self.all(query, params)
        assert len(rows) <= 1, f"expected at most one row, got {len(rows)}"
        return rows[0] if rows else None

    def scalar(self, query: str | sql.Composable, params: Any = None) -> Any:
        with self.conn.transaction():
            row = self.conn.execute(query, params).fetchone()
        return None if row is None else row[0]

    def rpc(self, name: str, **params: Any) -> Any:
        """Call public.<name>(p_x => ...) the way PostgREST's `POST /rpc/<name>` does (named
        arguments): acting as a persona, the request settings name the call and the configured
        pre-request function runs first (the rate limit), in the call's savepoint."""
        args = sql.SQL(", ").join(
            sql.SQL("{} => {}").format(sql.Identifier(k), sql.Placeholder(k)) for k in params
        )
        query = sql.SQL("select {}.{}({})").format(sql.Identifier("public"), sql.Identifier(name), args)
        with self.conn.transaction():
            if self.persona != "postgres":
                self.conn.execute("select set_config('request.method', 'POST', true), "
                                  "set_config('request.path', %s, true)", (f"/rpc/{name}",))
                run_pre_request(self.conn, self.pre_request)
            row = self.conn.execute(query, {k: _adapt(v) for k, v in params.items()}).fetchone()
        return None if row is None else row[0]

    def error(self, query: str | sql.Composable, params: Any = None) -> psycopg.Error:
        """Run a statement that must fail; return the error (for its sqlstate)."""
        try:
            self.execute(query, params)
        except psycopg.Error as exc:
            return exc
        raise AssertionError(f"expected an error from: {query!r}")

    def rpc_error(self, name: str, **params: Any) -> str:
        """Call an RPC that must fail; return its SQLSTATE (our AD code also for a 429, which is
        raised in PostgREST's PGRST form: shared.errors.error_code)."""
        try:
            self.rpc(name, **params)
        except psycopg.Error as exc:
            return error_code(exc)
        raise AssertionError(f"expected {name} to fail")

    # -- personas ----------------------------------------------------------------------------
    @contextmanager
    def as_role(self, role: str, claims: dict[str, Any] | None, *, headers: dict[str, str] | None = None) -> Iterator[Db]:
        """Act as `role` with `claims` (None: `{"role": role}`) and request `headers` through
        `shared.db.set_request_context`."""
        previous = self.persona
        if self.persona == "postgres":  # the catalog is read as the connection's own user
            self.pre_request = pre_request_function(self.conn)
        set_request_context(self.conn, role, claims, headers=headers, pre_request=False)
        run_pre_request(self.conn, self.pre_request)
        self.persona = role
        try:
            yield self
        finally:
            self.conn.execute("reset role")
            self.conn.execute("select set_config('request.jwt.claims', '', true), "
                              "set_config('request.headers', '', true)")
            self.persona = previous

    def as_anon(self) -> Any:
        return self.as_role("anon", {"role": "anon", "iss": "supabase-demo"})

    def as_service(self) -> Any:
        return self.as_role("service_role", {"role": "service_role", "iss": "supabase-demo"})

    def as_user(self, user_id: uuid.UUID | str, *, headers: dict[str, str] | None = None, **extra: Any) -> Any:
        return self.as_role("authenticated", self.claims_for(user_id, **extra), headers=headers)

    def claims_for(self, user_id: uuid.UUID | str, **extra: Any) -> dict[str, Any]:
        row = self.conn.execute(
            "select email, raw_app_meta_data, raw_user_meta_data from auth.users where id = %s", (user_id,)
        ).fetchone()
        email, app_meta, user_meta = row if row else ("", {}, {})
        claims = {
            "sub": str(user_id), "role": "authenticated", "aud": "authenticated", "email": email or "",
            "app_metadata": app_meta or {}, "user_metadata": user_meta or {}, "is_anonymous": False,
        }
        claims.update(extra)
        return claims

    # -- Realtime private-channel authorization (what the Realtime server does at join) -------
    def _persona_settings(self, user_id: uuid.UUID | str | None, topic: str) -> None:
        if user_id is None:
            role, claims = "anon", {"role": "anon"}
        else:
            role, claims = "authenticated", self.claims_for(user_id)
        self.conn.execute(
            "select set_config('role', %s, true), set_config('request.jwt.claims', %s, true), "
            "set_config('realtime.topic', %s, true)",
            (role, json.dumps(claims), topic),
        )

    def can_receive(self, user_id: uuid.UUID | str | None, topic: str, extension: str = "broadcast") -> bool:
        """Receive = as superuser insert a probe row, read it back as the user, roll back."""
        with self.conn.transaction(force_rollback=True):
            probe = self.conn.execute(
                "insert into realtime.messages (topic, extension, private, payload) "
                "values (%s, %s, true, '{}') returning id",
                (topic, extension),
            ).fetchone()[0]
            self._persona_settings(user_id, topic)
            seen = self.conn.execute(
                "select exists (select 1 from realtime.messages where id = %s and topic = %s and extension = %s)",
                (probe, topic, extension),
            ).fetchone()[0]
        return bool(seen)

    def can_send(self, user_id: uuid.UUID | str | None, topic: str, extension: str = "broadcast") -> bool:
        """Send / track = insert the row as the user; an RLS violation (42501) means no."""
        with self.conn.transaction(force_rollback=True):
            self._persona_settings(user_id, topic)
            try:
                with self.conn.transaction():
                    self.conn.execute(
                        "insert into realtime.messages (topic, extension, private, payload) "
                        "values (%s, %s, true, '{}')",
                        (topic, extension),
                    )
            except psycopg.errors.InsufficientPrivilege:
                return False
        return True

    # -- factories ---------------------------------------------------------------------------
    def make_user(
        self,
        email: str | None = None,
        *,
        app_metadata: dict[str, Any] | None = None,
        user_metadata: dict[str, Any] | None = None,
        phone: str | None = None,
    ) -> uuid.UUID:
        """A user as Supabase Auth creates one (insert into auth.users; signup triggers fire)."""
        user_id = uuid.uuid4()
        email = email or f"user-{user_id.hex[:12]}@example.test"
        self.execute(
            "insert into auth.users (instance_id, id, aud, role, email, raw_app_meta_data, raw_user_meta_data,"
            " phone, created_at, updated_at, email_confirmed_at, is_anonymous)"
            " values ('00000000-0000-0000-0000-000000000000', %s, 'authenticated', 'authenticated', %s, %s, %s,"
            " %s, now(), now(), now(), false)",
            (
                user_id, email,
                json.dumps({"provider": "email", "providers": ["email"], **(app_metadata or {})}),
                json.dumps(user_metadata or {}), phone,
            ),
        )
        return user_id


def _adapt(value: Any) -> Any:
    if isinstance(value, dict | list):
        return psycopg.types.json.Jsonb(value)
    return value
