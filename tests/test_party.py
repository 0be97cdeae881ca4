"""Party live feeds on both transports: cluster-wide viewer counts on join, leave and disconnect."""
from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask_socketio import SocketIOTestClient

from realtime.extensions import socketio
from tests.conftest import TokenActions



def connect(app: Flask, user_id: str, token: str | None = None) -> SocketIOTestClient:
    client = socketio.test_client(app, auth={"token": token or TokenActions(app).create(user_id)})
    assert client.is_connected(), f"{user_id} could not connect"
    return client


def received(client: SocketIOTestClient, event: str) -> list[Any]:
    """Payloads of ``event`` received since the last call (drains everything the client received)."""
    return [m["args"][0] for m in client.get_received() if m["name"] == event]


def watching(app: Flask, *users: str, party: str = "p42") -> list[SocketIOTestClient]:
    clients = [connect(app, user) for user in users]
    for client in clients:
        assert client.emit("party:join_live", {"partyId": party}, callback=True)["ok"]
    for client in clients:
        client.get_received()
    return clients


def test_join_counts_viewers_and_tells_the_others(any_app: Flask) -> None:
    alice, bob = connect(any_app, "alice"), connect(any_app, "bob")

    first = alice.emit("party:join_live", {"partyId": "p42"}, callback=True)
    alice.get_received()
    second = bob.emit("party:join_live", {"partyId": "p42"}, callback=True)

    assert first == {"ok": True, "data": {"partyId": "p42", "viewerCount": 1}}
    assert second == {"ok": True, "data": {"partyId": "p42", "viewerCount": 2}}
    assert received(alice, "party:viewer_joined") == [{"userId": "bob", "partyId": "p42", "viewerCount": 2}]
    assert received(bob, "party:viewer_joined") == [], "the joiner does not hear about itself"


def test_two_tabs_of_one_user_are_one_viewer_announced_once(any_app: Flask) -> None:
    token = TokenActions(any_app).create("alice")
    tab1, tab2 = connect(any_app, "alice", token), connect(any_app, "alice", token)
    bob = connect(any_app, "bob")
    bob.emit("party:join_live", {"partyId": "p42"}, callback=True)
    bob.get_received()

    counts = [t.emit("party:join_live", {"partyId": "p42"}, callback=True)["data"]["viewerCount"] for t in (tab1, tab2)]
    joined = received(bob, "party:viewer_joined")
    tab1.emit("party:leave_live", {"partyId": "p42"}, callback=True)
    after_one_tab = received(bob, "party:viewer_left")
    tab2.emit("party:leave_live", {"partyId": "p42"}, callback=True)
    after_both = received(bob, "party:viewer_left")

    assert counts == [2, 2]
    assert joined == [{"userId": "alice", "partyId": "p42", "viewerCount": 2}]
    assert after_one_tab == []
    assert after_both == [{"userId": "alice", "partyId": "p42", "viewerCount": 1}]


def test_rejoin_by_same_socket_changes_nothing(any_app: Flask) -> None:
    alice, bob = watching(any_app, "alice", "bob")

    again = bob.emit("party:join_live", {"partyId": "p42"}, callback=True)

    assert again == {"ok": True, "data": {"partyId": "p42", "viewerCount": 2}}
    assert received(alice, "party:viewer_joined") == []


def test_parties_are_counted_separately(any_app: Flask) -> None:
    watching(any_app, "alice", "bob", party="p1")
    carol = connect(any_app, "carol")

    ack = carol.emit("party:join_live", {"partyId": "p2"}, callback=True)

    assert ack["data"] == {"partyId": "p2", "viewerCount": 1}


