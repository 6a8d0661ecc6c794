"""Dispatch of a workshop's micro-sessions: dispatchers (permission `dispatch`) pause and resume a
mechanic's micro-sessions, and approve the accepts of a workshop that does not accept micro-sessions
automatically within workshops.micro_approval_window; a lapsed approval returns the request to the
other mechanics as a release by the system."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from tests.support.directory import Shops, acting, make_shops, micro_request
from tests.support.factories import accept
from tests.support.harness import Db
from tests.support.personas import call_as

INVALID, NOT_AUTH, NOT_ALLOWED, NOT_FOUND = "AD001", "AD002", "AD003", "AD004"
NOT_ELIGIBLE, RELEASED = "AD070", "AD121"
PAUSED, PENDING, NOT_PENDING, WINDOW_CLOSED = "AD160", "AD161", "AD162", "AD163"
DENIED = "42501"
STAFF = ["owner", "manager", "dispatcher", "admin"]
OUTSIDERS = ["mechanic", "other_owner", "other_dispatcher", "customer", "independent"]


@pytest.fixture
def shops(db: Db) -> Shops:
    return make_shops(db)


@pytest.fixture
def manual(db: Db) -> Shops:
    """Both workshops approve their mechanics' micro accepts by hand."""
    return make_shops(db, auto_accept=False)


def paused_until(db: Db, mechanic: uuid.UUID) -> dt.datetime | None:
    return db.scalar("select micro_paused_until from public.mechanics where id = %s", (mechanic,))


def in_an_hour(db: Db) -> dt.datetime:
    return db.scalar("select now() + interval '1 hour'")


# ---------------------------------------------------------------------------------------------
# Pause and resume
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("persona", STAFF)
def test_staff_pause_and_resume(db: Db, shops: Shops, persona: str) -> None:
    until = in_an_hour(db)
    with acting(db, shops.who(persona)):
        out = db.rpc("pause_micro", p_mechanic_id=shops.a.mechanic, p_until=until)
    assert out["mechanic_id"] == str(shops.a.mechanic)
    assert paused_until(db, shops.a.mechanic) == until
    with acting(db, shops.who(persona)):
        db.rpc("resume_micro", p_mechanic_id=shops.a.mechanic)
    assert paused_until(db, shops.a.mechanic) is None


@pytest.mark.parametrize("persona", OUTSIDERS)
def test_others_cannot_pause_or_resume(db: Db, shops: Shops, persona: str) -> None:
    target = shops.a.mechanic2
    until = in_an_hour(db)
    db.execute("update public.mechanics set micro_paused_until = %s where id = %s", (until, target))
    with acting(db, shops.who(persona)):
        assert db.rpc_error("pause_micro", p_mechanic_id=target, p_until=until) == NOT_ALLOWED
        assert db.rpc_error("resume_micro", p_mechanic_id=target) == NOT_ALLOWED
    assert paused_until(db, target) == until


def test_a_mechanic_cannot_resume_itself(db: Db, shops: Shops) -> None:
    until = in_an_hour(db)
    with db.as_user(shops.a.dispatcher):
        db.rpc("pause_micro", p_mechanic_id=shops.a.mechanic, p_until=until)
    with db.as_user(shops.a.mechanic):
        assert db.rpc_error("resume_micro", p_mechanic_id=shops.a.mechanic) == NOT_ALLOWED
    assert paused_until(db, shops.a.mechanic) == until


def test_a_mechanic_cannot_write_its_pause_column(db: Db, shops: Shops) -> None:
    with db.as_user(shops.a.mechanic):
        err = db.error("update public.mechanics set micro_paused_until = null where id = %s", (shops.a.mechanic,))
    assert err.sqlstate == DENIED


def test_anon_and_unauthenticated(db: Db, shops: Shops) -> None:
    until = in_an_hour(db)
    with db.as_anon():
        assert db.rpc_error("pause_micro", p_mechanic_id=shops.a.mechanic, p_until=until) == DENIED
        assert db.rpc_error("resume_micro", p_mechanic_id=shops.a.mechanic) == DENIED
        assert db.rpc_error("approve_micro_accept", p_request_id=uuid.uuid4()) == DENIED
    with db.as_service():
        assert db.rpc_error("pause_micro", p_mechanic_id=shops.a.mechanic, p_until=until) == NOT_AUTH
    assert paused_until(db, shops.a.mechanic) is None


