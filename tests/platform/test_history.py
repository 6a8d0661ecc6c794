"""One history: `autodoctor db commit` turns functions_sql changes into migrations, the runner keeps the
Supabase CLI's history table too, and landed migrations never change."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pytest

from shared.config import project_dir
from shared.dev.history import CommitError, commit, committed, uncommitted
from shared.dev.migrate import connect, discover_migrations, migrate, status
from tests.platform import test_migrate
from tests.platform.test_migrate import Project

# the throwaway project directory and empty databases of the runner's tests
project, new_db, target = test_migrate.project, test_migrate.new_db, test_migrate.target

T0 = dt.datetime(2026, 2, 1, 12, 0, 0)


def _commit(server_url: str | None, name: str = "functions_sql", at: dt.datetime = T0) -> Path | None:
    return commit(server_url, name, log=lambda _m: None, now=at)


def _rows(url: str, query: str) -> list[tuple[object, ...]]:
    with connect(url) as conn:
        return [tuple(r) for r in conn.execute(query).fetchall()]


def _functions(url: str) -> set[str]:
    return {r[0] for r in _rows(url, "select p.oid::regprocedure::text from pg_proc p "
                                     "where p.pronamespace = 'public'::regnamespace")}


# ---------------------------------------------------------------------------------------------
# db commit
# ---------------------------------------------------------------------------------------------
def test_the_first_commit_carries_every_file_in_path_order(project: Project) -> None:
    project.function("b/g.sql", "create or replace function public.g() returns int language sql as 'select 2';\n")
    project.function("a/f.sql", "create or replace function public.f() returns int language sql as 'select 1';\n")
    assert [(u.path, u.state) for u in uncommitted()] == [("a/f.sql", "new"), ("b/g.sql", "new")]
    path = _commit(None, "functions_sql_baseline")
    assert path is not None and path.name == "20260201120000_functions_sql_baseline.sql"
    text = path.read_text()
    assert text.index("set check_function_bodies = off;") < text.index("a/f.sql") < text.index("b/g.sql")
    assert "drop " not in text
    assert uncommitted() == []
    assert committed().migration == path.name
    assert _commit(None) is None  # nothing changed: no migration


def test_a_commit_never_goes_back_in_time(project: Project) -> None:
    project.migration("20260301000000_later.sql", "select 1;")
    project.function("a/f.sql", "select 1;\n")
    path = _commit(None, at=T0)
    assert path is not None and path.name == "20260301000001_functions_sql.sql"


def test_bad_names_are_refused(project: Project) -> None:
    project.function("a/f.sql", "select 1;\n")
    with pytest.raises(CommitError, match="must match"):
        _commit(None, "Bad-Name")


def test_a_later_commit_carries_the_changed_files_and_drops_what_vanished(
    project: Project, server_url: str, target: str
) -> None:
    project.migration("20260101000000_t.sql", "create table public.t (id int);\n")
    project.function("a/f.sql", """
