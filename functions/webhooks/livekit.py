"""livekit_webhook: LiveKit's signed events (participant joined/left, room finished) drive sessions."""

from __future__ import annotations

from typing import Any

from shared import rooms
from shared.errors import AppError
from shared.http import Ctx, endpoint


@endpoint(methods=("POST",), auth="none", max_body=256 * 1024)
def livekit_webhook(ctx: Ctx) -> dict[str, Any]:
    try:
        body = ctx.raw.decode("utf-8")
    except UnicodeDecodeError:
        raise AppError("not_authenticated", "invalid webhook body") from None
    event = rooms.verify_webhook(body, ctx.request.headers.get("Authorization"))
    return rooms.apply_event(event)
