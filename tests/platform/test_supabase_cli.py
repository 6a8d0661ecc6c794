"""The official Supabase CLI and the runner build the same database and share one history.

On two empty databases of the suite's server: (a) `autodoctor db shim`, then `supabase db push`;
(b) `autodoctor db migrate`. Their catalogs must be identical (every function, trigger, policy,
view, table, column, constraint, index and grant outside the two tools' bookkeeping schemas); then
neither tool finds anything to apply on the other's database.

The CLI is the npm package `supabase`, pinned, installed once into .autodoctor/cache/supabase-cli
(its platform binary comes as the optional dependency `@supabase/cli-<os>-<arch>`). Without npm or
the registry the test fails: it is the proof that a team deploying with the CLI gets the schema.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from shared.config import project_dir
from shared.dev.cli import main as autodoctor
from shared.dev.migrate import connect, migrate
from tests.platform import test_migrate

new_db = test_migrate.new_db  # empty databases on the suite's server, dropped afterwards

CLI_PACKAGE = "supabase@2.117.0"
CLI_VERSION = "2.117.0"
BOOKKEEPING = ("autodoctor_meta", "supabase_migrations")


def _cache() -> Path:
    return project_dir() / ".autodoctor" / "cache" / "supabase-cli"


def _version(exe: Path) -> str | None:
    if not exe.exists():
        return None
    try:
        out = subprocess.run(  # noqa: S603 - the pinned CLI
            [str(exe), "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def supabase_cli() -> Path:
    """The pinned Supabase CLI, installed from npm into the cache on first use."""
    cache = _cache()
    exe = cache / "node_modules" / ".bin" / "supabase"
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one installer at a time
        if _version(exe) == CLI_VERSION:
            return exe
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail(f"npm is not installed: it is needed to install the Supabase CLI ({CLI_PACKAGE})")
        try:
            out = subprocess.run(  # noqa: S603 - npm with fixed arguments
                [npm, "install", "--save-exact", "--no-audit", "--no-fund", "--prefix", str(cache), CLI_PACKAGE],
                capture_output=True, text=True, timeout=900,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"`npm install {CLI_PACKAGE}` took more than 15 minutes: is the npm registry reachable?")
        if out.returncode != 0:
            pytest.fail(f"`npm install {CLI_PACKAGE}` failed (is the npm registry reachable?):\n"
                        + (out.stderr or out.stdout)[-2000:])
        found = _version(exe)
        if found != CLI_VERSION:
            pytest.fail(f"the Supabase CLI installed into {cache} answers {found!r}, not {CLI_VERSION} "
                        "(its platform binary comes from the optional package @supabase/cli-<os>-<arch>)")
        return exe


def push(exe: Path, url: str) -> str:
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, "sslmode=disable") if q)
    out = subprocess.run(  # noqa: S603 - the pinned CLI on a test database
        [str(exe), "db", "push", "--db-url", urlunsplit(parts._replace(query=query)), "--yes"],
        cwd=project_dir(), capture_output=True, text=True, timeout=600,
        env={**os.environ, "DO_NOT_TRACK": "1", "SUPABASE_TELEMETRY_DISABLED": "1"},
    )
    text = out.stdout + out.stderr
    assert out.returncode == 0, f"supabase db push failed:\n{text[-4000:]}"
    return text


# ---------------------------------------------------------------------------------------------
# The catalog fingerprint
# ---------------------------------------------------------------------------------------------
_OURS = """n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast', 'autodoctor_meta',
                            'supabase_migrations') and n.nspname not like 'pg_temp%%'
                            and n.nspname not like 'pg_toast_temp%%'"""

FINGERPRINT = {
    "schema": f"select n.nspname, n.nspowner::regrole::text, n.nspacl::text from pg_namespace n where {_OURS}",
    "function": f"""
        select n.nspname, p.proname, pg_get_function_identity_arguments(p.oid),
               md5(case when p.prokind in ('f', 'p') then pg_get_functiondef(p.oid) else p.prosrc end),
               p.prosecdef, p.proconfig::text, p.proacl::text, p.proowner::regrole::text
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace where {_OURS}""",
    "trigger": f"""
        select pg_get_triggerdef(t.oid), t.tgenabled
        from pg_trigger t join pg_class c on c.oid = t.tgrelid join pg_namespace n on n.oid = c.relnamespace
        where not t.tgisinternal and {_OURS}""",
    "policy": """
        select schemaname, tablename, policyname, permissive, roles::text, cmd, qual, with_check
        from pg_policies where schemaname not in ('autodoctor_meta', 'supabase_migrations')""",
    "view": f"""
        select n.nspname, c.relname, pg_get_viewdef(c.oid), c.reloptions::text
        from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.relkind in ('v', 'm') and {_OURS}""",
    "table": f"""
        select n.nspname, c.relname, c.relkind, c.relrowsecurity, c.relforcerowsecurity,
               c.relowner::regrole::text, c.relacl::text, c.reloptions::text
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where c.relkind in ('r', 'p', 'v', 'm', 'f', 'S') and {_OURS}""",
    "column": f"""
        select n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
               pg_get_expr(d.adbin, d.adrelid), a.attnotnull, a.attgenerated, a.attidentity, a.attacl::text
        from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
        left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
        where a.attnum > 0 and not a.attisdropped and c.relkind in ('r', 'p', 'v', 'm', 'f') and {_OURS}""",
    "constraint": f"""
        select n.nspname, coalesce(c.relname, ''), k.conname, pg_get_constraintdef(k.oid)
        from pg_constraint k join pg_namespace n on n.oid = k.connamespace
        left join pg_class c on c.oid = k.conrelid where {_OURS}""",
    "index": f"""
        select pg_get_indexdef(i.indexrelid)
        from pg_index i join pg_class c on c.oid = i.indexrelid join pg_namespace n on n.oid = c.relnamespace
        where {_OURS}""",
    "type": f"""
        select n.nspname, t.typname, t.typtype,
               (select string_agg(e.enumlabel, ',' order by e.enumsortorder) from pg_enum e where e.enumtypid = t.oid),
               pg_catalog.format_type(t.typbasetype, t.typtypmod)
        from pg_type t join pg_namespace n on n.oid = t.typnamespace
        where t.typtype in ('e', 'd') and {_OURS}""",
}


def fingerprint(url: str) -> dict[str, list[tuple[object, ...]]]:
    with connect(url) as conn:
        return {kind: sorted((tuple(r) for r in conn.execute(query).fetchall()), key=repr)
                for kind, query in FINGERPRINT.items()}


def _differences(a: dict[str, list[tuple[object, ...]]], b: dict[str, list[tuple[object, ...]]]) -> list[str]:
    out = []
    for kind in FINGERPRINT:
        only_a = set(a[kind]) - set(b[kind])
        only_b = set(b[kind]) - set(a[kind])
        out += [f"{kind} only after supabase db push: {r}" for r in sorted(only_a, key=repr)[:10]]
        out += [f"{kind} only after autodoctor db migrate: {r}" for r in sorted(only_b, key=repr)[:10]]
    return out


def _history(url: str) -> list[tuple[object, ...]]:
    with connect(url) as conn:
        return [tuple(r) for r in conn.execute(
            "select version, name from supabase_migrations.schema_migrations order by 1").fetchall()]


def test_supabase_cli_push_and_the_runner_build_the_same_database(new_db: Callable[[], str]) -> None:
    timings: dict[str, float] = {}
    started = time.monotonic()
    exe = supabase_cli()
    timings["install (or reuse)"] = time.monotonic() - started

    pushed, migrated = new_db(), new_db()
    assert autodoctor(["db", "shim", "--database-url", pushed]) == 0
    started = time.monotonic()
    out = push(exe, pushed)
    timings["supabase db push"] = time.monotonic() - started
    assert "Applying migration" in out
    started = time.monotonic()
    migrate(migrated, log=lambda _m: None)
    timings["autodoctor db migrate"] = time.monotonic() - started

    with connect(pushed) as conn:  # the CLI alone gives the functions that only functions_sql used to hold
        assert conn.execute("select to_regprocedure('public.accept_request(uuid)') is not null").fetchone()[0]
    a, b = fingerprint(pushed), fingerprint(migrated)
    assert all(a[k] for k in ("function", "trigger", "policy", "table", "index")), "an empty fingerprint"
    assert a == b, "the two databases differ:\n" + "\n".join(_differences(a, b))

    # one history: neither tool finds anything to apply on the other's database
    history = _history(pushed)
    assert _history(migrated) == history
    for url in (pushed, migrated):
        again = push(exe, url)
        assert "Applying migration" not in again and "up to date" in again, again
        assert _history(url) == history
    result = migrate(pushed, log=lambda _m: None)
    assert result.applied == [] and result.functions_applied == [] and result.shim_created == []
    assert len(result.adopted) == len(history)  # recorded with their checksums, not run again
    assert not migrate(pushed, log=lambda _m: None).changed
    assert fingerprint(pushed) == b
    print("timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))


def test_a_missing_cli_fails_clearly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AUTODOCTOR_PROJECT_DIR", str(tmp_path))
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(pytest.fail.Exception, match="npm is not installed"):
        supabase_cli()


def test_the_cli_reads_our_config_toml(new_db: Callable[[], str], tmp_path: Path) -> None:
    """supabase/config.toml stays valid for the pinned CLI (which `supabase start` would read): a
    dry-run push loads it, and the same command refuses a broken copy, so the check is not blind."""
    exe = supabase_cli()
    url = new_db()
    parts = urlsplit(url)
    db_url = urlunsplit(parts._replace(query="&".join(q for q in (parts.query, "sslmode=disable") if q)))

    def dry_run(project: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - the pinned CLI on a test database
            [str(exe), "db", "push", "--dry-run", "--db-url", db_url], cwd=project, capture_output=True,
            text=True, timeout=300, env={**os.environ, "DO_NOT_TRACK": "1", "SUPABASE_TELEMETRY_DISABLED": "1"})

    ok = dry_run(project_dir())
    assert ok.returncode == 0, ok.stdout + ok.stderr
    shutil.copytree(project_dir() / "supabase", tmp_path / "supabase", ignore=shutil.ignore_patterns(".temp"))
    config = tmp_path / "supabase" / "config.toml"
    config.write_text(config.read_text().replace("port = 54322", 'port = "not a port"'))
    broken = dry_run(tmp_path)
    assert broken.returncode != 0 and "failed to load config" in broken.stdout + broken.stderr
