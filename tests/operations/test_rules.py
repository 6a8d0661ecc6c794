"""Rules: a manual assignment is an offer the mechanic may decline; the listing shows who can take
a session now; support hears of an unstarted session at 2 minutes; a micro-session's limit is hard;
Connect accounts are Standard (tests/payments/test_connect.py pins the account type)."""

from __future__ import annotations

import datetime as dt
import os
import threading
import uuid
from pathlib import Path

import psycopg
import pytest

from shared import email as mail
from shared.config import get_settings
from tests.support.delivery import start_both
from tests.support.factories import (
    World,
    accept,
    make_admin,
    make_customer,
    make_intake,
    make_mechanic,
    make_world,
    request_free,
)
from tests.support.harness import Db
from tests.support.personas import call_as


def now_of(db: Db) -> dt.datetime:
    value: dt.datetime = db.scalar("select now()")
    return value


# ------------------------------------------------------------------------------------------------
# the support alert fires at 2 minutes
# ------------------------------------------------------------------------------------------------
def test_support_alert_fires_at_two_minutes_and_not_before(db: Db) -> None:
    assert (
        db.scalar("select value #>> '{}' from private.settings where key = 'nudges.support_alert_after'") == "2 minutes"
    )
    w = make_world(db)
    accept(db, w.mechanic, w.request)
    t0 = db.scalar("select status_changed_at from public.sessions where id = %s", (w.session,))
    just_before = t0 + dt.timedelta(minutes=2) - dt.timedelta(seconds=1)
    assert db.scalar("select private.send_nudges(%s)", (just_before,))["alerted"] == 0
    assert (
        db.scalar("select count(*) from private.outbox where dedupe_key = %s", (f"email:support_alert:{w.session}",))
        == 0
    )
    assert db.scalar("select private.send_nudges(%s)", (t0 + dt.timedelta(minutes=2),))["alerted"] == 1
    assert (
        db.scalar("select count(*) from private.outbox where dedupe_key = %s", (f"email:support_alert:{w.session}",))
        == 1
    )
    assert (
        db.scalar(
            "select count(*) from realtime.messages where topic = 'admin:queue' and event = 'alert'"
            " and payload->>'session_id' = %s",
            (str(w.session),),
        )
        == 1
    )
    # once
    assert db.scalar("select private.send_nudges(%s)", (t0 + dt.timedelta(minutes=3),))["alerted"] == 0


# ------------------------------------------------------------------------------------------------
# a micro-session's limit is hard: no grace, no unpaid minutes
# ------------------------------------------------------------------------------------------------
def _live_micro(db: Db) -> tuple[World, uuid.UUID, dt.datetime]:
    w = make_world(db)
    accept(db, w.mechanic, w.request)
    start_both(db, w.session)
    s = db.one(
        "select status::text, duration_type::text, planned_minutes, deadline_at from public.sessions where id = %s",
        (w.session,),
    )
    assert (s["status"], s["duration_type"]) == ("live", "micro")
    return w, w.session, s["deadline_at"]


def test_micro_session_ends_at_its_deadline_without_grace(db: Db) -> None:
    _w, session, deadline = _live_micro(db)
    assert db.scalar("select private.end_overdue_sessions(%s)", (deadline - dt.timedelta(seconds=1),)) == {"ended": 0}
    assert db.scalar("select private.end_overdue_sessions(%s)", (deadline,)) == {"ended": 1}
    row = db.one(
        "select status::text, cancel_reason, planned_minutes, extension_minutes from public.sessions where id = %s",
        (session,),
    )
    assert (row["status"], row["cancel_reason"]) == ("completed", "time cap reached")
    usage = db.one(
        "select reserved_minutes, actual_minutes from public.micro_minute_usage where session_id = %s", (session,)
    )
    # every minute the mechanic spent is a minute counted (and paid): the planned ones, no more
    assert usage["actual_minutes"] == row["planned_minutes"] + row["extension_minutes"] == usage["reserved_minutes"]


