"""admin_overview against a hand count, its range checks and personas, and admin_run_sweep (recorded
like a scheduled run, audited, and never handling a row twice next to the scheduled run)."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from typing import Any

import psycopg

from tests.support.delivery import deliver, release_hold, start_both
from tests.support.factories import accept, make_admin, make_customer, make_intake, make_mechanic, request_free
from tests.support.harness import Db
from tests.support.payments import Pay
from tests.support.reviews import submit


def _overview(db: Db, admin: uuid.UUID, start: Any, end: Any) -> dict[str, Any]:
    with db.as_user(admin):
        out: dict[str, Any] = db.rpc("admin_overview", p_from=start, p_to=end)
    return out


def _accepted_after(db: Db, session: Any, seconds: int) -> None:
    """The session's request was filed `seconds` before it was accepted."""
    db.execute(
        "update public.session_requests set created_at = accepted_at - make_interval(secs => %s) where session_id = %s",
        (seconds, session),
    )


def test_every_figure_matches_a_hand_count(pay: Pay) -> None:
    db = pay.db
    admin = pay.admin()
    start = pay.val("select now()")

    # -- mechanics: m_card, m_credit, m_report, m_paid (onboarded), m_unverified, m_online, m_busy
    m_card, m_credit, m_report, m_paid, m_unv, m_online, m_busy = (pay.mechanic() for _ in range(7))
    pay.onboard(m_paid)
    pay.commit()

    # S1: card (Stripe Checkout) video15, 2999; delivered; its payout waits in the objection window
    s1 = pay.paid_booking(pay.customer())
    pay.serve(m_card, s1["session_id"], release=False)
    # S2: credit diagnostic, 4999 (grant 4999, debit 4999); delivered; hold over; its mechanic has
    # no payout account; then 1000 refunded to credit
    c2 = pay.customer()
    pay.grant_credit(c2, 4999)
    s2 = pay.checkout(c2, plan="diagnostic")
    assert s2["mode"] == "credit"
    pay.serve(m_credit, s2["session_id"], release=True)
    with db.as_user(admin):
        db.rpc("admin_refund", p_session_id=s2["session_id"], p_amount_cents=1000, p_reason="partly unhappy")
    pay.commit()
    # S3: credit chat10, 999 (grant 999, debit 999); delivered; the customer reports a problem
    c3 = pay.customer()
    pay.grant_credit(c3, 999)
    s3 = pay.checkout(c3, plan="chat10")
    pay.serve(m_report, s3["session_id"], release=False)
    with db.as_user(c3):
        db.rpc("report_problem", p_session_id=s3["session_id"], p_reason="the advice did not fix it")
    pay.commit()
    # S4: card video15, 2999; delivered; hold over; the payout is transferred (paid)
    s4 = pay.paid_booking(pay.customer())
    pay.serve(m_paid, s4["session_id"], release=True)
    pay.drain()
    # S5: free chat, accepted and ended at once: completed, unverified (never settled)
    c5 = pay.customer()
    s5 = request_free(db, c5)
    pay.commit()
    accept(db, m_unv, s5["request_id"])
    start_both(db, s5["session_id"])
    with db.as_user(m_unv):
        assert db.rpc("end_session", p_session_id=s5["session_id"])["delivery"] == "unverified"
    pay.commit()
    # S6: card chat10, 999; cancelled by its customer while pending: 999 refunded to the card (queued)
    c6 = pay.customer()
    s6 = pay.paid_booking(c6, plan="chat10")
    with db.as_user(c6):
        db.rpc(
            "cancel_request",
            p_request_id=pay.val("select id from public.session_requests where session_id = %s", (s6["session_id"],)),
        )
    pay.commit()
    # S7: free chat accepted by m_busy, not started (m_busy is busy); S8: free chat nobody took, filed
    # 6 minutes ago and swept to unattended
    s7 = request_free(db, pay.customer())
    pay.commit()
    accept(db, m_busy, s7["request_id"])
    s8 = request_free(db, pay.customer())
    db.execute(
        "update public.session_requests set created_at = now() - interval '6 minutes', "
        "status_changed_at = now() - interval '6 minutes' where id = %s",
        (s8["request_id"],),
    )
    db.scalar("select private.sweep_requests(now())")
    # m_online: available, heartbeat now
    db.execute("update public.mechanics set is_available = true, last_seen_at = now() where id = %s", (m_online,))
    # reviews: S1 rated 5, S2 rated 3 (in the range); S4 rated 1, moved 10 days back (overall only);
    # S3 rated 2, hidden by an admin (counted nowhere)
    for sid, rating in ((s1["session_id"], 5), (s2["session_id"], 3), (s4["session_id"], 1), (s3["session_id"], 2)):
        customer = pay.val("select customer_id from public.sessions where id = %s", (sid,))
        submit(db, customer, sid, rating)
    db.execute(
        "update public.mechanic_reviews set created_at = now() - interval '10 days' where session_id = %s",
        (s4["session_id"],),
    )
    db.execute(
        "update public.mechanic_reviews set hidden_at = now(), hidden_reason = 'abuse' where session_id = %s",
        (s3["session_id"],),
    )
    # times to accept (seconds): S1 60, S2 120, S3 180, S4 240, S5 600, S7 30
    for sid, secs in ((s1, 60), (s2, 120), (s3, 180), (s4, 240), (s5, 600), (s7, 30)):
        _accepted_after(db, sid["session_id"], secs)
    # S9: a session created 3 days ago (outside the range): counted nowhere in the range's figures
    s9 = request_free(db, pay.customer())
    db.execute("update public.sessions set created_at = now() - interval '3 days' where id = %s", (s9["session_id"],))
    pay.commit()
    # the worker ran with a clock a day ahead (pay.drain): the payout's paid_at is then
    end = pay.val("select now() + interval '2 days'")

    out = _overview(db, admin, start, end)
    pay.commit()

    # sessions created in the range: S1..S8 = 8 (S9 is 3 days old)
    assert out["sessions"]["created"] == 8
    # completed S1 S2 S3 S4 S5 = 5; cancelled S6 = 1; waiting S7 = 1; pending S8 (unattended request) = 1
    assert out["sessions"]["by_status"] == {
        "pending": 1,
        "scheduled": 0,
        "waiting": 1,
        "live": 0,
        "completed": 5,
        "cancelled": 1,
    }
    # chat: S3 S5 S6 S7 S8 = 5; video: S1 S4 = 2; diagnostic: S2 = 1
    assert out["sessions"]["by_type"] == {"chat": 5, "video": 2, "diagnostic": 1}

    # payments paid in the range: S1 2999 + S4 2999 + S6 999 by card = 6997; S2 4999 + S3 999 by credit = 5998
    assert out["revenue"]["payments"] == 5
    assert out["revenue"]["card_cents"] == 6997
    assert out["revenue"]["credit_cents"] == 5998
    assert out["revenue"]["gross_cents"] == 12995
    # settled in the range: S1 (base 2999, fee 900), S2 (base 4999, fee 1500 less the 301 of the
    # 1000 refund its mechanic's payout did not return: ⌊3499 × 1000 / 4999⌋ = 699 → 1199),
    # S3 (999, fee 300), S4 (2999, fee 900); S5 has no payment, S6 was never served
    settled = out["revenue"]["settled"]
    assert settled == {
        "payments": 4,
        "base_cents": 2999 + 4999 + 999 + 2999,
        "platform_fee_cents": 900 + 1199 + 300 + 900,
        "payees_cents": (2999 + 4999 + 999 + 2999) - (900 + 1199 + 300 + 900),
    }
    # refunds in the range: S2 1000 to credit (succeeded at once) + S6 999 to the card (queued, the
    # fake Stripe's worker then sends it) = 2 refunds, 1999
    refunds = out["refunds"]
    assert (refunds["count"], refunds["amount_cents"], refunds["card_cents"], refunds["credit_cents"]) == (
        2,
        1999,
        999,
        1000,
    )
    assert refunds["failed"] == 0 and refunds["failed_cents"] == 0
    assert refunds["succeeded"] + refunds["in_flight"] == 2
    # credit: granted 4999 + 999 = 5998 (2 grants); used by S2 and S3 = 5998 (2 debits); S2's
    # refund returned 1000 (1 entry)
    assert out["credits"] == {
        "granted": 2,
        "granted_cents": 5998,
        "used": 2,
        "used_cents": 5998,
        "refunded": 1,
        "refunded_cents": 1000,
    }
    # payouts sent: S4's mechanic 2099 (70% of 2999)
    payouts = out["payouts"]
    assert payouts["sent"] == {"count": 1, "amount_cents": 2099}
    # waiting now: S1 2099 (objection window), S2 3499 − 699 = 2800 (no payout account), S3 699
    # (problem reported) = 3 payouts, 5598
    reasons = payouts["waiting"]["by_reason"]
    assert payouts["waiting"]["count"] == 3 and payouts["waiting"]["amount_cents"] == 2099 + 2800 + 699
    assert reasons["objection_window"] == {"count": 1, "amount_cents": 2099}
    assert reasons["no_payout_account"] == {"count": 1, "amount_cents": 2800}
    assert reasons["problem_reported"] == {"count": 1, "amount_cents": 699}
    assert sum(r["count"] for r in reasons.values()) == 3
    assert payouts["in_flight"]["count"] == 0 and payouts["failed"]["count"] == 0
    # the unattended queue now: S8, filed 6 minutes before the sweep
    queue = out["queue"]
    filed = pay.val("select created_at from public.session_requests where id = %s", (s8["request_id"],))
    as_of = dt.datetime.fromisoformat(out["as_of"])
    assert queue["unattended"] == 1 and dt.datetime.fromisoformat(queue["oldest_unattended_at"]) == filed
    assert queue["oldest_unattended_age_seconds"] == int((as_of - filed).total_seconds()) >= 360
    assert queue["pending"] == 1  # S9, filed 3 days ago but its request is still pending
    # mechanics now: m_online online; m_busy busy (accepted S7); the other 5 offline (+ nobody else)
    assert out["mechanics"] == {"online": 1, "busy": 1, "offline": 5}
    # time to accept, requests accepted in the range: 30 60 120 180 240 600 → median (120+180)/2 = 150;
    # p90 at position 0.9 × 5 = 4.5: 240 + 0.5 × (600 − 240) = 420
    assert out["time_to_accept"] == {"accepted": 6, "median_seconds": 150.0, "p90_seconds": 420.0}
    # delivery: completed in the range S1..S5 = 5, delivered S1..S4 = 4 → 0.8
    assert out["delivery"] == {"completed": 5, "delivered": 4, "unverified": 1, "rate": 0.8}
    # ratings: in the range 5 and 3 → 4.00 (S3's 2 hidden, S4's 1 ten days old); overall 5, 3, 1 → 3.00
    assert out["ratings"] == {"reviews": 2, "average": 4.0, "reviews_overall": 3, "average_overall": 3.0}

    # a range that holds none of it: every count 0, averages null
    empty = _overview(db, admin, start - dt.timedelta(days=30), start - dt.timedelta(days=20))
    assert empty["sessions"]["created"] == 0 and empty["revenue"]["gross_cents"] == 0
    assert empty["time_to_accept"] == {"accepted": 0, "median_seconds": None, "p90_seconds": None}
    assert empty["delivery"]["rate"] is None and empty["ratings"]["average"] is None
    assert empty["ratings"]["reviews_overall"] == 3  # "overall" ignores the range
    assert empty["payouts"]["waiting"]["count"] == 3  # "now" ignores the range
    pay.assert_books_balance()


