"""Membership checks cost the same whatever the number of connected users and rooms: the per-event paths
look up the rooms they name in python-socketio's rooms, never scan the namespace."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask_socketio import SocketIOTestClient

from realtime import create_app
from realtime.extensions import socketio
from tests.conftest import TokenActions


class RecordingRooms(dict):  # type: ignore[type-arg]
    """python-socketio's ``rooms[namespace]`` (room → bidict of sids), recording what is read: each room
    looked up, and each full scan (what made a check grow with the number of users)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.looked_up: list[Any] = []
        self.scans = 0

    def get(self, key: Any, default: Any = None) -> Any:
        self.looked_up.append(key)
        return super().get(key, default)

    def __getitem__(self, key: Any) -> Any:
        self.looked_up.append(key)
        return super().__getitem__(key)

    def __iter__(self) -> Iterator[Any]:
        self.scans += 1
        return super().__iter__()

    def items(self) -> Any:
        self.scans += 1
        return super().items()

    def keys(self) -> Any:
        self.scans += 1
        return super().keys()

    def values(self) -> Any:
        self.scans += 1
        return super().values()

    def copy(self) -> dict[Any, Any]:
        self.scans += 1
        return dict(super().items())

    def reset(self) -> None:
        self.looked_up.clear()
        self.scans = 0


def connect(app: Flask, user_id: str) -> SocketIOTestClient:
    client = socketio.test_client(app, auth={"token": TokenActions(app).create(user_id)})
    assert client.is_connected(), user_id
    return client


@pytest.fixture
def recording(app: Flask) -> Iterator[RecordingRooms]:
    """Swap the default namespace's rooms for a recording copy once a first socket created them."""
    first = connect(app, "first")
    manager = socketio.server.manager
    rooms = RecordingRooms(manager.rooms["/"])
    manager.rooms["/"] = rooms
    yield rooms
    first.disconnect()


def room_reads_of_one_message(app: Flask, rooms: RecordingRooms, others: int) -> tuple[int, int]:
    """Connect ``others`` extra users (one ``user:`` room each), then count the rooms a member's
    ``chat:message``, ``chat:typing`` and a second ``chat:join`` read, and the scans they make."""
    for index in range(others):
        connect(app, f"user{others}-{index}")
    alice = connect(app, f"alice{others}")
    assert alice.emit("chat:join", {"roomId": f"r{others}"}, callback=True)["ok"]
    rooms.reset()

    for event, payload in [
        ("chat:message", {"roomId": f"r{others}", "content": "hi"}),
        ("chat:typing", {"roomId": f"r{others}", "isTyping": True}),
        ("chat:join", {"roomId": f"r{others}"}),
        ("chat:message", {"roomId": "not-joined", "content": "refused"}),
    ]:
        alice.emit(event, payload, callback=True)
    return len(rooms.looked_up), rooms.scans


def test_message_membership_check_reads_the_same_rooms_with_1_or_200_users(
    app: Flask, recording: RecordingRooms
) -> None:
    few = room_reads_of_one_message(app, recording, 1)
    many = room_reads_of_one_message(app, recording, 200)

    assert len(recording) > 200, "the namespace really holds one room per connected user"
    assert few[1] == many[1] == 0, "no per-event path scans the namespace's rooms"
    assert few[0] == many[0], f"room look-ups grew with the users: {few[0]} with 2, {many[0]} with 201"


def test_rooms_of_a_socket_reads_only_its_own_rooms(app: Flask, recording: RecordingRooms) -> None:
    for index in range(100):
        connect(app, f"crowd{index}")
    alice = connect(app, "alice")
    for room in ("a", "b"):
        assert alice.emit("chat:join", {"roomId": room}, callback=True)["ok"]
    (sid,) = app.extensions["realtime"].connections.of_user("alice")
    recording.reset()

    rooms = app.extensions["realtime"].rooms.rooms_of(sid)
    left = alice.emit("chat:leave", {"roomId": "a"}, callback=True)

    assert rooms == {"group:a", "group:b", "user:alice", "broadcast:all"}
    assert left["ok"] is True
    assert recording.scans == 0
    assert len(recording.looked_up) < 20, recording.looked_up


def test_membership_follows_joins_leaves_and_disconnects(app: Flask) -> None:
    services = app.extensions["realtime"]
    alice = connect(app, "alice")
    (sid,) = services.connections.of_user("alice")
    assert alice.emit("chat:join", {"roomId": "lobby"}, callback=True)["ok"]
    assert services.rooms.is_member(sid, "group:lobby")
    assert not services.rooms.is_member(sid, "group:other")
    assert not services.rooms.is_member(sid, sid), "a socket's private room is not a named room"

    assert alice.emit("chat:leave", {"roomId": "lobby"}, callback=True)["ok"]
    assert not services.rooms.is_member(sid, "group:lobby")
    assert "group:lobby" not in services.rooms.rooms_of(sid)

    assert alice.emit("chat:join", {"roomId": "lobby"}, callback=True)["ok"]
    alice.disconnect()
    assert not services.rooms.is_member(sid, "group:lobby")
    assert services.rooms.rooms_of(sid) == set()


def test_index_of_gone_sockets_is_swept(config: dict[str, Any]) -> None:
    app = create_app(config)
    try:
        manager = app.extensions["realtime"].rooms._router._manager()
        for index in range(40):
            connect(app, f"passer{index}").disconnect()
        stayer = connect(app, "stayer")
        assert stayer.emit("chat:join", {"roomId": "lobby"}, callback=True)["ok"]
        (sid,) = app.extensions["realtime"].connections.of_user("stayer")

        assert {indexed for _, indexed in manager.rooms_of_sid} == {sid}, "entries of disconnected sockets do not pile up"
        assert app.extensions["realtime"].rooms.rooms_of(sid) == {"group:lobby", "user:stayer", "broadcast:all"}
    finally:
        app.extensions["realtime"].lifecycle.stop()
