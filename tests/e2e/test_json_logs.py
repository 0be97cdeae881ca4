"""End to end: with ``LOG_FORMAT=json`` every line two real gunicorn servers write is one JSON object —
gunicorn's master and workers, the request lines of gevent-websocket, python-socketio/engineio and the app —
and no token, API key or message body reaches any of them.

One scenario runs once for the module against servers A and B sharing the private Redis: alice (listed in
``DEBUG_USERS``) connects to A with her token in ``auth`` over websocket, bob connects to B with his token in
the query string over long-polling (so the request lines carry ``?token=``); both chat with recognisable
bodies, each sends a failing event, a back-end publishes with its API key, and alice disconnects.
"""
from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
import requests

from realtime.cluster.recent_errors import KEY_SUFFIX, RecentErrors
from tests.helpers.e2e_cluster import create_tokens
from tests.helpers.e2e_kit import (
    API_KEY,
    KEY_PREFIX,
    Clients,
    Cluster,
    Sock,
    User,
    ok,
    refused,
    wait_until,
)
from tests.helpers.node_client import NodeClients

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("no_server_errors")]

SUFFIX = uuid.uuid4().hex[:8]
ALICE, BOB = f"alice-logs-{SUFFIX}", f"bob-logs-{SUFFIX}"
#: Message bodies no log line may contain.
BODIES = {name: f"{name}-body-{uuid.uuid4().hex}" for name in ("alice", "bob", "invalid", "unknown", "published")}
JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+")
UNKNOWN_EVENT = "logs:no-such-event"


@pytest.fixture(scope="module")
def cluster_overrides() -> dict[str, str | None]:
    return {
        "LOG_LEVEL": "INFO",
        "LOG_FORMAT": "json",
        "DEBUG_USERS": ALICE,
        "SOCKET_TRANSPORTS": "polling,websocket",
    }


@dataclass
class Run:
    """What the scenario left behind: the servers' logs, the sockets and the tokens."""

    cluster: Cluster
    alice: Sock
    bob: Sock
    tokens: tuple[str, str]

    def raw(self, server: str) -> str:
        """Everything server ``a`` or ``b`` wrote (stdout and stderr) so far."""
        return getattr(self.cluster, server).log_text()

    def lines(self, server: str) -> list[dict[str, Any]]:
        """Each line of :meth:`raw` parsed: a line that is not one JSON object fails the test here."""
        return [json.loads(line) for line in self.raw(server).splitlines() if line.strip()]


@pytest.fixture(scope="module")
def run(cluster: Cluster, nodes: NodeClients) -> Iterator[Run]:
    alice_token, bob_token = create_tokens(cluster.env, ALICE, BOB, ttl=600)
    clients = Clients(nodes, cluster)
    try:
        alice = clients.connect(User(ALICE, alice_token), cluster.a)
        bob = clients.open(User(BOB, bob_token), cluster.b, query={"token": bob_token}, transports=["polling"])
        assert bob.connected, bob.handshake
        room = f"logs-{SUFFIX}"
        for sock in (alice, bob):
            ok(sock.emit("chat:join", {"roomId": room}))
        sent = ok(alice.emit("chat:message", {"roomId": room, "content": BODIES["alice"]}))
        bob.wait("chat:new_message", where=lambda m: m.get("id") == sent["id"])
        ok(bob.emit("chat:message", {"roomId": room, "content": BODIES["bob"]}))
        refused(alice.emit("chat:message", {"roomId": room, "content": BODIES["invalid"], "mediaUrl": "nope"}),
                "VALIDATION_ERROR")
        refused(bob.emit(UNKNOWN_EVENT, {"content": BODIES["unknown"]}), "UNKNOWN_EVENT")
        response = requests.post(
            f"{cluster.a.url}/api/v1/emit",
            json={"room": f"group:{room}", "event": "system:announcement",
                  "data": {"title": "logs", "body": BODIES["published"]}},
            headers={"Authorization": f"Bearer {API_KEY}", "Connection": "close"}, timeout=5,
        )
        assert response.status_code == 202, response.text
        bob.wait("system:announcement", where=lambda m: m.get("body") == BODIES["published"])
        # A poll for a session that does not exist: python-engineio logs it (a client's fault: a WARNING).
        stale = requests.get(f"{cluster.b.url}/socket.io/", timeout=5, headers={"Connection": "close"},
                             params={"EIO": "4", "transport": "polling", "sid": "no-such-session", "token": bob_token})
        assert stale.status_code == 400, stale.text
        assert clients.disconnect(alice)
        wait_until(lambda: '"socket disconnected", "worker"' in cluster.a.log_text(), 10, "alice's disconnect on A")
        yield Run(cluster, alice, bob, (alice_token, bob_token))
    finally:
        clients.close_all()


