"""The React bindings (``realtime-client/react``) in headless Chromium against servers A and B on a private Redis.

The page (``tests/e2e/react_app/chat.jsx``) imports the client package exported by ``flask docs export
--format client`` and its hooks; the pinned esbuild of ``tests/node`` bundles it with the pinned React
(development build, under StrictMode). Alice (server A) and Bob (server B) each open it in a browser context
of their own: Bob sees Alice's message, her typing start and stop, her leaving when her room component
unmounts, and her presence go online and, when her browser closes, offline. A closed browser is a dropped connection, which the server keeps online for
``RECOVERY_WINDOW`` in case it comes back; this module's cluster waits 2 s instead of 120 s.
"""
from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from tests.helpers.client_pages import ClientPages
from tests.helpers.e2e_cluster import GunicornProcess
from tests.helpers.e2e_kit import Cluster, mint, new_id
from tests.helpers.node_client import NODE_DIR
from tests.helpers.node_tools import typescript_project

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("no_server_errors")]

APP_SOURCE = Path(__file__).resolve().parent / "react_app" / "chat.jsx"

#: Runs the bundle on the page (an inline classic script) once its configuration is in place.
INSTALL = """([config, bundle]) => {
  window.chatConfig = config;
  const script = document.createElement("script");
  script.textContent = bundle;
  document.head.append(script);
}"""

#: Everything the test reads from a page, in one round trip.
SNAPSHOT = """() => {
  const users = (id) => ((document.getElementById(id) || { dataset: {} }).dataset.users || "").split(" ").filter(Boolean);
  return {
    connection: document.getElementById("connection").dataset.status,
    room: document.getElementById("room").dataset.status,
    messages: [...document.querySelectorAll("#messages li")].map((li) => ({
      id: li.dataset.id, sender: li.dataset.sender, text: li.textContent })),
    typing: users("typing"),
    presence: Object.fromEntries([...document.querySelectorAll("#presence li")].map(
      (li) => [li.dataset.user, li.dataset.online])),
    joined: users("joined"),
    left: users("left"),
  };
}"""


@pytest.fixture(scope="module")
def cluster_overrides() -> dict[str, str | None]:
    """A dropped connection counts as gone after 2 s, and the reaper (every PRESENCE_TTL / 3) runs every 2 s, so
    that a closed browser goes offline within a few seconds, far inside the test's wait."""
    return {"RECOVERY_WINDOW": "2", "PRESENCE_TTL": "6"}


@pytest.fixture
def bundle(app: Flask, tmp_path: Path) -> str:
    """The page bundled by the pinned esbuild, with the exported client package and the pinned React."""
    esbuild = NODE_DIR / "node_modules" / ".bin" / "esbuild"
    exported = tmp_path / "realtime-client"
    result = app.test_cli_runner().invoke(args=["docs", "export", "--format", "client", "-o", str(exported)])
    assert result.exit_code == 0, result.output
    out = tmp_path / "chat.js"
    with typescript_project({"chat.jsx": APP_SOURCE.read_text(encoding="utf-8")}) as project:
        assert esbuild.is_file(), f"{esbuild} is missing: run `make node-tools` (npm ci in tests/node)"
        shutil.copytree(exported, project / "node_modules" / "realtime-client")
        built = subprocess.run(
            [str(esbuild), "chat.jsx", "--bundle", "--format=iife", "--jsx=automatic", "--target=es2020",
             "--define:process.env.NODE_ENV=\"development\"", f"--outfile={out}", "--log-level=warning"],
            cwd=project, capture_output=True, text=True, timeout=120, check=False,
        )
    assert built.returncode == 0, built.stderr
    return out.read_text(encoding="utf-8")


@pytest.fixture
def pages() -> Iterator[ClientPages]:
    with ClientPages() as driver:
        yield driver


def open_chat(pages: ClientPages, label: str, server: GunicornProcess, bundle: str, config: dict[str, Any]) -> None:
    """The React page as ``label`` in a browser context of its own, connected to ``server``."""
    pages.open(label, server.url, context=label)
    # Typing indicators expire after 10 minutes here: "not typing" has to come from the server's isTyping false.
    pages.eval(label, INSTALL, [{"url": server.url, "typingTimeout": 600_000, **config}, bundle])


def snapshot(pages: ClientPages, label: str) -> dict[str, Any]:
    result: dict[str, Any] = pages.eval(label, SNAPSHOT)
    return result


def wait(pages: ClientPages, label: str, predicate: str, arg: Any = None) -> None:
    """Wait until ``predicate(snapshot, arg)`` holds on page ``label``."""
    pages.wait(label, f"([arg]) => ({predicate})(({SNAPSHOT})(), arg)", [arg])


