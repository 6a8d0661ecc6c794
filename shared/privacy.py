"""The erasure job (`privacy.erase_account`, docs/privacy.md#erasure): erase the person in the
database (private.erase_account), then delete their files through the Storage API — deleting the
`storage.objects` rows alone would leave the bytes in the bucket."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from typing import Any

from shared import db
from shared.config import get_settings
from shared.worker import JobFailed, outcomes

# Names per call: Storage deletes a list of object names of one bucket in one request.
STORAGE_BATCH = 100


def delete_objects(bucket: str, names: list[str]) -> None:
    """`DELETE /storage/v1/object/<bucket>` with {"prefixes": [names]} and the service key."""
    settings = get_settings()
    if not settings.supabase_url or not settings.supabase_service_role_key:
        raise JobFailed("Storage is not configured (SUPABASE_URL, SUPABASE_SERVICE_ROLE_KEY): files wait")
    url = f"{settings.supabase_url.rstrip('/')}/storage/v1/object/{urllib.parse.quote(bucket, safe='')}"
    request = urllib.request.Request(  # noqa: S310 - the base URL comes from configuration
        url,
        data=json.dumps({"prefixes": names}).encode(),
        method="DELETE",
        headers={
            "Authorization": f"Bearer {settings.supabase_service_role_key}",
            "apikey": settings.supabase_service_role_key,
            "Content-Type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            response.read()
    except urllib.error.HTTPError as exc:
        raise JobFailed(f"Storage answered {exc.code}: {exc.read()[:300]!r}") from None


@outcomes(retry="erasure_waiting", dead="erasure_dead")
def erase_account(payload: dict[str, Any]) -> str:
    """Job handler: erase the person if their request is due and nothing remains to settle (else
    fail, so the queue retries later), then delete their Storage objects. Idempotent: an erased
    account is erased again as a no-op and its remaining objects are deleted."""
    with db.transaction() as conn:
        out = db.one(
            conn,
            "select private.erase_account(%s, coalesce(%s::timestamptz, now())) as r",
            (payload["user_id"], payload.get("_now")),
        )["r"]
    status = out["status"]
    if status == "blocked":
        raise JobFailed(out["message"])
    if status == "not_due":
        raise JobFailed(f"erasure not due before {out['due_at']}")
    if status != "erased":
        return "erasure_cancelled"
    by_bucket: dict[str, list[str]] = defaultdict(list)
    for obj in out["objects"]:
        by_bucket[obj["bucket"]].append(obj["name"])
    for bucket, names in sorted(by_bucket.items()):
        for i in range(0, len(names), STORAGE_BATCH):
            delete_objects(bucket, names[i : i + STORAGE_BATCH])
    return "erased"
