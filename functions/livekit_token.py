"""livekit_token: a room token for a session's participant (or a hidden observer token for admins)."""

from __future__ import annotations

import uuid
from typing import Any

import pydantic

from shared import rooms
from shared.http import Ctx, endpoint


class TokenBody(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    session_id: uuid.UUID


@endpoint(methods=("POST",), auth="user", body=TokenBody, max_body=4096)
def livekit_token(ctx: Ctx) -> dict[str, Any]:
    result = rooms.room_token(str(ctx.body.session_id), ctx.require_user().id)
    return {"token": result["token"], "url": result["url"], "room": result["room"], "role": result["role"],
            "expires_at": result["expires_at"]}
