"""The heartbeat at 10,000 sockets a worker: a beat extends what Redis holds and writes rooms only where
Redis lost them (after a restart, every socket), in slices that let the hub go."""
from __future__ import annotations

import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask
from flask_socketio import SocketIOTestClient

from realtime.cluster import heartbeat, worker_status
from realtime.extensions import socketio
from realtime.services.container import Services
from realtime.stores.socket_state import RedisSocketState
from tests.conftest import TokenActions
from tests.helpers.redis_counter import counting_round_trips


def started(app: Flask) -> Services:
    services: Services = app.extensions["realtime"]
    services.lifecycle.ensure_started()
    return services


def connected(app: Flask, users: list[str]) -> list[SocketIOTestClient]:
    """One socket per user, each in live party ``p1``."""
    actions = TokenActions(app)
    clients = [socketio.test_client(app, auth={"token": actions.create(user)}) for user in users]
    for client in clients:
        assert client.emit("party:join_live", {"partyId": "p1"}, callback=True)["ok"]
    return clients


def expiries(services: Services) -> dict[str, float]:
    """sid -> expiry in the cluster-wide ZSET and in its user's ZSET (the lower of the two)."""
    found = {}
    for sid, identity in services.connections.items():
        scores = (services.redis.zscore(services.keys.sockets, sid),
                  services.redis.zscore(services.keys.user_sockets(identity.user_id), sid))
        assert None not in scores, f"{sid} has no entry"
        found[sid] = min(scores)
    return found


def refused(*args: Any) -> Any:
    raise AssertionError("the beat wrote every room again")


def test_a_beat_extends_the_entries_in_three_round_trips_and_writes_no_room(
    redis_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = started(redis_app)
    connected(redis_app, ["alice", "bob", "carol"])
    before = expiries(services)
    time.sleep(0.05)
    monkeypatch.setattr(services.state, "refresh", refused)

    with counting_round_trips(monkeypatch) as trips:
        services.lifecycle.heartbeat.beat()
        beat_trips = trips.count

    assert beat_trips == 3, "the server's id, one touch for the three sockets, the reaper"
    after = expiries(services)
    assert all(after[sid] > before[sid] for sid in before)


def test_a_beat_writes_again_what_redis_lost(redis_app: Flask) -> None:
    """Redis restarted empty: the next beat puts every live socket back, with its rooms and presence."""
    services = started(redis_app)
    connected(redis_app, ["alice", "bob"])
    services.redis.flushdb()
    assert services.rooms.count("party:p1").sockets == 0

    services.lifecycle.heartbeat.beat()

    assert services.rooms.count("party:p1").sockets == 2
    assert [p.is_online for p in services.presence.presence(["alice", "bob"])] == [True, True]
    assert set(expiries(services)) == {sid for sid, _ in services.connections.items()}


def test_a_beat_after_a_restart_writes_every_room_again(redis_app: Flask) -> None:
    """A Redis restarted from a snapshot holds the sockets' entries, not the rooms joined since: with a new
    server id, the beat writes every socket's rooms again."""
    services = started(redis_app)
    connected(redis_app, ["alice", "bob"])
    server = ["first"]
    state = store(services, lambda: server[0])
    sids = [sid for sid, _ in services.connections.items()]
    assert state.touch([]) == []
    assert state.touch(sids) == []
    server[0] = "second"
    assert state.touch(sids) == sids
    assert state.touch(sids) == []


def test_touch_goes_in_chunks_and_returns_the_sockets_without_entries(
    redis_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = started(redis_app)
    connected(redis_app, ["alice", "bob", "carol"])
    state = store(services, lambda: "one", touch_chunk=2)
    state.touch([])
    sids = [sid for sid, _ in services.connections.items()]

    with counting_round_trips(monkeypatch) as trips:
        missing = state.touch([sids[0], "gone-1", sids[1], sids[2], "gone-2"])
        touch_trips = trips.count

    assert missing == ["gone-1", "gone-2"]
    assert touch_trips == 3, "one round trip per 2 sockets (the server id here is no round trip)"
    assert services.redis.exists(f"{services.keys.socket_prefix}gone-1") == 0, "touch creates nothing"


def test_touch_leaves_a_parked_socket_in_its_recovery_window(redis_app: Flask) -> None:
    services = started(redis_app)
    connected(redis_app, ["alice"])
    ((sid, _),) = services.connections.items()
    services.state.park([sid], 600)

    assert services.state.touch([sid]) == []

    assert services.redis.zscore(services.keys.sockets, sid) > time.time() + 300


def test_writing_every_socket_again_lets_the_hub_go_between_slices(
    redis_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Building the rooms of every socket and checking them after the write go in slices of SLICE sockets
    with a yield between two slices (10,000 sockets in one go held the hub for 60 ms)."""
    services = started(redis_app)
    connected(redis_app, ["alice", "bob", "carol", "dave", "erin"])
    monkeypatch.setattr(worker_status, "SLICE", 2)
    yields: list[float] = []
    monkeypatch.setattr(heartbeat, "gevent", SimpleNamespace(sleep=yields.append))
    monkeypatch.setattr(services.state, "touch", lambda sids: list(sids))  # as after a restart

    services.lifecycle.heartbeat.beat()

    assert yields == [0] * 4, "5 sockets in slices of 2: two yields building, two checking"
    assert services.rooms.count("party:p1").sockets == 5


def store(services: Services, server_id: Callable[[], str], touch_chunk: int = 500) -> RedisSocketState:
    """A second Redis transport over the app's keys and scripts, with its own view of the server's id."""
    assert services.scripts is not None
    return RedisSocketState(services.keys, services.scripts, 60, time.time, max_sockets_per_user=10,
                            replay_cap=10, server_id=server_id, touch_chunk=touch_chunk)
