"""The JSON codec python-socketio and python-engineio read and write packets with.

The standard library's, with python-engineio's own bound on integer literals (a 100,000-digit number in a
hostile packet would make ``int()`` work for seconds), but with the decoder built once: python-engineio's
``engineio.json.loads`` passes ``parse_int`` on every call, which makes the standard library build a new
``JSONDecoder`` for every packet received. Packets are written by orjson (:mod:`realtime.json_text`).
Passed to Flask-SocketIO as ``json``.
"""
from __future__ import annotations

import json
from typing import Any

from realtime import json_text

#: The longest integer literal a packet may carry (python-engineio's bound).
MAX_INT_DIGITS = 100


def bounded_int(literal: str) -> int:
    """An integer literal of at most :data:`MAX_INT_DIGITS` characters.

    :raises ValueError: for a longer one (the packet is refused as undecodable).
    """
    if len(literal) > MAX_INT_DIGITS:
        raise ValueError("Integer is too large")
    return int(literal)


_decoder = json.JSONDecoder(parse_int=bounded_int)
JSONDecodeError = json.JSONDecodeError
_COMPACT = (",", ":")


def dumps(value: Any, **kwargs: Any) -> str:
    """A packet's JSON: compact, as python-socketio asks for it, by :func:`realtime.json_text.dumps`; any other
    formatting by the standard library."""
    if kwargs.get("separators") == _COMPACT and len(kwargs) == 1:
        return json_text.dumps(value)
    return json.dumps(value, **kwargs)


def loads(text: str | bytes | bytearray, **kwargs: Any) -> Any:
    """Decode one packet's JSON, integers bounded; extra keyword arguments take the library's slow path."""
    if kwargs:
        return json.loads(text, **{"parse_int": bounded_int, **kwargs})
    if not isinstance(text, str):
        text = bytes(text).decode("utf-8")
    return _decoder.decode(text)
