"""Scheduling: slots for a mechanic-month, who-is-free-at-T over 1,000 mechanics, and 32 clients
racing for one mechanic's overlapping slots — each beside a naive design in the same run.

Run: .venv/bin/python -m bench.bench_scheduling   (embedded PostgreSQL; DATABASE_URL for another server)

- ours:  available_slots() / mechanics_free_at() — one set-based SQL computation each (multiranges);
         hold_slot() — mechanic row lock, explicit check, exclusion constraint behind it.
- naive: an application-side availability service — candidate slots from the blocks, then isAvailable() per
         slot with one query per check (type, block, time off, bookings); per mechanic for a search;
         check-then-insert for holds (no lock, no constraint).

The race runs each client in its own process with its own connection (see race()).
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import statistics
import time
import uuid
from typing import Any

import psycopg

from bench.common import accept_waivers, bench_database, ms, print_stamp
from shared.db import pre_request_function, set_request_context

MECHANICS = 1000
ZONES = ["America/New_York", "Europe/Berlin", "Asia/Kolkata", "America/Los_Angeles", "Asia/Kathmandu"]
CLIENTS = 32
RACE_ROUNDS = 30


def claims(user: uuid.UUID) -> dict[str, Any]:
    return {"sub": str(user), "role": "authenticated"}


# PostgREST's pre-request function, read from the catalog once per run as PostgREST reads its
# configuration at start-up (main sets it before any client starts; forked clients inherit it).
PRE_REQUEST: str | bool = True


def as_user(conn: psycopg.Connection, user: uuid.UUID, function: str) -> None:
    """PostgREST's request steps for `POST /rpc/<function>` by this user: the settings statement, then
    the pre-request hook (which takes the rate-limit token of a write RPC)."""
    set_request_context(conn, "authenticated", claims(user), path=f"/rpc/{function}", pre_request=PRE_REQUEST)


class _Recorder:
    """Stands in for a connection to read the statement `set_request_context` runs."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    def execute(self, query: str, params: Any = None) -> None:
        self.sent.append((query, params))


def request_context_statement(role: str, claims: dict[str, Any], path: str) -> tuple[str, tuple[Any, ...]]:
    """The text and parameters of `shared.db.set_request_context`'s settings statement, to send in the
    same message as the call (the "request" style below) while setting exactly what every request sets."""
    recorder = _Recorder()
    set_request_context(recorder, role, claims, path=path, pre_request=False)  # type: ignore[arg-type]
    ((query, params),) = recorder.sent
    return query, tuple(params)


def setup(url: str) -> tuple[uuid.UUID, uuid.UUID, list[uuid.UUID]]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("""
            insert into auth.users (id, email, raw_app_meta_data, raw_user_meta_data, created_at)
            select gen_random_uuid(), 'm' || g || '@bench.test', '{}', '{"account_type": "mechanic"}', now()
            from generate_series(1, %s) g""", (MECHANICS,))
        conn.execute("update public.mechanics set status = 'approved',"
                     " timezone = (%s::text[])[1 + abs(hashtext(id::text)) %% 5]", (ZONES,))
        conn.execute("""
            insert into public.mechanic_weekly_availability (mechanic_id, day_of_week, start_time, end_time,
                                                             price_multiplier)
            select m.id, d, time '08:00', time '12:00', 1.0 from public.mechanics m, generate_series(1, 6) d
            union all
            select m.id, d, time '13:00', time '18:00', 1.25 from public.mechanics m, generate_series(1, 5) d""")
        conn.execute("insert into public.booking_rules (mechanic_id, max_sessions_per_day)"
                     " select id, 48 from public.mechanics")
        # time off and overrides for some mechanics
        conn.execute("""insert into public.mechanic_time_off (mechanic_id, during)
                        select id, tstzrange(now() + interval '3 days', now() + interval '5 days')
                        from public.mechanics where abs(hashtext(id::text)) % 10 = 0""")
        conn.execute("""insert into public.availability_overrides (mechanic_id, on_date, is_available)
                        select id, (now() + interval '7 days')::date, false
                        from public.mechanics where abs(hashtext(id::text)) % 7 = 0""")
        target = conn.execute("select id from public.mechanics where timezone = 'America/New_York'"
                              " limit 1").fetchone()[0]
        # 200+ bookings in the target's month: every weekday at 08:00 local, 09:00, 10:00, 14:00, 15:00, 16:00
        conn.execute("""
            insert into public.mechanic_commitments (mechanic_id, kind, status, during, buffer_minutes)
            select %s, 'scheduled', 'confirmed',
                   tstzrange(t, t + interval '45 minutes'), 15
            from generate_series(current_date + 1, current_date + 40, interval '1 day') d,
                 unnest(array[time '08:00', time '09:00', time '10:00', time '14:00', time '15:00', time '16:00',
                              time '17:00']) h,
                 lateral (select (d::date + h) at time zone 'America/New_York' as t) x
            where extract(dow from d) between 1 and 5""", (target,))
        # others: a few bookings each over the next days
        conn.execute("""
            insert into public.mechanic_commitments (mechanic_id, kind, status, during, buffer_minutes)
            select m.id, 'scheduled', 'confirmed', tstzrange(t, t + interval '45 minutes'), 15
            from public.mechanics m, generate_series(1, 10) k,
                 lateral (select date_trunc('hour', now())
                                 + make_interval(hours => 24 * k + abs(hashtext(m.id::text || k)) %% 8) as t) x
            where m.id <> %s""", (target,))
        customer = uuid.uuid4()
        conn.execute("insert into auth.users (id, email, created_at) values (%s, 'c@bench.test', now())", (customer,))
        conn.execute("analyze")
        n = conn.execute("select count(*) from public.mechanic_commitments where mechanic_id = %s",
                         (target,)).fetchone()[0]
        print(f"setup: {MECHANICS} mechanics in {len(ZONES)} zones; target mechanic has {n} bookings in ~40 days")
        customers = []
        for i in range(CLIENTS):
            c = uuid.uuid4()
            conn.execute("insert into auth.users (id, email, created_at) values (%s, %s, now())",
                         (c, f"r{i}@bench.test"))
            customers.append(c)
        accept_waivers(conn, [customer, *customers])
    return target, customer, customers


