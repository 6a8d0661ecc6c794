"""Every RPC with hostile input: a clear, registered error and nothing written."""

from __future__ import annotations

import uuid

import pytest

from shared.dev.lint import anon_allow_list
from tests.support.appointments import hostile_cases as appointment_hostile_cases
from tests.support.factories import ensure_waiver, make_intake, make_world
from tests.support.journey_recommendations import hostile_cases as recommendation_hostile_cases

BIG = "x" * 1_000_000
TABLES = ["sessions", "session_requests", "session_offers", "session_participants", "session_events",
          "mechanic_commitments", "mechanics", "intakes", "profiles", "mechanic_reviews",
          "waiver_acceptances", "workshop_appointments"]


def snapshot(db) -> dict[str, str]:
    """A fingerprint of every table an RPC could write."""
    return {t: db.scalar(f"select md5(coalesce(string_agg(x::text, '|' order by x::text), '')) from public.{t} x")
            for t in TABLES}


@pytest.fixture
def world(db):
    w = make_world(db)
    ensure_waiver(db, w.other_mechanic)  # it holds a slot as a customer below: refused for its own slot
    return w


def cases(w):
    """(persona, rpc, kwargs, expected SQLSTATE)."""
    unknown = uuid.uuid4()
    return [
        # request_session
        (w.customer, "request_session", {"p_plan_code": None, "p_intake_id": w.intake}, "AD001"),
        (w.customer, "request_session", {"p_plan_code": "free", "p_intake_id": None}, "AD001"),
        (w.customer, "request_session", {"p_plan_code": BIG, "p_intake_id": w.intake}, "AD004"),
        (w.customer, "request_session", {"p_plan_code": "nope'; drop table x;--", "p_intake_id": w.intake}, "AD004"),
        (w.customer, "request_session", {"p_plan_code": "free", "p_intake_id": unknown}, "AD004"),
        (w.other_customer, "request_session", {"p_plan_code": "free", "p_intake_id": w.intake}, "AD004"),
        (w.customer, "request_session", {"p_plan_code": "free", "p_intake_id": "not-a-uuid"}, "22P02"),
        (w.customer, "request_session", {"p_plan_code": "free", "p_intake_id": w.intake,
                                         "p_vehicle_id": unknown}, "AD005"),  # intake already requested
        (None, "request_session", {"p_plan_code": "free", "p_intake_id": w.intake}, "AD002"),
        # accept_request / decline_offer
        (w.mechanic, "accept_request", {"p_request_id": None}, "AD001"),
        (w.mechanic, "accept_request", {"p_request_id": unknown}, "AD004"),
        (w.mechanic, "accept_request", {"p_request_id": "1; select 1"}, "22P02"),
        (None, "accept_request", {"p_request_id": w.request}, "AD002"),
        (w.mechanic, "decline_offer", {"p_request_id": None}, "AD001"),
        (w.mechanic, "decline_offer", {"p_request_id": unknown}, "AD004"),
        (w.customer, "decline_offer", {"p_request_id": w.request}, "AD003"),
        # cancel_request
        (w.customer, "cancel_request", {"p_request_id": None}, "AD001"),
        (w.customer, "cancel_request", {"p_request_id": w.request, "p_reason": BIG}, "AD001"),
        (w.customer, "cancel_request", {"p_request_id": unknown}, "AD004"),
        (w.other_customer, "cancel_request", {"p_request_id": w.request}, "AD004"),
        # start / end
        (w.customer, "start_session", {"p_session_id": None}, "AD001"),
        (w.customer, "start_session", {"p_session_id": unknown}, "AD004"),
        (w.other_customer, "start_session", {"p_session_id": w.session}, "AD004"),
        (w.customer, "end_session", {"p_session_id": w.session, "p_notes": BIG}, "AD001"),
        (w.customer, "end_session", {"p_session_id": unknown}, "AD004"),
        (w.mechanic, "end_session", {"p_session_id": w.session}, "AD004"),  # not assigned yet
        # presence
        (w.mechanic, "set_online", {"p_online": None}, "AD001"),
        (w.mechanic, "set_online", {"p_online": "maybe"}, "22P02"),
        (w.customer, "set_online", {"p_online": True}, "AD003"),
        (w.customer, "heartbeat", {}, "AD003"),
        # admin
        (w.admin, "admin_set_mechanic_status", {"p_mechanic_id": w.mechanic, "p_status": None}, "AD001"),
        (w.admin, "admin_set_mechanic_status", {"p_mechanic_id": w.mechanic, "p_status": BIG}, "AD001"),
        (w.admin, "admin_set_mechanic_status", {"p_mechanic_id": None, "p_status": "approved"}, "AD001"),
        (w.admin, "admin_set_mechanic_status", {"p_mechanic_id": unknown, "p_status": "approved"}, "AD004"),
        (w.mechanic, "admin_set_mechanic_status", {"p_mechanic_id": w.mechanic, "p_status": "approved"}, "AD003"),
        (w.admin, "admin_assign_request", {"p_request_id": None, "p_mechanic_id": w.mechanic}, "AD001"),
        (w.admin, "admin_assign_request", {"p_request_id": unknown, "p_mechanic_id": w.mechanic}, "AD004"),
        (w.admin, "admin_assign_request", {"p_request_id": w.request, "p_mechanic_id": unknown}, "AD003"),
        (w.admin, "admin_assign_request", {"p_request_id": w.request, "p_mechanic_id": w.customer}, "AD003"),
        (w.admin, "admin_assign_request", {"p_request_id": w.request, "p_mechanic_id": w.pending_mechanic}, "AD275"),
        (w.customer, "admin_assign_request", {"p_request_id": w.request, "p_mechanic_id": w.mechanic}, "AD003"),
        (w.admin, "admin_force_end_session", {"p_session_id": w.session, "p_reason": BIG}, "AD001"),
        (w.admin, "admin_force_end_session", {"p_session_id": w.session, "p_reason": "  "}, "AD001"),
        (w.admin, "admin_force_end_session", {"p_session_id": unknown, "p_reason": "x"}, "AD004"),
        (w.workshop_admin, "admin_force_end_session", {"p_session_id": w.session, "p_reason": "x"}, "AD003"),
        # rooms
        (w.customer, "request_extension", {"p_session_id": None, "p_minutes": 2}, "AD001"),
        (w.customer, "request_extension", {"p_session_id": w.session, "p_minutes": None}, "AD001"),
        (w.customer, "request_extension", {"p_session_id": unknown, "p_minutes": 2}, "AD004"),
        (w.other_customer, "request_extension", {"p_session_id": w.session, "p_minutes": 2}, "AD004"),
        (w.customer, "request_extension", {"p_session_id": w.session, "p_minutes": 2}, "AD030"),  # not live
        (w.customer, "request_extension", {"p_session_id": w.session, "p_minutes": 2**31 - 1}, "AD030"),
        (w.customer, "request_extension", {"p_session_id": w.session, "p_minutes": "many"}, "22P02"),
        # micro-sessions and shifts
        (w.mechanic, "can_accept_session", {"p_mechanic_id": None, "p_session_type": "micro",
                                            "p_duration_minutes": 5}, "AD001"),
        (w.mechanic, "can_accept_session", {"p_mechanic_id": w.mechanic, "p_session_type": "warp",
                                            "p_duration_minutes": 5}, "AD001"),
        (w.mechanic, "can_accept_session", {"p_mechanic_id": w.mechanic, "p_session_type": "micro",
                                            "p_duration_minutes": 0}, "AD001"),
        (w.mechanic, "can_accept_session", {"p_mechanic_id": w.mechanic, "p_session_type": BIG,
                                            "p_duration_minutes": 5}, "AD001"),
        (w.other_customer, "can_accept_session", {"p_mechanic_id": w.mechanic, "p_session_type": "micro",
                                                  "p_duration_minutes": 5}, "AD003"),
        (w.mechanic, "clock", {"p_action": None}, "AD001"),
        (w.mechanic, "clock", {"p_action": "teleport"}, "AD001"),
        (w.mechanic, "clock", {"p_action": "clock_out", "p_notes": BIG}, "AD001"),
        (w.mechanic, "clock", {"p_action": "clock_in"}, "AD071"),  # already on shift
        (w.customer, "clock", {"p_action": "clock_in"}, "AD003"),
        (w.customer, "clock_status", {}, "AD003"),
        (w.admin, "set_mechanic_micro_settings", {"p_mechanic_id": None}, "AD001"),
        (w.admin, "set_mechanic_micro_settings", {"p_mechanic_id": w.mechanic, "p_participation_mode": "x"}, "AD001"),
        (w.admin, "set_mechanic_micro_settings", {"p_mechanic_id": w.mechanic, "p_daily_cap": 5000}, "AD001"),
        (w.admin, "set_mechanic_micro_settings", {"p_mechanic_id": unknown, "p_daily_cap": 10}, "AD004"),
        (w.customer, "set_mechanic_micro_settings", {"p_mechanic_id": w.mechanic, "p_daily_cap": 10}, "AD003"),
        (w.mechanic, "mechanic_micro_dashboard", {"p_days": 0}, "AD001"),
        (w.customer, "mechanic_micro_dashboard", {}, "AD003"),
        (w.workshop_admin, "workshop_micro_dashboard", {"p_organization_id": None}, "AD001"),
        (w.customer, "workshop_micro_dashboard", {"p_organization_id": w.organization}, "AD003"),
        (w.customer, "admin_micro_dashboard", {}, "AD003"),
        (w.admin, "admin_micro_dashboard", {"p_days": 0}, "AD001"),
        # referral earnings (workshops)
        (w.mechanic, "referral_earnings", {"p_workshop_id": w.organization}, "AD003"),  # a member without see_earnings
        (w.customer, "referral_earnings", {"p_workshop_id": w.organization}, "AD004"),  # not a member
        (w.workshop_admin, "referral_earnings", {"p_workshop_id": unknown}, "AD004"),
        (w.workshop_admin, "referral_earnings", {"p_workshop_id": w.mechanic}, "AD004"),  # another kind of id
        (w.workshop_admin, "referral_earnings", {"p_workshop_id": "not-a-uuid"}, "22P02"),
        (None, "referral_earnings", {}, "AD002"),
        # payments
        (w.customer, "admin_refund", {"p_session_id": w.session, "p_reason": "x"}, "AD003"),
        (w.admin, "admin_refund", {"p_session_id": None, "p_reason": "x"}, "AD001"),
        (w.admin, "admin_refund", {"p_session_id": w.session, "p_amount_cents": -5, "p_reason": "x"}, "AD001"),
        (w.admin, "admin_refund", {"p_session_id": w.session, "p_reason": None}, "AD001"),
        (w.admin, "admin_refund", {"p_session_id": w.session, "p_reason": BIG}, "AD001"),
        (w.customer, "admin_grant_credit", {"p_customer_id": w.customer, "p_amount_cents": 500, "p_reason": "x"},
         "AD003"),
        (w.admin, "admin_grant_credit", {"p_customer_id": None, "p_amount_cents": 500, "p_reason": "x"}, "AD001"),
        (w.admin, "admin_grant_credit", {"p_customer_id": w.customer, "p_amount_cents": 0, "p_reason": "x"}, "AD001"),
        (w.admin, "admin_grant_credit", {"p_customer_id": w.customer, "p_amount_cents": 2**31 - 1,
                                         "p_reason": "x"}, "AD001"),
        (w.admin, "admin_grant_credit", {"p_customer_id": w.customer, "p_amount_cents": 500, "p_reason": None},
         "AD001"),
        (w.customer, "admin_payment_integrity", {}, "AD003"),
        # delivery, the objection window and standing
        (w.customer, "report_problem", {"p_session_id": None, "p_reason": "x"}, "AD001"),
        (w.customer, "report_problem", {"p_session_id": w.session, "p_reason": None}, "AD001"),
        (w.customer, "report_problem", {"p_session_id": w.session, "p_reason": BIG}, "AD001"),
        (w.customer, "report_problem", {"p_session_id": unknown, "p_reason": "x"}, "AD004"),
        (w.customer, "report_problem", {"p_session_id": "x' or 1=1", "p_reason": "x"}, "22P02"),
        (w.other_customer, "report_problem", {"p_session_id": w.session, "p_reason": "x"}, "AD004"),
        (w.customer, "report_problem", {"p_session_id": w.session, "p_reason": "x"}, "AD006"),  # not ended
        (None, "report_problem", {"p_session_id": w.session, "p_reason": "x"}, "AD002"),
        (w.customer, "admin_resolve_delivery", {"p_session_id": w.session, "p_outcome": "pay"}, "AD003"),
        (w.admin, "admin_resolve_delivery", {"p_session_id": None, "p_outcome": "pay"}, "AD001"),
        (w.admin, "admin_resolve_delivery", {"p_session_id": w.session, "p_outcome": "steal"}, "AD001"),
        (w.admin, "admin_resolve_delivery", {"p_session_id": w.session, "p_outcome": "partial"}, "AD001"),
        (w.admin, "admin_resolve_delivery", {"p_session_id": w.session, "p_outcome": "pay",
                                             "p_refund_cents": 5}, "AD001"),
        (w.admin, "admin_resolve_delivery", {"p_session_id": unknown, "p_outcome": "pay"}, "AD004"),
        (w.admin, "admin_resolve_delivery", {"p_session_id": w.session, "p_outcome": "pay"}, "AD103"),
        (w.customer, "admin_release_payouts", {"p_mechanic_id": w.mechanic}, "AD003"),
        (w.mechanic, "admin_release_payouts", {"p_mechanic_id": w.mechanic}, "AD003"),
        (w.admin, "admin_release_payouts", {"p_mechanic_id": None}, "AD001"),
        (w.admin, "admin_release_payouts", {"p_mechanic_id": unknown}, "AD004"),
        (w.customer, "admin_delivery_queue", {}, "AD003"),
        (w.mechanic, "admin_delivery_queue", {}, "AD003"),
        (w.mechanic, "admin_payment_integrity", {}, "AD003"),
        # jobs
        (w.customer, "admin_outbox", {}, "AD003"),
        (w.admin, "admin_outbox", {"p_status": "exploded"}, "AD001"),
        (w.admin, "admin_outbox", {"p_status": None}, "AD001"),
        (w.admin, "admin_outbox", {"p_limit": 0}, "AD001"),
        (w.admin, "admin_retry_outbox", {"p_id": None}, "AD001"),
        (w.admin, "admin_retry_outbox", {"p_id": -5}, "AD004"),
        (w.mechanic, "admin_retry_outbox", {"p_id": 1}, "AD003"),
        # matching
        (w.customer, "available_mechanics", {"p_limit": 0}, "AD001"),
        (w.customer, "available_mechanics", {"p_limit": 100000}, "AD001"),
        (w.customer, "available_mechanics", {"p_session_type": "telepathy"}, "AD001"),
        (w.customer, "available_mechanics", {"p_brand": BIG}, "AD001"),
        (w.customer, "available_mechanics", {"p_city": BIG}, "AD001"),
        (w.customer, "available_mechanics", {"p_specialist": True}, "AD001"),
        (None, "available_mechanics", {}, "AD002"),
        (w.customer, "admin_rank_request", {"p_request_id": w.request}, "AD003"),
        (w.mechanic, "admin_rank_request", {"p_request_id": w.request}, "AD003"),
        (w.admin, "admin_rank_request", {"p_request_id": None}, "AD001"),
        (w.admin, "admin_rank_request", {"p_request_id": unknown}, "AD004"),
        (w.admin, "admin_rank_request", {"p_request_id": w.request, "p_limit": 0}, "AD001"),
        # scheduling
        *scheduling_cases(w, unknown),
        # workshop appointments
        *appointment_hostile_cases(w, unknown),
        *recommendation_hostile_cases(w, unknown),
        # operations: vetting and suspension
        (w.mechanic, "admin_review_mechanic", {"p_mechanic_id": w.mechanic, "p_decision": "approved",
                                               "p_note": None}, "AD003"),
        (w.customer, "admin_review_mechanic", {"p_mechanic_id": w.mechanic, "p_decision": "approved",
                                               "p_note": None}, "AD003"),
        (w.admin, "admin_review_mechanic", {"p_mechanic_id": None, "p_decision": "approved", "p_note": None}, "AD001"),
        (w.admin, "admin_review_mechanic", {"p_mechanic_id": w.mechanic, "p_decision": BIG, "p_note": None}, "AD001"),
        (w.admin, "admin_review_mechanic", {"p_mechanic_id": w.mechanic, "p_decision": "rejected",
                                            "p_note": BIG}, "AD001"),
        (w.admin, "admin_review_mechanic", {"p_mechanic_id": unknown, "p_decision": "rejected", "p_note": "no"},
         "AD004"),
        (w.admin, "admin_review_mechanic", {"p_mechanic_id": w.mechanic, "p_decision": "rejected",
                                            "p_note": "no"}, "AD261"),  # approved already
        (None, "admin_review_mechanic", {"p_mechanic_id": w.mechanic, "p_decision": "approved", "p_note": None},
         "AD002"),
        (w.mechanic, "admin_mechanic_vetting", {"p_mechanic_id": w.mechanic}, "AD003"),
        (w.admin, "admin_mechanic_vetting", {"p_mechanic_id": None}, "AD001"),
        (w.admin, "admin_mechanic_vetting", {"p_mechanic_id": unknown}, "AD004"),
        (w.customer, "my_vetting", {}, "AD003"),
        (None, "my_vetting", {}, "AD002"),
        (w.mechanic, "admin_suspend_mechanic", {"p_mechanic_id": w.mechanic, "p_reason": "x"}, "AD003"),
        (w.admin, "admin_suspend_mechanic", {"p_mechanic_id": None, "p_reason": "x"}, "AD001"),
        (w.admin, "admin_suspend_mechanic", {"p_mechanic_id": w.mechanic, "p_reason": None}, "AD001"),
        (w.admin, "admin_suspend_mechanic", {"p_mechanic_id": w.mechanic, "p_reason": BIG}, "AD001"),
        (w.admin, "admin_suspend_mechanic", {"p_mechanic_id": unknown, "p_reason": "x"}, "AD004"),
        (w.admin, "admin_suspend_mechanic", {"p_mechanic_id": "x'; drop table y;--", "p_reason": "x"}, "22P02"),
        (w.customer, "admin_reinstate_mechanic", {"p_mechanic_id": w.mechanic}, "AD003"),
        (w.admin, "admin_reinstate_mechanic", {"p_mechanic_id": None}, "AD001"),
        (w.admin, "admin_reinstate_mechanic", {"p_mechanic_id": w.mechanic, "p_note": BIG}, "AD001"),
        (w.admin, "admin_reinstate_mechanic", {"p_mechanic_id": w.mechanic}, "AD266"),  # not suspended
        (w.admin, "admin_reinstate_mechanic", {"p_mechanic_id": unknown}, "AD004"),
        # operations: scheduling analytics
        (w.admin, "admin_scheduling_stats", {"p_from": None, "p_to": "2026-06-01"}, "AD001"),
        (w.admin, "admin_scheduling_stats", {"p_from": "2026-06-02", "p_to": "2026-06-01"}, "AD270"),
        (w.admin, "admin_scheduling_stats", {"p_from": "2024-06-01", "p_to": "2026-06-01"}, "AD271"),
        (w.admin, "admin_scheduling_stats", {"p_from": "not-a-date", "p_to": "2026-06-01"}, "22007"),
        (w.customer, "admin_scheduling_stats", {"p_from": "2026-06-01", "p_to": "2026-06-02"}, "AD003"),
        (w.mechanic, "admin_scheduling_stats", {"p_from": "2026-06-01", "p_to": "2026-06-02"}, "AD003"),
        (None, "admin_scheduling_stats", {"p_from": "2026-06-01", "p_to": "2026-06-02"}, "AD002"),
        (w.mechanic, "my_scheduling_stats", {"p_from": "2026-06-01", "p_to": None}, "AD001"),
        (w.mechanic, "my_scheduling_stats", {"p_from": "2026-06-02", "p_to": "2026-06-01"}, "AD270"),
        (w.mechanic, "my_scheduling_stats", {"p_from": "2024-06-01", "p_to": "2026-06-01"}, "AD271"),
        (w.mechanic, "my_scheduling_stats", {"p_from": "2026-06-01", "p_to": "June"}, "22007"),
        (w.customer, "my_scheduling_stats", {"p_from": "2026-06-01", "p_to": "2026-06-02"}, "AD272"),
        (w.pending_mechanic, "my_scheduling_stats", {"p_from": "2026-06-01", "p_to": "2026-06-02"}, "AD272"),
        (None, "my_scheduling_stats", {"p_from": "2026-06-01", "p_to": "2026-06-02"}, "AD002"),
        # operations: overview
        (w.admin, "admin_overview", {"p_from": None, "p_to": "2030-01-02T00:00:00Z"}, "AD001"),
        (w.admin, "admin_overview", {"p_from": "2030-01-02T00:00:00Z", "p_to": "2030-01-01T00:00:00Z"}, "AD255"),
        (w.admin, "admin_overview", {"p_from": "-infinity", "p_to": "2030-01-01T00:00:00Z"}, "AD255"),
        (w.admin, "admin_overview", {"p_from": "2000-01-01T00:00:00Z", "p_to": "2030-01-01T00:00:00Z"}, "AD256"),
        (w.admin, "admin_overview", {"p_from": BIG, "p_to": "2030-01-01T00:00:00Z"}, "22007"),
        (w.customer, "admin_overview", {"p_from": "2030-01-01T00:00:00Z", "p_to": "2030-01-02T00:00:00Z"}, "AD003"),
        (None, "admin_overview", {"p_from": "2030-01-01T00:00:00Z", "p_to": "2030-01-02T00:00:00Z"}, "AD002"),
        (w.mechanic, "admin_run_sweep", {}, "AD003"),
        (w.workshop_admin, "admin_run_sweep", {}, "AD003"),
        (None, "admin_run_sweep", {}, "AD002"),
        # privacy: export and erasure
        (None, "export_my_data", {}, "AD002"),
        (None, "request_account_deletion", {}, "AD002"),
        (None, "cancel_account_deletion", {}, "AD002"),
        (w.customer, "cancel_account_deletion", {}, "AD281"),
        (None, "admin_account_deletions", {}, "AD002"),
        (w.customer, "admin_account_deletions", {}, "AD003"),
        (w.mechanic, "admin_account_deletions", {}, "AD003"),
        (w.admin, "admin_account_deletions", {"p_status": "'; drop table x;--"}, "AD001"),
        (w.admin, "admin_account_deletions", {"p_status": BIG}, "AD001"),
        (w.admin, "admin_account_deletions", {"p_limit": 0}, "AD001"),
        (w.admin, "admin_account_deletions", {"p_limit": None}, "AD001"),
        # rules: the admin's offer, the listing, the preferred mechanic (docs/operations.md#rules)
        (w.admin, "admin_assign_request", {"p_request_id": w.request, "p_mechanic_id": None}, "AD001"),
        (w.admin, "admin_assign_request", {"p_request_id": "not-a-uuid", "p_mechanic_id": w.mechanic}, "22P02"),
        (w.workshop_admin, "admin_assign_request", {"p_request_id": w.request, "p_mechanic_id": w.mechanic}, "AD003"),
        (w.mechanic, "admin_assign_request", {"p_request_id": w.request, "p_mechanic_id": w.mechanic}, "AD003"),
        (None, "admin_assign_request", {"p_request_id": w.request, "p_mechanic_id": w.mechanic}, "AD002"),
        (w.customer, "available_mechanics", {"p_session_type": "teleport"}, "AD001"),
        (w.customer, "available_mechanics", {"p_session_type": BIG}, "AD001"),
        (w.customer, "request_session", {"p_plan_code": "free", "p_intake_id": unknown, "p_preferred_mechanic_id": unknown},
         "AD004"),
    ]


