"""Every line logged while an event runs names its socket, user and event; DEBUG_USERS logs one user's flow."""
from __future__ import annotations

import io
import json
import logging
import logging.config
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import gevent
import pytest
from flask import Flask
from flask_socketio import SocketIOTestClient

from realtime import create_app
from realtime.extensions import socketio
from realtime.log_context import bind, current, log_context
from realtime.log_setup import configure_logging, gunicorn_logconfig
from tests.conftest import TokenActions

BODY = "a-recognisable-message-body-51c9"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Autouse, so it is set up before ``capsys`` and torn down after it: the final handler writes to real stderr."""
    yield
    configure_logging("WARNING", "text")


@pytest.fixture
def config(config: dict[str, Any]) -> dict[str, Any]:
    return {**config, "LOG_LEVEL": "INFO", "LOG_FORMAT": "json", "DEBUG_USERS": "alice, dora"}


class Stderr:
    """What the app's log handler writes, redirected from stderr to a buffer a test reads."""

    def __init__(self) -> None:
        self.buffer = io.StringIO()

    def attach(self) -> None:
        """Point the handler :func:`configure_logging` installed at the buffer."""
        (handler,) = [h for h in logging.getLogger().handlers if getattr(h, "_realtime", False)]
        handler.setStream(self.buffer)  # type: ignore[attr-defined]

    def lines(self) -> list[dict[str, Any]]:
        """Every line written since the last call, each of which must be one JSON object."""
        text = self.buffer.getvalue()
        self.buffer.seek(0)
        self.buffer.truncate()
        return [json.loads(line) for line in text.splitlines()]


@pytest.fixture
def stderr() -> Stderr:
    return Stderr()


@pytest.fixture
def app(config: dict[str, Any], stderr: Stderr) -> Iterator[Flask]:
    built = create_app(config)
    stderr.attach()
    yield built
    built.extensions["realtime"].lifecycle.stop()


@pytest.fixture
def connect(app: Flask) -> Callable[..., SocketIOTestClient]:
    actions = TokenActions(app)
    return lambda user_id: socketio.test_client(app, auth={"token": actions.create(user_id)})


def chat_flow(client: SocketIOTestClient) -> None:
    """Join, send a message with :data:`BODY`, send one the schema refuses, and one to no handler."""
    assert client.emit("chat:join", {"roomId": "lobby"}, callback=True)["ok"]
    assert client.emit("chat:message", {"roomId": "lobby", "content": BODY}, callback=True)["ok"]
    refused = client.emit("chat:message", {"roomId": "lobby", "content": BODY, "mediaUrl": "ftp://x"}, callback=True)
    assert refused["error"]["code"] == "VALIDATION_ERROR"
    assert client.emit("no:such-event", {"content": BODY}, callback=True)["error"]["code"] == "UNKNOWN_EVENT"


def test_lines_logged_while_an_event_runs_carry_its_context(
    app: Flask, connect: Callable[..., SocketIOTestClient], stderr: Stderr, monkeypatch: pytest.MonkeyPatch
) -> None:
    carol = connect("carol")
    carol.emit("chat:join", {"roomId": "lobby"}, callback=True)
    sid = app.extensions["realtime"].connections.of_user("carol").popitem()[0]

    def broken(*args: Any, **kwargs: Any) -> Any:
        logging.getLogger("realtime.stores.chat").warning("store trouble")
        raise RuntimeError("the store broke")

    monkeypatch.setattr(app.extensions["realtime"].chat, "append", broken)
    stderr.lines()
    ack = carol.emit("chat:message", {"roomId": "lobby", "content": BODY}, callback=True)
    assert ack["error"]["code"] == "INTERNAL"
    logging.getLogger("realtime.test").warning("after the event")

    lines = stderr.lines()
    by_message = {line["message"]: line for line in lines}
    for message in ("store trouble", "handler for chat:message failed", "event chat:message failed: INTERNAL"):
        line = by_message[message]
        assert (line["sid"], line["userId"], line["event"]) == (sid, "carol", "chat:message"), line
        assert line["worker"] > 0
    failed = by_message["event chat:message failed: INTERNAL"]
    assert failed["code"] == "INTERNAL" and isinstance(failed["duration"], float)
    assert "RuntimeError: the store broke" in by_message["handler for chat:message failed"]["exc"]
    outside = by_message["after the event"]
    assert not {"sid", "userId", "event"} & outside.keys()
    assert BODY not in json.dumps(lines)


def test_a_successful_event_of_an_ordinary_user_costs_no_line(
    app: Flask, connect: Callable[..., SocketIOTestClient], stderr: Stderr
) -> None:
    carol = connect("carol")
    stderr.lines()
    assert carol.emit("chat:join", {"roomId": "lobby"}, callback=True)["ok"]
    assert carol.emit("chat:message", {"roomId": "lobby", "content": BODY}, callback=True)["ok"]
    assert stderr.lines() == []


