"""The orchestration of `autodoctor simulate` (docs/simulation.md): the database, the provider stubs,
the functions, the schedules and the job worker, the actors' worker processes, the sampling and the
invariant checks, the faults, the drain at the end, the files and the report.

Processes: this one (the orchestrator: the SQL schedules in threads, the stubs' HTTP servers in
threads, sampling, checks, faults), the functions server, the job worker, and `run.workers` actor
processes, all started with multiprocessing's `spawn` so that none inherits another's connections.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import multiprocessing
import os
import re
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.context import SpawnProcess
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import psycopg

from shared.dev.sim import faults as faultplan
from shared.dev.sim import metrics
from shared.dev.sim.spec import RunSpec, WorkerSpec

if TYPE_CHECKING:
    from shared.dev.embedded import EmbeddedPostgres

# --------------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([hms])")


def parse_duration(text: str) -> float:
    """`2h`, `90m`, `600s`, `1h30m`, or plain seconds (`600`) → seconds (> 0)."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        seconds = float(text)
    elif text and re.fullmatch(r"(?:\d+(?:\.\d+)?[hms])+", text):
        unit = {"h": 3600.0, "m": 60.0, "s": 1.0}
        seconds = sum(float(n) * unit[u] for n, u in _DURATION_PART.findall(text))
    else:
        raise ValueError(f"invalid duration {text!r} (examples: 2h, 90m, 600s, 1h30m)")
    if seconds <= 0:
        raise ValueError(f"invalid duration {text!r}: must be more than 0")
    return seconds


def validate(run: RunSpec) -> None:
    """Raises ValueError with a one-line reason for options no run can have."""
    if run.mechanics < 1:
        raise ValueError("--mechanics must be at least 1")
    if run.customers < 1:
        raise ValueError("--customers must be at least 1")
    if not run.rate > 0:
        raise ValueError("--rate must be more than 0")
    if not run.duration_s > 0:
        raise ValueError("--duration must be more than 0")
    if not run.speed >= 1:
        raise ValueError("--speed must be at least 1 (simulated seconds per real second)")
    if run.workers < 1:
        raise ValueError("--workers must be at least 1")
    faultplan.parse(",".join(run.faults) or "none")


# --------------------------------------------------------------------------------------------
# Time compression: the settings divided by the speed
# --------------------------------------------------------------------------------------------

# The intervals that say when something the run must see happens on the run's own timeline (after
# an event, before a start): divided by the speed, so a run compressed 60× sees a request turn
# unattended after 5 s of real time as a real city does after 5 minutes (docs/simulation.md).
SCALED_INTERVALS = (
    # the request lifecycle the sweep moves
    "requests.unattended_after", "requests.expire_after", "requests.accepted_no_join_cancel_after",
    # the routing windows dispatch moves
    "matching.offer_ttl", "matching.preferred_window", "matching.admin_offer_window",
    "follow_ups.same_mechanic_window", "workshops.micro_approval_window",
    # heartbeat staleness: mechanics heartbeat every 30 simulated seconds
    "presence.online_window",
    # emails and alerts the timers send
    "notifications.assignment_notice_delay", "nudges.accepted_not_started_after", "nudges.support_alert_after",
    "reviews.prompt_delay", "sessions.starting_notice",
    # the session timers
    "sessions.deadline_grace", "sessions.orphaned_waiting_cancel_after", "sessions.reconcile_empty_after",
    "scheduling.open_before", "scheduling.hold_duration",
    # bookings: a booked session can start, be reminded of, moved or cancelled within the run
    "scheduling.min_notice", "scheduling.change_cutoff",
    # money and trust: payouts released and unverified sessions refunded after their hold
    "payments.payout_hold", "trust.unverified_refund_after", "trust.release_cooldown",
    # the windows the actors act within (they wait compressed delays too)
    "summaries.submit_window", "reviews.edit_window", "reviews.submit_window", "follow_ups.window",
)
SCALED_INTERVAL_ARRAYS = ("scheduling.reminder_leads",)
# Minutes as an integer: divided and rounded down (0 at a speed over 2: a session counts as
# delivered when both sides took part, whatever its length in real time).
SCALED_MINUTES = ("trust.min_delivered_minutes",)
# Per-minute rates: multiplied, because a user makes `speed` times more calls per real minute.
SCALED_RATES = tuple(f"rate_limit.{cls}.refill_per_minute" for cls in ("request", "accept", "session", "write",
                                                                         "admin"))
# Left as they are:
# - payments.checkout_expires_after: Stripe refuses an expiry under 30 minutes; a customer who
#   abandons Checkout is played through the stub (`/_sim/checkout/<id>/abandon`).
# - livekit.token_grace: a token's lifetime past a session's planned end, checked by LiveKit
#   against wall-clock time.
# - scheduling.slot_step, buffer, max_advance, max_query_range, workshops.*, contact.*,
#   privacy.erasure_grace, recommendations.*: the calendar's grid, the weekly availability (local
#   clock time, which no setting compresses) and query limits, not events of the run.
# - retention.*: how long history is kept; divided, the retention job would delete rows of the run
#   (finished jobs, webhook ledgers, run records) that the checks and the report read.
# Also divided, in private.job_kinds: base_backoff, max_backoff and lease (not below LEASE_FLOOR),
# so that a job retried after an outage, or left claimed by a killed worker, comes back within the run.
LEASE_FLOOR_S = 15.0


