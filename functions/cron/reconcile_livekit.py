"""cron_reconcile_livekit: compares waiting and live sessions with LiveKit's rooms and repairs
what dropped webhook events left wrong."""

from __future__ import annotations

from typing import Any

from shared import jobs, rooms
from shared.http import Ctx, endpoint


@endpoint(methods=("POST",), auth="cron")
def cron_reconcile_livekit(ctx: Ctx) -> dict[str, Any]:
    return jobs.run("cron_reconcile_livekit", lambda: rooms.reconcile())
