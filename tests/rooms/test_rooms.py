"""LiveKit rooms: tokens per persona (verified with livekit-api's TokenVerifier), signed webhooks
driving the lifecycle (duplicates, reordering, concurrency), reconcile against a stub room
service, time caps, extensions, and the outbox that closes rooms."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import threading
import time
import uuid

import flask
import psycopg
import pytest
from google.protobuf.json_format import MessageToJson
from livekit import api

from shared import db as shared_db
from shared import rooms, worker
from shared.config import get_settings
from shared.dev.stubs.server import StubServer
from shared.dev.tokens import make_token
from tests.support.factories import (
    accept,
    make_admin,
    make_customer,
    make_intake,
    make_mechanic,
    make_world,
    request_free,
)
from tests.support.harness import Db

KEY, SECRET = "APIdevkey", "livekit-dev-secret-0123456789abcdefghij"
JWT_SECRET = "a-test-secret-that-is-at-least-32-characters"
CRON = "cron-secret-0123456789"


# ------------------------------------------------------------------------------------------------
# fixtures
# ------------------------------------------------------------------------------------------------
@pytest.fixture
def lk(fresh_url, monkeypatch):
    """Functions configured against a database of their own and a stub LiveKit server."""
    state = {"rooms": {}, "fail_delete": 0}

    def respond(rec):
        method = rec.path.rsplit("/", 1)[-1]
        if method == "ListRooms":
            req = api.ListRoomsRequest.FromString(rec.body)
            names = [n for n in req.names if n in state["rooms"]]
            return 200, api.ListRoomsResponse(rooms=[api.Room(name=n) for n in names]).SerializeToString()
        if method == "ListParticipants":
            req = api.ListParticipantsRequest.FromString(rec.body)
            people = [api.ParticipantInfo(identity=i) for i in state["rooms"].get(req.room, [])]
            return 200, api.ListParticipantsResponse(participants=people).SerializeToString()
        if method == "DeleteRoom":
            if state["fail_delete"] > 0:
                state["fail_delete"] -= 1
                return 503, {"code": "unavailable", "msg": "try later"}
            req = api.DeleteRoomRequest.FromString(rec.body)
            if req.room not in state["rooms"]:
                return 404, {"code": "not_found", "msg": "room not found"}
            state["rooms"].pop(req.room)
            return 200, api.DeleteRoomResponse().SerializeToString()
        return 404, {"code": "bad_route", "msg": method}

    stub = StubServer(respond)
    monkeypatch.setenv("DATABASE_URL", fresh_url)
    monkeypatch.setenv("LIVEKIT_API_KEY", KEY)
    monkeypatch.setenv("LIVEKIT_API_SECRET", SECRET)
    monkeypatch.setenv("LIVEKIT_URL", stub.url.replace("http://", "ws://"))
    monkeypatch.setenv("SUPABASE_JWT_SECRET", JWT_SECRET)
    monkeypatch.setenv("CRON_SECRET", CRON)
    get_settings.cache_clear()
    shared_db.close_pool()
    conn = psycopg.connect(fresh_url)
    conn.execute("select 1")
    d = Db(conn)
    yield d, stub, state
    conn.close()
    shared_db.close_pool()
    get_settings.cache_clear()
    stub.close()


def committed(d: Db) -> None:
    d.conn.commit()
    d.conn.execute("select 1")


@pytest.fixture
def live_world(lk):
    d, _stub, _state = lk
    w = make_world(d)
    accept(d, w.mechanic, w.request)
    committed(d)
    return w


def call(fn, body=None, headers=None, raw=None, method="POST"):
    app = flask.Flask("t")
    data = raw if raw is not None else (json.dumps(body) if body is not None else None)
    with app.test_request_context("/", method=method, data=data, headers=headers or {},
                                  content_type="application/json"):
        resp = fn(flask.request)
        return resp.status_code, resp.get_json()


def user_auth(user) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(secret=JWT_SECRET, user_id=str(user))}"}


def event(kind: str, session_id, identity=None, created_at=None, event_id=None) -> api.WebhookEvent:
    return api.WebhookEvent(
        event=kind, id=event_id or f"EV_{uuid.uuid4().hex[:12]}", created_at=created_at or int(time.time()),
        room=api.Room(name=f"session-{session_id}", sid="RM_x"),
        participant=api.ParticipantInfo(identity=str(identity), sid="PA_x") if identity else None,
    )


def signed(ev: api.WebhookEvent, *, secret=SECRET, ttl=dt.timedelta(minutes=5)) -> tuple[str, str]:
    body = MessageToJson(ev)
    digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    token = api.AccessToken(KEY, secret).with_sha256(digest).with_ttl(ttl).to_jwt()
    return body, token


def deliver(ev: api.WebhookEvent):
    from functions.webhooks.livekit import livekit_webhook

    body, token = signed(ev)
    return call(livekit_webhook, raw=body, headers={"Authorization": token})


def status(d: Db, session_id) -> str:
    d.conn.rollback()
    return d.scalar("select status::text from public.sessions where id = %s", (session_id,))


# ------------------------------------------------------------------------------------------------
# tokens
# ------------------------------------------------------------------------------------------------
def test_tokens_for_every_persona(lk, live_world):
    from functions.livekit_token import livekit_token

    d, _, _ = lk
    w = live_world
    verifier = api.TokenVerifier(KEY, SECRET)
    for user, role in ((w.customer, "customer"), (w.mechanic, "mechanic")):
        code, body = call(livekit_token, {"session_id": str(w.session)}, user_auth(user))
        assert code == 200, body
        claims = verifier.verify(body["token"])
        assert claims.identity == str(user) and json.loads(claims.metadata)["role"] == role
        assert claims.video.room == f"session-{w.session}" and claims.video.room_join
        assert claims.video.can_publish and claims.video.can_subscribe and claims.video.can_publish_data
        assert not claims.video.hidden
        assert body["url"].startswith("ws://") and body["role"] == role
        exp = json.loads(base64.urlsafe_b64decode(body["token"].split(".")[1] + "=="))["exp"]
        planned_end = time.time() + 5 * 60 + 10 * 60  # waiting: as if it started now, plus the grace
        assert exp <= planned_end + 5
    assert claims.name == "Morgan Mechanic"
    code, body = call(livekit_token, {"session_id": str(w.session)}, user_auth(w.admin))
    claims = verifier.verify(body["token"])
    assert code == 200 and claims.video.hidden and not claims.video.can_publish and claims.video.can_subscribe
    assert not claims.video.can_publish_data
    for stranger in (w.other_customer, w.other_mechanic, w.workshop_admin, w.pending_mechanic):
        assert call(livekit_token, {"session_id": str(w.session)}, user_auth(stranger))[0] == 403
    assert call(livekit_token, {"session_id": str(uuid.uuid4())}, user_auth(w.customer))[0] == 403
    assert call(livekit_token, {"session_id": "nope"}, user_auth(w.customer))[0] == 400
    assert call(livekit_token, {"session_id": str(w.session)})[0] == 401
    assert call(livekit_token, {"session_id": str(w.session)}, user_auth(w.customer), method="GET")[0] == 405
    # a session that is not waiting or live has no room
    pending = request_free(d, w.other_customer)
    committed(d)
    assert call(livekit_token, {"session_id": pending["session_id"]}, user_auth(w.other_customer))[0] == 409


def test_token_never_outlives_the_deadline(lk, live_world):
    from functions.livekit_token import livekit_token

    d, _, _ = lk
    w = live_world
    d.execute("update public.sessions set status = 'live', started_at = now() - interval '4 minutes' where id = %s",
              (w.session,))
    committed(d)
    deadline = d.scalar("select deadline_at from public.sessions where id = %s", (w.session,))
    code, body = call(livekit_token, {"session_id": str(w.session)}, user_auth(w.customer))
    exp = json.loads(base64.urlsafe_b64decode(body["token"].split(".")[1] + "=="))["exp"]
    assert code == 200 and exp <= (deadline + dt.timedelta(minutes=10)).timestamp() + 2


# ------------------------------------------------------------------------------------------------
# webhooks
# ------------------------------------------------------------------------------------------------
def test_webhook_signature_is_required(lk, live_world):
    from functions.webhooks.livekit import livekit_webhook

    d, _, _ = lk
    w = live_world
    ev = event("participant_joined", w.session, w.customer)
    body, token = signed(ev)
    bad = [
        ({"Authorization": token}, body.replace(str(w.customer), str(w.mechanic))),  # tampered body
        ({}, body),  # missing header
        ({"Authorization": f"Bearer {token}"}, body),  # LiveKit sends no Bearer prefix
        ({"Authorization": signed(ev, ttl=dt.timedelta(minutes=-10))[1]}, body),  # expired
        ({"Authorization": signed(ev, secret="another-secret-0123456789abcdefghijkl")[1]}, body),  # wrong key
        ({"Authorization": "garbage"}, body),
    ]
    for headers, raw in bad:
        code, payload = call(livekit_webhook, raw=raw, headers=headers)
        assert code == 401, payload
    assert d.scalar("select count(*) from private.livekit_events") == 0
    assert call(livekit_webhook, raw=body, headers={"Authorization": token}, method="GET")[0] == 405
    assert call(livekit_webhook, raw=body, headers={"Authorization": token})[0] == 200


def test_both_joined_makes_it_live_then_room_finished_completes(lk, live_world):
    d, _, _ = lk
    w = live_world
    t0 = int(time.time())
    assert deliver(event("participant_joined", w.session, w.mechanic, t0))[1]["outcome"] == "recorded"
    assert status(d, w.session) == "waiting"
    joined = event("participant_joined", w.session, w.customer, t0 + 30)
    assert deliver(joined)[1]["outcome"] == "live"
    assert deliver(joined)[1]["outcome"] == "duplicate"
    row = d.one("select status::text as status, started_at, deadline_at from public.sessions where id = %s",
                (w.session,))
    assert row["status"] == "live" and row["started_at"] == dt.datetime.fromtimestamp(t0 + 30, dt.UTC)
    assert row["deadline_at"] - row["started_at"] == dt.timedelta(minutes=5)
    timer = d.one("select payload from realtime.messages where topic = %s and event = 'timer'",
                  (f"session:{w.session}",))
    assert timer["payload"]["deadline_at"]
    assert deliver(event("participant_left", w.session, w.customer, t0 + 200))[1]["outcome"] == "recorded"
    assert deliver(event("room_finished", w.session, None, t0 + 240))[1]["outcome"] == "completed"
    ended = d.one("select status::text as status, ended_at, duration_minutes from public.sessions where id = %s",
                  (w.session,))
    assert ended == {"status": "completed", "ended_at": dt.datetime.fromtimestamp(t0 + 240, dt.UTC),
                     "duration_minutes": 4}
    # late events for a finished session are stored and ignored
    assert deliver(event("participant_joined", w.session, w.customer, t0 + 300))[1]["outcome"].startswith("ignored")
    assert d.scalar("select count(*) from private.livekit_events where session_id = %s", (w.session,)) == 5
    # the room is closed through the outbox, once
    assert d.scalar("select count(*) from private.outbox where kind = 'livekit.delete_room'") == 1


def test_reordered_and_foreign_events(lk, live_world):
    d, _, _ = lk
    w = live_world
    t0 = int(time.time())
    # the customer's leave arrives before its join; an observer and a stranger join; unknown room
    deliver(event("participant_left", w.session, w.customer, t0 + 50))
    deliver(event("participant_joined", w.session, w.admin, t0 + 5))
    assert deliver(event("participant_joined", w.session, "not-a-uuid", t0 + 5))[1]["outcome"] == \
        "ignored: not a participant"
    assert deliver(event("participant_joined", uuid.uuid4(), w.customer, t0))[1]["outcome"] == \
        "ignored: unknown room"
    assert deliver(event("track_published", w.session, w.customer, t0))[1]["outcome"] == "ignored: event type"
    assert status(d, w.session) == "waiting"
    deliver(event("participant_joined", w.session, w.mechanic, t0 + 20))
    assert deliver(event("participant_joined", w.session, w.customer, t0 + 10))[1]["outcome"] == "live"
    assert d.scalar("select started_at from public.sessions where id = %s", (w.session,)) == \
        dt.datetime.fromtimestamp(t0 + 20, dt.UTC)


def test_room_finished_before_joins_leaves_waiting_session_to_sweeps(lk, live_world):
    d, _, _ = lk
    w = live_world
    t0 = int(time.time())
    assert deliver(event("room_finished", w.session, None, t0))[1]["outcome"].startswith("recorded")
    deliver(event("participant_joined", w.session, w.mechanic, t0 - 30))
    deliver(event("participant_joined", w.session, w.customer, t0 - 20))
    assert status(d, w.session) == "waiting"  # never goes live after its room finished


def test_concurrent_joins_go_live_exactly_once(lk):
    d, _, _ = lk
    rounds = 10
    customers = [make_customer(d) for _ in range(rounds)]
    mechanics = [make_mechanic(d, name=f"M{i}") for i in range(rounds)]
    sessions = []
    for c, m in zip(customers, mechanics, strict=True):
        ids = request_free(d, c, intake=make_intake(d, c))
        accept(d, m, ids["request_id"])
        sessions.append((uuid.UUID(ids["session_id"]), c, m))
    committed(d)
    for sid, c, m in sessions:
        evs = [event("participant_joined", sid, c), event("participant_joined", sid, m)]
        evs.append(evs[0])  # and a duplicate delivered at the same moment
        barrier = threading.Barrier(len(evs))
        outcomes: list = [None] * len(evs)

        def run(i, evs=evs, barrier=barrier, outcomes=outcomes):
            barrier.wait()
            outcomes[i] = rooms.apply_event(evs[i])["outcome"]

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(evs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert outcomes.count("live") == 1 and outcomes.count("duplicate") == 1, outcomes
        d.conn.rollback()
        assert d.scalar("select count(*) from public.session_events where session_id = %s and to_status = 'live'",
                        (sid,)) == 1


# ------------------------------------------------------------------------------------------------
# reconcile, time caps, extensions, outbox
# ------------------------------------------------------------------------------------------------
def test_reconcile_repairs_missed_events(lk, live_world):
    from functions.cron.reconcile_livekit import cron_reconcile_livekit

    d, stub, state = lk
    w = live_world
    other = make_world(d)
    accept(d, other.mechanic, other.request)
    d.execute("update public.sessions set status = 'live', started_at = now() - interval '3 minutes'"
              " where id = %s", (other.session,))
    committed(d)
    state["rooms"][f"session-{w.session}"] = [str(w.customer), str(w.mechanic)]  # joins were dropped
    # the other session's room is gone (room_finished dropped)
    assert call(cron_reconcile_livekit, {}, {"Authorization": "Bearer wrong-secret-00000"})[0] == 401
    code, counts = call(cron_reconcile_livekit, {}, {"Authorization": f"Bearer {CRON}"})
    assert code == 200 and counts["live"] == 1 and counts["completed"] == 1, counts
    assert status(d, w.session) == "live" and status(d, other.session) == "completed"
    assert any(c.path.endswith("/ListParticipants") for c in stub.calls)
    # running it again changes nothing more
    code, counts = call(cron_reconcile_livekit, {}, {"Authorization": f"Bearer {CRON}"})
    assert counts.get("live", 0) == 0 and counts.get("completed", 0) == 0


def _session_timers(d):
    """The `session_timers` schedule's command, run as pg_cron runs it (its own statement, committed)."""
    command = d.scalar("select command from private.schedules where name = 'session_timers'")
    committed(d)
    result = d.scalar(command)
    committed(d)
    return result


