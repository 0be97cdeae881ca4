"""The application class: socket events skip Flask's URL matching; HTTP routes keep it."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask, request
from werkzeug.routing import MapAdapter

from realtime.flask_app import RealtimeFlask


def test_the_factory_builds_the_application_class(app: Flask) -> None:
    assert isinstance(app, RealtimeFlask)


def test_socket_events_run_without_url_matching(
    app: Flask, connect: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = connect("alice")
    matched: list[str] = []
    original = MapAdapter.match
    monkeypatch.setattr(MapAdapter, "match", lambda self, *a, **k: matched.append(self.path_info) or original(self, *a, **k))

    ack = client.emit("chat:join", {"roomId": "lobby"}, callback=True)

    assert ack["ok"] is True
    assert matched == []


def test_http_routes_still_match(app: Flask) -> None:
    assert app.test_client().get("/healthz").status_code == 200
    with app.test_request_context("/healthz"):
        assert app.create_url_adapter(request) is not None
    with app.test_request_context("/socket.io/"):
        assert app.create_url_adapter(request) is None
