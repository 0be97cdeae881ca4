"""Games: registered players join ``game:{gameId}`` and make moves in turn; the room sees the state."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from realtime.errors import ErrorCode, RealtimeError
from realtime.schemas.game import GameMoveAckSchema, GameMoveInSchema, GameRefSchema, GameStateOutSchema
from realtime.sockets.blueprint import EventContext, SocketBlueprint
from realtime.stores.games import turn_of

game = SocketBlueprint("game")
game.emits(
    "game:state",
    GameStateOutSchema,
    "The game's state and whose turn it is: to the room after each move or player change, and to a player "
    "who joins. A player removed by a player change leaves the room on every worker (room:removed) and gets "
    "no game:state of it after that.",
    to="game:{gameId}",
    examples=[
        {
            "gameId": "g7",
            "state": {
                "players": ["alice", "bob"],
                "moveCount": 1,
                "moves": [{"n": 1, "by": "alice", "move": {"x": 1, "y": 2}, "at": "2026-01-01T12:00:00.000Z"}],
            },
            "turn": "bob",
        }
    ],
)


def game_room(game_id: str) -> str:
    """The Socket.IO room of a game."""
    return f"game:{game_id}"


@game.event(
    "game:join",
    "Join a game as one of its registered players (the game: hook; players come from POST "
    "/api/v1/games/{id}/players). The ack and a game:state carry the current state.",
    payload=GameRefSchema,
    ack=GameStateOutSchema,
    emits=["game:state"],
    examples=[{"gameId": "g7"}],
    errors=[ErrorCode.VALIDATION_ERROR, ErrorCode.NOT_FOUND, ErrorCode.FORBIDDEN, ErrorCode.RATE_LIMITED],
)
def join(ctx: EventContext, data: dict[str, Any]) -> dict[str, Any]:
    """Join as a registered player (the ``game:`` hook); ack and a ``game:state`` carry the current state."""
    game_id = data["gameId"]
    state = ctx.services.games.state(game_id)
    if state is None:
        raise RealtimeError(ErrorCode.NOT_FOUND, f"No game {game_id!r}; players are registered through the API.")
    ctx.services.rooms.join(ctx.sid, ctx.user_id, game_room(game_id))
    snapshot = {"gameId": game_id, "state": state, "turn": turn_of(state)}
    ctx.services.broadcaster.emit_local(ctx.sid, "game:state", snapshot)
    return snapshot


@game.event(
    "game:move",
    "Make a move when it is your turn; the room gets game:state. A move is a flat object of up to 16 keys "
    "whose values are finite numbers, booleans or short strings.",
    payload=GameMoveInSchema,
    ack=GameMoveAckSchema,
    emits=["game:state"],
    room_required=True,
    examples=[{"gameId": "g7", "move": {"x": 1, "y": 2}}],
    errors=[
        ErrorCode.VALIDATION_ERROR,
        ErrorCode.NOT_IN_ROOM,
        ErrorCode.NOT_FOUND,
        ErrorCode.FORBIDDEN,
        ErrorCode.NOT_YOUR_TURN,
        ErrorCode.RATE_LIMITED,
    ],
)
def move(ctx: EventContext, data: dict[str, Any]) -> dict[str, Any]:
    """Apply a move by the player whose turn it is; the room gets ``game:state``."""
    game_id = data["gameId"]
    if not ctx.services.rooms.is_member(ctx.sid, game_room(game_id)):
        raise RealtimeError(ErrorCode.NOT_IN_ROOM, f"Join game {game_id!r} first.")
    at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    state = ctx.services.games.move(game_id, ctx.user_id, data["move"], at)
    snapshot = {"gameId": game_id, "state": state, "turn": turn_of(state)}
    ctx.services.broadcaster.emit("game:state", snapshot, to=game_room(game_id))
    return {"moveCount": state["moveCount"], "turn": snapshot["turn"]}
