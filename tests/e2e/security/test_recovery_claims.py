"""Recovery claims: a ``pid`` presented by anyone but its own session changes nothing.

A socket's recovery ``pid`` is private, but it can leak (a shared device, a log, a proxy). Presenting it in
the handshake auth (``{token, pid, offset}``) with another user's token, or with another session of the same
user, must neither disconnect the owner's live socket nor spend the owner's parked recovery record: the
claimant gets a clean new session (``recovered === false``), as with an unknown ``pid``, and the owner
recovers everything it missed.

Two real gunicorn processes (A and B) on the private Redis, the real Node ``socket.io-client``. The module
runs with ``SESSION_POLICY=multi`` so that a second login of the same user is a session of its own, not an
eviction of the first. The owner's drop is ``close_transport`` without auto-reconnection, and its reconnect is
``socket.connect()`` on the same client (which sends its ``pid`` and offset and reports ``recovered``), so the
claims provably happen while the record is parked. The owner's own claim on its still-open socket (a drop
the server has not noticed yet) takes the socket over. The recovery stores (memory and Redis) are checked
directly too: a refused claim leaves the record to its owner.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask

from realtime.stores.recovery import RecoveryRecord
from tests.conftest import TokenActions
from tests.helpers.e2e_cluster import GunicornProcess
from tests.helpers.e2e_kit import (
    Clients,
    Cluster,
    Sock,
    User,
    log_in_again,
    mint,
    new_id,
    ok,
    refused,
)
from tests.helpers.node_client import Message

pytestmark = pytest.mark.e2e

#: How long to keep listening after the expected deliveries, before saying nothing else arrived.
SETTLE = 0.5


@pytest.fixture(scope="module")
def cluster_overrides() -> dict[str, str | None]:
    """A second login of a user is a second session, not an eviction of the first."""
    return {"SESSION_POLICY": "multi"}


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.02)


def send(sock: Sock, room: str, content: str) -> str:
    """Send a chat message to ``room``; return its id."""
    return str(sock.call("chat:message", {"roomId": room, "content": content})["id"])


def offset_of(sock: Sock, message_id: str, since: int) -> str:
    """The recovery offset ``sock`` received with chat message ``message_id``."""
    found = sock.nodes.wait_for(
        lambda m: (
            m.get("type") == "event" and m.get("id") == sock.id and m.get("event") == "chat:new_message"
            and m["args"][0]["id"] == message_id
        ),
        since=since,
    )
    assert len(found["args"]) == 2, found
    return str(found["args"][1])


def chat_ids(sock: Sock, since: int) -> list[str]:
    """Ids of the chat messages ``sock`` received from log index ``since`` on, in order."""
    return [
        m["args"][0]["id"]
        for m in sock.nodes.messages[since:]
        if m.get("type") == "event" and m.get("id") == sock.id and m.get("event") == "chat:new_message"
    ]


def claim(clients: Clients, claimant: User, server: GunicornProcess, pid: str, offset: str, owner: Sock) -> Sock:
    """Connect ``claimant`` to ``server`` presenting ``owner``'s ``pid``; insist on a clean new session."""
    sock = clients.connect(claimant, server, auth={"token": claimant.token, "pid": pid, "offset": offset})
    assert sock.handshake["recovered"] is False, sock.handshake
    assert sock.sid != owner.sid, f"the claimant on {server.name} was given the owner's sid {owner.sid!r}"
    assert sock.handshake["pid"] not in (None, pid), sock.handshake
    return sock


def assert_untouched_claimant(claimant: Sock, room: str) -> None:
    """The claimant is in none of the owner's rooms and got none of its packets."""
    refused(claimant.emit("chat:message", {"roomId": room, "content": "intruding"}), "NOT_IN_ROOM")
    assert claimant.payloads("chat:new_message") == [], claimant.log()


def drop_and_park(clients: Clients, cluster: Cluster, owner: Sock, pid: str) -> Message:
    """Close the owner's transport (no auto-reconnect) and wait until its recovery record is written."""
    dropped = clients.nodes.mark()
    clients.nodes.close_transport(owner.id)
    disconnect = owner.wait_disconnect(dropped)
    wait_until(lambda: cluster.redis.exists(cluster.key(f"recovery:{pid}")), 5, "the owner's recovery record written")
    return disconnect


