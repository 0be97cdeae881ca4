"""The steps of connection-state recovery around python-socketio's connect and disconnect.

1. :func:`prepare` (in the server's CONNECT handling, before a sid exists): verify the token, then in one
   round trip re-check the session, claim the ``pid``'s record and read the packets missed after ``offset``.
2. :func:`resume` (in the connect handler): hold live packets, re-enter the rooms, register (reading what was
   logged meanwhile in the same round trip), replay everything missed once and in order, release the hold.
3. :func:`remember` (in the disconnect handler): unless the client left on purpose or was logged out, keep
   the record and *park* the socket for ``RECOVERY_WINDOW``: it stays online and in its rooms, so nobody
   hears a departure a reconnect would undo; the reaper releases (and announces) it if nobody claims it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import redis
from socketio import packet as sio_packet

from realtime.auth.handshake import Identity, extract_token
from realtime.errors import RealtimeError
from realtime.recovery import RecoveryRecord, ReplayPacket, Restore, offset_before
from realtime.socket_state import ConnectInfo

if TYPE_CHECKING:
    from realtime.services import Services
    from realtime.sockets.server import RealtimeServer

logger = logging.getLogger(__name__)

NAMESPACE = "/"
#: Disconnect reasons after which the client will reconnect by itself: worth remembering.
RECOVERABLE_REASONS = frozenset({"transport close", "transport error", "ping timeout"})


@dataclass(frozen=True)
class ConnectPlan:
    """What :func:`prepare` established for one handshake."""

    identity: Identity
    restore: Restore

    @property
    def recovered(self) -> bool:
        return self.restore.recovered

    @property
    def sid(self) -> str | None:
        return self.restore.record.sid if self.restore.record else None


def _environ_auth(environ: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    headers = {"Authorization": environ.get("HTTP_AUTHORIZATION", "")}
    query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items() if v}
    return headers, query


def prepare(server: RealtimeServer, eio_sid: str, data: dict[str, Any]) -> ConnectPlan | None:
    """Try to recover a reconnecting socket; None leaves the handshake to the ordinary path."""
    app = server.realtime_app
    services: Services = app.extensions["realtime"]
    if services.recovery is None:
        return None
    headers, query = _environ_auth(server.environ.get(eio_sid, {}))
    try:
        claims = services.tokens.verify(extract_token(data, headers, query) or "")
    except RealtimeError:
        return None
    pid = data["pid"]
    offset = data.get("offset") if isinstance(data.get("offset"), str) else None
    live_sid = services.connections.sid_for_pid(pid)
    if live_sid is not None:
        # The old transport is dead but not yet noticed here: close it so its record is written first.
        with app.app_context():
            server.disconnect(live_sid, namespace=NAMESPACE, ignore_queue=True)
    cached = services.authenticator.cached_profile(claims.user_id)
    try:
        restore = services.recovery.restore(pid, offset, claims.user_id, claims.session_id, cached is None)
    except redis.RedisError:
        logger.warning("recovery lookup failed; connecting as a new session", exc_info=True)
        return None
    if not restore.check.valid:
        return None
    identity = services.authenticator.identity_for(claims, restore.check, cached)
    if not restore.recovered:
        logger.info("recovery refused (%s): new session", restore.status)
    return ConnectPlan(identity=identity, restore=restore)


def resume(services: Services, server: RealtimeServer, sid: str, plan: ConnectPlan, single: bool) -> ConnectInfo:
    """Register a recovered socket in its old rooms and replay what it missed (2 round trips with hooks' 1)."""
    record = plan.restore.record
    assert record is not None
    eio_sid = server.manager.eio_sid_from_sid(sid, NAMESPACE)
    rooms = [room for room in record.rooms if room != sid]
    server.held[eio_sid] = []
    try:
        services.rooms.enter_local(sid, rooms)
        after = plan.restore.packets[-1].offset if plan.restore.packets else record.last_offset
        info = services.state.connect(
            sid, plan.identity.user_id, plan.identity.session_id, rooms, single, replay_after=after
        )
        missed = _merge(plan.restore.packets, info.missed)
        last = record.last_offset
        for packet in missed:
            if packet.room in rooms and packet.skip_sid != record.sid:
                server.send_now(eio_sid, _event_packet(server, packet))
            last = packet.offset
    finally:
        held = server.held.pop(eio_sid, [])
    for pkt in held:
        if not _already_replayed(pkt, last):
            server.send_now(eio_sid, pkt)
    # Live copies of replayed packets may still be in flight through the queue: drop them on arrival.
    server.replayed_up_to[eio_sid] = last
    logger.info("socket recovered", extra={"sid": sid, "replayed": len(missed)})
    return info


def remember(services: Services, records: list[RecoveryRecord]) -> bool:
    """Keep recovery records and park their sockets (2 round trips for any number); False if that failed."""
    if services.recovery is None or not records:
        return False
    try:
        services.recovery.save(records)
        services.state.park([record.sid for record in records], services.settings.recovery_window)
    except redis.RedisError:
        logger.warning("could not keep %d recovery record(s); those clients start new sessions", len(records),
                       exc_info=True)
        return False
    return True


def record_for(sid: str, identity: Identity, pid: str, rooms: set[str]) -> RecoveryRecord:
    """What a socket is, to be recovered."""
    return RecoveryRecord(
        sid=sid, pid=pid, user_id=identity.user_id, session_id=identity.session_id, rooms=sorted(rooms)
    )


def recoverable(reason: str) -> bool:
    """Whether the client will reconnect by itself after this disconnect."""
    return reason in RECOVERABLE_REASONS


def _merge(first: list[ReplayPacket], second: list[ReplayPacket]) -> list[ReplayPacket]:
    seen = {p.offset for p in first}
    merged = list(first) + [p for p in second if p.offset not in seen]
    merged.sort(key=lambda p: tuple(int(x) for x in p.offset.split("-")))
    return merged


def _event_packet(server: RealtimeServer, packet: ReplayPacket) -> Any:
    return server.packet_class(sio_packet.EVENT, namespace=NAMESPACE, data=[packet.event, packet.payload, packet.offset])


def _already_replayed(pkt: Any, last: str) -> bool:
    data = pkt.data if isinstance(pkt.data, list) else []
    offset = data[-1] if len(data) >= 3 and isinstance(data[-1], str) else None
    return offset is not None and not offset_before(last, offset)