def test_time_cap_ends_session_and_closes_room(lk, live_world):
    d, _stub, state = lk
    w = live_world
    d.execute("update public.sessions set status = 'live', started_at = now() - interval '4 minutes' where id = %s",
              (w.session,))
    committed(d)
    deadline = d.scalar("select deadline_at from public.sessions where id = %s", (w.session,))
    # a micro-session (the free plan) has no grace: before its deadline nothing; at it, ended
    assert d.scalar("select private.end_overdue_sessions(%s)", (deadline - dt.timedelta(seconds=1),)) == {"ended": 0}
    assert d.scalar("select private.end_overdue_sessions(%s)", (deadline,)) == {"ended": 1}
    d.conn.rollback()
    body = _session_timers(d)
    assert "errors" not in body and body["ended"] == 0  # 4 min into a 5-min plan
    d.execute("update public.sessions set started_at = now() - interval '8 minutes',"
              " deadline_at = now() - interval '3 minutes' where id = %s", (w.session,))
    committed(d)
    assert _session_timers(d)["ended"] == 1
    assert status(d, w.session) == "completed"
    assert d.scalar("select cancel_reason from public.sessions where id = %s", (w.session,)) == "time cap reached"
    # the outbox closes the room at LiveKit
    state["rooms"][f"session-{w.session}"] = []
    rooms_only = ["livekit.delete_room"]
    assert worker.deliver(kinds=rooms_only) == {"claimed": 1, "sent": 1, "retry": 0, "dead": 0, "skipped": 0}
    assert f"session-{w.session}" not in state["rooms"]
    assert worker.deliver(kinds=rooms_only)["claimed"] == 0


