"""The marketplace's invariants, checked while a simulation runs and at its end (docs/simulation.md,
"Invariants").

Each check is SQL run on the owner's connection (it reads every table past row level security),
returns how many violations it found and up to ten evidence rows naming them. Windows are read
from `private.settings` at check time, never assumed: a run scales the time settings by its speed.
A state that a scheduled job repairs is a violation only once the job has had its chance: the
check allows `CheckContext.lag_s` (one period of the schedules, two in the final checks, plus a
slack for the job's own run) past the window.

`check_all(conn, ctx)` runs every check of `CHECKS`, in order, each in its own read-only
transaction (a savepoint when the connection is already in a transaction), and never raises for a
violation; a check that fails is reported with count -1 and the error as its evidence.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg import pq
from psycopg.rows import dict_row

EVIDENCE_ROWS = 10


@dataclass(frozen=True)
class CheckContext:
    started_at: datetime          # when the run started (t = 0)
    final: bool                   # the checks after the drain, at the end of the run
    sweep_period_s: float = 60.0  # how often the database's schedules run (session_timers, sweep_requests)
    job_period_s: float = 60.0    # how often the job worker runs (the email queue)
    slack_s: float = 10.0         # a job's own run under load, commit included
    realtime_sample: int = 20     # how many of the newest Realtime messages realtime_rls probes
    webhook_lag_s: float = 300.0  # during the run, how late a redelivered provider webhook may come

    @property
    def lag_s(self) -> float:
        """How long past its window a state may stay before its job must have repaired it."""
        return self.sweep_period_s * (2 if self.final else 1) + self.slack_s

    @property
    def job_lag_s(self) -> float:
        return self.job_period_s * (2 if self.final else 1) + self.slack_s

    @property
    def booking_lag_s(self) -> float:
        """A Checkout ends by Stripe's webhook (checkout.session.expired at its expires_at); during the
        run a dropped event may still be redelivered; after the drain none is in flight."""
        return self.lag_s + (0.0 if self.final else self.webhook_lag_s)


@dataclass
class CheckResult:
    name: str
    description: str
    count: int                    # violations found; -1 when the check itself failed
    evidence: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Check:
    name: str
    description: str
    run: Callable[[psycopg.Connection, CheckContext], tuple[int, list[dict[str, Any]]]]


# -- helpers -------------------------------------------------------------------------------------
def _rows(conn: psycopg.Connection, query: str, params: Any = None) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return cur.fetchall()


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(row, default=str))
    return out


def _counted(conn: psycopg.Connection, query: str, params: Any = None) -> tuple[int, list[dict[str, Any]]]:
    """Runs a query of violation rows (every row one violation); returns the count and the first rows."""
    rows = _rows(conn, query, params)
    return len(rows), [_jsonable(r) for r in rows[:EVIDENCE_ROWS]]


# -- one_job_per_mechanic ------------------------------------------------------------------------
_ONE_JOB = """
with held as (
  -- the work a mechanic holds (docs/matching.md, "busy"): an accepted request whose session has not
  -- ended, an in_progress commitment, or a live session of any kind; a booked session opened for
  -- joining is not held until it goes live (its time is a confirmed commitment)
  select s.mechanic_id, s.id as session_id, 'session live' as what
  from public.sessions s
  where s.status = 'live' and s.mechanic_id is not null
  union
  select r.mechanic_id, r.session_id, 'accepted request ' || r.id || ', session ' || s.status
  from public.session_requests r join public.sessions s on s.id = r.session_id
  where r.status = 'accepted' and r.mechanic_id is not null and s.status not in ('completed', 'cancelled')
  union
  select c.mechanic_id, c.session_id, 'in_progress commitment ' || c.id
  from public.mechanic_commitments c
  where c.status = 'in_progress' and c.session_id is not null
)
select 'holds two jobs now' as problem, h.mechanic_id,
       array_agg(distinct h.session_id::text) as sessions, array_agg(h.what order by h.what) as what
