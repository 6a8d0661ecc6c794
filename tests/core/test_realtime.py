"""Realtime: who may join which private channel (the policies on realtime.messages, probed the way
the Realtime server does at join), and the broadcasts the database sends inside the transaction
that made the change (docs/api.md, "Realtime")."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from tests.support.factories import World, accept, approve, make_customer, make_intake, make_world, request_free
from tests.support.harness import Db

PERSONAS = ("anon", "customer", "other_customer", "mechanic", "other_mechanic", "pending_mechanic",
            "workshop_admin", "admin")
SIGNED_IN = frozenset(PERSONAS) - {"anon"}
CONTACT_KEY = re.compile(r"email|phone|address|contact|postal|full_name", re.IGNORECASE)


@dataclass
class RtWorld:
    w: World
    users: dict[str, uuid.UUID | None]

    def topic(self, template: str) -> str:
        return template.format(mechanic=self.w.mechanic, other_mechanic=self.w.other_mechanic,
                               session=self.w.session)


def _world(db: Db) -> RtWorld:
    w = make_world(db)
    users: dict[str, uuid.UUID | None] = {
        "anon": None, "customer": w.customer, "other_customer": w.other_customer, "mechanic": w.mechanic,
        "other_mechanic": w.other_mechanic, "pending_mechanic": w.pending_mechanic,
        "workshop_admin": w.workshop_admin, "admin": w.admin,
    }
    return RtWorld(w, users)


@pytest.fixture
def rt(db: Db) -> RtWorld:
    """The factories' world, the customer's request accepted by `mechanic` (session waiting)."""
    world = _world(db)
    accept(db, world.w.mechanic, world.w.request)
    return world


def receivers(db: Db, world: RtWorld, topic: str, extension: str = "broadcast") -> set[str]:
    return {p for p in PERSONAS if db.can_receive(world.users[p], topic, extension)}


def senders(db: Db, world: RtWorld, topic: str, extension: str = "broadcast") -> set[str]:
    return {p for p in PERSONAS if db.can_send(world.users[p], topic, extension)}


# -------------------------------------------------------------------------------------------------
# Channel authorization
# -------------------------------------------------------------------------------------------------
RECEIVE = [
    ("mechanics:requests", "broadcast", {"mechanic", "other_mechanic", "admin"}),
    ("mechanic:{mechanic}", "broadcast", {"mechanic", "admin"}),
    ("mechanic:{other_mechanic}", "broadcast", {"other_mechanic", "admin"}),
    ("session:{session}", "broadcast", {"customer", "mechanic", "admin"}),
    ("session:not-a-uuid", "broadcast", set()),
    ("session:", "broadcast", set()),
    ("admin:queue", "broadcast", {"admin"}),
    ("mechanics:presence", "presence", set(SIGNED_IN)),
    # presence is for mechanics:presence only; that topic also carries the database's presence
    # broadcasts (status_changed), which every signed-in user may receive
    ("mechanics:presence", "broadcast", set(SIGNED_IN)),
    ("mechanics:requests", "presence", set()),
    ("session:{session}", "presence", set()),
    ("admin:queue", "presence", set()),
    ("somewhere:else", "broadcast", set()),
]


@pytest.mark.parametrize(("topic", "extension", "expected"), RECEIVE, ids=lambda v: v if isinstance(v, str) else None)
def test_who_receives(db: Db, rt: RtWorld, topic: str, extension: str, expected: set[str]) -> None:
    assert receivers(db, rt, rt.topic(topic), extension) == expected


def test_session_topic_before_accept_is_the_customers_and_admins(db: Db) -> None:
    world = _world(db)
    topic = f"session:{world.w.session}"
    assert db.scalar("select status from public.sessions where id = %s", (world.w.session,)) == "pending"
    assert receivers(db, world, topic) == {"customer", "admin"}
    accept(db, world.w.mechanic, world.w.request)
    assert receivers(db, world, topic) == {"customer", "mechanic", "admin"}


def test_session_topic_follows_a_released_request(db: Db, rt: RtWorld) -> None:
    with db.as_user(rt.w.mechanic):
        assert db.rpc("cancel_request", p_request_id=rt.w.request)["status"] == "pending"
    assert receivers(db, rt, rt.topic("session:{session}")) == {"customer", "admin"}


def test_malformed_session_topic_is_refused_without_error(db: Db, rt: RtWorld) -> None:
    for topic in ("session:not-a-uuid", "session:", f"session:{rt.w.session}x", "session:' or true --"):
        assert db.can_receive(rt.w.admin, topic) is False
        assert db.can_receive(rt.w.customer, topic) is False
    # the probes left the transaction usable
    assert db.scalar("select 1") == 1


TOPICS = ("mechanics:requests", "mechanic:{mechanic}", "mechanic:{other_mechanic}", "session:{session}",
          "admin:queue", "mechanics:presence", "somewhere:else")


@pytest.mark.parametrize("topic", TOPICS)
def test_nobody_sends_broadcasts(db: Db, rt: RtWorld, topic: str) -> None:
    assert senders(db, rt, rt.topic(topic), "broadcast") == set()


@pytest.mark.parametrize("topic", TOPICS)
def test_only_approved_mechanics_track_presence_and_only_on_the_presence_topic(
    db: Db, rt: RtWorld, topic: str
) -> None:
    expected = {"mechanic", "other_mechanic"} if topic == "mechanics:presence" else set()
    assert senders(db, rt, rt.topic(topic), "presence") == expected


def test_suspended_mechanic_loses_the_feed_and_presence(db: Db, rt: RtWorld) -> None:
    approve(db, rt.w.other_mechanic, "suspended")
    assert db.can_receive(rt.w.other_mechanic, "mechanics:requests") is False
    assert db.can_send(rt.w.other_mechanic, "mechanics:presence", "presence") is False
    assert db.can_receive(rt.w.other_mechanic, "mechanics:presence", "presence") is True  # still signed in
    approve(db, rt.w.pending_mechanic)
    assert db.can_receive(rt.w.pending_mechanic, "mechanics:requests") is True
    assert db.can_send(rt.w.pending_mechanic, "mechanics:presence", "presence") is True


# -------------------------------------------------------------------------------------------------
# Broadcasts written by the database (read back as the superuser, in the same transaction)
# -------------------------------------------------------------------------------------------------
def messages(db: Db, topic: str, event: str, **payload: Any) -> list[dict[str, Any]]:
    return db.all(
        "select event, payload, extension, private from realtime.messages"
        " where topic = %s and event = %s and payload @> %s::jsonb",
        (topic, event, json.dumps({k: str(v) for k, v in payload.items()})),
    )


def only(rows: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(rows) == 1, rows
    row = rows[0]
    assert (row["extension"], row["private"]) == ("broadcast", True)
    return row["payload"]


def assert_no_contact(db: Db, payload: dict[str, Any], customer: uuid.UUID) -> None:
    email = db.scalar("select email from auth.users where id = %s", (customer,))
    text = json.dumps(payload)
    assert email and email not in text
    assert "@" not in text
    # the intake's contact phone is +1 555 0100, in any spelling; ids and timestamps are left out,
    # since random hex and microseconds may contain "555" by chance
    plain = json.dumps({k: v for k, v in payload.items() if k != "id" and not k.endswith(("_id", "_at"))})
    assert "555" not in plain and "5550100" not in re.sub(r"\D", "", text)
    assert [k for k in payload if CONTACT_KEY.search(k)] == []


def test_new_request_is_announced_without_contact(db: Db) -> None:
    world = _world(db)
    w = world.w
    payload = only(messages(db, "mechanics:requests", "new_request", request_id=w.request))
    assert payload["request_id"] == str(w.request)
    assert payload["session_id"] == str(w.session)
    assert payload["plan_code"] == "free"
    assert payload["concern"] == "Grinding noise from the front brakes when stopping"
    assert (payload["vehicle_make"], payload["vehicle_model"], payload["vehicle_year"]) == ("Honda", "Civic", 2018)
    # the intake it came from does hold contact details; none of them travel
    assert db.scalar("select contact_email from public.intakes where id = %s", (w.intake,)) == "casey@example.test"
    assert_no_contact(db, payload, w.customer)


def test_accepting_announces_to_mechanics_and_to_the_session(db: Db) -> None:
    world = _world(db)
    w = world.w
    topic = f"session:{w.session}"
    assert messages(db, topic, "status_changed") == []
    accept(db, w.mechanic, w.request)

    taken = only(messages(db, "mechanics:requests", "request_accepted", request_id=w.request))
    assert taken["mechanic_id"] == str(w.mechanic)
    changed = only(messages(db, topic, "status_changed", session_id=w.session))
    assert (changed["from"], changed["to"]) == ("pending", "waiting")
    assigned = only(messages(db, topic, "mechanic_assigned", session_id=w.session))
    assert assigned["mechanic_id"] == str(w.mechanic)
    assert assigned["display_name"] == "Morgan Mechanic"
    for payload in (taken, changed, assigned):
        assert_no_contact(db, payload, w.customer)


def test_customer_cancel_announces_request_cancelled(db: Db) -> None:
    world = _world(db)
    w = world.w
    with db.as_user(w.customer):
        assert db.rpc("cancel_request", p_request_id=w.request, p_reason="fixed it myself")["status"] == "cancelled"
    cancelled = only(messages(db, "mechanics:requests", "request_cancelled", request_id=w.request))
    assert cancelled["reason"] == "cancelled"
    assert_no_contact(db, cancelled, w.customer)
    changed = only(messages(db, f"session:{w.session}", "status_changed", session_id=w.session))
    assert (changed["from"], changed["to"]) == ("pending", "cancelled")


def test_start_session_announces_live(db: Db, rt: RtWorld) -> None:
    w = rt.w
    topic = f"session:{w.session}"
    with db.as_user(w.customer):
        db.rpc("start_session", p_session_id=w.session)  # ready; live once the mechanic is ready too
    assert sorted((m["payload"]["from"], m["payload"]["to"]) for m in messages(db, topic, "status_changed")) == \
        [("pending", "waiting")]
    with db.as_user(w.mechanic):
        db.rpc("start_session", p_session_id=w.session)
    changes = [(m["payload"]["from"], m["payload"]["to"]) for m in messages(db, topic, "status_changed")]
    assert sorted(changes) == [("pending", "waiting"), ("waiting", "live")]


def test_released_request_is_announced_again(db: Db, rt: RtWorld) -> None:
    w = rt.w
    with db.as_user(w.mechanic):
        db.rpc("cancel_request", p_request_id=w.request)
    announced = messages(db, "mechanics:requests", "new_request", request_id=w.request)
    assert len(announced) == 2  # on creation, and when the mechanic gave it back
    for row in announced:
        assert_no_contact(db, row["payload"], w.customer)


def _count_messages(conn: psycopg.Connection, request_id: Any) -> int:
    return conn.execute(
        "select count(*) from realtime.messages where payload ->> 'request_id' = %s", (str(request_id),)
    ).fetchone()[0]


@pytest.fixture
def fresh_conn(fresh_url: str) -> Iterator[psycopg.Connection]:
    conn = psycopg.connect(fresh_url, prepare_threshold=None)
    try:
        yield conn
    finally:
        conn.rollback()
        conn.close()


def test_broadcast_is_lost_when_the_transaction_rolls_back(fresh_url: str, fresh_conn: psycopg.Connection) -> None:
    conn = fresh_conn
    conn.execute("select 1")  # Db statements are savepoints of this transaction
    db = Db(conn)
    customer = make_customer(db)
    intake = make_intake(db, customer)
    conn.commit()

    conn.execute("select 1")
    doomed = request_free(db, customer, intake=intake)["request_id"]
    assert _count_messages(conn, doomed) == 1  # written inside the transaction
    conn.rollback()

    conn.execute("select 1")
    kept = request_free(db, customer, intake=intake)["request_id"]
    conn.commit()

    with psycopg.connect(fresh_url, autocommit=True) as observer:
        assert _count_messages(observer, kept) == 1  # a committed change's broadcast is there
        assert _count_messages(observer, doomed) == 0  # the rolled-back one's never was
        assert observer.execute("select count(*) from public.session_requests where id = %s",
                                (doomed,)).fetchone()[0] == 0
