"""The demo chat page (``GET /`` outside prod) and its development token endpoint.

HTTP checks use Flask's test client; the browser test starts the Procfile's gunicorn command (embedded
default, no Redis: what a newcomer gets from ``make run``) and drives two headless system-Chromium users
through Playwright in a separate, unpatched Python process (see ``tests/helpers/browser.py``).
"""
from __future__ import annotations

import importlib.util
import json
import re
import tempfile
import uuid
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from flask import Flask

from realtime import create_app
from tests.helpers.browser import run_scenario
from tests.helpers.e2e_cluster import REPO_ROOT, GunicornProcess

pytestmark = pytest.mark.e2e

DEMO_SECRET = "demo-page-secret-0123456789abcdefghijklmnop"
VENDOR_BUNDLE = REPO_ROOT / "realtime" / "static" / "vendor" / "socket.io.min.js"
NODE_BUNDLE = REPO_ROOT / "tests" / "node" / "node_modules" / "socket.io-client" / "dist" / "socket.io.min.js"
PACKAGE_LOCK = REPO_ROOT / "tests" / "node" / "package-lock.json"
#: Screenshots for a human to look at; outside the repository on purpose.
SCREENSHOT_DIR = Path(tempfile.gettempdir()) / "realtime-demo-page"
PRESENCE = {"online", "away", "busy", "offline", "unknown"}
CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class AssetCollector(HTMLParser):
    """Every ``<script src>`` and ``<link href>`` of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script" and values.get("src"):
            self.scripts.append(str(values["src"]))
        if tag == "link" and values.get("href"):
            self.links.append(str(values["href"]))


def pinned_client_version() -> str:
    lock = json.loads(PACKAGE_LOCK.read_text(encoding="utf-8"))
    return str(lock["packages"]["node_modules/socket.io-client"]["version"])


# ---------------------------------------------------------------- HTTP (Flask test client)


def test_index_references_only_local_assets(app: Flask) -> None:
    client = app.test_client()
    response = client.get("/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    for element_id in (
        "user-id",
        "display-name",
        "room-id",
        "join",
        "status",
        "messages",
        "message-input",
        "send",
        "typing",
        "online",
    ):
        assert f'id="{element_id}"' in html, element_id

    assets = AssetCollector()
    assets.feed(html)
    assert "/static/realtime/vendor/socket.io.min.js" in assets.scripts
    for url in assets.scripts + assets.links:
        assert not re.match(r"^(https?:)?//", url, re.IGNORECASE), f"non-local asset {url}"
        if url.startswith("data:"):
            continue
        asset = client.get(url)
        assert asset.status_code == 200, url
        asset.close()
    assert "@import" not in client.get("/static/realtime/demo.css").get_data(as_text=True)


def test_vendored_bundle_is_the_pinned_socket_io_client(app: Flask) -> None:
    version = pinned_client_version()
    served = app.test_client().get("/static/realtime/vendor/socket.io.min.js")
    assert served.status_code == 200
    assert "javascript" in (served.mimetype or "")
    body = served.get_data()
    assert body == VENDOR_BUNDLE.read_bytes()
    assert f"Socket.IO v{version}".encode() in body[:200], "vendor bundle differs from tests/node/package-lock.json"
    if NODE_BUNDLE.is_file():  # after `npm ci` in tests/node: byte-for-byte the same file
        assert body == NODE_BUNDLE.read_bytes()


def test_demo_page_is_not_served_in_prod(redis_url: str) -> None:
    prod = create_app(
        {
            "APP_ENV": "prod",
            "JWT_SECRET": DEMO_SECRET,
            "ALLOWED_ORIGINS": "https://app.example",
            "REDIS_URL": redis_url,
            "MESSAGE_QUEUE_URL": "",
            "LOG_LEVEL": "WARNING",
        }
    )
    client = prod.test_client()
    try:
        assert client.get("/").status_code == 404
        assert client.post("/dev/token", json={"userId": "alice"}).status_code == 404
        assert client.get("/static/realtime/vendor/socket.io.min.js").status_code == 404
        assert client.get("/healthz").status_code == 200
    finally:
        prod.extensions["realtime"].lifecycle.stop()


@pytest.mark.parametrize(
    "body",
    [
        {"userId": "../x"},
        {"userId": ""},
        {"userId": "x" * 65},
        {"username": "alice"},
        {"userId": "alice", "username": "x" * 41},
        ["alice"],
    ],
)
def test_dev_token_refuses_bad_input(app: Flask, body: Any) -> None:
    response = app.test_client().post("/dev/token", json=body)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert error["message"]


def test_dev_token_refuses_non_json(app: Flask) -> None:
    response = app.test_client().post("/dev/token", data="userId=alice")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "VALIDATION_ERROR"


def test_dev_token_mints_a_session_token(app: Flask, config: dict[str, Any]) -> None:
    response = app.test_client().post("/dev/token", json={"userId": "alice", "username": "Alice A."})
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"token", "userId", "expiresIn"}
    assert body["userId"] == "alice"
    assert isinstance(body["expiresIn"], int) and body["expiresIn"] > 0
    claims = jwt.decode(body["token"], config["JWT_SECRET"], algorithms=["HS256"])
    assert claims["sub"] == "alice"
    assert claims["sid"]


# ---------------------------------------------------------------- real server + headless Chromium


def test_real_server_serves_page_bundle_and_tokens(embedded_server: GunicornProcess) -> None:
    headers = {"Connection": "close"}  # no idle keep-alive socket delaying the graceful stop
    page = requests.get(f"{embedded_server.url}/", headers=headers, timeout=5)
    assert page.status_code == 200
    assert "/static/realtime/vendor/socket.io.min.js" in page.text
    bundle = requests.get(f"{embedded_server.url}/static/realtime/vendor/socket.io.min.js", headers=headers, timeout=5)
    assert bundle.status_code == 200
    assert bundle.content == VENDOR_BUNDLE.read_bytes()
    token = requests.post(f"{embedded_server.url}/dev/token", json={"userId": "carol"}, headers=headers, timeout=5)
    assert token.status_code == 200
    assert token.json()["userId"] == "carol"
    refused = requests.post(f"{embedded_server.url}/dev/token", json={"userId": "../x"}, headers=headers, timeout=5)
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "VALIDATION_ERROR"


def texts(snapshot: dict[str, Any]) -> list[str]:
    return [m["text"] for m in snapshot["messages"]]


def test_two_browsers_chat_through_the_page(embedded_server: GunicornProcess) -> None:
    if importlib.util.find_spec("playwright") is None:
        pytest.fail("Playwright is not installed: `make install-test` installs the test extras (playwright>=1.40,<2).")
    tag = uuid.uuid4().hex[:8]
    first = f'hello <img src=x onerror="window.__xss=1"> <b>bold?</b> from alice {tag}'
    second = f"second from alice {tag}"
    params = {
        "baseUrl": embedded_server.url,
        "first": first,
        "second": second,
        "screenshotDir": str(SCREENSHOT_DIR),
    }
    result = run_scenario("chat", params, timeout=60)
    alice, bob = result["alice"], result["bob"]
    context = json.dumps({"alice": alice, "bob": bob, "log": embedded_server.log_tail(20)}, indent=1)

    assert result["problems"] == [], context
    origin = embedded_server.url.split("://", 1)[1]
    for url in result["requests"]:
        assert url.split("://", 1)[1].startswith(origin + "/"), f"request outside the server: {url}"

    for name, page in (("alice", alice), ("bob", bob)):
        assert page["status"]["state"] == "connected", context
        assert page["status"]["transport"] in {"websocket", "polling"}, context
        assert page["roomTitle"] == "#lobby", context
        assert page["joinError"] is None, context
        assert page["pending"] == 0, f"{name}: unsent or failed messages\n{context}"
        assert page["htmlInMessages"] == 0 and page["xss"] is None, f"{name}: message text rendered as HTML"
        assert not page["overflowX"], f"{name}: page scrolls sideways"
        ids = [m["id"] for m in page["messages"]]
        assert len(ids) == len(set(ids)), f"{name}: a message rendered twice\n{context}"
        users = {u["userId"]: u for u in page["online"]}
        assert name in users and users[name]["presence"] in PRESENCE, context
        assert users[name]["presence"] != "offline", context

    # Alice sees both of her messages, once each, in order, with her display name.
    assert texts(alice) == [first, second], context
    assert all(m["senderId"] == "alice" and m["sender"] == "Alice" and m["time"] for m in alice["messages"])
    # Bob joined after the first message: he sees the second one exactly once (the first only as history).
    assert texts(bob).count(second) == 1, context
    assert texts(bob).count(first) <= 1, context
    bob_second = next(m for m in bob["messages"] if m["text"] == second)
    assert bob_second["senderId"] == "alice" and bob_second["sender"] in {"Alice", "alice"}, context
    assert bob_second["id"] == alice["messages"][1]["id"], "both pages show the same server message"
    assert "alice" in {u["userId"] for u in bob["online"]}, "a sender is listed in Who is online"
    # Typing and presence end to end, when this server implements them (the page degrades otherwise).
    if result["typing_supported"]:
        assert result["bob_typing"] == "Alice is typing…", context
        assert bob["typing"] == "", "the indicator stops when Alice sends"
    if result["presence_supported"]:
        assert {u["userId"]: u["presence"] for u in bob["online"]}["alice"] == "away", context
        assert {u["userId"]: u["presence"] for u in alice["online"]}["alice"] == "away", context

    # What alice's page sent: every event with an ack callback; messages with a fresh, valid clientId first.
    emitted = result["alice_emitted"]
    assert all(e["ack"] for e in emitted), emitted
    assert {"event": "chat:join", "payload": {"roomId": "lobby"}, "ack": True} in emitted
    sends = [e["payload"] for e in emitted if e["event"] == "chat:message"]
    attempts = [p for p in sends if "clientId" in p]
    assert attempts and all(CLIENT_ID.fullmatch(p["clientId"]) for p in attempts), sends
    assert len({p["clientId"] for p in attempts}) == len({p["content"] for p in attempts}), "one clientId per message"
    assert {p["content"] for p in sends} == {first, second}
    assert all(p["roomId"] == "lobby" for p in sends)

    for path in result["screenshots"]:
        assert Path(path).stat().st_size > 5_000, path


def test_page_handles_every_server_event_of_the_contract(embedded_server: GunicornProcess) -> None:
    """History (both sources, deduped), typing, joins and leaves, presence, notifications, force_logout.

    The events are handed to the page's own socket listeners, so this runs whatever the server implements.
    """
    if importlib.util.find_spec("playwright") is None:
        pytest.fail("Playwright is not installed: `make install-test` installs the test extras (playwright>=1.40,<2).")
    room = f"contract-{uuid.uuid4().hex[:8]}"
    xss = '<img src=x onerror="window.__xss=1">'
    out = run_scenario("contract", {"baseUrl": embedded_server.url, "room": room, "xss": xss}, timeout=60)
    context = json.dumps(out, indent=1)

    assert out["problems"] == [], context
    typing_on = [e for e in out["emitted_while_typing"] if e["payload"]["isTyping"] is True]
    assert len(typing_on) <= 1, "chat:typing true is sent at most once per 2 s"

    history = out["after_history"]
    assert texts(history) == ["first", xss, "third"], "history rendered oldest first, each message once"
    assert {m["sender"] for m in history["messages"]} == {"Dave D."}, "sender.username is shown"
    assert history["htmlInMessages"] == 0 and history["xss"] is None
    assert out["typing_on"] == "Dave D. is typing…"
    assert out["typing_off"] == ""

    users = {u["userId"]: u["presence"] for u in out["after_presence"]["online"]}
    assert {"carol", "dave", "erin"} <= set(users), context
    assert users["erin"] == "away", context
    assert out["notices"] == ["erin joined", "erin left"]
    assert out["unread_count"] == "3"
    assert out["unread_after_new"] == "4"
    assert all(e["ack"] for e in out["emitted"]), "every emit asks for an ack"

    logged_out = out["after_logout"]["status"]
    assert logged_out["state"] == "disconnected" and logged_out["text"] == "Logged out: duplicate login", context
    assert out["banner"] and out["banner"].startswith("Logged out: duplicate login")
    assert out["sockets_connected"] == [False], "no reconnection after force_logout"
