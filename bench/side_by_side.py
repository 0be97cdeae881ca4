"""Side by side: realtime (gunicorn, ``gunicorn.conf.py``) against a reference Node Socket.IO 4.8 server.

Run by hand (figures, never pass/fail)::

    .venv/bin/python bench/side_by_side.py [--scenario a|b|c|d|e] [--workers 1|2] [--repeat 3] [--json PATH]

In one run, on 127.0.0.1 only and bounded in time: a private ``redis-server`` (``bench/support.py``), one
``flask token create`` for every client (sessions in that Redis, tokens signed with a random secret), then
for each repeat and each server: start the server fresh (realtime: ``gunicorn -c gunicorn.conf.py wsgi:app``
with ``WEB_CONCURRENCY=1``, websocket only; ``--workers 2``: two such processes sharing the Redis, the
clients split between them; Node: ``bench/node/reference_server.js``, one or two processes with the Redis
adapter), drive it with ``bench/node/load.js`` (the real socket.io-client) in ``--client-procs`` Node processes
(``bench/load_group.py``), read utime+stime of the server's
processes and of ``redis-server`` from ``/proc`` right before and after the measured window, stop it.
Medians over the repeats, ratios realtime/Node, a markdown table on stdout, everything in ``--json``.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from load_group import LoadGroup
from support import (
    REPO_ROOT,
    BenchError,
    BenchRedis,
    BenchServer,
    NodeReference,
    free_port,
    mint_tokens,
    proc_children,
    proc_cpu_seconds,
    proc_rss_kb,
)

NODE_DIR = Path(__file__).resolve().parent / "node"
KEY_PREFIX = "rt:"
SERVERS = ("realtime", "node")

#: Scenario presets (issue 9); every figure can be overridden by its flag.
SCENARIOS: dict[str, dict[str, Any]] = {
    "a": {"clients": 1000, "rooms": 10, "room_size": 100, "senders": 50, "rate": 20000, "batch_size": 200,
          "about": "1K clients, 10 rooms x 100, 50 senders, ~20K deliveries/s"},
    "b": {"clients": 5000, "rooms": 10, "room_size": 500, "senders": 10, "rate": 20000, "batch_size": 0,
          "about": "5K clients, 10 rooms x 500, joins as a storm, 10 senders, ~20K deliveries/s"},
    "c": {"clients": 10000, "rooms": 10, "room_size": 500, "senders": 10, "rate": 20000, "batch_size": 500,
          "about": "(b)'s load (10 rooms x 500, 10 senders) with 10K connected clients (5K in no room)"},
    "d": {"clients": 10000, "rooms": 0, "room_size": 0, "senders": 0, "rate": 0, "batch_size": 500,
          "about": "idle sockets on one worker: RSS per socket, connect time"},
    "e": {"clients": 1000, "rooms": 10, "room_size": 100, "senders": 50, "rate": 2000, "batch_size": 200,
          "about": "saturation ramp, one worker: highest deliveries/s with loss 0 and p99 < 50 ms"},
}


def log(message: str) -> None:
    """Progress on stderr (stdout carries only the table)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Cluster:
    """The server processes of one measurement: 1 or 2 gunicorn masters (with their workers) or Node processes."""

    def __init__(self, kind: str, workers: int, env: dict[str, str | None], run_dir: Path, tag: str) -> None:
        self.kind = kind
        self.members: list[BenchServer | NodeReference] = []
        for k in range(workers):
            name = f"{tag}-{k}"
            if kind == "realtime":
                self.members.append(BenchServer(free_port(), env, run_dir, name=name))
            else:
                node_env = {"REDIS_URL": env["REDIS_URL"], "JWT_SECRET": env["JWT_SECRET"], "KEY_PREFIX": KEY_PREFIX,
                            "TRANSPORTS": "websocket", "HISTORY": env["CHAT_JOIN_HISTORY"],
                            "CHANNEL": "socket.io-bench"}
                self.members.append(NodeReference(free_port(), node_env, run_dir, name=name))

    @property
    def urls(self) -> list[str]:
        """Where the clients connect, one URL per process."""
        return [member.url for member in self.members]

    def start(self) -> Cluster:
        """Start every process and wait until each answers ``/healthz``."""
        for member in self.members:
            member.start(60.0)
        return self

    def pids(self) -> list[int]:
        """Every process serving sockets: gunicorn masters and their workers, or the Node processes."""
        pids = []
        for member in self.members:
            pids.append(member.pid)
            if self.kind == "realtime":
                pids.extend(proc_children(member.pid))
        return pids

    def socket_pids(self) -> list[int]:
        """The processes holding the sockets: gunicorn workers, or the Node processes."""
        if self.kind == "node":
            return [member.pid for member in self.members]
        return [pid for member in self.members for pid in proc_children(member.pid)]

    def stop(self) -> None:
        """Stop every process (bounded)."""
        for member in self.members:
            with contextlib.suppress(Exception):
                member.stop()


