"""Chat: join and leave ``group:{roomId}`` rooms, send messages to them."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from realtime.errors import ErrorCode, RealtimeError
from realtime.extensions import socketio
from realtime.schemas.chat import ChatMessageInSchema, ChatMessageOutSchema, RoomRefSchema
from realtime.sockets.blueprint import EventContext, SocketBlueprint

chat = SocketBlueprint("chat")
_out = ChatMessageOutSchema()


def chat_room(room_id: str) -> str:
    """The Socket.IO room behind a chat room id."""
    return f"group:{room_id}"


@chat.on("chat:join", RoomRefSchema)
def join(ctx: EventContext, data: dict[str, Any]) -> dict[str, Any]:
    """Join the chat room (authorized by the ``group:`` hook)."""
    room = chat_room(data["roomId"])
    ctx.services.rooms.join(ctx.sid, ctx.user_id, room)
    return {"roomId": data["roomId"]}


@chat.on("chat:leave", RoomRefSchema)
def leave(ctx: EventContext, data: dict[str, Any]) -> dict[str, Any]:
    """Leave the chat room; the socket stops receiving it."""
    if not ctx.services.rooms.leave(ctx.sid, chat_room(data["roomId"])):
        raise RealtimeError(ErrorCode.NOT_IN_ROOM, f"Not in chat room {data['roomId']!r}.")
    return {"roomId": data["roomId"]}


@chat.on("chat:message", ChatMessageInSchema)
def message(ctx: EventContext, data: dict[str, Any]) -> dict[str, Any]:
    """Send a message to every member of the room, the sender included."""
    room = chat_room(data["roomId"])
    if not ctx.services.rooms.is_member(ctx.sid, room):
        raise RealtimeError(ErrorCode.NOT_IN_ROOM, f"Join chat room {data['roomId']!r} before sending to it.")
    outgoing = _out.dump(
        {
            "id": uuid.uuid4().hex,
            "roomId": data["roomId"],
            "senderId": ctx.user_id,
            "content": data["content"],
            "createdAt": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }
    )
    socketio.emit("chat:new_message", outgoing, to=room, namespace="/")
    return {"id": outgoing["id"]}
