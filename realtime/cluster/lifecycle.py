"""Per-worker background work, started lazily and drained on shutdown: the loops of the heartbeat
(:mod:`.heartbeat`), the session check (:mod:`.logouts`) and the probes (:mod:`.probes`), and the control
commands (:mod:`.logouts`, :mod:`.revalidation`)."""
from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any

import gevent
import gevent.pool

from realtime.cluster.heartbeat import Heartbeat
from realtime.cluster.logouts import SessionLogouts
from realtime.cluster.probes import QueueProbe
from realtime.cluster.revalidation import RoomRevalidation
from realtime.metrics import tally
from realtime.services.container import Services
from realtime.sockets.recovery_flow import record_for, remember
from realtime.stores.redis.checks import REFUSED_WRITE_ERRORS

logger = logging.getLogger(__name__)

DRAIN_CONCURRENCY = 200
DRAIN_BATCH = 500


def _safely(predicate: Callable[[], bool]) -> bool:
    """A predicate that raises counts as true: the drain must go on whatever happens."""
    try:
        return bool(predicate())
    except Exception:
        logger.exception("drain: could not tell whether the server stopped accepting")
        return True


class Lifecycle:
    """Started once per worker, lazily (a CLI run that builds the app spawns nothing)."""

    def __init__(self, services: Services, socketio: Any) -> None:
        self._services = services
        self._socketio = socketio
        self._started = False
        self._drained: set[str] = set()
        self._heartbeat: gevent.Greenlet | None = None
        self.logouts = SessionLogouts(services, socketio)
        self.revalidation = RoomRevalidation(services)
        self.heartbeat = Heartbeat(services)
        services.bus.subscribe(self.logouts.on_control)
        services.bus.subscribe(self.revalidation.on_room_control)
        self._probe = QueueProbe(services.broadcaster.manager)
        self._prober: gevent.Greenlet | None = None
        self._session_checker: gevent.Greenlet | None = None
        #: Latest probe results: None = nothing to probe, True = heard, False = missed.
        self.probe_results: dict[str, bool | None] = {"queue": None, "control": None}

    def ensure_started(self) -> None:
        """Start the control listener and, with Redis, the heartbeat loop."""
        if self._started:
            return
        self._started = True
        if self._services.scripts is not None:
            try:
                self._services.scripts.preload()
            except Exception:
                logger.warning("could not preload Lua scripts; they load on first use", exc_info=True)
            try:
                # Note which Redis server holds this worker's entries: a beat after a restart writes them all.
                self._services.state.touch([])
            except Exception:
                logger.warning("could not read Redis' server id; the first heartbeat writes every entry", exc_info=True)
        server = self._socketio.server
        if not server.manager_initialized:
            # python-socketio starts its queue listener at the first Engine.IO connection; start it now, so
            # a fresh worker hears cross-worker broadcasts (and its probes) before any client arrives.
            server.manager_initialized = True
            server.manager.initialize()
        self._services.bus.start()
        if self._services.offline_jobs is not None:
            self._services.offline_jobs.start()
        if self._services.redis is not None or self._services.recovery is not None:
            # With Redis: heartbeat and reaper; in memory: the reaper of parked sockets.
            self._heartbeat = gevent.spawn(self._heartbeat_forever)
        if self._services.redis is not None:
            self._prober = gevent.spawn(self._probe_forever)
        if self._services.sessions.checks_sessions:
            self._session_checker = gevent.spawn(self._check_sessions_forever)

    def stop(self) -> None:
        """Stop the heartbeat and the control listener (tests, shutdown); write the metrics still pending."""
        for greenlet in (self._heartbeat, self._prober, self._session_checker):
            if greenlet is not None:
                greenlet.kill(block=False)
        self._heartbeat = self._prober = self._session_checker = None
        if self._services.offline_jobs is not None:
            self._services.offline_jobs.stop()
        self._services.bus.stop()
        tally.flush()

    def drain(self, timeout: float, listeners_closed: Callable[[], bool] | None = None) -> int:
        """Graceful shutdown: hand every local socket over to whichever worker it reconnects to.

        1. ``/readyz`` says draining; wait (≤ 2 s) until the server stops accepting, so clients cannot
           reconnect into this dying process;
        2. keep all recovery records and park the sockets, in batches, *before* closing anything: a client
           may reconnect elsewhere within milliseconds of its transport closing;
        3. close every transport at the Engine.IO level: the client sees ``transport close`` and reconnects
           by itself (a Socket.IO DISCONNECT would be ``io server disconnect``, which it does not retry).
        Returns how many sockets were closed.
        """
        services = self._services
        services.draining = True
        started = time.monotonic()
        for greenlet in (self._heartbeat, self._prober, self._session_checker):
            if greenlet is not None:
                greenlet.kill(block=False)
        while listeners_closed is not None and not _safely(listeners_closed) and time.monotonic() - started < 2:
            gevent.sleep(0.05)
        server = self._socketio.server
        snapshot = services.connections.items()
        logger.info("draining %d socket(s) before shutdown", len(snapshot))
        records = [
            record_for(sid, identity, server.core.pids.get(sid, ""), services.rooms.rooms_of(sid))
            for sid, identity in snapshot
            if server.core.pids.get(sid)
        ]
        for first in range(0, len(records), DRAIN_BATCH):
            batch = records[first : first + DRAIN_BATCH]
            if remember(services, batch):
                self._drained.update(record.sid for record in batch)
        pool = gevent.pool.Pool(DRAIN_CONCURRENCY)
        # Every Engine.IO session, also those that have not sent their Socket.IO CONNECT yet.
        for eio_sid in list(server.eio.sockets):
            pool.spawn(self._close_transport, server, eio_sid)
        remaining = max(0.5, timeout - (time.monotonic() - started))
        if not pool.join(timeout=remaining):
            logger.warning("drain timed out with %d close(s) pending", len(pool))
        self.stop()
        logger.info("drained %d socket(s) in %.2fs", len(snapshot), time.monotonic() - started)
        return len(snapshot)

    def drained(self, sid: str) -> bool:
        """Whether ``sid`` was handed over by :meth:`drain` (its disconnect needs no further work)."""
        return sid in self._drained

    @staticmethod
    def _close_transport(server: Any, eio_sid: str) -> None:
        try:
            server.eio.disconnect(eio_sid)
        except Exception:
            logger.exception("closing a transport during drain failed")

    def revoke(self, session_id: str) -> bool:
        """Revoke a session and log out its sockets on every worker (:meth:`.SessionLogouts.revoke`)."""
        return self.logouts.revoke(session_id)

    def check_sessions(self) -> int:
        """One session check of this worker's sockets (:meth:`.SessionLogouts.check_sessions`)."""
        return self.logouts.check_sessions()

    def recheck_recovered(self, sid: str, user_id: str, rooms: list[str]) -> list[str]:
        """The rooms a recovering socket may re-enter (:meth:`.RoomRevalidation.recheck_recovered`)."""
        return self.revalidation.recheck_recovered(sid, user_id, rooms)

    def beat(self) -> int:
        """One heartbeat (:meth:`.Heartbeat.beat`); return how many sockets were reaped."""
        return self.heartbeat.beat()

    def probe(self) -> dict[str, bool | None]:
        """Probe both pub/sub listeners now (each waits up to half the probe interval)."""
        timeout = max(0.5, self._services.settings.probe_interval / 2)
        for name, run in (("queue", self._probe.run), ("control", self._services.bus.probe)):
            try:
                self.probe_results[name] = run(timeout)
            except Exception:
                logger.warning("%s probe could not be published", name, exc_info=True)
                self.probe_results[name] = False
        return dict(self.probe_results)

    def _check_sessions_forever(self) -> None:
        interval = self._services.settings.session_check_interval
        while True:
            # Jitter spreads the workers' checks over time; it only shortens the wait, so a gone session is
            # noticed within SESSION_CHECK_INTERVAL.
            gevent.sleep(interval * random.uniform(0.5, 1.0))
            try:
                self.logouts.check_sessions()
            except Exception:
                logger.exception("session check failed; retrying next interval")

    def _probe_forever(self) -> None:
        while True:
            gevent.sleep(self._services.settings.probe_interval)
            self.probe()

    def _heartbeat_forever(self) -> None:
        interval = max(0.2, self._services.settings.presence_ttl / 3)
        while True:
            gevent.sleep(interval)
            try:
                self.heartbeat.beat()
            except REFUSED_WRITE_ERRORS as exc:
                # Once per interval until an operator acts: one line, not a traceback each time.
                logger.warning("heartbeat: redis refused the write (%s); retrying next interval", type(exc).__name__)
            except Exception:
                logger.exception("heartbeat failed; retrying next interval")
