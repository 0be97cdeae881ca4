"""End to end: two real gunicorn processes (the Procfile command) sharing one Redis, driven by the real
Node ``socket.io-client``.

Server A and server B are separate processes, so everything that crosses them goes through the Redis
message queue: a chat message sent on A reaches room members on B, a session revoked with the CLI is
refused on both.
"""
from __future__ import annotations

import itertools
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
import redis
import requests

from realtime.config import DEFAULTS
from tests.e2e_cluster import GunicornProcess, create_tokens, revoke_session, session_id_of
from tests.node_client import Message, NodeClientError, NodeClients
from tests.redis_server import RedisServer, free_port

pytestmark = pytest.mark.e2e

E2E_SECRET = "e2e-cluster-secret-0123456789abcdefghijklmnop"
USERS = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "oscar")
#: How long to keep listening after the expected deliveries, before counting them.
SETTLE = 0.5
CREATED_AT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
MESSAGE_ID = re.compile(r"^\d{13,}-\d+$")
OFFSET = re.compile(r"^\d{13,}-\d+$")
MESSAGE_KEYS = {"id", "roomId", "senderId", "sender", "content", "type", "mediaUrl", "clientId", "createdAt"}
KEY_PREFIX = DEFAULTS["KEY_PREFIX"]


def server_env(redis_url: str) -> dict[str, str | None]:
    """The environment of both servers and the CLI: every app setting explicit, none inherited."""
    env: dict[str, str | None] = {name: None for name in DEFAULTS}
    env.update(
        {
            "REDIS_URL": redis_url,
            "JWT_SECRET": E2E_SECRET,
            "APP_ENV": "local",
            "LOG_LEVEL": "INFO",
            "ALLOWED_ORIGINS": "*",
            "SOCKET_TRANSPORTS": "polling,websocket",
            "WEB_CONCURRENCY": "1",
            "GRACEFUL_TIMEOUT": "3",
            "WORKER_CONNECTIONS": None,
            "GUNICORN_CMD_ARGS": None,
        }
    )
    return env


@dataclass
class Cluster:
    """Servers A and B, their environment, one token per user and a client of their Redis."""

    a: GunicornProcess
    b: GunicornProcess
    env: dict[str, str | None]
    tokens: dict[str, str]
    redis: redis.Redis

    def socket_rooms_key(self, sid: str) -> str:
        """The cluster-wide room index entry of one socket (see ``realtime.room_store``)."""
        return f"{KEY_PREFIX}socket-rooms:{sid}"

    def room_key(self, room: str) -> str:
        return f"{KEY_PREFIX}room:{room}"

    @property
    def servers(self) -> tuple[GunicornProcess, GunicornProcess]:
        return (self.a, self.b)


