"""A broadcast whose id its store assigns (a chat message): logged and published by the store's own script.

The manager prepares the packet text around the id before the write (``prepare_stored``); the chat store's
script stores the message, logs the broadcast with the id spliced in and publishes it, in one round trip;
``complete_stored`` then delivers what is still to deliver. The exact channel message and the recovery-log
entry are checked against python-socketio's format on a real Redis; the managers' share with fakes.
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import gevent
import pytest
import redis

from realtime.fanout import redis_fanout, wire
from realtime.fanout.delivery import packet_offset
from realtime.fanout.emits import Emit, StoredBroadcast, id_packet
from realtime.fanout.manager import LocalFanout, PublishError
from realtime.fanout.redis_fanout import RedisFanout
from realtime.identifiers import stream_id_before
from realtime.metrics.round_trips import counting
from realtime.stores.chat import RedisChatStore
from realtime.stores.recovery import RedisRecoveryStore
from realtime.stores.recovery_packets import (
    IdPacket,
    LoggedPacket,
    ReplayPacket,
    ScriptLog,
)
from realtime.stores.redis.client import connect_redis
from realtime.stores.redis.keys import Keys
from realtime.stores.redis.scripts import ScriptSet
from tests.test_fanout import FakeLog, FakeQueue, recording

#: Text a naive splice would break: quotes, backslashes, non-ASCII, a number too long for a double.
PAYLOAD = {"roomId": "lobby", "content": 'say "hi" \\ ünïcödé ✓', "big": 12345678901234567890, "n": None}


class ScriptLogging(FakeLog):
    """A recovery log that can be written by another store's script (as the Redis one can)."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[tuple[IdPacket, str | None]] = []

    def log_in_script(self, packet: IdPacket, channel: str | None) -> ScriptLog:
        self.asked.append((packet, channel))
        return ScriptLog("log-stream", "log-last", [channel or ""])


def test_the_packet_text_around_the_id_is_the_encoded_message_once_it_is_spliced() -> None:
    for payload in (PAYLOAD, {}):
        emit = Emit("chat:new_message", payload, "group:lobby", "s1")
        packet = id_packet(emit, "id", "log:h")
        assert packet is not None
        with_id = {**payload, "id": "17-3"}
        assert json.loads(packet.payload_head + "17-3" + packet.payload_tail) == with_id
        body = packet.envelope_head + "17-3" + packet.envelope_middle + "9-1" + packet.envelope_tail
        assert json.loads(body) == wire.emit_message("chat:new_message", [with_id, "9-1"], "group:lobby", "s1", "log:h")
        assert json.loads(body)["data"][0].get("big") == payload.get("big")


def test_only_an_object_without_its_id_can_have_the_id_spliced_in() -> None:
    assert id_packet(Emit("e", ["a list"], "r"), "id", "h") is None
    assert id_packet(Emit("e", {"id": "already"}, "r"), "id", "h") is None


def test_no_stored_broadcast_without_a_log_a_script_can_write(monkeypatch: pytest.MonkeyPatch) -> None:
    emit = Emit("chat:new_message", {"content": "hi"}, "group:lobby")
    assert LocalFanout(None).prepare_stored(emit, "id") is None, "recovery off: the caller broadcasts"
    in_memory = FakeLog()
    in_memory.log_in_script = lambda packet, channel: None  # type: ignore[attr-defined]
    assert LocalFanout(in_memory).prepare_stored(emit, "id") is None  # type: ignore[arg-type]


def test_local_fanout_delivers_a_stored_broadcast_with_its_id_and_offset(monkeypatch: pytest.MonkeyPatch) -> None:
    log = ScriptLogging()
    manager = LocalFanout(log)  # type: ignore[arg-type]
    delivered = recording(manager, monkeypatch)

    stored = manager.prepare_stored(Emit("chat:new_message", {"content": "hi"}, "group:lobby"), "id")
    assert stored is not None and log.asked[0][1] is None, "one process: nothing to publish"
    assert delivered == [], "nothing is delivered before the store wrote it"
    manager.complete_stored(stored, "5-0", "12-0")

    assert delivered == [("chat:new_message", ({"content": "hi", "id": "5-0"}, "12-0"), "group:lobby", None)]
    assert log.appended == [], "the store's script logged it, not the manager"


@pytest.mark.parametrize(("publish_with_log", "channel", "pipelines"), [(True, "rt", 0), (False, None, 1)])
def test_redis_fanout_publishes_a_stored_broadcast_unless_the_script_did(
    monkeypatch: pytest.MonkeyPatch, publish_with_log: bool, channel: str | None, pipelines: int
) -> None:
    queue, log = FakeQueue(), ScriptLogging()
    manager = RedisFanout("redis://unused", "rt", queue, log, publish_with_log)  # type: ignore[arg-type]
    delivered = recording(manager, monkeypatch)

    stored = manager.prepare_stored(Emit("chat:new_message", {"content": "hi"}, "group:lobby"), "id")
    assert stored is not None and log.asked[0][1] == channel
    manager.complete_stored(stored, "5-0", "12-0")

    assert queue.executions == pipelines
    expected = wire.emit_message(
        "chat:new_message", [{"content": "hi", "id": "5-0"}, "12-0"], "group:lobby", None, f"log:{manager.host_id}"
    )
    assert [json.loads(body) for _, body in queue.published] == ([expected] if pipelines else [])
    assert delivered == [], "this worker delivers logged broadcasts from the channel, in offset order"


