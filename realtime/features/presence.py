"""Presence: cluster-wide online state from live sockets, chosen statuses, subscriptions, checks."""
from __future__ import annotations

import time
from typing import Any

from realtime.broadcaster import Outgoing
from realtime.schemas.presence import (
    PresenceListOutSchema,
    PresenceOutSchema,
    PresenceStatusInSchema,
    PresenceUsersInSchema,
)
from realtime.services import Services
from realtime.socket_state import ConnectInfo, ReleaseInfo, iso
from realtime.sockets.blueprint import EventContext, SocketBlueprint

presence = SocketBlueprint("presence")
presence.emits(
    "presence:update",
    PresenceOutSchema,
    "A watched user's presence changed: first socket connected, last socket gone, or a new chosen status. "
    "Sent to the room presence:{userId} that presence:subscribe joins.",
)
presence.emits(
    "presence:status_list", PresenceListOutSchema, "The presence:check answer, also sent as an event to the asker."
)


def presence_room(user_id: str) -> str:
    """The room where ``user_id``'s presence changes are sent."""
    return f"presence:{user_id}"


@presence.on("presence:status", PresenceStatusInSchema, wrap="status")
def set_status(ctx: EventContext, data: dict[str, Any]) -> dict[str, Any]:
    """Choose online, away or busy; subscribers hear ``presence:update``."""
    last_seen = ctx.services.state.set_status(ctx.user_id, data["status"])
    update = {"userId": ctx.user_id, "status": data["status"], "lastSeen": last_seen}
    ctx.services.broadcaster.emit("presence:update", update, to=presence_room(ctx.user_id))
    return update


@presence.on("presence:subscribe", PresenceUsersInSchema, wrap="userIds")
def subscribe(ctx: EventContext, data: dict[str, Any]) -> dict[str, Any]:
    """Receive ``presence:update`` for these users (joins their ``presence:`` rooms, one round trip)."""
    rooms = [presence_room(user_id) for user_id in data["userIds"]]
    ctx.services.rooms.join_many(ctx.sid, ctx.user_id, rooms)
    return {"userIds": list(dict.fromkeys(data["userIds"]))}


@presence.on("presence:unsubscribe", PresenceUsersInSchema, wrap="userIds")
def unsubscribe(ctx: EventContext, data: dict[str, Any]) -> dict[str, Any]:
    """Stop receiving ``presence:update`` for these users."""
    left = ctx.services.rooms.leave_many(ctx.sid, ctx.user_id, [presence_room(u) for u in data["userIds"]])
    return {"userIds": [room.partition(":")[2] for room, _ in left]}


@presence.on("presence:check", PresenceUsersInSchema, wrap="userIds")
def check(ctx: EventContext, data: dict[str, Any]) -> list[dict[str, Any]]:
    """Presence of up to 100 users in one pipelined round trip; also sent as ``presence:status_list``."""
    users = [entry.to_dict() for entry in ctx.services.state.presence(list(dict.fromkeys(data["userIds"])))]
    ctx.services.broadcaster.emit_local(ctx.sid, "presence:status_list", {"users": users})
    return users


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
