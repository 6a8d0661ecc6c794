"""A message at every turn: each change a customer (or, for a booking, a mechanic) did not make
leaves one email and one event on the session's topic, after the real path ran; nothing is sent
when nothing changed or the change rolled back; a refund is announced once, whatever repeats."""

from __future__ import annotations

import datetime as dt
import os
import uuid
import zoneinfo
from pathlib import Path
from typing import Any

import pytest

from shared import email as mail
from shared.config import get_settings
from tests.support.delivery import paid_with_credit
from tests.support.directory import make_shops, micro_request
from tests.support.factories import accept, make_admin, make_customer, make_world, request_free
from tests.support.harness import Db
from tests.support.journey_messages import assert_no_contact, emails, events, flush, user
from tests.support.payments import Pay
from tests.support.scheduling import UTC, at, book, every_day, future_day, scheduled_mechanic

GOLDEN = Path(__file__).parents[1] / "support" / "golden" / "emails"


def sweep(db: Db, now: dt.datetime) -> dict[str, int]:
    out = db.scalar("select private.sweep_requests(%s)", (now,))
    flush(db)
    return dict(out)


def created_at(db: Db, request: Any) -> dt.datetime:
    return db.scalar("select created_at from public.session_requests where id = %s", (request,))


def price_of(db: Db, session: Any) -> int:
    return int(db.scalar("select price_cents from public.sessions where id = %s", (session,)))


def release(db: Db, mechanic: uuid.UUID, request: Any) -> None:
    with db.as_user(mechanic):
        assert db.rpc("cancel_request", p_request_id=request)["status"] == "pending"


# ------------------------------------------------------------------------------------------------
# Unattended
# ------------------------------------------------------------------------------------------------
def test_unattended_one_email_and_event_and_a_retried_sweep_sends_nothing(db):
    customer = make_customer(db)
    ids = request_free(db, customer)
    t0 = created_at(db, ids["request_id"])
    assert sweep(db, t0 + dt.timedelta(minutes=5) - dt.timedelta(seconds=1))["unattended"] == 0
    assert emails(db, ids["session_id"]) == [] and events(db, ids["session_id"]) == []  # nothing happened

    assert sweep(db, t0 + dt.timedelta(minutes=5))["unattended"] == 1
    [mail_] = emails(db, ids["session_id"])
    assert (mail_["template"], mail_["user_id"], mail_["data"]) == (
        "request_unattended",
        user(customer),
        {"request_id": str(ids["request_id"])},
    )
    assert mail_["key"].startswith(f"email:request_unattended:{ids['session_id']}:{customer}:unattended:")
    [event] = events(db, ids["session_id"])
    assert event["event"] == "request_unattended" and event["request_id"] == str(ids["request_id"])
    assert event["session_id"] == str(ids["session_id"])
    assert_no_contact(event)

    # the same sweep again (a retry, or an overlapping run): nothing new
    assert sweep(db, t0 + dt.timedelta(minutes=5))["unattended"] == 0
    assert len(emails(db, ids["session_id"])) == 1 and len(events(db, ids["session_id"])) == 1


def test_unattended_and_expired_in_one_late_sweep_says_only_expired(db):
    customer = make_customer(db)
    ids = request_free(db, customer)
    out = sweep(db, created_at(db, ids["request_id"]) + dt.timedelta(minutes=121))
    assert (out["unattended"], out["expired"]) == (1, 1)
    assert [m["template"] for m in emails(db, ids["session_id"])] == ["request_expired"]
    assert [e["event"] for e in events(db, ids["session_id"])] == ["request_expired"]


# ------------------------------------------------------------------------------------------------
# Expired
# ------------------------------------------------------------------------------------------------
def test_expiry_of_a_free_request_says_nothing_was_charged(db):
    customer = make_customer(db)
    ids = request_free(db, customer)
    t0 = created_at(db, ids["request_id"])
    sweep(db, t0 + dt.timedelta(minutes=5))
    assert sweep(db, t0 + dt.timedelta(minutes=120))["expired"] == 1
    [expired] = emails(db, ids["session_id"], "request_expired")
    assert expired["user_id"] == user(customer) and expired["key"] == (
        f"email:request_expired:{ids['session_id']}:{customer}"
    )
    assert expired["data"]["refunded_cents"] == 0 and expired["data"]["request_id"] == str(ids["request_id"])
    [event] = events(db, ids["session_id"], "request_expired")
    assert event["refunded_cents"] == 0
    assert_no_contact(event)
    # a second sweep finds nothing to expire: nothing more
    assert sweep(db, t0 + dt.timedelta(minutes=121))["expired"] == 0
    assert len(emails(db, ids["session_id"], "request_expired")) == 1
    assert len(events(db, ids["session_id"], "request_expired")) == 1


