"""Chat history per room (a capped Redis Stream), idempotent sends, and the offline-member job each new
message queues (:mod:`realtime.stores.offline_jobs` does the job)."""
from __future__ import annotations

import itertools
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import redis

from realtime import json_text
from realtime.identifiers import StreamId
from realtime.stores.offline_jobs import MemoryOfflineJobs, OfflineJob
from realtime.stores.recovery_packets import ScriptLog
from realtime.stores.redis.keys import Keys
from realtime.stores.redis.scripts import ScriptSet

DEDUP_SECONDS = 300
#: How long a chat room found with every member in it skips the offline-member comparison at most, s.
COMPLETE_SECONDS = 10


class Unsent(StrEnum):
    """What a stored message still needs after its fan-out failed: the mark a retry with its clientId reads."""

    #: The recovery log holds it (or no log is kept): send it to the room's live sockets only.
    PUBLISH = "publish"
    #: Neither logged for recovery nor sent: log and send it, as a new message is.
    LOG = "log"


@dataclass(frozen=True)
class AppendResult:
    """The stored message id, whether the send was a retry, and for a retry of a message whose fan-out
    failed, the stored message (with its id) to send now and what it still needs; ``offset``: the recovery
    offset of the broadcast logged with a new message (None when the store did not log it), ``after``: the
    offset logged just before it (None when unknown)."""

    id: str
    duplicate: bool
    resend: dict[str, Any] | None = None
    unsent: Unsent | None = None
    offset: str | None = None
    after: str | None = None


