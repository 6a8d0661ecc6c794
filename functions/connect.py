"""connect_onboarding: an approved mechanic (or a workshop's owner) sets up Stripe payouts."""

from __future__ import annotations

import uuid
from typing import Any

import pydantic

from functions.checkout import HttpUrl
from shared import payments
from shared.http import Ctx, endpoint


class OnboardingBody(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    organization_id: uuid.UUID | None = None  # set: the workshop's account (owner only)
    return_url: HttpUrl
    refresh_url: HttpUrl


@endpoint(methods=("POST",), auth="user", body=OnboardingBody)
def connect_onboarding(ctx: Ctx) -> dict[str, Any]:
    body: OnboardingBody = ctx.body
    return payments.start_onboarding(ctx.require_user().id, body.organization_id, body.return_url, body.refresh_url)
