"""Intakes fixed by admins (one or in bulk, all or nothing) and their export as PostgREST's CSV."""

from __future__ import annotations

import datetime as dt
import uuid

import psycopg
import pytest

from tests.support.delivery import deliver
from tests.support.factories import accept, make_admin, make_customer, make_intake, make_world, request_free
from tests.support.harness import Db
from tests.support.ops_intakes import (
    EXPORT_COLUMNS,
    audit_rows,
    bulk,
    bulk_error,
    csv_body,
    intakes,
    parse_csv,
    statuses,
    view_csv_body,
)
from tests.support.personas import race


@pytest.fixture
def world(db):
    return make_world(db)


def _today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


def _yesterday() -> str:
    return (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)).isoformat()


# ---------------------------------------------------------------------------------------------
# One intake
# ---------------------------------------------------------------------------------------------
def test_admin_resolves_and_reopens_an_intake_each_change_audited(db, world):
    intake = make_intake(db, world.other_customer)
    with db.as_user(world.admin):
        out = db.rpc("admin_update_intake", p_intake_id=intake, p_status="resolved", p_note="solved by phone")
    assert out == {"status": "resolved", "updated": [str(intake)], "unchanged": []}
    assert statuses(db, [intake]) == {intake: "resolved"}
    rows = audit_rows(db, "intake.update", intake)
    assert len(rows) == 1
    assert rows[0]["admin_id"] == world.admin and rows[0]["subject_type"] == "intake"
    assert rows[0]["reason"] == "solved by phone" and rows[0]["data"] == {"from": "new", "to": "resolved"}

    # the same status again changes nothing and records nothing
    with db.as_user(world.admin):
        out = db.rpc("admin_update_intake", p_intake_id=intake, p_status="resolved")
    assert out["updated"] == [] and out["unchanged"] == [str(intake)]
    assert len(audit_rows(db, "intake.update", intake)) == 1

    with db.as_user(world.admin):
        db.rpc("admin_update_intake", p_intake_id=intake, p_status="new")
    assert statuses(db, [intake]) == {intake: "new"}
    assert [r["data"] for r in audit_rows(db, "intake.update", intake)] == [
        {"from": "new", "to": "resolved"},
        {"from": "resolved", "to": "new"},
    ]


def test_a_resolved_intake_cannot_be_booked_and_a_reopened_one_can(db, world):
    customer = make_customer(db, "Rhea Reopen")
    intake = intakes(db, customer, 1)[0]
    with db.as_user(world.admin):
        db.rpc("admin_update_intake", p_intake_id=intake, p_status="cancelled", p_note="duplicate")
    with db.as_user(customer):
        assert db.rpc_error("request_session", p_plan_code="free", p_intake_id=intake) == "AD005"
        # nor can its owner edit it back to life
        assert db.scalar("update public.intakes set concern = 'edited' where id = %s returning id", (intake,)) is None
    with db.as_user(world.admin):
        db.rpc("admin_update_intake", p_intake_id=intake, p_status="new")
    out = request_free(db, customer, intake=intake)
    assert statuses(db, [intake]) == {intake: "pending"} and out["session_id"]


@pytest.mark.parametrize("status", ["pending", "in_progress", "in_review", "awaiting_customer"])
def test_lifecycle_statuses_are_not_set_by_admins(db, world, status):
    intake = make_intake(db, world.other_customer)
    with db.as_user(world.admin):
        assert db.rpc_error("admin_update_intake", p_intake_id=intake, p_status=status) == "AD250"
    assert statuses(db, [intake]) == {intake: "new"}
    assert audit_rows(db, "intake.update", intake) == []


def test_an_intake_under_an_active_session_is_not_moved(db, world):
    # world.intake feeds world.session (pending request)
    assert statuses(db, [world.intake]) == {world.intake: "pending"}
    for status in ("new", "resolved", "cancelled"):
        with db.as_user(world.admin):
            assert db.rpc_error("admin_update_intake", p_intake_id=world.intake, p_status=status) == "AD251"
    # accepted: in progress, still refused
    accept(db, world.other_mechanic, world.request)
    with db.as_user(world.admin):
        assert db.rpc_error("admin_update_intake", p_intake_id=world.intake, p_status="resolved") == "AD251"
    assert statuses(db, [world.intake]) == {world.intake: "in_progress"}
    # once the session is over the intake is the admin's to fix again
    with db.as_user(world.admin):
        db.rpc("admin_force_end_session", p_session_id=world.session, p_reason="customer left")
        db.rpc("admin_update_intake", p_intake_id=world.intake, p_status="cancelled", p_note="left")
    assert statuses(db, [world.intake]) == {world.intake: "cancelled"}


