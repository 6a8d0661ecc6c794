"""Every function target for functions-framework (`functions-framework --target NAME --source main.py`)."""

from __future__ import annotations

import flask
import functions_framework

from functions.checkout import create_checkout as _create_checkout
from functions.connect import connect_onboarding as _connect_onboarding
from functions.cron.jobs import cron_jobs as _cron_jobs
from functions.cron.reconcile_livekit import cron_reconcile_livekit as _cron_reconcile_livekit
from functions.health import health as _health
from functions.livekit_token import livekit_token as _livekit_token
from functions.session_calendar import session_calendar as _session_calendar
from functions.webhooks.livekit import livekit_webhook as _livekit_webhook
from functions.webhooks.resend import resend_webhook as _resend_webhook
from functions.webhooks.stripe import stripe_webhook as _stripe_webhook

# Targets served by `autodoctor serve` under /<target>; each is deployed as its own function.
TARGETS = [
    "health",
    "livekit_token",
    "livekit_webhook",
    "cron_reconcile_livekit",
    "cron_jobs",
    "create_checkout",
    "stripe_webhook",
    "connect_onboarding",
    "session_calendar",
    "resend_webhook",
]


@functions_framework.http
def health(request: flask.Request) -> flask.Response:
    return _health(request)


@functions_framework.http
def livekit_token(request: flask.Request) -> flask.Response:
    return _livekit_token(request)


@functions_framework.http
def livekit_webhook(request: flask.Request) -> flask.Response:
    return _livekit_webhook(request)


@functions_framework.http
def cron_reconcile_livekit(request: flask.Request) -> flask.Response:
    return _cron_reconcile_livekit(request)


@functions_framework.http
def cron_jobs(request: flask.Request) -> flask.Response:
    return _cron_jobs(request)


@functions_framework.http
def create_checkout(request: flask.Request) -> flask.Response:
    return _create_checkout(request)


@functions_framework.http
def stripe_webhook(request: flask.Request) -> flask.Response:
    return _stripe_webhook(request)


@functions_framework.http
def connect_onboarding(request: flask.Request) -> flask.Response:
    return _connect_onboarding(request)


@functions_framework.http
def session_calendar(request: flask.Request) -> flask.Response:
    return _session_calendar(request)


@functions_framework.http
def resend_webhook(request: flask.Request) -> flask.Response:
    return _resend_webhook(request)
