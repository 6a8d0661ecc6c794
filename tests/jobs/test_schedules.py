"""Schedules declared in the database (private.schedules): the declaration, pg_cron scheduling
(against a fake `cron` schema shaped like pg_cron's), and the local scheduler of `autodoctor serve`."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import psycopg
import pytest
from cronsim import CronSim

from shared.config import get_settings
from shared.dev.schedules import PythonJob, Scheduler

JOBS = ["delivery", "dispatch", "nudges", "retention", "session_timers", "sweep_requests"]
# every job runs every minute but retention, every five (docs/jobs.md#retention)
CRON = {n: "* * * * *" for n in JOBS} | {"retention": "*/5 * * * *"}

# pg_cron's objects, as far as private.sync_pg_cron() uses them (pg_cron 1.6: schedule upserts by
# job name for the current user; unschedule(job_name) raises when there is no such job).
FAKE_PG_CRON = """
create schema cron;
create table cron.job (
  jobid bigserial primary key, schedule text not null, command text not null,
  nodename text not null default 'localhost', nodeport int not null default 5432,
  database text not null default current_database(), username text not null default current_user,
  active boolean not null default true, jobname text,
  unique (jobname, username)
);
create table cron.calls (id bigserial primary key, fn text, job_name text);
create function cron.schedule(job_name text, schedule text, command text) returns bigint
language plpgsql as $$
declare v_id bigint;
begin
  insert into cron.calls (fn, job_name) values ('schedule', job_name);
  insert into cron.job (jobname, schedule, command) values (job_name, schedule, command)
  on conflict (jobname, username) do update set schedule = excluded.schedule, command = excluded.command
  returning jobid into v_id;
  return v_id;
end $$;
create function cron.unschedule(job_name text) returns boolean
language plpgsql as $$
begin
  insert into cron.calls (fn, job_name) values ('unschedule', job_name);
  delete from cron.job where jobname = job_name and username = current_user;
  if not found then raise exception 'could not find valid entry for job ''%''', job_name; end if;
  return true;
