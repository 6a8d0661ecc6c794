"""The `autodoctor` CLI in-process, the embedded PostgreSQL, and the local dev server."""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import jwt
import psycopg
import pytest
from psycopg import sql
from werkzeug.test import Client

import functions.health
from shared import db as shared_db
from shared.config import DEV_JWT_SECRET, get_settings
from shared.dev.cli import main
from shared.dev.embedded import EmbeddedPostgres
from shared.dev.migrate import connect, discover_migrations, recreate_database
from shared.dev.server import build_app
from tests.support.harness import Db


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """A clean environment for shared.config.get_settings(), restored afterwards."""
    for var in ("DATABASE_URL", "SUPABASE_JWT_SECRET", "SUPABASE_JWT_ISSUER", "AUTODOCTOR_HOME",
                "AUTODOCTOR_PG_PORT", "AUTODOCTOR_DB_NAME"):
        monkeypatch.delenv(var, raising=False)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


@pytest.fixture
def named_db(server_url: str) -> Iterator[str]:
    """URL of a database that does not exist yet (the CLI creates it); dropped afterwards."""
    name = f"adcli_{uuid.uuid4().hex[:12]}"
    yield urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
    with connect(server_url) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


# ---------------------------------------------------------------------------------------------
# autodoctor db migrate | status | reset
# ---------------------------------------------------------------------------------------------
def _create(url: str) -> None:
    parts = urlsplit(url)
    recreate_database(urlunsplit(parts._replace(path="/postgres")), parts.path.lstrip("/"))


def _exists(url: str) -> bool:
    parts = urlsplit(url)
    with connect(urlunsplit(parts._replace(path="/postgres"))) as conn:
        return conn.execute("select 1 from pg_database where datname = %s", (parts.path.lstrip("/"),)).fetchone() \
            is not None


