"""`autodoctor db commit`: turn what changed in supabase/functions_sql/ into a migration.

supabase/functions_sql/ is where functions, views and triggers are edited as current state;
supabase/migrations/ is the whole history, the only thing the Supabase CLI applies. A committed
migration carries:

- `set check_function_bodies = off;` (a file may call what a later file defines; the runner checks
  every SQL body after each run), reset at the end;
- every changed file whole, in path order, between `-- >>> functions_sql <path> sha256=<hex>` and
  `-- <<< functions_sql <path>` (the files are re-runnable by design);
- `drop … if exists` for the functions, procedures, triggers and views that the previously
  committed files defined and the current files no longer define;
- a manifest, the last lines of the file: `-- functions_sql-manifest <path> sha256=<hex>` for every
  file of the state the migration brings a database to.

"Since the last commit" is read from the migrations themselves: the manifest of the newest
migration that has one is the committed state; a file whose checksum is not there is uncommitted.
The previously committed text of a file is its block in the newest migration carrying that path
with that checksum. Which objects a set of files defines is asked of PostgreSQL, not parsed: on a
scratch database holding the migrations, an event trigger records the identity of every
`create function/procedure/trigger/view` while the previous files and then the current files run.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg

from shared.dev.migrate import (
    CARRIED_RE,
    MIGRATION_RE,
    MigrationError,
    SqlFile,
    connect,
    discover_functions,
    discover_migrations,
    migrate,
    migrations_dir,
    scratch_database,
)

BLOCK_BEGIN_RE = CARRIED_RE
BLOCK_END = "-- <<< functions_sql {path}"
MANIFEST_RE = re.compile(r"^-- functions_sql-manifest (\S+) sha256=([0-9a-f]{64})$", re.M)
MANIFEST_HEAD = "-- functions_sql-manifest: the state of supabase/functions_sql/ after this migration"
NAME_RE = re.compile(r"^[a-z0-9_]+$")
DEFAULT_NAME = "functions_sql"

# Drop order: what depends on a function goes first.
_DROP = {"trigger": 0, "view": 1, "procedure": 2, "function": 3}


class CommitError(RuntimeError):
    """`db commit` cannot write a migration."""


def manifest(text: str) -> dict[str, str] | None:
    """path → sha256 of the functions_sql state a committed migration records; None without one."""
    if MANIFEST_HEAD not in text:
        return None
    return {m.group(1): m.group(2) for m in MANIFEST_RE.finditer(text)}


def block(text: str, path: str, checksum: str) -> str | None:
    """The carried text of `path` with `checksum` in a migration, if it carries it."""
    for m in BLOCK_BEGIN_RE.finditer(text):
        if m.group(1) == path and m.group(2) == checksum:
            end = text.find("\n" + BLOCK_END.format(path=path) + "\n", m.end())
            if end < 0:
                return None
            return text[m.end() + 1: end + 1]
    return None


@dataclass(frozen=True)
class Committed:
    manifest: dict[str, str]  # path → sha256 (empty before the first commit)
    migration: str | None  # file name of the migration holding that manifest

    def text_of(self, path: str, migrations: list[SqlFile]) -> str:
        """The committed text of `path`, from the newest migration carrying it with its checksum."""
        checksum = self.manifest[path]
        for f in reversed(migrations):
            found = block(f.text, path, checksum)
            if found is not None:
                return found
        raise CommitError(f"no migration carries functions_sql {path} sha256={checksum[:12]} that the "
                          f"manifest of {self.migration} names")


def committed(migrations: list[SqlFile] | None = None) -> Committed:
    for f in reversed(migrations if migrations is not None else discover_migrations()):
        found = manifest(f.text)
        if found is not None:
            return Committed(found, f.path.name)
    return Committed({}, None)


@dataclass(frozen=True)
class Uncommitted:
    path: str
    state: str  # new | changed | deleted


def uncommitted(functions: list[SqlFile] | None = None, migrations: list[SqlFile] | None = None) -> list[Uncommitted]:
    """The functions_sql files whose current content no committed migration records, in path order."""
    functions = functions if functions is not None else discover_functions()
    state = committed(migrations).manifest
    rows = []
    current = {f.key: f.checksum for f in functions}
    for path in sorted(set(current) | set(state)):
        if path not in state:
            rows.append(Uncommitted(path, "new"))
        elif path not in current:
            rows.append(Uncommitted(path, "deleted"))
        elif state[path] != current[path]:
            rows.append(Uncommitted(path, "changed"))
    return rows


# ----------------------------------------------------------------------------------------------
# What a set of files defines, asked of PostgreSQL
# ----------------------------------------------------------------------------------------------
_CAPTURE_DDL = """
create schema autodoctor_commit;
create table autodoctor_commit.defined (object_type text not null, identity text not null);
create function autodoctor_commit.capture() returns event_trigger language plpgsql as $$
begin
  insert into autodoctor_commit.defined
  select object_type, object_identity from pg_event_trigger_ddl_commands()
  where command_tag in ('CREATE FUNCTION', 'CREATE PROCEDURE', 'CREATE TRIGGER', 'CREATE VIEW')
    and object_type in ('function', 'procedure', 'trigger', 'view');
