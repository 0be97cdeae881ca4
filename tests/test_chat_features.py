"""Chat features on both transports: history on join, membership events, media, idempotent sends, paging,
typing indicators and notifications for offline members."""
from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask_socketio import SocketIOTestClient

from realtime.extensions import socketio
from realtime.stores.sessions import Profile
from tests.conftest import APP_FIXTURES, TokenActions
from tests.helpers.offline_jobs import offline_jobs_done

ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
MESSAGE_KEYS = {"id", "roomId", "senderId", "sender", "content", "type", "mediaUrl", "clientId", "createdAt"}


@pytest.fixture
def short_history_app(config: dict[str, Any], transport: str, request: pytest.FixtureRequest) -> Flask:
    """``any_app`` that sends at most 3 messages of history to a joiner."""
    config["CHAT_JOIN_HISTORY"] = "3"
    return request.getfixturevalue(APP_FIXTURES[transport])


def connect(app: Flask, user_id: str, token: str | None = None) -> SocketIOTestClient:
    client = socketio.test_client(app, auth={"token": token or TokenActions(app).create(user_id)})
    assert client.is_connected(), f"{user_id} could not connect"
    return client


def of(messages: list[dict[str, Any]], event: str) -> list[Any]:
    return [m["args"][0] for m in messages if m["name"] == event]


def received(client: SocketIOTestClient, event: str) -> list[Any]:
    """Payloads of ``event`` received since the last call (drains everything the client received)."""
    return of(client.get_received(), event)


def joined(app: Flask, *users: str, room: str = "lobby") -> list[SocketIOTestClient]:
    """Connect each user, join ``room``, and clear what they received so far."""
    clients = [connect(app, user) for user in users]
    for client in clients:
        assert client.emit("chat:join", {"roomId": room}, callback=True)["ok"]
    for client in clients:
        client.get_received()
    return clients


def send(client: SocketIOTestClient, content: str, room: str = "lobby", **extra: Any) -> str:
    ack = client.emit("chat:message", {"roomId": room, "content": content, **extra}, callback=True)
    assert ack["ok"], ack
    return str(ack["data"]["id"])


# chat:join / chat:leave


def test_join_acks_newest_history_limited_by_setting(short_history_app: Flask) -> None:
    (alice,) = joined(short_history_app, "alice")
    ids = [send(alice, f"m{i}") for i in range(5)]
    alice.get_received()
    bob = connect(short_history_app, "bob")
    bob.get_received()

    ack = bob.emit("chat:join", {"roomId": "lobby"}, callback=True)

    assert ack["ok"] is True
    assert ack["data"]["roomId"] == "lobby"
    assert [m["content"] for m in ack["data"]["messages"]] == ["m4", "m3", "m2"]
    assert [m["id"] for m in ack["data"]["messages"]] == ids[:1:-1]
    assert all(set(m) == MESSAGE_KEYS for m in ack["data"]["messages"])
    bob_got = bob.get_received()
    assert of(bob_got, "chat:history") == [ack["data"]]
    assert of(bob_got, "chat:user_joined") == [], "the joiner does not hear about itself"
    (announce,) = received(alice, "chat:user_joined")
    assert announce["userId"] == "bob" and announce["roomId"] == "lobby"
    assert ISO_MS.match(announce["timestamp"])


def test_join_of_empty_room_sends_empty_history(any_app: Flask) -> None:
    alice = connect(any_app, "alice")
    alice.get_received()

    ack = alice.emit("chat:join", {"roomId": "fresh"}, callback=True)

    assert ack == {"ok": True, "data": {"roomId": "fresh", "messages": []}}
    assert received(alice, "chat:history") == [{"roomId": "fresh", "messages": []}]


def test_second_join_of_same_socket_is_not_announced_again(any_app: Flask) -> None:
    alice, bob = joined(any_app, "alice", "bob")

    assert bob.emit("chat:join", {"roomId": "lobby"}, callback=True)["ok"]

    assert received(alice, "chat:user_joined") == []


def test_leave_tells_others_and_stops_delivery(any_app: Flask) -> None:
    alice, bob = joined(any_app, "alice", "bob")

    ack = bob.emit("chat:leave", {"roomId": "lobby"}, callback=True)

    assert ack == {"ok": True, "data": {"roomId": "lobby"}}
    (left,) = received(alice, "chat:user_left")
    assert left["userId"] == "bob" and left["roomId"] == "lobby" and ISO_MS.match(left["timestamp"])
    assert received(bob, "chat:user_left") == []
    send(alice, "anyone?")
    assert received(bob, "chat:new_message") == []
    assert [m["content"] for m in received(alice, "chat:new_message")] == ["anyone?"]


