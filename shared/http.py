"""The one shape of every HTTP function: method check → authenticate → validate → one call → JSON.

    @endpoint(methods=("POST",), auth="user", body=MyBody)
    def my_function(ctx: Ctx) -> dict[str, Any]: ...

Errors of any kind become JSON `{code, error, message[, details]}` with the status from
shared.errors.http_error; validation errors list the fields.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import flask
import pydantic

from shared.auth import User, bearer_token, verify_cron_secret, verify_user_token
from shared.errors import AppError, http_error
from shared.logs import log

Auth = Literal["user", "cron", "none"]


@dataclass
class Ctx:
    request: flask.Request
    request_id: str
    user: User | None = None
    body: Any = None

    def require_user(self) -> User:
        """The caller of an `auth="user"` endpoint (whose token the wrapper has verified)."""
        if self.user is None:
            raise AppError("not_authenticated", "a user token is required")
        return self.user


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> flask.Response:
    response = flask.jsonify(payload)
    response.status_code = status
    for k, v in (headers or {}).items():
        response.headers[k] = v
    return response


def endpoint(
    *,
    methods: tuple[str, ...] = ("POST",),
    auth: Auth = "user",
    body: type[pydantic.BaseModel] | None = None,
    max_body: int = 64 * 1024,
) -> Callable[[Callable[[Ctx], Any]], Callable[[flask.Request], flask.Response]]:
    def wrap(fn: Callable[[Ctx], Any]) -> Callable[[flask.Request], flask.Response]:
        @functools.wraps(fn)
        def handler(request: flask.Request) -> flask.Response:
            request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
            ctx = Ctx(request=request, request_id=request_id)
            try:
                if request.method not in methods:
                    return _json({"code": "AD001", "error": "method_not_allowed",
                                  "message": f"use {' or '.join(methods)}"}, 405, {"Allow": ", ".join(methods)})
                if request.content_length is not None and request.content_length > max_body:
                    return _json({"code": "AD001", "error": "invalid_input", "message": "body too large"}, 413)
                if auth == "user":
                    ctx.user = verify_user_token(bearer_token(request.headers.get("Authorization")))
                elif auth == "cron":
                    verify_cron_secret(request.headers.get("Authorization"))
                if body is not None:
                    raw = request.get_data(cache=True)
                    if len(raw) > max_body:
                        return _json({"code": "AD001", "error": "invalid_input", "message": "body too large"}, 413)
                    data = request.get_json(silent=True) if raw else {}
                    if not isinstance(data, dict):
                        raise AppError("invalid_input", "the body must be a JSON object")
                    try:
                        ctx.body = body.model_validate(data)
                    except pydantic.ValidationError as exc:
                        fields = [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
                                  for e in exc.errors(include_url=False, include_input=False)]
                        raise AppError("invalid_input", "the body is not valid", details=fields) from None
                result = fn(ctx)
                if isinstance(result, flask.Response):
                    return result
                if isinstance(result, tuple):
                    return _json(result[0], result[1])
                return _json(result)
            except Exception as exc:  # one mapping for every error
                status, payload = http_error(exc)
                level = "error" if status >= 500 else "info"
                log(level, "request failed", function=fn.__name__, request_id=request_id, status=status,
                    code=payload.get("code"), error=repr(exc) if status >= 500 else payload.get("message"))
                return _json(payload, status)

        return handler

    return wrap
