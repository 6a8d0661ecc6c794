"""The SQLSTATE registry as Python sees it, the helper that raises its codes, the settings readers."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import psycopg
import pytest

from shared.errors import BY_NAME, ERROR_CODES, AppError, error_code, http_error, retry_after
from tests.support.harness import Db


def test_python_and_the_table_agree(db: Db) -> None:
    """shared/error_codes.py is generated from the table (tests/platform/test_generated.py checks
    every generated file); here, what Python imports is what the database raises."""
    table = {
        r["sqlstate"]: (r["name"], r["http_status"], r["description"])
        for r in db.all("select sqlstate, name, http_status, description from private.error_codes")
    }
    assert len(table) >= 7
    assert {e.sqlstate: (e.name, e.http_status, e.description) for e in ERROR_CODES.values()} == table
    assert set(BY_NAME) == {name for name, _, _ in table.values()}


# ---------------------------------------------------------------------------------------------
# private.raise_error
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("code", sorted(c for c in ERROR_CODES if ERROR_CODES[c].http_status != 429))
def test_raise_error_uses_the_registered_sqlstate(db: Db, code: str) -> None:
    name = ERROR_CODES[code].name
    err = db.error("select private.raise_error(%s)", (name,))
    assert err.sqlstate == code
    assert err.diag.message_hint == name
    description = db.scalar("select description from private.error_codes where sqlstate = %s", (code,))
    assert err.diag.message_primary == description
    assert http_error(err) == (ERROR_CODES[code].http_status, {"code": code, "error": name, "message": description})
    assert error_code(err) == code and retry_after(err) is None


@pytest.mark.parametrize("code", sorted(c for c in ERROR_CODES if ERROR_CODES[c].http_status == 429))
def test_a_429_is_raised_in_postgrest_form(db: Db, code: str) -> None:
    """PostgREST answers any SQLSTATE it does not know with 400; a 429 is raised as SQLSTATE PGRST
    with the response's JSON body in the message and its status and headers in the detail, from
    which PostgREST sets them. Our code stays in the body's `code`, the name in `hint`."""
    name = ERROR_CODES[code].name
    description = db.scalar("select description from private.error_codes where sqlstate = %s", (code,))
    err = db.error("select private.raise_error(%s)", (name,))
    assert err.sqlstate == "PGRST"
    assert json.loads(err.diag.message_primary or "") == {
        "code": code, "message": description, "hint": name, "details": None}
    assert json.loads(err.diag.message_detail or "") == {"status": 429, "headers": {}}
    assert error_code(err) == code and retry_after(err) is None
    assert http_error(err) == (429, {"code": code, "error": name, "message": description})

    err = db.error("select private.raise_error_retry(%s, 'slow down', 12.2, 'per user')", (name,))
    assert json.loads(err.diag.message_primary or "") == {
        "code": code, "message": "slow down", "hint": name, "details": "per user"}
    assert json.loads(err.diag.message_detail or "") == {"status": 429, "headers": {"Retry-After": "13"}}
    assert retry_after(err) == "13" and error_code(err) == code
    # never less than one second
    err = db.error("select private.raise_error_retry(%s, null, 0)", (name,))
    assert retry_after(err) == "1"


def test_raise_error_retry_of_another_error_is_raise_error(db: Db) -> None:
    err = db.error("select private.raise_error_retry('conflict', 'taken', 30)")
    assert (err.sqlstate, err.diag.message_primary, err.diag.message_hint) == ("AD005", "taken", "conflict")
    assert retry_after(err) is None


def test_errors_caught_in_sql_keep_our_code(db: Db) -> None:
    """`exception when others` in SQL recognizes ours in both forms (payments refund on them)."""
    assert db.scalar("select private.caught_error_code('AD004', 'x')") == "AD004"
    assert db.scalar("select private.caught_error_code('PGRST', %s)",
                     (json.dumps({"code": "AD130", "message": "m"}),)) == "AD130"
    assert db.scalar("select private.caught_error_message('PGRST', %s)",
                     (json.dumps({"code": "AD130", "message": "m"}),)) == "m"
    assert db.scalar("select private.caught_error_code('PGRST', 'not json')") is None
    assert db.scalar("select private.caught_error_code('23505', 'dup')") is None


def test_raise_error_with_message_and_detail(db: Db) -> None:
    err = db.error("select private.raise_error('not_found', 'no such request', 'id 42')")
    assert (err.sqlstate, err.diag.message_primary, err.diag.message_detail, err.diag.message_hint) == (
        "AD004", "no such request", "id 42", "not_found",
    )