from held h group by h.mechanic_id having count(distinct h.session_id) > 1
union all
select 'two in_progress commitments', c.mechanic_id, array_agg(c.session_id::text), array_agg(c.id::text)
from public.mechanic_commitments c where c.status = 'in_progress'
group by c.mechanic_id having count(*) > 1
union all
select 'on-demand work overlapped in time', a.mechanic_id, array[a.session_id::text, b.session_id::text],
       array[a.id || ' ' || a.status || ' ' || a.during::text, b.id || ' ' || b.status || ' ' || b.during::text]
from public.mechanic_commitments a
join public.mechanic_commitments b
  on b.mechanic_id = a.mechanic_id and b.id > a.id and b.during && a.during
 and upper(b.during * a.during) - lower(b.during * a.during) > make_interval(secs => %(tolerance)s)
where a.kind = 'on_demand' and b.kind = 'on_demand'
  and a.status in ('in_progress', 'done', 'released') and b.status in ('in_progress', 'done', 'released')
union all
select 'live in two sessions at once', a.mechanic_id, array[a.id::text, b.id::text],
       array[a.status || ' ' || a.started_at || ' .. ' || coalesce(a.ended_at::text, 'now'),
             b.status || ' ' || b.started_at || ' .. ' || coalesce(b.ended_at::text, 'now')]
from public.sessions a
join public.sessions b
  on b.mechanic_id = a.mechanic_id and b.id > a.id
 and least(coalesce(a.ended_at, now()), coalesce(b.ended_at, now())) - greatest(a.started_at, b.started_at)
     > make_interval(secs => %(tolerance)s)
where a.started_at is not null and b.started_at is not null and a.mechanic_id is not null
  and (a.ended_at is null or a.ended_at > a.started_at) and (b.ended_at is null or b.ended_at > b.started_at)
"""


def one_job_per_mechanic(conn: psycopg.Connection, ctx: CheckContext) -> tuple[int, list[dict[str, Any]]]:
    """The history allows an overlap of up to `ctx.slack_s`: a finished job's end and the next
    accept's start are each the start time of their own transaction, and an accept that waited on
    the mechanic's row lock for the completion starts a little before the completion's time."""
    return _counted(conn, _ONE_JOB, {"tolerance": ctx.slack_s})


# -- no_overlapping_commitments ------------------------------------------------------------------
_NO_OVERLAP = """
select 'active commitments overlap' as problem, a.mechanic_id,
       a.id as commitment_a, a.kind::text || ' ' || a.status || ' ' || a.during::text as a,
       b.id as commitment_b, b.kind::text || ' ' || b.status || ' ' || b.during::text as b
from public.mechanic_commitments a
join public.mechanic_commitments b
  on b.mechanic_id = a.mechanic_id and b.id > a.id and b.during && a.during
where a.status in ('held', 'confirmed', 'in_progress') and b.status in ('held', 'confirmed', 'in_progress')
union all
select 'commitment still active after its session ended', c.mechanic_id, c.id,
       c.kind::text || ' ' || c.status || ' ' || c.during::text, s.id, 'session ' || s.status || ' at ' || s.ended_at
from public.mechanic_commitments c join public.sessions s on s.id = c.session_id
where c.status in ('held', 'confirmed', 'in_progress') and s.status in ('completed', 'cancelled')
union all
select 'hold past its expiry', c.mechanic_id, c.id, c.kind::text || ' ' || c.status || ' ' || c.during::text,
       null, 'expired at ' || c.expires_at
