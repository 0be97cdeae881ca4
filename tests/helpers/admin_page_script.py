"""The admin page in headless Chromium: ``python -m tests.helpers.admin_page_script '<json params>'``.

Like :mod:`tests.helpers.browser_script` this runs in its own process, never under gevent (see
:mod:`tests.helpers.browser`); :func:`run_admin_scenario` starts it from the test and returns its JSON result.
The scenario signs in with the token typed into the page, waits until the page shows the sockets, room and
error the test set up, clicks "Disconnect" on one socket and "Force logout" on one user (each button takes a
confirming second click), and reports what the page showed plus every request URL and response body it got.
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
import traceback
from typing import Any

from tests.helpers.browser import (
    REPO_ROOT,
    BrowserScriptError,
    chromium_executable,
    launch,
)

TIMEOUT_MS = 20_000

#: What the page shows, read in one round trip.
SNAPSHOT_JS = """() => ({
  state: document.body.dataset.state,
  workers: [...document.querySelectorAll("#workers article[data-worker]")].map(article => ({
    id: article.dataset.worker, sockets: Number(article.dataset.sockets),
    received: Number(article.dataset.received), errors: Number(article.dataset.errors),
    sids: [...article.querySelectorAll("li[data-sid]")].map(li => li.dataset.sid),
  })),
  sockets: Object.fromEntries([...document.querySelectorAll("#workers li[data-sid]")].map(li =>
    [li.dataset.sid, {worker: li.dataset.worker, userId: li.dataset.userId}])),
  rooms: Object.fromEntries([...document.querySelectorAll("#rooms tr[data-room]")].map(tr =>
    [tr.dataset.room, [Number(tr.querySelector(".sockets").textContent), Number(tr.querySelector(".users").textContent)]])),
  users: Object.fromEntries([...document.querySelectorAll("#users tr[data-user-id]")].map(tr =>
    [tr.dataset.userId, [...tr.querySelectorAll(".sid")].map(code => code.textContent.trim())])),
  errors: [...document.querySelectorAll("#errors li[data-code]")].map(li => ({
    code: li.dataset.code, event: li.dataset.event, message: li.querySelector(".message").textContent,
  })),
  status: document.getElementById("action-status").hidden ? null : {
    state: document.getElementById("action-status").dataset.state,
    text: document.getElementById("action-status").textContent,
  },
  totals: Object.fromEntries([...document.querySelectorAll("#totals dd")].map(dd => [dd.dataset.total, dd.textContent])),
})"""

#: Whether the page shows every socket, the room with its expected size, the expected error, and at least
#: ``least`` events received by the worker of each ``[sid, least]`` of ``minReceived``.
READY_JS = """(want) => {
  const shown = new Set([...document.querySelectorAll("#workers li[data-sid]")].map(li => li.dataset.sid));
  const room = document.querySelector(`#rooms tr[data-room="${want.room}"]`);
  const error = [...document.querySelectorAll("#errors li[data-code]")]
    .some(li => li.dataset.code === want.code && li.dataset.event === want.event);
  const users = new Set([...document.querySelectorAll("#users tr[data-user-id]")].map(tr => tr.dataset.userId));
  const received = want.minReceived.every(([sid, least]) => {
    const li = document.querySelector(`#workers li[data-sid="${sid}"]`);
    return li !== null && Number(li.closest("article").dataset.received) >= least;
  });
  return want.sids.every(sid => shown.has(sid)) && want.users.every(user => users.has(user)) && error && received
    && room !== null
    && room.querySelector(".sockets").textContent === String(want.roomSize[0])
    && room.querySelector(".users").textContent === String(want.roomSize[1]);
}"""


def scenario(params: dict[str, Any]) -> dict[str, Any]:
    """Sign in, wait for the expected data, disconnect one socket, log one user out; report what happened."""
    from playwright.sync_api import Route, sync_playwright

    base = params["baseUrl"].rstrip("/")
    captured: list[dict[str, Any]] = []
    requests: list[dict[str, Any]] = []
    problems: list[str] = []
    failed: list[dict[str, Any]] = []

    def capture(route: Route) -> None:
        # Fetch it ourselves to keep the body (a response's body can be gone once the page moved on).
        response = route.fetch()
        captured.append({"url": route.request.url, "status": response.status, "body": response.text()})
        route.fulfill(response=response)

    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_context().new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.on("console", lambda m: console(m, problems))
            page.on("response", lambda r: failed.append({"url": r.url, "status": r.status}) if r.status >= 400 else None)
            page.on("pageerror", lambda err: problems.append(f"pageerror: {err}"))
            page.on("request", lambda r: requests.append({"url": r.url, "authorization": "authorization" in r.headers}))
            page.route(f"{base}/admin**", capture)
            page.goto(f"{base}/admin")
            try:
                return {**steps(page, params, captured, requests, problems), "failedResponses": failed}
            except Exception as exc:
                raise RuntimeError(f"{exc}\npage: {json.dumps(page.evaluate(SNAPSHOT_JS))}\nproblems: {problems}") from exc
        finally:
            browser.close()


def console(message: Any, problems: list[str]) -> None:
    """Keep console errors, but not the browser's own line for an HTTP error status (kept by URL instead)."""
    if message.type == "error" and not message.text.startswith("Failed to load resource"):
        problems.append(f"console.error: {message.text}")


