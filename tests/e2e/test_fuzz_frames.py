"""Hostile input over raw WebSockets against the real server (the Procfile's gunicorn command on a private Redis).

Every hostile input runs on a fresh raw connection (:mod:`tests.helpers.raw_socketio`), one parametrized case each.
Two canaries — ordinary python-socketio clients of one chat room — must keep working throughout: after every
case each sends a chat message and the other receives it within 2 s, and ``/healthz`` answers. Inputs with
valid framing and a bad payload must get an ack envelope with the exact error code; everything else must be
ignored (the connection still answers a probe) or close that one connection. The gunicorn worker must never
restart, its RSS must stay within :data:`RSS_GROWTH_LIMIT_MB` over the whole run, and no traceback in the
server log may pass through the ``realtime`` package (python-engineio, python-socketio and gevent-websocket
log their own refusals; :func:`test_server_log` prints what they logged).

Cases once marked ``xfail(strict=True)`` reproduced bugs (all fixed since); the pattern stays: a known bug is
pinned as a strict xfail, which turns into an error (XPASS) once
the server is fixed, so the marker must then be removed.
"""
from __future__ import annotations

import json
import random
import re
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
import socketio
import websocket

from realtime.errors import ErrorCode
from tests.helpers.e2e_cluster import REPO_ROOT, GunicornProcess, create_tokens
from tests.helpers.e2e_kit import server_env
from tests.helpers.raw_socketio import (
    OPCODE_BINARY,
    OPCODE_TEXT,
    Closed,
    RawSocketIO,
    SioPacket,
)
from tests.helpers.redis_server import RedisServer, free_port

pytestmark = pytest.mark.e2e

MAX_PAYLOAD = 65536
#: The chat room of the canaries (a ``group:`` room through ``chat:join``).
ROOM = "fuzz-lobby"
#: How long a canary waits for the other's message.
CANARY_TIMEOUT = 2.0
RSS_GROWTH_LIMIT_MB = 150
#: Users minted up front: one per raw connection, so no per-user limit or single-session eviction interferes.
USER_POOL = 100
#: Sockets of the concurrent burst (more than redis-py's default pool of 100 connections).
BURST_SOCKETS = 250
ACK_ID = 1
ENVELOPE_CODES = {code.value for code in ErrorCode}


# -- the server, the canaries ---------------------------------------------------------------------------------


#: The server's settings on top of the kit's. Recovery off: a dropped socket is then released at once (with
#: recovery it is parked for the window, by design), which is what the ghost-session test observes. Recovery has
#: its own suite.
#: Every hostile row ends with a canary check (a message each way); on a fast machine the rows' checks come
#: quicker than the default 20 events/s: a rate well above theirs, which the flood still exceeds many times over.
EVENT_RATE, EVENT_BURST = 100, 200
SETTINGS: dict[str, str | None] = {
    "EVENT_RATE": str(EVENT_RATE),
    "EVENT_BURST": str(EVENT_BURST),
    "MAX_PAYLOAD_BYTES": str(MAX_PAYLOAD),
    "RECOVERY_WINDOW": "0",
    "API_KEYS": None,
    "PRESENCE_TTL": None,
}


def worker_pids(master: int) -> list[int]:
    """The gunicorn workers: children of the master (``/proc/<pid>/task/*/children``, else ``ps --ppid``)."""
    pids: list[int] = []
    for children in Path(f"/proc/{master}/task").glob("*/children"):
        try:
            pids.extend(int(pid) for pid in children.read_text().split())
        except OSError:
            continue
    if not pids:
        result = subprocess.run(["ps", "--ppid", str(master), "-o", "pid="], capture_output=True, text=True, check=False)
        pids = [int(pid) for pid in result.stdout.split()]
    return sorted(pids)


