"""Capacity of a workshop (at no instant more confirmed appointments than that weekday's
capacity, under any interleaving of confirmations: parallel confirms from many connections with a
barrier) and the assigned mechanic's committed time (the same exclusion constraint as online
bookings, both ways)."""

from __future__ import annotations

import datetime as dt
import random

import psycopg
import pytest

from tests.support.appointments import as_, at, confirmed, day, err, make_cast, request, shift, status
from tests.support.factories import make_customer, make_vehicle
from tests.support.harness import Db
from tests.support.personas import race
from tests.support.scheduling import active_overlaps

FULL, SLOT_TAKEN = "AD172", "AD050"


@pytest.fixture
def c(db):
    return make_cast(db, capacity=2)


def test_capacity_counts_overlaps_at_every_instant(db, c):
    d = day()
    other = make_customer(db, "Third Customer")
    confirmed(db, c, at(d, "09:00"))  # 09:00–10:00
    as_(db, c.shop.owner, "confirm_appointment", p_appointment_id=request(db, c, [at(d, "09:30")]),
        p_start=at(d, "09:30"))  # 09:30–10:30
    # 10:00–11:00 meets only the second one (the first ends at 10:00): fits
    as_(db, c.shop.owner, "confirm_appointment", p_appointment_id=request(db, c, [at(d, "10:00")]),
        p_start=at(d, "10:00"))
    # 09:15–10:15 would make three at 09:30
    appt = request(db, c, [at(d, "09:15")], customer=c.other_customer)
    assert err(db, c.shop.owner, "confirm_appointment", p_appointment_id=appt, p_start=at(d, "09:15")) == FULL
    assert status(db, appt) == "requested"
    # a proposal is not capacity: accepting it re-checks
    as_(db, c.shop.owner, "propose_appointment_time", p_appointment_id=appt, p_start=at(d, "10:15"))
    assert err(db, c.other_customer, "accept_appointment_proposal", p_appointment_id=appt) == FULL
    assert status(db, appt) == "proposed"
    # another day, its own capacity
    dow = ((d + dt.timedelta(days=1)).isoweekday() % 7)
    db.execute("update public.workshop_hours set capacity = 1 where organization_id = %s and day_of_week = %s",
               (c.shop.id, dow))
    d1 = d + dt.timedelta(days=1)
    as_(db, c.shop.owner, "confirm_appointment",
        p_appointment_id=request(db, c, [at(d1, "09:00")], customer=other, vehicle=make_vehicle(db, other)),
        p_start=at(d1, "09:00"))
    third = request(db, c, [at(d1, "09:30")], customer=c.other_customer)
    assert err(db, c.shop.owner, "confirm_appointment", p_appointment_id=third, p_start=at(d1, "09:30")) == FULL


def test_cancelled_and_finished_appointments_free_capacity(db, c):
    d = day()
    a1 = confirmed(db, c, at(d, "09:00"))
    confirmed(db, c, at(d, "09:00"), customer=c.other_customer)
    third = request(db, c, [at(d, "09:00")], customer=c.other_customer)
    assert err(db, c.shop.owner, "confirm_appointment", p_appointment_id=third, p_start=at(d, "09:00")) == FULL
    as_(db, c.customer, "cancel_appointment", p_appointment_id=a1, p_reason="other plans")
    as_(db, c.shop.owner, "confirm_appointment", p_appointment_id=third, p_start=at(d, "09:00"))
    assert status(db, third) == "confirmed"


# ------------------------------------------------------------------------------------------------
# the mechanic's committed time
# ------------------------------------------------------------------------------------------------
def _bookable(db, mechanic):
    with db.as_user(mechanic):
        db.rpc("set_booking_rules", p_rules={"buffer_minutes": 0, "min_notice_minutes": 0, "max_advance_days": 365,
                                             "slot_step_minutes": 30})


def test_an_online_hold_over_an_appointment_is_refused(db, c):
    mech = c.shop.mechanic
    _bookable(db, mech)
    d = day()
    confirmed(db, c, at(d, "09:00"), mechanic=mech)
    buyer = make_customer(db, "Online Buyer")
    with db.as_user(buyer):
        assert db.rpc_error("hold_slot", p_mechanic_id=mech, p_start=at(d, "09:30"), p_plan_code="chat10") == SLOT_TAKEN
        # the mechanic's other time is still bookable online
        assert db.rpc("hold_slot", p_mechanic_id=mech, p_start=at(d, "10:00"), p_plan_code="chat10")["hold_id"]
    assert active_overlaps(db) == 0


