"""Browser scenarios for the demo page, run as ``python -m tests.helpers.browser_script '<json spec>'``.

This runs in its own process, never under gevent (see :mod:`tests.helpers.browser`): the spec is
``{"scenario": name, "params": {...}}``; the last stdout line is ``{"ok": true, "result": {...}}`` or
``{"ok": false, "error": "..."}`` (exit status 1). The pytest side asserts on the result.
"""
from __future__ import annotations

import contextlib
import json
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    ViewportSize,
    sync_playwright,
)
from playwright.sync_api import Error as PlaywrightError

from tests.helpers.browser import launch

DEFAULT_TIMEOUT_MS = 10_000
#: Every page opened so far, for the diagnostics of a failed scenario.
WATCHES: list[PageWatch] = []
LAPTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}

#: Everything a test wants to know about the page, read in one round trip.
SNAPSHOT_JS = """() => {
  const text = (node, sel) => { const n = node.querySelector(sel); return n ? n.textContent : null; };
  const status = document.getElementById("status");
  return {
    status: {state: status.dataset.state, transport: status.dataset.transport || null, text: status.textContent},
    messages: [...document.querySelectorAll("#messages li[data-id]")].map(li => ({
      id: li.dataset.id, senderId: li.dataset.senderId, sender: text(li, ".sender"),
      text: text(li, ".text"), time: text(li, "time"), classes: li.className,
    })),
    pending: document.querySelectorAll("#messages li.pending, #messages li.failed").length,
    htmlInMessages: document.querySelectorAll("#messages img, #messages script, #messages b").length,
    online: [...document.querySelectorAll("#online li[data-user-id]")].map(li => ({
      userId: li.dataset.userId, presence: li.dataset.presence, text: li.textContent,
    })),
    typing: document.getElementById("typing").textContent,
    roomTitle: document.getElementById("room-title").textContent,
    joinError: document.getElementById("join-error").hidden ? null : document.getElementById("join-error").textContent,
    xss: window.__xss === undefined ? null : window.__xss,
    overflowX: document.documentElement.scrollWidth > window.innerWidth,
  };
}"""

HAS_MESSAGE_JS = (
    """(t) => [...document.querySelectorAll("#messages li[data-id] .text")].some(n => n.textContent === t)"""
)


class PageWatch:
    """A page plus everything it complained about and every URL it requested."""

    def __init__(self, context: BrowserContext, label: str) -> None:
        self.label = label
        self.page: Page = context.new_page()
        self.problems: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda err: self.problems.append(f"{label} pageerror: {err}"))
        self.page.on("request", lambda req: self.requests.append(req.url))
        self.page.on("websocket", lambda ws: self.requests.append(ws.url))
        self.page.on("requestfailed", self._failed)
        WATCHES.append(self)

    def _console(self, message: Any) -> None:
        if message.type in ("error", "warning"):
            self.problems.append(f"{self.label} console.{message.type}: {message.text}")

    def _failed(self, request: Any) -> None:
        failure = request.failure or ""
        # A transport closed on purpose (page closing, polling replaced by websocket) is not a problem.
        if "ERR_ABORTED" not in failure:
            self.problems.append(f"{self.label} request failed: {request.url} {failure}")


def join(watch: PageWatch, base_url: str, user_id: str, name: str, room: str) -> None:
    page = watch.page
    page.goto(base_url + "/")
    assert page.input_value("#user-id").startswith("guest_"), "user id is not prefilled with guest_xxxx"
    assert page.input_value("#room-id") == "lobby", "room id does not default to lobby"
    page.fill("#user-id", user_id)
    page.fill("#display-name", name)
    page.fill("#room-id", room)
    page.click("#join")
    page.wait_for_selector('#status[data-state="connected"]')
    page.wait_for_selector("#send:not([disabled])")  # enabled once chat:join is acked
    page.wait_for_selector(f'#online li[data-user-id="{user_id}"]')


