"""The waiver: filing demand (request_session, checkout, hold, booking) needs the current terms
accepted with the 18+ confirmation; accept_waiver records the address and user agent from the request
headers PostgREST passes (request.headers), never from the client."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest

from shared.db import set_request_context
from tests.support.factories import accept_waiver, make_customer, make_intake, make_mechanic
from tests.support.harness import Db
from tests.support.scheduling import at, every_day, future_day, hold, scheduled_mechanic

WAIVER_REQUIRED, OUTDATED, INVALID, DENIED = "AD122", "AD123", "AD001", "42501"


def _acceptances(db: Db, user: uuid.UUID) -> list[dict]:
    return db.all("select waiver_version, adult_confirmed, host(ip_address) as ip, user_agent "
                  "from public.waiver_acceptances where user_id = %s order by accepted_at, id", (user,))


def _nothing_filed(db: Db, customer: uuid.UUID) -> None:
    assert db.scalar("select count(*) from public.sessions where customer_id = %s", (customer,)) == 0
    assert db.scalar("select count(*) from public.bookings where customer_id = %s", (customer,)) == 0
    assert db.scalar("select count(*) from public.mechanic_commitments where customer_id = %s", (customer,)) == 0


def test_request_session_needs_the_waiver(db):
    customer = make_customer(db, waiver=False)
    intake = make_intake(db, customer)
    with db.as_user(customer):
        assert db.rpc_error("request_session", p_plan_code="free", p_intake_id=intake) == WAIVER_REQUIRED
        assert db.rpc_error("request_session", p_plan_code="chat10", p_intake_id=intake) == WAIVER_REQUIRED
    _nothing_filed(db, customer)
    assert db.scalar("select status from public.intakes where id = %s", (intake,)) == "new"
    accept_waiver(db, customer)
    with db.as_user(customer):
        assert db.rpc("request_session", p_plan_code="free", p_intake_id=intake)["session_id"]


def test_checkout_hold_and_booking_need_the_waiver(db):
    mechanic = scheduled_mechanic(db, "UTC", every_day("00:00", "24:00"), rules={"slot_step_minutes": 5})
    customer = make_customer(db, waiver=False)
    intake = make_intake(db, customer)
    start = at(future_day(5), "09:00")
    with db.as_user(customer):
        assert db.rpc_error("hold_slot", p_mechanic_id=mechanic, p_start=start, p_plan_code="free") == WAIVER_REQUIRED
    with db.as_service():  # create_checkout calls these with the verified customer id
        assert db.error("select private.prepare_checkout(%s, 'chat10', %s, null, null, false)",
                        (customer, intake)).sqlstate == WAIVER_REQUIRED
    _nothing_filed(db, customer)

    accept_waiver(db, customer)
    h = hold(db, customer, mechanic, start, "chat10")
    # the terms change between the hold and the booking: the customer must accept them again
    db.execute("update private.settings set value = '\"v2.0\"' where key = 'waiver.current_version'")
    with db.as_user(customer):
        assert db.rpc_error("book_slot", p_hold_id=h["hold_id"], p_intake_id=intake) == WAIVER_REQUIRED
        assert db.rpc_error("hold_slot", p_mechanic_id=mechanic, p_start=at(future_day(5), "11:00"),
                            p_plan_code="free") == WAIVER_REQUIRED
    with db.as_service():
        assert db.error("select private.prepare_hold_checkout(%s, %s, %s, null)",
                        (customer, h["hold_id"], intake)).sqlstate == WAIVER_REQUIRED
    assert db.scalar("select count(*) from public.sessions where customer_id = %s", (customer,)) == 0
    assert db.scalar("select count(*) from public.bookings where customer_id = %s", (customer,)) == 0
    with db.as_user(customer):
        assert db.rpc_error("accept_waiver", p_version="v1.0", p_adult=True) == OUTDATED  # the old terms
        db.rpc("accept_waiver", p_version="v2.0", p_adult=True)
    with db.as_service():
        assert db.scalar("select private.prepare_hold_checkout(%s, %s, %s, null) ->> 'mode'",
                         (customer, h["hold_id"], intake)) in ("stripe", "credit")


def test_older_version_or_no_adult_confirmation_does_not_count(db):
    customer = make_customer(db, waiver=False)
    intake = make_intake(db, customer)
    # rows as the platform could hold them from before: an older version, a missing 18+ confirmation
    db.execute("insert into public.waiver_acceptances (user_id, waiver_version, adult_confirmed) values "
               "(%s, 'v0.9', true), (%s, 'v1.0', false)", (customer, customer))
    assert db.scalar("select private.has_current_waiver(%s)", (customer,)) is False
    with db.as_user(customer):
        assert db.rpc_error("request_session", p_plan_code="free", p_intake_id=intake) == WAIVER_REQUIRED
    _nothing_filed(db, customer)


def test_accept_waiver_records_address_and_agent_from_the_headers(db):
    customer = make_customer(db, waiver=False)
    headers = {"X-Forwarded-For": "203.0.113.7, 10.0.0.1", "X-Real-IP": "10.0.0.1", "User-Agent": "AutoDoctor/2.1 iOS"}
    with db.as_user(customer, headers=headers):
        first = db.rpc("accept_waiver", p_version="v1.0", p_adult=True)
        # PostgREST's form: one JSON object, lower-case names
        assert json.loads(db.scalar("select current_setting('request.headers', true)")) == {
            "x-forwarded-for": "203.0.113.7, 10.0.0.1", "x-real-ip": "10.0.0.1", "user-agent": "AutoDoctor/2.1 iOS"}
    assert _acceptances(db, customer) == [{"waiver_version": "v1.0", "adult_confirmed": True, "ip": "203.0.113.7",
                                           "user_agent": "AutoDoctor/2.1 iOS"}]
    with db.as_user(customer, headers={"user-agent": "other"}):  # accepting again: the first acceptance stands
        assert db.rpc("accept_waiver", p_version="v1.0", p_adult=True)["waiver_id"] == first["waiver_id"]
    assert len(_acceptances(db, customer)) == 1


@pytest.mark.parametrize(("headers", "ip", "agent"), [
    ({"x-real-ip": "198.51.100.4", "user-agent": "curl/8"}, "198.51.100.4", "curl/8"),
    ({"x-forwarded-for": " 2001:db8::1 ,198.51.100.4"}, "2001:db8::1", None),
    ({"x-forwarded-for": "not-an-address", "x-real-ip": "198.51.100.4"}, None, None),
    ({"x-forwarded-for": "", "x-real-ip": "198.51.100.9"}, "198.51.100.9", None),
    ({"user-agent": "x" * 2000}, None, "x" * 500),
    ({}, None, None),
])
def test_accept_waiver_header_forms(db, headers, ip, agent):
    customer = make_customer(db, waiver=False)
    with db.as_user(customer, headers=headers):
        db.rpc("accept_waiver", p_version="v1.0", p_adult=True)
    assert _acceptances(db, customer) == [{"waiver_version": "v1.0", "adult_confirmed": True, "ip": ip,
                                           "user_agent": agent}]


def test_malformed_request_headers_setting_records_nothing_spoofable(db):
    customer = make_customer(db, waiver=False)
    with db.as_user(customer):
        db.execute("select set_config('request.headers', 'not json', true)")
        db.rpc("accept_waiver", p_version="v1.0", p_adult=True)
    assert _acceptances(db, customer)[0]["ip"] is None


def test_a_spoofed_address_in_the_body_is_impossible(db):
    customer = make_customer(db, waiver=False)
    with db.as_user(customer, headers={"x-forwarded-for": "203.0.113.7"}):
        # no such parameter: PostgREST finds no function with it (PGRST202); the database the same
        err = db.error("select public.accept_waiver(p_version => 'v1.0', p_adult => true, p_ip_address => '1.2.3.4')")
        assert err.sqlstate == "42883"
        err = db.error("select public.accept_waiver(p_version => 'v1.0', p_adult => true, p_user_agent => 'spoof')")
        assert err.sqlstate == "42883"
        # nor by writing the table
        assert db.error("insert into public.waiver_acceptances (waiver_version, ip_address, user_agent, "
                        "adult_confirmed) values ('v1.0', '1.2.3.4', 'spoof', true)").sqlstate == DENIED
        assert db.error("update public.waiver_acceptances set ip_address = '1.2.3.4'").sqlstate == DENIED
    assert _acceptances(db, customer) == []
    assert db.scalar("select private.has_current_waiver(%s)", (customer,)) is False


@pytest.mark.parametrize("kwargs", [
    {"p_version": None, "p_adult": True}, {"p_version": "v1.0", "p_adult": None},
    {"p_version": "v1.0", "p_adult": False}, {"p_version": "x" * 21, "p_adult": True},
])
def test_accept_waiver_hostile_input_writes_nothing(db, kwargs):
    customer = make_customer(db, waiver=False)
    with db.as_user(customer):
        assert db.rpc_error("accept_waiver", **kwargs) == INVALID
    assert _acceptances(db, customer) == []


def test_accept_waiver_per_persona(db):
    mechanic = make_mechanic(db)
    with db.as_anon():
        assert db.error("select public.accept_waiver('v1.0', true)").sqlstate == DENIED
    with db.as_role("authenticated", {"role": "authenticated"}):  # a token without a user
        assert db.rpc_error("accept_waiver", p_version="v1.0", p_adult=True) == "AD002"
    accept_waiver(db, mechanic)  # a mechanic filing demand as a customer accepts them too
    assert db.scalar("select private.has_current_waiver(%s)", (mechanic,)) is True
    other = make_customer(db)
    with db.as_user(other):  # each reads its own acceptances only
        assert db.scalar("select count(*) from public.waiver_acceptances where user_id = %s", (mechanic,)) == 0
    assert db.scalar("select count(*) from public.waiver_acceptances where user_id = %s", (mechanic,)) == 1


def test_set_request_context_sets_headers_as_postgrest_does(db):
    conn: psycopg.Connection = db.conn
    with conn.transaction(force_rollback=True):
        set_request_context(conn, "anon", None, headers={"X-Forwarded-For": "203.0.113.7", "Accept": "*/*"})
        assert json.loads(conn.execute("select current_setting('request.headers')").fetchone()[0]) == {
            "x-forwarded-for": "203.0.113.7", "accept": "*/*"}
    with conn.transaction(force_rollback=True):
        set_request_context(conn, "anon", None)
        assert conn.execute("select current_setting('request.headers')").fetchone()[0] == "{}"


def test_create_checkout_answers_waiver_required_over_http(pay):
    """The HTTP function: 403 waiver_required, no booking, no Stripe call."""
    from functions.checkout import create_checkout
    from tests.support.payments import call

    customer = make_customer(pay.db, waiver=False)
    pay.commit()
    intake = pay.intake(customer)
    body = {"plan_code": "video15", "intake_id": str(intake), "success_url": "https://app.example.test/done",
            "cancel_url": "https://app.example.test/pricing"}
    status, payload = call(create_checkout, body=body, headers=pay.token(customer))
    assert (status, payload["error"], payload["code"]) == (403, "waiver_required", WAIVER_REQUIRED)
    assert pay.val("select count(*) from public.bookings") == 0
    assert pay.fake.calls_to("POST", "/v1/checkout/sessions") == []
    accept_waiver(pay.db, customer)
    pay.commit()
    assert pay.checkout(customer, intake=intake)["url"]