def test_pause_hostile_inputs(db: Db, shops: Shops) -> None:
    now = db.scalar("select now()")
    with db.as_user(shops.a.dispatcher):
        for until in (None, now - dt.timedelta(minutes=1), now, now + dt.timedelta(hours=25)):
            assert db.rpc_error("pause_micro", p_mechanic_id=shops.a.mechanic, p_until=until) == INVALID
        until = now + dt.timedelta(hours=1)
        assert db.rpc_error("pause_micro", p_mechanic_id=None, p_until=until) == INVALID
        assert db.rpc_error("pause_micro", p_mechanic_id=uuid.uuid4(), p_until=until) == NOT_FOUND
        assert db.rpc_error("pause_micro", p_mechanic_id=shops.customer, p_until=until) == NOT_FOUND
        assert db.rpc_error("pause_micro", p_mechanic_id=shops.independent, p_until=until) == NOT_ALLOWED
        assert db.rpc_error("resume_micro", p_mechanic_id=None) == INVALID
        assert db.rpc_error("resume_micro", p_mechanic_id=uuid.uuid4()) == NOT_FOUND
        assert db.error("select public.pause_micro(%s, 'tomorrow-ish')", (shops.a.mechanic,)).sqlstate == "22007"
    assert paused_until(db, shops.a.mechanic) is None


def test_a_paused_mechanic_cannot_accept_micro_until_then(db: Db, shops: Shops) -> None:
    request, _ = micro_request(db)
    with db.as_user(shops.a.dispatcher):
        db.rpc("pause_micro", p_mechanic_id=shops.a.mechanic, p_until=in_an_hour(db))
    # not offered (eligibility) and refused at accept
    excluded = db.scalar("select array_agg(x) from private.eligibility_exclusions(%s, now()) x", (request,))
    assert shops.a.mechanic in excluded and shops.a.mechanic2 not in excluded
    with db.as_user(shops.a.mechanic):
        assert db.rpc_error("accept_request", p_request_id=request) == PAUSED
    assert db.scalar("select status::text from public.session_requests where id = %s", (request,)) == "pending"
    assert db.scalar("select private.micro_eligibility(%s, 'micro', 10) ->> 'reason'",
                     (shops.a.mechanic,)) == "paused_by_dispatcher"
    # full sessions are not paused
    assert db.scalar("select private.micro_eligibility(%s, 'full', 30) ->> 'reason'", (shops.a.mechanic,)) is None
    # the pause ends by itself
    db.execute("update public.mechanics set micro_paused_until = now() - interval '1 second' where id = %s",
               (shops.a.mechanic,))
    assert accept(db, shops.a.mechanic, request)["status"] == "accepted"


def test_resume_lets_it_accept_again(db: Db, shops: Shops) -> None:
    request, _ = micro_request(db)
    with db.as_user(shops.a.dispatcher):
        db.rpc("pause_micro", p_mechanic_id=shops.a.mechanic, p_until=in_an_hour(db))
        db.rpc("resume_micro", p_mechanic_id=shops.a.mechanic)
    assert accept(db, shops.a.mechanic, request)["status"] == "accepted"


# ---------------------------------------------------------------------------------------------
# Approval of accepts
# ---------------------------------------------------------------------------------------------
def request_row(db: Db, request: uuid.UUID) -> dict:
    r = db.one("select r.status::text as status, r.mechanic_id, r.approval_pending_until, r.approved_by, "
               "s.status::text as session_status, s.mechanic_id as session_mechanic "
               "from public.session_requests r join public.sessions s on s.id = r.session_id where r.id = %s",
               (request,))
    assert r is not None
    return r


def test_an_auto_accept_workshop_does_not_wait(db: Db, shops: Shops) -> None:
    request, _ = micro_request(db)
    out = accept(db, shops.a.mechanic, request)
    assert out["approval_pending_until"] is None
    with db.as_user(shops.a.dispatcher):
        assert db.rpc_error("approve_micro_accept", p_request_id=request) == NOT_PENDING


