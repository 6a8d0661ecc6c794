"""Scheduled jobs: sweeps across every threshold, concurrent runs, nudges and alerts, starting
notices, milestone emails (templates, escaping, opt-out, Resend and .eml delivery), cron run
records, and the admin outbox."""

from __future__ import annotations

import base64
import datetime as dt
import email
import email.policy
import json
import os
import threading
import time
import uuid
from pathlib import Path

import icalendar
import psycopg
import pytest

from shared import db as shared_db
from shared import email as mail
from shared import worker
from shared.config import get_settings
from shared.dev.stubs.resend import ResendStub
from shared.dev.stubs.server import StubServer
from tests.support.delivery import deliver
from tests.support.factories import accept, make_customer, make_intake, make_mechanic, make_world, request_free
from tests.support.harness import Db
from tests.support.scheduling import at, book, every_day, future_day, scheduled_mechanic

GOLDEN = Path(__file__).parents[1] / "support" / "golden" / "emails"


def sweep(db, now):
    return db.scalar("select private.sweep_requests(%s)", (now,))


def now_of(db):
    return db.scalar("select now()")


# ------------------------------------------------------------------------------------------------
# sweeps
# ------------------------------------------------------------------------------------------------
def test_pending_to_unattended_to_expired(db):
    customer = make_customer(db)
    ids = request_free(db, customer)
    t0 = now_of(db)
    none = {"unattended": 0, "expired": 0, "no_show_cancelled": 0, "orphaned_cancelled": 0}
    assert sweep(db, t0 + dt.timedelta(minutes=5) - dt.timedelta(seconds=1)) == none
    assert sweep(db, t0 + dt.timedelta(minutes=5))["unattended"] == 1
    assert db.scalar("select status from public.session_requests where id = %s", (ids["request_id"],)) == "unattended"
    queue = db.all("select payload from realtime.messages where topic = 'admin:queue' and event = 'request_unattended'"
                   " and payload ->> 'request_id' = %s", (ids["request_id"],))
    assert len(queue) == 1
    assert sweep(db, t0 + dt.timedelta(minutes=120) - dt.timedelta(seconds=1)) == none
    assert sweep(db, t0 + dt.timedelta(minutes=120))["expired"] == 1
    assert db.scalar("select status from public.session_requests where id = %s", (ids["request_id"],)) == "expired"
    assert db.scalar("select status from public.sessions where id = %s", (ids["session_id"],)) == "cancelled"
    assert db.scalar("select cancel_reason from public.sessions where id = %s", (ids["session_id"],)).startswith(
        "expired")
    assert sweep(db, t0 + dt.timedelta(hours=5)) == none  # nothing twice


def test_accepted_but_customer_never_joined(db):
    w = make_world(db)
    accept(db, w.mechanic, w.request)
    t0 = now_of(db)
    assert sweep(db, t0 + dt.timedelta(minutes=30) - dt.timedelta(seconds=1))["no_show_cancelled"] == 0
    assert sweep(db, t0 + dt.timedelta(minutes=30))["no_show_cancelled"] == 1
    assert db.scalar("select status from public.sessions where id = %s", (w.session,)) == "cancelled"
    assert db.scalar("select status from public.session_requests where id = %s", (w.request,)) == "cancelled"
    # the mechanic is free again
    nxt = request_free(db, w.other_customer)
    assert accept(db, w.mechanic, nxt["request_id"])["status"] == "accepted"


def test_orphaned_waiting_session(db):
    w = make_world(db)
    accept(db, w.mechanic, w.request)
    db.execute("update public.session_participants set joined_at = now() where session_id = %s and user_id = %s",
               (w.session, w.customer))  # the customer joined; nobody started it
    t0 = now_of(db)
    assert sweep(db, t0 + dt.timedelta(minutes=45)) == {"unattended": 0, "expired": 0, "no_show_cancelled": 0,
                                                         "orphaned_cancelled": 0}
    assert sweep(db, t0 + dt.timedelta(minutes=60))["orphaned_cancelled"] == 1
    assert db.scalar("select cancel_reason from public.sessions where id = %s", (w.session,)) == \
        "the session was never started"


