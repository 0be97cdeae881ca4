"""``/metrics`` under real traffic: two gunicorn processes sharing Redis, and one process with two workers.

Counters are compared before and after a known amount of traffic; waits are bounded polls of the scrape
(a broadcast is recorded as it is written, which may be a moment after the client saw it).
"""
from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from tests.helpers.e2e_cluster import GunicornProcess
from tests.helpers.e2e_kit import Clients, Cluster, Sock, mint, new_id, ok, wait_until
from tests.helpers.metrics_scrape import Samples, delta, names, parse, total

pytestmark = pytest.mark.usefixtures("no_server_errors")

#: Chat messages sent from A and from B in the cross-server test.
FROM_A, FROM_B = 5, 3


def scrape(server: GunicornProcess) -> Samples:
    # A new connection per scrape (no keep-alive): with several workers, any of them may answer.
    response = requests.get(f"{server.url}/metrics", timeout=5, headers={"Connection": "close"})
    assert response.status_code == 200, response.text
    return parse(response.text)


Expected = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def settled(server: GunicornProcess, before: Samples, expected: Expected, timeout: float = 10.0) -> Samples:
    """The scrape of ``server`` once every ``(name, labels)`` moved by its expected amount.

    :raises AssertionError: after ``timeout`` s, showing how far each one moved.
    """

    def moves(now: Samples) -> Expected:
        return {key: delta(before, now, key[0], **dict(key[1])) for key in expected}

    def condition() -> Samples | None:
        now = scrape(server)
        return now if moves(now) == expected else None

    try:
        return wait_until(condition, timeout)
    except AssertionError:
        assert moves(scrape(server)) == expected, f"server {server.name}"
        raise


def join(sock: Sock, room: str) -> None:
    assert ok(sock.emit("chat:join", {"roomId": room}))["roomId"] == room


def chat_between_servers(cluster: Cluster, clients: Clients) -> dict[str, Samples]:
    """x on A and y on B share a room; x sends FROM_A and y FROM_B messages, and both get every one.

    :return: each server's scrape from before the messages, by server name.
    """
    users = mint(cluster, "x", "y")
    room = new_id("metrics")
    x = clients.connect(users["x"], cluster.a)
    y = clients.connect(users["y"], cluster.b)
    join(x, room)
    join(y, room)
    before = {server.name: scrape(server) for server in cluster.servers}
    sent = [ok(x.emit("chat:message", {"roomId": room, "content": f"a{i}"}))["id"] for i in range(FROM_A)]
    sent += [ok(y.emit("chat:message", {"roomId": room, "content": f"b{i}"}))["id"] for i in range(FROM_B)]
    for sock in (x, y):
        wait_until(lambda s=sock: {p["id"] for p in s.payloads("chat:new_message")} >= set(sent), 10,
                   what=f"{sock.id} got every message")
    return before


def test_events_move_the_counters_of_the_server_that_handled_them(cluster: Cluster, clients: Clients) -> None:
    before = chat_between_servers(cluster, clients)

    for server, handled in ((cluster.a, FROM_A), (cluster.b, FROM_B)):
        message = (("event", "chat:message"),)
        after = settled(server, before[server.name], {
            ("realtime_events_received_total", message): handled,
            ("realtime_handler_seconds_count", message): handled,
            ("realtime_redis_round_trips_count", message): handled,
            ("realtime_event_errors_total", ()): 0,
        })
        # Every chat:message took at least one Redis round trip (the append), and at most the rule's three.
        trips = delta(before[server.name], after, "realtime_redis_round_trips_sum", event="chat:message")
        assert handled <= trips <= 3 * handled, trips
        assert total(after, "realtime_connected_sockets") >= 1
        # gunicorn.conf.py gave the master a multiprocess directory: the per-process collectors are absent.
        assert "process_cpu_seconds_total" not in names(after)


def test_broadcasts_move_emitted_fanout_and_delivery_on_every_server(cluster: Cluster, clients: Clients) -> None:
    before = chat_between_servers(cluster, clients)

    everyone = FROM_A + FROM_B
    for server, sent in ((cluster.a, FROM_A), (cluster.b, FROM_B)):
        settled(server, before[server.name], {
            # Counted where it is emitted: once per broadcast, on the server that handled the message.
            ("realtime_events_emitted_total", (("event", "chat:new_message"),)): sent,
            # Every message is one broadcast written to one socket of each server (x on A, y on B).
            ("realtime_fanout_recipients_count", ()): everyone,
            ("realtime_fanout_recipients_sum", ()): everyone,
            ("realtime_delivery_seconds_count", ()): everyone,
        })


