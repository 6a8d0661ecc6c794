"""Reviews: submit and edit, reply, hide; who may do what (every persona); hostile input; the
aggregates kept exact (random operations, concurrent submits); the public view; abuse."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from dataclasses import dataclass
from decimal import Decimal

import psycopg
import pytest

from tests.support.factories import make_admin, make_customer, make_mechanic
from tests.support.harness import Db
from tests.support.personas import call_as, race
from tests.support.reviews import (
    SUBMIT_SQL,
    TAGS,
    aggregates,
    recomputed,
    session_between,
    set_reputation,
    submit,
    submit_args,
    submit_error,
)
from tests.support.scheduling import at, every_day, future_day, scheduled_mechanic

SUBMIT = "select public.submit_review(%s, %s, %s, %s::text[])"


@dataclass
class Cast:
    customer: uuid.UUID
    other_customer: uuid.UUID
    mechanic: uuid.UUID
    other_mechanic: uuid.UUID
    admin: uuid.UUID
    session: uuid.UUID


@pytest.fixture
def cast(db: Db) -> Cast:
    customer, other_customer = make_customer(db, "Casey Q. Customer"), make_customer(db, "Olive Other")
    mechanic, other_mechanic = make_mechanic(db, name="Morgan"), make_mechanic(db, name="Otto")
    return Cast(customer, other_customer, mechanic, other_mechanic, make_admin(db),
                session_between(db, customer, mechanic))


def review_count(db: Db) -> int:
    return db.scalar("select count(*) from public.mechanic_reviews")


def review_row(db: Db, session: uuid.UUID) -> dict:
    return db.one("select * from public.mechanic_reviews where session_id = %s", (session,))


# ------------------------------------------------------------------------------------------------
# submit and edit
# ------------------------------------------------------------------------------------------------
def test_submit_writes_one_review_and_exact_aggregates(db, cast):
    out = submit(db, cast.customer, cast.session, 4, "  Found the vacuum leak in ten minutes.  ",
                 ["solved_problem", "clear_explanation"])
    assert out["edited"] is False and out["rating"] == 4 and out["tags"] == ["solved_problem", "clear_explanation"]
    row = review_row(db, cast.session)
    assert row["id"] == uuid.UUID(out["review_id"]) and row["customer_id"] == cast.customer
    assert row["mechanic_id"] == cast.mechanic and row["body"] == "Found the vacuum leak in ten minutes."
    assert row["reviewer_first_name"] == "Casey"  # first name only, snapshot at submit
    agg = aggregates(db, cast.mechanic)
    assert (agg["rating_count"], agg["rating_sum"], agg["rating_avg"]) == (1, 4, 4)
    assert float(agg["rating_score"]) == pytest.approx((10 * 4.5 + 4) / 11, abs=1e-5)
    assert agg == recomputed(db, cast.mechanic)


def test_submitting_again_within_48_hours_edits(db, cast):
    first = submit(db, cast.customer, cast.session, 2, "Late and vague", ["on_time"])
    db.execute("update public.mechanic_reviews set created_at = now() - interval '47 hours' where id = %s",
               (first["review_id"],))
    second = submit(db, cast.customer, cast.session, 5, None, None)
    assert second["review_id"] == first["review_id"] and second["edited"] is True
    row = review_row(db, cast.session)
    assert (row["rating"], row["body"], row["tags"], row["edit_count"]) == (5, None, [], 1)
    assert review_count(db) == 1
    assert aggregates(db, cast.mechanic)["rating_avg"] == 5 and aggregates(db, cast.mechanic) == recomputed(
        db, cast.mechanic)
    card = db.one("select * from private.review_cards where review_id = %s", (first["review_id"],))
    assert card["rating"] == 5 and card["body"] is None


def test_editing_after_48_hours_is_refused(db, cast):
    first = submit(db, cast.customer, cast.session, 3, "ok")
    db.execute("update public.mechanic_reviews set created_at = now() - interval '48 hours 1 second' where id = %s",
               (first["review_id"],))
    with db.as_user(cast.customer):
        assert submit_error(db, p_session_id=cast.session, p_rating=1) == "AD112"
    row = review_row(db, cast.session)
    assert (row["rating"], row["body"], row["edit_count"]) == (3, "ok", 0)
    assert aggregates(db, cast.mechanic)["rating_sum"] == 3


def test_submit_window_is_14_days_after_the_end(db, cast):
    late = session_between(db, cast.customer, cast.mechanic, ended_ago=dt.timedelta(days=14, seconds=1))
    in_time = session_between(db, cast.customer, cast.mechanic, ended_ago=dt.timedelta(days=13, hours=23))
    with db.as_user(cast.customer):
        assert submit_error(db, p_session_id=late, p_rating=5) == "AD111"
    assert review_row(db, late) is None and aggregates(db, cast.mechanic)["rating_count"] == 0
    submit(db, cast.customer, in_time, 5)
    assert aggregates(db, cast.mechanic)["rating_count"] == 1


@pytest.mark.parametrize("state", ["pending", "waiting", "live", "cancelled", "unverified", "no delivery"])
def test_only_a_delivered_session_can_be_reviewed(db, cast, state):
    if state in ("unverified", "no delivery"):
        sid = session_between(db, cast.customer, cast.mechanic,
                              delivery="unverified" if state == "unverified" else None)
    else:
        sid = session_between(db, cast.customer, cast.mechanic, status=state)
    with db.as_user(cast.customer):
        assert submit_error(db, p_session_id=sid, p_rating=5) == "AD110"
    assert review_row(db, sid) is None and aggregates(db, cast.mechanic)["rating_count"] == 0


def test_submit_per_persona(db, cast):
    # everyone but the customer is refused, and nothing is written; the session exists meanwhile
    with db.as_anon():
        assert submit_error(db, p_session_id=cast.session, p_rating=5) == "42501"
    for who, code in ((cast.other_customer, "AD004"), (cast.other_mechanic, "AD004"),
                      (cast.mechanic, "AD003"), (cast.admin, "AD003")):
        with db.as_user(who):
            assert submit_error(db, p_session_id=cast.session, p_rating=5) == code, who
    with db.as_service():  # no user: nobody to review as
        assert submit_error(db, p_session_id=cast.session, p_rating=5) == "AD002"
    assert db.scalar("select count(*) from public.sessions where id = %s and delivery = 'delivered'",
                     (cast.session,)) == 1
    assert review_count(db) == 0 and aggregates(db, cast.mechanic)["rating_count"] == 0
    submit(db, cast.customer, cast.session, 5)
    assert review_count(db) == 1


@pytest.mark.parametrize(("params", "code"), [
    ({"p_session_id": None, "p_rating": 5}, "AD001"),
    ({"p_rating": None}, "AD001"),
    ({"p_rating": 0}, "AD001"),
    ({"p_rating": 6}, "AD001"),
    ({"p_rating": -2147483648}, "AD001"),
    ({"p_text": "x" * 2001}, "AD001"),
    ({"p_tags": ["friendly", "rude"]}, "AD001"),
    ({"p_tags": ["friendly", "friendly"]}, "AD001"),
    ({"p_tags": ["friendly", None]}, "AD001"),
    ({"p_tags": ["FRIENDLY"]}, "AD001"),
    ({"p_tags": [*TAGS, "friendly"]}, "AD001"),
    ({"p_tags": [["friendly", "on_time"]]}, "AD001"),  # a two-dimensional array
    ({"p_session_id": "random"}, "AD004"),
])
def test_submit_hostile_input(db, cast, params, code):
    args = {"p_session_id": cast.session, "p_rating": 5, **params}
    if args["p_session_id"] == "random":
        args["p_session_id"] = uuid.uuid4()
    with db.as_user(cast.customer):
        assert submit_error(db, **args) == code
    assert review_count(db) == 0 and aggregates(db, cast.mechanic)["rating_count"] == 0


def test_submit_wrong_types_and_someone_elses_ids(db, cast):
    other = session_between(db, cast.other_customer, cast.mechanic)
    with db.as_user(cast.customer):
        # a uuid that is not one: refused by the cast, as PostgREST would
        assert db.error("select public.submit_review('not-a-uuid', 5)").sqlstate == "22P02"
        assert db.error("select public.submit_review(%s, 'five')", (cast.session,)).sqlstate == "22P02"
        assert submit_error(db, p_session_id=other, p_rating=1) == "AD004"  # someone else's
        assert submit_error(db, p_session_id=cast.mechanic, p_rating=1) == "AD004"  # another kind of id
    assert review_count(db) == 0


def test_text_limits_and_markup_kept_verbatim(db, cast):
    out = submit(db, cast.customer, cast.session, 5, "<b>great</b>" + "x" * 1988, [])
    assert len(review_row(db, cast.session)["body"]) == 2000 and out["text"].startswith("<b>great</b>")
    again = submit(db, cast.customer, cast.session, 5, "   ")
    assert again["text"] is None and review_row(db, cast.session)["body"] is None


# ------------------------------------------------------------------------------------------------
# reply
# ------------------------------------------------------------------------------------------------
def test_the_mechanic_replies_once(db, cast):
    rid = submit(db, cast.customer, cast.session, 3, "Fine")["review_id"]
    with db.as_user(cast.mechanic):
        out = db.rpc("reply_to_review", p_review_id=rid, p_text=" Thanks, call me if it comes back. ")
        assert out["reply"] == "Thanks, call me if it comes back."
        assert db.rpc_error("reply_to_review", p_review_id=rid, p_text="second thoughts") == "AD113"
    row = review_row(db, cast.session)
    assert row["reply"] == "Thanks, call me if it comes back." and row["replied_at"] is not None
    with db.as_anon():
        assert db.scalar("select reply from public.mechanic_reviews_public where mechanic_id = %s",
                         (cast.mechanic,)) == "Thanks, call me if it comes back."


def test_reply_per_persona_and_hostile_input(db, cast):
    rid = submit(db, cast.customer, cast.session, 3, "Fine")["review_id"]
    with db.as_anon():
        assert db.rpc_error("reply_to_review", p_review_id=rid, p_text="hi") == "42501"
    with db.as_service():  # no user to reply as
        assert db.rpc_error("reply_to_review", p_review_id=rid, p_text="hi") == "AD002"
    for who, code in ((cast.customer, "AD003"), (cast.admin, "AD003"), (cast.other_customer, "AD004"),
                      (cast.other_mechanic, "AD004")):
        with db.as_user(who):
            assert db.rpc_error("reply_to_review", p_review_id=rid, p_text="hi") == code, who
    with db.as_user(cast.mechanic):
        for params in ({"p_review_id": None, "p_text": "hi"}, {"p_text": None}, {"p_text": "  "},
                       {"p_text": "x" * 2001}):
            assert db.rpc_error("reply_to_review", **{"p_review_id": rid, **params}) == "AD001", params
        assert db.rpc_error("reply_to_review", p_review_id=uuid.uuid4(), p_text="hi") == "AD004"
        assert db.rpc_error("reply_to_review", p_review_id=cast.session, p_text="hi") == "AD004"
        assert db.error("select public.reply_to_review('nope', 'hi')").sqlstate == "22P02"
    assert review_row(db, cast.session)["reply"] is None  # the review exists, unanswered
    with db.as_user(cast.mechanic):
        db.rpc("reply_to_review", p_review_id=rid, p_text="x" * 2000)


# ------------------------------------------------------------------------------------------------
# hide
# ------------------------------------------------------------------------------------------------
def test_admin_hides_a_review_kept_out_of_aggregates_and_view(db, cast):
    other = session_between(db, cast.customer, cast.mechanic)
    low = submit(db, cast.customer, cast.session, 1, "Insulting text")["review_id"]
    submit(db, cast.customer, other, 5)
    assert aggregates(db, cast.mechanic)["rating_avg"] == 3
    with db.as_user(cast.admin):
        out = db.rpc("admin_hide_review", p_review_id=low, p_reason="abusive language")
        assert out["hidden_reason"] == "abusive language"
        assert db.rpc_error("admin_hide_review", p_review_id=low, p_reason="again") == "AD114"
    row = db.one("select * from public.mechanic_reviews where id = %s", (low,))
    assert row["hidden_by"] == cast.admin and row["hidden_reason"] == "abusive language"  # kept
    agg = aggregates(db, cast.mechanic)
    assert (agg["rating_count"], agg["rating_avg"]) == (1, 5) and agg == recomputed(db, cast.mechanic)
    with db.as_anon():
        assert [r["rating"] for r in db.all("select rating from public.mechanic_reviews_public")] == [5]
    # the customer still sees its own hidden review, the mechanic the review about it
    for who in (cast.customer, cast.mechanic, cast.admin):
        with db.as_user(who):
            assert db.scalar("select hidden_reason from public.mechanic_reviews where id = %s", (low,)) == \
                "abusive language"
    # a hidden review can be neither edited nor answered
    with db.as_user(cast.customer):
        assert submit_error(db, p_session_id=cast.session, p_rating=5) == "AD115"
    with db.as_user(cast.mechanic):
        assert db.rpc_error("reply_to_review", p_review_id=low, p_text="sorry") == "AD115"
    assert db.scalar("select rating from public.mechanic_reviews where id = %s", (low,)) == 1


def test_hide_per_persona_and_hostile_input(db, cast):
    rid = submit(db, cast.customer, cast.session, 1, "bad")["review_id"]
    with db.as_anon():
        assert db.rpc_error("admin_hide_review", p_review_id=rid, p_reason="x") == "42501"
    with db.as_service():
        assert db.rpc_error("admin_hide_review", p_review_id=rid, p_reason="x") == "AD002"
    # the mechanic cannot hide a review about itself, nor can anyone else but an admin
    for who in (cast.mechanic, cast.customer, cast.other_customer, cast.other_mechanic):
        with db.as_user(who):
            assert db.rpc_error("admin_hide_review", p_review_id=rid, p_reason="x") == "AD003", who
    with db.as_user(cast.admin):
        for params in ({"p_review_id": None}, {"p_reason": None}, {"p_reason": " "}, {"p_reason": "x" * 2001}):
            assert db.rpc_error("admin_hide_review", **{"p_review_id": rid, "p_reason": "r", **params}) == "AD001"
        assert db.rpc_error("admin_hide_review", p_review_id=uuid.uuid4(), p_reason="r") == "AD004"
        assert db.rpc_error("admin_hide_review", p_review_id=cast.session, p_reason="r") == "AD004"
    assert db.scalar("select hidden_at from public.mechanic_reviews where id = %s", (rid,)) is None
    assert aggregates(db, cast.mechanic)["rating_count"] == 1


# ------------------------------------------------------------------------------------------------
# who reads what
# ------------------------------------------------------------------------------------------------
def test_table_rls_per_persona(db, cast):
    rid = submit(db, cast.customer, cast.session, 4, "good")["review_id"]
    other_rid = submit(db, cast.other_customer, session_between(db, cast.other_customer, cast.other_mechanic), 2)[
        "review_id"]
    assert review_count(db) == 2  # both exist

    def visible(who):
        with db.as_user(who):
            return {r["id"] for r in db.all("select id from public.mechanic_reviews")}

    assert visible(cast.customer) == {uuid.UUID(rid)}
    assert visible(cast.mechanic) == {uuid.UUID(rid)}
    assert visible(cast.other_customer) == {uuid.UUID(other_rid)}
    assert visible(cast.other_mechanic) == {uuid.UUID(other_rid)}
    assert visible(cast.admin) == {uuid.UUID(rid), uuid.UUID(other_rid)}
    assert visible(make_customer(db)) == set()
    with db.as_anon():
        assert db.error("select * from public.mechanic_reviews").sqlstate == "42501"
    # writes only through the RPCs, even on one's own review
    with db.as_user(cast.customer):
        assert db.error("update public.mechanic_reviews set rating = 5 where id = %s", (rid,)).sqlstate == "42501"
        assert db.error("delete from public.mechanic_reviews where id = %s", (rid,)).sqlstate == "42501"
        assert db.error("insert into public.mechanic_reviews (session_id, customer_id, mechanic_id, rating) "
                        "values (%s, %s, %s, 5)", (cast.session, cast.customer, cast.mechanic)).sqlstate == "42501"
    with db.as_user(cast.mechanic):
        assert db.error("update public.mechanic_reviews set hidden_at = now(), hidden_reason = 'x' where id = %s",
                        (rid,)).sqlstate == "42501"
        assert db.error("update public.mechanics set rating_sum = 50, rating_count = 10 where id = %s",
                        (cast.mechanic,)).sqlstate == "42501"
    assert db.scalar("select rating from public.mechanic_reviews where id = %s", (rid,)) == 4


def test_public_view_shows_visible_reviews_only_and_no_identity(db, cast):
    rid = submit(db, cast.customer, cast.session, 5, "Great", ["friendly"])["review_id"]
    hidden = submit(db, cast.other_customer, session_between(db, cast.other_customer, cast.mechanic), 1, "spam")[
        "review_id"]
    with db.as_user(cast.admin):
        db.rpc("admin_hide_review", p_review_id=hidden, p_reason="spam")
    assert review_count(db) == 2  # the hidden one exists
    expected_cols = {"mechanic_id", "rating", "text", "tags", "reply", "replied_at", "created_at",
                     "reviewer_first_name"}
    for persona in ("anon", "service", cast.customer, cast.other_customer, cast.mechanic, cast.other_mechanic,
                    cast.admin):
        with (db.as_anon() if persona == "anon" else db.as_service() if persona == "service" else
              db.as_user(persona)):
            cur = db.conn.execute("select * from public.mechanic_reviews_public")
            cols = {d.name for d in cur.description}
            rows = cur.fetchall()
        assert cols == expected_cols, persona
        assert len(rows) == 1, persona  # the hidden review is nowhere, even for its author or an admin
        values = {str(v) for row in rows for v in row}
        assert not {str(cast.customer), str(cast.session), str(rid), "spam", "Olive"} & values
        assert "Casey" in values and "Casey Q. Customer" not in values
    with db.as_anon():
        # the columns with identities are not readable by anon in any way
        assert db.error("select customer_id from public.mechanic_reviews").sqlstate == "42501"
        assert db.scalar("select count(*) from public.review_tags") == len(TAGS)


def test_directory_and_listing_show_the_score(db, cast):
    submit(db, cast.customer, cast.session, 5)
    with db.as_anon():
        row = db.one("select rating_avg, rating_count, rating_score, customers_served from public.mechanic_directory "
                     "where id = %s", (cast.mechanic,))
    assert row["rating_count"] == 1 and float(row["rating_score"]) == pytest.approx(50 / 11, abs=1e-5)


# ------------------------------------------------------------------------------------------------
# aggregates: random operations, a change of the prior
# ------------------------------------------------------------------------------------------------
def test_aggregates_stay_exact_through_random_submits_edits_and_hides(db):
    rnd = random.Random(20261129)
    mechanics = [make_mechanic(db, name=f"M{i}") for i in range(3)]
    customers = [make_customer(db, f"C{i} Person") for i in range(4)]
    admin = make_admin(db)
    sessions = [(c, m, session_between(db, c, m)) for c in customers for m in mechanics for _ in range(2)]
    for step in range(60):
        op = rnd.random()
        if op < 0.7:
            customer, _mechanic, sid = rnd.choice(sessions)
            rating = rnd.randint(1, 5)
            tags = rnd.sample(TAGS, rnd.randint(0, 3))
            with db.as_user(customer):
                try:
                    db.scalar(SUBMIT_SQL, submit_args(sid, rating, None, tags))
                except psycopg.Error as exc:
                    assert exc.sqlstate == "AD115"  # editing a hidden review
        else:
            ids = [r["id"] for r in db.all("select id from public.mechanic_reviews where hidden_at is null")]
            if ids:
                with db.as_user(admin):
                    db.rpc("admin_hide_review", p_review_id=rnd.choice(ids), p_reason=f"step {step}")
        for m in mechanics:
            assert aggregates(db, m) == recomputed(db, m), (step, m)
    assert db.scalar("select count(*) from public.mechanic_reviews where hidden_at is not null") > 0
    assert db.scalar("select count(*) from public.mechanic_reviews where edit_count > 0") > 0
    # the projection holds exactly the visible reviews
    assert db.scalar("select count(*) from private.review_cards") == \
        db.scalar("select count(*) from public.mechanic_reviews where hidden_at is null")
    assert db.scalar("select count(*) from private.review_cards c join public.mechanic_reviews r on r.id = c.review_id "
                     "where (c.rating, c.tags, c.body) is distinct from (r.rating, r.tags, r.body)") == 0


def test_changing_the_prior_recomputes_every_score(db, cast):
    submit(db, cast.customer, cast.session, 3)
    newcomer = make_mechanic(db, name="New")
    db.execute("update private.settings set value = '2' where key = 'reviews.prior_weight'")
    assert float(aggregates(db, cast.mechanic)["rating_score"]) == pytest.approx((2 * 4.5 + 3) / 3, abs=1e-5)
    db.execute("update private.settings set value = '4' where key = 'reviews.prior_mean'")
    assert aggregates(db, newcomer)["rating_score"] == 4
    assert aggregates(db, cast.mechanic) == recomputed(db, cast.mechanic)
    # a prior mean outside 1–5 is refused with the change
    assert db.error("update private.settings set value = '7' where key = 'reviews.prior_mean'").sqlstate == "23514"
    assert db.scalar("select private.setting_numeric('reviews.prior_mean')") == 4


def test_one_five_star_does_not_outrank_two_hundred_at_four_point_eight(db):
    customer = make_customer(db)
    lucky, steady = make_mechanic(db, name="Lucky"), make_mechanic(db, name="Steady")
    submit(db, customer, session_between(db, customer, lucky), 5)
    # 200 real reviews averaging 4.8 (160 × 5, 40 × 4), from 200 customers
    for i in range(200):
        c = make_customer(db, f"R{i}")
        submit(db, c, session_between(db, c, steady), 5 if i < 160 else 4)
    a, b = aggregates(db, lucky), aggregates(db, steady)
    assert (a["rating_avg"], a["rating_count"]) == (5, 1) and (b["rating_avg"], b["rating_count"]) == (Decimal("4.8"), 200)
    assert b["rating_score"] > a["rating_score"]  # 4.786 > 4.545
    assert b == recomputed(db, steady)
    # the listing shows mechanics who can take a session now: both online, neither busy
    db.execute("update public.mechanic_commitments set status = 'done' where mechanic_id in (%s, %s)", (lucky, steady))
    db.execute("update public.mechanics set is_available = true, last_seen_at = now() where id in (%s, %s)",
               (lucky, steady))
    with db.as_user(customer):
        order = [r["id"] for r in db.all("select id from public.available_mechanics(p_limit => 100)")]
    assert order.index(steady) < order.index(lucky)


# ------------------------------------------------------------------------------------------------
# abuse
# ------------------------------------------------------------------------------------------------
def test_a_mechanic_reviewing_itself_through_a_second_account(db):
    mechanic = make_mechanic(db, name="Sly")
    second = make_customer(db, "Sly Second")  # the mechanic's own customer account
    # without delivery evidence (one person alone cannot produce it) the session cannot be reviewed
    lone = session_between(db, second, mechanic, delivery="unverified")
    with db.as_user(second):
        assert submit_error(db, p_session_id=lone, p_rating=5) == "AD110"
    # the mechanic's own account can never review its session
    delivered = session_between(db, second, mechanic)
    with db.as_user(mechanic):
        assert submit_error(db, p_session_id=delivered, p_rating=5) == "AD003"
    # one review per session: repeating the call edits it, the count never grows
    for _ in range(5):
        submit(db, second, delivered, 5)
    assert db.scalar("select count(*) from public.mechanic_reviews where mechanic_id = %s", (mechanic,)) == 1
    assert aggregates(db, mechanic)["rating_count"] == 1
    # and the mechanic cannot hide the bad review of a real customer
    real = make_customer(db)
    bad = submit(db, real, session_between(db, real, mechanic), 1, "did nothing")["review_id"]
    with db.as_user(mechanic):
        assert db.rpc_error("admin_hide_review", p_review_id=bad, p_reason="unfair") == "AD003"
    assert aggregates(db, mechanic)["rating_count"] == 2


# ------------------------------------------------------------------------------------------------
# concurrency
# ------------------------------------------------------------------------------------------------
def test_two_parallel_first_submits_for_one_session(fresh_url):
    setup = psycopg.connect(fresh_url)
    setup.execute("select 1")
    d = Db(setup)
    customer, mechanic = make_customer(d), make_mechanic(d)
    other_customer = make_customer(d)
    sessions = [session_between(d, customer, mechanic) for _ in range(3)]
    other = session_between(d, other_customer, mechanic)
    setup.commit()
    conns = [psycopg.connect(fresh_url) for _ in range(4)]
    try:
        for round_, sid in enumerate(sessions):
            results = race([(conns[0], customer, SUBMIT, (sid, 5, "a", None)),
                            (conns[1], customer, SUBMIT, (sid, 1, "b", None)),
                            (conns[2], other_customer, SUBMIT, (other, 3, None, None)) if round_ == 0 else
                            (conns[2], customer, SUBMIT, (sid, 3, "c", None))])
            assert all(r[0] == "ok" for r in results), results
            assert d.scalar("select count(*) from public.mechanic_reviews where session_id = %s", (sid,)) == 1
            edited = sorted(r[1]["edited"] for r in results if r[1]["session_id"] == str(sid))
            assert edited[0] is False and all(edited[1:])  # one insert, the others edits of it
            assert aggregates(d, mechanic) == recomputed(d, mechanic)
        assert aggregates(d, mechanic)["rating_count"] == 4
        assert call_as(conns[3], customer, "select count(*) from public.mechanic_reviews", ())[1] == 3
    finally:
        for c in conns:
            c.close()
        setup.close()


def test_booking_candidates_follow_the_bayesian_rating_then_customers_served(db):
    day = future_day(8)
    steady, lucky, known, unknown, low = (scheduled_mechanic(db, "UTC", every_day("08:00", "12:00"))
                                          for _ in range(5))
    set_reputation(db, steady, 4.8, 200)  # 4.79
    set_reputation(db, lucky, 5.0, 1)  # 4.55
    set_reputation(db, low, 3.0, 50)  # 3.25
    db.execute("update public.mechanics set customers_served = 5, completed_sessions = 1 where id = %s", (known,))
    db.execute("update public.mechanics set customers_served = 0, completed_sessions = 40 where id = %s", (unknown,))
    customer = make_customer(db)
    with db.as_user(customer):
        rows = db.all("select mechanic_id from public.mechanics_free_at(%s, 'free')", (at(day, "10:00"),))
        assert [r["mechanic_id"] for r in rows] == [steady, lucky, known, unknown, low]
        top = db.all("select mechanic_id from public.mechanics_free_at(%s, 'free', p_limit => 2)", (at(day, "10:00"),))
        assert [r["mechanic_id"] for r in top] == [steady, lucky]
