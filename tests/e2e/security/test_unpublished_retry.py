"""A chat message stored while fan-out was down reaches the room when the client retries it.

Servers A and B keep their stores on the session's private Redis (``REDIS_URL``) and fan out through a
second private ``redis-server`` (``MESSAGE_QUEUE_URL``). With that queue Redis stopped, ``chat:message`` can
store the message but not publish it, and answers ``UNAVAILABLE``. The client's retry with the same
``clientId`` once the queue is back must answer ``ok`` with the same id and deliver the message to the room
(the sender's other server included), while the history holds it once. A member whose socket was away
during all of this recovers the message once: from the recovery log, not twice.

The end-to-end test runs two real gunicorn processes and the real Node ``socket.io-client``; the handler's
two failure cases (the recovery log holds the message, or it does not) run on both transports through
Flask-SocketIO's test client, with the fan-out failing on cue.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from flask import Flask
from flask_socketio import SocketIOTestClient

from realtime.extensions import socketio
from realtime.fanout.broadcaster import Broadcaster
from realtime.fanout.emits import StoredBroadcast
from realtime.fanout.manager import PublishError
from tests.conftest import TokenActions
from tests.helpers.e2e_cluster import GunicornProcess
from tests.helpers.e2e_kit import Clients, Cluster, Sock, mint, new_id, ok, refused
from tests.helpers.node_client import NodeClients
from tests.helpers.redis_server import RedisServer

#: How long to keep listening after the expected deliveries, before saying nothing else arrived.
SETTLE = 0.5
#: Seconds between the self-probes of the pub/sub listeners (the setting's minimum): readiness follows fast.
PROBE_INTERVAL = "1"


@pytest.fixture
def queue_redis() -> Iterator[RedisServer]:
    """The separate message-queue Redis, stopped after the test."""
    server = RedisServer().start()
    yield server
    server.stop()


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> float:
    """Poll ``condition``; return the seconds it took."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"{what}: not within {timeout} s"
        time.sleep(0.1)
    return time.monotonic() - started


def readiness(server: GunicornProcess) -> int:
    """The status code of ``GET /readyz``."""
    try:
        return requests.get(f"{server.url}/readyz", timeout=2.0, headers={"Connection": "close"}).status_code
    except requests.RequestException:
        return 0


def chat_ids(sock: Sock, since: int) -> list[str]:
    """Ids of the chat messages ``sock`` received from log index ``since`` on, in order."""
    return [
        m["args"][0]["id"]
        for m in sock.nodes.messages[since:]
        if m.get("type") == "event" and m.get("id") == sock.id and m.get("event") == "chat:new_message"
    ]


@pytest.mark.e2e
def test_a_message_stored_while_fan_out_was_down_reaches_the_room_on_retry(
    queue_redis: RedisServer, spawn_cluster: Callable[..., Cluster]
) -> None:
    cluster = spawn_cluster({"MESSAGE_QUEUE_URL": queue_redis.url, "PROBE_INTERVAL": PROBE_INTERVAL})
    servers = (cluster.a, cluster.b)
    with NodeClients() as nodes:
        clients = Clients(nodes, cluster)
        users = mint(cluster, "alice", "bob", "carol")
        room = new_id("r")
        alice = clients.connect(users["alice"], cluster.a)
        bob = clients.connect(users["bob"], cluster.b)
        carol = clients.connect(users["carol"], cluster.b)
        for sock in (alice, bob, carol):
            ok(sock.emit("chat:join", {"roomId": room}))
        start = nodes.mark()
        before = alice.call("chat:message", {"roomId": room, "content": "before the outage"})["id"]
        for sock in (alice, bob, carol):
            sock.wait("chat:new_message", start, where=lambda p: p["id"] == before)

        # Carol's socket is away for the whole outage: she must get the message by recovery, once.
        dropped = nodes.mark()
        nodes.close_transport(carol.id)
        carol.wait_disconnect(dropped)
        pid = carol.handshake["pid"]
        wait_until(lambda: cluster.redis.exists(cluster.key(f"recovery:{pid}")), 5, "carol's recovery record")

        queue_redis.stop()
        down = wait_until(lambda: all(readiness(s) == 503 for s in servers), 20, "/readyz 503 with the queue down")
        payload = {"roomId": room, "content": "sent during the outage", "clientId": new_id("c")}
        sent = nodes.mark()
        refused(alice.emit("chat:message", payload), "UNAVAILABLE")
        stored = [m for m in alice.call("chat:history", {"roomId": room})["messages"]
                  if m["clientId"] == payload["clientId"]]
        assert len(stored) == 1, f"the refused send should be in the history once: {stored}"
        message_id = stored[0]["id"]

        queue_redis.start()
        back = wait_until(lambda: all(readiness(s) == 200 for s in servers), 60, "/readyz 200 with the queue back")
        retried = nodes.mark()
        retry_sent = time.monotonic()
        ack = alice.call("chat:message", payload)
        assert ack["id"] == message_id, ack
        delivered = bob.wait("chat:new_message", retried, where=lambda p: p["id"] == message_id, timeout=10)
        reached = time.monotonic() - retry_sent
        assert (delivered["content"], delivered["clientId"]) == (payload["content"], payload["clientId"])
        alice.wait("chat:new_message", retried, where=lambda p: p["id"] == message_id, timeout=10)
        time.sleep(SETTLE)
        assert chat_ids(bob, sent).count(message_id) == 1, bob.log()
        assert chat_ids(alice, sent).count(message_id) == 1, alice.log()
        history = alice.call("chat:history", {"roomId": room})["messages"]
        assert [m["id"] for m in history].count(message_id) == 1, history

        returned = nodes.mark()
        nodes.reconnect(carol.id)
        answer = nodes.wait_for(
            lambda m: m.get("id") == carol.id and m.get("type") in ("connect", "connect_error"), since=returned
        )
        assert answer["type"] == "connect" and answer["recovered"] is True, answer
        time.sleep(SETTLE)
        assert chat_ids(carol, returned) == [message_id], carol.log()

        after = alice.call("chat:message", {"roomId": room, "content": "after the outage"})["id"]
        for sock in (bob, carol):
            sock.wait("chat:new_message", returned, where=lambda p: p["id"] == after)
        clients.close_all()
    print(
        f"queue down: /readyz 503 after {down:.1f} s; queue back: /readyz 200 after {back:.1f} s; "
        f"the retry (ack included) reached the other server in {reached * 1000:.0f} ms"
    )


