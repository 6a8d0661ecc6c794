"""Our SQLSTATE registry as Python sees it, and the one mapping from errors to HTTP statuses.

The registry's source is the table `private.error_codes` (filled by migrations); ERROR_CODES lives in
shared/error_codes.py, generated from it by `autodoctor gen` (see docs/error_codes.md).
"""

from __future__ import annotations

import json

import psycopg

from shared.error_codes import ERROR_CODES, ErrorCode

__all__ = [
    "BY_NAME", "ERROR_CODES", "AppError", "ErrorCode", "database_unavailable", "error_code", "http_error",
    "retry_after",
]

BY_NAME: dict[str, ErrorCode] = {e.name: e for e in ERROR_CODES.values()}

# PostgreSQL's own codes that callers can cause.
_PG_STATUS = {
    "42501": 403,  # insufficient_privilege (RLS or grants)
    "23505": 409,  # unique_violation
    "23P01": 409,  # exclusion_violation
    "23503": 409,  # foreign_key_violation
    "22P02": 400,  # invalid_text_representation
    "22023": 400,  # invalid_parameter_value
    "23514": 400,  # check_violation
    "23502": 400,  # not_null_violation
    "40001": 503,  # serialization_failure: retry
    "40P01": 503,  # deadlock_detected: retry
    "57014": 503,  # query_canceled (statement timeout)
}


# PostgreSQL's codes of a server that cannot take the request now (besides class 08, connection).
_UNAVAILABLE = {"57P01", "57P02", "57P03", "53300"}  # admin/crash shutdown, cannot connect now, too many


def database_unavailable(exc: BaseException) -> bool:
    """The database could not be reached or dropped the connection (not an error of the query):
    connection failures, a pool that found no connection in time (psycopg_pool.PoolTimeout is an
    OperationalError without SQLSTATE), a server shutting down."""
    if not isinstance(exc, psycopg.OperationalError):
        return False
    return exc.sqlstate is None or exc.sqlstate.startswith("08") or exc.sqlstate in _UNAVAILABLE


class AppError(Exception):
    """An error our Python code raises on purpose, carrying a registered name."""

    def __init__(self, name: str, message: str, *, details: object | None = None):
        super().__init__(message)
        self.code = BY_NAME[name]
        self.message = message
        self.details = details


def _pgrst(exc: BaseException) -> tuple[dict[str, object], dict[str, object]] | None:
    """(message JSON, detail JSON) of an error raised in PostgREST's own form (SQLSTATE PGRST):
    how private.raise_error raises the errors that answer 429 (limit_reached, rate_limited)."""
    if not isinstance(exc, psycopg.Error) or exc.sqlstate != "PGRST":
        return None
    try:
        body = json.loads(exc.diag.message_primary or "")
        detail = json.loads(exc.diag.message_detail or "{}")
    except ValueError:
        return None
    if not isinstance(body, dict) or not isinstance(detail, dict):
        return None
    return body, detail


def error_code(exc: BaseException) -> str:
    """The SQLSTATE a caller sees: our code (AD…) also for an error raised in PostgREST's form."""
    pgrst = _pgrst(exc)
    if pgrst is not None:
        return str(pgrst[0].get("code") or "PGRST")
    return (exc.sqlstate or "") if isinstance(exc, psycopg.Error) else ""


def retry_after(exc: BaseException) -> str | None:
    """The Retry-After header an error asks for (seconds), if any."""
    pgrst = _pgrst(exc)
    if pgrst is None:
        return None
    headers = pgrst[1].get("headers")
    value = headers.get("Retry-After") if isinstance(headers, dict) else None
    return str(value) if value is not None else None


def http_error(exc: BaseException) -> tuple[int, dict[str, object]]:
    """(status, JSON body) for any exception an HTTP function lets escape."""
    if isinstance(exc, AppError):
        body: dict[str, object] = {"code": exc.code.sqlstate, "error": exc.code.name, "message": exc.message}
        if exc.details is not None:
            body["details"] = exc.details
        return exc.code.http_status, body
    if database_unavailable(exc):
        code = BY_NAME["database_unavailable"]
        return code.http_status, {"code": code.sqlstate, "error": code.name,
                                  "message": "the database cannot be reached right now; try again"}
    pgrst = _pgrst(exc)
    if pgrst is not None:
        body_json, detail_json = pgrst
        known = ERROR_CODES.get(str(body_json.get("code")))
        status = detail_json.get("status")
        if known:
            return (status if isinstance(status, int) else known.http_status), {
                "code": known.sqlstate, "error": known.name, "message": str(body_json.get("message") or "")}
    if isinstance(exc, psycopg.Error) and exc.sqlstate:
        known = ERROR_CODES.get(exc.sqlstate)
        message = exc.diag.message_primary or "database error"
        if known:
            return known.http_status, {"code": known.sqlstate, "error": known.name, "message": message}
        status = _PG_STATUS.get(exc.sqlstate)
        if status:
            return status, {"code": exc.sqlstate, "error": "database_error", "message": message}
    return 500, {"code": "XX000", "error": "internal_error", "message": "internal error"}
