"""A held slot paid through Checkout (create_checkout with hold_id and the Stripe webhook): paid in
time, paid after the hold expired with the slot still free (re-held), and paid after the slot
was taken (refunded automatically, the customer told by email); a reschedule racing such a paid
booking for the same time."""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from typing import Any

import psycopg

from functions.checkout import create_checkout
from tests.support.payments import Pay, call
from tests.support.personas import call_as
from tests.support.scheduling import at, every_day, future_day, scheduled_mechanic


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


ROUNDS = 12


def test_a_reschedule_racing_a_paid_booking_for_the_same_time(pay: Pay) -> None:
    """Customer A moves a booked session to T while customer B's payment for T arrives after B's
    hold expired (the webhook re-holds T if it is free). Every third round starts both at once;
    the others hold one side back 50 ms so that each side also wins for certain. Exactly one gets
    T, never an overlap: the reschedule loses with slot_taken, or the booking is refunded and B
    told."""
    mechanic = scheduled_mechanic(pay.db, "UTC", every_day("08:00", "18:00"))
    pay.commit()
    wins = {"reschedule": 0, "booking": 0}
    with psycopg.connect(pay.url, autocommit=True, prepare_threshold=None) as conn:
        for r in range(ROUNDS):
            day = future_day(3 + r)
            target = at(day, "11:00")
            hold_back = {0: None, 1: "reschedule", 2: "webhook"}[r % 3]
            # two customers of their own per round: one account has one free session and at most
            # three future bookings (tests/trust)
            owner, rival = pay.customer("Olga Owner"), pay.customer("Rita Rival")
            intake = pay.intake(owner)
            with pay.db.as_user(owner):
                h = pay.db.rpc("hold_slot", p_mechanic_id=mechanic, p_start=at(day, "09:00"), p_plan_code="free")
                session = pay.db.rpc("book_slot", p_hold_id=h["hold_id"], p_intake_id=intake)["session_id"]
            pay.commit()
            rival_hold = _hold(pay, rival, mechanic, target)
            booking_id = _checkout(pay, rival, rival_hold["hold_id"])["booking_id"]
            _expire(pay, rival_hold["hold_id"])
            b = pay.booking(booking_id)
            event = pay.events.completed(b["stripe_checkout_session_id"], str(b["id"]), b["price_cents"],
                                         "pi_" + uuid.uuid4().hex[:20])
            barrier = threading.Barrier(2)
            out: dict[str, Any] = {}

            def move(_session=session, _target=target, _barrier=barrier, _out=out, _late=hold_back,
                     _owner=owner) -> None:
                _barrier.wait()
                if _late == "reschedule":
                    time.sleep(0.05)
                _out["reschedule"] = call_as(conn, _owner, "select public.reschedule_session(%s, %s)",
                                             (_session, _target))

            def deliver(_event=event, _barrier=barrier, _out=out, _late=hold_back) -> None:
                _barrier.wait()
                if _late == "webhook":
                    time.sleep(0.05)
                _out["webhook"] = pay.send(_event)

            threads = [threading.Thread(target=move), threading.Thread(target=deliver)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            assert out["webhook"][0] == 200, out
            booking = pay.booking(booking_id)
            moved_to = pay.val("select scheduled_for from public.sessions where id = %s", (session,))
            if out["reschedule"][0] == "ok":
                wins["reschedule"] += 1
                assert moved_to == target
                assert booking["status"] == "unfulfilled" and booking["session_id"] is None
                refunded = pay.val("select sum(r.amount_cents) from public.refunds r join public.payments p"
                                   " on p.id = r.payment_id where p.booking_id = %s", (booking_id,))
                assert refunded == b["price_cents"]
                assert pay.val("select count(*) from private.outbox where dedupe_key = %s",
                               (f"email:booking_slot_lost:{booking_id}",)) == 1
            else:
                wins["booking"] += 1
                assert out["reschedule"] == ("err", "AD050"), out
                assert moved_to == at(day, "09:00")
                assert booking["status"] == "paid"
                assert pay.val("select scheduled_for from public.sessions where id = %s",
                               (booking["session_id"],)) == target
            assert pay.val("""select count(*) from public.mechanic_commitments a join public.mechanic_commitments b
                              on a.mechanic_id = b.mechanic_id and a.id < b.id and a.during && b.during
                              where a.status in ('held', 'confirmed', 'in_progress')
                                and b.status in ('held', 'confirmed', 'in_progress')""") == 0
    assert sum(wins.values()) == ROUNDS and min(wins.values()) > 0, wins
    pay.assert_books_balance()
