"""Mechanics and customers, played in one worker process (docs/simulation.md, "Actors").

One asyncio loop per worker runs thousands of actors over one `client.Client` (a pool of 8
connections, as PostgREST holds them). Simulated time runs `spec.run.speed` times faster than real
time from `city.START_CLOCK_S`; the city's demand follows `city.DAY_PROFILE`.

What the actors hear, they hear as the apps hear it from Realtime: one reader per worker polls
`realtime.messages` (as the Realtime server reads the broadcasts our SQL sends) and hands each
message to the actors of this worker that subscribed to its topic: `mechanic:<id>` (offers),
`mechanics:requests` (the open feed), `session:<id>` (status changes). The reader's reads are the
Realtime server's work, not the apps' calls: they are not recorded as calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import json
import logging
import math
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg.rows import dict_row

from shared.dev.sim import city
from shared.dev.sim.client import Client, Result, User
from shared.dev.sim.metrics import CallLog
from shared.dev.sim.spec import WorkerSpec
from shared.errors import BY_NAME

RATE_LIMITED = BY_NAME["rate_limited"].sqlstate
LIMIT_REACHED = BY_NAME["limit_reached"].sqlstate
TOO_MANY_RELEASES = BY_NAME["too_many_releases"].sqlstate
RETRY_ON = {RATE_LIMITED, "40001", "40P01", "connection", "timeout", "57P01"}  # transient: wait, try again
PAID_PLANS = ("micro", "chat10", "video15", "diagnostic")
SUMMARY_PLANS = ("chat10", "video15", "diagnostic")  # full sessions: a structured summary, submitted
SUMMARY = {"steps_taken": ["Went through the symptoms with the customer", "Checked the likely causes in order"],
           "parts": [{"name": "Front brake pads", "part_number": None, "estimated_cost_cents": 8999}],
           "next_steps": ["Have the part replaced within two weeks"], "urgency": "soon"}
BOOKABLE_PLANS = ("chat10", "video15", "diagnostic")
POLL_S = 0.2                                 # the Realtime reader's period (real seconds)
FALLBACK_POLL_S = 15.0                       # an app re-reads its row when Realtime said nothing this long
CONCERNS = (
    "Grinding noise from the front brakes when stopping",
    "Check engine light came on and the car hesitates when accelerating",
    "Battery keeps dying overnight, alternator suspected",
    "Transmission slips between second and third gear",
    "Air conditioning blows warm air",
    "Car pulls to the left and the steering wheel shakes at highway speed",
    "Engine overheats in traffic, coolant level drops",
    "Clunking noise from the suspension over bumps",
)


@dataclass(frozen=True)
class Timing:
    """The database's time settings the actors need (the run may scale them by its speed)."""

    min_delivered_s: float
    offer_ttl_s: float
    min_notice_s: float
    change_cutoff_s: float
    plan_minutes: dict[str, float]
    plan_type: dict[str, str]


async def load_timing(url: str) -> Timing:
    async with await psycopg.AsyncConnection.connect(url, prepare_threshold=None, row_factory=dict_row) as conn:
        cur = await conn.execute(
            "select extract(epoch from private.setting_int('trust.min_delivered_minutes') * interval '1 minute')"
            " as delivered, extract(epoch from private.setting_interval('matching.offer_ttl')) as ttl,"
            " extract(epoch from private.setting_interval('scheduling.min_notice')) as notice,"
            " extract(epoch from private.setting_interval('scheduling.change_cutoff')) as cutoff")
        row = await cur.fetchone()
        assert row is not None
        cur = await conn.execute("select code, minutes, session_type::text as t from public.service_plans")
        plans = await cur.fetchall()
    return Timing(min_delivered_s=float(row["delivered"]), offer_ttl_s=float(row["ttl"]),
                  min_notice_s=float(row["notice"]), change_cutoff_s=float(row["cutoff"]),
                  plan_minutes={p["code"]: float(p["minutes"]) for p in plans},
                  plan_type={p["code"]: p["t"] for p in plans})


