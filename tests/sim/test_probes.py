"""The simulation's probes on small hand-built states: queue depths, request timings and the
database's own statistics."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import socket
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psycopg

from shared.dev.embedded import EmbeddedPostgres
from shared.dev.sim import probes
from shared.dev.sim.metrics import RequestTiming
from tests.support.factories import accept, make_world, request_free
from tests.support.harness import Db


def _job(db: Db, status: str, due_in: str) -> None:
    db.execute("insert into private.outbox (kind, dedupe_key, payload, status, next_attempt_at, attempts) "
               "values ('livekit.delete_room', %s, '{}', %s, now() + %s::interval, %s)",
               (f"sim-probe-{uuid.uuid4()}", status, due_in, 0 if status == "pending" else 1))


def test_sample_counts_a_small_marketplace(db: Db) -> None:
    world = make_world(db)
    before = probes.sample(db.conn)
    assert before["requests_open"] == 1 and before["requests_pending"] == 1
    assert before["sessions_waiting"] == 0 and before["accepted_not_started"] == 0

    accept(db, world.mechanic, world.request)
    request_free(db, world.other_customer)
    with db.as_user(world.other_mechanic):
        db.rpc("set_online", p_online=True)
    queue = probes.sample(db.conn)  # the factories' own emails are already in the queue
    _job(db, "pending", "-1 minute")
    _job(db, "pending", "-2 minutes")
    _job(db, "pending", "1 hour")       # not due yet
    _job(db, "processing", "-1 minute")
    _job(db, "dead", "-1 hour")
    after = probes.sample(db.conn)

    assert after["requests_open"] == 1 and after["requests_pending"] == 1 and after["requests_unattended"] == 0
    assert after["accepted_not_started"] == 1 and after["sessions_waiting"] == 1 and after["sessions_live"] == 0
    assert after["mechanics_busy"] == before["mechanics_busy"] + 1
    assert after["mechanics_online"] == before["mechanics_online"] + 1
    assert after["jobs_due"] - queue["jobs_due"] == 2
    assert after["jobs_pending"] - queue["jobs_pending"] == 3
    assert after["jobs_claimed"] - queue["jobs_claimed"] == 1
    assert after["jobs_dead"] - queue["jobs_dead"] == 1
    assert after["backends_total"] >= 1 and after["backends_waiting_lock"] == 0
    assert all(isinstance(v, float) for v in after.values())
    # the caller's transaction is left open: the forged rows are still there
    assert db.scalar("select count(*) from private.outbox where dedupe_key like 'sim-probe-%%'") == 5


def test_sample_sees_a_backend_waiting_on_a_lock(fresh_url: str) -> None:
    with psycopg.connect(fresh_url) as holder, psycopg.connect(fresh_url, autocommit=True) as watcher:
        holder.execute("update private.settings set value = value where key = 'jobs.batch_size'")
        done = threading.Event()

        def waiter() -> None:
            with psycopg.connect(fresh_url) as other:
                other.execute("update private.settings set value = value where key = 'jobs.batch_size'")
                other.rollback()
            done.set()

        thread = threading.Thread(target=waiter)
        thread.start()
        try:
            seen = 0.0
            deadline = time.monotonic() + 120  # until the waiter is blocked (bounded generously: a loaded machine)
            while time.monotonic() < deadline:
                seen = probes.sample(watcher)["backends_waiting_lock"]
                if seen:
                    break
                time.sleep(0.05)
            assert seen == 1
            assert not done.is_set()
        finally:
            holder.rollback()
            thread.join(timeout=30)
        assert done.is_set()
        assert probes.sample(watcher)["backends_waiting_lock"] == 0


def test_request_timings_from_filing_to_offer_and_accept(db: Db) -> None:
    world = make_world(db)
    started = time.time() - 3600.0
    t0 = dt.datetime.fromtimestamp(started, dt.UTC)
    accept(db, world.mechanic, world.request)
    never = uuid.UUID(request_free(db, world.other_customer)["request_id"])
    early = uuid.UUID(request_free(db, world.other_mechanic)["request_id"])

    def at(seconds: float) -> dt.datetime:
        return t0 + dt.timedelta(seconds=seconds)

    db.execute("update public.session_requests set created_at = %s, broadcast_at = %s, accepted_at = %s "
               "where id = %s", (at(10), at(9.0 + 4), at(15), world.request))
    db.execute("delete from public.session_offers where request_id = %s", (world.request,))
    db.execute("insert into public.session_offers (request_id, mechanic_id, status, offered_at) "
               "values (%s, %s, 'expired', %s), (%s, %s, 'queued', %s)",
               (world.request, world.other_mechanic, at(12), world.request, world.mechanic, at(10.5)))
    db.execute("update public.session_requests set created_at = %s, broadcast_at = null where id = %s",
               (at(20), never))
    db.execute("delete from public.session_offers where request_id = %s", (never,))
    db.execute("update public.session_requests set created_at = %s where id = %s", (at(-5), early))

    rows = {r.request_id: r for r in probes.request_timings(db.conn, started)}
    assert str(early) not in rows  # filed before the run started
    mine = rows[str(world.request)]
    assert isinstance(mine, RequestTiming)
    assert abs(mine.t - 10) < 1e-3
    assert mine.first_offer_s is not None and abs(mine.first_offer_s - 2) < 1e-3  # the offer at 12 (queued: not shown)
    assert mine.accept_s is not None and abs(mine.accept_s - 5) < 1e-3
    assert rows[str(never)] == RequestTiming(str(never), rows[str(never)].t, None, None)
    assert abs(rows[str(never)].t - 20) < 1e-3


def test_db_stats_measure_wal_transactions_and_statements(fresh_url: str) -> None:
    with psycopg.connect(fresh_url, autocommit=True) as conn:
        preloaded = "pg_stat_statements" in str(conn.execute("show shared_preload_libraries").fetchone())
        begin = probes.db_stats_begin(conn)
        json.dumps(begin)  # plain data
        with psycopg.connect(fresh_url) as writer:
            for i in range(5):
                writer.execute("update private.settings set description = description || %s "
                               "where key = 'jobs.batch_size'", (str(i % 2),))
                writer.commit()
        stats = probes.db_stats_end(conn, begin, calls=5, lock_waiting_samples=[0.0, 2.0, 0.0, 1.0])
    json.dumps(stats)
    assert stats["wal_bytes"] > 0
    assert stats["wal_bytes_per_call"] == round(stats["wal_bytes"] / 5, 1)
    assert stats["calls"] == 5
    for counter in ("xact_commit", "xact_rollback", "deadlocks", "temp_bytes"):
        assert stats[counter] is None or stats[counter] >= 0
    locks = stats["locks_waited"]
    assert locks["samples"] == 4 and locks["samples_with_waiters"] == 2
    assert locks["max_waiting_backends"] == 2.0 and locks["mean_waiting_backends"] == 0.75
    if preloaded:
        assert stats["pg_stat_statements"] == "available"
        assert 0 < len(stats["top_statements"]) <= probes.TOP_STATEMENTS
        assert any("private.settings" in s["query"] for s in stats["top_statements"])
    else:
        assert stats["pg_stat_statements"].startswith("unavailable")
        assert stats["top_statements"] == []


def test_db_stats_top_statements_when_the_server_preloads_pg_stat_statements() -> None:
    """A server of its own that preloads the library (as the run's embedded PostgreSQL does): the
    extension is created and the statements of the run are ranked by their total time."""
    home = Path(tempfile.mkdtemp(prefix="autodoctor-test-pgss-"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = EmbeddedPostgres(home=home, port=port, fast=True)
    server.start()
    try:
        with psycopg.connect(server.url(), autocommit=True) as conn:
            conn.execute("alter system set shared_preload_libraries = 'pg_stat_statements'")
        server.stop()
        server.start()
        with psycopg.connect(server.url(), autocommit=True) as conn:
            conn.execute("create table sim_probe (x int)")
            begin = probes.db_stats_begin(conn)
            assert begin["pg_stat_statements"] == "available"
            for i in range(20):
                conn.execute("insert into sim_probe values (%s)", (i,))
            conn.execute("select count(*) from sim_probe, generate_series(1, 2000)")
            stats = probes.db_stats_end(conn, begin, calls=21)
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)
    json.dumps(stats)
    assert stats["pg_stat_statements"] == "available"
    top = stats["top_statements"]
    assert 0 < len(top) <= probes.TOP_STATEMENTS
    assert [s["total_ms"] for s in top] == sorted((s["total_ms"] for s in top), reverse=True)
    inserts = [s for s in top if s["query"].startswith("insert into sim_probe")]
    assert len(inserts) == 1 and inserts[0]["calls"] == 20 and inserts[0]["rows"] == 20
    assert not any("create table sim_probe" in s["query"] for s in top)  # before the start: not the run's
    assert stats["wal_bytes"] > 0
