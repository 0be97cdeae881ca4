"""End to end, feature by feature: two real gunicorn processes (the Procfile command) on one private Redis,
driven by the real Node ``socket.io-client``.

Everything that crosses servers A and B goes through Redis: chat history and fan-out, presence, viewer
counts, stored notifications, duplicate-login eviction, the HTTP publish API and the Python ``Emitter``. A
third server C, started by one test only, is killed with SIGKILL to show that the other servers reap its
sockets within ``PRESENCE_TTL``.

Every test mints its own users (ids suffixed with a uuid) with ``flask token create``, one session per
user: with ``SESSION_POLICY=single`` a second session of a user would log the first one out.
"""
from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from tests.helpers.e2e_cluster import GunicornProcess, group_members, session_id_of
from tests.helpers.e2e_kit import (
    API_KEY,
    PRESENCE_TTL,
    Clients,
    Cluster,
    Sock,
    User,
    log_in_again,
    mint,
    new_id,
    refused,
)

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("no_server_errors")]

#: How long to keep listening after the expected deliveries, before counting them.
SETTLE = 0.5
ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
MESSAGE_ID = re.compile(r"^\d{13,}-\d+$")
MESSAGE_KEYS = {"id", "roomId", "senderId", "sender", "content", "type", "mediaUrl", "clientId", "createdAt"}


def api(
    server: GunicornProcess, path: str, body: Any, key: str | None = API_KEY, raw: str | None = None
) -> requests.Response:
    """POST to the publish API of ``server`` (``Connection: close``: no idle socket delays a stop)."""
    headers = {"Connection": "close"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    if raw is not None:
        headers["Content-Type"] = "application/json"
        return requests.post(f"{server.url}/api/v1{path}", data=raw, headers=headers, timeout=5)
    return requests.post(f"{server.url}/api/v1{path}", json=body, headers=headers, timeout=5)


def api_error(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"ok", "error"}, body
    assert body["ok"] is False, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body
    error: dict[str, Any] = body["error"]
    return error


def api_ok(response: requests.Response, status: int) -> Any:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"ok", "data"}, body
    assert body["ok"] is True, body
    return body["data"]


def assert_message(payload: dict[str, Any], message_id: str, room: str, sender: User, content: str) -> None:
    assert set(payload) == MESSAGE_KEYS, payload
    assert payload["id"] == message_id
    assert payload["roomId"] == room
    assert payload["senderId"] == sender.id
    assert payload["sender"] == {"id": sender.id, "username": sender.id, "avatarUrl": None}
    assert payload["content"] == content
    assert payload["type"] == "TEXT"
    assert ISO.fullmatch(payload["createdAt"]), payload


def send(sock: Sock, room: str, content: str, **extra: Any) -> str:
    data = sock.call("chat:message", {"roomId": room, "content": content, **extra})
    assert data["duplicate"] is False, data
    assert MESSAGE_ID.fullmatch(data["id"]), data
    return str(data["id"])


def join_chat(sock: Sock, room: str) -> list[dict[str, Any]]:
    data = sock.call("chat:join", {"roomId": room})
    assert set(data) == {"roomId", "messages"}, data
    assert data["roomId"] == room
    messages: list[dict[str, Any]] = data["messages"]
    return messages


# -- 1. chat across workers: fan-out, history, paging, idempotent sends ---------------------------------------


