"""Who is calling an HTTP function: Supabase user access tokens (HS256 with the project's JWT
secret, or asymmetric keys published as JWKS) and the cron shared secret."""

from __future__ import annotations

import hmac
import threading
from dataclasses import dataclass, field
from typing import Any

import jwt

from shared.config import get_settings
from shared.errors import AppError

ASYMMETRIC = ["RS256", "ES256", "EdDSA"]
_jwks_clients: dict[str, jwt.PyJWKClient] = {}
_jwks_lock = threading.Lock()


@dataclass(frozen=True)
class User:
    """The verified caller. `claims` is what PostgREST would put in request.jwt.claims."""

    id: str
    role: str
    email: str | None
    claims: dict[str, Any] = field(repr=False)


def _jwks_client(url: str) -> jwt.PyJWKClient:
    with _jwks_lock:
        client = _jwks_clients.get(url)
        if client is None:
            client = jwt.PyJWKClient(url, cache_keys=True, lifespan=600, timeout=5)
            _jwks_clients[url] = client
        return client


def bearer_token(header: str | None) -> str:
    if not header or not header.startswith("Bearer ") or len(header) > 16_384:
        raise AppError("not_authenticated", "an Authorization: Bearer <access token> header is required")
    return header[len("Bearer "):].strip()


def failed_check(exc: Exception) -> str:
    """The check a token failed, in words (never the library's exception class)."""
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"missing claim {exc.claim}"
    if isinstance(exc, jwt.ExpiredSignatureError):
        return "expired"
    if isinstance(exc, jwt.ImmatureSignatureError):
        return "not valid yet (iat or nbf in the future)"
    if isinstance(exc, jwt.InvalidSignatureError):
        return "bad signature"
    if isinstance(exc, jwt.InvalidAudienceError):
        return "wrong audience"
    if isinstance(exc, jwt.InvalidIssuerError):
        return "wrong issuer"
    if isinstance(exc, jwt.InvalidIssuedAtError):
        return "bad iat claim"
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return "unsupported algorithm"
    if isinstance(exc, jwt.exceptions.InvalidSubjectError):
        return "bad sub claim"
    if isinstance(exc, jwt.PyJWKClientConnectionError):
        return "the signing keys (JWKS) could not be fetched"
    if isinstance(exc, jwt.PyJWKClientError):
        return "no matching signing key"
    if isinstance(exc, jwt.DecodeError):
        return "malformed token"
    return "not a valid token"


def verify_user_token(token: str, *, roles: tuple[str, ...] = ("authenticated",)) -> User:
    """Verify a Supabase access token: signature, expiry, audience, role, subject. 401 otherwise."""
    settings = get_settings()
    try:
        header = jwt.get_unverified_header(token)
        alg = header.get("alg")
        if alg == "HS256":
            if not settings.effective_jwt_secret:
                raise AppError("auth_not_configured",
                               "access tokens cannot be verified: SUPABASE_JWT_SECRET is not set")
            key: Any = settings.effective_jwt_secret
        elif alg in ASYMMETRIC and settings.jwks_url:
            key = _jwks_client(settings.jwks_url).get_signing_key_from_jwt(token).key
        else:
            raise AppError("not_authenticated", f"invalid access token: unsupported algorithm {str(alg)[:20]!r}")
        claims = jwt.decode(
            token, key, algorithms=[alg], audience="authenticated",
            options={"require": ["exp", "sub", "role"]}, leeway=5,
        )
    except AppError:
        raise
    except (jwt.PyJWTError, ValueError) as exc:
        raise AppError("not_authenticated", f"invalid access token: {failed_check(exc)}") from exc
    if claims.get("role") not in roles:
        raise AppError("not_authenticated", f"invalid access token: role {claims.get('role')!r} may not call this "
                       "function")
    return User(id=str(claims["sub"]), role=claims["role"], email=claims.get("email"), claims=claims)


def verify_cron_secret(header: str | None) -> None:
    """`Authorization: Bearer <CRON_SECRET>`, compared in constant time; fails closed without a secret."""
    secret = get_settings().cron_secret
    if not secret:
        raise AppError("not_authenticated", "CRON_SECRET is not configured")
    supplied = bearer_token(header)
    if not hmac.compare_digest(supplied.encode(), secret.encode()):
        raise AppError("not_authenticated", "bad cron credentials")
