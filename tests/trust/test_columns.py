"""Columns: what each role may SELECT on every table and view of `public` is the table of
docs/access.md; authenticated reads the directory columns of public.mechanics as anon does, its own
row through get_my_mechanic(), a workshop's members through get_workshop_members()."""

from __future__ import annotations

import uuid

import pytest

from tests.support.contact import catalog_access, documented, go_live, render
from tests.support.factories import make_customer, make_mechanic, make_world
from tests.support.harness import Db

DENIED = "42501"
HIDDEN = ("postal_code", "postal_area", "city_key", "brand_keys", "keyword_bits", "participation_mode",
          "currently_on_shift", "last_clock_in", "last_clock_out", "daily_micro_minutes_cap", "can_accept_sessions",
          "approved_at", "releases_blocked_until", "account_type", "updated_at")


def test_docs_access_lists_every_column_each_role_reads(db):
    """Fails when a grant and docs/access.md disagree; the message is the table as the catalog has it."""
    actual = render(catalog_access(db))
    assert actual == documented(), "docs/access.md is out of date; the catalog says:\n" + actual


def test_catalog_listing_sees_a_change_of_grant(db):
    before = catalog_access(db)
    db.execute("grant select (postal_code) on public.mechanics to authenticated")
    after = catalog_access(db)
    assert "postal_code" in after["mechanics"]["authenticated"]
    assert "postal_code" not in before["mechanics"]["authenticated"]
    assert render(after) != documented()


def test_authenticated_reads_the_same_mechanics_columns_as_anon(db):
    access = catalog_access(db)["mechanics"]
    assert access["authenticated"] == access["anon"]
    assert access["service_role"] == "all"
    assert not set(HIDDEN) & set(access["authenticated"])


def _world_with_postal_codes(db: Db):
    w = make_world(db)
    db.execute("update public.mechanics set postal_code = 'M5V 2T6', daily_micro_minutes_cap = 42 "
               "where id in (%s, %s)", (w.mechanic, w.other_mechanic))
    assert db.scalar("select count(*) from public.mechanics where postal_code = 'M5V 2T6'") == 2
    return w


@pytest.mark.parametrize("who", ["customer", "other_customer", "mechanic", "other_mechanic", "pending_mechanic",
                                 "workshop_admin", "admin"])
def test_no_signed_in_user_selects_hidden_mechanic_columns(db, who):
    w = _world_with_postal_codes(db)
    with db.as_user(getattr(w, who)):
        for column in HIDDEN:
            assert db.error(f"select {column} from public.mechanics").sqlstate == DENIED, column
        assert db.error("select * from public.mechanics").sqlstate == DENIED
        # the directory columns still work, rows by RLS
        assert db.scalar("select count(*) from public.mechanics where id = %s and display_name is not null",
                         (w.other_mechanic,)) == 1
        assert db.scalar("select count(*) from public.mechanic_directory where id = %s", (w.other_mechanic,)) == 1
    with db.as_anon():
        assert db.error("select postal_code from public.mechanics").sqlstate == DENIED


def test_a_customer_reads_no_mechanics_postal_code_even_after_booking_or_a_session(db):
    w = _world_with_postal_codes(db)
    from tests.support.factories import accept

    accept(db, w.mechanic, w.request)
    go_live(db, w.session)
    with db.as_user(w.customer):
        assert db.error("select postal_code from public.mechanics where id = %s", (w.mechanic,)).sqlstate == DENIED
        assert db.all("select postal_code, phone from public.profiles where id = %s", (w.mechanic,)) == []
        assert "postal_code" not in db.rpc("get_session_brief", p_session_id=w.session)


def test_get_my_mechanic_returns_the_callers_row_in_full(db):
    w = _world_with_postal_codes(db)
    with db.as_user(w.mechanic):
        mine = db.rpc("get_my_mechanic")
    assert mine["id"] == str(w.mechanic) and mine["postal_code"] == "M5V 2T6"
    assert mine["daily_micro_minutes_cap"] == 42 and mine["participation_mode"] == "both"
    columns = {r["attname"] for r in db.all("select attname from pg_attribute where attrelid = "
                                            "'public.mechanics'::regclass and attnum > 0 and not attisdropped")}
    assert set(mine) == columns
    with db.as_user(w.pending_mechanic):  # pending: its own application
        assert db.rpc("get_my_mechanic")["status"] == "pending"
    with db.as_user(w.customer):
        assert db.rpc_error("get_my_mechanic") == "AD004"
    with db.as_anon():
        assert db.error("select public.get_my_mechanic()").sqlstate == DENIED


