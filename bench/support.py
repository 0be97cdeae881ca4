"""The processes a benchmark runs: a throwaway ``redis-server`` and the Procfile's gunicorn command.

A benchmark is not a test, so it drives its processes itself instead of importing the test suite; this is the
least it needs: start, wait until healthy, SIGTERM, wait for the exit code.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import redis
import requests

#: The repository root: the Procfile's working directory.
REPO_ROOT = Path(__file__).resolve().parents[1]


class BenchError(RuntimeError):
    """The benchmark could not set up or run a step."""


def free_port() -> int:
    """An unused loopback TCP port, as the kernel hands one out."""
    probe = socket.socket()
    try:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
    finally:
        probe.close()


def overlay_env(changes: Mapping[str, str | None]) -> dict[str, str]:
    """This process's environment with ``changes`` applied; a ``None`` value deletes the variable."""
    env = dict(os.environ)
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = str(value)
    return env


def venv_bin(name: str) -> Path:
    """Executable ``name`` of the interpreter's environment, else of the repository's ``.venv``."""
    for folder in (Path(sys.executable).parent, REPO_ROOT / ".venv" / "bin"):
        if (folder / name).is_file():
            return folder / name
    raise BenchError(
        f"{name} is installed neither next to {sys.executable} nor in {REPO_ROOT / '.venv'}: run `make bench`"
    )


