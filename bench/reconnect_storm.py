"""Reconnect storm: N sockets on one gunicorn process, that process restarted, every socket back.

Run by hand (never a pass/fail test)::

    .venv/bin/python bench/reconnect_storm.py --sockets 2000 [--workers-mode two-processes|one]
        [--transport websocket] [--batch-size 100] [--json]

What it does, all on 127.0.0.1 and bounded in time:

1. starts a private ``redis-server`` on a free port (``bench/support.py``; never 6379);
2. starts the Procfile's command (``gunicorn -c gunicorn.conf.py wsgi:app``) twice, on free ports A and B
   (``--workers-mode one``: only A), sharing that Redis;
3. mints N+1 tokens with one ``flask --app wsgi token create`` call;
4. starts ONE Node process (``bench/storm_clients.js``, the socket.io-client of ``tests/node``) that opens
   the N sockets to A in batches, each joining one of ``--rooms`` chat rooms;
5. checks the cluster (Redis keys, ``presence:check`` and a chat round trip from a probe python-socketio
   client on B), then SIGTERMs gunicorn A, waits for it to exit and starts a fresh one on the same port;
6. waits until the Node side reports every socket disconnected, reconnected and back in its room, checks
   the cluster again, waits (bounded) until the dead worker's socket entries are reaped, checks again;
7. prints the figures (text, or ``--json``) and cleans everything up, also on Ctrl-C and timeouts.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import redis
import socketio
from support import (
    REPO_ROOT,
    BenchError,
    BenchRedis,
    BenchServer,
    free_port,
    mint_tokens,
)

NODE_SCRIPT = Path(__file__).resolve().parent / "storm_clients.js"
SIOCLIENT_PKG = REPO_ROOT / "tests" / "node" / "node_modules" / "socket.io-client" / "package.json"
KEY_PREFIX = "rt:"
ROOM_PREFIX = "bench-"
PROBE_USER = "bench-probe"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    """Progress on stderr (stdout carries only the summary)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def now_ms() -> float:
    return time.time() * 1000.0


