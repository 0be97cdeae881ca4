"""Session allow-list and user profiles: one interface, an in-memory and a Redis transport.

The login service writes sessions (``{prefix}session:{sid}`` hash with ``userId``) and profiles
(``{prefix}user:{id}`` hash with ``username``, ``avatarUrl``); ``flask token create`` writes sessions
for development and QA. On connect both are read in one pipelined round trip; while sockets are live, each
worker re-reads their sessions periodically (:meth:`SessionStore.missing`), so a session the login service
deletes or lets expire stops its sockets too.
"""
from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import redis

from realtime.errors import ErrorCode, RealtimeError
from realtime.stores.redis.keys import Keys
from realtime.stores.redis.scripts import ScriptSet

PIPELINE_CHUNK = 1000
#: Sessions per round trip of the periodic session check (:meth:`RedisSessionStore.missing`).
CHECK_CHUNK = 250


@dataclass(frozen=True)
class Profile:
    """Public facts about a user, shown to others (chat sender, presence)."""

    id: str
    username: str
    avatar_url: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        """The wire shape used in events."""
        return {"id": self.id, "username": self.username, "avatarUrl": self.avatar_url}


@dataclass(frozen=True)
class SessionCheck:
    """The answer to "may this session connect?" plus the user's profile when it was fetched."""

    valid: bool
    profile: Profile | None

    @classmethod
    def of_stored(cls, owner: str | None, user_id: str, profile_fields: Mapping[str, str] | None) -> SessionCheck:
        """The one session rule of the Redis transport: valid while the session hash names ``user_id`` (a
        deleted or expired session names nobody); ``profile_fields`` is the user's profile hash, when read.

        ``lua/recovery_restore.lua`` applies the same comparison to decide, atomically, whether to claim.
        """
        profile = None
        if profile_fields is not None:
            profile = Profile(
                id=user_id, username=profile_fields.get("username") or user_id, avatar_url=profile_fields.get("avatarUrl")
            )
        return cls(valid=owner == user_id, profile=profile)


def session_revoked() -> RealtimeError:
    """The refusal of a session that is unknown, revoked or names another user."""
    return RealtimeError(ErrorCode.SESSION_REVOKED, "The session is unknown or revoked; log in again.")


class SessionStore(Protocol):
    """Where sessions and profiles live."""

    #: False for the embedded default, where no login service can write sessions.
    checks_sessions: bool

    def create(self, user_ids: Sequence[str], ttl: int) -> list[str]:
        """Register one new session per user id; return the session ids in the same order."""

    def revoke(self, session_id: str) -> bool:
        """Forget a session; return whether it existed."""

    def check(self, session_id: str, user_id: str, want_profile: bool) -> SessionCheck:
        """Whether the session exists and belongs to ``user_id``; with the profile if asked."""

    def missing(self, owners: Mapping[str, str]) -> list[str]:
        """The session ids of ``owners`` (session id -> user id) that no longer exist or belong to another
        user, in one round trip per ``CHECK_CHUNK`` sessions; raises (never answers "all gone") when the store does not answer."""

    def put_profile(self, profile: Profile) -> None:
        """Store a user's public profile."""


def new_session_id() -> str:
    """A random, URL-safe session id (128 bits)."""
    return secrets.token_urlsafe(16).replace("-", "_")


class MemorySessionStore:
    """One-process store for the embedded default: tokens minted anywhere connect (no login service can
    write here) unless their session was revoked in this process (duplicate login)."""

    checks_sessions = False

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._sessions: dict[str, tuple[str, float]] = {}
        self._revoked: set[str] = set()
        self._profiles: dict[str, Profile] = {}

    def create(self, user_ids: Sequence[str], ttl: int) -> list[str]:
        expires = self._clock() + ttl
        ids = [new_session_id() for _ in user_ids]
        for session_id, user_id in zip(ids, user_ids, strict=True):
            self._sessions[session_id] = (user_id, expires)
        return ids

    def revoke(self, session_id: str) -> bool:
        self._revoked.add(session_id)
        return self._sessions.pop(session_id, None) is not None

    def check(self, session_id: str, user_id: str, want_profile: bool) -> SessionCheck:
        valid = session_id not in self._revoked
        return SessionCheck(valid=valid, profile=self._profiles.get(user_id) if want_profile else None)

    def missing(self, owners: Mapping[str, str]) -> list[str]:
        return [session_id for session_id in owners if session_id in self._revoked]

    def put_profile(self, profile: Profile) -> None:
        self._profiles[profile.id] = profile