def rss_kb(pid: int) -> int:
    """``VmRSS`` of ``pid`` in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


class Canary:
    """An ordinary python-socketio client (websocket transport), authenticated and joined to :data:`ROOM`."""

    def __init__(self, url: str, token: str, name: str) -> None:
        self.name = name
        self.client = socketio.Client(reconnection=False)
        self._received: set[str] = set()
        self._lock = threading.Lock()
        self.disconnected = False
        self.client.on("chat:new_message", self._on_message)
        self.client.on("disconnect", self._on_disconnect)
        self.client.connect(url, auth={"token": token}, transports=["websocket"], wait_timeout=5)
        ack = self.client.call("chat:join", {"roomId": ROOM}, timeout=5)
        assert ack["ok"], ack

    def _on_message(self, message: dict[str, Any], *extra: Any) -> None:
        # extra: the recovery offset that connection-state recovery appends to room events
        with self._lock:
            self._received.add(str(message.get("content")))

    def _on_disconnect(self, *args: Any) -> None:
        self.disconnected = True

    def send(self, content: str) -> dict[str, Any]:
        return self.client.call("chat:message", {"roomId": ROOM, "content": content}, timeout=CANARY_TIMEOUT)

    def received(self, content: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if content in self._received:
                    return True
            time.sleep(0.01)
        return False

    def call(self, event: str, data: Any) -> Any:
        return self.client.call(event, data, timeout=CANARY_TIMEOUT)

    def close(self) -> None:
        self.client.disconnect()


@dataclass
class FuzzServer:
    """The server under attack, its users and the figures the last test reports."""

    proc: GunicornProcess
    env: dict[str, str | None]
    tokens: dict[str, str]
    worker_pid: int
    log_dir: Path
    canaries: tuple[Canary, Canary] | None = None
    rss_before_kb: int = 0
    _free_users: list[str] = field(default_factory=list)
    canary_checks: int = 0
    #: What the server logged while test_flood_is_rate_limited ran (None until it has).
    flood_log: str | None = None

    @property
    def url(self) -> str:
        return self.proc.url

    def user(self) -> tuple[str, str]:
        """A user no other connection used: ``(user_id, token)``."""
        user_id = self._free_users.pop(0)
        return user_id, self.tokens[user_id]

    def raw(self, *, url_token: bool = True, connect: bool = True) -> tuple[str, RawSocketIO]:
        """A fresh raw connection for a fresh user (token in the URL), Socket.IO-connected unless told not to."""
        user_id, token = self.user()
        raw = RawSocketIO.open(self.url, token if url_token else None)
        if connect:
            answer = raw.connect({"token": token})
            assert answer.is_connect, f"handshake of {user_id} refused: {answer}"
        return user_id, raw

    def check_alive(self) -> None:
        """The canaries exchange one message each way within :data:`CANARY_TIMEOUT`; ``/healthz`` is 200; the
        worker is the same process as at the start (it never crashed)."""
        assert self.proc.running, f"gunicorn master exited; log tail:\n{self.proc.log_tail()}"
        assert worker_pids(self.proc.pid) == [self.worker_pid], "the worker was replaced (it crashed or timed out)"
        health = requests.get(f"{self.url}/healthz", timeout=2, headers={"Connection": "close"})
        assert health.status_code == 200, health.text
        assert self.canaries is not None
        for sender, receiver in (self.canaries, self.canaries[::-1]):
            assert not sender.disconnected and not receiver.disconnected, "a canary was disconnected"
            nonce = f"canary-{uuid.uuid4().hex}"
            ack = sender.send(nonce)
            assert ack["ok"], f"{sender.name} could not send: {ack}"
            assert receiver.received(nonce, CANARY_TIMEOUT), f"{receiver.name} did not get {sender.name}'s message"
        self.canary_checks += 1


@pytest.fixture(scope="module")
def server(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzServer]:
    """One gunicorn (one worker) on the private Redis, two canaries in :data:`ROOM`, the worker's RSS noted."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    log_dir = tmp_path_factory.mktemp("fuzz-frames")
    env = {**server_env(redis_server.url), **SETTINGS}
    users = ["canary-a", "canary-b", *(f"fz{n:03d}" for n in range(USER_POOL + BURST_SOCKETS))]
    proc = GunicornProcess(free_port(), env, log_dir, name="fuzz")
    proc.spawn()
    canaries: list[Canary] = []
    try:
        tokens = dict(zip(users, create_tokens(env, *users, ttl=3600), strict=True))
        proc.wait_healthy(30)
        workers = worker_pids(proc.pid)
        assert len(workers) == 1, f"expected one worker, found {workers}"
        fuzz = FuzzServer(proc=proc, env=env, tokens=tokens, worker_pid=workers[0], log_dir=log_dir,
                          _free_users=users[2:])
        canaries.append(Canary(proc.url, tokens["canary-a"], "canary-a"))
        canaries.append(Canary(proc.url, tokens["canary-b"], "canary-b"))
        fuzz.canaries = (canaries[0], canaries[1])
        fuzz.check_alive()
        fuzz.rss_before_kb = rss_kb(fuzz.worker_pid)
        yield fuzz
    finally:
        for canary in canaries:
            canary.close()
        proc.stop()


# -- hostile inputs -------------------------------------------------------------------------------------------


class Outcome(Enum):
    ACK = "an ack envelope"
    IGNORED = "ignored (the connection still answers)"
    CLOSED = "this connection closed"
    NAMESPACE_REFUSED = "CONNECT_ERROR for that namespace"
    CONNECTED = "connected"
    CONNECT_ERROR = "CONNECT_ERROR"
    UNRESPONSIVE = "neither answering nor closed"


class TextBytes(bytes):
    """Raw bytes to send in a *text* frame (invalid UTF-8)."""


Frames = list[str | bytes]


@dataclass(frozen=True)
class Hostile:
    """One hostile input: frames sent after the handshake, and what the server may do about them."""

    id: str
    #: The frames, given the transport's cap (the Engine.IO OPEN packet's ``maxPayload``).
    frames: Callable[[int], Frames]
    expect: frozenset[Outcome]
    #: The error code(s) an ack may carry.
    code: str | frozenset[str] | None = None
    #: The ack id the frames use, when an ack is possible.
    ack_id: int | None = None
    #: A key that ``error.fields`` must name.
    field: str | None = None
    #: Send a Socket.IO CONNECT before the frames.
    connect: bool = True
    #: Probes to try before calling the connection unresponsive (a pending binary packet eats the first).
    probes: int = 1
    #: The namespace whose CONNECT_ERROR answers the frames.
    refused_namespace: str | None = None


