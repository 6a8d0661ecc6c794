"""Calendar events (.ics) for booked sessions, built with the `icalendar` library.

One event per session: a stable UID (the session id), SEQUENCE from sessions.calendar_sequence
(+1 on every reschedule and on cancellation), DTSTART/DTEND in UTC, a 15-minute display alarm.
A cancelled session gives METHOD:CANCEL with STATUS:CANCELLED, so calendar apps remove it.

DTSTAMP is when the calendar object was made: `stamp` when given, else now. An email passes its
job's creation time, so every attempt of one email carries the same bytes (Resend refuses a
retry under the same idempotency key with a different body); a calendar app orders versions by
SEQUENCE first, which every reschedule and cancellation raises, and DTSTAMP only breaks ties.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import icalendar

from shared import db
from shared.config import get_settings
from shared.errors import AppError

PRODID = "-//Auto Doctor//Scheduling//EN"
UID_DOMAIN = "autodoctor.app"


def _when(value: Any) -> dt.datetime:
    when = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    return when.astimezone(dt.UTC)


def _dtstamp(stamp: dt.datetime | None) -> dt.datetime:
    return (stamp or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(microsecond=0)


def build_ics(event: dict[str, Any], *, stamp: dt.datetime | None = None) -> bytes:
    """The .ics of one session from private.session_calendar_data's answer; DTSTAMP `stamp` (now
    when None)."""
    cancelled = event["status"] == "cancelled"
    app_url = get_settings().app_url.rstrip("/")
    cal = icalendar.Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "CANCEL" if cancelled else "PUBLISH")
    ev = icalendar.Event()
    ev.add("uid", f"session-{event['session_id']}@{UID_DOMAIN}")
    ev.add("sequence", int(event["sequence"]))
    ev.add("dtstamp", _dtstamp(stamp))
    ev.add("dtstart", _when(event["scheduled_for"]))
    ev.add("dtend", _when(event["ends_at"]))
    counterpart = event["mechanic_name"] if event.get("role") == "customer" else event.get("customer_name")
    ev.add("summary", f"Auto Doctor: {event['plan']}" + (f" with {counterpart}" if counterpart else ""))
    ev.add("description", f"{event['plan']} ({event['session_type']}). Join: {app_url}/sessions/{event['session_id']}")
    ev.add("location", f"{app_url}/sessions/{event['session_id']}")
    ev.add("url", f"{app_url}/sessions/{event['session_id']}")
    ev.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    if not cancelled:
        alarm = icalendar.Alarm()
        alarm.add("action", "DISPLAY")
        alarm.add("description", "Your Auto Doctor session starts in 15 minutes")
        alarm.add("trigger", dt.timedelta(minutes=-15))
        ev.add_component(alarm)
    cal.add_component(ev)
    ics: bytes = cal.to_ical()
    return ics


def build_appointment_ics(appointment: dict[str, Any], *, stamp: dt.datetime | None = None) -> bytes:
    """The .ics of a workshop appointment from its email data (private.appointment_email_data):
    UID from the appointment id, SEQUENCE workshop_appointments.calendar_sequence, the workshop's
    address as LOCATION; a cancelled appointment gives METHOD:CANCEL; DTSTAMP `stamp` (now when None)."""
    cancelled = appointment["status"] == "cancelled"
    app_url = get_settings().app_url.rstrip("/")
    cal = icalendar.Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "CANCEL" if cancelled else "PUBLISH")
    ev = icalendar.Event()
    ev.add("uid", f"appointment-{appointment['id']}@{UID_DOMAIN}")
    ev.add("sequence", int(appointment.get("sequence") or 0))
    ev.add("dtstamp", _dtstamp(stamp))
    ev.add("dtstart", _when(appointment["starts_at"]))
    ev.add("dtend", _when(appointment["ends_at"]))
    ev.add("summary", f"{appointment['service_type']} at {appointment['workshop_name']}")
    ev.add("description", f"Workshop appointment: {app_url}/appointments/{appointment['id']}")
    ev.add("location", appointment.get("workshop_address") or appointment["workshop_name"])
    ev.add("url", f"{app_url}/appointments/{appointment['id']}")
    ev.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    if not cancelled:
        alarm = icalendar.Alarm()
        alarm.add("action", "DISPLAY")
        alarm.add("description", "Your workshop appointment starts in one hour")
        alarm.add("trigger", dt.timedelta(hours=-1))
        ev.add_component(alarm)
    cal.add_component(ev)
    ics: bytes = cal.to_ical()
    return ics


def session_event(session_id: str, user_id: str | None) -> dict[str, Any]:
    """The calendar data of a booked session the user takes part in (not_found otherwise)."""
    with db.transaction() as conn:
        row = conn.execute("select private.session_calendar_data(%s, %s) as e", (session_id, user_id)).fetchone()
    if row is None or row["e"] is None:
        raise AppError("not_found", "no such booked session")
    event: dict[str, Any] = row["e"]
    return event


def session_ics(session_id: str, user_id: str, *, stamp: dt.datetime | None = None) -> bytes:
    return build_ics(session_event(session_id, user_id), stamp=stamp)
