"""The simulation's invariants: a clean marketplace passes every check, and each violation made by
hand (as the owner, inside the test's rolled-back transaction) is caught with evidence naming it."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

from shared.dev.sim import invariants
from shared.dev.sim.invariants import Check, CheckContext, CheckResult, check_all
from tests.support.factories import World, accept, make_customer, make_world, request_free
from tests.support.harness import Db

CTX = CheckContext(started_at=dt.datetime.now(dt.UTC), final=False, realtime_sample=500)
FINAL = CheckContext(started_at=dt.datetime.now(dt.UTC), final=True, realtime_sample=500)


def result(db: Db, name: str, ctx: CheckContext = CTX) -> CheckResult:
    results = {r.name: r for r in check_all(db.conn, ctx)}
    return results[name]


def mentions(res: CheckResult, value: Any) -> bool:
    return str(value) in json.dumps(res.evidence, default=str)


@contextmanager
def raw(db: Db) -> Iterator[None]:
    """Writes that skip triggers (status rules, lifecycle guard, broadcasts, foreign keys): the
    owner forging a state the system must never reach."""
    db.execute("select set_config('session_replication_role', 'replica', true)")
    try:
        yield
    finally:
        db.execute("select set_config('session_replication_role', 'origin', true)")


@pytest.fixture
def world(db: Db) -> World:
    return make_world(db)


def test_checks_are_named_in_order() -> None:
    assert [c.name for c in invariants.CHECKS] == [
        "one_job_per_mechanic", "no_overlapping_commitments", "money_integrity", "requests_terminal_or_open",
        "sessions_within_deadline", "emails_accounted", "realtime_rls", "paid_sessions_settled",
    ]
    assert all(c.description for c in invariants.CHECKS)


def test_a_clean_marketplace_passes_every_check(db: Db, world: World) -> None:
    accept(db, world.mechanic, world.request)  # a waiting session, an in_progress commitment, broadcasts
    request_free(db, world.other_customer)     # an open request
    for ctx in (CTX, FINAL):
        results = check_all(db.conn, ctx)
        assert [(r.name, r.count) for r in results] == [(c.name, 0) for c in invariants.CHECKS], results
    rls = result(db, "realtime_rls").evidence[0]
    assert rls["messages_sampled"] > 0 and rls["probes"] > rls["messages_sampled"]
    assert rls["missed_by_intended_recipient"] == 0


# -- one_job_per_mechanic ------------------------------------------------------------------------
def test_one_job_catches_a_second_live_session(db: Db, world: World) -> None:
    accept(db, world.mechanic, world.request)
    second = uuid.UUID(request_free(db, world.other_customer)["session_id"])
    with raw(db):
        db.execute("update public.sessions set status = 'live', mechanic_id = %s, started_at = now(), "
                   "deadline_at = now() + interval '10 minutes' where id = %s", (world.mechanic, second))
    res = result(db, "one_job_per_mechanic")
    assert res.count == 1
    assert res.evidence[0]["problem"] == "holds two jobs now"
    assert res.evidence[0]["mechanic_id"] == str(world.mechanic)
    assert set(res.evidence[0]["sessions"]) == {str(world.session), str(second)}


def test_a_booked_session_opened_for_joining_is_held_only_once_live(db: Db, world: World) -> None:
    """A booked session opens (`waiting`) before its time while its mechanic may still finish other
    work; its time is a confirmed commitment, not held work, until it goes live."""
    accept(db, world.mechanic, world.request)
    ids = request_free(db, world.other_customer)
    booked = uuid.UUID(ids["session_id"])
    with raw(db):
        db.execute("delete from public.session_requests where id = %s", (ids["request_id"],))
        db.execute("update public.sessions set status = 'waiting', mechanic_id = %s, "
                   "scheduled_for = now() + interval '10 minutes' where id = %s", (world.mechanic, booked))
    assert result(db, "one_job_per_mechanic").count == 0
    with raw(db):
        db.execute("update public.sessions set status = 'live', started_at = now(), "
                   "deadline_at = now() + interval '30 minutes' where id = %s", (booked,))
    res = result(db, "one_job_per_mechanic")
    assert res.count == 1 and mentions(res, booked) and mentions(res, world.session)


def test_one_job_catches_overlapping_history(db: Db, world: World) -> None:
    with raw(db):
        ids = [db.scalar("insert into public.mechanic_commitments (mechanic_id, kind, status, during) "
                         "values (%s, 'on_demand', 'done', tstzrange(now() - %s::interval, now() - %s::interval)) "
                         "returning id", (world.other_mechanic, a, b))
               for a, b in (("60 minutes", "30 minutes"), ("40 minutes", "10 minutes"))]
    res = result(db, "one_job_per_mechanic")
    assert res.count == 1
    assert res.evidence[0]["problem"] == "on-demand work overlapped in time"
    assert all(mentions(res, i) for i in ids)


def test_history_allows_the_overlap_of_racing_transaction_times(db: Db, world: World) -> None:
    """A completion and the next accept each stamp their own transaction's start: an accept that
    waited on the mechanic's lock starts a moment before the completion it waited for."""
    with raw(db):
        for a, b in (("30 minutes", "10 seconds"), ("12 seconds", "-10 minutes")):
            db.execute("insert into public.mechanic_commitments (mechanic_id, kind, status, during) "
                       "values (%s, 'on_demand', 'done', tstzrange(now() - %s::interval, now() - %s::interval))",
                       (world.other_mechanic, a, b))
    assert result(db, "one_job_per_mechanic").count == 0  # 2 s of overlap
    assert result(db, "one_job_per_mechanic", CheckContext(dt.datetime.now(dt.UTC), False, slack_s=1)).count == 1


