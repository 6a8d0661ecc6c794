"""Refunds: automatic on every path that cancels a paid session before a mechanic took it (customer
cancel, the expiry sweep, an admin), none once a mechanic has it; admin_refund (full, partial,
refused); the worker's retries, lease and idempotency; Stripe reporting a failed refund."""

from __future__ import annotations

import datetime as dt
import uuid

import psycopg
import pytest

from shared import stripe_client
from tests.support.payments import Pay


def _refunds(p: Pay) -> list[dict]:
    return p.rows("select amount_cents, status, origin, destination, seq from public.refunds order by created_at, seq")


def _request(p: Pay, session_id: object) -> uuid.UUID:
    return p.val("select id from public.session_requests where session_id = %s", (session_id,))


def test_the_expiry_sweep_refunds_a_paid_request_nobody_took(pay: Pay) -> None:
    customer = pay.customer()
    paid = pay.paid_booking(customer)
    pay.db.execute("select private.sweep_requests(now() + interval '3 hours')")
    pay.commit()
    assert pay.val("select status from public.session_requests") == "expired"
    assert pay.val("select status from public.sessions") == "cancelled"
    assert _refunds(pay) == [{"amount_cents": 2999, "status": "queued", "origin": "automatic",
                              "destination": "card", "seq": 1}]
    pay.db.execute("select private.sweep_requests(now() + interval '6 hours')")  # again: nothing more
    pay.commit()
    assert len(_refunds(pay)) == 1
    assert pay.process() == {"refunds_processing": 1}
    assert pay.fake.params(pay.fake.calls_to("POST", "/v1/refunds")[0])["payment_intent"] == paid["pi"]
    pay.assert_books_balance()


def test_an_expired_request_is_refunded_even_if_its_session_is_left_pending(pay: Pay) -> None:
    customer = pay.customer()
    paid = pay.paid_booking(customer)
    # expiring goes through its lifecycle function (a direct update is refused, AD080); the refund is
    # the expiry's own step and does not wait for the session's cancellation
    pay.db.execute("select private.expire_request(%s, 'expired', now())", (paid["session_id"],))
    pay.commit()
    assert [r["origin"] for r in _refunds(pay)] == ["automatic"]
    assert pay.val("select status from public.sessions") == "cancelled"  # a refunded session is not served
    pay.assert_books_balance()


def test_an_admin_cancelling_a_pending_paid_session_refunds_it(pay: Pay) -> None:
    customer = pay.customer()
    paid = pay.paid_booking(customer)
    admin = pay.admin()
    with pay.db.as_user(admin):
        pay.db.rpc("admin_force_end_session", p_session_id=paid["session_id"], p_reason="duplicate booking")
    pay.commit()
    assert _refunds(pay) == [{"amount_cents": 2999, "status": "queued", "origin": "automatic",
                              "destination": "card", "seq": 1}]
    assert pay.val("select reason from public.refunds") == "duplicate booking"
    pay.assert_books_balance()


def test_no_automatic_refund_once_a_mechanic_has_the_session(pay: Pay) -> None:
    customer = pay.customer()
    mechanic = pay.mechanic()
    paid = pay.paid_booking(customer)
    pay.commit()
    with pay.db.as_user(mechanic):
        pay.db.rpc("accept_request", p_request_id=_request(pay, paid["session_id"]))
        # the mechanic releases it: back to pending, still paid, nothing refunded
        pay.db.rpc("cancel_request", p_request_id=_request(pay, paid["session_id"]))
    pay.commit()
    assert pay.val("select status from public.sessions") == "pending"
    assert _refunds(pay) == []
    with pay.db.as_user(mechanic):  # a released request is for the other mechanics
        assert pay.db.rpc_error("accept_request", p_request_id=_request(pay, paid["session_id"])) == "AD121"
    with pay.db.as_user(pay.mechanic()):
        pay.db.rpc("accept_request", p_request_id=_request(pay, paid["session_id"]))
    admin = pay.admin()
    with pay.db.as_user(admin):
        pay.db.rpc("admin_force_end_session", p_session_id=paid["session_id"], p_reason="customer no-show")
    pay.commit()
    assert pay.val("select status from public.sessions") == "cancelled"
    assert _refunds(pay) == []  # accepted, then cancelled: an admin decides (admin_refund)
    assert pay.row("select * from private.payment_balances")["unsettled_cents"] == 2999
    pay.assert_books_balance()


