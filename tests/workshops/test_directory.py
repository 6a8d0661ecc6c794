"""The public directory of verified workshops (public.workshop_directory) and find_workshops: only
verified workshops, only public columns (no phone, street address or legal name), coordinates
rounded, nearest first with the distance in km, otherwise by city and postal area; filters by
service and brand; anyone may read and search."""

from __future__ import annotations

import uuid

import pytest

from tests.support.directory import Shops, acting, make_shop, make_shops
from tests.support.factories import make_customer
from tests.support.harness import Db

INVALID, DENIED = "AD001", "42501"
PUBLIC_COLUMNS = ["id", "name", "city", "postal_area", "country", "services", "brands", "hours", "rating",
                  "rating_count", "photo_url", "description", "latitude", "longitude", "verified_at"]
MONTREAL, TORONTO, OTTAWA = (45.5017, -73.5673), (43.6532, -79.3832), (45.4215, -75.6972)


@pytest.fixture
def shops(db: Db) -> Shops:
    s = make_shops(db)
    db.execute("update public.organizations set city = 'Montréal', postal_code = 'h2x 1y4', country = 'CA', "
               "latitude = %s, longitude = %s, phone = '+1 514 555 0100', address_line = '123 Rue Secrète', "
               "legal_name = 'Bay Motors Holdings Inc.', services = '{Brakes,Oil change}', brands = '{Honda,Toyota}', "
               "description = 'Brakes and more', photo_url = 'https://example.test/bay.jpg' where id = %s",
               (*MONTREAL, s.a.org))
    db.execute("update public.organizations set city = 'Toronto', postal_code = 'M5V 2T6', country = 'CA', "
               "latitude = %s, longitude = %s, phone = '+1 416 555 0100', address_line = '9 Hidden St', "
               "services = '{Tires}', brands = '{BMW}' where id = %s", (*TORONTO, s.b.org))
    db.execute("insert into public.workshop_hours (organization_id, day_of_week, is_open, open_time, close_time, "
               "capacity) values (%s, 1, true, '08:00', '17:00', 2), (%s, 0, false, '09:00', '12:00', 1)",
               (s.a.org, s.a.org))
    return s


def listed(db: Db, who: uuid.UUID | None = None) -> dict[uuid.UUID, dict]:
    with acting(db, who):
        return {r["id"]: r for r in db.all("select * from public.workshop_directory")}


def find(db: Db, who: uuid.UUID | None = None, **kwargs: object) -> list[dict]:
    with acting(db, who):
        return db.all(
            "select * from public.find_workshops(p_latitude => %(lat)s, p_longitude => %(lon)s, p_city => %(city)s, "
            "p_service => %(service)s, p_brand => %(brand)s, p_limit => %(limit)s)",
            {"lat": kwargs.get("p_latitude"), "lon": kwargs.get("p_longitude"), "city": kwargs.get("p_city"),
             "service": kwargs.get("p_service"), "brand": kwargs.get("p_brand"), "limit": kwargs.get("p_limit", 20)})


def test_the_view_shows_public_columns_of_verified_workshops(db: Db, shops: Shops) -> None:
    cols = [r["column_name"] for r in db.all(
        "select column_name from information_schema.columns where table_schema = 'public' "
        "and table_name = 'workshop_directory' order by ordinal_position")]
    assert cols == PUBLIC_COLUMNS
    row = listed(db)[shops.a.org]
    assert row["name"] == "Bay Motors" and row["city"] == "Montréal" and row["postal_area"] == "H2X"
    assert float(row["latitude"]) == 45.50 and float(row["longitude"]) == -73.57
    assert row["services"] == ["Brakes", "Oil change"] and row["brands"] == ["Honda", "Toyota"]
    assert row["hours"] == [{"day_of_week": 1, "open": "08:00:00", "close": "17:00:00", "break_start": None,
                             "break_end": None}]
    assert row["rating"] is None and row["rating_count"] == 0


@pytest.mark.parametrize("persona", ["anon", "customer", "mechanic", "other_owner", "dispatcher", "admin"])
def test_everyone_reads_the_directory_never_the_private_details(db: Db, shops: Shops, persona: str) -> None:
    rows = listed(db, shops.who(persona))
    assert {shops.a.org, shops.b.org} <= set(rows)
    # the phone (555…), street and legal name appear in no column (ids and times left out: a random
    # uuid or a clock may contain "555")
    text = repr({k: v for k, v in rows[shops.a.org].items() if k not in ("id", "verified_at")})
    assert "555" not in text and "Secrète" not in text and "Holdings" not in text


@pytest.mark.parametrize("persona", ["anon", "customer", "other_owner"])
def test_outsiders_cannot_read_the_phone_in_the_table(db: Db, shops: Shops, persona: str) -> None:
    assert db.scalar("select phone from public.organizations where id = %s", (shops.a.org,))  # it exists
    with acting(db, shops.who(persona)):
        if persona == "anon":
            assert db.error("select phone from public.organizations where id = %s", (shops.a.org,)).sqlstate == DENIED
        else:
            assert db.all("select phone from public.organizations where id = %s", (shops.a.org,)) == []