from public.mechanic_commitments c
where c.status = 'held' and c.expires_at < now() - make_interval(secs => %(lag)s)
"""


def no_overlapping_commitments(conn: psycopg.Connection, ctx: CheckContext) -> tuple[int, list[dict[str, Any]]]:
    return _counted(conn, _NO_OVERLAP, {"lag": ctx.lag_s})


# -- money_integrity -----------------------------------------------------------------------------
_MONEY_VIEWS = ("payment_integrity_issues", "credit_integrity_issues", "referral_integrity_issues")


def money_integrity(conn: psycopg.Connection, ctx: CheckContext) -> tuple[int, list[dict[str, Any]]]:
    present = {r["viewname"] for r in _rows(
        conn, "select viewname from pg_views where schemaname = 'private' and viewname = any(%s)",
        (list(_MONEY_VIEWS),))}
    count, evidence = 0, []
    for view in _MONEY_VIEWS:
        if view not in present:
            continue
        rows = _rows(conn, f"select to_jsonb(i) as row from private.{view} i")
        count += len(rows)
        evidence += [{"view": f"private.{view}", **r["row"]} for r in rows]
    return count, [_jsonable(r) for r in evidence[:EVIDENCE_ROWS]]


# -- requests_terminal_or_open -------------------------------------------------------------------
_OPEN = """
with w as (
  select private.setting_interval('requests.unattended_after') as unattended_after,
         private.setting_interval('requests.expire_after') as expire_after,
         private.setting_interval('requests.accepted_no_join_cancel_after') as no_join_after,
         private.setting_interval('sessions.orphaned_waiting_cancel_after') as orphaned_after,
         private.setting_interval('scheduling.open_before') as open_before,
         private.setting_interval('payments.checkout_expires_after') as checkout_after,
         make_interval(secs => %(lag)s) as lag,
         now() as now_)
select 'request' as kind, r.id, r.status::text as status, r.created_at, r.status_changed_at,
       'pending past requests.unattended_after (' || w.unattended_after || ')' as problem
from public.session_requests r, w
where r.status = 'pending' and r.status_changed_at < w.now_ - w.unattended_after - w.lag
union all
select 'request', r.id, r.status::text, r.created_at, r.status_changed_at,
       'open past requests.expire_after (' || w.expire_after || ')'
from public.session_requests r, w
where r.status in ('pending', 'unattended') and r.created_at < w.now_ - w.expire_after - w.lag
union all
select 'session', s.id, s.status::text, s.created_at, s.status_changed_at,
       'waiting past sessions.orphaned_waiting_cancel_after (' || w.orphaned_after || ')'
from public.sessions s, w
where s.status = 'waiting' and s.status_changed_at < w.now_ - w.orphaned_after - w.lag
union all
select 'session', s.id, s.status::text, s.created_at, s.status_changed_at,
       'the customer never joined, past requests.accepted_no_join_cancel_after (' || w.no_join_after || ')'
from public.sessions s, w
where s.status = 'waiting' and s.status_changed_at < w.now_ - w.no_join_after - w.lag
  and s.status_changed_at >= w.now_ - w.orphaned_after - w.lag
  and not exists (select 1 from public.session_participants p
                  where p.session_id = s.id and p.user_id = s.customer_id and p.joined_at is not null)
union all
select 'session', s.id, s.status::text, s.created_at, s.status_changed_at,
       'booked session not opened for joining (scheduling.open_before ' || w.open_before || ')'
from public.sessions s, w
where s.status = 'scheduled' and s.mechanic_id is not null and s.scheduled_for < w.now_ + w.open_before - w.lag
union all
select 'session', s.id, s.status::text, s.created_at, s.status_changed_at,
       'pending session whose request is ' || r.status
from public.sessions s join public.session_requests r on r.session_id = s.id, w
where s.status = 'pending' and r.status not in ('pending', 'unattended')
union all
select 'booking', b.id, b.status::text, b.created_at, b.status_changed_at,
       'checkout still pending past its expiry ('
         || coalesce(b.expires_at::text, 'payments.checkout_expires_after') || ')'
from public.bookings b, w
where b.status = 'pending'
  and coalesce(b.expires_at, b.created_at + w.checkout_after) < w.now_ - make_interval(secs => %(booking_lag)s)
