"""connect_onboarding: the Standard account is created once per mechanic or workshop (idempotency
key from our id, also under concurrent calls), a fresh onboarding link every time, and only for
approved mechanics and workshop owners."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from functions.connect import connect_onboarding
from tests.support.payments import Pay, call

URLS = {"return_url": "https://app.example.test/payouts/done", "refresh_url": "https://app.example.test/payouts/again"}


def _key(c: Any) -> str:
    return {k.lower(): v for k, v in c.headers.items()}["idempotency-key"]


def test_an_approved_mechanic_gets_one_account_and_fresh_links(pay: Pay) -> None:
    mechanic = pay.mechanic()
    status, first = call(connect_onboarding, body=URLS, headers=pay.token(mechanic))
    assert status == 200 and first["owner_kind"] == "mechanic" and first["owner_id"] == str(mechanic)
    assert first["url"].startswith("https://connect.stripe.com/setup/e/" + first["stripe_account_id"])
    status, second = call(connect_onboarding, body=URLS, headers=pay.token(mechanic))
    assert second["stripe_account_id"] == first["stripe_account_id"] and second["url"] != first["url"]
    [create] = pay.fake.calls_to("POST", "/v1/accounts")
    params = pay.fake.params(create)
    # Standard: the mechanic controls the account; Stripe requests its capabilities itself
    assert params["type"] == "standard" and "capabilities" not in params
    assert params["metadata"] == {"mechanic_id": str(mechanic)}
    assert _key(create) == f"connect-account:mechanic:{mechanic}"
    links = pay.fake.calls_to("POST", "/v1/account_links")
    assert len(links) == 2
    assert pay.fake.params(links[0]) == {"account": first["stripe_account_id"], "type": "account_onboarding", **URLS}
    row = pay.row("select * from public.payout_accounts")
    assert (row["mechanic_id"], row["stripe_account_id"], row["transfers_active"]) == (
        mechanic, first["stripe_account_id"], False)


def test_concurrent_onboarding_creates_one_account(pay: Pay) -> None:
    for _ in range(3):
        mechanic = pay.mechanic()
        n = 6
        barrier = threading.Barrier(n)
        results: list[Any] = [None] * n

        def run(i: int, mechanic: Any = mechanic, barrier: threading.Barrier = barrier,
                results: list[Any] = results) -> None:
            barrier.wait()
            results[i] = call(connect_onboarding, body=URLS, headers=pay.token(mechanic))

        threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert all(status == 200 for status, _ in results), results
        assert len({body["stripe_account_id"] for _, body in results}) == 1
        assert pay.val("select count(*) from public.payout_accounts where mechanic_id = %s", (mechanic,)) == 1
    assert len(pay.fake.accounts) == 3  # Stripe made one account per mechanic (same idempotency key)


def test_a_workshop_owner_onboards_the_workshop(pay: Pay) -> None:
    org, owner = pay.workshop()
    body = {**URLS, "organization_id": str(org)}
    status, out = call(connect_onboarding, body=body, headers=pay.token(owner))
    assert status == 200 and out["owner_kind"] == "workshop" and out["owner_id"] == str(org)
    row = pay.row("select * from public.payout_accounts")
    assert row["organization_id"] == org and row["mechanic_id"] is None
    assert _key(pay.fake.calls_to("POST", "/v1/accounts")[0]) == f"connect-account:workshop:{org}"


def test_who_may_not_onboard(pay: Pay) -> None:
    org, _owner = pay.workshop()
    pending = pay.mechanic(approved=False)
    customer = pay.customer()
    member = pay.mechanic(organization=org)  # a workshop's mechanic is not its owner
    staff = pay.customer("Ada Admin-of-workshop")
    pay.db.execute("insert into public.organization_members values (%s, %s, 'manager')", (org, staff))
    pay.commit()
    cases = [(pending, None, 403, "AD003"), (customer, None, 403, "AD003"), (member, org, 403, "AD003"),
             (staff, org, 403, "AD003"), (customer, org, 404, "AD004")]
    for who, organization, status, code in cases:
        body = dict(URLS) if organization is None else {**URLS, "organization_id": str(organization)}
        got, payload = call(connect_onboarding, body=body, headers=pay.token(who))
        assert (got, payload["code"]) == (status, code), (who, organization)
    assert pay.rows("select * from public.payout_accounts") == []
    assert pay.fake.calls == []
    assert pay.val("select status from public.mechanics where id = %s", (pending,)) == "pending"  # it exists


@pytest.mark.parametrize("body", [
    {"return_url": "https://ok.example/x"},
    {**URLS, "return_url": "javascript:alert(1)"},
    {**URLS, "refresh_url": "ftp://x.example/"},
    {**URLS, "organization_id": "not-a-uuid"},
    {**URLS, "account": "acct_someone_else"},
])
def test_bad_onboarding_input(pay: Pay, body: dict[str, Any]) -> None:
    mechanic = pay.mechanic()
    status, payload = call(connect_onboarding, body=body, headers=pay.token(mechanic))
    assert status == 400 and payload["code"] == "AD001"
    assert call(connect_onboarding, body=URLS)[0] == 401
    assert pay.rows("select * from public.payout_accounts") == [] and pay.fake.calls == []


def test_a_stripe_failure_stores_nothing_and_a_retry_works(pay: Pay) -> None:
    mechanic = pay.mechanic()
    pay.fake.fail_next("/v1/accounts", status=500)
    status, payload = call(connect_onboarding, body=URLS, headers=pay.token(mechanic))
    assert status == 502 and payload["code"] == "AD024"
    assert pay.rows("select * from public.payout_accounts") == []
    status, out = call(connect_onboarding, body=URLS, headers=pay.token(mechanic))
    assert status == 200 and pay.val("select stripe_account_id from public.payout_accounts") == out[
        "stripe_account_id"]
