"""Who may do what with an appointment, per persona (owner, manager, dispatcher, the workshop's
mechanic, another workshop's staff, the customer, another customer, anon, admin), who reads it
(RLS), who receives the board `workshop:<id>`, and hostile input on every RPC: the stable error
code and nothing written."""

from __future__ import annotations

import uuid

import pytest

from tests.support.appointments import as_, at, confirmed, day, err, make_cast, request, starts_arg

INVALID_INPUT, NOT_FOUND, NOT_ALLOWED = "AD001", "AD004", "AD003"
NO_EXECUTE = "42501"  # anon may not execute any appointment RPC


@pytest.fixture
def c(db):
    return make_cast(db)


def _persona(c, name):
    return {
        "owner": c.shop.owner, "manager": c.shop.manager, "dispatcher": c.shop.dispatcher,
        "mechanic": c.shop.mechanic, "other_staff": c.other_shop.owner, "other_dispatcher": c.other_shop.dispatcher,
        "customer": c.customer, "other_customer": c.other_customer, "anon": None, "admin": c.admin,
    }[name]


PERSONAS = ["owner", "manager", "dispatcher", "mechanic", "other_staff", "other_dispatcher", "customer",
            "other_customer", "anon", "admin"]
STAFF = {"owner", "manager", "dispatcher", "admin"}
# what a persona that may not act gets: not_found when it cannot see the appointment at all
HIDDEN = {"mechanic": NOT_FOUND, "other_staff": NOT_FOUND, "other_dispatcher": NOT_FOUND,
          "other_customer": NOT_FOUND, "anon": NO_EXECUTE}


@pytest.mark.parametrize("who", PERSONAS)
def test_workshop_answers_per_persona(db, c, who):
    d = day()
    user = _persona(c, who)
    for rpc, kw in (("confirm_appointment", {"p_start": at(d, "10:00")}),
                    ("propose_appointment_time", {"p_start": at(d, "10:00")}),
                    ("decline_appointment", {"p_reason": "full"})):
        appt = request(db, c, [at(d, "09:00")])
        before = db.one("select * from public.workshop_appointments where id = %s", (appt,))
        if who in STAFF:
            assert as_(db, user, rpc, p_appointment_id=appt, **kw)["appointment_id"] == str(appt)
            assert db.scalar("select status from public.workshop_appointments where id = %s", (appt,)) != "requested"
            as_(db, c.customer, "cancel_appointment", p_appointment_id=appt, p_reason="tidy") \
                if rpc != "decline_appointment" else None
        else:
            expected = NOT_ALLOWED if who == "customer" else HIDDEN[who]
            assert err(db, user, rpc, p_appointment_id=appt, **kw) == expected
            # the appointment exists and is unchanged
            assert db.one("select * from public.workshop_appointments where id = %s", (appt,)) == before
            as_(db, c.customer, "cancel_appointment", p_appointment_id=appt, p_reason="tidy")


@pytest.mark.parametrize("who", PERSONAS)
def test_completion_and_no_show_per_persona(db, c, who):
    import datetime as dt

    from tests.support.appointments import shift
    appt = confirmed(db, c, at(day(), "09:00"))
    shift(db, appt, -dt.timedelta(days=4))
    user = _persona(c, who)
    if who in STAFF:
        assert as_(db, user, "complete_appointment", p_appointment_id=appt, p_invoice_cents=100)["status"] == "completed"
        return
    expected = NOT_ALLOWED if who == "customer" else HIDDEN[who]
    assert err(db, user, "complete_appointment", p_appointment_id=appt, p_invoice_cents=100) == expected
    assert err(db, user, "mark_no_show", p_appointment_id=appt) == expected
    assert err(db, user, "assign_appointment_mechanic", p_appointment_id=appt, p_mechanic_id=c.shop.mechanic) == expected
    assert db.scalar("select status from public.workshop_appointments where id = %s", (appt,)) == "confirmed"


def test_the_assigned_mechanic_sees_its_appointment_but_may_not_answer(db, c):
    appt = confirmed(db, c, at(day(), "09:00"), mechanic=c.shop.mechanic)
    with db.as_user(c.shop.mechanic):
        assert db.scalar("select count(*) from public.workshop_appointments where id = %s", (appt,)) == 1
    assert err(db, c.shop.mechanic, "cancel_appointment", p_appointment_id=appt, p_reason="x") == NOT_ALLOWED
    assert err(db, c.shop.mechanic, "mark_no_show", p_appointment_id=appt) == NOT_ALLOWED


