"""Recommendations: the rules as data and the one evaluator (each starting rule, once per session and
rule), the funnel RPCs per persona, the purchase attribution (credit and card bookings, follow-ups,
workshop appointments) and its abuse, RLS, hostile input, and the races."""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import psycopg

from tests.support.appointments import at, day, starts_arg
from tests.support.delivery import deliver
from tests.support.factories import (
    accept,
    make_admin,
    make_customer,
    make_intake,
    make_mechanic,
    make_vehicle,
    request_free,
)
from tests.support.harness import Db
from tests.support.journey_recommendations import crm, delivered, recs, show, submit_summary, verified_shop
from tests.support.personas import race
from tests.support.reviews import session_between

PARTS = [
    {"name": "Brake pads", "part_number": "BP-1", "estimated_cost_cents": 8000},
    {"name": "Rotor", "part_number": None, "estimated_cost_cents": 12000},
]


def _people(db: Db) -> tuple[uuid.UUID, uuid.UUID]:
    return make_customer(db), make_mechanic(db)


def _grant(db: Db, customer: uuid.UUID, cents: int) -> None:
    admin = make_admin(db)
    with db.as_user(admin):
        db.rpc("admin_grant_credit", p_customer_id=customer, p_amount_cents=cents, p_reason="goodwill")


def _credit_checkout(db: Db, customer: uuid.UUID, plan: str) -> dict[str, Any]:
    # the purchases here are what is tested, not the cap on open requests
    db.execute("update private.settings set value = '20' where key = 'limits.open_requests_per_customer'")
    intake = make_intake(db, customer)
    out: dict[str, Any] = db.scalar(
        "select private.prepare_checkout(%s, %s, %s, null, null, false)", (customer, plan, intake)
    )
    return out


# ---------------------------------------------------------------------------------------------
# The rules and the evaluator
# ---------------------------------------------------------------------------------------------
def test_a_delivered_micro_session_through_the_lifecycle_gets_a_follow_up_and_a_video_upgrade(db: Db) -> None:
    customer, mechanic = _people(db)
    ids = request_free(db, customer)
    accept(db, mechanic, ids["request_id"])
    deliver(db, ids["session_id"], minutes=10)  # a 5-minute free session that ran 10: to its cap
    got = recs(db, ids["session_id"])
    assert set(got) == {"follow_up", "premium_upgrade"}
    up, fu = got["premium_upgrade"], got["follow_up"]
    price = db.one("select price_cents, currency from public.service_plans where code = 'video15'")
    assert price is not None
    assert (up["plan_code"], up["price_cents"], up["currency"]) == ("video15", price["price_cents"], price["currency"])
    assert up["deep_link"] == f"/sessions/{ids['session_id']}/upgrade?plan=video15"
    assert up["data"]["minutes_allowed"] == 5 and up["data"]["minutes_used"] >= 5
    assert (fu["plan_code"], fu["price_cents"], fu["deep_link"]) == (
        None,
        None,
        f"/sessions/{ids['session_id']}/follow-up",
    )
    assert all(r["status"] == "new" and r["customer_id"] == customer for r in got.values())
    assert crm(db, customer, "recommendation_shown") == []  # made, not yet shown


def test_a_micro_session_that_ended_before_its_cap_gets_no_upgrade(db: Db) -> None:
    customer, mechanic = _people(db)
    ids = request_free(db, customer)
    accept(db, mechanic, ids["request_id"])
    deliver(db, ids["session_id"], minutes=3)  # delivered (≥ 2 minutes), 3 of its 5 minutes
    assert set(recs(db, ids["session_id"])) == {"follow_up"}


def test_a_micro_session_ended_by_the_time_cap_counts_as_ran_to_its_cap(db: Db) -> None:
    customer, mechanic = _people(db)
    session = delivered(db, customer, mechanic, plan="micro")
    assert "premium_upgrade" in recs(db, session)
    short = delivered(db, customer, mechanic, plan="micro")
    db.execute("delete from public.recommendations where session_id = %s", (short,))
    db.execute(
        "update public.sessions set duration_minutes = 1, cancel_reason = 'time cap reached' where id = %s", (short,)
    )
    db.execute("select private.recommendations_evaluate(%s, 'session_delivered')", (short,))
    assert "premium_upgrade" in recs(db, short)
    db.execute("delete from public.recommendations where session_id = %s", (short,))
    db.execute("update public.sessions set cancel_reason = null where id = %s", (short,))
    db.execute("select private.recommendations_evaluate(%s, 'session_delivered')", (short,))
    assert set(recs(db, short)) == {"follow_up"}


