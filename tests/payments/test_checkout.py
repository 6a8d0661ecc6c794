"""create_checkout: validation, the amount from our catalog, the Stripe call outside the database,
reuse of an open checkout, the credit path, and Stripe failures."""

from __future__ import annotations

import uuid

import pytest

from functions.checkout import create_checkout
from tests.support.payments import Pay, call


def _fingerprint(p: Pay) -> dict[str, int]:
    return {t: p.val(f"select count(*) from {t}") for t in (
        "public.bookings", "public.payments", "public.sessions", "public.session_requests", "public.credit_ledger")}


def test_checkout_happy_path(pay: Pay) -> None:
    customer = pay.customer()
    mechanic = pay.mechanic()
    intake = pay.intake(customer)
    out = pay.checkout(customer, plan="video15", intake=intake, specialist=True,
                       preferred_mechanic_id=str(mechanic))
    assert out["mode"] == "stripe" and out["url"].startswith("https://checkout.stripe.com/")
    booking = pay.booking(out["booking_id"])
    assert booking["status"] == "pending" and booking["method"] == "card"
    assert booking["price_cents"] == 2999 + 1000  # plan + specialist surcharge (pricing setting)
    assert booking["stripe_checkout_session_id"] == out["url"].rsplit("/", 1)[1]
    [create] = pay.fake.calls_to("POST", "/v1/checkout/sessions")
    params = pay.fake.params(create)
    assert params["mode"] == "payment"
    assert params["line_items"]["0"]["price_data"]["unit_amount"] == "3999"
    assert params["line_items"]["0"]["price_data"]["currency"] == "usd"
    assert params["metadata"]["booking_id"] == out["booking_id"]
    assert params["payment_intent_data"]["transfer_group"] == f"booking_{out['booking_id']}"
    assert params["payment_intent_data"]["metadata"]["booking_id"] == out["booking_id"]
    assert params["success_url"] == "https://app.example.test/done?cs={CHECKOUT_SESSION_ID}"
    assert int(params["expires_at"]) > 0
    headers = {k.lower(): v for k, v in create.headers.items()}
    assert headers["idempotency-key"] == f"checkout:{out['booking_id']}"
    assert headers["authorization"] == "Bearer sk_test_payments_0123456789"
    # nothing is a session yet: that waits for the payment
    assert pay.val("select count(*) from public.sessions where customer_id = %s", (customer,)) == 0
    pay.assert_books_balance()


BASE = {"plan_code": "video15", "success_url": "https://app.example.test/ok", "cancel_url": "https://app.example.test/no"}


def _post(p: Pay, user: uuid.UUID | None, body: object, **kw: object) -> tuple[int, dict]:
    headers = p.token(user) if user else {}
    return call(create_checkout, body=body, headers=headers, **kw)


def _nothing_written(p: Pay, before: dict[str, int]) -> None:
    assert _fingerprint(p) == before
    assert p.fake.calls_to("POST", "/v1/checkout/sessions") == []


@pytest.mark.parametrize(("change", "field"), [
    ({"plan_code": "Video15!"}, "plan_code"),
    ({"plan_code": "x" * 60}, "plan_code"),
    ({"intake_id": "not-a-uuid"}, "intake_id"),
    ({"intake_id": None}, "intake_id"),
    ({"vehicle_id": 42}, "vehicle_id"),
    ({"specialist": "yes"}, "specialist"),
    ({"success_url": "ftp://app.example.test/ok"}, "success_url"),
    ({"success_url": "javascript:alert(1)"}, "success_url"),
    ({"success_url": "/relative/path"}, "success_url"),
    ({"success_url": "https://"}, "success_url"),
    ({"cancel_url": "https://app.example.test/has space"}, "cancel_url"),
    ({"cancel_url": "https://app.example.test/\u0000"}, "cancel_url"),
    ({"cancel_url": "https://app.example.test/" + "a" * 2000}, "cancel_url"),
    ({"cancel_url": None}, "cancel_url"),
    ({"price_cents": 1}, "price_cents"),  # the client never names the price
    ({"amount": 1}, "amount"),
])
def test_malformed_bodies_are_refused_and_nothing_is_written(pay: Pay, change: dict, field: str) -> None:
    customer = pay.customer()
    intake = pay.intake(customer)
    before = _fingerprint(pay)
    body = {**BASE, "intake_id": str(intake), **change}
    body = {k: v for k, v in body.items() if v is not None}
    status, payload = _post(pay, customer, body)
    assert status == 400 and payload["code"] == "AD001"
    assert field in {d["field"] for d in payload["details"]}
    _nothing_written(pay, before)