def test_leave_sends_new_count_to_remaining_viewers(any_app: Flask) -> None:
    alice, bob, carol = watching(any_app, "alice", "bob", "carol")

    ack = carol.emit("party:leave_live", {"partyId": "p42"}, callback=True)

    assert ack == {"ok": True, "data": {"partyId": "p42", "viewerCount": 2}}
    for client in (alice, bob):
        assert received(client, "party:viewer_left") == [{"userId": "carol", "partyId": "p42", "viewerCount": 2}]
    assert received(carol, "party:viewer_left") == [], "the leaver no longer receives the feed"
    again = carol.emit("party:leave_live", {"partyId": "p42"}, callback=True)
    assert again["ok"] is False and again["error"]["code"] == "NOT_IN_ROOM"
    assert carol.is_connected()


def test_disconnect_of_viewer_decrements_count(any_app: Flask) -> None:
    alice, bob, carol = watching(any_app, "alice", "bob", "carol")

    carol.disconnect()

    for client in (alice, bob):
        assert received(client, "party:viewer_left") == [{"userId": "carol", "partyId": "p42", "viewerCount": 2}]
    bob.disconnect()
    assert received(alice, "party:viewer_left") == [{"userId": "bob", "partyId": "p42", "viewerCount": 1}]
    dave = connect(any_app, "dave")
    assert dave.emit("party:join_live", {"partyId": "p42"}, callback=True)["data"]["viewerCount"] == 2


def test_disconnect_reports_every_party_of_the_socket(any_app: Flask) -> None:
    alice = connect(any_app, "alice")
    bob = connect(any_app, "bob")
    for party in ("p1", "p2"):
        for client in (alice, bob):
            assert client.emit("party:join_live", {"partyId": party}, callback=True)["ok"]
    alice.get_received()

    bob.disconnect()

    left = received(alice, "party:viewer_left")
    assert sorted(left, key=lambda v: v["partyId"]) == [
        {"userId": "bob", "partyId": "p1", "viewerCount": 1},
        {"userId": "bob", "partyId": "p2", "viewerCount": 1},
    ]


def test_disconnect_of_non_viewer_sends_nothing(any_app: Flask) -> None:
    (alice,) = watching(any_app, "alice")
    bob = connect(any_app, "bob")

    bob.disconnect()

    assert received(alice, "party:viewer_left") == []


@pytest.mark.parametrize(
    ("event", "payload", "code", "field"),
    [
        pytest.param("party:join_live", {}, "VALIDATION_ERROR", "partyId", id="join-missing"),
        pytest.param("party:join_live", {"partyId": ""}, "VALIDATION_ERROR", "partyId", id="join-empty"),
        pytest.param("party:join_live", {"partyId": "p:42"}, "VALIDATION_ERROR", "partyId", id="join-colon"),
        pytest.param("party:join_live", {"partyId": "x" * 65}, "VALIDATION_ERROR", "partyId", id="join-65-chars"),
        pytest.param("party:join_live", {"partyId": 42}, "VALIDATION_ERROR", "partyId", id="join-number"),
        pytest.param(
            "party:join_live", {"partyId": "p42", "role": "host"}, "VALIDATION_ERROR", "role", id="join-extra-key"
        ),
        pytest.param("party:join_live", "p42", "VALIDATION_ERROR", None, id="join-bare-string"),
        pytest.param("party:leave_live", {"partyId": "../p42"}, "VALIDATION_ERROR", "partyId", id="leave-dots"),
        pytest.param("party:leave_live", {"partyId": "p7"}, "NOT_IN_ROOM", None, id="leave-not-watching"),
    ],
)
def test_bad_input_gets_exact_code(any_app: Flask, event: str, payload: Any, code: str, field: str | None) -> None:
    (alice,) = watching(any_app, "alice")

    ack = alice.emit(event, payload, callback=True)

    assert ack["ok"] is False
    assert ack["error"]["code"] == code
    if field is None:
        assert "fields" not in ack["error"]
    else:
        assert field in ack["error"]["fields"], ack["error"]
    assert alice.is_connected(), "bad input must never drop the socket"
    assert alice.emit("party:join_live", {"partyId": "p42"}, callback=True)["data"]["viewerCount"] == 1
