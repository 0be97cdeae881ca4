"""The sockets connected to this process and who is behind each (Socket.IO's ``socket.data``)."""
from __future__ import annotations

from realtime.auth.handshake import Identity
from realtime.errors import ErrorCode, RealtimeError


class ConnectionRegistry:
    """Identity per local socket id; filled on connect, emptied on disconnect."""

    def __init__(self) -> None:
        self._by_sid: dict[str, Identity] = {}
        self._pids: dict[str, str] = {}
        self._sid_by_pid: dict[str, str] = {}

    def add(self, sid: str, identity: Identity, pid: str) -> None:
        """Remember who is behind ``sid`` and its recovery ``pid``."""
        self._by_sid[sid] = identity
        self._pids[sid] = pid
        self._sid_by_pid[pid] = sid

    def remove(self, sid: str) -> tuple[Identity, str] | None:
        """Forget ``sid``; return its identity and pid if it had them."""
        identity = self._by_sid.pop(sid, None)
        pid = self._pids.pop(sid, None)
        if pid is not None and self._sid_by_pid.get(pid) == sid:
            del self._sid_by_pid[pid]
        return (identity, pid or "") if identity is not None else None

    def sid_for_pid(self, pid: str) -> str | None:
        """The live local socket that holds recovery id ``pid``."""
        return self._sid_by_pid.get(pid)

    def get(self, sid: str) -> Identity:
        """The identity behind ``sid``.

        :raises RealtimeError: ``AUTH_REQUIRED`` when the socket never authenticated.
        """
        identity = self._by_sid.get(sid)
        if identity is None:
            raise RealtimeError(ErrorCode.AUTH_REQUIRED, "This socket is not authenticated.")
        return identity

    def find(self, sid: str) -> Identity | None:
        """The identity behind ``sid``, None when it is not connected here."""
        return self._by_sid.get(sid)

    def items(self) -> list[tuple[str, Identity]]:
        """A snapshot of (sid, identity) pairs."""
        return list(self._by_sid.items())

    def of_user(self, user_id: str) -> dict[str, Identity]:
        """The local sockets of ``user_id``, by sid."""
        return {sid: identity for sid, identity in self._by_sid.items() if identity.user_id == user_id}

    def __len__(self) -> int:
        return len(self._by_sid)
