"""The per-app service container, kept in ``app.extensions["realtime"]``.

It sits below the socket layer and the background work, which both read it: what it needs of them (the event
catalog, the lifecycle) it names as Protocols here, and the factory plugs the real objects in.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis
from flask import current_app

from realtime.auth.handshake import Authenticator
from realtime.auth.tokens import TokenService
from realtime.config import Settings
from realtime.fanout.broadcaster import Broadcaster, Outgoing
from realtime.services.join_coalescer import JoinCoalescer
from realtime.services.local_sockets import ConnectionRegistry
from realtime.services.offline_jobs import OfflineJobWorker
from realtime.services.room_manager import RoomManager
from realtime.stores.chat import ChatStore
from realtime.stores.control_bus import ControlBus
from realtime.stores.games import GameStore
from realtime.stores.notifications import NotificationStore
from realtime.stores.presence import PresenceStore
from realtime.stores.rate_limit import RateLimiter, Throttle
from realtime.stores.recovery import RecoveryStore
from realtime.stores.redis.keys import Keys
from realtime.stores.redis.scripts import ScriptSet
from realtime.stores.sessions import SessionStore
from realtime.stores.socket_records import ReleaseInfo
from realtime.stores.socket_state import SocketState

#: ``hook(user_ids, notification)``: personal notifications for users with no live socket (a push service).
PushHook = Callable[[list[str], dict[str, Any]], None]


class Catalog(Protocol):
    """What the services use of the event catalog (:class:`realtime.sockets.catalog.EventCatalog`)."""

    @property
    def connect_hooks(self) -> Sequence[Callable[..., list[Outgoing]]]:
        """The features' hooks run when a socket connects: ``hook(ctx, info)`` → events to broadcast."""

    @property
    def counted_rooms(self) -> Sequence[str]:
        """Room templates (``{userId}``) the connect and release hooks broadcast to: registering and
        releasing a socket count their sockets."""

    @property
    def release_hooks(self) -> Sequence[Callable[[ReleaseInfo, Services], list[Outgoing]]]:
        """The features' hooks run for a socket that is gone: ``hook(info, services)`` → events to broadcast."""

    def shape(self, event: str, data: Any) -> Any:
        """``data`` shaped by ``event``'s declared schema."""

    def schema_of(self, event: str) -> Any:
        """The declared schema of server event ``event`` (None for an undeclared one)."""

    def validate_publish(self, event: str, data: Any) -> Any:
        """An externally published payload, validated and shaped."""


class Background(Protocol):
    """What handlers, views and the server hooks use of this worker's background work
    (:class:`realtime.cluster.lifecycle.Lifecycle`)."""

    probe_results: dict[str, bool | None]

    def ensure_started(self) -> None:
        """Start the background work once (idempotent)."""

    def stop(self) -> None:
        """Stop the background work."""

    def drain(self, timeout: float, listeners_closed: Callable[[], bool] | None = None) -> int:
        """Hand every local socket over before shutdown; return how many were closed."""

    def drained(self, sid: str) -> bool:
        """Whether ``sid`` was handed over by :meth:`drain`."""

    def revoke(self, session_id: str) -> bool:
        """Revoke a session and log out its sockets on every worker; return whether it was known."""

    def recheck_recovered(self, sid: str, user_id: str, rooms: list[str]) -> list[str]:
        """The rooms a recovering socket may re-enter."""


@dataclass
class Services:
    """Everything handlers need, built once by the app factory."""

    settings: Settings
    redis: redis.Redis | None
    queue: redis.Redis | None
    scripts: ScriptSet | None
    keys: Keys
    tokens: TokenService
    sessions: SessionStore
    authenticator: Authenticator
    rooms: RoomManager
    limiter: RateLimiter
    typing: Throttle
    connections: ConnectionRegistry
    state: SocketState
    presence: PresenceStore
    bus: ControlBus
    catalog: Catalog
    broadcaster: Broadcaster
    chat: ChatStore
    notifications: NotificationStore
    games: GameStore
    recovery: RecoveryStore | None = None
    push_hooks: list[PushHook] = field(default_factory=list)
    lifecycle: Background | None = None
    #: Consumes the offline-member jobs of chat messages (started with the lifecycle).
    offline_jobs: OfflineJobWorker | None = None
    #: Holds the chat membership announcements of busy rooms for one window (join storms).
    joins: JoinCoalescer | None = None
    #: Set on SIGTERM: every disconnect then keeps a recovery record.
    draining: bool = False

    def register_push_hook(self, hook: PushHook) -> None:
        """Receive offline users' notifications (chat messages, API notifications) for a push service."""
        self.push_hooks.append(hook)

    def release_events(self, infos: list[ReleaseInfo]) -> list[Outgoing]:
        """Events the features broadcast for sockets that are gone: each release hook, for each socket, less
        those to a room counted empty as the socket was released (nobody would receive them)."""
        return [
            message
            for info in infos
            for hook in self.catalog.release_hooks
            for message in hook(info, self)
            if info.counted.get(message.to, 1) > 0
        ]


def current_services() -> Services:
    """The services of the app handling the current request or event."""
    return current_app.extensions["realtime"]
