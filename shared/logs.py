"""Structured JSON logs (one object per line on stderr); secrets are never passed here."""

from __future__ import annotations

import json
import sys
import time
from typing import Any


def log(level: str, message: str, **fields: Any) -> None:
    record = {"severity": level.upper(), "message": message, "time": time.time(), **fields}
    print(json.dumps(record, default=str), file=sys.stderr, flush=True)