def test_chat_history_paging_and_idempotent_sends_across_workers(cluster: Cluster, clients: Clients) -> None:
    users = mint(cluster, "alice", "bob", "carol")
    alice = clients.connect(users["alice"], cluster.a)
    bob = clients.connect(users["bob"], cluster.b)
    room = new_id("r")
    assert join_chat(alice, room) == []
    assert join_chat(bob, room) == []
    since = clients.nodes.mark()

    contents = ["first", "second", "third"]
    ids = [send(alice, room, text) for text in contents]
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))

    bob.wait("chat:new_message", since, where=lambda p: p["id"] == ids[-1])
    at_bob = bob.payloads("chat:new_message")
    assert [p["id"] for p in at_bob] == ids, at_bob
    for payload, message_id, text in zip(at_bob, ids, contents, strict=True):
        assert_message(payload, message_id, room, users["alice"], text)
        assert payload["clientId"] is None and payload["mediaUrl"] is None

    # A late joiner on B gets the history newest first, in the ack and as a chat:history event.
    before_join = clients.nodes.mark()
    carol = clients.connect(users["carol"], cluster.b)
    history = join_chat(carol, room)
    assert [m["id"] for m in history] == ids[::-1]
    assert history == at_bob[::-1]
    event = carol.wait("chat:history", before_join)
    assert event == {"roomId": room, "messages": history}
    for member in (alice, bob):
        joined = member.wait("chat:user_joined", before_join, where=lambda p: p["userId"] == users["carol"].id)
        assert set(joined) == {"userId", "roomId", "timestamp"} and joined["roomId"] == room
        assert ISO.fullmatch(joined["timestamp"])

    # Paging: newest two from B, then the rest from A with the cursor.
    page = carol.call("chat:history", {"roomId": room, "limit": 2})
    assert set(page) == {"roomId", "messages", "cursor"}
    assert page["roomId"] == room
    assert [m["id"] for m in page["messages"]] == [ids[2], ids[1]]
    assert page["messages"] == history[:2]
    assert page["cursor"] == ids[1]
    rest = alice.call("chat:history", {"roomId": room, "limit": 2, "before": page["cursor"]})
    assert rest == {"roomId": room, "messages": history[2:], "cursor": None}
    assert alice.call("chat:history", {"roomId": room, "before": ids[0]}) == {
        "roomId": room,
        "messages": [],
        "cursor": None,
    }

    # The same clientId twice: one message, one delivery.
    since = clients.nodes.mark()
    first = alice.call("chat:message", {"roomId": room, "content": "once", "clientId": "c-retry-1"})
    assert first["duplicate"] is False and MESSAGE_ID.fullmatch(first["id"])
    second = alice.call("chat:message", {"roomId": room, "content": "once", "clientId": "c-retry-1"})
    assert second == {"id": first["id"], "duplicate": True}
    delivered = bob.wait("chat:new_message", since, where=lambda p: p["id"] == first["id"])
    assert delivered["clientId"] == "c-retry-1"
    carol.wait("chat:new_message", since, where=lambda p: p["id"] == first["id"])
    time.sleep(SETTLE)
    for member in (alice, bob, carol):
        assert len(member.payloads("chat:new_message", where=lambda p: p["id"] == first["id"])) == 1
    assert len(bob.payloads("chat:new_message")) == 4
    assert [m["id"] for m in carol.call("chat:history", {"roomId": room})["messages"]] == [first["id"], *ids[::-1]]


# -- 2. typing reaches the others only ---------------------------------------------------------------------


def test_typing_reaches_the_others_on_another_worker_not_the_typist(cluster: Cluster, clients: Clients) -> None:
    users = mint(cluster, "alice", "bob")
    # The login service's profile: the username others see.
    cluster.redis.hset(cluster.key(f"user:{users['bob'].id}"), mapping={"username": "Bob the Builder"})
    alice = clients.connect(users["alice"], cluster.a)
    bob = clients.connect(users["bob"], cluster.b)
    room = new_id("r")
    join_chat(alice, room)
    join_chat(bob, room)
    since = clients.nodes.mark()

    assert bob.call("chat:typing", {"roomId": room, "isTyping": True}) == {"sent": True}
    typing = alice.wait("chat:user_typing", since)
    assert typing == {"userId": users["bob"].id, "username": "Bob the Builder", "isTyping": True, "roomId": room}
    # A repeated start within TYPING_THROTTLE is not sent again; a stop always is.
    assert bob.call("chat:typing", {"roomId": room, "isTyping": True}) == {"sent": False}
    assert bob.call("chat:typing", {"roomId": room, "isTyping": False}) == {"sent": True}
    alice.wait("chat:user_typing", since, where=lambda p: p["isTyping"] is False)
    time.sleep(SETTLE)
    assert [p["isTyping"] for p in alice.payloads("chat:user_typing")] == [True, False]
    assert bob.payloads("chat:user_typing") == []
    # Not a member: refused.
    refused(alice.emit("chat:typing", {"roomId": new_id("r"), "isTyping": True}), "NOT_IN_ROOM")


# -- 3. presence across workers -------------------------------------------------------------------------------


