"""The job worker: one loop for every side effect in the queue (`private.outbox`).

For each kind (in HANDLERS order): claim a batch of due jobs (`for update skip locked`, leased
for the kind's `lease`) and commit; run each job's handler with no transaction open and no row
lock held; settle it in a transaction of its own — sent, or retried after the kind's backoff, or
dead-lettered after its `max_attempts` (the kind's `on_failure` SQL hook runs in that same
transaction). Safe to run many times at once; a run that dies mid-batch leaves jobs that are
claimed again when their lease runs out, and every handler is idempotent: it passes the job's
dedupe key to the provider as its idempotency key.

A handler takes the job's payload plus `_dedupe_key`, `_attempt` (1 for the first), `_now`
(the run's clock, None for the database's) and `_created_at` (when the job was queued: the same
on every attempt) and returns an outcome label to count (or None).
It fails by raising. docs/jobs.md lists the kinds; every row of `private.job_kinds` has a handler
here and every handler a row (a test checks both ways).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from shared import db, job_kinds
from shared.logs import log

Handler = Callable[[dict[str, Any]], Any]


def handlers() -> dict[str, Handler]:
    """Kind → handler, in the order a run works the kinds (Stripe: refund before paying out)."""
    from shared import email, payments, privacy, rooms

    return {
        job_kinds.STRIPE_REFRESH_ACCOUNT: payments.refresh_account,
        job_kinds.STRIPE_REFUND: payments.send_refund,
        job_kinds.STRIPE_TRANSFER: payments.send_transfer,
        job_kinds.STRIPE_TRANSFER_REVERSAL: payments.send_reversal,
        job_kinds.EMAIL_SEND: email.send_outbox_email,
        job_kinds.EMAIL_SUPPORT_ALERT: email.send_support_alert,
        job_kinds.LIVEKIT_DELETE_ROOM: rooms.delete_room,
        job_kinds.PRIVACY_ERASE_ACCOUNT: privacy.erase_account,
    }


class JobFailed(Exception):
    """A failure whose message is recorded as it is (no exception class prefix)."""


class JobSkipped(Exception):
    """The job cannot apply on this deployment (its provider is not configured): it ends as
    `skipped` with this reason, without retries."""


STRIPE_KINDS = (job_kinds.STRIPE_REFRESH_ACCOUNT, job_kinds.STRIPE_REFUND, job_kinds.STRIPE_TRANSFER,
                job_kinds.STRIPE_TRANSFER_REVERSAL)
OUTBOX_KINDS = (job_kinds.EMAIL_SEND, job_kinds.EMAIL_SUPPORT_ALERT, job_kinds.LIVEKIT_DELETE_ROOM,
                job_kinds.PRIVACY_ERASE_ACCOUNT)


def outcomes(*, retry: str, dead: str, ready: Callable[[], bool] | None = None) -> Callable[[Handler], Handler]:
    """Labels counted when the handler fails and its job is retried, or dead-lettered; `ready`:
    whether its provider is configured at all — when not, a run leaves the kind's jobs unclaimed
    (they wait, with their attempts intact, instead of failing toward a dead letter)."""

    def mark(fn: Handler) -> Handler:
        fn.outcome_retry = retry  # type: ignore[attr-defined]
        fn.outcome_dead = dead  # type: ignore[attr-defined]
        fn.ready = ready  # type: ignore[attr-defined]
        return fn

    return mark


@dataclass
class RunResult:
    counts: dict[str, int] = field(default_factory=lambda: {"claimed": 0, "sent": 0, "retry": 0, "dead": 0,
                                                                            "skipped": 0})
    outcomes: Counter[str] = field(default_factory=Counter)


def work(now: dt.datetime | None = None, limit: int = 50, kinds: Iterable[str] | None = None,
         registry: dict[str, Handler] | None = None) -> RunResult:
    """One run over `kinds` (default: every kind of the registry), up to `limit` jobs per kind.
    `now` None: the database's clock for claims and settles."""
    registry = registry if registry is not None else handlers()
    result = RunResult()
    for kind in (list(kinds) if kinds is not None else list(registry)):
        _work_kind(kind, registry.get(kind), now, limit, result)
    return result


# Kinds already reported as waiting for their provider, so a long-running process says it once.
_REPORTED_WAITING: set[str] = set()


def _work_kind(kind: str, handler: Handler | None, now: dt.datetime | None, limit: int, result: RunResult) -> None:
    ready = getattr(handler, "ready", None)
    if ready is not None and not ready():
        if kind not in _REPORTED_WAITING:
            _REPORTED_WAITING.add(kind)
            log("info", "jobs left waiting: provider not configured", kind=kind)
        return
    _REPORTED_WAITING.discard(kind)
    with db.transaction() as conn:
        rows = conn.execute("select * from private.outbox_claim(coalesce(%s::timestamptz, now()), %s, %s)",
                            (now, limit, [kind])).fetchall()
    result.counts["claimed"] += len(rows)
    for row in rows:
        error: str | None = None
        skipped: str | None = None
        outcome: Any = None
        try:
            if handler is None:
                raise LookupError(f"no handler for {row['kind']}")
            outcome = handler({**row["payload"], "_dedupe_key": row["dedupe_key"], "_attempt": row["attempts"],
                               "_now": now, "_created_at": row["created_at"]})
            if inspect.isawaitable(outcome):
                outcome = asyncio.run(outcome)  # type: ignore[arg-type]
        except JobSkipped as exc:
            skipped = f"skipped: {exc}"[:2000]
            log("info", "job skipped", job_id=row["id"], kind=row["kind"], reason=skipped)
        except Exception as exc:  # any failure is retried, then dead-lettered
            error = (str(exc) if isinstance(exc, JobFailed) else f"{exc.__class__.__name__}: {exc}")[:2000]
            log("warning", "job failed", job_id=row["id"], kind=row["kind"], attempt=row["attempts"], error=error)
        with db.transaction() as conn:
            if skipped is not None:
                status = db.one(conn, "select private.outbox_skip(%s, %s, coalesce(%s::timestamptz, now())) as s",
                                (row["id"], skipped, now))["s"]
            else:
                status = db.one(conn, "select private.outbox_settle(%s, %s, %s, coalesce(%s::timestamptz, now())) as s",
                                (row["id"], error is None, error, now))["s"]
        bucket = status if status in ("sent", "dead", "skipped") else "retry"
        if bucket == "skipped":
            result.counts["skipped"] += 1
            continue
        result.counts[bucket] += 1
        if error is None:
            if isinstance(outcome, str):
                result.outcomes[outcome] += 1
        else:
            label = getattr(handler, "outcome_dead" if bucket == "dead" else "outcome_retry", None)
            if label:
                result.outcomes[label] += 1


def deliver(now: dt.datetime | None = None, limit: int = 50, kinds: list[str] | None = None,
            registry: dict[str, Handler] | None = None) -> dict[str, int]:
    """One run; returns {claimed, sent, retry, dead}."""
    if now is None:
        now = dt.datetime.now(dt.UTC)
    return work(now, limit, kinds, registry).counts


def run_all(limit: int = 50) -> dict[str, Any]:
    """The cron entry point's run over every kind: counts plus the handlers' outcomes."""
    result = work(dt.datetime.now(dt.UTC), limit)
    return {**result.counts, **dict(result.outcomes)}
