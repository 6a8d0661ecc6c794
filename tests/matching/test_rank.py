"""Ranking: every weight, ties, reasons, eligibility exclusions; keyword extraction; listing; presence."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from tests.support.factories import accept, make_customer, make_intake, make_mechanic, request_free
from tests.support.reviews import set_reputation

NOW = dt.datetime(2026, 11, 20, 18, 0, tzinfo=dt.UTC)


def ago(**kw) -> dt.datetime:
    return NOW - dt.timedelta(**kw)


def mech(db, name, reputation=None, **fields):
    """A mechanic; `reputation` (average, number of reviews): its visible reviews' aggregates."""
    base = {"timezone": "UTC", "last_seen_at": None, "is_available": False}
    m = make_mechanic(db, name=name, **{**base, **fields})
    if reputation is not None:
        set_reputation(db, m, *reputation)
    return m


def rank(db, request_id, limit=50, now=NOW):
    return db.all("select mechanic_id, score, reasons, rank from private.rank_mechanics(%s, %s, %s)",
                  (request_id, limit, now))


@pytest.fixture
def customer(db):
    c = make_customer(db)
    db.execute("update public.profiles set city = 'Toronto', postal_code = 'M4C 1B5' where id = %s", (c,))
    return c


def new_request(db, customer, concern="Grinding noise from the brakes and the check engine light is on", **kw):
    intake = make_intake(db, customer, concern=concern, vehicle_make="Honda")
    return uuid.UUID(request_free(db, customer, intake=intake, **kw)["request_id"])


def test_keyword_extraction(db):
    kws = db.scalar("select private.extract_keywords(%s)",
                    ("Grinding noise from the brakes and the check engine light is on; code P0301",))
    assert kws == ["brakes", "check engine", "engine", "noise", "obd"]
    assert db.scalar("select private.extract_keywords('')") == []
    assert db.scalar("select private.extract_keywords(null)") == []
    assert "battery" in db.scalar("select private.extract_keywords('car won''t start, maybe the battery')")
    # words inside other words do not count
    assert "brakes" not in db.scalar("select private.extract_keywords('breakfast')")


def test_every_weight_and_reason(db, customer):
    a = mech(db, "A", is_available=True, last_seen_at=ago(seconds=30), service_keywords=["Brakes", "noise"],
             is_brand_specialist=True, brand_specializations=["honda"], years_experience=12,
             postal_code="M4C 2Z9", city="Toronto", reputation=(5.0, 100))
    b = mech(db, "B", last_seen_at=ago(minutes=20), service_keywords=["check engine"], years_experience=7,
             postal_code="M5V 1A1", city="toronto", reputation=(4.6, 100))
    c = mech(db, "C", last_seen_at=ago(minutes=45), reputation=(4.2, 100), years_experience=4)
    d = mech(db, "D", last_seen_at=ago(hours=3), reputation=(3.7, 100))
    e = mech(db, "E")  # no reviews: the prior mean (4.5)
    # specialist of another make, available but its heartbeat is stale: not online, seen within the hour
    f = mech(db, "F", is_available=True, last_seen_at=ago(minutes=50), is_brand_specialist=True,
             brand_specializations=["BMW"], reputation=(3.4, 200))
    request = new_request(db, customer)
    rows = {r["mechanic_id"]: r for r in rank(db, request)}
    # Bayesian ratings: a (45 + 500) / 110 = 4.95, b 4.59, c 4.23, d 3.77, e 4.50 (prior), f 3.45
    assert {k: v["score"] for k, v in rows.items()} == {a: 160, b: 75, c: 30, d: 15, e: 15, f: 20}
    assert rows[a]["reasons"] == [
        {"reason": "online_now", "points": 50}, {"reason": "keywords_matched:2", "points": 30},
        {"reason": "brand_specialist:honda", "points": 30}, {"reason": "experience_years:12", "points": 20},
        {"reason": "same_postal_area", "points": 10}, {"reason": "rating:4.95", "points": 20}]
    assert rows[b]["reasons"] == [
        {"reason": "seen_within_30_minutes", "points": 30}, {"reason": "keywords_matched:1", "points": 15},
        {"reason": "experience_years:7", "points": 10}, {"reason": "same_city", "points": 5},
        {"reason": "rating:4.59", "points": 15}]
    assert rows[c]["reasons"] == [{"reason": "seen_within_1_hour", "points": 20}, {"reason": "rating:4.23", "points": 10}]
    assert rows[d]["reasons"] == [{"reason": "seen_today", "points": 10}, {"reason": "rating:3.77", "points": 5}]
    assert rows[e]["reasons"] == [{"reason": "rating_prior:4.50", "points": 15}]
    assert rows[f]["reasons"] == [{"reason": "seen_within_1_hour", "points": 20}]
    # e and d tie on 15 points: the higher rating (the prior 4.50 over 3.77) goes first
    assert [r["mechanic_id"] for r in rank(db, request)] == [a, b, c, f, e, d]
    assert [r["rank"] for r in rank(db, request)] == list(range(1, 7))