def test_presence_subscribe_status_check_and_offline_across_workers(cluster: Cluster, clients: Clients) -> None:
    users = mint(cluster, "alice", "dave")
    dave_id = users["dave"].id
    alice = clients.connect(users["alice"], cluster.a)
    assert alice.call("presence:subscribe", [dave_id]) == {"userIds": [dave_id]}
    assert alice.call("presence:check", [dave_id]) == [
        {"userId": dave_id, "isOnline": False, "status": "offline", "lastSeen": None}
    ]
    since = clients.nodes.mark()

    dave = clients.connect(users["dave"], cluster.b)
    online = alice.wait("presence:update", since)
    assert set(online) == {"userId", "status", "lastSeen"}
    assert online["userId"] == dave_id and online["status"] == "online" and ISO.fullmatch(online["lastSeen"])

    busy = dave.call("presence:status", "busy")
    assert busy["userId"] == dave_id and busy["status"] == "busy" and ISO.fullmatch(busy["lastSeen"])
    assert alice.wait("presence:update", since, where=lambda p: p["status"] == "busy") == busy

    mark = clients.nodes.mark()
    users_online = alice.call("presence:check", {"userIds": [dave_id]})
    assert users_online == [{"userId": dave_id, "isOnline": True, "status": "busy", "lastSeen": busy["lastSeen"]}]
    assert alice.wait("presence:status_list", mark) == {"users": users_online}

    # A second tab on A, closed again: the user stays online and subscribers hear nothing.
    tab = clients.connect(users["dave"], cluster.a)
    assert clients.disconnect(tab)
    time.sleep(SETTLE)
    assert [p["status"] for p in alice.payloads("presence:update")] == ["online", "busy"]
    assert alice.call("presence:check", [dave_id])[0]["isOnline"] is True

    assert clients.disconnect(dave)
    offline = alice.wait("presence:update", since, where=lambda p: p["status"] == "offline")
    assert offline["userId"] == dave_id and ISO.fullmatch(offline["lastSeen"])
    assert alice.call("presence:check", [dave_id]) == [
        {"userId": dave_id, "isOnline": False, "status": "offline", "lastSeen": offline["lastSeen"]}
    ]
    time.sleep(SETTLE)
    assert [p["status"] for p in alice.payloads("presence:update")] == ["online", "busy", "offline"]
    # Dave never subscribed to himself.
    assert dave.payloads("presence:update") == []


# -- 4. a killed server's sockets are reaped by the others ----------------------------------------------------


@pytest.fixture
def server_c(extra_servers: Callable[..., GunicornProcess]) -> GunicornProcess:
    """A third server for this test only."""
    return extra_servers("c")


