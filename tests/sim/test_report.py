"""The run report: summary.json's numbers from a synthetic run folder written with the metrics writers
(latencies chosen so the nearest-rank percentiles are known exactly), the plots, the page, and a run
folder with nothing in it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shared.dev.sim import metrics, report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


FAULT_EVENTS = [
    metrics.FaultEvent(0.0, "webhooks", "on: duplicate 0.1, reorder 0.1, drop 0.05 per event"),
    metrics.FaultEvent(5.0, "clock_skew", "start: +50 ms"),
    metrics.FaultEvent(8.0, "clock_skew", "end: back in sync"),
    metrics.FaultEvent(20.0, "provider_outage", "Stripe, LiveKit and email answer 500 for 12.5 s"),
    metrics.FaultEvent(30.0, "db_restart", "begin"),
    metrics.FaultEvent(35.0, "db_restart", "server back after 5.0 s"),
    metrics.FaultEvent(40.0, "worker_kill", "armed"),
    metrics.FaultEvent(45.0, "worker_kill", "SIGKILL job worker pid 4242"),
    metrics.FaultEvent(50.0, "run", "job worker exited with -9; started again"),
]


def _calls(log: metrics.CallLog, name: str, ms_values: list[float], t0: float, errors: dict[int, str]) -> None:
    for i, ms in enumerate(ms_values):
        log.add(metrics.Call(t=t0 + i * 0.25, name=name, ms=ms, code=errors.get(i, "")))


def _run_folder(run_dir: Path, *, slow_heartbeat: bool) -> None:
    """Two workers; rpc:accept_offer 1..100 ms (p50 50, p95 95, p99 99, max 100) split across them;
    rpc:heartbeat 2..400 ms step 2 (p99 396) when slow, else 0.5..100 ms step 0.5 (p99 99);
    fn:create_checkout 10 calls of 1000..10000 ms (no target) with a timeout."""
    w0 = metrics.CallLog(run_dir, "w0")
    w1 = metrics.CallLog(run_dir, "w1")
    accept = [float(i) for i in range(1, 101)]
    _calls(w0, "rpc:accept_offer", accept[:50], 0.0, {3: "AD009", 7: "AD009"})
    _calls(w1, "rpc:accept_offer", accept[50:], 12.5, {0: "AD009"})
    step = 2.0 if slow_heartbeat else 0.5
    _calls(w1, "rpc:heartbeat", [step * (i + 1) for i in range(200)], 1.0, {10: "40001", 150: "40001"})
    _calls(w0, "fn:create_checkout", [1000.0 * (i + 1) for i in range(10)], 5.0, {9: "timeout"})
    w0.close()
    w1.close()

    samples = metrics.SampleLog(run_dir)
    for t in range(60):
        samples.add(metrics.Sample(float(t), "open_requests", float(t % 7)))
        samples.add(metrics.Sample(float(t), "job_queue", float(60 - t)))
    samples.close()

    # first offer after 0.1, 0.2 … 2.0 s (p50 1.0, p95 1.9), two never offered; 10 accepted after 1 … 10 s
    rows = [metrics.RequestTiming(f"r{i}", float(i), round(0.1 * (i + 1), 4), float(i + 1) if i < 10 else None)
            for i in range(20)]
    rows += [metrics.RequestTiming("r20", 40.0, None, None), metrics.RequestTiming("r21", 41.0, None, None)]
    metrics.write_requests(run_dir, rows)

    faults = metrics.FaultLog(run_dir)
    for event in FAULT_EVENTS:
        faults.add(event)
    faults.close()

    (run_dir / "invariants.json").write_text(json.dumps([
        {"name": "one_job_per_mechanic", "description": "No mechanic holds two jobs.", "count": 0, "evidence": []},
        {"name": "money_integrity", "description": "Every payment is accounted for.", "count": 2,
         "evidence": [{"payment_id": "pay_1", "difference_cents": 500}, {"payment_id": "pay_2", "difference_cents": -1}]},
        {"name": "emails_not_lost", "description": "Every email is sent or dead-lettered.", "count": 0, "evidence": []},
    ]))
    (run_dir / "dbstats.json").write_text(json.dumps({
        "wal_bytes": 123456, "wal_bytes_per_call": 360.5, "lock_waits": 4,
        "top_statements": [{"query": "select public.heartbeat($1)", "calls": 200, "mean_ms": 1.5, "total_ms": 300.0}],
    }))
    (run_dir / "run.json").write_text(json.dumps({
        "mechanics": 50, "customers": 300, "rate": 1.0, "duration_s": 7200.0, "speed": 60.0, "seed": 7,
        "faults": ["webhooks", "db_restart", "worker_kill"], "workers": 2, "database_url": None,
        "out_dir": "sim-report", "progress": False,
        "started_at": 1_700_000_000.0, "ended_at": 1_700_000_080.0, "exit_status": 1, "cpu_count": 4,
    }))


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The slow run's folder, reported once for the tests that only read the result."""
    run_dir = tmp_path_factory.mktemp("slow_run")
    _run_folder(run_dir, slow_heartbeat=True)
    return run_dir, report.write(run_dir)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert [report.percentile(values, p) for p in (1, 50, 95, 99, 100)] == [1.0, 50.0, 95.0, 99.0, 100.0]
    assert report.percentile([3.0, 7.0], 50) == 3.0   # rank ceil(0.5·2) = 1
    assert report.percentile([3.0, 7.0], 51) == 7.0
    assert report.percentile([4.2], 99) == 4.2
    assert report.percentile([], 50) is None


