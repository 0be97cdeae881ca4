"""The local Socket.IO rooms of this worker, answered in time independent of the number of sockets and rooms."""
from __future__ import annotations

from typing import Any


class SocketIORouter:
    """:class:`RoomRouter` over Flask-SocketIO's server, on the default namespace.

    python-socketio keeps rooms as ``rooms[namespace][room][sid]`` and answers "which rooms is this sid in"
    by scanning every room of the namespace, one ``user:`` room per connected user: per-event cost would grow
    with the number of users. This router answers membership with one dict look-up, and a socket's rooms from
    the fan-out manager's per-socket index (:mod:`realtime.fanout.room_index`, kept where python-socketio's
    rooms change, disconnects included), so both cost the socket's own rooms.
    """

    def __init__(self, socketio: object, namespace: str = "/") -> None:
        self._socketio = socketio
        self._namespace = namespace

    def _manager(self) -> Any:
        return self._socketio.server.manager  # type: ignore[attr-defined]

    def _rooms_of_namespace(self) -> dict[object, Any]:
        return self._manager().rooms.get(self._namespace, {})  # type: ignore[no-any-return]

    def enter(self, sid: str, room: str) -> None:
        self._socketio.server.enter_room(sid, room, namespace=self._namespace)  # type: ignore[attr-defined]

    def leave(self, sid: str, room: str) -> None:
        self._socketio.server.leave_room(sid, room, namespace=self._namespace)  # type: ignore[attr-defined]

    def is_in(self, sid: str, room: str) -> bool:
        return room != sid and sid in self._rooms_of_namespace().get(room, ())

    def rooms(self, sid: str) -> set[str]:
        return {room for room in self._manager().get_rooms(sid, self._namespace) if room != sid}

    def members(self, room: str) -> list[str]:
        return list(self._rooms_of_namespace().get(room, ()))
