"""cron_payments: kept for existing schedules — the job worker over the Stripe kinds only (account
refetches, refunds, transfers, transfer reversals; cron_jobs runs every kind; docs/jobs.md)."""

from __future__ import annotations

from typing import Any

import pydantic

from shared import jobs, payments
from shared.http import Ctx, endpoint


class PaymentsBody(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    limit: int = pydantic.Field(default=50, ge=1, le=500)


@endpoint(methods=("POST",), auth="cron", body=PaymentsBody)
def cron_payments(ctx: Ctx) -> dict[str, Any]:
    return jobs.run("cron_payments", lambda: payments.process_payouts(limit=ctx.body.limit))