def frames(*items: str | bytes) -> Callable[[int], Frames]:
    return lambda cap: list(items)


def _array(count: int) -> str:
    return "[" + ",".join("0" * count) + "]"


def _elements_fitting(prefix: str, suffix: str) -> int:
    """How many ``0,`` elements fit in one Engine.IO message of at most :data:`MAX_PAYLOAD` characters."""
    return (MAX_PAYLOAD - len(prefix) - len(suffix) - 2 + 1) // 2


_EVENT_HEAD = '421["chat:message",'


def _message_of_length(length: int) -> str:
    """A ``chat:message`` EVENT (ack id 1) of exactly ``length`` characters (content too long for the schema)."""
    head, tail = _EVENT_HEAD + '{"roomId":"lobby","content":"', '"}]'
    return head + "a" * (length - len(head) - len(tail)) + tail


def _args_of_length(length: int) -> str:
    """A ``chat:message`` EVENT whose arguments serialize (``[{...}]``) to exactly ``length`` characters."""
    return _message_of_length(length + len(_EVENT_HEAD) - 1)


def _junk(cap: int) -> Frames:
    rng = random.Random(1234)
    return [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 512))) for _ in range(200)]


HUGE_ARRAY_FITS = _elements_fitting('421["chat:message",', "]")
HUGE_BARE_FITS = _elements_fitting('421["presence:check",', "]")

ACKED = frozenset({Outcome.ACK})
IGNORED_OR_CLOSED = frozenset({Outcome.IGNORED, Outcome.CLOSED})
IGNORED = frozenset({Outcome.IGNORED})
CLOSED = frozenset({Outcome.CLOSED})