def test_expiry_of_a_paid_request_is_one_email_with_the_amount(db):
    customer = make_customer(db)
    paid = paid_with_credit(db, customer)
    price = price_of(db, paid["session_id"])
    assert price > 0
    assert sweep(db, created_at(db, paid["request_id"]) + dt.timedelta(minutes=121))["expired"] == 1
    # the credit refund succeeded at once, and is told by the expiry: not a second time
    assert (
        db.scalar(
            "select r.status from public.refunds r join public.payments p on p.id = r.payment_id"
            " where p.session_id = %s",
            (paid["session_id"],),
        )
        == "succeeded"
    )
    assert [m["template"] for m in emails(db, paid["session_id"])] == ["request_expired"]
    [expired] = emails(db, paid["session_id"])
    assert expired["data"]["refunded_cents"] == price and expired["data"]["currency"] == "usd"
    [event] = events(db, paid["session_id"])
    assert (event["event"], event["refunded_cents"]) == ("request_expired", price)
    assert (
        db.scalar(
            "select notice from private.refund_notices n join public.refunds r on r.id = n.refund_id"
            " join public.payments p on p.id = r.payment_id where p.session_id = %s",
            (paid["session_id"],),
        )
        == "request_expired"
    )


def test_expiry_refunded_by_card_is_not_announced_again_when_stripe_reports_it(pay: Pay) -> None:
    customer = pay.customer()
    paid = pay.paid_booking(customer, plan="diagnostic")
    request = pay.val("select id from public.session_requests where session_id = %s", (paid["session_id"],))
    t0 = pay.val("select created_at from public.session_requests where id = %s", (request,))
    pay.commit()
    assert pay.val("select private.sweep_requests(%s)", (t0 + dt.timedelta(minutes=121),))["expired"] == 1
    pay.commit()
    [expired] = emails(pay.db, paid["session_id"])
    assert (expired["template"], expired["data"]["refunded_cents"]) == ("request_expired", 4999)
    assert pay.process() == {"refunds_processing": 1}
    refund = pay.row("select * from public.refunds where payment_id = %s", (paid["payment_id"],))
    for _ in range(2):  # Stripe says it twice
        pay.deliver(pay.events.refund("refund.updated", refund["stripe_refund_id"], paid["pi"], 4999, "succeeded"))
    assert pay.val("select status from public.refunds where id = %s", (refund["id"],)) == "succeeded"
    assert [m["template"] for m in emails(pay.db, paid["session_id"])] == ["request_expired"]
    assert [e["event"] for e in events(pay.db, paid["session_id"])] == ["request_expired"]


# ------------------------------------------------------------------------------------------------
# Released
# ------------------------------------------------------------------------------------------------
def test_release_the_customer_never_heard_of_is_only_an_event(db):
    w = make_world(db)
    accept(db, w.mechanic, w.request)
    release(db, w.mechanic, w.request)  # within the assignment notice's delay: the customer was not told
    assert emails(db, w.session, "request_released") == []
    [event] = events(db, w.session, "request_released")
    assert (event["released_by"], event["emailed"], event["request_id"]) == ("mechanic", False, str(w.request))
    assert_no_contact(event)
    assert str(w.mechanic) not in str(event)


