"""Workshop tenancy helpers: a workshop with one member per role, invitations and their tokens."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from tests.support.factories import make_admin, make_customer, make_mechanic
from tests.support.harness import Db


@dataclass
class Shop:
    workshop: uuid.UUID
    owner: uuid.UUID
    manager: uuid.UUID
    dispatcher: uuid.UUID
    mechanic: uuid.UUID  # an approved mechanic, member in role mechanic, linked (workshop_mechanic)
    other_workshop: uuid.UUID
    other_owner: uuid.UUID
    customer: uuid.UUID
    admin: uuid.UUID

    def personas(self) -> dict[str, uuid.UUID | None]:
        return {"owner": self.owner, "manager": self.manager, "dispatcher": self.dispatcher,
                "mechanic": self.mechanic, "other_owner": self.other_owner, "customer": self.customer,
                "admin": self.admin, "anon": None}


def create_workshop(db: Db, owner: uuid.UUID, name: str = "Bay Motors", **details: Any) -> uuid.UUID:
    with db.as_user(owner):
        return uuid.UUID(db.rpc("create_workshop", p_name=name, p_timezone="America/Toronto",
                                p_details=details)["workshop_id"])


def add_member(db: Db, workshop: uuid.UUID, user: uuid.UUID, role: str) -> None:
    db.execute("insert into public.organization_members (organization_id, user_id, role) values (%s, %s, %s)",
               (workshop, user, role))
    if role == "mechanic":
        db.execute("update public.mechanics set organization_id = %s, account_type = 'workshop_mechanic' "
                   "where id = %s", (workshop, user))


def make_shop(db: Db, *, verified: bool = True) -> Shop:
    admin = make_admin(db)
    owner, other_owner = make_customer(db, "Olive Owner"), make_customer(db, "Otto Other")
    workshop = create_workshop(db, owner)
    other = create_workshop(db, other_owner, "Rival Garage")
    if verified:
        with db.as_user(admin):
            db.rpc("admin_set_workshop_status", p_workshop_id=workshop, p_status="verified")
            db.rpc("admin_set_workshop_status", p_workshop_id=other, p_status="verified")
    manager, dispatcher = make_customer(db, "Mona Manager"), make_customer(db, "Dana Dispatcher")
    mechanic = make_mechanic(db, name="Milo Mechanic")
    add_member(db, workshop, manager, "manager")
    add_member(db, workshop, dispatcher, "dispatcher")
    add_member(db, workshop, mechanic, "mechanic")
    return Shop(workshop, owner, manager, dispatcher, mechanic, other, other_owner, make_customer(db), admin)


def email_of(db: Db, user: uuid.UUID) -> str:
    return str(db.scalar("select email from auth.users where id = %s", (user,)))


def invite(db: Db, by: uuid.UUID, workshop: uuid.UUID, email: str, role: str = "mechanic") -> tuple[uuid.UUID, str]:
    """Invites `email`; returns the invitation id and the token the email carries."""
    with db.as_user(by):
        inv = db.rpc("invite_to_workshop", p_workshop_id=workshop, p_email=email, p_role=role)
    token = db.scalar("select payload -> 'data' ->> 'token' from private.outbox where dedupe_key = %s",
                      (f"email:workshop_invitation:{inv['invitation_id']}",))
    return uuid.UUID(inv["invitation_id"]), str(token)


def as_persona(db: Db, user: uuid.UUID | None) -> Any:
    return db.as_anon() if user is None else db.as_user(user)
