"""One customer's whole journey through the public RPCs, on a database of its own where every step
is committed (so every step has its own time): a photo before the match, a paid chat through
Stripe, the structured summary (its email, its event, the offers it makes), the summary read and
the offers shown and clicked, a free follow-up answered by the same mechanic, a workshop visit
booked from the offer, a second request that goes unattended and expires with its refund, a review;
then the admin's timeline of the customer and the funnel, counted by hand."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from shared import email as mail
from tests.support.appointments import at, day, starts_arg
from tests.support.delivery import paid_with_credit, start_both, take_part
from tests.support.directory import make_shop
from tests.support.factories import accept, make_admin, make_customer, make_intake, make_mechanic, make_vehicle
from tests.support.harness import Db
from tests.support.journey_follow_ups import QUESTION, ask
from tests.support.journey_messages import emails, events, flush
from tests.support.journey_recommendations import recs, show
from tests.support.journey_summary import put_intake_file, visible_objects
from tests.support.payments import Pay
from tests.support.reviews import submit

SUMMARY = {
    "findings": "Front pads at 2 mm; rotors scored.",
    "steps_taken": ["Listened to the noise on the video", "Checked the pad thickness"],
    "parts": [
        {"name": "Front brake pads", "part_number": "BP-1234", "estimated_cost_cents": 8999},
        {"name": "Front rotors", "part_number": "RT-77", "estimated_cost_cents": 15000},
    ],
    "next_steps": ["Replace pads and rotors this week"],
    "urgency": "urgent",
}


def kinds(db: Db, customer: uuid.UUID) -> list[str]:
    return [
        r["kind"]
        for r in db.all(
            "select kind from public.crm_interactions where customer_id = %s order by occurred_at, id", (customer,)
        )
    ]


def sweep(db: Db, now: dt.datetime) -> dict[str, int]:
    out = db.scalar("select private.sweep_requests(%s)", (now,))
    flush(db)
    return dict(out)


def test_one_customers_journey_end_to_end(pay: Pay) -> None:
    db = pay.db
    admin = make_admin(db)
    customer = make_customer(db, "Casey Customer")
    other_customer = make_customer(db, "Olive Other")
    mechanic = make_mechanic(db, name="Morgan Mechanic")  # independent: takes micro sessions at any time
    shop = make_shop(db, "Bay Motors", city="Toronto", postal_code="M5V 3L9")  # verified, in the customer's city
    db.execute(
        "insert into public.workshop_hours (organization_id, day_of_week, open_time, close_time, capacity) "
        "select %s, d, '08:00', '18:00', 2 from generate_series(0, 6) d",
        (shop.org,),
    )
    pay.commit()
    first_day = db.scalar("select (now() at time zone 'UTC')::date")

    # 1. a vehicle, an intake (in Toronto), a photo of it, and a paid chat through Stripe --------------------
    vehicle = make_vehicle(db, customer)
    intake = make_intake(db, customer, vehicle, city="Toronto")
    pay.commit()
    assert put_intake_file(db, customer, intake, "brakes.jpg") is None
    photo = f"intakes/{intake}/brakes.jpg"
    pay.commit()
    paid = pay.paid_booking(customer, plan="chat10", intake=intake)
    pay.commit()
    session = paid["session_id"]
    request = db.scalar("select id from public.session_requests where session_id = %s", (session,))
    assert db.scalar("select status from public.session_requests where id = %s", (request,)) == "pending"
    assert kinds(db, customer) == ["intake_created", "purchase", "request_filed"]

    # 2. the offered mechanic sees the photo before accepting; another customer does not --------------------
    prefix = f"intakes/{intake}/"
    with db.as_user(mechanic):  # offered: the open request is the mechanic's to see
        assert db.scalar("select count(*) from public.session_requests where id = %s", (request,)) == 1
    assert visible_objects(db, mechanic, prefix) == [photo]
    with db.as_user(mechanic):
        assert [f["name"] for f in db.rpc("list_intake_files", p_request_id=request)] == [photo]
    assert visible_objects(db, other_customer, prefix) == []
    with db.as_user(other_customer):
        assert db.rpc_error("list_intake_files", p_request_id=request) == "AD004"

    # 3. accepted, both start and take part; a draft while live; ended; the summary submitted ----------------
    accept(db, mechanic, request)
    pay.commit()
    start_both(db, session)
    take_part(db, session)
    pay.commit()
    with db.as_user(mechanic):
        draft = db.rpc("save_summary", p_session_id=session, p_summary={**SUMMARY, "photo_paths": [photo]})
    assert draft["status"] == "draft" and draft["version"] == 1 and draft["photo_paths"] == [photo]
    pay.commit()
    with db.as_user(mechanic):
        ended = db.rpc("end_session", p_session_id=session, p_notes=None)
    assert ended["status"] == "completed" and ended["delivery"] == "delivered", ended
    pay.commit()
    assert set(recs(db, session)) == {"follow_up"}  # delivered: the follow-up offer; urgency not known yet
    with db.as_user(mechanic):
        summary = db.rpc("submit_summary", p_session_id=session)
    pay.commit()
    assert summary["status"] == "submitted" and summary["urgency"] == "urgent"
    # the email to the customer renders every part of it
    [job] = db.all(
        "select dedupe_key, payload from private.outbox where kind = 'email.send'"
        " and payload ->> 'template' = 'summary_delivered' and payload ->> 'session_id' = %s",
        (str(session),),
    )
    assert job["dedupe_key"] == f"email:summary_delivered:{session}:{customer}:v1"
    assert job["payload"]["user_id"] == str(customer)
    ctx = db.scalar("select private.email_context(%s, %s)", (customer, session))
    rendered = mail.render("summary_delivered", {**ctx, **job["payload"]["data"]})
    for text in (rendered.text, rendered.html or ""):
        for part in (
            "Front pads at 2 mm; rotors scored.",
            "Listened to the noise on the video",
            "Checked the pad thickness",
            "Front brake pads",
            "BP-1234",
            "89.99 USD",
            "RT-77",
            "150.00 USD",
            "239.99 USD",
            "Replace pads and rotors this week",
            "Urgent: have it repaired within days",
            f"/sessions/{session}/summary#photo-1",
        ):
            assert part in text, part
    # the event on the session's topic, which the customer receives
    [ready] = db.all(
        "select payload, private from realtime.messages where topic = %s and event = 'summary_ready'",
        (f"session:{session}",),
    )
    assert ready["private"] is True
    assert {k: v for k, v in ready["payload"].items() if k != "id"} == {
        "session_id": str(session),
        "summary_id": summary["id"],
        "version": 1,
        "urgency": "urgent",
    }
    assert db.can_receive(customer, f"session:{session}") and not db.can_receive(other_customer, f"session:{session}")
    # the offers: a workshop visit listing the verified workshop of Toronto, and a follow-up
    offers = recs(db, session)
    assert set(offers) == {"workshop_visit", "follow_up"}
    visit, follow = offers["workshop_visit"], offers["follow_up"]
    assert [w["workshop_id"] for w in visit["data"]["workshops"]] == [str(shop.org)]
    assert visit["data"]["urgency"] == "urgent" and visit["deep_link"] == f"/sessions/{session}/workshops"
    assert follow["deep_link"] == f"/sessions/{session}/follow-up" and follow["customer_id"] == customer
    announced = db.all(
        "select payload ->> 'kind' as kind from realtime.messages where topic = %s and event = 'recommendation'",
        (f"session:{session}",),
    )
    assert sorted(a["kind"] for a in announced) == ["follow_up", "workshop_visit"]

    # 4. the customer reads the summary, is shown the offers and clicks them ----------------------------------
    with db.as_user(customer):
        read = db.rpc("get_session_summary", p_session_id=session)
    assert read["latest"]["id"] == summary["id"] and read["draft"] is None
    assert read["latest"]["parts"] == SUMMARY["parts"] and read["latest"]["photo_paths"] == [photo]
    pay.commit()
    for offer in (visit, follow):
        assert show(db, customer, offer["id"])["status"] == "shown"
        pay.commit()
        assert show(db, customer, offer["id"], click=True)["status"] == "clicked"
        pay.commit()

    # 5. a follow-up question: free, offered to the same mechanic first, answered, delivered -----------------
    asked = ask(db, customer, session, QUESTION)
    pay.commit()
    assert asked["status"] == "filed" and asked["free"] is True and asked["price_cents"] == 0
    assert asked["preferred_mechanic_id"] == str(mechanic) and asked["parent_session_id"] == str(session)
    assert (
        db.scalar(
            "select count(*) from public.session_offers where request_id = %s and mechanic_id = %s"
            " and status = 'offered'",
            (asked["request_id"], mechanic),
        )
        == 1
    )
    with db.as_user(shop.mechanic):  # the same mechanic's window: nobody else may take it
        assert db.rpc_error("accept_request", p_request_id=asked["request_id"]) == "AD009"
    accept(db, mechanic, asked["request_id"])
    pay.commit()
    start_both(db, asked["session_id"])
    take_part(db, asked["session_id"])
    with db.as_user(mechanic):
        db.execute(
            "insert into public.chat_messages (session_id, content) values (%s, %s)",
            (asked["session_id"], "Yes: the rotors are scored, replace them with the pads."),
        )
        done = db.rpc("end_session", p_session_id=asked["session_id"], p_notes=None)
    assert done["status"] == "completed" and done["delivery"] == "delivered", done
    pay.commit()
    row = db.one("select status, purchase_subject_id from public.recommendations where id = %s", (follow["id"],))
    assert row == {"status": "purchased", "purchase_subject_id": uuid.UUID(asked["follow_up_id"])}

    # 6. the workshop visit bought: an appointment at the listed workshop ------------------------------------
    with db.as_user(customer):
        booked = db.rpc(
            "request_workshop_appointment",
            p_workshop_id=shop.org,
            p_vehicle_id=vehicle,
            p_service_type="Brake pads and rotors",
            p_preferred_starts=starts_arg([at(day(3), "15:00")]),  # 10:00 in Toronto, the workshop's zone
        )
    pay.commit()
    row = db.one("select status, purchase_subject_id from public.recommendations where id = %s", (visit["id"],))
    assert row == {"status": "purchased", "purchase_subject_id": uuid.UUID(booked["appointment_id"])}

    # 7. a second request (a new intake, paid with credit) goes unattended, then expires refunded -----------
    second = paid_with_credit(db, customer)
    pay.commit()
    price = db.scalar("select price_cents from public.sessions where id = %s", (second["session_id"],))
    filed_at = db.scalar("select created_at from public.session_requests where id = %s", (second["request_id"],))
    assert sweep(db, filed_at + dt.timedelta(minutes=5))["unattended"] == 1
    pay.commit()
    assert sweep(db, filed_at + dt.timedelta(minutes=120))["expired"] == 1
    pay.commit()
    told = emails(db, second["session_id"])
    assert [(m["template"], m["user_id"]) for m in told] == [
        ("request_unattended", str(customer)),
        ("request_expired", str(customer)),
    ]
    assert told[1]["data"]["refunded_cents"] == price > 0 and told[1]["data"]["currency"] == "usd"
    said = events(db, second["session_id"])
    assert [e["event"] for e in said] == ["request_unattended", "request_expired"]
    assert said[1]["refunded_cents"] == price and said[1]["request_id"] == str(second["request_id"])
    assert (
        db.scalar(
            "select r.status from public.refunds r join public.payments p on p.id = r.payment_id"
            " where p.session_id = %s",
            (second["session_id"],),
        )
        == "succeeded"
    )

    # 8. the customer reviews the mechanic ----------------------------------------------------------------
    submit(db, customer, session, 5, "Found it from the photo")
    pay.commit()

    # 9. the admin's timeline of the customer, in time order, and the funnel ---------------------------------
    with db.as_user(admin):
        timeline = db.rpc("admin_customer_timeline", p_customer_id=customer)["interactions"]
    assert [x["kind"] for x in timeline] == [
        "intake_created",  # 1: the intake
        "purchase",  # 1: the Stripe payment of the chat...
        "request_filed",  # ...which files its request
        "session_delivered",  # 3
        "summary_viewed",  # 4
        "recommendation_shown",
        "recommendation_clicked",  # the workshop visit
        "recommendation_shown",
        "recommendation_clicked",  # the follow-up
        "intake_created",  # 5: the follow-up's own intake...
        "request_filed",  # ...and request...
        "follow_up_asked",  # ...on the parent session
        "recommendation_purchased",  # the follow-up offer
        "session_delivered",  # the follow-up answered
        "recommendation_purchased",  # 6: the workshop visit
        "intake_created",  # 7: the second intake...
        "request_filed",  # ...its request, filed by the credit checkout...
        "purchase",  # ...which then records its payment
        "review_written",  # 8
    ]
    times = [dt.datetime.fromisoformat(x["occurred_at"]) for x in timeline]
    assert times == sorted(times) and len(set(times)) > 10  # committed steps: times of their own
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for x in timeline:
        by_kind.setdefault(x["kind"], []).append(x)
    assert by_kind["purchase"][0]["data"]["method"] == "card" and by_kind["purchase"][0]["data"]["plan"] == "chat10"
    assert by_kind["purchase"][1]["data"]["method"] == "credit"
    assert by_kind["summary_viewed"][0]["subject_id"] == summary["id"]
    assert [x["subject_id"] for x in by_kind["recommendation_purchased"]] == [str(follow["id"]), str(visit["id"])]
    assert by_kind["follow_up_asked"][0]["session_id"] == str(session)
    assert by_kind["follow_up_asked"][0]["subject_id"] == asked["follow_up_id"]
    assert by_kind["review_written"][0]["session_id"] == str(session)

    # Hand count over the journey's days: intakes 2 (the chat's and the second request's; the
    # follow-up's own intake is its parent's follow-up step), requested 2, delivered 1 (the chat; the
    # second request expired), returned 1 (the chat's intake: followed up, and repurchased by the
    # credit payment after its delivery); conversions 2/2, 1/2, 1/1, 1/2.
    last_day = db.scalar("select (now() at time zone 'UTC')::date")
    with db.as_user(admin):
        funnel = db.rpc("admin_funnel", p_from=first_day, p_to=last_day, p_group="week")
    totals = funnel["totals"]
    assert {k: totals[k] for k in ("intakes", "requested", "delivered", "returned", "followed_up", "repurchased")} == {
        "intakes": 2,
        "requested": 2,
        "delivered": 1,
        "returned": 1,
        "followed_up": 1,
        "repurchased": 1,
    }
    assert {k: Decimal(str(v)) for k, v in totals["conversion"].items()} == {
        "intake_to_request": Decimal("1.0000"),
        "request_to_delivered": Decimal("0.5000"),
        "delivered_to_returned": Decimal("1.0000"),
        "intake_to_returned": Decimal("0.5000"),
    }
    pay.assert_books_balance()
