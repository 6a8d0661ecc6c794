"""session_calendar: the .ics of a booked session for one of its participants (user JWT).

GET ?session_id=<uuid> (or POST {"session_id": ...}) → text/calendar; a cancelled session gives
a cancellation event (METHOD:CANCEL, STATUS:CANCELLED) with a higher SEQUENCE.
"""

from __future__ import annotations

import uuid

import flask
import pydantic

from shared import calendar
from shared.http import Ctx, endpoint


class CalendarQuery(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    session_id: uuid.UUID


@endpoint(methods=("GET", "POST"), auth="user", body=CalendarQuery, max_body=4096)
def session_calendar(ctx: Ctx) -> flask.Response:
    query: CalendarQuery = ctx.body
    body = calendar.session_ics(str(query.session_id), ctx.require_user().id)
    response = flask.Response(body, status=200, mimetype="text/calendar")
    response.headers["Content-Type"] = "text/calendar; charset=utf-8"
    response.headers["Content-Disposition"] = f'attachment; filename="session-{query.session_id}.ics"'
    response.headers["Cache-Control"] = "no-store"
    return response
