"""Session and request lifecycles: every allowed and every forbidden transition, and the RPC flows."""

from __future__ import annotations

import itertools
import uuid

import psycopg
import pytest

from tests.support.delivery import start_both, take_part
from tests.support.factories import accept, make_customer, make_intake, make_mechanic, make_world, request_free

SESSION_STATES = ["pending", "scheduled", "waiting", "live", "completed", "cancelled"]
REQUEST_STATES = ["pending", "accepted", "unattended", "expired", "cancelled"]
SESSION_ALLOWED = {
    ("pending", "waiting"), ("pending", "scheduled"), ("pending", "cancelled"),
    ("scheduled", "waiting"), ("scheduled", "cancelled"),
    ("waiting", "live"), ("waiting", "cancelled"), ("waiting", "pending"),
    ("live", "completed"), ("live", "cancelled"),
}
REQUEST_ALLOWED = {
    ("pending", "accepted"), ("pending", "unattended"), ("pending", "expired"), ("pending", "cancelled"),
    ("unattended", "accepted"), ("unattended", "expired"), ("unattended", "cancelled"),
    ("accepted", "pending"), ("accepted", "cancelled"),
}

FINAL = {"completed", "cancelled", "expired"}


def _raw_session(db, customer, mechanic, status):
    """A session row put straight into `status` (triggers off for the insert only)."""
    db.execute("set local session_replication_role = replica")
    try:
        return db.scalar(
            "insert into public.sessions (customer_id, mechanic_id, plan_code, session_type, duration_type,"
            " planned_minutes, price_cents, status) values (%s, %s, 'free', 'chat', 'micro', 5, 0, %s) returning id",
            (customer, mechanic, status),
        )
    finally:
        db.execute("set local session_replication_role = origin")


@pytest.fixture
def pair(db):
    return make_customer(db), make_mechanic(db)


@pytest.mark.parametrize(("src", "dst"), [p for p in itertools.product(SESSION_STATES, repeat=2) if p[0] != p[1]])
def test_session_transition(db, pair, src, dst):
    customer, mechanic = pair
    sid = _raw_session(db, customer, mechanic, src)
    events_before = db.scalar("select count(*) from public.session_events where session_id = %s", (sid,))
    query = "update public.sessions set status = %s where id = %s"
    if (src, dst) in SESSION_ALLOWED:
        if dst in FINAL:  # only through the lifecycle functions (core/lifecycle.sql), which allow it so
            assert db.error(query, (dst, sid)).sqlstate == "AD080"
            db.execute("select private.lifecycle_allow(%s)", (sid,))
        db.execute(query, (dst, sid))
        assert db.scalar("select status from public.sessions where id = %s", (sid,)) == dst
        event = db.one("select from_status, to_status, actor_role from public.session_events where session_id = %s"
                       " order by id desc limit 1", (sid,))
        assert event == {"from_status": src, "to_status": dst, "actor_role": "system"}
    else:
        err = db.error(query, (dst, sid))
        assert err.sqlstate == "AD006"
        assert db.scalar("select status from public.sessions where id = %s", (sid,)) == src
        assert db.scalar("select count(*) from public.session_events where session_id = %s", (sid,)) == events_before


@pytest.mark.parametrize(("src", "dst"), [p for p in itertools.product(REQUEST_STATES, repeat=2) if p[0] != p[1]])
def test_request_transition(db, pair, src, dst):
    customer, mechanic = pair
    sid = _raw_session(db, customer, mechanic, "pending")
    db.execute("set local session_replication_role = replica")
    rid = db.scalar(
        "insert into public.session_requests (session_id, customer_id, plan_code, session_type, status, mechanic_id,"
        " concern) values (%s, %s, 'free', 'chat', %s, %s, 'noise') returning id",
        (sid, customer, src, mechanic if src == "accepted" else None),
    )
    db.execute("set local session_replication_role = origin")
    mech = mechanic if dst == "accepted" else (None if dst in ("pending", "unattended") else mechanic)
    query = "update public.session_requests set status = %s, mechanic_id = %s where id = %s"
    if (src, dst) in REQUEST_ALLOWED:
        if dst in FINAL:
            assert db.error(query, (dst, mech, rid)).sqlstate == "AD080"
            db.execute("select private.lifecycle_allow(%s)", (sid,))
        db.execute(query, (dst, mech, rid))
        assert db.scalar("select status from public.session_requests where id = %s", (rid,)) == dst
        assert db.scalar("select to_status from public.session_events where request_id = %s order by id desc limit 1",
                         (rid,)) == dst
    else:
        err = db.error(query, (dst, mech, rid))
        assert err.sqlstate in ("AD006", "23514"), err  # a lifecycle error, or the status/mechanic rule
        if err.sqlstate == "23514":  # the shape rule fired first: the lifecycle must refuse it too
            err = db.error("update public.session_requests set status = %s where id = %s", (dst, rid))
            assert err.sqlstate in ("AD006", "23514")
        assert db.scalar("select status from public.session_requests where id = %s", (rid,)) == src


