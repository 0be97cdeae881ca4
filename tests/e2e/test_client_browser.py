"""The typed client (``/ws-docs/client.js``) in headless Chromium against servers A and B on a private Redis.

Each page loads the vendored ``socket.io-client`` bundle and the served client module; the test drives it
step by step (:class:`tests.helpers.client_pages.ClientPages`) so that it can stop and restart a server,
lose an ack on the wire, mint an expired token and revoke a session in between.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.helpers.client_pages import ClientPages
from tests.helpers.e2e_cluster import (
    GunicornProcess,
    create_tokens,
    revoke_session,
    session_id_of,
)
from tests.helpers.e2e_kit import Cluster, mint, new_id

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("no_server_errors")]

#: The page-side harness: clients by name, each recording its states, messages and getToken calls.
HARNESS = """() => {
  const settle = (promise) => promise.then(
    (value) => ({ ok: true, value }),
    (e) => ({ ok: false, code: e.code, message: e.message, fields: e.fields, event: e.event,
              typed: e instanceof window.rt.RealtimeError }));
  window.h = {
    clients: {},
    settle,
    make(name, url, tokens, options) {
      const record = { states: [], messages: [], tokenCalls: 0 };
      const queue = [...tokens];
      const getToken = () => { record.tokenCalls += 1; return Promise.resolve(queue.length > 1 ? queue.shift() : queue[0]); };
      const client = window.rt.createClient(url, { getToken, ...options });
      const keep = (s) => record.states.push({ status: s.status, recovered: s.recovered, reason: s.reason,
                                                code: s.error ? s.error.code : null });
      keep(client.state);
      client.subscribe(keep);
      client.on("chat:new_message", (m) => record.messages.push({ id: m.id, content: m.content, roomId: m.roomId }));
      window.h.clients[name] = { client, record };
    },
    client(name) { return window.h.clients[name].client; },
    record(name) { return window.h.clients[name].record; },
    request(name, event, payload, options) { return settle(window.h.client(name).request(event, payload, options)); },
  };
}"""

FAST = {"backoff": {"minMs": 300, "maxMs": 1000, "jitter": 0}}
WEBSOCKET_ONLY = {**FAST, "socketOptions": {"transports": ["websocket"]}}


@pytest.fixture
def pages() -> Iterator[ClientPages]:
    with ClientPages() as driver:
        yield driver


def open_page(pages: ClientPages, label: str, server: GunicornProcess, route_websockets: bool = False) -> None:
    pages.open(label, server.url, route_websockets=route_websockets)
    pages.eval(label, HARNESS)


def make(pages: ClientPages, label: str, name: str, server: GunicornProcess, tokens: list[str],
         options: dict[str, Any] | None = None) -> None:
    pages.eval(label, "([n, u, t, o]) => window.h.make(n, u, t, o)", [name, server.url, tokens, options or FAST])


def wait_status(pages: ClientPages, label: str, name: str, status: str) -> None:
    pages.wait(label, "([n, s]) => window.h.client(n).state.status === s", [name, status])


def request(pages: ClientPages, label: str, name: str, event: str, payload: Any,
            options: dict[str, Any] | None = None) -> dict[str, Any]:
    result: dict[str, Any] = pages.eval(
        label, "([n, e, p, o]) => window.h.request(n, e, p, o)", [name, event, payload, options or {}]
    )
    return result


def messages_in(pages: ClientPages, label: str, name: str, room: str) -> list[dict[str, Any]]:
    record = pages.eval(label, "(n) => window.h.record(n)", name)
    return [m for m in record["messages"] if m["roomId"] == room]


def wait_for_content(pages: ClientPages, label: str, name: str, content: str) -> None:
    pages.wait(label, "([n, c]) => window.h.record(n).messages.some((m) => m.content === c)", [name, content])


def test_requests_resolve_with_ack_data_and_reject_with_typed_errors(cluster: Cluster, pages: ClientPages) -> None:
    users = mint(cluster, "alice", "bob")
    room = new_id("r")
    open_page(pages, "p", cluster.a, route_websockets=True)
    make(pages, "p", "alice", cluster.a, [users["alice"].token], WEBSOCKET_ONLY)
    make(pages, "p", "bob", cluster.b, [users["bob"].token])
    wait_status(pages, "p", "alice", "connected")
    wait_status(pages, "p", "bob", "connected")

    not_in_room = request(pages, "p", "alice", "chat:message", {"roomId": room, "content": "early"})
    invalid = request(pages, "p", "alice", "chat:join", {"roomId": "../x"})
    unknown = request(pages, "p", "alice", "chat:teleport", {})
    joined = request(pages, "p", "alice", "chat:join", {"roomId": room})
    assert request(pages, "p", "bob", "chat:join", {"roomId": room})["ok"]
    sent = request(pages, "p", "alice", "chat:message", {"roomId": room, "content": "hello bob"})
    wait_for_content(pages, "p", "bob", "hello bob")

    assert not_in_room == {
        "ok": False, "code": "NOT_IN_ROOM", "message": not_in_room["message"], "fields": None,
        "event": "chat:message", "typed": True,
    }
    assert invalid["code"] == "VALIDATION_ERROR" and invalid["typed"]
    assert "roomId" in invalid["fields"]
    assert unknown["code"] == "VALIDATION_ERROR" and "chat:teleport" in unknown["message"]
    assert joined["ok"] and joined["value"]["roomId"] == room
    assert sent["ok"] and sent["value"]["duplicate"] is False
    assert messages_in(pages, "p", "bob", room) == [{"id": sent["value"]["id"], "content": "hello bob", "roomId": room}]

    # An ack that never comes: TIMEOUT for the request, the connection stays up.
    pages.drop_next_ack("p", close=False)
    timed_out = request(pages, "p", "alice", "chat:typing", {"roomId": room, "isTyping": True}, {"timeout": 1500})
    assert timed_out["code"] == "TIMEOUT" and timed_out["typed"]
    assert pages.eval("p", "() => window.h.client('alice').state.status") == "connected"

    # The connection lost before the ack of a request that is not safe to repeat: DISCONNECTED.
    pages.drop_next_ack("p", close=True)
    lost = request(pages, "p", "alice", "chat:leave", {"roomId": room})
    assert lost["code"] == "DISCONNECTED" and lost["typed"]
    wait_status(pages, "p", "alice", "connected")
    statuses = [s["status"] for s in pages.eval("p", "() => window.h.record('alice').states")]
    assert statuses[0] == "connecting" and "reconnecting" in statuses and statuses[-1] == "connected"
    assert pages.problems("p") == []


def test_messages_sent_while_the_server_is_down_arrive_once_each_in_order(
    cluster: Cluster, pages: ClientPages, extra_servers: Callable[..., GunicornProcess]
) -> None:
    c = extra_servers("c")
    users = mint(cluster, "sender", "reader")
    room = new_id("r")
    open_page(pages, "p", cluster.b)
    make(pages, "p", "sender", c, [users["sender"].token])
    make(pages, "p", "reader", cluster.b, [users["reader"].token])
    wait_status(pages, "p", "sender", "connected")
    wait_status(pages, "p", "reader", "connected")
    assert request(pages, "p", "sender", "chat:join", {"roomId": room})["ok"]
    assert request(pages, "p", "reader", "chat:join", {"roomId": room})["ok"]

    c.stop()
    wait_status(pages, "p", "sender", "reconnecting")
    texts = [f"offline-{i:02d}" for i in range(20)]
    pages.eval(
        "p",
        """([room, texts]) => { window.sent = texts.map((content) =>
             window.h.request("sender", "chat:message", { roomId: room, content })); }""",
        [room, texts],
    )
    queued = pages.eval("p", "() => window.h.client('sender').pending()")
    assert [q["payload"]["content"] for q in queued] == texts
    assert len({q["payload"]["clientId"] for q in queued}) == 20

    extra_servers("c2", port=c.port)
    results = pages.eval("p", "() => Promise.all(window.sent)")
    sent_after = request(pages, "p", "sender", "chat:message", {"roomId": room, "content": "after"})
    wait_for_content(pages, "p", "reader", "after")

    assert all(r["ok"] and r["value"]["duplicate"] is False for r in results), results
    got = messages_in(pages, "p", "reader", room)
    assert [m["content"] for m in got] == [*texts, "after"]
    assert [m["id"] for m in got] == [r["value"]["id"] for r in results] + [sent_after["value"]["id"]]
    states = pages.eval("p", "() => window.h.record('sender').states")
    assert states[-1]["status"] == "connected" and states[-1]["recovered"] is True, states
    assert pages.eval("p", "() => window.h.client('sender').pending()") == []


def test_a_lost_ack_is_retried_without_a_second_message(cluster: Cluster, pages: ClientPages) -> None:
    users = mint(cluster, "sender", "reader")
    room = new_id("r")
    open_page(pages, "p", cluster.a, route_websockets=True)
    make(pages, "p", "sender", cluster.a, [users["sender"].token], WEBSOCKET_ONLY)
    make(pages, "p", "reader", cluster.b, [users["reader"].token])
    wait_status(pages, "p", "sender", "connected")
    wait_status(pages, "p", "reader", "connected")
    assert request(pages, "p", "sender", "chat:join", {"roomId": room})["ok"]
    assert request(pages, "p", "reader", "chat:join", {"roomId": room})["ok"]

    pages.drop_next_ack("p", close=True)
    retried = request(pages, "p", "sender", "chat:message", {"roomId": room, "content": "only once"})
    after = request(pages, "p", "sender", "chat:message", {"roomId": room, "content": "after"})
    wait_for_content(pages, "p", "reader", "after")

    assert retried["ok"] and retried["value"]["duplicate"] is True, retried  # the server had stored the first try
    got = messages_in(pages, "p", "reader", room)
    assert [(m["id"], m["content"]) for m in got] == [
        (retried["value"]["id"], "only once"),
        (after["value"]["id"], "after"),
    ]
    statuses = [s["status"] for s in pages.eval("p", "() => window.h.record('sender').states")]
    assert "reconnecting" in statuses


def test_an_expired_token_is_refreshed_through_get_token(cluster: Cluster, pages: ClientPages) -> None:
    user = new_id("late")
    (expired,) = create_tokens(cluster.env, user, ttl=1)
    (fresh,) = create_tokens(cluster.env, user)
    time.sleep(7)  # past the token's exp plus the server's 5 s leeway
    open_page(pages, "p", cluster.a)
    make(pages, "p", "late", cluster.a, [expired, fresh])

    wait_status(pages, "p", "late", "connected")
    joined = request(pages, "p", "late", "chat:join", {"roomId": new_id("r")})

    record = pages.eval("p", "() => window.h.record('late')")
    assert record["tokenCalls"] == 2
    assert joined["ok"]
    assert all(s["status"] != "closed" for s in record["states"]), record["states"]


def test_force_logout_closes_the_client_for_good(cluster: Cluster, pages: ClientPages) -> None:
    users = mint(cluster, "gone")
    open_page(pages, "p", cluster.a)
    make(pages, "p", "gone", cluster.b, [users["gone"].token])
    wait_status(pages, "p", "gone", "connected")

    revoke_session(cluster.env, session_id_of(users["gone"].token))
    wait_status(pages, "p", "gone", "closed")
    after = request(pages, "p", "gone", "chat:join", {"roomId": new_id("r")})
    # Give a reconnection every chance to happen: the client's backoff is at most 1 s.
    pages.eval("p", "() => new Promise((resolve) => setTimeout(resolve, 2500))")

    state = pages.eval("p", "() => window.h.record('gone').states.at(-1)")
    assert state == {"status": "closed", "recovered": False, "reason": "revoked", "code": "SESSION_REVOKED"}
    assert after["code"] == "CLOSED"
    assert pages.eval("p", "() => window.h.client('gone').socket.connected") is False
    statuses = [s["status"] for s in pages.eval("p", "() => window.h.record('gone').states")]
    assert statuses[statuses.index("closed"):] == ["closed"]


def test_rooms_are_joined_again_when_a_reconnect_is_not_recovered(
    cluster: Cluster, pages: ClientPages, extra_servers: Callable[..., GunicornProcess]
) -> None:
    forgetful = extra_servers("norecovery", env={**cluster.env, "RECOVERY_WINDOW": "0"})
    users = mint(cluster, "sender", "reader")
    room = new_id("r")
    open_page(pages, "p", forgetful, route_websockets=True)
    make(pages, "p", "sender", forgetful, [users["sender"].token], WEBSOCKET_ONLY)
    make(pages, "p", "reader", cluster.b, [users["reader"].token])
    wait_status(pages, "p", "sender", "connected")
    wait_status(pages, "p", "reader", "connected")
    assert request(pages, "p", "sender", "chat:join", {"roomId": room})["ok"]
    assert request(pages, "p", "reader", "chat:join", {"roomId": room})["ok"]

    # The retried message needs the room again: the new socket starts in no room.
    pages.drop_next_ack("p", close=True)
    retried = request(pages, "p", "sender", "chat:message", {"roomId": room, "content": "after a fresh start"})
    wait_for_content(pages, "p", "reader", "after a fresh start")

    assert retried["ok"], retried
    states = pages.eval("p", "() => window.h.record('sender').states")
    assert states[-1] == {"status": "connected", "recovered": False, "reason": None, "code": None}, states
    assert [m["content"] for m in messages_in(pages, "p", "reader", room)] == ["after a fresh start"]
