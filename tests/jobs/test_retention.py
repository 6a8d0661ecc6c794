"""Retention (docs/jobs.md#retention): each step of the `retention` job deletes or trims only the
rows that are due, keeps the recent ones and those still needed, does nothing on a second run, and
holds its batch limit; a webhook event whose payload was trimmed is still a duplicate."""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from typing import Any

import psycopg

from tests.support.delivery import deliver, paid_with_credit
from tests.support.factories import accept, make_customer, make_intake, make_mechanic, request_free
from tests.support.harness import Db
from tests.support.payments import Events, Pay

DAY = dt.timedelta(days=1)


def _now(db: Db) -> dt.datetime:
    value = db.scalar("select now()")
    assert isinstance(value, dt.datetime)
    return value


def _retain(db: Db, step: str, at: dt.datetime, limit: int | None = None) -> dict[str, Any]:
    out = db.scalar(f"select private.retain_{step}(%s, %s)", (at, limit))
    assert isinstance(out, dict)
    return out


def _job(db: Db, key: str, status: str, *, sent_at: dt.datetime | None = None,
         next_attempt_at: dt.datetime | None = None) -> None:
    db.execute("insert into private.outbox (kind, dedupe_key, payload, status, sent_at, next_attempt_at) "
               "values ('livekit.delete_room', %s, '{}', %s, %s, coalesce(%s, now()))",
               (key, status, sent_at, next_attempt_at))


def _keys(db: Db, prefix: str) -> set[str]:
    return {r["dedupe_key"] for r in db.all("select dedupe_key from private.outbox where dedupe_key like %s",
                                            (prefix + "%",))}


# ------------------------------------------------------------------------------------------------
# The job queue
# ------------------------------------------------------------------------------------------------
def test_finished_jobs_go_after_their_retention_open_ones_never(db):
    now = _now(db)
    _job(db, "ret:sent-old", "sent", sent_at=now - 31 * DAY)
    _job(db, "ret:skipped-old", "skipped", sent_at=now - 31 * DAY)
    _job(db, "ret:sent-recent", "sent", sent_at=now - 29 * DAY)
    _job(db, "ret:dead-old", "dead", next_attempt_at=now - 91 * DAY)
    _job(db, "ret:dead-recent", "dead", next_attempt_at=now - 60 * DAY)  # an admin may still retry it
    _job(db, "ret:pending-old", "pending", next_attempt_at=now - 400 * DAY)
    _job(db, "ret:processing-old", "processing", next_attempt_at=now - 400 * DAY)

    assert _retain(db, "jobs", now) == {"jobs_deleted": 2, "dead_jobs_deleted": 1}
    assert _keys(db, "ret:") == {"ret:sent-recent", "ret:dead-recent", "ret:pending-old", "ret:processing-old"}
    assert _retain(db, "jobs", now) == {"jobs_deleted": 0, "dead_jobs_deleted": 0}
    # the retention is a setting
    db.execute("update private.settings set value = '\"10 days\"' where key = 'retention.jobs_finished'")
    assert _retain(db, "jobs", now) == {"jobs_deleted": 1, "dead_jobs_deleted": 0}
    assert "ret:sent-recent" not in _keys(db, "ret:")


def test_the_batch_limit_holds_for_jobs(db):
    now = _now(db)
    for i in range(5):
        _job(db, f"ret:batch-{i}", "sent", sent_at=now - (40 + i) * DAY)
    assert _retain(db, "jobs", now, 2) == {"jobs_deleted": 2, "dead_jobs_deleted": 0}
    # oldest first
    assert _keys(db, "ret:batch-") == {"ret:batch-0", "ret:batch-1", "ret:batch-2"}
    db.execute("update private.settings set value = '1' where key = 'retention.batch_size'")
    assert _retain(db, "jobs", now) == {"jobs_deleted": 1, "dead_jobs_deleted": 0}
    assert _retain(db, "jobs", now, 10) == {"jobs_deleted": 2, "dead_jobs_deleted": 0}
    assert _keys(db, "ret:batch-") == set()


