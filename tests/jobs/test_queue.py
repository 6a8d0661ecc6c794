"""The one job queue: the kinds registry and its handlers, the email template registry, enqueue
(unknown kind or template, dedupe), claims racing, lease expiry, backoff per kind, dead letters,
and the Stripe jobs (idempotency key = job key, an outage ending a refund failed)."""

from __future__ import annotations

import datetime as dt
import json
import threading
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from shared import PACKAGE_DIR, email, job_kinds, worker
from tests.support.factories import make_world
from tests.support.harness import Db
from tests.support.payments import Pay

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)


def _register(db: Db, kind: str = "test.thing", max_attempts: int = 8, base: str = "30 seconds",
              lease: str = "5 minutes", max_backoff: str | None = None) -> None:
    db.execute("insert into private.job_kinds (kind, max_attempts, base_backoff, max_backoff, lease, description)"
               " values (%s, %s, %s::interval, %s::interval, %s::interval, 'a kind of this test')",
               (kind, max_attempts, base, max_backoff, lease))


# ---------------------------------------------------------------------------------------------
# The registries
# ---------------------------------------------------------------------------------------------
def test_every_kind_has_a_handler_and_every_handler_a_kind(db: Db) -> None:
    kinds = {r["kind"] for r in db.all("select kind from private.job_kinds")}
    assert kinds == set(worker.handlers()) == job_kinds.ALL
    assert set(worker.STRIPE_KINDS) | set(worker.OUTBOX_KINDS) == kinds


def test_every_on_failure_hook_exists_with_the_hook_signature(db: Db) -> None:
    hooks = db.all("select kind, on_failure from private.job_kinds where on_failure is not null")
    assert {h["kind"] for h in hooks} == {"stripe.refund", "stripe.transfer", "stripe.transfer_reversal"}
    for hook in hooks:
        signature = f"{hook['on_failure']}(private.outbox, text, boolean, timestamp with time zone)"
        assert db.scalar("select to_regprocedure(%s) is not null", (signature,)), signature


def test_kinds_carry_the_policies_of_the_settings_they_replaced(db: Db) -> None:
    rows = {r["kind"]: (r["max_attempts"], r["base_backoff"], r["max_backoff"], r["lease"])
            for r in db.all("select * from private.job_kinds")}
    outbox = (8, dt.timedelta(seconds=30), None, dt.timedelta(minutes=5))
    stripe = (8, dt.timedelta(minutes=1), dt.timedelta(hours=6), dt.timedelta(minutes=5))
    assert rows == {"email.send": outbox, "email.support_alert": outbox, "livekit.delete_room": outbox,
                    **{k: stripe for k in worker.STRIPE_KINDS},
                    # erasure waits for open work to be settled: hourly, then daily, for about two months
                    "privacy.erase_account": (60, dt.timedelta(hours=1), dt.timedelta(days=1), dt.timedelta(minutes=10))}
    assert db.all("select key from private.settings where key like 'outbox.%%' or key in"
                  " ('payments.retry_base', 'payments.retry_max', 'payments.max_attempts', 'payments.claim_lease')"
                  ) == []


def test_email_templates_table_matches_the_files(db: Db) -> None:
    folder = PACKAGE_DIR / "email_templates"
    files = {p.name for p in folder.iterdir() if p.suffix in (".txt", ".html") and not p.name.startswith("_")}
    rows = db.all("select name, has_html, transactional from private.email_templates")
    from_table = {f"{r['name']}.txt" for r in rows} | {f"{r['name']}.html" for r in rows if r["has_html"]}
    assert from_table == files, "shared/email_templates/ and private.email_templates disagree"
    assert {r["name"] for r in rows} == set(email.SUBJECTS)
    assert {r["name"] for r in rows if not r["transactional"]} == email.NON_TRANSACTIONAL


# ---------------------------------------------------------------------------------------------
# Enqueue
# ---------------------------------------------------------------------------------------------
def test_an_unknown_kind_or_template_fails_on_enqueue_and_writes_nothing(db: Db) -> None:
    w = make_world(db)
    before = db.scalar("select count(*) from private.outbox")
    assert db.error("select private.enqueue('email.sned', 'k:1', '{}')").sqlstate == "AD040"
    assert db.error("select private.enqueue_again('nope.kind', 'k:2', '{}')").sqlstate == "AD040"
    assert db.error("select private.enqueue_email('booking_confirmd', %s, %s)",
                    (w.customer, w.session)).sqlstate == "AD041"
    assert db.error("select private.enqueue('email.send', 'k:3', '{\"template\": \"nope\"}')").sqlstate == "AD041"
    # the change that caused it rolls back with it: one statement, nothing written
    assert db.error("with s as (update public.profiles set full_name = 'Changed' where id = %s returning id)"
                    " select private.enqueue_email('nope', s.id, null) from s", (w.customer,)).sqlstate == "AD041"
    assert db.scalar("select full_name from public.profiles where id = %s", (w.customer,)) != "Changed"
    assert db.scalar("select count(*) from private.outbox") == before
    # the foreign key holds even for a writer that skips enqueue
    assert db.error("insert into private.outbox (kind, dedupe_key, payload) values ('nope.kind', 'k:4', '{}')"
                    ).sqlstate == "23503"


