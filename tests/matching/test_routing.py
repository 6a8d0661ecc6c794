"""Routing: routing when a request is filed, the preferred mechanic's window, targeted offers and the
broadcast, declines and expiries moving the request on, dispatch and its schedule, races with accepts."""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid

import psycopg
import pytest

from tests.support.factories import accept, make_customer, make_intake, make_mechanic, request_free
from tests.support.harness import Db
from tests.support.personas import request_as_user
from tests.support.reviews import set_reputation


def route(db, request_id, now=None):
    return db.scalar("select private.route_request(%s, coalesce(%s, now()))", (request_id, now))


def offers(db, request_id):
    return {r["mechanic_id"]: r["status"] for r in db.all(
        "select mechanic_id, status::text as status from public.session_offers where request_id = %s",
        (request_id,))}


def messages(db, topic, event, request_id):
    return db.all("select payload from realtime.messages where topic = %s and event = %s"
                  " and payload ->> 'request_id' = %s", (topic, event, str(request_id)))


@pytest.fixture
def world(db):
    customer = make_customer(db)
    # five approved mechanics with distinct scores: m[0] best (100 reviews each, so the Bayesian
    # rating follows the average), all above the preferred one, which has no reviews yet
    ratings = [5.0, 4.9, 4.8, 4.7, 4.6]
    mechanics = [make_mechanic(db, name=f"M{i}") for i in range(len(ratings))]
    for mechanic, rating in zip(mechanics, ratings, strict=True):
        set_reputation(db, mechanic, rating, 100)
    preferred = make_mechanic(db, name="Preferred")
    return customer, mechanics, preferred


def test_request_without_preference_goes_to_everyone_and_the_best_three(db, world):
    customer, m, _ = world
    request = uuid.UUID(request_free(db, customer)["request_id"])
    assert len(messages(db, "mechanics:requests", "new_request", request)) == 1  # at creation
    # routed in the transaction that filed it: the broadcast row and the best three
    assert offers(db, request) == {None: "offered", m[0]: "offered", m[1]: "offered", m[2]: "offered"}
    assert db.scalar("select next_route_at = now() + interval '2 minutes' from public.session_requests"
                     " where id = %s", (request,))
    for mech in m[:3]:
        payload = messages(db, f"mechanic:{mech}", "offer", request)[0]["payload"]
        assert payload["preferred"] is False and payload["expires_at"] and payload["reasons"]
        assert "@" not in json.dumps(payload)
    assert messages(db, f"mechanic:{m[3]}", "offer", request) == []
    # routing again at once changes nothing
    assert route(db, request)["offers_created"] == 0
    assert len(messages(db, "mechanics:requests", "new_request", request)) == 1


def test_preferred_window_then_targeted_and_broadcast(db, world):
    customer, m, preferred = world
    request = uuid.UUID(request_free(db, customer, p_preferred_mechanic_id=preferred)["request_id"])
    row = db.one("select created_at, broadcast_at from public.session_requests where id = %s", (request,))
    assert row["broadcast_at"] - row["created_at"] == dt.timedelta(minutes=10)
    assert messages(db, "mechanics:requests", "new_request", request) == []  # nobody else hears of it yet
    # only the preferred mechanic sees and may take it during the window
    with db.as_user(m[0]):
        assert db.scalar("select count(*) from public.session_requests where id = %s", (request,)) == 0
        assert db.rpc_error("accept_request", p_request_id=request) == "AD009"
    assert db.scalar("select count(*) from public.session_requests where id = %s", (request,)) == 1
    with db.as_user(preferred):
        assert db.scalar("select count(*) from public.session_requests where id = %s", (request,)) == 1
    first = route(db, request, row["created_at"])
    assert first["stage"] == "preferred" and offers(db, request) == {preferred: "offered"}
    assert messages(db, f"mechanic:{preferred}", "offer", request)[0]["payload"]["preferred"] is True
    assert db.scalar("select next_route_at from public.session_requests where id = %s", (request,)) == \
        row["broadcast_at"]
    # the window ends: the preferred offer expires, everyone hears of it, the best three get offers
    second = route(db, request, row["broadcast_at"])
    assert second["stage"] == "targeted" and second["offers_created"] == 3
    assert offers(db, request) == {preferred: "expired", None: "offered", m[0]: "offered", m[1]: "offered",
                                   m[2]: "offered"}
    assert len(messages(db, "mechanics:requests", "new_request", request)) == 1
    assert messages(db, f"mechanic:{preferred}", "offer_withdrawn", request)[0]["payload"]["reason"] == "expired"
    db.execute("update public.session_requests set broadcast_at = now() - interval '1 second' where id = %s",
               (request,))
    with db.as_user(m[3]):  # now open to everyone
        assert db.scalar("select count(*) from public.session_requests where id = %s", (request,)) == 1
        assert db.rpc("accept_request", p_request_id=request)["status"] == "accepted"
    assert offers(db, request)[m[0]] == "withdrawn"
    assert messages(db, f"mechanic:{m[0]}", "offer_withdrawn", request)[0]["payload"]["reason"] == "withdrawn"