def send(watch: PageWatch, text: str) -> None:
    page = watch.page
    page.click("#message-input")
    page.keyboard.type(text[:12])  # real key presses: exercises the typing indicator path
    page.fill("#message-input", text)
    page.click("#send")


def wait_for_message(watch: PageWatch, text: str) -> None:
    watch.page.wait_for_function(HAS_MESSAGE_JS, arg=text)


def snapshot(watch: PageWatch) -> dict[str, Any]:
    return dict(watch.page.evaluate(SNAPSHOT_JS))


def screenshot(watch: PageWatch, folder: Path, name: str, viewport: ViewportSize) -> str:
    watch.page.set_viewport_size(viewport)
    watch.page.wait_for_timeout(150)  # let layout settle after a resize
    path = folder / f"{name}-{viewport['width']}x{viewport['height']}.png"
    watch.page.screenshot(path=str(path))
    return str(path)


#: Installed before any page script: keeps every socket the page creates and records what it emits, so the
#: scenario can deliver server events the running server may not implement yet and check what was sent.
SPY_JS = """(() => {
  window.__sockets = []; window.__emitted = []; window.__acks = [];
  let real;
  Object.defineProperty(window, "io", {
    configurable: true,
    get() { return real; },
    set(value) {
      real = function (...args) {
        const socket = value(...args);
        const emit = socket.emit.bind(socket);
        socket.emit = (event, ...rest) => {
          const payload = JSON.parse(JSON.stringify(rest[0] ?? null));  // a copy: the page may reuse it
          const ack = typeof rest[rest.length - 1] === "function";
          window.__emitted.push({event, payload, ack, at: Date.now()});
          if (ack) {  // record the answer too: {ok, data} / {ok: false, error}
            const callback = rest.pop();
            rest.push((...answer) => {
              window.__acks.push({event, answer: answer[answer.length - 1] ?? null});
              return callback(...answer);
            });
          }
          return emit(event, ...rest);
        };
        window.__sockets.push(socket);
        return socket;
      };
      Object.assign(real, value);
    },
  });
  window.__deliver = (event, payload) => {
    const socket = window.__sockets[window.__sockets.length - 1];
    socket.listeners(event).forEach((listener) => listener(payload));
  };
})();"""


def answered_ok(watch: PageWatch, event: str) -> bool:
    """Wait for the server's answer to the page's last ``event``; whether it was ``{ok: true}``."""
    watch.page.wait_for_function(
        """(event) => {
          const sent = window.__emitted.filter(e => e.event === event).length;
          return sent > 0 && window.__acks.filter(a => a.event === event).length >= sent;
        }""",
        arg=event,
    )
    answers = watch.page.evaluate("(event) => window.__acks.filter(a => a.event === event)", event)
    return bool(answers) and bool((answers[-1]["answer"] or {}).get("ok"))


