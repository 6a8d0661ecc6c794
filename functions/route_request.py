"""route_request: routes one new request at once. Called by a Supabase Database Webhook on
INSERT into public.session_requests (payload {type, table, schema, record, old_record}) with
`Authorization: Bearer <CRON_SECRET>`, and by our own functions after they create a request."""

from __future__ import annotations

import uuid
from typing import Any

import pydantic

from shared import matching
from shared.errors import AppError
from shared.http import Ctx, endpoint


class Record(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="ignore")
    id: uuid.UUID


class WebhookBody(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="ignore")
    type: str = "INSERT"
    table: str = "session_requests"
    schema_: str = pydantic.Field(default="public", alias="schema")
    record: Record


@endpoint(methods=("POST",), auth="cron", body=WebhookBody)
def route_request(ctx: Ctx) -> dict[str, Any]:
    body: WebhookBody = ctx.body
    if body.table != "session_requests" or body.schema_ != "public":
        raise AppError("invalid_input", "only public.session_requests rows are routed")
    if body.type not in ("INSERT", "UPDATE"):
        return {"skipped": body.type}
    return matching.route(body.record.id)