def test_an_unverified_or_cancelled_session_gets_nothing(db: Db) -> None:
    customer, mechanic = _people(db)
    unverified = delivered(db, customer, mechanic, plan="free", delivery="unverified")
    submit_summary(db, unverified, urgency="urgent", parts=PARTS)
    assert recs(db, unverified) == {}
    # a session that has not ended: nothing, whatever the event
    waiting = session_between(db, customer, mechanic, status="waiting")
    for event in ("session_delivered", "summary_submitted"):
        db.execute("select private.recommendations_evaluate(%s, %s)", (waiting, event))
    assert recs(db, waiting) == {}


def test_an_urgent_chat_lists_the_verified_workshops_near_the_customer(db: Db) -> None:
    customer, mechanic = _people(db)
    db.execute("update public.profiles set city = 'Toronto', postal_code = 'M5V 2T6' where id = %s", (customer,))
    far_area = verified_shop(db, "Aardvark Auto", "Toronto", "M4C 1A1")
    same_area = verified_shop(db, "Zed Garage", " toronto ", "M5V 3L9")
    verified_shop(db, "Pending Garage", "Toronto", "M5V 1A1", status="pending")
    verified_shop(db, "Ottawa Motors", "Ottawa", "K1P 1A1")
    session = delivered(db, customer, mechanic, plan="chat10")
    assert set(recs(db, session)) == {"follow_up"}  # the urgency is read from the summary
    submit_summary(db, session, urgency="soon")
    assert set(recs(db, session)) == {"follow_up"}
    submit_summary(db, session, urgency="unsafe_to_drive")
    visit = recs(db, session)["workshop_visit"]
    listed = [w["workshop_id"] for w in visit["data"]["workshops"]]
    assert listed == [str(same_area), str(far_area)]  # the customer's postal area first; verified ones in its city
    assert visit["data"]["workshops"][0]["same_postal_area"] is True
    assert "phone" not in visit["data"]["workshops"][0] and "address_line" not in visit["data"]["workshops"][0]
    assert visit["data"]["urgency"] == "unsafe_to_drive" and visit["plan_code"] is None
    assert visit["deep_link"] == f"/sessions/{session}/workshops"


def test_the_workshop_list_is_capped_by_the_setting(db: Db) -> None:
    customer, mechanic = _people(db)
    db.execute("update public.profiles set city = 'Toronto' where id = %s", (customer,))
    for i in range(4):
        verified_shop(db, f"Garage {i}", "Toronto")
    db.execute("update private.settings set value = '2' where key = 'recommendations.max_workshops'")
    session = delivered(db, customer, mechanic, plan="chat10")
    submit_summary(db, session, urgency="urgent")
    assert [w["name"] for w in recs(db, session)["workshop_visit"]["data"]["workshops"]] == ["Garage 0", "Garage 1"]


def test_an_urgent_chat_without_a_workshop_near_gets_no_workshop_visit(db: Db) -> None:
    customer, mechanic = _people(db)
    verified_shop(db, "Ottawa Motors", "Ottawa")
    session = delivered(db, customer, mechanic, plan="chat10")
    submit_summary(db, session, urgency="urgent")  # the customer gave no city
    assert "workshop_visit" not in recs(db, session)
    # once the customer gives its city, the rule fires on the next submitted version
    db.execute("update public.profiles set city = 'Ottawa' where id = %s", (customer,))
    submit_summary(db, session, urgency="urgent")
    assert "workshop_visit" in recs(db, session)


def test_a_diagnostic_with_parts_gets_a_maintenance_plan_and_one_without_does_not(db: Db) -> None:
    customer, mechanic = _people(db)
    without = delivered(db, customer, mechanic, plan="diagnostic")
    submit_summary(db, without, parts=[])
    assert "maintenance_plan" not in recs(db, without)
    session = delivered(db, customer, mechanic, plan="diagnostic")
    submit_summary(db, session, parts=PARTS)
    plan = recs(db, session)["maintenance_plan"]
    assert plan["data"]["parts"] == PARTS and plan["data"]["estimated_total_cents"] == 20000
    assert plan["price_cents"] is None and plan["deep_link"] == f"/sessions/{session}/maintenance-plan"
    # a video session with parts: the rule is for diagnostics
    video = delivered(db, customer, mechanic, plan="video15")
    submit_summary(db, video, parts=PARTS)
    assert "maintenance_plan" not in recs(db, video)