def test_preferred_mechanic_accepts_in_its_window(db, world):
    customer, _, preferred = world
    request = uuid.UUID(request_free(db, customer, p_preferred_mechanic_id=preferred)["request_id"])
    route(db, request)
    assert accept(db, preferred, request)["status"] == "accepted"
    assert offers(db, request) == {preferred: "accepted"}
    assert route(db, request)["stage"] == "closed"


def test_preferred_decline_opens_the_request_at_once(db, world):
    customer, _m, preferred = world
    request = uuid.UUID(request_free(db, customer, p_preferred_mechanic_id=preferred)["request_id"])
    route(db, request)
    with db.as_user(preferred):
        db.rpc("decline_offer", p_request_id=request)
    row = db.one("select broadcast_at, next_route_at, created_at from public.session_requests where id = %s",
                 (request,))
    assert row["broadcast_at"] < row["created_at"] + dt.timedelta(minutes=10)
    result = route(db, request)
    assert result["stage"] == "targeted" and preferred not in [k for k, v in offers(db, request).items()
                                                                if v == "offered"]
    assert len(messages(db, "mechanics:requests", "new_request", request)) == 1


def test_decline_and_expiry_move_on(db, world):
    customer, m, preferred = world
    request = uuid.UUID(request_free(db, customer)["request_id"])
    t0 = db.scalar("select created_at from public.session_requests where id = %s", (request,))
    route(db, request, t0)
    with db.as_user(m[0]):
        db.rpc("decline_offer", p_request_id=request)
    assert db.scalar("select next_route_at <= now() from public.session_requests where id = %s", (request,))
    route(db, request, t0)
    assert offers(db, request) == {None: "offered", m[0]: "declined", m[1]: "offered", m[2]: "offered",
                                   m[3]: "offered"}
    # two minutes later the unanswered offers expire and the next mechanic is asked
    result = route(db, request, t0 + dt.timedelta(minutes=2))
    assert result["offers_created"] == 2  # the two mechanics not asked yet
    assert offers(db, request) == {None: "offered", m[0]: "declined", m[1]: "expired", m[2]: "expired",
                                   m[3]: "expired", m[4]: "offered", preferred: "offered"}
    # nobody left: routing keeps the broadcast and stops scheduling itself
    result = route(db, request, t0 + dt.timedelta(minutes=4))
    assert result["offers_created"] == 0 and result["next_route_at"] is None


def test_release_routes_again(db, world):
    customer, m, _ = world
    request = uuid.UUID(request_free(db, customer)["request_id"])
    route(db, request)
    accept(db, m[3], request)
    with db.as_user(m[3]):
        db.rpc("cancel_request", p_request_id=request)
    assert db.scalar("select next_route_at <= now() from public.session_requests where id = %s", (request,))
    route(db, request)
    assert offers(db, request)[m[3]] == "declined"  # the mechanic who gave it back is not asked again


