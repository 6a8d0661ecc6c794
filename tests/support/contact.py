"""Helpers for the contact-details, columns and waiver tests: the catalog's column privileges per
role, in the form of docs/access.md."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.support.harness import Db

ACCESS_DOC = Path(__file__).resolve().parents[2] / "docs" / "access.md"
ROLES = ("anon", "authenticated", "service_role")
BEGIN, END = "<!-- access:begin -->", "<!-- access:end -->"
KINDS = {"r": "table", "p": "table", "v": "view", "m": "materialized view", "f": "foreign table"}


def catalog_access(db: Db, schema: str = "public") -> dict[str, dict[str, Any]]:
    """relation -> {"kind": ..., role: "all" | "—" | [columns in order]} from has_column_privilege."""
    rows = db.all(
        "select c.relname, c.relkind::text as relkind, a.attname, a.attnum,"
        " has_column_privilege('anon', c.oid, a.attnum, 'SELECT') as anon,"
        " has_column_privilege('authenticated', c.oid, a.attnum, 'SELECT') as authenticated,"
        " has_column_privilege('service_role', c.oid, a.attnum, 'SELECT') as service_role"
        " from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped"
        " where n.nspname = %s and c.relkind in ('r', 'p', 'v', 'm', 'f')"
        " order by c.relname, a.attnum", (schema,))
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = out.setdefault(row["relname"], {"kind": KINDS[row["relkind"]], "_columns": [],
                                                **{role: [] for role in ROLES}})
        entry["_columns"].append(row["attname"])
        for role in ROLES:
            if row[role]:
                entry[role].append(row["attname"])
    for entry in out.values():
        columns = entry.pop("_columns")
        for role in ROLES:
            entry[role] = "all" if entry[role] == columns else "—" if not entry[role] else entry[role]
    return out


def render(access: dict[str, dict[str, Any]]) -> str:
    """The table of docs/access.md (between its markers)."""
    def cell(value: Any) -> str:
        return value if isinstance(value, str) else ", ".join(f"`{c}`" for c in value)

    lines = ["| relation | kind | anon | authenticated | service_role |", "|---|---|---|---|---|"]
    lines += [f"| `{name}` | {e['kind']} | {cell(e['anon'])} | {cell(e['authenticated'])} | {cell(e['service_role'])} |"
              for name, e in sorted(access.items())]
    return "\n".join(lines)


def documented() -> str:
    text = ACCESS_DOC.read_text()
    match = re.search(re.escape(BEGIN) + r"\n(.*?)\n" + re.escape(END), text, re.S)
    assert match, f"{ACCESS_DOC} has no {BEGIN} … {END} table"
    return match.group(1).strip()


def go_live(db: Db, session: Any) -> None:
    """The session goes live as the platform takes it live (both participants present), whatever
    the start rule: as the superuser, waiting → live."""
    assert db.execute("update public.sessions set status = 'live', started_at = now() "
                      "where id = %s and status = 'waiting'", (session,)).rowcount == 1


def finish(db: Db, session: Any) -> None:
    """The live session completes through its lifecycle function."""
    db.execute("select private.complete_session(%s, null, null, now())", (session,))
    assert db.scalar("select status from public.sessions where id = %s", (session,)) == "completed"