def replaced(cluster: Cluster, before: list[int]) -> None:
    """Raise when a socket-holding process of ``before`` is gone (e.g. gunicorn killed a worker after its
    ``timeout`` and started another): RSS and CPU read from those pids no longer mean anything."""
    now = cluster.socket_pids()
    if sorted(now) != sorted(before):
        logs = ", ".join(str(getattr(m, "log_path", "")) for m in cluster.members)
        raise BenchError(f"the {cluster.kind} processes holding the sockets changed from {before} to {now} during "
                         f"the measurement (a worker was killed and replaced); see {logs}")


def cpu_of(pids: list[int]) -> float:
    """Summed utime+stime (s) of ``pids`` that still exist."""
    return sum(v for v in (proc_cpu_seconds(pid) for pid in pids) if v is not None)


def rss_of(pids: list[int]) -> int:
    """Summed VmRSS (KiB) of ``pids`` that still exist."""
    return sum(v for v in (proc_rss_kb(pid) for pid in pids) if v is not None)


def measure(kind: str, cfg: dict[str, Any], ctx: dict[str, Any], tag: str) -> dict[str, Any]:
    """One measurement of one server: start it, load it, read /proc around the window, stop it."""
    cluster = Cluster(kind, cfg["workers"], ctx["env"], ctx["run_dir"], tag)
    group: LoadGroup | None = None
    result: dict[str, Any] = {"server": kind, "workers": cfg["workers"], "rate_target": cfg["rate"],
                              "loadavg_at_start": [round(v, 2) for v in os.getloadavg()]}
    try:
        cluster.start()
        time.sleep(1.0)
        socket_pids = cluster.socket_pids()
        rss_before = rss_of(socket_pids)
        run_id = f"r{secrets.token_hex(3)}"
        args = ["--urls", ",".join(cluster.urls), "--tokens-file", str(ctx["tokens_file"]),
                "--clients", str(cfg["clients"]), "--rooms", str(cfg["rooms"]), "--room-size", str(cfg["room_size"]),
                "--rate", str(cfg["rate"]), "--duration-s", str(cfg["duration"]),
                "--connect-timeout-s", str(cfg["connect_timeout"]), "--run-id", run_id,
                "--max-lifetime-s", str(int(cfg["connect_timeout"] + cfg["settle"] + cfg["quiet_timeout"] + cfg["duration"]
                                             + cfg["drain"] + 120))]
        group = LoadGroup(args, cfg["senders"], cfg["batch_size"], cfg["client_procs"], ctx["run_dir"], tag)
        connected = group.connected(cfg["connect_timeout"] + 30)
        result["connect"] = {k: connected.get(k) for k in ("connected", "joined", "failed", "pending", "connectedNow",
                                                           "disconnects", "connectAllMs", "connectMs", "joinMs",
                                                           "connectErrors")}
        log(f"  {kind}: {connected['connected']}/{cfg['clients']} connected, {connected['joined']} joined in "
            f"{connected['connectAllMs'] / 1000:.1f}s, failures {connected['failed']} {connected['connectErrors']}, "
            f"still pending at the bound {connected.get('pending')}, dropped since {connected.get('disconnects')}")
        if cfg["senders"] == 0:
            time.sleep(cfg["settle"])
            rss_after = rss_of(socket_pids)
            replaced(cluster, socket_pids)
            result["rss_before_kb"] = rss_before
            result["rss_after_kb"] = rss_after
            result["rss_per_socket_kb"] = round((rss_after - rss_before) / max(1, connected["connectedNow"]), 2)
            return result
        pids = cluster.pids()
        result["quiet_after_s"] = wait_quiet(pids + [ctx["redis_pid"]], cfg["settle"], cfg["quiet_timeout"])
        cpu_server_0, cpu_redis_0 = cpu_of(pids), cpu_of([ctx["redis_pid"]])
        cpu_clients_0 = [cpu_of([pid]) for pid in group.pids]
        done = group.run(connected["roomMembers"], cfg["duration"], cfg["drain"])
        cpu_server_1, cpu_redis_1 = cpu_of(pids), cpu_of([ctx["redis_pid"]])
        cpu_clients = [cpu_of([pid]) - before for pid, before in zip(group.pids, cpu_clients_0, strict=True)]
        replaced(cluster, socket_pids)
        report = group.report(60)
        window_s = (done["sendWindowMs"] + done["drainMs"]) / 1000.0
        delivered = report["received"] - report["late"]
        cpu_total = (cpu_server_1 - cpu_server_0) + (cpu_redis_1 - cpu_redis_0)
        result.update({
            "window_s": round(window_s, 2),
            "messages_sent": report["sent"],
            "deliveries_expected": report["expected"],
            "deliveries": delivered,
            "deliveries_per_s": round(delivered / window_s, 1) if window_s else None,
            "loss": round(1 - delivered / report["expected"], 5) if report["expected"] else None,
            "lost_messages": report["lostMessages"],
            "latency_ms": report["latencyMs"],
            "ack_ms": report["ackMs"],
            "first_delivery_ms": report.get("firstDeliveryMs"),
            "last_delivery_ms": report.get("lastDeliveryMs"),
            "ack_errors": report["ackErrors"],
            "disconnects": report["disconnects"],
            "cpu_server_s": round(cpu_server_1 - cpu_server_0, 3),
            "cpu_redis_s": round(cpu_redis_1 - cpu_redis_0, 3),
            # The clients' processes, not counted in the server's figures: their CPU per delivery shows
            # whether the clients, rather than the server, bound the latency.
            "cpu_client_us_per_delivery": round(sum(cpu_clients) * 1e6 / delivered, 2) if delivered else None,
            "client_procs": len(cpu_clients),
            # Their CPU over the window in cores, and the busiest one's share of a core: near 1, the
            # latencies are mostly that process's own queue.
            "clients_busy": round(sum(cpu_clients) / window_s, 2) if window_s else None,
            "clients_busiest": round(max(cpu_clients) / window_s, 2) if window_s else None,
            "cpu_us_per_delivery": round(cpu_total * 1e6 / delivered, 2) if delivered else None,
            "senders": report["senders"],
        })
        log(f"  {kind} (idle after {result['quiet_after_s']} s): {result['deliveries_per_s']}/s, loss {result['loss']}, p50/p99 "
            f"{report['latencyMs'].get('p50')}/{report['latencyMs'].get('p99')} ms, "
            f"{result['cpu_us_per_delivery']} us/delivery (server {result['cpu_server_s']} s, redis "
            f"{result['cpu_redis_s']} s; clients {result['cpu_client_us_per_delivery']} us/delivery)")
        return result
    except BenchError as exc:
        result["error"] = str(exc)
        log(f"  {kind}: {exc}")
        return result
    finally:
        if group is not None:
            group.close()
        cluster.stop()


