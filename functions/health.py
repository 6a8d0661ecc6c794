"""GET /health: the function host is up and the database answers."""

from __future__ import annotations

import flask

from shared import db


def health(request: flask.Request) -> flask.Response:
    if request.method not in ("GET", "HEAD"):
        return flask.jsonify(code="AD001", error="method_not_allowed", message="use GET"), 405
    try:
        with db.transaction() as conn:
            row = conn.execute(
                "select count(*) as n from autodoctor_meta.schema_migrations"
            ).fetchone()
    except Exception:  # any database failure means "not healthy"
        return flask.jsonify(status="unavailable", database=False), 503
    return flask.jsonify(status="ok", database=True, migrations=row["n"])
