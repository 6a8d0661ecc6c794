"""Limits per account: open on-demand requests, free sessions ever, one open request per preferred
mechanic, future bookings (holds count), intakes per hour. Each refusal is limit_reached (AD130,
HTTP 429) and writes nothing. Races are in test_limits_races.py."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import psycopg

from shared.errors import error_code
from tests.support.delivery import deliver
from tests.support.factories import (
    accept,
    make_admin,
    make_customer,
    make_intake,
    make_mechanic,
    make_world,
    request_free,
)
from tests.support.harness import Db
from tests.support.limits import code_and_retry, open_requests, rpc_failure, sessions_of, set_setting
from tests.support.scheduling import at, every_day, future_day, scheduled_mechanic

LIMIT = "AD130"


def _free_mechanic(db: Db) -> uuid.UUID:
    """An approved independent mechanic who may take free (micro) requests at any time."""
    return make_mechanic(db, name=f"Free {uuid.uuid4().hex[:6]}")


def _request(db: Db, customer: uuid.UUID, plan: str = "free", **kw: object) -> str:
    """request_session as the customer with a new intake: 'ok' or the error code."""
    intake = make_intake(db, customer)
    with db.as_user(customer):
        try:
            db.rpc("request_session", p_plan_code=plan, p_intake_id=intake, **kw)
        except psycopg.Error as exc:
            return error_code(exc)
    return "ok"


# ---------------------------------------------------------------------------------------------
# Free sessions per account
# ---------------------------------------------------------------------------------------------
def test_one_free_session_per_account_and_nothing_written_on_refusal(db: Db) -> None:
    customer = make_customer(db)
    request_free(db, customer)
    intake = make_intake(db, customer)
    with db.as_user(customer):
        err = rpc_failure(db, "request_session", p_plan_code="free", p_intake_id=intake)
    assert code_and_retry(err) == (LIMIT, None)
    assert json.loads(err.diag.message_primary or "")["hint"] == "limit_reached"
    assert sessions_of(db, customer) == 1
    assert db.scalar("select status from public.intakes where id = %s", (intake,)) == "new"
    # another account is not affected (limits are per account)
    assert _request(db, make_customer(db)) == "ok"


def test_two_hundred_free_requests_file_one(db: Db) -> None:
    """One customer filed 200 open free requests in a loop: now one passes."""
    customer = make_customer(db)
    results = [_request(db, customer) for _ in range(15)]
    assert results[0] == "ok" and set(results[1:]) == {LIMIT}
    intake = make_intake(db, customer)  # a refused call stops before the intake: one intake serves the rest
    with db.as_user(customer):
        codes = {db.rpc_error("request_session", p_plan_code="free", p_intake_id=intake) for _ in range(185)}
    assert codes == {LIMIT}
    assert sessions_of(db, customer) == 1
    assert db.scalar("select count(*) from public.session_requests where customer_id = %s", (customer,)) == 1


def test_a_free_request_nobody_took_does_not_use_the_free_session(db: Db) -> None:
    customer = make_customer(db)
    mechanic = _free_mechanic(db)
    # cancelled before anyone took it: cancel-and-retry is allowed, it gained nothing
    ids = request_free(db, customer)
    with db.as_user(customer):
        db.rpc("cancel_request", p_request_id=ids["request_id"])
    # expired: nobody took it in time
    ids = request_free(db, customer)
    assert db.scalar("select private.expire_request(%s, 'expired')", (ids["session_id"],)) is True
    # taken, released by the mechanic, then cancelled by the customer: nobody has it at the end
    ids = request_free(db, customer)
    accept(db, mechanic, ids["request_id"])
    with db.as_user(mechanic):
        db.rpc("cancel_request", p_request_id=ids["request_id"])
    with db.as_user(customer):
        db.rpc("cancel_request", p_request_id=ids["request_id"])
    assert db.scalar("select private.free_sessions_used(%s, false, null, now())", (customer,)) == 0
    # the account still has its one free session
    ids = request_free(db, customer)
    accept(db, mechanic, ids["request_id"])
    # a mechanic took it: cancelled afterwards (the customer never joined), it still counts
    db.execute("select private.cancel_session(%s, 'customer never joined')", (ids["session_id"],))
    assert db.scalar("select private.free_sessions_used(%s, false, null, now())", (customer,)) == 1
    assert _request(db, customer) == LIMIT


def test_a_completed_free_session_counts_and_paid_plans_stay_open(db: Db) -> None:
    customer = make_customer(db)
    mechanic = _free_mechanic(db)
    ids = request_free(db, customer)
    accept(db, mechanic, ids["request_id"])
    deliver(db, ids["session_id"])
    assert _request(db, customer) == LIMIT
    # a paid plan (credit covers it) is not a free session
    admin = make_admin(db)
    with db.as_user(admin):
        db.rpc("admin_grant_credit", p_customer_id=customer, p_amount_cents=5000, p_reason="goodwill")
    out = db.scalar("select private.prepare_checkout(%s, 'chat10', %s, null, null, false)",
                    (customer, make_intake(db, customer)))
    assert out["mode"] == "credit" and out["session_id"]


# ---------------------------------------------------------------------------------------------
# Open on-demand requests per customer
# ---------------------------------------------------------------------------------------------
def test_the_third_open_request_is_refused(db: Db) -> None:
    set_setting(db, "limits.free_sessions_per_account", 1000)  # only the open-request cap is at work
    customer = make_customer(db)
    assert [_request(db, customer) for _ in range(3)] == ["ok", "ok", LIMIT]
    assert open_requests(db, customer) == 2
    # a loop gets nothing more
    intake = make_intake(db, customer)
    with db.as_user(customer):
        assert {db.rpc_error("request_session", p_plan_code="free", p_intake_id=intake) for _ in range(50)} == {LIMIT}
    assert sessions_of(db, customer) == 2
    # an accepted request still open counts; once its session ended it does not
    mechanic = _free_mechanic(db)
    first = db.one("select id, session_id from public.session_requests where customer_id = %s "
                   "order by created_at, id limit 1", (customer,))
    assert first is not None
    accept(db, mechanic, first["id"])
    assert open_requests(db, customer) == 2 and _request(db, customer) == LIMIT
    deliver(db, first["session_id"])
    assert open_requests(db, customer) == 1
    assert _request(db, customer) == "ok"
    # cancelling one frees a place
    second = db.scalar("select id from public.session_requests where customer_id = %s and status = 'pending' "
                       "order by created_at limit 1", (customer,))
    with db.as_user(customer):
        db.rpc("cancel_request", p_request_id=second)
    assert _request(db, customer) == "ok"
    assert _request(db, customer) == LIMIT


def test_the_cap_is_a_setting(db: Db) -> None:
    set_setting(db, "limits.free_sessions_per_account", 1000)
    set_setting(db, "limits.open_requests_per_customer", 4)
    customer = make_customer(db)
    assert [_request(db, customer) for _ in range(5)] == ["ok"] * 4 + [LIMIT]


def test_a_credit_checkout_is_refused_before_money_moves(db: Db) -> None:
    set_setting(db, "limits.free_sessions_per_account", 1000)
    customer = make_customer(db)
    request_free(db, customer)
    request_free(db, customer)
    admin = make_admin(db)
    with db.as_user(admin):
        db.rpc("admin_grant_credit", p_customer_id=customer, p_amount_cents=5000, p_reason="goodwill")
    intake = make_intake(db, customer)
    err = db.error("select private.prepare_checkout(%s, 'chat10', %s, null, null, false)", (customer, intake))
    assert code_and_retry(err) == (LIMIT, None)
    assert db.scalar("select count(*) from public.bookings where customer_id = %s", (customer,)) == 0
    assert db.scalar("select private.credit_balance(%s)", (customer,)) == 5000


# ---------------------------------------------------------------------------------------------
# One open request per preferred mechanic
# ---------------------------------------------------------------------------------------------
def test_one_open_request_per_preferred_mechanic(db: Db) -> None:
    set_setting(db, "limits.free_sessions_per_account", 1000)
    set_setting(db, "limits.open_requests_per_customer", 1000)
    customer = make_customer(db)
    mechanic, other = _free_mechanic(db), _free_mechanic(db)
    assert _request(db, customer, p_preferred_mechanic_id=mechanic) == "ok"
    # aiming many requests at one mechanic: refused after the first, nothing written
    assert {_request(db, customer, p_preferred_mechanic_id=mechanic) for _ in range(10)} == {LIMIT}
    assert db.scalar("select count(*) from public.session_requests where customer_id = %s", (customer,)) == 1
    # another mechanic, or no preference, is fine; another customer too
    assert _request(db, customer, p_preferred_mechanic_id=other) == "ok"
    assert _request(db, customer) == "ok"
    assert _request(db, make_customer(db), p_preferred_mechanic_id=mechanic) == "ok"
    # once the mechanic took it, the customer may prefer that mechanic again
    first = db.scalar("select id from public.session_requests where customer_id = %s and preferred_mechanic_id = %s",
                      (customer, mechanic))
    accept(db, mechanic, first)
    assert _request(db, customer, p_preferred_mechanic_id=mechanic) == "ok"


def test_the_preferred_index_holds_without_the_check(db: Db) -> None:
    """The partial unique index refuses a second open row even written around the RPCs, and its
    violation is reported as limit_reached."""
    set_setting(db, "limits.free_sessions_per_account", 1000)
    customer = make_customer(db)
    mechanic = _free_mechanic(db)
    assert _request(db, customer, p_preferred_mechanic_id=mechanic) == "ok"
    row = db.one("select * from public.session_requests where customer_id = %s", (customer,))
    assert row is not None
    session = db.scalar("insert into public.sessions (customer_id, plan_code, session_type, duration_type,"
                        " planned_minutes, price_cents, currency, status)"
                        " select customer_id, plan_code, session_type, duration_type, planned_minutes, price_cents,"
                        " currency, 'pending' from public.sessions where id = %s returning id", (row["session_id"],))
    err = db.error("insert into public.session_requests (session_id, customer_id, plan_code, session_type, status,"
                   " preferred_mechanic_id, concern) values (%s, %s, %s, %s, 'pending', %s, 'x')",
                   (session, customer, row["plan_code"], row["session_type"], mechanic))
    assert (err.sqlstate, err.diag.constraint_name) == ("23505", "session_requests_one_open_per_preferred")
    assert code_and_retry(db.error("select private.raise_if_preferred_limit('session_requests_one_open_per_preferred')")
                          ) == (LIMIT, None)
    db.execute("select private.raise_if_preferred_limit('another_index')")  # anything else: re-raised by the caller
    assert db.scalar("select indexdef from pg_indexes where indexname = 'session_requests_one_open_per_preferred'"
                     ).endswith("WHERE ((preferred_mechanic_id IS NOT NULL) AND "
                                "(status = ANY (ARRAY['pending'::request_status, 'unattended'::request_status])))")


# ---------------------------------------------------------------------------------------------
# Future bookings per customer, and the free plan through booking
# ---------------------------------------------------------------------------------------------
def _always_open(db: Db) -> uuid.UUID:
    return scheduled_mechanic(db, "UTC", every_day("00:00", "24:00"), rules={"slot_step_minutes": 5})


def _book(db: Db, customer: uuid.UUID, hold_id: str) -> str:
    intake = make_intake(db, customer)
    with db.as_user(customer):
        try:
            db.rpc("book_slot", p_hold_id=hold_id, p_intake_id=intake)
        except psycopg.Error as exc:
            return error_code(exc)
    return "ok"


def _hold_code(db: Db, customer: uuid.UUID, mechanic: uuid.UUID, start: dt.datetime, plan: str) -> str | dict:
    with db.as_user(customer):
        try:
            return db.rpc("hold_slot", p_mechanic_id=mechanic, p_start=start, p_plan_code=plan)
        except psycopg.Error as exc:
            return error_code(exc)


def test_the_free_plan_books_once(db: Db) -> None:
    """One customer booked a mechanic's next 30 days with the free plan: now one session."""
    mechanic = _always_open(db)
    customer = make_customer(db)
    booked, refused = 0, set()
    for day in range(2, 32):
        for hhmm in ("09:00", "15:00"):
            h = _hold_code(db, customer, mechanic, at(future_day(day), hhmm), "free")
            if isinstance(h, dict):
                assert _book(db, customer, h["hold_id"]) == "ok"
                booked += 1
            else:
                refused.add(h)
    assert booked == 1 and refused == {LIMIT}
    assert sessions_of(db, customer) == 1
    # an on-demand free request is refused too: one free session per account, however taken
    assert _request(db, customer) == LIMIT


