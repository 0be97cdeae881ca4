"""The docs blueprint: JSON routes, the WS_DOCS_ENABLED switch, AsyncAPI validity, TypeScript that compiles."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from realtime import create_app
from tests.conftest import TEST_SECRET
from tests.helpers.node_tools import tsc, typescript_project, validate_asyncapi

PROD = {
    "APP_ENV": "prod",
    "JWT_SECRET": TEST_SECRET,
    "ALLOWED_ORIGINS": "https://app.example",
    "LOG_LEVEL": "WARNING",
}
ROUTES = ["/ws-docs", "/ws-docs/spec", "/ws-docs/events", "/ws-docs/events/category/chat",
          "/ws-docs/events/chat:message", "/ws-docs/types.ts"]


def get_json(app: Flask, path: str) -> tuple[int, Any]:
    response = app.test_client().get(path)
    return response.status_code, response.get_json()


def test_events_route_lists_every_event(app: Flask) -> None:
    status, body = get_json(app, "/ws-docs/events")

    assert status == 200
    assert body["count"] == len(body["events"]) == 34
    assert body["categories"] == {"chat": 11, "game": 3, "notifications": 5, "party": 6, "presence": 6, "rooms": 1, "session": 2}
    assert {e["name"] for e in body["events"]} >= {"chat:message", "force_logout", "system:announcement"}


def test_category_route_and_its_404(app: Flask) -> None:
    status, body = get_json(app, "/ws-docs/events/category/party")
    missing_status, missing = get_json(app, "/ws-docs/events/category/weather")

    assert status == 200
    assert body["category"] == "party" and body["count"] == 6
    assert all(e["category"] == "party" for e in body["events"])
    assert missing_status == 404
    assert missing["error"]["code"] == "NOT_FOUND"


def test_event_route_and_its_404(app: Flask) -> None:
    status, body = get_json(app, "/ws-docs/events/chat:message")
    missing_status, missing = get_json(app, "/ws-docs/events/chat:teleport")

    assert status == 200
    (event,) = body["events"]
    assert event["direction"] == "client_to_server"
    assert event["roomRequired"] is True
    assert "NOT_IN_ROOM" in [e["code"] for e in event["errors"]]
    assert event["responseEvents"] == ["chat:new_message"]
    assert missing_status == 404 and missing["error"]["code"] == "NOT_FOUND"


def test_broadcast_event_is_documented_as_broadcast(app: Flask) -> None:
    _, body = get_json(app, "/ws-docs/events/system:announcement")

    (event,) = body["events"]
    assert event["direction"] == "broadcast"
    assert event["to"] == "broadcast:all"
    assert event["publishable"] is True


@pytest.mark.parametrize(
    ("overrides", "enabled"),
    [
        ({}, True),
        ({"APP_ENV": "dev"}, True),
        ({"WS_DOCS_ENABLED": "false"}, False),
        (PROD, False),
        ({**PROD, "WS_DOCS_ENABLED": "true"}, True),
    ],
    ids=["local-default", "dev-default", "local-switched-off", "prod-default", "prod-switched-on"],
)
def test_ws_docs_enabled_switch(
    config: dict[str, Any], overrides: dict[str, str], enabled: bool, redis_url: str
) -> None:
    # APP_ENV=prod refuses to start without Redis.
    stores = {"REDIS_URL": redis_url, "MESSAGE_QUEUE_URL": ""} if overrides.get("APP_ENV") == "prod" else {}
    app = create_app({**config, **overrides, **stores})
    client = app.test_client()
    try:
        statuses = {path: client.get(path).status_code for path in ROUTES}
    finally:
        app.extensions["realtime"].lifecycle.stop()

    assert set(statuses.values()) == ({200} if enabled else {404}), statuses


def test_spec_route_is_asyncapi_2_6_with_servers_from_the_request(app: Flask) -> None:
    status, spec = get_json(app, "/ws-docs/spec")

    assert status == 200
    assert spec["asyncapi"] == "2.6.0"
    (server,) = spec["servers"].values()
    assert server["url"] == "localhost" and server["protocol"] == "ws"
    join = spec["channels"]["chat:join"]["publish"]
    assert join["message"] == {"$ref": "#/components/messages/chat_join"}
    assert join["x-direction"] == "client_to_server"
    assert join["x-ack"] == {"$ref": "#/components/schemas/ChatHistoryOut"}
    assert join["x-response-events"] == ["chat:history", "chat:user_joined", "chat:members_changed"]
    assert "subscribe" in spec["channels"]["chat:new_message"]
    assert set(spec["channels"]["chat:history"]) == {"description", "publish", "subscribe"}


def test_servers_come_from_public_url(config: dict[str, Any]) -> None:
    app = create_app({**config, "PUBLIC_URL": "https://rt.example.com"})

    _, spec = get_json(app, "/ws-docs/spec")

    assert spec["servers"] == {
        "local": {
            "url": "rt.example.com",
            "protocol": "wss",
            "protocolVersion": "5",
            "description": "Socket.IO endpoint https://rt.example.com/socket.io/ (local).",
            "security": [{"bearerToken": []}, {"queryToken": []}],
        }
    }


def test_asyncapi_spec_validates_with_zero_errors(app: Flask) -> None:
    _, spec = get_json(app, "/ws-docs/spec")

    verdict = validate_asyncapi(spec)

    errors = [d for d in verdict["diagnostics"] if d["severity"] == "error"]
    assert verdict["parsed"] is True
    assert errors == []


def test_the_validator_does_catch_an_example_that_breaks_its_schema(app: Flask) -> None:
    _, spec = get_json(app, "/ws-docs/spec")
    spec["components"]["messages"]["chat_join"]["examples"][0]["payload"] = {"roomId": 42}

    verdict = validate_asyncapi(spec)

    assert verdict["errors"] > 0
    assert any(d["code"] == "asyncapi2-message-examples" for d in verdict["diagnostics"])


USAGE = """\
import { io, Socket } from "socket.io-client";
import type {
  AckEnvelope, ChatSentAck, ClientToServerEvents, ConnectErrorData, ErrorCode, RealtimeSocket, ServerToClientEvents,
} from "./realtime-events";

