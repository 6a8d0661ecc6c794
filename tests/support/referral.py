"""Referral-fee helpers: a delivered diagnosis by a virtual-only mechanic, a workshop with its
staff, and a completed appointment written directly (as the appointment RPCs would leave it),
followed by the completion hook private.referral_on_appointment_completed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from tests.support.delivery import deliver, paid_with_credit
from tests.support.factories import accept, make_customer, make_mechanic
from tests.support.harness import Db


@dataclass
class Shop:
    id: uuid.UUID
    owner: uuid.UUID
    manager: uuid.UUID
    dispatcher: uuid.UUID
    mechanic: uuid.UUID  # a workshop-affiliated mechanic of it


def make_shop(db: Db, name: str = "Bay Motors") -> Shop:
    org = db.scalar("insert into public.organizations (name) values (%s) returning id", (name,))
    staff: dict[str, uuid.UUID] = {}
    for role in ("owner", "manager", "dispatcher"):
        staff[role] = db.make_user(user_metadata={"full_name": f"{role.title()} of {name}"})
        db.execute("insert into public.organization_members (organization_id, user_id, role) values (%s, %s, %s)",
                   (org, staff[role], role))
    mechanic = join_shop(db, make_mechanic(db, name=f"Mechanic of {name}"), org)
    return Shop(org, staff["owner"], staff["manager"], staff["dispatcher"], mechanic)


def join_shop(db: Db, mechanic: uuid.UUID, org: Any, *, affiliated: bool = True) -> uuid.UUID:
    db.execute("insert into public.organization_members (organization_id, user_id, role) values (%s, %s, 'mechanic')",
               (org, mechanic))
    db.execute("update public.mechanics set organization_id = %s, account_type = %s where id = %s",
               (org, "workshop_mechanic" if affiliated else "individual_mechanic", mechanic))
    return mechanic


def diagnosis(db: Db, mechanic: uuid.UUID, customer: uuid.UUID | None = None, *,
              delivered: bool = True) -> tuple[uuid.UUID, uuid.UUID]:
    """A paid diagnostic session the mechanic took and ended: delivered (and settled) or, without
    `delivered`, ended at once with no evidence (unverified). Returns (customer, session)."""
    customer = customer or make_customer(db, "Dana Diagnosed")
    out = paid_with_credit(db, customer, "diagnostic")
    accept(db, mechanic, out["request_id"])
    if delivered:
        deliver(db, out["session_id"])
    else:
        from tests.support.delivery import start_both

        start_both(db, out["session_id"])
        with db.as_user(mechanic):
            ended = db.rpc("end_session", p_session_id=out["session_id"])
        assert ended["delivery"] == "unverified", ended
    return customer, uuid.UUID(str(out["session_id"]))


def completed_appointment(db: Db, workshop: Any, customer: Any, session: Any, referrer: Any,
                          invoice_cents: int, *, hook: bool = True) -> uuid.UUID:
    """A completed appointment at the workshop that came from `session`, naming `referrer`; then the
    completion hook (as complete_appointment calls it)."""
    # through its lifecycle (requested → confirmed → completed), as the appointment RPCs move it
    appointment = db.scalar(
        "insert into public.workshop_appointments (workshop_id, customer_id, diagnostic_session_id,"
        " referring_mechanic_id, service_type) values (%s, %s, %s, %s, 'brake repair') returning id",
        (workshop, customer, session, referrer))
    db.execute("update public.workshop_appointments set status = 'confirmed', starts_at = now() - interval '2 hours',"
               " ends_at = now() - interval '1 hour' where id = %s", (appointment,))
    db.execute("update public.workshop_appointments set status = 'completed', invoice_cents = %s, completed_at = now()"
               " where id = %s", (invoice_cents, appointment))
    if hook:
        db.execute("select private.referral_on_appointment_completed(%s)", (appointment,))
    return uuid.UUID(str(appointment))


def fees(db: Db) -> list[dict[str, Any]]:
    return db.all("select * from public.referral_fees order by accrued_at, id")


def referral_issues(db: Db) -> list[dict[str, Any]]:
    return db.all("select * from private.referral_integrity_issues")