def test_db_migrate_twice(named_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    migrations = discover_migrations()
    assert main(["db", "migrate", "--database-url", named_db]) == 0
    out = capsys.readouterr().out
    for f in migrations:
        assert f"applied migration {f.path.name}" in out
    assert "nothing to do" not in out

    assert main(["db", "migrate", "--database-url", named_db]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"nothing to do: {len(migrations)} migration(s) applied")


def test_db_migrate_reports_errors(named_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "supabase" / "migrations").mkdir(parents=True)
    (tmp_path / "supabase" / "migrations" / "20260101000000_bad.sql").write_text("select nope;")
    monkeypatch.setenv("AUTODOCTOR_PROJECT_DIR", str(tmp_path))
    assert main(["db", "migrate", "--database-url", named_db]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: migration 20260101000000_bad.sql, line 1:")


def test_serve_stops_on_a_migration_error(named_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "supabase" / "migrations").mkdir(parents=True)
    (tmp_path / "supabase" / "migrations" / "20260101000000_bad.sql").write_text("select nope;")
    monkeypatch.setenv("AUTODOCTOR_PROJECT_DIR", str(tmp_path))
    _create(named_db)
    assert main(["serve", "--database-url", named_db, "--port", str(_free_port())]) == 1
    assert capsys.readouterr().err.startswith("error: migration 20260101000000_bad.sql")


def test_serve_runs_the_schedules_unless_told_not_to(named_db: str, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import shared.dev.server

    served: list[str | None] = []
    monkeypatch.setattr(shared.dev.server, "serve",
                        lambda host, port, schedules_url=None: served.append(schedules_url))
    for var in ("DATABASE_URL", "AUTODOCTOR_LOCAL", "AUTODOCTOR_SCHEDULES"):
        monkeypatch.setenv(var, "")
        monkeypatch.delenv(var)
    monkeypatch.setenv("CRON_SECRET", "x" * 16)
    monkeypatch.delenv("CRON_SECRET")  # restored (absent) afterwards: serve makes one up
    port = str(_free_port())
    _create(named_db)
    try:
        assert main(["serve", "--database-url", named_db, "--port", port]) == 0
        assert served == [named_db] and len(os.environ["CRON_SECRET"]) >= 16
        assert main(["serve", "--database-url", named_db, "--port", port, "--no-schedules"]) == 0
        monkeypatch.setenv("AUTODOCTOR_SCHEDULES", "0")
        assert main(["serve", "--database-url", named_db, "--port", port]) == 0
        assert served == [named_db, None, None]
        assert "schedules: off" in capsys.readouterr().out
    finally:
        get_settings.cache_clear()


def test_db_status(named_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    migrations = discover_migrations()
    _create(named_db)
    assert main(["db", "status", "--database-url", named_db]) == 0
    out = capsys.readouterr().out.splitlines()
    assert f"pending  migration     {migrations[0].path.name}" in out
    assert out[-1].startswith("0 applied, ")

    main(["db", "migrate", "--database-url", named_db])
    capsys.readouterr()
    assert main(["db", "status", "--database-url", named_db]) == 0
    out = capsys.readouterr().out.splitlines()
    assert f"applied  migration     {migrations[0].path.name}" in out
    assert out[-1].endswith(" applied, 0 not applied")
    assert not any(line.startswith(("pending", "changed", "missing")) for line in out)


def test_db_status_never_creates_the_database(named_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A mistyped DATABASE_URL is an error naming the URL, not a new empty database."""
    assert main(["db", "status", "--database-url", named_db]) == 2
    out, err = capsys.readouterr()
    name = urlsplit(named_db).path.lstrip("/")
    assert out == ""
    assert err == f'error: cannot connect to {named_db}: database "{name}" does not exist ' \
                  "(`autodoctor db migrate` creates it)\n"
    assert not _exists(named_db)
    assert main(["db", "lint", "--database-url", named_db]) == 2
    assert not _exists(named_db)


def test_db_reset_refuses_the_maintenance_database(server_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "reset", "--no-seed", "--yes", "--database-url", server_url]) == 2
    assert "refusing to drop the maintenance database 'postgres'" in capsys.readouterr().err
    with psycopg.connect(server_url) as conn:  # still there
        assert conn.execute("select 1").fetchone() == (1,)


def test_db_reset_recreates_a_named_database(named_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "migrate", "--database-url", named_db]) == 0
    with psycopg.connect(named_db, autocommit=True) as conn:
        conn.execute("create table public.scratch (id int primary key)")
    capsys.readouterr()

    assert main(["db", "reset", "--no-seed", "--yes", "--database-url", named_db]) == 0
    out = capsys.readouterr().out
    name = urlsplit(named_db).path.lstrip("/")
    assert f"recreated database {name}" in out
    assert "applied migration" in out
    with psycopg.connect(named_db) as conn:
        assert conn.execute("select to_regclass('public.scratch')").fetchone() == (None,)
        recorded = conn.execute("select count(*) from autodoctor_meta.schema_migrations").fetchone()[0]
    assert recorded == len(discover_migrations())


class _Terminal:
    """A stdin that is a terminal (its answers come from the patched `input`)."""

    def isatty(self) -> bool:
        return True


def test_db_reset_asks_on_a_terminal(named_db: str, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    _create(named_db)
    with psycopg.connect(named_db, autocommit=True) as conn:
        conn.execute("create table public.keep (id int)")
    prompts: list[str] = []
    monkeypatch.setattr("sys.stdin", _Terminal())
    monkeypatch.setattr("builtins.input", lambda prompt: prompts.append(prompt) or "n")
    assert main(["db", "reset", "--no-seed", "--database-url", named_db]) == 2
    name = urlsplit(named_db).path.lstrip("/")
    assert prompts == [f"drop database {name} at {named_db} and recreate it? [y/N] "]
    assert capsys.readouterr().err == "error: db reset: not confirmed, nothing dropped\n"
    with psycopg.connect(named_db) as conn:
        assert conn.execute("select to_regclass('public.keep') is not null").fetchone() == (True,)

    monkeypatch.setattr("builtins.input", lambda prompt: "y")
    assert main(["db", "reset", "--no-seed", "--database-url", named_db]) == 0
    with psycopg.connect(named_db) as conn:
        assert conn.execute("select to_regclass('public.keep') is null").fetchone() == (True,)


def test_db_reset_without_a_terminal_needs_yes(named_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    _create(named_db)
    assert main(["db", "reset", "--no-seed", "--database-url", named_db]) == 2  # pytest's stdin: no terminal
    name = urlsplit(named_db).path.lstrip("/")
    assert capsys.readouterr().err == (f"error: db reset drops database {name} at {named_db}: confirm with --yes "
                                       "(stdin is not a terminal)\n")
    with psycopg.connect(named_db) as conn:
        assert conn.execute("select to_regclass('autodoctor_meta.schema_migrations')").fetchone() == (None,)


def test_db_reset_refuses_another_machine_unless_forced(capsys: pytest.CaptureFixture[str]) -> None:
    url = "postgresql://admin:hunter2@db.example.invalid:5432/app"
    assert main(["db", "reset", "--yes", "--database-url", url]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: refusing to drop database app on another machine "
                          "(postgresql://admin:***@db.example.invalid:5432/app): pass --force")
    assert "hunter2" not in err
    assert main(["db", "reset", "--yes", "--force", "--database-url", url]) == 2  # past the refusal: no server
    err = capsys.readouterr().err
    assert err.startswith("error: cannot connect to postgresql://admin:***@db.example.invalid:5432/postgres: ")
    assert len(err.splitlines()) == 1 and "hunter2" not in err


@pytest.mark.parametrize("command", [["db", "status"], ["db", "migrate"], ["db", "lint"], ["db", "reset", "--yes"],
                                     ["gen", "--check"], ["serve", "--no-schedules"]])
def test_an_unreachable_server_is_one_line(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    port = _free_port()
    url = f"postgresql://postgres:hunter2@127.0.0.1:{port}/app"
    assert main([*command, "--database-url", url]) == 2
    out, err = capsys.readouterr()
    assert "hunter2" not in out + err
    assert len(err.splitlines()) == 1
    assert err.startswith(f"error: cannot connect to postgresql://postgres:***@127.0.0.1:{port}/")
    assert err.endswith(": connection refused (is the server running?)\n")


@pytest.mark.parametrize("url", ["not a url", "mysql://localhost/app", "postgresql://postgres@127.0.0.1:99999/app"])
def test_a_bad_url_is_one_line(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    for command in (["db", "status"], ["db", "migrate"], ["gen", "--check"]):
        assert main([*command, "--database-url", url]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: cannot connect to ") and len(err.splitlines()) == 1


def test_cli_errors_have_no_traceback_as_a_process(tmp_path: Path) -> None:
    import subprocess
    import sys

    url = f"postgresql://postgres:hunter2@127.0.0.1:{_free_port()}/app"
    env = {**os.environ, "DATABASE_URL": url, "AUTODOCTOR_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "shared.dev.cli", "db", "status"], capture_output=True, text=True,
                          env=env, timeout=60, check=False)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == (f"error: cannot connect to {url.replace('hunter2', '***')}: "
                           "connection refused (is the server running?)\n")


def test_db_start_with_a_database_url_starts_nothing(named_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "start", "--database-url", named_db]) == 0
    assert "nothing to start" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# autodoctor token
# ---------------------------------------------------------------------------------------------
def _token(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["token", *args]) == 0
    return capsys.readouterr().out.strip()


def test_token_for_a_user(settings_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    user = uuid.uuid4()
    extra = {"email": "u@example.test", "app_metadata": {"role": "mechanic"}, "user_metadata": {"name": "U"},
             "custom": 7}
    token = _token(capsys, "--user", str(user), "--claims", json.dumps(extra))
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = jwt.decode(token, DEV_JWT_SECRET, algorithms=["HS256"], audience="authenticated")
    assert claims["sub"] == str(user)
    assert (claims["role"], claims["aud"]) == ("authenticated", "authenticated")
    assert claims["email"] == "u@example.test"
    assert claims["app_metadata"] == {"role": "mechanic"}
    assert claims["user_metadata"] == {"name": "U"}
    assert claims["custom"] == 7
    assert claims["exp"] - claims["iat"] == 3600
    assert abs(claims["iat"] - time.time()) < 60
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, "x" * 40, algorithms=["HS256"], audience="authenticated")


def test_token_default_app_metadata(settings_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    claims = jwt.decode(_token(capsys, "--user", str(uuid.uuid4())), DEV_JWT_SECRET, algorithms=["HS256"],
                        audience="authenticated")
    assert claims["app_metadata"] == {"provider": "email", "providers": ["email"]}
    assert (claims["email"], claims["user_metadata"]) == ("", {})


def test_token_claims_work_in_the_database(
    settings_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], db: Db
) -> None:
    user = db.make_user("jwt@example.test")
    token = _token(capsys, "--user", str(user), "--claims", '{"email": "jwt@example.test"}')
    claims = jwt.decode(token, DEV_JWT_SECRET, algorithms=["HS256"], audience="authenticated")
    with db.as_role(claims["role"], claims):
        assert db.one("select auth.uid() as uid, auth.email() as email, auth.role() as role") == {
            "uid": user, "email": "jwt@example.test", "role": "authenticated",
        }


def test_token_for_anon_needs_no_user(settings_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    token = _token(capsys, "--role", "anon")
    claims = jwt.decode(token, DEV_JWT_SECRET, algorithms=["HS256"])
    assert claims["role"] == "anon"
    assert "sub" not in claims


def test_token_ttl(settings_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    claims = jwt.decode(_token(capsys, "--role", "service_role", "--ttl", "90"), DEV_JWT_SECRET,
                        algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == 90
    assert claims["role"] == "service_role" and "sub" not in claims


def test_token_uses_the_configured_secret(
    settings_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "another-secret-that-is-at-least-32-characters"
    settings_env.setenv("SUPABASE_JWT_SECRET", secret)
    get_settings.cache_clear()
    token = _token(capsys, "--role", "anon")
    assert jwt.decode(token, secret, algorithms=["HS256"])["role"] == "anon"
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, DEV_JWT_SECRET, algorithms=["HS256"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--role", "authenticated"], "needs a user id"),
        ([], "needs a user id"),
        (["--user", "not-a-uuid"], "badly formed"),
        (["--user", str(uuid.UUID(int=1)), "--claims", "{not json"], "error: "),
        (["--user", str(uuid.UUID(int=1)), "--claims", "[1, 2]"], "must be a JSON object"),
        (["--role", "anon", "--ttl", "0"], "ttl must be between"),
        (["--role", "anon", "--ttl", str(8 * 24 * 3600)], "ttl must be between"),
    ],
)
def test_token_refuses_bad_input(
    settings_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["token", *args]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("error: ") and message in err


def test_token_refuses_an_unknown_role(settings_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["token", "--role", "postgres"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# The embedded PostgreSQL
# ---------------------------------------------------------------------------------------------
def test_embedded_start_is_idempotent_and_stops(tmp_path: Path) -> None:
    pg = EmbeddedPostgres(home=tmp_path / "pg", port=_free_port(), fast=True)
    assert not pg.is_running()
    assert pg.stop() is False
    try:
        url = pg.start()
        assert url == f"postgresql://postgres@127.0.0.1:{pg.port}/postgres"
        assert pg.is_running()
        with psycopg.connect(url) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
            assert conn.execute("show timezone").fetchone() == ("UTC",)
            pid = conn.execute("select pg_postmaster_start_time()").fetchone()[0]
        assert pg.start() == url  # already running: same server, not a restart
        with psycopg.connect(url) as conn:
            assert conn.execute("select pg_postmaster_start_time()").fetchone()[0] == pid
    finally:
        stopped = pg.stop()
    assert stopped is True
    assert not pg.is_running()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)
    # the data directory survives a stop: starting again keeps what was there
    try:
        pg.start()
        assert pg.is_running()
    finally:
        pg.stop()


def test_cli_start_and_stop_the_embedded_database(
    settings_env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = _free_port()
    settings_env.setenv("AUTODOCTOR_HOME", str(tmp_path / "home"))
    settings_env.setenv("AUTODOCTOR_PG_PORT", str(port))
    settings_env.setenv("AUTODOCTOR_DB_NAME", "cli_test")
    get_settings.cache_clear()
    try:
        assert main(["db", "start"]) == 0
        url = capsys.readouterr().out.strip()
        assert url == f"postgresql://postgres@127.0.0.1:{port}/cli_test"
        with psycopg.connect(url) as conn:  # the named database was created
            assert conn.execute("select current_database()").fetchone() == ("cli_test",)
        assert main(["db", "status"]) == 0
    finally:
        assert main(["db", "stop"]) == 0
    assert capsys.readouterr().out.strip().endswith("stopped")
    # a stopped server stays stopped: status says so, starts nothing
    assert main(["db", "status"]) == 2
    assert capsys.readouterr().err == (f"error: cannot connect to {url}: the embedded PostgreSQL is not running "
                                       "(`autodoctor db start`)\n")
    assert not EmbeddedPostgres(home=tmp_path / "home", port=port).is_running()
    assert main(["db", "stop"]) == 0
    assert capsys.readouterr().out.strip() == "not running"


# ---------------------------------------------------------------------------------------------
# The dev server (every function target under /<target>)
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def client_for(settings_env: pytest.MonkeyPatch) -> Iterator[object]:
    """Build a test client whose functions use the database at `url`."""

    def make(url: str) -> Client:
        shared_db.close_pool()
        settings_env.setenv("DATABASE_URL", url)
        get_settings.cache_clear()
        return Client(build_app())

    yield make
    shared_db.close_pool()


def test_health_ok(client_for, fresh_url: str) -> None:
    response = client_for(fresh_url).get("/health")
    assert response.status_code == 200
    assert response.content_type == "application/json"
    assert response.get_json() == {"status": "ok", "database": True, "migrations": len(discover_migrations())}


def test_health_wrong_method(client_for, fresh_url: str) -> None:
    response = client_for(fresh_url).post("/health", json={})
    assert response.status_code == 405
    assert response.get_json()["error"] == "method_not_allowed"


def test_unknown_function_is_a_json_404(client_for, fresh_url: str) -> None:
    response = client_for(fresh_url).get("/nope")
    assert response.status_code == 404
    assert response.content_type == "application/json"
    assert response.get_json() == {"code": "AD004", "error": "not_found", "message": "no such function"}


def test_health_without_a_database(client_for, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(functions.health, "TIMEOUT", 0.5)
    unreachable = f"postgresql://postgres@127.0.0.1:{_free_port()}/postgres?connect_timeout=1"
    started = time.monotonic()
    response = client_for(unreachable).get("/health")
    assert response.status_code == 503
    payload = response.get_json()
    assert (payload["status"], payload["database"], payload["error"]) == ("unavailable", False, "database_unavailable")
    assert time.monotonic() - started < 10


def test_health_without_migrations(client_for, named_db: str, server_url: str) -> None:
    """A database the runner never touched is not healthy: the schema is missing."""
    recreate_database(server_url, urlsplit(named_db).path.lstrip("/"))
    response = client_for(named_db).get("/health")
    assert response.status_code == 503
