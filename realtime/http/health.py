"""Liveness and readiness probes."""
from __future__ import annotations

import logging

import redis
from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from realtime.services import current_services

logger = logging.getLogger(__name__)

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """The process is alive and serving HTTP."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    """Ready to take sockets: Redis answers when configured."""
    client = current_services().redis
    if client is None:
        return jsonify(status="ready", redis="not configured")
    try:
        client.ping()
    except redis.RedisError as exc:
        logger.warning("readiness: redis unreachable (%s)", type(exc).__name__)
        return jsonify(status="unavailable", redis="unreachable"), 503
    return jsonify(status="ready", redis="ok")
