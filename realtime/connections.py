"""The sockets connected to this process and who is behind each (Socket.IO's ``socket.data``)."""
from __future__ import annotations

from realtime.auth.handshake import Identity
from realtime.errors import ErrorCode, RealtimeError


class ConnectionRegistry:
    """Identity per local socket id; filled on connect, emptied on disconnect."""

    def __init__(self) -> None:
        self._by_sid: dict[str, Identity] = {}

    def add(self, sid: str, identity: Identity) -> None:
        """Remember who is behind ``sid``."""
        self._by_sid[sid] = identity

    def remove(self, sid: str) -> Identity | None:
        """Forget ``sid``; return its identity if it had one."""
        return self._by_sid.pop(sid, None)

    def get(self, sid: str) -> Identity:
        """The identity behind ``sid``.

        :raises RealtimeError: ``AUTH_REQUIRED`` when the socket never authenticated.
        """
        identity = self._by_sid.get(sid)
        if identity is None:
            raise RealtimeError(ErrorCode.AUTH_REQUIRED, "This socket is not authenticated.")
        return identity

    def items(self) -> list[tuple[str, Identity]]:
        """A snapshot of (sid, identity) pairs."""
        return list(self._by_sid.items())

    def of_user(self, user_id: str) -> dict[str, Identity]:
        """The local sockets of ``user_id``, by sid."""
        return {sid: identity for sid, identity in self._by_sid.items() if identity.user_id == user_id}

    def __len__(self) -> int:
        return len(self._by_sid)
