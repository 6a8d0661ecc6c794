"""Helpers for the workshop appointment tests (no tests here): a verified workshop with its staff
by role and open hours, customers with vehicles, delivered diagnostic sessions, and shortcuts for
the appointment RPCs."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from tests.support.factories import make_admin, make_customer, make_mechanic, make_vehicle
from tests.support.harness import Db
from tests.support.reviews import session_between

UTC = dt.UTC


@dataclass
class Shop:
    """A verified workshop (UTC, open every day 08:00–18:00 with a 12:00–13:00 break) and its people."""

    id: uuid.UUID
    owner: uuid.UUID
    manager: uuid.UUID
    dispatcher: uuid.UUID
    mechanic: uuid.UUID
    mechanic2: uuid.UUID


@dataclass
class Cast:
    shop: Shop
    other_shop: Shop
    customer: uuid.UUID
    vehicle: uuid.UUID
    other_customer: uuid.UUID
    other_vehicle: uuid.UUID
    admin: uuid.UUID


def add_member(db: Db, shop: uuid.UUID, role: str, name: str) -> uuid.UUID:
    if role == "mechanic":
        user = make_mechanic(db, name=name)
        db.execute("update public.mechanics set organization_id = %s, account_type = 'workshop_mechanic' where id = %s",
                   (shop, user))
    else:
        user = db.make_user(user_metadata={"full_name": name})
    db.execute("insert into public.organization_members (organization_id, user_id, role) values (%s, %s, %s)",
               (shop, user, role))
    return user


def make_shop(db: Db, *, name: str = "Bay Motors", capacity: int = 2, timezone: str = "UTC",
              status: str = "verified") -> Shop:
    shop = db.scalar("insert into public.organizations (name, timezone, address_line) values (%s, %s, '1 Main St') "
                     "returning id", (name, timezone))
    db.execute("update public.organizations set status = %s, verified_at = case when %s = 'verified' then now() end "
               "where id = %s", (status, status, shop))
    db.execute("insert into public.workshop_hours (organization_id, day_of_week, open_time, close_time, break_start, "
               "break_end, capacity) select %s, d, '08:00', '18:00', '12:00', '13:00', %s from generate_series(0, 6) d",
               (shop, capacity))
    return Shop(id=shop, owner=add_member(db, shop, "owner", f"{name} Owner"),
                manager=add_member(db, shop, "manager", f"{name} Manager"),
                dispatcher=add_member(db, shop, "dispatcher", f"{name} Dispatcher"),
                mechanic=add_member(db, shop, "mechanic", f"{name} Mech One"),
                mechanic2=add_member(db, shop, "mechanic", f"{name} Mech Two"))


def make_cast(db: Db, *, capacity: int = 2) -> Cast:
    customer = make_customer(db, "Casey Customer")
    other = make_customer(db, "Olive Other")
    return Cast(shop=make_shop(db, capacity=capacity), other_shop=make_shop(db, name="Other Garage"),
                customer=customer, vehicle=make_vehicle(db, customer), other_customer=other,
                other_vehicle=make_vehicle(db, other), admin=make_admin(db))


def day(days: int = 3) -> dt.date:
    return (dt.datetime.now(UTC) + dt.timedelta(days=days)).date()


def at(d: dt.date, hhmm: str) -> dt.datetime:
    return dt.datetime.combine(d, dt.time.fromisoformat(hhmm), tzinfo=UTC)


def starts_arg(starts: list[dt.datetime | None] | None) -> str | None:
    """A timestamptz[] argument as PostgREST passes it (an array literal, not JSON)."""
    if starts is None:
        return None
    return "{" + ",".join("NULL" if s is None else f'"{s.isoformat()}"' for s in starts) + "}"


def request(db: Db, c: Cast, starts: list[dt.datetime] | None = None, *, customer: uuid.UUID | None = None,
            vehicle: uuid.UUID | None = None, shop: uuid.UUID | None = None, **kw: Any) -> uuid.UUID:
    customer = customer or c.customer
    with db.as_user(customer):
        res = db.rpc("request_workshop_appointment", p_workshop_id=shop or c.shop.id,
                     p_vehicle_id=vehicle or (c.vehicle if customer == c.customer else c.other_vehicle),
                     p_service_type=kw.pop("service", "Brake pads"),
                     p_preferred_starts=starts_arg(starts or [at(day(), "09:00")]), **kw)
    return uuid.UUID(res["appointment_id"])


def as_(db: Db, user: uuid.UUID, rpc: str, **params: Any) -> Any:
    with db.as_user(user):
        return db.rpc(rpc, **params)


def err(db: Db, user: uuid.UUID | None, rpc: str, **params: Any) -> str:
    if user is None:
        with db.as_anon():
            return db.rpc_error(rpc, **params)
    with db.as_user(user):
        return db.rpc_error(rpc, **params)


def confirmed(db: Db, c: Cast, start: dt.datetime, *, mechanic: uuid.UUID | None = None,
              customer: uuid.UUID | None = None) -> uuid.UUID:
    appt = request(db, c, [start], customer=customer)
    as_(db, c.shop.dispatcher, "confirm_appointment", p_appointment_id=appt, p_start=start, p_mechanic_id=mechanic)
    return appt


def status(db: Db, appt: uuid.UUID) -> str:
    result: str = db.scalar("select status from public.workshop_appointments where id = %s", (appt,))
    return result


def shift(db: Db, appt: uuid.UUID, delta: dt.timedelta) -> None:
    """Moves a confirmed appointment's times by `delta` (as the owner role: to be past its start)."""
    db.execute("alter table public.workshop_appointments disable trigger _100_check_status")
    db.execute("update public.workshop_appointments set starts_at = starts_at + %s, ends_at = ends_at + %s "
               "where id = %s", (delta, delta, appt))
    db.execute("alter table public.workshop_appointments enable trigger _100_check_status")