def test_micro_cap_holds_across_the_deadline(db: Db) -> None:
    """A mechanic with a cap of exactly one micro-session cannot be kept working past it: the session
    ends at the deadline (no 2-minute grace), and the day's counted minutes equal the cap."""
    w, session, deadline = _live_micro(db)
    planned = db.scalar("select planned_minutes from public.sessions where id = %s", (session,))
    db.execute("update public.mechanics set daily_micro_minutes_cap = %s where id = %s", (planned, w.mechanic))
    # one minute into what used to be the grace: the session is over
    db.scalar("select private.end_overdue_sessions(%s)", (deadline + dt.timedelta(minutes=1),))
    assert db.scalar("select status::text from public.sessions where id = %s", (session,)) == "completed"
    # counted on the local day of the accept (now() in this transaction)
    assert db.scalar("select private.micro_minutes_used(%s)", (w.mechanic,)) == planned
    assert db.scalar("select private.micro_cap(%s)", (w.mechanic,)) == planned


def test_full_sessions_keep_their_grace(db: Db) -> None:
    _w, session, deadline = _live_micro(db)
    db.execute("update public.sessions set duration_type = 'standard' where id = %s", (session,))
    grace = db.scalar("select private.setting_interval('sessions.deadline_grace')")
    assert db.scalar("select private.end_overdue_sessions(%s)", (deadline + grace - dt.timedelta(seconds=1),)) == {
        "ended": 0
    }
    assert db.scalar("select private.end_overdue_sessions(%s)", (deadline + grace,)) == {"ended": 1}


# ------------------------------------------------------------------------------------------------
# a manual assignment is an offer, not an order
# ------------------------------------------------------------------------------------------------
def _offer(db: Db, w: World, mechanic: uuid.UUID) -> dict[str, object]:
    with db.as_user(w.admin):
        answer: dict[str, object] = db.rpc("admin_assign_request", p_request_id=w.request, p_mechanic_id=mechanic)
    return answer


def _request(db: Db, request: uuid.UUID) -> dict[str, object]:
    row: dict[str, object] = db.one(
        "select r.status::text as status, r.mechanic_id, r.offered_mechanic_id,"
        " r.broadcast_at, s.status::text as session_status, s.mechanic_id as session_mechanic"
        " from public.session_requests r join public.sessions s on s.id = r.session_id"
        " where r.id = %s",
        (request,),
    )
    return row


def test_admin_offer_does_not_assign_until_the_mechanic_accepts(db: Db) -> None:
    w = make_world(db)
    t0 = now_of(db)
    answer = _offer(db, w, w.other_mechanic)
    assert answer["status"] == "offered" and answer["mechanic_id"] == str(w.other_mechanic)
    window = db.scalar("select private.setting_interval('matching.admin_offer_window')")
    assert window == dt.timedelta(minutes=10)
    row = _request(db, w.request)
    assert (row["status"], row["mechanic_id"], row["session_status"], row["session_mechanic"]) == (
        "pending",
        None,
        "pending",
        None,
    )
    assert row["offered_mechanic_id"] == w.other_mechanic and row["broadcast_at"] == t0 + window
    offer = db.one(
        "select status::text, expires_at from public.session_offers where request_id = %s and mechanic_id = %s",
        (w.request, w.other_mechanic),
    )
    assert offer == {"status": "offered", "expires_at": t0 + window}
    # the mechanic hears of it; the customer is told (event and email); the admin's action is audited
    # (it may have had a targeted offer when the request was filed: the admin's offer is announced anew)
    sent = [
        r["payload"]
        for r in db.all(
            "select payload from realtime.messages where topic = %s and event = 'offer'",
            (f"mechanic:{w.other_mechanic}",),
        )
    ]
    assert [p["request_id"] for p in sent if p["offered_by_admin"]] == [str(w.request)]
    [told] = db.all(
        "select payload from realtime.messages where topic = %s and event = 'request_offered'",
        (f"session:{w.session}",),
    )
    assert told["payload"]["mechanic_id"] == str(w.other_mechanic) and "email" not in told["payload"]
    assert (
        db.scalar(
            "select count(*) from private.outbox where payload->>'template' = 'request_offered'"
            " and payload->>'user_id' = %s",
            (str(w.customer),),
        )
        == 1
    )
    audit = db.one(
        "select admin_id, action, subject_type, subject_id, data from private.admin_actions"
        " where action = 'request.offer'"
    )
    assert audit == {
        "admin_id": w.admin,
        "action": "request.offer",
        "subject_type": "request",
        "subject_id": w.request,
        "data": {"mechanic_id": str(w.other_mechanic)},
    }
    # it accepts: now it is assigned
    with db.as_user(w.other_mechanic):
        assert db.rpc("accept_request", p_request_id=w.request)["status"] == "accepted"
    row = _request(db, w.request)
    assert (row["status"], row["mechanic_id"], row["session_status"]) == ("accepted", w.other_mechanic, "waiting")


