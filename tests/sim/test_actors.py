"""The simulated city's seed, its PostgREST-shaped client and a short run of real actors."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import datetime as dt
import io
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from shared.dev.migrate import recreate_database
from shared.dev.sim import city
from shared.dev.sim.actors import worker_main
from shared.dev.sim.client import Client, User
from shared.dev.sim.metrics import CallLog, read_calls
from shared.dev.sim.spec import RunSpec, WorkerSpec
from shared.errors import BY_NAME


def _run(mechanics: int, customers: int, seed: int = 7) -> RunSpec:
    return RunSpec(mechanics=mechanics, customers=customers, rate=1.0, duration_s=3600, speed=60, seed=seed)


def _with_db(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def test_seed_makes_the_city_deterministically(fresh_url: str, server_url: str, template_name: str) -> None:
    # how long seeding takes is measured by running the simulation (docs/simulation.md), not asserted here
    made = city.seed(fresh_url, _run(1000, 10_000))
    assert len(made.mechanic_ids) == 1000 and len(made.customer_ids) == 10_000
    with psycopg.connect(fresh_url) as conn:
        approved = conn.execute("select count(*) from public.mechanics where status = 'approved' and id = any(%s)",
                                (made.mechanic_ids,)).fetchone()
        assert approved == (1000,)
        waivers = conn.execute("select count(*) from unnest(%s::uuid[]) c(id) where private.has_current_waiver(c.id)",
                               (made.customer_ids,)).fetchone()
        assert waivers == (10_000,)
        vehicles = conn.execute("select count(distinct owner_id) from public.vehicles where owner_id = any(%s)",
                                (made.customer_ids,)).fetchone()
        assert vehicles == (10_000,)
        hours = conn.execute("select count(distinct mechanic_id) from public.mechanic_weekly_availability").fetchone()
        assert hours == (1000,)
        emails = conn.execute("select count(*) from auth.users where email like %s",
                              (f"%@{city.EMAIL_DOMAIN}",)).fetchone()
        assert emails == (11_001,)
        admin = conn.execute("select count(*) from private.admins where user_id = %s", (made.admin_id,)).fetchone()
        assert admin == (1,)
        # the bulk load did not bypass the schema's derived columns
        bits = conn.execute("select count(*) from public.mechanics where keyword_bits::text like '%%1%%'").fetchone()
        assert bits == (1000,)

    name = f"adtest_sim_again_{uuid.uuid4().hex[:8]}"
    recreate_database(server_url, name, template=template_name)
    try:
        again = city.seed(_with_db(server_url, name), _run(1000, 10_000))
        assert again == made
        other = city.seed(_with_db(server_url, name), _run(5, 5, seed=8))
        assert not set(other.mechanic_ids) & set(made.mechanic_ids)
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(psycopg.sql.SQL("drop database if exists {} with (force)").format(psycopg.sql.Identifier(name)))


def test_client_calls_as_the_user_and_records_codes(fresh_url: str, tmp_path: Path) -> None:
    made = city.seed(fresh_url, _run(2, 5))
    mechanic = User(made.mechanic_ids[0], "m@sim.autodoctor.test")
    customer = User(made.customer_ids[0], "c@sim.autodoctor.test")

    async def scenario() -> None:
        log = CallLog(tmp_path, "w0")
        client = Client(fresh_url, log, time.time())
        await client.open()
        try:
            me = await client.rpc(mechanic, "get_my_mechanic")
            assert me.ok and me.value["id"] == mechanic.id
            seen = await client.select(customer, "vehicles", ["owner_id"])
            assert seen.ok and [r["owner_id"] for r in seen.value] == [uuid.UUID(customer.id)]  # RLS: 1 of 5
            missing = await client.rpc(mechanic, "accept_request", p_request_id=str(uuid.uuid4()))
            assert missing.code == BY_NAME["not_found"].sqlstate
            # the database drops every connection (a restart): the next call still works
            with psycopg.connect(fresh_url, autocommit=True) as admin:
                admin.execute("select pg_terminate_backend(pid) from pg_stat_activity "
                              "where datname = current_database() and pid <> pg_backend_pid()")
            await asyncio.sleep(0.3)
            again = await client.rpc(mechanic, "get_my_mechanic")
            assert again.ok, again.code
            # the run's end: no call starts after it (neither a database call nor an HTTP one)
            client.stop_calls()
            for late in (client.rpc(mechanic, "get_my_mechanic"),
                         client.http(customer, "livekit_token", "http://127.0.0.1:9/livekit_token", {})):
                try:
                    await late
                except asyncio.CancelledError:
                    pass
                else:
                    raise AssertionError("a call started after the run's end")
        finally:
            await client.close()
            log.close()

    asyncio.run(scenario())
    calls = list(read_calls(tmp_path))
    assert [(c.name, c.code) for c in calls] == [
        ("rpc:get_my_mechanic", ""), ("rest:get vehicles", ""),
        ("rpc:accept_request", BY_NAME["not_found"].sqlstate), ("rpc:get_my_mechanic", "")]
    assert all(c.ms > 0 for c in calls)


# Bounds for conditions the test waits for (real seconds): generous, for a loaded 2-core machine.
# Each is a limit on waiting, not on speed: the test goes on as soon as what it waits for happened.
PHASE_S = 240.0
STOP_S = 120.0


def _wait_until(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"no {what} within {seconds:.0f} s"
        time.sleep(0.25)


def _calls_so_far(path: Path) -> list[dict[str, str]]:
    """The rows of a call log the worker is still writing: only whole lines (the last may be half
    flushed)."""
    if not path.exists():
        return []
    text = path.read_text()
    return list(csv.DictReader(io.StringIO(text[:text.rfind("\n") + 1])))


def _ok_after(rows: list[dict[str, str]], t: float) -> Counter[str]:
    return Counter(r["name"] for r in rows if r["code"] == "" and float(r["t"]) > t)


def test_a_short_run_files_matches_and_delivers_then_stops(fresh_url: str, tmp_path: Path) -> None:
    # The run is far longer than the test may take (24 simulated hours: 24 real minutes): only the
    # STOP file can end it while the test waits. The test waits for what the actors do, never for
    # a fixed time: a loaded machine makes it slower, not wrong.
    run = RunSpec(mechanics=30, customers=400, rate=2.0, duration_s=24 * 3600, speed=60, seed=11, workers=1)
    assert run.real_duration_s > 2 * PHASE_S + STOP_S + 600
    made = city.seed(fresh_url, run)
    with psycopg.connect(fresh_url, autocommit=True) as conn:  # the run scales the delivery minimum
        conn.execute("update private.settings set value = '0' where key = 'trust.min_delivered_minutes'")
    free_only = dataclasses.replace(city.REFERENCE, requests_per_hour={"free": 60.0}, bookings_per_hour=0.0,
                                    online_share_at_peak=1.0)
    unused = "http://127.0.0.1:9"
    spec = WorkerSpec(index=0, run=run, run_dir=str(tmp_path), database_url=fresh_url, functions_url=unused,
                      stripe_url=unused, livekit_url=unused, jwt_secret="s" * 32, started_at=time.time(),
                      mechanic_ids=made.mechanic_ids, customer_ids=made.customer_ids)
    calls = tmp_path / "calls" / "w0.csv"
    delivered_sql = ("select count(*) from public.sessions where status = 'completed' and delivery = 'delivered'"
                     " and ended_at > %s")
    worker = threading.Thread(target=worker_main, args=(spec, free_only), daemon=True)
    worker.start()
    try:
        with psycopg.connect(fresh_url, autocommit=True) as watch:
            def delivered_since(t: dt.datetime) -> int:
                row = watch.execute(delivered_sql, (t,)).fetchone()
                return 0 if row is None else int(row[0])

            # requests are filed, matched, and sessions delivered
            epoch = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
            _wait_until(lambda: delivered_since(epoch) > 0, PHASE_S, "session delivered")
            # every connection of the database is dropped (what a restart does to the clients)
            watch.execute("select pg_terminate_backend(pid) from pg_stat_activity "
                          "where datname = current_database() and pid <> pg_backend_pid()")
            dropped = time.time() - spec.started_at
            row = watch.execute("select now()").fetchone()
            assert row is not None
            dropped_at: dt.datetime = row[0]

            # the actors carry on: calls made after the drop succeed, sessions are still delivered
            def carried_on() -> bool:
                after = _ok_after(_calls_so_far(calls), dropped + 1)
                return (after["rpc:heartbeat"] > 0 and after["rpc:accept_request"] > 0
                        and after["rpc:end_session"] > 0 and delivered_since(dropped_at) > 0)

            _wait_until(carried_on, PHASE_S, "work after the connections were dropped")
    finally:
        stopped = time.time() - spec.started_at
        (tmp_path / "STOP").touch()
        worker.join(timeout=STOP_S)
    assert not worker.is_alive(), "the worker did not stop on the STOP file"
    assert time.time() < spec.started_at + run.real_duration_s  # the STOP file ended it, not the run's end

    with calls.open() as f:
        rows = list(csv.DictReader(f))
    # no call started after the worker saw the STOP file (it looks every 0.2 s): actors woken by the
    # stop end instead of making their next call (docs/simulation.md#the-report)
    late = [r for r in rows if float(r["t"]) > stopped + 0.5]  # t: when the call started
    assert not late, late[:5]
    ok = Counter(r["name"] for r in rows if r["code"] == "")
    for name in ("rpc:set_online", "rpc:heartbeat", "rest:post intakes", "rpc:request_session",
                 "rpc:accept_request", "rpc:start_session", "rest:post chat_messages", "rpc:end_session"):
        assert ok[name] > 0, (name, ok)
    # paid flows were off: no checkout; every session asked for its room's token (each session has
    # a LiveKit room, chat included), which fails here as no functions server runs
    assert not any(r["name"] == "fn:create_checkout" for r in rows)
    assert any(r["name"] == "fn:livekit_token" for r in rows)
    # after the connections were dropped the actors carried on: calls succeed, sessions still end
    after = _ok_after(rows, dropped + 1)
    assert after["rpc:heartbeat"] > 0 and after["rpc:accept_request"] > 0 and after["rpc:end_session"] > 0, after
    with psycopg.connect(fresh_url) as conn:
        delivered = conn.execute(delivered_sql, (dropped_at,)).fetchone()
        assert delivered is not None and delivered[0] > 0
        accepted = conn.execute("select count(*) from public.session_requests where status = 'accepted'").fetchone()
        assert accepted is not None and accepted[0] > 0
