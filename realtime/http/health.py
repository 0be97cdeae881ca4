"""Liveness and readiness probes."""
from __future__ import annotations

import logging

import redis
from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from realtime.services.container import current_services
from realtime.stores.redis.checks import probe_write, refused_write

logger = logging.getLogger(__name__)

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """The process is alive and serving HTTP."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    """Ready to take sockets: Redis accepts a write and this worker's pub/sub listeners heard their last probe.

    The write (not a ``PING``) also catches a Redis that answers but refuses writes: out of memory under
    ``noeviction``, or a read-only replica after a failover: every event that writes would fail.
    """
    services = current_services()
    if services.draining:
        return jsonify(status="draining"), 503
    client = services.redis
    if client is None:
        return jsonify(status="ready", redis="not configured")
    probes = services.lifecycle.probe_results if services.lifecycle else {}
    details = {
        "probes": {name: _probe_word(result) for name, result in probes.items()},
        "failedPublishes": services.broadcaster.failed_publishes,
    }
    try:
        probe_write(client, services.keys.readiness_probe)
    except redis.RedisError as exc:
        word = "refusing writes" if refused_write(exc) else "unreachable"
        logger.warning("readiness: redis %s (%s)", word, type(exc).__name__)
        return jsonify(status="unavailable", redis=word, **details), 503
    if any(result is False for result in probes.values()):
        return jsonify(status="unavailable", redis="ok", **details), 503
    return jsonify(status="ready", redis="ok", **details)


def _probe_word(result: bool | None) -> str:
    return {None: "not probed", True: "ok", False: "missed"}[result]
