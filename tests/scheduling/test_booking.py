"""Holds, bookings (free and credit), expiry (lazy and by job), on-demand work against bookings,
reschedule, cancel with the cut-off and refunds, reminders in the outbox, opening for joining."""

from __future__ import annotations

import datetime as dt
import uuid

from tests.support.delivery import start_both
from tests.support.factories import ensure_waiver, make_admin, make_customer, make_intake, request_free
from tests.support.scheduling import (
    UTC,
    active_overlaps,
    at,
    book,
    every_day,
    future_day,
    hold,
    scheduled_mechanic,
)


def grid(minutes_ahead: int) -> dt.datetime:
    """The first 5-minute boundary at least `minutes_ahead` from now."""
    t = dt.datetime.now(UTC) + dt.timedelta(minutes=minutes_ahead)
    return t.replace(second=0, microsecond=0) + dt.timedelta(minutes=(5 - t.minute % 5) % 5 or 5)


def always_open(db, **rules):
    return scheduled_mechanic(db, "UTC", every_day("00:00", "24:00"), rules={"slot_step_minutes": 5, **rules})


def reminders(db, session_id) -> dict[str, dt.datetime]:
    rows = db.all("select dedupe_key, next_attempt_at from private.outbox where status = 'pending'"
                  " and payload ->> 'session_id' = %s and payload ->> 'template' in ('session_reminder', 'session_starting')",
                  (str(session_id),))
    return {r["dedupe_key"]: r["next_attempt_at"] for r in rows}


def test_hold_then_book_a_free_slot(db):
    m = always_open(db, buffer_minutes=15)
    customer = make_customer(db)
    start = at(future_day(4), "09:00")
    h = hold(db, customer, m, start)
    assert h["price_cents"] == 0 and h["slot_end"] and uuid.UUID(h["hold_id"])
    expires = dt.datetime.fromisoformat(h["expires_at"])
    assert dt.timedelta(minutes=14) < expires - dt.datetime.now(UTC) <= dt.timedelta(minutes=15)
    intake = make_intake(db, customer)
    with db.as_user(customer):
        res = db.rpc("book_slot", p_hold_id=h["hold_id"], p_intake_id=intake)
    s = db.one("select * from public.sessions where id = %s", (res["session_id"],))
    assert (s["status"], s["mechanic_id"], s["scheduled_for"], s["calendar_sequence"]) == ("scheduled", m, start, 0)
    c = db.one("select * from public.mechanic_commitments where id = %s", (h["hold_id"],))
    assert (c["kind"], c["status"], c["session_id"], c["expires_at"]) == ("scheduled", "confirmed", s["id"], None)
    assert c["during"].lower == start and c["during"].upper == start + dt.timedelta(minutes=5 + 15)
    assert db.scalar("select count(*) from public.session_participants where session_id = %s", (s["id"],)) == 2
    assert db.scalar("select status from public.intakes where id = %s", (intake,)) == "pending"
    # reminders: 24 h, 1 h and the starting notice, per participant, at the right times
    r = reminders(db, s["id"])
    assert len(r) == 6
    assert r[f"email:session_reminder:{s['id']}:{customer}:24hours"] == start - dt.timedelta(hours=24)
    assert r[f"email:session_reminder:{s['id']}:{m}:1hour"] == start - dt.timedelta(hours=1)
    assert r[f"email:session_starting:{s['id']}:{customer}"] == start - dt.timedelta(minutes=5)
    assert s["starting_notice_at"] is not None  # the sweep leaves it to these rows
    assert db.scalar("select private.send_starting_notices(%s) ->> 'starting_notices'",
                     (start - dt.timedelta(minutes=3),)) == "0"
    assert db.scalar("select count(*) from private.outbox where dedupe_key = %s",
                     (f"email:booking_confirmed:{s['id']}:{customer}",)) == 1


def test_hold_refusals(db):
    m = always_open(db, buffer_minutes=10)
    a, b = make_customer(db), make_customer(db)
    day = future_day(5)
    hold(db, a, m, at(day, "09:00"))
    with db.as_user(b):
        assert db.rpc_error("hold_slot", p_mechanic_id=m, p_start=at(day, "09:00"), p_plan_code="free") == "AD050"
        # 09:10 is within 09:05 + 10 min buffer
        assert db.rpc_error("hold_slot", p_mechanic_id=m, p_start=at(day, "09:10"), p_plan_code="free") == "AD050"
        assert db.rpc_error("hold_slot", p_mechanic_id=m, p_start=at(day, "15:03"), p_plan_code="free") == "AD052"
        assert db.rpc_error("hold_slot", p_mechanic_id=m, p_start=at(day + dt.timedelta(days=400), "09:00"),
                            p_plan_code="free") == "AD052"
        assert db.rpc("hold_slot", p_mechanic_id=m, p_start=at(day, "09:15"), p_plan_code="free")["hold_id"]
    ensure_waiver(db, m)  # a mechanic may book others as a customer, never itself
    with db.as_user(m):
        assert db.rpc_error("hold_slot", p_mechanic_id=m, p_start=at(day, "11:00"), p_plan_code="free") == "AD003"
    for hh in ("12:00", "13:00"):  # paid slots: one account has one free session (tests/trust)
        hold(db, a, m, at(day, hh), "chat10")
    with db.as_user(a):  # a holds three already
        assert db.rpc_error("hold_slot", p_mechanic_id=m, p_start=at(day, "14:00"), p_plan_code="chat10") == "AD055"
    assert active_overlaps(db) == 0


