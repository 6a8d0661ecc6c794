"""Delivery events: resend_webhook's Svix signatures (made with the svix library itself), the event
ledger (duplicates, also concurrent), each event kind, out-of-order events, events of unknown
emails, hostile bodies, the suppression of hard-bounced and complaining addresses through the real
worker path (marketing mail skipped, transactional mail sent), and the admin RPCs per persona."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from shared import worker
from shared.config import get_settings
from tests.support.factories import accept, make_admin, make_customer, make_world
from tests.support.harness import Db
from tests.support.journey_email_events import (
    OTHER_SECRET,
    Resend,
    bounce,
    event,
    msg_id,
    post,
    resend_world,
    send,
    sign,
)


def now() -> dt.datetime:
    """The time of the call: signatures are checked against the clock when they arrive, so a
    timestamp made when the module was imported would grow stale in a long run."""
    return dt.datetime.now(dt.UTC)


@pytest.fixture
def resend(fresh_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Resend]:
    with resend_world(fresh_url, monkeypatch) as world:
        yield world


def _ok(result: tuple[int, Any], outcome: str) -> dict[str, Any]:
    status, body = result
    assert status == 200, body
    assert body["received"] is True and body["outcome"] == outcome, body
    return dict(body)


# ---------------------------------------------------------------------------------------------
# Signatures: nothing is stored unless the event is Resend's
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "case",
    [
        "wrong_secret",
        "tampered",
        "stale",
        "future",
        "no_id",
        "no_timestamp",
        "no_signature",
        "no_headers",
        "malformed",
        "v2_only",
        "other_id",
        "bad_timestamp",
        "huge_header",
    ],
)
def test_bad_signatures_are_refused_and_nothing_is_stored(resend: Resend, case: str) -> None:
    email = resend.sent_email()
    evt = event("email.delivered", email)
    payload = json.dumps(evt)
    headers = sign(payload)
    old = now() - dt.timedelta(seconds=301)
    if case == "wrong_secret":
        headers = sign(payload, secret=OTHER_SECRET)
    elif case == "tampered":
        headers = sign(payload.replace("email.delivered", "email.bounced"))
    elif case == "stale":
        headers = sign(payload, timestamp=old)
    elif case == "future":
        headers = sign(payload, timestamp=now() + dt.timedelta(seconds=400))
    elif case in ("no_id", "no_timestamp", "no_signature"):
        del headers[{"no_id": "svix-id", "no_timestamp": "svix-timestamp", "no_signature": "svix-signature"}[case]]
    elif case == "no_headers":
        headers = {}
    elif case == "malformed":
        headers["svix-signature"] = "not-a-signature"
    elif case == "v2_only":
        headers["svix-signature"] = headers["svix-signature"].replace("v1,", "v2,")
    elif case == "other_id":
        headers["svix-id"] = msg_id()  # the id is signed too: a replay under a new id fails
    elif case == "bad_timestamp":
        headers["svix-timestamp"] = "yesterday"
    elif case == "huge_header":
        headers["svix-signature"] = headers["svix-signature"] + " v1," + "A" * 5000
    before = resend.state()
    status, body = post(payload, headers)
    assert status == 400 and body["code"] == "AD020" and body["error"] == "invalid_signature", body
    assert resend.state() == before
    assert resend.delivery(email)["status"] == "sent"
    # the very same event, correctly signed, is then accepted (the refusal was the signature's)
    _ok(send(evt), "applied")
    assert resend.delivery(email)["status"] == "delivered"


def test_a_signature_inside_the_tolerance_and_among_several_is_accepted(resend: Resend) -> None:
    email = resend.sent_email()
    payload = json.dumps(event("email.delivered", email))
    headers = sign(payload, timestamp=now() - dt.timedelta(seconds=240))
    other = sign(payload, secret=OTHER_SECRET, svix_id=headers["svix-id"], timestamp=now() - dt.timedelta(seconds=240))
    headers["svix-signature"] = f"{other['svix-signature']} {headers['svix-signature']}"  # a rotated secret
    status, body = post(payload, headers)
    assert status == 200 and body["outcome"] == "applied" and body["event_id"] == headers["svix-id"]


@pytest.mark.parametrize("secret", [None, "", "whsec_%%%not-base64%%%"])
def test_without_a_usable_secret_it_fails_closed(
    resend: Resend, monkeypatch: pytest.MonkeyPatch, secret: str | None
) -> None:
    email = resend.sent_email()
    if secret is None:
        monkeypatch.delenv("RESEND_WEBHOOK_SECRET")
    else:
        monkeypatch.setenv("RESEND_WEBHOOK_SECRET", secret)
    get_settings.cache_clear()
    before = resend.state()
    status, body = send(event("email.bounced", email, **bounce()))
    assert status == 503 and body["code"] == "AD240" and body["error"] == "email_events_not_configured"
    assert resend.state() == before


def test_method_and_size_limits(resend: Resend) -> None:
    assert post("", {}, method="GET")[0] == 405
    big = json.dumps({**event("email.delivered", resend.sent_email()), "pad": "x" * (300 * 1024)})
    status, body = post(big, sign(big))
    assert status == 413 and body["error"] == "body_too_large"
    assert resend.state()["resend_events"] == 0


# ---------------------------------------------------------------------------------------------
# Hostile bodies, correctly signed: coded errors, nothing written
# ---------------------------------------------------------------------------------------------
def _hostile_bodies() -> list[str]:
    good = event("email.bounced", "em_x", **bounce())
    bodies = [
        "{not json",
        "[1, 2]",
        '"just a string"',
        "null",
        "{}",
        json.dumps({**good, "type": 12}),
        json.dumps({**good, "type": ""}),
        json.dumps({**good, "type": "x" * 201}),
        json.dumps({**good, "created_at": "yesterday"}),
        json.dumps({**good, "created_at": "now"}),
        json.dumps({**good, "created_at": 1700000000}),
        json.dumps({**good, "created_at": "2026-13-45T99:00:00Z"}),
        json.dumps({k: v for k, v in good.items() if k != "created_at"}),
        json.dumps({**good, "data": "x"}),
        json.dumps({**good, "data": [1]}),
        json.dumps({k: v for k, v in good.items() if k != "data"}),
    ]
    for bad_id in (12, None, "", "e" * 201, ["em_x"], {"id": "em_x"}):
        bodies.append(json.dumps({**good, "data": {**good["data"], "email_id": bad_id}}))
    bodies.append(json.dumps({**good, "data": {**good["data"], "bounce": "Permanent"}}))
    bodies.append(json.dumps({**good, "data": {**good["data"], "bounce": ["Permanent"]}}))
    bodies.append(json.dumps({**good, "data": {**good["data"], "subject": "nul \u0000 byte"}}))
    return bodies


@pytest.mark.parametrize("payload", _hostile_bodies())
def test_signed_but_hostile_bodies_get_a_coded_error_and_write_nothing(resend: Resend, payload: str) -> None:
    email = resend.sent_email(to="victim@example.test")
    payload = payload.replace("em_x", email)
    before = resend.state()
    status, body = send(payload)
    assert status == 400 and body["code"] == "AD001" and body["error"] == "invalid_input", body
    assert resend.state() == before
    assert resend.suppressions() == []


@pytest.mark.parametrize("svix_id", ["../../etc", "msg 1", "x" * 256, "msg_ü"])
def test_a_hostile_event_id_gets_a_coded_error(resend: Resend, svix_id: str) -> None:
    email = resend.sent_email()
    before = resend.state()
    status, body = send(event("email.delivered", email), svix_id=svix_id)
    assert status == 400 and body["code"] in ("AD001", "AD020"), body
    assert resend.state() == before


# ---------------------------------------------------------------------------------------------
# Each event kind, once
# ---------------------------------------------------------------------------------------------
def test_each_event_kind_is_recorded_on_its_email(resend: Resend) -> None:
    email = resend.sent_email(to="Casey@Example.test")
    t = now() - dt.timedelta(minutes=10)
    _ok(send(event("email.sent", email, t)), "no_change")
    _ok(send(event("email.delivery_delayed", email, t + dt.timedelta(minutes=1))), "applied")
    d = resend.delivery(email)
    assert d["status"] == "delivery_delayed" and d["delivery_delayed_at"] == t + dt.timedelta(minutes=1)
    _ok(send(event("email.delivered", email, t + dt.timedelta(minutes=2))), "applied")
    d = resend.delivery(email)
    assert d["status"] == "delivered" and d["delivered_at"] == t + dt.timedelta(minutes=2)
    assert resend.suppressions() == []
    _ok(send(event("email.opened", email, t + dt.timedelta(minutes=3))), "ignored")
    _ok(send(event("domain.updated", email)), "ignored")
    _ok(send(event("email.complained", email, t + dt.timedelta(minutes=4))), "applied")
    d = resend.delivery(email)
    assert d["status"] == "complained" and d["complained_at"] == t + dt.timedelta(minutes=4)
    # the address, lower-cased, is suppressed for the complaint
    assert resend.suppressions() == [{"address": "casey@example.test", "reason": "complaint", "lifted_at": None}]
    assert resend.val("select count(*) from private.resend_events where processed_at is not null") == 6


def test_a_hard_bounce_suppresses_and_a_soft_one_does_not(resend: Resend) -> None:
    soft = resend.sent_email(to="full-mailbox@example.test")
    _ok(send(event("email.bounced", soft, **bounce("Transient"))), "applied")
    d = resend.delivery(soft)
    assert d["status"] == "bounced" and d["bounce_type"] == "Transient" and d["bounced_at"] is not None
    undetermined = resend.sent_email(to="who-knows@example.test")
    _ok(send(event("email.bounced", undetermined, **bounce("Undetermined"))), "applied")
    no_detail = resend.sent_email(to="no-detail@example.test")
    _ok(send(event("email.bounced", no_detail)), "applied")
    assert resend.suppressions() == []
    hard = resend.sent_email(to="gone@example.test")
    _ok(send(event("email.bounced", hard, **bounce("Permanent"))), "applied")
    assert resend.delivery(hard)["bounce_type"] == "Permanent"
    assert resend.suppressions() == [{"address": "gone@example.test", "reason": "hard_bounce", "lifted_at": None}]
    # a second hard bounce of the same address keeps one active suppression
    again = resend.sent_email(to="GONE@example.test")
    _ok(send(event("email.bounced", again, **bounce())), "applied")
    assert len(resend.suppressions()) == 1
    row = resend.rows(
        "select s.delivery_id, d.resend_id from private.email_suppressions s"
        " join private.email_deliveries d on d.id = s.delivery_id"
    )
    assert row == [{"delivery_id": resend.delivery(hard)["id"], "resend_id": hard}]


# ---------------------------------------------------------------------------------------------
# The ledger: once per event, also when delivered twice at once
# ---------------------------------------------------------------------------------------------
def test_the_same_event_twice_has_one_effect(resend: Resend) -> None:
    email = resend.sent_email()
    evt = event("email.bounced", email, **bounce())
    svix_id = msg_id()
    first = _ok(send(evt, svix_id=svix_id), "applied")
    before = resend.state()
    again = _ok(send(evt, svix_id=svix_id), "duplicate")
    assert again["event_id"] == first["event_id"] == svix_id and again["type"] == "email.bounced"
    assert resend.state() == before  # nothing changed, not even updated_at


def test_two_deliveries_of_one_event_at_once_apply_it_once(resend: Resend) -> None:
    email = resend.sent_email(to="race@example.test")
    payload = json.dumps(event("email.complained", email))
    headers = sign(payload)
    barrier = threading.Barrier(4)
    results: list[Any] = [None] * 4

    def run(i: int) -> None:
        barrier.wait()
        results[i] = post(payload, headers)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(r[1]["outcome"] for r in results) == ["applied", "duplicate", "duplicate", "duplicate"]
    assert resend.val("select count(*) from private.resend_events") == 1
    assert len(resend.suppressions()) == 1


# ---------------------------------------------------------------------------------------------
# Out of order: the status never moves back; each event keeps its own time
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("first", "then", "final"),
    [
        ("email.bounced", "email.delivered", "bounced"),
        ("email.delivered", "email.delivery_delayed", "delivered"),
        ("email.delivered", "email.sent", "delivered"),
        ("email.complained", "email.bounced", "complained"),
        ("email.complained", "email.delivered", "complained"),
        ("email.delivery_delayed", "email.delivered", "delivered"),
        ("email.delivered", "email.bounced", "bounced"),
    ],
)
def test_a_late_event_never_moves_the_status_back(resend: Resend, first: str, then: str, final: str) -> None:
    email = resend.sent_email()
    late = now() - dt.timedelta(minutes=5)
    extra = bounce("Transient")
    _ok(send(event(first, email, now() - dt.timedelta(minutes=1), **extra)), "applied")
    result = send(event(then, email, late, **extra))
    assert result[0] == 200
    d = resend.delivery(email)
    assert d["status"] == final
    # the late event still stamps its own time
    column = {
        "email.delivered": "delivered_at",
        "email.bounced": "bounced_at",
        "email.complained": "complained_at",
        "email.delivery_delayed": "delivery_delayed_at",
        "email.sent": "sent_at",
    }[then]
    if then != "email.sent":
        assert d[column] == late


# ---------------------------------------------------------------------------------------------
# Unknown emails: stored and ignored, applied once the email is recorded
# ---------------------------------------------------------------------------------------------
def test_events_of_unknown_emails_are_stored_and_change_nothing(resend: Resend) -> None:
    ours = resend.sent_email(to="ours@example.test")
    before = resend.state()
    _ok(send(event("email.bounced", "em_not_ours", **bounce())), "unknown_email")
    _ok(send(event("email.complained", "em_not_ours")), "unknown_email")
    after = resend.state()
    assert after["resend_events"] == before["resend_events"] + 2
    assert {k: v for k, v in after.items() if k != "resend_events"} == {
        k: v for k, v in before.items() if k != "resend_events"
    }
    assert resend.delivery(ours)["status"] == "sent" and resend.suppressions() == []


def test_an_event_that_came_before_the_send_was_recorded_applies_when_it_is(resend: Resend) -> None:
    """Resend may report a delivery before the worker has recorded the id it got back."""
    _ok(send(event("email.delivered", "em_early", now() - dt.timedelta(minutes=2))), "unknown_email")
    _ok(send(event("email.bounced", "em_early", now() - dt.timedelta(minutes=1), **bounce())), "unknown_email")
    resend.conn.rollback()
    resend.db.scalar(
        "select private.record_email_sent('em_early', 'k', 'session_ended', null, null, 'early@example.test')"
    )
    resend.commit()
    d = resend.delivery("em_early")
    assert d["status"] == "bounced" and d["delivered_at"] is not None
    assert resend.suppressions() == [{"address": "early@example.test", "reason": "hard_bounce", "lifted_at": None}]
    assert resend.val("select array_agg(outcome order by created) from private.resend_events") == ["applied", "applied"]
    # recording it again (a retried job gets the same id back) changes nothing
    resend.db.scalar(
        "select private.record_email_sent('em_early', 'k', 'session_ended', null, null, 'early@example.test')"
    )
    resend.commit()
    assert resend.val("select count(*) from private.email_deliveries") == 1


# ---------------------------------------------------------------------------------------------
# Through the real worker: ids recorded per email; a suppressed address gets no marketing mail
# ---------------------------------------------------------------------------------------------
def _complete_a_session(d: Db) -> Any:
    w = make_world(d)
    accept(d, w.mechanic, w.request)
    d.execute("update public.sessions set status = 'live', started_at = now() where id = %s", (w.session,))
    d.execute("select private.complete_session(%s, 'Rotate tires', null, now())", (w.session,))
    return w


def _jobs(resend: Resend, customer: Any) -> dict[str, dict[str, Any]]:
    rows = resend.rows(
        "select payload ->> 'template' as template, status::text, last_error, id"
        " from private.outbox where kind = 'email.send' and payload ->> 'user_id' = %s",
        (str(customer),),
    )
    return {r["template"]: r for r in rows}


def test_a_suppressed_address_gets_transactional_mail_but_no_marketing_mail(resend: Resend) -> None:
    d = resend.db
    w = _complete_a_session(d)
    address = d.scalar("select email from auth.users where id = %s", (w.customer,))
    resend.commit()
    # an earlier email to that address hard-bounced
    earlier = resend.sent_email(to=address.upper(), template="booking_confirmed", user_id=w.customer)
    _ok(send(event("email.bounced", earlier, **bounce())), "applied")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=3)  # mechanic_assigned waits for the hold
    result = worker.deliver(later, limit=100, kinds=["email.send"])
    assert result["dead"] == 0 and result["skipped"] == 1
    jobs = _jobs(resend, w.customer)
    # session_ended is not transactional: skipped, visibly; the transactional ones went
    assert jobs["session_ended"]["status"] == "skipped"
    assert "suppressed (hard_bounce)" in jobs["session_ended"]["last_error"]
    assert {t: j["status"] for t, j in jobs.items() if t != "session_ended"} == {
        "booking_confirmed": "sent",
        "mechanic_assigned": "sent",
        "summary_delivered": "sent",
    }
    subjects = [c.json()["subject"] for c in resend.stub.calls if c.json()["to"][0] == address]
    assert "How was your session with Morgan Mechanic?" not in subjects and len(subjects) == 3
    # each sent email is recorded with the id Resend gave it, its job, template, user and address
    rows = resend.rows(
        "select d.template, d.user_id, d.to_address, d.resend_id, d.outbox_id, d.status"
        " from private.email_deliveries d where d.user_id = %s and d.resend_id <> %s order by d.id",
        (w.customer, earlier),
    )
    assert sorted(r["template"] for r in rows) == ["booking_confirmed", "mechanic_assigned", "summary_delivered"]
    assert all(
        r["to_address"] == address and r["status"] == "sent" and r["resend_id"].startswith("em_stub_") for r in rows
    )
    assert {r["outbox_id"] for r in rows} == {jobs[r["template"]]["id"] for r in rows}
    # its delivery event finds it
    _ok(send(event("email.delivered", rows[0]["resend_id"])), "applied")
    assert resend.delivery(rows[0]["resend_id"])["status"] == "delivered"

    # an admin lifts the suppression: marketing mail goes again
    admin = make_admin(d)
    resend.commit()
    with d.as_user(admin):
        lifted = d.rpc("admin_lift_email_suppression", p_address=f"  {address.upper()} ", p_note="fixed the mailbox")
    assert lifted["address"] == address and lifted["reason"] == "hard_bounce"
    d.execute("select private.enqueue_email('session_ended', %s, %s, '{}', ':again')", (w.customer, w.session))
    resend.commit()
    calls = len(resend.stub.calls)
    assert worker.deliver(later, limit=100, kinds=["email.send"])["sent"] == 1
    assert len(resend.stub.calls) == calls + 1
    assert resend.stub.calls[-1].json()["subject"] == "How was your session with Morgan Mechanic?"


def test_a_complaint_stops_marketing_mail_too(resend: Resend) -> None:
    d = resend.db
    w = _complete_a_session(d)
    address = d.scalar("select email from auth.users where id = %s", (w.customer,))
    resend.commit()
    _ok(send(event("email.complained", resend.sent_email(to=address, user_id=w.customer))), "applied")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=3)
    assert worker.deliver(later, limit=100, kinds=["email.send"])["skipped"] == 1
    jobs = _jobs(resend, w.customer)
    assert jobs["session_ended"]["status"] == "skipped" and "complaint" in jobs["session_ended"]["last_error"]
    assert jobs["summary_delivered"]["status"] == "sent"


# ---------------------------------------------------------------------------------------------
# Admin RPCs: per persona; hostile input
# ---------------------------------------------------------------------------------------------
def _seed(db: Db) -> dict[str, Any]:
    """Two sent emails of a customer, one hard-bounced (its address suppressed), one delivered."""
    w = make_world(db)
    address = db.scalar("select email from auth.users where id = %s", (w.customer,))
    for rid, kind in (("em_admin_1", "email.bounced"), ("em_admin_2", "email.delivered")):
        db.scalar(
            "select private.record_email_sent(%s, %s, 'booking_confirmed', %s, null, %s)",
            (rid, f"k:{rid}", w.customer, address),
        )
        evt = event(kind, rid, **bounce())
        db.scalar("select private.handle_resend_event(%s, %s)", (msg_id(), json.dumps(evt)))
    return {"world": w, "address": address, "other_mechanic": w.other_mechanic, "admin": w.admin}


def test_admin_rpcs_are_for_admins_only(db: Db) -> None:
    s = _seed(db)
    w = s["world"]
    # the rows exist (what the others are refused)
    assert db.scalar("select count(*) from private.email_suppressions where lifted_at is null") == 1
    assert db.scalar("select count(*) from private.email_deliveries where user_id = %s", (w.customer,)) == 2
    for persona in (w.customer, w.other_customer, w.mechanic, s["other_mechanic"]):
        with db.as_user(persona):
            assert db.error("select * from public.admin_email_suppressions()").sqlstate == "AD003"
            assert db.error("select * from public.admin_email_deliveries(%s)", (w.customer,)).sqlstate == "AD003"
            assert db.rpc_error("admin_lift_email_suppression", p_address=s["address"]) == "AD003"
            for table in ("resend_events", "email_deliveries", "email_suppressions"):
                assert db.error(f"select * from private.{table}").sqlstate == "42501"
    with db.as_anon():
        assert db.error("select * from public.admin_email_suppressions()").sqlstate == "42501"
        assert db.error("select * from public.admin_email_deliveries(%s)", (w.customer,)).sqlstate == "42501"
        assert db.error("select public.admin_lift_email_suppression(%s)", (s["address"],)).sqlstate == "42501"
        assert db.error("select * from private.email_suppressions").sqlstate == "42501"
    assert db.scalar("select count(*) from private.email_suppressions where lifted_at is null") == 1
    with db.as_user(s["admin"]):
        rows = db.all("select * from public.admin_email_suppressions()")
        assert [(r["address"], r["reason"], r["template"], r["user_id"]) for r in rows] == [
            (s["address"], "hard_bounce", "booking_confirmed", w.customer)
        ]
        history = db.all("select * from public.admin_email_deliveries(%s)", (w.customer,))
        by_id = {h["resend_id"]: h for h in history}
        assert by_id["em_admin_1"]["status"] == "bounced" and by_id["em_admin_1"]["bounce_type"] == "Permanent"
        assert by_id["em_admin_2"]["status"] == "delivered" and by_id["em_admin_2"]["delivered_at"] is not None
        assert all(h["suppressed"] for h in history)
        assert [e["type"] for e in by_id["em_admin_1"]["events"]] == ["email.bounced"]
        assert db.all("select * from public.admin_email_deliveries(%s)", (w.other_customer,)) == []
        lifted = db.rpc("admin_lift_email_suppression", p_address=s["address"])
        assert lifted["address"] == s["address"]
        assert db.all("select * from public.admin_email_suppressions()") == []
        history_rows = db.all("select * from public.admin_email_suppressions(false)")
        assert len(history_rows) == 1 and history_rows[0]["lifted_by"] == s["admin"]
        assert not any(
            h["suppressed"] for h in db.all("select * from public.admin_email_deliveries(%s)", (w.customer,))
        )
        # lifting twice: nothing to lift
        assert db.rpc_error("admin_lift_email_suppression", p_address=s["address"]) == "AD004"
    assert db.scalar("select private.rpc_rate_class('admin_lift_email_suppression')") == "admin"


@pytest.mark.parametrize(
    ("address", "note"),
    [
        (None, None),
        ("", None),
        ("   ", None),
        ("a" * 321, None),
        ("x@example.test", "n" * 1001),
        ("nobody@example.test", None),
    ],
)
def test_lifting_refuses_hostile_input_and_writes_nothing(db: Db, address: str | None, note: str | None) -> None:
    s = _seed(db)
    before = db.all("select * from private.email_suppressions order by id")
    with db.as_user(s["admin"]):
        code = db.rpc_error("admin_lift_email_suppression", p_address=address, p_note=note)
    assert code == ("AD004" if address == "nobody@example.test" else "AD001")
    assert db.all("select * from private.email_suppressions order by id") == before


def test_admin_reads_refuse_hostile_input(db: Db) -> None:
    s = _seed(db)
    with db.as_user(s["admin"]):
        assert db.error("select * from public.admin_email_deliveries(null)").sqlstate == "AD001"
        for limit in (0, 1001, None):
            assert (
                db.error("select * from public.admin_email_deliveries(%s, %s)", (s["world"].customer, limit)).sqlstate
                == "AD001"
            )
            assert db.error("select * from public.admin_email_suppressions(true, %s)", (limit,)).sqlstate == "AD001"
        assert db.error("select * from public.admin_email_suppressions(null)").sqlstate == "AD001"


def test_sender_functions_are_not_callable_by_users(db: Db) -> None:
    """A customer cannot record events or sends, nor read another address's suppression."""
    customer = make_customer(db)
    with db.as_user(customer):
        for query in (
            "select private.handle_resend_event('msg_1', '{}')",
            "select private.record_email_sent('em_1', 'k', 't', null, null, 'a@example.test')",
            "select private.email_suppression('a@example.test')",
        ):
            assert db.error(query).sqlstate == "42501"