HOSTILE: list[Any] = [
    Hostile("truncated-json", frames('42["chat:message",{"roomId":"lobby","con'), IGNORED_OR_CLOSED),
    Hostile("truncated-json-with-ack-id", frames('421["chat:message",{"roomId":"lobby","con'), IGNORED_OR_CLOSED),
    Hostile("deep-nesting-unclosed-10000", frames('42["chat:message",' + "[" * 10000), IGNORED_OR_CLOSED),
    # Valid JSON nested deeper than Python's decoder goes: no packet, so no ack is possible.
    Hostile("deep-nesting-closed-10000", frames('421["chat:message",' + "[" * 10000 + "]" * 10000 + "]"),
            IGNORED_OR_CLOSED | ACKED, code="VALIDATION_ERROR", ack_id=ACK_ID),
    Hostile("deep-nesting-array-500", frames('421["chat:message",' + "[" * 500 + "]" * 500 + "]"),
            ACKED, code="VALIDATION_ERROR", ack_id=ACK_ID),
    Hostile("deep-nesting-object-500",
            frames('421["chat:join",{"roomId":' + '{"a":' * 500 + "1" + "}" * 500 + "}]"),
            ACKED, code="VALIDATION_ERROR", ack_id=ACK_ID, field="roomId"),
    Hostile(f"huge-array-{HUGE_ARRAY_FITS}-within-limit",
            frames(f'421["chat:message",{_array(HUGE_ARRAY_FITS)}]'), ACKED, code="VALIDATION_ERROR", ack_id=ACK_ID),
    Hostile(f"huge-bare-array-{HUGE_BARE_FITS}-within-limit",
            frames(f'421["presence:check",{_array(HUGE_BARE_FITS)}]'), ACKED, code="VALIDATION_ERROR",
            ack_id=ACK_ID, field="userIds"),
    Hostile("huge-array-100000-beyond-limit", frames(f'421["chat:message",{_array(100_000)}]'),
            CLOSED | ACKED, code="PAYLOAD_TOO_LARGE", ack_id=ACK_ID),
    # MAX_PAYLOAD_BYTES bounds an event's arguments (PAYLOAD_TOO_LARGE); the transport's cap (maxPayload in
    # the OPEN packet, 2x MAX_PAYLOAD_BYTES) bounds a message, and past it the transport closes.
    Hostile("payload-at-limit", lambda cap: [_args_of_length(MAX_PAYLOAD)], ACKED, code="VALIDATION_ERROR",
            ack_id=ACK_ID, field="content"),
    Hostile("payload-one-byte-over-limit", lambda cap: [_args_of_length(MAX_PAYLOAD + 1)],
            CLOSED | ACKED, code="PAYLOAD_TOO_LARGE", ack_id=ACK_ID),
    Hostile("message-at-transport-cap", lambda cap: [_message_of_length(cap)], ACKED,
            code=frozenset({"PAYLOAD_TOO_LARGE", "VALIDATION_ERROR"}), ack_id=ACK_ID),
    Hostile("message-one-byte-over-transport-cap", lambda cap: [_message_of_length(cap + 1)], CLOSED),
    Hostile("invalid-utf8-in-text-frame",
            frames(TextBytes(b'421["chat:message",{"roomId":"lobby","content":"\xff\xfe\xc3("}]')), CLOSED),
    Hostile("invalid-utf8-in-binary-frame",
            frames(b'421["chat:message",{"roomId":"lobby","content":"\xff\xfe\xc3("}]'), IGNORED_OR_CLOSED),
    Hostile("random-binary-junk-200-frames", _junk, IGNORED_OR_CLOSED),
    Hostile("engineio-type-9", frames("9"), IGNORED_OR_CLOSED),
    Hostile("engineio-type-x", frames("x"), IGNORED_OR_CLOSED),
    Hostile("engineio-empty-text-frame", frames(""), IGNORED_OR_CLOSED),
    Hostile("engineio-bad-base64", frames("b!!!"), IGNORED_OR_CLOSED),
    Hostile("engineio-upgrade-after-open", frames("5"), IGNORED_OR_CLOSED),
    Hostile("socketio-type-47", frames("47"), IGNORED_OR_CLOSED),
    Hostile("socketio-type-4Z", frames("4Z"), IGNORED_OR_CLOSED),
    Hostile("socketio-connect-error-from-client", frames('44{"message":"x"}'), IGNORED_OR_CLOSED),
    Hostile("unknown-namespace-connect", frames("40/nope,"), frozenset({Outcome.NAMESPACE_REFUSED}),
            refused_namespace="/nope"),
    Hostile("unknown-namespace-event", frames('42/nope,["x"]', '42/nope,1["x"]'), IGNORED_OR_CLOSED),
    Hostile("binary-attachment-never-arrives", frames('451-["chat:message",{"_placeholder":true,"num":0}]'),
            IGNORED_OR_CLOSED, probes=2),
    Hostile("event-before-connect", frames('421["chat:join",{"roomId":"lobby"}]'), IGNORED_OR_CLOSED,
            connect=False),
    Hostile("second-connect-on-same-namespace", lambda cap: [], frozenset({Outcome.NAMESPACE_REFUSED, Outcome.IGNORED}),
            refused_namespace="/"),
    Hostile("event-name-60k-chars", frames('421["' + "e" * 60_000 + '",{}]'), ACKED, code="UNKNOWN_EVENT",
            ack_id=ACK_ID),
    Hostile("event-name-100k-chars", frames('421["' + "e" * 100_000 + '",{}]'), CLOSED | ACKED,
            code=frozenset({"PAYLOAD_TOO_LARGE", "UNKNOWN_EVENT"}), ack_id=ACK_ID),
    Hostile("event-name-number", frames("421[123]"), ACKED, code="UNKNOWN_EVENT", ack_id=ACK_ID),
    Hostile("event-name-null", frames("421[null]"), ACKED, code="UNKNOWN_EVENT", ack_id=ACK_ID),
    Hostile("event-name-true", frames("421[true,{}]"), ACKED, code="UNKNOWN_EVENT", ack_id=ACK_ID),
    Hostile("event-name-string-not-array", frames('421"chat:join"'), ACKED | IGNORED, code="UNKNOWN_EVENT",
            ack_id=ACK_ID),
    pytest.param(Hostile("event-name-object", frames("421[{}]"), ACKED, code="UNKNOWN_EVENT", ack_id=ACK_ID),
                 id="event-name-object"),
    pytest.param(Hostile("event-name-array", frames('421[["chat:join"],{"roomId":"lobby"}]'), ACKED,
                         code="UNKNOWN_EVENT", ack_id=ACK_ID),
                 id="event-name-array"),
    pytest.param(Hostile("event-data-empty-array", frames("421[]"), ACKED, code="UNKNOWN_EVENT", ack_id=ACK_ID),
                 id="event-data-empty-array"),
    pytest.param(Hostile("event-data-object", frames('421{"0":"chat:join"}'), ACKED, code="UNKNOWN_EVENT",
                         ack_id=ACK_ID),
                 id="event-data-object"),
    pytest.param(Hostile("event-data-missing", frames("421"), ACKED, code="UNKNOWN_EVENT", ack_id=ACK_ID),
                 id="event-data-missing"),
    Hostile("proto-key", frames('421["chat:join",{"roomId":"lobby","__proto__":{"x":1}}]'), ACKED,
            code="VALIDATION_ERROR", ack_id=ACK_ID, field="__proto__"),
    Hostile("constructor-key", frames('421["chat:join",{"roomId":"lobby","constructor":{"prototype":{"x":1}}}]'),
            ACKED, code="VALIDATION_ERROR", ack_id=ACK_ID, field="constructor"),
    Hostile("proto-key-in-message",
            frames('421["chat:message",{"roomId":"lobby","content":"hi","__proto__":null}]'), ACKED,
            code="VALIDATION_ERROR", ack_id=ACK_ID, field="__proto__"),
    Hostile("nan-and-infinity", frames('421["chat:history",{"roomId":"lobby","limit":NaN,"before":Infinity}]'),
            ACKED | IGNORED_OR_CLOSED, code="VALIDATION_ERROR", ack_id=ACK_ID),
]


@dataclass
class Observation:
    outcome: Outcome
    packet: SioPacket | None = None
    detail: str = ""