def test_sweep_input(db):
    assert db.error("select private.sweep_requests(now(), 0)").sqlstate == "AD001"


def test_two_sweeps_at_once_handle_each_row_once(fresh_url):
    with psycopg.connect(fresh_url) as conn:
        conn.execute("select 1")
        d = Db(conn)
        customers = [make_customer(d) for _ in range(60)]
        for c in customers:
            request_free(d, c, intake=make_intake(d, c))
        conn.commit()
    conns = [psycopg.connect(fresh_url, autocommit=True) for _ in range(2)]
    barrier = threading.Barrier(2)
    results: list = [None, None]
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=6)

    def run(k):
        barrier.wait()
        results[k] = conns[k].execute("select private.sweep_requests(%s, 1000)", (later,)).fetchone()[0]

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for c in conns:
        c.close()
    assert results[0]["unattended"] + results[1]["unattended"] == 60
    with psycopg.connect(fresh_url) as conn:
        assert conn.execute("select count(*) from public.session_events where to_status = 'unattended'"
                            ).fetchone()[0] == 60


def test_a_run_that_crashes_loses_nothing(fresh_url):
    with psycopg.connect(fresh_url) as conn:
        conn.execute("select 1")
        d = Db(conn)
        for _ in range(5):
            c = make_customer(d)
            request_free(d, c, intake=make_intake(d, c))
        conn.commit()
        later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=6)
        conn.execute("select private.sweep_requests(%s)", (later,))
        conn.rollback()  # the function host died before committing
        assert conn.execute("select count(*) from public.session_requests where status = 'pending'").fetchone()[0] == 5
        assert conn.execute("select private.sweep_requests(%s)", (later,)).fetchone()[0]["unattended"] == 5
        conn.commit()


# ------------------------------------------------------------------------------------------------
# nudges, alerts, notices
# ------------------------------------------------------------------------------------------------
def test_nudge_then_support_alert_once(db):
    w = make_world(db)
    accept(db, w.mechanic, w.request)
    t0 = now_of(db)
    assert db.scalar("select private.send_nudges(%s)", (t0 + dt.timedelta(minutes=1),)) == {"nudged": 0, "alerted": 0}
    assert db.scalar("select private.send_nudges(%s)", (t0 + dt.timedelta(minutes=2),)) == {"nudged": 0, "alerted": 1}
    assert db.scalar("select private.send_nudges(%s)", (t0 + dt.timedelta(minutes=3),)) == {"nudged": 1, "alerted": 0}
    assert db.scalar("select private.send_nudges(%s)", (t0 + dt.timedelta(minutes=4),)) == {"nudged": 0, "alerted": 0}
    nudge = db.one("select payload from realtime.messages where topic = %s and event = 'nudge'",
                   (f"mechanic:{w.mechanic}",))
    assert nudge["payload"]["session_id"] == str(w.session)
    assert db.scalar("select count(*) from realtime.messages where topic = 'admin:queue' and event = 'alert'") == 1
    keys = {r["dedupe_key"] for r in db.all("select dedupe_key from private.outbox")}
    assert f"email:mechanic_nudge:{w.session}:{w.mechanic}" in keys and f"email:support_alert:{w.session}" in keys


def test_starting_notices_for_scheduled_sessions(db):
    customer, mechanic = make_customer(db), make_mechanic(db)
    sid = uuid.UUID(request_free(db, customer)["session_id"])
    db.execute("update public.sessions set status = 'scheduled', mechanic_id = %s, scheduled_for = now() + "
               "interval '20 minutes' where id = %s", (mechanic, sid))
    t0 = now_of(db)
    assert db.scalar("select private.send_starting_notices(%s)", (t0,)) == {"starting_notices": 0}
    assert db.scalar("select private.send_starting_notices(%s)", (t0 + dt.timedelta(minutes=15),)) == \
        {"starting_notices": 1}
    assert db.scalar("select private.send_starting_notices(%s)", (t0 + dt.timedelta(minutes=16),)) == \
        {"starting_notices": 0}
    assert db.scalar("select count(*) from private.outbox where dedupe_key like 'email:session_starting:%%'") == 2


