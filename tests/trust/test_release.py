"""Accept-and-release: a mechanic who releases an accepted request cannot take it again; reaching
trust.max_releases_per_hour (3) pauses its accepting (too_many_releases) for trust.release_cooldown
(30 min); the customer hears of an assignment only once it held for
notifications.assignment_notice_delay (2 min), so an accept-and-release emails nobody."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from typing import Any

import psycopg
import pytest

from shared import db as shared_db
from shared import worker
from shared.config import get_settings
from shared.errors import error_code
from tests.support.factories import accept, make_customer, make_intake, make_mechanic, make_world, request_free
from tests.support.harness import Db
from tests.support.personas import call_as, race

TOO_MANY, RELEASED, BUSY = "AD120", "AD121", "AD010"
VIN, PLATE = "1HGCM82633A004352", "XYZ 987"


def _release(db: Db, mechanic: uuid.UUID, request_id: Any) -> None:
    with db.as_user(mechanic):
        assert db.rpc("cancel_request", p_request_id=request_id)["status"] == "pending"


def test_released_request_cannot_be_accepted_again_by_that_mechanic(db):
    w = make_world(db)
    accept(db, w.other_mechanic, w.request)
    _release(db, w.other_mechanic, w.request)
    assert db.one("select request_id, mechanic_id from private.request_releases") == {
        "request_id": w.request, "mechanic_id": w.other_mechanic}
    with db.as_user(w.other_mechanic):
        assert db.rpc_error("accept_request", p_request_id=w.request) == RELEASED
    assert db.scalar("select status from public.session_requests where id = %s", (w.request,)) == "pending"
    accept(db, w.mechanic, w.request)  # the others still may
    # an admin may still offer it to the mechanic who released it, which may then accept it
    _release(db, w.mechanic, w.request)
    with db.as_user(w.admin):
        assert db.rpc("admin_assign_request", p_request_id=w.request, p_mechanic_id=w.other_mechanic)["status"] \
            == "offered"
    with db.as_user(w.other_mechanic):
        assert db.rpc("accept_request", p_request_id=w.request)["status"] == "accepted"


def test_too_many_releases_pause_accepting_for_the_cooldown(db):
    mechanic = make_mechanic(db, name="Rita Releaser")
    customers = [make_customer(db, f"Customer {i}") for i in range(6)]
    requests = [request_free(db, c)["request_id"] for c in customers]
    for request_id in requests[:3]:
        accept(db, mechanic, request_id)
        _release(db, mechanic, request_id)
    blocked_until = db.scalar("select releases_blocked_until from public.mechanics where id = %s", (mechanic,))
    assert blocked_until is not None
    assert db.scalar("select %s - now()", (blocked_until,)) == dt.timedelta(minutes=30)
    with db.as_user(mechanic):
        for request_id in requests[3:]:
            assert db.rpc_error("accept_request", p_request_id=request_id) == TOO_MANY
    assert db.scalar("select count(*) from public.session_requests where id = any(%s) and status = 'pending'",
                     ([uuid.UUID(r) for r in requests],)) == 6
    # the accept path as of 29 and 31 minutes later: still paused, then accepting again
    assert error_code(db.error("select private.assign_request(%s, %s, now() + interval '29 minutes')",
                               (requests[3], mechanic))) == TOO_MANY
    assert db.scalar("select private.assign_request(%s, %s, now() + interval '31 minutes') ->> 'status'",
                     (requests[3], mechanic)) == "accepted"


def test_two_releases_do_not_pause(db):
    mechanic = make_mechanic(db, name="Two Times")
    requests = [request_free(db, make_customer(db))["request_id"] for _ in range(3)]
    for request_id in requests[:2]:
        accept(db, mechanic, request_id)
        _release(db, mechanic, request_id)
    assert db.scalar("select releases_blocked_until from public.mechanics where id = %s", (mechanic,)) is None
    assert accept(db, mechanic, requests[2])["status"] == "accepted"


def test_releases_older_than_an_hour_do_not_count(db):
    mechanic = make_mechanic(db, name="Slow Releaser")
    requests = [request_free(db, make_customer(db))["request_id"] for _ in range(4)]
    for request_id in requests[:2]:
        accept(db, mechanic, request_id)
        _release(db, mechanic, request_id)
    db.execute("update private.request_releases set released_at = now() - interval '61 minutes'")
    accept(db, mechanic, requests[2])
    _release(db, mechanic, requests[2])  # one in the last hour
    assert db.scalar("select releases_blocked_until from public.mechanics where id = %s", (mechanic,)) is None
    assert accept(db, mechanic, requests[3])["status"] == "accepted"


def test_assignment_notice_waits_and_is_due_only_while_held(db):
    w = make_world(db)
    accept(db, w.mechanic, w.request)
    row = db.one("select next_attempt_at - now() as wait, payload from private.outbox "
                 "where payload ->> 'template' = 'mechanic_assigned'")
    assert row["wait"] == dt.timedelta(minutes=2)
    assert row["payload"]["data"] == {"mechanic_id": str(w.mechanic)}
    due = "select private.email_still_due('mechanic_assigned', %s, %s)"
    assert db.scalar(due, (w.session, psycopg.types.json.Jsonb({"mechanic_id": str(w.mechanic)}))) is True
    assert db.scalar(due, (w.session, psycopg.types.json.Jsonb({"mechanic_id": str(w.other_mechanic)}))) is False
    assert db.scalar(due, (w.session, psycopg.types.json.Jsonb({}))) is False
    _release(db, w.mechanic, w.request)
    assert db.scalar(due, (w.session, psycopg.types.json.Jsonb({"mechanic_id": str(w.mechanic)}))) is False
    # other templates are always due
    assert db.scalar("select private.email_still_due('booking_confirmed', %s, '{}')", (w.session,)) is True


@pytest.fixture
def committed(fresh_url, monkeypatch, tmp_path):
    """A database with committed state, the worker pointed at it, emails written as files."""
    monkeypatch.setenv("DATABASE_URL", fresh_url)
    monkeypatch.setenv("EMAIL_FILES_DIR", str(tmp_path / "mail"))
    monkeypatch.delenv("RESEND_API_KEY", raising=False)
    get_settings.cache_clear()
    shared_db.close_pool()
    conn = psycopg.connect(fresh_url, prepare_threshold=None)
    conn.execute("select 1")
    yield Db(conn), fresh_url, tmp_path / "mail"
    conn.close()
    shared_db.close_pool()
    get_settings.cache_clear()


def _customer_with_contact(db: Db, i: int) -> tuple[uuid.UUID, uuid.UUID]:
    customer = make_customer(db, f"Customer {i}")
    db.execute("update public.profiles set phone = %s where id = %s", (f"+1 555 {1000 + i}", customer))
    with db.as_user(customer):
        vehicle = db.scalar("insert into public.vehicles (make, model, year, vin, plate) values "
                            "('Honda', 'Civic', 2018, %s, %s) returning id", (VIN, PLATE))
    intake = make_intake(db, customer, vehicle, vin=VIN, plate=PLATE, contact_email=f"c{i}@example.test",
                         contact_phone=f"+1 555 {2000 + i}")
    return customer, uuid.UUID(request_free(db, customer, intake=intake)["request_id"])


def test_accept_read_release_loop_over_fifty_requests_harvests_nothing_and_emails_nobody(committed):
    db, url, _ = committed
    harvester = make_mechanic(db, name="Harvey Harvester")
    opened = [_customer_with_contact(db, i) for i in range(50)]
    db.conn.commit()
    # as the superuser: fifty intakes with email, phone, VIN and plate, fifty profiles with a phone
    assert db.scalar("select count(*) from public.intakes where contact_phone is not null and vin is not null "
                     "and plate is not null and status = 'pending'") == 50
    assert db.scalar("select count(*) from public.profiles where phone is not null") == 50

    harvested: list[Any] = []
    outcomes: Counter[str] = Counter()
    client = psycopg.connect(url, autocommit=True, prepare_threshold=None)
    try:
        for customer, request_id in opened:
            kind, value = call_as(client, harvester, "select public.accept_request(%s)", (request_id,))
            outcomes["accepted" if kind == "ok" else value] += 1
            if kind != "ok":
                continue
            for query, arg in (
                ("select contact_email, contact_phone, vin, plate from public.intakes i "
                 "where i.id = (select intake_id from public.sessions where id = %s)",
                 value["session_id"]),
                ("select phone from public.profiles where id = %s", customer),
                ("select vin, plate from public.vehicles where owner_id = %s", customer),
            ):
                kind_read, rows = call_as(client, harvester, f"select coalesce(json_agg(t), '[]') from ({query}) t",
                                          (arg,))
                assert kind_read == "ok"
                harvested.extend(rows)
            assert call_as(client, harvester, "select public.cancel_request(%s)", (request_id,))[0] == "ok"
    finally:
        client.close()

    assert harvested == []
    # stopped after three releases (or, first, by a per-user rate limit on write calls)
    names = {r["sqlstate"]: r["name"] for r in db.all("select sqlstate, name from private.error_codes")}
    assert outcomes["accepted"] == 3 and sum(outcomes.values()) == 50
    assert {names.get(code, code) for code in outcomes if code != "accepted"} <= {"too_many_releases", "rate_limited"}
    db.conn.rollback()
    assert db.scalar("select releases_blocked_until > now() from public.mechanics where id = %s", (harvester,))
    assert db.scalar("select count(*) from public.session_requests where status = 'pending'") == 50
    assert db.scalar("select count(*) from private.request_releases where mechanic_id = %s", (harvester,)) == 3

    # after the delay the jobs run: the three notices are skipped, nothing reaches a customer
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=3)
    worker.deliver(later, limit=500, kinds=["email.send"])
    db.conn.rollback()
    notices = db.all("select status::text as status, count(*) as n from private.outbox "
                     "where payload ->> 'template' = 'mechanic_assigned' group by 1")
    assert notices == [{"status": "skipped", "n": 3}]


def test_assignment_that_holds_is_notified_after_the_delay(committed):
    db, _, folder = committed
    w = make_world(db)
    accept(db, w.mechanic, w.request)
    db.conn.commit()
    now = dt.datetime.now(dt.UTC)
    worker.deliver(now, limit=100, kinds=["email.send"])
    db.conn.rollback()
    assert db.scalar("select status::text from private.outbox where payload ->> 'template' = 'mechanic_assigned'") \
        == "pending"  # not yet: the assignment has not held two minutes
    worker.deliver(now + dt.timedelta(minutes=3), limit=100, kinds=["email.send"])
    db.conn.rollback()
    assert db.scalar("select status::text from private.outbox where payload ->> 'template' = 'mechanic_assigned'") \
        == "sent"
    subjects = [f.read_text(errors="replace") for f in folder.glob("*.eml")]
    assert sum("is ready for your session" in text for text in subjects) == 1


def test_third_release_racing_an_accept_never_lets_the_accept_through(committed):
    """The mechanic releases its third request while another of its accepts runs: the accept sees
    either the job it still holds (mechanic_busy) or the pause (too_many_releases), never neither."""
    db, url, _ = committed
    outcomes: Counter[str] = Counter()
    for round_no in range(4):
        mechanic = make_mechanic(db, name=f"Racer {round_no}")
        requests = [request_free(db, make_customer(db))["request_id"] for _ in range(4)]
        for request_id in requests[:2]:
            accept(db, mechanic, request_id)
            _release(db, mechanic, request_id)
        accept(db, mechanic, requests[2])
        db.conn.commit()
        conns = [psycopg.connect(url, autocommit=True, prepare_threshold=None) for _ in range(2)]
        try:
            release, take = race([(conns[0], mechanic, "select public.cancel_request(%s)", (requests[2],)),
                                  (conns[1], mechanic, "select public.accept_request(%s)", (requests[3],))])
        finally:
            for c in conns:
                c.close()
        assert release[0] == "ok"
        assert take[0] == "err" and take[1] in (BUSY, TOO_MANY), take
        outcomes[take[1]] += 1
        db.conn.rollback()
        assert db.scalar("select releases_blocked_until is not null from public.mechanics where id = %s", (mechanic,))
        assert db.scalar("select status from public.session_requests where id = %s", (requests[3],)) == "pending"
    assert sum(outcomes.values()) == 4
