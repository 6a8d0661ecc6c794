"""A local HTTP stub server that records every request and answers with a programmable handler,
and the outage switch the provider stubs share."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def header(self, name: str) -> str | None:
        """A header by name, in any case."""
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


class NoAnswer(Exception):
    """Raised by a responder: the connection is closed without an answer (the client sees it fail)."""


# (status, payload) or (status, payload, content type); a bytes payload is sent as it is, anything
# else as JSON.
Answer = tuple[int, Any] | tuple[int, Any, str]
Responder = Callable[[Recorded], Answer]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # a simulated city's bursts: the default backlog (5) refuses connections


@dataclass
class StubServer:
    responder: Responder
    calls: list[Recorded] = field(default_factory=list)
    # keep at most this many recorded calls (the oldest go first); None keeps all (tests)
    max_calls: int | None = None

    def __post_init__(self) -> None:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                rec = Recorded(self.command, self.path, dict(self.headers.items()), self.rfile.read(length))
                stub._record(rec)
                try:
                    answer = stub.responder(rec)
                except NoAnswer:
                    self.close_connection = True
                    return
                status, payload = answer[0], answer[1]
                content_type = answer[2] if len(answer) == 3 else "application/json"
                body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_DELETE = do_PUT = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self._calls_lock = threading.Lock()
        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def _record(self, rec: Recorded) -> None:
        with self._calls_lock:
            self.calls.append(rec)
            if self.max_calls is not None and len(self.calls) > 2 * self.max_calls:
                del self.calls[: len(self.calls) - self.max_calls]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Outage:
    """A provider's API down for a while: `"500"` answers 500 at once; `"timeout"` holds each request
    until the outage ends and then closes the connection unanswered (past a client's timeout the
    client gives up first; either way the call fails)."""

    MODES = ("500", "timeout")

    def __init__(self) -> None:
        self.until = 0.0
        self.mode = "500"
        self.answered = 0  # requests that met the outage

    def set(self, seconds: float, mode: str = "500") -> None:
        if mode not in self.MODES:
            raise ValueError(f"outage mode must be one of {self.MODES}, not {mode!r}")
        self.mode = mode
        self.until = time.monotonic() + seconds

    def clear(self) -> None:
        self.until = 0.0

    @property
    def active(self) -> bool:
        return time.monotonic() < self.until

    def check(self, error: Answer) -> Answer | None:
        """None outside an outage; in one, `error` (mode "500") or NoAnswer once it ends ("timeout")."""
        if not self.active:
            return None
        self.answered += 1
        if self.mode == "500":
            return error
        while self.active:
            time.sleep(min(0.05, max(0.0, self.until - time.monotonic())))
        raise NoAnswer
