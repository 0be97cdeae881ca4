"""Revoking a session reaches its live sockets on every worker (issue 11, point 1).

A user has two tabs of one session, one on server A and one on server B; another user's socket must not
notice anything. Revoked through the CLI or the HTTP API, both tabs get ``force_logout {reason: "revoked"}``
at once, then a Socket.IO disconnect (``io server disconnect``, which socket.io-client does not retry); the
token is refused from then on. Deleted or expired by the login service itself, or lost by a Redis restarted
without persistence, the session's sockets are logged out by the next session check (``SESSION_CHECK_INTERVAL``);
a Redis that does not answer logs nobody out.

The module's cluster checks sessions only every 600 s, so what reaches the sockets in the CLI and API tests
can only be the immediate path; the tests of the periodic check spawn servers with a 1 s interval.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from realtime import create_app
from realtime.extensions import socketio
from tests.conftest import TokenActions
from tests.helpers.e2e_cluster import GunicornProcess, revoke_session, session_id_of
from tests.helpers.e2e_kit import (
    API_KEY,
    Clients,
    Cluster,
    Sock,
    User,
    mint,
    new_id,
    ok,
)
from tests.helpers.node_client import NodeClients
from tests.helpers.redis_counter import counting_round_trips
from tests.helpers.redis_server import RedisServer

FAST_RETRY = {"reconnectionDelay": 100, "reconnectionDelayMax": 200, "randomizationFactor": 0}
#: Seconds between session checks of the servers spawned for the periodic-check tests.
CHECK_INTERVAL = 1


@pytest.fixture(scope="module")
def cluster_overrides() -> dict[str, str | None]:
    """A session check so rare that it never runs during these tests: only the immediate path acts."""
    return {"SESSION_CHECK_INTERVAL": "600"}


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A private Redis this test may stop and restart (without persistence, as the fixtures run it)."""
    server = RedisServer().start()
    yield server
    server.stop()


