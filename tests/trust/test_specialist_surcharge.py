"""The brand-specialist surcharge applies whenever the customer chooses a brand specialist for the
vehicle's make — p_specialist, a preferred mechanic who is one, or a specialist's slot — and never
otherwise (a specialist of another brand, a mechanic who is no specialist). The specialist flag
recorded on the booking, the session and the request is what was charged."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.support.factories import make_customer, make_intake, make_mechanic, make_vehicle
from tests.support.harness import Db
from tests.support.prices import balance, books_balance, day, grant_credit, priced_mechanic, slot

SURCHARGE = 1000


def _honda_specialist(db: Db) -> uuid.UUID:
    return make_mechanic(db, is_brand_specialist=True, brand_specializations=["Honda", "Acura"])


def _mechanics(db: Db) -> dict[str, uuid.UUID]:
    return {
        "honda": _honda_specialist(db),
        "toyota": make_mechanic(db, is_brand_specialist=True, brand_specializations=["Toyota"]),
        "no_specialist": make_mechanic(db, is_brand_specialist=False, brand_specializations=["Honda"]),
    }


def _sessions_of(db: Db, customer: uuid.UUID) -> int:
    return db.scalar("select count(*) from public.sessions where customer_id = %s", (customer,))


def _recorded(db: Db, session_id: Any) -> tuple[int, bool, bool | None]:
    s = db.one("select price_cents, specialist from public.sessions where id = %s", (session_id,))
    assert s is not None
    req = db.scalar("select specialist from public.session_requests where session_id = %s", (session_id,))
    return s["price_cents"], s["specialist"], req


# ---------------------------------------------------------------------------------------------
# request_session (free plan): a chosen specialist makes it paid
# ---------------------------------------------------------------------------------------------
def test_a_free_request_with_a_specialist_as_preferred_mechanic_needs_payment(db: Db) -> None:
    """The reproduction: a brand specialist chosen as preferred mechanic skipped the surcharge."""
    ms = _mechanics(db)
    customer = make_customer(db)
    intake = make_intake(db, customer)  # a Honda
    with db.as_user(customer):
        assert db.rpc_error("request_session", p_plan_code="free", p_intake_id=intake,
                            p_preferred_mechanic_id=ms["honda"]) == "AD008"
        assert db.rpc_error("request_session", p_plan_code="free", p_intake_id=intake, p_specialist=True) == "AD008"
    assert _sessions_of(db, customer) == 0
    assert db.scalar("select status from public.intakes where id = %s", (intake,)) == "new"


@pytest.mark.parametrize("who", ["toyota", "no_specialist", None])
def test_a_free_request_without_a_specialist_of_the_make_stays_free(db: Db, who: str | None) -> None:
    ms = _mechanics(db)
    customer = make_customer(db)
    intake = make_intake(db, customer)
    with db.as_user(customer):
        out = db.rpc("request_session", p_plan_code="free", p_intake_id=intake,
                     p_preferred_mechanic_id=ms[who] if who else None)
    assert _recorded(db, out["session_id"]) == (0, False, False)


def test_the_vehicle_make_decides_and_case_does_not_matter(db: Db) -> None:
    ms = _mechanics(db)
    customer = make_customer(db)
    # the intake says Toyota, the vehicle booked with is an Acura (a brand of the Honda specialist)
    toyota_intake = make_intake(db, customer, vehicle_make="Toyota")
    acura = make_vehicle(db, customer, make="  acura ")
    with db.as_user(customer):
        assert db.rpc_error("request_session", p_plan_code="free", p_intake_id=toyota_intake, p_vehicle_id=acura,
                            p_preferred_mechanic_id=ms["honda"]) == "AD008"
    # someone else's Honda does not make the customer's request a Honda one, and is refused
    other = make_customer(db)
    their_honda = make_vehicle(db, other, make="Honda")
    with db.as_user(customer):
        assert db.rpc_error("request_session", p_plan_code="free", p_intake_id=toyota_intake,
                            p_vehicle_id=their_honda, p_preferred_mechanic_id=ms["honda"]) == "AD004"
        out = db.rpc("request_session", p_plan_code="free", p_intake_id=toyota_intake,
                     p_preferred_mechanic_id=ms["honda"])
    assert _recorded(db, out["session_id"]) == (0, False, False)


def test_request_session_hostile_inputs_with_a_specialist(db: Db) -> None:
    ms = _mechanics(db)
    customer, other = make_customer(db), make_customer(db)
    their_intake = make_intake(db, other)
    mine = make_intake(db, customer)
    with db.as_user(customer):
        # someone else's intake: not found, never "payment required" (nothing learnt about it)
        assert db.rpc_error("request_session", p_plan_code="free", p_intake_id=their_intake,
                            p_preferred_mechanic_id=ms["honda"]) == "AD004"
        assert db.rpc_error("request_session", p_plan_code="free", p_intake_id=mine,
                            p_preferred_mechanic_id=str(uuid.uuid4())) == "AD004"
        assert db.rpc_error("request_session", p_plan_code="free", p_intake_id=mine,
                            p_preferred_mechanic_id=str(customer)) == "AD001"
        assert db.rpc_error("request_session", p_plan_code="free", p_intake_id=None,
                            p_preferred_mechanic_id=ms["honda"]) == "AD001"
        assert db.rpc_error("request_session", p_plan_code="x" * 500, p_intake_id=mine) == "AD004"
    assert _sessions_of(db, customer) == 0


# ---------------------------------------------------------------------------------------------
# Checkout (card or credit) with a preferred mechanic
# ---------------------------------------------------------------------------------------------
def _prepare(db: Db, customer: uuid.UUID, plan: str, intake: uuid.UUID, preferred: uuid.UUID | None = None,
             specialist: bool = False) -> dict[str, Any]:
    return db.scalar("select private.prepare_checkout(%s, %s, %s, null, %s, %s)",
                     (customer, plan, intake, preferred, specialist))


def test_checkout_with_a_specialist_as_preferred_mechanic_adds_the_surcharge(db: Db) -> None:
    ms = _mechanics(db)
    customer = make_customer(db)
    card = _prepare(db, customer, "chat10", make_intake(db, customer), ms["honda"])
    assert (card["mode"], card["price_cents"]) == ("stripe", 999 + SURCHARGE)
    assert card["product_name"].endswith("+ brand specialist")
    assert db.scalar("select specialist from public.bookings where id = %s", (card["booking_id"],)) is True
    # the free plan with a specialist is a paid checkout now, not "free: use request_session"
    free = _prepare(db, customer, "free", make_intake(db, customer), ms["honda"])
    assert free["price_cents"] == SURCHARGE
    # credit that covers it books at once: session, request and payment agree with the charge
    grant_credit(db, customer, 999 + SURCHARGE)
    paid = _prepare(db, customer, "chat10", make_intake(db, customer), ms["honda"])
    assert (paid["mode"], paid["price_cents"]) == ("credit", 999 + SURCHARGE)
    assert _recorded(db, paid["session_id"]) == (999 + SURCHARGE, True, True)
    assert db.scalar("select amount_cents from public.payments where session_id = %s", (paid["session_id"],)) == 1999
    assert balance(db, customer) == 0
    books_balance(db)


@pytest.mark.parametrize("who", ["toyota", "no_specialist"])
def test_checkout_with_a_mechanic_who_is_no_specialist_of_the_make_has_no_surcharge(db: Db, who: str) -> None:
    ms = _mechanics(db)
    customer = make_customer(db)
    grant_credit(db, customer, 999)
    paid = _prepare(db, customer, "chat10", make_intake(db, customer), ms[who])
    assert (paid["mode"], paid["price_cents"]) == ("credit", 999)
    assert _recorded(db, paid["session_id"]) == (999, False, False)
    with pytest.raises(Exception) as exc:
        db.scalar("select private.prepare_checkout(%s, 'free', %s, null, %s, false)",
                  (customer, make_intake(db, customer), ms[who]))
    assert getattr(exc.value, "sqlstate", None) == "AD001"  # free: book it with request_session


def test_a_request_charged_for_a_specialist_is_routed_to_specialists_only(db: Db) -> None:
    """Choosing a specialist as preferred mechanic records specialist = true: if that mechanic
    does not take it, only brand specialists of the make are offered it (what was paid for)."""
    ms = _mechanics(db)
    customer = make_customer(db)
    grant_credit(db, customer, 999 + SURCHARGE)
    paid = _prepare(db, customer, "chat10", make_intake(db, customer), ms["honda"])
    request_id = db.scalar("select id from public.session_requests where session_id = %s", (paid["session_id"],))
    ranked = {r["mechanic_id"] for r in db.all("select mechanic_id from private.rank_mechanics(%s, 1000)",
                                                (request_id,))}
    assert ms["honda"] in ranked
    assert ms["toyota"] not in ranked and ms["no_specialist"] not in ranked


# ---------------------------------------------------------------------------------------------
# A specialist's slots
# ---------------------------------------------------------------------------------------------
def test_booking_a_specialists_free_slot_needs_the_surcharge(db: Db) -> None:
    """The reproduction: booking a specialist's slot skipped the surcharge."""
    m = priced_mechanic(db, is_brand_specialist=True, brand_specializations=["Honda"])
    customer = make_customer(db)
    d = day()
    honda, toyota = make_intake(db, customer), make_intake(db, customer, vehicle_make="Toyota")
    with db.as_user(customer):
        h = db.rpc("hold_slot", p_mechanic_id=m, p_start=slot(d, "13:00"), p_plan_code="free")
        assert h["price_cents"] == 0  # the slot's own price; the vehicle is not known yet
        assert db.rpc_error("book_slot", p_hold_id=h["hold_id"], p_intake_id=honda) == "AD008"
    assert _sessions_of(db, customer) == 0
    assert db.scalar("select status from public.mechanic_commitments where id = %s", (h["hold_id"],)) == "held"
    # for a Toyota the same slot is free
    with db.as_user(customer):
        out = db.rpc("book_slot", p_hold_id=h["hold_id"], p_intake_id=toyota)
    assert _recorded(db, out["session_id"]) == (0, False, None)


