"""Headless Chromium for the demo page tests: the system browser, driven by Playwright in a child process.

The pytest process is gevent monkey-patched (``tests/conftest.py``), and Playwright's sync API runs its
own greenlet and asyncio machinery against a Node driver process; mixing the two in one process is not
something either project supports. So nothing here imports Playwright at module level: the tests call
:func:`run_scenario`, which runs ``python -m tests.helpers.browser_script`` in a **separate, unpatched Python
process** (same interpreter, same venv) and reads its JSON result from stdout. Only that child calls
:func:`launch`.

The browser is the system Chromium (Debian's ``chromium`` package; ``make browser`` installs it);
``playwright install`` is never needed. :func:`launch` starts a fresh, throw-away profile every time
(Playwright's ``launch`` creates a new user-data dir under ``$TMPDIR``; :func:`run_scenario` points
``$TMPDIR`` at a private folder that it deletes afterwards).
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
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only; Playwright is imported in the child process
    from playwright.sync_api import Browser, Playwright

__all__ = ["CHROMIUM_ARGS", "BrowserScriptError", "chromium_executable", "launch", "run_scenario"]

REPO_ROOT: Path = Path(__file__).resolve().parents[2]

#: Flags for a quiet, reproducible headless run: no sandbox (containers, root), no GPU, no QUIC,
#: and none of the background traffic (component updates, sync, first-run pings).
CHROMIUM_ARGS: tuple[str, ...] = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

_STDERR_TAIL = 4000


class BrowserScriptError(RuntimeError):
    """The browser child process failed, timed out or printed no result."""


def chromium_executable() -> str:
    """The system Chromium (``shutil.which("chromium")``).

    :raises BrowserScriptError: when it is not installed (``make browser`` installs it).
    """
    path = shutil.which("chromium")
    if path is None:
        raise BrowserScriptError(
            "chromium is not on PATH; `make browser` installs it (apt-get install chromium chromium-driver)."
        )
    return path


def launch(playwright: Playwright, **kwargs: Any) -> Browser:
    """Launch the system Chromium, headless, with :data:`CHROMIUM_ARGS` and a fresh profile.

    Call only from the child process (see the module docstring). ``kwargs`` go to
    ``playwright.chromium.launch``.
    """
    return playwright.chromium.launch(
        executable_path=chromium_executable(),
        headless=True,
        args=list(CHROMIUM_ARGS),
        **kwargs,
    )


def run_scenario(name: str, params: Mapping[str, Any], timeout: float = 60.0) -> dict[str, Any]:
    """Run scenario ``name`` of :mod:`tests.helpers.browser_script` in a child process; return its JSON result.

    Safe to call from the gevent-patched test process: the child is a plain ``subprocess``; on timeout its
    whole process group (Python, Playwright's Node driver, Chromium) is killed.

    :raises BrowserScriptError: with the child's stderr when it fails, times out or prints no JSON.
    """
    chromium_executable()  # fail early with the install hint
    spec = json.dumps({"scenario": name, "params": dict(params)})
    tmp = tempfile.mkdtemp(prefix="realtime-browser-")
    env = dict(os.environ)
    # A private TMPDIR: Playwright's fresh user-data dir and artifacts land here and are deleted below.
    env.update({"TMPDIR": tmp, "PYTHONUNBUFFERED": "1"})
    env.pop("PLAYWRIGHT_BROWSERS_PATH", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.browser_script", spec],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: one killpg reaches Node and Chromium too
    )
    try:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            stdout, stderr = process.communicate()
            raise BrowserScriptError(
                f"browser scenario {name!r} timed out after {timeout}s; stderr:\n{stderr[-_STDERR_TAIL:]}"
            ) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result = _last_json_line(stdout)
    if process.returncode != 0 or result is None or not result.get("ok"):
        error = (result or {}).get("error", "no JSON result on stdout")
        pages = json.dumps((result or {}).get("pages", {}), indent=1)
        raise BrowserScriptError(
            f"browser scenario {name!r} failed (exit {process.returncode}): {error}\npages: {pages}\n"
            f"stderr:\n{stderr[-_STDERR_TAIL:]}\nstdout:\n{stdout[-_STDERR_TAIL:]}"
        )
    return dict(result["result"])


def _kill_group(process: subprocess.Popen[str]) -> None:
    """SIGKILL the child's process group; only while the child is unreaped, so the group id is still ours."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def _last_json_line(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return None
