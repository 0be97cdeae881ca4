"""Connection-state recovery: a log of broadcast packets with offsets, and per-socket recovery records.

Compatible with the stock socket.io-client (≥ 4.6): every broadcast carries its offset as the last
argument; a reconnecting client sends ``{pid, offset}`` in its auth; a recovered socket gets its old sid and
pid back, its rooms, and every packet after the offset addressed to them, in order and once. The Redis
transport keeps packets in one stream per namespace (trimmed by RECOVERY_WINDOW and RECOVERY_MAX_PACKETS)
and records in keys that expire with the window, so recovery works on any worker, even after the original
worker is gone. The in-memory transport does the same inside one process.
"""
from __future__ import annotations

import itertools
import json
import secrets
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis

from realtime.identifiers import stream_id_before
from realtime.stores.recovery_packets import IdPacket, LoggedPacket, ReplayPacket, ScriptLog
from realtime.stores.redis.keys import Keys
from realtime.stores.redis.scripts import ScriptSet
from realtime.stores.sessions import SessionCheck, SessionStore

NAMESPACE = "/"


def new_pid() -> str:
    """A private session id for recovery (never shared with other clients)."""
    return secrets.token_urlsafe(16)


@dataclass(frozen=True)
class RecoveryRecord:
    """What a disconnected socket was."""

    sid: str
    pid: str
    user_id: str
    session_id: str
    rooms: list[str]
    last_offset: str = "0-0"

    def to_json(self) -> str:
        """The stored shape (``lastOffset`` is added by the store)."""
        return json.dumps(
            {"sid": self.sid, "pid": self.pid, "userId": self.user_id, "sessionId": self.session_id, "rooms": self.rooms}
        )


@dataclass(frozen=True)
class Restore:
    """The outcome of a recovery attempt: the session check, and the plan when recoverable."""

    check: SessionCheck
    status: str
    record: RecoveryRecord | None = None
    packets: list[ReplayPacket] = field(default_factory=list)

    @property
    def recovered(self) -> bool:
        return self.status == "ok" and self.record is not None


class RecoveryStore(Protocol):
    """Where broadcast packets and recovery records live."""

    def append(self, packets: Sequence[LoggedPacket], channel: str | None) -> list[str]:
        """Log packets (and publish them on ``channel`` with their offsets); return the offsets."""

    def log_in_script(self, packet: IdPacket, channel: str | None) -> ScriptLog | None:
        """What another store's script needs to log ``packet`` (and publish it on ``channel``) in its own
        round trip; None when this store cannot."""

    def save(self, records: Sequence[RecoveryRecord]) -> None:
        """Keep disconnected sockets' records for the recovery window (one round trip)."""

    def restore(
        self, pid: str, offset: str | None, user_id: str, session_id: str, want_profile: bool
    ) -> Restore:
        """Check the session, claim the record of ``pid`` and read the packets it missed (all or nothing).

        Only the record's own session (same user and same session id) claims it; a revoked session
        (``revoked``) or anyone else's claim (``mismatch``) leaves the record untouched for its owner.
        """

    def since(self, offset: str) -> list[ReplayPacket]:
        """Packets logged after ``offset`` (to close the gap while a recovered socket re-enters its rooms)."""


def _packets(rows: list[Any]) -> list[ReplayPacket]:
    return [
        ReplayPacket(offset=row[0], event=row[1], room=row[2], skip_sid=row[3] or None, payload=json.loads(row[4]))
        for row in rows
    ]


def _record(raw: str) -> RecoveryRecord:
    data = json.loads(raw)
    rooms = data.get("rooms") or []
    return RecoveryRecord(
        sid=data["sid"],
        pid=data["pid"],
        user_id=data["userId"],
        session_id=data["sessionId"],
        rooms=list(rooms) if isinstance(rooms, list) else [],
        last_offset=data.get("lastOffset", "0-0"),
    )


