"""Races the marketplace must win: first accept, one job per mechanic. Each test gets its own
database (committed state, one connection per racing client)."""

from __future__ import annotations

import uuid
from collections import Counter

import psycopg
import pytest

from tests.support.factories import make_customer, make_intake, make_mechanic, request_free
from tests.support.harness import Db
from tests.support.personas import call_as, race

MECHANICS = 50
ROUNDS = 8


@pytest.fixture
def setup(fresh_url):
    """A committed marketplace: approved mechanics and a connection per mechanic (each request is
    filed by a customer of its own: one account has one free session, tests/trust)."""
    with psycopg.connect(fresh_url, prepare_threshold=None) as conn:
        conn.execute("select 1")
        db = Db(conn)
        mechanics = [make_mechanic(db, name=f"Mechanic {i}") for i in range(MECHANICS)]
        conn.commit()
    conns = [psycopg.connect(fresh_url, autocommit=True, prepare_threshold=None) for _ in range(MECHANICS)]
    admin = psycopg.connect(fresh_url, prepare_threshold=None)
    admin.execute("select 1")
    yield Db(admin), mechanics, conns
    for c in conns:
        c.close()
    admin.close()


def _new_request(db: Db, customer: uuid.UUID) -> uuid.UUID:
    ids = request_free(db, customer, intake=make_intake(db, customer))
    db.conn.commit()
    db.conn.execute("select 1")
    return uuid.UUID(ids["request_id"])


def _finish(db: Db, conn: psycopg.Connection, mechanic: uuid.UUID, request_id: uuid.UUID) -> None:
    session = db.scalar("select session_id from public.session_requests where id = %s", (request_id,))
    customer = db.scalar("select customer_id from public.sessions where id = %s", (session,))
    db.conn.commit()
    # both are ready: live (ended at once, without evidence: unverified, which frees the mechanic all the same)
    assert call_as(conn, customer, "select public.start_session(%s)", (session,))[0] == "ok"
    assert call_as(conn, mechanic, "select public.start_session(%s)", (session,))[0] == "ok"
    assert call_as(conn, mechanic, "select public.end_session(%s)", (session,))[0] == "ok"


def test_fifty_mechanics_accept_one_request(setup):
    db, mechanics, conns = setup
    for _ in range(ROUNDS):
        request_id = _new_request(db, make_customer(db))
        results = race([(conns[i], mechanics[i], "select public.accept_request(%s)", (request_id,))
                        for i in range(MECHANICS)])
        winners = [i for i, (kind, _) in enumerate(results) if kind == "ok"]
        assert len(winners) == 1, results
        losers = Counter(v for kind, v in results if kind == "err")
        assert losers == Counter({"AD009": MECHANICS - 1}), losers  # nothing but "already taken"
        winner = mechanics[winners[0]]
        assert db.scalar("select mechanic_id from public.session_requests where id = %s", (request_id,)) == winner
        assert db.scalar("select count(*) from public.session_offers where request_id = %s and status = 'accepted'",
                         (request_id,)) == 1
        db.conn.commit()
        _finish(db, conns[winners[0]], winner, request_id)
    db.conn.execute("select 1")
    # the mechanics' record: each completed session has exactly one mechanic, none ever held two
    assert db.scalar("select count(*) from public.sessions where status = 'completed'") == ROUNDS
    assert db.scalar("select max(n) from (select count(*) n from public.mechanic_commitments"
                     " where status = 'in_progress' group by mechanic_id) x") is None


def test_one_mechanic_races_for_two_requests(setup):
    db, mechanics, conns = setup
    mechanic = mechanics[0]
    second_conn = psycopg.connect(conns[0].info.dsn, autocommit=True, prepare_threshold=None)
    try:
        for _ in range(ROUNDS):
            customers = [make_customer(db), make_customer(db)]
            first = _new_request(db, customers[0])
            second = _new_request(db, customers[1])
            results = race([
                (conns[0], mechanic, "select public.accept_request(%s)", (first,)),
                (second_conn, mechanic, "select public.accept_request(%s)", (second,)),
            ])
            kinds = sorted(kind for kind, _ in results)
            assert kinds == ["err", "ok"], results
            assert [v for kind, v in results if kind == "err"] == ["AD010"]
            accepted = db.all("select r.id from public.session_requests r join public.sessions s on s.id = r.session_id"
                              " where r.mechanic_id = %s and r.status = 'accepted' and s.status = 'waiting'",
                              (mechanic,))
            db.conn.commit()
            assert len(accepted) == 1
            _finish(db, conns[0], mechanic, accepted[0]["id"])
            # tidy the other request away so the next round starts clean
            other = second if accepted[0]["id"] == first else first
            assert call_as(conns[1], customers[0] if other == first else customers[1],
                           "select public.cancel_request(%s)", (other,))[0] == "ok"
    finally:
        second_conn.close()


def test_many_mechanics_many_requests_never_double_up(setup):
    """Mechanics race over several requests at once: each request gets one mechanic, each mechanic one job."""
    db, mechanics, conns = setup
    requests = [_new_request(db, make_customer(db)) for _ in range(10)]
    calls = [(conns[i], mechanics[i], "select public.accept_request(%s)", (requests[i % len(requests)],))
             for i in range(MECHANICS)]
    results = race(calls)
    assert sum(kind == "ok" for kind, _ in results) == len(requests)
    assert {v for kind, v in results if kind == "err"} <= {"AD009"}
    rows = db.all("select mechanic_id, count(*) as n from public.sessions where status = 'waiting' group by mechanic_id")
    assert len(rows) == len(requests) and all(r["n"] == 1 for r in rows)
