"""The typed client's declarations under ``tsc --strict``: example usages compile, wrong ones are rejected.

``/ws-docs/client.d.ts`` and the React bindings' ``/ws-docs/client-react.d.ts`` are compiled next to usage
code in a scratch folder of ``tests/node`` (pinned TypeScript and ``@types/react``); every wrong usage sits
under ``@ts-expect-error``, so tsc fails if one of them compiles, and compiled without it, each wrong line
fails with its own error.
"""
from __future__ import annotations

import re

from flask import Flask

from tests.helpers.node_tools import tsc, typescript_project

USAGE = """\
import { createClient, RealtimeError, RealtimeClient, ConnectionState, ResultOf, PayloadOf } from "./client";

declare function refreshToken(): Promise<string>;

const client: RealtimeClient = createClient("https://chat.example", {
  getToken: refreshToken,
  timeout: 5000,
  outboxLimit: 50,
  backoff: { minMs: 500, maxMs: 8000, jitter: 0.3 },
});
createClient("https://chat.example", { token: "jwt", storage: null });

async function usage(): Promise<void> {
  const joined = await client.request("chat:join", { roomId: "lobby" });
  const newest: string = joined.messages[0].id;
  const sent = await client.request("chat:message", { roomId: "lobby", content: "hi" }, { timeout: 2000 });
  const id: string = sent.id;
  const duplicate: boolean = sent.duplicate;
  const presence = await client.request("presence:check", ["alice", "bob"]);
  const online: boolean = presence[0].isOnline;
  await client.request("presence:status", "away");
  try {
    await client.request("chat:leave", { roomId: "lobby" });
  } catch (err) {
    if (err instanceof RealtimeError && (err.code === "NOT_IN_ROOM" || err.code === "TIMEOUT")) {
      const fields: Record<string, unknown> | null = err.fields;
      void fields;
    }
  }
  void newest; void id; void duplicate; void online;
}

function onMessage(m: { id: string; content?: string | null; sender: { id: string } }): void { void m; }
client.on("chat:new_message", onMessage);
client.on("chat:user_typing", (t) => { const typing: boolean = t.isTyping; void typing; });
client.once("force_logout", (e) => { const reason: "duplicate_login" | "revoked" = e.reason; void reason; });
client.off("chat:new_message", onMessage);
const stop = client.subscribe((state: ConnectionState) => {
  if (state.status === "connected" && state.recovered) console.log("recovered");
  if (state.status === "closed") console.log(state.reason, state.error?.code);
});
stop();
type Sent = ResultOf<"chat:message">;
const payload: PayloadOf<"chat:typing"> = { roomId: "lobby", isTyping: true };
void usage; void payload; void (null as unknown as Sent);
"""

#: One wrong usage per line; each must be a compile error.
WRONG = {
    "unknown-request": 'client.request("chat:teleport", {});',
    "number-room-id": 'client.request("chat:join", { roomId: 42 });',
    "missing-room-id": 'client.request("chat:message", { content: "hi" });',
    "bad-status": 'client.request("presence:status", "sleeping");',
    "wrong-result-use": 'client.request("chat:message", { roomId: "r" }).then((r) => { const n: number = r.id; });',
    "unknown-server-event": 'client.on("chat:teleported", () => undefined);',
    "wrong-handler-type": 'client.on("chat:new_message", (m) => { const n: number = m.id; });',
    "bad-timeout": 'client.request("chat:join", { roomId: "r" }, { timeout: "soon" });',
    "no-token": 'createClient("https://chat.example", {});',
    "unknown-state": 'client.subscribe((s) => { if (s.status === "online") return; });',
}

EXPECTED = {
    "unknown-request": "not assignable to parameter of type",
    "number-room-id": "Type 'number' is not assignable to type 'string'",
    "missing-room-id": "Property 'roomId' is missing",
    "bad-status": "not assignable to parameter of type",
    "wrong-result-use": "Type 'string' is not assignable to type 'number'",
    "unknown-server-event": "not assignable to parameter of type",
    "wrong-handler-type": "Type 'string' is not assignable to type 'number'",
    "bad-timeout": "Type 'string' is not assignable to type 'number'",
    "no-token": "not assignable to parameter of type 'ClientOptions'",
    "unknown-state": "have no overlap",
}

