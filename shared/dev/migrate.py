"""The migration runner: platform shim, append-only migrations, re-applied SQL function files.

Order of one run, under a session advisory lock so two runners never interleave:
1. the platform shim (shared/dev/platform/shim.sql): only the chunks whose object is absent;
2. every migration in supabase/migrations/ not yet applied, in version order, each in its own
   transaction together with its record (version, name, sha256) in autodoctor_meta;
   an applied migration whose file changed or vanished stops the run before anything is applied;
3. every supabase/functions_sql/<domain>/<concern>.sql file whose content changed, in path order,
   each in its own transaction, with `check_function_bodies` off (as pg_dump restores) so that a
   file may call a function another file defines; once every file is in, the body of every SQL
   function in public and private is checked (on every run, so a broken body is never forgotten),
   and a body that names a missing object stops the run.

Every applied migration is recorded twice: with its checksum in autodoctor_meta.schema_migrations,
and in the Supabase CLI's own history (supabase_migrations.schema_migrations), so that the CLI
(`supabase db push`) and this runner see one history: a version the CLI applied is adopted (recorded
here with the file's checksum, not run again). A migration written by `autodoctor db commit` carries
functions_sql files; applying or adopting it records their checksums in autodoctor_meta.functions_sql.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from shared.config import project_dir

SHIM_PATH = Path(__file__).resolve().parent / "platform" / "shim.sql"
MIGRATION_RE = re.compile(r"^(\d{14})_([a-z0-9_]+)\.sql$")
FUNCTIONS_RE = re.compile(r"^([a-z][a-z0-9_]*)/([a-z][a-z0-9_]*)\.sql$")
LOCK_KEY = 0x4155_544F  # "AUTO": the runner's advisory lock
# A functions_sql file carried whole by a migration (`autodoctor db commit`, shared/dev/history.py).
CARRIED_RE = re.compile(r"^-- >>> functions_sql (\S+) sha256=([0-9a-f]{64})$", re.M)

META_DDL = """
create schema if not exists autodoctor_meta;
revoke all on schema autodoctor_meta from public;
create table if not exists autodoctor_meta.schema_migrations (
  version text primary key,
  name text not null,
  checksum text not null,
  applied_at timestamptz not null default now()
);
create table if not exists autodoctor_meta.functions_sql (
  file text primary key,
  checksum text not null,
  applied_at timestamptz not null default now()
);
"""

# The Supabase CLI's migration history, created as the CLI (2.117.0) creates it.
SUPABASE_HISTORY_DDL = (
    "create schema if not exists supabase_migrations",
    "create table if not exists supabase_migrations.schema_migrations (version text not null primary key)",
    "alter table supabase_migrations.schema_migrations add column if not exists statements text[]",
    "alter table supabase_migrations.schema_migrations add column if not exists name text",
)


def carried(text: str) -> dict[str, str]:
    """path → sha256 of every functions_sql file whose whole text a migration carries."""
    return {m.group(1): m.group(2) for m in CARRIED_RE.finditer(text)}


class MigrationError(RuntimeError):
    """A run that cannot go on; nothing after the failing step was applied."""


@dataclass(frozen=True)
class SqlFile:
    key: str  # migration version, or functions_sql path (<domain>/<concern>.sql)
    name: str
    path: Path

    @property
    def text(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


@dataclass
class MigrateResult:
    shim_created: list[str] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)
    functions_applied: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.shim_created or self.applied or self.adopted or self.functions_applied)


def migrations_dir() -> Path:
    return project_dir() / "supabase" / "migrations"


def functions_dir() -> Path:
    return project_dir() / "supabase" / "functions_sql"


def _discover(directory: Path, pattern: re.Pattern[str], what: str) -> list[SqlFile]:
    files: list[SqlFile] = []
    if not directory.is_dir():
        return files
    numbers: list[str] = []
    for path in sorted(directory.glob("*.sql")):
        match = pattern.match(path.name)
        if not match:
            raise MigrationError(f"{what} file name {path.name!r} does not match {pattern.pattern}")
        numbers.append(match.group(1))
        files.append(SqlFile(key=match.group(1), name=match.group(2), path=path))
    # One file per version, so the order never depends on the rest of the name.
    duplicates = sorted({n for n in numbers if numbers.count(n) > 1})
    if duplicates:
        raise MigrationError(f"two {what} files share the version {', '.join(duplicates)}")
    return files


def _discover_functions(directory: Path) -> list[SqlFile]:
    """Every <domain>/<concern>.sql below `directory`, in path order (domain, then concern)."""
    files: list[SqlFile] = []
    if not directory.is_dir():
        return files
    paths = [p for p in directory.rglob("*.sql") if p.is_file()]
    for path in sorted(paths, key=lambda p: p.relative_to(directory).as_posix()):
        rel = path.relative_to(directory).as_posix()
        match = FUNCTIONS_RE.match(rel)
        if not match:
            raise MigrationError(f"functions_sql file name {rel!r} does not match {FUNCTIONS_RE.pattern}")
        files.append(SqlFile(key=rel, name=rel, path=path))
    return files


def discover_migrations(directory: Path | None = None) -> list[SqlFile]:
    return _discover(directory or migrations_dir(), MIGRATION_RE, "migration")


def discover_functions(directory: Path | None = None) -> list[SqlFile]:
    return _discover_functions(directory or functions_dir())


# ----------------------------------------------------------------------------------------------
# Platform shim
# ----------------------------------------------------------------------------------------------
_CHUNK_RE = re.compile(r"^-- @when absent (role|schema|table|function) (\S+)\s*$", re.M)
_ABSENT_SQL = {
    "role": "select not exists (select 1 from pg_roles where rolname = %s)",
    "schema": "select not exists (select 1 from pg_namespace where nspname = %s)",
    "table": "select to_regclass(%s) is null",
    "function": "select to_regprocedure(%s) is null",
}


def shim_chunks(text: str | None = None) -> list[tuple[str, str, str]]:
    """(kind, object, sql) for every `-- @when absent <kind> <object>` chunk of the shim."""
    text = SHIM_PATH.read_text(encoding="utf-8") if text is None else text
    marks = list(_CHUNK_RE.finditer(text))
    chunks = []
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        chunks.append((mark.group(1), mark.group(2), text[mark.end():end]))
    return chunks


# A Supabase database: it has the platform's `auth` schema and the shim never ran there (no
# `platform_shim` schema). Versions of hosted Supabase differ in details (a storage or realtime
# function of another vintage), and app migrations may not create objects in platform schemas,
# so on such a database the shim does nothing at all rather than fill gaps object by object.
_SUPABASE_SQL = """
select exists (select 1 from pg_namespace where nspname = 'auth')
   and not exists (select 1 from pg_namespace where nspname = 'platform_shim')
