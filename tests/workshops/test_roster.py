"""The roster: invitations (single-use hashed tokens that expire, one pending per email), accepting
by the invited account, mechanics linked to the workshop, removal, leaving, ownership transfer."""

from __future__ import annotations

import hashlib
import uuid

import pytest

from tests.support.factories import make_customer, make_mechanic
from tests.support.harness import Db
from tests.support.tenancy import as_persona, create_workshop, email_of, invite, make_shop


def _member_role(db: Db, workshop: uuid.UUID, user: uuid.UUID) -> str | None:
    return db.scalar("select role::text from public.organization_members where organization_id = %s and user_id = %s",
                     (workshop, user))


def test_invitation_stores_only_the_hash_and_emails_the_token(db: Db) -> None:
    s = make_shop(db)
    inv, token = invite(db, s.manager, s.workshop, "New.Person@Example.test", "dispatcher")
    row = db.one("select * from public.workshop_invitations where id = %s", (inv,))
    assert row["email"] == "new.person@example.test" and row["status"] == "pending" and row["role"] == "dispatcher"
    assert bytes(row["token_hash"]) == hashlib.sha256(token.encode()).digest() and len(token) >= 40
    assert token not in str(row)
    job = db.one("select payload from private.outbox where dedupe_key = %s", (f"email:workshop_invitation:{inv}",))
    assert job["payload"]["to_email"] == "new.person@example.test"
    ttl = db.scalar("select expires_at - created_at from public.workshop_invitations where id = %s", (inv,))
    assert ttl.days == 7
    # staff read invitations without the hash
    with db.as_user(s.owner):
        assert db.error("select token_hash from public.workshop_invitations").sqlstate == "42501"
        assert db.scalar("select count(*) from public.workshop_invitations") == 1
    for who in (s.dispatcher, s.mechanic, s.other_owner, s.customer):
        with db.as_user(who):
            assert db.scalar("select count(*) from public.workshop_invitations") == 0


def test_accepting_a_mechanic_invitation_links_the_mechanic(db: Db) -> None:
    s = make_shop(db)
    mechanic = make_mechanic(db, name="Nia New")
    _, token = invite(db, s.owner, s.workshop, email_of(db, mechanic).upper())
    with db.as_user(mechanic):
        assert db.rpc("accept_workshop_invitation", p_token=token) == {"workshop_id": str(s.workshop), "role": "mechanic"}
    row = db.one("select organization_id, account_type::text, mechanic_type::text, status::text "
                 "from public.mechanics where id = %s", (mechanic,))
    assert row == {"organization_id": s.workshop, "account_type": "workshop_mechanic",
                   "mechanic_type": "workshop_affiliated", "status": "approved"}
    assert _member_role(db, s.workshop, mechanic) == "mechanic"
    # reused: the same answer as an unknown token
    with db.as_user(mechanic):
        assert db.rpc_error("accept_workshop_invitation", p_token=token) == "AD150"


def test_a_user_without_a_mechanic_row_gets_a_pending_one(db: Db) -> None:
    s = make_shop(db)
    user = make_customer(db, "Una User")
    _, token = invite(db, s.owner, s.workshop, email_of(db, user))
    with db.as_user(user):
        db.rpc("accept_workshop_invitation", p_token=token)
    row = db.one("select display_name, status::text, organization_id from public.mechanics where id = %s", (user,))
    assert row == {"display_name": "Una User", "status": "pending", "organization_id": s.workshop}


def test_a_staff_invitation_does_not_touch_the_mechanic_row(db: Db) -> None:
    s = make_shop(db)
    user = make_customer(db)
    _, token = invite(db, s.owner, s.workshop, email_of(db, user), "manager")
    with db.as_user(user):
        db.rpc("accept_workshop_invitation", p_token=token)
    assert _member_role(db, s.workshop, user) == "manager"
    assert db.scalar("select count(*) from public.mechanics where id = %s", (user,)) == 0


