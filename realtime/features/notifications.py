"""Notifications: personal ones stored with read state, group and system ones pushed live."""
from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from realtime.errors import ErrorCode
from realtime.fanout.broadcaster import Outgoing
from realtime.schemas.notifications import (
    AnnouncementOutSchema,
    MarkReadAckSchema,
    MarkReadInSchema,
    NotificationOutSchema,
    NotificationsListInSchema,
    NotificationsPageSchema,
    UnreadCountOutSchema,
)
from realtime.services.container import Services
from realtime.sockets.blueprint import EventContext, SocketBlueprint
from realtime.stores.socket_records import ConnectInfo

notifications = SocketBlueprint("notifications")
notifications.emits(
    "notification:new",
    NotificationOutSchema,
    "A notification: personal ones go to user:{id} and are stored with read state, group ones to "
    "group:{id}, system ones to broadcast:all. Published through POST /api/v1/notifications.",
    to="user:{userId}, group:{groupId} or broadcast:all",
    examples=[
        {
            "id": "n-5b1f09a2c3d4e5f6",
            "type": "mention",
            "title": "New mention",
            "body": "bob mentioned you",
            "data": {"roomId": "lobby"},
            "createdAt": "2026-01-01T12:00:00.000Z",
        }
    ],
    publishable=True,
)
notifications.emits(
    "notification:unread_count",
    UnreadCountOutSchema,
    "How many stored personal notifications are unread: to a socket when it connects, and to every socket "
    "of the user after notifications:mark_read.",
    to="the connecting socket; user:{userId}",
    examples=[{"count": 2}],
)
notifications.emits(
    "system:announcement",
    AnnouncementOutSchema,
    "An announcement to everyone, e.g. planned maintenance.",
    to="broadcast:all",
    examples=[{"title": "Maintenance", "body": "Back at 02:30 UTC.", "level": "warning"}],
    broadcast=True,
    publishable=True,
)


def new_notification(content: dict[str, Any]) -> dict[str, Any]:
    """Give publisher content an ``id`` and ``createdAt``."""
    created = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {**content, "id": f"n-{secrets.token_hex(8)}", "createdAt": created}


def publish_personal(services: Services, user_ids: list[str], content: dict[str, Any]) -> dict[str, Any]:
    """Store a notification for each user, send it to their sockets, hand offline ones to push hooks."""
    notification = new_notification(content)
    services.notifications.add(user_ids, notification)
    services.broadcaster.emit_many([Outgoing("notification:new", notification, f"user:{u}") for u in user_ids])
    offline = [entry.user_id for entry in services.presence.presence(user_ids) if not entry.is_online]
    if offline:
        for hook in services.push_hooks:
            hook(offline, notification)
    return notification


@notifications.event(
    "notifications:list",
    "The newest stored personal notifications with their read flag, and the unread count.",
    payload=NotificationsListInSchema,
    ack=NotificationsPageSchema,
    examples=[{"unreadOnly": True, "limit": 20}, {}],
    errors=[ErrorCode.VALIDATION_ERROR, ErrorCode.RATE_LIMITED],
)
def list_notifications(ctx: EventContext, data: dict[str, Any]) -> dict[str, Any]:
    """The newest stored personal notifications with their read flag, and the unread count."""
    items, unread = ctx.services.notifications.list(ctx.user_id, data["unreadOnly"], data["limit"])
    return {"notifications": items, "unreadCount": unread}


@notifications.event(
    "notifications:mark_read",
    "Mark stored notifications read; every socket of the user gets notification:unread_count. A bare "
    "array of ids is accepted too; unknown ids are ignored.",
    payload=MarkReadInSchema,
    wrap="ids",
    ack=MarkReadAckSchema,
    emits=["notification:unread_count"],
    examples=[{"ids": ["n-5b1f09a2c3d4e5f6"]}],
    errors=[ErrorCode.VALIDATION_ERROR, ErrorCode.RATE_LIMITED],
)
def mark_read(ctx: EventContext, data: dict[str, Any]) -> dict[str, Any]:
    """Mark notifications read; every socket of the user gets the new ``notification:unread_count``."""
    changed, unread = ctx.services.notifications.mark_read(ctx.user_id, list(dict.fromkeys(data["ids"])))
    if changed:
        ctx.services.broadcaster.emit("notification:unread_count", {"count": unread}, to=f"user:{ctx.user_id}")
    return {"marked": changed, "unreadCount": unread}


@notifications.on_connect
def unread_on_connect(ctx: EventContext, info: ConnectInfo) -> list[Outgoing]:
    """Tell a new socket how many notifications wait (read during registration: no extra round trip)."""
    ctx.services.broadcaster.emit_local(ctx.sid, "notification:unread_count", {"count": info.unread_count})
    return []