"""


def is_supabase(conn: psycopg.Connection) -> bool:
    return bool(conn.execute(_SUPABASE_SQL).fetchone()[0])


def apply_shim(conn: psycopg.Connection) -> list[str]:
    """Create the platform objects that are absent; return what was created.

    Nothing at all on a Supabase database (see `is_supabase`); elsewhere every chunk whose object
    was absent before the shim started, all in one transaction; then today's realtime partitions.
    """
    if is_supabase(conn):
        return []
    chunks = shim_chunks()
    # Decide on the database as it was, before any chunk ran.
    todo = [(k, o, s) for k, o, s in chunks if conn.execute(_ABSENT_SQL[k], (o,)).fetchone()[0]]
    created: list[str] = []
    if todo:
        with conn.transaction():
            for kind, obj, chunk_sql in todo:
                _run(conn, chunk_sql, f"platform shim ({kind} {obj})")
                created.append(f"{kind} {obj}")
    if conn.execute("select to_regprocedure('platform_shim.ensure_realtime_partitions(int,date)')").fetchone()[0]:
        conn.execute("select platform_shim.ensure_realtime_partitions()")
    return created


# ----------------------------------------------------------------------------------------------
# Runner
# ----------------------------------------------------------------------------------------------
def _run(conn: psycopg.Connection, text: str, where: str) -> None:
    try:
        conn.execute(text.encode("utf-8"))  # bytes: no client-side placeholder parsing
    except psycopg.Error as exc:
        position = getattr(exc.diag, "statement_position", None)
        line = f", line {text[: int(position)].count(chr(10)) + 1}" if position else ""
        raise MigrationError(f"{where}{line}: {exc.diag.message_primary or exc}") from exc


def connect(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True, prepare_threshold=None)


def _applied(conn: psycopg.Connection) -> dict[str, tuple[str, str]]:
    rows = conn.execute("select version, name, checksum from autodoctor_meta.schema_migrations").fetchall()
    return {v: (n, c) for v, n, c in rows}


def _check_history(files: list[SqlFile], applied: dict[str, tuple[str, str]]) -> None:
    by_key = {f.key: f for f in files}
    problems = []
    for version, (name, checksum) in sorted(applied.items()):
        f = by_key.get(version)
        if f is None:
            problems.append(f"{version}_{name}.sql was applied but is missing from supabase/migrations/")
        elif f.checksum != checksum:
            problems.append(
                f"{f.path.name} was changed after it was applied (checksum {checksum[:12]} → "
                f"{f.checksum[:12]}); landed migrations are history: restore it and add a new migration"
            )
    if problems:
        raise MigrationError("refusing to migrate:\n  " + "\n  ".join(problems))


def _cli_history(conn: psycopg.Connection) -> set[str]:
    for statement in SUPABASE_HISTORY_DDL:
        conn.execute(statement)
    return {v for (v,) in conn.execute("select version from supabase_migrations.schema_migrations")}


def _record(conn: psycopg.Connection, f: SqlFile, *, cli: bool) -> None:
    """Record `f` as applied: ours (with its checksum), the CLI's unless it has it, and the
    functions_sql files it carries."""
    conn.execute(
        "insert into autodoctor_meta.schema_migrations (version, name, checksum) values (%s, %s, %s)",
        (f.key, f.name, f.checksum),
    )
    if cli:
        _record_cli(conn, f)
    for path, checksum in carried(f.text).items():
        conn.execute(
            "insert into autodoctor_meta.functions_sql (file, checksum) values (%s, %s) "
            "on conflict (file) do update set checksum = excluded.checksum, applied_at = now()",
            (path, checksum),
        )


def _record_cli(conn: psycopg.Connection, f: SqlFile) -> None:
    # The CLI keeps the statements it ran; here the file's text is the one statement list entry.
    conn.execute(
        "insert into supabase_migrations.schema_migrations (version, name, statements) values (%s, %s, %s) "
        "on conflict (version) do nothing",
        (f.key, f.name, [f.text]),
    )


def migrate(url: str, *, log: Callable[[str], None] = print, functions: bool = True) -> MigrateResult:
    """One run; `functions=False` stops after the migrations (the committed state only)."""
    result = MigrateResult()
    migrations = discover_migrations()
    function_files = discover_functions() if functions else []
    with connect(url) as conn:
        conn.execute("select pg_advisory_lock(%s)", (LOCK_KEY,))
        try:
            result.shim_created = apply_shim(conn)
            if result.shim_created:
                log(f"platform shim: created {len(result.shim_created)} object(s)")
            conn.execute(META_DDL)
            cli = _cli_history(conn)
            applied = _applied(conn)
            _check_history(migrations, applied)
            for f in migrations:
                if f.key in applied:
                    if f.key not in cli:  # applied before the runner kept the CLI's history too
                        _record_cli(conn, f)
                    continue
                with conn.transaction():
                    if f.key in cli:  # applied by `supabase db push`: adopt, do not run again
                        _record(conn, f, cli=False)
                    else:
                        _run(conn, f.text, f"migration {f.path.name}")
                        _record(conn, f, cli=True)
                if f.key in cli:
                    result.adopted.append(f.path.name)
                    log(f"adopted migration {f.path.name} (in the Supabase CLI's history)")
                else:
                    result.applied.append(f.path.name)
                    log(f"applied migration {f.path.name}")
            done = dict(conn.execute("select file, checksum from autodoctor_meta.functions_sql").fetchall())
            for f in function_files:
                if done.get(f.key) == f.checksum:
                    continue
                with conn.transaction():
                    conn.execute("set local check_function_bodies = off")
                    _run(conn, f.text, f"functions_sql {f.key}")
                    conn.execute(
                        "insert into autodoctor_meta.functions_sql (file, checksum) values (%s, %s) "
                        "on conflict (file) do update set checksum = excluded.checksum, applied_at = now()",
                        (f.key, f.checksum),
                    )
                result.functions_applied.append(f.key)
                log(f"applied functions_sql {f.key}")
            check_sql_function_bodies(conn)
        finally:
            conn.execute("select pg_advisory_unlock(%s)", (LOCK_KEY,))
    if not result.changed:
        log(f"nothing to do: {len(migrations)} migration(s) applied, functions_sql up to date")
    return result


def shim(url: str) -> list[str]:
    """Only the platform shim (for a plain PostgreSQL that `supabase db push` will migrate)."""
    with connect(url) as conn:
        conn.execute("select pg_advisory_lock(%s)", (LOCK_KEY,))
        try:
            return apply_shim(conn)
        finally:
            conn.execute("select pg_advisory_unlock(%s)", (LOCK_KEY,))


# Every SQL-language function of ours, with its own settings (search_path), so that its body is
# checked as CREATE FUNCTION would have checked it.
_SQL_FUNCTIONS = """
select p.oid, format('%s.%s(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)),
       coalesce(p.proconfig, '{}')
from pg_proc p
join pg_namespace n on n.oid = p.pronamespace
join pg_language l on l.oid = p.prolang
where l.lanname = 'sql' and n.nspname in ('public', 'private')
order by 2
"""


def check_sql_function_bodies(conn: psycopg.Connection) -> None:
    """Validate every SQL function body now that every file is in (check_function_bodies was off)."""
    problems = []
    for oid, signature, config in conn.execute(_SQL_FUNCTIONS).fetchall():
        try:
            with conn.transaction():
                conn.execute("set local check_function_bodies = on")
                for item in config:
                    name, _, value = item.partition("=")
                    conn.execute("select set_config(%s, %s, true)", (name, value))
                conn.execute("select fmgr_sql_validator(%s)", (oid,))
        except psycopg.Error as exc:
            problems.append(f"{signature}: {exc.diag.message_primary or exc}")
    if problems:
        raise MigrationError("SQL function bodies that do not compile:\n  " + "\n  ".join(problems))


@dataclass
class StatusRow:
    kind: str  # migration | functions_sql
    file: str
    state: str  # applied | pending | changed | missing | uncommitted


def status(url: str) -> list[StatusRow]:
    from shared.dev.history import uncommitted

    migrations = discover_migrations()
    functions = discover_functions()
    with connect(url) as conn:
        has_meta = conn.execute("select to_regclass('autodoctor_meta.schema_migrations') is not null").fetchone()[0]
        applied = _applied(conn) if has_meta else {}
        done = (
            dict(conn.execute("select file, checksum from autodoctor_meta.functions_sql").fetchall())
            if has_meta else {}
        )
    rows: list[StatusRow] = []
    keys = {f.key for f in migrations}
    for f in migrations:
        if f.key not in applied:
            state = "pending"
        else:
            state = "applied" if applied[f.key][1] == f.checksum else "changed"
        rows.append(StatusRow("migration", f.path.name, state))
    for version, (name, _) in sorted(applied.items()):
        if version not in keys:
            rows.append(StatusRow("migration", f"{version}_{name}.sql", "missing"))
    # A file no migration carries yet is `uncommitted` (`autodoctor db commit`), applied here or not.
    not_committed = {u.path: u.state for u in uncommitted(functions, migrations)}
    for f in functions:
        if f.key in not_committed:
            state = "uncommitted"
        else:
            state = "pending" if f.key not in done else ("applied" if done[f.key] == f.checksum else "changed")
        rows.append(StatusRow("functions_sql", f.key, state))
    for path, what in sorted(not_committed.items()):
        if what == "deleted":
            rows.append(StatusRow("functions_sql", f"{path} (deleted)", "uncommitted"))
    return rows


def run_sql_file(url: str, path: Path) -> None:
    with connect(url) as conn, conn.transaction():
        _run(conn, path.read_text(encoding="utf-8"), str(path.name))


def recreate_database(admin_url: str, name: str, template: str | None = None) -> None:
    """Drop and create database `name` through a connection to another database."""
    with connect(admin_url) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        if template:
            conn.execute(
                sql.SQL("create database {} template {}").format(sql.Identifier(name), sql.Identifier(template))
            )
        else:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))


def ensure_database(admin_url: str, name: str) -> bool:
    with connect(admin_url) as conn:
        if conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone():
            return False
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        return True


@contextmanager
def scratch_database(server_url: str, prefix: str) -> Iterator[str]:
    """A new empty database `<prefix>_<random>` on the server of `server_url`, dropped afterwards;
    yields its URL."""
    parts = urlsplit(server_url)
    admin = urlunsplit(parts._replace(path="/postgres"))
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    recreate_database(admin, name)
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with connect(admin) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
