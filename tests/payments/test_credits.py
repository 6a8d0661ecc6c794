"""Customer credit: admin grants, the append-only ledger with its running balance, debits by
checkout, refunds to credit — and a balance that never goes below zero under concurrent debits."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import psycopg

from functions.checkout import create_checkout
from tests.support.factories import make_admin, make_customer
from tests.support.harness import Db
from tests.support.payments import Pay, call
from tests.support.personas import request_as


def _grant(db: Db, admin: uuid.UUID, customer: Any, cents: Any, reason: Any = "goodwill") -> Any:
    with db.as_user(admin):
        return db.rpc("admin_grant_credit", p_customer_id=customer, p_amount_cents=cents, p_reason=reason)


def test_grants_add_up_in_a_running_balance(db: Db) -> None:
    admin, customer = make_admin(db), make_customer(db)
    assert _grant(db, admin, customer, 1500)["balance_cents"] == 1500
    out = _grant(db, admin, customer, 250, "sorry for the wait")
    assert (out["amount_cents"], out["balance_cents"], out["currency"]) == (250, 1750, "usd")
    rows = db.all("select seq, kind, amount_cents, balance_after_cents, note, created_by from public.credit_ledger"
                  " where customer_id = %s order by seq", (customer,))
    assert [(r["seq"], r["kind"], r["amount_cents"], r["balance_after_cents"]) for r in rows] == [
        (1, "grant", 1500, 1500), (2, "grant", 250, 1750)]
    assert rows[1]["note"] == "sorry for the wait" and rows[1]["created_by"] == admin
    assert db.scalar("select private.credit_balance(%s)", (customer,)) == 1750
    assert db.all("select * from private.credit_integrity_issues") == []


def test_grant_refusals_write_nothing(db: Db) -> None:
    admin, customer = make_admin(db), make_customer(db)
    max_grant = db.scalar("select private.setting_int('payments.max_credit_grant_cents')")
    cases = [(customer, 0, "x", "AD001"), (customer, -100, "x", "AD001"), (customer, max_grant + 1, "x", "AD001"),
             (customer, None, "x", "AD001"), (None, 100, "x", "AD001"), (customer, 100, None, "AD001"),
             (customer, 100, "y" * 4001, "AD001"), (uuid.uuid4(), 100, "x", "AD004")]
    for who, cents, reason, code in cases:
        with db.as_user(admin):
            assert db.rpc_error("admin_grant_credit", p_customer_id=who, p_amount_cents=cents, p_reason=reason) == code
    for persona in (lambda: db.as_user(customer), lambda: db.as_user(make_customer(db, "Other"))):
        with persona():
            assert db.rpc_error("admin_grant_credit", p_customer_id=customer, p_amount_cents=100,
                                p_reason="me") == "AD003"
    with db.as_anon():
        assert db.rpc_error("admin_grant_credit", p_customer_id=customer, p_amount_cents=100, p_reason="x") == "42501"
    assert db.scalar("select count(*) from public.credit_ledger") == 0


def test_the_ledger_is_append_only_and_guarded_by_constraints(db: Db) -> None:
    admin, customer = make_admin(db), make_customer(db)
    _grant(db, admin, customer, 500)
    for statement in ("update public.credit_ledger set amount_cents = 5000",
                      "delete from public.credit_ledger", "truncate public.credit_ledger cascade"):
        assert db.error(statement).sqlstate == "AD003"
        with db.as_service():
            assert db.error(statement).sqlstate in ("AD003", "42501")
    # a debit beyond the balance
    assert db.error("select private.add_credit_entry(%s, 'debit', -501, 'usd', %s)",
                    (customer, uuid.uuid4())).sqlstate == "AD022"
    # the constraints hold even for a writer that bypassed the function (and its lock)
    insert = ("insert into public.credit_ledger (customer_id, seq, kind, amount_cents, balance_after_cents)"
              " values (%s, %s, 'grant', %s, %s)")
    assert db.error(insert, (customer, 1, 10, 510)).sqlstate == "23505"  # seq 1 is taken
    assert db.error(insert.replace("'grant'", "'refund'"), (customer, 2, 10, 510)).sqlstate == "23514"
    assert db.error(insert.replace("'grant'", "'debit'"), (customer, 2, -600, -100)).sqlstate == "23514"
    assert db.error("select private.add_credit_entry(%s, 'grant', -5)", (customer,)).sqlstate == "AD001"
    assert db.scalar("select count(*) from public.credit_ledger") == 1


def test_customers_see_their_own_credit_only(db: Db) -> None:
    admin, customer, other = make_admin(db), make_customer(db), make_customer(db, "Olive Other")
    _grant(db, admin, customer, 700)
    _grant(db, admin, other, 300)
    with db.as_user(customer):
        assert db.all("select customer_id, balance_cents from public.credit_balances") == [
            {"customer_id": customer, "balance_cents": 700}]
        assert db.scalar("select count(*) from public.credit_ledger") == 1
        assert db.error("insert into public.credit_ledger (customer_id, seq, kind, amount_cents,"
                        " balance_after_cents) values (%s, 9, 'grant', 100000, 100000)",
                        (customer,)).sqlstate == "42501"
        assert db.error("select private.add_credit_entry(%s, 'grant', 100000)", (customer,)).sqlstate == "42501"
    # the other customer's entry exists: hidden, not missing
    assert db.scalar("select count(*) from public.credit_ledger where customer_id = %s", (other,)) == 1
    with db.as_user(admin):
        assert db.scalar("select count(*) from public.credit_balances") == 2
    with db.as_anon():
        assert db.error("select * from public.credit_balances").sqlstate == "42501"


def test_concurrent_checkouts_never_spend_more_credit_than_there_is(pay: Pay) -> None:
    """Ten checkouts race for credit that covers three: exactly three are paid with credit, the rest
    go to Stripe, and the balance ends at zero — every round."""
    clients, rounds, covered = 10, 5, 3
    # the credit race alone: each customer may have all of its requests open (the cap on open
    # requests, tests/trust, would refuse the third before its money moves)
    pay.db.execute("update private.settings set value = to_jsonb(%s) where key = 'limits.open_requests_per_customer'",
                   (clients,))
    pay.commit()
    for _ in range(rounds):
        customer = pay.customer()
        pay.grant_credit(customer, covered * 2999)
        intakes = [pay.intake(customer, vehicle=False) for _ in range(clients)]
        headers = pay.token(customer)
        barrier = threading.Barrier(clients)
        results: list[Any] = [None] * clients

        def run(i: int, intakes: list[uuid.UUID] = intakes, headers: dict = headers,
                barrier: threading.Barrier = barrier, results: list[Any] = results) -> None:
            body = {"plan_code": "video15", "intake_id": str(intakes[i]),
                    "success_url": "https://app.example.test/ok", "cancel_url": "https://app.example.test/no"}
            barrier.wait()
            results[i] = call(create_checkout, body=body, headers=headers)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert all(status == 200 for status, _ in results), results
        modes = sorted(body["mode"] for _, body in results)
        assert modes == ["credit"] * covered + ["stripe"] * (clients - covered)
        assert pay.val("select balance_cents from public.credit_balances where customer_id = %s", (customer,)) == 0
        assert pay.val("select min(balance_after_cents) from public.credit_ledger where customer_id = %s",
                       (customer,)) == 0
        assert pay.val("select count(*) from public.sessions where customer_id = %s", (customer,)) == covered
    assert pay.issues() == []


def test_concurrent_debits_at_the_function_level(pay: Pay) -> None:
    """The lock per customer, without HTTP: 12 connections debit 1 000 each from 5 000."""
    customer = pay.customer()
    # debits need bookings to point at: card bookings made through checkout (before any credit)
    bookings = [pay.checkout(customer, intake=pay.intake(customer, vehicle=False))["booking_id"]
                for _ in range(12)]
    pay.grant_credit(customer, 5000)
    assert pay.val("select balance_cents from public.credit_balances where customer_id = %s", (customer,)) == 5000
    conns = [psycopg.connect(pay.url, autocommit=True, prepare_threshold=None) for _ in bookings]
    barrier = threading.Barrier(len(conns))
    outcomes: list[str] = [""] * len(conns)

    def run(i: int) -> None:
        barrier.wait()
        try:
            with request_as(conns[i], "service_role", {"role": "service_role"}):
                conns[i].execute("select private.add_credit_entry(%s, 'debit', -1000, 'usd', %s)",
                                 (customer, bookings[i]))
            outcomes[i] = "ok"
        except psycopg.Error as exc:
            outcomes[i] = exc.sqlstate or "?"

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(conns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for c in conns:
        c.close()
    assert sorted(outcomes) == ["AD022"] * 7 + ["ok"] * 5
    assert pay.val("select balance_cents from public.credit_balances where customer_id = %s", (customer,)) == 0
    assert pay.rows("select * from private.credit_integrity_issues") == []
