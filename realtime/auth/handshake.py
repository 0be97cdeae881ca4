"""Turn a Socket.IO handshake into an authenticated identity, or a refusal with a code."""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis

from realtime.auth.tokens import Claims, TokenService
from realtime.errors import ErrorCode, RealtimeError
from realtime.stores.sessions import Profile, ProfileCache, SessionCheck, SessionStore

logger = logging.getLogger(__name__)

MAX_TOKEN_LENGTH = 8192


@dataclass(frozen=True)
class Identity:
    """Who is behind a socket."""

    user_id: str
    session_id: str
    profile: Profile


def extract_token(auth: Any, headers: Mapping[str, str], args: Mapping[str, str]) -> str | None:
    """Find the token in ``auth.token``, then ``Authorization: Bearer``, then ``?token=``."""
    if isinstance(auth, Mapping):
        token = auth.get("token")
        if isinstance(token, str) and token.strip():
            return token.strip()
    header = headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    query = args.get("token", "")
    return query.strip() or None


class Authenticator:
    """Verifies the JWT, checks its session, and loads the profile cache-first."""

    def __init__(self, tokens: TokenService, sessions: SessionStore, profiles: ProfileCache) -> None:
        self._tokens = tokens
        self._sessions = sessions
        self._profiles = profiles

    def authenticate(self, token: str | None) -> Identity:
        """Return the identity behind ``token``.

        Costs at most one Redis round trip (session and, on a cache miss, profile, pipelined).

        :raises RealtimeError: ``AUTH_REQUIRED``, ``INVALID_TOKEN``, ``TOKEN_EXPIRED``,
            ``SESSION_REVOKED`` or ``UNAVAILABLE``.
        """
        if not token:
            raise RealtimeError(
                ErrorCode.AUTH_REQUIRED, "Send a token in auth.token, an Authorization: Bearer header or ?token=."
            )
        if len(token) > MAX_TOKEN_LENGTH:
            raise RealtimeError(ErrorCode.INVALID_TOKEN, "The token is too long.")
        claims = self._tokens.verify(token)
        cached = self.cached_profile(claims.user_id)
        try:
            check = self._sessions.check(claims.session_id, claims.user_id, want_profile=cached is None)
        except redis.RedisError:
            logger.warning("session store unreachable during handshake", exc_info=True)
            raise RealtimeError(ErrorCode.UNAVAILABLE, "The session store is unreachable; retry shortly.") from None
        return self.identity_for(claims, check, cached)

    def cached_profile(self, user_id: str) -> Profile | None:
        """The in-process cached profile, if fresh."""
        return self._profiles.get(user_id)

    def identity_for(self, claims: Claims, check: SessionCheck, cached: Profile | None) -> Identity:
        """The identity once the session was checked (here, or by the recovery store in the same round trip).

        :raises RealtimeError: ``SESSION_REVOKED``.
        """
        if not check.valid:
            raise RealtimeError(ErrorCode.SESSION_REVOKED, "The session is unknown or revoked; log in again.")
        profile = cached or check.profile or Profile(id=claims.user_id, username=claims.user_id)
        if cached is None:
            self._profiles.put(profile)
        return Identity(user_id=claims.user_id, session_id=claims.session_id, profile=profile)
