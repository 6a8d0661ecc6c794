"""Brand specialists: marked by the owners and managers of the mechanic's workshop or a platform
admin, never by the mechanic itself; brands trimmed, de-duplicated, at most 30 of at most 30
characters; the matching copy (brand_keys) and the specialist surcharge follow."""

from __future__ import annotations

import uuid

import pytest

from tests.support.directory import Shops, acting, make_shops, pg_array
from tests.support.harness import Db

INVALID, NOT_AUTH, NOT_ALLOWED, NOT_FOUND = "AD001", "AD002", "AD003", "AD004"


@pytest.fixture
def shops(db: Db) -> Shops:
    return make_shops(db)


def row(db: Db, mechanic: uuid.UUID) -> dict:
    r = db.one("select is_brand_specialist, brand_specializations, brand_keys, specialization_set_by "
               "from public.mechanics where id = %s", (mechanic,))
    assert r is not None
    return r


def mark(db: Db, who: uuid.UUID | None, mechanic: uuid.UUID, brands: list, specialist: bool = True) -> dict:
    with acting(db, who):
        return db.rpc("set_mechanic_specialization", p_mechanic_id=mechanic, p_is_brand_specialist=specialist,
                      p_brands=pg_array(brands))


@pytest.mark.parametrize("persona", ["owner", "manager", "admin"])
def test_owner_manager_and_admin_mark_a_specialist(db: Db, shops: Shops, persona: str) -> None:
    out = mark(db, shops.who(persona), shops.a.mechanic, ["  Honda ", "Acura", "honda", "ACURA"])
    assert out["brand_specializations"] == ["Honda", "Acura"]
    r = row(db, shops.a.mechanic)
    assert r["is_brand_specialist"] and r["brand_specializations"] == ["Honda", "Acura"]
    assert sorted(r["brand_keys"]) == ["acura", "honda"]
    assert r["specialization_set_by"] == shops.who(persona)
    # the surcharge reads the same columns
    assert db.scalar("select private.is_specialist_for(%s, 'honda')", (shops.a.mechanic,))
    assert not db.scalar("select private.is_specialist_for(%s, 'bmw')", (shops.a.mechanic,))
    # unmarking keeps the brands but ends the surcharge
    mark(db, shops.who(persona), shops.a.mechanic, ["Honda"], specialist=False)
    assert not db.scalar("select private.is_specialist_for(%s, 'honda')", (shops.a.mechanic,))


@pytest.mark.parametrize("persona,code", [
    ("dispatcher", NOT_ALLOWED), ("mechanic", NOT_ALLOWED), ("other_owner", NOT_ALLOWED),
    ("other_dispatcher", NOT_ALLOWED), ("customer", NOT_ALLOWED), ("independent", NOT_ALLOWED),
])
def test_others_cannot_mark(db: Db, shops: Shops, persona: str, code: str) -> None:
    target = shops.a.mechanic2  # the persona "mechanic" is a colleague, not the target
    before = row(db, target)
    with acting(db, shops.who(persona)):
        assert db.rpc_error("set_mechanic_specialization", p_mechanic_id=target, p_is_brand_specialist=True,
                            p_brands=pg_array(["Honda"])) == code
    assert row(db, target) == before


def test_anon_cannot_call(db: Db, shops: Shops) -> None:
    with db.as_anon():
        assert db.rpc_error("set_mechanic_specialization", p_mechanic_id=shops.a.mechanic,
                            p_is_brand_specialist=True, p_brands=pg_array(["Honda"])) == "42501"
    assert not row(db, shops.a.mechanic)["is_brand_specialist"]


def test_a_mechanic_cannot_mark_itself_even_as_owner(db: Db, shops: Shops) -> None:
    # the workshop's mechanic is also made its manager: still not itself
    db.execute("update public.organization_members set role = 'manager' where user_id = %s", (shops.a.mechanic,))
    with db.as_user(shops.a.mechanic):
        assert db.rpc_error("set_mechanic_specialization", p_mechanic_id=shops.a.mechanic,
                            p_is_brand_specialist=True, p_brands=pg_array(["Honda"])) == NOT_ALLOWED
        # ... but it marks its colleague
        db.rpc("set_mechanic_specialization", p_mechanic_id=shops.a.mechanic2, p_is_brand_specialist=True,
               p_brands=pg_array(["Honda"]))
    assert not row(db, shops.a.mechanic)["is_brand_specialist"]
    assert row(db, shops.a.mechanic2)["is_brand_specialist"]


