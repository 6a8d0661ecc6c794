"""Shared setup for the payments tests (this module holds no tests).

- `FakeStripe`: tests/support/stubs/server.py's StubServer answering like Stripe's API for every call we
  make (checkout sessions, transfers, refunds, reversals, payment intents, accounts, account
  links), idempotent per Idempotency-Key like Stripe, with one-shot failures on demand.
- `Events`: real-shaped Stripe event JSON, signed with the stripe library's own
  `WebhookSignature.generate_signature_header`.
- `Pay` (fixture `pay`): a database of its own (`fresh_url`) with the environment pointing the
  HTTP functions, the pool and the Stripe client at it and at the fake.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

import flask
import psycopg
import pytest
import stripe
from psycopg.rows import dict_row

from functions.checkout import create_checkout
from functions.connect import connect_onboarding
from functions.webhooks.stripe import stripe_webhook
from shared import db as shared_db
from shared import payments, stripe_client
from shared.config import get_settings
from shared.dev.tokens import make_token
from tests.support.delivery import deliver, release_hold
from tests.support.factories import accept, make_customer, make_intake, make_mechanic, make_vehicle
from tests.support.harness import Db
from tests.support.stubs.server import Recorded, StubServer

JWT_SECRET = "payments-test-jwt-secret-0123456789abcdef"
WEBHOOK_SECRET = "whsec_test_platform_0123456789abcdef"
CONNECT_SECRET = "whsec_test_connect_0123456789abcdef"
API_VERSION = "2024-06-20"
FLASK = flask.Flask("payments-tests")


# ---------------------------------------------------------------------------------------------
# Stripe's API, faked
# ---------------------------------------------------------------------------------------------
def _unflatten(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding (a[b][0][c]=v) back into nested dicts (lists stay keyed by index)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        parts = key.replace("]", "").split("[")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


class FakeStripe:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ids = itertools.count(1)
        self.by_key: dict[str, tuple[int, Any]] = {}
        self.failures: list[tuple[str, int, Any]] = []
        self.refund_status = "pending"
        self.accounts: dict[str, dict[str, Any]] = {}
        self.objects: dict[str, dict[str, Any]] = {}
        self.server = StubServer(self._respond)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def calls(self) -> list[Recorded]:
        return self.server.calls

    def calls_to(self, method: str, prefix: str) -> list[Recorded]:
        return [c for c in self.calls if c.method == method and c.path.split("?")[0].startswith(prefix)]

    def params(self, call: Recorded) -> dict[str, Any]:
        return _unflatten(parse_qsl(call.body.decode(), keep_blank_values=True))

    def fail_next(self, prefix: str, status: int = 500, message: str = "simulated failure",
                  error_type: str = "api_error", times: int = 1) -> None:
        for _ in range(times):
            self.failures.append((prefix, status, {"error": {"type": error_type, "message": message}}))

    def close(self) -> None:
        self.server.close()

    # -- answers ------------------------------------------------------------------------------
    def _respond(self, rec: Recorded) -> tuple[int, Any]:
        path = rec.path.split("?")[0]
        key = next((v for k, v in rec.headers.items() if k.lower() == "idempotency-key"), None)
        with self.lock:
            for i, (prefix, status, body) in enumerate(self.failures):
                if path.startswith(prefix):
                    del self.failures[i]
                    return status, body
            if key and key in self.by_key:
                return self.by_key[key]
            result = self._answer(rec.method, path, self.params(rec))
            if key and rec.method == "POST" and result[0] == 200:
                self.by_key[key] = result
            return result

    def _next(self, prefix: str) -> str:
        return f"{prefix}_{uuid.uuid4().hex[:10]}{next(self.ids)}"

    def _answer(self, method: str, path: str, form: dict[str, Any]) -> tuple[int, Any]:
        now = int(time.time())
        if method == "POST" and path == "/v1/checkout/sessions":
            cs = self._next("cs_test")
            price = form["line_items"]["0"]["price_data"]
            obj = {"id": cs, "object": "checkout.session", "url": f"https://checkout.stripe.com/c/pay/{cs}",
                   "amount_total": int(price["unit_amount"]), "currency": price["currency"],
                   "metadata": form.get("metadata", {}), "mode": "payment", "payment_status": "unpaid",
                   "status": "open", "expires_at": int(form.get("expires_at", now + 3600)), "payment_intent": None,
                   "client_reference_id": form.get("client_reference_id")}
            self.objects[cs] = obj
            return 200, obj
        if method == "POST" and path == "/v1/transfers":
            tr = self._next("tr")
            obj = {"id": tr, "object": "transfer", "amount": int(form["amount"]), "currency": form["currency"],
                   "destination": form["destination"], "source_transaction": form.get("source_transaction"),
                   "transfer_group": form.get("transfer_group"), "metadata": form.get("metadata", {}),
                   "reversed": False, "amount_reversed": 0, "created": now}
            self.objects[tr] = obj
            return 200, obj
        if method == "POST" and path.startswith("/v1/transfers/") and path.endswith("/reversals"):
            transfer = path.split("/")[3]
            if transfer not in self.objects:
                return 404, {"error": {"type": "invalid_request_error", "message": "No such transfer"}}
            self.objects[transfer]["amount_reversed"] += int(form["amount"])
            return 200, {"id": self._next("trr"), "object": "transfer_reversal", "amount": int(form["amount"]),
                         "transfer": transfer, "metadata": form.get("metadata", {}), "created": now}
        if method == "POST" and path == "/v1/refunds":
            re_id = self._next("re")
            obj = {"id": re_id, "object": "refund", "amount": int(form["amount"]),
                   "payment_intent": form.get("payment_intent"), "charge": None, "currency": "usd",
                   "status": self.refund_status, "metadata": form.get("metadata", {}), "created": now}
            self.objects[re_id] = obj
            return 200, obj
        if method == "GET" and path.startswith("/v1/payment_intents/"):
            pi = path.split("/")[3]
            return 200, {"id": pi, "object": "payment_intent", "latest_charge": charge_for(pi), "status": "succeeded"}
        if method == "POST" and path == "/v1/accounts":
            acct = "acct_" + uuid.uuid4().hex[:16]
            obj = {"id": acct, "object": "account", "type": form.get("type", "standard"), "charges_enabled": False,
                   "payouts_enabled": False, "details_submitted": False,
                   "capabilities": {"transfers": "inactive"}, "metadata": form.get("metadata", {}),
                   "country": form.get("country", "US"), "email": form.get("email")}
            self.accounts[acct] = obj
            return 200, obj
        if method == "GET" and path.startswith("/v1/accounts/"):
            acct = path.split("/")[3]
            if acct not in self.accounts:
                return 404, {"error": {"type": "invalid_request_error", "message": "No such account"}}
            return 200, self.accounts[acct]
        if method == "POST" and path == "/v1/account_links":
            return 200, {"object": "account_link", "created": now, "expires_at": now + 300,
                         "url": f"https://connect.stripe.com/setup/e/{form['account']}/{next(self.ids)}"}
        return 404, {"error": {"type": "invalid_request_error", "message": f"Unrecognized request URL ({path})"}}


def charge_for(pi: str) -> str:
    return "ch_" + pi.removeprefix("pi_")


# ---------------------------------------------------------------------------------------------
# Stripe's events, real-shaped and signed
# ---------------------------------------------------------------------------------------------
class Events:
    def __init__(self) -> None:
        self.base = int(time.time()) - 100

    def event(self, type_: str, obj: dict[str, Any], *, created: int | None = None, account: str | None = None,
              event_id: str | None = None) -> dict[str, Any]:
        event: dict[str, Any] = {
            "id": event_id or "evt_" + uuid.uuid4().hex[:24], "object": "event", "api_version": API_VERSION,
            "created": created if created is not None else int(time.time()), "type": type_,
            "livemode": False, "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None}, "data": {"object": obj},
        }
        if account:
            event["account"] = account
        return event

    def checkout_session(self, cs: str, booking_id: str, amount: int, *, pi: str | None = None,
                         payment_status: str = "paid", status: str = "complete") -> dict[str, Any]:
        return {"id": cs, "object": "checkout.session", "mode": "payment", "amount_subtotal": amount,
                "amount_total": amount, "currency": "usd", "customer": None,
                "customer_details": {"email": "casey@example.test"}, "client_reference_id": booking_id,
                "metadata": {"booking_id": booking_id}, "payment_intent": pi, "payment_status": payment_status,
                "status": status, "url": None, "livemode": False}

    def completed(self, cs: str, booking_id: str, amount: int, pi: str, **kw: Any) -> dict[str, Any]:
        return self.event("checkout.session.completed", self.checkout_session(cs, booking_id, amount, pi=pi), **kw)

    def expired(self, cs: str, booking_id: str, amount: int, **kw: Any) -> dict[str, Any]:
        obj = self.checkout_session(cs, booking_id, amount, payment_status="unpaid", status="expired")
        return self.event("checkout.session.expired", obj, **kw)

    def payment_failed(self, pi: str, booking_id: str, amount: int, **kw: Any) -> dict[str, Any]:
        obj = {"id": pi, "object": "payment_intent", "amount": amount, "currency": "usd",
               "status": "requires_payment_method", "metadata": {"booking_id": booking_id}, "latest_charge": None,
               "last_payment_error": {"type": "card_error", "code": "card_declined",
                                      "message": "Your card was declined."},
               "transfer_group": f"booking_{booking_id}"}
        return self.event("payment_intent.payment_failed", obj, **kw)

    def charge(self, pi: str, amount: int, *, refunded: int = 0, refunds: list[dict[str, Any]] | None = None,
               type_: str = "charge.succeeded", **kw: Any) -> dict[str, Any]:
        obj = {"id": charge_for(pi), "object": "charge", "amount": amount, "amount_captured": amount,
               "amount_refunded": refunded, "currency": "usd", "paid": True, "captured": True,
               "refunded": refunded >= amount, "payment_intent": pi, "status": "succeeded",
               "refunds": {"object": "list", "data": refunds or [], "has_more": False,
                           "url": f"/v1/charges/{charge_for(pi)}/refunds"}}
        return self.event(type_, obj, **kw)

    def refund_object(self, re_id: str, pi: str, amount: int, status: str = "succeeded",
                      metadata: dict[str, str] | None = None) -> dict[str, Any]:
        return {"id": re_id, "object": "refund", "amount": amount, "currency": "usd", "charge": charge_for(pi),
                "payment_intent": pi, "status": status, "reason": "requested_by_customer",
                "metadata": metadata or {}, "created": int(time.time())}

    def refund(self, type_: str, re_id: str, pi: str, amount: int, status: str = "succeeded",
               metadata: dict[str, str] | None = None, **kw: Any) -> dict[str, Any]:
        return self.event(type_, self.refund_object(re_id, pi, amount, status, metadata), **kw)

    def account(self, acct: str, *, transfers: str = "active", created: int | None = None,
                **kw: Any) -> dict[str, Any]:
        active = transfers == "active"
        obj = {"id": acct, "object": "account", "type": "standard", "charges_enabled": active,
               "payouts_enabled": active, "details_submitted": active,
               "capabilities": {"transfers": transfers}, "requirements": {"currently_due": [] if active else
                                                                             ["external_account"]}}
        return self.event("account.updated", obj, created=created, account=acct, **kw)


def sign(payload: str, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    return stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp)


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
