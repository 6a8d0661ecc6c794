"""Every function target for functions-framework (`functions-framework --target NAME --source main.py`)."""

from __future__ import annotations

import flask
import functions_framework

from functions.cron.dispatch import cron_dispatch as _cron_dispatch
from functions.health import health as _health
from functions.route_request import route_request as _route_request

# Targets served by `autodoctor serve` under /<target>; each is deployed as its own function.
TARGETS = [
    "health",
    "route_request",
    "cron_dispatch",
]


@functions_framework.http
def health(request: flask.Request) -> flask.Response:
    return _health(request)


@functions_framework.http
def route_request(request: flask.Request) -> flask.Response:
    return _route_request(request)


@functions_framework.http
def cron_dispatch(request: flask.Request) -> flask.Response:
    return _cron_dispatch(request)
