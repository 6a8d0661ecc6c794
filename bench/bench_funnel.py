"""The admin funnel (public.admin_funnel, by week over a year) and retention (public.admin_retention)
over ~100,000 interactions of 2,000 customers, against the naive design (read the year's
interactions into the application and count the cohorts there).

Run: .venv/bin/python -m bench.bench_funnel   (embedded PostgreSQL; DATABASE_URL for another server)
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections import defaultdict
from typing import Any

import psycopg

from bench.common import bench_database, ms, print_stamp
from shared.db import set_request_context

CUSTOMERS = 2_000
INTAKES = 30_000
RUNS = 15
FROM, TO = dt.date(2025, 12, 1), dt.date(2026, 11, 30)


def setup(url: str) -> uuid.UUID:
    """History bulk-loaded with triggers off: intakes spread over the year; for each, a request
    (80 %), a delivery (60 %), its purchase, a follow-up (5 %) and a later purchase (10 %)."""
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
            """
            insert into public.intakes (customer_id, concern, created_at)
            select u.id, 'noise', timestamptz '2025-12-01 00:00+00' + (g %% 364) * interval '1 day'
                                    + (g %% 1440) * interval '1 minute'
            from generate_series(1, %s) g
            join (select id, row_number() over (order by id) n from auth.users where email like 'c%%') u
              on u.n = 1 + g %% %s""",
            (INTAKES, CUSTOMERS),
        )
        conn.execute("""
            insert into public.crm_interactions (customer_id, kind, occurred_at, intake_id, session_id,
                                                 subject_id, data)
            select i.customer_id, k.kind, i.created_at + k.after, i.id, null,
                   case when k.kind in ('purchase', 'follow_up_asked') then gen_random_uuid() end, '{}'
            from (select i.*, row_number() over (order by i.id) n from public.intakes i) i
            cross join (values ('intake_created', interval '0', 100), ('request_filed', interval '5 minutes', 80),
                               ('purchase', interval '4 minutes', 80), ('session_delivered', interval '1 day', 60),
                               ('follow_up_asked', interval '2 days', 5), ('purchase', interval '20 days', 10))
                 as k(kind, after, share)
            where i.n % 100 < k.share""")
        conn.execute("set session_replication_role = origin")
        conn.execute("vacuum analyze public.crm_interactions")
        conn.execute("vacuum analyze public.intakes")
    return admin


def call(conn: psycopg.Connection[Any], admin: uuid.UUID, query: str, params: tuple[Any, ...]) -> Any:
    set_request_context(conn, "authenticated", {"sub": str(admin), "role": "authenticated"}, path="/rpc/admin_funnel")
    return conn.execute(query, params).fetchone()[0]  # type: ignore[index]


def ours(conn: psycopg.Connection[Any], admin: uuid.UUID) -> int:
    out = call(conn, admin, "select public.admin_funnel(%s, %s, 'week')", (FROM, TO))
    return int(out["totals"]["returned"])


def retention(conn: psycopg.Connection[Any], admin: uuid.UUID) -> int:
    out = call(conn, admin, "select public.admin_retention(%s, %s)", (FROM, TO))
    return int(out["totals"]["customers"])


def naive(conn: psycopg.Connection[Any], _admin: uuid.UUID) -> int:
    """Every interaction of the customers with an intake in the range, counted in the application."""
    rows = conn.execute(
        "select customer_id, kind, occurred_at, intake_id, session_id, data ->> 'extension'"
        " from public.crm_interactions"
        " where customer_id in (select customer_id from public.crm_interactions where kind = 'intake_created'"
        " and occurred_at >= %s and occurred_at < %s::date + 1)",
        (FROM, TO),
    ).fetchall()
    by_intake: dict[Any, dict[str, Any]] = defaultdict(dict)
    purchases: dict[Any, list[dt.datetime]] = defaultdict(list)
    sessions: dict[Any, Any] = {}
    for customer, kind, at, intake, session, ext in rows:
        if intake is not None:
            entry = by_intake[intake]
            entry.setdefault("customer", customer)
            if kind == "session_delivered":
                entry["delivered"] = min(at, entry.get("delivered", at))
            entry.setdefault("kinds", set()).add(kind)
            if kind == "intake_created":
                entry["at"] = at
            if session is not None:
                sessions[session] = intake
        if kind == "purchase" and ext != "true":
            purchases[customer].append(at)
    returned = 0
    for entry in by_intake.values():
        kinds = entry.get("kinds", set())
        if "at" not in entry or "request_filed" not in kinds or "delivered" not in entry:
            continue
        if "follow_up_asked" in kinds or any(p > entry["delivered"] for p in purchases[entry["customer"]]):
            returned += 1
    return returned


def measure(url: str, admin: uuid.UUID, fn: Any) -> tuple[list[float], int]:
    times = []
    value = 0
    with psycopg.connect(url, prepare_threshold=None) as conn:
        for _ in range(RUNS):
            t0 = time.perf_counter()
            value = fn(conn, admin)
            times.append(time.perf_counter() - t0)
            conn.rollback()
    return times, value


def main() -> None:
    with bench_database() as url:
        print_stamp(url)
        print(f"loading {INTAKES:,} intakes of {CUSTOMERS:,} customers …", flush=True)
        t0 = time.perf_counter()
        admin = setup(url)
        with psycopg.connect(url) as conn:
            total = conn.execute("select count(*) from public.crm_interactions").fetchone()[0]  # type: ignore[index]
        print(f"loaded {total:,} interactions in {time.perf_counter() - t0:.0f} s")
        t_ours, n_ours = measure(url, admin, ours)
        t_ret, n_ret = measure(url, admin, retention)
        t_naive, n_naive = measure(url, admin, naive)
        print(f"admin_funnel, 365 days by week (ours): {n_ours:,} returned intakes, {ms(t_ours)}")
        print(f"admin_retention, 365 days: {n_ret:,} customers, {ms(t_ret)}")
        med, med_n = sorted(t_ours)[len(t_ours) // 2], sorted(t_naive)[len(t_naive) // 2]
        print(
            f"naive (rows to the application): {n_naive:,} returned intakes, {ms(t_naive)}; "
            f"ratio naive/ours {med_n / med:.1f}x"
        )


if __name__ == "__main__":
    main()
