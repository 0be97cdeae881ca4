"""Personal notifications on both transports: delivery, listing, read state, per-tab counts and the cap."""
from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask_socketio import SocketIOTestClient

from realtime.extensions import socketio
from realtime.features.notifications import publish_personal
from tests.conftest import APP_FIXTURES, TokenActions

ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


@pytest.fixture
def capped_app(config: dict[str, Any], transport: str, request: pytest.FixtureRequest) -> Flask:
    """``any_app`` that keeps at most 3 notifications per user."""
    config["NOTIFICATIONS_MAX"] = "3"
    return request.getfixturevalue(APP_FIXTURES[transport])


def connect(app: Flask, user_id: str, token: str | None = None) -> SocketIOTestClient:
    client = socketio.test_client(app, auth={"token": token or TokenActions(app).create(user_id)})
    assert client.is_connected(), f"{user_id} could not connect"
    return client


def of(messages: list[dict[str, Any]], event: str) -> list[Any]:
    return [m["args"][0] for m in messages if m["name"] == event]


def received(client: SocketIOTestClient, event: str) -> list[Any]:
    """Payloads of ``event`` received since the last call (drains everything the client received)."""
    return of(client.get_received(), event)


def notify(app: Flask, title: str, user_ids: tuple[str, ...] = ("bob",)) -> dict[str, Any]:
    services = app.extensions["realtime"]
    with app.app_context():
        return publish_personal(
            services, list(user_ids), {"type": "mention", "title": title, "body": "b", "data": None}
        )


def listed(client: SocketIOTestClient, **payload: Any) -> dict[str, Any]:
    ack = client.emit("notifications:list", payload, callback=True)
    assert ack["ok"] is True, ack
    return dict(ack["data"])


def test_connected_recipient_gets_notification_new(any_app: Flask) -> None:
    bob, alice = connect(any_app, "bob"), connect(any_app, "alice")
    bob.get_received()
    alice.get_received()

    sent = notify(any_app, "hello bob")

    (delivered,) = received(bob, "notification:new")
    assert delivered == {
        "id": sent["id"],
        "type": "mention",
        "title": "hello bob",
        "body": "b",
        "data": None,
        "createdAt": sent["createdAt"],
    }
    assert delivered["id"].startswith("n-")
    assert ISO_MS.match(delivered["createdAt"])
    assert received(alice, "notification:new") == []


def test_unread_count_is_sent_on_connect(any_app: Flask) -> None:
    notify(any_app, "one")
    notify(any_app, "two")

    bob = connect(any_app, "bob")

    assert received(bob, "notification:unread_count") == [{"count": 2}]
    alice = connect(any_app, "alice")
    assert received(alice, "notification:unread_count") == [{"count": 0}]


def test_offline_recipient_is_handed_to_push_hooks(any_app: Flask) -> None:
    pushed: list[tuple[list[str], str]] = []
    any_app.extensions["realtime"].register_push_hook(lambda users, n: pushed.append((users, n["id"])))
    connect(any_app, "alice")

    sent = notify(any_app, "for both", ("alice", "bob"))

    assert pushed == [(["bob"], sent["id"])], "only the offline recipient is pushed"


def test_list_newest_first_with_read_flags_unread_only_and_limit(any_app: Flask) -> None:
    first, second, third = (notify(any_app, t) for t in ("first", "second", "third"))
    bob = connect(any_app, "bob")
    bob.emit("notifications:mark_read", [second["id"]], callback=True)

    everything = listed(bob)
    assert [(n["title"], n["read"]) for n in everything["notifications"]] == [
        ("third", False),
        ("second", True),
        ("first", False),
    ]
    assert everything["unreadCount"] == 2
    assert set(everything["notifications"][0]) == {"id", "type", "title", "body", "data", "createdAt", "read"}

    unread = listed(bob, unreadOnly=True)
    assert [n["id"] for n in unread["notifications"]] == [third["id"], first["id"]]
    assert unread["unreadCount"] == 2

    newest = listed(bob, limit=1)
    assert [n["id"] for n in newest["notifications"]] == [third["id"]]
    assert newest["unreadCount"] == 2, "the count is not limited by the page"

    newest_unread = listed(bob, unreadOnly=True, limit=1)
    assert [n["id"] for n in newest_unread["notifications"]] == [third["id"]]


def test_list_of_user_without_notifications_is_empty(any_app: Flask) -> None:
    notify(any_app, "for bob")
    alice = connect(any_app, "alice")

    assert listed(alice) == {"notifications": [], "unreadCount": 0}