def test_extensions(lk, live_world):
    d, _, _ = lk
    w = live_world
    with d.as_user(w.customer):
        assert d.rpc_error("request_extension", p_session_id=w.session, p_minutes=2) == "AD030"  # not live yet
    d.execute("update public.sessions set status = 'live', started_at = now() where id = %s", (w.session,))
    before = d.scalar("select deadline_at from public.sessions where id = %s", (w.session,))
    with d.as_user(w.other_customer):
        assert d.rpc_error("request_extension", p_session_id=w.session, p_minutes=2) == "AD004"
    with d.as_user(w.mechanic):
        assert d.rpc_error("request_extension", p_session_id=w.session, p_minutes=5) == "AD001"
        assert d.rpc_error("request_extension", p_session_id=w.session, p_minutes=None) == "AD001"
        granted = d.rpc("request_extension", p_session_id=w.session, p_minutes=2)
        assert granted["status"] == "granted"
        assert d.rpc_error("request_extension", p_session_id=w.session, p_minutes=2) == "AD030"  # once only
    after = d.scalar("select deadline_at from public.sessions where id = %s", (w.session,))
    assert after - before == dt.timedelta(minutes=2)
    assert d.scalar("select count(*) from realtime.messages where topic = %s and event = 'extension'",
                    (f"session:{w.session}",)) == 1


