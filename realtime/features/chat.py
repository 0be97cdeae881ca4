"""Chat: ``group:{roomId}`` rooms with history, idempotent sends, typing and offline notifications."""
from __future__ import annotations

import logging
from typing import Any

from realtime.errors import ErrorCode, RealtimeError
from realtime.fanout.broadcaster import Outgoing
from realtime.fanout.emits import Shaped
from realtime.schemas.chat import (
    ChatHistoryInSchema,
    ChatHistoryOutSchema,
    ChatHistoryPageSchema,
    ChatMembersChangedOutSchema,
    ChatMembershipOutSchema,
    ChatMessageInSchema,
    ChatMessageOutSchema,
    ChatSentAckSchema,
    ChatTypingAckSchema,
    ChatTypingInSchema,
    ChatTypingOutSchema,
    RoomRefSchema,
)
from realtime.services.chat_messages import post_message
from realtime.services.container import Services
from realtime.sockets.blueprint import EventContext, SocketBlueprint
from realtime.stores.socket_records import ConnectInfo, ReleaseInfo
from realtime.timestamps import now_iso

logger = logging.getLogger(__name__)

chat = SocketBlueprint("chat")

_MESSAGE_EXAMPLE = {
    "id": "1700000000000-0",
    "roomId": "lobby",
    "senderId": "alice",
    "sender": {"id": "alice", "username": "Alice", "avatarUrl": None},
    "content": "Hello!",
    "type": "TEXT",
    "mediaUrl": None,
    "clientId": "c-7f3a",
    "createdAt": "2026-01-01T12:00:00.000Z",
}
chat.emits(
    "chat:new_message",
    ChatMessageOutSchema,
    "A stored message, to every member of the room (the sender included), on every worker.",
    to="group:{roomId}",
    examples=[_MESSAGE_EXAMPLE],
)
chat.emits(
    "chat:history",
    ChatHistoryOutSchema,
    "Recent messages of a room, newest first, sent to a socket right after it joins (the same list as the "
    "chat:join ack, for clients that listen instead of using acks).",
    to="the joining socket",
    examples=[{"roomId": "lobby", "messages": [_MESSAGE_EXAMPLE]}],
)
chat.emits(
    "chat:user_joined",
    ChatMembershipOutSchema,
    "A user's first socket joined the room (to the other members). In a room of more than 16 users, only when "
    "it had no membership announcement for 0.5 s; later joins and leaves within that window arrive together in "
    "chat:members_changed.",
    to="group:{roomId}",
    examples=[{"userId": "bob", "roomId": "lobby", "timestamp": "2026-01-01T12:00:00.000Z"}],
)
chat.emits(
    "chat:user_left",
    ChatMembershipOutSchema,
    "A user's last socket left the room or disconnected (to the other members). In a room of more than 16 "
    "users, only when it had no membership announcement for 0.5 s; later ones within that window arrive in "
    "chat:members_changed.",
    to="group:{roomId}",
    examples=[{"userId": "bob", "roomId": "lobby", "timestamp": "2026-01-01T12:05:00.000Z"}],
)
chat.emits(
    "chat:members_changed",
    ChatMembersChangedOutSchema,
    "Joins and leaves of a busy room, coalesced so that a join storm cannot cost N² deliveries: each worker "
    "sends a room of more than 16 users at most one membership announcement per 0.5 s. The first change after "
    "a quiet window is a chat:user_joined / chat:user_left; the changes after it within the window come in one "
    "event when it ends, listing up to 50 users each way (moreJoined / moreLeft count the rest; a user who left "
    "and came back within the window cancels out) and the room's size in users. It may list the receiving user.",
    to="group:{roomId}",
    examples=[
        {
            "roomId": "lobby", "joined": ["carol", "dave"], "left": ["erin"], "moreJoined": 0, "moreLeft": 0,
            "users": 120, "timestamp": "2026-01-01T12:00:00.500Z",
        }
    ],
)
chat.emits(
    "chat:user_typing",
    ChatTypingOutSchema,
    "Someone else in the room started or stopped typing.",
    to="group:{roomId} except the typist",
    examples=[{"userId": "bob", "username": "Bob", "isTyping": True, "roomId": "lobby"}],
)