def test_raise_error_with_an_unknown_name(db: Db) -> None:
    err = db.error("select private.raise_error('no_such_error')")
    assert err.sqlstate == "XX000"
    assert "no_such_error" in (err.diag.message_primary or "")
    assert http_error(err)[0] == 500


def test_raise_error_is_callable_by_every_api_role(db: Db) -> None:
    user = db.make_user()
    for persona in (db.as_anon, db.as_service, lambda: db.as_user(user)):
        with persona():
            assert db.error("select private.raise_error('not_allowed')").sqlstate == "AD003"


def test_app_error_maps_like_the_database_error() -> None:
    assert http_error(AppError("conflict", "already taken", details={"id": 1})) == (
        409, {"code": "AD005", "error": "conflict", "message": "already taken", "details": {"id": 1}},
    )
    assert http_error(RuntimeError("secret internals")) == (
        500, {"code": "XX000", "error": "internal_error", "message": "internal error"},
    )


def test_postgres_errors_callers_can_cause(db: Db) -> None:
    err = db.error("select 'x'::int")
    assert err.sqlstate == "22P02"
    assert http_error(err)[0] == 400


# ---------------------------------------------------------------------------------------------
# private.setting_*
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def settings(db: Db) -> Db:
    db.execute(
        "insert into private.settings (key, value, value_type, description) values"
        " ('test.int', '42', 'integer', 't'), ('test.float', '1.5', 'number', 't'),"
        " ('test.bool', 'true', 'boolean', 't'), ('test.interval', '\"90 minutes\"', 'interval', 't'),"
        " ('test.text', '\"hello\"', 'text', 't'),"
        # a text value the interval reader must refuse (the type check lets text through)
        " ('test.bad_interval', '\"soon-ish\"', 'text', 't'), ('test.object', '{\"a\": 1}', 'object', 't')"
    )
    return db


@pytest.mark.parametrize(
    ("function", "key", "expected"),
    [
        ("setting_int", "test.int", 42),
        ("setting_numeric", "test.int", Decimal(42)),
        ("setting_numeric", "test.float", Decimal("1.5")),
        ("setting_bool", "test.bool", True),
        ("setting_interval", "test.interval", dt.timedelta(minutes=90)),
        ("setting_text", "test.text", "hello"),
        ("setting_text", "test.int", "42"),
        ("setting", "test.object", {"a": 1}),
    ],
)
def test_setting_accessors(settings: Db, function: str, key: str, expected: object) -> None:
    assert settings.scalar(f"select private.{function}(%s)", (key,)) == expected


@pytest.mark.parametrize(
    ("function", "key"),
    [
        ("setting", "test.absent"),
        ("setting_text", "test.absent"),
        ("setting_int", "test.absent"),
        ("setting_int", "test.float"),
        ("setting_int", "test.text"),
        ("setting_int", "test.bool"),
        ("setting_numeric", "test.text"),
        ("setting_bool", "test.int"),
        ("setting_bool", "test.text"),
        ("setting_interval", "test.int"),
        ("setting_interval", "test.bad_interval"),
    ],
)
def test_setting_accessors_refuse_missing_or_mistyped(settings: Db, function: str, key: str) -> None:
    err = settings.error(f"select private.{function}(%s)", (key,))
    assert err.sqlstate == "AD007"
    assert err.diag.message_hint == "setting_missing"
    assert key in (err.diag.message_primary or "")


def test_real_settings_have_the_types_their_accessors_expect(db: Db) -> None:
    assert db.scalar("select private.setting_interval('requests.unattended_after')") == dt.timedelta(minutes=5)
    assert db.scalar("select private.setting_int('micro.extension_minutes')") == 2


def test_settings_are_for_signed_in_callers_only(settings: Db) -> None:
    user = settings.make_user()
    with settings.as_user(user):
        assert settings.scalar("select private.setting_int('test.int')") == 42
        # the table itself is not readable: only the accessors are
        assert settings.error("select * from private.settings").sqlstate == "42501"
    with settings.as_anon():
        assert settings.error("select private.setting_int('test.int')").sqlstate == "42501"


def test_setting_keys_are_validated(db: Db) -> None:
    err = db.error("insert into private.settings (key, value, value_type, description)"
                   " values ('Bad Key', '1', 'integer', 'x')")
    assert isinstance(err, psycopg.errors.CheckViolation)
