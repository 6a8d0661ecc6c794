"""cron_jobs: the job worker — every kind of the queue (Stripe calls, emails, room closes), with
retries, backoff and dead letters per kind (docs/jobs.md)."""

from __future__ import annotations

from typing import Any

import pydantic

from shared import jobs, worker
from shared.http import Ctx, endpoint


class JobsBody(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    limit: int = pydantic.Field(default=50, ge=1, le=500)  # per kind


@endpoint(methods=("POST",), auth="cron", body=JobsBody)
def cron_jobs(ctx: Ctx) -> dict[str, Any]:
    return jobs.run("cron_jobs", lambda: worker.run_all(limit=ctx.body.limit))
