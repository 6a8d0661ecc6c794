"""How much does each test isolation strategy cost? (docs/testing.md quotes the numbers.)

    .venv/bin/python bench/bench_isolation.py [-n 50] [--fsync]

Builds a migrated template database the way tests/conftest.py does, then times:
- clone: `create database ... template <template>` + `drop database ... with (force)`, the cost of
  one `fresh_url` test;
- rollback: `begin`, one insert into auth.users (signup triggers fire), `rollback`, the cost of
  one `db` test's isolation.

Uses DATABASE_URL's server when set, else starts a throwaway embedded PostgreSQL configured like
the test cluster (fsync off; `--fsync` keeps it on).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from bench.common import stamp
from shared.dev.embedded import EmbeddedPostgres
from shared.dev.migrate import migrate, recreate_database


def _with_db(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@contextmanager
def server(fsync: bool) -> Iterator[str]:
    url = os.environ.get("DATABASE_URL")
    if url:
        yield _with_db(url, "postgres")
        return
    home = Path(tempfile.mkdtemp(prefix="autodoctor-bench-"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    embedded = EmbeddedPostgres(home=home, port=port, fast=not fsync)
    try:
        yield embedded.start()
    finally:
        embedded.stop()
        shutil.rmtree(home, ignore_errors=True)


def _drop(conn: psycopg.Connection, name: str) -> None:
    conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def time_clones(admin_url: str, template: str, n: int) -> tuple[list[float], list[float]]:
    """(create times, drop times)."""
    creates, drops = [], []
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for i in range(n):
            name = f"{template}_c{i}"
            started = time.perf_counter()
            conn.execute(sql.SQL("create database {} template {}").format(sql.Identifier(name),
                                                                         sql.Identifier(template)))
            created = time.perf_counter()
            _drop(conn, name)
            creates.append(created - started)
            drops.append(time.perf_counter() - created)
    return creates, drops


def time_rollbacks(url: str, n: int) -> list[float]:
    timings = []
    with psycopg.connect(url, prepare_threshold=None) as conn:
        conn.rollback()
        for _ in range(n):
            user = uuid.uuid4()
            started = time.perf_counter()
            conn.execute(
                "insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data,"
                " created_at, updated_at) values (%s, 'authenticated', 'authenticated', %s,"
                " '{\"provider\": \"email\"}', '{}', now(), now())",
                (user, f"bench-{user.hex[:12]}@example.test"),
            )
            conn.rollback()
            timings.append(time.perf_counter() - started)
    return timings


def _summary(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"median {statistics.median(ordered) * 1000:8.2f} ms   p95 {p95 * 1000:8.2f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=50, help="cycles per strategy (default 50)")
    parser.add_argument("--fsync", action="store_true", help="embedded server with fsync on")
    args = parser.parse_args()

    with server(args.fsync) as admin_url:
        template = f"adbench_tpl_{uuid.uuid4().hex[:8]}"
        recreate_database(admin_url, template)
        try:
            migrate(_with_db(admin_url, template), log=lambda _m: None)
            with psycopg.connect(_with_db(admin_url, template)) as conn:
                version = conn.execute("show server_version").fetchone()[0]
                stamp_line = stamp(_with_db(admin_url, template))
                fsync = conn.execute("show fsync").fetchone()[0]
                size = conn.execute("select pg_size_pretty(pg_database_size(current_database()))").fetchone()[0]
                migrations = conn.execute("select count(*) from autodoctor_meta.schema_migrations").fetchone()[0]
                relations = conn.execute(
                    "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace"
                    " where n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast')"
                ).fetchone()[0]
            # a clone for the rollback cycles, so nobody stays connected to the template
            work = f"{template}_work"
            recreate_database(admin_url, work, template=template)
            creates, drops = time_clones(admin_url, template, args.n)
            clones = [c + d for c, d in zip(creates, drops, strict=True)]
            rollbacks = time_rollbacks(_with_db(admin_url, work), args.n)
        finally:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                _drop(conn, f"{template}_work")
                _drop(conn, template)

    print(stamp_line)
    print(f"PostgreSQL {version} (fsync {fsync}), {args.n} cycles each")
    print(f"template: {migrations} migration(s), {relations} relations, {size}")
    print(f"clone + drop of the migrated template : {_summary(clones)}")
    print(f"  of which create database            : {_summary(creates)}")
    print(f"  of which drop database              : {_summary(drops)}")
    print(f"begin + insert + rollback             : {_summary(rollbacks)}")
    print(f"ratio of medians                      : {statistics.median(clones) / statistics.median(rollbacks):.0f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
