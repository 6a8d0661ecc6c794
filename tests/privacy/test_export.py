"""export_my_data: everything the platform holds about the caller, and nobody else's data."""

from __future__ import annotations

import json
from typing import Any

from tests.support.factories import make_admin, make_customer, make_mechanic
from tests.support.harness import Db
from tests.support.ops_privacy import marker_person

PERSON_TARGETS = ("auth.users", "public.profiles", "public.mechanics")


def keys_of(doc: Any) -> set[str]:
    if isinstance(doc, dict):
        out = set(doc)
        for value in doc.values():
            out |= keys_of(value)
        return out
    return set()


def test_every_column_that_refers_to_a_person_is_mapped(db: Db) -> None:
    catalog = {
        (r["t"], r["c"])
        for r in db.all(
            "select case when n.nspname = 'public' then 'public.' || cl.relname else c.conrelid::regclass::text end as t,"
            " a.attname as c from pg_constraint c"
            " join pg_class cl on cl.oid = c.conrelid join pg_namespace n on n.oid = cl.relnamespace"
            " join pg_attribute a on a.attrelid = c.conrelid and a.attnum = any (c.conkey)"
            " where c.contype = 'f' and c.confrelid = any (%s::regclass[])"
            " and n.nspname in ('public', 'private')",
            (list(PERSON_TARGETS),),
        )
    }
    mapped = {(r["table_name"], r["column_name"]) for r in db.all("select * from private.personal_data_map()")}
    assert len(catalog) > 50
    # a table referring to a person without an entry (what export shows, what erasure does) fails here
    assert catalog - mapped == set(), sorted(catalog - mapped)
    assert mapped - catalog == set(), sorted(mapped - catalog)


def test_export_holds_the_callers_data_in_every_section(db: Db) -> None:
    mechanic = make_mechanic(db)
    person = marker_person(db, mechanic=mechanic)
    with db.as_user(person.id):
        doc = db.rpc("export_my_data")
    assert doc["user_id"] == str(person.id)
    assert doc["account"]["email"] == person.email and doc["account"]["phone"] == person.phone
    assert doc["profile"]["full_name"] == person.name
    assert len(doc["vehicles"]) == 1 and doc["vehicles"][0]["vin"]
    assert person.email in {i["contact_email"] for i in doc["intakes"]}
    assert len(doc["intakes"]) >= 3
    assert len(doc["waiver_acceptances"]) == 1
    assert {s["id"] for s in doc["sessions_as_customer"]} == {str(person.session), str(person.paid_session)}
    assert doc["sessions_total"]["as_customer"] == 2
    assert doc["sessions_as_mechanic"] == []
    mine = [m for m in doc["messages"] if m["from"] == "you"]
    assert any(person.phone in m["content"] for m in mine)
    assert any(m["from"] == "other" for m in doc["messages"])
    assert len(doc["reviews_written"]) == 1 and doc["reviews_written"][0]["rating"] == 5
    assert sum(c["amount_cents"] for c in doc["credits"]) == 0 and len(doc["credits"]) >= 2
    assert doc["payments"] and all(p["customer_id"] == str(person.id) for p in doc["payments"])
    assert doc["emails_queued"], "the emails the platform queued to the person"
    assert doc["crm"], "the CRM record of the person's journey"
    assert doc["files"]["note"].startswith("object names in Storage")
    assert doc["mechanic"] is None and doc["payouts"] == []
    # every section the map names is in the document
    sections = {
        r["export_section"]
        for r in db.all("select * from private.personal_data_map()")
        if not r["export_section"].startswith("not exported")
    }
    assert sections - keys_of(doc) == set()

    with db.as_user(mechanic):
        mdoc = db.rpc("export_my_data")
    assert [s["id"] for s in mdoc["sessions_as_mechanic"]] and mdoc["mechanic"]["id"] == str(mechanic)
    assert len(mdoc["reviews_received"]) == 1 and "customer_id" not in mdoc["reviews_received"][0]
    assert mdoc["payouts"] and all(p["mechanic_id"] == str(mechanic) for p in mdoc["payouts"])
    assert mdoc["sessions_as_customer"] == [] and mdoc["vehicles"] == []
    assert set(mdoc["vetting"]) == {"decisions", "documents"}


def test_export_shows_nobody_elses_data(db: Db) -> None:
    mechanic = make_mechanic(db)
    person = marker_person(db, mechanic=mechanic)
    other = make_customer(db)
    other_mechanic = make_mechanic(db)
    admin = make_admin(db)
    for user in (other, other_mechanic, admin):
        with db.as_user(user):
            text = json.dumps(db.rpc("export_my_data"))
        for marker in [*person.markers, str(person.session)]:
            assert marker not in text, (user, marker)
    # the mechanic sees the conversation of its own session, not the customer's contacts
    with db.as_user(mechanic):
        mdoc = db.rpc("export_my_data")
    assert any(m["from"] == "other" for m in mdoc["messages"])
    assert person.email not in json.dumps(mdoc)
    # the rows exist: the person's own export has them
    with db.as_user(person.id):
        assert person.email in json.dumps(db.rpc("export_my_data"))


def test_export_needs_a_signed_in_user(db: Db) -> None:
    with db.as_anon():
        assert db.rpc_error("export_my_data") == "42501"
    with db.as_role("authenticated", {"role": "authenticated"}):
        assert db.rpc_error("export_my_data") == "AD002"


def test_export_lists_the_most_recent_sessions_up_to_the_cap(db: Db) -> None:
    mechanic = make_mechanic(db)
    person = marker_person(db, mechanic=mechanic)
    db.execute("update private.settings set value = '1' where key = 'privacy.export_max_sessions'")
    with db.as_user(person.id):
        doc = db.rpc("export_my_data")
    assert doc["sessions_total"] == {"as_customer": 2, "as_mechanic": 0, "listed_per_role_at_most": 1}
    assert len(doc["sessions_as_customer"]) == 1
    newest = db.scalar(
        "select id from public.sessions where customer_id = %s order by created_at desc limit 1", (person.id,)
    )
    assert doc["sessions_as_customer"][0]["id"] == str(newest)


def test_export_has_a_rate_class(db: Db) -> None:
    assert db.scalar("select class from private.rpc_rate_classes where function_name = 'export_my_data'") == "write"
