"""python-socketio's message-queue format for an ``emit``: the one place this project writes it.

``PubSubManager.emit`` publishes, and every listener hands to ``PubSubManager._handle_emit``, a JSON object
``{"method": "emit", "event", "data", "binary", "namespace", "room", "skip_sid", "callback", "host_id"}``,
where ``data`` is the list of the event's arguments. A listener skips messages whose ``host_id`` is its own
manager's (it has delivered them already). The servers' managers (:mod:`realtime.fanout.manager`), the
emitter for other processes (:mod:`realtime.fanout.emitter`) and the listener self-probes (:mod:`realtime.cluster.probes`)
all build it here; ``tests/test_library_pins.py`` pins it to what python-socketio publishes and reads.
"""
from __future__ import annotations

from typing import Any

from realtime import json_text

NAMESPACE = "/"


def emit_message(event: str, data: list[Any], room: str, skip_sid: str | None, host_id: str) -> dict[str, Any]:
    """The queue message that delivers ``event`` with arguments ``data`` to ``room`` (minus ``skip_sid``).

    :param host_id: the sending manager's ``host_id`` (listeners skip their own), or any other string to be
        delivered by every listener, the sender's included.
    """
    return {
        "method": "emit",
        "event": event,
        "data": data,
        "binary": False,
        "namespace": NAMESPACE,
        "room": room,
        "skip_sid": skip_sid,
        "callback": None,
        "host_id": host_id,
    }


def encode(message: dict[str, Any]) -> str:
    """A queue message as the JSON text published on the channel."""
    return json_text.dumps(message)


def emit_halves(event: str, payload_json: str, room: str, skip_sid: str | None, host_id: str) -> tuple[str, str]:
    """The text of ``encode(emit_message(event, [payload, offset], ...))`` before and after ``offset``.

    The recovery log learns a broadcast's offset only inside Redis (``lua/recovery_append.lua``), which splices
    it between these halves; the payload goes in already serialized, never decoded and re-encoded there.
    """
    head = f'{{"method":"emit","event":{json_text.dumps(event)},"data":[{payload_json},"'
    tail = (
        f'"],"binary":false,"namespace":{json_text.dumps(NAMESPACE)},"room":{json_text.dumps(room)},'
        f'"skip_sid":{json_text.dumps(skip_sid)},"callback":null,"host_id":{json_text.dumps(host_id)}}}'
    )
    return head, tail