def test_accept_waits_then_approved_in_time(db: Db, manual: Shops) -> None:
    request, session = micro_request(db)
    out = accept(db, manual.a.mechanic, request)
    until = out["approval_pending_until"]
    assert until is not None
    r = request_row(db, request)
    assert (r["status"], r["session_status"], r["session_mechanic"]) == ("accepted", "waiting", manual.a.mechanic)
    assert r["approval_pending_until"] == db.scalar(
        "select now() + private.setting_interval('workshops.micro_approval_window')")
    # waiting: the session does not start, its room stays closed, the customer is not told
    with db.as_user(manual.a.mechanic):
        assert db.rpc_error("start_session", p_session_id=session) == PENDING
    assert db.error("select private.room_grant(%s, %s)", (session, manual.a.mechanic)).sqlstate == PENDING
    assert not db.scalar("select private.email_still_due('mechanic_assigned', %s, %s)",
                         (session, psycopg.types.json.Jsonb({"mechanic_id": str(manual.a.mechanic)})))
    with db.as_user(manual.a.dispatcher):
        out = db.rpc("approve_micro_accept", p_request_id=request)
    assert out["status"] == "accepted"
    r = request_row(db, request)
    assert r["approval_pending_until"] is None and r["approved_by"] == manual.a.dispatcher
    assert db.scalar("select private.email_still_due('mechanic_assigned', %s, %s)",
                     (session, psycopg.types.json.Jsonb({"mechanic_id": str(manual.a.mechanic)})))
    assert db.scalar("select count(*) from private.outbox where payload ->> 'template' = 'mechanic_assigned' "
                     "and payload ->> 'session_id' = %s and dedupe_key like '%%:approved'", (str(session),)) == 1
    with db.as_user(manual.a.mechanic):
        assert db.rpc("start_session", p_session_id=session)["waiting_for"] == "customer"
    # approving twice
    with db.as_user(manual.a.dispatcher):
        assert db.rpc_error("approve_micro_accept", p_request_id=request) == NOT_PENDING


@pytest.mark.parametrize("persona", ["dispatcher", "owner", "manager", "admin"])
def test_dispatchers_list_what_waits_for_them(db: Db, manual: Shops, persona: str) -> None:
    request, session = micro_request(db)
    accept(db, manual.a.mechanic, request)
    other, _ = micro_request(db)
    accept(db, manual.b.mechanic, other)  # another workshop's
    with acting(db, manual.who(persona)):
        rows = db.rpc("micro_approvals_pending", p_workshop_id=manual.a.org)
    assert [(r["request_id"], r["session_id"], r["mechanic_id"]) for r in rows] == \
        [(str(request), str(session), str(manual.a.mechanic))]
    assert "contact_email" not in rows[0] and rows[0]["concern"]
    with db.as_user(manual.a.dispatcher):
        db.rpc("approve_micro_accept", p_request_id=request)
    with acting(db, manual.who(persona)):
        assert db.rpc("micro_approvals_pending", p_workshop_id=manual.a.org) == []


@pytest.mark.parametrize("persona", ["mechanic", "other_dispatcher", "other_owner", "customer", "independent"])
def test_others_cannot_list_what_waits(db: Db, manual: Shops, persona: str) -> None:
    request, _ = micro_request(db)
    accept(db, manual.a.mechanic2, request)
    with acting(db, manual.who(persona)):
        assert db.rpc_error("micro_approvals_pending", p_workshop_id=manual.a.org) == NOT_FOUND
    with db.as_anon():
        assert db.rpc_error("micro_approvals_pending", p_workshop_id=manual.a.org) == DENIED


@pytest.mark.parametrize("persona", ["owner", "manager", "admin"])
def test_other_staff_with_dispatch_approve(db: Db, manual: Shops, persona: str) -> None:
    request, _ = micro_request(db)
    accept(db, manual.a.mechanic, request)
    with acting(db, manual.who(persona)):
        db.rpc("approve_micro_accept", p_request_id=request)
    assert request_row(db, request)["approved_by"] == manual.who(persona)


