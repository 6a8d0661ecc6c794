"""User JWT verification (HS256 and JWKS), the cron secret, and the endpoint wrapper."""

from __future__ import annotations

import json
import time
import uuid

import flask
import jwt
import pydantic
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from shared import auth
from shared.config import DEV_JWT_SECRET, get_settings
from shared.dev.stubs.server import StubServer
from shared.dev.tokens import make_token
from shared.errors import AppError
from shared.http import Ctx, endpoint

SECRET = "a-test-secret-that-is-at-least-32-characters"


@pytest.fixture(autouse=True)
def env(monkeypatch):
    monkeypatch.setenv("SUPABASE_JWT_SECRET", SECRET)
    monkeypatch.setenv("CRON_SECRET", "cron-secret-0123456789")
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def token(**kw) -> str:
    kw.setdefault("secret", SECRET)
    kw.setdefault("user_id", str(uuid.uuid4()))
    return make_token(**kw)


def test_hs256_token_verified():
    uid = str(uuid.uuid4())
    user = auth.verify_user_token(token(user_id=uid, email="a@b.test"))
    assert user.id == uid and user.role == "authenticated" and user.email == "a@b.test"
    assert user.claims["sub"] == uid


@pytest.mark.parametrize("bad", [
    lambda: token(secret="another-secret-that-is-at-least-32-chars!!"),
    lambda: token(now=int(time.time()) - 7200, ttl=60),  # expired
    lambda: token(role="anon", user_id=None),  # no sub, anon role
    lambda: token(role="service_role"),  # not a user
    lambda: jwt.encode({"sub": "x", "role": "authenticated", "aud": "other", "exp": time.time() + 60}, SECRET),
    lambda: jwt.encode({"sub": "x", "role": "authenticated", "aud": "authenticated"}, SECRET),  # no exp
    lambda: jwt.encode({"sub": "x", "role": "authenticated", "aud": "authenticated", "exp": time.time() + 60},
                       None, algorithm="none"),
    lambda: "not.a.jwt",
    lambda: "",
])
def test_bad_tokens_rejected(bad):
    with pytest.raises(AppError) as err:
        auth.verify_user_token(bad())
    assert err.value.code.name == "not_authenticated"


def test_dev_secret_only_in_local_mode(env):
    env.delenv("SUPABASE_JWT_SECRET")
    get_settings.cache_clear()
    dev = token(secret=DEV_JWT_SECRET)
    with pytest.raises(AppError):  # fail closed: no secret configured
        auth.verify_user_token(dev)
    env.setenv("AUTODOCTOR_LOCAL", "1")
    get_settings.cache_clear()
    assert auth.verify_user_token(dev).role == "authenticated"


def test_jwks_tokens(env):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid="k1", use="sig", alg="RS256")
    stub = StubServer(lambda rec: (200, {"keys": [jwk]}))
    try:
        env.setenv("SUPABASE_JWKS_URL", f"{stub.url}/auth/v1/.well-known/jwks.json")
        get_settings.cache_clear()
        uid = str(uuid.uuid4())
        claims = {"sub": uid, "role": "authenticated", "aud": "authenticated", "exp": int(time.time()) + 60}
        good = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})
        assert auth.verify_user_token(good).id == uid
        assert auth.verify_user_token(good).id == uid  # cached: one fetch
        assert len(stub.calls) == 1
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        forged = jwt.encode(claims, other, algorithm="RS256", headers={"kid": "k1"})
        with pytest.raises(AppError):
            auth.verify_user_token(forged)
    finally:
        stub.close()


def test_cron_secret(env):
    auth.verify_cron_secret("Bearer cron-secret-0123456789")
    for bad in (None, "", "Bearer wrong", "cron-secret-0123456789", "Basic cron-secret-0123456789"):
        with pytest.raises(AppError):
            auth.verify_cron_secret(bad)
    env.delenv("CRON_SECRET")
    get_settings.cache_clear()
    with pytest.raises(AppError):  # fail closed
        auth.verify_cron_secret("Bearer cron-secret-0123456789")


class Body(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    name: str = pydantic.Field(min_length=1, max_length=10)
    count: int = pydantic.Field(ge=0, le=5)


@endpoint(methods=("POST",), auth="user", body=Body, max_body=1024)
def sample(ctx: Ctx):
    if ctx.body.name == "boom":
        raise RuntimeError("internal detail that must not leak")
    return {"user": ctx.user.id, "name": ctx.body.name, "count": ctx.body.count}


def call(method="POST", body=None, headers=None, raw=None):
    app = flask.Flask("t")
    data = raw if raw is not None else (json.dumps(body) if body is not None else None)
    with app.test_request_context("/", method=method, data=data, headers=headers or {},
                                  content_type="application/json"):
        resp = sample(flask.request)
        return resp.status_code, resp.get_json()


def test_endpoint_happy_and_errors():
    uid = str(uuid.uuid4())
    auth_h = {"Authorization": f"Bearer {token(user_id=uid)}"}
    assert call(body={"name": "a", "count": 1}, headers=auth_h) == (200, {"user": uid, "name": "a", "count": 1})
    status, payload = call(method="GET", headers=auth_h)
    assert status == 405 and payload["error"] == "method_not_allowed"
    assert call(body={"name": "a", "count": 1})[0] == 401
    assert call(body={"name": "a", "count": 1}, headers={"Authorization": "Bearer nope"})[0] == 401
    status, payload = call(raw="{not json", headers=auth_h)
    assert status == 400 and payload["code"] == "AD001"
    status, payload = call(raw="[1, 2]", headers=auth_h)
    assert status == 400
    status, payload = call(body={"name": "", "count": 9, "extra": 1}, headers=auth_h)
    assert status == 400 and {d["field"] for d in payload["details"]} == {"name", "count", "extra"}
    status, payload = call(body={"name": "x" * 5000, "count": 1}, headers=auth_h)
    assert status == 413
    status, payload = call(body={"name": "boom", "count": 1}, headers=auth_h)
    assert status == 500 and "internal detail" not in json.dumps(payload)
