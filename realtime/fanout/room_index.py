"""The rooms of each socket, kept beside python-socketio's sockets of each room.

python-socketio's ``BaseManager`` keeps only ``rooms[namespace][room] → {sid: eio_sid}``, so "which rooms is
this socket in" (``get_rooms``, and every ``basic_disconnect``) scans every room of the namespace, and there
is one room per connected socket (its sid room) plus one ``user:`` room per user: a disconnect storm of N
sockets cost N² look-ups. :class:`IndexedRooms` is one more layer of the manager chain that keeps the reverse
index in ``basic_enter_room`` / ``basic_leave_room`` and answers both from it, in the socket's own rooms.

The same manager keeps the sockets of each namespace that are connecting or disconnecting in lists
(``pending_connect``, ``pending_disconnect``), and asks ``sid in`` them for every event and removes from them
for every connect and disconnect: with thousands of handlers in flight (a connect storm, a mass disconnect),
that is quadratic too. :class:`PendingSids` keeps them in insertion-ordered dicts behind the same list
methods.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any


class SidSet:
    """The list operations python-socketio's manager uses on pending sids (``append``, ``remove``, ``in``,
    ``len``, iteration), each O(1)."""

    def __init__(self, sids: Iterable[str] = ()) -> None:
        self._sids: dict[str, None] = dict.fromkeys(sids)

    def append(self, sid: str) -> None:
        self._sids[sid] = None

    def remove(self, sid: str) -> None:
        del self._sids[sid]

    def __contains__(self, sid: object) -> bool:
        return sid in self._sids

    def __len__(self) -> int:
        return len(self._sids)

    def __iter__(self) -> Iterator[str]:
        return iter(self._sids)


class PendingSids(dict[str, Any]):
    """namespace -> :class:`SidSet`; the plain list python-socketio stores for a new namespace is turned
    into one."""

    def __init__(self, pending: dict[str, Iterable[str]] | None = None) -> None:
        super().__init__()
        for namespace, sids in (pending or {}).items():
            self[namespace] = sids

    def __setitem__(self, namespace: str, sids: Iterable[str]) -> None:
        super().__setitem__(namespace, sids if isinstance(sids, SidSet) else SidSet(sids))

    def setdefault(self, namespace: str, sids: Iterable[str] = ()) -> Any:
        if namespace not in self:
            self[namespace] = sids
        return self[namespace]


class IndexedRooms:
    """Manager layer: a per-socket index of rooms (mixed in before python-socketio's ``Manager``)."""

    rooms: dict[str, dict[Any, Any]]
    callbacks: dict[str, Any]
    pending_connect: dict[str, Any]
    pending_disconnect: dict[str, Any]

    def __init__(self) -> None:
        """Runs after python-socketio's manager ``__init__``, which made the pending maps."""
        #: (namespace, sid) -> the rooms it is in, its sid room and the namespace's ``None`` room included.
        self.rooms_of_sid: dict[tuple[str, str], set[Any]] = {}
        self.pending_connect = PendingSids(self.pending_connect)
        self.pending_disconnect = PendingSids(self.pending_disconnect)

    def basic_enter_room(self, sid: str, namespace: str, room: Any, eio_sid: str | None = None) -> None:
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)  # type: ignore[misc]
        self.rooms_of_sid.setdefault((namespace, sid), set()).add(room)

    def basic_leave_room(self, sid: str, namespace: str, room: Any) -> None:
        super().basic_leave_room(sid, namespace, room)  # type: ignore[misc]
        rooms = self.rooms_of_sid.get((namespace, sid))
        if rooms is not None:
            rooms.discard(room)
            if not rooms:
                del self.rooms_of_sid[(namespace, sid)]

    def get_rooms(self, sid: str, namespace: str) -> list[Any]:
        """The rooms ``sid`` is in (its sid room included, the ``None`` room not), as python-socketio's."""
        return [room for room in self.rooms_of_sid.get((namespace, sid), ()) if room is not None]

    def basic_disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        """python-socketio's ``basic_disconnect``, leaving the socket's own rooms instead of scanning all."""
        if namespace not in self.rooms:
            return
        for room in list(self.rooms_of_sid.get((namespace, sid), ())):
            self.basic_leave_room(sid, namespace, room)
        self.callbacks.pop(sid, None)
        for pending in (self.pending_connect, self.pending_disconnect):
            sids = pending.get(namespace)
            if sids is not None and sid in sids:
                sids.remove(sid)
                if not sids:
                    del pending[namespace]
