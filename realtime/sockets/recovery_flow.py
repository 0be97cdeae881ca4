"""The steps of connection-state recovery around python-socketio's connect and disconnect.

1. :func:`prepare` (in the server's CONNECT handling, before a sid exists): verify the token, then in one
   round trip re-check the session, claim the ``pid``'s record and read the packets missed after ``offset``.
   Ownership comes first (:func:`owns`): only the socket's own session claims it, live or parked; anyone
   else's claim changes nothing and gets a new session.
2. :func:`resume` (in the connect handler): hold live packets, re-enter the rooms, register (reading what was
   logged meanwhile in the same round trip), replay everything missed once and in order, release the hold.
3. :func:`remember` (in the disconnect handler): unless the client left on purpose or was logged out, keep
   the record and *park* the socket for ``RECOVERY_WINDOW``: it stays online and in its rooms, so nobody
   hears a departure a reconnect would undo; the reaper releases (and announces) it if nobody claims it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import redis
from socketio import packet as sio_packet

from realtime.auth.handshake import Identity, extract_token
from realtime.errors import RealtimeError
from realtime.identifiers import StreamId, stream_id_before
from realtime.metrics.recorders import record_recovery
from realtime.services.container import Services
from realtime.sockets.server import ServerCore
from realtime.stores.recovery import RecoveryRecord, Restore
from realtime.stores.recovery_packets import ReplayPacket
from realtime.stores.redis.checks import log_unavailable
from realtime.stores.socket_records import ConnectInfo

logger = logging.getLogger(__name__)

NAMESPACE = "/"
#: Disconnect reasons after which the client will reconnect by itself: worth remembering.
RECOVERABLE_REASONS = frozenset({"transport close", "transport error", "ping timeout"})
#: A restore's status -> the ``result`` label of ``realtime_recovery_attempts_total``.
RECOVERY_RESULTS = {
    "ok": "recovered", "missing": "expired", "mismatch": "foreign", "revoked": "revoked", "gap": "gap",
    "overflow": "overflow",
}


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


def prepare(core: ServerCore, eio_sid: str, data: dict[str, Any]) -> ConnectPlan | None:
    """Try to recover a reconnecting socket; None leaves the handshake to the ordinary path."""
    services: Services = core.app.extensions["realtime"]
    if services.recovery is None:
        return None
    headers, query = _environ_auth(core.server.environ.get(eio_sid, {}))
    try:
        claims = services.tokens.verify(extract_token(data, headers, query) or "")
    except RealtimeError:
        record_recovery("invalid_token")
        return None
    pid = data["pid"]
    offset = data.get("offset") if isinstance(data.get("offset"), str) else None
    live_sid = services.connections.sid_for_pid(pid)
    if live_sid is not None:
        if owns(_identity_of(services, live_sid), claims.user_id, claims.session_id):
            _hand_over(services, core, live_sid, pid)
        else:
            # A leaked pid: the live socket is not the claimant's to end; the claimant gets a new session.
            logger.warning("a recovery claim on another session's live socket was ignored",
                           extra={"user_id": claims.user_id})
    cached = services.authenticator.cached_profile(claims.user_id)
    try:
        restore = services.recovery.restore(pid, offset, claims.user_id, claims.session_id, cached is None)
    except redis.RedisError:
        logger.warning("recovery lookup failed; connecting as a new session", exc_info=True)
        record_recovery("unavailable")
        return None
    record_recovery(RECOVERY_RESULTS[restore.status])
    if not restore.check.valid:
        return None
    identity = services.authenticator.identity_for(claims, restore.check, cached)
    if restore.status == "mismatch":
        logger.warning("recovery refused (mismatch): another session's record, left to its owner; new session",
                       extra={"user_id": claims.user_id})
    elif not restore.recovered:
        logger.info("recovery refused (%s): new session", restore.status)
    return ConnectPlan(identity=identity, restore=restore)


def owns(identity: Identity | None, user_id: str, session_id: str) -> bool:
    """Whether a claim made with ``user_id``'s session ``session_id`` may take over the socket of ``identity``.

    Only the socket's own session may: another user, or another login of the same user (a session that can
    be revoked on its own), gets a new session and leaves the socket, live or parked, to its owner.
    """
    return identity is not None and identity.user_id == user_id and identity.session_id == session_id


def _identity_of(services: Services, sid: str) -> Identity | None:
    try:
        return services.connections.get(sid)
    except RealtimeError:
        return None


def _hand_over(services: Services, core: ServerCore, live_sid: str, pid: str) -> None:
    """The owner reconnects while its old transport, dead, is not yet noticed here: keep the old socket's
    record and park it (as a noticed drop would), then end it without releasing it, so the claim that
    follows recovers it. If the record cannot be kept, the old socket is simply ended."""
    identity = services.connections.get(live_sid)
    if remember(services, [record_for(live_sid, identity, pid, services.rooms.rooms_of(live_sid))]):
        # Forgotten here, the disconnect handler leaves the parked socket to the claim (or to the reaper).
        services.connections.remove(live_sid)
    with core.app.app_context():
        core.server.disconnect(live_sid, namespace=NAMESPACE, ignore_queue=True)


def resume(
    services: Services, core: ServerCore, sid: str, plan: ConnectPlan, single: bool, counted: list[str]
) -> ConnectInfo:
    """Register a recovered socket in its old rooms and replay what it missed (2 round trips with hooks' 1);
    ``counted``: rooms whose sockets to count (:func:`realtime.sockets.connect.counted_rooms`)."""
    record = plan.restore.record
    assert record is not None
    eio_sid = core.server.manager.eio_sid_from_sid(sid, NAMESPACE)
    rooms = [room for room in record.rooms if room != sid]
    core.held[eio_sid] = []
    try:
        # Hooks are asked again: rooms they refuse now are neither re-entered nor replayed.
        rooms = services.lifecycle.recheck_recovered(sid, plan.identity.user_id, rooms)
        services.rooms.enter_local(sid, rooms)
        after = plan.restore.packets[-1].offset if plan.restore.packets else record.last_offset
        info = services.state.connect(
            sid, plan.identity.user_id, plan.identity.session_id, rooms, single, replay_after=after, counted=counted
        )
        missed = _merge(plan.restore.packets, info.missed)
        last = record.last_offset
        for packet in missed:
            if packet.room in rooms and packet.skip_sid != record.sid:
                core.send_now(eio_sid, _event_packet(core, packet))
            last = packet.offset
    finally:
        held = core.held.pop(eio_sid, [])
    for pkt in held:
        if not _already_replayed(pkt, last):
            core.send_now(eio_sid, pkt)
    # Live copies of replayed packets may still be in flight through the queue: drop them on arrival.
    core.replayed_up_to[eio_sid] = last
    logger.info("socket recovered", extra={"sid": sid, "replayed": len(missed)})
    return info


def remember(services: Services, records: list[RecoveryRecord]) -> bool:
    """Keep recovery records and park their sockets (2 round trips for any number); False if that failed."""
    if services.recovery is None or not records:
        return False
    try:
        services.recovery.save(records)
        services.state.park([record.sid for record in records], services.settings.recovery_window)
    except redis.RedisError as exc:
        log_unavailable(logger, f"keeping {len(records)} recovery record(s) (those clients start new sessions)", exc)
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
    merged.sort(key=lambda p: StreamId.parse(p.offset))
    return merged


def _event_packet(core: ServerCore, packet: ReplayPacket) -> Any:
    return core.server.packet_class(sio_packet.EVENT, namespace=NAMESPACE, data=[packet.event, packet.payload, packet.offset])


def _already_replayed(pkt: Any, last: str) -> bool:
    data = pkt.data if isinstance(pkt.data, list) else []
    offset = data[-1] if len(data) >= 3 and isinstance(data[-1], str) else None
    return offset is not None and not stream_id_before(last, offset)
