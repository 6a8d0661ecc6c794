"""Our SQLSTATE registry as Python sees it, and the one mapping from errors to HTTP statuses.

The registry's source is the table `private.error_codes` (filled by migrations); ERROR_CODES lives in
shared/error_codes.py, generated from it by `autodoctor gen` (see docs/error_codes.md).
"""

from __future__ import annotations

import psycopg

from shared.error_codes import ERROR_CODES, ErrorCode

__all__ = ["BY_NAME", "ERROR_CODES", "AppError", "ErrorCode", "http_error"]

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


class AppError(Exception):
    """An error our Python code raises on purpose, carrying a registered name."""

    def __init__(self, name: str, message: str, *, details: object | None = None):
        super().__init__(message)
        self.code = BY_NAME[name]
        self.message = message
        self.details = details


def http_error(exc: BaseException) -> tuple[int, dict[str, object]]:
    """(status, JSON body) for any exception an HTTP function lets escape."""
    if isinstance(exc, AppError):
        body: dict[str, object] = {"code": exc.code.sqlstate, "error": exc.code.name, "message": exc.message}
        if exc.details is not None:
            body["details"] = exc.details
        return exc.code.http_status, body
    if isinstance(exc, psycopg.Error) and exc.sqlstate:
        known = ERROR_CODES.get(exc.sqlstate)
        message = exc.diag.message_primary or "database error"
        if known:
            return known.http_status, {"code": known.sqlstate, "error": known.name, "message": message}
        status = _PG_STATUS.get(exc.sqlstate)
        if status:
            return status, {"code": exc.sqlstate, "error": "database_error", "message": message}
    return 500, {"code": "XX000", "error": "internal_error", "message": "internal error"}
