"""cron_outbox: kept for existing schedules — the job worker over the email and room kinds only
(cron_jobs runs every kind; docs/jobs.md)."""

from __future__ import annotations

from typing import Any

import pydantic

from shared import jobs, worker
from shared.http import Ctx, endpoint


class OutboxBody(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    limit: int = pydantic.Field(default=50, ge=1, le=1000)


@endpoint(methods=("POST",), auth="cron", body=OutboxBody)
def cron_outbox(ctx: Ctx) -> dict[str, Any]:
    return jobs.run("cron_outbox", lambda: worker.deliver(limit=ctx.body.limit, kinds=list(worker.OUTBOX_KINDS)))
