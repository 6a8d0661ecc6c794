"""Stripe for our functions: one `stripe.StripeClient`, created lazily from the environment and
injectable for tests, deterministic idempotency keys, and webhook verification.

- `STRIPE_SECRET_KEY` (required for any API call), `STRIPE_API_BASE` (tests point it at a local
  stub), two network retries (StripeClient makes none unless told).
- Webhooks are verified on the raw body with `stripe.Webhook.construct_event` against
  `STRIPE_WEBHOOK_SECRET` or `STRIPE_CONNECT_WEBHOOK_SECRET` (Connect events come to an endpoint
  with its own secret); without either secret every event is refused (fail closed).
"""

from __future__ import annotations

import json
import threading
from typing import Any

import stripe

from shared.config import get_settings
from shared.errors import AppError

MAX_NETWORK_RETRIES = 2
SIGNATURE_TOLERANCE = 300  # seconds: Stripe's default; older signatures are replays

_client: stripe.StripeClient | None = None
_lock = threading.Lock()


def make_client(api_key: str, api_base: str | None = None,
                max_network_retries: int = MAX_NETWORK_RETRIES) -> stripe.StripeClient:
    kwargs: dict[str, Any] = {"max_network_retries": max_network_retries}
    if api_base:
        kwargs["base_addresses"] = {"api": api_base.rstrip("/")}
    return stripe.StripeClient(api_key, **kwargs)


def get_client() -> stripe.StripeClient:
    """The process's client (created on first use); payments_not_configured without a key."""
    global _client
    with _lock:
        if _client is None:
            settings = get_settings()
            if not settings.stripe_secret_key:
                raise AppError("payments_not_configured", "STRIPE_SECRET_KEY is not set")
            _client = make_client(settings.stripe_secret_key, settings.stripe_api_base)
        return _client


def set_client(client: stripe.StripeClient | None) -> None:
    """Inject a client (tests), or None to build the next one from the environment again."""
    global _client
    with _lock:
        _client = client


def idempotency_key(kind: str, *parts: object) -> str:
    """`kind:part:part` from our own ids, e.g. transfer:<session_id>:<payee_id>."""
    return ":".join([kind, *(str(p) for p in parts)])


def options(key: str) -> stripe.RequestOptions:
    return {"idempotency_key": key}


def webhook_secrets() -> list[str]:
    settings = get_settings()
    return [s for s in (settings.stripe_webhook_secret, settings.stripe_connect_webhook_secret) if s]


def verify_event(payload: bytes, signature: str | None) -> dict[str, Any]:
    """The event of a signed webhook body, as a plain dict; AppError otherwise.

    invalid_signature (400): no header, a malformed one, a stale timestamp, or no secret matches.
    payments_not_configured (503): neither webhook secret is set.
    """
    secrets = webhook_secrets()
    if not secrets:
        raise AppError("payments_not_configured", "no Stripe webhook secret is configured")
    if not signature:
        raise AppError("invalid_signature", "the Stripe-Signature header is missing")
    if len(signature) > 4096:
        raise AppError("invalid_signature", "the Stripe-Signature header is malformed")
    for secret in secrets:
        try:
            stripe.Webhook.construct_event(payload, signature, secret, tolerance=SIGNATURE_TOLERANCE)
        except stripe.SignatureVerificationError:
            continue
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            # construct_event verifies first, then builds the event: the body is not an event
            # (not UTF-8, not JSON, or not an object)
            raise AppError("invalid_input", "the event body is not a Stripe event") from exc
        event = json.loads(payload)
        if not isinstance(event, dict):
            raise AppError("invalid_input", "the event body is not a JSON object")
        return event
    raise AppError("invalid_signature", "the Stripe-Signature header does not match this payload")


def error_text(exc: BaseException) -> str:
    """A short description of a failed Stripe call for our records (never contains the key)."""
    if isinstance(exc, stripe.StripeError):
        parts = [type(exc).__name__]
        if exc.http_status:
            parts.append(str(exc.http_status))
        if exc.code:
            parts.append(str(exc.code))
        message = exc.user_message or str(exc) or ""
        return (" ".join(parts) + (f": {message}" if message else ""))[:2000]
    return f"{type(exc).__name__}: {exc}"[:2000]
