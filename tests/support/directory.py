"""Workshops for the specialists, dispatch and directory tests: two workshops, each with an owner, a
manager, a dispatcher and mechanics (clocked in), a customer and a platform admin."""

from __future__ import annotations

import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from tests.support.factories import make_admin, make_customer, make_intake, make_mechanic
from tests.support.harness import Db


@dataclass
class Shop:
    org: uuid.UUID
    owner: uuid.UUID
    manager: uuid.UUID
    dispatcher: uuid.UUID
    mechanic: uuid.UUID
    mechanic2: uuid.UUID


@dataclass
class Shops:
    a: Shop
    b: Shop
    customer: uuid.UUID
    admin: uuid.UUID
    independent: uuid.UUID

    def who(self, name: str) -> uuid.UUID | None:
        """A persona by name: owner, manager, dispatcher, mechanic (of workshop a), other_owner,
        other_dispatcher (of workshop b), customer, admin, independent; anon is None."""
        table: dict[str, uuid.UUID | None] = {
            "owner": self.a.owner, "manager": self.a.manager, "dispatcher": self.a.dispatcher,
            "mechanic": self.a.mechanic, "other_owner": self.b.owner, "other_dispatcher": self.b.dispatcher,
            "customer": self.customer, "admin": self.admin, "independent": self.independent, "anon": None,
        }
        return table[name]


def add_member(db: Db, org: uuid.UUID, user: uuid.UUID, role: str) -> None:
    db.execute("insert into public.organization_members (organization_id, user_id, role) values (%s, %s, %s)",
               (org, user, role))


def make_shop(db: Db, name: str, *, auto_accept: bool = True, **details: Any) -> Shop:
    org = db.scalar("insert into public.organizations (name, timezone, auto_accept_micro, status, verified_at) "
                    "values (%s, 'America/Toronto', %s, 'verified', now()) returning id", (name, auto_accept))
    if details:
        cols = ", ".join(f"{k} = %({k})s" for k in details)
        db.execute(f"update public.organizations set {cols} where id = %(id)s", {**details, "id": org})
    staff = {}
    for role in ("owner", "manager", "dispatcher"):
        staff[role] = db.make_user(user_metadata={"full_name": f"{name} {role}"})
        add_member(db, org, staff[role], role)
    mechanics = []
    for i in range(2):
        m = make_mechanic(db, name=f"{name} mechanic {i}", timezone="America/Toronto")
        add_member(db, org, m, "mechanic")
        db.execute("update public.mechanics set organization_id = %s, account_type = 'workshop_mechanic' "
                   "where id = %s", (org, m))
        with db.as_user(m):
            db.rpc("clock", p_action="clock_in", p_location="Bay 1")
        mechanics.append(m)
    return Shop(org=org, owner=staff["owner"], manager=staff["manager"], dispatcher=staff["dispatcher"],
                mechanic=mechanics[0], mechanic2=mechanics[1])


def make_shops(db: Db, *, auto_accept: bool = True) -> Shops:
    return Shops(a=make_shop(db, "Bay Motors", auto_accept=auto_accept),
                 b=make_shop(db, "Harbour Garage", auto_accept=auto_accept),
                 customer=make_customer(db), admin=make_admin(db),
                 independent=make_mechanic(db, name="Indy Independent"))


def acting(db: Db, user: uuid.UUID | None) -> AbstractContextManager[Db]:
    return db.as_anon() if user is None else db.as_user(user)


def micro_request(db: Db, customer: uuid.UUID | None = None) -> tuple[uuid.UUID, uuid.UUID]:
    """A free (micro) request filed for `customer`, open to everyone: (request, session)."""
    customer = customer or make_customer(db)
    intake = make_intake(db, customer)
    ids = db.scalar("select private.create_session_request(%s, 'free', %s, null, null, false, 0, now())",
                    (customer, intake))
    db.execute("update public.session_requests set broadcast_at = now() - interval '1 minute' where id = %s",
               (ids["request_id"],))
    return uuid.UUID(ids["request_id"]), uuid.UUID(ids["session_id"])


def pg_array(values: list[Any] | None) -> str | None:
    """A text[] literal (as PostgREST passes a JSON array to a text[] argument); None stays null,
    nested lists stay nested, None elements are NULL."""
    if values is None:
        return None

    def item(v: Any) -> str:
        if v is None:
            return "NULL"
        if isinstance(v, list):
            return "{" + ",".join(item(x) for x in v) + "}"
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'

    return "{" + ",".join(item(v) for v in values) + "}"
