"""``flask token create|revoke``: sessions in Redis, one JWT per line, thousands per call."""
from __future__ import annotations

import jwt
import pytest
from flask import Flask

from realtime.extensions import socketio
from tests.conftest import TEST_SECRET
from tests.helpers.redis_counter import counting_round_trips


def test_create_prints_one_token_per_user_in_order(redis_app: Flask) -> None:
    result = redis_app.test_cli_runner().invoke(args=["token", "create", "alice", "bob", "carol", "--ttl", "120"])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    subjects = [jwt.decode(t, TEST_SECRET, algorithms=["HS256"])["sub"] for t in lines]
    assert subjects == ["alice", "bob", "carol"]
    claims = jwt.decode(lines[0], TEST_SECRET, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == 120
    assert redis_app.extensions["realtime"].redis.hget(f"rt:session:{claims['sid']}", "userId") == "alice"
    assert 110 <= redis_app.extensions["realtime"].redis.ttl(f"rt:session:{claims['sid']}") <= 120


def test_created_token_connects_and_revoked_one_does_not(redis_app: Flask) -> None:
    runner = redis_app.test_cli_runner()
    token = runner.invoke(args=["token", "create", "alice"]).output.strip()
    session_id = jwt.decode(token, TEST_SECRET, algorithms=["HS256"])["sid"]
    assert socketio.test_client(redis_app, auth={"token": token}).is_connected()

    revoked = runner.invoke(args=["token", "revoke", session_id])
    again = runner.invoke(args=["token", "revoke", session_id])

    assert revoked.exit_code == 0 and session_id in revoked.output
    assert again.exit_code != 0 and "No session" in again.output
    assert not socketio.test_client(redis_app, auth={"token": token}).is_connected()


def test_thousands_of_ids_in_one_call_are_pipelined(redis_app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = [f"user{i}" for i in range(5000)]
    redis_app.extensions["realtime"].redis.ping()
    with counting_round_trips(monkeypatch) as trips:
        result = redis_app.test_cli_runner().invoke(args=["token", "create", *ids])

    assert result.exit_code == 0
    tokens = result.output.splitlines()
    assert len(tokens) == 5000
    assert jwt.decode(tokens[-1], TEST_SECRET, algorithms=["HS256"])["sub"] == "user4999"
    assert trips.count == 5, "one pipeline per 1000 sessions"
    assert redis_app.extensions["realtime"].redis.dbsize() == 5000


@pytest.mark.parametrize("bad", ["../root", "a b", "x" * 65, "ｌobby"])
def test_create_refuses_malformed_user_ids(redis_app: Flask, bad: str) -> None:
    result = redis_app.test_cli_runner().invoke(args=["token", "create", "alice", bad])

    assert result.exit_code == 2
    assert "not a user id" in result.output
    assert redis_app.extensions["realtime"].redis.dbsize() == 0


def test_embedded_default_still_mints_tokens_but_cannot_revoke(app: Flask) -> None:
    runner = app.test_cli_runner()
    created = runner.invoke(args=["token", "create", "alice"])
    revoked = runner.invoke(args=["token", "revoke", "whatever"])

    assert created.exit_code == 0
    assert jwt.decode(created.output.strip(), TEST_SECRET, algorithms=["HS256"])["sub"] == "alice"
    assert revoked.exit_code == 2 and "REDIS_URL is not set" in revoked.output