def test_dispatch_due_routes_only_due_requests(db, world):
    customer, _m, preferred = world
    due = uuid.UUID(request_free(db, customer)["request_id"])  # its offers expire at now + 2 min
    waiting = uuid.UUID(request_free(db, make_customer(db), p_preferred_mechanic_id=preferred)["request_id"])
    now = db.scalar("select now()")  # both were routed when filed: nothing is due yet
    assert db.scalar("select private.dispatch_due(%s, 100)", (now,)) == {"routed": 0, "offers_created": 0}
    soon = now + dt.timedelta(minutes=3)
    result = db.scalar("select private.dispatch_due(%s, 100)", (soon,))
    assert result == {"routed": 1, "offers_created": 3}  # the next three for `due`; `waiting` is in its window
    assert db.scalar("select private.dispatch_due(%s, 100)", (soon,)) == {"routed": 0, "offers_created": 0}
    later = db.scalar("select private.dispatch_due(%s, 100)", (now + dt.timedelta(minutes=11),))
    assert later["routed"] == 2  # the window ended, and the first request's offers expired
    assert offers(db, waiting)[None] == "offered"
    assert db.error("select private.dispatch_due(now(), 0)").sqlstate == "AD001"
    assert db.error("select private.route_request(%s)", (uuid.uuid4(),)).sqlstate == "AD004"
    assert due


# ------------------------------------------------------------------------------------------------
# Races (own database, committed state)
# ------------------------------------------------------------------------------------------------
def _as(conn, user, query, params):
    try:
        with request_as_user(conn, user):
            return "ok", conn.execute(query, params).fetchone()[0]
    except psycopg.Error as exc:
        return "err", exc.sqlstate


def _service(conn, query, params):
    try:
        with conn.transaction():
            return "ok", conn.execute(query, params).fetchone()[0]
    except psycopg.Error as exc:
        return "err", exc.sqlstate


