"""A headless Chromium page driven step by step: ``python -m tests.helpers.client_page_driver``.

Unlike :mod:`tests.helpers.browser_script`, which runs a whole scenario, this process keeps its pages open and
answers one JSON command per stdin line with one JSON line on stdout, so that the test in between can stop
and restart servers, mint and revoke tokens. It runs outside gevent, like every Playwright process here
(see :mod:`tests.helpers.browser`). Commands:

- ``{"op": "open", "page": label, "origin": url, "routeWebSockets": bool, "context": name}``: a page on the
  server's origin (its ``/healthz``) into which the vendored ``socket.io-client`` bundle and
  ``/ws-docs/client.js`` (as ``window.rt``) are loaded. With ``routeWebSockets`` its
  WebSockets pass through Playwright, so ``drop_ack`` can lose a frame. Pages of the same ``context``
  (default ``"main"``) share one browser context; a new name opens a new one (another browser profile).
- ``{"op": "close_context", "context": name}``: close that browser context with its pages, as a user
  closing the browser would.
- ``{"op": "eval", "page": label, "js": function source, "arg": value}``: ``page.evaluate`` (promises awaited).
- ``{"op": "wait", "page": label, "js": predicate source, "arg": value, "timeout": ms}``: ``wait_for_function``.
- ``{"op": "drop_ack", "page": label, "close": bool}``: the next ack frame from the server is not delivered;
  with ``close`` the WebSocket is then closed on both sides, as a network loss would.
- ``{"op": "problems", "page": label}``: console errors and page errors so far.
"""
from __future__ import annotations

import json
import sys
import threading
import traceback
from queue import Empty, Queue
from typing import Any

from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    WebSocketRoute,
    sync_playwright,
)

from tests.helpers.browser import launch

#: Loads the client module into ``window.rt`` once the vendored socket.io-client bundle is on the page.
LOAD_CLIENT = "() => import('/ws-docs/client.js').then((module) => { window.rt = module; })"

#: The browser context of pages opened without a ``context`` name.
MAIN_CONTEXT = "main"

#: Engine.IO message (4) carrying a Socket.IO ACK packet (3) of the default namespace.
ACK_PREFIX = "43"


class DriverPage:
    """One page and its WebSocket interception state."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.problems: list[str] = []
        self.drop: dict[str, Any] | None = None
        page.on("console", self._console)
        page.on("pageerror", lambda err: self.problems.append(f"pageerror: {err}"))
        page.on("response", self._response)

    def _console(self, message: Any) -> None:
        # A failed load is reported with its URL by _response (the browser's own favicon request aside).
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.problems.append(f"console.error: {message.text}")

    def _response(self, response: Any) -> None:
        if response.status >= 400 and not response.url.endswith("/favicon.ico"):
            self.problems.append(f"HTTP {response.status}: {response.url}")

    def route(self, ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()

        def from_server(message: str | bytes) -> None:
            drop = self.drop
            if drop is not None and isinstance(message, str) and message.startswith(ACK_PREFIX):
                self.drop = None
                drop["dropped"] = message
                if drop["close"]:
                    server.close()
                    ws.close()
                return
            ws.send(message)

        server.on_message(from_server)


def commands(queue: Queue[str | None]) -> None:
    """Feed stdin lines to ``queue``; ``None`` at end of input."""
    for line in sys.stdin:
        queue.put(line)
    queue.put(None)


def main() -> int:
    pages: dict[str, DriverPage] = {}
    contexts: dict[str, BrowserContext] = {}
    lines: Queue[str | None] = Queue()
    threading.Thread(target=commands, args=(lines,), daemon=True).start()
    with sync_playwright() as playwright:
        browser = launch(playwright)
        context = contexts[MAIN_CONTEXT] = browser.new_context()
        idle = context.new_page()  # Playwright dispatches events (routed WebSocket frames) only inside its calls
        try:
            while True:
                try:
                    line = lines.get_nowait()
                except Empty:
                    idle.wait_for_timeout(20)
                    continue
                if line is None:
                    break
                if not line.strip():
                    continue
                command = json.loads(line)
                try:
                    value = run(browser, contexts, pages, command)
                    reply: dict[str, Any] = {"ok": True, "value": value}
                except Exception as exc:  # noqa: BLE001 - reported to the test as JSON
                    traceback.print_exc()
                    label = command.get("page")
                    problems = pages[label].problems if label in pages else []
                    reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "problems": problems}
                print(json.dumps(reply, default=repr), flush=True)
        finally:
            for opened in contexts.values():
                opened.close()
            browser.close()
    return 0


def run(browser: Browser, contexts: dict[str, BrowserContext], pages: dict[str, DriverPage],
        command: dict[str, Any]) -> Any:
    op = command["op"]
    if op == "close_context":
        contexts.pop(command["context"]).close()
        return None
    if op == "open":
        name = command.get("context", MAIN_CONTEXT)
        if name not in contexts:
            contexts[name] = browser.new_context()
        page = contexts[name].new_page()
        driver = DriverPage(page)
        pages[command["page"]] = driver
        origin = command["origin"].rstrip("/")
        if command.get("routeWebSockets"):
            page.route_web_socket("**/socket.io/**", driver.route)
        # A page the server serves itself: the client runs on the server's own origin (a loopback address,
        # which Chromium's local-network checks require for the sockets to the other loopback servers).
        page.goto(f"{origin}/healthz")
        page.add_script_tag(url="/ws-docs/static/vendor/socket.io.min.js")
        page.evaluate(LOAD_CLIENT)
        page.wait_for_function("() => window.rt !== undefined && typeof window.io === 'function'")
        return None
    driver = pages[command["page"]]
    if op == "eval":
        return driver.page.evaluate(command["js"], command.get("arg"))
    if op == "wait":
        handle = driver.page.wait_for_function(command["js"], arg=command.get("arg"), timeout=command.get("timeout", 20000))
        return handle.json_value()
    if op == "drop_ack":
        driver.drop = {"close": bool(command.get("close")), "dropped": None}
        return None
    if op == "problems":
        return driver.problems
    raise ValueError(f"unknown op {op!r}; use open, close_context, eval, wait, drop_ack or problems")


if __name__ == "__main__":
    sys.exit(main())
