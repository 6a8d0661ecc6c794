"""Paid session extensions through checkout: request_extension → create_checkout(extension_id) →
checkout.session.completed → extension granted (deadline moved); paid with credit; paid after the
session ended (cancelled, refunded in full automatically); paid twice; payouts of a session with an
extension (two transfers per payee, distinct idempotency keys); admin refunds across both payments;
hostile input (coded errors, nothing written). The books balance after every step."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from functions.checkout import create_checkout
from tests.support.delivery import release_hold, start_both, take_part
from tests.support.factories import accept
from tests.support.payments import Pay, call, charge_for

URLS = {"success_url": "https://app.example.test/extended?cs={CHECKOUT_SESSION_ID}",
        "cancel_url": "https://app.example.test/session"}


def _live(pay: Pay, customer: uuid.UUID, mechanic: uuid.UUID, plan: str = "video15") -> dict[str, Any]:
    """A session paid through checkout, taken by the mechanic and started (live)."""
    paid = pay.paid_booking(customer, plan=plan)
    pay.commit()
    request_id = pay.val("select id from public.session_requests where session_id = %s", (paid["session_id"],))
    accept(pay.db, mechanic, request_id)
    start_both(pay.db, paid["session_id"])
    take_part(pay.db, paid["session_id"])  # both sides take part: it will end delivered
    pay.commit()
    assert pay.val("select status::text from public.sessions where id = %s", (paid["session_id"],)) == "live"
    return paid


def _extension(pay: Pay, customer: uuid.UUID, session_id: Any) -> str:
    with pay.db.as_user(customer):
        ext = pay.db.rpc("request_extension", p_session_id=session_id, p_minutes=15)
    pay.commit()
    assert ext["status"] == "payment_required" and ext["price_cents"] == 999
    return ext["extension_id"]


def _checkout(pay: Pay, customer: uuid.UUID, body: dict[str, Any]) -> tuple[int, Any]:
    return call(create_checkout, body={**URLS, **body}, headers=pay.token(customer))


def _end(pay: Pay, user: uuid.UUID, session_id: Any) -> None:
    """Ends the session (delivered); its objection window then ends (payouts released)."""
    with pay.db.as_user(user):
        pay.db.rpc("end_session", p_session_id=session_id)
    pay.commit()
    release_hold(pay.db, session_id)
    pay.commit()


def _deadline(pay: Pay, session_id: Any) -> dt.datetime:
    return pay.val("select deadline_at from public.sessions where id = %s", (session_id,))


def _pay_by_card(pay: Pay, booking_id: Any, amount: int = 999) -> dict[str, Any]:
    booking = pay.booking(booking_id)
    pi = "pi_" + uuid.uuid4().hex[:20]
    out = pay.deliver(pay.events.completed(booking["stripe_checkout_session_id"], str(booking_id), amount, pi))
    return {"pi": pi, "cs": booking["stripe_checkout_session_id"], "outcome": out["outcome"]}


def _key(call_: Any) -> str:
    return {k.lower(): v for k, v in call_.headers.items()}["idempotency-key"]


def test_extension_paid_through_checkout_then_payouts(pay: Pay) -> None:
    customer, mechanic = pay.customer(), pay.mechanic()
    account = pay.onboard(mechanic)
    paid = _live(pay, customer, mechanic)
    sid = paid["session_id"]
    ext = _extension(pay, customer, sid)
    pay.assert_books_balance()

    status, out = _checkout(pay, customer, {"extension_id": ext})
    assert status == 200, out
    assert out["mode"] == "stripe" and out["url"].startswith("https://checkout.stripe.com/")
    assert (out["price_cents"], out["currency"], out["extension_id"]) == (999, "usd", ext)
    booking = pay.booking(out["booking_id"])
    assert (booking["extension_id"], booking["session_id"], booking["plan_code"], booking["intake_id"],
            booking["method"], booking["status"], booking["price_cents"]) == (
        uuid.UUID(ext), sid, None, None, "card", "pending", 999)
    [create] = pay.fake.calls_to("POST", "/v1/checkout/sessions")[-1:]
    params = pay.fake.params(create)
    assert params["mode"] == "payment"
    assert params["line_items"]["0"]["price_data"]["unit_amount"] == "999"  # the extension row's price
    assert params["metadata"]["booking_id"] == out["booking_id"] and params["metadata"]["extension_id"] == ext
    assert params["metadata"]["session_id"] == str(sid) and "plan_code" not in params["metadata"]
    assert params["payment_intent_data"]["transfer_group"] == f"booking_{out['booking_id']}"
    assert _key(create) == f"checkout:{out['booking_id']}"
    # a double click returns the same open checkout
    status, again = _checkout(pay, customer, {"extension_id": ext})
    assert status == 200 and again["booking_id"] == out["booking_id"] and again["url"] == out["url"]
    assert len(pay.fake.calls_to("POST", "/v1/checkout/sessions")) == 2  # the session's and this one
    pay.assert_books_balance()

    before = _deadline(pay, sid)
    card = _pay_by_card(pay, out["booking_id"])
    assert card["outcome"] == "paid"
    assert pay.val("select status::text from public.session_extensions where id = %s", (ext,)) == "granted"
    assert _deadline(pay, sid) - before == dt.timedelta(minutes=15)
    assert pay.booking(out["booking_id"])["status"] == "paid"
    [payment] = pay.rows("select * from public.payments where booking_id = %s", (out["booking_id"],))
    assert (payment["session_id"], payment["extension_id"], payment["amount_cents"], payment["method"]) == (
        sid, uuid.UUID(ext), 999, "card")
    assert pay.val("select count(*) from public.payments where session_id = %s", (sid,)) == 2
    pay.assert_books_balance()
    # the same event again: no second effect
    booking = pay.booking(out["booking_id"])
    assert pay.deliver(pay.events.completed(booking["stripe_checkout_session_id"], str(booking["id"]), 999,
                                            card["pi"]))["outcome"] == "already_recorded"
    assert _deadline(pay, sid) - before == dt.timedelta(minutes=15)
    # paid: it cannot be bought again
    status, err = _checkout(pay, customer, {"extension_id": ext})
    assert (status, err["code"]) == (409, "AD005")
    pay.assert_books_balance()

    _end(pay, mechanic, sid)
    payouts = pay.rows("select p.*, pay.extension_id from public.payouts p join public.payments pay"
                       " on pay.id = p.payment_id where p.session_id = %s order by p.amount_cents desc", (sid,))
    assert [(p["mechanic_id"], p["amount_cents"], p["status"]) for p in payouts] == [
        (mechanic, 2099, "queued"), (mechanic, 699, "queued")]  # 70% of each, rounded down
    assert payouts[1]["extension_id"] == uuid.UUID(ext)
    assert pay.val("select platform_fee_cents from public.payments where id = %s", (payment["id"],)) == 300
    pay.assert_books_balance()

    assert pay.process() == {"transfers_paid": 2}
    transfers = pay.fake.calls_to("POST", "/v1/transfers")
    by_amount = {pay.fake.params(t)["amount"]: t for t in transfers}
    first, second = by_amount["2099"], by_amount["699"]
    assert _key(first) == f"transfer:{sid}:{mechanic}"
    assert _key(second) == f"transfer:{sid}:{mechanic}:{payment['id']}"
    p1, p2 = pay.fake.params(first), pay.fake.params(second)
    assert p1["transfer_group"] == f"booking_{paid['booking_id']}" and p1["source_transaction"] == charge_for(paid["pi"])
    assert p2["transfer_group"] == f"booking_{out['booking_id']}" and p2["source_transaction"] == charge_for(card["pi"])
    assert p1["destination"] == p2["destination"] == account
    assert pay.process() == {}
    assert {r["status"] for r in pay.rows("select status::text from public.payouts")} == {"paid"}
    pay.assert_books_balance()


def test_extension_paid_with_credit(pay: Pay) -> None:
    customer, mechanic = pay.customer(), pay.mechanic()
    pay.onboard(mechanic)
    paid = _live(pay, customer, mechanic)
    sid = paid["session_id"]
    pay.grant_credit(customer, 1000)
    ext = _extension(pay, customer, sid)
    before = _deadline(pay, sid)
    calls = len(pay.fake.calls)

    status, out = _checkout(pay, customer, {"extension_id": ext})
    assert status == 200, out
    assert (out["mode"], out["url"], out["session_id"], out["extension_id"], out["extension_status"]) == (
        "credit", None, str(sid), ext, "granted")
    assert (out["price_cents"], out["credit_balance_cents"]) == (999, 1)
    assert len(pay.fake.calls) == calls  # Stripe not involved
    assert _deadline(pay, sid) - before == dt.timedelta(minutes=15)
    assert pay.val("select status::text from public.session_extensions where id = %s", (ext,)) == "granted"
    booking = pay.booking(out["booking_id"])
    assert (booking["method"], booking["status"], booking["extension_id"]) == ("credit", "paid", uuid.UUID(ext))
    [entry] = pay.rows("select * from public.credit_ledger where booking_id = %s", (out["booking_id"],))
    assert (entry["kind"], entry["amount_cents"], entry["balance_after_cents"]) == ("debit", -999, 1)
    pay.assert_books_balance()

    _end(pay, customer, sid)
    assert pay.process() == {"transfers_paid": 2}
    credit_transfer = next(t for t in pay.fake.calls_to("POST", "/v1/transfers") if pay.fake.params(t)["amount"] == "699")
    assert "source_transaction" not in pay.fake.params(credit_transfer)  # from the platform's balance
    pay.assert_books_balance()


def test_extension_paid_after_the_session_ended_is_refunded(pay: Pay) -> None:
    customer, mechanic = pay.customer(), pay.mechanic()
    pay.onboard(mechanic)
    paid = _live(pay, customer, mechanic)
    sid = paid["session_id"]
    ext = _extension(pay, customer, sid)
    status, out = _checkout(pay, customer, {"extension_id": ext})
    assert status == 200 and out["mode"] == "stripe"
    _end(pay, mechanic, sid)  # the session ends while the customer is on the payment page
    before = _deadline(pay, sid)
    pay.assert_books_balance()

    card = _pay_by_card(pay, out["booking_id"])
    assert card["outcome"] == "unfulfilled"
    assert pay.val("select status::text from public.session_extensions where id = %s", (ext,)) == "cancelled"
    assert pay.val("select extension_minutes from public.sessions where id = %s", (sid,)) == 0
    assert _deadline(pay, sid) == before
    booking = pay.booking(out["booking_id"])
    assert booking["status"] == "unfulfilled" and "session ended" in booking["failure_reason"]
    payment = pay.row("select * from public.payments where booking_id = %s", (out["booking_id"],))
    [refund] = pay.rows("select * from public.refunds where payment_id = %s", (payment["id"],))
    assert (refund["amount_cents"], refund["status"], refund["origin"], refund["destination"]) == (
        999, "queued", "unfulfilled", "card")
    # settled with nothing to split: no payouts of it, the session's own payout untouched
    assert payment["settled_at"] is not None and payment["settled_base_cents"] == 0
    assert pay.val("select count(*) from public.payouts where payment_id = %s", (payment["id"],)) == 0
    assert pay.val("select count(*) from public.payouts where session_id = %s", (sid,)) == 1
    pay.assert_books_balance()

    assert pay.process() == {"refunds_processing": 1, "transfers_paid": 1}
    [sent] = pay.fake.calls_to("POST", "/v1/refunds")
    assert pay.fake.params(sent)["payment_intent"] == card["pi"] and pay.fake.params(sent)["amount"] == "999"
    assert _key(sent) == f"refund:{payment['id']}:1"
    re_id = pay.val("select stripe_refund_id from public.refunds where id = %s", (refund["id"],))
    pay.deliver(pay.events.refund("refund.updated", re_id, card["pi"], 999))
    assert pay.val("select status::text from public.payments where id = %s", (payment["id"],)) == "refunded"
    pay.assert_books_balance()


def test_extension_paid_twice_the_second_is_refunded(pay: Pay) -> None:
    customer, mechanic = pay.customer(), pay.mechanic()
    paid = _live(pay, customer, mechanic)
    sid = paid["session_id"]
    ext = _extension(pay, customer, sid)
    status, by_card = _checkout(pay, customer, {"extension_id": ext})
    assert status == 200 and by_card["mode"] == "stripe"
    pay.grant_credit(customer, 999)  # meanwhile paid with credit in another tab
    status, by_credit = _checkout(pay, customer, {"extension_id": ext})
    assert status == 200 and by_credit["mode"] == "credit"
    before = _deadline(pay, sid)

    card = _pay_by_card(pay, by_card["booking_id"])
    assert card["outcome"] == "unfulfilled"
    assert _deadline(pay, sid) == before  # granted once
    assert pay.val("select extension_minutes from public.sessions where id = %s", (sid,)) == 15
    assert pay.booking(by_card["booking_id"])["status"] == "unfulfilled"
    assert pay.rows("select r.amount_cents, r.origin from public.refunds r join public.payments p"
                    " on p.id = r.payment_id where p.booking_id = %s", (by_card["booking_id"],)) == [
        {"amount_cents": 999, "origin": "unfulfilled"}]
    pay.assert_books_balance()


def test_admin_refund_spans_the_session_and_its_extension(pay: Pay) -> None:
    customer, mechanic = pay.customer(), pay.mechanic()
    pay.onboard(mechanic)
    paid = _live(pay, customer, mechanic)
    sid = paid["session_id"]
    ext = _extension(pay, customer, sid)
    _, out = _checkout(pay, customer, {"extension_id": ext})
    _pay_by_card(pay, out["booking_id"])
    _end(pay, mechanic, sid)
    pay.drain()
    pay.assert_books_balance()
    admin = pay.admin()
    # a partial refund comes out of the session's own payment first, then the extension's
    with pay.db.as_user(admin):
        first = pay.db.rpc("admin_refund", p_session_id=sid, p_amount_cents=3000, p_reason="call dropped")
    pay.commit()
    assert first["amount_cents"] == 3000 and [r["amount_cents"] for r in first["refunds"]] == [2999, 1]
    pay.assert_books_balance()
    with pay.db.as_user(admin):
        rest = pay.db.rpc("admin_refund", p_session_id=sid, p_reason="goodwill")
        assert pay.db.rpc_error("admin_refund", p_session_id=sid, p_amount_cents=1, p_reason="again") == "AD023"
    pay.commit()
    assert rest["amount_cents"] == 998
    pay.assert_books_balance()
    pay.drain()
    reversals = pay.fake.calls_to("POST", "/v1/transfers/")
    # each payout taken back in full (1 cent of 999 takes back ⌊699 × 1/999⌋ = 0, the last refund the rest)
    assert len({_key(c) for c in reversals}) == len(reversals) == 2
    assert sorted(int(pay.fake.params(c)["amount"]) for c in reversals) == [699, 2099]
    pay.assert_books_balance()


def test_hostile_extension_checkouts_write_nothing(pay: Pay) -> None:
    customer, other, mechanic = pay.customer(), pay.customer("Olive Other"), pay.mechanic()
    paid = _live(pay, customer, mechanic)
    sid = paid["session_id"]
    ext = _extension(pay, customer, sid)
    granted = _extension(pay, customer, sid)
    assert pay.val("select private.grant_extension(%s)", (granted,)) is True
    micro_mechanic = pay.mechanic()
    micro = _live(pay, other, micro_mechanic, plan="micro")
    with pay.db.as_user(other):
        free = pay.db.rpc("request_extension", p_session_id=micro["session_id"], p_minutes=2)
    pay.commit()
    assert free["status"] == "granted"
    ended_session = _live(pay, other, pay.mechanic())
    ended = _extension(pay, other, ended_session["session_id"])
    _end(pay, other, ended_session["session_id"])
    pay.assert_books_balance()

    def fingerprint() -> dict[str, Any]:
        return {"counts": {t: pay.val(f"select count(*) from {t}") for t in (
                    "public.bookings", "public.payments", "public.refunds", "public.credit_ledger")},
                "extensions": pay.rows("select id, status::text from public.session_extensions order by id"),
                "sessions": pay.rows("select id, extension_minutes, deadline_at from public.sessions order by id"),
                "stripe": len(pay.fake.calls)}

    intake = str(pay.intake(customer))
    before = fingerprint()
    cases: list[tuple[uuid.UUID, dict[str, Any], int, str]] = [
        (other, {"extension_id": ext}, 404, "AD004"),  # another customer's extension
        (mechanic, {"extension_id": ext}, 404, "AD004"),  # the mechanic does not pay it
        (customer, {"extension_id": str(uuid.uuid4())}, 404, "AD004"),  # unknown
        (other, {"extension_id": ended}, 409, "AD030"),  # the session is not live
        (other, {"extension_id": free["extension_id"]}, 400, "AD001"),  # a free micro extension
        (customer, {"extension_id": granted}, 409, "AD005"),  # granted already
        (customer, {"extension_id": ext, "plan_code": "video15"}, 400, "AD001"),  # both
        (customer, {"extension_id": ext, "plan_code": "video15", "intake_id": intake}, 400, "AD001"),
        (customer, {"extension_id": ext, "hold_id": str(uuid.uuid4())}, 400, "AD001"),
        (customer, {"extension_id": ext, "intake_id": intake}, 400, "AD001"),  # an extension has no intake
        (customer, {"extension_id": ext, "specialist": True}, 400, "AD001"),
        (customer, {"extension_id": "not-a-uuid"}, 400, "AD001"),
        (customer, {"extension_id": None}, 400, "AD001"),  # then nothing to book
        (customer, {}, 400, "AD001"),
    ]
    for user, body, status_, code in cases:
        status, payload = _checkout(pay, user, body)
        assert (status, payload["code"]) == (status_, code), (body, payload)
        assert fingerprint() == before, body
    # without a signed-in customer
    status, payload = call(create_checkout, body={**URLS, "extension_id": ext})
    assert status == 401 and fingerprint() == before
    pay.assert_books_balance()