def chat_room(room_id: str) -> str:
    """The Socket.IO room behind a chat room id."""
    return f"group:{room_id}"


def _announcement(
    services: Services, room: str, user_id: str, joined: bool, users: int, stamp: str, skip_sid: str | None = None
) -> Outgoing | None:
    """The per-user event to send now for a membership change, or None when the coalescer holds it."""
    if services.joins is not None:
        return services.joins.change(room, user_id, joined, users, stamp, skip_sid)
    event = "chat:user_joined" if joined else "chat:user_left"
    return Outgoing(event, {"userId": user_id, "roomId": room[len("group:"):], "timestamp": stamp}, room, skip_sid)


def _announce(
    services: Services, room: str, user_id: str, joined: bool, users: int, stamp: str, skip_sid: str | None = None
) -> None:
    """Announce a membership change now, unless the coalescer holds it for the room's next batch."""
    announcement = _announcement(services, room, user_id, joined, users, stamp, skip_sid)
    if announcement is not None:
        services.broadcaster.emit_many([announcement])


def _require_member(ctx: EventContext, room_id: str) -> str:
    room = chat_room(room_id)
    if not ctx.services.rooms.is_member(ctx.sid, room):
        raise RealtimeError(ErrorCode.NOT_IN_ROOM, f"Join chat room {room_id!r} first.")
    return room


@chat.event(
    "chat:join",
    "Join a chat room (the group:{roomId} room, authorized by the group: hook). The ack carries the most "
    "recent history, newest first; the others hear chat:user_joined (chat:members_changed in a join storm).",
    payload=RoomRefSchema,
    ack=ChatHistoryOutSchema,
    emits=["chat:history", "chat:user_joined", "chat:members_changed"],
    examples=[{"roomId": "lobby"}],
    errors=[ErrorCode.VALIDATION_ERROR, ErrorCode.FORBIDDEN, ErrorCode.ROOM_LIMIT, ErrorCode.RATE_LIMITED],
)
def join(ctx: EventContext, data: dict[str, Any]) -> Shaped:
    """Join a chat room: ack with recent history (newest first); the others hear ``chat:user_joined``. The
    history is dumped once for the ``chat:history`` event and the ack (the same schema)."""
    room_id = data["roomId"]
    room = chat_room(room_id)
    services = ctx.services
    membership = services.rooms.join(ctx.sid, ctx.user_id, room)
    history = services.chat.join(room_id, ctx.user_id, services.settings.chat_join_history)
    recent = services.broadcaster.shaped("chat:history", {"roomId": room_id, "messages": history})
    services.broadcaster.emit_local(ctx.sid, "chat:history", recent)
    if membership.user_changed:
        _announce(services, room, ctx.user_id, True, membership.users, now_iso(), ctx.sid)
    return recent


@chat.event(
    "chat:leave",
    "Leave a chat room. When it was the user's last socket there, the user stops being a member (no more "
    "offline notifications) and the others hear chat:user_left (chat:members_changed when the room is busy).",
    payload=RoomRefSchema,
    ack=RoomRefSchema,
    emits=["chat:user_left", "chat:members_changed"],
    room_required=True,
    examples=[{"roomId": "lobby"}],
    errors=[ErrorCode.VALIDATION_ERROR, ErrorCode.NOT_IN_ROOM, ErrorCode.RATE_LIMITED],
)
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
        _announce(ctx.services, room, ctx.user_id, False, membership.users, now_iso())
    return {"roomId": room_id}