def test_transport_level_refusals(pay: Pay) -> None:
    customer = pay.customer()
    intake = pay.intake(customer)
    before = _fingerprint(pay)
    body = {**BASE, "intake_id": str(intake)}
    assert _post(pay, None, body)[0] == 401
    assert call(create_checkout, body=body, headers={"Authorization": "Bearer forged.token.value"})[0] == 401
    assert _post(pay, customer, body, method="GET")[0] == 405
    assert _post(pay, customer, None, raw="{not json")[0] == 400
    assert _post(pay, customer, None, raw="[]")[0] == 400
    assert _post(pay, customer, {**body, "pad": "x" * 70_000})[0] == 413
    _nothing_written(pay, before)


def test_refusals_from_the_database_have_stable_codes(pay: Pay) -> None:
    customer = pay.customer()
    other = pay.customer("Olive Other")
    pending_mechanic = pay.mechanic(approved=False)
    mine = pay.intake(customer)
    theirs = pay.intake(other)
    their_vehicle = pay.val("select vehicle_id from public.intakes where id = %s", (theirs,))
    used = pay.intake(customer)
    with pay.db.as_user(customer):
        pay.db.rpc("request_session", p_plan_code="free", p_intake_id=used)
    pay.db.execute("update public.service_plans set active = false where code = 'diagnostic'")
    pay.commit()
    before = _fingerprint(pay)
    cases = [
        ({"plan_code": "nope", "intake_id": str(mine)}, 404, "AD004"),
        ({"plan_code": "diagnostic", "intake_id": str(mine)}, 404, "AD004"),  # inactive plan
        ({"plan_code": "free", "intake_id": str(mine)}, 400, "AD001"),  # free: request_session
        ({"intake_id": str(theirs)}, 404, "AD004"),
        ({"intake_id": str(uuid.uuid4())}, 404, "AD004"),
        ({"intake_id": str(used)}, 409, "AD005"),
        ({"intake_id": str(mine), "vehicle_id": str(their_vehicle)}, 404, "AD004"),
        ({"intake_id": str(mine), "preferred_mechanic_id": str(pending_mechanic)}, 404, "AD004"),
        ({"intake_id": str(mine), "preferred_mechanic_id": str(uuid.uuid4())}, 404, "AD004"),
        ({"intake_id": str(mine), "preferred_mechanic_id": str(customer)}, 400, "AD001"),
    ]
    for change, status, code in cases:
        got_status, payload = _post(pay, customer, {**BASE, **change})
        assert (got_status, payload["code"]) == (status, code), (change, payload)
    _nothing_written(pay, before)
    # the hidden rows exist: the refusals are about the caller, not about missing data
    assert pay.val("select customer_id from public.intakes where id = %s", (theirs,)) == other
    assert pay.val("select owner_id from public.vehicles where id = %s", (their_vehicle,)) == other
    assert pay.val("select status from public.mechanics where id = %s", (pending_mechanic,)) == "pending"
    # the free plan with a specialist is paid: then it goes through checkout
    out = pay.checkout(customer, plan="free", intake=mine, specialist=True)
    assert pay.booking(out["booking_id"])["price_cents"] == 1000


def test_the_same_checkout_twice_reuses_the_open_one(pay: Pay) -> None:
    customer = pay.customer()
    intake = pay.intake(customer)
    first = pay.checkout(customer, intake=intake)
    second = pay.checkout(customer, intake=intake)
    assert second == first
    assert len(pay.fake.calls_to("POST", "/v1/checkout/sessions")) == 1
    third = pay.checkout(customer, intake=intake, specialist=True)  # something else: a new checkout
    assert third["booking_id"] != first["booking_id"]
    assert pay.val("select count(*) from public.bookings where status = 'pending'") == 2


def test_a_stripe_failure_is_a_502_and_the_booking_fails(pay: Pay) -> None:
    customer = pay.customer()
    pay.fake.fail_next("/v1/checkout/sessions", status=500)
    status, payload = _post(pay, customer, {**BASE, "intake_id": str(pay.intake(customer))})
    assert status == 502 and payload["code"] == "AD024"
    booking = pay.row("select * from public.bookings")
    assert booking["status"] == "failed" and booking["stripe_checkout_session_id"] is None
    assert "500" in booking["failure_reason"]
    assert pay.val("select count(*) from public.sessions") == 0