def scenario_chat(browser: Browser, params: dict[str, Any]) -> dict[str, Any]:
    """Alice joins and talks; Bob joins in a second context and sees Alice's next message."""
    base_url = params["baseUrl"].rstrip("/")
    room = params.get("room", "lobby")
    first, second = params["first"], params["second"]
    shots = Path(params["screenshotDir"])
    shots.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    started = time.monotonic()

    alice_ctx = browser.new_context(viewport=LAPTOP)
    alice_ctx.set_default_timeout(DEFAULT_TIMEOUT_MS)
    alice_ctx.add_init_script(SPY_JS)
    alice = PageWatch(alice_ctx, "alice")
    join(alice, base_url, "alice", "Alice", room)
    timings["alice_joined"] = time.monotonic() - started
    send(alice, first)
    wait_for_message(alice, first)
    timings["first_rendered"] = time.monotonic() - started

    bob_ctx = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    bob_ctx.set_default_timeout(DEFAULT_TIMEOUT_MS)
    bob = PageWatch(bob_ctx, "bob")
    join(bob, base_url, "bob", "Bob", room)
    timings["bob_joined"] = time.monotonic() - started

    # Typing: when the server accepts chat:typing, Bob sees Alice typing (else the page stops sending it).
    alice.page.click("#message-input")
    alice.page.keyboard.type("sec")
    typing_ok = answered_ok(alice, "chat:typing")
    if typing_ok:
        bob.page.wait_for_function("() => document.getElementById('typing').textContent !== ''")
        timings["typing_seen"] = time.monotonic() - started
    result: dict[str, Any] = {"typing_supported": typing_ok, "bob_typing": bob.page.text_content("#typing")}

    send(alice, second)
    wait_for_message(bob, second)
    wait_for_message(alice, second)
    timings["second_rendered"] = time.monotonic() - started
    if typing_ok:  # sending stops the indicator at once, not after 5 s
        bob.page.wait_for_function("() => document.getElementById('typing').textContent === ''", timeout=2000)

    # Presence: when the server accepts presence:status, Bob sees Alice go away.
    alice.page.select_option("#presence-status", "away")
    result["presence_supported"] = answered_ok(alice, "presence:status")
    if result["presence_supported"]:
        bob.page.wait_for_selector('#online li[data-user-id="alice"][data-presence="away"]')
        timings["presence_seen"] = time.monotonic() - started
    alice.page.wait_for_timeout(500)  # late duplicates would show up here

    # The websocket upgrade normally lands within a few ms of connecting.
    for watch in (alice, bob):
        with contextlib.suppress(PlaywrightError):  # reported through the snapshot's transport
            watch.page.wait_for_selector('#status[data-transport="websocket"]', timeout=3000)

    result.update({"alice": snapshot(alice), "bob": snapshot(bob), "timings": timings})
    result["screenshots"] = [
        screenshot(alice, shots, "demo-alice", LAPTOP),
        screenshot(bob, shots, "demo-bob", PHONE),
        screenshot(alice, shots, "demo-alice", PHONE),
        screenshot(bob, shots, "demo-bob", LAPTOP),
    ]
    result["alice_emitted"] = alice.page.evaluate(
        "() => window.__emitted.map(e => ({event: e.event, payload: e.payload, ack: e.ack}))"
    )
    result["problems"] = alice.problems + bob.problems
    result["requests"] = sorted(set(alice.requests + bob.requests))
    alice_ctx.close()
    bob_ctx.close()
    return result


def deliver(watch: PageWatch, event: str, payload: Any) -> None:
    """Hand ``payload`` to the page's listeners of ``event`` as if the server had sent it."""
    watch.page.evaluate("([e, p]) => window.__deliver(e, p)", [event, payload])


