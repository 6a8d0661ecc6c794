"""Contact details on a need-to-know basis: a mechanic reads its customer's contact details (the
intake's contact and vehicle identifiers, the profile's phone) only while their session is live, or
for a booked session inside [start − contact.before_start, end + contact.after_end]; a customer
never reads a mechanic's profile. Every "cannot" first proves the row exists (as the superuser)."""

from __future__ import annotations

import uuid
from contextlib import AbstractContextManager
from typing import Any

import psycopg
import pytest

from tests.support.contact import finish, go_live
from tests.support.factories import (
    accept,
    make_customer,
    make_intake,
    make_mechanic,
    make_vehicle,
    make_world,
    request_free,
)
from tests.support.harness import Db
from tests.support.scheduling import at, book, every_day, future_day, scheduled_mechanic

DENIED = "42501"
VIN, PLATE, PHONE = "1HGCM82633A004352", "ABC 123", "+1 555 0142"
INTAKE_Q = "select contact_email, contact_phone, contact_name, vin, plate, city from public.intakes where id = %s"
PROFILE_Q = "select phone, full_name, postal_code from public.profiles where id = %s"
VEHICLE_Q = "select vin, plate from public.vehicles where id = %s"
FULL_CONTACT = {"intake": {"contact_email": "casey@example.test", "contact_phone": "+1 555 0100",
                           "contact_name": "Casey Customer", "vin": VIN, "plate": PLATE, "city": "Toronto"},
                "profile": {"phone": PHONE, "full_name": "Casey Customer", "postal_code": "M5V 2T6"}}


def identifying_customer(db: Db, w: Any) -> uuid.UUID:
    """The world's customer with a phone and postal code, its vehicle with VIN and plate, and the
    intake of its (free) request carrying all of it; returns the intake."""
    db.execute("update public.profiles set phone = %s, postal_code = 'M5V 2T6' where id = %s", (PHONE, w.customer))
    db.execute("update public.vehicles set vin = %s, plate = %s where id = %s", (VIN, PLATE, w.vehicle))
    db.execute("update public.intakes set vin = %s, plate = %s, city = 'Toronto' where id = %s", (VIN, PLATE, w.intake))
    return w.intake


def persona(db: Db, w: Any, name: str) -> AbstractContextManager[Db]:
    if name == "anon":
        return db.as_anon()
    if name == "service":
        return db.as_service()
    return db.as_user(getattr(w, name))


def seen(db: Db, w: Any, name: str, intake: uuid.UUID) -> dict[str, Any]:
    """What `name` reads of the customer's contact details: the row, None (hidden by RLS) or DENIED."""
    out: dict[str, Any] = {}
    for key, query, arg in (("intake", INTAKE_Q, intake), ("profile", PROFILE_Q, w.customer),
                            ("vehicle", VEHICLE_Q, w.vehicle)):
        with persona(db, w, name):
            try:
                out[key] = db.one(query, (arg,))
            except psycopg.errors.InsufficientPrivilege:
                out[key] = DENIED
    return out


def assert_rows_exist(db: Db, w: Any, intake: uuid.UUID) -> None:
    assert db.persona == "postgres"
    assert db.one(INTAKE_Q, (intake,)) == FULL_CONTACT["intake"]
    assert db.one(PROFILE_Q, (w.customer,)) == FULL_CONTACT["profile"]
    assert db.one(VEHICLE_Q, (w.vehicle,)) == {"vin": VIN, "plate": PLATE}


NOBODY = {"intake": None, "profile": None, "vehicle": None}
OWNER = {**FULL_CONTACT, "vehicle": {"vin": VIN, "plate": PLATE}}
IN_WINDOW = {**FULL_CONTACT, "vehicle": None}  # the intake carries the vehicle's identifiers; vehicles stay the owner's


def expected(mechanic_sees: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        "anon": {"intake": DENIED, "profile": DENIED, "vehicle": DENIED},
        "customer": OWNER, "other_customer": NOBODY,
        "mechanic": mechanic_sees, "other_mechanic": NOBODY, "pending_mechanic": NOBODY,
        "workshop_admin": NOBODY,  # its mechanic's session: the workshop does not read the customer's contact
        "admin": OWNER, "service": OWNER,
    }


PERSONAS = list(expected(NOBODY))


def test_on_demand_session_contact_per_persona_only_while_live(db):
    w = make_world(db)
    intake = identifying_customer(db, w)
    ids = {"request_id": w.request, "session_id": w.session}
    assert_rows_exist(db, w, intake)

    def everyone() -> dict[str, Any]:
        return {name: seen(db, w, name, intake) for name in PERSONAS}

    assert everyone() == expected(NOBODY)  # pending: nobody holds it
    accept(db, w.mechanic, ids["request_id"])
    assert everyone() == expected(NOBODY)  # waiting: accepted, not started
    go_live(db, ids["session_id"])
    assert everyone() == expected(IN_WINDOW)  # live
    finish(db, ids["session_id"])
    assert everyone() == expected(NOBODY)  # completed: an on-demand session's window closed with it
    assert_rows_exist(db, w, intake)