def test_every_line_of_both_servers_is_one_json_object(run: Run) -> None:
    for server in ("a", "b"):
        lines = run.lines(server)
        assert all({"ts", "level", "logger", "message", "worker"} <= line.keys() for line in lines), server
        messages = {(line["logger"], line["message"].split(":")[0]) for line in lines}
        # gunicorn's master and its worker, the request lines, the app: all of them JSON.
        assert {("gunicorn.error", "Starting gunicorn 27.0.1"), ("gunicorn.error", "Listening at"),
                ("gunicorn.error", "Booting worker with pid")} <= messages, server
        assert any(line["logger"] == "geventwebsocket.handler" for line in lines), server
        assert len({line["worker"] for line in lines}) == 2, "the master's and the worker's pid"
    assert any(line["logger"] == "engineio.server" and line["level"] == "WARNING" for line in run.lines("b"))


def test_lines_logged_during_an_event_carry_its_socket_user_and_event(run: Run) -> None:
    failed = [line for line in run.lines("b") if line["logger"] == "realtime.events"]
    assert [(line["sid"], line["userId"], line["event"], line["code"]) for line in failed] == [
        (run.bob.sid, BOB, UNKNOWN_EVENT, "UNKNOWN_EVENT")
    ]
    assert isinstance(failed[0]["duration"], float)
    connected = [line for line in run.lines("b") if line["message"] == "socket connected"]
    assert [(line["sid"], line["userId"], line["event"]) for line in connected] == [(run.bob.sid, BOB, "connect")]


def test_no_token_api_key_or_body_in_any_line(run: Run) -> None:
    everything = run.raw("a") + run.raw("b")
    assert not JWT.search(everything)
    assert API_KEY not in everything
    for token in run.tokens:
        assert token not in everything and token.split(".")[2] not in everything
    for body in BODIES.values():
        assert body not in everything
    # The query-string token did reach the request lines, scrubbed: the check above saw it.
    polls = [line["message"] for line in run.lines("b") if line["logger"] == "geventwebsocket.handler"]
    assert any("token=[redacted]" in message for message in polls), polls[:3]


def test_debug_users_flow_of_alice_and_nothing_of_bob(run: Run) -> None:
    debug = [line for line in run.lines("a") + run.lines("b") if line["logger"] == "realtime.debug"]
    assert {line["userId"] for line in debug} == {ALICE}
    assert [(line["event"], line.get("ack")) for line in debug] == [
        ("connect", "ok"),
        ("chat:join", "ok"),
        ("chat:message", "ok"),
        ("chat:message", "VALIDATION_ERROR"),
        ("disconnect", None),
    ]
    assert {line["sid"] for line in debug} == {run.alice.sid}
    assert all(isinstance(line["duration"], float) for line in debug)
    assert debug[-1]["reason"] == "client disconnect"


def test_recent_errors_of_both_servers_in_one_list(run: Run, cluster: Cluster) -> None:
    client = redis.Redis.from_url(cluster.redis_url, decode_responses=True)
    try:
        reader = RecentErrors(client, f"{KEY_PREFIX}{KEY_SUFFIX}")
        # Each server pushes from a background greenlet: wait for both entries.
        failures = wait_until(
            lambda: (found := {(e.get("event"), e.get("code")): e for e in reader.entries(100)}).keys()
            >= {("chat:message", "VALIDATION_ERROR"), (UNKNOWN_EVENT, "UNKNOWN_EVENT")} and found,
            10, "both servers' failed events in Redis",
        )
        invalid = failures[("chat:message", "VALIDATION_ERROR")]
        unknown = failures[(UNKNOWN_EVENT, "UNKNOWN_EVENT")]
        workers = {name: {line["worker"] for line in run.lines(name) if line["logger"] == "realtime.events"
                          or line["logger"] == "realtime.debug"} for name in ("a", "b")}
        assert {invalid["worker"]} == workers["a"] and {unknown["worker"]} == workers["b"]
        assert not any(body in json.dumps(reader.entries(100)) for body in BODIES.values())
    finally:
        client.close()