@chat.event(
    "chat:message",
    "Send a message to a joined room: stored in the room's history, then chat:new_message to every member. "
    "A retry with the same clientId within 5 minutes is stored once; it is delivered once, unless the first "
    "attempt was stored but answered UNAVAILABLE: then the retry delivers it (same id). Members with no live "
    "socket get a stored notification.",
    payload=ChatMessageInSchema,
    ack=ChatSentAckSchema,
    emits=["chat:new_message"],
    room_required=True,
    examples=[
        {"roomId": "lobby", "content": "Hello!", "clientId": "c-7f3a"},
        {"roomId": "lobby", "type": "IMAGE", "mediaUrl": "https://cdn.example/p.jpg"},
    ],
    errors=[ErrorCode.VALIDATION_ERROR, ErrorCode.NOT_IN_ROOM, ErrorCode.RATE_LIMITED, ErrorCode.UNAVAILABLE],
)
def message(ctx: EventContext, data: dict[str, Any]) -> dict[str, Any]:
    """Store the message (once per ``clientId``) and send it to the room; offline members are notified."""
    room = _require_member(ctx, data["roomId"])
    message_id, duplicate = post_message(ctx.services, ctx.sid, ctx.user_id, ctx.profile, room, data)
    return {"id": message_id, "duplicate": duplicate}


@chat.event(
    "chat:history",
    "A page of older messages, newest first. Pass the ack's cursor as before for the next page; the cursor "
    "is null on the last page. Allowed for rooms the user may join.",
    payload=ChatHistoryInSchema,
    ack=ChatHistoryPageSchema,
    examples=[{"roomId": "lobby", "limit": 20}, {"roomId": "lobby", "before": "1700000000000-0", "limit": 20}],
    errors=[ErrorCode.VALIDATION_ERROR, ErrorCode.FORBIDDEN, ErrorCode.RATE_LIMITED],
)
def history(ctx: EventContext, data: dict[str, Any]) -> dict[str, Any]:
    """A page of older messages, newest first, with the cursor for the next page (null at the start)."""
    room_id = data["roomId"]
    if not ctx.services.rooms.can_join(ctx.user_id, chat_room(room_id)):
        raise RealtimeError(ErrorCode.FORBIDDEN, f"Not allowed to read chat room {room_id!r}.")
    messages, cursor = ctx.services.chat.history(room_id, data.get("before"), data["limit"])
    return {"roomId": room_id, "messages": messages, "cursor": cursor}


@chat.event(
    "chat:typing",
    "Say whether the user is typing in a joined room; the others get chat:user_typing. A repeated "
    "isTyping: true within TYPING_THROTTLE is dropped (sent: false); false always passes.",
    payload=ChatTypingInSchema,
    ack=ChatTypingAckSchema,
    emits=["chat:user_typing"],
    room_required=True,
    examples=[{"roomId": "lobby", "isTyping": True}],
    errors=[ErrorCode.VALIDATION_ERROR, ErrorCode.NOT_IN_ROOM, ErrorCode.RATE_LIMITED],
)
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


@chat.on_connect
def rejoined_rooms(ctx: EventContext, info: ConnectInfo) -> list[Outgoing]:
    """A recovered socket is back in its chat rooms: if the others heard it leave, they hear it return
    (coalesced with the room's other changes in a reconnect storm)."""
    stamp = now_iso()
    changes = [
        _announcement(ctx.services, room, ctx.user_id, True, count.users, stamp, ctx.sid)
        for room, count in info.room_counts.items()
        if room.startswith("group:") and count.user_changed
    ]
    return [change for change in changes if change is not None]


@chat.on_release
def left_rooms(info: ReleaseInfo, services: Services) -> list[Outgoing]:
    """A user whose last socket in a chat room is gone leaves it: the others hear ``chat:user_left``.

    Membership (and so offline notifications) stays: a disconnect is not a leave. Coalesced with the room's
    other changes when many leave at once.
    """
    changes = [
        _announcement(services, room, info.user_id, False, count.users, info.last_seen)
        for room, count in info.room_counts.items()
        if room.startswith("group:") and count.user_changed
    ]
    return [change for change in changes if change is not None]
