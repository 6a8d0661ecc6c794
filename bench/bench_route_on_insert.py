"""The cost of routing a request in the transaction that files it: `request_session` with the
`_500_route` trigger enabled and disabled in alternation.

Run: .venv/bin/python -m bench.bench_route_on_insert [MECHANICS [CALLS]]   (embedded PostgreSQL;
DATABASE_URL for another server)
"""

from __future__ import annotations

import statistics
import sys
import time
import uuid

import psycopg

from bench.common import accept_waivers, bench_database, server_version
from shared.db import pre_request_function, set_request_context


def main() -> None:
    mechanics = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    calls = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    with bench_database() as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("""
                insert into auth.users (id, email, raw_app_meta_data, raw_user_meta_data, created_at)
                select gen_random_uuid(), 'm' || g || '@bench.test', '{}', '{"account_type": "mechanic"}', now()
                from generate_series(1, %s) g""", (mechanics,))
            conn.execute("""
                update public.mechanics set status = 'approved', is_available = random() < 0.3,
                  last_seen_at = now() - (random() * interval '3 days'), years_experience = (random() * 25)::int,
                  completed_sessions = (random() * 300)::int,
                  customers_served = (random() * 150)::int,
                  service_keywords = array['brakes', 'noise']""")
            conn.execute("update public.mechanics set rating_count = 100,"
                         " rating_sum = round(100 * (3 + random() * 2))::int")
            customers = []
            for i in range(2 * calls):
                customer = uuid.uuid4()
                conn.execute("insert into auth.users (id, email, created_at) values (%s, %s, now())",
                             (customer, f"c{i}@bench.test"))
                intake = conn.execute("""insert into public.intakes (customer_id, concern, vehicle_make)
                    values (%s, 'Grinding noise from the brakes', 'Honda') returning id""", (customer,)).fetchone()
                assert intake is not None
                customers.append((customer, intake[0]))
            accept_waivers(conn, [c for c, _ in customers])
            conn.execute("analyze")
            pre_request = pre_request_function(conn) or False  # read once, as PostgREST reads its configuration
        times: dict[bool, list[float]] = {True: [], False: []}
        with psycopg.connect(url) as conn:
            for i, (customer, intake) in enumerate(customers):
                routing = i % 2 == 0
                with conn.transaction():
                    conn.execute("alter table public.session_requests "
                                 f"{'enable' if routing else 'disable'} trigger _500_route")
                started = time.perf_counter()
                with conn.transaction():
                    set_request_context(conn, "authenticated", {"sub": str(customer), "role": "authenticated"},
                                        path="/rpc/request_session", pre_request=pre_request)
                    conn.execute("select public.request_session(p_plan_code => 'free', p_intake_id => %s)",
                                 (intake,))
                times[routing].append((time.perf_counter() - started) * 1000)
        version = server_version(url)  # while the server still runs

    def summary(values: list[float]) -> str:
        values = sorted(values)
        return f"median {statistics.median(values):.1f} ms, p95 {values[int(len(values) * 0.95)]:.1f} ms"

    print(f"PostgreSQL {version}, {mechanics} approved mechanics, {calls} calls each")
    print(f"request_session with routing:    {summary(times[True])}")
    print(f"request_session without routing: {summary(times[False])}")


if __name__ == "__main__":
    main()
