"""Parallel calls from one account never pass a cap: every limit is counted under the customer's
lock. Each test commits in a database of its own and fires the calls at once (a barrier), one
connection per call."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from collections.abc import Iterator

import psycopg
import pytest

from tests.support.factories import make_customer, make_intake, make_mechanic
from tests.support.harness import Db
from tests.support.personas import race
from tests.support.scheduling import at, every_day, future_day, scheduled_mechanic

CALLS = 10
LIMIT = "AD130"


@pytest.fixture
def world(fresh_url: str) -> Iterator[tuple[Db, list[psycopg.Connection]]]:
    conn = psycopg.connect(fresh_url, prepare_threshold=None)
    conn.execute("select 1")
    conns = [psycopg.connect(fresh_url, autocommit=True, prepare_threshold=None) for _ in range(CALLS)]
    yield Db(conn), conns
    for c in conns:
        c.close()
    conn.close()


def _setting(db: Db, key: str, value: int) -> None:
    db.execute("update private.settings set value = to_jsonb(%s::int) where key = %s", (value, key))


def _commit(db: Db) -> None:
    db.conn.commit()
    db.conn.execute("select 1")


def _race_requests(db: Db, conns: list[psycopg.Connection], customer: uuid.UUID,
                   preferred: uuid.UUID | None = None) -> Counter[str]:
    intakes = [make_intake(db, customer) for _ in conns]
    _commit(db)
    results = race([(c, customer, "select public.request_session('free', %s, null, %s)", (intake, preferred))
                    for c, intake in zip(conns, intakes, strict=True)])
    return Counter("ok" if kind == "ok" else value for kind, value in results)


def test_parallel_free_requests_pass_one(world: tuple[Db, list[psycopg.Connection]]) -> None:
    db, conns = world
    customer = make_customer(db)
    assert _race_requests(db, conns, customer) == Counter({"ok": 1, LIMIT: CALLS - 1})
    assert db.scalar("select count(*) from public.sessions where customer_id = %s", (customer,)) == 1


def test_parallel_requests_never_exceed_the_open_cap(world: tuple[Db, list[psycopg.Connection]]) -> None:
    db, conns = world
    _setting(db, "limits.free_sessions_per_account", 1000)
    customer = make_customer(db)
    assert _race_requests(db, conns, customer) == Counter({"ok": 2, LIMIT: CALLS - 2})
    assert db.scalar("select private.open_requests_count(%s)", (customer,)) == 2


def test_parallel_requests_for_one_preferred_mechanic_pass_one(world: tuple[Db, list[psycopg.Connection]]) -> None:
    db, conns = world
    _setting(db, "limits.free_sessions_per_account", 1000)
    _setting(db, "limits.open_requests_per_customer", 1000)
    customer = make_customer(db)
    mechanic = make_mechanic(db)
    assert _race_requests(db, conns, customer, mechanic) == Counter({"ok": 1, LIMIT: CALLS - 1})
    assert db.scalar("select count(*) from public.session_requests where customer_id = %s", (customer,)) == 1


def test_parallel_holds_never_exceed_the_future_bookings_cap(world: tuple[Db, list[psycopg.Connection]]) -> None:
    db, conns = world
    _setting(db, "scheduling.max_holds_per_customer", 1000)  # the future-bookings cap alone
    customer = make_customer(db)
    # one mechanic per call: the mechanics' own locks do not serialize them, only the customer's
    mechanics = [scheduled_mechanic(db, "UTC", every_day("00:00", "24:00"), rules={"slot_step_minutes": 5})
                 for _ in conns]
    _commit(db)
    start = at(future_day(4), "09:00")
    results = race([(c, customer, "select public.hold_slot(%s, %s, 'chat10')", (m, start))
                    for c, m in zip(conns, mechanics, strict=True)])
    assert Counter("ok" if k == "ok" else v for k, v in results) == Counter({"ok": 3, LIMIT: CALLS - 3})
    assert db.scalar("select count(*) from public.mechanic_commitments where customer_id = %s", (customer,)) == 3


def test_parallel_free_holds_pass_one(world: tuple[Db, list[psycopg.Connection]]) -> None:
    db, conns = world
    customer = make_customer(db)
    mechanics = [scheduled_mechanic(db, "UTC", every_day("00:00", "24:00"), rules={"slot_step_minutes": 5})
                 for _ in conns]
    _commit(db)
    start = at(future_day(4), "09:00") + dt.timedelta(minutes=5)
    results = race([(c, customer, "select public.hold_slot(%s, %s, 'free')", (m, start))
                    for c, m in zip(conns, mechanics, strict=True)])
    assert Counter("ok" if k == "ok" else v for k, v in results) == Counter({"ok": 1, LIMIT: CALLS - 1})


def test_parallel_intakes_never_exceed_the_hourly_cap(world: tuple[Db, list[psycopg.Connection]]) -> None:
    db, conns = world
    customer = make_customer(db)
    for _ in range(15):
        make_intake(db, customer)
    _commit(db)
    results = race([(c, customer, "insert into public.intakes (concern) values ('Knocking at idle') returning id", ())
                    for c in conns])
    assert Counter("ok" if k == "ok" else v for k, v in results) == Counter({"ok": 5, LIMIT: CALLS - 5})
    assert db.scalar("select count(*) from public.intakes where customer_id = %s", (customer,)) == 20
