"""``GET /metrics``: the token, the counters that real events move, Redis round trips per event, the recorders."""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gevent
import pytest
from flask import Flask
from flask_socketio import SocketIOTestClient
from redis.connection import AbstractConnection

from realtime import create_app
from realtime.errors import ErrorCode
from realtime.extensions import socketio
from realtime.metrics import definitions
from realtime.metrics.recorders import (
    local_totals,
    record_emitted,
    record_error,
    record_fanout,
    record_recovery,
)
from realtime.sockets.recovery_flow import RECOVERY_RESULTS
from tests.conftest import TokenActions
from tests.helpers.metrics_scrape import Samples, delta, label_sets, label_values, parse
from tests.helpers.redis_counter import counting_round_trips

Connect = Callable[..., SocketIOTestClient]
METRICS_TOKEN = "metrics-token-for-the-test-suite-0123"
LUA = Path(__file__).resolve().parent.parent / "realtime" / "stores" / "redis" / "lua"


def scrape(app: Flask) -> Samples:
    response = app.test_client().get("/metrics")
    assert response.status_code == 200, response.get_data(as_text=True)
    return parse(response.get_data(as_text=True))


def test_metrics_answers_the_prometheus_text_format(app: Flask) -> None:
    response = app.test_client().get("/metrics")

    assert response.status_code == 200
    # The classic text format every Prometheus version reads.
    assert response.content_type == "text/plain; version=0.0.4; charset=utf-8"
    samples = parse(response.get_data(as_text=True))
    for name in ("realtime_connected_sockets", "realtime_publish_failures_total", "realtime_probe_misses_total"):
        assert any(sample == name for sample, _ in samples), name


@pytest.fixture
def guarded_app(config: dict[str, Any]) -> Iterator[Flask]:
    app = create_app({**config, "METRICS_TOKEN": METRICS_TOKEN})
    yield app
    app.extensions["realtime"].lifecycle.stop()


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer ",
        "Bearer wrong-token-of-the-same-length-00000",
        f"Bearer {METRICS_TOKEN}x",
        f"Basic {METRICS_TOKEN}",
        METRICS_TOKEN,
    ],
    ids=["no header", "empty", "empty bearer", "wrong token", "longer token", "other scheme", "no scheme"],
)
def test_metrics_refuses_without_the_right_token(guarded_app: Flask, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}

    response = guarded_app.test_client().get("/metrics", headers=headers)

    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == ErrorCode.AUTH_REQUIRED.value
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "realtime_" not in response.get_data(as_text=True)


def test_metrics_accepts_the_right_token(guarded_app: Flask) -> None:
    response = guarded_app.test_client().get("/metrics", headers={"Authorization": f"bearer {METRICS_TOKEN}"})

    assert response.status_code == 200
    assert "realtime_events_received_total" in response.get_data(as_text=True)


def test_events_move_received_errors_handler_and_connected_counts(app: Flask, connect: Connect) -> None:
    before, totals_before = scrape(app), local_totals()
    alice = connect("alice")
    connected = scrape(app)
    assert alice.emit("chat:join", {"roomId": "lobby"}, callback=True)["ok"]
    for text in ("one", "two", "three"):
        assert alice.emit("chat:message", {"roomId": "lobby", "content": text}, callback=True)["ok"]
    assert alice.emit("chat:message", {"roomId": "lobby"}, callback=True)["error"]["code"] == "VALIDATION_ERROR"
    assert alice.emit("no:such-event-for-alice", {}, callback=True)["error"]["code"] == "UNKNOWN_EVENT"
    after = scrape(app)
    alice.disconnect()
    gone = scrape(app)

    assert delta(before, connected, "realtime_connected_sockets") == 1
    assert delta(before, gone, "realtime_connected_sockets") == 0
    assert delta(before, after, "realtime_events_received_total", event="chat:join") == 1
    assert delta(before, after, "realtime_events_received_total", event="chat:message") == 4
    assert delta(before, after, "realtime_events_received_total", event="unknown") == 1
    assert delta(before, after, "realtime_event_errors_total", event="chat:message", code="VALIDATION_ERROR") == 1
    assert delta(before, after, "realtime_event_errors_total", event="unknown", code="UNKNOWN_EVENT") == 1
    assert delta(before, after, "realtime_event_errors_total") == 2
    assert delta(before, after, "realtime_handler_seconds_count", event="chat:message") == 4
    assert delta(before, after, "realtime_handler_seconds_count", event="chat:join") == 1
    assert delta(before, after, "realtime_redis_round_trips_count", event="chat:message") == 4
    # The embedded default has no Redis: no round trip is counted.
    assert delta(before, after, "realtime_redis_round_trips_sum") == 0
    totals = local_totals()
    assert totals["events_received"] - totals_before["events_received"] == 6
    assert totals["event_errors"] - totals_before["event_errors"] == 2


