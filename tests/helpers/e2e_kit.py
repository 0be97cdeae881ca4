"""Shared end-to-end kit: two gunicorn processes (the Procfile command) on a private Redis, driven by the
real Node ``socket.io-client``.

:class:`Cluster` holds servers A and B; :func:`start_cluster` starts them with :func:`server_env` plus
overrides; :class:`Clients` opens named sockets and closes them after a test; :func:`mint` makes users with
``flask token create``; :func:`ok` / :func:`refused` unwrap ack envelopes. The fixtures built on it live in
``tests/e2e/conftest.py``.
"""
from __future__ import annotations

import itertools
import re
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from realtime.config import DEFAULTS
from tests.helpers.e2e_cluster import GunicornProcess, create_tokens
from tests.helpers.node_client import Message, NodeClientError, NodeClients
from tests.helpers.redis_server import free_port

E2E_SECRET = "e2e-features-secret-0123456789abcdefghijklmnop"
API_KEY = "e2e-features-api-key-0123456789abcdef"
PRESENCE_TTL = 3
KEY_PREFIX = DEFAULTS["KEY_PREFIX"]


def _explicit_env(settings: Mapping[str, str | None]) -> dict[str, str | None]:
    """``settings`` over every app setting unset and the common ones of a local test server: nothing is
    inherited from the caller's environment."""
    env: dict[str, str | None] = {name: None for name in DEFAULTS}
    env.update(
        {
            "APP_ENV": "local",
            "LOG_LEVEL": "WARNING",
            "GRACEFUL_TIMEOUT": "3",
            "WORKER_CONNECTIONS": None,
            "GUNICORN_CMD_ARGS": None,
            **settings,
        }
    )
    return env


def server_env(redis_url: str) -> dict[str, str | None]:
    """The environment of every server of a cluster and of the CLI: every app setting explicit, none inherited."""
    return _explicit_env(
        {
            "REDIS_URL": redis_url,
            "JWT_SECRET": E2E_SECRET,
            "ALLOWED_ORIGINS": "*",
            "API_KEYS": API_KEY,
            "PRESENCE_TTL": str(PRESENCE_TTL),
            "WEB_CONCURRENCY": "1",
        }
    )


def embedded_env() -> dict[str, str | None]:
    """The environment of a server on the embedded default (no Redis), as ``make run`` starts it."""
    return _explicit_env({"JWT_SECRET": E2E_SECRET, "WEB_CONCURRENCY": None})


@dataclass
class Cluster:
    """Servers A and B, their environment, a client of their Redis and where logs go."""

    a: GunicornProcess
    b: GunicornProcess
    env: dict[str, str | None]
    redis_url: str
    redis: redis.Redis
    log_dir: Path

    @property
    def servers(self) -> tuple[GunicornProcess, GunicornProcess]:
        return (self.a, self.b)

    def key(self, name: str) -> str:
        return f"{KEY_PREFIX}{name}"


#: Waits until freshly spawned servers can take sockets; :func:`wait_healthy` unless a module needs more.
WarmUp = Callable[[tuple[GunicornProcess, ...]], None]


def wait_healthy(servers: tuple[GunicornProcess, ...]) -> None:
    """Wait until every one of ``servers`` answers ``GET /healthz``."""
    for server in servers:
        server.wait_healthy(30)


def free_port_except(*taken: int) -> int:
    """A free TCP port that is none of ``taken`` (ports handed out but not bound yet)."""
    port = free_port()
    while port in taken:
        port = free_port()
    return port


