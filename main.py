"""Every function target for functions-framework (`functions-framework --target NAME --source main.py`)."""

from __future__ import annotations

import functions_framework
import flask

from functions.health import health as _health

# Targets served by `autodoctor serve` under /<target>; each is deployed as its own function.
TARGETS = ["health"]


@functions_framework.http
def health(request: flask.Request) -> flask.Response:
    return _health(request)
