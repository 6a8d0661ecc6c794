"""The run's report: `write(run_dir)` turns a run folder into `index.html`, PNG plots and `summary.json`.

It reads only the folder (`metrics` readers for the CSV files; `run.json`, `invariants.json` and
`dbstats.json` as JSON), so it can be run again on a finished run. A missing or unreadable file is
said on the page, never an error: a run that died half-way still gets its report.

Percentiles are nearest-rank (docs/simulation.md, "The report"): the p-th percentile of n values is
the value of rank ceil(p·n/100) in ascending order, always an observed value.
"""

from __future__ import annotations

import csv
import html
import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from shared.dev.sim import metrics
from shared.dev.sim.spec import FAULTS, RunSpec
from shared.error_codes import ERROR_CODES

RPC_P99_TARGET_MS = 100.0
"""Every RPC's p99 (docs/simulation.md): the target at 10× the reference city's peak."""
FIRST_OFFER_P95_TARGET_S = 2.0
"""p95 of the time from a request being filed to its first offer."""
TOP_RPCS = 9
"""RPCs (by call count) that get a panel of their own in the latency plot and a line in calls/s."""
DENSE_FAULT_EVENTS = 12
"""A fault with more point events than this is drawn as a rug of ticks at the bottom of the time plots
instead of one vertical line per event."""
RUN_EVENTS = "run"
"""The `fault` of faults.csv rows the orchestrator writes about itself (a worker that ended early, a
drain that gave up): listed on the page, neither counted nor drawn as faults."""
LATENCY_FAULTS = ("db_restart", "provider_outage", "clock_skew")
"""Faults whose spans make calls wait or fail by design (the database restarting, a provider down,
the functions restarting): the p99 "outside the fault windows" leaves out calls started in them."""
RECOVERY_S = 5.0
"""Seconds after such a span that still count as its window (clients reconnecting, retries landing)."""
NO_TARGET_PREFIXES = ("fn:", "webhook:")
"""Calls the p99 target does not apply to: HTTP functions wait on providers (stubbed, with outages),
webhooks are timed by the provider's stub. Everything else is a database call as PostgREST makes it."""

PLOTS: tuple[tuple[str, str, str], ...] = (
    ("calls_per_second.png", "Calls per second",
     "Calls started per second of real time, all calls and the busiest RPCs. Fault events are the "
     "vertical lines and shaded spans."),
    ("latency_over_time.png", "Latency over time",
     "p50, p95 and p99 per time bucket for the busiest RPCs, one panel each (log scale; the dashed "
     "line is the 100 ms target)."),
    ("latency_p99_by_rpc.png", "p99 per RPC",
     "Each call name's p99 over the whole run: green meets the 100 ms target, red misses it, grey has "
     "no target (HTTP functions and webhooks)."),
    ("request_to_offer.png", "Request → first offer, request → accept",
     "Share of requests offered (accepted) within a given time, with p50 and p95 marked and the 2 s "
     "target for the first offer. Requests never offered (accepted) are not on the curves; their "
     "count is in the legend."),
    ("queue_depths.png", "Queue depths",
     "The sampled metrics (open requests, job queue …), one panel each."),
    ("errors.png", "Errors",
     "Errors by code over the whole run, and errors per second over time, per code."),
    ("invariants.png", "Invariants",
     "Violations found per named check at the end of the run: green is none, red is at least one."),
)

# SQLSTATEs and transport codes that are not ours (ours are shared.error_codes).
_OTHER_CODES = {
    "40001": "serialization_failure",
    "40P01": "deadlock_detected",
    "55P03": "lock_not_available",
    "57014": "query_canceled (statement timeout)",
    "57P01": "admin_shutdown (server restarting)",
    "57P02": "crash_shutdown",
    "57P03": "cannot_connect_now (server starting)",
    "53300": "too_many_connections",
    "23505": "unique_violation",
    "23503": "foreign_key_violation",
    "23514": "check_violation",
    "42501": "insufficient_privilege",
    "P0001": "raise_exception",
    "timeout": "no answer in time",
    "connection": "no connection",
}

_FAULT_COLORS = ("#8b0000", "#4b0082", "#8b4513", "#006400", "#c71585", "#008b8b", "#808000")
_GREEN, _RED, _GREY = "#2ca02c", "#d62728", "#9e9e9e"


# --------------------------------------------------------------------------------------------------
# numbers