def test_booking_a_specialists_slot_with_credit_charges_and_records_it(db: Db) -> None:
    m = priced_mechanic(db, is_brand_specialist=True, brand_specializations=["Honda"])
    customer = make_customer(db)
    grant_credit(db, customer, 1250 + SURCHARGE)
    d = day()
    intake = make_intake(db, customer)
    with db.as_user(customer):
        h = db.rpc("hold_slot", p_mechanic_id=m, p_start=slot(d, "09:00"), p_plan_code="diagnostic")
        out = db.rpc("book_slot", p_hold_id=h["hold_id"], p_intake_id=intake)
    assert _recorded(db, out["session_id"]) == (1250 + SURCHARGE, True, None)
    b = db.one("select price_cents, specialist from public.bookings where session_id = %s", (out["session_id"],))
    assert (b["price_cents"], b["specialist"]) == (2250, True)
    assert db.scalar("select amount_cents from public.payments where session_id = %s", (out["session_id"],)) == 2250
    assert balance(db, customer) == 0
    books_balance(db)


def test_a_hold_checkout_is_priced_for_its_intake_and_never_reused_for_another(db: Db) -> None:
    """Pick a Toyota intake (no surcharge), open the checkout, then ask again with the Honda
    intake: a new checkout at the Honda price, never the Toyota one's URL."""
    m = priced_mechanic(db, is_brand_specialist=True, brand_specializations=["Honda"])
    customer = make_customer(db)
    d = day()
    honda, toyota = make_intake(db, customer), make_intake(db, customer, vehicle_make="Toyota")
    with db.as_user(customer):
        h = db.rpc("hold_slot", p_mechanic_id=m, p_start=slot(d, "13:00"), p_plan_code="chat10")

    def prepare(intake: uuid.UUID) -> dict[str, Any]:
        return db.scalar("select private.prepare_hold_checkout(%s, %s, %s, null)", (customer, h["hold_id"], intake))

    first = prepare(toyota)
    assert (first["price_cents"], first["reused"]) == (999, False)
    db.execute("select private.record_checkout_session(%s, 'cs_test_1', 'https://checkout.example.test/1')",
               (first["booking_id"],))
    second = prepare(honda)
    assert (second["price_cents"], second["reused"]) == (999 + SURCHARGE, False)
    assert "+ brand specialist" in second["product_name"]
    assert db.scalar("select specialist from public.bookings where id = %s", (second["booking_id"],)) is True
    again = prepare(toyota)
    assert (again["reused"], again["booking_id"]) == (True, first["booking_id"])
    # a free slot of a specialist is a paid checkout for a Honda
    with db.as_user(customer):
        free_hold = db.rpc("hold_slot", p_mechanic_id=m, p_start=slot(d, "15:00"), p_plan_code="free")
    paid_free = db.scalar("select private.prepare_hold_checkout(%s, %s, %s, null)",
                          (customer, free_hold["hold_id"], honda))
    assert paid_free["price_cents"] == SURCHARGE


