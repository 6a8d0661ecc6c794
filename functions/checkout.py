"""create_checkout: a customer books a paid plan — Stripe Checkout, or at once with credit."""

from __future__ import annotations

import uuid
from typing import Annotated
from urllib.parse import urlsplit

import pydantic

from shared import payments
from shared.http import Ctx, endpoint


def _http_url(value: str) -> str:
    """An absolute http(s) URL, kept exactly as given (Stripe fills in {CHECKOUT_SESSION_ID})."""
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError("must not contain spaces or control characters")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http or https URL")
    return value


HttpUrl = Annotated[str, pydantic.Field(min_length=8, max_length=2000), pydantic.AfterValidator(_http_url)]


class CheckoutBody(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    plan_code: str | None = pydantic.Field(default=None, pattern=r"^[a-z][a-z0-9_]{1,40}$")
    hold_id: uuid.UUID | None = None  # a held slot (scheduling): its plan, mechanic and price
    intake_id: uuid.UUID
    vehicle_id: uuid.UUID | None = None
    preferred_mechanic_id: uuid.UUID | None = None
    specialist: pydantic.StrictBool = False
    success_url: HttpUrl
    cancel_url: HttpUrl

    @pydantic.model_validator(mode="after")
    def _plan_or_hold(self) -> CheckoutBody:
        if (self.plan_code is None) == (self.hold_id is None):
            raise ValueError("give either plan_code (book now) or hold_id (a held slot)")
        if self.hold_id is not None and (self.preferred_mechanic_id is not None or self.specialist):
            raise ValueError("a held slot already has its mechanic and price")
        return self


@endpoint(methods=("POST",), auth="user", body=CheckoutBody)
def create_checkout(ctx: Ctx) -> dict:
    body: CheckoutBody = ctx.body
    return payments.create_checkout(ctx.user.id, payments.CheckoutRequest(
        plan_code=body.plan_code, hold_id=body.hold_id, intake_id=body.intake_id, vehicle_id=body.vehicle_id,
        preferred_mechanic_id=body.preferred_mechanic_id, specialist=body.specialist,
        success_url=body.success_url, cancel_url=body.cancel_url))
