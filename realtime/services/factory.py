"""Choose the in-memory or Redis transport of every store and wire the services together."""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import redis

from realtime.auth.handshake import Authenticator
from realtime.auth.tokens import TokenService
from realtime.cluster.lifecycle import Lifecycle
from realtime.config import Settings
from realtime.fanout.broadcaster import Broadcaster
from realtime.fanout.manager import FanoutLayer, LocalFanout
from realtime.fanout.redis_fanout import RedisFanout
from realtime.services.container import Services
from realtime.services.join_coalescer import JoinCoalescer
from realtime.services.local_sockets import ConnectionRegistry
from realtime.services.offline_jobs import OfflineJobWorker
from realtime.services.room_manager import RoomManager
from realtime.services.room_router import SocketIORouter
from realtime.services.room_rules import OPEN_BY_DEFAULT, AllowAll
from realtime.sockets.catalog import EventCatalog
from realtime.stores.chat import ChatStore, MemoryChatStore, RedisChatStore
from realtime.stores.control_bus import ControlBus, LocalControlBus, RedisControlBus
from realtime.stores.games import GameStore, MemoryGameStore, RedisGameStore
from realtime.stores.memory_socket_state import MemorySocketState
from realtime.stores.notifications import (
    MemoryNotificationStore,
    NotificationStore,
    RedisNotificationStore,
)
from realtime.stores.offline_jobs import (
    MemoryOfflineJobs,
    OfflineJobQueue,
    RedisOfflineJobs,
)
from realtime.stores.presence import (
    MemoryPresenceStore,
    PresenceStore,
    RedisPresenceStore,
)
from realtime.stores.rate_limit import RateLimiter, Throttle
from realtime.stores.recovery import (
    MemoryRecoveryStore,
    RecoveryStore,
    RedisRecoveryStore,
)
from realtime.stores.redis.client import connect_redis
from realtime.stores.redis.keys import Keys
from realtime.stores.redis.scripts import ScriptSet
from realtime.stores.room_index import MemoryRoomStore, RedisRoomStore, RoomStore
from realtime.stores.sessions import (
    MemorySessionStore,
    ProfileCache,
    RedisSessionStore,
    SessionStore,
)
from realtime.stores.socket_state import RedisSocketState, SocketState

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
        sessions: SessionStore = RedisSessionStore(client, keys, scripts)
        room_store: RoomStore = RedisRoomStore(client, keys, scripts)
        notifications: NotificationStore = RedisNotificationStore(client, keys, scripts, settings.notifications_max)
        bus: ControlBus = RedisControlBus(client, keys.control_channel)
        presence: PresenceStore = RedisPresenceStore(client, keys, time.time)
        state: SocketState = RedisSocketState(
            keys,
            scripts,
            settings.presence_ttl,
            time.time,
            max_sockets_per_user=settings.max_connections_per_user,
            replay_cap=settings.recovery_max_packets,
            server_id=lambda: str(client.info("server")["run_id"]),
        )
        recovery: RecoveryStore | None = (
            RedisRecoveryStore(client, keys, scripts, settings.recovery_window, settings.recovery_max_packets)
            if settings.recovery_window > 0
            else None
        )
        chat: ChatStore = RedisChatStore(
            client, keys, scripts, settings.chat_history_max, settings.offline_jobs_max, time.time
        )
        offline_queue: OfflineJobQueue = RedisOfflineJobs(
            client, keys, scripts, settings.notifications_max, settings.offline_jobs_claim_after
        )
        games: GameStore = RedisGameStore(client, keys, scripts)
    else:
        scripts = None
        sessions = MemorySessionStore()
        memory_rooms = MemoryRoomStore()
        memory_notifications = MemoryNotificationStore(settings.notifications_max)
        memory_presence = MemoryPresenceStore(time.time)
        bus = LocalControlBus()
        recovery = (
            MemoryRecoveryStore(settings.recovery_window, settings.recovery_max_packets, sessions)
            if settings.recovery_window > 0
            else None
        )
        state = MemorySocketState(
            memory_rooms,
            memory_presence,
            sessions,
            bus,
            memory_notifications,
            recovery,
            time.time,
            max_sockets_per_user=settings.max_connections_per_user,
        )
        memory_jobs = MemoryOfflineJobs(
            memory_presence, memory_notifications, settings.offline_jobs_max, settings.offline_jobs_claim_after
        )
        chat = MemoryChatStore(settings.chat_history_max, memory_jobs)
        offline_queue = memory_jobs
        room_store, notifications, presence = memory_rooms, memory_notifications, memory_presence
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
        authenticator=Authenticator(tokens, ProfileCache(settings.user_cache_ttl)),
        rooms=rooms,
        limiter=RateLimiter(settings.event_rate, settings.event_burst),
        typing=Throttle(settings.typing_throttle),
        connections=ConnectionRegistry(),
        state=state,
        presence=presence,
        bus=bus,
        catalog=catalog,
        broadcaster=Broadcaster(_fanout_manager(settings, queue, client, recovery), catalog),
        recovery=recovery,
        chat=chat,
        notifications=notifications,
        games=games,
    )
    for prefix in OPEN_BY_DEFAULT:
        rooms.register_auth_hook(prefix, AllowAll())
    rooms.register_auth_hook("game:", GamePlayersHook(services))
    services.lifecycle = Lifecycle(services, socketio)
    services.offline_jobs = OfflineJobWorker(offline_queue, services.push_hooks, settings.offline_jobs_claim_after)
    services.joins = JoinCoalescer(services.broadcaster.emit_many)
    services.register_push_hook(_log_push)
    return services


def _fanout_manager(
    settings: Settings, queue: redis.Redis | None, client: redis.Redis | None, recovery: RecoveryStore | None
) -> FanoutLayer:
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