def joined(app: Flask, *users: str) -> list[SocketIOTestClient]:
    """Test clients of ``users`` in chat room ``lobby``, with nothing received yet."""
    actions = TokenActions(app)
    clients = [socketio.test_client(app, auth={"token": actions.create(user)}) for user in users]
    for client in clients:
        assert client.emit("chat:join", {"roomId": "lobby"}, callback=True)["ok"]
        client.get_received()
    return clients


def deliveries(client: SocketIOTestClient) -> list[list[Any]]:
    """The arguments of every ``chat:new_message`` received since the last call."""
    return [m["args"] for m in client.get_received() if m["name"] == "chat:new_message"]


@pytest.mark.parametrize(
    ("logged", "offsets"),
    [
        pytest.param(True, 0, id="the-log-holds-it-retry-publishes-without-a-new-offset"),
        pytest.param(False, 1, id="not-logged-retry-logs-and-publishes"),
    ],
)
def test_a_retry_sends_a_message_whose_fan_out_failed_once(
    any_app: Flask, transport: str, monkeypatch: pytest.MonkeyPatch, logged: bool, offsets: int
) -> None:
    alice, bob = joined(any_app, "alice", "bob")
    failures = [PublishError(1, logged)]
    emit, complete_stored = Broadcaster.emit, Broadcaster.complete_stored

    def failing_once(self: Broadcaster, event: str, data: Any, to: str, skip_sid: str | None = None) -> None:
        if event == "chat:new_message" and failures:
            raise failures.pop()
        emit(self, event, data, to, skip_sid)

    def failing_stored_once(
        self: Broadcaster, stored: StoredBroadcast, value: str, offset: str, after: str | None = None
    ) -> None:
        if failures:
            failures.pop()
            raise PublishError(1, logged=True)
        complete_stored(self, stored, value, offset, after)

    # A new message goes out through emit (in-memory stores), or, with the recovery log in Redis, the chat
    # store's script logs it as it stores it and complete_stored sends it: then what failed is always logged.
    monkeypatch.setattr(Broadcaster, "emit", failing_once)
    monkeypatch.setattr(Broadcaster, "complete_stored", failing_stored_once)
    if transport == "redis":
        offsets = 0
    payload = {"roomId": "lobby", "content": "stored, not sent", "clientId": "c-retry"}

    first = alice.emit("chat:message", payload, callback=True)
    assert first["ok"] is False and first["error"]["code"] == "UNAVAILABLE", first
    assert deliveries(bob) == []
    retry = alice.emit("chat:message", payload, callback=True)
    again = alice.emit("chat:message", payload, callback=True)

    assert retry["ok"] is True and retry["data"]["duplicate"] is True, retry
    assert again == retry, "a second retry after a delivery sends nothing more"
    history = bob.emit("chat:history", {"roomId": "lobby"}, callback=True)["data"]["messages"]
    assert [m["id"] for m in history] == [retry["data"]["id"]]
    for client in (alice, bob):
        (args,) = deliveries(client)
        assert args[0] == history[0], args
        # A message the recovery log already holds is sent without a new offset (it is replayed once).
        assert len(args) - 1 == offsets, args