def delivered_diagnostic(db: Db, customer: uuid.UUID, mechanic: uuid.UUID, vehicle: uuid.UUID | None = None,
                         *, plan: str = "diagnostic", delivery: str = "delivered",
                         notes: str = "Front pads worn to 2 mm; replace pads and check rotors.") -> uuid.UUID:
    session = session_between(db, customer, mechanic, plan=plan, delivery=delivery)
    db.execute("update public.sessions set mechanic_notes = %s, vehicle_id = %s where id = %s", (notes, vehicle, session))
    return session


def events(db: Db, appt: uuid.UUID) -> list[tuple[str | None, str, str]]:
    return [(r["from_status"], r["to_status"], r["actor_role"]) for r in db.all(
        "select from_status, to_status, actor_role from private.appointment_events where appointment_id = %s order by id",
        (appt,))]


def emails(db: Db, appt: uuid.UUID) -> list[dict[str, Any]]:
    return db.all("select payload ->> 'template' as template, (payload ->> 'user_id')::uuid as user_id, next_attempt_at as not_before, "
                  "payload -> 'data' as data from private.outbox where kind = 'email.send' "
                  "and payload -> 'data' -> 'appointment' ->> 'id' = %s order by id", (str(appt),))


def hostile_cases(w: Any, unknown: uuid.UUID) -> list[tuple[Any, str, dict[str, Any], str]]:
    """The appointment RPCs' rows of tests/core/test_hostile.py (persona, rpc, kwargs, SQLSTATE) on
    its world (a customer, a workshop with an owner): nulls, unknown ids, over-long text."""
    big = "x" * 1_000_000
    start = "2030-01-01T10:00:00Z"
    c, owner = w.customer, w.workshop_admin
    return [
        (c, "request_workshop_appointment", {"p_workshop_id": None, "p_vehicle_id": w.vehicle, "p_service_type": "Oil",
                                             "p_preferred_starts": "{" + start + "}"}, "AD001"),
        (c, "request_workshop_appointment", {"p_workshop_id": w.organization, "p_vehicle_id": w.vehicle,
                                             "p_service_type": big, "p_preferred_starts": "{" + start + "}"}, "AD001"),
        (c, "request_workshop_appointment", {"p_workshop_id": w.organization, "p_vehicle_id": w.vehicle,
                                             "p_service_type": "Oil", "p_preferred_starts": None}, "AD001"),
        (c, "request_workshop_appointment", {"p_workshop_id": unknown, "p_vehicle_id": w.vehicle,
                                             "p_service_type": "Oil", "p_preferred_starts": "{" + start + "}"}, "AD004"),
        (None, "request_workshop_appointment", {"p_workshop_id": w.organization, "p_vehicle_id": w.vehicle,
                                                "p_service_type": "Oil", "p_preferred_starts": "{" + start + "}"},
         "AD002"),
        (owner, "confirm_appointment", {"p_appointment_id": None, "p_start": start}, "AD001"),
        (owner, "confirm_appointment", {"p_appointment_id": unknown, "p_start": start}, "AD004"),
        (owner, "assign_appointment_mechanic", {"p_appointment_id": unknown, "p_mechanic_id": w.mechanic}, "AD004"),
        (owner, "propose_appointment_time", {"p_appointment_id": unknown, "p_start": start, "p_note": big}, "AD001"),
        (owner, "decline_appointment", {"p_appointment_id": unknown, "p_reason": big}, "AD001"),
        (owner, "decline_appointment", {"p_appointment_id": unknown, "p_reason": "full"}, "AD004"),
        (c, "accept_appointment_proposal", {"p_appointment_id": None}, "AD001"),
        (c, "decline_appointment_proposal", {"p_appointment_id": unknown}, "AD004"),
        (c, "cancel_appointment", {"p_appointment_id": unknown, "p_reason": None}, "AD001"),
        (c, "cancel_appointment", {"p_appointment_id": unknown, "p_reason": "x"}, "AD004"),
        (owner, "complete_appointment", {"p_appointment_id": unknown, "p_invoice_cents": -1}, "AD001"),
        (owner, "complete_appointment", {"p_appointment_id": unknown, "p_invoice_cents": 100}, "AD004"),
        (owner, "mark_no_show", {"p_appointment_id": None}, "AD001"),
        (None, "mark_no_show", {"p_appointment_id": unknown}, "AD002"),
    ]
