"""Helpers for the follow-up question tests (no tests here): a delivered session, files of a
session in Storage, and ask_follow_up as a persona."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import psycopg

from shared.errors import error_code
from tests.support.delivery import deliver
from tests.support.factories import accept, make_customer, make_intake, make_mechanic, make_vehicle, request_free
from tests.support.harness import Db

QUESTION = "The grinding came back after the pads were changed: is it the rotors?"


@dataclass
class Thread:
    """A customer's delivered session with an independent mechanic (who may take micro sessions at
    any time)."""

    customer: uuid.UUID
    mechanic: uuid.UUID
    vehicle: uuid.UUID
    session: uuid.UUID


def delivered(db: Db, *, customer: uuid.UUID | None = None, mechanic: uuid.UUID | None = None) -> Thread:
    """A free session filed by a new customer (or `customer`), taken by `mechanic` (or a new
    independent one), started by both, taken part in and ended: completed, delivered."""
    customer = customer or make_customer(db)
    mechanic = mechanic or make_mechanic(db, name=f"Mech {uuid.uuid4().hex[:6]}")
    vehicle = make_vehicle(db, customer)
    ids = request_free(db, customer, intake=make_intake(db, customer, vehicle))
    accept(db, mechanic, ids["request_id"])
    deliver(db, ids["session_id"])
    return Thread(customer=customer, mechanic=mechanic, vehicle=vehicle, session=uuid.UUID(ids["session_id"]))


def session_file(db: Db, session: Any, owner: uuid.UUID, name: str = "rotor.jpg") -> str:
    """An object of bucket session-files in the session's folder (as an upload leaves it)."""
    path = f"sessions/{session}/{name}"
    db.execute(
        "insert into storage.objects (bucket_id, name, owner_id) values ('session-files', %s, %s)", (path, str(owner))
    )
    return path


def text_array(items: list[str | None] | None) -> str | None:
    """A text[] literal (the harness passes Python lists as jsonb, PostgREST passes a JSON array
    to a text[] argument as an array)."""
    if items is None:
        return None
    quoted = ("NULL" if i is None else '"' + i.replace("\\", "\\\\").replace('"', '\\"') + '"' for i in items)
    return "{" + ",".join(quoted) + "}"


def ask(
    db: Db, user: uuid.UUID, session: Any, question: str | None = QUESTION, photos: list[str] | None = None
) -> dict[str, Any]:
    with db.as_user(user):
        return dict(
            db.rpc("ask_follow_up", p_session_id=session, p_question=question, p_photo_paths=text_array(photos))
        )


def ask_error(
    db: Db, user: uuid.UUID, session: Any, question: str | None = QUESTION, photos: list[str | None] | None = None
) -> str:
    """ask_follow_up that must fail: its SQLSTATE."""
    with db.as_user(user):
        try:
            db.rpc("ask_follow_up", p_session_id=session, p_question=question, p_photo_paths=text_array(photos))
        except psycopg.Error as exc:
            return error_code(exc)
    raise AssertionError("expected ask_follow_up to fail")


def counts(db: Db) -> tuple[int, int, int, int]:
    """Follow-ups, intakes, sessions and CRM rows: what a refused call must leave unchanged."""
    row = db.one(
        "select (select count(*) from public.follow_ups) as f, (select count(*) from public.intakes) as i, "
        "(select count(*) from public.sessions) as s, (select count(*) from public.crm_interactions) as c"
    )
    assert row is not None
    return row["f"], row["i"], row["s"], row["c"]