def test_each_waiting_reason_is_counted_under_its_own_key(db: Db) -> None:
    """The reasons that the payout rule gives map one to one onto the overview's keys."""
    rows = db.all(
        "select private.overview_wait_key(r) as k from unnest(array["
        "'problem reported by the customer: waits for an admin decision',"
        "'delivery unverified: waits for an admin decision',"
        "'objection window: released at 2030-01-01 00:00:00 UTC',"
        "'mechanic suspended: payouts wait for an admin release',"
        "'mechanic payouts held since a suspension: wait for an admin release',"
        "'no payout account: the payee has not set up payouts',"
        "'the payout account cannot receive transfers yet (transfers capability not active)',"
        "null, 'something new']) r"
    )
    assert [r["k"] for r in rows] == [
        "problem_reported",
        "delivery_unverified",
        "objection_window",
        "mechanic_not_approved",
        "suspension_hold",
        "no_payout_account",
        "transfers_inactive",
        "ready",
        "other",
    ]


def test_a_suspension_hold_and_an_unapproved_mechanic_are_reasons(db: Db) -> None:
    """A delivered session whose hold ended: the mechanic suspended (its payouts held) → suspension
    or standing, counted live from the payout rule, not from the stored reason."""
    admin = make_admin(db)
    mechanic = make_mechanic(db)
    customer = make_customer(db)
    with db.as_user(admin):
        db.rpc("admin_grant_credit", p_customer_id=customer, p_amount_cents=999, p_reason="test")
    out = db.scalar(
        "select private.prepare_checkout(%s, 'chat10', %s, null, null, false)", (customer, make_intake(db, customer))
    )
    accept(db, mechanic, out["request_id"])
    db.execute("select 1")
    deliver(db, out["session_id"])
    release_hold(db, out["session_id"])
    now = db.scalar("select now()")
    day = dt.timedelta(days=1)
    assert (
        _overview(db, admin, now - day, now + day)["payouts"]["waiting"]["by_reason"]["no_payout_account"]["count"] == 1
    )
    with db.as_user(admin):
        db.rpc("admin_set_mechanic_status", p_mechanic_id=mechanic, p_status="suspended")
    reasons = _overview(db, admin, now - day, now + day)["payouts"]["waiting"]["by_reason"]
    assert reasons["mechanic_not_approved"]["count"] == 1 and reasons["no_payout_account"]["count"] == 0
    with db.as_user(admin):
        db.rpc("admin_set_mechanic_status", p_mechanic_id=mechanic, p_status="approved")
    reasons = _overview(db, admin, now - day, now + day)["payouts"]["waiting"]["by_reason"]
    assert reasons["suspension_hold"] == {"count": 1, "amount_cents": 699}


