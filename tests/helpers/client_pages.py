"""The test side of :mod:`tests.helpers.client_page_driver`: send a command, get its answer.

The driver runs in a child process outside gevent (see :mod:`tests.helpers.browser`); a reader thread
(cooperative under the test process's monkey-patching) turns its stdout lines into a queue, so that a
command waits with a timeout and a hung browser fails the test instead of blocking it.
"""
from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import IO, Any, Self

from tests.helpers.browser import REPO_ROOT, BrowserScriptError, chromium_executable

_STDERR_TAIL = 4000


class ClientPages:
    """Pages of one headless Chromium, each with the typed client loaded as ``window.rt``."""

    def __init__(self) -> None:
        chromium_executable()
        self._tmp = tempfile.mkdtemp(prefix="realtime-client-pages-")
        self._stderr_path = Path(self._tmp) / "driver.stderr"
        self._stderr: IO[str] = open(self._stderr_path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        env = {**os.environ, "TMPDIR": self._tmp, "PYTHONUNBUFFERED": "1"}
        env.pop("PLAYWRIGHT_BROWSERS_PATH", None)
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.helpers.client_page_driver"],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            start_new_session=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        stdout = self._process.stdout
        assert stdout is not None
        for line in stdout:
            self._lines.put(line)
        self._lines.put(None)

    def stderr_tail(self) -> str:
        """The end of the driver's stderr (Playwright and Python tracebacks)."""
        self._stderr.flush()
        return self._stderr_path.read_text(encoding="utf-8", errors="replace")[-_STDERR_TAIL:]

    def command(self, command: dict[str, Any], timeout: float = 60.0) -> Any:
        """Send ``command``; return its value.

        :raises BrowserScriptError: when the command fails, or no answer comes within ``timeout`` s.
        """
        stdin = self._process.stdin
        assert stdin is not None
        stdin.write(json.dumps(command) + "\n")
        stdin.flush()
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise BrowserScriptError(
                f"no answer to {command['op']!r} within {timeout}s; driver stderr:\n{self.stderr_tail()}"
            ) from None
        if line is None:
            raise BrowserScriptError(f"the page driver exited; stderr:\n{self.stderr_tail()}")
        reply = json.loads(line)
        if not reply["ok"]:
            raise BrowserScriptError(
                f"{command['op']} failed: {reply['error']}\nproblems: {reply.get('problems')}\n"
                f"driver stderr:\n{self.stderr_tail()}"
            )
        return reply["value"]

    def open(self, label: str, origin: str, route_websockets: bool = False, context: str = "main") -> None:
        """A page on ``origin`` with ``window.rt`` (the client module) loaded, in browser context ``context``."""
        command = {"op": "open", "page": label, "origin": origin, "routeWebSockets": route_websockets, "context": context}
        self.command(command)

    def close_context(self, context: str) -> None:
        """Close browser context ``context`` and its pages (their connections drop)."""
        self.command({"op": "close_context", "context": context})

    def eval(self, label: str, js: str, arg: Any = None, timeout: float = 60.0) -> Any:
        """``page.evaluate(js, arg)`` on page ``label``."""
        return self.command({"op": "eval", "page": label, "js": js, "arg": arg}, timeout=timeout)

    def wait(self, label: str, js: str, arg: Any = None, timeout: float = 30.0) -> Any:
        """The first truthy value of predicate ``js`` on page ``label``, within ``timeout`` s."""
        command = {"op": "wait", "page": label, "js": js, "arg": arg, "timeout": int(timeout * 1000)}
        return self.command(command, timeout=timeout + 10)

    def drop_next_ack(self, label: str, close: bool) -> None:
        """Lose the next ack frame page ``label`` would receive; with ``close`` cut its WebSocket too."""
        self.command({"op": "drop_ack", "page": label, "close": close})

    def problems(self, label: str) -> list[str]:
        """Console errors and uncaught errors of page ``label`` so far."""
        return list(self.command({"op": "problems", "page": label}))

    def close(self) -> None:
        """End the driver (it closes Chromium), killing its process group if it does not exit."""
        with contextlib.suppress(BrokenPipeError, OSError):
            if self._process.stdin is not None:
                self._process.stdin.close()
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()
        self._stderr.close()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
