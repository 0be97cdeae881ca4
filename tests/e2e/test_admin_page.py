"""The admin view on two real servers sharing Redis, driven in headless Chromium.

Servers A and B run the Procfile command with ``ADMIN_ENABLED``; real Node ``socket.io-client`` sockets sit on
both. The page, served by A with the token typed in, must show every socket on its worker, the room with its
member counts, the users online and an error a bad event caused; its "Disconnect" must close a socket that
lives on B, and its "Force logout" must reach the user's sockets on both servers and stop their token.
Nothing the browser receives may contain a token.
"""
from __future__ import annotations

import json
import tempfile
import uuid
from pathlib import Path

import pytest
import requests

from tests.helpers.admin_page_script import run_admin_scenario
from tests.helpers.e2e_cluster import session_id_of
from tests.helpers.e2e_kit import Clients, Cluster, mint, wait_until

pytestmark = pytest.mark.e2e

ADMIN_TOKEN = "e2e-admin-token-0123456789abcdefghijklmnop"
#: A screenshot of the signed-in page for a human to look at; outside the repository on purpose.
SCREENSHOT = Path(tempfile.gettempdir()) / "realtime-admin-page" / "admin.png"


@pytest.fixture(scope="module")
def cluster_overrides() -> dict[str, str | None]:
    # The periodic session check would log a revoked session out too, within its interval: pushed out of the
    # test's reach, so that only the force-logout command itself can pass it.
    return {"ADMIN_ENABLED": "true", "ADMIN_TOKEN": ADMIN_TOKEN, "SESSION_CHECK_INTERVAL": "300"}


def get(cluster: Cluster, path: str, token: str | None) -> requests.Response:
    headers = {"Connection": "close", **({"Authorization": f"Bearer {token}"} if token is not None else {})}
    return requests.get(f"{cluster.a.url}{path}", headers=headers, timeout=5)


@pytest.mark.parametrize(
    ("token", "status"),
    [pytest.param(None, 401, id="no-token"), pytest.param("wrong-token", 403, id="wrong-token"),
     pytest.param(ADMIN_TOKEN, 200, id="admin-token")],
)
def test_api_authorization_on_the_real_server(cluster: Cluster, token: str | None, status: int) -> None:
    response = get(cluster, "/admin/api/overview", token)
    assert response.status_code == status, response.text
    assert response.json()["ok"] is (status == 200)


