"""session_calendar: the .ics of a booked session for one of its participants (user JWT).

GET ?session_id=<uuid> (or POST {"session_id": ...}) → text/calendar; a cancelled session gives
a cancellation event (METHOD:CANCEL, STATUS:CANCELLED) with a higher SEQUENCE.
"""

from __future__ import annotations

import uuid

import flask
import pydantic

from shared import calendar
from shared.errors import AppError
from shared.http import Ctx, endpoint


class CalendarQuery(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    session_id: uuid.UUID


@endpoint(methods=("GET", "POST"), auth="user", max_body=4096)
def session_calendar(ctx: Ctx) -> flask.Response:
    data = dict(ctx.request.args) if ctx.request.method == "GET" else ctx.request.get_json(silent=True)
    if not isinstance(data, dict):
        raise AppError("invalid_input", "the body must be a JSON object")
    try:
        query = CalendarQuery.model_validate(data)
    except pydantic.ValidationError as exc:
        fields = [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
                  for e in exc.errors(include_url=False, include_input=False)]
        raise AppError("invalid_input", "session_id is required", details=fields) from None
    body = calendar.session_ics(str(query.session_id), ctx.require_user().id)
    response = flask.Response(body, status=200, mimetype="text/calendar")
    response.headers["Content-Type"] = "text/calendar; charset=utf-8"
    response.headers["Content-Disposition"] = f'attachment; filename="session-{query.session_id}.ics"'
    response.headers["Cache-Control"] = "no-store"
    return response