def test_each_rule_makes_its_offer_once_per_session(db: Db) -> None:
    customer, mechanic = _people(db)
    session = delivered(db, customer, mechanic, plan="diagnostic")
    for _ in range(3):
        submit_summary(db, session, parts=PARTS)
        db.execute("select private.recommendations_evaluate(%s, 'session_delivered')", (session,))
    counts = db.all(
        "select rule_code, count(*) as n from public.recommendations where session_id = %s group by rule_code",
        (session,),
    )
    assert sorted((r["rule_code"], r["n"]) for r in counts) == [
        ("delivered_follow_up", 1),
        ("diagnostic_parts_maintenance_plan", 1),
    ]
    assert (
        db.error(
            "insert into public.recommendations (customer_id, session_id, rule_code, kind, title, description, "
            "deep_link, expires_at) select customer_id, session_id, rule_code, kind, title, description, "
            "deep_link, expires_at from public.recommendations where session_id = %s",
            (session,),
        ).sqlstate
        == "23505"
    )


def test_a_rule_added_as_a_row_applies_without_code_and_an_inactive_one_does_not(db: Db) -> None:
    customer, mechanic = _people(db)
    db.execute(
        "insert into public.recommendation_rules (code, event, session_types, urgencies, kind, title, "
        "description, plan_code, deep_link_template) values ('soon_video_upgrade', 'summary_submitted', "
        "'{chat}', '{soon}', 'premium_upgrade', 'See it on video', 'Show a mechanic on video.', 'video15', "
        "'/sessions/{session_id}/upgrade')"
    )
    db.execute("update public.recommendation_rules set active = false where code = 'delivered_follow_up'")
    db.execute("update public.service_plans set price_cents = 3499 where code = 'video15'")
    session = delivered(db, customer, mechanic, plan="chat10")
    submit_summary(db, session, urgency="soon")
    got = recs(db, session)
    assert set(got) == {"premium_upgrade"}
    assert got["premium_upgrade"]["price_cents"] == 3499  # the catalog's price at the time of the offer
    assert got["premium_upgrade"]["rule_code"] == "soon_video_upgrade"
    # an inactive plan makes no offer
    db.execute("update public.service_plans set active = false where code = 'video15'")
    other = delivered(db, customer, mechanic, plan="chat10")
    submit_summary(db, other, urgency="soon")
    assert recs(db, other) == {}


def test_rule_rows_are_checked(db: Db) -> None:
    base = (
        "insert into public.recommendation_rules (code, event, kind, title, description, deep_link_template, "
        "plan_code, urgencies) values (%s, %s, %s, 't', 'd', %s, %s, %s)"
    )
    bad = [
        ("x_bad_event", "session_started", "follow_up", "/a", None, None),
        ("x_bad_kind", "session_delivered", "discount", "/a", None, None),
        ("x_bad_link", "session_delivered", "follow_up", "https://evil.test/", None, None),
        ("x_bad_urgency", "session_delivered", "follow_up", "/a", None, "{panic}"),
        ("x_no_plan", "session_delivered", "premium_upgrade", "/a", "platinum", None),
        ("X bad code", "session_delivered", "follow_up", "/a", None, None),
    ]
    for row in bad:
        assert db.error(base, row).sqlstate in ("23514", "23503"), row
    assert db.scalar("select count(*) from public.recommendation_rules where code like 'x_%%'") == 0
    # a price is never typed into a rule: there is no column for it
    assert (
        db.scalar(
            "select count(*) from information_schema.columns where table_name = 'recommendation_rules' "
            "and column_name like '%%price%%'"
        )
        == 0
    )


def test_the_new_offer_is_announced_on_the_session_topic(db: Db) -> None:
    customer, mechanic = _people(db)
    before = db.scalar("select count(*) from realtime.messages where event = 'recommendation'")
    session = delivered(db, customer, mechanic, plan="chat10")
    sent = db.all(
        "select payload from realtime.messages where event = 'recommendation' and topic = %s", (f"session:{session}",)
    )
    assert (
        len(sent) == 1
        and db.scalar("select count(*) from realtime.messages where event = 'recommendation'") == before + 1
    )
    assert set(sent[0]["payload"]) >= {"recommendation_id", "session_id", "kind", "title"}
    db.execute("select private.recommendations_evaluate(%s, 'session_delivered')", (session,))
    assert (
        db.scalar(
            "select count(*) from realtime.messages where event = 'recommendation' and topic = %s",
            (f"session:{session}",),
        )
        == 1
    )


