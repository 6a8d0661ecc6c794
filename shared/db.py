"""Database access for functions: a lazily created pool, one transaction per request, and acting
for a user exactly as PostgREST does (role + request.jwt.claims, transaction-local)."""

from __future__ import annotations

import json
import select
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from shared.config import get_settings

Conn = psycopg.Connection[DictRow]
"""A connection of the pool: rows are dicts keyed by column name."""

# Seconds a request waits for a connection: with the database down, a function answers 503
# database_unavailable (shared.errors) after this long instead of the pool's default 30 s.
CONNECT_TIMEOUT = 3.0

_pool: ConnectionPool[Conn] | None = None
_lock = threading.Lock()


def database_url() -> str:
    """DATABASE_URL; the runtime has no default (locally, `autodoctor serve` and the tests set it)."""
    url = get_settings().database_url
    if not url:
        raise RuntimeError("DATABASE_URL is not set")
    return url


def _stale(conn: Conn) -> bool:
    """A pooled connection the server has closed while it sat idle (a restart, an idle timeout, a
    terminated backend), found without a round trip: an idle connection has nothing to read, so a
    readable socket means the server said goodbye or hung up."""
    if conn.closed or conn.broken:
        return True
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(0))


# Set when the pool could not hand out a connection: while the database was down, the pool's own
# reconnection attempts back off (1 s, 2 s, 4 s, …), so the first request after the database is back
# would still wait and fail. The next request connects directly instead and, when that works,
# replaces the pool with a fresh one (which connects at once).
_pool_failing = False


def _recover_pool(timeout: float) -> None:
    """After a failure: a direct connection tells whether the database is back (raises if not);
    if it is, the pool (possibly sleeping in its backoff) is replaced."""
    global _pool, _pool_failing
    psycopg.connect(database_url(), connect_timeout=max(1, int(timeout)), prepare_threshold=None).close()
    with _lock:
        old, _pool, _pool_failing = _pool, None, False
    if old is not None:
        old.close(timeout=0)  # its workers may be sleeping: do not wait for them


@contextmanager
def connection(timeout: float | None = None) -> Iterator[Conn]:
    """A connection of the pool, waiting at most `timeout` seconds (CONNECT_TIMEOUT) for one. Stale
    connections are closed and handed back (the pool replaces them) until a live one comes, and a
    pool that failed is replaced once the database answers again, so the first request after a
    database restart succeeds."""
    global _pool_failing
    deadline = time.monotonic() + (CONNECT_TIMEOUT if timeout is None else timeout)
    if _pool_failing:
        _recover_pool(deadline - time.monotonic())
    p = pool()
    while True:
        try:
            conn = p.getconn(timeout=max(0.0, deadline - time.monotonic()))
        except psycopg.OperationalError:
            _pool_failing = True
            raise
        if not _stale(conn):
            break
        conn.close()
        p.putconn(conn)
        if time.monotonic() > deadline:
            _pool_failing = True
            raise PoolTimeout(f"no live connection after {CONNECT_TIMEOUT} s")
    try:
        yield conn
    finally:
        p.putconn(conn)


def pool() -> ConnectionPool[Conn]:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ConnectionPool(
                database_url(),
                connection_class=Conn,
                min_size=0,
                max_size=10,
                timeout=CONNECT_TIMEOUT,
                # transaction pooler (Supavisor) compatible: no server-side prepared statements
                kwargs={"prepare_threshold": None, "row_factory": dict_row},
                open=True,
            )
        return _pool


def close_pool() -> None:
    global _pool, _pool_failing
    with _lock:
        if _pool is not None:
            _pool.close()
            _pool = None
        _pool_failing = False


# PostgREST's pre-request function (`pgrst.db_pre_request`, a role setting of authenticator; a
# setting for this database wins over one for every database), if it names a function that exists.
_PRE_REQUEST_FUNCTION = """
select c.fn from (
  select substr(cfg, length('pgrst.db_pre_request=') + 1) as fn
  from pg_catalog.pg_db_role_setting s cross join lateral unnest(s.setconfig) cfg
  where s.setrole = (select r.oid from pg_catalog.pg_roles r where r.rolname = 'authenticator')
    and s.setdatabase in (0, (select d.oid from pg_catalog.pg_database d where d.datname = current_database()))
    and cfg like 'pgrst.db\\_pre\\_request=%'
  order by s.setdatabase desc
  limit 1) c
where c.fn ~ '^[a-z_][a-z0-9_]*([.][a-z_][a-z0-9_]*)?$' and to_regprocedure(c.fn || '()') is not null
"""


def pre_request_function(conn: psycopg.Connection[Any]) -> str | None:
    """The pre-request function PostgREST is configured to call (read from the catalog), or None."""
    row = conn.execute(_PRE_REQUEST_FUNCTION).fetchone()
    if row is None:
        return None
    return str(row["fn"] if isinstance(row, dict) else row[0])


def run_pre_request(conn: psycopg.Connection[Any], function: str | None) -> None:
    """Call the pre-request function as PostgREST does: `select <function>()` in the request's transaction."""
    if function:
        conn.execute(sql.SQL("select {}()").format(sql.Identifier(*function.split("."))))


def set_request_context(
    conn: psycopg.Connection[Any], role: str, claims: dict[str, Any] | None, *, method: str = "POST", path: str = "/",
    headers: dict[str, str] | None = None, pre_request: bool | str = True,
) -> None:
    """What PostgREST does at the start of each request's transaction: the role and the request
    settings (`headers`: the request's headers, set as `request.headers` the way PostgREST does, a
    JSON object with lower-case names), then the configured pre-request function
    (pre_request=False: the settings only; True: read from the catalog now; a name: the function
    the caller read once with `pre_request_function`, as PostgREST reads its configuration once
    and not per request)."""
    function = pre_request if isinstance(pre_request, str) else pre_request_function(conn) if pre_request else None
    conn.execute(
        "select set_config('search_path', 'public, extensions', true), set_config('role', %s, true), "
        "set_config('request.jwt.claims', %s, true), set_config('request.method', %s, true), "
        "set_config('request.path', %s, true), set_config('request.headers', %s, true)",
        (role, json.dumps(claims or {"role": role}), method, path,
         json.dumps({name.lower(): value for name, value in (headers or {}).items()})),
    )
    run_pre_request(conn, function)


# Every Python path runs its SQL as this role, the way PostgREST runs a request made with the
# service key: grants decide what it may call (the `private` functions granted to service_role),
# RLS does not apply. The connection's own user (the schema owner) is never used for platform work.
PLATFORM_ROLE = "service_role"


@contextmanager
def transaction() -> Iterator[Conn]:
    """One transaction acting as PLATFORM_ROLE (role and JWT claims set transaction-locally)."""
    with connection() as conn, conn.transaction():
        # the Python runtime connects directly, not through PostgREST: no pre-request function
        set_request_context(conn, PLATFORM_ROLE, {"role": PLATFORM_ROLE}, pre_request=False)
        yield conn


def one(conn: psycopg.Connection[DictRow], query: str, params: Sequence[Any] = ()) -> DictRow:
    """The row of a query that always returns one (a function call, an aggregate, `returning`)."""
    row = conn.execute(query, params).fetchone()
    if row is None:
        raise RuntimeError("the query returned no row")
    return row
