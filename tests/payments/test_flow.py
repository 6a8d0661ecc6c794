"""End to end: checkout → webhook → session → completion → payouts (transfers), and → refunds,
including the refund after payout that reverses transfers proportionally."""

from __future__ import annotations

from tests.support.payments import Pay, charge_for


def test_checkout_to_payout(pay: Pay) -> None:
    customer = pay.customer()
    mechanic = pay.mechanic()
    account = pay.onboard(mechanic)
    paid = pay.paid_booking(customer, plan="video15")
    assert paid["session_id"] is not None
    session = pay.row("select * from public.sessions where id = %s", (paid["session_id"],))
    assert session["status"] == "pending" and session["price_cents"] == 2999
    assert pay.booking(paid["booking_id"])["status"] == "paid"
    pay.assert_books_balance()

    pay.serve(mechanic, paid["session_id"])
    [payout] = pay.rows("select * from public.payouts where session_id = %s", (paid["session_id"],))
    assert (payout["payee_kind"], payout["mechanic_id"], payout["amount_cents"], payout["status"]) == (
        "mechanic", mechanic, 2099, "queued")  # 70% of 2999, rounded down; the platform keeps 900
    assert pay.val("select platform_fee_cents from public.payments where id = %s", (paid["payment_id"],)) == 900
    pay.assert_books_balance()

    stats = pay.process()
    assert stats == {"transfers_paid": 1}
    [transfer] = pay.fake.calls_to("POST", "/v1/transfers")
    params = pay.fake.params(transfer)
    assert params["amount"] == "2099" and params["destination"] == account
    assert params["source_transaction"] == charge_for(paid["pi"])  # fetched from the payment intent
    assert params["transfer_group"] == f"booking_{paid['booking_id']}"
    key = {k.lower(): v for k, v in transfer.headers.items()}["idempotency-key"]
    assert key == f"transfer:{paid['session_id']}:{mechanic}"
    payout = pay.row("select * from public.payouts where id = %s", (payout["id"],))
    assert payout["status"] == "paid" and payout["stripe_transfer_id"].startswith("tr_")
    assert pay.val("select stripe_charge_id from public.payments where id = %s", (paid["payment_id"],)) == charge_for(
        paid["pi"])
    assert pay.process() == {}  # nothing left: no second transfer
    assert len(pay.fake.calls_to("POST", "/v1/transfers")) == 1
    pay.assert_books_balance()


def test_checkout_to_refund_when_the_customer_cancels(pay: Pay) -> None:
    customer = pay.customer()
    paid = pay.paid_booking(customer, plan="diagnostic")
    request_id = pay.val("select id from public.session_requests where session_id = %s", (paid["session_id"],))
    with pay.db.as_user(customer):
        pay.db.rpc("cancel_request", p_request_id=request_id, p_reason="found a shop nearby")
    pay.commit()
    [refund] = pay.rows("select * from public.refunds where payment_id = %s", (paid["payment_id"],))
    assert (refund["amount_cents"], refund["status"], refund["origin"], refund["destination"], refund["seq"]) == (
        4999, "queued", "automatic", "card", 1)
    pay.assert_books_balance()

    assert pay.process() == {"refunds_processing": 1}
    [call_] = pay.fake.calls_to("POST", "/v1/refunds")
    params = pay.fake.params(call_)
    assert params["payment_intent"] == paid["pi"] and params["amount"] == "4999"
    assert params["metadata"]["refund_id"] == str(refund["id"])
    key = {k.lower(): v for k, v in call_.headers.items()}["idempotency-key"]
    assert key == f"refund:{paid['payment_id']}:1"
    refund = pay.row("select * from public.refunds where id = %s", (refund["id"],))
    assert refund["status"] == "processing" and refund["stripe_refund_id"].startswith("re_")
    pay.assert_books_balance()

    # Stripe reports the refund done
    pay.deliver(pay.events.refund("refund.updated", refund["stripe_refund_id"], paid["pi"], 4999, "succeeded",
                                  {"refund_id": str(refund["id"])}))
    assert pay.val("select status from public.refunds where id = %s", (refund["id"],)) == "succeeded"
    assert pay.val("select status from public.payments where id = %s", (paid["payment_id"],)) == "refunded"
    assert pay.val("select status from public.sessions where id = %s", (paid["session_id"],)) == "cancelled"
    assert pay.process() == {}
    assert pay.rows("select * from public.payouts") == []
    pay.assert_books_balance()