end $$;
"""


def test_the_declared_schedules(db):
    rows = db.all("select name, cron, command, description from private.schedules order by name")
    assert [r["name"] for r in rows] == JOBS
    start = dt.datetime(2026, 11, 29, 12, 0, 30, tzinfo=dt.UTC)
    for r in rows:
        due = start.replace(minute=5 if r["name"] == "retention" else 1, second=0)
        assert r["cron"] == CRON[r["name"]] and next(CronSim(r["cron"], start)) == due
        assert r["command"] == f"select private.run_job('{r['name']}')" and r["description"]
    for cron, command in (("* * * *", "select 1"), ("* * * * *", " "), ("* * * * *", "select 1; select 2")):
        assert db.error("insert into private.schedules (name, cron, command) values ('x', %s, %s)",
                        (cron, command)).sqlstate == "23514"


def test_sync_pg_cron_without_pg_cron_does_nothing(db):
    assert db.scalar("select to_regnamespace('cron')") is None
    assert db.scalar("select private.sync_pg_cron()") == {"pg_cron": False}
    db.execute("update private.schedules set cron = '*/5 * * * *' where name = 'nudges'")  # the trigger: no error


def test_sync_pg_cron_schedules_every_row_and_unschedules_ours_only(db):
    db.execute(FAKE_PG_CRON)

    def jobs() -> dict[str, tuple[str, str]]:
        return {r["jobname"]: (r["schedule"], r["command"]) for r in db.all("select * from cron.job")}

    first = db.scalar("select private.sync_pg_cron()")
    assert first == {"pg_cron": True, "scheduled": JOBS, "unscheduled": []}
    assert jobs() == {f"autodoctor.{n}": (CRON[n], f"select private.run_job('{n}')") for n in JOBS}
    ids = db.scalar("select array_agg(jobid order by jobid) from cron.job")
    # somebody else's job, and one of ours that is no longer declared
    db.execute("select cron.schedule('nightly-vacuum', '0 3 * * *', 'vacuum')")
    db.execute("select cron.schedule('autodoctor.retired', '* * * * *', 'select 1')")
    again = db.scalar("select private.sync_pg_cron()")
    assert again == {"pg_cron": True, "scheduled": JOBS, "unscheduled": ["autodoctor.retired"]}
    assert db.scalar("select array_agg(jobid order by jobid) from cron.job where jobname like 'autodoctor.%'") == ids
    assert jobs()["nightly-vacuum"] == ("0 3 * * *", "vacuum")
    # a change to the rows (a later migration) reschedules in its transaction
    db.execute("update private.schedules set cron = '*/2 * * * *' where name = 'nudges'")
    assert jobs()["autodoctor.nudges"][0] == "*/2 * * * *"
    db.execute("delete from private.schedules where name = 'dispatch'")
    assert "autodoctor.dispatch" not in jobs() and len(jobs()) == len(JOBS)  # one of ours gone, nightly-vacuum kept
    db.execute("insert into private.schedules (name, cron, command) values ('extra', '0 * * * *', 'select 1')")
    assert jobs()["autodoctor.extra"] == ("0 * * * *", "select 1")
    unscheduled = db.all("select job_name from cron.calls where fn = 'unschedule' order by id")
    assert [r["job_name"] for r in unscheduled] == ["autodoctor.retired", "autodoctor.dispatch"]


# ------------------------------------------------------------------------------------------------
# The local scheduler (autodoctor serve)
# ------------------------------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 11, 29, 12, 0, 30, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


def _wait_idle(s: Scheduler) -> None:
    for _ in range(600):
        if not s.running:
            return
        time.sleep(0.05)
    raise AssertionError(f"still running: {s.running}")


def test_scheduler_runs_the_declared_commands_on_the_minute(fresh_url):
    clock, lines = Clock(), []
    s = Scheduler(fresh_url, None, python_jobs=[], clock=clock, log=lines.append)
    s.load()
    assert sorted(s.jobs) == JOBS
    assert s.run_due() == []  # 12:00:30: the next minute has not come
    clock.now = clock.now.replace(minute=5, second=0)  # every job is due, retention included
    assert sorted(s.run_due()) == JOBS
    _wait_idle(s)
    assert s.run_due() == []  # once per minute
    with psycopg.connect(fresh_url) as conn:
        runs = conn.execute("select job, ok from private.cron_runs order by job").fetchall()
    assert runs == [("cron_delivery", True), ("cron_dispatch", True), ("cron_nudges", True), ("cron_retention", True),
                    ("cron_session_timers", True), ("cron_sweep_requests", True)]
    assert not any("failed" in line for line in lines), lines
    # each run is one line of the server's output
    assert sorted(lines) == sorted(f"schedule {n}: ok, nothing to do" for n in JOBS)
    # a row changed in the database is picked up at the next load
    with psycopg.connect(fresh_url) as conn:
        conn.execute("delete from private.schedules where name = 'nudges'")
    s.load()
    assert sorted(s.jobs) == [n for n in JOBS if n != "nudges"]


def test_scheduler_never_runs_a_job_twice_at_once(fresh_url):
    clock = Clock()
    s = Scheduler(fresh_url, None, python_jobs=[], clock=clock, log=lambda _m: None)
    s.load()
    release, calls = threading.Event(), []

    def slow() -> None:
        calls.append(1)
        release.wait(30)

    for name in JOBS:
        s.jobs[name].run = slow if name == "dispatch" else (lambda: None)
    clock.now = clock.now.replace(minute=1, second=0)
    assert "dispatch" in s.run_due()
    for _ in range(600):  # the others are done at once
        if s.running == {"dispatch"}:
            break
        time.sleep(0.05)
    clock.now = clock.now.replace(minute=2)
    assert "dispatch" not in s.run_due() and s.skipped == {"dispatch": 1}
    release.set()
    _wait_idle(s)
    clock.now = clock.now.replace(minute=3)
    assert "dispatch" in s.run_due()
    _wait_idle(s)
    assert len(calls) == 2


def test_scheduler_calls_configured_python_targets_in_process(fresh_url, monkeypatch):
    monkeypatch.setenv("CRON_SECRET", "cron-secret-0123456789")
    get_settings.cache_clear()
    calls: list[tuple[str, str | None, bytes]] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        calls.append((environ["PATH_INFO"], environ.get("HTTP_AUTHORIZATION"), body))
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"sent": 0}']

    clock = Clock()
    try:
        s = Scheduler(fresh_url, app, clock=clock, log=lambda _m: None, python_jobs=[
            PythonJob("cron_worker", "*/2 * * * *", lambda _s: True, '{"limit": 50}'),
            PythonJob("cron_unconfigured", "* * * * *", lambda _s: False),
        ])
        s.load()
        assert "cron_worker" in s.jobs and "cron_unconfigured" not in s.jobs
        clock.now = clock.now.replace(minute=1, second=0)
        assert "cron_worker" not in s.run_due()  # */2
        _wait_idle(s)
        clock.now = clock.now.replace(minute=2)
        assert "cron_worker" in s.run_due()
        _wait_idle(s)
        assert calls == [("/cron_worker", "Bearer cron-secret-0123456789", b'{"limit": 50}')]
        # without CRON_SECRET the Python jobs are not called
        monkeypatch.delenv("CRON_SECRET")
        get_settings.cache_clear()
        s.load()
        assert "cron_worker" not in s.jobs
    finally:
        get_settings.cache_clear()


def test_scheduler_thread_stops_cleanly(fresh_url):
    s = Scheduler(fresh_url, None, python_jobs=[], tick=0.05, log=lambda _m: None)
    s.start()
    time.sleep(0.3)
    assert sorted(s.jobs) == JOBS  # loaded by the thread
    started = time.monotonic()
    s.stop()
    assert s._thread is not None and not s._thread.is_alive()
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("job", ["cron_jobs", "cron_reconcile_livekit"])
def test_python_jobs_exist_as_targets(job):
    import main
    from shared.dev.schedules import PYTHON_JOBS

    assert job in [j.target for j in PYTHON_JOBS] and job in main.TARGETS
