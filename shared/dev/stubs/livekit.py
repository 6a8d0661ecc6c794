"""LiveKit, stubbed: the Twirp room service our code calls and the rooms' state, with control
endpoints that play participants joining and leaving, and webhooks signed as LiveKit signs them.

- Twirp (`POST /twirp/livekit.RoomService/<Method>`, protobuf bodies, a Bearer access token signed
  with the API key and secret): ListRooms, ListParticipants, GetParticipant, CreateRoom, DeleteRoom,
  RemoveParticipant. Errors are Twirp's JSON `{"code", "msg"}` (not_found 404, unauthenticated 401,
  unavailable 503 during an outage "500").
- `POST /_sim/rooms/<room>/join` with `{"identity": "<user id>"}` (or `{"token": "<the JWT
  livekit_token made>"}`: verified, its room and identity used): the first join creates the room
  (room_started), then participant_joined. `POST /_sim/rooms/<room>/leave` with the same body:
  participant_left. DeleteRoom: participant_left for whoever is still in, then room_finished. A room
  left empty closes by itself after `empty_timeout_s` (LiveKit's departure timeout: room_finished)
  unless None.
- Webhooks: the event's JSON, `Authorization: <JWT whose sha256 claim is the body's base64
  sha256>` (api.AccessToken.with_sha256), to webhook_url with the faults. No retries: LiveKit drops
  an event it could not deliver (the `cron_reconcile_livekit` job repairs what that leaves).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import itertools
import threading
import time
import uuid
from dataclasses import dataclass, field

from google.protobuf.json_format import MessageToJson
from google.protobuf.message import DecodeError
from livekit import api

from shared.dev.stubs.server import Answer, Outage, Recorded, StubServer
from shared.dev.stubs.webhooks import WebhookFaults, WebhookSender

TWIRP_PREFIX = "/twirp/livekit.RoomService/"
PROTOBUF = "application/protobuf"


def _twirp_error(status: int, code: str, msg: str) -> Answer:
    return status, {"code": code, "msg": msg}


def _sid(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@dataclass
class _Room:
    name: str
    sid: str
    created: int
    participants: dict[str, api.ParticipantInfo] = field(default_factory=dict)
    generation: int = 0  # a new value at every join and leave: an empty-room timer checks it is still current


class LiveKitStub:
    """LiveKit for a simulated city (module docstring)."""

    def __init__(self, webhook_url: str, api_key: str, api_secret: str, faults: WebhookFaults | None = None, *,
                 empty_timeout_s: float | None = 20.0, timeout_s: float = 10.0,
                 max_calls: int | None = 10000) -> None:
        self.webhook_url = webhook_url
        self.api_key = api_key
        self.api_secret = api_secret
        self.empty_timeout_s = empty_timeout_s
        self.outage = Outage()
        self.lock = threading.Lock()
        self.rooms: dict[str, _Room] = {}
        self._generations = itertools.count(1)  # one sequence for all rooms: a recreated room never matches
        self.verifier = api.TokenVerifier(api_key, api_secret)
        self.sender = WebhookSender("livekit", webhook_url, self._sign, faults, retry=False, timeout_s=timeout_s,
                                    content_type="application/webhook+json")
        self.counts = {"joins": 0, "leaves": 0, "rooms_started": 0, "rooms_finished": 0}
        self.server = StubServer(self._respond, max_calls=max_calls)

    # -- the interface a run uses ----------------------------------------------------------------
    @property
    def url(self) -> str:
        """The stub's HTTP address (control endpoints, Twirp)."""
        return self.server.url

    @property
    def ws_url(self) -> str:
        """What LIVEKIT_URL should say (clients connect with ws://; the API client maps it to http://)."""
        return self.server.url.replace("http://", "ws://", 1)

    def set_outage(self, seconds: float, mode: str = "500") -> None:
        self.outage.set(seconds, mode)

    def in_flight(self) -> int:
        return self.sender.in_flight()

    def stats(self) -> dict[str, int]:
        with self.lock:
            counts = dict(self.counts)
            counts["rooms_open"] = len(self.rooms)
        return {**self.sender.stats(), **counts, "outage_answers": self.outage.answered}

    def close(self) -> None:
        self.sender.close()
        self.server.close()

    def present(self, room: str) -> list[str]:
        """The identities in a room now (empty when there is no room)."""
        with self.lock:
            r = self.rooms.get(room)
            return sorted(r.participants) if r else []

    # -- events -----------------------------------------------------------------------------------
    def _sign(self, body: bytes) -> dict[str, str]:
        digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
        token = (api.AccessToken(self.api_key, self.api_secret).with_sha256(digest)
                 .with_ttl(dt.timedelta(minutes=5)).to_jwt())
        return {"Authorization": token}

    def _room_info(self, room: _Room) -> api.Room:
        return api.Room(name=room.name, sid=room.sid, creation_time=room.created,
                        num_participants=len(room.participants), empty_timeout=int(self.empty_timeout_s or 0))

    def _event(self, kind: str, room: _Room, participant: api.ParticipantInfo | None = None) -> None:
        """Queue one webhook (called with the lock held, so events leave in the order things happened)."""
        event = api.WebhookEvent(event=kind, id=_sid("EV"), created_at=int(time.time()), room=self._room_info(room))
        if participant is not None:
            event.participant.CopyFrom(participant)
        self.sender.send(event.id, MessageToJson(event).encode())

    # -- answers ----------------------------------------------------------------------------------
    def _respond(self, rec: Recorded) -> Answer:
        path = rec.path.split("?")[0]
        if path.startswith("/_sim/"):
            return self._control(path, rec)
        if not path.startswith(TWIRP_PREFIX) or rec.method != "POST":
            return _twirp_error(404, "bad_route", f"no handler for {rec.method} {path}")
        down = self.outage.check(_twirp_error(503, "unavailable", "simulated outage"))
        if down is not None:
            return down
        auth = rec.header("Authorization") or ""
        try:
            self.verifier.verify(auth.removeprefix("Bearer "))
        except Exception:
            return _twirp_error(401, "unauthenticated", "invalid token")
        method = path.removeprefix(TWIRP_PREFIX)
        try:
            return self._twirp(method, rec.body)
        except DecodeError:
            return _twirp_error(400, "malformed", "the body is not the method's protobuf message")

    def _twirp(self, method: str, body: bytes) -> Answer:
        with self.lock:
            if method == "ListRooms":
                req = api.ListRoomsRequest.FromString(body)
                names = list(req.names) or list(self.rooms)
                rooms = [self._room_info(self.rooms[n]) for n in names if n in self.rooms]
                return 200, api.ListRoomsResponse(rooms=rooms).SerializeToString(), PROTOBUF
            if method == "ListParticipants":
                lreq = api.ListParticipantsRequest.FromString(body)
                room = self.rooms.get(lreq.room)
                if room is None:
                    return _twirp_error(404, "not_found", "requested room does not exist")
                resp = api.ListParticipantsResponse(participants=list(room.participants.values()))
                return 200, resp.SerializeToString(), PROTOBUF
            if method == "GetParticipant":
                greq = api.RoomParticipantIdentity.FromString(body)
                room = self.rooms.get(greq.room)
                if room is None or greq.identity not in room.participants:
                    return _twirp_error(404, "not_found", "participant does not exist")
                return 200, room.participants[greq.identity].SerializeToString(), PROTOBUF
            if method == "CreateRoom":
                creq = api.CreateRoomRequest.FromString(body)
                room = self._open(creq.name)
                return 200, self._room_info(room).SerializeToString(), PROTOBUF
            if method == "DeleteRoom":
                dreq = api.DeleteRoomRequest.FromString(body)
                if dreq.room not in self.rooms:
                    return _twirp_error(404, "not_found", "requested room does not exist")
                self._finish(self.rooms[dreq.room])
                return 200, api.DeleteRoomResponse().SerializeToString(), PROTOBUF
            if method == "RemoveParticipant":
                rreq = api.RoomParticipantIdentity.FromString(body)
                room = self.rooms.get(rreq.room)
                if room is None or rreq.identity not in room.participants:
                    return _twirp_error(404, "not_found", "participant does not exist")
                self._leave(room, rreq.identity)
                return 200, api.RemoveParticipantResponse().SerializeToString(), PROTOBUF
        return _twirp_error(404, "bad_route", f"no handler for RoomService/{method}")

    # -- rooms (called with the lock held) --------------------------------------------------------
    def _open(self, name: str) -> _Room:
        room = self.rooms.get(name)
        if room is None:
            room = self.rooms[name] = _Room(name, _sid("RM"), int(time.time()))
            self.counts["rooms_started"] += 1
            self._event("room_started", room)
        return room

    def _leave(self, room: _Room, identity: str) -> None:
        info = room.participants.pop(identity)
        info.state = api.ParticipantInfo.State.DISCONNECTED
        room.generation = next(self._generations)
        self.counts["leaves"] += 1
        self._event("participant_left", room, info)
        if not room.participants and self.empty_timeout_s is not None:
            generation = room.generation
            self.sender.schedule(self.empty_timeout_s, lambda: self._close_if_empty(room.name, generation),
                                 counted=False)

    def _close_if_empty(self, name: str, generation: int) -> None:
        with self.lock:
            room = self.rooms.get(name)
            if room is not None and not room.participants and room.generation == generation:
                self._finish(room)

    def _finish(self, room: _Room) -> None:
        for identity in list(room.participants):
            self._leave(room, identity)
        del self.rooms[room.name]
        room.generation = next(self._generations)
        self.counts["rooms_finished"] += 1
        self._event("room_finished", room)

    # -- the participants' side ---------------------------------------------------------------------
    def _control(self, path: str, rec: Recorded) -> Answer:
        parts = path.strip("/").split("/")  # _sim, rooms, <room>, join|leave
        if rec.method != "POST" or len(parts) != 4 or parts[1] != "rooms" or parts[3] not in ("join", "leave"):
            return 404, {"error": f"no control endpoint {rec.method} {path}"}
        room_name, action = parts[2], parts[3]
        try:
            body = rec.json() or {}
        except ValueError:
            return 400, {"error": "the body is not JSON"}
        identity = str(body.get("identity") or "")
        name = ""
        if body.get("token"):
            try:
                claims = self.verifier.verify(str(body["token"]))
            except Exception:
                return 401, {"error": "invalid token"}
            if not (claims.video and claims.video.room_join and claims.video.room == room_name):
                return 403, {"error": "the token does not grant joining this room"}
            identity, name = claims.identity, claims.name or ""
        if not identity:
            return 400, {"error": "identity (or token) is required"}
        with self.lock:
            if action == "join":
                room = self._open(room_name)
                if identity in room.participants:
                    return 200, {"joined": False, "room": room_name, "present": sorted(room.participants)}
                info = api.ParticipantInfo(sid=_sid("PA"), identity=identity, name=name,
                                           state=api.ParticipantInfo.State.ACTIVE, joined_at=int(time.time()))
                room.participants[identity] = info
                room.generation = next(self._generations)
                self.counts["joins"] += 1
                self._event("participant_joined", room, info)
                return 200, {"joined": True, "room": room_name, "present": sorted(room.participants)}
            room_or_none = self.rooms.get(room_name)
            if room_or_none is None or identity not in room_or_none.participants:
                return 409, {"error": "not in the room"}
            self._leave(room_or_none, identity)
            return 200, {"left": True, "room": room_name, "present": sorted(room_or_none.participants)}