@dataclass
class Mechanic:
    user: User
    threshold: float            # online while threshold < online share now (a stable, seeded duty roster)
    online: bool = False
    busy: bool = False
    released: set[str] = field(default_factory=set)  # requests it gave back (it may not take them again)
    inbox: asyncio.Queue[tuple[str, dict[str, Any], float]] = field(default_factory=asyncio.Queue)


@dataclass
class Customer:
    user: User
    busy: bool = False
    free_used: bool = False
    vehicle: dict[str, Any] | None = None
    future_bookings: list[str] = field(default_factory=list)   # session ids of booked sessions


class World:
    """The worker's shared state: clock, client, randomness, subscriptions, its actors."""

    def __init__(self, spec: WorkerSpec, ref: city.Reference, client: Client, timing: Timing):
        self.spec = spec
        self.ref = ref
        self.client = client
        self.timing = timing
        self.speed = spec.run.speed
        self.rng = random.Random(f"actors:{spec.run.seed}:{spec.index}")  # noqa: S311 - reproducible runs
        self.stop = asyncio.Event()
        self.end_at = spec.started_at + spec.run.real_duration_s
        self.stop_file = Path(spec.run_dir) / "STOP"
        self.mechanics = {m: Mechanic(User(m, f"{m}@{city.EMAIL_DOMAIN}"), self.rng.random())
                          for m in spec.mechanic_ids}
        self.customers = [Customer(User(c, f"{c}@{city.EMAIL_DOMAIN}")) for c in spec.customer_ids]
        self.sessions: dict[str, list[asyncio.Queue[str]]] = {}
        self.ended: dict[str, float] = {}  # sessions heard completed or cancelled (the app stops writing)
        self.tasks: set[asyncio.Task[Any]] = set()
        self.share = len(spec.customer_ids) / max(1, spec.run.customers)

    # -- time ------------------------------------------------------------------------------
    def sim_now(self) -> float:
        return (time.time() - self.spec.started_at) * self.speed

    def running(self) -> bool:
        return not self.stop.is_set()

    async def sleep(self, sim_s: float) -> None:
        """Sleep `sim_s` simulated seconds (returns early when the run stops)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), timeout=max(0.0, sim_s / self.speed))

    async def sleep_real(self, s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), timeout=max(0.0, s))

    def spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # -- calls, as an honest app makes them ------------------------------------------------
    async def call(self, make: Callable[[], Awaitable[Result]], tries: int = 3) -> Result:
        """A call; on a transient answer (rate_limited with its Retry-After, a serialization failure,
        the database unreachable) wait and try again, at most `tries` times."""
        res = await make()
        for attempt in range(tries - 1):
            if res.ok or res.code not in RETRY_ON or not self.running():
                break
            await self.sleep_real(res.retry_after if res.retry_after is not None else 0.5 * (attempt + 1))
            res = await make()
        return res

    async def rpc(self, user: User, fn: str, **args: Any) -> Result:
        return await self.call(lambda: self.client.rpc(user, fn, **args))

    # -- subscriptions ---------------------------------------------------------------------
    def subscribe(self, session_id: str) -> asyncio.Queue[str]:
        q: asyncio.Queue[str] = asyncio.Queue()
        self.sessions.setdefault(session_id, []).append(q)
        return q

    def unsubscribe(self, session_id: str, q: asyncio.Queue[str]) -> None:
        qs = self.sessions.get(session_id, [])
        if q in qs:
            qs.remove(q)
        if not qs:
            self.sessions.pop(session_id, None)

    async def wait_status(self, user: User, session_id: str, q: asyncio.Queue[str], want: set[str],
                          timeout_sim_s: float) -> str | None:
        """Wait until the session's status is one of `want`: read once (as an app reads the state
        it has just subscribed to: a change may have come before the subscription), then heard on
        `session:<id>`, or read again when Realtime said nothing for a while; None on timeout or stop."""
        deadline = time.time() + timeout_sim_s / self.speed
        read = True
        while self.running() and time.time() < deadline:
            if read:
                res = await self.client.select(user, "sessions", ["status"], {"id": session_id}, limit=1)
                if res.ok and res.value and res.value[0]["status"] in want:
                    return str(res.value[0]["status"])
            try:
                status = await asyncio.wait_for(q.get(), timeout=max(0.01, min(FALLBACK_POLL_S,
                                                                              deadline - time.time())))
            except TimeoutError:
                read = True
                continue
            if status in want:
                return status
            read = False
        return None

    # -- the Realtime reader ---------------------------------------------------------------
    async def realtime_reader(self) -> None:
        """Poll the broadcasts our SQL sends and deliver them to this worker's subscribers."""
        cursor: dt.datetime | None = None
        seen: dict[str, float] = {}
        conn: psycopg.AsyncConnection[Any] | None = None
        while self.running():
            try:
                if conn is None or conn.closed or conn.broken:
                    conn = await psycopg.AsyncConnection.connect(
                        self.spec.database_url, autocommit=True, prepare_threshold=None, row_factory=dict_row,
                        connect_timeout=3)
                    if cursor is None:
                        cur = await conn.execute("select localtimestamp - interval '1 second' as t")
                        row = await cur.fetchone()
                        assert row is not None
                        cursor = row["t"]
                cur = await conn.execute(
                    "select id::text, topic, event, payload, inserted_at from realtime.messages "
                    "where inserted_at > %s and extension = 'broadcast' and private "
                    "and event in ('offer', 'new_request', 'status_changed') "
                    "order by inserted_at", (_since(cursor),))
                rows = await cur.fetchall()
            except psycopg.Error:
                if conn is not None:
                    await conn.close()
                conn = None
                await self.sleep_real(0.5)
                continue
            now = time.time()
            for r in rows:
                if r["id"] in seen:
                    continue
                seen[r["id"]] = now
                cursor = max(cursor, r["inserted_at"]) if cursor is not None else r["inserted_at"]
                self.deliver(r["topic"], r["event"], r["payload"] or {})
            if len(seen) > 20000:
                seen = {k: v for k, v in seen.items() if v > now - 30}
            await self.sleep_real(POLL_S)
        if conn is not None:
            await conn.close()

    def deliver(self, topic: str, event: str, payload: dict[str, Any]) -> None:
        now = time.time()
        if event == "offer" and topic.startswith("mechanic:"):
            m = self.mechanics.get(topic[len("mechanic:"):])
            if m is not None:
                m.inbox.put_nowait(("offer", payload, now))
        elif event == "new_request" and topic == "mechanics:requests":
            idle = [m for m in self.mechanics.values() if m.online and not m.busy]
            # this worker plays 1/workers of the city: open_feed_takers city-wide on average
            share = self.ref.open_feed_takers / max(1, len(idle) * self.spec.run.workers)
            for m in idle:
                if self.rng.random() < share:
                    m.inbox.put_nowait(("open", payload, now))
        elif event == "status_changed" and topic.startswith("session:"):
            if payload.get("to") in ("completed", "cancelled"):
                self.ended[topic[len("session:"):]] = now
                if len(self.ended) > 20000:
                    self.ended = {k: v for k, v in self.ended.items() if v > now - 600}
            for q in self.sessions.get(topic[len("session:"):], []):
                q.put_nowait(str(payload.get("to")))

    # -- the clock and the stop ------------------------------------------------------------
    async def watch_stop(self) -> None:
        while not self.stop.is_set():
            if time.time() >= self.end_at or self.stop_file.exists():
                # no call starts after the end: actors woken by the stop would otherwise all make
                # their next call at once, a burst that no city makes and that the report would
                # count as the system's latency
                self.client.stop_calls()
                self.stop.set()
                return
            await asyncio.sleep(0.2)