def wait_quiet(pids: list[int], settle: float, timeout: float, busy: float = 0.1) -> float:
    """Sleep ``settle`` s, then until ``pids`` use less than ``busy`` of a core over half a second (the join
    backlog is done), at most ``timeout`` s more; the seconds waited."""
    started = time.monotonic()
    time.sleep(settle)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = cpu_of(pids)
        time.sleep(0.5)
        if cpu_of(pids) - before < busy * 0.5:
            break
    return round(time.monotonic() - started, 2)


def median(values: list[Any]) -> Any:
    """Median of the numbers among ``values`` (None when there are none)."""
    numbers = [v for v in values if isinstance(v, int | float)]
    return round(statistics.median(numbers), 3) if numbers else None


FIGURES = (
    ("deliveries/s", lambda r: r.get("deliveries_per_s")),
    ("loss", lambda r: r.get("loss")),
    ("p50 ms", lambda r: (r.get("latency_ms") or {}).get("p50")),
    ("p99 ms", lambda r: (r.get("latency_ms") or {}).get("p99")),
    ("CPU µs/delivery", lambda r: r.get("cpu_us_per_delivery")),
    ("clients' CPU µs/delivery", lambda r: r.get("cpu_client_us_per_delivery")),
    ("clients' processes busy (cores)", lambda r: r.get("clients_busy")),
    ("busiest clients' process (share of a core)", lambda r: r.get("clients_busiest")),
    ("RSS KB/idle socket", lambda r: r.get("rss_per_socket_kb")),
    ("connect all s", lambda r: (r.get("connect") or {}).get("connectAllMs", 0) / 1000 or None),
    ("connect p99 ms", lambda r: ((r.get("connect") or {}).get("connectMs") or {}).get("p99")),
    ("sockets connected after the connect phase", lambda r: (r.get("connect") or {}).get("connectedNow")),
    ("failed connects", lambda r: (r.get("connect") or {}).get("failed")),
    ("connects pending at the bound", lambda r: (r.get("connect") or {}).get("pending")),
    ("disconnects", lambda r: r.get("disconnects")),
)


