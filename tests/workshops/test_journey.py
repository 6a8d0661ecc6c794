"""A workshop from sign-up to a full day, through the public RPCs only: an owner creates it, an
admin verifies it, the owner sets hours with a capacity and invites a dispatcher, a customer finds
it and asks for appointments, and the dispatcher confirms them up to the capacity and no further."""

from __future__ import annotations

import datetime as dt
import json

from tests.support.appointments import at, day
from tests.support.factories import make_admin, make_customer, make_vehicle
from tests.support.harness import Db
from tests.support.tenancy import email_of, invite


def test_from_sign_up_to_a_full_day(db: Db) -> None:
    owner, admin = make_customer(db, "Olive Owner"), make_admin(db)
    with db.as_user(owner):
        shop = db.rpc("create_workshop", p_name="Lakeside Auto", p_timezone="UTC",
                      p_details={"city": "Kingston", "postal_code": "K7L 3N6", "country": "CA",
                                 "latitude": 44.23, "longitude": -76.49, "services": ["brakes"],
                                 "phone": "+1 613 555 0100", "address_line": "12 Ontario St"})["workshop_id"]

    def listed() -> list[str]:
        with db.as_anon():
            return [str(r["id"]) for r in db.all(
                "select id from public.find_workshops(p_latitude => 44.2, p_longitude => -76.5, p_limit => 100)")]

    assert shop not in listed()  # pending: not listed
    with db.as_user(admin):
        db.rpc("admin_set_workshop_status", p_workshop_id=shop, p_status="verified")
    assert shop in listed()
    with db.as_anon():
        row = db.one("select * from public.workshop_directory where id = %s", (shop,))
    assert row is not None and "555" not in json.dumps(row["services"]) and "phone" not in row

    # hours every day 08:00–18:00, two bays
    hours = [{"day_of_week": d, "open": "08:00", "close": "18:00"} for d in range(7)]
    with db.as_user(owner):
        db.rpc("set_workshop_hours", p_organization_id=shop, p_hours=hours, p_capacity=2)
    # a dispatcher joins through an invitation
    dispatcher = make_customer(db, "Dana Dispatcher")
    _, token = invite(db, owner, shop, email_of(db, dispatcher), "dispatcher")
    with db.as_user(dispatcher):
        db.rpc("accept_workshop_invitation", p_token=token)
    assert db.scalar("select role::text from public.organization_members where organization_id = %s "
                     "and user_id = %s", (shop, dispatcher)) == "dispatcher"

    # three customers ask for the same hour; two bays: the third confirmation is refused
    start = at(day(), "09:00")
    appointments = []
    for i in range(3):
        customer = make_customer(db, f"Customer {i}")
        vehicle = make_vehicle(db, customer)
        with db.as_user(customer):
            appointments.append(db.rpc(
                "request_workshop_appointment", p_workshop_id=shop, p_vehicle_id=vehicle, p_service_type="brakes",
                p_preferred_starts="{" + start.isoformat() + "}")["appointment_id"])
    with db.as_user(dispatcher):
        for appointment in appointments[:2]:
            assert db.rpc("confirm_appointment", p_appointment_id=appointment, p_start=start)["status"] == "confirmed"
        assert db.rpc_error("confirm_appointment", p_appointment_id=appointments[2], p_start=start) == "AD172"
        # an hour later there is room
        later = start + dt.timedelta(hours=1)
        assert db.rpc("confirm_appointment", p_appointment_id=appointments[2], p_start=later)["status"] == "confirmed"
    assert db.scalar("select count(*) from public.workshop_appointments where workshop_id = %s "
                     "and status = 'confirmed'", (shop,)) == 3
