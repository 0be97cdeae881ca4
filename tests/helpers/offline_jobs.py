"""Waiting for the offline-member jobs of chat messages, which every worker does in the background."""
from __future__ import annotations

import time

import gevent
from flask import Flask

from realtime.stores.offline_jobs import Backlog


def offline_jobs_done(app: Flask, timeout: float = 5.0) -> None:
    """Yield to the job worker until no offline job is queued or in progress (bounded: fails past ``timeout``).

    A message's notifications are stored and pushed by a job after its ack; a test that looks at them waits
    for the job, never for a fixed time.
    """
    worker = app.extensions["realtime"].offline_jobs
    worker.start()
    deadline = time.monotonic() + timeout
    while worker.backlog() != Backlog(lag=0, pending=0):
        assert time.monotonic() < deadline, f"offline jobs still pending after {timeout}s: {worker.backlog()}"
        gevent.sleep(0.01)
