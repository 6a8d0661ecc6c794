"""The limits through the HTTP functions and the Stripe webhook: create_checkout answers 429 with
our code (and Retry-After when the error names one); a card payment that arrives when the
customer is at a cap is refunded in full, with the limit as the reason."""

from __future__ import annotations

import flask
import psycopg

from shared import db as shared_db
from shared.errors import http_error, retry_after
from shared.http import Ctx, endpoint
from tests.support.factories import request_free
from tests.support.payments import Pay


def test_checkout_at_the_open_request_cap_answers_429(pay: Pay) -> None:
    pay.db.execute("update private.settings set value = '1000' where key = 'limits.free_sessions_per_account'")
    pay.commit()
    customer = pay.customer()
    for _ in range(2):
        request_free(pay.db, customer, intake=pay.intake(customer))
    pay.commit()
    body = pay.checkout(customer, expect=429)
    assert body["code"] == "AD130" and body["error"] == "limit_reached"
    assert "open requests" in body["message"]
    assert pay.val("select count(*) from public.bookings where customer_id = %s", (customer,)) == 0
    assert pay.fake.calls_to("POST", "/v1/checkout/sessions") == []


def test_a_payment_arriving_at_the_cap_is_refunded(pay: Pay) -> None:
    pay.db.execute("update private.settings set value = '1000' where key = 'limits.free_sessions_per_account'")
    pay.commit()
    customer = pay.customer()
    out = pay.checkout(customer)  # no request open yet: the Checkout is created
    booking = pay.booking(out["booking_id"])
    for _ in range(2):  # meanwhile the customer opened two free requests
        request_free(pay.db, customer, intake=pay.intake(customer))
    pay.commit()
    pay.deliver(pay.events.completed(booking["stripe_checkout_session_id"], str(booking["id"]),
                                     booking["price_cents"], "pi_limit0000000000001"))
    booking = pay.booking(booking["id"])
    assert booking["status"] == "unfulfilled" and booking["session_id"] is None
    assert "at most 2 open requests" in booking["failure_reason"]
    assert "{" not in booking["failure_reason"]  # the message, not the JSON of the 429 form
    refunded = pay.val("select sum(r.amount_cents) from public.refunds r join public.payments p on p.id = r.payment_id"
                       " where p.booking_id = %s", (booking["id"],))
    assert refunded == booking["price_cents"]
    assert pay.val("select private.open_requests_count(%s)", (customer,)) == 2


def test_http_error_of_a_429_carries_retry_after(pay: Pay) -> None:
    with pay.db.conn.transaction(force_rollback=True):
        try:
            pay.db.conn.execute("select private.raise_error_retry('rate_limited', 'slow down', 42)")
        except psycopg.Error as exc:
            assert http_error(exc) == (429, {"code": "AD131", "error": "rate_limited", "message": "slow down"})
            assert retry_after(exc) == "42"
        else:
            raise AssertionError("expected an error")


def test_an_http_function_answers_429_with_retry_after(pay: Pay) -> None:
    """A function whose database call is refused with a 429 answers 429, our code in the body and
    the Retry-After header the database named (shared.http)."""
    @endpoint(methods=("POST",), auth="none")
    def limited(ctx: Ctx) -> dict[str, object]:
        with shared_db.transaction() as conn:
            conn.execute("select private.raise_error_retry('rate_limited', 'slow down', 7.5)")
        return {}

    app = flask.Flask("limits")
    with app.test_request_context("/", method="POST"):
        response = limited(flask.request)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "8"
    assert response.get_json() == {"code": "AD131", "error": "rate_limited", "message": "slow down"}