def scenario_contract(browser: Browser, params: dict[str, Any]) -> dict[str, Any]:
    """Server-to-client events of the contract, delivered to the page's own listeners; one real connection."""
    base_url = params["baseUrl"].rstrip("/")
    room = params["room"]
    xss = params["xss"]
    context = browser.new_context(viewport=LAPTOP)
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    context.add_init_script(SPY_JS)
    carol = PageWatch(context, "carol")
    page = carol.page
    join(carol, base_url, "carol", "Carol", room)
    out: dict[str, Any] = {}

    # Typing: a burst of key presses announces "typing" at most once per 2 s.
    page.click("#message-input")
    page.keyboard.type("typing quickly", delay=40)
    page.wait_for_timeout(300)
    out["emitted_while_typing"] = page.evaluate("() => window.__emitted.filter(e => e.event === 'chat:typing')")

    def msg(n: int, content: str, sender: str = "dave") -> dict[str, Any]:
        return {
            "id": f"170000000000{n}-0",
            "roomId": room,
            "senderId": sender,
            "sender": {"id": sender, "username": "Dave D.", "avatarUrl": None},
            "content": content,
            "type": "TEXT",
            "mediaUrl": None,
            "clientId": None,
            "createdAt": f"2026-01-01T12:00:0{n}.000Z",
        }

    history = [msg(3, "third"), msg(2, xss), msg(1, "first")]  # newest first, as the server sends it
    deliver(carol, "chat:history", {"roomId": room, "messages": history})
    deliver(carol, "chat:history", {"roomId": room, "messages": history[:2]})
    deliver(carol, "chat:new_message", msg(3, "third"))
    deliver(carol, "chat:new_message", {**msg(4, "elsewhere"), "roomId": "not-" + room})
    out["after_history"] = snapshot(carol)

    deliver(carol, "chat:user_typing", {"userId": "dave", "username": "Dave D.", "isTyping": True, "roomId": room})
    out["typing_on"] = snapshot(carol)["typing"]
    deliver(carol, "chat:user_typing", {"userId": "dave", "username": "Dave D.", "isTyping": False, "roomId": room})
    out["typing_off"] = snapshot(carol)["typing"]

    deliver(carol, "chat:user_joined", {"userId": "erin", "roomId": room, "timestamp": "2026-01-01T12:00:05.000Z"})
    page.wait_for_timeout(500)  # a presence-capable server answers presence:subscribe/check for erin first
    deliver(carol, "presence:update", {"userId": "erin", "status": "away", "lastSeen": "2026-01-01T12:00:06.000Z"})
    out["after_presence"] = snapshot(carol)
    deliver(carol, "chat:user_left", {"userId": "erin", "roomId": room, "timestamp": "2026-01-01T12:00:07.000Z"})
    out["notices"] = page.evaluate(
        "() => [...document.querySelectorAll('#messages li.notice')].map(n => n.textContent)"
    )

    deliver(carol, "notification:unread_count", {"count": 3})
    out["unread_count"] = page.evaluate(
        "() => document.getElementById('unread').hidden ? null : document.getElementById('unread-count').textContent"
    )
    deliver(carol, "notification:new", {"id": "n1", "title": "Ping"})
    out["unread_after_new"] = page.evaluate("() => document.getElementById('unread-count').textContent")

    page.fill("#message-input", "")
    out["emitted"] = page.evaluate(
        "() => window.__emitted.map(e => ({event: e.event, payload: e.payload, ack: e.ack}))"
    )

    deliver(carol, "force_logout", {"reason": "duplicate_login"})
    page.wait_for_timeout(1500)  # no reconnection may happen
    out["after_logout"] = snapshot(carol)
    out["banner"] = page.evaluate(
        "() => document.getElementById('banner').hidden ? null : document.getElementById('banner').textContent"
    )
    out["sockets_connected"] = page.evaluate("() => window.__sockets.map(s => s.connected)")
    out["problems"] = carol.problems
    out["requests"] = sorted(set(carol.requests))
    context.close()
    return out


SCENARIOS: dict[str, Callable[[Browser, dict[str, Any]], dict[str, Any]]] = {
    "chat": scenario_chat,
    "contract": scenario_contract,
}


_diagnostics: dict[str, Any] = {}


def _diagnose() -> None:
    """Snapshot and problems of every open page, after a failed step."""
    for watch in WATCHES:
        entry: dict[str, Any] = {"problems": watch.problems}
        try:
            entry["snapshot"] = snapshot(watch)
        except Exception as exc:  # noqa: BLE001 - best effort
            entry["snapshot"] = f"unavailable: {exc}"
        _diagnostics[watch.label] = entry


def main(argv: list[str]) -> int:
    try:
        spec = json.loads(argv[1])
        scenario = SCENARIOS[spec["scenario"]]
        with sync_playwright() as playwright:
            browser = launch(playwright)
            try:
                result = scenario(browser, spec.get("params", {}))
            except Exception:
                _diagnose()
                raise
            finally:
                browser.close()
    except Exception as exc:  # noqa: BLE001 - reported to the parent as JSON
        traceback.print_exc()
        print(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}", "pages": _diagnostics}), flush=True)
        return 1
    print(json.dumps({"ok": True, "result": result}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