def _send(raw: RawSocketIO, items: Frames) -> bool:
    """Send every frame; False when the server closed the connection on the way."""
    try:
        for item in items:
            if isinstance(item, TextBytes):
                raw.send_frame(bytes(item), OPCODE_TEXT)
            elif isinstance(item, bytes):
                raw.send_frame(item, OPCODE_BINARY)
            else:
                raw.send_text(item)
    except (OSError, websocket.WebSocketException):
        return False
    return True


def _probe(raw: RawSocketIO, probes: int) -> Observation:
    for attempt in range(probes):
        if raw.alive(2.0, ack_id=900_000 + attempt):
            return Observation(Outcome.IGNORED)
        if raw.closed is not None:
            return Observation(Outcome.CLOSED, detail=str(raw.closed))
    if raw.closed_within(1.0):
        return Observation(Outcome.CLOSED, detail=str(raw.closed))
    return Observation(Outcome.UNRESPONSIVE)


def observe(fuzz: FuzzServer, case: Hostile) -> Observation:
    """Send the case's frames on a fresh connection and classify what the server did."""
    user_id, raw = fuzz.raw(connect=case.connect)
    with raw:
        if not _send(raw, case.frames(int(raw.open_packet["maxPayload"]))):
            return Observation(Outcome.CLOSED, detail="closed while we were sending")
        if case.refused_namespace == "/":  # a second CONNECT on the connected namespace
            try:
                answer = raw.connect({"token": fuzz.tokens[user_id]}, timeout=2)
            except TimeoutError:
                return _probe(raw, case.probes)
            except Closed as closed:
                return Observation(Outcome.CLOSED, detail=str(closed))
            if answer.is_connect_error:
                return Observation(Outcome.NAMESPACE_REFUSED, answer) if raw.alive() else Observation(Outcome.UNRESPONSIVE)
            return Observation(Outcome.CONNECTED, answer)
        try:
            if case.ack_id is not None:
                packet = raw.expect(lambda p: p.is_ack(case.ack_id), 3.0)  # type: ignore[arg-type]
                return Observation(Outcome.ACK, packet)
            if case.refused_namespace is not None:
                packet = raw.expect(lambda p: p.is_connect_error and p.namespace == case.refused_namespace, 3.0)
                return Observation(Outcome.NAMESPACE_REFUSED, packet) if raw.alive() else Observation(Outcome.UNRESPONSIVE)
        except Closed as closed:
            return Observation(Outcome.CLOSED, detail=str(closed))
        except TimeoutError:
            pass
        if not case.connect:
            try:
                answer = raw.connect({"token": fuzz.tokens[user_id]}, timeout=3)
            except (Closed, TimeoutError) as exc:
                return Observation(Outcome.CLOSED if raw.closed else Outcome.UNRESPONSIVE, detail=repr(exc))
            assert answer.is_connect, f"the CONNECT after the hostile frames was refused: {answer}"
        return _probe(raw, case.probes)


def assert_envelope(envelope: Any) -> None:
    """The one ack envelope: ``{"ok": true, "data": …}`` or ``{"ok": false, "error": {code, message, …}}``."""
    assert isinstance(envelope, dict), envelope
    if envelope.get("ok") is True:
        assert set(envelope) == {"ok", "data"}, envelope
        return
    assert envelope.get("ok") is False and set(envelope) == {"ok", "error"}, envelope
    error = envelope["error"]
    assert isinstance(error, dict) and error.get("code") in ENVELOPE_CODES, envelope
    assert isinstance(error.get("message"), str), envelope
    assert set(error) <= {"code", "message", "fields"}, envelope
    assert error["code"] != ErrorCode.INTERNAL.value, envelope


@pytest.mark.parametrize("case", HOSTILE, ids=lambda c: c.id if isinstance(c, Hostile) else None)
def test_hostile_frames(server: FuzzServer, case: Hostile) -> None:
    observation = observe(server, case)
    server.check_alive()
    assert observation.outcome in case.expect, (
        f"{case.id}: the server's answer was {observation.outcome.value} {observation.packet or ''} "
        f"{observation.detail}; expected {' or '.join(sorted(o.value for o in case.expect))}"
    )
    if observation.outcome is Outcome.ACK:
        assert observation.packet is not None
        args = observation.packet.data
        assert isinstance(args, list) and len(args) == 1, args
        envelope = args[0]
        assert_envelope(envelope)
        codes = {case.code} if isinstance(case.code, str) else set(case.code or ())
        assert envelope["ok"] is False and envelope["error"]["code"] in codes, envelope
        if case.field is not None:
            assert case.field in (envelope["error"].get("fields") or {}), envelope


# -- handshakes -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HostileConnect:
    """A hostile Socket.IO CONNECT: ``auth(token)`` is the CONNECT's JSON (``None``: a bare ``40``)."""

    id: str
    auth: Callable[[str], Any]
    expect: Outcome
    code: str | None = None
    url_token: bool = False


