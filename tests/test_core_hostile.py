"""Every RPC with hostile input: a clear, registered error and nothing written."""

from __future__ import annotations

import uuid

import pytest

from tests.factories import make_intake, make_world

BIG = "x" * 1_000_000
TABLES = ["sessions", "session_requests", "session_offers", "session_participants", "session_events",
          "mechanic_commitments", "mechanics", "intakes", "profiles"]


def snapshot(db) -> dict[str, str]:
    """A fingerprint of every table an RPC could write."""
    return {t: db.scalar(f"select md5(coalesce(string_agg(x::text, '|' order by x::text), '')) from public.{t} x")
            for t in TABLES}


@pytest.fixture
def world(db):
    return make_world(db)


def cases(w):
    """(persona, rpc, kwargs, expected SQLSTATE)."""
    unknown = uuid.uuid4()
    return [
        # request_session
        (w.customer, "request_session", {"p_plan_code": None, "p_intake_id": w.intake}, "AD001"),
        (w.customer, "request_session", {"p_plan_code": "free", "p_intake_id": None}, "AD001"),
        (w.customer, "request_session", {"p_plan_code": BIG, "p_intake_id": w.intake}, "AD004"),
        (w.customer, "request_session", {"p_plan_code": "nope'; drop table x;--", "p_intake_id": w.intake}, "AD004"),
        (w.customer, "request_session", {"p_plan_code": "free", "p_intake_id": unknown}, "AD004"),
        (w.other_customer, "request_session", {"p_plan_code": "free", "p_intake_id": w.intake}, "AD004"),
        (w.customer, "request_session", {"p_plan_code": "free", "p_intake_id": "not-a-uuid"}, "22P02"),
        (w.customer, "request_session", {"p_plan_code": "free", "p_intake_id": w.intake,
                                         "p_vehicle_id": unknown}, "AD005"),  # intake already requested
        (None, "request_session", {"p_plan_code": "free", "p_intake_id": w.intake}, "AD002"),
        # accept_request / decline_offer
        (w.mechanic, "accept_request", {"p_request_id": None}, "AD001"),
        (w.mechanic, "accept_request", {"p_request_id": unknown}, "AD004"),
        (w.mechanic, "accept_request", {"p_request_id": "1; select 1"}, "22P02"),
        (None, "accept_request", {"p_request_id": w.request}, "AD002"),
        (w.mechanic, "decline_offer", {"p_request_id": None}, "AD001"),
        (w.mechanic, "decline_offer", {"p_request_id": unknown}, "AD004"),
        (w.customer, "decline_offer", {"p_request_id": w.request}, "AD003"),
        # cancel_request
        (w.customer, "cancel_request", {"p_request_id": None}, "AD001"),
        (w.customer, "cancel_request", {"p_request_id": w.request, "p_reason": BIG}, "AD001"),
        (w.customer, "cancel_request", {"p_request_id": unknown}, "AD004"),
        (w.other_customer, "cancel_request", {"p_request_id": w.request}, "AD004"),
        # start / end
        (w.customer, "start_session", {"p_session_id": None}, "AD001"),
        (w.customer, "start_session", {"p_session_id": unknown}, "AD004"),
        (w.other_customer, "start_session", {"p_session_id": w.session}, "AD004"),
        (w.customer, "end_session", {"p_session_id": w.session, "p_notes": BIG}, "AD001"),
        (w.customer, "end_session", {"p_session_id": unknown}, "AD004"),
        (w.mechanic, "end_session", {"p_session_id": w.session}, "AD004"),  # not assigned yet
        # presence
        (w.mechanic, "set_online", {"p_online": None}, "AD001"),
        (w.mechanic, "set_online", {"p_online": "maybe"}, "22P02"),
        (w.customer, "set_online", {"p_online": True}, "AD003"),
        (w.customer, "heartbeat", {}, "AD003"),
        # admin
        (w.admin, "admin_set_mechanic_status", {"p_mechanic_id": w.mechanic, "p_status": None}, "AD001"),
        (w.admin, "admin_set_mechanic_status", {"p_mechanic_id": w.mechanic, "p_status": BIG}, "AD001"),
        (w.admin, "admin_set_mechanic_status", {"p_mechanic_id": None, "p_status": "approved"}, "AD001"),
        (w.admin, "admin_set_mechanic_status", {"p_mechanic_id": unknown, "p_status": "approved"}, "AD004"),
        (w.mechanic, "admin_set_mechanic_status", {"p_mechanic_id": w.mechanic, "p_status": "approved"}, "AD003"),
        (w.admin, "admin_assign_request", {"p_request_id": None, "p_mechanic_id": w.mechanic}, "AD001"),
        (w.admin, "admin_assign_request", {"p_request_id": unknown, "p_mechanic_id": w.mechanic}, "AD004"),
        (w.admin, "admin_assign_request", {"p_request_id": w.request, "p_mechanic_id": unknown}, "AD003"),
        (w.admin, "admin_assign_request", {"p_request_id": w.request, "p_mechanic_id": w.customer}, "AD003"),
        (w.admin, "admin_assign_request", {"p_request_id": w.request, "p_mechanic_id": w.pending_mechanic}, "AD003"),
        (w.customer, "admin_assign_request", {"p_request_id": w.request, "p_mechanic_id": w.mechanic}, "AD003"),
        (w.admin, "admin_force_end_session", {"p_session_id": w.session, "p_reason": BIG}, "AD001"),
        (w.admin, "admin_force_end_session", {"p_session_id": w.session, "p_reason": "  "}, "AD001"),
        (w.admin, "admin_force_end_session", {"p_session_id": unknown, "p_reason": "x"}, "AD004"),
        (w.workshop_admin, "admin_force_end_session", {"p_session_id": w.session, "p_reason": "x"}, "AD003"),
        # rooms
        (w.customer, "request_extension", {"p_session_id": None, "p_minutes": 2}, "AD001"),
        (w.customer, "request_extension", {"p_session_id": w.session, "p_minutes": None}, "AD001"),
        (w.customer, "request_extension", {"p_session_id": unknown, "p_minutes": 2}, "AD004"),
        (w.other_customer, "request_extension", {"p_session_id": w.session, "p_minutes": 2}, "AD004"),
        (w.customer, "request_extension", {"p_session_id": w.session, "p_minutes": 2}, "AD030"),  # not live
        (w.customer, "request_extension", {"p_session_id": w.session, "p_minutes": 2**31 - 1}, "AD030"),
        (w.customer, "request_extension", {"p_session_id": w.session, "p_minutes": "many"}, "22P02"),
        # micro-sessions and shifts
        (w.mechanic, "can_accept_session", {"p_mechanic_id": None, "p_session_type": "micro",
                                            "p_duration_minutes": 5}, "AD001"),
        (w.mechanic, "can_accept_session", {"p_mechanic_id": w.mechanic, "p_session_type": "warp",
                                            "p_duration_minutes": 5}, "AD001"),
        (w.mechanic, "can_accept_session", {"p_mechanic_id": w.mechanic, "p_session_type": "micro",
                                            "p_duration_minutes": 0}, "AD001"),
        (w.mechanic, "can_accept_session", {"p_mechanic_id": w.mechanic, "p_session_type": BIG,
                                            "p_duration_minutes": 5}, "AD001"),
        (w.other_customer, "can_accept_session", {"p_mechanic_id": w.mechanic, "p_session_type": "micro",
                                                  "p_duration_minutes": 5}, "AD003"),
        (w.mechanic, "clock", {"p_action": None}, "AD001"),
        (w.mechanic, "clock", {"p_action": "teleport"}, "AD001"),
        (w.mechanic, "clock", {"p_action": "clock_out", "p_notes": BIG}, "AD001"),
        (w.mechanic, "clock", {"p_action": "clock_in"}, "AD071"),  # already on shift
        (w.customer, "clock", {"p_action": "clock_in"}, "AD003"),
        (w.customer, "clock_status", {}, "AD003"),
        (w.admin, "set_mechanic_micro_settings", {"p_mechanic_id": None}, "AD001"),
        (w.admin, "set_mechanic_micro_settings", {"p_mechanic_id": w.mechanic, "p_participation_mode": "x"}, "AD001"),
        (w.admin, "set_mechanic_micro_settings", {"p_mechanic_id": w.mechanic, "p_daily_cap": 5000}, "AD001"),
        (w.admin, "set_mechanic_micro_settings", {"p_mechanic_id": unknown, "p_daily_cap": 10}, "AD004"),
        (w.customer, "set_mechanic_micro_settings", {"p_mechanic_id": w.mechanic, "p_daily_cap": 10}, "AD003"),
        (w.mechanic, "mechanic_micro_dashboard", {"p_days": 0}, "AD001"),
        (w.customer, "mechanic_micro_dashboard", {}, "AD003"),
        (w.workshop_admin, "workshop_micro_dashboard", {"p_organization_id": None}, "AD001"),
        (w.customer, "workshop_micro_dashboard", {"p_organization_id": w.organization}, "AD003"),
        (w.customer, "admin_micro_dashboard", {}, "AD003"),
        (w.admin, "admin_micro_dashboard", {"p_days": 0}, "AD001"),
        # jobs
        (w.customer, "admin_outbox", {}, "AD003"),
        (w.admin, "admin_outbox", {"p_status": "exploded"}, "AD001"),
        (w.admin, "admin_outbox", {"p_status": None}, "AD001"),
        (w.admin, "admin_outbox", {"p_limit": 0}, "AD001"),
        (w.admin, "admin_retry_outbox", {"p_id": None}, "AD001"),
        (w.admin, "admin_retry_outbox", {"p_id": -5}, "AD004"),
        (w.mechanic, "admin_retry_outbox", {"p_id": 1}, "AD003"),
        # matching
        (w.customer, "available_mechanics", {"p_limit": 0}, "AD001"),
        (w.customer, "available_mechanics", {"p_limit": 100000}, "AD001"),
        (w.customer, "available_mechanics", {"p_session_type": "telepathy"}, "AD001"),
        (w.customer, "available_mechanics", {"p_brand": BIG}, "AD001"),
        (w.customer, "available_mechanics", {"p_city": BIG}, "AD001"),
        (w.customer, "available_mechanics", {"p_specialist": True}, "AD001"),
        (None, "available_mechanics", {}, "AD002"),
        (w.customer, "admin_rank_request", {"p_request_id": w.request}, "AD003"),
        (w.mechanic, "admin_rank_request", {"p_request_id": w.request}, "AD003"),
        (w.admin, "admin_rank_request", {"p_request_id": None}, "AD001"),
        (w.admin, "admin_rank_request", {"p_request_id": unknown}, "AD004"),
        (w.admin, "admin_rank_request", {"p_request_id": w.request, "p_limit": 0}, "AD001"),
    ]