def test_a_deleted_jobs_email_delivery_record_stays(db):
    now = _now(db)
    _job(db, "ret:mail", "sent", sent_at=now - 31 * DAY)
    db.scalar("select private.record_email_sent('re_ret_1', 'ret:mail', 'session_ended', null, null, "
              "'casey@example.test', %s)", (now - 31 * DAY,))
    assert db.scalar("select outbox_id from private.email_deliveries where resend_id = 're_ret_1'") is not None
    assert _retain(db, "jobs", now)["jobs_deleted"] == 1
    row = db.one("select outbox_id, dedupe_key from private.email_deliveries where resend_id = 're_ret_1'")
    assert row == {"outbox_id": None, "dedupe_key": "ret:mail"}


# ------------------------------------------------------------------------------------------------
# Run records
# ------------------------------------------------------------------------------------------------
def test_old_run_records_go_but_the_newest_of_each_job_stays(db):
    now = _now(db)
    db.execute("delete from private.cron_runs")
    for job, age in (("cron_ret_a", 20), ("cron_ret_a", 16), ("cron_ret_a", 1), ("cron_ret_b", 30),
                     ("cron_ret_b", 15)):
        db.execute("insert into private.cron_runs (job, started_at, finished_at, ok) values (%s, %s, %s, true)",
                   (job, now - age * DAY, now - age * DAY))

    def left() -> list[tuple[str, int]]:
        return [(r["job"], round((now - r["started_at"]) / DAY))
                for r in db.all("select job, started_at from private.cron_runs order by job, started_at")]

    assert _retain(db, "cron_runs", now, 1) == {"cron_runs_deleted": 1}  # the oldest first
    assert left() == [("cron_ret_a", 20), ("cron_ret_a", 16), ("cron_ret_a", 1), ("cron_ret_b", 15)]
    assert _retain(db, "cron_runs", now) == {"cron_runs_deleted": 2}
    # cron_ret_b's only run is older than 14 days, but it is the newest of its job
    assert left() == [("cron_ret_a", 1), ("cron_ret_b", 15)]
    assert _retain(db, "cron_runs", now) == {"cron_runs_deleted": 0}


# ------------------------------------------------------------------------------------------------
# Webhook ledgers
# ------------------------------------------------------------------------------------------------
def _stripe(db: Db, event: dict[str, Any], at: dt.datetime) -> dict[str, Any]:
    out = db.scalar("select private.handle_stripe_event(%s, %s)", (json.dumps(event), at))
    assert isinstance(out, dict)
    return out


def _stripe_payload(db: Db, event_id: str) -> Any:
    return db.scalar("select payload from private.stripe_events where id = %s", (event_id,))


def test_stripe_payloads_are_trimmed_once_settled_and_the_rows_stay_for_dedupe(db):
    now, ev = _now(db), Events()
    # settled: processed, about no payment intent (an account update)
    account = ev.account("acct_" + uuid.uuid4().hex[:16])
    assert _stripe(db, account, now - 40 * DAY)["outcome"] != "duplicate"
    # settled later than the payload retention
    recent = ev.account("acct_" + uuid.uuid4().hex[:16])
    _stripe(db, recent, now - 20 * DAY)
    # a charge whose checkout has not been recorded: its payload is replayed when it is
    pi = "pi_" + uuid.uuid4().hex[:20]
    charge = ev.charge(pi, 1500)
    _stripe(db, charge, now - 40 * DAY)
    assert db.scalar("select payment_intent_id from private.stripe_events where id = %s", (charge["id"],)) == pi
    # not processed: the handler failed and Stripe is retrying
    failing = ev.account("acct_" + uuid.uuid4().hex[:16])
    db.execute("select private.record_stripe_event_error(%s, 'boom', %s)", (json.dumps(failing), now - 40 * DAY))

    out = _retain(db, "stripe_events", now)
    assert out == {"stripe_payloads_trimmed": 1, "stripe_events_deleted": 0}
    assert _stripe_payload(db, account["id"]) == {"id": account["id"], "type": "account.updated"}
    assert db.scalar("select payload_trimmed_at from private.stripe_events where id = %s", (account["id"],)) == now
    for kept in (recent, charge, failing):
        assert _stripe_payload(db, kept["id"]) == kept
    assert _retain(db, "stripe_events", now) == {"stripe_payloads_trimmed": 0, "stripe_events_deleted": 0}

    # Stripe delivers the trimmed event again: still a duplicate, nothing applied twice
    assert _stripe(db, account, now)["outcome"] == "duplicate"

    # after retention.webhook_events the processed rows go; the unprocessed one stays
    later = now + 80 * DAY  # 100 days after the most recent one was processed
    out = _retain(db, "stripe_events", later)
    assert out["stripe_events_deleted"] == 3
    left = {r["id"] for r in db.all("select id from private.stripe_events where id = any(%s)",
                                    ([account["id"], recent["id"], charge["id"], failing["id"]],))}
    assert left == {failing["id"]}


