"""The typed client as served (``/ws-docs/client.js``, ``/ws-docs/client.d.ts``) and as exported by the CLI:
tables generated from the registry, an importable ES module, and a folder that ``npm pack`` turns into a
package that installs, type-checks and binds ``socket.io-client`` by itself.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from flask import Flask

from realtime.docs.client import build_client_js, client_tables
from tests.helpers.node_client import NODE_DIR
from tests.helpers.node_tools import typescript_project

PACKAGE_USAGE = """\
import { createClient, RealtimeError, SCHEMA_VERSION } from "realtime-client";
import { useRoom } from "realtime-client/react";

const client = createClient("http://127.0.0.1:9", { token: "t" });
client.request("chat:message", { roomId: "lobby", content: "hi" }).then((sent) => {
  const id: string = sent.id;
  void id;
}, (err: unknown) => { if (err instanceof RealtimeError) console.log(err.code); });
const version: string = SCHEMA_VERSION;
void version;
// @ts-expect-error unknown event
client.request("chat:nope", {});
export function Count(): number { return useRoom("lobby").messages.length; }
"""

#: Imports the installed package in Node and drives it without a server: the socket.io-client binding,
#: the state machine, the rejections a caller sees, and an outbox kept in storage across two clients.
PACKAGE_RUN = """\
const mod = await import("realtime-client");
const client = mod.createClient("http://127.0.0.1:9", { token: "t", outboxLimit: 1, socketOptions: { reconnection: false } });
const seen = [client.state.status];
client.subscribe((s) => seen.push(s.status));
const queued = client.request("chat:message", { roomId: "lobby", content: "queued" });
const pending = client.pending();
const codes = [];
await client.request("chat:message", { roomId: "lobby", content: "over" }).catch((e) => codes.push(e.code));
await client.request("chat:teleport", {}).catch((e) => codes.push(e.code));
client.close();
await queued.catch((e) => codes.push(e.code, e instanceof mod.RealtimeError));
await client.request("chat:join", { roomId: "lobby" }).catch((e) => codes.push(e.code));
const saved = new Map();
const storage = { getItem: (k) => saved.get(k) ?? null, setItem: (k, v) => saved.set(k, v), removeItem: (k) => saved.delete(k) };
const offline = { token: "t", storage, storageKey: "box", socketOptions: { reconnection: false } };
const first = mod.createClient("http://127.0.0.1:9", offline);
first.request("chat:message", { roomId: "lobby", content: "kept" }).catch(() => undefined);
const stored = JSON.parse(saved.get("box"));
first.socket.disconnect();
const second = mod.createClient("http://127.0.0.1:9", offline);
const restored = second.restored.map((r) => ({ event: r.event, payload: r.payload }));
const again = second.pending();
second.close();
const restoredCode = await second.restored[0].result.catch((e) => e.code);
console.log(JSON.stringify({ seen, codes, pending, version: mod.SCHEMA_VERSION, reason: client.state.reason,
  stored, restored, again, restoredCode, stillSaved: saved.has("box") }));