def test_a_free_on_demand_session_closes_free_booking(db: Db) -> None:
    mechanic = _always_open(db)
    customer = make_customer(db)
    request_free(db, customer)
    assert _hold_code(db, customer, mechanic, at(future_day(3), "09:00"), "free") == LIMIT
    # two free holds at once are not two chances either
    other = make_customer(db)
    assert isinstance(_hold_code(db, other, mechanic, at(future_day(3), "10:00"), "free"), dict)
    assert _hold_code(db, other, mechanic, at(future_day(3), "11:00"), "free") == LIMIT


def test_future_bookings_and_holds_per_customer(db: Db) -> None:
    set_setting(db, "scheduling.max_holds_per_customer", 100)  # the future-bookings cap alone
    mechanic = _always_open(db)
    customer = make_customer(db)
    admin = make_admin(db)
    with db.as_user(admin):
        db.rpc("admin_grant_credit", p_customer_id=customer, p_amount_cents=100_000, p_reason="goodwill")
    day = future_day(3)
    h1 = _hold_code(db, customer, mechanic, at(day, "08:00"), "chat10")
    assert isinstance(h1, dict) and _book(db, customer, h1["hold_id"]) == "ok"
    h2 = _hold_code(db, customer, mechanic, at(day, "09:00"), "chat10")
    h3 = _hold_code(db, customer, mechanic, at(day, "10:00"), "chat10")
    assert isinstance(h2, dict) and isinstance(h3, dict)
    # 1 booked + 2 live holds = 3: a fourth hold is refused, nothing written
    commitments = db.scalar("select count(*) from public.mechanic_commitments where customer_id = %s", (customer,))
    assert _hold_code(db, customer, mechanic, at(day, "11:00"), "chat10") == LIMIT
    assert db.scalar("select count(*) from public.mechanic_commitments where customer_id = %s",
                     (customer,)) == commitments
    # booking a held slot is the same booking, not one more
    assert _book(db, customer, h2["hold_id"]) == "ok"
    # a released hold frees its place; an expired one too
    with db.as_user(customer):
        db.rpc("release_hold", p_hold_id=h3["hold_id"])
    h4 = _hold_code(db, customer, mechanic, at(day, "12:00"), "chat10")
    assert isinstance(h4, dict)
    db.execute("update public.mechanic_commitments set expires_at = now() - interval '1 second' where id = %s",
               (h4["hold_id"],))
    h5 = _hold_code(db, customer, mechanic, at(day, "13:00"), "chat10")
    assert isinstance(h5, dict)
    # a payment for the expired hold arriving now would be a fourth: refused (the webhook refunds it)
    err = db.error("select private.confirm_hold(%s, %s, %s, null, %s, true)",
                   (h4["hold_id"], customer, make_intake(db, customer), h4["price_cents"]))
    assert code_and_retry(err) == (LIMIT, None)
    # a session that took place no longer counts
    s1 = db.scalar("select session_id from public.mechanic_commitments where id = %s", (h1["hold_id"],))
    db.execute("select private.cancel_session(%s, 'called off')", (s1,))
    assert isinstance(_hold_code(db, customer, mechanic, at(day, "14:00"), "chat10"), dict)
    assert db.scalar("select private.future_bookings_count(%s, null, now())", (customer,)) == 3