def _since(cursor: dt.datetime | None) -> dt.datetime:
    """Where the next read starts: a little before the newest message seen, because a message's
    `inserted_at` is its transaction's start and a longer transaction commits it later."""
    assert cursor is not None
    return cursor - dt.timedelta(seconds=2)


# ---------------------------------------------------------------------------------------------
# Mechanics
# ---------------------------------------------------------------------------------------------

async def mechanic_life(w: World, m: Mechanic) -> None:
    """Online while the duty roster says so; hears offers and the open feed; takes, plays and ends
    sessions; offline again when its hours end (never in the middle of a session)."""
    hb = asyncio.ensure_future(heartbeats(w, m))
    try:
        # the city is already running when the run starts: those on duty come online over the first
        # half minute, not all in one instant
        await w.sleep(w.rng.uniform(0, 30))
        while w.running():
            want = m.threshold < w.ref.online_share_at_peak * city.day_share(w.sim_now())
            if want != m.online and not m.busy:
                res = await w.rpc(m.user, "set_online", p_online=want)
                if res.ok:
                    m.online = want
            if not m.online:
                await w.sleep(60)
                continue
            try:
                kind, offer, heard = await asyncio.wait_for(m.inbox.get(), timeout=max(0.05, 30 / w.speed))
            except TimeoutError:
                continue
            if time.time() - heard > w.timing.offer_ttl_s or m.busy or str(offer["request_id"]) in m.released:
                continue  # stale: the app drops an offer that expired before the mechanic looked
            await w.sleep(w.rng.uniform(5, 40))  # reading the request card
            if kind == "offer" and w.rng.random() < w.ref.decline_per_offer:
                await w.rpc(m.user, "decline_offer", p_request_id=offer["request_id"])
                continue
            res = await w.rpc(m.user, "accept_request", p_request_id=offer["request_id"])
            if res.ok:
                m.busy = True
                try:
                    await mechanic_session(w, m, str(offer["request_id"]), str(res.value["session_id"]),
                                           str(offer.get("plan_code") or "free"))
                finally:
                    m.busy = False
            elif res.code == TOO_MANY_RELEASES:
                await w.sleep_real(res.retry_after or 5.0)
    finally:
        hb.cancel()


