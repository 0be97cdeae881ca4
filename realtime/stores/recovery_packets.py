"""What the recovery log holds and how it is written: packets going in, packets read back for replay, and
the arguments with which another store's script logs a packet in its own round trip."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LoggedPacket:
    """A broadcast to log: its event, target room, skipped sid and payload as JSON."""

    event: str
    room: str
    skip_sid: str | None
    payload_json: str
    envelope_head: str = ""
    envelope_tail: str = ""


@dataclass(frozen=True)
class IdPacket:
    """A broadcast to log whose payload carries an id that another store's script assigns in the same round
    trip: its payload and its channel message, each before and after that id."""

    event: str
    room: str
    skip_sid: str | None
    payload_head: str
    payload_tail: str
    envelope_head: str
    #: The channel message between the id and the offset.
    envelope_middle: str
    envelope_tail: str


@dataclass(frozen=True)
class ScriptLog:
    """The extra KEYS and ARGV with which a script that includes ``lua/recovery_fn.lua`` logs an
    :class:`IdPacket` (``lua/chat_append.lua`` does)."""

    key: str
    #: The key that keeps the offset logged last (:meth:`realtime.stores.redis.keys.Keys.recovery_last`).
    last_key: str
    args: list[Any]


@dataclass(frozen=True)
class ReplayPacket:
    """A logged broadcast read back for replay."""

    offset: str
    event: str
    room: str
    skip_sid: str | None
    payload: Any