@pytest.fixture
def booked(db):
    """A booked (scheduled) session with a scheduling mechanic; its customer (a new one, without an
    earlier session) plays "customer"."""
    w = make_world(db)
    w.customer = make_customer(db, "Casey Customer")
    w.vehicle = make_vehicle(db, w.customer)
    w.intake = make_intake(db, w.customer, w.vehicle)
    intake = identifying_customer(db, w)
    mechanic = scheduled_mechanic(db, "UTC", every_day("00:00", "24:00"), rules={"slot_step_minutes": 5})
    result = book(db, w.customer, mechanic, at(future_day(5), "09:00"), intake=intake)
    session = uuid.UUID(result["session_id"])
    assert db.scalar("select status from public.sessions where id = %s", (session,)) == "scheduled"
    return w, intake, mechanic, session


def _move(db: Db, session: uuid.UUID, starts_in: str) -> None:
    db.execute("update public.sessions set scheduled_for = now() + %s::interval where id = %s", (starts_in, session))


def test_booked_session_read_before_the_window_shows_nothing(db, booked):
    w, intake, mechanic, session = booked
    w.mechanic = mechanic  # the booked session's mechanic plays "mechanic"
    assert_rows_exist(db, w, intake)
    # five days ahead, then 16 minutes ahead: before contact.before_start (15 minutes)
    for starts_in in (None, "16 minutes"):
        if starts_in:
            _move(db, session, starts_in)
        assert {name: seen(db, w, name, intake) for name in PERSONAS} == expected(NOBODY)
        with db.as_user(mechanic):
            assert db.scalar("select private.mechanic_may_contact(%s)", (session,)) is False
            # what it needs to prepare stays readable (a booked session has no request row)
            brief = db.rpc("get_session_brief", p_session_id=session)
            assert {k: brief[k] for k in ("concern", "vehicle_make", "vehicle_model", "vehicle_year",
                                          "contact_open")} == {
                "concern": "Grinding noise from the front brakes when stopping", "vehicle_make": "Honda",
                "vehicle_model": "Civic", "vehicle_year": 2018, "contact_open": False}
            assert not set(brief) & {"contact_email", "contact_phone", "contact_name", "vin", "plate", "city"}
            assert VIN not in str(brief) and PLATE not in str(brief) and "casey@" not in str(brief)
    _move(db, session, "14 minutes")
    assert {name: seen(db, w, name, intake) for name in PERSONAS} == expected(IN_WINDOW)
    with db.as_user(mechanic):
        assert db.scalar("select private.mechanic_may_contact(%s)", (session,)) is True
    with db.as_user(w.other_mechanic):  # someone else's session, whatever its window
        assert db.scalar("select private.mechanic_may_contact(%s)", (session,)) is False


def test_booked_session_window_closes_after_end(db, booked):
    w, intake, mechanic, session = booked
    # no-show: still `scheduled`, planned end (start + planned minutes) 23 h ago, then 25 h ago
    minutes = db.scalar("select planned_minutes from public.sessions where id = %s", (session,))
    _move(db, session, f"-{minutes} minutes -23 hours")
    with db.as_user(mechanic):
        assert db.one(INTAKE_Q, (intake,)) == FULL_CONTACT["intake"]
    _move(db, session, f"-{minutes} minutes -25 hours")
    with db.as_user(mechanic):
        assert db.all(INTAKE_Q, (intake,)) == []
        assert db.all(PROFILE_Q, (w.customer,)) == []
    # completed: the real end counts; 24 h after it the details are gone
    db.execute("update public.sessions set scheduled_for = now() - interval '2 hours', status = 'waiting' "
               "where id = %s", (session,))
    db.execute("update public.sessions set started_at = now() - interval '2 hours', status = 'live' where id = %s",
               (session,))
    db.execute("select private.complete_session(%s, null, null, now() - interval '1 hour')", (session,))
    with db.as_user(mechanic):
        assert db.one(PROFILE_Q, (w.customer,)) == FULL_CONTACT["profile"]
    db.execute("update public.sessions set ended_at = now() - interval '24 hours 1 minute', "
               "started_at = now() - interval '25 hours' where id = %s", (session,))
    with db.as_user(mechanic):
        assert db.all(PROFILE_Q, (w.customer,)) == []
    # a cancelled booking opens no window, even at its start
    assert_rows_exist(db, w, intake)


def test_cancelled_booking_opens_no_window(db, booked):
    w, intake, mechanic, session = booked
    with db.as_user(w.customer):
        db.rpc("cancel_scheduled_session", p_session_id=session)
    _move(db, session, "0 minutes")
    with db.as_user(mechanic):
        assert db.all(INTAKE_Q, (intake,)) == []
        assert db.all(PROFILE_Q, (w.customer,)) == []
    assert_rows_exist(db, w, intake)