"""


def requests_terminal_or_open(conn: psycopg.Connection, ctx: CheckContext) -> tuple[int, list[dict[str, Any]]]:
    return _counted(conn, _OPEN, {"lag": ctx.lag_s, "booking_lag": ctx.booking_lag_s})


# -- sessions_within_deadline --------------------------------------------------------------------
_DEADLINE = """
with w as (select private.setting_interval('sessions.deadline_grace') as grace,
                  make_interval(secs => %(lag)s) as lag)
select s.id, s.status::text as status, s.duration_type::text as duration_type, s.started_at, s.deadline_at,
       s.ended_at, 'live past deadline + grace' as problem
from public.sessions s, w
where s.status = 'live' and s.deadline_at is not null
  and s.deadline_at + case when s.duration_type = 'micro' then interval '0' else w.grace end < now() - w.lag
union all
select s.id, s.status::text, s.duration_type::text, s.started_at, s.deadline_at, s.ended_at,
       'ended later than deadline + grace + one sweep'
from public.sessions s, w
where s.status = 'completed' and s.deadline_at is not null and s.ended_at is not null
  and s.ended_at > s.deadline_at + case when s.duration_type = 'micro' then interval '0' else w.grace end + w.lag
union all
select s.id, s.status::text, s.duration_type::text, s.started_at, s.deadline_at, s.ended_at, 'live without a deadline'
from public.sessions s
where s.status = 'live' and s.deadline_at is null
"""


def sessions_within_deadline(conn: psycopg.Connection, ctx: CheckContext) -> tuple[int, list[dict[str, Any]]]:
    return _counted(conn, _DEADLINE, {"lag": ctx.lag_s})


# -- emails_accounted ----------------------------------------------------------------------------
_EMAILS = """
with o as (
  select o.*, k.max_attempts,
         case when o.status = 'pending' then o.next_attempt_at
              when o.status = 'processing' then o.locked_until end as due_since
  from private.outbox o join private.job_kinds k on k.kind = o.kind
  where o.kind like 'email.%%'),
last_sent as (select kind, max(sent_at) as at from private.outbox where kind like 'email.%%' and status = 'sent'
              group by kind)
select o.id, o.kind, o.status::text as status, o.attempts, o.max_attempts, o.next_attempt_at, o.locked_until,
       o.last_error, o.payload ->> 'template' as template,
       case
         when o.status = 'dead' and coalesce(btrim(o.last_error), '') = '' then 'dead-lettered without a reason'
         when o.status = 'skipped' and coalesce(btrim(o.last_error), '') = '' then 'skipped without a reason'
         when o.status = 'sent' and o.sent_at is null then 'sent without sent_at'
         when o.status = 'pending' and o.attempts >= o.max_attempts then 'pending beyond its max_attempts'
         when o.status = 'pending' and o.attempts > 0 and coalesce(btrim(o.last_error), '') = ''
           then 'failed without a reason'
         when o.status = 'processing' and o.locked_until is null then 'claimed without a lease'
         when o.status = 'processing' then 'lease expired and never reclaimed'
         else 'due and never claimed'
       end as problem
from o left join last_sent l on l.kind = o.kind
where (o.status = 'dead' and coalesce(btrim(o.last_error), '') = '')
   or (o.status = 'skipped' and coalesce(btrim(o.last_error), '') = '')
   or (o.status = 'sent' and o.sent_at is null)
   or (o.status = 'pending' and o.attempts >= o.max_attempts)
   or (o.status = 'pending' and o.attempts > 0 and coalesce(btrim(o.last_error), '') = '')
   or (o.status = 'processing' and o.locked_until is null)
   or (o.status in ('pending', 'processing') and o.due_since < now() - make_interval(secs => %(lag)s)
       and (%(final)s or l.at > o.due_since + make_interval(secs => %(lag)s)))
