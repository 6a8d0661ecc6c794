"""The CI smoke of the simulated city: a small seeded run, two simulated hours compressed into about
a minute, every fault on. It fails on an invariant violation or a run that did nothing, never on
timings."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from shared.dev.sim import metrics
from shared.dev.sim.run import simulate
from shared.dev.sim.spec import FAULTS, RunSpec


def test_a_small_city_with_every_fault_keeps_every_invariant(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    # With DATABASE_URL, a fresh database on that server (the run does not own it: db_restart
    # terminates its connections); without, the run's own embedded PostgreSQL (stopped and started).
    url = request.getfixturevalue("fresh_url") if os.environ.get("DATABASE_URL") else None
    run_dir = tmp_path / "run"
    run = RunSpec(mechanics=50, customers=300, rate=0.25, duration_s=7200, speed=120, seed=7,
                  faults=list(FAULTS), workers=2, database_url=url, out_dir=str(run_dir), progress=False)
    assert run.real_duration_s == 60

    assert simulate(run) == 0

    checks = json.loads((run_dir / "invariants.json").read_text())
    assert checks, "the final checks ran"
    assert {c["name"]: c["count"] for c in checks} == {c["name"]: 0 for c in checks}
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["calls"] > 0
    assert summary["violations"] == 0
    assert summary["request_to_accept"]["count"] > 0, "some requests were accepted"
    outcomes = json.loads((run_dir / "run.json").read_text())["outcomes"]
    assert outcomes["public.session_requests"].get("accepted", 0) > 0
    assert outcomes["public.sessions"].get("completed", 0) > 0, "some sessions were completed"
    assert (run_dir / "index.html").exists()
    happened = {f.fault for f in metrics.read_faults(run_dir)}
    assert set(FAULTS) <= happened
