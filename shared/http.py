"""The one shape of every HTTP function: method check → size → authenticate → read → validate → one
call → JSON.

    @endpoint(methods=("POST",), auth="user", body=MyBody)
    def my_function(ctx: Ctx) -> dict[str, Any]: ...

Errors of any kind become JSON `{code, error, message[, details]}` with the status from
shared.errors.http_error (docs/api.md, "Errors of the HTTP functions"):

- a method the function does not answer: 405 `method_not_allowed` with `Allow`;
- a body larger than `max_body`: 413 `body_too_large`, whatever the transfer encoding — the body is
  read here, at most `max_body + 1` bytes, and handed to the function as `ctx.raw`;
- with `body=Model`: a non-empty body sent without `Content-Type: application/json` is 415
  `unsupported_media_type`; a GET validates the query string instead of the body; a field that does
  not validate is 400 `invalid_input` whose message names the field and the problem and whose
  `details` list every field.
"""

from __future__ import annotations

import functools
import io
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import flask
import pydantic

from shared.auth import User, bearer_token, verify_cron_secret, verify_user_token
from shared.errors import AppError, http_error, retry_after
from shared.logs import log

Auth = Literal["user", "cron", "none"]

_READ_CHUNK = 64 * 1024
_BODY_READ = "autodoctor.body_read"  # environ key: read_body read the whole body


@dataclass
class Ctx:
    request: flask.Request
    request_id: str
    user: User | None = None
    body: Any = None
    raw: bytes = b""  # the request body as sent (at most the endpoint's max_body bytes)

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


def _too_large(max_body: int) -> AppError:
    return AppError("body_too_large", f"the body is larger than {max_body} bytes")


def read_body(request: flask.Request, max_body: int) -> bytes:
    """The body, reading at most `max_body + 1` bytes from the stream: a declared Content-Length over
    the limit is refused before reading, and a body without one (chunked) is cut off at the limit.

    Afterwards the request's stream holds only the body read (the endpoint empties it when it
    answers without reading: too large, or refused earlier), so nothing later can pull the rest of an
    oversized body into memory: neither `request.get_data()` nor functions-framework, which reads
    the whole request before answering."""
    if request.content_length is not None and request.content_length > max_body:
        raise _too_large(max_body)
    stream = request.stream
    data = bytearray()
    while len(data) <= max_body:
        chunk = stream.read(min(_READ_CHUNK, max_body + 1 - len(data)))
        if not chunk:
            break
        data += chunk
    if len(data) > max_body:
        raise _too_large(max_body)  # the stream is emptied by the endpoint
    request.stream = io.BytesIO(bytes(data))
    request.environ[_BODY_READ] = True
    return bytes(data)


# pydantic's error types, said briefly; anything else keeps pydantic's own message.
_PROBLEMS: dict[str, Callable[[dict[str, Any]], str]] = {
    "missing": lambda c: "required",
    "extra_forbidden": lambda c: "not an accepted field",
    "uuid_parsing": lambda c: "not a valid UUID",
    "uuid_type": lambda c: "not a valid UUID",
    "uuid_version": lambda c: "not a valid UUID",
    "string_type": lambda c: "must be a string",
    "string_too_short": lambda c: f"must be at least {c.get('min_length')} characters",
    "string_too_long": lambda c: f"must be at most {c.get('max_length')} characters",
    "string_pattern_mismatch": lambda c: "has not the expected format",
    "int_type": lambda c: "must be an integer",
    "int_parsing": lambda c: "must be an integer",
    "int_from_float": lambda c: "must be an integer",
    "bool_type": lambda c: "must be true or false",
    "bool_parsing": lambda c: "must be true or false",
    "greater_than_equal": lambda c: f"must be at least {c.get('ge')}",
    "greater_than": lambda c: f"must be greater than {c.get('gt')}",
    "less_than_equal": lambda c: f"must be at most {c.get('le')}",
    "less_than": lambda c: f"must be less than {c.get('lt')}",
}


