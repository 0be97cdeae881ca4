"""Shared end-to-end kit: two gunicorn processes (the Procfile command) on a private Redis, driven by the
real Node ``socket.io-client``.

:class:`Cluster` holds servers A and B; :func:`start_cluster` starts them with :func:`server_env` plus
overrides; :class:`Clients` opens named sockets and closes them after a test; :func:`mint` makes users with
``flask token create``; :func:`ok` / :func:`refused` unwrap ack envelopes.
"""
from __future__ import annotations

import itertools
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from realtime.config import DEFAULTS
from tests.e2e_cluster import GunicornProcess, create_tokens
from tests.node_client import Message, NodeClientError, NodeClients
from tests.redis_server import free_port

E2E_SECRET = "e2e-features-secret-0123456789abcdefghijklmnop"
API_KEY = "e2e-features-api-key-0123456789abcdef"
PRESENCE_TTL = 3
KEY_PREFIX = DEFAULTS["KEY_PREFIX"]


def server_env(redis_url: str) -> dict[str, str | None]:
    """The environment of every server and of the CLI: every app setting explicit, none inherited."""
    env: dict[str, str | None] = {name: None for name in DEFAULTS}
    env.update(
        {
            "REDIS_URL": redis_url,
            "JWT_SECRET": E2E_SECRET,
            "APP_ENV": "local",
            "LOG_LEVEL": "WARNING",
            "ALLOWED_ORIGINS": "*",
            "API_KEYS": API_KEY,
            "PRESENCE_TTL": str(PRESENCE_TTL),
            "WEB_CONCURRENCY": "1",
            "GRACEFUL_TIMEOUT": "3",
            "WORKER_CONNECTIONS": None,
            "GUNICORN_CMD_ARGS": None,
        }
    )
    return env


@dataclass
class Cluster:
    """Servers A and B, their environment, a client of their Redis and where logs go."""

    a: GunicornProcess
    b: GunicornProcess
    env: dict[str, str | None]
    redis_url: str
    redis: redis.Redis
    log_dir: Path

    def key(self, name: str) -> str:
        return f"{KEY_PREFIX}{name}"


@contextmanager
def start_cluster(
    redis_url: str, log_dir: Path, overrides: Mapping[str, str | None] | None = None, names: tuple[str, str] = ("a", "b")
) -> Iterator[Cluster]:
    """Servers A and B on ``redis_url`` with :func:`server_env` plus ``overrides``; stopped on exit."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    env = {**server_env(redis_url), **(overrides or {})}
    port_a = free_port()
    port_b = free_port()
    while port_b == port_a:
        port_b = free_port()
    a = GunicornProcess(port_a, env, log_dir, name=names[0])
    b = GunicornProcess(port_b, env, log_dir, name=names[1])
    try:
        a.spawn()
        b.spawn()
        a.wait_healthy(30)
        b.wait_healthy(30)
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
    suffix = uuid.uuid4().hex[:10]
    ids = [f"{name}-{suffix}" for name in names]
    tokens = create_tokens(cluster.env, *ids, ttl=600)
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
class Sock:
    """One Node client socket."""

    nodes: NodeClients
    id: str
    user: User | None
    handshake: Message

    @property
    def connected(self) -> bool:
        return self.handshake.get("type") == "connect"

    @property
    def sid(self) -> str:
        return str(self.handshake["sid"])

    def emit(self, event: str, *args: Any) -> list[Any] | None:
        return self.nodes.emit(self.id, event, *args)

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

    def wait_disconnect(self, since: int = 0, timeout: float = 5.0) -> Message:
        return self.nodes.wait_for(
            lambda m: m.get("type") == "disconnect" and m.get("id") == self.id, timeout=timeout, since=since
        )

    def log(self, types: list[str] | None = None) -> list[Message]:
        return self.nodes.of(self.id, types=types)


@dataclass
class Clients:
    """Opens sockets with unique names and disconnects them all after the test."""

    nodes: NodeClients
    cluster: Cluster
    opened: list[Sock] = field(default_factory=list)

    def open(self, user: User | None, server: GunicornProcess, token: str | None = None, **kwargs: Any) -> Sock:
        """Connect with ``token`` (default: the user's) in ``auth``, websocket only unless told otherwise."""
        name = f"{user.id if user else 'anon'}-{next(_ids)}"
        token = token if token is not None else (user.token if user else None)
        if token is not None:
            kwargs.setdefault("auth", {"token": token})
        kwargs.setdefault("transports", ["websocket"])
        sock = Sock(self.nodes, name, user, {"type": "pending"})
        self.opened.append(sock)
        sock.handshake = self.nodes.connect(name, server.url, timeout=10.0, **kwargs)
        return sock

    def connect(self, user: User, server: GunicornProcess, **kwargs: Any) -> Sock:
        """Open and insist on a successful websocket handshake."""
        sock = self.open(user, server, **kwargs)
        assert sock.handshake["type"] == "connect", f"{user.id} could not connect to {server.name}: {sock.handshake}"
        assert sock.handshake["transport"] == "websocket", sock.handshake
        return sock

    def disconnect(self, sock: Sock, timeout: float = 5.0) -> bool:
        """Disconnect ``sock``; return whether its server released it (its room index entry is gone)."""
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