# The values before a run scaled them, kept in the database so that a later run on the same
# database (--database-url) scales the originals, never a value an earlier run already divided.
ORIGINALS_DDL = (
    "create schema if not exists autodoctor_meta",
    "create table if not exists autodoctor_meta.sim_time_originals ("
    " source text not null, key text not null, value jsonb not null, primary key (source, key))",
)


def _restore_originals(conn: psycopg.Connection[Any]) -> None:
    """Puts back the values an earlier run scaled, and records the current ones otherwise."""
    for ddl in ORIGINALS_DDL:
        conn.execute(ddl)
    conn.execute("update private.settings s set value = o.value, updated_at = now()"
                 " from autodoctor_meta.sim_time_originals o where o.source = 'settings' and o.key = s.key"
                 " and s.value is distinct from o.value")
    conn.execute("update private.job_kinds k set base_backoff = (o.value ->> 'base_backoff')::interval,"
                 " max_backoff = (o.value ->> 'max_backoff')::interval, lease = (o.value ->> 'lease')::interval"
                 " from autodoctor_meta.sim_time_originals o where o.source = 'job_kinds' and o.key = k.kind")
    conn.execute("insert into autodoctor_meta.sim_time_originals (source, key, value)"
                 " select 'settings', key, value from private.settings where key = any(%s)"
                 " on conflict do nothing",
                 ([*SCALED_INTERVALS, *SCALED_INTERVAL_ARRAYS, *SCALED_MINUTES, *SCALED_RATES],))
    conn.execute("insert into autodoctor_meta.sim_time_originals (source, key, value)"
                 " select 'job_kinds', kind, jsonb_build_object('base_backoff', base_backoff,"
                 " 'max_backoff', max_backoff, 'lease', lease) from private.job_kinds on conflict do nothing")


def scale_time_settings(conn: psycopg.Connection[Any], speed: float) -> dict[str, tuple[Any, Any]]:
    """Divides the time settings by `speed` (nothing at 1) in one transaction, starting from the
    values before any earlier run scaled them; returns key → (before, after). A listed key that does
    not exist is an error (the list went stale)."""
    changed: dict[str, tuple[Any, Any]] = {}
    with conn.transaction():
        _restore_originals(conn)
        if speed <= 1:
            return {}
        before = dict(conn.execute("select key, value from private.settings").fetchall())
        listed = (*SCALED_INTERVALS, *SCALED_INTERVAL_ARRAYS, *SCALED_MINUTES, *SCALED_RATES)
        missing = [k for k in listed if k not in before]
        if missing:
            raise RuntimeError(f"time settings to scale are missing from private.settings: {', '.join(missing)}")
        statements = (
            ("to_jsonb(((value #>> '{}')::interval / %(s)s)::text)", SCALED_INTERVALS),
            ("(select jsonb_agg(((e #>> '{}')::interval / %(s)s)::text order by n)"
             " from jsonb_array_elements(value) with ordinality as x(e, n))", SCALED_INTERVAL_ARRAYS),
            ("to_jsonb(floor((value #>> '{}')::numeric / %(s)s)::int)", SCALED_MINUTES),
            ("to_jsonb((value #>> '{}')::numeric * %(s)s)", SCALED_RATES),
        )
        for expression, keys in statements:
            rows = conn.execute(
                f"update private.settings set value = {expression}, updated_at = now()"
                " where key = any(%(k)s) returning key, value",
                {"s": float(speed), "k": list(keys)},
            ).fetchall()
            for key, value in rows:
                changed[key] = (before[key], value)
        conn.execute(
            "update private.job_kinds set base_backoff = base_backoff / %(s)s, max_backoff = max_backoff / %(s)s,"
            " lease = greatest(lease / %(s)s, make_interval(secs => %(f)s))",
            {"s": float(speed), "f": LEASE_FLOOR_S},
        )
    return changed


# --------------------------------------------------------------------------------------------
# The database
# --------------------------------------------------------------------------------------------

SIM_DATABASE = "autodoctor_sim"


class RunError(RuntimeError):
    """A run that cannot start (a refused database, a server that did not come up): one line."""


def foreign_users(url: str) -> int:
    """Users in auth.users the simulator did not make (their e-mail is not at city.EMAIL_DOMAIN);
    0 on a database without the table."""
    from shared.dev.sim import city

    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        if conn.execute("select to_regclass('auth.users')").fetchone() == (None,):
            return 0
        row = conn.execute("select count(*) from auth.users where email is null or email not like %s",
                           (f"%@{city.EMAIL_DOMAIN}",)).fetchone()
    return int(row[0]) if row else 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def restart_database(url: str, embedded: EmbeddedPostgres | None) -> str:
    """The db_restart fault: the run's own server stopped and started, or, on a server the run does
    not own, every other connection to the run's database terminated. Returns what was done."""
    started = time.monotonic()
    if embedded is not None:
        embedded.stop()
        embedded.start()
        return f"embedded server stopped and started in {time.monotonic() - started:.1f} s"
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        row = conn.execute("select count(*) filter (where pg_terminate_backend(pid)) from pg_stat_activity"
                           " where datname = current_database() and pid <> pg_backend_pid()").fetchone()
    return f"terminated {row[0] if row else 0} connection(s) to the run's database"


# --------------------------------------------------------------------------------------------
# Child processes: the functions server and the job worker
# --------------------------------------------------------------------------------------------