# ---- statistics --------------------------------------------------------------------------------------------


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of ``values`` (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[rank - 1]


def dist(values: Iterable[float | None], scale: float = 1000.0) -> dict[str, Any]:
    """count/min/p50/p95/p99/max of millisecond values, in seconds (``scale`` 1000)."""
    vals = [v / scale for v in values if v is not None]
    if not vals:
        return {"count": 0}
    return {
        "count": len(vals),
        "min": round(min(vals), 3),
        "p50": round(percentile(vals, 50) or 0.0, 3),
        "p95": round(percentile(vals, 95) or 0.0, 3),
        "p99": round(percentile(vals, 99) or 0.0, 3),
        "max": round(max(vals), 3),
    }


def diff(a: list[float | None], b: list[float | None]) -> list[float | None]:
    return [(y - x) if (x is not None and y is not None) else None for x, y in zip(a, b, strict=True)]


# ---- /proc ----------------------------------------------------------------------------------------------


def _proc_stat(pid: int) -> tuple[int, float] | None:
    """(ppid, cpu seconds) of ``pid``, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / CLK_TCK


def _proc_status_kb(pid: int, *names: str) -> dict[str, int]:
    found: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                key, _, rest = line.partition(":")
                if key in names:
                    found[key] = int(rest.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return found


def children_of(ppids: set[int]) -> list[int]:
    """Pids whose parent is in ``ppids`` (one scan of /proc)."""
    result = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            stat = _proc_stat(int(entry.name))
            if stat is not None and stat[0] in ppids:
                result.append(int(entry.name))
    return result


def listen_counters() -> dict[str, int]:
    """Kernel TcpExt ListenOverflows/ListenDrops (accept queue full / SYNs dropped), this net namespace."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return {}
    for head, values in zip(lines[::2], lines[1::2], strict=False):
        if head.startswith("TcpExt:"):
            table = dict(zip(head.split()[1:], map(int, values.split()[1:]), strict=False))
            return {k: table.get(k, 0) for k in ("ListenOverflows", "ListenDrops")}
    return {}


class ProcSampler:
    """Samples RSS of labelled processes (and of gunicorn masters' workers) twice a second, bounded by stop()."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._masters: dict[int, str] = {}
        self._plain: dict[int, str] = {}
        self.stats: dict[int, dict[str, Any]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="proc-sampler", daemon=True)

    def add_master(self, pid: int, label: str) -> None:
        with self._lock:
            self._masters[pid] = label

    def add(self, pid: int, label: str) -> None:
        with self._lock:
            self._plain[pid] = label

    def start(self) -> ProcSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def sample(self) -> None:
        with self._lock:
            masters, plain = dict(self._masters), dict(self._plain)
        targets: dict[int, str] = dict(plain)
        for pid, label in masters.items():
            targets[pid] = f"{label}-master"
        if masters:
            workers = children_of(set(masters))
            for pid in workers:
                stat = _proc_stat(pid)
                if stat is not None:
                    targets[pid] = f"{masters.get(stat[0], '?')}-worker"
        for pid, label in targets.items():
            status = _proc_status_kb(pid, "VmHWM", "VmRSS")
            stat = _proc_stat(pid)
            if not status or stat is None:
                continue
            with self._lock:
                entry = self.stats.setdefault(pid, {"pid": pid, "label": label, "peak_rss_mb": 0.0})
                entry["peak_rss_mb"] = round(max(entry["peak_rss_mb"], status.get("VmHWM", 0) / 1024), 1)
                entry["rss_mb"] = round(status.get("VmRSS", 0) / 1024, 1)
                entry["cpu_s"] = round(stat[1], 2)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sample()
            except Exception as exc:  # noqa: BLE001 - sampling must never break the run
                log(f"sampler: {exc!r}")

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(v) for v in self.stats.values()]


# ---- the Node clients ------------------------------------------------------------------------------------


class StormClients:
    """``node bench/storm_clients.js``: JSON lines out, JSON commands in; its own process group."""

    def __init__(self, args: list[str], log_path: Path) -> None:
        self.log_path = log_path
        self._stderr = open(log_path, "ab")  # noqa: SIM115 - closed in close()
        self.process = subprocess.Popen(
            ["node", str(NODE_SCRIPT), *args],
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            start_new_session=True,
        )
        self.messages: list[dict[str, Any]] = []
        self.last_progress: dict[str, Any] | None = None
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, name="node-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            try:
                message = json.loads(raw)
            except ValueError:
                continue
            with self._cond:
                if message.get("type") == "progress":
                    self.last_progress = message
                else:
                    self.messages.append(message)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def send(self, **cmd: Any) -> None:
        if self.process.poll() is not None or self.process.stdin is None:
            raise BenchError(f"the Node clients exited with {self.process.returncode}; see {self.log_path}")
        self.process.stdin.write((json.dumps(cmd) + "\n").encode())
        self.process.stdin.flush()

    def wait_for(
        self,
        kind: str | tuple[str, ...],
        timeout: float,
        on_tick: Callable[[dict[str, Any] | None], None] | None = None,
        after: int = 0,
    ) -> dict[str, Any] | None:
        """The first message of ``kind`` (or one of them) at index >= ``after``; None after ``timeout`` s or
        if Node exits."""
        kinds = (kind,) if isinstance(kind, str) else kind
        deadline = time.monotonic() + timeout
        next_tick = time.monotonic() + 5
        with self._cond:
            while True:
                for message in self.messages[after:]:
                    if message.get("type") in kinds:
                        return message
                if self.process.poll() is not None and not self._reader.is_alive():
                    return None
                now = time.monotonic()
                if now >= deadline:
                    return None
                if on_tick is not None and now >= next_tick:
                    next_tick = now + 5
                    on_tick(self.last_progress)
                self._cond.wait(timeout=min(0.5, deadline - now))

    def request(self, kind: str, timeout: float = 30.0, **cmd: Any) -> dict[str, Any]:
        with self._cond:
            mark = len(self.messages)
        self.send(**cmd)
        reply = self.wait_for(kind, timeout, after=mark)
        if reply is None:
            raise BenchError(f"no {kind!r} answer from the Node clients within {timeout}s; see {self.log_path}")
        return reply

    def close(self) -> int | None:
        """Ask for exit, then SIGTERM, then SIGKILL its process group; bounded (~10 s)."""
        with contextlib.suppress(Exception):
            self.send(op="exit")
        with contextlib.suppress(Exception):
            if self.process.stdin is not None:
                self.process.stdin.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        self._reader.join(timeout=2)
        self._stderr.close()
        return self.process.returncode


# ---- cluster checks ----------------------------------------------------------------------------------------


def redis_counts(client: redis.Redis, users: list[str], rooms: list[str]) -> dict[str, Any]:
    """Socket entries, live ones, room index sizes, users with a live socket, Redis memory."""
    now = time.time()
    pipe = client.pipeline(transaction=False)
    pipe.zcard(f"{KEY_PREFIX}sockets")
    pipe.zcount(f"{KEY_PREFIX}sockets", f"({now}", "+inf")
    for room in rooms:
        pipe.scard(f"{KEY_PREFIX}room:group:{room}")
    for user in users:
        pipe.zcount(f"{KEY_PREFIX}user-sockets:{user}", f"({now}", "+inf")
    replies = pipe.execute()
    room_sizes = replies[2 : 2 + len(rooms)]
    per_user = replies[2 + len(rooms) :]
    info = client.info("memory")
    return {
        "socket_entries": int(replies[0]),
        "socket_entries_unexpired": int(replies[1]),
        "room_index_members": int(sum(room_sizes)),
        "users_with_live_socket": sum(1 for n in per_user if int(n) > 0),
        "users_with_several_sockets": sum(1 for n in per_user if int(n) > 1),
        "used_memory_mb": round(int(info["used_memory"]) / 2**20, 2),
        "used_memory_peak_mb": round(int(info["used_memory_peak"]) / 2**20, 2),
    }


def probe(
    url: str,
    token: str,
    transport: str,
    users: list[str],
    rooms: list[str],
    nodes: StormClients,
    label: str,
    expected_sockets: int,
) -> dict[str, Any]:
    """From a separate python-socketio client: presence:check of every user and one chat message per room,
    whose delivery the Node side counts per socket (every socket should get its room's message once)."""
    result: dict[str, Any] = {"server": url}
    client = socketio.Client(reconnection=False)
    started = time.monotonic()
    try:
        client.connect(url, auth={"token": token}, transports=[transport], wait_timeout=15)
        result["sid"] = client.get_sid()
        for room in rooms:
            ack = client.call("chat:join", {"roomId": room}, timeout=15)
            if not ack or not ack.get("ok"):
                raise BenchError(f"probe chat:join {room} failed: {ack}")
        online = 0
        for start in range(0, len(users), 100):
            ack = client.call("presence:check", {"userIds": users[start : start + 100]}, timeout=15)
            if not ack or not ack.get("ok"):
                raise BenchError(f"probe presence:check failed: {ack}")
            online += sum(1 for entry in ack["data"] if entry.get("isOnline"))
        result["presence_online"] = online
        client_id = f"probe-{label}-{secrets.token_hex(4)}"
        sent_at = time.monotonic()
        for room in rooms:
            ack = client.call("chat:message", {"roomId": room, "content": f"probe {label}", "clientId": client_id},
                              timeout=15)
            if not ack or not ack.get("ok"):
                raise BenchError(f"probe chat:message {room} failed: {ack}")
        # Wait (bounded) until every socket got its room's message.
        deadline = time.monotonic() + 15
        while True:
            marker = nodes.request("marker", op="marker", clientId=client_id)
            if marker["received"] >= expected_sockets or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        result["chat_delivered"] = marker["received"]
        result["chat_expected"] = marker["expected"]
        result["chat_missing_sample"] = marker["missing"][:10]
        result["chat_round_trip_s"] = round(time.monotonic() - sent_at, 3)
    except (socketio.exceptions.SocketIOError, BenchError) as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        with contextlib.suppress(Exception):
            client.disconnect()
        result["elapsed_s"] = round(time.monotonic() - started, 3)
    return result


def wait_probe_released(client: redis.Redis, probed: dict[str, Any], timeout: float = 5.0) -> None:
    """The probe's disconnect releases its socket entry; wait (bounded) so the next count is not off by one."""
    sid = probed.pop("sid", None)
    deadline = time.monotonic() + timeout
    while sid and time.monotonic() < deadline and client.zscore(f"{KEY_PREFIX}sockets", sid) is not None:
        time.sleep(0.1)


LOG_LINE = re.compile(r"\b(WARNING|ERROR|CRITICAL|Traceback)\b")
EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit)):")