def test_release_after_the_customer_was_told_is_an_email(db):
    w = make_world(db)
    accept(db, w.mechanic, w.request)
    # the worker sent the assignment notice (the assignment held)
    assert (
        db.scalar(
            "update private.outbox set status = 'sent', sent_at = now()"
            " where payload ->> 'template' = 'mechanic_assigned' and payload ->> 'session_id' = %s"
            " returning 1",
            (str(w.session),),
        )
        == 1
    )
    release(db, w.mechanic, w.request)
    [released] = emails(db, w.session, "request_released")
    assert (released["user_id"], released["data"]) == (
        user(w.customer),
        {"request_id": str(w.request), "released_by": "mechanic"},
    )
    assert ":released:" in released["key"]
    [event] = events(db, w.session, "request_released")
    assert event["emailed"] is True
    # taken again and released again by another mechanic the customer was told of: a second email
    accept(db, w.other_mechanic, w.request)
    db.execute(
        "update private.outbox set status = 'sent' where payload ->> 'template' = 'mechanic_assigned'"
        " and payload ->> 'session_id' = %s",
        (str(w.session),),
    )
    release(db, w.other_mechanic, w.request)
    assert len(emails(db, w.session, "request_released")) == 2
    assert len(events(db, w.session, "request_released")) == 2


def test_release_by_the_system_when_the_workshop_approval_lapsed(db):
    make_shops(db, auto_accept=False)
    shops_mechanic = db.scalar(
        "select m.id from public.mechanics m join public.organizations o"
        " on o.id = m.organization_id where o.name = 'Bay Motors' limit 1"
    )
    request, session = micro_request(db)
    until = accept(db, shops_mechanic, request)["approval_pending_until"]
    later = dt.datetime.fromisoformat(until) + dt.timedelta(seconds=1)
    assert db.scalar("select (private.lapse_micro_approvals(%s) ->> 'approvals_lapsed')::int", (later,)) == 1
    # the customer was never told of that mechanic (its notice waits for the approval): an event only
    assert emails(db, session, "request_released") == []
    [event] = events(db, session, "request_released")
    assert (event["released_by"], event["emailed"]) == ("system", False)
    # a second lapse sweep finds nothing: nothing more
    assert db.scalar("select (private.lapse_micro_approvals(%s) ->> 'approvals_lapsed')::int", (later,)) == 0
    assert len(events(db, session, "request_released")) == 1


# ------------------------------------------------------------------------------------------------
# Cancelled by an admin; refunds
# ------------------------------------------------------------------------------------------------
def test_admin_cancel_of_a_paid_request_is_one_email_with_the_refund(db):
    customer = make_customer(db)
    paid = paid_with_credit(db, customer)
    price = price_of(db, paid["session_id"])
    with db.as_user(make_admin(db)):
        assert (
            db.rpc(
                "admin_force_end_session", p_session_id=paid["session_id"], p_reason="duplicate request, internal note"
            )["status"]
            == "cancelled"
        )
    flush(db)
    [cancelled] = emails(db, paid["session_id"])
    assert (cancelled["template"], cancelled["user_id"]) == ("session_cancelled", user(customer))
    assert cancelled["data"] == {"cancelled_by": "admin", "refunded_cents": price, "currency": "usd"}
    [event] = events(db, paid["session_id"])
    assert (event["event"], event["cancelled_by"], event["refunded_cents"]) == ("session_cancelled", "admin", price)
    assert "internal note" not in str(event) and "internal note" not in str(cancelled["data"])
    assert_no_contact(event)


def test_admin_cancel_of_a_free_request_and_the_customers_own_cancel(db):
    free_customer = make_customer(db)
    free = request_free(db, free_customer)
    with db.as_user(make_admin(db)):
        db.rpc("admin_force_end_session", p_session_id=free["session_id"], p_reason="spam")
    flush(db)
    [cancelled] = emails(db, free["session_id"])
    assert cancelled["data"]["refunded_cents"] == 0
    # the customer's own cancellation is no news to them: no cancellation email, only its refund
    customer = make_customer(db)
    paid = paid_with_credit(db, customer)
    with db.as_user(customer):
        db.rpc("cancel_request", p_request_id=paid["request_id"], p_reason="fixed it myself")
    flush(db)
    [refunded] = emails(db, paid["session_id"])
    assert (refunded["template"], refunded["user_id"]) == ("refund_succeeded", user(customer))
    price = price_of(db, paid["session_id"])
    assert refunded["data"]["amount_cents"] == price and refunded["data"]["destination"] == "credit"
    assert refunded["data"]["partial"] is False and refunded["data"]["origin"] == "automatic"
    assert refunded["key"].endswith(f":refund:{refunded['data']['refund_id']}")
    [event] = events(db, paid["session_id"], "refund_succeeded")
    assert event["amount_cents"] == price
    assert_no_contact(event)


