"""Resend's delivery events: verify the signed webhook (Svix), then store and apply each event once.

Resend signs its webhooks with Svix: headers `svix-id`, `svix-timestamp`, `svix-signature`, over
`<id>.<timestamp>.<raw body>` with the endpoint's secret (`whsec_…`, RESEND_WEBHOOK_SECRET). The
`svix` library verifies them (the HMAC, and a timestamp within five minutes of now: older ones are
replays). The rules live in SQL (supabase/functions_sql/journey/email_events.sql); docs/journey.md,
"Delivery events", has every decision.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import psycopg
from svix.webhooks import Webhook, WebhookVerificationError

from shared import db
from shared.config import get_settings
from shared.errors import AppError
from shared.logs import log

SVIX_HEADERS = ("svix-id", "svix-timestamp", "svix-signature")
MAX_HEADER = 4096


def verify(payload: bytes, headers: Mapping[str, str]) -> tuple[str, dict[str, Any]]:
    """(svix-id, event) of a correctly signed body; AppError otherwise.

    email_events_not_configured (503): RESEND_WEBHOOK_SECRET is unset (or not a Svix secret).
    invalid_signature (400): a header missing, malformed or too long, a stale timestamp, or a
    signature that does not match. invalid_input (400): signed, but not a JSON object.
    """
    secret = get_settings().resend_webhook_secret
    if not secret:
        raise AppError("email_events_not_configured", "RESEND_WEBHOOK_SECRET is not set")
    try:
        webhook = Webhook(secret)
    except Exception as exc:  # a secret that is not base64: the configuration is wrong, not the sender
        log("error", "RESEND_WEBHOOK_SECRET is not a valid signing secret", error=type(exc).__name__)
        raise AppError("email_events_not_configured", "RESEND_WEBHOOK_SECRET is not a valid signing secret") from None
    signed: dict[str, str] = {}
    for name in SVIX_HEADERS:
        value = headers.get(name)
        if not value:
            raise AppError("invalid_signature", f"the {name} header is missing")
        if len(value) > MAX_HEADER:
            raise AppError("invalid_signature", f"the {name} header is malformed")
        signed[name] = value
    try:
        webhook.verify(payload, signed)
    except (WebhookVerificationError, ValueError, TypeError) as exc:
        # ValueError also covers a body that is not UTF-8 and a malformed signature list
        raise AppError("invalid_signature", "the Svix signature does not match this payload") from exc
    try:
        event = json.loads(payload)
    except ValueError:
        raise AppError("invalid_input", "the event body is not JSON") from None
    if not isinstance(event, dict):
        raise AppError("invalid_input", "the event body is not a JSON object")
    return signed["svix-id"], event


def handle_webhook(payload: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
    """Verify, then store and apply the event once: {event_id, type, outcome} (outcome `duplicate`
    for an event already processed). A failure rolls everything back; Resend retries it."""
    event_id, _ = verify(payload, headers)
    text = payload.decode("utf-8")  # verified: UTF-8 JSON, stored as received
    try:
        with db.transaction() as conn:
            row = conn.execute("select private.handle_resend_event(%s, %s::jsonb) as r", (event_id, text)).fetchone()
    except psycopg.DataError as exc:  # e.g. a \u0000 in a string: not storable as jsonb
        raise AppError("invalid_input", "the event body cannot be stored as JSON") from exc
    assert row is not None
    result: dict[str, Any] = row["r"]
    return result
