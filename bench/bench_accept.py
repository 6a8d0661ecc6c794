"""Accept throughput and the 50-way accept race: our design against a naive one.

Run: .venv/bin/python -m bench.bench_accept   (embedded PostgreSQL; DATABASE_URL for another server)

- ours:  accept_request() — mechanic row lock, then one conditional UPDATE ... WHERE status IN (...).
- naive: read the request's status, then UPDATE it unconditionally.
"""

from __future__ import annotations

import threading
import time
import uuid

import psycopg

from bench.common import bench_database, ms, print_stamp
from shared.db import set_request_context

THREADS = 8
REQUESTS = 2000
RACE_MECHANICS = 50
RACE_ROUNDS = 30


def setup(url: str, mechanics: int, requests: int) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    """Approved mechanics and pending free requests, inserted set-based (through the signup trigger)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("""
            insert into auth.users (id, email, raw_app_meta_data, raw_user_meta_data, created_at)
            select gen_random_uuid(), 'm' || g || '@bench.test', '{}', '{"account_type": "mechanic"}', now()
            from generate_series(1, %s) g""", (mechanics,))
        conn.execute("update public.mechanics set status = 'approved'")
        mech = [r[0] for r in conn.execute("select id from public.mechanics order by id")]
        # one customer per request: an account has one free session (docs/trust.md)
        conn.execute("""
            insert into auth.users (id, email, created_at)
            select gen_random_uuid(), 'c' || g || '@bench.test', now() from generate_series(1, %s) g""", (requests,))
        conn.execute("""
            insert into public.intakes (customer_id, concern)
            select u.id, 'brakes squeal' from auth.users u where u.email like 'c%@bench.test'""")
        conn.execute("""
            select private.create_session_request(i.customer_id, 'free', i.id, null, null, false, 0, now())
            from public.intakes i""")
        reqs = [r[0] for r in conn.execute("select id from public.session_requests order by created_at, id")]
    return mech, reqs


def accept_ours(conn: psycopg.Connection, mechanic: uuid.UUID, request: uuid.UUID) -> bool:
    try:
        with conn.transaction():
            set_request_context(conn, "authenticated", {"sub": str(mechanic), "role": "authenticated"},
                                path="/rpc/accept_request")  # the pre-request hook runs as under PostgREST
            conn.execute("select public.accept_request(%s)", (request,))
        return True
    except psycopg.Error:
        return False


def accept_naive(conn: psycopg.Connection, mechanic: uuid.UUID, request: uuid.UUID) -> bool:
    """Read, then update unconditionally: the naive design (checks and rollbacks omitted)."""
    with conn.transaction():
        status = conn.execute("select status from public.session_requests where id = %s", (request,)).fetchone()[0]
        if status not in ("pending", "unattended"):
            return False
        conn.execute("update public.session_requests set status = 'accepted', mechanic_id = %s where id = %s",
                     (mechanic, request))
        return True


def throughput(url: str, fn, mechanics: list[uuid.UUID], requests: list[uuid.UUID]) -> tuple[float, int]:
    """Distinct mechanic per request; THREADS workers; returns (accepts/s, successes)."""
    conns = [psycopg.connect(url, autocommit=True, prepare_threshold=None) for _ in range(THREADS)]
    ok = [0] * THREADS

    def work(t: int) -> None:
        for i in range(t, len(requests), THREADS):
            ok[t] += fn(conns[t], mechanics[i], requests[i])

    started = time.perf_counter()
    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - started
    for c in conns:
        c.close()
    return sum(ok) / elapsed, sum(ok)


def race(url: str, fn, mechanics: list[uuid.UUID], requests: list[uuid.UUID]) -> tuple[list[float], list[int]]:
    """RACE_MECHANICS clients accept the same request at once; returns (per-call latencies, winners per round)."""
    conns = [psycopg.connect(url, autocommit=True, prepare_threshold=None) for _ in range(RACE_MECHANICS)]
    latencies: list[float] = []
    winners: list[int] = []
    for request in requests:
        barrier = threading.Barrier(RACE_MECHANICS)
        won = [False] * RACE_MECHANICS
        lat = [0.0] * RACE_MECHANICS

        def run(i: int, request: uuid.UUID = request, barrier: threading.Barrier = barrier,
                won: list[bool] = won, lat: list[float] = lat) -> None:
            barrier.wait()
            t0 = time.perf_counter()
            won[i] = fn(conns[i], mechanics[i], request)
            lat[i] = time.perf_counter() - t0

        threads = [threading.Thread(target=run, args=(i,)) for i in range(RACE_MECHANICS)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        latencies.extend(lat)
        winners.append(sum(won))
    for c in conns:
        c.close()
    return latencies, winners


def main() -> None:
    with bench_database() as url:
        print_stamp(url)
        print(f"{THREADS} client threads")
        mechanics, requests = setup(url, REQUESTS + RACE_MECHANICS, 2 * REQUESTS + 2 * RACE_ROUNDS)
        ours_rate, ours_ok = throughput(url, accept_ours, mechanics, requests[:REQUESTS])
        naive_rate, naive_ok = throughput(url, accept_naive, mechanics[REQUESTS // 2:] + mechanics[: REQUESTS // 2],
                                          requests[REQUESTS:2 * REQUESTS])
        print(f"accepts over {REQUESTS} distinct requests: ours {ours_rate:,.0f}/s ({ours_ok} ok), "
              f"naive {naive_rate:,.0f}/s ({naive_ok} ok), ratio ours/naive {ours_rate / naive_rate:.2f}")
        race_mech = mechanics[REQUESTS: REQUESTS + RACE_MECHANICS]
        base = 2 * REQUESTS
        lat, won = race(url, accept_ours, race_mech, requests[base: base + RACE_ROUNDS])
        print(f"50-way race, ours:  {RACE_ROUNDS} rounds, winners per round {sorted(set(won))}, {ms(lat)} per call")
        with psycopg.connect(url, autocommit=True) as conn:  # free the racers for the naive run
            conn.execute("update public.mechanic_commitments set status = 'done'")
        lat_n, won_n = race(url, accept_naive, race_mech, requests[base + RACE_ROUNDS: base + 2 * RACE_ROUNDS])
        doubled = sum(1 for w in won_n if w > 1)
        print(f"50-way race, naive: {RACE_ROUNDS} rounds, {doubled} rounds with 2+ winners "
              f"(max {max(won_n)}), {ms(lat_n)} per call")


if __name__ == "__main__":
    main()