def test_milestone_emails_are_enqueued_once(db):
    w = make_world(db)
    accept(db, w.mechanic, w.request)
    deliver(db, w.session, notes="Pads at 2 mm: replace them this week.")
    templates = sorted(r["payload"]["template"] for r in db.all(
        "select payload from private.outbox where kind = 'email.send' and payload ->> 'session_id' = %s",
        (str(w.session),)))
    # delivered: the review prompt is queued too (an hour later); the mechanic's notes, its only
    # summary, are delivered at the end (tests/journey/test_summaries.py)
    assert templates == ["booking_confirmed", "mechanic_assigned", "review_prompt", "session_ended",
                         "summary_delivered"]


# ------------------------------------------------------------------------------------------------
# emails
# ------------------------------------------------------------------------------------------------
CONTEXT = {
    "name": "Casey <b>Customer</b>", "timezone": "America/Toronto", "marketing_emails": True,
    "session": {"id": "00000000-0000-4000-8000-00000000e111", "plan": "Standard Video (45 min)",
                "session_type": "video", "status": "completed", "scheduled_for": "2026-03-08T06:30:00+00:00",
                "started_at": None, "ended_at": None, "duration_minutes": 42, "price_cents": 2999,
                "currency": "usd", "mechanic_name": "Morgan & Sons", "vehicle": "2018 Honda Civic",
                "mechanic_notes": "Replace pads <soon>\nCheck rotors.",
                "concern": "<script>alert('x')</script> grinding noise", "delivery": "delivered",
                "review_until": "2026-03-22T06:30:00+00:00"},
}


# summary_delivered renders a summary: its golden files are pinned by tests/journey/test_summaries.py
@pytest.mark.parametrize("template", ["booking_confirmed", "mechanic_assigned", "session_starting",
                                      "session_ended", "mechanic_nudge", "review_prompt"])
def test_templates_match_golden_files(template, monkeypatch):
    monkeypatch.setenv("APP_URL", "https://app.autodoctor.test")
    get_settings.cache_clear()
    rendered = mail.render(template, CONTEXT)
    get_settings.cache_clear()
    for ext, content in (("html", rendered.html), ("txt", rendered.text)):
        path = GOLDEN / f"{template}.{ext}"
        full = f"Subject: {rendered.subject}\n\n{content}"
        if os.environ.get("UPDATE_GOLDEN"):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(full)
        assert full == path.read_text(), f"{path} differs (UPDATE_GOLDEN=1 to accept a deliberate change)"


def test_html_escapes_user_text_and_text_does_not():
    rendered = mail.render("booking_confirmed", CONTEXT)
    assert "<script>" not in rendered.html and "&lt;script&gt;" in rendered.html
    assert "Casey &lt;b&gt;Customer&lt;/b&gt;" in rendered.html
    assert "<script>alert('x')</script>" in rendered.text  # plain text is not HTML
    ended = mail.render("session_ended", CONTEXT)
    assert "Morgan &amp; Sons" in ended.html
    # scheduled times in the recipient's zone (08 Mar 2026 is the US spring-forward day)
    assert "Sun 08 Mar 2026, 01:30 EST" in mail.render("session_starting", CONTEXT).text