def test_paid_extension_of_a_standard_session(lk):
    d, _, _ = lk
    customer, mechanic = make_customer(d), make_mechanic(d)
    intake = make_intake(d, customer)
    sid = d.scalar("select (private.create_session_request(%s, 'chat10', %s, null, null, false, 999) "
                   "->> 'session_id')::uuid", (customer, intake))
    rid = d.scalar("select id from public.session_requests where session_id = %s", (sid,))
    accept(d, mechanic, rid)
    d.execute("update public.sessions set status = 'live', started_at = now() where id = %s", (sid,))
    with d.as_user(mechanic):
        assert d.rpc_error("request_extension", p_session_id=sid, p_minutes=15) == "AD003"  # the customer pays
    with d.as_user(customer):
        assert d.rpc_error("request_extension", p_session_id=sid, p_minutes=2) == "AD001"
        ext = d.rpc("request_extension", p_session_id=sid, p_minutes=15)
    assert ext["status"] == "payment_required" and ext["price_cents"] == 999 and ext["minutes"] == 15
    before = d.scalar("select deadline_at from public.sessions where id = %s", (sid,))
    assert d.scalar("select private.grant_extension(%s)", (ext["extension_id"],)) is True
    assert d.scalar("select private.grant_extension(%s)", (ext["extension_id"],)) is True  # idempotent
    assert d.scalar("select deadline_at from public.sessions where id = %s", (sid,)) - before == \
        dt.timedelta(minutes=15)
    # paid after the session ended: not granted (the payment is refunded by payments)
    with d.as_user(customer):
        late = d.rpc("request_extension", p_session_id=sid, p_minutes=15)
        d.rpc("end_session", p_session_id=sid)
    assert d.scalar("select private.grant_extension(%s)", (late["extension_id"],)) is False
    assert d.scalar("select status from public.session_extensions where id = %s", (late["extension_id"],)) == \
        "cancelled"


