"""Standing: a pending or suspended mechanic cannot start, end or extend sessions or accept work,
and its payouts wait (with the reason) until an admin releases them; re-approval alone does not
release them. The customer can still end a live session of a suspended mechanic."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.support.delivery import (
    books_balance,
    credit_balance,
    paid_with_credit,
    release_hold,
    start_both,
    take_part,
)
from tests.support.factories import accept, approve, make_admin, make_customer, make_mechanic
from tests.support.harness import Db


def _payouts(db: Db, mechanic: uuid.UUID) -> list[tuple[str, str | None]]:
    return [(r["status"], r["waiting_reason"]) for r in db.all(
        "select status::text, waiting_reason from public.payouts where mechanic_id = %s order by id", (mechanic,))]


@pytest.fixture
def accepted(db: Db) -> dict[str, Any]:
    customer, mechanic, admin = make_customer(db), make_mechanic(db), make_admin(db)
    db.execute("insert into public.payout_accounts (mechanic_id, stripe_account_id, transfers_active)"
               " values (%s, %s, true)", (mechanic, "acct_" + uuid.uuid4().hex[:12]))
    out = paid_with_credit(db, customer, "diagnostic")
    accept(db, mechanic, out["request_id"])
    return {"customer": customer, "mechanic": mechanic, "admin": admin, "session": out["session_id"]}


def test_suspended_between_accept_and_start_cannot_act_and_is_not_paid(db: Db, accepted: dict[str, Any]) -> None:
    """Suspended after accepting: the session can no longer go live with that mechanic; it is
    cancelled and the customer refunded in full at once."""
    sid, customer, mechanic = accepted["session"], accepted["customer"], accepted["mechanic"]
    with db.as_user(mechanic):
        assert db.rpc("start_session", p_session_id=sid)["status"] == "waiting"  # ready before the suspension
    approve(db, mechanic, "suspended")
    assert db.one("select status::text, cancel_reason from public.sessions where id = %s", (sid,)) == \
        {"status": "cancelled", "cancel_reason": "the mechanic is suspended"}
    with db.as_user(mechanic):
        assert db.rpc_error("start_session", p_session_id=sid) == "AD006"
        assert db.rpc_error("end_session", p_session_id=sid) == "AD006"
    with db.as_user(customer):
        assert db.rpc_error("start_session", p_session_id=sid) == "AD006"
    assert credit_balance(db, customer) == 4999
    assert db.scalar("select count(*) from public.payouts") == 0
    assert db.scalar("select status::text from public.payments where session_id = %s", (sid,)) == "refunded"
    books_balance(db)


def test_standing_is_checked_when_starting_even_if_the_session_was_not_cancelled(
        db: Db, accepted: dict[str, Any]) -> None:
    """Defence in depth: a waiting session whose mechanic is not approved (here the cancelling
    trigger is disabled in this transaction) still cannot go live, by RPC or by LiveKit."""
    sid, customer, mechanic = accepted["session"], accepted["customer"], accepted["mechanic"]
    db.execute("alter table public.mechanics disable trigger _450_refresh_payouts")
    approve(db, mechanic, "suspended")
    db.execute("alter table public.mechanics enable trigger _450_refresh_payouts")
    assert db.scalar("select status::text from public.sessions where id = %s", (sid,)) == "waiting"
    with db.as_user(mechanic):
        assert db.rpc_error("start_session", p_session_id=sid) == "AD104"
        assert db.rpc_error("end_session", p_session_id=sid) == "AD006"  # never live
    with db.as_user(customer):
        assert db.rpc_error("start_session", p_session_id=sid) == "AD104"  # it cannot go live with them
    room = f"session-{sid}"
    for i, user in enumerate((customer, mechanic)):
        out = db.scalar("select private.apply_livekit_event(%s, 'participant_joined', %s, %s, now(), '{}')",
                        (f"sus{i}", room, str(user)))
    assert out["outcome"] == "recorded: mechanic not in good standing"
    assert db.scalar("select private.reconcile_room(%s, true, %s)", (sid, [str(customer), str(mechanic)])) == "ok"
    assert db.scalar("select status::text from public.sessions where id = %s", (sid,)) == "waiting"
    assert db.scalar("select count(*) from public.session_participants where session_id = %s and ready_at is not null",
                     (sid,)) == 0
    assert db.scalar("select count(*) from public.payouts") == 0
    books_balance(db)


def test_pending_or_suspended_mechanic_cannot_accept(db: Db) -> None:
    customer = make_customer(db)
    pending = make_mechanic(db, approved=False, name="Pat Pending")
    suspended = make_mechanic(db, name="Sam Suspended")
    approve(db, suspended, "suspended")
    out = paid_with_credit(db, customer, "video15")
    for who in (pending, suspended):
        with db.as_user(who):
            assert db.rpc_error("accept_request", p_request_id=out["request_id"]) == "AD003"
    assert db.scalar("select status::text from public.session_requests where id = %s", (out["request_id"],)) == \
        "pending"


def test_suspended_during_a_live_session_customer_ends_payouts_wait_for_an_admin(
        db: Db, accepted: dict[str, Any]) -> None:
    sid, customer, mechanic, admin = (accepted["session"], accepted["customer"], accepted["mechanic"],
                                      accepted["admin"])
    start_both(db, sid)
    take_part(db, sid)
    approve(db, mechanic, "suspended")
    with db.as_user(mechanic):
        assert db.rpc_error("end_session", p_session_id=sid) == "AD104"
        assert db.rpc_error("request_extension", p_session_id=sid, p_minutes=15) == "AD104"
    with db.as_user(customer):
        assert db.rpc_error("request_extension", p_session_id=sid, p_minutes=15) == "AD104"
        out = db.rpc("end_session", p_session_id=sid)  # the customer can always end it
    assert out["status"] == "completed" and out["delivery"] == "delivered"
    assert db.scalar("select count(*) from public.session_extensions where session_id = %s", (sid,)) == 0
    release_hold(db, sid)  # the objection window is over: the standing still holds them
    assert _payouts(db, mechanic) == [("waiting", "mechanic suspended: payouts wait for an admin release")]
    # approving again does not release them by itself
    approve(db, mechanic, "approved")
    assert _payouts(db, mechanic) == [("waiting", "mechanic payouts held since a suspension: wait for an admin release")]
    assert db.scalar("select payouts_held from public.mechanics where id = %s", (mechanic,)) is True
    with db.as_user(admin):
        out = db.rpc("admin_release_payouts", p_mechanic_id=mechanic)
    assert out["payouts_held"] is False and out["payouts_queued"] == 1 and out["payouts_waiting"] == []
    assert _payouts(db, mechanic) == [("queued", None)]
    assert db.scalar("select admin_released_at is not null from public.payouts where mechanic_id = %s",
                     (mechanic,)) is True
    books_balance(db)


def test_suspension_takes_back_a_queued_payout_and_the_worker_refuses_it(db: Db, accepted: dict[str, Any]) -> None:
    sid, mechanic, admin = accepted["session"], accepted["mechanic"], accepted["admin"]
    start_both(db, sid)
    take_part(db, sid)
    with db.as_user(mechanic):
        db.rpc("end_session", p_session_id=sid)
    release_hold(db, sid)
    assert _payouts(db, mechanic) == [("queued", None)]
    approve(db, mechanic, "suspended")
    assert _payouts(db, mechanic) == [("waiting", "mechanic suspended: payouts wait for an admin release")]
    pid = db.scalar("select id from public.payouts where mechanic_id = %s", (mechanic,))
    db.execute("update public.payouts set status = 'queued' where id = %s", (pid,))  # a stale queue entry
    assert db.all("select * from private.start_payout_job(%s)", (pid,)) == []
    assert _payouts(db, mechanic)[0][0] == "waiting"
    # an admin may release what was earned while still suspended: this payout goes, later ones wait
    with db.as_user(admin):
        out = db.rpc("admin_release_payouts", p_mechanic_id=mechanic)
    assert out["payouts_held"] is True and out["payouts_queued"] == 1
    assert _payouts(db, mechanic) == [("queued", None)]
    books_balance(db)


def test_a_mechanic_sent_back_to_pending_is_treated_as_suspended(db: Db, accepted: dict[str, Any]) -> None:
    approve(db, accepted["mechanic"], "pending")
    assert db.scalar("select status::text from public.sessions where id = %s", (accepted["session"],)) == "cancelled"
    assert credit_balance(db, accepted["customer"]) == 4999
    assert db.scalar("select payouts_held from public.mechanics where id = %s", (accepted["mechanic"],)) is True


def test_suspension_cancels_and_refunds_a_booked_session(db: Db) -> None:
    from tests.support.scheduling import at, book, every_day, future_day, scheduled_mechanic

    mechanic = scheduled_mechanic(db, "UTC", every_day("09:00", "17:00"))
    customer = make_customer(db)
    with db.as_user(make_admin(db)):
        db.rpc("admin_grant_credit", p_customer_id=customer, p_amount_cents=999, p_reason="test")
    out = book(db, customer, mechanic, at(future_day(), "10:00"), plan="chat10")
    sid = out["session_id"]
    assert db.scalar("select status::text from public.sessions where id = %s", (sid,)) == "scheduled"
    assert credit_balance(db, customer) == 0
    approve(db, mechanic, "suspended")
    assert db.scalar("select status::text from public.sessions where id = %s", (sid,)) == "cancelled"
    assert credit_balance(db, customer) == 999
    books_balance(db)