# ---------------------------------------------------------------------------------------------
# Shown and clicked
# ---------------------------------------------------------------------------------------------
def test_shown_and_clicked_are_recorded_once_and_a_click_implies_shown(db: Db) -> None:
    customer, mechanic = _people(db)
    session = delivered(db, customer, mechanic, plan="chat10")
    rec = recs(db, session)["follow_up"]["id"]
    out = show(db, customer, rec, click=True)  # clicked before any shown
    assert out["status"] == "clicked" and out["shown_at"] is not None and out["clicked_at"] is not None
    first = db.one("select shown_at, clicked_at from public.recommendations where id = %s", (rec,))
    for _ in range(5):  # looping does not inflate anything
        show(db, customer, rec)
        show(db, customer, rec, click=True)
    assert db.one("select shown_at, clicked_at from public.recommendations where id = %s", (rec,)) == first
    shown, clicked = crm(db, customer, "recommendation_shown"), crm(db, customer, "recommendation_clicked")
    assert len(shown) == 1 and len(clicked) == 1
    assert shown[0]["subject_id"] == rec and shown[0]["session_id"] == session
    assert clicked[0]["data"] == {"kind": "follow_up", "rule_code": "delivered_follow_up"}


def test_only_the_customer_marks_its_own(db: Db) -> None:
    customer, mechanic = _people(db)
    other, other_mech, admin = make_customer(db), make_mechanic(db), make_admin(db)
    session = delivered(db, customer, mechanic, plan="chat10")
    rec = recs(db, session)["follow_up"]["id"]
    for who in (other, mechanic, other_mech, admin):
        with db.as_user(who):
            assert db.rpc_error("recommendation_shown", p_id=rec) == "AD004"
            assert db.rpc_error("recommendation_clicked", p_id=rec) == "AD004"
    with db.as_anon():
        assert db.rpc_error("recommendation_shown", p_id=rec) == "42501"
        assert db.rpc_error("recommendation_clicked", p_id=rec) == "42501"
    # the row exists and nothing changed
    assert db.one("select status, shown_at from public.recommendations where id = %s", (rec,)) == {
        "status": "new",
        "shown_at": None,
    }
    assert db.scalar("select count(*) from public.crm_interactions where kind like 'recommendation_%%'") == 0


def test_hostile_input_gets_a_coded_error_and_writes_nothing(db: Db) -> None:
    customer, mechanic = _people(db)
    delivered(db, customer, mechanic, plan="chat10")
    with db.as_user(customer):
        for name in ("recommendation_shown", "recommendation_clicked"):
            assert db.rpc_error(name, p_id=None) == "AD001"
            assert db.rpc_error(name, p_id=uuid.uuid4()) == "AD004"
            assert db.rpc_error(name, p_id="not-a-uuid") == "22P02"
    assert db.scalar("select count(*) from public.recommendations where status <> 'new'") == 0
    assert db.scalar("select count(*) from public.crm_interactions where kind like 'recommendation_%%'") == 0
    assert db.error("select private.recommendations_evaluate(gen_random_uuid(), 'session_started')").sqlstate == "AD001"
    assert (
        db.error(
            "select private.recommendations_mark_purchased(%s, 'discount', null, gen_random_uuid())", (customer,)
        ).sqlstate
        == "AD001"
    )


def test_an_expired_offer_is_neither_shown_nor_read(db: Db) -> None:
    customer, mechanic = _people(db)
    session = delivered(db, customer, mechanic, plan="chat10")
    rec = recs(db, session)["follow_up"]["id"]
    db.execute("update public.recommendations set expires_at = now() - interval '1 second' where id = %s", (rec,))
    with db.as_user(customer):
        assert db.rpc_error("recommendation_shown", p_id=rec) == "AD225"
        assert db.rpc_error("recommendation_clicked", p_id=rec) == "AD225"
        assert db.scalar("select count(*) from public.recommendations") == 0
    assert db.one("select status from public.recommendations where id = %s", (rec,)) == {"status": "new"}
    assert crm(db, customer, "recommendation_shown") == []
    # one shown before it expired stays readable as shown, and a repeated shown is still idempotent
    db.execute("update public.recommendations set expires_at = now() + interval '1 day' where id = %s", (rec,))
    show(db, customer, rec)
    db.execute("update public.recommendations set expires_at = now() - interval '1 second' where id = %s", (rec,))
    assert show(db, customer, rec)["status"] == "shown"
    with db.as_user(customer):
        assert db.rpc_error("recommendation_clicked", p_id=rec) == "AD225"
    ttl = db.scalar("select private.setting_interval('recommendations.ttl')")
    fresh = recs(db, delivered(db, customer, mechanic, plan="chat10"))["follow_up"]
    assert fresh["expires_at"] - fresh["created_at"] == ttl