HOSTILE_CONNECTS = [
    HostileConnect("no-auth-anywhere", lambda t: None, Outcome.CONNECT_ERROR, "AUTH_REQUIRED"),
    HostileConnect("auth-is-a-string", lambda t: "abc", Outcome.CONNECT_ERROR, "AUTH_REQUIRED"),
    HostileConnect("auth-is-an-array", lambda t: [t], Outcome.CONNECT_ERROR, "AUTH_REQUIRED"),
    HostileConnect("token-is-a-number", lambda t: {"token": 5}, Outcome.CONNECT_ERROR, "AUTH_REQUIRED"),
    HostileConnect("token-is-an-object", lambda t: {"token": {"token": t}}, Outcome.CONNECT_ERROR, "AUTH_REQUIRED"),
    HostileConnect("token-60k-chars", lambda t: {"token": "a" * 60_000}, Outcome.CONNECT_ERROR, "INVALID_TOKEN"),
    HostileConnect("token-garbage", lambda t: {"token": "not.a.jwt"}, Outcome.CONNECT_ERROR, "INVALID_TOKEN"),
    HostileConnect("token-alg-none", lambda t: {"token": _alg_none(t)}, Outcome.CONNECT_ERROR, "INVALID_TOKEN"),
    HostileConnect("proto-in-auth", lambda t: {"token": t, "__proto__": {"admin": True}}, Outcome.CONNECTED),
    # Connection-state recovery: a pid or offset that names nothing is a new session, never an error.
    HostileConnect("recovery-unknown-pid", lambda t: {"token": t, "pid": "nope", "offset": "garbage"},
                   Outcome.CONNECTED),
    HostileConnect("recovery-pid-50k-chars", lambda t: {"token": t, "pid": "p" * 50_000, "offset": "1-1"},
                   Outcome.CONNECTED),
    HostileConnect("recovery-offset-object", lambda t: {"token": t, "pid": "x", "offset": {"$gt": ""}},
                   Outcome.CONNECTED),
    HostileConnect("recovery-offset-huge", lambda t: {"token": t, "pid": "", "offset": "9" * 40 + "-1"},
                   Outcome.CONNECTED),
    HostileConnect("recovery-pid-without-token", lambda t: {"pid": "x", "offset": "0-0"}, Outcome.CONNECT_ERROR,
                   "AUTH_REQUIRED"),
]


def _alg_none(token: str) -> str:
    """``token``'s claims re-encoded with ``alg: none`` and no signature."""
    import base64

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    claims = token.split(".")[1]
    return f"{b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{claims}."


@pytest.mark.parametrize("case", HOSTILE_CONNECTS, ids=lambda c: c.id)
def test_hostile_connects(server: FuzzServer, case: HostileConnect) -> None:
    user_id, token = server.user()
    with RawSocketIO.open(server.url, token if case.url_token else None) as raw:
        answer = raw.connect(case.auth(token))
        if answer.is_connect:
            assert isinstance(answer.data, dict) and isinstance(answer.data.get("sid"), str), answer
            assert answer.data.get("pid") not in ("nope", "x", "p" * 50_000), answer
            assert raw.alive(), "connected, but the socket does not answer"
            outcome = Outcome.CONNECTED
        else:
            outcome = Outcome.CONNECT_ERROR
    server.check_alive()
    assert outcome is case.expect, answer
    if outcome is Outcome.CONNECT_ERROR:
        assert isinstance(answer.data, dict) and answer.data.get("data", {}).get("code") == case.code, answer


# -- a flood --------------------------------------------------------------------------------------------------


def test_flood_is_rate_limited(server: FuzzServer) -> None:
    """2,000 events as fast as possible on one authenticated socket: mostly RATE_LIMITED, never INTERNAL.

    The server may also close the socket (RATE_LIMIT_DISCONNECT refusals in a row, or an outbound queue past
    MAX_OUTBOUND_QUEUE); it must not crash or stall anyone else.
    """
    log_start = len(server.proc.log_text())
    _, raw = server.raw()
    count = 2000
    with raw:
        join_ack = 10_000
        raw.emit("chat:join", {"roomId": ROOM}, ack_id=join_ack)
        assert raw.ack(join_ack)[0]["ok"]
        started = time.monotonic()
        sent = 0
        try:
            for ack_id in range(count):
                raw.emit("chat:history", {"roomId": ROOM, "limit": 1}, ack_id=ack_id)
                sent += 1
        except (OSError, websocket.WebSocketException):
            pass
        send_seconds = time.monotonic() - started
        acks: dict[int, dict[str, Any]] = {}
        deadline = time.monotonic() + 15
        try:
            while len(acks) < sent and time.monotonic() < deadline:
                frame = raw.recv(1.0)
                packet = frame.socketio() if frame is not None else None
                if packet is not None and packet.kind == "3" and packet.id is not None and packet.id < count:
                    acks[packet.id] = packet.data[0]
        except Closed:
            pass
        elapsed = time.monotonic() - started
    server.check_alive()
    time.sleep(1.5)  # let the server finish logging about it
    server.flood_log = server.proc.log_text()[log_start:]
    codes = Counter("ok" if a["ok"] else a["error"]["code"] for a in acks.values())
    print(f"\nflood: sent {sent} in {send_seconds:.2f}s, {len(acks)} acks in {elapsed:.2f}s: {dict(codes)}; "
          f"closed by the server: {raw.closed is not None}")
    for envelope in acks.values():
        assert_envelope(envelope)
    assert set(codes) <= {"ok", "RATE_LIMITED"}, codes
    assert len(acks) == sent or raw.closed is not None, f"{sent - len(acks)} events got no ack and the socket stayed open"
    assert codes["RATE_LIMITED"] > len(acks) / 2, codes
    # EVENT_BURST plus EVENT_RATE over the time it took, with slack.
    assert codes["ok"] <= EVENT_BURST + EVENT_RATE * elapsed + 5, codes


