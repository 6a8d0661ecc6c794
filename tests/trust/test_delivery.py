"""Delivery needs evidence from both sides; the objection window before payouts leave; the
customer's report and the admin's decision. Each dishonest path reproduced through the RPCs as
PostgREST calls them; the books balance after every step."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from tests.support.delivery import (
    books_balance,
    credit_balance,
    deliver,
    paid_with_credit,
    release_hold,
    start_both,
    take_part,
)
from tests.support.factories import accept, make_admin, make_customer, make_mechanic
from tests.support.harness import Db

DIAGNOSTIC = 4999


def _payouts(db: Db, session: Any) -> list[dict[str, Any]]:
    return db.all("select status::text, amount_cents, waiting_reason, release_at from public.payouts "
                  "where session_id = %s order by id", (session,))


def _queue(db: Db) -> list[dict[str, Any]]:
    return [r["q"] for r in db.all("select q from public.admin_delivery_queue() q")]


def _active_account(db: Db, mechanic: uuid.UUID) -> None:
    db.execute("insert into public.payout_accounts (mechanic_id, stripe_account_id, transfers_active)"
               " values (%s, %s, true)", (mechanic, "acct_" + uuid.uuid4().hex[:12]))


@pytest.fixture
def paid(db: Db) -> dict[str, Any]:
    """An approved mechanic (payout account active) took a customer's credit-paid diagnostic."""
    customer, mechanic, admin = make_customer(db), make_mechanic(db), make_admin(db)
    _active_account(db, mechanic)
    out = paid_with_credit(db, customer, "diagnostic")
    accept(db, mechanic, out["request_id"])
    return {"customer": customer, "mechanic": mechanic, "admin": admin, "session": out["session_id"],
            "other_customer": make_customer(db, "Olive Other")}


# ------------------------------------------------------------------------------------------------
# The reproduction: the lone mechanic
# ------------------------------------------------------------------------------------------------
def test_the_lone_mechanic_cannot_take_it_live_and_is_not_paid(db: Db, paid: dict[str, Any]) -> None:
    sid, mechanic, customer = paid["session"], paid["mechanic"], paid["customer"]
    assert credit_balance(db, customer) == 0
    with db.as_user(mechanic):
        assert db.rpc("start_session", p_session_id=sid) == {
            "session_id": str(sid), "status": "waiting", "started_at": None, "waiting_for": "customer"}
        assert db.rpc("start_session", p_session_id=sid)["status"] == "waiting"  # again: the same
        assert db.rpc_error("end_session", p_session_id=sid) == "AD006"
    assert db.scalar("select status::text from public.sessions where id = %s", (sid,)) == "waiting"
    assert db.scalar("select ready_at is not null from public.session_participants where session_id = %s"
                     " and user_id = %s", (sid, mechanic)) is True
    assert db.scalar("select count(*) from public.payouts") == 0


def test_ended_without_evidence_is_unverified_unpaid_and_refunded_after_the_window(
        db: Db, paid: dict[str, Any]) -> None:
    sid, mechanic, customer, admin = paid["session"], paid["mechanic"], paid["customer"], paid["admin"]
    served = db.one("select completed_sessions, customers_served from public.mechanics where id = %s", (mechanic,))
    start_both(db, sid)  # e.g. the customer clicked start, then nobody showed up in the room
    with db.as_user(mechanic):
        out = db.rpc("end_session", p_session_id=sid)
    assert out["status"] == "completed" and out["delivery"] == "unverified"
    assert db.scalar("select settled_at from public.payments where session_id = %s", (sid,)) is None
    assert db.scalar("select count(*) from public.payouts") == 0
    assert db.one("select completed_sessions, customers_served from public.mechanics where id = %s",
                  (mechanic,)) == served
    books_balance(db)
    # listed for admins, with when the customer is refunded
    with db.as_user(admin):
        [row] = [r for r in _queue(db) if r["session_id"] == str(sid)]
    assert row["kind"] == "unverified" and row["refundable_cents"] == DIAGNOSTIC and row["auto_refund_at"]
    # before trust.unverified_refund_after nothing happens; after it the customer is refunded
    ended = db.scalar("select ended_at from public.sessions where id = %s", (sid,))
    assert db.scalar("select private.refund_unverified_sessions(%s)", (ended + dt.timedelta(hours=23),)) == \
        {"unverified_refunded": 0}
    assert db.scalar("select private.run_job('delivery', %s)", (ended + dt.timedelta(hours=24, seconds=1),)) == \
        {"hold_sessions_checked": 0, "payouts_released": 0, "unverified_refunded": 1}
    assert credit_balance(db, customer) == DIAGNOSTIC
    assert db.scalar("select status::text from public.payments where session_id = %s", (sid,)) == "refunded"
    decision = db.one("select outcome, refund_cents, decided_by from public.session_delivery_decisions "
                      "where session_id = %s", (sid,))
    assert decision == {"outcome": "refund", "refund_cents": DIAGNOSTIC, "decided_by": None}
    assert db.scalar("select count(*) from public.payouts") == 0
    books_balance(db)
    # decided: the job leaves it, and an admin can no longer decide it
    assert db.scalar("select private.refund_unverified_sessions(%s)", (ended + dt.timedelta(days=3),)) == \
        {"unverified_refunded": 0}
    with db.as_user(admin):
        assert db.rpc_error("admin_resolve_delivery", p_session_id=sid, p_outcome="pay") == "AD102"
        assert all(r["session_id"] != str(sid) for r in _queue(db))


