"""Calls made as PostgREST makes them, timed and logged.

Each database call is one transaction on a pooled connection: the request's settings the way
PostgREST sets them (`role` authenticated, `request.jwt.claims` as Supabase Auth signs them,
`request.method`, `request.path`, `request.headers`), the configured pre-request function (the
rate limit of write RPCs), then the statement, then commit. HTTP functions are called with the
user's access token signed with the project's JWT secret. Every call is recorded as a
`metrics.Call`: its name (`rpc:<fn>`, `rest:<verb> <table>`, `fn:<target>`), wall time in ms and
code (empty, the SQLSTATE / our AD code, `HTTP <status>`, `timeout` or `connection`).

The pool survives a database restart: a connection the server closed while idle is found without
a round trip and replaced before use, a call in flight when the server goes away fails with its
code, and a pool that could not connect is replaced once the database answers again.
"""

from __future__ import annotations

import asyncio
import json
import select
import time
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from shared.db import _PRE_REQUEST_FUNCTION, pre_request_function
from shared.dev.sim.metrics import Call, CallLog
from shared.dev.tokens import make_token
from shared.errors import error_code, retry_after

POOL_SIZE = 8
CALL_TIMEOUT_S = 10.0   # a call waits at most this long for a connection
HTTP_TIMEOUT_S = 15.0
ISSUER = "supabase-demo"


@dataclass(frozen=True)
class User:
    id: str
    email: str


@dataclass
class Result:
    """What a call answered: `value` on success, else `code` (and `retry_after` seconds when given)."""

    value: Any = None
    code: str = ""
    retry_after: float | None = None
    status: int = 0  # HTTP status of a function call

    @property
    def ok(self) -> bool:
        return self.code == ""


def claims_for(user: User, now: int | None = None) -> dict[str, Any]:
    """The claims of a Supabase Auth access token for `user` (what `auth.uid()`/`auth.jwt()` read)."""
    iat = int(time.time()) if now is None else now
    return {
        "iss": ISSUER, "sub": user.id, "role": "authenticated", "aud": "authenticated", "iat": iat,
        "exp": iat + 3600, "email": user.email, "phone": "",
        "app_metadata": {"provider": "email", "providers": ["email"]}, "user_metadata": {},
        "aal": "aal1", "amr": [{"method": "password", "timestamp": iat}],
        "session_id": str(uuid.UUID(int=uuid.UUID(user.id).int ^ 0x5EED, version=4)), "is_anonymous": False,
    }


