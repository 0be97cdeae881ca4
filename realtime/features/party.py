"""Party live: viewers join ``party:{partyId}`` and everyone sees the cluster-wide count of distinct viewers
(a user with two tabs counts once)."""
from __future__ import annotations

from typing import Any

from realtime.broadcaster import Outgoing
from realtime.errors import ErrorCode, RealtimeError
from realtime.schemas.party import PartyMediaOutSchema, PartyRefSchema, PartyStatusOutSchema, PartyViewerOutSchema
from realtime.services import Services
from realtime.socket_state import ReleaseInfo
from realtime.sockets.blueprint import EventContext, SocketBlueprint

party = SocketBlueprint("party")
party.emits("party:viewer_joined", PartyViewerOutSchema, "A viewer joined the live feed (to the other viewers).")
party.emits(
    "party:viewer_left", PartyViewerOutSchema, "A viewer left or disconnected (to the remaining viewers)."
)
party.emits(
    "party:status_changed",
    PartyStatusOutSchema,
    "The party's status changed (sent by the server API: POST /api/v1/parties/{id}/status).",
    publishable=True,
)
party.emits(
    "party:new_media",
    PartyMediaOutSchema,
    "New media in the party (sent by the server API: POST /api/v1/parties/{id}/media).",
    publishable=True,
)


def party_room(party_id: str) -> str:
    """The Socket.IO room of a party's live feed."""
    return f"party:{party_id}"


@party.on("party:join_live", PartyRefSchema)
def join_live(ctx: EventContext, data: dict[str, Any]) -> dict[str, Any]:
    """Watch the live feed; ack and the others get the new cluster-wide viewer count."""
    party_id = data["partyId"]
    room = party_room(party_id)
    membership = ctx.services.rooms.join(ctx.sid, ctx.user_id, room)
    viewer = {"userId": ctx.user_id, "partyId": party_id, "viewerCount": membership.users}
    if membership.user_changed:
        ctx.services.broadcaster.emit("party:viewer_joined", viewer, to=room, skip_sid=ctx.sid)
    return {"partyId": party_id, "viewerCount": membership.users}


@party.on("party:leave_live", PartyRefSchema)
def leave_live(ctx: EventContext, data: dict[str, Any]) -> dict[str, Any]:
    """Stop watching; the remaining viewers get the new count."""
    party_id = data["partyId"]
    room = party_room(party_id)
    membership = ctx.services.rooms.leave(ctx.sid, ctx.user_id, room)
    if not membership.changed:
        raise RealtimeError(ErrorCode.NOT_IN_ROOM, f"Not watching party {party_id!r}.")
    viewer = {"userId": ctx.user_id, "partyId": party_id, "viewerCount": membership.users}
    if membership.user_changed:
        ctx.services.broadcaster.emit("party:viewer_left", viewer, to=room)
    return {"partyId": party_id, "viewerCount": membership.users}


@party.on_release
def left_parties(info: ReleaseInfo, services: Services) -> list[Outgoing]:
    """A viewer whose last socket is gone (disconnect or dead worker) leaves: the others get the count."""
    return [
        Outgoing(
            "party:viewer_left",
            {"userId": info.user_id, "partyId": room[len("party:"):], "viewerCount": count.users},
            room,
        )
        for room, count in info.room_counts.items()
        if room.startswith("party:") and count.user_changed
    ]
