"""Party live: viewers join ``party:{partyId}`` and everyone sees the cluster-wide count of distinct viewers
(a user with two tabs counts once)."""
from __future__ import annotations

from typing import Any

from realtime.errors import ErrorCode, RealtimeError
from realtime.fanout.broadcaster import Outgoing
from realtime.schemas.party import (
    PartyMediaOutSchema,
    PartyRefSchema,
    PartyStatusOutSchema,
    PartyViewerOutSchema,
    PartyViewersAckSchema,
)
from realtime.services.container import Services
from realtime.sockets.blueprint import EventContext, SocketBlueprint
from realtime.stores.socket_records import ConnectInfo, ReleaseInfo

party = SocketBlueprint("party")
party.emits(
    "party:viewer_joined",
    PartyViewerOutSchema,
    "A user started watching (their first socket in the feed); viewerCount is the cluster-wide count of "
    "distinct viewers.",
    to="party:{partyId} except the new viewer",
    examples=[{"userId": "bob", "partyId": "p42", "viewerCount": 3}],
)
party.emits(
    "party:viewer_left",
    PartyViewerOutSchema,
    "A user stopped watching, disconnected, or their worker died (their last socket in the feed).",
    to="party:{partyId}",
    examples=[{"userId": "bob", "partyId": "p42", "viewerCount": 2}],
)
party.emits(
    "party:status_changed",
    PartyStatusOutSchema,
    "The party's status changed; published by back-end services (POST /api/v1/parties/{id}/status).",
    to="party:{partyId}",
    examples=[{"partyId": "p42", "status": "LIVE"}],
    publishable=True,
)
party.emits(
    "party:new_media",
    PartyMediaOutSchema,
    "New media in the party; published by back-end services (POST /api/v1/parties/{id}/media).",
    to="party:{partyId}",
    examples=[
        {
            "partyId": "p42",
            "media": {"id": "m1", "type": "IMAGE", "url": "https://cdn.example/m1.jpg", "uploadedBy": "alice"},
        }
    ],
    publishable=True,
)


def party_room(party_id: str) -> str:
    """The Socket.IO room of a party's live feed."""
    return f"party:{party_id}"


@party.event(
    "party:join_live",
    "Watch a party's live feed (party:{partyId}). The ack and the others' party:viewer_joined carry the "
    "cluster-wide count of distinct viewers; a second tab does not count twice.",
    payload=PartyRefSchema,
    ack=PartyViewersAckSchema,
    emits=["party:viewer_joined"],
    examples=[{"partyId": "p42"}],
    errors=[ErrorCode.VALIDATION_ERROR, ErrorCode.FORBIDDEN, ErrorCode.ROOM_LIMIT, ErrorCode.RATE_LIMITED],
)
def join_live(ctx: EventContext, data: dict[str, Any]) -> dict[str, Any]:
    """Watch the live feed; ack and the others get the new cluster-wide viewer count."""
    party_id = data["partyId"]
    room = party_room(party_id)
    membership = ctx.services.rooms.join(ctx.sid, ctx.user_id, room)
    viewer = {"userId": ctx.user_id, "partyId": party_id, "viewerCount": membership.users}
    if membership.user_changed:
        ctx.services.broadcaster.emit("party:viewer_joined", viewer, to=room, skip_sid=ctx.sid)
    return {"partyId": party_id, "viewerCount": membership.users}


@party.event(
    "party:leave_live",
    "Stop watching; the remaining viewers get party:viewer_left with the new count.",
    payload=PartyRefSchema,
    ack=PartyViewersAckSchema,
    emits=["party:viewer_left"],
    room_required=True,
    examples=[{"partyId": "p42"}],
    errors=[ErrorCode.VALIDATION_ERROR, ErrorCode.NOT_IN_ROOM, ErrorCode.RATE_LIMITED],
)
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


@party.on_connect
def rejoined_parties(ctx: EventContext, info: ConnectInfo) -> list[Outgoing]:
    """A recovered socket is back in its live feeds: the viewers get the count again."""
    return [
        Outgoing(
            "party:viewer_joined",
            {"userId": ctx.user_id, "partyId": room[len("party:"):], "viewerCount": count.users},
            room,
            skip_sid=ctx.sid,
        )
        for room, count in info.room_counts.items()
        if room.startswith("party:") and count.user_changed
    ]


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