@contextmanager
def start_cluster(
    redis_url: str,
    log_dir: Path,
    overrides: Mapping[str, str | None] | None = None,
    names: tuple[str, str] = ("a", "b"),
    warm_up: WarmUp = wait_healthy,
) -> Iterator[Cluster]:
    """Servers A and B on ``redis_url`` with :func:`server_env` plus ``overrides``; stopped on exit."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    env = {**server_env(redis_url), **(overrides or {})}
    port_a = free_port()
    port_b = free_port_except(port_a)
    a = GunicornProcess(port_a, env, log_dir, name=names[0])
    b = GunicornProcess(port_b, env, log_dir, name=names[1])
    try:
        a.spawn()
        b.spawn()
        warm_up((a, b))
        yield Cluster(a=a, b=b, env=env, redis_url=redis_url, redis=client, log_dir=log_dir)
    finally:
        a.terminate()
        b.terminate()
        a.stop()
        b.stop()
        client.close()


# -- users and tokens ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class User:
    """A user id and the token of one session of it."""

    id: str
    token: str


def mint(cluster: Cluster, *names: str) -> dict[str, User]:
    """One ``flask token create`` run: a fresh user id (``name-<uuid>``) and one session per name."""
    return mint_in(cluster.env, *names)


def mint_in(env: Mapping[str, str | None], *names: str) -> dict[str, User]:
    """:func:`mint` for the servers of ``env`` (its secret, its Redis)."""
    suffix = uuid.uuid4().hex[:10]
    ids = [f"{name}-{suffix}" for name in names]
    tokens = create_tokens(env, *ids, ttl=600)
    return {name: User(user_id, token) for name, user_id, token in zip(names, ids, tokens, strict=True)}


def log_in_again(cluster: Cluster, user: User) -> User:
    """A new session of the same user (a second login), through the CLI."""
    (token,) = create_tokens(cluster.env, user.id, ttl=600)
    return User(user.id, token)


# -- sockets --------------------------------------------------------------------------------------------------

_ids = itertools.count(1)


def ok(ack: list[Any] | None) -> Any:
    """The ``data`` of a successful ack envelope."""
    assert ack is not None and len(ack) == 1, ack
    envelope = ack[0]
    assert set(envelope) == {"ok", "data"}, envelope
    assert envelope["ok"] is True, envelope
    return envelope["data"]


def refused(ack: list[Any] | None, code: str) -> dict[str, Any]:
    """The ``error`` of a failed ack envelope with ``code``."""
    assert ack is not None and len(ack) == 1, ack
    envelope = ack[0]
    assert set(envelope) == {"ok", "error"}, envelope
    assert envelope["ok"] is False, envelope
    error: dict[str, Any] = envelope["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"], error
    return error


@dataclass
class Pace:
    """Spaces a socket's emits so that they stay under the server's token bucket (``rate`` per second,
    ``burst`` at once): a test of something else is not cut short by the rate limit."""

    rate: float
    burst: float
    tokens: float = field(init=False)
    stamp: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def take(self) -> None:
        """Wait, if need be, until one emit fits in the bucket, and spend it."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1.2:
            time.sleep((1.2 - self.tokens) / self.rate)
            self.tokens, self.stamp = 1.2, time.monotonic()
        self.tokens -= 1


@dataclass
class Sock:
    """One Node client socket; with a :class:`Pace`, :meth:`emit` keeps under the server's rate limit."""

    nodes: NodeClients
    id: str
    user: User | None
    handshake: Message
    pace: Pace | None = None

    @property
    def connected(self) -> bool:
        return self.handshake.get("type") == "connect"

    @property
    def sid(self) -> str:
        return str(self.handshake["sid"])

    def emit(self, event: str, *args: Any, ack: bool = True, timeout: float = 5.0) -> list[Any] | None:
        """Emit ``event``; return the ack's arguments (``None`` when ``ack`` is false)."""
        if self.pace is not None:
            self.pace.take()
        return self.nodes.emit(self.id, event, *args, ack=ack, timeout=timeout)

    def call(self, event: str, *args: Any) -> Any:
        """Emit with an ack and return the ``data`` of the (successful) envelope."""
        return ok(self.emit(event, *args))

    def payloads(self, event: str, where: Callable[[Any], bool] = lambda _: True) -> list[Any]:
        """Every ``event`` this socket received so far (first argument), oldest first."""
        found = []
        for message in self.nodes.events(self.id, event):
            # Broadcasts end with their recovery offset; events sent to this socket alone do not.
            assert len(message["args"]) in (1, 2), message
            assert len(message["args"]) == 1 or re.fullmatch(r"\d{13,}-\d+", message["args"][1]), message
            if where(message["args"][0]):
                found.append(message["args"][0])
        return found

    def received(self, event: str, since: int = 0) -> list[list[Any]]:
        """The argument lists of every ``event`` this socket got at or after log index ``since``."""
        return [
            m["args"] for m in self.nodes.messages[since:]
            if m.get("type") == "event" and m.get("id") == self.id and m.get("event") == event
        ]

    def wait(
        self, event: str, since: int = 0, where: Callable[[Any], bool] = lambda _: True, timeout: float = 5.0
    ) -> Any:
        """The first ``event`` received at or after log index ``since`` whose payload matches ``where``."""
        message = self.nodes.wait_for(
            lambda m: (
                m.get("type") == "event"
                and m.get("id") == self.id
                and m.get("event") == event
                and len(m.get("args") or []) in (1, 2)
                and where(m["args"][0])
            ),
            timeout=timeout,
            since=since,
        )
        return message["args"][0]

    def wait_args(
        self, event: str, since: int = 0, where: Callable[[Any], bool] = lambda _: True, timeout: float = 5.0
    ) -> list[Any]:
        """The argument list of the first ``event`` at or after ``since`` whose first argument matches ``where``."""
        message = self.nodes.wait_for(
            lambda m: m.get("type") == "event" and m.get("id") == self.id and m.get("event") == event
            and bool(m.get("args")) and where(m["args"][0]),
            timeout=timeout, since=since,
        )
        return list(message["args"])

    def wait_type(self, kind: str, since: int = 0, timeout: float = 5.0) -> Message:
        """The first driver message of type ``kind`` (``connect``, ``disconnect``, ...) at or after ``since``."""
        return self.nodes.wait_for(lambda m: m.get("type") == kind and m.get("id") == self.id,
                                   timeout=timeout, since=since)

    def wait_disconnect(self, since: int = 0, timeout: float = 5.0) -> Message:
        return self.wait_type("disconnect", since, timeout)

    def log(self, since: int = 0, types: Collection[str] | None = None) -> list[Message]:
        """This socket's driver messages at or after ``since``, of ``types`` only when given."""
        return [m for m in self.nodes.messages[since:]
                if m.get("id") == self.id and (types is None or m.get("type") in types)]


