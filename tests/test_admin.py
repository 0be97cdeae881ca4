"""The admin view over HTTP (Flask's test client) on both transports: off by default, the token rules,
the static page, what the API shows and the two actions. The browser test is ``tests/e2e/test_admin_page.py``."""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_socketio import SocketIOTestClient

from realtime import create_app
from realtime.config import ConfigError, load_settings
from realtime.extensions import socketio
from tests.conftest import APP_FIXTURES, TokenActions
from tests.helpers.greenlets import wait_until

ADMIN_TOKEN = "admin-token-for-tests-0123456789abcdefgh"
#: Every API route: method, path.
ROUTES = [
    ("GET", "/admin/api/overview"),
    ("GET", "/admin/api/users"),
    ("POST", "/admin/api/sockets/nosuchsid/disconnect"),
    ("POST", "/admin/api/users/nobody/logout"),
]


def prod(**changes: str | None) -> dict[str, Any]:
    """A complete, valid prod configuration with ``changes`` applied (``None`` removes a variable)."""
    base: dict[str, Any] = {
        "APP_ENV": "prod",
        "REDIS_URL": "redis://localhost:6379/0",
        "JWT_SECRET": "s" * 48,
        "ALLOWED_ORIGINS": "https://app.example.com",
    }
    base.update(changes)
    return {name: value for name, value in base.items() if value is not None}


@pytest.fixture
def config(config: dict[str, Any]) -> dict[str, Any]:
    """The suite's config with the admin view on."""
    return {**config, "ADMIN_ENABLED": "true", "ADMIN_TOKEN": ADMIN_TOKEN}


@pytest.fixture
def admin_app(transport: str, request: pytest.FixtureRequest) -> Flask:
    """The admin-enabled app on the memory or the Redis transport, its background work started."""
    app: Flask = request.getfixturevalue(APP_FIXTURES[transport])
    services = app.extensions["realtime"]
    services.lifecycle.ensure_started()
    ready = getattr(services.bus, "ready", None)
    if ready is not None:
        assert ready.wait(5), "control channel not subscribed"
    return app


@pytest.fixture
def disabled_app() -> Iterator[Flask]:
    app = create_app({"APP_ENV": "local", "JWT_SECRET": "t" * 40, "LOG_LEVEL": "WARNING"})
    yield app
    app.extensions["realtime"].lifecycle.stop()


def bearer(token: str = ADMIN_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def api(client: FlaskClient, method: str, path: str) -> Any:
    """The ``data`` of a successful call with the right token."""
    response = client.open(path, method=method, headers=bearer())
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["ok"] is True
    return body["data"]


# ------------------------------------------------------------------ configuration


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        pytest.param({"ADMIN_ENABLED": "true"}, "ADMIN_TOKEN is not set", id="enabled-without-token"),
        pytest.param({"ADMIN_ENABLED": "true", "ADMIN_TOKEN": "x" * 31}, "ADMIN_TOKEN is 31 characters", id="token-31"),
        pytest.param({"ADMIN_ENABLED": "true", "ADMIN_TOKEN": "   "}, "ADMIN_TOKEN is not set", id="blank-token"),
        pytest.param(prod(ADMIN_ENABLED="true"), "ADMIN_TOKEN is not set", id="prod-enabled-without-token"),
        pytest.param(prod(ADMIN_ENABLED="true", ADMIN_TOKEN="short"), "at least 32", id="prod-short-token"),
        pytest.param({"ADMIN_ENABLED": "maybe"}, "ADMIN_ENABLED is 'maybe'; use true or false", id="not-a-flag"),
    ],
)
def test_enabling_without_a_long_token_refuses_to_start(overrides: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_settings(overrides, environ={})
    assert fragment in str(excinfo.value)
    assert "x" * 31 not in str(excinfo.value), "the error message quotes no token"


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({}, id="off-by-default"),
        pytest.param({"ADMIN_TOKEN": "short"}, id="token-alone-does-not-enable"),
        pytest.param({"ADMIN_ENABLED": "true", "ADMIN_TOKEN": "x" * 32}, id="enabled-32"),
        pytest.param(prod(ADMIN_ENABLED="true", ADMIN_TOKEN="x" * 32), id="prod-enabled-32"),
    ],
)
def test_accepted_admin_settings(overrides: dict[str, str]) -> None:
    settings = load_settings(overrides, environ={})
    assert settings.admin_enabled is (overrides.get("ADMIN_ENABLED") == "true")
    assert "x" * 32 not in repr(settings), "ADMIN_TOKEN stays out of the settings' repr"