# ---------------------------------------------------------------------------------------------
# slots for one mechanic-month
# ---------------------------------------------------------------------------------------------
def slots_ours(conn: psycopg.Connection, customer: uuid.UUID, mechanic: uuid.UUID) -> int:
    with conn.transaction():
        as_user(conn, customer, "available_slots")
        return conn.execute("select count(*) from public.available_slots(%s, now(), now() + interval '30 days',"
                            " 'video15')", (mechanic,)).fetchone()[0]


def is_available_naive(conn: psycopg.Connection, mechanic: uuid.UUID, start: dt.datetime, end: dt.datetime) -> bool:
    """The naive isAvailable(): one query per check."""
    _type, tz = conn.execute("select mechanic_type, timezone from public.mechanics where id = %s",
                             (mechanic,)).fetchone()
    ok = conn.execute("""select exists (select 1 from public.mechanic_weekly_availability b
                         where b.mechanic_id = %s
                           and b.day_of_week = extract(dow from (%s::timestamptz at time zone %s))
                           and b.start_time <= (%s::timestamptz at time zone %s)::time
                           and b.end_time >= (%s::timestamptz at time zone %s)::time)""",
                      (mechanic, start, tz, start, tz, end, tz)).fetchone()[0]
    if not ok:
        return False
    if conn.execute("select exists (select 1 from public.mechanic_time_off where mechanic_id = %s"
                    " and during && tstzrange(%s, %s))", (mechanic, start, end)).fetchone()[0]:
        return False
    if conn.execute("select exists (select 1 from public.mechanic_commitments where mechanic_id = %s"
                    " and status in ('held', 'confirmed', 'in_progress') and during && tstzrange(%s, %s))",
                    (mechanic, start - dt.timedelta(minutes=15), end + dt.timedelta(minutes=15))).fetchone()[0]:
        return False
    return start >= dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)


def slots_naive(conn: psycopg.Connection, mechanic: uuid.UUID, days: int = 30) -> int:
    """Candidate slots generated from every block of every day, then isAvailable() per slot."""
    tz = conn.execute("select timezone from public.mechanics where id = %s", (mechanic,)).fetchone()[0]
    blocks = conn.execute("select day_of_week, start_time, end_time from public.mechanic_weekly_availability"
                          " where mechanic_id = %s", (mechanic,)).fetchall()
    import zoneinfo

    zone = zoneinfo.ZoneInfo(tz)
    today = dt.datetime.now(zone).date()
    found = 0
    for k in range(days):
        day = today + dt.timedelta(days=k)
        dow = (day.weekday() + 1) % 7
        for b_dow, b_start, b_end in blocks:
            if b_dow != dow:
                continue
            t = dt.datetime.combine(day, b_start, zone)
            stop = dt.datetime.combine(day, b_end, zone)
            while t + dt.timedelta(minutes=45) <= stop:
                if is_available_naive(conn, mechanic, t, t + dt.timedelta(minutes=45)):
                    found += 1
                t += dt.timedelta(minutes=30)
    return found