def test_admin_partial_refund_is_announced_once_when_stripe_reports_it(pay: Pay) -> None:
    customer = pay.customer()
    mechanic = pay.mechanic()
    pay.onboard(mechanic)
    paid = pay.paid_booking(customer, plan="diagnostic")  # 4999
    pay.serve(mechanic, paid["session_id"])
    with pay.db.as_user(pay.admin()):
        pay.db.rpc("admin_refund", p_session_id=paid["session_id"], p_amount_cents=2000, p_reason="partial")
    pay.commit()
    assert emails(pay.db, paid["session_id"], "refund_succeeded") == []  # queued: not refunded yet
    pay.drain()
    refund = pay.row("select * from public.refunds where payment_id = %s", (paid["payment_id"],))
    assert refund["status"] == "processing"
    assert emails(pay.db, paid["session_id"], "refund_succeeded") == []
    for _ in range(2):  # a duplicate event (a new event id, the same refund)
        pay.deliver(pay.events.refund("refund.updated", refund["stripe_refund_id"], paid["pi"], 2000, "succeeded"))
    [refunded] = emails(pay.db, paid["session_id"], "refund_succeeded")
    assert refunded["user_id"] == user(customer)
    assert {
        k: refunded["data"][k]
        for k in ("amount_cents", "partial", "paid_cents", "refunded_total_cents", "destination", "origin")
    } == {
        "amount_cents": 2000,
        "partial": True,
        "paid_cents": 4999,
        "refunded_total_cents": 2000,
        "destination": "card",
        "origin": "admin",
    }
    assert len(events(pay.db, paid["session_id"], "refund_succeeded")) == 1


def test_a_rolled_back_change_sends_nothing(db):
    customer = make_customer(db)
    paid = paid_with_credit(db, customer)
    admin = make_admin(db)
    before = db.scalar("select count(*) from private.outbox")
    with db.conn.transaction(force_rollback=True):  # a savepoint rolled back
        with db.as_user(admin):
            db.rpc("admin_force_end_session", p_session_id=paid["session_id"], p_reason="mistake")
        flush(db)
        assert len(emails(db, paid["session_id"])) == 1  # it would have told the customer
    assert emails(db, paid["session_id"]) == [] and events(db, paid["session_id"]) == []
    assert db.scalar("select count(*) from private.outbox") == before
    assert db.scalar("select count(*) from private.refund_notices") == 0
    # a hostile call that fails writes nothing either
    with db.as_user(admin):
        assert db.rpc_error("admin_force_end_session", p_session_id=paid["session_id"], p_reason="x" * 5000) == "AD001"
    with db.as_user(customer):
        assert db.rpc_error("admin_force_end_session", p_session_id=paid["session_id"], p_reason="mine") == "AD003"
    flush(db)
    assert emails(db, paid["session_id"]) == [] and events(db, paid["session_id"]) == []


# ------------------------------------------------------------------------------------------------
# Bookings: cancelled or moved by the customer
# ------------------------------------------------------------------------------------------------
def booked(db: Db, plan: str = "free") -> tuple[uuid.UUID, uuid.UUID, dict[str, Any]]:
    mechanic = scheduled_mechanic(db, "UTC", every_day("00:00", "24:00"), rules={"slot_step_minutes": 5})
    customer = make_customer(db)
    db.execute("update public.profiles set timezone = 'Europe/Paris' where id = %s", (customer,))
    db.execute("update public.profiles set timezone = 'America/Toronto' where id = %s", (mechanic,))
    if plan != "free":
        price = db.scalar("select price_cents from public.service_plans where code = %s", (plan,))
        with db.as_user(make_admin(db)):
            db.rpc("admin_grant_credit", p_customer_id=customer, p_amount_cents=price, p_reason="test credit")
    day = future_day(7)
    return customer, mechanic, book(db, customer, mechanic, at(day, "09:00"), plan)


def rendered(db: Db, message: dict[str, Any]) -> mail.Rendered:
    ctx = db.scalar("select private.email_context(%s, %s)", (message["user_id"], message["session_id"]))
    return mail.render(message["template"], {**ctx, **message["data"]})


