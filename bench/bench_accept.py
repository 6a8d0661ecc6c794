"""Accept throughput and the 50-way accept race: our design against a naive one.

Run: .venv/bin/python -m bench.bench_accept   (embedded PostgreSQL; DATABASE_URL for another server)

- ours:  accept_request() — mechanic row lock, then one conditional UPDATE ... WHERE status IN (...).
- naive: read the request's status, then UPDATE it unconditionally.
- floor: only the three writes no accept can do without (take the request, move its session to
  waiting, insert the mechanic's commitment) with every trigger and foreign-key check off, once
  through PostgREST's request steps (the request settings, then the pre-request hook that takes
  the rate-limit token) and once without them: what the ratio could be if the accept did nothing
  else; and once with the request settings but without the pre-request hook, which shows what the
  rate-limit token costs.

Each call runs the request steps PostgREST runs: one statement of settings, then the configured
pre-request function, read from the catalog once per run (PostgREST reads its configuration at
start-up and on reload, not per request).
"""

from __future__ import annotations

import threading
import time
import uuid
from functools import partial

import psycopg

from bench.common import bench_database, ms, print_stamp
from shared.db import pre_request_function, set_request_context

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


# The floor: the accept's three indispensable writes, triggers and foreign-key checks off
# (session_replication_role = replica; the function's owner is the bench's superuser).
FLOOR_FUNCTION = """
create schema bench_floor;
create function bench_floor.accept(p_request uuid, p_mechanic uuid) returns void
language plpgsql security definer set search_path = '' as $$
declare
  v_session uuid;
begin
  perform set_config('session_replication_role', 'replica', true);
  perform 1 from public.mechanics where id = p_mechanic for no key update;
  update public.session_requests r
  set status = 'accepted', mechanic_id = p_mechanic, accepted_at = now(), status_changed_at = now()
  where r.id = p_request and r.status in ('pending', 'unattended')
  returning r.session_id into v_session;
  if not found then
    raise exception 'request not available';
  end if;
  update public.sessions set status = 'waiting', mechanic_id = p_mechanic, status_changed_at = now()
  where id = v_session;
  insert into public.mechanic_commitments (mechanic_id, kind, status, during, session_id, request_id)
  values (p_mechanic, 'on_demand', 'in_progress', tstzrange(now(), now() + interval '30 minutes'), v_session,
          p_request);
end
$$;
grant usage on schema bench_floor to authenticated;
grant execute on function bench_floor.accept(uuid, uuid) to authenticated;
"""


def as_mechanic(conn: psycopg.Connection, mechanic: uuid.UUID, pre_request: str | bool) -> None:
    """PostgREST's request steps for `POST /rpc/accept_request` by this mechanic (the pre-request hook
    takes the rate-limit token)."""
    set_request_context(conn, "authenticated", {"sub": str(mechanic), "role": "authenticated"},
                        path="/rpc/accept_request", pre_request=pre_request)


def accept_ours(conn: psycopg.Connection, mechanic: uuid.UUID, request: uuid.UUID, *, pre_request: str | bool) -> bool:
    try:
        with conn.transaction():
            as_mechanic(conn, mechanic, pre_request)
            conn.execute("select public.accept_request(%s)", (request,))
        return True
    except psycopg.Error:
        return False


def accept_floor(conn: psycopg.Connection, mechanic: uuid.UUID, request: uuid.UUID, *,
                 pre_request: str | bool | None) -> bool:
    """The floor; pre_request False: the request settings only, None: without PostgREST's request steps."""
    with conn.transaction():
        if pre_request is not None:
            as_mechanic(conn, mechanic, pre_request)
        conn.execute("select bench_floor.accept(%s, %s)", (request, mechanic))
    return True


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
        mechanics, requests = setup(url, REQUESTS + RACE_MECHANICS, 5 * REQUESTS + 2 * RACE_ROUNDS)
        with psycopg.connect(url, autocommit=True) as conn:
            pre_request = pre_request_function(conn) or False
            conn.execute(FLOOR_FUNCTION)
        ours = partial(accept_ours, pre_request=pre_request)
        swapped = mechanics[REQUESTS // 2: REQUESTS] + mechanics[: REQUESTS // 2]
        ours_rate, ours_ok = throughput(url, ours, mechanics, requests[:REQUESTS])
        naive_rate, naive_ok = throughput(url, accept_naive, swapped, requests[REQUESTS:2 * REQUESTS])
        print(f"accepts over {REQUESTS} distinct requests: ours {ours_rate:,.0f}/s ({ours_ok} ok), "
              f"naive {naive_rate:,.0f}/s ({naive_ok} ok), ratio ours/naive {ours_rate / naive_rate:.2f}")
        floors = []
        for label, steps, batch in (("with PostgREST's request steps", pre_request, 2),
                                    ("with the settings but no pre-request hook", False, 3),
                                    ("without either", None, 4)):
            with psycopg.connect(url, autocommit=True) as conn:  # free the mechanics for the next pass
                conn.execute("update public.mechanic_commitments set status = 'done'")
            rate, ok = throughput(url, partial(accept_floor, pre_request=steps), swapped if batch % 2 else mechanics,
                                  requests[batch * REQUESTS:(batch + 1) * REQUESTS])
            floors.append(f"{label} {rate:,.0f}/s ({ok} ok), ratio {rate / naive_rate:.2f}")
        print("floor (the three writes alone, triggers off): " + "; ".join(floors))
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("update public.mechanic_commitments set status = 'done'")
        race_mech = mechanics[REQUESTS: REQUESTS + RACE_MECHANICS]
        base = 5 * REQUESTS
        lat, won = race(url, ours, race_mech, requests[base: base + RACE_ROUNDS])
        print(f"50-way race, ours:  {RACE_ROUNDS} rounds, winners per round {sorted(set(won))}, {ms(lat)} per call")
        with psycopg.connect(url, autocommit=True) as conn:  # free the racers for the naive run
            conn.execute("update public.mechanic_commitments set status = 'done'")
        lat_n, won_n = race(url, accept_naive, race_mech, requests[base + RACE_ROUNDS: base + 2 * RACE_ROUNDS])
        doubled = sum(1 for w in won_n if w > 1)
        print(f"50-way race, naive: {RACE_ROUNDS} rounds, {doubled} rounds with 2+ winners "
              f"(max {max(won_n)}), {ms(lat_n)} per call")


if __name__ == "__main__":
    main()
