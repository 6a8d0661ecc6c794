"""An admin's day of operations, then a person leaving, all through the public RPCs: vetting two
applicants, working the unattended queue with an offer, fixing intakes, exporting them, reading the
numbers and the audit, suspending a mechanic safely and reinstating it, and a customer taking their
data out and being erased after the grace period."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from tests.privacy.test_erasure import erase, money_state
from tests.support.delivery import books_balance, deliver
from tests.support.factories import accept, make_admin, make_customer, make_mechanic, request_free
from tests.support.harness import Db
from tests.support.ops_intakes import audit_rows, bulk, bulk_error, intakes, statuses
from tests.support.ops_privacy import marker_person, scan_for
from tests.support.ops_vetting import doc_name, send_required
from tests.support.scheduling import at, book, every_day, future_day


def _emails(db: Db, template: str, user: uuid.UUID) -> list[dict[str, Any]]:
    return [
        r["payload"]
        for r in db.all(
            "select payload from private.outbox where payload ->> 'template' = %s and payload ->> 'user_id' = %s"
            " order by id",
            (template, str(user)),
        )
    ]


def _file_back(db: Db, request: Any, minutes: int) -> None:
    """The request was filed `minutes` ago (and has not moved since)."""
    db.execute(
        "update public.session_requests set created_at = now() - make_interval(mins => %(m)s),"
        " status_changed_at = now() - make_interval(mins => %(m)s) where id = %(r)s",
        {"m": minutes, "r": request},
    )


def _request_status(db: Db, request: Any) -> str:
    status: str = db.scalar("select status::text from public.session_requests where id = %s", (request,))
    return status


def _session_status(db: Db, session: Any) -> str:
    status: str = db.scalar("select status::text from public.sessions where id = %s", (session,))
    return status


def test_an_admins_day_of_operations_then_a_person_leaves(db: Db) -> None:
    admin = make_admin(db)
    now: dt.datetime = db.scalar("select now()")
    # a customer who will leave at the end of the day: a delivered free session with messages and a
    # review, and a session paid with credit, delivered, its payouts released
    leaver = marker_person(db)

    # -- 1. vet applicants -------------------------------------------------------------------------
    ava = make_mechanic(db, approved=False, name="Ava Applicant")
    ben = make_mechanic(db, approved=False, name="Ben Applicant")
    for applicant in (ava, ben):
        send_required(db, applicant)
    with db.as_user(admin):
        files = {m: db.rpc("admin_mechanic_vetting", p_mechanic_id=m) for m in (ava, ben)}
    for m, file in files.items():
        assert {d["path"] for d in file["documents"]} == {doc_name(m, "licence"), doc_name(m, "insurance")}
        assert file["missing_documents"] == [] and file["vetting_state"] == "submitted"
    with db.as_user(admin):
        more = db.rpc(
            "admin_review_mechanic", p_mechanic_id=ava, p_decision="needs_more_info", p_note="A clearer licence scan"
        )
        approved = db.rpc("admin_review_mechanic", p_mechanic_id=ben, p_decision="approved", p_note=None)
    assert more["status"] == "pending" and more["vetting_state"] == "needs_more_info"
    assert approved["status"] == "approved"
    with db.as_user(ava):
        mine = db.rpc("my_vetting")
    assert mine["vetting_state"] == "needs_more_info"
    assert [(d["decision"], d["note"]) for d in mine["decisions"]] == [("needs_more_info", "A clearer licence scan")]
    assert db.scalar("select status::text from public.mechanics where id = %s", (ben,)) == "approved"
    assert [(e["data"]["decision"], e["data"]["note"]) for e in _emails(db, "vetting_decision", ava)] == [
        ("needs_more_info", "A clearer licence scan")
    ]
    assert [(e["data"]["decision"], e["data"]["note"]) for e in _emails(db, "vetting_decision", ben)] == [
        ("approved", None)
    ]

    # -- 2. work the unattended queue --------------------------------------------------------------
    dana, eli = make_customer(db, "Dana Daylong"), make_customer(db, "Eli Early")
    offered = request_free(db, dana)
    left = request_free(db, eli)
    _file_back(db, offered["request_id"], 8)  # the oldest of the queue
    _file_back(db, left["request_id"], 6)
    with db.as_user(admin):
        swept = db.rpc("admin_run_sweep")
    assert swept["unattended"] == 2 and swept["expired"] == 0
    assert {_request_status(db, r["request_id"]) for r in (offered, left)} == {"unattended"}
    with db.as_user(admin):
        offer = db.rpc("admin_assign_request", p_request_id=offered["request_id"], p_mechanic_id=ben)
    assert offer["status"] == "offered" and offer["mechanic_id"] == str(ben)
    # an offer, not an assignment: nothing is the mechanic's until it accepts
    row = db.one(
        "select status::text, mechanic_id, offered_mechanic_id from public.session_requests where id = %s",
        (offered["request_id"],),
    )
    assert row is not None and row["mechanic_id"] is None and row["offered_mechanic_id"] == ben
    assert accept(db, ben, offered["request_id"])["status"] == "accepted"
    assert _request_status(db, offered["request_id"]) == "accepted"
    deliver(db, offered["session_id"])
    assert _session_status(db, offered["session_id"]) == "completed"
    assert _session_status(db, left["session_id"]) == "pending"

    # -- 3. fix intakes ----------------------------------------------------------------------------
    fay = make_customer(db, "Fay Filer")
    stale, dup1, dup2 = intakes(db, fay, 3)
    with db.as_user(admin):
        one = db.rpc("admin_update_intake", p_intake_id=stale, p_status="resolved", p_note="solved by phone")
        both = bulk(db, [dup1, dup2], "cancelled", "duplicates")
    assert one == {"status": "resolved", "updated": [str(stale)], "unchanged": []}
    assert both["status"] == "cancelled" and sorted(both["updated"]) == sorted([str(dup1), str(dup2)])
    assert statuses(db, [stale, dup1, dup2]) == {stale: "resolved", dup1: "cancelled", dup2: "cancelled"}
    # the intake of the request still in the queue feeds an active session: refused, alone or in bulk
    busy_intake = db.scalar("select intake_id from public.sessions where id = %s", (left["session_id"],))
    with db.as_user(admin):
        assert db.rpc_error("admin_update_intake", p_intake_id=busy_intake, p_status="resolved") == "AD251"
        err = bulk_error(db, [stale, busy_intake], "new")
    assert err.sqlstate == "AD251" and str(busy_intake) in str(err)
    assert statuses(db, [stale, busy_intake]) == {stale: "resolved", busy_intake: "pending"}  # all or nothing
    assert [r["data"] for r in audit_rows(db, "intake.update") if r["admin_id"] == admin] == [
        {"from": "new", "to": "resolved"},
        {"from": "new", "to": "cancelled"},
        {"from": "new", "to": "cancelled"},
    ]

    # -- 4. export ---------------------------------------------------------------------------------
    # the helpers file intakes two hours back: the export covers yesterday and today (UTC days)
    day_from, day_to = (now - dt.timedelta(days=1)).date(), now.date()
    with db.as_user(admin):
        rows = db.all("select * from public.admin_export_intakes(%s::date, %s::date)", (day_from, day_to))
    by_id = {r["intake_id"]: r for r in rows}
    delivered_intake = db.scalar("select intake_id from public.sessions where id = %s", (offered["session_id"],))
    expected = {
        stale: ("resolved", "none"),
        dup1: ("cancelled", "none"),
        dup2: ("cancelled", "none"),
        delivered_intake: ("resolved", "delivered"),
        busy_intake: ("pending", "none"),
    }
    for intake, (status, outcome) in expected.items():
        assert (by_id[intake]["status"], by_id[intake]["outcome"]) == (status, outcome), intake
    assert by_id[delivered_intake]["customer_name"] == "Dana Daylong"
    assert by_id[stale]["refunded_cents"] == 0
    assert [r["created_at"] for r in rows] == sorted(r["created_at"] for r in rows)  # oldest first
    export = audit_rows(db, "export.intakes")
    assert len(export) == 1 and export[0]["admin_id"] == admin
    assert export[0]["data"] == {"from": day_from.isoformat(), "to": day_to.isoformat(), "rows": len(rows)}

    # -- 5. read the numbers -----------------------------------------------------------------------
    start, end = now - dt.timedelta(hours=12), now + dt.timedelta(hours=12)
    with db.as_user(admin):
        out = db.rpc("admin_overview", p_from=start, p_to=end)
    # the leaver's free and paid sessions, Dana's delivered one, Eli's still in the queue
    assert out["sessions"]["created"] == 4
    assert out["sessions"]["by_status"] == {
        "pending": 1,
        "scheduled": 0,
        "waiting": 0,
        "live": 0,
        "completed": 3,
        "cancelled": 0,
    }
    price = db.scalar("select price_cents from public.service_plans where code = 'diagnostic'")
    assert out["revenue"]["payments"] == 1
    assert (out["revenue"]["gross_cents"], out["revenue"]["credit_cents"], out["revenue"]["card_cents"]) == (
        price,
        price,
        0,
    )
    assert out["revenue"]["settled"]["payments"] == 1 and out["revenue"]["settled"]["base_cents"] == price
    queue = out["queue"]
    filed = db.scalar("select created_at from public.session_requests where id = %s", (left["request_id"],))
    assert queue["unattended"] == 1 and dt.datetime.fromisoformat(queue["oldest_unattended_at"]) == filed
    assert queue["oldest_unattended_age_seconds"] >= 360
    assert (out["delivery"]["completed"], out["delivery"]["delivered"]) == (3, 3)
    assert out["time_to_accept"]["accepted"] == 3
    with db.as_user(admin):
        stats = db.rpc("admin_scheduling_stats", p_from=day_from, p_to=day_to)
    assert isinstance(stats, dict) and "mechanics" in stats
    with db.as_user(admin):
        audit = db.all("select * from public.admin_audit(p_from => %s::timestamptz, p_limit => 1000)", (now,))
    mine = [(r["action"], r["subject_id"]) for r in audit if r["admin_id"] == admin]
    day = [
        ("mechanic.review", ava),
        ("mechanic.review", ben),
        ("sweep.run", None),
        ("request.offer", uuid.UUID(str(offered["request_id"]))),
        ("intake.update", stale),
        *sorted([("intake.update", dup1), ("intake.update", dup2)]),
        ("export.intakes", None),
        ("scheduling.stats", None),
    ]
    # every action of the day is there, by this admin (one transaction: one `at`)
    assert sorted(mine, key=str) == sorted(day, key=str)
    # … and in the order it was taken (the audit table's own order)
    recorded = db.all("select action, subject_id from private.admin_actions where admin_id = %s order by id", (admin,))
    assert [(r["action"], r["subject_id"]) for r in recorded] == day

    # -- 6. suspend someone safely -----------------------------------------------------------------
    with db.as_user(ben):
        db.rpc("set_weekly_availability", p_timezone="UTC", p_blocks=every_day("00:00", "24:00"))
        db.rpc(
            "set_booking_rules",
            p_rules={"buffer_minutes": 0, "min_notice_minutes": 0, "max_advance_days": 365, "slot_step_minutes": 5},
        )
        db.rpc("set_online", p_online=True)
    gus = make_customer(db, "Gus Waiting")
    with db.as_user(admin):
        db.rpc("admin_grant_credit", p_customer_id=gus, p_amount_cents=price, p_reason="goodwill")
    waiting = db.scalar(
        "select private.prepare_checkout(%s, 'diagnostic', %s, null, null, false)", (gus, intakes(db, gus, 1)[0])
    )
    accept(db, ben, waiting["request_id"])
    hana = make_customer(db, "Hana Booker")
    with db.as_user(admin):
        db.rpc("admin_grant_credit", p_customer_id=hana, p_amount_cents=999, p_reason="goodwill")
    booking = book(db, hana, ben, at(future_day(5), "10:00"), plan="chat10")
    assert db.scalar("select private.credit_balance(%s)", (hana,)) == 0
    with db.as_user(admin):
        suspended = db.rpc("admin_suspend_mechanic", p_mechanic_id=ben, p_reason="Insurance lapsed")
    assert suspended["released_requests"] == [waiting["request_id"]]
    assert suspended["cancelled_sessions"] == [booking["session_id"]]
    assert suspended["payouts_held"] is True
    assert db.one("select status::text, payouts_held from public.mechanics where id = %s", (ben,)) == {
        "status": "suspended",
        "payouts_held": True,
    }
    assert db.one(
        "select r.status::text as r, s.status::text as s, r.mechanic_id from public.session_requests r"
        " join public.sessions s on s.id = r.session_id where r.id = %s",
        (waiting["request_id"],),
    ) == {"r": "pending", "s": "pending", "mechanic_id": None}
    assert _session_status(db, booking["session_id"]) == "cancelled"
    assert db.scalar("select private.credit_balance(%s)", (hana,)) == 999  # refunded to credit
    assert len(_emails(db, "booking_cancelled", hana)) == 1
    with db.as_user(admin):
        back = db.rpc("admin_reinstate_mechanic", p_mechanic_id=ben, p_note="New insurance checked")
    assert back["status"] == "approved" and back["payouts_held"] is False
    assert _session_status(db, booking["session_id"]) == "cancelled"  # stays cancelled
    assert [
        r["action"]
        for r in db.all(
            "select action from private.admin_actions where subject_id = %s and admin_id = %s order by id",
            (ben, admin),
        )
    ] == ["mechanic.review", "mechanic.suspend", "payouts.release", "mechanic.reinstate"]
    books_balance(db)

    # -- 7. a person takes their data out and leaves -----------------------------------------------
    with db.as_user(leaver.id):
        doc = db.rpc("export_my_data")
    assert doc["user_id"] == str(leaver.id) and doc["profile"]["full_name"] == leaver.name
    assert {s["id"] for s in doc["sessions_as_customer"]} == {str(leaver.session), str(leaver.paid_session)}
    assert any(leaver.phone in m["content"] for m in doc["messages"] if m["from"] == "you")
    assert any(m["from"] == "other" for m in doc["messages"])
    assert scan_for(db, leaver.markers) != []
    before = money_state(db)
    with db.as_user(leaver.id):
        asked = db.rpc("request_account_deletion")
    assert asked["status"] == "pending" and asked["already_requested"] is False
    assert erase(db, leaver.id, "now()")["status"] == "not_due"  # within the grace: nothing
    assert erase(db, leaver.id)["status"] == "erased"  # after it
    assert scan_for(db, leaver.markers) == []
    assert money_state(db) == before
    books_balance(db)
    with db.as_user(leaver.id):
        assert db.rpc_error("export_my_data") == "AD282"
