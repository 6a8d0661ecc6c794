"""Milestone emails: Jinja2 templates (HTML autoescaped, plain text) rendered from
data, sent through Resend's HTTP API or, locally, written as .eml files a developer can open."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import email.message
import email.utils
import hashlib
import json
import urllib.error
import urllib.request
import zoneinfo
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from psycopg.types.json import Jsonb

from shared import PACKAGE_DIR, db
from shared.config import get_settings
from shared.email_registry import EMAIL_TEMPLATES
from shared.errors import AppError
from shared.logs import log
from shared.worker import JobFailed, JobSkipped
from shared.worker import outcomes as worker_outcomes

TEMPLATES = PACKAGE_DIR / "email_templates"
SUBJECTS = {
    "booking_confirmed": "Your {{ session.plan }} is booked",
    "mechanic_assigned": "{{ session.mechanic_name }} is ready for your session",
    "session_starting": "Your session starts in 5 minutes",
    "session_ended": "How was your session with {{ session.mechanic_name }}?",
    # reviews (docs/trust.md)
    "review_prompt": "Rate your session with {{ session.mechanic_name }}",
    "summary_delivered": "Your session summary from {{ session.mechanic_name }}",
    "mechanic_nudge": "A customer is waiting for you",
    "support_alert": "Alert: session {{ session_id }} accepted but not started",
    # scheduling (docs/scheduling.md)
    "session_reminder": "Reminder: your {{ session.plan }} starts in {{ lead }}",
    "booking_rescheduled": "Your {{ session.plan }} has a new time",
    "booking_cancelled": "Your {{ session.plan }} was cancelled",
    "booking_slot_lost": "Your booking could not be kept: refunded in full",
    # workshops (docs/workshops.md)
    "workshop_invitation": "{{ inviter_name }} invites you to join {{ workshop_name }} on Auto Doctor",
    # workshop appointments (docs/workshops.md)
    "appointment_requested": "New appointment request: {{ appointment.service_type }}",
    "appointment_confirmed": "Your appointment at {{ appointment.workshop_name }} is confirmed",
    "appointment_proposed": "{{ appointment.workshop_name }} proposes another time",
    "appointment_declined": "{{ appointment.workshop_name }} cannot take your appointment",
    "appointment_cancelled": "Your appointment at {{ appointment.workshop_name }} was cancelled",
    "appointment_reminder": "Reminder: your appointment at {{ appointment.workshop_name }} starts in {{ lead }}",
    # a message at every turn (docs/journey.md)
    "request_unattended": "Your request is with our support team",
    "request_expired": "Your request expired{% if refunded_cents %}: refunded{% endif %}",
    "request_released": "Your request is back in the queue",
    "request_offered": "Your request was offered to {{ offered_mechanic_name }}",
    "session_cancelled": "Your {{ session.plan }} was cancelled",
    "refund_succeeded": "Refunded: {{ '%.2f' | format(amount_cents / 100) }} {{ currency | upper }}",
    # vetting (docs/operations.md)
    "vetting_decision": (
        "{% if decision == 'approved' %}You are approved as a mechanic"
        "{% elif decision == 'rejected' %}Your mechanic application was not approved"
        "{% else %}Your mechanic application needs more information{% endif %}"
    ),
}
# Booked-session emails carry the session's calendar event (.ics, shared/calendar.py).
CALENDAR_TEMPLATES = {"booking_confirmed", "booking_rescheduled", "booking_cancelled"}
# Appointment emails carry the appointment's calendar event when it has a time.
APPOINTMENT_CALENDAR_TEMPLATES = {"appointment_confirmed", "appointment_cancelled", "appointment_reminder"}
# Not about a purchase the user made: sent only to users who keep marketing_emails on.
NON_TRANSACTIONAL = {name for name, t in EMAIL_TEMPLATES.items() if not t.transactional}


def _localtime(value: str | None, zone: str = "UTC") -> str:
    if not value:
        return ""
    when = dt.datetime.fromisoformat(value)
    try:
        local = when.astimezone(zoneinfo.ZoneInfo(zone))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        local = when.astimezone(dt.UTC)
    return local.strftime("%a %d %b %Y, %H:%M %Z")


# .html templates are autoescaped; .txt templates and subjects are plain text.
_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False),
    undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
)
_ENV.filters["localtime"] = _localtime


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str | None
    text: str
    attachments: tuple[tuple[str, str, bytes], ...] = ()  # (file name, MIME type, content)


def render(template: str, context: dict[str, Any]) -> Rendered:
    if template not in SUBJECTS:
        raise AppError("invalid_input", f"unknown email template {template!r}")
    context = {"app_url": get_settings().app_url, "marketing": template in NON_TRANSACTIONAL, **context}
    subject = _ENV.from_string(SUBJECTS[template]).render(context).strip()
    context["subject"] = subject
    html = None
    if (TEMPLATES / f"{template}.html").exists():
        html = _ENV.get_template(f"{template}.html").render(context)
    text = _ENV.get_template(f"{template}.txt").render(context)
    return Rendered(subject=subject, html=html, text=text)


class EmailAlreadyAccepted(Exception):
    """Resend answered 409 `invalid_idempotent_request`: it already accepted an email under this
    idempotency key (an earlier attempt of the same job whose outcome was lost) with another body —
    what the email says changed between the attempts. The email went out; no retry can change that."""


def _resend_error_name(answer: bytes) -> str | None:
    try:
        name = json.loads(answer).get("name")
    except (ValueError, AttributeError):
        return None
    return name if isinstance(name, str) else None


def _send_resend(to: str, message: Rendered, key: str) -> str | None:
    """Resend's id of the email it accepted (delivery events name it), or None if it gave none.
    Resend's two idempotency conflicts (409): `invalid_idempotent_request` (the key was already used
    with another body) raises EmailAlreadyAccepted; `concurrent_idempotent_requests` (a request
    with the key is still in progress) fails this attempt, to be tried again later."""
    settings = get_settings()
    body: dict[str, Any] = {"from": settings.email_from, "to": [to], "subject": message.subject, "text": message.text}
    if message.html:
        body["html"] = message.html
    if message.attachments:
        body["attachments"] = [{"filename": name, "content": base64.b64encode(data).decode(), "content_type": mime}
                               for name, mime, data in message.attachments]
    request = urllib.request.Request(  # noqa: S310 - the base URL comes from configuration
        settings.resend_api_base.rstrip("/") + "/emails", data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {settings.resend_api_key}", "Content-Type": "application/json",
                 "Idempotency-Key": resend_idempotency_key(key)},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            answer = response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read(4096)
        name = _resend_error_name(detail) if exc.code == 409 else None
        if name == "invalid_idempotent_request":
            raise EmailAlreadyAccepted(f"Resend answered 409 {name}: {detail[:300]!r}") from None
        if name == "concurrent_idempotent_requests":
            raise JobFailed("Resend answered 409 concurrent_idempotent_requests: an attempt with this idempotency"
                            " key is still in progress; tried again later") from None
        raise RuntimeError(f"Resend answered {exc.code}: {detail[:300]!r}") from None
    try:
        resend_id = json.loads(answer).get("id")
    except (ValueError, AttributeError):
        resend_id = None
    if not isinstance(resend_id, str) or not 1 <= len(resend_id) <= 200:
        log("warning", "Resend accepted an email without an id: its delivery events cannot be matched")
        return None
    return resend_id


def resend_idempotency_key(key: str) -> str:
    """The job's dedupe key itself (a retry is the same email); Resend accepts at most 256 characters,
    so a longer key is replaced by its SHA-256."""
    return key if len(key) <= 256 else hashlib.sha256(key.encode()).hexdigest()


def _write_file(to: str, message: Rendered, key: str, directory: Path) -> Path:
    msg = email.message.EmailMessage()
    msg["From"] = get_settings().email_from
    msg["To"] = to
    msg["Subject"] = message.subject
    msg["Date"] = email.utils.formatdate(localtime=False)
    msg["Message-ID"] = f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@autodoctor.local>"
    msg.set_content(message.text)
    if message.html:
        msg.add_alternative(message.html, subtype="html")
    for name, mime, data in message.attachments:
        maintype, subtype = mime.split("/", 1)
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.eml"  # same key → same file
    path.write_bytes(bytes(msg))
    return path


def _files_dir() -> Path | None:
    settings = get_settings()
    return settings.email_files_dir or (settings.home / "mail" if settings.local_dev else None)


def email_ready() -> bool:
    """A delivery is configured (Resend, or files locally): email jobs may run; else they wait."""
    return bool(get_settings().resend_api_key or _files_dir())


def deliver(to: str, message: Rendered, key: str) -> str | None:
    """Sends the email; Resend's id of it (None for a file, which has no delivery events)."""
    if get_settings().resend_api_key:
        return _send_resend(to, message, key)
    directory = _files_dir()
    if directory is None:
        raise AppError("email_not_configured", "set RESEND_API_KEY (or EMAIL_FILES_DIR for local files)")
    _write_file(to, message, key, directory)
    return None


