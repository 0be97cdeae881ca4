"""Joining and leaving rooms: the per-socket cap, the hooks' verdicts, the local router and the cluster-wide
index, and re-checks when a hook's answer may have changed (naming and hooks: :mod:`.room_rules`)."""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from realtime.errors import ErrorCode, RealtimeError
from realtime.services.room_rules import PREFIXES, FunctionHook, RoomAuthHook, split_room
from realtime.stores.control_bus import ControlBus
from realtime.stores.room_index import RoomCount, RoomStore

logger = logging.getLogger(__name__)

#: The control-bus command that makes every worker re-ask a room's hook for its sockets there.
REVALIDATE_ROOM = "revalidate_room"


@dataclass(frozen=True)
class Membership:
    """The outcome of a join or leave: whether the socket moved, whether it was the user's first (join) or
    last (leave) socket there, and the room's cluster-wide size in sockets and distinct users."""

    changed: bool
    user_changed: bool
    sockets: int
    users: int

    @classmethod
    def of(cls, changed: bool, count: RoomCount) -> Membership:
        """Build from a store count."""
        return cls(changed=changed, user_changed=changed and count.user_changed, sockets=count.sockets, users=count.users)


class RoomRouter(Protocol):
    """The local Socket.IO manager: where emits are actually routed."""

    def enter(self, sid: str, room: str) -> None:
        """Put ``sid`` in ``room``."""

    def leave(self, sid: str, room: str) -> None:
        """Take ``sid`` out of ``room``."""

    def rooms(self, sid: str) -> set[str]:
        """The named rooms ``sid`` is in (not its private sid room)."""

    def is_in(self, sid: str, room: str) -> bool:
        """Whether ``sid`` is in ``room`` on this worker."""

    def members(self, room: str) -> list[str]:
        """The sids of this worker in ``room``."""


