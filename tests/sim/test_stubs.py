"""The provider stubs (shared/dev/stubs) against our real functions, served over HTTP as the
simulated city serves them: a Checkout paid through the Stripe stub's control endpoint makes the
booking paid; duplicated, reordered and dropped Stripe events end in the same state (dropped ones
are redelivered); refunds and transfers made through the stub's API settle with the books balanced;
a LiveKit join whose event was dropped stays missed until the reconcile job repairs it; an outage
answers errors, then the provider recovers."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from werkzeug.serving import make_server

from shared import db as shared_db
from shared import rooms, stripe_client, worker
from shared.config import get_settings
from shared.dev.server import build_app
from shared.dev.stubs import (
    LiveKitStub,
    ResendStub,
    StripeStub,
    StubServer,
    WebhookFaults,
    WebhookSender,
    charge_for,
)
from shared.dev.tokens import make_token
from tests.support.factories import accept, make_world, request_free
from tests.support.payments import CONNECT_SECRET, JWT_SECRET, WEBHOOK_SECRET, Pay

LK_KEY, LK_SECRET = "APIsimkey", "livekit-sim-secret-0123456789abcdefghij"
CRON = "cron-secret-sim-0123456789"
STRIPE_KEY = "sk_test_sim_0123456789"


def wait_for(check: Callable[[], bool], timeout: float = 120.0, what: str = "the condition") -> None:
    """Until `check()`; the bound is generous (a loaded machine): it returns as soon as it holds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def send(url: str, data: bytes, headers: dict[str, str], timeout: float = 10.0) -> tuple[int, bytes]:
    """POST over HTTP (the stubs and the functions are local servers): (status, body)."""
    request = urllib.request.Request(url, data=data, method="POST", headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def post(url: str, body: Any = None, headers: dict[str, str] | None = None,
         timeout: float = 10.0) -> tuple[int, Any]:
    data = json.dumps(body if body is not None else {}).encode()
    status, answer = send(url, data, {"Content-Type": "application/json", **(headers or {})}, timeout)
    return status, json.loads(answer or b"null")


# ------------------------------------------------------------------------------------------------
# the world: functions served over HTTP, the stubs pointed at them, the database of its own
# ------------------------------------------------------------------------------------------------
@dataclass
class Sim:
    pay: Pay
    stripe: StripeStub
    livekit: LiveKitStub
    resend: ResendStub
    functions_url: str

    def settle(self, timeout: float = 120.0) -> None:
        """Wait until neither stub has a webhook left to deliver."""
        wait_for(lambda: self.stripe.in_flight() == 0 and self.livekit.in_flight() == 0, timeout,
                 "the stubs' webhooks to drain")

    def booking(self) -> dict[str, Any]:
        """A card booking through the real checkout function; the Checkout Session lives in the stub."""
        customer = self.pay.customer()
        out = self.pay.checkout(customer)
        return self.pay.booking(out["booking_id"])

    def pay_checkout(self, cs: str, **body: Any) -> dict[str, Any]:
        status, answer = post(f"{self.stripe.url}/_sim/checkout/{cs}/pay", body)
        assert status == 200, answer
        return answer  # type: ignore[no-any-return]

    def ledger(self) -> list[dict[str, Any]]:
        return self.pay.rows("select id, type, outcome from private.stripe_events order by received_at, id")


@pytest.fixture
def sim(fresh_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Sim]]:
    opened: list[Any] = []

    def start(stripe: WebhookFaults | None = None, livekit: WebhookFaults | None = None,
              empty_timeout_s: float | None = None, **stripe_kw: Any) -> Sim:
        monkeypatch.setenv("DATABASE_URL", fresh_url)
        monkeypatch.setenv("SUPABASE_JWT_SECRET", JWT_SECRET)
        monkeypatch.setenv("CRON_SECRET", CRON)
        monkeypatch.setenv("STRIPE_SECRET_KEY", STRIPE_KEY)
        monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
        monkeypatch.setenv("STRIPE_CONNECT_WEBHOOK_SECRET", CONNECT_SECRET)
        monkeypatch.setenv("LIVEKIT_API_KEY", LK_KEY)
        monkeypatch.setenv("LIVEKIT_API_SECRET", LK_SECRET)
        server = make_server("127.0.0.1", 0, build_app(), threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        opened.append(server)
        functions = f"http://127.0.0.1:{server.server_port}"
        stripe_kw.setdefault("retry_base_s", 0.2)
        stripe_kw.setdefault("retry_max_s", 0.5)
        stripe_stub = StripeStub(f"{functions}/stripe_webhook", WEBHOOK_SECRET, stripe, **stripe_kw)
        opened.append(stripe_stub)
        livekit_stub = LiveKitStub(f"{functions}/livekit_webhook", LK_KEY, LK_SECRET, livekit,
                                   empty_timeout_s=empty_timeout_s)
        opened.append(livekit_stub)
        resend_stub = ResendStub()
        opened.append(resend_stub)
        monkeypatch.setenv("RESEND_API_KEY", "re_test_sim")
        monkeypatch.setenv("RESEND_API_BASE", resend_stub.url)
        monkeypatch.setenv("STRIPE_API_BASE", stripe_stub.url)
        monkeypatch.setenv("LIVEKIT_URL", livekit_stub.ws_url)
        get_settings.cache_clear()
        shared_db.close_pool()
        stripe_client.set_client(stripe_client.make_client(STRIPE_KEY, stripe_stub.url, max_network_retries=0))
        world = Pay(fresh_url, stripe_stub)
        opened.append(world)
        return Sim(world, stripe_stub, livekit_stub, resend_stub, functions)

    yield start
    for thing in reversed(opened):
        if isinstance(thing, Pay | StripeStub | LiveKitStub | ResendStub):
            thing.close()
        else:
            thing.shutdown()
    shared_db.close_pool()
    stripe_client.set_client(None)
    get_settings.cache_clear()


# ------------------------------------------------------------------------------------------------
# Stripe
# ------------------------------------------------------------------------------------------------
def test_a_checkout_paid_through_the_stub_makes_the_booking_paid(sim: Callable[..., Sim]) -> None:
    s = sim()
    booking = s.booking()
    assert booking["status"] == "pending" and booking["stripe_checkout_session_id"].startswith("cs_test")
    paid = s.pay_checkout(booking["stripe_checkout_session_id"])
    s.settle()
    booking = s.pay.booking(booking["id"])
    assert booking["status"] == "paid" and booking["session_id"] is not None
    payment = s.pay.row("select * from public.payments where booking_id = %s", (booking["id"],))
    assert payment is not None
    assert payment["stripe_payment_intent_id"] == paid["payment_intent"]
    assert payment["stripe_charge_id"] == charge_for(paid["payment_intent"])  # from charge.succeeded
    assert payment["amount_cents"] == booking["price_cents"]
    assert [e["type"] for e in s.ledger()] == ["checkout.session.completed", "charge.succeeded"]
    assert s.stripe.stats()["sent"] == 2 and s.stripe.stats()["failed"] == 0
    # a Checkout is paid once: the control endpoint refuses a second payment, and abandoning it
    status, _ = post(f"{s.stripe.url}/_sim/checkout/{booking['stripe_checkout_session_id']}/pay")
    assert status == 409
    assert post(f"{s.stripe.url}/_sim/checkout/cs_test_unknown/pay")[0] == 404
    s.pay.assert_books_balance()


def test_an_abandoned_checkout_expires_the_booking(sim: Callable[..., Sim]) -> None:
    s = sim()
    booking = s.booking()
    status, answer = post(f"{s.stripe.url}/_sim/checkout/{booking['stripe_checkout_session_id']}/abandon")
    assert status == 200, answer
    s.settle()
    assert s.pay.booking(booking["id"])["status"] == "expired"
    assert s.pay.val("select count(*) from public.payments") == 0
    assert post(f"{s.stripe.url}/_sim/checkout/{booking['stripe_checkout_session_id']}/pay")[0] == 409
    # an open Checkout expires by itself at its expires_at, as Stripe's do
    form = (f"mode=payment&line_items[0][quantity]=1&line_items[0][price_data][currency]=usd"
            f"&line_items[0][price_data][unit_amount]=500&expires_at={int(time.time()) + 1}").encode()
    status, created = send(f"{s.stripe.url}/v1/checkout/sessions", form, {"Authorization": f"Bearer {STRIPE_KEY}"})
    assert status == 200
    wait_for(lambda: s.stripe.stats()["checkouts_expired"] == 1, what="the Checkout to expire")
    s.settle()
    assert s.pay.val("select type from private.stripe_events where payload #>> '{data,object,id}' = %s",
                     (json.loads(created)["id"],)) == "checkout.session.expired"
    assert s.stripe.stats()["checkouts_abandoned"] == 1


def test_duplicated_events_have_no_effect(sim: Callable[..., Sim]) -> None:
    s = sim(stripe=WebhookFaults(duplicate=1.0, seed=3))
    bookings = [s.booking() for _ in range(3)]
    for b in bookings:
        s.pay_checkout(b["stripe_checkout_session_id"])
    s.settle()
    stats = s.stripe.stats()
    assert stats["duplicated"] == 6 and stats["sent"] == 12 and stats["failed"] == 0, stats
    ledger = s.ledger()
    assert len(ledger) == 6 and len({e["id"] for e in ledger}) == 6  # each event stored once
    for b in bookings:
        assert s.pay.booking(b["id"])["status"] == "paid"
    assert s.pay.val("select count(*) from public.payments") == 3
    assert s.pay.val("select count(*) from public.session_requests") == 3  # one session per payment
    assert s.pay.val("select count(*) from public.payments where stripe_charge_id is null") == 0
    s.pay.assert_books_balance()


def test_a_reordered_pair_ends_in_the_same_state(sim: Callable[..., Sim]) -> None:
    s = sim(stripe=WebhookFaults(reorder=1.0, seed=5))
    booking = s.booking()
    paid = s.pay_checkout(booking["stripe_checkout_session_id"])
    s.settle()
    completed_id, charge_id = paid["events"]
    delivered = [event_id for event_id, _ in s.stripe.sender.log]
    assert delivered == [charge_id, completed_id]  # the charge overtook the completed Checkout
    assert s.stripe.stats()["reordered"] == 1
    assert s.pay.booking(booking["id"])["status"] == "paid"
    payment = s.pay.row("select * from public.payments where booking_id = %s", (booking["id"],))
    assert payment is not None and payment["stripe_charge_id"] == charge_for(paid["payment_intent"])
    s.pay.assert_books_balance()


def test_a_dropped_stripe_event_is_redelivered_and_lands(sim: Callable[..., Sim]) -> None:
    s = sim(stripe=WebhookFaults(drop=1.0, seed=7))
    booking = s.booking()
    paid = s.pay_checkout(booking["stripe_checkout_session_id"])
    s.settle()
    stats = s.stripe.stats()
    assert stats["dropped"] == 2 and stats["retried"] == 2 and stats["sent"] == 2 and stats["abandoned"] == 0
    assert s.pay.booking(booking["id"])["status"] == "paid"
    payment = s.pay.row("select * from public.payments where booking_id = %s", (booking["id"],))
    assert payment is not None and payment["stripe_payment_intent_id"] == paid["payment_intent"]


def test_a_failed_delivery_is_retried_with_backoff_until_it_is_answered_2xx() -> None:
    answers = [(500, {"error": "busy"}), (503, {"error": "busy"})]
    endpoint = StubServer(lambda rec: answers.pop(0) if answers else (200, {"received": True}))
    sender = WebhookSender("t", endpoint.url + "/hook", lambda body: {"X-Sig": str(len(body))}, retry=True,
                           retry_base_s=0.1, retry_max_s=0.2)
    try:
        sender.send("evt_1", b'{"id": "evt_1"}')
        wait_for(lambda: sender.in_flight() == 0, what="the retries")
        assert [status for _, status in sender.log] == [500, 503, 200]
        assert sender.stats()["failed"] == 2 and sender.stats()["retried"] == 2 and sender.stats()["sent"] == 1
        assert [c.header("X-Sig") for c in endpoint.calls] == ["15"] * 3  # signed again for every attempt
    finally:
        sender.close()
        endpoint.close()
    # LiveKit does not retry: a failed delivery is gone
    endpoint = StubServer(lambda rec: (500, {}))
    sender = WebhookSender("t", endpoint.url, lambda body: {}, retry=False)
    try:
        sender.send("EV_1", b"{}")
        wait_for(lambda: sender.in_flight() == 0, what="the delivery")
        assert sender.stats()["failed"] == 1 and sender.stats()["abandoned"] == 1 and len(endpoint.calls) == 1
    finally:
        sender.close()
        endpoint.close()


def test_under_every_fault_stripe_events_all_land_and_dropped_livekit_events_are_gone() -> None:
    received: list[str] = []
    lock = threading.Lock()

    def answer(rec: Any) -> tuple[int, Any]:
        with lock:
            received.append(rec.json()["id"])
        return 200, {}

    endpoint = StubServer(answer)
    faults = WebhookFaults(duplicate=0.3, reorder=0.3, drop=0.3, seed=42)
    stripe_like = WebhookSender("s", endpoint.url, lambda body: {}, faults, retry=True, retry_base_s=0.05,
                                retry_max_s=0.1, hold_s=0.1)
    ids = [f"evt_{i}" for i in range(60)]
    try:
        for event_id in ids:
            stripe_like.send(event_id, json.dumps({"id": event_id}).encode())
        wait_for(lambda: stripe_like.in_flight() == 0, what="every delivery")
        stats = stripe_like.stats()
        assert set(received) == set(ids)  # every event arrived, dropped ones on a retry
        assert stats["dropped"] > 0 and stats["duplicated"] > 0 and stats["reordered"] > 0, stats
        assert len(received) == len(ids) + stats["duplicated"]
        assert received != sorted(received, key=lambda e: int(e.split("_")[1]))  # not in the order sent
        received.clear()
        livekit_like = WebhookSender("l", endpoint.url, lambda body: {}, faults, retry=False, hold_s=0.1)
        for event_id in ids:
            livekit_like.send(event_id, json.dumps({"id": event_id}).encode())
        wait_for(lambda: livekit_like.in_flight() == 0, what="every delivery")
        lk_stats = livekit_like.stats()
        livekit_like.close()
        assert len(set(received)) == len(ids) - lk_stats["dropped"] and lk_stats["retried"] == 0
        assert lk_stats["abandoned"] == lk_stats["dropped"] > 0
    finally:
        stripe_like.close()
        endpoint.close()


def test_refunds_and_transfers_through_the_stub_keep_the_books_balanced(sim: Callable[..., Sim]) -> None:
    s = sim(stripe=WebhookFaults(duplicate=0.5, reorder=0.5, seed=11), refund_settle_s=0.2)
    # a paid request nobody takes expires and is refunded: the refund is created through the stub's
    # API (pending), then Stripe's refund.updated and charge.refunded report it succeeded
    refunded = s.booking()
    refunded_pi = s.pay_checkout(refunded["stripe_checkout_session_id"])["payment_intent"]
    s.settle()
    s.pay.db.execute("select private.sweep_requests(now() + interval '3 hours')")
    s.pay.commit()
    assert s.pay.process() == {"refunds_processing": 1}
    s.settle()
    refund = s.pay.row("select r.* from public.refunds r join public.payments p on p.id = r.payment_id"
                       " where p.stripe_payment_intent_id = %s", (refunded_pi,))
    assert refund is not None and refund["status"] == "succeeded" and refund["stripe_refund_id"].startswith("re_")
    assert s.pay.val("select status::text from public.payments where stripe_payment_intent_id = %s",
                     (refunded_pi,)) == "refunded"
    types = {e["type"] for e in s.ledger()}
    assert {"refund.created", "refund.updated", "charge.refunded"} <= types
    # a refund beyond what is left is refused, as Stripe refuses it
    status, answer = send(f"{s.stripe.url}/v1/refunds", f"payment_intent={refunded_pi}&amount=1".encode(),
                          {"Authorization": f"Bearer {STRIPE_KEY}"})
    assert status == 400 and json.loads(answer)["error"]["code"] == "amount_too_large"

    # a served session pays its mechanic: the account is activated through the stub's control endpoint
    served = s.booking()
    s.pay_checkout(served["stripe_checkout_session_id"])
    s.settle()
    mechanic = s.pay.mechanic()
    acct = s.pay.onboard(mechanic, activate=False)
    status, answer = post(f"{s.stripe.url}/_sim/accounts/{acct}/activate")
    assert status == 200, answer
    s.settle()
    assert s.pay.val("select transfers_active from public.payout_accounts where stripe_account_id = %s", (acct,))
    session_id = s.pay.booking(served["id"])["session_id"]
    s.pay.serve(mechanic, session_id)
    s.pay.drain()
    assert s.pay.val("select count(*) from public.payouts where session_id = %s and status = 'paid'",
                     (session_id,)) >= 1
    assert s.stripe.stats()["transfers"] >= 1
    s.pay.assert_books_balance()


def test_a_stripe_outage_answers_500_then_recovers(sim: Callable[..., Sim]) -> None:
    s = sim()
    customer = s.pay.customer()
    s.stripe.set_outage(60.0, "500")
    failed = s.pay.checkout(customer, expect=502)
    assert failed["error"] == "provider_error"
    assert s.pay.val("select status::text from public.bookings") == "failed"
    s.stripe.outage.clear()  # the outage is over
    booking = s.pay.booking(s.pay.checkout(customer)["booking_id"])
    assert booking["stripe_checkout_session_id"].startswith("cs_test")
    assert s.stripe.stats()["outage_answers"] == 1
    # the control endpoints are the customer's side: an API outage does not stop a payment
    s.stripe.set_outage(60.0, "500")
    s.pay_checkout(booking["stripe_checkout_session_id"])
    s.settle()
    assert s.pay.booking(booking["id"])["status"] == "paid"
    assert s.stripe.outage.active


def test_a_timeout_outage_holds_requests_past_the_clients_timeout() -> None:
    resend = ResendStub()
    try:
        resend.set_outage(60.0, "timeout")
        started = time.monotonic()
        with pytest.raises(OSError):  # the client's timeout fails the call: the stub holds it unanswered
            post(f"{resend.url}/emails", {"to": ["a@example.test"], "from": "x@example.test", "subject": "s"},
                 {"Authorization": "Bearer re_x"}, timeout=0.3)
        assert time.monotonic() - started < 30
        assert resend.outage.active
        resend.outage.clear()
        status, answer = post(f"{resend.url}/emails", {"to": ["a@example.test"], "from": "x@example.test",
                                                       "subject": "s"}, {"Authorization": "Bearer re_x"})
        assert status == 200 and uuid.UUID(answer["id"])
    finally:
        resend.close()


# ------------------------------------------------------------------------------------------------
# LiveKit
# ------------------------------------------------------------------------------------------------
def _waiting_session(s: Sim) -> Any:
    world = make_world(s.pay.db)
    accept(s.pay.db, world.mechanic, world.request)
    s.pay.commit()
    return world


def _join(s: Sim, session_id: Any, user: Any) -> dict[str, Any]:
    """The participant asks our livekit_token function for a token and joins the stub's room with it."""
    auth = {"Authorization": f"Bearer {make_token(secret=JWT_SECRET, user_id=str(user))}"}
    status, token = post(f"{s.functions_url}/livekit_token", {"session_id": str(session_id)}, auth)
    assert status == 200, token
    assert token["url"] == s.livekit.ws_url
    status, answer = post(f"{s.livekit.url}/_sim/rooms/{token['room']}/join", {"token": token["token"]})
    assert status == 200 and answer["joined"], answer
    return token  # type: ignore[no-any-return]


def _status(s: Sim, session_id: Any) -> str:
    return s.pay.val("select status::text from public.sessions where id = %s", (session_id,))  # type: ignore[no-any-return]


def test_livekit_joins_make_the_session_live_and_deleting_the_room_completes_it(sim: Callable[..., Sim]) -> None:
    s = sim(livekit=WebhookFaults(duplicate=1.0, seed=2))
    w = _waiting_session(s)
    _join(s, w.session, w.customer)
    token = _join(s, w.session, w.mechanic)
    s.settle()
    assert _status(s, w.session) == "live"
    assert s.livekit.present(token["room"]) == sorted([str(w.customer), str(w.mechanic)])
    events = s.pay.rows("select event, outcome from private.livekit_events order by occurred_at, event")
    assert sorted(e["event"] for e in events) == ["participant_joined", "participant_joined", "room_started"]
    assert s.livekit.stats()["duplicated"] == 3 and s.livekit.stats()["sent"] == 6
    asyncio.run(rooms.delete_room({"room": token["room"]}))  # the job that closes a room
    s.settle()
    assert _status(s, w.session) == "completed"
    assert s.livekit.present(token["room"]) == []
    assert s.pay.val("select count(*) from private.livekit_events where event = 'room_finished'") == 1
    assert s.pay.val("select count(*) from private.livekit_events where event = 'participant_left'") == 2


def test_a_room_left_empty_finishes_after_the_departure_timeout(sim: Callable[..., Sim]) -> None:
    # long enough that the rejoin below comes within it on a loaded machine
    s = sim(empty_timeout_s=5.0)
    w = _waiting_session(s)
    _join(s, w.session, w.customer)
    token = _join(s, w.session, w.mechanic)
    s.settle()
    assert _status(s, w.session) == "live"
    leave = f"{s.livekit.url}/_sim/rooms/{token['room']}/leave"
    for user in (w.customer, w.mechanic):
        assert post(leave, {"identity": str(user)})[0] == 200
    assert post(f"{s.livekit.url}/_sim/rooms/{token['room']}/join", {"identity": str(w.customer)})[0] == 200
    # back within the timeout: the room stays. The stub's timer thread runs its tasks in the order
    # they are due; a marker due after the departure check has run once that check has.
    checked = threading.Event()
    s.livekit.sender.schedule(s.livekit.empty_timeout_s or 0.0, checked.set, counted=False)
    wait_for(checked.is_set, what="the departure timeout's check")
    assert s.livekit.present(token["room"]) == [str(w.customer)] and _status(s, w.session) == "live"
    assert post(leave, {"identity": str(w.customer)})[0] == 200
    assert post(leave, {"identity": str(w.customer)})[0] == 409  # not in the room any more
    wait_for(lambda: s.livekit.stats()["rooms_finished"] == 1, what="the empty room to finish")
    s.settle()
    assert _status(s, w.session) == "completed"
    assert s.pay.val("select outcome from private.livekit_events where event = 'room_finished'") == "completed"


def test_a_dropped_livekit_join_is_repaired_by_the_reconcile_job(sim: Callable[..., Sim]) -> None:
    s = sim(livekit=WebhookFaults(drop=1.0, seed=4))
    w = _waiting_session(s)
    _join(s, w.session, w.customer)
    _join(s, w.session, w.mechanic)
    s.settle()
    stats = s.livekit.stats()
    assert stats["dropped"] == 3 and stats["sent"] == 0 and stats["retried"] == 0  # LiveKit does not retry
    assert s.pay.val("select count(*) from private.livekit_events") == 0
    assert _status(s, w.session) == "waiting"  # the joins never reached us
    status, counts = post(f"{s.functions_url}/cron_reconcile_livekit", {}, {"Authorization": f"Bearer {CRON}"})
    assert status == 200 and counts["live"] == 1, counts
    assert _status(s, w.session) == "live"


def test_a_livekit_outage_fails_the_reconcile_then_it_recovers(sim: Callable[..., Sim]) -> None:
    s = sim(livekit=WebhookFaults(drop=1.0, seed=4))
    w = _waiting_session(s)
    _join(s, w.session, w.customer)
    _join(s, w.session, w.mechanic)
    s.settle()
    s.livekit.set_outage(60.0, "500")
    status, _ = post(f"{s.functions_url}/cron_reconcile_livekit", {}, {"Authorization": f"Bearer {CRON}"})
    assert status >= 500 and _status(s, w.session) == "waiting"
    assert s.livekit.stats()["outage_answers"] >= 1
    s.livekit.outage.clear()
    status, counts = post(f"{s.functions_url}/cron_reconcile_livekit", {}, {"Authorization": f"Bearer {CRON}"})
    assert status == 200 and counts["live"] == 1, counts


def test_the_room_service_refuses_a_token_it_did_not_sign(sim: Callable[..., Sim]) -> None:
    s = sim()
    from livekit import api

    wrong = api.AccessToken(LK_KEY, "not-the-secret-0123456789abcdefghijkl").with_grants(
        api.VideoGrants(room_list=True)).to_jwt()
    status, _ = send(f"{s.livekit.url}/twirp/livekit.RoomService/ListRooms",
                     api.ListRoomsRequest().SerializeToString(),
                     {"Authorization": f"Bearer {wrong}", "Content-Type": "application/protobuf"})
    assert status == 401
    # a join needs an identity or a token for that very room
    assert post(f"{s.livekit.url}/_sim/rooms/session-x/join", {})[0] == 400


# ------------------------------------------------------------------------------------------------
# Resend
# ------------------------------------------------------------------------------------------------
def test_emails_go_through_the_resend_stub_and_an_outage_is_retried(sim: Callable[..., Sim]) -> None:
    s = sim()
    customer = s.pay.customer()
    request_free(s.pay.db, customer)
    s.pay.commit()
    now = dt.datetime.now(dt.UTC)
    s.resend.set_outage(30.0, "500")
    assert worker.deliver(now, kinds=["email.send"])["retry"] == 1  # Resend was down
    assert s.resend.emails == []
    s.resend.outage.clear()
    assert worker.deliver(now + dt.timedelta(minutes=5), kinds=["email.send"])["sent"] == 1
    assert len(s.resend.emails) == 1 and s.resend.stats()["outage_answers"] == 1
    key = s.pay.val("select dedupe_key from private.outbox where kind = 'email.send' and status = 'sent'")
    assert s.resend.emails[0]["key"] == key and s.resend.emails[0]["body"]["subject"].endswith("is booked")


def test_resend_answers_like_resend_with_idempotency_and_outage() -> None:
    resend = ResendStub()
    email = {"from": "Auto Doctor <hello@example.test>", "to": ["casey@example.test"], "subject": "Hi",
             "text": "hello"}
    auth = {"Authorization": "Bearer re_test_key", "Idempotency-Key": "email:1"}
    try:
        status, first = post(f"{resend.url}/emails", email, auth)
        assert status == 200
        status, again = post(f"{resend.url}/emails", email, auth)
        assert status == 200 and again["id"] == first["id"]  # the same key: the same email, sent once
        status, answer = post(f"{resend.url}/emails", {**email, "subject": "Other"}, auth)
        assert status == 409 and answer["name"] == "invalid_idempotent_request"
        assert post(f"{resend.url}/emails", email, {"Idempotency-Key": "email:2"})[0] == 401  # no API key
        resend.set_outage(60.0, "500")
        assert post(f"{resend.url}/emails", email, {**auth, "Idempotency-Key": "email:3"})[0] == 500
        resend.outage.clear()
        status, third = post(f"{resend.url}/emails", email, {**auth, "Idempotency-Key": "email:3"})
        assert status == 200 and third["id"] != first["id"]
        assert resend.stats() == {"sent": 2, "replayed": 1, "conflicts": 1, "concurrent": 0, "rejected": 1,
                                  "outage_answers": 1}
        assert [e["key"] for e in resend.emails] == ["email:1", "email:3"]
        assert post(f"{resend.url}/emails", email, {**auth, "Idempotency-Key": "k" * 257})[1]["name"] == \
            "invalid_idempotency_key"
        # a request still in progress: another with its key answers 409 concurrent_idempotent_requests
        resend.set_send_delay(1.0)
        slow: list[tuple[int, Any]] = []
        sender = threading.Thread(target=lambda: slow.append(
            post(f"{resend.url}/emails", email, {**auth, "Idempotency-Key": "email:4"})))
        sender.start()
        deadline = time.monotonic() + 5
        while "email:4" not in resend.in_progress and time.monotonic() < deadline:
            time.sleep(0.01)
        status, answer = post(f"{resend.url}/emails", email, {**auth, "Idempotency-Key": "email:4"})
        assert status == 409 and answer["name"] == "concurrent_idempotent_requests"
        sender.join()
        resend.set_send_delay(0)
        assert slow[0][0] == 200  # the first request was sent, and its key answers it from now on
        assert post(f"{resend.url}/emails", email, {**auth, "Idempotency-Key": "email:4"})[1]["id"] == slow[0][1]["id"]
        assert resend.stats()["concurrent"] == 1 and resend.stats()["rejected"] == 2
    finally:
        resend.close()
