"""GET /health: the function host is up and the database answers."""

from __future__ import annotations

import flask

from shared import db

# Seconds to wait for a pooled connection: a health probe answers 503 promptly when the database is
# unreachable instead of waiting for the pool's default 30 s.
TIMEOUT = 3.0


def _json(http_status: int, /, **payload: object) -> flask.Response:
    response = flask.jsonify(payload)
    response.status_code = http_status
    return response


def health(request: flask.Request) -> flask.Response:
    if request.method not in ("GET", "HEAD"):
        return _json(405, code="AD001", error="invalid_input", message="method not allowed: use GET")
    try:
        with db.pool().connection(timeout=TIMEOUT) as conn:
            row = db.one(conn, "select count(*) as n from autodoctor_meta.schema_migrations")
    except Exception:  # any database failure means "not healthy"
        return _json(503, status="unavailable", database=False)
    return _json(200, status="ok", database=True, migrations=row["n"])
