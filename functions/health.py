"""GET /health: the function host is up and the database answers."""

from __future__ import annotations

from typing import Any

from shared import db
from shared.errors import BY_NAME, database_unavailable
from shared.http import Ctx, endpoint

# Seconds to wait for a pooled connection: a health probe answers 503 promptly when the database is
# unreachable instead of waiting (the pool's own timeout for the other functions).
TIMEOUT = db.CONNECT_TIMEOUT


@endpoint(methods=("GET", "HEAD"), auth="none", max_body=1024)
def health(ctx: Ctx) -> tuple[dict[str, Any], int]:
    try:
        with db.connection(timeout=TIMEOUT) as conn:
            row = db.one(conn, "select count(*) as n from autodoctor_meta.schema_migrations")
    except Exception as exc:  # any database failure means "not healthy"
        code = BY_NAME["database_unavailable"]
        message = ("the database cannot be reached" if database_unavailable(exc)
                   else "the database answers but its schema is not migrated")
        return {"status": "unavailable", "database": False, "code": code.sqlstate, "error": code.name,
                "message": message}, code.http_status
    return {"status": "ok", "database": True, "migrations": row["n"]}, 200