def summarize(runs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per figure: the median per server and the ratio realtime/Node."""
    table: dict[str, dict[str, Any]] = {}
    for name, pick in FIGURES:
        row = {server: median([pick(r) for r in results]) for server, results in runs.items()}
        if all(row.get(s) is None for s in runs):
            continue
        ours, theirs = row.get("realtime"), row.get("node")
        row["ratio"] = round(ours / theirs, 2) if isinstance(ours, int | float) and theirs else None
        table[name] = row
    return table


def markdown(title: str, table: dict[str, dict[str, Any]], repeat: int) -> str:
    """The summary as a markdown table."""
    lines = [f"### {title} (median of {repeat})", "", "| figure | Node Socket.IO | realtime | realtime/Node |",
             "| --- | --- | --- | --- |"]
    for name, row in table.items():
        ratio = f"{row['ratio']}×" if row.get("ratio") is not None else "–"
        cells = ["–" if row.get(server) is None else row[server] for server in ("node", "realtime")]
        lines.append(f"| {name} | {cells[0]} | {cells[1]} | {ratio} |")
    return "\n".join(lines)


def ramp(kind: str, cfg: dict[str, Any], ctx: dict[str, Any], tag: str) -> dict[str, Any]:
    """Scenario (e): raise the rate by ``--ramp-factor`` until loss > 0 or p99 >= 50 ms; the last rate that held."""
    steps, best, rate = [], None, cfg["rate"]
    while rate <= cfg["ramp_max"]:
        step = measure(kind, {**cfg, "rate": rate}, ctx, f"{tag}-{rate}")
        steps.append(step)
        p99 = (step.get("latency_ms") or {}).get("p99")
        if step.get("error") or step.get("loss") or p99 is None or p99 >= 50:
            break
        best = step
        rate = int(rate * cfg["ramp_factor"])
    return {**(best or {"server": kind}), "ceiling_deliveries_per_s": best and best.get("deliveries_per_s"),
            "steps": steps}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line: a scenario preset and the flags that override it."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="a", help="preset (default a)")
    parser.add_argument("--workers", type=int, choices=[1, 2], default=1,
                        help="server processes: 2 = two gunicorn (or Node) processes sharing the Redis")
    parser.add_argument("--servers", default="realtime,node", help="which servers, comma-separated")
    parser.add_argument("--repeat", type=int, default=1, help="measurements per server; medians are reported")
    parser.add_argument("--clients", type=int, help="client sockets (preset)")
    parser.add_argument("--rooms", type=int, help="chat rooms (preset)")
    parser.add_argument("--room-size", type=int, help="sockets per room (preset)")
    parser.add_argument("--senders", type=int, help="sending sockets (preset; 0 = idle sockets)")
    parser.add_argument("--rate", type=int, help="target deliveries/s (preset; the ramp's first step in e)")
    parser.add_argument("--batch-size", type=int, help="connects per batch, 0 = all at once (preset)")
    parser.add_argument("--duration", type=float, default=15.0, help="measured send window, s (default 15)")
    parser.add_argument("--client-procs", type=int, default=2,
                        help="Node processes sharing the client sockets (default 2)")
    parser.add_argument("--drain", type=float, default=10.0, help="bound on in-flight deliveries after it, s")
    parser.add_argument("--settle", type=float, default=3.0, help="pause after connecting, s (default 3)")
    parser.add_argument("--quiet-timeout", type=float, default=60.0,
                        help="then wait at most this long until server and Redis are idle, s (default 60)")
    parser.add_argument("--connect-timeout", type=float, default=180.0, help="bound on the connect phase, s")
    parser.add_argument("--ramp-factor", type=float, default=1.5, help="(e) rate factor per step")
    parser.add_argument("--ramp-max", type=int, default=200000, help="(e) highest rate tried")
    parser.add_argument("--json", type=Path, help="write every measurement and the summary here")
    parser.add_argument("--log-dir", type=Path, help="server and driver logs (default: a new /tmp folder)")
    return parser.parse_args(argv)


def config(args: argparse.Namespace) -> dict[str, Any]:
    """The scenario preset with the flags applied."""
    cfg = dict(SCENARIOS[args.scenario])
    for key in ("clients", "rooms", "room_size", "senders", "rate", "batch_size"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    cfg.update(workers=args.workers, client_procs=max(1, args.client_procs), duration=args.duration, drain=args.drain, settle=args.settle,
               quiet_timeout=args.quiet_timeout,
               connect_timeout=args.connect_timeout, ramp_factor=args.ramp_factor, ramp_max=args.ramp_max)
    if args.scenario == "d" and args.workers != 1:
        raise BenchError("scenario d measures one worker: drop --workers 2")
    return cfg


def describe(cfg: dict[str, Any]) -> str:
    """The load actually run (the preset with its flags), in a few words."""
    workers = f"{cfg['workers']} worker{'s' if cfg['workers'] > 1 else ''}"
    joins = "all at once" if cfg["batch_size"] == 0 else f"in batches of {cfg['batch_size']}"
    if cfg["senders"] == 0:
        return f"{cfg['clients']} idle sockets connecting {joins}, {workers}"
    return (f"{cfg['clients']} clients, {cfg['rooms']} rooms × {cfg['room_size']}, {cfg['senders']} senders, "
            f"target {cfg['rate']} deliveries/s, joins {joins}, {workers}")


def raise_nofile(needed: int) -> int:
    """Raise the soft RLIMIT_NOFILE (servers and Node inherit it) as far as the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def versions() -> dict[str, str | None]:
    """Versions of what was measured."""
    def pkg(name: str) -> str | None:
        with contextlib.suppress(OSError, ValueError):
            return json.loads((NODE_DIR / "node_modules" / name / "package.json").read_text())["version"]
        return None

    node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False).stdout.strip()
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                          check=False).stdout.strip()
    status = subprocess.run(["git", "status", "--porcelain", "--", "realtime", "gunicorn.conf.py", "wsgi.py"],
                            cwd=REPO_ROOT, capture_output=True, text=True, check=False).stdout.splitlines()
    return {"node": node, "socket.io": pkg("socket.io"), "@socket.io/redis-adapter": pkg("@socket.io/redis-adapter"),
            "socket.io-client": pkg("socket.io-client"), "python": sys.version.split()[0], "head": head or None,
            "server_files_uncommitted": len(status)}