def percentile(sorted_values: Sequence[float] | np.ndarray, p: int) -> float | None:
    """Nearest-rank p-th percentile (0 < p ≤ 100) of values sorted ascending; None when empty."""
    n = len(sorted_values)
    if n == 0:
        return None
    rank = max(1, -(-p * n // 100))  # ceil(p·n/100) in integers: no floating-point rank
    return float(sorted_values[rank - 1])


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


@dataclass
class _Name:
    """The calls of one name."""

    t: list[float] = field(default_factory=list)
    ms: list[float] = field(default_factory=list)
    errors: int = 0


@dataclass
class _Data:
    names: dict[str, _Name]
    error_events: list[tuple[float, str]]             # (t, code)
    error_names: dict[str, Counter[str]]              # code -> names
    samples: dict[str, tuple[list[float], list[float]]]
    requests: list[metrics.RequestTiming]
    faults: list[metrics.FaultEvent]
    run: dict[str, Any] | None
    invariants: list[dict[str, Any]] | None
    dbstats: dict[str, Any] | None
    notes: list[str]                                   # what is missing or unreadable
    span_s: float = 0.0                                # last t of anything recorded
    run_events: list[metrics.FaultEvent] = field(default_factory=list)  # faults.csv rows of `run`
    marks: list[FaultMark] = field(default_factory=list)


def _read_json(path: Path, notes: list[str]) -> Any:
    if not path.exists():
        notes.append(f"{path.name} is missing")
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        notes.append(f"{path.name} is unreadable ({exc})")
        return None


def _safe(reader: Callable[[Path], Iterable[Any]], run_dir: Path, what: str, notes: list[str]) -> list[Any]:
    """Everything a reader yields; a broken file (a run killed mid-row) keeps the rows before it."""
    out: list[Any] = []
    try:
        for item in reader(run_dir):
            out.append(item)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        notes.append(f"{what}: reading stopped after {len(out)} rows ({type(exc).__name__}: {exc})")
    return out


def _calls(run_dir: Path, notes: list[str]) -> Iterable[metrics.Call]:
    """`metrics.read_calls`; when a file has a torn row (a worker killed mid-write), the files are read
    again row by row, skipping the rows that do not parse, so one torn row costs one row."""
    try:
        return list(metrics.read_calls(run_dir))
    except (ValueError, KeyError, TypeError):
        pass
    out: list[metrics.Call] = []
    skipped = 0
    for path in sorted((run_dir / "calls").glob("*.csv")):
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                try:
                    out.append(metrics.Call(float(row["t"]), row["name"], float(row["ms"]), row["code"] or ""))
                except (ValueError, KeyError, TypeError):
                    skipped += 1
    notes.append(f"calls/*.csv: {skipped} torn or malformed rows skipped")
    return out


def _load(run_dir: Path) -> _Data:
    notes: list[str] = []
    names: dict[str, _Name] = defaultdict(_Name)
    error_events: list[tuple[float, str]] = []
    error_names: dict[str, Counter[str]] = defaultdict(Counter)
    span = 0.0
    if not (run_dir / "calls").is_dir():
        notes.append("calls/ is missing")
    for call in _calls(run_dir, notes):
        if not (math.isfinite(call.t) and math.isfinite(call.ms)):
            continue
        entry = names[call.name]
        entry.t.append(call.t)
        entry.ms.append(call.ms)
        if call.code:
            entry.errors += 1
            error_events.append((call.t, call.code))
            error_names[call.code][call.name] += 1
        span = max(span, call.t)
    samples: dict[str, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    if not (run_dir / "samples.csv").exists():
        notes.append("samples.csv is missing")
    for sample in _safe(metrics.read_samples, run_dir, "samples.csv", notes):
        ts, values = samples[sample.metric]
        ts.append(sample.t)
        values.append(sample.value)
        span = max(span, sample.t)
    if not (run_dir / "requests.csv").exists():
        notes.append("requests.csv is missing")
    requests = _safe(metrics.read_requests, run_dir, "requests.csv", notes)
    faults = sorted(_safe(metrics.read_faults, run_dir, "faults.csv", notes), key=lambda f: f.t)
    span = max([span, *(f.t for f in faults), *(r.t for r in requests)])
    run = _read_json(run_dir / "run.json", notes)
    invariants = _read_json(run_dir / "invariants.json", notes)
    dbstats = _read_json(run_dir / "dbstats.json", notes)
    if run is not None and not isinstance(run, dict):
        notes.append("run.json is not an object")
        run = None
    if invariants is not None and not (isinstance(invariants, list) and all(isinstance(i, dict) for i in invariants)):
        notes.append("invariants.json is not a list of checks")
        invariants = None
    if dbstats is not None and not isinstance(dbstats, dict):
        notes.append("dbstats.json is not an object")
        dbstats = None
    run_events = [f for f in faults if f.fault == RUN_EVENTS]
    faults = [f for f in faults if f.fault != RUN_EVENTS]
    return _Data(dict(names), error_events, dict(error_names), dict(samples), requests, faults, run,
                 invariants, dbstats, notes, span, run_events, fault_marks(faults))


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            return None
    return None


def _duration(run: dict[str, Any] | None, span: float) -> tuple[float, str]:
    """Real seconds the run lasted, and where that came from."""
    if run:
        started, ended = _number(run.get("started_at")), _number(run.get("ended_at"))
        if started is not None and ended is not None and ended > started:
            return ended - started, "run.json started_at → ended_at"
        for key in ("real_duration_s", "elapsed_s", "wall_s"):
            value = _number(run.get(key))
            if value is not None and value > 0:
                return value, f"run.json {key}"
    return span, "last recorded event"


def _options(run: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the run's options, everything else run.json says)."""
    if not run:
        return {}, {}
    nested = run.get("options", run.get("run"))
    if isinstance(nested, dict):
        return nested, {k: v for k, v in run.items() if k not in ("options", "run")}
    keys = {f.name for f in fields(RunSpec)}
    options = {k: v for k, v in run.items() if k in keys}
    if not options:
        return dict(run), {}
    return options, {k: v for k, v in run.items() if k not in keys}


def targeted(name: str) -> bool:
    """Whether the 100 ms p99 target applies to calls of this name."""
    return not name.startswith(NO_TARGET_PREFIXES)


def _timing(values: Iterable[float | None]) -> dict[str, Any]:
    vals = list(values)
    done = np.sort(np.array([v for v in vals if v is not None], dtype=float))
    return {
        "count": int(done.size),
        "p50_s": _r(percentile(done, 50), 4),
        "p95_s": _r(percentile(done, 95), 4),
        "p99_s": _r(percentile(done, 99), 4),
        "max_s": _r(float(done[-1]) if done.size else None, 4),
        "never": sum(1 for v in vals if v is None),
    }


def _top_statements(db: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The first list of statements (dicts with a `query`) in dbstats.json, in its order."""
    if not db:
        return []
    for key in ("top_statements", "statements", "top", *db.keys()):
        value = db.get(key)
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value) \
                and any("query" in v for v in value):
            return value
    return []


def _db_summary(db: dict[str, Any] | None) -> dict[str, Any] | None:
    """dbstats.json with every list cut to its first 10 rows and query texts to 500 characters."""
    if db is None:
        return None

    def cut(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: cut(v) for k, v in value.items()}
        if isinstance(value, list):
            return [cut(v) for v in value[:10]]
        if isinstance(value, str) and len(value) > 500:
            return value[:500] + "…"
        return value

    out = cut(db)
    assert isinstance(out, dict)
    return out


@dataclass(frozen=True)
class FaultMark:
    """One fault on the time plots: a span (`end` set) or a moment (`end` None)."""

    fault: str
    start: float
    end: float | None
    detail: str


_LASTS = re.compile(r"\bfor (\d+(?:\.\d+)?) ?s\b")


def fault_marks(events: Iterable[metrics.FaultEvent]) -> list[FaultMark]:
    """faults.csv as marks. An event whose detail begins with `start` or `begin` opens a span that the
    fault's next event closes (`begin` … `server back after 3.2 s`; `start …` … `end …`); an event
    whose detail says `for <N> s` is a span of N seconds; any other event is a moment. A span never
    closed lasts to the end of the run (`end` = inf)."""
    marks: list[FaultMark] = []
    open_at: dict[str, metrics.FaultEvent] = {}
    for event in sorted(events, key=lambda e: e.t):
        detail = event.detail.strip()
        opener = open_at.pop(event.fault, None)
        if opener is not None:
            marks.append(FaultMark(event.fault, opener.t, event.t, f"{opener.detail} → {detail}"))
        elif detail.lower().startswith(("start", "begin")):
            open_at[event.fault] = event
        elif (lasts := _LASTS.search(detail)) is not None:
            marks.append(FaultMark(event.fault, event.t, event.t + float(lasts.group(1)), detail))
        else:
            marks.append(FaultMark(event.fault, event.t, None, detail))
    marks += [FaultMark(e.fault, e.t, math.inf, e.detail) for e in open_at.values()]
    return sorted(marks, key=lambda m: m.start)


def latency_windows(marks: Iterable[FaultMark]) -> list[tuple[float, float]]:
    """The spans of LATENCY_FAULTS, each widened by RECOVERY_S after it (a moment is no window; the
    webhook faults last the whole run and delay no call)."""
    return [(m.start, m.end + RECOVERY_S) for m in marks if m.fault in LATENCY_FAULTS and m.end is not None]


def _outside(t: np.ndarray, windows: list[tuple[float, float]]) -> np.ndarray:
    keep = np.ones(t.shape, dtype=bool)
    for start, end in windows:
        keep &= ~((t >= start) & (t <= end))
    return keep


def _worst(rpcs: dict[str, dict[str, Any]], key: str) -> tuple[float | None, str | None]:
    measured = [(r[key], name) for name, r in rpcs.items() if r["target"] and r[key] is not None]
    return max(measured, key=lambda m: (m[0], m[1])) if measured else (None, None)


def summarize(data: _Data) -> dict[str, Any]:
    duration, duration_source = _duration(data.run, data.span_s)
    options, results = _options(data.run)
    cores = _number((data.run or {}).get("cpu_count"))
    windows = latency_windows(data.marks)
    rpcs: dict[str, dict[str, Any]] = {}
    for name, entry in sorted(data.names.items(), key=lambda kv: (-len(kv[1].ms), kv[0])):
        unsorted = np.array(entry.ms, dtype=float)
        ms = np.sort(unsorted)
        calm = np.sort(unsorted[_outside(np.array(entry.t, dtype=float), windows)])
        rpcs[name] = {
            "count": int(ms.size),
            "errors": entry.errors,
            "p50_ms": _r(percentile(ms, 50)),
            "p95_ms": _r(percentile(ms, 95)),
            "p99_ms": _r(percentile(ms, 99)),
            "max_ms": _r(float(ms[-1]) if ms.size else None),
            "count_outside_faults": int(calm.size),
            "p99_outside_faults_ms": _r(percentile(calm, 99)),
            "target": targeted(name),
        }
    calls = sum(r["count"] for r in rpcs.values())
    worst_p99, worst = _worst(rpcs, "p99_ms")
    calm_p99, calm_worst = _worst(rpcs, "p99_outside_faults_ms")
    first_offer = _timing(r.first_offer_s for r in data.requests)
    accept = _timing(r.accept_s for r in data.requests)
    by_code = Counter(code for _, code in data.error_events)
    errors_by_code = dict(sorted(by_code.items(), key=lambda kv: (-kv[1], kv[0])))
    counts = [(str(i.get("name", "?")), int(i.get("count") or 0)) for i in data.invariants or []]
    invariants = [{"name": name, "count": count} for name, count in counts]
    violations = sum(count for _, count in counts)
    faults = dict(Counter(m.fault for m in data.marks))
    return {
        "run": options,
        "results": results,
        "duration_s": round(duration, 3),
        "duration_source": duration_source,
        "calls": calls,
        "calls_per_s": round(calls / duration, 3) if duration > 0 else 0.0,
        "calls_per_s_per_core": round(calls / duration / cores, 3) if duration > 0 and cores else None,
        "rpcs": rpcs,
        "request_to_first_offer": first_offer,
        "request_to_accept": accept,
        "errors_by_code": errors_by_code,
        "invariants": invariants,
        "violations": violations,
        "faults": faults,
        "run_events": [{"t": e.t, "detail": e.detail} for e in data.run_events],
        "targets": {
            "rpc_p99_le_100ms": worst_p99 is not None and worst_p99 <= RPC_P99_TARGET_MS,
            "worst_rpc": worst,
            "worst_p99_ms": worst_p99,
            "rpc_p99_le_100ms_outside_faults": calm_p99 is not None and calm_p99 <= RPC_P99_TARGET_MS,
            "worst_rpc_outside_faults": calm_worst,
            "worst_p99_outside_faults_ms": calm_p99,
            "first_offer_p95_le_2s": first_offer["p95_s"] is not None
            and first_offer["p95_s"] <= FIRST_OFFER_P95_TARGET_S,
            "invariants_clean": data.invariants is not None and violations == 0,
        },
        "db": _db_summary(data.dbstats),
        "missing": data.notes,
    }


# --------------------------------------------------------------------------------------------------
# plots

_NICE_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)


def _bucket(span: float, buckets: int) -> float:
    """A round bucket width giving about `buckets` buckets over `span` seconds."""
    for width in _NICE_S:
        if span / width <= buckets:
            return float(width)
    return float(_NICE_S[-1])


@dataclass(frozen=True)
class _TimeAxis:
    span: float
    scale: float  # divide seconds by this
    label: str

    @staticmethod
    def of(span: float) -> _TimeAxis:
        if span > 1200:
            return _TimeAxis(span, 60.0, "minutes since the start (real time)")
        return _TimeAxis(span, 1.0, "seconds since the start (real time)")

    def x(self, t: np.ndarray | float) -> Any:
        return np.asarray(t) / self.scale


def _fault_colors(faults: Sequence[FaultMark]) -> dict[str, str]:
    kinds = sorted({f.fault for f in faults}, key=lambda k: (FAULTS.index(k) if k in FAULTS else len(FAULTS), k))
    return {k: _FAULT_COLORS[i % len(_FAULT_COLORS)] for i, k in enumerate(kinds)}


def _mark_faults(ax: Axes, marks: Sequence[FaultMark], axis: _TimeAxis, colors: dict[str, str],
                 labels: bool = False) -> None:
    """A span is shaded, a moment is a dotted vertical line (a rug of ticks at the bottom when a fault
    has more than DENSE_FAULT_EVENTS of them). With `labels`, each mark is named at the top."""
    top = ax.get_xaxis_transform()  # x in data, y in axes fraction

    def name(x: float, fault: str) -> None:
        if labels:
            ax.text(x, 0.99, f" {fault}", transform=top, rotation=90, va="top", ha="left", fontsize=7,
                    color=colors[fault])

    points: dict[str, list[float]] = defaultdict(list)
    for mark in marks:
        if mark.end is None:
            points[mark.fault].append(mark.start)
            continue
        end = min(mark.end, max(axis.span, mark.start))
        ax.axvspan(axis.x(mark.start), axis.x(end), color=colors[mark.fault], alpha=0.2, lw=0)
        name(axis.x(mark.start), mark.fault)
    for fault, ts in points.items():
        if len(ts) > DENSE_FAULT_EVENTS:  # many events (a webhook duplicated every few seconds): a rug
            ax.vlines(axis.x(np.array(ts)), 0, 0.05, transform=top, color=colors[fault], lw=0.8, alpha=0.8)
            continue
        for t in ts:
            ax.axvline(axis.x(t), color=colors[fault], lw=1.2, ls=":", alpha=0.9)
            name(axis.x(t), fault)


def _fault_legend(fig: Figure, colors: dict[str, str]) -> None:
    if colors:
        handles = [Patch(color=c, alpha=0.5, label=f"fault: {k}") for k, c in colors.items()]
        fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 5), fontsize=8,
                   frameon=False)


def _empty(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="#666", fontsize=12)
    ax.set_xticks([])
    ax.set_yticks([])


def _grid(n: int) -> tuple[int, int]:
    cols = 1 if n == 1 else 2 if n <= 4 else 3
    return math.ceil(n / cols), cols


def _panels(fig: Figure, n: int) -> list[Axes]:
    rows, cols = _grid(n)
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True)
    flat: list[Axes] = [a for row in axes for a in row]
    for extra in flat[n:]:
        extra.set_visible(False)
    return flat[:n]


def _top(data: _Data) -> list[str]:
    return sorted(data.names, key=lambda n: (-len(data.names[n].ms), n))[:TOP_RPCS]


def _plot_calls(fig: Figure, data: _Data, axis: _TimeAxis, colors: dict[str, str]) -> None:
    ax = fig.subplots()
    if not data.names:
        _empty(ax, "no calls recorded")
        return
    width = _bucket(axis.span, 120)
    edges = np.arange(0.0, axis.span + width, width)
    if edges.size < 2:
        edges = np.array([0.0, width])
    all_t = np.concatenate([np.array(e.t, dtype=float) for e in data.names.values()])
    counts, _ = np.histogram(all_t, bins=edges)
    mids = axis.x(edges[:-1] + width / 2)
    ax.plot(mids, counts / width, color="black", lw=2, label="all calls")
    for name in _top(data):
        c, _ = np.histogram(np.array(data.names[name].t, dtype=float), bins=edges)
        ax.plot(mids, c / width, lw=1, label=name)
    _mark_faults(ax, data.marks, axis, colors, labels=True)
    ax.set_xlabel(axis.label)
    ax.set_ylabel(f"calls per second ({width:g} s buckets)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    _fault_legend(fig, colors)


def _per_bucket(t: np.ndarray, v: np.ndarray, width: float, ps: Sequence[int]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Bucket midpoints and, per p, the nearest-rank percentile of each non-empty bucket."""
    idx = np.floor(t / width).astype(int)
    order = np.lexsort((v, idx))
    idx, v = idx[order], v[order]
    starts = np.flatnonzero(np.r_[True, idx[1:] != idx[:-1]])
    ends = np.r_[starts[1:], idx.size]
    mids = (idx[starts] + 0.5) * width
    out = [np.array([percentile(v[s:e], p) for s, e in zip(starts, ends, strict=True)], dtype=float) for p in ps]
    return mids, out


def _plot_latency(fig: Figure, data: _Data, axis: _TimeAxis, colors: dict[str, str]) -> None:
    top = _top(data)
    if not top:
        _empty(fig.subplots(), "no calls recorded")
        return
    width = _bucket(axis.span, 60)
    for ax, name in zip(_panels(fig, len(top)), top, strict=True):
        entry = data.names[name]
        mids, (p50, p95, p99) = _per_bucket(np.array(entry.t, dtype=float), np.array(entry.ms, dtype=float),
                                            width, (50, 95, 99))
        x = axis.x(mids)
        marker = "." if len(x) < 30 else None
        ax.plot(x, p50, color="#1f77b4", lw=1.2, marker=marker, label="p50")
        ax.plot(x, p95, color="#ff7f0e", lw=1.2, marker=marker, label="p95")
        ax.plot(x, p99, color="#d62728", lw=1.2, marker=marker, label="p99")
        if targeted(name):
            ax.axhline(RPC_P99_TARGET_MS, color="black", ls="--", lw=0.8)
        _mark_faults(ax, data.marks, axis, colors)
        ax.set_yscale("log")
        ax.set_title(f"{name}  (n={len(entry.ms)})", fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.tick_params(labelsize=8)
    fig.supxlabel(f"{axis.label}; {width:g} s buckets", fontsize=9)
    fig.supylabel("latency (ms, log scale)", fontsize=9)
    handles: list[Artist] = [Line2D([], [], color=c, label=lbl) for c, lbl in (("#d62728", "p99"), ("#ff7f0e", "p95"),
                                                                  ("#1f77b4", "p50"))]
    handles.append(Line2D([], [], color="black", ls="--", lw=0.8, label="100 ms target"))
    handles += [Patch(color=c, alpha=0.5, label=f"fault: {k}") for k, c in colors.items()]
    fig.legend(handles=handles, loc="outside upper center", ncol=min(len(handles), 8), fontsize=8, frameon=False)


def _plot_p99(fig: Figure, summary: dict[str, Any]) -> None:
    ax = fig.subplots()
    rows = [(name, r) for name, r in summary["rpcs"].items() if r["p99_ms"] is not None]
    if not rows:
        _empty(ax, "no calls recorded")
        return
    rows.sort(key=lambda nr: nr[1]["p99_ms"])
    values = [max(r["p99_ms"], 0.001) for _, r in rows]
    color = [(_GREY if not r["target"] else _GREEN if r["p99_ms"] <= RPC_P99_TARGET_MS else _RED) for _, r in rows]
    y = np.arange(len(rows))
    ax.barh(y, values, color=color)
    ax.set_yticks(y, [name for name, _ in rows], fontsize=8)
    ax.axvline(RPC_P99_TARGET_MS, color="black", ls="--", lw=1)
    ax.text(RPC_P99_TARGET_MS, len(rows) - 0.4, " 100 ms target", fontsize=8, va="bottom")
    for yi, (_, r) in zip(y, rows, strict=True):
        ax.text(max(r["p99_ms"], 0.001), float(yi), f" {round(r['p99_ms'], 1):g}", va="center", fontsize=7)
    if max(values) / min(values) > 50 or max(values) > 10 * RPC_P99_TARGET_MS:
        ax.set_xscale("log")
    ax.set_xlabel("p99 over the whole run (ms)")
    ax.set_ylim(-0.6, len(rows) + 0.2)
    ax.grid(alpha=0.3, axis="x", which="both")


def _plot_requests(fig: Figure, data: _Data, summary: dict[str, Any]) -> None:
    pairs = (("request → first offer", "first_offer_s", "request_to_first_offer", True),
             ("request → accept", "accept_s", "request_to_accept", False))
    for ax, (title, attr, key, target) in zip(fig.subplots(1, 2, squeeze=False)[0], pairs, strict=True):
        stats = summary[key]
        values = np.sort(np.array([getattr(r, attr) for r in data.requests if getattr(r, attr) is not None],
                                  dtype=float))
        if values.size == 0:
            _empty(ax, f"{title}: none" + (f" ({stats['never']} never)" if stats["never"] else ""))
            ax.set_title(title)
            continue
        share = np.arange(1, values.size + 1) / (values.size + stats["never"])
        ax.step(values, share, where="post", color="#1f77b4", label=f"offered: {values.size}, never: {stats['never']}"
                if target else f"accepted: {values.size}, never: {stats['never']}")
        for p, style in ((50, ":"), (95, "--")):
            v = stats[f"p{p}_s"]
            ax.axvline(v, color="#555", ls=style, lw=1, label=f"p{p} = {v:g} s")
        if target:
            ax.axvline(FIRST_OFFER_P95_TARGET_S, color=_RED, lw=1.5, label="2 s target (p95)")
        if values[0] > 0 and values[-1] / values[0] > 100:
            ax.set_xscale("log")
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("seconds after filing (real time)")
        ax.set_ylabel("share of requests filed")
        ax.set_title(title)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="lower right")


def _plot_samples(fig: Figure, data: _Data, axis: _TimeAxis, colors: dict[str, str]) -> None:
    metrics_ = sorted(data.samples)
    if not metrics_:
        _empty(fig.subplots(), "no samples recorded")
        return
    for ax, metric in zip(_panels(fig, len(metrics_)), metrics_, strict=True):
        ts, values = data.samples[metric]
        order = np.argsort(np.array(ts, dtype=float), kind="stable")
        ax.plot(axis.x(np.array(ts, dtype=float)[order]), np.array(values, dtype=float)[order], lw=1.2,
                marker="." if len(ts) < 30 else None)
        _mark_faults(ax, data.marks, axis, colors)
        ax.set_title(metric, fontsize=9)
        ax.set_ylim(bottom=min(0.0, min(values)))
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
    fig.supxlabel(axis.label, fontsize=9)
    _fault_legend(fig, colors)


def _plot_errors(fig: Figure, data: _Data, summary: dict[str, Any], axis: _TimeAxis,
                 colors: dict[str, str]) -> None:
    left, right = fig.subplots(1, 2, squeeze=False, gridspec_kw={"width_ratios": [1, 2]})[0]
    codes = list(summary["errors_by_code"])
    if not codes:
        _empty(left, "no errors")
        _empty(right, "no errors")
        return
    y = np.arange(len(codes))
    left.barh(y, [summary["errors_by_code"][c] for c in codes], color="#d62728")
    left.set_yticks(y, [f"{c}  {_code_meaning(c)}"[:40] for c in codes], fontsize=8)
    left.invert_yaxis()
    left.set_xlabel("errors")
    left.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
    left.grid(alpha=0.3, axis="x")
    width = _bucket(axis.span, 120)
    edges = np.arange(0.0, axis.span + width, width)
    if edges.size < 2:
        edges = np.array([0.0, width])
    mids = axis.x(edges[:-1] + width / 2)
    for code in codes[:8]:
        c, _ = np.histogram(np.array([t for t, k in data.error_events if k == code], dtype=float), bins=edges)
        right.plot(mids, c / width, lw=1.2, label=code)
    _mark_faults(right, data.marks, axis, colors, labels=True)
    right.set_xlabel(axis.label)
    right.set_ylabel(f"errors per second ({width:g} s buckets)")
    right.set_ylim(bottom=0)
    right.grid(alpha=0.3)
    right.legend(fontsize=8)
    _fault_legend(fig, colors)


def _plot_invariants(fig: Figure, summary: dict[str, Any], present: bool) -> None:
    ax = fig.subplots()
    rows = summary["invariants"]
    if not rows:
        _empty(ax, "no invariant results (invariants.json missing)" if not present else "no checks ran")
        return
    y = np.arange(len(rows))
    counts = [r["count"] for r in rows]
    top = max(max(counts), 1)
    ax.barh(y, [c if c else top * 0.02 for c in counts], color=[_RED if c else _GREEN for c in counts])
    ax.set_yticks(y, [r["name"] for r in rows], fontsize=9)
    for label, c in zip(ax.get_yticklabels(), counts, strict=True):
        label.set_color(_RED if c else "#1b5e20")
    for yi, c in zip(y, counts, strict=True):
        ax.text(max(c, top * 0.02), float(yi), f" {c}" if c else " 0 ✓", va="center", fontsize=9)
    ax.invert_yaxis()
    ax.set_xlim(0, top * 1.15)
    ax.set_xlabel("violations found")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3, axis="x")


def _plots(run_dir: Path, data: _Data, summary: dict[str, Any]) -> dict[str, str]:
    """Writes every plot; returns {file: error} for those that could not be drawn."""
    axis = _TimeAxis.of(max(data.span_s, 1.0))
    colors = _fault_colors(data.marks)
    n_top = len(_top(data))
    n_samples = len(data.samples)
    latency_h = 2.6 * _grid(max(n_top, 1))[0] + 0.9
    sample_h = 2.4 * _grid(max(n_samples, 1))[0] + 0.8
    n_rpcs = len(summary["rpcs"])
    drawings: dict[str, tuple[tuple[float, float], Callable[[Figure], None]]] = {
        "calls_per_second.png": ((12, 4.8), lambda f: _plot_calls(f, data, axis, colors)),
        "latency_over_time.png": ((12, latency_h), lambda f: _plot_latency(f, data, axis, colors)),
        "latency_p99_by_rpc.png": ((10, 1.2 + 0.32 * max(n_rpcs, 3)), lambda f: _plot_p99(f, summary)),
        "request_to_offer.png": ((12, 4.2), lambda f: _plot_requests(f, data, summary)),
        "queue_depths.png": ((12, sample_h), lambda f: _plot_samples(f, data, axis, colors)),
        "errors.png": ((12, 4.5), lambda f: _plot_errors(f, data, summary, axis, colors)),
        "invariants.png": ((10, 1.2 + 0.4 * max(len(summary["invariants"]), 2)),
                           lambda f: _plot_invariants(f, summary, data.invariants is not None)),
    }
    failed: dict[str, str] = {}
    for name, (size, draw) in drawings.items():
        fig = Figure(figsize=size, dpi=100, layout="constrained")
        try:
            draw(fig)
            fig.savefig(run_dir / name, format="png")
        except Exception as exc:  # a plot that cannot be drawn must not cost the rest of the report
            failed[name] = f"{type(exc).__name__}: {exc}"
    return failed


# --------------------------------------------------------------------------------------------------
# page

_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
main{max-width:1240px;margin:0 auto;padding:24px}
h1{margin:0 0 4px;font-size:26px}
h2{margin:36px 0 10px;font-size:20px;border-bottom:2px solid #dde1e7;padding-bottom:4px}
.sub{color:#5b6576;margin:0 0 18px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(175px,1fr));gap:12px}
.card{background:#fff;border-radius:10px;padding:14px 16px;box-shadow:0 1px 3px rgba(0,0,0,.08);
border-top:5px solid #9e9e9e}
.card.ok{border-top-color:#2ca02c} .card.bad{border-top-color:#d62728}
.card .k{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:#5b6576}
.card .v{font-size:28px;font-weight:650;margin:2px 0} .card .d{font-size:12.5px;color:#5b6576}
.ok-t{color:#1b7e2a;font-weight:600} .bad-t{color:#c62828;font-weight:600} .dim{color:#8a93a3}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:8px 12px;margin:10px 0;border-radius:4px}
.empty{background:#fff;border-radius:10px;padding:30px;text-align:center;font-size:20px;color:#5b6576}
figure{background:#fff;border-radius:10px;padding:12px;margin:0 0 16px;box-shadow:0 1px 3px rgba(0,0,0,.08)}
figure img{max-width:100%;display:block;margin:0 auto} figcaption{color:#5b6576;font-size:13.5px;margin-top:6px}
table{border-collapse:collapse;background:#fff;border-radius:8px;overflow:hidden;box-shadow:0 1px 3px rgba(0,0,0,.08);
margin:6px 0 14px;font-size:13.5px}
th,td{padding:6px 10px;text-align:left;border-bottom:1px solid #eceef2;vertical-align:top}
th{background:#eef0f4;font-weight:600} td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.bad td{background:#fdecea} code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12.5px}
pre{white-space:pre-wrap;margin:0;max-width:720px}
ul.targets{list-style:none;padding:0} ul.targets li{margin:4px 0}
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        text = f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 1e6 else f"{value:,.0f}"
        return text + unit
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}{unit}"
    return f"{value}{unit}"


def _card(key: str, value: str, detail: str = "", state: str = "") -> str:
    return (f'<div class="card {state}"><div class="k">{_e(key)}</div><div class="v">{value}</div>'
            f'<div class="d">{detail}</div></div>')


def _table(head: Sequence[str], rows: Iterable[Sequence[str]], numeric: Sequence[int] = (),
           bad: Sequence[bool] | None = None) -> str:
    out = ["<table><tr>", *(f"<th>{_e(h)}</th>" for h in head), "</tr>"]
    for i, row in enumerate(rows):
        cls = ' class="bad"' if bad is not None and bad[i] else ""
        out.append(f"<tr{cls}>")
        out += [f'<td{" class=n" if j in numeric else ""}>{cell}</td>' for j, cell in enumerate(row)]
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


def _code_meaning(code: str) -> str:
    if code in ERROR_CODES:
        return ERROR_CODES[code].name
    if code in _OTHER_CODES:
        return _OTHER_CODES[code]
    if code.startswith("08"):
        return "connection exception"
    if code.startswith("HTTP "):
        return "HTTP function said " + code[5:]
    return ""


def _value_html(value: Any) -> str:
    if isinstance(value, dict | list):
        return f"<pre>{_e(json.dumps(value, indent=1, default=str)[:2000])}</pre>"
    if isinstance(value, str) and len(value) > 80:
        return f"<pre>{_e(value[:2000])}</pre>"
    return _e(_fmt(value))


def _records_table(rows: list[dict[str, Any]]) -> str:
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    numeric = [i for i, k in enumerate(keys) if all(isinstance(r.get(k), int | float) for r in rows if k in r)]
    return _table(keys, ([_value_html(r.get(k)) if k in r else "" for k in keys] for r in rows), numeric)


def _db_html(db: dict[str, Any]) -> str:
    scalars = {k: v for k, v in db.items() if not isinstance(v, dict | list)}
    out = []
    if scalars:
        out.append(_table(("measure", "value"), ([_e(k), _value_html(v)] for k, v in scalars.items()), (1,)))
    for key, value in db.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            out.append(f"<h3>{_e(key)}</h3>{_records_table(value[:10])}")
        elif isinstance(value, list):
            out.append(f"<h3>{_e(key)}</h3>" + (f"<p>{_value_html(value)}</p>" if value else '<p class="dim">none</p>'))
        elif isinstance(value, dict):
            out.append(f"<h3>{_e(key)}</h3>" +
                       _table(("", "value"), ([_e(k), _value_html(v)] for k, v in value.items()), (1,)))
    return "".join(out)


def _page(summary: dict[str, Any], data: _Data, failed: dict[str, str]) -> str:
    t = summary["targets"]
    opts = summary["run"]
    title = "Simulated city — run report"
    parts = [f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{title}</title>"
             f'<meta name=viewport content="width=device-width,initial-scale=1"><style>{_CSS}</style></head>'
             f"<body><main><h1>{title}</h1>"]
    described = ", ".join(f"{k} {_fmt(opts[k])}" for k in ("mechanics", "customers", "rate", "speed", "seed",
                                                              "workers") if k in opts)
    faults_opt = opts.get("faults")
    if faults_opt is not None:
        described += f", faults: {', '.join(map(str, faults_opt)) if faults_opt else 'none'}"
    parts.append(f'<p class="sub">{_e(described) or "run options unknown"} · {_fmt(summary["duration_s"])} s of '
                 f"real time ({_e(summary['duration_source'])})</p>")
    for note in summary["missing"]:
        parts.append(f'<div class="note">{_e(note)}.</div>')
    for name, err in failed.items():
        parts.append(f'<div class="note">{_e(name)} could not be drawn: {_e(err)}</div>')

    # headline
    fo = summary["request_to_first_offer"]
    cards = [_card("calls", _fmt(summary["calls"]), f"{len(summary['rpcs'])} call names"),
             _card("calls per second", _fmt(summary["calls_per_s"]), "over the run's real duration"
                   + (f" · {_fmt(summary['calls_per_s_per_core'])} per CPU core"
                      if summary["calls_per_s_per_core"] is not None else ""))]
    if t["worst_rpc"] is None:
        cards.append(_card("worst RPC p99", "—", "no database calls measured", "bad"))
    else:
        calm = (f" · outside the fault windows {_e(t['worst_rpc_outside_faults'])} "
                f"{_fmt(t['worst_p99_outside_faults_ms'], ' ms')}" if t["worst_rpc_outside_faults"] else "")
        cards.append(_card("worst RPC p99", _fmt(t["worst_p99_ms"], " ms"),
                           f"{_e(t['worst_rpc'])} · target ≤ 100 ms{calm}", "ok" if t["rpc_p99_le_100ms"] else "bad"))
    cards.append(_card("p95 request → first offer", _fmt(fo["p95_s"], " s"),
                       f"{_fmt(fo['count'])} offered, {_fmt(fo['never'])} never · target ≤ 2 s",
                       "ok" if t["first_offer_p95_le_2s"] else "bad"))
    failing = [i["name"] for i in summary["invariants"] if i["count"]]
    if data.invariants is None:
        cards.append(_card("invariants", "?", "invariants.json missing", "bad"))
    elif failing:
        cards.append(_card("invariants", f'<span class="bad-t">{len(failing)} failing</span>',
                           ", ".join(f'<span class="bad-t">{_e(n)}</span>' for n in failing), "bad"))
    else:
        cards.append(_card("invariants", '<span class="ok-t">all green</span>',
                           f"{len(summary['invariants'])} checks, 0 violations", "ok"))
    cards.append(_card("faults injected", _fmt(len(summary["faults"])),
                       (", ".join(f"{_e(k)} ×{v}" for k, v in summary["faults"].items()) or "none")
                       + (f" · {len(data.run_events)} events of the run itself" if data.run_events else "")))
    parts.append(f'<div class="cards">{"".join(cards)}</div>')
    if not summary["calls"]:
        parts.append('<h2>Calls</h2><div class="empty">There are no calls in this run: '
                     "nothing was recorded in calls/*.csv.</div>")

    # targets
    def mark(ok: bool) -> str:
        return '<span class="ok-t">✓</span>' if ok else '<span class="bad-t">✗</span>'

    over = [(n, r) for n, r in summary["rpcs"].items() if r["target"] and (r["p99_ms"] or 0) > RPC_P99_TARGET_MS]
    missed_by = ", ".join(f"<code>{_e(n)}</code> ({_fmt(r['p99_ms'])} ms)" for n, r in over)
    calm_over = [(n, r) for n, r in summary["rpcs"].items()
                 if r["target"] and (r["p99_outside_faults_ms"] or 0) > RPC_P99_TARGET_MS]
    calm_missed_by = ", ".join(f"<code>{_e(n)}</code> ({_fmt(r['p99_outside_faults_ms'])} ms)" for n, r in calm_over)
    items = [f"<li>{mark(t['rpc_p99_le_100ms'])} every RPC's p99 ≤ 100 ms"
             + (f" — missed by {missed_by}" if over else "") + "</li>",
             f"<li>{mark(t['rpc_p99_le_100ms_outside_faults'])} every RPC's p99 ≤ 100 ms outside the fault "
             f"windows (the database restarting, a provider down, the functions restarting, each plus "
             f"{RECOVERY_S:g} s)" + (f" — missed by {calm_missed_by}" if calm_over else "") + "</li>",
             f"<li>{mark(t['first_offer_p95_le_2s'])} p95 request → first offer ≤ 2 s "
             f"({_fmt(fo['p95_s'], ' s')})</li>",
             f"<li>{mark(t['invariants_clean'])} zero invariant violations "
             f"({_fmt(summary['violations'])} found)</li>"]
    statements = _top_statements(data.dbstats)
    if over and statements:
        first = statements[0]
        items.append(f"<li>The statement at the top of the database's own view (dbstats.json): "
                     f"<code>{_e(str(first.get('query', ''))[:300])}</code></li>")
    parts.append(f'<h2>Targets</h2><ul class="targets">{"".join(items)}</ul>')

    # plots
    parts.append("<h2>Plots</h2>")
    for name, heading, caption in PLOTS:
        if name in failed:
            continue
        parts.append(f'<figure><img src="{name}" alt="{_e(heading)}"><figcaption><b>{_e(heading)}.</b> '
                     f"{_e(caption)}</figcaption></figure>")

    # per RPC
    parts.append("<h2>Calls per RPC</h2>")
    if summary["rpcs"]:
        rows, bad = [], []
        for name, r in summary["rpcs"].items():
            missed = r["target"] and (r["p99_ms"] or 0) > RPC_P99_TARGET_MS
            share = f" ({100 * r['errors'] / r['count']:.1f} %)" if r["errors"] else ""
            rows.append([f"<code>{_e(name)}</code>", _fmt(r["count"]), _fmt(r["errors"]) + share,
                         _fmt(r["p50_ms"]), _fmt(r["p95_ms"]), _fmt(r["p99_ms"]), _fmt(r["max_ms"]),
                         _fmt(r["p99_outside_faults_ms"]),
                         (mark(not missed) if r["target"] else '<span class="dim">no target</span>')])
            bad.append(missed)
        parts.append(_table(("call", "count", "errors", "p50 ms", "p95 ms", "p99 ms", "max ms",
                             "p99 ms outside faults", "p99 ≤ 100 ms"), rows, (1, 2, 3, 4, 5, 6, 7), bad))
    else:
        parts.append('<p class="dim">There are no calls in this run.</p>')
    ra = summary["request_to_accept"]
    parts.append("<h3>Requests</h3>" + _table(
        ("", "reached", "never", "p50 s", "p95 s", "p99 s", "max s"),
        [[label, _fmt(s["count"]), _fmt(s["never"]), _fmt(s["p50_s"]), _fmt(s["p95_s"]), _fmt(s["p99_s"]),
          _fmt(s["max_s"])] for label, s in (("request → first offer", fo), ("request → accept", ra))],
        (1, 2, 3, 4, 5, 6)))

    # errors
    parts.append("<h2>Errors by code</h2>")
    if summary["errors_by_code"]:
        total = sum(summary["errors_by_code"].values())
        parts.append(_table(
            ("code", "meaning", "count", "share", "from"),
            ([f"<code>{_e(code)}</code>", _e(_code_meaning(code)), _fmt(n), f"{100 * n / total:.1f} %",
              ", ".join(f"<code>{_e(k)}</code> ×{v}" for k, v in data.error_names[code].most_common(4))]
             for code, n in summary["errors_by_code"].items()), (2, 3)))
    else:
        parts.append('<p class="dim">No call failed.</p>')

    # invariants
    parts.append("<h2>Invariants</h2>")
    if data.invariants is None:
        parts.append('<p class="bad-t">invariants.json is missing: no result to show.</p>')
    elif not data.invariants:
        parts.append('<p class="dim">No checks ran.</p>')
    else:
        rows = []
        for inv in data.invariants:
            count = int(inv.get("count") or 0)
            evidence = inv.get("evidence") or []
            ev = _records_table(evidence[:10]) if evidence and all(isinstance(x, dict) for x in evidence) \
                else (_value_html(evidence) if evidence else "")
            state = f'<span class="bad-t">✗ {count}</span>' if count else '<span class="ok-t">✓ 0</span>'
            rows.append([f"<b>{_e(inv.get('name', '?'))}</b>", _e(inv.get("description", "")), state, ev])
        parts.append(_table(("check", "what it says", "violations", "evidence"), rows, (2,),
                            [bool(i.get("count")) for i in data.invariants]))

    # faults
    parts.append("<h2>Faults</h2>")
    if data.marks:
        parts.append(_table(("fault", "at s", "until s", "what happened"),
                            ([_e(m.fault), _fmt(round(m.start, 1)),
                              "—" if m.end is None else "end of run" if math.isinf(m.end) else _fmt(round(m.end, 1)),
                              _e(m.detail)] for m in data.marks[:200]), (1, 2)))
        if len(data.marks) > 200:
            parts.append(f'<p class="dim">… and {len(data.marks) - 200} more in faults.csv.</p>')
    else:
        parts.append('<p class="dim">No fault was injected.</p>')
    if data.run_events:
        parts.append("<h3>The run's own events</h3>" + _table(
            ("at s", "what happened"), ([_fmt(round(e.t, 1)), _e(e.detail)] for e in data.run_events), (0,)))

    # database
    parts.append("<h2>The database's view</h2>")
    parts.append(_db_html(data.dbstats) if data.dbstats else '<p class="dim">dbstats.json is missing.</p>')

    # options
    parts.append("<h2>The run</h2>")
    if opts or summary["results"]:
        items_ = list(opts.items()) + list(summary["results"].items())
        parts.append(_table(("option", "value"), ([_e(k), _value_html(v)] for k, v in items_)))
    else:
        parts.append('<p class="dim">run.json is missing: the options are unknown.</p>')
    parts.append('<p class="dim">Percentiles are nearest-rank (an observed value). Machine-readable: '
                 '<a href="summary.json">summary.json</a>.</p></main></body></html>')
    return "\n".join(parts)


def write(run_dir: Path) -> dict[str, Any]:
    """Writes index.html, the PNG plots (PLOTS) and summary.json into run_dir; returns the summary."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    data = _load(run_dir)
    summary = summarize(data)
    failed = _plots(run_dir, data, summary)
    (run_dir / "index.html").write_text(_page(summary, data, failed), encoding="utf-8")
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str, allow_nan=False) + "\n")
    return summary