def _register_test_kind(d: Db) -> None:
    d.execute("insert into private.job_kinds (kind, max_attempts, base_backoff, lease, description)"
              " values ('test.thing', 8, '30 seconds', '5 minutes', 'a kind of this test')")


def test_outbox_retries_backoff_and_dead_letter(lk):
    d, _, _ = lk
    _register_test_kind(d)
    d.execute("select private.enqueue('test.thing', 'test:1', '{\"n\": 1}')")
    d.execute("select private.enqueue('test.thing', 'test:1', '{\"n\": 2}')")  # deduped
    committed(d)
    assert d.scalar("select count(*) from private.outbox") == 1
    calls = []

    def failing(payload):
        calls.append(payload)
        raise RuntimeError("provider down")

    now = dt.datetime.now(dt.UTC)
    assert worker.deliver(now, registry={"test.thing": failing}) == {"claimed": 1, "sent": 0, "retry": 1, "dead": 0, "skipped": 0}
    d.conn.rollback()
    row = d.one("select status::text as status, attempts, next_attempt_at, last_error from private.outbox")
    assert row["status"] == "pending" and row["attempts"] == 1 and "provider down" in row["last_error"]
    assert row["next_attempt_at"] - now == dt.timedelta(seconds=30)
    assert worker.deliver(now, registry={"test.thing": failing})["claimed"] == 0  # not due yet
    t = now
    for _attempt in range(2, 9):
        t = t + dt.timedelta(hours=2)
        result = worker.deliver(t, registry={"test.thing": failing})
        assert result["claimed"] == 1
    assert result["dead"] == 1 and len(calls) == 8
    d.conn.rollback()
    assert d.scalar("select status::text from private.outbox") == "dead"
    assert worker.deliver(t + dt.timedelta(days=1), registry={"test.thing": failing})["claimed"] == 0