def test_unverified_workshops_are_not_listed(db: Db, shops: Shops) -> None:
    pending = make_shop(db, "Pending Garage")
    db.execute("update public.organizations set status = 'pending', verified_at = null where id = %s", (pending.org,))
    db.execute("update public.organizations set status = 'suspended' where id = %s", (shops.b.org,))
    assert db.scalar("select count(*) from public.organizations where id in (%s, %s)", (pending.org, shops.b.org)) == 2
    for who in (None, shops.customer, shops.admin):
        rows = listed(db, who)
        assert shops.a.org in rows and pending.org not in rows and shops.b.org not in rows
        ids = {r["id"] for r in find(db, who)}
        assert shops.a.org in ids and pending.org not in ids and shops.b.org not in ids
        near = {r["id"] for r in find(db, who, p_latitude=TORONTO[0], p_longitude=TORONTO[1])}
        assert shops.b.org not in near


def test_rating_is_the_bayesian_score_of_its_mechanics_reviews(db: Db, shops: Shops) -> None:
    db.execute("update public.mechanics set rating_sum = 45, rating_count = 10 where id = %s", (shops.a.mechanic,))
    db.execute("update public.mechanics set rating_sum = 10, rating_count = 2 where id = %s", (shops.a.mechanic2,))
    expected = db.scalar("select round(private.reviews_score(55, 12), 2)")
    row = listed(db)[shops.a.org]
    assert row["rating"] == expected and row["rating_count"] == 12


def test_find_nearest_first_with_distance(db: Db, shops: Shops) -> None:
    ottawa = make_shop(db, "Capital Auto")
    db.execute("update public.organizations set city = 'Ottawa', latitude = %s, longitude = %s where id = %s",
               (*OTTAWA, ottawa.org))
    nowhere = make_shop(db, "No Map Garage")  # no coordinates: after the others
    db.execute("update public.organizations set city = 'Ottawa' where id = %s", (nowhere.org,))
    rows = find(db, None, p_latitude=OTTAWA[0] + 0.01, p_longitude=OTTAWA[1])
    order = [r["id"] for r in rows if r["id"] in {shops.a.org, shops.b.org, ottawa.org, nowhere.org}]
    assert order == [ottawa.org, shops.a.org, shops.b.org, nowhere.org]
    km = {r["id"]: r["distance_km"] for r in rows}
    assert 0.5 < float(km[ottawa.org]) < 2
    assert 150 < float(km[shops.a.org]) < 175  # Ottawa–Montréal ~ 165 km
    assert 340 < float(km[shops.b.org]) < 370  # Ottawa–Toronto ~ 353 km
    assert km[nowhere.org] is None
    assert len(find(db, None, p_latitude=OTTAWA[0], p_longitude=OTTAWA[1], p_limit=2)) == 2


def test_find_without_coordinates_orders_by_city_and_postal_area(db: Db, shops: Shops) -> None:
    second = make_shop(db, "Another Montréal Garage")
    db.execute("update public.organizations set city = 'montréal ', postal_code = 'H1A 0A1' where id = %s",
               (second.org,))
    rows = find(db, None, p_city="  MONTRÉAL")
    assert [r["id"] for r in rows] == [second.org, shops.a.org]  # H1A before H2X
    assert all(r["distance_km"] is None for r in rows)


def test_find_filters_service_and_brand_case_insensitively(db: Db, shops: Shops) -> None:
    assert [r["id"] for r in find(db, None, p_service="oil CHANGE")] == [shops.a.org]
    assert [r["id"] for r in find(db, None, p_brand="bmw")] == [shops.b.org]
    assert find(db, None, p_brand="honda", p_service="tires") == []
    assert [r["id"] for r in find(db, None, p_latitude=TORONTO[0], p_longitude=TORONTO[1], p_brand=" TOYOTA ")] \
        == [shops.a.org]


@pytest.mark.parametrize("persona", ["anon", "customer", "mechanic", "admin"])
def test_anyone_may_search(db: Db, shops: Shops, persona: str) -> None:
    rows = find(db, shops.who(persona), p_brand="honda")
    assert [r["id"] for r in rows] == [shops.a.org]
    assert set(rows[0]) == {*PUBLIC_COLUMNS, "distance_km"} - {"verified_at"}


@pytest.mark.parametrize("kwargs", [
    {"p_limit": 0}, {"p_limit": 101}, {"p_limit": None}, {"p_latitude": 45.0}, {"p_longitude": -73.0},
    {"p_latitude": 91.0, "p_longitude": 0.0}, {"p_latitude": 0.0, "p_longitude": 181.0},
    {"p_latitude": float("nan"), "p_longitude": 0.0}, {"p_latitude": float("inf"), "p_longitude": 0.0},
    {"p_city": "x" * 121}, {"p_service": "x" * 81}, {"p_brand": "x" * 61}, {"p_city": "   "}, {"p_brand": ""},
])
def test_find_hostile_inputs(db: Db, shops: Shops, kwargs: dict) -> None:
    with db.as_anon():
        assert db.rpc_error("find_workshops", **kwargs) == INVALID


def test_find_with_injection_like_text_matches_nothing(db: Db, shops: Shops) -> None:
    assert find(db, make_customer(db), p_city="x' or 1=1 --") == []
    assert find(db, None, p_brand="%") == []


def test_the_nearest_search_can_use_its_index(db: Db, shops: Shops) -> None:
    db.execute("set local enable_seqscan = off")
    plan = "\n".join(r["QUERY PLAN"] for r in db.all(
        "explain select o.id from public.organizations o where o.status = 'verified' and o.latitude is not null "
        "order by private.earth_point(o.latitude, o.longitude) operator(extensions.<->) "
        "private.earth_point(45.0, -73.0) limit 5"))
    assert "organizations_directory_earth_idx" in plan
