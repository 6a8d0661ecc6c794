"""The platform shim behaves like hosted Supabase where our SQL can tell the difference."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from shared.dev.migrate import apply_shim, connect, is_supabase, recreate_database, shim_chunks
from tests.support.harness import Db


@pytest.fixture
def warnings(db: Db) -> Iterator[list[str]]:
    """The WARNING notices the server sends on the test's connection."""
    seen: list[str] = []

    def handler(diag: psycopg.errors.Diagnostic) -> None:
        if diag.severity_nonlocalized == "WARNING":
            seen.append(diag.message_primary or "")

    db.conn.add_notice_handler(handler)
    yield seen
    db.conn.remove_notice_handler(handler)


# ---------------------------------------------------------------------------------------------
# auth.uid() / role() / email() / jwt()
# ---------------------------------------------------------------------------------------------
def _auth(db: Db) -> dict:
    return db.one("select auth.uid() as uid, auth.role() as role, auth.email() as email, auth.jwt() as jwt")


def test_auth_functions_read_request_jwt_claims(db: Db) -> None:
    user = uuid.uuid4()
    claims = {"sub": str(user), "role": "authenticated", "email": "a@example.test", "app_metadata": {"x": 1}}
    db.execute("select set_config('request.jwt.claims', %s, true)", (json.dumps(claims),))
    assert _auth(db) == {"uid": user, "role": "authenticated", "email": "a@example.test", "jwt": claims}


def test_auth_functions_without_claims_are_null(db: Db) -> None:
    db.execute("select set_config('request.jwt.claims', '', true)")
    assert _auth(db) == {"uid": None, "role": None, "email": None, "jwt": None}


def test_auth_functions_as_each_persona(db: Db) -> None:
    user = db.make_user("persona@example.test")
    with db.as_user(user):
        assert _auth(db)["uid"] == user
        assert _auth(db)["role"] == "authenticated"
        assert _auth(db)["email"] == "persona@example.test"
        assert db.scalar("select current_user") == "authenticated"
    with db.as_anon():
        assert _auth(db)["uid"] is None
        assert _auth(db)["role"] == "anon"
    with db.as_service():
        assert _auth(db)["role"] == "service_role"
        assert db.scalar("select current_user") == "service_role"


def test_legacy_per_claim_settings_take_precedence(db: Db) -> None:
    legacy, modern = uuid.uuid4(), uuid.uuid4()
    db.execute(
        "select set_config('request.jwt.claims', %s, true), set_config('request.jwt.claim.sub', %s, true),"
        " set_config('request.jwt.claim.role', 'service_role', true),"
        " set_config('request.jwt.claim.email', 'legacy@example.test', true)",
        (json.dumps({"sub": str(modern), "role": "authenticated", "email": "new@example.test"}), str(legacy)),
    )
    assert _auth(db)["uid"] == legacy
    assert _auth(db)["role"] == "service_role"
    assert _auth(db)["email"] == "legacy@example.test"
    # an empty legacy setting falls through to request.jwt.claims
    db.execute("select set_config('request.jwt.claim.sub', '', true)")
    assert _auth(db)["uid"] == modern


def test_auth_jwt_prefers_legacy_request_jwt_claim(db: Db) -> None:
    db.execute(
        "select set_config('request.jwt.claim', '{\"role\": \"legacy\"}', true),"
        " set_config('request.jwt.claims', '{\"role\": \"modern\"}', true)"
    )
    assert db.scalar("select auth.jwt()") == {"role": "legacy"}


def test_empty_leftover_after_a_committed_transaction(fresh_url: str) -> None:
    user = uuid.uuid4()
    with psycopg.connect(fresh_url, autocommit=True) as conn:
        with conn.transaction():
            conn.execute(
                "select set_config('request.jwt.claims', %s, true), set_config('request.jwt.claim.sub', %s, true)",
                (json.dumps({"sub": str(user), "role": "authenticated"}), str(user)),
            )
            assert conn.execute("select auth.uid()").fetchone()[0] == user
        # The placeholders stay defined as '' for the rest of the session, as under PostgREST.
        with conn.transaction():
            leftovers = conn.execute(
                "select current_setting('request.jwt.claims', true), current_setting('request.jwt.claim.sub', true)"
            ).fetchone()
            assert leftovers == ("", "")
            row = conn.execute("select auth.uid(), auth.role(), auth.email(), auth.jwt()").fetchone()
            assert row == (None, None, None, None)