def test_confirming_over_the_mechanics_booked_time_is_refused(db, c):
    mech = c.shop.mechanic
    _bookable(db, mech)
    d = day()
    buyer = make_customer(db, "Online Buyer")
    with db.as_user(buyer):
        db.rpc("hold_slot", p_mechanic_id=mech, p_start=at(d, "14:30"), p_plan_code="chat10")
    appt = request(db, c, [at(d, "14:00")])
    assert err(db, c.shop.owner, "confirm_appointment", p_appointment_id=appt, p_start=at(d, "14:00"),
               p_mechanic_id=mech) == SLOT_TAKEN
    assert status(db, appt) == "requested"
    # another mechanic, or none, is fine
    as_(db, c.shop.owner, "confirm_appointment", p_appointment_id=appt, p_start=at(d, "14:00"),
        p_mechanic_id=c.shop.mechanic2)
    # and assigning the busy mechanic afterwards is refused too
    assert err(db, c.shop.owner, "assign_appointment_mechanic", p_appointment_id=appt, p_mechanic_id=mech) == SLOT_TAKEN
    assert db.scalar("select mechanic_id from public.workshop_appointments where id = %s", (appt,)) == c.shop.mechanic2
    assert active_overlaps(db) == 0


def test_one_mechanic_cannot_take_two_appointments_at_once_and_time_off_counts(db, c):
    d = day()
    confirmed(db, c, at(d, "09:00"), mechanic=c.shop.mechanic)
    appt = request(db, c, [at(d, "09:30")], customer=c.other_customer)
    assert err(db, c.shop.owner, "confirm_appointment", p_appointment_id=appt, p_start=at(d, "09:30"),
               p_mechanic_id=c.shop.mechanic) == SLOT_TAKEN
    db.execute("insert into public.mechanic_time_off (mechanic_id, during) values (%s, tstzrange(%s, %s))",
               (c.shop.mechanic2, at(d, "08:00"), at(d, "18:00")))
    assert err(db, c.shop.owner, "confirm_appointment", p_appointment_id=appt, p_start=at(d, "09:30"),
               p_mechanic_id=c.shop.mechanic2) == SLOT_TAKEN


def test_released_time_is_bookable_again(db, c):
    mech = c.shop.mechanic
    _bookable(db, mech)
    d = day()
    appt = confirmed(db, c, at(d, "09:00"), mechanic=mech)
    as_(db, c.shop.owner, "cancel_appointment", p_appointment_id=appt, p_reason="Lift broken")
    with db.as_user(make_customer(db, "Online Buyer")):
        assert db.rpc("hold_slot", p_mechanic_id=mech, p_start=at(d, "09:00"), p_plan_code="chat10")["hold_id"]
    done = confirmed(db, c, at(d, "15:00"), mechanic=mech)
    shift(db, done, -dt.timedelta(days=4))
    as_(db, c.shop.owner, "complete_appointment", p_appointment_id=done, p_invoice_cents=100)
    assert active_overlaps(db) == 0


# ------------------------------------------------------------------------------------------------
# the race: parallel confirmations from many connections never exceed capacity
# ------------------------------------------------------------------------------------------------
CLIENTS = 8
ROUNDS = 4


@pytest.fixture
def world(fresh_url):
    with psycopg.connect(fresh_url, prepare_threshold=None) as conn:
        conn.execute("select 1")
        db = Db(conn)
        cast = make_cast(db, capacity=2)
        db.execute("update private.settings set value = '100' where key = 'workshops.open_appointments_per_customer'")
        appts = [[request(db, cast, [at(day(3 + r), "09:00")], customer=cast.customer if i % 2 else cast.other_customer)
                  for i in range(CLIENTS)] for r in range(ROUNDS)]
        conn.commit()
    conns = [psycopg.connect(fresh_url, autocommit=True, prepare_threshold=None) for _ in range(CLIENTS)]
    admin = psycopg.connect(fresh_url, prepare_threshold=None)
    admin.execute("select 1")
    yield Db(admin), cast, appts, conns
    for x in conns:
        x.close()
    admin.close()


def _peak(db: Db, shop) -> int:
    """The most confirmed appointments of the workshop running at one instant."""
    return db.scalar("""
        select coalesce(max((select count(*) from public.workshop_appointments b
                             where b.workshop_id = a.workshop_id and b.status = 'confirmed'
                               and b.starts_at <= a.starts_at and b.ends_at > a.starts_at)), 0)
        from public.workshop_appointments a where a.workshop_id = %s and a.status = 'confirmed'""", (shop,))


def test_parallel_confirmations_never_exceed_capacity(world):
    db, cast, appts, conns = world
    staff = [cast.shop.owner, cast.shop.manager, cast.shop.dispatcher, cast.admin]
    rng = random.Random(16)
    outcomes = []
    for r in range(ROUNDS):
        d = day(3 + r)
        calls = []
        for i in range(CLIENTS):
            start = at(d, "09:00") + dt.timedelta(minutes=15 * rng.randrange(0, 5))  # 09:00..10:00
            mech = cast.shop.mechanic if i == 0 else (cast.shop.mechanic2 if i == 1 else None)
            calls.append((conns[i], staff[i % len(staff)], "select public.confirm_appointment(%s, %s, %s)",
                          (appts[r][i], start, mech)))
        results = race(calls)
        outcomes += results
        assert {res[1] for res in results if res[0] == "err"} <= {FULL, SLOT_TAKEN}, results
        assert 1 <= sum(res[0] == "ok" for res in results) <= 2 * 2, results
        db.conn.commit()
        db.conn.execute("select 1")
        assert _peak(db, cast.shop.id) <= 2
        assert active_overlaps(db) == 0
    assert any(res == ("err", FULL) for res in outcomes)
