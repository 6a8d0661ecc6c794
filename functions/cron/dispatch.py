"""cron_dispatch: routes every request that is due (Cloud Scheduler, every minute)."""

from __future__ import annotations

from typing import Any

import pydantic

from shared import jobs, matching
from shared.http import Ctx, endpoint


class DispatchBody(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    limit: int = pydantic.Field(default=200, ge=1, le=10000)


@endpoint(methods=("POST",), auth="cron", body=DispatchBody)
def cron_dispatch(ctx: Ctx) -> dict[str, Any]:
    return jobs.run("cron_dispatch", lambda: matching.dispatch(limit=ctx.body.limit))
