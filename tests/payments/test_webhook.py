"""stripe_webhook: signatures (bad, missing, stale, either secret, none configured), the event
ledger (duplicates, also concurrent), every pair of events in both orders, what Checkout charged,
handler failures and their retry, and each event type's effect."""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from typing import Any

import pytest

from shared.config import get_settings
from tests.support.payments import CONNECT_SECRET, WEBHOOK_SECRET, Pay, call, charge_for, sign


def _ledger(p: Pay) -> int:
    return p.val("select count(*) from private.stripe_events")


def _state(p: Pay) -> dict[str, int]:
    return {t: p.val(f"select count(*) from {t}") for t in (
        "private.stripe_events", "public.payments", "public.sessions", "public.refunds")}


def _open_booking(p: Pay) -> tuple[dict[str, Any], dict[str, Any]]:
    customer = p.customer()
    out = p.checkout(customer)
    booking = p.booking(out["booking_id"])
    event = p.events.completed(booking["stripe_checkout_session_id"], str(booking["id"]), booking["price_cents"],
                               "pi_" + uuid.uuid4().hex[:20])
    return booking, event


# ---------------------------------------------------------------------------------------------
# Signatures: nothing is stored unless the event is Stripe's
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["wrong_secret", "missing", "malformed", "expired", "tampered", "empty", "v0_only"])
def test_bad_signatures_are_refused_and_nothing_is_stored(pay: Pay, case: str) -> None:
    booking, event = _open_booking(pay)
    payload = json.dumps(event)
    before = _state(pay)
    header = {
        "wrong_secret": sign(payload, "whsec_not_ours_0123456789"),
        "missing": None,
        "malformed": "not-a-signature",
        "expired": sign(payload, WEBHOOK_SECRET, int(time.time()) - 301),
        "tampered": sign(payload.replace('"paid"', '"unpaid"'), WEBHOOK_SECRET),
        "empty": "",
        "v0_only": sign(payload).replace("v1=", "v0="),
    }[case]
    headers = {} if header is None else {"Stripe-Signature": header}
    status, body = call(__import__("functions.webhooks.stripe", fromlist=["x"]).stripe_webhook, raw=payload,
                        headers=headers)
    assert status == 400 and body["code"] == "AD020" and body["error"] == "invalid_signature"
    assert _state(pay) == before
    assert pay.booking(booking["id"])["status"] == "pending"
    # the very same event, correctly signed, is then accepted (the refusal was the signature's)
    assert pay.send(event)[0] == 200


def test_a_signature_inside_the_tolerance_is_accepted(pay: Pay) -> None:
    _, event = _open_booking(pay)
    payload = json.dumps(event)
    status, body = pay.send(payload, header=sign(payload, WEBHOOK_SECRET, int(time.time()) - 290))
    assert status == 200 and body["outcome"] == "paid"


def test_either_secret_is_accepted(pay: Pay) -> None:
    mechanic = pay.mechanic()
    account = pay.onboard(mechanic, activate=False)
    status, body = pay.send(pay.events.account(account), secret=CONNECT_SECRET)
    assert status == 200 and body["outcome"] == "applied"
    _, event = _open_booking(pay)
    assert pay.send(event, secret=WEBHOOK_SECRET)[1]["outcome"] == "paid"


@pytest.mark.parametrize("configured", [(), ("STRIPE_CONNECT_WEBHOOK_SECRET",), ("STRIPE_WEBHOOK_SECRET",)])
def test_without_the_secret_it_fails_closed(pay: Pay, monkeypatch: pytest.MonkeyPatch,
                                            configured: tuple[str, ...]) -> None:
    _, event = _open_booking(pay)
    for name in ("STRIPE_WEBHOOK_SECRET", "STRIPE_CONNECT_WEBHOOK_SECRET"):
        if name not in configured:
            monkeypatch.delenv(name)
    get_settings.cache_clear()
    before = _state(pay)
    status, body = pay.send(event, secret=WEBHOOK_SECRET)
    if not configured:
        assert status == 503 and body["code"] == "AD021"
    elif configured == ("STRIPE_CONNECT_WEBHOOK_SECRET",):
        assert status == 400 and body["code"] == "AD020"  # only the Connect secret: the platform's is refused
    else:
        assert status == 200
        return
    assert _state(pay) == before


