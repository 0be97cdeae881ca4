"""Room permissions follow their hook: a player removed from a game leaves ``game:{id}`` on every worker at
once, and a parked socket whose hook now refuses a room comes back without it (issue 11, point 7).

Servers A and B share the private Redis; the clients are the real Node ``socket.io-client``.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from tests.helpers.e2e_cluster import GunicornProcess
from tests.helpers.e2e_kit import (
    API_KEY,
    Clients,
    Cluster,
    Sock,
    mint,
    new_id,
    ok,
    refused,
)

pytestmark = pytest.mark.e2e

SETTLE = 0.5


def set_players(server: GunicornProcess, game_id: str, players: list[str]) -> dict[str, Any]:
    """``POST /api/v1/games/{id}/players`` on ``server``; the ``201`` answer's data."""
    response = requests.post(
        f"{server.url}/api/v1/games/{game_id}/players",
        json={"userIds": players},
        headers={"Authorization": f"Bearer {API_KEY}", "Connection": "close"},
        timeout=5,
    )
    assert response.status_code == 201, (response.status_code, response.text)
    return ok([response.json()])


def received(sock: Sock, event: str, since: int) -> list[Any]:
    """The first argument of every ``event`` ``sock`` got at or after log index ``since``."""
    return [
        m["args"][0]
        for m in sock.nodes.messages[since:]
        if m.get("type") == "event" and m.get("id") == sock.id and m.get("event") == event
    ]


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``predicate`` until true; return the seconds it took."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)
    return time.monotonic() - started


def room_members(cluster: Cluster, room: str) -> tuple[set[str], set[str]]:
    """The cluster-wide room index: sids and user ids in ``room``."""
    return (
        set(cluster.redis.smembers(cluster.key(f"room:{room}"))),
        set(cluster.redis.smembers(cluster.key(f"room-users:{room}"))),
    )


def test_removed_player_leaves_the_game_room_on_every_worker(
    cluster: Cluster, clients: Clients, no_server_errors: None
) -> None:
    users = mint(cluster, "alice", "bob", "carol")
    alice_id, bob_id, carol_id = (users[name].id for name in ("alice", "bob", "carol"))
    game = new_id("g")
    room = f"game:{game}"
    set_players(cluster.a, game, [alice_id, bob_id])
    alice = clients.connect(users["alice"], cluster.a)
    bob = clients.connect(users["bob"], cluster.b)
    alice.call("game:join", {"gameId": game})
    bob.call("game:join", {"gameId": game})
    assert room_members(cluster, room) == ({alice.sid, bob.sid}, {alice_id, bob_id})

    # Replaced through server A; bob's socket lives on server B.
    mark = clients.nodes.mark()
    started = time.monotonic()
    replaced = set_players(cluster.a, game, [alice_id, carol_id])
    assert replaced["state"]["players"] == [alice_id, carol_id]
    removed = bob.wait("room:removed", mark)
    event_after = time.monotonic() - started
    assert removed == {"room": room, "reason": "forbidden"}
    index_after = event_after + wait_until(
        lambda: bob.sid not in room_members(cluster, room)[0], 5, "bob's socket to leave the room index"
    )
    print(f"[room permissions] removed player left {room} cluster-wide: room:removed after {event_after:.3f}s, "
          f"room index after {index_after:.3f}s")
    # The room count excludes him; alice is untouched and heard no room:removed.
    assert room_members(cluster, room) == ({alice.sid}, {alice_id})
    assert received(alice, "room:removed", 0) == []

    # His next game:state does not arrive: alice moves, alice sees it, bob does not.
    moved = clients.nodes.mark()
    assert alice.call("game:move", {"gameId": game, "move": {"x": 1}}) == {"moveCount": 1, "turn": carol_id}
    state = alice.wait("game:state", moved, where=lambda s: s["state"]["moveCount"] == 1)
    assert state["state"]["players"] == [alice_id, carol_id]
    time.sleep(SETTLE)
    assert received(bob, "game:state", moved) == []
    # What a fresh attempt gets: not a player, not in the room.
    refused(bob.emit("game:join", {"gameId": game}), "FORBIDDEN")
    refused(bob.emit("game:move", {"gameId": game, "move": {"x": 2}}), "NOT_IN_ROOM")
    assert bob.sid not in room_members(cluster, room)[0]
    # The new player is admitted and plays; bob still hears nothing of the game.
    carol = clients.connect(users["carol"], cluster.b)
    assert carol.call("game:join", {"gameId": game})["turn"] == carol_id
    assert carol.call("game:move", {"gameId": game, "move": {"x": 3}}) == {"moveCount": 2, "turn": alice_id}
    alice.wait("game:state", moved, where=lambda s: s["state"]["moveCount"] == 2)
    time.sleep(SETTLE)
    assert received(bob, "game:state", moved) == []
    assert bob.connected and bob.call("presence:check", {"userIds": [bob_id]})[0]["isOnline"] is True


