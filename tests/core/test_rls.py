"""Row-level security of the core marketplace, persona by persona (docs/testing.md, "Personas").

Personas: anon, the customer (owner), another customer, the assigned mechanic (it accepted the
customer's request), another approved mechanic (not assigned to it), a pending mechanic, the
workshop admin (owner of the assigned mechanic's workshop), a platform admin, service_role.

One world is built per module through the real signup trigger and RPCs, in one transaction on a
connection of its own that is never committed; every test runs in a savepoint of it, rolled back
afterwards. Each labelled row of the world is proved to exist as the superuser (outside any persona)
before any persona is asked what it sees or may change, so a "cannot" is never vacuous.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.support.contact import finish, go_live
from tests.support.delivery import start_both
from tests.support.factories import accept, make_intake, make_mechanic, make_vehicle, make_world, request_free
from tests.support.harness import Db
from tests.support.limits import allow_free_sessions

PERSONAS = (
    "anon", "customer", "other_customer", "mechanic", "other_mechanic", "pending_mechanic",
    "workshop_admin", "admin", "service",
)
DENIED = "42501"  # insufficient_privilege: no grant on the table or column, or a row-level security check
ALL = "all labelled rows"
NOT_ALLOWED = "AD003"


# -------------------------------------------------------------------------------------------------
# The world
# -------------------------------------------------------------------------------------------------
@dataclass
class RlsWorld:
    users: dict[str, uuid.UUID]  # persona -> user id (anon and service have none)
    p: dict[str, Any]  # named ids, the parameters of every statement below
    rows: dict[str, dict[str, str]] = field(default_factory=dict)  # table -> label -> key (text)


def build_world(db: Db) -> RlsWorld:
    """The factories' world plus what every table needs to show a difference between personas.

    sessions / requests:  accepted        customer's request, accepted by `mechanic` (waiting)
                          open            other_customer's request, pending (the open feed)
                          other_accepted  other_customer's request, accepted by `other_mechanic`
                          cancelled       customer's request, cancelled by the customer
    """
    # the world's customers file several free requests: the limits per account (tests/trust) are
    # not what this module tests (the module's transaction is rolled back)
    allow_free_sessions(db)
    w = make_world(db)
    accept(db, w.mechanic, w.request)

    # A pending mechanic attached to the workshop, and a second workshop nobody here belongs to.
    workshop_pending = make_mechanic(db, approved=False, name="Wes Workshop-Pending")
    db.execute("insert into public.organization_members (organization_id, user_id, role) values (%s, %s, 'mechanic')",
               (w.organization, workshop_pending))
    db.execute("update public.mechanics set organization_id = %s, account_type = 'workshop_mechanic' where id = %s",
               (w.organization, workshop_pending))
    outsider = db.make_user(user_metadata={"full_name": "Ola Outsider"})
    other_workshop = db.scalar("insert into public.organizations (name) values ('Elsewhere Garage') returning id")
    db.execute("insert into public.organization_members (organization_id, user_id, role) values (%s, %s, 'owner')",
               (other_workshop, outsider))

    # The other customer's requests: one open, one accepted by the other mechanic.
    other_vehicle = make_vehicle(db, w.other_customer, make="Toyota", model="Corolla", year=2015)
    intake_open = make_intake(db, w.other_customer, other_vehicle, contact_name="Olive Other",
                              contact_email="olive@example.test", contact_phone="+1 555 0199")
    open_ids = request_free(db, w.other_customer, intake=intake_open)
    intake_other_accepted = make_intake(db, w.other_customer, other_vehicle, concern="Check engine light is on",
                                        contact_email="olive@example.test")
    other_ids = request_free(db, w.other_customer, intake=intake_other_accepted)
    accept(db, w.other_mechanic, other_ids["request_id"])

    # The customer's cancelled request, a fresh intake (status new) and a vehicle nothing refers to.
    intake_cancelled = make_intake(db, w.customer, w.vehicle, concern="Squeaky belt on a cold start")
    cancelled_ids = request_free(db, w.customer, intake=intake_cancelled)
    with db.as_user(w.customer):
        db.rpc("cancel_request", p_request_id=cancelled_ids["request_id"])
    intake_new = make_intake(db, w.customer, w.vehicle, concern="Wipers leave streaks")
    vehicle_spare = make_vehicle(db, w.customer, make="Mazda", model="MX-5", year=1995)

    # Offers: the other mechanic declines the open request; a broadcast offer (no mechanic) on it.
    with db.as_user(w.other_mechanic):
        db.rpc("decline_offer", p_request_id=open_ids["request_id"])
    offer_broadcast = db.scalar("insert into public.session_offers (request_id, status) values (%s, 'offered') "
                                "returning id", (open_ids["request_id"],))

    # What participants write while a session is open.
    # Waivers: each customer accepted the current terms when it signed up (accept_waiver).
    waiver_customer = db.scalar("select id from public.waiver_acceptances where user_id = %s", (w.customer,))
    waiver_other = db.scalar("select id from public.waiver_acceptances where user_id = %s", (w.other_customer,))
    with db.as_user(w.customer):
        chat_customer = db.scalar("insert into public.chat_messages (session_id, content) values (%s, 'Hello') "
                                  "returning id", (w.session,))
        file_customer = db.scalar(
            "insert into public.session_files (session_id, file_name, file_size, content_type, storage_path) "
            "values (%s, 'brakes.jpg', 1000, 'image/jpeg', %s) returning id", (w.session, f"sessions/{w.session}/brakes.jpg"))
    with db.as_user(w.mechanic):
        chat_mechanic = db.scalar("insert into public.chat_messages (session_id, content) values (%s, 'Hi, I am here') "
                                  "returning id", (w.session,))
    with db.as_user(w.other_customer):
        chat_other = db.scalar("insert into public.chat_messages (session_id, content) values (%s, 'Engine light') "
                               "returning id", (other_ids["session_id"],))
    with db.as_user(w.other_mechanic):
        file_other = db.scalar(
            "insert into public.session_files (session_id, file_name, file_size, content_type, storage_path) "
            "values (%s, 'scan.pdf', 2000, 'application/pdf', %s) returning id",
            (other_ids["session_id"], f"sessions/{other_ids['session_id']}/scan.pdf"))

    # Payout accounts have no client API: created as the platform would (superuser here).
    payouts = {
        owner: db.scalar(f"insert into public.payout_accounts ({col}, stripe_account_id) values (%s, %s) returning id",
                         (owner_id, f"acct_{owner}"))
        for owner, col, owner_id in (("mechanic", "mechanic_id", w.mechanic),
                                     ("other_mechanic", "mechanic_id", w.other_mechanic),
                                     ("workshop", "organization_id", w.organization))
    }
    # An inactive plan: hidden from everyone but admins.
    db.execute("update public.service_plans set active = false where code = 'diagnostic'")

    commitments = {
        label: db.scalar("select id from public.mechanic_commitments where session_id = %s", (session,))
        for label, session in (("mechanic", w.session), ("other_mechanic", other_ids["session_id"]))
    }
    offers = {
        "accepted": db.scalar("select id from public.session_offers where request_id = %s and mechanic_id = %s",
                              (w.request, w.mechanic)),
        "other_accepted": db.scalar("select id from public.session_offers where request_id = %s and mechanic_id = %s",
                                    (other_ids["request_id"], w.other_mechanic)),
        "declined": db.scalar("select id from public.session_offers where request_id = %s and mechanic_id = %s",
                              (open_ids["request_id"], w.other_mechanic)),
        "broadcast": offer_broadcast,
    }

    users = {
        "customer": w.customer, "other_customer": w.other_customer, "mechanic": w.mechanic,
        "other_mechanic": w.other_mechanic, "pending_mechanic": w.pending_mechanic,
        "workshop_admin": w.workshop_admin, "admin": w.admin,
    }
    sessions = {"accepted": w.session, "open": open_ids["session_id"], "other_accepted": other_ids["session_id"],
                "cancelled": cancelled_ids["session_id"]}
    requests = {"accepted": w.request, "open": open_ids["request_id"], "other_accepted": other_ids["request_id"],
                "cancelled": cancelled_ids["request_id"]}
    intakes = {"accepted": w.intake, "cancelled": intake_cancelled, "new": intake_new, "open": intake_open,
               "other_accepted": intake_other_accepted}

    p: dict[str, Any] = {
        **users, "workshop_pending": workshop_pending, "outsider": outsider,
        "workshop": w.organization, "other_workshop": other_workshop,
        "vehicle": w.vehicle, "vehicle_spare": vehicle_spare, "other_vehicle": other_vehicle,
        **{f"s_{k}": v for k, v in sessions.items()}, **{f"r_{k}": v for k, v in requests.items()},
        **{f"intake_{k}": v for k, v in intakes.items()}, **{f"offer_{k}": v for k, v in offers.items()},
        **{f"payout_{k}": v for k, v in payouts.items()},
        **{f"commitment_{k}": v for k, v in commitments.items()},
        "waiver_customer": waiver_customer, "waiver_other": waiver_other,
        "chat_customer": chat_customer, "chat_mechanic": chat_mechanic, "chat_other": chat_other,
        "file_customer": file_customer, "file_other": file_other,
    }
    # RPC results are JSON: their ids come back as text; parameters must be typed uuids.
    p = {k: uuid.UUID(v) if isinstance(v, str) else v for k, v in p.items()}
    world = RlsWorld(users=users, p=p)

    def text(values: dict[str, Any]) -> dict[str, str]:
        return {label: str(value) for label, value in values.items()}

    mechanics = {"mechanic": w.mechanic, "other_mechanic": w.other_mechanic,
                 "pending_mechanic": w.pending_mechanic, "workshop_pending": workshop_pending}
    world.rows = {
        "profiles": text(users),
        "organizations": text({"workshop": w.organization, "other_workshop": other_workshop}),
        "organization_members": {
            "workshop:owner": f"{w.organization}:{w.workshop_admin}",
            "workshop:mechanic": f"{w.organization}:{w.mechanic}",
            "workshop:pending": f"{w.organization}:{workshop_pending}",
            "other_workshop:owner": f"{other_workshop}:{outsider}",
        },
        "mechanics": text(mechanics),
        "payout_accounts": text(payouts),
        "service_plans": {code: code for code in ("free", "micro", "chat10", "video15", "diagnostic")},
        "vehicles": text({"customer": w.vehicle, "customer_spare": vehicle_spare, "other_customer": other_vehicle}),
        "intakes": text(intakes),
        "waiver_acceptances": text({"customer": waiver_customer, "other_customer": waiver_other}),
        "sessions": text(sessions),
        "session_requests": text(requests),
        "session_offers": text(offers),
        "session_participants": {
            "accepted:customer": f"{w.session}:{w.customer}",
            "accepted:mechanic": f"{w.session}:{w.mechanic}",
            "other_accepted:customer": f"{other_ids['session_id']}:{w.other_customer}",
            "other_accepted:mechanic": f"{other_ids['session_id']}:{w.other_mechanic}",
        },
        "session_events": text(sessions),  # keyed by session: "sees the timeline of that session"
        "chat_messages": text({"customer": chat_customer, "mechanic": chat_mechanic, "other": chat_other}),
        "session_files": text({"customer": file_customer, "other": file_other}),
        "mechanic_commitments": text(commitments),
        "mechanic_directory": text(mechanics),
    }
    return world


@pytest.fixture(scope="module")
def _world(session_url: str) -> Iterator[tuple[Db, RlsWorld]]:
    conn = psycopg.connect(session_url, prepare_threshold=None)
    try:
        conn.execute("select 1")  # open the module's transaction: every Db statement is a savepoint in it
        db = Db(conn)
        yield db, build_world(db)
    finally:
        conn.rollback()
        conn.close()


@pytest.fixture
def w(_world: tuple[Db, RlsWorld]) -> Iterator[tuple[Db, RlsWorld]]:
    db, world = _world
    with db.conn.transaction(force_rollback=True):
        yield db, world


@contextmanager
def as_persona(db: Db, world: RlsWorld, persona: str) -> Iterator[Db]:
    if persona == "anon":
        context = db.as_anon()
    elif persona == "service":
        context = db.as_service()
    else:
        context = db.as_user(world.users[persona])
    with context:
        yield db


def attempt(db: Db, world: RlsWorld, persona: str, statement: str) -> int | str:
    """Run `statement` as `persona`: the number of rows it affected, or the SQLSTATE it failed with."""
    with as_persona(db, world, persona):
        try:
            return db.execute(statement, world.p).rowcount
        except psycopg.Error as exc:
            return exc.sqlstate or "?"


# -------------------------------------------------------------------------------------------------
# SELECT: which labelled rows each persona sees
# -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Visibility:
    table: str
    key: str  # SQL expression (text) naming a row, matched against the labelled keys
    expect: dict[str, Any]  # persona -> set of labels, ALL, or DENIED
    exists_in: str | None = None  # where the superuser proves the rows exist (a view's base table)


SESSION_PARTIES = {
    "customer": {"accepted", "cancelled"},
    "other_customer": {"open", "other_accepted"},
    "mechanic": {"accepted"},
    "other_mechanic": {"other_accepted"},
    "pending_mechanic": set(),
}
ACTIVE_PLANS = {"free", "micro", "chat10", "video15"}
APPROVED = {"mechanic", "other_mechanic"}


def _everyone(value: Any) -> dict[str, Any]:
    return dict.fromkeys(PERSONAS, value)


VISIBILITY = [
    Visibility("profiles", "id::text", {
        "anon": DENIED,
        # a customer never reads a mechanic's profile; a mechanic reads its customer's only while
        # their session is live (here it is waiting: accepted, not started)
        "customer": {"customer"}, "other_customer": {"other_customer"},
        "mechanic": {"mechanic"}, "other_mechanic": {"other_mechanic"},
        "pending_mechanic": {"pending_mechanic"}, "workshop_admin": {"workshop_admin"},
        "admin": ALL, "service": ALL,
    }),
    Visibility("organizations", "id::text", {
        **_everyone(set()), "anon": DENIED,
        "mechanic": {"workshop"}, "workshop_admin": {"workshop"}, "admin": ALL, "service": ALL,
    }),
    Visibility("organization_members", "organization_id::text || ':' || user_id::text", {
        **_everyone(set()), "anon": DENIED,
        "mechanic": {"workshop:owner", "workshop:mechanic", "workshop:pending"},
        "workshop_admin": {"workshop:owner", "workshop:mechanic", "workshop:pending"},
        "admin": ALL, "service": ALL,
    }),
    Visibility("mechanics", "id::text", {
        **_everyone(APPROVED),  # the directory, anon included
        "pending_mechanic": APPROVED | {"pending_mechanic"},  # its own application
        "workshop_admin": APPROVED | {"workshop_pending"},  # its workshop's, pending or not
        "admin": ALL, "service": ALL,
    }),
    Visibility("payout_accounts", "id::text", {
        **_everyone(set()), "anon": DENIED,
        "mechanic": {"mechanic"}, "other_mechanic": {"other_mechanic"}, "workshop_admin": {"workshop"},
        "admin": ALL, "service": ALL,
    }),
    Visibility("service_plans", "code", {**_everyone(ACTIVE_PLANS), "admin": ALL, "service": ALL}),
    Visibility("vehicles", "id::text", {
        **_everyone(set()), "anon": DENIED,
        "customer": {"customer", "customer_spare"}, "other_customer": {"other_customer"},
        "admin": ALL, "service": ALL,
    }),
    Visibility("intakes", "id::text", {
        **_everyone(set()), "anon": DENIED,
        "customer": {"accepted", "cancelled", "new"}, "other_customer": {"open", "other_accepted"},
        # accepted but not started: the mechanic does not read the intake (contact fields) yet
        "mechanic": set(), "other_mechanic": set(),
        "admin": ALL, "service": ALL,
    }),
    Visibility("waiver_acceptances", "id::text", {
        **_everyone(set()), "anon": DENIED,
        "customer": {"customer"}, "other_customer": {"other_customer"}, "admin": ALL, "service": ALL,
    }),
    Visibility("sessions", "id::text", {
        **_everyone(set()), "anon": DENIED, **SESSION_PARTIES,
        "workshop_admin": {"accepted"},  # its mechanic's session only
        "admin": ALL, "service": ALL,
    }),
    Visibility("session_requests", "id::text", {
        **_everyone(set()), "anon": DENIED,
        "customer": {"accepted", "cancelled"}, "other_customer": {"open", "other_accepted"},
        # approved mechanics also see the open feed (pending/unattended), never closed requests
        "mechanic": {"accepted", "open"}, "other_mechanic": {"other_accepted", "open"},
        "admin": ALL, "service": ALL,
    }),
    Visibility("session_offers", "id::text", {
        **_everyone(set()), "anon": DENIED,
        "mechanic": {"accepted"}, "other_mechanic": {"other_accepted", "declined"},
        "admin": ALL, "service": ALL,
    }),
    Visibility("session_participants", "session_id::text || ':' || user_id::text", {
        **_everyone(set()), "anon": DENIED,
        "customer": {"accepted:customer", "accepted:mechanic"},
        "other_customer": {"other_accepted:customer", "other_accepted:mechanic"},
        "mechanic": {"accepted:customer", "accepted:mechanic"},
        "other_mechanic": {"other_accepted:customer", "other_accepted:mechanic"},
        "workshop_admin": {"accepted:customer", "accepted:mechanic"},
        "admin": ALL, "service": ALL,
    }),
    Visibility("session_events", "session_id::text", {
        **_everyone(set()), "anon": DENIED, **SESSION_PARTIES,
        "workshop_admin": {"accepted"}, "admin": ALL, "service": ALL,
    }),
    Visibility("chat_messages", "id::text", {
        **_everyone(set()), "anon": DENIED,
        "customer": {"customer", "mechanic"}, "other_customer": {"other"},
        "mechanic": {"customer", "mechanic"}, "other_mechanic": {"other"},
        "admin": ALL, "service": ALL,
    }),
    Visibility("session_files", "id::text", {
        **_everyone(set()), "anon": DENIED,
        "customer": {"customer"}, "other_customer": {"other"},
        "mechanic": {"customer"}, "other_mechanic": {"other"},
        "admin": ALL, "service": ALL,
    }),
    Visibility("mechanic_commitments", "id::text", {
        **_everyone(set()), "anon": DENIED,
        "mechanic": {"mechanic"}, "other_mechanic": {"other_mechanic"}, "admin": ALL, "service": ALL,
    }),
    # The view shows approved mechanics only, to everyone (admins included); pending ones exist.
    Visibility("mechanic_directory", "id::text", _everyone(APPROVED), exists_in="mechanics"),
]


def _keys_present(db: Db, table: str, key: str, keys: list[str]) -> set[str]:
    query = sql.SQL("select distinct {key} from public.{table} where {key} = any(%s)").format(
        key=sql.SQL(key), table=sql.Identifier(table))
    return {row[0] for row in db.execute(query, (keys,)).fetchall()}


def _visible(db: Db, world: RlsWorld, persona: str, spec: Visibility) -> Any:
    labels = world.rows[spec.table]
    label_of = {key: label for label, key in labels.items()}
    with as_persona(db, world, persona):
        try:
            keys = _keys_present(db, spec.table, spec.key, list(labels.values()))
        except psycopg.errors.InsufficientPrivilege:
            return DENIED
    return {label_of[key] for key in keys}


@pytest.mark.parametrize("spec", VISIBILITY, ids=lambda s: s.table)
def test_select_visibility_per_persona(w: tuple[Db, RlsWorld], spec: Visibility) -> None:
    db, world = w
    labels = world.rows[spec.table]
    assert db.persona == "postgres"
    # As the superuser: every labelled row exists, so each one a persona misses is really hidden.
    assert _keys_present(db, spec.exists_in or spec.table, spec.key, list(labels.values())) == set(labels.values())
    expected = {p: set(labels) if e == ALL else e for p, e in spec.expect.items()}
    seen = {persona: _visible(db, world, persona, spec) for persona in PERSONAS}
    assert seen == expected


# -------------------------------------------------------------------------------------------------
# Writes: what each persona may and may not change
# -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Write:
    persona: str
    statement: str
    expect: int | str  # rows affected (1 = allowed, 0 = filtered by RLS) or the SQLSTATE of the refusal
    table: str  # where the effect is checked as the superuser
    target: str | None = None  # the rows aimed at (they must exist); None: an insert, the row count is compared
    name: str = ""

    def __str__(self) -> str:
        return f"{self.persona}-{self.name}"


def _state(db: Db, world: RlsWorld, case: Write) -> Any:
    if case.target is None:
        query = sql.SQL("select count(*) from public.{}").format(sql.Identifier(case.table))
    else:
        query = sql.SQL(
            "select coalesce(jsonb_agg(to_jsonb(t) order by to_jsonb(t)::text), '[]') from public.{} t where {}"
        ).format(sql.Identifier(case.table), sql.SQL(case.target))
    return db.scalar(query, world.p)


def _check_write(db: Db, world: RlsWorld, case: Write) -> None:
    before = _state(db, world, case)
    if case.target is not None:
        assert before, f"the targeted {case.table} rows must exist (as superuser)"
    outcome = attempt(db, world, case.persona, case.statement)
    assert outcome == case.expect, f"{case.persona}: {case.statement}"
    after = _state(db, world, case)
    if case.expect in (0, DENIED, NOT_ALLOWED):
        assert after == before, "a refused write changed nothing"
    else:
        assert after != before, "an allowed write took effect"


def W(persona: str, name: str, statement: str, expect: int | str, table: str, target: str | None = None) -> Write:
    return Write(persona, statement, expect, table, target, name)


ME = "id = %(customer)s"
WRITES = [
    # profiles: own editable fields only; id and timestamps are not the user's
    W("customer", "update-own-profile",
      "update public.profiles set full_name = 'Casey C.', city = 'Toronto', phone = '+1 555 0111', "
      "timezone = 'America/Toronto' where id = %(customer)s", 1, "profiles", ME),
    W("customer", "update-counterpart-profile",
      "update public.profiles set full_name = 'x' where id = %(mechanic)s", 0, "profiles", "id = %(mechanic)s"),
    W("customer", "update-other-profile",
      "update public.profiles set full_name = 'x' where id = %(other_customer)s", 0, "profiles",
      "id = %(other_customer)s"),
    W("customer", "update-own-profile-id",
      "update public.profiles set id = gen_random_uuid() where id = %(customer)s", DENIED, "profiles", ME),
    W("customer", "update-own-profile-created_at",
      "update public.profiles set created_at = now() - interval '1 year' where id = %(customer)s", DENIED,
      "profiles", ME),
    W("customer", "insert-profile",
      "insert into public.profiles (id, full_name) values (%(outsider)s, 'x')", DENIED, "profiles"),
    W("customer", "delete-own-profile", "delete from public.profiles where id = %(customer)s", DENIED, "profiles", ME),
    W("anon", "update-profile", "update public.profiles set full_name = 'x' where id = %(customer)s", DENIED,
      "profiles", ME),
    W("service", "update-profile",
      "update public.profiles set full_name = 'Support edit' where id = %(customer)s", 1, "profiles", ME),
    # organizations: the workshop admin edits its workshop; members and others cannot; nobody creates one
    W("workshop_admin", "update-own-workshop",
      "update public.organizations set name = 'Bay Motors Ltd', city = 'Toronto' where id = %(workshop)s", 1,
      "organizations", "id = %(workshop)s"),
    W("workshop_admin", "update-other-workshop",
      "update public.organizations set name = 'x' where id = %(other_workshop)s", 0, "organizations",
      "id = %(other_workshop)s"),
    W("mechanic", "update-own-workshop-as-member",
      "update public.organizations set name = 'x' where id = %(workshop)s", 0, "organizations", "id = %(workshop)s"),
    W("customer", "update-workshop",
      "update public.organizations set name = 'x' where id = %(workshop)s", 0, "organizations", "id = %(workshop)s"),
    W("workshop_admin", "update-workshop-created_by",
      "update public.organizations set created_by = %(workshop_admin)s where id = %(workshop)s", DENIED,
      "organizations", "id = %(workshop)s"),
    W("workshop_admin", "insert-workshop", "insert into public.organizations (name) values ('New')", DENIED,
      "organizations"),
    W("customer", "insert-workshop", "insert into public.organizations (name) values ('New')", DENIED,
      "organizations"),
    W("workshop_admin", "delete-own-workshop", "delete from public.organizations where id = %(workshop)s", DENIED,
      "organizations", "id = %(workshop)s"),
    # organization_members: changed by admins' and our functions only
    W("workshop_admin", "insert-member",
      "insert into public.organization_members (organization_id, user_id, role) "
      "values (%(workshop)s, %(other_mechanic)s, 'mechanic')", DENIED, "organization_members"),
    W("customer", "join-workshop",
      "insert into public.organization_members (organization_id, user_id, role) "
      "values (%(workshop)s, %(customer)s, 'manager')", DENIED, "organization_members"),
    W("mechanic", "promote-self",
      "update public.organization_members set role = 'owner' where user_id = %(mechanic)s", DENIED,
      "organization_members", "user_id = %(mechanic)s"),
    W("workshop_admin", "remove-member",
      "delete from public.organization_members where user_id = %(mechanic)s", DENIED, "organization_members",
      "user_id = %(mechanic)s"),
    # mechanics: the mechanic edits its own directory fields, nothing else, nobody else's
    W("mechanic", "update-own-directory-fields",
      "update public.mechanics set display_name = 'Morgan M.', bio = 'Brakes and suspension', "
      "photo_url = 'https://example.test/m.jpg', years_experience = 12, specialties = '{brakes,suspension}', "
      "brand_specializations = '{Honda}', service_keywords = '{abs}', city = 'Toronto', postal_code = 'M5V 2T6', "
      "country = 'CA', timezone = 'America/Toronto' where id = %(mechanic)s", 1, "mechanics", "id = %(mechanic)s"),
    W("pending_mechanic", "update-own-directory-fields",
      "update public.mechanics set bio = 'Ten years at a dealer' where id = %(pending_mechanic)s", 1, "mechanics",
      "id = %(pending_mechanic)s"),
    W("mechanic", "update-other-mechanic",
      "update public.mechanics set display_name = 'x' where id = %(other_mechanic)s", 0, "mechanics",
      "id = %(other_mechanic)s"),
    W("customer", "update-mechanic",
      "update public.mechanics set display_name = 'x' where id = %(mechanic)s", 0, "mechanics", "id = %(mechanic)s"),
    W("pending_mechanic", "approve-self",
      "update public.mechanics set status = 'approved' where id = %(pending_mechanic)s", DENIED, "mechanics",
      "id = %(pending_mechanic)s"),
    W("customer", "become-mechanic",
      "insert into public.mechanics (id, display_name, status) values (%(customer)s, 'Casey', 'approved')", DENIED,
      "mechanics"),
    W("mechanic", "delete-self", "delete from public.mechanics where id = %(mechanic)s", DENIED, "mechanics",
      "id = %(mechanic)s"),
    W("anon", "update-mechanic", "update public.mechanics set display_name = 'x' where id = %(mechanic)s", DENIED,
      "mechanics", "id = %(mechanic)s"),
    W("mechanic", "update-directory-view",
      "update public.mechanic_directory set display_name = 'x' where id = %(mechanic)s", DENIED, "mechanics",
      "id = %(mechanic)s"),
    W("anon", "update-directory-view",
      "update public.mechanic_directory set display_name = 'x' where id = %(mechanic)s", DENIED, "mechanics",
      "id = %(mechanic)s"),
    # payout_accounts: Stripe state, written by the platform only
    W("mechanic", "insert-payout-account",
      "insert into public.payout_accounts (mechanic_id, stripe_account_id) values (%(mechanic)s, 'acct_new')", DENIED,
      "payout_accounts"),
    W("mechanic", "enable-own-payouts",
      "update public.payout_accounts set payouts_enabled = true where id = %(payout_mechanic)s", DENIED,
      "payout_accounts", "id = %(payout_mechanic)s"),
    W("workshop_admin", "repoint-workshop-payouts",
      "update public.payout_accounts set stripe_account_id = 'acct_evil' where id = %(payout_workshop)s", DENIED,
      "payout_accounts", "id = %(payout_workshop)s"),
    W("mechanic", "delete-own-payout-account",
      "delete from public.payout_accounts where id = %(payout_mechanic)s", DENIED, "payout_accounts",
      "id = %(payout_mechanic)s"),
    # service_plans: the catalog is the platform's
    W("customer", "update-plan-price", "update public.service_plans set price_cents = 0 where code = 'video15'",
      DENIED, "service_plans", "code = 'video15'"),
    W("admin", "update-plan-price", "update public.service_plans set price_cents = 0 where code = 'video15'",
      DENIED, "service_plans", "code = 'video15'"),
    W("anon", "update-plan-price", "update public.service_plans set price_cents = 0 where code = 'video15'",
      DENIED, "service_plans", "code = 'video15'"),
    W("customer", "insert-plan",
      "insert into public.service_plans (code, name, session_type, duration_type, minutes, price_cents) "
      "values ('gift', 'Gift', 'video', 'extended', 60, 0)", DENIED, "service_plans"),
    W("admin", "delete-plan", "delete from public.service_plans where code = 'micro'", DENIED, "service_plans",
      "code = 'micro'"),
    W("service", "update-plan-price", "update public.service_plans set price_cents = 3199 where code = 'video15'",
      1, "service_plans", "code = 'video15'"),
    # vehicles: the owner's, entirely
    W("customer", "insert-own-vehicle",
      "insert into public.vehicles (make, model, year, vin, mileage) values ('Ford', 'Focus', 2012, "
      "'1FADP3F20CL123456', 150000)", 1, "vehicles"),
    W("customer", "insert-vehicle-for-other",
      "insert into public.vehicles (owner_id, make, model, year) values (%(other_customer)s, 'Ford', 'Focus', 2012)",
      DENIED, "vehicles"),
    W("customer", "update-own-vehicle", "update public.vehicles set mileage = 90000 where id = %(vehicle)s", 1,
      "vehicles", "id = %(vehicle)s"),
    W("customer", "give-away-own-vehicle",
      "update public.vehicles set owner_id = %(other_customer)s where id = %(vehicle)s", DENIED, "vehicles",
      "id = %(vehicle)s"),
    W("customer", "delete-own-vehicle", "delete from public.vehicles where id = %(vehicle_spare)s", 1, "vehicles",
      "id = %(vehicle_spare)s"),
    W("customer", "update-other-vehicle", "update public.vehicles set mileage = 1 where id = %(other_vehicle)s", 0,
      "vehicles", "id = %(other_vehicle)s"),
    W("customer", "delete-other-vehicle", "delete from public.vehicles where id = %(other_vehicle)s", 0, "vehicles",
      "id = %(other_vehicle)s"),
    W("mechanic", "update-customer-vehicle", "update public.vehicles set mileage = 1 where id = %(vehicle)s", 0,
      "vehicles", "id = %(vehicle)s"),
    W("anon", "insert-vehicle", "insert into public.vehicles (make, model, year) values ('Ford', 'Focus', 2012)",
      DENIED, "vehicles"),
    # intakes: the customer creates them and edits them while new; status and ids are the platform's
    W("customer", "insert-own-intake",
      "insert into public.intakes (concern, vehicle_id, contact_email) values ('Battery drains overnight', "
      "%(vehicle)s, 'casey@example.test')", 1, "intakes"),
    W("customer", "insert-intake-with-status",
      "insert into public.intakes (concern, status) values ('Battery drains overnight', 'resolved')", DENIED,
      "intakes"),
    W("customer", "insert-intake-for-other",
      "insert into public.intakes (concern, customer_id) values ('Battery drains overnight', %(other_customer)s)",
      DENIED, "intakes"),
    W("customer", "update-own-new-intake",
      "update public.intakes set concern = 'Wipers streak and judder', contact_phone = '+1 555 0123' "
      "where id = %(intake_new)s", 1, "intakes", "id = %(intake_new)s"),
    W("customer", "update-own-in-progress-intake",
      "update public.intakes set concern = 'Something else entirely' where id = %(intake_accepted)s", 0, "intakes",
      "id = %(intake_accepted)s"),
    W("customer", "update-own-intake-status",
      "update public.intakes set status = 'resolved' where id = %(intake_new)s", DENIED, "intakes",
      "id = %(intake_new)s"),
    W("customer", "update-own-intake-id",
      "update public.intakes set id = gen_random_uuid() where id = %(intake_new)s", DENIED, "intakes",
      "id = %(intake_new)s"),
    W("customer", "update-own-intake-customer_id",
      "update public.intakes set customer_id = %(other_customer)s where id = %(intake_new)s", DENIED, "intakes",
      "id = %(intake_new)s"),
    W("other_customer", "update-customer-intake",
      "update public.intakes set concern = 'Hijacked concern' where id = %(intake_new)s", 0, "intakes",
      "id = %(intake_new)s"),
    W("mechanic", "update-assigned-intake",
      "update public.intakes set contact_email = 'm@example.test' where id = %(intake_accepted)s", 0, "intakes",
      "id = %(intake_accepted)s"),
    W("customer", "delete-own-intake", "delete from public.intakes where id = %(intake_new)s", DENIED, "intakes",
      "id = %(intake_new)s"),
    W("anon", "insert-intake", "insert into public.intakes (concern) values ('Battery drains overnight')", DENIED,
      "intakes"),
    # waiver_acceptances: the user's own, append-only
    # accepted through accept_waiver only: a client cannot choose its address or user agent
    W("customer", "insert-own-waiver",
      "insert into public.waiver_acceptances (waiver_version, ip_address, user_agent) "
      "values ('v1.1', '192.0.2.1', 'pytest')", DENIED, "waiver_acceptances"),
    W("customer", "insert-waiver-for-other",
      "insert into public.waiver_acceptances (user_id, waiver_version) values (%(other_customer)s, 'v1.1')", DENIED,
      "waiver_acceptances"),
    W("customer", "update-own-waiver",
      "update public.waiver_acceptances set waiver_version = 'v0' where id = %(waiver_customer)s", DENIED,
      "waiver_acceptances", "id = %(waiver_customer)s"),
    W("customer", "delete-own-waiver", "delete from public.waiver_acceptances where id = %(waiver_customer)s", DENIED,
      "waiver_acceptances", "id = %(waiver_customer)s"),
    W("anon", "insert-waiver", "insert into public.waiver_acceptances (waiver_version) values ('v1.1')", DENIED,
      "waiver_acceptances"),
    # chat_messages: participants of a waiting/live session, as themselves; never edited or deleted
    W("customer", "chat-in-waiting-session",
      "insert into public.chat_messages (session_id, content) values (%(s_accepted)s, 'Photo coming')", 1,
      "chat_messages"),
    W("mechanic", "chat-in-waiting-session",
      "insert into public.chat_messages (session_id, content) values (%(s_accepted)s, 'Thanks')", 1, "chat_messages"),
    W("other_customer", "chat-in-foreign-session",
      "insert into public.chat_messages (session_id, content) values (%(s_accepted)s, 'Spam')", DENIED,
      "chat_messages"),
    W("other_mechanic", "chat-in-foreign-session",
      "insert into public.chat_messages (session_id, content) values (%(s_accepted)s, 'Pick me')", DENIED,
      "chat_messages"),
    W("workshop_admin", "chat-in-workshop-session",
      "insert into public.chat_messages (session_id, content) values (%(s_accepted)s, 'Hello')", DENIED,
      "chat_messages"),
    W("admin", "chat-in-session",
      "insert into public.chat_messages (session_id, content) values (%(s_accepted)s, 'Hello')", DENIED,
      "chat_messages"),
    W("other_customer", "chat-in-own-pending-session",
      "insert into public.chat_messages (session_id, content) values (%(s_open)s, 'Anyone?')", DENIED,
      "chat_messages"),
    W("customer", "chat-in-own-cancelled-session",
      "insert into public.chat_messages (session_id, content) values (%(s_cancelled)s, 'Still there?')", DENIED,
      "chat_messages"),
    W("customer", "chat-as-the-mechanic",
      "insert into public.chat_messages (session_id, sender_id, content) "
      "values (%(s_accepted)s, %(mechanic)s, 'It is free')", DENIED, "chat_messages"),
    W("customer", "edit-own-chat",
      "update public.chat_messages set content = 'edited' where id = %(chat_customer)s", DENIED, "chat_messages",
      "id = %(chat_customer)s"),
    W("customer", "delete-own-chat", "delete from public.chat_messages where id = %(chat_customer)s", DENIED,
      "chat_messages", "id = %(chat_customer)s"),
    W("anon", "chat", "insert into public.chat_messages (session_id, content) values (%(s_accepted)s, 'Hi')", DENIED,
      "chat_messages"),
    # session_files: the same rule as chat
    W("customer", "file-in-waiting-session",
      "insert into public.session_files (session_id, file_name, file_size, content_type, storage_path) "
      "values (%(s_accepted)s, 'tyre.png', 10, 'image/png', 'sessions/' || %(s_accepted)s || '/tyre.png')", 1,
      "session_files"),
    W("mechanic", "file-in-waiting-session",
      "insert into public.session_files (session_id, file_name, file_size, content_type, storage_path) "
      "values (%(s_accepted)s, 'quote.pdf', 10, 'application/pdf', 'sessions/' || %(s_accepted)s || '/quote.pdf')",
      1, "session_files"),
    W("other_customer", "file-in-foreign-session",
      "insert into public.session_files (session_id, file_name, file_size, content_type, storage_path) "
      "values (%(s_accepted)s, 'x.png', 10, 'image/png', 'sessions/' || %(s_accepted)s || '/x.png')", DENIED,
      "session_files"),
    W("other_mechanic", "file-in-foreign-session",
      "insert into public.session_files (session_id, file_name, file_size, content_type, storage_path) "
      "values (%(s_accepted)s, 'x.png', 10, 'image/png', 'sessions/' || %(s_accepted)s || '/x.png')", DENIED,
      "session_files"),
    W("customer", "file-in-own-cancelled-session",
      "insert into public.session_files (session_id, file_name, file_size, content_type, storage_path) "
      "values (%(s_cancelled)s, 'x.png', 10, 'image/png', 'sessions/' || %(s_cancelled)s || '/x.png')", DENIED,
      "session_files"),
    W("customer", "file-as-the-mechanic",
      "insert into public.session_files (session_id, uploaded_by, file_name, file_size, content_type, storage_path) "
      "values (%(s_accepted)s, %(mechanic)s, 'x.png', 10, 'image/png', 'sessions/' || %(s_accepted)s || '/x.png')",
      DENIED, "session_files"),
    W("customer", "rename-own-file",
      "update public.session_files set file_name = 'renamed.jpg' where id = %(file_customer)s", DENIED,
      "session_files", "id = %(file_customer)s"),
    W("mechanic", "delete-session-file", "delete from public.session_files where id = %(file_customer)s", DENIED,
      "session_files", "id = %(file_customer)s"),
]


@pytest.mark.parametrize("case", WRITES, ids=str)
def test_write_per_persona(w: tuple[Db, RlsWorld], case: Write) -> None:
    db, world = w
    _check_write(db, world, case)


# Only the database's own functions (security definer, behind the RPCs and the private functions
# granted to service_role) write sessions, requests, offers, participants, events and commitments:
# every API role, service_role included, holds SELECT alone on these tables.
PLATFORM_WRITES = {
    "sessions": (
        "insert into public.sessions (customer_id, plan_code, session_type, duration_type, planned_minutes, "
        "price_cents) values (%(customer)s, 'free', 'chat', 'micro', 5, 0)",
        "update public.sessions set price_cents = 1 where id = %(s_accepted)s",
        "delete from public.sessions where id = %(s_accepted)s",
        "id = %(s_accepted)s",
    ),
    "session_requests": (
        "insert into public.session_requests (session_id, customer_id, plan_code, session_type, concern) "
        "values (%(s_cancelled)s, %(customer)s, 'free', 'chat', 'Brakes')",
        "update public.session_requests set mechanic_id = %(other_mechanic)s where id = %(r_open)s",
        "delete from public.session_requests where id = %(r_open)s",
        "id = %(r_open)s",
    ),
    "session_offers": (
        "insert into public.session_offers (request_id, mechanic_id) values (%(r_open)s, %(mechanic)s)",
        "update public.session_offers set status = 'accepted' where id = %(offer_declined)s",
        "delete from public.session_offers where id = %(offer_declined)s",
        "id = %(offer_declined)s",
    ),
    "session_participants": (
        "insert into public.session_participants (session_id, user_id, role) "
        "values (%(s_accepted)s, %(other_customer)s, 'customer')",
        "update public.session_participants set left_at = now() where session_id = %(s_accepted)s",
        "delete from public.session_participants where session_id = %(s_accepted)s",
        "session_id = %(s_accepted)s",
    ),
    "session_events": (
        "insert into public.session_events (session_id, entity, to_status, actor_role) "
        "values (%(s_accepted)s, 'session', 'completed', 'system')",
        "update public.session_events set reason = 'rewritten' where session_id = %(s_accepted)s",
        "delete from public.session_events where session_id = %(s_accepted)s",
        "session_id = %(s_accepted)s",
    ),
    "mechanic_commitments": (
        "insert into public.mechanic_commitments (mechanic_id, kind, status, during) values (%(mechanic)s, 'hold', "
        "'held', tstzrange(now() + interval '1 day', now() + interval '1 day 1 hour'))",
        "update public.mechanic_commitments set status = 'released' where id = %(commitment_mechanic)s",
        "delete from public.mechanic_commitments where id = %(commitment_mechanic)s",
        "id = %(commitment_mechanic)s",
    ),
}
PLATFORM_WRITE_CASES = [
    Write(persona, statement, DENIED, table, None if op == "insert" else target, f"{op}-{table}")
    for table, (insert, update, delete, target) in PLATFORM_WRITES.items()
    for op, statement in (("insert", insert), ("update", update), ("delete", delete))
    for persona in ("anon", "customer", "mechanic", "workshop_admin", "admin", "service")
]


@pytest.mark.parametrize("case", PLATFORM_WRITE_CASES, ids=str)
def test_platform_tables_are_written_by_functions_only(w: tuple[Db, RlsWorld], case: Write) -> None:
    db, world = w
    _check_write(db, world, case)


# A mechanic's standing, workshop and availability are set by admins and RPCs, never by itself.
MECHANIC_PROTECTED = {
    "status": "'suspended'", "approved_at": "now()", "rating_avg": "5", "rating_count": "500",
    "rating_sum": "2500", "rating_score": "5", "customers_served": "999",
    "releases_blocked_until": "null",  # a paused mechanic cannot lift its own pause
    "completed_sessions": "999", "is_brand_specialist": "true", "organization_id": "%(other_workshop)s",
    "account_type": "'individual_mechanic'", "is_available": "true", "can_accept_sessions": "false",
    "last_seen_at": "now()", "id": "gen_random_uuid()", "created_at": "now()",
}


@pytest.mark.parametrize("column", list(MECHANIC_PROTECTED))
def test_mechanic_cannot_set_protected_column(w: tuple[Db, RlsWorld], column: str) -> None:
    db, world = w
    statement = f"update public.mechanics set {column} = {MECHANIC_PROTECTED[column]} where id = %(mechanic)s"
    _check_write(db, world, Write("mechanic", statement, DENIED, "mechanics", "id = %(mechanic)s", column))


# -------------------------------------------------------------------------------------------------
# The rules that matter most, spelled out
# -------------------------------------------------------------------------------------------------
CONTACT_WORDS = ("email", "phone", "contact", "address", "postal", "city", "name")


def test_session_requests_hold_no_contact_columns(w: tuple[Db, RlsWorld]) -> None:
    db, _ = w
    columns = [r["column_name"] for r in db.all(
        "select column_name from information_schema.columns where table_schema = 'public' "
        "and table_name = 'session_requests'")]
    assert {"vehicle_make", "concern", "plan_code"} <= set(columns)
    assert [c for c in columns if any(word in c for word in CONTACT_WORDS)] == []


def test_mechanic_reads_customer_contact_only_while_live(w: tuple[Db, RlsWorld]) -> None:
    db, _ = w
    fresh = make_world(db)
    intake_q = "select contact_email, contact_phone, contact_name from public.intakes where id = %s"
    profile_q = "select full_name from public.profiles where id = %s"
    request_q = ("select plan_code, concern, vehicle_make, vehicle_model, vehicle_year, status "
                 "from public.session_requests where id = %s")
    # As the superuser: the intake (with contact) and both profiles exist.
    assert db.one(intake_q, (fresh.intake,)) == {
        "contact_email": "casey@example.test", "contact_phone": "+1 555 0100", "contact_name": "Casey Customer"}
    assert db.one(profile_q, (fresh.customer,)) == {"full_name": "Casey Customer"}
    assert db.one(profile_q, (fresh.mechanic,)) == {"full_name": "Morgan Mechanic"}
    assert db.scalar("select count(*) from public.sessions where id = %s", (fresh.session,)) == 1
    assert db.scalar("select count(*) from public.vehicles where id = %s", (fresh.vehicle,)) == 1

    for mechanic in (fresh.mechanic, fresh.other_mechanic):
        with db.as_user(mechanic):
            # The open request: what is needed to decide, and nothing to contact the customer with.
            assert db.one(request_q, (fresh.request,)) == {
                "plan_code": "free", "concern": "Grinding noise from the front brakes when stopping",
                "vehicle_make": "Honda", "vehicle_model": "Civic", "vehicle_year": 2018, "status": "pending"}
            assert db.all(intake_q, (fresh.intake,)) == []
            assert db.all(profile_q, (fresh.customer,)) == []
            assert db.all("select id from public.sessions where id = %s", (fresh.session,)) == []
            assert db.all("select id from public.vehicles where id = %s", (fresh.vehicle,)) == []

    accept(db, fresh.mechanic, fresh.request)
    with db.as_user(fresh.mechanic):
        # Accepted (waiting): it prepares from the request, it does not contact the customer yet.
        assert db.scalar("select status from public.sessions where id = %s", (fresh.session,)) == "waiting"
        assert db.one(request_q, (fresh.request,))["concern"].startswith("Grinding")
        assert db.all(intake_q, (fresh.intake,)) == []
        assert db.all(profile_q, (fresh.customer,)) == []
    go_live(db, fresh.session)
    with db.as_user(fresh.mechanic):
        # Live: the contact details are the mechanic's to use.
        assert db.one(intake_q, (fresh.intake,)) == {
            "contact_email": "casey@example.test", "contact_phone": "+1 555 0100", "contact_name": "Casey Customer"}
        assert db.one(profile_q, (fresh.customer,)) == {"full_name": "Casey Customer"}
    with db.as_user(fresh.customer):  # the customer sees who took it through the directory, never its profile
        assert db.all(profile_q, (fresh.mechanic,)) == []
        assert db.scalar("select display_name from public.mechanics where id = %s", (fresh.mechanic,)) \
            == "Morgan Mechanic"
    with db.as_user(fresh.other_mechanic):  # the others still do not; the request left their feed
        assert db.all(intake_q, (fresh.intake,)) == []
        assert db.all(profile_q, (fresh.customer,)) == []
        assert db.all(request_q, (fresh.request,)) == []
    finish(db, fresh.session)
    with db.as_user(fresh.mechanic):
        # an on-demand session ended: the window closed with it
        assert db.all(intake_q, (fresh.intake,)) == []
        assert db.all(profile_q, (fresh.customer,)) == []
    assert db.scalar("select count(*) from public.intakes where id = %s", (fresh.intake,)) == 1


def test_mechanic_never_reads_customer_contact_when_releasing(w: tuple[Db, RlsWorld]) -> None:
    db, _ = w
    fresh = make_world(db)
    accept(db, fresh.mechanic, fresh.request)
    with db.as_user(fresh.mechanic):
        assert db.all("select id from public.intakes where id = %s", (fresh.intake,)) == []
        assert db.rpc("cancel_request", p_request_id=fresh.request)["status"] == "pending"
        assert db.all("select id from public.intakes where id = %s", (fresh.intake,)) == []
        assert db.all("select id from public.profiles where id = %s", (fresh.customer,)) == []
        # back in the open feed, for the others: it released it, it cannot take it again
        assert db.scalar("select status from public.session_requests where id = %s", (fresh.request,)) == "pending"
        assert db.rpc_error("accept_request", p_request_id=fresh.request) == "AD121"
    assert db.scalar("select count(*) from public.intakes where id = %s", (fresh.intake,)) == 1
    assert db.scalar("select count(*) from public.profiles where id = %s", (fresh.customer,)) == 1


@pytest.mark.parametrize("persona", ["pending_mechanic", "customer", "workshop_admin"])
def test_only_approved_mechanics_see_the_open_feed(w: tuple[Db, RlsWorld], persona: str) -> None:
    db, world = w
    feed = "select count(*) from public.session_requests where status in ('pending', 'unattended')"
    assert db.scalar(feed) >= 1  # as the superuser: the open request exists
    with as_persona(db, world, persona):
        assert db.scalar(feed) == 0
    with as_persona(db, world, "other_mechanic"):
        assert db.scalar(feed) >= 1


def test_anon_reads_the_directory_columns_only(w: tuple[Db, RlsWorld]) -> None:
    db, world = w
    db.execute("update public.mechanics set postal_code = 'M5V 2T6' where id = %(mechanic)s", world.p)
    assert db.scalar("select count(*) from public.mechanics where id in (%(mechanic)s, %(pending_mechanic)s)",
                     world.p) == 2
    with db.as_anon():
        rows = db.all("select id, display_name, city, rating_avg, mechanic_type from public.mechanics "
                      "where id = any(%s)", ([world.p["mechanic"], world.p["pending_mechanic"]],))
        assert [r["id"] for r in rows] == [world.p["mechanic"]]
        for query in ("select postal_code from public.mechanics", "select * from public.mechanics",
                      "select approved_at from public.mechanics", "select can_accept_sessions from public.mechanics"):
            assert db.error(query).sqlstate == DENIED, query
        directory = db.all("select id, display_name from public.mechanic_directory order by display_name")
        assert {r["id"] for r in directory} >= {world.p["mechanic"], world.p["other_mechanic"]}
        assert world.p["pending_mechanic"] not in {r["id"] for r in directory}
        plans = {r["code"] for r in db.all("select code from public.service_plans")}
        assert ACTIVE_PLANS <= plans and "diagnostic" not in plans


@pytest.mark.parametrize("call", [
    "public.request_session('free', null)", "public.accept_request(null)", "public.decline_offer(null)",
    "public.cancel_request(null)", "public.start_session(null)", "public.end_session(null)",
    "public.set_online(true)", "public.heartbeat()", "public.admin_set_mechanic_status(null, null)",
    "public.admin_assign_request(null, null)", "public.admin_force_end_session(null, null)",
])
def test_anon_cannot_call_rpcs(w: tuple[Db, RlsWorld], call: str) -> None:
    db, _ = w
    with db.as_anon():
        assert db.error(f"select {call}").sqlstate == DENIED


def test_workshop_admin_sees_its_mechanics_and_their_sessions_only(w: tuple[Db, RlsWorld]) -> None:
    db, world = w
    p = world.p
    # superuser: the workshop has an approved and a pending mechanic; four sessions exist
    assert db.scalar("select count(*) from public.mechanics where organization_id = %(workshop)s "
                     "and status = 'pending'", p) == 1
    assert db.scalar("select count(*) from public.sessions where id in "
                     "(%(s_accepted)s, %(s_open)s, %(s_other_accepted)s, %(s_cancelled)s)", p) == 4
    assert db.scalar("select count(*) from public.intakes where id = %(intake_accepted)s", p) == 1
    assert db.scalar("select count(*) from public.profiles where id = %(customer)s", p) == 1
    with db.as_user(p["workshop_admin"]):
        roster = {r["id"]: r["status"] for r in db.all(
            "select id, status from public.mechanics where organization_id = %(workshop)s", p)}
        assert roster == {p["mechanic"]: "approved", p["workshop_pending"]: "pending"}
        sessions = {r["id"] for r in db.all("select id from public.sessions")}
        assert p["s_accepted"] in sessions
        assert not sessions & {p["s_open"], p["s_other_accepted"], p["s_cancelled"]}
        # its mechanic's contact stays private: no intake, no customer profile
        assert db.all("select id from public.intakes where id = %(intake_accepted)s", p) == []
        assert db.all("select id from public.profiles where id = %(customer)s", p) == []


def test_inactive_plans_are_visible_to_admins_only(w: tuple[Db, RlsWorld]) -> None:
    db, world = w
    db.execute("update public.service_plans set active = false where code = 'micro'")
    assert db.scalar("select count(*) from public.service_plans where code in ('micro', 'diagnostic')") == 2
    for persona in ("anon", "customer", "mechanic", "workshop_admin"):
        with as_persona(db, world, persona):
            assert db.all("select code from public.service_plans where code in ('micro', 'diagnostic')") == []
    for persona in ("admin", "service"):
        with as_persona(db, world, persona):
            assert db.scalar("select count(*) from public.service_plans where code in ('micro', 'diagnostic')") == 2
    db.execute("update public.service_plans set active = true where code = 'micro'")
    with db.as_anon():
        assert db.scalar("select count(*) from public.service_plans where code = 'micro'") == 1


def test_customer_creations_belong_to_the_customer(w: tuple[Db, RlsWorld]) -> None:
    db, world = w
    p = world.p
    with db.as_user(p["customer"]):
        vehicle = db.scalar("insert into public.vehicles (make, model, year) values ('Kia', 'Rio', 2020) returning id")
        intake = db.scalar("insert into public.intakes (concern, vehicle_id) values ('Rattle at idle', %s) "
                           "returning id", (vehicle,))
        waiver = db.rpc("accept_waiver", p_version="v1.0", p_adult=True)["waiver_id"]
    assert db.scalar("select owner_id from public.vehicles where id = %s", (vehicle,)) == p["customer"]
    assert db.one("select customer_id, status::text from public.intakes where id = %s", (intake,)) == {
        "customer_id": p["customer"], "status": "new"}
    assert db.scalar("select user_id from public.waiver_acceptances where id = %s", (waiver,)) == p["customer"]
    with db.as_user(p["other_customer"]):
        assert db.all("select id from public.vehicles where id = %s", (vehicle,)) == []
        assert db.all("select id from public.intakes where id = %s", (intake,)) == []


def test_chat_and_files_only_while_the_session_is_waiting_or_live(w: tuple[Db, RlsWorld]) -> None:
    db, world = w
    p = world.p
    chat = "insert into public.chat_messages (session_id, content) values (%(s_accepted)s, 'msg')"
    upload = ("insert into public.session_files (session_id, file_name, file_size, content_type, storage_path) "
              "values (%(s_accepted)s, 'f.png', 1, 'image/png', 'sessions/' || %(s_accepted)s || '/' || "
              "gen_random_uuid() || '.png')")
    count = "select count(*) from public.{} where session_id = %(s_accepted)s"
    start_both(db, p["s_accepted"])
    assert db.scalar("select status from public.sessions where id = %(s_accepted)s", p) == "live"
    for persona in ("customer", "mechanic"):
        assert attempt(db, world, persona, chat) == 1
        assert attempt(db, world, persona, upload) == 1
    with db.as_user(p["mechanic"]):
        db.rpc("end_session", p_session_id=p["s_accepted"])
    assert db.scalar("select status from public.sessions where id = %(s_accepted)s", p) == "completed"
    chats, files = db.scalar(count.format("chat_messages"), p), db.scalar(count.format("session_files"), p)
    for persona in ("customer", "mechanic"):
        assert attempt(db, world, persona, chat) == DENIED
        assert attempt(db, world, persona, upload) == DENIED
    assert (db.scalar(count.format("chat_messages"), p), db.scalar(count.format("session_files"), p)) == (chats, files)
    # the transcript stays readable to both
    for persona in ("customer", "mechanic"):
        with as_persona(db, world, persona):
            assert db.scalar(count.format("chat_messages"), p) == chats


def test_session_events_are_append_only_even_for_the_owner(w: tuple[Db, RlsWorld]) -> None:
    db, world = w
    p = world.p
    events = db.scalar("select count(*) from public.session_events where session_id = %(s_accepted)s", p)
    assert events >= 2
    # service_role has no write privilege at all (see test_platform_tables_are_written_by_functions_only);
    # the table owner (superuser here, `postgres` on hosted) is stopped by the append-only trigger.
    with db.as_service():
        assert db.error("update public.session_events set reason = 'x' where session_id = %(s_accepted)s",
                        p).sqlstate == DENIED
    assert db.persona == "postgres"
    for statement in ("update public.session_events set reason = 'rewritten' where session_id = %(s_accepted)s",
                      "delete from public.session_events where session_id = %(s_accepted)s",
                      "truncate public.session_events"):
        assert db.error(statement, p).sqlstate == NOT_ALLOWED, statement
    assert db.scalar("select count(*) from public.session_events where session_id = %(s_accepted)s", p) == events


def test_mechanic_loses_intake_when_its_session_is_cancelled(w: tuple[Db, RlsWorld]) -> None:
    """The mechanic's access to the customer's contact ends with its session, as for the profile.

    An admin cancels a waiting session (the mechanic did not show up): the intake goes back to
    `new`, the customer corrects the phone number and asks again, another mechanic takes it. The
    first mechanic must not keep reading the intake (contact_email, contact_phone) nor the profile:
    its cancelled session opens no contact window.
    """
    db, _ = w
    fresh = make_world(db)
    accept(db, fresh.mechanic, fresh.request)
    with db.as_user(fresh.admin):
        assert db.rpc("admin_force_end_session", p_session_id=fresh.session, p_reason="no-show")["status"] == "cancelled"
    with db.as_user(fresh.customer):
        assert db.execute("update public.intakes set contact_phone = '+1 555 0777' where id = %s",
                          (fresh.intake,)).rowcount == 1
    again = request_free(db, fresh.customer, intake=fresh.intake)
    accept(db, fresh.other_mechanic, again["request_id"])
    go_live(db, again["session_id"])
    # superuser: the intake exists, now served by the other mechanic
    assert db.scalar("select contact_phone from public.intakes where id = %s", (fresh.intake,)) == "+1 555 0777"
    with db.as_user(fresh.other_mechanic):
        assert db.scalar("select contact_phone from public.intakes where id = %s", (fresh.intake,)) == "+1 555 0777"
    with db.as_user(fresh.mechanic):
        assert db.all("select id from public.profiles where id = %s", (fresh.customer,)) == []
        assert db.all("select contact_email, contact_phone from public.intakes where id = %s", (fresh.intake,)) == []
