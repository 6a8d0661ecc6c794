"""Media before the match: photos and short videos under intakes/<intake_id>/ in the private
intake-files bucket. Who adds and deletes them (the customer while the intake is new or pending),
the limits (bucket, policy, count per intake, also under a race), and who reads them: the
customer, the mechanics the open request is offered to, the mechanic of the session the intake
feeds, admins; nobody else. Every "cannot" proves the hidden rows exist."""

from __future__ import annotations

import json
import threading
import uuid

import psycopg

from shared.errors import error_code
from tests.support.delivery import deliver
from tests.support.factories import accept, make_admin, make_customer, make_intake, make_mechanic
from tests.support.harness import Db
from tests.support.journey_summary import (
    JPEG,
    delete_object,
    open_request,
    put_intake_file,
    visible_objects,
)
from tests.support.personas import call_as


def _count_all(db: Db, prefix: str) -> int:
    return int(db.scalar("select count(*) from storage.objects where name like %s", (prefix + "%",)))


def test_bucket_is_private_with_size_and_type_limits(db: Db) -> None:
    row = db.one("select public, file_size_limit, allowed_mime_types from storage.buckets where id = 'intake-files'")
    assert row is not None and row["public"] is False
    assert row["file_size_limit"] == 52428800
    assert sorted(row["allowed_mime_types"]) == [
        "image/heic",
        "image/jpeg",
        "image/png",
        "image/webp",
        "video/mp4",
        "video/quicktime",
    ]


def test_customer_adds_and_deletes_while_new_or_pending(db: Db) -> None:
    customer = make_customer(db)
    intake = make_intake(db, customer)  # new
    assert put_intake_file(db, customer, intake, "a.jpg") is None
    assert put_intake_file(db, customer, intake, "clip.mov", {"size": 9_000_000, "mimetype": "video/quicktime"}) is None
    assert put_intake_file(db, customer, intake, "no-metadata-yet.jpg", None) is None
    assert visible_objects(db, customer, f"intakes/{intake}/") == [
        f"intakes/{intake}/a.jpg",
        f"intakes/{intake}/clip.mov",
        f"intakes/{intake}/no-metadata-yet.jpg",
    ]
    assert delete_object(db, customer, f"intakes/{intake}/no-metadata-yet.jpg") == 1
    assert _count_all(db, f"intakes/{intake}/") == 2


def test_pending_intake_takes_files_and_a_taken_one_does_not(db: Db) -> None:
    live = open_request(db)
    assert db.scalar("select status from public.intakes where id = %s", (live.intake,)) == "pending"
    assert put_intake_file(db, live.customer, live.intake, "pending.jpg") is None
    accept(db, live.mechanic, live.request)
    assert db.scalar("select status from public.intakes where id = %s", (live.intake,)) == "in_progress"
    err = put_intake_file(db, live.customer, live.intake, "late.jpg")
    assert err is not None and err.sqlstate == "42501"
    assert delete_object(db, live.customer, f"intakes/{live.intake}/pending.jpg") == 0
    assert _count_all(db, f"intakes/{live.intake}/") == 1  # the file is still there


def test_wrong_type_size_owner_shape_or_intake_is_refused(db: Db) -> None:
    customer, other = make_customer(db), make_customer(db, "Olive Other")
    intake = make_intake(db, customer)
    refused = [
        (customer, f"intakes/{intake}/doc.pdf", {"size": 1000, "mimetype": "application/pdf"}),
        (customer, f"intakes/{intake}/huge.mp4", {"size": 52428801, "mimetype": "video/mp4"}),
        (customer, f"intakes/{intake}/zero.jpg", {"size": 0, "mimetype": "image/jpeg"}),
        (customer, f"intakes/{intake}/text-size.jpg", {"size": "big", "mimetype": "image/jpeg"}),
        (customer, f"intakes/{intake}/deep/nested.jpg", JPEG),
        (customer, "intakes/not-a-uuid/a.jpg", JPEG),
        (customer, f"elsewhere/{intake}/a.jpg", JPEG),
        (other, f"intakes/{intake}/intruder.jpg", JPEG),  # another customer's intake
    ]
    for user, name, metadata in refused:
        with db.as_user(user):
            err = db.error(
                "insert into storage.objects (bucket_id, name, owner_id, metadata) "
                "values ('intake-files', %s, %s, %s::jsonb)",
                (name, str(user), None if metadata is None else json.dumps(metadata)),
            )
        assert err.sqlstate == "42501", name
    # owner_id must be the caller
    with db.as_user(customer):
        err = db.error(
            "insert into storage.objects (bucket_id, name, owner_id, metadata) values ('intake-files', %s, %s, null)",
            (f"intakes/{intake}/x.jpg", str(other)),
        )
    assert err.sqlstate == "42501"
    assert put_intake_file(db, None, intake, "anon.jpg") is not None  # anon
    assert _count_all(db, f"intakes/{intake}/") == 0