async def heartbeats(w: World, m: Mechanic) -> None:
    # each app heartbeats on its own phase: a city whose every app beat in the same second would be
    # a thundering herd that no real city is
    await w.sleep(w.rng.uniform(0, 30))
    while w.running():
        if m.online:
            res = await w.client.rpc(m.user, "heartbeat")
            if res.code == RATE_LIMITED:
                await w.sleep_real(res.retry_after or 1.0)
        await w.sleep(w.rng.uniform(29, 31))


def session_real_s(w: World, session_id: str, plan: str) -> float:
    """How long (real seconds) a live session lasts: most of its planned time in simulated time, at
    least the delivery minimum (real, as the database measures it), within its deadline. Drawn from
    the session's id, so both sides agree on it (the customer writes within its first 60 %)."""
    planned_real = w.timing.plan_minutes.get(plan, 10.0) * 60.0
    share = random.Random(f"{w.spec.run.seed}:{session_id}").uniform(0.5, 0.9)  # noqa: S311 - reproducible
    sim = planned_real * share / w.speed
    lo = w.timing.min_delivered_s * 1.1 + 0.5
    return min(max(sim, lo), max(lo, planned_real * 0.9))


async def mechanic_session(w: World, m: Mechanic, request_id: str, session_id: str, plan: str) -> None:
    q = w.subscribe(session_id)
    try:
        if w.rng.random() < w.ref.release_per_accept:
            await w.sleep(w.rng.uniform(10, 60))
            await w.rpc(m.user, "cancel_request", p_request_id=request_id, p_reason="cannot make it after all")
            m.released.add(request_id)
            return
        brief = await w.rpc(m.user, "get_session_brief", p_session_id=session_id)
        if brief.ok and isinstance(brief.value, dict):
            plan = str(brief.value.get("plan_code") or plan)
        res = await w.rpc(m.user, "start_session", p_session_id=session_id)
        if not res.ok:
            return
        status = res.value.get("status")
        if status != "live":
            status = await w.wait_status(m.user, session_id, q, {"live", "completed", "cancelled"}, 15 * 60)
        if status is None:
            # the customer never came: give the request back to the others
            await w.rpc(m.user, "cancel_request", p_request_id=request_id, p_reason="the customer did not join")
            m.released.add(request_id)
            return
        if status != "live":
            return
        if await play_live(w, m.user, session_id, plan, ends=True):
            await w.rpc(m.user, "submit_summary", p_session_id=session_id)
    finally:
        w.unsubscribe(session_id, q)