def test_the_range_is_checked(db: Db) -> None:
    admin = make_admin(db)
    now = dt.datetime.now(dt.UTC)
    day = dt.timedelta(days=1)
    with db.as_user(admin):
        assert db.rpc_error("admin_overview", p_from=None, p_to=now) == "AD001"
        assert db.rpc_error("admin_overview", p_from=now, p_to=None) == "AD001"
        assert db.rpc_error("admin_overview", p_from=now, p_to=now - day) == "AD255"
        assert db.rpc_error("admin_overview", p_from=now, p_to=now) == "AD255"
        assert db.rpc_error("admin_overview", p_from="-infinity", p_to=now) == "AD255"
        assert db.rpc_error("admin_overview", p_from=now, p_to="infinity") == "AD255"
        assert db.rpc_error("admin_overview", p_from=now - 367 * day, p_to=now) == "AD256"
        assert db.rpc_error("admin_overview", p_from="yesterday-ish", p_to=now) == "22007"
        assert db.rpc("admin_overview", p_from=now - 366 * day, p_to=now)["sessions"]["created"] == 0
    db.execute("update private.settings set value = '7' where key = 'operations.overview_max_days'")
    with db.as_user(admin):
        assert db.rpc_error("admin_overview", p_from=now - 8 * day, p_to=now) == "AD256"


