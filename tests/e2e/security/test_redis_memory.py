"""End to end, issue 11 point 8: what clients see when Redis refuses writes (``maxmemory`` reached under
``noeviction``), that everything works again once Redis has memory, and the start-up warning when Redis may
evict keys.

Servers A and B (the Procfile command) run on a private ``redis-server`` of this module, not the session's
shared one: the tests shrink its ``maxmemory`` and change its eviction policy. Clients are the real Node
``socket.io-client``. Figures (how long recovery took) are printed; run with ``-s`` to see them.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import requests

from tests.helpers.e2e_kit import (
    API_KEY,
    PRESENCE_TTL,
    Clients,
    Cluster,
    mint,
    new_id,
    ok,
    refused,
)
from tests.helpers.redis_server import RedisServer

#: socket.io-client options: reconnect at once after a dropped transport.
FAST_RECONNECT = {"reconnectionDelay": 100, "reconnectionDelayMax": 200, "randomizationFactor": 0}
#: Socket events that write to Redis; under ``noeviction`` at ``maxmemory`` each must answer ``UNAVAILABLE``.
WRITING_EVENTS: list[tuple[str, Callable[[str], Any]]] = [
    ("chat:message", lambda room: {"roomId": room, "content": "during the memory squeeze", "clientId": new_id("c")}),
    ("chat:join", lambda room: {"roomId": new_id("other")}),
    ("chat:typing", lambda room: {"roomId": room, "isTyping": True}),
    ("presence:status", lambda room: "away"),
    ("presence:subscribe", lambda room: [new_id("friend")]),
]


@pytest.fixture(scope="module")
def cluster_redis() -> Iterator[RedisServer]:
    """A redis-server for this module's cluster alone (its memory limit and policy change during the tests)."""
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def unlimited(cluster: Cluster) -> Iterator[redis.Redis]:
    """The cluster's Redis client; ``maxmemory`` is back to 0 (no limit) after the test, whatever happens."""
    yield cluster.redis
    cluster.redis.config_set("maxmemory", 0)


def readiness(cluster: Cluster) -> list[tuple[int, dict[str, Any]]]:
    """``GET /readyz`` of A and B: status code and body."""
    answers = []
    for server in (cluster.a, cluster.b):
        response = requests.get(f"{server.url}/readyz", timeout=5, headers={"Connection": "close"})
        answers.append((response.status_code, response.json()))
    return answers


def test_refused_writes_answer_unavailable_and_work_again_without_restart(
    cluster: Cluster, clients: Clients, unlimited: redis.Redis, no_server_errors: None
) -> None:
    # Under noeviction (the default) the workers started without a warning about the policy.
    assert cluster.redis.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    assert ["maxmemory-policy" in server.log_text() for server in (cluster.a, cluster.b)] == [False, False]
    users = mint(cluster, "alice", "bob", "carol", "dave", "erin")
    alice = clients.connect(users["alice"], cluster.a)
    bob = clients.connect(users["bob"], cluster.b)
    room = new_id("squeeze")
    alice.call("chat:join", {"roomId": room})
    bob.call("chat:join", {"roomId": room})
    assert [status for status, _ in readiness(cluster)] == [200, 200]

    # Redis's own memory use is far above one byte: from now on it refuses every write that needs memory.
    unlimited.config_set("maxmemory", 1)
    squeezed = time.monotonic()
    seen: dict[str, str] = {}
    for event, payload in WRITING_EVENTS:
        error = refused(alice.emit(event, payload(room)), "UNAVAILABLE")
        assert "Redis refused the write" in error["message"], (event, error)
        seen[event] = error["code"]
    print(f"\nwith maxmemory reached, writing events answered: {seen}")
    print(f"message: {error['message']!r}")

    # Reads still work, and the sockets that were refused stay connected.
    (bob_presence,) = alice.call("presence:check", [users["bob"].id])
    assert bob_presence["isOnline"] is True, bob_presence
    assert alice.log(types=["disconnect"]) == [] and bob.log(types=["disconnect"]) == []
    assert bob.payloads("chat:new_message") == []

    # Redis admits the registration script (its first write frees memory, and a script that wrote once
    # may go on): a new socket connects, and its writes answer UNAVAILABLE like everyone's.
    carol = clients.connect(users["carol"], cluster.b)
    refused(carol.emit("chat:join", {"roomId": room}), "UNAVAILABLE")
    print(f"a new connection was accepted ({carol.handshake['type']}); its chat:join answered UNAVAILABLE")

    # A dropped transport reconnects by itself (its recovery record could not be kept: a new session).
    erin = clients.connect(users["erin"], cluster.a, reconnection=True, options=FAST_RECONNECT)
    dropped = clients.nodes.mark()
    clients.nodes.close_transport(erin.id)
    back = clients.nodes.wait_for(lambda m: m.get("id") == erin.id and m.get("type") == "connect", 10, dropped)
    print(f"a dropped socket reconnected with recovered={back['recovered']}")

    announcement = {"event": "system:announcement", "room": "broadcast:all", "data": {"title": "t", "body": "b"}}
    response = requests.post(
        f"{cluster.b.url}/api/v1/emit", json=announcement, timeout=5,
        headers={"Authorization": f"Bearer {API_KEY}", "Connection": "close"},
    )
    assert response.status_code == 503, (response.status_code, response.text)
    assert response.json()["error"]["code"] == "UNAVAILABLE", response.text
    print(f"the publish API answered {response.status_code} {response.json()['error']}")

    # Heartbeats, reapers and probes of both workers run under the squeeze for a whole PRESENCE_TTL: the
    # logs stay free of errors and tracebacks (no_server_errors), and nobody is disconnected.
    time.sleep(PRESENCE_TTL + 1)
    assert [sock.log(types=["disconnect"]) for sock in (alice, bob, carol)] == [[], [], []]

    ready = readiness(cluster)
    assert [status for status, _ in ready] == [503, 503], ready
    assert {body["redis"] for _, body in ready} == {"refusing writes"}, ready
    print(f"/readyz while refusing writes: {[body for _, body in ready]}")

    unlimited.config_set("maxmemory", 0)
    freed = time.monotonic()
    sent = alice.call("chat:message", {"roomId": room, "content": "after the squeeze", "clientId": new_id("c")})
    delivered = bob.wait("chat:new_message", where=lambda m: m["id"] == sent["id"])
    assert delivered["content"] == "after the squeeze"
    assert ok(alice.emit("presence:status", "busy"))["status"] == "busy"
    dave = clients.connect(users["dave"], cluster.b)
    dave.call("chat:join", {"roomId": room})
    assert [status for status, _ in readiness(cluster)] == [200, 200]
    assert [sock.log(types=["disconnect"]) for sock in (alice, bob, carol)] == [[], [], []]
    print(
        f"refusing writes for {freed - squeezed:.2f} s; after CONFIG SET maxmemory 0 a message crossed workers, "
        f"a new socket connected and /readyz said 200 within {time.monotonic() - freed:.2f} s, without restart"
    )


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.05)