def test_new_rows_start_at_the_beginning(db, pair):
    customer, mechanic = pair
    err = db.error(
        "insert into public.sessions (customer_id, mechanic_id, plan_code, session_type, duration_type,"
        " planned_minutes, price_cents, status) values (%s, %s, 'free', 'chat', 'micro', 5, 0, 'live')",
        (customer, mechanic),
    )
    assert err.sqlstate == "AD006"


def test_free_request_creates_pending_session_and_request(db):
    w = make_world(db)
    session = db.one("select * from public.sessions where id = %s", (w.session,))
    request = db.one("select * from public.session_requests where id = %s", (w.request,))
    assert session["status"] == "pending" and session["price_cents"] == 0 and session["planned_minutes"] == 5
    assert session["customer_id"] == w.customer and session["intake_id"] == w.intake
    assert request["status"] == "pending" and request["session_id"] == w.session
    assert (request["vehicle_make"], request["vehicle_model"], request["vehicle_year"]) == ("Honda", "Civic", 2018)
    assert db.scalar("select status from public.intakes where id = %s", (w.intake,)) == "pending"
    events = db.all("select entity, from_status, to_status, actor_id, actor_role from public.session_events"
                    " where session_id = %s order by id", (w.session,))
    assert [(e["entity"], e["from_status"], e["to_status"]) for e in events] == [
        ("session", None, "pending"), ("request", None, "pending")]
    assert all(e["actor_id"] == w.customer and e["actor_role"] == "customer" for e in events)


def test_paid_plan_requires_payment_and_writes_nothing(db):
    customer = make_customer(db)
    intake = make_intake(db, customer)
    before = db.scalar("select count(*) from public.sessions")
    with db.as_user(customer):
        assert db.rpc_error("request_session", p_plan_code="video15", p_intake_id=intake) == "AD008"
        # the specialist surcharge makes even the free plan paid
        assert db.rpc_error("request_session", p_plan_code="free", p_intake_id=intake, p_specialist=True) == "AD008"
    assert db.scalar("select count(*) from public.sessions") == before


def test_one_active_request_per_intake(db):
    customer = make_customer(db)
    intake = make_intake(db, customer)
    request_free(db, customer, intake=intake)
    with db.as_user(customer):
        assert db.rpc_error("request_session", p_plan_code="free", p_intake_id=intake) == "AD005"


def test_accept_assigns_everything(db):
    w = make_world(db)
    # routed when filed: the other mechanic holds an offer too
    assert db.scalar("select status::text from public.session_offers where request_id = %s and mechanic_id = %s",
                     (w.request, w.other_mechanic)) == "offered"
    result = accept(db, w.mechanic, w.request)
    # its workshop accepts micro-sessions automatically: no dispatcher approval to wait for
    assert result == {"request_id": str(w.request), "session_id": str(w.session), "status": "accepted",
                      "approval_pending_until": None}
    request = db.one("select status, mechanic_id, accepted_at from public.session_requests where id = %s", (w.request,))
    assert request["status"] == "accepted" and request["mechanic_id"] == w.mechanic and request["accepted_at"]
    session = db.one("select status, mechanic_id from public.sessions where id = %s", (w.session,))
    assert session == {"status": "waiting", "mechanic_id": w.mechanic}
    roles = {r["user_id"]: r["role"] for r in db.all(
        "select user_id, role::text as role from public.session_participants where session_id = %s", (w.session,))}
    assert roles == {w.customer: "customer", w.mechanic: "mechanic"}
    offers = {r["mechanic_id"]: r["status"] for r in db.all(
        "select mechanic_id, status::text from public.session_offers where request_id = %s", (w.request,))}
    assert offers == {None: "withdrawn", w.mechanic: "accepted", w.other_mechanic: "withdrawn"}
    commitment = db.one("select kind, status from public.mechanic_commitments where session_id = %s", (w.session,))
    assert commitment == {"kind": "on_demand", "status": "in_progress"}
    assert db.scalar("select status from public.intakes where id = %s", (w.intake,)) == "in_progress"