def test_hostile_input_is_refused_and_writes_nothing(db, world):
    before = snapshot(db)
    seen = set()
    for persona, rpc, kwargs, expected in cases(world):
        if persona is None:
            ctx = db.as_role("authenticated", {"role": "authenticated"})  # a token without a user
        else:
            ctx = db.as_user(persona)
        with ctx:
            code = db.rpc_error(rpc, **kwargs)
        shown = {k: ("<big>" if isinstance(v, str) and len(v) > 80 else v) for k, v in kwargs.items()}
        assert code == expected, (rpc, shown, code)
        seen.add(rpc)
    assert snapshot(db) == before
    public_rpcs = {r["proname"] for r in db.all(
        "select p.proname from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
        " where n.nspname = 'public' and has_function_privilege('authenticated', p.oid, 'execute')")}
    assert public_rpcs <= seen, f"RPCs without hostile-input cases: {public_rpcs - seen}"


def test_anon_cannot_call_any_rpc(db, world):
    rpcs = db.all("select p.oid::regprocedure::text as sig from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
                  " where n.nspname = 'public' and p.prokind = 'f'")
    assert rpcs
    for row in rpcs:
        assert db.scalar("select has_function_privilege('anon', %s::regprocedure, 'execute')", (row["sig"],)) is False, \
            row["sig"]


def test_intake_write_rules(db, world):
    with db.as_user(world.customer):
        assert db.error("insert into public.intakes (concern) values (%s)", (BIG,)).sqlstate == "23514"
        assert db.error("insert into public.intakes (concern, contact_email) values ('noise', 'not an email')"
                        ).sqlstate == "23514"
        assert db.error("insert into public.intakes (concern, status) values ('noise', 'resolved')").sqlstate == "42501"
        assert db.error("insert into public.vehicles (make, model, year, vin) values ('A', 'B', 2020, 'short')"
                        ).sqlstate == "23514"
    # a customer cannot file an intake for someone else
    other = make_intake(db, world.other_customer)
    with db.as_user(world.customer):
        assert db.scalar("update public.intakes set concern = 'mine now' where id = %s returning id", (other,)) is None
