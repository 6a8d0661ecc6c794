"""The faults of a run (`--faults`), and when they happen: a schedule drawn from the run's seed.

Times are seconds of real time since the run started (`t` of faults.csv). The same seed, faults and
real duration give the same schedule. Each fault has a window of its own in the run, so that their
effects can be told apart in the report, and every window ends before 85% of the run, so that the
system has time to recover before the run drains and the final checks run:

- webhooks: on for the whole run (`WebhookFaults` of the Stripe and LiveKit stubs).
- provider_outage: Stripe, LiveKit and the email API fail for 5–15% of the run, starting between
  15% and 35%; the first half of the window they answer 500, the second half they time out.
- worker_kill: armed at a time between 30% and 50%; the job worker is killed (SIGKILL) while it is
  between a provider's answer and the settlement of that job (the worst moment: the side effect is
  done, the queue does not know). Killed anyway, between jobs, if none came by 80%.
- db_restart: once, between 50% and 70%.
- clock_skew: the functions' clock is off by a seeded skew from the start, and the functions
  restart with a new skew (of the other sign) once, between 40% and 60%.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from shared.dev.sim.spec import FAULTS, RunSpec

# What NTP keeps a synced clock within: ntpd (and chrony's default for a running daemon) slews an
# offset smaller than 128 ms and steps the clock past it, so a clock NTP keeps in sync is off by at
# most 128 ms. The tolerances the skew meets are wider: our JWT leeway (5 s), LiveKit's token
# verifier (60 s), Stripe's webhook signature tolerance (300 s).
MAX_SKEW_S = 0.128
MIN_SKEW_S = 0.020  # a skew too small to tell apart from none would test nothing

WEBHOOK_DUPLICATE = 0.10
WEBHOOK_REORDER = 0.10
WEBHOOK_DROP = 0.05


@dataclass(frozen=True)
class Planned:
    """One fault action at `at` seconds of real time: what the orchestrator does then."""

    at: float
    fault: str   # one of spec.FAULTS
    action: str  # webhooks: "on"; provider_outage: "500" / "timeout" (for `seconds`); worker_kill: "arm";
    #              db_restart: "restart"; clock_skew: "skew" (to `skew_s`)
    seconds: float = 0.0
    skew_s: float = 0.0


class FaultError(ValueError):
    """An unknown fault name or an empty list."""


def parse(text: str) -> list[str]:
    """`all`, `none` or a comma list of spec.FAULTS → the faults on, in spec.FAULTS order."""
    text = text.strip().lower()
    if text == "all":
        return list(FAULTS)
    if text in ("none", ""):
        return []
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in FAULTS]
    if unknown:
        raise FaultError(f"unknown fault {', '.join(unknown)} (known: {', '.join(FAULTS)}; or all, none)")
    return [f for f in FAULTS if f in names]


def _skew(rng: random.Random, sign: int) -> float:
    return sign * round(rng.uniform(MIN_SKEW_S, MAX_SKEW_S), 4)


def schedule(run: RunSpec) -> list[Planned]:
    """The run's fault actions in time order; deterministic from run.seed, run.faults and the real duration.

    Every fault draws from a random stream of its own, so turning one fault on or off does not move
    the others."""
    total = run.real_duration_s
    out: list[Planned] = []

    def rng(fault: str) -> random.Random:
        return random.Random(f"{run.seed}:{fault}")  # noqa: S311 - a reproducible schedule, not a secret

    if "webhooks" in run.faults:
        out.append(Planned(0.0, "webhooks", "on"))
    if "provider_outage" in run.faults:
        r = rng("provider_outage")
        start = r.uniform(0.15, 0.35) * total
        length = r.uniform(0.05, 0.15) * total
        out.append(Planned(start, "provider_outage", "500", seconds=length / 2))
        out.append(Planned(start + length / 2, "provider_outage", "timeout", seconds=length / 2))
    if "worker_kill" in run.faults:
        out.append(Planned(rng("worker_kill").uniform(0.30, 0.50) * total, "worker_kill", "arm"))
    if "db_restart" in run.faults:
        out.append(Planned(rng("db_restart").uniform(0.50, 0.70) * total, "db_restart", "restart"))
    if "clock_skew" in run.faults:
        r = rng("clock_skew")
        sign = r.choice((-1, 1))
        out.append(Planned(0.0, "clock_skew", "skew", skew_s=_skew(r, sign)))
        out.append(Planned(r.uniform(0.40, 0.60) * total, "clock_skew", "skew", skew_s=_skew(r, -sign)))
    out.sort(key=lambda p: (p.at, FAULTS.index(p.fault)))
    return out


KILL_DEADLINE = 0.80  # of the run: an armed worker_kill with no job in flight by then kills between jobs