def test_the_future_bookings_cap_counts_booked_sessions_of_every_mechanic(db: Db) -> None:
    set_setting(db, "scheduling.max_holds_per_customer", 100)
    customer = make_customer(db)
    start = at(future_day(4), "09:00")
    mechanics = [_always_open(db) for _ in range(4)]
    results = [_hold_code(db, customer, m, start, "chat10") for m in mechanics]
    assert [isinstance(r, dict) for r in results] == [True, True, True, False] and results[3] == LIMIT


# ---------------------------------------------------------------------------------------------
# Intakes per customer per hour
# ---------------------------------------------------------------------------------------------
def _insert_intake(db: Db, customer: uuid.UUID) -> tuple[str, str | None]:
    with db.as_user(customer):
        try:
            db.execute("insert into public.intakes (concern) values ('Brakes squeal when cold')")
        except psycopg.Error as exc:
            return code_and_retry(exc)
    return "ok", None


def test_intakes_per_hour(db: Db) -> None:
    customer = make_customer(db)
    assert [_insert_intake(db, customer)[0] for _ in range(20)] == ["ok"] * 20
    code, wait = _insert_intake(db, customer)
    assert code == LIMIT and wait is not None and 3590 <= int(wait) <= 3600
    assert db.scalar("select count(*) from public.intakes where customer_id = %s", (customer,)) == 20
    # another customer is not affected; the platform (service_role) is not limited
    assert _insert_intake(db, make_customer(db)) == ("ok", None)
    with db.as_service():
        db.execute("insert into public.intakes (customer_id, concern) values (%s, 'Added by support')", (customer,))
    # the window slides: intakes older than an hour leave it, and Retry-After follows the oldest
    db.execute("update public.intakes set created_at = now() - interval '61 minutes' where id in ("
               " select id from public.intakes where customer_id = %s order by created_at limit 2)", (customer,))
    assert _insert_intake(db, customer) == ("ok", None)
    db.execute("update public.intakes set created_at = now() - interval '50 minutes' where id = ("
               " select id from public.intakes where customer_id = %s and created_at > now() - interval '1 hour'"
               " order by created_at limit 1)", (customer,))
    code, wait = _insert_intake(db, customer)
    assert code == LIMIT and wait is not None and 590 <= int(wait) <= 600