def test_accept_errors(db):
    w = make_world(db)
    with db.as_user(w.pending_mechanic):
        assert db.rpc_error("accept_request", p_request_id=w.request) == "AD003"
    with db.as_user(w.other_customer):
        assert db.rpc_error("accept_request", p_request_id=w.request) == "AD003"
    with db.as_user(w.mechanic):
        assert db.rpc_error("accept_request", p_request_id=uuid.uuid4()) == "AD004"
    accept(db, w.mechanic, w.request)
    with db.as_user(w.other_mechanic):
        assert db.rpc_error("accept_request", p_request_id=w.request) == "AD009"
    second = request_free(db, w.other_customer)
    with db.as_user(w.mechanic):  # already holding the first one
        assert db.rpc_error("accept_request", p_request_id=second["request_id"]) == "AD010"
    with db.as_anon():
        assert db.error("select public.accept_request(%s)", (w.request,)).sqlstate == "42501"


def test_suspended_mechanic_cannot_accept(db):
    w = make_world(db)
    with db.as_user(w.admin):
        db.rpc("admin_set_mechanic_status", p_mechanic_id=w.other_mechanic, p_status="suspended")
    with db.as_user(w.other_mechanic):
        assert db.rpc_error("accept_request", p_request_id=w.request) == "AD003"


def test_mechanic_cannot_take_own_request(db):
    w = make_world(db)
    own = request_free(db, w.mechanic)  # a mechanic is also a customer sometimes
    with db.as_user(w.mechanic):
        assert db.rpc_error("accept_request", p_request_id=own["request_id"]) == "AD003"


def test_full_flow_start_and_end(db):
    w = make_world(db)
    accept(db, w.mechanic, w.request)
    assert start_both(db, w.session)["status"] == "live"
    take_part(db, w.session)
    with db.as_user(w.mechanic):
        ended = db.rpc("end_session", p_session_id=w.session, p_notes="Replace front pads soon.")
    assert ended["status"] == "completed" and ended["duration_minutes"] >= 0 and ended["delivery"] == "delivered"
    session = db.one("select status, mechanic_notes, started_at, ended_at from public.sessions where id = %s",
                     (w.session,))
    assert session["status"] == "completed" and session["mechanic_notes"] == "Replace front pads soon."
    assert db.scalar("select status from public.mechanic_commitments where session_id = %s", (w.session,)) == "done"
    assert db.scalar("select completed_sessions from public.mechanics where id = %s", (w.mechanic,)) == 1
    assert db.scalar("select status from public.intakes where id = %s", (w.intake,)) == "resolved"
    # free again: the mechanic can take the next request
    nxt = request_free(db, w.other_customer)
    assert accept(db, w.mechanic, nxt["request_id"])["status"] == "accepted"
    transitions = [(r["entity"], r["from_status"], r["to_status"], r["actor_role"]) for r in db.all(
        "select entity, from_status, to_status, actor_role from public.session_events where session_id = %s"
        " order by id", (w.session,))]
    assert transitions == [
        ("session", None, "pending", "customer"), ("request", None, "pending", "customer"),
        ("request", "pending", "accepted", "mechanic"), ("session", "pending", "waiting", "mechanic"),
        ("session", "waiting", "live", "mechanic"), ("session", "live", "completed", "mechanic"),
    ]


def test_start_and_end_rules(db):
    w = make_world(db)
    with db.as_user(w.customer):
        assert db.rpc_error("start_session", p_session_id=w.session) == "AD006"  # still pending
        assert db.rpc_error("end_session", p_session_id=w.session) == "AD006"
    accept(db, w.mechanic, w.request)
    with db.as_user(w.other_customer):
        assert db.rpc_error("start_session", p_session_id=w.session) == "AD004"
    with db.as_user(w.other_mechanic):
        assert db.rpc_error("end_session", p_session_id=w.session) == "AD004"
    with db.as_user(w.customer):
        # one participant alone does not take it live; a repeated call answers the same
        for _ in range(2):
            assert db.rpc("start_session", p_session_id=w.session) == {
                "session_id": str(w.session), "status": "waiting", "started_at": None, "waiting_for": "mechanic"}
        assert db.rpc_error("end_session", p_session_id=w.session) == "AD006"
    with db.as_user(w.mechanic):
        live = db.rpc("start_session", p_session_id=w.session)
        assert live["status"] == "live" and live["waiting_for"] is None
        assert db.rpc("start_session", p_session_id=w.session) == live  # idempotent once live too
    with db.as_user(w.customer):
        # the customer may end; its text is not stored as the mechanic's notes
        assert db.rpc("end_session", p_session_id=w.session, p_notes="thanks")["status"] == "completed"
    assert db.scalar("select mechanic_notes from public.sessions where id = %s", (w.session,)) is None