def test_customers_never_read_a_mechanics_profile(db, booked):
    w, intake, mechanic, session = booked
    db.execute("update public.profiles set phone = '+1 555 0199', postal_code = 'H2X 1Y4' where id = %s", (mechanic,))
    db.execute("update public.mechanics set postal_code = 'H2X 1Y4' where id = %s", (mechanic,))
    _move(db, session, "5 minutes")  # inside the window: the mechanic reads the customer, not the reverse
    with db.as_user(mechanic):
        assert db.one(INTAKE_Q, (intake,)) == FULL_CONTACT["intake"]
    live = request_free(db, w.other_customer)
    accept(db, w.other_mechanic, live["request_id"])
    go_live(db, live["session_id"])
    # as the superuser the mechanics' profiles and postal codes exist
    assert db.scalar("select count(*) from public.profiles where id in (%s, %s) and phone is not null",
                     (mechanic, w.other_mechanic)) >= 1
    assert db.scalar("select postal_code from public.mechanics where id = %s", (mechanic,)) == "H2X 1Y4"
    for customer, counterpart in ((w.customer, mechanic), (w.other_customer, w.other_mechanic)):
        with db.as_user(customer):
            assert db.all("select id from public.profiles where id <> %s", (customer,)) == []
            assert db.all(PROFILE_Q, (counterpart,)) == []
            assert db.error("select postal_code from public.mechanics where id = %s", (counterpart,)).sqlstate == DENIED
            assert db.error("select * from public.mechanics").sqlstate == DENIED
            # the mechanic as the directory shows it
            assert db.scalar("select display_name from public.mechanics where id = %s", (counterpart,))


def test_second_mechanic_account_harvests_nothing(db):
    """A second approved account of the same person, accepting and reading: nothing either way."""
    w = make_world(db)
    intake = identifying_customer(db, w)
    ids = {"request_id": w.request, "session_id": w.session}
    second = make_mechanic(db, name="Morgan Again")
    for mechanic in (w.other_mechanic, second):
        accept(db, mechanic, ids["request_id"])
        with db.as_user(mechanic):
            assert db.all(INTAKE_Q, (intake,)) == []
            assert db.all(PROFILE_Q, (w.customer,)) == []
            assert db.all(VEHICLE_Q, (w.vehicle,)) == []
            db.rpc("cancel_request", p_request_id=ids["request_id"])
            assert db.rpc_error("accept_request", p_request_id=ids["request_id"]) == "AD121"
    assert_rows_exist(db, w, intake)
    # a third (honest) mechanic takes it and starts: only it reads the contact, only now
    third = make_mechanic(db, name="Honest Harper")
    accept(db, third, ids["request_id"])
    go_live(db, ids["session_id"])
    with db.as_user(third):
        assert db.one(INTAKE_Q, (intake,)) == FULL_CONTACT["intake"]
    for mechanic in (w.other_mechanic, second):
        with db.as_user(mechanic):
            assert db.all(INTAKE_Q, (intake,)) == []


def test_contact_helpers_answer_only_about_the_caller(db):
    w = make_world(db)
    accept(db, w.mechanic, w.request)
    go_live(db, w.session)
    with db.as_user(w.mechanic):
        assert db.scalar("select private.mechanic_may_contact(%s)", (w.session,)) is True
        assert db.scalar("select private.mechanic_may_contact(null)") is False
        assert db.scalar("select private.mechanic_may_contact(%s)", (uuid.uuid4(),)) is False
    for user in (w.customer, w.other_mechanic, w.workshop_admin):
        with db.as_user(user):
            assert db.scalar("select private.mechanic_may_contact(%s)", (w.session,)) is False
            assert db.all("select * from private.my_contact_customer_ids()") == []
    with db.as_anon():
        assert db.error("select private.mechanic_may_contact(%s)", (w.session,)).sqlstate == DENIED


def test_the_policy_helper_and_the_single_session_rule_agree(db, booked):
    """private.my_contact_sessions (the policies') and private.contact_window_open (one session)
    state one rule twice: across statuses and times they answer the same."""
    _, intake, mechanic, session = booked
    minutes = db.scalar("select planned_minutes from public.sessions where id = %s", (session,))
    cases = [("scheduled", starts_in, None) for starts_in in
             ("16 minutes", "15 minutes", "14 minutes", "0 minutes", f"-{minutes} minutes -24 hours",
              f"-{minutes} minutes -24 hours -1 second", "-3 days")]
    cases += [("completed", "-2 hours", ended) for ended in ("-1 hour", "-24 hours", "-24 hours -1 second")]
    cases += [("cancelled", "0 minutes", None), ("live", "-30 days", None)]
    answers = set()
    for status, starts_in, ended in cases:
        db.execute("alter table public.sessions disable trigger user")  # set any state directly
        db.execute("update public.sessions set status = %s, scheduled_for = now() + %s::interval, "
                   "ended_at = now() + %s::interval where id = %s", (status, starts_in, ended, session))
        db.execute("alter table public.sessions enable trigger user")
        single = db.scalar("select private.contact_window_open(s, now()) from public.sessions s where s.id = %s",
                           (session,))
        with db.as_user(mechanic):
            listed = db.scalar("select count(*) from private.my_contact_sessions() where session_id = %s",
                               (session,)) == 1
            readable = db.scalar("select count(*) from public.intakes where id = %s", (intake,)) == 1
        assert single == listed == readable, (status, starts_in, ended)
        answers.add(single)
    assert answers == {True, False}