def test_workshop_owners_and_admins_reach_their_members(db):
    w = _world_with_postal_codes(db)
    manager = make_customer(db, "Mia Manager")
    db.execute("insert into public.organization_members (organization_id, user_id, role) values (%s, %s, 'manager')",
               (w.organization, manager))
    db.execute("update public.profiles set phone = '+1 555 0123' where id = %s", (w.mechanic,))
    elsewhere = db.scalar("insert into public.organizations (name) values ('Elsewhere') returning id")
    stranger = make_mechanic(db, name="Sam Stranger")
    db.execute("insert into public.organization_members (organization_id, user_id, role) values (%s, %s, 'owner')",
               (elsewhere, stranger))
    for reader in (w.workshop_admin, manager, w.admin):
        with db.as_user(reader):
            members = {m["user_id"]: m for m in db.rpc("get_workshop_members", p_organization_id=w.organization)}
        assert set(members) == {str(w.workshop_admin), str(w.mechanic), str(manager)}
        me = members[str(w.mechanic)]
        assert (me["role"], me["phone"], me["full_name"]) == ("mechanic", "+1 555 0123", "Morgan Mechanic")
        assert me["mechanic"]["postal_code"] == "M5V 2T6" and me["mechanic"]["currently_on_shift"] is True
        assert members[str(w.workshop_admin)]["mechanic"] is None
    # a member who is a mechanic, a stranger's workshop owner, a customer: the workshop "does not exist"
    for reader in (w.mechanic, stranger, w.customer, w.other_mechanic):
        with db.as_user(reader):
            assert db.rpc_error("get_workshop_members", p_organization_id=w.organization) == "AD004"
    with db.as_user(stranger):
        assert [m["user_id"] for m in db.rpc("get_workshop_members", p_organization_id=elsewhere)] == [str(stranger)]
    with db.as_user(w.workshop_admin):
        assert db.rpc_error("get_workshop_members", p_organization_id=uuid.uuid4()) == "AD004"


def test_availability_status_view_still_shows_shift_state_to_its_readers(db):
    w = make_world(db)
    q = "select mechanic_id, currently_on_shift, participation_mode::text from public.mechanic_availability_status"
    assert db.scalar("select count(*) from public.mechanics where id in (%s, %s)",
                     (w.mechanic, w.other_mechanic)) == 2  # superuser: both exist
    with db.as_user(w.mechanic):
        assert db.all(q) == [{"mechanic_id": w.mechanic, "currently_on_shift": True, "participation_mode": "both"}]
    with db.as_user(w.workshop_admin):
        assert {r["mechanic_id"] for r in db.all(q)} == {w.mechanic}
    with db.as_user(w.customer):
        assert db.all(q) == []
    with db.as_user(w.admin):
        assert {r["mechanic_id"] for r in db.all(q)} >= {w.mechanic, w.other_mechanic}
    with db.as_anon():
        assert db.error(q).sqlstate == DENIED


@pytest.mark.parametrize("call", [
    "public.get_workshop_members('not-a-uuid')", "public.get_session_brief('42')",
    "public.accept_waiver('v1.0', 'maybe')", "public.get_workshop_members(123)",
])
def test_new_rpcs_refuse_arguments_of_the_wrong_type(db, call):
    w = make_world(db)
    with db.as_user(w.workshop_admin):
        assert db.error(f"select {call}").sqlstate in ("22P02", "42883")  # as PostgREST's cast would
    assert db.scalar("select count(*) from public.waiver_acceptances where user_id = %s", (w.workshop_admin,)) == 0


def test_our_sql_grants_nothing_in_storage_or_realtime():
    """docs/access.md covers `public` only because the `storage` and `realtime` schemas are
    Supabase's: our migrations and functions only add policies there, never grants."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "supabase"
    pattern = re.compile(r"\bgrant\b[^;]*\bon\s+(table\s+|all\s+tables\s+in\s+schema\s+)?(storage|realtime)\b",
                         re.IGNORECASE)
    files = [*root.glob("migrations/*.sql"), *root.glob("functions_sql/*/*.sql")]
    assert files
    assert [f.name for f in files if pattern.search(f.read_text())] == []