def test_dedupe_once_and_enqueue_again(db: Db) -> None:
    _register(db)
    first = db.scalar("select private.enqueue('test.thing', 'd:1', '{\"n\": 1}', %s)", (NOW,))
    assert db.scalar("select private.enqueue('test.thing', 'd:1', '{\"n\": 2}', %s)", (NOW,)) == first
    assert db.scalar("select count(*) from private.outbox where dedupe_key = 'd:1'") == 1
    [job] = db.all("select * from private.outbox_claim(%s, 10, array['test.thing'])", (NOW,))
    db.execute("select private.outbox_settle(%s, true, null, %s)", (job["id"], NOW))
    # sent: enqueue never sends it twice; enqueue_again (a domain row due again) re-arms it
    assert db.scalar("select private.enqueue('test.thing', 'd:1', '{}', %s)", (NOW,)) == first
    assert db.scalar("select status::text from private.outbox where id = %s", (first,)) == "sent"
    assert db.scalar("select private.enqueue_again('test.thing', 'd:1', '{\"n\": 3}', %s)", (NOW,)) == first
    row = db.one("select status::text as s, attempts, payload from private.outbox where id = %s", (first,))
    assert row == {"s": "pending", "attempts": 0, "payload": {"n": 3}}
    # pending: enqueue_again leaves it alone
    db.scalar("select private.enqueue_again('test.thing', 'd:1', '{\"n\": 4}', %s)", (NOW,))
    assert db.scalar("select payload from private.outbox where id = %s", (first,)) == {"n": 3}


# ---------------------------------------------------------------------------------------------
# Claim, lease, backoff, dead letter
# ---------------------------------------------------------------------------------------------
def test_lease_expiry_reclaims_with_the_kinds_lease(db: Db) -> None:
    _register(db, "test.short", lease="1 minute")
    _register(db, "test.long", lease="10 minutes")
    for kind in ("test.short", "test.long"):
        db.execute("select private.enqueue(%s, %s, '{}', %s)", (kind, kind, NOW))
    claimed = db.all("select kind, attempts, locked_until from private.outbox_claim(%s, 10)", (NOW,))
    assert {(c["kind"], c["locked_until"] - NOW) for c in claimed} == {
        ("test.short", dt.timedelta(minutes=1)), ("test.long", dt.timedelta(minutes=10))}
    # the worker died: nobody claims them inside the lease; each comes back when its own lease ends
    assert db.all("select * from private.outbox_claim(%s, 10)", (NOW + dt.timedelta(seconds=59),)) == []
    again = db.all("select kind, attempts from private.outbox_claim(%s, 10)", (NOW + dt.timedelta(minutes=1),))
    assert again == [{"kind": "test.short", "attempts": 2}]
    again = db.all("select kind, attempts from private.outbox_claim(%s, 10)", (NOW + dt.timedelta(minutes=10),))
    assert sorted((a["kind"], a["attempts"]) for a in again) == [("test.long", 2), ("test.short", 3)]


@pytest.mark.parametrize(("kind", "base", "cap"), [
    ("email.send", dt.timedelta(seconds=30), None),
    ("stripe.refresh_account", dt.timedelta(minutes=1), dt.timedelta(hours=6)),
])
def test_backoff_doubles_per_kind_then_dead_letters(db: Db, kind: str, base: dt.timedelta,
                                                    cap: dt.timedelta | None) -> None:
    db.execute("update private.job_kinds set max_attempts = 12 where kind = %s", (kind,))
    payload = {"template": "booking_confirmed"} if kind == "email.send" else {"account": "acct_x"}
    job = db.scalar("select private.enqueue(%s, 'b:1', %s::jsonb, %s)", (kind, json.dumps(payload), NOW))
    t = NOW
    for attempt in range(1, 13):
        [claimed] = db.all("select id, attempts from private.outbox_claim(%s, 1, array[%s])", (t, kind))
        assert (claimed["id"], claimed["attempts"]) == (job, attempt)
        status = db.scalar("select private.outbox_settle(%s, false, 'boom', %s)::text", (job, t))
        if attempt == 12:
            assert status == "dead"
            break
        assert status == "pending"
        wait = db.scalar("select next_attempt_at from private.outbox where id = %s", (job,)) - t
        expected = base * 2 ** (attempt - 1)
        assert wait == (min(expected, cap) if cap else expected)
        t += wait
    assert db.all("select * from private.outbox_claim(%s, 1)", (t + dt.timedelta(days=30),)) == []
    assert db.one("select status::text as s, last_error from private.outbox where id = %s", (job,)) == {
        "s": "dead", "last_error": "boom"}


