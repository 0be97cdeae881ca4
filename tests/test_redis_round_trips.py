"""The seeds' rule: at most 3 Redis round trips per socket event; user lookup cache-first on connect."""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import gevent
import pytest
import redis
from flask import Flask
from flask_socketio import SocketIOTestClient
from redis.connection import AbstractConnection

from realtime.extensions import socketio
from realtime.fanout.broadcaster import Broadcaster, Outgoing
from realtime.features.notifications import publish_personal
from tests.conftest import TokenActions
from tests.helpers.greenlets import wait_until
from tests.helpers.offline_jobs import offline_jobs_done
from tests.helpers.redis_counter import counting_round_trips

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
    # This test counts every greenlet's round trips; the offline-job worker's are background work, off the
    # message path (attributed apart in test_every_handler_stays_within_three_round_trips).
    redis_app.extensions["realtime"].offline_jobs.stop()
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


# Every handler, connect and disconnect, attributed to the greenlet that made each round trip. The tests'
# app has no message queue. With recovery on (the default) every non-empty ``Broadcaster.emit_many`` already
# makes its real round trip here (the script that logs the packets, and in production also publishes them);
# with recovery off, production would publish in one more pipeline, so that one is counted as if it happened.


@contextmanager
def round_trips_per_greenlet(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[Any]]:
    """Round trips (as ``counting_round_trips`` counts them, plus fan-out publishes) by greenlet."""
    by_greenlet: Counter[Any] = Counter()
    with counting_round_trips(monkeypatch):
        counted = AbstractConnection.send_packed_command
        emit_many = Broadcaster.emit_many

        def attributed(self: Any, command: Any, check_health: bool = True) -> Any:
            if check_health and not getattr(self, "_realtime_setting_up", False):
                by_greenlet[gevent.getcurrent()] += 1
            return counted(self, command, check_health)

        def publishing(self: Broadcaster, messages: list[Outgoing]) -> None:
            if messages and self.manager.recovery is None:
                by_greenlet[gevent.getcurrent()] += 1
            emit_many(self, messages)

        monkeypatch.setattr(AbstractConnection, "send_packed_command", attributed)
        monkeypatch.setattr(Broadcaster, "emit_many", publishing)
        yield by_greenlet


#: One representative valid payload per client→server event, in an order where each one succeeds.
EVENT_STEPS: list[tuple[str, Any]] = [
    ("chat:join", {"roomId": "lobby"}),
    ("chat:message", {"roomId": "lobby", "content": "hi", "clientId": "c-1"}),
    ("chat:history", {"roomId": "lobby", "limit": 10}),
    ("chat:typing", {"roomId": "lobby", "isTyping": True}),
    ("chat:leave", {"roomId": "lobby"}),
    ("presence:status", "away"),
    ("presence:subscribe", ["bob", "carol"]),
    ("presence:check", ["bob", "carol"]),
    ("presence:unsubscribe", ["bob"]),
    ("party:join_live", {"partyId": "p42"}),
    ("party:leave_live", {"partyId": "p42"}),
    ("notifications:list", {"unreadOnly": True}),
    ("notifications:mark_read", ["MARK_ID"]),
    ("game:join", {"gameId": "g1"}),
    ("game:move", {"gameId": "g1", "move": {"x": 1}}),
]


