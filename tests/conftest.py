"""Test bootstrap: gevent first, then fixtures in the style of Flask's tutorial."""
from gevent import monkey

monkey.patch_all()

from collections.abc import Callable, Iterator  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402
import redis  # noqa: E402
from flask import Flask  # noqa: E402
from flask_socketio import SocketIOTestClient  # noqa: E402

from realtime import create_app  # noqa: E402
from realtime.cluster.lifecycle import Lifecycle  # noqa: E402
from realtime.extensions import socketio  # noqa: E402
from tests.helpers.redis_server import RedisServer  # noqa: E402

TEST_SECRET = "test-secret-for-realtime-suite-0123456789"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A private redis-server for the whole session (never a developer's own Redis)."""
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _lifecycles_stopped(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every worker lifecycle a test starts is stopped when the test ends, whichever fixture built its app.

    A background greenlet left running (the offline-job consumer above all) would go on reading the private
    Redis every test shares and take the next test's jobs.
    """
    started: dict[int, Lifecycle] = {}
    ensure_started = Lifecycle.ensure_started

    def recording(self: Lifecycle) -> None:
        started[id(self)] = self
        ensure_started(self)

    monkeypatch.setattr(Lifecycle, "ensure_started", recording)
    yield
    for lifecycle in started.values():
        lifecycle.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The private server's URL, emptied before each test."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def config() -> dict[str, Any]:
    """Overrides for ``create_app``; tests may edit it before ``app`` is built."""
    return {"APP_ENV": "local", "JWT_SECRET": TEST_SECRET, "LOG_LEVEL": "WARNING", "ALLOWED_ORIGINS": "*"}


def _stopped(app: Flask) -> Iterator[Flask]:
    yield app
    app.extensions["realtime"].lifecycle.stop()


@pytest.fixture
def app(config: dict[str, Any]) -> Iterator[Flask]:
    """The embedded default: no Redis, in-memory stores."""
    yield from _stopped(create_app(config))


#: The two transports every feature test runs on, by the fixture that builds each.
APP_FIXTURES = {"memory": "app", "redis": "redis_app"}


@pytest.fixture(params=list(APP_FIXTURES))
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def any_app(transport: str, request: pytest.FixtureRequest) -> Flask:
    """The embedded default (in-memory) or the Redis-backed app: a test using it runs on both."""
    app: Flask = request.getfixturevalue(APP_FIXTURES[transport])
    return app


@pytest.fixture
def redis_app(config: dict[str, Any], redis_url: str) -> Iterator[Flask]:
    """Redis-backed stores without the message queue (Flask-SocketIO's test client refuses one)."""
    yield from _stopped(create_app({**config, "REDIS_URL": redis_url, "MESSAGE_QUEUE_URL": ""}))


class TokenActions:
    """Mints sessions and tokens the way the login service would."""

    def __init__(self, app: Flask) -> None:
        self._services = app.extensions["realtime"]

    def session(self, user_id: str, ttl: int = 600) -> tuple[str, str]:
        """Register a session for ``user_id``; return ``(session_id, token)``."""
        (session_id,) = self._services.sessions.create([user_id], ttl)
        return session_id, self._services.tokens.issue(user_id, session_id, ttl)

    def create(self, user_id: str, ttl: int = 600) -> str:
        """A valid token for ``user_id``."""
        return self.session(user_id, ttl)[1]


@pytest.fixture
def tokens(app: Flask) -> TokenActions:
    return TokenActions(app)


@pytest.fixture
def connect(app: Flask) -> Callable[..., SocketIOTestClient]:
    """``connect("alice")``: a test client authenticated as alice on ``app``."""
    actions = TokenActions(app)

    def _connect(user_id: str, **kwargs: Any) -> SocketIOTestClient:
        return socketio.test_client(app, auth={"token": actions.create(user_id)}, **kwargs)

    return _connect
