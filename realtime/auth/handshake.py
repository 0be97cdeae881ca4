"""Turn a Socket.IO handshake into an authenticated identity, or a refusal with a code."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from realtime.auth.tokens import Claims, TokenService
from realtime.errors import ErrorCode, RealtimeError
from realtime.stores.sessions import Profile, ProfileCache, SessionCheck, session_revoked

MAX_TOKEN_LENGTH = 8192


@dataclass(frozen=True)
class Identity:
    """Who is behind a socket."""

    user_id: str
    session_id: str
    profile: Profile


def auth_token(auth: Any) -> str | None:
    """The token in the CONNECT packet's ``auth.token`` (where socket.io-client puts it), or None."""
    if isinstance(auth, Mapping):
        token = auth.get("token")
        if isinstance(token, str) and token.strip():
            return token.strip()
    return None


def extract_token(auth: Any, headers: Mapping[str, str], args: Mapping[str, str]) -> str | None:
    """Find the token in ``auth.token``, then ``Authorization: Bearer``, then ``?token=``."""
    token = auth_token(auth)
    if token is not None:
        return token
    header = headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    query = args.get("token", "")
    return query.strip() or None


class Authenticator:
    """Verifies the JWT, turns a session check into an identity, and keeps profiles cache-first.

    The session check itself rides on a Redis round trip the socket makes anyway: its registration
    (``SocketState.connect``) or, for a reconnect, its recovery claim (``RecoveryStore.restore``).
    """

    def __init__(self, tokens: TokenService, profiles: ProfileCache) -> None:
        self._tokens = tokens
        self._profiles = profiles

    def verify(self, token: str | None) -> Claims:
        """The claims of ``token`` once its signature, algorithm, expiry, issuer and audience hold; its
        session is still to be checked (as the socket registers, or with its recovery claim).

        :raises RealtimeError: ``AUTH_REQUIRED``, ``INVALID_TOKEN`` or ``TOKEN_EXPIRED``.
        """
        if not token:
            raise RealtimeError(
                ErrorCode.AUTH_REQUIRED, "Send a token in auth.token, an Authorization: Bearer header or ?token=."
            )
        if len(token) > MAX_TOKEN_LENGTH:
            raise RealtimeError(ErrorCode.INVALID_TOKEN, "The token is too long.")
        return self._tokens.verify(token)

    def cached_profile(self, user_id: str) -> Profile | None:
        """The in-process cached profile, if fresh."""
        return self._profiles.get(user_id)

    def identity_for(self, claims: Claims, check: SessionCheck, cached: Profile | None) -> Identity:
        """The identity once the session was checked (here, or by the recovery store in the same round trip).

        :raises RealtimeError: ``SESSION_REVOKED``.
        """
        if not check.valid:
            raise session_revoked()
        profile = cached or check.profile or Profile(id=claims.user_id, username=claims.user_id)
        if cached is None:
            self._profiles.put(profile)
        return Identity(user_id=claims.user_id, session_id=claims.session_id, profile=profile)