def test_hold_expiry_lazy_and_by_job_and_release(db):
    m = always_open(db)
    a, b = make_customer(db), make_customer(db)
    start = at(future_day(5), "09:00")
    h = hold(db, a, m, start)
    later = dt.datetime.now(UTC) + dt.timedelta(minutes=16)
    # lazily: a hold attempt after the expiry (inside the mechanic's lock) expires it and wins
    again = db.scalar("select private.hold_slot(%s, %s, %s, 'free', %s)", (b, m, start, later))
    assert db.scalar("select status from public.mechanic_commitments where id = %s", (h["hold_id"],)) == "expired"
    # booking an expired hold fails; the job expires the rest
    intake = make_intake(db, a)
    with db.as_user(a):
        assert db.rpc_error("book_slot", p_hold_id=h["hold_id"], p_intake_id=intake) == "AD053"
    assert db.scalar("select private.expire_holds(%s) ->> 'holds_expired'", (later + dt.timedelta(minutes=16),)) == "1"
    assert db.scalar("select status from public.mechanic_commitments where id = %s", (again["hold_id"],)) == "expired"
    h2 = hold(db, a, m, start)
    with db.as_user(b):
        assert db.rpc_error("release_hold", p_hold_id=h2["hold_id"]) == "AD004"
    with db.as_user(a):
        assert db.rpc("release_hold", p_hold_id=h2["hold_id"])["status"] == "released"
        assert db.rpc_error("book_slot", p_hold_id=h2["hold_id"], p_intake_id=intake) == "AD053"
    hold(db, b, m, start)  # free again


def test_credit_paid_booking_and_payment_required(db):
    m = always_open(db)
    customer, admin = make_customer(db), make_admin(db)
    start = at(future_day(6), "10:00")
    h = hold(db, customer, m, start, plan="chat10")
    assert h["price_cents"] == 999
    intake = make_intake(db, customer)
    with db.as_user(customer):
        assert db.rpc_error("book_slot", p_hold_id=h["hold_id"], p_intake_id=intake) == "AD008"
    with db.as_user(admin):
        db.rpc("admin_grant_credit", p_customer_id=customer, p_amount_cents=1500, p_reason="goodwill")
    with db.as_user(customer):
        res = db.rpc("book_slot", p_hold_id=h["hold_id"], p_intake_id=intake)
    assert res["mode"] == "credit"
    pay = db.one("select * from public.payments where session_id = %s", (res["session_id"],))
    assert (pay["method"], pay["amount_cents"]) == ("credit", 999)
    assert db.scalar("select private.credit_balance(%s)", (customer,)) == 501
    assert db.scalar("select hold_id from public.bookings where id = %s", (res["booking_id"],)) == uuid.UUID(h["hold_id"])
    # the customer cancels before the cut-off: refunded in full (to credit)
    with db.as_user(customer):
        out = db.rpc("cancel_scheduled_session", p_session_id=res["session_id"], p_reason="plans changed")
    assert out["status"] == "cancelled" and out["cancelled_by"] == "customer" and out["calendar_sequence"] == 1
    assert db.scalar("select private.credit_balance(%s)", (customer,)) == 1500
    assert reminders(db, res["session_id"]) == {}
    assert db.scalar("select status from public.mechanic_commitments where session_id = %s", (res["session_id"],)) \
        == "released"
    assert db.scalar("select count(*) from private.outbox where dedupe_key like %s",
                     (f"email:booking_cancelled:{res['session_id']}:%",)) == 2


def test_on_demand_accept_cannot_run_into_a_booking_nor_a_booking_over_live_work(db):
    m = always_open(db)
    customer = make_customer(db)
    soon = grid(12)  # a booked session within the free plan's 5 min + 15 min buffer
    book(db, customer, m, soon)
    req = request_free(db, make_customer(db))
    with db.as_user(m):
        assert db.rpc_error("accept_request", p_request_id=req["request_id"]) == "AD051"
    assert db.scalar("select status from public.session_requests where id = %s", (req["request_id"],)) == "pending"
    # eligibility leaves it out of ranking and routing
    assert m in {r["eligibility_exclusions"] for r in db.all(
        "select private.eligibility_exclusions(%s, now())", (req["request_id"],))}
    # another mechanic takes live work; then nobody can book over it
    other = always_open(db)
    with db.as_user(other):
        db.rpc("accept_request", p_request_id=req["request_id"])
    with db.as_user(customer):
        assert db.rpc_error("hold_slot", p_mechanic_id=other, p_start=grid(10), p_plan_code="free") == "AD050"
    assert active_overlaps(db) == 0


