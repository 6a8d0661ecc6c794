"""Webhook delivery with a provider's faults: a background thread and a queue per stub.

Each event is signed when it is sent (a retry carries a fresh signature, as the providers'
timestamps do) and POSTed to the endpoint. The faults, drawn per event from one seeded random
source:

- duplicate: the event is sent twice; half the time both at once (two threads), else one after
  the other. Both providers deliver at least once.
- reorder: the event is held back and sent right after the next event (or after `hold_s` when no
  other event comes); while one is held, the next is not held too (it overtakes). Neither provider
  promises an order.
- drop: the first delivery never reaches the endpoint. With `retry` (Stripe) a dropped or failed
  delivery (not 2xx, refused, timed out) is tried again with backoff until `max_attempts`; without
  (LiveKit) it is gone.
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Signer = Callable[[bytes], dict[str, str]]  # body → the headers of one delivery (signature included)

STAT_KEYS = ("events", "sent", "duplicated", "reordered", "dropped", "retried", "failed", "abandoned")


@dataclass
class WebhookFaults:
    """Probabilities per event (0..1) and the seed of their draws."""

    duplicate: float = 0
    reorder: float = 0
    drop: float = 0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("duplicate", "reorder", "drop"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"{name} must be a probability, not {value}")


@dataclass(order=True)
class _Item:
    due: float
    seq: int
    event_id: str = field(compare=False)
    body: bytes = field(compare=False, default=b"")
    attempt: int = field(compare=False, default=0)  # deliveries made so far
    task: Callable[[], None] | None = field(compare=False, default=None)  # a scheduled callback instead
    counted: bool = field(compare=False, default=True)  # part of in_flight()
    was_held: bool = field(compare=False, default=False)


class WebhookSender:
    """Delivers events to `url` on its own thread; `in_flight()` is what it still has to do."""

    def __init__(self, name: str, url: str, signer: Signer, faults: WebhookFaults | None = None, *,
                 retry: bool, retry_base_s: float = 1.0, retry_max_s: float = 30.0, max_attempts: int = 16,
                 timeout_s: float = 10.0, hold_s: float = 1.0, content_type: str = "application/json") -> None:
        self.name = name
        self.url = url
        self.signer = signer
        self.faults = faults or WebhookFaults()
        self.retry = retry
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.max_attempts = max_attempts
        self.timeout_s = timeout_s
        self.hold_s = hold_s
        self.content_type = content_type
        self.rng = random.Random(self.faults.seed)  # noqa: S311 -- a simulation's draws, not secrets
        self.counts = dict.fromkeys(STAT_KEYS, 0)
        self.log: list[tuple[str, int]] = []  # (event id, status) per delivery made; 0 = no answer
        self._heap: list[_Item] = []
        self._held: list[_Item] = []  # reordered: sent after the next event
        self._busy = 0  # deliveries being made (including a concurrent duplicate)
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"webhooks-{name}", daemon=True)
        self._thread.start()

    # -- the stub's side ----------------------------------------------------------------------
    def send(self, event_id: str, body: bytes) -> None:
        """Queue one event for delivery now (faults apply)."""
        with self._cond:
            self.counts["events"] += 1
            heapq.heappush(self._heap, _Item(time.monotonic(), next(self._seq), event_id, body))
            self._cond.notify()

    def schedule(self, delay_s: float, task: Callable[[], None], *, counted: bool = True) -> None:
        """Run `task` on the sender's thread after `delay_s` (e.g. a refund settling, then its events);
        `counted` tasks are part of in_flight() (they will send events)."""
        with self._cond:
            heapq.heappush(self._heap, _Item(time.monotonic() + delay_s, next(self._seq), "", task=task,
                                             counted=counted))
            self._cond.notify()

    def in_flight(self) -> int:
        with self._cond:
            return sum(1 for i in self._heap if i.counted) + len(self._held) + self._busy

    def stats(self) -> dict[str, int]:
        with self._cond:
            return dict(self.counts)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=5)

    # -- the thread ---------------------------------------------------------------------------
    def _count(self, key: str, n: int = 1) -> None:
        with self._cond:
            self.counts[key] += n

    def _draw(self, p: float) -> bool:
        with self._cond:
            return p > 0 and self.rng.random() < p

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed:
                    now = time.monotonic()
                    if self._heap and self._heap[0].due <= now:
                        item = heapq.heappop(self._heap)
                        self._busy += 1
                        break
                    if self._held and self._held[0].due <= now:  # nothing came after it in time
                        item = self._held.pop(0)
                        self._busy += 1
                        break
                    waits = [i.due for i in self._heap[:1] + self._held[:1]]
                    self._cond.wait(timeout=max(0.0, min(waits) - now) if waits else None)
                if self._closed:
                    return
            try:
                self._process(item)
            except Exception:  # noqa: S110 -- a stub's thread must outlive one bad task
                pass
            finally:
                with self._cond:
                    self._busy -= 1

    def _process(self, item: _Item) -> None:
        if item.task is not None:
            item.task()
            return
        with self._cond:
            holding = bool(self._held)
        if item.attempt == 0 and not item.was_held and not holding and self._draw(self.faults.reorder):
            self._count("reordered")
            item.due = time.monotonic() + self.hold_s
            item.was_held = True
            with self._cond:
                self._held.append(item)
            return
        self._deliver(item)
        with self._cond:  # a held event goes right after the one that overtook it
            held, self._held = self._held, []
            self._busy += len(held)
        for h in held:
            try:
                self._deliver(h)
            finally:
                with self._cond:
                    self._busy -= 1

    def _deliver(self, item: _Item) -> None:
        first = item.attempt == 0
        if first and self._draw(self.faults.drop):
            self._count("dropped")
            item.attempt += 1
            self._after_failure(item)
            return
        if first and self._draw(self.faults.duplicate):
            self._count("duplicated")
            if self._draw(0.5):
                twin = threading.Thread(target=self._post, args=(item,), daemon=True)
                with self._cond:
                    self._busy += 1
                twin.start()
                ok = self._post_once(item)
                twin.join()
                with self._cond:
                    self._busy -= 1
            else:
                ok = self._post_once(item)
                ok = self._post_once(item) or ok
        else:
            ok = self._post_once(item)
        item.attempt += 1
        if not ok:
            self._after_failure(item)

    def _post(self, item: _Item) -> None:
        self._post_once(item)

    def _after_failure(self, item: _Item) -> None:
        if not self.retry or item.attempt >= self.max_attempts:
            self._count("abandoned")
            return
        self._count("retried")
        delay = min(self.retry_max_s, self.retry_base_s * 2 ** (item.attempt - 1))
        with self._cond:
            delay *= 0.75 + 0.5 * self.rng.random()  # jitter, as providers spread their retries
            item.due = time.monotonic() + delay
            item.seq = next(self._seq)
            heapq.heappush(self._heap, item)
            self._cond.notify()

    def _post_once(self, item: _Item) -> bool:
        headers = {"Content-Type": self.content_type, **self.signer(item.body)}
        request = urllib.request.Request(self.url, data=item.body, headers=headers, method="POST")  # noqa: S310
        status = 0
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310
                status = response.status
                response.read()
        except urllib.error.HTTPError as exc:
            status = exc.code
        except (OSError, ValueError):
            status = 0
        ok = 200 <= status < 300
        with self._cond:
            self.log.append((item.event_id, status))
            if len(self.log) > 20000:
                del self.log[:10000]
            self.counts["sent" if ok else "failed"] += 1
        return ok


def describe(stats: dict[str, Any]) -> str:
    """One line for logs: `sent=… duplicated=…`."""
    return " ".join(f"{k}={stats.get(k, 0)}" for k in STAT_KEYS)
