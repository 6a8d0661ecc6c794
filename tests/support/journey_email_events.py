"""Resend's delivery events in tests: events signed with the svix library itself, sent to the real
`resend_webhook` function on a database of its own, and a local Resend stub that gives each sent
email an id."""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import flask
import psycopg
import pytest
from svix.webhooks import Webhook

from functions.webhooks.resend import resend_webhook
from shared import db as shared_db
from shared.config import get_settings
from shared.dev.stubs.server import Recorded, StubServer
from tests.support.harness import Db

SECRET = "whsec_" + base64.b64encode(b"resend-webhook-test-secret-0123").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"someone-elses-secret-0123456789").decode()
FLASK = flask.Flask("resend_events_tests")
_ids = itertools.count(1)


def msg_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def event(kind: str, email_id: str, at: dt.datetime | None = None, **data: Any) -> dict[str, Any]:
    """A Resend webhook event (`email.delivered`, …) about the email `email_id`."""
    when = (at or dt.datetime.now(dt.UTC)).isoformat().replace("+00:00", "Z")
    return {
        "type": kind,
        "created_at": when,
        "data": {
            "email_id": email_id,
            "created_at": when,
            "from": "Auto Doctor <no-reply@autodoctor.app>",
            "to": ["someone@example.test"],
            "subject": "A subject",
            **data,
        },
    }


def bounce(kind: str = "Permanent") -> dict[str, Any]:
    return {"bounce": {"type": kind, "subType": "General", "message": "the mailbox does not exist"}}


def sign(
    payload: str, *, secret: str = SECRET, svix_id: str | None = None, timestamp: dt.datetime | None = None
) -> dict[str, str]:
    """The three Svix headers of a payload, as Resend sends them."""
    svix_id = svix_id or msg_id()
    when = timestamp or dt.datetime.now(dt.UTC)
    signature = Webhook(secret).sign(svix_id, when, payload)
    return {"svix-id": svix_id, "svix-timestamp": str(int(when.timestamp())), "svix-signature": signature}


def post(raw: bytes | str, headers: dict[str, str], method: str = "POST") -> tuple[int, Any]:
    with FLASK.test_request_context("/", method=method, data=raw, headers=headers, content_type="application/json"):
        response = resend_webhook(flask.request)
        return response.status_code, response.get_json(silent=True)


def send(evt: dict[str, Any] | str, *, svix_id: str | None = None, secret: str = SECRET) -> tuple[int, Any]:
    """Sign and deliver one event (a dict, or the raw text to sign)."""
    payload = evt if isinstance(evt, str) else json.dumps(evt)
    return post(payload, sign(payload, secret=secret, svix_id=svix_id))


class Resend:
    """A world on a database of its own: the webhook configured, Resend's API a local stub."""

    def __init__(self, url: str, stub: StubServer) -> None:
        self.url = url
        self.stub = stub
        self.conn = psycopg.connect(url, prepare_threshold=None)
        self.conn.execute("select 1")
        self.db = Db(self.conn)

    def commit(self) -> None:
        self.conn.commit()

    def val(self, query: str, params: Any = None) -> Any:
        self.conn.rollback()  # see what others committed
        return self.db.scalar(query, params)

    def rows(self, query: str, params: Any = None) -> list[dict[str, Any]]:
        self.conn.rollback()
        return self.db.all(query, params)

    def sent_email(
        self, *, template: str = "booking_confirmed", to: str = "casey@example.test", user_id: uuid.UUID | None = None
    ) -> str:
        """An email we sent through Resend (recorded as the sender records it); its Resend id."""
        resend_id = f"em_{next(_ids)}_{uuid.uuid4().hex[:8]}"
        self.conn.rollback()
        self.db.scalar(
            "select private.record_email_sent(%s, %s, %s, %s, null, %s)",
            (resend_id, f"test:{resend_id}", template, user_id, to),
        )
        self.commit()
        return resend_id

    def delivery(self, resend_id: str) -> dict[str, Any]:
        rows = self.rows("select * from private.email_deliveries where resend_id = %s", (resend_id,))
        assert len(rows) == 1
        return rows[0]

    def state(self) -> dict[str, Any]:
        """Row counts of everything the webhook may write, and the deliveries' last change."""
        counts = {
            t: self.val(f"select count(*) from private.{t}")
            for t in ("resend_events", "email_deliveries", "email_suppressions")
        }
        counts["changed"] = self.val("select coalesce(max(updated_at)::text, '') from private.email_deliveries")
        return counts

    def suppressions(self) -> list[dict[str, Any]]:
        return self.rows("select address, reason, lifted_at from private.email_suppressions order by id")

    def close(self) -> None:
        self.conn.close()


def stub_answer(rec: Recorded) -> tuple[int, Any]:
    return 200, {"id": f"em_stub_{next(_ids)}_{uuid.uuid4().hex[:8]}"}


@contextmanager
def resend_world(fresh_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Resend]:
    """The `resend` fixture of tests/journey/test_email_events.py."""
    stub = StubServer(stub_answer)
    monkeypatch.setenv("DATABASE_URL", fresh_url)
    monkeypatch.setenv("RESEND_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("RESEND_API_KEY", "re_test_key")
    monkeypatch.setenv("RESEND_API_BASE", stub.url)
    monkeypatch.delenv("EMAIL_FILES_DIR", raising=False)
    get_settings.cache_clear()
    shared_db.close_pool()
    world = Resend(fresh_url, stub)
    try:
        yield world
    finally:
        world.close()
        stub.close()
        shared_db.close_pool()
        get_settings.cache_clear()
