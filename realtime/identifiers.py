"""The shapes of ids: identifiers (in room names and tokens) and stream ids (messages, cursors, offsets)."""
from __future__ import annotations

import re
from typing import NamedTuple

#: ASCII letters, digits, '_' and '-', 1 to 64 characters: no dots, slashes, spaces or look-alike unicode.
IDENTIFIER = re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII)


def is_identifier(value: object) -> bool:
    """Whether ``value`` is a string of the identifier shape."""
    return isinstance(value, str) and IDENTIFIER.fullmatch(value) is not None


#: A stream id as JSON Schema documents it; 19 digits always fit Redis's 64-bit parts.
STREAM_ID_PATTERN = "^[0-9]{1,19}-[0-9]{1,19}$"


class StreamId(NamedTuple):
    """A Redis stream id ``ms-seq``: chat message ids, history cursors and recovery offsets. Ordered."""

    ms: int
    seq: int

    @classmethod
    def parse(cls, value: str) -> StreamId:
        """Read ``ms-seq``; a missing part counts as 0.

        :raises ValueError: when a part is not a number.
        """
        ms, _, seq = value.partition("-")
        return cls(int(ms or 0), int(seq or 0))

    def __str__(self) -> str:
        return f"{self.ms}-{self.seq}"


def is_stream_id(value: str) -> bool:
    """Whether ``value`` is exactly ``ms-seq`` with 1-19 ASCII digits each (:data:`STREAM_ID_PATTERN`)."""
    ms, sep, seq = value.partition("-")
    return bool(sep) and all(p and len(p) <= 19 and p.isascii() and p.isdigit() for p in (ms, seq))


def stream_id_before(a: str, b: str) -> bool:
    """Whether stream id ``a`` comes before ``b``; an unreadable ``a`` or ``b`` counts as before."""
    try:
        return StreamId.parse(a) < StreamId.parse(b)
    except ValueError:
        return True