def test_a_free_session_has_nothing_to_refund(pay: Pay) -> None:
    customer = pay.customer()
    intake = pay.intake(customer)
    with pay.db.as_user(customer):
        ids = pay.db.rpc("request_session", p_plan_code="free", p_intake_id=intake)
        pay.db.rpc("cancel_request", p_request_id=ids["request_id"])
    pay.commit()
    assert _refunds(pay) == []


# ---------------------------------------------------------------------------------------------
# admin_refund
# ---------------------------------------------------------------------------------------------
def test_admin_refund_is_for_admins_only(pay: Pay) -> None:
    customer = pay.customer()
    mechanic = pay.mechanic()
    paid = pay.paid_booking(customer)
    for who in (customer, mechanic):
        with pay.db.as_user(who):
            code = pay.db.rpc_error("admin_refund", p_session_id=paid["session_id"], p_amount_cents=100,
                                    p_reason="please")
        assert code == "AD003"
    with pay.db.as_anon():
        assert pay.db.rpc_error("admin_refund", p_session_id=paid["session_id"], p_reason="x") == "42501"
    pay.commit()
    assert _refunds(pay) == []
    assert pay.val("select count(*) from public.payments where session_id = %s", (paid["session_id"],)) == 1


def test_admin_refund_refusals(pay: Pay) -> None:
    customer = pay.customer()
    paid = pay.paid_booking(customer)
    free_intake = pay.intake(customer)
    with pay.db.as_user(customer):
        free = pay.db.rpc("request_session", p_plan_code="free", p_intake_id=free_intake)
    admin = pay.admin()
    cases = [
        ({"p_session_id": paid["session_id"], "p_amount_cents": 3000, "p_reason": "too much"}, "AD023"),
        ({"p_session_id": paid["session_id"], "p_amount_cents": 0, "p_reason": "zero"}, "AD001"),
        ({"p_session_id": paid["session_id"], "p_amount_cents": -5, "p_reason": "negative"}, "AD001"),
        ({"p_session_id": paid["session_id"], "p_amount_cents": 100}, "AD001"),  # a reason is required
        ({"p_session_id": paid["session_id"], "p_amount_cents": 100, "p_reason": "   "}, "AD001"),
        ({"p_session_id": paid["session_id"], "p_amount_cents": 100, "p_reason": "x" * 4001}, "AD001"),
        ({"p_session_id": None, "p_reason": "x"}, "AD001"),
        ({"p_session_id": uuid.uuid4(), "p_reason": "no such"}, "AD004"),
        ({"p_session_id": free["session_id"], "p_reason": "free"}, "AD004"),
    ]
    for params, code in cases:
        with pay.db.as_user(admin):
            assert pay.db.rpc_error("admin_refund", **params) == code, params
    pay.commit()
    assert _refunds(pay) == []
    pay.assert_books_balance()


