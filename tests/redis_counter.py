"""Count Redis round trips made by this process (what the "≤ 3 per event" rule limits)."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from redis.connection import AbstractConnection


class RoundTrips:
    """Incremented once per request written to Redis: a single command or a whole pipeline."""

    def __init__(self) -> None:
        self.count = 0

    def reset(self) -> None:
        self.count = 0


@contextmanager
def counting_round_trips(monkeypatch: pytest.MonkeyPatch) -> Iterator[RoundTrips]:
    """Patch the connection's single write path.

    redis-py writes each command, or each pipeline's packed batch, with one ``send_packed_command``;
    connection set-up and health-check PINGs pass ``check_health=False`` and are not the app's traffic.
    """
    trips = RoundTrips()
    original = AbstractConnection.send_packed_command

    def counted(self: Any, command: Any, check_health: bool = True) -> Any:
        if check_health:
            trips.count += 1
        return original(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counted)
    yield trips