def test_admin_retry_of_a_dead_stripe_job_goes_through_its_domain_row(db: Db) -> None:
    w = make_world(db)
    db.execute("update private.job_kinds set max_attempts = 1 where kind = 'stripe.transfer'")
    dead = db.scalar("insert into private.outbox (kind, dedupe_key, payload, status, attempts)"
                     " values ('stripe.transfer', 'transfer:x', '{}', 'dead', 1) returning id")
    with db.as_user(w.admin):
        assert db.rpc_error("admin_retry_outbox", p_id=dead) == "AD005"


def test_two_workers_claiming_at_once_never_take_the_same_job(fresh_url: str) -> None:
    with psycopg.connect(fresh_url, autocommit=True) as setup:
        setup.execute("insert into private.job_kinds (kind, max_attempts, base_backoff, lease, description)"
                      " values ('test.thing', 8, '30 seconds', '5 minutes', 'a kind of this test')")
        setup.execute("select private.enqueue('test.thing', 'r:' || i, jsonb_build_object('i', i), %s)"
                      " from generate_series(1, 60) i", (NOW,))
    rounds, workers = 8, 2
    taken: list[list[int]] = [[] for _ in range(workers)]
    barrier = threading.Barrier(workers)
    errors: list[BaseException] = []

    def run(k: int) -> None:
        try:
            with psycopg.connect(fresh_url, row_factory=dict_row) as conn:
                for r in range(rounds):
                    barrier.wait(timeout=30)
                    with conn.transaction():
                        rows = conn.execute("select id from private.outbox_claim(%s, 7, array['test.thing'])",
                                            (NOW + dt.timedelta(seconds=r),)).fetchall()
                    taken[k].extend(row["id"] for row in rows)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    everything = taken[0] + taken[1]
    assert len(everything) == len(set(everything)) == 60  # 2 × 8 rounds × up to 7: all 60, each once
    assert taken[0] and taken[1]


# ---------------------------------------------------------------------------------------------
# Stripe jobs
# ---------------------------------------------------------------------------------------------
def _header(call: Any) -> str:
    return {k.lower(): v for k, v in call.headers.items()}["idempotency-key"]


def test_the_idempotency_key_sent_to_stripe_is_the_jobs_key(pay: Pay) -> None:
    customer = pay.customer()
    mechanic = pay.mechanic()
    pay.onboard(mechanic)
    paid = pay.paid_booking(customer, plan="diagnostic")
    pay.serve(mechanic, paid["session_id"])
    assert pay.process() == {"transfers_paid": 1}
    admin = pay.admin()
    with pay.db.as_user(admin):
        pay.db.rpc("admin_refund", p_session_id=paid["session_id"], p_amount_cents=2000, p_reason="partial")
    pay.commit()
    assert pay.process() == {"refunds_processing": 1, "reversals_succeeded": 1}
    jobs = {r["kind"]: r["dedupe_key"] for r in pay.rows("select kind, dedupe_key from private.outbox"
                                                         " where kind like 'stripe.%%' and status = 'sent'")}
    assert set(jobs) == {"stripe.transfer", "stripe.refund", "stripe.transfer_reversal"}
    [transfer] = [c for c in pay.fake.calls_to("POST", "/v1/transfers") if c.path == "/v1/transfers"]
    [refund] = pay.fake.calls_to("POST", "/v1/refunds")
    [reversal] = pay.fake.calls_to("POST", "/v1/transfers/")
    assert _header(transfer) == jobs["stripe.transfer"] == f"transfer:{paid['session_id']}:{mechanic}"
    assert _header(refund) == jobs["stripe.refund"] == f"refund:{paid['payment_id']}:1"
    assert _header(reversal) == jobs["stripe.transfer_reversal"]
    pay.assert_books_balance()


