"""ISO-8601 UTC timestamps with milliseconds (``2026-11-26T04:33:27.123Z``), as the wire shows times.

Formatted from the Unix time without building a ``datetime``: a chat message takes one, and the second's
prefix is kept while the clock stays in it.
"""
from __future__ import annotations

import math
import time

_second = -1
_prefix = ""


def iso(ts: float) -> str:
    """Unix seconds as an ISO-8601 UTC string with milliseconds (truncated, as ``isoformat`` does)."""
    global _second, _prefix
    fraction, whole = math.modf(ts)
    if fraction < 0:
        fraction, whole = fraction + 1.0, whole - 1.0
    micros = round(fraction * 1e6)  # to the microsecond first, half to even, as datetime.fromtimestamp rounds
    second = int(whole) + (micros >= 1_000_000)
    milli = (micros % 1_000_000) // 1000
    if second != _second:
        _prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _second = second
    return f"{_prefix}.{milli:03d}Z"


def now_iso() -> str:
    """The current time, as :func:`iso` writes it."""
    return iso(time.time())