# ---------------------------------------------------------------------------------------------
# who is free at T, 1,000 mechanics
# ---------------------------------------------------------------------------------------------
def free_ours(conn: psycopg.Connection, customer: uuid.UUID, at: dt.datetime) -> int:
    with conn.transaction():
        as_user(conn, customer, "mechanics_free_at")
        return conn.execute("select count(*) from public.mechanics_free_at(%s, 'video15', null, null, 100)",
                            (at,)).fetchone()[0]


def free_naive(conn: psycopg.Connection, at: dt.datetime) -> int:
    ids = [r[0] for r in conn.execute("select id from public.mechanics where status = 'approved'")]
    return sum(is_available_naive(conn, m, at, at + dt.timedelta(minutes=45)) for m in ids)


# ---------------------------------------------------------------------------------------------
# 32 clients racing for one mechanic's overlapping slots
# ---------------------------------------------------------------------------------------------
# Each client is its own process with its own connection, as real clients are (each request is a
# PostgREST transaction on a pooled connection of its own). 32 threads in one Python process
# measured the interpreter lock instead: the clients' statements left one at a time, and as the
# winner's COMMIT was one of them, the mechanic's lock stayed held while the winner's thread
# waited for its turn (30-33 ms median, docs/scheduling.md).
#
# Styles of request:
# - "request": what PostgREST runs for POST /rpc/hold_slot — role and claims as local settings
#   (request_context_statement: the statement of shared.db.set_request_context), the pre-request
#   hook (it takes the customer's rate-limit token), then the call, in one transaction — sent as
#   one message, so the server commits right after the call, as it does behind a PostgREST that is
#   not short of CPU. The target is read on this one.
# - "statements": the same five statements (begin, settings, hook, call, commit) as round trips
#   from the client: the client process, sharing the 2 cores with 32 others and the server, is on
#   the critical path between the call and the commit while the winner holds the lock.
# - "naive": check-then-insert (no lock, no constraint).
# Round 0 warms each connection (PL/pgSQL compiles a function once per backend, as on a pooled
# PostgREST connection) and is not counted. All processes start a round on one barrier; between
# rounds the coordinator counts overlaps and releases the holds.
RACE_STYLES = ("request", "statements", "naive")


def _attempt(conn: psycopg.Connection, style: str, customer: uuid.UUID, mechanic: uuid.UUID,
             start: dt.datetime) -> tuple[float, str]:
    t0 = time.perf_counter()
    outcome = "ok"
    try:
        if style == "request":
            # client-side binding: several statements in one simple-query message, which the
            # server runs as one implicit transaction (autocommit connection, no BEGIN sent)
            cur = psycopg.ClientCursor(conn)
            settings, params = request_context_statement("authenticated", claims(customer), "/rpc/hold_slot")
            hook = f"; select {PRE_REQUEST}()" if isinstance(PRE_REQUEST, str) else ""
            cur.execute(settings + hook + "; select public.hold_slot(%s, %s, 'video15')", (*params, mechanic, start))
            while cur.nextset():  # the settings' and the hook's results, then the call's
                pass
            if "hold_id" not in cur.fetchone()[0]:
                outcome = "error no hold_id"
        else:
            with conn.transaction():
                if style == "statements":
                    as_user(conn, customer, "hold_slot")
                    conn.execute("select public.hold_slot(%s, %s, 'video15')", (mechanic, start))
                else:
                    busy = conn.execute("select exists (select 1 from public.bench_naive_holds where mechanic_id = %s"
                                        " and during && tstzrange(%s, %s + interval '60 minutes'))",
                                        (mechanic, start, start)).fetchone()[0]
                    if busy:
                        outcome = "taken"
                    else:
                        conn.execute("insert into public.bench_naive_holds values (%s,"
                                     " tstzrange(%s, %s + interval '60 minutes'))", (mechanic, start, start))
    except psycopg.Error as exc:
        outcome = "taken" if exc.sqlstate == "AD050" else f"error {exc.sqlstate}"
    return time.perf_counter() - t0, outcome


def _client(url: str, style: str, customer: uuid.UUID, mechanic: uuid.UUID, start: dt.datetime, rounds: int,
            barrier, out) -> None:
    results = []
    with psycopg.connect(url, autocommit=True) as conn:
        for _r in range(rounds):
            barrier.wait()  # go
            results.append(_attempt(conn, style, customer, mechanic, start))
            barrier.wait()  # done; the coordinator checks and resets
            barrier.wait()  # reset done
    out.put(results)