def _redirect_output(path: str) -> None:
    """The child's output into its log; Ctrl-C is the orchestrator's to handle (it stops every child)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out = open(path, "a", buffering=1)  # the child's stdout and stderr for its life
    os.dup2(out.fileno(), 1)
    os.dup2(out.fileno(), 2)
    sys.stdout = sys.stderr = out


def _functions_main(port: int, env: dict[str, str], skew_s: float, log_path: str, ready: Any) -> None:
    """The functions server: every target of main.py under /<target>, threaded; its clock off by `skew_s`.

    Its socket is bound with SO_REUSEPORT, so that a new server (a restart with another skew) listens
    on the port before the old one is stopped, as a rolling deploy does."""
    _redirect_output(log_path)
    os.environ.update(env)
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    from werkzeug.serving import make_server

    from shared.dev.server import build_app

    app = build_app()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    server = make_server("127.0.0.1", port, app, threaded=True, fd=sock.fileno())
    ready.set()
    if skew_s:
        import time_machine

        with time_machine.travel(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=skew_s), tick=True):
            server.serve_forever()
    else:
        server.serve_forever()


# The job worker's shared flags: 0 idle, 1 inside a handler (a provider call), 2 the provider
# answered and the job is not settled yet (it waits there while worker_kill is armed).
BUSY_IDLE, BUSY_CALLING, BUSY_UNSETTLED = 0, 1, 2


def _wrap_handlers(busy: Synchronized[int], armed: Synchronized[int]) -> None:
    import functools
    import inspect

    from shared import worker

    original = worker.handlers

    def after() -> None:
        if armed.value:
            busy.value = BUSY_UNSETTLED
            time.sleep(60)  # the orchestrator kills the worker here
        busy.value = BUSY_IDLE

    def wrap(handler: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
        if inspect.iscoroutinefunction(handler):
            async def run_async(payload: dict[str, Any]) -> Any:
                busy.value = BUSY_CALLING
                try:
                    return await handler(payload)
                finally:
                    after()
            return functools.update_wrapper(run_async, handler)

        def run(payload: dict[str, Any]) -> Any:
            busy.value = BUSY_CALLING
            try:
                return handler(payload)
            finally:
                after()
        return functools.update_wrapper(run, handler)

    def handlers() -> dict[str, Callable[[dict[str, Any]], Any]]:
        return {kind: wrap(h) for kind, h in original().items()}

    worker.handlers = handlers


def _jobs_main(env: dict[str, str], busy: Synchronized[int], armed: Synchronized[int], skew_us: Synchronized[int],
               stop: Synchronized[int], interval: float, reconcile_every: float, once: bool, log_path: str) -> None:
    """The job worker: what cron_jobs and cron_reconcile_livekit run, every `interval` seconds, on
    the functions' clock (skewed as theirs)."""
    _redirect_output(log_path)
    os.environ.update(env)
    import time_machine

    from shared import jobs, rooms, worker

    _wrap_handlers(busy, armed)
    next_reconcile = 0.0
    while not stop.value:
        skew = skew_us.value / 1e6
        travel = (time_machine.travel(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=skew), tick=True) if skew
                  else contextlib.nullcontext())
        with travel:
            try:
                jobs.run("cron_jobs", lambda: worker.run_all(limit=50))
            except Exception as exc:
                print(f"cron_jobs failed: {exc!r}", flush=True)
            if time.monotonic() >= next_reconcile:
                next_reconcile = time.monotonic() + reconcile_every
                try:
                    jobs.run("cron_reconcile_livekit", lambda: rooms.reconcile())
                except Exception as exc:
                    print(f"cron_reconcile_livekit failed: {exc!r}", flush=True)
        if once:
            return
        deadline = time.monotonic() + interval
        while not stop.value and time.monotonic() < deadline:
            time.sleep(0.05)


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------

CHECK_EVERY_S = 5.0
SAMPLE_EVERY_S = 1.0
DRAIN_MAX_S = 45.0
WORKER_GRACE_S = 30.0


@dataclass
class _CallCounter:
    """Counts the rows the workers append to calls/*.csv (for the progress bar and dbstats)."""

    run_dir: Path
    calls: int = 0
    errors: int = 0
    _offsets: dict[Path, int] = field(default_factory=dict)

    def poll(self) -> None:
        for path in sorted((self.run_dir / "calls").glob("*.csv")):
            offset = self._offsets.get(path, 0)
            with path.open("rb") as f:
                f.seek(offset)
                chunk = f.read()
            end = chunk.rfind(b"\n")
            if end < 0:
                continue
            self._offsets[path] = offset + end + 1
            for line in chunk[:end].split(b"\n"):
                if not line or line.startswith(b"t,"):
                    continue
                self.calls += 1
                if not line.rstrip(b"\r").endswith(b","):
                    self.errors += 1


class _Stopped(Exception):
    pass