def _stale(conn: psycopg.AsyncConnection[Any]) -> bool:
    """An idle pooled connection the server closed (restart, terminated backend): its socket is
    readable or hung up, found without a round trip."""
    if conn.closed or conn.broken:
        return True
    try:
        poller = select.poll()
        poller.register(conn.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
        return bool(poller.poll(0))
    except (OSError, ValueError, psycopg.Error):
        return True


def _code(exc: BaseException) -> str:
    if isinstance(exc, PoolTimeout):
        return "timeout"
    if isinstance(exc, psycopg.Error):
        code = error_code(exc)
        if code:
            return code
    if isinstance(exc, (psycopg.OperationalError, OSError)):
        return "connection"
    if isinstance(exc, asyncio.TimeoutError):
        return "timeout"
    return "error"


class Client:
    """One worker's client: a pool of database connections (PostgREST's) and an HTTP session."""

    def __init__(self, database_url: str, log: CallLog | None, started_at: float, *, jwt_secret: str = "",
                 pool_size: int = POOL_SIZE):
        self.database_url = database_url
        self.log = log
        self.started_at = started_at
        self.jwt_secret = jwt_secret
        self.pool_size = pool_size
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None = None
        self._pool_failing = False
        self._recovering = asyncio.Lock()
        self._closing: set[asyncio.Task[None]] = set()
        self._pre_request: str | None = None
        self._http: aiohttp.ClientSession | None = None
        self._tokens: dict[str, tuple[float, str]] = {}
        self._claims: dict[str, tuple[float, str]] = {}
        self.calls = 0
        self._stopped = False

    def stop_calls(self) -> None:
        """The run has ended: from now on a call is not started (it raises CancelledError, which
        ends the actor making it); the calls in flight finish and are recorded."""
        self._stopped = True

    def _refuse_if_stopped(self) -> None:
        if self._stopped:
            raise asyncio.CancelledError("the run has ended: no new call")

    # -- lifecycle -------------------------------------------------------------------------
    def _new_pool(self) -> AsyncConnectionPool[psycopg.AsyncConnection[Any]]:
        return AsyncConnectionPool(
            self.database_url, min_size=1, max_size=self.pool_size, timeout=CALL_TIMEOUT_S, open=False,
            kwargs={"prepare_threshold": None, "row_factory": dict_row, "autocommit": False},
            reconnect_timeout=3600)

    async def open(self) -> None:
        self._pool = self._new_pool()
        await self._pool.open(wait=False)
        try:
            async with await psycopg.AsyncConnection.connect(self.database_url, prepare_threshold=None) as conn:
                cur = await conn.execute(
                    "select 1 from pg_catalog.pg_roles where rolname = 'authenticator'")
                if await cur.fetchone() is not None:
                    self._pre_request = await _pre_request_async(conn)
        except psycopg.Error:
            self._pre_request = None

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close(timeout=1)
            self._pool = None
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def _recover(self) -> None:
        """After the pool failed to connect: a direct connection tells whether the database is back;
        if it is, the pool (possibly sleeping in its reconnection backoff) is replaced."""
        async with self._recovering:  # one call checks; the others wait for its answer
            if not self._pool_failing:
                return
            conn = await psycopg.AsyncConnection.connect(self.database_url, connect_timeout=3,
                                                         prepare_threshold=None)
            await conn.close()
            old, self._pool, self._pool_failing = self._pool, self._new_pool(), False
            await self._pool.open(wait=False)
        if old is not None:
            task = asyncio.get_running_loop().create_task(old.close(timeout=0))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    # -- recording -------------------------------------------------------------------------
    def record(self, name: str, t0: float, code: str) -> None:
        self.calls += 1
        if self.log is not None:
            self.log.add(Call(t=t0 - self.started_at, name=name, ms=(time.time() - t0) * 1000.0, code=code))

    def claims_json(self, user: User) -> str:
        now = time.time()
        cached = self._claims.get(user.id)
        if cached is None or cached[0] < now + 60:
            claims = claims_for(user, int(now))
            cached = (float(claims["exp"]), json.dumps(claims))
            self._claims[user.id] = cached
        return cached[1]

    def token(self, user: User) -> str:
        now = time.time()
        cached = self._tokens.get(user.id)
        if cached is None or cached[0] < now + 60:
            token = make_token(secret=self.jwt_secret, user_id=user.id, email=user.email, ttl=3600, now=int(now))
            cached = (now + 3600, token)
            self._tokens[user.id] = cached
        return cached[1]

    # -- database calls --------------------------------------------------------------------
    async def _run(self, user: User, name: str, method: str, path: str, query: sql.Composed,
                   params: dict[str, Any] | None, fetch: str) -> Result:
        self._refuse_if_stopped()
        t0 = time.time()
        try:
            if self._pool_failing:
                await self._recover()
            assert self._pool is not None, "the client is not open"
            pool = self._pool
            deadline = time.monotonic() + CALL_TIMEOUT_S
            while True:
                try:
                    conn = await pool.getconn(timeout=max(0.0, deadline - time.monotonic()))
                except psycopg.OperationalError:
                    self._pool_failing = True
                    raise
                if not _stale(conn):
                    break
                await conn.close()  # closed: the pool replaces it
                await pool.putconn(conn)
            try:
                async with conn.transaction():
                    await conn.execute(
                        "select set_config('search_path', 'public, extensions', true), "
                        "set_config('role', 'authenticated', true), "
                        "set_config('request.jwt.claims', %s, true), set_config('request.method', %s, true), "
                        "set_config('request.path', %s, true), set_config('request.headers', %s, true)",
                        (self.claims_json(user), method, path, _HEADERS))
                    if self._pre_request:
                        await conn.execute(sql.SQL("select {}()").format(
                            sql.Identifier(*self._pre_request.split("."))))
                    cur = await conn.execute(query, params)
                    if fetch == "one":
                        row = await cur.fetchone()
                        value: Any = None if row is None else next(iter(row.values()))
                    else:
                        value = await cur.fetchall()
            finally:
                await pool.putconn(conn)
        except (TimeoutError, psycopg.Error, OSError) as exc:
            code = _code(exc)
            after = retry_after(exc)
            self.record(name, t0, code)
            return Result(code=code, retry_after=float(after) if after else None)
        self.record(name, t0, "")
        return Result(value=value)

    async def rpc(self, user: User, fn: str, **args: Any) -> Result:
        """`POST /rest/v1/rpc/<fn>` with named arguments: `select public.<fn>(p => value, …)`."""
        call = sql.SQL("select {}.{}({}) as r").format(
            sql.Identifier("public"), sql.Identifier(fn),
            sql.SQL(", ").join(sql.SQL("{} => {}").format(sql.Identifier(k), sql.Placeholder(k)) for k in args))
        return await self._run(user, f"rpc:{fn}", "POST", f"/rpc/{fn}", call,
                               {k: _adapt(v) for k, v in args.items()}, "one")

    async def rpc_rows(self, user: User, fn: str, **args: Any) -> Result:
        """A set-returning RPC: the rows as dicts."""
        call = sql.SQL("select * from {}.{}({})").format(
            sql.Identifier("public"), sql.Identifier(fn),
            sql.SQL(", ").join(sql.SQL("{} => {}").format(sql.Identifier(k), sql.Placeholder(k)) for k in args))
        return await self._run(user, f"rpc:{fn}", "POST", f"/rpc/{fn}", call,
                               {k: _adapt(v) for k, v in args.items()}, "all")

    async def insert(self, user: User, table: str, row: dict[str, Any], returning: str = "id") -> Result:
        """`POST /rest/v1/<table>` (Prefer: return=representation): the new row's `returning` column."""
        query = sql.SQL("insert into {}.{} ({}) values ({}) returning {}").format(
            sql.Identifier("public"), sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, row)),
            sql.SQL(", ").join(sql.Placeholder(k) for k in row), sql.Identifier(returning))
        return await self._run(user, f"rest:post {table}", "POST", f"/{table}", query,
                               {k: _adapt(v) for k, v in row.items()}, "one")

    async def select(self, user: User, table: str, columns: list[str], where: dict[str, Any] | None = None,
                     limit: int = 100) -> Result:
        """`GET /rest/v1/<table>?select=…&<col>=eq.<value>`: the rows RLS lets the user see."""
        where = where or {}
        cond = sql.SQL(" and ").join(sql.SQL("{} = {}").format(sql.Identifier(k), sql.Placeholder(k)) for k in where)
        query = sql.SQL("select {} from {}.{}{} limit {}").format(
            sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier("public"), sql.Identifier(table),
            sql.SQL(" where ") + cond if where else sql.SQL(""), sql.Literal(limit))
        return await self._run(user, f"rest:get {table}", "GET", f"/{table}", query,
                               {k: _adapt(v) for k, v in where.items()}, "all")

    # -- HTTP functions --------------------------------------------------------------------
    async def http(self, user: User | None, target: str, url: str, body: dict[str, Any] | None = None,
                   *, name: str | None = None, record: bool = True) -> Result:
        """POST `url` with a JSON body (and the user's access token when `user` is given); recorded
        as `name` (default `fn:<target>`). `value` is the JSON answer, `code` `HTTP <status>` on an
        error status. `record=False`: not one of our system's calls (a provider stub's control
        endpoint, standing for what a person does at Stripe or in a LiveKit room)."""
        self._refuse_if_stopped()
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S))
        headers = {"Content-Type": "application/json"}
        if user is not None:
            headers["Authorization"] = f"Bearer {self.token(user)}"
        t0 = time.time()
        call_name = name or f"fn:{target}"
        rec = self.record if record else (lambda _n, _t, _c: None)
        try:
            async with self._http.post(url, data=json.dumps(body or {}, default=str), headers=headers) as resp:
                text = await resp.text()
                status = resp.status
                after = resp.headers.get("Retry-After")
        except TimeoutError:
            rec(call_name, t0, "timeout")
            return Result(code="timeout")
        except aiohttp.ClientError:
            rec(call_name, t0, "connection")
            return Result(code="connection")
        try:
            value: Any = json.loads(text) if text else None
        except ValueError:
            value = text
        code = "" if status < 400 else f"HTTP {status}"
        rec(call_name, t0, code)
        return Result(value=value, code=code, status=status,
                      retry_after=float(after) if after and after.isdigit() else None)


_HEADERS = json.dumps({"user-agent": "autodoctor-sim/1.0", "x-forwarded-for": "192.0.2.10",
                       "content-type": "application/json"})


def _adapt(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        return Jsonb(value)
    return value


async def _pre_request_async(conn: psycopg.AsyncConnection[Any]) -> str | None:
    """`shared.db.pre_request_function` on an async connection (the same catalog query)."""
    cur = await conn.execute(_PRE_REQUEST_FUNCTION)
    row = await cur.fetchone()
    return None if row is None else str(row[0] if not isinstance(row, dict) else row['fn'])


__all__ = ["Client", "Result", "User", "claims_for", "pre_request_function"]
