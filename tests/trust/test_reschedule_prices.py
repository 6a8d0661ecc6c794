"""A reschedule is priced like a new booking of the new slot: dearer is refused with price_changed
and nothing changes; equal goes through with no refund; cheaper goes through and the difference
goes back to credit at once (exact cents). A price can only ratchet down; a free booking moves only
to a free slot; the brand-specialist surcharge follows the mechanic into the new price."""

from __future__ import annotations

import datetime as dt

from tests.support.factories import make_admin, make_customer, make_intake, make_mechanic, make_vehicle
from tests.support.harness import Db
from tests.support.prices import (
    balance,
    books_balance,
    day,
    grant_credit,
    priced_mechanic,
    slot,
    snapshot,
)

PRICE_CHANGED = "AD140"


def _book(db: Db, customer, mechanic, start: dt.datetime, plan: str = "diagnostic", intake=None) -> str:
    intake = intake or make_intake(db, customer)
    with db.as_user(customer):
        h = db.rpc("hold_slot", p_mechanic_id=mechanic, p_start=start, p_plan_code=plan)
        return db.rpc("book_slot", p_hold_id=h["hold_id"], p_intake_id=intake)["session_id"]


def _move(db: Db, user, session_id, start: dt.datetime) -> dict:
    with db.as_user(user):
        return db.rpc("reschedule_session", p_session_id=session_id, p_new_start=start)


def _move_error(db: Db, user, session_id, start) -> str:
    with db.as_user(user):
        return db.rpc_error("reschedule_session", p_session_id=session_id, p_new_start=start)


def test_a_cheap_morning_cannot_be_moved_into_a_dear_evening(db: Db) -> None:
    """The reproduction: ×0.25 (1,250 cents) booked with credit, then moved into ×5 (24,995)."""
    m = priced_mechanic(db)
    customer = make_customer(db)
    grant_credit(db, customer, 1250)
    d = day()
    sid = _book(db, customer, m, slot(d, "09:00"))
    assert db.scalar("select price_cents from public.sessions where id = %s", (sid,)) == 1250
    before = snapshot(db, sid)
    assert _move_error(db, customer, sid, slot(d, "18:00")) == PRICE_CHANGED
    # neither the mechanic nor an admin can move it there at the cheap price either
    assert _move_error(db, m, sid, slot(d, "18:00")) == PRICE_CHANGED
    assert _move_error(db, make_admin(db), sid, slot(d, "13:00")) == PRICE_CHANGED
    assert snapshot(db, sid) == before
    assert before["session"]["calendar_sequence"] == 0 and before["refunds"] == []
    # the evening slot is still free for anyone who pays its price
    assert db.scalar("select count(*) from private.slots(%s, %s, %s, 'diagnostic', now())"
                     " where slot_start = %s and price_cents = 24995",
                     (m, slot(d, "18:00"), slot(d, "19:00"), slot(d, "18:00"))) == 1
    assert balance(db, customer) == 0
    books_balance(db)


def test_cheaper_with_credit_refunds_the_difference_to_credit(db: Db) -> None:
    m = priced_mechanic(db)
    customer = make_customer(db)
    grant_credit(db, customer, 5000)
    d = day()
    sid = _book(db, customer, m, slot(d, "13:00"))  # ×1: 4999
    assert balance(db, customer) == 1
    out = _move(db, customer, sid, slot(d, "09:00"))  # ×0.25: 1250
    assert (out["price_cents"], out["refunded_cents"], out["calendar_sequence"]) == (1250, 3749, 1)
    assert balance(db, customer) == 1 + 3749
    s = db.one("select * from public.sessions where id = %s", (sid,))
    assert (s["price_cents"], s["scheduled_for"], s["status"]) == (1250, slot(d, "09:00"), "scheduled")
    refund = db.one("select r.* from public.refunds r join public.payments p on p.id = r.payment_id"
                    " where p.session_id = %s", (sid,))
    assert (refund["amount_cents"], refund["status"], refund["destination"], refund["origin"]) == (
        3749, "succeeded", "credit", "automatic")
    payment = db.one("select * from public.payments where session_id = %s", (sid,))
    assert (payment["amount_cents"], payment["status"]) == (4999, "partially_refunded")
    assert db.scalar("select amount_cents - refunded_cents from private.payment_balances where session_id = %s",
                     (sid,)) == s["price_cents"]
    # the ratchet: back up to ×1 is refused, and nothing moves
    before = snapshot(db, sid)
    assert _move_error(db, customer, sid, slot(d, "14:00")) == PRICE_CHANGED
    assert snapshot(db, sid) == before
    # sideways at the same price: no new refund
    out = _move(db, customer, sid, slot(d, "10:00"))
    assert (out["price_cents"], out["refunded_cents"], out["calendar_sequence"]) == (1250, 0, 2)
    assert db.scalar("select count(*) from public.refunds r join public.payments p on p.id = r.payment_id"
                     " where p.session_id = %s", (sid,)) == 1
    assert balance(db, customer) == 3750
    books_balance(db)