@pytest.fixture
def mail_env(fresh_url, monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", fresh_url)
    monkeypatch.setenv("EMAIL_FILES_DIR", str(tmp_path / "mail"))
    monkeypatch.delenv("RESEND_API_KEY", raising=False)
    get_settings.cache_clear()
    shared_db.close_pool()
    conn = psycopg.connect(fresh_url)
    conn.execute("select 1")
    yield Db(conn), tmp_path / "mail", monkeypatch
    conn.close()
    shared_db.close_pool()
    get_settings.cache_clear()


def test_emails_written_as_eml_files_with_opt_out(mail_env):
    d, folder, _ = mail_env
    w = make_world(d)
    accept(d, w.mechanic, w.request)
    d.execute("update public.profiles set marketing_emails = false where id = %s", (w.customer,))
    d.execute("update public.sessions set status = 'live', started_at = now() where id = %s", (w.session,))
    d.execute("select private.complete_session(%s, 'Rotate tires', null, now())", (w.session,))
    d.conn.commit()
    # mechanic_assigned waits for notifications.assignment_notice_delay (the assignment held): later
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=3)
    result = worker.deliver(later, limit=100, kinds=["email.send"])
    assert result["sent"] == result["claimed"] == 4 and result["dead"] == 0
    files = sorted(folder.glob("*.eml"))
    subjects = sorted(email.message_from_bytes(f.read_bytes(), policy=email.policy.default)["Subject"]
                      for f in files)
    # session_ended is not transactional and the customer opted out
    assert subjects == ["Morgan Mechanic is ready for your session", "Your Free Session (5 min) is booked",
                        "Your session summary from Morgan Mechanic"]
    msg = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    assert msg.is_multipart() and {p.get_content_type() for p in msg.iter_parts()} == {"text/plain", "text/html"}


def test_emails_sent_through_resend(mail_env):
    d, _, monkeypatch = mail_env
    answers = [(500, {"message": "down"}), (200, {"id": "em_1"})]
    stub = StubServer(lambda rec: answers.pop(0) if answers else (200, {"id": "em_n"}))
    try:
        monkeypatch.setenv("RESEND_API_KEY", "re_test_key")
        monkeypatch.setenv("RESEND_API_BASE", stub.url)
        get_settings.cache_clear()
        customer = make_customer(d)
        request_free(d, customer)
        d.conn.commit()
        now = dt.datetime.now(dt.UTC)
        assert worker.deliver(now, kinds=["email.send"])["retry"] == 1  # the provider was down
        assert worker.deliver(now + dt.timedelta(minutes=1), kinds=["email.send"])["sent"] == 1
        assert len(stub.calls) == 2
        first, second = stub.calls
        assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]  # a retry is the same email
        d.conn.rollback()
        key = d.scalar("select dedupe_key from private.outbox where status = 'sent'")
        assert first.headers["Idempotency-Key"] == key  # the job's key is the provider's idempotency key
        assert first.headers["Authorization"] == "Bearer re_test_key"
        body = second.json()
        assert body["subject"] == "Your Free Session (5 min) is booked" and body["to"][0].endswith(
            "@example.test")
        assert "<html" in body["html"] and "Hi Casey Customer" in body["text"]
    finally:
        stub.close()


# A retry of an email whose first attempt Resend accepted (the worker killed after the call, a timeout
# while Resend took it, a failure recording it): the same body under the same key, else Resend's 409s.
class Killed(BaseException):
    """The worker process dying right after a handler's call: its job stays claimed, unsettled."""


def _killed_after_send(payload):
    mail.send_outbox_email(payload)
    raise Killed


@pytest.fixture
def booked_with_resend(mail_env):
    """A booked session (its one due email job: the customer's booking_confirmed, with the .ics) and
    the Resend stub as Resend."""
    d, _, monkeypatch = mail_env
    resend = ResendStub()
    monkeypatch.setenv("RESEND_API_KEY", "re_test_key")
    monkeypatch.setenv("RESEND_API_BASE", resend.url)
    get_settings.cache_clear()
    mechanic = scheduled_mechanic(d, "America/New_York", every_day("08:00", "18:00"), name="Morgan Mech")
    customer = make_customer(d, "Casey Customer")
    day = future_day(6)
    session_id = book(d, customer, mechanic, at(day, "14:00"))["session_id"]
    d.conn.commit()
    key = d.scalar("select dedupe_key from private.outbox where dedupe_key like 'email:booking_confirmed:%%'")
    try:
        yield d, resend, key, customer, session_id, day
    finally:
        resend.close()