# ---------------------------------------------------------------------------------------------
# realtime.send / topic / broadcast_changes
# ---------------------------------------------------------------------------------------------
def test_send_adds_an_id_when_missing(db: Db) -> None:
    db.execute("select realtime.send('{\"a\": 1}', 'ev', 'room:1', true)")
    row = db.one("select id, payload, event, topic, private, extension from realtime.messages where topic = 'room:1'")
    assert row["payload"] == {"a": 1, "id": str(row["id"])}
    assert (row["event"], row["private"], row["extension"]) == ("ev", True, "broadcast")


def test_send_keeps_an_existing_id(db: Db) -> None:
    db.execute("select realtime.send('{\"id\": \"mine\", \"a\": 2}', 'ev', 'room:2', false)")
    row = db.one("select payload, private from realtime.messages where topic = 'room:2'")
    assert row == {"payload": {"id": "mine", "a": 2}, "private": False}


def test_send_defaults_to_private(db: Db) -> None:
    db.execute("select realtime.send('{}', 'ev', 'room:3')")
    assert db.scalar("select private from realtime.messages where topic = 'room:3'") is True


def test_send_lands_in_todays_utc_partition(db: Db) -> None:
    db.execute("set local time zone 'UTC'")  # hosted sessions run in UTC, as the Realtime server assumes
    db.execute("select realtime.send('{}', 'ev', 'room:partition')")
    partition, expected = db.one(
        "select tableoid::regclass::text as partition,"
        " 'realtime.messages_' || to_char((now() at time zone 'utc')::date, 'YYYY_MM_DD') as expected"
        " from realtime.messages where topic = 'room:partition'"
    ).values()
    assert partition == expected


def test_send_sets_the_topic_for_the_rest_of_the_transaction(db: Db) -> None:
    assert db.scalar("select realtime.topic()") is None
    db.execute("select realtime.send('{}', 'ev', 'room:topic')")
    assert db.scalar("select realtime.topic()") == "room:topic"
    assert db.scalar("select current_setting('realtime.topic')") == "room:topic"


def test_send_never_raises(db: Db, warnings: list[str]) -> None:
    before = db.scalar("select count(*) from realtime.messages")
    db.execute("select realtime.send('{}', 'ev', null)")  # would violate topic not null
    assert db.scalar("select count(*) from realtime.messages") == before
    assert any(w.startswith("ErrorSendingBroadcastMessage") for w in warnings), warnings


def test_send_without_insert_permission_is_a_warning(db: Db, warnings: list[str]) -> None:
    """Runs with the caller's privileges: RLS (no insert policy) loses the message, quietly."""
    user = db.make_user()
    with db.as_user(user):
        db.execute("select realtime.send('{}', 'ev', 'room:rls')")
    assert db.scalar("select count(*) from realtime.messages where topic = 'room:rls'") == 0
    assert any("row-level security" in w for w in warnings), warnings


def test_broadcast_changes_payload_shape(db: Db) -> None:
    db.execute("create table public.bc_items (id int primary key, label text)")
    db.execute(
        """
        create function public.tg_bc_items__broadcast() returns trigger language plpgsql as $$
        begin
          perform realtime.broadcast_changes('items:' || coalesce(new.id, old.id), tg_op, tg_op,
                                             tg_table_name, tg_table_schema, new, old);
          return null;
        end $$
        """
    )
    db.execute(
        "create trigger _100_broadcast after insert or update or delete on public.bc_items"
        " for each row execute function public.tg_bc_items__broadcast()"
    )
    db.execute("insert into public.bc_items values (1, 'a')")
    db.execute("update public.bc_items set label = 'b'")
    db.execute("delete from public.bc_items")
    rows = db.all(
        "select event, topic, private, extension, payload from realtime.messages"
        " where topic = 'items:1' order by inserted_at, payload ->> 'operation' desc"
    )
    by_op = {r["event"]: r for r in rows}
    assert set(by_op) == {"INSERT", "UPDATE", "DELETE"}
    assert all(r["private"] is True and r["extension"] == "broadcast" for r in rows)
    common = {"table": "bc_items", "schema": "public"}
    assert by_op["INSERT"]["payload"] == {
        **common, "operation": "INSERT", "record": {"id": 1, "label": "a"}, "old_record": None,
        "id": by_op["INSERT"]["payload"]["id"],
    }
    assert by_op["UPDATE"]["payload"] == {
        **common, "operation": "UPDATE", "record": {"id": 1, "label": "b"}, "old_record": {"id": 1, "label": "a"},
        "id": by_op["UPDATE"]["payload"]["id"],
    }
    assert by_op["DELETE"]["payload"] == {
        **common, "operation": "DELETE", "record": None, "old_record": {"id": 1, "label": "b"},
        "id": by_op["DELETE"]["payload"]["id"],
    }


