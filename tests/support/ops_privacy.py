"""Privacy tests' helpers: a person whose name, phone and email are unique markers, with data in
every part of the platform, so a scan of every column can prove none of it remains."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from tests.support.delivery import deliver, paid_with_credit, release_hold, start_both, take_part
from tests.support.factories import accept, make_intake, make_mechanic, make_vehicle, request_free
from tests.support.harness import Db


@dataclass
class Person:
    id: uuid.UUID
    name: str
    phone: str
    email: str
    session: Any = None
    paid_session: Any = None

    @property
    def markers(self) -> list[str]:
        return [self.name, self.phone, self.email]


def marker_person(db: Db, *, mechanic: uuid.UUID | None = None) -> Person:
    """A customer with unique markers, a vehicle, intakes carrying the markers as contacts, a free
    delivered session with messages and a review, and a session paid with credit, delivered by the
    mechanic and its payouts released (queued)."""
    tag = uuid.uuid4().hex[:10]
    name = f"Zed Marker{tag}"
    phone = f"+1555{int(tag[:7], 16) % 10_000_000:07d}"
    email = f"marker-{tag}@example.test"
    uid = db.make_user(email=email, user_metadata={"full_name": name}, phone=phone)
    db.execute(
        "update public.profiles set phone = %s, city = %s, postal_code = 'H2X 1Y4' where id = %s",
        (phone, f"City{tag}", uid),
    )
    person = Person(uid, name, phone, email)
    mech = mechanic or make_mechanic(db)
    vehicle = make_vehicle(db, uid, vin=f"1HGCM82633A{int(tag[:6], 16) % 1_000_000:06d}", plate=f"PL{tag[:5]}")
    intake = make_intake(db, uid, vehicle, contact_name=name, contact_email=email, contact_phone=phone)
    out = request_free(db, uid, intake=intake)
    accept(db, mech, out["request_id"])
    start_both(db, out["session_id"])
    take_part(db, out["session_id"])
    with db.as_user(uid):
        db.execute(
            "insert into public.chat_messages (session_id, content) values (%s, %s)",
            (out["session_id"], f"call me at {phone}, {name}"),
        )
    with db.as_user(mech):
        db.rpc("end_session", p_session_id=out["session_id"], p_notes=None)
    with db.as_user(uid):
        db.rpc("submit_review", p_session_id=out["session_id"], p_rating=5, p_text="great help")
    person.session = out["session_id"]
    paid = paid_with_credit(db, uid)
    person.paid_session = paid["session_id"]
    deliver_paid(db, person, mech)
    make_intake(db, uid, contact_name=name, contact_email=email, contact_phone=phone)
    return person


def deliver_paid(db: Db, person: Person, mechanic: uuid.UUID) -> None:
    """The mechanic takes, delivers and is paid for the person's paid session."""
    request = db.scalar("select id from public.session_requests where session_id = %s", (person.paid_session,))
    accept(db, mechanic, request)
    deliver(db, person.paid_session)
    release_hold(db, person.paid_session)


def scan_for(db: Db, markers: list[str]) -> list[tuple[str, str, str]]:
    """Every text, varchar and jsonb column of every table in public, private, auth and storage
    that still holds one of `markers` (case-insensitive): (table, column, marker)."""
    cols = db.all(
        "select c.table_schema || '.' || c.table_name as t, c.column_name as c from information_schema.columns c"
        " join information_schema.tables t on t.table_schema = c.table_schema and t.table_name = c.table_name"
        " where c.table_schema in ('public', 'private', 'auth', 'storage') and t.table_type = 'BASE TABLE'"
        " and c.data_type in ('text', 'character varying', 'jsonb', 'json', 'ARRAY')"
    )
    found = []
    for col in cols:
        schema, table = col["t"].split(".")
        for marker in markers:
            hit = db.scalar(
                f'select exists (select 1 from "{schema}"."{table}" where "{col["c"]}"::text ilike %s)',
                (f"%{marker}%",),
            )
            if hit:
                found.append((col["t"], col["c"], marker))
    return found