"""


def test_tables_come_from_the_registry(app: Flask) -> None:
    tables = client_tables(app.extensions["realtime_docs"])

    assert tables["clientEvents"]["chat:message"] == {"retry": True, "clientIdField": "clientId"}
    assert tables["clientEvents"]["game:move"] == {"retry": False, "clientIdField": None}
    assert tables["rooms"] == {
        "chat:join": {"leave": "chat:leave", "key": "roomId"},
        "party:join_live": {"leave": "party:leave_live", "key": "partyId"},
    }
    assert {"chat:new_message", "force_logout", "error"} <= set(tables["serverEvents"])
    assert tables["version"] == app.extensions["realtime_docs"].version


def test_docs_serve_the_client_and_its_declarations(app: Flask) -> None:
    client = app.test_client()
    js = client.get("/ws-docs/client.js")
    dts = client.get("/ws-docs/client.d.ts")

    assert js.status_code == 200 and js.mimetype == "text/javascript"
    assert dts.status_code == 200
    text = js.get_data(as_text=True)
    assert "// @event-tables" not in text
    assert '"chat:message": {' in text
    assert "export function createClient" in text
    declarations = dts.get_data(as_text=True)
    assert '"chat:message": { payload: ChatMessageIn; result: ChatSentAck };' in declarations
    assert '"chat:new_message": ChatMessageOut;' in declarations
    assert "export interface RealtimeClient" in declarations


def test_docs_serve_the_react_bindings(app: Flask) -> None:
    client = app.test_client()
    js = client.get("/ws-docs/client-react.js")
    dts = client.get("/ws-docs/client-react.d.ts")

    assert js.status_code == 200 and js.mimetype == "text/javascript"
    assert dts.status_code == 200 and dts.mimetype == "text/plain"
    text = js.get_data(as_text=True)
    for hook in ("RealtimeProvider", "useConnectionState", "useEvent", "useRoom", "usePresence"):
        assert f"export function {hook}(" in text
    assert 'from "react"' in text
    assert 'from "./client.js"' in dts.get_data(as_text=True)


def test_served_module_imports_in_node(app: Flask, tmp_path: Path) -> None:
    module = tmp_path / "client.mjs"
    module.write_text(app.test_client().get("/ws-docs/client.js").get_data(as_text=True))
    script = (
        f"const m = await import({json.dumps(module.as_uri())});"
        "let refused = null; try { m.createClient('http://x', { token: 't' }); } catch (e) { refused = e.message; }"
        "console.log(JSON.stringify({ exports: Object.keys(m).sort(), version: m.SCHEMA_VERSION, refused }));"
    )

    result = subprocess.run(
        ["node", "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60, check=False
    )

    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["exports"] == ["CLIENT_ERROR_CODES", "RealtimeError", "SCHEMA_VERSION", "createClient", "newClientId"]
    assert out["version"] == app.extensions["realtime_docs"].version
    assert "socket.io-client" in out["refused"]  # no io given and no window.io: says how to provide it


#: A stand-in for socket.io-client's io(): a socket whose server events the script fires by hand.
FAKE_IO_EVENTS = """\
const m = await import(MODULE);
const handlers = new Map();
const socket = {
  connected: false, active: true, recovered: false,
  io: { on() {}, reconnection() {}, reconnectionDelay: () => 1, reconnectionDelayMax: () => 1 },
  on(e, f) { handlers.set(e, [...(handlers.get(e) || []), f]); },
  off(e, f) { handlers.set(e, (handlers.get(e) || []).filter((g) => g !== f)); },
  connect() {}, disconnect() {}, emit() {},
};
const fire = (e, p) => (handlers.get(e) || []).forEach((f) => f(p, "offset-1"));
const client = m.createClient("http://x", { token: "t", io: () => socket });
const got = [];
const always = (p) => got.push(["always", p.n]);
const first = (p) => got.push(["once", p.n]);
const dropped = (p) => got.push(["dropped", p.n]);
client.on("chat:new_message", always).once("chat:new_message", first).once("chat:new_message", dropped);
client.off("chat:new_message", dropped);
fire("chat:new_message", { n: 1 });
fire("chat:new_message", { n: 2 });
client.off("chat:new_message");
fire("chat:new_message", { n: 3 });
console.log(JSON.stringify(got));
"""


def test_on_once_off_deliver_each_payload_to_the_handlers_still_listening(app: Flask, tmp_path: Path) -> None:
    module = tmp_path / "client.mjs"
    module.write_text(app.test_client().get("/ws-docs/client.js").get_data(as_text=True))
    script = FAKE_IO_EVENTS.replace("MODULE", json.dumps(module.as_uri()))

    result = subprocess.run(
        ["node", "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60, check=False
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [["always", 1], ["once", 1], ["always", 2]]


def test_runtime_without_its_placeholder_line_is_refused(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    import realtime.docs.client as client_module

    monkeypatch.setattr(client_module, "_runtime", lambda name: "export const nothing = 1;\n")

    with pytest.raises(RuntimeError, match="exactly one line matching"):
        build_client_js(app.extensions["realtime_docs"])


def test_cli_export_refuses_a_file_as_the_client_folder(app: Flask, tmp_path: Path) -> None:
    target = tmp_path / "client.js"
    target.write_text("")

    result = app.test_cli_runner().invoke(args=["docs", "export", "--format", "client", "-o", str(target)])

    assert result.exit_code == 2
    assert "is a file; --format client writes a folder" in result.output


def test_exported_folder_packs_installs_typechecks_and_runs(app: Flask, tmp_path: Path) -> None:
    folder = tmp_path / "client"
    exported = app.test_cli_runner().invoke(args=["docs", "export", "--format", "client", "-o", str(folder)])
    assert exported.exit_code == 0, exported.output
    package = json.loads((folder / "package.json").read_text())
    assert package["name"] == "realtime-client"
    assert package["types"] == "./index.d.ts"
    assert package["exports"]["."] == {"types": "./index.d.ts", "default": "./index.js"}
    assert package["exports"]["./react"] == {"types": "./react.d.ts", "default": "./react.js"}
    assert "socket.io-client" in package["peerDependencies"]
    assert package["peerDependenciesMeta"] == {"react": {"optional": True}}  # the core runs without React

    packed = subprocess.run(
        [str(shutil.which("npm")), "pack", "--json", "--pack-destination", str(tmp_path)],
        cwd=folder, capture_output=True, text=True, timeout=120, check=False,
    )
    assert packed.returncode == 0, packed.stderr
    report = json.loads(packed.stdout)[0]
    assert sorted(f["path"] for f in report["files"]) == [
        "client.d.ts", "client.js", "index.d.ts", "index.js", "package.json", "react.d.ts", "react.js"
    ]

    with typescript_project({"usage.ts": PACKAGE_USAGE, "run.mjs": PACKAGE_RUN}) as project:
        installed = project / "node_modules" / "realtime-client"
        with tarfile.open(tmp_path / report["filename"]) as archive:
            archive.extractall(project / "node_modules", filter="data")
        (project / "node_modules" / "package").rename(installed)
        compiled = subprocess.run(
            [str(NODE_DIR / "node_modules" / ".bin" / "tsc"), "--strict", "--noEmit", "--target", "es2020",
             "--module", "esnext", "--moduleResolution", "bundler", "usage.ts"],
            cwd=project, capture_output=True, text=True, timeout=180, check=False,
        )
        ran = subprocess.run(["node", "run.mjs"], cwd=project, capture_output=True, text=True, timeout=60, check=False)

    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    assert ran.returncode == 0, ran.stderr
    out = json.loads(ran.stdout.strip().splitlines()[-1])
    assert out["seen"][0] == "connecting" and out["seen"][-1] == "closed"
    assert out["pending"][0]["event"] == "chat:message"
    assert out["pending"][0]["payload"]["clientId"]  # generated for chat:message
    assert out["codes"] == ["OUTBOX_FULL", "VALIDATION_ERROR", "CLOSED", True, "CLOSED"]
    assert out["reason"] == "closed"
    assert out["version"] == app.extensions["realtime_docs"].version
    # The outbox in storage: a second client (a reload) takes over the first one's queued message.
    (stored,) = out["stored"]
    assert stored["event"] == "chat:message" and stored["payload"]["content"] == "kept"
    assert out["restored"] == [{"event": "chat:message", "payload": stored["payload"]}]
    assert out["again"] == out["restored"]
    assert out["restoredCode"] == "CLOSED"
    assert out["stillSaved"] is False  # closing dropped the queue, from storage too