class Run:
    """One run's resources, released in reverse order by `close()` whatever happened."""

    def __init__(self, run: RunSpec, run_dir: Path, *, yes: bool = False, log: Callable[[str], None] = print):
        self.run = run
        self.run_dir = run_dir
        self.yes = yes
        self.log = log
        self.ctx = multiprocessing.get_context("spawn")
        self.stack = contextlib.ExitStack()
        self.embedded: EmbeddedPostgres | None = None
        self.url = ""
        self.env: dict[str, str] = {}
        self.functions_port = 0
        self.functions: SpawnProcess | None = None
        self.jobs: SpawnProcess | None = None
        self.workers: list[SpawnProcess] = []
        self.busy: Synchronized[int] = self.ctx.Value("i", 0)
        self.armed: Synchronized[int] = self.ctx.Value("i", 0)
        self.skew_us: Synchronized[int] = self.ctx.Value("q", 0)
        self.jobs_stop: Synchronized[int] = self.ctx.Value("i", 0)
        self.started_at = 0.0
        self.fault_log: metrics.FaultLog | None = None
        self.sample_log: metrics.SampleLog | None = None
        self.conn: psycopg.Connection[Any] | None = None
        self.counter = _CallCounter(run_dir)
        self.violations: list[Any] = []
        self.scaled: dict[str, tuple[Any, Any]] = {}
        self.skews: list[float] = []
        self.restarting: threading.Thread | None = None
        self.interrupted = False
        self.logs = run_dir / "logs"

    # -- the database ------------------------------------------------------------------------
    def open_database(self) -> None:
        from shared.dev.migrate import migrate, recreate_database

        migrate_log = (self.logs / "migrate.log").open("a")
        self.stack.callback(migrate_log.close)
        if self.run.database_url is None:
            from shared.dev.embedded import EmbeddedPostgres

            home = Path(tempfile.mkdtemp(prefix="autodoctor-sim-"))
            self.stack.callback(shutil.rmtree, home, True)
            self.embedded = EmbeddedPostgres(home=home, port=_free_port(), fast=True,
                                             extra_options="-c shared_preload_libraries=pg_stat_statements")
            self.stack.callback(self._stop_embedded)
            self.embedded.start()
            recreate_database(self.embedded.url(), SIM_DATABASE)
            self.url = self.embedded.url(SIM_DATABASE)
        else:
            self.url = self.run.database_url
            foreign = foreign_users(self.url)
            if foreign and not self.yes:
                raise RunError(f"the database holds {foreign} user(s) the simulator did not make; a run adds "
                               "thousands of users, payments and sessions to it and its checks read every row: "
                               "give it a database of its own, or pass --yes")
        migrate(self.url, log=lambda m: print(m, file=migrate_log))
        with psycopg.connect(self.url, autocommit=True) as conn:
            with contextlib.suppress(psycopg.Error):  # only where the library is preloaded
                conn.execute("create extension if not exists pg_stat_statements with schema extensions")
            self.scaled = scale_time_settings(conn, self.run.speed)

    def _stop_embedded(self) -> None:
        if self.embedded is not None:
            with contextlib.suppress(Exception):
                self.embedded.stop()

    def connection(self) -> psycopg.Connection[Any]:
        """The orchestrator's own connection (samples, checks), opened again after a restart."""
        if self.conn is None or self.conn.closed or self.conn.broken:
            if self.conn is not None:
                with contextlib.suppress(Exception):
                    self.conn.close()
            self.conn = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
        return self.conn

    # -- child processes -----------------------------------------------------------------------
    def _process(self, target: Callable[..., None], args: tuple[Any, ...], name: str) -> SpawnProcess:
        proc = self.ctx.Process(target=target, args=args, name=name, daemon=False)
        proc.start()
        return proc

    @staticmethod
    def _end(proc: SpawnProcess | None, timeout: float = 5.0) -> None:
        if proc is None or proc.pid is None:
            return
        if proc.is_alive():
            proc.terminate()
            proc.join(timeout)
        if proc.is_alive():
            proc.kill()
            proc.join(timeout)

    def start_functions(self, skew_s: float) -> None:
        """Starts the functions server with its clock off by `skew_s`; a server already running is
        stopped once the new one listens on the same port (SO_REUSEPORT)."""
        old = self.functions
        ready = self.ctx.Event()
        proc = self._process(_functions_main, (self.functions_port, self.env, skew_s,
                                               str(self.logs / "functions.log"), ready), "sim-functions")
        deadline = time.monotonic() + 90
        while not ready.wait(0.1):
            if not proc.is_alive():
                raise RunError(f"the functions server exited (log: {self.logs / 'functions.log'})")
            if time.monotonic() > deadline:
                self._end(proc)
                raise RunError(f"the functions server did not start in 90 s (log: {self.logs / 'functions.log'})")
        self.functions = proc
        self._end(old)
        if old is None:
            base = f"http://127.0.0.1:{self.functions_port}"
            while True:
                try:
                    with urllib.request.urlopen(f"{base}/health", timeout=5):  # noqa: S310 - our own local server
                        return
                except OSError:
                    if time.monotonic() > deadline:
                        raise RunError(f"the functions server did not answer /health (log: "
                                       f"{self.logs / 'functions.log'})") from None
                    time.sleep(0.1)

    def _jobs_interval(self) -> tuple[float, float]:
        """(seconds between job worker runs, between reconcile runs): every minute and every two
        minutes of simulated time, as Cloud Scheduler calls them, but at most every 0.5 s and at
        least every 5 s of real time."""
        return (min(5.0, max(0.5, 60.0 / self.run.speed)), min(10.0, max(1.0, 120.0 / self.run.speed)))

    def start_jobs(self, once: bool = False) -> SpawnProcess:
        self.busy.value = BUSY_IDLE
        self.jobs_stop.value = 0
        interval, reconcile_every = self._jobs_interval()
        return self._process(_jobs_main, (self.env, self.busy, self.armed, self.skew_us, self.jobs_stop, interval,
                                          reconcile_every, once, str(self.logs / "jobs.log")), "sim-jobs")

    def stop_jobs(self) -> None:
        if self.jobs is not None:
            self.jobs_stop.value = 1
            self.jobs.join(15)
            self._end(self.jobs)
            self.jobs = None

    def close(self) -> None:
        (self.run_dir / "STOP").touch()
        if self.restarting is not None:
            self.restarting.join(90)
        for proc in self.workers:
            self._end(proc)
        self.jobs_stop.value = 1
        self._end(self.jobs, 2)
        self._end(self.functions)
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
        self.stack.close()

    # -- records --------------------------------------------------------------------------------
    def t(self) -> float:
        return time.time() - self.started_at

    def fault(self, name: str, detail: str) -> None:
        assert self.fault_log is not None
        self.fault_log.add(metrics.FaultEvent(self.t(), name, detail))


