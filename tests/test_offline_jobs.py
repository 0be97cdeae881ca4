"""Offline-member work off the message path: one small job per message, done by a consumer group in the
workers (acknowledged after the work, taken over from a dead worker, bounded), on both transports."""
from __future__ import annotations

import time
from typing import Any

import gevent
import pytest
import redis
from flask import Flask
from flask_socketio import SocketIOTestClient

from realtime.extensions import socketio
from realtime.stores.offline_jobs import GROUP, Backlog, MemoryOfflineJobs, OfflineJob, RedisOfflineJobs
from tests.conftest import APP_FIXTURES, TokenActions
from tests.helpers.offline_jobs import offline_jobs_done

NOTIFICATION = {"type": "chat_message", "title": "t", "body": "b", "data": {"roomId": "lobby", "senderId": "alice"}}


def connect(app: Flask, user_id: str) -> SocketIOTestClient:
    client = socketio.test_client(app, auth={"token": TokenActions(app).create(user_id)})
    assert client.is_connected(), user_id
    return client


def room_with_offline_members(app: Flask, offline: int) -> SocketIOTestClient:
    """alice online in ``lobby`` with ``offline`` members who joined and disconnected."""
    for index in range(offline):
        member = connect(app, f"m{index}")
        assert member.emit("chat:join", {"roomId": "lobby"}, callback=True)["ok"]
        member.disconnect()
    alice = connect(app, "alice")
    assert alice.emit("chat:join", {"roomId": "lobby"}, callback=True)["ok"]
    return alice


def command_calls(url: str, command: str) -> int:
    stats = redis.Redis.from_url(url).info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


@pytest.fixture
def quick_claim_app(config: dict[str, Any], transport: str, request: pytest.FixtureRequest) -> Flask:
    """``any_app`` whose unacknowledged jobs are taken over after 0.2 s."""
    config["OFFLINE_JOBS_CLAIM_AFTER"] = "0.2"
    return request.getfixturevalue(APP_FIXTURES[transport])


def test_message_path_does_no_per_member_work_in_redis(redis_app: Flask, redis_url: str) -> None:
    services = redis_app.extensions["realtime"]
    alice = room_with_offline_members(redis_app, 30)
    services.offline_jobs.stop()
    jobs = redis.Redis.from_url(redis_url)
    checks, queued = command_calls(redis_url, "zrangebyscore"), jobs.xlen(services.keys.chat_offline_jobs)

    ack = alice.emit("chat:message", {"roomId": "lobby", "content": "hello"}, callback=True)

    assert ack["ok"] is True
    assert command_calls(redis_url, "zrangebyscore") == checks, "no member was checked on the message path"
    assert jobs.xlen(services.keys.chat_offline_jobs) - queued == 1, "one job queued for the 30 members"
    assert services.offline_jobs.backlog() == Backlog(lag=1, pending=0)
    assert services.notifications.unread_count("m0") == 0, "nothing stored before the job runs"

    offline_jobs_done(redis_app)

    # One look-up per member not in the room (all 30 here) and one of the sockets new since the message.
    assert command_calls(redis_url, "zrangebyscore") - checks == 31
    assert all(services.notifications.unread_count(f"m{index}") == 1 for index in range(30))
    assert services.notifications.unread_count("alice") == 0