def test_direct_handler_checks_its_event(db: Db) -> None:
    """The SQL handler itself refuses what is not an event (the function is the last line)."""
    for svix_id, body in (
        (None, {}),
        ("msg_1", []),
        ("msg_1", {"type": "email.sent"}),
        ("bad id", event("email.sent", "em_1")),
    ):
        err = db.error("select private.handle_resend_event(%s, %s)", (svix_id, json.dumps(body)))
        assert err.sqlstate == "AD001"
    assert db.scalar("select count(*) from private.resend_events") == 0


def test_the_customer_opt_out_still_wins_over_a_lifted_suppression(resend: Resend) -> None:
    """Opting out (profiles.marketing_emails) and suppression are separate: either stops marketing mail."""
    d = resend.db
    w = _complete_a_session(d)
    d.execute("update public.profiles set marketing_emails = false where id = %s", (w.customer,))
    resend.commit()
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=3)
    worker.deliver(later, limit=100, kinds=["email.send"])
    subjects = [c.json()["subject"] for c in resend.stub.calls]
    assert "How was your session with Morgan Mechanic?" not in subjects
    assert resend.val("select count(*) from private.email_deliveries where template = 'session_ended'") == 0


def test_the_dev_server_and_main_serve_the_webhook(resend: Resend, monkeypatch: pytest.MonkeyPatch) -> None:
    """Registered as a target of main.py, so `autodoctor serve` mounts it at /resend_webhook."""
    from werkzeug.test import Client

    import main
    from shared.dev.server import build_app

    assert "resend_webhook" in main.TARGETS
    client = Client(build_app())
    email = resend.sent_email()
    payload = json.dumps(event("email.delivered", email))
    response = client.post("/resend_webhook", data=payload, headers=sign(payload), content_type="application/json")
    assert response.status_code == 200 and response.get_json()["outcome"] == "applied"
    monkeypatch.delenv("RESEND_WEBHOOK_SECRET")
    get_settings.cache_clear()
    response = client.post("/resend_webhook", data=payload, headers=sign(payload), content_type="application/json")
    assert response.status_code == 503 and response.get_json()["error"] == "email_events_not_configured"