class RedisRecoveryStore:
    """The cluster transport (``lua/recovery_*.lua``)."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        scripts: ScriptSet,
        window: float,
        max_packets: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = client
        self._keys = keys
        self._window = window
        self._max = max_packets
        self._clock = clock
        self._stream = keys.recovery_stream(NAMESPACE)
        self._last = keys.recovery_last(NAMESPACE)
        self._append = scripts.load("recovery_append", "recovery_fn")
        self._save = scripts.load("recovery_save")
        self._restore = scripts.load("recovery_restore")

    def append(self, packets: Sequence[LoggedPacket], channel: str | None) -> list[str]:
        if not packets:
            return []
        args: list[Any] = [self._max, self._min_id(), channel or ""]
        for p in packets:
            args += [p.event, p.room, p.skip_sid or "", p.payload_json, p.envelope_head, p.envelope_tail]
        return [str(offset) for offset in self._append(keys=[self._stream, self._last], args=args)]

    def log_in_script(self, packet: IdPacket, channel: str | None) -> ScriptLog:
        p = packet
        return ScriptLog(
            key=self._stream,
            last_key=self._last,
            args=[
                self._max, self._min_id(), channel or "", p.event, p.room, p.skip_sid or "", p.payload_head,
                p.payload_tail, p.envelope_head, p.envelope_middle, p.envelope_tail,
            ],
        )

    def _min_id(self) -> str:
        return f"{int((self._clock() - self._window) * 1000)}-0"

    def save(self, records: Sequence[RecoveryRecord]) -> None:
        if not records:
            return
        keys = [self._stream, *(self._keys.recovery_session(record.pid) for record in records)]
        self._save(keys=keys, args=[max(1, int(self._window)), *(record.to_json() for record in records)])

    def restore(
        self, pid: str, offset: str | None, user_id: str, session_id: str, want_profile: bool
    ) -> Restore:
        owner, flat, status, raw, rows = self._restore(
            keys=[self._keys.session(session_id), self._keys.user(user_id), self._keys.recovery_session(pid), self._stream],
            args=[user_id, session_id, "1" if want_profile else "0", offset or "", self._max],
        )
        fields = dict(zip(flat[::2], flat[1::2], strict=True))
        check = SessionCheck.of_stored(owner or None, user_id, fields if want_profile else None)
        if status != "ok":
            return Restore(check=check, status=status)
        return Restore(check=check, status=status, record=_record(raw), packets=_packets(rows))

    def since(self, offset: str) -> list[ReplayPacket]:
        rows = self._redis.xrange(self._stream, min=f"({offset}", max="+", count=self._max)
        return [
            ReplayPacket(offset=i, event=f["e"], room=f["r"], skip_sid=f.get("s") or None, payload=json.loads(f["d"]))
            for i, f in rows
        ]


class MemoryRecoveryStore:
    """The embedded default: a bounded deque of packets and expiring records, in this process."""

    def __init__(
        self,
        window: float,
        max_packets: int,
        sessions: SessionStore,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sessions = sessions
        self._window = window
        self._max = max_packets
        self._clock = clock
        self._log: deque[tuple[float, ReplayPacket]] = deque()
        self._trimmed_up_to = "0-0"
        self._records: dict[str, tuple[float, RecoveryRecord]] = {}
        self._last_ms = 0
        self._seq = itertools.count()

    def _next_offset(self) -> str:
        ms = int(self._clock() * 1000)
        if ms > self._last_ms:
            self._last_ms, self._seq = ms, itertools.count()
        return f"{self._last_ms}-{next(self._seq)}"

    def _trim(self) -> None:
        horizon = self._clock() - self._window
        while self._log and (len(self._log) > self._max or self._log[0][0] < horizon):
            self._trimmed_up_to = self._log.popleft()[1].offset

    def append(self, packets: Sequence[LoggedPacket], channel: str | None) -> list[str]:
        offsets = []
        for p in packets:
            offset = self._next_offset()
            packet = ReplayPacket(offset, p.event, p.room, p.skip_sid, json.loads(p.payload_json))
            self._log.append((self._clock(), packet))
            offsets.append(offset)
        self._trim()
        return offsets

    def log_in_script(self, packet: IdPacket, channel: str | None) -> None:
        return None

    def save(self, records: Sequence[RecoveryRecord]) -> None:
        last = self._log[-1][1].offset if self._log else self._trimmed_up_to
        for record in records:
            self._records[record.pid] = (
                self._clock() + self._window,
                RecoveryRecord(record.sid, record.pid, record.user_id, record.session_id, record.rooms, last),
            )

    def restore(
        self, pid: str, offset: str | None, user_id: str, session_id: str, want_profile: bool
    ) -> Restore:
        check = self._sessions.check(session_id, user_id, want_profile=True)
        if not check.valid:
            return Restore(check=check, status="revoked")
        entry = self._records.get(pid)
        if entry is None or entry[0] < self._clock():
            self._records.pop(pid, None)
            return Restore(check=check, status="missing")
        record = entry[1]
        if record.user_id != user_id or record.session_id != session_id:
            # Ownership first: anyone else's claim leaves the record to its owner.
            return Restore(check=check, status="mismatch")
        del self._records[pid]
        start = offset or record.last_offset
        self._trim()
        if stream_id_before(start, self._trimmed_up_to):
            return Restore(check=check, status="gap")
        packets = self.since(start)
        if len(packets) > self._max:
            return Restore(check=check, status="overflow")
        return Restore(check=check, status="ok", record=record, packets=packets)

    def since(self, offset: str) -> list[ReplayPacket]:
        return [packet for _, packet in self._log if stream_id_before(offset, packet.offset)]

