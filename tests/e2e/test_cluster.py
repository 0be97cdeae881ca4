"""End to end: two real gunicorn processes (the Procfile command) sharing one Redis, driven by the real
Node ``socket.io-client``.

Server A and server B are separate processes, so everything that crosses them goes through the Redis
message queue: a chat message sent on A reaches room members on B, a session revoked with the CLI is
refused on both.
"""
from __future__ import annotations

import re
import time
import uuid
from typing import Any

import jwt
import pytest
import requests

from tests.helpers.e2e_cluster import create_tokens, revoke_session, session_id_of
from tests.helpers.e2e_kit import E2E_SECRET, Clients, Cluster, Sock, User

pytestmark = pytest.mark.e2e

USERS = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "oscar")
#: How long to keep listening after the expected deliveries, before counting them.
SETTLE = 0.5
CREATED_AT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
MESSAGE_ID = re.compile(r"^\d{13,}-\d+$")
OFFSET = re.compile(r"^\d{13,}-\d+$")
MESSAGE_KEYS = {"id", "roomId", "senderId", "sender", "content", "type", "mediaUrl", "clientId", "createdAt"}


#: The cluster's settings on top of the kit's: INFO logs (the token check reads them), polling allowed, and
#: neither API keys nor a short presence TTL.
SETTINGS: dict[str, str | None] = {
    "LOG_LEVEL": "INFO",
    "SOCKET_TRANSPORTS": "polling,websocket",
    "API_KEYS": None,
    "PRESENCE_TTL": None,
}


@pytest.fixture(scope="module")
def cluster_overrides() -> dict[str, str | None]:
    return SETTINGS


@pytest.fixture(scope="module")
def users(cluster: Cluster) -> dict[str, User]:
    """One session and token per user in ``USERS``, the user id being the name itself."""
    return {name: User(name, token) for name, token in zip(USERS, create_tokens(cluster.env, *USERS), strict=True)}


def messages_with_id(sock: Sock, message_id: str) -> list[dict[str, Any]]:
    return sock.payloads("chat:new_message", lambda payload: payload.get("id") == message_id)


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


def test_chat_from_a_reaches_room_members_on_b_exactly_once(
    cluster: Cluster, clients: Clients, users: dict[str, User]
) -> None:
    alice = clients.connect(users["alice"], cluster.a)
    bob = clients.connect(users["bob"], cluster.b)
    carol = clients.connect(users["carol"], cluster.b)
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
    assert len(messages_with_id(alice, message_id)) == 1
    assert len(messages_with_id(bob, message_id)) == 1
    assert carol.payloads("chat:new_message") == []
    assert len(alice.payloads("chat:new_message")) == 1
    assert len(bob.payloads("chat:new_message")) == 1


def test_chat_from_b_reaches_room_members_on_a(cluster: Cluster, clients: Clients, users: dict[str, User]) -> None:
    alice = clients.connect(users["alice"], cluster.a)
    bob = clients.connect(users["bob"], cluster.b)
    dave = clients.connect(users["dave"], cluster.a)
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
    assert len(alice.payloads("chat:new_message")) == 1
    assert len(bob.payloads("chat:new_message")) == 1
    assert dave.payloads("chat:new_message") == []

    # Leaving stops delivery on the other process too.
    assert alice.emit("chat:leave", {"roomId": room}) == [{"ok": True, "data": {"roomId": room}}]
    second = send(bob, room, "anyone there?")
    wait_message(bob, second, since)
    time.sleep(SETTLE)
    assert messages_with_id(alice, second) == []
    assert len(bob.payloads("chat:new_message")) == 2


def test_room_index_is_cluster_wide_and_cleared_on_disconnect(
    cluster: Cluster, clients: Clients, users: dict[str, User]
) -> None:
    alice = clients.connect(users["alice"], cluster.a)
    bob = clients.connect(users["bob"], cluster.b)
    room = new_room()
    join(alice, room)
    join(bob, room)
    key = cluster.key(f"room:group:{room}")
    assert cluster.redis.smembers(key) == {alice.handshake["sid"], bob.handshake["sid"]}
    assert cluster.redis.smembers(cluster.key(f"socket-rooms:{alice.sid}")) == {
        "user:alice",
        "broadcast:all",
        f"group:{room}",
    }

    assert clients.disconnect(alice), "server A kept alice's room index entry after she disconnected"
    assert cluster.redis.smembers(key) == {bob.handshake["sid"]}


# -- 3, 4: transports ---------------------------------------------------------------------------------------


def test_polling_client_upgrades_to_websocket_then_chats(
    cluster: Cluster, clients: Clients, users: dict[str, User]
) -> None:
    before = clients.nodes.mark()
    erin = clients.connect(users["erin"], cluster.a, transports=["polling", "websocket"], upgrade=True)
    upgrade = clients.nodes.wait_for(
        lambda m: m.get("type") == "upgrade" and m.get("id") == erin.id, timeout=10.0, since=before
    )
    assert upgrade["transport"] == "websocket"
    upgrades = [m for m in clients.nodes.messages[before:] if m.get("type") == "upgrade" and m.get("id") == erin.id]
    assert len(upgrades) == 1

    bob = clients.connect(users["bob"], cluster.b)
    room = new_room()
    join(erin, room)
    join(bob, room)
    since = clients.nodes.mark()
    message_id = send(erin, room, "upgraded")
    assert_message(wait_message(erin, message_id, since), message_id, room, "erin", "upgraded")
    assert_message(wait_message(bob, message_id, since), message_id, room, "erin", "upgraded")
    time.sleep(SETTLE)
    assert len(messages_with_id(erin, message_id)) == 1
    assert len(messages_with_id(bob, message_id)) == 1