def test_each_score_is_the_sum_of_its_reasons_and_the_order_is_exact(db, customer):
    """The scan over every mechanic computes only the total; the reasons of the rows returned are
    spelled out from the same factors. Over mechanics varied in every factor, each score equals the
    sum of its reasons' points, and the order is score, rating, customers served, experience, id."""
    seen = [None, ago(seconds=30), ago(minutes=20), ago(minutes=45), ago(hours=3), ago(hours=30)]
    keywords = [[], ["brakes"], ["brakes", "noise"], ["check engine", "engine", "noise"]]
    places = [("M4C 2Z9", "Toronto"), ("M5V 1A1", "toronto"), ("H2X 1Y4", "Montreal")]
    for i in range(36):
        mech(db, f"M{i}", reputation=None if i % 5 == 0 else (3.2 + (i % 7) * 0.3, 20 + i),
             is_available=i % 2 == 0, last_seen_at=seen[i % len(seen)], service_keywords=keywords[i % 4],
             is_brand_specialist=i % 3 == 0, brand_specializations=["honda"] if i % 6 == 0 else ["bmw"],
             years_experience=(i * 3) % 15, postal_code=places[i % 3][0], city=places[i % 3][1],
             customers_served=i % 4)
    rows = rank(db, new_request(db, customer), limit=100)
    assert len(rows) == 36
    for row in rows:
        assert row["score"] == sum(reason["points"] for reason in row["reasons"])
    facts = {r["id"]: r for r in db.all(
        "select id, rating_score, customers_served, years_experience from public.mechanics")}
    order = sorted(rows, key=lambda r: (-r["score"], -facts[r["mechanic_id"]]["rating_score"],
                                        -facts[r["mechanic_id"]]["customers_served"],
                                        -facts[r["mechanic_id"]]["years_experience"], str(r["mechanic_id"])))
    assert [r["mechanic_id"] for r in rows] == [r["mechanic_id"] for r in order]
    assert [r["rank"] for r in rows] == list(range(1, 37))
    assert len({r["score"] for r in rows}) > 10  # the factors vary: the check is not vacuous


def test_weights_come_from_settings(db, customer):
    a = mech(db, "A", years_experience=12, reputation=(4.2, 100))
    b = mech(db, "B", years_experience=7, reputation=(5.0, 100))
    request = new_request(db, customer)
    rows = rank(db, request)
    assert [(r["mechanic_id"], r["score"]) for r in rows] == [(b, 30), (a, 30)]  # tie: the rating decides
    db.execute("update private.settings set value = jsonb_set(value, '{experience_10}', '1') "
               "where key = 'matching.weights'")
    rows = rank(db, request)
    assert rows[0]["mechanic_id"] == b and {r["mechanic_id"]: r["score"] for r in rows}[a] == 11


def test_seen_today_uses_the_mechanics_local_day(db, customer):
    # 18:00 UTC is 13:00 in Toronto: 15:00 UTC yesterday-in-UTC terms is today locally; 04:00 UTC is not
    today = mech(db, "T", timezone="America/Toronto", last_seen_at=NOW.replace(hour=6))  # 01:00 local
    yesterday = mech(db, "Y", timezone="America/Toronto", last_seen_at=NOW.replace(hour=4))  # 23:00 local, day before
    request = new_request(db, customer)
    scores = {r["mechanic_id"]: r["score"] for r in rank(db, request)}
    assert scores == {today: 10 + 15, yesterday: 0 + 15}  # + the prior rating's points (no reviews)


def test_ties_break_on_rating_then_customers_served_then_experience(db, customer):
    # x has many sessions but with few customers: distinct customers served count, not sessions
    x = mech(db, "X", reputation=(4.1, 100), completed_sessions=50, customers_served=3)
    y = mech(db, "Y", reputation=(4.2, 100), customers_served=1)  # same points (10), higher rating
    z = mech(db, "Z", reputation=(4.1, 100), completed_sessions=9, customers_served=9)  # same rating, more customers
    w = mech(db, "W", reputation=(4.1, 100), completed_sessions=9, customers_served=9, years_experience=3)
    request = new_request(db, customer)
    assert [r["mechanic_id"] for r in rank(db, request)] == [y, w, z, x]


