"""Slots against hand-worked answers: DST days in New York and Berlin, +05:30 and +05:45 zones,
overrides whose local day crosses UTC midnight, minimum notice ending on a DST day, mechanic
types and workshop hours, multipliers, buffers, time off, daily limits, mechanics_free_at."""

from __future__ import annotations

import datetime as dt

from tests.support.factories import make_customer, make_mechanic
from tests.support.scheduling import (
    at,
    book,
    every_day,
    future_day,
    scheduled_mechanic,
    slots,
    starts,
    utc,
)


def test_new_york_spring_forward_keeps_only_real_hours(db):
    # Sunday 2026-03-08: 02:00 EST jumps to 03:00 EDT. Block 01:00-04:00 local = 06:00Z-08:00Z.
    m = scheduled_mechanic(db, "America/New_York", [{"day_of_week": 0, "start": "01:00", "end": "04:00"},
                                                    {"day_of_week": 0, "start": "09:00", "end": "10:00"}])
    got = starts(db, m, utc("2026-03-08 00:00"), utc("2026-03-09 00:00"))
    assert got == ["2026-03-08 06:00", "2026-03-08 06:30", "2026-03-08 07:00", "2026-03-08 07:30",
                   # 09:00 EDT = 13:00Z (a week earlier, EST, it was 14:00Z)
                   "2026-03-08 13:00", "2026-03-08 13:30"]
    assert starts(db, m, utc("2026-03-01 12:00"), utc("2026-03-01 16:00")) == ["2026-03-01 14:00", "2026-03-01 14:30"]


def test_new_york_fall_back_covers_the_repeated_hour(db):
    # Sunday 2026-11-01: 02:00 EDT falls back to 01:00 EST. Block 01:00-03:00 local starts at the
    # first 01:00 (EDT, 05:00Z) and ends at 03:00 EST (08:00Z): three real hours.
    m = scheduled_mechanic(db, "America/New_York", [{"day_of_week": 0, "start": "01:00", "end": "03:00"},
                                                    {"day_of_week": 0, "start": "09:00", "end": "10:00"}])
    got = starts(db, m, utc("2026-11-01 00:00"), utc("2026-11-02 00:00"))
    assert got == ["2026-11-01 05:00", "2026-11-01 05:30", "2026-11-01 06:00", "2026-11-01 06:30",
                   "2026-11-01 07:00", "2026-11-01 07:30",
                   "2026-11-01 14:00", "2026-11-01 14:30"]  # 09:00 EST = 14:00Z


def test_berlin_spring_forward(db):
    # 2026-03-29 (Sunday) 02:00 CET → 03:00 CEST. Saturday 08:00 CET = 07:00Z; Sunday 08:00 CEST = 06:00Z.
    m = scheduled_mechanic(db, "Europe/Berlin", [{"day_of_week": 6, "start": "08:00", "end": "09:00"},
                                                 {"day_of_week": 0, "start": "08:00", "end": "09:00"},
                                                 {"day_of_week": 0, "start": "01:30", "end": "03:30"}])
    got = starts(db, m, utc("2026-03-28 00:00"), utc("2026-03-30 00:00"))
    # Sunday 01:30-03:30 local: 01:30 CET = 00:30Z .. 03:30 CEST = 01:30Z (one real hour)
    assert got == ["2026-03-28 07:00", "2026-03-28 07:30", "2026-03-29 00:30", "2026-03-29 01:00",
                   "2026-03-29 06:00", "2026-03-29 06:30"]


def test_kolkata_and_kathmandu_offsets(db):
    # Monday 2026-12-07 09:00-11:00 IST (+05:30) = 03:30Z-05:30Z
    kol = scheduled_mechanic(db, "Asia/Kolkata", [{"day_of_week": 1, "start": "09:00", "end": "11:00"}])
    assert starts(db, kol, utc("2026-12-06 00:00"), utc("2026-12-09 00:00")) == [
        "2026-12-07 03:30", "2026-12-07 04:00", "2026-12-07 04:30", "2026-12-07 05:00"]
    # Tuesday 2026-12-08 09:00-10:00 NPT (+05:45) = 03:15Z-04:15Z
    ktm = scheduled_mechanic(db, "Asia/Kathmandu", [{"day_of_week": 2, "start": "09:00", "end": "10:00"}])
    assert starts(db, ktm, utc("2026-12-07 00:00"), utc("2026-12-10 00:00")) == ["2026-12-08 03:15", "2026-12-08 03:45"]