def test_customer_cancels_pending_request(db):
    w = make_world(db)
    with db.as_user(w.customer):
        result = db.rpc("cancel_request", p_request_id=w.request, p_reason="found the problem")
    assert result["status"] == "cancelled"
    assert db.scalar("select status from public.sessions where id = %s", (w.session,)) == "cancelled"
    assert db.scalar("select cancel_reason from public.session_requests where id = %s", (w.request,)) == \
        "found the problem"
    assert db.scalar("select status from public.intakes where id = %s", (w.intake,)) == "new"
    event = db.one("select actor_id, actor_role, reason from public.session_events where request_id = %s"
                   " order by id desc limit 1", (w.request,))
    assert event == {"actor_id": w.customer, "actor_role": "customer", "reason": "found the problem"}
    with db.as_user(w.customer):  # twice: no longer pending
        assert db.rpc_error("cancel_request", p_request_id=w.request) == "AD006"


def test_customer_cannot_cancel_accepted_request(db):
    w = make_world(db)
    accept(db, w.mechanic, w.request)
    with db.as_user(w.customer):
        assert db.rpc_error("cancel_request", p_request_id=w.request) == "AD006"
    assert db.scalar("select status from public.session_requests where id = %s", (w.request,)) == "accepted"


def test_mechanic_releases_accepted_request(db):
    w = make_world(db)
    accept(db, w.mechanic, w.request)
    with db.as_user(w.mechanic):
        result = db.rpc("cancel_request", p_request_id=w.request, p_reason="called away")
    assert result["status"] == "pending"
    request = db.one("select status, mechanic_id from public.session_requests where id = %s", (w.request,))
    assert request == {"status": "pending", "mechanic_id": None}
    assert db.one("select status, mechanic_id from public.sessions where id = %s", (w.session,)) == \
        {"status": "pending", "mechanic_id": None}
    assert db.scalar("select count(*) from public.session_participants where session_id = %s and user_id = %s",
                     (w.session, w.mechanic)) == 0
    assert db.scalar("select status from public.mechanic_commitments where session_id = %s", (w.session,)) == \
        "released"
    # another mechanic can take it now, and the first is free for other work
    assert accept(db, w.other_mechanic, w.request)["status"] == "accepted"
    other = request_free(db, w.other_customer)
    assert accept(db, w.mechanic, other["request_id"])["status"] == "accepted"


def test_cancel_request_by_strangers(db):
    w = make_world(db)
    with db.as_user(w.other_customer):
        assert db.rpc_error("cancel_request", p_request_id=w.request) == "AD004"
    with db.as_user(w.other_mechanic):  # sees the open request but does not hold it
        assert db.rpc_error("cancel_request", p_request_id=w.request) == "AD003"
    assert db.scalar("select status from public.session_requests where id = %s", (w.request,)) == "pending"


def test_decline_offer(db):
    w = make_world(db)
    with db.as_user(w.other_mechanic):
        assert db.rpc("decline_offer", p_request_id=w.request) == {"request_id": str(w.request), "status": "declined"}
        db.rpc("decline_offer", p_request_id=w.request)  # idempotent
    assert db.scalar("select status from public.session_offers where request_id = %s and mechanic_id = %s",
                     (w.request, w.other_mechanic)) == "declined"
    with db.as_user(w.customer):
        assert db.rpc_error("decline_offer", p_request_id=w.request) == "AD003"
    accept(db, w.mechanic, w.request)
    with db.as_user(w.other_mechanic):
        assert db.rpc_error("decline_offer", p_request_id=w.request) == "AD009"
    # declining never blocks accepting later requests (acceptance rate is not a rule)
    nxt = request_free(db, w.other_customer)
    assert accept(db, w.other_mechanic, nxt["request_id"])["status"] == "accepted"


def test_online_and_heartbeat(db):
    w = make_world(db)
    with db.as_user(w.mechanic):
        assert db.rpc("set_online", p_online=True)["is_available"] is True
        assert db.rpc("heartbeat")["mechanic_id"] == str(w.mechanic)
        assert db.rpc_error("set_online", p_online=None) == "AD001"
    assert db.scalar("select is_available from public.mechanics where id = %s", (w.mechanic,)) is True
    for user in (w.pending_mechanic, w.customer):
        with db.as_user(user):
            assert db.rpc_error("set_online", p_online=True) == "AD003"
            assert db.rpc_error("heartbeat") == "AD003"
    with db.as_anon():
        assert db.error("select public.heartbeat()").sqlstate == "42501"