async def play_live(w: World, user: User, session_id: str, plan: str, *, ends: bool) -> bool:
    """Take part in a live session: join its room (every session has one), write this side's share of
    the chat, and (`ends`) end it with notes once it has lasted its time, after saving a structured
    summary for a full session. True when a summary draft waits to be submitted."""
    room = None
    # every session has its LiveKit room, chat included (a chat session publishes data only): an app
    # that did not join it would have its live session completed by the reconcile job as empty
    tok = await w.call(lambda: w.client.http(user, "livekit_token", f"{w.spec.functions_url}/livekit_token",
                                             {"session_id": session_id}))
    if tok.ok and isinstance(tok.value, dict):
        room = str(tok.value.get("room"))
        await w.client.http(None, "", f"{w.spec.livekit_url}/_sim/rooms/{room}/join",
                            {"identity": user.id}, name="", record=False)
    total = session_real_s(w, session_id, plan)
    writing = total if ends else total * 0.6
    started = time.time()
    messages = max(1, round(w.rng.expovariate(2 / w.ref.chat_messages_per_session)))
    drafted = False
    for i in range(messages):
        if not w.running():
            return False
        if session_id in w.ended:
            break
        await w.sleep_real(writing * (i + w.rng.random()) / messages - (time.time() - started))
        if session_id in w.ended:
            break
        row = {"session_id": session_id, "content": f"message {i + 1}: {w.rng.choice(CONCERNS).lower()}"}
        await w.call(lambda row=row: w.client.insert(user, "chat_messages", row))  # type: ignore[misc]
    if ends:
        await w.sleep_real(total - (time.time() - started))
        if plan in SUMMARY_PLANS and session_id not in w.ended:
            drafted = (await w.rpc(user, "save_summary", p_session_id=session_id, p_summary=SUMMARY)).ok
        ended = await w.rpc(user, "end_session", p_session_id=session_id,
                    p_notes="Inspected the symptoms with the customer; likely cause found, next steps agreed.")
        drafted = drafted and ended.ok
    if room is not None:
        await w.client.http(None, "", f"{w.spec.livekit_url}/_sim/rooms/{room}/leave",
                            {"identity": user.id}, name="", record=False)
    return drafted


# ---------------------------------------------------------------------------------------------
# Customers
# ---------------------------------------------------------------------------------------------

async def arrivals(w: World) -> None:
    """Poisson arrivals of customer visits: the reference city's rates × --rate × the hour's share,
    this worker's part of them; each visit picks a customer of this worker who is not busy."""
    ref = w.ref
    kinds = [*ref.requests_per_hour.keys(), "booking"]
    weights = [*ref.requests_per_hour.values(), ref.bookings_per_hour]
    per_hour = sum(weights)
    if per_hour <= 0 or not w.customers:
        return
    while w.running():
        rate_per_sim_s = per_hour * w.spec.run.rate * city.day_share(w.sim_now()) * w.share / 3600.0
        await w.sleep(w.rng.expovariate(rate_per_sim_s) if rate_per_sim_s > 0 else 60)
        if not w.running():
            return
        kind = w.rng.choices(kinds, weights)[0]
        for _ in range(5):
            c = w.rng.choice(w.customers)
            if not c.busy and not (kind == "free" and c.free_used):
                break
        else:
            continue  # everyone picked is busy: an honest customer does not file twice
        c.busy = True
        w.spawn(visit(w, c, kind))


async def visit(w: World, c: Customer, kind: str) -> None:
    try:
        if kind == "booking":
            await book(w, c)
        else:
            await on_demand(w, c, kind)
    finally:
        c.busy = False