def test_the_batch_limit_holds_for_stripe_events(db):
    now, ev = _now(db), Events()
    ids = []
    for _ in range(3):
        event = ev.account("acct_" + uuid.uuid4().hex[:16])
        _stripe(db, event, now - 100 * DAY)
        ids.append(event["id"])
    assert _retain(db, "stripe_events", now, 2) == {"stripe_payloads_trimmed": 2, "stripe_events_deleted": 2}
    assert db.scalar("select count(*) from private.stripe_events where id = any(%s)", (ids,)) == 1
    assert _retain(db, "stripe_events", now, 2) == {"stripe_payloads_trimmed": 0, "stripe_events_deleted": 1}


def test_a_redelivered_stripe_event_whose_payload_was_trimmed_is_a_duplicate(pay: Pay):
    """Through the real webhook: a paid checkout, its payload trimmed, then Stripe delivers it again."""
    customer = pay.customer()
    out = pay.checkout(customer)
    booking = pay.booking(out["booking_id"])
    pi = "pi_" + uuid.uuid4().hex[:20]
    event = pay.events.completed(booking["stripe_checkout_session_id"], str(booking["id"]), booking["price_cents"], pi)
    assert pay.deliver(event)["outcome"] == "paid"
    charge = pay.events.charge(pi, booking["price_cents"])
    pay.deliver(charge)
    payments = pay.val("select count(*) from public.payments")
    later = dt.datetime.now(dt.UTC) + 31 * DAY
    trimmed = pay.val("select private.retain_stripe_events(%s)", (later,))
    pay.commit()
    assert trimmed["stripe_payloads_trimmed"] >= 2
    for sent in (event, charge):
        row = pay.row("select payload, payload_trimmed_at from private.stripe_events where id = %s", (sent["id"],))
        assert row is not None and row["payload"] == {"id": sent["id"], "type": sent["type"]}
        assert row["payload_trimmed_at"] is not None
        assert pay.deliver(sent)["outcome"] == "duplicate"
    assert pay.val("select count(*) from public.payments") == payments
    assert pay.booking(booking["id"])["status"] == "paid"
    pay.assert_books_balance()


def _livekit(db: Db, event_id: str, at: dt.datetime) -> Any:
    out = db.scalar("select private.apply_livekit_event(%s, 'room_started', 'ret-room', null, %s, %s)",
                    (event_id, at, json.dumps({"id": event_id, "event": "room_started", "room": {"name": "ret-room"}})))
    db.execute("update private.livekit_events set received_at = %s where id = %s", (at, event_id))
    return out["outcome"]


def test_livekit_payloads_are_trimmed_and_rows_go_later_duplicates_still_recognized(db):
    now = _now(db)
    old, mid, recent = (f"EV_ret_{uuid.uuid4().hex[:12]}" for _ in range(3))
    _livekit(db, old, now - 100 * DAY)
    _livekit(db, mid, now - 40 * DAY)
    _livekit(db, recent, now - 1 * DAY)
    assert _retain(db, "livekit_events", now) == {"livekit_payloads_trimmed": 2, "livekit_events_deleted": 1}
    assert db.scalar("select payload from private.livekit_events where id = %s", (mid,)) == \
        {"id": mid, "event": "room_started"}
    assert db.scalar("select payload ->> 'room' from private.livekit_events where id = %s", (recent,)) is not None
    assert db.scalar("select count(*) from private.livekit_events where id = %s", (old,)) == 0
    assert _retain(db, "livekit_events", now) == {"livekit_payloads_trimmed": 0, "livekit_events_deleted": 0}
    assert db.scalar("select private.apply_livekit_event(%s, 'room_started', 'ret-room', null, %s, '{}')",
                     (mid, now)) == {"outcome": "duplicate"}