def test_presence_and_viewer_counts_heal_after_a_server_is_killed(
    cluster: Cluster, clients: Clients, server_c: GunicornProcess
) -> None:
    users = mint(cluster, "alice", "erin", "viewa", "viewb")
    erin_id = users["erin"].id
    party = new_id("p")
    alice = clients.connect(users["alice"], cluster.a)
    alice.call("presence:subscribe", [erin_id])
    view_a = clients.connect(users["viewa"], cluster.a)
    view_b = clients.connect(users["viewb"], cluster.b)
    assert view_a.call("party:join_live", {"partyId": party}) == {"partyId": party, "viewerCount": 1}
    assert view_b.call("party:join_live", {"partyId": party}) == {"partyId": party, "viewerCount": 2}
    since = clients.nodes.mark()

    erin = clients.connect(users["erin"], server_c)
    assert alice.wait("presence:update", since)["status"] == "online"
    assert erin.call("party:join_live", {"partyId": party}) == {"partyId": party, "viewerCount": 3}
    for viewer in (view_a, view_b):
        assert viewer.wait("party:viewer_joined", since, where=lambda p: p["userId"] == erin_id) == {
            "userId": erin_id,
            "partyId": party,
            "viewerCount": 3,
        }
    assert alice.call("presence:check", [erin_id])[0]["isOnline"] is True

    # SIGKILL the master and its worker: nothing runs a disconnect handler or a shutdown hook.
    workers = [pid for pid in group_members(server_c.pid) if pid != server_c.pid]
    assert workers, "server C has no worker process in its process group"
    killed_at = time.monotonic()
    os.killpg(server_c.pid, signal.SIGKILL)
    deadline = killed_at + 5
    while group_members(server_c.pid):
        assert time.monotonic() < deadline, f"processes of server C survived SIGKILL: {group_members(server_c.pid)}"
        time.sleep(0.05)
    assert erin.wait_disconnect(since)["reason"] in ("transport close", "transport error")

    budget = PRESENCE_TTL + 3
    offline = alice.wait("presence:update", since, where=lambda p: p["status"] == "offline", timeout=budget)
    elapsed = time.monotonic() - killed_at
    assert elapsed <= budget, elapsed
    assert offline["userId"] == erin_id and ISO.fullmatch(offline["lastSeen"])
    assert alice.call("presence:check", [erin_id]) == [
        {"userId": erin_id, "isOnline": False, "status": "offline", "lastSeen": offline["lastSeen"]}
    ]
    left = {"userId": erin_id, "partyId": party, "viewerCount": 2}
    for viewer in (view_a, view_b):
        assert viewer.wait("party:viewer_left", since, timeout=max(0.5, killed_at + budget - time.monotonic())) == left
    assert cluster.redis.smembers(cluster.key(f"room:party:{party}")) == {view_a.sid, view_b.sid}
    assert not cluster.redis.exists(cluster.key(f"socket:{erin.sid}"), cluster.key(f"socket-rooms:{erin.sid}"))

    time.sleep(SETTLE)
    # Reaped once, although A and B both run the reaper.
    assert [p["status"] for p in alice.payloads("presence:update")] == ["online", "offline"]
    for viewer in (view_a, view_b):
        assert viewer.payloads("party:viewer_left") == [left]
    # The survivors still count right.
    late = clients.connect(mint(cluster, "late")["late"], cluster.b)
    assert late.call("party:join_live", {"partyId": party}) == {"partyId": party, "viewerCount": 3}


# -- 5. viewer counts across workers ----------------------------------------------------------------------------


def test_party_viewer_counts_and_status_across_workers(cluster: Cluster, clients: Clients) -> None:
    users = mint(cluster, "v1", "v2", "v3", "outsider")
    party = new_id("p")
    outsider = clients.connect(users["outsider"], cluster.b)
    v1 = clients.connect(users["v1"], cluster.a)
    v2 = clients.connect(users["v2"], cluster.b)
    v3 = clients.connect(users["v3"], cluster.a)
    since = clients.nodes.mark()

    for expected, viewer in enumerate((v1, v2, v3), start=1):
        assert viewer.call("party:join_live", {"partyId": party}) == {"partyId": party, "viewerCount": expected}
    joined_v2 = {"userId": users["v2"].id, "partyId": party, "viewerCount": 2}
    joined_v3 = {"userId": users["v3"].id, "partyId": party, "viewerCount": 3}
    v1.wait("party:viewer_joined", since, where=lambda p: p["viewerCount"] == 3)
    v2.wait("party:viewer_joined", since, where=lambda p: p["viewerCount"] == 3)
    # Joining twice changes nothing and tells nobody.
    assert v3.call("party:join_live", {"partyId": party}) == {"partyId": party, "viewerCount": 3}

    live = api_ok(api(cluster.a, f"/parties/{party}/status", {"status": "LIVE"}), 202)
    assert live == {"partyId": party, "status": "LIVE"}
    for viewer in (v1, v2, v3):
        assert viewer.wait("party:status_changed", since) == live

    assert clients.disconnect(v2)
    left = {"userId": users["v2"].id, "partyId": party, "viewerCount": 2}
    for viewer in (v1, v3):
        assert viewer.wait("party:viewer_left", since) == left

    paused = api_ok(api(cluster.b, f"/parties/{party}/status", {"status": "PAUSED"}), 202)
    for viewer in (v1, v3):
        viewer.wait("party:status_changed", since, where=lambda p: p["status"] == "PAUSED")

    time.sleep(SETTLE)
    assert v1.payloads("party:viewer_joined") == [joined_v2, joined_v3]
    assert v2.payloads("party:viewer_joined") == [joined_v3]
    assert v3.payloads("party:viewer_joined") == []
    for viewer in (v1, v3):
        assert viewer.payloads("party:viewer_left") == [left]
        assert viewer.payloads("party:status_changed") == [live, paused]
    assert v2.payloads("party:status_changed") == [live]
    for event in ("party:viewer_joined", "party:viewer_left", "party:status_changed"):
        assert outsider.payloads(event) == []
    assert cluster.redis.scard(cluster.key(f"room:party:{party}")) == 2
    assert v3.call("party:leave_live", {"partyId": party}) == {"partyId": party, "viewerCount": 1}
    refused(v3.emit("party:leave_live", {"partyId": party}), "NOT_IN_ROOM")