@pytest.mark.parametrize("who", PERSONAS)
def test_customer_answers_per_persona(db, c, who):
    d = day()
    user = _persona(c, who)
    for rpc in ("accept_appointment_proposal", "decline_appointment_proposal"):
        appt = request(db, c, [at(d, "09:00")])
        as_(db, c.shop.owner, "propose_appointment_time", p_appointment_id=appt, p_start=at(d, "10:00"))
        if who == "customer":
            assert as_(db, user, rpc, p_appointment_id=appt)["status"] in ("confirmed", "requested")
        else:
            expected = NOT_ALLOWED if who in STAFF else HIDDEN[who]
            assert err(db, user, rpc, p_appointment_id=appt) == expected
            assert db.scalar("select status from public.workshop_appointments where id = %s", (appt,)) == "proposed"
        as_(db, c.shop.owner, "cancel_appointment", p_appointment_id=appt, p_reason="tidy")


@pytest.mark.parametrize("who", PERSONAS)
def test_cancel_per_persona(db, c, who):
    appt = request(db, c)
    user = _persona(c, who)
    if who in STAFF or who == "customer":
        assert as_(db, user, "cancel_appointment", p_appointment_id=appt, p_reason="x")["status"] == "cancelled"
        assert db.scalar("select cancelled_by from public.workshop_appointments where id = %s", (appt,)) == \
            ("customer" if who == "customer" else "workshop")
    else:
        assert err(db, user, "cancel_appointment", p_appointment_id=appt, p_reason="x") == HIDDEN[who]
        assert db.scalar("select status from public.workshop_appointments where id = %s", (appt,)) == "requested"


def test_request_by_anon(db, c):
    with db.as_anon():
        assert db.rpc_error("request_workshop_appointment", p_workshop_id=c.shop.id, p_vehicle_id=c.vehicle,
                            p_service_type="Oil", p_preferred_starts=starts_arg([at(day(), "09:00")])) == NO_EXECUTE
    assert db.scalar("select count(*) from public.workshop_appointments") == 0


@pytest.mark.parametrize("who", PERSONAS)
def test_who_reads_an_appointment(db, c, who):
    appt = confirmed(db, c, at(day(), "09:00"), mechanic=c.shop.mechanic)
    user = _persona(c, who)
    sees = who in STAFF or who in ("customer", "mechanic")
    if user is None:
        with db.as_anon():
            assert db.error("select count(*) from public.workshop_appointments").sqlstate == "42501"
        return
    with db.as_user(user):
        assert db.scalar("select count(*) from public.workshop_appointments where id = %s", (appt,)) == int(sees)
    assert db.scalar("select count(*) from public.workshop_appointments where id = %s", (appt,)) == 1


@pytest.mark.parametrize("who", PERSONAS)
def test_who_receives_the_workshop_board(db, c, who):
    user = _persona(c, who)
    topic = f"workshop:{c.shop.id}"
    assert db.can_receive(user, topic) == (who in STAFF)
    assert not db.can_send(user, topic)
    assert not db.can_receive(user, topic, "presence")


def test_a_malformed_board_topic_is_refused(db, c):
    for topic in ("workshop:", "workshop:not-a-uuid", f"workshop:{uuid.uuid4()}", f"workshops:{c.shop.id}"):
        assert not db.can_receive(c.shop.owner, topic)


# ------------------------------------------------------------------------------------------------
# hostile input
# ------------------------------------------------------------------------------------------------
def _nothing_written(db, before):
    assert db.scalar("select count(*) from public.workshop_appointments") == before[0]
    assert db.scalar("select count(*) from private.appointment_events") == before[1]


def test_hostile_requests(db, c):
    d = day()
    ok = {"p_workshop_id": c.shop.id, "p_vehicle_id": c.vehicle, "p_service_type": "Oil",
          "p_preferred_starts": starts_arg([at(d, "09:00")])}
    cases = [
        ({"p_workshop_id": None}, INVALID_INPUT),
        ({"p_service_type": None}, INVALID_INPUT),
        ({"p_service_type": "   "}, INVALID_INPUT),
        ({"p_service_type": "x" * 81}, INVALID_INPUT),
        ({"p_preferred_starts": None}, INVALID_INPUT),
        ({"p_preferred_starts": "{}"}, INVALID_INPUT),
        ({"p_preferred_starts": starts_arg([at(d, "09:00"), None])}, INVALID_INPUT),
        ({"p_preferred_starts": starts_arg([at(d, "09:00"), at(d, "09:00")])}, INVALID_INPUT),
        ({"p_preferred_starts": starts_arg([at(d, h) for h in ("09:00", "10:00", "11:00", "14:00")])}, INVALID_INPUT),
        ({"p_preferred_starts": "{infinity}"}, INVALID_INPUT),
        ({"p_preferred_starts": "{{\"2030-01-01 09:00Z\"},{\"2030-01-02 09:00Z\"}}"}, INVALID_INPUT),
        ({"p_notes": "n" * 2001}, INVALID_INPUT),
        ({"p_workshop_id": uuid.uuid4()}, NOT_FOUND),
        ({"p_vehicle_id": uuid.uuid4()}, NOT_FOUND),
        ({"p_vehicle_id": None}, INVALID_INPUT),
        ({"p_vehicle_id": c.other_vehicle}, NOT_FOUND),
        ({"p_diagnostic_session_id": uuid.uuid4()}, NOT_FOUND),
    ]
    before = (db.scalar("select count(*) from public.workshop_appointments"),
              db.scalar("select count(*) from private.appointment_events"))
    for change, code in cases:
        assert err(db, c.customer, "request_workshop_appointment", **{**ok, **change}) == code, change
    _nothing_written(db, before)
    # a wrong type of id is refused by the database before any code runs
    with db.as_user(c.customer):
        assert db.rpc_error("request_workshop_appointment", **{**ok, "p_workshop_id": "not-a-uuid"}) == "22P02"


