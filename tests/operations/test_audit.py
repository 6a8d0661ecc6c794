"""admin_audit: every admin action, from every audit that holds one, in one row shape."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.support.delivery import paid_with_credit
from tests.support.factories import make_customer, make_intake, make_world
from tests.support.harness import Db
from tests.support.reviews import session_between, submit

ROW_KEYS = {"at", "admin_id", "action", "subject_type", "subject_id", "reason", "data"}


@pytest.fixture
def world(db):
    return make_world(db)


def _audit(db: Db, admin: uuid.UUID, **kw: Any) -> list[dict[str, Any]]:
    with db.as_user(admin):
        return db.all(
            "select * from public.admin_audit(p_subject_id => %(s)s::uuid, p_from => %(f)s::timestamptz,"
            " p_limit => %(l)s::int)",
            {"s": kw.get("p_subject_id"), "f": kw.get("p_from"), "l": kw.get("p_limit", 1000)},
        )


def _one(rows: list[dict[str, Any]], action: str, subject: Any) -> dict[str, Any]:
    found = [r for r in rows if r["action"] == action and r["subject_id"] == subject]
    assert len(found) == 1, (action, subject, [(r["action"], r["subject_id"]) for r in rows])
    return found[0]


def test_every_kind_of_admin_action_appears(db, world):
    admin = world.admin
    # what the admins act on, built first (the actor of a status change is the transaction's)
    intake = make_intake(db, world.other_customer)
    payer = make_customer(db, "Pat Payer")
    paid = paid_with_credit(db, payer)  # its credit granted by an admin (credit_ledger)
    unverified = session_between(db, make_customer(db, "Una Unverified"), world.mechanic, delivery="unverified")
    reviewer = make_customer(db, "Rita Reviewer")
    reviewed = session_between(db, reviewer, world.mechanic)
    review = submit(db, reviewer, reviewed, 1, "rude words here")["review_id"]
    suppression = db.scalar(
        "insert into private.email_suppressions (address, reason) values"
        " ('bounced@example.test', 'hard_bounce') returning id"
    )
    with db.as_user(admin):
        # an intake edit (private.admin_actions)
        db.rpc("admin_update_intake", p_intake_id=intake, p_status="resolved", p_note="duplicate")
        # an offer (private.admin_actions), then a force-end (session_events by an admin)
        db.rpc("admin_assign_request", p_request_id=world.request, p_mechanic_id=world.other_mechanic)
        db.rpc("admin_force_end_session", p_session_id=world.session, p_reason="customer unreachable")
        # a refund (refunds)
        db.rpc("admin_refund", p_session_id=paid["session_id"], p_amount_cents=500, p_reason="late start")
        # a delivery decision on an unverified session (session_delivery_decisions)
        db.rpc("admin_resolve_delivery", p_session_id=unverified, p_outcome="pay")
        # a hidden review (mechanic_reviews)
        db.rpc("admin_hide_review", p_review_id=review, p_reason="abusive language")
        # a lifted email suppression (private.email_suppressions)
        db.rpc("admin_lift_email_suppression", p_address="bounced@example.test", p_note="mailbox fixed")
        # a workshop verified and payouts released (recorded in private.admin_actions by their RPCs)
        db.rpc("admin_set_workshop_status", p_workshop_id=world.organization, p_status="verified")
        db.rpc("admin_release_payouts", p_mechanic_id=world.mechanic)

    rows = _audit(db, admin)
    assert all(set(r) == ROW_KEYS for r in rows)
    assert [
        (r["action"], r["subject_type"])
        for r in rows
        # the factories approve mechanics through another admin (mechanic.set_status)
        if r["admin_id"] != admin and r["action"] not in ("credit.grant", "mechanic.set_status")
    ] == []

    row = _one(rows, "intake.update", intake)
    assert row["subject_type"] == "intake" and row["reason"] == "duplicate"
    assert row["data"] == {"from": "new", "to": "resolved"}
    row = _one(rows, "request.offer", world.request)
    assert row["subject_type"] == "request" and row["data"] == {"mechanic_id": str(world.other_mechanic)}
    row = _one(rows, "session.cancelled", world.session)
    assert row["reason"] == "customer unreachable" and row["data"]["from"] == "pending"
    grants = [r for r in rows if r["action"] == "credit.grant" and r["subject_id"] == payer]
    assert len(grants) == 1 and grants[0]["subject_type"] == "customer" and grants[0]["reason"] == "test credit"
    assert grants[0]["admin_id"] is not None and grants[0]["data"]["amount_cents"] > 0
    row = _one(rows, "refund.create", uuid.UUID(str(paid["session_id"])))
    assert row["reason"] == "late start" and row["data"]["amount_cents"] == 500
    row = _one(rows, "delivery.decide", unverified)
    assert row["data"] == {"outcome": "pay", "refund_cents": 0}
    row = _one(rows, "review.hide", uuid.UUID(str(review)))
    assert row["reason"] == "abusive language" and row["data"] == {"mechanic_id": str(world.mechanic)}
    row = _one(rows, "email.lift_suppression", None)
    assert row["reason"] == "mailbox fixed" and row["data"]["suppression_id"] == suppression
    row = _one(rows, "workshop.set_status", world.organization)
    assert row["data"] == {"from": "pending", "to": "verified"}
    row = _one(rows, "payouts.release", world.mechanic)
    assert row["subject_type"] == "mechanic"


def test_filters_by_subject_time_and_limit(db, world):
    admin = world.admin
    a, b = make_intake(db, world.other_customer), make_intake(db, world.other_customer)
    with db.as_user(admin):
        db.rpc("admin_update_intake", p_intake_id=a, p_status="resolved")
        db.rpc("admin_update_intake", p_intake_id=b, p_status="cancelled")
        db.rpc("admin_update_intake", p_intake_id=a, p_status="new")
    only_a = _audit(db, admin, p_subject_id=a)
    assert {r["subject_id"] for r in only_a} == {a}
    assert {r["data"]["to"] for r in only_a} == {"new", "resolved"}
    # an older record falls out of p_from
    db.execute("update private.admin_actions set at = now() - interval '3 days' where subject_id = %s", (b,))
    recent = _audit(db, admin, p_from=db.scalar("select now() - interval '1 day'"))
    assert b not in {r["subject_id"] for r in recent} and a in {r["subject_id"] for r in recent}
    everything = [r["subject_id"] for r in _audit(db, admin)]
    assert everything.index(b) > max(i for i, s in enumerate(everything) if s == a)  # newest first
    assert len(_audit(db, admin, p_limit=1)) == 1
    # the session of another subject does not leak into a subject's filter
    assert _audit(db, admin, p_subject_id=world.session) == []


def test_only_admins_read_the_audit(db, world):
    intake = make_intake(db, world.customer)
    with db.as_user(world.admin):
        db.rpc("admin_update_intake", p_intake_id=intake, p_status="resolved")
    assert len(_audit(db, world.admin, p_subject_id=intake)) == 1  # the record exists
    for persona in (
        world.customer,
        world.other_customer,
        world.mechanic,
        world.other_mechanic,
        world.pending_mechanic,
        world.workshop_admin,
    ):
        with db.as_user(persona):
            assert db.rpc_error("admin_audit", p_subject_id=intake) == "AD003"
            assert db.rpc_error("admin_audit") == "AD003"
    with db.as_role("authenticated", {"role": "authenticated"}):
        assert db.rpc_error("admin_audit") == "AD002"
    with db.as_anon():
        assert db.error("select * from public.admin_audit()").sqlstate == "42501"
        assert db.error("select * from private.admin_actions").sqlstate == "42501"


def test_audit_hostile_input(db, world):
    with db.as_user(world.admin):
        for limit in (0, -1, 1001, None):
            assert db.rpc_error("admin_audit", p_limit=limit) == "AD001", limit
        assert db.rpc_error("admin_audit", p_from="infinity") == "AD001"
        assert db.rpc_error("admin_audit", p_from="yesterday-ish") == "22007"
        assert db.rpc_error("admin_audit", p_subject_id="not-a-uuid") == "22P02"
    # the cap is a setting
    db.execute("update private.settings set value = '5' where key = 'operations.audit_max_limit'")
    with db.as_user(world.admin):
        assert db.rpc_error("admin_audit", p_limit=6) == "AD001"
        assert len(db.all("select * from public.admin_audit(p_limit => 5)")) <= 5


def test_a_bare_mechanic_status_change_is_audited(db, world):
    """admin_set_mechanic_status (the plain status flip, without vetting's or suspension's effects)
    records which admin changed which mechanic to what."""
    with db.as_user(world.admin):
        db.rpc("admin_set_mechanic_status", p_mechanic_id=world.other_mechanic, p_status="suspended")
    mine = [r for r in _audit(db, world.admin, p_subject_id=world.other_mechanic) if r["admin_id"] == world.admin]
    row = _one(mine, "mechanic.set_status", world.other_mechanic)
    assert (row["subject_type"], row["data"]) == ("mechanic", {"to": "suspended"})
    # a refused call records nothing: the mechanic's only status records are its approval by the
    # factories' admin
    before = _audit(db, world.admin, p_subject_id=world.mechanic)
    with db.as_user(world.customer):
        assert db.rpc_error("admin_set_mechanic_status", p_mechanic_id=world.mechanic, p_status="suspended") == "AD003"
    assert _audit(db, world.admin, p_subject_id=world.mechanic) == before
    assert [r["data"] for r in before if r["action"] == "mechanic.set_status"] == [{"to": "approved"}]
