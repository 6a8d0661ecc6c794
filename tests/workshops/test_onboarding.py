"""Onboarding: any signed-in user creates a pending workshop and owns it; a platform admin verifies
or suspends it; details are validated strictly and edited by edit_details only."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from tests.support.factories import make_admin, make_customer, make_mechanic
from tests.support.harness import Db
from tests.support.personas import race
from tests.support.tenancy import as_persona, create_workshop, make_shop

FULL = {"legal_name": "Bay Motors Ltd", "address_line": "12 Harbour St", "city": "Toronto", "postal_code": "M5J 2N8",
        "country": "ca", "latitude": 43.64, "longitude": -79.38, "phone": "+1 416 555 0100",
        "description": "Brakes and more", "services": ["brakes", "diagnostics", "brakes"],
        "brands": ["Honda", " Toyota "], "photo_url": "https://img.example.test/bay.jpg"}


def test_a_signed_in_user_creates_a_pending_workshop_it_owns(db: Db) -> None:
    user = make_customer(db, waiver=False)  # no waiver needed to run a workshop
    with db.as_user(user):
        out = db.rpc("create_workshop", p_name=" Bay Motors ", p_timezone="America/Toronto", p_details=FULL)
    assert out["status"] == "pending" and out["role"] == "owner" and out["name"] == "Bay Motors"
    assert out["services"] == ["brakes", "diagnostics"] and out["brands"] == ["Honda", "Toyota"]
    assert out["country"] == "CA" and out["postal_code"] == "M5J 2N8" and out["latitude"] == 43.64
    row = db.one("select * from public.organizations where id = %s", (out["workshop_id"],))
    assert row["status"] == "pending" and row["verified_at"] is None and row["created_by"] == user
    assert db.scalar("select role::text from public.organization_members where organization_id = %s and user_id = %s",
                     (out["workshop_id"], user)) == "owner"


def test_anon_cannot_create_and_nothing_is_written(db: Db) -> None:
    with db.as_anon():
        code = db.rpc_error("create_workshop", p_name="X", p_timezone="UTC")
    assert code in ("42501", "AD002")
    assert db.scalar("select count(*) from public.organizations where name = 'X'") == 0


@pytest.mark.parametrize(("name", "tz", "details"), [
    (None, "UTC", {}), ("", "UTC", {}), ("x" * 201, "UTC", {}), ("Bay", None, {}), ("Bay", "Mars/Olympus", {}),
    ("Bay", "UTC", {"owner": "me"}), ("Bay", "UTC", {"status": "verified"}), ("Bay", "UTC", []),
    ("Bay", "UTC", {"latitude": 43.6}), ("Bay", "UTC", {"latitude": 91, "longitude": 0}),
    ("Bay", "UTC", {"latitude": "43", "longitude": "-79"}), ("Bay", "UTC", {"services": ["teleportation"]}),
    ("Bay", "UTC", {"services": "brakes"}), ("Bay", "UTC", {"brands": [""]}), ("Bay", "UTC", {"brands": [1]}),
    ("Bay", "UTC", {"brands": ["b"] * 51}), ("Bay", "UTC", {"photo_url": "http://insecure.test/x.jpg"}),
    ("Bay", "UTC", {"photo_url": "javascript:alert(1)"}), ("Bay", "UTC", {"phone": "call me maybe"}),
    ("Bay", "UTC", {"country": "Canada"}), ("Bay", "UTC", {"postal_code": "<script>"}),
    ("Bay", "UTC", {"description": "x" * 4001}), ("Bay", "UTC", {"legal_name": "a\u0001b"}),
])
def test_hostile_create_input_is_invalid_and_writes_nothing(db: Db, name: Any, tz: Any, details: Any) -> None:
    user = make_customer(db)
    with db.as_user(user):
        assert db.rpc_error("create_workshop", p_name=name, p_timezone=tz, p_details=details) == "AD001"
    assert db.scalar("select count(*) from public.organizations where created_by = %s", (user,)) == 0


def test_pending_workshops_per_user_are_capped(db: Db) -> None:
    user = make_customer(db)
    for i in range(3):
        create_workshop(db, user, f"Shop {i}")
    with db.as_user(user):
        assert db.rpc_error("create_workshop", p_name="Shop 4", p_timezone="UTC") == "AD154"
    admin = make_admin(db)
    first = db.scalar("select id from public.organizations where created_by = %s order by name limit 1", (user,))
    with db.as_user(admin):
        db.rpc("admin_set_workshop_status", p_workshop_id=first, p_status="verified")
    create_workshop(db, user, "Shop 4")  # a verified one no longer counts
    assert db.scalar("select count(*) from public.organizations where created_by = %s", (user,)) == 4


def test_concurrent_creations_respect_the_cap(fresh_url: str) -> None:
    conns = [psycopg.connect(fresh_url) for _ in range(4)]
    db = Db(conns[0])
    user = make_customer(db)
    for i in range(2):
        create_workshop(db, user, f"Shop {i}")
    conns[0].commit()
    results = race([(c, user, "select public.create_workshop('Racer', 'UTC')", ()) for c in conns[1:]])
    assert sorted(r[0] for r in results) == ["err", "err", "ok"], results
    assert {r[1] for r in results if r[0] == "err"} == {"AD154"}
    assert db.scalar("select count(*) from public.organizations where created_by = %s", (user,)) == 3
    for c in conns:
        c.close()


def test_only_platform_admins_verify_and_suspend(db: Db) -> None:
    s = make_shop(db, verified=False)
    for who in (s.owner, s.manager, s.customer, s.other_owner):
        with db.as_user(who):
            assert db.rpc_error("admin_set_workshop_status", p_workshop_id=s.workshop, p_status="verified") == "AD003"
    assert db.scalar("select status from public.organizations where id = %s", (s.workshop,)) == "pending"
    with db.as_user(s.admin):
        for bad in ("pending", "deleted", None):
            assert db.rpc_error("admin_set_workshop_status", p_workshop_id=s.workshop, p_status=bad) == "AD001"
        assert db.rpc_error("admin_set_workshop_status", p_workshop_id=uuid.uuid4(), p_status="verified") == "AD004"
        assert db.rpc_error("admin_set_workshop_status", p_workshop_id=None, p_status="verified") == "AD001"
        out = db.rpc("admin_set_workshop_status", p_workshop_id=s.workshop, p_status="verified")
        assert out["status"] == "verified" and out["verified_at"] is not None
        assert db.rpc_error("admin_set_workshop_status", p_workshop_id=s.workshop, p_status="verified") == "AD006"
        assert db.rpc("admin_set_workshop_status", p_workshop_id=s.workshop, p_status="suspended")["status"] == \
            "suspended"


def test_owners_cannot_set_their_status_through_the_table(db: Db) -> None:
    s = make_shop(db, verified=False)
    with db.as_user(s.owner):
        err = db.error("update public.organizations set status = 'verified' where id = %s", (s.workshop,))
    assert err.sqlstate == "42501"
    assert db.scalar("select status from public.organizations where id = %s", (s.workshop,)) == "pending"


@pytest.mark.parametrize(("persona", "outcome"), [
    ("owner", None), ("manager", None), ("admin", None), ("dispatcher", "AD003"), ("mechanic", "AD003"),
    ("other_owner", "AD004"), ("customer", "AD004"), ("anon", "any"),
])
def test_details_are_edited_by_edit_details_only(db: Db, persona: str, outcome: str | None) -> None:
    s = make_shop(db)
    who = s.personas()[persona]
    with as_persona(db, who):
        if outcome is None:
            out = db.rpc("update_workshop_details", p_workshop_id=s.workshop, p_details={"city": "Hamilton"})
            assert out["city"] == "Hamilton"
        else:
            code = db.rpc_error("update_workshop_details", p_workshop_id=s.workshop, p_details={"city": "Hamilton"})
            assert outcome == "any" or code == outcome
    city = db.scalar("select city from public.organizations where id = %s", (s.workshop,))
    assert (city == "Hamilton") == (outcome is None)


def test_update_details_hostile_input(db: Db) -> None:
    s = make_shop(db)
    with db.as_user(s.owner):
        db.rpc("update_workshop_details", p_workshop_id=s.workshop, p_details=FULL)
        for bad in ({"nope": 1}, {"latitude": None}, {"services": ["brakes", 3]}, None, ["city"]):
            assert db.rpc_error("update_workshop_details", p_workshop_id=s.workshop, p_details=bad) == "AD001"
        assert db.rpc_error("update_workshop_details", p_workshop_id=None, p_details={}) == "AD001"
        assert db.rpc_error("update_workshop_details", p_workshop_id=uuid.uuid4(), p_details={}) == "AD004"
        # null clears a key; coordinates clear together
        out = db.rpc("update_workshop_details", p_workshop_id=s.workshop,
                     p_details={"phone": None, "latitude": None, "longitude": None, "brands": None})
    assert out["phone"] is None and out["latitude"] is None and out["brands"] == [] and out["city"] == "Toronto"


def test_a_mechanic_can_create_a_workshop_too(db: Db) -> None:
    mechanic = make_mechanic(db)
    workshop = create_workshop(db, mechanic, "Morgan's Garage")
    assert db.scalar("select role::text from public.organization_members where organization_id = %s",
                     (workshop,)) == "owner"
    # owning a workshop does not link its mechanic row (it joins as a mechanic by invitation)
    assert db.scalar("select organization_id from public.mechanics where id = %s", (mechanic,)) is None
