"""export_my_data for an account with 1,000 sessions (as a customer) and their 20,000 messages,
with an intake and a request per session; the mechanic of those sessions exports too.

Run: .venv/bin/python -m bench.bench_export   (embedded PostgreSQL; DATABASE_URL for another server)
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import psycopg

from bench.common import bench_database, ms, print_stamp
from shared.db import set_request_context

SESSIONS = 1_000
MESSAGES_PER_SESSION = 20
RUNS = 15


def setup(url: str) -> tuple[uuid.UUID, uuid.UUID]:
    """History bulk-loaded with triggers off: it is history (no events, no emails)."""
    customer, mechanic = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "insert into auth.users (id, email, raw_user_meta_data, created_at) values"
            " (%s, 'big@bench.test', '{\"full_name\": \"Big Account\"}', now()),"
            ' (%s, \'mech@bench.test\', \'{"full_name": "Bench Mechanic", "account_type": "mechanic"}\','
            " now())",
            (customer, mechanic),
        )
        conn.execute("set session_replication_role = replica")
        conn.execute(
            """
            insert into public.intakes (id, customer_id, concern, contact_name, contact_email, created_at)
            select gen_random_uuid(), %s, 'Grinding noise from the front brakes number ' || g,
                   'Big Account', 'big@bench.test', now() - make_interval(days => g)
            from generate_series(1, %s) g""",
            (customer, SESSIONS),
        )
        conn.execute(
            """
            insert into public.sessions (id, customer_id, mechanic_id, plan_code, session_type, duration_type,
                                         planned_minutes, price_cents, status, status_changed_at, intake_id,
                                         created_at, started_at, ended_at, mechanic_notes)
            select gen_random_uuid(), %s, %s, 'diagnostic', 'chat', 'standard', 30, 4900, 'completed',
                   i.created_at, i.id, i.created_at, i.created_at, i.created_at + interval '30 minutes',
                   'Checked the pads and rotors; replace the front pads soon.'
            from public.intakes i where i.customer_id = %s""",
            (customer, mechanic, customer),
        )
        conn.execute(
            """
            insert into public.session_requests (session_id, customer_id, mechanic_id, plan_code, session_type,
                                                 status, status_changed_at, created_at, concern)
            select s.id, s.customer_id, s.mechanic_id, 'diagnostic', 'chat', 'accepted', s.created_at,
                   s.created_at, 'Grinding noise from the front brakes'
            from public.sessions s where s.customer_id = %s""",
            (customer,),
        )
        conn.execute(
            """
            insert into public.chat_messages (session_id, sender_id, content, created_at)
            select s.id, case when g %% 2 = 0 then s.customer_id else s.mechanic_id end,
                   'A message of a realistic length about the car, the noise and what to check next, #' || g,
                   s.created_at + make_interval(secs => g)
            from public.sessions s cross join generate_series(1, %s) g where s.customer_id = %s""",
            (MESSAGES_PER_SESSION, customer),
        )
        conn.execute("set session_replication_role = origin")
        for table in ("sessions", "session_requests", "chat_messages", "intakes"):
            conn.execute(f"vacuum analyze public.{table}")
    return customer, mechanic


def call(conn: psycopg.Connection[Any], user: uuid.UUID) -> int:
    set_request_context(conn, "authenticated", {"sub": str(user), "role": "authenticated"}, path="/rpc/export_my_data")
    # the document as PostgREST sends it: text
    return len(conn.execute("select public.export_my_data()::text").fetchone()[0])  # type: ignore[index]


def measure(url: str, user: uuid.UUID) -> tuple[list[float], int]:
    times = []
    size = 0
    with psycopg.connect(url, prepare_threshold=None) as conn:
        for _ in range(RUNS):
            t0 = time.perf_counter()
            size = call(conn, user)
            times.append(time.perf_counter() - t0)
            conn.rollback()  # no rate-limit token kept between runs
    return times, size


def main() -> None:
    with bench_database() as url:
        print_stamp(url)
        customer, mechanic = setup(url)
        with psycopg.connect(url) as conn:
            set_request_context(conn, "authenticated", {"sub": str(customer), "role": "authenticated"})
            doc = conn.execute("select public.export_my_data()").fetchone()[0]  # type: ignore[index]
        assert len(doc["sessions_as_customer"]) == SESSIONS, len(doc["sessions_as_customer"])
        assert len(doc["messages"]) == SESSIONS * MESSAGES_PER_SESSION
        t_c, size_c = measure(url, customer)
        print(
            f"customer, {SESSIONS:,} sessions, {SESSIONS * MESSAGES_PER_SESSION:,} messages: "
            f"{size_c / 1e6:.1f} MB, {ms(t_c)}"
        )
        t_m, size_m = measure(url, mechanic)
        print(f"mechanic of those sessions: {size_m / 1e6:.1f} MB, {ms(t_m)}")


if __name__ == "__main__":
    main()
