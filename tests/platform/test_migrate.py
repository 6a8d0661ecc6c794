"""The migration runner, on a throwaway project directory and databases of its own."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from shared.dev.migrate import (
    MigrateResult,
    MigrationError,
    connect,
    discover_functions,
    discover_migrations,
    migrate,
    recreate_database,
    status,
)

V1, V2, V3 = "20260101000000", "20260102000000", "20260103000000"


class Project:
    def __init__(self, root: Path):
        self.root = root
        self.migrations = root / "supabase" / "migrations"
        self.functions = root / "supabase" / "functions_sql"
        self.migrations.mkdir(parents=True)
        self.functions.mkdir()

    def migration(self, name: str, text: str) -> Path:
        path = self.migrations / name
        path.write_text(text, encoding="utf-8")
        return path

    def function(self, name: str, text: str) -> Path:
        path = self.functions / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    monkeypatch.setenv("AUTODOCTOR_PROJECT_DIR", str(tmp_path))
    return Project(tmp_path)


def _drop(server_url: str, name: str) -> None:
    with connect(server_url) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


@pytest.fixture
def new_db(server_url: str) -> Iterator[Callable[[], str]]:
    """Factory of empty databases (not migrated, not from the template), dropped afterwards."""
    names: list[str] = []

    def make() -> str:
        name = f"admig_{uuid.uuid4().hex[:12]}"
        names.append(name)
        recreate_database(server_url, name)
        return urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))

    yield make
    for name in names:
        _drop(server_url, name)


@pytest.fixture
def target(new_db: Callable[[], str]) -> str:
    return new_db()


def _run(url: str) -> tuple[MigrateResult, list[str]]:
    messages: list[str] = []
    return migrate(url, log=messages.append), messages


def _scalar(url: str, query: str, params: object = None) -> object:
    with connect(url) as conn:
        return conn.execute(query, params).fetchone()[0]


def _recorded(url: str) -> list[str]:
    with connect(url) as conn:
        return [v for (v,) in conn.execute("select version from autodoctor_meta.schema_migrations order by 1")]


def _exists(url: str, relation: str) -> bool:
    return bool(_scalar(url, "select to_regclass(%s) is not null", (relation,)))


# ---------------------------------------------------------------------------------------------
# The happy path
# ---------------------------------------------------------------------------------------------
def test_migrate_twice_applies_once(project: Project, target: str) -> None:
    project.migration(f"{V1}_first.sql", "create table public.first (id int primary key);")
    project.migration(f"{V2}_second.sql", "create table public.second (id int primary key);")
    project.function("core/fns.sql", "create or replace function public.f() returns int language sql as 'select 1';")

    result, messages = _run(target)
    assert "schema auth" in result.shim_created  # a plain database gets the platform shim first
    assert result.applied == [f"{V1}_first.sql", f"{V2}_second.sql"]
    assert result.functions_applied == ["core/fns.sql"]
    assert f"applied migration {V1}_first.sql" in messages
    assert _exists(target, "public.second")
    assert _recorded(target) == [V1, V2]

    again, messages = _run(target)
    assert not again.changed
    assert (again.shim_created, again.applied, again.functions_applied) == ([], [], [])
    assert len(messages) == 1 and messages[0].startswith("nothing to do: 2 migration(s) applied")


def test_checksums_and_names_are_recorded(project: Project, target: str) -> None:
    path = project.migration(f"{V1}_named_thing.sql", "select 1;")
    _run(target)
    with connect(target) as conn:
        row = conn.execute("select version, name, checksum from autodoctor_meta.schema_migrations").fetchone()
    assert row == (V1, "named_thing", discover_migrations()[0].checksum)
    assert len(row[2]) == 64 and discover_migrations()[0].path == path


def test_new_migrations_are_applied_in_version_order(project: Project, target: str) -> None:
    project.migration(f"{V1}_log.sql", "create table public.log (seq serial primary key, v text);")
    _run(target)
    # written out of order: the runner sorts by version, not by file creation
    project.migration(f"{V3}_c.sql", "insert into public.log (v) values ('c');")
    project.migration(f"{V2}_b.sql", "insert into public.log (v) values ('b');")
    result, _ = _run(target)
    assert result.applied == [f"{V2}_b.sql", f"{V3}_c.sql"]
    with connect(target) as conn:
        assert [v for (v,) in conn.execute("select v from public.log order by seq")] == ["b", "c"]


# ---------------------------------------------------------------------------------------------
# History is append-only
# ---------------------------------------------------------------------------------------------
def test_an_edited_applied_migration_stops_the_run(project: Project, target: str) -> None:
    first = project.migration(f"{V1}_first.sql", "create table public.first (id int primary key);")
    _run(target)
    first.write_text("create table public.first (id int primary key, extra text);", encoding="utf-8")
    project.migration(f"{V2}_pending.sql", "create table public.pending (id int primary key);")
    project.function("core/fns.sql", "create or replace function public.f() returns int language sql as 'select 1';")

    with pytest.raises(MigrationError) as info:
        _run(target)
    assert f"{V1}_first.sql" in str(info.value)
    assert "changed after it was applied" in str(info.value)
    # nothing else was applied, not even the new pending migration or the functions
    assert not _exists(target, "public.pending")
    assert _recorded(target) == [V1]
    assert _scalar(target, "select to_regprocedure('public.f()') is null") is True
    assert _scalar(target, "select count(*) from autodoctor_meta.functions_sql") == 0


def test_a_deleted_applied_migration_stops_the_run(project: Project, target: str) -> None:
    first = project.migration(f"{V1}_first.sql", "select 1;")
    _run(target)
    first.unlink()
    project.migration(f"{V2}_later.sql", "create table public.later (id int primary key);")
    with pytest.raises(MigrationError) as info:
        _run(target)
    assert f"{V1}_first.sql was applied but is missing" in str(info.value)
    assert not _exists(target, "public.later")


def test_a_failing_migration_rolls_back_and_is_not_recorded(project: Project, target: str) -> None:
    project.migration(f"{V1}_ok.sql", "create table public.ok (id int primary key);")
    bad = project.migration(
        f"{V2}_bad.sql",
        "create table public.half (id int primary key);\n\ninsert into public.no_such_table values (1);\n",
    )
    project.migration(f"{V3}_after.sql", "create table public.after (id int primary key);")
    with pytest.raises(MigrationError) as info:
        _run(target)
    message = str(info.value)
    assert f"{V2}_bad.sql" in message and "line 3" in message and "no_such_table" in message
    assert _exists(target, "public.ok")  # the earlier migration stays
    assert not _exists(target, "public.half")  # the failing file rolled back as a whole
    assert not _exists(target, "public.after")  # and the run stopped there
    assert _recorded(target) == [V1]

    # never recorded, so it may still be fixed in place
    bad.write_text("create table public.half (id int primary key);\n", encoding="utf-8")
    result, _ = _run(target)
    assert result.applied == [f"{V2}_bad.sql", f"{V3}_after.sql"]
    assert _recorded(target) == [V1, V2, V3]


# ---------------------------------------------------------------------------------------------
# functions_sql
# ---------------------------------------------------------------------------------------------
FN_A = """
insert into public.fn_log (file) values ('a/fn');
create or replace function public.fn_a() returns int language sql as 'select 1';
"""
FN_B = """
insert into public.fn_log (file) values ('b/fn');
create or replace function public.fn_b() returns int language sql as 'select public.fn_a() + 1';
"""


def _fn_log(url: str) -> list[str]:
    with connect(url) as conn:
        return [f for (f,) in conn.execute("select file from public.fn_log order by seq")]


def test_functions_sql_in_path_order_and_only_when_changed(project: Project, target: str) -> None:
    project.migration(f"{V1}_log.sql", "create table public.fn_log (seq serial primary key, file text);")
    project.function("b/fn.sql", FN_B)
    project.function("a/fn.sql", FN_A)

    result, _ = _run(target)
    assert result.functions_applied == ["a/fn.sql", "b/fn.sql"]
    assert _fn_log(target) == ["a/fn", "b/fn"]
    assert _scalar(target, "select public.fn_b()") == 2

    result, _ = _run(target)
    assert result.functions_applied == []
    assert _fn_log(target) == ["a/fn", "b/fn"]

    project.function("b/fn.sql", FN_B.replace("+ 1", "+ 41"))
    result, _ = _run(target)
    assert result.functions_applied == ["b/fn.sql"]
    assert _fn_log(target) == ["a/fn", "b/fn", "b/fn"]
    assert _scalar(target, "select public.fn_b()") == 42
    checksum = _scalar(target, "select checksum from autodoctor_meta.functions_sql where file = 'b/fn.sql'")
    assert checksum == next(f.checksum for f in discover_functions() if f.key == "b/fn.sql")


def test_functions_sql_run_after_every_migration(project: Project, target: str) -> None:
    project.migration(f"{V1}_log.sql", "create table public.fn_log (seq serial primary key, file text);")
    project.function("a/fn.sql", FN_A)
    _run(target)
    # a later migration and a changed function file in the same run: the migration goes first
    project.migration(f"{V2}_more.sql", "alter table public.fn_log add column note text default 'v2';")
    project.function("a/fn.sql", FN_A.replace("values ('a/fn')", "values ('a/fn again')"))
    result, _ = _run(target)
    assert result.applied == [f"{V2}_more.sql"] and result.functions_applied == ["a/fn.sql"]
    assert _scalar(target, "select note from public.fn_log where file = 'a/fn again'") == "v2"


def test_a_file_may_call_what_a_later_file_defines(project: Project, target: str) -> None:
    project.migration(f"{V1}_log.sql", "create table public.fn_log (seq serial primary key, file text);")
    project.function("a/fn.sql", FN_B.replace("'b/fn'", "'a/fn'"))  # fn_b calls fn_a, defined after it
    project.function("b/fn.sql", FN_A.replace("'a/fn'", "'b/fn'"))
    result, _ = _run(target)
    assert result.functions_applied == ["a/fn.sql", "b/fn.sql"]
    assert _scalar(target, "select public.fn_b()") == 2


def test_a_sql_body_naming_a_missing_object_stops_every_run(project: Project, target: str) -> None:
    project.migration(f"{V1}_log.sql", "create table public.fn_log (seq serial primary key, file text);")
    project.function("a/fn.sql", FN_B)  # fn_a is defined nowhere
    with pytest.raises(MigrationError, match=r"public\.fn_b\(\): function public\.fn_a\(\) does not exist"):
        _run(target)
    with pytest.raises(MigrationError, match=r"SQL function bodies that do not compile"):
        _run(target)  # applied, but still reported until it is fixed
    project.function("b/fn.sql", FN_A)
    result, _ = _run(target)
    assert result.functions_applied == ["b/fn.sql"]
    assert _scalar(target, "select public.fn_b()") == 2


def test_a_failing_functions_file_rolls_back_and_is_retried(project: Project, target: str) -> None:
    project.migration(f"{V1}_log.sql", "create table public.fn_log (seq serial primary key, file text);")
    project.function("a/fn.sql", FN_A)
    project.function("c/bad.sql", "insert into public.fn_log (file) values ('bad');\nselect 1/0;\n")
    with pytest.raises(MigrationError, match=r"functions_sql c/bad\.sql"):
        _run(target)
    assert _fn_log(target) == ["a/fn"]
    assert _scalar(target, "select count(*) from autodoctor_meta.functions_sql") == 1
    project.function("c/bad.sql", "insert into public.fn_log (file) values ('fixed');\n")
    result, _ = _run(target)
    assert result.functions_applied == ["c/bad.sql"]
    assert _fn_log(target) == ["a/fn", "fixed"]


# ---------------------------------------------------------------------------------------------
# File names
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("migration", "2026_short.sql"),
        ("migration", "20260101000000-dash.sql"),
        ("migration", "20260101000000_Upper.sql"),
        ("migration", "20260101000000_.sql"),
        ("migration", "create_tables.sql"),
        ("function", "001_core.sql"),
        ("function", "core/sub/deep.sql"),
        ("function", "core/dash-name.sql"),
        ("function", "core/Upper.sql"),
        ("function", "Core/upper.sql"),
    ],
)
def test_bad_file_names_are_refused(project: Project, target: str, kind: str, name: str) -> None:
    project.migration(f"{V1}_good.sql", "create table public.good (id int primary key);")
    (project.migration if kind == "migration" else project.function)(name, "select 1;")
    with pytest.raises(MigrationError, match=re.escape(f"file name '{name}' does not match")):
        _run(target)
    assert not _exists(target, "public.good")


def test_duplicate_versions_are_refused(project: Project, target: str) -> None:
    project.migration(f"{V1}_a.sql", "select 1;")
    project.migration(f"{V1}_b.sql", "select 1;")
    with pytest.raises(MigrationError, match=f"two migration files share the version {V1}"):
        _run(target)


def test_other_files_are_ignored(project: Project, target: str) -> None:
    project.migration("README.md", "not sql")
    project.function("notes.txt", "not sql")
    project.migration(f"{V1}_a.sql", "create table public.a (id int primary key);")
    result, _ = _run(target)
    assert result.applied == [f"{V1}_a.sql"]


# ---------------------------------------------------------------------------------------------
# Concurrency: the advisory lock
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("round_", range(3))
def test_concurrent_runs_apply_each_migration_once(
    project: Project, new_db: Callable[[], str], round_: int
) -> None:
    for i in range(4):  # each would fail if run twice: plain `create table`
        project.migration(f"2026010{i + 1}000000_m{i}.sql", f"create table public.m{i} (id int primary key);")
    project.function("core/fns.sql", "create table public.only_once (id int primary key);")
    url = new_db()
    barrier = threading.Barrier(2)
    results: list[MigrateResult] = []
    errors: list[BaseException] = []

    def worker() -> None:
        barrier.wait()
        try:
            results.append(migrate(url, log=lambda _m: None))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert len(results) == 2
    applied = sorted(name for r in results for name in r.applied)
    assert applied == sorted(p.name for p in project.migrations.iterdir())  # each exactly once
    assert sorted(len(r.applied) for r in results) == [0, 4]
    assert sum(len(r.functions_applied) for r in results) == 1
    assert sum(bool(r.shim_created) for r in results) == 1
    assert _scalar(url, "select count(*) from autodoctor_meta.schema_migrations") == 4
    assert _scalar(url, "select count(*) from autodoctor_meta.functions_sql") == 1


# ---------------------------------------------------------------------------------------------
# status()
# ---------------------------------------------------------------------------------------------
def _states(url: str) -> dict[tuple[str, str], str]:
    return {(r.kind, r.file): r.state for r in status(url)}


def test_status_before_any_run(project: Project, target: str) -> None:
    project.migration(f"{V1}_a.sql", "select 1;")
    project.function("a/f.sql", "select 1;")
    # no migration carries a/f.sql yet (`autodoctor db commit`): uncommitted, whatever the database has
    assert _states(target) == {("migration", f"{V1}_a.sql"): "pending", ("functions_sql", "a/f.sql"): "uncommitted"}


def test_status_reports_every_state(project: Project, target: str) -> None:
    gone = project.migration(f"{V1}_gone.sql", "select 1;")
    edited = project.migration(f"{V2}_edited.sql", "select 2;")
    project.migration(f"{V3}_kept.sql", "select 3;")
    fn = project.function("a/f.sql", "select 1;")
    project.function("b/g.sql", "select 1;")
    _run(target)
    gone.unlink()
    edited.write_text("select 22;", encoding="utf-8")
    project.migration("20260104000000_new.sql", "select 4;")
    fn.write_text("select 11;", encoding="utf-8")
    project.function("c/h.sql", "select 1;")
    assert _states(target) == {
        ("migration", f"{V1}_gone.sql"): "missing",
        ("migration", f"{V2}_edited.sql"): "changed",
        ("migration", f"{V3}_kept.sql"): "applied",
        ("migration", "20260104000000_new.sql"): "pending",
        # the functions_sql states of committed files: tests/platform/test_history.py
        ("functions_sql", "a/f.sql"): "uncommitted",
        ("functions_sql", "b/g.sql"): "uncommitted",
        ("functions_sql", "c/h.sql"): "uncommitted",
    }


# ---------------------------------------------------------------------------------------------
# The real project
# ---------------------------------------------------------------------------------------------
def test_the_template_has_every_project_migration_recorded(template_url: str) -> None:
    migrations = discover_migrations()
    functions = discover_functions()
    assert migrations, "the project has migrations"
    with psycopg.connect(template_url) as conn:
        recorded = dict(conn.execute("select version, checksum from autodoctor_meta.schema_migrations"))
        done = dict(conn.execute("select file, checksum from autodoctor_meta.functions_sql"))
    assert recorded == {f.key: f.checksum for f in migrations}
    assert done == {f.key: f.checksum for f in functions}
    assert {r.state for r in status(template_url)} == {"applied"}