@pytest.mark.parametrize("persona,code", [
    ("other_dispatcher", NOT_FOUND), ("other_owner", NOT_FOUND), ("customer", NOT_FOUND),
    ("independent", NOT_FOUND),
])
def test_outsiders_cannot_approve(db: Db, manual: Shops, persona: str, code: str) -> None:
    request, _ = micro_request(db)
    accept(db, manual.a.mechanic, request)
    with acting(db, manual.who(persona)):
        assert db.rpc_error("approve_micro_accept", p_request_id=request) == code
    assert request_row(db, request)["approval_pending_until"] is not None


def test_a_mechanic_cannot_approve_itself_nor_a_colleague(db: Db, manual: Shops) -> None:
    request, _ = micro_request(db)
    accept(db, manual.a.mechanic, request)
    with db.as_user(manual.a.mechanic2):  # a colleague without `dispatch`
        assert db.rpc_error("approve_micro_accept", p_request_id=request) == NOT_FOUND
    # even made a dispatcher, the accepting mechanic cannot approve its own accept
    db.execute("update public.organization_members set role = 'dispatcher' where user_id = %s", (manual.a.mechanic,))
    with db.as_user(manual.a.mechanic):
        assert db.rpc_error("approve_micro_accept", p_request_id=request) == NOT_ALLOWED
    assert request_row(db, request)["approval_pending_until"] is not None


def test_approve_hostile_inputs(db: Db, manual: Shops) -> None:
    request, _ = micro_request(db)
    with db.as_user(manual.a.dispatcher):
        assert db.rpc_error("approve_micro_accept", p_request_id=None) == INVALID
        assert db.rpc_error("approve_micro_accept", p_request_id=uuid.uuid4()) == NOT_FOUND
        # a pending request (nobody accepted it) belongs to no workshop
        assert db.rpc_error("approve_micro_accept", p_request_id=request) == NOT_FOUND
        assert db.error("select public.approve_micro_accept('x')").sqlstate == "22P02"
    assert request_row(db, request)["status"] == "pending"


def sweep(db: Db, at: dt.datetime) -> int:
    return db.scalar("select (private.lapse_micro_approvals(%s) ->> 'approvals_lapsed')::int", (at,))


def test_window_lapses_and_the_request_returns_to_the_others(db: Db, manual: Shops) -> None:
    db.execute("update private.settings set value = '1' where key = 'trust.max_releases_per_hour'")
    request, session = micro_request(db)
    until = accept(db, manual.a.mechanic, request)["approval_pending_until"]
    reserved = db.scalar("select private.micro_minutes_used(%s)", (manual.a.mechanic,))
    assert reserved > 0
    later = dt.datetime.fromisoformat(until) + dt.timedelta(seconds=1)
    assert sweep(db, later - dt.timedelta(seconds=2)) == 0  # not yet
    # too late to approve, even before the sweep ran
    db.execute("update public.session_requests set approval_pending_until = now() where id = %s", (request,))
    with db.as_user(manual.a.dispatcher):
        assert db.rpc_error("approve_micro_accept", p_request_id=request) == WINDOW_CLOSED
    assert sweep(db, later) == 1
    with db.as_user(manual.a.dispatcher):  # after the sweep too
        assert db.rpc_error("approve_micro_accept", p_request_id=request) == WINDOW_CLOSED
    with db.as_user(manual.b.dispatcher):  # another workshop still sees nothing
        assert db.rpc_error("approve_micro_accept", p_request_id=request) == NOT_FOUND
    r = request_row(db, request)
    assert (r["status"], r["mechanic_id"], r["approval_pending_until"], r["session_status"], r["session_mechanic"]) \
        == ("pending", None, None, "pending", None)
    assert db.scalar("select private.micro_minutes_used(%s)", (manual.a.mechanic,)) == 0
    assert db.scalar("select count(*) from public.mechanic_commitments where session_id = %s "
                     "and status = 'in_progress'", (session,)) == 0
    # a release by the system: recorded, not counted towards the release limit
    assert db.scalar("select by_system from private.request_releases where request_id = %s", (request,))
    assert db.scalar("select releases_blocked_until from public.mechanics where id = %s", (manual.a.mechanic,)) is None
    # that mechanic does not take it again (no hostage loop); the others do, its colleague included
    with db.as_user(manual.a.mechanic):
        assert db.rpc_error("accept_request", p_request_id=request) == RELEASED
    assert accept(db, manual.b.mechanic, request)["status"] == "accepted"
    # the sweep is a step of the sweep_requests job
    assert "lapse_micro_approvals" in db.scalar("select private.job_steps('sweep_requests')")