def reconnect_owner(clients: Clients, owner: Sock) -> tuple[Message, int]:
    """Reconnect the owner's client (with its pid and offset); its handshake answer and the log mark before it."""
    back = clients.nodes.mark()
    clients.nodes.reconnect(owner.id)
    answer = clients.nodes.wait_for(
        lambda m: m.get("id") == owner.id and m.get("type") in ("connect", "connect_error"), since=back
    )
    return answer, back


def test_a_claim_on_another_users_live_pid_changes_nothing(cluster: Cluster, clients: Clients,
                                                            no_server_errors: None) -> None:
    users = mint(cluster, "alice", "mallory", "peer")
    room = new_id("r")
    alice = clients.connect(users["alice"], cluster.a)
    pid = alice.handshake["pid"]
    assert isinstance(pid, str) and pid, alice.handshake
    peer = clients.connect(users["peer"], cluster.b)
    ok(alice.emit("chat:join", {"roomId": room}))
    ok(peer.emit("chat:join", {"roomId": room}))
    start = clients.nodes.mark()
    offset = offset_of(alice, send(peer, room, "m0"), start)

    # On the other server first (it does not hold alice's socket), then on alice's own server.
    for server in (cluster.b, cluster.a):
        mallory = claim(clients, users["mallory"], server, pid, offset, alice)
        after = send(peer, room, f"after-claim-on-{server.name}")
        peer.wait("chat:new_message", start, where=lambda p, after=after: p["id"] == after)
        assert alice.log(types=["disconnect", "connect_error"]) == [], (
            f"mallory's claim on server {server.name} disconnected alice: {alice.log(types=['disconnect'])}"
        )
        alice.wait("chat:new_message", start, where=lambda p, after=after: p["id"] == after)
        assert_untouched_claimant(mallory, room)
    # Alice's socket still works both ways.
    mark = clients.nodes.mark()
    own = send(alice, room, "still-here")
    peer.wait("chat:new_message", mark, where=lambda p: p["id"] == own)
    time.sleep(SETTLE)
    assert alice.log(types=["disconnect"]) == []
    assert len(alice.log(types=["connect"])) == 1


def test_a_claim_on_another_users_parked_socket_changes_nothing(cluster: Cluster, clients: Clients,
                                                                no_server_errors: None) -> None:
    users = mint(cluster, "alice", "mallory", "peer")
    room = new_id("r")
    alice = clients.connect(users["alice"], cluster.a)
    pid = alice.handshake["pid"]
    peer = clients.connect(users["peer"], cluster.b)
    ok(alice.emit("chat:join", {"roomId": room}))
    ok(peer.emit("chat:join", {"roomId": room}))
    start = clients.nodes.mark()
    offset = offset_of(alice, send(peer, room, "m0"), start)

    assert drop_and_park(clients, cluster, alice, pid)["reason"] == "forced close"
    missed = [send(peer, room, "missed-0")]

    for server in (cluster.b, cluster.a):
        mallory = claim(clients, users["mallory"], server, pid, offset, alice)
        assert_untouched_claimant(mallory, room)
        missed.append(send(peer, room, f"missed-after-claim-on-{server.name}"))

    answer, back = reconnect_owner(clients, alice)
    assert answer["type"] == "connect" and answer["recovered"] is True, (
        f"alice could not recover after mallory's claims: {answer}"
    )
    assert answer["sid"] == alice.sid and answer["pid"] == pid, answer
    time.sleep(SETTLE)
    assert chat_ids(alice, back) == missed
    assert [p for p in peer.payloads("chat:user_left") if p["userId"] == users["alice"].id] == []
    mark = clients.nodes.mark()
    live = send(peer, room, "live")
    alice.wait("chat:new_message", mark, where=lambda p: p["id"] == live)


