"""Personal notifications with read state, capped per user: one interface, two transports."""
from __future__ import annotations

import json
from collections import deque
from collections.abc import Sequence
from typing import Any, Protocol

import redis

from realtime.stores.redis.keys import Keys
from realtime.stores.redis.scripts import ScriptSet


class NotificationStore(Protocol):
    """Stored notifications, newest first."""

    def add(self, user_ids: Sequence[str], notification: dict[str, Any]) -> None:
        """Store ``notification`` (with ``id``) for each user, unread."""

    def list(self, user_id: str, unread_only: bool, limit: int) -> tuple[list[dict[str, Any]], int]:
        """The newest notifications with a ``read`` flag, and the unread count."""

    def mark_read(self, user_id: str, ids: Sequence[str]) -> tuple[int, int]:
        """Mark ``ids`` read; return how many changed and the unread count left."""

    def unread_count(self, user_id: str) -> int:
        """How many stored notifications are unread."""


class MemoryNotificationStore:
    """The embedded default."""

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._items: dict[str, deque[dict[str, Any]]] = {}
        self._unread: dict[str, set[str]] = {}

    def add(self, user_ids: Sequence[str], notification: dict[str, Any]) -> None:
        for user_id in user_ids:
            items = self._items.setdefault(user_id, deque())
            unread = self._unread.setdefault(user_id, set())
            items.appendleft(dict(notification))
            unread.add(notification["id"])
            while len(items) > self._cap:
                unread.discard(items.pop()["id"])

    def list(self, user_id: str, unread_only: bool, limit: int) -> tuple[list[dict[str, Any]], int]:
        unread = self._unread.get(user_id, set())
        return _select(list(self._items.get(user_id, ())), unread, unread_only, limit), len(unread)

    def mark_read(self, user_id: str, ids: Sequence[str]) -> tuple[int, int]:
        unread = self._unread.get(user_id, set())
        changed = len(unread.intersection(ids))
        unread.difference_update(ids)
        return changed, len(unread)

    def unread_count(self, user_id: str) -> int:
        return len(self._unread.get(user_id, ()))


class RedisNotificationStore:
    """A JSON list per user (newest first) and a set of unread ids; trimming keeps both consistent."""

    def __init__(self, client: redis.Redis, keys: Keys, scripts: ScriptSet, cap: int) -> None:
        self._redis = client
        self._keys = keys
        self._cap = cap
        self._add = scripts.load("notify_add", "notify_fn")

    def add(self, user_ids: Sequence[str], notification: dict[str, Any]) -> None:
        if user_ids:
            body = json.dumps(notification, separators=(",", ":"))
            self._add(args=[self._keys.prefix, notification["id"], body, self._cap, *user_ids])

    def list(self, user_id: str, unread_only: bool, limit: int) -> tuple[list[dict[str, Any]], int]:
        pipe = self._redis.pipeline(transaction=False)
        pipe.lrange(self._keys.notifications(user_id), 0, self._cap - 1)
        pipe.smembers(self._keys.unread(user_id))
        raw, unread = pipe.execute()
        items = []
        for entry in raw:
            try:
                items.append(json.loads(entry))
            except ValueError:
                continue
        return _select(items, unread, unread_only, limit), len(unread)

    def mark_read(self, user_id: str, ids: Sequence[str]) -> tuple[int, int]:
        pipe = self._redis.pipeline(transaction=False)
        pipe.srem(self._keys.unread(user_id), *ids)
        pipe.scard(self._keys.unread(user_id))
        changed, left = pipe.execute()
        return int(changed), int(left)

    def unread_count(self, user_id: str) -> int:
        return int(self._redis.scard(self._keys.unread(user_id)))


def _select(items: list[dict[str, Any]], unread: set[str], unread_only: bool, limit: int) -> list[dict[str, Any]]:
    chosen = []
    for item in items:
        is_unread = item.get("id") in unread
        if unread_only and not is_unread:
            continue
        chosen.append({**item, "read": not is_unread})
        if len(chosen) == limit:
            break
    return chosen
