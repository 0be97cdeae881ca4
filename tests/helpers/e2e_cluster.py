"""Run the real production command (the Procfile's gunicorn line) for end-to-end tests.

:class:`GunicornProcess` starts ``gunicorn -c gunicorn.conf.py wsgi:app`` from the repository root,
exactly as ``Procfile`` does, with stdout and stderr (access log and error log) captured in one log
file, waits until ``GET /healthz`` answers, and stops it the way a platform would (SIGTERM, then
SIGKILL). :func:`create_tokens` and :func:`revoke_session` run the ``flask token`` CLI with the
same environment as the servers.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO

import jwt
import requests

__all__ = [
    "REPO_ROOT",
    "GunicornProcess",
    "build_env",
    "create_tokens",
    "group_members",
    "revoke_session",
    "session_id_of",
]

#: The repository root: the Procfile's working directory.
REPO_ROOT: Path = Path(__file__).resolve().parents[2]
_BIN = Path(sys.executable).parent
_LOG_TAIL_LINES = 60


def _bin(name: str) -> str:
    """An executable of the venv running the tests (``.venv/bin/gunicorn``), else of the repo's venv."""
    for folder in (_BIN, REPO_ROOT / ".venv" / "bin"):
        candidate = folder / name
        if candidate.is_file():
            return str(candidate)
    raise FileNotFoundError(f"{name} is not installed next to {sys.executable} nor in {REPO_ROOT / '.venv'}")