def test_fault_marks() -> None:
    marks = report.fault_marks([*FAULT_EVENTS[:-1], metrics.FaultEvent(55.0, "db_restart", "begin")])
    assert [(m.fault, m.start, m.end) for m in marks] == [
        ("webhooks", 0.0, None), ("clock_skew", 5.0, 8.0), ("provider_outage", 20.0, 32.5),
        ("db_restart", 30.0, 35.0), ("worker_kill", 40.0, None), ("worker_kill", 45.0, None),
        ("db_restart", 55.0, float("inf"))]  # never closed: to the end of the run
    assert marks[3].detail == "begin → server back after 5.0 s"


def test_summary_numbers(written: tuple[Path, dict[str, Any]]) -> None:
    run_dir, returned = written
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary == returned

    assert summary["calls"] == 310
    assert summary["duration_s"] == 80.0
    assert summary["calls_per_s"] == 3.875  # 310 calls in 80 s
    assert summary["calls_per_s_per_core"] == 0.969  # 4 cores, rounded to 3 decimals
    assert summary["run"]["mechanics"] == 50 and summary["run"]["seed"] == 7
    assert "started_at" not in summary["run"] and summary["results"]["exit_status"] == 1

    assert summary["rpcs"]["rpc:accept_offer"] == {
        "count": 100, "errors": 3, "p50_ms": 50.0, "p95_ms": 95.0, "p99_ms": 99.0, "max_ms": 100.0,
        "count_outside_faults": 47, "p99_outside_faults_ms": 80.0, "target": True}
    assert summary["rpcs"]["rpc:heartbeat"] == {
        "count": 200, "errors": 2, "p50_ms": 200.0, "p95_ms": 380.0, "p99_ms": 396.0, "max_ms": 400.0,
        "count_outside_faults": 86, "p99_outside_faults_ms": 400.0, "target": True}
    assert summary["rpcs"]["fn:create_checkout"] == {
        "count": 10, "errors": 1, "p50_ms": 5000.0, "p95_ms": 10000.0, "p99_ms": 10000.0, "max_ms": 10000.0,
        "count_outside_faults": 0, "p99_outside_faults_ms": None, "target": False}  # all inside clock_skew's window
    assert list(summary["rpcs"]) == ["rpc:heartbeat", "rpc:accept_offer", "fn:create_checkout"]  # by count

    assert summary["request_to_first_offer"] == {
        "count": 20, "p50_s": 1.0, "p95_s": 1.9, "p99_s": 2.0, "max_s": 2.0, "never": 2}
    assert summary["request_to_accept"] == {
        "count": 10, "p50_s": 5.0, "p95_s": 10.0, "p99_s": 10.0, "max_s": 10.0, "never": 12}

    assert summary["errors_by_code"] == {"AD009": 3, "40001": 2, "timeout": 1}
    assert summary["invariants"] == [{"name": "one_job_per_mechanic", "count": 0},
                                     {"name": "money_integrity", "count": 2},
                                     {"name": "emails_not_lost", "count": 0}]
    assert summary["violations"] == 2
    # a span (begin … next event, start … end, "for N s") counts once; the run's own events are apart
    assert summary["faults"] == {"webhooks": 1, "clock_skew": 1, "provider_outage": 1, "db_restart": 1,
                                 "worker_kill": 2}
    assert summary["run_events"] == [{"t": 50.0, "detail": "job worker exited with -9; started again"}]
    # outside the windows [5, 8 + 5], [20, 32.5 + 5] and [30, 35 + 5] (webhooks and worker_kill make none)
    assert summary["targets"] == {"rpc_p99_le_100ms": False, "worst_rpc": "rpc:heartbeat", "worst_p99_ms": 396.0,
                                  "rpc_p99_le_100ms_outside_faults": False,
                                  "worst_rpc_outside_faults": "rpc:heartbeat", "worst_p99_outside_faults_ms": 400.0,
                                  "first_offer_p95_le_2s": True, "invariants_clean": False}
    assert summary["db"]["wal_bytes_per_call"] == 360.5
    assert summary["db"]["top_statements"][0]["query"] == "select public.heartbeat($1)"
    assert summary["missing"] == []


