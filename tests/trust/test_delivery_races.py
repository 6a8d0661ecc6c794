"""Races of delivery and the objection window, each on a database of its own with one connection
per racing client: two completions for one mechanic and customer count the customer once; a
report racing the release job never leaves a reported payout released; two admins deciding one
session: one wins."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from tests.support.delivery import paid_with_credit, start_both, take_part
from tests.support.factories import accept, make_admin, make_customer, make_mechanic
from tests.support.harness import Db
from tests.support.personas import call_as, race

ROUNDS = 6


@pytest.fixture
def conns(fresh_url: str) -> Iterator[tuple[Db, list[psycopg.Connection]]]:
    setup = psycopg.connect(fresh_url, prepare_threshold=None)
    setup.execute("select 1")
    clients = [psycopg.connect(fresh_url, autocommit=True, prepare_threshold=None) for _ in range(2)]
    yield Db(setup), clients
    for c in clients:
        c.close()
    setup.close()


def _both_ways(calls: list[Callable[[], tuple[str, Any]]]) -> list[tuple[str, Any]]:
    barrier = threading.Barrier(len(calls))
    results: list[tuple[str, Any]] = [("err", "not run")] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def _live_with_evidence(db: Db, customer: uuid.UUID, mechanic: uuid.UUID) -> Any:
    out = paid_with_credit(db, customer, "video15")
    accept(db, mechanic, out["request_id"])
    start_both(db, out["session_id"])
    take_part(db, out["session_id"])
    return out["session_id"]


def test_two_completions_for_one_pair_count_the_customer_once(conns: tuple[Db, list[psycopg.Connection]]) -> None:
    db, (a, b) = conns
    for _ in range(ROUNDS):
        customer, mechanic = make_customer(db), make_mechanic(db)
        first = _live_with_evidence(db, customer, mechanic)
        # a second live session of the same pair (the busy rule is not what is tested here)
        db.execute("update public.mechanic_commitments set status = 'done' where session_id = %s", (first,))
        second = _live_with_evidence(db, customer, mechanic)
        db.conn.commit()
        results = race([(a, mechanic, "select public.end_session(%s)", (first,)),
                        (b, customer, "select public.end_session(%s)", (second,))])
        assert [r[0] for r in results] == ["ok", "ok"], results
        assert db.one("select completed_sessions, customers_served from public.mechanics where id = %s",
                      (mechanic,)) == {"completed_sessions": 2, "customers_served": 1}
        db.conn.commit()


def test_a_report_racing_the_release_job(conns: tuple[Db, list[psycopg.Connection]]) -> None:
    db, (a, b) = conns
    outcomes = set()
    for _ in range(ROUNDS):
        customer, mechanic = make_customer(db), make_mechanic(db)
        db.execute("insert into public.payout_accounts (mechanic_id, stripe_account_id, transfers_active)"
                   " values (%s, %s, true)", (mechanic, "acct_" + uuid.uuid4().hex[:12]))
        sid = _live_with_evidence(db, customer, mechanic)
        with db.as_user(mechanic):
            db.rpc("end_session", p_session_id=sid)
        # the release time has come while the report window is still open: both may go first
        db.execute("update public.payouts set release_at = now() - interval '1 second' where session_id = %s", (sid,))
        db.conn.commit()

        def report(sid: Any = sid, customer: uuid.UUID = customer) -> tuple[str, Any]:
            return call_as(a, customer, "select public.report_problem(%s, 'not delivered')", (sid,))

        def release() -> tuple[str, Any]:
            with b.transaction():
                return "ok", b.execute("select private.release_held_payouts(now())").fetchone()[0]

        rep, rel = _both_ways([report, release])
        assert rel[0] == "ok"
        status = db.scalar("select status::text from public.payouts where session_id = %s", (sid,))
        reported = db.scalar("select count(*) from public.session_problem_reports where session_id = %s", (sid,))
        if rep[0] == "ok":
            assert (status, reported) == ("waiting", 1)
            outcomes.add("report first")
        else:
            assert rep[1] == "AD100" and (status, reported) == ("queued", 0)
            outcomes.add("release first")
        assert db.all("select * from private.payment_integrity_issues") == []
        db.conn.commit()
    assert outcomes  # each round ended one of the two consistent ways


def test_two_admins_decide_one_session_once(conns: tuple[Db, list[psycopg.Connection]]) -> None:
    db, (a, b) = conns
    for outcome in ("refund", "pay", "partial"):
        customer, mechanic, admin, other_admin = make_customer(db), make_mechanic(db), make_admin(db), make_admin(db)
        sid = _live_with_evidence(db, customer, mechanic)
        db.execute("update public.session_participants set joined_at = null where session_id = %s", (sid,))
        with db.as_user(customer):
            assert db.rpc("end_session", p_session_id=sid)["delivery"] == "unverified"
        db.conn.commit()
        cents = 1000 if outcome == "partial" else None
        results = race([(conn, who, "select public.admin_resolve_delivery(%s, %s, %s)", (sid, outcome, cents))
                        for conn, who in ((a, admin), (b, other_admin))])
        assert sorted(r[0] for r in results) == ["err", "ok"], results
        assert [r[1] for r in results if r[0] == "err"] == ["AD102"]
        assert db.scalar("select count(*) from public.session_delivery_decisions where session_id = %s", (sid,)) == 1
        refunded = db.scalar("select coalesce(sum(r.amount_cents), 0) from public.refunds r join public.payments p "
                             "on p.id = r.payment_id where p.session_id = %s", (sid,))
        assert refunded == {"refund": 2999, "pay": 0, "partial": 1000}[outcome]
        assert db.scalar("select count(*) from public.payouts where session_id = %s", (sid,)) == \
            (0 if outcome == "refund" else 1)
        assert db.all("select * from private.payment_integrity_issues") == []
        db.conn.commit()
