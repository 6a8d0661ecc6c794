"""Payments: checkout, the Stripe webhook, Connect onboarding, and the Stripe worker.

The rules live in SQL (supabase/functions_sql/payments/); this module runs them in short
transactions as `service_role` and calls Stripe between them, never inside a transaction or while
holding a row lock:

- checkout:  validate + record a pending booking (SQL) → create the Checkout Session (Stripe) →
             record its id (SQL). Credit that covers the price pays at once, without Stripe.
- webhook:   verify the signature → one transaction: ledger row, lock, apply once, mark processed.
             A handler failure rolls back, is recorded in a transaction of its own, and answers 500.
- jobs:      refunds, transfers, reversals and account refetches are jobs of the one queue
             (shared/worker.py): the handlers below start (SQL) → call Stripe with the job's key
             as idempotency key → record (SQL); `process_payouts()` runs one pass over them.

docs/payments.md has the money flow and every decision.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
import stripe
from psycopg.types.json import Jsonb

from shared import db
from shared.errors import AppError
from shared.logs import log
from shared.stripe_client import error_text, get_client, idempotency_key, options, verify_event
from shared.worker import JobFailed
from shared.worker import outcomes as worker_outcomes


def _one(conn: db.Conn, query: str, params: tuple[Any, ...]) -> Any:
    row = conn.execute(query, params).fetchone()
    return None if row is None else next(iter(row.values()))


# ---------------------------------------------------------------------------------------------
# Checkout
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckoutRequest:
    """Exactly one of plan_code (book now), hold_id (a held slot), extension_id (a paid
    extension of a live session) or follow_up_id (a follow-up question past the free ones, from
    ask_follow_up); with extension_id or follow_up_id no intake, vehicle, mechanic or specialist."""

    plan_code: str | None
    intake_id: uuid.UUID | None
    success_url: str
    cancel_url: str
    vehicle_id: uuid.UUID | None = None
    preferred_mechanic_id: uuid.UUID | None = None
    specialist: bool = False
    hold_id: uuid.UUID | None = None
    extension_id: uuid.UUID | None = None
    follow_up_id: uuid.UUID | None = None


def create_checkout(
    customer_id: str, req: CheckoutRequest, *, client: stripe.StripeClient | None = None
) -> dict[str, Any]:
    """A paid booking: {mode: "credit", booking_id, session_id, ...} when credit paid it, else
    {mode: "stripe", booking_id, url} for Stripe Checkout."""
    if sum(x is not None for x in (req.plan_code, req.hold_id, req.extension_id, req.follow_up_id)) != 1:
        raise AppError("invalid_input", "give exactly one of plan_code, hold_id, extension_id or follow_up_id")
    if req.extension_id is not None and (req.intake_id is not None or req.vehicle_id is not None
                                         or req.preferred_mechanic_id is not None or req.specialist):
        raise AppError("invalid_input", "an extension is paid on its own: no intake, vehicle, mechanic or specialist")
    if req.follow_up_id is not None and (req.intake_id is not None or req.vehicle_id is not None
                                         or req.preferred_mechanic_id is not None or req.specialist):
        raise AppError("invalid_input", "a follow-up is paid on its own: no intake, vehicle, mechanic or specialist")
    with db.transaction() as conn:
        if req.follow_up_id is not None:
            prep = _one(conn, "select private.prepare_follow_up_checkout(%s, %s)", (customer_id, req.follow_up_id))
        elif req.extension_id is not None:
            prep = _one(conn, "select private.prepare_extension_checkout(%s, %s)", (customer_id, req.extension_id))
        elif req.hold_id is not None:
            prep = _one(conn, "select private.prepare_hold_checkout(%s, %s, %s, %s)",
                        (customer_id, req.hold_id, req.intake_id, req.vehicle_id))
        else:
            prep = _one(conn, "select private.prepare_checkout(%s, %s, %s, %s, %s, %s)",
                        (customer_id, req.plan_code, req.intake_id, req.vehicle_id, req.preferred_mechanic_id,
                         req.specialist))
    booking_id = prep["booking_id"]
    # an extension's answers also name the extension (and, paid with credit, the new deadline)
    extra = {k: prep[k] for k in ("extension_id", "extension_status", "deadline_at", "follow_up_id") if k in prep}
    if prep["mode"] == "credit":
        return {"mode": "credit", "url": None, "booking_id": booking_id, "session_id": prep["session_id"],
                "request_id": prep["request_id"], "price_cents": prep["price_cents"], "currency": prep["currency"],
                "credit_balance_cents": prep["credit_balance_cents"], **extra}
    if prep.get("reused"):
        return {"mode": "stripe", "url": prep["url"], "booking_id": booking_id, "price_cents": prep["price_cents"],
                "currency": prep["currency"], **extra}

    if prep.get("extension_id"):
        what = {"extension_id": prep["extension_id"], "session_id": prep["session_id"]}
    elif prep.get("follow_up_id"):
        what = {"plan_code": prep["plan_code"], "follow_up_id": prep["follow_up_id"]}
    else:
        what = {"plan_code": prep["plan_code"]}

    params: stripe.params.checkout.SessionCreateParams = {
        "mode": "payment",
        "line_items": [{
            "quantity": 1,
            "price_data": {
                "currency": prep["currency"],
                "unit_amount": prep["price_cents"],  # our catalog's price, never the client's
                "product_data": {"name": prep["product_name"], "metadata": what},
            },
        }],
        "success_url": req.success_url,
        "cancel_url": req.cancel_url,
        "client_reference_id": booking_id,
        "metadata": {"booking_id": booking_id, "customer_id": str(customer_id), **what},
        "payment_intent_data": {
            "transfer_group": f"booking_{booking_id}",
            "metadata": {"booking_id": booking_id},
        },
        "expires_at": prep["expires_at"],
    }
    if prep.get("customer_email"):
        params["customer_email"] = prep["customer_email"]
    try:
        client = client or get_client()
        session = client.v1.checkout.sessions.create(params, options(idempotency_key("checkout", booking_id)))
    except (stripe.StripeError, AppError) as exc:
        with db.transaction() as conn:
            conn.execute("select private.fail_checkout(%s, %s)", (booking_id, error_text(exc)))
        if isinstance(exc, AppError):
            raise
        log("error", "checkout session not created", booking_id=booking_id, error=error_text(exc))
        raise AppError("provider_error", "Stripe could not create the checkout; try again") from exc
    with db.transaction() as conn:
        recorded = _one(conn, "select private.record_checkout_session(%s, %s, %s)",
                        (booking_id, session.id, session.url))
    return {"mode": "stripe", "url": recorded["url"], "booking_id": booking_id, "price_cents": prep["price_cents"],
            "currency": prep["currency"], **extra}


# ---------------------------------------------------------------------------------------------
# Webhook
# ---------------------------------------------------------------------------------------------
def handle_webhook(payload: bytes, signature: str | None) -> dict[str, Any]:
    """Verify, then apply the event once. Returns {event_id, type, outcome} (outcome `duplicate`
    for an event already processed). Raises on failure after recording the error."""
    verify_event(payload, signature)
    text = payload.decode("utf-8")  # stored as received (verify_event proved it is UTF-8 JSON)
    try:
        with db.transaction() as conn:
            outcome: dict[str, Any] = _one(conn, "select private.handle_stripe_event(%s::jsonb)", (text,))
            return outcome
    except AppError:
        raise
    except psycopg.Error as exc:
        if exc.sqlstate == "AD001":  # not an event we can key: nothing to record
            raise
        _record_event_error(text, exc)
        raise
    except Exception as exc:
        _record_event_error(text, exc)
        raise


def _record_event_error(text: str, exc: BaseException) -> None:
    message = f"{type(exc).__name__}: {getattr(getattr(exc, 'diag', None), 'message_primary', None) or exc}"
    log("error", "stripe event failed", error=message[:500])
    try:
        with db.transaction() as conn:
            conn.execute("select private.record_stripe_event_error(%s::jsonb, %s)", (text, message[:2000]))
    except Exception as record_exc:  # the original failure is what the caller must see
        log("error", "could not record the stripe event failure", error=repr(record_exc)[:500])


# ---------------------------------------------------------------------------------------------
# Connect onboarding
# ---------------------------------------------------------------------------------------------
def start_onboarding(user_id: str, organization_id: uuid.UUID | None, return_url: str, refresh_url: str, *,
                     client: stripe.StripeClient | None = None) -> dict[str, Any]:
    """The Standard account of an approved mechanic (or of a workshop the caller owns), created once,
    and a fresh onboarding link for it. Standard: the mechanic (or workshop) controls the account
    (its own Stripe Dashboard, payouts and settings); Stripe requests its capabilities itself."""
    with db.transaction() as conn:
        info = _one(conn, "select private.prepare_connect_account(%s, %s)", (user_id, organization_id))
    client = client or get_client()
    account_id = info["stripe_account_id"]
    try:
        if not account_id:
            params: stripe.params.AccountCreateParams = {
                "type": "standard",
                "metadata": {f"{info['owner_kind']}_id": info["owner_id"]},
            }
            if info.get("country"):
                params["country"] = info["country"]
            if info.get("email"):
                params["email"] = info["email"]
            account = client.v1.accounts.create(
                params, options(idempotency_key("connect-account", info["owner_kind"], info["owner_id"])))
            with db.transaction() as conn:
                stored = _one(conn, "select private.record_connect_account(%s, %s, %s)",
                              (info["owner_kind"], info["owner_id"], account.id))
            account_id = stored["stripe_account_id"]
        link = client.v1.account_links.create({
            "account": account_id, "refresh_url": refresh_url, "return_url": return_url, "type": "account_onboarding",
        })
    except stripe.StripeError as exc:
        log("error", "connect onboarding failed", owner=info["owner_id"], error=error_text(exc))
        raise AppError("provider_error", "Stripe could not start onboarding; try again") from exc
    return {"url": link.url, "stripe_account_id": account_id, "owner_kind": info["owner_kind"],
            "owner_id": info["owner_id"], "expires_at": getattr(link, "expires_at", None)}


# ---------------------------------------------------------------------------------------------
# The Stripe jobs: refunds, transfers, reversals (and account refetches)
# ---------------------------------------------------------------------------------------------
# Handlers of shared/worker.py. Each: start (SQL: the row → processing, or nothing to do) → call
# Stripe with the job's key as idempotency key → record (SQL). Failing = raising: the queue retries
# the job and the kind's on_failure hook puts the row back in queued, or ends it failed.
class _NotReady(Exception):
    """A call that cannot be made yet (e.g. the payment's charge is not known)."""


def _stripe_ref(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return getattr(value, "id", None)


def process_payouts(*, client: stripe.StripeClient | None = None, limit: int = 50,
                    now: dt.datetime | None = None) -> dict[str, int]:
    """One pass over the Stripe jobs (the cron worker does the same in every run; safe to run
    concurrently and twice). Order: account refetches, refunds (refund before paying out wherever
    possible), transfers, transfer reversals. Returns counts per outcome."""
    from shared import worker

    token = _client_override.set(client or get_client())  # payments_not_configured without a key
    try:
        return dict(worker.work(now, limit, worker.STRIPE_KINDS).outcomes)
    finally:
        _client_override.reset(token)


_client_override: contextvars.ContextVar[stripe.StripeClient | None] = contextvars.ContextVar(
    "stripe_client_override", default=None)


def _client() -> stripe.StripeClient:
    return _client_override.get() or get_client()


def stripe_ready() -> bool:
    """Stripe is configured (or a client was injected): its jobs may run."""
    try:
        _client()
    except AppError:
        return False
    return True


def _now(job: dict[str, Any]) -> dt.datetime | None:
    return job.get("_now")


@contextmanager
def _stripe_call(what: str, **ids: Any) -> Iterator[None]:
    """A failed Stripe call (or one that cannot be made yet) fails the job with error_text."""
    try:
        yield
    except (stripe.StripeError, _NotReady) as exc:
        log("info", f"{what} failed", error=error_text(exc), **{k: str(v) for k, v in ids.items()})
        raise JobFailed(error_text(exc)) from exc


@worker_outcomes(retry="accounts_failed", dead="accounts_failed", ready=stripe_ready)
def refresh_account(job: dict[str, Any]) -> str:
    """`stripe.refresh_account`: {account}. A read: no idempotency key needed."""
    with _stripe_call("account refetch", account=job["account"]):
        account = _client().v1.accounts.retrieve(job["account"])
    now = _now(job)
    with db.transaction() as conn:
        conn.execute("select private.apply_account_snapshot(%s::jsonb, coalesce(%s::timestamptz, now()), true,"
                     " coalesce(%s::timestamptz, now()))",
                     (Jsonb(account.to_dict(for_json=True)), now, now))
    return "accounts_refreshed"


@worker_outcomes(retry="refunds_queued", dead="refunds_failed", ready=stripe_ready)
def send_refund(job: dict[str, Any]) -> str | None:
    """`stripe.refund`: {refund_id}; key refund:<payment_id>:<n>."""
    now = _now(job)
    with db.transaction() as conn:
        row = conn.execute("select * from private.start_refund_job(%s, coalesce(%s::timestamptz, now()))",
                           (job["refund_id"], now)).fetchone()
    if row is None:
        return None  # no longer to send (sent, adopted or cancelled meanwhile)
    with _stripe_call("refund", refund_id=row["refund_id"]):
        if not row["payment_intent_id"]:
            raise _NotReady("the payment has no payment intent")
        refund = _client().v1.refunds.create(
            {"payment_intent": row["payment_intent_id"], "amount": row["amount_cents"],
             "metadata": {"refund_id": str(row["refund_id"]), "payment_id": str(row["payment_id"])}},
            options(job["_dedupe_key"]))
    with db.transaction() as conn:
        status = _one(conn, "select private.record_refund_sent(%s, %s, %s, coalesce(%s::timestamptz, now()))",
                      (row["refund_id"], refund.id, refund.status, now))
    return f"refunds_{status}"


@worker_outcomes(retry="transfers_queued", dead="transfers_failed", ready=stripe_ready)
def send_transfer(job: dict[str, Any]) -> str | None:
    """`stripe.transfer`: {payout_id}; key transfer:<session_id>:<payee>, a paid extension's
    transfer:<session_id>:<payee>:<payment_id> (one transfer per payee per payment); a referral
    payout's transfer:referral:<payout_id> (private.transfer_job_key)."""
    now = _now(job)
    with db.transaction() as conn:
        row = conn.execute("select * from private.start_payout_job(%s, coalesce(%s::timestamptz, now()))",
                           (job["payout_id"], now)).fetchone()
    if row is None:
        return None  # paid, cancelled, or waiting for its payee again
    charge = row["charge_id"]
    with _stripe_call("transfer", payout_id=row["payout_id"]):
        if row["method"] == "card" and not charge:
            if not row["payment_intent_id"]:
                raise _NotReady("the payment has no payment intent")
            intent = _client().v1.payment_intents.retrieve(row["payment_intent_id"])
            charge = _stripe_ref(intent.latest_charge)
            if not charge:
                raise _NotReady("the payment has no charge yet")
            with db.transaction() as conn:
                conn.execute("select private.record_payment_charge(%s, %s)", (row["payment_id"], charge))
        params: stripe.params.TransferCreateParams = {
            "amount": row["amount_cents"], "currency": row["currency"], "destination": row["destination"],
            "transfer_group": row["transfer_group"],
            "metadata": {"payout_id": str(row["payout_id"]), "session_id": str(row["session_id"]),
                         "payment_id": str(row["payment_id"])},
        }
        if charge:
            params["source_transaction"] = charge  # funds from this charge, available or not
        transfer = _client().v1.transfers.create(params, options(job["_dedupe_key"]))
    with db.transaction() as conn:
        conn.execute("select private.record_payout_paid(%s, %s, coalesce(%s::timestamptz, now()))",
                     (row["payout_id"], transfer.id, now))
    return "transfers_paid"


@worker_outcomes(retry="reversals_queued", dead="reversals_failed", ready=stripe_ready)
def send_reversal(job: dict[str, Any]) -> str | None:
    """`stripe.transfer_reversal`: {reversal_id}; key reversal:<payout_id>:<refund_id>."""
    now = _now(job)
    with db.transaction() as conn:
        row = conn.execute("select * from private.start_reversal_job(%s, coalesce(%s::timestamptz, now()))",
                           (job["reversal_id"], now)).fetchone()
    if row is None:
        return None  # done meanwhile, or its payout is not paid (paying it lets the reversal go)
    with _stripe_call("reversal", reversal_id=row["reversal_id"]):
        reversal = _client().v1.transfers.reversals.create(
            row["transfer_id"],
            {"amount": row["amount_cents"],
             "metadata": {"reversal_id": str(row["reversal_id"]), "refund_id": str(row["refund_id"])}},
            options(job["_dedupe_key"]))
    with db.transaction() as conn:
        conn.execute("select private.record_reversal_done(%s, %s, coalesce(%s::timestamptz, now()))",
                     (row["reversal_id"], reversal.id, now))
    return "reversals_succeeded"
