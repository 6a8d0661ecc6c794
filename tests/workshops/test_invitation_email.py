"""The invitation email: sent through the outbox to the invited address (with or without an account),
carrying the link with the token; user text is escaped in HTML."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from shared import db as shared_db
from shared import email as mail
from shared import worker
from shared.config import get_settings
from tests.support.harness import Db
from tests.support.tenancy import invite, make_shop


@pytest.fixture
def mail_env(fresh_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[tuple[Db, Path]]:
    monkeypatch.setenv("DATABASE_URL", fresh_url)
    monkeypatch.setenv("EMAIL_FILES_DIR", str(tmp_path / "mail"))
    monkeypatch.setenv("APP_URL", "https://app.autodoctor.test")
    monkeypatch.delenv("RESEND_API_KEY", raising=False)
    get_settings.cache_clear()
    shared_db.close_pool()
    conn = psycopg.connect(fresh_url)
    conn.execute("select 1")
    yield Db(conn), tmp_path / "mail"
    conn.close()
    shared_db.close_pool()
    get_settings.cache_clear()


def test_the_invitation_reaches_an_address_without_an_account(mail_env: tuple[Db, Path]) -> None:
    d, folder = mail_env
    s = make_shop(d)
    d.execute("update public.organizations set name = 'Bay <b>Motors</b>' where id = %s", (s.workshop,))
    _, token = invite(d, s.owner, s.workshop, "Newcomer@Example.test", "dispatcher")
    d.conn.commit()
    result = worker.deliver(dt.datetime.now(dt.UTC), limit=10, kinds=["email.send"])
    assert result["sent"] == 1 and result["dead"] == 0
    [file] = list(folder.glob("*.eml"))
    msg: Any = email.message_from_bytes(file.read_bytes(), policy=email.policy.default)
    assert msg["To"] == "newcomer@example.test"
    assert msg["Subject"] == "Olive Owner invites you to join Bay <b>Motors</b> on Auto Doctor"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert f"https://app.autodoctor.test/workshops/join?token={token}" in text and "as dispatcher" in text
    assert "Bay &lt;b&gt;Motors&lt;/b&gt;" in html and "<b>Motors</b>" not in html


def test_render_needs_no_account_context() -> None:
    rendered = mail.render("workshop_invitation", {
        "name": "newcomer", "timezone": "UTC", "inviter_name": "Olive", "workshop_name": "Bay Motors",
        "role": "mechanic", "token": "abc-_123", "expires_at": "2026-12-06T20:00:00+00:00"})
    assert "Sun 06 Dec 2026, 20:00 UTC" in rendered.text and "token=abc-_123" in rendered.text
