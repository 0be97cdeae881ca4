"""Browser scenarios for the event catalogue (``/ws-docs``), run as
``python -m tests.helpers.catalogue_scenario '<spec>'``.

Same contract as :mod:`tests.helpers.browser_script` (which drives the demo page): the pytest process is gevent
monkey-patched, so Playwright runs in a separate, unpatched child process. The test side calls
:func:`run_catalogue`, which starts that child and returns its JSON result; only the child imports
Playwright (inside :func:`main`) and launches the system Chromium through :func:`tests.helpers.browser.launch`.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.helpers.browser import REPO_ROOT, BrowserScriptError, chromium_executable

if TYPE_CHECKING:  # pragma: no cover - the child imports Playwright at run time
    from playwright.sync_api import Browser, Page

    from tests.helpers.browser_script import PageWatch

__all__ = ["run_catalogue"]

DEFAULT_TIMEOUT_MS = 10_000
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
_TAIL = 4000

# ---------------------------------------------------------------- parent side (safe under gevent)


def run_catalogue(name: str, params: Mapping[str, Any], timeout: float = 60.0) -> dict[str, Any]:
    """Run scenario ``name`` in a child Python process; return its ``result`` dict.

    :raises BrowserScriptError: with the child's stderr when it fails, times out or prints no JSON.
    """
    chromium_executable()  # fail early with the install hint
    spec = json.dumps({"scenario": name, "params": dict(params)})
    tmp = tempfile.mkdtemp(prefix="realtime-catalogue-")
    env = {**os.environ, "TMPDIR": tmp, "PYTHONUNBUFFERED": "1"}
    env.pop("PLAYWRIGHT_BROWSERS_PATH", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.catalogue_scenario", spec],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # one killpg reaches Node and Chromium too
    )
    try:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
            raise BrowserScriptError(
                f"catalogue scenario {name!r} timed out after {timeout}s; stderr:\n{stderr[-_TAIL:]}"
            ) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result = None
    for line in reversed(stdout.splitlines()):
        if line.strip().startswith("{"):
            with contextlib.suppress(ValueError):
                result = json.loads(line)
                break
    if process.returncode != 0 or not isinstance(result, dict) or not result.get("ok"):
        error = (result or {}).get("error", "no JSON result on stdout")
        diagnostics = json.dumps((result or {}).get("pages", {}), indent=1)
        raise BrowserScriptError(
            f"catalogue scenario {name!r} failed (exit {process.returncode}): {error}\npages: {diagnostics}\n"
            f"stderr:\n{stderr[-_TAIL:]}"
        )
    return dict(result["result"])


# ---------------------------------------------------------------- child side (Playwright)

#: Everything the tests read about the catalogue, in one round trip.
STATE_JS = """() => {
  const visible = (n) => !!n && !n.closest("[hidden]") && n.getClientRects().length > 0;
  const cards = [...document.querySelectorAll(".event-card")];
  return {
    cards: cards.map(c => ({id: c.id, event: c.dataset.event, direction: c.dataset.direction,
                            category: c.dataset.category, visible: visible(c)})),
    visibleCards: cards.filter(visible).map(c => c.id),
    visibleCount: {text: document.getElementById("visible-count").textContent.trim(),
                   count: Number(document.getElementById("visible-count").dataset.count)},
    categoryCounts: Object.fromEntries([...document.querySelectorAll('[data-testid="category-count"]')]
      .map(n => [n.dataset.category, n.textContent.trim()])),
    navCounts: Object.fromEntries([...document.querySelectorAll('[data-testid="nav-category-count"]')]
      .map(n => [n.dataset.category, n.textContent.trim()])),
    noMatch: visible(document.getElementById("no-match")),
    matchedRows: [...document.querySelectorAll(".event-card:not([hidden]) .field-row.is-match")]
      .map(r => r.closest(".event-card").id + " " + r.dataset.path),
    overflowX: document.documentElement.scrollWidth > window.innerWidth + 1,
  };
}"""

LOG_JS = """() => [...document.querySelectorAll("#try-log .log-entry")].map(li => ({
  kind: li.dataset.kind, event: li.dataset.event || null, ok: li.dataset.ok || null,
  code: li.dataset.code || null, text: li.textContent,
}))"""

TARGET_JS = """(id) => {
  const card = document.getElementById(id);
  const r = card.getBoundingClientRect();
  return {
    isTarget: card.classList.contains("is-target"),
    targets: [...document.querySelectorAll(".is-target")].map(n => n.id),
    top: r.top, bottom: r.bottom, innerHeight: window.innerHeight,
    inViewport: r.top >= 0 && r.top < window.innerHeight && r.bottom > 0,
    focused: document.activeElement === card,
    outline: getComputedStyle(card).boxShadow,
  };
}"""


def _watch(context: Any, label: str) -> PageWatch:
    from tests.helpers.browser_script import PageWatch

    return PageWatch(context, label)


def _open(page: Page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("body.js-ready", state="attached")


def _state(page: Page) -> dict[str, Any]:
    return dict(page.evaluate(STATE_JS))


def _search(page: Page, text: str) -> dict[str, Any]:
    page.fill("#search", text)
    page.wait_for_function(
        "(q) => document.getElementById('search').value === q && "
        "document.getElementById('visible-count').dataset.filtered === String(q.trim() !== '')",
        arg=text,
    )
    return _state(page)


def _shot(page: Page, folder: Path, name: str) -> str:
    page.wait_for_timeout(120)  # layout and the highlight animation settle
    path = folder / f"{name}.png"
    page.screenshot(path=str(path))
    return str(path)


def _log(page: Page) -> list[dict[str, Any]]:
    return list(page.evaluate(LOG_JS))


def _wait_log(page: Page, selector: str) -> None:
    page.wait_for_selector(f"#try-log {selector}", state="attached")


def scenario_catalogue(browser: Browser, params: dict[str, Any]) -> dict[str, Any]:
    """Cards and counts, search, deep links, the try-it console, screenshots at laptop and phone sizes."""
    base = params["baseUrl"].rstrip("/")
    shots = Path(params["screenshotDir"])
    shots.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {"screenshots": [], "timings": {}}
    started = time.monotonic()
    watches: list[PageWatch] = []

    laptop = browser.new_context(viewport=LAPTOP)  # type: ignore[arg-type]
    laptop.set_default_timeout(DEFAULT_TIMEOUT_MS)
    qa = _watch(laptop, "laptop")
    watches.append(qa)
    page = qa.page
    _open(page, base + "/ws-docs")
    out["initial"] = _state(page)
    out["screenshots"].append(_shot(page, shots, "catalogue-1280x800"))

    # Search: by name, by field name, nothing, cleared.
    out["search_typing"] = _search(page, "typing")
    out["search_field"] = _search(page, "viewerCount")
    out["search_nothing"] = _search(page, "no-such-thing-xyz")
    out["screenshots"].append(_shot(page, shots, "catalogue-no-match-1280x800"))
    out["search_cleared"] = _search(page, "")
    out["timings"]["search"] = time.monotonic() - started

    # Deep link in a fresh page, then a hash change.
    linked = _watch(laptop, "deep-link")
    watches.append(linked)
    _open(linked.page, base + "/ws-docs#chat:message")
    linked.page.wait_for_selector('[id="chat:message"].is-target')
    linked.page.wait_for_timeout(100)  # any late scroll would show up here
    out["deep_link"] = linked.page.evaluate(TARGET_JS, "chat:message")
    out["screenshots"].append(_shot(linked.page, shots, "catalogue-deep-link-1280x800"))
    linked.page.evaluate("() => { location.hash = 'chat:history~server'; }")
    linked.page.wait_for_selector('[id="chat:history~server"].is-target')
    out["hash_change"] = linked.page.evaluate(TARGET_JS, "chat:history~server")
    linked.page.close()
    out["timings"]["deep_link"] = time.monotonic() - started

    # Try-it console: a refused handshake first, then a minted token. The refusal goes over websocket only:
    # with polling first, socket.io-client closes the session itself after connect_error while its long-poll
    # or websocket probe may still be in flight, and Chromium logs that (a 400 or "WebSocket is closed before
    # the connection is established") at random; that is the library's teardown, not the page's.
    out["user_id_default"] = page.input_value("#try-user-id")
    page.fill("#try-token", "not-a-token")
    page.select_option("#try-transport", "websocket")
    page.click("#try-connect")
    page.wait_for_selector('#try-status[data-state="error"]')
    page.wait_for_timeout(200)  # a late warning would be recorded here
    out["refused"] = {"status": page.text_content("#try-status"), "log": _log(page)}
    page.fill("#try-token", "")
    page.select_option("#try-transport", "polling,websocket")  # the default, as real clients connect
    page.click("#try-mint")
    page.wait_for_function("() => document.getElementById('try-token').value.split('.').length === 3")
    out["token_info"] = page.text_content("#try-token-info")
    page.click("#try-connect")
    page.wait_for_selector('#try-status[data-state="connected"]')
    with contextlib.suppress(Exception):
        page.wait_for_selector('#try-status[data-transport="websocket"]', timeout=3000)
    out["connected"] = {
        "status": page.text_content("#try-status"),
        "transport": page.get_attribute("#try-status", "data-transport"),
        "emitEnabled": page.is_enabled("#try-emit"),
    }
    out["timings"]["connected"] = time.monotonic() - started

    # The card's "Try it" selects the event and pre-fills its first example.
    page.click('.event-card[data-event="chat:join"] .btn-try')
    out["try_button"] = {
        "event": page.input_value("#try-event"),
        "payload": page.input_value("#try-payload"),
        "focused": page.evaluate("() => document.activeElement && document.activeElement.id"),
    }
    page.select_option("#try-event", "chat:join")
    page.fill("#try-payload", '{"roomId": "lobby"}')
    page.click("#try-emit")
    _wait_log(page, '.log-entry[data-kind="ack"][data-event="chat:join"]')
    _wait_log(page, '.log-entry[data-kind="event"][data-event="chat:history"]')

    # A real message: acked, and delivered back as chat:new_message.
    page.select_option("#try-event", "chat:message")
    page.fill("#try-payload", '{"roomId": "lobby", "content": "hello from the catalogue"}')
    page.click("#try-emit")
    _wait_log(page, '.log-entry[data-kind="ack"][data-event="chat:message"]')
    _wait_log(page, '.log-entry[data-kind="event"][data-event="chat:new_message"]')
    out["after_join"] = _log(page)

    # Invalid JSON: an inline error, nothing emitted.
    before = len(_log(page))
    page.fill("#try-payload", '{"roomId": "lobby", "content": ')
    page.click("#try-emit")
    page.wait_for_selector("#try-payload-error:not([hidden])")
    page.wait_for_timeout(300)
    out["invalid_json"] = {
        "error": page.text_content("#try-payload-error"),
        "ariaInvalid": page.get_attribute("#try-payload", "aria-invalid"),
        "logBefore": before,
        "logAfter": len(_log(page)),
    }

    # Valid JSON that fails validation: an error ack with the code.
    page.fill("#try-payload", '{"roomId": "../x"}')
    page.click("#try-emit")
    _wait_log(page, '.log-entry[data-kind="ack"][data-event="chat:message"][data-ok="false"]')
    out["error_hidden_after_fix"] = page.is_hidden("#try-payload-error")
    out["log"] = _log(page)
    out["log_scroll"] = page.evaluate(
        "() => { const l = document.getElementById('try-log');"
        " return {atBottom: l.scrollHeight - l.scrollTop - l.clientHeight < 4, scrollable: l.scrollHeight > l.clientHeight}; }"
    )
    out["screenshots"].append(_shot(page, shots, "catalogue-console-1280x800"))
    out["timings"]["console"] = time.monotonic() - started

    # Copy button feedback (clipboard permission granted for this origin).
    with contextlib.suppress(Exception):
        laptop.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page.click('.event-card[data-event="chat:join"] [data-testid="copy-example"]')
    page.wait_for_selector('.event-card[data-event="chat:join"] [data-testid="copy-example"].is-done')
    out["copied"] = page.evaluate("() => navigator.clipboard.readText().catch(e => 'unreadable: ' + e)")
    out["laptop_state"] = _state(page)
    page.click("#try-connect")  # disconnect
    page.wait_for_selector('#try-status[data-state="disconnected"]')

    # Phone: sticky search, collapsible list, console as a full-screen sheet.
    phone_ctx = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)  # type: ignore[arg-type]
    phone_ctx.set_default_timeout(DEFAULT_TIMEOUT_MS)
    phone = _watch(phone_ctx, "phone")
    watches.append(phone)
    _open(phone.page, base + "/ws-docs")
    out["phone"] = _state(phone.page)
    out["screenshots"].append(_shot(phone.page, shots, "catalogue-390x844"))
    phone.page.evaluate("() => window.scrollTo(0, 1400)")
    out["screenshots"].append(_shot(phone.page, shots, "catalogue-scrolled-390x844"))
    phone.page.click("#nav-toggle")
    phone.page.wait_for_selector("#nav", state="visible")
    out["screenshots"].append(_shot(phone.page, shots, "catalogue-nav-390x844"))
    phone.page.click('#nav a[href="#party:join_live"]')
    phone.page.wait_for_selector('[id="party:join_live"].is-target')
    out["phone_nav_target"] = phone.page.evaluate(TARGET_JS, "party:join_live")
    out["phone_nav_closed"] = phone.page.is_hidden("#nav")
    phone.page.click('.event-card[data-event="party:join_live"] .btn-try')
    phone.page.wait_for_selector("#try-payload", state="visible")
    out["phone_console"] = {
        "event": phone.page.input_value("#try-event"),
        "overflowX": phone.page.evaluate("() => document.documentElement.scrollWidth > window.innerWidth + 1"),
    }
    out["screenshots"].append(_shot(phone.page, shots, "catalogue-console-390x844"))
    phone.page.click("#console-close")
    phone.page.wait_for_selector("#console", state="hidden")

    # Dark mode, for a human look.
    dark_ctx = browser.new_context(viewport=LAPTOP, color_scheme="dark")  # type: ignore[arg-type]
    dark_ctx.set_default_timeout(DEFAULT_TIMEOUT_MS)
    dark = _watch(dark_ctx, "dark")
    watches.append(dark)
    _open(dark.page, base + "/ws-docs#chat:new_message")
    dark.page.wait_for_selector('[id="chat:new_message"].is-target')
    out["screenshots"].append(_shot(dark.page, shots, "catalogue-dark-1280x800"))

    out["problems"] = [p for w in watches for p in w.problems]
    out["requests"] = sorted({r for w in watches for r in w.requests})
    out["timings"]["total"] = time.monotonic() - started
    for context in (laptop, phone_ctx, dark_ctx):
        context.close()
    return out


def scenario_standalone(browser: Browser, params: dict[str, Any]) -> dict[str, Any]:
    """The exported file, opened from disk: it renders, searches and its console reaches the live server."""
    file_url = Path(params["file"]).resolve().as_uri()
    base = params["baseUrl"].rstrip("/")
    context = browser.new_context(viewport=LAPTOP)  # type: ignore[arg-type]
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    watch = _watch(context, "standalone")
    page = watch.page
    _open(page, file_url + "#chat:join")
    out: dict[str, Any] = {"initial": _state(page)}
    out["target"] = page.evaluate(TARGET_JS, "chat:join")
    out["search"] = _search(page, "typing")
    _search(page, "")
    out["has_mint"] = page.query_selector("#try-mint") is not None
    page.fill("#try-server", base)
    page.fill("#try-token", params["token"])
    page.click("#try-connect")
    page.wait_for_selector('#try-status[data-state="connected"]')
    page.select_option("#try-event", "chat:join")
    page.click("#try-emit")  # the pre-filled example
    _wait_log(page, '.log-entry[data-kind="ack"][data-event="chat:join"]')
    out["log"] = _log(page)
    out["screenshot"] = _shot(page, Path(params["screenshotDir"]), "catalogue-standalone-1280x800")
    page.click("#try-connect")
    page.wait_for_selector('#try-status[data-state="disconnected"]')
    out["problems"] = watch.problems
    out["requests"] = sorted(set(watch.requests))
    context.close()
    return out


SCENARIOS: dict[str, Callable[[Browser, dict[str, Any]], dict[str, Any]]] = {
    "catalogue": scenario_catalogue,
    "standalone": scenario_standalone,
}


def main(argv: list[str]) -> int:
    from playwright.sync_api import sync_playwright

    from tests.helpers.browser import launch
    from tests.helpers.browser_script import WATCHES

    try:
        spec = json.loads(argv[1])
        scenario = SCENARIOS[spec["scenario"]]
        with sync_playwright() as playwright:
            browser = launch(playwright)
            try:
                result = scenario(browser, spec.get("params", {}))
            finally:
                pages = {w.label: {"problems": w.problems, "url": _url(w)} for w in WATCHES}
                browser.close()
    except Exception as exc:  # noqa: BLE001 - reported to the parent as JSON
        traceback.print_exc()
        diagnostics = locals().get("pages", {})
        print(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}", "pages": diagnostics}), flush=True)
        return 1
    print(json.dumps({"ok": True, "result": result}), flush=True)
    return 0


def _url(watch: PageWatch) -> str:
    try:
        return str(watch.page.url)
    except Exception:  # noqa: BLE001 - best effort
        return "?"


if __name__ == "__main__":
    sys.exit(main(sys.argv))