def race(url: str, mechanic: uuid.UUID, customers: list[uuid.UUID], style: str) -> tuple[list[float], int, int, int]:
    """Returns (latencies of the counted rounds, overlapping pairs over all rounds, errors other
    than slot_taken, holds won)."""
    ctx = multiprocessing.get_context("fork")
    rounds = RACE_ROUNDS + 1
    barrier = ctx.Barrier(len(customers) + 1, timeout=120)
    out = ctx.Queue()
    overlaps = 0
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("create table if not exists public.bench_naive_holds (mechanic_id uuid, during tstzrange)")
        admin.execute("alter table public.bench_naive_holds enable row level security")
        admin.execute("truncate public.bench_naive_holds")
        tz = admin.execute("select timezone from public.mechanics where id = %s", (mechanic,)).fetchone()[0]
        day = admin.execute("select (now() at time zone %s)::date + 3", (tz,)).fetchone()[0]
        while day.weekday() != 5:  # a Saturday: open 08:00-12:00, no bookings (holds are released each round)
            day += dt.timedelta(days=1)
        starts = [admin.execute("select ((%s::date + time '08:00') at time zone %s) + make_interval(mins => %s)",
                                (day, tz, 30 * (i % 6))).fetchone()[0] for i in range(len(customers))]
        procs = [ctx.Process(target=_client, args=(url, style, customers[i], mechanic, starts[i], rounds, barrier, out))
                 for i in range(len(customers))]
        for p in procs:
            p.start()
        for _r in range(rounds):
            barrier.wait()
            barrier.wait()
            if style == "naive":
                overlaps += admin.execute("""
                    select count(*) from public.bench_naive_holds a join public.bench_naive_holds b
                      on a.ctid < b.ctid and a.during && b.during""").fetchone()[0]
                admin.execute("truncate public.bench_naive_holds")
            else:
                overlaps += active_overlaps(admin)
                admin.execute("update public.mechanic_commitments set status = 'released'"
                              " where mechanic_id = %s and status = 'held'", (mechanic,))
                # each round's clients start with full buckets: 31 holds in half a minute is over the
                # `request` class's limit, and the race measures the lock, not the limit
                admin.execute("delete from private.rate_buckets")
            barrier.wait()
        per_client = [out.get(timeout=120) for _ in procs]
        for p in procs:
            p.join()
    counted = [r for results in per_client for r in results[1:]]
    latencies = [lat for lat, _ in counted]
    errors = sum(1 for _, o in counted if o.startswith("error"))
    wins = sum(1 for _, o in counted if o == "ok")
    return latencies, overlaps, errors, wins


def active_overlaps(conn: psycopg.Connection) -> int:
    return conn.execute("""
        select count(*) from public.mechanic_commitments a join public.mechanic_commitments b
          on a.mechanic_id = b.mechanic_id and a.id < b.id and a.during && b.during
        where a.status in ('held', 'confirmed', 'in_progress') and b.status in ('held', 'confirmed', 'in_progress')
        """).fetchone()[0]


def timed(fn, reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    with bench_database() as url:
        print_stamp(url)
        target, customer, customers = setup(url)
        global PRE_REQUEST
        with psycopg.connect(url, autocommit=True) as conn:
            PRE_REQUEST = pre_request_function(conn) or False
            n = slots_ours(conn, customer, target)
            ours = timed(lambda: slots_ours(conn, customer, target), 300)
            n_naive = slots_naive(conn, target)
            naive = timed(lambda: slots_naive(conn, target), 3)
            print(f"available_slots, one mechanic, 30 days ({n} slots; naive found {n_naive}):"
                  f" ours {ms(ours)}; naive {ms(naive)};"
                  f" ratio {statistics.median(naive) / statistics.median(ours):.0f}x")

            day = conn.execute("select date_trunc('day', now()) + interval '2 days'").fetchone()[0]
            times = [day + dt.timedelta(minutes=30 * k) for k in range(48)]
            counts = [free_ours(conn, customer, t) for t in times]
            ours = timed(lambda: [free_ours(conn, customer, t) for t in times[12:36]], 10)
            ours = [x / 24 for x in ours]
            one = times[28]
            naive = timed(lambda: free_naive(conn, one), 2)
            print(f"mechanics_free_at over {MECHANICS} mechanics (48 half-hours of one day, up to {max(counts)} free):"
                  f" ours {ms(ours)} per call; naive per-mechanic isAvailable {ms(naive)} per call;"
                  f" ratio {statistics.median(naive) / statistics.median(ours):.0f}x")

        results = {style: race(url, target, customers, style) for style in RACE_STYLES}
        for style in RACE_STYLES:
            lat, overlaps, errors, wins = results[style]
            label = {"request": "ours, one PostgREST-shaped request per client",
                     "statements": "ours, the same as five round trips",
                     "naive": "naive check-then-insert"}[style]
            print(f"race, {CLIENTS} client processes x {RACE_ROUNDS} rounds, {label}: {ms(lat)}, {wins} holds won,"
                  f" {overlaps} overlapping pairs, {errors} errors other than slot_taken")

if __name__ == "__main__":
    main()