def test_disconnect_of_member_tells_the_others(any_app: Flask) -> None:
    alice, bob = joined(any_app, "alice", "bob")

    bob.disconnect()

    (left,) = received(alice, "chat:user_left")
    assert left["userId"] == "bob" and left["roomId"] == "lobby" and ISO_MS.match(left["timestamp"])


# chat:message


def test_message_has_full_shape_with_sender_profile(any_app: Flask) -> None:
    any_app.extensions["realtime"].sessions.put_profile(
        Profile(id="alice", username="Alice A.", avatar_url="https://cdn.example/a.png")
    )
    alice, bob = joined(any_app, "alice", "bob")

    ack = alice.emit("chat:message", {"roomId": "lobby", "content": "hello"}, callback=True)

    assert ack == {"ok": True, "data": {"id": ack["data"]["id"], "duplicate": False}}
    for client in (alice, bob):
        (message,) = received(client, "chat:new_message")
        assert message == {
            "id": ack["data"]["id"],
            "roomId": "lobby",
            "senderId": "alice",
            "sender": {"id": "alice", "username": "Alice A.", "avatarUrl": "https://cdn.example/a.png"},
            "content": "hello",
            "type": "TEXT",
            "mediaUrl": None,
            "clientId": None,
            "createdAt": message["createdAt"],
        }
        assert ISO_MS.match(message["createdAt"])


def test_sender_without_profile_is_named_by_id(any_app: Flask) -> None:
    alice, bob = joined(any_app, "alice", "bob")

    send(alice, "hi")

    (message,) = received(bob, "chat:new_message")
    assert message["sender"] == {"id": "alice", "username": "alice", "avatarUrl": None}


def test_media_only_message_is_delivered_without_content(any_app: Flask) -> None:
    alice, bob = joined(any_app, "alice", "bob")

    ack = alice.emit(
        "chat:message",
        {"roomId": "lobby", "type": "IMAGE", "mediaUrl": "https://cdn.example/p.jpg"},
        callback=True,
    )

    assert ack["ok"] is True
    (message,) = received(bob, "chat:new_message")
    assert message["id"] == ack["data"]["id"]
    assert (message["type"], message["content"], message["mediaUrl"]) == ("IMAGE", None, "https://cdn.example/p.jpg")


def test_client_id_retry_is_stored_and_delivered_once(any_app: Flask) -> None:
    alice, bob = joined(any_app, "alice", "bob")
    payload = {"roomId": "lobby", "content": "once", "clientId": "c-7f3a"}

    first = alice.emit("chat:message", payload, callback=True)
    retry = alice.emit("chat:message", payload, callback=True)

    assert first == {"ok": True, "data": {"id": first["data"]["id"], "duplicate": False}}
    assert retry == {"ok": True, "data": {"id": first["data"]["id"], "duplicate": True}}
    (message,) = received(bob, "chat:new_message")
    assert message["clientId"] == "c-7f3a"
    history = bob.emit("chat:history", {"roomId": "lobby"}, callback=True)
    assert [m["id"] for m in history["data"]["messages"]] == [first["data"]["id"]]


def test_same_client_id_from_another_sender_is_a_new_message(any_app: Flask) -> None:
    alice, bob = joined(any_app, "alice", "bob")

    a = alice.emit("chat:message", {"roomId": "lobby", "content": "a", "clientId": "c-1"}, callback=True)
    b = bob.emit("chat:message", {"roomId": "lobby", "content": "b", "clientId": "c-1"}, callback=True)

    assert a["data"]["duplicate"] is False and b["data"]["duplicate"] is False
    assert a["data"]["id"] != b["data"]["id"]


# chat:history