@dataclass
class Clients:
    """Opens sockets with unique names and disconnects them all after the test.

    :param pace: ``(rate, burst)`` of the servers' event rate limit, to pace every socket's emits.
    """

    nodes: NodeClients
    cluster: Cluster
    pace: tuple[float, float] | None = None
    opened: list[Sock] = field(default_factory=list)

    def open(
        self, user: User | None, server: GunicornProcess | None = None, token: str | None = None, **kwargs: Any
    ) -> Sock:
        """Connect to ``server`` (default: A), websocket only unless told otherwise.

        ``token`` (default: the user's) goes in ``auth``, unless ``auth``, ``query`` or ``headers`` are given.
        """
        server = server or self.cluster.a
        name = f"{user.id if user else 'anon'}-{next(_ids)}"
        token = token if token is not None else (user.token if user else None)
        if token is not None and not ({"auth", "query", "headers"} & kwargs.keys()):
            kwargs["auth"] = {"token": token}
        kwargs.setdefault("transports", ["websocket"])
        pace = Pace(*self.pace) if self.pace is not None else None
        sock = Sock(self.nodes, name, user, {"type": "pending"}, pace)
        self.opened.append(sock)
        sock.handshake = self.nodes.connect(name, server.url, timeout=10.0, **kwargs)
        return sock

    def connect(
        self, user: User, server: GunicornProcess | None = None, token: str | None = None, **kwargs: Any
    ) -> Sock:
        """Open and insist on a fresh session (not a recovered one), on websocket when only that is allowed."""
        transports = kwargs.setdefault("transports", ["websocket"])
        sock = self.open(user, server, token, **kwargs)
        where = (server or self.cluster.a).name
        assert sock.handshake["type"] == "connect", f"{user.id} could not connect to {where}: {sock.handshake}"
        assert sock.handshake["recovered"] is False, sock.handshake
        if transports == ["websocket"]:
            assert sock.handshake["transport"] == "websocket", sock.handshake
        return sock

    def disconnect(self, sock: Sock, timeout: float = 5.0) -> bool:
        """Disconnect ``sock``; return whether its server released it within ``timeout`` s.

        A polling client's goodbye is an HTTP request of its own: were the Node driver to exit before
        the server handled it, the server would hold that client's long-poll until the ping timeout,
        and a SIGTERM-ed worker would wait for it until GRACEFUL_TIMEOUT. The server's disconnect
        handler clears the socket's room index entry in Redis, which tells us it is done.
        """
        if sock in self.opened:
            self.opened.remove(sock)
        try:
            self.nodes.disconnect(sock.id)
        except (NodeClientError, TimeoutError):
            return False
        if not sock.connected:
            return True
        key = self.cluster.key(f"socket-rooms:{sock.sid}")
        deadline = time.monotonic() + timeout
        while self.cluster.redis.exists(key):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def close_all(self) -> None:
        for sock in list(self.opened):
            self.disconnect(sock, timeout=1.0)


def server_errors(servers: tuple[GunicornProcess, ...], starts: Mapping[str, int]) -> str:
    """Log lines at ERROR/CRITICAL level or tracebacks written by ``servers`` since ``starts[name]``."""
    found = []
    for server in servers:
        new = server.log_text()[starts[server.name] :]
        bad = [line for line in new.splitlines() if re.search(r"\b(ERROR|CRITICAL)\b|^Traceback", line)]
        if bad:
            found.append(f"server {server.name} logged errors:\n{new[-4000:]}")
    return "\n".join(found)


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def wait_until(condition: Callable[[], Any], timeout: float, what: str = "", interval: float = 0.05) -> Any:
    """The first truthy value of ``condition()``, polled every ``interval`` s for up to ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(interval)


