"""The per-app service container, kept in ``app.extensions["realtime"]``."""
from __future__ import annotations

from dataclasses import dataclass

import redis
from flask import current_app

from realtime.auth.handshake import Authenticator
from realtime.auth.sessions import SessionStore
from realtime.auth.tokens import TokenService
from realtime.config import Settings
from realtime.connections import ConnectionRegistry
from realtime.rate_limit import RateLimiter
from realtime.rooms import RoomManager


@dataclass
class Services:
    """Everything handlers need, built once by the app factory."""

    settings: Settings
    redis: redis.Redis | None
    tokens: TokenService
    sessions: SessionStore
    authenticator: Authenticator
    rooms: RoomManager
    limiter: RateLimiter
    connections: ConnectionRegistry


def current_services() -> Services:
    """The services of the app handling the current request or event."""
    return current_app.extensions["realtime"]
