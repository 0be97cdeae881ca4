"""Games: registered players join ``game:{gameId}`` and make moves in turn; the room sees the state."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from realtime.errors import ErrorCode, RealtimeError
from realtime.game_store import turn_of
from realtime.schemas.game import GameMoveInSchema, GameRefSchema, GameStateOutSchema
from realtime.sockets.blueprint import EventContext, SocketBlueprint

game = SocketBlueprint("game")
game.emits(
    "game:state",
    GameStateOutSchema,
    "The game's state and whose turn it is: to the room after each move, and to a player who joins.",
)


def game_room(game_id: str) -> str:
    """The Socket.IO room of a game."""
    return f"game:{game_id}"


@game.on("game:join", GameRefSchema)
def join(ctx: EventContext, data: dict[str, Any]) -> dict[str, Any]:
    """Join as a registered player (the ``game:`` hook); ack and a ``game:state`` carry the current state."""
    game_id = data["gameId"]
    state = ctx.services.games.state(game_id)
    if state is None:
        raise RealtimeError(ErrorCode.NOT_FOUND, f"No game {game_id!r}; players are registered through the API.")
    ctx.services.rooms.join(ctx.sid, ctx.user_id, game_room(game_id))
    snapshot = {"gameId": game_id, "state": state, "turn": turn_of(state)}
    ctx.services.broadcaster.emit_local(ctx.sid, "game:state", snapshot)
    return ctx.services.catalog.shape("game:state", snapshot)


@game.on("game:move", GameMoveInSchema)
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