@pytest.mark.parametrize("kind", ["short", "one_side_only", "chat_one_side"])
def test_evidence_needs_both_sides_and_the_minimum(db: Db, kind: str) -> None:
    customer, mechanic = make_customer(db), make_mechanic(db)
    out = paid_with_credit(db, customer, "chat10" if kind == "chat_one_side" else "video15")
    sid = out["session_id"]
    accept(db, mechanic, out["request_id"])
    start_both(db, sid)
    if kind == "short":  # both joined and wrote, but 1 minute < trust.min_delivered_minutes (2)
        take_part(db, sid, minutes=1)
    elif kind == "one_side_only":  # only the mechanic joined the room
        db.execute("update public.sessions set started_at = started_at - interval '10 minutes' where id = %s", (sid,))
        db.execute("update public.session_participants set joined_at = now() where session_id = %s and user_id = %s",
                   (sid, mechanic))
    else:  # a chat session where only the mechanic wrote (joining the room is not chat evidence)
        db.execute("update public.sessions set started_at = started_at - interval '10 minutes' where id = %s", (sid,))
        db.execute("update public.session_participants set joined_at = now() where session_id = %s", (sid,))
        with db.as_user(mechanic):
            db.execute("insert into public.chat_messages (session_id, content) values (%s, 'anyone?')", (sid,))
    with db.as_user(mechanic):
        assert db.rpc("end_session", p_session_id=sid)["delivery"] == "unverified"
    assert db.scalar("select count(*) from public.payouts where session_id = %s", (sid,)) == 0


def test_min_delivered_minutes_is_a_setting(db: Db, paid: dict[str, Any]) -> None:
    db.execute("update private.settings set value = '15' where key = 'trust.min_delivered_minutes'")
    start_both(db, paid["session"])
    take_part(db, paid["session"], minutes=10)
    with db.as_user(paid["customer"]):
        assert db.rpc("end_session", p_session_id=paid["session"])["delivery"] == "unverified"


def test_livekit_both_joined_still_takes_it_live(db: Db, paid: dict[str, Any]) -> None:
    sid, room = paid["session"], f"session-{paid['session']}"
    for i, user in enumerate((paid["customer"], paid["mechanic"])):
        out = db.scalar("select private.apply_livekit_event(%s, 'participant_joined', %s, %s, now(), '{}')",
                        (f"ev{i}", room, str(user)))
    assert out["outcome"] == "live"
    assert db.scalar("select status::text from public.sessions where id = %s", (sid,)) == "live"


