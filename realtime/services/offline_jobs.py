"""The background worker that does chat messages' offline-member jobs in every worker process: notifications
stored for members with no live socket, then handed to the push hooks, off the message path."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import gevent
import redis

from realtime.stores.offline_jobs import Backlog, OfflineJob, OfflineJobQueue

logger = logging.getLogger(__name__)

#: Jobs taken per read: one read, one member look-up and one pipeline of checks serve them all.
BATCH = 64
#: Seconds a read waits for a job before the loop looks for stale jobs again.
BLOCK = 2.0
#: Back-off after a failure, doubling up to the maximum (seconds).
BACKOFF_START = 0.5
BACKOFF_MAX = 10.0
#: A dead worker's consumer entry is dropped once idle this many times ``claim_after`` with nothing pending.
FORGET_AFTER_CLAIMS = 20
#: Seconds the loop lets jobs gather after a read that was not full: a batch then shares one read, one
#: acknowledgement and one candidate look-up per room, instead of a round of each per message.
GATHER = 0.25

PushHook = Callable[[list[str], dict[str, Any]], None]


class OfflineJobWorker:
    """Consumes the offline-job queue in one greenlet: claims stale jobs (a dead worker's), takes new ones,
    does them in batches, pushes, acknowledges. Catches, logs, backs off and keeps running.

    :param push_hooks: the live list of push hooks (hooks registered later are called too).
    :param claim_after: seconds after which a job taken but not acknowledged is taken over.
    """

    def __init__(self, queue: OfflineJobQueue, push_hooks: list[PushHook], claim_after: float) -> None:
        self.queue = queue
        self._push_hooks = push_hooks
        self._claim_after = claim_after
        self._greenlet: gevent.Greenlet | None = None
        #: Jobs done since start (observability; the backlog says what is left).
        self.done = 0

    @property
    def greenlet(self) -> gevent.Greenlet | None:
        """The consuming greenlet while it runs."""
        return self._greenlet

    def start(self) -> None:
        """Start consuming (idempotent)."""
        if self._greenlet is None or self._greenlet.dead:
            self._greenlet = gevent.spawn(self._run_forever)

    def stop(self) -> None:
        """Stop consuming; jobs taken and not finished are claimed by another worker after ``claim_after``.

        Waits (≤ 1 s) for the greenlet to exit: a read still blocked in Redis would take the next job for
        this consumer, which would then wait ``claim_after`` to be done.
        """
        if self._greenlet is not None:
            self._greenlet.kill(block=True, timeout=1)
            self._greenlet = None

    def backlog(self) -> Backlog:
        """How far the consumers are behind (for ``/readyz`` details or metrics; one Redis round trip)."""
        return self.queue.backlog()

    def run_once(self, block: float = BLOCK, claim: bool = True) -> int:
        """Claim stale jobs (when ``claim``), else take new ones (waiting at most ``block`` seconds); do them;
        return how many."""
        jobs = self.queue.claim_stale(BATCH) if claim else []
        if jobs:
            logger.warning("offline jobs: took over %d job(s) left unacknowledged by a worker", len(jobs))
        else:
            jobs = self.queue.take(BATCH, block)
        if jobs:
            self._do(jobs)
        return len(jobs)

    def _do(self, jobs: Sequence[OfflineJob]) -> None:
        notified = self.queue.notify(jobs)
        for job, user_ids in zip(jobs, notified, strict=True):
            if user_ids:
                self._push(user_ids, job.notification())
        self.queue.ack(jobs)
        self.done += len(jobs)

    def _push(self, user_ids: list[str], notification: dict[str, Any]) -> None:
        for hook in list(self._push_hooks):
            try:
                hook(user_ids, notification)
            except Exception:
                # A push service failing must not hold the notifications of everyone else.
                logger.exception("push hook failed for a chat notification")

    def _run_forever(self) -> None:
        backoff = BACKOFF_START
        rounds = 0
        claimed_at = 0.0
        while True:
            try:
                # Stale jobs (a dead worker's) are looked for a few times per claim_after, not on every read.
                claim = time.monotonic() - claimed_at >= self._claim_after / 4
                if claim:
                    claimed_at = time.monotonic()
                done = self.run_once(claim=claim)
                if 0 < done < BATCH:
                    gevent.sleep(GATHER)
                rounds += 1
                if rounds % FORGET_AFTER_CLAIMS == 0:
                    self._forget_idle_consumers()
                backoff = BACKOFF_START
            except gevent.GreenletExit:
                raise
            except redis.RedisError as exc:
                logger.warning("offline jobs: Redis unavailable (%s); retrying in %.1fs", type(exc).__name__, backoff)
                gevent.sleep(backoff)
                backoff = min(BACKOFF_MAX, backoff * 2)
            except Exception:
                logger.exception("offline jobs: a batch failed; retrying in %.1fs", backoff)
                gevent.sleep(backoff)
                backoff = min(BACKOFF_MAX, backoff * 2)

    def _forget_idle_consumers(self) -> None:
        forget = getattr(self.queue, "forget_idle_consumers", None)
        if forget is not None:
            gone = forget(FORGET_AFTER_CLAIMS * self._claim_after)
            if gone:
                logger.info("offline jobs: dropped %d idle consumer(s) of workers that are gone", gone)