def test_time_off_excludes_from_on_demand_ranking(db):
    m = always_open(db)
    with db.as_user(m):
        tid = db.rpc("add_time_off", p_start=dt.datetime.now(UTC) - dt.timedelta(hours=1),
                     p_end=dt.datetime.now(UTC) + dt.timedelta(hours=1))
    req = request_free(db, make_customer(db))
    excluded = {r["e"] for r in db.all("select private.eligibility_exclusions(%s, now()) e", (req["request_id"],))}
    assert m in excluded
    with db.as_user(m):
        db.rpc("remove_time_off", p_time_off_id=tid)
    excluded = {r["e"] for r in db.all("select private.eligibility_exclusions(%s, now()) e", (req["request_id"],))}
    assert m not in excluded


def test_reschedule_keeps_the_session_and_moves_reminders(db):
    m = always_open(db)
    customer, other = make_customer(db), make_customer(db)
    day = future_day(7)
    res = book(db, customer, m, at(day, "09:00"))
    sid = res["session_id"]
    book(db, other, m, at(day, "11:00"))
    with db.as_user(customer):
        assert db.rpc_error("reschedule_session", p_session_id=sid, p_new_start=at(day, "11:00")) == "AD050"
        assert db.rpc_error("reschedule_session", p_session_id=sid, p_new_start=at(day, "15:02")) == "AD052"
    with db.as_user(other):
        assert db.rpc_error("reschedule_session", p_session_id=sid, p_new_start=at(day, "10:00")) == "AD004"
    with db.as_user(customer):
        out = db.rpc("reschedule_session", p_session_id=sid, p_new_start=at(day, "10:00"))
    assert out["calendar_sequence"] == 1 and out["session_id"] == sid
    s = db.one("select * from public.sessions where id = %s", (sid,))
    assert s["scheduled_for"] == at(day, "10:00") and s["status"] == "scheduled"
    rows = db.all("select status, lower(during) l from public.mechanic_commitments where session_id = %s order by 2",
                  (sid,))
    assert [(r["status"], r["l"]) for r in rows] == [("released", at(day, "09:00")), ("confirmed", at(day, "10:00"))]
    r = reminders(db, sid)
    assert len(r) == 6 and all(k.endswith(":s1") for k in r)
    assert r[f"email:session_reminder:{sid}:{customer}:1hour:s1"] == at(day, "09:00")
    assert db.scalar("select count(*) from private.outbox where dedupe_key like %s",
                     (f"email:booking_rescheduled:{sid}:%:s1",)) == 2
    # the freed 09:00 is bookable again; the mechanic may move it too
    book(db, make_customer(db), m, at(day, "09:00"))
    with db.as_user(m):
        assert db.rpc("reschedule_session", p_session_id=sid, p_new_start=at(day, "13:00"))["calendar_sequence"] == 2
    assert active_overlaps(db) == 0


def test_cut_off_for_customers_not_for_the_mechanic(db):
    m = always_open(db)
    customer = make_customer(db)
    soon = grid(180)  # inside the 24 h cut-off
    sid = book(db, customer, m, soon)["session_id"]
    with db.as_user(customer):
        assert db.rpc_error("reschedule_session", p_session_id=sid, p_new_start=soon + dt.timedelta(hours=1)) == "AD054"
        assert db.rpc_error("cancel_scheduled_session", p_session_id=sid) == "AD054"
    assert db.scalar("select status from public.sessions where id = %s", (sid,)) == "scheduled"
    with db.as_user(m):
        out = db.rpc("cancel_scheduled_session", p_session_id=sid, p_reason="sick")
    assert out["cancelled_by"] == "mechanic" and out["status"] == "cancelled"
    with db.as_user(m):
        assert db.rpc_error("cancel_scheduled_session", p_session_id=sid) == "AD006"


def test_booked_session_opens_fifteen_minutes_before(db):
    m = always_open(db)
    customer = make_customer(db)
    start = grid(30)
    sid = book(db, customer, m, start)["session_id"]
    assert db.scalar("select private.open_scheduled_sessions(%s) ->> 'sessions_opened'",
                     (start - dt.timedelta(minutes=16),)) == "0"
    assert db.scalar("select private.open_scheduled_sessions(%s) ->> 'sessions_opened'",
                     (start - dt.timedelta(minutes=15),)) == "1"
    s = db.one("select status, status_changed_at from public.sessions where id = %s", (sid,))
    assert s["status"] == "waiting" and s["status_changed_at"] == start  # the no-show clock starts at the start
    # the no-show sweep does not cancel it before its start
    db.scalar("select private.sweep_requests(%s)", (start - dt.timedelta(minutes=1),))
    assert db.scalar("select status from public.sessions where id = %s", (sid,)) == "waiting"
    with db.as_user(customer):
        assert db.rpc("start_session", p_session_id=sid)["status"] == "waiting"  # for the mechanic
    assert start_both(db, sid)["status"] == "live"
