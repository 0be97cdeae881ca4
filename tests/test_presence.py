"""Presence on both transports: chosen statuses, subscriptions, checks, online/offline transitions."""
from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask_socketio import SocketIOTestClient

from realtime.extensions import socketio
from tests.conftest import TokenActions

ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def connect(app: Flask, user_id: str, token: str | None = None) -> SocketIOTestClient:
    client = socketio.test_client(app, auth={"token": token or TokenActions(app).create(user_id)})
    assert client.is_connected(), f"{user_id} could not connect"
    return client


def received(client: SocketIOTestClient, event: str) -> list[Any]:
    """Payloads of ``event`` received since the last call (drains everything the client received)."""
    return [m["args"][0] for m in client.get_received() if m["name"] == event]


def subscribed(app: Flask, user_id: str, to: list[str]) -> SocketIOTestClient:
    client = connect(app, user_id)
    assert client.emit("presence:subscribe", to, callback=True)["ok"]
    client.get_received()
    return client


# presence:status


@pytest.mark.parametrize(
    "payload", [pytest.param({"status": "away"}, id="object"), pytest.param("away", id="bare-string")]
)
def test_status_reaches_subscribers_only(any_app: Flask, payload: Any) -> None:
    alice = subscribed(any_app, "alice", ["bob"])
    carol = subscribed(any_app, "carol", ["dave"])
    bob = connect(any_app, "bob")
    for client in (alice, carol, bob):
        client.get_received()

    ack = bob.emit("presence:status", payload, callback=True)

    assert ack["ok"] is True
    assert ack["data"]["userId"] == "bob" and ack["data"]["status"] == "away"
    assert ISO_MS.match(ack["data"]["lastSeen"])
    assert received(alice, "presence:update") == [ack["data"]]
    assert received(carol, "presence:update") == [], "not subscribed to bob"
    assert received(bob, "presence:update") == [], "bob did not subscribe to himself"


def test_status_shows_in_check_while_online(any_app: Flask) -> None:
    bob = connect(any_app, "bob")
    set_at = bob.emit("presence:status", "busy", callback=True)["data"]["lastSeen"]
    alice = connect(any_app, "alice")

    ack = alice.emit("presence:check", ["bob"], callback=True)

    assert ack == {"ok": True, "data": [{"userId": "bob", "isOnline": True, "status": "busy", "lastSeen": set_at}]}


# presence:subscribe / presence:unsubscribe


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(["bob", "carol", "bob"], id="bare-array"),
        pytest.param({"userIds": ["bob", "carol", "bob"]}, id="object"),
    ],
)
def test_subscribe_acks_unique_ids_and_delivers_updates(any_app: Flask, payload: Any) -> None:
    alice = connect(any_app, "alice")

    ack = alice.emit("presence:subscribe", payload, callback=True)

    assert ack == {"ok": True, "data": {"userIds": ["bob", "carol"]}}
    alice.get_received()
    carol = connect(any_app, "carol")
    carol.emit("presence:status", "away", callback=True)
    updates = received(alice, "presence:update")
    assert [(u["userId"], u["status"]) for u in updates] == [("carol", "online"), ("carol", "away")]


def test_unsubscribe_stops_updates(any_app: Flask) -> None:
    alice = subscribed(any_app, "alice", ["bob", "carol"])
    bob = connect(any_app, "bob")
    alice.get_received()

    ack = alice.emit("presence:unsubscribe", {"userIds": ["bob", "zed"]}, callback=True)

    assert ack == {"ok": True, "data": {"userIds": ["bob"]}}, "only rooms actually left are listed"
    bob.emit("presence:status", "away", callback=True)
    bob.disconnect()
    assert received(alice, "presence:update") == []
    carol = connect(any_app, "carol")
    assert [u["userId"] for u in received(alice, "presence:update")] == ["carol"], "other subscriptions stay"
    assert carol.is_connected()


