"""The orchestrator's own parts: the options, the time settings scaled by the speed, the fault
schedule drawn from the seed, and the db_restart fault on a server the run does not own."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import psycopg
import pytest
from livekit import api as lk_api

from shared.dev.cli import build_parser, main
from shared.dev.sim import city, faults, metrics
from shared.dev.sim.run import (
    BUSY_UNSETTLED,
    SCALED_INTERVAL_ARRAYS,
    SCALED_INTERVALS,
    SCALED_MINUTES,
    SCALED_RATES,
    Run,
    RunError,
    _maybe_kill,
    foreign_users,
    parse_duration,
    restart_database,
    scale_time_settings,
    simulate,
)
from shared.dev.sim.spec import FAULTS, RunSpec


def _spec(**kw: object) -> RunSpec:
    base: dict[str, object] = {"mechanics": 50, "customers": 300, "rate": 0.1, "duration_s": 7200.0,
                               "speed": 120.0, "seed": 7, "faults": list(FAULTS)}
    base.update(kw)
    return RunSpec(**base)  # type: ignore[arg-type]


# -- options ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "seconds"), [("2h", 7200), ("90m", 5400), ("600s", 600), ("600", 600),
                                               ("1h30m", 5400), ("0.5h", 1800)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "2 hours", "h", "-5m", "0s", "2d", "1h-30m"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(("argv", "message"), [
    (["--duration", "2 hours"], "invalid duration"),
    (["--duration", "0m"], "must be more than 0"),
    (["--faults", "webhooks,meteor"], "unknown fault meteor"),
    (["--rate", "0"], "--rate: 0 is out of range"),
    (["--rate", "-1"], "--rate: -1 is out of range"),
    (["--rate", "fast"], "invalid float"),
    (["--speed", "0.5"], "--speed: 0.5 is out of range"),
    (["--workers", "0"], "--workers: 0 is out of range"),
    (["--mechanics", "0"], "--mechanics: 0 is out of range"),
])
def test_bad_options_exit_2_with_a_message(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["simulate", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "usage: autodoctor simulate" in err


def test_options_parse() -> None:
    args = build_parser().parse_args(["simulate", "--mechanics", "50", "--customers", "300", "--rate", "0.2",
                                      "--duration", "2h", "--speed", "60", "--seed", "7", "--faults",
                                      "db_restart,webhooks", "--workers", "3", "--no-progress", "--out", "x"])
    assert (args.mechanics, args.customers, args.rate, args.duration, args.speed, args.seed, args.workers) == (
        50, 300, 0.2, 7200.0, 60.0, 7, 3)
    assert args.faults == ["webhooks", "db_restart"]  # spec.FAULTS order
    assert args.progress is False and args.out == "x" and args.database_url is None
    every = build_parser().parse_args(["simulate", "--faults", "all"])
    assert every.faults == list(FAULTS)
    none = build_parser().parse_args(["simulate"])
    assert (none.faults, none.speed, none.seed, none.workers, none.rate) == ([], 1.0, 1, 2, 1.0)


def test_database_url_is_never_taken_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    assert build_parser().parse_args(["simulate"]).database_url is None


# -- time compression ---------------------------------------------------------------------------

def _settings(conn: psycopg.Connection) -> dict[str, object]:
    return dict(conn.execute("select key, value from private.settings").fetchall())


def test_time_settings_are_divided_by_the_speed_and_nothing_else_changes(fresh_url: str) -> None:
    with psycopg.connect(fresh_url, autocommit=True) as conn:
        before = _settings(conn)
        kinds_before = {k: (b, m, lease) for k, b, m, lease in conn.execute(
            "select kind, base_backoff, max_backoff, lease from private.job_kinds").fetchall()}
        assert scale_time_settings(conn, 1) == {}
        assert _settings(conn) == before
        changed = scale_time_settings(conn, 60)
        after = _settings(conn)

        def secs(key: str) -> float:
            value = conn.execute("select extract(epoch from private.setting_interval(%s))", (key,)).fetchone()
            assert value is not None
            return float(value[0])

        def secs_of(text: object) -> float:
            row = conn.execute("select extract(epoch from %s::interval)", (text,)).fetchone()
            assert row is not None
            return float(row[0])

        assert set(changed) == {*SCALED_INTERVALS, *SCALED_INTERVAL_ARRAYS, *SCALED_MINUTES, *SCALED_RATES}
        for key in SCALED_INTERVALS:
            assert secs(key) == pytest.approx(secs_of(before[key]) / 60, abs=1e-3), key
        assert secs("requests.unattended_after") == pytest.approx(5.0)  # 5 minutes → 5 s
        assert secs("requests.expire_after") == pytest.approx(120.0)
        leads = after["scheduling.reminder_leads"]
        assert isinstance(leads, list)
        assert [secs_of(v) for v in leads] == [pytest.approx(1440.0), pytest.approx(60.0)]  # 24 h, 1 h
        assert after["trust.min_delivered_minutes"] == 0
        assert after["rate_limit.request.refill_per_minute"] == pytest.approx(
            float(before["rate_limit.request.refill_per_minute"]) * 60)  # type: ignore[arg-type]
        # the typed readers still read every scaled value
        assert conn.execute("select private.setting_int('trust.min_delivered_minutes')").fetchone() == (0,)
        untouched = {k: v for k, v in before.items() if k not in changed}
        assert "payments.checkout_expires_after" in untouched and "scheduling.slot_step" in untouched
        assert {k: after[k] for k in untouched} == untouched
        for kind, base, most, lease in conn.execute(
                "select kind, base_backoff, max_backoff, lease from private.job_kinds").fetchall():
            b, m, old_lease = kinds_before[kind]
            assert base == b / 60
            assert most == (None if m is None else m / 60)
            assert lease == max(old_lease / 60, dt.timedelta(seconds=15))
        # a second run on the same database scales the originals, not the values already divided
        again = scale_time_settings(conn, 30)
        assert secs("requests.unattended_after") == pytest.approx(10.0)
        assert {k: b for k, (b, _) in again.items()} == {k: before[k] for k in changed}
        assert conn.execute("select base_backoff from private.job_kinds where kind = 'stripe.refund'").fetchone() == (
            kinds_before["stripe.refund"][0] / 30,)
        # and a run at speed 1 puts every original back
        assert scale_time_settings(conn, 1) == {}
        assert _settings(conn) == before
        assert {k: (b, m, lease) for k, b, m, lease in conn.execute(
            "select kind, base_backoff, max_backoff, lease from private.job_kinds").fetchall()} == kinds_before


# -- the fault schedule ---------------------------------------------------------------------------

def test_the_fault_schedule_is_a_function_of_the_seed() -> None:
    plan = faults.schedule(_spec())
    assert plan == faults.schedule(_spec())
    assert plan != faults.schedule(_spec(seed=8))
    assert {p.fault for p in plan} == set(FAULTS)
    assert [p.at for p in plan] == sorted(p.at for p in plan)
    total = _spec().real_duration_s
    for p in plan:
        assert 0 <= p.at and p.at + p.seconds <= 0.85 * total, p
    outage = [p for p in plan if p.fault == "provider_outage"]
    assert [p.action for p in outage] == ["500", "timeout"]
    assert 0.05 * total <= sum(p.seconds for p in outage) <= 0.15 * total
    skews = [p.skew_s for p in plan if p.fault == "clock_skew"]
    assert len(skews) == 2 and skews[0] * skews[1] < 0
    assert all(faults.MIN_SKEW_S <= abs(s) <= faults.MAX_SKEW_S for s in skews)
    # one fault's times do not depend on which other faults are on
    alone = faults.schedule(_spec(faults=["db_restart"]))
    assert alone == [p for p in plan if p.fault == "db_restart"]
    assert faults.schedule(_spec(faults=[])) == []
    # the schedule scales with the real duration
    longer = faults.schedule(dataclasses.replace(_spec(), speed=60.0))
    assert [p.at * 0.5 for p in longer] == pytest.approx([p.at for p in plan])


def test_fault_lists_parse() -> None:
    assert faults.parse("all") == list(FAULTS)
    assert faults.parse("none") == []
    assert faults.parse(" clock_skew , webhooks ") == ["webhooks", "clock_skew"]
    with pytest.raises(faults.FaultError, match="unknown fault nope"):
        faults.parse("webhooks,nope")


# -- db_restart on a server the run does not own ------------------------------------------------------

def test_db_restart_terminates_the_runs_connections_and_the_next_one_works(fresh_url: str) -> None:
    conns = [psycopg.connect(fresh_url, autocommit=True) for _ in range(3)]
    try:
        for c in conns:
            assert c.execute("select 1").fetchone() == (1,)
        detail = restart_database(fresh_url, None)
        assert detail == "terminated 3 connection(s) to the run's database"
        for c in conns:
            with pytest.raises(psycopg.OperationalError):
                c.execute("select 1")
        with psycopg.connect(fresh_url, autocommit=True) as again:
            assert again.execute("select 1").fetchone() == (1,)
    finally:
        for c in conns:
            c.close()


# -- worker_kill: the job worker killed between a provider's answer and the settle ---------------------

class _LiveKit(BaseHTTPRequestHandler):
    """LiveKit's room service, enough for one delete: answers DeleteRoom, counts the calls."""

    deletes: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        method = self.path.rsplit("/", 1)[-1]
        if method == "DeleteRoom":
            self.deletes.append(lk_api.DeleteRoomRequest.FromString(body).room)
            out = lk_api.DeleteRoomResponse().SerializeToString()
        elif method == "ListRooms":
            out = lk_api.ListRoomsResponse().SerializeToString()
        else:
            out = b""
        self.send_response(200)
        self.send_header("Content-Type", "application/protobuf")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args: object) -> None:
        pass