def scheduling_cases(w, unknown):
    m, om, c = w.mechanic, w.other_mechanic, w.customer
    day = [{"day_of_week": 1, "start": "09:00", "end": "10:00"}]
    urls = "2030-01-01T10:00:00Z"
    return [
        (om, "set_weekly_availability", {"p_timezone": "Mars/Olympus", "p_blocks": day}, "AD001"),
        (om, "set_weekly_availability", {"p_timezone": BIG, "p_blocks": day}, "AD001"),
        (om, "set_weekly_availability", {"p_timezone": "UTC", "p_blocks": None}, "AD001"),
        (om, "set_weekly_availability", {"p_timezone": "UTC", "p_blocks": {"day_of_week": 1}}, "AD001"),
        (om, "set_weekly_availability", {"p_timezone": "UTC", "p_blocks": [{**day[0], "day_of_week": 7}]}, "AD001"),
        (om, "set_weekly_availability", {"p_timezone": "UTC", "p_blocks": [{**day[0], "end": "08:00"}]}, "AD001"),
        (om, "set_weekly_availability", {"p_timezone": "UTC", "p_blocks": [{**day[0], "start": "9am"}]}, "AD001"),
        (om, "set_weekly_availability", {"p_timezone": "UTC", "p_blocks": [{**day[0], "price_multiplier": 99}]},
         "AD001"),
        (om, "set_weekly_availability", {"p_timezone": "UTC", "p_blocks": [{**day[0], "x": 1}]}, "AD001"),
        (om, "set_weekly_availability", {"p_timezone": "UTC",
                                         "p_blocks": [*day, {**day[0], "start": "09:30", "end": "11:00"}]}, "AD001"),
        (om, "set_weekly_availability", {"p_timezone": "UTC", "p_blocks": day * 101}, "AD001"),
        (om, "set_weekly_availability", {"p_timezone": "UTC", "p_blocks": day, "p_mechanic_id": m}, "AD003"),
        (c, "set_weekly_availability", {"p_timezone": "UTC", "p_blocks": day}, "AD003"),
        (None, "set_weekly_availability", {"p_timezone": "UTC", "p_blocks": day}, "AD002"),
        (om, "add_time_off", {"p_start": urls, "p_end": urls}, "AD001"),
        (om, "add_time_off", {"p_start": None, "p_end": urls}, "AD001"),
        (om, "add_time_off", {"p_start": "infinity", "p_end": "infinity"}, "AD001"),
        (om, "add_time_off", {"p_start": "2030-01-01", "p_end": "2032-01-01"}, "AD001"),
        (om, "add_time_off", {"p_start": "2030-01-01", "p_end": "2030-01-02", "p_reason": BIG}, "AD001"),
        (c, "add_time_off", {"p_start": "2030-01-01", "p_end": "2030-01-02"}, "AD003"),
        (om, "remove_time_off", {"p_time_off_id": None}, "AD001"),
        (om, "remove_time_off", {"p_time_off_id": unknown}, "AD004"),
        (None, "remove_time_off", {"p_time_off_id": unknown}, "AD002"),
        (om, "set_booking_rules", {"p_rules": {"buffer_minutes": -1}}, "AD001"),
        (om, "set_booking_rules", {"p_rules": {"buffer_minutes": 1.5}}, "AD001"),
        (om, "set_booking_rules", {"p_rules": {"slot_step_minutes": 7}}, "AD001"),
        (om, "set_booking_rules", {"p_rules": {"max_sessions_per_day": "3"}}, "AD001"),
        (om, "set_booking_rules", {"p_rules": {"max_advance_days": 10**12}}, "AD001"),
        (om, "set_booking_rules", {"p_rules": {"nope": 1}}, "AD001"),
        (om, "set_booking_rules", {"p_rules": [1]}, "AD001"),
        (om, "set_booking_rules", {"p_rules": {"instant_booking": "yes"}}, "AD001"),
        (c, "set_booking_rules", {"p_rules": {}}, "AD003"),
        (w.workshop_admin, "set_workshop_hours", {"p_organization_id": None, "p_hours": []}, "AD001"),
        (c, "set_workshop_hours", {"p_organization_id": w.organization, "p_hours": []}, "AD003"),
        (w.workshop_admin, "set_workshop_hours", {"p_organization_id": w.organization,
                                                  "p_hours": [{"day_of_week": 1, "open": "17:00", "close": "09:00"}]},
         "AD001"),
        (w.workshop_admin, "set_workshop_hours", {"p_organization_id": w.organization,
                                                  "p_hours": [{"day_of_week": 1, "open": "09:00", "close": "17:00"}] * 2},
         "AD001"),
        (w.workshop_admin, "set_workshop_hours", {"p_organization_id": w.organization, "p_hours": [],
                                                  "p_timezone": "Nowhere/Land"}, "AD001"),
        (w.workshop_admin, "set_workshop_hours", {"p_organization_id": w.organization, "p_hours": [],
                                                  "p_capacity": 0}, "AD001"),
        (om, "set_date_override", {"p_date": None, "p_blocks": []}, "AD001"),
        (om, "set_date_override", {"p_date": "2999-01-01", "p_blocks": []}, "AD001"),
        (om, "set_date_override", {"p_date": "2027-01-15", "p_blocks": {"start": "09:00"}}, "AD001"),
        (om, "set_date_override", {"p_date": "2027-01-15", "p_blocks": [{"start": "10:00", "end": "09:00"}]}, "AD001"),
        (c, "set_date_override", {"p_date": "2027-01-15", "p_blocks": []}, "AD003"),
        (om, "set_date_override", {"p_date": "2027-01-15", "p_blocks": [], "p_organization_id": w.organization},
         "AD003"),
        (c, "available_slots", {"p_mechanic_id": None, "p_from": urls, "p_to": urls, "p_plan_code": "free"}, "AD001"),
        (c, "available_slots", {"p_mechanic_id": om, "p_from": "2030-01-02", "p_to": "2030-01-01",
                                "p_plan_code": "free"}, "AD001"),
        (c, "available_slots", {"p_mechanic_id": om, "p_from": "2030-01-01", "p_to": "2031-01-01",
                                "p_plan_code": "free"}, "AD001"),
        (c, "available_slots", {"p_mechanic_id": om, "p_from": "2030-01-01", "p_to": "2030-01-02",
                                "p_plan_code": BIG}, "AD004"),
        (c, "available_slots", {"p_mechanic_id": unknown, "p_from": "2030-01-01", "p_to": "2030-01-02",
                                "p_plan_code": "free"}, "AD004"),
        (None, "available_slots", {"p_mechanic_id": om, "p_from": "2030-01-01", "p_to": "2030-01-02",
                                   "p_plan_code": "free"}, "AD002"),
        (c, "mechanics_free_at", {"p_start": None, "p_plan_code": "free"}, "AD001"),
        (c, "mechanics_free_at", {"p_start": urls, "p_plan_code": "free", "p_limit": 0}, "AD001"),
        (c, "mechanics_free_at", {"p_start": urls, "p_plan_code": "free", "p_city": BIG}, "AD001"),
        (c, "mechanics_free_at", {"p_start": urls, "p_plan_code": "nope"}, "AD004"),
        (c, "hold_slot", {"p_mechanic_id": None, "p_start": urls, "p_plan_code": "free"}, "AD001"),
        (c, "hold_slot", {"p_mechanic_id": om, "p_start": "infinity", "p_plan_code": "free"}, "AD001"),
        (c, "hold_slot", {"p_mechanic_id": unknown, "p_start": urls, "p_plan_code": "free"}, "AD004"),
        (c, "hold_slot", {"p_mechanic_id": w.pending_mechanic, "p_start": urls, "p_plan_code": "free"}, "AD004"),
        (c, "hold_slot", {"p_mechanic_id": om, "p_start": urls, "p_plan_code": BIG}, "AD004"),
        (c, "hold_slot", {"p_mechanic_id": om, "p_start": urls, "p_plan_code": "free"}, "AD052"),  # no hours
        (om, "hold_slot", {"p_mechanic_id": om, "p_start": urls, "p_plan_code": "free"}, "AD003"),
        (c, "release_hold", {"p_hold_id": None}, "AD001"),
        (c, "release_hold", {"p_hold_id": unknown}, "AD004"),
        (c, "book_slot", {"p_hold_id": None, "p_intake_id": w.intake}, "AD001"),
        (c, "book_slot", {"p_hold_id": unknown, "p_intake_id": w.intake}, "AD004"),
        (c, "reschedule_session", {"p_session_id": None, "p_new_start": urls}, "AD001"),
        (c, "reschedule_session", {"p_session_id": unknown, "p_new_start": urls}, "AD004"),
        (c, "reschedule_session", {"p_session_id": w.session, "p_new_start": "infinity"}, "AD001"),
        (c, "reschedule_session", {"p_session_id": w.session, "p_new_start": urls}, "AD006"),  # not booked
        (w.other_customer, "reschedule_session", {"p_session_id": w.session, "p_new_start": urls}, "AD004"),
        (c, "cancel_scheduled_session", {"p_session_id": None}, "AD001"),
        (c, "cancel_scheduled_session", {"p_session_id": unknown}, "AD004"),
        (c, "cancel_scheduled_session", {"p_session_id": w.session, "p_reason": BIG}, "AD001"),
        (c, "cancel_scheduled_session", {"p_session_id": w.session}, "AD006"),  # pending, not booked
        (c, "mechanic_calendar", {"p_from": "2030-01-01", "p_to": "2030-01-02"}, "AD003"),
        (om, "mechanic_calendar", {"p_from": "2030-01-02", "p_to": "2030-01-01"}, "AD001"),
        (om, "mechanic_calendar", {"p_from": "2030-01-01", "p_to": "2030-01-02", "p_mechanic_id": m}, "AD003"),
        (om, "mechanic_calendar", {"p_from": "2030-01-01", "p_to": "2030-01-02", "p_mechanic_id": unknown}, "AD004"),
        # reviews (tests/reviews/ has every persona and tag case)
        (c, "submit_review", {"p_session_id": None, "p_rating": 5}, "AD001"),
        (c, "submit_review", {"p_session_id": w.session, "p_rating": 9}, "AD001"),
        (c, "submit_review", {"p_session_id": w.session, "p_rating": 5, "p_text": BIG}, "AD001"),
        (c, "submit_review", {"p_session_id": unknown, "p_rating": 5}, "AD004"),
        (c, "submit_review", {"p_session_id": "not-a-uuid", "p_rating": 5}, "22P02"),
        (w.other_customer, "submit_review", {"p_session_id": w.session, "p_rating": 5}, "AD004"),
        (c, "submit_review", {"p_session_id": w.session, "p_rating": 5}, "AD110"),  # pending, not delivered
        (None, "submit_review", {"p_session_id": w.session, "p_rating": 5}, "AD002"),
        (m, "reply_to_review", {"p_review_id": None, "p_text": "thanks"}, "AD001"),
        (m, "reply_to_review", {"p_review_id": unknown, "p_text": BIG}, "AD001"),
        (m, "reply_to_review", {"p_review_id": unknown, "p_text": "thanks"}, "AD004"),
        (None, "reply_to_review", {"p_review_id": unknown, "p_text": "thanks"}, "AD002"),
        (w.admin, "admin_hide_review", {"p_review_id": None, "p_reason": "abuse"}, "AD001"),
        (w.admin, "admin_hide_review", {"p_review_id": unknown, "p_reason": BIG}, "AD001"),
        (w.admin, "admin_hide_review", {"p_review_id": unknown, "p_reason": "abuse"}, "AD004"),
        (m, "admin_hide_review", {"p_review_id": unknown, "p_reason": "abuse"}, "AD003"),
        # trust: columns, workshop members, the waiver
        (c, "get_my_mechanic", {}, "AD004"),  # a customer has no mechanic row
        (None, "get_my_mechanic", {}, "AD002"),
        (w.workshop_admin, "get_workshop_members", {"p_organization_id": None}, "AD001"),
        (w.workshop_admin, "get_workshop_members", {"p_organization_id": unknown}, "AD004"),
        (m, "get_workshop_members", {"p_organization_id": w.organization}, "AD004"),  # a member without manage_roster
        (c, "get_workshop_members", {"p_organization_id": w.organization}, "AD004"),
        (om, "get_session_brief", {"p_session_id": None}, "AD001"),
        (om, "get_session_brief", {"p_session_id": unknown}, "AD004"),
        (om, "get_session_brief", {"p_session_id": w.session}, "AD004"),  # someone else's session
        (w.other_customer, "get_session_brief", {"p_session_id": w.session}, "AD004"),
        (w.workshop_admin, "get_session_brief", {"p_session_id": w.session}, "AD004"),
        (w.other_customer, "accept_waiver", {"p_version": None, "p_adult": True}, "AD001"),
        (w.other_customer, "accept_waiver", {"p_version": "v1.0", "p_adult": None}, "AD001"),
        (w.other_customer, "accept_waiver", {"p_version": BIG, "p_adult": True}, "AD001"),
        (w.other_customer, "accept_waiver", {"p_version": "v1.0", "p_adult": False}, "AD001"),
        (w.other_customer, "accept_waiver", {"p_version": "v0.9", "p_adult": True}, "AD123"),
        (w.other_customer, "accept_waiver", {"p_version": "", "p_adult": True}, "AD123"),
        (None, "accept_waiver", {"p_version": "v1.0", "p_adult": True}, "AD002"),
        # workshops: onboarding and roster (tests/workshops has the full cases per role)
        (c, "create_workshop", {"p_name": None, "p_timezone": "UTC"}, "AD001"),
        (c, "create_workshop", {"p_name": BIG, "p_timezone": "UTC"}, "AD001"),
        (c, "create_workshop", {"p_name": "Bay", "p_timezone": "Mars/Base"}, "AD001"),
        (c, "create_workshop", {"p_name": "Bay", "p_timezone": "UTC", "p_details": {"status": "verified"}}, "AD001"),
        (None, "create_workshop", {"p_name": "Bay", "p_timezone": "UTC"}, "AD002"),
        (w.workshop_admin, "update_workshop_details", {"p_workshop_id": None, "p_details": {}}, "AD001"),
        (w.workshop_admin, "update_workshop_details", {"p_workshop_id": w.organization,
                                                       "p_details": {"description": BIG * 2}}, "AD001"),
        (m, "update_workshop_details", {"p_workshop_id": w.organization, "p_details": {"city": "x"}}, "AD003"),
        (c, "update_workshop_details", {"p_workshop_id": w.organization, "p_details": {"city": "x"}}, "AD004"),
        (w.workshop_admin, "admin_set_workshop_status", {"p_workshop_id": w.organization, "p_status": "verified"},
         "AD003"),
        (w.admin, "admin_set_workshop_status", {"p_workshop_id": unknown, "p_status": "verified"}, "AD004"),
        (w.admin, "admin_set_workshop_status", {"p_workshop_id": w.organization, "p_status": BIG}, "AD001"),
        (w.workshop_admin, "invite_to_workshop", {"p_workshop_id": w.organization, "p_email": BIG,
                                                  "p_role": "mechanic"}, "AD001"),
        (w.workshop_admin, "invite_to_workshop", {"p_workshop_id": w.organization, "p_email": "x@example.test",
                                                  "p_role": "owner"}, "AD001"),
        (m, "invite_to_workshop", {"p_workshop_id": w.organization, "p_email": "x@example.test",
                                   "p_role": "mechanic"}, "AD003"),
        (c, "invite_to_workshop", {"p_workshop_id": w.organization, "p_email": "x@example.test",
                                   "p_role": "mechanic"}, "AD004"),
        (c, "accept_workshop_invitation", {"p_token": None}, "AD150"),
        (c, "accept_workshop_invitation", {"p_token": BIG}, "AD150"),
        (None, "accept_workshop_invitation", {"p_token": "x"}, "AD002"),
        (w.workshop_admin, "revoke_invitation", {"p_invitation_id": None}, "AD001"),
        (w.workshop_admin, "revoke_invitation", {"p_invitation_id": unknown}, "AD004"),
        (w.workshop_admin, "remove_workshop_member", {"p_workshop_id": w.organization, "p_user_id": None}, "AD001"),
        (w.workshop_admin, "remove_workshop_member", {"p_workshop_id": w.organization,
                                                      "p_user_id": w.workshop_admin}, "AD153"),
        (m, "remove_workshop_member", {"p_workshop_id": w.organization, "p_user_id": w.workshop_admin}, "AD003"),
        (c, "leave_workshop", {"p_workshop_id": w.organization}, "AD004"),
        (w.workshop_admin, "leave_workshop", {"p_workshop_id": w.organization}, "AD153"),
        (w.workshop_admin, "leave_workshop", {"p_workshop_id": None}, "AD001"),
        (w.workshop_admin, "transfer_workshop_ownership", {"p_workshop_id": w.organization,
                                                           "p_new_owner_id": c}, "AD004"),
        (m, "transfer_workshop_ownership", {"p_workshop_id": w.organization, "p_new_owner_id": m}, "AD003"),
        # workshops: specialists, dispatch, the directory (tests/workshops/ has every persona)
        (w.workshop_admin, "set_mechanic_specialization",
         {"p_mechanic_id": None, "p_is_brand_specialist": True, "p_brands": "{Honda}"}, "AD001"),
        (w.workshop_admin, "set_mechanic_specialization",
         {"p_mechanic_id": m, "p_is_brand_specialist": True, "p_brands": "{" + "x" * 31 + "}"}, "AD001"),
        (w.workshop_admin, "set_mechanic_specialization",
         {"p_mechanic_id": unknown, "p_is_brand_specialist": True, "p_brands": "{Honda}"}, "AD004"),
        (w.workshop_admin, "set_mechanic_specialization",
         {"p_mechanic_id": om, "p_is_brand_specialist": True, "p_brands": "{Honda}"}, "AD003"),
        (m, "set_mechanic_specialization",
         {"p_mechanic_id": m, "p_is_brand_specialist": True, "p_brands": "{Honda}"}, "AD003"),
        (None, "set_mechanic_specialization",
         {"p_mechanic_id": m, "p_is_brand_specialist": True, "p_brands": "{Honda}"}, "AD002"),
        (w.workshop_admin, "pause_micro", {"p_mechanic_id": m, "p_until": None}, "AD001"),
        (w.workshop_admin, "pause_micro", {"p_mechanic_id": m, "p_until": "2000-01-01T00:00:00Z"}, "AD001"),
        (w.workshop_admin, "pause_micro", {"p_mechanic_id": unknown, "p_until": "2999-01-01T00:00:00Z"}, "AD001"),
        (m, "pause_micro", {"p_mechanic_id": m, "p_until": "2000-01-01T00:00:00Z"}, "AD001"),
        (None, "pause_micro", {"p_mechanic_id": m, "p_until": "2000-01-01T00:00:00Z"}, "AD002"),
        (w.workshop_admin, "resume_micro", {"p_mechanic_id": None}, "AD001"),
        (w.workshop_admin, "resume_micro", {"p_mechanic_id": unknown}, "AD004"),
        (w.workshop_admin, "resume_micro", {"p_mechanic_id": om}, "AD003"),  # not its mechanic
        (m, "resume_micro", {"p_mechanic_id": m}, "AD003"),
        (None, "resume_micro", {"p_mechanic_id": m}, "AD002"),
        (w.workshop_admin, "approve_micro_accept", {"p_request_id": None}, "AD001"),
        (w.workshop_admin, "approve_micro_accept", {"p_request_id": unknown}, "AD004"),
        (w.workshop_admin, "approve_micro_accept", {"p_request_id": w.request}, "AD004"),  # nobody accepted it
        (w.workshop_admin, "approve_micro_accept", {"p_request_id": "not-a-uuid"}, "22P02"),
        (None, "approve_micro_accept", {"p_request_id": w.request}, "AD002"),
        (w.workshop_admin, "micro_approvals_pending", {"p_workshop_id": None}, "AD001"),
        (w.workshop_admin, "micro_approvals_pending", {"p_workshop_id": unknown}, "AD004"),
        (m, "micro_approvals_pending", {"p_workshop_id": w.organization}, "AD004"),  # a member without dispatch
        (c, "micro_approvals_pending", {"p_workshop_id": w.organization}, "AD004"),
        (None, "micro_approvals_pending", {"p_workshop_id": w.organization}, "AD002"),
        (c, "find_workshops", {"p_limit": 0}, "AD001"),
        (c, "find_workshops", {"p_latitude": 45.0}, "AD001"),
        (c, "find_workshops", {"p_city": BIG}, "AD001"),
        (c, "find_workshops", {"p_brand": " "}, "AD001"),
        # the journey: intake files and the structured summary (docs/journey.md)
        (w.customer, "list_intake_files", {}, "AD001"),
        (w.customer, "list_intake_files", {"p_request_id": w.request, "p_session_id": w.session}, "AD001"),
        (w.other_customer, "list_intake_files", {"p_request_id": w.request}, "AD004"),
        (w.customer, "list_intake_files", {"p_session_id": unknown}, "AD004"),
        (None, "list_intake_files", {"p_request_id": w.request}, "AD002"),
        (w.mechanic, "save_summary", {"p_session_id": w.session, "p_summary": {"findings": "x"}}, "AD004"),
        (w.customer, "save_summary", {"p_session_id": w.session, "p_summary": {"findings": BIG}}, "AD003"),
        (w.customer, "save_summary", {"p_session_id": None, "p_summary": {}}, "AD001"),
        (w.other_customer, "save_summary", {"p_session_id": w.session, "p_summary": {}}, "AD004"),
        (None, "save_summary", {"p_session_id": w.session, "p_summary": {}}, "AD002"),
        (w.customer, "submit_summary", {"p_session_id": w.session}, "AD003"),
        (w.mechanic, "submit_summary", {"p_session_id": unknown}, "AD004"),
        (w.customer, "submit_summary", {"p_session_id": None}, "AD001"),
        (w.customer, "get_session_summary", {"p_session_id": None}, "AD001"),
        (w.other_customer, "get_session_summary", {"p_session_id": w.session}, "AD004"),
        (None, "get_session_summary", {"p_session_id": w.session}, "AD002"),
        # email delivery events (docs/journey.md#delivery-events)
        (w.admin, "admin_email_suppressions", {"p_limit": 0}, "AD001"),
        (w.admin, "admin_email_suppressions", {"p_active_only": None}, "AD001"),
        (c, "admin_email_suppressions", {}, "AD003"),
        (None, "admin_email_suppressions", {}, "AD002"),
        (w.admin, "admin_email_deliveries", {"p_user_id": None}, "AD001"),
        (w.admin, "admin_email_deliveries", {"p_user_id": c, "p_limit": 5000}, "AD001"),
        (c, "admin_email_deliveries", {"p_user_id": c}, "AD003"),
        (w.admin, "admin_lift_email_suppression", {"p_address": None}, "AD001"),
        (w.admin, "admin_lift_email_suppression", {"p_address": BIG}, "AD001"),
        (w.admin, "admin_lift_email_suppression", {"p_address": "nobody@example.com", "p_note": BIG}, "AD001"),
        (w.admin, "admin_lift_email_suppression", {"p_address": "nobody@example.com"}, "AD004"),
        (c, "admin_lift_email_suppression", {"p_address": "nobody@example.com"}, "AD003"),
        # the funnel's reports (docs/journey.md#interactions-and-the-funnel)
        (w.admin, "admin_funnel", {"p_from": None, "p_to": "2026-06-01"}, "AD245"),
        (w.admin, "admin_funnel", {"p_from": "2026-06-02", "p_to": "2026-06-01"}, "AD245"),
        (w.admin, "admin_funnel", {"p_from": "2024-06-01", "p_to": "2026-06-01"}, "AD246"),
        (w.admin, "admin_funnel", {"p_from": "2026-06-01", "p_to": "2026-06-02", "p_group": "day"}, "AD247"),
        (w.admin, "admin_funnel", {"p_from": "not-a-date", "p_to": "2026-06-02"}, "22007"),
        (c, "admin_funnel", {"p_from": "2026-06-01", "p_to": "2026-06-02"}, "AD003"),
        (None, "admin_funnel", {"p_from": "2026-06-01", "p_to": "2026-06-02"}, "AD002"),
        (w.admin, "admin_retention", {"p_from": None, "p_to": None}, "AD245"),
        (w.admin, "admin_retention", {"p_from": "2024-06-01", "p_to": "2026-06-01"}, "AD246"),
        (c, "admin_retention", {"p_from": "2026-06-01", "p_to": "2026-06-02"}, "AD003"),
        (w.admin, "admin_customer_timeline", {"p_customer_id": None}, "AD001"),
        (w.admin, "admin_customer_timeline", {"p_customer_id": unknown}, "AD004"),
        (w.admin, "admin_customer_timeline", {"p_customer_id": "not-a-uuid"}, "22P02"),
        (c, "admin_customer_timeline", {"p_customer_id": c}, "AD003"),
        (c, "ask_follow_up", {"p_session_id": None, "p_question": "Is it the rotors?"}, "AD001"),
        (c, "ask_follow_up", {"p_session_id": w.session, "p_question": BIG}, "AD001"),
        (c, "ask_follow_up", {"p_session_id": w.session, "p_question": " "}, "AD001"),
        (c, "ask_follow_up", {"p_session_id": "not-a-uuid", "p_question": "Is it the rotors?"}, "22P02"),
        (c, "ask_follow_up", {"p_session_id": unknown, "p_question": "Is it the rotors?"}, "AD004"),
        (c, "ask_follow_up", {"p_session_id": w.session, "p_question": "Is it the rotors?"}, "AD215"),  # not delivered
        (m, "ask_follow_up", {"p_session_id": w.session, "p_question": "Is it the rotors?"}, "AD004"),
        (None, "ask_follow_up", {"p_session_id": w.session, "p_question": "Is it the rotors?"}, "AD002"),
        # operations: intakes, export, audit
        (w.admin, "admin_update_intake", {"p_intake_id": None, "p_status": "resolved"}, "AD001"),
        (w.admin, "admin_update_intake", {"p_intake_id": unknown, "p_status": "resolved"}, "AD004"),
        (w.admin, "admin_update_intake", {"p_intake_id": "not-a-uuid", "p_status": "resolved"}, "22P02"),
        (w.admin, "admin_update_intake", {"p_intake_id": w.intake, "p_status": BIG}, "AD001"),
        (w.admin, "admin_update_intake", {"p_intake_id": w.intake, "p_status": None}, "AD001"),
        (w.admin, "admin_update_intake", {"p_intake_id": w.intake, "p_status": "in_progress"}, "AD250"),
        (w.admin, "admin_update_intake", {"p_intake_id": w.intake, "p_status": "resolved"}, "AD251"),  # active session
        (w.admin, "admin_update_intake", {"p_intake_id": w.intake, "p_status": "new", "p_note": BIG}, "AD001"),
        (c, "admin_update_intake", {"p_intake_id": w.intake, "p_status": "resolved"}, "AD003"),
        (m, "admin_update_intake", {"p_intake_id": w.intake, "p_status": "resolved"}, "AD003"),
        (None, "admin_update_intake", {"p_intake_id": w.intake, "p_status": "resolved"}, "AD002"),
        (w.admin, "admin_bulk_update_intakes", {"p_intake_ids": None, "p_status": "resolved"}, "AD001"),
        (w.admin, "admin_bulk_update_intakes", {"p_intake_ids": "{}", "p_status": "resolved"}, "AD001"),
        (w.admin, "admin_bulk_update_intakes", {"p_intake_ids": "{not-a-uuid}", "p_status": "resolved"}, "22P02"),
        (w.admin, "admin_bulk_update_intakes", {"p_intake_ids": f"{{{unknown}}}", "p_status": "resolved"}, "AD004"),
        (w.admin, "admin_bulk_update_intakes", {"p_intake_ids": f"{{{w.intake}}}", "p_status": "bogus"}, "AD001"),
        (c, "admin_bulk_update_intakes", {"p_intake_ids": f"{{{w.intake}}}", "p_status": "resolved"}, "AD003"),
        (None, "admin_bulk_update_intakes", {"p_intake_ids": f"{{{w.intake}}}", "p_status": "resolved"}, "AD002"),
        (w.admin, "admin_export_intakes", {"p_from": None, "p_to": "2026-11-30"}, "AD001"),
        (w.admin, "admin_export_intakes", {"p_from": "2026-12-01", "p_to": "2026-11-30"}, "AD001"),
        (w.admin, "admin_export_intakes", {"p_from": "2020-01-01", "p_to": "2026-11-30"}, "AD253"),
        (w.admin, "admin_export_intakes", {"p_from": "soon", "p_to": "2026-11-30"}, "22007"),
        (c, "admin_export_intakes", {"p_from": "2026-11-01", "p_to": "2026-11-30"}, "AD003"),
        (None, "admin_export_intakes", {"p_from": "2026-11-01", "p_to": "2026-11-30"}, "AD002"),
        (w.admin, "admin_audit", {"p_limit": 0}, "AD001"),
        (w.admin, "admin_audit", {"p_limit": 1_000_000}, "AD001"),
        (w.admin, "admin_audit", {"p_subject_id": "not-a-uuid"}, "22P02"),
        (m, "admin_audit", {"p_subject_id": w.session}, "AD003"),
        (None, "admin_audit", {}, "AD002"),
    ]


