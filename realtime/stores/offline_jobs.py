"""Offline-member jobs of chat messages: a bounded queue the message path appends one small job to, and the
per-member work each job stands for (who has no live socket, storing their notification).

Finding a room's offline members is O(room size); doing it for every message inside the append made a
message cost more in bigger rooms. The append queues a job instead (room, message id, sender, time and the
notification); every worker consumes the queue in the background (:mod:`realtime.services.offline_jobs`).
One interface, two transports: a Redis Streams consumer group (at-least-once: a job a dead worker read is
claimed by another after ``claim_after``), or an in-process deque for the embedded default.
"""
from __future__ import annotations

import json
import os
import secrets
import socket
import time
from collections import deque
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import gevent
import redis
from gevent.event import Event

from realtime.stores.notifications import MemoryNotificationStore
from realtime.stores.presence import MemoryPresenceStore
from realtime.stores.redis.keys import Keys
from realtime.stores.redis.scripts import ScriptSet

#: At most this many members of a room are checked per message (as many as before the queue).
MAX_NOTIFIED_MEMBERS = 1000
#: Members checked per script call: Redis serves other clients between batches.
MEMBER_BATCH = 100
#: The consumer group every worker reads the job stream in.
GROUP = "offline-notify"
#: The Socket.IO room of a chat room (its users are in ``room-users:group:{roomId}``).
CHAT_ROOM_PREFIX = "group:"
#: A job younger than this (seconds) checks only the likely offline members: connect.lua keeps a minute of
#: new sockets in ``recent-connects``; an older job checks every member.
RECENT_TRUSTED = 30.0


@dataclass(frozen=True)
class OfflineJob:
    """One stored message whose room's offline members still need its notification.

    :param entry_id: the job's id in the queue (what :meth:`OfflineJobQueue.ack` takes).
    :param at: the message's time (unix seconds): members with a socket alive then are online.
    :param template: the notification without ``id`` and ``data.messageId``.
    """

    entry_id: str
    room_id: str
    message_id: str
    sender: str
    at: float
    template: dict[str, Any]

    def notification(self) -> dict[str, Any]:
        """The notification as stored and pushed: ``chat-{messageId}``, with the message id in its data."""
        data = {**(self.template.get("data") or {}), "messageId": self.message_id}
        return {**self.template, "id": f"chat-{self.message_id}", "data": data}


@dataclass(frozen=True)
class Backlog:
    """How far the consumers are behind: jobs not yet read by any worker (``lag``), read but not yet
    acknowledged (``pending``), and jobs lost to the queue's cap since start (memory transport only)."""

    lag: int
    pending: int
    dropped: int = 0

    def to_dict(self) -> dict[str, int]:
        """The figures as a JSON-ready dict."""
        return asdict(self)


class OfflineJobQueue(Protocol):
    """The queue of offline-member jobs, seen from the worker that consumes it."""

    def take(self, count: int, block: float) -> list[OfflineJob]:
        """Up to ``count`` new jobs for this worker, waiting at most ``block`` seconds for one."""

    def claim_stale(self, count: int) -> list[OfflineJob]:
        """Up to ``count`` jobs another worker took and has not acknowledged for too long (it died)."""

    def notify(self, jobs: Sequence[OfflineJob]) -> list[list[str]]:
        """Do ``jobs``: store each notification for the room's offline members; return them per job."""

    def ack(self, jobs: Sequence[OfflineJob]) -> None:
        """The jobs are done."""

    def backlog(self) -> Backlog:
        """How far the consumers are behind."""


