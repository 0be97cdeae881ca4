"""Script calls made while every lane is busy go to Redis together, in one write (group commit).

Up to ``lanes`` round trips are in flight at once, each on a pooled connection, as before: at the usual
concurrency (a chat message's script) a call is written at once. A call made while all lanes are busy
waits in a queue; when a lane's round trip ends, everything queued then (up to ``MAX_BATCH`` calls) becomes
that lane's next round trip: one write, the replies read in order, each handed to its caller. The first
waiter of that batch runs it (no extra greenlet), and the caller whose round trip just ended returns at
once. A reconnect storm's hundreds of connect scripts then cost the worker a few writes, reads and hub
wake-ups instead of one of each per socket, and Redis reads them in a few calls.

Each call still counts as one round trip of its event (:mod:`realtime.metrics.round_trips`): the runner's
write counts for it, every other caller of the batch counts its own.

A batch is retried as a redis-py pipeline is: when the connection fails before every reply is read, it is
dropped and the whole batch is written again on a new one (the connection's retry policy). An error reply
(``NOSCRIPT``, a script error) goes to its own caller only. While Redis does not answer, a queued call waits
for the round trip ahead of it and then for its own: up to twice the client's socket timeout (5 s,
:func:`~realtime.stores.redis.client.connect_redis`), where a call on its own connection waited once.
"""
from __future__ import annotations

from collections import deque
from typing import Any

import gevent
import redis
from gevent.event import Event
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from realtime.metrics.round_trips import bump

#: Round trips in flight at once before calls start to wait and group.
LANES = 4
#: Calls written in one round trip at most.
MAX_BATCH = 128


class _Call:
    """One queued call: its packed command, then its reply or error; ``batch`` when its caller must run one."""

    __slots__ = ("answered", "batch", "command", "done", "error", "reply")

    def __init__(self, command: bytes, done: Event | None = None) -> None:
        self.command = command
        self.answered = False
        self.reply: Any = None
        self.error: BaseException | None = None
        #: Set when a queued call's reply is in, or when its caller must run ``batch`` (None for a call that
        #: is written at once: nobody waits for it).
        self.done = done
        self.batch: list[_Call] | None = None

    def wake(self) -> None:
        """Wake the caller waiting for this call."""
        if self.done is not None:
            self.done.set()

    def result(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.reply


class GroupedCalls:
    """Round trips to ``client``'s Redis for packed commands, grouped when every lane is busy (module doc)."""

    def __init__(self, client: redis.Redis, lanes: int = LANES, max_batch: int = MAX_BATCH) -> None:
        self._pool = client.connection_pool
        self._free = lanes
        self._max_batch = max_batch
        self._queue: deque[_Call] = deque()

    def call(self, command: bytes) -> Any:
        """Send ``command`` (one packed command) and return its reply; an error reply is raised."""
        if self._free > 0:
            self._free -= 1
            call = _Call(command)
            self._run([call])
            return call.result()
        done = Event()
        call = _Call(command, done)
        self._queue.append(call)
        try:
            done.wait()
        except BaseException:
            self._abandon(call)
            raise
        if call.batch is not None:
            self._run(call.batch)
        else:
            bump()
        return call.result()

    def _abandon(self, call: _Call) -> None:
        """``call``'s caller stopped waiting (killed, timed out): its command is not sent, or, if it was to run
        a batch, another greenlet runs it so that the batch's other callers get their replies."""
        if call.batch is not None:
            gevent.spawn(self._run, call.batch)
            return
        try:
            self._queue.remove(call)
        except ValueError:
            pass

    def _run(self, batch: list[_Call]) -> None:
        """Write ``batch`` on one connection, hand out its replies, then pass the lane on."""
        try:
            self._round_trip(batch)
        except BaseException as exc:
            failure = exc if isinstance(exc, Exception) else RedisConnectionError("the round trip was interrupted")
            for call in batch:
                if not call.answered:
                    call.error = failure
            raise
        finally:
            self._pass_lane()
            for call in batch[1:]:
                call.wake()

    def _round_trip(self, batch: list[_Call]) -> None:
        pool = self._pool
        conn = pool.get_connection()
        try:
            conn.retry.call_with_retry(lambda: _send_and_read(conn, batch), lambda _error: conn.disconnect())
        finally:
            pool.release(conn)

    def _pass_lane(self) -> None:
        """Give this lane to the queued calls (their first caller runs them), or free it."""
        queue = self._queue
        if not queue:
            self._free += 1
            return
        size = min(len(queue), self._max_batch)
        batch = [queue.popleft() for _ in range(size)]
        batch[0].batch = batch
        batch[0].wake()


def _send_and_read(conn: Any, batch: list[_Call]) -> None:
    conn.send_packed_command((batch[0].command if len(batch) == 1 else b"".join(c.command for c in batch),))
    for call in batch:
        call.answered = False
    for call in batch:
        try:
            call.reply, call.error = conn.read_response(), None
        except ResponseError as exc:
            call.reply, call.error = None, exc
        call.answered = True
