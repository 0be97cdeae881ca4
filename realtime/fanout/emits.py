"""Broadcasts on their way out: :class:`Emit`, and :class:`StoredBroadcast` for one whose payload carries an
id that the store writing it assigns (a chat message's stream id), logged by that store in its round trip."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from realtime import json_text
from realtime.fanout import wire
from realtime.stores.recovery_packets import IdPacket, ScriptLog


class Emit(NamedTuple):
    """One shaped broadcast: event, payload as sent, target room (or sid) and a sid to leave out."""

    event: str
    payload: Any
    room: str
    skip_sid: str | None = None


class Shaped(NamedTuple):
    """A payload already dumped through the declared schema of ``event``: sent (or acked) as it is, not dumped
    a second time (a chat join sends its history as an event and as the ack)."""

    event: str
    data: Any


@dataclass(frozen=True)
class StoredBroadcast:
    """``emit`` (its payload without ``id_field``) prepared for the store's script: ``log`` is what that
    script needs to log it with the id in ``id_field`` (``lua/recovery_fn.lua``), ``packet`` its text."""

    emit: Emit
    id_field: str
    packet: IdPacket
    log: ScriptLog

    def payload_with(self, value: str) -> dict[str, Any]:
        """The payload as delivered, with ``value`` as its id."""
        return {**self.emit.payload, self.id_field: value}

    def channel_message(self, value: str, offset: str) -> str:
        """The channel message of the broadcast with id ``value`` at ``offset``."""
        p = self.packet
        return p.envelope_head + value + p.envelope_middle + offset + p.envelope_tail


def id_packet(emit: Emit, id_field: str, host_id: str) -> IdPacket | None:
    """The text of ``emit`` with the id that goes into ``id_field`` left out (it becomes the payload's last
    field, a string); None when the payload is not a JSON object without that field."""
    payload = emit.payload
    if not isinstance(payload, dict) or id_field in payload:
        return None
    rest = json_text.dumps(payload)[:-1]
    payload_head = f"{rest}{',' if payload else ''}{json_text.dumps(id_field)}:\""
    payload_tail = '"}'
    head, tail = wire.emit_halves(emit.event, "", emit.room, emit.skip_sid, host_id)
    return IdPacket(
        event=emit.event,
        room=emit.room,
        skip_sid=emit.skip_sid,
        payload_head=payload_head,
        payload_tail=payload_tail,
        envelope_head=head[: -len(',"')] + payload_head,
        envelope_middle=payload_tail + ',"',
        envelope_tail=tail,
    )
