"""Room events that belong to no single feature: a socket taken out of a room its hook no longer allows."""
from __future__ import annotations

from realtime.schemas.rooms import RoomRemovedOutSchema
from realtime.sockets.blueprint import SocketBlueprint

rooms = SocketBlueprint("rooms")
rooms.emits(
    "room:removed",
    RoomRemovedOutSchema,
    "This socket was taken out of a room because the room's hook no longer admits its user (a player "
    "replaced through POST /api/v1/games/{id}/players, an app revoking a membership): at once on every "
    "worker, or when a parked socket recovers without that room. Nothing of the room arrives after it; "
    "joining again answers FORBIDDEN while the hook refuses.",
    to="the removed socket",
    examples=[{"room": "game:g7", "reason": "forbidden"}],
)
