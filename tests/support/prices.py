"""Helpers for the price tests (no tests here): a mechanic whose day has a cheap morning (×0.25), a
plain midday (×1) and a dear evening (×5), credit grants, and snapshots of everything a refused
reschedule must leave as it was."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from tests.support.factories import make_admin
from tests.support.harness import Db
from tests.support.scheduling import at, every_day, future_day, scheduled_mechanic

MORNING, MIDDAY, EVENING = 0.25, 1.0, 5.0


def priced_day() -> list[dict[str, Any]]:
    """Every day: 08–12 ×0.25, 12–17 ×1, 17–22 ×5 (UTC)."""
    return every_day("08:00", "12:00", MORNING) + every_day("12:00", "17:00", MIDDAY) + every_day("17:00", "22:00", EVENING)


def priced_mechanic(db: Db, **fields: Any) -> uuid.UUID:
    return scheduled_mechanic(db, "UTC", priced_day(), **fields)


def day(days: int = 5) -> dt.date:
    return future_day(days)


def slot(d: dt.date, hhmm: str) -> dt.datetime:
    return at(d, hhmm)


def grant_credit(db: Db, customer: uuid.UUID, cents: int) -> None:
    admin = make_admin(db)
    with db.as_user(admin):
        db.rpc("admin_grant_credit", p_customer_id=customer, p_amount_cents=cents, p_reason="test credit")


def balance(db: Db, customer: uuid.UUID) -> int:
    return db.scalar("select private.credit_balance(%s)", (customer,))


def snapshot(db: Db, session_id: Any) -> dict[str, Any]:
    """Everything a refused reschedule must leave untouched."""
    s = db.one("select * from public.sessions where id = %s", (session_id,))
    assert s is not None
    return {
        "session": {k: s[k] for k in ("scheduled_for", "price_cents", "specialist", "calendar_sequence", "status")},
        "commitments": db.all("select id, status, during, price_cents from public.mechanic_commitments"
                              " where session_id = %s order by id", (session_id,)),
        "payments": db.all("select id, amount_cents, status from public.payments where session_id = %s order by id",
                           (session_id,)),
        "refunds": db.all("select r.id, r.amount_cents, r.status from public.refunds r join public.payments p"
                          " on p.id = r.payment_id where p.session_id = %s order by r.id", (session_id,)),
        "credit": db.all("select customer_id, seq, amount_cents from public.credit_ledger"
                         " where customer_id = %s order by seq", (s["customer_id"],)),
        "outbox": db.all("select dedupe_key from private.outbox where payload::text like %s order by id",
                         (f"%{session_id}%",)),
    }


def books_balance(db: Db) -> None:
    assert db.all("select * from private.payment_integrity_issues") == []
    assert db.all("select * from private.credit_integrity_issues") == []