def test_one_job_catches_two_live_spans_in_the_past(db: Db, world: World) -> None:
    second = uuid.UUID(request_free(db, world.other_customer)["session_id"])
    with raw(db):
        for session, start, end in ((world.session, "50 minutes", "20 minutes"), (second, "30 minutes", "5 minutes")):
            db.execute("update public.sessions set status = 'completed', mechanic_id = %s, "
                       "started_at = now() - %s::interval, ended_at = now() - %s::interval where id = %s",
                       (world.other_mechanic, start, end, session))
    res = result(db, "one_job_per_mechanic")
    assert res.count == 1 and res.evidence[0]["problem"] == "live in two sessions at once"
    assert mentions(res, world.session) and mentions(res, second)


# -- no_overlapping_commitments ------------------------------------------------------------------
def test_overlapping_active_commitments_are_caught(db: Db, world: World) -> None:
    db.execute("alter table public.mechanic_commitments drop constraint mechanic_commitments_no_overlap")
    with raw(db):
        ids = [db.scalar("insert into public.mechanic_commitments (mechanic_id, kind, status, during, expires_at) "
                         "values (%s, 'hold', 'held', tstzrange(now() + %s::interval, now() + %s::interval), "
                         "now() + interval '10 minutes') returning id", (world.other_mechanic, a, b))
               for a, b in (("1 day", "1 day 1 hour"), ("1 day 30 minutes", "1 day 2 hours"))]
    res = result(db, "no_overlapping_commitments")
    assert res.count == 1 and res.evidence[0]["problem"] == "active commitments overlap"
    assert {res.evidence[0]["commitment_a"], res.evidence[0]["commitment_b"]} == {str(i) for i in ids}


