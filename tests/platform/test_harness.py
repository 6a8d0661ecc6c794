"""The harness itself: the `db` fixture really rolls back, personas set what PostgREST sets."""

from __future__ import annotations

import psycopg

from tests.support.harness import Db


def test_db_statements_are_savepoints_of_one_uncommitted_transaction(db: Db, session_url: str) -> None:
    assert db.conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    user = db.make_user()
    assert db.scalar("select count(*) from auth.users where id = %s", (user,)) == 1
    # another connection does not see it: nothing was committed
    with psycopg.connect(session_url) as other:
        assert other.execute("select count(*) from auth.users where id = %s", (user,)).fetchone()[0] == 0
    # a failing statement does not abort the test's transaction
    assert db.error("select 1/0").sqlstate == "22012"
    assert db.scalar("select count(*) from auth.users where id = %s", (user,)) == 1


def test_personas_set_role_and_claims_like_postgrest(db: Db) -> None:
    user = db.make_user("me@example.test", app_metadata={"tier": "gold"})
    with db.as_user(user):
        row = db.one(
            "select current_user as role, current_setting('request.jwt.claims')::jsonb as claims,"
            " current_setting('request.method') as method, current_setting('search_path') as path"
        )
    assert row["role"] == "authenticated"
    assert row["claims"]["sub"] == str(user)
    assert row["claims"]["email"] == "me@example.test"
    assert row["claims"]["app_metadata"] == {"provider": "email", "providers": ["email"], "tier": "gold"}
    assert (row["method"], row["path"]) == ("POST", "public, extensions")
    # leaving the persona restores the superuser and clears the claims
    assert db.scalar("select current_user") == "postgres"
    assert db.scalar("select current_setting('request.jwt.claims', true)") == ""
