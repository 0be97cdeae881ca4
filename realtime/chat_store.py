"""Chat history per room (a capped Redis Stream), idempotent sends and offline-member notifications."""
from __future__ import annotations

import itertools
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis

from realtime.lua_scripts import ScriptSet
from realtime.notification_store import MemoryNotificationStore
from realtime.redis_keys import Keys

DEDUP_SECONDS = 300
MAX_NOTIFIED_MEMBERS = 1000


@dataclass(frozen=True)
class AppendResult:
    """The stored message id, whether the send was a retry, and who was offline (notified)."""

    id: str
    duplicate: bool
    offline_user_ids: list[str] = field(default_factory=list)


class ChatStore(Protocol):
    """Messages by room; ``message`` dicts are the wire shape without ``id``."""

    def join(self, room_id: str, user_id: str, history: int) -> list[dict[str, Any]]:
        """Record ``user_id`` as a member; return the newest ``history`` messages, newest first."""

    def leave(self, room_id: str, user_id: str) -> None:
        """``user_id`` is no longer a member (no more offline notifications)."""

    def append(
        self, room_id: str, message: dict[str, Any], client_id: str | None, notification: dict[str, Any]
    ) -> AppendResult:
        """Store once per ``client_id`` (5 minutes); store ``notification`` for offline members."""

    def history(self, room_id: str, before: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        """Messages older than ``before``, newest first, and the cursor for the next page."""


def _page(entries: list[tuple[str, dict[str, Any]]], limit: int) -> tuple[list[dict[str, Any]], str | None]:
    messages = [{**message, "id": entry_id} for entry_id, message in entries]
    cursor = messages[-1]["id"] if messages and len(messages) == limit else None
    return messages, cursor


class RedisChatStore:
    """``{prefix}chat:{roomId}`` streams capped near ``max_len``; members in ``group-members:{roomId}``."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        scripts: ScriptSet,
        max_len: int,
        notification_cap: int,
        clock: Callable[[], float],
    ) -> None:
        self._redis = client
        self._keys = keys
        self._max_len = max_len
        self._cap = notification_cap
        self._clock = clock
        self._append = scripts.load("chat_append", "notify_fn")

    def join(self, room_id: str, user_id: str, history: int) -> list[dict[str, Any]]:
        if history <= 0:
            self._redis.sadd(self._keys.group_members(room_id), user_id)
            return []
        pipe = self._redis.pipeline(transaction=False)
        pipe.sadd(self._keys.group_members(room_id), user_id)
        pipe.xrevrange(self._keys.chat_stream(room_id), count=history)
        _, entries = pipe.execute()
        return _page(self._decode(entries), history)[0]

    def leave(self, room_id: str, user_id: str) -> None:
        self._redis.srem(self._keys.group_members(room_id), user_id)

    def append(
        self, room_id: str, message: dict[str, Any], client_id: str | None, notification: dict[str, Any]
    ) -> AppendResult:
        duplicate, message_id, offline = self._append(
            args=[
                self._keys.prefix, room_id, message["senderId"], client_id or "", DEDUP_SECONDS,
                json.dumps(message, separators=(",", ":")), self._max_len, self._clock(),
                json.dumps(notification, separators=(",", ":")), self._cap, MAX_NOTIFIED_MEMBERS,
            ]
        )
        return AppendResult(id=message_id, duplicate=bool(duplicate), offline_user_ids=list(offline))

    def history(self, room_id: str, before: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        if before is not None:
            ms, _, seq = before.partition("-")
            before = f"{int(ms)}-{int(seq)}"
            if before == "0-0":
                return [], None
        entries = self._redis.xrevrange(
            self._keys.chat_stream(room_id), max=f"({before}" if before else "+", count=limit
        )
        return _page(self._decode(entries), limit)

    @staticmethod
    def _decode(entries: list[tuple[str, dict[str, str]]]) -> list[tuple[str, dict[str, Any]]]:
        decoded = []
        for entry_id, fields in entries:
            try:
                decoded.append((entry_id, json.loads(fields["m"])))
            except (KeyError, ValueError):
                continue
        return decoded


class MemoryChatStore:
    """The embedded default: a bounded deque per room, stream-like ids."""

    def __init__(
        self,
        max_len: int,
        notifications: MemoryNotificationStore,
        is_online: Callable[[str], bool],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._max_len = max_len
        self._notifications = notifications
        self._is_online = is_online
        self._clock = clock
        self._rooms: dict[str, deque[tuple[str, dict[str, Any]]]] = {}
        self._members: dict[str, set[str]] = {}
        self._dedup: dict[tuple[str, str, str], tuple[str, float]] = {}
        self._last_ms = 0
        self._seq = itertools.count()

    def _next_id(self) -> str:
        ms = int(self._clock() * 1000)
        if ms > self._last_ms:
            self._last_ms, self._seq = ms, itertools.count()
        return f"{self._last_ms}-{next(self._seq)}"

    def join(self, room_id: str, user_id: str, history: int) -> list[dict[str, Any]]:
        self._members.setdefault(room_id, set()).add(user_id)
        entries = list(itertools.islice(reversed(self._rooms.get(room_id, ())), max(history, 0)))
        return _page(entries, history)[0]

    def leave(self, room_id: str, user_id: str) -> None:
        self._members.get(room_id, set()).discard(user_id)

    def append(
        self, room_id: str, message: dict[str, Any], client_id: str | None, notification: dict[str, Any]
    ) -> AppendResult:
        now = self._clock()
        key = (room_id, message["senderId"], client_id or "")
        if client_id:
            self._dedup = {k: v for k, v in self._dedup.items() if v[1] > now}
            if key in self._dedup:
                return AppendResult(id=self._dedup[key][0], duplicate=True)
        message_id = self._next_id()
        self._rooms.setdefault(room_id, deque(maxlen=self._max_len)).append((message_id, dict(message)))
        if client_id:
            self._dedup[key] = (message_id, now + DEDUP_SECONDS)
        members = list(self._members.get(room_id, ()))[:MAX_NOTIFIED_MEMBERS]
        offline = [m for m in members if m != message["senderId"] and not self._is_online(m)]
        stored = {**notification, "id": f"chat-{message_id}", "data": {**notification["data"], "messageId": message_id}}
        self._notifications.add(offline, stored)
        return AppendResult(id=message_id, duplicate=False, offline_user_ids=offline)

    def history(self, room_id: str, before: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        newest_first = reversed(self._rooms.get(room_id, ()))
        if before:
            newest_first = (e for e in newest_first if _id_key(e[0]) < _id_key(before))
        return _page(list(itertools.islice(newest_first, limit)), limit)


def _id_key(message_id: str) -> tuple[int, int]:
    ms, _, seq = message_id.partition("-")
    return int(ms), int(seq or 0)
