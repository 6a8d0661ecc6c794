"""The whole referral path through the public RPCs: a virtual-only mechanic's delivered diagnosis,
the customer's appointment request from it, the workshop's confirmation and completion, and the fee
that accrues to the mechanic (docs/workshops.md, "Referral fee")."""

from __future__ import annotations

import datetime as dt

from tests.support.appointments import as_, at, day, make_cast, request, shift
from tests.support.factories import make_mechanic
from tests.support.harness import Db
from tests.support.referral import diagnosis, fees


def test_an_appointment_from_a_virtual_mechanics_diagnosis_earns_it_the_fee(db: Db) -> None:
    c = make_cast(db)
    virtual = make_mechanic(db, name="Vera Virtual")
    assert db.scalar("select mechanic_type from public.mechanics where id = %s", (virtual,)) == "virtual_only"
    customer, session = diagnosis(db, virtual, c.customer)
    start = at(day(), "09:00")
    appt = request(db, c, [start], customer=customer, p_diagnostic_session_id=session)
    assert db.scalar("select referring_mechanic_id from public.workshop_appointments where id = %s", (appt,)) == virtual
    as_(db, c.shop.dispatcher, "confirm_appointment", p_appointment_id=appt, p_start=start,
        p_mechanic_id=c.shop.mechanic)
    assert fees(db) == []  # nothing before the job is done
    shift(db, appt, -dt.timedelta(days=4))
    as_(db, c.shop.owner, "complete_appointment", p_appointment_id=appt, p_invoice_cents=42_000)
    [fee] = fees(db)
    assert (fee["mechanic_id"], fee["workshop_id"], fee["amount_cents"], fee["status"]) == (virtual, c.shop.id, 840, "accrued")  # 2% of $420.00


def test_an_appointment_from_a_workshop_mechanics_own_diagnosis_earns_nothing(db: Db) -> None:
    c = make_cast(db)
    # the diagnosis was by one of this workshop's own mechanics: not a referral
    customer, session = diagnosis(db, c.shop.mechanic, c.customer)
    start = at(day(), "10:00")
    appt = request(db, c, [start], customer=customer, p_diagnostic_session_id=session)
    as_(db, c.shop.dispatcher, "confirm_appointment", p_appointment_id=appt, p_start=start)
    shift(db, appt, -dt.timedelta(days=4))
    as_(db, c.shop.owner, "complete_appointment", p_appointment_id=appt, p_invoice_cents=42_000)
    assert fees(db) == []
