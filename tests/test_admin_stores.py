"""The admin view's reads are bounded and honest: workers drop out when they stop beating, users come a page at
a time with a bounded SCAN, the worker record caps its lists, rates are deltas over time."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import redis

from realtime.cluster.worker_status import (
    ROOMS_LISTED,
    SOCKETS_LISTED,
    RateMeter,
    WorkerStatus,
)
from realtime.stores.directory import SCAN_CALLS, RedisDirectory, glob_escape
from realtime.stores.redis.keys import Keys
from realtime.stores.socket_records import LocalSocket
from realtime.stores.workers import RedisWorkerRegistry, workers_key


class Clock:
    """A settable clock."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, decode_responses=True)


def test_a_worker_that_stops_beating_drops_out(client: redis.Redis) -> None:
    clock = Clock()
    registry = RedisWorkerRegistry(client, "rt:", ttl=3.0, clock=clock)
    registry.publish({"id": "host:1", "sockets": 5})
    clock.now += 2
    registry.publish({"id": "host:2", "sockets": 7})
    assert [w["id"] for w in registry.live()] == ["host:1", "host:2"]
    clock.now += 1.5  # host:1 beat 3.5 s ago: past its expiry, even before Redis expires its record
    assert [w["id"] for w in registry.live()] == ["host:2"]
    registry.publish({"id": "host:2", "sockets": 8})
    assert client.zrange(workers_key("rt:"), 0, -1) == ["host:2"], "a beat prunes the dead workers' entries"
    assert registry.live() == [{"id": "host:2", "sockets": 8}]


def test_users_come_a_page_at_a_time_with_a_bounded_scan(client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    keys = Keys("rt:")
    live = {f"u{i:04d}" for i in range(1200)}
    pipe = client.pipeline(transaction=False)
    for user_id in live:
        pipe.zadd(keys.user_sockets(user_id), {f"s-{user_id}": clock.now + 60})
    pipe.zadd(keys.user_sockets("gone"), {"s-gone": clock.now - 1})  # expired, not reaped yet
    for i in range(3000):  # other keys the SCAN walks past
        pipe.set(f"rt:other:{i}", 1)
    pipe.execute()
    calls: list[int] = []
    real_scan = client.scan

    def counting_scan(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real_scan(*args, **kwargs)

    monkeypatch.setattr(client, "scan", counting_scan)
    directory = RedisDirectory(client, keys, clock)
    seen: list[str] = []
    cursor: str | None = "0"
    pages = 0
    while cursor is not None:
        calls.clear()
        page = directory.users_page(cursor, 50)
        assert len(calls) <= SCAN_CALLS, "a page examines a bounded number of keys"
        assert all(sids == [f"s-{user_id}"] for user_id, sids in page.users)
        seen += [user_id for user_id, _ in page.users]
        cursor = page.next_cursor
        pages += 1
        assert pages < 500
    assert set(seen) == live, "every live user is listed, the expired one is not"
    assert pages > 1


def test_scan_pattern_takes_the_prefix_literally(client: redis.Redis) -> None:
    clock = Clock()
    client.zadd("rt*:user-sockets:mine", {"s1": clock.now + 60})
    client.zadd("rtX:user-sockets:other", {"s2": clock.now + 60})
    page = RedisDirectory(client, Keys("rt*:"), clock).users_page("0", 50)
    assert page.users == [("mine", ["s1"])]
    assert glob_escape("a*b?c[d]\\") == "a\\*b\\?c\\[d\\]\\\\"


def test_rates_are_deltas_over_time() -> None:
    clock = Clock(0.0)
    totals = {"events_received": 0.0, "events_emitted": 0.0, "deliveries": 0.0, "event_errors": 0.0}
    meter = RateMeter(lambda: totals, clock=clock)
    totals.update(events_received=30.0, deliveries=300.0, event_errors=3.0)
    clock.now = 10.0
    cumulative, rates = meter.sample()
    assert cumulative["eventsReceived"] == 30.0 and cumulative["deliveries"] == 300.0
    assert rates == {"eventsReceived": 3.0, "eventsEmitted": 0.0, "deliveries": 30.0, "eventErrors": 0.3}
    totals["events_received"] = 40.0
    clock.now = 10.5  # too soon after the last sample: the rates stand
    assert meter.sample()[1]["eventsReceived"] == 3.0
    clock.now = 20.0
    assert meter.sample()[1]["eventsReceived"] == 1.0


def test_worker_record_is_bounded() -> None:
    status = WorkerStatus(SimpleNamespace(draining=False), totals=dict)  # type: ignore[arg-type]
    sockets = [LocalSocket(f"sid{i:04d}", f"user{i % 300}", "session", [f"party:p{i}", "broadcast:all"]) for i in range(1000)]
    record = status.record(sockets)
    assert record["sockets"] == 1000 and record["users"] == 300
    assert len(record["listed"]) == SOCKETS_LISTED and len(record["rooms"]) == ROOMS_LISTED
    assert record["rooms"][0] == ("broadcast:all", 1000)
    assert "session" not in str(record["listed"]), "session ids stay out of the record"