def test_partial_refund_after_payout_reverses_transfers_proportionally(pay: Pay) -> None:
    customer = pay.customer()
    org, owner = pay.workshop()
    mechanic = pay.mechanic(organization=org)  # workshop-affiliated: its 70% goes to the workshop
    pay.onboard(owner, org)
    paid = pay.paid_booking(customer, plan="diagnostic")  # 4999
    pay.serve(mechanic, paid["session_id"])
    [payout] = pay.rows("select * from public.payouts where session_id = %s", (paid["session_id"],))
    assert (payout["payee_kind"], payout["organization_id"], payout["amount_cents"]) == ("workshop", org, 3499)
    assert pay.process() == {"transfers_paid": 1}
    pay.assert_books_balance()

    admin = pay.admin()
    with pay.db.as_user(admin):
        out = pay.db.rpc("admin_refund", p_session_id=paid["session_id"], p_amount_cents=2000,
                         p_reason="the diagnosis was incomplete")
    pay.commit()
    assert out["amount_cents"] == 2000 and out["status"] == "queued"
    [reversal] = pay.rows("select * from public.transfer_reversals")
    assert reversal["amount_cents"] == 1399  # floor(3499 × 2000 / 4999)
    assert pay.val("select platform_fee_cents from public.payments where id = %s", (paid["payment_id"],)) == (
        1500 - (2000 - 1399))
    pay.assert_books_balance()

    stats = pay.process()
    assert stats == {"refunds_processing": 1, "reversals_succeeded": 1}
    [rev_call] = pay.fake.calls_to("POST", "/v1/transfers/")  # /v1/transfers/<id>/reversals
    transfer_id = pay.val("select stripe_transfer_id from public.payouts")
    assert rev_call.path == f"/v1/transfers/{transfer_id}/reversals"
    reversal_key = {k.lower(): v for k, v in rev_call.headers.items()}["idempotency-key"]
    assert reversal_key == f"reversal:{payout['id']}:{reversal['refund_id']}"
    assert pay.fake.params(rev_call)["amount"] == "1399"
    pay.assert_books_balance()
    refund = pay.row("select * from public.refunds")
    pay.deliver(pay.events.refund("refund.updated", refund["stripe_refund_id"], paid["pi"], 2000, "succeeded"))
    assert pay.val("select status from public.payments") == "partially_refunded"
    balance = pay.row("select * from private.payment_balances")
    assert (balance["refunded_cents"], balance["transferred_cents"], balance["platform_fee_cents"],
            balance["refund_pending_cents"], balance["payout_pending_cents"]) == (2000, 3499 - 1399, 899, 0, 0)
    assert pay.val("select status from public.sessions") == "completed"  # a partial refund changes no session

    # the rest, fully: reverses every cent that remains with the workshop
    with pay.db.as_user(admin):
        pay.db.rpc("admin_refund", p_session_id=paid["session_id"], p_reason="goodwill")
    pay.commit()
    pay.drain()
    for r in pay.rows("select stripe_refund_id, amount_cents from public.refunds where status = 'processing'"):
        pay.deliver(pay.events.refund("refund.updated", r["stripe_refund_id"], paid["pi"], r["amount_cents"]))
    balance = pay.row("select * from private.payment_balances")
    assert (balance["refunded_cents"], balance["transferred_cents"], balance["platform_fee_cents"]) == (4999, 0, 0)
    assert pay.val("select status from public.payments") == "refunded"
    pay.assert_books_balance()


def test_payee_without_active_transfers_waits_and_is_paid_on_activation(pay: Pay) -> None:
    customer = pay.customer()
    mechanic = pay.mechanic()
    paid = pay.paid_booking(customer, plan="chat10")  # 999
    pay.serve(mechanic, paid["session_id"])
    payout = pay.row("select * from public.payouts")
    assert payout["status"] == "waiting" and "no payout account" in payout["waiting_reason"]
    assert pay.process() == {}
    account = pay.onboard(mechanic, activate=False)
    pay.deliver(pay.events.account(account, transfers="pending"))
    payout = pay.row("select * from public.payouts")
    assert payout["status"] == "waiting"  # still waiting (the reason is recomputed by the worker)
    assert pay.process() == {}
    pay.deliver(pay.events.account(account, transfers="active", created=int(__import__("time").time()) + 5))
    payout = pay.row("select * from public.payouts")
    assert payout["status"] == "queued" and payout["waiting_reason"] is None
    assert pay.process() == {"transfers_paid": 1}
    assert pay.val("select amount_cents from public.payouts where status = 'paid'") == 699
    pay.assert_books_balance()


