"""private.settings: every value has a declared type (value_type) that a trigger enforces."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from shared.config import project_dir
from tests.support.harness import Db

TYPES = {"integer", "number", "boolean", "text", "interval", "object", "text[]", "interval[]"}


def test_every_setting_has_a_type_its_value_matches(db: Db) -> None:
    rows = db.all("select key, value_type, private.setting_value_matches(value, value_type) as ok"
                  " from private.settings")
    assert len(rows) >= 30
    assert {r["value_type"] for r in rows} <= TYPES
    assert [r["key"] for r in rows if not r["ok"]] == []


@pytest.mark.parametrize(
    ("key", "value_type"),
    [
        ("requests.unattended_after", "interval"),
        ("jobs.batch_size", "integer"),
        ("scheduling.instant_booking", "boolean"),
        ("matching.weights", "object"),
        ("payments.auto_refund_from_statuses", "text[]"),
        ("scheduling.reminder_leads", "interval[]"),
    ],
)
def test_backfilled_types(db: Db, key: str, value_type: str) -> None:
    assert db.scalar("select value_type from private.settings where key = %s", (key,)) == value_type


# The reader each SQL function uses for a key, and the value_types that reader accepts.
READERS = {
    "setting_int": {"integer"},
    "setting_numeric": {"integer", "number"},
    "setting_bool": {"boolean"},
    "setting_interval": {"interval"},
    "setting_text": {"text", "interval"},
}


def test_the_readers_in_sql_match_the_declared_types(db: Db) -> None:
    types = {r["key"]: r["value_type"] for r in db.all("select key, value_type from private.settings")}
    calls = set()
    for file in (project_dir() / "supabase").rglob("*.sql"):
        calls |= set(re.findall(r"private\.(setting_[a-z]+)\('([a-z0-9_.]+)'\)", file.read_text()))
    assert len(calls) >= 30
    wrong = sorted((reader, key, types.get(key)) for reader, key in calls if types.get(key) not in READERS[reader])
    assert wrong == []


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("requests.unattended_after", '"soon"'),
        ("requests.unattended_after", "5"),
        ("jobs.batch_size", "5.5"),
        ("jobs.batch_size", '"500"'),
        ("scheduling.instant_booking", "1"),
        ("matching.weights", "[1, 2]"),
        ("payments.auto_refund_from_statuses", '["pending", 3]'),
        ("payments.auto_refund_from_statuses", '"pending"'),
        ("scheduling.reminder_leads", '["24 hours", "tomorrow-ish"]'),
        ("scheduling.reminder_leads", "null"),
    ],
)
def test_a_wrong_typed_update_is_refused_and_changes_nothing(db: Db, key: str, value: str) -> None:
    before = db.one("select value, value_type, updated_at from private.settings where key = %s", (key,))
    err = db.error("update private.settings set value = %s::jsonb where key = %s", (value, key))
    assert err.sqlstate == "AD001"
    assert err.diag.message_hint == "invalid_input"
    assert key in (err.diag.message_primary or "")
    assert db.one("select value, value_type, updated_at from private.settings where key = %s", (key,)) == before


def test_changing_the_type_alone_is_checked_too(db: Db) -> None:
    err = db.error("update private.settings set value_type = 'integer' where key = 'requests.unattended_after'")
    assert err.sqlstate == "AD001"
    err = db.error("update private.settings set value_type = 'duration' where key = 'requests.unattended_after'")
    assert err.sqlstate == "AD001"
    assert db.scalar("select value_type from private.settings where key = 'requests.unattended_after'") == "interval"


def test_a_new_setting_needs_a_type(db: Db) -> None:
    err = db.error("insert into private.settings (key, value, description) values ('test.untyped', '1', 't')")
    assert (err.sqlstate, err.diag.message_hint) == ("AD001", "invalid_input")
    err = db.error("insert into private.settings (key, value, value_type, description)"
                   " values ('test.bad', '\"x\"', 'interval', 't')")
    assert err.sqlstate == "AD001"
    assert db.scalar("select count(*) from private.settings where key like 'test.%'") == 0


def test_a_right_typed_change_is_read_back(db: Db) -> None:
    db.execute("update private.settings set value = '\"7 minutes\"' where key = 'requests.unattended_after'")
    assert db.scalar("select private.setting_interval('requests.unattended_after')") == dt.timedelta(minutes=7)
    db.execute("update private.settings set value = '[\"2 hours\"]' where key = 'scheduling.reminder_leads'")
    db.execute("insert into private.settings (key, value, value_type, description)"
               " values ('test.ratio', '0.25', 'number', 't')")
    assert db.scalar("select private.setting_numeric('test.ratio')") == pytest.approx(0.25)


def test_descriptions_state_the_rule_without_citing_documents(db: Db) -> None:
    cited = db.all("select key, description from private.settings where description ~* '(seed [0-9]|§)'")
    assert cited == []
