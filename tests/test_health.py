"""Liveness and readiness probes, with and without a reachable Redis."""
from __future__ import annotations

from typing import Any

from flask import Flask

from realtime import create_app
from tests.redis_server import free_port


def test_healthz(app: Flask) -> None:
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_without_redis(app: Flask) -> None:
    response = app.test_client().get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready", "redis": "not configured"}


def test_readyz_with_redis(redis_app: Flask) -> None:
    response = redis_app.test_client().get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready", "redis": "ok"}


def test_readyz_with_unreachable_redis(config: dict[str, Any]) -> None:
    app = create_app({**config, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "MESSAGE_QUEUE_URL": ""})
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable", "redis": "unreachable"}


def test_healthz_stays_up_when_redis_is_unreachable(config: dict[str, Any]) -> None:
    app = create_app({**config, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "MESSAGE_QUEUE_URL": ""})
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