def test_eligibility_exclusions(db, customer):
    ok = mech(db, "OK")
    pending = make_mechanic(db, approved=False, name="Pending")
    suspended = mech(db, "Suspended")
    db.execute("update public.mechanics set status = 'suspended' where id = %s", (suspended,))
    blocked = mech(db, "Blocked", can_accept_sessions=False)
    decliner = mech(db, "Decliner")
    busy = mech(db, "Busy")
    other_customer = make_customer(db)
    accept(db, busy, request_free(db, other_customer)["request_id"])
    request = new_request(db, customer)
    with db.as_user(decliner):
        db.rpc("decline_offer", p_request_id=request)
    # the customer is also an approved mechanic: never offered its own request
    db.execute("insert into public.mechanics (id, display_name, status) values (%s, 'Self', 'approved')", (customer,))
    ids = {r["mechanic_id"] for r in rank(db, request)}
    assert ok in ids
    for excluded in (pending, suspended, blocked, decliner, busy, customer):
        assert excluded not in ids
        assert db.scalar("select count(*) from public.mechanics where id = %s", (excluded,)) == 1


def test_specialist_request_only_reaches_specialists_of_the_make(db, customer):
    honda = mech(db, "Honda specialist", is_brand_specialist=True, brand_specializations=["Honda"])
    mech(db, "BMW specialist", is_brand_specialist=True, brand_specializations=["BMW"])
    mech(db, "Generalist", brand_specializations=["Honda"])  # lists the brand but is not a specialist
    db.execute("update public.service_plans set price_cents = 0 where code = 'free'")
    db.execute("update private.settings set value = '0' where key = 'pricing.specialist_surcharge_cents'")
    request = new_request(db, customer, p_specialist=True)
    assert [r["mechanic_id"] for r in rank(db, request)] == [honda]


def test_rank_input_errors(db, customer):
    request = new_request(db, customer)
    assert db.error("select * from private.rank_mechanics(%s, 0)", (request,)).sqlstate == "AD001"
    assert db.error("select * from private.rank_mechanics(%s, 10)", (uuid.uuid4(),)).sqlstate == "AD004"
    with db.as_user(customer):  # private: not callable by clients
        assert db.error("select * from private.rank_mechanics(%s)", (request,)).sqlstate == "42501"


def test_admin_rank_request(db, customer):
    a = mech(db, "A", reputation=(5.0, 100))
    admin = db.make_user(app_metadata={"role": "admin"})
    request = new_request(db, customer)
    with db.as_user(admin):
        rows = db.all("select * from public.admin_rank_request(%s)", (request,))
    assert rows[0]["mechanic_id"] == a and rows[0]["display_name"] == "A" and rows[0]["score"] == 20


def test_available_mechanics_listing(db, customer):
    online = mech(db, "Online", is_available=True, last_seen_at=dt.datetime.now(dt.UTC), reputation=(3.0, 100),
                  city="Toronto")
    best_offline = mech(db, "Offline 5.0", reputation=(5.0, 100), city="Toronto")
    other_city = mech(db, "Montreal", is_available=True, last_seen_at=dt.datetime.now(dt.UTC),
                      reputation=(4.9, 100), city="Montreal", is_brand_specialist=True, brand_specializations=["Honda"])
    busy = mech(db, "Busy", is_available=True, last_seen_at=dt.datetime.now(dt.UTC), reputation=(4.0, 100))
    accept(db, busy, request_free(db, make_customer(db))["request_id"])
    with db.as_user(customer):
        rows = db.all("select * from public.available_mechanics()")
        # only who can take a session now: the busy and the offline mechanics are not listed
        assert [r["id"] for r in rows] == [other_city, online]
        assert db.scalar("select count(*) from public.mechanics where id in (%s, %s) and status = 'approved'",
                         (best_offline, busy)) == 2  # they exist, approved
        assert {r["presence"] for r in rows} == {"online"}
        toronto = db.all("select id from public.available_mechanics(p_city => 'toronto')")
        assert {r["id"] for r in toronto} == {online}
        specialists = db.all("select id from public.available_mechanics(p_specialist => true, p_brand => 'HONDA')")
        assert [r["id"] for r in specialists] == [other_city]
        assert len(db.all("select * from public.available_mechanics(p_limit => 2)")) == 2
        cols = db.one("select * from public.available_mechanics(p_limit => 1)")
        assert not {"email", "phone", "postal_code", "stripe_account_id"} & set(cols)
        # no history → no made-up response time
        assert all(r["avg_accept_minutes"] is None for r in rows if r["id"] != busy)


