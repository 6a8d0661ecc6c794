"""The lifecycle functions (core/lifecycle.sql): a final status only through them, each step of
complete and cancel exactly once, and the refund of a session cancelled before it started."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.delivery import deliver, start_both
from tests.support.factories import accept, make_admin, make_customer, make_intake, make_mechanic, make_world
from tests.support.harness import Db


def _credit_session(db: Db, plan: str = "micro") -> dict[str, Any]:
    """A session paid with credit (pending, its request pending)."""
    admin, customer = make_admin(db), make_customer(db)
    with db.as_user(admin):
        db.rpc("admin_grant_credit", p_customer_id=customer, p_amount_cents=5000, p_reason="test")
    out = db.scalar("select private.prepare_checkout(%s, %s, %s, null, null, false)",
                    (customer, plan, make_intake(db, customer)))
    return {**out, "customer": customer}


def _effects(db: Db, session_id: Any) -> dict[str, Any]:
    """Everything a completion or a cancellation writes beyond the session row."""
    return {
        "events": db.all("select entity, from_status, to_status, actor_role, reason from public.session_events"
                         " where session_id = %s order by id", (session_id,)),
        "payouts": db.scalar("select count(*) from public.payouts where session_id = %s", (session_id,)),
        "settled": db.scalar("select count(*) from public.payments where session_id = %s and settled_at is not null",
                             (session_id,)),
        "refunds": db.all("select r.amount_cents, r.status::text as status, r.origin::text as origin"
                          " from public.refunds r join public.payments p on p.id = r.payment_id"
                          " where p.session_id = %s order by r.seq", (session_id,)),
        "micro": db.all("select reserved_minutes, actual_minutes, settled_at is not null as settled"
                        " from public.micro_minute_usage where session_id = %s", (session_id,)),
        "jobs": sorted(r["key"] for r in db.all(
            "select kind || ' ' || coalesce(payload ->> 'template', '') as key from private.outbox"
            " where payload ->> 'session_id' = %s", (str(session_id),))),
        "credit": db.scalar("select coalesce(sum(amount_cents), 0) from public.credit_ledger"
                            " where customer_id = (select customer_id from public.sessions where id = %s)",
                            (session_id,)),
    }


@pytest.mark.parametrize("role", ["owner", "service_role"])
def test_a_direct_final_status_is_refused_and_writes_nothing(db: Db, role: str) -> None:
    out = _credit_session(db)
    mechanic = make_mechanic(db)
    accept(db, mechanic, out["request_id"])
    start_both(db, out["session_id"])
    sid = out["session_id"]
    before = _effects(db, sid)
    row = db.one("select * from public.sessions where id = %s", (sid,))
    if role == "service_role":
        # its grants already keep the service role from writing a status; with them, the guard still refuses
        db.execute("set local role service_role")
        assert db.error("update public.sessions set status = 'completed' where id = %s", (sid,)).sqlstate == "42501"
        db.execute("reset role")
        db.execute("grant update on public.sessions, public.session_requests to service_role")  # rolled back
        db.execute("set local role service_role")
    for status in ("completed", "cancelled"):
        err = db.error("update public.sessions set status = %s where id = %s", (status, sid))
        assert err.sqlstate == "AD080", err
    err = db.error("update public.session_requests set status = 'cancelled' where session_id = %s", (sid,))
    assert err.sqlstate == "AD080", err
    if role == "service_role":
        db.execute("reset role")
    assert db.one("select * from public.sessions where id = %s", (sid,)) == row
    assert _effects(db, sid) == before


def test_a_direct_expiry_is_refused(db: Db) -> None:
    w = make_world(db)
    err = db.error("update public.session_requests set status = 'expired' where id = %s", (w.request,))
    assert err.sqlstate == "AD080"
    assert db.scalar("select status from public.session_requests where id = %s", (w.request,)) == "pending"


def test_completing_runs_each_step_once(db: Db) -> None:
    out = _credit_session(db, "micro")
    sid = out["session_id"]
    mechanic = make_mechanic(db)
    accept(db, mechanic, out["request_id"])
    done = deliver(db, sid, notes="Tighten the battery clamp.", minutes=3)
    assert done["status"] == "completed" and done["delivery"] == "delivered"
    after = _effects(db, sid)
    assert after["events"][-1] == {"entity": "session", "from_status": "live", "to_status": "completed",
                                   "actor_role": "mechanic", "reason": None}
    assert [e["to_status"] for e in after["events"]].count("completed") == 1
    assert after["payouts"] == 1 and after["settled"] == 1 and after["refunds"] == []
    assert after["micro"] == [{"reserved_minutes": 10, "actual_minutes": 3, "settled": True}]  # live 3 minutes
    assert after["jobs"] == ["email.send booking_confirmed", "email.send mechanic_assigned",
                             "email.send review_prompt", "email.send session_ended",
                             "email.send summary_delivered", "livekit.delete_room "]
    assert db.scalar("select status from public.mechanic_commitments where session_id = %s", (sid,)) == "done"
    assert db.scalar("select completed_sessions from public.mechanics where id = %s", (mechanic,)) == 1
    assert db.scalar("select i.status from public.intakes i join public.sessions s on s.intake_id = i.id"
                     " where s.id = %s", (sid,)) == "resolved"

    # a second completion, by any path, is an invalid transition and changes nothing
    with db.as_user(mechanic):
        assert db.rpc_error("end_session", p_session_id=sid) == "AD006"
    assert db.error("select private.complete_session(%s, null, null, now(), 'system')", (sid,)).sqlstate == "AD006"
    admin = make_admin(db)
    with db.as_user(admin):
        assert db.rpc_error("admin_force_end_session", p_session_id=sid, p_reason="again") == "AD006"
    db.execute("select private.cancel_session(%s, 'late', now(), 'system')", (sid,))  # an ended session stays
    assert db.scalar("select status from public.sessions where id = %s", (sid,)) == "completed"
    assert _effects(db, sid) == after
    assert db.scalar("select completed_sessions from public.mechanics where id = %s", (mechanic,)) == 1


def test_cancelling_before_the_start_refunds_in_full(db: Db) -> None:
    out = _credit_session(db, "chat10")
    sid, customer = out["session_id"], out["customer"]
    before = _effects(db, sid)
    with db.as_user(customer):
        db.rpc("cancel_request", p_request_id=out["request_id"], p_reason="fixed it myself")
    after = _effects(db, sid)
    assert db.scalar("select status from public.sessions where id = %s", (sid,)) == "cancelled"
    assert db.scalar("select status from public.session_requests where id = %s", (out["request_id"],)) == "cancelled"
    assert after["refunds"] == [{"amount_cents": 999, "status": "succeeded", "origin": "automatic"}]
    assert after["credit"] == before["credit"] + 999  # a credit payment comes back as credit
    assert after["payouts"] == 0 and after["micro"] == []
    assert "livekit.delete_room " not in after["jobs"]  # it never had a room
    assert [(e["entity"], e["to_status"], e["actor_role"], e["reason"]) for e in after["events"][-2:]] == [
        ("session", "cancelled", "customer", "fixed it myself"), ("request", "cancelled", "customer", "fixed it myself")]
    # cancelling again does nothing more
    db.execute("select private.cancel_session(%s, 'again', now(), 'system')", (sid,))
    assert _effects(db, sid) == after


def test_cancelling_a_waiting_session_closes_its_room_and_frees_the_micro_minutes(db: Db) -> None:
    out = _credit_session(db, "micro")
    sid = out["session_id"]
    mechanic = make_mechanic(db)
    accept(db, mechanic, out["request_id"])
    admin = make_admin(db)
    with db.as_user(admin):
        db.rpc("admin_force_end_session", p_session_id=sid, p_reason="customer unreachable")
    after = _effects(db, sid)
    assert after["refunds"] == []  # a mechanic had it: no automatic refund
    assert after["micro"] == [{"reserved_minutes": 10, "actual_minutes": 0, "settled": True}]
    assert after["jobs"].count("livekit.delete_room ") == 1
    assert after["events"][-2]["actor_role"] == "admin" and after["events"][-2]["reason"] == "customer unreachable"


def test_the_lifecycle_restores_the_callers_actor(db: Db) -> None:
    w = make_world(db)
    db.execute("select private.set_actor('admin', 'outer')")
    db.execute("select private.cancel_session(%s, 'inner', now(), 'system')", (w.session,))
    assert db.one("select current_setting('autodoctor.actor_role') as role, current_setting('autodoctor.reason') as r") \
        == {"role": "admin", "r": "outer"}
    assert db.scalar("select actor_role from public.session_events where session_id = %s and to_status = 'cancelled'"
                     " and entity = 'session'", (w.session,)) == "system"


def test_only_the_service_role_may_call_the_lifecycle_functions(db: Db) -> None:
    for fn in ("complete_session", "cancel_session", "expire_request", "lifecycle_allow"):
        grants = db.one("select bool_or(has_function_privilege('authenticated', p.oid, 'execute')) as authenticated,"
                        " bool_or(has_function_privilege('anon', p.oid, 'execute')) as anon,"
                        " bool_and(has_function_privilege('service_role', p.oid, 'execute')) as service"
                        " from pg_proc p where p.pronamespace = 'private'::regnamespace and p.proname = %s", (fn,))
        assert grants == {"authenticated": False, "anon": False, "service": True}, fn
