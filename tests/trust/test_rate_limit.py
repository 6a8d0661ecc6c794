"""The per-user rate limit of write RPCs: PostgREST's pre-request hook (private.pre_request) takes a
token from the caller's bucket of the function's class; an empty bucket answers rate_limited
(AD131) as HTTP 429 with Retry-After. The harness runs the hook as PostgREST does (Db.rpc names
the call `POST /rpc/<name>`), reading which function to call from the database's catalog."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator

import psycopg
import pytest

from shared.db import pre_request_function, set_request_context
from shared.errors import error_code, http_error, retry_after
from tests.support.factories import make_admin, make_customer, make_intake, make_mechanic
from tests.support.harness import Db
from tests.support.limits import rpc_failure, set_setting
from tests.support.personas import race, request_as

RATE = "AD131"


def _set_online(db: Db, mechanic: uuid.UUID) -> str:
    with db.as_user(mechanic):
        try:
            db.rpc("set_online", p_online=True)
        except psycopg.Error as exc:
            return error_code(exc)
    return "ok"


# ---------------------------------------------------------------------------------------------
# Every write RPC has a class
# ---------------------------------------------------------------------------------------------
def test_every_write_rpc_has_a_rate_class(db: Db) -> None:
    """A function of `public` that signed-in users may execute and that is not read-only must have
    a row in private.rpc_rate_classes, so that a new write RPC cannot be forgotten; every class has
    its two settings."""
    missing = db.all("""
        select p.oid::regprocedure::text as fn from pg_proc p
        where p.pronamespace = 'public'::regnamespace and p.provolatile <> 's'
          and p.prorettype <> 'trigger'::regtype
          and has_function_privilege('authenticated', p.oid, 'execute')
          and not exists (select 1 from private.rpc_rate_classes c where c.function_name = p.proname)""")
    assert missing == []
    writes = db.scalar("""select count(*) from pg_proc p where p.pronamespace = 'public'::regnamespace
                          and p.provolatile = 'v' and has_function_privilege('authenticated', p.oid, 'execute')""")
    assert writes >= 25
    for row in db.all("select distinct class from private.rpc_rate_classes"):
        for suffix in ("capacity", "refill_per_minute"):
            assert db.scalar("select private.setting(%s) is not null",
                             (f"rate_limit.{row['class']}.{suffix}",)) is True, row
    # read-only functions are not limited, a class-less volatile one counts as `write`
    assert db.scalar("select private.rpc_rate_class('available_slots')") is None
    assert db.scalar("select private.rpc_rate_class('request_session')") == "request"
    db.execute("create function public.limits_probe() returns int language sql as 'select 1'")
    assert db.scalar("select private.rpc_rate_class('limits_probe')") == "write"


def test_postgrest_is_configured_to_call_the_hook(db: Db) -> None:
    """The migration sets pgrst.db_pre_request on authenticator; the harness reads it from the
    catalog (a setting for this database wins over one for all)."""
    assert pre_request_function(db.conn) == "private.pre_request"
    assert db.scalar("select has_function_privilege(r, 'private.pre_request()', 'execute')"
                     " from unnest(array['anon', 'authenticated', 'service_role']) r group by 1") is True
    dbname = db.scalar("select current_database()")
    db.execute(f'alter role authenticator in database "{dbname}" set pgrst.db_pre_request to \'public.heartbeat\'')
    assert pre_request_function(db.conn) == "public.heartbeat"
    db.execute(f'alter role authenticator in database "{dbname}" set pgrst.db_pre_request to \'private.no_such_fn\'')
    assert pre_request_function(db.conn) is None  # a function that does not exist is not called


def test_request_context_runs_the_named_pre_request_function(db: Db) -> None:
    """`set_request_context(pre_request=<name>)` calls the function its caller read once (as
    PostgREST reads its configuration at start-up) instead of reading the catalog on every call;
    False calls none. Each is seen by the token it takes or does not take."""
    mechanic = make_mechanic(db)
    claims = {"sub": str(mechanic), "role": "authenticated"}

    def tokens() -> int:
        return db.scalar("select count(*) from private.rate_buckets where user_id = %s", (mechanic,))

    with db.conn.transaction():
        set_request_context(db.conn, "authenticated", claims, path="/rpc/set_online", pre_request=False)
        db.execute("reset role")
    assert tokens() == 0
    with db.conn.transaction():
        set_request_context(db.conn, "authenticated", claims, path="/rpc/set_online",
                            pre_request="private.pre_request")
        db.execute("reset role")
        assert tokens() == 1
        assert db.scalar("select tokens from private.rate_buckets where user_id = %s and class = 'session'",
                         (mechanic,)) < db.scalar("select private.setting_int('rate_limit.session.capacity')")


# ---------------------------------------------------------------------------------------------
# The bucket
# ---------------------------------------------------------------------------------------------
def test_an_empty_bucket_answers_rate_limited_with_retry_after(db: Db) -> None:
    set_setting(db, "rate_limit.session.capacity", 5)
    set_setting(db, "rate_limit.session.refill_per_minute", 6)  # one token every 10 s
    mechanic = make_mechanic(db)
    assert [_set_online(db, mechanic) for _ in range(5)] == ["ok"] * 5
    with db.as_user(mechanic):
        err = rpc_failure(db, "set_online", p_online=False)
    assert error_code(err) == RATE and err.sqlstate == "PGRST"
    assert 1 <= int(retry_after(err) or 0) <= 10
    assert json.loads(err.diag.message_detail or "")["status"] == 429
    status, body = http_error(err)
    assert status == 429 and body["error"] == "rate_limited"
    # the refused call did nothing
    assert db.scalar("select is_available from public.mechanics where id = %s", (mechanic,)) is True
    # per user: another mechanic is not affected; per class: the same mechanic's other classes neither
    assert _set_online(db, make_mechanic(db)) == "ok"
    with db.as_user(mechanic):
        db.rpc("set_booking_rules", p_rules={"buffer_minutes": 5})
    # the bucket refills with time
    db.execute("update private.rate_buckets set updated_at = updated_at - interval '10 seconds'"
               " where user_id = %s and class = 'session'", (mechanic,))
    assert _set_online(db, mechanic) == "ok"
    assert _set_online(db, mechanic) == RATE


def test_a_loop_of_requests_is_cut_by_the_rate_limit(db: Db) -> None:
    """Cancel-and-retry in a loop: the limits per account let it (nothing stays open), the rate
    limit stops it."""
    set_setting(db, "rate_limit.request.capacity", 6)
    set_setting(db, "rate_limit.accept.capacity", 100)
    customer = make_customer(db)
    results = []
    for _ in range(10):
        intake = make_intake(db, customer)
        with db.as_user(customer):
            try:
                ids = db.rpc("request_session", p_plan_code="free", p_intake_id=intake)
                db.rpc("cancel_request", p_request_id=ids["request_id"])
                results.append("ok")
            except psycopg.Error as exc:
                results.append(error_code(exc))
    assert results == ["ok"] * 6 + [RATE] * 4
    assert db.scalar("select count(*) from public.sessions where customer_id = %s", (customer,)) == 6


def test_only_signed_in_post_rpc_calls_take_tokens(db: Db) -> None:
    set_setting(db, "rate_limit.session.capacity", 1)
    set_setting(db, "rate_limit.session.refill_per_minute", 0)
    mechanic = make_mechanic(db)
    assert _set_online(db, mechanic) == "ok"
    assert _set_online(db, mechanic) == RATE
    empty = db.scalar("select tokens from private.rate_buckets where user_id = %s and class = 'session'", (mechanic,))
    assert empty == 0

    def hook(role: str, claims: dict | None, method: str, path: str) -> str:
        with db.conn.transaction(force_rollback=True):  # the role and request settings end with it
            try:
                with request_as(db.conn, role, claims, method=method, path=path):
                    pass
            except psycopg.Error as exc:
                return error_code(exc)
        return "ok"

    claims = {"sub": str(mechanic), "role": "authenticated"}
    assert hook("authenticated", claims, "POST", "/rpc/set_online") == RATE
    assert hook("authenticated", claims, "POST", "/rpc/SET_ONLINE/") == RATE  # the same function
    assert hook("authenticated", claims, "GET", "/rpc/set_online") == "ok"
    assert hook("authenticated", claims, "POST", "/mechanics") == "ok"  # table writes: RLS and triggers
    assert hook("authenticated", claims, "POST", "/rpc/available_slots") == "ok"  # read-only
    assert hook("authenticated", claims, "POST", "/rpc/no_such_function") == "ok"
    assert hook("anon", {"role": "anon"}, "POST", "/rpc/set_online") == "ok"
    assert hook("service_role", {"role": "service_role", "sub": str(mechanic)}, "POST", "/rpc/set_online") == "ok"
    assert hook("authenticated", {"role": "authenticated", "sub": "not-a-uuid"}, "POST", "/rpc/set_online") == "ok"
    assert hook("authenticated", {"role": "authenticated"}, "POST", "/rpc/set_online") == "ok"
    # hostile paths name no write RPC: no token, no error
    for path in ("/rpc/", "/rpc/set_online'; --", "/rpc/" + "x" * 5000, "/rpc/public.set_online", "/RPC/set_online",
                 "/rpc/%73et_online", ""):
        assert hook("authenticated", claims, "POST", path) == "ok", path
    # switched off
    set_setting(db, "rate_limit.session.capacity", 1)
    db.execute("update private.settings set value = 'false' where key = 'rate_limit.enabled'")
    assert _set_online(db, mechanic) == "ok"


def test_a_failed_call_gives_its_token_back(db: Db) -> None:
    """The token is taken in the request's transaction: a call that fails rolls it back."""
    set_setting(db, "rate_limit.accept.capacity", 2)
    set_setting(db, "rate_limit.accept.refill_per_minute", 0)
    mechanic = make_mechanic(db)
    with db.as_user(mechanic):
        codes = {db.rpc_error("accept_request", p_request_id=uuid.uuid4()) for _ in range(10)}
    assert codes == {"AD004"}
    assert db.scalar("select count(*) from private.rate_buckets where user_id = %s", (mechanic,)) == 0


