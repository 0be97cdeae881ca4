"""Compact JSON text for what goes on the wire and into Redis, written by orjson (issue 9).

orjson writes the same JSON as ``json.dumps(value, separators=(",", ":"), ensure_ascii=False)`` about ten
times faster, and a chat message is serialised several times on its way out (the stored message, its
recovery packet, the channel message). What orjson refuses (integers past 64 bits, keys that are not
strings, nesting past its limit) is written by the standard library instead. The differences are in form
only, and intended: non-ASCII characters are written as UTF-8 rather than ``\\u`` escapes, a float's exponent
without a leading zero (``1e-7``, not ``1e-07``), and a float NaN or infinity as ``null`` (the standard
library writes ``NaN``, which ``JSON.parse`` refuses). Reading stays the standard library's: orjson reads an
integer past 64 bits as a float.
"""
from __future__ import annotations

import json
from typing import Any

import orjson

_fallback = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def dumps(value: Any) -> str:
    """``value`` as compact JSON text."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # orjson.JSONEncodeError: what orjson does not write (module docstring)
        return _fallback(value)