def test_a_room_found_complete_is_not_compared_again_until_someone_may_be_offline(
    redis_app: Flask, redis_url: str
) -> None:
    """The members/users comparison is O(room size): once per room and change, not per message."""
    services = redis_app.extensions["realtime"]
    services.offline_jobs.stop()
    jobs = redis.Redis.from_url(redis_url)
    alice, bob = connect(redis_app, "alice"), connect(redis_app, "bob")
    for client in (alice, bob):
        assert client.emit("chat:join", {"roomId": "lobby"}, callback=True)["ok"]

    def send() -> tuple[bool, int]:
        """One message: whether it compared the sets, and the jobs it queued."""
        compared, queued = command_calls(redis_url, "sdiff"), jobs.xlen(services.keys.chat_offline_jobs)
        assert alice.emit("chat:message", {"roomId": "lobby", "content": "hi"}, callback=True)["ok"]
        return command_calls(redis_url, "sdiff") > compared, jobs.xlen(services.keys.chat_offline_jobs) - queued

    assert send() == (True, 0), "compared once: everyone is in the room"
    assert [send() for _ in range(5)] == [(False, 0)] * 5, "then not compared again"
    bob.disconnect()
    assert send() == (True, 1), "bob's last socket left the room: compared, and his job queued"
    assert send() == (True, 1), "an incomplete room is compared on every message"
    bob = connect(redis_app, "bob")
    assert bob.emit("chat:join", {"roomId": "lobby"}, callback=True)["ok"]
    assert send() == (True, 0)
    assert send() == (False, 0)
    services.chat.join("lobby", "carol", 0)
    assert send() == (True, 1), "a new member who is not in the room: compared again, her job queued"


def test_job_stores_and_pushes_for_offline_members_only(any_app: Flask) -> None:
    services = any_app.extensions["realtime"]
    pushed: list[tuple[list[str], dict[str, Any]]] = []
    services.register_push_hook(lambda users, notification: pushed.append((sorted(users), notification)))
    alice = room_with_offline_members(any_app, 3)
    bob = connect(any_app, "bob")
    assert bob.emit("chat:join", {"roomId": "lobby"}, callback=True)["ok"]

    message_id = alice.emit("chat:message", {"roomId": "lobby", "content": "hi"}, callback=True)["data"]["id"]
    offline_jobs_done(any_app)

    assert [users for users, _ in pushed] == [["m0", "m1", "m2"]]
    assert pushed[0][1]["id"] == f"chat-{message_id}"
    assert pushed[0][1]["data"] == {"roomId": "lobby", "senderId": "alice", "messageId": message_id}
    assert [services.notifications.unread_count(user) for user in ("m0", "m1", "m2", "bob", "alice")] == [1, 1, 1, 0, 0]
    assert services.offline_jobs.backlog() == Backlog(lag=0, pending=0)


def test_member_back_online_before_the_job_still_gets_the_notification(any_app: Flask) -> None:
    services = any_app.extensions["realtime"]
    alice = room_with_offline_members(any_app, 2)
    services.offline_jobs.stop()

    alice.emit("chat:message", {"roomId": "lobby", "content": "while you were away"}, callback=True)
    gevent.sleep(0.01)
    connect(any_app, "m0")  # m0 comes back after the message, before its job ran: it never got the message
    offline_jobs_done(any_app)

    assert [services.notifications.unread_count(user) for user in ("m0", "m1", "alice")] == [1, 1, 0]


def test_member_back_in_the_room_before_the_job_still_gets_the_notification(any_app: Flask) -> None:
    services = any_app.extensions["realtime"]
    alice = room_with_offline_members(any_app, 2)
    services.offline_jobs.stop()

    alice.emit("chat:message", {"roomId": "lobby", "content": "while you were away"}, callback=True)
    gevent.sleep(0.01)
    back = connect(any_app, "m1")
    assert back.emit("chat:join", {"roomId": "lobby"}, callback=True)["ok"]
    offline_jobs_done(any_app)

    assert [services.notifications.unread_count(user) for user in ("m0", "m1")] == [1, 1]


def test_job_checks_only_members_outside_the_room_or_new_since(redis_app: Flask, redis_url: str) -> None:
    services = redis_app.extensions["realtime"]
    alice = room_with_offline_members(redis_app, 2)
    present = [connect(redis_app, f"p{index}") for index in range(30)]
    for client in present:
        assert client.emit("chat:join", {"roomId": "lobby"}, callback=True)["ok"]
    offline_jobs_done(redis_app)
    checks = command_calls(redis_url, "zrangebyscore")

    alice.emit("chat:message", {"roomId": "lobby", "content": "hi all"}, callback=True)
    offline_jobs_done(redis_app)

    assert command_calls(redis_url, "zrangebyscore") - checks == 2 + 1, "the 2 away members, and the new sockets"
    assert [services.notifications.unread_count(user) for user in ("m0", "m1", "p0", "alice")] == [1, 1, 0, 0]