def test_booking_cancelled_by_the_customer_tells_the_mechanic_who_and_when(db):
    customer, mechanic, res = booked(db, "chat10")
    sid = res["session_id"]
    start = db.scalar("select scheduled_for from public.sessions where id = %s", (sid,))
    with db.as_user(customer):
        db.rpc("cancel_scheduled_session", p_session_id=sid, p_reason="plans changed")
    flush(db)
    by_user = {m["user_id"]: m for m in emails(db, sid)}
    assert set(by_user) == {user(customer), user(mechanic)}  # no separate refund email
    to_mechanic = by_user[user(mechanic)]
    assert to_mechanic["template"] == "booking_cancelled"
    assert to_mechanic["data"] == {
        "recipient": "mechanic",
        "cancelled_by": "customer",
        "scheduled_for": start.isoformat(),
        "currency": "usd",
    }
    to_customer = by_user[user(customer)]
    price = price_of(db, sid)
    assert to_customer["data"]["refunded_cents"] == price and to_customer["data"]["recipient"] == "customer"
    # each in their own zone (09:00 UTC: 04:00 in Toronto, 10:00 or 11:00 in Paris)
    local_m = start.astimezone(zoneinfo.ZoneInfo("America/Toronto"))
    text = rendered(db, to_mechanic).text
    assert local_m.strftime("%H:%M") in text and "by the customer" in text and "free again" in text
    local_c = start.astimezone(zoneinfo.ZoneInfo("Europe/Paris"))
    assert local_c.strftime("%H:%M") in rendered(db, to_customer).text
    [event] = events(db, sid)
    assert (event["event"], event["cancelled_by"]) == ("booking_cancelled", "customer")
    assert_no_contact(event)


def test_booking_cancelled_by_an_admin_is_told_once_as_a_booking(db):
    _, _, res = booked(db)
    with db.as_user(make_admin(db)):
        db.rpc("admin_force_end_session", p_session_id=res["session_id"], p_reason="mechanic unavailable")
    flush(db)
    msgs = emails(db, res["session_id"])
    assert sorted((m["template"], m["data"]["cancelled_by"]) for m in msgs) == [
        ("booking_cancelled", "admin"),
        ("booking_cancelled", "admin"),
    ]
    assert [e["event"] for e in events(db, res["session_id"])] == ["booking_cancelled"]


def test_booking_rescheduled_by_the_customer_old_and_new_time_in_each_zone(db):
    customer, mechanic, res = booked(db)
    sid = res["session_id"]
    old = db.scalar("select scheduled_for from public.sessions where id = %s", (sid,))
    new = old + dt.timedelta(hours=2)
    with db.as_user(customer):
        assert db.rpc("reschedule_session", p_session_id=sid, p_new_start=new)["calendar_sequence"] == 1
    flush(db)
    by_user = {m["user_id"]: m for m in emails(db, sid, "booking_rescheduled")}
    assert set(by_user) == {user(customer), user(mechanic)}
    data = by_user[user(mechanic)]["data"]
    assert (data["recipient"], data["rescheduled_by"]) == ("mechanic", "customer")
    assert (dt.datetime.fromisoformat(data["previous_start"]), dt.datetime.fromisoformat(data["scheduled_for"])) == (
        old,
        new,
    )
    assert by_user[user(mechanic)]["key"].endswith(":s1")
    zone = zoneinfo.ZoneInfo
    text = rendered(db, by_user[user(mechanic)]).text
    assert (
        new.astimezone(zone("America/Toronto")).strftime("%H:%M") in text
        and old.astimezone(zone("America/Toronto")).strftime("%H:%M") in text
    )
    assert "at the customer's request" in text
    ctext = rendered(db, by_user[user(customer)]).text
    assert new.astimezone(zone("Europe/Paris")).strftime("%H:%M") in ctext
    [event] = events(db, sid)
    assert (event["event"], event["rescheduled_by"], event["calendar_sequence"]) == (
        "booking_rescheduled",
        "customer",
        1,
    )
    assert dt.datetime.fromisoformat(event["previous_start"]) == old
    assert_no_contact(event)
    # a refused move (into the past) changes nothing and tells nobody
    with db.as_user(customer):
        assert (
            db.rpc_error(
                "reschedule_session", p_session_id=sid, p_new_start=dt.datetime.now(UTC) - dt.timedelta(days=1)
            )
            != ""
        )
    flush(db)
    assert len(emails(db, sid, "booking_rescheduled")) == 2 and len(events(db, sid)) == 1