# -- 6. stored notifications for an offline user --------------------------------------------------------------


def test_offline_user_gets_stored_notifications_on_connect(cluster: Cluster, clients: Clients) -> None:
    users = mint(cluster, "frank", "gina")
    frank, gina = users["frank"], users["gina"]
    room = new_id("r")
    # Frank is a member of the chat room, then leaves the site (disconnects, still a member).
    first_visit = clients.connect(frank, cluster.a)
    join_chat(first_visit, room)
    assert clients.disconnect(first_visit)

    content = {"type": "mention", "title": "You were mentioned", "body": "gina mentioned you"}
    published = api_ok(api(cluster.b, "/notifications", {"userIds": [frank.id], "notification": content}), 202)
    assert set(published) == {"id", "recipients", "stored"}
    assert published["recipients"] == 1 and published["stored"] is True

    gina_sock = clients.connect(gina, cluster.a)
    join_chat(gina_sock, room)
    message_id = send(gina_sock, room, "are you there?")

    since = clients.nodes.mark()
    tab1 = clients.connect(frank, cluster.b)
    assert tab1.wait("notification:unread_count", since) == {"count": 2}
    listing = tab1.call("notifications:list", {})
    assert set(listing) == {"notifications", "unreadCount"} and listing["unreadCount"] == 2
    chat_item, mention = listing["notifications"]
    assert chat_item == {
        "id": f"chat-{message_id}",
        "type": "chat_message",
        "title": f"{gina.id} in {room}",
        "body": "are you there?",
        "data": {"roomId": room, "senderId": gina.id, "messageId": message_id},
        "createdAt": chat_item["createdAt"],
        "read": False,
    }
    assert mention == {**content, "id": published["id"], "data": None, "createdAt": mention["createdAt"], "read": False}
    assert ISO.fullmatch(chat_item["createdAt"]) and ISO.fullmatch(mention["createdAt"])
    # Gina was online: nothing stored for her.
    assert gina_sock.call("notifications:list", {}) == {"notifications": [], "unreadCount": 0}

    mark = clients.nodes.mark()
    tab2 = clients.connect(frank, cluster.a)
    assert tab2.wait("notification:unread_count", mark) == {"count": 2}
    mark = clients.nodes.mark()
    assert tab1.call("notifications:mark_read", [chat_item["id"], mention["id"]]) == {"marked": 2, "unreadCount": 0}
    assert tab2.wait("notification:unread_count", mark) == {"count": 0}
    assert tab1.wait("notification:unread_count", mark) == {"count": 0}
    after = tab2.call("notifications:list", {"limit": 10})
    assert after["unreadCount"] == 0
    assert [(n["id"], n["read"]) for n in after["notifications"]] == [(chat_item["id"], True), (mention["id"], True)]
    assert tab2.call("notifications:list", {"unreadOnly": True}) == {"notifications": [], "unreadCount": 0}
    # Marking again changes nothing and broadcasts nothing.
    assert tab1.call("notifications:mark_read", {"ids": [mention["id"]]}) == {"marked": 0, "unreadCount": 0}
    time.sleep(SETTLE)
    assert tab2.payloads("notification:unread_count") == [{"count": 2}, {"count": 0}]
    assert tab1.payloads("notification:new") == [] and tab2.payloads("notification:new") == []


# -- 7. duplicate login logs the old session out everywhere ---------------------------------------------------