def test_files_per_intake_cap(db: Db) -> None:
    db.execute("update private.settings set value = '2' where key = 'media.max_files_per_intake'")
    customer = make_customer(db)
    intake = make_intake(db, customer)
    assert put_intake_file(db, customer, intake, "1.jpg") is None
    assert put_intake_file(db, customer, intake, "2.jpg") is None
    err = put_intake_file(db, customer, intake, "3.jpg")
    assert err is not None and err.sqlstate == "42501"
    assert delete_object(db, customer, f"intakes/{intake}/1.jpg") == 1
    assert put_intake_file(db, customer, intake, "3.jpg") is None  # a place freed
    assert _count_all(db, f"intakes/{intake}/") == 2


def test_no_update_of_an_intake_file(db: Db) -> None:
    customer = make_customer(db)
    intake = make_intake(db, customer)
    assert put_intake_file(db, customer, intake, "a.jpg") is None
    with db.as_user(customer):
        changed = db.execute(
            "update storage.objects set metadata = '{\"size\": 1}' where name = %s", (f"intakes/{intake}/a.jpg",)
        ).rowcount
    assert changed == 0
    assert (
        db.scalar("select metadata ->> 'size' from storage.objects where name = %s", (f"intakes/{intake}/a.jpg",))
        == "120000"
    )


def test_who_reads_the_files_of_an_open_request(db: Db) -> None:
    """Per persona, for an open request without a preferred mechanic (offered to every approved
    mechanic), then taken by one mechanic."""
    live = open_request(db)
    prefix = f"intakes/{live.intake}/"
    assert (
        put_intake_file(db, live.customer, live.intake, "noise.mp4", {"size": 5_000_000, "mimetype": "video/mp4"})
        is None
    )
    assert put_intake_file(db, live.customer, live.intake, "wheel.jpg") is None
    files = [prefix + "noise.mp4", prefix + "wheel.jpg"]
    other_customer = make_customer(db, "Olive Other")
    offered = live.mechanic
    taker = make_mechanic(db, name="Taylor Taker")
    pending_mechanic = make_mechanic(db, approved=False, name="Pat Pending")
    admin = make_admin(db)
    assert _count_all(db, prefix) == 2  # the hidden rows exist
    assert visible_objects(db, live.customer, prefix) == files
    assert visible_objects(db, offered, prefix) == files
    assert visible_objects(db, admin, prefix) == files
    assert visible_objects(db, other_customer, prefix) == []
    assert visible_objects(db, pending_mechanic, prefix) == []  # not approved: not offered
    assert visible_objects(db, None, prefix) == []
    # only the customer deletes: everyone else's delete lets nothing go
    for user in (offered, other_customer, pending_mechanic, admin, None):
        assert delete_object(db, user, files[0]) == 0, user
    assert _count_all(db, prefix) == 2
    # nor adds a file to someone else's intake
    for user in (offered, other_customer, admin):
        assert put_intake_file(db, user, live.intake, "planted.jpg") is not None, user
    # the request RPC answers what Storage allows
    with db.as_user(offered):
        assert [f["name"] for f in db.rpc("list_intake_files", p_request_id=live.request)] == files
    # taken by another mechanic: the first no longer sees the request, nor its files
    accept(db, taker, live.request)
    assert visible_objects(db, offered, prefix) == []
    with db.as_user(offered):
        assert db.rpc_error("list_intake_files", p_request_id=live.request) == "AD004"
    # the files follow the intake into the session: its mechanic and the customer read them
    assert visible_objects(db, taker, prefix) == files
    assert visible_objects(db, live.customer, prefix) == files
    with db.as_user(taker):
        assert [f["name"] for f in db.rpc("list_intake_files", p_session_id=live.session)] == files
        assert db.rpc("list_intake_files", p_request_id=live.request)[0]["mimetype"] == "video/mp4"
    with db.as_user(live.customer):
        assert len(db.rpc("list_intake_files", p_session_id=live.session)) == 2
    with db.as_user(other_customer):
        assert db.rpc_error("list_intake_files", p_session_id=live.session) == "AD004"
        assert db.rpc_error("list_intake_files", p_request_id=live.request) == "AD004"
    # and still after the session completed
    deliver(db, live.session)
    assert visible_objects(db, taker, prefix) == files
    assert visible_objects(db, offered, prefix) == []
    assert _count_all(db, prefix) == 2


