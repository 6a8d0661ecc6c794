"""Referral fees settled through real workshop payouts: when a workshop payout is released
(queued, never attempted), the workshop's open fees are deducted from it, oldest first, and a
referral payout of the same payment pays the mechanic through the normal transfer path (the
stripe.transfer job, Stripe's API faked). A fee larger than one payout is settled across several;
a refund that takes back part of a referral payout makes that part owed again; two payouts released
at once never settle the same cents twice; the integrity views stay empty throughout."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import psycopg

from tests.support.payments import Pay
from tests.support.referral import completed_appointment


def _shop(pay: Pay) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID, str]:
    """(workshop, owner, its affiliated mechanic, the workshop's Stripe account), onboarded."""
    org, owner = pay.workshop()
    mechanic = pay.mechanic(organization=org)
    account = pay.onboard(owner, org)
    return org, owner, mechanic, account


def _fee(pay: Pay, org: uuid.UUID, referrer: uuid.UUID, invoice_cents: int) -> dict[str, Any]:
    """A paid diagnosis the virtual-only referrer delivers, then a completed appointment at the workshop."""
    customer = pay.customer("Dana Diagnosed")
    paid = pay.paid_booking(customer, plan="diagnostic")
    pay.serve(referrer, paid["session_id"])
    completed_appointment(pay.db, org, customer, paid["session_id"], referrer, invoice_cents)
    pay.commit()
    fee = pay.row("select * from public.referral_fees where diagnostic_session_id = %s", (paid["session_id"],))
    assert fee is not None
    return fee


def _job(pay: Pay, mechanic: uuid.UUID, *, release: bool = True) -> dict[str, Any]:
    """A diagnostic session (4999) the workshop's mechanic delivers: a workshop payout of 3499."""
    paid = pay.paid_booking(pay.customer("Jo Job"), plan="diagnostic")
    pay.serve(mechanic, paid["session_id"], release=release)
    return paid


def _payouts(pay: Pay, session_id: Any) -> dict[str, dict[str, Any]]:
    rows = pay.rows("select * from public.payouts where session_id = %s", (session_id,))
    return {("referral" if r["referral_of_payout_id"] else r["payee_kind"]): r for r in rows}


def _key(call: Any) -> str:
    return {k.lower(): v for k, v in call.headers.items()}["idempotency-key"]


def test_a_released_workshop_payout_pays_the_fee_to_the_mechanic(pay: Pay) -> None:
    org, _owner, shop_mechanic, shop_account = _shop(pay)
    virtual = pay.mechanic()
    virtual_account = pay.onboard(virtual)
    fee = _fee(pay, org, virtual, 50_000)
    assert (fee["amount_cents"], fee["status"]) == (1000, "accrued")
    pay.drain()  # the referrer's own payout of its diagnosis
    before = len(pay.fake.calls_to("POST", "/v1/transfers"))

    job = _job(pay, shop_mechanic)
    out = _payouts(pay, job["session_id"])
    workshop, referral = out["workshop"], out["referral"]
    assert (workshop["original_amount_cents"], workshop["amount_cents"], workshop["status"]) == (3499, 2499, "queued")
    assert (referral["payee_kind"], referral["mechanic_id"], referral["amount_cents"], referral["payment_id"],
            referral["referral_of_payout_id"], referral["status"]) == (
        "mechanic", virtual, 1000, job["payment_id"], workshop["id"], "queued")
    fee = pay.row("select * from public.referral_fees")
    assert (fee["settled_cents"], fee["status"]) == (1000, "settled") and fee["settled_at"] is not None
    assert pay.rows("select fee_id, workshop_payout_id, referral_payout_id, amount_cents, restored_cents"
                    " from public.referral_fee_deductions") == [
        {"fee_id": fee["id"], "workshop_payout_id": workshop["id"], "referral_payout_id": referral["id"],
         "amount_cents": 1000, "restored_cents": 0}]
    pay.assert_books_balance()

    pay.drain()
    transfers = pay.fake.calls_to("POST", "/v1/transfers")[before:]
    sent = {pay.fake.params(c)["destination"]: (pay.fake.params(c)["amount"], _key(c)) for c in transfers}
    assert sent == {shop_account: ("2499", f"transfer:{job['session_id']}:{org}"),
                    virtual_account: ("1000", f"transfer:referral:{referral['id']}")}
    groups = {pay.fake.params(c)["transfer_group"] for c in transfers}
    assert groups == {f"booking_{job['booking_id']}"}
    assert {r["status"] for r in _payouts(pay, job["session_id"]).values()} == {"paid"}
    balance = pay.row("select * from private.payment_balances where payment_id = %s", (job["payment_id"],))
    assert (balance["transferred_cents"], balance["platform_fee_cents"]) == (3499, 1500)
    pay.assert_books_balance()
    # the worker again: nothing more to send, nothing deducted twice
    pay.drain()
    assert len(pay.fake.calls_to("POST", "/v1/transfers")) == before + 2
    assert pay.val("select count(*) from public.referral_fee_deductions") == 1


def test_a_fee_larger_than_a_payout_is_settled_across_two(pay: Pay) -> None:
    org, _owner, shop_mechanic, shop_account = _shop(pay)
    virtual = pay.mechanic()
    virtual_account = pay.onboard(virtual)
    fee = _fee(pay, org, virtual, 250_000)
    assert fee["amount_cents"] == 5000
    pay.drain()
    before = len(pay.fake.calls_to("POST", "/v1/transfers"))

    first = _payouts(pay, _job(pay, shop_mechanic)["session_id"])
    assert (first["workshop"]["amount_cents"], first["workshop"]["status"]) == (0, "cancelled")
    assert first["workshop"]["original_amount_cents"] == 3499
    assert first["referral"]["amount_cents"] == 3499
    fee = pay.row("select * from public.referral_fees")
    assert (fee["settled_cents"], fee["status"], fee["settled_at"]) == (3499, "accrued", None)
    pay.assert_books_balance()

    second = _payouts(pay, _job(pay, shop_mechanic)["session_id"])
    assert (second["workshop"]["amount_cents"], second["workshop"]["status"]) == (3499 - 1501, "queued")
    assert second["referral"]["amount_cents"] == 1501
    fee = pay.row("select * from public.referral_fees")
    assert (fee["settled_cents"], fee["status"]) == (5000, "settled")
    pay.assert_books_balance()

    pay.drain()
    sent = sorted((pay.fake.params(c)["destination"], int(pay.fake.params(c)["amount"]))
                  for c in pay.fake.calls_to("POST", "/v1/transfers")[before:])
    assert sent == sorted([(virtual_account, 3499), (virtual_account, 1501), (shop_account, 1998)])
    # a third payout owes nothing any more
    third = _payouts(pay, _job(pay, shop_mechanic)["session_id"])
    assert set(third) == {"workshop"} and third["workshop"]["amount_cents"] == 3499
    pay.assert_books_balance()


def test_oldest_fee_first_and_each_mechanic_its_own_payout(pay: Pay) -> None:
    org, _owner, shop_mechanic, _account = _shop(pay)
    vera, val = pay.mechanic(), pay.mechanic()
    old = _fee(pay, org, vera, 100_000)   # 2000
    new = _fee(pay, org, val, 100_000)    # 2000
    out = _payouts(pay, _job(pay, shop_mechanic)["session_id"])
    referrals = pay.rows("select mechanic_id, amount_cents from public.payouts"
                         " where referral_of_payout_id = %s order by amount_cents desc", (out["workshop"]["id"],))
    assert referrals == [{"mechanic_id": vera, "amount_cents": 2000}, {"mechanic_id": val, "amount_cents": 1499}]
    assert pay.val("select status from public.referral_fees where id = %s", (old["id"],)) == "settled"
    assert pay.val("select settled_cents from public.referral_fees where id = %s", (new["id"],)) == 1499
    pay.assert_books_balance()


def test_a_referrer_without_a_payout_account_is_paid_once_it_has_one(pay: Pay) -> None:
    org, _owner, shop_mechanic, _account = _shop(pay)
    virtual = pay.mechanic()
    _fee(pay, org, virtual, 50_000)
    job = _job(pay, shop_mechanic)
    referral = _payouts(pay, job["session_id"])["referral"]
    assert (referral["status"], referral["waiting_reason"]) == (
        "waiting", "no payout account: the payee has not set up payouts")
    pay.drain()
    assert pay.val("select status from public.payouts where id = %s", (referral["id"],)) == "waiting"
    assert pay.val("select status from public.referral_fees") == "settled"  # deducted: now owed by the platform
    pay.assert_books_balance()

    account = pay.onboard(virtual)  # account.updated: transfers active → its waiting payouts are queued
    pay.drain()
    assert pay.val("select status from public.payouts where id = %s", (referral["id"],)) == "paid"
    [call] = [c for c in pay.fake.calls_to("POST", "/v1/transfers") if pay.fake.params(c)["destination"] == account
              and _key(c).startswith("transfer:referral:")]
    assert pay.fake.params(call)["amount"] == "1000"
    pay.assert_books_balance()


def test_a_suspended_referrer_waits_for_an_admin_release(pay: Pay) -> None:
    org, _owner, shop_mechanic, _account = _shop(pay)
    virtual = pay.mechanic()
    pay.onboard(virtual)
    _fee(pay, org, virtual, 50_000)
    admin = pay.admin()
    with pay.db.as_user(admin):
        pay.db.rpc("admin_set_mechanic_status", p_mechanic_id=virtual, p_status="suspended")
    pay.commit()
    referral = _payouts(pay, _job(pay, shop_mechanic)["session_id"])["referral"]
    assert referral["status"] == "waiting" and referral["waiting_reason"].startswith("mechanic suspended")
    pay.assert_books_balance()


def test_a_refund_after_settlement_makes_the_taken_back_part_owed_again(pay: Pay) -> None:
    org, _owner, shop_mechanic, _account = _shop(pay)
    virtual = pay.mechanic()
    pay.onboard(virtual)
    _fee(pay, org, virtual, 50_000)
    job = _job(pay, shop_mechanic)
    pay.drain()
    out = _payouts(pay, job["session_id"])
    assert (out["workshop"]["status"], out["referral"]["status"]) == ("paid", "paid")

    with pay.db.as_user(pay.admin()):
        pay.db.rpc("admin_refund", p_session_id=job["session_id"], p_amount_cents=2000, p_reason="partly redone")
    pay.commit()
    reversals = {r["payout_id"]: r["amount_cents"] for r in pay.rows("select * from public.transfer_reversals")}
    # the payees' 3499 share is taken back as before (1399 of 2000): the workshop's own 2499 part and
    # the referral part 1000, each in proportion; the platform's fee is what it was without a referral
    assert reversals == {out["workshop"]["id"]: 999, out["referral"]["id"]: 400}
    assert pay.val("select platform_fee_cents from public.payments where id = %s", (job["payment_id"],)) == 899
    fee = pay.row("select * from public.referral_fees")
    assert (fee["settled_cents"], fee["status"], fee["settled_at"]) == (600, "accrued", None)
    pay.assert_books_balance()
    pay.drain()
    pay.assert_books_balance()

    # the workshop's next payout pays the 400 again
    again = _payouts(pay, _job(pay, shop_mechanic)["session_id"])
    assert (again["workshop"]["amount_cents"], again["referral"]["amount_cents"]) == (3099, 400)
    assert pay.val("select status from public.referral_fees") == "settled"
    pay.drain()
    pay.assert_books_balance()


def test_a_full_refund_before_the_transfer_restores_the_whole_fee(pay: Pay) -> None:
    org, _owner, shop_mechanic, _account = _shop(pay)
    virtual = pay.mechanic()  # no payout account: its referral payout is never attempted
    _fee(pay, org, virtual, 50_000)
    job = _job(pay, shop_mechanic)
    with pay.db.as_user(pay.admin()):
        pay.db.rpc("admin_refund", p_session_id=job["session_id"], p_reason="goodwill")
    pay.commit()
    out = _payouts(pay, job["session_id"])
    assert (out["referral"]["amount_cents"], out["referral"]["status"]) == (0, "cancelled")
    fee = pay.row("select * from public.referral_fees")
    assert (fee["settled_cents"], fee["status"]) == (0, "accrued")
    pay.assert_books_balance()


def test_two_payouts_released_at_once_settle_the_fee_once(pay: Pay) -> None:
    org, _owner, shop_mechanic, _account = _shop(pay)
    virtual = pay.mechanic()
    _fee(pay, org, virtual, 50_000)  # 1000
    one = _job(pay, shop_mechanic, release=False)
    two = _job(pay, shop_mechanic, release=False)
    pay.db.execute("update public.payouts set release_at = now() - interval '1 second' where status = 'waiting'")
    pay.commit()
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def release(session_id: Any, hold: float, delay: float) -> None:
        try:
            with psycopg.connect(pay.url, prepare_threshold=None) as conn:
                barrier.wait()
                time.sleep(delay)
                conn.execute("select private.refresh_payouts(%s, now())", (session_id,))
                conn.execute("select pg_sleep(%s)", (hold,))  # hold the locks while the other one runs
                conn.commit()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=release, args=(one["session_id"], 0.6, 0.0)),
               threading.Thread(target=release, args=(two["session_id"], 0.0, 0.2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    workshop = pay.rows("select amount_cents from public.payouts where payee_kind = 'workshop' and status = 'queued'"
                        " order by amount_cents")
    assert [w["amount_cents"] for w in workshop] == [2499, 3499]
    assert pay.val("select sum(amount_cents) from public.payouts where referral_of_payout_id is not null") == 1000
    assert pay.val("select count(*) from public.referral_fee_deductions") == 1
    assert pay.val("select settled_cents from public.referral_fees") == 1000
    pay.assert_books_balance()


def test_each_party_reads_its_side(pay: Pay) -> None:
    org, owner, shop_mechanic, _account = _shop(pay)
    virtual = pay.mechanic()
    _fee(pay, org, virtual, 50_000)
    job = _job(pay, shop_mechanic)
    referral = _payouts(pay, job["session_id"])["referral"]
    with pay.db.as_user(virtual):
        assert [r["amount_cents"] for r in pay.db.all("select * from public.referral_fee_deductions")] == [1000]
        assert [p["id"] for p in pay.db.all("select * from public.payouts where referral_of_payout_id is not null")] == [
            referral["id"]]
    with pay.db.as_user(owner):
        assert [r["amount_cents"] for r in pay.db.all("select * from public.referral_fee_deductions")] == [1000]
    with pay.db.as_user(shop_mechanic):  # a workshop mechanic does not see its earnings
        assert pay.db.all("select * from public.referral_fee_deductions") == []
    pay.commit()