class ChatStore(Protocol):
    """Messages by room; ``message`` dicts are the wire shape without ``id``."""

    def join(self, room_id: str, user_id: str, history: int) -> list[dict[str, Any]]:
        """Record ``user_id`` as a member; return the newest ``history`` messages, newest first."""

    def leave(self, room_id: str, user_id: str) -> None:
        """``user_id`` is no longer a member (no more offline notifications)."""

    def append(
        self,
        room_id: str,
        message: dict[str, Any],
        client_id: str | None,
        notification: dict[str, Any],
        log: ScriptLog | None = None,
    ) -> AppendResult:
        """Store once per ``client_id`` (5 minutes); queue the job that stores ``notification`` for the
        room's offline members and, given ``log``, log the message's broadcast for recovery (and publish it),
        all in the same round trip. A store that cannot log returns no ``offset``: the caller broadcasts.

        A retry of a message marked by :meth:`mark_unsent` takes the mark and gets the message back as
        ``resend``: one of several concurrent retries sends it.
        """

    def mark_unsent(self, room_id: str, sender_id: str, client_id: str, message_id: str, unsent: Unsent) -> None:
        """Remember that message ``message_id``, stored for ``client_id``, did not reach the room."""

    def history(self, room_id: str, before: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        """Messages older than ``before``, newest first, and the cursor for the next page."""


def _page(entries: list[tuple[str, dict[str, Any]]], limit: int) -> tuple[list[dict[str, Any]], str | None]:
    messages = [{**message, "id": entry_id} for entry_id, message in entries]
    cursor = messages[-1]["id"] if messages and len(messages) == limit else None
    return messages, cursor


class RedisChatStore:
    """``{prefix}chat:{roomId}`` streams capped near ``max_len``; members in ``group-members:{roomId}``;
    offline-member jobs on ``chat-offline-jobs``, capped near ``jobs_max_len``."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        scripts: ScriptSet,
        max_len: int,
        jobs_max_len: int,
        clock: Callable[[], float],
    ) -> None:
        self._redis = client
        self._keys = keys
        self._max_len = max_len
        self._jobs_max_len = jobs_max_len
        self._clock = clock
        self._append = scripts.load("chat_append", "recovery_fn")

    def join(self, room_id: str, user_id: str, history: int) -> list[dict[str, Any]]:
        pipe = self._redis.pipeline(transaction=False)
        pipe.sadd(self._keys.group_members(room_id), user_id)
        # A new member may be offline: the room is no longer known to be complete (lua/chat_append.lua).
        pipe.delete(self._keys.room_complete(f"group:{room_id}"))
        if history <= 0:
            pipe.execute()
            return []
        pipe.xrevrange(self._keys.chat_stream(room_id), count=history)
        _, _, entries = pipe.execute()
        return _page(self._decode(entries), history)[0]

    def leave(self, room_id: str, user_id: str) -> None:
        self._redis.srem(self._keys.group_members(room_id), user_id)

    def append(
        self,
        room_id: str,
        message: dict[str, Any],
        client_id: str | None,
        notification: dict[str, Any],
        log: ScriptLog | None = None,
    ) -> AppendResult:
        sender = message["senderId"]
        keys = [
            self._keys.chat_stream(room_id),
            self._keys.chat_dedup(room_id, sender, client_id or ""),
            self._keys.chat_offline_jobs,
            self._keys.group_members(room_id),
            self._keys.room_users(f"group:{room_id}"),
            self._keys.room_complete(f"group:{room_id}"),
        ]
        args = [
            sender, client_id or "", DEDUP_SECONDS, json_text.dumps(message), self._max_len,
            self._clock(), json_text.dumps(notification), room_id, self._jobs_max_len,
            COMPLETE_SECONDS,
        ]
        if log is not None:
            keys += [log.key, log.last_key]
            args += log.args
        duplicate, message_id, unsent, stored, offset, after = self._append(keys=keys, args=args)
        if not unsent:
            return AppendResult(id=message_id, duplicate=bool(duplicate), offset=offset or None, after=after or None)
        resend = {**json.loads(stored), "id": message_id}
        return AppendResult(id=message_id, duplicate=True, resend=resend, unsent=Unsent(unsent))

    def mark_unsent(self, room_id: str, sender_id: str, client_id: str, message_id: str, unsent: Unsent) -> None:
        # XX: a mark never revives an expired entry (the retry would then store the message a second time).
        self._redis.set(
            self._keys.chat_dedup(room_id, sender_id, client_id), f"{message_id}|{unsent}", xx=True, keepttl=True
        )

    def history(self, room_id: str, before: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        if before is not None:
            before = str(StreamId.parse(before))
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

    def __init__(self, max_len: int, jobs: MemoryOfflineJobs, clock: Callable[[], float] = time.time) -> None:
        self._max_len = max_len
        self._jobs = jobs
        self._clock = clock
        self._rooms: dict[str, deque[tuple[str, dict[str, Any]]]] = {}
        self._members: dict[str, set[str]] = {}
        #: (room, sender, clientId) → (message id, expiry, what it still needs when its fan-out failed).
        self._dedup: dict[tuple[str, str, str], tuple[str, float, Unsent | None]] = {}
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
        self,
        room_id: str,
        message: dict[str, Any],
        client_id: str | None,
        notification: dict[str, Any],
        log: ScriptLog | None = None,
    ) -> AppendResult:
        now = self._clock()
        key = (room_id, message["senderId"], client_id or "")
        if client_id:
            self._dedup = {k: v for k, v in self._dedup.items() if v[1] > now}
            if key in self._dedup:
                return self._retry(room_id, key)
        message_id = self._next_id()
        self._rooms.setdefault(room_id, deque(maxlen=self._max_len)).append((message_id, dict(message)))
        if client_id:
            self._dedup[key] = (message_id, now + DEDUP_SECONDS, None)
        job = OfflineJob(message_id, room_id, message_id, message["senderId"], now, notification)
        self._jobs.put(job, self._members.setdefault(room_id, set()))
        return AppendResult(id=message_id, duplicate=False)

    def _retry(self, room_id: str, key: tuple[str, str, str]) -> AppendResult:
        message_id, expires, unsent = self._dedup[key]
        if unsent is None:
            return AppendResult(id=message_id, duplicate=True)
        self._dedup[key] = (message_id, expires, None)
        for entry_id, stored in self._rooms.get(room_id, ()):
            if entry_id == message_id:
                return AppendResult(id=message_id, duplicate=True, resend={**stored, "id": message_id}, unsent=unsent)
        return AppendResult(id=message_id, duplicate=True)

    def mark_unsent(self, room_id: str, sender_id: str, client_id: str, message_id: str, unsent: Unsent) -> None:
        key = (room_id, sender_id, client_id)
        entry = self._dedup.get(key)
        if entry is not None and entry[0] == message_id and entry[1] > self._clock():
            self._dedup[key] = (message_id, entry[1], unsent)

    def history(self, room_id: str, before: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        newest_first = reversed(self._rooms.get(room_id, ()))
        if before:
            newest_first = (e for e in newest_first if StreamId.parse(e[0]) < StreamId.parse(before))
        return _page(list(itertools.islice(newest_first, limit)), limit)

