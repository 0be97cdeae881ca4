"""Session policy on both transports: a new login of the same user logs out the older session's sockets."""
from __future__ import annotations

import time
from typing import Any

import gevent
import pytest
from flask import Flask
from flask_socketio import SocketIOTestClient

from realtime.extensions import socketio
from realtime.stores.sessions import CHECK_CHUNK
from tests.conftest import APP_FIXTURES, TokenActions
from tests.helpers.greenlets import wait_until
from tests.helpers.redis_counter import counting_round_trips


@pytest.fixture
def any_app(any_app: Flask) -> Flask:
    """Both transports (conftest's ``any_app``), with their background work started."""
    return started(any_app)


@pytest.fixture
def multi_app(config: dict[str, Any], transport: str, request: pytest.FixtureRequest) -> Flask:
    """``any_app`` with ``SESSION_POLICY=multi``."""
    config["SESSION_POLICY"] = "multi"
    return started(request.getfixturevalue(APP_FIXTURES[transport]))


def started(app: Flask) -> Flask:
    """Start the worker's background work; with Redis, wait until the control channel is subscribed."""
    services = app.extensions["realtime"]
    services.lifecycle.ensure_started()
    ready = getattr(services.bus, "ready", None)
    if ready is not None:
        assert ready.wait(5), "control channel not subscribed"
    return app


def connect(app: Flask, token: str) -> SocketIOTestClient:
    return socketio.test_client(app, auth={"token": token})


def settle() -> None:
    """Give background greenlets time to act on anything published (to assert that nothing happens)."""
    gevent.sleep(0.2)


def logouts(client: SocketIOTestClient) -> list[Any]:
    """``force_logout`` payloads received (readable after the server disconnected the client)."""
    return [m["args"][0] for m in client.queue if m["name"] == "force_logout"]


def test_new_session_logs_out_every_tab_of_the_old_one(any_app: Flask) -> None:
    actions = TokenActions(any_app)
    old_token, new_token = actions.create("alice"), actions.create("alice")
    tab1, tab2 = connect(any_app, old_token), connect(any_app, old_token)
    bob = connect(any_app, actions.create("bob"))
    assert tab1.is_connected() and tab2.is_connected() and bob.is_connected()
    assert logouts(tab1) == [] and logouts(tab2) == [], "two tabs of one session do not evict each other"

    fresh = connect(any_app, new_token)

    assert fresh.is_connected()
    assert wait_until(lambda: not tab1.is_connected() and not tab2.is_connected()), "old tabs still connected"
    assert logouts(tab1) == [{"reason": "duplicate_login"}]
    assert logouts(tab2) == [{"reason": "duplicate_login"}]
    settle()
    assert fresh.is_connected() and bob.is_connected()
    assert logouts(fresh) == [] and logouts(bob) == []
    assert fresh.emit("chat:join", {"roomId": "lobby"}, callback=True)["ok"]
    assert len(any_app.extensions["realtime"].connections.of_user("alice")) == 1


def test_old_token_is_refused_after_eviction(any_app: Flask) -> None:
    actions = TokenActions(any_app)
    old_token = actions.create("alice")
    old = connect(any_app, old_token)
    connect(any_app, actions.create("alice"))
    assert wait_until(lambda: not old.is_connected())

    again = connect(any_app, old_token)

    assert not again.is_connected()
    assert [m["name"] for m in again.queue] == []


def test_new_tab_of_the_same_session_evicts_nobody(any_app: Flask) -> None:
    token = TokenActions(any_app).create("alice")
    tab1 = connect(any_app, token)

    tab2 = connect(any_app, token)

    settle()
    assert tab1.is_connected() and tab2.is_connected()
    assert logouts(tab1) == [] and logouts(tab2) == []


def test_duplicate_login_does_not_flap_presence(any_app: Flask) -> None:
    actions = TokenActions(any_app)
    carol = connect(any_app, actions.create("carol"))
    assert carol.emit("presence:subscribe", ["alice"], callback=True)["ok"]
    old = connect(any_app, actions.create("alice"))
    carol.get_received()

    connect(any_app, actions.create("alice"))
    assert wait_until(lambda: not old.is_connected())
    settle()

    assert [m["args"][0]["status"] for m in carol.get_received() if m["name"] == "presence:update"] == []
    assert carol.emit("presence:check", ["alice"], callback=True)["data"][0]["isOnline"] is True