def _problem(error: Any) -> str:
    kind = str(error.get("type", ""))
    if kind in _PROBLEMS:
        return _PROBLEMS[kind](dict(error.get("ctx") or {}))
    message = str(error.get("msg", "not valid"))
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message[:1].lower() + message[1:]


def validation_error(exc: pydantic.ValidationError) -> AppError:
    """400 invalid_input naming each field and its problem: `session_id: not a valid UUID`."""
    details = []
    for e in exc.errors(include_url=False, include_input=False):
        field = ".".join(str(p) for p in e["loc"])
        details.append({"field": field, "message": _problem(e), "type": e["type"]})
    message = "; ".join(f"{d['field']}: {d['message']}" if d["field"] else d["message"] for d in details)
    return AppError("invalid_input", message or "the input is not valid", details=details)


def _json_object(request: flask.Request, raw: bytes) -> dict[str, Any]:
    """The JSON object of the body (an empty body is `{}`); 415 without the JSON media type."""
    if not raw.strip():
        return {}
    if not request.is_json:
        sent = request.headers.get("Content-Type")
        raise AppError("unsupported_media_type",
                       "send the body with the header Content-Type: application/json"
                       + (f" (got {sent[:100]!r})" if sent else " (the header is missing)"))
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise AppError("invalid_input", f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise AppError("invalid_input", "the body must be a JSON object")
    return data


def endpoint(
    *,
    methods: tuple[str, ...] = ("POST",),
    auth: Auth = "user",
    body: type[pydantic.BaseModel] | None = None,
    max_body: int = 64 * 1024,
) -> Callable[[Callable[[Ctx], Any]], Callable[[flask.Request], flask.Response]]:
    def wrap(fn: Callable[[Ctx], Any]) -> Callable[[flask.Request], flask.Response]:
        def run(ctx: Ctx) -> flask.Response:
            request = ctx.request
            if request.method not in methods:
                raise AppError("method_not_allowed", f"{request.method} is not answered here: use "
                               f"{' or '.join(methods)}")
            if request.content_length is not None and request.content_length > max_body:
                raise _too_large(max_body)
            if auth == "user":
                ctx.user = verify_user_token(bearer_token(request.headers.get("Authorization")))
            elif auth == "cron":
                verify_cron_secret(request.headers.get("Authorization"))
            ctx.raw = read_body(request, max_body)
            if body is not None:
                if request.method in ("GET", "HEAD"):
                    data: dict[str, Any] = request.args.to_dict(flat=True)
                else:
                    data = _json_object(request, ctx.raw)
                try:
                    ctx.body = body.model_validate(data)
                except pydantic.ValidationError as exc:
                    raise validation_error(exc) from None
            result = fn(ctx)
            if isinstance(result, flask.Response):
                return result
            if isinstance(result, tuple):
                return _json(result[0], result[1])
            return _json(result)

        @functools.wraps(fn)
        def handler(request: flask.Request) -> flask.Response:
            request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
            try:
                response = run(Ctx(request=request, request_id=request_id))
            except Exception as exc:  # one mapping for every error
                status, payload = http_error(exc)
                level = "error" if status >= 500 else "info"
                log(level, "request failed", function=fn.__name__, request_id=request_id, status=status,
                    code=payload.get("code"), error=repr(exc) if status >= 500 else payload.get("message"))
                response = _json(payload, status)
                if isinstance(exc, AppError) and exc.code.name == "method_not_allowed":
                    response.headers["Allow"] = ", ".join(methods)
                if (wait := retry_after(exc)) is not None:
                    response.headers["Retry-After"] = wait
            if not request.environ.get(_BODY_READ):
                # Answered before reading the body (a wrong method, a failed check, too large): leave it
                # unread whatever its size, and close the connection that carries it.
                request.stream = io.BytesIO()
                if request.content_length or request.headers.get("Transfer-Encoding"):
                    response.headers["Connection"] = "close"
            return response

        return handler

    return wrap
