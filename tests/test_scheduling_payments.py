"""A held slot paid through Checkout (create_checkout with hold_id and the Stripe webhook): paid in
time, paid after the hold expired with the slot still free (re-held), and paid after the slot
was taken (refunded automatically, the customer told by email)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from functions.checkout import create_checkout
from tests.test_payments_support import Pay, call
from tests.test_scheduling_support import at, every_day, future_day, scheduled_mechanic

pytest_plugins = ["tests.test_payments_support"]  # the `pay` fixture


def _setup(pay: Pay) -> tuple[uuid.UUID, uuid.UUID, dt.datetime]:
    mechanic = scheduled_mechanic(pay.db, "UTC", every_day("08:00", "18:00"))
    pay.commit()
    return mechanic, pay.customer(), at(future_day(5), "10:00")


def _hold(pay: Pay, customer: uuid.UUID, mechanic: uuid.UUID, start: dt.datetime) -> dict[str, Any]:
    with pay.db.as_user(customer):
        h = pay.db.rpc("hold_slot", p_mechanic_id=mechanic, p_start=start, p_plan_code="video15")
    pay.commit()
    return h


def _checkout(pay: Pay, customer: uuid.UUID, hold_id: str) -> dict[str, Any]:
    body = {"hold_id": hold_id, "intake_id": str(pay.intake(customer)),
            "success_url": "https://app.example.test/ok", "cancel_url": "https://app.example.test/no"}
    status, payload = call(create_checkout, body=body, headers=pay.token(customer))
    assert status == 200, payload
    return payload


def _pay(pay: Pay, booking_id: str) -> None:
    b = pay.booking(booking_id)
    pay.deliver(pay.events.completed(b["stripe_checkout_session_id"], str(b["id"]), b["price_cents"],
                                     "pi_" + uuid.uuid4().hex[:20]))


def _expire(pay: Pay, hold_id: str) -> None:
    pay.db.execute("update public.mechanic_commitments set expires_at = now() - interval '1 second' where id = %s",
                   (hold_id,))
    pay.db.execute("select private.expire_holds(now())")
    pay.commit()
    assert pay.val("select status from public.mechanic_commitments where id = %s", (hold_id,)) == "expired"


def test_a_held_slot_paid_in_time_becomes_a_scheduled_session(pay: Pay) -> None:
    mechanic, customer, start = _setup(pay)
    h = _hold(pay, customer, mechanic, start)
    out = _checkout(pay, customer, h["hold_id"])
    assert out["mode"] == "stripe" and out["price_cents"] == 2999
    assert pay.booking(out["booking_id"])["hold_id"] == uuid.UUID(h["hold_id"])
    _pay(pay, out["booking_id"])
    booking = pay.booking(out["booking_id"])
    assert booking["status"] == "paid"
    s = pay.row("select * from public.sessions where id = %s", (booking["session_id"],))
    assert (s["status"], s["scheduled_for"], s["mechanic_id"]) == ("scheduled", start, mechanic)
    assert pay.val("select status from public.mechanic_commitments where id = %s", (h["hold_id"],)) == "confirmed"
    assert pay.val("select count(*) from public.session_requests where session_id = %s", (s["id"],)) == 0
    pay.assert_books_balance()


def test_paid_after_expiry_with_the_slot_still_free_is_re_held(pay: Pay) -> None:
    mechanic, customer, start = _setup(pay)
    h = _hold(pay, customer, mechanic, start)
    out = _checkout(pay, customer, h["hold_id"])
    _expire(pay, h["hold_id"])
    _pay(pay, out["booking_id"])
    booking = pay.booking(out["booking_id"])
    assert booking["status"] == "paid"
    rows = pay.rows("select status from public.mechanic_commitments where mechanic_id = %s order by created_at",
                    (mechanic,))
    assert [r["status"] for r in rows] == ["expired", "confirmed"]
    assert pay.val("select scheduled_for from public.sessions where id = %s", (booking["session_id"],)) == start
    pay.assert_books_balance()


def test_paid_after_expiry_with_the_slot_taken_is_refunded_and_the_customer_told(pay: Pay) -> None:
    mechanic, customer, start = _setup(pay)
    h = _hold(pay, customer, mechanic, start)
    out = _checkout(pay, customer, h["hold_id"])
    _expire(pay, h["hold_id"])
    rival = pay.customer("Rita Rival")
    _hold(pay, rival, mechanic, start)
    _pay(pay, out["booking_id"])
    booking = pay.booking(out["booking_id"])
    assert booking["status"] == "unfulfilled" and booking["session_id"] is None
    refunds = pay.rows("select r.amount_cents, r.origin from public.refunds r join public.payments p"
                       " on p.id = r.payment_id where p.booking_id = %s", (booking["id"],))
    assert refunds == [{"amount_cents": 2999, "origin": "unfulfilled"}]
    mail = pay.row("select payload from private.outbox where dedupe_key = %s", (f"email:booking_slot_lost:{booking['id']}",))
    assert mail is not None and mail["payload"]["user_id"] == str(customer)
    assert pay.val("select count(*) from public.sessions where customer_id = %s", (customer,)) == 0
    assert pay.val("""select count(*) from public.mechanic_commitments a join public.mechanic_commitments b
                      on a.mechanic_id = b.mechanic_id and a.id < b.id and a.during && b.during
                      where a.status in ('held', 'confirmed', 'in_progress')
                        and b.status in ('held', 'confirmed', 'in_progress')""") == 0
    pay.assert_books_balance()


def test_credit_covering_a_held_slot_books_at_once(pay: Pay) -> None:
    mechanic, customer, start = _setup(pay)
    pay.grant_credit(customer, 5000)
    h = _hold(pay, customer, mechanic, start)
    out = _checkout(pay, customer, h["hold_id"])
    assert out["mode"] == "credit" and out["session_id"]
    assert pay.val("select status from public.sessions where id = %s", (out["session_id"],)) == "scheduled"
    assert pay.val("select private.credit_balance(%s)", (customer,)) == 5000 - 2999
    pay.assert_books_balance()