# ---------------------------------------------------------------------------------------------
# Who reads what
# ---------------------------------------------------------------------------------------------
def test_rls_per_persona(db: Db) -> None:
    customer, mechanic = _people(db)
    other, other_mech, admin = make_customer(db), make_mechanic(db), make_admin(db)
    session = delivered(db, customer, mechanic, plan="chat10")
    delivered(db, other, other_mech, plan="chat10")
    total = db.scalar("select count(*) from public.recommendations")
    rules = db.scalar("select count(*) from public.recommendation_rules")
    assert total == 2 and rules >= 4
    with db.as_user(customer):
        assert [r["session_id"] for r in db.all("select session_id from public.recommendations")] == [session]
        assert db.scalar("select count(*) from public.recommendation_rules") == 0
        assert db.error("update public.recommendations set status = 'purchased'").sqlstate == "42501"
        assert (
            db.error(
                "insert into public.recommendations (customer_id, session_id, rule_code, kind, title, "
                "description, deep_link, expires_at) values (%s, %s, 'delivered_follow_up', 'follow_up', "
                "'t', 'd', '/x', now())",
                (customer, session),
            ).sqlstate
            == "42501"
        )
    for who in (other, mechanic, other_mech):
        with db.as_user(who):
            assert db.scalar("select count(*) from public.recommendations where session_id = %s", (session,)) == 0
            assert db.scalar("select count(*) from public.recommendation_rules") == 0
            assert db.error("update public.recommendation_rules set title = 'x'").sqlstate == "42501"
    with db.as_user(admin):
        assert db.scalar("select count(*) from public.recommendations") == total
        assert db.scalar("select count(*) from public.recommendation_rules") == rules
        assert db.error("update public.recommendations set status = 'purchased'").sqlstate == "42501"
        assert (
            db.error(
                "insert into public.recommendation_rules (code, event, kind, title, description, "
                "deep_link_template) values ('x_admin', 'session_delivered', 'follow_up', 't', 'd', '/a')"
            ).sqlstate
            == "42501"
        )
    with db.as_anon():
        assert db.error("select * from public.recommendations").sqlstate == "42501"
        assert db.error("select * from public.recommendation_rules").sqlstate == "42501"
    # the hidden rows exist
    assert db.scalar("select count(*) from public.recommendations where session_id = %s", (session,)) == 1


def test_an_expired_offer_is_hidden_from_the_customer_unless_bought(db: Db) -> None:
    customer, mechanic = _people(db)
    session = delivered(db, customer, mechanic, plan="free")
    got = recs(db, session)
    db.execute(
        "update public.recommendations set expires_at = now() - interval '1 second' where session_id = %s", (session,)
    )
    db.execute(
        "update public.recommendations set status = 'purchased', shown_at = now(), purchased_at = now(), "
        "purchase_subject_id = gen_random_uuid() where id = %s",
        (got["premium_upgrade"]["id"],),
    )
    with db.as_user(customer):
        assert [r["kind"] for r in db.all("select kind from public.recommendations")] == ["premium_upgrade"]
    assert db.scalar("select count(*) from public.recommendations where session_id = %s", (session,)) == 2