def test_hostile_input_is_refused_and_writes_nothing(db, world):
    before = snapshot(db)
    seen = set()
    for persona, rpc, kwargs, expected in cases(world):
        if persona is None:
            ctx = db.as_role("authenticated", {"role": "authenticated"})  # a token without a user
        else:
            ctx = db.as_user(persona)
        with ctx:
            code = db.rpc_error(rpc, **kwargs)
        shown = {k: ("<big>" if isinstance(v, str) and len(v) > 80 else v) for k, v in kwargs.items()}
        assert code == expected, (rpc, shown, code)
        seen.add(rpc)
    assert snapshot(db) == before
    public_rpcs = {r["proname"] for r in db.all(
        "select p.proname from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
        " where n.nspname = 'public' and has_function_privilege('authenticated', p.oid, 'execute')")}
    assert public_rpcs <= seen, f"RPCs without hostile-input cases: {public_rpcs - seen}"


def test_anon_cannot_call_any_rpc(db, world):
    rpcs = db.all("select p.oid::regprocedure::text as sig from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
                  " where n.nspname = 'public' and p.prokind = 'f'")
    assert rpcs
    allowed = set(anon_allow_list())  # public on purpose (pyproject.toml), e.g. the workshop directory search
    for row in rpcs:
        if row["sig"].split("(")[0] in allowed:
            continue
        assert db.scalar("select has_function_privilege('anon', %s::regprocedure, 'execute')", (row["sig"],)) is False, \
            row["sig"]


def test_intake_write_rules(db, world):
    with db.as_user(world.customer):
        assert db.error("insert into public.intakes (concern) values (%s)", (BIG,)).sqlstate == "23514"
        assert db.error("insert into public.intakes (concern, contact_email) values ('noise', 'not an email')"
                        ).sqlstate == "23514"
        assert db.error("insert into public.intakes (concern, status) values ('noise', 'resolved')").sqlstate == "42501"
        assert db.error("insert into public.vehicles (make, model, year, vin) values ('A', 'B', 2020, 'short')"
                        ).sqlstate == "23514"
    # a customer cannot file an intake for someone else
    other = make_intake(db, world.other_customer)
    with db.as_user(world.customer):
        assert db.scalar("update public.intakes set concern = 'mine now' where id = %s returning id", (other,)) is None
