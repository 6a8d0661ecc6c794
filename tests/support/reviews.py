"""Helpers for the reviews tests: completed sessions with a given delivery, reviews, aggregates."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from tests.support.harness import Db

TAGS = ["clear_explanation", "solved_problem", "on_time", "friendly", "good_value", "knowledgeable"]


def session_between(db: Db, customer: uuid.UUID, mechanic: uuid.UUID, *, status: str = "completed",
                    delivery: str | None = "delivered", ended_ago: dt.timedelta = dt.timedelta(minutes=5),
                    plan: str = "chat10") -> uuid.UUID:
    """A session of `customer` with `mechanic`, built as the owner role (no request, no limits):
    accepted (`waiting`), `live`, `cancelled`, or `completed` through the lifecycle `ended_ago` before
    the transaction's now() with `delivery` set as the delivery evidence would set it."""
    sid = db.scalar(
        "insert into public.sessions (customer_id, plan_code, session_type, duration_type, planned_minutes, price_cents) "
        "select %s, code, session_type, duration_type, minutes, price_cents from public.service_plans where code = %s "
        "returning id", (customer, plan))
    if status == "pending":
        return sid
    if status == "cancelled":
        db.execute("select private.cancel_session(%s, 'test', now())", (sid,))
        return sid
    db.execute("update public.sessions set status = 'waiting', mechanic_id = %s where id = %s", (mechanic, sid))
    if status == "waiting":
        return sid
    db.execute("update public.sessions set status = 'live', started_at = now() - %s - interval '20 minutes' "
               "where id = %s", (ended_ago, sid))
    if status == "live":
        return sid
    assert status == "completed"
    db.execute("select private.complete_session(%s, null, null, now() - %s)", (sid, ended_ago))
    set_delivery(db, sid, delivery)
    return sid


def set_delivery(db: Db, session: uuid.UUID, delivery: str | None) -> None:
    db.execute("update public.sessions set delivery = %s where id = %s", (delivery, session))


SUBMIT_SQL = ("select public.submit_review(p_session_id => %(p_session_id)s::uuid, p_rating => %(p_rating)s::int, "
              "p_text => %(p_text)s::text, p_tags => %(p_tags)s::text[])")


def submit_args(session: Any, rating: Any, text: Any = None, tags: Any = None) -> dict[str, Any]:
    """submit_review's arguments as PostgREST passes them (p_tags as a text array, not JSON)."""
    return {"p_session_id": session, "p_rating": rating, "p_text": text, "p_tags": tags}


def submit(db: Db, customer: uuid.UUID, session: uuid.UUID, rating: int, text: str | None = None,
           tags: list[str] | None = None) -> dict[str, Any]:
    with db.as_user(customer):
        result: dict[str, Any] = db.scalar(SUBMIT_SQL, submit_args(session, rating, text, tags))
    return result


def submit_error(db: Db, **params: Any) -> str:
    """The SQLSTATE of a submit_review call that must fail (as the current persona)."""
    try:
        db.scalar(SUBMIT_SQL, {**submit_args(None, None), **params})
    except Exception as exc:  # psycopg.Error
        return str(getattr(exc, "sqlstate", "") or "")
    raise AssertionError("expected submit_review to fail")


def aggregates(db: Db, mechanic: uuid.UUID) -> dict[str, Any]:
    row = db.one("select rating_avg, rating_count, rating_sum, rating_score from public.mechanics where id = %s",
                 (mechanic,))
    assert row is not None
    return row


def recomputed(db: Db, mechanic: uuid.UUID) -> dict[str, Any]:
    """The aggregates recomputed from the reviews table with the settings' prior, independently."""
    row = db.one(
        "select count(*)::int as rating_count, coalesce(sum(rating), 0)::int as rating_sum, "
        "round(avg(rating), 2) as rating_avg, "
        "round((private.setting_numeric('reviews.prior_weight') * private.setting_numeric('reviews.prior_mean') "
        "       + coalesce(sum(rating), 0)) / (private.setting_numeric('reviews.prior_weight') + count(*)), 5) "
        "  as rating_score "
        "from public.mechanic_reviews where mechanic_id = %s and hidden_at is null", (mechanic,))
    assert row is not None
    return row


def set_reputation(db: Db, mechanic: uuid.UUID, avg: float, count: int) -> None:
    """A mechanic whose visible reviews are `count` ratings averaging `avg` (the aggregates only: for
    ranking tests that need a reputation, not the reviews themselves)."""
    db.execute("update public.mechanics set rating_count = %s, rating_sum = %s where id = %s",
               (count, round(avg * count), mechanic))
