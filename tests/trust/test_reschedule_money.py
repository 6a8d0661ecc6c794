"""Money across a re-priced reschedule, on databases of their own: a card booking moved to a
cheaper time gets a partial refund row for the difference, sent to Stripe by the worker, and the
settlement base is the new price; a dearer move sends nothing; two reschedules of one booking at
once refund the difference exactly once."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from functions.checkout import create_checkout
from tests.support.payments import Pay, call
from tests.support.personas import race
from tests.support.prices import day, priced_mechanic, slot


def _card_booking(pay: Pay, mechanic: uuid.UUID, customer: uuid.UUID, start: Any, plan: str = "video15") -> dict:
    with pay.db.as_user(customer):
        h = pay.db.rpc("hold_slot", p_mechanic_id=mechanic, p_start=start, p_plan_code=plan)
    pay.commit()
    body = {"hold_id": h["hold_id"], "intake_id": str(pay.intake(customer)),
            "success_url": "https://app.example.test/ok", "cancel_url": "https://app.example.test/no"}
    status, out = call(create_checkout, body=body, headers=pay.token(customer))
    assert status == 200, out
    b = pay.booking(out["booking_id"])
    pi = "pi_" + uuid.uuid4().hex[:20]
    pay.deliver(pay.events.completed(b["stripe_checkout_session_id"], str(b["id"]), b["price_cents"], pi))
    b = pay.booking(out["booking_id"])
    assert b["status"] == "paid"
    return {"session_id": b["session_id"], "pi": pi, "price": b["price_cents"]}


def test_a_card_booking_moved_to_a_cheaper_time_is_refunded_the_difference(pay: Pay) -> None:
    mechanic = priced_mechanic(pay.db)
    pay.commit()
    customer = pay.customer()
    d = day()
    booked = _card_booking(pay, mechanic, customer, slot(d, "13:00"))  # ×1: 2999
    sid = booked["session_id"]
    assert booked["price"] == 2999

    # dearer: refused, nothing queued, nothing sent
    with pay.db.as_user(customer):
        assert pay.db.rpc_error("reschedule_session", p_session_id=sid, p_new_start=slot(d, "18:00")) == "AD140"
    pay.commit()
    assert pay.rows("select * from public.refunds") == []
    assert pay.val("select count(*) from private.outbox where kind = 'stripe.refund'") == 0

    # cheaper: ×0.25 = 750; 2,249 back to the card
    with pay.db.as_user(customer):
        out = pay.db.rpc("reschedule_session", p_session_id=sid, p_new_start=slot(d, "09:00"))
    pay.commit()
    assert (out["price_cents"], out["refunded_cents"]) == (750, 2249)
    refund = pay.row("select * from public.refunds")
    assert (refund["amount_cents"], refund["destination"], refund["status"], refund["origin"]) == (
        2249, "card", "queued", "automatic")
    assert pay.val("select status from public.sessions where id = %s", (sid,)) == "scheduled"
    pay.assert_books_balance()

    assert pay.process() == {"refunds_processing": 1}
    calls = pay.fake.calls_to("POST", "/v1/refunds")
    assert len(calls) == 1
    sent = pay.fake.params(calls[0])
    assert (int(sent["amount"]), sent["payment_intent"]) == (2249, booked["pi"])
    pay.assert_books_balance()

    # what settlement reads: the base is the new price
    pay.db.execute("select private.settle_payment(%s, now())", (sid,))
    pay.commit()
    assert pay.val("select settled_base_cents from public.payments where session_id = %s", (sid,)) == 750
    pay.assert_books_balance()


def test_a_card_booking_of_a_specialists_slot_records_the_surcharge(pay: Pay) -> None:
    mechanic = priced_mechanic(pay.db, is_brand_specialist=True, brand_specializations=["Honda"])
    pay.commit()
    customer = pay.customer()
    booked = _card_booking(pay, mechanic, customer, slot(day(), "13:00"))  # a Honda intake
    assert booked["price"] == 2999 + 1000
    s = pay.row("select price_cents, specialist from public.sessions where id = %s", (booked["session_id"],))
    assert (s["price_cents"], s["specialist"]) == (3999, True)
    pay.assert_books_balance()


ROUNDS = 6


def test_two_reschedules_of_one_booking_at_once_refund_once(pay: Pay) -> None:
    """Both ask for a ×0.25 time (the same one on odd rounds): the moves serialize on the
    mechanic's lock, the first refunds 3,749 of 4,999, the second finds the price already 1,250 and
    refunds nothing. Never a double refund, never an overlap."""
    mechanic = priced_mechanic(pay.db)
    pay.commit()
    conns = [psycopg.connect(pay.url, autocommit=True, prepare_threshold=None) for _ in range(2)]
    try:
        for r in range(ROUNDS):
            d = day(3 + r)
            customer = pay.customer()  # one booking each: the race is about one booking, not a customer's cap
            pay.grant_credit(customer, 4999)
            intake = pay.intake(customer)
            with pay.db.as_user(customer):
                h = pay.db.rpc("hold_slot", p_mechanic_id=mechanic, p_start=slot(d, "13:00"), p_plan_code="diagnostic")
                sid = pay.db.rpc("book_slot", p_hold_id=h["hold_id"], p_intake_id=intake)["session_id"]
            pay.commit()
            targets = [slot(d, "09:00"), slot(d, "09:00" if r % 2 else "10:00")]
            results = race([(conns[i], customer, "select public.reschedule_session(%s, %s)", (sid, targets[i]))
                            for i in range(2)])
            assert [x[0] for x in results] == ["ok", "ok"], results
            assert sorted(x[1]["refunded_cents"] for x in results) == [0, 3749]
            s = pay.row("select price_cents, calendar_sequence from public.sessions where id = %s", (sid,))
            assert (s["price_cents"], s["calendar_sequence"]) == (1250, 2)
            assert pay.val("select sum(r.amount_cents) from public.refunds r join public.payments p"
                           " on p.id = r.payment_id where p.session_id = %s", (sid,)) == 3749
            assert pay.val("select count(*) from public.mechanic_commitments where session_id = %s"
                           " and status = 'confirmed'", (sid,)) == 1
            assert pay.val("select private.credit_balance(%s)", (customer,)) == 3749
    finally:
        for c in conns:
            c.close()
    assert pay.val("""select count(*) from public.mechanic_commitments a join public.mechanic_commitments b
                      on a.mechanic_id = b.mechanic_id and a.id < b.id and a.during && b.during
                      where a.status in ('held', 'confirmed', 'in_progress')
                        and b.status in ('held', 'confirmed', 'in_progress')""") == 0
    pay.assert_books_balance()