def test_unsubscribe_bare_array(any_app: Flask) -> None:
    alice = subscribed(any_app, "alice", ["bob"])

    ack = alice.emit("presence:unsubscribe", ["bob"], callback=True)

    assert ack == {"ok": True, "data": {"userIds": ["bob"]}}
    connect(any_app, "bob")
    assert received(alice, "presence:update") == []


# presence:check


def test_check_answers_in_request_order_and_as_event(any_app: Flask) -> None:
    bob = connect(any_app, "bob")
    bob.emit("presence:status", {"status": "away"}, callback=True)
    dave = connect(any_app, "dave")
    dave.disconnect()
    alice = connect(any_app, "alice")
    alice.get_received()

    ack = alice.emit("presence:check", {"userIds": ["dave", "bob", "carol", "alice", "bob"]}, callback=True)

    assert ack["ok"] is True
    users = ack["data"]
    assert [u["userId"] for u in users] == ["dave", "bob", "carol", "alice"]
    by_id = {u["userId"]: u for u in users}
    assert (by_id["dave"]["isOnline"], by_id["dave"]["status"]) == (False, "offline")
    assert ISO_MS.match(by_id["dave"]["lastSeen"])
    assert (by_id["bob"]["isOnline"], by_id["bob"]["status"]) == (True, "away")
    assert ISO_MS.match(by_id["bob"]["lastSeen"])
    assert by_id["carol"] == {"userId": "carol", "isOnline": False, "status": "offline", "lastSeen": None}
    assert (by_id["alice"]["isOnline"], by_id["alice"]["status"]) == (True, "online")
    assert ISO_MS.match(by_id["alice"]["lastSeen"])
    assert received(alice, "presence:status_list") == [{"users": users}]


def test_check_after_reconnect_resets_chosen_status(any_app: Flask) -> None:
    token = TokenActions(any_app).create("bob")
    bob = connect(any_app, "bob", token)
    bob.emit("presence:status", "busy", callback=True)
    bob.disconnect()
    connect(any_app, "bob", token)
    alice = connect(any_app, "alice")

    (entry,) = alice.emit("presence:check", ["bob"], callback=True)["data"]

    assert (entry["isOnline"], entry["status"]) == (True, "online")


# Connect / disconnect transitions


def test_first_connect_and_last_disconnect_are_announced_once(any_app: Flask) -> None:
    alice = subscribed(any_app, "alice", ["bob"])
    carol = connect(any_app, "carol")
    token = TokenActions(any_app).create("bob")

    tab1 = connect(any_app, "bob", token)
    (online,) = received(alice, "presence:update")
    assert online["userId"] == "bob" and online["status"] == "online" and ISO_MS.match(online["lastSeen"])

    tab2 = connect(any_app, "bob", token)
    assert received(alice, "presence:update") == [], "a second tab changes nothing"
    tab2.disconnect()
    assert received(alice, "presence:update") == [], "bob still has a tab"

    tab1.disconnect()
    (offline,) = received(alice, "presence:update")
    assert offline["userId"] == "bob" and offline["status"] == "offline" and ISO_MS.match(offline["lastSeen"])
    assert received(carol, "presence:update") == []


# Bad input