def test_admin_partial_refunds_then_the_rest(pay: Pay) -> None:
    customer = pay.customer()
    paid = pay.paid_booking(customer, plan="diagnostic")  # 4999
    admin = pay.admin()
    with pay.db.as_user(admin):
        first = pay.db.rpc("admin_refund", p_session_id=paid["session_id"], p_amount_cents=1000, p_reason="late")
        second = pay.db.rpc("admin_refund", p_session_id=paid["session_id"], p_amount_cents=999, p_reason="again")
        assert pay.db.rpc_error("admin_refund", p_session_id=paid["session_id"], p_amount_cents=3001,
                                p_reason="over") == "AD023"
    pay.commit()
    assert (first["amount_cents"], second["amount_cents"]) == (1000, 999)
    assert pay.val("select status from public.sessions") == "pending"  # partial: still to be served
    with pay.db.as_user(admin):
        rest = pay.db.rpc("admin_refund", p_session_id=paid["session_id"], p_reason="cancel the rest")
        assert pay.db.rpc_error("admin_refund", p_session_id=paid["session_id"], p_reason="more") == "AD023"
    pay.commit()
    assert rest["amount_cents"] == 3000
    assert pay.val("select status from public.sessions") == "cancelled"  # fully refunded before service
    assert [r["seq"] for r in _refunds(pay)] == [1, 2, 3]
    assert pay.process() == {"refunds_processing": 3}
    keys = sorted({k.lower(): v for k, v in c.headers.items()}["idempotency-key"]
                  for c in pay.fake.calls_to("POST", "/v1/refunds"))
    assert keys == [f"refund:{paid['payment_id']}:{n}" for n in (1, 2, 3)]
    pay.assert_books_balance()


def test_a_partial_refund_before_completion_lowers_the_split_base(pay: Pay) -> None:
    customer = pay.customer()
    mechanic = pay.mechanic()
    pay.onboard(mechanic)
    paid = pay.paid_booking(customer, plan="diagnostic")  # 4999
    admin = pay.admin()
    with pay.db.as_user(admin):
        pay.db.rpc("admin_refund", p_session_id=paid["session_id"], p_amount_cents=999, p_reason="promo")
    pay.commit()
    pay.serve(mechanic, paid["session_id"])
    assert pay.val("select settled_base_cents from public.payments") == 4000
    assert pay.val("select amount_cents from public.payouts") == 2800
    assert pay.val("select platform_fee_cents from public.payments") == 1200
    pay.assert_books_balance()


def test_a_refund_before_payout_lowers_the_waiting_payout_in_place(pay: Pay) -> None:
    customer = pay.customer()
    mechanic = pay.mechanic()  # no payout account yet: its payout waits
    paid = pay.paid_booking(customer, plan="video15")  # 2999 → 2099 / 900
    pay.serve(mechanic, paid["session_id"])
    admin = pay.admin()
    with pay.db.as_user(admin):
        pay.db.rpc("admin_refund", p_session_id=paid["session_id"], p_amount_cents=1000, p_reason="partial")
    pay.commit()
    payout = pay.row("select * from public.payouts")
    assert (payout["amount_cents"], payout["original_amount_cents"], payout["status"]) == (2099 - 699, 2099, "waiting")
    assert pay.rows("select * from public.transfer_reversals") == []
    pay.assert_books_balance()
    with pay.db.as_user(admin):
        pay.db.rpc("admin_refund", p_session_id=paid["session_id"], p_reason="the rest")
    pay.commit()
    payout = pay.row("select * from public.payouts")
    assert (payout["amount_cents"], payout["status"]) == (0, "cancelled")
    pay.onboard(mechanic)
    pay.drain()
    assert pay.fake.calls_to("POST", "/v1/transfers") == []
    assert pay.row("select * from private.payment_balances")["platform_fee_cents"] == 0
    pay.assert_books_balance()


# ---------------------------------------------------------------------------------------------
# The worker and Stripe's reports
# ---------------------------------------------------------------------------------------------
def test_a_refund_stripe_refuses_is_retried_then_marked_failed(pay: Pay) -> None:
    customer = pay.customer()
    paid = pay.paid_booking(customer)
    with pay.db.as_user(customer):
        pay.db.rpc("cancel_request", p_request_id=_request(pay, paid["session_id"]))
    pay.commit()
    attempts = pay.max_attempts("stripe.refund")
    pay.fake.fail_next("/v1/refunds", status=400, error_type="invalid_request_error",
                       message="Charge has been disputed", times=attempts)
    assert pay.process() == {"refunds_queued": 1}
    refund = pay.row("select * from public.refunds")
    assert refund["status"] == "queued" and "disputed" in refund["last_error"]
    assert pay.job("stripe.refund")["attempts"] == 1
    when = dt.datetime.now(dt.UTC)
    for _ in range(attempts - 1):
        when += dt.timedelta(days=1)
        pay.process(now=when)
    refund = pay.row("select * from public.refunds")
    assert refund["status"] == "failed"
    assert (pay.job("stripe.refund")["status"], pay.job("stripe.refund")["attempts"]) == ("dead", attempts)
    assert pay.val("select status from public.payments") == "succeeded"  # nothing was returned
    pay.assert_books_balance()


