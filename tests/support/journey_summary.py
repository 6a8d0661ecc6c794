"""Helpers for the journey's media and summary tests: Storage objects as the Storage API writes
them (a row in storage.objects, inserted as the signed-in user so the bucket's policies decide),
and a session taken by a mechanic and live."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg

from tests.support.delivery import start_both, take_part
from tests.support.factories import accept, make_customer, make_intake, make_mechanic, request_free
from tests.support.harness import Db

JPEG = {"size": 120_000, "mimetype": "image/jpeg"}


def put_intake_file(
    db: Db, user: uuid.UUID | None, intake: Any, file: str = "brakes.jpg", metadata: dict[str, Any] | None = JPEG
) -> psycopg.Error | None:
    """`user` (None: anon) stores intakes/<intake>/<file> in bucket intake-files; the error when the
    policies refuse it."""
    return put_object(db, user, "intake-files", f"intakes/{intake}/{file}", metadata)


def put_session_file(db: Db, user: uuid.UUID, session: Any, file: str = "rotor.jpg") -> str:
    """A participant of a waiting or live session stores sessions/<session>/<file> (session-files)."""
    name = f"sessions/{session}/{file}"
    assert put_object(db, user, "session-files", name, JPEG) is None
    return name


def put_object(
    db: Db, user: uuid.UUID | None, bucket: str, name: str, metadata: dict[str, Any] | None
) -> psycopg.Error | None:
    persona = db.as_anon() if user is None else db.as_user(user)
    with persona:
        try:
            db.execute(
                "insert into storage.objects (bucket_id, name, owner_id, metadata) values (%s, %s, %s, %s)",
                (bucket, name, None if user is None else str(user), None if metadata is None else json.dumps(metadata)),
            )
        except psycopg.Error as exc:
            return exc
    return None


def delete_object(db: Db, user: uuid.UUID | None, name: str) -> int:
    """`user` deletes an object as the Storage API does (which permits deletes on its connection);
    returns how many rows the policies let go."""
    persona = db.as_anon() if user is None else db.as_user(user)
    with persona:
        db.execute("select set_config('storage.allow_delete_query', 'true', true)")
        count = db.execute("delete from storage.objects where name = %s", (name,)).rowcount
        db.execute("select set_config('storage.allow_delete_query', 'false', true)")
    return count


def visible_objects(db: Db, user: uuid.UUID | None, prefix: str) -> list[str]:
    """The object names under `prefix` that `user` (None: anon) may read (and so sign URLs for)."""
    persona = db.as_anon() if user is None else db.as_user(user)
    with persona:
        return [
            r["name"]
            for r in db.all("select name from storage.objects where name like %s order by name", (prefix + "%",))
        ]


@dataclass
class Live:
    customer: uuid.UUID
    mechanic: uuid.UUID
    intake: uuid.UUID
    request: uuid.UUID
    session: uuid.UUID


def open_request(db: Db, **kwargs: Any) -> Live:
    """A new customer's free request from a new intake (no mechanic yet: `mechanic` is a fresh
    approved mechanic that has not taken it)."""
    customer = make_customer(db)
    intake = make_intake(db, customer)
    ids = request_free(db, customer, intake=intake, **kwargs)
    return Live(
        customer=customer,
        mechanic=make_mechanic(db),
        intake=intake,
        request=uuid.UUID(ids["request_id"]),
        session=uuid.UUID(ids["session_id"]),
    )


def live_session(db: Db, **kwargs: Any) -> Live:
    """`open_request`, taken by its mechanic, both started, both took part: live."""
    live = open_request(db, **kwargs)
    accept(db, live.mechanic, live.request)
    start_both(db, live.session)
    take_part(db, live.session)
    return live
