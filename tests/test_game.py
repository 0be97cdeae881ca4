"""Turn-based games on both transports: who may join, turn order, state broadcasts and move validation."""
from __future__ import annotations

import re
import time
from typing import Any

import gevent
import pytest
from flask import Flask
from flask_socketio import SocketIOTestClient

from realtime.extensions import socketio
from tests.conftest import TokenActions

ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


@pytest.fixture
def any_app(any_app: Flask) -> Flask:
    """Both transports (conftest's ``any_app``), with game g1 for alice then bob."""
    app = any_app
    app.extensions["realtime"].games.set_players("g1", ["alice", "bob"])
    return app


def connect(app: Flask, user_id: str, token: str | None = None) -> SocketIOTestClient:
    client = socketio.test_client(app, auth={"token": token or TokenActions(app).create(user_id)})
    assert client.is_connected(), f"{user_id} could not connect"
    return client


def received(client: SocketIOTestClient, event: str) -> list[Any]:
    """Payloads of ``event`` received since the last call (drains everything the client received)."""
    return [m["args"][0] for m in client.get_received() if m["name"] == event]


def players_in_game(app: Flask) -> tuple[SocketIOTestClient, SocketIOTestClient]:
    alice, bob = connect(app, "alice"), connect(app, "bob")
    for client in (alice, bob):
        assert client.emit("game:join", {"gameId": "g1"}, callback=True)["ok"]
    for client in (alice, bob):
        client.get_received()
    return alice, bob


INITIAL = {"gameId": "g1", "state": {"players": ["alice", "bob"], "moveCount": 0, "moves": []}, "turn": "alice"}


def test_player_join_acks_state_and_sends_game_state(any_app: Flask) -> None:
    bob = connect(any_app, "bob")
    assert bob.emit("game:join", {"gameId": "g1"}, callback=True)["ok"]
    bob.get_received()
    alice = connect(any_app, "alice")
    alice.get_received()

    ack = alice.emit("game:join", {"gameId": "g1"}, callback=True)

    assert ack == {"ok": True, "data": INITIAL}
    assert received(alice, "game:state") == [INITIAL]
    assert received(bob, "game:state") == [], "only the joiner gets the snapshot"


def test_non_player_cannot_join(any_app: Flask) -> None:
    alice, _ = players_in_game(any_app)
    carol = connect(any_app, "carol")

    ack = carol.emit("game:join", {"gameId": "g1"}, callback=True)

    assert ack == {"ok": False, "error": {"code": "FORBIDDEN", "message": "Not allowed to join 'game:g1'."}}
    assert carol.is_connected()
    alice.emit("game:move", {"gameId": "g1", "move": {"x": 1}}, callback=True)
    assert received(carol, "game:state") == [], "a refused socket is not in the room"


def test_unknown_game_is_not_found_and_joins_nothing(any_app: Flask) -> None:
    alice = connect(any_app, "alice")

    ack = alice.emit("game:join", {"gameId": "g404"}, callback=True)

    assert ack["ok"] is False
    assert ack["error"]["code"] == "NOT_FOUND"
    assert "game:g404" not in any_app.extensions["realtime"].rooms.rooms_of(_sid(any_app, "alice"))
    assert alice.is_connected()


def _sid(app: Flask, user_id: str) -> str:
    (sid,) = app.extensions["realtime"].connections.of_user(user_id)
    return sid


def test_move_before_joining_is_not_in_room(any_app: Flask) -> None:
    alice = connect(any_app, "alice")

    ack = alice.emit("game:move", {"gameId": "g1", "move": {"x": 1}}, callback=True)

    assert ack == {"ok": False, "error": {"code": "NOT_IN_ROOM", "message": "Join game 'g1' first."}}
    bob = connect(any_app, "bob")
    assert bob.emit("game:join", {"gameId": "g1"}, callback=True)["data"]["state"]["moveCount"] == 0


def test_move_out_of_turn_is_refused(any_app: Flask) -> None:
    alice, bob = players_in_game(any_app)

    ack = bob.emit("game:move", {"gameId": "g1", "move": {"x": 1}}, callback=True)

    assert ack == {"ok": False, "error": {"code": "NOT_YOUR_TURN", "message": "It is not your turn."}}
    assert received(alice, "game:state") == []
    assert bob.is_connected()


