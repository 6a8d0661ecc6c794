"""cron_outbox: delivers due outbox rows (retries with backoff; dead letters after the maximum)."""

from __future__ import annotations

from typing import Any

import pydantic

from shared import jobs, outbox
from shared.http import Ctx, endpoint


class OutboxBody(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    limit: int = pydantic.Field(default=50, ge=1, le=1000)


@endpoint(methods=("POST",), auth="cron", body=OutboxBody)
def cron_outbox(ctx: Ctx) -> dict[str, Any]:
    return jobs.run("cron_outbox", lambda: outbox.deliver(limit=ctx.body.limit))