def test_equal_price_moves_with_no_refund(db: Db) -> None:
    m = priced_mechanic(db)
    customer = make_customer(db)
    grant_credit(db, customer, 4999)
    d = day()
    sid = _book(db, customer, m, slot(d, "13:00"))
    out = _move(db, customer, sid, slot(d, "15:00"))
    assert (out["price_cents"], out["refunded_cents"]) == (4999, 0)
    assert db.scalar("select count(*) from public.refunds") == 0
    assert balance(db, customer) == 0
    assert db.scalar("select status from public.payments where session_id = %s", (sid,)) == "succeeded"
    books_balance(db)


def test_cheaper_all_day_long_refunds_exactly_what_the_price_fell(db: Db) -> None:
    """Moving around many times (dearer attempts refused in between) never refunds more than the
    price fell: paid − refunded = the current price after every step."""
    m = priced_mechanic(db)
    customer = make_customer(db)
    grant_credit(db, customer, 24995)
    d = day()
    sid = _book(db, customer, m, slot(d, "18:00"))  # ×5
    for start, expect in [("13:00", None), ("20:00", PRICE_CHANGED), ("14:00", None), ("09:00", None),
                          ("15:00", PRICE_CHANGED), ("19:00", PRICE_CHANGED), ("08:00", None)]:
        if expect:
            assert _move_error(db, customer, sid, slot(d, start)) == expect
        else:
            _move(db, customer, sid, slot(d, start))
        price = db.scalar("select price_cents from public.sessions where id = %s", (sid,))
        assert db.scalar("select amount_cents - refunded_cents from private.payment_balances where session_id = %s",
                         (sid,)) == price
        assert balance(db, customer) == 24995 - price
    assert price == 1250
    books_balance(db)


def test_a_free_booking_moves_only_to_a_free_slot(db: Db) -> None:
    """The free plan costs 0 at any multiplier; it becomes dearer only when the surcharge starts to
    apply (its mechanic became a brand specialist for the vehicle's make)."""
    m = priced_mechanic(db)
    customer = make_customer(db)
    d = day()
    sid = _book(db, customer, m, slot(d, "09:00"), plan="free")
    out = _move(db, customer, sid, slot(d, "18:00"))
    assert (out["price_cents"], out["refunded_cents"]) == (0, 0)
    db.execute("update public.mechanics set is_brand_specialist = true, brand_specializations = '{Honda}'"
               " where id = %s", (m,))
    before = snapshot(db, sid)
    assert _move_error(db, customer, sid, slot(d, "19:00")) == PRICE_CHANGED
    assert snapshot(db, sid) == before
    assert db.scalar("select count(*) from public.payments") == 0


def test_the_specialist_surcharge_is_part_of_the_new_price(db: Db) -> None:
    m = priced_mechanic(db, is_brand_specialist=True, brand_specializations=["Honda"])
    customer = make_customer(db)
    grant_credit(db, customer, 4999 + 1000)
    d = day()
    intake = make_intake(db, customer, make_vehicle(db, customer, make="Honda"))
    sid = _book(db, customer, m, slot(d, "13:00"), intake=intake)
    s = db.one("select price_cents, specialist from public.sessions where id = %s", (sid,))
    assert (s["price_cents"], s["specialist"]) == (5999, True)
    out = _move(db, customer, sid, slot(d, "09:00"))
    assert (out["price_cents"], out["refunded_cents"], out["specialist"]) == (1250 + 1000, 3749, True)
    assert balance(db, customer) == 3749
    # the mechanic drops the brand: the surcharge no longer applies and is refunded on the next move
    db.execute("update public.mechanics set brand_specializations = '{Toyota}' where id = %s", (m,))
    out = _move(db, customer, sid, slot(d, "10:00"))
    assert (out["price_cents"], out["refunded_cents"], out["specialist"]) == (1250, 1000, False)
    assert db.scalar("select specialist from public.sessions where id = %s", (sid,)) is False
    assert balance(db, customer) == 4749
    books_balance(db)