def _wait(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_the_killed_job_worker_leaves_its_job_claimed_and_the_restarted_one_settles_it(
        fresh_url: str, tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _LiveKit)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _LiveKit.deletes.clear()
    with psycopg.connect(fresh_url, autocommit=True) as conn:
        conn.execute("update private.job_kinds set lease = '2 seconds', base_backoff = '1 second'"
                     " where kind = 'livekit.delete_room'")
        job_id = conn.execute("insert into private.outbox (kind, dedupe_key, payload) values"
                              " ('livekit.delete_room', 'sim-test:room-1', '{\"room\": \"room-1\"}') returning id"
                              ).fetchone()[0]  # type: ignore[index]

        def status() -> str:
            return str(conn.execute("select status from private.outbox where id = %s", (job_id,)).fetchone()[0])  # type: ignore[index]

        state = Run(_spec(faults=["worker_kill"]), tmp_path)
        (tmp_path / "logs").mkdir()
        try:
            state.url = fresh_url
            state.env = {"DATABASE_URL": fresh_url, "LIVEKIT_URL": f"ws://127.0.0.1:{server.server_address[1]}",
                         "LIVEKIT_API_KEY": "APIsimtest", "LIVEKIT_API_SECRET": "s" * 40}
            state.started_at = time.time()
            state.fault_log = metrics.FaultLog(tmp_path)
            state.armed.value = 1
            state.jobs = state.start_jobs()
            _wait(lambda: state.busy.value == BUSY_UNSETTLED, 240, "the job worker to reach the settle")
            assert _LiveKit.deletes == ["room-1"]  # the provider did it …
            assert status() == "processing"  # … and the queue does not know
            assert _maybe_kill(state, deadline=float("inf")) is None
            assert state.armed.value == 0
            # the new worker claims the job again once its lease ran out, and settles it
            _wait(lambda: status() == "sent", 240, "the job to be sent")
            assert _LiveKit.deletes == ["room-1", "room-1"]  # at least once: the provider saw it twice
            state.fault_log.close()
            rows = [(f.fault, f.detail) for f in metrics.read_faults(tmp_path)]
            assert rows[0][0] == "worker_kill" and "its provider call made and not settled" in rows[0][1]
            assert rows[1] == ("worker_kill", "job worker started again")
        finally:
            state.close()
            server.shutdown()
            server.server_close()


# -- a database the run does not own -----------------------------------------------------------------

def _add_user(url: str, email: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at,"
                     " updated_at, email_confirmed_at) values (gen_random_uuid(), 'authenticated', 'authenticated',"
                     " %s, '{\"provider\": \"email\", \"providers\": [\"email\"]}', '{}', now(), now(), now())",
                     (email,))


def test_a_database_holding_users_the_simulator_did_not_make_is_refused(
        fresh_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert foreign_users(fresh_url) == 0
    _add_user(fresh_url, f"c1.7@{city.EMAIL_DOMAIN}")  # one of a previous run's
    assert foreign_users(fresh_url) == 0
    _add_user(fresh_url, "someone@example.com")
    assert foreign_users(fresh_url) == 1
    with psycopg.connect(fresh_url, autocommit=True) as conn:
        before = _settings(conn)
    out = tmp_path / "run"
    code = main(["simulate", "--database-url", fresh_url, "--out", str(out), "--no-progress", "--duration", "60s"])
    assert code == 2
    assert "error: the database holds 1 user(s) the simulator did not make" in capsys.readouterr().err
    with psycopg.connect(fresh_url, autocommit=True) as conn:
        assert _settings(conn) == before  # refused before anything was changed
    with pytest.raises(RunError, match="pass --yes"):
        simulate(_spec(database_url=fresh_url, out_dir=str(tmp_path / "again"), progress=False))