def test_a_provider_outage_dead_letters_the_refund_and_leaves_it_failed(pay: Pay) -> None:
    customer = pay.customer()
    admin = pay.admin()
    paid = pay.paid_booking(customer)
    with pay.db.as_user(admin):
        pay.db.rpc("admin_refund", p_session_id=paid["session_id"], p_amount_cents=1000, p_reason="partial")
    pay.commit()
    attempts = pay.max_attempts("stripe.refund")
    pay.fake.fail_next("/v1/refunds", status=503, message="Stripe is down", times=attempts)
    when = dt.datetime.now(dt.UTC)
    for n in range(1, attempts + 1):
        out = pay.process(now=when)
        assert out == ({"refunds_failed": 1} if n == attempts else {"refunds_queued": 1})
        refund = pay.row("select status::text as status, last_error from public.refunds")
        assert refund["status"] == ("failed" if n == attempts else "queued") and "down" in refund["last_error"]
        when += dt.timedelta(days=1)
    job = pay.job("stripe.refund")
    assert (job["status"], job["attempts"]) == ("dead", attempts)
    assert len(pay.fake.calls_to("POST", "/v1/refunds")) == attempts
    assert pay.process(now=when + dt.timedelta(days=30)) == {}  # dead stays dead
    assert pay.val("select status from public.payments") == "succeeded"  # nothing was returned
    # putting the refund back in line re-arms its job under the same key
    pay.observer.execute("update public.refunds set status = 'queued'")
    assert pay.job("stripe.refund")["status"] == "pending"
    pay.assert_books_balance()


def test_cron_jobs_runs_every_kind(pay: Pay, monkeypatch, tmp_path) -> None:
    import flask

    from functions.cron.jobs import cron_jobs
    from shared.config import get_settings

    monkeypatch.setenv("CRON_SECRET", "cron-secret-0123456789")
    monkeypatch.setenv("EMAIL_FILES_DIR", str(tmp_path / "mail"))
    get_settings.cache_clear()
    customer, mechanic = pay.customer(), pay.mechanic()
    pay.onboard(mechanic)
    paid = pay.paid_booking(customer, plan="video15")
    pay.serve(mechanic, paid["session_id"])
    app = flask.Flask("t")
    with app.test_request_context("/", method="POST", data="{}", content_type="application/json",
                                  headers={"Authorization": "Bearer cron-secret-0123456789"}):
        resp = cron_jobs(flask.request)
    body = resp.get_json()
    assert resp.status_code == 200 and body["transfers_paid"] == 1 and body["dead"] == 0
    # the transfer and the session's emails went; without LiveKit there is no room to close: skipped
    assert body["sent"] >= 2 and body["skipped"] == 1 and body["retry"] == 0
    assert body["claimed"] == body["sent"] + body["skipped"]
    # and mechanic_assigned waits for notifications.assignment_notice_delay after the accept, the
    # review prompt for reviews.prompt_delay after the delivered session ended
    assert pay.val("select array_agg(kind || ' ' || status || ' ' || (payload ->> 'template') order by id) "
                   "from private.outbox where status <> 'sent' and kind = 'email.send'") == [
        "email.send pending mechanic_assigned", "email.send pending review_prompt"]
    assert pay.val("select bool_and(next_attempt_at > now()) from private.outbox where status = 'pending'") is True
    assert pay.val("select array_agg(kind || ' ' || status) from private.outbox where status <> 'sent' "
                   "and kind <> 'email.send'") == ["livekit.delete_room skipped"]
    get_settings.cache_clear()


def test_without_stripe_configured_the_stripe_jobs_wait_untouched(pay: Pay, monkeypatch) -> None:
    from shared import stripe_client
    from shared.config import get_settings

    customer = pay.customer()
    paid = pay.paid_booking(customer)
    admin = pay.admin()
    with pay.db.as_user(admin):
        pay.db.rpc("admin_refund", p_session_id=paid["session_id"], p_amount_cents=1000, p_reason="partial")
    pay.commit()
    injected = stripe_client.get_client()
    stripe_client.set_client(None)
    monkeypatch.delenv("STRIPE_SECRET_KEY")
    get_settings.cache_clear()
    try:
        result = worker.work(kinds=worker.STRIPE_KINDS)
        assert result.counts["claimed"] == 0  # not claimed, so not failing toward a dead letter
        assert (pay.job("stripe.refund")["status"], pay.job("stripe.refund")["attempts"]) == ("pending", 0)
    finally:
        stripe_client.set_client(injected)
        get_settings.cache_clear()
    assert pay.process() == {"refunds_processing": 1}