def _flood_log(server: FuzzServer) -> str:
    """The server log of the flood; runs the flood first when this test runs on its own."""
    if server.flood_log is None:
        test_flood_is_rate_limited(server)
    assert server.flood_log is not None
    return server.flood_log


def test_flood_is_logged_once_per_socket(server: FuzzServer) -> None:
    log = _flood_log(server)
    abuse = log.count("disconnecting a socket after sustained rate limiting")
    slow = log.count("slow consumer:")
    print(f"\nflood log: {abuse} 'sustained rate limiting' and {slow} 'slow consumer' warnings for one socket")
    assert abuse <= 1 and slow <= 1


def test_flood_does_not_break_the_message_queue(server: FuzzServer) -> None:
    log = _flood_log(server)
    broken = [line for line in log.splitlines() if "Cannot publish to redis" in line or "Cannot receive from redis" in line]
    assert not broken, broken[:4]


def test_a_burst_of_concurrent_events_is_served(server: FuzzServer) -> None:
    """BURST_SOCKETS sockets join a room, then each sends one chat:message, all at (nearly) the same time:
    every join and every message is served."""

    def answers(sockets: list[RawSocketIO], ack_id: int) -> Counter[str]:
        codes: Counter[str] = Counter()
        for raw in sockets:
            try:
                envelope = raw.ack(ack_id, 10)[0]
                codes["ok" if envelope["ok"] else envelope["error"]["code"]] += 1
            except (Closed, TimeoutError) as exc:
                codes[type(exc).__name__] += 1
        return codes

    sockets: list[RawSocketIO] = []
    try:
        for _ in range(BURST_SOCKETS):
            sockets.append(server.raw()[1])
        for raw in sockets:
            raw.emit("chat:join", {"roomId": "burst"}, ack_id=1)
        joined = answers(sockets, 1)
        for raw in sockets:
            raw.emit("chat:message", {"roomId": "burst", "content": "burst"}, ack_id=2)
        sent = answers(sockets, 2)
    finally:
        for raw in sockets:
            raw.close()
    server.check_alive()
    print(f"\nburst of {BURST_SOCKETS} sockets: chat:join {dict(joined)}, chat:message {dict(sent)}")
    assert joined == {"ok": BURST_SOCKETS} and sent == {"ok": BURST_SOCKETS}, (dict(joined), dict(sent))


# -- known bugs beyond a single frame -------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["one-frame-declaring-16MB", "fragments-without-fin"])
def test_oversized_message_is_refused_before_it_is_buffered(server: FuzzServer, shape: str) -> None:
    _, raw = server.raw()
    chunk = b"4" * 65_536
    with raw:
        try:
            if shape == "one-frame-declaring-16MB":
                raw.send_raw(RawSocketIO.frame_header(16 * 1024 * 1024))
                for _ in range(16):  # 1 MB of it: 16 times MAX_PAYLOAD_BYTES
                    raw.send_raw(chunk)
            else:
                raw.send_frame(b"42", OPCODE_TEXT, fin=False)
                for _ in range(16):
                    raw.send_frame(chunk, 0, fin=False)  # continuation frames, never the last
        except (OSError, websocket.WebSocketException):
            pass
        closed = raw.closed_within(1.0)
    server.check_alive()
    assert closed, "the server kept reading a message 16x larger than MAX_PAYLOAD_BYTES"


def test_binary_attachments_are_bounded(server: FuzzServer) -> None:
    _, raw = server.raw()
    with raw:
        raw.send_text('451000000-["chat:message",{"_placeholder":true,"num":0}]')
        try:
            for _ in range(48):  # 48 x 60 kB: 44 times MAX_PAYLOAD_BYTES
                raw.send_binary(b"\0" * 60_000)
        except (OSError, websocket.WebSocketException):
            pass
        closed = raw.closed_within(1.0)
    server.check_alive()
    assert closed, "the server buffered 2.9 MB of attachments for one pending packet"


@pytest.mark.parametrize("frame", ["x", ""], ids=["type-x", "empty-frame"])
def test_aborted_transport_releases_its_socket(server: FuzzServer, frame: str) -> None:
    user_id, raw = server.raw()
    assert server.canaries is not None
    observer = server.canaries[0]

    def online() -> bool:
        ack = observer.call("presence:check", {"userIds": [user_id]})
        assert ack["ok"], ack
        return bool(ack["data"][0]["isOnline"])

    assert online()
    with raw:
        raw.send_text(frame)
        assert raw.closed_within(2.0), "the server neither ignored nor closed"
    deadline = time.monotonic() + 3.0
    still_online = True
    while still_online and time.monotonic() < deadline:
        time.sleep(0.25)
        still_online = online()
    server.check_alive()
    assert not still_online, f"{user_id} stays online after the server dropped its only connection"