def worker_values(directory: Path, scratch: Path) -> dict[str, Samples]:
    """Each worker's own samples (by pid), read from its files in the multiprocess directory."""
    by_pid: dict[str, list[Path]] = {}
    for path in directory.glob("*.db"):
        by_pid.setdefault(path.stem.rsplit("_", 1)[1], []).append(path)
    values = {}
    for pid, files in by_pid.items():
        own = scratch / pid
        shutil.rmtree(own, ignore_errors=True)
        own.mkdir(parents=True)
        for path in files:
            shutil.copy(path, own / path.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(own))
        values[pid] = parse(generate_latest(registry).decode())
    return values


def test_two_workers_answer_the_sum_of_both(
    cluster: Cluster, clients: Clients, extra_servers: Callable[..., GunicornProcess], tmp_path: Path
) -> None:
    directory = tmp_path / "prometheus"
    server = extra_servers(
        "two-workers",
        env={**cluster.env, "WEB_CONCURRENCY": "2", "SOCKET_TRANSPORTS": "websocket",
             "PROMETHEUS_MULTIPROC_DIR": str(directory)},
    )
    users = mint(cluster, *(f"u{i}" for i in range(40)))
    socks: list[Sock] = []

    def on_both_workers() -> bool:
        per_worker = worker_values(directory, tmp_path / "scratch")
        live = [total(v, "realtime_connected_sockets") for v in per_worker.values()]
        return len([n for n in live if n > 0]) == 2

    # The kernel hands connections to whichever worker accepts first: open sockets until both have some.
    for user in users.values():
        socks.append(clients.connect(user, server))
        if len(socks) >= 4 and on_both_workers():
            break
    assert on_both_workers(), "40 sockets all landed on one worker"
    for sock in socks:
        ok(sock.emit("presence:check", {"userIds": [sock.user.id]}))
    per_worker = worker_values(directory, tmp_path / "scratch")
    assert len(per_worker) == 2, sorted(per_worker)
    assert all(total(v, "realtime_connected_sockets") < len(socks) for v in per_worker.values())

    # Whichever worker answers, the scrape counts the sockets and events of both: a worker writes the counts of
    # the message path at most a second after the events (realtime.metrics.tally), the other one's then show.
    wait_until(lambda: total(scrape(server), "realtime_events_received_total", event="presence:check") == len(socks),
               5, what="both workers' event counts written")
    for _ in range(12):
        samples = scrape(server)
        assert total(samples, "realtime_connected_sockets") == len(socks)
        assert total(samples, "realtime_events_received_total", event="presence:check") == len(socks)

    # A worker killed outright: gunicorn's child_exit drops its sockets from the gauge; its counters stay.
    victim = next(pid for pid, v in per_worker.items() if total(v, "realtime_connected_sockets") > 0)
    left = len(socks) - total(per_worker[victim], "realtime_connected_sockets")
    os.kill(int(victim), signal.SIGKILL)
    wait_until(lambda: (s := scrape(server)) and total(s, "realtime_connected_sockets") == left
               and total(s, "realtime_events_received_total", event="presence:check") == len(socks), 15,
               what=f"the killed worker's sockets counted out, {left} left, its events still counted")


def test_a_recovered_reconnect_is_counted_by_result(cluster: Cluster, clients: Clients) -> None:
    users = mint(cluster, "sub")
    fast = {"reconnectionDelay": 200, "reconnectionDelayMax": 500, "randomizationFactor": 0, "timeout": 3000}
    sub = clients.connect(users["sub"], cluster.a, reconnection=True, options=fast)
    join(sub, new_id("metrics"))
    before = scrape(cluster.a)

    dropped = clients.nodes.mark()
    clients.nodes.close_transport(sub.id)
    back = sub.wait_type("connect", dropped, timeout=10)

    assert back["recovered"] is True, back
    settled(cluster.a, before, {
        ("realtime_recovery_attempts_total", (("result", "recovered"),)): 1,
        ("realtime_recovery_attempts_total", ()): 1,
        # The socket is counted out and in again: still one.
        ("realtime_connected_sockets", ()): 0,
    })
