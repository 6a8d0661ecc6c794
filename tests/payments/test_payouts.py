"""Settlement into payouts by the revenue split rules (mechanic types, session kinds, the on-shift
flag when the micro-sessions domain provides one), and workers racing over the payout queue."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest

from shared import payments
from tests.support.delivery import deliver_and_release, release_hold, start_both, take_part
from tests.support.factories import accept, make_admin, make_customer, make_intake, make_mechanic
from tests.support.harness import Db
from tests.support.payments import Pay


def _completed_credit_session(db: Db, mechanic: uuid.UUID, plan: str) -> dict[str, Any]:
    admin, customer = make_admin(db), make_customer(db)
    with db.as_user(admin):
        db.rpc("admin_grant_credit", p_customer_id=customer, p_amount_cents=5000, p_reason="test")
    out = db.scalar("select private.prepare_checkout(%s, %s, %s, null, null, false)",
                    (customer, plan, make_intake(db, customer)))
    accept(db, mechanic, out["request_id"])
    deliver_and_release(db, out["session_id"])  # delivered, and its objection window over
    return out


def _split(db: Db, session_id: Any) -> dict[str, int]:
    rows = db.all("select payee_kind, amount_cents, share_bps from public.payouts where session_id = %s",
                  (session_id,))
    out = {r["payee_kind"]: r["amount_cents"] for r in rows}
    out["platform"] = db.scalar("select platform_fee_cents from public.payments where session_id = %s", (session_id,))
    return out


def _workshop(db: Db) -> uuid.UUID:
    return db.scalar("insert into public.organizations (name) values ('Bay Motors') returning id")


@pytest.mark.parametrize(("kind", "plan", "expected"), [
    ("virtual", "video15", {"mechanic": 2099, "platform": 900}),
    ("virtual", "micro", {"mechanic": 349, "platform": 150}),
    ("independent", "diagnostic", {"mechanic": 3499, "platform": 1500}),
    ("affiliated", "video15", {"workshop": 2099, "platform": 900}),
])
def test_default_splits(db: Db, kind: str, plan: str, expected: dict[str, int]) -> None:
    fields: dict[str, Any] = {}
    if kind != "virtual":
        fields = {"organization_id": _workshop(db),
                  "account_type": "workshop_mechanic" if kind == "affiliated" else "individual_mechanic"}
    mechanic = make_mechanic(db, **fields)
    out = _completed_credit_session(db, mechanic, plan)
    assert _split(db, out["session_id"]) == expected
    assert db.all("select * from private.payment_integrity_issues") == []


def test_on_shift_micro_session_by_a_workshops_mechanic(db: Db) -> None:
    """The micro-sessions domain provides the flag (mechanics.currently_on_shift, and sessions.on_shift
    taken when the mechanic accepts); the columns are added here when that domain is not installed."""
    db.execute("alter table public.mechanics add column if not exists currently_on_shift boolean not null default false")
    db.execute("alter table public.sessions add column if not exists on_shift boolean")
    org = _workshop(db)
    mechanic = make_mechanic(db, organization_id=org, account_type="workshop_mechanic")
    db.execute("update public.mechanics set currently_on_shift = true where id = %s", (mechanic,))
    out = _completed_credit_session(db, mechanic, "micro")  # 499
    assert _split(db, out["session_id"]) == {"mechanic": 324, "workshop": 74, "platform": 101}  # 65/15/20
    shares = {r["payee_kind"]: r["share_bps"] for r in db.all("select * from public.payouts")}
    assert shares == {"mechanic": 6500, "workshop": 1500}
    # a standard session by the same mechanic on shift: the default rule (its 70% to the workshop)
    other = _completed_credit_session(db, mechanic, "chat10")
    assert _split(db, other["session_id"]) == {"workshop": 699, "platform": 300}

    # taken on shift, ended after clocking out: the session's flag (from when it was taken) counts
    admin, customer = make_admin(db), make_customer(db)
    with db.as_user(admin):
        db.rpc("admin_grant_credit", p_customer_id=customer, p_amount_cents=499, p_reason="test")
    third = db.scalar("select private.prepare_checkout(%s, 'micro', %s, null, null, false)",
                      (customer, make_intake(db, customer)))
    accept(db, mechanic, third["request_id"])
    db.execute("update public.sessions set on_shift = true where id = %s", (third["session_id"],))
    start_both(db, third["session_id"])
    take_part(db, third["session_id"])
    db.execute("update public.mechanics set currently_on_shift = false where id = %s", (mechanic,))
    with db.as_user(mechanic):
        db.rpc("end_session", p_session_id=third["session_id"])
    release_hold(db, third["session_id"])
    assert _split(db, third["session_id"]) == {"mechanic": 324, "workshop": 74, "platform": 101}

    # a micro session taken off shift (by a mechanic allowed to) uses the default rule
    independent = make_mechanic(db, organization_id=org, account_type="individual_mechanic")
    fourth = _completed_credit_session(db, independent, "micro")
    assert _split(db, fourth["session_id"]) == {"mechanic": 349, "platform": 150}
    assert db.all("select * from private.payment_integrity_issues") == []


def test_a_rule_with_a_workshop_share_for_a_mechanic_without_workshop(db: Db) -> None:
    db.execute("update public.revenue_split_rules set mechanic_bps = 6000, workshop_bps = 1000"
               " where mechanic_type = 'virtual_only' and session_kind = 'default'")
    mechanic = make_mechanic(db)
    out = _completed_credit_session(db, mechanic, "video15")  # 2999
    assert _split(db, out["session_id"]) == {"mechanic": 1799 + 299, "platform": 901}
    assert db.scalar("select share_bps from public.payouts") == 7000


def test_changing_a_rule_applies_to_sessions_settled_later(db: Db) -> None:
    mechanic = make_mechanic(db)
    before = _completed_credit_session(db, mechanic, "video15")
    db.execute("update public.revenue_split_rules set mechanic_bps = 8000, platform_bps = 2000"
               " where mechanic_type = 'virtual_only' and session_kind = 'default'")
    after = _completed_credit_session(db, mechanic, "video15")
    assert _split(db, before["session_id"])["mechanic"] == 2099
    assert _split(db, after["session_id"])["mechanic"] == 2399
    rule = db.scalar("select id from public.revenue_split_rules where mechanic_type = 'virtual_only'"
                     " and session_kind = 'default'")
    assert db.scalar("select count(*) from public.payments where split_rule_id = %s", (rule,)) == 2


def test_workers_racing_over_the_queue_pay_each_payout_once(pay: Pay) -> None:
    """Four workers at once, several rounds: every payout is claimed by exactly one of them."""
    mechanics = [pay.mechanic() for _ in range(6)]
    for m in mechanics:
        pay.onboard(m)
    for _ in range(3):
        sessions = []
        for m in mechanics:
            out = _completed_credit_session(pay.db, m, "chat10")
            sessions.append(out["session_id"])
        pay.commit()
        calls_before = len(pay.fake.calls_to("POST", "/v1/transfers"))
        barrier = threading.Barrier(4)
        results: list[Any] = [None] * 4

        def run(i: int, barrier: threading.Barrier = barrier, results: list[Any] = results) -> None:
            barrier.wait()
            results[i] = payments.process_payouts(limit=2)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        pay.drain()
        assert sum(r.get("transfers_paid", 0) for r in results) <= len(sessions)
        assert len(pay.fake.calls_to("POST", "/v1/transfers")) - calls_before == len(sessions)  # no double call
        assert pay.val("select count(*) from public.payouts where status = 'paid' and session_id = any(%s)",
                       (sessions,)) == len(sessions)
    assert len({o["id"] for o in pay.fake.objects.values() if o["object"] == "transfer"}) == 18
    pay.assert_books_balance()