class OffsetsDelivered:
    """This worker's sockets, as the offsets of the broadcasts written to them, in order."""

    def __init__(self) -> None:
        self.offsets: list[str | None] = []
        #: The offsets written to each socket as it was reached (not at the hub's next turn).
        self.written_now: list[str | None] = []

    def deliver(
        self, rooms: Any, text: str, room: str, skip_sid: str | None, observe: bool = True, now: bool = False
    ) -> int:
        self.offsets.append(packet_offset(text))
        if now:
            self.written_now.append(packet_offset(text))
        return 1


def logged_elsewhere(offset: str) -> str:
    """The channel message of a broadcast that another worker logged at ``offset``."""
    return wire.encode(wire.emit_message("chat:new_message", [{"id": "x"}, offset], "group:lobby", None, "log:other"))


def logged_packet(event: str, room: str) -> LoggedPacket:
    """Another broadcast, logged for recovery and published by ``recovery_append.lua``."""
    head, tail = wire.emit_halves(event, '{"u":1}', room, None, "log:other")
    return LoggedPacket(event, room, None, '{"u":1}', head, tail)


def worker() -> tuple[RedisFanout, OffsetsDelivered, StoredBroadcast]:
    manager = RedisFanout("redis://unused", "rt", FakeQueue(), ScriptLogging(), publish_with_log=True)  # type: ignore[arg-type]
    sockets = OffsetsDelivered()
    manager.attach(sockets)  # type: ignore[arg-type]
    stored = manager.prepare_stored(Emit("chat:new_message", {"content": "hi"}, "group:lobby"), "id")
    assert stored is not None
    return manager, sockets, stored


def test_a_message_right_after_the_last_broadcast_delivered_here_is_delivered_at_once_and_its_echo_skipped() -> None:
    manager, sockets, stored = worker()
    assert manager._delivered(logged_elsewhere("11-0"))
    manager.complete_stored(stored, "5-0", "12-0", after="11-0")
    assert sockets.offsets == ["11-0", "12-0"], "delivered by the sender's handler, before its echo"
    assert sockets.written_now == ["12-0"], "and written at once"

    assert manager._delivered(stored.channel_message("5-0", "12-0"))
    assert manager._delivered(logged_elsewhere("13-0"))
    assert sockets.offsets == ["11-0", "12-0", "13-0"], "the echo is not delivered a second time"


@pytest.mark.parametrize("after", [None, "10-0"])
def test_a_message_with_an_undelivered_broadcast_before_it_waits_for_the_channel(
    after: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_fanout, "EARLY_WAIT", 0.01)
    manager, sockets, stored = worker()
    manager.complete_stored(stored, "5-0", "12-0", after=after)
    assert sockets.offsets == [], "nothing is known delivered before it: the listener delivers it in order"
    for body in (logged_elsewhere("10-0"), logged_elsewhere("11-0"), stored.channel_message("5-0", "12-0")):
        manager._delivered(body)
    assert sockets.offsets == ["10-0", "11-0", "12-0"] and sockets.written_now == []


def test_a_message_waits_for_the_broadcast_before_it_then_goes_at_once() -> None:
    """Its reply came before the one logged just before it was delivered here (another handler's, or an echo
    on its way): the handler waits for it, then writes its message at once, and the echo is skipped."""
    manager, sockets, stored = worker()
    sender = gevent.spawn(manager.complete_stored, stored, "5-0", "12-0", "11-0")
    gevent.sleep(0.01)
    assert sockets.offsets == [] and not sender.dead, "waiting for 11-0"

    manager._delivered(logged_elsewhere("11-0"))
    sender.join(1)

    assert sender.successful()
    assert sockets.offsets == ["11-0", "12-0"] and sockets.written_now == ["12-0"]
    assert manager._delivered(stored.channel_message("5-0", "12-0"))
    assert sockets.offsets == ["11-0", "12-0"], "its echo is skipped"


def test_a_waiting_message_whose_echo_arrives_first_is_left_to_the_listener() -> None:
    manager, sockets, stored = worker()
    sender = gevent.spawn(manager.complete_stored, stored, "5-0", "12-0", "11-0")
    gevent.sleep(0.01)

    manager._delivered(logged_elsewhere("11-0"))
    manager._delivered(stored.channel_message("5-0", "12-0"))
    sender.join(1)

    assert sender.successful()
    assert sockets.offsets == ["11-0", "12-0"] and sockets.written_now == [], "once, from the channel"