def test_an_intake_with_an_open_checkout_is_not_moved(db, world):
    customer = make_customer(db, "Chris Checkout")
    intake = intakes(db, customer, 1)[0]
    db.execute(
        "insert into public.bookings (customer_id, plan_code, intake_id, price_cents, currency, method)"
        " values (%s, 'diagnostic', %s, 4999, 'usd', 'card')",
        (customer, intake),
    )
    with db.as_user(world.admin):
        assert db.rpc_error("admin_update_intake", p_intake_id=intake, p_status="resolved") == "AD251"
    assert statuses(db, [intake]) == {intake: "new"}


def test_only_admins_update_intakes(db, world):
    intake = make_intake(db, world.customer)
    for persona in (world.customer, world.other_customer, world.mechanic, world.other_mechanic, world.workshop_admin):
        with db.as_user(persona):
            assert db.rpc_error("admin_update_intake", p_intake_id=intake, p_status="resolved") == "AD003"
            assert bulk_error(db, [intake], "resolved").sqlstate == "AD003"
    with db.as_role("authenticated", {"role": "authenticated"}):
        assert db.rpc_error("admin_update_intake", p_intake_id=intake, p_status="resolved") == "AD002"
    with db.as_anon():
        assert db.error("select public.admin_update_intake(%s, 'resolved')", (intake,)).sqlstate == "42501"
    # the intake is there, and unchanged
    assert statuses(db, [intake]) == {intake: "new"}
    assert audit_rows(db, "intake.update") == []


# ---------------------------------------------------------------------------------------------
# In bulk
# ---------------------------------------------------------------------------------------------
def test_bulk_update_changes_all_and_handles_duplicates(db, world):
    ids = intakes(db, make_customer(db, "Bea Bulk"), 3)
    with db.as_user(world.admin):
        db.rpc("admin_update_intake", p_intake_id=ids[0], p_status="resolved")
        out = bulk(db, [ids[2], ids[0], ids[1], ids[2], ids[1]], "resolved", "spring clean")
    assert sorted(out["updated"]) == sorted(str(i) for i in ids[1:]) and out["unchanged"] == [str(ids[0])]
    assert set(statuses(db, ids).values()) == {"resolved"}
    for i in ids[1:]:  # one record per intake changed, duplicates or not
        rows = audit_rows(db, "intake.update", i)
        assert len(rows) == 1 and rows[0]["reason"] == "spring clean"


def test_bulk_update_is_all_or_nothing(db, world):
    ids = intakes(db, make_customer(db, "Alan Allornothing"), 3)
    # one intake under an active session: nothing changes, the error names it
    batch = [*ids, world.intake]
    with db.as_user(world.admin):
        err = bulk_error(db, batch, "resolved")
    assert err.sqlstate == "AD251" and str(world.intake) in str(err)
    # one id that does not exist: nothing changes, the error names it
    unknown = uuid.uuid4()
    with db.as_user(world.admin):
        err = bulk_error(db, [*ids, unknown], "resolved")
    assert err.sqlstate == "AD004" and str(unknown) in str(err)
    assert set(statuses(db, ids).values()) == {"new"}
    assert audit_rows(db, "intake.update") == []


def test_bulk_update_cap_is_a_setting(db, world):
    ids = intakes(db, make_customer(db, "Cap Capper"), 3)
    assert db.scalar("select private.setting_int('operations.bulk_intakes_max')") == 500
    db.execute("update private.settings set value = '2' where key = 'operations.bulk_intakes_max'")
    with db.as_user(world.admin):
        assert bulk_error(db, ids, "resolved").sqlstate == "AD252"
        # duplicates count: the cap bounds the array as sent
        assert bulk_error(db, [ids[0]] * 3, "resolved").sqlstate == "AD252"
        bulk(db, ids[:2], "resolved")
    assert statuses(db, ids) == {ids[0]: "resolved", ids[1]: "resolved", ids[2]: "new"}


