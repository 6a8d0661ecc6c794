"""create_checkout: a customer books a paid plan, a held slot, a session extension or a follow-up
question — Stripe Checkout, or at once with credit."""

from __future__ import annotations

import uuid
from typing import Annotated, Any
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
    extension_id: uuid.UUID | None = None  # a paid extension of a live session (request_extension)
    follow_up_id: uuid.UUID | None = None  # a follow-up question past the free ones (ask_follow_up)
    intake_id: uuid.UUID | None = pydantic.Field(default=None, validate_default=True)  # not with extension/follow-up
    vehicle_id: uuid.UUID | None = None
    preferred_mechanic_id: uuid.UUID | None = None
    specialist: pydantic.StrictBool = False
    success_url: HttpUrl
    cancel_url: HttpUrl

    @pydantic.field_validator("intake_id")
    @classmethod
    def _intake_unless_extension(cls, value: uuid.UUID | None, info: pydantic.ValidationInfo) -> uuid.UUID | None:
        if value is None and info.data.get("extension_id") is None and info.data.get("follow_up_id") is None:
            raise ValueError("intake_id is required with plan_code or hold_id")
        return value

    @pydantic.model_validator(mode="after")
    def _plan_hold_or_extension(self) -> CheckoutBody:
        if sum(x is not None for x in (self.plan_code, self.hold_id, self.extension_id, self.follow_up_id)) != 1:
            raise ValueError("give exactly one of plan_code (book now), hold_id (a held slot), "
                             "extension_id (a paid session extension) or follow_up_id (a follow-up question)")
        if self.hold_id is not None and (self.preferred_mechanic_id is not None or self.specialist):
            raise ValueError("a held slot already has its mechanic and price")
        if self.extension_id is not None:
            if self.intake_id is not None or self.vehicle_id is not None or self.preferred_mechanic_id is not None \
                    or self.specialist:
                raise ValueError("an extension is paid on its own: no intake_id, vehicle_id, "
                                 "preferred_mechanic_id or specialist")
        if self.follow_up_id is not None:
            if self.intake_id is not None or self.vehicle_id is not None or self.preferred_mechanic_id is not None \
                    or self.specialist:
                raise ValueError("a follow-up is paid on its own: no intake_id, vehicle_id, "
                                 "preferred_mechanic_id or specialist")
        return self


@endpoint(methods=("POST",), auth="user", body=CheckoutBody)
def create_checkout(ctx: Ctx) -> dict[str, Any]:
    body: CheckoutBody = ctx.body
    return payments.create_checkout(ctx.require_user().id, payments.CheckoutRequest(
        plan_code=body.plan_code, hold_id=body.hold_id, extension_id=body.extension_id,
        follow_up_id=body.follow_up_id, intake_id=body.intake_id,
        vehicle_id=body.vehicle_id,
        preferred_mechanic_id=body.preferred_mechanic_id, specialist=body.specialist,
        success_url=body.success_url, cancel_url=body.cancel_url))