def test_others_cannot_take_an_offered_request_during_the_window(db: Db) -> None:
    w = make_world(db)
    _offer(db, w, w.other_mechanic)
    with db.as_user(w.mechanic):
        assert db.rpc_error("accept_request", p_request_id=w.request) == "AD009"
        # nor see it: the request exists (the admin sees it) but not for this mechanic
        assert db.scalar("select count(*) from public.session_requests where id = %s", (w.request,)) == 0
    with db.as_user(w.other_mechanic):
        assert db.scalar("select count(*) from public.session_requests where id = %s", (w.request,)) == 1
    with db.as_user(w.admin):
        assert db.scalar("select count(*) from public.session_requests where id = %s", (w.request,)) == 1
    assert _request(db, w.request)["status"] == "pending"


def test_declining_an_offer_reopens_the_request_to_everyone(db: Db) -> None:
    w = make_world(db)
    _offer(db, w, w.other_mechanic)
    with db.as_user(w.other_mechanic):
        assert db.rpc("decline_offer", p_request_id=w.request)["status"] == "declined"
    assert db.scalar("select broadcast_at <= now() from public.session_requests where id = %s", (w.request,))
    assert _request(db, w.request)["mechanic_id"] is None
    with db.as_user(w.mechanic):
        assert db.rpc("accept_request", p_request_id=w.request)["status"] == "accepted"


def test_after_the_window_the_request_is_broadcast(db: Db) -> None:
    w = make_world(db)
    _offer(db, w, w.other_mechanic)
    later = now_of(db) + dt.timedelta(minutes=10, seconds=1)
    db.execute("delete from realtime.messages where topic = 'mechanics:requests'")
    db.scalar("select private.dispatch_due(%s)", (later,))
    assert (
        db.scalar(
            "select status::text from public.session_offers where request_id = %s and mechanic_id = %s",
            (w.request, w.other_mechanic),
        )
        == "expired"
    )
    assert (
        db.scalar(
            "select count(*) from public.session_offers where request_id = %s and mechanic_id is null", (w.request,)
        )
        == 1
    )
    assert (
        db.scalar(
            "select count(*) from realtime.messages where topic = 'mechanics:requests'"
            " and event = 'new_request' and payload->>'request_id' = %s",
            (str(w.request),),
        )
        == 1
    )
    assert (
        db.scalar("select private.assign_request(%s, %s, %s)", (w.request, w.mechanic, later))["status"] == "accepted"
    )


