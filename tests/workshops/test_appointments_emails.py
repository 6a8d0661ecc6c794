"""Appointment emails through the outbox and the worker: the request to the workshop's staff, the
confirmation with its .ics, reminders 24 h and 1 h before (skipped at send time once the
appointment is no longer confirmed at that time), the cancellation with METHOD:CANCEL; templates
escape user text."""

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
from tests.support.appointments import as_, at, confirmed, day, make_cast
from tests.support.harness import Db


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


def _messages(folder):
    return [email.message_from_bytes(f.read_bytes(), policy=email.policy.default) for f in sorted(folder.glob("*.eml"))]


def _ics(msg):
    for part in msg.walk():
        if part.get_content_type() == "text/calendar":
            return part.get_payload(decode=True).decode()
    return None


def test_confirmation_reminders_and_cancellation(mail_env):
    d, folder = mail_env
    c = make_cast(d)
    start = at(day(3), "09:00")
    appt = confirmed(d, c, start, mechanic=c.shop.mechanic)
    d.conn.commit()
    d.conn.execute("select 1")
    now = dt.datetime.now(dt.UTC)
    result = worker.deliver(now, limit=100, kinds=["email.send"])
    assert result["sent"] == 4  # requested to owner, manager, dispatcher; confirmed to the customer
    msgs = _messages(folder)
    subjects = sorted(m["Subject"] for m in msgs)
    assert subjects.count("New appointment request: Brake pads") == 3
    conf = next(m for m in msgs if m["Subject"] == "Your appointment at Bay Motors is confirmed")
    ics = _ics(conf)
    assert ics and f"UID:appointment-{appt}@autodoctor.app" in ics and "METHOD:PUBLISH" in ics
    assert "DTSTART:" + start.strftime("%Y%m%dT%H%M%SZ") in ics and "LOCATION:1 Main St" in ics
    # the 24-hour reminder is sent when due, with the event
    result = worker.deliver(start - dt.timedelta(hours=23), limit=100, kinds=["email.send"])
    assert result["sent"] == 1
    reminder = next(m for m in _messages(folder) if m["Subject"].startswith("Reminder"))
    assert reminder["Subject"] == "Reminder: your appointment at Bay Motors starts in 24 hours"
    assert _ics(reminder)
    # cancelled: the 1-hour reminder is skipped, the cancellation carries METHOD:CANCEL
    as_(d, c.shop.owner, "cancel_appointment", p_appointment_id=appt, p_reason="Lift broken")
    d.conn.commit()
    d.conn.execute("select 1")
    result = worker.deliver(start - dt.timedelta(minutes=30), limit=100, kinds=["email.send"])
    assert result["sent"] == 1 and result["skipped"] == 1
    cancel = next(m for m in _messages(folder) if m["Subject"] == "Your appointment at Bay Motors was cancelled")
    assert "METHOD:CANCEL" in _ics(cancel) and "SEQUENCE:1" in _ics(cancel)
    assert "Lift broken" in cancel.get_body(("plain",)).get_content()


def test_user_text_is_escaped_in_html():
    ctx = {"name": "Casey", "timezone": "America/Toronto", "marketing_emails": True,
           "appointment": {"id": "00000000-0000-4000-8000-00000000a111", "status": "proposed",
                           "service_type": "<b>Brakes</b>", "workshop_name": "Morgan & Sons",
                           "workshop_address": None, "starts_at": None, "ends_at": None,
                           "proposed_start": "2026-03-08T15:00:00+00:00", "preferred_starts": [],
                           "proposal_note": "<script>x</script>", "decline_reason": None, "cancel_reason": None,
                           "cancelled_by": None, "customer_name": "C", "concern": None, "vehicle": None,
                           "sequence": 0}}
    rendered = mail.render("appointment_proposed", ctx)
    assert rendered.html is not None
    assert "<script>" not in rendered.html and "&lt;script&gt;" in rendered.html
    assert "Morgan &amp; Sons" in rendered.html and "<script>x</script>" in rendered.text
    assert "Sun 08 Mar 2026, 11:00 EDT" in rendered.text  # the recipient's zone
