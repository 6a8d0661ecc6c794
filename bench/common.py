"""Shared bench setup: a throwaway migrated database (embedded cluster, or DATABASE_URL's server)."""

from __future__ import annotations

import datetime as dt
import os
import platform
import shutil
import socket
import statistics
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

from shared.dev.embedded import EmbeddedPostgres
from shared.dev.migrate import migrate, recreate_database


def accept_waivers(conn: psycopg.Connection[Any], users: list[uuid.UUID]) -> None:
    """The bench's customers accept the current terms, as the app makes them before a first request
    or booking (waiver_required otherwise)."""
    conn.execute("""
        insert into public.waiver_acceptances (user_id, waiver_version, adult_confirmed, user_agent)
        select id, private.setting_text('waiver.current_version'), true, 'bench'
        from unnest(%s::uuid[]) as x(id)""", (users,))


@contextmanager
def bench_database() -> Iterator[str]:
    url = os.environ.get("DATABASE_URL")
    home = None
    embedded = None
    if url:
        admin = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    else:
        home = Path(tempfile.mkdtemp(prefix="autodoctor-bench-"))
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        embedded = EmbeddedPostgres(home=home, port=port, fast=False)
        admin = embedded.start()
    name = f"adbench_{uuid.uuid4().hex[:8]}"
    recreate_database(admin, name)
    target = urlunsplit(urlsplit(admin)._replace(path=f"/{name}"))
    migrate(target, log=lambda _m: None)
    try:
        yield target
    finally:
        recreate_database(admin, name)  # drop contents quickly
        import psycopg

        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')
        if embedded is not None:
            embedded.stop()
            shutil.rmtree(home, ignore_errors=True)


def server_version(url: str) -> str:
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute("show server_version").fetchone()[0]


def _git(*args: str) -> str:
    try:
        # fixed arguments, git from PATH: the developer's own tool on the developer's checkout
        return subprocess.run(["git", *args], cwd=Path(__file__).resolve().parent.parent,  # noqa: S603, S607
                              capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def stamp(url: str) -> str:
    """Where a figure comes from: date (UTC), commit (`-dirty` when the tree has uncommitted
    changes), machine (CPU model and count, architecture) and PostgreSQL server version."""
    commit = _git("rev-parse", "--short", "HEAD") or "unknown"
    if _git("status", "--porcelain", "--untracked-files=no"):
        commit += "-dirty"
    return (f"measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, commit {commit}, "
            f"{os.cpu_count()}-core {platform.machine()} ({_cpu_model()}), PostgreSQL {server_version(url)}")


def print_stamp(url: str) -> None:
    """Printed first by every benchmark, so each figure carries its date, commit and machine."""
    print(stamp(url), flush=True)


def ms(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, int(len(values) * 0.95))]
    return f"median {statistics.median(values) * 1000:.2f} ms, p95 {p95 * 1000:.2f} ms"