# ---------------------------------------------------------------------------------------------
# Realtime private-channel authorization
# ---------------------------------------------------------------------------------------------
ROOM_POLICY = (
    "create policy select_own_room on realtime.messages for select to authenticated"
    " using ((select realtime.topic()) = 'room:' || (select auth.uid())::text and extension = 'broadcast')"
)


def test_receive_follows_the_select_policy(db: Db) -> None:
    owner, other = db.make_user(), db.make_user()
    topic = f"room:{owner}"
    db.execute(ROOM_POLICY)
    assert db.can_receive(owner, topic)
    assert not db.can_receive(other, topic)
    assert not db.can_receive(None, topic)
    assert not db.can_receive(owner, topic, extension="presence")
    assert not db.can_receive(owner, f"room:{other}")
    # The probe rows exist: the superuser sees what it inserts, and what realtime.send inserts.
    with db.conn.transaction(force_rollback=True):
        db.conn.execute("insert into realtime.messages (topic, extension, private) values (%s, 'broadcast', true)",
                        (topic,))
        assert db.conn.execute("select count(*) from realtime.messages where topic = %s", (topic,)).fetchone()[0] == 1
    db.execute("select realtime.send('{}', 'ev', %s)", (topic,))
    assert db.scalar("select count(*) from realtime.messages where topic = %s", (topic,)) == 1
    with db.as_user(other):
        assert db.scalar("select count(*) from realtime.messages where topic = %s", (topic,)) == 0


def test_nobody_receives_without_a_policy(db: Db) -> None:
    owner = db.make_user()
    assert not db.can_receive(owner, f"room:{owner}")


def test_send_needs_an_insert_policy(db: Db) -> None:
    owner, other = db.make_user(), db.make_user()
    topic = f"room:{owner}"
    db.execute(ROOM_POLICY)
    assert not db.can_send(owner, topic)
    db.execute(
        "create policy insert_own_room on realtime.messages for insert to authenticated"
        " with check ((select realtime.topic()) = 'room:' || (select auth.uid())::text and extension = 'broadcast')"
    )
    assert db.can_send(owner, topic)
    assert not db.can_send(other, topic)
    assert not db.can_send(None, topic)


# ---------------------------------------------------------------------------------------------
# Grants: the 2026 hosted defaults plus the baseline's deny-by-default for functions
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("persona", ["as_anon", "as_service"])
def test_new_public_table_is_invisible_until_granted(db: Db, persona: str) -> None:
    db.execute("create table public.ungranted (id int primary key)")
    db.execute("insert into public.ungranted values (1)")
    with getattr(db, persona)():
        assert db.error("select * from public.ungranted").sqlstate == "42501"
    # the hidden row exists
    assert db.scalar("select count(*) from public.ungranted") == 1
    # hosted leaves only these table privileges to the API roles
    privileges = db.one(
        "select has_table_privilege('authenticated', 'public.ungranted', 'select') as sel,"
        " has_table_privilege('authenticated', 'public.ungranted', 'insert') as ins,"
        " has_table_privilege('authenticated', 'public.ungranted', 'truncate') as trunc,"
        " has_table_privilege('authenticated', 'public.ungranted', 'references') as refs,"
        " has_table_privilege('authenticated', 'public.ungranted', 'trigger') as trig"
    )
    assert privileges == {"sel": False, "ins": False, "trunc": True, "refs": True, "trig": True}