@pytest.mark.parametrize("payload", [b"{not json", b"[1, 2]", b'{"id": "evt_1"}', b'"just a string"',
                                     json.dumps({"id": "evt_x", "type": "x", "created": "yesterday",
                                                 "data": {"object": {}}}).encode(),
                                     json.dumps({"id": "not-an-event-id", "type": "charge.succeeded",
                                                 "created": 1, "data": {"object": {}}}).encode(),
                                     "{\"id\": \"evt_\u00e9\"}".encode("latin-1")])
def test_signed_but_malformed_bodies_are_refused(pay: Pay, payload: bytes) -> None:
    before = _state(pay)
    text = payload.decode("utf-8", errors="replace")
    status, body = pay.send(payload, header=sign(text))
    assert status == 400 and body["code"] in ("AD001", "AD020")
    assert _state(pay) == before


def test_method_and_size_limits(pay: Pay) -> None:
    from functions.webhooks.stripe import stripe_webhook

    assert call(stripe_webhook, method="GET")[0] == 405
    big = json.dumps({"id": "evt_big", "pad": "x" * (600 * 1024)})
    status, _ = call(stripe_webhook, raw=big, headers={"Stripe-Signature": sign(big)})
    assert status == 413
    assert _ledger(pay) == 0


# ---------------------------------------------------------------------------------------------
# The ledger: once per event
# ---------------------------------------------------------------------------------------------
def test_an_unknown_event_type_is_stored_and_acknowledged(pay: Pay) -> None:
    event = pay.events.event("customer.created", {"id": "cus_123", "object": "customer"})
    status, body = pay.send(event)
    assert status == 200 and body == {"received": True, "event_id": event["id"], "type": "customer.created",
                                      "outcome": "ignored"}
    row = pay.row("select * from private.stripe_events where id = %s", (event["id"],))
    assert row["processed_at"] is not None and row["payload"] == event


def test_the_same_event_twice_has_one_effect(pay: Pay) -> None:
    _, event = _open_booking(pay)
    assert pay.deliver(event)["outcome"] == "paid"
    again = pay.deliver(event)
    assert again["outcome"] == "duplicate"
    assert pay.val("select count(*) from public.payments") == 1
    assert pay.val("select count(*) from public.sessions") == 1
    assert pay.val("select count(*) from public.session_requests") == 1
    assert pay.val("select attempts from private.stripe_events where id = %s", (event["id"],)) == 1
    pay.assert_books_balance()