def test_invitation_misuse(db: Db) -> None:
    s = make_shop(db)
    invitee, stranger = make_customer(db), make_customer(db)
    inv, token = invite(db, s.owner, s.workshop, email_of(db, invitee))
    with db.as_user(stranger):  # wrong email: refused, nothing written
        assert db.rpc_error("accept_workshop_invitation", p_token=token) == "AD151"
    with db.as_user(stranger):  # guessing: unknown tokens answer like expired ones
        for guess in ("x", token[:-1], token + "A", token.upper(), "", None, "a" * 201):
            assert db.rpc_error("accept_workshop_invitation", p_token=guess) == "AD150"
    with db.as_anon():
        db.rpc_error("accept_workshop_invitation", p_token=token)
    assert db.scalar("select status from public.workshop_invitations where id = %s", (inv,)) == "pending"
    # expired
    db.execute("update public.workshop_invitations set expires_at = now() - interval '1 second' where id = %s", (inv,))
    with db.as_user(invitee):
        assert db.rpc_error("accept_workshop_invitation", p_token=token) == "AD150"
    assert _member_role(db, s.workshop, invitee) is None
    # a new invitation replaces the expired one; revoked, it is dead too
    inv2, token2 = invite(db, s.owner, s.workshop, email_of(db, invitee))
    assert db.scalar("select status from public.workshop_invitations where id = %s", (inv,)) == "expired"
    with db.as_user(s.manager):
        assert db.rpc("revoke_invitation", p_invitation_id=inv2)["status"] == "revoked"
        assert db.rpc_error("revoke_invitation", p_invitation_id=inv2) == "AD006"
    with db.as_user(invitee):
        assert db.rpc_error("accept_workshop_invitation", p_token=token2) == "AD150"
    assert _member_role(db, s.workshop, invitee) is None


def test_one_pending_invitation_per_email_and_no_member_twice(db: Db) -> None:
    s = make_shop(db)
    invite(db, s.owner, s.workshop, "one@example.test")
    dispatcher_email = email_of(db, s.dispatcher)
    with db.as_user(s.manager):
        assert db.rpc_error("invite_to_workshop", p_workshop_id=s.workshop, p_email="ONE@example.test",
                            p_role="dispatcher") == "AD005"
        assert db.rpc_error("invite_to_workshop", p_workshop_id=s.workshop, p_email=dispatcher_email,
                            p_role="manager") == "AD005"
    assert db.scalar("select count(*) from public.workshop_invitations") == 1


@pytest.mark.parametrize(("persona", "code"), [
    ("dispatcher", "AD003"), ("mechanic", "AD003"), ("other_owner", "AD004"), ("customer", "AD004"),
    ("anon", None),
])
def test_who_may_not_invite(db: Db, persona: str, code: str | None) -> None:
    s = make_shop(db)
    with as_persona(db, s.personas()[persona]):
        got = db.rpc_error("invite_to_workshop", p_workshop_id=s.workshop, p_email="x@example.test", p_role="mechanic")
    assert code is None or got == code
    assert db.scalar("select count(*) from public.workshop_invitations") == 0
    assert db.scalar("select count(*) from private.outbox where dedupe_key like 'email:workshop_invitation:%%'") == 0


def test_hostile_invite_input(db: Db) -> None:
    s = make_shop(db)
    with db.as_user(s.owner):
        for email, role in (("x@example.test", "owner"), ("x@example.test", "admin"), ("x@example.test", None),
                            (None, "mechanic"), ("not-an-email", "mechanic"), ("a" * 250 + "@x.test", "mechanic"),
                            ("a b@x.test", "mechanic")):
            assert db.rpc_error("invite_to_workshop", p_workshop_id=s.workshop, p_email=email, p_role=role) == "AD001"
        assert db.rpc_error("invite_to_workshop", p_workshop_id=None, p_email="x@example.test",
                            p_role="mechanic") == "AD001"
        assert db.rpc_error("invite_to_workshop", p_workshop_id=uuid.uuid4(), p_email="x@example.test",
                            p_role="mechanic") == "AD004"
        assert db.rpc_error("revoke_invitation", p_invitation_id=None) == "AD001"
        assert db.rpc_error("revoke_invitation", p_invitation_id=uuid.uuid4()) == "AD004"
    assert db.scalar("select count(*) from public.workshop_invitations") == 0


def test_revoke_needs_manage_roster_of_that_workshop(db: Db) -> None:
    s = make_shop(db)
    inv, _ = invite(db, s.owner, s.workshop, "r@example.test")
    for who, code in ((s.dispatcher, "AD003"), (s.mechanic, "AD003"), (s.other_owner, "AD004"),
                      (s.customer, "AD004")):
        with db.as_user(who):
            assert db.rpc_error("revoke_invitation", p_invitation_id=inv) == code
    assert db.scalar("select status from public.workshop_invitations where id = %s", (inv,)) == "pending"
    with db.as_user(s.admin):
        db.rpc("revoke_invitation", p_invitation_id=inv)


def test_a_mechanic_of_another_workshop_must_leave_it_first(db: Db) -> None:
    s = make_shop(db)
    _, token = invite(db, s.other_owner, s.other_workshop, email_of(db, s.mechanic))
    with db.as_user(s.mechanic):
        assert db.rpc_error("accept_workshop_invitation", p_token=token) == "AD152"
        db.rpc("leave_workshop", p_workshop_id=s.workshop)
        db.rpc("accept_workshop_invitation", p_token=token)
    assert db.scalar("select organization_id from public.mechanics where id = %s", (s.mechanic,)) == s.other_workshop
    assert _member_role(db, s.workshop, s.mechanic) is None


