"""Workshop appointments: the request (hours, preferred starts, the waiver, the cap, what a delivered
diagnostic session carries), the workshop's answers and the customer's, every transition allowed and
refused (enforced by the database), the audit trail, emails and the board's broadcasts.
Persona matrices and hostile input: test_appointments_access.py; capacity and the mechanic's
committed time: test_appointments_capacity.py."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.support.appointments import (
    as_,
    at,
    confirmed,
    day,
    delivered_diagnostic,
    emails,
    err,
    events,
    make_cast,
    request,
    shift,
    starts_arg,
    status,
)
from tests.support.factories import make_customer, make_mechanic, make_vehicle

INVALID_INPUT, NOT_FOUND, NOT_ALLOWED, INVALID_TRANSITION = "AD001", "AD004", "AD003", "AD006"
LIMIT_REACHED, SLOT_TAKEN, WAIVER_REQUIRED, CONFLICT = "AD130", "AD050", "AD122", "AD005"
NOT_BOOKABLE, OUTSIDE_HOURS, FULL, TOO_LATE, NOT_STARTED, NOT_IN_WORKSHOP = (
    "AD170", "AD171", "AD172", "AD173", "AD174", "AD175")


@pytest.fixture
def c(db):
    return make_cast(db)


def test_codes_are_registered(db):
    rows = {r["name"]: r["sqlstate"] for r in db.all("select name, sqlstate from private.error_codes")}
    assert rows["invalid_input"] == INVALID_INPUT and rows["not_found"] == NOT_FOUND
    assert rows["not_allowed"] == NOT_ALLOWED and rows["invalid_transition"] == INVALID_TRANSITION
    assert rows["limit_reached"] == LIMIT_REACHED and rows["slot_taken"] == SLOT_TAKEN
    assert [rows[n] for n in ("workshop_not_bookable", "outside_workshop_hours", "workshop_full",
                              "appointment_cancel_too_late", "appointment_not_started",
                              "mechanic_not_in_workshop")] == [NOT_BOOKABLE, OUTSIDE_HOURS, FULL, TOO_LATE,
                                                               NOT_STARTED, NOT_IN_WORKSHOP]


# ------------------------------------------------------------------------------------------------
# the request
# ------------------------------------------------------------------------------------------------
def test_request_records_the_preferred_starts_sorted_and_tells_the_staff(db, c):
    d = day()
    appt = request(db, c, [at(d, "15:00"), at(d, "09:00")], p_notes="  Squeaks when cold  ")
    row = db.one("select * from public.workshop_appointments where id = %s", (appt,))
    assert row["status"] == "requested" and row["customer_id"] == c.customer and row["vehicle_id"] == c.vehicle
    assert row["preferred_starts"] == [at(d, "09:00"), at(d, "15:00")]
    assert row["notes"] == "Squeaks when cold" and row["starts_at"] is None
    assert events(db, appt) == [(None, "requested", "customer")]
    sent = emails(db, appt)
    # owner, manager and dispatcher handle appointments; the workshop's mechanics do not
    assert sorted(e["user_id"] for e in sent) == sorted([c.shop.owner, c.shop.manager, c.shop.dispatcher])
    assert {e["template"] for e in sent} == {"appointment_requested"}
    assert sent[0]["data"]["appointment"]["customer_name"] == "Casey Customer"


@pytest.mark.parametrize("hhmm", ["07:30", "12:30", "17:30", "18:00", "11:30"])
def test_a_preferred_start_must_fit_the_hours(db, c, hhmm):
    # 60-minute appointments; open 08:00–12:00 and 13:00–18:00
    assert err(db, c.customer, "request_workshop_appointment", p_workshop_id=c.shop.id, p_vehicle_id=c.vehicle,
               p_service_type="Oil", p_preferred_starts=starts_arg([at(day(), hhmm)])) == OUTSIDE_HOURS
    assert db.scalar("select count(*) from public.workshop_appointments") == 0


def test_the_hours_are_the_workshops_zone_and_weekday(db, c):
    db.execute("update public.organizations set timezone = 'America/Toronto' where id = %s", (c.shop.id,))
    d = day()
    dow = (d.isoweekday() % 7)  # 0 = Sunday, as workshop_hours
    db.execute("update public.workshop_hours set is_open = false where organization_id = %s and day_of_week = %s",
               (c.shop.id, dow))
    # 14:00 UTC is 09:00 in Toronto (winter) or 10:00 (summer): open on every other day, closed on d
    assert err(db, c.customer, "request_workshop_appointment", p_workshop_id=c.shop.id, p_vehicle_id=c.vehicle,
               p_service_type="Oil", p_preferred_starts=starts_arg([at(d, "14:00")])) == OUTSIDE_HOURS
    assert request(db, c, [at(d + dt.timedelta(days=1), "14:00")])
    # 09:00 UTC is before opening in Toronto
    assert err(db, c.customer, "request_workshop_appointment", p_workshop_id=c.shop.id, p_vehicle_id=c.vehicle,
               p_service_type="Oil", p_preferred_starts=starts_arg([at(d + dt.timedelta(days=1), "09:00")])) == OUTSIDE_HOURS


def test_a_date_override_of_the_workshop_replaces_its_hours(db, c):
    d = day()
    db.execute("insert into public.availability_overrides (organization_id, on_date, is_available) values (%s, %s, false)",
               (c.shop.id, d))
    assert err(db, c.customer, "request_workshop_appointment", p_workshop_id=c.shop.id, p_vehicle_id=c.vehicle,
               p_service_type="Oil", p_preferred_starts=starts_arg([at(d, "09:00")])) == OUTSIDE_HOURS
    d2 = day(4)
    db.execute("insert into public.availability_overrides (organization_id, on_date, is_available, start_time, end_time) "
               "values (%s, %s, true, '19:00', '21:00')", (c.shop.id, d2))
    assert request(db, c, [at(d2, "19:30")])


def test_past_and_far_future_starts_are_refused(db, c):
    now = db.scalar("select now()")
    for start in (now - dt.timedelta(hours=1), at(day(120), "09:00")):
        assert err(db, c.customer, "request_workshop_appointment", p_workshop_id=c.shop.id, p_vehicle_id=c.vehicle,
                   p_service_type="Oil", p_preferred_starts=starts_arg([start])) == OUTSIDE_HOURS


def test_waiver_verified_workshop_and_own_vehicle_are_required(db, c):
    start = [at(day(), "09:00")]
    fresh = make_customer(db, "No Waiver", waiver=False)
    v = make_vehicle(db, fresh)
    assert err(db, fresh, "request_workshop_appointment", p_workshop_id=c.shop.id, p_vehicle_id=v,
               p_service_type="Oil", p_preferred_starts=starts_arg(start)) == WAIVER_REQUIRED
    for st in ("pending", "suspended"):
        db.execute("update public.organizations set status = %s where id = %s", (st, c.other_shop.id))
        assert err(db, c.customer, "request_workshop_appointment", p_workshop_id=c.other_shop.id, p_vehicle_id=c.vehicle,
                   p_service_type="Oil", p_preferred_starts=starts_arg(start)) == NOT_BOOKABLE
    # someone else's vehicle: not found (it exists)
    assert db.scalar("select count(*) from public.vehicles where id = %s", (c.other_vehicle,)) == 1
    assert err(db, c.customer, "request_workshop_appointment", p_workshop_id=c.shop.id, p_vehicle_id=c.other_vehicle,
               p_service_type="Oil", p_preferred_starts=starts_arg(start)) == NOT_FOUND
    assert db.scalar("select count(*) from public.workshop_appointments") == 0


def test_open_appointments_are_capped_per_customer(db, c):
    for i in range(3):
        request(db, c, [at(day(3 + i), "09:00")])
    assert err(db, c.customer, "request_workshop_appointment", p_workshop_id=c.other_shop.id, p_vehicle_id=c.vehicle,
               p_service_type="Oil", p_preferred_starts=starts_arg([at(day(), "10:00")])) == LIMIT_REACHED
    # cancelling one frees a place: cancel-and-retry does not beat the cap, it respects it
    first = db.scalar("select id from public.workshop_appointments where customer_id = %s order by created_at limit 1",
                      (c.customer,))
    as_(db, c.customer, "cancel_appointment", p_appointment_id=first, p_reason="changed my mind")
    assert request(db, c, [at(day(), "10:00")], shop=c.other_shop.id)
    assert db.scalar("select count(*) from public.workshop_appointments where customer_id = %s", (c.customer,)) == 4


def test_from_a_delivered_diagnostic_session_the_request_carries_its_findings(db, c):
    virtual = make_mechanic(db, name="Vera Virtual")
    session = delivered_diagnostic(db, c.customer, virtual, c.vehicle)
    with db.as_user(c.customer):
        res = db.rpc("request_workshop_appointment", p_workshop_id=c.shop.id, p_vehicle_id=None,
                     p_service_type="Brakes", p_preferred_starts=starts_arg([at(day(), "09:00")]),
                     p_diagnostic_session_id=session)
    appt = res["appointment_id"]
    row = db.one("select * from public.workshop_appointments where id = %s", (appt,))
    assert row["vehicle_id"] == c.vehicle and row["diagnostic_session_id"] == session
    assert row["diagnostic_summary"].startswith("Front pads worn")
    assert row["referring_mechanic_id"] == virtual  # a virtual-only mechanic refers


def test_a_workshop_mechanics_diagnosis_refers_nobody(db, c):
    session = delivered_diagnostic(db, c.customer, c.other_shop.mechanic, c.vehicle)
    with db.as_user(c.customer):
        res = db.rpc("request_workshop_appointment", p_workshop_id=c.shop.id, p_vehicle_id=c.vehicle,
                     p_service_type="Brakes", p_preferred_starts=starts_arg([at(day(), "09:00")]),
                     p_diagnostic_session_id=session)
    assert db.scalar("select referring_mechanic_id from public.workshop_appointments where id = %s",
                     (res["appointment_id"],)) is None


def test_only_the_customers_own_delivered_diagnostic_session_counts(db, c):
    virtual = make_mechanic(db, name="Vera Virtual")
    start = [at(day(), "09:00")]
    others = delivered_diagnostic(db, c.other_customer, virtual, c.other_vehicle)
    undelivered = delivered_diagnostic(db, c.customer, virtual, c.vehicle)
    db.execute("update public.sessions set delivery = null where id = %s", (undelivered,))
    chat = delivered_diagnostic(db, c.customer, virtual, c.vehicle, plan="chat10")
    other_vehicle = make_vehicle(db, c.customer, model="Accord")
    good = delivered_diagnostic(db, c.customer, virtual, c.vehicle)
    cases = [(others, c.vehicle, NOT_FOUND), (undelivered, c.vehicle, INVALID_INPUT), (chat, c.vehicle, INVALID_INPUT),
             (good, other_vehicle, INVALID_INPUT)]
    for session, vehicle, code in cases:
        assert err(db, c.customer, "request_workshop_appointment", p_workshop_id=c.shop.id, p_vehicle_id=vehicle,
                   p_service_type="Brakes", p_preferred_starts=starts_arg(start), p_diagnostic_session_id=session) == code
    assert db.scalar("select count(*) from public.workshop_appointments") == 0


# ------------------------------------------------------------------------------------------------
# answers and the lifecycle
# ------------------------------------------------------------------------------------------------
def test_confirm_at_a_time_of_the_workshops_choosing_with_a_mechanic(db, c):
    d = day()
    appt = request(db, c, [at(d, "09:00")])
    res = as_(db, c.shop.dispatcher, "confirm_appointment", p_appointment_id=appt, p_start=at(d, "14:00"),
              p_mechanic_id=c.shop.mechanic)
    assert res["status"] == "confirmed" and res["starts_at"].startswith(str(d))
    row = db.one("select * from public.workshop_appointments where id = %s", (appt,))
    assert (row["starts_at"], row["ends_at"]) == (at(d, "14:00"), at(d, "15:00"))
    com = db.one("select * from public.mechanic_commitments where id = %s", (row["commitment_id"],))
    assert com["kind"] == "appointment" and com["status"] == "confirmed" and com["mechanic_id"] == c.shop.mechanic
    assert events(db, appt) == [(None, "requested", "customer"), ("requested", "confirmed", "workshop")]
    sent = [e for e in emails(db, appt) if e["user_id"] == c.customer]
    assert [e["template"] for e in sent] == ["appointment_confirmed", "appointment_reminder", "appointment_reminder"]
    reminders = sorted(e["not_before"] for e in sent if e["template"] == "appointment_reminder")
    assert reminders == [at(d, "14:00") - dt.timedelta(hours=24), at(d, "13:00")]


def test_a_mechanic_of_another_workshop_or_no_mechanic_cannot_be_assigned(db, c):
    appt = request(db, c)
    for mech in (c.other_shop.mechanic, make_mechanic(db), c.shop.owner):
        assert err(db, c.shop.owner, "confirm_appointment", p_appointment_id=appt, p_start=at(day(), "09:00"),
                   p_mechanic_id=mech) == NOT_IN_WORKSHOP
    assert status(db, appt) == "requested"


def test_propose_then_accept(db, c):
    d = day()
    appt = request(db, c, [at(d, "09:00")])
    as_(db, c.shop.manager, "propose_appointment_time", p_appointment_id=appt, p_start=at(d, "16:00"),
        p_note="Only afternoons this week")
    # a second proposal replaces the first
    as_(db, c.shop.manager, "propose_appointment_time", p_appointment_id=appt, p_start=at(d, "15:00"))
    assert [e["template"] for e in emails(db, appt) if e["user_id"] == c.customer] == \
        ["appointment_proposed", "appointment_proposed"]
    res = as_(db, c.customer, "accept_appointment_proposal", p_appointment_id=appt)
    assert res["status"] == "confirmed"
    row = db.one("select * from public.workshop_appointments where id = %s", (appt,))
    assert row["starts_at"] == at(d, "15:00") and row["proposed_start"] is None
    assert [e[1] for e in events(db, appt)] == ["requested", "proposed", "proposed", "confirmed"]


def test_declining_a_proposal_returns_the_request_to_the_workshop(db, c):
    appt = request(db, c)
    as_(db, c.shop.owner, "propose_appointment_time", p_appointment_id=appt, p_start=at(day(), "16:00"))
    assert as_(db, c.customer, "decline_appointment_proposal", p_appointment_id=appt)["status"] == "requested"
    assert db.scalar("select proposed_start from public.workshop_appointments where id = %s", (appt,)) is None
    # the workshop may now confirm a preferred start
    as_(db, c.shop.owner, "confirm_appointment", p_appointment_id=appt, p_start=at(day(), "09:00"))
    assert status(db, appt) == "confirmed"


def test_decline_with_a_reason(db, c):
    appt = request(db, c)
    assert err(db, c.shop.owner, "decline_appointment", p_appointment_id=appt, p_reason="   ") == INVALID_INPUT
    as_(db, c.shop.owner, "decline_appointment", p_appointment_id=appt, p_reason="No parts for this model")
    row = db.one("select status, decline_reason from public.workshop_appointments where id = %s", (appt,))
    assert row == {"status": "declined", "decline_reason": "No parts for this model"}
    assert [e["template"] for e in emails(db, appt) if e["user_id"] == c.customer] == ["appointment_declined"]
    assert db.scalar("select note from private.appointment_events where appointment_id = %s and to_status = 'declined'",
                     (appt,)) == "No parts for this model"


def test_customer_cancel_cutoff(db, c):
    now = db.scalar("select now()")
    # a confirmed appointment 3 hours ahead may be cancelled by the customer; 1 hour ahead may not
    d = day()
    appt = confirmed(db, c, at(d, "09:00"), mechanic=c.shop.mechanic)
    shift(db, appt, (now + dt.timedelta(hours=1)) - at(d, "09:00"))
    assert err(db, c.customer, "cancel_appointment", p_appointment_id=appt, p_reason="late") == TOO_LATE
    # the workshop still may, and the mechanic's time is released
    as_(db, c.shop.dispatcher, "cancel_appointment", p_appointment_id=appt, p_reason="Lift broken")
    row = db.one("select status, cancelled_by, calendar_sequence, commitment_id from public.workshop_appointments "
                 "where id = %s", (appt,))
    assert (row["status"], row["cancelled_by"], row["calendar_sequence"]) == ("cancelled", "workshop", 1)
    assert db.scalar("select status from public.mechanic_commitments where id = %s", (row["commitment_id"],)) == "released"
    assert "appointment_cancelled" in [e["template"] for e in emails(db, appt)]
    appt2 = confirmed(db, c, at(d, "10:00"))
    shift(db, appt2, (now + dt.timedelta(hours=3)) - at(d, "10:00"))
    as_(db, c.customer, "cancel_appointment", p_appointment_id=appt2, p_reason="car fixed itself")
    assert db.scalar("select cancelled_by from public.workshop_appointments where id = %s", (appt2,)) == "customer"


def test_complete_only_after_start_with_the_invoice_and_the_referral_hook(db, c):
    d = day()
    appt = confirmed(db, c, at(d, "09:00"), mechanic=c.shop.mechanic)
    assert err(db, c.shop.owner, "complete_appointment", p_appointment_id=appt, p_invoice_cents=5000) == NOT_STARTED
    assert err(db, c.shop.owner, "mark_no_show", p_appointment_id=appt) == NOT_STARTED
    shift(db, appt, -dt.timedelta(days=4))
    for bad in (-1, None, 10_000_001):
        assert err(db, c.shop.owner, "complete_appointment", p_appointment_id=appt, p_invoice_cents=bad) == INVALID_INPUT
    res = as_(db, c.shop.owner, "complete_appointment", p_appointment_id=appt, p_invoice_cents=42000)
    assert res["status"] == "completed" and res["invoice_cents"] == 42000
    row = db.one("select completed_at, commitment_id from public.workshop_appointments where id = %s", (appt,))
    assert row["completed_at"] is not None
    assert db.scalar("select status from public.mechanic_commitments where id = %s", (row["commitment_id"],)) == "done"
    # completed is final
    for rpc, kw in (("cancel_appointment", {"p_reason": "x"}), ("mark_no_show", {}),
                    ("complete_appointment", {"p_invoice_cents": 1})):
        assert err(db, c.shop.owner, rpc, p_appointment_id=appt, **kw) == INVALID_TRANSITION


def test_complete_calls_the_referral_hook(db, c):
    db.execute("create table public._hook_seen (id uuid)")
    db.execute("create or replace function private.referral_on_appointment_completed(p_appointment_id uuid) "
               "returns void language sql security definer set search_path = '' "
               "as 'insert into public._hook_seen values (p_appointment_id)'")
    appt = confirmed(db, c, at(day(), "09:00"))
    shift(db, appt, -dt.timedelta(days=4))
    as_(db, c.shop.owner, "complete_appointment", p_appointment_id=appt, p_invoice_cents=1000)
    assert db.scalar("select array_agg(id) from public._hook_seen") == [appt]


def test_no_show_releases_the_mechanic(db, c):
    appt = confirmed(db, c, at(day(), "09:00"), mechanic=c.shop.mechanic)
    shift(db, appt, -dt.timedelta(days=4))
    as_(db, c.shop.dispatcher, "mark_no_show", p_appointment_id=appt)
    assert status(db, appt) == "no_show"
    assert db.scalar("select c.status from public.mechanic_commitments c join public.workshop_appointments a "
                     "on a.commitment_id = c.id where a.id = %s", (appt,)) == "released"


def test_assign_and_reassign_a_mechanic(db, c):
    appt = confirmed(db, c, at(day(), "09:00"))
    as_(db, c.shop.dispatcher, "assign_appointment_mechanic", p_appointment_id=appt, p_mechanic_id=c.shop.mechanic)
    first = db.scalar("select commitment_id from public.workshop_appointments where id = %s", (appt,))
    as_(db, c.shop.dispatcher, "assign_appointment_mechanic", p_appointment_id=appt, p_mechanic_id=c.shop.mechanic2)
    row = db.one("select mechanic_id, commitment_id from public.workshop_appointments where id = %s", (appt,))
    assert row["mechanic_id"] == c.shop.mechanic2
    assert db.scalar("select status from public.mechanic_commitments where id = %s", (first,)) == "released"
    assert db.scalar("select status from public.mechanic_commitments where id = %s", (row["commitment_id"],)) == "confirmed"


# every (from, action) pair that is refused
REFUSED = {
    "requested": ["accept", "decline_proposal", "complete", "no_show", "assign"],
    "proposed": ["confirm", "complete", "no_show", "assign"],
    "confirmed": ["confirm", "propose", "decline", "accept", "decline_proposal"],
    "declined": ["confirm", "propose", "decline", "accept", "decline_proposal", "cancel", "complete", "no_show"],
    "cancelled": ["confirm", "propose", "decline", "accept", "decline_proposal", "cancel", "complete", "no_show"],
}


def _to_state(db, c, state):
    d = day()
    appt = request(db, c, [at(d, "09:00")])
    if state == "proposed":
        as_(db, c.shop.owner, "propose_appointment_time", p_appointment_id=appt, p_start=at(d, "10:00"))
    elif state == "confirmed":
        as_(db, c.shop.owner, "confirm_appointment", p_appointment_id=appt, p_start=at(d, "09:00"))
        shift(db, appt, -dt.timedelta(days=4))  # started: complete and no_show would be allowed
    elif state == "declined":
        as_(db, c.shop.owner, "decline_appointment", p_appointment_id=appt, p_reason="no")
    elif state == "cancelled":
        as_(db, c.customer, "cancel_appointment", p_appointment_id=appt, p_reason="no")
    return appt


def _calls(c):
    d = day()
    return {
        "confirm": (c.shop.owner, "confirm_appointment", {"p_start": at(d, "11:00")}),
        "propose": (c.shop.owner, "propose_appointment_time", {"p_start": at(d, "11:00")}),
        "decline": (c.shop.owner, "decline_appointment", {"p_reason": "x"}),
        "accept": (c.customer, "accept_appointment_proposal", {}),
        "decline_proposal": (c.customer, "decline_appointment_proposal", {}),
        "cancel": (c.shop.owner, "cancel_appointment", {"p_reason": "x"}),
        "complete": (c.shop.owner, "complete_appointment", {"p_invoice_cents": 100}),
        "no_show": (c.shop.owner, "mark_no_show", {}),
        "assign": (c.shop.owner, "assign_appointment_mechanic", {"p_mechanic_id": c.shop.mechanic}),
    }


def _act(db, c, appt, action):
    user, rpc, kw = _calls(c)[action]
    return err(db, user, rpc, p_appointment_id=appt, **kw)


@pytest.mark.parametrize(("state", "action"), [(s, a) for s, acts in REFUSED.items() for a in acts])
def test_refused_transitions(db, c, state, action):
    appt = _to_state(db, c, state)
    before = db.one("select * from public.workshop_appointments where id = %s", (appt,))
    assert _act(db, c, appt, action) == INVALID_TRANSITION
    assert db.one("select * from public.workshop_appointments where id = %s", (appt,)) == before


def test_the_database_refuses_transitions_outside_the_rpcs(db, c):
    appt = request(db, c)
    for to in ("completed", "no_show"):
        e = db.error("update public.workshop_appointments set status = %s where id = %s", (to, appt))
        assert e.sqlstate == INVALID_TRANSITION
    e = db.error("insert into public.workshop_appointments (workshop_id, customer_id, service_type, status, "
                 "preferred_starts) values (%s, %s, 'x', 'confirmed', array[now()])", (c.shop.id, c.customer))
    assert e.sqlstate == INVALID_TRANSITION
    as_(db, c.shop.owner, "decline_appointment", p_appointment_id=appt, p_reason="no")
    e = db.error("update public.workshop_appointments set status = 'requested' where id = %s", (appt,))
    assert e.sqlstate == INVALID_TRANSITION


def test_every_change_is_broadcast_on_the_workshop_board(db, c):
    appt = request(db, c)
    as_(db, c.shop.owner, "propose_appointment_time", p_appointment_id=appt, p_start=at(day(), "16:00"))
    as_(db, c.customer, "accept_appointment_proposal", p_appointment_id=appt)
    msgs = db.all("select event, payload from realtime.messages where topic = %s ",
                  (f"workshop:{c.shop.id}",))
    assert sorted(m["payload"]["status"] for m in msgs) == ["confirmed", "proposed", "requested"]
    assert all(m["payload"]["appointment_id"] == str(appt) for m in msgs)
    assert {m["event"] for m in msgs} == {"appointment_changed"}
    # no contact details on the board
    assert all("email" not in str(m["payload"]) and "phone" not in str(m["payload"]) for m in msgs)


def test_one_diagnostic_session_leads_to_one_appointment_at_a_time(db, c):
    """A customer cannot multiply a virtual mechanic's referral by booking the same diagnosis at
    several workshops (or twice at one); a declined request frees it for another workshop."""
    virtual = make_mechanic(db, name="Vera Virtual")
    session = delivered_diagnostic(db, c.customer, virtual, c.vehicle)
    kw = {"p_vehicle_id": c.vehicle, "p_service_type": "Brakes",
          "p_preferred_starts": starts_arg([at(day(), "09:00")]), "p_diagnostic_session_id": session}
    first = as_(db, c.customer, "request_workshop_appointment", p_workshop_id=c.shop.id, **kw)["appointment_id"]
    for shop in (c.shop.id, c.other_shop.id):
        assert err(db, c.customer, "request_workshop_appointment", p_workshop_id=shop, **kw) == CONFLICT
    as_(db, c.shop.owner, "decline_appointment", p_appointment_id=first, p_reason="No lift free")
    assert as_(db, c.customer, "request_workshop_appointment", p_workshop_id=c.other_shop.id, **kw)["status"] == \
        "requested"
    assert db.scalar("select count(*) from public.workshop_appointments where diagnostic_session_id = %s",
                     (session,)) == 2


# every allowed (from, action) pair, through the RPCs
ALLOWED = [
    ("requested", "propose", "proposed"), ("requested", "confirm", "confirmed"), ("requested", "decline", "declined"),
    ("requested", "cancel", "cancelled"), ("proposed", "propose", "proposed"), ("proposed", "accept", "confirmed"),
    ("proposed", "decline_proposal", "requested"), ("proposed", "decline", "declined"),
    ("proposed", "cancel", "cancelled"), ("confirmed", "complete", "completed"), ("confirmed", "no_show", "no_show"),
    ("confirmed", "assign", "confirmed"),
]


@pytest.mark.parametrize(("state", "action", "after"), ALLOWED)
def test_allowed_transitions(db, c, state, action, after):
    appt = _to_state(db, c, state)
    user, rpc, kw = _calls(c)[action]
    assert as_(db, user, rpc, p_appointment_id=appt, **kw)["status"] == after
    assert status(db, appt) == after


def test_the_transition_table_is_the_documented_one(db):
    states = ["requested", "proposed", "confirmed", "declined", "cancelled", "completed", "no_show"]
    allowed = {(a, b) for a in states for b in states
               if db.scalar("select private.appointment_transition_allowed(%s, %s)", (a, b))}
    assert allowed == {
        ("requested", "proposed"), ("requested", "confirmed"), ("requested", "declined"), ("requested", "cancelled"),
        ("proposed", "confirmed"), ("proposed", "requested"), ("proposed", "declined"), ("proposed", "cancelled"),
        ("confirmed", "completed"), ("confirmed", "no_show"), ("confirmed", "cancelled")}