def test_limits_do_not_touch_other_customers_world(db: Db) -> None:
    """make_world's customer used its free session; the other customer of the world did not."""
    w = make_world(db)
    assert _request(db, w.customer) == LIMIT
    assert _request(db, w.other_customer) == "ok"


def test_input_errors_come_before_the_limits(db: Db) -> None:
    """A customer at its caps still learns of a bad input as such, and nothing is written."""
    customer, other = make_customer(db), make_customer(db)
    request_free(db, customer)
    mine, theirs = make_intake(db, customer), make_intake(db, other)
    used = make_intake(db, customer)
    db.execute("update public.intakes set status = 'pending' where id = %s", (used,))
    before = sessions_of(db, customer)
    with db.as_user(customer):
        for params, code in (
            ({"p_plan_code": None, "p_intake_id": mine}, "AD001"),
            ({"p_plan_code": "free", "p_intake_id": None}, "AD001"),
            ({"p_plan_code": "no-such-plan", "p_intake_id": mine}, "AD004"),
            ({"p_plan_code": "free", "p_intake_id": theirs}, "AD004"),
            ({"p_plan_code": "free", "p_intake_id": uuid.uuid4()}, "AD004"),
            ({"p_plan_code": "free", "p_intake_id": used}, "AD005"),
            ({"p_plan_code": "free", "p_intake_id": mine, "p_vehicle_id": uuid.uuid4()}, "AD004"),
            ({"p_plan_code": "free", "p_intake_id": mine, "p_preferred_mechanic_id": customer}, "AD001"),
            ({"p_plan_code": "free", "p_intake_id": mine, "p_preferred_mechanic_id": uuid.uuid4()}, "AD004"),
            ({"p_plan_code": "free", "p_intake_id": mine}, LIMIT),
        ):
            assert db.rpc_error("request_session", **params) == code, params
    assert sessions_of(db, customer) == before
    assert db.scalar("select status from public.intakes where id = %s", (mine,)) == "new"
