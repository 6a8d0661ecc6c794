"""create_checkout: validation, the amount from our catalog, the Stripe call outside the database,
reuse of an open checkout, the credit path, and Stripe failures."""

from __future__ import annotations

from tests.test_payments_support import Pay, call, fake_stripe, pay  # noqa: F401


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