async def vehicle_of(w: World, c: Customer) -> dict[str, Any] | None:
    if c.vehicle is None:
        # filtered by the owner, as docs/api.md asks of a list read (the policy alone reads the table)
        res = await w.call(lambda: w.client.select(c.user, "vehicles", ["id", "make", "model", "year"],
                                                   {"owner_id": c.user.id}, limit=1))
        if res.ok and res.value:
            c.vehicle = dict(res.value[0])
    return c.vehicle


async def new_intake(w: World, c: Customer) -> tuple[str, dict[str, Any]] | None:
    v = await vehicle_of(w, c)
    if v is None:
        return None
    res = await w.call(lambda: w.client.insert(c.user, "intakes", {
        "concern": w.rng.choice(CONCERNS), "contact_name": "Sim Customer", "contact_email": c.user.email,
        "vehicle_id": v["id"], "vehicle_make": v["make"], "vehicle_model": v["model"], "vehicle_year": v["year"]}))
    return (str(res.value), v) if res.ok else None


def _checkout_id(value: Any) -> str | None:
    found = re.search(r"cs_[A-Za-z0-9_]+", json.dumps(value))
    return found.group(0) if found else None


async def pay(w: World, c: Customer, body: dict[str, Any]) -> str | None:
    """create_checkout, then the customer completes Stripe Checkout a few seconds later (or walks
    away); returns the booking id once paid, None when abandoned or refused."""
    body = {**body, "success_url": "https://app.autodoctor.test/paid?cs={CHECKOUT_SESSION_ID}",
            "cancel_url": "https://app.autodoctor.test/cancelled"}
    res = await w.call(lambda: w.client.http(c.user, "create_checkout", f"{w.spec.functions_url}/create_checkout",
                                             body))
    if not res.ok or not isinstance(res.value, dict):
        if res.status == 429:
            c.free_used = c.free_used or body.get("plan_code") == "free"
        return None
    booking = str(res.value.get("booking_id") or "")
    if res.value.get("mode") == "credit":
        return booking
    cs = _checkout_id(res.value)
    if cs is None:
        return None
    await w.sleep(w.rng.uniform(20, 90))  # filling in the card
    action = "abandon" if w.rng.random() < w.ref.checkout_abandon else "pay"
    await w.client.http(None, "", f"{w.spec.stripe_url}/_sim/checkout/{cs}/{action}", {}, name="", record=False)
    return booking if action == "pay" else None


async def session_of_booking(w: World, c: Customer, booking: str) -> str | None:
    """The app's return page: read the booking until the payment made its session."""
    deadline = time.time() + max(30.0, 300 / w.speed)
    while w.running() and time.time() < deadline:
        res = await w.client.select(c.user, "bookings", ["session_id", "status"], {"id": booking}, limit=1)
        if res.ok and res.value and res.value[0]["session_id"] is not None:
            return str(res.value[0]["session_id"])
        await w.sleep_real(max(1.0, 2 / w.speed))
    return None


