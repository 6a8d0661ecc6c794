"""The workshop as a payee: only its owner onboards it to Stripe Connect (the owner after a transfer);
a removed mechanic's later sessions pay the mechanic, payouts already created stay with the workshop."""

from __future__ import annotations

import uuid
from typing import Any

from functions.connect import connect_onboarding
from tests.support.delivery import deliver_and_release
from tests.support.factories import accept, make_admin, make_customer, make_intake
from tests.support.harness import Db
from tests.support.payments import Pay, call
from tests.support.tenancy import make_shop

URLS = {"return_url": "https://app.example.test/payouts/done", "refresh_url": "https://app.example.test/payouts/again"}


def _completed_credit_session(db: Db, mechanic: uuid.UUID, plan: str = "video15") -> dict[str, Any]:
    admin, customer = make_admin(db), make_customer(db)
    with db.as_user(admin):
        db.rpc("admin_grant_credit", p_customer_id=customer, p_amount_cents=5000, p_reason="test")
    out = db.scalar("select private.prepare_checkout(%s, %s, %s, null, null, false)",
                    (customer, plan, make_intake(db, customer)))
    accept(db, mechanic, out["request_id"])
    return dict(out)


def test_only_the_owner_onboards_the_workshop_and_the_right_follows_a_transfer(pay: Pay) -> None:
    s = make_shop(pay.db)
    pay.commit()
    body = {**URLS, "organization_id": str(s.workshop)}
    for who in (s.manager, s.dispatcher, s.mechanic, s.other_owner, s.customer):
        status, out = call(connect_onboarding, body=body, headers=pay.token(who))
        assert status in (403, 404), (who, out)
    assert pay.rows("select * from public.payout_accounts") == []
    with pay.db.as_user(s.owner):
        pay.db.rpc("transfer_workshop_ownership", p_workshop_id=s.workshop, p_new_owner_id=s.manager)
    pay.commit()
    assert call(connect_onboarding, body=body, headers=pay.token(s.owner))[0] == 403
    status, out = call(connect_onboarding, body=body, headers=pay.token(s.manager))
    assert status == 200 and out["owner_kind"] == "workshop" and out["owner_id"] == str(s.workshop)
    assert pay.row("select organization_id from public.payout_accounts")["organization_id"] == s.workshop


def test_a_removed_mechanic_is_paid_directly_from_then_on(db: Db) -> None:
    s = make_shop(db)
    before = _completed_credit_session(db, s.mechanic)
    deliver_and_release(db, before["session_id"])  # settled while in the workshop
    pending = _completed_credit_session(db, s.mechanic)  # accepted while in the workshop, settled after
    with db.as_user(s.manager):
        db.rpc("remove_workshop_member", p_workshop_id=s.workshop, p_user_id=s.mechanic)
    deliver_and_release(db, pending["session_id"])
    kinds = {r["session_id"]: (r["payee_kind"], r["organization_id"], r["mechanic_id"])
             for r in db.all("select session_id, payee_kind, organization_id, mechanic_id from public.payouts")}
    assert kinds[uuid.UUID(str(before["session_id"]))] == ("workshop", s.workshop, None)
    assert kinds[uuid.UUID(str(pending["session_id"]))] == ("mechanic", None, s.mechanic)
    # the session stays the mechanic's
    assert db.scalar("select mechanic_id from public.sessions where id = %s", (pending["session_id"],)) == s.mechanic
    assert db.all("select * from private.payment_integrity_issues") == []