def test_bulk_hostile_input(db, world):
    ids = intakes(db, make_customer(db, "Hal Hostile"), 2)
    with db.as_user(world.admin):
        cases: list[tuple[list[uuid.UUID | None] | None, str | None, str | None]] = [
            ([], "resolved", None),
            (None, "resolved", None),
            ([ids[0], None], "resolved", None),
            ([*ids], None, None),
            ([*ids], "done", None),
            ([*ids], "resolved", "x" * 2001),
        ]
        for batch, status, note in cases:
            assert bulk_error(db, batch, status, note).sqlstate == "AD001", (batch, status)
    assert set(statuses(db, ids).values()) == {"new"}


def _committed_intakes(db: Db, n: int) -> list[uuid.UUID]:
    ids = []
    for i in range(n):
        customer = make_customer(db, f"Racer {i}")
        ids.append(make_intake(db, customer))
    return ids


def test_two_overlapping_bulk_updates_neither_deadlock_nor_half_apply(fresh_url):
    with psycopg.connect(fresh_url, prepare_threshold=None) as conn:
        db = Db(conn)
        admin = make_admin(db)
        ids = _committed_intakes(db, 40)
        conn.commit()
    conns = [psycopg.connect(fresh_url, autocommit=True, prepare_threshold=None) for _ in range(2)]
    try:
        for round_ in range(4):
            first = ids[:30]
            second = list(reversed(ids[10:]))  # opposite order: a naive loop would deadlock
            a, b = ("resolved", "cancelled") if round_ % 2 == 0 else ("new", "resolved")
            results = race(
                [
                    (conns[0], admin, "select public.admin_bulk_update_intakes(%s, %s)", (first, a)),
                    (conns[1], admin, "select public.admin_bulk_update_intakes(%s, %s)", (second, b)),
                ]
            )
            assert [kind for kind, _ in results] == ["ok", "ok"], results
            with psycopg.connect(fresh_url, prepare_threshold=None) as check:
                rows = dict(
                    check.execute("select id, status::text from public.intakes where id = any(%s)", (ids,)).fetchall()
                )
            assert {rows[i] for i in ids[:10]} == {a}
            assert {rows[i] for i in ids[30:]} == {b}
            # the overlap is wholly one call's: the one that committed last
            assert len({rows[i] for i in ids[10:30]}) == 1
    finally:
        for c in conns:
            c.close()


def test_bulk_update_and_a_booking_race_one_wins(fresh_url):
    with psycopg.connect(fresh_url, prepare_threshold=None) as conn:
        db = Db(conn)
        admin = make_admin(db)
        pairs = []
        for i in range(5):
            customer = make_customer(db, f"Booker {i}")
            pairs.append((customer, make_intake(db, customer)))
        conn.commit()
    conns = [psycopg.connect(fresh_url, autocommit=True, prepare_threshold=None) for _ in range(2)]
    try:
        for customer, intake in pairs:
            results = race(
                [
                    (conns[0], admin, "select public.admin_update_intake(%s, 'resolved')", (intake,)),
                    (conns[1], customer, "select public.request_session('free', %s)", (intake,)),
                ]
            )
            kinds = sorted(kind for kind, _ in results)
            assert kinds == ["err", "ok"], results
            with psycopg.connect(fresh_url, prepare_threshold=None) as check:
                status = check.execute("select status::text from public.intakes where id = %s", (intake,)).fetchone()
                active = check.execute(
                    "select count(*) from public.sessions where intake_id = %s"
                    " and status in ('pending', 'scheduled', 'waiting', 'live')",
                    (intake,),
                ).fetchone()
            assert status is not None and active is not None
            if results[0][0] == "ok":  # the admin first: the booking found the intake closed
                assert results[1] == ("err", "AD005") and status[0] == "resolved" and active[0] == 0
            else:  # the booking first: the admin found its session
                assert results[0] == ("err", "AD251") and status[0] == "pending" and active[0] == 1
    finally:
        for c in conns:
            c.close()