def _check_results_json(results: list[Any]) -> list[dict[str, Any]]:
    return [{"name": r.name, "description": r.description, "count": r.count, "evidence": r.evidence}
            for r in results]


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, default=str) + "\n")


# The tables whose rows end in a status, counted by status at the end of the run (run.json "outcomes").
OUTCOME_TABLES = ("public.session_requests", "public.sessions", "public.bookings", "public.payments",
                  "public.refunds", "public.payouts", "private.outbox")


def outcomes(conn: psycopg.Connection[Any]) -> dict[str, dict[str, int]]:
    """table → status → rows, for OUTCOME_TABLES (a table without a status column is left out)."""
    out: dict[str, dict[str, int]] = {}
    for table in OUTCOME_TABLES:
        schema, name = table.split(".")
        has = conn.execute("select 1 from information_schema.columns where table_schema = %s and table_name = %s"
                           " and column_name = 'status'", (schema, name)).fetchone()
        if has:
            rows = conn.execute(f"select status::text, count(*) from {table} group by 1 order by 1").fetchall()
            out[table] = {str(k): int(v) for k, v in rows}
    return out


def _due_jobs(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("select count(*) from private.outbox where (status = 'pending' and next_attempt_at <= now())"
                       " or (status = 'processing' and locked_until <= now())").fetchone()
    return int(row[0]) if row else 0


def _progress(run: RunSpec) -> Any:
    import importlib

    tqdm: Any = importlib.import_module("tqdm").tqdm  # the package ships no annotations
    return tqdm(total=round(run.duration_s), unit="sim s", disable=not run.progress, dynamic_ncols=True,
                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} simulated s [{elapsed}<{remaining}{postfix}]")


def simulate(run: RunSpec, *, yes: bool = False) -> int:
    """One run, start to end (module docstring); returns the exit status: 0, or 1 on an invariant
    violation. `yes`: run on a --database-url that holds users the simulator did not make."""
    validate(run)
    run_dir = Path(run.out_dir)
    if run_dir.exists() and any(run_dir.iterdir()):
        raise RunError(f"{run_dir} is not empty: give --out a new folder")
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    state = Run(run, run_dir, yes=yes)

    def interrupt(signum: int, frame: Any) -> None:
        state.interrupted = True
        raise KeyboardInterrupt

    previous: dict[int, Any] = {}
    with contextlib.suppress(ValueError):  # only the main thread may set a handler
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, interrupt)
    try:
        status = _simulate(state)
        if state.interrupted:  # a KeyboardInterrupt some library call swallowed
            raise KeyboardInterrupt
        return status
    except KeyboardInterrupt:
        print("interrupted: stopping every process", file=sys.stderr)
        return 130
    finally:
        if previous:  # a second Ctrl-C does not leave processes or the embedded server behind
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        state.close()
        for number, handler in previous.items():
            signal.signal(number, handler)


