"""Stripe, stubbed: the API answers our code gets (`FakeStripe`), real-shaped events (`Events`)
signed with the stripe library's own `WebhookSignature.generate_signature_header` (`sign`), and
`StripeStub`: the API plus a customer's side of Checkout (`/_sim/…` control endpoints) whose events
reach our webhook through a `WebhookSender` with Stripe's faults and Stripe's retries.

- `FakeStripe`: a `StubServer` answering like Stripe's API for every call we make (checkout
  sessions, transfers, refunds, reversals, payment intents, accounts, account links), idempotent
  per Idempotency-Key like Stripe, with one-shot failures on demand (`fail_next`).
- `StripeStub(webhook_url, webhook_secret, faults)`: `POST /_sim/checkout/<cs>/pay` (the customer
  pays: checkout.session.completed, then charge.succeeded; body `{"decline": true}` instead sends
  payment_intent.payment_failed and leaves the Checkout open), `POST /_sim/checkout/<cs>/abandon`
  (checkout.session.expired; an open Checkout also expires by itself at its `expires_at`, as
  Stripe's do), `POST /_sim/accounts/<acct>/activate` (account.updated with
  transfers active). A refund created through the API answers `pending` and sends refund.created;
  `refund_settle_s` later it succeeds: refund.updated and charge.refunded. `set_outage(seconds,
  mode)` takes the API (not the control endpoints) down.
"""

from __future__ import annotations

import copy
import itertools
import json
import threading
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl

import stripe

from shared.dev.stubs.server import Outage, Recorded, StubServer
from shared.dev.stubs.webhooks import WebhookFaults, WebhookSender

API_VERSION = "2024-06-20"


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


def sign(payload: str, secret: str, timestamp: int | None = None) -> str:
    return str(stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp))


# ---------------------------------------------------------------------------------------------
# The stub a simulated city runs: the API, the customer's side of Checkout, signed events
# ---------------------------------------------------------------------------------------------
def _error(status: int, message: str, type_: str = "invalid_request_error", code: str | None = None) -> tuple[int, Any]:
    body: dict[str, Any] = {"type": type_, "message": message}
    if code:
        body["code"] = code
    return status, {"error": body}


