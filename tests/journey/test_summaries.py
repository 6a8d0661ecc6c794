"""The structured summary: drafts from the moment the session is live, one submit after it ended
within summaries.submit_window, corrections as new versions, what each persona reads, the JSON
validated in the database (one coded error naming the field, nothing written), end_session's notes
as a draft's findings, the summary_delivered email (golden files) and the summary_ready event, and
the abuses: another mechanic or the customer writing, two submits at once, a late submit, a
cancelled session, another session's photos."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from shared import email as mail
from shared.config import get_settings
from tests.support.delivery import start_both, take_part
from tests.support.factories import accept, make_admin, make_customer, make_mechanic
from tests.support.harness import Db
from tests.support.journey_summary import Live, live_session, open_request, put_intake_file, put_session_file
from tests.support.personas import race

GOLDEN = Path(__file__).parents[1] / "support" / "golden" / "emails"

FULL = {
    "findings": "  Front pads at 2 mm; rotors scored.  ",
    "steps_taken": ["Listened to the noise on video", "Checked the pad thickness"],
    "parts": [
        {"name": "Front brake pads", "part_number": "BP-1234", "estimated_cost_cents": 8999},
        {"name": "Front rotors", "part_number": None, "estimated_cost_cents": 15000},
        {"name": "Brake fluid"},
    ],
    "next_steps": ["Replace pads and rotors this week"],
    "urgency": "urgent",
}


def save(db: Db, user: uuid.UUID, session: Any, summary: Any) -> Any:
    with db.as_user(user):
        return db.rpc("save_summary", p_session_id=session, p_summary=summary)


def save_error(db: Db, user: uuid.UUID | None, session: Any, summary: Any) -> str:
    with db.as_anon() if user is None else db.as_user(user):
        return db.rpc_error("save_summary", p_session_id=session, p_summary=summary)


def submit(db: Db, user: uuid.UUID, session: Any) -> Any:
    with db.as_user(user):
        return db.rpc("submit_summary", p_session_id=session)


def submit_error(db: Db, user: uuid.UUID, session: Any) -> str:
    with db.as_user(user):
        return db.rpc_error("submit_summary", p_session_id=session)


def end(db: Db, live: Live, notes: str | None = None) -> None:
    with db.as_user(live.mechanic):
        out = db.rpc("end_session", p_session_id=live.session, p_notes=notes)
    assert out["status"] == "completed"


def rows(db: Db, session: Any) -> list[dict[str, Any]]:
    return db.all(
        "select version, status, findings from public.session_summaries where session_id = %s order by version",
        (session,),
    )


def summary_emails(db: Db, session: Any) -> list[dict[str, Any]]:
    return [
        r["payload"]
        for r in db.all(
            "select payload from private.outbox where kind = 'email.send' and payload ->> 'template' = 'summary_delivered'"
            " and payload ->> 'session_id' = %s order by id",
            (str(session),),
        )
    ]


def shift_end(db: Db, session: Any, ago: dt.timedelta) -> None:
    """The session ended `ago` before now (its start moves with it)."""
    db.execute(
        "update public.sessions set started_at = started_at - %(a)s, ended_at = now() - %(a)s where id = %(s)s",
        {"a": ago, "s": session},
    )


# ------------------------------------------------------------------------------------------------
# drafts, submit, corrections
# ------------------------------------------------------------------------------------------------
def test_draft_while_live_then_submit_after_the_end(db: Db) -> None:
    live = live_session(db)
    first = save(db, live.mechanic, live.session, {"findings": "Pads worn"})
    assert first["version"] == 1 and first["status"] == "draft" and first["urgency"] == "none"
    again = save(db, live.mechanic, live.session, FULL)
    assert again["id"] == first["id"] and again["version"] == 1  # the one draft, updated
    assert again["findings"] == "Front pads at 2 mm; rotors scored."  # trimmed
    assert again["parts"][2] == {"name": "Brake fluid", "part_number": None, "estimated_cost_cents": None}
    assert submit_error(db, live.mechanic, live.session) == "AD208"  # still live
    end(db, live)
    assert summary_emails(db, live.session) == []  # nothing emailed at completion
    done = submit(db, live.mechanic, live.session)
    assert done["status"] == "submitted" and done["submitted_at"] is not None and done["version"] == 1
    assert rows(db, live.session) == [
        {"version": 1, "status": "submitted", "findings": "Front pads at 2 mm; rotors scored."}
    ]
    [mail_payload] = summary_emails(db, live.session)
    data = mail_payload["data"]["summary"]
    assert mail_payload["user_id"] == str(live.customer)
    assert data["parts_total"] == "239.99 USD" and data["parts"][0]["estimated_cost"] == "89.99 USD"
    assert data["parts"][2]["estimated_cost"] is None and data["urgency"] == "urgent"
    assert data["corrected"] is False and data["photo_count"] == 0
    event = db.one(
        "select payload, private from realtime.messages where topic = %s and event = 'summary_ready'",
        (f"session:{live.session}",),
    )
    assert event is not None and event["private"] is True
    assert {k: v for k, v in event["payload"].items() if k != "id"} == {
        "session_id": str(live.session),
        "summary_id": done["id"],
        "version": 1,
        "urgency": "urgent",
    }
    # submitting again with no new draft
    assert submit_error(db, live.mechanic, live.session) == "AD208"
    assert len(summary_emails(db, live.session)) == 1


def test_correction_is_a_new_version_the_customer_sees_with_history(db: Db) -> None:
    live = live_session(db)
    save(db, live.mechanic, live.session, FULL)
    end(db, live)
    v1 = submit(db, live.mechanic, live.session)
    corrected = save(db, live.mechanic, live.session, {**FULL, "urgency": "unsafe_to_drive"})
    assert corrected["version"] == 2 and corrected["status"] == "draft"
    with db.as_user(live.customer):
        before = db.rpc("get_session_summary", p_session_id=live.session)
    assert before["latest"]["version"] == 1 and before["draft"] is None  # the draft is the mechanic's
    v2 = submit(db, live.mechanic, live.session)
    assert v2["version"] == 2 and v2["urgency"] == "unsafe_to_drive"
    with db.as_user(live.customer):
        after = db.rpc("get_session_summary", p_session_id=live.session)
        db.rpc("get_session_summary", p_session_id=live.session)
    assert after["latest"]["id"] == v2["id"] and [h["version"] for h in after["history"]] == [2, 1]
    assert after["history"][1]["id"] == v1["id"] and after["history"][1]["urgency"] == "urgent"
    emails = summary_emails(db, live.session)
    assert [e["data"]["summary"]["version"] for e in emails] == [1, 2]
    assert emails[1]["data"]["summary"]["corrected"] is True
    # the customer's views: once per submitted version (v1, then v2; the second read of v2 adds nothing)
    views = db.all(
        "select subject_id, data from public.crm_interactions where kind = 'summary_viewed'"
        " and session_id = %s order by id",
        (live.session,),
    )
    assert [(v["subject_id"], v["data"]["version"]) for v in views] == [
        (uuid.UUID(v1["id"]), 1),
        (uuid.UUID(v2["id"]), 2),
    ]
    # the mechanic reads every version and its draft; reading records nothing
    save(db, live.mechanic, live.session, {**FULL, "findings": "v3 in progress"})
    with db.as_user(live.mechanic):
        mine = db.rpc("get_session_summary", p_session_id=live.session)
    assert mine["draft"]["version"] == 3 and mine["latest"]["version"] == 2
    assert (
        db.scalar(
            "select count(*) from public.crm_interactions where kind = 'summary_viewed' and session_id = %s",
            (live.session,),
        )
        == 2
    )


def test_journey_hook_runs_on_submit(db: Db) -> None:
    db.execute("create temp table hook_calls (session_id uuid, summary_id uuid)")
    db.execute("""create or replace function private.journey_on_summary_submitted(p_session_id uuid, p_summary_id uuid)
                  returns void language plpgsql security definer set search_path = '' as $$
                  begin insert into pg_temp.hook_calls values (p_session_id, p_summary_id); end $$""")
    live = live_session(db)
    save(db, live.mechanic, live.session, FULL)
    end(db, live)
    done = submit(db, live.mechanic, live.session)
    assert db.all("select * from pg_temp.hook_calls") == [
        {"session_id": live.session, "summary_id": uuid.UUID(done["id"])}
    ]


def test_end_session_notes_become_the_draft_findings(db: Db) -> None:
    live = live_session(db)
    save(db, live.mechanic, live.session, FULL)
    end(db, live, notes="Pads at 2 mm: replace them this week.")
    assert (
        db.scalar("select mechanic_notes from public.sessions where id = %s", (live.session,))
        == "Pads at 2 mm: replace them this week."
    )
    [row] = db.all(
        "select version, status, findings, parts from public.session_summaries where session_id = %s", (live.session,)
    )
    assert row["findings"] == "Pads at 2 mm: replace them this week." and row["status"] == "draft"
    assert len(row["parts"]) == 3  # the rest of the draft is kept
    assert summary_emails(db, live.session) == []  # a client that keeps a draft submits it itself
    # a customer's end leaves no summary
    third = live_session(db)
    with db.as_user(third.customer):
        db.rpc("end_session", p_session_id=third.session, p_notes="customer's words")
    assert rows(db, third.session) == []
    assert summary_emails(db, third.session) == []


def test_end_session_notes_alone_are_delivered_at_the_end(db: Db) -> None:
    """A client that only knows end_session(p_notes) keeps what it had: the notes reach the customer
    when the session ends, as version 1, and the mechanic may still correct them."""
    other = live_session(db)
    end(db, other, notes="Loose battery clamp.")
    assert rows(db, other.session) == [{"version": 1, "status": "submitted", "findings": "Loose battery clamp."}]
    [mail] = summary_emails(db, other.session)
    assert mail["user_id"] == str(other.customer)
    assert mail["data"]["summary"]["findings"] == "Loose battery clamp."
    # a correction is a new version, sent again
    save(db, other.mechanic, other.session, {"findings": "Loose battery clamp; terminal cleaned."})
    assert submit(db, other.mechanic, other.session)["version"] == 2
    assert len(summary_emails(db, other.session)) == 2
    # without notes nothing is created or sent
    quiet = live_session(db)
    end(db, quiet)
    assert rows(db, quiet.session) == [] and summary_emails(db, quiet.session) == []


def test_window_after_the_end(db: Db) -> None:
    live = live_session(db)
    save(db, live.mechanic, live.session, FULL)
    end(db, live)
    shift_end(db, live.session, dt.timedelta(hours=23, minutes=59))
    assert save(db, live.mechanic, live.session, FULL)["version"] == 1  # still inside
    shift_end(db, live.session, dt.timedelta(hours=24, minutes=1))
    assert submit_error(db, live.mechanic, live.session) == "AD207"
    assert save_error(db, live.mechanic, live.session, FULL) == "AD207"
    assert rows(db, live.session)[0]["status"] == "draft"  # nothing submitted
    assert summary_emails(db, live.session) == []
    # the setting decides
    db.execute("update private.settings set value = '\"48 hours\"' where key = 'summaries.submit_window'")
    assert submit(db, live.mechanic, live.session)["status"] == "submitted"


def test_submit_needs_findings(db: Db) -> None:
    live = live_session(db)
    save(db, live.mechanic, live.session, {"steps_taken": ["Looked"]})
    end(db, live)
    with db.as_user(live.mechanic):
        with pytest.raises(psycopg.Error) as info:
            db.rpc("submit_summary", p_session_id=live.session)
    assert info.value.sqlstate == "AD205" and "findings" in str(info.value)
    assert rows(db, live.session)[0]["status"] == "draft"


# ------------------------------------------------------------------------------------------------
# who may write: abuse
# ------------------------------------------------------------------------------------------------
def test_only_the_sessions_mechanic_writes(db: Db) -> None:
    live = live_session(db)
    other_mechanic, other_customer, admin = make_mechanic(db), make_customer(db), make_admin(db)
    assert save_error(db, other_mechanic, live.session, FULL) == "AD004"
    assert save_error(db, other_customer, live.session, FULL) == "AD004"
    assert save_error(db, admin, live.session, FULL) == "AD004"
    assert save_error(db, live.customer, live.session, FULL) == "AD003"
    assert save_error(db, None, live.session, FULL) == "42501"
    save(db, live.mechanic, live.session, FULL)
    end(db, live)
    assert submit_error(db, other_mechanic, live.session) == "AD004"
    assert submit_error(db, live.customer, live.session) == "AD003"
    assert rows(db, live.session)[0]["status"] == "draft"  # the draft exists, untouched
    assert summary_emails(db, live.session) == []


def test_no_summary_before_live_or_on_a_cancelled_session(db: Db) -> None:
    live = open_request(db)
    accept(db, live.mechanic, live.request)  # waiting
    assert save_error(db, live.mechanic, live.session, FULL) == "AD206"
    db.execute("select private.cancel_session(%s, 'the customer never came', now(), 'system')", (live.session,))
    assert db.scalar("select status from public.sessions where id = %s", (live.session,)) == "cancelled"
    assert db.scalar("select mechanic_id from public.sessions where id = %s", (live.session,)) == live.mechanic
    assert save_error(db, live.mechanic, live.session, FULL) == "AD206"
    assert submit_error(db, live.mechanic, live.session) == "AD206"
    assert rows(db, live.session) == []
    # a session that went live and was cancelled by an admin is not summarised either
    started = open_request(db)
    accept(db, started.mechanic, started.request)
    start_both(db, started.session)
    db.execute("select private.cancel_session(%s, 'admin cancelled', now(), 'admin')", (started.session,))
    assert db.scalar("select mechanic_id from public.sessions where id = %s", (started.session,)) == started.mechanic
    assert save_error(db, started.mechanic, started.session, FULL) == "AD206"
    assert submit_error(db, started.mechanic, started.session) == "AD206"


def test_photos_must_be_files_of_this_session_or_its_intake(db: Db) -> None:
    live = open_request(db)
    assert put_intake_file(db, live.customer, live.intake, "before.jpg") is None
    accept(db, live.mechanic, live.request)
    start_both(db, live.session)
    take_part(db, live.session)
    own = put_session_file(db, live.mechanic, live.session, "rotor.jpg")
    other = live_session(db)
    foreign = put_session_file(db, other.mechanic, other.session, "theirs.jpg")
    assert put_intake_file(db, other.customer, other.intake, "x.jpg") is not None  # their intake is taken
    ok = save(db, live.mechanic, live.session, {**FULL, "photo_paths": [own, f"intakes/{live.intake}/before.jpg"]})
    assert ok["photo_paths"] == [own, f"intakes/{live.intake}/before.jpg"]
    for paths, bad in (
        ([own, foreign], "photo_paths[1]"),
        ([f"sessions/{live.session}/missing.jpg"], "photo_paths[0]"),
        ([f"intakes/{other.intake}/x.jpg"], "photo_paths[0]"),
        ([own, own], "photo_paths[1]"),
        ([f"intakes/{live.intake}/../{other.session}/theirs.jpg"], "photo_paths[0]"),
    ):
        with db.as_user(live.mechanic):
            with pytest.raises(psycopg.Error) as info:
                db.rpc("save_summary", p_session_id=live.session, p_summary={**FULL, "photo_paths": paths})
        assert info.value.sqlstate == "AD205" and info.value.diag.message_detail == bad, paths
    assert (
        db.scalar("select photo_paths from public.session_summaries where session_id = %s", (live.session,))
        == ok["photo_paths"]
    )
    end(db, live)
    submit(db, live.mechanic, live.session)
    assert summary_emails(db, live.session)[0]["data"]["summary"]["photo_count"] == 2


# ------------------------------------------------------------------------------------------------
# validation: one coded error naming the field; nothing written
# ------------------------------------------------------------------------------------------------
INVALID = [
    ([], "$"),
    (Jsonb("not an object"), "$"),
    ({"findings": "x", "colour": "red"}, "colour"),
    ({"findings": 12}, "findings"),
    ({"findings": "   "}, "findings"),
    ({"findings": "x" * 8001}, "findings"),
    ({"steps_taken": "checked"}, "steps_taken"),
    ({"steps_taken": ["ok", ""]}, "steps_taken[1]"),
    ({"steps_taken": ["ok", 3]}, "steps_taken[1]"),
    ({"steps_taken": ["x" * 501]}, "steps_taken[0]"),
    ({"steps_taken": ["s"] * 31}, "steps_taken"),
    ({"next_steps": [None]}, "next_steps[0]"),
    ({"parts": {"name": "pads"}}, "parts"),
    ({"parts": ["pads"]}, "parts[0]"),
    ({"parts": [{"name": "pads"}, {"name": "rotor", "estimated_cost_cents": -1}]}, "parts[1].estimated_cost_cents"),
    (
        {"parts": [{"name": "pads"}, {"name": "rotor", "estimated_cost_cents": 10000001}]},
        "parts[1].estimated_cost_cents",
    ),
    ({"parts": [{"name": "pads", "estimated_cost_cents": 12.5}]}, "parts[0].estimated_cost_cents"),
    ({"parts": [{"name": "pads", "estimated_cost_cents": "100"}]}, "parts[0].estimated_cost_cents"),
    ({"parts": [{"name": "pads", "price": 100}]}, "parts[0].price"),
    ({"parts": [{"part_number": "BP-1"}]}, "parts[0].name"),
    ({"parts": [{"name": "pads", "part_number": 1234}]}, "parts[0].part_number"),
    ({"parts": [{"name": "p" * 201}]}, "parts[0].name"),
    ({"urgency": "whenever"}, "urgency"),
    ({"urgency": 3}, "urgency"),
    ({"photo_paths": "a.jpg"}, "photo_paths"),
    ({"photo_paths": [1]}, "photo_paths[0]"),
    ({"photo_paths": ["x"] * 21}, "photo_paths"),
]


@pytest.mark.parametrize(("summary", "path"), INVALID)
def test_invalid_summary_names_the_field_and_writes_nothing(db: Db, summary: Any, path: str) -> None:
    live = live_session(db)
    save(db, live.mechanic, live.session, {"findings": "kept"})
    with db.as_user(live.mechanic):
        with pytest.raises(psycopg.Error) as info:
            db.rpc("save_summary", p_session_id=live.session, p_summary=summary)
    assert info.value.sqlstate == "AD205"
    assert info.value.diag.message_detail == path
    assert str(info.value).startswith(f"{path}: ")
    assert rows(db, live.session) == [{"version": 1, "status": "draft", "findings": "kept"}]


def test_null_arguments(db: Db) -> None:
    live = live_session(db)
    assert save_error(db, live.mechanic, live.session, None) == "AD205"
    assert save_error(db, live.mechanic, None, FULL) == "AD001"
    assert submit_error(db, live.mechanic, None) == "AD001"
    assert submit_error(db, live.mechanic, uuid.uuid4()) == "AD004"
    with db.as_user(live.mechanic):
        assert db.rpc_error("get_session_summary", p_session_id=None) == "AD001"
    assert rows(db, live.session) == []


# ------------------------------------------------------------------------------------------------
# who reads: the table's row level security and get_session_summary
# ------------------------------------------------------------------------------------------------
def test_who_reads_which_versions(db: Db) -> None:
    live = live_session(db)
    save(db, live.mechanic, live.session, FULL)
    end(db, live)
    submit(db, live.mechanic, live.session)
    save(db, live.mechanic, live.session, {**FULL, "findings": "draft of v2"})
    other_mechanic, other_customer, admin = make_mechanic(db), make_customer(db), make_admin(db)
    query = "select version, status from public.session_summaries where session_id = %s order by version"
    both = [{"version": 1, "status": "submitted"}, {"version": 2, "status": "draft"}]
    assert db.all(query, (live.session,)) == both  # the rows exist
    for user, expected in (
        (live.mechanic, both),
        (admin, both),
        (live.customer, both[:1]),
        (other_mechanic, []),
        (other_customer, []),
    ):
        with db.as_user(user):
            assert db.all(query, (live.session,)) == expected, user
    with db.as_anon():
        assert db.error(query, (live.session,)).sqlstate == "42501"
    with db.as_user(admin):
        assert db.rpc("get_session_summary", p_session_id=live.session)["draft"]["version"] == 2
    for user in (other_mechanic, other_customer):
        with db.as_user(user):
            assert db.rpc_error("get_session_summary", p_session_id=live.session) == "AD004"
    with db.as_anon():
        assert db.error("select public.get_session_summary(%s)", (live.session,)).sqlstate == "42501"
    # nobody writes the table directly
    with db.as_user(live.mechanic):
        assert (
            db.error(
                "update public.session_summaries set findings = 'x' where session_id = %s", (live.session,)
            ).sqlstate
            == "42501"
        )
    # admins reading record no view
    assert db.scalar("select count(*) from public.crm_interactions where kind = 'summary_viewed'") == 0


def test_customer_before_any_submit(db: Db) -> None:
    live = live_session(db)
    save(db, live.mechanic, live.session, FULL)
    with db.as_user(live.customer):
        out = db.rpc("get_session_summary", p_session_id=live.session)
    assert out == {"session_id": str(live.session), "latest": None, "history": [], "draft": None}
    assert (
        db.scalar(
            "select count(*) from public.crm_interactions where kind = 'summary_viewed' and session_id = %s",
            (live.session,),
        )
        == 0
    )


# ------------------------------------------------------------------------------------------------
# two submits at once: one wins
# ------------------------------------------------------------------------------------------------
def test_two_submits_at_once_one_wins(fresh_url: str) -> None:
    with psycopg.connect(fresh_url) as conn:
        conn.execute("select 1")
        d = Db(conn)
        live = live_session(d)
        save(d, live.mechanic, live.session, FULL)
        end(d, live)
        conn.commit()
    conns = [psycopg.connect(fresh_url) for _ in range(2)]
    try:
        results = race([(c, live.mechanic, "select public.submit_summary(%s)", (live.session,)) for c in conns])
    finally:
        for c in conns:
            c.close()
    assert sorted(r[0] for r in results) == ["err", "ok"], results
    assert [r[1] for r in results if r[0] == "err"] == ["AD208"]
    with psycopg.connect(fresh_url) as conn:
        assert (
            conn.execute(
                "select count(*) from public.session_summaries where session_id = %s and status = 'submitted'",
                (live.session,),
            ).fetchone()[0]
            == 1
        )
        assert (
            conn.execute(
                "select count(*) from private.outbox where payload ->> 'template' = 'summary_delivered'"
                " and payload ->> 'session_id' = %s",
                (str(live.session),),
            ).fetchone()[0]
            == 1
        )


# ------------------------------------------------------------------------------------------------
# the email: every part rendered, HTML escaped, golden files
# ------------------------------------------------------------------------------------------------
CONTEXT = {
    "name": "Casey <b>Customer</b>",
    "timezone": "America/Toronto",
    "marketing_emails": True,
    "session": {
        "id": "00000000-0000-4000-8000-00000000e111",
        "plan": "Standard Video (45 min)",
        "session_type": "video",
        "status": "completed",
        "scheduled_for": None,
        "started_at": None,
        "ended_at": None,
        "duration_minutes": 42,
        "price_cents": 2999,
        "currency": "usd",
        "mechanic_name": "Morgan & Sons",
        "vehicle": "2018 Honda Civic",
        "mechanic_notes": None,
        "concern": "grinding noise",
        "delivery": "delivered",
        "review_until": None,
    },
    "summary": {
        "id": "00000000-0000-4000-8000-00000000a001",
        "version": 2,
        "corrected": True,
        "findings": "Pads <2 mm>\nRotors scored.",
        "steps_taken": ["Listened to the noise", "Checked pads"],
        "parts": [
            {"name": "Front pads", "part_number": "BP-1234", "estimated_cost": "89.99 USD"},
            {"name": "Rotors & clips", "part_number": None, "estimated_cost": "150.00 USD"},
            {"name": "Brake fluid", "part_number": None, "estimated_cost": None},
        ],
        "parts_total": "239.99 USD",
        "next_steps": ["Replace pads and rotors this week"],
        "urgency": "unsafe_to_drive",
        "photo_count": 2,
    },
}


def test_summary_email_matches_golden_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_URL", "https://app.autodoctor.test")
    get_settings.cache_clear()
    rendered = mail.render("summary_delivered", CONTEXT)
    get_settings.cache_clear()
    assert rendered.html is not None
    for ext, content in (("html", rendered.html), ("txt", rendered.text)):
        path = GOLDEN / f"summary_delivered.{ext}"
        full = f"Subject: {rendered.subject}\n\n{content}"
        if os.environ.get("UPDATE_GOLDEN"):
            path.write_text(full)
        assert full == path.read_text(), f"{path} differs (UPDATE_GOLDEN=1 to accept a deliberate change)"
    for text in (rendered.html, rendered.text):
        for part in (
            "Front pads",
            "BP-1234",
            "89.99 USD",
            "239.99 USD",
            "Brake fluid",
            "Checked pads",
            "Replace pads and rotors this week",
            "Unsafe to drive",
            "version 2",
            "/sessions/00000000-0000-4000-8000-00000000e111/summary#photo-2",
        ):
            assert part in text, part
    assert "Pads &lt;2 mm&gt;" in rendered.html and "Rotors &amp; clips" in rendered.html
    assert "<2 mm>" not in rendered.html and "Pads <2 mm>" in rendered.text


@pytest.mark.parametrize(
    ("urgency", "words"),
    [
        ("none", "Nothing urgent"),
        ("soon", "Soon: plan"),
        ("urgent", "Urgent: have it repaired"),
        ("unsafe_to_drive", "Unsafe to drive"),
    ],
)
def test_urgency_in_words_and_an_empty_summary_renders(urgency: str, words: str) -> None:
    summary = {
        "id": "x",
        "version": 1,
        "corrected": False,
        "findings": "Fine.",
        "steps_taken": [],
        "parts": [],
        "parts_total": None,
        "next_steps": [],
        "urgency": urgency,
        "photo_count": 0,
    }
    rendered = mail.render("summary_delivered", {**CONTEXT, "summary": summary})
    assert words in rendered.text and words in (rendered.html or "")
    assert "Parts" not in rendered.text and "photo" not in rendered.text and "version" not in rendered.text


def test_the_queued_email_renders_from_the_database(db: Db) -> None:
    """What submit_summary queues, with the sender's context, renders every part."""
    live = live_session(db)
    save(db, live.mechanic, live.session, FULL)
    end(db, live)
    submit(db, live.mechanic, live.session)
    [payload] = summary_emails(db, live.session)
    ctx = db.scalar("select private.email_context(%s, %s)", (live.customer, live.session))
    rendered = mail.render("summary_delivered", {**ctx, **payload["data"]})
    for part in (
        "Front pads at 2 mm; rotors scored.",
        "BP-1234",
        "89.99 USD",
        "150.00 USD",
        "239.99 USD",
        "Brake fluid: no estimate",
        "Checked the pad thickness",
        "Replace pads and rotors this week",
        "Urgent: have it repaired within days.",
    ):
        assert part in rendered.text, part
    assert (
        db.scalar(
            "select dedupe_key from private.outbox where payload ->> 'template' = 'summary_delivered'"
            " and payload ->> 'session_id' = %s",
            (str(live.session),),
        )
        == f"email:summary_delivered:{live.session}:{live.customer}:v1"
    )
