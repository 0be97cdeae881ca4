"""The typed client's declarations under ``tsc --strict``: example usages compile, wrong ones are rejected.

``/ws-docs/client.d.ts`` is compiled next to usage code in a scratch folder of ``tests/node`` (pinned
TypeScript); every wrong usage sits under ``@ts-expect-error``, so tsc fails if one of them compiles, and
compiled without it, each wrong line fails with its own error.
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


def declarations(app: Flask) -> str:
    response = app.test_client().get("/ws-docs/client.d.ts")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    return response.get_data(as_text=True)


def test_client_usage_compiles_and_every_wrong_use_is_rejected(app: Flask) -> None:
    expect_errors = "".join(f"// @ts-expect-error {name}\n{line}\n" for name, line in WRONG.items())

    with typescript_project({"client.d.ts": declarations(app), "usage.ts": USAGE + expect_errors}) as folder:
        compiled = tsc(folder, "usage.ts")

    assert compiled.returncode == 0, compiled.stdout + compiled.stderr


def test_each_wrong_usage_fails_with_its_own_error(app: Flask) -> None:
    first = USAGE.count("\n") + 1
    lines = {first + index: name for index, name in enumerate(WRONG)}
    wrong = USAGE + "".join(f"{WRONG[name]}\n" for name in WRONG)

    with typescript_project({"client.d.ts": declarations(app), "wrong.ts": wrong}) as folder:
        rejected = tsc(folder, "wrong.ts")

    assert rejected.returncode != 0
    errors: dict[str, str] = {}
    for match in re.finditer(r"^wrong\.ts\((\d+),\d+\): error (.*(?:\n  .*)*)", rejected.stdout, re.MULTILINE):
        name = lines.get(int(match[1]))
        assert name is not None, f"an error outside the wrong lines: {match[0]}"
        errors[name] = errors.get(name, "") + match[2]
    for name, expected in EXPECTED.items():
        assert expected in errors.get(name, ""), (name, errors.get(name), rejected.stdout)