def test_polling_only_client_joins_and_chats(cluster: Cluster, clients: Clients, users: dict[str, User]) -> None:
    frank = clients.connect(users["frank"], cluster.b, transports=["polling"], upgrade=False)
    assert frank.handshake["transport"] == "polling"
    room = new_room()
    join(frank, room)
    alice = clients.connect(users["alice"], cluster.a)
    join(alice, room)
    since = clients.nodes.mark()

    message_id = send(alice, room, "to a polling client")

    assert_message(wait_message(frank, message_id, since), message_id, room, "alice", "to a polling client")
    time.sleep(SETTLE)
    assert len(messages_with_id(frank, message_id)) == 1
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
    sock = clients.open(None, getattr(cluster, server), "not-a-jwt", transports=transports, upgrade=False)
    assert_refused(sock, "INVALID_TOKEN")


def test_handshake_with_expired_token_is_refused(cluster: Cluster, clients: Clients, users: dict[str, User]) -> None:
    now = int(time.time())
    token = jwt.encode(
        {"sub": "oscar", "sid": session_id_of(users["oscar"].token), "iat": now - 120, "exp": now - 60},
        E2E_SECRET,
        algorithm="HS256",
    )
    assert_refused(clients.open(users["oscar"], cluster.b, token), "TOKEN_EXPIRED")


def test_revoked_session_is_refused_on_every_process(
    cluster: Cluster, clients: Clients, users: dict[str, User]
) -> None:
    token = users["mallory"].token
    clients.connect(users["mallory"], cluster.a)
    session_id = session_id_of(token)

    assert revoke_session(cluster.env, session_id) == f"revoked {session_id}"

    assert_refused(clients.open(users["mallory"], cluster.b, token), "SESSION_REVOKED")
    # A, whose profile cache already knows mallory, still checks the session.
    assert_refused(clients.open(users["mallory"], cluster.a, token), "SESSION_REVOKED")


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
    cluster: Cluster, clients: Clients, users: dict[str, User], source: str, server: str, transports: list[str]
) -> None:
    user = users["heidi" if source == "query" else "ivan"]
    token = user.token
    where: dict[str, Any] = (
        {"query": {"token": token}} if source == "query" else {"headers": {"Authorization": f"Bearer {token}"}}
    )
    sock = clients.connect(user, getattr(cluster, server), transports=transports, upgrade=False, **where)
    assert sock.handshake["transport"] == transports[0]
    # The token was read and named the right user: the server stamps senderId from it.
    room = new_room()
    join(sock, room)
    since = clients.nodes.mark()
    message_id = send(sock, room, f"via {source}")
    assert_message(wait_message(sock, message_id, since), message_id, room, user.id, f"via {source}")


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


def test_bad_payload_gets_validation_error_ack_or_error_event(
    cluster: Cluster, clients: Clients, users: dict[str, User]
) -> None:
    grace = clients.connect(users["grace"], cluster.a)
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
    assert grace.payloads("error") == []

    since = clients.nodes.mark()
    assert grace.emit("chat:message", "no ack wanted", ack=False) is None
    event = clients.nodes.wait_event(grace.id, "error", since=since)
    assert len(event["args"]) == 1
    body = event["args"][0]
    assert set(body) == {"code", "message", "event"}
    assert body["code"] == "VALIDATION_ERROR"
    assert body["event"] == "chat:message"
    assert isinstance(body["message"], str) and body["message"]
    time.sleep(SETTLE)
    assert len(grace.payloads("error")) == 1
    # Nothing was broadcast by the refused messages.
    assert grace.payloads("chat:new_message") == []


# -- 9: tokens never reach the logs -------------------------------------------------------------------------


def test_tokens_never_reach_the_server_logs(cluster: Cluster, clients: Clients, users: dict[str, User]) -> None:
    token = users["judy"].token
    for server in cluster.servers:
        sock = clients.connect(users["judy"], server, transports=["polling"], upgrade=False, query={"token": token})
        join(sock, new_room())
    clients.close_all()

    # The polling requests carried ?token= in their URL; wait until both access logs show them.
    deadline = time.monotonic() + 5
    while not all("/socket.io/" in s.log_text() for s in cluster.servers):
        assert time.monotonic() < deadline, "no /socket.io/ request in the access logs"
        time.sleep(0.1)

    for server in cluster.servers:
        log = server.log_text()
        for user, leaked in {name: user.token for name, user in users.items()}.items():
            header, payload, signature = leaked.split(".")
            assert leaked not in log, f"{user}'s token is in server {server.name}'s log"
            assert signature not in log, f"{user}'s token signature is in server {server.name}'s log"
            assert payload not in log, f"{user}'s token claims are in server {server.name}'s log"
        assert E2E_SECRET not in log
