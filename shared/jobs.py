"""The Python cron jobs (functions/cron/): each run is recorded in private.cron_runs (start, end, result or
error). The jobs that are SQL record their runs themselves (private.run_job, docs/jobs.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shared import db


def run(job: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    with db.transaction() as conn:
        run_id = db.one(conn, "select private.cron_run_start(%s) as id", (job,))["id"]
    try:
        result = fn()
    except Exception as exc:
        with db.transaction() as conn:
            conn.execute("select private.cron_run_finish(%s, false, null, %s)", (run_id, repr(exc)))
        raise
    with db.transaction() as conn:
        conn.execute("select private.cron_run_finish(%s, true, %s::jsonb, null)", (run_id, _json(result)))
    return result


def _json(value: Any) -> str:
    import json

    return json.dumps(value, default=str)