def test_without_a_stripe_key_checkout_is_not_configured(pay: Pay, monkeypatch: pytest.MonkeyPatch) -> None:
    from shared import stripe_client
    from shared.config import get_settings

    monkeypatch.delenv("STRIPE_SECRET_KEY")
    get_settings.cache_clear()
    stripe_client.set_client(None)
    customer = pay.customer()
    status, payload = _post(pay, customer, {**BASE, "intake_id": str(pay.intake(customer))})
    assert status == 503 and payload["code"] == "AD021"
    assert pay.val("select status from public.bookings") == "failed"
    assert pay.fake.calls == []
    # credit still works without Stripe
    pay.grant_credit(customer, 3000)
    assert pay.checkout(customer)["mode"] == "credit"


def test_the_client_from_the_environment_retries_twice(pay: Pay) -> None:
    from shared import stripe_client

    stripe_client.set_client(None)  # built from STRIPE_SECRET_KEY / STRIPE_API_BASE
    client = stripe_client.get_client()
    assert client is stripe_client.get_client()  # one per process
    customer = pay.customer()
    pay.fake.fail_next("/v1/checkout/sessions", status=500, times=2)
    out = pay.checkout(customer)
    assert out["url"].startswith("https://checkout.stripe.com/")
    calls = pay.fake.calls_to("POST", "/v1/checkout/sessions")
    assert len(calls) == 3  # max_network_retries=2
    keys = {{k.lower(): v for k, v in c.headers.items()}["idempotency-key"] for c in calls}
    assert keys == {f"checkout:{out['booking_id']}"}


def test_credit_that_covers_the_price_books_at_once(pay: Pay) -> None:
    customer = pay.customer()
    pay.grant_credit(customer, 2999)
    out = pay.checkout(customer, plan="video15")
    assert out["mode"] == "credit" and out["credit_balance_cents"] == 0
    session = pay.row("select * from public.sessions where id = %s", (out["session_id"],))
    assert session["status"] == "pending" and session["price_cents"] == 2999
    assert pay.row("select status from public.session_requests where id = %s", (out["request_id"],)) == {
        "status": "pending"}
    booking = pay.booking(out["booking_id"])
    assert (booking["method"], booking["status"], booking["session_id"]) == ("credit", "paid", session["id"])
    payment = pay.row("select * from public.payments")
    assert (payment["method"], payment["amount_cents"], payment["session_id"]) == ("credit", 2999, session["id"])
    debit = pay.row("select * from public.credit_ledger where kind = 'debit'")
    assert (debit["amount_cents"], debit["balance_after_cents"], debit["booking_id"]) == (
        -2999, 0, booking["id"])
    # no more credit: the next one goes to Stripe and leaves the ledger alone
    out2 = pay.checkout(customer, plan="chat10")
    assert out2["mode"] == "stripe"
    assert pay.val("select count(*) from public.credit_ledger") == 2
    pay.assert_books_balance()


def test_credit_short_of_the_price_is_not_used(pay: Pay) -> None:
    customer = pay.customer()
    pay.grant_credit(customer, 2998)
    out = pay.checkout(customer, plan="video15")
    assert out["mode"] == "stripe"
    assert pay.val("select balance_cents from public.credit_balances where customer_id = %s", (customer,)) == 2998


def test_plan_or_held_slot_but_not_both(pay: Pay) -> None:
    customer = pay.customer()
    intake = str(pay.intake(customer))
    before = _fingerprint(pay)
    urls = {"success_url": BASE["success_url"], "cancel_url": BASE["cancel_url"]}
    for body in ({"intake_id": intake, **urls},
                 {"plan_code": "video15", "hold_id": str(uuid.uuid4()), "intake_id": intake, **urls},
                 {"hold_id": str(uuid.uuid4()), "intake_id": intake, "specialist": True, **urls}):
        status, payload = _post(pay, customer, body)
        assert status == 400 and payload["code"] == "AD001", body
    # a hold that is not the caller's (or a server without the scheduling domain) books nothing
    status, payload = _post(pay, customer, {"hold_id": str(uuid.uuid4()), "intake_id": intake, **urls})
    scheduling = pay.val("select to_regprocedure('private.prepare_hold_checkout(uuid,uuid,uuid,uuid,"
                         "timestamp with time zone)') is not null")
    assert (status, payload["code"]) == ((404, "AD004") if scheduling else (400, "AD001"))
    _nothing_written(pay, before)