def test_override_whose_local_day_crosses_utc_midnight(db):
    # Kolkata: Thursday 2026-12-10 weekly 09:00-10:00 is replaced by an override 02:00-04:00 local,
    # which is still Wednesday in UTC (20:30Z-22:30Z); Friday 12-11 is a day off.
    kol = scheduled_mechanic(db, "Asia/Kolkata", [{"day_of_week": 4, "start": "09:00", "end": "10:00"},
                                                  {"day_of_week": 5, "start": "09:00", "end": "10:00"}])
    with db.as_user(kol):
        db.rpc("set_date_override", p_date=dt.date(2026, 12, 10), p_blocks=[{"start": "02:00", "end": "04:00"}])
        db.rpc("set_date_override", p_date=dt.date(2026, 12, 11), p_blocks=[], p_reason="holiday")
    assert starts(db, kol, utc("2026-12-09 00:00"), utc("2026-12-12 12:00")) == [
        "2026-12-09 20:30", "2026-12-09 21:00", "2026-12-09 21:30", "2026-12-09 22:00"]
    # Los Angeles: an evening override on local 2026-12-10 (17:00-18:00 PST) is 12-11 01:00Z-02:00Z
    la = scheduled_mechanic(db, "America/Los_Angeles", [{"day_of_week": 4, "start": "09:00", "end": "10:00"}])
    with db.as_user(la):
        db.rpc("set_date_override", p_date=dt.date(2026, 12, 10), p_blocks=[{"start": "17:00", "end": "18:00"}])
    assert starts(db, la, utc("2026-12-10 00:00"), utc("2026-12-12 00:00")) == ["2026-12-11 01:00", "2026-12-11 01:30"]
    # removing the override brings the weekly block back (09:00 PST = 17:00Z)
    with db.as_user(la):
        db.rpc("set_date_override", p_date=dt.date(2026, 12, 10), p_blocks=None)
    assert starts(db, la, utc("2026-12-10 00:00"), utc("2026-12-12 00:00")) == ["2026-12-10 17:00", "2026-12-10 17:30"]


def test_minimum_notice_ending_on_a_dst_day(db):
    # now = Saturday 2026-03-07 09:00 EST (14:00Z); 24 h notice ends Sunday 14:00Z = 10:00 EDT (not 09:00).
    m = scheduled_mechanic(db, "America/New_York", [{"day_of_week": 0, "start": "08:00", "end": "12:00"}],
                           rules={"min_notice_minutes": 24 * 60})
    got = starts(db, m, utc("2026-03-08 00:00"), utc("2026-03-09 00:00"), now=utc("2026-03-07 14:00"))
    assert got == ["2026-03-08 14:00", "2026-03-08 14:30", "2026-03-08 15:00", "2026-03-08 15:30"]


def test_step_window_multiplier_and_price(db):
    m = scheduled_mechanic(db, "UTC", [{"day_of_week": 1, "start": "08:00", "end": "10:00"},
                                       {"day_of_week": 1, "start": "17:00", "end": "18:00", "price_multiplier": 1.5}],
                           rules={"slot_step_minutes": 45, "max_advance_days": 10})
    got = slots(db, m, utc("2026-12-07 00:00"), utc("2026-12-08 00:00"), plan="video15", now=utc("2026-12-01 00:00"))
    # video15 lasts 45 min at 2999 cents; 17:00 block priced ×1.5 = 4498.5 → 4499
    assert got == [(utc("2026-12-07 08:00"), 2999), (utc("2026-12-07 08:45"), 2999), (utc("2026-12-07 17:00"), 4499)]
    # beyond max advance (10 days after now) nothing is offered
    assert slots(db, m, utc("2026-12-14 00:00"), utc("2026-12-15 00:00"), now=utc("2026-12-01 00:00")) == []


def test_bookings_buffer_time_off_and_daily_limit(db):
    day = future_day(6)
    m = scheduled_mechanic(db, "UTC", every_day("08:00", "12:00"), rules={"buffer_minutes": 15})
    everything = [f"{h:02d}:{mm:02d}" for h in range(8, 12) for mm in (0, 30)]
    assert [s.strftime("%H:%M") for s, _ in slots(db, m, at(day, "00:00"), at(day, "23:59"), plan="free",
                                                 now=at(day, "00:00") - dt.timedelta(days=1))] == everything
    customer = make_customer(db)
    book(db, customer, m, at(day, "09:00"))  # free plan: 5 min, + 15 min buffer after and before
    got = [s.strftime("%H:%M") for s, _ in slots(db, m, at(day, "00:00"), at(day, "23:59"), plan="free",
                                                 now=at(day, "00:00") - dt.timedelta(days=1))]
    # 08:30 + 5 + 15 buffer = 08:50 ≤ 09:00 → free; 09:00 taken; 09:30 ≥ 09:05 + 15 → free
    assert got == ["08:00", "08:30", "09:30", "10:00", "10:30", "11:00", "11:30"]
    with db.as_user(m):
        db.rpc("add_time_off", p_start=at(day, "10:15"), p_end=at(day, "11:00"), p_reason="dentist")
    got = [s.strftime("%H:%M") for s, _ in slots(db, m, at(day, "00:00"), at(day, "23:59"), plan="free",
                                                 now=at(day, "00:00") - dt.timedelta(days=1))]
    assert got == ["08:00", "08:30", "09:30", "10:00", "11:00", "11:30"]  # 10:00-10:05 ends before 10:15
    with db.as_user(m):
        db.rpc("set_booking_rules", p_rules={"max_sessions_per_day": 1})
    assert slots(db, m, at(day, "00:00"), at(day, "23:59"), plan="free", now=at(day, "00:00") - dt.timedelta(days=1)) == []
    nxt = day + dt.timedelta(days=1)
    assert slots(db, m, at(nxt, "00:00"), at(nxt, "23:59"), plan="free", now=at(day, "00:00"))  # other days unaffected


