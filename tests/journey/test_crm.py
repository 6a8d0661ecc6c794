"""Interactions and the funnel: what the database's own events record (a journey through the real
RPCs and the Stripe webhook), once per event; the backfill at original times, idempotent; the
funnel, retention and timeline against figures counted by hand, the UTC week edge; every persona on
the RPCs and the table; hostile input; a customer's attempts to write the record."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from tests.support.delivery import deliver, paid_with_credit
from tests.support.factories import accept, make_admin, make_customer, make_intake, make_world
from tests.support.harness import Db
from tests.support.journey_crm import (
    at,
    backfill_sql,
    bare_intake,
    bare_session,
    crm_count,
    crm_rows,
    record,
)
from tests.support.payments import Pay
from tests.support.personas import request_as
from tests.support.reviews import submit

NOT_ALLOWED, NOT_AUTHENTICATED, INVALID_INPUT, NOT_FOUND = "AD003", "AD002", "AD001", "AD004"
RANGE_INVALID, RANGE_TOO_LONG, GROUP_UNKNOWN = "AD245", "AD246", "AD247"
D = dt.date


def ratio(value: Any) -> Decimal | None:
    """A ratio of the answer (JSON number, 4 decimals) as an exact decimal."""
    return None if value is None else Decimal(str(value))


def funnel(db: Db, admin: uuid.UUID, p_from: dt.date, p_to: dt.date, group: str = "week") -> dict[str, Any]:
    with db.as_user(admin):
        out: dict[str, Any] = db.rpc("admin_funnel", p_from=p_from, p_to=p_to, p_group=group)
    return out


def figures(row: dict[str, Any]) -> tuple[Any, ...]:
    c = row["conversion"]
    return (
        row["intakes"],
        row["requested"],
        row["delivered"],
        row["returned"],
        row["followed_up"],
        row["repurchased"],
        ratio(c["intake_to_request"]),
        ratio(c["request_to_delivered"]),
        ratio(c["delivered_to_returned"]),
        ratio(c["intake_to_returned"]),
    )


# ------------------------------------------------------------------------------------------------
# what the database's own events record
# ------------------------------------------------------------------------------------------------
def test_a_journey_through_the_real_rpcs_is_recorded_by_the_triggers(db: Db) -> None:
    w = make_world(db)  # the customer wrote an intake and filed a free request for it
    accept(db, w.mechanic, w.request)
    deliver(db, w.session)
    review = submit(db, w.customer, w.session, 5, "Clear and quick")
    paid = paid_with_credit(db, w.customer)  # a second intake, paid from credit
    payment = db.one("select * from public.payments where session_id = %s", (paid["session_id"],))
    assert payment is not None
    second_intake = db.scalar("select intake_id from public.sessions where id = %s", (paid["session_id"],))

    rows = crm_rows(db, w.customer)
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_kind.setdefault(row["kind"], []).append(row)
    assert sorted((k, len(v)) for k, v in by_kind.items()) == [
        ("intake_created", 2),
        ("purchase", 1),
        ("request_filed", 2),
        ("review_written", 1),
        ("session_delivered", 1),
    ]
    assert {(r["intake_id"], r["session_id"]) for r in by_kind["request_filed"]} == {
        (w.intake, w.session),
        (second_intake, uuid.UUID(str(paid["session_id"]))),
    }
    assert by_kind["request_filed"][0]["data"]["booked"] is False
    assert {r["intake_id"] for r in by_kind["intake_created"]} == {w.intake, second_intake}
    delivered = by_kind["session_delivered"][0]
    assert (delivered["intake_id"], delivered["session_id"]) == (w.intake, w.session)
    reviewed = by_kind["review_written"][0]
    review_id = db.scalar("select id from public.mechanic_reviews where session_id = %s", (w.session,))
    assert (reviewed["session_id"], reviewed["subject_id"], reviewed["data"]) == (w.session, review_id, {"rating": 5})
    assert review is not None
    bought = by_kind["purchase"][0]
    assert (bought["subject_id"], bought["intake_id"], bought["session_id"]) == (
        payment["id"],
        second_intake,
        payment["session_id"],
    )
    assert bought["data"] == {
        "amount_cents": payment["amount_cents"],
        "currency": payment["currency"],
        "plan": "diagnostic",
        "method": "credit",
        "extension": False,
    }
    # every trigger stamps the transaction's time
    assert {r["occurred_at"] for r in rows} == {db.scalar("select now()")}

    # the funnel of today counts them: 2 intakes, both with a request, 1 delivered; the purchase is
    # at the same instant as the delivery, so not later: no return
    today = db.scalar("select (now() at time zone 'UTC')::date")
    out = funnel(db, make_admin(db), today, today)
    assert figures(out["totals"]) == (
        2,
        2,
        1,
        0,
        0,
        0,
        Decimal("1.0000"),
        Decimal("0.5000"),
        Decimal("0.0000"),
        Decimal("0.0000"),
    )
    # the world's other people have no interaction
    assert db.scalar("select count(*) from public.crm_interactions where customer_id <> %s", (w.customer,)) == 0


def test_an_edited_review_is_not_a_second_review(db: Db) -> None:
    w = make_world(db)
    accept(db, w.mechanic, w.request)
    deliver(db, w.session)
    submit(db, w.customer, w.session, 4, "ok")
    submit(db, w.customer, w.session, 5, "better than ok")  # an edit within the edit window
    assert db.scalar("select count(*) from public.crm_interactions where kind = 'review_written'") == 1


def test_a_booked_slot_is_a_filed_request(db: Db) -> None:
    customer = make_customer(db)
    intake = bare_intake(db, customer)
    sid = db.scalar(
        "insert into public.sessions (customer_id, plan_code, session_type, duration_type, planned_minutes, "
        "price_cents, intake_id, status, scheduled_for) select %s, code, session_type, duration_type, minutes, "
        "price_cents, %s, 'scheduled', now() + interval '2 days' from public.service_plans where code = 'video15' "
        "returning id",
        (customer, intake),
    )
    rows = crm_rows(db, customer)
    assert [(r["kind"], r["intake_id"], r["session_id"], r["data"]["booked"]) for r in rows] == [
        ("request_filed", intake, sid, True)
    ]
    # a pending session is not filed until its request is
    bare_session(db, make_customer(db), bare_intake(db, make_customer(db)))
    assert db.scalar("select count(*) from public.crm_interactions where kind = 'request_filed'") == 1


def test_an_event_that_happens_once_is_recorded_once(db: Db) -> None:
    customer = make_customer(db)
    intake = bare_intake(db, customer)
    session = bare_session(db, customer, intake)
    payment, review, rec = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    when = at("2026-06-01 10:00:00")
    for _ in range(2):  # a retried path records the same event again
        record(db, customer, "intake_created", when, intake=intake)
        record(db, customer, "request_filed", when, intake=intake, session=session)
        record(db, customer, "session_delivered", when, intake=intake, session=session)
        record(db, customer, "purchase", when, subject=payment, data={"amount_cents": 100})
        record(db, customer, "review_written", when, session=session, subject=review)
        record(db, customer, "follow_up_asked", when, session=session, subject=rec)
        record(db, customer, "recommendation_purchased", when, subject=rec)
        # views and clicks repeat by nature: each one is kept
        record(db, customer, "summary_viewed", when, session=session)
        record(db, customer, "recommendation_shown", when, subject=rec)
        record(db, customer, "recommendation_clicked", when, subject=rec)
    counts = {
        r["kind"]: r["n"]
        for r in db.all(
            "select kind, count(*) as n from public.crm_interactions where customer_id = %s group by kind", (customer,)
        )
    }
    assert counts == {
        "intake_created": 1,
        "request_filed": 1,
        "session_delivered": 1,
        "purchase": 1,
        "review_written": 1,
        "follow_up_asked": 1,
        "recommendation_purchased": 1,
        "summary_viewed": 2,
        "recommendation_shown": 2,
        "recommendation_clicked": 2,
    }
    # a null customer records nothing
    before = crm_count(db)
    with db.as_service():
        db.execute("select private.crm_record(null, 'purchase', now(), null, null, %s, '{}')", (uuid.uuid4(),))
    assert crm_count(db) == before


def test_the_card_webhook_delivered_twice_records_one_purchase(pay: Pay) -> None:
    customer = pay.customer()
    paid = pay.paid_booking(customer, plan="video15")
    booking = pay.booking(paid["booking_id"])
    # the same event again (the ledger drops it) and another event for the same paid Checkout
    # Session (the payment exists: already recorded)
    event = pay.events.completed(paid["cs"], str(paid["booking_id"]), paid["amount"], paid["pi"])
    pay.deliver(event)
    pay.deliver(event)
    rows = pay.rows("select * from public.crm_interactions where kind = 'purchase' and customer_id = %s", (customer,))
    assert len(rows) == 1
    row = rows[0]
    assert (row["subject_id"], row["session_id"], row["intake_id"]) == (
        paid["payment_id"],
        paid["session_id"],
        booking["intake_id"],
    )
    assert row["data"] == {
        "amount_cents": paid["amount"],
        "currency": "usd",
        "plan": "video15",
        "method": "card",
        "extension": False,
    }
    # the request the webhook filed is recorded too, with the intake
    assert (
        pay.val(
            "select count(*) from public.crm_interactions where kind = 'request_filed' and session_id = %s",
            (paid["session_id"],),
        )
        == 1
    )


def test_concurrent_recordings_of_one_payment_leave_one_row(fresh_url: str) -> None:
    with psycopg.connect(fresh_url, autocommit=True) as setup:
        customer = setup.execute(
            "insert into auth.users (id, email) values (gen_random_uuid(), 'race@example.test') returning id"
        ).fetchone()[0]  # type: ignore[index]
    payment = uuid.uuid4()
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def go() -> None:
        try:
            with psycopg.connect(fresh_url, autocommit=True) as conn, request_as(conn, "service_role", None):
                barrier.wait()  # all four inside their transaction, then the same insert at once
                conn.execute(
                    "select private.crm_record(%s, 'purchase', now(), null, null, %s, '{}')", (customer, payment)
                )
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with psycopg.connect(fresh_url) as conn:
        assert conn.execute(
            "select count(*) from public.crm_interactions where subject_id = %s", (payment,)
        ).fetchone() == (1,)


# ------------------------------------------------------------------------------------------------
# the backfill
# ------------------------------------------------------------------------------------------------
def test_the_backfill_records_history_at_its_original_times_once(db: Db) -> None:
    w = make_world(db)
    accept(db, w.mechanic, w.request)
    deliver(db, w.session)
    submit(db, w.customer, w.session, 4, "fine")
    paid = paid_with_credit(db, w.customer)
    # the history: times of their own, then no interaction recorded yet
    db.execute("update public.intakes set created_at = '2026-05-01 08:00+00' where id = %s", (w.intake,))
    db.execute("update public.session_requests set created_at = '2026-05-01 08:05+00' where id = %s", (w.request,))
    db.execute(
        "update public.sessions set ended_at = '2026-05-01 09:00+00', started_at = '2026-05-01 08:30+00' where id = %s",
        (w.session,),
    )
    db.execute(
        "update public.mechanic_reviews set created_at = '2026-05-02 10:00+00' where session_id = %s", (w.session,)
    )
    db.execute(
        "update public.payments set paid_at = '2026-05-03 11:00+00' where session_id = %s", (paid["session_id"],)
    )
    db.execute("delete from public.crm_interactions")

    db.execute(backfill_sql())
    rows = crm_rows(db, w.customer)
    times = {
        (r["kind"], r["session_id"] if r["kind"] != "intake_created" else r["intake_id"]): r["occurred_at"]
        for r in rows
    }
    assert times[("intake_created", w.intake)] == at("2026-05-01 08:00:00")
    assert times[("request_filed", w.session)] == at("2026-05-01 08:05:00")
    assert times[("session_delivered", w.session)] == at("2026-05-01 09:00:00")
    assert times[("review_written", w.session)] == at("2026-05-02 10:00:00")
    assert times[("purchase", uuid.UUID(str(paid["session_id"])))] == at("2026-05-03 11:00:00")
    assert sorted(r["kind"] for r in rows) == sorted(
        [
            "intake_created",
            "intake_created",
            "request_filed",
            "request_filed",
            "session_delivered",
            "review_written",
            "purchase",
        ]
    )
    once = crm_count(db)
    db.execute(backfill_sql())  # again: nothing more
    assert crm_count(db) == once == 7


# ------------------------------------------------------------------------------------------------
# the funnel, counted by hand
# ------------------------------------------------------------------------------------------------
def hand_world(db: Db) -> dict[str, Any]:
    """Six intakes in two UTC weeks (Mon 2026-06-01 and Mon 2026-06-08) and two outside them.

    I1 (A) Mon 06-01 10:00  request, delivered Tue, a follow-up asked on its session Wed → returned
    I2 (B) Tue 06-02 09:00  request, B's purchase for it before delivery, delivered Wed 06-03, B buys
                            again Fri 06-05 → returned (repurchased)
    I3 (C) Sun 06-07 23:59:59 (last second of week 1) request, delivered Mon 06-08; C's only later
                            purchase is a session extension → not returned
    I4 (D) Mon 06-08 00:00:00 (first second of week 2) request, never delivered
    I5 (E) Wed 06-10 12:00  no request; a delivery recorded anyway is not counted (no step before)
    I6 (A) Thu 06-11 12:00  request, delivered Fri 06-12; F (another customer) buys after, and A's
                            follow-up of I1 (before) is not on I6 → not returned
    I7 (F) Sun 05-31 23:59:59 and I8 (F) Mon 06-15 00:00:00: outside [06-01, 06-14]
    """
    a, b, c, d, e, f = (make_customer(db, n) for n in ("Ann", "Bob", "Cy", "Di", "Ed", "Fay"))
    i = {
        n: bare_intake(db, who)
        for n, who in (("I1", a), ("I2", b), ("I3", c), ("I4", d), ("I5", e), ("I6", a), ("I7", f), ("I8", f))
    }
    s1 = bare_session(db, a, i["I1"])
    record(db, a, "intake_created", at("2026-06-01 10:00:00"), intake=i["I1"])
    record(db, a, "request_filed", at("2026-06-01 10:05:00"), intake=i["I1"], session=s1)
    record(db, a, "session_delivered", at("2026-06-02 10:00:00"), intake=i["I1"], session=s1)
    record(db, a, "follow_up_asked", at("2026-06-03 10:00:00"), session=s1, subject=uuid.uuid4())

    record(db, b, "intake_created", at("2026-06-02 09:00:00"), intake=i["I2"])
    record(db, b, "request_filed", at("2026-06-02 09:05:00"), intake=i["I2"])
    record(db, b, "purchase", at("2026-06-02 09:04:00"), intake=i["I2"], subject=uuid.uuid4())
    record(db, b, "session_delivered", at("2026-06-03 09:00:00"), intake=i["I2"])
    record(db, b, "purchase", at("2026-06-05 09:00:00"), subject=uuid.uuid4(), data={"extension": False})

    record(db, c, "intake_created", at("2026-06-07 23:59:59"), intake=i["I3"])
    record(db, c, "request_filed", at("2026-06-08 00:10:00"), intake=i["I3"])
    record(db, c, "purchase", at("2026-06-08 00:09:00"), intake=i["I3"], subject=uuid.uuid4())
    record(db, c, "session_delivered", at("2026-06-08 01:00:00"), intake=i["I3"])
    record(db, c, "purchase", at("2026-06-08 02:00:00"), intake=i["I3"], subject=uuid.uuid4(), data={"extension": True})

    record(db, d, "intake_created", at("2026-06-08 00:00:00"), intake=i["I4"])
    record(db, d, "request_filed", at("2026-06-08 00:01:00"), intake=i["I4"])

    record(db, e, "intake_created", at("2026-06-10 12:00:00"), intake=i["I5"])
    record(db, e, "session_delivered", at("2026-06-10 13:00:00"), intake=i["I5"])

    record(db, a, "intake_created", at("2026-06-11 12:00:00"), intake=i["I6"])
    record(db, a, "request_filed", at("2026-06-11 12:01:00"), intake=i["I6"])
    record(db, a, "session_delivered", at("2026-06-12 12:00:00"), intake=i["I6"])
    record(db, f, "purchase", at("2026-06-13 12:00:00"), subject=uuid.uuid4())

    record(db, f, "intake_created", at("2026-05-31 23:59:59"), intake=i["I7"])
    record(db, f, "intake_created", at("2026-06-15 00:00:00"), intake=i["I8"])
    return {"customers": (a, b, c, d, e, f), "intakes": i, "s1": s1}


def test_the_funnel_matches_a_hand_count(db: Db) -> None:
    hand_world(db)
    out = funnel(db, make_admin(db), D(2026, 6, 1), D(2026, 6, 14))
    assert (out["from"], out["to"], out["group"], out["timezone"]) == ("2026-06-01", "2026-06-14", "week", "UTC")
    assert [c["period_start"] for c in out["cohorts"]] == ["2026-06-01", "2026-06-08"]
    week1, week2 = out["cohorts"]
    # week 1: I1, I2, I3 — 3 intakes, 3 requested, 3 delivered, returned I1 (follow-up) and I2
    # (purchase after delivery) = 2; conversions 3/3, 3/3, 2/3, 2/3
    assert figures(week1) == (
        3,
        3,
        3,
        2,
        1,
        1,
        Decimal("1.0000"),
        Decimal("1.0000"),
        Decimal("0.6667"),
        Decimal("0.6667"),
    )
    # week 2: I4, I5, I6 — 3 intakes, requested I4 and I6 = 2, delivered I6 = 1, returned 0;
    # conversions 2/3, 1/2, 0/1, 0/3
    assert figures(week2) == (
        3,
        2,
        1,
        0,
        0,
        0,
        Decimal("0.6667"),
        Decimal("0.5000"),
        Decimal("0.0000"),
        Decimal("0.0000"),
    )
    # totals: 6, 5, 4, 2 (1 followed up, 1 repurchased); 5/6, 4/5, 2/4, 2/6
    assert figures(out["totals"]) == (
        6,
        5,
        4,
        2,
        1,
        1,
        Decimal("0.8333"),
        Decimal("0.8000"),
        Decimal("0.5000"),
        Decimal("0.3333"),
    )
    assert "period_start" not in out["totals"]


def test_the_funnel_by_month_and_the_week_edges(db: Db) -> None:
    hand_world(db)
    admin = make_admin(db)
    # by month: one cohort holding the six intakes of [06-01, 06-14]
    out = funnel(db, admin, D(2026, 6, 1), D(2026, 6, 14), "month")
    assert [(c["period_start"], c["intakes"]) for c in out["cohorts"]] == [("2026-06-01", 6)]
    # Sunday 23:59:59 is the week before Monday 00:00:00: one day each side
    out = funnel(db, admin, D(2026, 6, 7), D(2026, 6, 8))
    assert [(c["period_start"], c["intakes"]) for c in out["cohorts"]] == [("2026-06-01", 1), ("2026-06-08", 1)]
    # a range of one day holds that UTC day only: 05-31 has I7, 06-15 has I8
    assert funnel(db, admin, D(2026, 5, 31), D(2026, 5, 31))["totals"]["intakes"] == 1
    assert funnel(db, admin, D(2026, 6, 15), D(2026, 6, 15))["cohorts"] == [
        {**funnel(db, admin, D(2026, 6, 15), D(2026, 6, 15))["totals"], "period_start": "2026-06-15"}
    ]
    # a week's cohort starts on its Monday even when the range starts mid-week (06-10: I5 and I6)
    out = funnel(db, admin, D(2026, 6, 10), D(2026, 6, 14))
    assert [(c["period_start"], c["intakes"], c["requested"]) for c in out["cohorts"]] == [("2026-06-08", 2, 1)]


def test_an_empty_range_has_no_cohort_and_no_ratio(db: Db) -> None:
    hand_world(db)
    out = funnel(db, make_admin(db), D(2025, 1, 1), D(2025, 1, 31))
    assert out["cohorts"] == []
    assert figures(out["totals"]) == (0, 0, 0, 0, 0, 0, None, None, None, None)


def test_a_follow_up_recorded_with_its_intake_counts(db: Db) -> None:
    a = make_customer(db)
    intake = bare_intake(db, a)
    record(db, a, "intake_created", at("2026-06-01 10:00:00"), intake=intake)
    record(db, a, "request_filed", at("2026-06-01 10:01:00"), intake=intake)
    record(db, a, "session_delivered", at("2026-06-01 11:00:00"), intake=intake)
    record(db, a, "follow_up_asked", at("2026-06-01 12:00:00"), intake=intake, subject=uuid.uuid4())
    assert figures(funnel(db, make_admin(db), D(2026, 6, 1), D(2026, 6, 1))["totals"])[:6] == (1, 1, 1, 1, 1, 0)


# ------------------------------------------------------------------------------------------------
# retention, counted by hand
# ------------------------------------------------------------------------------------------------
def retention(db: Db, admin: uuid.UUID, p_from: dt.date, p_to: dt.date) -> dict[str, Any]:
    with db.as_user(admin):
        out: dict[str, Any] = db.rpc("admin_retention", p_from=p_from, p_to=p_to)
    return out


def rates(row: dict[str, Any]) -> tuple[Any, ...]:
    return (
        row["customers"],
        row["eligible_30"],
        row["retained_30"],
        ratio(row["rate_30"]),
        row["eligible_90"],
        row["retained_90"],
        ratio(row["rate_90"]),
    )


def test_retention_matches_a_hand_count(db: Db) -> None:
    """P first 03-02, second 03-20 (18 days): retained at 30 and 90.
    Q first 03-05, second 05-10 (66 days): at 90 only.
    R first 03-10, then only an extension 03-12: not retained.
    S first 04-01 00:00, second exactly 30 days later (05-01 00:00): at 30 and 90 (bounds included).
    U first 04-30 23:59:59, second 90 days and 1 second later: not retained.
    T first 02-28 (before the range), V first 05-01 (after it): not in a cohort.
    All windows ended long before now."""
    p, q, r, s, u, t, v = (make_customer(db, n) for n in ("P", "Q", "R", "S", "U", "T", "V"))

    def buy(who: uuid.UUID, when: str, extension: bool = False) -> None:
        record(db, who, "purchase", at(when), subject=uuid.uuid4(), data={"extension": extension})

    buy(p, "2026-03-02 10:00:00"), buy(p, "2026-03-20 10:00:00")
    buy(q, "2026-03-05 10:00:00"), buy(q, "2026-05-10 10:00:00")
    buy(r, "2026-03-10 00:00:00"), buy(r, "2026-03-12 00:00:00", extension=True)
    buy(s, "2026-04-01 00:00:00"), buy(s, "2026-05-01 00:00:00")
    buy(u, "2026-04-30 23:59:59"), buy(u, "2026-07-30 00:00:00")
    buy(t, "2026-02-28 23:00:00"), buy(t, "2026-03-03 00:00:00")
    buy(v, "2026-05-01 00:00:00"), buy(v, "2026-05-02 00:00:00")
    out = retention(db, make_admin(db), D(2026, 3, 1), D(2026, 4, 30))
    assert [c["period_start"] for c in out["cohorts"]] == ["2026-03-01", "2026-04-01"]
    march, april = out["cohorts"]
    # March: P, Q, R; at 30 days P (1/3); at 90 days P and Q (2/3)
    assert rates(march) == (3, 3, 1, Decimal("0.3333"), 3, 2, Decimal("0.6667"))
    # April: S, U; S at both (1/2)
    assert rates(april) == (2, 2, 1, Decimal("0.5000"), 2, 1, Decimal("0.5000"))
    # totals: 5 customers; 2/5 at 30 days, 3/5 at 90
    assert rates(out["totals"]) == (5, 5, 2, Decimal("0.4000"), 5, 3, Decimal("0.6000"))


def test_retention_leaves_out_customers_whose_window_is_open(db: Db) -> None:
    """W first 10 days ago, second 5 days ago: its 30-day window is open, so it counts in neither
    the eligible nor the retained; X first 40 days ago, none since: eligible at 30 days, not
    retained; neither is eligible at 90 days."""
    w, x = make_customer(db, "W"), make_customer(db, "X")
    now = db.scalar("select now()")
    for who, ago in ((w, 10), (w, 5), (x, 40)):
        record(db, who, "purchase", now - dt.timedelta(days=ago), subject=uuid.uuid4())
    today = db.scalar("select (now() at time zone 'UTC')::date")
    out = retention(db, make_admin(db), today - dt.timedelta(days=60), today)
    assert rates(out["totals"]) == (2, 1, 0, Decimal("0.0000"), 0, 0, None)


# ------------------------------------------------------------------------------------------------
# the timeline
# ------------------------------------------------------------------------------------------------
def test_the_timeline_lists_one_customer_in_time_order(db: Db) -> None:
    world = hand_world(db)
    a, b = world["customers"][0], world["customers"][1]
    with db.as_user(make_admin(db)):
        out = db.rpc("admin_customer_timeline", p_customer_id=a)
    items = out["interactions"]
    assert out["customer_id"] == str(a)
    # Ann's seven, oldest first
    assert [(x["kind"], x["occurred_at"][:19]) for x in items] == [
        ("intake_created", "2026-06-01T10:00:00"),
        ("request_filed", "2026-06-01T10:05:00"),
        ("session_delivered", "2026-06-02T10:00:00"),
        ("follow_up_asked", "2026-06-03T10:00:00"),
        ("intake_created", "2026-06-11T12:00:00"),
        ("request_filed", "2026-06-11T12:01:00"),
        ("session_delivered", "2026-06-12T12:00:00"),
    ]
    assert items[0]["intake_id"] == str(world["intakes"]["I1"])
    assert items[3]["session_id"] == str(world["s1"]) and items[3]["subject_type"] == "follow_up"
    assert items[3]["subject_id"] is not None
    assert all(x["id"] for x in items)
    with db.as_user(make_admin(db)):
        bob = db.rpc("admin_customer_timeline", p_customer_id=b)["interactions"]
    assert [x["kind"] for x in bob] == ["intake_created", "purchase", "request_filed", "session_delivered", "purchase"]
    assert bob[1]["subject_type"] == "payment"
    # someone without interactions: an empty list
    nobody = make_customer(db)
    with db.as_user(make_admin(db)):
        assert db.rpc("admin_customer_timeline", p_customer_id=nobody)["interactions"] == []


# ------------------------------------------------------------------------------------------------
# who may read: every persona
# ------------------------------------------------------------------------------------------------
CALLS: list[tuple[str, dict[str, Any]]] = [
    ("admin_funnel", {"p_from": D(2026, 6, 1), "p_to": D(2026, 6, 14), "p_group": "week"}),
    ("admin_retention", {"p_from": D(2026, 6, 1), "p_to": D(2026, 6, 14)}),
    ("admin_customer_timeline", {}),
]


def test_the_reports_answer_admins_only(db: Db) -> None:
    w = make_world(db)
    hand_world(db)
    assert crm_count(db) > 0  # the rows the others may not read exist
    people = {
        "customer": w.customer,
        "other customer": w.other_customer,
        "mechanic": w.mechanic,
        "other mechanic": w.other_mechanic,
        "workshop owner": w.workshop_admin,
    }
    for name, params in CALLS:
        args = params or {"p_customer_id": w.customer}
        for who, user in people.items():
            with db.as_user(user):
                assert db.rpc_error(name, **args) == NOT_ALLOWED, (name, who)
        with db.as_anon():
            assert db.rpc_error(name, **args) == "42501", name
        with db.as_service():  # not a signed-in admin
            assert db.rpc_error(name, **args) == NOT_AUTHENTICATED, name
        with db.as_user(w.admin):
            assert isinstance(db.rpc(name, **args), dict), name


def test_the_table_is_read_by_admins_only(db: Db) -> None:
    w = make_world(db)  # the customer's intake and request are recorded
    total = db.scalar("select count(*) from public.crm_interactions")
    mine = db.scalar("select count(*) from public.crm_interactions where customer_id = %s", (w.customer,))
    assert total >= mine >= 2
    for user in (w.customer, w.other_customer, w.mechanic, w.other_mechanic, w.workshop_admin):
        with db.as_user(user):
            assert db.scalar("select count(*) from public.crm_interactions") == 0
    with db.as_anon():
        assert db.error("select count(*) from public.crm_interactions").sqlstate == "42501"
    with db.as_user(w.admin):
        assert db.scalar("select count(*) from public.crm_interactions") == total


# ------------------------------------------------------------------------------------------------
# hostile input
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"p_from": None, "p_to": D(2026, 6, 1)}, RANGE_INVALID),
        ({"p_from": D(2026, 6, 1), "p_to": None}, RANGE_INVALID),
        ({"p_from": None, "p_to": None}, RANGE_INVALID),
        ({"p_from": D(2026, 6, 2), "p_to": D(2026, 6, 1)}, RANGE_INVALID),
        ({"p_from": D(2024, 6, 1), "p_to": D(2026, 6, 1)}, RANGE_TOO_LONG),  # two years
        ({"p_from": D(2025, 6, 1), "p_to": D(2026, 6, 2)}, RANGE_TOO_LONG),  # 367 days
        ({"p_from": D(1, 1, 1), "p_to": D(1, 1, 2)}, RANGE_INVALID),
        ({"p_from": D(9999, 12, 30), "p_to": D(9999, 12, 31), "p_group": "week"}, None),  # the last days: fine
        ({"p_from": D(2026, 6, 1), "p_to": D(2026, 6, 2), "p_group": "day"}, GROUP_UNKNOWN),
        ({"p_from": D(2026, 6, 1), "p_to": D(2026, 6, 2), "p_group": None}, GROUP_UNKNOWN),
        ({"p_from": D(2026, 6, 1), "p_to": D(2026, 6, 2), "p_group": "WEEK"}, GROUP_UNKNOWN),
        ({"p_from": D(2026, 6, 1), "p_to": D(2026, 6, 2), "p_group": "week'; drop table x; --"}, GROUP_UNKNOWN),
    ],
)
def test_funnel_hostile_input(db: Db, params: dict[str, Any], code: str | None) -> None:
    admin = make_admin(db)
    hand_world(db)
    before = crm_count(db)
    with db.as_user(admin):
        if code is None:
            assert db.rpc("admin_funnel", **params)["cohorts"] == []
        else:
            assert db.rpc_error("admin_funnel", **params) == code
    assert crm_count(db) == before


def test_the_longest_range_is_the_setting(db: Db) -> None:
    admin = make_admin(db)
    with db.as_user(admin):
        # 2025-06-01 … 2026-05-31 is 365 days; 2025-06-01 … 2026-06-01 is 366: both allowed
        assert db.rpc("admin_funnel", p_from=D(2025, 6, 1), p_to=D(2026, 6, 1))["cohorts"] == []
        assert db.rpc_error("admin_retention", p_from=D(2025, 6, 1), p_to=D(2026, 6, 2)) == RANGE_TOO_LONG
    db.execute("update private.settings set value = '7' where key = 'crm.report_max_days'")
    with db.as_user(admin):
        assert db.rpc_error("admin_funnel", p_from=D(2026, 6, 1), p_to=D(2026, 6, 8)) == RANGE_TOO_LONG
        assert db.rpc("admin_funnel", p_from=D(2026, 6, 1), p_to=D(2026, 6, 7))["cohorts"] == []


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"p_from": None, "p_to": D(2026, 6, 1)}, RANGE_INVALID),
        ({"p_from": D(2026, 6, 2), "p_to": D(2026, 6, 1)}, RANGE_INVALID),
        ({"p_from": D(2024, 6, 1), "p_to": D(2026, 6, 1)}, RANGE_TOO_LONG),
    ],
)
def test_retention_hostile_input(db: Db, params: dict[str, Any], code: str) -> None:
    with db.as_user(make_admin(db)):
        assert db.rpc_error("admin_retention", **params) == code


def test_timeline_hostile_input(db: Db) -> None:
    admin = make_admin(db)
    with db.as_user(admin):
        assert db.rpc_error("admin_customer_timeline", p_customer_id=None) == INVALID_INPUT
        assert db.rpc_error("admin_customer_timeline", p_customer_id=uuid.uuid4()) == NOT_FOUND
        assert db.error("select public.admin_customer_timeline('not-a-uuid')").sqlstate == "22P02"


# ------------------------------------------------------------------------------------------------
# abuse: a customer writing the record
# ------------------------------------------------------------------------------------------------
def test_a_customer_cannot_write_the_record(db: Db) -> None:
    w = make_world(db)
    victim = w.other_customer
    before = crm_count(db)
    assert before > 0
    with db.as_user(w.customer):
        # the table: no grant to write
        for stmt in (
            f"insert into public.crm_interactions (customer_id, kind) values ('{victim}', 'purchase')",
            f"insert into public.crm_interactions (customer_id, kind) values ('{w.customer}', 'intake_created')",
            "update public.crm_interactions set occurred_at = now() - interval '1 year'",
            "delete from public.crm_interactions",
        ):
            assert db.error(stmt).sqlstate == "42501", stmt
        # the recording function and the trigger functions are not callable
        err = db.error("select private.crm_record(%s, 'purchase', now(), null, null, %s, '{}')", (victim, uuid.uuid4()))
        assert err.sqlstate == "42501"
        # the intake's own time is the transaction's: no backdating into an older cohort
        assert (
            db.error(
                "insert into public.intakes (concern, created_at) values ('brakes squeal', '2026-01-05 10:00+00')"
            ).sqlstate
            == "42501"
        )
    with db.as_anon():
        assert (
            db.error(
                "select private.crm_record(%s, 'purchase', now(), null, null, %s, '{}')", (victim, uuid.uuid4())
            ).sqlstate
            == "42501"
        )
    assert crm_count(db) == before
    # the only interactions the customer's own writes can add are the customer's own, stamped now
    make_intake(db, w.customer)
    added = db.all("select customer_id, occurred_at from public.crm_interactions order by id")[before:]
    assert added and {(r["customer_id"], r["occurred_at"]) for r in added} == {(w.customer, db.scalar("select now()"))}
    assert db.scalar("select count(*) from public.crm_interactions where customer_id = %s", (victim,)) == 0