# ------------------------------------------------------------------------------------------------
# Delivered: counters, the hold, the release
# ------------------------------------------------------------------------------------------------
def test_delivered_is_settled_into_payouts_held_for_the_objection_window(db: Db, paid: dict[str, Any]) -> None:
    sid, mechanic = paid["session"], paid["mechanic"]
    deliver(db, sid)
    assert db.one("select completed_sessions, customers_served from public.mechanics where id = %s",
                  (mechanic,)) == {"completed_sessions": 1, "customers_served": 1}
    [payout] = _payouts(db, sid)
    ended = db.scalar("select ended_at from public.sessions where id = %s", (sid,))
    assert payout["status"] == "waiting" and payout["waiting_reason"].startswith("objection window")
    assert payout["release_at"] == ended + dt.timedelta(hours=24)
    assert db.scalar("select count(*) from private.outbox where kind = 'stripe.transfer'") == 0
    books_balance(db)
    # the worker refuses a held payout even if something queued it
    db.execute("update public.payouts set status = 'queued' where session_id = %s", (sid,))
    pid = db.scalar("select id from public.payouts where session_id = %s", (sid,))
    assert db.all("select * from private.start_payout_job(%s)", (pid,)) == []
    assert _payouts(db, sid)[0]["status"] == "waiting"
    # the release job: nothing before the end of the window, then queued (a stripe.transfer job)
    assert db.scalar("select private.release_held_payouts(%s)", (ended + dt.timedelta(hours=23),))[
        "payouts_released"] == 0
    assert db.scalar("select private.release_held_payouts(%s)", (ended + dt.timedelta(hours=24),))[
        "payouts_released"] == 1
    assert _payouts(db, sid)[0]["status"] == "queued"
    assert db.scalar("select count(*) from private.outbox where kind = 'stripe.transfer'") == 1
    books_balance(db)


def test_activation_of_the_payout_account_does_not_release_a_held_payout(db: Db) -> None:
    customer, mechanic = make_customer(db), make_mechanic(db)
    db.execute("insert into public.payout_accounts (mechanic_id, stripe_account_id, transfers_active)"
               " values (%s, 'acct_inactive01', false)", (mechanic,))
    out = paid_with_credit(db, customer, "video15")
    accept(db, mechanic, out["request_id"])
    deliver(db, out["session_id"])
    snapshot = '{"id": "acct_inactive01", "capabilities": {"transfers": "active"}, "charges_enabled": true}'
    assert db.scalar("select private.apply_account_snapshot(%s::jsonb, now(), true, now())", (snapshot,)) == "applied"
    [payout] = _payouts(db, out["session_id"])
    assert payout["status"] == "waiting" and payout["waiting_reason"].startswith("objection window")
    release_hold(db, out["session_id"])
    assert _payouts(db, out["session_id"])[0]["status"] == "queued"


def test_a_second_customer_account_moves_customers_served_by_one(db: Db) -> None:
    """The mechanic and its second customer account complete 24 sessions: 20 rushed (both ready,
    ended at once: unverified), 4 with both sides taking part. completed_sessions counts the 4
    delivered; customers_served counts the one customer."""
    mechanic, sock = make_mechanic(db), make_customer(db, "Sock Puppet")
    before = db.one("select completed_sessions, customers_served from public.mechanics where id = %s", (mechanic,))
    outcomes = []
    for i in range(24):
        out = paid_with_credit(db, sock, "chat10")
        accept(db, mechanic, out["request_id"])
        if i % 6 == 5:
            outcomes.append(deliver(db, out["session_id"])["delivery"])
        else:
            start_both(db, out["session_id"])
            with db.as_user(mechanic):
                outcomes.append(db.rpc("end_session", p_session_id=out["session_id"])["delivery"])
    assert outcomes.count("delivered") == 4 and outcomes.count("unverified") == 20
    after = db.one("select completed_sessions, customers_served from public.mechanics where id = %s", (mechanic,))
    assert after == {"completed_sessions": before["completed_sessions"] + 4,
                     "customers_served": before["customers_served"] + 1}
    assert db.scalar("select count(distinct session_id) from public.payouts where mechanic_id = %s", (mechanic,)) == 4
    books_balance(db)