def _resend(db: Db, event_id: str, type_: str, email_id: str, at: dt.datetime, **data: Any) -> str:
    event = {"type": type_, "created_at": at.isoformat(), "data": {"email_id": email_id, **data}}
    out = db.scalar("select private.handle_resend_event(%s, %s, %s)", (event_id, json.dumps(event), at))
    return str(out["outcome"])


def test_resend_payloads_are_trimmed_unless_still_needed(db):
    now = _now(db)
    known, unknown = "re_" + uuid.uuid4().hex[:16], "re_" + uuid.uuid4().hex[:16]
    db.scalar("select private.record_email_sent(%s, null, 'session_ended', null, null, 'ret@example.test', %s)",
              (known, now - 50 * DAY))
    delivered, bounced, orphan = (f"msg_ret_{uuid.uuid4().hex[:12]}" for _ in range(3))
    assert _resend(db, delivered, "email.delivered", known, now - 40 * DAY) != "unknown_email"
    _resend(db, bounced, "email.bounced", known, now - 40 * DAY, bounce={"type": "Permanent"})
    assert db.scalar("select count(*) from private.email_suppressions where resend_event_id = %s", (bounced,)) == 1
    # an event about an email not recorded yet: applied from its payload when it is
    assert _resend(db, orphan, "email.delivered", unknown, now - 40 * DAY) == "unknown_email"

    assert _retain(db, "resend_events", now) == {"resend_payloads_trimmed": 2, "resend_events_deleted": 0}
    assert db.scalar("select payload from private.resend_events where id = %s", (delivered,)) == \
        {"id": delivered, "type": "email.delivered"}
    assert db.scalar("select payload_trimmed_at from private.resend_events where id = %s", (orphan,)) is None
    assert _retain(db, "resend_events", now) == {"resend_payloads_trimmed": 0, "resend_events_deleted": 0}
    assert _resend(db, delivered, "email.delivered", known, now) == "duplicate"

    # the rows go after retention.webhook_events, except the one a suppression points at
    later = now + 60 * DAY
    assert _retain(db, "resend_events", later)["resend_events_deleted"] == 2
    left = {r["id"] for r in db.all("select id from private.resend_events where id = any(%s)",
                                    ([delivered, bounced, orphan],))}
    assert left == {bounced}
    assert db.scalar("select resend_event_id from private.email_suppressions where resend_event_id = %s",
                     (bounced,)) == bounced


# ------------------------------------------------------------------------------------------------
# Session status history
# ------------------------------------------------------------------------------------------------
def _events(db: Db, session: Any) -> list[str]:
    return [r["actor_role"] + ":" + r["to_status"]
            for r in db.all("select actor_role, to_status from public.session_events where session_id = %s "
                            "order by id", (session,))]


def _delivered_session(db: Db, mechanic: uuid.UUID) -> Any:
    customer = make_customer(db)
    out = request_free(db, customer)
    accept(db, mechanic, out["request_id"])
    deliver(db, out["session_id"])
    return out["session_id"]


def test_old_history_of_settled_sessions_goes_open_ones_and_admin_actions_stay(db):
    mechanic = make_mechanic(db)
    done = _delivered_session(db, mechanic)
    db.execute("insert into public.session_events (session_id, entity, from_status, to_status, actor_role, reason) "
               "values (%s, 'session', 'completed', 'completed', 'admin', 'checked by support')", (done,))
    unverified = _delivered_session(db, make_mechanic(db))
    db.execute("update public.sessions set delivery = 'unverified' where id = %s", (unverified,))
    pending = request_free(db, make_customer(db))["session_id"]
    credit = paid_with_credit(db, make_customer(db))
    accept(db, make_mechanic(db), credit["request_id"])
    deliver(db, credit["session_id"])
    assert db.scalar("select count(*) from public.payouts where session_id = %s and status = 'waiting'",
                     (credit["session_id"],)) > 0  # the objection window: payouts not released yet
    ours = (done, unverified, pending, credit["session_id"])
    before = {s: _events(db, s) for s in ours}
    assert all(len(v) >= 2 for v in before.values())
    now = _now(db)

    # within the retention nothing goes
    assert _retain(db, "session_events", now + 700 * DAY)["session_events_deleted"] == 0
    assert {s: _events(db, s) for s in ours} == before

    later = now + 731 * DAY
    out = _retain(db, "session_events", later)
    assert out["session_histories_deleted"] >= 1 and out["session_events_deleted"] >= len(before[done]) - 1
    assert _events(db, done) == ["admin:completed"]  # the audit of an admin's action stays
    for held in (unverified, pending, credit["session_id"]):
        assert _events(db, held) == before[held]
    assert _retain(db, "session_events", later)["session_events_deleted"] == 0

    # the delivery question is decided: that history may go too
    db.execute("insert into public.session_delivery_decisions (session_id, outcome, refund_cents, reason) "
               "values (%s, 'pay', 0, 'checked')", (unverified,))
    assert _retain(db, "session_events", later)["session_events_deleted"] == len(before[unverified])
    assert _events(db, unverified) == []