def test_preferred_window_hides_the_files_from_the_others(db: Db) -> None:
    """During a preferred mechanic's window the request is offered to that mechanic only: the
    files follow the request's own visibility."""
    preferred = make_mechanic(db, name="Preferred")
    live = open_request(db, p_preferred_mechanic_id=preferred)
    prefix = f"intakes/{live.intake}/"
    assert put_intake_file(db, live.customer, live.intake) is None
    assert visible_objects(db, preferred, prefix) == [prefix + "brakes.jpg"]
    assert visible_objects(db, live.mechanic, prefix) == []  # not offered yet
    with db.as_user(live.mechanic):
        assert db.rpc_error("list_intake_files", p_request_id=live.request) == "AD004"
    assert _count_all(db, prefix) == 1
    # the window ends: now offered to everyone, files included
    db.execute(
        "update public.session_requests set broadcast_at = now() - interval '1 second' where id = %s", (live.request,)
    )
    assert visible_objects(db, live.mechanic, prefix) == [prefix + "brakes.jpg"]


def test_a_cancelled_request_hides_the_files_from_mechanics(db: Db) -> None:
    live = open_request(db)
    prefix = f"intakes/{live.intake}/"
    assert put_intake_file(db, live.customer, live.intake) is None
    with db.as_user(live.customer):
        db.rpc("cancel_request", p_request_id=live.request)
    assert visible_objects(db, live.mechanic, prefix) == []
    assert visible_objects(db, live.customer, prefix) == [prefix + "brakes.jpg"]
    assert _count_all(db, prefix) == 1


def test_list_intake_files_input(db: Db) -> None:
    live = open_request(db)
    with db.as_user(live.customer):
        assert db.rpc_error("list_intake_files") == "AD001"
        assert db.rpc_error("list_intake_files", p_request_id=live.request, p_session_id=live.session) == "AD001"
        assert db.rpc_error("list_intake_files", p_request_id=uuid.uuid4()) == "AD004"
        assert db.rpc("list_intake_files", p_request_id=live.request) == []
    with db.as_anon():
        assert db.error("select public.list_intake_files(%s)", (live.request,)).sqlstate == "42501"


def test_two_uploads_at_once_cannot_both_take_the_last_place(fresh_url: str) -> None:
    with psycopg.connect(fresh_url) as conn:
        conn.execute("select 1")
        d = Db(conn)
        d.execute("update private.settings set value = '1' where key = 'media.max_files_per_intake'")
        customer = make_customer(d)
        intake = make_intake(d, customer)
        conn.commit()
    conns = [psycopg.connect(fresh_url) for _ in range(2)]
    barrier = threading.Barrier(2)
    results: list[tuple[str, object]] = [("err", "not run")] * 2

    def run(k: int) -> None:
        barrier.wait()
        results[k] = call_as(
            conns[k],
            customer,
            "insert into storage.objects (bucket_id, name, owner_id, metadata) "
            'values (\'intake-files\', %s, %s, \'{"size": 10, "mimetype": "image/png"}\') '
            "returning 1",
            (f"intakes/{intake}/{k}.png", str(customer)),
        )

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for c in conns:
        c.close()
    assert sorted(r[0] for r in results) == ["err", "ok"], results
    assert [r[1] for r in results if r[0] == "err"] == ["42501"]
    with psycopg.connect(fresh_url) as conn:
        assert (
            conn.execute(
                "select count(*) from storage.objects where name like %s", (f"intakes/{intake}/%",)
            ).fetchone()[0]
            == 1
        )


def test_error_code_of_a_refused_upload_is_the_rls_one(db: Db) -> None:
    customer = make_customer(db)
    intake = make_intake(db, customer)
    err = put_intake_file(db, customer, intake, "a.exe", {"size": 10, "mimetype": "application/x-msdownload"})
    assert err is not None and error_code(err) == "42501"
