"""Races for committed time (own database, one connection per client, a barrier, many rounds):
32 customers holding overlapping slots of one mechanic, a hold against an on-demand accept, a
reschedule against a new hold. Never an overlap; the only error a loser sees is slot_taken
(AD050) or, for the on-demand accept, schedule_conflict (AD051)."""

from __future__ import annotations

import datetime as dt
import itertools
import random
from collections import Counter

import psycopg
import pytest

from tests.support.factories import make_customer, make_intake, request_free
from tests.support.harness import Db
from tests.support.personas import race
from tests.support.scheduling import UTC, active_overlaps, at, every_day, future_day, scheduled_mechanic

CLIENTS = 32
ROUNDS = 6


@pytest.fixture
def world(fresh_url):
    with psycopg.connect(fresh_url, prepare_threshold=None) as conn:
        conn.execute("select 1")
        db = Db(conn)
        customers = [make_customer(db) for _ in range(CLIENTS)]
        conn.commit()
    conns = [psycopg.connect(fresh_url, autocommit=True, prepare_threshold=None) for _ in range(CLIENTS)]
    admin = psycopg.connect(fresh_url, prepare_threshold=None)
    admin.execute("select 1")
    yield Db(admin), customers, conns
    for c in conns:
        c.close()
    admin.close()


def _commit(db: Db) -> None:
    db.conn.commit()
    db.conn.execute("select 1")


def test_32_clients_holding_overlapping_slots(world):
    db, customers, conns = world
    mechanic = scheduled_mechanic(db, "UTC", every_day("08:00", "18:00"),
                                  rules={"slot_step_minutes": 5, "buffer_minutes": 10})
    _commit(db)
    rng = random.Random(8)
    outcomes: Counter[str] = Counter()
    for r in range(ROUNDS):
        day = future_day(3 + r)
        calls = []
        for i in range(CLIENTS):
            start = at(day, "09:00") + dt.timedelta(minutes=5 * rng.randrange(0, 18))  # 09:00..10:25, 30-min plan
            calls.append((conns[i], customers[i], "select public.hold_slot(%s, %s, 'chat10')", (mechanic, start)))
        results = race(calls)
        winners = [res for res in results if res[0] == "ok"]
        outcomes.update(res[1] if res[0] == "err" else "ok" for res in results)
        assert winners, results
        assert {res[1] for res in results if res[0] == "err"} <= {"AD050"}, results
        assert active_overlaps(db) == 0
        # every pair of winners is at least plan + buffer apart
        held = sorted(db.scalar("select array_agg(lower(during)) from public.mechanic_commitments"
                                " where mechanic_id = %s and status = 'held' and lower(during)::date = %s",
                                (mechanic, day)))
        assert all(b - a >= dt.timedelta(minutes=40) for a, b in itertools.pairwise(held)), held
        db.execute("update public.mechanic_commitments set status = 'released' where mechanic_id = %s", (mechanic,))
        _commit(db)
    assert set(outcomes) <= {"ok", "AD050"} and outcomes["AD050"] > 0


def test_hold_racing_an_on_demand_accept(world):
    db, customers, conns = world
    for r in range(ROUNDS * 2):
        mechanic = scheduled_mechanic(db, "UTC", every_day("00:00", "24:00"), rules={"slot_step_minutes": 5})
        req = request_free(db, make_customer(db), intake=None)
        _commit(db)
        now = dt.datetime.now(UTC)
        start = (now + dt.timedelta(minutes=10)).replace(second=0, microsecond=0)
        start += dt.timedelta(minutes=(5 - start.minute % 5) % 5)
        results = race([
            (conns[0], customers[r % CLIENTS], "select public.hold_slot(%s, %s, 'free')", (mechanic, start)),
            (conns[1], mechanic, "select public.accept_request(%s)", (req["request_id"],)),
        ])
        hold_res, accept_res = results
        assert (hold_res[0], accept_res[0]) in {("ok", "err"), ("err", "ok")}, results
        if hold_res[0] == "ok":
            assert accept_res[1] == "AD051", results
        else:
            assert hold_res[1] == "AD050", results
        assert active_overlaps(db) == 0


def test_reschedule_racing_a_hold(world):
    db, customers, conns = world
    mechanic = scheduled_mechanic(db, "UTC", every_day("08:00", "18:00"))
    _commit(db)
    wins: Counter[str] = Counter()
    for r in range(ROUNDS * 2):
        day = future_day(3 + r)
        owner = make_customer(db)  # a customer of its own per round: one free session per account (tests/trust)
        intake = make_intake(db, owner)
        with db.as_user(owner):
            h = db.rpc("hold_slot", p_mechanic_id=mechanic, p_start=at(day, "09:00"), p_plan_code="free")
            session = db.rpc("book_slot", p_hold_id=h["hold_id"], p_intake_id=intake)["session_id"]
        _commit(db)
        target = at(day, "11:00")
        results = race([
            (conns[0], owner, "select public.reschedule_session(%s, %s)", (session, target)),
            (conns[1], customers[1 + r % (CLIENTS - 1)], "select public.hold_slot(%s, %s, 'free')", (mechanic, target)),
        ])
        oks = [res for res in results if res[0] == "ok"]
        assert len(oks) == 1, results
        assert [res[1] for res in results if res[0] == "err"] == ["AD050"], results
        wins["reschedule" if results[0][0] == "ok" else "hold"] += 1
        moved = db.scalar("select scheduled_for from public.sessions where id = %s", (session,))
        assert moved == (target if results[0][0] == "ok" else at(day, "09:00"))
        assert active_overlaps(db) == 0
        db.execute("update public.mechanic_commitments set status = 'released' where status = 'held'")
        _commit(db)
    assert sum(wins.values()) == ROUNDS * 2
