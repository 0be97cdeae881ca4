"""Join storms: membership announcements of a busy room are coalesced per window, every user listed or
counted, small rooms unchanged, the coalescer bounded and alive after a failed send."""
from __future__ import annotations

import math
from typing import Any

import gevent
import pytest
from flask import Flask
from flask_socketio import SocketIOTestClient

from realtime.extensions import socketio
from realtime.fanout.broadcaster import Outgoing
from realtime.services import join_coalescer
from realtime.services.join_coalescer import MAX_IDS, SMALL_ROOM, WINDOW, JoinCoalescer
from tests.conftest import TokenActions

STAMP = "2026-01-01T12:00:00.000Z"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def covered(events: list[Outgoing], joined: bool = True) -> list[str]:
    """Every user an announcement names, in order; users only counted appear as ``+N``."""
    users: list[str] = []
    per_user = "chat:user_joined" if joined else "chat:user_left"
    for event in events:
        if event.event == per_user:
            users.append(event.data["userId"])
        elif event.event == "chat:members_changed":
            users += event.data["joined" if joined else "left"]
            more = event.data["moreJoined" if joined else "moreLeft"]
            users += [f"+{more}"] if more else []
    return users


def storm(coalescer: JoinCoalescer, clock: Clock, joins: int, spread: float) -> list[Outgoing]:
    """``joins`` users join one big room, evenly over ``spread`` seconds; flush as the flusher would."""
    events: list[Outgoing] = []
    for index in range(joins):
        clock.now = 1000.0 + spread * index / joins
        events += coalescer.flush()
        now = coalescer.change("group:big", f"u{index}", True, SMALL_ROOM + 1 + index, STAMP, skip_sid=f"s{index}")
        events += [now] if now is not None else []
    clock.now += WINDOW
    return events + coalescer.flush()


def test_instant_storm_is_one_event_then_one_batch_naming_or_counting_everyone() -> None:
    clock = Clock()
    coalescer = JoinCoalescer(lambda batch: None, clock=clock)

    events = storm(coalescer, clock, 500, spread=0.0)

    assert [e.event for e in events] == ["chat:user_joined", "chat:members_changed"]
    first, batch = events
    assert first.data == {"userId": "u0", "roomId": "big", "timestamp": STAMP}
    assert first.skip_sid == "s0"
    assert batch.to == "group:big" and batch.skip_sid is None
    assert batch.data["joined"] == [f"u{i}" for i in range(1, MAX_IDS + 1)]
    assert batch.data["moreJoined"] == 499 - MAX_IDS
    assert batch.data["users"] == SMALL_ROOM + 500
    assert 1 + len(batch.data["joined"]) + batch.data["moreJoined"] == 500, "every joiner is listed or counted"


@pytest.mark.parametrize("spread", [0.3, 1.0, 2.2, 5.0])
def test_storm_over_time_costs_at_most_one_event_per_window(spread: float) -> None:
    clock = Clock()
    coalescer = JoinCoalescer(lambda batch: None, clock=clock)

    events = storm(coalescer, clock, 200, spread)

    assert len(events) <= math.ceil(spread / WINDOW) + 1, [e.event for e in events]
    named = [user for user in covered(events) if not user.startswith("+")]
    counted = sum(int(user[1:]) for user in covered(events) if user.startswith("+"))
    assert len(set(named)) == len(named), "nobody announced twice"
    assert len(named) + counted == 200


def test_small_rooms_hear_every_change_at_once() -> None:
    clock = Clock()
    coalescer = JoinCoalescer(lambda batch: None, clock=clock)

    events = [coalescer.change("group:small", f"u{i}", True, i + 1, STAMP) for i in range(SMALL_ROOM)]
    events += [coalescer.change("group:small", f"u{i}", False, SMALL_ROOM - i - 1, STAMP) for i in range(SMALL_ROOM)]

    assert all(event is not None for event in events)
    assert [e.event for e in events if e] == ["chat:user_joined"] * SMALL_ROOM + ["chat:user_left"] * SMALL_ROOM
    assert coalescer.held_rooms == 0