def _job(d, key):
    d.conn.rollback()
    return d.one("select status::text as status, attempts, last_error, created_at from private.outbox"
                 " where dedupe_key = %s", (key,))


def _ics(body: dict) -> bytes:
    [attachment] = body["attachments"]
    assert attachment["filename"] == "session.ics"
    return base64.b64decode(attachment["content"])


def test_email_retry_after_an_accepted_attempt_sends_the_same_bytes(booked_with_resend):
    d, resend, key, _, _, _ = booked_with_resend
    t = dt.datetime.now(dt.UTC)
    with pytest.raises(Killed):  # Resend accepted the email; the worker died before settling the job
        worker.work(t, kinds=["email.send"], registry={"email.send": _killed_after_send})
    assert _job(d, key)["status"] == "processing" and len(resend.emails) == 1
    time.sleep(1.1)  # a clock read while rendering would now give another second
    result = worker.work(t + dt.timedelta(minutes=6), kinds=["email.send"])  # the lease ran out: claimed again
    assert result.counts["sent"] == 1 and result.counts["retry"] == 0
    first, again = [c for c in resend.server.calls if c.header("Idempotency-Key") == key]
    assert again.body == first.body  # byte for byte: Resend answers the first id, sends nothing new
    assert resend.stats()["sent"] == 1 and resend.stats()["replayed"] == 1 and resend.stats()["conflicts"] == 0
    job = _job(d, key)
    assert job["status"] == "sent" and job["attempts"] == 2
    # the .ics is stamped with the job's creation time
    ics = icalendar.Calendar.from_ical(_ics(first.json()))
    [event] = [c for c in ics.walk() if c.name == "VEVENT"]
    assert event.decoded("dtstamp") == job["created_at"].replace(microsecond=0)
    assert d.all("select resend_id from private.email_deliveries where dedupe_key = %s", (key,)) == \
        [{"resend_id": resend.emails[0]["id"]}]


def test_email_retry_after_the_session_changed_ends_sent_on_resends_409(booked_with_resend):
    d, resend, key, customer, session_id, day = booked_with_resend
    t = dt.datetime.now(dt.UTC)
    with pytest.raises(Killed):
        worker.work(t, kinds=["email.send"], registry={"email.send": _killed_after_send})
    with d.as_user(customer):  # the session moves before the retry: the confirmation now renders otherwise
        d.rpc("reschedule_session", p_session_id=session_id, p_new_start=at(day, "15:00"))
    d.conn.commit()
    result = worker.work(t + dt.timedelta(minutes=6), kinds=["email.send"])
    assert resend.stats()["conflicts"] == 1  # 409 invalid_idempotent_request: that key's email went out
    assert result.outcomes["emails_already_sent"] == 1
    assert result.counts["retry"] == 0 and result.counts["dead"] == 0
    job = _job(d, key)
    assert job["status"] == "sent" and job["attempts"] == 2 and job["last_error"] is None
    assert [e["key"] for e in resend.emails].count(key) == 1  # the person got it once