def test_new_login_logs_out_every_tab_of_the_old_session_on_every_worker(cluster: Cluster, clients: Clients) -> None:
    old = mint(cluster, "henry")["henry"]
    fast_retry = {"reconnectionDelay": 100, "reconnectionDelayMax": 200, "randomizationFactor": 0}
    tab_a = clients.connect(old, cluster.a, reconnection=True, options=fast_retry)
    tab_b = clients.connect(old, cluster.b, reconnection=True, options=fast_retry)
    # Two tabs of one session are fine.
    assert tab_a.call("presence:check", [old.id])[0]["isOnline"] is True
    since = clients.nodes.mark()

    new = log_in_again(cluster, old)
    fresh = clients.connect(new, cluster.b, reconnection=True, options=fast_retry)

    for tab in (tab_a, tab_b):
        assert tab.wait("force_logout", since) == {"reason": "duplicate_login"}
        assert tab.wait_disconnect(since)["reason"] == "io server disconnect"
        kinds = [m["type"] for m in clients.nodes.messages[since:] if m.get("id") == tab.id]
        assert kinds.index("event") < kinds.index("disconnect"), kinds
    time.sleep(1.0)  # ten reconnection delays
    for tab in (tab_a, tab_b):
        after = [m["type"] for m in clients.nodes.messages[since:] if m.get("id") == tab.id]
        assert after == ["event", "disconnect"], after
    assert fresh.log(types=["disconnect", "reconnect_attempt"]) == []
    assert fresh.payloads("force_logout") == []
    (henry,) = fresh.call("presence:check", [old.id])
    assert henry["userId"] == old.id and henry["isOnline"] is True and henry["status"] == "online"
    assert not cluster.redis.exists(cluster.key(f"session:{session_id_of(old.token)}"))
    assert cluster.redis.exists(cluster.key(f"session:{session_id_of(new.token)}"))

    for server in (cluster.a, cluster.b):
        sock = clients.open(old, server)
        assert sock.handshake["type"] == "connect_error", sock.handshake
        assert sock.handshake["data"]["code"] == "SESSION_REVOKED", sock.handshake


# -- 8. the HTTP publish API through gunicorn ------------------------------------------------------------------


def test_publish_api_auth_validation_and_games(cluster: Cluster, clients: Clients) -> None:
    announcement = {"title": "Maintenance", "body": "At 02:00 UTC."}
    valid = {"event": "system:announcement", "room": "broadcast:all", "data": announcement}
    api_error(api(cluster.a, "/emit", valid, key=None), 401, "AUTH_REQUIRED")
    api_error(api(cluster.a, "/emit", valid, key="x" * 32), 403, "FORBIDDEN")
    error = api_error(api(cluster.b, "/emit", {**valid, "event": "nope:x"}), 400, "VALIDATION_ERROR")
    assert error["fields"] == {"event": ["Unknown or not publishable."]}
    # A server→client event that is not publishable is refused the same way.
    api_error(
        api(cluster.b, "/emit", {**valid, "event": "force_logout", "data": {"reason": "revoked"}}),
        400,
        "VALIDATION_ERROR",
    )
    bad_status = {"event": "party:status_changed", "room": "party:p1", "data": {"partyId": "p1", "status": "BOGUS"}}
    error = api_error(api(cluster.a, "/emit", bad_status), 400, "VALIDATION_ERROR")
    assert set(error["fields"]) == {"data"} and set(error["fields"]["data"]) == {"status"}, error
    for room in ("../x", "party:../x", "nope:x", "party:a b"):
        error = api_error(api(cluster.a, "/emit", {**valid, "room": room}), 400, "VALIDATION_ERROR")
        assert set(error["fields"]) == {"room"}, error
    error = api_error(api(cluster.a, "/emit", {"room": "broadcast:all"}), 400, "VALIDATION_ERROR")
    assert set(error["fields"]) == {"event", "data"}, error
    api_error(api(cluster.a, "/emit", None, raw="not json"), 400, "VALIDATION_ERROR")

    users = mint(cluster, "ivan", "judy", "mallory")
    ivan = clients.connect(users["ivan"], cluster.a)
    judy = clients.connect(users["judy"], cluster.b)
    since = clients.nodes.mark()
    assert api_ok(api(cluster.a, "/emit", valid), 202) == {"event": "system:announcement", "room": "broadcast:all"}
    expected = {**announcement, "level": "info"}
    assert judy.wait("system:announcement", since) == expected
    assert ivan.wait("system:announcement", since) == expected

    game = new_id("g")
    players = [users["ivan"].id, users["judy"].id]
    created = api_ok(api(cluster.b, f"/games/{game}/players", {"userIds": players}), 201)
    assert created == {"gameId": game, "state": {"players": players, "moveCount": 0, "moves": []}, "turn": players[0]}
    error = api_error(api(cluster.b, f"/games/{game}/players", {"userIds": []}), 400, "VALIDATION_ERROR")
    assert set(error["fields"]) == {"userIds"}

    assert ivan.call("game:join", {"gameId": game}) == created
    assert judy.call("game:join", {"gameId": game}) == created
    assert judy.wait("game:state", since) == created
    mallory = clients.connect(users["mallory"], cluster.a)
    refused(mallory.emit("game:join", {"gameId": game}), "FORBIDDEN")
    refused(mallory.emit("game:move", {"gameId": game, "move": {"x": 1}}), "NOT_IN_ROOM")
    refused(judy.emit("game:move", {"gameId": game, "move": {"x": 0}}), "NOT_YOUR_TURN")

    mark = clients.nodes.mark()
    assert ivan.call("game:move", {"gameId": game, "move": {"x": 1, "y": 2}}) == {"moveCount": 1, "turn": players[1]}
    state = judy.wait("game:state", mark)
    assert state["gameId"] == game and state["turn"] == players[1]
    assert state["state"]["players"] == players and state["state"]["moveCount"] == 1
    (move,) = state["state"]["moves"]
    assert (
        move["n"] == 1 and move["by"] == players[0] and move["move"] == {"x": 1, "y": 2} and ISO.fullmatch(move["at"])
    )
    assert ivan.wait("game:state", mark) == state

    assert judy.call("game:move", {"gameId": game, "move": {"x": 3}}) == {"moveCount": 2, "turn": players[0]}
    refused(judy.emit("game:move", {"gameId": game, "move": {"x": 4}}), "NOT_YOUR_TURN")
    ivan.wait("game:state", mark, where=lambda s: s["state"]["moveCount"] == 2)
    time.sleep(SETTLE)
    assert [s["state"]["moveCount"] for s in ivan.payloads("game:state")] == [0, 1, 2]
    assert mallory.payloads("game:state") == []


