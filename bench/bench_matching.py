"""Ranking 10,000 mechanics for one request, and the available-mechanics listing, against the
naive design (fetch every mechanic, score in application code).

Run: .venv/bin/python -m bench.bench_matching   (embedded PostgreSQL; DATABASE_URL for another server)
"""

from __future__ import annotations

import datetime as dt
import time
import uuid

import psycopg
from psycopg.rows import dict_row

from bench.common import bench_database, ms, print_stamp
from shared.db import pre_request_function, set_request_context

MECHANICS = 10_000
CALLS = 60
WEIGHTS = {"online_now": 50, "seen_30m": 30, "seen_1h": 20, "seen_today": 10, "keyword": 15,
           "brand_specialist": 30, "experience_10": 20, "experience_5": 10, "same_fsa": 10, "same_city": 5,
           "rating_5": 20, "rating_45": 15, "rating_40": 10, "rating_35": 5}


def setup(url: str) -> tuple[uuid.UUID, uuid.UUID]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("""
            insert into auth.users (id, email, raw_app_meta_data, raw_user_meta_data, created_at)
            select gen_random_uuid(), 'm' || g || '@bench.test', '{}', '{"account_type": "mechanic"}', now()
            from generate_series(1, %s) g""", (MECHANICS,))
        conn.execute("""
            update public.mechanics set status = 'approved',
              is_available = random() < 0.3,
              last_seen_at = now() - (random() * interval '3 days'),
              years_experience = (random() * 25)::int,
              completed_sessions = (random() * 300)::int, customers_served = (random() * 150)::int,
              is_brand_specialist = random() < 0.2,
              brand_specializations = (case (random() * 3)::int when 0 then array['Honda'] when 1
                                       then array['Toyota', 'Lexus'] when 2 then array['BMW'] else array['Ford'] end),
              service_keywords = (case (random() * 3)::int when 0 then array['brakes', 'noise']
                                  when 1 then array['battery', 'electrical'] when 2
                                  then array['check engine', 'engine', 'obd'] else array['suspension', 'steering'] end),
              city = (array['Toronto','Montreal','Vancouver','Calgary','Ottawa'])[1 + (random() * 4)::int],
              postal_code = (array['M4C 1B5','H2X 1Y4','V6B 1A1','T2P 2M5','K1P 5J2'])[1 + (random() * 4)::int]""")
        # reviews' aggregates (the trigger derives rating_avg and the Bayesian rating_score)
        conn.execute("update public.mechanics m set rating_count = x.c,"
                     " rating_sum = round(x.c * (3 + random() * 2))::int"
                     " from (select id, (random() * 200)::int as c from public.mechanics) x where x.id = m.id")
        customer = uuid.uuid4()
        conn.execute("insert into auth.users (id, email, created_at) values (%s, 'c@bench.test', now())", (customer,))
        conn.execute("update public.profiles set city = 'Toronto', postal_code = 'M4C 2A1' where id = %s", (customer,))
        intake = conn.execute("""insert into public.intakes (customer_id, concern, vehicle_make)
            values (%s, 'Grinding noise from the brakes and the check engine light is on', 'Honda')
            returning id""", (customer,)).fetchone()[0]
        request = conn.execute("select private.create_session_request(%s, 'free', %s, null, null, false, 0, now())",
                               (customer, intake)).fetchone()[0]["request_id"]
        conn.execute("analyze")
    return customer, uuid.UUID(request)


def naive_rank(conn: psycopg.Connection, request: uuid.UUID, now: dt.datetime) -> list[tuple[int, str]]:
    """The naive design: load every approved mechanic and score it in application code."""
    req = conn.execute("select r.concern, r.vehicle_make, p.city, p.postal_code from public.session_requests r"
                       " join public.profiles p on p.id = r.customer_id where r.id = %s", (request,)).fetchone()
    words = {w.strip(",.").lower() for w in req["concern"].split()}
    scored = []
    for m in conn.execute("select * from public.mechanics where status = 'approved' and can_accept_sessions"):
        s = 0
        seen = m["last_seen_at"]
        if m["is_available"] and seen and seen >= now - dt.timedelta(minutes=2):
            s += WEIGHTS["online_now"]
        elif seen and seen >= now - dt.timedelta(minutes=30):
            s += WEIGHTS["seen_30m"]
        elif seen and seen >= now - dt.timedelta(hours=1):
            s += WEIGHTS["seen_1h"]
        elif seen and seen.date() == now.date():
            s += WEIGHTS["seen_today"]
        s += WEIGHTS["keyword"] * sum(1 for k in m["service_keywords"] if k in words)
        if m["is_brand_specialist"] and req["vehicle_make"] in m["brand_specializations"]:
            s += WEIGHTS["brand_specialist"]
        s += WEIGHTS["experience_10"] if m["years_experience"] >= 10 else (
            WEIGHTS["experience_5"] if m["years_experience"] >= 5 else 0)
        if m["postal_code"] and req["postal_code"] and m["postal_code"][:3] == req["postal_code"][:3]:
            s += WEIGHTS["same_fsa"]
        elif m["city"] == req["city"]:
            s += WEIGHTS["same_city"]
        r = m["rating_score"]
        s += 20 if r >= 4.75 else 15 if r >= 4.5 else 10 if r >= 4 else 5 if r >= 3.5 else 0
        scored.append((s, str(m["id"])))
    scored.sort(reverse=True)
    return scored[:10]


def timeit(fn, calls: int = CALLS) -> list[float]:
    fn()  # warm
    out = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    with bench_database() as url:
        print_stamp(url)
        print(f"{MECHANICS:,} approved mechanics")
        customer, request = setup(url)
        with psycopg.connect(url, row_factory=dict_row, prepare_threshold=None) as conn:
            conn.autocommit = True
            now = dt.datetime.now(dt.UTC)
            ours = timeit(lambda: conn.execute("select * from private.rank_mechanics(%s, 10)", (request,)).fetchall())
            naive = timeit(lambda: naive_rank(conn, request, now), calls=15)
            print(f"rank 10 of {MECHANICS:,} for one request: ours {ms(ours)}; naive (app-code scoring) {ms(naive)};"
                  f" ratio naive/ours {sorted(naive)[len(naive) // 2] / sorted(ours)[len(ours) // 2]:.1f}x")
            claims = {"sub": str(customer), "role": "authenticated"}
            pre_request = pre_request_function(conn) or False  # read once, as PostgREST reads its configuration

            def listing(**kw: object) -> None:
                with conn.transaction():
                    set_request_context(conn, "authenticated", claims, path="/rpc/available_mechanics",
                                        pre_request=pre_request)
                    args = ", ".join(f"{k} => %({k})s" for k in kw)
                    conn.execute(f"select * from public.available_mechanics({args})", kw).fetchall()

            plain = timeit(lambda: listing())
            city = timeit(lambda: listing(p_city="Toronto"))
            spec = timeit(lambda: listing(p_specialist=True, p_brand="Honda"))
            print(f"available_mechanics over {MECHANICS:,}: no filter {ms(plain)}; city {ms(city)};"
                  f" specialist+brand {ms(spec)}")


if __name__ == "__main__":
    main()