def _waiting_on_a_lock(url: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "select exists (select 1 from pg_locks l join pg_database d on d.oid = l.database"
            " where l.locktype = 'advisory' and not l.granted and d.datname = current_database())"
        ).fetchone()
    return bool(row and row[0])


def test_an_event_arriving_while_its_send_is_being_recorded_is_not_lost(resend: Resend) -> None:
    """The worker is recording the email (not committed yet) when its event comes in: the event
    waits for that record and applies to it, instead of being stored as unknown and never applied."""
    resend_id = "em_in_flight"
    payload = json.dumps(event("email.bounced", resend_id, **bounce()))
    headers = sign(payload)
    results: list[Any] = []
    with psycopg.connect(resend.url) as conn:
        conn.execute(
            "select private.record_email_sent(%s, 'k:in_flight', 'session_ended', null, null, 'inflight@example.test')",
            (resend_id,),
        )
        thread = threading.Thread(target=lambda: results.append(post(payload, headers)))
        thread.start()
        while thread.is_alive() and not _waiting_on_a_lock(resend.url):
            threading.Event().wait(0.01)
        conn.commit()
    thread.join(60)
    assert results[0][0] == 200 and results[0][1]["outcome"] == "applied"
    assert resend.delivery(resend_id)["status"] == "bounced"
    assert resend.suppressions() == [{"address": "inflight@example.test", "reason": "hard_bounce", "lifted_at": None}]