def _personas(db: Db) -> dict[str, uuid.UUID | None]:
    customer = make_customer(db)
    mechanic = make_mechanic(db)
    owner = db.make_user(user_metadata={"full_name": "Wren Workshop"})
    org = db.scalar("insert into public.organizations (name) values ('Bay Motors') returning id")
    db.execute(
        "insert into public.organization_members (organization_id, user_id, role) values (%s, %s, 'owner')",
        (org, owner),
    )
    return {
        "customer": customer,
        "mechanic": mechanic,
        "workshop owner": owner,
        "pending mechanic": make_mechanic(db, approved=False),
        "token without a user": None,
    }


def test_only_admins_read_the_overview_or_run_the_sweep(db: Db) -> None:
    admin = make_admin(db)
    customer = make_customer(db)
    request_free(db, customer)  # a session exists: the figures the others cannot read are real
    now = db.scalar("select now()")
    day = dt.timedelta(days=1)
    assert _overview(db, admin, now - day, now + day)["sessions"]["created"] == 1
    runs = db.scalar("select count(*) from private.cron_runs")
    for name, user in _personas(db).items():
        ctx = db.as_role("authenticated", {"role": "authenticated"}) if user is None else db.as_user(user)
        with ctx:
            expected = "AD002" if user is None else "AD003"
            assert db.rpc_error("admin_overview", p_from=now - day, p_to=now + day) == expected, name
            assert db.rpc_error("admin_run_sweep") == expected, name
    with db.as_anon():
        assert db.rpc_error("admin_overview", p_from=now - day, p_to=now + day) == "42501"
        assert db.rpc_error("admin_run_sweep") == "42501"
    assert db.scalar("select count(*) from private.cron_runs") == runs
    assert db.scalar("select count(*) from private.admin_actions where action = 'sweep.run'") == 0