def _stamp(payload: dict[str, Any]) -> dt.datetime | None:
    """The DTSTAMP of an email's .ics: when its job was queued, the same on every attempt (None
    outside the worker: now)."""
    created = payload.get("_created_at")
    if isinstance(created, str):
        created = dt.datetime.fromisoformat(created)
    return created if isinstance(created, dt.datetime) else None


def _deliver_and_record(to: str, message: Rendered, payload: dict[str, Any], template: str,
                        already_sent: str) -> str | None:
    """Sends and records the email; `already_sent` (the outcome to count) when Resend says an earlier
    attempt under this key was accepted with another body: the job is done, not retried."""
    key = payload["_dedupe_key"]
    try:
        resend_id = deliver(to, message, key)
    except EmailAlreadyAccepted as exc:
        log("warning", "email already accepted by Resend under this key with another body: not sent again,"
            " and not recorded (Resend gives no id), so its delivery events cannot be matched",
            template=template, dedupe_key=key, attempt=payload.get("_attempt"), error=str(exc))
        return already_sent
    _record_sent(resend_id, key, template, payload.get("user_id"), payload.get("session_id"), to)
    return None


def _record_sent(resend_id: str | None, key: str, template: str, user_id: str | None, session_id: str | None,
                 to: str) -> None:
    """The sent email, by Resend's id, so that its delivery events find it (journey/email_events.sql).
    A failure here fails the job: its retry is the same email (same idempotency key, same id)."""
    if resend_id is None:
        return
    with db.transaction() as conn:
        conn.execute("select private.record_email_sent(%s, %s, %s, %s, %s, %s)",
                     (resend_id, key, template, user_id, session_id, to))


