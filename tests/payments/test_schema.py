"""Who sees and does what with money: RLS per persona on every payments table (each hidden row
proved to exist), column grants, no client writes, private functions out of the API's reach,
the split rules' guards, and the functions file re-runnable."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from shared.config import project_dir
from tests.support.delivery import deliver_and_release
from tests.support.factories import accept, make_admin, make_customer, make_intake, make_mechanic
from tests.support.harness import Db


@dataclass
class Money:
    customer: uuid.UUID
    other_customer: uuid.UUID
    mechanic: uuid.UUID
    other_mechanic: uuid.UUID
    workshop_owner: uuid.UUID
    workshop_mechanic: uuid.UUID
    admin: uuid.UUID
    organization: uuid.UUID


def _book_with_credit(db: Db, admin: uuid.UUID, customer: uuid.UUID, mechanic: uuid.UUID) -> dict[str, Any]:
    with db.as_user(admin):
        db.rpc("admin_grant_credit", p_customer_id=customer, p_amount_cents=2999, p_reason="test")
    intake = make_intake(db, customer)
    out = db.scalar("select private.prepare_checkout(%s, 'video15', %s, null, null, false)", (customer, intake))
    accept(db, mechanic, out["request_id"])
    deliver_and_release(db, out["session_id"])  # delivered, and its objection window over
    return out


@pytest.fixture
def money(db: Db) -> Money:
    """Two customers' paid, completed sessions: one served by an independent mechanic (paid out,
    then partly refunded: a reversal), one by a workshop's mechanic (the workshop's payout)."""
    admin = make_admin(db)
    customer, other = make_customer(db), make_customer(db, "Olive Other")
    mechanic, other_mechanic = make_mechanic(db), make_mechanic(db, name="Otto Other")
    owner = db.make_user(user_metadata={"full_name": "Wren Workshop"})
    org = db.scalar("insert into public.organizations (name) values ('Bay Motors') returning id")
    db.execute("insert into public.organization_members values (%s, %s, 'owner')", (org, owner))
    affiliated = make_mechanic(db, name="Ash Affiliated", organization_id=org, account_type="workshop_mechanic")
    db.execute("insert into public.payout_accounts (mechanic_id, stripe_account_id, transfers_active)"
               " values (%s, 'acct_mech0001', true)", (mechanic,))
    first = _book_with_credit(db, admin, customer, mechanic)
    _book_with_credit(db, admin, other, affiliated)
    [claimed] = db.all("select * from private.start_payout_job("
                       "(select id from public.payouts where status = 'queued' and mechanic_id = %s))", (mechanic,))
    db.execute("select private.record_payout_paid(%s, 'tr_0001')", (claimed["payout_id"],))
    with db.as_user(admin):
        db.rpc("admin_refund", p_session_id=first["session_id"], p_amount_cents=1000, p_reason="partial")
    return Money(customer, other, mechanic, other_mechanic, owner, affiliated, admin, org)


def _count(db: Db, who: uuid.UUID | None, table: str) -> int | str:
    persona = db.as_anon() if who is None else db.as_user(who)
    with persona:
        try:
            return db.scalar(f"select count(*) from {table}")
        except Exception as exc:  # the SQLSTATE is the answer
            return getattr(exc, "sqlstate", "?")


def test_the_fixture_has_a_row_of_every_kind(db: Db, money: Money) -> None:
    counts = {t: db.scalar(f"select count(*) from public.{t}") for t in (
        "bookings", "payments", "refunds", "payouts", "transfer_reversals", "credit_ledger")}
    assert counts == {"bookings": 2, "payments": 2, "refunds": 1, "payouts": 2, "transfer_reversals": 1,
                      "credit_ledger": 5}  # 2 grants, 2 debits, 1 refund to credit
    assert db.all("select * from private.payment_integrity_issues") == []


@pytest.mark.parametrize(("table", "expected"), [
    ("public.bookings", {"customer": 1, "other_customer": 1, "mechanic": 0, "workshop_owner": 0, "admin": 2}),
    ("public.payments", {"customer": 1, "other_customer": 1, "mechanic": 0, "workshop_owner": 0, "admin": 2}),
    ("public.refunds", {"customer": 1, "other_customer": 0, "mechanic": 0, "admin": 1}),
    ("public.payouts", {"customer": 0, "mechanic": 1, "other_mechanic": 0, "workshop_owner": 1,
                        "workshop_mechanic": 0, "admin": 2}),
    ("public.transfer_reversals", {"customer": 0, "mechanic": 1, "other_mechanic": 0, "workshop_owner": 0,
                                   "admin": 1}),
    ("public.credit_ledger", {"customer": 3, "other_customer": 2, "mechanic": 0, "admin": 5}),
    ("public.credit_balances", {"customer": 1, "other_customer": 1, "mechanic": 0, "admin": 2}),
    ("public.revenue_split_rules", {"customer": 4, "mechanic": 4, "admin": 4}),
])
def test_select_per_persona(db: Db, money: Money, table: str, expected: dict[str, Any]) -> None:
    people = {"customer": money.customer, "other_customer": money.other_customer, "mechanic": money.mechanic,
              "other_mechanic": money.other_mechanic, "workshop_owner": money.workshop_owner,
              "workshop_mechanic": money.workshop_mechanic, "admin": money.admin}
    got = {name: _count(db, people[name], table) for name in expected}
    assert got == expected
    assert _count(db, None, table) == "42501"  # anon: no grant at all
    assert db.scalar(f"select count(*) from {table}") > 0  # the rows exist (superuser)


def test_customers_read_their_payments_without_the_platform_columns(db: Db, money: Money) -> None:
    columns = "id, amount_cents, status, method, session_id, settled_at"
    with db.as_user(money.customer):
        mine = db.all(f"select {columns} from public.payments")
        assert len(mine) == 1 and mine[0]["amount_cents"] == 2999
        assert db.error("select platform_fee_cents from public.payments").sqlstate == "42501"
        assert db.error("select settled_base_cents from public.payments").sqlstate == "42501"
        assert len(db.all("select id, amount_cents, status, destination from public.refunds")) == 1
        assert db.error("select last_error from public.refunds").sqlstate == "42501"
    with db.as_user(money.other_customer):
        assert len(db.all(f"select {columns} from public.payments")) == 1
        assert db.all("select id from public.refunds") == []
    with db.as_user(money.mechanic):
        assert db.all(f"select {columns} from public.payments") == []
    with db.as_user(money.admin):
        assert len(db.all(f"select {columns} from public.payments")) == 2
    assert db.scalar("select count(*) from public.refunds") == 1  # hidden from the other customer, not missing


@pytest.mark.parametrize("statement", [
    "insert into public.bookings (customer_id, plan_code, intake_id, price_cents, currency, method)"
    " select customer_id, 'video15', intake_id, 1, 'usd', 'card' from public.bookings limit 1",
    "update public.payments set amount_cents = 1",
    "update public.payouts set amount_cents = 1, status = 'queued'",
    "delete from public.refunds",
    "update public.bookings set status = 'paid'",
    "insert into public.revenue_split_rules (mechanic_type, session_kind, mechanic_bps, workshop_bps, platform_bps,"
    " description) values ('virtual_only', 'micro', 10000, 0, 0, 'all mine')",
    "update public.revenue_split_rules set mechanic_bps = 10000, platform_bps = 0",
    "update public.transfer_reversals set amount_cents = 1",
])
def test_clients_write_nothing(db: Db, money: Money, statement: str) -> None:
    def fingerprint() -> str:
        return db.scalar("select md5(concat_ws('|', " + ", ".join(
            f"(select string_agg(t::text, ',' order by t::text) from public.{t} t)" for t in (
                "bookings", "payments", "refunds", "payouts", "transfer_reversals", "revenue_split_rules")) + "))")

    before = fingerprint()
    for who in (money.customer, money.mechanic, money.workshop_owner, money.admin):
        with db.as_user(who):
            assert db.error(statement).sqlstate == "42501"
    with db.as_service():  # the service role too: money moves through the functions only
        if "revenue_split_rules" not in statement:
            assert db.error(statement).sqlstate == "42501"
    assert fingerprint() == before


@pytest.mark.parametrize("call", [
    "select private.prepare_checkout(%(u)s, 'video15', gen_random_uuid(), null, null, false)",
    "select private.handle_stripe_event('{}'::jsonb)",
    "select private.add_credit_entry(%(u)s, 'grant', 100000)",
    "select private.request_refund(gen_random_uuid(), 1, 'admin', 'x')",
    "select * from private.start_payout_job(gen_random_uuid())",
    "select * from private.outbox_claim(now(), 10)",
    "select private.record_payout_paid(gen_random_uuid(), 'tr_x')",
    "select private.apply_account_snapshot('{}'::jsonb, now(), true, now())",
    "select private.record_connect_account('mechanic', %(u)s, 'acct_x')",
    "select * from private.stripe_events",
    "select * from private.payment_integrity_issues",
])
def test_private_payments_functions_are_out_of_the_apis_reach(db: Db, money: Money, call: str) -> None:
    for persona in (db.as_anon, lambda: db.as_user(money.admin), lambda: db.as_user(money.customer)):
        with persona():
            assert db.error(call, {"u": money.customer}).sqlstate == "42501"


def test_the_integrity_report_is_for_admins(db: Db, money: Money) -> None:
    with db.as_user(money.admin):
        assert db.all("select * from public.admin_payment_integrity()") == []
    with db.as_user(money.customer):
        assert db.rpc_error("admin_payment_integrity") == "AD003"
    db.execute("update public.payments set platform_fee_cents = platform_fee_cents + 1"
               " where customer_id = %s", (money.other_customer,))
    with db.as_user(money.admin):
        [issue] = db.all("select * from public.admin_payment_integrity()")
    assert issue["admin_payment_integrity"]["problem"] == "amount is not fully accounted for"


def test_split_rules_keep_their_defaults_and_sum_to_the_whole(db: Db) -> None:
    assert db.error("delete from public.revenue_split_rules where session_kind = 'default'").sqlstate == "AD003"
    assert db.error("update public.revenue_split_rules set session_kind = 'micro'"
                    " where mechanic_type = 'virtual_only'").sqlstate == "AD003"
    assert db.error("update public.revenue_split_rules set mechanic_bps = 8000"
                    " where mechanic_type = 'virtual_only'").sqlstate == "23514"
    db.execute("update public.revenue_split_rules set mechanic_bps = 8000, platform_bps = 2000"
               " where mechanic_type = 'virtual_only'")  # an 80/20 split, if the business wants it
    db.execute("delete from public.revenue_split_rules where session_kind = 'micro_on_shift'")  # not a default
    assert db.error("insert into public.revenue_split_rules (mechanic_type, session_kind, mechanic_bps,"
                    " workshop_bps, platform_bps, description) values ('virtual_only', 'default', 7000, 0, 3000,"
                    " 'twice')").sqlstate == "23505"


def test_the_settlement_file_is_re_runnable(db: Db, money: Money) -> None:
    path = project_dir() / "supabase" / "functions_sql" / "payments" / "settlement.sql"
    before = db.scalar("select count(*) from pg_trigger where tgname like '\\_400\\_payments'")
    db.execute(path.read_text(encoding="utf-8").encode())
    db.execute(path.read_text(encoding="utf-8").encode())
    # settlement and refunds are lifecycle steps (core/lifecycle.sql), no longer triggers
    assert db.scalar("select count(*) from pg_trigger where tgname like '\\_400\\_payments'") == before == 0
    assert db.all("select * from private.payment_integrity_issues") == []
    with db.as_user(money.customer):
        assert db.scalar("select count(*) from public.credit_balances") == 1