def build_env(extra: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """``os.environ`` overlaid with ``extra``; a ``None`` value removes the variable."""
    env = dict(os.environ)
    for name, value in (extra or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = str(value)
    return env


class GunicornProcess:
    """One gunicorn master (and its workers) serving ``wsgi:app`` on ``127.0.0.1:port``.

    :param port: the TCP port (``PORT``); pick it with :func:`tests.helpers.redis_server.free_port`.
    :param env: variables overlaid on ``os.environ`` (``None`` unsets one).
    :param log_dir: folder for the log file ``gunicorn-<name>-<port>.log``.
    :param name: a label for the log file and error messages.
    """

    def __init__(self, port: int, env: Mapping[str, str | None], log_dir: Path, name: str = "web") -> None:
        self.port = port
        self.name = name
        self.log_path = Path(log_dir) / f"gunicorn-{name}-{port}.log"
        # gunicorn >= 25 opens a control socket at $XDG_RUNTIME_DIR/gunicorn.ctl, else at
        # ~/.gunicorn/gunicorn.ctl: one path per user, shared by every gunicorn on the machine. A
        # private runtime dir per process keeps test servers off each other's (and a developer's) socket.
        self.runtime_dir = Path(log_dir) / f"run-{name}-{port}"
        self.env = build_env(
            {"XDG_RUNTIME_DIR": str(self.runtime_dir), **env, "PORT": str(port), "PYTHONUNBUFFERED": "1"}
        )
        self._log: IO[bytes] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._terminated = False

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:40123``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """The gunicorn master's pid."""
        if self._process is None:
            raise RuntimeError(f"gunicorn {self.name!r} is not started")
        return self._process.pid

    @property
    def running(self) -> bool:
        """Whether the master process is alive."""
        return self._process is not None and self._process.poll() is None

    def log_text(self) -> str:
        """Everything the process wrote so far (access log, error log, app log)."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of the log."""
        return "\n".join(self.log_text().splitlines()[-lines:])

    def start(self, timeout: float = 30.0) -> GunicornProcess:
        """Spawn the process (see :meth:`spawn`) and wait until it is healthy (see :meth:`wait_healthy`)."""
        self.spawn()
        self.wait_healthy(timeout)
        return self

    def spawn(self) -> GunicornProcess:
        """Start ``gunicorn -c gunicorn.conf.py wsgi:app`` in the repo root, without waiting."""
        if self._process is not None:
            raise RuntimeError(f"gunicorn {self.name!r} is already started")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.runtime_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._terminated = False
        self._process = subprocess.Popen(
            [_bin("gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"],
            cwd=REPO_ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            # Its own process group: a last-resort SIGKILL reaches the workers too.
            start_new_session=True,
        )
        return self

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Wait until ``GET /healthz`` answers 200.

        :raises RuntimeError: with the log tail, when the process exits or ``timeout`` passes first;
            the process is stopped in that case.
        """
        deadline = time.monotonic() + timeout
        last_error = "no attempt"
        while True:
            if not self.running:
                code = self._process.poll() if self._process is not None else None
                tail = self.log_tail()
                self.stop()
                raise RuntimeError(f"gunicorn {self.name!r} on port {self.port} exited with {code}; log tail:\n{tail}")
            try:
                # Connection: close, or the idle keep-alive socket holds a worker greenlet and
                # delays a graceful stop by GRACEFUL_TIMEOUT.
                response = requests.get(f"{self.url}/healthz", timeout=1.0, headers={"Connection": "close"})
                if response.status_code == 200:
                    return
                last_error = f"HTTP {response.status_code}"
            except requests.RequestException as exc:
                last_error = type(exc).__name__
            if time.monotonic() > deadline:
                tail = self.log_tail()
                self.stop()
                raise RuntimeError(
                    f"gunicorn {self.name!r} on port {self.port} not healthy within {timeout}s "
                    f"(last: {last_error}); log tail:\n{tail}"
                )
            time.sleep(0.1)

    def terminate(self) -> None:
        """Send SIGTERM to the master without waiting (stop several servers in parallel, then :meth:`stop`)."""
        process = self._process
        if process is not None and not self._terminated and process.poll() is None:
            self._terminated = True
            try:
                process.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM the master, wait up to ``timeout`` s, then SIGKILL its process group; safe to call twice.

        :returns: the master's exit code (``None`` when it was never started).
        """
        self.terminate()
        process, self._process = self._process, None
        code: int | None = None
        if process is not None:
            if process.poll() is None:
                try:
                    process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    # The master is still alive, so its process group holds only our processes.
                    try:
                        os.killpg(process.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    process.wait()
            code = process.returncode
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def __enter__(self) -> GunicornProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group ``pgid`` (a gunicorn master and its workers), sorted."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after its closing parenthesis.
        after_comm = stat.rpartition(")")[2].split()
        if int(after_comm[2]) == pgid and after_comm[0] != "Z":
            members.append(int(entry))
    return sorted(members)


def _flask(env: Mapping[str, str | None], *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [_bin("flask"), "--app", "wsgi", *args],
        cwd=REPO_ROOT,
        env=build_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"flask {' '.join(args[:2])} failed with exit code {result.returncode}:\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result


def create_tokens(env: Mapping[str, str | None], *user_ids: str, ttl: int | None = None) -> list[str]:
    """Run ``flask --app wsgi token create USER_ID...``; return one JWT per user id, in order.

    With ``REDIS_URL`` in ``env`` the sessions are registered in that Redis.
    """
    if not user_ids:
        raise ValueError("create_tokens needs at least one user id")
    extra = ["--ttl", str(ttl)] if ttl is not None else []
    result = _flask(env, "token", "create", *user_ids, *extra)
    tokens = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    if len(tokens) != len(user_ids):
        raise RuntimeError(f"expected {len(user_ids)} tokens, got stdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return tokens


def session_id_of(token: str) -> str:
    """The ``sid`` claim of ``token`` (read without verifying the signature)."""
    return str(jwt.decode(token, options={"verify_signature": False})["sid"])


def revoke_session(env: Mapping[str, str | None], session_id: str) -> str:
    """Run ``flask --app wsgi token revoke SESSION_ID``; return its output line."""
    return _flask(env, "token", "revoke", session_id).stdout.strip()