def log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def scan_log(path: Path, start: int = 0, end: int | None = None) -> dict[str, Any]:
    """Counts of WARNING/ERROR/CRITICAL/Traceback lines in bytes [start, end) of a log, and the first
    distinct excerpts."""
    try:
        with open(path, "rb") as handle:
            handle.seek(start)
            data = handle.read() if end is None else handle.read(max(0, end - start))
    except OSError:
        return {"file": str(path), "missing": True}
    text = data.decode("utf-8", errors="replace")
    counts: dict[str, int] = {}
    excerpts: list[str] = []
    seen: set[str] = set()
    for line in text.splitlines():
        match = LOG_LINE.search(line)
        exc = EXCEPTION_LINE.match(line)
        if exc:
            key = f"exception {exc.group(1)}"
        elif match:
            key = match.group(1)
        else:
            continue
        counts[key] = counts.get(key, 0) + 1
        if key == "Traceback":
            continue
        # Group similar lines: drop timestamps, pids and hex/ids.
        shape = re.sub(r"[0-9a-f]{8,}|\d+", "#", line)
        if shape not in seen and len(excerpts) < 8:
            seen.add(shape)
            excerpts.append(line[:300])
    return {"file": str(path), "lines": len(text.splitlines()), "counts": counts, "excerpts": excerpts}


SERVER_PATHS = ("realtime/", "templates/", "wsgi.py", "gunicorn.conf.py", "setup.cfg", "pyproject.toml")


def git_state() -> dict[str, Any]:
    """HEAD and the server files that differ from it: the code this run measured."""
    def git(*args: str) -> str:
        try:
            result = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False,
                                    timeout=30)
        except (OSError, subprocess.SubprocessError):
            return ""
        return result.stdout.strip() if result.returncode == 0 else ""

    changed = [line[3:] for line in git("status", "--porcelain").splitlines() if line[3:].startswith(SERVER_PATHS)]
    return {"head": git("rev-parse", "--short", "HEAD") or None, "server_files_changed": len(changed),
            "changed": changed[:20]}


