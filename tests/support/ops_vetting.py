"""Helpers for vetting and suspension: documents sent into the mechanic-documents bucket."""

from __future__ import annotations

import json
import uuid
from typing import Any

from tests.support.harness import Db

PDF = {"size": 120_000, "mimetype": "application/pdf"}


def doc_name(mechanic: uuid.UUID, kind: str, file: str = "scan.pdf") -> str:
    return f"mechanics/{mechanic}/{kind}/{file}"


def send_document(
    db: Db, mechanic: uuid.UUID, kind: str, file: str = "scan.pdf", metadata: dict[str, Any] | None = None
) -> None:
    """`mechanic` uploads one document as Storage does (an insert under its policies)."""
    with db.as_user(mechanic):
        db.execute(
            "insert into storage.objects (bucket_id, name, owner_id, metadata)"
            " values ('mechanic-documents', %s, %s, %s::jsonb)",
            (doc_name(mechanic, kind, file), str(mechanic), json.dumps(metadata or PDF)),
        )


def send_required(db: Db, mechanic: uuid.UUID) -> None:
    for kind in ("licence", "insurance"):
        send_document(db, mechanic, kind)
