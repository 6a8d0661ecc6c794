"""The .ics of a booked session (session_calendar, participants' JWT) parsed back with icalendar
field by field, across a reschedule and a cancellation; the confirmation email's attachment; the
mechanic's calendar RPC."""

from __future__ import annotations

import datetime as dt
import email
import uuid

import icalendar
import psycopg
import pytest

from functions.session_calendar import session_calendar
from shared import db as shared_db
from shared import worker
from shared.config import get_settings
from shared.dev.tokens import make_token
from tests.support.factories import make_customer
from tests.support.harness import Db
from tests.support.scheduling import at, book, every_day, future_day, scheduled_mechanic

JWT_SECRET = "scheduling-test-jwt-secret-0123456789abcdef"


@pytest.fixture
def env(fresh_url, monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", fresh_url)
    monkeypatch.setenv("SUPABASE_JWT_SECRET", JWT_SECRET)
    monkeypatch.setenv("APP_URL", "https://app.autodoctor.test")
    monkeypatch.setenv("EMAIL_FILES_DIR", str(tmp_path / "mail"))
    monkeypatch.delenv("RESEND_API_KEY", raising=False)
    get_settings.cache_clear()
    shared_db.close_pool()
    conn = psycopg.connect(fresh_url, prepare_threshold=None)
    conn.execute("select 1")
    db = Db(conn)
    mechanic = scheduled_mechanic(db, "America/New_York", every_day("08:00", "18:00"), name="Morgan Mech")
    customer = make_customer(db, "Casey Customer")
    start = at(future_day(6), "14:00")
    session_id = book(db, customer, mechanic, start)["session_id"]
    conn.commit()
    conn.execute("select 1")
    yield db, mechanic, customer, session_id, start, tmp_path / "mail"
    conn.close()
    shared_db.close_pool()
    get_settings.cache_clear()


def _get(user: uuid.UUID | None, session_id: str | None, method: str = "GET") -> tuple[int, bytes, dict]:
    headers = {"Authorization": f"Bearer {make_token(secret=JWT_SECRET, user_id=str(user))}"} if user else {}
    import flask

    app = flask.Flask("calendar-tests")
    query = f"/?session_id={session_id}" if session_id and method == "GET" else "/"
    data = None if method == "GET" else (f'{{"session_id": "{session_id}"}}' if session_id else "{}")
    with app.test_request_context(query, method=method, headers=headers, data=data, content_type="application/json"):
        response = session_calendar(flask.request)
        return response.status_code, response.get_data(), dict(response.headers)


def _event(raw: bytes) -> tuple[icalendar.Calendar, icalendar.Event]:
    cal = icalendar.Calendar.from_ical(raw)
    events = [c for c in cal.walk() if c.name == "VEVENT"]
    assert len(events) == 1
    return cal, events[0]


def test_ics_field_by_field_through_reschedule_and_cancel(env):
    db, mechanic, customer, session_id, start, _ = env
    status, raw, headers = _get(customer, session_id)
    assert status == 200 and headers["Content-Type"].startswith("text/calendar")
    cal, ev = _event(raw)
    assert str(cal["version"]) == "2.0" and str(cal["method"]) == "PUBLISH" and "Auto Doctor" in str(cal["prodid"])
    uid = str(ev["uid"])
    assert uid == f"session-{session_id}@autodoctor.app"
    assert int(ev["sequence"]) == 0
    assert ev.decoded("dtstart") == start and ev.decoded("dtstart").utcoffset() == dt.timedelta(0)
    assert ev.decoded("dtend") == start + dt.timedelta(minutes=5)
    assert b"DTSTART:" in raw and b"Z\r\n" in raw  # UTC form, no TZID
    assert str(ev["status"]) == "CONFIRMED"
    assert "Morgan Mech" in str(ev["summary"])
    assert str(ev["url"]) == f"https://app.autodoctor.test/sessions/{session_id}"
    [alarm] = [c for c in ev.walk() if c.name == "VALARM"]
    assert str(alarm["action"]) == "DISPLAY" and alarm.decoded("trigger") == dt.timedelta(minutes=-15)
    # the mechanic gets the same event (same UID), named for the customer
    status, raw_m, _ = _get(mechanic, session_id, method="POST")
    assert status == 200 and str(_event(raw_m)[1]["uid"]) == uid and "Casey Customer" in str(_event(raw_m)[1]["summary"])

    with db.as_user(customer):
        db.rpc("reschedule_session", p_session_id=session_id, p_new_start=start + dt.timedelta(hours=2))
    db.conn.commit()
    db.conn.execute("select 1")
    _, ev2 = _event(_get(customer, session_id)[1])
    assert str(ev2["uid"]) == uid and int(ev2["sequence"]) == 1
    assert ev2.decoded("dtstart") == start + dt.timedelta(hours=2)

    with db.as_user(mechanic):
        db.rpc("cancel_scheduled_session", p_session_id=session_id, p_reason="ill")
    db.conn.commit()
    db.conn.execute("select 1")
    cal3, ev3 = _event(_get(customer, session_id)[1])
    assert str(cal3["method"]) == "CANCEL" and str(ev3["status"]) == "CANCELLED"
    assert str(ev3["uid"]) == uid and int(ev3["sequence"]) == 2
    assert not [c for c in ev3.walk() if c.name == "VALARM"]


def test_calendar_refusals(env):
    db, _mechanic, customer, session_id, _start, _ = env
    stranger = make_customer(db)
    db.conn.commit()
    db.conn.execute("select 1")
    assert _get(stranger, session_id)[0] == 404
    assert _get(None, session_id)[0] == 401
    assert _get(customer, None)[0] == 400
    assert _get(customer, "not-a-uuid")[0] == 400
    assert _get(customer, str(uuid.uuid4()))[0] == 404
    assert _get(customer, session_id, method="PUT")[0] == 405


def test_confirmation_email_carries_the_ics(env):
    _db, _mechanic, _customer, session_id, start, mail_dir = env
    counts = worker.deliver(kinds=["email.send"])
    assert counts["sent"] >= 1
    found = []
    for path in mail_dir.glob("*.eml"):
        msg = email.message_from_bytes(path.read_bytes())
        for part in msg.walk():
            if part.get_content_type() == "text/calendar":
                found.append((msg["Subject"], part.get_payload(decode=True)))
    [(subject, ics)] = found
    assert "booked" in subject
    _, ev = _event(ics)
    assert str(ev["uid"]) == f"session-{session_id}@autodoctor.app" and ev.decoded("dtstart") == start


def test_mechanic_calendar_rpc(env):
    db, mechanic, customer, session_id, start, _ = env
    day_start = start.replace(hour=0)
    with db.as_user(mechanic):
        db.rpc("add_time_off", p_start=day_start + dt.timedelta(hours=20), p_end=day_start + dt.timedelta(hours=22),
               p_reason="gym")
        cal = db.rpc("mechanic_calendar", p_from=day_start, p_to=day_start + dt.timedelta(days=1))
    assert cal["timezone"] == "America/New_York"
    assert [s["session_id"] for s in cal["sessions"]] == [session_id]
    assert [t["reason"] for t in cal["time_off"]] == ["gym"]
    assert cal["availability"]  # 08:00-18:00 New York in UTC
    with db.as_user(customer):
        assert db.rpc_error("mechanic_calendar", p_from=day_start, p_to=day_start + dt.timedelta(days=1),
                            p_mechanic_id=mechanic) == "AD003"
