"""Micro-sessions and shifts: the whole mechanic workflow, caps under concurrency and
across time zones and DST, participation modes, workshop settings, clock rules, dashboards."""

from __future__ import annotations

import datetime as dt
import threading
import uuid

import psycopg
import pytest

from tests.support.factories import accept, make_customer, make_intake, make_mechanic
from tests.support.harness import Db
from tests.support.personas import request_as_user


def ts(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s)


@pytest.fixture
def shop(db):
    """A workshop (owner) with one affiliated mechanic and one independent mechanic."""
    owner = db.make_user(user_metadata={"full_name": "Owner"})
    org = db.scalar("insert into public.organizations (name, timezone) values ('Premium Auto Care', 'America/Toronto')"
                    " returning id")
    db.execute("insert into public.organization_members values (%s, %s, 'owner')", (org, owner))
    mech = make_mechanic(db, name="Wren Workshop", timezone="America/Toronto")
    db.execute("update public.mechanics set organization_id = %s, account_type = 'workshop_mechanic' where id = %s",
               (org, mech))
    independent = make_mechanic(db, name="Indy")
    admin = db.make_user(app_metadata={"role": "admin"})
    return {"owner": owner, "org": org, "mech": mech, "indy": independent, "admin": admin}


def micro_request(db, customer=None, plan="free"):
    customer = customer or make_customer(db)
    intake = make_intake(db, customer, concern="Is this brake noise normal?")
    price = db.scalar("select price_cents from public.service_plans where code = %s", (plan,))
    ids = db.scalar("select private.create_session_request(%s, %s, %s, null, null, false, %s, now())",
                    (customer, plan, intake, price))
    return uuid.UUID(ids["request_id"]), uuid.UUID(ids["session_id"]), customer