class RedisOfflineJobs:
    """The capped job stream ``{prefix}chat-offline-jobs``, read by the group ``offline-notify`` (a consumer per worker)."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        scripts: ScriptSet,
        cap: int,
        claim_after: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = client
        self._keys = keys
        self._cap = cap
        self._clock = clock
        self._stream = keys.chat_offline_jobs
        self._claim_after_ms = max(1, int(claim_after * 1000))
        self._candidates = scripts.load("chat_offline_candidates")
        self._notify = scripts.load("chat_offline", "notify_fn")
        self._consumer: str | None = None

    @property
    def consumer(self) -> str:
        """This worker's consumer name, chosen in the worker (after gunicorn forked it)."""
        if self._consumer is None:
            self.ensure_group()
            name = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
            # Listed at once (XINFO CONSUMERS), not only once a read of it was served.
            self._redis.xgroup_createconsumer(self._stream, GROUP, name)
            self._consumer = name
        return self._consumer

    def ensure_group(self) -> None:
        """Create the stream and its group if missing, from the stream's start (jobs queued before count)."""
        try:
            self._redis.xgroup_create(self._stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def take(self, count: int, block: float) -> list[OfflineJob]:
        reply = self._with_group(
            lambda: self._redis.xreadgroup(
                GROUP, self.consumer, {self._stream: ">"}, count=count, block=max(1, int(block * 1000))
            )
        )
        return [job for _, entries in reply or () for job in self._decode(entries)]

    def claim_stale(self, count: int) -> list[OfflineJob]:
        reply = self._with_group(
            lambda: self._redis.xautoclaim(self._stream, GROUP, self.consumer, self._claim_after_ms, "0-0", count=count)
        )
        return self._decode(reply[1])

    def _with_group(self, command: Callable[[], Any]) -> Any:
        """Run ``command``; when Redis lost the stream or its group (a flush, a failover), create it again."""
        try:
            return command()
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self.ensure_group()
            return command()

    def notify(self, jobs: Sequence[OfflineJob]) -> list[list[str]]:
        if not jobs:
            return []
        now = self._clock()
        # Jobs of one room share one look-up, made for the earliest of their times: its candidates include
        # every later job's (recent connects since an earlier time are a superset); chat_offline.lua then
        # checks each member at each job's own time.
        groups: dict[tuple[str, bool], float] = {}
        for job in jobs:
            group = (job.room_id, now - job.at < RECENT_TRUSTED)
            groups[group] = min(job.at, groups.get(group, job.at))
        pipe = self._redis.pipeline(transaction=False)
        for (room_id, recent), at in groups.items():
            members_key = self._keys.group_members(room_id)
            if recent:
                room_users = self._keys.room_users(f"{CHAT_ROOM_PREFIX}{room_id}")
                keys = [members_key, room_users, self._keys.recent_connects]
                self._candidates(keys=keys, args=[self._keys.prefix, at, MAX_NOTIFIED_MEMBERS], client=pipe)
            else:
                pipe.srandmember(members_key, MAX_NOTIFIED_MEMBERS)
        by_group = dict(zip(groups, pipe.execute(), strict=True))
        candidates = [by_group[(job.room_id, now - job.at < RECENT_TRUSTED)] for job in jobs]
        pipe = self._redis.pipeline(transaction=False)
        calls: list[int] = []
        for job, members in zip(jobs, candidates, strict=True):
            others = [member for member in members if member != job.sender]
            notification = job.notification()
            body = json.dumps(notification, separators=(",", ":"))
            batches = range(0, len(others), MEMBER_BATCH)
            for first in batches:
                args = [self._keys.prefix, job.sender, job.at, notification["id"], body, self._cap]
                self._notify(args=[*args, *others[first : first + MEMBER_BATCH]], client=pipe)
            calls.append(len(batches))
        replies = iter(pipe.execute() if any(calls) else ())
        return [[member for _ in range(n) for member in next(replies)] for n in calls]

    def ack(self, jobs: Sequence[OfflineJob]) -> None:
        if jobs:
            self._redis.xack(self._stream, GROUP, *(job.entry_id for job in jobs))

    def backlog(self) -> Backlog:
        # Redis counts lag from every entry ever added, trimmed ones too: at most the stream's length waits.
        length = int(self._redis.xlen(self._stream))
        for group in self._redis.xinfo_groups(self._stream) if length else ():
            if group["name"] == GROUP:
                return Backlog(lag=min(length, int(group.get("lag") or 0)), pending=int(group["pending"]))
        return Backlog(lag=length, pending=0)

    def forget_idle_consumers(self, idle: float) -> int:
        """Drop consumers (workers gone) idle longer than ``idle`` seconds with nothing pending."""
        gone = 0
        for info in self._redis.xinfo_consumers(self._stream, GROUP):
            if info["name"] != self._consumer and info["pending"] == 0 and info["idle"] > idle * 1000:
                gone += int(self._redis.xgroup_delconsumer(self._stream, GROUP, info["name"]))
        return gone

    def _decode(self, entries: Sequence[tuple[str, dict[str, str] | None]]) -> list[OfflineJob]:
        """Jobs of stream entries; an unreadable entry is acknowledged at once, or it would be claimed forever."""
        jobs, unreadable = [], []
        for entry_id, fields in entries:
            try:
                template = json.loads(fields["n"])  # type: ignore[index]
                jobs.append(OfflineJob(entry_id, fields["r"], fields["m"], fields["s"], float(fields["t"]), template))  # type: ignore[index]
            except (KeyError, TypeError, ValueError):
                unreadable.append(entry_id)
        if unreadable:
            self._redis.xack(self._stream, GROUP, *unreadable)
        return jobs


class MemoryOfflineJobs:
    """The embedded default: a deque capped at ``max_len`` (past it the oldest job is dropped, and counted);
    a job taken and not acknowledged (its work failed) is taken again after ``claim_after``."""

    def __init__(
        self, presence: MemoryPresenceStore, notifications: MemoryNotificationStore, max_len: int, claim_after: float
    ) -> None:
        self._presence = presence
        self._notifications = notifications
        self._max_len = max_len
        self._claim_after = claim_after
        self._jobs: deque[tuple[OfflineJob, Collection[str]]] = deque()
        #: entry id → (job, the room's member set, when it was taken).
        self._pending: dict[str, tuple[OfflineJob, Collection[str], float]] = {}
        self._arrived = Event()
        self._dropped = 0

    def put(self, job: OfflineJob, members: Collection[str]) -> None:
        """Queue ``job``; ``members`` is the room's live member set (read when the job runs, not copied)."""
        if len(self._jobs) >= self._max_len:
            self._jobs.popleft()
            self._dropped += 1
        self._jobs.append((job, members))
        self._arrived.set()

    def take(self, count: int, block: float) -> list[OfflineJob]:
        if not self._jobs:
            self._arrived.clear()
            self._arrived.wait(block)
        taken = []
        now = time.monotonic()
        while self._jobs and len(taken) < count:
            job, members = self._jobs.popleft()
            self._pending[job.entry_id] = (job, members, now)
            taken.append(job)
        return taken

    def claim_stale(self, count: int) -> list[OfflineJob]:
        now = time.monotonic()
        stale = [job for job, _, taken in self._pending.values() if now - taken >= self._claim_after][:count]
        for job in stale:
            self._pending[job.entry_id] = (job, self._pending[job.entry_id][1], now)
        return stale

    def notify(self, jobs: Sequence[OfflineJob]) -> list[list[str]]:
        notified = []
        for job in jobs:
            pending = self._pending.get(job.entry_id)
            members = list(pending[1])[:MAX_NOTIFIED_MEMBERS] if pending else []
            others = [member for member in members if member != job.sender]
            offline = []
            for first in range(0, len(others), MEMBER_BATCH):
                batch = others[first : first + MEMBER_BATCH]
                online = self._presence.online_at(batch, job.at)
                offline += [member for member, is_online in zip(batch, online, strict=True) if not is_online]
                # A big room must not hold the hub: other greenlets run between batches.
                gevent.sleep(0)
            self._notifications.add(offline, job.notification())
            notified.append(offline)
        return notified

    def ack(self, jobs: Sequence[OfflineJob]) -> None:
        for job in jobs:
            self._pending.pop(job.entry_id, None)

    def backlog(self) -> Backlog:
        return Backlog(lag=len(self._jobs), pending=len(self._pending), dropped=self._dropped)