#: The React bindings (``/ws-docs/client-react.d.ts`` saved as ``react.d.ts``) in use, without JSX.
HOOKS_USAGE = """\
import { createElement } from "react";
import { createClient, RealtimeClient } from "./client";
import { RealtimeProvider, useConnectionState, useEvent, useRoom, usePresence, useRealtimeClient,
  Room, RoomMessage, Presence } from "./react";

const client: RealtimeClient = createClient("https://chat.example", { token: "jwt" });

function Chat({ roomId, people }: { roomId: string; people: string[] }): null {
  const state = useConnectionState();
  const offline: boolean = state.status === "offline" || state.status === "reconnecting";
  const room: Room = useRoom(roomId);
  const last: RoomMessage | undefined = room.messages[room.messages.length - 1];
  const author: string | undefined = last?.sender.username;
  const typing: string[] = room.typing.map((user) => user.username);
  if (room.status === "failed" && room.error?.code === "FORBIDDEN") console.log(room.error.message);
  room.send("hi").then((ack) => { const id: string = ack.id; void id; });
  room.send({ content: "look", type: "IMAGE", mediaUrl: "https://img.example/1.png" });
  room.setTyping(true).then((ack) => { const sent: boolean = ack.sent; void sent; });
  const presence = usePresence(people);
  const alice: Presence | undefined = presence["alice"];
  const online: boolean | undefined = alice?.isOnline;
  useEvent("chat:user_typing", (t) => { const isTyping: boolean = t.isTyping; void isTyping; });
  useEvent("force_logout", (e) => { const reason: "duplicate_login" | "revoked" = e.reason; void reason; });
  const same: RealtimeClient = useRealtimeClient();
  void offline; void author; void typing; void online; void same;
  return null;
}

const app = createElement(RealtimeProvider, { client, messageLimit: 200, typingTimeout: 5000 },
  createElement(Chat, { roomId: "lobby", people: ["alice", "bob"] }));
void app;
"""

#: One wrong use of the hooks per line; each must be a compile error.
HOOKS_WRONG = {
    "unknown-event": 'useEvent("chat:teleported", () => undefined);',
    "wrong-payload-field": 'useEvent("chat:user_typing", (t) => t.typingNow);',
    "wrong-payload-type": 'useEvent("chat:new_message", (m) => { const n: number = m.id; });',
    "send-wrong-content": 'useRoom("lobby").send({ content: 42 });',
    "send-result-use": 'useRoom("lobby").send("hi").then((ack) => { const n: number = ack.id; });',
    "typing-not-boolean": 'useRoom("lobby").setTyping("yes");',
    "presence-field": 'usePresence(["alice"])["alice"]?.online;',
    "room-status": 'if (useRoom("lobby").status === "left") console.log("never");',
    "provider-without-client": "createElement(RealtimeProvider, {});",
}

HOOKS_EXPECTED = {
    "unknown-event": "not assignable to parameter of type",
    "wrong-payload-field": "Property 'typingNow' does not exist on type 'ChatTypingOut'",
    "wrong-payload-type": "Type 'string' is not assignable to type 'number'",
    "send-wrong-content": "Type 'number' is not assignable to type 'string'",
    "send-result-use": "Type 'string' is not assignable to type 'number'",
    "typing-not-boolean": "not assignable to parameter of type 'boolean'",
    "presence-field": "Property 'online' does not exist",
    "room-status": "have no overlap",
    "provider-without-client": "Property 'client' is missing",
}


def served(app: Flask, path: str) -> str:
    response = app.test_client().get(path)
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    return response.get_data(as_text=True)


def declarations(app: Flask) -> dict[str, str]:
    """The client's and the React bindings' declarations, saved side by side as a consumer would."""
    return {"client.d.ts": served(app, "/ws-docs/client.d.ts"), "react.d.ts": served(app, "/ws-docs/client-react.d.ts")}


def compiles_with_expected_errors(app: Flask, usage: str, wrong: dict[str, str]) -> None:
    """``usage`` plus every wrong line under ``@ts-expect-error`` compiles."""
    expect_errors = "".join(f"// @ts-expect-error {name}\n{line}\n" for name, line in wrong.items())

    with typescript_project({**declarations(app), "usage.ts": usage + expect_errors}) as folder:
        compiled = tsc(folder, "usage.ts")

    assert compiled.returncode == 0, compiled.stdout + compiled.stderr


def fails_line_by_line(app: Flask, usage: str, wrong: dict[str, str], expected: dict[str, str]) -> None:
    """``usage`` plus the wrong lines, bare: each wrong line fails with its expected error, nothing else fails."""
    first = usage.count("\n") + 1
    lines = {first + index: name for index, name in enumerate(wrong)}
    source = usage + "".join(f"{wrong[name]}\n" for name in wrong)

    with typescript_project({**declarations(app), "wrong.ts": source}) as folder:
        rejected = tsc(folder, "wrong.ts")

    assert rejected.returncode != 0
    errors: dict[str, str] = {}
    for match in re.finditer(r"^wrong\.ts\((\d+),\d+\): error (.*(?:\n  .*)*)", rejected.stdout, re.MULTILINE):
        name = lines.get(int(match[1]))
        assert name is not None, f"an error outside the wrong lines: {match[0]}"
        errors[name] = errors.get(name, "") + match[2]
    for name, text in expected.items():
        assert text in errors.get(name, ""), (name, errors.get(name), rejected.stdout)


def test_client_usage_compiles_and_every_wrong_use_is_rejected(app: Flask) -> None:
    compiles_with_expected_errors(app, USAGE, WRONG)


def test_each_wrong_usage_fails_with_its_own_error(app: Flask) -> None:
    fails_line_by_line(app, USAGE, WRONG, EXPECTED)


def test_hooks_usage_compiles_and_every_wrong_use_is_rejected(app: Flask) -> None:
    compiles_with_expected_errors(app, HOOKS_USAGE, HOOKS_WRONG)


def test_each_wrong_hooks_usage_fails_with_its_own_error(app: Flask) -> None:
    fails_line_by_line(app, HOOKS_USAGE, HOOKS_WRONG, HOOKS_EXPECTED)
