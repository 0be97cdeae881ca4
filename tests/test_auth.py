"""Handshake authentication over the real Socket.IO protocol: every refusal code, every token source."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask

from realtime import create_app
from tests.conftest import TEST_SECRET, TokenActions
from tests.helpers.live_server import LiveServer, try_connect

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_PRIVATE = RSA_KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
RSA_PUBLIC = RSA_KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
).decode()


def claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": "alice", "sid": "s1", "iat": now, "exp": now + 600, **extra}


@pytest.fixture
def live(redis_app: Flask) -> Iterator[LiveServer]:
    server = LiveServer(redis_app).start()
    yield server
    server.stop()


def refusal(url: str, **kwargs: Any) -> dict[str, Any]:
    client, errors = try_connect(url, **kwargs)
    assert not client.connected, "the server accepted a handshake it should refuse"
    assert errors, "no connect_error reached the client"
    return errors[0]["data"]


@pytest.mark.parametrize(
    ("make_token", "code"),
    [
        (lambda t: None, "AUTH_REQUIRED"),
        (lambda t: "", "AUTH_REQUIRED"),
        (lambda t: "not-a-jwt", "INVALID_TOKEN"),
        (lambda t: "x" * 10000, "INVALID_TOKEN"),
        (lambda t: jwt.encode(claims(), "another-secret-of-sufficient-length-000", algorithm="HS256"), "INVALID_TOKEN"),
        (lambda t: jwt.encode(claims(exp=int(time.time()) - 60), TEST_SECRET, algorithm="HS256"), "TOKEN_EXPIRED"),
        (lambda t: jwt.encode(claims(), None, algorithm="none"), "INVALID_TOKEN"),
        (lambda t: jwt.encode(claims(), TEST_SECRET, algorithm="HS512"), "INVALID_TOKEN"),
        (lambda t: jwt.encode(claims(), RSA_PRIVATE, algorithm="RS256"), "INVALID_TOKEN"),
        (lambda t: jwt.encode({"sub": "alice", "exp": int(time.time()) + 60, "iat": 0}, TEST_SECRET), "INVALID_TOKEN"),
        (lambda t: jwt.encode(claims(sub="../admin"), TEST_SECRET, algorithm="HS256"), "INVALID_TOKEN"),
        (lambda t: jwt.encode(claims(sid="never-registered"), TEST_SECRET, algorithm="HS256"), "SESSION_REVOKED"),
        (lambda t: t.session_for_other_user(), "SESSION_REVOKED"),
        (lambda t: t.revoked(), "SESSION_REVOKED"),
    ],
    ids=["missing", "empty", "garbage", "huge", "wrong-secret", "expired", "alg-none", "alg-not-allowed",
         "rs256-on-hs-server", "no-sid-claim", "bad-sub", "unknown-session", "other-users-session", "revoked"],
)
def test_handshake_refusals_carry_a_code(live: LiveServer, redis_app: Flask, make_token: Any, code: str) -> None:
    helper = _Helper(TokenActions(redis_app), redis_app)
    token = make_token(helper)
    data = refusal(live.url, auth={"token": token} if token is not None else None)
    assert data["code"] == code
    assert data["message"]


class _Helper:
    def __init__(self, actions: TokenActions, app: Flask) -> None:
        self.actions = actions
        self.services = app.extensions["realtime"]

    def session_for_other_user(self) -> str:
        session_id, _ = self.actions.session("bob")
        return self.services.tokens.issue("alice", session_id, 600)

    def revoked(self) -> str:
        session_id, token = self.actions.session("alice")
        assert self.services.sessions.revoke(session_id)
        return token


@pytest.mark.parametrize("source", ["auth", "header", "query"])
def test_token_is_read_from_auth_header_or_query(live: LiveServer, redis_app: Flask, source: str) -> None:
    token = TokenActions(redis_app).create("alice")
    kwargs: dict[str, Any] = {
        "auth": {"auth": {"token": token}},
        "header": {"headers": {"Authorization": f"Bearer {token}"}},
        "query": {"url": f"{live.url}?token={token}"},
    }[source]
    url = kwargs.pop("url", live.url)
    client, errors = try_connect(url, **kwargs)
    try:
        assert client.connected, errors
        assert errors == []
    finally:
        client.disconnect()


@pytest.mark.parametrize(("window", "after_drop"), [("0", 0), ("120", 1)], ids=["released", "parked"])
def test_connected_socket_joins_default_rooms(
    config: dict[str, Any], redis_url: str, window: str, after_drop: int
) -> None:
    """A socket is indexed in its default rooms; when its transport drops it is released, or, with
    connection-state recovery on, parked in them for the recovery window."""
    app = create_app({**config, "REDIS_URL": redis_url, "MESSAGE_QUEUE_URL": "", "RECOVERY_WINDOW": window})
    live = LiveServer(app).start()
    token = TokenActions(app).create("alice")
    client, _ = try_connect(live.url, auth={"token": token})
    rooms = app.extensions["realtime"].rooms
    try:
        assert rooms.count("user:alice").sockets == 1
        assert rooms.count("broadcast:all").sockets == 1
    finally:
        client.disconnect()
        time.sleep(0.2)
        live.stop()
        app.extensions["realtime"].lifecycle.stop()
    assert rooms.count("user:alice").sockets == after_drop


@pytest.fixture
def rsa_live(redis_url: str) -> Iterator[tuple[LiveServer, Flask]]:
    app = create_app(
        {"APP_ENV": "local", "LOG_LEVEL": "WARNING", "REDIS_URL": redis_url, "MESSAGE_QUEUE_URL": "",
         "JWT_PUBLIC_KEY": RSA_PUBLIC, "JWT_PRIVATE_KEY": RSA_PRIVATE, "JWT_ALGORITHMS": "RS256",
         "JWT_ISSUER": "https://login.example", "JWT_AUDIENCE": "realtime"}
    )
    server = LiveServer(app).start()
    yield server, app
    server.stop()
    app.extensions["realtime"].lifecycle.stop()


def test_rs256_server_accepts_its_tokens(rsa_live: tuple[LiveServer, Flask]) -> None:
    server, app = rsa_live
    client, errors = try_connect(server.url, auth={"token": TokenActions(app).create("alice")})
    try:
        assert client.connected, errors
    finally:
        client.disconnect()


@pytest.mark.parametrize(
    "forge",
    [
        lambda: hs256_signed_with_public_key(claims(iss="https://login.example", aud="realtime")),
        lambda: jwt.encode(claims(iss="https://login.example", aud="realtime"), None, algorithm="none"),
        lambda: jwt.encode(claims(iss="https://evil.example", aud="realtime"), RSA_PRIVATE, algorithm="RS256"),
        lambda: jwt.encode(claims(iss="https://login.example", aud="other"), RSA_PRIVATE, algorithm="RS256"),
        lambda: jwt.encode(claims(iss="https://login.example"), RSA_PRIVATE, algorithm="RS256"),
    ],
    ids=["hs256-signed-with-public-key", "alg-none", "wrong-issuer", "wrong-audience", "missing-audience"],
)
def test_rs256_server_refuses_forgeries(rsa_live: tuple[LiveServer, Flask], forge: Any) -> None:
    server, _ = rsa_live
    assert refusal(server.url, auth={"token": forge()})["code"] == "INVALID_TOKEN"


def hs256_signed_with_public_key(payload: dict[str, Any]) -> str:
    """The classic algorithm-confusion forgery: HMAC-sign with the server's public key, signed by hand
    because PyJWT refuses to use a PEM key as an HMAC secret."""

    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    signing_input = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + b"." + b64(json.dumps(payload).encode())
    signature = hmac.new(RSA_PUBLIC.encode(), signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + b64(signature)).decode()