def test_valid_move_updates_both_players_and_passes_the_turn(any_app: Flask) -> None:
    alice, bob = players_in_game(any_app)
    move = {"x": 1, "y": 2, "piece": "knight", "capture": False}

    ack = alice.emit("game:move", {"gameId": "g1", "move": move}, callback=True)

    assert ack == {"ok": True, "data": {"moveCount": 1, "turn": "bob"}}
    for client in (alice, bob):
        (state,) = received(client, "game:state")
        assert state["gameId"] == "g1"
        assert state["turn"] == "bob"
        assert state["state"]["moveCount"] == 1
        assert state["state"]["players"] == ["alice", "bob"]
        (record,) = state["state"]["moves"]
        assert (record["n"], record["by"], record["move"]) == (1, "alice", move)
        assert ISO_MS.match(record["at"])


def test_turns_alternate_and_late_joiner_sees_the_log(any_app: Flask) -> None:
    alice, bob = players_in_game(any_app)

    turns = [
        client.emit("game:move", {"gameId": "g1", "move": {"n": i}}, callback=True)["data"]["turn"]
        for i, client in enumerate((alice, bob, alice))
    ]
    again = alice.emit("game:move", {"gameId": "g1", "move": {"n": 9}}, callback=True)

    assert turns == ["bob", "alice", "bob"]
    assert again["error"]["code"] == "NOT_YOUR_TURN"
    tab = connect(any_app, "bob")
    snapshot = tab.emit("game:join", {"gameId": "g1"}, callback=True)["data"]
    assert snapshot["turn"] == "bob" and snapshot["state"]["moveCount"] == 3
    assert [(m["n"], m["by"], m["move"]) for m in snapshot["state"]["moves"]] == [
        (1, "alice", {"n": 0}),
        (2, "bob", {"n": 1}),
        (3, "alice", {"n": 2}),
    ]


def test_player_removed_from_game_can_no_longer_move(any_app: Flask) -> None:
    alice, _ = players_in_game(any_app)
    any_app.extensions["realtime"].games.set_players("g1", ["bob", "carol"])

    ack = alice.emit("game:move", {"gameId": "g1", "move": {"x": 1}}, callback=True)

    assert ack == {"ok": False, "error": {"code": "FORBIDDEN", "message": "You are not a player in this game."}}


def test_player_removed_and_revalidated_leaves_the_room_and_hears_nothing_more(any_app: Flask) -> None:
    alice, bob = players_in_game(any_app)
    services = any_app.extensions["realtime"]
    services.games.set_players("g1", ["alice", "carol"])
    ready = getattr(services.bus, "ready", None)
    assert ready is None or ready.wait(5), "the control listener of the Redis app never subscribed"

    services.rooms.revalidate_room("game:g1")

    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + 5
    while not any(m["name"] == "room:removed" for m in seen) and time.monotonic() < deadline:
        gevent.sleep(0.01)
        seen += bob.get_received()
    assert [m["args"][0] for m in seen if m["name"] == "room:removed"] == [{"room": "game:g1", "reason": "forbidden"}]
    assert services.rooms.count("game:g1").users == 1
    assert alice.emit("game:move", {"gameId": "g1", "move": {"x": 1}}, callback=True)["ok"]
    assert [m["args"][0]["state"]["moveCount"] for m in alice.get_received() if m["name"] == "game:state"] == [1]
    assert received(bob, "game:state") == []
    assert received(alice, "room:removed") == []
    assert bob.emit("game:join", {"gameId": "g1"}, callback=True)["error"]["code"] == "FORBIDDEN"


def test_third_player_takes_turns_in_registered_order(any_app: Flask) -> None:
    any_app.extensions["realtime"].games.set_players("g3", ["carol", "alice", "bob"])
    carol = connect(any_app, "carol")

    ack = carol.emit("game:join", {"gameId": "g3"}, callback=True)
    moved = carol.emit("game:move", {"gameId": "g3", "move": {"x": 0}}, callback=True)

    assert ack["data"]["turn"] == "carol"
    assert moved["data"] == {"moveCount": 1, "turn": "alice"}


