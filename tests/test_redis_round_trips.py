"""The seeds' rule: at most 3 Redis round trips per socket event; user lookup cache-first on connect."""
from __future__ import annotations

from typing import Any

import pytest
import redis
from flask import Flask

from realtime.extensions import socketio
from tests.conftest import TokenActions
from tests.redis_counter import counting_round_trips

MAX_ROUND_TRIPS = 3


def command_calls(url: str, command: str) -> int:
    """How often the private server has executed ``command`` (server-side truth)."""
    stats = redis.Redis.from_url(url).info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


def warm_up(app: Flask) -> None:
    """What a serving worker has done before its first event: scripts loaded, control channel subscribed."""
    services = app.extensions["realtime"]
    services.lifecycle.ensure_started()
    assert services.bus.ready.wait(5)


def test_each_event_stays_within_three_round_trips(
    redis_app: Flask, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    actions = TokenActions(redis_app)
    token = actions.create("alice")
    warm_up(redis_app)
    with counting_round_trips(monkeypatch) as trips:
        per_event: dict[str, int] = {}

        client = socketio.test_client(redis_app, auth={"token": token})
        assert client.is_connected()
        per_event["connect"] = trips.count

        steps: list[tuple[str, Any]] = [
            ("chat:join", {"roomId": "lobby"}),
            ("chat:message", {"roomId": "lobby", "content": "hi"}),
            ("chat:message", {"roomId": "nowhere", "content": "refused"}),
            ("chat:leave", {"roomId": "lobby"}),
        ]
        for event, payload in steps:
            trips.reset()
            client.emit(event, payload, callback=True)
            per_event[f"{event} {payload['roomId']}"] = trips.count

        trips.reset()
        client.disconnect()
        per_event["disconnect"] = trips.count

    assert all(n <= MAX_ROUND_TRIPS for n in per_event.values()), per_event
    assert per_event["connect"] >= 1, "the session must actually be checked in Redis"


def test_connect_reads_profile_cache_first(redis_app: Flask, redis_url: str) -> None:
    token = TokenActions(redis_app).create("alice")
    before = command_calls(redis_url, "hgetall")

    first = socketio.test_client(redis_app, auth={"token": token})
    after_first = command_calls(redis_url, "hgetall")
    second = socketio.test_client(redis_app, auth={"token": token})
    after_second = command_calls(redis_url, "hgetall")

    assert first.is_connected() and second.is_connected()
    assert after_first - before == 1, "first connect loads the profile from Redis"
    assert after_second == after_first, "a second tab of the same user is served from the cache"


def test_profile_written_by_login_service_is_used(redis_app: Flask, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.hset("rt:user:alice", mapping={"username": "Alice A.", "avatarUrl": "https://cdn.example/a.png"})
    socketio.test_client(redis_app, auth={"token": TokenActions(redis_app).create("alice")})

    (identity,) = redis_app.extensions["realtime"].connections.of_user("alice").values()

    assert identity.profile.to_dict() == {"id": "alice", "username": "Alice A.", "avatarUrl": "https://cdn.example/a.png"}
