"""Recent errors for the admin view: kept per process, shared through Redis, and never a wait for the caller."""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import gevent
import pytest
import redis
from flask import Flask
from flask_socketio import SocketIOTestClient

from realtime.cluster import recent_errors as recent
from realtime.cluster.recent_errors import RecentErrors, recent_errors
from tests.helpers.e2e_kit import wait_until
from tests.helpers.redis_server import RedisServer

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
BODY = "a-recognisable-message-body-7f3a"

log = logging.getLogger("realtime.test.recent")


@pytest.fixture
def attached() -> Iterator[Callable[..., RecentErrors]]:
    """``attach(handler, logger=log)`` for one test; detached and stopped after it."""
    handlers: list[tuple[logging.Logger, RecentErrors]] = []

    def attach(handler: RecentErrors, logger: logging.Logger = log) -> RecentErrors:
        handlers.append((logger, handler))
        logger.addHandler(handler)
        return handler

    yield attach
    for logger, handler in handlers:
        logger.removeHandler(handler)
        handler.stop()


def test_keeps_warnings_scrubbed_newest_first_without_tracebacks(attached: Callable[..., RecentErrors]) -> None:
    handler = attached(RecentErrors(keep=3))
    log.info("an ordinary line is not an error")
    for n in range(4):
        log.warning("refused token %s, attempt %d", JWT, n)
    try:
        raise ValueError(f"bad content {BODY}")
    except ValueError:
        log.exception("handler failed")

    entries = handler.entries(10)
    assert [entry["message"] for entry in entries] == [
        "handler failed",
        "refused token [redacted], attempt 3",
        "refused token [redacted], attempt 2",
    ]
    newest = entries[0]
    assert newest["level"] == "ERROR" and newest["logger"] == log.name and newest["exc"] == "ValueError"
    assert isinstance(newest["worker"], int) and newest["ts"].endswith("+00:00")
    assert JWT not in repr(entries) and BODY not in repr(entries)
    assert handler.entries(1) == entries[:1]


def test_a_failed_event_is_kept_with_its_code_and_no_payload(app: Flask, connect: Callable[..., SocketIOTestClient]) -> None:
    alice = connect("alice")
    ack = alice.emit("chat:message", {"roomId": "lobby", "content": BODY}, callback=True)
    assert ack["error"]["code"] == "NOT_IN_ROOM"
    alice.emit("no:such-event", {"content": BODY}, callback=True)

    entries = recent_errors(10)
    by_event = {entry.get("event"): entry for entry in entries}
    assert by_event["chat:message"]["code"] == "NOT_IN_ROOM"
    assert by_event["no:such-event"]["code"] == "UNKNOWN_EVENT"
    assert BODY not in repr(entries)


def test_install_replaces_the_previous_handler() -> None:
    first = recent.install(None, "rt:")
    second = recent.install(None, "rt:")
    root_handlers = [h for h in logging.getLogger().handlers if isinstance(h, RecentErrors)]
    assert root_handlers == [second] and first is not second


def test_two_processes_share_one_list(attached: Callable[..., RecentErrors], redis_url: str) -> None:
    worker_a, worker_b = log.getChild("a"), log.getChild("b")
    a = attached(RecentErrors(redis.Redis.from_url(redis_url, decode_responses=True), "rt:recent-errors", keep=5), worker_a)
    b = attached(RecentErrors(redis.Redis.from_url(redis_url, decode_responses=True), "rt:recent-errors", keep=5), worker_b)
    worker_a.warning("from a")
    wait_until(lambda: b.entries(5), 10, "a's entry seen by b")
    for n in range(5):
        worker_b.warning("from b %d", n)

    entries = wait_until(lambda: [e for e in a.entries(5) if e["message"] == "from b 4"] and a.entries(5), 10,
                         "b's entries seen by a")
    assert [entry["message"] for entry in entries] == [f"from b {n}" for n in (4, 3, 2, 1, 0)]
    assert b.entries(5) == entries
    assert a.entries(1)[0]["logger"] == worker_b.name


def test_redis_is_only_called_from_the_pusher_greenlet(attached: Callable[..., RecentErrors], redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    callers: list[gevent.Greenlet] = []
    real_pipeline = client.pipeline

    def pipeline(*args: Any, **kwargs: Any) -> Any:
        callers.append(gevent.getcurrent())
        return real_pipeline(*args, **kwargs)

    client.pipeline = pipeline  # type: ignore[method-assign]
    handler = attached(RecentErrors(client, "rt:recent-errors"))
    for n in range(3):
        log.error("boom %d", n)
    assert callers == []
    wait_until(lambda: client.llen("rt:recent-errors") == 3, 10, "entries pushed")
    assert callers and gevent.getcurrent() not in callers
    assert handler.dropped == 0


def test_a_redis_outage_drops_and_counts_then_resumes(attached: Callable[..., RecentErrors]) -> None:
    server = RedisServer().start()
    try:
        client = redis.Redis.from_url(server.url, decode_responses=True, socket_timeout=1, socket_connect_timeout=1)
        handler = attached(RecentErrors(client, "rt:recent-errors", keep=10, queue_max=20, backoff=(0.05, 0.2),
                                         flush_delay=0.05))
        log.warning("before the outage")
        wait_until(lambda: client.llen("rt:recent-errors") == 1, 10, "first entry pushed")
        server.stop()

        for n in range(50):
            log.warning("during the outage %d", n)
        # The logging calls never waited: nothing yielded to the pusher in between, so exactly the queue's
        # capacity is waiting and the rest was dropped.
        assert len(handler.queue) == 20 and handler.dropped == 30
        gevent.sleep(0.3)
        assert len(handler.queue) == 20 and handler.dropped == 30
        assert [entry["message"] for entry in handler.entries(2)] == ["during the outage 49", "during the outage 48"]

        server = RedisServer(port=server.port).start()
        wait_until(lambda: not handler.queue, 15, "queue drained after Redis came back")
        messages = [entry["message"] for entry in handler.entries(10)]
        assert messages[0] == "during the outage 19" and "during the outage 10" in messages
        assert handler.dropped == 30
    finally:
        server.stop()


def test_recent_errors_reads_what_another_process_pushed(attached: Callable[..., RecentErrors], redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    recent.install(client, "rt:")
    # The other worker's logger reaches only its own handler, not this process's root one.
    other_log = log.getChild("other")
    other_log.propagate = False
    try:
        other = attached(RecentErrors(redis.Redis.from_url(redis_url, decode_responses=True), "rt:recent-errors",
                                      flush_delay=0.0), other_log)
        other_log.error("from another worker")
        entries = wait_until(lambda: recent_errors(5), 10, "the other worker's entry")
        assert [entry["message"] for entry in entries] == ["from another worker"]
        assert other.local[-1] == entries[0]
    finally:
        other_log.propagate = True
        recent.install(None, "rt:")