def test_switching_the_preferred_mechanic_never_reuses_a_checkout_priced_for_another(db: Db) -> None:
    """A checkout opened with a specialist as preferred mechanic is not the one handed out for a
    non-specialist (and back): each is priced for the mechanic it names, and records it."""
    ms = _mechanics(db)
    customer = make_customer(db)
    intake = make_intake(db, customer)
    first = _prepare(db, customer, "chat10", intake, ms["toyota"])
    db.execute("select private.record_checkout_session(%s, 'cs_test_a', 'https://checkout.example.test/a')",
               (first["booking_id"],))
    second = _prepare(db, customer, "chat10", intake, ms["honda"])
    assert (second["reused"], second["price_cents"]) == (False, 999 + SURCHARGE)
    assert second["booking_id"] != first["booking_id"]
    again = _prepare(db, customer, "chat10", intake, ms["toyota"])
    assert (again["reused"], again["booking_id"], again["price_cents"]) == (True, first["booking_id"], 999)
    rows = db.all("select preferred_mechanic_id, specialist, price_cents from public.bookings"
                  " where customer_id = %s order by price_cents", (customer,))
    assert [(r["preferred_mechanic_id"], r["specialist"], r["price_cents"]) for r in rows] == [
        (ms["toyota"], False, 999), (ms["honda"], True, 1999)]


def test_book_slot_with_someone_elses_intake_learns_nothing_and_writes_nothing(db: Db) -> None:
    m = priced_mechanic(db, is_brand_specialist=True, brand_specializations=["Honda"])
    customer, other = make_customer(db), make_customer(db)
    their_honda = make_intake(db, other)
    d = day()
    with db.as_user(customer):
        h = db.rpc("hold_slot", p_mechanic_id=m, p_start=slot(d, "13:00"), p_plan_code="free")
        # priced as no specialist (the foreign intake's make is not read), then refused as not found
        assert db.rpc_error("book_slot", p_hold_id=h["hold_id"], p_intake_id=their_honda) == "AD004"
        assert db.rpc_error("book_slot", p_hold_id=h["hold_id"], p_intake_id=None) == "AD001"
        assert db.rpc_error("book_slot", p_hold_id=str(uuid.uuid4()), p_intake_id=their_honda) == "AD004"
    with db.as_user(other):
        assert db.rpc_error("book_slot", p_hold_id=h["hold_id"], p_intake_id=their_honda) == "AD004"
    assert _sessions_of(db, customer) == 0 and _sessions_of(db, other) == 0
    assert db.scalar("select count(*) from public.bookings where customer_id in (%s, %s)", (customer, other)) == 0