def test_messages_typing_and_presence_across_two_browser_contexts(
    cluster: Cluster, pages: ClientPages, bundle: str
) -> None:
    users = mint(cluster, "alice", "bob")
    alice, bob = users["alice"], users["bob"]
    room = new_id("r")

    open_chat(pages, "bob", cluster.b, bundle, {"token": bob.token, "roomId": room, "watch": [alice.id]})
    wait(pages, "bob", "(s) => s.room === 'joined'")
    wait(pages, "bob", "(s, id) => s.presence[id] === 'false'", alice.id)

    open_chat(pages, "alice", cluster.a, bundle, {"token": alice.token, "roomId": room, "watch": [bob.id]})
    wait(pages, "bob", "(s, id) => s.presence[id] === 'true'", alice.id)
    wait(pages, "alice", "(s) => s.room === 'joined'")
    wait(pages, "bob", "(s, id) => s.joined.includes(id)", alice.id)
    ack = pages.eval("alice", "() => window.chat.send('hello from alice')")
    wait(pages, "bob", "(s) => s.messages.length === 1")
    seen_by_bob = snapshot(pages, "bob")

    pages.eval("alice", "() => window.chat.setTyping(true)")
    wait(pages, "bob", "(s, id) => s.typing.includes(id)", alice.id)
    pages.eval("alice", "() => window.chat.setTyping(false)")
    wait(pages, "bob", "(s) => s.typing.length === 0")
    seen_by_alice = snapshot(pages, "alice")

    pages.eval("alice", "() => window.chat.leave()")  # unmounts her room component: useRoom leaves the room
    wait(pages, "bob", "(s, id) => s.left.includes(id)", alice.id)
    wait(pages, "alice", "(s) => s.room === 'left'")
    pages.close_context("alice")
    wait(pages, "bob", "(s, id) => s.presence[id] === 'false'", alice.id)

    assert ack["duplicate"] is False
    assert seen_by_bob["connection"] == "connected"
    assert seen_by_bob["messages"] == [{"id": ack["id"], "sender": alice.id, "text": f"{alice.id} hello from alice"}]
    assert seen_by_bob["joined"] == [alice.id]  # StrictMode's second mount neither left nor joined again
    assert seen_by_bob["left"] == []
    assert snapshot(pages, "bob")["left"] == [alice.id]
    assert seen_by_alice["messages"] == seen_by_bob["messages"]
    assert seen_by_alice["presence"] == {bob.id: "true"}
    assert seen_by_alice["typing"] == []  # the server tells the others only
    assert pages.problems("bob") == [] and pages.problems("alice") == []  # React's development checks included


def test_after_a_fresh_session_the_hooks_watch_and_listen_again(
    cluster: Cluster, pages: ClientPages, bundle: str, extra_servers: Callable[..., GunicornProcess]
) -> None:
    forgetful_env = {**cluster.env, "RECOVERY_WINDOW": "0"}
    forgetful = extra_servers("norecovery", env=forgetful_env)
    users = mint(cluster, "alice", "bob")
    alice, bob = users["alice"], users["bob"]
    room = new_id("r")
    open_chat(pages, "bob", forgetful, bundle, {"token": bob.token, "roomId": room, "watch": [alice.id]})
    wait(pages, "bob", "(s) => s.room === 'joined'")
    wait(pages, "bob", "(s, id) => s.presence[id] === 'false'", alice.id)

    # Bob's server restarts with nothing to recover: his new session is in no room and watches nobody.
    forgetful.stop()
    wait(pages, "bob", "(s) => s.connection === 'reconnecting'")
    extra_servers("norecovery-again", port=forgetful.port, env=forgetful_env)
    wait(pages, "bob", "(s) => s.connection === 'connected'")
    open_chat(pages, "alice", cluster.a, bundle, {"token": alice.token, "roomId": room, "watch": []})
    wait(pages, "bob", "(s, id) => s.presence[id] === 'true'", alice.id)  # usePresence subscribed again
    wait(pages, "alice", "(s) => s.room === 'joined'")
    ack = pages.eval("alice", "() => window.chat.send('after the restart')")
    wait(pages, "bob", "(s) => s.messages.length === 1")  # the client joined the room again by itself

    seen = snapshot(pages, "bob")
    assert seen["messages"] == [{"id": ack["id"], "sender": alice.id, "text": f"{alice.id} after the restart"}]
    assert seen["room"] == "joined" and seen["connection"] == "connected"
    # While the server was down and after its restart, Chromium logged the transport's refused connections
    # and the polls of the old session id (HTTP 400); nothing else went wrong on Bob's page.
    assert [p for p in pages.problems("bob") if "/socket.io/?" not in p] == []
    assert pages.problems("alice") == []