def test_email_attempt_meeting_one_in_progress_is_retried(booked_with_resend):
    d, resend, key, _, _, _ = booked_with_resend
    resend.set_send_delay(2.0)  # Resend is slow to take the first attempt
    t = dt.datetime.now(dt.UTC)
    slow = threading.Thread(target=worker.work, args=(t,), kwargs={"kinds": ["email.send"]})
    slow.start()
    deadline = time.monotonic() + 10
    while key not in resend.in_progress and time.monotonic() < deadline:
        time.sleep(0.01)
    assert key in resend.in_progress
    # its lease runs out while the call hangs: another run claims the job and meets the first request
    result = worker.work(t + dt.timedelta(minutes=6), kinds=["email.send"])
    assert resend.stats()["concurrent"] == 1  # 409 concurrent_idempotent_requests
    assert result.counts["retry"] == 1 and result.outcomes["emails_retried"] == 1
    assert "emails_already_sent" not in result.outcomes
    job = _job(d, key)
    assert job["status"] == "pending" and "concurrent_idempotent_requests" in job["last_error"]
    slow.join()
    resend.set_send_delay(0)
    result = worker.work(t + dt.timedelta(hours=1), kinds=["email.send"])  # the retry: Resend's first answer
    assert result.counts["sent"] == 1
    assert resend.stats()["sent"] == 1 and resend.stats()["replayed"] == 1 and resend.stats()["conflicts"] == 0
    assert _job(d, key)["status"] == "sent"
    assert d.scalar("select count(*) from private.email_deliveries where dedupe_key = %s", (key,)) == 1


# ------------------------------------------------------------------------------------------------
# scheduled jobs (private.schedules) and the admin outbox
# ------------------------------------------------------------------------------------------------
def _run_schedule(url, name):
    """Runs a schedule's command the way pg_cron does: one statement on its own connection."""
    with psycopg.connect(url, autocommit=True) as conn:
        command = conn.execute("select command from private.schedules where name = %s", (name,)).fetchone()[0]
        return conn.execute(command).fetchone()[0]


def test_scheduled_jobs_record_their_runs(fresh_url):
    for name in ("sweep_requests", "nudges", "session_timers"):
        assert "errors" not in _run_schedule(fresh_url, name)
    assert _run_schedule(fresh_url, "sweep_requests") == {"unattended": 0, "expired": 0, "no_show_cancelled": 0,
                                                          "orphaned_cancelled": 0, "approvals_lapsed": 0}
    with psycopg.connect(fresh_url) as conn:
        d = Db(conn)
        runs = d.all("select job, ok, result, error, finished_at >= started_at as timed from private.cron_runs"
                     " order by id")
        assert [r["job"] for r in runs] == ["cron_sweep_requests", "cron_nudges", "cron_session_timers",
                                            "cron_sweep_requests"]
        assert all(r["ok"] and r["timed"] and r["error"] is None for r in runs)
        assert runs[2]["result"] == {"ended": 0, "starting_notices": 0, "holds_expired": 0, "sessions_opened": 0}
        assert d.error("select private.run_job('no_such_job')").sqlstate == "AD004"


def test_failed_run_is_recorded(fresh_url):
    with psycopg.connect(fresh_url) as conn:
        # a text value passes the settings' type check; the interval reader refuses it
        conn.execute("update private.settings set value_type = 'text', value = '\"not an interval\"'"
                     " where key = 'requests.unattended_after'")
        conn.commit()
    result = _run_schedule(fresh_url, "sweep_requests")  # recorded and returned, not raised
    assert len(result["errors"]) == 1 and "AD007" in result["errors"][0]
    with psycopg.connect(fresh_url) as conn:
        run = Db(conn).one("select job, ok, result, error from private.cron_runs order by id desc limit 1")
    # the failing step rolled back alone: the lapse of micro approvals (the job's second step) ran
    assert run["job"] == "cron_sweep_requests" and run["ok"] is False and run["result"] == {"approvals_lapsed": 0}
    assert "not an interval" in run["error"]


