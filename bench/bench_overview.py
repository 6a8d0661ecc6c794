"""The admin overview (public.admin_overview) over a year of business: 50,000 sessions with their
requests, 30,000 payments, payouts, refunds, credit entries and reviews, 500 mechanics; for a range
of 30 days and of 365 days, against the naive design (read the range's rows into the application
and count there).

Run: .venv/bin/python -m bench.bench_overview   (embedded PostgreSQL; DATABASE_URL for another server)
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
import time
import uuid
from collections import Counter
from typing import Any

import psycopg

from bench.common import bench_database, ms, print_stamp
from shared.db import set_request_context

SESSIONS = 50_000
CUSTOMERS = 5_000
MECHANICS = 500
RUNS = 15


def setup(url: str) -> uuid.UUID:
    """History bulk-loaded with triggers off (it is history: no events, no broadcasts)."""
    admin = uuid.uuid4()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "insert into auth.users (id, email, raw_app_meta_data, created_at) "
            "values (%s, 'admin@bench.test', %s, now())",
            (admin, json.dumps({"role": "admin"})),
        )
        conn.execute("set session_replication_role = replica")
        conn.execute(
            "insert into auth.users (id, email, created_at) select gen_random_uuid(), "
            "'c' || g || '@bench.test', now() from generate_series(1, %s) g",
            (CUSTOMERS,),
        )
        conn.execute(
            "insert into auth.users (id, email, created_at) select gen_random_uuid(), "
            "'m' || g || '@bench.test', now() from generate_series(1, %s) g",
            (MECHANICS,),
        )
        conn.execute(
            """
            insert into public.mechanics (id, display_name, status, is_available, last_seen_at)
            select u.id, 'Mechanic', 'approved', n %% 3 = 0, now() - (n %% 10) * interval '1 minute'
            from (select id, row_number() over (order by id) n from auth.users where email like 'm%%') u""",
            (),
        )
        conn.execute(
            """
            create temp table plan_ as
            select row_number() over (order by g) as n, g,
                   c.id as customer_id, m.id as mechanic_id,
                   now() - (g %% 365) * interval '1 day' - (g %% 1440) * interval '1 minute' as created_at,
                   case when g %% 100 < 70 then 'completed' when g %% 100 < 85 then 'cancelled'
                        when g %% 100 < 90 then 'waiting' when g %% 100 < 92 then 'live'
                        else 'pending' end::public.session_status as status,
                   (array['chat', 'video', 'diagnostic'])[1 + g %% 3]::public.session_type as session_type,
                   (array['chat10', 'video15', 'diagnostic'])[1 + g %% 3] as plan_code,
                   (array[999, 2999, 4999])[1 + g %% 3] as price_cents
            from generate_series(1, %s) g
            join (select id, row_number() over (order by id) n from auth.users where email like 'c%%') c
              on c.n = 1 + g %% %s
            join (select id, row_number() over (order by id) n from auth.users where email like 'm%%') m
              on m.n = 1 + g %% %s""",
            (SESSIONS, CUSTOMERS, MECHANICS),
        )
        conn.execute(
            "alter table plan_ add column intake_id uuid default gen_random_uuid(), "
            "add column session_id uuid default gen_random_uuid(), "
            "add column booking_id uuid default gen_random_uuid(), "
            "add column payment_id uuid default gen_random_uuid()"
        )
        conn.execute(
            "insert into public.intakes (id, customer_id, concern, created_at) "
            "select intake_id, customer_id, 'noise', created_at from plan_"
        )
        conn.execute("""
            insert into public.sessions (id, customer_id, mechanic_id, plan_code, session_type, duration_type,
                                         planned_minutes, price_cents, intake_id, status, status_changed_at,
                                         created_at, started_at, ended_at, delivery)
            select session_id, customer_id, case when status not in ('pending', 'cancelled') then mechanic_id end,
                   plan_code, session_type, 'standard', 30, price_cents, intake_id, status, created_at, created_at,
                   case when status in ('completed', 'live') then created_at + interval '10 minutes' end,
                   case when status = 'completed' then created_at + interval '40 minutes' end,
                   case when status = 'completed' then (case when g % 10 = 0 then 'unverified' else 'delivered' end) end
            from plan_""")
        conn.execute("""
            insert into public.session_requests (session_id, customer_id, plan_code, session_type, status,
                                                 status_changed_at, created_at, concern, mechanic_id, accepted_at)
            select session_id, customer_id, plan_code, session_type,
                   case when status = 'pending' then (case when g % 5 = 0 then 'unattended' else 'pending' end)
                        when status = 'cancelled' then 'cancelled' else 'accepted' end::public.request_status,
                   created_at, created_at, 'noise',
                   case when status not in ('pending', 'cancelled') then mechanic_id end,
                   case when status not in ('pending', 'cancelled')
                        then created_at + (g % 600) * interval '1 second' end
            from plan_""")
        # 60 % of the sessions are paid, one in five of those with credit
        conn.execute("""
            insert into public.bookings (id, customer_id, plan_code, intake_id, method, price_cents, currency,
                                         status, session_id, created_at)
            select booking_id, customer_id, plan_code, intake_id,
                   case when g % 5 = 0 then 'credit' else 'card' end::public.payment_method, price_cents, 'usd',
                   'paid', session_id, created_at
            from plan_ where g % 10 < 6""")
        conn.execute("""
            insert into public.payments (id, booking_id, customer_id, session_id, method, amount_cents, currency,
                                         stripe_checkout_session_id, transfer_group, paid_at, created_at,
                                         settled_at, settled_base_cents, platform_fee_cents)
            select payment_id, booking_id, customer_id, session_id,
                   case when g % 5 = 0 then 'credit' else 'card' end::public.payment_method, price_cents, 'usd',
                   case when g % 5 <> 0 then 'cs_' || replace(booking_id::text, '-', '') end,
                   'booking_' || booking_id, created_at, created_at,
                   case when status = 'completed' then created_at + interval '40 minutes' end,
                   case when status = 'completed' then price_cents end,
                   case when status = 'completed' then price_cents - floor(price_cents * 0.7)::int else 0 end
            from plan_ where g % 10 < 6""")
        conn.execute("""
            insert into public.payouts (payment_id, session_id, payee_kind, mechanic_id, share_bps,
                                        original_amount_cents, amount_cents, currency, status, waiting_reason,
                                        release_at, stripe_transfer_id, paid_at, created_at)
            select payment_id, session_id, 'mechanic', mechanic_id, 7000, floor(price_cents * 0.7)::int,
                   floor(price_cents * 0.7)::int, 'usd',
                   case when created_at > now() - interval '1 day' then 'waiting' else 'paid' end::public.payout_status,
                   case when created_at > now() - interval '1 day' then 'objection window' end,
                   created_at + interval '1 day',
                   case when created_at <= now() - interval '1 day'
                        then 'tr_' || replace(payment_id::text, '-', '') end,
                   case when created_at <= now() - interval '1 day' then created_at + interval '1 day' end, created_at
            from plan_ where g % 10 < 6 and status = 'completed'""")
        conn.execute("""
            insert into public.refunds (payment_id, customer_id, seq, amount_cents, currency, destination, origin,
                                        status, created_at)
            select payment_id, customer_id, 1, 500, 'usd',
                   case when g % 5 = 0 then 'credit' else 'card' end::public.payment_method, 'admin', 'succeeded',
                   created_at + interval '2 days'
            from plan_ where g % 10 < 6 and g % 20 = 1""")
        conn.execute("""
            insert into public.credit_ledger (customer_id, seq, kind, amount_cents, balance_after_cents, booking_id,
                                              created_at)
            select customer_id, 2 * row_number() over (partition by customer_id order by g) - 1 + e.k, e.kind,
                   case when e.k = 0 then price_cents else -price_cents end,
                   case when e.k = 0 then price_cents else 0 end,
                   case when e.k = 1 then booking_id end, created_at - (1 - e.k) * interval '1 minute'
            from plan_ cross join (values (0, 'grant'::public.credit_entry_kind), (1, 'debit')) e(k, kind)
            where g % 10 < 6 and g % 5 = 0""")
        conn.execute("""
            insert into public.mechanic_reviews (session_id, customer_id, mechanic_id, rating, created_at)
            select session_id, customer_id, mechanic_id, 1 + g % 5, created_at + interval '1 hour'
            from plan_ where status = 'completed' and g % 2 = 0 and g % 10 <> 0""")
        conn.execute("set session_replication_role = origin")
        for table in (
            "sessions",
            "session_requests",
            "payments",
            "payouts",
            "refunds",
            "credit_ledger",
            "mechanic_reviews",
            "mechanics",
            "bookings",
        ):
            conn.execute(f"vacuum analyze public.{table}")
    return admin


def ours(conn: psycopg.Connection[Any], admin: uuid.UUID, days: int) -> int:
    set_request_context(conn, "authenticated", {"sub": str(admin), "role": "authenticated"}, path="/rpc/admin_overview")
    out = conn.execute("select public.admin_overview(now() - make_interval(days => %s), now())", (days,)).fetchone()[0]  # type: ignore[index]
    return int(out["sessions"]["created"])


def naive(conn: psycopg.Connection[Any], _admin: uuid.UUID, days: int) -> int:
    """The range's rows to the application, counted there; the waiting payouts' reasons and the
    mechanics' presence read row by row from the same rules (private.payout_wait_reason, the
    mechanic_presence view)."""
    since = conn.execute("select now() - make_interval(days => %s), now()", (days,)).fetchone()
    assert since is not None
    start, end = since
    sessions = conn.execute(
        "select status, session_type, ended_at, delivery, created_at from public.sessions "
        "where created_at >= %s and created_at < %s or ended_at >= %s and ended_at < %s",
        (start, end, start, end),
    ).fetchall()
    payments = conn.execute(
        "select amount_cents, method, settled_at, settled_base_cents, platform_fee_cents "
        "from public.payments where paid_at >= %s and paid_at < %s or settled_at >= %s "
        "and settled_at < %s",
        (start, end, start, end),
    ).fetchall()
    accepted = conn.execute(
        "select extract(epoch from accepted_at - created_at)::float8 from public.session_requests "
        "where accepted_at >= %s and accepted_at < %s",
        (start, end),
    ).fetchall()
    reviews = conn.execute(
        "select rating from public.mechanic_reviews where hidden_at is null and created_at >= %s and created_at < %s",
        (start, end),
    ).fetchall()
    refunds = conn.execute(
        "select amount_cents from public.refunds where created_at >= %s and created_at < %s", (start, end)
    ).fetchall()
    credits = conn.execute(
        "select kind, amount_cents from public.credit_ledger where created_at >= %s and created_at < %s", (start, end)
    ).fetchall()
    waiting = conn.execute("select id, amount_cents from public.payouts where status = 'waiting'").fetchall()
    reasons = Counter(
        conn.execute("select private.payout_wait_reason(%s)", (w[0],)).fetchone()[0]  # type: ignore[index]
        for w in waiting
    )
    presence = Counter(r[0] for r in conn.execute("select presence from public.mechanic_presence").fetchall())
    by_status = Counter(s[0] for s in sessions if start <= s[4] < end)
    _ = (
        sum(p[0] for p in payments),
        statistics.median([a[0] for a in accepted] or [0]),
        statistics.mean([r[0] for r in reviews] or [0]),
        sum(r[0] for r in refunds),
        sum(c[1] for c in credits),
        reasons,
        presence,
    )
    return sum(by_status.values())


def measure(url: str, admin: uuid.UUID, fn: Any, days: int) -> tuple[list[float], int]:
    times = []
    value = 0
    with psycopg.connect(url, prepare_threshold=None) as conn:
        for _ in range(RUNS):
            t0 = time.perf_counter()
            value = fn(conn, admin, days)
            times.append(time.perf_counter() - t0)
            conn.rollback()
    return times, value


def main() -> None:
    with bench_database() as url:
        print_stamp(url)
        print(f"loading {SESSIONS:,} sessions with their money and reviews …", flush=True)
        t0 = time.perf_counter()
        admin = setup(url)
        print(f"loaded in {time.perf_counter() - t0:.0f} s ({dt.datetime.now(dt.UTC):%H:%M} UTC)")
        for days in (30, 365):
            t_ours, n_ours = measure(url, admin, ours, days)
            t_naive, n_naive = measure(url, admin, naive, days)
            med, med_n = sorted(t_ours)[len(t_ours) // 2], sorted(t_naive)[len(t_naive) // 2]
            print(f"admin_overview, {days} days (ours): {n_ours:,} sessions in the range, {ms(t_ours)}")
            print(
                f"naive, {days} days (rows to the application): {n_naive:,} sessions, {ms(t_naive)}; "
                f"ratio naive/ours {med_n / med:.1f}x"
            )


if __name__ == "__main__":
    main()
