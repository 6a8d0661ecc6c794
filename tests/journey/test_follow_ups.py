"""Follow-up questions: ask_follow_up on a delivered session files a small chat session linked to
its parent, offered to the parent's mechanic alone for a window and then routed as usual; free up to
follow_ups.free_per_session per thread (neither blocked by nor using the account's free session),
then paid through create_checkout (credit, or Stripe and its webhook). Every way a customer or a
mechanic could game it, hostile input, the race for the one free follow-up, and who reads the rows."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from functions.checkout import create_checkout
from tests.support.delivery import deliver, start_both
from tests.support.factories import accept, make_admin, make_customer, make_intake, make_mechanic, request_free
from tests.support.harness import Db
from tests.support.journey_follow_ups import QUESTION, ask, ask_error, counts, delivered, session_file
from tests.support.journey_recommendations import recs, show
from tests.support.limits import set_setting
from tests.support.payments import Pay, call
from tests.support.personas import race

NOT_ALLOWED, NOT_FOUND, INVALID, CONFLICT, REQUEST_NOT_AVAILABLE = "AD003", "AD004", "AD001", "AD005", "AD009"
LIMIT = "AD130"
NOT_AVAILABLE, WINDOW_CLOSED, BAD_PHOTO = "AD215", "AD216", "AD217"
URLS = {
    "success_url": "https://app.example.test/follow-up?cs={CHECKOUT_SESSION_ID}",
    "cancel_url": "https://app.example.test/session",
}


def _request_of(db: Db, session: Any) -> dict[str, Any]:
    row = db.one("select * from public.session_requests where session_id = %s", (session,))
    assert row is not None
    return row


# ---------------------------------------------------------------------------------------------
# The free follow-up: filed, linked, same mechanic first, completes like a micro session
# ---------------------------------------------------------------------------------------------
def test_free_follow_up_is_filed_linked_and_offered_to_the_same_mechanic_first(db: Db) -> None:
    t = delivered(db)
    other_mechanic = make_mechanic(db, name="Otto Other")
    photo = session_file(db, t.session, t.mechanic)
    out = ask(db, t.customer, t.session, "  " + QUESTION + "  ", [photo])
    assert out["status"] == "filed" and out["free"] is True and out["price_cents"] == 0
    assert out["parent_session_id"] == str(t.session) and out["root_session_id"] == str(t.session)
    assert out["preferred_mechanic_id"] == str(t.mechanic)

    fu = db.one("select * from public.follow_ups where id = %s", (out["follow_up_id"],))
    assert fu is not None and fu["question"] == QUESTION and fu["photo_paths"] == [photo] and fu["status"] == "filed"
    s = db.one("select * from public.sessions where id = %s", (out["session_id"],))
    assert s is not None
    assert (
        s["parent_session_id"],
        s["plan_code"],
        s["price_cents"],
        s["duration_type"],
        s["planned_minutes"],
        s["session_type"],
    ) == (t.session, "follow_up", 0, "micro", 10, "chat")
    # its own intake: the parent's vehicle, the question as its concern
    intake = db.one("select * from public.intakes where id = %s", (out["intake_id"],))
    assert intake is not None and intake["vehicle_id"] == t.vehicle and intake["concern"] == QUESTION
    assert intake["status"] == "pending" and s["intake_id"] == intake["id"]

    # the preferred mechanic's exclusive window of matching, follow_ups.same_mechanic_window long
    req = _request_of(db, out["session_id"])
    assert req["preferred_mechanic_id"] == t.mechanic and req["concern"] == QUESTION
    assert req["broadcast_at"] - req["created_at"] == db.scalar(
        "select private.setting_interval('follow_ups.same_mechanic_window')"
    )
    assert (
        db.scalar(
            "select count(*) from public.session_offers where request_id = %s and mechanic_id = %s "
            "and status = 'offered'",
            (req["id"], t.mechanic),
        )
        == 1
    )
    with db.as_user(other_mechanic):
        assert db.rpc_error("accept_request", p_request_id=req["id"]) == REQUEST_NOT_AVAILABLE
    # the CRM record
    crm = db.one(
        "select * from public.crm_interactions where kind = 'follow_up_asked' and customer_id = %s", (t.customer,)
    )
    assert crm is not None and crm["subject_id"] == fu["id"] and crm["session_id"] == t.session
    assert crm["data"]["follow_up_session_id"] == out["session_id"] and crm["data"]["free"] is True

    # the mechanic answers in the follow-up's chat; it ends like a micro session: delivered
    accept(db, t.mechanic, req["id"])
    ended = deliver(db, out["session_id"])
    assert ended["delivery"] == "delivered"
    assert db.scalar("select count(*) from public.chat_messages where session_id = %s", (out["session_id"],)) == 2


def test_after_the_window_or_a_decline_the_follow_up_is_routed_as_usual(db: Db) -> None:
    t = delivered(db)
    other = make_mechanic(db, name="Otto Other")
    out = ask(db, t.customer, t.session)
    req = _request_of(db, out["session_id"])
    # routing after the window: opened to everyone (the broadcast row)
    db.execute("select private.route_request(%s, %s)", (req["id"], req["broadcast_at"]))
    assert (
        db.scalar(
            "select count(*) from public.session_offers where request_id = %s and mechanic_id is null", (req["id"],)
        )
        == 1
    )
    assert (
        db.scalar("select private.assign_request(%s, %s, %s) ->> 'status'", (req["id"], other, req["broadcast_at"]))
        == "accepted"
    )

    # a decline by the parent's mechanic opens the next one at once
    t2 = delivered(db)
    out2 = ask(db, t2.customer, t2.session)
    req2 = _request_of(db, out2["session_id"])
    third = make_mechanic(db, name="Theo Third")
    with db.as_user(third):
        assert db.rpc_error("accept_request", p_request_id=req2["id"]) == REQUEST_NOT_AVAILABLE
    with db.as_user(t2.mechanic):
        db.rpc("decline_offer", p_request_id=req2["id"])
    assert accept(db, third, req2["id"])["status"] == "accepted"


def test_free_follow_up_is_neither_blocked_by_nor_uses_the_free_session(db: Db) -> None:
    # the parent was the account's one free session: the follow-up is still free
    t = delivered(db)
    assert db.scalar("select private.free_sessions_used(%s, false, null, now())", (t.customer,)) == 1
    assert ask(db, t.customer, t.session)["free"] is True
    assert db.scalar("select private.free_sessions_used(%s, false, null, now())", (t.customer,)) == 1

    # a customer whose parent was paid keeps its free session after a free follow-up
    t2 = delivered(db)
    db.execute("update public.sessions set price_cents = 999 where id = %s", (t2.session,))
    assert ask(db, t2.customer, t2.session)["free"] is True
    assert db.scalar("select private.free_sessions_used(%s, false, null, now())", (t2.customer,)) == 0
    assert request_free(db, t2.customer)["session_id"]


def test_second_follow_up_waits_for_payment_and_writes_no_session(db: Db) -> None:
    t = delivered(db)
    first = ask(db, t.customer, t.session)
    before = db.scalar("select count(*) from public.sessions where customer_id = %s", (t.customer,))
    second = ask(db, t.customer, t.session, "And the squeak from the rear?")
    assert second["status"] == "payment_required" and second["free"] is False and second["price_cents"] == 299
    assert second["session_id"] is None and first["free"] is True
    assert db.scalar("select count(*) from public.sessions where customer_id = %s", (t.customer,)) == before
    fu = db.one("select status, intake_id from public.follow_ups where id = %s", (second["follow_up_id"],))
    assert fu is not None and fu["status"] == "pending_payment"
    assert db.scalar("select status::text from public.intakes where id = %s", (fu["intake_id"],)) == "new"
    # a higher setting gives more free ones (once the first is taken: one open request per
    # preferred mechanic)
    set_setting(db, "follow_ups.free_per_session", 3)
    assert ask_error(db, t.customer, t.session, "One more question, please.") == LIMIT
    accept(db, t.mechanic, first["request_id"])
    assert ask(db, t.customer, t.session, "One more question, please.")["free"] is True


def test_the_follow_up_plan_cannot_be_booked_directly(db: Db) -> None:
    customer = make_customer(db)
    intake = make_intake(db, customer)
    with db.as_user(customer):
        assert db.rpc_error("request_session", p_plan_code="follow_up", p_intake_id=intake) == NOT_FOUND
        # the catalog customers read does not list it
        assert db.scalar("select count(*) from public.service_plans where code = 'follow_up'") == 0
    assert db.scalar("select count(*) from public.service_plans where code = 'follow_up'") == 1
    # nor can a session be written with it and no parent, whoever writes it
    with pytest.raises(psycopg.Error) as err:
        db.execute(
            "insert into public.sessions (customer_id, plan_code, session_type, duration_type, planned_minutes, "
            "price_cents) values (%s, 'follow_up', 'chat', 'micro', 10, 0)",
            (customer,),
        )
    assert err.value.sqlstate == INVALID


# ---------------------------------------------------------------------------------------------
# Who may ask, about what, and when
# ---------------------------------------------------------------------------------------------
def test_only_the_customer_of_the_session_asks(db: Db) -> None:
    t = delivered(db)
    other_customer, other_mechanic, admin = make_customer(db), make_mechanic(db), make_admin(db)
    before = counts(db)
    assert ask_error(db, other_customer, t.session) == NOT_FOUND
    assert ask_error(db, other_mechanic, t.session) == NOT_FOUND
    assert ask_error(db, admin, t.session) == NOT_FOUND
    assert ask_error(db, t.mechanic, t.session) == NOT_ALLOWED  # the mechanic asking on its own session
    assert ask_error(db, t.customer, uuid.uuid4()) == NOT_FOUND
    assert counts(db) == before
    # the session exists and its customer may ask
    assert ask(db, t.customer, t.session)["status"] == "filed"
    # anon may not call it at all
    with db.as_role("anon", {"role": "anon"}), pytest.raises(psycopg.Error) as err:
        db.rpc("ask_follow_up", p_session_id=t.session, p_question=QUESTION)
    assert err.value.sqlstate == "42501"


def test_only_a_delivered_session_within_the_window(db: Db) -> None:
    mechanic = make_mechanic(db)
    # pending and live sessions
    customer = make_customer(db)
    ids = request_free(db, customer)
    before = counts(db)
    assert ask_error(db, customer, ids["session_id"]) == NOT_AVAILABLE
    accept(db, mechanic, ids["request_id"])
    start_both(db, ids["session_id"])
    assert ask_error(db, customer, ids["session_id"]) == NOT_AVAILABLE
    # ended without evidence: unverified
    with db.as_user(mechanic):
        assert db.rpc("end_session", p_session_id=ids["session_id"])["delivery"] == "unverified"
    assert ask_error(db, customer, ids["session_id"]) == NOT_AVAILABLE
    # cancelled
    customer2 = make_customer(db)
    ids2 = request_free(db, customer2)
    with db.as_user(customer2):
        db.rpc("cancel_request", p_request_id=ids2["request_id"])
    assert ask_error(db, customer2, ids2["session_id"]) == NOT_AVAILABLE
    assert counts(db)[0] == before[0] == 0

    # delivered, but the window closed (follow_ups.window after it ended)
    t = delivered(db, mechanic=mechanic)
    db.execute(
        "update public.sessions set started_at = started_at - interval '8 days', "
        "ended_at = ended_at - interval '8 days' where id = %s",
        (t.session,),
    )
    before = counts(db)
    assert ask_error(db, t.customer, t.session) == WINDOW_CLOSED
    assert counts(db) == before
    set_setting_interval(db, "follow_ups.window", "9 days")
    assert ask(db, t.customer, t.session)["status"] == "filed"


def set_setting_interval(db: Db, key: str, value: str) -> None:
    db.execute("update private.settings set value = to_jsonb(%s::text) where key = %s", (value, key))


# ---------------------------------------------------------------------------------------------
# Gaming the free follow-up
# ---------------------------------------------------------------------------------------------
def test_a_follow_up_of_a_follow_up_counts_against_the_root(db: Db) -> None:
    t = delivered(db)
    first = ask(db, t.customer, t.session)
    req = _request_of(db, first["session_id"])
    accept(db, t.mechanic, req["id"])
    deliver(db, first["session_id"])
    # the follow-up is a delivered session of the thread: it may be asked about, not for free
    chained = ask(db, t.customer, first["session_id"])
    assert chained["status"] == "payment_required" and chained["root_session_id"] == str(t.session)
    assert chained["parent_session_id"] == first["session_id"]


def test_cancelling_before_anyone_took_it_gives_the_free_one_back_but_not_after(db: Db) -> None:
    t = delivered(db)
    first = ask(db, t.customer, t.session)
    with db.as_user(t.customer):
        db.rpc("cancel_request", p_request_id=first["request_id"])
    # nobody took it: the customer got nothing, the free one is back
    again = ask(db, t.customer, t.session)
    assert again["free"] is True
    # taken by the mechanic, then cancelled (by an admin: a customer cannot cancel a taken one): it counts
    accept(db, t.mechanic, again["request_id"])
    db.execute("select private.cancel_session(%s, 'cancelled by an admin', now(), 'admin')", (again["session_id"],))
    assert db.scalar("select status::text from public.sessions where id = %s", (again["session_id"],)) == "cancelled"
    assert ask(db, t.customer, t.session)["status"] == "payment_required"


def test_open_request_cap_applies_to_follow_ups(db: Db) -> None:
    t = delivered(db)
    set_setting(db, "limits.free_sessions_per_account", 10)
    request_free(db, t.customer)
    request_free(db, t.customer)
    before = counts(db)
    assert ask_error(db, t.customer, t.session) == LIMIT
    assert counts(db) == before
    assert db.scalar("select private.rpc_rate_class('ask_follow_up')") == "request"


# ---------------------------------------------------------------------------------------------
# Hostile input: a coded error, nothing written
# ---------------------------------------------------------------------------------------------
def test_hostile_input(db: Db) -> None:
    t = delivered(db)
    other = delivered(db)
    own = session_file(db, t.session, t.customer, "a.jpg")
    elsewhere = session_file(db, other.session, other.customer, "b.jpg")
    before = counts(db)
    cases: list[tuple[Any, Any, Any, str]] = [
        (None, QUESTION, None, INVALID),
        (t.session, None, None, INVALID),
        (t.session, "", None, INVALID),
        (t.session, "   \n ", None, INVALID),
        (t.session, "ab", None, INVALID),
        (t.session, "x" * 2001, None, INVALID),
        (t.session, QUESTION, [own] * 2, INVALID),
        (t.session, QUESTION, [f"sessions/{t.session}/{i}.jpg" for i in range(11)], INVALID),
        (t.session, QUESTION, [None], BAD_PHOTO),
        (t.session, QUESTION, [""], BAD_PHOTO),
        (t.session, QUESTION, ["x" * 1025], BAD_PHOTO),
        (t.session, QUESTION, [elsewhere], BAD_PHOTO),  # a file of another session
        (t.session, QUESTION, [f"sessions/{t.session}/missing.jpg"], BAD_PHOTO),
        (t.session, QUESTION, [f"sessions/{t.session}/../{other.session}/b.jpg"], BAD_PHOTO),
        (t.session, QUESTION, [f"intakes/{uuid.uuid4()}/x.jpg"], BAD_PHOTO),
    ]
    for session, question, photos, code in cases:
        assert ask_error(db, t.customer, session, question, photos) == code, (question, photos)
    assert counts(db) == before
    # the same call with good input passes (the photo of its own session)
    assert ask(db, t.customer, t.session, QUESTION, [own])["status"] == "filed"


# ---------------------------------------------------------------------------------------------
# Who reads follow-ups and their photos
# ---------------------------------------------------------------------------------------------
def test_rls_per_persona(db: Db) -> None:
    t = delivered(db)
    photo = session_file(db, t.session, t.mechanic, "rotor.jpg")
    hidden = session_file(db, t.session, t.mechanic, "other.jpg")
    out = ask(db, t.customer, t.session, QUESTION, [photo])
    taker = make_mechanic(db, name="Taker")
    other_customer, other_mechanic, admin = make_customer(db), make_mechanic(db, name="Outsider"), make_admin(db)
    fid = out["follow_up_id"]
    assert db.scalar("select count(*) from public.follow_ups where id = %s", (fid,)) == 1  # it exists

    def sees(user: uuid.UUID) -> bool:
        with db.as_user(user):
            return bool(db.scalar("select count(*) from public.follow_ups where id = %s", (fid,)))

    assert sees(t.customer) and sees(t.mechanic) and sees(admin)
    assert not sees(other_customer) and not sees(other_mechanic) and not sees(taker)
    with db.as_role("anon", {"role": "anon"}), pytest.raises(psycopg.Error) as err:
        db.execute("select count(*) from public.follow_ups")
    assert err.value.sqlstate == "42501"
    with db.as_user(t.customer), pytest.raises(psycopg.Error) as err:
        db.execute("update public.follow_ups set free = true where id = %s", (fid,))
    assert err.value.sqlstate == "42501"

    # another mechanic takes it after the window: it reads the follow-up and the one photo asked
    # about, not the parent's other files
    req = _request_of(db, out["session_id"])
    assert (
        db.scalar("select private.assign_request(%s, %s, %s) ->> 'status'", (req["id"], taker, req["broadcast_at"]))
        == "accepted"
    )
    assert sees(taker)

    def files(user: uuid.UUID) -> set[str]:
        with db.as_user(user):
            return {
                r["name"]
                for r in db.all(
                    "select name from storage.objects where bucket_id = 'session-files' and name like %s",
                    (f"sessions/{t.session}/%",),
                )
            }

    assert files(taker) == {photo}
    assert files(t.customer) == {photo, hidden}
    assert files(other_mechanic) == set()


# ---------------------------------------------------------------------------------------------
# The race for the one free follow-up
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def race_world(fresh_url: str) -> Iterator[tuple[Db, list[psycopg.Connection]]]:
    conn = psycopg.connect(fresh_url, prepare_threshold=None)
    conn.execute("select 1")
    conns = [psycopg.connect(fresh_url, autocommit=True, prepare_threshold=None) for _ in range(2)]
    yield Db(conn), conns
    for c in conns:
        c.close()
    conn.close()


def test_two_concurrent_asks_get_one_free_and_one_payment_required(
    race_world: tuple[Db, list[psycopg.Connection]],
) -> None:
    db, conns = race_world
    t = delivered(db)
    db.conn.commit()
    results = race(
        [
            (c, t.customer, "select public.ask_follow_up(%s, %s)", (t.session, f"{QUESTION} {i}"))
            for i, c in enumerate(conns)
        ]
    )
    assert all(kind == "ok" for kind, _ in results), results
    assert Counter(v["status"] for _, v in results) == Counter({"filed": 1, "payment_required": 1})
    assert db.scalar("select count(*) from public.follow_ups where root_session_id = %s and free", (t.session,)) == 1
    assert db.scalar("select count(*) from public.sessions where parent_session_id = %s", (t.session,)) == 1


# ---------------------------------------------------------------------------------------------
# The paid follow-up through create_checkout
# ---------------------------------------------------------------------------------------------
def _pending(pay: Pay) -> tuple[Any, dict[str, Any]]:
    t = delivered(pay.db)
    first = ask(pay.db, t.customer, t.session)
    accept(pay.db, t.mechanic, first["request_id"])
    deliver(pay.db, first["session_id"])
    second = ask(pay.db, t.customer, t.session, "And the squeak from the rear?")
    pay.commit()
    assert second["status"] == "payment_required"
    return t, second


def test_paid_follow_up_through_stripe_checkout_and_webhook(pay: Pay) -> None:
    t, pending = _pending(pay)
    status, out = call(
        create_checkout, body={**URLS, "follow_up_id": pending["follow_up_id"]}, headers=pay.token(t.customer)
    )
    assert status == 200 and out["mode"] == "stripe" and out["price_cents"] == 299, out
    assert out["follow_up_id"] == pending["follow_up_id"]
    booking = pay.booking(out["booking_id"])
    assert booking["follow_up_id"] == uuid.UUID(pending["follow_up_id"]) and booking["plan_code"] == "follow_up"
    assert booking["preferred_mechanic_id"] == t.mechanic
    sent = pay.fake.params(pay.fake.calls_to("POST", "/v1/checkout/sessions")[-1])
    assert sent["line_items"]["0"]["price_data"]["unit_amount"] == "299"
    assert sent["metadata"]["follow_up_id"] == pending["follow_up_id"]
    # a retry reuses the open checkout
    status, again = call(
        create_checkout, body={**URLS, "follow_up_id": pending["follow_up_id"]}, headers=pay.token(t.customer)
    )
    assert status == 200 and again["booking_id"] == out["booking_id"] and again["url"] == out["url"]

    pi = "pi_" + uuid.uuid4().hex[:20]
    res = pay.deliver(pay.events.completed(booking["stripe_checkout_session_id"], str(booking["id"]), 299, pi))
    assert res["outcome"] == "paid", res
    fu = pay.row("select * from public.follow_ups where id = %s", (pending["follow_up_id"],))
    assert fu is not None and fu["status"] == "filed" and fu["price_cents"] == 299 and fu["free"] is False
    s = pay.row("select * from public.sessions where id = %s", (fu["session_id"],))
    assert s is not None and s["price_cents"] == 299 and s["parent_session_id"] == t.session
    assert pay.booking(booking["id"])["status"] == "paid"
    assert pay.val("select session_id from public.payments where booking_id = %s", (booking["id"],)) == s["id"]
    req = pay.row("select preferred_mechanic_id from public.session_requests where session_id = %s", (s["id"],))
    assert req is not None and req["preferred_mechanic_id"] == t.mechanic
    assert (
        pay.val(
            "select count(*) from public.crm_interactions where kind = 'follow_up_asked' and subject_id = %s",
            (fu["id"],),
        )
        == 1
    )
    pay.assert_books_balance()
    # paid and filed: it cannot be paid again
    status, err = call(
        create_checkout, body={**URLS, "follow_up_id": pending["follow_up_id"]}, headers=pay.token(t.customer)
    )
    assert status == 409, err


def test_paid_follow_up_with_credit_and_who_may_pay(pay: Pay) -> None:
    t, pending = _pending(pay)
    other = pay.customer("Olive Other")
    # someone else's follow-up does not exist for them; a follow-up with extra fields is refused
    status, _ = call(create_checkout, body={**URLS, "follow_up_id": pending["follow_up_id"]}, headers=pay.token(other))
    assert status == 404
    status, _ = call(
        create_checkout,
        body={**URLS, "follow_up_id": pending["follow_up_id"], "intake_id": pending["intake_id"]},
        headers=pay.token(t.customer),
    )
    assert status == 400
    assert pay.val("select count(*) from public.bookings where follow_up_id = %s", (pending["follow_up_id"],)) == 0

    pay.grant_credit(t.customer, 500)
    status, out = call(
        create_checkout, body={**URLS, "follow_up_id": pending["follow_up_id"]}, headers=pay.token(t.customer)
    )
    assert status == 200 and out["mode"] == "credit" and out["credit_balance_cents"] == 201, out
    fu = pay.row("select * from public.follow_ups where id = %s", (pending["follow_up_id"],))
    assert fu is not None and fu["status"] == "filed" and str(fu["session_id"]) == out["session_id"]
    assert pay.val("select price_cents from public.sessions where id = %s", (out["session_id"],)) == 299
    pay.assert_books_balance()


def test_checkout_after_the_window_is_refused(pay: Pay) -> None:
    t, pending = _pending(pay)
    pay.db.execute(
        "update public.sessions set started_at = started_at - interval '8 days', "
        "ended_at = ended_at - interval '8 days' where id = %s",
        (t.session,),
    )
    pay.commit()
    status, err = call(
        create_checkout, body={**URLS, "follow_up_id": pending["follow_up_id"]}, headers=pay.token(t.customer)
    )
    assert status == 409 and "window" in str(err), err
    assert pay.val("select count(*) from public.bookings where follow_up_id = %s", (pending["follow_up_id"],)) == 0


def test_paid_follow_up_that_can_no_longer_be_filed_is_refunded(pay: Pay) -> None:
    t, pending = _pending(pay)
    status, out = call(
        create_checkout, body={**URLS, "follow_up_id": pending["follow_up_id"]}, headers=pay.token(t.customer)
    )
    assert status == 200 and out["mode"] == "stripe", out
    booking = pay.booking(out["booking_id"])
    # between checkout and payment the customer filled its open requests
    set_setting(pay.db, "limits.free_sessions_per_account", 10)
    request_free(pay.db, t.customer)
    request_free(pay.db, t.customer)
    pay.commit()
    pi = "pi_" + uuid.uuid4().hex[:20]
    res = pay.deliver(pay.events.completed(booking["stripe_checkout_session_id"], str(booking["id"]), 299, pi))
    assert res["outcome"] == "unfulfilled", res
    row = pay.booking(booking["id"])
    assert row["status"] == "unfulfilled" and row["session_id"] is None and "open requests" in row["failure_reason"]
    refund = pay.row(
        "select r.* from public.refunds r join public.payments p on p.id = r.payment_id where p.booking_id = %s",
        (booking["id"],),
    )
    assert refund is not None and (refund["amount_cents"], refund["origin"]) == (299, "unfulfilled")
    fu = pay.row("select status, session_id from public.follow_ups where id = %s", (pending["follow_up_id"],))
    assert fu == {"status": "pending_payment", "session_id": None}
    pay.assert_books_balance()


def test_the_follow_up_plan_cannot_be_bought_through_a_plain_checkout(pay: Pay) -> None:
    customer = pay.customer()
    pay.checkout(customer, plan="follow_up", expect=404)
    assert pay.val("select count(*) from public.bookings where customer_id = %s", (customer,)) == 0


def test_a_follow_up_buys_the_follow_up_offer_it_was_shown(db: Db) -> None:
    t = delivered(db)
    rec = recs(db, t.session)["follow_up"]["id"]
    show(db, t.customer, rec)
    out = ask(db, t.customer, t.session)
    row = db.one("select status, purchase_subject_id from public.recommendations where id = %s", (rec,))
    assert row == {"status": "purchased", "purchase_subject_id": uuid.UUID(out["follow_up_id"])}
    # a follow-up asked without having seen the offer buys nothing
    t2 = delivered(db)
    rec2 = recs(db, t2.session)["follow_up"]["id"]
    ask(db, t2.customer, t2.session)
    assert db.scalar("select status from public.recommendations where id = %s", (rec2,)) == "new"