def test_late_job_checks_every_member(redis_app: Flask, redis_url: str) -> None:
    services = redis_app.extensions["realtime"]
    alice = room_with_offline_members(redis_app, 2)
    bob = connect(redis_app, "bob")
    assert bob.emit("chat:join", {"roomId": "lobby"}, callback=True)["ok"]
    services.offline_jobs.stop()
    alice.emit("chat:message", {"roomId": "lobby", "content": "hi"}, callback=True)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    an_hour_later = RedisOfflineJobs(client, services.keys, services.scripts, 200, 30, clock=lambda: time.time() + 3600)
    (job,) = an_hour_later.take(10, 0.1)
    checks = command_calls(redis_url, "zrangebyscore")

    (notified,) = an_hour_later.notify([job])

    assert sorted(notified) == ["m0", "m1"]
    assert command_calls(redis_url, "zrangebyscore") - checks == 3, "m0, m1 and bob: every member but the sender"


def test_a_failing_push_hook_does_not_hold_the_job(any_app: Flask) -> None:
    services = any_app.extensions["realtime"]
    pushed: list[list[str]] = []

    def broken(users: list[str], notification: dict[str, Any]) -> None:
        raise RuntimeError("push service down")

    services.register_push_hook(broken)
    services.register_push_hook(lambda users, notification: pushed.append(users))
    alice = room_with_offline_members(any_app, 1)

    alice.emit("chat:message", {"roomId": "lobby", "content": "hi"}, callback=True)
    offline_jobs_done(any_app)

    assert pushed == [["m0"]], "the next hook still ran and the job was acknowledged"


def test_job_of_a_worker_that_died_is_taken_over(redis_app: Flask, redis_url: str, config: dict[str, Any]) -> None:
    services = redis_app.extensions["realtime"]
    alice = room_with_offline_members(redis_app, 2)
    services.offline_jobs.stop()
    alice.emit("chat:message", {"roomId": "lobby", "content": "before the crash"}, callback=True)
    # Another worker reads the job, then dies before its acknowledgement.
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    services.offline_jobs.queue.ensure_group()
    dead = client.xreadgroup(GROUP, "dead-worker", {services.keys.chat_offline_jobs: ">"}, count=10)
    assert len(dead[0][1]) == 1
    assert services.offline_jobs.backlog() == Backlog(lag=0, pending=1)

    live = RedisOfflineJobs(client, services.keys, services.scripts, 200, claim_after=0.1)
    assert live.claim_stale(10) == [], "a job read a moment ago belongs to its reader"
    gevent.sleep(0.15)
    claimed = live.claim_stale(10)
    assert [job.room_id for job in claimed] == ["lobby"]
    assert sorted(live.notify(claimed)[0]) == ["m0", "m1"]
    live.ack(claimed)

    assert services.offline_jobs.backlog() == Backlog(lag=0, pending=0)
    assert [services.notifications.unread_count(user) for user in ("m0", "m1")] == [1, 1]


def test_worker_takes_over_stale_jobs_by_itself(quick_claim_app: Flask, transport: str) -> None:
    services = quick_claim_app.extensions["realtime"]
    alice = room_with_offline_members(quick_claim_app, 1)
    worker = services.offline_jobs
    worker.stop()
    alice.emit("chat:message", {"roomId": "lobby", "content": "hi"}, callback=True)
    (taken,) = worker.queue.take(10, 0.1)  # taken, then the work never happens: a crash mid-job
    assert worker.backlog() == Backlog(lag=0, pending=1)

    offline_jobs_done(quick_claim_app)

    assert services.notifications.unread_count("m0") == 1
    assert worker.done >= 1