def test_a_claim_by_another_session_of_the_same_user_changes_nothing(cluster: Cluster, clients: Clients,
                                                                     no_server_errors: None) -> None:
    """Only the socket's own session can claim it: another login of the same user (another device, or a
    session that may be revoked independently) gets a clean session of its own."""
    users = mint(cluster, "alice", "peer")
    other_login = log_in_again(cluster, users["alice"])
    room = new_id("r")
    alice = clients.connect(users["alice"], cluster.a)
    pid = alice.handshake["pid"]
    peer = clients.connect(users["peer"], cluster.b)
    ok(alice.emit("chat:join", {"roomId": room}))
    ok(peer.emit("chat:join", {"roomId": room}))
    start = clients.nodes.mark()
    offset = offset_of(alice, send(peer, room, "m0"), start)

    # Live: on alice's own server (the other server never held the socket).
    tab = claim(clients, other_login, cluster.a, pid, offset, alice)
    assert_untouched_claimant(tab, room)
    after = send(peer, room, "after-live-claim")
    peer.wait("chat:new_message", start, where=lambda p: p["id"] == after)
    disconnects = alice.log(types=["disconnect"])
    assert disconnects == [], f"the other session's claim disconnected alice: {disconnects}"
    alice.wait("chat:new_message", start, where=lambda p: p["id"] == after)

    # Parked: on both servers.
    drop_and_park(clients, cluster, alice, pid)
    missed = []
    for server in (cluster.b, cluster.a):
        tab = claim(clients, other_login, server, pid, offset, alice)
        assert_untouched_claimant(tab, room)
        missed.append(send(peer, room, f"missed-after-claim-on-{server.name}"))

    answer, back = reconnect_owner(clients, alice)
    assert answer["type"] == "connect" and answer["recovered"] is True, (
        f"alice could not recover after her other session's claims: {answer}"
    )
    assert answer["sid"] == alice.sid, answer
    time.sleep(SETTLE)
    assert chat_ids(alice, back) == missed


def test_the_owners_claim_on_its_live_pid_takes_the_socket_over(cluster: Cluster, clients: Clients,
                                                                no_server_errors: None) -> None:
    """The owner's client reconnects before its server noticed the old transport die (a silent network drop):
    the same session presenting the live pid gets the socket back, rooms and missed packets included. (A fresh
    Node client stands in for the reconnecting one, so it reports ``recovered`` false: the sid says it.)"""
    users = mint(cluster, "alice", "peer")
    room = new_id("r")
    old = clients.connect(users["alice"], cluster.a)
    pid = old.handshake["pid"]
    peer = clients.connect(users["peer"], cluster.b)
    ok(old.emit("chat:join", {"roomId": room}))
    ok(peer.emit("chat:join", {"roomId": room}))
    start = clients.nodes.mark()
    offset = offset_of(old, send(peer, room, "m0"), start)
    # Sent while the old socket still counts as connected: the reconnect must not miss it.
    meanwhile = send(peer, room, "meanwhile")
    old.wait("chat:new_message", start, where=lambda p: p["id"] == meanwhile)

    back = clients.nodes.mark()
    auth = {"token": users["alice"].token, "pid": pid, "offset": offset}
    again = clients.connect(users["alice"], cluster.a, auth=auth)
    assert (again.sid, again.handshake["pid"]) == (old.sid, pid), again.handshake
    assert old.wait_disconnect(start)["reason"] == "io server disconnect"
    assert chat_ids(again, back) == [meanwhile]
    mark = clients.nodes.mark()
    own = send(again, room, "back")
    peer.wait("chat:new_message", mark, where=lambda p: p["id"] == own)
    time.sleep(SETTLE)
    assert [p for p in peer.payloads("chat:user_left") if p["userId"] == users["alice"].id] == []


# -- the stores, both transports -------------------------------------------------------------------------------


@pytest.fixture
def stores(any_app: Flask) -> Iterator[tuple[Any, TokenActions]]:
    services = any_app.extensions["realtime"]
    yield services.recovery, TokenActions(any_app)


@pytest.mark.parametrize("claimant", ["another user", "another session of the same user"])
def test_a_failed_claim_leaves_the_record_to_its_owner(stores: tuple[Any, TokenActions], claimant: str) -> None:
    recovery, tokens = stores
    session_id, _ = tokens.session("alice")
    other_user, other_session = ("mallory", tokens.session("mallory")[0]) if claimant == "another user" else (
        "alice", tokens.session("alice")[0]
    )
    record = RecoveryRecord(sid="sid-1", pid="pid-1", user_id="alice", session_id=session_id,
                            rooms=["user:alice", "group:g"])
    recovery.save([record])

    refused_claim = recovery.restore("pid-1", None, other_user, other_session, False)
    assert refused_claim.check.valid and not refused_claim.recovered
    assert refused_claim.status == "mismatch" and refused_claim.record is None and refused_claim.packets == []

    owner = recovery.restore("pid-1", None, "alice", session_id, False)
    assert owner.recovered and owner.record is not None
    assert (owner.record.sid, owner.record.rooms) == ("sid-1", ["user:alice", "group:g"])
    # Claimed once: the owner cannot use it twice either.
    assert recovery.restore("pid-1", None, "alice", session_id, False).status == "missing"