def test_history_pages_newest_first_with_cursor(any_app: Flask) -> None:
    (alice,) = joined(any_app, "alice")
    ids = [send(alice, f"m{i}") for i in range(5)]

    pages = []
    before: str | None = None
    for _ in range(3):
        payload: dict[str, Any] = {"roomId": "lobby", "limit": 2}
        if before is not None:
            payload["before"] = before
        ack = alice.emit("chat:history", payload, callback=True)
        assert ack["ok"] is True, ack
        pages.append(ack["data"])
        before = ack["data"]["cursor"]

    assert [[m["content"] for m in page["messages"]] for page in pages] == [["m4", "m3"], ["m2", "m1"], ["m0"]]
    assert [page["cursor"] for page in pages] == [ids[3], ids[1], None]
    assert all(page["roomId"] == "lobby" for page in pages)


def test_history_default_limit_returns_everything_small(any_app: Flask) -> None:
    (alice,) = joined(any_app, "alice")
    send(alice, "only")

    ack = alice.emit("chat:history", {"roomId": "lobby"}, callback=True)

    assert [m["content"] for m in ack["data"]["messages"]] == ["only"]
    assert ack["data"]["cursor"] is None


def test_history_accepts_limit_100(any_app: Flask) -> None:
    (alice,) = joined(any_app, "alice")
    send(alice, "x")

    ack = alice.emit("chat:history", {"roomId": "lobby", "limit": 100}, callback=True)

    assert ack["ok"] is True and len(ack["data"]["messages"]) == 1


# chat:typing


def test_typing_reaches_only_others_and_is_throttled(any_app: Flask) -> None:
    alice, bob = joined(any_app, "alice", "bob")

    first = alice.emit("chat:typing", {"roomId": "lobby", "isTyping": True}, callback=True)
    assert first == {"ok": True, "data": {"sent": True}}
    assert received(bob, "chat:user_typing") == [
        {"userId": "alice", "username": "alice", "isTyping": True, "roomId": "lobby"}
    ]
    assert received(alice, "chat:user_typing") == []

    repeat = alice.emit("chat:typing", {"roomId": "lobby", "isTyping": True}, callback=True)
    assert repeat == {"ok": True, "data": {"sent": False}}
    assert received(bob, "chat:user_typing") == []

    for _ in range(2):
        stop = alice.emit("chat:typing", {"roomId": "lobby", "isTyping": False}, callback=True)
        assert stop == {"ok": True, "data": {"sent": True}}
        assert received(bob, "chat:user_typing") == [
            {"userId": "alice", "username": "alice", "isTyping": False, "roomId": "lobby"}
        ]

    again = alice.emit("chat:typing", {"roomId": "lobby", "isTyping": True}, callback=True)
    assert again == {"ok": True, "data": {"sent": True}}, "a stop lets the next start through at once"


def test_sending_a_message_resets_the_typing_throttle(any_app: Flask) -> None:
    alice, bob = joined(any_app, "alice", "bob")
    alice.emit("chat:typing", {"roomId": "lobby", "isTyping": True}, callback=True)
    send(alice, "done typing")
    bob.get_received()

    ack = alice.emit("chat:typing", {"roomId": "lobby", "isTyping": True}, callback=True)

    assert ack["data"] == {"sent": True}
    assert len(received(bob, "chat:user_typing")) == 1


# Offline members


def test_offline_member_is_notified_and_pushed(any_app: Flask) -> None:
    services = any_app.extensions["realtime"]
    pushed: list[tuple[list[str], dict[str, Any]]] = []
    services.register_push_hook(lambda users, notification: pushed.append((users, notification)))
    bob_token = TokenActions(any_app).create("bob")
    alice = connect(any_app, "alice")
    bob = connect(any_app, "bob", bob_token)
    for client in (alice, bob):
        assert client.emit("chat:join", {"roomId": "lobby"}, callback=True)["ok"]
    bob.disconnect()

    message_id = send(alice, "are you there?")
    offline_jobs_done(any_app)

    assert [users for users, _ in pushed] == [["bob"]]
    assert pushed[0][1]["type"] == "chat_message"
    assert pushed[0][1]["data"] == {"roomId": "lobby", "senderId": "alice", "messageId": message_id}
    bob = connect(any_app, "bob", bob_token)
    assert received(bob, "notification:unread_count") == [{"count": 1}]
    listed = bob.emit("notifications:list", {}, callback=True)
    assert listed["ok"] is True
    assert listed["data"]["unreadCount"] == 1
    (notification,) = listed["data"]["notifications"]
    assert notification["type"] == "chat_message"
    assert notification["read"] is False
    assert notification["body"] == "are you there?"
    assert notification["data"]["roomId"] == "lobby"
    assert notification["data"]["messageId"] == message_id
    assert notification["id"] == f"chat-{message_id}"