order by o.id
"""


def emails_accounted(conn: psycopg.Connection, ctx: CheckContext) -> tuple[int, list[dict[str, Any]]]:
    """During the run a due email counts as lost once the worker has sent a later one of its kind
    (it claims in due order, so it went past this one); at the end, once it is overdue at all."""
    return _counted(conn, _EMAILS, {"lag": ctx.job_lag_s, "final": ctx.final})


# -- realtime_rls --------------------------------------------------------------------------------
_SAMPLE = """
select m.id, m.topic, m.event, m.extension, m.inserted_at, m.payload
from realtime.messages m
where m.private is true and m.extension = 'broadcast'
order by m.inserted_at desc, m.id
limit %s
"""

# Candidate users, by what the rules in docs/api.md ("Realtime") say of them.
_PEOPLE = """
select
  (select array_agg(x::text) from (select a.user_id as x from private.admins a order by a.user_id limit 2) t) as admins,
  (select array_agg(x::text) from (select m.id as x from public.mechanics m
                                   where m.status = 'approved'
                                     and not exists (select 1 from private.admins a where a.user_id = m.id)
                                   order by m.id limit 4) t) as approved,
  (select array_agg(x::text) from (select u.id as x from auth.users u
                                   where not exists (select 1 from public.mechanics m where m.id = u.id)
                                     and not exists (select 1 from private.admins a where a.user_id = u.id)
                                     and not exists (select 1 from public.organization_members o where o.user_id = u.id)
                                   order by u.id limit 4) t) as plain
"""


def _topic_parties(conn: psycopg.Connection, topic: str, people: dict[str, list[str]]) -> tuple[list[str], list[str]]:
    """(intended recipients, users who must not see it) for one topic; anonymous is "" (empty)."""
    admins, approved, plain = people["admins"], people["approved"], people["plain"]
    admin = admins[:1]
    if topic == "mechanics:presence":
        return (approved[:1] + plain[:1] + admin), [""]
    if topic == "mechanics:requests":
        return approved[:2] + admin, [*plain[:2], ""]
    if topic == "admin:queue":
        return admin, approved[:1] + plain[:1]
    kind, _, rest = topic.partition(":")
    if kind == "mechanic":
        return [rest, *admin], [m for m in approved if m != rest][:1] + plain[:1]
    if kind == "session":
        row = _rows(conn, "select customer_id::text as c, mechanic_id::text as m from public.sessions "
                          "where id = private.try_uuid(%s)", (rest,))
        parties = [v for v in (row[0]["c"], row[0]["m"]) if v] if row else []
        others = [m for m in approved if m not in parties][:1] + [u for u in plain if u not in parties][:1]
        return parties + admin, others
    if kind == "workshop":
        staff = _rows(conn, "select o.user_id::text as u from public.organization_members o "
                            "where o.organization_id = private.try_uuid(%s) "
                            "and private.workshop_can(o.organization_id, o.user_id, 'handle_appointments') "
                            "order by o.user_id limit 2", (rest,))
        members = [r["u"] for r in staff]
        return members + admin, plain[:1] + [m for m in approved if m not in members][:1]
    return [], plain[:1] + approved[:1]


def _sees(conn: psycopg.Connection, user: str, message: dict[str, Any],
          cache: dict[str, tuple[str, dict[str, Any]]]) -> bool:
    """What the Realtime server does to decide whether `user` receives the row: role, JWT claims
    and the channel's topic as transaction settings, then the row read through RLS."""
    if user not in cache:
        cache[user] = _persona(conn, user)
    role, claims = cache[user]
    with conn.transaction(force_rollback=True):
        conn.execute("select set_config('role', %s, true), set_config('request.jwt.claims', %s, true), "
                     "set_config('realtime.topic', %s, true)", (role, json.dumps(claims), message["topic"]))
        row = conn.execute("select exists (select 1 from realtime.messages where id = %s and topic = %s "
                           "and extension = %s)", (message["id"], message["topic"], message["extension"])).fetchone()
    return bool(row and row[0])