def test_join_then_leave_within_the_window_cancels_out() -> None:
    clock = Clock()
    coalescer = JoinCoalescer(lambda batch: None, clock=clock)
    assert coalescer.change("group:big", "first", True, 100, STAMP) is not None

    assert coalescer.change("group:big", "bob", True, 101, STAMP) is None
    assert coalescer.change("group:big", "carol", True, 102, STAMP) is None
    assert coalescer.change("group:big", "bob", False, 101, STAMP) is None
    assert coalescer.change("group:big", "dave", False, 100, STAMP) is None
    clock.now += WINDOW
    (batch,) = coalescer.flush()

    assert batch.data == {
        "roomId": "big", "joined": ["carol"], "left": ["dave"], "moreJoined": 0, "moreLeft": 0, "users": 100,
        "timestamp": STAMP,
    }


def test_held_rooms_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(join_coalescer, "MAX_ROOMS", 3)
    clock = Clock()
    coalescer = JoinCoalescer(lambda batch: None, clock=clock)
    for room in range(5):
        assert coalescer.change(f"group:r{room}", "a", True, 100, STAMP) is not None

    held = [coalescer.change(f"group:r{room}", "b", True, 101, STAMP) for room in range(5)]

    assert held[:3] == [None, None, None]
    assert [e.data["userId"] for e in held[3:] if e] == ["b", "b"], "past the bound, announced at once"
    assert coalescer.held_rooms == 3
    clock.now += WINDOW
    assert len(coalescer.flush()) == 3


def test_flusher_sends_the_batch_and_survives_a_failed_send() -> None:
    sent: list[list[Outgoing]] = []
    attempts: list[int] = []

    def send(batch: list[Outgoing]) -> None:
        attempts.append(len(batch))
        if len(attempts) == 1:
            raise ConnectionError("redis down")
        sent.append(batch)

    coalescer = JoinCoalescer(send, window=0.05)
    for round_ in range(2):
        assert coalescer.change("group:big", f"first{round_}", True, 100, STAMP) is not None or round_ == 1
        assert coalescer.change("group:big", f"late{round_}", True, 101, STAMP) is None
        for _ in range(100):
            if len(attempts) > round_:
                break
            gevent.sleep(0.02)

    assert attempts == [1, 1]
    assert [[e.data["joined"] for e in batch] for batch in sent] == [[["first1", "late1"]]]


def connect(app: Flask, user_id: str) -> SocketIOTestClient:
    client = socketio.test_client(app, auth={"token": TokenActions(app).create(user_id)})
    assert client.is_connected(), user_id
    return client


def test_join_storm_through_the_server_reaches_members_coalesced(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    services = app.extensions["realtime"]
    clock = Clock()
    services.joins = JoinCoalescer(services.broadcaster.emit_many, clock=clock)
    watcher = connect(app, "watcher")
    assert watcher.emit("chat:join", {"roomId": "party"}, callback=True)["ok"]
    joiners = [f"fan{i}" for i in range(60)]

    for user in joiners:
        assert connect(app, user).emit("chat:join", {"roomId": "party"}, callback=True)["ok"]
    clock.now += WINDOW
    for _ in range(100):
        if services.joins.held_rooms == 0:
            break
        gevent.sleep(0.02)

    received: list[dict[str, Any]] = watcher.get_received()
    one_by_one = [m["args"][0]["userId"] for m in received if m["name"] == "chat:user_joined"]
    batches = [m["args"][0] for m in received if m["name"] == "chat:members_changed"]
    # The watcher plus 15 fans make a small room (each join heard at once); the 16th fan's join is the
    # first in a room of more than SMALL_ROOM users, heard at once too; the rest wait for the window's end.
    assert one_by_one == joiners[:SMALL_ROOM]
    assert len(batches) == 1
    (batch,) = batches
    assert batch["joined"] == joiners[SMALL_ROOM:] and batch["moreJoined"] == 0
    assert batch["users"] == 61
