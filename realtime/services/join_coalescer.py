"""Join and leave announcements that cannot go quadratic: per worker and room, at most one per window.

Each join announced to a room of N members costs N deliveries, so N joins cost N²: a reconnect storm or a
party going live became minutes of backlog, then ping timeouts. A room of at most :data:`SMALL_ROOM` users
hears every change at once (each costs at most that many deliveries), and so does a bigger room that was
quiet for a window, as its own ``chat:user_joined`` / ``chat:user_left``; the changes that follow within
the window are held and leave together when it ends, as one ``chat:members_changed`` listing at most
:data:`MAX_IDS` users each way plus counts of the rest, and the room's size in users. Bounded: at most
:data:`MAX_ROOMS` rooms are held (past it a change is announced at once, as before), and the flusher catches,
logs and goes on (an announcement lost is no worse than a late one; membership itself is unaffected).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gevent

from realtime.fanout.broadcaster import Outgoing

logger = logging.getLogger(__name__)

#: Seconds per room and worker between two announcements.
WINDOW = 0.5
#: User ids listed per direction in one ``chat:members_changed`` (the rest are counted).
MAX_IDS = 50
#: Rooms held at once per worker.
MAX_ROOMS = 10_000
#: Rooms of at most this many users are never held: an announcement there costs little.
SMALL_ROOM = 16


@dataclass
class _Held:
    """The changes of one room waiting for the end of its window (a user who came back cancels out)."""

    room_id: str
    due: float
    users: int
    timestamp: str
    joined: dict[str, None] = field(default_factory=dict)
    left: dict[str, None] = field(default_factory=dict)
    more_joined: int = 0
    more_left: int = 0

    def add(self, user_id: str, joined: bool, users: int, timestamp: str) -> None:
        same, other = (self.joined, self.left) if joined else (self.left, self.joined)
        self.users, self.timestamp = users, timestamp
        if user_id in other:
            del other[user_id]
        elif len(same) < MAX_IDS:
            same[user_id] = None
        elif joined:
            self.more_joined += 1
        else:
            self.more_left += 1

    def payload(self) -> dict[str, Any]:
        return {
            "roomId": self.room_id,
            "joined": list(self.joined),
            "left": list(self.left),
            "moreJoined": self.more_joined,
            "moreLeft": self.more_left,
            "users": self.users,
            "timestamp": self.timestamp,
        }


class JoinCoalescer:
    """Decides, per change, whether it is announced now or with the room's next batch.

    :param send: broadcasts a batch of events (``Broadcaster.emit_many``), called by the flusher greenlet.
    :param prefix: the room prefix of the rooms held (``group:``), stripped to make the ``roomId``.
    """

    def __init__(
        self,
        send: Callable[[list[Outgoing]], None],
        prefix: str = "group:",
        window: float = WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._send = send
        self._prefix = prefix
        self._window = window
        self._clock = clock
        #: room → when its last announcement left (rooms quiet for a window are pruned).
        self._last: dict[str, float] = {}
        self._held: dict[str, _Held] = {}
        self._flusher: gevent.Greenlet | None = None

    @property
    def held_rooms(self) -> int:
        """Rooms with changes waiting for their window to end."""
        return len(self._held)

    def change(
        self, room: str, user_id: str, joined: bool, users: int, timestamp: str, skip_sid: str | None = None
    ) -> Outgoing | None:
        """A user's first socket joined (``joined``) or last socket left ``room``, which now has ``users``.

        Returns the per-user event to send now when the room is small or was quiet for a window; otherwise
        holds the change for the room's next ``chat:members_changed`` and returns None. Once a room is held,
        its changes stay in order: they join the held batch until it leaves, whatever the room's size.
        """
        now = self._clock()
        held = self._held.get(room)
        if held is not None:
            held.add(user_id, joined, users, timestamp)
            return None
        last = self._last.get(room)
        if users <= SMALL_ROOM or last is None or now - last >= self._window or len(self._held) >= MAX_ROOMS:
            if users > SMALL_ROOM:
                self._remember(room, now)
            event = "chat:user_joined" if joined else "chat:user_left"
            payload = {"userId": user_id, "roomId": room[len(self._prefix):], "timestamp": timestamp}
            return Outgoing(event, payload, room, skip_sid=skip_sid if joined else None)
        held = self._held[room] = _Held(room[len(self._prefix):], last + self._window, users, timestamp)
        held.add(user_id, joined, users, timestamp)
        self._ensure_flusher()
        return None

    def flush(self, everything: bool = False) -> list[Outgoing]:
        """The batches whose window has ended (all of them with ``everything``), removed from the held ones."""
        now = self._clock()
        due = [room for room, held in self._held.items() if everything or held.due <= now]
        batches = []
        for room in due:
            held = self._held.pop(room)
            if held.joined or held.left or held.more_joined or held.more_left:
                batches.append(Outgoing("chat:members_changed", held.payload(), room))
                self._last[room] = now
        return batches

    def _remember(self, room: str, now: float) -> None:
        if len(self._last) >= 2 * MAX_ROOMS:
            # Rooms quiet for a window need no entry: a change there is announced at once anyway.
            self._last = {r: t for r, t in self._last.items() if now - t < self._window or r in self._held}
        if len(self._last) < 2 * MAX_ROOMS:
            self._last[room] = now

    def _ensure_flusher(self) -> None:
        if self._flusher is None or self._flusher.dead:
            self._flusher = gevent.spawn(self._flush_while_held)

    def _flush_while_held(self) -> None:
        while self._held:
            next_due = min(held.due for held in self._held.values())
            gevent.sleep(max(0.0, next_due - self._clock()))
            batches = self.flush()
            if not batches:
                continue
            try:
                self._send(batches)
            except Exception:
                logger.exception("could not announce %d coalesced membership change(s)", len(batches))