def _persona(conn: psycopg.Connection, user: str) -> tuple[str, dict[str, Any]]:
    """The role and the JWT claims Supabase Auth gives `user` ("" = anonymous)."""
    if user:
        info = _rows(conn, "select email, raw_app_meta_data as app, raw_user_meta_data as meta "
                           "from auth.users where id = %s", (user,))
        app = info[0] if info else {"email": "", "app": {}, "meta": {}}
        role = "authenticated"
        claims: dict[str, Any] = {"sub": user, "role": role, "aud": "authenticated", "email": app["email"] or "",
                                  "app_metadata": app["app"] or {}, "user_metadata": app["meta"] or {},
                                  "is_anonymous": False}
    else:
        role, claims = "anon", {"role": "anon"}
    return role, claims


def realtime_rls(conn: psycopg.Connection, ctx: CheckContext) -> tuple[int, list[dict[str, Any]]]:
    messages = _rows(conn, _SAMPLE, (ctx.realtime_sample,))
    people_row = _rows(conn, _PEOPLE)[0]
    people = {k: list(v or []) for k, v in people_row.items()}
    leaks: list[dict[str, Any]] = []
    missed: list[dict[str, Any]] = []
    probes = 0
    cache: dict[str, tuple[str, dict[str, Any]]] = {}
    for m in messages:
        recipients, excluded = _topic_parties(conn, m["topic"], people)
        base = {"message_id": str(m["id"]), "topic": m["topic"], "event": m["event"]}
        for user in dict.fromkeys(recipients):
            probes += 1
            if not _sees(conn, user, m, cache):
                missed.append({**base, "user_id": user, "should_see": True, "sees": False})
        for user in dict.fromkeys(excluded):
            probes += 1
            if _sees(conn, user, m, cache):
                leaks.append({**base, "user_id": user or "anon", "should_see": False, "sees": True})
    summary = {"summary": True, "messages_sampled": len(messages), "probes": probes,
               "seen_by_excluded_user": len(leaks), "missed_by_intended_recipient": len(missed)}
    evidence = [summary, *leaks[:EVIDENCE_ROWS - 1]]
    evidence += missed[:EVIDENCE_ROWS - len(evidence)]
    return len(leaks), [_jsonable(e) for e in evidence]


# -- paid_sessions_settled -----------------------------------------------------------------------
_SETTLED = """
with w as (select private.setting_interval('trust.unverified_refund_after') as unverified_after,
                  array(select jsonb_array_elements_text(private.setting('payments.auto_refund_from_statuses')))
                    as auto_refund,
                  make_interval(secs => %(lag)s) as lag),
pay as (
  select p.id, p.session_id, p.amount_cents, p.paid_at, p.created_at, p.settled_at, p.status::text as status,
         coalesce((select sum(r.amount_cents) from public.refunds r
                   where r.payment_id = p.id and r.status in ('queued', 'processing', 'succeeded', 'failed')), 0)
           as refunded
  from public.payments p where p.session_id is not null)
select s.id as session_id, pay.id as payment_id, s.status::text as status, s.delivery, s.ended_at,
       pay.amount_cents, pay.refunded, 'delivered but its payment is neither settled nor refunded' as problem
from public.sessions s join pay on pay.session_id = s.id
join lateral (select max(x.at) as at from public.session_events x
              where x.session_id = s.id and x.entity = 'session' and x.to_status = 'completed') c on true
where s.status = 'completed' and s.delivery = 'delivered' and pay.created_at <= c.at
  and pay.settled_at is null and pay.refunded < pay.amount_cents
union all
select s.id, pay.id, s.status::text, s.delivery, s.ended_at, pay.amount_cents, pay.refunded,
       'unverified, past trust.unverified_refund_after (' || w.unverified_after || '), neither decided nor refunded'
from public.sessions s join pay on pay.session_id = s.id, w
where s.status = 'completed' and s.delivery = 'unverified' and pay.settled_at is null
  and pay.refunded < pay.amount_cents and s.ended_at < now() - w.unverified_after - w.lag
  and not exists (select 1 from public.session_delivery_decisions d where d.session_id = s.id)
union all
select s.id, pay.id, s.status::text, e.from_status, s.ended_at, pay.amount_cents, pay.refunded,
       'cancelled from ' || e.from_status || ' but not refunded in full'
from public.sessions s join pay on pay.session_id = s.id, w,
lateral (select x.from_status, x.at from public.session_events x
         where x.session_id = s.id and x.entity = 'session' and x.to_status = 'cancelled'
         order by x.id desc limit 1) e
where s.status = 'cancelled' and e.from_status = any (w.auto_refund) and pay.created_at <= e.at
  and pay.refunded < pay.amount_cents
"""


