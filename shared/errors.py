"""Our SQLSTATE registry as Python sees it, and the one mapping from errors to HTTP statuses.

The registry's source of truth is `private.error_codes` (baseline migration and later ones);
docs/error_codes.md and ERROR_CODES below list the same codes, and a test keeps the three equal.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg


@dataclass(frozen=True)
class ErrorCode:
    sqlstate: str
    name: str
    http_status: int


ERROR_CODES: dict[str, ErrorCode] = {
    e.sqlstate: e
    for e in (
        ErrorCode("AD001", "invalid_input", 400),
        ErrorCode("AD002", "not_authenticated", 401),
        ErrorCode("AD003", "not_allowed", 403),
        ErrorCode("AD004", "not_found", 404),
        ErrorCode("AD005", "conflict", 409),
        ErrorCode("AD006", "invalid_transition", 409),
        ErrorCode("AD007", "setting_missing", 500),
        ErrorCode("AD008", "payment_required", 402),
        ErrorCode("AD009", "request_not_available", 409),
        ErrorCode("AD010", "mechanic_busy", 409),
        # matching: AD011-AD019
        # payments: AD020-AD029
        ErrorCode("AD020", "invalid_signature", 400),
        ErrorCode("AD021", "payments_not_configured", 503),
        ErrorCode("AD022", "insufficient_credit", 409),
        ErrorCode("AD023", "refund_too_large", 409),
        ErrorCode("AD024", "provider_error", 502),
        # video and chat rooms: AD030-AD039
        ErrorCode("AD030", "extension_not_allowed", 409),
        # jobs (the queue): AD040-AD049
        ErrorCode("AD040", "unknown_job_kind", 500),
        ErrorCode("AD041", "unknown_email_template", 500),
        # scheduling: AD050-AD069
        ErrorCode("AD050", "slot_taken", 409),
        ErrorCode("AD051", "schedule_conflict", 409),
        ErrorCode("AD052", "slot_unavailable", 409),
        ErrorCode("AD053", "hold_expired", 409),
        ErrorCode("AD054", "change_cutoff_passed", 409),
        ErrorCode("AD055", "too_many_holds", 409),
        # micro-sessions and shifts: AD070-AD079
        ErrorCode("AD070", "session_not_eligible", 409),
        ErrorCode("AD071", "already_clocked_in", 409),
        ErrorCode("AD072", "not_clocked_in", 409),
    )
}
BY_NAME = {e.name: e for e in ERROR_CODES.values()}

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
