"""Intakes and audit helpers: PostgREST's CSV rendering over an RPC's rows, and a few intakes.

PostgREST answers `Accept: text/csv` by building the body in SQL over the call's rows: a header of
the first row's JSON keys joined by commas, then each row's record text without its parentheses,
one per line. `csv_body` runs that same SQL over `admin_export_intakes`, so a test sees the bytes a
client receives.
"""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

import psycopg

from tests.support.factories import make_intake
from tests.support.harness import Db

EXPORT_COLUMNS = [
    "intake_id",
    "created_at",
    "customer_id",
    "customer_name",
    "contact_name",
    "contact_email",
    "concern",
    "vehicle_make",
    "vehicle_model",
    "vehicle_year",
    "plan_code",
    "status",
    "requested_at",
    "scheduled_for",
    "started_at",
    "ended_at",
    "outcome",
    "refunded_cents",
]

CSV_SQL = """
with pgrst_source as (select * from public.admin_export_intakes(p_from => %(p_from)s::date, p_to => %(p_to)s::date))
select (select coalesce(string_agg(a.k, ','), '')
        from (select json_object_keys(r)::text as k
              from (select row_to_json(hh) as r from pgrst_source as hh limit 1) s) a)
       || chr(10)
       || coalesce(string_agg(substring(_postgrest_t::text, 2, length(_postgrest_t::text) - 2), chr(10)), '')
       as body
from (select * from pgrst_source) _postgrest_t
"""

VIEW_CSV_SQL = """
with pgrst_source as (select * from public.admin_intakes_export)
select (select coalesce(string_agg(a.k, ','), '')
        from (select json_object_keys(r)::text as k
              from (select row_to_json(hh) as r from pgrst_source as hh limit 1) s) a)
       || chr(10)
       || coalesce(string_agg(substring(_postgrest_t::text, 2, length(_postgrest_t::text) - 2), chr(10)), '')
       as body
from (select * from pgrst_source) _postgrest_t
"""


def csv_body(db: Db, p_from: str, p_to: str) -> str:
    """The body PostgREST sends for POST /rpc/admin_export_intakes with Accept: text/csv."""
    body: str = db.scalar(CSV_SQL, {"p_from": p_from, "p_to": p_to})
    return body


def view_csv_body(db: Db) -> str:
    """The body PostgREST sends for GET /admin_intakes_export with Accept: text/csv."""
    body: str = db.scalar(VIEW_CSV_SQL)
    return body


def parse_csv(body: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body)))


def intakes(db: Db, customer: uuid.UUID, n: int, **fields: Any) -> list[uuid.UUID]:
    """`n` intakes of `customer`, filed long enough ago that the hourly limit on intakes never counts them."""
    ids = []
    for _ in range(n):
        intake = make_intake(db, customer, **fields)
        db.execute("update public.intakes set created_at = now() - interval '2 hours' where id = %s", (intake,))
        ids.append(intake)
    return ids


def statuses(db: Db, ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    rows = db.all("select id, status::text as status from public.intakes where id = any(%s)", (ids,))
    return {r["id"]: r["status"] for r in rows}


def audit_rows(db: Db, action: str, subject: uuid.UUID | None = None) -> list[dict[str, Any]]:
    return db.all(
        "select * from private.admin_actions where action = %s"
        " and (%s::uuid is null or subject_id = %s::uuid) order by id",
        (action, subject, subject),
    )


BULK_SQL = (
    "select public.admin_bulk_update_intakes(p_intake_ids => %(ids)s::uuid[], p_status => %(status)s::text,"
    " p_note => %(note)s::text)"
)


def bulk(db: Db, ids: list[uuid.UUID] | None, status: str | None, note: str | None = None) -> dict[str, Any]:
    """admin_bulk_update_intakes as PostgREST calls it (the JSON array as a uuid[])."""
    out: dict[str, Any] = db.scalar(BULK_SQL, {"ids": ids, "status": status, "note": note})
    return out


def bulk_error(
    db: Db, ids: list[uuid.UUID | None] | None, status: str | None, note: str | None = None
) -> psycopg.Error:
    return db.error(BULK_SQL, {"ids": ids, "status": status, "note": note})
