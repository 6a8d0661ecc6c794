"""GET /health: the function host is up and the database answers."""

from __future__ import annotations

import flask

from shared import db

# Seconds to wait for a pooled connection: a health probe answers 503 promptly when the database is
# unreachable instead of waiting for the pool's default 30 s.
TIMEOUT = 3.0


def health(request: flask.Request) -> flask.Response:
    if request.method not in ("GET", "HEAD"):
        return flask.jsonify(code="AD001", error="invalid_input", message="method not allowed: use GET"), 405
    try:
        with db.pool().connection(timeout=TIMEOUT) as conn:
            row = conn.execute("select count(*) as n from autodoctor_meta.schema_migrations").fetchone()
    except Exception:  # any database failure means "not healthy"
        return flask.jsonify(status="unavailable", database=False), 503
    return flask.jsonify(status="ok", database=True, migrations=row["n"])