def suppression_of(address: str) -> dict[str, Any] | None:
    """The active suppression of an address (a hard bounce or a complaint), or None."""
    with db.transaction() as conn:
        row = db.one(conn, "select private.email_suppression(%s) as s", (address,))
    suppression: dict[str, Any] | None = row["s"]
    return suppression


@worker_outcomes(retry="emails_retried", dead="emails_dead", ready=email_ready)
def send_outbox_email(payload: dict[str, Any]) -> str | None:
    """Job handler for `email.send`: {template, user_id, session_id, data, _dedupe_key}. Skipped, not
    sent: a review prompt whose review was written by now (or whose window closed), and a
    mechanic_assigned notice whose mechanic no longer holds the session. Every attempt renders the
    same bytes while the data it reads is unchanged (the .ics is stamped with the job's creation
    time); `emails_already_sent` when Resend had accepted an earlier attempt with another body."""
    with db.transaction() as conn:
        if payload["template"] == "review_prompt":
            reason = db.one(conn, "select private.review_prompt_skip_reason(%s, coalesce(%s::timestamptz, now())) as r",
                            (payload.get("session_id"), payload.get("_now")))["r"]
            if reason is not None:
                raise JobSkipped(reason)
        if payload["template"] == "mechanic_assigned":
            # sent only if that mechanic still holds the session (an accept-and-release tells nobody)
            due = db.one(conn, "select private.email_still_due(%s, %s, %s) as due",
                         (payload["template"], payload.get("session_id"), Jsonb(payload.get("data") or {})))["due"]
            if not due:
                raise JobSkipped("mechanic_assigned: the mechanic no longer holds the session")
        if payload["template"] == "appointment_reminder":
            # sent only while the appointment is confirmed at the time the reminder was queued for
            due = db.one(conn, "select private.appointment_email_due(%s, %s) as due",
                         (payload["template"], Jsonb(payload.get("data") or {})))["due"]
            if not due:
                raise JobSkipped("appointment_reminder: the appointment is no longer confirmed at that time")
        if payload.get("to_email"):
            # an address that may have no account yet (a workshop invitation)
            ctx = {"to": payload["to_email"], "name": payload["to_email"].split("@")[0], "marketing_emails": True,
                   "timezone": "UTC", "session": None}
        else:
            ctx = db.one(conn, "select private.email_context(%s, %s) as c",
                         (payload["user_id"], payload.get("session_id")))["c"]
    if ctx is None or not ctx.get("to"):
        log("info", "email skipped: no recipient", template=payload["template"])
        return None
    if payload["template"] in NON_TRANSACTIONAL and not ctx["marketing_emails"]:
        log("info", "email skipped: opted out", template=payload["template"])
        return None
    if payload["template"] in NON_TRANSACTIONAL:
        # the address hard-bounced or complained: no marketing email (transactional mail still goes)
        suppression = suppression_of(ctx["to"])
        if suppression is not None:
            raise JobSkipped(f"{payload['template']}: the address is suppressed ({suppression['reason']})")
    message = render(payload["template"], {**ctx, **payload.get("data", {})})
    session = ctx.get("session") or {}
    if payload["template"] in CALENDAR_TEMPLATES and session.get("scheduled_for"):
        from shared import calendar

        ics = calendar.session_ics(session["id"], payload["user_id"], stamp=_stamp(payload))
        message = dataclasses.replace(message, attachments=(("session.ics", "text/calendar", ics),))
    appointment = (payload.get("data") or {}).get("appointment") or {}
    if payload["template"] in APPOINTMENT_CALENDAR_TEMPLATES and appointment.get("starts_at"):
        from shared import calendar

        ics = calendar.build_appointment_ics(appointment, stamp=_stamp(payload))
        message = dataclasses.replace(message, attachments=(("appointment.ics", "text/calendar", ics),))
    return _deliver_and_record(ctx["to"], message, payload, payload["template"], "emails_already_sent")


@worker_outcomes(retry="alerts_retried", dead="alerts_dead", ready=email_ready)
def send_support_alert(payload: dict[str, Any]) -> str | None:
    """Job handler for `email.support_alert` (SUPPORT_EMAIL; the admin queue also gets it live)."""
    to = get_settings().support_email
    if not to:
        log("warning", "support alert not emailed: SUPPORT_EMAIL is not set", session_id=payload.get("session_id"))
        return None
    return _deliver_and_record(to, render("support_alert", payload), {**payload, "user_id": None}, "support_alert",
                               "alerts_already_sent")
