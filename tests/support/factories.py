"""Domain factories for tests: state is built through the real signup trigger and RPCs."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from tests.support.harness import Db


@dataclass
class World:
    """A small marketplace: personas and one free request from the customer."""

    customer: uuid.UUID
    other_customer: uuid.UUID
    mechanic: uuid.UUID
    other_mechanic: uuid.UUID
    pending_mechanic: uuid.UUID
    workshop_admin: uuid.UUID
    admin: uuid.UUID
    organization: uuid.UUID
    intake: uuid.UUID
    vehicle: uuid.UUID
    request: uuid.UUID
    session: uuid.UUID


def make_admin(db: Db) -> uuid.UUID:
    return db.make_user(app_metadata={"role": "admin"}, user_metadata={"full_name": "Ada Admin"})


def make_customer(db: Db, name: str = "Casey Customer", *, waiver: bool = True) -> uuid.UUID:
    """A customer signs up and (unless `waiver` is false) accepts the current terms."""
    customer = db.make_user(user_metadata={"full_name": name}, phone=None)
    if waiver:
        accept_waiver(db, customer)
    return customer


def ensure_waiver(db: Db, user: uuid.UUID) -> None:
    """`user` (a customer, or a mechanic filing demand as one) has accepted the current terms."""
    if not db.scalar("select private.has_current_waiver(%s)", (user,)):
        accept_waiver(db, user)


def accept_waiver(db: Db, user: uuid.UUID) -> None:
    """`user` accepts the current terms as an adult, through the RPC."""
    version = db.scalar("select private.setting_text('waiver.current_version')")
    with db.as_user(user):
        db.rpc("accept_waiver", p_version=version, p_adult=True)


def make_mechanic(db: Db, *, approved: bool = True, name: str = "Morgan Mechanic", **fields: Any) -> uuid.UUID:
    """A mechanic signs up (pending); an admin approves it when `approved`."""
    mechanic = db.make_user(user_metadata={"full_name": name, "account_type": "mechanic"})
    if approved:
        approve(db, mechanic)
    if fields:
        cols = ", ".join(f"{k} = %({k})s" for k in fields)
        db.execute(f"update public.mechanics set {cols} where id = %(id)s", {**fields, "id": mechanic})
    return mechanic


_admin_cache: dict[int, uuid.UUID] = {}


def approve(db: Db, mechanic: uuid.UUID, status: str = "approved") -> None:
    key = id(db.conn)
    admin = _admin_cache.get(key)
    if admin is None or db.scalar("select count(*) from private.admins where user_id = %s", (admin,)) == 0:
        admin = make_admin(db)
        _admin_cache[key] = admin
    with db.as_user(admin):
        db.rpc("admin_set_mechanic_status", p_mechanic_id=mechanic, p_status=status)


def make_vehicle(db: Db, owner: uuid.UUID, **fields: Any) -> uuid.UUID:
    values = {"make": "Honda", "model": "Civic", "year": 2018, **fields}
    cols = ", ".join(values)
    params = ", ".join(f"%({k})s" for k in values)
    with db.as_user(owner):
        return db.scalar(f"insert into public.vehicles ({cols}) values ({params}) returning id", values)


def make_intake(db: Db, customer: uuid.UUID, vehicle: uuid.UUID | None = None, **fields: Any) -> uuid.UUID:
    values = {
        "concern": "Grinding noise from the front brakes when stopping",
        "contact_name": "Casey Customer", "contact_email": "casey@example.test", "contact_phone": "+1 555 0100",
        "vehicle_make": "Honda", "vehicle_model": "Civic", "vehicle_year": 2018, **fields,
    }
    if vehicle is not None:
        values["vehicle_id"] = vehicle
    cols = ", ".join(values)
    params = ", ".join(f"%({k})s" for k in values)
    with db.as_user(customer):
        return db.scalar(f"insert into public.intakes ({cols}) values ({params}) returning id", values)


def request_free(db: Db, customer: uuid.UUID, **kwargs: Any) -> dict[str, Any]:
    """A free-plan request through the public RPC; returns {session_id, request_id}."""
    intake = kwargs.pop("intake", None) or make_intake(db, customer)
    ensure_waiver(db, customer)
    with db.as_user(customer):
        return db.rpc("request_session", p_plan_code=kwargs.pop("plan", "free"), p_intake_id=intake, **kwargs)


def accept(db: Db, mechanic: uuid.UUID, request_id: Any) -> dict[str, Any]:
    with db.as_user(mechanic):
        return db.rpc("accept_request", p_request_id=request_id)


def make_world(db: Db) -> World:
    admin = make_admin(db)
    customer = make_customer(db)
    other_customer = make_customer(db, "Olive Other")
    mechanic = make_mechanic(db, name="Morgan Mechanic")
    other_mechanic = make_mechanic(db, name="Otto Othermech")
    pending_mechanic = make_mechanic(db, approved=False, name="Pat Pending")
    workshop_admin = db.make_user(user_metadata={"full_name": "Wren Workshop"})
    organization = db.scalar("insert into public.organizations (name, timezone) values ('Bay Motors', 'America/Toronto') "
                             "returning id")
    db.execute("insert into public.organization_members (organization_id, user_id, role) values (%s, %s, 'owner')",
               (organization, workshop_admin))
    db.execute("insert into public.organization_members (organization_id, user_id, role) values (%s, %s, 'mechanic')",
               (organization, mechanic))
    db.execute("update public.mechanics set organization_id = %s, account_type = 'workshop_mechanic' where id = %s",
               (organization, mechanic))
    # a workshop mechanic takes micro sessions (the free plan) only on shift
    with db.as_user(mechanic):
        db.rpc("clock", p_action="clock_in", p_location="Bay 2")
    vehicle = make_vehicle(db, customer)
    intake = make_intake(db, customer, vehicle)
    ids = request_free(db, customer, intake=intake)
    return World(
        customer=customer, other_customer=other_customer, mechanic=mechanic, other_mechanic=other_mechanic,
        pending_mechanic=pending_mechanic, workshop_admin=workshop_admin, admin=admin, organization=organization,
        intake=intake, vehicle=vehicle, request=uuid.UUID(ids["request_id"]), session=uuid.UUID(ids["session_id"]),
    )