def test_evicted_socket_leaves_its_rooms(any_app: Flask) -> None:
    actions = TokenActions(any_app)
    bob = connect(any_app, actions.create("bob"))
    old = connect(any_app, actions.create("alice"))
    for client in (bob, old):
        assert client.emit("party:join_live", {"partyId": "p42"}, callback=True)["ok"]
    bob.get_received()

    connect(any_app, actions.create("alice"))

    def viewer_left() -> list[Any]:
        return [m["args"][0] for m in bob.queue if m["name"] == "party:viewer_left"]

    assert wait_until(lambda: bool(viewer_left())), "no party:viewer_left for the evicted socket"
    settle()
    assert not old.is_connected()
    assert viewer_left() == [{"userId": "alice", "partyId": "p42", "viewerCount": 1}]


def test_multi_policy_keeps_both_sessions(multi_app: Flask) -> None:
    actions = TokenActions(multi_app)
    first_token = actions.create("alice")
    first = connect(multi_app, first_token)
    bob = connect(multi_app, actions.create("bob"))

    second = connect(multi_app, actions.create("alice"))

    settle()
    for client in (first, second, bob):
        assert client.is_connected()
        assert logouts(client) == []
    assert connect(multi_app, first_token).is_connected(), "the first session's token still connects"
    assert len(multi_app.extensions["realtime"].connections.of_user("alice")) == 3


def test_heartbeat_does_not_resurrect_a_socket_that_left_during_the_refresh(
    redis_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis lost every entry (restarted empty): the beat writes the sockets again with their rooms. A leave
    and a disconnect that land while that round trip is in flight are not undone."""
    services = redis_app.extensions["realtime"]
    token = TokenActions(redis_app).create("alice")
    staying, leaving = connect(redis_app, token), connect(redis_app, token)
    for client in (staying, leaving):
        assert client.emit("party:join_live", {"partyId": "p1"}, callback=True)["ok"]
    services.redis.flushdb()
    real_refresh = services.state.refresh

    def refresh_while_things_change(snapshot: Any) -> list[str]:
        staying.emit("party:leave_live", {"partyId": "p1"}, callback=True)
        leaving.disconnect()
        return real_refresh(snapshot)

    monkeypatch.setattr(services.state, "refresh", refresh_while_things_change)
    services.lifecycle.beat()

    assert services.rooms.count("party:p1").sockets == 0
    assert services.presence.presence(["alice"])[0].is_online is True
    assert services.redis.zcard(services.keys.sockets) == 1


def test_session_check_goes_in_chunks_and_finds_every_gone_session(
    redis_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker's periodic check: one round trip per CHECK_CHUNK sessions (never one pipeline of all of them,
    which held the hub for every socket of the worker), and every deleted or foreign session found."""
    sessions = redis_app.extensions["realtime"].sessions
    owners = {}
    for index in range(2 * CHECK_CHUNK + 10):
        session_id, _ = TokenActions(redis_app).session(f"u{index}")
        owners[session_id] = f"u{index}"
    ids = list(owners)
    for session_id in (ids[0], ids[CHECK_CHUNK], ids[-1]):
        sessions.revoke(session_id)
    owners[ids[7]] = "somebody-else"

    with counting_round_trips(monkeypatch) as trips:
        gone = sessions.missing(owners)

    assert sorted(gone) == sorted([ids[0], ids[7], ids[CHECK_CHUNK], ids[-1]])
    assert trips.count == 3


def test_heartbeat_leaves_a_socket_parked_during_the_refresh_in_its_recovery_window(
    redis_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a Redis restart every socket is written again with its rooms. A socket that drops (and is parked
    for recovery) while that round trip is in flight is neither extended nor quietly released: it stays
    present for its recovery window, and the reaper announces it if nobody claims it."""
    services = redis_app.extensions["realtime"]
    connect(redis_app, TokenActions(redis_app).create("alice"))
    ((sid, _),) = services.connections.items()
    monkeypatch.setattr(services.state, "touch", lambda sids: list(sids))  # as after a restart
    real_refresh = services.state.refresh

    def refresh_while_it_parks(snapshot: Any) -> list[str]:
        services.connections.remove(sid)  # as the disconnect handler does before parking
        services.state.park([sid], 600)
        return real_refresh(snapshot)

    monkeypatch.setattr(services.state, "refresh", refresh_while_it_parks)
    services.lifecycle.beat()

    expiry = services.redis.zscore(services.keys.sockets, sid)
    assert expiry is not None and expiry > time.time() + 300, "the recovery window, not the heartbeat's TTL"
    assert services.presence.presence(["alice"])[0].is_online is True