def test_mechanic_types_and_workshop_hours(db):
    org = db.scalar("insert into public.organizations (name, timezone) values ('Shop', 'Europe/Berlin') returning id")
    owner = db.make_user()
    db.execute("insert into public.organization_members values (%s, %s, 'owner')", (org, owner))
    with db.as_user(owner):
        # Monday 09:00-17:00 with a 12:00-13:00 break (Berlin, CET in December: UTC+1); Tuesday closed
        db.rpc("set_workshop_hours", p_organization_id=org,
               p_hours=[{"day_of_week": 1, "open": "09:00", "close": "17:00", "break_start": "12:00", "break_end": "13:00"}])
    indep = scheduled_mechanic(db, "Europe/Berlin", [{"day_of_week": 1, "start": "08:00", "end": "14:00"},
                                                     {"day_of_week": 2, "start": "08:00", "end": "10:00"}],
                               rules={"slot_step_minutes": 60})
    db.execute("update public.mechanics set organization_id = %s, account_type = 'individual_mechanic' where id = %s",
               (org, indep))
    affil = scheduled_mechanic(db, "Europe/Berlin", [{"day_of_week": 2, "start": "08:00", "end": "10:00"}],
                               rules={"slot_step_minutes": 60})
    db.execute("update public.mechanics set organization_id = %s, account_type = 'workshop_mechanic' where id = %s",
               (org, affil))
    window = (utc("2026-12-07 00:00"), utc("2026-12-09 00:00"))  # Monday and Tuesday
    # independent: own 08-14 ∩ workshop 09-12, 13-17 → 09,10,11,13 local = 08,09,10,12 Z
    assert starts(db, indep, *window) == ["2026-12-07 08:00", "2026-12-07 09:00", "2026-12-07 10:00",
                                          "2026-12-07 12:00"]
    # affiliated: workshop hours only (its own Tuesday block is ignored): 09..16 local minus break
    assert starts(db, affil, *window) == [f"2026-12-07 {h:02d}:00" for h in (8, 9, 10, 12, 13, 14, 15)]
    # a workshop closed day (override) closes both
    with db.as_user(owner):
        db.rpc("set_date_override", p_date=dt.date(2026, 12, 7), p_blocks=[], p_organization_id=org)
    assert starts(db, indep, *window) == [] and starts(db, affil, *window) == []


def test_mechanics_free_at_is_set_based_and_matches_slots(db):
    day = future_day(8)
    free = [scheduled_mechanic(db, "UTC", every_day("08:00", "12:00")) for _ in range(3)]
    off = scheduled_mechanic(db, "UTC", every_day("13:00", "15:00"))
    busy = scheduled_mechanic(db, "UTC", every_day("08:00", "12:00"))
    book(db, make_customer(db), busy, at(day, "10:00"))
    with db.as_user(free[2]):
        db.rpc("add_time_off", p_start=at(day, "09:00"), p_end=at(day, "11:00"))
    customer = make_customer(db)
    with db.as_user(customer):
        rows = db.all("select * from public.mechanics_free_at(%s, 'free')", (at(day, "10:00"),))
    ids = {r["mechanic_id"] for r in rows}
    assert set(free[:2]) <= ids and free[2] not in ids and off not in ids and busy not in ids
    # off the step grid (10:10) nobody is offered; the answer agrees with available_slots
    with db.as_user(customer):
        assert db.all("select * from public.mechanics_free_at(%s, 'free')", (at(day, "10:10"),)) == []
        assert db.scalar("select count(*) from public.available_slots(%s, %s, %s, 'free') where slot_start = %s",
                         (free[0], at(day, "00:00"), at(day, "23:00"), at(day, "10:00"))) == 1


def test_instant_booking_off_offers_nothing(db):
    m = scheduled_mechanic(db, "UTC", every_day("08:00", "12:00"), rules={"instant_booking": False})
    assert slots(db, m, utc("2026-12-07 00:00"), utc("2026-12-08 00:00")) == []
    pending = make_mechanic(db, approved=False)
    assert slots(db, pending, utc("2026-12-07 00:00"), utc("2026-12-08 00:00")) == []
