"""Helpers for the scheduling tests (no tests here): mechanics with weekly blocks set through the
real RPCs, slots computed with a chosen `now`, and bookings through holds."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from tests.support.factories import make_customer, make_intake, make_mechanic
from tests.support.harness import Db

UTC = dt.UTC


def utc(text: str) -> dt.datetime:
    """'2026-03-08 06:00' → an aware UTC datetime."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def scheduled_mechanic(db: Db, zone: str, blocks: list[dict[str, Any]], rules: dict[str, Any] | None = None,
                       **fields: Any) -> uuid.UUID:
    """An approved virtual-only mechanic with weekly blocks in `zone` and booking rules."""
    fields.setdefault("name", f"Sched {uuid.uuid4().hex[:6]}")
    mechanic = make_mechanic(db, **fields)
    with db.as_user(mechanic):
        db.rpc("set_weekly_availability", p_timezone=zone, p_blocks=blocks)
        db.rpc("set_booking_rules", p_rules={"buffer_minutes": 0, "min_notice_minutes": 0,
                                             "max_advance_days": 365, **(rules or {})})
    return mechanic


def every_day(start: str, end: str, multiplier: float = 1.0) -> list[dict[str, Any]]:
    return [{"day_of_week": d, "start": start, "end": end, "price_multiplier": multiplier} for d in range(7)]


def slots(db: Db, mechanic: uuid.UUID, start: dt.datetime, end: dt.datetime, plan: str = "chat10",
          now: dt.datetime | None = None) -> list[tuple[dt.datetime, int]]:
    """(slot_start in UTC, price) computed as of `now` (default: a day before `start`)."""
    now = now or (start - dt.timedelta(days=1))
    rows = db.all("select slot_start, price_cents from private.slots(%s, %s, %s, %s, %s) order by 1",
                  (mechanic, start, end, plan, now))
    return [(r["slot_start"].astimezone(UTC), r["price_cents"]) for r in rows]


def starts(db: Db, mechanic: uuid.UUID, start: dt.datetime, end: dt.datetime, **kw: Any) -> list[str]:
    return [s.strftime("%Y-%m-%d %H:%M") for s, _ in slots(db, mechanic, start, end, **kw)]


def future_day(days: int = 5) -> dt.date:
    return (dt.datetime.now(UTC) + dt.timedelta(days=days)).date()


def at(day: dt.date, hhmm: str) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.fromisoformat(hhmm), tzinfo=UTC)


def customer_with_intake(db: Db) -> tuple[uuid.UUID, uuid.UUID]:
    customer = make_customer(db)
    return customer, make_intake(db, customer)


def hold(db: Db, customer: uuid.UUID, mechanic: uuid.UUID, start: dt.datetime, plan: str = "free") -> dict[str, Any]:
    with db.as_user(customer):
        return db.rpc("hold_slot", p_mechanic_id=mechanic, p_start=start, p_plan_code=plan)


def book(db: Db, customer: uuid.UUID, mechanic: uuid.UUID, start: dt.datetime, plan: str = "free",
         intake: uuid.UUID | None = None) -> dict[str, Any]:
    """Hold then book (free plan, or credit): returns book_slot's answer."""
    intake = intake or make_intake(db, customer)
    h = hold(db, customer, mechanic, start, plan)
    with db.as_user(customer):
        return db.rpc("book_slot", p_hold_id=h["hold_id"], p_intake_id=intake)


def active_overlaps(db: Db) -> int:
    """Pairs of active commitments of one mechanic that overlap (must always be 0)."""
    return db.scalar("""
        select count(*) from public.mechanic_commitments a join public.mechanic_commitments b
          on a.mechanic_id = b.mechanic_id and a.id < b.id and a.during && b.during
        where a.status in ('held', 'confirmed', 'in_progress') and b.status in ('held', 'confirmed', 'in_progress')""")
