"""resend_webhook: Resend's signed delivery events (Svix), each stored once and applied to its email."""

from __future__ import annotations

from typing import Any

from shared import email_events
from shared.http import Ctx, endpoint


@endpoint(methods=("POST",), auth="none", max_body=256 * 1024)
def resend_webhook(ctx: Ctx) -> dict[str, Any]:
    # The signature covers the raw bytes (read by the wrapper, at most max_body): never parse and
    # re-serialize before verifying.
    headers = {name: ctx.request.headers.get(name, "") for name in email_events.SVIX_HEADERS}
    result = email_events.handle_webhook(ctx.raw, headers)
    return {"received": True, **result}
