"""The local Socket.IO rooms of this worker, answered in time independent of the number of sockets and rooms."""
from __future__ import annotations

from typing import Any

#: The per-sid room index is swept of gone sockets no more often than every this many new sockets.
SWEEP_MIN = 1024


class SocketIORouter:
    """:class:`RoomRouter` over Flask-SocketIO's server, on the default namespace.

    python-socketio keeps rooms as ``rooms[namespace][room][sid]`` and answers "which rooms is this sid in"
    by scanning every room of the namespace, one ``user:`` room per connected user: per-event cost would grow
    with the number of users. This router answers membership with one dict look-up and a socket's rooms from
    its own per-sid index of the rooms it entered, each checked against python-socketio's rooms (the single
    truth: a disconnect empties them without telling us). Entries of sockets that are gone are swept once
    the index has doubled since the last sweep, so its size stays within twice the live sockets.
    """

    def __init__(self, socketio: object, namespace: str = "/") -> None:
        self._socketio = socketio
        self._namespace = namespace
        self._entered: dict[str, set[str]] = {}
        self._sweep_at = SWEEP_MIN

    def _rooms_of_namespace(self) -> dict[object, Any]:
        manager = self._socketio.server.manager  # type: ignore[attr-defined]
        return manager.rooms.get(self._namespace, {})  # type: ignore[no-any-return]

    def enter(self, sid: str, room: str) -> None:
        self._socketio.server.enter_room(sid, room, namespace=self._namespace)  # type: ignore[attr-defined]
        entered = self._entered.get(sid)
        if entered is None:
            if len(self._entered) >= self._sweep_at:
                self._sweep()
            entered = self._entered[sid] = set()
        entered.add(room)

    def leave(self, sid: str, room: str) -> None:
        self._socketio.server.leave_room(sid, room, namespace=self._namespace)  # type: ignore[attr-defined]
        entered = self._entered.get(sid)
        if entered is not None:
            entered.discard(room)

    def is_in(self, sid: str, room: str) -> bool:
        return room != sid and sid in self._rooms_of_namespace().get(room, ())

    def rooms(self, sid: str) -> set[str]:
        entered = self._entered.get(sid)
        if not entered:
            return set()
        rooms = self._rooms_of_namespace()
        current = {room for room in entered if sid in rooms.get(room, ())}
        if len(current) != len(entered):
            entered.intersection_update(current)
        return current

    def members(self, room: str) -> list[str]:
        return list(self._rooms_of_namespace().get(room, ()))

    def _sweep(self) -> None:
        """Drop the index entries of sockets python-socketio no longer knows (disconnected)."""
        connected = self._rooms_of_namespace().get(None, {})
        for sid in [sid for sid in self._entered if sid not in connected]:
            del self._entered[sid]
        self._sweep_at = max(SWEEP_MIN, 2 * len(self._entered))
