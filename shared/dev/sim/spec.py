"""What a simulation run is (`RunSpec`: the options of `autodoctor simulate`) and what each worker
process is given (`WorkerSpec`). Both are plain data, picklable, written to `run.json`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

FAULTS = ("webhooks", "provider_outage", "worker_kill", "db_restart", "clock_skew")
"""`--faults all` turns on every one; `--faults webhooks,db_restart` some; `--faults none` none.

- webhooks: Stripe and LiveKit webhooks duplicated (also concurrently), reordered, dropped (Stripe
  redelivers a dropped event later, as it does; LiveKit does not, the reconcile job repairs it)
- provider_outage: Stripe, LiveKit and email APIs answer 500s and time out for a while
- worker_kill: the job worker is killed (SIGKILL) in the middle of a job, then started again
- db_restart: the database restarts mid-run (the embedded server is stopped and started; on a
  server the run does not own, every connection of the run's database is terminated)
- clock_skew: the functions' clock runs ahead of or behind the database's, within what NTP allows
"""


@dataclass
class RunSpec:
    mechanics: int
    customers: int
    rate: float                 # multiplier of the reference city's peak hour (city.REFERENCE)
    duration_s: float           # simulated seconds
    speed: float                # simulated seconds per real second (1 = real time)
    seed: int
    faults: list[str] = field(default_factory=list)
    workers: int = 2            # worker processes running the actors
    database_url: str | None = None  # None: an embedded PostgreSQL of the run's own
    out_dir: str = "sim-report"
    progress: bool = True

    @property
    def real_duration_s(self) -> float:
        return self.duration_s / self.speed

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["database_url"] = None if self.database_url is None else "(given)"
        return out


@dataclass
class WorkerSpec:
    index: int                  # 0-based
    run: RunSpec
    run_dir: str                # the run's folder (calls/<worker>.csv goes there)
    database_url: str           # the run's database (PostgREST's view of it: roles and claims per call)
    functions_url: str          # base URL of the HTTP functions (…/create_checkout, …/livekit_token)
    stripe_url: str             # the Stripe stub (its /_sim/… control endpoints)
    livekit_url: str            # the LiveKit stub (its /_sim/… control endpoints)
    jwt_secret: str             # SUPABASE_JWT_SECRET of the functions (to sign users' tokens)
    started_at: float           # time.time() when the run started (t = 0 of every record)
    mechanic_ids: list[str] = field(default_factory=list)  # the actors this worker plays
    customer_ids: list[str] = field(default_factory=list)