def test_parked_player_removed_meanwhile_recovers_without_the_game(
    cluster: Cluster, clients: Clients, no_server_errors: None
) -> None:
    users = mint(cluster, "alice", "bob", "carol")
    alice_id, bob_id, carol_id = (users[name].id for name in ("alice", "bob", "carol"))
    game = new_id("g")
    room = f"game:{game}"
    chat_room = new_id("lobby")
    set_players(cluster.a, game, [alice_id, bob_id])
    alice = clients.connect(users["alice"], cluster.a)
    bob = clients.connect(users["bob"], cluster.b)
    alice.call("game:join", {"gameId": game})
    bob.call("game:join", {"gameId": game})
    alice.call("chat:join", {"roomId": chat_room})
    bob.call("chat:join", {"roomId": chat_room})

    # Bob's transport drops: server B parks his socket (still in its rooms) and keeps his recovery record.
    dropped = clients.nodes.mark()
    clients.nodes.close_transport(bob.id)
    wait_until(lambda: cluster.redis.hget(cluster.key(f"socket:{bob.sid}"), "parked") == "1", 5, "bob parked")
    assert bob.sid in room_members(cluster, room)[0]

    # Meanwhile bob stops being a player, and the game goes on; the chat room goes on too.
    set_players(cluster.a, game, [alice_id, carol_id])
    assert alice.call("game:move", {"gameId": game, "move": {"x": 1}}) == {"moveCount": 1, "turn": carol_id}
    alice.wait("game:state", dropped, where=lambda s: s["state"]["moveCount"] == 1)
    missed = alice.call("chat:message", {"roomId": chat_room, "content": "while you were away"})["id"]

    back_mark = clients.nodes.mark()
    clients.nodes.reconnect(bob.id)
    back = clients.nodes.wait_for(
        lambda m: m.get("id") == bob.id and m.get("type") in ("connect", "connect_error"), 10, back_mark
    )
    assert back["type"] == "connect" and back["recovered"] is True, back
    assert back["sid"] == bob.sid
    # Recovered with his other rooms: the chat message he missed is replayed.
    bob.wait("chat:new_message", back_mark, where=lambda p: p["id"] == missed)
    # But not in the game: told so, nothing of it replayed, and out of the room index.
    assert bob.wait("room:removed", back_mark) == {"room": room, "reason": "forbidden"}
    assert bob.sid not in room_members(cluster, room)[0]
    assert room_members(cluster, room)[1] == {alice_id}

    # Nothing of the game live either: carol plays, alice sees it, bob does not.
    carol = clients.connect(users["carol"], cluster.a)
    carol.call("game:join", {"gameId": game})
    assert carol.call("game:move", {"gameId": game, "move": {"x": 2}}) == {"moveCount": 2, "turn": alice_id}
    alice.wait("game:state", dropped, where=lambda s: s["state"]["moveCount"] == 2)
    time.sleep(SETTLE)
    assert received(bob, "game:state", dropped) == []
    refused(bob.emit("game:move", {"gameId": game, "move": {"x": 3}}), "NOT_IN_ROOM")
    refused(bob.emit("game:join", {"gameId": game}), "FORBIDDEN")
    # The chat room still works both ways for him.
    mark = clients.nodes.mark()
    reply = bob.call("chat:message", {"roomId": chat_room, "content": "back"})["id"]
    alice.wait("chat:new_message", mark, where=lambda p: p["id"] == reply)