create or replace function public.f(a int, b text default 'x') returns int language sql as 'select a';
create or replace function public.gone(a int) returns int language sql as 'select a';
create or replace function public.trg() returns trigger language plpgsql as $$ begin return new; end $$;
drop trigger if exists t_gone on public.t;
create trigger t_gone before insert on public.t for each row execute function public.trg();
create or replace view public.v_gone as select public.gone(1) as x;
""")
    project.function("b/g.sql", "create or replace function public.g() returns int language sql as 'select 2';\n")
    project.function("c/h.sql", "create or replace function public.h() returns int language sql as 'select 3';\n")
    first = _commit(None)
    assert first is not None
    migrate(target, log=lambda _m: None)
    assert {"f(integer,text)", "gone(integer)", "g()", "h()"} <= _functions(target)

    project.function("a/f.sql", "create or replace function public.f(a int, b text default 'x') returns int "
                                "language sql as 'select a + 1';\n")
    (project.functions / "c" / "h.sql").unlink()
    assert [(u.path, u.state) for u in uncommitted()] == [("a/f.sql", "changed"), ("c/h.sql", "deleted")]
    second = _commit(server_url, at=T0 + dt.timedelta(minutes=1))
    assert second is not None
    text = second.read_text()
    assert "-- >>> functions_sql a/f.sql" in text and "b/g.sql sha256" not in text.split("manifest:")[0]
    drops = [line for line in text.splitlines() if line.startswith("drop ")]
    assert drops == [
        "drop trigger if exists t_gone on public.t;",
        "drop view if exists public.v_gone;",
        "drop function if exists public.gone(integer);",
        "drop function if exists public.h();",
        "drop function if exists public.trg();",
    ]
    assert uncommitted() == []
    result = migrate(target, log=lambda _m: None)
    assert result.applied == [second.name] and result.functions_applied == []
    assert "gone(integer)" not in _functions(target) and "h()" not in _functions(target)
    assert _rows(target, "select count(*) from pg_trigger where tgname = 't_gone'") == [(0,)]
    assert _rows(target, "select public.f(1)") == [(2,)]


def test_the_runner_records_the_files_a_migration_carries(project: Project, target: str) -> None:
    project.function("a/f.sql", "create or replace function public.f() returns int language sql as 'select 1';\n")
    path = _commit(None)
    assert path is not None
    result = migrate(target, log=lambda _m: None)
    assert result.applied == [path.name] and result.functions_applied == []  # carried: not run again
    states = {(r.kind, r.file): r.state for r in status(target)}
    assert states[("functions_sql", "a/f.sql")] == "applied"
    # an edit not yet committed: applied by the next run (the fast loop), listed as uncommitted
    project.function("a/f.sql", "create or replace function public.f() returns int language sql as 'select 5';\n")
    assert migrate(target, log=lambda _m: None).functions_applied == ["a/f.sql"]
    assert _rows(target, "select public.f()") == [(5,)]
    assert {(r.kind, r.file): r.state for r in status(target)}[("functions_sql", "a/f.sql")] == "uncommitted"
    (project.functions / "a" / "f.sql").unlink()
    assert ("functions_sql", "a/f.sql (deleted)", "uncommitted") in {
        (r.kind, r.file, r.state) for r in status(target)}


# ---------------------------------------------------------------------------------------------
# The Supabase CLI's history table
# ---------------------------------------------------------------------------------------------
V1, V2 = "20260101000000", "20260102000000"


def test_the_runner_keeps_the_cli_history(project: Project, target: str) -> None:
    project.migration(f"{V1}_a.sql", "create table public.a (id int primary key);\n")
    migrate(target, log=lambda _m: None)
    rows = _rows(target, "select version, name, statements from supabase_migrations.schema_migrations")
    assert rows == [(V1, "a", ["create table public.a (id int primary key);\n"])]
    columns = _rows(target, "select column_name, data_type, is_nullable from information_schema.columns "
                            "where table_schema = 'supabase_migrations' and table_name = 'schema_migrations' "
                            "order by ordinal_position")
    assert columns == [("version", "text", "NO"), ("statements", "ARRAY", "YES"), ("name", "text", "YES")]


def test_a_version_the_cli_applied_is_adopted_not_run(project: Project, target: str) -> None:
    project.migration(f"{V1}_a.sql", "create table public.a (id int primary key);\n")
    project.migration(f"{V2}_b.sql", "create table public.b (id int primary key);\n")
    with connect(target) as conn:  # as `supabase db push` leaves it: V1 applied and in its history
        conn.execute("create table public.a (id int primary key)")
        conn.execute("create schema supabase_migrations")
        conn.execute("create table supabase_migrations.schema_migrations "
                     "(version text not null primary key, statements text[], name text)")
        conn.execute("insert into supabase_migrations.schema_migrations values (%s, '{}', 'a')", (V1,))
    result = migrate(target, log=lambda _m: None)
    assert result.adopted == [f"{V1}_a.sql"] and result.applied == [f"{V2}_b.sql"]
    assert _rows(target, "select version from autodoctor_meta.schema_migrations order by 1") == [(V1,), (V2,)]
    assert _rows(target, "select version from supabase_migrations.schema_migrations order by 1") == [(V1,), (V2,)]
    assert not migrate(target, log=lambda _m: None).changed


def test_a_database_migrated_before_gets_the_cli_history_filled(project: Project, target: str) -> None:
    project.migration(f"{V1}_a.sql", "select 1;\n")
    migrate(target, log=lambda _m: None)
    with connect(target) as conn:
        conn.execute("drop schema supabase_migrations cascade")
    assert not migrate(target, log=lambda _m: None).changed
    assert _rows(target, "select version, name from supabase_migrations.schema_migrations") == [(V1, "a")]


# ---------------------------------------------------------------------------------------------
# The real project
# ---------------------------------------------------------------------------------------------
def test_every_functions_sql_file_is_in_a_migration() -> None:
    assert uncommitted() == [], "run `autodoctor db commit`"


# Edited after they had landed, before landed migrations were checked against git history.
LANDED_EXCEPTIONS = frozenset({
    "20261121000100_core_marketplace.sql",
    "20261121000200_matching.sql",
    "20261121000600_micro_shifts.sql",
})


def _git(*args: str) -> bytes:
    return subprocess.run(  # noqa: S603 - git with fixed arguments
        ["git", *args], cwd=project_dir(), check=True, capture_output=True,  # noqa: S607 - git from PATH
    ).stdout


def test_landed_migrations_never_change() -> None:
    root = project_dir()
    try:
        inside = _git("rev-parse", "--is-inside-work-tree").strip() == b"true"
    except (OSError, subprocess.CalledProcessError):
        inside = False
    assert inside, f"{root} is not a git checkout: landed migrations cannot be checked against git history"
    assert _git("rev-parse", "--is-shallow-repository").strip() == b"false", (
        "a shallow clone: landed migrations need the full git history (git fetch --unshallow)")
    changed = []
    for f in discover_migrations():
        rel = f.path.relative_to(root).as_posix()
        added = _git("log", "--diff-filter=A", "--format=%H", "--", rel).split()
        if not added:
            continue  # not landed yet
        first = _git("show", f"{added[-1].decode()}:{rel}")
        if first != f.path.read_bytes() and f.path.name not in LANDED_EXCEPTIONS:
            changed.append(f"{rel} differs from the version that landed in {added[-1].decode()[:10]}")
    assert not changed, "landed migrations never change; add a new migration instead:\n" + "\n".join(changed)


def test_the_exceptions_are_still_needed() -> None:
    for name in LANDED_EXCEPTIONS:
        assert (project_dir() / "supabase" / "migrations" / name).exists(), f"{name} is gone: drop the exception"
