"""Idle connections are closed: a TCP connection that never completes a request head (silent, or trickling
one header line a second), a keep-alive connection left idle between requests, and an Engine.IO session
that answers pings but never sends a Socket.IO CONNECT.

The cluster runs the Procfile command with ``WORKER_CONNECTIONS=200``: before these bounds, 210 silent
connections filled the worker's pool and ``/healthz`` and new clients got no answer at all. The close
times each test observed are printed (``pytest -s``); the tests wait a generous budget, never assert a time.
"""
from __future__ import annotations

import http.client
import json
import selectors
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import requests

from tests.helpers.e2e_kit import Clients, Cluster, mint
from tests.helpers.raw_socketio import Closed, RawSocketIO

pytestmark = pytest.mark.e2e

HANDSHAKE_TIMEOUT = 2
CONNECT_TIMEOUT = 3
WORKER_CONNECTIONS = 200
SILENT = 210
TRICKLING = 20
#: How long a test waits for the server to close what it should close (far above the bounds).
BUDGET = 20.0


@pytest.fixture(scope="module")
def cluster_overrides() -> dict[str, str | None]:
    return {
        "WORKER_CONNECTIONS": str(WORKER_CONNECTIONS),
        "HANDSHAKE_TIMEOUT": str(HANDSHAKE_TIMEOUT),
        "CONNECT_TIMEOUT": str(CONNECT_TIMEOUT),
        # Pings every second: the sessions below answer several before CONNECT_TIMEOUT passes.
        "PING_INTERVAL": "1",
    }


@dataclass
class Watched:
    """Raw TCP connections opened at ``started``, and when (seconds after it) the server closed each."""

    socks: list[socket.socket]
    started: float
    closed_after: dict[int, float] = field(default_factory=dict)
    answers: dict[int, bytes] = field(default_factory=dict)

    @property
    def still_open(self) -> int:
        return len(self.socks) - len(self.closed_after)

    def figures(self) -> str:
        times = sorted(self.closed_after.values())
        if not times:
            return "none closed"
        return f"first {times[0]:.1f} s, median {times[len(times) // 2]:.1f} s, last {times[-1]:.1f} s"


def open_raw(port: int, count: int) -> Watched:
    """``count`` raw TCP connections to ``port`` (accepted by the kernel, whether or not the worker serves them)."""
    started = time.monotonic()
    return Watched([socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(count)], started)


@pytest.fixture
def raw_connections() -> Iterator[list[Watched]]:
    """Every :class:`Watched` group a test opens, closed after it."""
    groups: list[Watched] = []
    yield groups
    for group in groups:
        for sock in group.socks:
            sock.close()


def watch(group: Watched, budget: float, trickle: bool = False) -> None:
    """Read every connection until the server closes it (EOF or reset) or ``budget`` s pass; with ``trickle``,
    send one more header line on each open connection every second."""
    selector = selectors.DefaultSelector()
    for index, sock in enumerate(group.socks):
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, index)
    deadline = time.monotonic() + budget
    next_line = time.monotonic() + 1.0
    line = 0
    while group.still_open and (now := time.monotonic()) < deadline:
        if trickle and now >= next_line:
            line += 1
            next_line = now + 1.0
            for key in list(selector.get_map().values()):
                try:
                    key.fileobj.send(f"X-Trickle-{line}: {line}\r\n".encode())  # type: ignore[union-attr]
                except OSError:
                    closed(group, selector, key)
        timeout = min(deadline, next_line if trickle else deadline) - time.monotonic()
        for key, _ in selector.select(timeout=max(0.0, timeout)):
            try:
                data = key.fileobj.recv(65536)  # type: ignore[union-attr]
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if data:
                group.answers[key.data] = group.answers.get(key.data, b"") + data
            else:
                closed(group, selector, key)
    selector.close()


def closed(group: Watched, selector: selectors.BaseSelector, key: selectors.SelectorKey) -> None:
    """Record that the server closed the connection of ``key``, and stop watching it."""
    if key.data not in group.closed_after:
        group.closed_after[key.data] = time.monotonic() - group.started
        selector.unregister(key.fileobj)


def test_silent_connections_are_closed_and_the_server_keeps_serving(
    cluster: Cluster, clients: Clients, raw_connections: list[Watched]
) -> None:
    user = mint(cluster, "patient")["patient"]
    silent = open_raw(cluster.a.port, SILENT)
    raw_connections.append(silent)
    try:
        health = requests.get(f"{cluster.a.url}/healthz", timeout=BUDGET, headers={"Connection": "close"})
    except requests.Timeout:
        pytest.fail(f"GET /healthz got no answer within {BUDGET} s while {SILENT} silent connections were open")
    health_after = time.monotonic() - silent.started
    assert health.status_code == 200, health.text
    assert health.json()["status"] == "ok", health.text
    sock = clients.open(user, cluster.a)
    connect_after = time.monotonic() - silent.started
    assert sock.connected, f"socket.io-client could not connect next to {SILENT} silent connections: {sock.handshake}"
    watch(silent, BUDGET)
    print(
        f"\n{SILENT} silent connections (pool of {WORKER_CONNECTIONS}, HANDSHAKE_TIMEOUT={HANDSHAKE_TIMEOUT}): "
        f"closed {silent.figures()}; /healthz answered after {health_after:.1f} s, "
        f"socket.io-client connected after {connect_after:.1f} s"
    )
    assert silent.still_open == 0, f"{silent.still_open} of {SILENT} silent connections still open after {BUDGET} s"
    assert not silent.answers, f"a silent connection got an answer: {next(iter(silent.answers.values()))!r}"