def test_independent_mechanic_is_marked_by_an_admin_only(db: Db, shops: Shops) -> None:
    with db.as_user(shops.a.owner):
        assert db.rpc_error("set_mechanic_specialization", p_mechanic_id=shops.independent,
                            p_is_brand_specialist=True, p_brands=pg_array(["BMW"])) == NOT_ALLOWED
    mark(db, shops.admin, shops.independent, ["BMW"])
    assert row(db, shops.independent)["brand_keys"] == ["bmw"]


@pytest.mark.parametrize("brands,specialist", [
    (None, True), ([""], True), (["   "], True), (["x" * 31], True), ([f"B{i}" for i in range(31)], True),
    (["Honda", None], True), ([], True), ([["Honda"]], True),
])
def test_hostile_brands(db: Db, shops: Shops, brands: list | None, specialist: bool) -> None:
    before = row(db, shops.a.mechanic)
    with db.as_user(shops.a.owner):
        assert db.rpc_error("set_mechanic_specialization", p_mechanic_id=shops.a.mechanic,
                            p_is_brand_specialist=specialist, p_brands=pg_array(brands)) == INVALID
    assert row(db, shops.a.mechanic) == before


def test_hostile_ids_and_nulls(db: Db, shops: Shops) -> None:
    with db.as_user(shops.a.owner):
        assert db.rpc_error("set_mechanic_specialization", p_mechanic_id=None, p_is_brand_specialist=True,
                            p_brands=pg_array(["Honda"])) == INVALID
        assert db.rpc_error("set_mechanic_specialization", p_mechanic_id=shops.a.mechanic,
                            p_is_brand_specialist=None, p_brands=pg_array(["Honda"])) == INVALID
        assert db.rpc_error("set_mechanic_specialization", p_mechanic_id=uuid.uuid4(), p_is_brand_specialist=True,
                            p_brands=pg_array(["Honda"])) == NOT_FOUND
        # a customer's id is no mechanic
        assert db.rpc_error("set_mechanic_specialization", p_mechanic_id=shops.customer, p_is_brand_specialist=True,
                            p_brands=pg_array(["Honda"])) == NOT_FOUND
        assert db.error("select public.set_mechanic_specialization('not-a-uuid', true, '{Honda}')").sqlstate == "22P02"


def test_thirty_brands_of_thirty_characters_pass(db: Db, shops: Shops) -> None:
    brands = [f"{i:02d}" + "x" * 28 for i in range(30)]
    out = mark(db, shops.a.owner, shops.a.mechanic, brands + [b.upper() for b in brands])
    assert len(out["brand_specializations"]) == 30


def test_a_specialist_cannot_widen_its_own_brands(db: Db, shops: Shops) -> None:
    """Gaming the surcharge: a marked specialist edits its own brands directly."""
    mark(db, shops.a.owner, shops.a.mechanic, ["Honda"])
    with db.as_user(shops.a.mechanic):
        err = db.error("update public.mechanics set brand_specializations = '{Honda,BMW}' where id = %s",
                       (shops.a.mechanic,))
    assert err.sqlstate == NOT_ALLOWED
    assert row(db, shops.a.mechanic)["brand_keys"] == ["honda"]
    # a mechanic who is no specialist still edits the brands it lists
    with db.as_user(shops.a.mechanic2):
        assert db.execute("update public.mechanics set brand_specializations = '{Toyota}' where id = %s",
                          (shops.a.mechanic2,)).rowcount == 1
    assert row(db, shops.a.mechanic2)["brand_keys"] == ["toyota"]


def test_not_authenticated(db: Db, shops: Shops) -> None:
    with db.as_service():
        assert db.rpc_error("set_mechanic_specialization", p_mechanic_id=shops.a.mechanic,
                            p_is_brand_specialist=True, p_brands=pg_array(["Honda"])) == NOT_AUTH