def steps(page: Any, params: dict[str, Any], captured: list[dict[str, Any]], requests: list[dict[str, Any]],
          problems: list[str]) -> dict[str, Any]:
    """The scenario's steps on the freshly loaded page."""
    before_sign_in = page.evaluate(SNAPSHOT_JS)
    page.fill("#admin-token", params["wrongToken"])
    page.click("#sign-in-button")
    page.wait_for_selector("#auth-error:not([hidden])")
    refused = {
        "error": page.text_content("#auth-error"),
        "state": page.evaluate("() => document.body.dataset.state"),
        "dashboardHidden": page.evaluate("() => document.getElementById('dashboard').hidden"),
        "stored": page.evaluate("() => Object.keys(sessionStorage)"),
    }
    page.fill("#admin-token", params["token"])
    page.click("#sign-in-button")
    page.wait_for_selector('body[data-state="signed-in"]')
    page.wait_for_function(READY_JS, arg=params["expect"], timeout=TIMEOUT_MS)
    shown = page.evaluate(SNAPSHOT_JS)
    if params.get("screenshot"):
        page.screenshot(path=params["screenshot"], full_page=True)
    stored = page.evaluate("() => Object.keys(sessionStorage)")

    target = params["disconnect"]
    page.click(f'button.disconnect[data-sid="{target}"]')
    page.click(f'button.disconnect[data-sid="{target}"][data-armed="1"]')
    page.wait_for_function(
        "(sid) => { const s = document.getElementById('action-status');"
        " return !s.hidden && s.dataset.state === 'ok' && s.textContent.includes(sid); }",
        arg=target,
    )
    page.wait_for_function("(sid) => !document.querySelector(`#workers li[data-sid=\"${sid}\"]`)", arg=target)
    after_disconnect = page.evaluate(SNAPSHOT_JS)

    user = params["logout"]
    page.click(f'button.logout[data-user-id="{user}"]')
    page.click(f'button.logout[data-user-id="{user}"][data-armed="1"]')
    page.wait_for_function(
        "(user) => { const s = document.getElementById('action-status');"
        " return !s.hidden && s.dataset.state === 'ok' && s.textContent.startsWith('Logged out ' + user); }",
        arg=user,
    )
    after_logout = page.evaluate(SNAPSHOT_JS)
    page.click("#sign-out")
    signed_out = {"state": page.evaluate("() => document.body.dataset.state"),
                  "stored": page.evaluate("() => Object.keys(sessionStorage)")}
    return {
        "beforeSignIn": before_sign_in, "refused": refused, "shown": shown, "storedKeys": stored, "afterDisconnect": after_disconnect,
        "afterLogout": after_logout, "signedOut": signed_out, "captured": captured, "requests": requests,
        "problems": problems,
    }


def run_admin_scenario(params: dict[str, Any], timeout: float = 90.0) -> dict[str, Any]:
    """Run :func:`scenario` in a child process outside gevent; return its result.

    :raises BrowserScriptError: with the child's stderr when it fails, times out or prints no JSON.
    """
    chromium_executable()
    tmp = tempfile.mkdtemp(prefix="realtime-admin-page-")
    env = {**os.environ, "TMPDIR": tmp, "PYTHONUNBUFFERED": "1"}
    env.pop("PLAYWRIGHT_BROWSERS_PATH", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.admin_page_script", json.dumps(params)],
        cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )
    try:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
            raise BrowserScriptError(f"admin page scenario timed out after {timeout}s; stderr:\n{stderr[-4000:]}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    result = json.loads(lines[-1]) if lines else {}
    if process.returncode != 0 or not result.get("ok"):
        raise BrowserScriptError(f"admin page scenario failed: {result.get('error')}\nstderr:\n{stderr[-4000:]}")
    return dict(result["result"])


def main(argv: list[str]) -> int:
    try:
        result = scenario(json.loads(argv[1]))
    except Exception as exc:  # noqa: BLE001 - reported to the parent as JSON
        traceback.print_exc()
        print(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"}), flush=True)
        return 1
    print(json.dumps({"ok": True, "result": result}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