def test_the_batch_limit_holds_for_session_history(db):
    mechanic = make_mechanic(db)
    sessions = []
    for _ in range(3):
        sessions.append(_delivered_session(db, mechanic))
    sizes = [len(_events(db, s)) for s in sessions]
    later = _now(db) + 731 * DAY
    # a batch smaller than one session's history still deletes that session whole, and no more
    out = _retain(db, "session_events", later, 1)
    assert out["session_histories_deleted"] == 1
    assert sum(1 for s in sessions if _events(db, s)) == 2
    out = _retain(db, "session_events", later, sizes[0] * 2)
    assert out["session_histories_deleted"] == 2
    assert all(_events(db, s) == [] for s in sessions)


def test_session_history_stays_append_only_outside_the_retention_job(db):
    session = _delivered_session(db, make_mechanic(db))
    assert db.error("delete from public.session_events where session_id = %s", (session,)).sqlstate == "AD003"
    # the setting alone is not enough: only the table's owner, as the retention job runs
    db.execute("select set_config('autodoctor.retention', 'public.credit_ledger', true)")
    assert db.error("delete from public.session_events where session_id = %s", (session,)).sqlstate == "AD003"
    db.execute("select set_config('autodoctor.retention', 'public.session_events', true)")
    assert db.error("update public.session_events set reason = 'x' where session_id = %s",
                    (session,)).sqlstate == "AD003"
    with db.as_service():
        assert db.error("delete from public.session_events where session_id = %s", (session,)).sqlstate in (
            "AD003", "42501")
    db.execute("select set_config('autodoctor.retention', '', true)")
    assert _events(db, session) != []


# ------------------------------------------------------------------------------------------------
# Slot holds
# ------------------------------------------------------------------------------------------------
def _hold(db: Db, mechanic: uuid.UUID, customer: uuid.UUID, status: str, expired: dt.datetime, hour: int) -> Any:
    return db.scalar(
        "insert into public.mechanic_commitments (mechanic_id, kind, status, during, customer_id, plan_code, "
        "price_cents, expires_at) values (%s, 'hold', %s, tstzrange(%s, %s), %s, 'video15', 1500, %s) returning id",
        (mechanic, status, expired + dt.timedelta(hours=hour), expired + dt.timedelta(hours=hour, minutes=15),
         customer, expired))


def test_lapsed_slot_holds_go_unless_a_checkout_may_still_complete(db):
    now = _now(db)
    mechanic, customer = make_mechanic(db), make_customer(db)
    old = _hold(db, mechanic, customer, "expired", now - 8 * DAY, 1)
    released = _hold(db, mechanic, customer, "released", now - 9 * DAY, 2)
    recent = _hold(db, mechanic, customer, "expired", now - 6 * DAY, 3)
    live = _hold(db, mechanic, customer, "held", now + DAY, 4)
    paying = _hold(db, mechanic, customer, "expired", now - 8 * DAY, 5)
    lost = _hold(db, mechanic, customer, "expired", now - 8 * DAY, 6)
    for hold, status in ((paying, "failed"), (lost, "expired")):
        db.execute("insert into public.bookings (customer_id, plan_code, intake_id, price_cents, currency, method, "
                   "status, hold_id) values (%s, 'video15', %s, 1500, 'usd', 'card', %s, %s)",
                   (customer, make_intake(db, customer), status, hold))
    ours = [old, released, recent, live, paying, lost]

    def left() -> set[Any]:
        return {r["id"] for r in db.all("select id from public.mechanic_commitments where id = any(%s)", (ours,))}

    assert _retain(db, "holds", now, 1) == {"holds_deleted": 1}
    assert left() == {old, recent, live, paying, lost}  # the one that expired first
    assert _retain(db, "holds", now) == {"holds_deleted": 2}
    # a failed card attempt leaves the Checkout open: its hold stays; an expired booking's goes
    assert left() == {recent, live, paying}
    assert db.scalar("select hold_id from public.bookings where customer_id = %s and status = 'expired'",
                     (customer,)) is None
    assert _retain(db, "holds", now) == {"holds_deleted": 0}


