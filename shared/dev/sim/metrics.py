"""The files a simulation run writes into its folder, and their readers.

    <run>/run.json              the run's options, start and end (`spec.RunSpec` as JSON, plus results)
    <run>/calls/<worker>.csv    one row per call: t, name, ms, code
    <run>/samples.csv           one row per sample: t, metric, value
    <run>/requests.csv          one row per request filed: request_id, t, first_offer_s, accept_s
    <run>/faults.csv            one row per fault event: t, fault, detail
    <run>/invariants.json       the final checks: [{name, description, count, evidence}]
    <run>/dbstats.json          the database's own view (top statements, WAL, locks waited)

`t` is seconds of real time since the run started (float). A call's `name` says what was called the
way a client calls it: `rpc:<function>` (POST /rest/v1/rpc/<function>), `rest:<verb> <table>`
(PostgREST table access), `fn:<target>` (an HTTP function), `webhook:<provider>` (a provider's call
to our webhook). `code` is empty for a success, else the error's stable code: the SQLSTATE
(`AD009`, `40001`, `57P01`…) or `HTTP <status>` for an HTTP function, or `timeout` /
`connection` when no answer came.
"""

from __future__ import annotations

import csv
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO


@dataclass(frozen=True)
class Call:
    t: float
    name: str
    ms: float
    code: str  # "" for success


@dataclass(frozen=True)
class Sample:
    t: float
    metric: str
    value: float


@dataclass(frozen=True)
class RequestTiming:
    request_id: str
    t: float                     # when it was filed, seconds since the run started
    first_offer_s: float | None  # filing → first offer (None: never offered)
    accept_s: float | None       # filing → accepted (None: never accepted)


@dataclass(frozen=True)
class FaultEvent:
    t: float
    fault: str
    detail: str


class _CsvWriter:
    """Appends rows to one CSV file, flushed at most every `flush_every` seconds; thread-safe."""

    def __init__(self, path: Path, header: list[str], flush_every: float = 1.0):
        path.parent.mkdir(parents=True, exist_ok=True)
        new = not path.exists()
        self._file: IO[str] = path.open("a", newline="")
        self._writer = csv.writer(self._file)
        if new:
            self._writer.writerow(header)
        self._lock = threading.Lock()
        self._flush_every = flush_every
        self._flushed = time.monotonic()

    def _row(self, row: list[object]) -> None:
        with self._lock:
            self._writer.writerow(row)
            now = time.monotonic()
            if now - self._flushed >= self._flush_every:
                self._file.flush()
                self._flushed = now

    def close(self) -> None:
        with self._lock:
            self._file.flush()
            self._file.close()


class CallLog(_CsvWriter):
    def __init__(self, run_dir: Path, worker: str):
        super().__init__(run_dir / "calls" / f"{worker}.csv", ["t", "name", "ms", "code"])

    def add(self, call: Call) -> None:
        self._row([f"{call.t:.4f}", call.name, f"{call.ms:.3f}", call.code])


class SampleLog(_CsvWriter):
    def __init__(self, run_dir: Path):
        super().__init__(run_dir / "samples.csv", ["t", "metric", "value"])

    def add(self, sample: Sample) -> None:
        self._row([f"{sample.t:.3f}", sample.metric, repr(float(sample.value))])


class FaultLog(_CsvWriter):
    def __init__(self, run_dir: Path):
        super().__init__(run_dir / "faults.csv", ["t", "fault", "detail"], flush_every=0.0)

    def add(self, event: FaultEvent) -> None:
        self._row([f"{event.t:.3f}", event.fault, event.detail])


def write_requests(run_dir: Path, rows: list[RequestTiming]) -> None:
    with (run_dir / "requests.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["request_id", "t", "first_offer_s", "accept_s"])
        for r in rows:
            w.writerow([r.request_id, f"{r.t:.3f}", "" if r.first_offer_s is None else f"{r.first_offer_s:.4f}",
                        "" if r.accept_s is None else f"{r.accept_s:.4f}"])


def _opt(value: str) -> float | None:
    return float(value) if value else None


def read_calls(run_dir: Path) -> Iterator[Call]:
    for path in sorted((run_dir / "calls").glob("*.csv")):
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                yield Call(float(row["t"]), row["name"], float(row["ms"]), row["code"])


def read_samples(run_dir: Path) -> Iterator[Sample]:
    path = run_dir / "samples.csv"
    if path.exists():
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                yield Sample(float(row["t"]), row["metric"], float(row["value"]))


def read_requests(run_dir: Path) -> Iterator[RequestTiming]:
    path = run_dir / "requests.csv"
    if path.exists():
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                yield RequestTiming(row["request_id"], float(row["t"]), _opt(row["first_offer_s"]),
                                    _opt(row["accept_s"]))


def read_faults(run_dir: Path) -> Iterator[FaultEvent]:
    path = run_dir / "faults.csv"
    if path.exists():
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                yield FaultEvent(float(row["t"]), row["fault"], row["detail"])
