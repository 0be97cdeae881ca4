"""Publish server events from any Python process (workers, scripts) without serving sockets.

``Emitter(redis_url).emit("system:announcement", {...}, room="broadcast:all")`` validates like the HTTP API
and writes to the same message queue the servers listen on; ``notify`` also stores personal notifications.
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

import socketio

from realtime.config import DEFAULTS
from realtime.errors import ErrorCode, RealtimeError
from realtime.fanout import wire
from realtime.features import BLUEPRINTS
from realtime.features.notifications import new_notification
from realtime.schemas.notifications import NotificationContentSchema
from realtime.services.room_rules import split_room
from realtime.sockets.catalog import EventCatalog
from realtime.stores.notifications import RedisNotificationStore
from realtime.stores.recovery import RedisRecoveryStore
from realtime.stores.recovery_packets import LoggedPacket
from realtime.stores.redis.client import connect_redis
from realtime.stores.redis.keys import Keys
from realtime.stores.redis.scripts import ScriptSet


class Emitter:
    """Write-only access to a realtime cluster through its Redis.

    :param redis_url: the servers' ``MESSAGE_QUEUE_URL`` (usually ``REDIS_URL``).
    :param channel: the servers' ``SOCKETIO_CHANNEL``.
    :param key_prefix: the servers' ``KEY_PREFIX`` (for stored notifications).
    :param notifications_max: the servers' ``NOTIFICATIONS_MAX``.
    :param recovery_window: the servers' ``RECOVERY_WINDOW``: when positive, emits are logged with offsets
        like the servers' own broadcasts, so reconnecting clients get them replayed.
    :param recovery_max_packets: the servers' ``RECOVERY_MAX_PACKETS``.
    """

    def __init__(
        self,
        redis_url: str,
        channel: str = str(DEFAULTS["SOCKETIO_CHANNEL"]),
        key_prefix: str = str(DEFAULTS["KEY_PREFIX"]),
        notifications_max: int = int(str(DEFAULTS["NOTIFICATIONS_MAX"])),
        recovery_window: float = float(str(DEFAULTS["RECOVERY_WINDOW"])),
        recovery_max_packets: int = int(str(DEFAULTS["RECOVERY_MAX_PACKETS"])),
    ) -> None:
        self._channel = channel
        self._queue = socketio.RedisManager(redis_url, channel=channel, write_only=True, json=json)
        self._catalog = EventCatalog(BLUEPRINTS)
        client = connect_redis(redis_url)
        keys, scripts = Keys(key_prefix), ScriptSet(client)
        self._notifications = RedisNotificationStore(client, keys, scripts, notifications_max)
        self._recovery = (
            RedisRecoveryStore(client, keys, scripts, recovery_window, recovery_max_packets)
            if recovery_window > 0
            else None
        )
        self._host_id = f"emitter:{uuid.uuid4().hex}"

    def emit(self, event: str, data: Any, room: str) -> Any:
        """Validate ``data`` against ``event``'s schema and send it to ``room`` on every server.

        :returns: the payload as sent.
        :raises RealtimeError: ``VALIDATION_ERROR`` (unknown or non-publishable event, bad data) or
            ``FORBIDDEN`` (room outside the naming convention).
        """
        split_room(room)
        payload = self._catalog.validate_publish(event, data)
        self._send([(event, payload, room)])
        return payload

    def notify(self, user_ids: Sequence[str], content: dict[str, Any]) -> dict[str, Any]:
        """Store a personal notification for each user and send it to their sockets.

        :returns: the notification with its ``id`` and ``createdAt``.
        """
        for user_id in user_ids:
            split_room(f"user:{user_id}")
        errors = NotificationContentSchema().validate(content)
        if errors:
            raise RealtimeError(ErrorCode.VALIDATION_ERROR, "notification failed validation.", fields=errors)
        notification = new_notification(NotificationContentSchema().load(content))
        self._notifications.add(list(user_ids), notification)
        shaped = self._catalog.shape("notification:new", notification)
        self._send([("notification:new", shaped, f"user:{user_id}") for user_id in user_ids])
        return shaped

    def _send(self, emits: list[tuple[str, Any, str]]) -> None:
        """Publish to every server: logged with offsets (one round trip) when recovery is on."""
        if self._recovery is None:
            for event, payload, room in emits:
                self._queue.emit(event, payload, room=room, namespace=wire.NAMESPACE)
            return
        packets = []
        for event, payload, room in emits:
            payload_json = json.dumps(payload, separators=(",", ":"), allow_nan=False)
            head, tail = wire.emit_halves(event, payload_json, room, None, self._host_id)
            packets.append(LoggedPacket(event, room, None, payload_json, head, tail))
        self._recovery.append(packets, self._channel)