# ------------------------------------------------------------------ authorization


def test_disabled_admin_view_is_not_found(disabled_app: Flask) -> None:
    client = disabled_app.test_client()
    for path in ("/admin", "/admin/", "/admin/static/admin.js"):
        assert client.get(path).status_code == 404, path
    for method, path in ROUTES:
        assert client.open(path, method=method, headers=bearer()).status_code == 404, path


@pytest.mark.parametrize(
    ("authorization", "status", "code"),
    [
        pytest.param(None, 401, "AUTH_REQUIRED", id="no-header"),
        pytest.param("", 401, "AUTH_REQUIRED", id="empty-header"),
        pytest.param("Bearer ", 401, "AUTH_REQUIRED", id="bearer-without-token"),
        pytest.param(f"Basic {ADMIN_TOKEN}", 401, "AUTH_REQUIRED", id="other-scheme"),
        pytest.param("Bearer wrong", 403, "FORBIDDEN", id="wrong-token"),
        pytest.param(f"Bearer {ADMIN_TOKEN[:-1]}", 403, "FORBIDDEN", id="token-prefix"),
        pytest.param(f"Bearer {ADMIN_TOKEN}x", 403, "FORBIDDEN", id="token-plus-one"),
        pytest.param(f"Bearer {ADMIN_TOKEN.upper()}", 403, "FORBIDDEN", id="token-other-case"),
    ],
)
@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_api_refuses_without_the_right_token(
    admin_app: Flask, method: str, path: str, authorization: str | None, status: int, code: str
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = admin_app.test_client().open(path, method=method, headers=headers)
    assert response.status_code == status
    body = response.get_json()
    assert body["ok"] is False and body["error"]["code"] == code
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.headers["Cache-Control"] == "no-store"


def test_right_token_is_accepted(admin_app: Flask) -> None:
    client = admin_app.test_client()
    assert api(client, "GET", "/admin/api/overview")["totals"]["workers"] == 1
    assert api(client, "GET", "/admin/api/users") == {"users": [], "next": None}
    missing = client.post("/admin/api/sockets/nosuchsid/disconnect", headers=bearer())
    assert (missing.status_code, missing.get_json()["error"]["code"]) == (404, "NOT_FOUND")
    malformed = client.post("/admin/api/users/bad..id/logout", headers=bearer())
    assert (malformed.status_code, malformed.get_json()["error"]["code"]) == (400, "VALIDATION_ERROR")


def test_page_is_a_static_shell_with_local_assets_only(admin_app: Flask) -> None:
    client = admin_app.test_client()
    page = client.get("/admin")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    for element_id in ("token-form", "admin-token", "workers", "rooms", "users", "errors"):
        assert f'id="{element_id}"' in html, element_id
    assert ADMIN_TOKEN not in html
    assert 'name="' not in html.split('id="token-form"', 1)[1].split("</form>", 1)[0], "the token field has no name"
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY" and page.headers["Cache-Control"] == "no-store"
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and all(src.startswith(("/admin/static/", "data:")) for src in sources), sources
    for src in sources:
        if src.startswith("/"):
            asset = client.get(src)
            assert asset.status_code == 200, src
            text = asset.get_data(as_text=True)
            assert not re.search(r"https?://|@import|fonts\.", text), f"{src} loads something from elsewhere"
            asset.close()
    assert client.get("/admin/static/demo.js").status_code == 404, "only the page's own assets"


# ------------------------------------------------------------------ what it shows and does


def connect(app: Flask, token: str) -> SocketIOTestClient:
    return socketio.test_client(app, auth={"token": token})


def test_overview_and_users_show_the_sockets_and_rooms(admin_app: Flask, transport: str) -> None:
    actions = TokenActions(admin_app)
    alice_token, bob_token = actions.create("alice"), actions.create("bob")
    alice, bob = connect(admin_app, alice_token), connect(admin_app, bob_token)
    assert alice.is_connected() and bob.is_connected()
    services = admin_app.extensions["realtime"]
    sids = {identity.user_id: sid for sid, identity in services.connections.items()}
    services.lifecycle.beat()  # publish this worker's record now (with Redis; in memory it is built when read)
    client = admin_app.test_client()
    raw = client.get("/admin/api/overview", headers=bearer()).get_data(as_text=True)
    overview = json.loads(raw)["data"]
    (worker,) = overview["workers"]
    assert worker["sockets"] == 2 and worker["users"] == 2
    assert {(sock["sid"], sock["userId"]) for sock in worker["listed"]} == {(sids["alice"], "alice"), (sids["bob"], "bob")}
    assert set(worker["rates"]) == {"eventsReceived", "eventsEmitted", "deliveries", "eventErrors"}
    rooms = {room["room"]: (room["sockets"], room["users"]) for room in overview["rooms"]}
    assert rooms["broadcast:all"] == (2, 2) and rooms["user:alice"] == (1, 1)
    users = api(client, "GET", "/admin/api/users")
    assert users["users"] == [{"userId": "alice", "sockets": [sids["alice"]]}, {"userId": "bob", "sockets": [sids["bob"]]}]
    assert api(client, "GET", "/admin/api/users?userId=bob")["users"] == [{"userId": "bob", "sockets": [sids["bob"]]}]
    for token in (alice_token, bob_token):
        assert token not in raw and token not in json.dumps(users)
    session_ids = [identity.session_id for _, identity in services.connections.items()]
    assert not any(session_id in raw for session_id in session_ids), "session ids stay out of the answers"


def test_disconnect_and_force_logout(admin_app: Flask) -> None:
    actions = TokenActions(admin_app)
    alice_token, bob_token = actions.create("alice"), actions.create("bob")
    alice_tab1, alice_tab2 = connect(admin_app, alice_token), connect(admin_app, alice_token)
    bob = connect(admin_app, bob_token)
    services = admin_app.extensions["realtime"]
    bob_sid = next(sid for sid, identity in services.connections.items() if identity.user_id == "bob")
    client = admin_app.test_client()

    done = api(client, "POST", f"/admin/api/sockets/{bob_sid}/disconnect")
    assert done == {"sid": bob_sid, "userId": "bob", "disconnected": True}
    assert wait_until(lambda: not bob.is_connected(), timeout=3.0), "bob's socket is still connected"
    assert alice_tab1.is_connected() and alice_tab2.is_connected()
    assert connect(admin_app, bob_token).is_connected(), "a disconnect revokes nothing"

    done = api(client, "POST", "/admin/api/users/alice/logout")
    assert done == {"userId": "alice", "sessions": 1, "sockets": 2}
    assert wait_until(lambda: not alice_tab1.is_connected() and not alice_tab2.is_connected(), timeout=3.0)
    for tab in (alice_tab1, alice_tab2):
        assert [m["args"][0] for m in tab.queue if m["name"] == "force_logout"] == [{"reason": "revoked"}]
    assert not connect(admin_app, alice_token).is_connected(), "the revoked session's token no longer connects"
    again = client.post("/admin/api/users/alice/logout", headers=bearer())
    assert again.status_code == 404, "nobody left to log out"