# ------------------------------------------------------------------------------------------------
# The customer's report and the admin's decision
# ------------------------------------------------------------------------------------------------
def test_report_within_the_window_holds_the_payouts_until_an_admin_pays(db: Db, paid: dict[str, Any]) -> None:
    sid, customer, admin = paid["session"], paid["customer"], paid["admin"]
    deliver(db, sid)
    with db.as_user(customer):
        out = db.rpc("report_problem", p_session_id=sid, p_reason="The mechanic never looked at the car.")
        assert out["status"] == "reported" and out["payouts_waiting"] == 1
        assert db.rpc_error("report_problem", p_session_id=sid, p_reason="again") == "AD101"
    assert _payouts(db, sid)[0]["waiting_reason"].startswith("problem reported")
    # the window ends: the report still holds them
    release_hold(db, sid)
    assert _payouts(db, sid)[0]["status"] == "waiting"
    with db.as_user(admin):
        [row] = [r for r in _queue(db) if r["session_id"] == str(sid)]
        assert row["kind"] == "reported" and row["report_reason"] == "The mechanic never looked at the car."
        decided = db.rpc("admin_resolve_delivery", p_session_id=sid, p_outcome="pay")
    assert decided["outcome"] == "pay" and decided["refund_cents"] == 0
    assert [p["status"] for p in decided["payouts"]] == ["queued"]
    assert db.one("select outcome, decided_by from public.session_delivery_decisions where session_id = %s",
                  (sid,)) == {"outcome": "pay", "decided_by": admin}
    with db.as_user(admin):
        assert db.rpc_error("admin_resolve_delivery", p_session_id=sid, p_outcome="refund") == "AD102"
    books_balance(db)


def test_an_admin_decision_pays_at_once_even_within_the_window(db: Db, paid: dict[str, Any]) -> None:
    sid = paid["session"]
    deliver(db, sid)
    with db.as_user(paid["customer"]):
        db.rpc("report_problem", p_session_id=sid, p_reason="late")
    with db.as_user(paid["admin"]):
        db.rpc("admin_resolve_delivery", p_session_id=sid, p_outcome="pay")
    assert _payouts(db, sid)[0]["status"] == "queued"  # the window had a day left


def test_report_then_full_refund_cancels_the_payouts(db: Db, paid: dict[str, Any]) -> None:
    sid, customer = paid["session"], paid["customer"]
    deliver(db, sid)
    with db.as_user(customer):
        db.rpc("report_problem", p_session_id=sid, p_reason="no diagnosis given")
    with db.as_user(paid["admin"]):
        out = db.rpc("admin_resolve_delivery", p_session_id=sid, p_outcome="refund")
    assert out["refund_cents"] == DIAGNOSTIC
    assert [(p["status"], p["amount_cents"]) for p in _payouts(db, sid)] == [("cancelled", 0)]
    assert credit_balance(db, customer) == DIAGNOSTIC
    books_balance(db)


def test_report_then_partial_refund_pays_the_rest(db: Db, paid: dict[str, Any]) -> None:
    sid, customer = paid["session"], paid["customer"]
    deliver(db, sid)
    original = _payouts(db, sid)[0]["amount_cents"]
    with db.as_user(customer):
        db.rpc("report_problem", p_session_id=sid, p_reason="half of it")
    with db.as_user(paid["admin"]):
        for bad in (0, -1, DIAGNOSTIC, DIAGNOSTIC + 1):
            assert db.rpc_error("admin_resolve_delivery", p_session_id=sid, p_outcome="partial",
                                p_refund_cents=bad) == "AD001"
        assert db.scalar("select count(*) from public.session_delivery_decisions") == 0
        out = db.rpc("admin_resolve_delivery", p_session_id=sid, p_outcome="partial", p_refund_cents=2000)
    assert out["refund_cents"] == 2000 and credit_balance(db, customer) == 2000
    [payout] = _payouts(db, sid)
    assert payout["status"] == "queued" and payout["amount_cents"] < original
    books_balance(db)


@pytest.mark.parametrize(("outcome", "refund", "paid_out"), [("pay", None, True), ("refund", None, False),
                                                               ("partial", 1999, True)])
