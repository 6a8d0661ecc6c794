"""JWTs shaped like Supabase Auth's, signed with the project's JWT secret (HS256)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt

ROLES = ("authenticated", "service_role", "anon")


def make_token(
    *,
    secret: str,
    user_id: str | None = None,
    role: str = "authenticated",
    email: str | None = None,
    app_metadata: dict[str, Any] | None = None,
    user_metadata: dict[str, Any] | None = None,
    ttl: int = 3600,
    issuer: str = "supabase-demo",
    extra: dict[str, Any] | None = None,
    now: int | None = None,
) -> str:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if role == "authenticated" and not user_id:
        raise ValueError("an authenticated token needs a user id")
    if user_id is not None:
        user_id = str(uuid.UUID(str(user_id)))
    if not 1 <= ttl <= 7 * 24 * 3600:
        raise ValueError("ttl must be between 1 second and 7 days")
    iat = int(time.time()) if now is None else now
    claims: dict[str, Any] = {"iss": issuer, "role": role, "iat": iat, "exp": iat + ttl}
    if user_id is not None:
        claims.update(
            sub=user_id,
            aud="authenticated" if role == "authenticated" else role,
            email=email or "",
            phone="",
            app_metadata=app_metadata if app_metadata is not None else {"provider": "email", "providers": ["email"]},
            user_metadata=user_metadata or {},
            aal="aal1",
            amr=[{"method": "password", "timestamp": iat}],
            session_id=str(uuid.uuid4()),
            is_anonymous=False,
        )
    if extra:
        claims.update(extra)
    return jwt.encode(claims, secret, algorithm="HS256")
