"""What registering and releasing a socket report (:mod:`realtime.stores.socket_state`), and its refusals."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from realtime.errors import ErrorCode, RealtimeError
from realtime.stores.recovery_packets import ReplayPacket
from realtime.stores.room_index import RoomCount
from realtime.stores.sessions import SessionCheck


@dataclass(frozen=True)
class SessionQuery:
    """Check the socket's session as it registers (same round trip): it must name the user; ``profile``:
    read the user's profile hash too (the profile cache missed)."""

    profile: bool


@dataclass(frozen=True)
class ConnectInfo:
    """What registering a socket found out (``missed``: packets logged after the replay point).

    ``counted``: sockets, cluster-wide, in each room the connect hooks broadcast to (parked ones included);
    ``session``: the answer to the :class:`SessionQuery` (always valid: a refused session raises).
    """

    first_socket: bool
    unread_count: int
    evicted_sessions: list[str]
    missed: list[ReplayPacket] = field(default_factory=list)
    room_counts: dict[str, RoomCount] = field(default_factory=dict)
    counted: dict[str, int] = field(default_factory=dict)
    session: SessionCheck | None = None


def too_many_connections(limit: int) -> RealtimeError:
    """The refusal when a user already has ``limit`` live sockets."""
    return RealtimeError(
        ErrorCode.TOO_MANY_CONNECTIONS, f"This user already has {limit} live connections; close one first."
    )


@dataclass(frozen=True)
class ReleaseInfo:
    """What releasing a socket (disconnect or reaped) changed."""

    sid: str
    user_id: str
    last_socket: bool
    last_seen: str
    room_counts: dict[str, RoomCount] = field(default_factory=dict)
    #: Sockets, cluster-wide, left in each counted room (``SocketBlueprint.counts_room``) of the user.
    counted: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class LocalSocket:
    """A socket of this worker, as the heartbeat refreshes it."""

    sid: str
    user_id: str
    session_id: str
    rooms: Sequence[str]
