"""stripe_webhook: Stripe's signed events (platform and Connect endpoints), each applied once."""

from __future__ import annotations

from typing import Any

from shared import payments
from shared.http import Ctx, endpoint


@endpoint(methods=("POST",), auth="none", max_body=512 * 1024)
def stripe_webhook(ctx: Ctx) -> dict[str, Any]:
    # The signature covers the raw bytes (read by the wrapper, at most max_body): never parse and
    # re-serialize before verifying.
    result = payments.handle_webhook(ctx.raw, ctx.request.headers.get("Stripe-Signature"))
    return {"received": True, **result}