def test_a_commitment_left_active_after_its_session_and_a_stale_hold_are_caught(db: Db, world: World) -> None:
    accept(db, world.mechanic, world.request)
    with raw(db):
        db.execute("update public.sessions set status = 'cancelled', ended_at = now() where id = %s", (world.session,))
        hold = db.scalar("insert into public.mechanic_commitments (mechanic_id, kind, status, during, expires_at) "
                         "values (%s, 'hold', 'held', tstzrange(now() + interval '1 day', now() + interval '25 hours'),"
                         " now() - interval '1 hour') returning id", (world.other_mechanic,))
    res = result(db, "no_overlapping_commitments")
    assert res.count == 2
    assert {e["problem"] for e in res.evidence} == {"commitment still active after its session ended",
                                                    "hold past its expiry"}
    assert mentions(res, world.session) and mentions(res, hold)


# -- money_integrity -----------------------------------------------------------------------------
def test_a_payment_not_accounted_for_is_caught(db: Db, world: World) -> None:
    with raw(db):
        payment = db.scalar(
            "insert into public.payments (booking_id, customer_id, session_id, method, amount_cents, currency, "
            "transfer_group, paid_at, settled_at, platform_fee_cents, stripe_checkout_session_id) "
            "values (gen_random_uuid(), %s, %s, 'card', 5000, 'usd', 'tg_sim', now(), now(), 1000, 'cs_sim_1') returning id",
            (world.customer, world.session))
    res = result(db, "money_integrity")
    assert res.count == 1
    assert res.evidence[0]["view"] == "private.payment_integrity_issues"
    assert res.evidence[0]["payment_id"] == str(payment)
    assert res.evidence[0]["problem"] == "amount is not fully accounted for"


def test_a_credit_balance_that_disagrees_is_caught(db: Db, world: World) -> None:
    with raw(db):
        db.execute("insert into public.credit_ledger (customer_id, seq, amount_cents, balance_after_cents, kind) "
                   "values (%s, 1, 500, 700, 'grant')", (world.customer,))
    res = result(db, "money_integrity")
    assert res.count == 1
    assert res.evidence[0]["view"] == "private.credit_integrity_issues"
    assert res.evidence[0]["customer_id"] == str(world.customer)


# -- requests_terminal_or_open -------------------------------------------------------------------
def test_a_request_left_open_past_its_windows_is_caught(db: Db, world: World) -> None:
    db.execute("update public.session_requests set created_at = now() - interval '3 hours', "
               "status_changed_at = now() - interval '3 hours' where id = %s", (world.request,))
    res = result(db, "requests_terminal_or_open")
    assert res.count == 2
    assert {e["problem"].split(" (")[0] for e in res.evidence} == {"pending past requests.unattended_after",
                                                                    "open past requests.expire_after"}
    assert all(e["id"] == str(world.request) for e in res.evidence)


def test_windows_are_read_from_the_settings(db: Db, world: World) -> None:
    """A run scales the time settings: a request 40 s old is overdue when the window is 5 s."""
    fast = CheckContext(started_at=dt.datetime.now(dt.UTC), final=False, sweep_period_s=1, slack_s=0)
    db.execute("update public.session_requests set status_changed_at = now() - interval '40 seconds' "
               "where id = %s", (world.request,))
    assert result(db, "requests_terminal_or_open", fast).count == 0
    db.execute("update private.settings set value = '\"5 seconds\"' where key = 'requests.unattended_after'")
    res = result(db, "requests_terminal_or_open", fast)
    assert res.count == 1 and res.evidence[0]["id"] == str(world.request)
    assert "00:00:05" in res.evidence[0]["problem"]
    # the final checks allow one more sweep period
    assert result(db, "requests_terminal_or_open",
                  CheckContext(dt.datetime.now(dt.UTC), final=True, sweep_period_s=20, slack_s=0)).count == 0