def test_admin_rpcs(db):
    w = make_world(db)
    with db.as_user(w.customer):
        assert db.rpc_error("admin_set_mechanic_status", p_mechanic_id=w.pending_mechanic, p_status="approved") == \
            "AD003"
        assert db.rpc_error("admin_assign_request", p_request_id=w.request, p_mechanic_id=w.mechanic) == "AD003"
        assert db.rpc_error("admin_force_end_session", p_session_id=w.session, p_reason="x") == "AD003"
    with db.as_user(w.admin):
        assert db.rpc_error("admin_set_mechanic_status", p_mechanic_id=w.pending_mechanic, p_status="god") == "AD001"
        assert db.rpc_error("admin_set_mechanic_status", p_mechanic_id=uuid.uuid4(), p_status="approved") == "AD004"
        assert db.rpc("admin_set_mechanic_status", p_mechanic_id=w.pending_mechanic,
                      p_status="approved")["status"] == "approved"
    db.execute("update public.session_requests set status = 'unattended' where id = %s", (w.request,))
    with db.as_user(w.admin):
        # an admin's assignment is an offer the mechanic accepts (docs/operations.md#rules)
        offered = db.rpc("admin_assign_request", p_request_id=w.request, p_mechanic_id=w.pending_mechanic)
        assert offered["status"] == "offered"
    with db.as_user(w.pending_mechanic):
        assert db.rpc("accept_request", p_request_id=w.request)["status"] == "accepted"
    with db.as_user(w.admin):
        assert db.rpc_error("admin_force_end_session", p_session_id=w.session, p_reason=None) == "AD001"
        assert db.rpc("admin_force_end_session", p_session_id=w.session,
                      p_reason="customer unreachable")["status"] == "cancelled"
        assert db.rpc_error("admin_force_end_session", p_session_id=w.session, p_reason="again") == "AD006"
    event = db.one("select actor_id, actor_role, reason from public.session_events where session_id = %s"
                   " and entity = 'session' order by id desc limit 1", (w.session,))
    assert event == {"actor_id": w.admin, "actor_role": "admin", "reason": "customer unreachable"}
    assert db.scalar("select status from public.mechanic_commitments where session_id = %s", (w.session,)) == \
        "released"


def test_admin_force_end_completes_live_session(db):
    w = make_world(db)
    accept(db, w.mechanic, w.request)
    start_both(db, w.session)
    with db.as_user(w.admin):
        assert db.rpc("admin_force_end_session", p_session_id=w.session, p_reason="timer stuck")["status"] == \
            "completed"


def test_signup_trigger(db):
    admin = db.make_user(app_metadata={"role": "admin"})
    assert db.scalar("select count(*) from private.admins where user_id = %s", (admin,)) == 1
    fake = db.make_user(user_metadata={"role": "admin", "account_type": "mechanic", "full_name": "x" * 500,
                                       "timezone": "Mars/Olympus"})
    assert db.scalar("select count(*) from private.admins where user_id = %s", (fake,)) == 0
    mech = db.one("select status::text, display_name, timezone from public.mechanics where id = %s", (fake,))
    assert mech["status"] == "pending" and len(mech["display_name"]) <= 120 and mech["timezone"] == "UTC"
    assert db.scalar("select char_length(full_name) from public.profiles where id = %s", (fake,)) == 200
    # app metadata changes move the capability
    db.execute("update auth.users set raw_app_meta_data = '{}' where id = %s", (admin,))
    assert db.scalar("select count(*) from private.admins where user_id = %s", (admin,)) == 0


def test_mechanic_type_is_derived(db):
    m = make_mechanic(db)
    assert db.scalar("select mechanic_type from public.mechanics where id = %s", (m,)) == "virtual_only"
    org = db.scalar("insert into public.organizations (name) values ('Shop') returning id")
    db.execute("update public.mechanics set organization_id = %s where id = %s", (org, m))
    assert db.scalar("select mechanic_type from public.mechanics where id = %s", (m,)) == "independent_workshop"
    db.execute("update public.mechanics set account_type = 'workshop_mechanic' where id = %s", (m,))
    assert db.scalar("select mechanic_type from public.mechanics where id = %s", (m,)) == "workshop_affiliated"


def test_session_events_append_only_even_for_service(db):
    w = make_world(db)
    with db.as_service():
        assert db.error("update public.session_events set reason = 'x' where session_id = %s",
                        (w.session,)).sqlstate in ("AD003", "42501")
    err = db.error("delete from public.session_events where session_id = %s", (w.session,))  # superuser too
    assert err.sqlstate == "AD003"
    assert isinstance(err, psycopg.Error)
