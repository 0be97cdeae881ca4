"""Turn-based games: registered players, a move log and whose turn it is."""
from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol

import redis

from realtime.errors import ErrorCode, RealtimeError
from realtime.stores.redis.keys import Keys
from realtime.stores.redis.scripts import ScriptSet

KEEP_MOVES = 50


def turn_of(state: dict[str, Any]) -> str:
    """The player to move next (round-robin over ``players``)."""
    players = state["players"]
    return str(players[state["moveCount"] % len(players)])


class GameStore(Protocol):
    """Games by id."""

    def set_players(self, game_id: str, players: Sequence[str]) -> dict[str, Any]:
        """Create the game or replace its players; return its state."""

    def is_player(self, game_id: str, user_id: str) -> bool:
        """Whether ``user_id`` plays in ``game_id``."""

    def playing_in(self, game_ids: Sequence[str], user_id: str) -> set[str]:
        """The games of ``game_ids`` in which ``user_id`` plays (one round trip)."""

    def state(self, game_id: str) -> dict[str, Any] | None:
        """The game's state, or None when it does not exist."""

    def move(self, game_id: str, user_id: str, move: dict[str, Any], at: str) -> dict[str, Any]:
        """Apply a move.

        :raises RealtimeError: ``NOT_FOUND``, ``FORBIDDEN`` (not a player) or ``NOT_YOUR_TURN``.
        """


class MemoryGameStore:
    """The embedded default."""

    def __init__(self) -> None:
        self._games: dict[str, dict[str, Any]] = {}

    def set_players(self, game_id: str, players: Sequence[str]) -> dict[str, Any]:
        game = self._games.setdefault(game_id, {"players": [], "moveCount": 0, "moves": []})
        game["players"] = list(players)
        return self.state(game_id) or game

    def is_player(self, game_id: str, user_id: str) -> bool:
        game = self._games.get(game_id)
        return game is not None and user_id in game["players"]

    def playing_in(self, game_ids: Sequence[str], user_id: str) -> set[str]:
        return {game_id for game_id in game_ids if self.is_player(game_id, user_id)}

    def state(self, game_id: str) -> dict[str, Any] | None:
        game = self._games.get(game_id)
        return None if game is None else json.loads(json.dumps(game))

    def move(self, game_id: str, user_id: str, move: dict[str, Any], at: str) -> dict[str, Any]:
        game = self._games.get(game_id)
        if game is None:
            raise _error("NOT_FOUND")
        if user_id not in game["players"]:
            raise _error("FORBIDDEN")
        if turn_of(game) != user_id:
            raise _error("NOT_YOUR_TURN")
        game["moves"] = [*game["moves"], {"n": game["moveCount"] + 1, "by": user_id, "move": move, "at": at}][-KEEP_MOVES:]
        game["moveCount"] += 1
        return self.state(game_id) or game


class RedisGameStore:
    """A hash per game (``players`` as JSON, ``moveCount``) and a capped list of move records (JSON text);
    moves are applied by a Lua script."""

    def __init__(self, client: redis.Redis, keys: Keys, scripts: ScriptSet) -> None:
        self._redis = client
        self._keys = keys
        self._move = scripts.load("game_move")

    def set_players(self, game_id: str, players: Sequence[str]) -> dict[str, Any]:
        key = self._keys.game(game_id)
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(key, "players", json.dumps(list(players)))
        pipe.hsetnx(key, "moveCount", 0)
        pipe.hgetall(key)
        pipe.lrange(self._keys.game_moves(game_id), 0, -1)
        *_, raw, moves = pipe.execute()
        return self._decode(raw, moves) or {}

    def is_player(self, game_id: str, user_id: str) -> bool:
        raw = self._redis.hget(self._keys.game(game_id), "players")
        return raw is not None and user_id in json.loads(raw)

    def playing_in(self, game_ids: Sequence[str], user_id: str) -> set[str]:
        if not game_ids:
            return set()
        pipe = self._redis.pipeline(transaction=False)
        for game_id in game_ids:
            pipe.hget(self._keys.game(game_id), "players")
        replies = pipe.execute()
        return {game_id for game_id, raw in zip(game_ids, replies, strict=True) if raw and user_id in json.loads(raw)}

    def state(self, game_id: str) -> dict[str, Any] | None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.hgetall(self._keys.game(game_id))
        pipe.lrange(self._keys.game_moves(game_id), 0, -1)
        raw, moves = pipe.execute()
        return self._decode(raw, moves)

    def move(self, game_id: str, user_id: str, move: dict[str, Any], at: str) -> dict[str, Any]:
        reply = self._move(
            keys=[self._keys.game(game_id), self._keys.game_moves(game_id)], args=[user_id, json.dumps(move), at, KEEP_MOVES]
        )
        if reply[0] != "ok":
            raise _error(reply[1])
        _, players, count, moves = reply
        return {"players": json.loads(players), "moveCount": int(count), "moves": [json.loads(m) for m in moves]}

    @staticmethod
    def _decode(raw: dict[str, str], moves: list[str]) -> dict[str, Any] | None:
        if not raw or "players" not in raw:
            return None
        return {
            "players": json.loads(raw["players"]),
            "moveCount": int(raw.get("moveCount", 0)),
            "moves": [json.loads(m) for m in moves],
        }


_MESSAGES = {
    "NOT_FOUND": "No such game; players are registered through the server API first.",
    "FORBIDDEN": "You are not a player in this game.",
    "NOT_YOUR_TURN": "It is not your turn.",
}


def _error(code: str) -> RealtimeError:
    return RealtimeError(ErrorCode(code), _MESSAGES[code])
