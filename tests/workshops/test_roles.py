"""Every workshop-facing rule checks a permission of private.workshop_role_permissions: per role
(owner, manager, dispatcher, mechanic), another workshop's owner, a customer, anon, platform admin.
Each "cannot" case proves the rows it cannot see or change exist."""

from __future__ import annotations

import pytest

from tests.support.harness import Db
from tests.support.tenancy import as_persona, make_shop

PERSONAS = ["owner", "manager", "dispatcher", "mechanic", "other_owner", "customer", "anon", "admin"]
HOURS = [{"day_of_week": 1, "open": "08:00", "close": "17:00"}]


def _allowed(permission: str) -> set[str]:
    roles = {"edit_hours": {"owner", "manager"}, "see_earnings": {"owner", "manager"},
             "micro_settings": {"owner", "manager"}, "dispatch": {"owner", "manager", "dispatcher"},
             "see_members": {"owner", "manager", "dispatcher", "mechanic"},
             "manage_roster": {"owner", "manager"}}[permission]
    return roles | {"admin"}


def test_the_permission_table_is_the_documented_one(db: Db) -> None:
    rows = db.all("select role, permission from private.workshop_role_permissions")
    by_role: dict[str, set[str]] = {}
    for r in rows:
        by_role.setdefault(r["role"], set()).add(r["permission"])
    assert by_role["dispatcher"] == {"dispatch", "handle_appointments", "see_members"}
    assert by_role["mechanic"] == {"see_members"}
    assert by_role["owner"] - by_role["manager"] == {"transfer_ownership"}


@pytest.mark.parametrize("persona", PERSONAS)
def test_edit_hours_sets_hours(db: Db, persona: str) -> None:
    s = make_shop(db)
    with as_persona(db, s.personas()[persona]):
        if persona in _allowed("edit_hours"):
            db.rpc("set_workshop_hours", p_organization_id=s.workshop, p_hours=HOURS, p_capacity=3)
        else:
            db.rpc_error("set_workshop_hours", p_organization_id=s.workshop, p_hours=HOURS, p_capacity=3)
    n = db.scalar("select count(*) from public.workshop_hours where organization_id = %s", (s.workshop,))
    assert (n == 1) == (persona in _allowed("edit_hours"))
    # the table itself: the same rule (admins write through the RPC)
    if persona not in ("anon", "admin"):
        db.execute("insert into public.workshop_hours (organization_id, day_of_week, is_open, open_time, close_time) "
                   "values (%s, 2, true, '08:00', '12:00') on conflict do nothing", (s.workshop,))
        with db.as_user(s.personas()[persona]):
            changed = db.scalar("with u as (update public.workshop_hours set capacity = 9 where organization_id = %s "
                                "returning 1) select count(*) from u", (s.workshop,))
        assert (changed > 0) == (persona in _allowed("edit_hours"))


@pytest.mark.parametrize("persona", PERSONAS)
def test_see_earnings_reads_the_workshops_payout_account(db: Db, persona: str) -> None:
    s = make_shop(db)
    db.execute("insert into public.payout_accounts (organization_id, stripe_account_id) values (%s, 'acct_shop1')",
               (s.workshop,))
    with as_persona(db, s.personas()[persona]):
        try:
            n = db.scalar("select count(*) from public.payout_accounts where organization_id = %s", (s.workshop,))
        except Exception:  # anon: no grant
            n = 0
    assert (n == 1) == (persona in _allowed("see_earnings"))
    assert db.scalar("select count(*) from public.payout_accounts where organization_id = %s", (s.workshop,)) == 1


@pytest.mark.parametrize("persona", PERSONAS)
def test_see_members_reads_the_roster_and_manage_roster_its_contacts(db: Db, persona: str) -> None:
    s = make_shop(db)
    with as_persona(db, s.personas()[persona]):
        if persona in _allowed("manage_roster"):
            members = db.rpc("get_workshop_members", p_organization_id=s.workshop)
            assert {m["role"] for m in members} == {"owner", "manager", "dispatcher", "mechanic"}
        else:
            db.rpc_error("get_workshop_members", p_organization_id=s.workshop)
        if persona != "anon":
            n = db.scalar("select count(*) from public.organization_members where organization_id = %s", (s.workshop,))
            assert (n == 4) == (persona in _allowed("see_members")) and n in (0, 4)
    assert db.scalar("select count(*) from public.organization_members where organization_id = %s", (s.workshop,)) == 4


@pytest.mark.parametrize("persona", PERSONAS)
def test_dispatch_reads_the_micro_dashboard(db: Db, persona: str) -> None:
    s = make_shop(db)
    with as_persona(db, s.personas()[persona]):
        if persona in _allowed("dispatch"):
            assert isinstance(db.rpc("workshop_micro_dashboard", p_organization_id=s.workshop), dict)
        else:
            db.rpc_error("workshop_micro_dashboard", p_organization_id=s.workshop)


@pytest.mark.parametrize("persona", PERSONAS)
def test_micro_settings_caps_the_workshops_mechanic(db: Db, persona: str) -> None:
    s = make_shop(db)
    with as_persona(db, s.personas()[persona]):
        if persona in _allowed("micro_settings"):
            db.rpc("set_mechanic_micro_settings", p_mechanic_id=s.mechanic, p_daily_cap=60)
        else:
            db.rpc_error("set_mechanic_micro_settings", p_mechanic_id=s.mechanic, p_daily_cap=60)
    cap = db.scalar("select daily_micro_minutes_cap from public.mechanics where id = %s", (s.mechanic,))
    assert (cap == 60) == (persona in _allowed("micro_settings"))


@pytest.mark.parametrize("persona", PERSONAS)
def test_edit_hours_sets_the_weekly_availability_of_its_mechanics(db: Db, persona: str) -> None:
    s = make_shop(db)
    allowed = _allowed("edit_hours") - {"admin"} | {"mechanic"}  # the mechanic edits its own
    who = s.personas()[persona]
    if persona in ("anon", "admin"):
        return
    with db.as_user(who):
        try:
            db.execute("insert into public.mechanic_weekly_availability (mechanic_id, day_of_week, start_time, end_time) "
                       "values (%s, 1, '09:00', '12:00')", (s.mechanic,))
            ok = True
        except Exception:
            ok = False
    assert ok == (persona in allowed)


@pytest.mark.parametrize("persona", PERSONAS)
def test_manage_roster_reads_pending_mechanics_of_the_workshop(db: Db, persona: str) -> None:
    from tests.support.factories import make_mechanic
    from tests.support.tenancy import add_member
    s = make_shop(db)
    pending = make_mechanic(db, approved=False, name="Pia Pending")
    add_member(db, s.workshop, pending, "mechanic")
    with as_persona(db, s.personas()[persona]):
        n = db.scalar("select count(*) from public.mechanics where id = %s", (pending,))
    assert (n == 1) == (persona in {"owner", "manager", "admin"})
    assert db.scalar("select count(*) from public.mechanics where id = %s", (pending,)) == 1