# ---------------------------------------------------------------------------------------------
# Purchases
# ---------------------------------------------------------------------------------------------
def test_a_credit_booking_of_the_plan_after_it_was_shown_buys_it(db: Db) -> None:
    customer, mechanic = _people(db)
    session = delivered(db, customer, mechanic, plan="free")
    up = recs(db, session)["premium_upgrade"]["id"]
    show(db, customer, up, click=True)
    _grant(db, customer, 10000)
    out = _credit_checkout(db, customer, "video15")
    assert out["mode"] == "credit"
    row = db.one("select status, purchase_subject_id, purchased_at from public.recommendations where id = %s", (up,))
    assert (
        row is not None and row["status"] == "purchased" and row["purchase_subject_id"] == uuid.UUID(out["booking_id"])
    )
    bought = crm(db, customer, "recommendation_purchased")
    assert len(bought) == 1 and bought[0]["subject_id"] == up and bought[0]["session_id"] == session
    assert bought[0]["data"]["booking_id"] == out["booking_id"] and bought[0]["data"]["method"] == "credit"
    # a second booking of the plan buys nothing more
    _credit_checkout(db, customer, "video15")
    assert len(crm(db, customer, "recommendation_purchased")) == 1


def test_a_card_booking_paid_through_the_webhook_buys_it(db: Db) -> None:
    customer, mechanic = _people(db)
    session = delivered(db, customer, mechanic, plan="free")
    up = recs(db, session)["premium_upgrade"]["id"]
    show(db, customer, up)
    out = _credit_checkout(db, customer, "video15")
    assert out["mode"] == "stripe"
    db.execute(
        "update public.bookings set stripe_checkout_session_id = 'cs_test_rec1' where id = %s", (out["booking_id"],)
    )
    obj = {
        "id": "cs_test_rec1",
        "payment_status": "paid",
        "payment_intent": "pi_rec1",
        "amount_total": out["price_cents"],
        "currency": "usd",
        "metadata": {"booking_id": out["booking_id"]},
    }
    assert db.scalar("select private.stripe_checkout_paid(%s::jsonb, now())", (json.dumps(obj),)) == "paid"
    row = db.one("select status, purchase_subject_id from public.recommendations where id = %s", (up,))
    assert row == {"status": "purchased", "purchase_subject_id": uuid.UUID(out["booking_id"])}


def test_a_refund_keeps_the_attribution_and_an_unfulfilled_checkout_buys_nothing(db: Db) -> None:
    customer, mechanic = _people(db)
    session = delivered(db, customer, mechanic, plan="free")
    up = recs(db, session)["premium_upgrade"]["id"]
    show(db, customer, up, click=True)
    _grant(db, customer, 10000)
    out = _credit_checkout(db, customer, "video15")
    admin = make_admin(db)
    with db.as_user(admin):
        db.rpc("admin_refund", p_session_id=out["session_id"], p_reason="changed their mind")
    assert db.scalar("select count(*) from public.refunds where payment_id = %s", (out["payment_id"],)) == 1
    row = db.one("select status, purchase_subject_id from public.recommendations where id = %s", (up,))
    assert row == {"status": "purchased", "purchase_subject_id": uuid.UUID(out["booking_id"])}
    assert len(crm(db, customer, "recommendation_purchased")) == 1
    # a card checkout paid but not fulfilled becomes `unfulfilled` (and is refunded), never `paid`: it buys nothing
    buyer = make_customer(db)
    buyer_up = recs(db, delivered(db, buyer, mechanic, plan="micro"))["premium_upgrade"]["id"]
    show(db, buyer, buyer_up, click=True)
    card = _credit_checkout(db, buyer, "video15")
    assert card["mode"] == "stripe"
    db.execute("update public.bookings set status = 'unfulfilled' where id = %s", (card["booking_id"],))
    assert db.scalar("select status from public.recommendations where id = %s", (buyer_up,)) == "clicked"


def test_unrelated_purchases_are_not_attributed(db: Db) -> None:
    customer, mechanic = _people(db)
    session = delivered(db, customer, mechanic, plan="free")
    up = recs(db, session)["premium_upgrade"]["id"]
    _grant(db, customer, 50000)
    _credit_checkout(db, customer, "video15")  # before it was shown
    show(db, customer, up, click=True)
    _credit_checkout(db, customer, "chat10")  # another plan
    assert db.one("select status from public.recommendations where id = %s", (up,)) == {"status": "clicked"}
    window = db.scalar("select private.setting_interval('recommendations.attribution_window')")
    db.execute(
        "update public.recommendations set shown_at = now() - %s - interval '1 second', "
        "clicked_at = now() - %s - interval '1 second' where id = %s",
        (window, window, up),
    )
    _credit_checkout(db, customer, "video15")  # outside the window
    assert db.one("select status from public.recommendations where id = %s", (up,)) == {"status": "clicked"}
    # another customer's booking of the plan never buys this customer's offer
    other = make_customer(db)
    db.execute("update public.recommendations set shown_at = now(), clicked_at = now() where id = %s", (up,))
    _grant(db, other, 5000)
    _credit_checkout(db, other, "video15")
    assert db.one("select status from public.recommendations where id = %s", (up,)) == {"status": "clicked"}
    assert crm(db, customer, "recommendation_purchased") == []


