"""Races the payments rules must win: an event about a payment arriving while its checkout is being
recorded, and two refunds of one payment at once (never more than the payment)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from typing import Any

import psycopg

from functions.webhooks.stripe import stripe_webhook
from tests.support.payments import Pay, call, sign
from tests.support.personas import request_as_user

ROUNDS = 8


def _together(*fns: Callable[[], Any]) -> list[Any]:
    barrier = threading.Barrier(len(fns))
    results: list[Any] = [None] * len(fns)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = fns[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(fns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def _deliver(event: dict[str, Any]) -> Callable[[], tuple[int, Any]]:
    payload = json.dumps(event)
    header = sign(payload)
    return lambda: call(stripe_webhook, raw=payload, headers={"Stripe-Signature": header})


def test_a_refund_event_racing_the_checkout_event_is_never_lost(pay: Pay) -> None:
    for _ in range(ROUNDS):
        customer = pay.customer()
        out = pay.checkout(customer)
        b = pay.booking(out["booking_id"])
        pi = "pi_" + uuid.uuid4().hex[:20]
        re_id = "re_" + uuid.uuid4().hex[:20]
        completed = pay.events.completed(b["stripe_checkout_session_id"], str(b["id"]), 2999, pi)
        refund = pay.events.refund_object(re_id, pi, 500)
        refunded = pay.events.charge(pi, 2999, refunded=500, refunds=[refund], type_="charge.refunded")
        created = pay.events.refund("refund.created", re_id, pi, 500, "succeeded")
        results = _together(_deliver(completed), _deliver(refunded), _deliver(created))
        assert [status for status, _ in results] == [200, 200, 200], results
        rows = pay.rows("select r.amount_cents, r.status, r.stripe_refund_id from public.refunds r"
                        " join public.payments p on p.id = r.payment_id where p.booking_id = %s", (b["id"],))
        assert rows == [{"amount_cents": 500, "status": "succeeded", "stripe_refund_id": re_id}], rows
        assert pay.val("select status from public.payments where booking_id = %s", (b["id"],)) == "partially_refunded"
    pay.assert_books_balance()


def test_two_refunds_of_one_payment_at_once_never_exceed_it(pay: Pay) -> None:
    admin = pay.admin()

    def admin_refund(conn: psycopg.Connection, session_id: Any, amount: int | None) -> Callable[[], str]:
        def go() -> str:
            try:
                with request_as_user(conn, admin):
                    conn.execute("select public.admin_refund(%s, %s, 'race')", (session_id, amount))
                return "ok"
            except psycopg.Error as exc:
                return exc.sqlstate or "?"
        return go

    conns = [psycopg.connect(pay.url, autocommit=True, prepare_threshold=None) for _ in range(3)]
    try:
        for _ in range(ROUNDS):
            customer = pay.customer()
            paid = pay.paid_booking(customer, plan="video15")  # 2999
            request_id = pay.val("select id from public.session_requests where session_id = %s",
                                 (paid["session_id"],))

            def customer_cancel(request_id: Any = request_id, customer: Any = customer) -> str:
                try:
                    with request_as_user(conns[2], customer):
                        conns[2].execute("select public.cancel_request(%s)", (request_id,))
                    return "ok"
                except psycopg.Error as exc:
                    return exc.sqlstate or "?"

            results = _together(admin_refund(conns[0], paid["session_id"], 2000),
                                admin_refund(conns[1], paid["session_id"], None), customer_cancel)
            refunded = pay.val("select coalesce(sum(amount_cents), 0) from public.refunds where payment_id = %s",
                               (paid["payment_id"],))
            assert refunded == 2999, (results, refunded)  # all of it, once, whoever won
            assert set(results) <= {"ok", "AD023", "AD006"}, results
            assert pay.val("select status from public.sessions where id = %s", (paid["session_id"],)) == "cancelled"
            pay.assert_books_balance()
    finally:
        for c in conns:
            c.close()
