"""Posting a chat message: stored once per ``clientId`` (queuing the job that notifies offline members, done
off the path by :mod:`realtime.services.offline_jobs`), fanned out to the room, and a retry after a failed
fan-out delivers the stored message (same id) exactly once."""
from __future__ import annotations

import logging
from typing import Any

import redis

from realtime.fanout.emits import StoredBroadcast
from realtime.fanout.manager import PublishError
from realtime.services.container import Services
from realtime.stores.chat import Unsent
from realtime.stores.sessions import Profile
from realtime.timestamps import now_iso

logger = logging.getLogger(__name__)

#: Characters of the content a notification shows.
PREVIEW = 140


def post_message(
    services: Services, sid: str, user_id: str, profile: Profile, room: str, data: dict[str, Any]
) -> tuple[str, bool]:
    """Store ``data`` (a validated ``chat:message``) from ``user_id`` and send it to ``room``; return its id
    and whether it was a duplicate of an earlier send.

    :raises realtime.fanout.manager.PublishError: when the stored message could not be fanned out.
    """
    room_id = data["roomId"]
    created = now_iso()
    body = {
        "roomId": room_id,
        "senderId": user_id,
        "sender": profile.to_dict(),
        "content": data.get("content"),
        "type": data["type"],
        "mediaUrl": data.get("mediaUrl"),
        "clientId": data.get("clientId"),
        "createdAt": created,
    }
    preview = (data.get("content") or f"[{data['type'].lower()}]")[:PREVIEW]
    notification = {
        "type": "chat_message",
        "title": f"{profile.username} in {room_id}",
        "body": preview,
        "data": {"roomId": room_id, "senderId": user_id},
        "createdAt": created,
    }
    client_id = data.get("clientId")
    # With the recovery log in Redis, the store's script logs and publishes the message as it stores it.
    stored = services.broadcaster.prepare_stored("chat:new_message", body, room)
    result = services.chat.append(room_id, body, client_id, notification, stored.log if stored else None)
    if result.duplicate:
        if result.resend is not None and result.unsent is not None:
            _send(services, room, client_id, result.resend, result.unsent)
        return result.id, True
    try:
        if stored is not None and result.offset is not None:
            logged = (stored, result.offset, result.after)
            _send(services, room, client_id, {**body, "id": result.id}, Unsent.PUBLISH, logged)
        else:
            _send(services, room, client_id, {**body, "id": result.id}, Unsent.LOG)
    finally:
        # Stored is stored: the offline members' job is queued, whatever the fan-out does.
        services.typing.reset(sid, room)
    return result.id, False


def _send(
    services: Services,
    room: str,
    client_id: str | None,
    message: dict[str, Any],
    unsent: Unsent,
    logged: tuple[StoredBroadcast, str, str | None] | None = None,
) -> None:
    """Send a stored message to its room; when the fan-out fails, mark what it still needs for the retry.

    ``unsent`` is what the message needs: ``LOG`` (a new message) is logged for recovery and published,
    ``PUBLISH`` (the recovery log holds it from a failed attempt) is published without a new log entry, so
    that a recovering socket replays it once. ``logged``: the broadcast the store's script logged with the
    message, its offset and the offset logged before it, to deliver (and publish, unless the script did).
    """
    try:
        if logged is not None:
            services.broadcaster.complete_stored(logged[0], message["id"], logged[1], logged[2])
        elif unsent is Unsent.PUBLISH:
            services.broadcaster.emit_unlogged("chat:new_message", message, to=room)
        else:
            services.broadcaster.emit("chat:new_message", message, to=room)
    except PublishError as exc:
        if client_id:
            needs = Unsent.PUBLISH if unsent is Unsent.PUBLISH or exc.logged else Unsent.LOG
            try:
                services.chat.mark_unsent(message["roomId"], message["senderId"], client_id, message["id"], needs)
            except redis.RedisError:
                logger.warning(
                    "chat message %s is stored but not sent, and could not be marked for its retry",
                    message["id"],
                    exc_info=True,
                )
        raise