def test_average_accept_minutes_from_history(db, customer):
    m = mech(db, "M")
    other = make_customer(db)
    request = request_free(db, other)["request_id"]
    db.execute("update public.session_requests set created_at = now() - interval '6 minutes', "
               "broadcast_at = now() - interval '6 minutes' where id = %s", (request,))
    # routed when filed: its offers went out then too
    db.execute("update public.session_offers set offered_at = now() - interval '6 minutes' where request_id = %s",
               (request,))
    accept(db, m, request)
    # the session is over and the mechanic online again: listed, with its history
    db.execute("update public.mechanic_commitments set status = 'done' where mechanic_id = %s", (m,))
    db.execute("update public.mechanics set is_available = true, last_seen_at = now() where id = %s", (m,))
    with db.as_user(customer):
        row = db.one("select avg_accept_minutes from public.available_mechanics() where id = %s", (m,))
    assert row["avg_accept_minutes"] == pytest.approx(6.0, abs=0.2)


def test_presence_view_and_broadcasts(db, customer):
    m = mech(db, "M")
    with db.as_user(m):
        db.rpc("set_online", p_online=True)
    with db.as_user(customer):
        assert db.scalar("select presence from public.mechanic_presence where mechanic_id = %s", (m,)) == "online"
    with db.as_anon():
        assert db.scalar("select presence from public.mechanic_presence where mechanic_id = %s", (m,)) == "online"
    accept(db, m, request_free(db, customer)["request_id"])
    assert db.scalar("select presence from public.mechanic_presence where mechanic_id = %s", (m,)) == "busy"
    db.execute("update public.mechanics set last_seen_at = now() - interval '10 minutes' where id = %s", (m,))
    db.execute("update public.mechanic_commitments set status = 'done' where mechanic_id = %s", (m,))
    assert db.scalar("select presence from public.mechanic_presence where mechanic_id = %s", (m,)) == "offline"
    # one transaction: the messages share a timestamp, so compare what was announced, not its order
    events = {r["payload"]["presence"] for r in db.all(
        "select payload from realtime.messages where topic = 'mechanics:presence' and event = 'status_changed'"
        " and payload ->> 'mechanic_id' = %s", (str(m),))}
    assert events == {"busy", "offline", "online"}  # approval (offline), set_online, accept, done


def test_admin_metrics_view(db, customer):
    m = mech(db, "M")
    admin = db.make_user(app_metadata={"role": "admin"})
    r1 = request_free(db, customer)["request_id"]
    db.execute("update public.session_requests set created_at = now() - interval '4 minutes' where id = %s", (r1,))
    accept(db, m, r1)
    other = make_customer(db)
    r2 = request_free(db, other)["request_id"]
    db.execute("update public.session_requests set status = 'unattended' where id = %s", (r2,))
    with db.as_user(admin):
        row = db.one("select * from public.admin_matching_daily where day = (now() at time zone 'UTC')::date")
    assert row["requests"] == 2 and float(row["unattended_rate"]) == 0.5
    assert float(row["avg_minutes_to_accept"]) == pytest.approx(4.0, abs=0.2)
    assert float(row["chosen_mechanic_share"]) == 0.0
    with db.as_user(customer):  # a customer sees only its own request
        assert db.scalar("select sum(requests) from public.admin_matching_daily") == 1


def test_vocabulary_changes_reach_existing_mechanics(db, customer):
    m = mech(db, "Wipers", service_keywords=["Wiper blades"])  # not a vocabulary word yet
    request = new_request(db, customer, concern="My wiper blades squeak")
    assert {r["mechanic_id"]: r["score"] for r in rank(db, request)}[m] == 15  # the prior rating only
    db.execute("insert into public.automotive_keywords (keyword, category, patterns)"
               " values ('wiper blades', 'body', array['\\mwiper blades?\\M'])")
    with db.as_user(customer):  # cancelled before anyone took it: the free session is not used (tests/trust)
        db.rpc("cancel_request", p_request_id=request)
    later = new_request(db, customer, concern="My wiper blades squeak again")
    assert "wiper blades" in db.scalar("select keywords from public.session_requests where id = %s", (later,))
    assert {r["mechanic_id"]: r["reasons"] for r in rank(db, later)}[m] == [
        {"reason": "keywords_matched:1", "points": 15}, {"reason": "rating_prior:4.50", "points": 15}]
