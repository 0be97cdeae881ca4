"""Presence: cluster-wide online state from live sockets, chosen statuses, subscriptions, checks."""
from __future__ import annotations

import time
from typing import Any

from realtime.errors import ErrorCode
from realtime.fanout.broadcaster import Outgoing
from realtime.schemas.presence import (
    PresenceEntrySchema,
    PresenceListOutSchema,
    PresenceOutSchema,
    PresenceStatusInSchema,
    PresenceUsersInSchema,
)
from realtime.services.container import Services
from realtime.sockets.blueprint import EventContext, SocketBlueprint
from realtime.stores.socket_records import ConnectInfo, ReleaseInfo
from realtime.timestamps import iso

presence = SocketBlueprint("presence")
presence.emits(
    "presence:update",
    PresenceOutSchema,
    "A watched user's presence changed: their first socket connected anywhere, their last socket is gone "
    "(or was reaped after its worker died), or they chose a new status.",
    to="presence:{userId} (joined by presence:subscribe)",
    examples=[{"userId": "bob", "status": "online", "lastSeen": "2026-01-01T12:00:00.000Z"}],
)
presence.emits(
    "presence:status_list",
    PresenceListOutSchema,
    "The presence:check answer, also sent as an event to the asker (for listen-style clients).",
    to="the asking socket",
    examples=[{"users": [{"userId": "bob", "isOnline": True, "status": "away", "lastSeen": "2026-01-01T12:00:00.000Z"}]}],
)


def presence_room(user_id: str) -> str:
    """The room where ``user_id``'s presence changes are sent."""
    return f"presence:{user_id}"


@presence.event(
    "presence:status",
    "Choose online, away or busy; subscribers get presence:update. A bare string (\"away\") is accepted too.",
    payload=PresenceStatusInSchema,
    wrap="status",
    ack=PresenceOutSchema,
    emits=["presence:update"],
    examples=[{"status": "away"}],
    errors=[ErrorCode.VALIDATION_ERROR, ErrorCode.RATE_LIMITED],
)
def set_status(ctx: EventContext, data: dict[str, Any]) -> dict[str, Any]:
    """Choose online, away or busy; subscribers hear ``presence:update``."""
    last_seen = ctx.services.presence.set_status(ctx.user_id, data["status"])
    update = {"userId": ctx.user_id, "status": data["status"], "lastSeen": last_seen}
    ctx.services.broadcaster.emit("presence:update", update, to=presence_room(ctx.user_id))
    return update


@presence.event(
    "presence:subscribe",
    "Receive presence:update for up to 100 users (joins their presence: rooms in one round trip). A bare "
    "array is accepted too.",
    payload=PresenceUsersInSchema,
    wrap="userIds",
    ack=PresenceUsersInSchema,
    examples=[{"userIds": ["bob", "carol"]}],
    errors=[ErrorCode.VALIDATION_ERROR, ErrorCode.ROOM_LIMIT, ErrorCode.RATE_LIMITED],
)
def subscribe(ctx: EventContext, data: dict[str, Any]) -> dict[str, Any]:
    """Receive ``presence:update`` for these users (joins their ``presence:`` rooms, one round trip)."""
    rooms = [presence_room(user_id) for user_id in data["userIds"]]
    ctx.services.rooms.join_many(ctx.sid, ctx.user_id, rooms)
    return {"userIds": list(dict.fromkeys(data["userIds"]))}


@presence.event(
    "presence:unsubscribe",
    "Stop receiving presence:update for these users; the ack lists those that were subscribed.",
    payload=PresenceUsersInSchema,
    wrap="userIds",
    ack=PresenceUsersInSchema,
    examples=[{"userIds": ["carol"]}],
    errors=[ErrorCode.VALIDATION_ERROR, ErrorCode.RATE_LIMITED],
)
def unsubscribe(ctx: EventContext, data: dict[str, Any]) -> dict[str, Any]:
    """Stop receiving ``presence:update`` for these users."""
    left = ctx.services.rooms.leave_many(ctx.sid, ctx.user_id, [presence_room(u) for u in data["userIds"]])
    return {"userIds": [room.partition(":")[2] for room, _ in left]}


@presence.event(
    "presence:check",
    "Presence of up to 100 users, cluster-wide, in one pipelined round trip; also sent as "
    "presence:status_list. A bare array is accepted too.",
    payload=PresenceUsersInSchema,
    wrap="userIds",
    ack=PresenceEntrySchema(many=True),
    emits=["presence:status_list"],
    examples=[{"userIds": ["bob", "carol"]}],
    errors=[ErrorCode.VALIDATION_ERROR, ErrorCode.RATE_LIMITED],
)
def check(ctx: EventContext, data: dict[str, Any]) -> list[dict[str, Any]]:
    """Presence of up to 100 users in one pipelined round trip; also sent as ``presence:status_list``."""
    users = [entry.to_dict() for entry in ctx.services.presence.presence(list(dict.fromkeys(data["userIds"])))]
    ctx.services.broadcaster.emit_local(ctx.sid, "presence:status_list", {"users": users})
    return users


# Nobody anywhere subscribed to a user's presence: their coming online or going offline is not broadcast
# (nor logged for recovery).
presence.counts_room(presence_room("{userId}"))


@presence.on_connect
def came_online(ctx: EventContext, info: ConnectInfo) -> list[Outgoing]:
    """A user's first live socket anywhere in the cluster: subscribers hear they are online."""
    if not info.first_socket:
        return []
    update = {"userId": ctx.user_id, "status": "online", "lastSeen": iso(time.time())}
    return [Outgoing("presence:update", update, presence_room(ctx.user_id))]


@presence.on_release
def went_offline(info: ReleaseInfo, services: Services) -> list[Outgoing]:
    """A user's last live socket is gone (or was reaped): subscribers hear they are offline."""
    if not info.last_socket:
        return []
    update = {"userId": info.user_id, "status": "offline", "lastSeen": info.last_seen}
    return [Outgoing("presence:update", update, presence_room(info.user_id))]