class RoomManager:
    """Joins and leaves rooms under the naming convention, the hooks and the cap.

    ``user:{id}`` rooms are private by rule: no hook can let a user into another user's room.
    Prefixes without a hook are closed. Hooks are asked at join time, again on every worker when
    :meth:`revalidate_room` says a hook's answer may have changed, and when a parked socket recovers.
    """

    def __init__(
        self,
        router: RoomRouter,
        store: RoomStore,
        default_rooms: Sequence[str],
        max_rooms_per_socket: int,
        bus: ControlBus,
    ) -> None:
        self._router = router
        self._store = store
        self._bus = bus
        self._default_rooms = tuple(default_rooms)
        self._max_rooms = max_rooms_per_socket
        self._hooks: dict[str, RoomAuthHook] = {}

    def register_auth_hook(self, prefix: str, hook: RoomAuthHook | Callable[[str, str], bool]) -> None:
        """Let ``hook`` decide joins for ``prefix`` (``"game:"`` or ``"game"``); replaces an earlier hook."""
        name = prefix.rstrip(":")
        if name not in PREFIXES:
            raise ValueError(f"Unknown room prefix {prefix!r}; use one of {', '.join(p + ':' for p in PREFIXES)}.")
        if name == "user":
            raise ValueError("user: rooms are private by rule and take no hook.")
        self._hooks[name] = hook if hasattr(hook, "can_join") else FunctionHook(hook)  # type: ignore[arg-type]

    def can_join(self, user_id: str, room: str) -> bool:
        """Whether ``user_id`` may join ``room`` (malformed names are refused, not raised)."""
        try:
            prefix, ident = split_room(room)
        except RealtimeError:
            return False
        return self._allowed(user_id, room, prefix, ident)

    def revalidate_room(self, room: str) -> None:
        """Make every socket whose user the room's hook now refuses leave ``room``, on every worker.

        Call this when your hook's answer may have changed (a membership removed). It publishes one command
        on the control bus (one Redis round trip); each worker re-asks the hook for its own sockets in the
        room, and the refused ones leave it as by a leave (the others hear it where the feature announces
        leaves) and get ``room:removed``. Recovery re-asks by itself.

        :raises ValueError: for a name outside the naming convention or a ``user:`` room (no hook decides it).
        """
        try:
            prefix, _ = split_room(room)
        except RealtimeError as err:
            raise ValueError(f"Cannot revalidate {room!r}: {err.message}") from None
        if prefix == "user":
            raise ValueError(f"{room!r} is a private user room: no hook decides it, so there is nothing to revalidate.")
        self._bus.publish({"op": REVALIDATE_ROOM, "room": room})

    def local_members(self, room: str) -> list[str]:
        """The sockets of this worker in ``room``."""
        return self._router.members(room)

    def refused(self, user_id: str, rooms: Sequence[str]) -> list[str]:
        """The rooms of ``rooms`` whose hook now refuses ``user_id``, asking each hook again.

        The default rooms are never refused: operator configuration put the socket there, not a hook.
        """
        defaults = set(self.default_rooms_for(user_id))
        by_prefix: dict[str, list[str]] = {}
        refused: set[str] = set()
        for room in rooms:
            if room in defaults:
                continue
            try:
                prefix, _ = split_room(room)
            except RealtimeError:
                refused.add(room)
                continue
            by_prefix.setdefault(prefix, []).append(room)
        for prefix, named in by_prefix.items():
            refused.update(set(named) - self._allowed_among(user_id, prefix, named))
        return [room for room in rooms if room in refused]

    def _allowed_among(self, user_id: str, prefix: str, rooms: list[str]) -> set[str]:
        """The rooms of one prefix the hook allows: one call when it offers ``allowed_among``."""
        hook = self._hooks.get(prefix)
        batch = getattr(hook, "allowed_among", None)
        if prefix == "user" or hook is None or batch is None or len(rooms) == 1:
            return {room for room in rooms if self._allowed(user_id, room, prefix, room.partition(":")[2])}
        try:
            return set(batch(user_id, rooms)) & set(rooms)
        except Exception:
            logger.exception("room auth hook failed; denying", extra={"room_prefix": prefix})
            return set()

    def _allowed(self, user_id: str, room: str, prefix: str, ident: str) -> bool:
        if prefix == "user":
            return ident == user_id
        hook = self._hooks.get(prefix)
        if hook is None:
            return False
        try:
            return bool(hook.can_join(user_id, room))
        except Exception:
            logger.exception("room auth hook failed; denying", extra={"room_prefix": prefix})
            return False

    def join(self, sid: str, user_id: str, room: str) -> Membership:
        """Put the socket in ``room`` (one Redis round trip).

        :raises RealtimeError: ``FORBIDDEN`` or ``ROOM_LIMIT``.
        """
        joined = self.join_many(sid, user_id, [room])
        return Membership.of(True, joined[0][1]) if joined else Membership.of(False, self._store.count(room))

    def join_many(self, sid: str, user_id: str, rooms: Sequence[str]) -> list[tuple[str, RoomCount]]:
        """Put the socket in every room it may join, all or nothing; return ``(room, count)`` for new ones.

        :raises RealtimeError: ``FORBIDDEN`` for the first refused room, ``ROOM_LIMIT`` past the cap.
        """
        for room in rooms:
            prefix, ident = split_room(room)
            if not self._allowed(user_id, room, prefix, ident):
                raise RealtimeError(ErrorCode.FORBIDDEN, f"Not allowed to join {room!r}.")
        current = self._router.rooms(sid)
        new = [room for room in dict.fromkeys(rooms) if room not in current]
        if not new:
            return []
        if len(current) + len(new) > self._max_rooms:
            raise RealtimeError(
                ErrorCode.ROOM_LIMIT,
                f"A socket may be in at most {self._max_rooms} rooms (it is in {len(current)}); leave some first.",
            )
        # Index first: if Redis fails, the socket is not in the room anywhere (no drift to repair).
        counts = self._store.add(sid, user_id, new)
        for room in new:
            self._router.enter(sid, room)
        return list(zip(new, counts, strict=True))

    def default_rooms_for(self, user_id: str) -> list[str]:
        """The configured default rooms with ``{userId}`` substituted (trusted operator config)."""
        return [template.replace("{userId}", user_id) for template in self._default_rooms]

    def enter_local(self, sid: str, rooms: Sequence[str]) -> None:
        """Put the socket in ``rooms`` on this worker only (the index is written by the caller)."""
        for room in rooms:
            self._router.enter(sid, room)

    def leave(self, sid: str, user_id: str, room: str) -> Membership:
        """Take the socket out of ``room`` (one Redis round trip when it was there)."""
        left = self.leave_many(sid, user_id, [room])
        return Membership.of(True, left[0][1]) if left else Membership.of(False, self._store.count(room))

    def leave_many(self, sid: str, user_id: str, rooms: Sequence[str]) -> list[tuple[str, RoomCount]]:
        """Take the socket out of the rooms it is in; return ``(room, count)`` for each one left."""
        current = self._router.rooms(sid)
        gone = [room for room in dict.fromkeys(rooms) if room in current]
        if not gone:
            return []
        counts = self._store.remove(sid, user_id, gone)
        for room in gone:
            self._router.leave(sid, room)
        return list(zip(gone, counts, strict=True))

    def unindex(self, sid: str, user_id: str, rooms: Sequence[str]) -> None:
        """Drop index entries of rooms the socket already left locally (heartbeat repair, no announcements)."""
        self._store.remove(sid, user_id, rooms)

    def evict(self, sid: str, user_id: str, room: str) -> RoomCount:
        """Take a socket that :meth:`local_members` listed out of ``room``: index first, then this worker's
        router (one Redis round trip; no scan of the socket's rooms)."""
        (count,) = self._store.remove(sid, user_id, [room])
        self._router.leave(sid, room)
        return count

    def forget(self, sid: str, user_id: str, rooms: Sequence[str]) -> list[tuple[str, RoomCount]]:
        """Drop index entries of rooms the socket is not in on this worker (a parked socket that comes back
        without them); return ``(room, count)`` for each, to announce as leaves (one Redis round trip)."""
        if not rooms:
            return []
        return list(zip(rooms, self._store.remove(sid, user_id, rooms), strict=True))

    def is_member(self, sid: str, room: str) -> bool:
        """Whether the socket is in ``room`` (local: a socket lives on one worker); O(1)."""
        return self._router.is_in(sid, room)

    def rooms_of(self, sid: str) -> set[str]:
        """The named rooms the socket is in."""
        return self._router.rooms(sid)

    def count(self, room: str) -> RoomCount:
        """Sockets and distinct users in ``room`` across the cluster."""
        return self._store.count(room)