def test_admin_decides_an_unverified_session(db: Db, paid: dict[str, Any], outcome: str, refund: int | None,
                                            paid_out: bool) -> None:
    sid, customer = paid["session"], paid["customer"]
    start_both(db, sid)
    with db.as_user(paid["customer"]):
        assert db.rpc("end_session", p_session_id=sid)["delivery"] == "unverified"
    with db.as_user(paid["admin"]):
        out = db.rpc("admin_resolve_delivery", p_session_id=sid, p_outcome=outcome, p_refund_cents=refund)
    assert out["refund_cents"] == (DIAGNOSTIC if outcome == "refund" else refund or 0)
    assert credit_balance(db, customer) == out["refund_cents"]
    statuses = [p["status"] for p in _payouts(db, sid)]
    assert statuses == (["queued"] if paid_out else [])
    # the delivery stays as the evidence said; the counters count delivered sessions only
    assert db.scalar("select delivery from public.sessions where id = %s", (sid,)) == "unverified"
    assert db.scalar("select completed_sessions from public.mechanics where id = %s", (paid["mechanic"],)) == 0
    assert db.scalar("select private.refund_unverified_sessions(now() + interval '3 days')") == \
        {"unverified_refunded": 0}
    books_balance(db)


def test_report_window_closes_with_the_hold(db: Db, paid: dict[str, Any]) -> None:
    sid, customer = paid["session"], paid["customer"]
    deliver(db, sid)
    db.execute("update public.sessions set started_at = started_at - interval '24 hours', "
               "ended_at = ended_at - interval '24 hours' where id = %s", (sid,))  # it ended a day ago
    with db.as_user(customer):
        assert db.rpc_error("report_problem", p_session_id=sid, p_reason="too late") == "AD100"
    assert db.scalar("select count(*) from public.session_problem_reports") == 0


def test_report_refused_once_the_payouts_left(db: Db, paid: dict[str, Any]) -> None:
    sid = paid["session"]
    deliver(db, sid)
    release_hold(db, sid)
    with db.as_user(paid["customer"]):
        assert db.rpc_error("report_problem", p_session_id=sid, p_reason="x") == "AD100"


def test_report_and_decide_per_persona(db: Db, paid: dict[str, Any]) -> None:
    sid, customer, mechanic, admin, other = (paid["session"], paid["customer"], paid["mechanic"], paid["admin"],
                                             paid["other_customer"])
    deliver(db, sid)
    # report_problem: only the session's customer
    with db.as_user(other):
        assert db.rpc_error("report_problem", p_session_id=sid, p_reason="x") == "AD004"
    with db.as_user(mechanic):
        assert db.rpc_error("report_problem", p_session_id=sid, p_reason="x") == "AD003"
    with db.as_user(admin):
        assert db.rpc_error("report_problem", p_session_id=sid, p_reason="x") == "AD004"
    with db.as_anon():
        assert db.rpc_error("report_problem", p_session_id=sid, p_reason="x") == "42501"
    assert db.scalar("select count(*) from public.session_problem_reports") == 0
    with db.as_user(customer):
        db.rpc("report_problem", p_session_id=sid, p_reason="x")
    # the report and the decision: the session's two sides and admins read them; others do not
    assert db.scalar("select count(*) from public.session_problem_reports where session_id = %s", (sid,)) == 1
    for who, n in ((customer, 1), (mechanic, 1), (admin, 1), (other, 0)):
        with db.as_user(who):
            assert db.scalar("select count(*) from public.session_problem_reports") == n, who
    # admin_resolve_delivery, admin_delivery_queue, admin_release_payouts: admins only
    for who in (customer, mechanic, other):
        with db.as_user(who):
            assert db.rpc_error("admin_resolve_delivery", p_session_id=sid, p_outcome="refund") == "AD003"
            assert db.rpc_error("admin_delivery_queue") == "AD003"
            assert db.rpc_error("admin_release_payouts", p_mechanic_id=mechanic) == "AD003"
    with db.as_anon():
        assert db.rpc_error("admin_resolve_delivery", p_session_id=sid, p_outcome="refund") == "42501"
        assert db.rpc_error("admin_delivery_queue") == "42501"
    assert db.scalar("select count(*) from public.session_delivery_decisions") == 0
    with db.as_service():
        assert db.rpc_error("admin_resolve_delivery", p_session_id=sid, p_outcome="refund") == "AD002"
    with db.as_user(admin):
        db.rpc("admin_resolve_delivery", p_session_id=sid, p_outcome="pay")
    for who, n in ((customer, 1), (mechanic, 1), (admin, 1), (other, 0)):
        with db.as_user(who):
            assert db.scalar("select count(*) from public.session_delivery_decisions") == n, who
    # clients write neither table
    with db.as_user(customer):
        assert db.error("insert into public.session_problem_reports (session_id, customer_id, reason) "
                        "values (%s, %s, 'x')", (sid, customer)).sqlstate == "42501"
        assert db.error("delete from public.session_delivery_decisions").sqlstate == "42501"