# ---------------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------------
def test_export_csv_columns_escaping_and_outcomes(db, world):
    tricky = make_customer(db, 'Ann "Annie" O\'Hara, Jr.')
    awkward = intakes(db, tricky, 1, concern='Grinding, "loud"\nthen a click', contact_name='O"Hara, Ann')[0]
    # a delivered session, and a cancelled one
    delivered_customer = make_customer(db, "Dee Delivered")
    d = request_free(db, delivered_customer, intake=intakes(db, delivered_customer, 1)[0])
    accept(db, world.other_mechanic, d["request_id"])
    deliver(db, d["session_id"])
    cancelled_customer = make_customer(db, "Cy Cancelled")
    c = request_free(db, cancelled_customer, intake=intakes(db, cancelled_customer, 1)[0])
    with db.as_user(cancelled_customer):
        db.rpc("cancel_request", p_request_id=c["request_id"])

    with db.as_user(world.admin):
        body = csv_body(db, _yesterday(), _today())
    rows = parse_csv(body)
    assert rows[0] == EXPORT_COLUMNS
    by_id = {r[0]: dict(zip(EXPORT_COLUMNS, r, strict=True)) for r in rows[1:]}
    row = by_id[str(awkward)]
    assert row["concern"] == 'Grinding, "loud"\nthen a click'
    assert row["contact_name"] == 'O"Hara, Ann'
    assert row["customer_name"] == 'Ann "Annie" O\'Hara, Jr.'
    assert row["outcome"] == "none" and row["status"] == "new" and row["refunded_cents"] == "0"
    assert row["requested_at"] == "" and row["vehicle_make"] == "Honda" and row["vehicle_year"] == "2018"
    # the raw body quotes as record text does: doubled quotes inside a quoted field
    assert '"Grinding, ""loud""\nthen a click"' in body
    delivered_row = next(r for r in by_id.values() if r["customer_id"] == str(delivered_customer))
    assert delivered_row["outcome"] == "delivered" and delivered_row["status"] == "resolved"
    assert delivered_row["requested_at"] and delivered_row["started_at"] and delivered_row["ended_at"]
    cancelled_row = next(r for r in by_id.values() if r["customer_id"] == str(cancelled_customer))
    assert cancelled_row["outcome"] == "cancelled" and cancelled_row["status"] == "new"
    # every intake of the range, once
    assert len(by_id) == db.scalar("select count(*) from public.intakes where created_at >= %s::date", (_yesterday(),))
    # the export is on record, once (PostgREST's SQL reads the call once)
    records = audit_rows(db, "export.intakes")
    assert len(records) == 1 and records[0]["admin_id"] == world.admin
    assert records[0]["data"] == {"from": _yesterday(), "to": _today(), "rows": len(by_id)}


def test_export_outcome_expired_and_refunded_cents(db, world):
    customer = make_customer(db, "Ed Expired")
    r = request_free(db, customer, intake=intakes(db, customer, 1)[0])
    db.execute(
        "select private.expire_request(%s, 'expired: no mechanic', now(), 'system', 'expired')", (r["session_id"],)
    )
    with db.as_user(world.admin):
        rows = db.all("select * from public.admin_export_intakes(%s, %s)", (_yesterday(), _today()))
    row = next(x for x in rows if x["customer_id"] == customer)
    assert row["outcome"] == "expired" and row["refunded_cents"] == 0


def test_export_only_for_admins(db, world):
    intakes(db, world.customer, 1)
    # rows exist: the admin reads them through the view and the RPC
    with db.as_user(world.admin):
        assert db.scalar("select count(*) from public.admin_intakes_export") > 0
        assert len(parse_csv(view_csv_body(db))) > 1
    for persona in (world.customer, world.other_customer, world.mechanic, world.other_mechanic, world.workshop_admin):
        with db.as_user(persona):
            assert db.scalar("select count(*) from public.admin_intakes_export") == 0
            assert view_csv_body(db) == "\n"  # PostgREST's body for no rows: an empty header line
            assert db.rpc_error("admin_export_intakes", p_from=_yesterday(), p_to=_today()) == "AD003"
            assert db.scalar("select count(*) from private.intake_export_rows(null, null)") == 0
    with db.as_role("authenticated", {"role": "authenticated"}):
        assert db.rpc_error("admin_export_intakes", p_from=_yesterday(), p_to=_today()) == "AD002"
    with db.as_anon():
        assert db.error("select * from public.admin_intakes_export").sqlstate == "42501"
    assert audit_rows(db, "export.intakes") == []


def test_export_hostile_ranges(db, world):
    with db.as_user(world.admin):
        assert db.rpc_error("admin_export_intakes", p_from=_today(), p_to=_yesterday()) == "AD001"
        assert db.rpc_error("admin_export_intakes", p_from=None, p_to=_today()) == "AD001"
        assert db.rpc_error("admin_export_intakes", p_from="2025-01-01", p_to="2026-12-31") == "AD253"
        assert db.rpc_error("admin_export_intakes", p_from="not a date", p_to=_today()) == "22007"
        assert db.rpc_error("admin_export_intakes", p_from="-infinity", p_to=_today()) == "AD001"
    assert audit_rows(db, "export.intakes") == []