def test_new_public_table_is_invisible_to_authenticated(db: Db) -> None:
    user = db.make_user()
    db.execute("create table public.ungranted (id int primary key)")
    with db.as_user(user):
        assert db.error("select * from public.ungranted").sqlstate == "42501"


def test_granted_public_table_is_readable(db: Db) -> None:
    user = db.make_user()
    db.execute("create table public.granted (id int primary key)")
    db.execute("insert into public.granted values (7)")
    db.execute("grant select on public.granted to anon, authenticated, service_role")
    with db.as_user(user):
        assert db.scalar("select id from public.granted") == 7
    with db.as_anon():
        assert db.scalar("select id from public.granted") == 7
    # service_role bypasses RLS (but not grants); authenticated does not
    db.execute("alter table public.granted enable row level security")
    with db.as_service():
        assert db.scalar("select id from public.granted") == 7
    with db.as_user(user):
        assert db.scalar("select count(*) from public.granted") == 0


def test_new_sequence_keeps_only_update(db: Db) -> None:
    db.execute("create sequence public.some_seq")
    row = db.one(
        "select has_sequence_privilege('anon', 'public.some_seq', 'update') as upd,"
        " has_sequence_privilege('anon', 'public.some_seq', 'usage') as usage"
    )
    assert row == {"upd": True, "usage": False}


def test_new_public_function_is_not_executable_until_granted(db: Db) -> None:
    user = db.make_user()
    db.execute("create function public.answer() returns int language sql as 'select 42'")
    with db.as_anon():
        assert db.error("select public.answer()").sqlstate == "42501"
    with db.as_user(user):
        assert db.error("select public.answer()").sqlstate == "42501"
    assert db.scalar("select public.answer()") == 42  # it works for its owner
    db.execute("grant execute on function public.answer() to authenticated")
    with db.as_user(user):
        assert db.scalar("select public.answer()") == 42
    with db.as_anon():
        assert db.error("select public.answer()").sqlstate == "42501"


def test_new_private_function_is_not_executable_by_public(db: Db) -> None:
    db.execute("create function private.helper() returns int language sql as 'select 1'")
    assert db.scalar("select has_function_privilege('anon', 'private.helper()', 'execute')") is False
    assert db.scalar("select has_function_privilege('authenticated', 'private.helper()', 'execute')") is False


# ---------------------------------------------------------------------------------------------
# storage
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "folders", "filename", "extension"),
    [
        ("a/b/c.txt", ["a", "b"], "c.txt", "txt"),
        ("c.tar.gz", [], "c.tar.gz", "gz"),
        ("noext", [], "noext", "noext"),
        ("dir/", ["dir"], "", ""),
        ("single.png", [], "single.png", "png"),
        ("user-1/avatar", ["user-1"], "avatar", "avatar"),
    ],
)
def test_storage_path_functions(db: Db, name: str, folders: list[str], filename: str, extension: str) -> None:
    row = db.one(
        "select storage.foldername(%(n)s) as f, storage.filename(%(n)s) as n, storage.extension(%(n)s) as e",
        {"n": name},
    )
    assert row == {"f": folders, "n": filename, "e": extension}


def _bucket_with_object(db: Db) -> None:
    db.execute("insert into storage.buckets (id, name) values ('docs', 'docs')")
    db.execute("insert into storage.objects (bucket_id, name, owner_id) values ('docs', 'u1/report.pdf', 'u1')")


def test_path_tokens_are_generated(db: Db) -> None:
    _bucket_with_object(db)
    assert db.scalar("select path_tokens from storage.objects where name = 'u1/report.pdf'") == ["u1", "report.pdf"]


KEY = {"storage.objects": "bucket_id", "storage.buckets": "id"}


