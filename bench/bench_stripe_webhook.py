"""Stripe webhook throughput, end to end: signature verification → ledger → state change, through
the real `stripe_webhook` HTTP function, with duplicates (also concurrent) that must have no
effect — against a naive design (verify, then create the session on every delivery).

Run: .venv/bin/python -m bench.bench_stripe_webhook   (embedded PostgreSQL; DATABASE_URL for another server)

- ours:  functions/webhooks/stripe.py — construct_event on the raw body, then one transaction:
         private.stripe_events insert on conflict do nothing → lock → apply once → processed.
         Each first delivery of checkout.session.completed records the payment and creates the
         session and its request (private.create_session_request); every duplicate is a no-op.
- naive: construct_event, then insert a session and a request for the event,
         no ledger and no dedupe (so every duplicate books a second session).
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import uuid
from typing import Any

import flask
import psycopg
import stripe

from bench.common import bench_database, print_stamp

THREADS = 8
BOOKINGS = 2000
DUPLICATE_SHARE = 0.25  # a quarter of the deliveries repeat an earlier event
SECRET = "whsec_bench_0123456789abcdef0123456789"  # noqa: S105 - a throwaway signing secret


def setup(url: str, n: int) -> list[dict[str, Any]]:
    """n customers, each with an intake and a pending card booking that has a Checkout Session."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("""
            insert into auth.users (id, email, created_at)
            select gen_random_uuid(), 'c' || g || '@bench.test', now() from generate_series(1, %s) g""", (n,))
        conn.execute("""
            insert into public.intakes (customer_id, concern)
            select id, 'brakes squeal when stopping' from auth.users where email like 'c%%@bench.test'""")
        conn.execute("""
            insert into public.bookings (customer_id, plan_code, intake_id, price_cents, currency, method,
                                         stripe_checkout_session_id, expires_at)
            select i.customer_id, 'video15', i.id, 2999, 'usd', 'card',
                   'cs_test_' || replace(i.id::text, '-', ''), now() + interval '1 hour'
            from public.intakes i""")
        rows = conn.execute("select id, customer_id, intake_id, stripe_checkout_session_id from public.bookings"
                            " order by id").fetchall()
    return [{"booking_id": str(r[0]), "customer_id": str(r[1]), "intake_id": str(r[2]), "cs": r[3]} for r in rows]


def events_for(bookings: list[dict[str, Any]], rng: random.Random) -> list[tuple[bytes, str]]:
    """Signed deliveries: one completed event per booking plus DUPLICATE_SHARE repeats, shuffled."""
    now = int(time.time())
    unique = []
    for b in bookings:
        event = {
            "id": "evt_" + uuid.uuid4().hex[:24], "object": "event", "api_version": "2024-06-20",
            "created": now, "type": "checkout.session.completed", "livemode": False, "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "data": {"object": {
                "id": b["cs"], "object": "checkout.session", "mode": "payment", "amount_total": 2999,
                "amount_subtotal": 2999, "currency": "usd", "client_reference_id": b["booking_id"],
                "metadata": {"booking_id": b["booking_id"], "customer_id": b["customer_id"], "plan_code": "video15",
                             "intake_id": b["intake_id"]},
                "payment_intent": "pi_" + uuid.uuid4().hex[:24], "payment_status": "paid", "status": "complete"}},
        }
        payload = json.dumps(event).encode()
        unique.append(payload)
    deliveries = unique + [rng.choice(unique) for _ in range(int(len(unique) * DUPLICATE_SHARE))]
    rng.shuffle(deliveries)
    # signing is Stripe's work, not ours: done before the clock starts
    return [(p, stripe.WebhookSignature.generate_signature_header(p.decode(), SECRET)) for p in deliveries]


def run(handler: Any, deliveries: list[tuple[bytes, str]]) -> tuple[float, dict[int, int]]:
    app = flask.Flask("bench")
    statuses: dict[int, int] = {}
    lock = threading.Lock()

    def work(t: int) -> None:
        mine: dict[int, int] = {}
        for i in range(t, len(deliveries), THREADS):
            payload, header = deliveries[i]
            with app.test_request_context("/", method="POST", data=payload, content_type="application/json",
                                          headers={"Stripe-Signature": header}):
                status = handler(flask.request).status_code
            mine[status] = mine.get(status, 0) + 1
        with lock:
            for k, v in mine.items():
                statuses[k] = statuses.get(k, 0) + v

    started = time.perf_counter()
    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return len(deliveries) / (time.perf_counter() - started), statuses


def naive_handler(request: flask.Request) -> flask.Response:
    """The naive webhook: verify, then insert a session and a request for every delivery."""
    from shared import db

    event = stripe.Webhook.construct_event(request.get_data(), request.headers.get("Stripe-Signature"), SECRET)
    if event["type"] == "checkout.session.completed":
        meta = event["data"]["object"]["metadata"]
        with db.transaction() as conn:
            session = conn.execute(
                "insert into public.sessions (customer_id, plan_code, session_type, duration_type, planned_minutes,"
                " price_cents) values (%s, 'video15', 'video', 'standard', 45, 2999) returning id",
                (meta["customer_id"],)).fetchone()["id"]
            conn.execute(
                "insert into public.session_requests (session_id, customer_id, plan_code, session_type, concern)"
                " values (%s, %s, 'video15', 'video', 'brakes squeal when stopping')", (session, meta["customer_id"]))
    response = flask.jsonify(received=True)
    return response


def main() -> None:
    from shared import db
    from shared.config import get_settings

    rng = random.Random(7)
    with bench_database() as url:
        os.environ["DATABASE_URL"] = url
        os.environ["STRIPE_WEBHOOK_SECRET"] = SECRET
        get_settings.cache_clear()
        db.close_pool()
        from functions.webhooks.stripe import stripe_webhook

        print_stamp(url)
        print(f"{THREADS} client threads; "
              f"{BOOKINGS} bookings, {DUPLICATE_SHARE:.0%} duplicate deliveries")
        bookings = setup(url, 2 * BOOKINGS)
        ours_deliveries = events_for(bookings[:BOOKINGS], rng)
        naive_deliveries = events_for(bookings[BOOKINGS:], rng)

        ours_rate, ours_status = run(stripe_webhook, ours_deliveries)
        naive_rate, naive_status = run(naive_handler, naive_deliveries)

        with psycopg.connect(url) as conn:
            ours_ids = [b["booking_id"] for b in bookings[:BOOKINGS]]
            naive_customers = [b["customer_id"] for b in bookings[BOOKINGS:]]
            payments = conn.execute("select count(*) from public.payments where booking_id = any(%s::uuid[])",
                                    (ours_ids,)).fetchone()[0]
            sessions = conn.execute("select count(*) from public.bookings where id = any(%s::uuid[])"
                                    " and session_id is not null", (ours_ids,)).fetchone()[0]
            ledger = conn.execute("select count(*) from private.stripe_events").fetchone()[0]
            issues = conn.execute("select count(*) from private.payment_integrity_issues").fetchone()[0]
            naive_sessions = conn.execute("select count(*) from public.sessions where customer_id = any(%s::uuid[])",
                                          (naive_customers,)).fetchone()[0]
        print(f"ours:  {ours_rate:,.0f} events/s over {len(ours_deliveries)} deliveries, statuses {ours_status}; "
              f"{payments} payments and {sessions} sessions for {BOOKINGS} bookings, {ledger} ledger rows, "
              f"{issues} integrity issues")
        print(f"naive: {naive_rate:,.0f} events/s over {len(naive_deliveries)} deliveries, statuses {naive_status}; "
              f"{naive_sessions} sessions for {BOOKINGS} bookings ({naive_sessions - BOOKINGS} duplicate bookings)")
        print(f"ratio ours/naive {ours_rate / naive_rate:.2f}")
        db.close_pool()


if __name__ == "__main__":
    main()