def test_a_whole_payment_refunded_by_a_move_keeps_the_session(db: Db) -> None:
    """Paid only for the surcharge (free plan with a specialist), moved after the surcharge stopped
    applying: the whole payment is refunded and the session stays booked at 0."""
    m = priced_mechanic(db, is_brand_specialist=True, brand_specializations=["Honda"])
    customer = make_customer(db)
    grant_credit(db, customer, 1000)
    d = day()
    sid = _book(db, customer, m, slot(d, "09:00"), plan="free")
    assert db.scalar("select price_cents from public.sessions where id = %s", (sid,)) == 1000
    db.execute("update public.mechanics set is_brand_specialist = false where id = %s", (m,))
    out = _move(db, customer, sid, slot(d, "11:00"))
    assert (out["price_cents"], out["refunded_cents"]) == (0, 1000)
    s = db.one("select status, price_cents from public.sessions where id = %s", (sid,))
    assert (s["status"], s["price_cents"]) == ("scheduled", 0)
    assert db.scalar("select status from public.payments where session_id = %s", (sid,)) == "refunded"
    assert balance(db, customer) == 1000
    books_balance(db)


def test_reschedule_hostile_inputs_write_nothing(db: Db) -> None:
    m = priced_mechanic(db)
    customer, stranger, other_mechanic = make_customer(db), make_customer(db), make_mechanic(db)
    grant_credit(db, customer, 4999)
    d = day()
    sid = _book(db, customer, m, slot(d, "13:00"))
    before = snapshot(db, sid)
    with db.as_user(customer):
        assert db.rpc_error("reschedule_session", p_session_id=None, p_new_start=slot(d, "09:00")) == "AD001"
        assert db.rpc_error("reschedule_session", p_session_id=sid, p_new_start=None) == "AD001"
        assert db.rpc_error("reschedule_session", p_session_id=sid, p_new_start="infinity") == "AD001"
        assert db.rpc_error("reschedule_session", p_session_id="00000000-0000-0000-0000-000000000000",
                            p_new_start=slot(d, "09:00")) == "AD004"
        assert db.rpc_error("reschedule_session", p_session_id=str(m), p_new_start=slot(d, "09:00")) == "AD004"
        assert db.rpc_error("reschedule_session", p_session_id=sid, p_new_start=slot(d, "09:10")) == "AD052"
        assert db.rpc_error("reschedule_session", p_session_id=sid, p_new_start=slot(d, "23:00")) == "AD052"
    for user in (stranger, other_mechanic):
        assert _move_error(db, user, sid, slot(d, "09:00")) == "AD004"
    with db.as_anon():
        assert db.rpc_error("reschedule_session", p_session_id=sid, p_new_start=slot(d, "09:00")) in ("42501", "AD002")
    assert snapshot(db, sid) == before


def test_cancel_and_rebook_is_priced_afresh(db: Db) -> None:
    """The honest way to a dearer time: book it at its price, cancel the old booking (refunded)."""
    m = priced_mechanic(db)
    customer = make_customer(db)
    grant_credit(db, customer, 1250)
    d = day()
    old = _book(db, customer, m, slot(d, "09:00"))
    intake = make_intake(db, customer)
    with db.as_user(customer):
        h = db.rpc("hold_slot", p_mechanic_id=m, p_start=slot(d, "18:00"), p_plan_code="diagnostic")
        assert h["price_cents"] == 24995
        assert db.rpc_error("book_slot", p_hold_id=h["hold_id"], p_intake_id=intake) == "AD008"
        db.rpc("cancel_scheduled_session", p_session_id=old)
    assert balance(db, customer) == 1250
    books_balance(db)
