"""The review prompt: enqueued for a delivered session, due an hour after its end, skipped at send
time when a review exists or the window closed; the session_ended email's review link."""

from __future__ import annotations

import datetime as dt
import email
import email.policy

import psycopg
import pytest

from shared import db as shared_db
from shared import email as mail
from shared import worker
from shared.config import get_settings
from tests.support.factories import make_customer, make_mechanic
from tests.support.harness import Db
from tests.support.reviews import session_between, submit

PROMPTS = "select * from private.outbox where dedupe_key like 'email:review_prompt:%%' order by id"


def deliver_hook(db: Db, session) -> None:
    db.execute("select private.reviews_on_session_delivered(%s)", (session,))


def test_prompt_is_enqueued_once_an_hour_after_a_delivered_session(db):
    customer, mechanic = make_customer(db), make_mechanic(db)
    sid = session_between(db, customer, mechanic, ended_ago=dt.timedelta(minutes=5))
    deliver_hook(db, sid)
    deliver_hook(db, sid)  # the hook may run twice: one job
    jobs = db.all(PROMPTS)
    assert len(jobs) == 1
    ended = db.scalar("select ended_at from public.sessions where id = %s", (sid,))
    assert jobs[0]["next_attempt_at"] == ended + dt.timedelta(hours=1)
    assert jobs[0]["payload"] == {"template": "review_prompt", "user_id": str(customer), "session_id": str(sid),
                                  "data": {}}
    assert jobs[0]["dedupe_key"] == f"email:review_prompt:{sid}:{customer}"


@pytest.mark.parametrize("delivery", ["unverified", None])
def test_no_prompt_for_a_session_not_delivered(db, delivery):
    customer, mechanic = make_customer(db), make_mechanic(db)
    sid = session_between(db, customer, mechanic, delivery=delivery)
    deliver_hook(db, sid)
    assert db.all(PROMPTS) == []
    assert db.scalar("select count(*) from public.sessions where id = %s", (sid,)) == 1


def test_prompt_delay_is_a_setting(db):
    db.execute("update private.settings set value = '\"3 hours\"' where key = 'reviews.prompt_delay'")
    customer, mechanic = make_customer(db), make_mechanic(db)
    sid = session_between(db, customer, mechanic)
    deliver_hook(db, sid)
    ended = db.scalar("select ended_at from public.sessions where id = %s", (sid,))
    assert db.all(PROMPTS)[0]["next_attempt_at"] == ended + dt.timedelta(hours=3)


def test_skip_reason_at_send_time(db):
    customer, mechanic = make_customer(db), make_mechanic(db)
    sid = session_between(db, customer, mechanic)
    ended = db.scalar("select ended_at from public.sessions where id = %s", (sid,))
    reason = "select private.review_prompt_skip_reason(%s, %s)"
    assert db.scalar(reason, (sid, ended + dt.timedelta(hours=1))) is None
    assert db.scalar(reason, (sid, ended + dt.timedelta(days=14, seconds=1))) == "the review window closed"
    submit(db, customer, sid, 4)
    assert db.scalar(reason, (sid, ended + dt.timedelta(hours=1))) == "a review was written"
    other = session_between(db, customer, mechanic)
    db.execute("update public.sessions set delivery = 'unverified' where id = %s", (other,))
    assert db.scalar(reason, (other, ended)) == "the session is not delivered"
    with db.as_user(customer):  # private: not callable by clients
        assert db.error(reason, (sid, ended)).sqlstate == "42501"


@pytest.fixture
def mail_env(fresh_url, monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", fresh_url)
    monkeypatch.setenv("EMAIL_FILES_DIR", str(tmp_path / "mail"))
    monkeypatch.delenv("RESEND_API_KEY", raising=False)
    get_settings.cache_clear()
    shared_db.close_pool()
    conn = psycopg.connect(fresh_url)
    conn.execute("select 1")
    yield Db(conn), tmp_path / "mail"
    conn.close()
    shared_db.close_pool()
    get_settings.cache_clear()


def test_worker_sends_the_prompt_only_without_a_review(mail_env):
    d, folder = mail_env
    customer, mechanic = make_customer(d, "Casey Customer"), make_mechanic(d, name="Morgan Mechanic")
    reviewed = session_between(d, customer, mechanic)
    silent = session_between(d, customer, mechanic)
    for sid in (reviewed, silent):
        deliver_hook(d, sid)
    # everything but the prompts goes out first
    d.execute("update private.outbox set status = 'sent' where dedupe_key not like 'email:review_prompt:%%'")
    d.conn.commit()
    ended = d.scalar("select max(ended_at) from public.sessions")
    d.conn.commit()
    # before the hour: nothing is due
    assert worker.deliver(now=ended + dt.timedelta(minutes=30), kinds=["email.send"])["claimed"] == 0
    submit(d, customer, reviewed, 5)
    d.conn.commit()
    result = worker.deliver(now=ended + dt.timedelta(hours=1, minutes=1), kinds=["email.send"])
    assert (result["claimed"], result["sent"], result["skipped"]) == (2, 1, 1)
    states = {r["payload"]["session_id"]: (r["status"], r["last_error"]) for r in d.all(PROMPTS)}
    assert states[str(reviewed)] == ("skipped", "skipped: a review was written")
    assert states[str(silent)][0] == "sent"
    files = list(folder.glob("*.eml"))
    assert len(files) == 1
    msg = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    assert msg["Subject"] == "Rate your session with Morgan Mechanic"
    assert f"/sessions/{silent}/review" in msg.get_body(("plain",)).get_content()


def test_session_ended_links_to_the_review_only_when_delivered():
    ctx = {"name": "Casey", "timezone": "UTC", "marketing_emails": True,
           "session": {"id": "s1", "plan": "Chat", "mechanic_name": "Morgan", "duration_minutes": 12,
                       "delivery": "delivered", "review_until": "2026-12-13T10:00:00+00:00"}}
    delivered = mail.render("session_ended", ctx)
    assert "/sessions/s1/review" in delivered.text and "/sessions/s1/review" in (delivered.html or "")
    assert "Sun 13 Dec 2026, 10:00 UTC" in delivered.text
    for delivery in ("unverified", None):
        other = mail.render("session_ended", {**ctx, "session": {**ctx["session"], "delivery": delivery}})
        assert "review" not in other.text.lower() and "review" not in (other.html or "").lower()


def test_email_context_carries_delivery_and_the_review_deadline(db):
    customer, mechanic = make_customer(db), make_mechanic(db)
    sid = session_between(db, customer, mechanic)
    ctx = db.scalar("select private.email_context(%s, %s)", (customer, sid))
    ended = db.scalar("select ended_at from public.sessions where id = %s", (sid,))
    assert ctx["session"]["delivery"] == "delivered"
    assert dt.datetime.fromisoformat(ctx["session"]["review_until"]) == ended + dt.timedelta(days=14)