def test_debug_users_flow_is_logged_without_payloads(
    app: Flask, connect: Callable[..., SocketIOTestClient], stderr: Stderr
) -> None:
    alice, bob = connect("alice"), connect("bob")
    chat_flow(alice)
    chat_flow(bob)
    alice.disconnect()
    bob.disconnect()

    lines = stderr.lines()
    debug = [line for line in lines if line["logger"] == "realtime.debug"]
    assert {line["userId"] for line in debug} == {"alice"}
    steps = [(line["event"], line.get("ack")) for line in debug]
    assert steps == [
        ("connect", "ok"),
        ("chat:join", "ok"),
        ("chat:message", "ok"),
        ("chat:message", "VALIDATION_ERROR"),
        ("no:such-event", "UNKNOWN_EVENT"),
        ("disconnect", None),
    ]
    assert all(isinstance(line["duration"], float) and line["sid"] for line in debug)
    assert debug[-1]["reason"] == "client disconnect"
    bobs = [(line["event"], line.get("code")) for line in lines if line.get("userId") == "bob" and "duration" in line]
    assert bobs == [("chat:message", "VALIDATION_ERROR"), ("no:such-event", "UNKNOWN_EVENT")]
    assert BODY not in json.dumps(lines)


def test_debug_users_lines_are_printed_whatever_log_level_says(config: dict[str, Any], stderr: Stderr) -> None:
    app = create_app({**config, "LOG_LEVEL": "WARNING"})
    stderr.attach()
    try:
        alice = socketio.test_client(app, auth={"token": TokenActions(app).create("alice")})
        bob = socketio.test_client(app, auth={"token": TokenActions(app).create("bob")})
        stderr.lines()
        alice.emit("chat:join", {"roomId": "lobby"}, callback=True)
        bob.emit("no:such-event", {}, callback=True)
        lines = stderr.lines()
        assert [(line["logger"], line["event"]) for line in lines] == [("realtime.debug", "chat:join")]
    finally:
        app.extensions["realtime"].lifecycle.stop()


def test_a_refused_handshake_of_a_debug_user_says_why(app: Flask, stderr: Stderr) -> None:
    services = app.extensions["realtime"]
    token = TokenActions(app).create("dora")
    clients = [socketio.test_client(app, auth={"token": token}) for _ in range(services.settings.max_connections_per_user)]
    stderr.lines()
    extra = socketio.test_client(app, auth={"token": token})
    assert not extra.is_connected()
    refused = [line for line in stderr.lines() if line["logger"] == "realtime.debug"]
    assert [(line["event"], line["code"]) for line in refused] == [("connect", "TOO_MANY_CONNECTIONS")]
    assert len(clients) == services.settings.max_connections_per_user


def test_text_lines_append_the_context(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "text")
    with log_context(sid="s1", event="chat:join"):
        bind(userId="alice")
        assert current() == {"sid": "s1", "event": "chat:join", "userId": "alice"}
        logging.getLogger("realtime.test.text").info("inside")
    assert current() == {}
    bind(userId="nobody")
    logging.getLogger("realtime.test.text").info("outside")

    inside, outside = capsys.readouterr().err.splitlines()
    assert inside.endswith("realtime.test.text: inside [sid=s1 userId=alice event=chat:join]")
    assert outside.endswith("realtime.test.text: outside")


def test_gunicorn_lines_are_json_and_scrubbed(capsys: pytest.CaptureFixture[str]) -> None:
    """gunicorn_logconfig as gunicorn.conf.py passes it: gunicorn's loggers write JSON of their own."""
    gunicorn_log = logging.getLogger("gunicorn.error")
    saved = (gunicorn_log.handlers[:], gunicorn_log.propagate, gunicorn_log.level)
    try:
        logging.config.dictConfig(gunicorn_logconfig("json", "info"))
        configure_logging("INFO", "json")
        gunicorn_log.info("Booting worker with pid: %s", 42)
        gunicorn_log.warning("Invalid request from ip=1.2.3.4: GET /socket.io/?token=abc.def.ghi")
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    finally:
        gunicorn_log.handlers[:], gunicorn_log.propagate, _ = saved
        gunicorn_log.setLevel(saved[2])
    assert [line["message"] for line in lines] == [
        "Booting worker with pid: 42",
        "Invalid request from ip=1.2.3.4: GET /socket.io/?token=[redacted]",
    ]
    assert {line["logger"] for line in lines} == {"gunicorn.error"}


def test_json_routes_greenlet_errors_and_warnings_through_the_handler(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")

    def crash(payload: str) -> None:
        raise ValueError("token=abc123 went wrong")

    gevent.spawn(crash, BODY).join()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        # pytest's own warning capture replaced showwarning; route it to logging again, as in a worker.
        logging.captureWarnings(False)
        logging.captureWarnings(True)
        warnings.warn("a runtime surprise", RuntimeWarning, stacklevel=1)

    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    crashed = next(line for line in lines if line["logger"] == "gevent.hub")
    assert crashed["message"] == "greenlet test_json_routes_greenlet_errors_and_warnings_through_the_handler.<locals>.crash failed with ValueError"
    assert "ValueError: token=[redacted] went wrong" in crashed["exc"]
    assert any(line["logger"] == "py.warnings" and "a runtime surprise" in line["message"] for line in lines)
    assert BODY not in json.dumps(lines)