def raise_nofile(needed: int) -> dict[str, Any]:
    """Raise the soft RLIMIT_NOFILE (gunicorn and Node inherit it) as far as the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    before = soft
    target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return {"before": before, "soft": soft, "hard": hard, "needed": needed, "enough": soft >= needed}


# ---- the run ----------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sockets", type=int, default=2000, help="client sockets (default 2000)")
    parser.add_argument("--workers-mode", choices=["two-processes", "one"], default="two-processes",
                        help="two gunicorn processes A and B (clients on A, probe on B), or only A")
    parser.add_argument("--transport", choices=["websocket", "polling"], default="websocket",
                        help="client transport (websocket: the servers run SOCKET_TRANSPORTS=websocket)")
    parser.add_argument("--rooms", type=int, default=20, help="chat rooms the sockets spread over (default 20)")
    parser.add_argument("--batch-size", type=int, default=100,
                        help="initial connects per batch, next batch when this one is in; 0 = all at once")
    parser.add_argument("--batch-pause-ms", type=int, default=0, help="pause between initial batches")
    parser.add_argument("--no-client-retry", action="store_true",
                        help="clients do not retry a connect refused with UNAVAILABLE nor a failed chat:join "
                             "(the stock socket.io-client behaviour; shows what such clients lose)")
    parser.add_argument("--graceful-timeout", type=int, default=5, help="GRACEFUL_TIMEOUT of the servers (s)")
    parser.add_argument("--shutdown-timeout", type=int, default=None,
                        help="SHUTDOWN_TIMEOUT of the servers (s; their drain budget on SIGTERM); default: "
                             "the graceful timeout, so the drain fits in gunicorn's window")
    parser.add_argument("--presence-ttl", type=int, default=60, help="PRESENCE_TTL of the servers (s)")
    parser.add_argument("--connect-timeout", type=float, default=180.0, help="bound on the initial connect (s)")
    parser.add_argument("--storm-timeout", type=float, default=120.0,
                        help="bound on restart -> all reconnected (s, from the new gunicorn's spawn)")
    parser.add_argument("--reap-wait", type=float, default=None,
                        help="bound on waiting for the dead worker's entries to be reaped (s; default "
                             "PRESENCE_TTL*1.5+30; 0 skips the wait and the final check)")
    parser.add_argument("--log-dir", type=Path, default=None, help="keep logs here (default: a new /tmp dir)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    if args.sockets < 1 or args.sockets > 20000:
        parser.error("--sockets must be 1..20000")
    args.rooms = max(1, min(args.rooms, args.sockets))
    if args.shutdown_timeout is None:
        args.shutdown_timeout = args.graceful_timeout
    if args.reap_wait is None:
        args.reap_wait = args.presence_ttl * 1.5 + 30
    return args


def _to_int_term(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run(args: argparse.Namespace, summary: dict[str, Any]) -> dict[str, Any]:
    """The whole scenario; ``summary`` is filled as it goes (so a failed run still reports what it saw)."""
    n = args.sockets
    summary |= {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "machine": {"cpus": os.cpu_count(), "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)},
        "sockets_requested": n,
        "workers_mode": args.workers_mode,
        "transport": args.transport,
        "rooms": args.rooms,
        "batch_size": args.batch_size,
        "client_retry": not args.no_client_retry,
        "graceful_timeout": args.graceful_timeout,
        "shutdown_timeout": args.shutdown_timeout,
        "complete": False,
        "server_code": git_state(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }
    if shutil.which("node") is None:
        raise BenchError("node is not on PATH")
    if not SIOCLIENT_PKG.is_file():
        raise BenchError(f"{SIOCLIENT_PKG.parent} missing: run `make node-tools` (npm ci in tests/node)")
    summary["nofile"] = raise_nofile(2 * n + 4096)
    if not summary["nofile"]["enough"]:
        log(f"warning: RLIMIT_NOFILE soft {summary['nofile']['soft']} < needed {summary['nofile']['needed']}")

    run_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="realtime-bench-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    summary["log_dir"] = str(run_dir)
    log(f"logs in {run_dir}")

    users = [f"bench-u{i:05d}" for i in range(n)]
    rooms = [f"{ROOM_PREFIX}{k}" for k in range(args.rooms)]
    sampler = ProcSampler().start()
    redis_server: BenchRedis | None = None
    servers: list[BenchServer] = []
    nodes: StormClients | None = None
    tokens_file = run_dir / "tokens.txt"
    rclient: redis.Redis | None = None
    try:
        redis_server = BenchRedis().start()
        sampler.add(redis_server.pid, "redis")
        rclient = redis.Redis(port=redis_server.port, decode_responses=True, socket_timeout=10)
        env: dict[str, str | None] = {
            "APP_ENV": "local",
            "REDIS_URL": redis_server.url,
            "MESSAGE_QUEUE_URL": None,
            "KEY_PREFIX": KEY_PREFIX,
            "SOCKETIO_CHANNEL": "realtime-bench",
            "JWT_SECRET": secrets.token_hex(32),
            "LOG_LEVEL": "WARNING",
            "LOG_FORMAT": "text",
            "GRACEFUL_TIMEOUT": str(args.graceful_timeout),
            "SHUTDOWN_TIMEOUT": str(args.shutdown_timeout),
            "SOCKET_TRANSPORTS": "websocket" if args.transport == "websocket" else "polling,websocket",
            "WEB_CONCURRENCY": "1",
            "WORKER_CONNECTIONS": str(max(20000, 2 * n + 100)),
            "EVENT_RATE": "1000",
            "EVENT_BURST": "2000",
            "PRESENCE_TTL": str(args.presence_ttl),
            "SESSION_POLICY": "single",
            "CHAT_JOIN_HISTORY": "50",
        }
        port_a = free_port()
        port_b = free_port() if args.workers_mode == "two-processes" else None
        a = BenchServer(port_a, env, run_dir, name="a1")
        servers.append(a)
        a.start(timeout=60)
        sampler.add_master(a.pid, "A1")
        b: BenchServer | None = None
        if port_b is not None:
            b = BenchServer(port_b, env, run_dir, name="b")
            servers.append(b)
            b.start(timeout=60)
            sampler.add_master(b.pid, "B")
        log(f"redis :{redis_server.port}, gunicorn A :{port_a}" + (f", B :{port_b}" if b else ""))

        t0 = time.monotonic()
        tokens = mint_tokens(env, [*users, PROBE_USER])
        summary["token_create_s"] = round(time.monotonic() - t0, 2)
        probe_token = tokens.pop()
        tokens_file.write_text("\n".join(tokens) + "\n")
        tokens_file.chmod(0o600)
        log(f"{len(tokens)} tokens minted in {summary['token_create_s']}s")

        def probe_url() -> str:
            return (b or servers[-1]).url

        def tick(progress: dict[str, Any] | None) -> None:
            if progress:
                keys = ("connected", "joined", "terminal", "stormDisconnected", "stormReconnected", "stormRejoined")
                log("  " + " ".join(f"{k}={progress.get(k)}" for k in keys))

        # -- initial connect ---------------------------------------------------------------------------------
        kernel_before = listen_counters()
        nodes = StormClients(
            [
                "--url", a.url, "--tokens-file", str(tokens_file), "--rooms", str(args.rooms),
                "--room-prefix", ROOM_PREFIX, "--batch-size", str(args.batch_size),
                "--batch-pause-ms", str(args.batch_pause_ms), "--transport", args.transport,
                "--connect-timeout-s", str(int(args.connect_timeout)),
                "--max-lifetime-s", str(int(args.connect_timeout + args.storm_timeout + args.reap_wait + 300)),
                "--retry", "0" if args.no_client_retry else "1", "--ignore-user", PROBE_USER,
            ],
            run_dir / "storm_clients.stderr.log",
        )
        ready = nodes.wait_for("ready", 30)
        if ready is None:
            raise BenchError(f"the Node clients did not start; see {nodes.log_path}")
        sampler.add(nodes.process.pid, "node")
        summary["client"] = {"socket.io-client": ready.get("clientVersion"), "node": subprocess.run(
            ["node", "--version"], capture_output=True, text=True, check=False).stdout.strip()}
        log(f"node: opening {n} sockets to A (batches of {args.batch_size or n})")
        initial = nodes.wait_for("initial", args.connect_timeout + 30, on_tick=tick)
        if initial is None:
            raise BenchError("no initial report from the Node clients")
        kernel_after_initial = listen_counters()
        summary["initial"] = {
            "complete": initial["complete"],
            "connected": initial["connected"],
            "joined": initial["joined"],
            "terminal": initial["terminal"],
            "all_in_s": round((initial["at"] - initial["startedAt"]) / 1000, 3),
            "connect_errors": initial["errors"],
            "connect_error_details": initial["errorDetails"],
            "join_errors": initial["joinErrors"],
            "disconnects": initial["disconnectReasons"],
            "kernel_listen": {k: kernel_after_initial.get(k, 0) - kernel_before.get(k, 0) for k in kernel_before},
        }
        log(f"initial: {initial['connected']} connected, {initial['joined']} joined in "
            f"{summary['initial']['all_in_s']}s (complete={initial['complete']})")
        summary["before"] = {
            "redis": redis_counts(rclient, users, rooms),
            "probe": probe(probe_url(), probe_token, args.transport, users, rooms, nodes, "before", initial["joined"]),
        }
        wait_probe_released(rclient, summary["before"]["probe"])
        log(f"before: {summary['before']}")
        sampler.sample()

        # -- the storm: restart A ------------------------------------------------------------------------------
        nodes.request("armed", op="arm")
        kernel_before_storm = listen_counters()
        t_sigterm = now_ms()
        a.terminate()
        bound = args.graceful_timeout + 30
        code = a.stop(timeout=bound)
        t_exit = now_ms()
        summary["restart"] = {
            "sigterm_to_exit_s": round((t_exit - t_sigterm) / 1000, 3),
            "exit_code": code,
            "killed_after_bound": (t_exit - t_sigterm) / 1000 >= bound,
        }
        log(f"A exited {summary['restart']['sigterm_to_exit_s']}s after SIGTERM (code {code})")
        t_spawn = now_ms()
        a2 = BenchServer(port_a, env, run_dir, name="a2")
        servers.append(a2)
        a2.spawn()
        sampler.add_master(a2.pid, "A2")
        a2.wait_healthy(timeout=60)
        t_healthy = now_ms()
        summary["restart"]["spawn_to_healthy_s"] = round((t_healthy - t_spawn) / 1000, 3)
        log(f"A restarted, healthy after {summary['restart']['spawn_to_healthy_s']}s; waiting for the clients")
        remaining = args.storm_timeout - (now_ms() - t_spawn) / 1000
        settled = nodes.wait_for(("all_reconnected", "storm_settled"), max(1.0, remaining), on_tick=tick)
        back = settled if settled is not None and settled["type"] == "all_reconnected" else None
        kernel_after_storm = listen_counters()
        report = nodes.request("report", op="report")
        sampler.sample()
        storm_cpu = {e["label"]: e.get("cpu_s") for e in sampler.snapshot() if "worker" in e["label"]}

        disc_at = report["stormDisconnectAt"]
        conn_at = report["stormConnectAt"]
        join_at = report["stormJoinAt"]
        recovered = report["stormRecovered"]
        # The connection each socket holds now (differs from its first reconnect if it dropped again).
        final_conn_at = [c if d is not None else None for d, c in zip(disc_at, report["currentConnectAt"], strict=True)]
        final_join_at = [c if d is not None else None for d, c in zip(disc_at, report["currentJoinAt"], strict=True)]
        storm: dict[str, Any] = {
            "all_reconnected": back is not None,
            "settled_without_all": settled is not None and back is None,
            "disconnected": report["stormDisconnected"],
            "reconnected": report["stormReconnected"],
            "rejoined": report["stormRejoined"],
            "connected_now": report["connected"],
            "in_room_now": report["joined"],
            "recovered": sum(1 for r in recovered if r is True),
            "recovered_now": sum(1 for d, r in zip(disc_at, report["currentRecovered"], strict=True)
                                 if d is not None and r is True),
            "reconnected_before_old_exit": sum(1 for c in conn_at if c is not None and c < t_exit),
            "terminal": {},
            "restart_to_all_back_s": round((back["at"] - t_spawn) / 1000, 3) if back else None,
            "healthy_to_all_back_s": round((back["at"] - t_healthy) / 1000, 3) if back else None,
            "sigterm_to_all_back_s": round((back["at"] - t_sigterm) / 1000, 3) if back else None,
            "disconnect_after_sigterm": dist([d - t_sigterm if d is not None else None for d in disc_at]),
            "per_socket_outage": dist(diff(disc_at, conn_at)),
            "per_socket_back_in_room": dist(diff(disc_at, join_at)),
            "per_socket_outage_final": dist(diff(disc_at, final_conn_at)),
            "per_socket_back_in_room_final": dist(diff(disc_at, final_join_at)),
            "reconnect_after_spawn": dist([c - t_spawn if c is not None else None for c in conn_at]),
            "reconnect_attempts": dist(report["stormAttempts"], scale=1),
            "sockets_disconnected_twice": sum(1 for k in report["stormDisconnects"] if k > 1),
            "connect_errors": report["errors"]["storm"],
            "connect_error_details": report["errorDetails"]["storm"],
            "join_errors": report["joinErrors"]["storm"],
            "disconnect_reasons": report["disconnectReasons"]["storm"],
            "server_events": report["serverEvents"]["storm"],
            "server_event_window_after_sigterm_s": {
                name: [round((first - t_sigterm) / 1000, 3), round((last - t_sigterm) / 1000, 3)]
                for name, (first, last) in report["serverEventSpan"]["storm"].items()
            },
            "kernel_listen": {k: kernel_after_storm.get(k, 0) - kernel_before_storm.get(k, 0)
                              for k in kernel_before_storm},
            "worker_cpu_s_when_all_back": storm_cpu,
        }
        for reason in report["terminal"]:
            if reason is not None:
                storm["terminal"][reason] = storm["terminal"].get(reason, 0) + 1
        # Only what happened before the initial report (a socket first in its room after the storm is not
        # an initial latency).
        cutoff = initial["at"]
        first_conn = [t if t is not None and t <= cutoff else None for t in report["firstConnectAt"]]
        first_join = [t if t is not None and t <= cutoff else None for t in report["firstJoinAt"]]
        summary["initial"]["connect_latency"] = dist(diff(report["createdAt"], first_conn))
        summary["initial"]["join_latency"] = dist(diff(report["createdAt"], first_join))
        summary["initial"]["server_events"] = report["serverEvents"]["initial"]
        summary["storm"] = storm
        summary["node_memory_mb"] = round(report["memory"]["rss"] / 2**20, 1)
        log(f"storm: back={storm['all_reconnected']} reconnected={storm['reconnected']} "
            f"rejoined={storm['rejoined']} in {storm['restart_to_all_back_s']}s after the new spawn")

        # -- cluster state after the storm ----------------------------------------------------------------------
        summary["after"] = {
            "redis": redis_counts(rclient, users, rooms),
            "probe": probe(probe_url(), probe_token, args.transport, users, rooms, nodes, "after", n),
        }
        wait_probe_released(rclient, summary["after"]["probe"])
        log(f"after: {summary['after']}")

        if args.reap_wait > 0:
            t_reap = time.monotonic()
            deadline = t_reap + args.reap_wait
            entries = rclient.zcard(f"{KEY_PREFIX}sockets")
            while entries > n and time.monotonic() < deadline:
                time.sleep(1.0)
                entries = rclient.zcard(f"{KEY_PREFIX}sockets")
            summary["reaped"] = {
                "socket_entries": entries,
                "stale_gone": entries <= n,
                "waited_s": round(time.monotonic() - t_reap, 1),
                "since_sigterm_s": round((now_ms() - t_sigterm) / 1000, 1),
            }
            log(f"reap: {summary['reaped']}")
            summary["final"] = {
                "redis": redis_counts(rclient, users, rooms),
                "probe": probe(probe_url(), probe_token, args.transport, users, rooms, nodes, "final", n),
            }
            wait_probe_released(rclient, summary["final"]["probe"])
            final_report = nodes.request("report", op="report")
            summary["final"]["connected_now"] = final_report["connected"]
            summary["final"]["in_room_now"] = final_report["joined"]
            summary["final"]["server_events_since_arm"] = final_report["serverEvents"]["storm"]
            log(f"final: {summary['final']}")
        sampler.sample()
        summary["complete"] = True
        return summary
    finally:
        # Log lines written from here on come from the teardown (every client closing at once).
        measured_end = {server.log_path: log_size(server.log_path) for server in servers}
        if nodes is not None:
            nodes.close()
        with contextlib.suppress(Exception):
            sampler.sample()
        sampler.stop()
        if rclient is not None:
            with contextlib.suppress(Exception):
                summary.setdefault("redis_end", {})["info"] = {
                    k: v for k, v in rclient.info("memory").items() if k in ("used_memory", "used_memory_peak")
                }
            with contextlib.suppress(Exception):
                rclient.close()
        for server in reversed(servers):
            with contextlib.suppress(Exception):
                server.stop(timeout=args.graceful_timeout + 15)
        if redis_server is not None:
            with contextlib.suppress(Exception):
                redis_server.stop()
            shutil.rmtree(getattr(redis_server, "_dir", ""), ignore_errors=True)
        with contextlib.suppress(OSError):
            tokens_file.unlink()
        summary["processes"] = sorted(sampler.snapshot(), key=lambda e: e["label"])
        summary["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
        summary["logs"] = [scan_log(server.log_path, 0, measured_end[server.log_path]) for server in servers]
        summary["teardown_logs"] = [scan_log(server.log_path, measured_end[server.log_path]) for server in servers]


def worker_peaks(summary: dict[str, Any]) -> dict[str, float]:
    peaks: dict[str, float] = {}
    for entry in summary.get("processes", []):
        label = entry["label"]
        peaks[label] = max(peaks.get(label, 0.0), entry["peak_rss_mb"])
    return peaks


def render_text(s: dict[str, Any]) -> str:
    def fmt_dist(d: dict[str, Any] | None, unit: str = "s") -> str:
        if not d or not d.get("count"):
            return "-"
        return (f"p50 {d['p50']}{unit}  p95 {d['p95']}{unit}  p99 {d['p99']}{unit}  max {d['max']}{unit}  "
                f"(n={d['count']})")

    lines = [
        (f"reconnect storm  {s['date']}  cpus={s['machine']['cpus']} mem={s['machine']['mem_gib']}GiB  "
        f"mode={s['workers_mode']} transport={s['transport']} rooms={s['rooms']} batch={s['batch_size']} "
        f"client_retry={s.get('client_retry')} GRACEFUL_TIMEOUT={s.get('graceful_timeout')} "
        f"SHUTDOWN_TIMEOUT={s.get('shutdown_timeout')}"),
        f"client: {s.get('client')}  RLIMIT_NOFILE: {s.get('nofile')}",
        (f"server code: HEAD {s.get('server_code', {}).get('head')}, "
        f"{s.get('server_code', {}).get('server_files_changed')} server file(s) changed "
        f"{s.get('server_code', {}).get('changed')}"),
        (f"load average at start {s.get('loadavg_start')}, at end {s.get('loadavg_end')} (other work on the machine "
        "skews the figures)"),
        f"logs: {s.get('log_dir')}",
        f"complete: {s.get('complete')}",
        "",
        f"sockets requested            {s['sockets_requested']}",
    ]
    init = s.get("initial")
    if init:
        lines += [
            f"connected initially          {init['connected']} (in room {init['joined']}, refused {init['terminal']})",
            f"time to connect all          {init['all_in_s']} s",
            f"  connect latency            {fmt_dist(init.get('connect_latency'))}",
            f"  connect+join latency       {fmt_dist(init.get('join_latency'))}",
            f"  connect_error              {init['connect_errors'] or 0}  {init['connect_error_details'] or ''}",
            f"  join errors                {init['join_errors'] or 0}",
            f"  kernel listen drops        {init['kernel_listen']}",
        ]
    if "before" in s:
        lines.append(f"before storm                 redis {s['before']['redis']}")
        lines.append(f"                             probe {s['before']['probe']}")
    rs = s.get("restart")
    if rs:
        lines += [
            f"SIGTERM -> exit              {rs['sigterm_to_exit_s']} s (exit code {rs['exit_code']})",
            f"spawn -> healthy             {rs.get('spawn_to_healthy_s')} s",
        ]
    st = s.get("storm")
    if st:
        lines += [
            f"all reconnected              {st['all_reconnected']}",
            (f"restart -> all reconnected   {st['restart_to_all_back_s']} s (from SIGTERM {st['sigterm_to_all_back_s']} s, "
            f"from healthy {st['healthy_to_all_back_s']} s)"),
            (f"disconnected / reconnected   {st['disconnected']} / {st['reconnected']} (back in room {st['rejoined']}, "
            f"connected now {st['connected_now']})"),
            (f"recovered (socket.recovered) {st['recovered']} at first reconnect, {st['recovered_now']} on the "
            f"connection held at the end"),
            f"  reconnected before old A exited {st['reconnected_before_old_exit']} (to the draining process)",
            f"  disconnect after SIGTERM   {fmt_dist(st['disconnect_after_sigterm'])}",
            f"  per-socket outage          {fmt_dist(st['per_socket_outage'])}",
            f"  outage until back in room  {fmt_dist(st['per_socket_back_in_room'])}",
            f"  outage, final connection   {fmt_dist(st['per_socket_outage_final'])}",
            f"  back in room, final conn.  {fmt_dist(st['per_socket_back_in_room_final'])}",
            f"  reconnect after spawn      {fmt_dist(st['reconnect_after_spawn'])}",
            f"  reconnect attempts         {fmt_dist(st['reconnect_attempts'], unit='')}",
            f"  connect_error              {st['connect_errors'] or 0}  {st['connect_error_details'] or ''}",
            f"  join errors                {st['join_errors'] or 0}",
            f"  disconnect reasons         {st['disconnect_reasons']}",
            f"  not coming back            {st['terminal'] or 0}",
            f"  sockets disconnected twice {st['sockets_disconnected_twice']}",
            f"  events received            {st['server_events']}",
            f"    [first, last] s after SIGTERM {st['server_event_window_after_sigterm_s']}",
            f"  kernel listen drops        {st['kernel_listen']}",
            f"  worker CPU s at that point {st.get('worker_cpu_s_when_all_back')}",
        ]
    for phase in ("after", "final"):
        if phase in s:
            lines.append(f"{phase:<29}redis {s[phase]['redis']}")
            lines.append(f"{'':<29}probe {s[phase]['probe']}")
    if "reaped" in s:
        lines.append(f"stale entries reaped         {s['reaped']}")
    if "final" in s and "server_events_since_arm" in s["final"]:
        lines.append(f"events since arm (final)     {s['final']['server_events_since_arm']}")
    lines.append(f"peak RSS (MB)                {worker_peaks(s)}  node now {s.get('node_memory_mb')}")
    for proc in s.get("processes", []):
        lines.append(f"  {proc['label']:<10} pid {proc['pid']:<8} peak {proc['peak_rss_mb']} MB  cpu {proc.get('cpu_s')} s")
    redis_end = s.get("redis_end", {}).get("info")
    if redis_end:
        lines.append(f"redis used_memory            {round(redis_end['used_memory'] / 2**20, 2)} MB "
                     f"(peak {round(redis_end['used_memory_peak'] / 2**20, 2)} MB)")
    for title, key in (("log", "logs"), ("teardown log", "teardown_logs")):
        for entry in s.get(key, []):
            lines.append(f"{title} {entry['file']}: {entry.get('lines')} lines, {entry.get('counts')}")
            for excerpt in entry.get("excerpts", []):
                lines.append(f"    {excerpt}")
    if s.get("error"):
        lines.append(f"ERROR: {s['error']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _to_int_term)
    summary: dict[str, Any] = {}
    status = 0
    try:
        run(args, summary)
    except KeyboardInterrupt:
        log("interrupted; everything stopped")
        summary["error"] = "interrupted"
        status = 130
    except (BenchError, RuntimeError, OSError, subprocess.SubprocessError, redis.RedisError) as exc:
        log(f"failed: {exc}")
        summary["error"] = f"{type(exc).__name__}: {exc}"
        status = 1
    if "sockets_requested" in summary:
        print(json.dumps(summary, indent=2) if args.json else render_text(summary), flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