@pytest.mark.usefixtures("no_server_errors")
def test_page_shows_the_cluster_and_its_actions_reach_both_servers(cluster: Cluster, clients: Clients) -> None:
    users = mint(cluster, "carol", "dave", "erin")
    carol, dave, erin = users["carol"], users["dave"], users["erin"]
    carol_a = clients.connect(carol, cluster.a)
    carol_b = clients.connect(carol, cluster.b)  # same session, second server
    dave_b = clients.connect(dave, cluster.b)
    erin_a = clients.connect(erin, cluster.a)
    room = f"admin-{uuid.uuid4().hex[:8]}"
    for sock in (carol_a, carol_b, dave_b):
        assert sock.call("chat:join", {"roomId": room})["roomId"] == room
    bad = erin_a.emit("chat:message", {"roomId": room})  # no content: VALIDATION_ERROR, logged as a failed event
    assert bad is not None and bad[0]["error"]["code"] == "VALIDATION_ERROR", bad

    mark = clients.nodes.mark()
    out = run_admin_scenario(
        {
            "baseUrl": cluster.a.url,
            "token": ADMIN_TOKEN,
            "wrongToken": ADMIN_TOKEN[::-1],
            "expect": {
                "sids": [carol_a.sid, carol_b.sid, dave_b.sid, erin_a.sid],
                "users": [carol.id, dave.id, erin.id],
                "room": f"group:{room}",
                "roomSize": [3, 2],
                "code": "VALIDATION_ERROR",
                "event": "chat:message",
                # A: carol's chat:join and erin's bad event; B: carol's and dave's chat:join.
                "minReceived": [[carol_a.sid, 2], [carol_b.sid, 2]],
            },
            "disconnect": dave_b.sid,
            "logout": carol.id,
            "screenshot": str(SCREENSHOT),
        }
    )
    shown = out["shown"]
    context = json.dumps({key: value for key, value in out.items() if key != "captured"}, indent=1)[:6000]
    assert out["problems"] == [], context
    assert out["beforeSignIn"]["state"] == "signed-out" and out["beforeSignIn"]["workers"] == []
    assert out["refused"] == {
        "error": "The admin token is not valid.", "state": "signed-out", "dashboardHidden": True, "stored": [],
    }, "a wrong token shows the refusal, no data, and is not kept"
    assert {(r["url"].removeprefix(cluster.a.url).split("?")[0], r["status"]) for r in out["failedResponses"]} == {
        ("/admin/api/overview", 403), ("/admin/api/users", 403),
    }, "only the wrong token's calls failed"

    # Sockets per worker: A's two on one worker, B's two on another.
    worker = {sid: shown["sockets"][sid]["worker"] for sid in (carol_a.sid, carol_b.sid, dave_b.sid, erin_a.sid)}
    assert worker[carol_a.sid] == worker[erin_a.sid] != worker[carol_b.sid] == worker[dave_b.sid], context
    assert shown["sockets"][dave_b.sid]["userId"] == dave.id
    counts = {entry["id"]: entry for entry in shown["workers"]}
    assert counts[worker[carol_a.sid]]["errors"] >= 1 and counts[worker[carol_b.sid]]["errors"] == 0, context
    assert shown["rooms"][f"group:{room}"] == [3, 2], context
    assert sorted(shown["users"][carol.id]) == sorted([carol_a.sid, carol_b.sid]), context
    assert shown["users"][dave.id] == [dave_b.sid] and shown["users"][erin.id] == [erin_a.sid]
    assert any(e["code"] == "VALIDATION_ERROR" and e["event"] == "chat:message" for e in shown["errors"]), context
    assert out["storedKeys"] == ["realtime.adminToken"], "the token is kept in sessionStorage"

    # Disconnect, clicked on the page served by A, closed dave's socket on B; nobody else's.
    gone = dave_b.wait_disconnect(since=mark, timeout=10)
    assert gone["reason"] == "io server disconnect", gone
    assert dave_b.sid not in out["afterDisconnect"]["sockets"], context
    assert erin_a.sid in out["afterDisconnect"]["sockets"]

    # Force logout reached carol's sockets on both servers, and her session's token no longer connects.
    for sock in (carol_a, carol_b):
        assert sock.wait("force_logout", since=mark, timeout=10) == {"reason": "revoked"}
        sock.wait_disconnect(since=mark, timeout=10)
    assert "Logged out" in out["afterLogout"]["status"]["text"] and "2 socket(s)" in out["afterLogout"]["status"]["text"]
    for server in cluster.servers:
        again = clients.open(carol, server)
        assert again.handshake["type"] == "connect_error", again.handshake
    assert wait_until(lambda: not cluster.redis.exists(cluster.key(f"user-sockets:{carol.id}")), 10, "carol's sockets released")
    assert erin_a.emit("presence:check", {"userIds": [erin.id]}) is not None, "erin was left alone"
    assert out["signedOut"] == {"state": "signed-out", "stored": []}

    # Nothing the browser got, page, script or API answer, holds a token, and no URL carries one.
    secrets = [ADMIN_TOKEN, carol.token, dave.token, erin.token, *(session_id_of(u.token) for u in users.values())]
    captured = out["captured"]
    paths = {c["url"].split("?")[0].removeprefix(cluster.a.url) for c in captured}
    assert paths >= {
        "/admin", "/admin/static/admin.js", "/admin/static/admin.css", "/admin/api/overview", "/admin/api/users",
        f"/admin/api/sockets/{dave_b.sid}/disconnect", f"/admin/api/users/{carol.id}/logout",
    }, paths
    for response in captured:
        for secret in secrets:
            assert secret not in response["body"], f"{response['url']} holds a token or session id"
    for request in out["requests"]:
        assert ADMIN_TOKEN not in request["url"]
        assert request["url"].startswith(cluster.a.url + "/"), f"request outside the server: {request['url']}"
    assert all(r["authorization"] for r in out["requests"] if "/admin/api/" in r["url"])