def test_worker_survives_a_failing_batch(quick_claim_app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    services = quick_claim_app.extensions["realtime"]
    alice = room_with_offline_members(quick_claim_app, 1)
    queue = services.offline_jobs.queue
    real_notify = queue.notify
    failures: list[int] = []

    def flaky(jobs: list[OfflineJob]) -> list[list[str]]:
        if not failures:
            failures.append(len(jobs))
            raise RuntimeError("boom")
        return real_notify(jobs)

    monkeypatch.setattr(queue, "notify", flaky)
    monkeypatch.setattr("realtime.services.offline_jobs.BACKOFF_START", 0.05)
    alice.emit("chat:message", {"roomId": "lobby", "content": "hi"}, callback=True)

    offline_jobs_done(quick_claim_app)

    assert failures == [1]
    assert services.notifications.unread_count("m0") == 1, "the failed job was done again"
    assert services.offline_jobs.greenlet is not None and not services.offline_jobs.greenlet.dead


def test_redis_backlog_is_capped(config: dict[str, Any], redis_url: str, request: pytest.FixtureRequest) -> None:
    config["OFFLINE_JOBS_MAX"] = "100"
    services = request.getfixturevalue("redis_app").extensions["realtime"]
    services.offline_jobs.stop()
    cap = services.settings.offline_jobs_max
    chat = services.chat
    # bob is a member with no socket in the room: every message needs a job.
    redis.Redis.from_url(redis_url).sadd(services.keys.group_members("lobby"), "bob")
    for index in range(cap + 2000):
        chat.append("lobby", {"senderId": "alice", "content": str(index)}, None, NOTIFICATION)

    length = redis.Redis.from_url(redis_url).xlen(services.keys.chat_offline_jobs)
    assert cap <= length < cap + 2000, length
    assert services.offline_jobs.backlog().lag <= length


def test_memory_backlog_is_capped_and_counts_what_it_dropped() -> None:
    from realtime.stores.notifications import MemoryNotificationStore
    from realtime.stores.presence import MemoryPresenceStore

    queue = MemoryOfflineJobs(MemoryPresenceStore(time.time), MemoryNotificationStore(10), max_len=100, claim_after=30)
    for index in range(150):
        queue.put(OfflineJob(str(index), "lobby", str(index), "alice", 0.0, NOTIFICATION), {"alice", "bob"})

    assert queue.backlog() == Backlog(lag=100, pending=0, dropped=50)
    taken = queue.take(64, 0)
    assert [job.entry_id for job in taken][:2] == ["50", "51"], "the oldest were dropped"
    assert queue.backlog() == Backlog(lag=36, pending=64, dropped=50)
    assert queue.notify(taken[:1]) == [["bob"]]
    queue.ack(taken)
    assert queue.backlog().pending == 0


def test_no_job_when_every_member_is_in_the_room(redis_url: str, request: pytest.FixtureRequest) -> None:
    """A member with a socket in the room at the message's time is online: the append queues nothing."""
    services = request.getfixturevalue("redis_app").extensions["realtime"]
    services.offline_jobs.stop()
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.sadd(services.keys.group_members("lobby"), "alice", "bob")
    client.sadd(services.keys.room_users("group:lobby"), "alice", "bob")

    services.chat.append("lobby", {"senderId": "alice", "content": "hi"}, None, NOTIFICATION)
    assert client.xlen(services.keys.chat_offline_jobs) == 0

    # As bob's last socket leaving the room does (lua/room_fn.lua): the room is no longer known complete.
    client.srem(services.keys.room_users("group:lobby"), "bob")
    client.delete(services.keys.room_complete("group:lobby"))
    services.chat.append("lobby", {"senderId": "alice", "content": "bob is away"}, None, NOTIFICATION)
    assert client.xlen(services.keys.chat_offline_jobs) == 1