def test_a_waiting_session_nobody_joined_and_a_stale_checkout_are_caught(db: Db, world: World) -> None:
    accept(db, world.mechanic, world.request)
    db.execute("update public.sessions set status_changed_at = now() - interval '45 minutes' where id = %s",
               (world.session,))
    with raw(db):
        booking = db.scalar("insert into public.bookings (customer_id, plan_code, intake_id, price_cents, currency, "
                            "method, status, expires_at) values (%s, 'free', %s, 2500, 'usd', 'card', 'pending', "
                            "now() - interval '1 hour') returning id", (world.customer, world.intake))
        # one whose expiry event may still be redelivered during the run (not after the drain)
        late = db.scalar("insert into public.bookings (customer_id, plan_code, intake_id, price_cents, currency, "
                         "method, status, expires_at) values (%s, 'free', %s, 2500, 'usd', 'card', 'pending', "
                         "now() - interval '5 minutes') returning id", (world.customer, world.intake))
    res = result(db, "requests_terminal_or_open")
    assert res.count == 2
    by_kind = {e["kind"]: e for e in res.evidence}
    assert by_kind["session"]["id"] == str(world.session)
    assert by_kind["session"]["problem"].startswith("the customer never joined")
    assert by_kind["booking"]["id"] == str(booking)
    final = result(db, "requests_terminal_or_open", FINAL)
    assert {e["id"] for e in final.evidence if e["kind"] == "booking"} == {str(booking), str(late)}


# -- sessions_within_deadline --------------------------------------------------------------------
def test_a_live_session_past_its_deadline_is_caught(db: Db, world: World) -> None:
    accept(db, world.mechanic, world.request)
    with raw(db):
        db.execute("update public.sessions set status = 'live', started_at = now() - interval '30 minutes', "
                   "deadline_at = now() - interval '80 seconds' where id = %s", (world.session,))
    # a micro session has no grace: 80 s past its deadline is past one sweep (60 s) + slack (10 s)
    assert db.scalar("select duration_type::text from public.sessions where id = %s", (world.session,)) == "micro"
    res = result(db, "sessions_within_deadline")
    assert res.count == 1 and res.evidence[0]["id"] == str(world.session)
    assert res.evidence[0]["problem"] == "live past deadline + grace"
    assert result(db, "sessions_within_deadline", FINAL).count == 0  # the final checks allow two sweeps


def test_a_session_that_ended_late_is_caught(db: Db, world: World) -> None:
    with raw(db):
        db.execute("update public.sessions set status = 'completed', mechanic_id = %s, "
                   "started_at = now() - interval '1 hour', deadline_at = now() - interval '40 minutes', "
                   "ended_at = now() - interval '5 minutes' where id = %s", (world.mechanic, world.session))
    res = result(db, "sessions_within_deadline")
    assert res.count == 1 and res.evidence[0]["id"] == str(world.session)
    assert res.evidence[0]["problem"] == "ended later than deadline + grace + one sweep"


# -- emails_accounted ----------------------------------------------------------------------------
def _email(db: Db, status: str, **cols: Any) -> int:
    values = {"kind": "email.send", "dedupe_key": f"sim-test-{uuid.uuid4()}", "status": status,
              "payload": json.dumps({"template": "session_ended"}), **cols}
    names = ", ".join(values)
    params = ", ".join(f"%({k})s" for k in values)
    return int(db.scalar(f"insert into private.outbox ({names}) values ({params}) returning id", values))


def test_an_email_dead_lettered_without_a_reason_is_caught(db: Db, world: World) -> None:
    dead = _email(db, "dead", attempts=8)
    _email(db, "dead", attempts=8, last_error="Resend answered 422")  # accounted for
    res = result(db, "emails_accounted")
    assert res.count == 1 and res.evidence[0]["id"] == dead
    assert res.evidence[0]["problem"] == "dead-lettered without a reason"


