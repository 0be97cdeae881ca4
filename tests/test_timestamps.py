"""The wire's timestamps: what ``datetime.isoformat(timespec="milliseconds")`` writes, without a datetime."""
from __future__ import annotations

import random
import time
from datetime import UTC, datetime

import pytest

from realtime.timestamps import iso, now_iso


def _by_datetime(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@pytest.mark.parametrize(
    "ts",
    [0.0, 0.0009995, 0.9999995, 1.0009995, 59.9999999, 1795668326.1209996, 1795668325.9869998, 4102444799.9995, -0.5],
)
def test_rounding_at_the_edges_is_datetimes(ts: float) -> None:
    assert iso(ts) == _by_datetime(ts)


def test_any_time_reads_as_datetime_writes_it() -> None:
    rng = random.Random(9)
    stamps = [rng.uniform(0, 4e9) for _ in range(20_000)] + [time.time() + rng.random() for _ in range(20_000)]
    assert [iso(ts) for ts in stamps] == [_by_datetime(ts) for ts in stamps]


def test_now_is_the_clocks_time() -> None:
    before = _by_datetime(time.time())
    stamp = now_iso()
    after = _by_datetime(time.time())
    assert before <= stamp <= after and stamp.endswith("Z") and len(stamp) == 24