# ------------------------------------------------------------------------------------------------
# Rate-limit buckets
# ------------------------------------------------------------------------------------------------
def test_idle_full_rate_buckets_go(db):
    now = _now(db)
    users = [uuid.uuid4() for _ in range(4)]
    db.execute("update private.settings set value = '0' where key = 'rate_limit.admin.refill_per_minute'")
    rows = [(users[0], "write", 0, now - 2 * DAY),                     # idle, refilled long ago
            (users[1], "write", 0, now - dt.timedelta(minutes=1)),     # used a minute ago: stays
            (users[2], "admin", 0, now - 2 * DAY),                     # idle, but never refills: stays empty
            (users[3], "request", 0, now - 3 * DAY)]
    for user, cls, tokens, at in rows:
        db.execute("insert into private.rate_buckets (user_id, class, tokens, updated_at) values (%s, %s, %s, %s)",
                   (user, cls, tokens, at))
    assert _retain(db, "rate_buckets", now, 1) == {"rate_buckets_deleted": 1}
    assert _retain(db, "rate_buckets", now) == {"rate_buckets_deleted": 1}
    left = {r["user_id"] for r in db.all("select user_id from private.rate_buckets where user_id = any(%s)",
                                         (users,))}
    assert left == {users[1], users[2]}
    assert _retain(db, "rate_buckets", now) == {"rate_buckets_deleted": 0}


# ------------------------------------------------------------------------------------------------
# The job
# ------------------------------------------------------------------------------------------------
def test_the_retention_job_runs_every_step_and_records_the_run(db):
    now = _now(db)
    _job(db, "ret:job-sent", "sent", sent_at=now - 31 * DAY)
    assert db.scalar("select private.job_steps('retention')") == [
        "retain_jobs", "retain_cron_runs", "retain_stripe_events", "retain_livekit_events", "retain_resend_events",
        "retain_session_events", "retain_holds", "retain_rate_buckets"]
    out = db.scalar("select private.run_job('retention', %s)", (now,))
    assert out["jobs_deleted"] >= 1 and "errors" not in out
    assert {"cron_runs_deleted", "stripe_payloads_trimmed", "livekit_events_deleted", "resend_events_deleted",
            "session_events_deleted", "holds_deleted", "rate_buckets_deleted"} <= set(out)
    run = db.one("select ok, result from private.cron_runs where job = 'cron_retention' order by id desc limit 1")
    assert run is not None and run["ok"] is True and run["result"]["jobs_deleted"] >= 1
    again = db.scalar("select private.run_job('retention', %s)", (now,))
    assert again["jobs_deleted"] == 0 and not any(v for k, v in again.items() if k != "session_histories_held")
    assert db.one("select cron from private.schedules where name = 'retention'") == {"cron": "*/5 * * * *"}


def test_two_runs_at_once_delete_each_row_once(fresh_url):
    with psycopg.connect(fresh_url, autocommit=True) as conn:
        conn.execute("insert into private.outbox (kind, dedupe_key, payload, status, sent_at) "
                     "select 'livekit.delete_room', 'ret:race-' || i, '{}', 'sent', now() - interval '40 days' "
                     "from generate_series(1, 60) i")
    barrier, counts = threading.Barrier(2), []

    def run() -> None:
        with psycopg.connect(fresh_url) as conn:
            barrier.wait()
            for _ in range(4):
                counts.append(conn.execute("select private.retain_jobs(now(), 20)").fetchone()[0]["jobs_deleted"])
                conn.commit()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(counts) == 60 and max(counts) <= 20
    with psycopg.connect(fresh_url) as conn:
        assert conn.execute("select count(*) from private.outbox where dedupe_key like 'ret:race-%'").fetchone() == (0,)