def test_online_member_and_sender_are_not_notified(any_app: Flask) -> None:
    services = any_app.extensions["realtime"]
    pushed: list[list[str]] = []
    services.register_push_hook(lambda users, notification: pushed.append(users))
    alice, bob = joined(any_app, "alice", "bob")

    send(alice, "both here")
    offline_jobs_done(any_app)

    assert pushed == []
    for client in (alice, bob):
        assert client.emit("notifications:list", {}, callback=True)["data"] == {"notifications": [], "unreadCount": 0}


# Bad input


@pytest.mark.parametrize(
    ("event", "payload", "code", "field"),
    [
        pytest.param("chat:join", {"roomId": "a b"}, "VALIDATION_ERROR", "roomId", id="join-space-in-id"),
        pytest.param("chat:join", {"roomId": "lobby", "extra": 1}, "VALIDATION_ERROR", "extra", id="join-unknown-key"),
        pytest.param("chat:leave", {"roomId": "elsewhere"}, "NOT_IN_ROOM", None, id="leave-not-joined"),
        pytest.param("chat:leave", {}, "VALIDATION_ERROR", "roomId", id="leave-missing-room"),
        pytest.param(
            "chat:message", {"roomId": "lobby"}, "VALIDATION_ERROR", "content", id="message-no-content-no-media"
        ),
        pytest.param(
            "chat:message",
            {"roomId": "lobby", "content": None},
            "VALIDATION_ERROR",
            "content",
            id="message-null-content",
        ),
        pytest.param(
            "chat:message",
            {"roomId": "lobby", "content": "x" * 4001},
            "VALIDATION_ERROR",
            "content",
            id="message-content-4001",
        ),
        pytest.param(
            "chat:message",
            {"roomId": "lobby", "content": "hi", "type": "STICKER"},
            "VALIDATION_ERROR",
            "type",
            id="message-bad-type",
        ),
        pytest.param(
            "chat:message",
            {"roomId": "lobby", "content": "hi", "type": "text"},
            "VALIDATION_ERROR",
            "type",
            id="message-lowercase-type",
        ),
        pytest.param(
            "chat:message",
            {"roomId": "lobby", "type": "IMAGE", "mediaUrl": "javascript:alert(1)"},
            "VALIDATION_ERROR",
            "mediaUrl",
            id="message-javascript-url",
        ),
        pytest.param(
            "chat:message",
            {"roomId": "lobby", "mediaUrl": "ftp://cdn.example/p.jpg"},
            "VALIDATION_ERROR",
            "mediaUrl",
            id="message-ftp-url",
        ),
        pytest.param(
            "chat:message",
            {"roomId": "lobby", "content": "hi", "clientId": "has space"},
            "VALIDATION_ERROR",
            "clientId",
            id="message-bad-client-id",
        ),
        pytest.param(
            "chat:message", {"roomId": "elsewhere", "content": "hi"}, "NOT_IN_ROOM", None, id="message-not-joined"
        ),
        pytest.param(
            "chat:history", {"roomId": "lobby", "limit": 101}, "VALIDATION_ERROR", "limit", id="history-limit-101"
        ),
        pytest.param(
            "chat:history", {"roomId": "lobby", "limit": 0}, "VALIDATION_ERROR", "limit", id="history-limit-0"
        ),
        pytest.param(
            "chat:history", {"roomId": "lobby", "limit": "ten"}, "VALIDATION_ERROR", "limit", id="history-limit-word"
        ),
        pytest.param(
            "chat:history",
            {"roomId": "lobby", "before": "yesterday"},
            "VALIDATION_ERROR",
            "before",
            id="history-cursor-word",
        ),
        pytest.param(
            "chat:history",
            {"roomId": "lobby", "before": "1700000000000"},
            "VALIDATION_ERROR",
            "before",
            id="history-cursor-no-seq",
        ),
        pytest.param(
            "chat:history",
            {"roomId": "lobby", "before": "1-2-3"},
            "VALIDATION_ERROR",
            "before",
            id="history-cursor-three-parts",
        ),
        pytest.param(
            "chat:typing", {"roomId": "elsewhere", "isTyping": True}, "NOT_IN_ROOM", None, id="typing-not-joined"
        ),
        pytest.param(
            "chat:typing",
            {"roomId": "lobby", "isTyping": "yes"},
            "VALIDATION_ERROR",
            "isTyping",
            id="typing-string-flag",
        ),
        pytest.param(
            "chat:typing", {"roomId": "lobby", "isTyping": 1}, "VALIDATION_ERROR", "isTyping", id="typing-int-flag"
        ),
        pytest.param("chat:typing", {"roomId": "lobby"}, "VALIDATION_ERROR", "isTyping", id="typing-missing-flag"),
    ],
)
def test_bad_input_gets_exact_code(
    any_app: Flask, event: str, payload: dict[str, Any], code: str, field: str | None
) -> None:
    (alice,) = joined(any_app, "alice")

    ack = alice.emit(event, payload, callback=True)

    assert ack["ok"] is False
    assert ack["error"]["code"] == code
    if field is None:
        assert "fields" not in ack["error"]
    else:
        assert field in ack["error"]["fields"], ack["error"]
    assert alice.is_connected(), "bad input must never drop the socket"
    assert alice.emit("chat:message", {"roomId": "lobby", "content": "still works"}, callback=True)["ok"]