def run_session(db, session, customer, mechanic, start: dt.datetime, minutes: int, extend: bool = False):
    """Both join (LiveKit events) → live; maybe extend once; the timer job ends it after `minutes`."""
    for who, at in ((mechanic, start), (customer, start)):
        db.execute("select private.apply_livekit_event(%s, 'participant_joined', %s, %s, %s, '{}')",
                   (f"EV_{uuid.uuid4().hex}", f"session-{session}", str(who), at))
    assert db.scalar("select status from public.sessions where id = %s", (session,)) == "live"
    if extend:
        with db.as_user(customer):
            assert db.rpc("request_extension", p_session_id=session, p_minutes=2)["status"] == "granted"
    deadline = db.scalar("select deadline_at from public.sessions where id = %s", (session,))
    end = start + dt.timedelta(minutes=minutes)
    if end >= deadline:  # the time cap ends it
        db.scalar("select private.end_overdue_sessions(%s)", (deadline + dt.timedelta(minutes=2),))
        db.execute("update public.sessions set ended_at = %s, duration_minutes = %s where id = %s",
                   (deadline, (deadline - start).seconds // 60, session))
    else:  # the mechanic ends it (end_session at that moment of the simulated clock)
        db.execute("select private.complete_session(%s, 'Quick advice given.', null, %s)", (session, end))
    return db.one("select status::text as status, duration_minutes from public.sessions where id = %s", (session,))


def test_seed_000_mechanic_workflow_end_to_end(db, shop):
    mech, owner = shop["mech"], shop["owner"]
    with db.as_user(owner):  # the shop sets a 15-minute daily cap
        assert db.rpc("set_mechanic_micro_settings", p_mechanic_id=mech, p_daily_cap=15)[
            "daily_micro_minutes_cap"] == 15
    # 1. off shift: micro requests are not for this workshop mechanic
    req, _, _ = micro_request(db)
    assert mech not in {r["mechanic_id"] for r in db.all("select mechanic_id from private.rank_mechanics(%s)", (req,))}
    with db.as_user(mech):
        assert db.rpc_error("accept_request", p_request_id=req) == "AD070"
        assert db.rpc("can_accept_session", p_mechanic_id=mech, p_session_type="micro", p_duration_minutes=5) == \
            {"can_accept": False, "reason": "not_on_shift", "minutes_remaining": 15}
        # 2. clock in
        clocked = db.rpc("clock", p_action="clock_in", p_location="Shop Floor")
        assert clocked["ok"] and clocked["action"] == "clock_in" and clocked["status"] == "on_shift"
    db.execute("update public.mechanic_shift_logs set clock_in_at = now() - interval '125 minutes' "
               "where mechanic_id = %s", (mech,))
    # 3-4. the micro request reaches it and it accepts
    assert mech in {r["mechanic_id"] for r in db.all("select mechanic_id from private.rank_mechanics(%s)", (req,))}
    _, session, customer = req, *db.one("select session_id, customer_id from public.session_requests where id = %s",
                                        (req,)).values()
    accept(db, mech, req)
    assert db.scalar("select on_shift from public.sessions where id = %s", (session,)) is True
    assert db.scalar("select reserved_minutes from public.micro_minute_usage where session_id = %s", (session,)) == 5
    # 5-9. timer, one extension, auto-end at the cap
    now = db.scalar("select now()")
    first = run_session(db, session, customer, mech, now, minutes=9, extend=True)
    assert first == {"status": "completed", "duration_minutes": 7}
    with db.as_user(customer):
        assert db.rpc_error("request_extension", p_session_id=session, p_minutes=2) == "AD030"  # ended
    # 10. minutes counted: 7 used, 8 left
    assert db.scalar("select private.micro_minutes_used(%s)", (mech,)) == 7
    # a second micro session of 5 minutes, ended by the mechanic after 3 minutes of actual time
    req2, session2, customer2 = micro_request(db)
    accept(db, mech, req2)
    second = run_session(db, session2, customer2, mech, now + dt.timedelta(minutes=10), minutes=3)
    assert second["status"] == "completed"
    used = db.scalar("select private.micro_minutes_used(%s)", (mech,))
    assert used == 7 + second["duration_minutes"]
    # 11. with under 5 minutes left, no more micro offers
    db.execute("update public.micro_minute_usage set actual_minutes = 6 where session_id = %s", (session2,))
    req3, _, _ = micro_request(db)
    with db.as_user(mech):
        status = db.rpc("clock_status")
        assert status["status"]["micro_minutes_remaining"] == 2
        assert db.rpc_error("accept_request", p_request_id=req3) == "AD070"
    assert mech not in {r["mechanic_id"] for r in db.all("select mechanic_id from private.rank_mechanics(%s)", (req3,))}
    # full sessions are still fine (mode both)
    assert db.scalar("select private.micro_eligibility(%s, 'full', 45)", (mech,))["can_accept"] is True
    # 12-13. clock out: the shift log has the session stats
    with db.as_user(mech):
        out = db.rpc("clock", p_action="clock_out")
    assert out["action"] == "clock_out" and out["status"] == "off_shift" and out["shift_duration_minutes"] == 125
    log = db.one("select micro_sessions_taken, micro_minutes_used, full_sessions_taken, location from"
                 " public.mechanic_shift_logs where mechanic_id = %s", (mech,))
    assert log == {"micro_sessions_taken": 2, "micro_minutes_used": 7 + second["duration_minutes"],
                   "full_sessions_taken": 0, "location": "Shop Floor"}
    # dashboards
    with db.as_user(mech):
        board = db.rpc("mechanic_micro_dashboard")
    assert board["micro_sessions"] == 2 and board["daily_micro_minutes_cap"] == 15
    assert float(board["avg_micro_duration_minutes"]) == pytest.approx((7 + second["duration_minutes"]) / 2, abs=0.05)
    assert float(board["on_shift_hours"]) == pytest.approx(125 / 60, abs=0.02)
    assert float(board["sessions_per_on_shift_hour"]) == pytest.approx(2 / (125 / 60), abs=0.02)
    with db.as_user(owner):
        shop_board = db.rpc("workshop_micro_dashboard", p_organization_id=shop["org"])
    assert shop_board["micro_sessions"] == 2 and shop_board["full_sessions"] == 0
    assert shop_board["micro_to_full_ratio"] is None and shop_board["downtime_earnings_cents"] == 0  # free plan
    with db.as_user(shop["admin"]):
        admin_board = db.rpc("admin_micro_dashboard")
    assert float(admin_board["extension_frequency"]) == 0.5 and float(admin_board["micro_share_of_sessions"]) == 1.0


def test_independent_mechanics_take_micro_any_time_and_earn_on_shift(db, shop):
    req, session, _ = micro_request(db, plan="micro")
    assert accept(db, shop["indy"], req)["status"] == "accepted"  # never clocked in
    assert db.scalar("select on_shift from public.sessions where id = %s", (session,)) is False


def test_cap_holds_under_concurrent_accepts(fresh_url):
    with psycopg.connect(fresh_url) as conn:
        conn.execute("select 1")
        d = Db(conn)
        mech = make_mechanic(d, name="Capped", daily_micro_minutes_cap=12)
        requests = [micro_request(d, plan="micro")[0] for _ in range(6)]  # 10 minutes each
        conn.commit()
    conns = [psycopg.connect(fresh_url, autocommit=True) for _ in range(len(requests))]
    barrier = threading.Barrier(len(requests))
    results: list = [None] * len(requests)

    def run(i):
        barrier.wait()
        try:
            with request_as_user(conns[i], mech):
                conns[i].execute("select public.accept_request(%s)", (requests[i],))
            results[i] = "ok"
        except psycopg.Error as exc:
            results[i] = exc.sqlstate

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for c in conns:
        c.close()
    assert results.count("ok") == 1 and set(results) <= {"ok", "AD010", "AD070"}, results
    with psycopg.connect(fresh_url) as conn:
        # the one taken is reserved; release it and the cap (12) still allows only one 10-minute session
        assert conn.execute("select sum(reserved_minutes) from public.micro_minute_usage").fetchone()[0] == 10
        conn.execute("update public.mechanic_commitments set status = 'done'")
        assert conn.execute("select private.micro_eligibility(%s, 'micro', 10)", (mech,)).fetchone()[0] == \
            {"can_accept": False, "reason": "daily_cap_reached", "minutes_remaining": 2}


@pytest.mark.parametrize(("zone", "used_at", "checks"), [
    # Kolkata (+05:30): 23:50 local on the 20th; 00:10 local on the 21st is a new day
    ("Asia/Kolkata", "2026-11-20T18:20:00+00:00",
     [("2026-11-20T18:25:00+00:00", 10), ("2026-11-20T18:40:00+00:00", 0)]),
    # Kathmandu (+05:45)
    ("Asia/Kathmandu", "2026-11-20T18:10:00+00:00",
     [("2026-11-20T18:14:00+00:00", 10), ("2026-11-20T18:16:00+00:00", 0)]),
    # New York, spring forward (8 Mar 2026): 23:30 EST on the 7th, then 00:30 EST on the 8th
    ("America/New_York", "2026-03-08T04:30:00+00:00",
     [("2026-03-08T04:59:00+00:00", 10), ("2026-03-08T05:30:00+00:00", 0), ("2026-03-08T07:30:00+00:00", 0)]),
    # New York, fall back (1 Nov 2026): 23:30 EDT on 31 Oct, then 00:30 EDT on 1 Nov, an hour before the repeat
    ("America/New_York", "2026-11-01T03:30:00+00:00",
     [("2026-11-01T03:59:00+00:00", 10), ("2026-11-01T04:30:00+00:00", 0), ("2026-11-01T06:30:00+00:00", 0)]),
])
def test_daily_cap_resets_at_local_midnight_whatever_the_job_does(db, zone, used_at, checks):
    mech = make_mechanic(db, name="Z", timezone=zone)
    _, session, _ = micro_request(db, plan="micro")
    db.execute("update public.sessions set mechanic_id = %s, status = 'waiting' where id = %s", (mech, session))
    db.execute("select private.check_and_reserve_accept_rows(m, s, %s) from public.mechanics m, public.sessions s "
               "where m.id = %s and s.id = %s", (ts(used_at), mech, session))
    for when, expected in checks:
        assert db.scalar("select private.micro_minutes_used(%s, %s)", (mech, ts(when))) == expected, when
    # the midnight job, late, twice, or never: usage does not depend on it
    last = ts(checks[-1][0])
    first_run = db.scalar("select public.reset_daily_micro_minutes(%s)", (last,))
    assert first_run >= 1
    assert db.scalar("select public.reset_daily_micro_minutes(%s)", (last,)) == 0  # idempotent
    assert db.scalar("select private.micro_minutes_used(%s, %s)", (mech, ts(checks[0][0]))) == 10
    assert db.scalar("select private.micro_minutes_used(%s, %s)", (mech, last)) == 0


def test_participation_modes(db, shop):
    micro_only = make_mechanic(db, name="Micro only")
    full_only = make_mechanic(db, name="Full only")
    for m, mode in ((micro_only, "micro_only"), (full_only, "full_only")):
        with db.as_user(m):
            db.rpc("set_mechanic_micro_settings", p_mechanic_id=m, p_participation_mode=mode)
    micro, _, _ = micro_request(db)
    full, _, _ = micro_request(db, plan="chat10")
    ranked_micro = {r["mechanic_id"] for r in db.all("select mechanic_id from private.rank_mechanics(%s)", (micro,))}
    ranked_full = {r["mechanic_id"] for r in db.all("select mechanic_id from private.rank_mechanics(%s)", (full,))}
    assert micro_only in ranked_micro and full_only not in ranked_micro
    assert full_only in ranked_full and micro_only not in ranked_full
    with db.as_user(micro_only):
        assert db.rpc_error("accept_request", p_request_id=full) == "AD070"
    with db.as_user(full_only):
        assert db.rpc_error("accept_request", p_request_id=micro) == "AD070"
    with db.as_user(full_only):  # a mechanic sets its own mode but not its cap
        assert db.rpc_error("set_mechanic_micro_settings", p_mechanic_id=full_only, p_daily_cap=99) == "AD003"
        assert db.rpc_error("set_mechanic_micro_settings", p_mechanic_id=micro_only, p_participation_mode="both") == \
            "AD003"


def test_workshop_settings_apply_to_its_mechanics(db, shop):
    mech, org = shop["mech"], shop["org"]
    with db.as_user(mech):
        db.rpc("clock", p_action="clock_in")
    with db.as_user(shop["owner"]):
        db.execute("update public.organizations set micro_sessions_enabled = false where id = %s", (org,))
        assert db.rpc("can_accept_session", p_mechanic_id=mech, p_session_type="micro",
                      p_duration_minutes=5)["reason"] == "workshop_micro_disabled"
        db.execute("update public.organizations set micro_sessions_enabled = true, micro_max_duration = 5,"
                   " default_daily_micro_cap = 20, extension_minutes = 3 where id = %s", (org,))
        assert db.rpc("can_accept_session", p_mechanic_id=mech, p_session_type="micro",
                      p_duration_minutes=10)["reason"] == "longer_than_workshop_maximum"
        assert db.rpc("can_accept_session", p_mechanic_id=mech, p_session_type="micro",
                      p_duration_minutes=5) == {"can_accept": True, "reason": None, "minutes_remaining": 20}
    req, session, customer = micro_request(db)
    accept(db, mech, req)
    db.execute("update public.sessions set status = 'live', started_at = now() where id = %s", (session,))
    with db.as_user(customer):
        assert db.rpc_error("request_extension", p_session_id=session, p_minutes=2) == "AD001"  # the shop says 3
        assert db.rpc("request_extension", p_session_id=session, p_minutes=3)["minutes"] == 3
    db.execute("update public.organizations set allow_extensions = false where id = %s", (org,))
    req2, session2, customer2 = micro_request(db)
    db.execute("update public.mechanic_commitments set status = 'done' where mechanic_id = %s", (mech,))
    accept(db, mech, req2)
    db.execute("update public.sessions set status = 'live', started_at = now() where id = %s", (session2,))
    with db.as_user(customer2):
        assert db.rpc_error("request_extension", p_session_id=session2, p_minutes=3) == "AD030"


def test_clock_rules_and_visibility(db, shop):
    mech = shop["mech"]
    with db.as_user(mech):
        assert db.rpc_error("clock", p_action="clock_out") == "AD072"
        db.rpc("clock", p_action="clock_in")
        assert db.rpc_error("clock", p_action="clock_in") == "AD071"
        assert db.rpc_error("clock", p_action="nap") == "AD001"
        assert db.rpc_error("clock", p_action="clock_out", p_notes="x" * 5000) == "AD001"
        status = db.rpc("clock_status")
    assert status["status"]["workshop_name"] == "Premium Auto Care" and status["current_shift"]["id"]
    customer = make_customer(db)
    with db.as_user(customer):
        assert db.rpc_error("clock", p_action="clock_in") == "AD003"
        assert db.rpc_error("clock_status") == "AD003"
        assert db.rpc_error("can_accept_session", p_mechanic_id=mech, p_session_type="micro",
                            p_duration_minutes=5) == "AD003"
        assert db.scalar("select count(*) from public.mechanic_shift_logs") == 0
        assert db.scalar("select count(*) from public.mechanic_availability_status") == 0
    assert db.scalar("select count(*) from public.mechanic_shift_logs where mechanic_id = %s", (mech,)) == 1
    with db.as_user(shop["owner"]):
        rows = db.all("select mechanic_id, availability_status from public.mechanic_availability_status")
        assert rows == [{"mechanic_id": mech, "availability_status": "on_shift"}]
        assert db.scalar("select count(*) from public.mechanic_shift_logs") == 1
    with db.as_user(shop["indy"]):
        assert db.rpc_error("workshop_micro_dashboard", p_organization_id=shop["org"]) == "AD003"
        assert db.rpc_error("admin_micro_dashboard") == "AD003"


def test_every_dashboard_figure(db, shop):
    """Crafted history: every figure of the three dashboards worked out by hand."""
    mech, org, indy = shop["mech"], shop["org"], shop["indy"]
    customer = make_customer(db)
    now = db.scalar("select now()")

    def session(mechanic, plan, minutes, on_shift, extension=0, price=None):
        intake = make_intake(db, customer)
        sid = db.scalar("select (private.create_session_request(%s, %s, %s, null, null, false, %s, now())"
                        " ->> 'session_id')::uuid", (customer, plan, intake, price if price is not None else 0))
        db.execute("set local session_replication_role = replica")  # history: no triggers
        db.execute("update public.sessions set status = 'completed', mechanic_id = %s, on_shift = %s,"
                   " started_at = %s, ended_at = %s, duration_minutes = %s, extension_minutes = %s where id = %s",
                   (mechanic, on_shift, now - dt.timedelta(hours=2), now - dt.timedelta(hours=1), minutes, extension,
                    sid))
        db.execute("set local session_replication_role = origin")
        return sid

    # the workshop mechanic: 3 micro (on shift; one extended) and 1 full session; a 4-hour shift
    micro = [session(mech, "micro", 6, True, 2, 499), session(mech, "micro", 4, True, 0, 499),
             session(mech, "micro", 8, False, 0, 499)]
    session(mech, "chat10", 30, True, 0, 999)
    # the independent mechanic: one full session only
    session(indy, "video15", 40, False, 0, 2999)
    db.execute("insert into public.mechanic_shift_logs (mechanic_id, organization_id, clock_in_at, clock_out_at)"
               " values (%s, %s, %s, %s)", (mech, org, now - dt.timedelta(hours=5), now - dt.timedelta(hours=1)))
    day = db.scalar("select (now() at time zone 'America/Toronto')::date")
    for sid, used in zip(micro, (6, 4, 8), strict=True):
        db.execute("insert into public.micro_minute_usage (session_id, mechanic_id, local_day, reserved_minutes,"
                   " actual_minutes) values (%s, %s, %s, 10, %s)", (sid, mech, day, used))
    with db.as_user(shop["owner"]):
        db.rpc("set_mechanic_micro_settings", p_mechanic_id=mech, p_daily_cap=36)

    with db.as_user(mech):
        m = db.rpc("mechanic_micro_dashboard", p_days=7)
    assert m["daily_micro_minutes_cap"] == 36 and m["daily_micro_minutes_used"] == 18
    assert m["micro_sessions"] == 3 and float(m["avg_micro_duration_minutes"]) == 6.0
    assert float(m["on_shift_hours"]) == 4.0
    assert float(m["sessions_per_on_shift_hour"]) == 0.75  # 3 sessions taken on shift / 4 hours

    with db.as_user(shop["owner"]):
        w = db.rpc("workshop_micro_dashboard", p_organization_id=org, p_days=7)
    assert float(w["on_shift_hours"]) == 4.0 and w["micro_sessions"] == 3 and w["full_sessions"] == 1
    assert float(w["micro_to_full_ratio"]) == 3.0 and float(w["avg_micro_handle_minutes"]) == 6.0
    assert w["downtime_earnings_cents"] == 998  # two micro sessions on shift at $4.99

    with db.as_user(shop["admin"]):
        a = db.rpc("admin_micro_dashboard", p_days=7)
    assert float(a["micro_share_of_sessions"]) == 0.6  # 3 of 5 completed sessions
    assert float(a["mechanics_taking_micro_share"]) == 0.5  # 1 of the 2 mechanics with sessions
    assert float(a["avg_micro_duration_minutes"]) == 6.0
    assert float(a["extension_frequency"]) == 0.333  # 1 of 3 micro sessions
    assert float(a["cap_utilization"]) == 0.5  # 18 of 36 minutes on the one mechanic-day


def test_ranking_leaves_out_every_kind_of_capped_mechanic(db, shop):
    fresh = make_mechanic(db, name="Fresh")  # no workshop, platform default cap (30), nothing used
    small_cap = make_mechanic(db, name="Small cap", daily_micro_minutes_cap=3)
    busy_day = make_mechanic(db, name="Busy day", daily_micro_minutes_cap=12)
    _, used_session, _ = micro_request(db, plan="micro")
    db.execute("update public.sessions set mechanic_id = %s, status = 'waiting' where id = %s",
               (busy_day, used_session))
    db.execute("select private.check_and_reserve_accept_rows(m, s, now()) from public.mechanics m, public.sessions s "
               "where m.id = %s and s.id = %s", (busy_day, used_session))  # 10 of 12
    db.execute("update public.mechanic_commitments set status = 'done'")
    req, _, _ = micro_request(db)  # 5 minutes
    ranked = {r["mechanic_id"] for r in db.all("select mechanic_id from private.rank_mechanics(%s, 100)", (req,))}
    assert fresh in ranked and shop["indy"] in ranked
    assert small_cap not in ranked and busy_day not in ranked
    assert shop["mech"] not in ranked  # workshop mechanic off shift
    # the platform default below the request: every mechanic relying on it is out
    db.execute("update private.settings set value = '4' where key = 'micro.daily_cap_minutes'")
    ranked = {r["mechanic_id"] for r in db.all("select mechanic_id from private.rank_mechanics(%s, 100)", (req,))}
    assert fresh not in ranked and shop["indy"] not in ranked