def test_routing_races_accepts_and_itself(fresh_url):
    rounds = 12
    with psycopg.connect(fresh_url) as conn:
        conn.execute("select 1")
        d = Db(conn)
        customers = [make_customer(d) for _ in range(rounds)]
        mechanics = [make_mechanic(d, name=f"M{i}") for i in range(6)]
        for i, mechanic in enumerate(mechanics):
            set_reputation(d, mechanic, 5.0 - i / 10, 100)
        requests = [uuid.UUID(request_free(d, c, intake=make_intake(d, c))["request_id"]) for c in customers]
        conn.commit()
    conns = [psycopg.connect(fresh_url, autocommit=True) for _ in range(3)]
    try:
        for i, request in enumerate(requests):
            mech = mechanics[i % 2]  # the best two alternate, so they are often among the targeted
            barrier = threading.Barrier(3)
            results: list = [None] * 3

            def run(k, request=request, mech=mech, barrier=barrier, results=results):
                barrier.wait()
                if k == 0:
                    results[k] = _as(conns[0], mech, "select public.accept_request(%s)", (request,))
                else:  # two dispatchers at once
                    results[k] = _service(conns[k], "select private.route_request(%s)", (request,))

            threads = [threading.Thread(target=run, args=(k,)) for k in range(3)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            assert results[0][0] == "ok", results  # no deadlock, no lost accept
            assert all(r[0] == "ok" for r in results[1:]), results
            with conns[0].transaction():
                open_offers = conns[0].execute(
                    "select count(*) from public.session_offers where request_id = %s and status = 'offered'",
                    (request,)).fetchone()[0]
                per_mechanic = conns[0].execute(
                    "select max(n) from (select count(*) n from public.session_offers where request_id = %s"
                    " group by mechanic_id) x", (request,)).fetchone()[0]
            assert open_offers == 0  # nothing left offered on an accepted request
            assert per_mechanic == 1
            # free the mechanic for the next round
            with conns[0].transaction():
                sid = conns[0].execute("select session_id from public.session_requests where id = %s",
                                       (request,)).fetchone()[0]
                cust = conns[0].execute("select customer_id from public.sessions where id = %s",
                                        (sid,)).fetchone()[0]
            # both ready: live; ended at once (unverified), which frees the mechanic all the same
            assert _as(conns[0], cust, "select public.start_session(%s)", (sid,))[0] == "ok"
            assert _as(conns[0], mech, "select public.start_session(%s)", (sid,))[0] == "ok"
            assert _as(conns[0], mech, "select public.end_session(%s)", (sid,))[0] == "ok"
    finally:
        for c in conns:
            c.close()


def test_concurrent_dispatchers_share_the_work(fresh_url):
    with psycopg.connect(fresh_url) as conn:
        conn.execute("select 1")
        d = Db(conn)
        for i in range(4):
            make_mechanic(d, name=f"M{i}")
        for _ in range(30):
            c = make_customer(d)
            request_free(d, c, intake=make_intake(d, c))
        conn.commit()
    conns = [psycopg.connect(fresh_url, autocommit=True) for _ in range(4)]
    barrier = threading.Barrier(4)
    results = [None] * 4

    def run(k):  # three minutes on: every request's targeted offers (made when it was filed) expired
        barrier.wait()
        results[k] = _service(conns[k], "select private.dispatch_due(now() + interval '3 minutes', 1000)", ())

    threads = [threading.Thread(target=run, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for c in conns:
        c.close()
    assert all(r[0] == "ok" for r in results), results
    assert sum(r[1]["routed"] for r in results) == 30  # each due request routed by exactly one run
    with psycopg.connect(fresh_url) as conn:
        assert conn.execute("select count(*) from public.session_offers where mechanic_id is null").fetchone()[0] == 30
        # three offers when filed, and the fourth mechanic once each, never twice
        assert conn.execute("select count(*) from public.session_offers where mechanic_id is not null"
                            ).fetchone()[0] == 120
        assert conn.execute("select count(*) from public.session_offers where mechanic_id is not null"
                            " and status = 'offered'").fetchone()[0] == 30


# ------------------------------------------------------------------------------------------------
# The dispatch schedule (private.schedules)
# ------------------------------------------------------------------------------------------------
def test_dispatch_schedule_routes_due_requests_and_records_its_run(fresh_url):
    with psycopg.connect(fresh_url) as conn:
        conn.execute("select 1")
        d = Db(conn)
        make_mechanic(d, name="M")
        c = make_customer(d)
        first = request_free(d, c, intake=make_intake(d, c))["request_id"]
        c2 = make_customer(d)  # one free session per account (tests/trust)
        second = request_free(d, c2, intake=make_intake(d, c2))["request_id"]
        # the second request's only mechanic declined: it is due again
        d.execute("update public.session_requests set next_route_at = now() - interval '1 second' where id = %s",
                  (second,))
        command = d.scalar("select command from private.schedules where name = 'dispatch'")
        conn.commit()
    assert command == "select private.run_job('dispatch')"
    with psycopg.connect(fresh_url, autocommit=True) as conn:
        assert conn.execute(command).fetchone()[0] == {"routed": 1, "offers_created": 0}  # the second only
        run = conn.execute("select job, ok, result, finished_at is not null from private.cron_runs"
                           " order by id desc limit 1").fetchone()
        assert run == ("cron_dispatch", True, {"routed": 1, "offers_created": 0}, True)
        for request in (first, second):  # one broadcast row and one targeted offer each, made when filed
            assert conn.execute("select count(*) from public.session_offers where request_id = %s",
                                (request,)).fetchone()[0] == 2


def test_decline_takes_the_request_before_the_offer(fresh_url):
    """A decline locks the request's row before its offer's row, the order of accept_request and
    routing: held the other way, a decline and an accept of one request deadlocked (40P01). While a
    third transaction holds the request, a waiting decline must not hold the mechanic's offer."""
    with psycopg.connect(fresh_url) as conn:
        conn.execute("select 1")
        d = Db(conn)
        customer = make_customer(d)
        mechanic = make_mechanic(d, name="Decliner")
        request = uuid.UUID(request_free(d, customer, intake=make_intake(d, customer))["request_id"])
        offered = conn.execute("select count(*) from public.session_offers where request_id = %s and mechanic_id = %s"
                               " and status = 'offered'", (request, mechanic)).fetchone()[0]
        conn.commit()
    assert offered == 1  # the only mechanic was offered the request when it was filed
    holder = psycopg.connect(fresh_url)
    decliner = psycopg.connect(fresh_url, autocommit=True)
    watcher = psycopg.connect(fresh_url, autocommit=True)  # pg_stat_activity is read once per transaction
    try:
        holder.execute("select 1 from public.session_requests where id = %s for no key update", (request,))
        result: list = []
        thread = threading.Thread(target=lambda: result.append(
            _as(decliner, mechanic, "select public.decline_offer(%s)", (request,))))
        thread.start()
        # wait until the decline is blocked on the request's row
        for _ in range(200):
            waiting = watcher.execute("select count(*) from pg_stat_activity where wait_event_type = 'Lock' "
                                     "and query like '%%decline_offer%%'").fetchone()[0]
            if waiting:
                break
            thread.join(0.05)
        assert waiting == 1
        # the offer is free: an accept (request, then offers) would not meet the decline head on
        row = holder.execute("select status from public.session_offers where request_id = %s and mechanic_id = %s "
                             "for update nowait", (request, mechanic)).fetchone()
        assert row == ("offered",)
        holder.rollback()
        thread.join(30)
        assert result == [("ok", {"request_id": str(request), "status": "declined"})]
    finally:
        holder.close()
        decliner.close()
        watcher.close()


def test_declines_and_accepts_of_one_request_never_deadlock(fresh_url):
    rounds = 15
    with psycopg.connect(fresh_url) as conn:
        conn.execute("select 1")
        d = Db(conn)
        customers = [make_customer(d) for _ in range(rounds)]
        taker, decliner = make_mechanic(d, name="Taker"), make_mechanic(d, name="Decliner")
        requests = [uuid.UUID(request_free(d, c, intake=make_intake(d, c))["request_id"]) for c in customers]
        conn.commit()
    conns = [psycopg.connect(fresh_url, autocommit=True) for _ in range(2)]
    try:
        outcomes = []
        for request in requests:
            barrier = threading.Barrier(2)
            results: list = [None, None]

            def run(k, request=request, barrier=barrier, results=results):
                barrier.wait()
                if k == 0:
                    results[0] = _as(conns[0], taker, "select public.accept_request(%s)", (request,))
                else:
                    results[1] = _as(conns[1], decliner, "select public.decline_offer(%s)", (request,))

            threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            outcomes.append(results)
            assert results[0][0] == "ok", results  # the accept always lands
            # the decline lands, or finds the request taken (AD009); never a deadlock
            assert results[1][0] == "ok" or results[1] == ("err", "AD009"), results
            with conns[0].transaction():  # free the taker for the next round: live, then ended at once
                sid, cust = conns[0].execute("select s.id, s.customer_id from public.sessions s join "
                                             "public.session_requests r on r.session_id = s.id where r.id = %s",
                                             (request,)).fetchone()
            assert _as(conns[0], cust, "select public.start_session(%s)", (sid,))[0] == "ok"
            assert _as(conns[0], taker, "select public.start_session(%s)", (sid,))[0] == "ok"
            assert _as(conns[0], taker, "select public.end_session(%s)", (sid,))[0] == "ok"
        assert len(outcomes) == rounds
    finally:
        for c in conns:
            c.close()
