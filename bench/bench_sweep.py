"""The request sweep (private.sweep_requests) over 1,000,000 requests of which 1,000 are due, against
the naive design
(read every open request into the application, check its age, update the due ones one by one).

Run: .venv/bin/python -m bench.bench_sweep   (embedded PostgreSQL; DATABASE_URL for another server)
"""

from __future__ import annotations

import time
import uuid

import psycopg

from bench.common import bench_database, ms, print_stamp

TOTAL = 1_000_000
DUE = 1_000
OPEN_NOT_DUE = 20_000
RUNS = 15


def setup(url: str) -> None:
    """History is bulk-loaded with triggers off (it is history: no events, no broadcasts)."""
    customer = uuid.uuid4()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("insert into auth.users (id, email, created_at) values (%s, 'bulk@bench.test', now())",
                     (customer,))
        conn.execute("set session_replication_role = replica")
        conn.execute("""
            insert into public.sessions (id, customer_id, plan_code, session_type, duration_type, planned_minutes,
                                         price_cents, status, status_changed_at, created_at)
            select gen_random_uuid(), %s, 'free', 'chat', 'micro', 5, 0,
                   case when g <= %s then 'pending'::public.session_status
                        when g %% 3 = 0 then 'cancelled' else 'pending' end,
                   now() - interval '1 day', now() - interval '1 day'
            from generate_series(1, %s) g""", (customer, DUE + OPEN_NOT_DUE, TOTAL))
        conn.execute("""
            insert into public.session_requests (session_id, customer_id, plan_code, session_type, status,
                                                 status_changed_at, created_at, concern, broadcast_at)
            select s.id, s.customer_id, 'free', 'chat',
                   case when n <= %s then 'pending'::public.request_status          -- due: pending 10 min
                        when n <= %s then 'pending'::public.request_status          -- open, not due yet
                        when n %% 3 = 0 then 'cancelled' else 'expired' end,
                   case when n <= %s then now() - interval '10 minutes' else now() - interval '1 minute' end,
                   case when n <= %s then now() - interval '10 minutes'
                        when n <= %s then now() - interval '1 minute' else now() - interval '1 day' end,
                   'noise', now()
            from (select s.*, row_number() over (order by s.created_at, s.id) n from public.sessions s) s""",
                     (DUE, DUE + OPEN_NOT_DUE, DUE, DUE, DUE + OPEN_NOT_DUE))
        conn.execute("set session_replication_role = origin")
        conn.execute("vacuum analyze public.session_requests")
        conn.execute("vacuum analyze public.sessions")


def ours(conn: psycopg.Connection) -> int:
    return conn.execute("select private.sweep_requests(now(), 1000)").fetchone()[0]["unattended"]


def naive(conn: psycopg.Connection) -> int:
    """The naive design: fetch the open requests, decide in the application, update each."""
    rows = conn.execute("select id, status, created_at, status_changed_at, now() from public.session_requests"
                        " where status in ('pending', 'unattended')").fetchall()
    changed = 0
    for rid, status, _created, changed_at, now in rows:
        if status == "pending" and (now - changed_at).total_seconds() >= 300:
            conn.execute("update public.session_requests set status = 'unattended' where id = %s", (rid,))
            changed += 1
    return changed


def measure(url: str, fn) -> tuple[list[float], int]:
    times = []
    handled = 0
    with psycopg.connect(url, prepare_threshold=None) as conn:
        for _ in range(RUNS):
            t0 = time.perf_counter()
            handled = fn(conn)
            times.append(time.perf_counter() - t0)
            conn.rollback()  # the same 1,000 are due again next run
    return times, handled


def main() -> None:
    with bench_database() as url:
        print_stamp(url)
        print(f"loading {TOTAL:,} requests ({DUE:,} due) …", flush=True)
        t0 = time.perf_counter()
        setup(url)
        print(f"loaded in {time.perf_counter() - t0:.0f} s")
        t_ours, n_ours = measure(url, ours)
        t_naive, n_naive = measure(url, naive)
        med = sorted(t_ours)[len(t_ours) // 2]
        med_n = sorted(t_naive)[len(t_naive) // 2]
        print(f"sweep (ours): {n_ours} made unattended per run, {ms(t_ours)}")
        print(f"naive (app-code scan): {n_naive} per run, {ms(t_naive)}; ratio naive/ours {med_n / med:.1f}x")


if __name__ == "__main__":
    main()
