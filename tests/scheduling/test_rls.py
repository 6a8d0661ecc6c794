"""RLS of the scheduling tables per persona: owner mechanic, other mechanic, workshop admin,
customer, anon, platform admin. Every "cannot" first proves, as superuser, that the rows exist."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest

from tests.support.factories import make_world
from tests.support.scheduling import at, future_day, hold

TABLES = ["mechanic_weekly_availability", "availability_overrides", "mechanic_time_off", "booking_rules"]


@pytest.fixture
def w(db):
    world = make_world(db)
    with db.as_user(world.mechanic):
        db.rpc("set_weekly_availability", p_timezone="America/Toronto",
               p_blocks=[{"day_of_week": 1, "start": "09:00", "end": "17:00"}])
        db.rpc("add_time_off", p_start=at(future_day(3), "09:00"), p_end=at(future_day(3), "12:00"))
        db.rpc("set_booking_rules", p_rules={"buffer_minutes": 5})
        db.rpc("set_date_override", p_date=future_day(4), p_blocks=[], p_reason="family")
    with db.as_user(world.workshop_admin):
        db.rpc("set_workshop_hours", p_organization_id=world.organization,
               p_hours=[{"day_of_week": 1, "open": "09:00", "close": "17:00"}])
    with db.as_user(world.other_mechanic):
        db.rpc("set_weekly_availability", p_timezone="UTC", p_blocks=[{"day_of_week": 2, "start": "08:00", "end": "12:00"}])
    return world


def _count(db, table, mechanic) -> int:
    return db.scalar(f"select count(*) from public.{table} where mechanic_id = %s", (mechanic,))


def test_who_sees_a_mechanics_schedule(db, w):
    for table in TABLES:
        assert _count(db, table, w.mechanic) >= 1, table  # the rows exist (superuser)
        for persona, sees in ((w.mechanic, True), (w.workshop_admin, True), (w.admin, True),
                              (w.other_mechanic, False), (w.customer, False)):
            with db.as_user(persona):
                assert (_count(db, table, w.mechanic) >= 1) is sees, (table, persona)
        with db.as_anon():
            err = db.error(f"select count(*) from public.{table}")
            assert isinstance(err, psycopg.errors.InsufficientPrivilege)


def test_workshop_hours_visible_to_members_written_by_admins(db, w):
    assert db.scalar("select count(*) from public.workshop_hours where organization_id = %s", (w.organization,)) == 1
    for persona, sees in ((w.mechanic, True), (w.workshop_admin, True), (w.admin, True),
                          (w.other_mechanic, False), (w.customer, False)):
        with db.as_user(persona):
            assert db.scalar("select count(*) from public.workshop_hours where organization_id = %s",
                             (w.organization,)) == (1 if sees else 0), persona
    with db.as_user(w.mechanic):  # a member mechanic reads but does not change its workshop's hours
        assert db.scalar("update public.workshop_hours set capacity = 5 where organization_id = %s returning 1",
                         (w.organization,)) is None
        assert db.rpc_error("set_workshop_hours", p_organization_id=w.organization, p_hours=[]) == "AD003"
    with db.as_user(w.workshop_admin):
        assert db.scalar("update public.workshop_hours set capacity = 5 where organization_id = %s returning capacity",
                         (w.organization,)) == 5


def test_other_mechanic_and_customer_cannot_write(db, w):
    before = {t: _count(db, t, w.mechanic) for t in TABLES}
    for persona in (w.other_mechanic, w.customer):
        with db.as_user(persona):
            err = db.error("insert into public.mechanic_weekly_availability (mechanic_id, day_of_week, start_time,"
                           " end_time) values (%s, 3, '09:00', '10:00')", (w.mechanic,))
            assert err.sqlstate == "42501"
            err = db.error("insert into public.mechanic_time_off (mechanic_id, during) values (%s, %s)",
                           (w.mechanic, "[2030-01-01,2030-01-02)"))
            assert err.sqlstate == "42501"
            assert db.error("delete from public.booking_rules where mechanic_id = %s",
                            (w.mechanic,)).sqlstate == "42501"  # nobody deletes rules; set nulls instead
            for table in TABLES[:3]:
                assert db.scalar(f"with d as (delete from public.{table} where mechanic_id = %s returning 1)"
                                 " select count(*) from d", (w.mechanic,)) == 0
            assert db.scalar("update public.booking_rules set buffer_minutes = 99 where mechanic_id = %s returning 1",
                             (w.mechanic,)) is None
    assert {t: _count(db, t, w.mechanic) for t in TABLES} == before
    assert db.scalar("select buffer_minutes from public.booking_rules where mechanic_id = %s", (w.mechanic,)) == 5


def test_owner_and_workshop_admin_write_directly(db, w):
    with db.as_user(w.mechanic):
        db.execute("insert into public.mechanic_weekly_availability (mechanic_id, day_of_week, start_time, end_time)"
                   " values (%s, 3, '09:00', '10:00')", (w.mechanic,))
        # the table's own rules hold for direct writes: no overlap, end after start
        assert db.error("insert into public.mechanic_weekly_availability (mechanic_id, day_of_week, start_time,"
                        " end_time) values (%s, 3, '09:30', '11:00')", (w.mechanic,)).sqlstate == "23P01"
        assert db.error("insert into public.mechanic_weekly_availability (mechanic_id, day_of_week, start_time,"
                        " end_time) values (%s, 4, '11:00', '10:00')", (w.mechanic,)).sqlstate == "23514"
    with db.as_user(w.workshop_admin):
        db.rpc("set_weekly_availability", p_timezone="America/Toronto",
               p_blocks=[{"day_of_week": 5, "start": "10:00", "end": "12:00"}], p_mechanic_id=w.mechanic)
        assert db.scalar("with d as (delete from public.mechanic_time_off where mechanic_id = %s returning 1)"
                         " select count(*) from d", (w.mechanic,)) == 1
    assert db.scalar("select array_agg(day_of_week) from public.mechanic_weekly_availability where mechanic_id = %s",
                     (w.mechanic,)) == [5]


def test_holds_visible_to_their_customer_only(db, w):
    with db.as_user(w.other_mechanic):
        db.rpc("set_booking_rules", p_rules={"min_notice_minutes": 0, "max_advance_days": 60})
    day = future_day(7)
    while day.weekday() != 1:  # Tuesday: the other mechanic's block (day_of_week 2)
        day += dt.timedelta(days=1)
    # a paid slot: the world's customer used its one free session (tests/trust)
    h = hold(db, w.customer, w.other_mechanic, at(day, "09:00"), "chat10")
    assert db.scalar("select count(*) from public.mechanic_commitments where id = %s", (h["hold_id"],)) == 1
    for persona, sees in ((w.customer, True), (w.other_mechanic, True), (w.admin, True),
                          (w.other_customer, False), (w.mechanic, False), (w.workshop_admin, False)):
        with db.as_user(persona):
            assert db.scalar("select count(*) from public.mechanic_commitments where id = %s",
                             (h["hold_id"],)) == (1 if sees else 0), persona
    with db.as_user(w.customer):
        assert db.error("update public.mechanic_commitments set status = 'released' where id = %s",
                        (h["hold_id"],)).sqlstate == "42501"