def test_the_owner_cannot_leave_or_be_removed_without_a_transfer(db: Db) -> None:
    s = make_shop(db)
    with db.as_user(s.owner):
        assert db.rpc_error("leave_workshop", p_workshop_id=s.workshop) == "AD153"
    with db.as_user(s.manager):
        assert db.rpc_error("remove_workshop_member", p_workshop_id=s.workshop, p_user_id=s.owner) == "AD153"
        assert db.rpc_error("transfer_workshop_ownership", p_workshop_id=s.workshop, p_new_owner_id=s.manager) == \
            "AD003"
    with db.as_user(s.owner):
        assert db.rpc_error("transfer_workshop_ownership", p_workshop_id=s.workshop,
                            p_new_owner_id=s.customer) == "AD004"
        assert db.rpc_error("transfer_workshop_ownership", p_workshop_id=s.workshop, p_new_owner_id=s.owner) == "AD005"
        assert db.rpc_error("transfer_workshop_ownership", p_workshop_id=s.workshop, p_new_owner_id=None) == "AD001"
        db.rpc("transfer_workshop_ownership", p_workshop_id=s.workshop, p_new_owner_id=s.manager)
    assert _member_role(db, s.workshop, s.manager) == "owner" and _member_role(db, s.workshop, s.owner) == "manager"
    assert db.scalar("select count(*) from public.organization_members where organization_id = %s and role = 'owner'",
                     (s.workshop,)) == 1
    with db.as_user(s.owner):
        db.rpc("leave_workshop", p_workshop_id=s.workshop)
    assert _member_role(db, s.workshop, s.owner) is None


def test_removal_by_role(db: Db) -> None:
    s = make_shop(db)
    for who, code in ((s.dispatcher, "AD003"), (s.mechanic, "AD003"), (s.other_owner, "AD004"), (s.customer, "AD004")):
        with db.as_user(who):
            assert db.rpc_error("remove_workshop_member", p_workshop_id=s.workshop, p_user_id=s.mechanic) == code
    assert _member_role(db, s.workshop, s.mechanic) == "mechanic"
    with db.as_user(s.manager):
        assert db.rpc_error("remove_workshop_member", p_workshop_id=s.workshop, p_user_id=s.customer) == "AD004"
        assert db.rpc_error("remove_workshop_member", p_workshop_id=s.workshop, p_user_id=None) == "AD001"
        db.rpc("remove_workshop_member", p_workshop_id=s.workshop, p_user_id=s.mechanic)
    row = db.one("select organization_id, account_type::text, mechanic_type::text from public.mechanics where id = %s",
                 (s.mechanic,))
    assert row == {"organization_id": None, "account_type": "individual_mechanic", "mechanic_type": "virtual_only"}
    with db.as_user(s.customer):
        assert db.rpc_error("leave_workshop", p_workshop_id=s.workshop) == "AD004"


def test_a_concurrent_double_accept_adds_the_member_once(fresh_url: str) -> None:
    import psycopg

    from tests.support.personas import race
    conns = [psycopg.connect(fresh_url) for _ in range(3)]
    db = Db(conns[0])
    s = make_shop(db)
    user = make_customer(db)
    _, token = invite(db, s.owner, s.workshop, email_of(db, user))
    conns[0].commit()
    results = race([(c, user, "select public.accept_workshop_invitation(%s)", (token,)) for c in conns[1:]])
    assert sorted(r[0] for r in results) == ["err", "ok"], results
    assert db.scalar("select count(*) from public.organization_members where user_id = %s", (user,)) == 1
    for c in conns:
        c.close()


def test_second_account_cannot_take_an_invitation(db: Db) -> None:
    """A dishonest member forwards a token to a second account: only the invited email accepts."""
    s = make_shop(db)
    _, token = invite(db, s.owner, s.workshop, "invited@example.test", "manager")
    second = db.make_user("invited@example.test.evil")
    with db.as_user(second):
        assert db.rpc_error("accept_workshop_invitation", p_token=token) == "AD151"
    assert _member_role(db, s.workshop, second) is None


def test_a_pending_workshop_builds_its_roster_a_suspended_one_does_not(db: Db) -> None:
    owner = make_customer(db)
    workshop = create_workshop(db, owner)
    invite(db, owner, workshop, "early@example.test")
    db.execute("update public.organizations set status = 'suspended' where id = %s", (workshop,))
    with db.as_user(owner):
        assert db.rpc_error("invite_to_workshop", p_workshop_id=workshop, p_email="late@example.test",
                            p_role="mechanic") == "AD003"