def test_the_same_event_delivered_concurrently_has_one_effect(pay: Pay) -> None:
    from functions.webhooks.stripe import stripe_webhook

    threads_n, rounds = 8, 6
    for _ in range(rounds):
        booking, event = _open_booking(pay)
        payload = json.dumps(event)
        header = sign(payload)
        barrier = threading.Barrier(threads_n)
        results: list[Any] = [None] * threads_n

        def run(i: int, payload: str = payload, header: str = header, barrier: threading.Barrier = barrier,
                results: list[Any] = results) -> None:
            barrier.wait()
            results[i] = call(stripe_webhook, raw=payload, headers={"Stripe-Signature": header})

        threads = [threading.Thread(target=run, args=(i,)) for i in range(threads_n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert all(status == 200 for status, _ in results), results
        outcomes = sorted(body["outcome"] for _, body in results)
        assert outcomes == ["duplicate"] * (threads_n - 1) + ["paid"], outcomes
        assert pay.val("select count(*) from public.payments where booking_id = %s", (booking["id"],)) == 1
        assert pay.val("select count(*) from public.sessions s join public.bookings b on b.session_id = s.id"
                       " where b.id = %s", (booking["id"],)) == 1
    assert pay.val("select count(*) from public.sessions") == rounds
    assert pay.val("select count(*) from private.stripe_events") == rounds
    pay.assert_books_balance()


def test_handler_failure_rolls_back_records_the_error_and_a_retry_succeeds(pay: Pay) -> None:
    booking, event = _open_booking(pay)
    pay.db.execute("create function public.tg_test_outage() returns trigger language plpgsql as $$"
                   " begin raise exception 'simulated outage'; end $$")
    pay.db.execute("create trigger _999_test_outage before insert on public.payments"
                   " for each row execute function public.tg_test_outage()")
    pay.commit()
    status, body = pay.send(event)
    assert status == 500 and body["code"] == "XX000" and "outage" not in json.dumps(body)
    row = pay.row("select * from private.stripe_events where id = %s", (event["id"],))
    assert row["processed_at"] is None and row["attempts"] == 1 and "simulated outage" in row["last_error"]
    assert pay.val("select count(*) from public.payments") == 0
    assert pay.val("select count(*) from public.sessions") == 0
    assert pay.booking(booking["id"])["status"] == "pending"
    status, _ = pay.send(event)  # Stripe retries while the outage lasts
    assert status == 500
    assert pay.val("select attempts from private.stripe_events where id = %s", (event["id"],)) == 2

    pay.db.execute("drop trigger _999_test_outage on public.payments")
    pay.commit()
    assert pay.deliver(event)["outcome"] == "paid"
    row = pay.row("select * from private.stripe_events where id = %s", (event["id"],))
    assert row["processed_at"] is not None and row["last_error"] is None and row["attempts"] == 3
    assert pay.booking(booking["id"])["status"] == "paid"
    assert pay.deliver(event)["outcome"] == "duplicate"
    pay.assert_books_balance()


# ---------------------------------------------------------------------------------------------
# What each event does
# ---------------------------------------------------------------------------------------------
def test_a_price_change_between_checkout_and_webhook_records_what_checkout_charged(pay: Pay) -> None:
    customer = pay.customer()
    out = pay.checkout(customer, plan="video15")
    booking = pay.booking(out["booking_id"])
    assert booking["price_cents"] == 2999
    pay.db.execute("update public.service_plans set price_cents = 3999 where code = 'video15'")
    pay.commit()
    pi = "pi_" + uuid.uuid4().hex[:20]
    pay.deliver(pay.events.completed(booking["stripe_checkout_session_id"], str(booking["id"]), 2999, pi))
    payment = pay.row("select * from public.payments")
    assert payment["amount_cents"] == 2999
    assert pay.val("select price_cents from public.sessions where id = %s", (payment["session_id"],)) == 2999
    # and a discounted checkout (say a promotion code) records the lower amount
    out2 = pay.checkout(customer, plan="video15")
    booking2 = pay.booking(out2["booking_id"])
    assert booking2["price_cents"] == 3999  # the new price for new checkouts
    pay.deliver(pay.events.completed(booking2["stripe_checkout_session_id"], str(booking2["id"]), 3500,
                                     "pi_" + uuid.uuid4().hex[:20]))
    assert pay.val("select amount_cents from public.payments where booking_id = %s", (booking2["id"],)) == 3500
    assert pay.val("select s.price_cents from public.sessions s join public.bookings b on b.session_id = s.id"
                   " where b.id = %s", (booking2["id"],)) == 3500
    pay.assert_books_balance()


def test_expired_and_failed_checkouts(pay: Pay) -> None:
    booking, completed = _open_booking(pay)
    cs, amount = booking["stripe_checkout_session_id"], booking["price_cents"]
    failed = pay.events.payment_failed(completed["data"]["object"]["payment_intent"], str(booking["id"]), amount)
    assert pay.deliver(failed)["outcome"] == "applied"
    row = pay.booking(booking["id"])
    assert row["status"] == "failed" and row["failure_reason"] == "Your card was declined."
    # the customer tried another card in the same Checkout: paid after all
    assert pay.deliver(completed)["outcome"] == "paid"
    assert pay.booking(booking["id"])["status"] == "paid"
    # a late expiry or failure never undoes it
    assert pay.deliver(pay.events.expired(cs, str(booking["id"]), amount))["outcome"] == "no_change"
    assert pay.deliver(pay.events.payment_failed(completed["data"]["object"]["payment_intent"],
                                                 str(booking["id"]), amount))["outcome"] == "no_change"
    assert pay.booking(booking["id"])["status"] == "paid"

    other, _ = _open_booking(pay)
    assert pay.deliver(pay.events.expired(other["stripe_checkout_session_id"], str(other["id"]),
                                          other["price_cents"]))["outcome"] == "applied"
    assert pay.booking(other["id"])["status"] == "expired"
    pay.assert_books_balance()


def test_asynchronous_payment_waits_for_its_outcome(pay: Pay) -> None:
    booking, completed = _open_booking(pay)
    obj = dict(completed["data"]["object"], payment_status="unpaid")
    assert pay.deliver(pay.events.event("checkout.session.completed", obj))["outcome"] == "awaiting_payment"
    assert pay.booking(booking["id"])["status"] == "pending"
    paid = dict(obj, payment_status="paid")
    assert pay.deliver(pay.events.event("checkout.session.async_payment_succeeded", paid))["outcome"] == "paid"
    assert pay.booking(booking["id"])["status"] == "paid"
    other, completed2 = _open_booking(pay)
    obj2 = dict(completed2["data"]["object"], payment_status="unpaid")
    assert pay.deliver(pay.events.event("checkout.session.async_payment_failed", obj2))["outcome"] == "applied"
    assert pay.booking(other["id"])["status"] == "failed"


def test_events_about_objects_that_are_not_ours_are_acknowledged(pay: Pay) -> None:
    ev = [pay.events.completed("cs_test_foreign", str(uuid.uuid4()), 1000, "pi_foreign"),
          pay.events.expired("cs_test_foreign2", "not-a-uuid", 1000),
          pay.events.refund("refund.updated", "re_foreign", "pi_foreign", 500),
          pay.events.account("acct_foreign"),
          pay.events.charge("pi_foreign", 1000)]
    for e in ev:
        assert pay.deliver(e)["outcome"] in ("ignored", "no_change")
    assert pay.val("select count(*) from public.payments") == 0
    assert pay.val("select count(*) from private.stripe_events where processed_at is not null") == len(ev)


def test_a_paid_booking_whose_intake_was_used_meanwhile_is_refunded(pay: Pay) -> None:
    customer = pay.customer()
    intake = pay.intake(customer)
    first = pay.checkout(customer, intake=intake, plan="video15")
    second = pay.checkout(customer, intake=intake, plan="chat10")  # another plan: another checkout
    assert first["booking_id"] != second["booking_id"]
    b1, b2 = pay.booking(first["booking_id"]), pay.booking(second["booking_id"])
    pay.deliver(pay.events.completed(b1["stripe_checkout_session_id"], str(b1["id"]), 2999, "pi_first0001"))
    out = pay.deliver(pay.events.completed(b2["stripe_checkout_session_id"], str(b2["id"]), 999, "pi_second0001"))
    assert out["outcome"] == "unfulfilled"
    row = pay.booking(b2["id"])
    assert row["status"] == "unfulfilled" and row["session_id"] is None and "intake" in row["failure_reason"]
    refund = pay.row("select r.* from public.refunds r join public.payments p on p.id = r.payment_id"
                     " where p.booking_id = %s", (b2["id"],))
    assert (refund["amount_cents"], refund["origin"], refund["status"]) == (999, "unfulfilled", "queued")
    assert pay.val("select count(*) from public.sessions") == 1
    pay.assert_books_balance()


def test_a_refund_made_in_the_dashboard_is_recorded(pay: Pay) -> None:
    customer = pay.customer()
    paid = pay.paid_booking(customer, plan="video15")
    refund = pay.events.refund_object("re_dash00001", paid["pi"], 2999, "succeeded")
    charge_event = pay.events.charge(paid["pi"], 2999, refunded=2999, refunds=[refund], type_="charge.refunded")
    assert pay.deliver(charge_event)["outcome"] == "applied"
    row = pay.row("select * from public.refunds")
    assert (row["origin"], row["amount_cents"], row["status"], row["stripe_refund_id"]) == (
        "stripe", 2999, "succeeded", "re_dash00001")
    assert pay.val("select status from public.payments") == "refunded"
    assert pay.val("select stripe_charge_id from public.payments") == charge_for(paid["pi"])
    assert pay.val("select status from public.sessions") == "cancelled"  # nobody serves a refunded request
    # the same refund's own events change nothing more
    assert pay.deliver(pay.events.refund("refund.created", "re_dash00001", paid["pi"], 2999, "pending"))[
        "outcome"] == "no_change"
    assert pay.val("select count(*) from public.refunds") == 1
    assert pay.process() == {}  # nothing to send: Stripe already refunded
    pay.assert_books_balance()


def test_a_dashboard_refund_adopts_our_queued_refund_of_the_same_amount(pay: Pay) -> None:
    customer = pay.customer()
    paid = pay.paid_booking(customer, plan="video15")
    request_id = pay.val("select id from public.session_requests")
    with pay.db.as_user(customer):
        pay.db.rpc("cancel_request", p_request_id=request_id)
    pay.commit()
    assert pay.val("select status from public.refunds") == "queued"
    pay.deliver(pay.events.refund("refund.created", "re_dash00002", paid["pi"], 2999, "succeeded"))
    assert pay.rows("select origin, status, stripe_refund_id from public.refunds") == [
        {"origin": "automatic", "status": "succeeded", "stripe_refund_id": "re_dash00002"}]
    assert pay.process() == {}
    assert pay.fake.calls_to("POST", "/v1/refunds") == []
    pay.assert_books_balance()


def test_account_updates_apply_only_if_newer(pay: Pay) -> None:
    mechanic = pay.mechanic()
    account = pay.onboard(mechanic, activate=False)
    t = int(time.time())

    def flags() -> tuple[bool, ...]:
        r = pay.row("select charges_enabled, payouts_enabled, details_submitted, transfers_active,"
                    " stripe_refresh_requested_at is not null as refresh from public.payout_accounts")
        return (r["charges_enabled"], r["payouts_enabled"], r["details_submitted"], r["transfers_active"],
                r["refresh"])

    assert pay.deliver(pay.events.account(account, transfers="active", created=t))["outcome"] == "applied"
    assert flags() == (True, True, True, True, False)
    assert pay.deliver(pay.events.account(account, transfers="inactive", created=t - 10))["outcome"] == "stale"
    assert flags() == (True, True, True, True, False)
    assert pay.deliver(pay.events.account(account, transfers="active", created=t))["outcome"] == "no_change"
    # the same second with another state: refetched from Stripe by the worker
    assert pay.deliver(pay.events.account(account, transfers="inactive", created=t))["outcome"] == "refresh_requested"
    assert flags() == (True, True, True, True, True)
    pay.fake.accounts[account].update(charges_enabled=False, payouts_enabled=False,
                                      capabilities={"transfers": "inactive"})
    assert pay.process() == {"accounts_refreshed": 1}
    assert flags() == (False, False, False, False, False)
    assert pay.fake.calls_to("GET", f"/v1/accounts/{account}")
    # an event from before the refetch is stale
    assert pay.deliver(pay.events.account(account, transfers="active", created=t))["outcome"] == "stale"
    assert pay.deliver(pay.events.account(account, transfers="active", created=int(time.time()) + 60))[
        "outcome"] == "applied"
    assert flags() == (True, True, True, True, False)


# ---------------------------------------------------------------------------------------------
# Any order converges
# ---------------------------------------------------------------------------------------------
def _scenario(p: Pay) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """One paid-by-checkout booking and one mechanic account, with every event type about them."""
    customer = p.customer()
    out = p.checkout(customer)
    booking = p.booking(out["booking_id"])
    mechanic = p.mechanic()
    account = p.onboard(mechanic, activate=False)
    cs, bid, amount = booking["stripe_checkout_session_id"], str(booking["id"]), booking["price_cents"]
    pi = "pi_" + uuid.uuid4().hex[:20]
    re_id = "re_" + uuid.uuid4().hex[:20]
    t = int(time.time())
    partial = p.events.refund_object(re_id, pi, 1000, "succeeded")
    events = {
        "completed": p.events.completed(cs, bid, amount, pi, created=t),
        "expired": p.events.expired(cs, bid, amount, created=t + 1),
        "payment_failed": p.events.payment_failed(pi, bid, amount, created=t - 1),
        "charge_succeeded": p.events.charge(pi, amount, created=t),
        "charge_refunded": p.events.charge(pi, amount, refunded=1000, refunds=[partial], type_="charge.refunded",
                                           created=t + 5),
        "refund_created": p.events.refund("refund.created", re_id, pi, 1000, "pending", created=t + 5),
        "refund_updated": p.events.refund("refund.updated", re_id, pi, 1000, "succeeded", created=t + 6),
        "account_pending": p.events.account(account, transfers="pending", created=t + 2),
        "account_active": p.events.account(account, transfers="active", created=t + 3),
    }
    return events, {"booking_id": booking["id"], "pi": pi, "account": account, "refund": re_id}


def _fingerprint(p: Pay, ids: dict[str, Any]) -> dict[str, Any]:
    booking = p.booking(ids["booking_id"])
    payment = p.row("select amount_cents, status, stripe_charge_id, session_id from public.payments"
                    " where booking_id = %s", (ids["booking_id"],))
    session = payment and p.row("select status, price_cents from public.sessions where id = %s",
                                (payment["session_id"],))
    refunds = p.rows("select r.amount_cents, r.status, r.origin, r.stripe_refund_id from public.refunds r"
                     " join public.payments x on x.id = r.payment_id where x.booking_id = %s order by r.seq",
                     (ids["booking_id"],))
    account = p.row("select charges_enabled, payouts_enabled, details_submitted, transfers_active,"
                    " stripe_refresh_requested_at is null as settled from public.payout_accounts"
                    " where stripe_account_id = %s", (ids["account"],))
    if payment:  # scenario-specific ids become "is it the right one"
        payment = {"amount_cents": payment["amount_cents"], "status": payment["status"],
                   "charge_known": payment["stripe_charge_id"] == charge_for(ids["pi"])}
    for r in refunds:
        r["stripe_refund_id"] = r["stripe_refund_id"] == ids["refund"]
    return {"booking": booking["status"], "payment": payment, "session": session, "refunds": refunds,
            "account": account}


def test_every_pair_of_events_in_both_orders_converges(pay: Pay) -> None:
    names = list(_scenario(pay)[0])
    for a, b in itertools.combinations(names, 2):
        prints = []
        for order in ((a, b), (b, a)):
            events, ids = _scenario(pay)
            for name in order:
                pay.deliver(events[name])
            after_pair = _fingerprint(pay, ids)
            for name in names:  # then everything, in a fixed order (duplicates included)
                pay.deliver(events[name])
            prints.append((after_pair, _fingerprint(pay, ids)))
        assert prints[0][0] == prints[1][0], (a, b)
        assert prints[0][1] == prints[1][1], (a, b)
    final = prints[0][1]
    assert final["booking"] == "paid" and final["payment"]["status"] == "partially_refunded"
    assert final["payment"]["charge_known"] is True
    assert final["refunds"] == [{"amount_cents": 1000, "status": "succeeded", "origin": "stripe",
                                 "stripe_refund_id": True}]
    assert final["account"]["transfers_active"] is True
    pay.assert_books_balance()