def test_the_newest_clicked_offer_wins_over_a_newer_shown_one(db: Db) -> None:
    customer, mechanic = _people(db)
    a = recs(db, delivered(db, customer, mechanic, plan="free"))["premium_upgrade"]["id"]
    b = recs(db, delivered(db, customer, mechanic, plan="micro"))["premium_upgrade"]["id"]
    c = recs(db, delivered(db, customer, mechanic, plan="micro"))["premium_upgrade"]["id"]
    for rec, click, ago in ((a, True, "3 hours"), (b, True, "2 hours"), (c, False, "1 hour")):
        show(db, customer, rec, click=click)
        db.execute(
            "update public.recommendations set shown_at = now() - %s::interval, "
            "clicked_at = case when clicked_at is not null then now() - %s::interval end where id = %s",
            (ago, ago, rec),
        )
    _grant(db, customer, 10000)
    _credit_checkout(db, customer, "video15")
    status = {
        r["id"]: r["status"]
        for r in db.all("select id, status from public.recommendations where id in (%s, %s, %s)", (a, b, c))
    }
    assert status == {a: "clicked", b: "purchased", c: "shown"}
    _credit_checkout(db, customer, "video15")  # the next purchase: the remaining clicked one
    assert db.scalar("select status from public.recommendations where id = %s", (a,)) == "purchased"


def test_a_follow_up_marks_its_offer_purchased_through_the_exposed_function(db: Db) -> None:
    customer, mechanic = _people(db)
    session = delivered(db, customer, mechanic, plan="chat10")
    other_session = delivered(db, customer, mechanic, plan="chat10")
    rec = recs(db, session)["follow_up"]["id"]
    follow_up = uuid.uuid4()
    mark = "select private.recommendations_mark_purchased(%s, 'follow_up', %s, %s)"
    assert db.scalar(mark, (customer, session, follow_up)) is None  # not shown yet
    show(db, customer, rec)
    assert db.scalar(mark, (customer, other_session, follow_up)) is None  # another session's offer was not shown
    assert db.scalar(mark, (make_customer(db), session, follow_up)) is None  # another customer
    assert db.scalar(mark, (customer, session, follow_up)) == rec
    assert db.scalar(mark, (customer, session, follow_up)) is None  # once
    assert db.scalar(mark, (customer, session, uuid.uuid4())) is None
    assert len(crm(db, customer, "recommendation_purchased")) == 1
    assert db.scalar("select purchase_subject_id from public.recommendations where id = %s", (rec,)) == follow_up


def test_a_workshop_appointment_at_a_listed_workshop_buys_the_visit(db: Db) -> None:
    customer, mechanic = _people(db)
    db.execute("update public.profiles set city = 'Toronto' where id = %s", (customer,))
    listed = verified_shop(db, "Listed Garage", "Toronto")
    unlisted = verified_shop(db, "Ottawa Motors", "Ottawa")
    for shop in (listed, unlisted):
        db.execute(
            "insert into public.workshop_hours (organization_id, day_of_week, open_time, close_time, capacity) "
            "select %s, d, '08:00', '18:00', 2 from generate_series(0, 6) d",
            (shop,),
        )
    vehicle = make_vehicle(db, customer)
    session = delivered(db, customer, mechanic, plan="chat10")
    submit_summary(db, session, urgency="urgent")
    visit = recs(db, session)["workshop_visit"]["id"]
    show(db, customer, visit, click=True)

    def request(shop: uuid.UUID, days: int) -> uuid.UUID:
        with db.as_user(customer):
            out = db.rpc(
                "request_workshop_appointment",
                p_workshop_id=shop,
                p_vehicle_id=vehicle,
                p_service_type="Brakes",
                p_preferred_starts=starts_arg([at(day(days), "09:00")]),
            )
        return uuid.UUID(out["appointment_id"])

    request(unlisted, 3)
    assert db.scalar("select status from public.recommendations where id = %s", (visit,)) == "clicked"
    appointment = request(listed, 4)
    row = db.one("select status, purchase_subject_id from public.recommendations where id = %s", (visit,))
    assert row == {"status": "purchased", "purchase_subject_id": appointment}