# ------------------------------------------------------------------------------------------------
# Golden files
# ------------------------------------------------------------------------------------------------
SESSION = {
    "id": "00000000-0000-4000-8000-00000000e111",
    "plan": "Standard Video (45 min)",
    "session_type": "video",
    "status": "cancelled",
    "scheduled_for": "2026-03-08T06:30:00+00:00",
    "started_at": None,
    "ended_at": None,
    "duration_minutes": 45,
    "price_cents": 2999,
    "currency": "usd",
    "mechanic_name": None,
    "vehicle": "2018 Honda Civic",
    "mechanic_notes": None,
    "concern": "grinding <noise>",
    "delivery": None,
    "review_until": None,
}
BASE = {"name": "Casey <b>Customer</b>", "timezone": "America/Toronto", "marketing_emails": True, "session": SESSION}
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "request_unattended": ("request_unattended", {"request_id": "r1"}),
    "request_expired": ("request_expired", {"request_id": "r1", "refunded_cents": 2999, "currency": "usd"}),
    "request_expired.free": ("request_expired", {"request_id": "r1", "refunded_cents": 0, "currency": "usd"}),
    "request_released": ("request_released", {"request_id": "r1", "released_by": "mechanic"}),
    "request_released.system": ("request_released", {"request_id": "r1", "released_by": "system"}),
    "session_cancelled": ("session_cancelled", {"cancelled_by": "admin", "refunded_cents": 2999, "currency": "usd"}),
    "refund_succeeded": (
        "refund_succeeded",
        {
            "refund_id": "f1",
            "amount_cents": 1000,
            "currency": "usd",
            "destination": "card",
            "origin": "admin",
            "paid_cents": 2999,
            "refunded_total_cents": 1000,
            "partial": True,
        },
    ),
    "refund_succeeded.credit": (
        "refund_succeeded",
        {
            "refund_id": "f1",
            "amount_cents": 2999,
            "currency": "usd",
            "destination": "credit",
            "origin": "automatic",
            "paid_cents": 2999,
            "refunded_total_cents": 2999,
            "partial": False,
        },
    ),
    "booking_cancelled": (
        "booking_cancelled",
        {
            "recipient": "customer",
            "cancelled_by": "mechanic",
            "scheduled_for": SESSION["scheduled_for"],
            "currency": "usd",
            "refunded_cents": 2999,
        },
    ),
    "booking_cancelled.mechanic": (
        "booking_cancelled",
        {
            "recipient": "mechanic",
            "cancelled_by": "customer",
            "scheduled_for": SESSION["scheduled_for"],
            "currency": "usd",
        },
    ),
    "booking_rescheduled": (
        "booking_rescheduled",
        {
            "recipient": "customer",
            "rescheduled_by": "mechanic",
            "previous_start": "2026-03-07T15:00:00+00:00",
            "scheduled_for": SESSION["scheduled_for"],
            "currency": "usd",
            "refunded_cents": 500,
        },
    ),
    "booking_rescheduled.mechanic": (
        "booking_rescheduled",
        {
            "recipient": "mechanic",
            "rescheduled_by": "customer",
            "previous_start": "2026-03-07T15:00:00+00:00",
            "scheduled_for": SESSION["scheduled_for"],
            "currency": "usd",
        },
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_templates_match_golden_files(case, monkeypatch):
    monkeypatch.setenv("APP_URL", "https://app.autodoctor.test")
    get_settings.cache_clear()
    template, data = CASES[case]
    rendered_ = mail.render(template, {**BASE, **data})
    get_settings.cache_clear()
    for ext, content in (("html", rendered_.html), ("txt", rendered_.text)):
        path = GOLDEN / f"{case}.{ext}"
        full = f"Subject: {rendered_.subject}\n\n{content}"
        if os.environ.get("UPDATE_GOLDEN"):
            path.write_text(full)
        assert full == path.read_text(), f"{path} differs (UPDATE_GOLDEN=1 to accept a deliberate change)"


def test_templates_escape_and_state_amounts_and_times():
    refund = mail.render("refund_succeeded", {**BASE, **CASES["refund_succeeded"][1]})
    assert "Casey &lt;b&gt;Customer&lt;/b&gt;" in refund.html and "10.00 USD" in refund.text
    assert "10.00 USD refunded of the 29.99 USD" in refund.text and refund.subject == "Refunded: 10.00 USD"
    moved = mail.render("booking_rescheduled", {**BASE, **CASES["booking_rescheduled.mechanic"][1]})
    # 06:30 UTC on 08 Mar 2026 (spring forward in Toronto) and 15:00 UTC the day before, in Toronto
    assert "Sun 08 Mar 2026, 01:30 EST" in moved.text and "Sat 07 Mar 2026, 10:00 EST" in moved.text
    # an email enqueued before the data carried the recipient still renders (as to the customer)
    old = mail.render("booking_cancelled", BASE)
    assert "A paid booking is refunded in full." in old.text


def test_message_emails_are_registered_transactional():
    from shared.email_registry import EMAIL_TEMPLATES

    for name in (
        "request_unattended",
        "request_expired",
        "request_released",
        "session_cancelled",
        "refund_succeeded",
        "booking_cancelled",
        "booking_rescheduled",
    ):
        assert EMAIL_TEMPLATES[name].transactional and EMAIL_TEMPLATES[name].has_html
        assert name not in mail.NON_TRANSACTIONAL


# ------------------------------------------------------------------------------------------------
# Who hears the events; races
# ------------------------------------------------------------------------------------------------
def test_the_events_reach_the_sessions_people_only(db):
    w = make_world(db)
    accept(db, w.mechanic, w.request)
    release(db, w.mechanic, w.request)
    topic = f"session:{w.session}"
    assert len(events(db, w.session, "request_released")) == 1  # the event exists
    assert db.can_receive(w.customer, topic)
    assert db.can_receive(w.admin, topic)
    # the mechanic that let it go is no longer on it; nobody else ever was
    for outsider in (w.other_customer, w.mechanic, w.other_mechanic, w.pending_mechanic, None):
        assert not db.can_receive(outsider, topic), outsider


def test_concurrent_duplicate_refund_reports_announce_once(pay: Pay) -> None:
    import threading

    import psycopg
    from psycopg.types.json import Jsonb

    customer = pay.customer()
    mechanic = pay.mechanic()
    pay.onboard(mechanic)
    paid = pay.paid_booking(customer, plan="diagnostic")
    pay.serve(mechanic, paid["session_id"])
    with pay.db.as_user(pay.admin()):
        pay.db.rpc("admin_refund", p_session_id=paid["session_id"], p_amount_cents=1500, p_reason="partial")
    pay.commit()
    pay.drain()
    refund = pay.row("select * from public.refunds where payment_id = %s", (paid["payment_id"],))
    report = pay.events.refund_object(refund["stripe_refund_id"], paid["pi"], 1500, "succeeded", None)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def apply() -> None:
        try:
            with psycopg.connect(pay.url, autocommit=False) as conn:
                barrier.wait()
                conn.execute("select private.stripe_refund(%s, now())", (Jsonb(report),))
                conn.commit()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=apply) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    pay.commit()
    assert pay.val("select status from public.refunds where id = %s", (refund["id"],)) == "succeeded"
    assert len(emails(pay.db, paid["session_id"], "refund_succeeded")) == 1
    assert len(events(pay.db, paid["session_id"], "refund_succeeded")) == 1


def test_an_admins_full_refund_of_a_request_not_started_is_one_cancellation_email(db):
    customer = make_customer(db)
    paid = paid_with_credit(db, customer)
    price = price_of(db, paid["session_id"])
    with db.as_user(make_admin(db)):
        db.rpc("admin_refund", p_session_id=paid["session_id"], p_reason="goodwill")
    flush(db)
    assert db.scalar("select status from public.sessions where id = %s", (paid["session_id"],)) == "cancelled"
    [cancelled] = emails(db, paid["session_id"])  # the refund is in it: no refund_succeeded
    assert (cancelled["template"], cancelled["data"]["refunded_cents"]) == ("session_cancelled", price)
    assert [e["event"] for e in events(db, paid["session_id"])] == ["session_cancelled"]
