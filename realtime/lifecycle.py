"""Per-worker background work: act on control commands, heartbeat local sockets, reap dead workers' sockets."""
from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Collection
from typing import Any

import gevent
import gevent.pool
import redis

from realtime.broadcaster import Outgoing
from realtime.control_bus import LOGOUT_REASONS, logout_command
from realtime.errors import RealtimeError
from realtime.probes import QueueProbe
from realtime.redis_checks import REFUSED_WRITE_ERRORS
from realtime.room_store import RoomCount
from realtime.rooms import REVALIDATE_ROOM
from realtime.socket_state import LocalSocket, ReleaseInfo, iso
from realtime.sockets.recovery_flow import record_for, remember

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
        services.bus.subscribe(self.on_room_control)
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
        if self._services.sessions.checks_sessions:
            self._session_checker = gevent.spawn(self._check_sessions_forever)

    def stop(self) -> None:
        """Stop the heartbeat and the control listener (tests, shutdown)."""
        for greenlet in (self._heartbeat, self._prober, self._session_checker):
            if greenlet is not None:
                greenlet.kill(block=False)
        self._heartbeat = self._prober = self._session_checker = None
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

    def on_control(self, message: dict[str, Any]) -> None:
        """Handle a cluster command; today: log out every local socket of some sessions."""
        if message.get("op") != "logout":
            return
        sessions = message.get("sessions")
        if not isinstance(sessions, list):
            return
        reason = message.get("reason") if message.get("reason") in LOGOUT_REASONS else "revoked"
        self.log_out(set(map(str, sessions)), reason)

    def log_out(self, session_ids: Collection[str], reason: str) -> int:
        """Send ``force_logout`` to every socket of ``session_ids`` on this worker, then disconnect it at the
        Socket.IO level; return how many sockets.

        The client sees ``io server disconnect`` and does not reconnect by itself; the disconnect handler
        keeps no recovery record for that reason, so the socket cannot be recovered either.
        """
        count = 0
        for sid, identity in self._services.connections.items():
            if identity.session_id not in session_ids:
                continue
            try:
                self._services.broadcaster.emit_local(sid, "force_logout", {"reason": reason})
                self._socketio.server.disconnect(sid, namespace=NAMESPACE, ignore_queue=True)
            except Exception:
                logger.exception("could not log out a socket", extra={"sid": sid, "reason": reason})
                continue
            count += 1
            logger.info("socket logged out", extra={"sid": sid, "reason": reason})
        return count

    def revoke(self, session_id: str) -> bool:
        """Revoke a session (``flask token revoke``, ``DELETE /api/v1/sessions/{sid}``): delete it, then log
        out its sockets on every worker at once; return whether it was known.

        Known means stored; in the embedded default, where tokens minted elsewhere connect without a stored
        session, a live socket of it here counts too. The command goes out even for an unknown session: the
        login service may have deleted the key a moment ago while sockets of it are still live, and the
        periodic check would reach them only later.
        """
        services = self._services
        known = services.sessions.revoke(session_id)
        if not services.sessions.checks_sessions:
            known = known or any(identity.session_id == session_id for _, identity in services.connections.items())
        services.bus.publish(logout_command([session_id], "revoked"))
        return known

    def check_sessions(self) -> int:
        """One session check: log out this worker's sockets whose session is gone (deleted or expired by the
        login service, or lost by Redis); return how many sockets.

        One pipelined round trip for all the sessions of this worker, whatever the traffic. A Redis that does
        not answer logs nobody out: only an answer saying a session is gone does.
        """
        owners = {identity.session_id: identity.user_id for _, identity in self._services.connections.items()}
        if not owners:
            return 0
        try:
            gone = self._services.sessions.missing(owners)
        except redis.RedisError as exc:
            logger.warning("session check skipped: redis did not answer (%s)", type(exc).__name__)
            return 0
        if not gone:
            return 0
        count = self.log_out(set(gone), "revoked")
        logger.info("session check: %d session(s) gone, %d socket(s) logged out", len(gone), count)
        return count

    def on_room_control(self, message: dict[str, Any]) -> None:
        """Handle :meth:`realtime.rooms.RoomManager.revalidate_room`: re-check the room off the listener."""
        room = message.get("room")
        if message.get("op") == REVALIDATE_ROOM and isinstance(room, str):
            # Hooks may be slow (an app's database): never hold up the control listener with them.
            gevent.spawn(self._revalidate_logged, room)

    def _revalidate_logged(self, room: str) -> None:
        try:
            self.revalidate(room)
        except Exception:
            logger.exception("room revalidation failed", extra={"room_prefix": room.partition(":")[0]})

    def revalidate(self, room: str) -> int:
        """Take this worker's sockets out of ``room`` where its hook now refuses their user; return how many.

        O(sockets in the room here), one hook call per distinct user; they leave as by a leave (index and
        others' counts, the features' leave announcements) and each gets ``room:removed``.
        """
        services = self._services
        members: list[tuple[str, str]] = []
        for sid in services.rooms.local_members(room):
            try:
                members.append((sid, services.connections.get(sid).user_id))
            except RealtimeError:
                continue  # still connecting, or already gone: its own handler runs the hooks
        refused = {user_id for user_id in {user for _, user in members} if services.rooms.refused(user_id, [room])}
        removed = [
            (sid, user_id, [(room, services.rooms.evict(sid, user_id, room))])
            for sid, user_id in members
            if user_id in refused
        ]
        self._announce_removals(removed)
        if removed:
            logger.info("room revalidated: %d socket(s) removed", len(removed),
                        extra={"room_prefix": room.partition(":")[0]})
        return len(removed)

    def recheck_recovered(self, sid: str, user_id: str, rooms: list[str]) -> list[str]:
        """The rooms a recovering socket may re-enter: those whose hook refuses its user now are dropped
        from its index entries, announced as left and reported to it with ``room:removed``."""
        refused = self._services.rooms.refused(user_id, rooms)
        if not refused:
            return rooms
        self._announce_removals([(sid, user_id, self._services.rooms.forget(sid, user_id, refused))])
        logger.info("recovered socket refused %d room(s) by their hooks", len(refused), extra={"sid": sid})
        return [room for room in rooms if room not in refused]

    def _announce_removals(self, removed: list[tuple[str, str, list[tuple[str, RoomCount]]]]) -> None:
        """``room:removed`` to each socket (local), then the features' leave broadcasts (one round trip)."""
        services = self._services
        for sid, _, counts in removed:
            for room, _ in counts:
                services.broadcaster.emit_local(sid, "room:removed", {"room": room, "reason": "forbidden"})
        stamp = iso(time.time())
        infos = [
            ReleaseInfo(sid=sid, user_id=user_id, last_socket=False, last_seen=stamp, room_counts=dict(counts))
            for sid, user_id, counts in removed
            if counts
        ]
        services.broadcaster.emit_many(self.outgoing_for(infos))

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

    def _check_sessions_forever(self) -> None:
        interval = self._services.settings.session_check_interval
        while True:
            # Jitter spreads the workers' checks over time; it only shortens the wait, so a gone session is
            # noticed within SESSION_CHECK_INTERVAL.
            gevent.sleep(interval * random.uniform(0.5, 1.0))
            try:
                self.check_sessions()
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
                self.beat()
            except REFUSED_WRITE_ERRORS as exc:
                # Once per interval until an operator acts: one line, not a traceback each time.
                logger.warning("heartbeat: redis refused the write (%s); retrying next interval", type(exc).__name__)
            except Exception:
                logger.exception("heartbeat failed; retrying next interval")
