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

    redis-py writes each command, or each pipeline's packed batch, with one ``send_packed_command``.
    Opening a pooled connection (HELLO, CLIENT SETINFO, sent from ``on_connect_check_health``) and
    health-check PINGs (``check_health=False``) happen once per connection, not per event: not counted.
    """
    trips = RoundTrips()
    original_send = AbstractConnection.send_packed_command
    original_setup = AbstractConnection.on_connect_check_health

    def counted(self: Any, command: Any, check_health: bool = True) -> Any:
        if check_health and not getattr(self, "_realtime_setting_up", False):
            trips.count += 1
        return original_send(self, command, check_health)

    def setting_up(self: Any, *args: Any, **kwargs: Any) -> Any:
        self._realtime_setting_up = True
        try:
            return original_setup(self, *args, **kwargs)
        finally:
            self._realtime_setting_up = False

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counted)
    monkeypatch.setattr(AbstractConnection, "on_connect_check_health", setting_up)
    yield trips