def test_stripe_reporting_a_refund_failed_after_it_succeeded(pay: Pay) -> None:
    customer = pay.customer()
    mechanic = pay.mechanic()
    pay.onboard(mechanic)
    paid = pay.paid_booking(customer)
    pay.serve(mechanic, paid["session_id"])
    pay.process()
    admin = pay.admin()
    with pay.db.as_user(admin):
        pay.db.rpc("admin_refund", p_session_id=paid["session_id"], p_amount_cents=1000, p_reason="partial")
    pay.commit()
    pay.process()
    re_id = pay.val("select stripe_refund_id from public.refunds")
    pay.deliver(pay.events.refund("refund.updated", re_id, paid["pi"], 1000, "succeeded", created=1))
    assert pay.val("select status from public.payments") == "partially_refunded"
    pay.deliver(pay.events.refund("refund.updated", re_id, paid["pi"], 1000, "failed", created=2))
    assert pay.val("select status from public.refunds") == "failed"
    assert pay.val("select status from public.payments") == "succeeded"
    # a late "pending" or "succeeded" never brings it back
    pay.deliver(pay.events.refund("refund.created", re_id, paid["pi"], 1000, "pending", created=0))
    assert pay.val("select status from public.refunds") == "failed"
    balance = pay.row("select * from private.payment_balances")
    assert balance["refunded_cents"] == 0 and balance["platform_fee_cents"] == 900 - (1000 - 699) + 1000
    pay.assert_books_balance()


def test_a_claim_that_was_never_recorded_is_reclaimed_with_the_same_key(pay: Pay) -> None:
    customer = pay.customer()
    paid = pay.paid_booking(customer)
    with pay.db.as_user(customer):
        pay.db.rpc("cancel_request", p_request_id=_request(pay, paid["session_id"]))
    pay.commit()
    # a worker claims, calls Stripe, and dies before recording
    with psycopg.connect(pay.url, autocommit=True) as conn:
        [claim] = conn.execute("select * from private.outbox_claim(now(), 10, array['stripe.refund'])").fetchall()
    client = stripe_client.get_client()
    first = client.v1.refunds.create({"payment_intent": paid["pi"], "amount": 2999},
                                     {"idempotency_key": f"refund:{paid['payment_id']}:1"})
    assert pay.process() == {}  # claimed: not before the lease runs out
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=6)
    assert pay.process(now=later) == {"refunds_processing": 1}
    assert pay.val("select stripe_refund_id from public.refunds") == first.id  # Stripe answered the same
    assert claim[3] == {"refund_id": str(pay.val("select id from public.refunds"))}  # the job's payload
    assert claim[2] == f"refund:{paid['payment_id']}:1"  # its key: the idempotency key
    assert len(pay.fake.calls_to("POST", "/v1/refunds")) == 2  # two calls, one key ...
    assert [o["id"] for o in pay.fake.objects.values() if o["object"] == "refund"] == [first.id]  # ... one refund
    pay.assert_books_balance()


@pytest.mark.parametrize("status", ["succeeded", "failed"])
def test_the_worker_records_what_stripe_answers(pay: Pay, status: str) -> None:
    customer = pay.customer()
    paid = pay.paid_booking(customer)
    pay.fake.refund_status = status
    with pay.db.as_user(customer):
        pay.db.rpc("cancel_request", p_request_id=_request(pay, paid["session_id"]))
    pay.commit()
    assert pay.process() == {f"refunds_{status}": 1}
    assert pay.val("select status from public.refunds") == status
    assert pay.val("select status from public.payments") == ("refunded" if status == "succeeded" else "succeeded")
    pay.assert_books_balance()