def paid_sessions_settled(conn: psycopg.Connection, ctx: CheckContext) -> tuple[int, list[dict[str, Any]]]:
    return _counted(conn, _SETTLED, {"lag": ctx.lag_s})


CHECKS: list[Check] = [
    Check("one_job_per_mechanic",
          "no mechanic holds two jobs: at most one session held now (an accepted request not ended, an "
          "in_progress commitment, a live session), one in_progress commitment, and never two on-demand "
          "commitments or two live sessions overlapping in time",
          one_job_per_mechanic),
    Check("no_overlapping_commitments",
          "no two active commitments (held, confirmed, in_progress) of one mechanic overlap; none stays "
          "active after its session ended; no hold outlives its expiry by more than one sweep",
          no_overlapping_commitments),
    Check("money_integrity",
          "private.payment_integrity_issues, credit_integrity_issues and referral_integrity_issues are empty: "
          "every payment = refunds + transfers + platform fee + pending",
          money_integrity),
    Check("requests_terminal_or_open",
          "every request, session and Checkout booking is terminal or open within the windows in private.settings "
          "(unattended, expiry, no-join, orphaned waiting, booked opening, Checkout expiry) plus one sweep",
          requests_terminal_or_open),
    Check("sessions_within_deadline",
          "no session stays live past deadline_at + sessions.deadline_grace (micro: no grace) by more than one "
          "sweep, and none ended later than that",
          sessions_within_deadline),
    Check("emails_accounted",
          "every queued email is sent, dead-lettered or skipped with a reason, or pending within its retry "
          "policy; none failed without a reason or was left claimed or due after the worker moved past it",
          emails_accounted),
    Check("realtime_rls",
          "Realtime RLS as the Realtime server evaluates it: the newest messages are visible to their intended "
          "recipients and to no one the rules exclude (count = rows seen by an excluded user)",
          realtime_rls),
    Check("paid_sessions_settled",
          "each paid session has its money path: delivered → settled (or refunded); unverified → decided or "
          "refunded after trust.unverified_refund_after; cancelled before it started → refunded in full (refunds "
          "queued, sent, or failed and left for an admin)",
          paid_sessions_settled),
]


def _run_one(conn: psycopg.Connection, check: Check, ctx: CheckContext) -> CheckResult:
    idle = conn.info.transaction_status == pq.TransactionStatus.IDLE
    try:
        with conn.transaction(force_rollback=True):
            if idle:
                conn.execute("set transaction read only")
            conn.execute("set local statement_timeout = '60s'")
            count, evidence = check.run(conn, ctx)
        return CheckResult(check.name, check.description, count, evidence)
    except Exception as exc:  # a failing check is a result, never an exception of the run
        if isinstance(exc, psycopg.OperationalError) and (conn.broken or conn.closed):
            raise  # the connection is lost (a database restart): no check could run, none failed
        if idle and conn.info.transaction_status == pq.TransactionStatus.INERROR:
            conn.rollback()
        return CheckResult(check.name, check.description, -1,
                           [{"error": f"{type(exc).__name__}: {exc}".strip()[:2000]}])


def check_all(conn: psycopg.Connection, ctx: CheckContext) -> list[CheckResult]:
    """Every check of `CHECKS`, in order. Raises only `psycopg.OperationalError` when the connection
    itself is lost (the database restarting): the caller reconnects and checks again."""
    return [_run_one(conn, check, ctx) for check in CHECKS]


def violations(results: list[CheckResult]) -> list[CheckResult]:
    """The results that stop a run: a violation found, or a check that could not run."""
    return [r for r in results if r.count != 0]