def test_admins_have_a_roomier_class(db: Db) -> None:
    admin = make_admin(db)
    mechanics = [make_mechanic(db, approved=False) for _ in range(130)]
    with db.as_user(admin):
        for m in mechanics:
            db.rpc("admin_set_mechanic_status", p_mechanic_id=m, p_status="approved")
    assert db.scalar("select tokens from private.rate_buckets where user_id = %s and class = 'admin'",
                     (admin,)) >= 600 - 131


# ---------------------------------------------------------------------------------------------
# Races
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def conns(fresh_url: str) -> Iterator[tuple[Db, list[psycopg.Connection]]]:
    main = psycopg.connect(fresh_url, prepare_threshold=None)
    main.execute("select 1")
    others = [psycopg.connect(fresh_url, autocommit=True, prepare_threshold=None) for _ in range(8)]
    yield Db(main), others
    for c in others:
        c.close()
    main.close()


def test_parallel_calls_never_take_more_tokens_than_the_bucket_holds(
    conns: tuple[Db, list[psycopg.Connection]],
) -> None:
    db, others = conns
    db.execute("update private.settings set value = '3' where key = 'rate_limit.session.capacity'")
    db.execute("update private.settings set value = '0' where key = 'rate_limit.session.refill_per_minute'")
    mechanic = make_mechanic(db)
    db.conn.commit()

    def call(conn: psycopg.Connection) -> tuple[str, str]:
        try:
            with request_as(conn, "authenticated", {"sub": str(mechanic), "role": "authenticated"},
                            path="/rpc/heartbeat"):
                conn.execute("select public.heartbeat()")
        except psycopg.Error as exc:
            return "err", error_code(exc)
        return "ok", ""

    import threading
    barrier = threading.Barrier(len(others))
    results: list[tuple[str, str]] = [("err", "not run")] * len(others)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = call(others[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(others))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert Counter(v if k == "err" else "ok" for k, v in results) == Counter({"ok": 3, RATE: len(others) - 3})
    # the race helper of the other tests calls with path "/": no tokens there
    assert all(k == "ok" for k, _ in race([(c, mechanic, "select public.heartbeat()", ()) for c in others]))
