"""LiveKit rooms: access tokens for a session's participants, verified webhooks that drive the
session lifecycle, reconcile with the room service, and the room side effects of the job queue.
The rules (who may join, until when, what an event changes) are SQL; this module signs, verifies
and talks to LiveKit."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

from google.protobuf.json_format import MessageToDict
from livekit import api

from shared import db
from shared.config import get_settings
from shared.errors import AppError
from shared.worker import JobSkipped


def _credentials() -> tuple[str, str, str]:
    s = get_settings()
    if not (s.livekit_api_key and s.livekit_api_secret and s.livekit_url):
        raise AppError("livekit_not_configured", "LIVEKIT_API_KEY, LIVEKIT_API_SECRET and LIVEKIT_URL are required")
    return s.livekit_api_key, s.livekit_api_secret, s.livekit_url


def room_token(session_id: str, user_id: str, now: dt.datetime | None = None) -> dict[str, Any]:
    """A token for the session's room: participants publish and subscribe, admins observe hidden."""
    key, secret, url = _credentials()
    now = now or dt.datetime.now(dt.UTC)
    with db.transaction() as conn:
        grant = db.one(conn, "select private.room_grant(%s, %s, %s) as g", (session_id, user_id, now))["g"]
    expires_at = dt.datetime.fromisoformat(grant["expires_at"])
    ttl = expires_at - now
    if ttl.total_seconds() <= 0:
        raise AppError("conflict", "the session's time is over")
    observer = grant["role"] == "observer"
    grants = api.VideoGrants(
        room_join=True, room=grant["room"],
        can_publish=not observer, can_subscribe=True, can_publish_data=not observer,
        hidden=observer, can_update_own_metadata=False,
    )
    token = (
        api.AccessToken(key, secret)
        .with_identity(str(user_id))
        .with_name(grant["name"])
        .with_metadata(json.dumps({"role": grant["role"], "session_id": str(session_id)}))
        .with_ttl(ttl)
        .with_grants(grants)
        .to_jwt()
    )
    return {"token": token, "url": url, "room": grant["room"], "role": grant["role"],
            "expires_at": grant["expires_at"]}


def verify_webhook(body: str, authorization: str | None) -> api.WebhookEvent:
    """LiveKit signs the body's sha256 into a JWT sent as `Authorization: <jwt>` (no Bearer)."""
    key, secret, _ = _credentials()
    if not authorization:
        raise AppError("not_authenticated", "missing Authorization")
    try:
        return api.WebhookReceiver(api.TokenVerifier(key, secret)).receive(body, authorization)
    except Exception as exc:  # the receiver raises plain Exceptions for every mismatch
        raise AppError("not_authenticated", "invalid webhook signature") from exc


def apply_event(event: api.WebhookEvent) -> dict[str, Any]:
    """Record one event in the ledger and let it drive the session (duplicates: no effect)."""
    if not event.id or not event.event:
        raise AppError("invalid_input", "the event has no id or type")
    occurred = dt.datetime.fromtimestamp(event.created_at or 0, dt.UTC) if event.created_at else \
        dt.datetime.now(dt.UTC)
    payload = MessageToDict(event, preserving_proto_field_name=True)
    with db.transaction() as conn:
        result: dict[str, Any] = db.one(
            conn, "select private.apply_livekit_event(%s, %s, %s, %s, %s, %s::jsonb) as r",
            (event.id, event.event, event.room.name or None, event.participant.identity or None, occurred,
             json.dumps(payload)),
        )["r"]
    return result


async def _room_states(rooms: list[str]) -> dict[str, tuple[bool, list[str]]]:
    key, secret, url = _credentials()
    states: dict[str, tuple[bool, list[str]]] = {}
    async with api.LiveKitAPI(url, key, secret) as lk:
        listed = await lk.room.list_rooms(api.ListRoomsRequest(names=rooms)) if rooms else None
        existing = {r.name for r in listed.rooms} if listed else set()
        for room in rooms:
            if room not in existing:
                states[room] = (False, [])
                continue
            res = await lk.room.list_participants(api.ListParticipantsRequest(room=room))
            states[room] = (True, [p.identity for p in res.participants])
    return states


def reconcile(now: dt.datetime | None = None, limit: int = 200) -> dict[str, int]:
    """Ask LiveKit about the rooms of waiting and live sessions and repair what missed events left."""
    now = now or dt.datetime.now(dt.UTC)
    with db.transaction() as conn:
        rows = conn.execute("select session_id, room from private.rooms_to_reconcile(%s)", (limit,)).fetchall()
    if not rows:
        return {"checked": 0}
    states = asyncio.run(_room_states([r["room"] for r in rows]))  # no database locks held meanwhile
    counts: dict[str, int] = {"checked": len(rows)}
    for r in rows:
        exists, present = states[r["room"]]
        with db.transaction() as conn:
            outcome = db.one(conn, "select private.reconcile_room(%s, %s, %s, %s) as o",
                             (r["session_id"], exists, present, now))["o"]
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


async def delete_room(payload: dict[str, Any]) -> None:
    """Job handler for `livekit.delete_room`; skipped where LiveKit is not configured (no room exists)."""
    try:
        key, secret, url = _credentials()
    except AppError as exc:
        raise JobSkipped("LiveKit is not configured") from exc
    async with api.LiveKitAPI(url, key, secret) as lk:
        try:
            await lk.room.delete_room(api.DeleteRoomRequest(room=payload["room"]))
        except api.TwirpError as exc:
            if exc.code != "not_found":  # already gone: done
                raise
