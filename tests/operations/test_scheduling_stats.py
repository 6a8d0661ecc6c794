"""Scheduling analytics: admin_scheduling_stats and my_scheduling_stats against a hand count on a
small world in two zones (America/Toronto, Europe/Paris) whose range holds both zones' end of
daylight saving time; the no-show sides the sweep records; every persona; hostile ranges."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.delivery import start_both
from tests.support.factories import accept, make_admin, make_customer, make_mechanic, make_world, request_free
from tests.support.harness import Db
from tests.support.ops_scheduling_stats import figures, past_session
from tests.support.scheduling import at, book, every_day, future_day, scheduled_mechanic

FROM, TO = "2026-10-25", "2026-11-01"  # Paris falls back on 10-25, Toronto on 11-01 (both Sundays)


@dataclass
class Stats:
    toronto: uuid.UUID
    paris: uuid.UUID
    customer: uuid.UUID
    admin: uuid.UUID


def _block(day: int, start: str, end: str) -> dict[str, Any]:
    return {"day_of_week": day, "start": start, "end": end, "price_multiplier": 1.0}


@pytest.fixture
def stats(db: Db) -> Stats:
    admin = make_admin(db)
    customer = make_customer(db)
    # Toronto: Sundays 01:00–03:00 and Wednesdays 10:00–12:00, half an hour of time off on 10-28.
    #   10-25 (EDT) 01:00–03:00 = 120 min; 11-01 (fall-back) 01:00–03:00 = 180 real minutes;
    #   10-28 10:00–12:00 = 120 − 30 off = 90.  Available: 390.
    toronto = scheduled_mechanic(
        db, "America/Toronto", [_block(0, "01:00", "03:00"), _block(3, "10:00", "12:00")], name="Toni Toronto"
    )
    # (past time off, as add_time_off left it when it was ahead)
    db.execute(
        "insert into public.mechanic_time_off (mechanic_id, during)"
        " values (%s, tstzrange('2026-10-28 15:00Z', '2026-10-28 15:30Z'))",
        (toronto,),
    )
    # Paris: Sundays 01:00–04:00. 10-25 (fall-back) = 240 real minutes; 11-01 (CET) = 180. Available: 420.
    paris = scheduled_mechanic(db, "Europe/Paris", [_block(0, "01:00", "04:00")], name="Pierre Paris")

    t, p, c = toronto, paris, customer
    # Toronto (UTC−4 until 11-01 02:00 local, then UTC−5)
    # b1: booked 11-01 01:00 EDT (05:00Z), 60 min, lead 12 days = 17280 min, held
    past_session(
        db,
        t,
        c,
        minutes=60,
        created="2026-10-20 05:00",
        booked_for="2026-11-01 05:00",
        opened="2026-11-01 04:45",
        started="2026-11-01 05:00",
    )
    # b2: booked 10-28 10:00 EDT, lead 1440, cancelled by the customer 48 h before: outside the cut-off
    past_session(
        db,
        t,
        c,
        minutes=30,
        created="2026-10-27 14:00",
        booked_for="2026-10-28 14:00",
        cancelled=("2026-10-26 14:00", "scheduled", "customer"),
    )
    # b3: booked 10-25 02:00 EDT, lead 360, cancelled by the mechanic 2 h before: inside
    past_session(
        db,
        t,
        c,
        minutes=45,
        created="2026-10-25 00:00",
        booked_for="2026-10-25 06:00",
        cancelled=("2026-10-25 04:00", "scheduled", "mechanic"),
    )
    # b4: booked 10-25 01:00 EDT, lead 1440, opened, the customer never showed: 30 booked minutes
    past_session(
        db,
        t,
        c,
        minutes=30,
        created="2026-10-24 05:00",
        booked_for="2026-10-25 05:00",
        opened="2026-10-25 04:45",
        cancelled=("2026-10-25 05:30", "waiting", "system"),
        no_show="customer",
    )
    # o1: on demand, accepted 10-28, held
    past_session(
        db, t, c, minutes=20, created="2026-10-28 14:55", opened="2026-10-28 15:00", started="2026-10-28 15:05"
    )
    # o2: on demand, accepted 10-29, the mechanic never showed
    past_session(
        db,
        t,
        c,
        minutes=20,
        created="2026-10-29 14:55",
        opened="2026-10-29 15:00",
        cancelled=("2026-10-29 16:00", "waiting", "system"),
        no_show="mechanic",
    )
    # outside Toronto's days although inside the UTC dates: 10-24 22:00 EDT = 10-25 02:00Z
    past_session(
        db,
        t,
        c,
        minutes=60,
        created="2026-10-01 00:00",
        booked_for="2026-10-25 02:00",
        opened="2026-10-25 01:45",
        started="2026-10-25 02:00",
    )

    # Paris (UTC+2 until 10-25 03:00 local, then UTC+1)
    # b1: booked 10-25 01:00 CEST = 10-24 23:00Z (outside the UTC dates, inside Paris's), 120 min, lead 2880, held
    past_session(
        db,
        p,
        c,
        minutes=120,
        created="2026-10-22 23:00",
        booked_for="2026-10-24 23:00",
        opened="2026-10-24 22:45",
        started="2026-10-24 23:00",
    )
    # b2: booked 11-01 02:00 CET = 01:00Z, 60 min, lead 1440, held
    past_session(
        db,
        p,
        c,
        minutes=60,
        created="2026-10-31 01:00",
        booked_for="2026-11-01 01:00",
        opened="2026-11-01 00:45",
        started="2026-11-01 01:00",
    )
    # b3: booked 10-27 10:00 CET, lead 10080, cancelled by an admin an hour before: inside
    past_session(
        db,
        p,
        c,
        minutes=30,
        created="2026-10-20 09:00",
        booked_for="2026-10-27 09:00",
        cancelled=("2026-10-27 08:00", "scheduled", "admin"),
    )
    # outside Paris's days although inside the UTC dates: 11-02 00:30 CET = 11-01 23:30Z
    past_session(
        db,
        p,
        c,
        minutes=60,
        created="2026-10-01 00:00",
        booked_for="2026-11-01 23:30",
        opened="2026-11-01 23:15",
        started="2026-11-01 23:30",
    )
    return Stats(toronto=toronto, paris=paris, customer=customer, admin=admin)


def _admin(db: Db, admin: uuid.UUID, p_from: str = FROM, p_to: str = TO) -> dict[str, Any]:
    with db.as_user(admin):
        return dict(db.rpc("admin_scheduling_stats", p_from=p_from, p_to=p_to))


def test_available_minutes_are_open_time_in_local_days_across_both_dst_ends(db: Db, stats: Stats) -> None:
    out = _admin(db, stats.admin)
    t, p = figures(out, stats.toronto), figures(out, stats.paris)
    assert (t["timezone"], p["timezone"]) == ("America/Toronto", "Europe/Paris")
    assert float(t["available_minutes"]) == 390  # 120 + 180 (the repeated hour) + 90
    assert float(p["available_minutes"]) == 420  # 240 (the repeated hour) + 180
    # the single fall-back Sunday alone: Toronto's two-hour block is three real hours
    one_day = _admin(db, stats.admin, "2026-11-01", "2026-11-01")
    assert float(figures(one_day, stats.toronto)["available_minutes"]) == 180
    assert float(figures(one_day, stats.paris)["available_minutes"]) == 180


def test_per_mechanic_figures_match_the_hand_count(db: Db, stats: Stats) -> None:
    out = _admin(db, stats.admin)
    assert {m["mechanic_id"] for m in out["mechanics"]} == {str(stats.toronto), str(stats.paris)}
    t = figures(out, stats.toronto)
    assert float(t["booked_minutes"]) == 90  # b1 60 + b4 30 (a no-show still held the time)
    assert float(t["utilization"]) == round(90 / 390, 4)
    assert t["sessions"] == {"booked": 1, "on_demand": 1, "booked_share": 0.5}
    assert t["no_shows"] == {"opened": 4, "customer": 1, "mechanic": 1, "customer_rate": 0.25, "mechanic_rate": 0.25}
    # leads 360, 1440, 1440, 17280: median 1440; p90 = 1440 + 0.7 × (17280 − 1440)
    assert t["lead_time_minutes"] == {"bookings": 4, "median": 1440, "p90": 12528}
    assert t["cancellations"] == {
        "total": 2,
        "inside_cutoff": 1,
        "outside_cutoff": 1,
        "by": {"customer": 1, "mechanic": 1, "admin": 0, "system": 0},
        "inside_cutoff_by": {"customer": 0, "mechanic": 1, "admin": 0, "system": 0},
    }

    p = figures(out, stats.paris)
    assert float(p["booked_minutes"]) == 180
    assert float(p["utilization"]) == round(180 / 420, 4)
    assert p["sessions"] == {"booked": 2, "on_demand": 0, "booked_share": 1}
    assert p["no_shows"] == {"opened": 2, "customer": 0, "mechanic": 0, "customer_rate": 0, "mechanic_rate": 0}
    # leads 1440, 2880, 10080: median 2880; p90 = 2880 + 0.8 × (10080 − 2880)
    assert p["lead_time_minutes"] == {"bookings": 3, "median": 2880, "p90": 8640}
    assert p["cancellations"]["inside_cutoff"] == 1 and p["cancellations"]["by"]["admin"] == 1


def test_overall_figures_are_sums_not_means(db: Db, stats: Stats) -> None:
    o = _admin(db, stats.admin)["overall"]
    assert o["mechanics"] == 2
    assert float(o["available_minutes"]) == 810 and float(o["booked_minutes"]) == 270
    assert float(o["utilization"]) == round(270 / 810, 4)  # not the mean of 0.2308 and 0.4286
    assert o["sessions"] == {"booked": 3, "on_demand": 1, "booked_share": 0.75}
    assert o["no_shows"]["opened"] == 6 and o["no_shows"]["customer_rate"] == round(1 / 6, 4)
    # all seven leads: 360, 1440, 1440, 1440, 2880, 10080, 17280 → median 1440, p90 10080 + 0.4 × 7200
    assert o["lead_time_minutes"] == {"bookings": 7, "median": 1440, "p90": 12960}
    assert o["cancellations"]["total"] == 3
    assert (o["cancellations"]["inside_cutoff"], o["cancellations"]["outside_cutoff"]) == (2, 1)


def test_the_cut_off_is_the_setting(db: Db, stats: Stats) -> None:
    # at 1 hour, the mechanic's cancellation 2 h before the start is outside the cut-off too
    db.execute("update private.settings set value = '\"1 hour\"' where key = 'scheduling.change_cutoff'")
    o = _admin(db, stats.admin)["overall"]
    assert (o["cancellations"]["inside_cutoff"], o["cancellations"]["outside_cutoff"]) == (0, 3)
    assert _admin(db, stats.admin)["change_cutoff"] == "1 hour"


def test_my_figures_are_the_callers_own(db: Db, stats: Stats) -> None:
    with db.as_user(stats.toronto):
        mine = db.rpc("my_scheduling_stats", p_from=FROM, p_to=TO)
    assert mine["mechanic_id"] == str(stats.toronto)
    assert float(mine["booked_minutes"]) == 90 and mine["lead_time_minutes"]["bookings"] == 4
    assert "mechanics" not in mine and "overall" not in mine
    # a mechanic with nothing in the range gets its own zeros, never anyone else's figures
    other = make_mechanic(db, name="Otto Other")
    with db.as_user(other):
        theirs = db.rpc("my_scheduling_stats", p_from=FROM, p_to=TO)
    assert theirs["mechanic_id"] == str(other)
    assert float(theirs["available_minutes"]) == 0 and float(theirs["booked_minutes"]) == 0
    assert theirs["utilization"] is None and theirs["lead_time_minutes"]["bookings"] == 0
    # … while the figures it cannot reach exist
    assert float(figures(_admin(db, stats.admin), stats.paris)["booked_minutes"]) == 180
    # and the function takes no mechanic: there is no argument to name someone else with
    args = db.scalar("select pg_get_function_identity_arguments('public.my_scheduling_stats'::regproc)")
    assert args == "p_from date, p_to date"


def test_admin_reads_are_audited(db: Db, stats: Stats) -> None:
    _admin(db, stats.admin)
    row = db.one(
        "select admin_id, action, subject_type, data from private.admin_actions"
        " where action = 'scheduling.stats' order by id desc limit 1"
    )
    assert row is not None and row["admin_id"] == stats.admin and row["subject_type"] == "report"
    assert row["data"] == {"from": FROM, "to": TO}


def test_personas(db: Db, stats: Stats) -> None:
    w = make_world(db)
    for persona in (stats.customer, w.customer, w.workshop_admin, stats.toronto, w.pending_mechanic):
        with db.as_user(persona):
            assert db.rpc_error("admin_scheduling_stats", p_from=FROM, p_to=TO) == "AD003"
    for persona in (stats.customer, w.workshop_admin, w.pending_mechanic):
        with db.as_user(persona):
            assert db.rpc_error("my_scheduling_stats", p_from=FROM, p_to=TO) == "AD272"
    # an admin without a mechanic account has no figures of its own
    with db.as_user(stats.admin):
        assert db.rpc_error("my_scheduling_stats", p_from=FROM, p_to=TO) == "AD272"
    # a suspended mechanic no longer reads its figures (they stay in the admin's report)
    db.execute("update public.mechanics set status = 'suspended' where id = %s", (stats.paris,))
    with db.as_user(stats.paris):
        assert db.rpc_error("my_scheduling_stats", p_from=FROM, p_to=TO) == "AD272"
    with db.as_anon():
        for rpc in ("admin_scheduling_stats", "my_scheduling_stats"):
            assert db.rpc_error(rpc, p_from=FROM, p_to=TO) == "42501"
    assert db.scalar("select count(*) from private.admin_actions where action = 'scheduling.stats'") == 0


@pytest.mark.parametrize("rpc", ["admin_scheduling_stats", "my_scheduling_stats"])
def test_hostile_ranges(db: Db, stats: Stats, rpc: str) -> None:
    caller = stats.admin if rpc.startswith("admin") else stats.toronto
    cases = [
        ({"p_from": None, "p_to": TO}, "AD001"),
        ({"p_from": FROM, "p_to": None}, "AD001"),
        ({"p_from": None, "p_to": None}, "AD001"),
        ({"p_from": "2026-11-02", "p_to": "2026-11-01"}, "AD270"),
        ({"p_from": "2026-01-01", "p_to": "2026-04-03"}, "AD271"),  # 93 days; 92 is the longest
        ({"p_from": "not-a-date", "p_to": TO}, "22007"),
    ]
    with db.as_user(caller):
        for kwargs, code in cases:
            assert db.rpc_error(rpc, **kwargs) == code, kwargs
        # the longest range allowed answers
        assert db.rpc(rpc, p_from="2026-01-01", p_to="2026-04-02") is not None  # 92 days
        assert db.rpc(rpc, p_from="2026-07-01", p_to="2026-09-30") is not None  # the longest quarter
    assert db.scalar("select count(*) from private.admin_actions where action = 'scheduling.stats'") == (
        2 if rpc.startswith("admin") else 0
    )


# -- the no-show side, as the request sweep records it ------------------------------------------------------


def _accepted(db: Db) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    w = make_world(db)
    accept(db, w.mechanic, w.request)
    return w.session, w.customer, w.mechanic


def _sweep(db: Db, minutes: int) -> dict[str, Any]:
    now = db.scalar("select now()")
    return dict(db.scalar("select private.sweep_requests(%s)", (now + dt.timedelta(minutes=minutes),)))


def _side(db: Db, session: uuid.UUID) -> str | None:
    return db.scalar("select side from private.session_no_shows where session_id = %s", (session,))


def test_sweep_records_a_customer_no_show(db: Db) -> None:
    session, _, mechanic = _accepted(db)
    with db.as_user(mechanic):
        assert db.rpc("start_session", p_session_id=session)["waiting_for"] == "customer"
    assert _sweep(db, 31)["no_show_cancelled"] == 1
    assert _side(db, session) == "customer"
    assert db.scalar("select status from public.sessions where id = %s", (session,)) == "cancelled"


def test_sweep_records_a_mechanic_no_show(db: Db) -> None:
    session, customer, _ = _accepted(db)
    with db.as_user(customer):
        assert db.rpc("start_session", p_session_id=session)["waiting_for"] == "mechanic"
    # the customer called start_session but never joined the room: the 30-minute rule cancels, and
    # the record names the side that never showed up at all
    _sweep(db, 31)
    assert _side(db, session) == "mechanic"
    # the room counts as showing up too: a customer who joined it and a mechanic who never came
    session2, customer2, _ = _accepted_again(db)
    db.execute(
        "insert into public.session_participants (session_id, user_id, role, joined_at)"
        " values (%s, %s, 'customer', now()) on conflict (session_id, user_id) do update set joined_at = now()",
        (session2, customer2),
    )
    assert _sweep(db, 61)["orphaned_cancelled"] >= 1
    assert _side(db, session2) == "mechanic"


def _accepted_again(db: Db) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    customer = make_customer(db, "Nina Nextone")
    mechanic = make_mechanic(db, name="Vic Virtual")
    ids = request_free(db, customer)
    accept(db, mechanic, ids["request_id"])
    return uuid.UUID(ids["session_id"]), customer, mechanic


def test_sweep_records_both_and_nothing_for_a_session_that_went_live(db: Db) -> None:
    session, _, _ = _accepted(db)
    _sweep(db, 31)
    assert _side(db, session) == "both"
    live, _, _ = _accepted_again(db)
    start_both(db, live)
    _sweep(db, 61)
    assert _side(db, live) is None
    # a session both sides showed up for is never a no-show, whoever asks
    assert db.scalar("select private.record_no_show(%s)", (live,)) is None


def test_a_mechanic_cannot_turn_its_no_show_into_something_else(db: Db) -> None:
    """A booked session the mechanic never shows up for: once it has opened, the mechanic can
    neither cancel it (which would count as a cancellation) nor release it (a booking has no
    request); the sweep records the mechanic's no-show and the mechanic's own figures show it."""
    mechanic = scheduled_mechanic(db, "Europe/Paris", every_day("00:00", "24:00"), name="Nico Noshow")
    customer = make_customer(db, "Bea Booker")
    start = at(future_day(3), "10:00")
    session = uuid.UUID(book(db, customer, mechanic, start)["session_id"])
    db.scalar("select private.open_scheduled_sessions(%s)", (start - dt.timedelta(minutes=10),))
    assert db.scalar("select status from public.sessions where id = %s", (session,)) == "waiting"
    with db.as_user(mechanic):
        assert db.rpc_error("cancel_scheduled_session", p_session_id=session) == "AD006"
        assert db.scalar("select count(*) from public.session_requests where session_id = %s", (session,)) == 0
    with db.as_user(customer):
        assert db.rpc("start_session", p_session_id=session)["waiting_for"] == "mechanic"
    db.scalar("select private.sweep_requests(%s)", (start + dt.timedelta(minutes=31),))
    assert _side(db, session) == "mechanic"
    day = start.date().isoformat()  # 10:00Z is the same date in Paris
    with db.as_user(mechanic):
        mine = db.rpc("my_scheduling_stats", p_from=day, p_to=day)
    assert mine["no_shows"] == {"opened": 1, "customer": 0, "mechanic": 1, "customer_rate": 0, "mechanic_rate": 1}
    assert mine["cancellations"]["total"] == 0
    planned = db.scalar("select planned_minutes from public.sessions where id = %s", (session,))
    assert float(mine["booked_minutes"]) == planned  # the time it held still counts as booked
    assert float(mine["available_minutes"]) == 24 * 60
