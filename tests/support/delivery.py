"""Delivery helpers: a session both sides take part in, and the objection window before payouts leave.

A session goes live only when both participants are ready (each calls start_session), and it counts
as delivered only with evidence from both sides (video/diagnostic: both joined the LiveKit room;
chat: each side wrote a message while live) and trust.min_delivered_minutes of duration. These helpers
build exactly that through the real RPCs and tables; `release_hold` ends the objection window
(payments.payout_hold) of a session's payouts and runs the release job.
"""

from __future__ import annotations

import uuid
from typing import Any

from tests.support.harness import Db


def parties(db: Db, session: Any) -> tuple[uuid.UUID, uuid.UUID]:
    row = db.one("select customer_id, mechanic_id from public.sessions where id = %s", (session,))
    assert row is not None and row["mechanic_id"] is not None
    return row["customer_id"], row["mechanic_id"]


def start_both(db: Db, session: Any) -> dict[str, Any]:
    """Both participants call start_session (the customer first): the session goes live."""
    customer, mechanic = parties(db, session)
    with db.as_user(customer):
        first = db.rpc("start_session", p_session_id=session)
    assert first["status"] == "waiting" and first["waiting_for"] == "mechanic", first
    with db.as_user(mechanic):
        out = db.rpc("start_session", p_session_id=session)
    assert out["status"] == "live", out
    return dict(out)


def take_part(db: Db, session: Any, *, minutes: int = 10) -> None:
    """Evidence from both sides of a live session: both joined the room (as LiveKit reports it),
    each wrote a chat message, and it started `minutes` ago (longer than trust.min_delivered_minutes;
    its deadline moves with it)."""
    customer, mechanic = parties(db, session)
    db.execute("update public.sessions set started_at = started_at - make_interval(mins => %(m)s), "
               "deadline_at = deadline_at - make_interval(mins => %(m)s) where id = %(s)s",
               {"m": minutes, "s": session})
    db.execute("update public.session_participants sp set joined_at = s.started_at from public.sessions s "
               "where s.id = sp.session_id and sp.session_id = %s", (session,))
    for user in (customer, mechanic):
        with db.as_user(user):
            db.execute("insert into public.chat_messages (session_id, content) values (%s, 'hello')", (session,))


def deliver(db: Db, session: Any, *, by: str = "mechanic", notes: str | None = None,
            minutes: int = 10) -> dict[str, Any]:
    """Start (both ready), take part (both sides), and end the session as `by`: completed, delivered."""
    start_both(db, session)
    take_part(db, session, minutes=minutes)
    customer, mechanic = parties(db, session)
    with db.as_user(mechanic if by == "mechanic" else customer):
        out = db.rpc("end_session", p_session_id=session, p_notes=notes)
    assert out["status"] == "completed" and out["delivery"] == "delivered", out
    return dict(out)


def release_hold(db: Db, session: Any | None = None) -> dict[str, Any]:
    """The objection window of the session's payouts (all sessions when None) has ended: their
    release time is moved into the past and the release job runs."""
    if session is None:
        db.execute("update public.payouts set release_at = now() - interval '1 second' "
                   "where status = 'waiting' and release_at > now() - interval '1 second'")
    else:
        db.execute("update public.payouts set release_at = now() - interval '1 second' "
                   "where session_id = %s and status = 'waiting'", (session,))
    return dict(db.scalar("select private.release_held_payouts(now(), 100000)"))


def set_hold(db: Db, interval: str) -> None:
    """Sets payments.payout_hold (e.g. '0 seconds': payouts go as soon as the session ends)."""
    db.execute("update private.settings set value = to_jsonb(%s::text) where key = 'payments.payout_hold'",
               (interval,))


def deliver_and_release(db: Db, session: Any, **kw: Any) -> dict[str, Any]:
    out = deliver(db, session, **kw)
    release_hold(db, session)
    return out


def paid_with_credit(db: Db, customer: uuid.UUID, plan: str = "diagnostic") -> dict[str, Any]:
    """A session the customer paid with credit (granted by an admin first): {session_id, request_id, ...}."""
    from tests.support.factories import make_admin, make_intake

    price = db.scalar("select price_cents from public.service_plans where code = %s", (plan,))
    with db.as_user(make_admin(db)):
        db.rpc("admin_grant_credit", p_customer_id=customer, p_amount_cents=price, p_reason="test credit")
    intake = make_intake(db, customer)
    # older than an hour: a limit on intakes per hour never counts these test intakes
    db.execute("update public.intakes set created_at = now() - interval '2 hours' where id = %s", (intake,))
    out = db.scalar("select private.prepare_checkout(%s, %s, %s, null, null, false)", (customer, plan, intake))
    return dict(out)


def credit_balance(db: Db, customer: uuid.UUID) -> int:
    return int(db.scalar("select coalesce(sum(amount_cents), 0) from public.credit_ledger where customer_id = %s",
                         (customer,)))


def books_balance(db: Db) -> None:
    assert db.all("select * from private.payment_integrity_issues") == []
    assert db.all("select * from private.credit_integrity_issues") == []
