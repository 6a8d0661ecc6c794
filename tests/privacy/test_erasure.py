"""Erasure: after the grace period a person's data is gone everywhere, money records stay."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import psycopg
import pytest

from shared import db as shared_db
from shared import worker
from shared.config import get_settings
from shared.dev.stubs.server import Recorded, StubServer
from tests.support.delivery import deliver
from tests.support.factories import accept, make_admin, make_customer, make_mechanic, request_free
from tests.support.harness import Db
from tests.support.ops_privacy import marker_person, scan_for
from tests.support.personas import race

LATER = "now() + interval '31 days'"
MONEY = ("payments", "refunds", "payouts", "credit_ledger", "referral_fees", "transfer_reversals")


def money_state(db: Db) -> dict[str, Any]:
    state: dict[str, Any] = {
        view: db.all(f"select * from private.{view} order by 1")
        for view in ("payment_integrity_issues", "credit_integrity_issues", "referral_integrity_issues")
    }
    for table in MONEY:
        state[table] = db.all(f"select to_jsonb(t) as r from public.{table} t order by id")
    return state


def add_object(db: Db, owner: uuid.UUID, name: str) -> None:
    db.execute(
        "insert into storage.buckets (id, name) values ('session-files', 'session-files') on conflict do nothing"
    )
    db.execute(
        "insert into storage.objects (bucket_id, name, owner, owner_id) values ('session-files', %s, %s, %s)",
        (name, owner, str(owner)),
    )


def erase(db: Db, user: uuid.UUID, when: str = LATER) -> dict[str, Any]:
    return dict(db.scalar(f"select private.erase_account(%s, {when})", (user,)))


def test_after_erasure_no_column_holds_the_person_and_money_is_unchanged(db: Db) -> None:
    mechanic = make_mechanic(db)
    person = marker_person(db, mechanic=mechanic)
    add_object(db, person.id, f"sessions/{person.session}/photo.jpg")
    assert len(scan_for(db, person.markers)) >= 8  # the markers are everywhere before
    before = money_state(db)
    with db.as_user(person.id):
        out = db.rpc("request_account_deletion")
    assert out["status"] == "pending" and out["already_requested"] is False
    grace = db.scalar("select %s::timestamptz - now()", (out["due_at"],))
    assert grace == dt.timedelta(days=30)
    job = db.one(
        "select * from private.outbox where kind = 'privacy.erase_account' and payload ->> 'user_id' = %s",
        (str(person.id),),
    )
    assert job is not None and job["next_attempt_at"] == db.scalar("select %s::timestamptz", (out["due_at"],))
    # not due yet: nothing happens
    assert erase(db, person.id, "now()")["status"] == "not_due"
    assert db.scalar("select full_name from public.profiles where id = %s", (person.id,)) == person.name

    result = erase(db, person.id)
    assert result["status"] == "erased"
    assert result["objects"] == [{"bucket": "session-files", "name": f"sessions/{person.session}/photo.jpg"}]
    assert scan_for(db, person.markers) == []
    assert money_state(db) == before
    user = db.one("select email, phone, raw_user_meta_data, banned_until from auth.users where id = %s", (person.id,))
    assert user is not None and user["email"] == f"erased+{person.id}@invalid" and user["phone"] is None
    assert user["raw_user_meta_data"] == {}
    assert user["banned_until"] > db.scalar("select now() + interval '99 years'")
    assert (
        db.scalar(
            "select count(*) from public.chat_messages where sender_id = %s and content <> '[erased]'", (person.id,)
        )
        == 0
    )
    review = db.one(
        "select rating, reviewer_first_name, body from public.mechanic_reviews where customer_id = %s", (person.id,)
    )
    assert review == {"rating": 5, "reviewer_first_name": None, "body": None}
    # the money rows still point at the same id
    assert db.scalar("select count(*) from public.payments where customer_id = %s", (person.id,)) >= 1
    # erasing again is a no-op; the export and a new request are refused
    assert erase(db, person.id)["status"] == "erased"
    with db.as_user(person.id):
        assert db.rpc_error("export_my_data") == "AD282"
        assert db.rpc_error("request_account_deletion") == "AD282"


def test_cancel_within_the_grace_stops_the_erasure(db: Db) -> None:
    person = marker_person(db)
    with db.as_user(person.id):
        db.rpc("request_account_deletion")
        assert db.rpc("cancel_account_deletion")["status"] == "cancelled"
        assert db.rpc_error("cancel_account_deletion") == "AD281"
    assert erase(db, person.id)["status"] == "cancelled"
    assert db.scalar("select full_name from public.profiles where id = %s", (person.id,)) == person.name
    assert len(scan_for(db, [person.email])) > 0
    # asking again starts a new grace period with a job of its own
    with db.as_user(person.id):
        again = db.rpc("request_account_deletion")
    assert again["status"] == "pending" and again["already_requested"] is False
    keys = [
        r["dedupe_key"]
        for r in db.all(
            "select dedupe_key from private.outbox where kind = 'privacy.erase_account' and payload ->> 'user_id' = %s"
            " order by id",
            (str(person.id),),
        )
    ]
    assert keys == [f"privacy.erase_account:{person.id}:1", f"privacy.erase_account:{person.id}:2"]
    assert erase(db, person.id)["status"] == "erased"


def test_a_second_request_is_idempotent(db: Db) -> None:
    customer = make_customer(db)
    with db.as_user(customer):
        first = db.rpc("request_account_deletion")
        db.execute("select pg_sleep(0)")
        second = db.rpc("request_account_deletion")
    assert second["already_requested"] is True and second["due_at"] == first["due_at"]
    assert (
        db.scalar(
            "select count(*) from private.outbox where kind = 'privacy.erase_account' and payload ->> 'user_id' = %s",
            (str(customer),),
        )
        == 1
    )


def test_nobody_can_request_or_cancel_anothers_deletion(db: Db) -> None:
    person = marker_person(db)
    other = make_customer(db)
    with db.as_user(person.id):
        db.rpc("request_account_deletion")
    # the RPCs take no user: another customer acts on their own account only
    with db.as_user(other):
        assert db.rpc_error("cancel_account_deletion") == "AD281"
    assert db.scalar("select status from private.account_deletions where user_id = %s", (person.id,)) == "pending"
    with db.as_anon():
        assert db.rpc_error("request_account_deletion") == "42501"
        assert db.rpc_error("cancel_account_deletion") == "42501"
    with db.as_role("authenticated", {"role": "authenticated"}):
        assert db.rpc_error("request_account_deletion") == "AD002"
    # nobody reads the requests directly
    for user in (other, person.id):
        with db.as_user(user):
            assert db.error("select * from private.account_deletions").sqlstate == "42501"


def test_admins_list_pending_deletions_and_the_reading_is_audited(db: Db) -> None:
    customer = make_customer(db)
    mechanic = make_mechanic(db)
    admin = make_admin(db)
    with db.as_user(customer):
        db.rpc("request_account_deletion")
    for user in (customer, mechanic):
        with db.as_user(user):
            assert db.rpc_error("admin_account_deletions") == "AD003"
    with db.as_user(admin):
        rows = db.all("select * from public.admin_account_deletions(p_status => 'pending')")
        assert db.rpc_error("admin_account_deletions", p_status="nope") == "AD001"
    assert str(customer) in {r["admin_account_deletions"]["user_id"] for r in rows}
    assert (
        db.scalar(
            "select count(*) from private.admin_actions where admin_id = %s and action = 'privacy.list_deletions'",
            (admin,),
        )
        == 1
    )


def test_a_mechanic_with_open_work_or_held_money_cannot_be_erased(db: Db) -> None:
    mechanic = make_mechanic(db)
    customer = make_customer(db)
    out = request_free(db, customer)
    accept(db, mechanic, out["request_id"])
    with db.as_user(mechanic):
        err = db.error("select public.request_account_deletion()")
    assert err.sqlstate == "AD280" and "open_sessions" in str(err) and "accepted_requests" in str(err)
    # the customer of an open session cannot leave it behind either
    with db.as_user(customer):
        assert db.rpc_error("request_account_deletion") == "AD280"
    # paid work delivered: the payouts are not paid yet
    paid_mechanic = make_mechanic(db)
    marker_person(db, mechanic=paid_mechanic)
    with db.as_user(paid_mechanic):
        err = db.error("select public.request_account_deletion()")
    assert err.sqlstate == "AD280" and "unsettled_payouts" in str(err)
    assert (
        db.scalar(
            "select count(*) from private.account_deletions where user_id = any(%s)",
            ([mechanic, customer, paid_mechanic],),
        )
        == 0
    )


def test_open_work_that_appears_during_the_grace_blocks_the_job_until_settled(db: Db) -> None:
    """A mechanic asks to be erased, then takes work (or a refund claim arrives): the job finds it,
    keeps the account, records what remains and retries."""
    mechanic = make_mechanic(db, name="Mona Escaper")
    with db.as_user(mechanic):
        db.rpc("request_account_deletion")
    customer = make_customer(db)
    out = request_free(db, customer)
    accept(db, mechanic, out["request_id"])
    result = erase(db, mechanic)
    assert result["status"] == "blocked" and {r["item"] for r in result["remaining"]} >= {"accepted_requests"}
    row = db.one("select status, attempts, remaining from private.account_deletions where user_id = %s", (mechanic,))
    assert row is not None and row["status"] == "blocked" and row["attempts"] == 1
    assert db.scalar("select display_name from public.mechanics where id = %s", (mechanic,)) == "Mona Escaper"
    # the customer reports a problem: still blocked while it is undecided
    deliver(db, out["session_id"])
    with db.as_user(customer):
        db.rpc("report_problem", p_session_id=out["session_id"], p_reason="the mechanic never answered")
    result = erase(db, mechanic)
    assert result["status"] == "blocked"
    assert {r["item"] for r in result["remaining"]} == {"undecided_problem_reports"}
    assert db.scalar("select status from private.account_deletions where user_id = %s", (mechanic,)) == "blocked"


def test_a_customer_erased_keeps_the_mechanics_charges_as_they_were(db: Db) -> None:
    """A customer who is refunded and then erased: the refund, the payment and the payouts stay
    exactly as they were (no money row is touched by the erasure)."""
    mechanic = make_mechanic(db)
    person = marker_person(db, mechanic=mechanic)
    with db.as_user(make_admin(db)):
        refund = db.rpc("admin_refund", p_session_id=person.paid_session, p_reason="customer complaint")
    assert refund
    assert db.scalar("select count(*) from public.refunds where customer_id = %s", (person.id,)) == 1
    before = money_state(db)
    payouts = db.all("select to_jsonb(p) as r from public.payouts p where mechanic_id = %s order by id", (mechanic,))
    with db.as_user(person.id):
        db.rpc("request_account_deletion")
    assert erase(db, person.id)["status"] == "erased"
    assert money_state(db) == before
    assert (
        db.all("select to_jsonb(p) as r from public.payouts p where mechanic_id = %s order by id", (mechanic,))
        == payouts
    )


@pytest.fixture
def storage_env(fresh_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    deleted: list[tuple[str, list[str]]] = []

    def responder(rec: Recorded) -> tuple[int, Any]:
        bucket = rec.path.rsplit("/", 1)[1]
        names = rec.json()["prefixes"]
        deleted.append((bucket, names))
        # what Storage does: the bytes and the rows go
        with psycopg.connect(fresh_url, autocommit=True) as conn:
            conn.execute("set storage.allow_delete_query = 'true'")
            conn.execute("delete from storage.objects where bucket_id = %s and name = any(%s)", (bucket, names))
        return 200, [{"name": n} for n in names]

    stub = StubServer(responder)
    monkeypatch.setenv("DATABASE_URL", fresh_url)
    monkeypatch.setenv("SUPABASE_URL", stub.url)
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", "service-key-for-tests")
    get_settings.cache_clear()
    shared_db.close_pool()
    conn = psycopg.connect(fresh_url)
    conn.execute("select 1")
    yield Db(conn), stub, deleted
    conn.close()
    stub.httpd.shutdown()
    shared_db.close_pool()
    get_settings.cache_clear()


def test_the_job_erases_the_person_and_deletes_their_files_through_storage(storage_env: Any) -> None:
    d, stub, deleted = storage_env
    person = marker_person(d)
    add_object(d, person.id, f"sessions/{person.session}/a.jpg")
    add_object(d, person.id, f"sessions/{person.session}/b.jpg")
    with d.as_user(person.id):
        out = d.rpc("request_account_deletion")
    d.conn.commit()
    due = d.scalar("select %s::timestamptz", (out["due_at"],))
    # before the grace ends the job is not even claimed
    assert worker.deliver(due - dt.timedelta(minutes=1), kinds=["privacy.erase_account"])["claimed"] == 0
    result = worker.deliver(due + dt.timedelta(minutes=1), kinds=["privacy.erase_account"])
    assert result["sent"] == 1, result
    assert deleted == [("session-files", [f"sessions/{person.session}/a.jpg", f"sessions/{person.session}/b.jpg"])]
    assert stub.calls[0].method == "DELETE" and stub.calls[0].headers["Authorization"] == "Bearer service-key-for-tests"
    assert d.scalar("select count(*) from storage.objects where owner_id = %s", (str(person.id),)) == 0
    assert scan_for(d, person.markers) == []
    assert d.scalar("select status from private.account_deletions where user_id = %s", (person.id,)) == "erased"


def test_the_job_waits_and_retries_while_work_is_open(storage_env: Any) -> None:
    d, _stub, deleted = storage_env
    mechanic = make_mechanic(d)
    document = f"mechanics/{mechanic}/licence/licence.pdf"
    d.execute(
        "insert into storage.objects (bucket_id, name, owner, owner_id) values ('mechanic-documents', %s, %s, %s)",
        (document, mechanic, str(mechanic)),
    )
    with d.as_user(mechanic):
        out = d.rpc("request_account_deletion")
    customer = make_customer(d)
    req = request_free(d, customer)
    accept(d, mechanic, req["request_id"])
    d.conn.commit()
    due = d.scalar("select %s::timestamptz", (out["due_at"],))
    first = worker.deliver(due + dt.timedelta(minutes=1), kinds=["privacy.erase_account"])
    assert first["retry"] == 1 and first["sent"] == 0
    job = d.one(
        "select status, last_error from private.outbox where kind = 'privacy.erase_account'"
        " and payload ->> 'user_id' = %s",
        (str(mechanic),),
    )
    assert job is not None and job["status"] == "pending" and "accepted_requests" in job["last_error"]
    assert d.scalar("select status from private.account_deletions where user_id = %s", (mechanic,)) == "blocked"
    # settled: an admin ends the session; the next attempt (an hour later) erases
    with d.as_user(make_admin(d)):
        d.rpc("admin_force_end_session", p_session_id=req["session_id"], p_reason="settled before erasure")
    d.conn.commit()
    second = worker.deliver(due + dt.timedelta(hours=2), kinds=["privacy.erase_account"])
    assert second["sent"] == 1, second
    assert d.scalar("select status from private.account_deletions where user_id = %s", (mechanic,)) == "erased"
    # the vetting documents go with the account
    assert deleted == [("mechanic-documents", [document])]


def test_two_requests_at_once_make_one_request_and_one_job(fresh_url: str) -> None:
    with psycopg.connect(fresh_url) as setup:
        setup.execute("select 1")
        customer = make_customer(Db(setup))
        setup.commit()
    conns = [psycopg.connect(fresh_url) for _ in range(4)]
    try:
        results = race([(c, customer, "select public.request_account_deletion()", ()) for c in conns])
    finally:
        for c in conns:
            c.close()
    assert all(kind == "ok" for kind, _ in results), results
    assert sorted(r["already_requested"] for _, r in results) == [False, True, True, True]
    assert len({r["due_at"] for _, r in results}) == 1
    with psycopg.connect(fresh_url) as check:
        assert (
            check.execute(
                "select count(*) from private.outbox where kind = 'privacy.erase_account'"
                " and payload ->> 'user_id' = %s",
                (str(customer),),
            ).fetchone()[0]
            == 1
        )
        assert (
            check.execute(
                "select request_no from private.account_deletions where user_id = %s", (customer,)
            ).fetchone()[0]
            == 1
        )


def test_an_erased_mechanic_is_never_reinstated_or_approved(db: Db) -> None:
    """Erasure suspends the mechanic; no admin path brings the erased account back to work."""
    mechanic, admin = make_mechanic(db), make_admin(db)
    with db.as_user(mechanic):
        db.rpc("request_account_deletion")
    assert erase(db, mechanic)["status"] == "erased"
    assert db.scalar("select status::text from public.mechanics where id = %s", (mechanic,)) == "suspended"
    with db.as_user(admin):
        assert db.rpc_error("admin_reinstate_mechanic", p_mechanic_id=mechanic) == "AD282"
        assert db.rpc_error("admin_set_mechanic_status", p_mechanic_id=mechanic, p_status="approved") == "AD282"
        assert db.rpc_error("admin_set_mechanic_status", p_mechanic_id=mechanic, p_status="pending") == "AD282"
        # suspending it again is harmless and allowed
        db.rpc("admin_set_mechanic_status", p_mechanic_id=mechanic, p_status="suspended")
    assert db.scalar("select status::text from public.mechanics where id = %s", (mechanic,)) == "suspended"
