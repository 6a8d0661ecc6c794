"""cron_sweep_requests: pending → unattended (5 min), pending/unattended → expired (120 min, refunded),
accepted but the customer never joined → cancelled (30 min), orphaned waiting → cancelled (60 min)."""

from __future__ import annotations

from typing import Any

from shared import jobs
from shared.http import Ctx, endpoint


@endpoint(methods=("POST",), auth="cron")
def cron_sweep_requests(ctx: Ctx) -> dict[str, Any]:
    return jobs.run("cron_sweep_requests", jobs.sql_job("select private.sweep_requests(now()) as r"))