def _simulate(s: Run) -> int:
    from shared.dev.schedules import Scheduler
    from shared.dev.sim import city, invariants, probes, report
    from shared.dev.stubs import LiveKitStub, ResendStub, StripeStub, WebhookFaults

    run, run_dir = s.run, s.run_dir
    began = time.time()
    plan = faultplan.schedule(run)

    def say(message: str) -> None:
        if run.progress:
            print(message, file=sys.stderr)

    say(f"simulate: {run.mechanics} mechanics, {run.customers} customers, rate {run.rate:g}, "
        f"{run.duration_s:g} simulated s at {run.speed:g}× ({run.real_duration_s:.0f} s), "
        f"faults: {', '.join(run.faults) or 'none'}")

    # 1–2. the database, migrated, its time settings scaled
    s.open_database()
    say(f"database ready ({len(s.scaled)} time settings scaled by {run.speed:g})")
    # 3. the city
    the_city = city.seed(s.url, run)
    say(f"seeded {len(the_city.mechanic_ids)} mechanics, {len(the_city.customer_ids)} customers")

    # 4. the provider stubs
    s.functions_port = _free_port()
    functions_url = f"http://127.0.0.1:{s.functions_port}"
    webhook_faults = (WebhookFaults(duplicate=faultplan.WEBHOOK_DUPLICATE, reorder=faultplan.WEBHOOK_REORDER,
                                    drop=faultplan.WEBHOOK_DROP, seed=run.seed)
                      if "webhooks" in run.faults else None)
    stripe_secret = "whsec_sim" + secrets.token_hex(16)
    livekit_key, livekit_secret = "APIsim" + secrets.token_hex(4), secrets.token_hex(32)
    stripe = StripeStub(f"{functions_url}/stripe_webhook", stripe_secret, faults=webhook_faults)
    s.stack.callback(stripe.close)
    livekit = LiveKitStub(f"{functions_url}/livekit_webhook", livekit_key, livekit_secret, faults=webhook_faults)
    s.stack.callback(livekit.close)
    resend = ResendStub()
    s.stack.callback(resend.close)
    jwt_secret = secrets.token_urlsafe(48)
    s.env = {
        "DATABASE_URL": s.url, "SUPABASE_JWT_SECRET": jwt_secret, "CRON_SECRET": secrets.token_urlsafe(32),
        "STRIPE_SECRET_KEY": "sk_test_sim" + secrets.token_hex(12), "STRIPE_API_BASE": stripe.url,
        "STRIPE_WEBHOOK_SECRET": stripe_secret, "LIVEKIT_URL": livekit.ws_url, "LIVEKIT_API_KEY": livekit_key,
        "LIVEKIT_API_SECRET": livekit_secret, "RESEND_API_KEY": "re_sim" + secrets.token_hex(12),
        "RESEND_API_BASE": resend.url, "EMAIL_FROM": "Auto Doctor <no-reply@sim.autodoctor.test>",
        "SUPPORT_EMAIL": "support@sim.autodoctor.test",
    }

    # 5. the functions, on the skewed clock when clock_skew is on
    first_skew = next((p.skew_s for p in plan if p.fault == "clock_skew"), 0.0)
    s.start_functions(first_skew)
    say(f"functions at {functions_url}")
    dbstats_begin = probes.db_stats_begin(s.connection())

    # t = 0
    s.started_at = time.time()
    s.fault_log = metrics.FaultLog(run_dir)
    s.stack.callback(s.fault_log.close)
    s.sample_log = metrics.SampleLog(run_dir)
    s.stack.callback(s.sample_log.close)
    started_dt = dt.datetime.fromtimestamp(s.started_at, dt.UTC)

    # 6. the schedules: the SQL rows on the simulated clock (a `* * * * *` row runs every simulated
    # minute), and the job worker in its own process
    sim_clock_origin = dt.datetime.now(dt.UTC)
    mono0 = time.monotonic()

    def sim_clock() -> dt.datetime:
        return sim_clock_origin + dt.timedelta(seconds=(time.monotonic() - mono0) * run.speed)

    schedules_log: IO[str] = (s.logs / "schedules.log").open("a", buffering=1)
    s.stack.callback(schedules_log.close)
    scheduler = Scheduler(s.url, None, python_jobs=[], reload=15.0, tick=min(1.0, max(0.05, 15.0 / run.speed)),
                          clock=sim_clock, log=lambda m: print(f"{time.time() - s.started_at:.3f} {m}",
                                                               file=schedules_log))
    scheduler.start()
    s.stack.callback(scheduler.stop, 10.0)
    s.skew_us.value = round(first_skew * 1e6)
    s.jobs = s.start_jobs()

    # 7. the actors
    for i in range(run.workers):
        spec = WorkerSpec(index=i, run=run, run_dir=str(run_dir), database_url=s.url, functions_url=functions_url,
                          stripe_url=stripe.url, livekit_url=livekit.url, jwt_secret=jwt_secret,
                          started_at=s.started_at, mechanic_ids=the_city.mechanic_ids[i::run.workers],
                          customer_ids=the_city.customer_ids[i::run.workers])
        s.workers.append(s._process(_actor_main, (spec, str(s.logs / f"worker-{i}.log")), f"sim-worker-{i}"))

    # 8–9. sampling, checks and faults until the end (or a violation)
    exit_status = _main_loop(s, plan, stripe, livekit, resend, started_dt, probes, invariants)

    # 10. the end
    (run_dir / "STOP").touch()
    for proc in s.workers:
        proc.join(max(1.0, s.started_at + run.real_duration_s + WORKER_GRACE_S - time.time()))
        if proc.is_alive():
            s.fault_log.add(metrics.FaultEvent(s.t(), "run", f"{proc.name} did not stop; terminated"))
            s._end(proc)
    ended_at = time.time()
    s.counter.poll()
    if exit_status == 0:
        say("draining: webhooks in flight, due jobs")
        drained = _drain(s, stripe, livekit)
        scheduler.stop(30.0)
        s.stop_jobs()
        _final_sweep(s, scheduler)
        results = _final_checks(s, invariants, started_dt)
        violated = [r for r in results if r.count]
        _write_json(run_dir / "invariants.json", _check_results_json(results))
        if violated:
            exit_status = 1
            _print_violations(violated)
    else:
        drained = False
        scheduler.stop(5.0)
        s.stop_jobs()
    conn = s.connection()
    metrics.write_requests(run_dir, probes.request_timings(conn, s.started_at))
    _write_json(run_dir / "dbstats.json", probes.db_stats_end(conn, dbstats_begin, s.counter.calls))
    _write_json(run_dir / "run.json", {
        "options": run.to_json(), "started_at": s.started_at, "ended_at": ended_at,
        "real_duration_s": ended_at - s.started_at, "exit_status": exit_status, "drained": drained,
        "cpu_count": os.cpu_count(), "setup_s": round(s.started_at - began, 3),
        "drain_and_checks_s": round(time.time() - ended_at, 3),
        "calls": s.counter.calls, "errors": s.counter.errors,
        "database": "embedded" if s.embedded is not None else "given",
        "scaled_settings": {k: {"before": b, "after": a} for k, (b, a) in s.scaled.items()},
        "clock_skews_s": s.skews, "fault_plan": [vars(p) for p in plan],
        "outcomes": _retry(lambda: outcomes(s.connection())),
        "stubs": {"stripe": stripe.stats(), "livekit": livekit.stats(), "resend": resend.stats()},
        "schedules_skipped": dict(scheduler.skipped),
    })
    summary = report.write(run_dir)
    print(f"report: {run_dir / 'index.html'}  ({summary.get('calls', s.counter.calls)} calls, "
          f"{'invariants hold' if exit_status == 0 else 'INVARIANT VIOLATED'})")
    return exit_status


