"""Vetting: an applicant sends its documents into its own private folder; only admins read them
(and so sign URLs for them); an admin approves (with the required documents), rejects (with the
reason) or asks for more; each decision is kept, emailed and audited."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest

from shared import email as mail
from shared.config import get_settings
from tests.support.factories import approve, make_admin, make_customer, make_mechanic
from tests.support.harness import Db
from tests.support.ops_vetting import PDF, doc_name, send_document, send_required

GOLDEN = Path(__file__).parents[1] / "support" / "golden" / "emails"


def _objects(db: Db, mechanic: uuid.UUID) -> int:
    return db.scalar(
        "select count(*) from storage.objects where bucket_id = 'mechanic-documents' and name like %s",
        (f"mechanics/{mechanic}/%",),
    )


def _insert_error(db: Db, user: uuid.UUID, name: str, metadata: dict | None, owner: uuid.UUID | None = None) -> str:
    with db.as_user(user):
        return db.error(
            "insert into storage.objects (bucket_id, name, owner_id, metadata)"
            " values ('mechanic-documents', %s, %s, %s::jsonb)",
            (name, str(owner or user), None if metadata is None else json.dumps(metadata)),
        ).sqlstate


def test_bucket_is_private_and_limited(db: Db) -> None:
    row = db.one(
        "select public, file_size_limit, allowed_mime_types from storage.buckets where id = 'mechanic-documents'"
    )
    assert row == {
        "public": False,
        "file_size_limit": 10485760,
        "allowed_mime_types": ["application/pdf", "image/jpeg", "image/png", "image/heic"],
    }


def test_applicant_sends_into_its_own_folder_only(db: Db) -> None:
    applicant = make_mechanic(db, approved=False, name="Ava Applicant")
    other = make_mechanic(db, approved=False, name="Otto Other")
    customer = make_customer(db)
    send_document(db, applicant, "licence")
    send_document(db, applicant, "certification", "ase.png", {"size": 5000, "mimetype": "image/png"})
    refused = [
        (applicant, doc_name(applicant, "licence", "big.pdf"), {"size": 10485761, "mimetype": "application/pdf"}),
        (applicant, doc_name(applicant, "licence", "zero.pdf"), {"size": 0, "mimetype": "application/pdf"}),
        (applicant, doc_name(applicant, "licence", "a.exe"), {"size": 10, "mimetype": "application/x-msdownload"}),
        (applicant, doc_name(applicant, "licence", "a.svg"), {"size": 10, "mimetype": "image/svg+xml"}),
        (applicant, doc_name(applicant, "passport"), PDF),  # unknown kind
        (applicant, f"mechanics/{applicant}/licence/deep/a.pdf", PDF),
        (applicant, f"mechanics/{applicant}/licence/../x.pdf", PDF),
        (applicant, "mechanics/not-a-uuid/licence/a.pdf", PDF),
        (applicant, f"elsewhere/{applicant}/licence/a.pdf", PDF),
        (other, doc_name(applicant, "insurance", "forged.pdf"), PDF),  # another mechanic's folder
        (customer, doc_name(customer, "licence"), PDF),  # not a mechanic
    ]
    for user, name, metadata in refused:
        assert _insert_error(db, user, name, metadata) == "42501", name
    # owner_id must be the caller
    assert _insert_error(db, applicant, doc_name(applicant, "insurance", "x.pdf"), PDF, owner=other) == "42501"
    assert _objects(db, applicant) == 2 and _objects(db, other) == 0


def test_document_count_is_capped(db: Db) -> None:
    applicant = make_mechanic(db, approved=False)
    db.execute("update private.settings set value = '2' where key = 'vetting.max_documents'")
    send_document(db, applicant, "licence", "a.pdf")
    send_document(db, applicant, "licence", "b.pdf")
    assert _insert_error(db, applicant, doc_name(applicant, "licence", "c.pdf"), PDF) == "42501"
    assert _objects(db, applicant) == 2


def test_only_admins_read_documents_the_applicant_lists_names_and_kinds(db: Db) -> None:
    applicant = make_mechanic(db, approved=False)
    other, customer, admin = make_mechanic(db), make_customer(db), make_admin(db)
    send_required(db, applicant)
    assert _objects(db, applicant) == 2  # they exist
    sql = "select count(*) from storage.objects where bucket_id = 'mechanic-documents'"
    for user in (applicant, other, customer):
        with db.as_user(user):
            assert db.scalar(sql) == 0  # cannot read (nor so sign a URL for) them back
    with db.as_role("anon", {"role": "anon"}):
        assert db.scalar(sql) == 0
    with db.as_user(admin):
        assert db.scalar(sql) == 2
        file = db.rpc("admin_mechanic_vetting", p_mechanic_id=applicant)
    assert {d["path"] for d in file["documents"]} == {doc_name(applicant, "licence"), doc_name(applicant, "insurance")}
    assert file["missing_documents"] == [] and file["vetting_state"] == "submitted"
    with db.as_user(applicant):
        mine = db.rpc("my_vetting")
        # nobody updates one through the API (no update policy)
        assert (
            db.execute("update storage.objects set name = name || 'x' where bucket_id = 'mechanic-documents'").rowcount
            == 0
        )
    assert _objects(db, applicant) == 2
    assert sorted((d["kind"], d["file"]) for d in mine["documents"]) == [
        ("insurance", "scan.pdf"),
        ("licence", "scan.pdf"),
    ]
    assert set(mine["documents"][0]) == {"kind", "file", "sent_at"}
    assert mine["status"] == "pending" and mine["required_documents"] == ["licence", "insurance"]
    for user in (applicant, other, customer):
        with db.as_user(user):
            assert db.rpc_error("admin_mechanic_vetting", p_mechanic_id=applicant) == "AD003"
    with db.as_user(customer):
        assert db.rpc_error("my_vetting") == "AD003"


def test_approval_requires_the_listed_documents(db: Db) -> None:
    applicant, admin = make_mechanic(db, approved=False), make_admin(db)
    send_document(db, applicant, "licence")
    with db.as_user(admin):
        assert (
            db.rpc_error("admin_review_mechanic", p_mechanic_id=applicant, p_decision="approved", p_note=None)
            == "AD260"
        )
    assert db.scalar("select status::text from public.mechanics where id = %s", (applicant,)) == "pending"
    assert db.scalar("select count(*) from public.mechanic_vetting_decisions") == 0
    # a certification does not stand in for insurance; a file in another kind's folder neither
    send_document(db, applicant, "certification")
    with db.as_user(admin):
        assert (
            db.rpc_error("admin_review_mechanic", p_mechanic_id=applicant, p_decision="approved", p_note=None)
            == "AD260"
        )
    send_document(db, applicant, "insurance")
    with db.as_user(admin):
        out = db.rpc("admin_review_mechanic", p_mechanic_id=applicant, p_decision="approved", p_note="Welcome")
    assert out["status"] == "approved"
    assert db.scalar("select approved_at is not null from public.mechanics where id = %s", (applicant,))
    # the setting decides the list
    second = make_mechanic(db, approved=False)
    db.execute("""update private.settings set value = '["licence"]' where key = 'vetting.required_documents'""")
    send_document(db, second, "licence")
    with db.as_user(admin):
        assert (
            db.rpc("admin_review_mechanic", p_mechanic_id=second, p_decision="approved", p_note=None)["status"]
            == "approved"
        )


def test_decisions_history_email_and_audit(db: Db) -> None:
    applicant, admin = make_mechanic(db, approved=False, name="Ava Applicant"), make_admin(db)
    send_document(db, applicant, "licence")
    with db.as_user(admin):
        more = db.rpc(
            "admin_review_mechanic", p_mechanic_id=applicant, p_decision="needs_more_info", p_note="Proof of insurance"
        )
    assert more["status"] == "pending" and more["vetting_state"] == "needs_more_info"
    send_document(db, applicant, "insurance")  # asked for more: it may still send
    with db.as_user(admin):
        db.rpc(
            "admin_review_mechanic", p_mechanic_id=applicant, p_decision="rejected", p_note="The licence has expired"
        )
    assert db.scalar("select status::text from public.mechanics where id = %s", (applicant,)) == "pending"
    # rejected: it sends nothing more
    assert _insert_error(db, applicant, doc_name(applicant, "licence", "new.pdf"), PDF) == "42501"
    with db.as_user(applicant):
        mine = db.rpc("my_vetting")
        rows = db.all("select decision, note from public.mechanic_vetting_decisions order by id")
        assert db.error("select decided_by from public.mechanic_vetting_decisions").sqlstate == "42501"
        assert (
            db.error(
                "insert into public.mechanic_vetting_decisions (mechanic_id, decision) values (%s, 'approved')",
                (applicant,),
            ).sqlstate
            == "42501"
        )
    assert mine["vetting_state"] == "rejected"
    assert [(d["decision"], d["note"]) for d in mine["decisions"]] == [
        ("needs_more_info", "Proof of insurance"),
        ("rejected", "The licence has expired"),
    ]
    assert all(set(d) == {"decision", "note", "decided_at"} for d in mine["decisions"])
    assert rows == [
        {"decision": "needs_more_info", "note": "Proof of insurance"},
        {"decision": "rejected", "note": "The licence has expired"},
    ]
    # another mechanic and a customer see none of them; the admin sees who decided
    for user in (make_mechanic(db), make_customer(db)):
        with db.as_user(user):
            assert db.scalar("select count(*) from public.mechanic_vetting_decisions") == 0
    with db.as_user(admin):
        file = db.rpc("admin_mechanic_vetting", p_mechanic_id=applicant)
    assert {d["decided_by"] for d in file["decisions"]} == {str(admin)}
    # an admin may reconsider a rejection
    with db.as_user(admin):
        assert (
            db.rpc("admin_review_mechanic", p_mechanic_id=applicant, p_decision="approved", p_note=None)["status"]
            == "approved"
        )
    emails = db.all(
        "select payload from private.outbox where payload ->> 'template' = 'vetting_decision'"
        " and payload ->> 'user_id' = %s order by id",
        (str(applicant),),
    )
    assert [(e["payload"]["data"]["decision"], e["payload"]["data"]["note"]) for e in emails] == [
        ("needs_more_info", "Proof of insurance"),
        ("rejected", "The licence has expired"),
        ("approved", None),
    ]
    audit = db.all(
        "select admin_id, action, reason, data ->> 'decision' as decision from private.admin_actions"
        " where subject_id = %s order by id",
        (applicant,),
    )
    assert audit == [
        {"admin_id": admin, "action": "mechanic.review", "reason": "Proof of insurance", "decision": "needs_more_info"},
        {"admin_id": admin, "action": "mechanic.review", "reason": "The licence has expired", "decision": "rejected"},
        {"admin_id": admin, "action": "mechanic.review", "reason": None, "decision": "approved"},
    ]
    # approved: it may renew a document
    send_document(db, applicant, "insurance", "2027.pdf")
    # an approved mechanic is not reviewed again (suspension is the tool)
    with db.as_user(admin):
        assert (
            db.rpc_error("admin_review_mechanic", p_mechanic_id=applicant, p_decision="rejected", p_note="x") == "AD261"
        )


def test_review_is_admin_only_and_input_is_checked(db: Db) -> None:
    applicant = make_mechanic(db, approved=False)
    send_required(db, applicant)
    admin = make_admin(db)
    for user in (applicant, make_mechanic(db), make_customer(db)):
        with db.as_user(user):
            assert (
                db.rpc_error("admin_review_mechanic", p_mechanic_id=applicant, p_decision="approved", p_note=None)
                == "AD003"
            )
    with db.as_user(admin):
        assert (
            db.rpc_error("admin_review_mechanic", p_mechanic_id=applicant, p_decision="rejected", p_note="  ")
            == "AD001"
        )  # a rejection carries its reason
        assert (
            db.rpc_error("admin_review_mechanic", p_mechanic_id=applicant, p_decision="needs_more_info", p_note=None)
            == "AD001"
        )
        assert (
            db.rpc_error("admin_review_mechanic", p_mechanic_id=applicant, p_decision="APPROVED", p_note=None)
            == "AD001"
        )
    assert db.scalar("select status::text from public.mechanics where id = %s", (applicant,)) == "pending"
    assert db.scalar("select count(*) from public.mechanic_vetting_decisions") == 0
    assert db.scalar("select count(*) from private.admin_actions where subject_id = %s", (applicant,)) == 0


def test_suspended_mechanic_sends_no_documents(db: Db) -> None:
    mechanic = make_mechanic(db)
    approve(db, mechanic, "suspended")
    assert _insert_error(db, mechanic, doc_name(mechanic, "licence"), PDF) == "42501"


CONTEXT = {"name": "Ava <b>Applicant</b>", "app_url": "https://app.autodoctor.test", "session": None}


@pytest.mark.parametrize(
    "decision,note",
    [("approved", None), ("rejected", "The licence has <expired>"), ("needs_more_info", "Proof of insurance")],
)
def test_vetting_email_matches_golden_files(decision: str, note: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_URL", "https://app.autodoctor.test")
    get_settings.cache_clear()
    rendered = mail.render("vetting_decision", {**CONTEXT, "decision": decision, "note": note})
    get_settings.cache_clear()
    for ext, content in (("html", rendered.html), ("txt", rendered.text)):
        path = GOLDEN / f"vetting_decision.{decision}.{ext}"
        full = f"Subject: {rendered.subject}\n\n{content}"
        if os.environ.get("UPDATE_GOLDEN"):
            path.write_text(full)
        assert full == path.read_text(), f"{path} differs (UPDATE_GOLDEN=1 to accept a deliberate change)"
    if note and "<" in note:
        assert "&lt;expired&gt;" in rendered.html and "<expired>" in rendered.text