def test_hostile_inputs_write_nothing(db: Db, paid: dict[str, Any]) -> None:
    sid, customer, admin = paid["session"], paid["customer"], paid["admin"]
    deliver(db, sid)
    with db.as_user(customer):
        for reason in (None, "", "   ", "x" * 100_000):
            assert db.rpc_error("report_problem", p_session_id=sid, p_reason=reason) == "AD001"
        assert db.rpc_error("report_problem", p_session_id="not-a-uuid", p_reason="x") == "22P02"
        assert db.rpc_error("report_problem", p_session_id=paid["mechanic"], p_reason="x") == "AD004"  # wrong kind of id
    with db.as_user(admin):
        assert db.rpc_error("admin_resolve_delivery", p_session_id=sid, p_outcome="pay") == "AD103"  # not reported
        assert db.rpc_error("admin_resolve_delivery", p_session_id=sid, p_outcome="PAY") == "AD001"
        assert db.rpc_error("admin_resolve_delivery", p_session_id=sid, p_outcome="x" * 10_000) == "AD001"
        assert db.rpc_error("admin_resolve_delivery", p_session_id=sid, p_outcome="refund",
                            p_refund_cents="lots") == "22P02"
        assert db.rpc_error("admin_resolve_delivery", p_session_id=customer, p_outcome="pay") == "AD004"
        assert db.rpc_error("admin_release_payouts", p_mechanic_id=customer) == "AD004"  # not a mechanic
    assert db.scalar("select count(*) from public.session_problem_reports") == 0
    assert db.scalar("select count(*) from public.session_delivery_decisions") == 0
    assert _payouts(db, sid)[0]["waiting_reason"].startswith("objection window")


def test_the_integrity_view_flags_a_payout_released_before_a_decision(db: Db, paid: dict[str, Any]) -> None:
    sid = paid["session"]
    deliver(db, sid)
    with db.as_user(paid["customer"]):
        db.rpc("report_problem", p_session_id=sid, p_reason="nothing done")
    books_balance(db)
    db.execute("update public.payouts set status = 'queued', waiting_reason = null where session_id = %s", (sid,))
    assert [r["problem"] for r in db.all("select problem from private.payment_integrity_issues")] == [
        "a payout left while its session waits for a decision"]
    with db.as_user(paid["admin"]):
        db.rpc("admin_resolve_delivery", p_session_id=sid, p_outcome="pay")
    books_balance(db)


def test_the_migration_backfills_sessions_completed_before_delivery_existed(db: Db) -> None:
    """Sessions completed under the old rule (delivery null) count as delivered; customers_served is
    the distinct customers among them; completed_sessions is left as it was."""
    from shared.config import project_dir

    mechanic, one, two = make_mechanic(db), make_customer(db), make_customer(db, "Tess Two")
    sessions = []
    for customer in (one, one, two):
        out = paid_with_credit(db, customer, "chat10")
        accept(db, mechanic, out["request_id"])
        start_both(db, out["session_id"])
        with db.as_user(mechanic):
            db.rpc("end_session", p_session_id=out["session_id"])
        sessions.append(out["session_id"])
    # as they were before the migration
    db.execute("update public.sessions set delivery = null where mechanic_id = %s", (mechanic,))
    db.execute("update public.mechanics set completed_sessions = 7, customers_served = 0 where id = %s", (mechanic,))
    text = (project_dir() / "supabase/migrations/20261129201000_delivery.sql").read_text()
    backfill = text[text.index("update public.sessions set delivery = 'delivered'"):text.index("where c.mechanic_id = m.id;")]
    db.execute(backfill + "where c.mechanic_id = m.id")
    assert db.scalar("select array_agg(distinct delivery) from public.sessions where mechanic_id = %s",
                     (mechanic,)) == ["delivered"]
    assert db.one("select completed_sessions, customers_served from public.mechanics where id = %s", (mechanic,)) == \
        {"completed_sessions": 7, "customers_served": 2}
