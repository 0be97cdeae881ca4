"""The clients of one measurement: ``bench/node/load.js`` in one or more Node processes, merged.

One Node process running every client socket becomes the bottleneck long before the servers do (on a 2-core
machine it is busy a whole core at 20K deliveries/s), so its own event-loop queue ends up in the latencies it
reports. ``LoadGroup`` splits the sockets over ``procs`` processes (socket *i* in process
``floor(i / rooms) % procs``, so that each holds members of every room), lets the first one send, and
merges what they report: counts summed, latencies from the raw values of every process (each receiver takes
its latency from the send time in the message, on the machine's wall clock).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from support import REPO_ROOT, BenchError

LOAD_SCRIPT = Path(__file__).resolve().parent / "node" / "load.js"


def percentiles(values: list[float]) -> dict[str, Any]:
    """count, p50, p90, p99 and max, with load.js's rule (the value at rank ceil(p/100 * n))."""
    if not values:
        return {"count": 0}
    ordered = sorted(values)

    def at(p: float) -> float:
        return round(ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)], 2)

    return {"count": len(ordered), "p50": at(50), "p90": at(90), "p99": at(99), "max": round(ordered[-1], 2)}


class LoadDriver:
    """One ``node bench/node/load.js``: JSON lines out, JSON commands in; its own process group."""

    def __init__(self, args: list[str], log_path: Path) -> None:
        self.log_path = log_path
        self._stderr = open(log_path, "ab")  # noqa: SIM115 - closed in close()
        self.process = subprocess.Popen(
            ["node", str(LOAD_SCRIPT), *args], cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self._stderr, start_new_session=True,
        )
        self.messages: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, name="load-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            with contextlib.suppress(ValueError):
                message = json.loads(raw)
                with self._cond:
                    self.messages.append(message)
                    self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def send(self, op: str, **fields: Any) -> None:
        """Write one command; raise when the driver is gone."""
        if self.process.poll() is not None or self.process.stdin is None:
            raise BenchError(f"the load driver exited with {self.process.returncode}; see {self.log_path}")
        self.process.stdin.write((json.dumps({"op": op, **fields}) + "\n").encode())
        self.process.stdin.flush()

    def wait_for(self, kind: str, timeout: float) -> dict[str, Any]:
        """The first message of ``kind``; raise after ``timeout`` s or when the driver exits."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for message in self.messages:
                    if message.get("type") == kind:
                        self.messages.remove(message)
                        return message
                if not self._reader.is_alive() or time.monotonic() > deadline:
                    raise BenchError(f"no {kind!r} from the load driver within {timeout:.0f}s; see {self.log_path}")
                self._cond.wait(timeout=0.5)

    def close(self) -> None:
        """Ask for exit, then SIGTERM, then SIGKILL its process group; bounded (~10 s)."""
        with contextlib.suppress(Exception):
            self.send("exit")
        with contextlib.suppress(Exception):
            if self.process.stdin is not None:
                self.process.stdin.close()
        for sig, wait in ((None, 5.0), (signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
            if sig is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        self._reader.join(timeout=2)
        self._stderr.close()


def _merge_counts(tables: list[dict[str, int]]) -> dict[str, int]:
    merged: dict[str, int] = {}
    for table in tables:
        for key, count in table.items():
            merged[key] = merged.get(key, 0) + count
    return merged


class LoadGroup:
    """``procs`` load drivers sharing the clients; the first one holds the senders."""

    def __init__(self, args: list[str], senders: int, batch_size: int, procs: int, run_dir: Path, tag: str) -> None:
        self.drivers: list[LoadDriver] = []
        per_batch = max(1, batch_size // procs) if batch_size > 0 else 0
        try:
            for proc in range(procs):
                own = [*args, "--procs", str(procs), "--proc", str(proc), "--batch-size", str(per_batch),
                       "--senders", str(senders if proc == 0 else 0)]
                self.drivers.append(LoadDriver(own, run_dir / f"load-{tag}-{proc}.log"))
        except OSError:
            self.close()
            raise

    @property
    def pids(self) -> list[int]:
        """The clients' processes."""
        return [driver.process.pid for driver in self.drivers]

    def connected(self, timeout: float) -> dict[str, Any]:
        """Every driver's connect phase, merged: counts summed, the slowest ``connectAllMs``, percentiles of all."""
        parts = [driver.wait_for("connected", timeout) for driver in self.drivers]
        merged: dict[str, Any] = {key: sum(p[key] for p in parts)
                                  for key in ("clients", "connected", "joined", "failed", "pending", "connectedNow",
                                              "disconnects")}
        merged["connectAllMs"] = max(p["connectAllMs"] for p in parts)
        merged["connectMs"] = percentiles([v for p in parts for v in p["connectMsRaw"]])
        merged["joinMs"] = percentiles([v for p in parts for v in p["joinMsRaw"]])
        merged["connectErrors"] = _merge_counts([p["connectErrors"] for p in parts])
        merged["roomMembers"] = [sum(column) for column in zip(*(p["roomMembers"] for p in parts), strict=True)]
        return merged

    def run(self, room_members: list[int], duration: float, drain: float) -> dict[str, Any]:
        """Start every driver, wait for the senders' window to end, then until every expected delivery
        arrived or ``drain`` s passed; stop counting. The window's send and drain times (ms)."""
        for driver in self.drivers:
            driver.send("start", roomMembers=room_members)
        sent = self.drivers[0].wait_for("sent", duration + 60)
        ended = time.monotonic()
        while time.monotonic() - ended < drain:
            for driver in self.drivers:
                driver.send("count")
            received = sum(driver.wait_for("count", 30)["received"] for driver in self.drivers)
            if received >= sent["expected"]:
                break
            time.sleep(0.02)
        drain_ms = round((time.monotonic() - ended) * 1000)
        for driver in self.drivers:
            driver.send("stop")
        for driver in self.drivers:
            driver.wait_for("stopped", 30)
        return {"sendWindowMs": sent["sendWindowMs"], "drainMs": drain_ms}

    def report(self, timeout: float) -> dict[str, Any]:
        """Every driver's report, merged into load.js's single-process shape."""
        for driver in self.drivers:
            driver.send("report")
        parts = [driver.wait_for("report", timeout) for driver in self.drivers]
        lead = parts[0]
        expected_by_seq = lead["expectedBySeq"]
        received_by_seq = [0] * len(expected_by_seq)
        first: dict[int, float] = {}
        last: dict[int, float] = {}
        for part in parts:
            for key, (count, first_ms, last_ms) in part["bySeq"].items():
                seq = int(key)
                if seq < len(received_by_seq):
                    received_by_seq[seq] += count
                first[seq] = min(first.get(seq, first_ms), first_ms)
                last[seq] = max(last.get(seq, last_ms), last_ms)
        return {
            "sent": lead["sent"], "expected": lead["expected"],
            "received": sum(p["received"] for p in parts), "late": sum(p["late"] for p in parts),
            "lostMessages": sum(1 for seq, want in enumerate(expected_by_seq) if received_by_seq[seq] < (want or 0)),
            "latencyMs": percentiles([v for p in parts for v in p["latencyMsRaw"]]),
            "ackMs": lead["ackMs"], "ackOk": lead["ackOk"], "ackErrors": lead["ackErrors"],
            "firstDeliveryMs": percentiles(list(first.values())), "lastDeliveryMs": percentiles(list(last.values())),
            "senders": lead["senders"], "msgRate": lead["msgRate"],
            "connectedNow": sum(p["connectedNow"] for p in parts), "disconnects": sum(p["disconnects"] for p in parts),
            "disconnectReasons": _merge_counts([p["disconnectReasons"] for p in parts]),
            "clients_processes": len(parts),
        }

    def close(self) -> None:
        """Close every driver (bounded)."""
        for driver in self.drivers:
            driver.close()