def _actor_main(spec: WorkerSpec, log_path: str) -> None:
    _redirect_output(log_path)
    from shared.dev.sim import actors

    try:
        actors.worker_main(spec)
    except BaseException:
        traceback.print_exc()
        raise


def _retry(fn: Callable[[], Any], attempts: int = 5) -> Any:
    """`fn` again after a connection error (a database restarting), up to `attempts` times."""
    for attempt in range(attempts):
        try:
            return fn()
        except psycopg.OperationalError:
            if attempt == attempts - 1:
                raise
            time.sleep(1.0)
    raise AssertionError("unreachable")


def _final_checks(s: Run, invariants: Any, started_dt: dt.datetime) -> list[Any]:
    """The final checks; run again (up to 5 times) when the connection broke under them."""
    last: list[Any] | None = None
    for _ in range(5):
        try:
            conn = s.connection()
            last = invariants.check_all(conn, invariants.CheckContext(started_at=started_dt, final=True))
        except psycopg.OperationalError:
            time.sleep(1.0)
            continue
        if not (conn.broken or conn.closed):
            return last
        time.sleep(1.0)
    if last is None:
        raise RunError("the database did not answer the final checks")
    return last


def _print_violations(violated: list[Any]) -> None:
    for r in violated:
        print(f"INVARIANT VIOLATED: {r.name} ({r.count}): {r.description}", file=sys.stderr)
        for row in r.evidence:
            print(f"  {json.dumps(row, default=str)}", file=sys.stderr)


def _main_loop(s: Run, plan: list[faultplan.Planned], stripe: Any, livekit: Any, resend: Any,
               started_dt: dt.datetime, probes: Any, invariants: Any) -> int:
    run, run_dir = s.run, s.run_dir
    assert s.sample_log is not None
    pending = list(plan)
    kill_deadline: float | None = None
    next_sample = 0.0
    checker = _Checker(s, started_dt, invariants)
    checker.start()
    last_calls, last_calls_t = 0, 0.0
    bar = _progress(run)
    try:
        while True:
            if s.interrupted:
                raise KeyboardInterrupt
            t = s.t()
            if t >= run.real_duration_s or (run_dir / "STOP").exists():
                break
            if s.workers and not any(p.is_alive() for p in s.workers):
                s.fault("run", "every worker process ended before the run's end")
                break
            # faults due
            while pending and pending[0].at <= t:
                kill_deadline = _apply_fault(s, pending.pop(0), stripe, livekit, resend) or kill_deadline
            if kill_deadline is not None:
                kill_deadline = _maybe_kill(s, kill_deadline)
            if s.jobs is not None and not s.jobs.is_alive() and s.armed.value == 0:
                s.fault("run", f"job worker exited with {s.jobs.exitcode}; started again")
                s.jobs = s.start_jobs()
            # samples
            if t >= next_sample:
                next_sample = t + SAMPLE_EVERY_S
                with contextlib.suppress(psycopg.Error):
                    for metric, value in probes.sample(s.connection()).items():
                        s.sample_log.add(metrics.Sample(t, metric, value))
                s.sample_log.add(metrics.Sample(t, "stubs:in_flight", stripe.in_flight() + livekit.in_flight()))
                s.counter.poll()
                rate = (s.counter.calls - last_calls) / max(1e-3, t - last_calls_t)
                last_calls, last_calls_t = s.counter.calls, t
                bar.n = min(round(t * run.speed), bar.total)
                bar.set_postfix_str(f"{rate:.0f} calls/s, {s.counter.errors} errors, "
                                    f"{len(s.violations)} violations", refresh=True)
            # checks (their own thread and connection, so that sampling keeps its second)
            if checker.violated is not None:
                violated = [r for r in checker.violated if r.count]
                s.violations = violated
                (run_dir / "STOP").write_text("\n".join(f"{r.name}: {r.count}" for r in violated) + "\n")
                _write_json(run_dir / "invariants.json", _check_results_json(checker.violated))
                bar.close()
                _print_violations(violated)
                return 1
            time.sleep(0.02 if s.armed.value else 0.1)
        bar.n = min(round(s.t() * run.speed), bar.total)
        bar.refresh()
    finally:
        checker.stop()
        bar.close()
    return 0