def test_p99_outside_fault_windows(tmp_path: Path) -> None:
    # 50 fast calls in calm time, slow ones inside a provider outage and within 5 s after the database
    # came back, and one at 60 ms in calm time (the webhook faults last the whole run: no window)
    log = metrics.CallLog(tmp_path, "w0")
    for i in range(50):
        log.add(metrics.Call(t=100.0 + i * 0.5, name="rpc:heartbeat", ms=4.0, code=""))
    for i in range(20):
        log.add(metrics.Call(t=20.0 + i * 0.5, name="rpc:heartbeat", ms=900.0, code="timeout"))
    log.add(metrics.Call(t=64.9, name="rpc:heartbeat", ms=700.0, code=""))     # 4.9 s after the restart
    log.add(metrics.Call(t=65.1, name="rpc:heartbeat", ms=60.0, code=""))      # 5.1 s after: counted
    log.close()
    faults = metrics.FaultLog(tmp_path)
    for event in (metrics.FaultEvent(0.0, "webhooks", "start (to the run's end): duplicate 0.1"),
                  metrics.FaultEvent(20.0, "provider_outage", "Stripe, LiveKit and email answer 500 for 10 s"),
                  metrics.FaultEvent(59.0, "db_restart", "begin"),
                  metrics.FaultEvent(60.0, "db_restart", "embedded server stopped and started in 1.0 s"),
                  metrics.FaultEvent(70.0, "worker_kill", "SIGKILL job worker pid 1")):
        faults.add(event)
    faults.close()
    assert report.latency_windows(report.fault_marks(metrics.read_faults(tmp_path))) == [(20.0, 35.0), (59.0, 65.0)]
    summary = report.write(tmp_path)
    heartbeat = summary["rpcs"]["rpc:heartbeat"]
    assert heartbeat["count"] == 72 and heartbeat["p99_ms"] == 900.0
    assert heartbeat["count_outside_faults"] == 51 and heartbeat["p99_outside_faults_ms"] == 60.0  # rank 51 of 51
    assert summary["targets"]["rpc_p99_le_100ms"] is False
    assert summary["targets"]["rpc_p99_le_100ms_outside_faults"] is True
    page = (tmp_path / "index.html").read_text()
    assert "outside the fault windows" in page and "missed by <code>rpc:heartbeat</code> (900" in page


def test_targets_met_ignore_http_functions(tmp_path: Path) -> None:
    _run_folder(tmp_path, slow_heartbeat=False)
    inv = json.loads((tmp_path / "invariants.json").read_text())
    inv[1]["count"], inv[1]["evidence"] = 0, []
    (tmp_path / "invariants.json").write_text(json.dumps(inv))
    # run.json with the options nested, as the orchestrator writes it
    (tmp_path / "run.json").write_text(json.dumps({
        "options": {"mechanics": 5, "customers": 30, "rate": 10.0, "seed": 3, "faults": []},
        "started_at": 1_700_000_000.0, "ended_at": 1_700_000_062.0, "real_duration_s": 62.0, "exit_status": 0}))
    summary = report.write(tmp_path)
    assert summary["run"] == {"mechanics": 5, "customers": 30, "rate": 10.0, "seed": 3, "faults": []}
    assert summary["results"]["exit_status"] == 0
    assert summary["duration_s"] == 62.0 and summary["calls_per_s_per_core"] is None
    assert summary["rpcs"]["rpc:heartbeat"]["p99_ms"] == 99.0
    # the slow HTTP function (10 s) has no p99 target; the worst database call is a tie at 99 ms, the name decides
    assert summary["targets"] == {"rpc_p99_le_100ms": True, "worst_rpc": "rpc:heartbeat", "worst_p99_ms": 99.0,
                                  "rpc_p99_le_100ms_outside_faults": True,
                                  "worst_rpc_outside_faults": "rpc:heartbeat", "worst_p99_outside_faults_ms": 100.0,
                                  "first_offer_p95_le_2s": True, "invariants_clean": True}
    assert summary["violations"] == 0
    page = (tmp_path / "index.html").read_text()
    assert "all green" in page and "faults: none" in page


