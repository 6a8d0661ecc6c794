"""One PostgreSQL per run (embedded by default, DATABASE_URL's server otherwise); the schema is
built once into a template database; each test runs in a rolled-back transaction (`db`) or, when
it needs commits and several connections, in its own clone of the template (`fresh_url`)."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from shared.dev.embedded import EmbeddedPostgres
from shared.dev.migrate import migrate, recreate_database
from tests.support.harness import Db

# Shared fixtures beyond these live in tests/support/ and are registered here once.
pytest_plugins = ["tests.support.payments"]

RUN_ID = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"


def _with_db(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def _drop(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            psycopg.sql.SQL("drop database if exists {} with (force)").format(psycopg.sql.Identifier(name))
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """URL of the maintenance database of the server the tests use.

    Without DATABASE_URL each run starts its own throwaway embedded cluster (fsync off) on a free
    port, so concurrent runs never share or stop each other's server.
    """
    url = os.environ.get("DATABASE_URL")
    if url:
        yield _with_db(url, "postgres")
        return
    home = Path(tempfile.mkdtemp(prefix="autodoctor-test-"))
    embedded = EmbeddedPostgres(home=home, port=_free_port(), fast=True)
    embedded.start()
    try:
        yield embedded.url()
    finally:
        embedded.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def template_name(server_url: str) -> Iterator[str]:
    name = f"adtest_tpl_{RUN_ID}"
    recreate_database(server_url, name)
    migrate(_with_db(server_url, name), log=lambda _m: None)
    yield name
    _drop(server_url, name)


@pytest.fixture(scope="session")
def template_url(server_url: str, template_name: str) -> str:
    return _with_db(server_url, template_name)


@pytest.fixture(scope="session")
def session_url(server_url: str, template_name: str) -> Iterator[str]:
    name = f"adtest_{RUN_ID}"
    recreate_database(server_url, name, template=template_name)
    yield _with_db(server_url, name)
    _drop(server_url, name)


@pytest.fixture(scope="session")
def _session_conn(session_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(session_url, prepare_threshold=None) as conn:
        yield conn


@pytest.fixture
def db(_session_conn: psycopg.Connection) -> Iterator[Db]:
    """A transaction on the shared test database, rolled back after the test."""
    conn = _session_conn
    conn.rollback()
    # Open the test's transaction now: psycopg's `conn.transaction()` (used by every Db statement)
    # is a savepoint only inside an open transaction; on an idle connection it would BEGIN and COMMIT.
    conn.execute("select 1")
    helper = Db(conn)
    try:
        yield helper
    finally:
        conn.rollback()


@pytest.fixture
def fresh_url(server_url: str, template_name: str) -> Iterator[str]:
    """A database of its own, cloned from the migrated template: commits and many connections allowed."""
    name = f"adtest_{RUN_ID}_{uuid.uuid4().hex[:8]}"
    recreate_database(server_url, name, template=template_name)
    yield _with_db(server_url, name)
    _drop(server_url, name)