def test_a_mechanic_who_cannot_take_it_cannot_be_offered_it(db: Db) -> None:
    w = make_world(db)
    suspended = make_mechanic(db, name="Sam Suspended")
    db.execute("update public.mechanics set status = 'suspended' where id = %s", (suspended,))
    busy = make_mechanic(db, name="Bea Busy")
    accept(db, busy, request_free(db, make_customer(db, "Other Customer"))["request_id"])
    full_only = make_mechanic(db, name="Finn Full", participation_mode="full_only")
    with db.as_user(w.admin):
        for mechanic, reason in (
            (w.pending_mechanic, "not_approved"),
            (suspended, "not_approved"),
            (busy, "busy"),
            (full_only, "participation_mode"),
        ):
            err = db.error("select public.admin_assign_request(%s, %s)", (w.request, mechanic))
            assert err.sqlstate == "AD275" and reason in str(err), (mechanic, str(err))
    assert (
        db.scalar(
            "select count(*) from public.session_offers where request_id = %s and status = 'offered'"
            " and mechanic_id in (%s, %s, %s, %s)",
            (w.request, w.pending_mechanic, suspended, busy, full_only),
        )
        == 0
    )
    assert db.scalar("select count(*) from private.admin_actions where action = 'request.offer'") == 0
    assert _request(db, w.request)["offered_mechanic_id"] is None


# ------------------------------------------------------------------------------------------------
# the listing shows who can take the session now; a preferred mechanic must be able to accept
# ------------------------------------------------------------------------------------------------
def _online(db: Db, *mechanics: uuid.UUID) -> None:
    for m in mechanics:
        db.execute("update public.mechanics set is_available = true, last_seen_at = now() where id = %s", (m,))


def test_listing_shows_only_who_can_take_the_session_now(db: Db) -> None:
    customer = make_customer(db)
    free = make_mechanic(db, name="Fay Free")
    busy = make_mechanic(db, name="Bo Busy")
    offline = make_mechanic(db, name="Ollie Offline")
    micro_only = make_mechanic(db, name="Mia Micro", participation_mode="micro_only")
    full_only = make_mechanic(db, name="Finn Full", participation_mode="full_only")
    capped = make_mechanic(db, name="Cal Capped", daily_micro_minutes_cap=0)
    _online(db, free, busy, micro_only, full_only, capped)
    accept(db, busy, request_free(db, make_customer(db, "Busy's Customer"))["request_id"])
    _online(db, busy)

    def listed(session_type: str | None) -> set[uuid.UUID]:
        with db.as_user(customer):
            return {
                r["id"]
                for r in db.all(
                    "select id, presence from public.available_mechanics(%s, p_limit => 100)", (session_type,)
                )
            }

    everyone = listed(None)
    assert {free, micro_only, full_only, capped} <= everyone
    assert busy not in everyone and offline not in everyone  # both exist: approved mechanics
    assert (
        db.scalar("select count(*) from public.mechanics where id in (%s, %s) and status = 'approved'", (busy, offline))
        == 2
    )
    micro = listed("micro")
    assert free in micro and micro_only in micro and full_only not in micro and capped not in micro
    chat = listed("chat")
    assert free in chat and full_only in chat and capped in chat and micro_only not in chat
    with db.as_user(customer):
        assert {r["presence"] for r in db.all("select presence from public.available_mechanics(p_limit => 100)")} == {
            "online"
        }


def test_preferred_mechanic_must_be_able_to_take_the_session(db: Db) -> None:
    full_only = make_mechanic(db, name="Finn Full", participation_mode="full_only")
    capped = make_mechanic(db, name="Cal Capped", daily_micro_minutes_cap=0)
    fine = make_mechanic(db, name="Fay Fine")
    for mechanic, reason in ((full_only, "participation_mode"), (capped, "daily_cap_reached")):
        customer = make_customer(db)
        intake = make_intake(db, customer)
        with db.as_user(customer):
            err = db.error("select public.request_session('free', %s, null, %s)", (intake, mechanic))
        assert err.sqlstate == "AD276" and reason in str(err)
        assert db.scalar("select count(*) from public.session_requests where customer_id = %s", (customer,)) == 0
    customer = make_customer(db)
    intake = make_intake(db, customer)
    with db.as_user(customer):
        assert db.rpc("request_session", p_plan_code="free", p_intake_id=intake, p_preferred_mechanic_id=fine)