def test_plots_are_pngs(written: tuple[Path, dict[str, Any]]) -> None:
    run_dir, _ = written
    for name, _, _ in report.PLOTS:
        data = (run_dir / name).read_bytes()
        assert data[:8] == PNG_MAGIC, name
        assert len(data) > 10_000, name
    assert len(report.PLOTS) == 7


def test_page_names_the_failing_invariant_and_every_rpc(written: tuple[Path, dict[str, Any]]) -> None:
    run_dir, _ = written
    page = (run_dir / "index.html").read_text()
    assert page.startswith("<!doctype html>")
    assert '<span class="bad-t">money_integrity</span>' in page  # in red in the headline
    assert "difference_cents" in page and "pay_1" in page          # its evidence
    for name in ("rpc:accept_offer", "rpc:heartbeat", "fn:create_checkout"):
        assert f"<code>{name}</code>" in page
    for plot, _, _ in report.PLOTS:
        assert f'src="{plot}"' in page
    assert "request_not_available" in page      # AD009 explained from the error registry
    assert "select public.heartbeat($1)" in page  # the database's top statement
    assert "missed by <code>rpc:heartbeat</code>" in page
    assert "begin → server back after 5.0 s" in page and "job worker exited with -9" in page  # the faults
    assert "http://" not in page and "https://" not in page and "<script" not in page  # self-contained


def test_empty_run_folder(tmp_path: Path) -> None:
    summary = report.write(tmp_path)
    assert summary["calls"] == 0 and summary["calls_per_s"] == 0.0 and summary["rpcs"] == {}
    assert summary["calls_per_s_per_core"] is None and summary["duration_s"] == 0.0
    assert summary["request_to_first_offer"] == {
        "count": 0, "p50_s": None, "p95_s": None, "p99_s": None, "max_s": None, "never": 0}
    assert summary["targets"] == {"rpc_p99_le_100ms": False, "worst_rpc": None, "worst_p99_ms": None,
                                  "rpc_p99_le_100ms_outside_faults": False, "worst_rpc_outside_faults": None,
                                  "worst_p99_outside_faults_ms": None,
                                  "first_offer_p95_le_2s": False, "invariants_clean": False}
    assert {"run.json is missing", "invariants.json is missing", "dbstats.json is missing",
            "calls/ is missing"} <= set(summary["missing"])
    page = (tmp_path / "index.html").read_text()
    assert "There are no calls in this run" in page
    assert "invariants.json is missing" in page and "dbstats.json is missing" in page
    for name, _, _ in report.PLOTS:
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC, name


def test_unreadable_json_and_a_torn_csv_row(tmp_path: Path) -> None:
    slow_run = tmp_path
    _run_folder(slow_run, slow_heartbeat=True)
    (slow_run / "dbstats.json").write_text('{"wal_bytes": 12')   # the run died while writing it
    with (slow_run / "calls" / "w0.csv").open("a") as f:
        f.write("99.0,rpc:heart")                                   # a worker killed mid-row
    summary = report.write(slow_run)
    assert summary["db"] is None
    assert any(m.startswith("dbstats.json is unreadable") for m in summary["missing"])
    assert "calls/*.csv: 1 torn or malformed rows skipped" in summary["missing"]
    assert summary["calls"] == 310  # the other worker's file (read after the torn one) is all there
    assert summary["rpcs"]["rpc:heartbeat"]["p99_ms"] == 396.0
    assert "dbstats.json is unreadable" in (slow_run / "index.html").read_text()
