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
    assert body["count"] == len(body["events"]) == 33
    assert body["categories"] == {"chat": 10, "game": 3, "notifications": 5, "party": 6, "presence": 6, "rooms": 1, "session": 2}
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
    assert join["x-response-events"] == ["chat:history", "chat:user_joined"]
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
import type { ClientToServerEvents, ServerToClientEvents, ConnectErrorData } from "./realtime-events";

const socket: Socket<ServerToClientEvents, ClientToServerEvents> = io("http://127.0.0.1:5000", {
  auth: { token: "t" },
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
  void err; void ack;
});
socket.on("chat:new_message", (message) => { const sender: string = message.senderId; void sender; });
socket.on("force_logout", (payload) => { const reason: "duplicate_login" | "revoked" = payload.reason; void reason; });
socket.on("connect_error", (err) => { void (err as Error & { data?: ConnectErrorData }).data; });
"""
WRONG = {
    "number-room-id": 'socket.emit("chat:join", { roomId: 42 }, () => undefined);',
    "unknown-event": 'socket.emit("chat:teleport", {}, () => undefined);',
    "bad-status": 'socket.emit("presence:status", { status: "sleeping" }, () => undefined);',
    "missing-content-type": 'socket.emit("chat:history", { limit: 5 }, () => undefined);',
    "wrong-listener-type": 'socket.on("chat:new_message", (m) => { const n: number = m.content; void n; });',
}


def test_types_compile_strictly_and_reject_wrong_payloads(app: Flask) -> None:
    types = app.test_client().get("/ws-docs/types.ts")
    assert types.status_code == 200
    expect_errors = "".join(f"// @ts-expect-error {name}\n{line}\n" for name, line in WRONG.items())

    with typescript_project({"realtime-events.ts": types.get_data(as_text=True), "usage.ts": USAGE + expect_errors}) as folder:
        compiled = tsc(folder, "usage.ts", "realtime-events.ts")
        (folder / "wrong.ts").write_text(USAGE + WRONG["number-room-id"] + "\n")
        rejected = tsc(folder, "wrong.ts", "realtime-events.ts")

    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    assert rejected.returncode != 0
    assert "Type 'number' is not assignable to type 'string'" in rejected.stdout


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
