"""Resend, stubbed: `POST /emails` answers 200 `{"id": …}` like Resend, records each email, and
honours `Idempotency-Key` as Resend documents it: the same key and body: the first answer again,
nothing new sent; the same key with another body: 409 `invalid_idempotent_request`; the same key
while a request with it is still in progress: 409 `concurrent_idempotent_requests`; a key that is
not 1–256 characters: 400 `invalid_idempotency_key`. `set_outage` makes it answer 500 (or hang) for
a while; `set_send_delay` holds each accepted email that long before answering (a slow send, during
which its key is in progress)."""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from typing import Any

from shared.dev.stubs.server import Answer, Outage, Recorded, StubServer


def _error(status: int, name: str, message: str) -> Answer:
    return status, {"statusCode": status, "name": name, "message": message}


class ResendStub:
    def __init__(self, *, max_calls: int | None = 10000, keep_emails: int = 10000) -> None:
        self.outage = Outage()
        self.lock = threading.Lock()
        self.emails: list[dict[str, Any]] = []  # the latest `keep_emails` sent: {id, key, body}
        self.keep_emails = keep_emails
        self.by_key: dict[str, tuple[str, str]] = {}  # idempotency key → (body digest, email id)
        self.in_progress: set[str] = set()  # keys whose first request has not been answered yet
        self.send_delay = 0.0
        self.counts = {"sent": 0, "replayed": 0, "conflicts": 0, "concurrent": 0, "rejected": 0}
        self.server = StubServer(self._respond, max_calls=max_calls)

    @property
    def url(self) -> str:
        return self.server.url

    def set_outage(self, seconds: float, mode: str = "500") -> None:
        self.outage.set(seconds, mode)

    def set_send_delay(self, seconds: float) -> None:
        self.send_delay = max(0.0, seconds)

    def stats(self) -> dict[str, int]:
        with self.lock:
            return {**self.counts, "outage_answers": self.outage.answered}

    def close(self) -> None:
        self.server.close()

    def _respond(self, rec: Recorded) -> Answer:
        path = rec.path.split("?")[0]
        if rec.method != "POST" or path.rstrip("/") != "/emails":
            return _error(404, "not_found", f"{rec.method} {path} does not exist")
        down = self.outage.check(_error(500, "internal_server_error", "simulated outage"))
        if down is not None:
            return down
        if not (rec.header("Authorization") or "").removeprefix("Bearer ").strip():
            with self.lock:
                self.counts["rejected"] += 1
            return _error(401, "missing_api_key", "Missing API key in the authorization header")
        try:
            body = rec.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not body.get("to") or not body.get("from") or not body.get("subject"):
            with self.lock:
                self.counts["rejected"] += 1
            return _error(422, "validation_error", "to, from and subject are required")
        key = rec.header("Idempotency-Key")
        if key is not None and not 1 <= len(key) <= 256:
            with self.lock:
                self.counts["rejected"] += 1
            return _error(400, "invalid_idempotency_key", "The key must be between 1-256 chars.")
        digest = hashlib.sha256(rec.body).hexdigest()
        with self.lock:
            if key and key in self.in_progress:
                self.counts["concurrent"] += 1
                return _error(409, "concurrent_idempotent_requests",
                              "Same idempotency key used while original request is still in progress")
            if key and key in self.by_key:
                seen_digest, email_id = self.by_key[key]
                if seen_digest != digest:
                    self.counts["conflicts"] += 1
                    return _error(409, "invalid_idempotent_request",
                                  "Same idempotency key used with a different request payload")
                self.counts["replayed"] += 1
                return 200, {"id": email_id}
            email_id = str(uuid.uuid4())
            delay = self.send_delay
            if key and delay:
                self.in_progress.add(key)
        if delay:
            time.sleep(delay)  # the email is being sent: its key is in progress
        with self.lock:
            if key:
                self.in_progress.discard(key)
                self.by_key[key] = (digest, email_id)
            self.emails.append({"id": email_id, "key": key, "body": body})
            if len(self.emails) > 2 * self.keep_emails:
                del self.emails[: len(self.emails) - self.keep_emails]
            self.counts["sent"] += 1
        return 200, {"id": email_id}