const socket: RealtimeSocket = io("http://127.0.0.1:5000", { auth: { token: "t" } });
const plain: Socket<ServerToClientEvents, ClientToServerEvents> = io("http://127.0.0.1:5000", { auth: { token: "t" } });
plain.emit("chat:message", { roomId: "lobby", content: "hi" });
plain.emit("chat:join", { roomId: "lobby" }, (ack) => { if (ack.ok) { void ack.data.messages; } });
socket.emit("chat:message", { roomId: "lobby", content: "hi" });
socket.emit("presence:status", "away");
socket.emit("chat:message", { roomId: "lobby", content: "hi" }, (ack) => {
  const envelope: AckEnvelope<ChatSentAck> = ack;
  if (ack.ok) {
    const id: string = ack.data.id;
    void id;
  } else {
    const code: ErrorCode = ack.error.code;
    void code;
  }
  void envelope;
});
socket.emit("chat:join", { roomId: "lobby" }, (ack) => {
  if (ack.ok) {
    const count: number = ack.data.messages.length;
    const name: string | undefined = ack.data.messages[0]?.sender.username;
    void count; void name;
  } else {
    const code: string = ack.error.code;
    void code;
  }
});
socket.emit("presence:check", ["bob"], (ack) => {
  if (ack.ok) { const online: boolean = ack.data[0].isOnline; void online; }
});
socket.emit("presence:status", "away", () => undefined);
socket.timeout(5000).emit("chat:message", { roomId: "lobby", content: "hi" }, (err, ack) => {
  const failure: Error = err;
  if (ack.ok) { const duplicate: boolean = ack.data.duplicate; void duplicate; }
  void failure;
});
async function requests(): Promise<void> {
  const sent = await socket.emitWithAck("chat:message", { roomId: "lobby", content: "hi" });
  if (sent.ok) { const id: string = sent.data.id; void id; }
  const page = await socket.timeout(5000).emitWithAck("chat:history", { roomId: "lobby", limit: 5 });
  if (page.ok) { const cursor: string | null = page.data.cursor; void cursor; }
  const status: AckEnvelope<unknown> = await socket.emitWithAck("presence:status", "busy");
  void status;
}
void requests;
socket.on("chat:new_message", (message) => { const sender: string = message.senderId; void sender; });
socket.on("force_logout", (payload) => { const reason: "duplicate_login" | "revoked" = payload.reason; void reason; });
socket.on("connect_error", (err) => { void (err as Error & { data?: ConnectErrorData }).data; });
"""
#: Usages tsc must reject: case → (line, what the compiler says about it).
WRONG = {
    "number-room-id": (
        'socket.emit("chat:join", { roomId: 42 }, () => undefined);',
        "Type 'number' is not assignable to type 'string'",
    ),
    "unknown-event": (
        'socket.emit("chat:teleport", {}, () => undefined);',
        """Argument of type '"chat:teleport"' is not assignable""",
    ),
    "unknown-event-without-ack": (
        'socket.emit("chat:teleport", { roomId: "lobby" });',
        """Argument of type '"chat:teleport"' is not assignable""",
    ),
    "misspelt-payload-field": (
        'socket.emit("chat:message", { room: "lobby", content: "hi" });',
        "'room' does not exist in type 'ChatMessageIn'",
    ),
    "bad-status": (
        'socket.emit("presence:status", { status: "sleeping" }, () => undefined);',
        """Type '"sleeping"' is not assignable to type '"online" | "away" | "busy"'""",
    ),
    "missing-content-type": (
        'socket.emit("chat:history", { limit: 5 }, () => undefined);',
        "Property 'roomId' is missing",
    ),
    "wrong-listener-type": (
        'socket.on("chat:new_message", (m) => { const n: number = m.content; void n; });',
        "Type 'string | null | undefined' is not assignable to type 'number'",
    ),
    "ack-data-before-ok": (
        'socket.emit("chat:join", { roomId: "lobby" }, (ack) => { void ack.data.messages; });',
        "Property 'data' does not exist on type 'AckEnvelope<ChatHistoryOut>'",
    ),
    "ack-data-wrong-type": (
        'socket.emit("chat:message", { roomId: "x" }, (a) => { if (a.ok) { const n: number = a.data.id; void n; } });',
        "Type 'string' is not assignable to type 'number'",
    ),
    "timeout-without-ack": (
        'socket.timeout(5000).emit("chat:join", { roomId: "lobby" });',
        "Expected 3 arguments, but got 2",
    ),
    "timeout-ack-without-err": (
        'socket.timeout(5000).emit("chat:join", { roomId: "lobby" }, (ack) => { void ack.ok; });',
        "Property 'ok' does not exist on type 'Error'",
    ),
    "with-ack-unknown-event": (
        'void socket.emitWithAck("chat:teleport", {});',
        """Argument of type '"chat:teleport"' is not assignable""",
    ),
    "with-ack-wrong-payload": (
        'void socket.emitWithAck("chat:join", { roomId: 42 });',
        "Type 'number' is not assignable to type 'string'",
    ),
    "with-ack-result-before-ok": (
        'void socket.emitWithAck("chat:message", { roomId: "x" }).then((ack) => ack.data.id);',
        "Property 'data' does not exist on type 'AckEnvelope<ChatSentAck>'",
    ),
    "with-ack-result-wrong-type": (
        'void socket.emitWithAck("chat:message", { roomId: "x" }).then((a) => { if (a.ok) { const n: number = a.data.duplicate; void n; } });',
        "Type 'boolean' is not assignable to type 'number'",
    ),
    "timed-with-ack-result-type": (
        'void socket.timeout(1).emitWithAck("game:move", { gameId: "g", move: {} }).then((a) => { if (a.ok) { const s: string = a.data.moveCount; void s; } });',
        "Type 'number' is not assignable to type 'string'",
    ),
}


def test_types_compile_strictly_and_reject_wrong_payloads(app: Flask) -> None:
    types = app.test_client().get("/ws-docs/types.ts")
    assert types.status_code == 200
    expect_errors = "".join(f"// @ts-expect-error {name}\n{line}\n" for name, (line, _) in WRONG.items())
    wrong = USAGE + "".join(f"{line}\n" for line, _ in WRONG.values())
    first_wrong_line = USAGE.count("\n") + 1
    files = {"realtime-events.ts": types.get_data(as_text=True), "usage.ts": USAGE + expect_errors, "wrong.ts": wrong}

    with typescript_project(files) as folder:
        compiled = tsc(folder, "usage.ts", "realtime-events.ts")
        rejected = tsc(folder, "wrong.ts", "realtime-events.ts")

    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    errors = errors_by_line(rejected.stdout, "wrong.ts")
    lines = dict(zip(WRONG, range(first_wrong_line, first_wrong_line + len(WRONG)), strict=True))
    assert sorted(errors) == sorted(lines.values()), rejected.stdout
    missed = {name: errors[lines[name]] for name, (_, expected) in WRONG.items() if expected not in errors[lines[name]]}
    assert missed == {}


def errors_by_line(output: str, file: str) -> dict[int, str]:
    """tsc's diagnostics for ``file``: line number → the error text with its indented continuation lines."""
    errors: dict[int, str] = {}
    current: int | None = None
    for text in output.splitlines():
        if text.startswith(f"{file}("):
            current = int(text[len(file) + 1:].split(",", 1)[0])
            errors[current] = errors.get(current, "") + text
        elif current is not None and text.startswith(" "):
            errors[current] += "\n" + text
        else:
            current = None
    return errors


@pytest.mark.parametrize(("fmt", "check"), [("asyncapi", "asyncapi"), ("ts", "ts")])
def test_cli_export(app: Flask, tmp_path: Path, fmt: str, check: str) -> None:
    target = tmp_path / f"out.{fmt}"

    result = app.test_cli_runner().invoke(args=["docs", "export", "--format", fmt, "-o", str(target)])

    assert result.exit_code == 0, result.output
    text = target.read_text()
    if check == "asyncapi":
        assert json.loads(text)["asyncapi"] == "2.6.0"
    else:
        assert "export interface ClientToServerEvents" in text
        assert '"chat:message": (payload: ChatMessageIn' in text