@pytest.mark.parametrize("table", ["storage.objects", "storage.buckets"])
def test_direct_delete_from_storage_is_blocked(db: Db, table: str) -> None:
    _bucket_with_object(db)
    err = db.error(f"delete from {table} where {KEY[table]} = 'docs'")
    assert err.sqlstate == "42501"
    assert "Storage API" in (err.diag.message_primary or "")
    assert db.scalar(f"select count(*) from {table} where {KEY[table]} = 'docs'") == 1
    db.execute("select set_config('storage.allow_delete_query', 'false', true)")
    assert db.error(f"delete from {table} where {KEY[table]} = 'docs'").sqlstate == "42501"


def test_delete_allowed_when_the_storage_api_says_so(db: Db) -> None:
    _bucket_with_object(db)
    db.execute("select set_config('storage.allow_delete_query', 'true', true)")
    db.execute("delete from storage.objects where bucket_id = 'docs'")
    db.execute("delete from storage.buckets where id = 'docs'")
    assert db.scalar("select count(*) from storage.objects where bucket_id = 'docs'") == 0
    assert db.scalar("select count(*) from storage.buckets where id = 'docs'") == 0


def test_storage_tables_have_rls_and_no_policy(db: Db) -> None:
    user = db.make_user()
    _bucket_with_object(db)
    with db.as_user(user):
        assert db.scalar("select count(*) from storage.objects where bucket_id = 'docs'") == 0
        err = db.error("insert into storage.objects (bucket_id, name) values ('docs', 'x')")
        assert err.sqlstate == "42501"


# ---------------------------------------------------------------------------------------------
# Roles, auth.users, realtime partitions
# ---------------------------------------------------------------------------------------------
def test_roles_and_their_attributes(db: Db) -> None:
    rows = {
        r["rolname"]: r
        for r in db.all(
            "select rolname, rolcanlogin, rolinherit, rolbypassrls, rolsuper from pg_roles"
            " where rolname in ('anon', 'authenticated', 'service_role', 'authenticator')"
        )
    }
    expected = {
        "anon": (False, True, False),
        "authenticated": (False, True, False),
        "service_role": (False, True, True),
        "authenticator": (True, False, False),
    }
    assert {k: (v["rolcanlogin"], v["rolinherit"], v["rolbypassrls"]) for k, v in rows.items()} == expected
    assert not any(v["rolsuper"] for v in rows.values())
    for role in ("anon", "authenticated", "service_role"):
        for member in ("authenticator", "postgres"):
            assert db.scalar("select pg_has_role(%s, %s, 'member')", (member, role)), (member, role)
    for admin in ("supabase_auth_admin", "supabase_storage_admin", "supabase_realtime_admin"):
        assert db.scalar("select rolcanlogin from pg_roles where rolname = %s", (admin,)) is False


def test_platform_schemas_are_owned_by_their_admins(db: Db) -> None:
    owners = dict(
        db.conn.execute(
            "select c.oid::regclass::text, pg_get_userbyid(c.relowner) from pg_class c"
            " where c.oid in ('auth.users'::regclass, 'storage.objects'::regclass, 'storage.buckets'::regclass,"
            " 'realtime.messages'::regclass)"
        ).fetchall()
    )
    assert owners == {
        "auth.users": "supabase_auth_admin",
        "storage.objects": "supabase_storage_admin",
        "storage.buckets": "supabase_storage_admin",
        "realtime.messages": "supabase_realtime_admin",
    }


def test_confirmed_at_is_the_earliest_confirmation(db: Db) -> None:
    user = db.make_user(phone="+15550001")
    db.execute(
        "update auth.users set email_confirmed_at = '2026-01-02T00:00Z', phone_confirmed_at = '2026-01-01T00:00Z'"
        " where id = %s", (user,),
    )
    assert str(db.scalar("select confirmed_at at time zone 'utc' from auth.users where id = %s", (user,))) == (
        "2026-01-01 00:00:00"
    )
    db.execute("update auth.users set phone_confirmed_at = null where id = %s", (user,))
    assert str(db.scalar("select confirmed_at at time zone 'utc' from auth.users where id = %s", (user,))) == (
        "2026-01-02 00:00:00"
    )
    db.execute("update auth.users set email_confirmed_at = null where id = %s", (user,))
    assert db.scalar("select confirmed_at from auth.users where id = %s", (user,)) is None
    assert db.error("update auth.users set confirmed_at = now() where id = %s", (user,)).sqlstate == "428C9"