class StripeStub(FakeStripe):
    """Stripe for a simulated city (module docstring). Events are delivered with Stripe's faults
    (`faults`) and Stripe's retries: a dropped or failed delivery is tried again after
    `retry_base_s`, doubling up to `retry_max_s` (Stripe: hours, over three days), at most
    `max_attempts` times."""

    def __init__(self, webhook_url: str, webhook_secret: str, faults: WebhookFaults | None = None, *,
                 retry_base_s: float = 1.0, retry_max_s: float = 30.0, max_attempts: int = 16,
                 refund_settle_s: float = 0.5, timeout_s: float = 10.0, max_calls: int | None = 10000) -> None:
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self.refund_settle_s = refund_settle_s
        self.outage = Outage()
        self.events = Events()
        self.intents: dict[str, dict[str, Any]] = {}  # pi → {amount, booking_id, refunds: [refund ids]}
        self.counts = dict.fromkeys(("checkouts_created", "checkouts_paid", "checkouts_declined",
                                     "checkouts_abandoned", "checkouts_expired", "refunds", "transfers",
                                     "reversals"), 0)
        self.sender = WebhookSender(
            "stripe", webhook_url, self._sign, faults, retry=True, retry_base_s=retry_base_s,
            retry_max_s=retry_max_s, max_attempts=max_attempts, timeout_s=timeout_s)
        super().__init__()
        self.server.max_calls = max_calls

    # -- the interface a run uses ----------------------------------------------------------------
    def set_outage(self, seconds: float, mode: str = "500") -> None:
        self.outage.set(seconds, mode)

    def in_flight(self) -> int:
        return self.sender.in_flight()

    def stats(self) -> dict[str, int]:
        with self.lock:
            counts = dict(self.counts)
        return {**self.sender.stats(), **counts, "outage_answers": self.outage.answered}

    def close(self) -> None:
        self.sender.close()
        super().close()

    # -- events ---------------------------------------------------------------------------------
    def _sign(self, body: bytes) -> dict[str, str]:
        return {"Stripe-Signature": sign(body.decode(), self.webhook_secret)}

    def emit(self, event: dict[str, Any]) -> None:
        """Send one event to the webhook (with the faults)."""
        self.sender.send(event["id"], json.dumps(event).encode())

    # -- answers ----------------------------------------------------------------------------------
    def _respond(self, rec: Recorded) -> tuple[int, Any]:
        path = rec.path.split("?")[0]
        if path.startswith("/_sim/"):
            return self._control(path, rec)
        down = self.outage.check(_error(500, "simulated outage", "api_error"))
        if down is not None:
            return down[0], down[1]
        return super()._respond(rec)

    def _answer(self, method: str, path: str, form: dict[str, Any]) -> tuple[int, Any]:
        if method == "POST" and path == "/v1/refunds":
            pi = form.get("payment_intent")
            intent = self.intents.get(pi or "")
            amount = int(form["amount"])
            if intent is not None:
                refunded = sum(self.objects[r]["amount"] for r in intent["refunds"]
                               if self.objects[r]["status"] not in ("failed", "canceled"))
                if refunded + amount > intent["amount"]:
                    return _error(400, f"Refund amount ({amount}) is greater than unrefunded amount on charge "
                                       f"({intent['amount'] - refunded})", code="amount_too_large")
        status, obj = super()._answer(method, path, form)
        if method == "POST" and status == 200:
            what = {"/v1/checkout/sessions": "checkouts_created", "/v1/refunds": "refunds",
                    "/v1/transfers": "transfers"}.get(path, "reversals" if path.endswith("/reversals") else "")
            if what:
                self.counts[what] += 1
        if method == "POST" and path == "/v1/checkout/sessions" and status == 200:
            cs = obj["id"]  # Stripe expires an unpaid Checkout at its expires_at
            self.sender.schedule(max(0.0, obj["expires_at"] - time.time()), lambda: self._expire(cs), counted=False)
        if method == "POST" and path == "/v1/refunds" and status == 200:
            pi = obj.get("payment_intent")
            if pi:
                obj["charge"] = charge_for(pi)
                self.intents.setdefault(pi, {"amount": None, "booking_id": None, "refunds": []})["refunds"].append(
                    obj["id"])
            self.emit(self.events.event("refund.created", copy.deepcopy(obj)))
            self.sender.schedule(self.refund_settle_s, lambda: self._settle_refund(obj["id"]))
        return status, obj

    def _settle_refund(self, refund_id: str) -> None:
        """Stripe returns the money: refund.updated (succeeded), then charge.refunded."""
        with self.lock:
            refund = self.objects[refund_id]
            if refund["status"] != "pending":
                return
            refund["status"] = "succeeded"
            pi = refund.get("payment_intent")
            updated = self.events.event("refund.updated", copy.deepcopy(refund))
            charged = None
            if pi:
                intent = self.intents.get(pi, {})
                refunds = [copy.deepcopy(self.objects[r]) for r in intent.get("refunds", [])]
                done = sum(r["amount"] for r in refunds if r["status"] == "succeeded")
                amount = intent.get("amount") or done
                charged = self.events.charge(pi, amount, refunded=done, refunds=refunds, type_="charge.refunded")
        self.emit(updated)
        if charged is not None:
            self.emit(charged)

    def _control(self, path: str, rec: Recorded) -> tuple[int, Any]:
        parts = path.strip("/").split("/")  # _sim, checkout, <cs>, pay
        try:
            body = rec.json() if rec.body else {}
        except ValueError:
            return _error(400, "the body is not JSON")
        if rec.method != "POST" or len(parts) != 4:
            return _error(404, f"no control endpoint {rec.method} {path}")
        _, kind, ident, action = parts
        if kind == "checkout" and action == "pay":
            return self._pay(ident, bool((body or {}).get("decline")))
        if kind == "checkout" and action == "abandon":
            return self._abandon(ident)
        if kind == "accounts" and action == "activate":
            return self._activate(ident)
        return _error(404, f"no control endpoint {rec.method} {path}")

    def _session(self, cs: str) -> dict[str, Any] | None:
        obj = self.objects.get(cs)
        return obj if obj is not None and obj.get("object") == "checkout.session" else None

    def _session_event_object(self, session: dict[str, Any]) -> dict[str, Any]:
        booking_id = str(session["metadata"].get("booking_id") or session.get("client_reference_id") or "")
        obj = self.events.checkout_session(
            session["id"], booking_id, session["amount_total"], pi=session["payment_intent"],
            payment_status=session["payment_status"], status=session["status"])
        obj.update(metadata=copy.deepcopy(session["metadata"]), currency=session["currency"],
                   client_reference_id=session.get("client_reference_id"), expires_at=session["expires_at"])
        return obj

    def _pay(self, cs: str, decline: bool) -> tuple[int, Any]:
        with self.lock:
            session = self._session(cs)
            if session is None:
                return _error(404, f"No such checkout.session: '{cs}'", code="resource_missing")
            if session["status"] != "open":
                return _error(409, f"This Checkout Session is {session['status']}", code="checkout_not_open")
            if decline:
                pi = "pi_" + uuid.uuid4().hex[:24]
                booking_id = str(session["metadata"].get("booking_id", ""))
                failed = self.events.payment_failed(pi, booking_id, session["amount_total"])
                self.counts["checkouts_declined"] += 1
                self.emit(failed)
                return 200, {"declined": True, "payment_intent": pi, "events": [failed["id"]]}
            pi = "pi_" + uuid.uuid4().hex[:24]
            session.update(status="complete", payment_status="paid", payment_intent=pi)
            self.counts["checkouts_paid"] += 1
            self.intents[pi] = {"amount": session["amount_total"], "booking_id": session["metadata"].get("booking_id"),
                                "refunds": []}
            completed = self.events.event("checkout.session.completed", self._session_event_object(session))
            charged = self.events.charge(pi, session["amount_total"])
        self.emit(completed)
        self.emit(charged)
        return 200, {"paid": True, "payment_intent": pi, "charge": charge_for(pi),
                     "events": [completed["id"], charged["id"]]}

    def _expire(self, cs: str) -> None:
        with self.lock:
            session = self._session(cs)
            if session is None or session["status"] != "open":
                return
            session["status"] = "expired"
            self.counts["checkouts_expired"] += 1
            expired = self.events.event("checkout.session.expired", self._session_event_object(session))
        self.emit(expired)

    def _abandon(self, cs: str) -> tuple[int, Any]:
        with self.lock:
            session = self._session(cs)
            if session is None:
                return _error(404, f"No such checkout.session: '{cs}'", code="resource_missing")
            if session["status"] != "open":
                return _error(409, f"This Checkout Session is {session['status']}", code="checkout_not_open")
            session["status"] = "expired"
            self.counts["checkouts_abandoned"] += 1
            expired = self.events.event("checkout.session.expired", self._session_event_object(session))
        self.emit(expired)
        return 200, {"expired": True, "events": [expired["id"]]}

    def _activate(self, acct: str) -> tuple[int, Any]:
        with self.lock:
            account = self.accounts.get(acct)
            if account is None:
                return _error(404, f"No such account: '{acct}'", code="resource_missing")
            account.update(charges_enabled=True, payouts_enabled=True, details_submitted=True,
                           capabilities={"transfers": "active"})
            updated = self.events.account(acct)
        self.emit(updated)
        return 200, {"activated": True, "events": [updated["id"]]}
