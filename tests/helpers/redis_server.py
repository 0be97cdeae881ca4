"""A private ``redis-server`` on a free port, started and stopped by the tests themselves."""
from __future__ import annotations

import logging
import random
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis

logger = logging.getLogger(__name__)


#: Where the kernel takes the local ports of outgoing connections from (Linux's default when unreadable).
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
#: The lowest port handed out.
LOWEST_PORT = 10000


def free_port() -> int:
    """A TCP port nobody uses right now, below the kernel's ephemeral range.

    A port the kernel hands out for ``bind(0)`` comes from the range it also gives outgoing connections:
    between this call and the server's ``bind``, a Redis client of another process could take it as its
    local port, and the server would fail with "Address already in use". A random port below that range
    is never taken that way.
    """
    try:
        first_ephemeral = int(EPHEMERAL_RANGE.read_text(encoding="ascii").split()[0])
    except (OSError, ValueError, IndexError):
        first_ephemeral = 32768
    for _ in range(200):
        port = random.randrange(LOWEST_PORT, max(LOWEST_PORT + 1000, first_ephemeral))
        with socket.socket() as sock:
            try:
                sock.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free TCP port below the ephemeral range after 200 tries")


class RedisServer:
    """One ``redis-server`` process with no persistence, bound to loopback.

    :param args: further command-line options, e.g. ``["--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"]``.
    """

    def __init__(self, port: int | None = None, args: list[str] | None = None) -> None:
        self.port = port or free_port()
        self.args = list(args or [])
        self._dir = Path(tempfile.mkdtemp(prefix="realtime-redis-"))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://`` URL of this server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start the server and wait until it answers PING."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not on PATH; `make test` installs it (apt-get install redis-server).")
        self._process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self._dir), "--logfile", str(self._dir / "redis.log"), *self.args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self._process.poll() is not None:
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.05)
        client.close()
        return self

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s)."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None
