"""What a simulation run samples from the database (docs/simulation.md, "The report"; docs/scaling.md).

- `sample(conn)`: the queue depths and the database's load at one moment, one query (every second).
- `request_timings(conn, started_at)`: for each request filed during the run, filing → first offer
  and filing → accept.
- `db_stats_begin(conn)` / `db_stats_end(conn, begin, calls)`: the database's own view of the run:
  WAL written (in all and per call), the top statements of `pg_stat_statements` (when the server
  preloads it), transactions committed and rolled back, deadlocks, temporary files, lock waits.

Every function reads as the owner's connection and writes nothing but, at most, the
`pg_stat_statements` extension (created when the server preloads the library and it is absent).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import pq, sql
from psycopg.rows import dict_row

from shared.dev.sim.metrics import RequestTiming

TOP_STATEMENTS = 15

_SAMPLE = """
select r.*, s.*, p.*, j.*, b.*
from (select count(*) filter (where status in ('pending', 'unattended')) as requests_open,
             count(*) filter (where status = 'pending') as requests_pending,
             count(*) filter (where status = 'unattended') as requests_unattended
      from public.session_requests where status in ('pending', 'unattended')) r,
     (select count(*) filter (where s.status = 'waiting' and r.status = 'accepted') as accepted_not_started,
             count(*) filter (where s.status = 'waiting') as sessions_waiting,
             count(*) filter (where s.status = 'live') as sessions_live
      from public.sessions s left join public.session_requests r on r.session_id = s.id
      where s.status in ('waiting', 'live')) s,
     -- one pass over the presence view (it evaluates every approved mechanic)
     (select count(*) filter (where presence = 'online') as mechanics_online,
             count(*) filter (where presence = 'busy') as mechanics_busy
      from public.mechanic_presence) p,
     (select count(*) filter (where status = 'pending' and next_attempt_at <= now()) as jobs_due,
             count(*) filter (where status = 'pending') as jobs_pending,
             count(*) filter (where status = 'processing') as jobs_claimed,
             count(*) filter (where status = 'dead') as jobs_dead,
             count(*) filter (where status = 'pending' and next_attempt_at <= now()
                                and kind like 'email.%%') as emails_due
      from private.outbox where status in ('pending', 'processing', 'dead')) j,
     (select count(*) filter (where state = 'active' and pid <> pg_backend_pid()) as backends_active,
             count(*) filter (where wait_event_type = 'Lock') as backends_waiting_lock,
             count(*) as backends_total
      from pg_stat_activity where datname = current_database()) b
"""


def _idle(conn: psycopg.Connection) -> bool:
    return conn.info.transaction_status == pq.TransactionStatus.IDLE


def _finish(conn: psycopg.Connection, was_idle: bool) -> None:
    """Ends the read transaction this module opened (never the caller's own)."""
    if was_idle and not conn.autocommit and not _idle(conn):
        conn.rollback()


def sample(conn: psycopg.Connection) -> dict[str, float]:
    """Queue depths now: open requests (pending, unattended), accepted not started, waiting and live
    sessions, online and busy mechanics, the job queue (due, pending, claimed, dead letters, emails
    due), backends active (other than this one), waiting on a lock, connected."""
    was_idle = _idle(conn)
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(_SAMPLE)
        row = cur.fetchone()
    _finish(conn, was_idle)
    return {k: float(v) for k, v in (row or {}).items()}


_TIMINGS = """
select r.id::text as request_id,
       extract(epoch from r.created_at)::float8 - %(t0)s as t,
       extract(epoch from least(o.first_offer, r.broadcast_at) - r.created_at)::float8 as first_offer_s,
       extract(epoch from r.accepted_at - r.created_at)::float8 as accept_s
from public.session_requests r
left join lateral (select min(x.offered_at) as first_offer from public.session_offers x
                   where x.request_id = r.id and x.mechanic_id is not null and x.status <> 'queued') o on true
where r.created_at >= to_timestamp(%(t0)s)
order by r.created_at, r.id
"""


def request_timings(conn: psycopg.Connection, started_at: float) -> list[RequestTiming]:
    """Every request filed since `started_at` (epoch seconds): when (t, seconds since the start), how
    long until it was first offered (the first offer shown to a mechanic, or its broadcast to all,
    whichever came first) and until it was accepted (the last accept, after a release)."""
    was_idle = _idle(conn)
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(_TIMINGS, {"t0": float(started_at)})
        rows = cur.fetchall()
    _finish(conn, was_idle)
    return [RequestTiming(r["request_id"], float(r["t"]), r["first_offer_s"], r["accept_s"]) for r in rows]


# -- the database's own statistics ---------------------------------------------------------------
_DB_COUNTERS = ("xact_commit", "xact_rollback", "deadlocks", "temp_files", "temp_bytes", "blks_read", "blks_hit",
                "tup_inserted", "tup_updated", "tup_deleted", "conflicts")


def _one(conn: psycopg.Connection, query: str | sql.Composed, params: Any = None) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        row = cur.fetchone()
    return dict(row or {})


def _statements_schema(conn: psycopg.Connection) -> tuple[str | None, str]:
    """The schema of pg_stat_statements, creating the extension if the server preloads it; else why not."""
    preload = str(_one(conn, "select current_setting('shared_preload_libraries') as v")["v"] or "")
    if "pg_stat_statements" not in [p.strip() for p in preload.split(",")]:
        return None, "unavailable: pg_stat_statements is not in shared_preload_libraries"
    found = _one(conn, "select n.nspname from pg_extension e join pg_namespace n on n.oid = e.extnamespace "
                       "where e.extname = 'pg_stat_statements'")
    if found:
        return str(found["nspname"]), "available"
    try:
        with conn.transaction():
            conn.execute("create extension if not exists pg_stat_statements")
    except psycopg.Error as exc:
        return None, f"unavailable: {str(exc).strip()[:300]}"
    found = _one(conn, "select n.nspname from pg_extension e join pg_namespace n on n.oid = e.extnamespace "
                       "where e.extname = 'pg_stat_statements'")
    return (str(found["nspname"]), "available") if found else (None, "unavailable")


def _statements(conn: psycopg.Connection, schema: str) -> dict[str, dict[str, Any]]:
    query = sql.SQL(
        "select s.userid::text || ':' || s.queryid::text as key, s.query, s.calls, s.total_exec_time, s.rows, "
        "s.shared_blks_read, s.temp_blks_written, s.wal_bytes "
        "from {}.pg_stat_statements s where s.dbid = (select oid from pg_database where datname = current_database())"
    ).format(sql.Identifier(schema))
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query)
        return {str(r["key"]): {"query": str(r["query"]), "calls": int(r["calls"]),
                                "total_exec_time": float(r["total_exec_time"]), "rows": int(r["rows"]),
                                "shared_blks_read": int(r["shared_blks_read"]),
                                "temp_blks_written": int(r["temp_blks_written"]),
                                "wal_bytes": int(r["wal_bytes"] or 0)}
                for r in cur.fetchall()}


