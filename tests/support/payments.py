"""Shared setup for the payments tests (this module holds no tests).

- `FakeStripe`, `Events`, `charge_for` (shared/dev/stubs/stripe.py, re-exported): Stripe's API
  answers for every call we make and real-shaped events; `sign` signs with the stripe library's own
  `WebhookSignature.generate_signature_header` (the platform endpoint's test secret by default).
- `Pay` (fixture `pay`): a database of its own (`fresh_url`) with the environment pointing the
  HTTP functions, the pool and the Stripe client at it and at the fake.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import flask
import psycopg
import pytest
from psycopg.rows import dict_row

from functions.checkout import create_checkout
from functions.connect import connect_onboarding
from functions.webhooks.stripe import stripe_webhook
from shared import db as shared_db
from shared import payments, stripe_client
from shared.config import get_settings
from shared.dev.stubs.stripe import API_VERSION, Events, FakeStripe, charge_for
from shared.dev.stubs.stripe import sign as stub_sign
from shared.dev.tokens import make_token
from tests.support.delivery import deliver, release_hold
from tests.support.factories import accept, make_customer, make_intake, make_mechanic, make_vehicle
from tests.support.harness import Db

__all__ = ["API_VERSION", "CONNECT_SECRET", "WEBHOOK_SECRET", "Events", "FakeStripe", "Pay", "call", "charge_for",
           "fake_stripe", "pay", "sign"]

JWT_SECRET = "payments-test-jwt-secret-0123456789abcdef"
WEBHOOK_SECRET = "whsec_test_platform_0123456789abcdef"
CONNECT_SECRET = "whsec_test_connect_0123456789abcdef"
FLASK = flask.Flask("payments-tests")


def sign(payload: str, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """shared/dev/stubs/stripe.py's `sign`, with the platform endpoint's test secret by default."""
    return stub_sign(payload, secret, timestamp)


def call(fn: Any, *, body: Any = None, raw: bytes | str | None = None, headers: dict[str, str] | None = None,
         method: str = "POST") -> tuple[int, Any]:
    data = raw if raw is not None else (json.dumps(body) if body is not None else None)
    with FLASK.test_request_context("/", method=method, data=data, headers=headers or {},
                                    content_type="application/json"):
        response = fn(flask.request)
        return response.status_code, response.get_json(silent=True)


# ---------------------------------------------------------------------------------------------
# The fixture
# ---------------------------------------------------------------------------------------------
class Pay:
    """A payments world on a database of its own."""

    def __init__(self, url: str, fake: FakeStripe) -> None:
        self.url = url
        self.fake = fake
        self.events = Events()
        self.conn = psycopg.connect(url, prepare_threshold=None)
        self.conn.execute("select 1")
        self.db = Db(self.conn)
        self.observer = psycopg.connect(url, autocommit=True, prepare_threshold=None, row_factory=dict_row)

    def close(self) -> None:
        self.conn.close()
        self.observer.close()

    # -- database -----------------------------------------------------------------------------
    def commit(self) -> None:
        self.conn.commit()
        self.conn.execute("select 1")

    def rows(self, query: str, params: Any = None) -> list[dict[str, Any]]:
        return self.observer.execute(query, params).fetchall()

    def row(self, query: str, params: Any = None) -> dict[str, Any] | None:
        rows = self.rows(query, params)
        assert len(rows) <= 1
        return rows[0] if rows else None

    def val(self, query: str, params: Any = None) -> Any:
        row = self.observer.execute(query, params).fetchone()
        return None if row is None else next(iter(row.values()))

    def job(self, kind: str) -> dict[str, Any] | None:
        """The one job of a kind (its retry state: attempts, next_attempt_at, status, last_error)."""
        return self.row("select id, kind, dedupe_key, status::text as status, attempts, next_attempt_at, last_error"
                        " from private.outbox where kind = %s", (kind,))

    def max_attempts(self, kind: str) -> int:
        return self.val("select max_attempts from private.job_kinds where kind = %s", (kind,))

    def issues(self) -> list[dict[str, Any]]:
        return (self.rows("select * from private.payment_integrity_issues")
                + self.rows("select * from private.credit_integrity_issues")
                + self.rows("select * from private.referral_integrity_issues"))

    def assert_books_balance(self) -> None:
        assert self.issues() == []

    # -- personas -----------------------------------------------------------------------------
    def token(self, user: uuid.UUID | str, email: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {make_token(secret=JWT_SECRET, user_id=str(user), email=email)}"}

    def customer(self, name: str = "Casey Customer") -> uuid.UUID:
        user = make_customer(self.db, name)
        self.commit()
        return user

    def mechanic(self, *, approved: bool = True, organization: uuid.UUID | None = None,
                 affiliated: bool = True) -> uuid.UUID:
        mechanic = make_mechanic(self.db, approved=approved)
        if organization is not None:
            self.db.execute("insert into public.organization_members (organization_id, user_id, role)"
                            " values (%s, %s, 'mechanic')", (organization, mechanic))
            self.db.execute("update public.mechanics set organization_id = %s, account_type = %s where id = %s",
                            (organization, "workshop_mechanic" if affiliated else "individual_mechanic", mechanic))
        self.commit()
        return mechanic

    def workshop(self) -> tuple[uuid.UUID, uuid.UUID]:
        """(organization, owner)"""
        owner = self.db.make_user(user_metadata={"full_name": "Wren Workshop"})
        org = self.db.scalar("insert into public.organizations (name) values ('Bay Motors') returning id")
        self.db.execute("insert into public.organization_members (organization_id, user_id, role)"
                        " values (%s, %s, 'owner')", (org, owner))
        self.commit()
        return org, owner

    def intake(self, customer: uuid.UUID, *, vehicle: bool = True) -> uuid.UUID:
        v = make_vehicle(self.db, customer) if vehicle else None
        intake = make_intake(self.db, customer, v)
        self.commit()
        return intake

    def grant_credit(self, customer: uuid.UUID, cents: int) -> None:
        admin = self.db.make_user(app_metadata={"role": "admin"})
        with self.db.as_user(admin):
            self.db.rpc("admin_grant_credit", p_customer_id=customer, p_amount_cents=cents, p_reason="goodwill")
        self.commit()

    def admin(self) -> uuid.UUID:
        admin = self.db.make_user(app_metadata={"role": "admin"})
        self.commit()
        return admin

    # -- flows through the real entry points ---------------------------------------------------
    def checkout(self, customer: uuid.UUID, *, plan: str = "video15", intake: uuid.UUID | None = None,
                 expect: int = 200, **extra: Any) -> dict[str, Any]:
        body = {"plan_code": plan, "intake_id": str(intake or self.intake(customer)),
                "success_url": "https://app.example.test/done?cs={CHECKOUT_SESSION_ID}",
                "cancel_url": "https://app.example.test/pricing", **extra}
        status, payload = call(create_checkout, body=body, headers=self.token(customer))
        assert status == expect, payload
        return payload

    def send(self, event: dict[str, Any] | str | bytes, *, secret: str = WEBHOOK_SECRET,
             header: str | None = None) -> tuple[int, Any]:
        payload = event if isinstance(event, str | bytes) else json.dumps(event)
        if header is None:
            header = sign(payload.decode() if isinstance(payload, bytes) else payload, secret)
        headers = {"Stripe-Signature": header}
        return call(stripe_webhook, raw=payload, headers=headers)

    def deliver(self, event: dict[str, Any]) -> dict[str, Any]:
        status, payload = self.send(event)
        assert status == 200, payload
        return payload

    def booking(self, booking_id: Any) -> dict[str, Any]:
        row = self.row("select * from public.bookings where id = %s", (booking_id,))
        assert row is not None
        return row

    def paid_booking(self, customer: uuid.UUID, *, plan: str = "video15", amount: int | None = None,
                     **extra: Any) -> dict[str, Any]:
        """Checkout, then Stripe reports it paid. Returns {booking_id, cs, pi, session_id, payment_id, amount}."""
        out = self.checkout(customer, plan=plan, **extra)
        booking = self.booking(out["booking_id"])
        pi = "pi_" + uuid.uuid4().hex[:20]
        amount = amount if amount is not None else booking["price_cents"]
        self.deliver(self.events.completed(booking["stripe_checkout_session_id"], str(booking["id"]), amount, pi))
        payment = self.row("select * from public.payments where booking_id = %s", (booking["id"],))
        assert payment is not None
        return {"booking_id": booking["id"], "cs": booking["stripe_checkout_session_id"], "pi": pi,
                "session_id": payment["session_id"], "payment_id": payment["id"], "amount": amount}

    def serve(self, mechanic: uuid.UUID, session_id: Any, *, release: bool = True) -> None:
        """The mechanic takes the session's request; both sides start it and take part; the mechanic
        ends it (completed, delivered). With `release`, the objection window then ends and the
        payouts are released (as the `delivery` job does once payments.payout_hold has passed)."""
        self.commit()  # a fresh transaction: now() must be later than the request's creation
        request_id = self.val("select id from public.session_requests where session_id = %s", (session_id,))
        accept(self.db, mechanic, request_id)
        deliver(self.db, session_id)
        self.commit()
        if release:
            release_hold(self.db, session_id)
            self.commit()

    def onboard(self, user: uuid.UUID, organization: uuid.UUID | None = None, *,
                activate: bool = True) -> str:
        body: dict[str, Any] = {"return_url": "https://app.example.test/payouts/done",
                                "refresh_url": "https://app.example.test/payouts/retry"}
        if organization is not None:
            body["organization_id"] = str(organization)
        status, payload = call(connect_onboarding, body=body, headers=self.token(user))
        assert status == 200, payload
        if activate:
            self.deliver(self.events.account(payload["stripe_account_id"]))
        return payload["stripe_account_id"]

    def process(self, **kw: Any) -> dict[str, int]:
        return payments.process_payouts(**kw)

    def drain(self, rounds: int = 10) -> None:
        """Run the worker until it finds nothing to do (retry delays skipped by a far-future now)."""
        import datetime as dt

        far = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        for _ in range(rounds):
            if not self.process(now=far):
                return


@pytest.fixture
def fake_stripe() -> Iterator[FakeStripe]:
    fake = FakeStripe()
    yield fake
    fake.close()


@pytest.fixture
def pay(fresh_url: str, fake_stripe: FakeStripe, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pay]:
    monkeypatch.setenv("DATABASE_URL", fresh_url)
    monkeypatch.setenv("SUPABASE_JWT_SECRET", JWT_SECRET)
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_payments_0123456789")
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.setenv("STRIPE_CONNECT_WEBHOOK_SECRET", CONNECT_SECRET)
    monkeypatch.setenv("STRIPE_API_BASE", fake_stripe.url)
    get_settings.cache_clear()
    shared_db.close_pool()
    stripe_client.set_client(stripe_client.make_client("sk_test_payments_0123456789", fake_stripe.url,
                                                       max_network_retries=0))
    world = Pay(fresh_url, fake_stripe)
    try:
        yield world
    finally:
        world.close()
        shared_db.close_pool()
        stripe_client.set_client(None)
        get_settings.cache_clear()