def test_transfer_failure_is_retried_with_backoff(pay: Pay) -> None:
    import datetime as dt

    customer = pay.customer()
    mechanic = pay.mechanic()
    pay.onboard(mechanic)
    paid = pay.paid_booking(customer)
    pay.serve(mechanic, paid["session_id"])
    pay.fake.fail_next("/v1/transfers", status=400, error_type="invalid_request_error",
                       message="Insufficient funds in Stripe account")
    assert pay.process() == {"transfers_queued": 1}
    payout = pay.row("select * from public.payouts")
    assert payout["status"] == "queued" and "Insufficient funds" in payout["last_error"]
    job = pay.job("stripe.transfer")  # the retry state lives in the queue
    assert job["status"] == "pending" and job["attempts"] == 1 and "Insufficient funds" in job["last_error"]
    assert job["next_attempt_at"] > pay.val("select now()")  # backoff: not due at once
    assert pay.process() == {}  # not due yet
    pay.assert_books_balance()
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    assert pay.process(now=later) == {"transfers_paid": 1}
    payout = pay.row("select * from public.payouts")
    assert payout["status"] == "paid" and payout["last_error"] is None
    assert pay.job("stripe.transfer")["status"] == "sent" and pay.job("stripe.transfer")["attempts"] == 2
    transfers = pay.fake.calls_to("POST", "/v1/transfers")
    keys = {{k.lower(): v for k, v in c.headers.items()}["idempotency-key"] for c in transfers}
    assert len(transfers) == 2 and keys == {f"transfer:{paid['session_id']}:{mechanic}"}  # one key: one transfer
    pay.assert_books_balance()


def test_transfer_that_keeps_failing_is_marked_failed(pay: Pay) -> None:
    import datetime as dt

    customer = pay.customer()
    mechanic = pay.mechanic()
    pay.onboard(mechanic)
    paid = pay.paid_booking(customer)
    pay.serve(mechanic, paid["session_id"])
    max_attempts = pay.max_attempts("stripe.transfer")
    pay.fake.fail_next("/v1/transfers", times=max_attempts)
    when = dt.datetime.now(dt.UTC)
    for _ in range(max_attempts):
        when += dt.timedelta(days=1)
        pay.process(now=when)
    payout = pay.row("select * from public.payouts")
    assert payout["status"] == "failed"
    job = pay.job("stripe.transfer")
    assert job["status"] == "dead" and job["attempts"] == max_attempts
    assert pay.process(now=when + dt.timedelta(days=1)) == {}
    pay.assert_books_balance()  # a failed payout is still owed: counted as pending


def test_credit_booking_is_paid_out_without_a_source_charge(pay: Pay) -> None:
    customer = pay.customer()
    mechanic = pay.mechanic()
    pay.onboard(mechanic)
    pay.grant_credit(customer, 5000)
    out = pay.checkout(customer, plan="video15")
    assert out["mode"] == "credit" and out["url"] is None and out["credit_balance_cents"] == 2001
    assert pay.fake.calls_to("POST", "/v1/checkout/sessions") == []
    pay.serve(mechanic, out["session_id"])
    assert pay.process() == {"transfers_paid": 1}
    params = pay.fake.params(pay.fake.calls_to("POST", "/v1/transfers")[0])
    assert params["amount"] == "2099" and "source_transaction" not in params
    pay.assert_books_balance()


def test_refund_of_a_credit_booking_goes_back_to_credit(pay: Pay) -> None:
    customer = pay.customer()
    pay.grant_credit(customer, 3000)
    out = pay.checkout(customer, plan="video15")
    request_id = pay.val("select id from public.session_requests where session_id = %s", (out["session_id"],))
    with pay.db.as_user(customer):
        pay.db.rpc("cancel_request", p_request_id=request_id)
    pay.commit()
    refund = pay.row("select * from public.refunds")
    assert (refund["destination"], refund["status"], refund["amount_cents"]) == ("credit", "succeeded", 2999)
    assert pay.val("select balance_cents from public.credit_balances where customer_id = %s", (customer,)) == 3000
    assert [r["kind"] for r in pay.rows("select kind from public.credit_ledger order by seq")] == [
        "grant", "debit", "refund"]
    assert pay.process() == {}
    assert pay.fake.calls_to("POST", "/v1/refunds") == []
    pay.assert_books_balance()