def test_a_mechanic_released_by_the_system_still_releases_as_usual(db: Db, manual: Shops) -> None:
    """The limit counts the mechanic's own releases only."""
    db.execute("update private.settings set value = '2' where key = 'trust.max_releases_per_hour'")
    db.execute("update public.organizations set auto_accept_micro = true where id = %s", (manual.a.org,))
    for _ in range(2):
        request, _ = micro_request(db)
        accept(db, manual.a.mechanic, request)
        with db.as_user(manual.a.mechanic):
            db.rpc("cancel_request", p_request_id=request)
    assert db.scalar("select releases_blocked_until from public.mechanics where id = %s",
                     (manual.a.mechanic,)) is not None


# ---------------------------------------------------------------------------------------------
# The race between an approval and the sweep
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def committed(fresh_url: str) -> Iterator[tuple[Db, list[psycopg.Connection]]]:
    conn = psycopg.connect(fresh_url, prepare_threshold=None)
    conn.execute("select 1")
    conns = [psycopg.connect(fresh_url, autocommit=True, prepare_threshold=None) for _ in range(2)]
    yield Db(conn), conns
    for c in conns:
        c.close()
    conn.close()


def race_approve_and_sweep(approver: psycopg.Connection, sweeper: psycopg.Connection, dispatcher: uuid.UUID,
                           request: uuid.UUID) -> dict[str, object]:
    """The dispatcher approves while the sweep, whose clock is past the window, runs: at once."""
    barrier = threading.Barrier(2)
    results: dict[str, object] = {}

    def approve() -> None:
        barrier.wait()
        results["approve"] = call_as(approver, dispatcher, "select public.approve_micro_accept(%s)", (request,))

    def lapse() -> None:
        barrier.wait()
        results["sweep"] = sweeper.execute(
            "select (private.lapse_micro_approvals(now() + interval '1 hour') ->> 'approvals_lapsed')::int"
        ).fetchone()[0]

    threads = [threading.Thread(target=approve), threading.Thread(target=lapse)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_approve_and_sweep_race_one_wins(committed: tuple[Db, list[psycopg.Connection]]) -> None:
    db, (approver, sweeper) = committed
    shops = make_shops(db, auto_accept=False)
    outcomes = set()
    rounds = [(shops.a.mechanic, shops.a.dispatcher), (shops.a.mechanic2, shops.a.dispatcher),
              (shops.b.mechanic, shops.b.dispatcher), (shops.b.mechanic2, shops.b.dispatcher)]
    for mechanic, dispatcher in rounds:
        request, _ = micro_request(db)
        accept(db, mechanic, request)
        db.conn.commit()
        db.conn.execute("select 1")
        results = race_approve_and_sweep(approver, sweeper, dispatcher, request)
        r = request_row(db, request)
        outcome = results["approve"]
        assert isinstance(outcome, tuple)
        if outcome[0] == "ok":
            assert results["sweep"] == 0
            assert (r["status"], r["approval_pending_until"], r["approved_by"]) == ("accepted", None, dispatcher)
            outcomes.add("approved")
        else:
            assert results["approve"] == ("err", WINDOW_CLOSED)
            assert results["sweep"] == 1
            assert (r["status"], r["mechanic_id"], r["approved_by"]) == ("pending", None, None)
            outcomes.add("lapsed")
        db.conn.commit()
        db.conn.execute("select 1")
    assert outcomes <= {"approved", "lapsed"} and outcomes  # each round ended one way, never both