def api_delete(server: GunicornProcess, path: str, key: str | None = API_KEY) -> requests.Response:
    """DELETE on the publish API of ``server`` (``Connection: close``: no idle socket delays a stop)."""
    headers = {"Connection": "close"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return requests.delete(f"{server.url}/api/v1{path}", headers=headers, timeout=5)


def notify(server: GunicornProcess, user_ids: list[str], title: str) -> None:
    """A private notification to ``user_ids`` through the publish API."""
    response = requests.post(
        f"{server.url}/api/v1/notifications",
        json={"userIds": user_ids, "notification": {"type": "mention", "title": title}},
        headers={"Authorization": f"Bearer {API_KEY}", "Connection": "close"},
        timeout=5,
    )
    assert response.status_code == 202, response.text


def envelope(response: requests.Response, status: int) -> dict[str, Any]:
    """The JSON envelope of ``response``, after checking its status."""
    assert response.status_code == status, (response.status_code, response.text)
    body: dict[str, Any] = response.json()
    assert body["ok"] is (status < 400), body
    assert set(body) == ({"ok", "data"} if body["ok"] else {"ok", "error"}), body
    return body


def open_tabs(clients: Clients, user: User, cluster: Cluster) -> list[Sock]:
    """Two tabs of ``user``'s session, one per server, that would reconnect by themselves if allowed."""
    return [clients.connect(user, server, reconnection=True, options=FAST_RETRY) for server in (cluster.a, cluster.b)]


def logged_out_after(tabs: list[Sock], since: int, timeout: float, started: float) -> float:
    """Wait until every tab got ``force_logout {reason: "revoked"}`` and then ``io server disconnect``;
    return the seconds from ``started`` until the last tab got its ``force_logout``."""
    for tab in tabs:
        assert tab.wait("force_logout", since, timeout=timeout) == {"reason": "revoked"}
    reached = time.monotonic() - started
    for tab in tabs:
        assert tab.wait_disconnect(since)["reason"] == "io server disconnect"
    return reached


def assert_gone_for_good(cluster: Cluster, clients: Clients, user: User, tabs: list[Sock], since: int) -> None:
    """The tabs stay disconnected, join nothing, get no private notification; the token is refused."""
    time.sleep(1.0)  # ten reconnection delays of FAST_RETRY
    for tab in tabs:
        kinds = [m["type"] for m in clients.nodes.messages[since:] if m.get("id") == tab.id]
        assert kinds == ["event", "disconnect"], tab.log()
    room = new_id("after-revoke")
    for tab in tabs:
        with pytest.raises(TimeoutError):
            clients.nodes.emit(tab.id, "chat:join", {"roomId": room}, timeout=1)
    assert cluster.redis.smembers(cluster.key(f"room:group:{room}")) == set()
    mark = clients.nodes.mark()
    notify(cluster.a, [user.id], "after revocation")
    time.sleep(0.5)
    for tab in tabs:
        assert [m for m in clients.nodes.messages[mark:] if m.get("id") == tab.id and m["type"] == "event"] == []
    for server in (cluster.a, cluster.b):
        again = clients.open(user, server)
        assert again.handshake["type"] == "connect_error", again.handshake
        assert again.handshake["data"]["code"] == "SESSION_REVOKED", again.handshake


def assert_untouched(clients: Clients, cluster: Cluster, sock: Sock, user: User, since: int) -> None:
    """``sock`` was neither logged out nor disconnected, and still gets its private notifications."""
    assert sock.log(types=["disconnect", "reconnect_attempt"]) == [], sock.log()
    assert sock.payloads("force_logout") == []
    mark = clients.nodes.mark()
    title = new_id("still-here")
    notify(cluster.b, [user.id], title)
    assert sock.wait("notification:new", mark, where=lambda n: n["title"] == title)["title"] == title
    (entry,) = sock.call("presence:check", [user.id])
    assert entry["isOnline"] is True, entry


def test_cli_revocation_logs_out_both_tabs_on_both_workers_at_once(cluster: Cluster, clients: Clients) -> None:
    users = mint(cluster, "alice", "bob")
    alice, bob = users["alice"], users["bob"]
    tabs = open_tabs(clients, alice, cluster)
    other = clients.connect(bob, cluster.a)
    for tab in tabs:
        assert tab.call("presence:check", [alice.id])[0]["isOnline"] is True
    since = clients.nodes.mark()

    started = time.monotonic()
    assert revoke_session(cluster.env, session_id_of(alice.token)) == f"revoked {session_id_of(alice.token)}"
    cli_took = time.monotonic() - started
    reached = logged_out_after(tabs, since, timeout=10, started=started)

    print(f"\n[revocation] CLI: both live sockets (servers A and B) got force_logout {reached:.2f}s after "
          f"`flask token revoke` started (the CLI run itself took {cli_took:.2f}s)")
    assert_gone_for_good(cluster, clients, alice, tabs, since)
    assert_untouched(clients, cluster, other, bob, since)


def test_api_revocation_logs_out_both_tabs_and_answers_the_envelope(cluster: Cluster, clients: Clients) -> None:
    users = mint(cluster, "carol", "dan")
    carol, dan = users["carol"], users["dan"]
    session_id = session_id_of(carol.token)
    tabs = open_tabs(clients, carol, cluster)
    other = clients.connect(dan, cluster.b)
    envelope(api_delete(cluster.b, f"/sessions/{session_id}", key=None), 401)
    envelope(api_delete(cluster.b, f"/sessions/{session_id}", key="x" * 32), 403)
    malformed = envelope(api_delete(cluster.b, "/sessions/not.an.id"), 400)
    assert malformed["error"]["code"] == "VALIDATION_ERROR", malformed
    for tab in tabs:
        assert tab.log(types=["disconnect"]) == [] and tab.payloads("force_logout") == []
    since = clients.nodes.mark()

    started = time.monotonic()
    body = envelope(api_delete(cluster.b, f"/sessions/{session_id}"), 200)
    assert body["data"] == {"sessionId": session_id, "revoked": True}, body
    reached = logged_out_after(tabs, since, timeout=10, started=started)

    print(f"\n[revocation] API: both live sockets (servers A and B) got force_logout {reached:.2f}s after "
          "DELETE /api/v1/sessions/{sid} was sent")
    again = envelope(api_delete(cluster.a, f"/sessions/{session_id}"), 404)
    assert again["error"]["code"] == "NOT_FOUND", again
    assert_gone_for_good(cluster, clients, carol, tabs, since)
    assert_untouched(clients, cluster, other, dan, since)


def test_session_deleted_or_expired_by_the_login_service_is_logged_out_by_the_check(
    nodes: NodeClients, spawn_cluster: Callable[..., Cluster]
) -> None:
    own = spawn_cluster({"SESSION_CHECK_INTERVAL": str(CHECK_INTERVAL)})
    clients = Clients(nodes, own)
    try:
        users = mint(own, "erin", "fay", "gus")
        erin, fay, gus = users["erin"], users["fay"], users["gus"]
        erin_tabs = open_tabs(clients, erin, own)
        fay_tab = clients.connect(fay, own.b, reconnection=True, options=FAST_RETRY)
        other = clients.connect(gus, own.a)
        since = clients.nodes.mark()

        started = time.monotonic()
        assert own.redis.delete(own.key(f"session:{session_id_of(erin.token)}")) == 1
        deleted = logged_out_after(erin_tabs, since, timeout=5 * CHECK_INTERVAL + 5, started=started)
        started = time.monotonic()
        assert own.redis.pexpire(own.key(f"session:{session_id_of(fay.token)}"), 300)
        expired = logged_out_after([fay_tab], since, timeout=5 * CHECK_INTERVAL + 5, started=started)

        print(f"\n[revocation] login service, SESSION_CHECK_INTERVAL={CHECK_INTERVAL}s: key deleted -> both "
              f"sockets logged out in {deleted:.2f}s; key expiring in 0.3s -> logged out in {expired:.2f}s")
        assert_gone_for_good(own, clients, erin, erin_tabs, since)
        assert_gone_for_good(own, clients, fay, [fay_tab], since)
        assert_untouched(clients, own, other, gus, since)
    finally:
        clients.close_all()


def test_unreachable_redis_logs_nobody_out_but_lost_sessions_are_logged_out(
    nodes: NodeClients, spawn_cluster: Callable[..., Cluster], own_redis: RedisServer
) -> None:
    own = spawn_cluster({"SESSION_CHECK_INTERVAL": str(CHECK_INTERVAL)}, redis_url=own_redis.url)
    clients = Clients(nodes, own)
    try:
        hal = mint(own, "hal")["hal"]
        tabs = open_tabs(clients, hal, own)
        since = clients.nodes.mark()

        own_redis.stop()
        time.sleep(4 * CHECK_INTERVAL)
        for tab in tabs:
            assert tab.log(types=["disconnect", "reconnect_attempt"]) == [], tab.log()
            assert tab.payloads("force_logout") == []

        own_redis.start()  # empty: the fixtures run Redis without persistence, so every session is gone
        started = time.monotonic()
        reached = logged_out_after(tabs, since, timeout=5 * CHECK_INTERVAL + 10, started=started)
        print(f"\n[revocation] Redis down {4 * CHECK_INTERVAL}s: nobody logged out; restarted without its "
              f"sessions -> both sockets logged out {reached:.2f}s after it answered again")
        for server in (own.a, own.b):
            again = clients.open(hal, server)
            assert again.handshake["type"] == "connect_error", again.handshake
            assert again.handshake["data"]["code"] == "SESSION_REVOKED", again.handshake
    finally:
        clients.close_all()


def test_embedded_mode_api_revocation_logs_the_socket_out() -> None:
    app = create_app({"APP_ENV": "local", "JWT_SECRET": "embedded-revocation-secret-0123456789ab",
                      "LOG_LEVEL": "WARNING", "ALLOWED_ORIGINS": "*", "API_KEYS": API_KEY})
    services = app.extensions["realtime"]
    try:
        (session_id,) = services.sessions.create(["ivy"], 600)
        token = services.tokens.issue("ivy", session_id, 600)
        tab = socketio.test_client(app, auth={"token": token})
        other = socketio.test_client(app, auth={"token": services.tokens.issue("jo", "jo_session", 600)})
        assert tab.is_connected() and other.is_connected()
        http = app.test_client()
        headers = {"Authorization": f"Bearer {API_KEY}"}

        answer = http.delete(f"/api/v1/sessions/{session_id}", headers=headers)

        assert answer.status_code == 200, answer.get_json()
        assert ok([answer.get_json()]) == {"sessionId": session_id, "revoked": True}
        assert not tab.is_connected()
        assert [m["args"][0] for m in tab.queue if m["name"] == "force_logout"] == [{"reason": "revoked"}]
        assert other.is_connected()
        assert not socketio.test_client(app, auth={"token": token}).is_connected()
        missing = http.delete("/api/v1/sessions/never_existed", headers=headers)
        assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "NOT_FOUND"
    finally:
        services.lifecycle.stop()


def test_one_session_check_costs_one_round_trip_for_every_socket_of_the_worker(
    config: dict[str, Any], request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    config["SESSION_CHECK_INTERVAL"] = "600"  # only the explicit checks below run
    app = request.getfixturevalue("redis_app")
    services = app.extensions["realtime"]
    actions = TokenActions(app)
    sessions = [actions.session(f"user{i}") for i in range(40)]
    sockets = [socketio.test_client(app, auth={"token": token}) for _, token in sessions]
    assert all(sock.is_connected() for sock in sockets)

    with counting_round_trips(monkeypatch) as trips:
        assert services.lifecycle.check_sessions() == 0
    assert trips.count == 1, trips.count

    services.redis.delete(f"rt:session:{sessions[3][0]}")
    services.redis.hset(f"rt:session:{sessions[7][0]}", "userId", "someone-else")
    assert services.lifecycle.check_sessions() == 2
    gone = {3, 7}
    for index, sock in enumerate(sockets):
        logouts = [m["args"][0] for m in sock.queue if m["name"] == "force_logout"]
        assert (logouts, sock.is_connected()) == (([{"reason": "revoked"}], False) if index in gone else ([], True))