# -- regressions: per-user announcements, explicit leave ends membership, no history ------------------------


def test_second_tab_is_not_announced_and_one_tab_leaving_is_not_a_leave(any_app: Flask) -> None:
    (bob,) = joined(any_app, "bob")
    token = TokenActions(any_app).create("alice")
    tab1, tab2 = connect(any_app, "alice", token), connect(any_app, "alice", token)

    tab1.emit("chat:join", {"roomId": "lobby"}, callback=True)
    tab2.emit("chat:join", {"roomId": "lobby"}, callback=True)
    joins = received(bob, "chat:user_joined")
    tab1.emit("chat:leave", {"roomId": "lobby"}, callback=True)
    after_one = received(bob, "chat:user_left")
    tab2.disconnect()
    after_both = received(bob, "chat:user_left")

    assert [j["userId"] for j in joins] == ["alice"]
    assert after_one == []
    assert [left["userId"] for left in after_both] == ["alice"]


def test_explicit_leave_ends_membership_so_no_offline_notification(any_app: Flask) -> None:
    alice, bob = joined(any_app, "alice", "bob")
    pushed: list[list[str]] = []
    any_app.extensions["realtime"].register_push_hook(lambda users, notification: pushed.append(users))
    bob.emit("chat:leave", {"roomId": "lobby"}, callback=True)
    bob.disconnect()

    alice.emit("chat:message", {"roomId": "lobby", "content": "anyone?"}, callback=True)
    offline_jobs_done(any_app)
    bob_again = connect(any_app, "bob")

    assert bob_again.emit("notifications:list", {}, callback=True)["data"]["unreadCount"] == 0
    assert pushed == []


def test_disconnect_without_leave_keeps_membership(any_app: Flask) -> None:
    alice, bob = joined(any_app, "alice", "bob")
    bob.disconnect()

    alice.emit("chat:message", {"roomId": "lobby", "content": "ping"}, callback=True)
    offline_jobs_done(any_app)

    assert connect(any_app, "bob").emit("notifications:list", {}, callback=True)["data"]["unreadCount"] == 1


def test_join_without_history(config: dict[str, Any], transport: str, request: pytest.FixtureRequest) -> None:
    config["CHAT_JOIN_HISTORY"] = "0"
    app = request.getfixturevalue(APP_FIXTURES[transport])
    (alice,) = joined(app, "alice")
    alice.emit("chat:message", {"roomId": "lobby", "content": "x"}, callback=True)
    bob = connect(app, "bob")

    ack = bob.emit("chat:join", {"roomId": "lobby"}, callback=True)

    assert ack == {"ok": True, "data": {"roomId": "lobby", "messages": []}}
    assert bob.emit("chat:message", {"roomId": "lobby", "content": "in"}, callback=True)["ok"]


@pytest.mark.parametrize("limit", ["10", 10.5, True])
def test_history_limit_must_be_an_integer(any_app: Flask, limit: Any) -> None:
    (alice,) = joined(any_app, "alice")

    ack = alice.emit("chat:history", {"roomId": "lobby", "limit": limit}, callback=True)

    assert ack["error"]["code"] == "VALIDATION_ERROR"
    assert "limit" in ack["error"]["fields"]