@pytest.fixture(scope="module")
def cluster(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Servers A and B on one private Redis (emptied first), and one token per user in ``USERS``."""
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    client.flushall()
    log_dir = tmp_path_factory.mktemp("e2e-cluster")
    env = server_env(redis_server.url)
    port_a = free_port()
    port_b = free_port()
    while port_b == port_a:
        port_b = free_port()
    a = GunicornProcess(port_a, env, log_dir, name="a")
    b = GunicornProcess(port_b, env, log_dir, name="b")
    try:
        a.spawn()
        b.spawn()
        a.wait_healthy(30)
        b.wait_healthy(30)
        tokens = dict(zip(USERS, create_tokens(env, *USERS), strict=True))
        yield Cluster(a=a, b=b, env=env, tokens=tokens, redis=client)
    finally:
        # SIGTERM both first: their graceful shutdowns then overlap.
        a.terminate()
        b.terminate()
        a.stop()
        b.stop()
        client.close()


@pytest.fixture(scope="module")
def nodes(cluster: Cluster) -> Iterator[NodeClients]:
    """One Node driver for the whole module.

    It depends on ``cluster`` so that it is closed first: with no client connection left (Node keeps
    polling connections alive), the workers exit at once on SIGTERM instead of after GRACEFUL_TIMEOUT.
    """
    with NodeClients() as driver:
        yield driver


_ids = itertools.count(1)


@dataclass
class Sock:
    """One Node client socket."""

    nodes: NodeClients
    id: str
    user: str | None
    handshake: Message

    @property
    def connected(self) -> bool:
        return self.handshake.get("type") == "connect"

    def emit(self, event: str, *args: Any, ack: bool = True) -> list[Any] | None:
        return self.nodes.emit(self.id, event, *args, ack=ack)

    def events(self, event: str) -> list[Message]:
        return self.nodes.events(self.id, event)

    def payloads(self, event: str) -> list[Any]:
        return [m["args"][0] for m in self.events(event)]

    def wait_event(self, event: str, since: int = 0, timeout: float = 5.0) -> Message:
        return self.nodes.wait_event(self.id, event, timeout=timeout, since=since)

    def messages_with_id(self, message_id: str) -> list[dict[str, Any]]:
        return [p for p in self.payloads("chat:new_message") if p.get("id") == message_id]


@dataclass
class Clients:
    """Opens sockets with unique ids and disconnects them all after the test."""

    nodes: NodeClients
    cluster: Cluster
    opened: list[Sock] = field(default_factory=list)

    def open(
        self,
        user: str | None,
        server: GunicornProcess,
        token: str | None = None,
        *,
        transports: list[str] | None = None,
        **kwargs: Any,
    ) -> Sock:
        """Connect; the token goes in ``auth`` unless ``auth``/``query``/``headers`` are given in ``kwargs``."""
        sock_id = f"{user or 'anon'}-{next(_ids)}"
        if token is not None and not ({"auth", "query", "headers"} & kwargs.keys()):
            kwargs["auth"] = {"token": token}
        sock = Sock(self.nodes, sock_id, user, {"type": "pending"})
        self.opened.append(sock)
        sock.handshake = self.nodes.connect(
            sock_id, server.url, transports=transports or ["websocket"], timeout=10.0, **kwargs
        )
        return sock

    def connect(self, user: str, server: GunicornProcess, token: str | None, **kwargs: Any) -> Sock:
        """Open and insist on a successful handshake."""
        sock = self.open(user, server, token, **kwargs)
        assert sock.handshake["type"] == "connect", f"{user} could not connect to {server.name}: {sock.handshake}"
        return sock

    def disconnect(self, sock: Sock, timeout: float = 5.0) -> bool:
        """Disconnect ``sock``; return whether its server forgot it within ``timeout`` s.

        A polling client's goodbye is an HTTP request of its own: were the Node driver to exit before
        the server handled it, the server would hold that client's long-poll until the ping timeout,
        and a SIGTERM-ed worker would wait for it until GRACEFUL_TIMEOUT. The server's disconnect
        handler clears the socket's room index entry in Redis, which tells us it is done.
        """
        if sock in self.opened:
            self.opened.remove(sock)
        try:
            self.nodes.disconnect(sock.id)
        except (NodeClientError, TimeoutError):
            return False
        if not sock.connected:
            return True
        key = self.cluster.socket_rooms_key(sock.handshake["sid"])
        deadline = time.monotonic() + timeout
        while self.cluster.redis.exists(key):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def close_all(self) -> None:
        for sock in list(self.opened):
            self.disconnect(sock)


@pytest.fixture
def clients(nodes: NodeClients, cluster: Cluster) -> Iterator[Clients]:
    opened = Clients(nodes, cluster)
    yield opened
    opened.close_all()


def new_room() -> str:
    return f"e2e-{uuid.uuid4().hex[:12]}"


def join(sock: Sock, room: str) -> None:
    (ack,) = sock.emit("chat:join", {"roomId": room})
    assert ack["ok"] is True, ack
    assert ack["data"]["roomId"] == room
    assert isinstance(ack["data"]["messages"], list)


def send(sock: Sock, room: str, content: str) -> str:
    """Send a chat message; return its id from the ack."""
    ack = sock.emit("chat:message", {"roomId": room, "content": content})
    assert ack is not None and len(ack) == 1, ack
    assert ack[0]["ok"] is True, ack
    assert ack[0]["data"]["duplicate"] is False, ack
    message_id = ack[0]["data"]["id"]
    assert MESSAGE_ID.fullmatch(message_id), message_id
    return str(message_id)


def wait_message(sock: Sock, message_id: str, since: int = 0, timeout: float = 5.0) -> dict[str, Any]:
    """Wait until ``sock`` receives the ``chat:new_message`` with ``message_id``."""
    message = sock.nodes.wait_for(
        lambda m: (
            m.get("type") == "event"
            and m.get("id") == sock.id
            and m.get("event") == "chat:new_message"
            and bool(m.get("args"))
            and isinstance(m["args"][0], dict)
            and m["args"][0].get("id") == message_id
        ),
        timeout=timeout,
        since=since,
    )
    # A broadcast carries its recovery offset as the last argument (connection-state recovery).
    assert len(message["args"]) == 2 and OFFSET.fullmatch(message["args"][1]), message
    payload: dict[str, Any] = message["args"][0]
    return payload


def assert_message(payload: dict[str, Any], message_id: str, room: str, sender: str, content: str) -> None:
    assert set(payload) == MESSAGE_KEYS, payload
    assert payload["id"] == message_id
    assert payload["roomId"] == room
    assert payload["senderId"] == sender
    assert payload["content"] == content
    assert CREATED_AT.fullmatch(payload["createdAt"]), payload["createdAt"]


def assert_refused(sock: Sock, code: str) -> None:
    """The handshake ended in ``connect_error`` with ``data == {code, message}``."""
    handshake = sock.handshake
    assert handshake["type"] == "connect_error", handshake
    data = handshake["data"]
    assert isinstance(data, dict), handshake
    assert set(data) == {"code", "message"}, data
    assert data["code"] == code, data
    assert isinstance(data["message"], str) and data["message"], data
    assert handshake["message"] == data["message"], handshake


# -- 1, 2: chat across processes ----------------------------------------------------------------------------


def test_chat_from_a_reaches_room_members_on_b_exactly_once(cluster: Cluster, clients: Clients) -> None:
    alice = clients.connect("alice", cluster.a, cluster.tokens["alice"])
    bob = clients.connect("bob", cluster.b, cluster.tokens["bob"])
    carol = clients.connect("carol", cluster.b, cluster.tokens["carol"])
    assert alice.handshake["transport"] == "websocket"
    assert bob.handshake["transport"] == "websocket"
    room = new_room()
    join(alice, room)
    join(bob, room)
    since = clients.nodes.mark()

    message_id = send(alice, room, "hello from A")

    at_bob = wait_message(bob, message_id, since)
    at_alice = wait_message(alice, message_id, since)
    assert_message(at_bob, message_id, room, "alice", "hello from A")
    assert at_alice == at_bob

    # A member that never joined may not send to the room, and nothing it tried reaches anyone.
    refused = carol.emit("chat:message", {"roomId": room, "content": "let me in"})
    assert refused is not None and len(refused) == 1
    assert refused[0]["ok"] is False
    assert refused[0]["error"]["code"] == "NOT_IN_ROOM"

    time.sleep(SETTLE)
    assert len(alice.messages_with_id(message_id)) == 1
    assert len(bob.messages_with_id(message_id)) == 1
    assert carol.events("chat:new_message") == []
    assert len(alice.events("chat:new_message")) == 1
    assert len(bob.events("chat:new_message")) == 1


def test_chat_from_b_reaches_room_members_on_a(cluster: Cluster, clients: Clients) -> None:
    alice = clients.connect("alice", cluster.a, cluster.tokens["alice"])
    bob = clients.connect("bob", cluster.b, cluster.tokens["bob"])
    dave = clients.connect("dave", cluster.a, cluster.tokens["dave"])
    room = new_room()
    join(alice, room)
    join(bob, room)
    since = clients.nodes.mark()

    message_id = send(bob, room, "hello from B")

    at_alice = wait_message(alice, message_id, since)
    at_bob = wait_message(bob, message_id, since)
    assert_message(at_alice, message_id, room, "bob", "hello from B")
    assert at_bob == at_alice
    time.sleep(SETTLE)
    assert len(alice.events("chat:new_message")) == 1
    assert len(bob.events("chat:new_message")) == 1
    assert dave.events("chat:new_message") == []

    # Leaving stops delivery on the other process too.
    assert alice.emit("chat:leave", {"roomId": room}) == [{"ok": True, "data": {"roomId": room}}]
    second = send(bob, room, "anyone there?")
    wait_message(bob, second, since)
    time.sleep(SETTLE)
    assert alice.messages_with_id(second) == []
    assert len(bob.events("chat:new_message")) == 2


def test_room_index_is_cluster_wide_and_cleared_on_disconnect(cluster: Cluster, clients: Clients) -> None:
    alice = clients.connect("alice", cluster.a, cluster.tokens["alice"])
    bob = clients.connect("bob", cluster.b, cluster.tokens["bob"])
    room = new_room()
    join(alice, room)
    join(bob, room)
    key = cluster.room_key(f"group:{room}")
    assert cluster.redis.smembers(key) == {alice.handshake["sid"], bob.handshake["sid"]}
    assert cluster.redis.smembers(cluster.socket_rooms_key(alice.handshake["sid"])) == {
        "user:alice",
        "broadcast:all",
        f"group:{room}",
    }

    assert clients.disconnect(alice), "server A kept alice's room index entry after she disconnected"
    assert cluster.redis.smembers(key) == {bob.handshake["sid"]}


# -- 3, 4: transports ---------------------------------------------------------------------------------------


def test_polling_client_upgrades_to_websocket_then_chats(cluster: Cluster, clients: Clients) -> None:
    before = clients.nodes.mark()
    erin = clients.connect(
        "erin", cluster.a, cluster.tokens["erin"], transports=["polling", "websocket"], upgrade=True
    )
    upgrade = clients.nodes.wait_for(
        lambda m: m.get("type") == "upgrade" and m.get("id") == erin.id, timeout=10.0, since=before
    )
    assert upgrade["transport"] == "websocket"
    upgrades = [m for m in clients.nodes.messages[before:] if m.get("type") == "upgrade" and m.get("id") == erin.id]
    assert len(upgrades) == 1

    bob = clients.connect("bob", cluster.b, cluster.tokens["bob"])
    room = new_room()
    join(erin, room)
    join(bob, room)
    since = clients.nodes.mark()
    message_id = send(erin, room, "upgraded")
    assert_message(wait_message(erin, message_id, since), message_id, room, "erin", "upgraded")
    assert_message(wait_message(bob, message_id, since), message_id, room, "erin", "upgraded")
    time.sleep(SETTLE)
    assert len(erin.messages_with_id(message_id)) == 1
    assert len(bob.messages_with_id(message_id)) == 1


def test_polling_only_client_joins_and_chats(cluster: Cluster, clients: Clients) -> None:
    frank = clients.connect("frank", cluster.b, cluster.tokens["frank"], transports=["polling"], upgrade=False)
    assert frank.handshake["transport"] == "polling"
    room = new_room()
    join(frank, room)
    alice = clients.connect("alice", cluster.a, cluster.tokens["alice"])
    join(alice, room)
    since = clients.nodes.mark()

    message_id = send(alice, room, "to a polling client")

    assert_message(wait_message(frank, message_id, since), message_id, room, "alice", "to a polling client")
    time.sleep(SETTLE)
    assert len(frank.messages_with_id(message_id)) == 1
    assert clients.nodes.of(frank.id, types=["upgrade"]) == []


# -- 5, 6: handshake authentication through gunicorn ---------------------------------------------------------


@pytest.mark.parametrize(
    ("server", "transports"),
    [("a", ["websocket"]), ("b", ["polling"])],
)
def test_handshake_without_token_is_refused(
    cluster: Cluster, clients: Clients, server: str, transports: list[str]
) -> None:
    sock = clients.open(None, getattr(cluster, server), None, transports=transports, upgrade=False)
    assert_refused(sock, "AUTH_REQUIRED")


@pytest.mark.parametrize(
    ("server", "transports"),
    [("b", ["websocket"]), ("a", ["polling"])],
)
def test_handshake_with_garbage_token_is_refused(
    cluster: Cluster, clients: Clients, server: str, transports: list[str]
) -> None:
    sock = clients.open("garbage", getattr(cluster, server), "not-a-jwt", transports=transports, upgrade=False)
    assert_refused(sock, "INVALID_TOKEN")


def test_handshake_with_expired_token_is_refused(cluster: Cluster, clients: Clients) -> None:
    now = int(time.time())
    token = jwt.encode(
        {"sub": "oscar", "sid": session_id_of(cluster.tokens["oscar"]), "iat": now - 120, "exp": now - 60},
        E2E_SECRET,
        algorithm="HS256",
    )
    assert_refused(clients.open("oscar", cluster.b, token), "TOKEN_EXPIRED")


def test_revoked_session_is_refused_on_every_process(cluster: Cluster, clients: Clients) -> None:
    token = cluster.tokens["mallory"]
    clients.connect("mallory", cluster.a, token)
    session_id = session_id_of(token)

    assert revoke_session(cluster.env, session_id) == f"revoked {session_id}"

    assert_refused(clients.open("mallory", cluster.b, token), "SESSION_REVOKED")
    # A, whose profile cache already knows mallory, still checks the session.
    assert_refused(clients.open("mallory", cluster.a, token), "SESSION_REVOKED")


@pytest.mark.parametrize(
    ("source", "server", "transports"),
    [
        ("query", "a", ["websocket"]),
        ("query", "b", ["polling"]),
        ("bearer", "b", ["websocket"]),
        ("bearer", "a", ["polling"]),
    ],
)
def test_token_from_query_or_bearer_header_connects(
    cluster: Cluster, clients: Clients, source: str, server: str, transports: list[str]
) -> None:
    user = "heidi" if source == "query" else "ivan"
    token = cluster.tokens[user]
    where: dict[str, Any] = (
        {"query": {"token": token}} if source == "query" else {"headers": {"Authorization": f"Bearer {token}"}}
    )
    sock = clients.connect(user, getattr(cluster, server), None, transports=transports, upgrade=False, **where)
    assert sock.handshake["transport"] == transports[0]
    # The token was read and named the right user: the server stamps senderId from it.
    room = new_room()
    join(sock, room)
    since = clients.nodes.mark()
    message_id = send(sock, room, f"via {source}")
    assert_message(wait_message(sock, message_id, since), message_id, room, user, f"via {source}")


# -- 7: probes ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("server", ["a", "b"])
def test_health_and_readiness_probes(cluster: Cluster, server: str) -> None:
    url = getattr(cluster, server).url
    headers = {"Connection": "close"}
    health = requests.get(f"{url}/healthz", timeout=5, headers=headers)
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    ready = requests.get(f"{url}/readyz", timeout=5, headers=headers)
    assert ready.status_code == 200
    body = ready.json()
    assert (body["status"], body["redis"], body["failedPublishes"]) == ("ready", "ok", 0)
    assert set(body["probes"].values()) <= {"ok", "not probed"}


# -- 8: error envelope and error event ----------------------------------------------------------------------


def test_bad_payload_gets_validation_error_ack_or_error_event(cluster: Cluster, clients: Clients) -> None:
    grace = clients.connect("grace", cluster.a, cluster.tokens["grace"])
    room = new_room()
    join(grace, room)

    ack = grace.emit("chat:message", "just a string")
    assert ack is not None and len(ack) == 1
    assert set(ack[0]) == {"ok", "error"}
    assert ack[0]["ok"] is False
    error = ack[0]["error"]
    assert set(error) == {"code", "message"}
    assert error["code"] == "VALIDATION_ERROR"
    assert isinstance(error["message"], str) and error["message"]

    ack = grace.emit("chat:message", {"roomId": room})
    assert ack is not None and len(ack) == 1
    assert ack[0]["ok"] is False
    assert ack[0]["error"]["code"] == "VALIDATION_ERROR"
    assert set(ack[0]["error"]["fields"]) == {"content"}

    # With an ack callback the failure travels in the ack only.
    time.sleep(SETTLE)
    assert grace.events("error") == []

    since = clients.nodes.mark()
    assert grace.emit("chat:message", "no ack wanted", ack=False) is None
    event = grace.wait_event("error", since=since)
    assert len(event["args"]) == 1
    body = event["args"][0]
    assert set(body) == {"code", "message", "event"}
    assert body["code"] == "VALIDATION_ERROR"
    assert body["event"] == "chat:message"
    assert isinstance(body["message"], str) and body["message"]
    time.sleep(SETTLE)
    assert len(grace.events("error")) == 1
    # Nothing was broadcast by the refused messages.
    assert grace.events("chat:new_message") == []


# -- 9: tokens never reach the logs -------------------------------------------------------------------------


def test_tokens_never_reach_the_server_logs(cluster: Cluster, clients: Clients) -> None:
    token = cluster.tokens["judy"]
    for server in cluster.servers:
        sock = clients.connect(
            "judy", server, None, transports=["polling"], upgrade=False, query={"token": token}
        )
        join(sock, new_room())
    clients.close_all()

    # The polling requests carried ?token= in their URL; wait until both access logs show them.
    deadline = time.monotonic() + 5
    while not all("/socket.io/" in s.log_text() for s in cluster.servers):
        assert time.monotonic() < deadline, "no /socket.io/ request in the access logs"
        time.sleep(0.1)

    for server in cluster.servers:
        log = server.log_text()
        for user, leaked in cluster.tokens.items():
            header, payload, signature = leaked.split(".")
            assert leaked not in log, f"{user}'s token is in server {server.name}'s log"
            assert signature not in log, f"{user}'s token signature is in server {server.name}'s log"
            assert payload not in log, f"{user}'s token claims are in server {server.name}'s log"
        assert E2E_SECRET not in log