async def on_demand(w: World, c: Customer, plan: str) -> None:
    """Look at who is available, describe the problem, file a free or paid request, wait for the
    match (or give up and cancel), take part, end if the mechanic has not, review, follow up."""
    for _ in range(_count(w, w.ref.directory_reads_per_request)):
        await w.call(lambda: w.client.rpc_rows(c.user, "available_mechanics", p_session_type=None, p_limit=10))
    made = await new_intake(w, c)
    if made is None:
        return
    intake, v = made
    request_id: str | None = None
    if plan == "free":
        res = await w.rpc(c.user, "request_session", p_plan_code="free", p_intake_id=intake, p_vehicle_id=v["id"])
        if not res.ok:
            if res.code == LIMIT_REACHED:
                c.free_used = True
            return
        c.free_used = True
        session_id, request_id = str(res.value["session_id"]), str(res.value["request_id"])
    else:
        booking = await pay(w, c, {"plan_code": plan, "intake_id": intake, "vehicle_id": v["id"]})
        if booking is None:
            return
        found = await session_of_booking(w, c, booking)
        if found is None:
            return
        session_id = found
    q = w.subscribe(session_id)
    try:
        gives_up = w.rng.random() < w.ref.cancel_before_match
        patience = w.rng.uniform(60, 600) if gives_up else 3 * 3600
        status = await w.wait_status(c.user, session_id, q, {"waiting", "live", "cancelled", "completed"}, patience)
        if status is None:
            if request_id is None:
                rows = await w.client.select(c.user, "session_requests", ["id"], {"session_id": session_id}, limit=1)
                request_id = str(rows.value[0]["id"]) if rows.ok and rows.value else None
            if request_id is not None and w.running():
                await w.rpc(c.user, "cancel_request", p_request_id=request_id, p_reason="found help elsewhere")
            return
        for _ in range(3):  # a mechanic who gives the request back puts it up for the others again
            if status not in ("waiting", "live"):
                return
            res = await w.rpc(c.user, "start_session", p_session_id=session_id)
            if not res.ok:
                return
            status = str(res.value.get("status"))
            if status != "live":
                status = await w.wait_status(c.user, session_id, q, {"live", "completed", "cancelled", "pending"},
                                             15 * 60)
            if status == "pending":
                status = await w.wait_status(c.user, session_id, q, {"waiting", "live", "cancelled"}, 3 * 3600)
                continue
            break
        if status != "live":
            return
        await play_live(w, c.user, session_id, plan, ends=False)
        planned = w.timing.plan_minutes.get(plan, 10.0) * 60.0
        done = await w.wait_status(c.user, session_id, q, {"completed", "cancelled"}, planned * w.speed)
        if done is None and w.running():
            await w.rpc(c.user, "end_session", p_session_id=session_id)
        elif done == "completed":
            await after_session(w, c, session_id)
    finally:
        w.unsubscribe(session_id, q)


async def after_session(w: World, c: Customer, session_id: str) -> None:
    """The app asks for a review (and offers a follow-up or a report) only for a delivered session."""
    row = await w.client.select(c.user, "sessions", ["delivery"], {"id": session_id}, limit=1)
    if not row.ok or not row.value or row.value[0]["delivery"] != "delivered":
        return
    r = w.rng.random()
    if r < w.ref.report_per_delivered:
        await w.rpc(c.user, "report_problem", p_session_id=session_id, p_reason="the advice did not fix it")
        return
    if w.rng.random() < w.ref.review_per_delivered:
        await w.sleep(w.rng.uniform(30, 300))
        await w.rpc(c.user, "submit_review", p_session_id=session_id, p_rating=w.rng.choice((5, 5, 5, 4, 4, 3, 2)),
                    p_text="Helpful and clear.")
    if w.rng.random() < w.ref.follow_up_per_delivered:
        await w.rpc(c.user, "ask_follow_up", p_session_id=session_id,
                    p_question="The noise came back after a day; is it the same part?")


def _count(w: World, mean: float) -> int:
    """A small Poisson count with this mean (reads before an action)."""
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= w.rng.random()
        if p <= limit:
            return k
        k += 1


