"""Choose the in-memory or Redis transport of every store and wire the services together."""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from realtime.auth.handshake import Authenticator
from realtime.auth.sessions import MemorySessionStore, ProfileCache, RedisSessionStore
from realtime.auth.tokens import TokenService
from realtime.broadcaster import Broadcaster
from realtime.chat_store import MemoryChatStore, RedisChatStore
from realtime.config import Settings
from realtime.connections import ConnectionRegistry
from realtime.control_bus import LocalControlBus, RedisControlBus
from realtime.fanout.manager import FanoutLayer, LocalFanout, RedisFanout
from realtime.game_store import MemoryGameStore, RedisGameStore
from realtime.lifecycle import Lifecycle
from realtime.lua_scripts import ScriptSet
from realtime.notification_store import MemoryNotificationStore, RedisNotificationStore
from realtime.rate_limit import RateLimiter, Throttle
from realtime.recovery import MemoryRecoveryStore, RedisRecoveryStore
from realtime.redis_client import connect_redis
from realtime.redis_keys import Keys
from realtime.room_store import MemoryRoomStore, RedisRoomStore
from realtime.rooms import AllowAll, RoomManager, SocketIORouter
from realtime.services import Services
from realtime.socket_state import MemorySocketState, RedisSocketState
from realtime.sockets.catalog import EventCatalog

logger = logging.getLogger(__name__)


class GamePlayersHook:
    """``game:`` rooms: only the game's registered players."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def can_join(self, user_id: str, room: str) -> bool:
        return self._services.games.is_player(room.partition(":")[2], user_id)

    def allowed_among(self, user_id: str, rooms: Sequence[str]) -> set[str]:
        """The ``game:`` rooms whose game has ``user_id`` among its players (one round trip)."""
        ids = [room.partition(":")[2] for room in rooms]
        playing = self._services.games.playing_in(ids, user_id)
        return {room for room, game_id in zip(rooms, ids, strict=True) if game_id in playing}


def build_services(settings: Settings, socketio: Any, catalog: EventCatalog) -> Services:
    """Build every service for ``settings``; Redis-backed when ``REDIS_URL`` is set."""
    keys = Keys(settings.key_prefix)
    client = connect_redis(settings.redis_url, settings.redis_max_connections) if settings.redis_url else None
    queue = None
    if settings.message_queue_url:
        queue = (
            client
            if settings.message_queue_url == settings.redis_url
            else connect_redis(settings.message_queue_url, settings.redis_max_connections)
        )
    tokens = TokenService(
        algorithms=settings.jwt_algorithms,
        verify_key=settings.jwt_verify_key,
        signing_key=settings.jwt_signing_key,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )
    if client is not None:
        scripts: ScriptSet | None = ScriptSet(client)
        sessions: Any = RedisSessionStore(client, settings.key_prefix)
        room_store: Any = RedisRoomStore(client, keys, scripts)
        notifications: Any = RedisNotificationStore(client, keys, scripts, settings.notifications_max)
        bus: Any = RedisControlBus(client, keys.control_channel)
        state: Any = RedisSocketState(
            client,
            keys,
            scripts,
            settings.presence_ttl,
            time.time,
            max_sockets_per_user=settings.max_connections_per_user,
            replay_cap=settings.recovery_max_packets,
        )
        recovery: Any = (
            RedisRecoveryStore(client, keys, scripts, settings.recovery_window, settings.recovery_max_packets)
            if settings.recovery_window > 0
            else None
        )
        chat: Any = RedisChatStore(
            client, keys, scripts, settings.chat_history_max, settings.notifications_max, time.time
        )
        games: Any = RedisGameStore(client, keys, scripts)
    else:
        scripts = None
        sessions = MemorySessionStore()
        room_store = MemoryRoomStore()
        notifications = MemoryNotificationStore(settings.notifications_max)
        bus = LocalControlBus()

        def evict(session_ids: list[str]) -> None:
            for session_id in session_ids:
                sessions.revoke(session_id)
            bus.publish({"op": "logout", "sessions": session_ids, "reason": "duplicate_login"})

        recovery = (
            MemoryRecoveryStore(
                settings.recovery_window,
                settings.recovery_max_packets,
                lambda session_id, user_id: sessions.check(session_id, user_id, want_profile=True),
            )
            if settings.recovery_window > 0
            else None
        )
        state = MemorySocketState(
            room_store,
            evict,
            notifications.unread_count,
            time.time,
            max_sockets_per_user=settings.max_connections_per_user,
            since=recovery.since if recovery is not None else (lambda offset: []),
        )
        chat = MemoryChatStore(
            settings.chat_history_max, notifications, lambda user: state.presence([user])[0].is_online
        )
        games = MemoryGameStore()
    rooms = RoomManager(
        router=SocketIORouter(socketio),
        store=room_store,
        default_rooms=settings.default_rooms,
        max_rooms_per_socket=settings.max_rooms_per_socket,
        bus=bus,
    )
    services = Services(
        settings=settings,
        redis=client,
        queue=queue,
        scripts=scripts,
        keys=keys,
        tokens=tokens,
        sessions=sessions,
        authenticator=Authenticator(tokens, sessions, ProfileCache(settings.user_cache_ttl)),
        rooms=rooms,
        limiter=RateLimiter(settings.event_rate, settings.event_burst),
        typing=Throttle(settings.typing_throttle),
        connections=ConnectionRegistry(),
        state=state,
        bus=bus,
        catalog=catalog,
        broadcaster=Broadcaster(_fanout_manager(settings, queue, client, recovery), catalog),
        recovery=recovery,
        chat=chat,
        notifications=notifications,
        games=games,
    )
    # Open by default: chat groups, party live feeds, broadcast topics and presence subscriptions.
    for prefix in ("group:", "party:", "broadcast:", "presence:"):
        rooms.register_auth_hook(prefix, AllowAll())
    rooms.register_auth_hook("game:", GamePlayersHook(services))
    services.lifecycle = Lifecycle(services, socketio)
    services.register_push_hook(_log_push)
    return services


def _fanout_manager(settings: Settings, queue: Any, client: Any, recovery: Any) -> FanoutLayer:
    """The Socket.IO client manager: through the message queue when there is one, else in this process."""
    if settings.message_queue_url and queue is not None:
        return RedisFanout(
            settings.message_queue_url,
            channel=settings.socketio_channel,
            client=queue,
            recovery=recovery,
            publish_with_log=queue is client,
        )
    return LocalFanout(recovery)


def _log_push(user_ids: list[str], notification: dict[str, Any]) -> None:
    """The default push hook: count what a push service would receive (never the content)."""
    logger.info("push: %d offline recipient(s) for a %s notification", len(user_ids), notification.get("type"))
