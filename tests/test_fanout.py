"""The fan-out managers: exact queue messages, offsets, one pipeline per broadcast, retries, self-probes.

The Redis client and the recovery log are swapped for recording fakes, as python-socketio's own manager
tests swap ``_publish``; delivery to sockets is recorded at ``emit``.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import gevent
import pytest
import redis
import socketio

from realtime.fanout import wire
from realtime.fanout.emits import Emit
from realtime.fanout.manager import LocalFanout, PublishError
from realtime.fanout.redis_fanout import RedisFanout
from realtime.stores.recovery_packets import LoggedPacket


class FakeQueue:
    """A Redis client that records pipelined publishes and fails the next ``failures`` executions."""

    def __init__(self, failures: int = 0, error: type[redis.RedisError] = redis.ConnectionError) -> None:
        self.published: list[tuple[str, str]] = []
        self.executions = 0
        self.failures = failures
        self.error = error
        self.on_publish: Any = None

    def pipeline(self, transaction: bool = True) -> FakeQueue.Pipe:
        return FakeQueue.Pipe(self)

    def publish(self, channel: str, body: str) -> int:
        self.published.append((channel, body))
        if self.on_publish is not None:
            self.on_publish(body)
        return 1

    class Pipe:
        def __init__(self, queue: FakeQueue) -> None:
            self.queue = queue
            self.pending: list[tuple[str, str]] = []

        def publish(self, channel: str, body: str) -> None:
            self.pending.append((channel, body))

        def execute(self) -> None:
            self.queue.executions += 1
            if self.queue.failures:
                self.queue.failures -= 1
                raise self.queue.error("down")
            self.queue.published += self.pending


class FakeLog:
    """A recovery log that hands out offsets 1-0, 2-0, … and remembers the channel it was asked to use."""

    def __init__(self) -> None:
        self.appended: list[tuple[list[LoggedPacket], str | None]] = []

    def append(self, packets: Sequence[LoggedPacket], channel: str | None) -> list[str]:
        start = sum(len(p) for p, _ in self.appended)
        self.appended.append((list(packets), channel))
        return [f"{start + i + 1}-0" for i in range(len(packets))]


def recording(manager: Any, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any, str, str | None]]:
    """Deliveries to this process's sockets (python-socketio's ``Manager.emit``), as (event, data, room, skip_sid)."""
    delivered: list[tuple[str, Any, str, str | None]] = []

    def emit(self: Any, event: str, data: Any, namespace: str | None = None, room: str | None = None,
             skip_sid: str | None = None, **kwargs: Any) -> None:
        assert self is manager and namespace == "/"
        delivered.append((event, data, str(room), skip_sid))

    monkeypatch.setattr(socketio.Manager, "emit", emit)
    return delivered


EMITS = [Emit("chat:new_message", {"id": "9-0"}, "group:lobby"), Emit("party:viewer_left", {"u": 1}, "party:p", "s1")]


def test_local_fanout_logs_then_delivers_with_offsets(monkeypatch: pytest.MonkeyPatch) -> None:
    log = FakeLog()
    manager = LocalFanout(log)  # type: ignore[arg-type]
    delivered = recording(manager, monkeypatch)

    manager.broadcast(EMITS)

    assert [(p.event, p.room, p.skip_sid, p.payload_json) for p in log.appended[0][0]] == [
        ("chat:new_message", "group:lobby", None, '{"id":"9-0"}'),
        ("party:viewer_left", "party:p", "s1", '{"u":1}'),
    ]
    assert log.appended[0][1] is None
    assert delivered == [
        ("chat:new_message", ({"id": "9-0"}, "1-0"), "group:lobby", None),
        ("party:viewer_left", ({"u": 1}, "2-0"), "party:p", "s1"),
    ]


def test_redis_fanout_without_recovery_delivers_here_and_publishes_one_pipeline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    queue = FakeQueue()
    manager = RedisFanout("redis://unused", "rt", queue, None, publish_with_log=False)  # type: ignore[arg-type]
    delivered = recording(manager, monkeypatch)

    manager.broadcast(EMITS)

    assert queue.executions == 1
    assert queue.published == [
        ("rt", wire.encode(wire.emit_message(e.event, [e.payload], e.room, e.skip_sid, manager.host_id))) for e in EMITS
    ]
    assert delivered == [(e.event, e.payload, e.room, e.skip_sid) for e in EMITS]


@pytest.mark.parametrize(("publish_with_log", "log_channel", "pipelines"), [(True, "rt", 0), (False, None, 1)])
def test_redis_fanout_logged_broadcasts_carry_offsets_and_a_host_id_its_own_listener_delivers(
    monkeypatch: pytest.MonkeyPatch, publish_with_log: bool, log_channel: str | None, pipelines: int
) -> None:
    queue, log = FakeQueue(), FakeLog()
    manager = RedisFanout("redis://unused", "rt", queue, log, publish_with_log)  # type: ignore[arg-type]
    delivered = recording(manager, monkeypatch)

    manager.broadcast(EMITS)

    packets, channel = log.appended[0]
    assert channel == log_channel
    assert queue.executions == pipelines
    bodies = [p.envelope_head + f"{i + 1}-0" + p.envelope_tail for i, p in enumerate(packets)]
    assert [json.loads(b) for b in bodies] == [
        wire.emit_message(e.event, [e.payload, f"{i + 1}-0"], e.room, e.skip_sid, f"log:{manager.host_id}")
        for i, e in enumerate(EMITS)
    ]
    assert [body for _, body in queue.published] == (bodies if pipelines else [])
    assert delivered == [], "this worker delivers logged broadcasts from the channel, in offset order"


def test_a_publish_is_retried_once(monkeypatch: pytest.MonkeyPatch) -> None:
    queue = FakeQueue(failures=1)
    manager = RedisFanout("redis://unused", "rt", queue, None, publish_with_log=False)  # type: ignore[arg-type]
    recording(manager, monkeypatch)

    manager.broadcast(EMITS[:1])

    assert (queue.executions, len(queue.published), manager.failed_publishes) == (2, 1, 0)


@pytest.mark.parametrize(("recovery", "logged"), [(None, False), (FakeLog(), True)])
def test_a_second_failure_raises_publish_error_saying_whether_the_log_holds_the_packets(
    monkeypatch: pytest.MonkeyPatch, recovery: FakeLog | None, logged: bool
) -> None:
    queue = FakeQueue(failures=2)
    manager = RedisFanout("redis://unused", "rt", queue, recovery, publish_with_log=False)  # type: ignore[arg-type]
    recording(manager, monkeypatch)

    with pytest.raises(PublishError) as raised:
        manager.broadcast(EMITS)

    assert raised.value.logged is logged
    assert manager.failed_publishes == 2


def test_a_refused_write_is_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    queue = FakeQueue(failures=2, error=redis.ReadOnlyError)
    manager = RedisFanout("redis://unused", "rt", queue, None, publish_with_log=False)  # type: ignore[arg-type]
    recording(manager, monkeypatch)

    with pytest.raises(redis.ReadOnlyError):
        manager.broadcast(EMITS[:1])

    assert (queue.executions, manager.failed_publishes) == (1, 1)


def test_unlogged_broadcasts_get_no_offset(monkeypatch: pytest.MonkeyPatch) -> None:
    log = FakeLog()
    manager = LocalFanout(log)  # type: ignore[arg-type]
    delivered = recording(manager, monkeypatch)

    manager.broadcast_unlogged(EMITS[:1])

    assert log.appended == []
    assert delivered == [("chat:new_message", {"id": "9-0"}, "group:lobby", None)]


@pytest.mark.parametrize("heard", [True, False])
def test_probe_listener_waits_for_its_marker_and_never_delivers_it(monkeypatch: pytest.MonkeyPatch, heard: bool) -> None:
    queue = FakeQueue()
    manager = RedisFanout("redis://unused", "rt", queue, None, publish_with_log=False)  # type: ignore[arg-type]
    delivered = recording(manager, monkeypatch)
    if heard:
        queue.on_publish = lambda body: gevent.spawn(manager._handle_emit, json.loads(body))

    assert manager.probe_listener(0.2) is heard
    assert delivered == []
    ((channel, body),) = queue.published
    assert channel == "rt" and json.loads(body)["host_id"] == f"probe:{manager.host_id}"