def _slot_start(w: World) -> dt.datetime:
    """A start the customer wants: an evening 2-6 days ahead (past the change cutoff, inside the
    mechanics' weekday hours), on the half hour, in the city's time."""
    zone = ZoneInfo(w.ref.timezone)
    day = dt.datetime.now(zone).date() + dt.timedelta(days=w.rng.randint(2, 6))
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    minutes = 17 * 60 + 30 * w.rng.randint(0, 6)
    return dt.datetime.combine(day, dt.time(minutes // 60, minutes % 60), zone)


async def book(w: World, c: Customer) -> None:
    """Find a mechanic free at a wanted time, hold the slot, book it (free plan: book_slot; else
    Checkout with the hold); later sometimes reschedule or cancel."""
    if len(c.future_bookings) >= 3:
        return  # the account's limit of future bookings: an honest customer does not try
    plan = "free" if not c.free_used and w.rng.random() < 0.3 else w.rng.choice(BOOKABLE_PLANS)
    start = _slot_start(w)
    free = await w.call(lambda: w.client.rpc_rows(c.user, "mechanics_free_at", p_start=start, p_plan_code=plan,
                                                  p_city=w.ref.name, p_limit=10))
    if not free.ok or not free.value:
        return
    mechanic = str(w.rng.choice(free.value)["mechanic_id"])
    for _ in range(max(0, _count(w, w.ref.availability_reads_per_booking) - 1)):
        await w.call(lambda: w.client.rpc_rows(c.user, "available_slots", p_mechanic_id=mechanic,
                                               p_from=start - dt.timedelta(hours=2),
                                               p_to=start + dt.timedelta(hours=4), p_plan_code=plan))
    hold = await w.rpc(c.user, "hold_slot", p_mechanic_id=mechanic, p_start=start, p_plan_code=plan)
    if not hold.ok:
        return
    hold_id = str(hold.value["hold_id"])
    made = await new_intake(w, c)
    if made is None:
        await w.rpc(c.user, "release_hold", p_hold_id=hold_id)
        return
    intake, v = made
    session_id: str | None = None
    if plan == "free":
        res = await w.rpc(c.user, "book_slot", p_hold_id=hold_id, p_intake_id=intake, p_vehicle_id=v["id"])
        if res.ok:
            c.free_used = True
            session_id = str(res.value.get("session_id"))
        else:
            if res.code == LIMIT_REACHED:
                c.free_used = True
            await w.rpc(c.user, "release_hold", p_hold_id=hold_id)
            return
    else:
        booking = await pay(w, c, {"hold_id": hold_id, "intake_id": intake, "vehicle_id": v["id"]})
        if booking is None:
            await w.rpc(c.user, "release_hold", p_hold_id=hold_id)
            return
        session_id = await session_of_booking(w, c, booking)
    if session_id is None:
        return
    c.future_bookings.append(session_id)
    w.spawn(change_booking(w, c, session_id, start))


async def change_booking(w: World, c: Customer, session_id: str, start: dt.datetime) -> None:
    """Some customers move or cancel their booking a while after making it."""
    r = w.rng.random()
    if r >= w.ref.reschedule_per_booking + w.ref.cancel_per_booking:
        return
    await w.sleep(w.rng.uniform(600, 3 * 3600))
    if not w.running():
        return
    if r < w.ref.reschedule_per_booking:
        res = await w.rpc(c.user, "reschedule_session", p_session_id=session_id,
                          p_new_start=start + dt.timedelta(days=1))
        del res
    else:
        res = await w.rpc(c.user, "cancel_scheduled_session", p_session_id=session_id, p_reason="plans changed")
        if res.ok and session_id in c.future_bookings:
            c.future_bookings.remove(session_id)


# ---------------------------------------------------------------------------------------------
# The worker
# ---------------------------------------------------------------------------------------------

async def run_worker(spec: WorkerSpec, ref: city.Reference) -> None:
    log = CallLog(Path(spec.run_dir), f"w{spec.index}")
    client = Client(spec.database_url, log, spec.started_at, jwt_secret=spec.jwt_secret)
    try:
        await client.open()
        timing = await load_timing(spec.database_url)
        w = World(spec, ref, client, timing)
        # The city's hundreds of thousands of objects live as long as the run: out of the collector's
        # reach, a full collection no longer pauses this worker's event loop for ~150 ms (which the
        # calls in flight would have recorded as the system's latency).
        gc.collect()
        gc.freeze()
        # mechanics whose threshold is above the peak's online share never come online: no task
        for m in w.mechanics.values():
            if m.threshold < ref.online_share_at_peak:
                w.spawn(mechanic_life(w, m))
        w.spawn(w.realtime_reader())
        w.spawn(arrivals(w))
        await w.watch_stop()
        tasks = list(w.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await client.close()
        log.close()


def worker_main(spec: WorkerSpec, reference: city.Reference | None = None) -> None:
    """One worker process: plays `spec.mechanic_ids` and `spec.customer_ids` until the run's end
    or its STOP file, then returns. `reference` overrides city.REFERENCE (tests: free requests only)."""
    # a database restart is part of the run: the pool's reconnection attempts are not news
    logging.getLogger("psycopg.pool").setLevel(logging.CRITICAL)
    asyncio.run(run_worker(spec, reference or city.REFERENCE))