def synced(client: redis.Redis) -> bool:
    """Whether ``client``'s server is a replica whose link to its master is up and done syncing."""
    info = client.info("replication")
    return info.get("master_link_status") == "up" and not info.get("master_sync_in_progress")


def test_a_read_only_replica_after_failover_answers_unavailable(
    cluster: Cluster, clients: Clients, cluster_redis: RedisServer, no_server_errors: None
) -> None:
    users = mint(cluster, "frank", "grace", "heidi")
    frank = clients.connect(users["frank"], cluster.a)
    grace = clients.connect(users["grace"], cluster.b)
    room = new_id("failover")
    frank.call("chat:join", {"roomId": room})
    grace.call("chat:join", {"roomId": room})

    standby = RedisServer().start()
    standby_client = redis.Redis(port=standby.port, decode_responses=True)
    try:
        standby_client.replicaof("127.0.0.1", cluster_redis.port)
        wait_until(lambda: synced(standby_client), "the standby synced")
        # A failover the wrong way round for us: the standby is promoted, and the Redis our servers still
        # talk to becomes its read-only replica.
        standby_client.replicaof("NO", "ONE")
        cluster.redis.replicaof("127.0.0.1", str(standby.port))
        wait_until(lambda: synced(cluster.redis), "our Redis synced as a replica")
        demoted = time.monotonic()

        error = refused(frank.emit("chat:message", {"roomId": room, "content": "x", "clientId": new_id("c")}),
                        "UNAVAILABLE")
        assert "read-only replica" in error["message"], error
        refused(grace.emit("presence:status", "away"), "UNAVAILABLE")
        heidi = clients.open(users["heidi"], cluster.b)
        assert heidi.handshake["type"] == "connect_error", heidi.handshake
        assert heidi.handshake["data"]["code"] == "UNAVAILABLE", heidi.handshake
        assert "read-only replica" in heidi.handshake["data"]["message"], heidi.handshake
        ready = readiness(cluster)
        assert [(status, body["redis"]) for status, body in ready] == [(503, "refusing writes")] * 2, ready
        print(f"\nread-only replica: chat:message answered {error}; a new socket got connect_error "
              f"{heidi.handshake['data']}; /readyz 503 'refusing writes'")
    finally:
        cluster.redis.replicaof("NO", "ONE")
        standby_client.close()
        standby.stop()
    promoted = time.monotonic()

    sent = frank.call("chat:message", {"roomId": room, "content": "after the failover", "clientId": new_id("c")})
    assert grace.wait("chat:new_message", where=lambda m: m["id"] == sent["id"])["content"] == "after the failover"
    clients.connect(users["heidi"], cluster.b)
    assert [status for status, _ in readiness(cluster)] == [200, 200]
    assert frank.log(types=["disconnect"]) == [] and grace.log(types=["disconnect"]) == []
    print(f"read-only for {promoted - demoted:.2f} s; writable again at once after REPLICAOF NO ONE, no restart")


@pytest.mark.parametrize(
    "policy, extra",
    [
        ("allkeys-lru", []),
        ("volatile-ttl", []),
        # Managed Redis often disables CONFIG: the policy is read from INFO memory instead.
        ("allkeys-lfu", ["--rename-command", "CONFIG", ""]),
    ],
)
def test_workers_warn_at_start_when_redis_may_evict_keys(
    policy: str, extra: list[str], spawn_cluster: Callable[..., Cluster]
) -> None:
    evicting = RedisServer(args=["--maxmemory", "64mb", "--maxmemory-policy", policy, *extra]).start()
    try:
        pair = spawn_cluster(redis_url=evicting.url)
        for server in (pair.a, pair.b):
            warnings = [line for line in server.log_text().splitlines() if "maxmemory-policy" in line]
            assert len(warnings) == 1, server.log_text()[-3000:]
            (line,) = warnings
            assert "WARNING" in line and repr(policy) in line and "noeviction" in line, line
        print(f"\nwith maxmemory-policy {policy}: {line}")
    finally:
        evicting.stop()