# ------------------------------------------------------------------------------------------------
# the customer's email of an admin's offer
# ------------------------------------------------------------------------------------------------
GOLDEN = Path(__file__).parents[1] / "support" / "golden" / "emails"
OFFER_CONTEXT = {
    "name": "Casey <b>Customer</b>",
    "timezone": "America/Toronto",
    "marketing_emails": True,
    "offered_mechanic_name": "Morgan & Sons",
    "offer_until": "2026-03-08T06:40:00+00:00",
    "session": {
        "id": "00000000-0000-4000-8000-00000000e111",
        "plan": "Quick Chat (5 min)",
        "session_type": "chat",
        "status": "pending",
        "vehicle": "2018 Honda Civic",
    },
}


def test_request_offered_matches_golden_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_URL", "https://app.autodoctor.test")
    get_settings.cache_clear()
    rendered = mail.render("request_offered", OFFER_CONTEXT)
    get_settings.cache_clear()
    assert "Morgan &amp; Sons" in rendered.html and "Casey &lt;b&gt;Customer&lt;/b&gt;" in rendered.html
    assert rendered.subject == "Your request was offered to Morgan & Sons"
    for ext, content in (("html", rendered.html), ("txt", rendered.text)):
        path = GOLDEN / f"request_offered.{ext}"
        full = f"Subject: {rendered.subject}\n\n{content}"
        if os.environ.get("UPDATE_GOLDEN"):
            path.write_text(full)
        assert full == path.read_text(), f"{path} differs (UPDATE_GOLDEN=1 to accept a deliberate change)"


# ------------------------------------------------------------------------------------------------
# an admin's offer races another mechanic's accept: one wins, never both, no deadlock
# ------------------------------------------------------------------------------------------------
def test_an_offer_and_an_accept_race_cleanly(fresh_url: str) -> None:
    rounds = 8
    with psycopg.connect(fresh_url) as conn:
        conn.execute("select 1")
        d = Db(conn)
        admin = make_admin(d)
        offered, other = make_mechanic(d, name="Olga Offered"), make_mechanic(d, name="Tom Taker")
        # every round is a micro-session Tom may win: a cap that holds them all, so each refusal
        # he gets is the race's (the window), never his daily micro minutes
        d.execute("update public.mechanics set daily_micro_minutes_cap = 600 where id = %s", (other,))
        requests = []
        for i in range(rounds):
            c = make_customer(d, f"Racer {i}")
            requests.append(uuid.UUID(request_free(d, c, intake=make_intake(d, c))["request_id"]))
        conn.commit()
    conns = [psycopg.connect(fresh_url, autocommit=True) for _ in range(2)]
    try:
        for request in requests:
            barrier = threading.Barrier(2)
            results: list[tuple[str, object]] = [("", None), ("", None)]

            def run(
                k: int,
                request: uuid.UUID = request,
                barrier: threading.Barrier = barrier,
                results: list[tuple[str, object]] = results,
            ) -> None:
                barrier.wait()
                if k == 0:
                    results[k] = call_as(
                        conns[0], admin, "select public.admin_assign_request(%s, %s)", (request, offered)
                    )
                else:
                    results[k] = call_as(conns[1], other, "select public.accept_request(%s)", (request,))

            threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            (offer_outcome, offer_value), (accept_outcome, accept_value) = results
            assert [offer_outcome, accept_outcome].count("ok") == 1, results  # exactly one wins
            row = (
                conns[0]
                .execute(
                    "select status::text, mechanic_id, offered_mechanic_id from public.session_requests where id = %s",
                    (request,),
                )
                .fetchone()
            )
            assert row is not None
            if offer_outcome == "ok":
                assert accept_value == "AD009" and row == ("pending", None, offered)
            else:
                assert offer_value == "AD009" and row == ("accepted", other, None)
            # the other mechanic is free again for the next round
            conns[1].execute("update public.mechanic_commitments set status = 'done' where mechanic_id = %s", (other,))
    finally:
        for c in conns:
            c.close()