class BenchRedis:
    """A ``redis-server`` on loopback and a free port, without persistence, its files in a temporary folder."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.folder = Path(tempfile.mkdtemp(prefix="bench-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The server's pid."""
        if self.process is None:
            raise BenchError("redis-server is not started")
        return self.process.pid

    def start(self, timeout: float = 10.0) -> BenchRedis:
        """Spawn it and return once it answers PING."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise BenchError("redis-server is not on PATH: run `make redis-server`")
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(
            [*argv, "--dir", str(self.folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        try:
            while not _answers_ping(client):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise BenchError(f"redis-server did not come up on port {self.port} within {timeout}s")
                time.sleep(0.05)
        finally:
            client.close()
        return self

    def stop(self) -> None:
        """SIGTERM, SIGKILL after 5 s; then remove its folder."""
        process, self.process = self.process, None
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def _answers_ping(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


class BenchServer:
    """``gunicorn -c gunicorn.conf.py wsgi:app`` (the Procfile's command) on ``127.0.0.1:port``.

    Its output goes to ``log_path``; it runs in a process group of its own, so that a last-resort SIGKILL
    reaches its workers too.
    """

    def __init__(self, port: int, env: Mapping[str, str | None], run_dir: Path, name: str) -> None:
        self.port = port
        self.name = name
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = run_dir / f"gunicorn-{name}-{port}.log"
        # gunicorn >= 25 opens a control socket under $XDG_RUNTIME_DIR (else ~/.gunicorn), one path per user:
        # a folder of its own keeps this server off any other gunicorn's socket.
        self.runtime_dir = run_dir / f"run-{name}-{port}"
        self.env = overlay_env({"XDG_RUNTIME_DIR": str(self.runtime_dir), **env, "PORT": str(port),
                                "PYTHONUNBUFFERED": "1"})
        self.process: subprocess.Popen[bytes] | None = None
        self.signalled = False

    @property
    def pid(self) -> int:
        """The gunicorn master's pid."""
        if self.process is None:
            raise BenchError(f"gunicorn {self.name} is not started")
        return self.process.pid

    def spawn(self) -> BenchServer:
        """Start the master without waiting for it."""
        self.runtime_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [str(venv_bin("gunicorn")), "-c", "gunicorn.conf.py", "wsgi:app"],
                cwd=REPO_ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.signalled = False
        return self

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Return once ``GET /healthz`` answers 200; raise when the master exits or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process is None or self.process.poll() is not None:
                raise BenchError(f"gunicorn {self.name} on port {self.port} exited; see {self.log_path}")
            with contextlib.suppress(requests.RequestException):
                # Connection: close, or the idle keep-alive socket would delay a graceful stop.
                answer = requests.get(f"{self.url}/healthz", timeout=1.0, headers={"Connection": "close"})
                if answer.status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise BenchError(f"gunicorn {self.name} not healthy within {timeout}s; see {self.log_path}")
            time.sleep(0.1)

    def start(self, timeout: float = 60.0) -> BenchServer:
        """:meth:`spawn`, then :meth:`wait_healthy`."""
        self.spawn()
        self.wait_healthy(timeout)
        return self

    def terminate(self) -> None:
        """SIGTERM the master once (a graceful stop), without waiting."""
        if self.process is not None and not self.signalled and self.process.poll() is None:
            self.signalled = True
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, wait up to ``timeout`` s, then SIGKILL the process group; the master's exit code."""
        if self.process is None:
            return None
        self.terminate()
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait()


def mint_tokens(env: Mapping[str, str | None], user_ids: list[str], timeout: float = 300.0) -> list[str]:
    """One ``flask --app wsgi token create`` call for every user id (sessions are written in pipelines).

    The sessions land in the Redis of ``env['REDIS_URL']``; the tokens are signed with ``env['JWT_SECRET']``.
    """
    result = subprocess.run(
        [str(venv_bin("flask")), "--app", "wsgi", "token", "create", *user_ids],
        cwd=REPO_ROOT, env=overlay_env(env), capture_output=True, text=True, timeout=timeout, check=False,
    )
    tokens = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    if result.returncode != 0 or len(tokens) != len(user_ids):
        raise BenchError(
            f"flask token create failed (exit {result.returncode}, {len(tokens)} tokens for {len(user_ids)} ids):\n"
            f"{result.stderr[-2000:]}"
        )
    return tokens


CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_seconds(pid: int) -> float | None:
    """utime + stime of ``pid`` in seconds, from ``/proc/<pid>/stat`` (None when it is gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss_kb(pid: int) -> int | None:
    """``VmRSS`` of ``pid`` in KiB (None when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def proc_children(pid: int) -> list[int]:
    """Direct children of ``pid`` (one scan of ``/proc``): a gunicorn master's workers."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        if int(text[text.rindex(")") + 2 :].split()[1]) == pid:
            found.append(int(entry.name))
    return found


class NodeReference:
    """``node bench/node/reference_server.js`` on ``127.0.0.1:port``: the reference Socket.IO server.

    Same shape as :class:`BenchServer` (``pid``, ``start``, ``stop``), its output in ``log_path``, its own
    process group.
    """

    SCRIPT = Path(__file__).resolve().parent / "node" / "reference_server.js"

    def __init__(self, port: int, env: Mapping[str, str | None], run_dir: Path, name: str) -> None:
        self.port = port
        self.name = name
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = run_dir / f"node-{name}-{port}.log"
        self.env = overlay_env({**env, "PORT": str(port)})
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The Node process's pid."""
        if self.process is None:
            raise BenchError(f"node {self.name} is not started")
        return self.process.pid

    def start(self, timeout: float = 30.0) -> NodeReference:
        """Spawn it and return once ``GET /healthz`` answers 200."""
        if not (self.SCRIPT.parent / "node_modules" / "socket.io").is_dir():
            raise BenchError(f"{self.SCRIPT.parent}/node_modules is missing: run `make bench` (npm ci in bench/node)")
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                ["node", str(self.SCRIPT)], cwd=REPO_ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise BenchError(f"node {self.name} on port {self.port} exited; see {self.log_path}")
            with contextlib.suppress(requests.RequestException):
                answer = requests.get(f"{self.url}/healthz", timeout=1.0, headers={"Connection": "close"})
                if answer.status_code == 200:
                    return self
            if time.monotonic() > deadline:
                raise BenchError(f"node {self.name} not healthy within {timeout}s; see {self.log_path}")
            time.sleep(0.1)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait up to ``timeout`` s, then SIGKILL its process group; the exit code."""
        if self.process is None:
            return None
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait()
