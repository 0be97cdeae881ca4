"""Chat: ``group:{roomId}`` rooms with history, idempotent sends, typing and offline notifications."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from realtime.broadcaster import Outgoing
from realtime.errors import ErrorCode, RealtimeError
from realtime.schemas.chat import (
    ChatHistoryInSchema,
    ChatHistoryOutSchema,
    ChatMembershipOutSchema,
    ChatMessageInSchema,
    ChatMessageOutSchema,
    ChatTypingInSchema,
    ChatTypingOutSchema,
    RoomRefSchema,
)
from realtime.services import Services
from realtime.socket_state import ReleaseInfo
from realtime.sockets.blueprint import EventContext, SocketBlueprint

chat = SocketBlueprint("chat")
chat.emits("chat:new_message", ChatMessageOutSchema, "A stored message, to every member of the room (sender included).")
chat.emits("chat:history", ChatHistoryOutSchema, "Recent messages, newest first, to a socket that just joined.")
chat.emits("chat:user_joined", ChatMembershipOutSchema, "Someone joined the room (to the others).")
chat.emits("chat:user_left", ChatMembershipOutSchema, "Someone left the room or disconnected (to the others).")
chat.emits("chat:user_typing", ChatTypingOutSchema, "Someone else in the room started or stopped typing.")

PREVIEW = 140


def chat_room(room_id: str) -> str:
    """The Socket.IO room behind a chat room id."""
    return f"group:{room_id}"


def now_iso() -> str:
    """The current time as ISO-8601 UTC with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _require_member(ctx: EventContext, room_id: str) -> str:
    room = chat_room(room_id)
    if not ctx.services.rooms.is_member(ctx.sid, room):
        raise RealtimeError(ErrorCode.NOT_IN_ROOM, f"Join chat room {room_id!r} first.")
    return room


@chat.on("chat:join", RoomRefSchema)
def join(ctx: EventContext, data: dict[str, Any]) -> dict[str, Any]:
    """Join a chat room: ack with recent history (newest first); the others hear ``chat:user_joined``."""
    room_id = data["roomId"]
    room = chat_room(room_id)
    services = ctx.services
    membership = services.rooms.join(ctx.sid, ctx.user_id, room)
    recent = {"roomId": room_id, "messages": services.chat.join(room_id, ctx.user_id, services.settings.chat_join_history)}
    services.broadcaster.emit_local(ctx.sid, "chat:history", recent)
    if membership.user_changed:
        services.broadcaster.emit(
            "chat:user_joined", {"userId": ctx.user_id, "roomId": room_id, "timestamp": now_iso()}, to=room,
            skip_sid=ctx.sid,
        )
    return services.catalog.shape("chat:history", recent)


@chat.on("chat:leave", RoomRefSchema)
def leave(ctx: EventContext, data: dict[str, Any]) -> dict[str, Any]:
    """Leave a chat room; the socket stops receiving it. When it was the user's last socket there, the user
    stops being a member (no offline notifications) and the others hear ``chat:user_left``."""
    room_id = data["roomId"]
    room = chat_room(room_id)
    membership = ctx.services.rooms.leave(ctx.sid, ctx.user_id, room)
    if not membership.changed:
        raise RealtimeError(ErrorCode.NOT_IN_ROOM, f"Not in chat room {room_id!r}.")
    ctx.services.typing.reset(ctx.sid, room)
    if membership.user_changed:
        ctx.services.chat.leave(room_id, ctx.user_id)
        ctx.services.broadcaster.emit(
            "chat:user_left", {"userId": ctx.user_id, "roomId": room_id, "timestamp": now_iso()}, to=room
        )
    return {"roomId": room_id}


@chat.on("chat:message", ChatMessageInSchema)
def message(ctx: EventContext, data: dict[str, Any]) -> dict[str, Any]:
    """Store the message (once per ``clientId``) and send it to the room; offline members are notified."""
    room_id = data["roomId"]
    room = _require_member(ctx, room_id)
    services = ctx.services
    created = now_iso()
    body = {
        "roomId": room_id,
        "senderId": ctx.user_id,
        "sender": ctx.profile.to_dict(),
        "content": data.get("content"),
        "type": data["type"],
        "mediaUrl": data.get("mediaUrl"),
        "clientId": data.get("clientId"),
        "createdAt": created,
    }
    preview = (data.get("content") or f"[{data['type'].lower()}]")[:PREVIEW]
    notification = {
        "type": "chat_message",
        "title": f"{ctx.profile.username} in {room_id}",
        "body": preview,
        "data": {"roomId": room_id, "senderId": ctx.user_id},
        "createdAt": created,
    }
    result = services.chat.append(room_id, body, data.get("clientId"), notification)
    if result.duplicate:
        return {"id": result.id, "duplicate": True}
    services.broadcaster.emit("chat:new_message", {**body, "id": result.id}, to=room)
    services.typing.reset(ctx.sid, room)
    if result.offline_user_ids:
        stored = {**notification, "id": f"chat-{result.id}", "data": {**notification["data"], "messageId": result.id}}
        for hook in services.push_hooks:
            hook(result.offline_user_ids, stored)
    return {"id": result.id, "duplicate": False}


@chat.on("chat:history", ChatHistoryInSchema)
def history(ctx: EventContext, data: dict[str, Any]) -> dict[str, Any]:
    """A page of older messages, newest first, with the cursor for the next page (null at the start)."""
    room_id = data["roomId"]
    if not ctx.services.rooms.can_join(ctx.user_id, chat_room(room_id)):
        raise RealtimeError(ErrorCode.FORBIDDEN, f"Not allowed to read chat room {room_id!r}.")
    messages, cursor = ctx.services.chat.history(room_id, data.get("before"), data["limit"])
    shaped = ctx.services.catalog.shape("chat:history", {"roomId": room_id, "messages": messages})
    return {"roomId": room_id, "messages": shaped["messages"], "cursor": cursor}


@chat.on("chat:typing", ChatTypingInSchema)
def typing(ctx: EventContext, data: dict[str, Any]) -> dict[str, Any]:
    """Tell the others; repeated ``isTyping: true`` is throttled per socket and room, stops always pass."""
    room = _require_member(ctx, data["roomId"])
    if data["isTyping"] and not ctx.services.typing.allow(ctx.sid, room):
        return {"sent": False}
    if not data["isTyping"]:
        ctx.services.typing.reset(ctx.sid, room)
    ctx.services.broadcaster.emit(
        "chat:user_typing",
        {"userId": ctx.user_id, "username": ctx.profile.username, "isTyping": data["isTyping"], "roomId": data["roomId"]},
        to=room,
        skip_sid=ctx.sid,
    )
    return {"sent": True}


@chat.on_release
def left_rooms(info: ReleaseInfo, services: Services) -> list[Outgoing]:
    """A user whose last socket in a chat room is gone leaves it: the others hear ``chat:user_left``.

    Membership (and so offline notifications) stays: a disconnect is not a leave.
    """
    stamp = info.last_seen
    return [
        Outgoing("chat:user_left", {"userId": info.user_id, "roomId": room[len("group:"):], "timestamp": stamp}, room)
        for room, count in info.room_counts.items()
        if room.startswith("group:") and count.user_changed
    ]