def test_outbox_crash_and_concurrent_runs(lk):
    d, _, _ = lk
    _register_test_kind(d)
    for i in range(40):
        d.execute("select private.enqueue('test.thing', %s, %s::jsonb)", (f"k:{i}", json.dumps({"i": i})))
    committed(d)
    # a run that crashes after claiming: its rows come back when the lease runs out
    now = dt.datetime.now(dt.UTC)
    d.execute("select count(*) from private.outbox_claim(%s, 5)", (now,))
    committed(d)
    seen: list[int] = []
    lock = threading.Lock()

    def ok(payload):
        with lock:
            seen.append(payload["i"])

    barrier = threading.Barrier(3)
    results: list = [None] * 3

    def run(k):
        barrier.wait()
        results[k] = worker.deliver(now, limit=100, registry={"test.thing": ok})

    threads = [threading.Thread(target=run, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sum(r["sent"] for r in results) == 35 and len(seen) == 35 and len(set(seen)) == 35
    later = worker.deliver(now + dt.timedelta(minutes=6), registry={"test.thing": ok})
    assert later["sent"] == 5 and sorted(seen) == list(range(40))


def test_room_close_without_livekit_is_skipped_not_retried(lk, live_world, monkeypatch):
    """Where LiveKit is not configured there is no room to close: the job ends `skipped` once."""
    d, _stub, _state = lk
    w = live_world
    d.execute("update public.sessions set status = 'live', started_at = now() - interval '8 minutes',"
              " deadline_at = now() - interval '3 minutes' where id = %s", (w.session,))
    committed(d)
    assert _session_timers(d)["ended"] == 1
    monkeypatch.delenv("LIVEKIT_API_KEY")
    get_settings.cache_clear()
    rooms_only = ["livekit.delete_room"]
    assert worker.deliver(kinds=rooms_only) == {"claimed": 1, "sent": 0, "retry": 0, "dead": 0, "skipped": 1}
    job = d.one("select status::text, attempts, last_error from private.outbox where kind = 'livekit.delete_room'")
    assert job == {"status": "skipped", "attempts": 1, "last_error": "skipped: LiveKit is not configured"}
    assert worker.deliver(kinds=rooms_only)["claimed"] == 0  # never claimed again
    d.conn.rollback()
    with d.as_user(make_admin(d)):
        listed = d.all("select kind, status from public.admin_outbox('skipped')")
    assert listed == [{"kind": "livekit.delete_room", "status": "skipped"}]