end $$;
create event trigger autodoctor_commit_capture on ddl_command_end execute function autodoctor_commit.capture();
"""


def _defined(conn: psycopg.Connection, files: list[tuple[str, str]]) -> set[tuple[str, str]]:
    """(object type, identity) of what running `files` ((path, text), in order) creates or replaces."""
    conn.execute("truncate autodoctor_commit.defined")
    for path, text in files:
        try:
            conn.execute(text.encode("utf-8"))
        except psycopg.Error as exc:
            raise CommitError(f"functions_sql {path}: {exc.diag.message_primary or exc}") from exc
    return {(t, i) for t, i in conn.execute("select object_type, identity from autodoctor_commit.defined")}


def drop_statement(object_type: str, identity: str) -> str:
    return f"drop {object_type} if exists {identity};"


def vanished(server_url: str, previous: list[tuple[str, str]], current: list[tuple[str, str]],
             build: Callable[[list[tuple[str, str]]], str] | None = None) -> list[tuple[str, str]]:
    """The objects `previous` defines and `current` does not, on a scratch database holding the
    migrations; then the new migration (`build(gone)`) is run there too, so a migration that does
    not apply on the committed state is never written."""
    with scratch_database(server_url, "autodoctor_commit") as url:
        migrate(url, log=lambda _m: None, functions=False)
        with connect(url) as conn:
            conn.execute(_CAPTURE_DDL)
            with conn.transaction(force_rollback=True):
                conn.execute("set local check_function_bodies = off")
                before = _defined(conn, previous)
                after = _defined(conn, current)
            gone = sorted(before - after, key=lambda o: (_DROP[o[0]], o[1]))
            if build is not None:
                with conn.transaction(force_rollback=True):
                    try:
                        conn.execute(build(gone).encode("utf-8"))
                    except psycopg.Error as exc:
                        raise CommitError(
                            f"the new migration does not apply on the committed state: "
                            f"{exc.diag.message_primary or exc}") from exc
            return gone


# ----------------------------------------------------------------------------------------------
# The migration
# ----------------------------------------------------------------------------------------------
def render(changed: list[SqlFile], gone: list[tuple[str, str]], state: dict[str, str], name: str) -> str:
    out = [
        f"-- {name}: supabase/functions_sql/ as of this migration, written by `autodoctor db commit`.",
        "-- Whole files, re-runnable, in path order; then the drops of what they no longer define.",
        "-- Edit the files in supabase/functions_sql/, never this migration (see docs/migrations.md).",
        "set check_function_bodies = off;",
        "",
    ]
    for f in changed:
        text = f.text if f.text.endswith("\n") else f.text + "\n"
        out += [f"-- >>> functions_sql {f.key} sha256={f.checksum}", text.rstrip("\n"),
                BLOCK_END.format(path=f.key), ""]
    if gone:
        out.append("-- no longer defined in supabase/functions_sql/")
        out += [drop_statement(t, i) for t, i in gone]
        out.append("")
    out += ["reset check_function_bodies;", "", MANIFEST_HEAD]
    out += [f"-- functions_sql-manifest {path} sha256={checksum}" for path, checksum in sorted(state.items())]
    return "\n".join(out) + "\n"


def _version(migrations: list[SqlFile], now: dt.datetime | None = None) -> str:
    now = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0, tzinfo=None)
    if migrations:
        last = dt.datetime.strptime(migrations[-1].key, "%Y%m%d%H%M%S")
        now = max(now, last + dt.timedelta(seconds=1))
    return now.strftime("%Y%m%d%H%M%S")


def commit(server_url: str | Callable[[], str] | None, name: str = DEFAULT_NAME, *, log: Callable[[str], None] = print,
           now: dt.datetime | None = None) -> Path | None:
    """Write the migration carrying the uncommitted functions_sql changes; None when there are none.

    `server_url` (or a function returning it) is a server where a scratch database may be created;
    it is needed only when something was committed before, to find what the files no longer define."""
    if not NAME_RE.match(name):
        raise CommitError(f"migration name {name!r} must match {NAME_RE.pattern}")
    migrations = discover_migrations()
    functions = discover_functions()
    pending = uncommitted(functions, migrations)
    if not pending:
        log("nothing to commit: every functions_sql file is in a migration")
        return None
    last = committed(migrations)
    changed_paths = {u.path for u in pending if u.state != "deleted"}
    changed = [f for f in functions if f.key in changed_paths]
    state = {f.key: f.checksum for f in functions}
    gone: list[tuple[str, str]] = []
    version = _version(migrations, now)
    filename = f"{version}_{name}.sql"
    if not MIGRATION_RE.match(filename):
        raise CommitError(f"bad migration file name {filename!r}")
    if last.manifest:
        if server_url is None:
            raise CommitError("a database server is needed to find what the files no longer define")
        if callable(server_url):
            server_url = server_url()
        previous = [(p, last.text_of(p, migrations)) for p in sorted(last.manifest)]
        current = [(f.key, f.text) for f in functions]
        try:
            gone = vanished(server_url, previous, current, lambda g: render(changed, g, state, name))
        except MigrationError as exc:
            raise CommitError(str(exc)) from exc
    text = render(changed, gone, state, name)
    path = migrations_dir() / filename
    path.write_text(text, encoding="utf-8")
    log(f"wrote supabase/migrations/{filename}: {len(changed)} file(s), {len(gone)} drop(s)")
    for u in pending:
        log(f"  {u.state:8} {u.path}")
    for t, i in gone:
        log(f"  drop     {t} {i}")
    return path