@pytest.mark.parametrize(
    ("event", "payload", "at_least"),
    [
        ("chat:join", {"roomId": "lobby"}, 1),
        ("chat:message", {"roomId": "lobby", "content": "hi"}, 1),
        # Refused before any store is asked: no round trip at all.
        ("chat:message", {"roomId": "nowhere", "content": "refused"}, 0),
        ("presence:check", {"userIds": ["bob"]}, 1),
    ],
)
def test_redis_round_trips_per_event_are_the_writes_the_event_made(
    redis_app: Flask, monkeypatch: pytest.MonkeyPatch, event: str, payload: dict[str, Any], at_least: int
) -> None:
    client = socketio.test_client(redis_app, auth={"token": TokenActions(redis_app).create("alice")})
    assert client.is_connected()
    client.emit("chat:join", {"roomId": "lobby"}, callback=True)
    # Let the background loops' first passes (heartbeat, probes, session check) finish before counting.
    gevent.sleep(0.3)
    before = scrape(redis_app)
    with counting_round_trips(monkeypatch) as trips:
        own = own_greenlet_writes(monkeypatch)
        client.emit(event, payload, callback=True)
    after = scrape(redis_app)

    assert own["count"] >= at_least
    assert delta(before, after, "realtime_redis_round_trips_count", event=event) == 1
    assert delta(before, after, "realtime_redis_round_trips_sum", event=event) == own["count"]
    # Background loops may write meanwhile (the process-wide count), but never into the event's count.
    assert own["count"] <= trips.count


def own_greenlet_writes(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Count the round trips this greenlet writes (the test client runs the handler in it), on top of the
    process-wide counter of :func:`counting_round_trips`, which excludes connection set-up the same way."""
    me = gevent.getcurrent()
    own = {"count": 0}
    counted_anywhere = AbstractConnection.send_packed_command

    def counted(self: Any, command: Any, check_health: bool = True) -> Any:
        if check_health and gevent.getcurrent() is me and not getattr(self, "_realtime_setting_up", False):
            own["count"] += 1
        return counted_anywhere(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counted)
    return own


def test_label_values_stay_bounded_over_a_thousand_users_and_rooms(app: Flask, connect: Connect) -> None:
    def traffic(users: range) -> None:
        for i in users:
            client = connect(f"user-{i}")
            client.emit("chat:join", {"roomId": f"room-{i}"}, callback=True)
            client.emit("chat:message", {"roomId": f"room-{i}", "content": f"hello {i}"}, callback=True)
            client.emit("chat:message", {"roomId": f"other-{i}", "content": "not a member"}, callback=True)
            client.emit(f"custom:event-{i}", {"roomId": f"room-{i}"}, callback=True)
            client.disconnect()

    traffic(range(10))
    first = label_sets(scrape(app))
    traffic(range(10, 1000))
    samples = scrape(app)

    assert label_sets(samples) == first
    values = {value for _, pairs in samples for key, value in pairs if key != "le"}
    assert not [value for value in values if re.search(r"user-|room-|other-|custom:", value)]
    catalog = app.extensions["realtime"].catalog
    documented = set(catalog.handlers) | set(catalog.server_events)
    events = {value for _, pairs in samples for key, value in pairs if key == "event"}
    assert events <= documented | {definitions.UNKNOWN_EVENT}
    assert label_values(samples, "code") <= {code.value for code in ErrorCode}
    assert label_values(samples, "reason") <= set(definitions.DISCONNECT_REASONS)
    assert label_values(samples, "result") <= set(definitions.RECOVERY_RESULTS)
    keys = {key for name, pairs in samples if name.startswith("realtime_") for key, _ in pairs}
    assert keys <= {"event", "code", "reason", "result", "le"}


def test_a_rate_limit_disconnect_is_counted_once(config: dict[str, Any]) -> None:
    app = create_app({**config, "EVENT_RATE": "0.1", "EVENT_BURST": "1", "RATE_LIMIT_DISCONNECT": "2"})
    try:
        flooder = socketio.test_client(app, auth={"token": TokenActions(app).create("flooder")})
        before = scrape(app)
        codes = [flooder.emit("presence:check", {"userIds": ["bob"]}, callback=True) for _ in range(6)]
        after = scrape(app)
    finally:
        app.extensions["realtime"].lifecycle.stop()

    assert [ack["ok"] for ack in codes][:1] == [True]
    assert delta(before, after, "realtime_event_errors_total", event="presence:check", code="RATE_LIMITED") == 5
    assert delta(before, after, "realtime_disconnects_total", reason="rate_limited") == 1
    assert delta(before, after, "realtime_disconnects_total", reason="slow_consumer") == 0


def test_recorders_bound_their_labels_and_keep_local_totals(app: Flask) -> None:
    before, totals = scrape(app), local_totals()
    record_emitted("chat:new_message", 2)
    record_emitted("never-documented")
    record_fanout(7)
    record_error("chat:message", "NOT-A-CODE")
    after = scrape(app)

    assert delta(before, after, "realtime_events_emitted_total", event="chat:new_message") == 2
    assert delta(before, after, "realtime_events_emitted_total", event="unknown") == 1
    assert delta(before, after, "realtime_fanout_recipients_count") == 1
    assert delta(before, after, "realtime_fanout_recipients_sum") == 7
    assert delta(before, after, "realtime_event_errors_total", event="chat:message", code="INTERNAL") == 1
    now = local_totals()
    assert {key: now[key] - totals[key] for key in now} == {
        "events_received": 0, "events_emitted": 3, "deliveries": 7, "event_errors": 1,
    }
    with pytest.raises(ValueError, match="not one of"):
        record_recovery("somewhere else")


def test_every_restore_status_has_a_recovery_result() -> None:
    documented = re.search(r"status: (.+)", (LUA / "recovery_restore.lua").read_text())
    assert documented is not None
    statuses = set(re.findall(r"'(\w+)'", documented.group(1)))

    assert statuses == set(RECOVERY_RESULTS)
    assert set(RECOVERY_RESULTS.values()) <= set(definitions.RECOVERY_RESULTS)