def test_every_handler_stays_within_three_round_trips(redis_app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    services = redis_app.extensions["realtime"]
    assert sorted(services.catalog.handlers) == sorted(event for event, _ in EVENT_STEPS), (
        "every client→server handler needs a representative row in EVENT_STEPS"
    )
    actions = TokenActions(redis_app)
    services.games.set_players("g1", ["alice", "bob"])
    with redis_app.app_context():
        content = {"type": "mention", "title": "t", "body": "b", "data": None}
        mark_id = publish_personal(services, ["alice"], content)["id"]
    bob = socketio.test_client(redis_app, auth={"token": actions.create("bob")})
    assert bob.emit("chat:join", {"roomId": "lobby"}, callback=True)["ok"]
    bob.disconnect()  # bob stays a member of lobby: chat:message notifies him as offline
    alice_token = actions.create("alice")
    warm_up(redis_app)
    main = gevent.getcurrent()

    per_event: dict[str, int] = {}
    with round_trips_per_greenlet(monkeypatch) as trips:
        alice = socketio.test_client(redis_app, auth={"token": alice_token})
        assert alice.is_connected()
        per_event["connect"] = trips[main]
        for event, payload in EVENT_STEPS:
            trips.clear()
            ack = alice.emit(event, [mark_id] if payload == ["MARK_ID"] else payload, callback=True)
            assert ack["ok"] is True, (event, ack)
            per_event[event] = trips[main]
            # The offline-member job of chat:message is done by the background job worker, off the path.
            background = {services.offline_jobs.greenlet}
            assert set(trips) - background <= {main}, f"{event} made round trips outside its handler"

    assert all(n <= MAX_ROUND_TRIPS for n in per_event.values()), per_event
    assert all(n >= 1 for e, n in per_event.items() if e != "chat:typing"), per_event
    assert per_event["connect"] == 1, "registration with the session check; nobody hears alice come online"
    assert per_event["notifications:mark_read"] == 2, "one pipeline and one publish of the unread count"
    assert per_event["chat:message"] == 1, "the chat store's script stores, logs and publishes the message"
    offline_jobs_done(redis_app)
    assert services.notifications.unread_count("bob") == 1, "chat:message queued the offline-member job"


def test_connect_and_disconnect_broadcast_presence_only_to_subscribers_and_connect_checks_the_session(
    redis_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = redis_app.extensions["realtime"]
    actions = TokenActions(redis_app)
    warm_up(redis_app)
    main = gevent.getcurrent()
    bob = socketio.test_client(redis_app, auth={"token": actions.create("bob")})
    assert bob.emit("presence:subscribe", ["carol"], callback=True)["ok"]
    bob.get_received()
    logged_before = len(services.recovery.since("0-0"))
    tokens = {user: actions.create(user) for user in ("alice", "carol")}
    session_id, revoked = actions.session("dave")
    services.sessions.revoke(session_id)

    with round_trips_per_greenlet(monkeypatch) as trips:
        alice = socketio.test_client(redis_app, auth={"token": tokens["alice"]})
        unwatched = trips[main]
        trips.clear()
        carol = socketio.test_client(redis_app, auth={"token": tokens["carol"]})
        watched = trips[main]
        trips.clear()
        refused = socketio.test_client(redis_app, auth={"token": revoked})
        refusal = trips[main]
        trips.clear()
        alice.disconnect()
        unwatched_gone = trips[main]
        trips.clear()
        carol.disconnect()
        watched_gone = trips[main]

    assert not refused.is_connected()
    assert (unwatched, watched, refusal) == (1, 2, 1), "registration (+ the presence broadcast someone hears)"
    assert (unwatched_gone, watched_gone) == (1, 2), "release (+ the presence broadcast someone hears)"
    updates = [m["args"][0] for m in bob.get_received() if m["name"] == "presence:update"]
    assert [(u["userId"], u["status"]) for u in updates] == [("carol", "online"), ("carol", "offline")]
    logged = services.recovery.since("0-0")[logged_before:]
    assert [(p.event, p.room) for p in logged] == [("presence:update", "presence:carol")] * 2, "alice's went nowhere"
    assert services.connections.of_user("dave") == {} and not services.presence.presence(["dave"])[0].is_online
    assert services.redis.zcard(services.keys.user_sockets("dave")) == 0, "a refused session registers nothing"


def test_disconnect_from_party_and_chat_room_stays_within_three_round_trips(
    redis_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    actions = TokenActions(redis_app)
    watcher = socketio.test_client(redis_app, auth={"token": actions.create("bob")})
    alice = socketio.test_client(redis_app, auth={"token": actions.create("alice")})
    for client in (watcher, alice):
        assert client.emit("party:join_live", {"partyId": "p42"}, callback=True)["ok"]
        assert client.emit("chat:join", {"roomId": "lobby"}, callback=True)["ok"]
        assert client.emit("presence:subscribe", ["carol"], callback=True)["ok"]
    watcher.get_received()
    warm_up(redis_app)
    main = gevent.getcurrent()

    with round_trips_per_greenlet(monkeypatch) as trips:
        alice.disconnect()
        count = trips[main]

    assert 1 <= count <= MAX_ROUND_TRIPS, count
    names = sorted(m["name"] for m in watcher.get_received())
    assert names == ["chat:user_left", "party:viewer_left"], "the release really broadcast"


def test_duplicate_login_connect_stays_within_three_round_trips(
    redis_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    actions = TokenActions(redis_app)
    old: SocketIOTestClient = socketio.test_client(redis_app, auth={"token": actions.create("alice")})
    assert old.emit("party:join_live", {"partyId": "p42"}, callback=True)["ok"]
    new_token = actions.create("alice")
    warm_up(redis_app)
    main = gevent.getcurrent()

    with round_trips_per_greenlet(monkeypatch) as trips:
        fresh = socketio.test_client(redis_app, auth={"token": new_token})
        connect_trips = trips[main]
        assert fresh.is_connected()
        assert wait_until(lambda: not old.is_connected()), "the old session was not logged out"
        gevent.sleep(0.2)  # the listener finishes releasing the evicted socket
        jobs = redis_app.extensions["realtime"].offline_jobs.greenlet
        eviction = {greenlet: n for greenlet, n in trips.items() if greenlet not in (main, jobs)}

    assert 1 <= connect_trips <= MAX_ROUND_TRIPS, connect_trips
    (listener_trips,) = eviction.values()
    assert 1 <= listener_trips <= MAX_ROUND_TRIPS, "the evicted socket's release is one event too"
    assert [m["name"] for m in old.queue if m["name"] == "force_logout"] == ["force_logout"]