def test_a_claimed_email_never_reclaimed_is_caught(db: Db, world: World) -> None:
    stuck_id = _email(db, "processing", attempts=1, locked_until=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    # during the run it is lost only once the worker went past it (sent a later one of its kind)
    assert result(db, "emails_accounted").count == 0
    _email(db, "sent", attempts=1, sent_at=dt.datetime.now(dt.UTC), next_attempt_at=dt.datetime.now(dt.UTC))
    res = result(db, "emails_accounted")
    assert res.count == 1 and res.evidence[0]["id"] == stuck_id
    assert res.evidence[0]["problem"] == "lease expired and never reclaimed"


def test_at_the_end_an_overdue_email_is_lost(db: Db, world: World) -> None:
    due = _email(db, "pending", next_attempt_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    assert result(db, "emails_accounted").count == 0
    res = result(db, "emails_accounted", FINAL)
    assert res.count == 1 and res.evidence[0]["id"] == due
    assert res.evidence[0]["problem"] == "due and never claimed"


def test_a_failed_email_without_a_reason_is_caught(db: Db, world: World) -> None:
    failed = _email(db, "pending", attempts=2, next_attempt_at=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5))
    res = result(db, "emails_accounted")
    assert res.count == 1 and res.evidence[0]["id"] == failed
    assert res.evidence[0]["problem"] == "failed without a reason"


# -- realtime_rls --------------------------------------------------------------------------------
def test_a_message_seen_by_an_excluded_user_is_caught(db: Db, world: World) -> None:
    accept(db, world.mechanic, world.request)
    topic = f"session:{world.session}"
    assert db.scalar("select count(*) from realtime.messages where topic = %s", (topic,)) > 0
    db.execute("create policy sim_test_leak on realtime.messages for select to authenticated using (true)")
    res = result(db, "realtime_rls")
    assert res.count > 0
    summary, leaks = res.evidence[0], res.evidence[1:]
    assert summary["seen_by_excluded_user"] == res.count
    assert all(e["should_see"] is False and e["sees"] is True for e in leaks)
    session_leaks = [e for e in leaks if e["topic"] == topic]
    excluded = {str(world.customer), str(world.mechanic), str(world.admin)}
    assert all(e["user_id"] not in excluded for e in session_leaks)
    assert all(e["message_id"] for e in leaks)


def test_a_message_its_recipient_cannot_see_is_reported_apart(db: Db, world: World) -> None:
    db.execute("create policy sim_test_block on realtime.messages as restrictive for select to authenticated "
               "using (false)")
    res = result(db, "realtime_rls")
    assert res.count == 0  # nobody excluded sees anything
    summary = res.evidence[0]
    assert summary["missed_by_intended_recipient"] > 0
    assert any(e.get("should_see") is True and e.get("sees") is False for e in res.evidence[1:])


def test_the_probe_uses_the_realtime_topic_setting(db: Db, world: World) -> None:
    """The receive policy reads realtime.topic(): a mechanic sees its own topic's message, another does not."""
    mine = db.scalar("insert into realtime.messages (topic, extension, private, payload, event) "
                     "values (%s, 'broadcast', true, '{}', 'nudge') returning id", (f"mechanic:{world.other_mechanic}",))
    res = result(db, "realtime_rls")
    assert res.count == 0 and res.evidence[0]["missed_by_intended_recipient"] == 0
    db.execute("create policy sim_test_leak_topic on realtime.messages for select to authenticated "
               "using (topic like 'mechanic:%%')")
    res = result(db, "realtime_rls")
    assert res.count >= 1 and mentions(res, mine)


# -- paid_sessions_settled -----------------------------------------------------------------------
def test_a_delivered_session_left_unsettled_is_caught(db: Db, world: World) -> None:
    with raw(db):
        db.execute("update public.sessions set status = 'completed', delivery = 'delivered', mechanic_id = %s, "
                   "started_at = now() - interval '20 minutes', ended_at = now() where id = %s",
                   (world.mechanic, world.session))
        payment = db.scalar(
            "insert into public.payments (booking_id, customer_id, session_id, method, amount_cents, currency, "
            "transfer_group, paid_at, stripe_checkout_session_id) values (gen_random_uuid(), %s, %s, 'card', 5000, 'usd', 'tg_sim', "
            "now() - interval '30 minutes', 'cs_sim_2') returning id", (world.customer, world.session))
        db.execute("insert into public.session_events (session_id, entity, from_status, to_status, actor_role) "
                   "values (%s, 'session', 'live', 'completed', 'system')", (world.session,))
    assert result(db, "money_integrity").count == 0  # the books balance: the money is simply unsettled
    res = result(db, "paid_sessions_settled")
    assert res.count == 1 and res.evidence[0]["payment_id"] == str(payment)
    assert res.evidence[0]["session_id"] == str(world.session)


# -- check_all -----------------------------------------------------------------------------------
def test_a_session_cancelled_before_it_started_needs_its_refund(db: Db, world: World) -> None:
    with raw(db):
        payment = db.scalar(
            "insert into public.payments (booking_id, customer_id, session_id, method, amount_cents, currency, "
            "transfer_group, paid_at, stripe_checkout_session_id) values (gen_random_uuid(), %s, %s, 'card', 4000, "
            "'usd', 'tg_sim', now() - interval '1 hour', 'cs_sim_3') returning id", (world.customer, world.session))
        db.execute("update public.sessions set status = 'cancelled' where id = %s", (world.session,))
        db.execute("insert into public.session_events (session_id, entity, from_status, to_status, actor_role) "
                   "values (%s, 'session', 'pending', 'cancelled', 'system')", (world.session,))
    res = result(db, "paid_sessions_settled")
    assert res.count == 1 and res.evidence[0]["payment_id"] == str(payment)
    assert res.evidence[0]["problem"] == "cancelled from pending but not refunded in full"
    with raw(db):
        db.execute("insert into public.refunds (payment_id, customer_id, seq, amount_cents, currency, destination, "
                   "origin, status) values (%s, %s, 1, 4000, 'usd', 'card', 'automatic', 'queued')",
                   (payment, world.customer))
    assert result(db, "paid_sessions_settled").count == 0


def test_a_failing_check_is_a_result_and_the_others_still_run(db: Db, world: World,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(conn: psycopg.Connection, ctx: CheckContext) -> tuple[int, list[dict[str, Any]]]:
        conn.execute("select 1 / 0")
        return 0, []

    monkeypatch.setattr(invariants, "CHECKS", [Check("broken", "fails", broken), *invariants.CHECKS])
    results = check_all(db.conn, CTX)
    assert results[0].count == -1 and "division by zero" in results[0].evidence[0]["error"]
    assert [r.count for r in results[1:]] == [0] * (len(results) - 1)
    assert invariants.violations(results) == [results[0]]


def test_checks_run_read_only_on_their_own_connection(fresh_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def writes(conn: psycopg.Connection, ctx: CheckContext) -> tuple[int, list[dict[str, Any]]]:
        conn.execute("update private.settings set value = value where key = 'jobs.batch_size'")
        return 0, []

    monkeypatch.setattr(invariants, "CHECKS", [Check("writes", "tries to write", writes), *invariants.CHECKS])
    with psycopg.connect(fresh_url) as conn:
        db = Db(conn)
        make_customer(db)
        conn.commit()
        results = check_all(conn, FINAL)
        assert results[0].count == -1 and "read-only" in results[0].evidence[0]["error"]
        assert [r.count for r in results[1:]] == [0] * (len(results) - 1)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_a_lost_connection_raises_instead_of_failing_every_check(fresh_url: str) -> None:
    """A database restart is not a violation: check_all raises and the run checks again."""
    with psycopg.connect(fresh_url, autocommit=True) as conn, psycopg.connect(fresh_url, autocommit=True) as admin:
        assert [r.count for r in check_all(conn, FINAL)] == [0] * len(invariants.CHECKS)  # autocommit too
        admin.execute("select pg_terminate_backend(%s)", (conn.info.backend_pid,))
        with pytest.raises(psycopg.OperationalError):
            check_all(conn, FINAL)
        assert conn.broken or conn.closed