@pytest.mark.parametrize("call", [
    "public.invite_to_workshop('not-a-uuid', 'a@b.test', 'mechanic')",
    "public.remove_workshop_member(%(w)s, '42')",
    "public.leave_workshop(123)",
    "public.transfer_workshop_ownership(%(w)s, 'me')",
    "public.revoke_invitation('x')",
    "public.update_workshop_details(%(w)s, 'not json')",
    "public.admin_set_workshop_status('x', 'verified')",
    "public.create_workshop('Bay', 'UTC', '{bad')",
])
def test_arguments_of_the_wrong_type_are_refused(db: Db, call: str) -> None:
    s = make_shop(db)
    with db.as_user(s.owner):
        assert db.error(f"select {call}", {"w": str(s.workshop)}).sqlstate in ("22P02", "42883")
    assert db.scalar("select count(*) from public.organization_members where organization_id = %s", (s.workshop,)) == 4


def test_null_and_foreign_ids_change_nothing(db: Db) -> None:
    s = make_shop(db)
    with db.as_user(s.owner):
        assert db.rpc_error("leave_workshop", p_workshop_id=None) == "AD001"
        assert db.rpc_error("remove_workshop_member", p_workshop_id=None, p_user_id=s.mechanic) == "AD001"
        # another workshop's member and another workshop: not found, nothing changes
        assert db.rpc_error("remove_workshop_member", p_workshop_id=s.other_workshop,
                            p_user_id=s.other_owner) == "AD004"
        assert db.rpc_error("transfer_workshop_ownership", p_workshop_id=s.other_workshop,
                            p_new_owner_id=s.owner) == "AD004"
        assert db.rpc_error("transfer_workshop_ownership", p_workshop_id=s.workshop,
                            p_new_owner_id=s.other_owner) == "AD004"
    with db.as_user(s.other_owner):
        assert db.rpc_error("leave_workshop", p_workshop_id=s.workshop) == "AD004"
    assert db.scalar("select count(*) from public.organization_members") == 5


def test_a_platform_admin_transfers_ownership_of_an_abandoned_workshop(db: Db) -> None:
    s = make_shop(db)
    with db.as_user(s.admin):
        db.rpc("transfer_workshop_ownership", p_workshop_id=s.workshop, p_new_owner_id=s.dispatcher)
    assert _member_role(db, s.workshop, s.dispatcher) == "owner" and _member_role(db, s.workshop, s.owner) == "manager"


def test_a_manager_cannot_escalate_by_inviting_a_second_account_as_owner(db: Db) -> None:
    s = make_shop(db)
    with db.as_user(s.manager):
        assert db.rpc_error("invite_to_workshop", p_workshop_id=s.workshop, p_email="alt@example.test",
                            p_role="owner") == "AD001"
    assert db.scalar("select count(*) from public.workshop_invitations") == 0
    # nor through the table
    with db.as_user(s.manager):
        assert db.error("update public.organization_members set role = 'owner' where user_id = %s",
                        (s.manager,)).sqlstate == "42501"
        assert db.error("insert into public.organization_members (organization_id, user_id, role) "
                        "values (%s, %s, 'manager')", (s.workshop, s.customer)).sqlstate == "42501"


def test_concurrent_transfers_leave_exactly_one_owner(fresh_url: str) -> None:
    import psycopg

    from tests.support.personas import race
    conns = [psycopg.connect(fresh_url) for _ in range(3)]
    db = Db(conns[0])
    s = make_shop(db)
    conns[0].commit()
    q = "select public.transfer_workshop_ownership(%s, %s)"
    results = race([(conns[1], s.owner, q, (s.workshop, s.manager)), (conns[2], s.owner, q, (s.workshop, s.dispatcher))])
    assert sorted(r[0] for r in results) == ["err", "ok"], results
    assert [r[1] for r in results if r[0] == "err"] == ["AD003"]  # the loser is no longer the owner
    assert db.scalar("select count(*) from public.organization_members where organization_id = %s and role = 'owner'",
                     (s.workshop,)) == 1
    for c in conns:
        c.close()


def test_concurrent_invitations_to_one_email_make_one(fresh_url: str) -> None:
    import psycopg

    from tests.support.personas import race
    conns = [psycopg.connect(fresh_url) for _ in range(3)]
    db = Db(conns[0])
    s = make_shop(db)
    conns[0].commit()
    q = "select public.invite_to_workshop(%s, 'same@example.test', 'mechanic')"
    results = race([(conns[1], s.owner, q, (s.workshop,)), (conns[2], s.manager, q, (s.workshop,))])
    assert sorted(r[0] for r in results) == ["err", "ok"], results
    assert [r[1] for r in results if r[0] == "err"] == ["AD005"]
    assert db.scalar("select count(*) from public.workshop_invitations") == 1
    for c in conns:
        c.close()