@pytest.mark.parametrize("wrap", [pytest.param(False, id="bare-array"), pytest.param(True, id="object")])
def test_mark_read_updates_every_tab(any_app: Flask, wrap: bool) -> None:
    first, second, third = (notify(any_app, t) for t in ("first", "second", "third"))
    token = TokenActions(any_app).create("bob")
    tab1, tab2 = connect(any_app, "bob", token), connect(any_app, "bob", token)
    alice = connect(any_app, "alice")
    for client in (tab1, tab2, alice):
        client.get_received()
    ids = [first["id"], third["id"], first["id"]]

    ack = tab1.emit("notifications:mark_read", {"ids": ids} if wrap else ids, callback=True)

    assert ack == {"ok": True, "data": {"marked": 2, "unreadCount": 1}}
    for tab in (tab1, tab2):
        assert received(tab, "notification:unread_count") == [{"count": 1}]
    assert received(alice, "notification:unread_count") == []
    assert [n["id"] for n in listed(tab2, unreadOnly=True)["notifications"]] == [second["id"]]


def test_mark_read_of_unknown_or_read_ids_changes_nothing(any_app: Flask) -> None:
    sent = notify(any_app, "only")
    bob = connect(any_app, "bob")
    assert bob.emit("notifications:mark_read", [sent["id"]], callback=True)["data"] == {"marked": 1, "unreadCount": 0}
    bob.get_received()

    unknown = bob.emit("notifications:mark_read", ["n-doesnotexist"], callback=True)
    again = bob.emit("notifications:mark_read", {"ids": [sent["id"]]}, callback=True)

    assert unknown == {"ok": True, "data": {"marked": 0, "unreadCount": 0}}
    assert again == {"ok": True, "data": {"marked": 0, "unreadCount": 0}}
    assert received(bob, "notification:unread_count") == []


def test_cannot_mark_another_users_notification(any_app: Flask) -> None:
    sent = notify(any_app, "bob's", ("bob",))
    alice = connect(any_app, "alice")

    ack = alice.emit("notifications:mark_read", [sent["id"]], callback=True)

    assert ack["data"] == {"marked": 0, "unreadCount": 0}
    bob = connect(any_app, "bob")
    assert listed(bob)["unreadCount"] == 1


def test_cap_keeps_newest_notifications(capped_app: Flask) -> None:
    sent = [notify(capped_app, f"n{i}") for i in range(5)]

    bob = connect(capped_app, "bob")

    assert received(bob, "notification:unread_count") == [{"count": 3}]
    page = listed(bob)
    assert [n["id"] for n in page["notifications"]] == [sent[4]["id"], sent[3]["id"], sent[2]["id"]]
    assert page["unreadCount"] == 3
    evicted = bob.emit("notifications:mark_read", [sent[0]["id"]], callback=True)
    assert evicted["data"] == {"marked": 0, "unreadCount": 3}, "trimmed notifications are no longer unread"


@pytest.mark.parametrize(
    ("event", "payload", "code", "field"),
    [
        pytest.param("notifications:list", {"limit": 0}, "VALIDATION_ERROR", "limit", id="list-limit-0"),
        pytest.param("notifications:list", {"limit": 101}, "VALIDATION_ERROR", "limit", id="list-limit-101"),
        pytest.param("notifications:list", {"limit": "many"}, "VALIDATION_ERROR", "limit", id="list-limit-word"),
        pytest.param(
            "notifications:list", {"unreadOnly": "true"}, "VALIDATION_ERROR", "unreadOnly", id="list-flag-string"
        ),
        pytest.param("notifications:list", {"unreadOnly": 1}, "VALIDATION_ERROR", "unreadOnly", id="list-flag-int"),
        pytest.param("notifications:list", {"page": 2}, "VALIDATION_ERROR", "page", id="list-extra-key"),
        pytest.param("notifications:list", [], "VALIDATION_ERROR", None, id="list-bare-array"),
        pytest.param("notifications:mark_read", [], "VALIDATION_ERROR", "ids", id="mark-empty"),
        pytest.param("notifications:mark_read", {"ids": []}, "VALIDATION_ERROR", "ids", id="mark-empty-object"),
        pytest.param(
            "notifications:mark_read", [f"n-{i}" for i in range(101)], "VALIDATION_ERROR", "ids", id="mark-101"
        ),
        pytest.param("notifications:mark_read", [""], "VALIDATION_ERROR", "ids", id="mark-empty-id"),
        pytest.param("notifications:mark_read", ["n" * 65], "VALIDATION_ERROR", "ids", id="mark-65-chars"),
        pytest.param("notifications:mark_read", [7], "VALIDATION_ERROR", "ids", id="mark-number-id"),
        pytest.param("notifications:mark_read", "n-1", "VALIDATION_ERROR", "ids", id="mark-bare-string"),
        pytest.param("notifications:mark_read", {"id": "n-1"}, "VALIDATION_ERROR", "ids", id="mark-wrong-key"),
    ],
)
def test_bad_input_gets_exact_code(any_app: Flask, event: str, payload: Any, code: str, field: str | None) -> None:
    sent = notify(any_app, "keep")
    bob = connect(any_app, "bob")

    ack = bob.emit(event, payload, callback=True)

    assert ack["ok"] is False
    assert ack["error"]["code"] == code
    if field is None:
        assert "fields" not in ack["error"]
    else:
        assert field in ack["error"]["fields"], ack["error"]
    assert bob.is_connected(), "bad input must never drop the socket"
    assert [n["id"] for n in listed(bob)["notifications"]] == [sent["id"]]