def main(argv: list[str] | None = None) -> int:
    """Run every measurement, print the table, write the JSON; stop everything it started, also on errors."""
    args = parse_args(argv)
    cfg = config(args)
    servers = [s for s in args.servers.split(",") if s]
    if not servers or any(s not in SERVERS for s in servers):
        raise BenchError(f"--servers {args.servers!r}: choose among {', '.join(SERVERS)}")
    if not (NODE_DIR / "node_modules" / "socket.io-client").is_dir():
        raise BenchError(f"{NODE_DIR}/node_modules is missing: run `make bench` (npm ci in bench/node)")
    run_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="realtime-side-by-side-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    log(f"scenario {args.scenario}: {describe(cfg)}; logs in {run_dir}")
    nofile = raise_nofile(2 * cfg["clients"] + 4096)
    redis_server = BenchRedis().start()
    tokens_file = run_dir / "tokens.txt"
    runs: dict[str, list[dict[str, Any]]] = {s: [] for s in servers}
    try:
        env: dict[str, str | None] = {
            "APP_ENV": "local", "REDIS_URL": redis_server.url, "MESSAGE_QUEUE_URL": None, "KEY_PREFIX": KEY_PREFIX,
            "SOCKETIO_CHANNEL": "realtime-bench", "JWT_SECRET": secrets.token_hex(32), "LOG_LEVEL": "WARNING",
            "LOG_FORMAT": "text", "SOCKET_TRANSPORTS": "websocket", "WEB_CONCURRENCY": "1",
            "WORKER_CONNECTIONS": str(max(20000, cfg["clients"] + 1000)), "EVENT_RATE": "1000",
            "EVENT_BURST": "2000", "SESSION_POLICY": "single", "CHAT_JOIN_HISTORY": "50",
        }
        started = time.monotonic()
        tokens = mint_tokens(env, [f"bench-u{i:05d}" for i in range(cfg["clients"])])
        fd = os.open(tokens_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("\n".join(tokens) + "\n")
        log(f"{len(tokens)} tokens minted in {time.monotonic() - started:.1f}s; RLIMIT_NOFILE {nofile}")
        ctx = {"env": env, "run_dir": run_dir, "tokens_file": tokens_file, "redis_pid": redis_server.pid}
        for k in range(args.repeat):
            order = servers if k % 2 == 0 else servers[::-1]
            for server in order:
                log(f"repeat {k + 1}/{args.repeat}: {server}")
                tag = f"{server}-{k + 1}"
                runs[server].append(ramp(server, cfg, ctx, tag) if args.scenario == "e" else measure(server, cfg, ctx, tag))
    finally:
        with contextlib.suppress(OSError):
            tokens_file.unlink()
        redis_server.stop()
    table = summarize(runs)
    if args.scenario == "e":
        ceiling = {s: median([r.get("ceiling_deliveries_per_s") for r in runs[s]]) or f"< {cfg['rate']}"
                   for s in servers}
        table = {"ceiling deliveries/s": {**ceiling, "ratio": None}, **table}
        if all(isinstance(ceiling.get(s), int | float) for s in SERVERS):
            table["ceiling deliveries/s"]["ratio"] = round(ceiling["realtime"] / ceiling["node"], 2)
    title = f"Scenario {args.scenario}: {describe(cfg)}"
    print(markdown(title, table, args.repeat))
    if args.json is not None:
        payload = {"scenario": args.scenario, "config": cfg, "repeat": args.repeat, "versions": versions(),
                   "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpus": os.cpu_count(),
                   "loadavg_at_end": os.getloadavg(), "summary": table, "runs": runs, "log_dir": str(run_dir)}
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        log(f"JSON written to {args.json}")
    return 0


def _interrupt(signum: int, frame: Any) -> None:
    """SIGTERM behaves like Ctrl-C, so that every ``finally`` stops what it started."""
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        sys.exit(main())
    except BenchError as exc:
        log(f"error: {exc}")
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