def test_auth_users_is_hidden_from_the_api(db: Db) -> None:
    user = db.make_user()
    with db.as_user(user):
        assert db.error("select * from auth.users").sqlstate == "42501"


def test_realtime_messages_is_partitioned_by_day(db: Db) -> None:
    strategy, key = db.one(
        "select p.partstrat, a.attname from pg_partitioned_table p"
        " join pg_attribute a on a.attrelid = p.partrelid and a.attnum = p.partattrs[0]"
        " where p.partrelid = 'realtime.messages'::regclass"
    ).values()
    assert (strategy, key) == ("r", "inserted_at")
    missing = db.all(
        "select d::date as day from generate_series((now() at time zone 'utc')::date - 1,"
        " (now() at time zone 'utc')::date + 3, interval '1 day') d"
        " where to_regclass('realtime.messages_' || to_char(d, 'YYYY_MM_DD')) is null"
    )
    assert missing == []
    assert db.scalar(
        "select count(*) from pg_inherits where inhparent = 'realtime.messages'::regclass"
    ) >= 5
    assert db.scalar("select count(*) from pg_partitioned_table where partdefid <> 0"
                     " and partrelid = 'realtime.messages'::regclass") == 0  # no default partition


def test_ensure_realtime_partitions_creates_missing_days_once(db: Db) -> None:
    future = "(now() at time zone 'utc')::date + 30"
    assert db.scalar(f"select platform_shim.ensure_realtime_partitions(3, {future})") == 5
    assert db.scalar(f"select platform_shim.ensure_realtime_partitions(3, {future})") == 0
    assert db.scalar(f"select platform_shim.ensure_realtime_partitions(4, {future})") == 1
    name = db.scalar(f"select 'realtime.messages_' || to_char({future} + 2, 'YYYY_MM_DD')")
    assert db.scalar("select pg_get_userbyid(relowner) from pg_class where oid = %s::regclass", (name,)) == (
        "supabase_realtime_admin"
    )
    db.execute(
        f"insert into realtime.messages (topic, extension, inserted_at) values ('later', 'broadcast', {future} + 2)"
    )
    assert db.scalar("select tableoid::regclass::text from realtime.messages where topic = 'later'") == name
    assert db.scalar(
        "select has_function_privilege('authenticated', 'platform_shim.ensure_realtime_partitions(int,date)',"
        " 'execute')"
    ) is False


def test_apply_shim_on_a_migrated_database_creates_nothing(fresh_url: str) -> None:
    with connect(fresh_url) as conn:
        before = conn.execute("select count(*) from pg_class").fetchone()[0]
        assert apply_shim(conn) == []
        assert conn.execute("select count(*) from pg_class").fetchone()[0] == before


@pytest.fixture
def empty_db(server_url: str) -> Iterator[str]:
    name = f"adshim_{uuid.uuid4().hex[:12]}"
    recreate_database(server_url, name)
    yield urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
    with connect(server_url) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def test_apply_shim_on_a_plain_database_creates_every_absent_object(empty_db: str) -> None:
    with connect(empty_db) as conn:
        roles = {r for (r,) in conn.execute("select rolname from pg_roles")}  # cluster-wide
        expected = [f"{kind} {obj}" for kind, obj, _ in shim_chunks() if kind != "role" or obj not in roles]
        assert apply_shim(conn) == expected
        assert conn.execute("select to_regclass('realtime.messages_' || to_char((now() at time zone 'utc')::date,"
                            " 'YYYY_MM_DD')) is not null").fetchone()[0]
        assert apply_shim(conn) == []


def test_apply_shim_does_nothing_on_a_supabase_database(empty_db: str) -> None:
    with connect(empty_db) as conn:
        conn.execute("create schema auth")  # as on Supabase: the platform's schemas exist, the shim never ran
        assert is_supabase(conn)
        assert apply_shim(conn) == []
        schemas = {n for (n,) in conn.execute("select nspname from pg_namespace")}
        assert not schemas & {"platform_shim", "storage", "realtime", "extensions"}
        assert conn.execute("select to_regclass('auth.users')").fetchone()[0] is None