def test_hostile_answers(db, c):
    d = day()
    appt = request(db, c, [at(d, "09:00")])
    before = (db.scalar("select count(*) from public.workshop_appointments"),
              db.scalar("select count(*) from private.appointment_events"))
    owner = c.shop.owner
    cases = [
        ("confirm_appointment", {"p_appointment_id": None, "p_start": at(d, "09:00")}, INVALID_INPUT),
        ("confirm_appointment", {"p_appointment_id": uuid.uuid4(), "p_start": at(d, "09:00")}, NOT_FOUND),
        ("confirm_appointment", {"p_appointment_id": appt, "p_start": None}, INVALID_INPUT),
        ("confirm_appointment", {"p_appointment_id": appt, "p_start": "infinity"}, INVALID_INPUT),
        ("confirm_appointment", {"p_appointment_id": appt, "p_start": at(d, "03:00")}, "AD171"),
        ("confirm_appointment", {"p_appointment_id": appt, "p_start": at(d, "09:00"), "p_mechanic_id": uuid.uuid4()},
         "AD175"),
        ("propose_appointment_time", {"p_appointment_id": appt, "p_start": at(d, "12:30")}, "AD171"),
        ("propose_appointment_time", {"p_appointment_id": appt, "p_start": at(d, "10:00"), "p_note": "n" * 501},
         INVALID_INPUT),
        ("decline_appointment", {"p_appointment_id": appt, "p_reason": None}, INVALID_INPUT),
        ("decline_appointment", {"p_appointment_id": appt, "p_reason": "r" * 501}, INVALID_INPUT),
        ("cancel_appointment", {"p_appointment_id": appt, "p_reason": ""}, INVALID_INPUT),
        ("cancel_appointment", {"p_appointment_id": uuid.uuid4(), "p_reason": "x"}, NOT_FOUND),
        ("accept_appointment_proposal", {"p_appointment_id": None}, INVALID_INPUT),
        ("decline_appointment_proposal", {"p_appointment_id": uuid.uuid4()}, NOT_FOUND),
        ("mark_no_show", {"p_appointment_id": None}, INVALID_INPUT),
        ("complete_appointment", {"p_appointment_id": appt, "p_invoice_cents": None}, INVALID_INPUT),
    ]
    for rpc, kw, code in cases:
        assert err(db, owner, rpc, **kw) == code, (rpc, kw)
    _nothing_written(db, before)
    assert db.scalar("select status from public.workshop_appointments where id = %s", (appt,)) == "requested"


def test_another_workshops_staff_cannot_use_their_own_mechanic_or_reach_this_appointment(db, c):
    appt = request(db, c)
    assert err(db, c.other_shop.owner, "confirm_appointment", p_appointment_id=appt, p_start=at(day(), "09:00"),
               p_mechanic_id=c.other_shop.mechanic) == NOT_FOUND
    assert db.scalar("select count(*) from public.mechanic_commitments where mechanic_id = %s",
                     (c.other_shop.mechanic,)) == 0


def test_every_rpc_has_a_rate_class(db):
    names = ["request_workshop_appointment", "confirm_appointment", "assign_appointment_mechanic",
             "propose_appointment_time", "accept_appointment_proposal", "decline_appointment_proposal",
             "decline_appointment", "cancel_appointment", "complete_appointment", "mark_no_show"]
    rows = {r["function_name"] for r in db.all("select function_name from private.rpc_rate_classes "
                                               "where function_name = any(%s)", (names,))}
    assert rows == set(names)
