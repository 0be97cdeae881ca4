"""Liveness and readiness probes, with and without a reachable Redis."""
from __future__ import annotations

import time
from typing import Any

import gevent
import pytest
from flask import Flask

from realtime import create_app
from tests.helpers.redis_server import free_port


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
    body = response.get_json()
    assert (body["status"], body["redis"], body["failedPublishes"]) == ("ready", "ok", 0)
    assert set(body["probes"]) == {"queue", "control"}


@pytest.fixture
def probing_app(config: dict[str, Any], request: pytest.FixtureRequest) -> Flask:
    """A Redis app whose probes wait 0.5 s."""
    config["PROBE_INTERVAL"] = "1"
    app: Flask = request.getfixturevalue("redis_app")
    return app


def test_readyz_is_503_when_a_listener_misses_its_probe(probing_app: Flask) -> None:
    redis_app = probing_app
    services = redis_app.extensions["realtime"]
    services.lifecycle.ensure_started()
    assert services.bus.ready.wait(5)
    services.bus._dispatch = lambda raw: None  # a subscriber that is connected but hears nothing

    results = services.lifecycle.probe()
    response = redis_app.test_client().get("/readyz")

    assert results["control"] is False
    assert response.status_code == 503
    assert response.get_json()["probes"]["control"] == "missed"


def test_control_listener_resubscribes_after_a_missed_probe(probing_app: Flask) -> None:
    redis_app = probing_app
    services = redis_app.extensions["realtime"]
    services.lifecycle.ensure_started()
    assert services.bus.ready.wait(5)
    first = services.bus._pubsub
    real_dispatch = services.bus._dispatch
    services.bus._dispatch = lambda raw: None
    assert services.lifecycle.probe()["control"] is False
    services.bus._dispatch = real_dispatch

    deadline = time.monotonic() + 5
    while services.bus._pubsub is first and time.monotonic() < deadline:
        gevent.sleep(0.05)
    assert services.bus.ready.wait(5)

    assert services.bus._pubsub is not first
    assert services.lifecycle.probe()["control"] is True
    assert redis_app.test_client().get("/readyz").status_code == 200


def test_readyz_with_unreachable_redis(config: dict[str, Any]) -> None:
    app = create_app({**config, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "MESSAGE_QUEUE_URL": ""})
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert (body["status"], body["redis"]) == ("unavailable", "unreachable")


def test_healthz_stays_up_when_redis_is_unreachable(config: dict[str, Any]) -> None:
    app = create_app({**config, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "MESSAGE_QUEUE_URL": ""})
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
