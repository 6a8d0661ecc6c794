"""The errors of the HTTP functions as a client sees them: every target of main.py through the dev
server's WSGI app (werkzeug's test client), one error shape, registered codes only."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import jwt
import psycopg
import pytest
from werkzeug.test import Client, EnvironBuilder, run_wsgi_app
from werkzeug.wrappers import Response

import main
from shared import db as shared_db
from shared.config import get_settings
from shared.dev.embedded import EmbeddedPostgres
from shared.dev.server import build_app
from shared.dev.tokens import make_token
from shared.errors import BY_NAME

SECRET = "a-test-secret-that-is-at-least-32-characters"
PROVIDER_VARS = ("LIVEKIT_API_KEY", "LIVEKIT_API_SECRET", "LIVEKIT_URL", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET",
                 "STRIPE_CONNECT_WEBHOOK_SECRET", "RESEND_API_KEY", "EMAIL_FILES_DIR", "SUPABASE_JWKS_URL",
                 "AUTODOCTOR_LOCAL")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for var in PROVIDER_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SUPABASE_JWT_SECRET", SECRET)
    monkeypatch.setenv("CRON_SECRET", "cron-secret-0123456789")
    get_settings.cache_clear()
    shared_db.close_pool()
    yield monkeypatch
    shared_db.close_pool()
    get_settings.cache_clear()


@pytest.fixture
def client_for(env: pytest.MonkeyPatch) -> Iterator[Any]:
    def make(url: str) -> Client:
        shared_db.close_pool()
        env.setenv("DATABASE_URL", url)
        get_settings.cache_clear()
        return Client(build_app())

    yield make


@pytest.fixture
def client(client_for: Any, fresh_url: str) -> Client:
    c: Client = client_for(fresh_url)
    return c


def bearer(**kw: Any) -> dict[str, str]:
    kw.setdefault("secret", SECRET)
    kw.setdefault("user_id", str(uuid.uuid4()))
    return {"Authorization": f"Bearer {make_token(**kw)}"}


def registered(payload: dict[str, Any], name: str, status: int) -> None:
    """The body carries the registered code of `name`, whose status is `status`."""
    code = BY_NAME[name]
    assert (payload["code"], payload["error"], code.http_status) == (code.sqlstate, name, status), payload
    assert payload["message"]


# ---------------------------------------------------------------------------------------------
# 405: one registered code for every function
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("target", main.TARGETS)
def test_every_function_answers_a_wrong_method_with_method_not_allowed(client: Client, target: str) -> None:
    response = client.open(f"/{target}", method="PUT", headers=bearer())
    assert response.status_code == 405
    registered(response.get_json(), "method_not_allowed", 405)
    assert response.headers["Allow"]
    assert "PUT" not in response.headers["Allow"]


def test_post_health_is_method_not_allowed(client: Client) -> None:
    response = client.post("/health", json={})
    assert response.status_code == 405
    registered(response.get_json(), "method_not_allowed", 405)
    assert response.headers["Allow"] == "GET, HEAD"
    assert client.get("/health").status_code == 200


# ---------------------------------------------------------------------------------------------
# 503 <provider>_not_configured
# ---------------------------------------------------------------------------------------------
def test_missing_livekit_is_503_livekit_not_configured(client: Client) -> None:
    response = client.post("/livekit_token", json={"session_id": str(uuid.uuid4())}, headers=bearer())
    assert response.status_code == 503
    registered(response.get_json(), "livekit_not_configured", 503)
    assert "LIVEKIT_API_KEY" in response.get_json()["message"]
    response = client.post("/livekit_webhook", data="{}", headers={"Authorization": "x"},
                           content_type="application/webhook+json")
    assert response.status_code == 503
    registered(response.get_json(), "livekit_not_configured", 503)


def test_missing_stripe_is_503_payments_not_configured(client: Client) -> None:
    response = client.post("/stripe_webhook", data="{}", headers={"Stripe-Signature": "t=1,v1=x"},
                           content_type="application/json")
    assert response.status_code == 503
    registered(response.get_json(), "payments_not_configured", 503)


def test_missing_token_verification_is_503_auth_not_configured(client: Client, env: pytest.MonkeyPatch) -> None:
    env.delenv("SUPABASE_JWT_SECRET")
    get_settings.cache_clear()
    response = client.post("/livekit_token", json={"session_id": str(uuid.uuid4())}, headers=bearer())
    assert response.status_code == 503
    registered(response.get_json(), "auth_not_configured", 503)


def test_missing_email_delivery_is_email_not_configured(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from shared import email
    from shared.errors import AppError

    env.setenv("AUTODOCTOR_HOME", str(tmp_path))
    get_settings.cache_clear()
    assert not email.email_ready()
    with pytest.raises(AppError) as info:
        email.deliver("a@b.test", cast(Any, None), "k")  # refused before the message is read
    assert info.value.code.name == "email_not_configured" and info.value.code.http_status == 503


# ---------------------------------------------------------------------------------------------
# 415, 400 with the field named
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_a_json_function_without_the_json_media_type_is_415(client: Client, content_type: str | None) -> None:
    headers = bearer()
    if content_type:
        headers["Content-Type"] = content_type
    response = client.post("/livekit_token", data=json.dumps({"session_id": str(uuid.uuid4())}), headers=headers)
    assert response.status_code == 415
    payload = response.get_json()
    registered(payload, "unsupported_media_type", 415)
    assert "Content-Type: application/json" in payload["message"]


def test_the_json_media_type_with_parameters_and_an_empty_body_are_accepted(client: Client,
                                                                             env: pytest.MonkeyPatch) -> None:
    response = client.post("/livekit_token", data=json.dumps({"session_id": str(uuid.uuid4())}), headers=bearer(),
                           content_type="application/json; charset=utf-8")
    assert response.get_json()["error"] == "livekit_not_configured"  # past the media type check
    response = client.post("/cron_jobs", headers={"Authorization": "Bearer cron-secret-0123456789"})
    assert response.status_code != 415


def test_a_malformed_query_field_is_named(client: Client) -> None:
    response = client.get("/session_calendar?session_id=xyz", headers=bearer())
    assert response.status_code == 400
    payload = response.get_json()
    assert payload == {"code": "AD001", "error": "invalid_input", "message": "session_id: not a valid UUID",
                       "details": [{"field": "session_id", "message": "not a valid UUID", "type": "uuid_parsing"}]}
    payload = client.get("/session_calendar", headers=bearer()).get_json()
    assert payload["message"] == "session_id: required"


def test_every_bad_body_field_is_named(client: Client) -> None:
    response = client.post("/create_checkout", headers=bearer(), json={
        "plan_code": "Not A Code", "intake_id": "nope", "success_url": "ftp://x.test/aaaa",
        "cancel_url": "https://app.test/c", "colour": "red"})
    assert response.status_code == 400
    payload = response.get_json()
    fields = {d["field"]: d["message"] for d in payload["details"]}
    assert fields["intake_id"] == "not a valid UUID"
    assert fields["colour"] == "not an accepted field"
    assert fields["success_url"] == "must be an absolute http or https URL"
    assert fields["plan_code"] == "has not the expected format"
    for field, message in fields.items():
        assert f"{field}: {message}" in payload["message"]


def test_a_body_that_is_not_a_json_object(client: Client) -> None:
    for raw, words in (("{not json", "not valid JSON"), ("[1, 2]", "must be a JSON object")):
        response = client.post("/livekit_token", data=raw, headers=bearer(), content_type="application/json")
        assert response.status_code == 400
        assert words in response.get_json()["message"]


# ---------------------------------------------------------------------------------------------
# 401: the failed check, in words
# ---------------------------------------------------------------------------------------------
def _raw_token(claims: dict[str, Any], secret: str = SECRET) -> dict[str, str]:
    return {"Authorization": f"Bearer {jwt.encode(claims, secret, algorithm='HS256')}"}


@pytest.mark.parametrize(("headers", "check"), [
    (lambda: _raw_token({"role": "authenticated", "aud": "authenticated", "exp": time.time() + 60}),
     "missing claim sub"),
    (lambda: _raw_token({"sub": "x", "role": "authenticated", "aud": "authenticated"}), "missing claim exp"),
    (lambda: bearer(now=int(time.time()) - 7200, ttl=60), "expired"),
    (lambda: bearer(secret="another-secret-that-is-at-least-32-chars!!"), "bad signature"),
    (lambda: _raw_token({"sub": "x", "role": "authenticated", "aud": "other", "exp": time.time() + 60}),
     "wrong audience"),
    (lambda: _raw_token({"sub": "x", "role": "anon", "aud": "authenticated", "exp": time.time() + 60}),
     "role 'anon' may not call this function"),
    (lambda: {"Authorization": "Bearer not.a.jwt"}, "malformed token"),
])
def test_token_errors_name_the_failed_check(client: Client, headers: Any, check: str) -> None:
    response = client.post("/livekit_token", json={"session_id": str(uuid.uuid4())}, headers=headers())
    assert response.status_code == 401
    payload = response.get_json()
    assert payload["error"] == "not_authenticated"
    assert payload["message"] == f"invalid access token: {check}"
    assert "Error" not in payload["message"]


# ---------------------------------------------------------------------------------------------
# 413: bounded reads, whatever the transfer encoding
# ---------------------------------------------------------------------------------------------
class CountingStream:
    """A request body of `size` bytes produced on demand (a generator), counting what is pulled."""

    def __init__(self, size: int):
        self.size = size
        self.pulled = 0
        self._chunks = self._generate()
        self._buffer = b""

    def _generate(self) -> Iterator[bytes]:
        block = b"x" * 65536
        left = self.size
        while left > 0:
            yield block[:left]
            left -= len(block)

    def read(self, n: int = -1) -> bytes:
        while (n < 0 or len(self._buffer) < n) and (chunk := next(self._chunks, b"")):
            self._buffer += chunk
        out, self._buffer = (self._buffer, b"") if n < 0 else (self._buffer[:n], self._buffer[n:])
        self.pulled += len(out)
        return out

    def readline(self, n: int = -1) -> bytes:
        return self.read(n)


GIB = 1 << 30


def chunked(client: Client, target: str, stream: CountingStream, headers: dict[str, str]) -> Response:
    """POST `stream` as a chunked body, as a WSGI server that de-chunks passes it: no Content-Length,
    `wsgi.input_terminated` set, the body read straight from `wsgi.input`."""
    environ = EnvironBuilder(path=f"/{target}", method="POST",
                             headers={"Transfer-Encoding": "chunked", "Content-Type": "application/json",
                                      **headers}).get_environ()
    environ.pop("CONTENT_LENGTH", None)
    environ["wsgi.input"] = stream
    environ["wsgi.input_terminated"] = True
    app_iter, status, response_headers = run_wsgi_app(client.application, environ, buffered=True)
    return Response(app_iter, status=status, headers=response_headers)


@pytest.mark.parametrize(("target", "max_body", "headers"), [
    ("stripe_webhook", 512 * 1024, {"Stripe-Signature": "t=1,v1=x"}),
    ("livekit_webhook", 256 * 1024, {"Authorization": "x"}),
    ("livekit_token", 4096, None),
    ("cron_jobs", 64 * 1024, {"Authorization": "Bearer cron-secret-0123456789"}),
])
def test_a_chunked_body_is_cut_off_at_max_body(client: Client, env: pytest.MonkeyPatch, target: str, max_body: int,
                                               headers: dict[str, str] | None) -> None:
    env.setenv("STRIPE_WEBHOOK_SECRET", "whsec_test")
    env.setenv("LIVEKIT_API_KEY", "k")
    env.setenv("LIVEKIT_API_SECRET", "s" * 32)
    env.setenv("LIVEKIT_URL", "wss://livekit.test")
    get_settings.cache_clear()
    stream = CountingStream(GIB)  # 1 GiB, never held in memory: only what is pulled exists
    response = chunked(client, target, stream, headers or bearer())
    assert response.status_code == 413, response.get_data()
    registered(json.loads(response.get_data()), "body_too_large", 413)
    assert stream.pulled == max_body + 1


@pytest.mark.parametrize(("target", "method", "headers", "status"), [
    ("livekit_token", "POST", {}, 401),  # no token
    ("cron_jobs", "POST", {"Authorization": "Bearer wrong"}, 401),
    ("stripe_webhook", "PUT", {}, 405),
])
def test_a_refused_request_leaves_its_chunked_body_unread(client: Client, target: str, method: str,
                                                          headers: dict[str, str], status: int) -> None:
    stream = CountingStream(GIB)
    environ = EnvironBuilder(path=f"/{target}", method=method,
                             headers={"Transfer-Encoding": "chunked", "Content-Type": "application/json",
                                      **headers}).get_environ()
    environ.pop("CONTENT_LENGTH", None)
    environ["wsgi.input"] = stream
    environ["wsgi.input_terminated"] = True
    _, status_line, response_headers = run_wsgi_app(client.application, environ, buffered=True)
    assert status_line.startswith(str(status))
    assert dict(response_headers)["Connection"] == "close"
    assert stream.pulled == 0


def test_a_declared_content_length_over_max_body_is_refused_unread(client: Client) -> None:
    stream = CountingStream(10 * 1024 * 1024)
    environ = EnvironBuilder(path="/stripe_webhook", method="POST", content_type="application/json",
                             headers={"Stripe-Signature": "t=1,v1=x"}).get_environ()
    environ["CONTENT_LENGTH"] = str(stream.size)
    environ["wsgi.input"] = stream
    app_iter, status, _ = run_wsgi_app(client.application, environ, buffered=True)
    assert status.startswith("413")
    registered(json.loads(b"".join(app_iter)), "body_too_large", 413)
    assert stream.pulled == 0


def test_a_chunked_body_under_max_body_reaches_the_function(client: Client, env: pytest.MonkeyPatch) -> None:
    env.setenv("STRIPE_WEBHOOK_SECRET", "whsec_test")
    get_settings.cache_clear()
    stream = CountingStream(1000)
    response = chunked(client, "stripe_webhook", stream, {"Stripe-Signature": "t=1,v1=x"})
    assert response.status_code == 400
    assert json.loads(response.get_data())["error"] == "invalid_signature"  # read whole, then verified
    assert stream.pulled == 1000


# ---------------------------------------------------------------------------------------------
# 503 database_unavailable, and the first call after a restart
# ---------------------------------------------------------------------------------------------
def test_functions_answer_database_unavailable_within_3_s(client_for: Any) -> None:
    client = client_for(f"postgresql://postgres@127.0.0.1:{_free_port()}/postgres")
    session = str(uuid.uuid4())
    for call in (lambda: client.get(f"/session_calendar?session_id={session}", headers=bearer()),
                 lambda: client.get("/health")):
        started = time.monotonic()
        response = call()
        assert time.monotonic() - started < 4.5
        assert response.status_code == 503
        registered(response.get_json(), "database_unavailable", 503)
    assert client.get("/health").get_json()["database"] is False


def test_health_is_true_on_the_first_call_after_a_restart(client_for: Any, tmp_path: Path) -> None:
    pg = EmbeddedPostgres(home=tmp_path / "pg", port=_free_port(), fast=True)
    url = pg.start()
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("create schema autodoctor_meta; create table autodoctor_meta.schema_migrations (v text)")
        client = client_for(url)
        assert client.get("/health").status_code == 200  # a pooled connection now exists
        assert client.get("/health").status_code == 200
        pg.stop()
        started = time.monotonic()
        down = client.get("/health")
        assert time.monotonic() - started < 4.5
        assert down.status_code == 503
        registered(down.get_json(), "database_unavailable", 503)
        time.sleep(2)  # the pool's own reconnection attempts back off meanwhile
        assert client.get("/health").status_code == 503
        pg.start()
        started = time.monotonic()
        response = client.get("/health")
        assert response.status_code == 200, response.get_json()
        assert time.monotonic() - started < 3
        assert response.get_json()["database"] is True
    finally:
        pg.stop()


def test_a_connection_the_server_dropped_while_idle_is_replaced(client_for: Any, fresh_url: str) -> None:
    client = client_for(fresh_url)
    assert client.get("/health").status_code == 200
    with psycopg.connect(fresh_url, autocommit=True) as conn:  # the pooled backend is terminated
        killed = conn.execute("select count(pg_terminate_backend(pid)) from pg_stat_activity "
                              "where datname = current_database() and pid <> pg_backend_pid()").fetchone()
    assert killed == (1,)
    assert client.get("/health").status_code == 200
