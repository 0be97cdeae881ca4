"""Waiting in a test for what background greenlets do (the control listener, the heartbeat, the ping timers)."""
from __future__ import annotations

import time
from collections.abc import Callable

import gevent


def wait_until(predicate: Callable[[], bool], timeout: float = 2.0) -> bool:
    """Yield to background greenlets until ``predicate`` holds; False if it still does not after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        gevent.sleep(0.01)
    return True