def test_an_appointment_from_the_diagnostic_buys_its_maintenance_plan(db: Db) -> None:
    customer, mechanic = _people(db)
    shop = verified_shop(db, "Any Garage", "Toronto")
    db.execute(
        "insert into public.workshop_hours (organization_id, day_of_week, open_time, close_time, capacity) "
        "select %s, d, '08:00', '18:00', 2 from generate_series(0, 6) d",
        (shop,),
    )
    vehicle = make_vehicle(db, customer)
    session = delivered(db, customer, mechanic, plan="diagnostic")
    db.execute("update public.sessions set vehicle_id = %s where id = %s", (vehicle, session))
    submit_summary(db, session, parts=PARTS)
    plan = recs(db, session)["maintenance_plan"]["id"]
    show(db, customer, plan)
    with db.as_user(customer):
        out = db.rpc(
            "request_workshop_appointment",
            p_workshop_id=shop,
            p_vehicle_id=None,
            p_service_type="Brakes",
            p_preferred_starts=starts_arg([at(day(3), "09:00")]),
            p_diagnostic_session_id=session,
        )
    assert db.one("select status, purchase_subject_id from public.recommendations where id = %s", (plan,)) == {
        "status": "purchased",
        "purchase_subject_id": uuid.UUID(out["appointment_id"]),
    }


# ---------------------------------------------------------------------------------------------
# Races
# ---------------------------------------------------------------------------------------------
def _setup(fresh_url: str) -> tuple[psycopg.Connection, Db]:
    conn = psycopg.connect(fresh_url)
    conn.execute("select 1")
    return conn, Db(conn)


def _threads(fresh_url: str, statements: list[tuple[str, tuple[Any, ...]]]) -> list[Any]:
    conns = [psycopg.connect(fresh_url, autocommit=True) for _ in statements]
    barrier = threading.Barrier(len(statements))
    results: list[Any] = [None] * len(statements)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = conns[i].execute(*statements[i]).fetchone()[0]
        except psycopg.Error as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(statements))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for c in conns:
        c.close()
    return results


def test_concurrent_evaluations_make_each_offer_once(fresh_url: str) -> None:
    setup, d = _setup(fresh_url)
    try:
        customer, mechanic = _people(d)
        sessions = [delivered(d, customer, mechanic, plan="free") for _ in range(3)]
        d.execute("delete from public.recommendations")
        setup.commit()
        for session in sessions:
            results = _threads(
                fresh_url, [("select private.recommendations_evaluate(%s, 'session_delivered')", (session,))] * 4
            )
            assert not any(isinstance(r, Exception) for r in results), results
            counts = d.all(
                "select rule_code, count(*) as n from public.recommendations where session_id = %s "
                "group by rule_code order by rule_code",
                (session,),
            )
            setup.commit()
            assert [(r["rule_code"], r["n"]) for r in counts] == [
                ("delivered_follow_up", 1),
                ("micro_cap_video_upgrade", 1),
            ]
    finally:
        setup.close()


def test_concurrent_clicks_and_purchases_count_once(fresh_url: str) -> None:
    setup, d = _setup(fresh_url)
    try:
        customer, mechanic = _people(d)
        session = delivered(d, customer, mechanic, plan="chat10")
        rec = recs(d, session)["follow_up"]["id"]
        setup.commit()
        conns = [psycopg.connect(fresh_url) for _ in range(4)]
        try:
            results = race([(c, customer, "select public.recommendation_clicked(%s)", (rec,)) for c in conns])
        finally:
            for c in conns:
                c.close()
        assert all(r[0] == "ok" for r in results), results
        assert len(crm(d, customer, "recommendation_shown")) == 1
        assert len(crm(d, customer, "recommendation_clicked")) == 1
        setup.commit()
        subjects = [uuid.uuid4() for _ in range(4)]
        results = _threads(
            fresh_url,
            [
                ("select private.recommendations_mark_purchased(%s, 'follow_up', %s, %s)", (customer, session, s))
                for s in subjects
            ],
        )
        assert not any(isinstance(r, Exception) for r in results), results
        assert [r for r in results if r is not None] == [rec]
        assert len(crm(d, customer, "recommendation_purchased")) == 1
        setup.commit()
    finally:
        setup.close()
