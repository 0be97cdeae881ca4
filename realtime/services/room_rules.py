"""Room names and who may enter: the naming convention (``prefix:id``) and the authorization hooks."""
from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from realtime.errors import ErrorCode, RealtimeError
from realtime.identifiers import is_identifier

PREFIXES = ("user", "group", "game", "party", "broadcast", "presence")
#: Open to every authenticated user unless an app registers its own hook: chat groups, party live feeds,
#: broadcast topics and presence subscriptions. ``user:`` is private by rule; ``game:`` is for its players.
OPEN_BY_DEFAULT = ("group", "party", "broadcast", "presence")
MAX_ROOM_NAME = 80


def split_room(room: object) -> tuple[str, str]:
    """Split ``prefix:id``; refuse anything outside the naming convention.

    :raises RealtimeError: ``FORBIDDEN`` for unknown prefixes and malformed ids.
    """
    if not isinstance(room, str) or len(room) > MAX_ROOM_NAME:
        raise RealtimeError(ErrorCode.FORBIDDEN, "Room names are strings of at most 80 characters.")
    prefix, sep, ident = room.partition(":")
    if not sep or prefix not in PREFIXES:
        raise RealtimeError(
            ErrorCode.FORBIDDEN, f"Unknown room prefix in {room!r}; rooms are {', '.join(p + ':{id}' for p in PREFIXES)}."
        )
    if not is_identifier(ident):
        raise RealtimeError(ErrorCode.FORBIDDEN, f"Malformed room id in {room!r}; ids are 1-64 of A-Z a-z 0-9 _ -.")
    return prefix, ident


class RoomAuthHook(Protocol):
    """Decides whether a user may join a room of one prefix.

    A hook may also offer ``allowed_among(user_id, rooms) -> Collection[str]`` (the rooms of ``rooms`` it
    allows): re-checks of several rooms (a recovering socket's) then ask it once instead of once per room.
    """

    def can_join(self, user_id: str, room: str) -> bool:
        """True to allow."""


class AllowAll:
    """A hook for open rooms (public topics)."""

    def can_join(self, user_id: str, room: str) -> bool:
        return True


class FunctionHook:
    """Adapts a plain ``f(user_id, room) -> bool`` to :class:`RoomAuthHook`."""

    def __init__(self, func: Callable[[str, str], bool]) -> None:
        self._func = func

    def can_join(self, user_id: str, room: str) -> bool:
        return self._func(user_id, room)
