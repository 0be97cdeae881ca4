"""Per-worker background work: act on control commands, heartbeat local sockets, reap dead workers' sockets."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import gevent
import gevent.pool

from realtime.broadcaster import Outgoing
from realtime.probes import QueueProbe
from realtime.sockets.recovery_flow import record_for, remember
from realtime.socket_state import LocalSocket, ReleaseInfo

logger = logging.getLogger(__name__)

REAP_BATCH = 500
NAMESPACE = "/"
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

    def __init__(self, services: Any, socketio: Any) -> None:
        self._services = services
        self._socketio = socketio
        self._started = False
        self._drained: set[str] = set()
        self._heartbeat: gevent.Greenlet | None = None
        services.bus.subscribe(self.on_control)
        self._probe = QueueProbe(socketio, services.queue)
        self._prober: gevent.Greenlet | None = None
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
        server = self._socketio.server
        if not server.manager_initialized:
            # python-socketio starts its queue listener at the first Engine.IO connection; start it now, so
            # a fresh worker hears cross-worker broadcasts (and its probes) before any client arrives.
            server.manager_initialized = True
            server.manager.initialize()
        self._services.bus.start()
        if self._services.redis is not None or self._services.recovery is not None:
            # With Redis: heartbeat and reaper; in memory: the reaper of parked sockets.
            self._heartbeat = gevent.spawn(self._heartbeat_forever)
        if self._services.redis is not None:
            self._prober = gevent.spawn(self._probe_forever)

    def stop(self) -> None:
        """Stop the heartbeat and the control listener (tests, shutdown)."""
        for greenlet in (self._heartbeat, self._prober):
            if greenlet is not None:
                greenlet.kill(block=False)
        self._heartbeat = self._prober = None
        self._services.bus.stop()

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
        for greenlet in (self._heartbeat, self._prober):
            if greenlet is not None:
                greenlet.kill(block=False)
        while listeners_closed is not None and not _safely(listeners_closed) and time.monotonic() - started < 2:
            gevent.sleep(0.05)
        server = self._socketio.server
        snapshot = services.connections.items()
        logger.info("draining %d socket(s) before shutdown", len(snapshot))
        records = [
            record_for(sid, identity, server.pids.get(sid, ""), services.rooms.rooms_of(sid))
            for sid, identity in snapshot
            if server.pids.get(sid)
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

    def on_control(self, message: dict[str, Any]) -> None:
        """Handle a cluster command; today: log out every local socket of some sessions."""
        if message.get("op") != "logout":
            return
        sessions = message.get("sessions")
        if not isinstance(sessions, list):
            return
        targets = set(map(str, sessions))
        reason = message.get("reason") if message.get("reason") in ("duplicate_login", "revoked") else "revoked"
        for sid, identity in self._services.connections.items():
            if identity.session_id in targets:
                self._services.broadcaster.emit_local(sid, "force_logout", {"reason": reason})
                self._socketio.server.disconnect(sid, namespace=NAMESPACE, ignore_queue=True)
                logger.info("socket logged out", extra={"sid": sid, "reason": reason})

    def outgoing_for(self, infos: list[ReleaseInfo]) -> list[Outgoing]:
        """Events the features broadcast for sockets that are gone."""
        outgoing: list[Outgoing] = []
        for info in infos:
            for hook in self._services.catalog.release_hooks:
                outgoing.extend(hook(info, self._services))
        return outgoing

    def beat(self) -> int:
        """One heartbeat: refresh this worker's sockets, reap expired ones; return how many were reaped."""
        services = self._services
        local = [
            LocalSocket(sid, identity.user_id, identity.session_id, sorted(services.rooms.rooms_of(sid)))
            for sid, identity in services.connections.items()
        ]
        services.state.refresh(local)
        self._undo_changes_during_refresh(local)
        reaped = services.state.reap(REAP_BATCH)
        if reaped:
            logger.info("reaped %d socket(s) of a worker that stopped heartbeating", len(reaped))
            services.broadcaster.emit_many(self.outgoing_for(reaped))
        return len(reaped)

    def _undo_changes_during_refresh(self, snapshot: list[LocalSocket]) -> None:
        """The refresh wrote a snapshot; a socket that disconnected or left a room while it ran was
        re-added. Remove those entries again, quietly: their own disconnect or leave already announced it."""
        services = self._services
        live = dict(services.connections.items())
        gone = [sock.sid for sock in snapshot if sock.sid not in live]
        if gone:
            services.state.release(gone)
        for sock in snapshot:
            if sock.sid in live:
                left = sorted(set(sock.rooms) - services.rooms.rooms_of(sock.sid))
                if left:
                    services.rooms.unindex(sock.sid, sock.user_id, left)

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

    def _probe_forever(self) -> None:
        while True:
            gevent.sleep(self._services.settings.probe_interval)
            self.probe()

    def _heartbeat_forever(self) -> None:
        interval = max(0.2, self._services.settings.presence_ttl / 3)
        while True:
            gevent.sleep(interval)
            try:
                self.beat()
            except Exception:
                logger.exception("heartbeat failed; retrying next interval")