# -- 9. the Python Emitter ----------------------------------------------------------------------------------------


def test_emitter_publishes_validates_and_stores_notifications(cluster: Cluster, clients: Clients) -> None:
    from realtime.errors import RealtimeError
    from realtime.fanout.emitter import Emitter

    users = mint(cluster, "una", "kate")
    una = clients.connect(users["una"], cluster.a)
    kate = clients.connect(users["kate"], cluster.b)
    emitter = Emitter(cluster.redis_url)
    since = clients.nodes.mark()

    sent = emitter.emit(
        "system:announcement", {"title": "Hello", "body": "from a script", "level": "warning"}, room="broadcast:all"
    )
    assert sent == {"title": "Hello", "body": "from a script", "level": "warning"}
    assert una.wait("system:announcement", since) == sent
    assert kate.wait("system:announcement", since) == sent

    with pytest.raises(RealtimeError) as bad_data:
        emitter.emit("system:announcement", {"title": ""}, room="broadcast:all")
    assert bad_data.value.code == "VALIDATION_ERROR"
    with pytest.raises(RealtimeError) as unknown:
        emitter.emit("nope:x", {}, room="broadcast:all")
    assert unknown.value.code == "VALIDATION_ERROR"
    with pytest.raises(RealtimeError) as bad_room:
        emitter.emit("system:announcement", {"title": "t", "body": "b"}, room="../x")
    assert bad_room.value.code == "FORBIDDEN"
    with pytest.raises(RealtimeError) as bad_notification:
        emitter.notify([users["kate"].id], {"title": "no type"})
    assert bad_notification.value.code == "VALIDATION_ERROR"

    notification = emitter.notify([users["kate"].id], {"type": "invoice", "title": "Paid", "body": "Thanks"})
    assert set(notification) == {"id", "type", "title", "body", "data", "createdAt"}
    assert (
        notification["type"] == "invoice" and notification["data"] is None and ISO.fullmatch(notification["createdAt"])
    )
    assert kate.wait("notification:new", since) == notification
    assert kate.call("notifications:list", {}) == {"notifications": [{**notification, "read": False}], "unreadCount": 1}
    time.sleep(SETTLE)
    assert una.payloads("notification:new") == []
    assert len(kate.payloads("system:announcement")) == 1 and len(una.payloads("system:announcement")) == 1
