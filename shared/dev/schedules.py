"""The scheduler of `autodoctor serve`: what pg_cron and Cloud Scheduler do in production, locally.

- Every row of `private.schedules` (the jobs that are SQL, which pg_cron runs on Supabase): its
  command on its own connection, when its cron expression says.
- The jobs that need Python (`PYTHON_JOBS`, which Cloud Scheduler calls in production): the target
  of the served app, called in-process with `Authorization: Bearer $CRON_SECRET`, when the
  configuration it needs is present.

One run of a job at a time: an occurrence that comes while the previous run is still going is
skipped. Times are UTC; the rows are re-read every `reload` seconds.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from cronsim import CronSim

from shared.config import Settings, get_settings

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication


@dataclass(frozen=True)
class PythonJob:
    target: str
    cron: str
    configured: Callable[[Settings], bool]
    body: str = "{}"


# The jobs that need Python (docs/jobs.md): the same schedule as Cloud Scheduler's.
PYTHON_JOBS: list[PythonJob] = [
    # The job worker: a kind whose provider is not configured (Stripe, email delivery) is left
    # waiting by the worker itself, so the worker always runs.
    PythonJob("cron_jobs", "* * * * *", lambda s: True, '{"limit": 50}'),
    PythonJob("cron_reconcile_livekit", "*/2 * * * *",
              lambda s: bool(s.livekit_api_key and s.livekit_api_secret and s.livekit_url)),
]


@dataclass
class _Job:
    name: str
    cron: str
    run: Callable[[], Any]
    next_at: dt.datetime


def _next(cron: str, after: dt.datetime) -> dt.datetime:
    return next(CronSim(cron, after.replace(second=0, microsecond=0)))


class Scheduler:
    def __init__(self, database_url: str, app: WSGIApplication | None, *,
                 python_jobs: list[PythonJob] | None = None, reload: float = 15.0, tick: float = 1.0,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
                 log: Callable[[str], None] = print):
        self.database_url = database_url
        self.app = app
        self.python_jobs = PYTHON_JOBS if python_jobs is None else python_jobs
        self.reload = reload
        self.tick = tick
        self.clock = clock
        self.log = log
        self.jobs: dict[str, _Job] = {}
        self.running: set[str] = set()
        self.skipped: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._workers: list[threading.Thread] = []

    # -- the declaration ------------------------------------------------------------------
    def load(self) -> None:
        """(Re)reads private.schedules; keeps the next time of jobs whose expression did not change."""
        now = self.clock()
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            rows = conn.execute("select name, cron, command from private.schedules order by name").fetchall()
        wanted: dict[str, tuple[str, Callable[[], Any]]] = {
            name: (cron, self._sql_runner(name, command)) for name, cron, command in rows
        }
        settings = get_settings()
        if self.app is not None and settings.cron_secret:
            for job in self.python_jobs:
                if job.configured(settings):
                    wanted[job.target] = (job.cron, self._target_runner(job, settings.cron_secret))
        with self._lock:
            for name, (cron, run) in wanted.items():
                current = self.jobs.get(name)
                if current is None or current.cron != cron:
                    self.jobs[name] = _Job(name, cron, run, _next(cron, now))
                else:
                    current.run = run
            for name in set(self.jobs) - set(wanted):
                del self.jobs[name]

    def _sql_runner(self, name: str, command: str) -> Callable[[], Any]:
        def run() -> Any:
            with psycopg.connect(self.database_url, autocommit=True) as conn:
                row = conn.execute(command).fetchone()  # a declared statement (private.schedules)
            return None if row is None else row[0]
        return run

    def _target_runner(self, job: PythonJob, secret: str) -> Callable[[], Any]:
        def run() -> Any:
            from werkzeug.test import Client

            assert self.app is not None
            response = Client(self.app).post(f"/{job.target}", data=job.body, content_type="application/json",
                                             headers={"Authorization": f"Bearer {secret}"})
            if response.status_code == 200:
                return response.get_json(silent=True)
            return f"HTTP {response.status_code}: {response.get_data(as_text=True).strip()}"
        return run

    # -- running ------------------------------------------------------------------------------
    def run_due(self) -> list[str]:
        """Starts every job whose time has come (skipping a job still running); returns their names."""
        now = self.clock()
        started: list[str] = []
        with self._lock:
            for job in self.jobs.values():
                if job.next_at > now:
                    continue
                job.next_at = _next(job.cron, now)
                if job.name in self.running:
                    self.skipped[job.name] = self.skipped.get(job.name, 0) + 1
                    self.log(f"schedule {job.name}: still running, this occurrence is skipped")
                    continue
                self.running.add(job.name)
                worker = threading.Thread(target=self._run, args=(job.name, job.run), daemon=True,
                                          name=f"schedule-{job.name}")
                self._workers = [w for w in self._workers if w.is_alive()] + [worker]
                worker.start()
                started.append(job.name)
        return started

    def _run(self, name: str, run: Callable[[], Any]) -> None:
        try:
            result = run()
            did_nothing = isinstance(result, dict) and not any(result.values())
            self.log(f"schedule {name}: " + ("ok, nothing to do" if did_nothing else f"ok {result}"))
        except Exception as exc:  # a failing job never stops the scheduler
            self.log(f"schedule {name}: failed: {exc!r}")
        finally:
            with self._lock:
                self.running.discard(name)

    def _loop(self) -> None:
        next_load = self.clock()
        while not self._stop.is_set():
            if self.clock() >= next_load:
                try:
                    self.load()
                except Exception as exc:
                    self.log(f"schedules: cannot read private.schedules: {exc!r}")
                next_load = self.clock() + dt.timedelta(seconds=self.reload)
            self.run_due()
            self._stop.wait(self.tick)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, daemon=True, name="schedules")
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stops starting runs and waits (up to `timeout`) for the runs in progress."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        for worker in list(self._workers):
            worker.join(timeout)
