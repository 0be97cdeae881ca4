"""Chat events through the dispatcher: the ack envelope, validation table, rooms and rate limits."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask_socketio import SocketIOTestClient

from realtime import create_app
from realtime.errors import ErrorCode
from realtime.extensions import socketio
from realtime.schemas import dumpers
from realtime.schemas.chat import ChatHistoryOutSchema
from realtime.sockets import catalog, dispatch
from tests.conftest import TokenActions

Connect = Callable[..., SocketIOTestClient]


def received(client: SocketIOTestClient, event: str) -> list[Any]:
    return [m["args"][0] for m in client.get_received() if m["name"] == event]


def test_join_answers_ok_envelope(connect: Connect) -> None:
    alice = connect("alice")
    assert alice.emit("chat:join", {"roomId": "lobby"}, callback=True) == {
        "ok": True,
        "data": {"roomId": "lobby", "messages": []},
    }


def test_a_join_dumps_its_history_once_for_the_event_and_the_ack(
    connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = connect("alice")
    alice.emit("chat:join", {"roomId": "lobby"}, callback=True)
    for text in ("one", "two"):
        alice.emit("chat:message", {"roomId": "lobby", "content": text}, callback=True)
    bob = connect("bob")
    dumped: list[int] = []

    def counting(schema: Any) -> Any:
        dump = dumpers.dumper(schema)
        if not isinstance(schema, ChatHistoryOutSchema):
            return dump
        return lambda obj, *args, **kwargs: dumped.append(len(obj["messages"])) or dump(obj, *args, **kwargs)

    # Every dump of a catalogue schema goes through realtime.schemas.dumpers.dumper (events and acks).
    monkeypatch.setattr(catalog, "dumper", counting)
    monkeypatch.setattr(dispatch, "dumper", counting)
    ack = bob.emit("chat:join", {"roomId": "lobby"}, callback=True)

    assert dumped == [2], "one dump of the two messages"
    assert [m["content"] for m in ack["data"]["messages"]] == ["two", "one"]
    assert received(bob, "chat:history") == [ack["data"]], "the event carries what the ack carries"


def test_message_reaches_every_member_including_sender(connect: Connect) -> None:
    alice, bob, carol = connect("alice"), connect("bob"), connect("carol")
    for client in (alice, bob):
        assert client.emit("chat:join", {"roomId": "lobby"}, callback=True)["ok"]
    carol.emit("chat:join", {"roomId": "elsewhere"}, callback=True)
    for client in (alice, bob, carol):
        client.get_received()

    ack = alice.emit("chat:message", {"roomId": "lobby", "content": "hello"}, callback=True)

    assert ack["ok"] is True
    for client in (alice, bob):
        (message,) = received(client, "chat:new_message")
        assert message["id"] == ack["data"]["id"]
        assert message["roomId"] == "lobby"
        assert message["senderId"] == "alice"
        assert message["content"] == "hello"
        assert message["createdAt"].endswith("Z")
    assert received(carol, "chat:new_message") == []


def test_leave_stops_delivery_and_second_leave_is_refused(connect: Connect) -> None:
    alice, bob = connect("alice"), connect("bob")
    for client in (alice, bob):
        client.emit("chat:join", {"roomId": "lobby"}, callback=True)
    assert bob.emit("chat:leave", {"roomId": "lobby"}, callback=True) == {"ok": True, "data": {"roomId": "lobby"}}
    bob.get_received()

    alice.emit("chat:message", {"roomId": "lobby", "content": "still there?"}, callback=True)

    assert received(bob, "chat:new_message") == []
    again = bob.emit("chat:leave", {"roomId": "lobby"}, callback=True)
    assert again["error"]["code"] == ErrorCode.NOT_IN_ROOM


def test_message_to_room_not_joined_is_refused_and_not_delivered(connect: Connect) -> None:
    alice, bob = connect("alice"), connect("bob")
    bob.emit("chat:join", {"roomId": "lobby"}, callback=True)
    bob.get_received()

    ack = alice.emit("chat:message", {"roomId": "lobby", "content": "sneaky"}, callback=True)

    assert ack == {
        "ok": False,
        "error": {"code": "NOT_IN_ROOM", "message": "Join chat room 'lobby' first."},
    }
    assert received(bob, "chat:new_message") == []


@pytest.mark.parametrize(
    ("event", "args", "code", "field"),
    [
        ("chat:join", ("lobby",), "VALIDATION_ERROR", None),
        ("chat:join", (["lobby"],), "VALIDATION_ERROR", None),
        ("chat:join", (None,), "VALIDATION_ERROR", None),
        ("chat:join", (42,), "VALIDATION_ERROR", None),
        ("chat:join", (), "VALIDATION_ERROR", None),
        ("chat:join", ({"roomId": "a"}, {"roomId": "b"}), "VALIDATION_ERROR", None),
        ("chat:join", ({},), "VALIDATION_ERROR", "roomId"),
        ("chat:join", ({"roomId": ""},), "VALIDATION_ERROR", "roomId"),
        ("chat:join", ({"roomId": "../etc"},), "VALIDATION_ERROR", "roomId"),
        ("chat:join", ({"roomId": "ｌobby"},), "VALIDATION_ERROR", "roomId"),
        ("chat:join", ({"roomId": "x" * 65},), "VALIDATION_ERROR", "roomId"),
        ("chat:join", ({"roomId": 7},), "VALIDATION_ERROR", "roomId"),
        ("chat:join", ({"roomId": "lobby", "__proto__": {"admin": True}},), "VALIDATION_ERROR", "__proto__"),
        ("chat:message", ({"roomId": "lobby"},), "VALIDATION_ERROR", "content"),
        ("chat:message", ({"roomId": "lobby", "content": ""},), "VALIDATION_ERROR", "content"),
        ("chat:message", ({"roomId": "lobby", "content": "x" * 4001},), "VALIDATION_ERROR", "content"),
        ("chat:message", ({"roomId": "lobby", "content": {"html": "<b>"}},), "VALIDATION_ERROR", "content"),
        ("chat:leave", ({"room": "lobby"},), "VALIDATION_ERROR", "roomId"),
        ("chat:nonexistent", ({},), "UNKNOWN_EVENT", None),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_input_gets_exact_code(connect: Connect, event: str, args: tuple[Any, ...], code: str, field: str | None) -> None:
    alice = connect("alice")
    alice.emit("chat:join", {"roomId": "lobby"}, callback=True)

    ack = alice.emit(event, *args, callback=True)

    assert ack["ok"] is False
    assert ack["error"]["code"] == code
    assert ack["error"]["message"]
    if field is not None:
        assert field in ack["error"]["fields"]
    assert alice.is_connected(), "bad input must never drop the socket"
    assert alice.emit("chat:message", {"roomId": "lobby", "content": "still works"}, callback=True)["ok"]


def test_failure_without_ack_callback_becomes_error_event(connect: Connect) -> None:
    alice = connect("alice")
    alice.get_received()

    alice.emit("chat:message", "not an object")

    errors = received(alice, "error")
    assert errors == [
        {"code": "VALIDATION_ERROR", "message": "The payload must be a JSON object, not str.", "event": "chat:message"}
    ]


def test_success_without_ack_callback_sends_no_error(connect: Connect) -> None:
    alice = connect("alice")
    alice.emit("chat:join", {"roomId": "lobby"})
    assert received(alice, "error") == []
    assert alice.emit("chat:message", {"roomId": "lobby", "content": "hi"}, callback=True)["ok"]


def test_unexpected_exception_is_internal_and_socket_survives(
    connect: Connect, app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = connect("alice")
    rooms = app.extensions["realtime"].rooms

    def explode(*args: Any) -> bool:
        raise RuntimeError("boom")

    monkeypatch.setattr(rooms, "join", explode)
    ack = alice.emit("chat:join", {"roomId": "lobby"}, callback=True)

    assert ack == {"ok": False, "error": {"code": "INTERNAL", "message": "Internal error; it has been logged."}}
    assert alice.is_connected()


def test_event_flood_is_rate_limited(config: dict[str, Any]) -> None:
    app = create_app({**config, "EVENT_RATE": "0.1", "EVENT_BURST": "3"})
    alice = socketio.test_client(app, auth={"token": TokenActions(app).create("alice")})

    codes = [alice.emit("chat:join", {"roomId": "lobby"}, callback=True).get("error", {}).get("code") for _ in range(5)]

    assert codes == [None, None, None, "RATE_LIMITED", "RATE_LIMITED"]


def test_room_cap_refuses_extra_joins(config: dict[str, Any]) -> None:
    app = create_app({**config, "MAX_ROOMS_PER_SOCKET": "4", "EVENT_BURST": "100"})
    alice = socketio.test_client(app, auth={"token": TokenActions(app).create("alice")})

    results = [alice.emit("chat:join", {"roomId": f"r{i}"}, callback=True) for i in range(3)]

    assert [r["ok"] for r in results] == [True, True, False]
    assert results[2]["error"]["code"] == "ROOM_LIMIT"


def test_unauthenticated_client_is_refused(app: Any) -> None:
    client = socketio.test_client(app)
    assert not client.is_connected()