@pytest.mark.parametrize(
    ("payload", "code", "field"),
    [
        pytest.param({"gameId": "g1", "move": {}}, "VALIDATION_ERROR", "move", id="empty-move"),
        pytest.param(
            {"gameId": "g1", "move": {f"k{i}": i for i in range(17)}}, "VALIDATION_ERROR", "move", id="17-keys"
        ),
        pytest.param({"gameId": "g1", "move": {"to": {"x": 1}}}, "VALIDATION_ERROR", "move", id="nested-object"),
        pytest.param({"gameId": "g1", "move": {"to": [1, 2]}}, "VALIDATION_ERROR", "move", id="list-value"),
        pytest.param({"gameId": "g1", "move": {"to": None}}, "VALIDATION_ERROR", "move", id="null-value"),
        pytest.param({"gameId": "g1", "move": {"note": "x" * 65}}, "VALIDATION_ERROR", "move", id="65-char-string"),
        pytest.param({"gameId": "g1", "move": {"k" * 33: 1}}, "VALIDATION_ERROR", "move", id="33-char-key"),
        pytest.param({"gameId": "g1", "move": "e2e4"}, "VALIDATION_ERROR", "move", id="move-string"),
        pytest.param({"gameId": "g1"}, "VALIDATION_ERROR", "move", id="move-missing"),
        pytest.param({"gameId": "g 1", "move": {"x": 1}}, "VALIDATION_ERROR", "gameId", id="bad-game-id"),
        pytest.param({"gameId": "g1", "move": {"x": 1}, "undo": True}, "VALIDATION_ERROR", "undo", id="extra-key"),
        pytest.param({"gameId": "g2", "move": {"x": 1}}, "NOT_IN_ROOM", None, id="other-game"),
    ],
)
def test_bad_move_gets_exact_code(any_app: Flask, payload: dict[str, Any], code: str, field: str | None) -> None:
    alice, bob = players_in_game(any_app)

    ack = alice.emit("game:move", payload, callback=True)

    assert ack["ok"] is False
    assert ack["error"]["code"] == code
    if field is None:
        assert "fields" not in ack["error"]
    else:
        assert field in ack["error"]["fields"], ack["error"]
    assert received(bob, "game:state") == []
    assert alice.is_connected(), "bad input must never drop the socket"
    assert alice.emit("game:move", {"gameId": "g1", "move": {"x": 1}}, callback=True)["data"]["moveCount"] == 1


def test_largest_valid_move_is_accepted(any_app: Flask) -> None:
    alice, _ = players_in_game(any_app)
    move: dict[str, Any] = {f"k{i}": i for i in range(15)}
    move["k" * 32] = "x" * 64

    ack = alice.emit("game:move", {"gameId": "g1", "move": move}, callback=True)

    assert ack["ok"] is True, ack


@pytest.mark.parametrize(
    ("event", "payload", "code", "field"),
    [
        pytest.param("game:join", {}, "VALIDATION_ERROR", "gameId", id="join-missing"),
        pytest.param("game:join", {"gameId": "game:g1"}, "VALIDATION_ERROR", "gameId", id="join-prefixed"),
        pytest.param("game:join", {"gameId": ""}, "VALIDATION_ERROR", "gameId", id="join-empty"),
        pytest.param("game:join", "g1", "VALIDATION_ERROR", None, id="join-bare-string"),
    ],
)
def test_bad_join_gets_exact_code(any_app: Flask, event: str, payload: Any, code: str, field: str | None) -> None:
    alice = connect(any_app, "alice")

    ack = alice.emit(event, payload, callback=True)

    assert ack["ok"] is False
    assert ack["error"]["code"] == code
    if field is None:
        assert "fields" not in ack["error"]
    else:
        assert field in ack["error"]["fields"], ack["error"]
    assert alice.is_connected(), "bad input must never drop the socket"
    assert alice.emit("game:join", {"gameId": "g1"}, callback=True)["ok"]


def test_move_numbers_keep_full_precision_on_both_transports(any_app: Flask) -> None:
    any_app.extensions["realtime"].games.set_players("g1", ["alice", "bob"])
    alice, bob = players_in_game(any_app)
    move = {"big": 2**53 - 1, "f": 0.30000000000000004, "neg": -1e-300}

    alice.emit("game:move", {"gameId": "g1", "move": move}, callback=True)
    (state,) = received(bob, "game:state")

    assert state["state"]["moves"][-1]["move"] == move
    assert type(state["state"]["moves"][-1]["move"]["big"]) is int


@pytest.mark.parametrize("value", [2**53, -(2**53), float("inf")], ids=["2^53", "-2^53", "inf"])
def test_numbers_javascript_cannot_hold_are_refused(any_app: Flask, value: Any) -> None:
    any_app.extensions["realtime"].games.set_players("g1", ["alice", "bob"])
    alice, _ = players_in_game(any_app)

    ack = alice.emit("game:move", {"gameId": "g1", "move": {"v": value}}, callback=True)

    assert ack["error"]["code"] == "VALIDATION_ERROR"
    assert "move" in ack["error"]["fields"]


def test_playing_in_lists_the_games_of_a_player_in_one_call(any_app: Flask) -> None:
    games = any_app.extensions["realtime"].games
    games.set_players("g-a", ["alice", "bob"])
    games.set_players("g-b", ["carol"])
    games.set_players("g-c", ["bob"])
    assert games.playing_in(["g-a", "g-b", "g-c", "g-missing"], "bob") == {"g-a", "g-c"}
    assert games.playing_in([], "bob") == set()