def test_trickled_request_heads_are_closed(cluster: Cluster, raw_connections: list[Watched]) -> None:
    trickling = open_raw(cluster.a.port, TRICKLING)
    raw_connections.append(trickling)
    for sock in trickling.socks:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    watch(trickling, BUDGET, trickle=True)
    statuses = sorted({answer.split(b"\r\n", 1)[0].decode() for answer in trickling.answers.values()})
    print(
        f"\n{TRICKLING} connections trickling a header line a second: closed {trickling.figures()}, "
        f"answered {statuses}"
    )
    assert trickling.still_open == 0, (
        f"{trickling.still_open} of {TRICKLING} trickling connections still open after {BUDGET} s"
    )
    # The head never completed: the request was not served.
    assert statuses in ([], ["HTTP/1.1 400 Bad Request"]), statuses


def test_keep_alive_connection_idle_between_requests_is_closed(cluster: Cluster) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", cluster.a.port, timeout=5)
    try:
        connection.request("GET", "/healthz")
        response = connection.getresponse()
        assert response.status == 200
        response.read()
        assert not response.will_close, "the server did not keep the connection alive"
        assert connection.sock is not None
        idle = Watched([connection.sock], time.monotonic())
        watch(idle, BUDGET)
    finally:
        connection.close()
    print(f"\nkeep-alive connection idle after a response: closed {idle.figures()}")
    assert idle.still_open == 0, f"an idle keep-alive connection was still open after {BUDGET} s"
    assert not idle.answers, idle.answers


def polling_until_closed(base_url: str, budget: float) -> tuple[str, float, int]:
    """Open an Engine.IO polling session, answer its pings and never send a Socket.IO CONNECT.

    :returns: what ended it (``HTTP <status>`` or ``close packet``, ``open`` if nothing did within
        ``budget``), after how many seconds, and how many pings were answered.
    """
    http_session = requests.Session()
    opened = http_session.get(f"{base_url}/socket.io/?EIO=4&transport=polling", timeout=5)
    assert opened.status_code == 200 and opened.text.startswith("0"), opened.text
    sid = json.loads(opened.text[1:])["sid"]
    url = f"{base_url}/socket.io/?EIO=4&transport=polling&sid={sid}"
    started = time.monotonic()
    pongs = 0
    try:
        while time.monotonic() - started < budget:
            poll = http_session.get(url, timeout=10)
            if poll.status_code != 200:
                return f"HTTP {poll.status_code}", time.monotonic() - started, pongs
            packets = poll.text.split("\x1e")
            if "1" in packets:
                return "close packet", time.monotonic() - started, pongs
            for _ in range(packets.count("2")):
                answer = http_session.post(url, data="3", timeout=5)
                assert answer.status_code == 200, answer.text
                pongs += 1
        return "open", time.monotonic() - started, pongs
    finally:
        http_session.close()


def test_polling_session_without_socketio_connect_is_closed(cluster: Cluster) -> None:
    outcome, after, pongs = polling_until_closed(cluster.a.url, BUDGET)
    print(
        f"\npolling session without CONNECT (CONNECT_TIMEOUT={CONNECT_TIMEOUT}): {outcome} after {after:.1f} s, "
        f"{pongs} pings answered"
    )
    assert outcome in ("close packet", "HTTP 400"), (
        f"a polling session without CONNECT was still {outcome} after {BUDGET} s"
    )
    assert pongs >= 1, "the session was closed before it answered a ping: not the CONNECT bound"


def test_websocket_session_without_socketio_connect_is_closed(cluster: Cluster) -> None:
    with RawSocketIO.open(cluster.a.url) as raw:
        started = time.monotonic()
        frames = raw.drain(BUDGET)
        after = time.monotonic() - started
    print(
        f"\nwebsocket session without CONNECT: {raw.closed} after {after:.1f} s, "
        f"{raw.pings_answered} pings answered, frames {[frame.data for frame in frames]}"
    )
    assert raw.closed is not None, f"a websocket session without CONNECT was still open after {BUDGET} s"
    assert [frame.data for frame in frames] == ["1"], frames
    assert raw.pings_answered >= 1, "the session was closed before it answered a ping: not the CONNECT bound"


def test_session_whose_connect_was_refused_is_closed(cluster: Cluster) -> None:
    with RawSocketIO.open(cluster.a.url) as raw:
        answer = raw.connect({"token": "not-a-token"})
        assert answer.is_connect_error, answer
        assert answer.data["data"]["code"] == "INVALID_TOKEN", answer
        started = time.monotonic()
        frames = raw.drain(BUDGET)
        after = time.monotonic() - started
    print(
        f"\nwebsocket session after a refused CONNECT: {raw.closed} after {after:.1f} s, "
        f"frames {[frame.data for frame in frames]}"
    )
    assert raw.closed is not None, f"a session whose CONNECT was refused was still open after {BUDGET} s"
    assert [frame.data for frame in frames] == ["1"], frames


def test_session_that_connects_outlives_the_connect_bound(cluster: Cluster) -> None:
    user = mint(cluster, "prompt")["prompt"]
    with RawSocketIO.open(cluster.a.url) as raw:
        answer = raw.connect({"token": user.token})
        assert answer.is_connect, answer
        try:
            raw.drain(CONNECT_TIMEOUT + 2)
        except Closed:
            pass
        assert raw.closed is None, f"a connected session was closed: {raw.closed}"
        assert raw.alive(), "a connected session stopped answering after CONNECT_TIMEOUT"