def test_run_sweep_does_the_work_records_the_run_and_audits_it(db: Db) -> None:
    admin = make_admin(db)
    # two requests due for the queue (filed 6 minutes ago), one due to expire (filed 3 hours ago)
    due = [request_free(db, make_customer(db)) for _ in range(3)]
    db.execute(
        "update public.session_requests set created_at = now() - interval '6 minutes', "
        "status_changed_at = now() - interval '6 minutes' where id = any(%s)",
        ([d["request_id"] for d in due[:2]],),
    )
    db.execute(
        "update public.session_requests set created_at = now() - interval '3 hours', "
        "status_changed_at = now() - interval '3 hours' where id = %s",
        (due[2]["request_id"],),
    )
    with db.as_user(admin):
        out = db.rpc("admin_run_sweep")
    assert out["unattended"] == 3 and out["expired"] == 1  # tier 1 takes all three, tier 2 the old one
    assert out["no_show_cancelled"] == 0 and out["orphaned_cancelled"] == 0
    assert set(out) == {"unattended", "expired", "no_show_cancelled", "orphaned_cancelled", "approvals_lapsed"}
    run = db.one("select job, ok, result, finished_at from private.cron_runs order by id desc limit 1")
    assert run is not None and run["job"] == "cron_sweep_requests" and run["ok"] is True
    assert run["result"] == out and run["finished_at"] is not None
    action = db.one(
        "select admin_id, action, subject_type, subject_id, data from private.admin_actions where action = 'sweep.run'"
    )
    assert action == {
        "admin_id": admin,
        "action": "sweep.run",
        "subject_type": "schedule",
        "subject_id": None,
        "data": out,
    }
    statuses = {
        r["status"]
        for r in db.all(
            "select status::text as status from public.session_requests where id = any(%s)",
            ([d["request_id"] for d in due],),
        )
    }
    assert statuses == {"unattended", "expired"}
    # nothing left to do: a second run finds nothing
    with db.as_user(admin):
        again = db.rpc("admin_run_sweep")
    assert again["unattended"] == 0 and again["expired"] == 0


def test_a_run_by_hand_next_to_the_scheduled_run_handles_each_request_once(fresh_url: str) -> None:
    """The scheduled run holds its rows (not yet committed) while the admin's run goes: the admin's
    run skips them; then the scheduled run commits. Every due request expired exactly once, each
    paid one refunded exactly once."""
    setup = Db(psycopg.connect(fresh_url, prepare_threshold=None))
    setup.conn.execute("select 1")
    admin = make_admin(setup)
    requests = []
    for _ in range(4):
        customer = make_customer(setup)
        requests.append(request_free(setup, customer)["request_id"])
    setup.execute(
        "update public.session_requests set created_at = now() - interval '3 hours', "
        "status_changed_at = now() - interval '3 hours'"
    )
    setup.conn.commit()
    setup.conn.close()

    scheduled_holds = threading.Event()
    admin_done = threading.Event()
    results: dict[str, Any] = {}
    errors: list[BaseException] = []

    def scheduled() -> None:
        try:
            with psycopg.connect(fresh_url, prepare_threshold=None) as conn:
                results["scheduled"] = conn.execute("select private.run_job('sweep_requests')").fetchone()[0]
                scheduled_holds.set()
                admin_done.wait(30)
                conn.commit()
        except BaseException as exc:
            errors.append(exc)
            scheduled_holds.set()

    def by_hand() -> None:
        try:
            scheduled_holds.wait(30)
            conn = psycopg.connect(fresh_url, prepare_threshold=None)
            conn.execute("select 1")
            db = Db(conn)
            with db.as_user(admin):
                results["admin"] = db.rpc("admin_run_sweep")
            conn.commit()
            conn.close()
        except BaseException as exc:
            errors.append(exc)
        finally:
            admin_done.set()

    threads = [threading.Thread(target=scheduled), threading.Thread(target=by_hand)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert results["scheduled"]["expired"] == 4 and results["admin"]["expired"] == 0
    with psycopg.connect(fresh_url) as conn:
        expired = conn.execute(
            "select count(*) from public.session_events where request_id = any(%s) and to_status = 'expired'",
            (requests,),
        ).fetchone()[0]
        runs = conn.execute("select count(*) from private.cron_runs where job = 'cron_sweep_requests'").fetchone()[0]
        audited = conn.execute("select count(*) from private.admin_actions where action = 'sweep.run'").fetchone()[0]
    assert expired == 4 and runs == 2 and audited == 1


def test_error_codes_are_registered(db: Db) -> None:
    rows = db.all(
        "select sqlstate, name, http_status from private.error_codes where sqlstate in ('AD255', 'AD256') "
        "order by sqlstate"
    )
    assert rows == [
        {"sqlstate": "AD255", "name": "overview_range_invalid", "http_status": 400},
        {"sqlstate": "AD256", "name": "overview_range_too_long", "http_status": 400},
    ]
