"""End to end: the offline-member jobs of chat messages are done by a consumer group across the servers'
workers, and the jobs a worker had read when it was killed with SIGKILL are taken over by the others.

Servers A and B (the Procfile command, one worker each) share the private Redis. B's worker is stopped
(SIGSTOP) while its read of the job stream is blocked in Redis, so the next jobs go to it and stay pending;
then it is killed (SIGKILL). The member who was away must still get every notification.
"""
from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from tests.helpers.e2e_cluster import group_members
from tests.helpers.e2e_kit import Clients, Cluster, mint, new_id, wait_until

pytestmark = [pytest.mark.e2e]

GROUP = "offline-notify"


@pytest.fixture(scope="module")
def cluster_overrides() -> dict[str, str | None]:
    """Jobs left unacknowledged are taken over after one second."""
    return {"OFFLINE_JOBS_CLAIM_AFTER": "1"}


def worker_pid(cluster: Cluster, master: int) -> int:
    (worker,) = [pid for pid in group_members(master) if pid != master]
    return worker


def consumer_of(cluster: Cluster, pid: int) -> str:
    """The consumer name of the worker with ``pid`` (``host:pid:random``), once it has read the stream."""

    def named() -> str | None:
        consumers = cluster.redis.xinfo_consumers(cluster.key("chat-offline-jobs"), GROUP)
        return next((c["name"] for c in consumers if c["name"].split(":")[-2] == str(pid)), None)

    return str(wait_until(named, 15, f"the worker {pid} joins the consumer group"))


def pending_of(cluster: Cluster, consumer: str) -> int:
    pending = cluster.redis.xpending(cluster.key("chat-offline-jobs"), GROUP)
    return int(dict((c["name"], c["pending"]) for c in pending["consumers"]).get(consumer, 0))


@pytest.fixture
def stopped_worker_b(cluster: Cluster) -> Iterator[int]:
    """B's worker pid; whatever the test did, it is not left stopped."""
    pid = worker_pid(cluster, cluster.b.pid)
    yield pid
    try:
        os.kill(pid, signal.SIGCONT)
    except ProcessLookupError:
        pass


def test_jobs_of_a_killed_worker_are_taken_over(cluster: Cluster, clients: Clients, stopped_worker_b: int) -> None:
    users = mint(cluster, "sender", "away")
    room = new_id("r")
    away = clients.connect(users["away"], cluster.a)
    assert away.call("chat:join", {"roomId": room})["roomId"] == room
    assert clients.disconnect(away)
    sender = clients.connect(users["sender"], cluster.a)
    sender.call("chat:join", {"roomId": room})
    consumer_b = consumer_of(cluster, stopped_worker_b)
    consumer_of(cluster, worker_pid(cluster, cluster.a.pid))

    # Redis serves blocked readers in turn: while B's read is still blocked, one of the next jobs is B's.
    sent = 0
    for _ in range(10):
        os.kill(stopped_worker_b, signal.SIGSTOP)
        for _ in range(3):
            sender.call("chat:message", {"roomId": room, "content": f"m{sent}"})
            sent += 1
            if pending_of(cluster, consumer_b):
                break
        if pending_of(cluster, consumer_b):
            break
        os.kill(stopped_worker_b, signal.SIGCONT)  # its read timed out: let it block again
        time.sleep(0.3)
    stranded = pending_of(cluster, consumer_b)
    assert stranded >= 1, "no job ever reached B's worker"

    os.kill(stopped_worker_b, signal.SIGKILL)

    unread = cluster.key(f"notifications-unread:{users['away'].id}")
    wait_until(lambda: cluster.redis.scard(unread) == sent, 20, f"{sent} notifications stored for the away member")
    wait_until(
        lambda: cluster.redis.xpending(cluster.key("chat-offline-jobs"), GROUP)["pending"] == 0,
        10,
        "every job acknowledged",
    )
    assert pending_of(cluster, consumer_b) == 0, "the dead worker's jobs were claimed"
    logs = cluster.a.log_text() + cluster.b.log_text()
    assert "took over" in logs and "left unacknowledged by a worker" in logs