class RedisSessionStore:
    """Cluster-wide store: sessions are hashes with a TTL, so an expired login needs no cleanup."""

    checks_sessions = True

    def __init__(self, client: redis.Redis, keys: Keys, scripts: ScriptSet) -> None:
        self._redis = client
        self._keys = keys
        self._missing = scripts.load("sessions_missing")

    def create(self, user_ids: Sequence[str], ttl: int) -> list[str]:
        ids = [new_session_id() for _ in user_ids]
        now = str(int(time.time()))
        for start in range(0, len(ids), PIPELINE_CHUNK):
            pipe = self._redis.pipeline(transaction=False)
            for session_id, user_id in zip(ids[start : start + PIPELINE_CHUNK], user_ids[start : start + PIPELINE_CHUNK]):
                pipe.hset(self._keys.session(session_id), mapping={"userId": user_id, "createdAt": now})
                pipe.expire(self._keys.session(session_id), ttl)
            pipe.execute()
        return ids

    def revoke(self, session_id: str) -> bool:
        return bool(self._redis.delete(self._keys.session(session_id)))

    def check(self, session_id: str, user_id: str, want_profile: bool) -> SessionCheck:
        pipe = self._redis.pipeline(transaction=False)
        pipe.hget(self._keys.session(session_id), "userId")
        if want_profile:
            pipe.hgetall(self._keys.user(user_id))
        replies = pipe.execute()
        return SessionCheck.of_stored(replies[0], user_id, (replies[1] or {}) if want_profile else None)

    def missing(self, owners: Mapping[str, str]) -> list[str]:
        if not owners:
            return []
        # One script call per CHECK_CHUNK sessions: a round trip per chunk, however many sockets each session
        # has. Redis compares (lua/sessions_missing.lua) and answers with the positions of the gone ones, so
        # the worker packs one command and reads a short reply per chunk: about 1 ms of the worker per 1,000
        # sessions. A pipeline of one HGET per session cost 16 ms per 1,000, held in chunks of about 4 ms (a
        # stall of every socket of the worker, each time); one pipeline of 10,000 sessions, about 100 ms.
        items = list(owners.items())
        gone: list[str] = []
        for start in range(0, len(items), CHECK_CHUNK):
            chunk = items[start : start + CHECK_CHUNK]
            positions = self._missing(
                keys=[self._keys.session(session_id) for session_id, _ in chunk],
                args=[user_id for _, user_id in chunk],
            )
            gone += [chunk[int(position) - 1][0] for position in positions]
        return gone

    def put_profile(self, profile: Profile) -> None:
        mapping = {"username": profile.username}
        if profile.avatar_url:
            mapping["avatarUrl"] = profile.avatar_url
        self._redis.hset(self._keys.user(profile.id), mapping=mapping)


class ProfileCache:
    """A bounded in-process TTL cache in front of the store: a reconnect storm costs no profile reads."""

    def __init__(self, ttl: float, max_entries: int = 50_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._clock = clock
        self._entries: dict[str, tuple[float, Profile]] = {}

    def get(self, user_id: str) -> Profile | None:
        """The cached profile, or None when absent or stale."""
        entry = self._entries.get(user_id)
        if entry is None:
            return None
        if entry[0] < self._clock():
            self._entries.pop(user_id, None)
            return None
        return entry[1]

    def put(self, profile: Profile) -> None:
        """Remember ``profile``; evict the oldest entry when full."""
        if self._ttl <= 0:
            return
        if len(self._entries) >= self._max and profile.id not in self._entries:
            self._entries.pop(next(iter(self._entries)))
        self._entries[profile.id] = (self._clock() + self._ttl, profile)
