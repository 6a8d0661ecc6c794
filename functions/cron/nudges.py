"""cron_nudges: a mechanic who accepted but has not started after 3 min is nudged (mechanic:<id>
and email); after 5 min support is alerted (admin:queue and SUPPORT_EMAIL)."""

from __future__ import annotations

from typing import Any

from shared import jobs
from shared.http import Ctx, endpoint


@endpoint(methods=("POST",), auth="cron")
def cron_nudges(ctx: Ctx) -> dict[str, Any]:
    return jobs.run("cron_nudges", jobs.sql_job("select private.send_nudges(now()) as r"))