class _Checker(threading.Thread):
    """Every CHECK_EVERY_S, every invariant on a connection of its own; `violated` is set to the
    results of the first check that found a violation."""

    def __init__(self, s: Run, started_dt: dt.datetime, invariants: Any):
        super().__init__(name="sim-checks", daemon=True)
        self.s = s
        self.started_dt = started_dt
        self.invariants = invariants
        self.violated: list[Any] | None = None
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(60)

    def run(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        sample_log = self.s.sample_log
        assert sample_log is not None
        try:
            while not self._stop_event.wait(CHECK_EVERY_S):
                try:
                    if conn is None or conn.closed or conn.broken:
                        conn = psycopg.connect(self.s.url, autocommit=True, connect_timeout=5)
                    results = self.invariants.check_all(conn, self.invariants.CheckContext(
                        started_at=self.started_dt, final=False))
                except psycopg.OperationalError:
                    continue  # the database is restarting; the next check runs
                if conn.broken or conn.closed:
                    continue  # the connection went away during the checks (count -1): not a finding
                for r in results:
                    sample_log.add(metrics.Sample(self.s.t(), f"invariant:{r.name}", r.count))
                if any(r.count for r in results):  # a violation, or a check that failed on a live connection
                    self.violated = results
                    return
        finally:
            if conn is not None:
                conn.close()


def _apply_fault(s: Run, p: faultplan.Planned, stripe: Any, livekit: Any, resend: Any) -> float | None:
    """Does one planned fault action; returns the kill deadline when it arms worker_kill."""
    if p.fault == "webhooks":
        s.fault("webhooks", f"start (to the run's end): duplicate {faultplan.WEBHOOK_DUPLICATE:g}, "
                            f"reorder {faultplan.WEBHOOK_REORDER:g}, drop {faultplan.WEBHOOK_DROP:g} per event "
                            "(Stripe and LiveKit)")
    elif p.fault == "provider_outage":
        for stub in (stripe, livekit, resend):
            stub.set_outage(p.seconds, p.action)
        s.fault("provider_outage", f"Stripe, LiveKit and email answer {'500' if p.action == '500' else 'timeouts'} "
                                   f"for {p.seconds:.1f} s")
    elif p.fault == "worker_kill":
        s.armed.value = 1
        s.fault("worker_kill", "armed: the job worker is killed between a provider's answer and the job's settle")
        return faultplan.KILL_DEADLINE * s.run.real_duration_s
    elif p.fault == "db_restart":
        s.fault("db_restart", "begin")
        detail = restart_database(s.url, s.embedded)
        s.fault("db_restart", detail)
    elif p.fault == "clock_skew":
        s.skews.append(p.skew_s)
        s.skew_us.value = round(p.skew_s * 1e6)
        if s.functions is not None and s.t() > 1.0:
            s.fault("clock_skew", f"begin: functions restarting with their clock {p.skew_s * 1000:+.0f} ms off "
                                  "the database's")

            def restart() -> None:
                try:
                    s.start_functions(p.skew_s)
                    s.fault("clock_skew", "functions restarted (the new server took over the port)")
                except Exception as exc:
                    s.fault("clock_skew", f"functions restart failed: {exc}")

            s.restarting = threading.Thread(target=restart, name="sim-functions-restart", daemon=True)
            s.restarting.start()
        else:
            s.fault("clock_skew", f"functions' clock {p.skew_s * 1000:+.0f} ms off the database's")
    return None


def _maybe_kill(s: Run, deadline: float) -> float | None:
    """Kills the job worker once it waits between a provider's answer and the settle (or at the
    deadline, between jobs); starts it again. Returns the deadline while still armed."""
    assert s.jobs is not None
    mid_job = s.busy.value == BUSY_UNSETTLED
    if not mid_job and s.t() < deadline:
        return deadline
    pid = s.jobs.pid
    s.jobs.kill()
    s.jobs.join(5)
    s.armed.value = 0
    s.fault("worker_kill", f"SIGKILL job worker pid {pid} " + (
        "with a job claimed, its provider call made and not settled" if mid_job else "between jobs (none in flight)"))
    s.jobs = s.start_jobs()
    s.fault("worker_kill", "job worker started again")
    return None


def _drain(s: Run, stripe: Any, livekit: Any) -> bool:
    """Waits (at most DRAIN_MAX_S) for the stubs' webhooks in flight and the due jobs; True when drained."""
    deadline = time.monotonic() + DRAIN_MAX_S
    while time.monotonic() < deadline:
        if s.interrupted:
            raise KeyboardInterrupt
        try:
            due = _due_jobs(s.connection())
        except psycopg.OperationalError:
            due = -1
        if stripe.in_flight() == 0 and livekit.in_flight() == 0 and due == 0:
            return True
        time.sleep(0.5)
    s.fault("run", f"drain: gave up after {DRAIN_MAX_S:g} s (webhooks in flight {stripe.in_flight()}, "
                   f"{livekit.in_flight()}; due jobs {_due_jobs(s.connection())})")
    return False


def _final_sweep(s: Run, scheduler: Any) -> None:
    """Every schedule once more (the SQL rows, then the job worker and reconcile once), so that
    what became due during the drain is done before the final checks."""
    with contextlib.suppress(Exception):
        scheduler.load()
    for job in list(scheduler.jobs.values()):
        try:
            job.run()
        except Exception as exc:
            print(f"final sweep: {job.name} failed: {exc!r}", file=sys.stderr)
    s.armed.value = 0
    once = s.start_jobs(once=True)
    once.join(60)
    s._end(once)