def test_a_failing_timer_step_keeps_the_others(fresh_url):
    """session_timers' four steps run in their own subtransactions: one failing rolls back only itself."""
    with psycopg.connect(fresh_url) as conn:
        d = Db(conn)
        w = make_world(d)
        accept(d, w.mechanic, w.request)
        d.execute("update public.sessions set status = 'live', started_at = now() - interval '9 minutes',"
                  " deadline_at = now() - interval '4 minutes' where id = %s", (w.session,))
        d.execute("update private.settings set value_type = 'text', value = '\"not an interval\"'"
                  " where key = 'sessions.starting_notice'")
        conn.commit()
    result = _run_schedule(fresh_url, "session_timers")
    assert result["ended"] == 1 and result["holds_expired"] == 0 and result["sessions_opened"] == 0
    assert len(result["errors"]) == 1 and result["errors"][0].startswith("send_starting_notices: ")
    with psycopg.connect(fresh_url) as conn:
        d = Db(conn)
        assert d.scalar("select status from public.sessions where id = %s", (w.session,)) == "completed"
        run = d.one("select ok, result, error from private.cron_runs where job = 'cron_session_timers'")
    assert run["ok"] is False and run["result"]["ended"] == 1 and "not an interval" in run["error"]
    assert "starting_notices" not in run["result"]


def test_admin_outbox_and_retry(db):
    w = make_world(db)
    db.execute("insert into private.job_kinds (kind, max_attempts, base_backoff, lease, description)"
               " values ('test.thing', 8, '30 seconds', '5 minutes', 'a kind of this test')")
    db.execute("select private.enqueue('test.thing', 'dead:1', '{}')")
    dead = db.scalar("update private.outbox set status = 'dead', attempts = 8, last_error = 'boom'"
                     " where dedupe_key = 'dead:1' returning id")
    with db.as_user(w.customer):
        assert db.error("select * from public.admin_outbox()").sqlstate == "AD003"
        assert db.rpc_error("admin_retry_outbox", p_id=dead) == "AD003"
    with db.as_user(w.admin):
        rows = db.all("select * from public.admin_outbox('dead')")
        assert [r["id"] for r in rows] == [dead] and rows[0]["last_error"] == "boom"
        assert db.error("select * from public.admin_outbox('exploded')").sqlstate == "AD001"
        assert db.rpc("admin_retry_outbox", p_id=dead) == {"id": dead, "status": "pending"}
        assert db.rpc_error("admin_retry_outbox", p_id=dead) == "AD005"  # no longer dead
        assert db.rpc_error("admin_retry_outbox", p_id=-1) == "AD004"
    assert db.one("select status::text as s, attempts from private.outbox where id = %s", (dead,)) == \
        {"s": "pending", "attempts": 0}
    assert json.dumps(rows, default=str)


def test_provider_outage_dead_letters_then_admin_retry_sends_once(mail_env):
    d, _, monkeypatch = mail_env
    state = {"down": True}
    stub = StubServer(lambda rec: (503, {"message": "down"}) if state["down"] else (200, {"id": "em_ok"}))
    try:
        monkeypatch.setenv("RESEND_API_KEY", "re_test_key")
        monkeypatch.setenv("RESEND_API_BASE", stub.url)
        get_settings.cache_clear()
        request_free(d, make_customer(d))
        d.conn.commit()
        t = dt.datetime.now(dt.UTC)
        outcomes = []
        for _ in range(8):  # 8 attempts with growing backoff, all failing
            outcomes.append(worker.deliver(t, kinds=["email.send"]))
            t += dt.timedelta(hours=3)
        assert [o["retry"] for o in outcomes[:7]] == [1] * 7 and outcomes[7]["dead"] == 1
        assert len(stub.calls) == 8
        assert worker.deliver(t + dt.timedelta(days=2), kinds=["email.send"])["claimed"] == 0  # dead stays dead
        d.conn.rollback()
        dead = d.scalar("select id from private.outbox where status = 'dead'")
        admin = d.make_user(app_metadata={"role": "admin"})
        with d.as_user(admin):
            d.rpc("admin_retry_outbox", p_id=dead)
        d.conn.commit()
        state["down"] = False
        assert worker.deliver(kinds=["email.send"])["sent"] == 1
        assert worker.deliver(kinds=["email.send"])["claimed"] == 0
        assert len(stub.calls) == 9  # one successful send, never a second
    finally:
        stub.close()
