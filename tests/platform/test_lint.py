"""`autodoctor db lint`: the migrated schema is clean, and each check catches its violation."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

import shared.dev.lint
from shared.dev.cli import main
from shared.dev.lint import CHECKS, run_lint
from tests.support.harness import Db


def _found(db: Db) -> set[tuple[str, str]]:
    return {(f.lint, f.obj) for f in run_lint(db.conn)}


def test_the_migrated_schema_is_clean(template_url: str) -> None:
    with psycopg.connect(template_url) as conn:
        findings = run_lint(conn)
    assert findings == [], "\n".join(map(str, findings))


def test_the_test_database_starts_clean(db: Db) -> None:
    assert _found(db) == set()


def _free_extension(db: Db) -> str:
    name = db.scalar(
        "select name from pg_available_extensions"
        " where name in ('citext', 'pg_trgm', 'hstore', 'ltree', 'isn') and installed_version is null"
        " order by name limit 1"
    )
    assert name, "no uninstalled contrib extension to test extension_in_public with"
    return name


# One violation per check: (check, setup statements, the object it must report).
VIOLATIONS: list[tuple[str, list[str], str]] = [
    ("rls_disabled_in_public", ["create table public.lint_t (id int primary key)"], "public.lint_t"),
    (
        "policy_exists_rls_disabled",
        [
            "create table private.lint_t (id int primary key)",
            "create policy select_all on private.lint_t for select to authenticated using (id > 0)",
        ],
        "private.lint_t",
    ),
    (
        "rls_enabled_no_policy",
        ["create table public.lint_t (id int primary key)", "alter table public.lint_t enable row level security"],
        "public.lint_t",
    ),
    (
        "function_search_path_mutable",
        ["create function private.lint_fn(int, text) returns int language sql security definer as 'select 1'"],
        "private.lint_fn(integer,text)",
    ),
    ("security_definer_view", ["create view public.lint_v as select 1 as x"], "public.lint_v"),
    (
        "materialized_view_in_api",
        ["create materialized view public.lint_mv as select 1 as x",
         "grant select on public.lint_mv to authenticated"],
        "public.lint_mv",
    ),
    (
        "anon_security_definer_function_executable",
        [
            "create function public.lint_sd() returns int language sql security definer set search_path = ''"
            " as 'select 1'",
            "grant execute on function public.lint_sd() to anon",
        ],
        "public.lint_sd()",
    ),
    (
        "unindexed_foreign_keys",
        [
            "create table private.lint_parent (id int primary key)",
            "create table private.lint_child (id int primary key,"
            " parent_id int references private.lint_parent (id) on delete cascade)",
        ],
        "private.lint_child",
    ),
    (
        "auth_rls_initplan",
        [
            "create table private.lint_t (id int primary key, owner_id uuid)",
            "alter table private.lint_t enable row level security",
            "create policy select_own on private.lint_t for select to authenticated using (owner_id = auth.uid())",
        ],
        "private.lint_t",
    ),
    (
        "rls_references_user_metadata",
        [
            "create table private.lint_t (id int primary key)",
            "alter table private.lint_t enable row level security",
            "create policy select_admin on private.lint_t for select to authenticated"
            " using ((select auth.jwt() -> 'user_metadata' ->> 'role') = 'admin')",
        ],
        "private.lint_t",
    ),
    ("no_primary_key", ["create table private.lint_t (id int)"], "private.lint_t"),
    (
        "rls_policy_always_true",
        [
            "create table private.lint_t (id int primary key)",
            "alter table private.lint_t enable row level security",
            "create policy insert_any on private.lint_t for insert to authenticated with check (true)",
        ],
        "private.lint_t",
    ),
    (
        "multiple_permissive_policies",
        [
            "create table public.lint_t (id int primary key, owner_id uuid)",
            "alter table public.lint_t enable row level security",
            "create policy select_own on public.lint_t for select to authenticated"
            " using (owner_id = (select auth.uid()))",
            "create policy select_positive on public.lint_t for select to authenticated using (id > 0)",
        ],
        "public.lint_t",
    ),
    (
        "duplicate_index",
        [
            "create table private.lint_t (id int primary key, code text)",
            "create index lint_t_code_a on private.lint_t (code)",
            "create index lint_t_code_b on private.lint_t (code)",
        ],
        "private.lint_t",
    ),
    (
        "auth_users_exposed",
        [
            "create view public.lint_users with (security_invoker = true) as select id, email from auth.users",
            "grant select on public.lint_users to authenticated",
        ],
        "public.lint_users",
    ),
    ("extension_in_public", ["create extension {extension} schema public"], "{extension}"),
    (
        "objects_in_platform_schemas",
        ["create table realtime.lint_t (id serial primary key, note text)",
         "create index lint_t_note on realtime.lint_t (note)"],
        "realtime.lint_t",
    ),
]


def test_every_check_has_a_violation_case() -> None:
    assert sorted(CHECKS) == sorted({check for check, _, _ in VIOLATIONS})


@pytest.mark.parametrize(("check", "statements", "obj"), VIOLATIONS, ids=[v[0] for v in VIOLATIONS])
def test_each_check_reports_its_violation(db: Db, check: str, statements: list[str], obj: str) -> None:
    extension = _free_extension(db) if "{extension}" in obj else ""
    for statement in statements:
        db.execute(statement.format(extension=extension))
    assert _found(db) == {(check, obj.format(extension=extension))}


@pytest.mark.parametrize(
    ("statement", "obj"),
    [
        ("create function auth.lint_fn() returns int language sql as 'select 1'", "auth.lint_fn()"),
        ("create type storage.lint_kind as enum ('a', 'b')", "storage.lint_kind"),
        ("create sequence realtime.lint_seq", "realtime.lint_seq"),
    ],
)
def test_other_objects_in_platform_schemas(db: Db, statement: str, obj: str) -> None:
    db.execute(statement)
    assert _found(db) == {("objects_in_platform_schemas", obj)}


def test_allowed_platform_schema_objects_pass(db: Db) -> None:
    """Triggers on auth.users, policies on platform tables, and FKs to auth.users(id) are allowed."""
    db.execute("create table private.lint_profiles (id uuid primary key references auth.users (id) on delete cascade)")
    db.execute(
        "create function private.tg_users__lint() returns trigger language plpgsql security definer"
        " set search_path = '' as $$ begin return new; end $$"
    )
    db.execute("create trigger _900_lint after insert on auth.users for each row execute function private.tg_users__lint()")
    db.execute(
        "create policy select_own on storage.objects for select to authenticated"
        " using (owner_id = (select auth.uid())::text)"
    )
    db.execute(
        "create policy select_room on realtime.messages for select to authenticated"
        " using ((select realtime.topic()) = 'room:' || (select auth.uid())::text)"
    )
    assert _found(db) == set()


# ---------------------------------------------------------------------------------------------
# auth_rls_initplan: wrapped calls pass, bare calls anywhere are findings
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def policy_table(db: Db) -> str:
    db.execute("create table private.lint_p (id int primary key, owner_id uuid, role text)")
    db.execute("alter table private.lint_p enable row level security")
    return "private.lint_p"


@pytest.mark.parametrize(
    "using",
    [
        "owner_id = (select auth.uid())",
        "(select auth.uid()) = owner_id",
        "owner_id = (select auth.uid() as me)",
        "role = (select auth.jwt() ->> 'role')",
        "(select auth.jwt() -> 'app_metadata' ->> 'tier') = 'gold'",
        "(select auth.role()) = 'authenticated' and (select auth.email()) like '%@example.test'",
        "role = (select current_setting('request.jwt.claims', true)::jsonb ->> 'role')",
        "id in (select x from generate_series(1, 3) x where owner_id = (select auth.uid()))",
    ],
)
def test_wrapped_calls_are_not_flagged(db: Db, policy_table: str, using: str) -> None:
    db.execute(f"create policy select_p on {policy_table} for select to authenticated using ({using})")
    assert _found(db) == set()


@pytest.mark.parametrize(
    "using",
    [
        "owner_id = auth.uid()",
        "owner_id = (select auth.uid()) or role = auth.jwt() ->> 'role'",  # mixed: one wrapped, one bare
        "auth.role() = 'authenticated'",
        "role = current_setting('request.jwt.claims', true)::jsonb ->> 'role'",
        "id in (select x from generate_series(1, 3) x where owner_id = auth.uid())",  # per row inside
    ],
)
def test_bare_calls_are_flagged(db: Db, policy_table: str, using: str) -> None:
    db.execute(f"create policy select_p on {policy_table} for select to authenticated using ({using})")
    assert _found(db) == {("auth_rls_initplan", policy_table)}


def test_bare_call_in_with_check_is_flagged(db: Db, policy_table: str) -> None:
    db.execute(
        f"create policy update_own on {policy_table} for update to authenticated"
        " using (owner_id = (select auth.uid())) with check (owner_id = auth.uid())"
    )
    assert _found(db) == {("auth_rls_initplan", policy_table)}


def test_bare_realtime_topic_is_flagged(db: Db) -> None:
    db.execute(
        "create policy select_room on realtime.messages for select to authenticated"
        " using (realtime.topic() = 'room:' || (select auth.uid())::text)"
    )
    assert _found(db) == {("auth_rls_initplan", "realtime.messages")}


# ---------------------------------------------------------------------------------------------
# The anon allow-list
# ---------------------------------------------------------------------------------------------
def _anon_sd(db: Db) -> None:
    db.execute(
        "create function public.lint_open() returns int language sql security definer set search_path = ''"
        " as 'select 1'"
    )
    db.execute("grant execute on function public.lint_open() to anon")


def test_allow_list_silences_anon_security_definer(db: Db, monkeypatch: pytest.MonkeyPatch) -> None:
    project = shared.dev.lint.anon_allow_list()  # the project's own public functions (find_workshops)
    _anon_sd(db)
    assert _found(db) == {("anon_security_definer_function_executable", "public.lint_open()")}
    monkeypatch.setattr(shared.dev.lint, "anon_allow_list", lambda: ["lint_open", *project])
    assert _found(db) == set()
    monkeypatch.setattr(shared.dev.lint, "anon_allow_list", lambda: ["something_else", *project])
    assert len(_found(db)) == 1


def test_allow_list_is_read_from_pyproject(db: Db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = shared.dev.lint.anon_allow_list()  # the project's own public functions (find_workshops)
    monkeypatch.setenv("AUTODOCTOR_PROJECT_DIR", str(tmp_path))
    assert shared.dev.lint.anon_allow_list() == []  # no pyproject.toml at all
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n", encoding="utf-8")
    assert shared.dev.lint.anon_allow_list() == []  # no [tool.autodoctor.lint]
    names = ["lint_open", "other", *project]
    (tmp_path / "pyproject.toml").write_text(
        f"[tool.autodoctor.lint]\nanon_security_definer_allow = {names!r}\n", encoding="utf-8"
    )
    assert shared.dev.lint.anon_allow_list() == names
    _anon_sd(db)
    assert _found(db) == set()


def test_the_projects_allow_list_is_a_list_of_names() -> None:
    names = shared.dev.lint.anon_allow_list()
    assert isinstance(names, list) and all(isinstance(n, str) for n in names)


# ---------------------------------------------------------------------------------------------
# The CLI
# ---------------------------------------------------------------------------------------------
def test_cli_lint_exit_codes(fresh_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "lint", "--database-url", fresh_url]) == 0
    assert capsys.readouterr().out.strip() == "lint: clean"

    with psycopg.connect(fresh_url, autocommit=True) as conn:
        conn.execute("create table public.lint_cli (id int)")
    assert main(["db", "lint", "--database-url", fresh_url]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "rls_disabled_in_public: public.lint_cli — RLS is not enabled",
        "no_primary_key: public.lint_cli — no primary key",
    ]
    assert err.strip() == "2 finding(s)"


@pytest.mark.parametrize(("option", "flagged"), [("", False), ("=on", False), ("='1'", False), ("=false", True)])
def test_security_invoker_spellings(db: Db, option: str, flagged: bool) -> None:
    db.execute(f"create view public.lint_v with (security_invoker{option}) as select 1 as x")
    assert _found(db) == ({("security_definer_view", "public.lint_v")} if flagged else set())


def test_cli_lint_reports_what_the_repository_no_longer_defines(fresh_url: str,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """A function, trigger, view or policy left behind after its source was removed is stale (a
    removed RPC would stay executable)."""
    with psycopg.connect(fresh_url, autocommit=True) as conn:
        conn.execute("create function public.old_rpc(p int) returns int language sql as 'select p'")
        conn.execute("create view private.old_view as select 1 as one")
        conn.execute("create function private.tg_old() returns trigger language plpgsql as"
                     " 'begin return new; end'")
        conn.execute("create trigger _999_old before update on public.vehicles"
                     " for each row execute function private.tg_old()")
        conn.execute("create policy select_old on public.vehicles for select to authenticated using (false)")
    assert main(["db", "lint", "--database-url", fresh_url]) == 1
    out, err = capsys.readouterr()
    assert err.strip().endswith("finding(s)")
    stale = sorted(line for line in out.splitlines() if line.startswith("stale_object: "))
    assert stale == [
        "stale_object: _999_old on public.vehicles — trigger that no migration or functions_sql file defines any more",
        "stale_object: private.old_view — view that no migration or functions_sql file defines any more",
        "stale_object: private.tg_old() — function that no migration or functions_sql file defines any more",
        "stale_object: public.old_rpc(integer) — function that no migration or functions_sql file defines any more",
        "stale_object: select_old on public.vehicles — policy that no migration or functions_sql file defines any"
        " more",
    ]
    # the scratch database it compared with is gone
    with psycopg.connect(fresh_url) as conn:
        assert conn.execute("select count(*) from pg_database where datname like 'autodoctor_lint_%'").fetchone() == (0,)
