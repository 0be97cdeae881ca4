"""Script calls made while every lane is busy share one round trip (realtime.stores.redis.grouped_calls)."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gevent
import hiredis
import pytest
import redis
from gevent.event import Event
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from realtime.metrics.round_trips import counting
from realtime.stores.redis.client import connect_redis
from realtime.stores.redis.grouped_calls import GroupedCalls, _Call
from tests.helpers.redis_server import free_port

ECHO = (
    "redis.call('INCR', KEYS[1]) if ARGV[1] == 'bad' then return redis.error_reply('BAD') end "
    "if ARGV[1] == 'nil' then return false end "
    "if ARGV[1] == 'slow' then local i = 0 while i < 3000000 do i = i + 1 end end return ARGV[1]"
)


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    connection = connect_redis(redis_url)
    connection.flushdb()
    yield connection
    connection.flushdb()
    connection.close()


def packed(client: redis.Redis, arg: str) -> bytes:
    sha = client.script_load(ECHO)
    return hiredis.pack_command(("EVALSHA", sha, 1, "calls", arg))


class Writes:
    """Counts the writes of ``client``'s connections."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, client: redis.Redis) -> None:
        self.count = 0
        cls = client.connection_pool.connection_class
        original = cls.send_packed_command

        def send(conn: Any, command: Any, check_health: bool = True) -> None:
            self.count += 1
            original(conn, command, check_health)

        monkeypatch.setattr(cls, "send_packed_command", send)


def run_concurrently(calls: GroupedCalls, commands: list[bytes]) -> list[Any]:
    def one(command: bytes) -> Any:
        with counting() as trips:
            try:
                reply: Any = calls.call(command)
            except ResponseError as exc:
                reply = exc
        return reply, trips.count

    workers = [gevent.spawn(one, command) for command in commands]
    gevent.joinall(workers, raise_error=True, timeout=10)
    return [w.value for w in workers]


def test_a_call_with_a_free_lane_is_written_at_once(client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = GroupedCalls(client, lanes=2)
    a, b = packed(client, "a"), packed(client, "b")
    writes = Writes(monkeypatch, client)
    assert calls.call(a) == "a"
    assert calls.call(b) == "b"
    assert writes.count == 2


def test_calls_made_while_every_lane_is_busy_share_round_trips_and_each_gets_its_own_reply(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = GroupedCalls(client, lanes=1)
    commands = [packed(client, f"reply-{i}") for i in range(60)]
    writes = Writes(monkeypatch, client)
    results = run_concurrently(calls, commands)
    assert [reply for reply, _trips in results] == [f"reply-{i}" for i in range(60)]
    # The first goes alone; the 59 that queued behind it go in one write.
    assert writes.count == 2
    # Each event still counts its round trip once.
    assert [trips for _reply, trips in results] == [1] * 60
    assert client.get("calls") == "60"


def test_a_batch_is_capped_and_the_lane_passes_on_until_the_queue_is_empty(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = GroupedCalls(client, lanes=1, max_batch=10)
    commands = [packed(client, str(i)) for i in range(35)]
    writes = Writes(monkeypatch, client)
    results = run_concurrently(calls, commands)
    assert [reply for reply, _trips in results] == [str(i) for i in range(35)]
    assert writes.count == 5  # 1, then 10, 10, 10, 4
    assert calls.call(packed(client, "after")) == "after"  # the lane was freed


def test_an_error_reply_or_a_nil_goes_to_its_own_caller_only(client: redis.Redis) -> None:
    calls = GroupedCalls(client, lanes=1)
    args = ["a", "bad", "nil", "b", "bad", "c"]
    results = run_concurrently(calls, [packed(client, arg) for arg in args])
    replies = [reply for reply, _trips in results]
    assert replies[0] == "a" and replies[2] is None and replies[3] == "b" and replies[5] == "c"
    assert isinstance(replies[1], ResponseError) and isinstance(replies[4], ResponseError)
    assert "BAD" in str(replies[1])


def test_a_caller_that_stops_waiting_before_its_turn_is_not_sent(client: redis.Redis) -> None:
    calls = GroupedCalls(client, lanes=1)
    slow, gone_command, kept_command = packed(client, "slow"), packed(client, "gone"), packed(client, "kept")
    first = gevent.spawn(calls.call, slow)
    gevent.sleep(0)  # first is in flight (Redis runs it for some milliseconds)
    gone = gevent.spawn(calls.call, gone_command)
    kept = gevent.spawn(calls.call, kept_command)
    gevent.sleep(0)  # both are queued
    gone.kill()
    assert first.get(timeout=5) == "slow"
    assert kept.get(timeout=5) == "kept"
    assert client.get("calls") == "2"


def test_a_batch_whose_runner_stopped_waiting_is_run_for_its_other_callers(client: redis.Redis) -> None:
    calls = GroupedCalls(client, lanes=1)
    calls._free = 0  # the lane is "in flight"
    runner, other = _Call(packed(client, "runner"), Event()), _Call(packed(client, "other"), Event())
    runner.batch = [runner, other]
    calls._abandon(runner)
    assert other.done.wait(timeout=5)
    assert other.result() == "other"
    assert calls._free == 1
    assert client.get("calls") == "2"


def test_a_failed_round_trip_fails_every_call_of_its_batch_and_frees_its_lane() -> None:
    dead = redis.Redis(port=free_port(), socket_connect_timeout=0.2, retry=None, decode_responses=True)
    calls = GroupedCalls(dead, lanes=1)
    command = hiredis.pack_command(("EVALSHA", "0" * 40, 0))
    results = []

    def one() -> None:
        try:
            calls.call(command)
        except RedisConnectionError as exc:
            results.append(exc)

    gevent.joinall([gevent.spawn(one) for _ in range(5)], timeout=10)
    assert len(results) == 5
    assert calls._free == 1