def test_the_wait_for_the_broadcast_before_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redis_fanout, "EARLY_WAIT", 0.05)
    manager, sockets, stored = worker()
    started = time.monotonic()
    manager.complete_stored(stored, "5-0", "12-0", after="11-0")
    assert 0.05 <= time.monotonic() - started < 1
    assert sockets.offsets == [], "left to the listener, which delivers it in order"
    manager._delivered(logged_elsewhere("11-0"))
    manager._delivered(stored.channel_message("5-0", "12-0"))
    assert sockets.offsets == ["11-0", "12-0"]


def test_a_message_whose_echo_came_first_is_not_delivered_twice() -> None:
    manager, sockets, stored = worker()
    manager._delivered(logged_elsewhere("11-0"))
    manager._delivered(stored.channel_message("5-0", "12-0"))
    manager.complete_stored(stored, "5-0", "12-0", after="11-0")
    assert sockets.offsets == ["11-0", "12-0"]


def test_an_echo_that_never_came_does_not_hide_later_broadcasts() -> None:
    manager, sockets, stored = worker()
    manager._delivered(logged_elsewhere("11-0"))
    manager.complete_stored(stored, "5-0", "12-0", after="11-0")
    # The listener reconnected: the echo of 12-0 was lost, the channel goes on with 14-0.
    manager._delivered(logged_elsewhere("14-0"))
    second = manager.prepare_stored(Emit("chat:new_message", {"content": "again"}, "group:lobby"), "id")
    assert second is not None
    manager.complete_stored(second, "6-0", "15-0", after="14-0")
    manager._delivered(second.channel_message("6-0", "15-0"))
    assert sockets.offsets == ["11-0", "12-0", "14-0", "15-0"]


def test_a_stored_broadcast_that_cannot_be_published_says_it_is_logged() -> None:
    queue = FakeQueue(failures=2)
    manager = RedisFanout("redis://unused", "rt", queue, ScriptLogging(), publish_with_log=False)  # type: ignore[arg-type]
    stored = manager.prepare_stored(Emit("chat:new_message", {"content": "hi"}, "group:lobby"), "id")
    assert stored is not None
    with pytest.raises(PublishError) as raised:
        manager.complete_stored(stored, "5-0", "12-0")
    assert raised.value.logged is True and queue.executions == 2


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    connection = connect_redis(redis_url)
    yield connection
    connection.close()


def test_the_chat_script_stores_logs_and_publishes_a_new_message_in_one_round_trip(client: redis.Redis) -> None:
    keys, scripts = Keys("rt-stored:"), ScriptSet(client)
    recovery = RedisRecoveryStore(client, keys, scripts, window=60, max_packets=100)
    chat = RedisChatStore(client, keys, scripts, max_len=100, jobs_max_len=100, clock=time.time)
    manager = RedisFanout("redis://unused", "rt-stored", client, recovery, publish_with_log=True)
    listener = client.pubsub()
    listener.subscribe("rt-stored")
    assert listener.get_message(timeout=2)["type"] == "subscribe"
    body = {**PAYLOAD, "senderId": "alice"}

    scripts.preload()
    stored = manager.prepare_stored(Emit("chat:new_message", body, "group:lobby"), "id")
    assert stored is not None
    calls_before = client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)
    with counting() as first:
        result = chat.append("lobby", body, "c-1", {"type": "chat_message"}, stored.log)
    with counting() as second:
        retry = chat.append("lobby", body, "c-1", {"type": "chat_message"}, stored.log)
    calls = client.info("commandstats")["cmdstat_evalsha"]["calls"] - calls_before

    assert (first.count, second.count, calls) == (1, 1, 2), "store, log and publish: one EVALSHA each time"
    assert result.offset is not None and not result.duplicate and result.after is None, "the log was empty"
    assert (retry.duplicate, retry.id, retry.offset) == (True, result.id, None), "a retry is neither logged nor sent"
    with_id = {**body, "id": result.id}
    assert recovery.since("0-0") == [ReplayPacket(result.offset, "chat:new_message", "group:lobby", None, with_id)]
    message = listener.get_message(timeout=2)
    assert message is not None and json.loads(message["data"]) == wire.emit_message(
        "chat:new_message", [with_id, result.offset], "group:lobby", None, f"log:{manager.host_id}"
    )
    assert listener.get_message(timeout=0.2) is None, "published once"
    assert chat.history("lobby", None, 10)[0] == [with_id]

    [between] = recovery.append([logged_packet("presence:update", "presence:alice")], "rt-stored")
    after = chat.append("lobby", body, "c-2", {"type": "chat_message"}, stored.log)
    assert (after.after, after.offset is not None) == (between, True), "the offset logged just before it"
    assert stream_id_before(between, after.offset or "") and stream_id_before(result.offset, between)
    listener.close()