def test_validation_errors_are_bounded(server: FuzzServer) -> None:
    _, raw = server.raw()
    with raw:
        raw.send_text(f'421["presence:check",{_array(HUGE_BARE_FITS)}]')
        frame = None
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            frame = raw.recv(1.0)
            packet = frame.socketio() if frame is not None else None
            if packet is not None and packet.is_ack(1):
                break
        assert frame is not None
        size = len(frame.data)
    server.check_alive()
    print(f"\nack to a {MAX_PAYLOAD}-byte presence:check of {HUGE_BARE_FITS} zeros: {size} bytes")
    assert size <= 16 * 1024, f"a {MAX_PAYLOAD}-byte event was answered with a {size}-byte ack"


# -- after everything ----------------------------------------------------------------------------------------

_TRACEBACK_FILE = re.compile(r'^\s*File "([^"]+)", line \d+, in (\S+)')
_LOG_LINE = re.compile(r"^\S+ \S+ (WARNING|ERROR|CRITICAL) \[\d+\] (\S+): (.*)$")
#: Tracebacks through the ``realtime`` package that known bugs produce (exception line prefix → the xfail test).
KNOWN_REALTIME_TRACEBACKS: dict[str, str] = {}


def _normalized(exception_line: str) -> str:
    """One bucket per kind of refusal (the random junk makes hundreds of distinct int() literals)."""
    line = re.sub(r"(invalid literal for int\(\) with base 10: ).*", r"\1<byte>", exception_line)
    return re.sub(r"(line \d+ column \d+ \(char \d+\))", "<position>", line)[:120]


def traceback_blocks(text: str) -> list[list[str]]:
    """Each ``Traceback (most recent call last):`` block, through its exception line."""
    blocks: list[list[str]] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        if lines[index].startswith("Traceback (most recent call last):"):
            block = [lines[index]]
            index += 1
            while index < len(lines) and (lines[index].startswith(" ") or not lines[index]):
                block.append(lines[index])
                index += 1
            if index < len(lines):
                block.append(lines[index])
            blocks.append(block)
        index += 1
    return blocks


def through_realtime(block: list[str]) -> list[str]:
    """The frames of ``block`` inside the ``realtime`` package."""
    package = REPO_ROOT / "realtime"
    frames_: list[str] = []
    for line in block:
        match = _TRACEBACK_FILE.match(line)
        if match and Path(match.group(1)).is_relative_to(package):
            frames_.append(f"{Path(match.group(1)).relative_to(REPO_ROOT)}:{match.group(2)}")
    return frames_


def test_server_log(server: FuzzServer) -> None:
    """No traceback passes through ``realtime``, save the known bug's; prints what the libraries logged."""
    text = server.proc.log_text()
    blocks = traceback_blocks(text)
    exceptions = Counter(_normalized(block[-1]) for block in blocks)
    ours = [(block[-1], through_realtime(block)) for block in blocks if through_realtime(block)]
    records = Counter(
        (m.group(1), m.group(2), re.sub(r"\d+", "N", m.group(3))[:90])
        for m in map(_LOG_LINE.match, text.splitlines())
        if m
    )
    lines = text.splitlines()
    summary = {
        "log": str(server.proc.log_path),
        "lines": len(lines),
        "tracebacks": len(blocks),
        # engineio's own StreamHandler (engineio_logger=False) prints records a second time, unformatted
        "unformatted_message_handler_error_lines": sum(1 for line in lines if line == "message handler error"),
        "gevent_failed_greenlet_lines": sum(1 for line in lines if re.search(r"\) failed with \w+$|> failed with \w+$", line)),
        "by_exception": exceptions.most_common(),
        "through_realtime": Counter(f"{exc} @ {' > '.join(frames_)}" for exc, frames_ in ours).most_common(),
        "records": [[*key, count] for key, count in records.most_common(25)],
    }
    (server.log_dir / "fuzz-log-summary.json").write_text(json.dumps(summary, indent=2))
    print("\nserver log summary:\n" + json.dumps(summary, indent=2))
    unexpected = [(exc, frames_) for exc, frames_ in ours if not exc.startswith(tuple(KNOWN_REALTIME_TRACEBACKS))]
    assert not unexpected, f"tracebacks through the realtime package: {unexpected}"


def test_worker_memory_is_bounded(server: FuzzServer) -> None:
    """The worker's RSS after every case above stays within RSS_GROWTH_LIMIT_MB of its RSS before them."""
    server.check_alive()
    time.sleep(0.5)
    after = rss_kb(server.worker_pid)
    growth_mb = (after - server.rss_before_kb) / 1024
    print(f"\nworker {server.worker_pid} RSS: before {server.rss_before_kb / 1024:.1f} MB, after "
          f"{after / 1024:.1f} MB, growth {growth_mb:.1f} MB; canary checks passed: {server.canary_checks}")
    assert growth_mb < RSS_GROWTH_LIMIT_MB
