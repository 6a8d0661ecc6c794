"""Suspension that cleans up: the suspended mechanic goes offline, its accepted requests go back to
the queue, its offers are withdrawn, its future bookings are cancelled and refunded (each customer
emailed), its live sessions run to their end, its payouts are held; reinstating restores its
standing and releases the hold, and what was cancelled stays cancelled. Each step is audited."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from tests.support.appointments import as_, confirmed, make_cast
from tests.support.appointments import at as appointment_at
from tests.support.appointments import day as appointment_day
from tests.support.appointments import err as appointment_err
from tests.support.delivery import books_balance, paid_with_credit, release_hold, start_both, take_part
from tests.support.factories import accept, make_admin, make_customer, make_intake, make_mechanic, request_free
from tests.support.harness import Db
from tests.support.personas import race
from tests.support.scheduling import at, book, every_day, future_day, scheduled_mechanic


def _mechanic(db: Db) -> uuid.UUID:
    mechanic = scheduled_mechanic(db, "UTC", every_day("00:00", "24:00"), rules={"slot_step_minutes": 5})
    db.execute(
        "insert into public.payout_accounts (mechanic_id, stripe_account_id, transfers_active) values (%s, %s, true)",
        (mechanic, "acct_" + uuid.uuid4().hex[:12]),
    )
    with db.as_user(mechanic):
        db.rpc("set_online", p_online=True)
    return mechanic


def _credit_booking(db: Db, mechanic: uuid.UUID, admin: uuid.UUID, days: int) -> tuple[uuid.UUID, dict[str, Any]]:
    customer = make_customer(db, f"Booker {days}")
    with db.as_user(admin):
        db.rpc("admin_grant_credit", p_customer_id=customer, p_amount_cents=999, p_reason="test credit")
    return customer, book(db, customer, mechanic, at(future_day(days), "10:00"), plan="chat10")


def test_suspension_releases_withdraws_cancels_refunds_and_is_audited(db: Db) -> None:
    mechanic, admin = _mechanic(db), make_admin(db)
    # an accepted on-demand request not started yet
    waiting_customer = make_customer(db, "Wendy Waiting")
    accepted = paid_with_credit(db, waiting_customer, "diagnostic")
    accept(db, mechanic, accepted["request_id"])
    # two future bookings, paid with credit
    booked = [_credit_booking(db, mechanic, admin, d) for d in (5, 6)]
    # a request that names it as the preferred mechanic: an offer waits for it
    preferring = make_customer(db, "Pia Preferring")
    preferred = request_free(db, preferring, p_preferred_mechanic_id=mechanic)
    offers_before = db.scalar(
        "select count(*) from public.session_offers where mechanic_id = %s and status in ('offered', 'queued')",
        (mechanic,),
    )
    assert offers_before >= 1
    with db.as_user(admin):
        out = db.rpc("admin_suspend_mechanic", p_mechanic_id=mechanic, p_reason="Licence expired")
    assert out["released_requests"] == [accepted["request_id"]]
    assert sorted(out["cancelled_sessions"]) == sorted(b["session_id"] for _, b in booked)
    assert out["offers_withdrawn"] == offers_before and out["payouts_held"] is True
    m = db.one("select status::text, is_available, payouts_held from public.mechanics where id = %s", (mechanic,))
    assert m == {"status": "suspended", "is_available": False, "payouts_held": True}
    assert db.scalar("select presence from public.mechanic_presence where mechanic_id = %s", (mechanic,)) in (
        None,
        "offline",
    )
    # the accepted request is back in the queue, released by the system (not counted against it)
    assert db.one(
        "select r.status::text as r, s.status::text as s, r.mechanic_id from public.session_requests r"
        " join public.sessions s on s.id = r.session_id where r.id = %s",
        (accepted["request_id"],),
    ) == {"r": "pending", "s": "pending", "mechanic_id": None}
    assert (
        db.scalar("select by_system from private.request_releases where request_id = %s", (accepted["request_id"],))
        is True
    )
    assert (
        db.scalar(
            "select count(*) from realtime.messages where event = 'request_released' and payload ->> 'request_id' = %s",
            (accepted["request_id"],),
        )
        >= 1
    )
    assert (
        db.scalar("select status::text from public.payments where session_id = %s", (accepted["session_id"],))
        == "succeeded"
    )  # still paid for: another mechanic can take it
    # the bookings are cancelled, refunded to credit, each customer emailed
    for customer, b in booked:
        assert db.scalar("select status::text from public.sessions where id = %s", (b["session_id"],)) == "cancelled"
        assert db.scalar("select private.credit_balance(%s)", (customer,)) == 999
        assert (
            db.scalar(
                "select count(*) from private.outbox where payload ->> 'template' = 'booking_cancelled'"
                " and payload ->> 'user_id' = %s",
                (str(customer),),
            )
            == 1
        )
    # the offer waiting for it is withdrawn
    assert (
        db.scalar(
            "select count(*) from public.session_offers where mechanic_id = %s and status in ('offered', 'queued')",
            (mechanic,),
        )
        == 0
    )
    assert db.scalar("select status::text from public.session_requests where id = %s", (preferred["request_id"],)) in (
        "pending",
        "unattended",
    )
    audit = db.one(
        "select admin_id, action, subject_type, reason, data from private.admin_actions where subject_id = %s",
        (mechanic,),
    )
    assert (audit["admin_id"], audit["action"], audit["subject_type"], audit["reason"]) == (
        admin,
        "mechanic.suspend",
        "mechanic",
        "Licence expired",
    )
    assert audit["data"]["released_requests"] == [accepted["request_id"]]
    books_balance(db)
    # a suspended mechanic cannot take it back, go online, be booked, be preferred or get offers
    with db.as_user(mechanic):
        assert db.rpc_error("accept_request", p_request_id=accepted["request_id"]) == "AD003"
        assert db.rpc_error("start_session", p_session_id=accepted["session_id"]) in ("AD004", "AD006")
        assert db.rpc_error("set_online", p_online=True) == "AD003"
    later = make_customer(db, "Leo Later")
    with db.as_user(later):
        assert (
            db.rpc_error("hold_slot", p_mechanic_id=mechanic, p_start=at(future_day(8), "10:00"), p_plan_code="free")
            == "AD004"
        )
    assert (
        db.scalar(
            "select count(*) from public.mechanic_commitments where mechanic_id = %s"
            " and status in ('held', 'confirmed')",
            (mechanic,),
        )
        == 0
    )
    other = make_customer(db, "Otis Other")
    intake = make_intake(db, other)
    with db.as_user(other):
        err = db.rpc_error("request_session", p_plan_code="free", p_intake_id=intake, p_preferred_mechanic_id=mechanic)
    assert err == "AD004"  # a suspended mechanic cannot be preferred
    # a request naming nobody is offered to others, never to it
    rival = make_mechanic(db, name="Rita Rival")
    with db.as_user(rival):
        db.rpc("set_online", p_online=True)
    anyone = make_customer(db, "Ann Anyone")
    fresh = request_free(db, anyone)
    assert (
        db.scalar(
            "select count(*) from public.session_offers where request_id = %s and mechanic_id = %s",
            (fresh["request_id"], rival),
        )
        == 1
    )
    assert (
        db.scalar(
            "select count(*) from public.session_offers where request_id = %s and mechanic_id = %s",
            (fresh["request_id"], mechanic),
        )
        == 0
    )
    assert (
        db.scalar(
            "select count(*) from public.session_offers where mechanic_id = %s and status in ('offered', 'queued')",
            (mechanic,),
        )
        == 0
    )
    # reinstating: standing back, nothing cancelled comes back
    with db.as_user(admin):
        back = db.rpc("admin_reinstate_mechanic", p_mechanic_id=mechanic, p_note="Renewed licence checked")
    assert back["status"] == "approved" and back["payouts_held"] is False
    assert db.one(
        "select status::text, is_available, payouts_held from public.mechanics where id = %s", (mechanic,)
    ) == {"status": "approved", "is_available": False, "payouts_held": False}
    for _, b in booked:
        assert db.scalar("select status::text from public.sessions where id = %s", (b["session_id"],)) == "cancelled"
    assert [
        r["action"]
        for r in db.all("select action from private.admin_actions where subject_id = %s order by id", (mechanic,))
    ] == ["mechanic.suspend", "mechanic.reinstate"]


def test_live_session_runs_to_its_end_and_payouts_wait_for_reinstatement(db: Db) -> None:
    mechanic, admin, customer = _mechanic(db), make_admin(db), make_customer(db)
    out = paid_with_credit(db, customer, "diagnostic")
    accept(db, mechanic, out["request_id"])
    sid = out["session_id"]
    start_both(db, sid)
    take_part(db, sid)
    with db.as_user(admin):
        res = db.rpc("admin_suspend_mechanic", p_mechanic_id=mechanic, p_reason="Complaint under review")
    assert res["live_sessions"] == 1 and res["released_requests"] == [] and res["cancelled_sessions"] == []
    assert db.scalar("select status::text from public.sessions where id = %s", (sid,)) == "live"
    with db.as_user(customer):
        assert db.rpc("end_session", p_session_id=sid)["status"] == "completed"
    release_hold(db, sid)  # the objection window is over: the hold of the suspension keeps it waiting
    payouts = db.all("select status::text, waiting_reason from public.payouts where mechanic_id = %s", (mechanic,))
    assert [p["status"] for p in payouts] == ["waiting"]
    with db.as_user(admin):
        back = db.rpc("admin_reinstate_mechanic", p_mechanic_id=mechanic)
    assert back["payouts_queued"] == 1 and back["payouts_waiting"] == []
    assert db.scalar("select status::text from public.payouts where mechanic_id = %s", (mechanic,)) == "queued"
    books_balance(db)


def test_admin_only_and_state_checks(db: Db) -> None:
    mechanic, admin, customer = make_mechanic(db), make_admin(db), make_customer(db)
    applicant, other = make_mechanic(db, approved=False), make_mechanic(db)
    for user in (mechanic, other, customer, applicant):
        with db.as_user(user):
            assert db.rpc_error("admin_suspend_mechanic", p_mechanic_id=mechanic, p_reason="x") == "AD003"
            assert db.rpc_error("admin_reinstate_mechanic", p_mechanic_id=mechanic) == "AD003"
    with db.as_user(admin):
        assert db.rpc_error("admin_suspend_mechanic", p_mechanic_id=mechanic, p_reason=" ") == "AD001"
        assert db.rpc_error("admin_suspend_mechanic", p_mechanic_id=applicant, p_reason="x") == "AD265"
        assert db.rpc_error("admin_reinstate_mechanic", p_mechanic_id=mechanic) == "AD266"
        assert db.rpc_error("admin_suspend_mechanic", p_mechanic_id=uuid.uuid4(), p_reason="x") == "AD004"
        db.rpc("admin_suspend_mechanic", p_mechanic_id=mechanic, p_reason="x")
        assert db.rpc_error("admin_suspend_mechanic", p_mechanic_id=mechanic, p_reason="x") == "AD265"
    assert db.scalar("select status::text from public.mechanics where id = %s", (mechanic,)) == "suspended"
    assert db.scalar("select count(*) from private.admin_actions where subject_id = %s", (mechanic,)) == 1


@pytest.fixture
def race_world(fresh_url: str) -> Any:
    with psycopg.connect(fresh_url, prepare_threshold=None) as conn:
        conn.execute("select 1")
        db = Db(conn)
        admin = make_admin(db)
        mechanics = [make_mechanic(db, name=f"Racer {i}") for i in range(6)]
        requests = []
        for i in range(6):
            customer = make_customer(db, f"Racing customer {i}")
            requests.append(request_free(db, customer, intake=make_intake(db, customer))["request_id"])
        conn.commit()
    conns = [psycopg.connect(fresh_url, autocommit=True, prepare_threshold=None) for _ in range(2)]
    check = psycopg.connect(fresh_url, autocommit=True, prepare_threshold=None)
    yield admin, mechanics, requests, conns, Db(check)
    for c in [*conns, check]:
        c.close()


def test_suspension_racing_an_accept_leaves_no_accepted_work(race_world: Any) -> None:
    """Whichever commits first, a suspended mechanic holds no accepted request: an accept that wins
    is released by the suspension, one that loses is refused."""
    admin, mechanics, requests, (c1, c2), check = race_world
    for mechanic, request in zip(mechanics, requests, strict=True):
        results = race(
            [
                (c1, mechanic, "select public.accept_request(%s)", (request,)),
                (c2, admin, "select public.admin_suspend_mechanic(%s, 'racing')", (mechanic,)),
            ]
        )
        assert results[1][0] == "ok", results
        assert results[0][0] == "ok" or results[0][1] == "AD003", results
        assert check.scalar("select status::text from public.mechanics where id = %s", (mechanic,)) == "suspended"
        assert (
            check.scalar(
                "select count(*) from public.session_requests where mechanic_id = %s and status = 'accepted'",
                (mechanic,),
            )
            == 0
        )
        assert check.scalar("select status::text from public.session_requests where id = %s", (request,)) == "pending"
        assert (
            check.scalar(
                "select count(*) from public.sessions where mechanic_id = %s and status = 'waiting'", (mechanic,)
            )
            == 0
        )


def test_suspension_takes_the_mechanic_off_its_workshop_appointments(db: Db) -> None:
    c = make_cast(db)
    start = appointment_at(appointment_day(4), "10:00")
    appt = confirmed(db, c, start, mechanic=c.shop.mechanic)
    commitment = db.scalar("select commitment_id from public.workshop_appointments where id = %s", (appt,))
    assert commitment is not None
    with db.as_user(c.admin):
        out = db.rpc("admin_suspend_mechanic", p_mechanic_id=c.shop.mechanic, p_reason="Insurance lapsed")
    assert out["appointments_unassigned"] == [str(appt)]
    assert db.one(
        "select status::text, mechanic_id, commitment_id from public.workshop_appointments where id = %s", (appt,)
    ) == {"status": "confirmed", "mechanic_id": None, "commitment_id": None}
    assert db.scalar("select status::text from public.mechanic_commitments where id = %s", (commitment,)) == "released"
    # the workshop assigns another of its mechanics; the suspended one cannot be assigned back
    as_(db, c.shop.dispatcher, "assign_appointment_mechanic", p_appointment_id=appt, p_mechanic_id=c.shop.mechanic2)
    assert db.scalar("select mechanic_id from public.workshop_appointments where id = %s", (appt,)) == c.shop.mechanic2
    assert (
        appointment_err(
            db, c.shop.dispatcher, "assign_appointment_mechanic", p_appointment_id=appt, p_mechanic_id=c.shop.mechanic
        )
        == "AD175"
    )  # no longer an approved mechanic of it
