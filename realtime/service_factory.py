"""Choose the in-memory or Redis transport of every store and wire the services together."""
from __future__ import annotations

from typing import Any

from realtime.auth.handshake import Authenticator
from realtime.auth.sessions import MemorySessionStore, ProfileCache, RedisSessionStore, SessionStore
from realtime.auth.tokens import TokenService
from realtime.config import Settings
from realtime.connections import ConnectionRegistry
from realtime.rate_limit import RateLimiter
from realtime.redis_client import connect_redis
from realtime.room_store import MemoryRoomStore, RedisRoomStore, RoomStore
from realtime.rooms import AllowAll, RoomManager, SocketIORouter
from realtime.services import Services


def build_services(settings: Settings, socketio: Any) -> Services:
    """Build every service for ``settings``; Redis-backed when ``REDIS_URL`` is set."""
    client = connect_redis(settings.redis_url) if settings.redis_url else None
    sessions: SessionStore
    room_store: RoomStore
    if client is not None:
        sessions = RedisSessionStore(client, settings.key_prefix)
        room_store = RedisRoomStore(client, settings.key_prefix)
    else:
        sessions = MemorySessionStore()
        room_store = MemoryRoomStore()
    tokens = TokenService(
        algorithms=settings.jwt_algorithms,
        verify_key=settings.jwt_verify_key,
        signing_key=settings.jwt_signing_key,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )
    rooms = RoomManager(
        router=SocketIORouter(socketio),
        store=room_store,
        default_rooms=settings.default_rooms,
        max_rooms_per_socket=settings.max_rooms_per_socket,
    )
    # Open by default: chat groups, party live feeds and broadcast topics. game: stays closed until a
    # feature registers who may play.
    for prefix in ("group:", "party:", "broadcast:"):
        rooms.register_auth_hook(prefix, AllowAll())
    return Services(
        settings=settings,
        redis=client,
        tokens=tokens,
        sessions=sessions,
        authenticator=Authenticator(tokens, sessions, ProfileCache(settings.user_cache_ttl)),
        rooms=rooms,
        limiter=RateLimiter(settings.event_rate, settings.event_burst),
        connections=ConnectionRegistry(),
    )