@pytest.mark.parametrize(
    ("event", "payload", "code", "field"),
    [
        pytest.param("presence:status", "offline", "VALIDATION_ERROR", "status", id="status-offline"),
        pytest.param("presence:status", "AWAY", "VALIDATION_ERROR", "status", id="status-uppercase"),
        pytest.param("presence:status", "", "VALIDATION_ERROR", "status", id="status-empty"),
        pytest.param("presence:status", 42, "VALIDATION_ERROR", "status", id="status-number"),
        pytest.param("presence:status", {}, "VALIDATION_ERROR", "status", id="status-missing"),
        pytest.param(
            "presence:status", {"status": "away", "mood": "x"}, "VALIDATION_ERROR", "mood", id="status-extra-key"
        ),
        pytest.param(
            "presence:subscribe", [f"u{i}" for i in range(101)], "VALIDATION_ERROR", "userIds", id="subscribe-101"
        ),
        pytest.param("presence:subscribe", [], "VALIDATION_ERROR", "userIds", id="subscribe-empty"),
        pytest.param(
            "presence:subscribe", ["bob", "no/slash"], "VALIDATION_ERROR", "userIds", id="subscribe-malformed"
        ),
        pytest.param("presence:subscribe", ["x" * 65], "VALIDATION_ERROR", "userIds", id="subscribe-65-chars"),
        pytest.param("presence:subscribe", "bob", "VALIDATION_ERROR", "userIds", id="subscribe-bare-string"),
        pytest.param("presence:subscribe", [7], "VALIDATION_ERROR", "userIds", id="subscribe-number-id"),
        pytest.param(
            "presence:unsubscribe", {"userIds": ["bob bob"]}, "VALIDATION_ERROR", "userIds", id="unsubscribe-malformed"
        ),
        pytest.param(
            "presence:check", {"userIds": [f"u{i}" for i in range(101)]}, "VALIDATION_ERROR", "userIds", id="check-101"
        ),
        pytest.param("presence:check", {"ids": ["bob"]}, "VALIDATION_ERROR", "userIds", id="check-wrong-key"),
        pytest.param("presence:check", ["ｂob"], "VALIDATION_ERROR", "userIds", id="check-lookalike"),
    ],
)
def test_bad_input_gets_exact_code(any_app: Flask, event: str, payload: Any, code: str, field: str) -> None:
    alice = connect(any_app, "alice")

    ack = alice.emit(event, payload, callback=True)

    assert ack["ok"] is False
    assert ack["error"]["code"] == code
    assert field in ack["error"]["fields"], ack["error"]
    assert alice.is_connected(), "bad input must never drop the socket"
    assert alice.emit("presence:check", ["alice"], callback=True)["ok"]


def test_check_accepts_100_users(any_app: Flask) -> None:
    alice = connect(any_app, "alice")

    ack = alice.emit("presence:check", [f"u{i}" for i in range(100)], callback=True)

    assert ack["ok"] is True and len(ack["data"]) == 100


def test_counted_rooms_include_parked_sockets_and_are_read_after_the_release(any_app: Flask) -> None:
    state = any_app.extensions["realtime"].state
    template = ["presence:{userId}"]
    state.connect("w1", "alice", "s-a", ["presence:bob"], False)  # alice watches bob

    info = state.connect("b1", "bob", "s-b", [], False, counted=["presence:bob"])
    assert info.counted == {"presence:bob": 1}
    state.park(["w1"], 30)
    (released,) = state.release(["b1"], template)
    assert released.counted == {"presence:bob": 1}, "a parked watcher counts: its recovery replays the update"

    (gone,) = state.release(["w1"], template)
    assert (gone.user_id, gone.counted) == ("alice", {"presence:alice": 0})
    state.connect("b2", "bob", "s-b", [], False)
    state.park(["b2"], -1)
    (reaped,) = state.reap(10, template)
    assert (reaped.sid, reaped.counted) == ("b2", {"presence:bob": 0}), "nobody watches bob any more"


def test_nobody_watching_means_no_presence_broadcast_and_no_log_entry(any_app: Flask) -> None:
    services = any_app.extensions["realtime"]
    logged_before = len(services.recovery.since("0-0"))
    carol = connect(any_app, "carol")
    carol.disconnect()
    alice = subscribed(any_app, "alice", ["bob"])
    bob = connect(any_app, "bob")
    bob.disconnect()

    assert [(u["userId"], u["status"]) for u in received(alice, "presence:update")] == [
        ("bob", "online"),
        ("bob", "offline"),
    ]
    logged = [(p.event, p.room) for p in services.recovery.since("0-0")[logged_before:]]
    assert logged == [("presence:update", "presence:bob")] * 2, "carol's coming and going reached nobody"
