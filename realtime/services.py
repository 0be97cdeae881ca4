"""The per-app service container, kept in ``app.extensions["realtime"]``."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis
from flask import current_app

from realtime.auth.handshake import Authenticator
from realtime.auth.sessions import SessionStore
from realtime.auth.tokens import TokenService
from realtime.config import Settings
from realtime.connections import ConnectionRegistry
from realtime.lua_scripts import ScriptSet
from realtime.rate_limit import RateLimiter, Throttle
from realtime.redis_keys import Keys
from realtime.rooms import RoomManager

if TYPE_CHECKING:
    from realtime.broadcaster import Broadcaster
    from realtime.chat_store import ChatStore
    from realtime.control_bus import ControlBus
    from realtime.game_store import GameStore
    from realtime.lifecycle import Lifecycle
    from realtime.notification_store import NotificationStore
    from realtime.recovery import RecoveryStore
    from realtime.socket_state import SocketState
    from realtime.sockets.catalog import EventCatalog

#: ``hook(user_ids, notification)``: personal notifications for users with no live socket (a push service).
PushHook = Callable[[list[str], dict[str, Any]], None]


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
    bus: ControlBus
    catalog: EventCatalog
    broadcaster: Broadcaster
    chat: ChatStore
    notifications: NotificationStore
    games: GameStore
    recovery: RecoveryStore | None = None
    push_hooks: list[PushHook] = field(default_factory=list)
    lifecycle: Lifecycle | None = None
    #: Set on SIGTERM: every disconnect then keeps a recovery record.
    draining: bool = False

    def register_push_hook(self, hook: PushHook) -> None:
        """Receive offline users' notifications (chat messages, API notifications) for a push service."""
        self.push_hooks.append(hook)


def current_services() -> Services:
    """The services of the app handling the current request or event."""
    return current_app.extensions["realtime"]