def _counters(conn: psycopg.Connection) -> dict[str, Any]:
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in _DB_COUNTERS)
    row = _one(conn, sql.SQL("select {}, pg_current_wal_insert_lsn()::text as wal_lsn from pg_stat_database "
                             "where datname = current_database()").format(cols))
    return {k: (int(v) if k != "wal_lsn" and v is not None else v) for k, v in row.items()}


def db_stats_begin(conn: psycopg.Connection) -> dict[str, Any]:
    """A snapshot to diff at the end: WAL position, the database's counters, the statements' counters."""
    was_idle = _idle(conn)
    schema, status = _statements_schema(conn)
    begin: dict[str, Any] = {"at": time.time(), "counters": _counters(conn), "pg_stat_statements": status,
                             "statements_schema": schema,
                             "statements": _statements(conn, schema) if schema else {}}
    _finish(conn, was_idle)
    return begin


def _delta(end: Any, start: Any) -> int | None:
    """end − start; None when a counter went back (the server restarted and lost its statistics)."""
    if end is None or start is None:
        return None
    d = int(end) - int(start)
    return d if d >= 0 else None


def db_stats_end(conn: psycopg.Connection, begin: dict[str, Any], calls: int,
                 lock_waiting_samples: Sequence[float] = ()) -> dict[str, Any]:
    """The run's view from the database: WAL bytes (and per call), transactions committed and rolled
    back, deadlocks, temporary files, the top statements by total time (when pg_stat_statements is
    there) and lock waits (deadlocks, plus the sampled count of backends waiting on a lock)."""
    was_idle = _idle(conn)
    conn.execute("select pg_stat_clear_snapshot()")  # not the statistics cached earlier in this transaction
    start = begin["counters"]
    end = _counters(conn)
    wal = _one(conn, "select pg_wal_lsn_diff(%s::pg_lsn, %s::pg_lsn)::bigint as d", (end["wal_lsn"], start["wal_lsn"]))
    wal_bytes = int(wal["d"]) if wal.get("d") is not None else None
    out: dict[str, Any] = {
        "duration_s": round(time.time() - float(begin["at"]), 3),
        "calls": int(calls),
        "wal_bytes": wal_bytes,
        "wal_bytes_per_call": (round(wal_bytes / calls, 1) if wal_bytes is not None and calls > 0 else None),
        **{c: _delta(end.get(c), start.get(c)) for c in _DB_COUNTERS},
        "locks_waited": {
            "deadlocks": _delta(end.get("deadlocks"), start.get("deadlocks")),
            "samples": len(lock_waiting_samples),
            "samples_with_waiters": sum(1 for v in lock_waiting_samples if v > 0),
            "max_waiting_backends": max(lock_waiting_samples, default=0.0),
            "mean_waiting_backends": (round(sum(lock_waiting_samples) / len(lock_waiting_samples), 3)
                                      if lock_waiting_samples else 0.0),
            "waiting_now": int(_one(conn, "select count(*) as n from pg_stat_activity "
                                          "where datname = current_database() and wait_event_type = 'Lock'")["n"]),
        },
        "pg_stat_statements": begin.get("pg_stat_statements", "unavailable"),
        "top_statements": [],
    }
    schema = begin.get("statements_schema")
    if schema:
        before: dict[str, dict[str, Any]] = begin.get("statements") or {}
        rows: list[dict[str, Any]] = []
        for key, now in _statements(conn, schema).items():
            was = before.get(key, {})
            n = int(now["calls"]) - int(was.get("calls", 0))
            total = float(now["total_exec_time"]) - float(was.get("total_exec_time", 0.0))
            if n <= 0 or total <= 0:
                continue
            rows.append({
                "query": " ".join(str(now["query"]).split())[:500],
                "calls": n,
                "total_ms": round(total, 3),
                "mean_ms": round(total / n, 4),
                "rows": int(now["rows"]) - int(was.get("rows", 0)),
                "shared_blks_read": int(now["shared_blks_read"]) - int(was.get("shared_blks_read", 0)),
                "temp_blks_written": int(now["temp_blks_written"]) - int(was.get("temp_blks_written", 0)),
                "wal_bytes": int(now["wal_bytes"] or 0) - int(was.get("wal_bytes", 0) or 0),
            })
        rows.sort(key=lambda r: float(r["total_ms"]), reverse=True)
        out["top_statements"] = rows[:TOP_STATEMENTS]
    _finish(conn, was_idle)
    return out
