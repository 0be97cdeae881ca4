"""The HTML event catalogue (``GET /ws-docs``) and its standalone export.

HTTP checks use Flask's test client. The browser tests start the Procfile's gunicorn command (embedded
default, no Redis) and drive headless system Chromium through Playwright in a separate, unpatched Python
process (:mod:`tests.helpers.catalogue_scenario`, run like :mod:`tests.helpers.browser_script`). Screenshots land in
``$TMPDIR/realtime-ws-docs/`` for a human to look at.
"""
from __future__ import annotations

import importlib.util
import json
import re
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask

from realtime import create_app
from tests.helpers.catalogue_scenario import run_catalogue
from tests.helpers.e2e_cluster import REPO_ROOT, GunicornProcess

pytestmark = pytest.mark.e2e

SECRET = "ws-docs-page-secret-0123456789abcdefghijkl"
SCREENSHOT_DIR = Path(tempfile.gettempdir()) / "realtime-ws-docs"
STATIC = REPO_ROOT / "realtime" / "static"
EXTERNAL = re.compile(r"^(https?:)?//", re.IGNORECASE)


class Assets(HTMLParser):
    """Every script, stylesheet, image and inline handler of a page, and the ids and event cards."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self.inline_scripts = 0
        self.links: list[str] = []
        self.images: list[str] = []
        self.handlers: list[str] = []
        self.ids: list[str] = []
        self.cards: list[dict[str, str | None]] = []
        self.styles = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.handlers += [f"{tag}[{name}]" for name, _ in attrs if name.startswith("on")]
        if values.get("id"):
            self.ids.append(str(values["id"]))
        if tag == "script":
            if values.get("src"):
                self.scripts.append(str(values["src"]))
            elif values.get("type") != "application/json":
                self.inline_scripts += 1
        if tag == "link" and values.get("href"):
            self.links.append(str(values["href"]))
        if tag in ("img", "source", "iframe") and values.get("src"):
            self.images.append(str(values["src"]))
        if tag == "style":
            self.styles += 1
        if "event-card" in (values.get("class") or "").split():
            self.cards.append(
                {"id": values.get("id"), "event": values.get("data-event"), "direction": values.get("data-direction")}
            )


def parse(html: str) -> Assets:
    assets = Assets()
    assets.feed(html)
    return assets


# ---------------------------------------------------------------- HTTP (Flask test client)


def test_catalogue_renders_every_event_with_local_assets_only(app: Flask) -> None:
    client = app.test_client()
    listing = client.get("/ws-docs/events").get_json()
    response = client.get("/ws-docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    page = parse(html)

    # One card per event, id = anchor, with name and direction; the two-way name has two distinct ids.
    expected = [{"id": e["anchor"], "event": e["name"], "direction": e["direction"]} for e in listing["events"]]
    assert sorted(page.cards, key=lambda c: str(c["id"])) == sorted(expected, key=lambda c: str(c["id"]))
    assert {"chat:history", "chat:history~server"} <= {c["id"] for c in page.cards}
    assert len(page.ids) == len(set(page.ids)), "duplicate element ids"
    for element_id in ("search", "visible-count", "try-token", "try-user-id", "try-mint", "try-connect",
                       "try-status", "try-event", "try-payload", "try-emit", "try-log"):
        assert element_id in page.ids, element_id
    for category, count in listing["categories"].items():
        assert re.search(
            rf'data-testid="category-count" data-category="{re.escape(category)}">{count}<', html
        ), category
    # Response events link to the server-side anchor of a two-way name.
    assert 'href="#chat:history~server" data-testid="response-event"' in html

    # CSP-friendly and local: no inline handlers or scripts, only local assets, all served.
    assert page.handlers == []
    assert page.inline_scripts == 0 and page.styles == 0
    assert page.scripts == ["/ws-docs/static/vendor/socket.io.min.js", "/ws-docs/static/ws_docs.js"]
    assert "/ws-docs/static/ws_docs.css" in page.links
    for url in page.scripts + page.links + page.images:
        assert not EXTERNAL.match(url), f"non-local asset {url}"
        if url.startswith("data:"):
            continue
        asset = client.get(url)
        assert asset.status_code == 200, url
        asset.close()
    css = client.get("/ws-docs/static/ws_docs.css").get_data(as_text=True)
    assert "@import" not in css and not re.search(r"url\(\s*['\"]?(https?:)?//", css)
    assert "@font-face" not in css
    assert 'action="/dev/token"' not in html  # minting is a fetch, the URL travels in the page data
    data = json.loads(re.search(r'<script type="application/json" id="ws-docs-data">(.*?)</script>', html, re.S)[1])
    assert data["mintUrl"] == "/dev/token" and data["standalone"] is False
    assert [e["name"] for e in data["clientEvents"]] == [
        e["name"] for e in listing["events"] if e["direction"] == "client_to_server"
    ]


def test_standalone_export_inlines_every_asset(app: Flask, tmp_path: Path) -> None:
    target = tmp_path / "catalogue.html"
    result = app.test_cli_runner().invoke(args=["docs", "export", "--format", "html", "-o", str(target)])
    assert result.exit_code == 0, result.output
    html = target.read_text(encoding="utf-8")
    page = parse(html)
    assert len(page.cards) == app.test_client().get("/ws-docs/events").get_json()["count"]
    assert "/ws-docs/static" not in html
    assert page.scripts == [] and [u for u in page.links if not u.startswith("data:")] == []
    assert not [u for u in page.images if not u.startswith("data:")]
    assert page.inline_scripts == 2 and page.styles == 1
    assert "Socket.IO v4.8.4" in html
    assert (STATIC / "ws_docs.js").read_text(encoding="utf-8").splitlines()[0] in html
    assert ".event-card" in html and "try-server" in page.ids
    assert "try-mint" not in page.ids  # no server to mint from
    assert page.handlers == []
    assert "</script" not in html.split("<script>", 1)[1].split("</script>", 1)[0]


def test_catalogue_in_prod_when_enabled_offers_no_minting(redis_url: str) -> None:
    prod = create_app(
        {
            "APP_ENV": "prod",
            "JWT_SECRET": SECRET,
            "ALLOWED_ORIGINS": "https://app.example",
            "REDIS_URL": redis_url,
            "MESSAGE_QUEUE_URL": "",
            "LOG_LEVEL": "WARNING",
            "WS_DOCS_ENABLED": "true",
        }
    )
    try:
        response = prod.test_client().get("/ws-docs")
        assert response.status_code == 200
        html = response.get_data(as_text=True)
        page = parse(html)
        assert "try-mint" not in page.ids and "try-user-id" not in page.ids
        assert "try-token" in page.ids and "flask --app wsgi token create" in html
        assert '"mintUrl": null' in html
    finally:
        prod.extensions["realtime"].lifecycle.stop()


def test_catalogue_is_not_served_in_prod(redis_url: str) -> None:
    prod = create_app(
        {
            "APP_ENV": "prod",
            "JWT_SECRET": SECRET,
            "ALLOWED_ORIGINS": "https://app.example",
            "REDIS_URL": redis_url,
            "MESSAGE_QUEUE_URL": "",
            "LOG_LEVEL": "WARNING",
        }
    )
    try:
        client = prod.test_client()
        assert client.get("/ws-docs").status_code == 404
        assert client.get("/ws-docs/static/ws_docs.js").status_code == 404
    finally:
        prod.extensions["realtime"].lifecycle.stop()


# ---------------------------------------------------------------- real server + headless Chromium


def _need_playwright() -> None:
    if importlib.util.find_spec("playwright") is None:
        pytest.fail("Playwright is not installed: `make install-test` installs the test extras (playwright>=1.40,<2).")


def _visible_events(state: dict[str, Any]) -> set[str]:
    return {c["event"] for c in state["cards"] if c["visible"]}


def test_catalogue_in_a_browser(embedded_server: GunicornProcess) -> None:
    _need_playwright()
    headers = {"Connection": "close"}
    listing = requests.get(f"{embedded_server.url}/ws-docs/events", headers=headers, timeout=5).json()
    out = run_catalogue("catalogue", {"baseUrl": embedded_server.url, "screenshotDir": str(SCREENSHOT_DIR)}, timeout=90)
    context = json.dumps({k: v for k, v in out.items() if k != "initial"}, indent=1)[:6000]

    # (5) nothing complained, nothing left the server.
    assert out["problems"] == [], context
    origin = embedded_server.url.split("://", 1)[1]
    for url in out["requests"]:
        assert url.split("://", 1)[1].startswith(origin + "/") or url.startswith("data:"), f"request outside: {url}"

    # (1) a card per event, the counts shown match.
    initial = out["initial"]
    assert len(initial["cards"]) == listing["count"] == len(listing["events"])
    assert sorted(c["id"] for c in initial["cards"]) == sorted(e["anchor"] for e in listing["events"])
    assert all(c["visible"] for c in initial["cards"])
    assert initial["categoryCounts"] == {k: str(v) for k, v in listing["categories"].items()}
    assert initial["navCounts"] == {k: str(v) for k, v in listing["categories"].items()}
    assert initial["visibleCount"]["count"] == listing["count"]
    assert initial["visibleCount"]["text"].startswith(str(listing["count"]))
    assert not initial["overflowX"] and not out["phone"]["overflowX"]

    # (2) search by name, by field name, no match, cleared.
    typing = out["search_typing"]
    assert _visible_events(typing) == {"chat:typing", "chat:user_typing"}, typing["visibleCards"]
    assert typing["visibleCount"]["count"] == 2 and typing["visibleCount"]["text"].startswith("2 ")
    assert not typing["noMatch"]
    field = out["search_field"]
    assert _visible_events(field) and all(e.startswith("party:") for e in _visible_events(field)), field
    assert {"party:viewer_joined", "party:viewer_left", "party:join_live"} <= _visible_events(field)
    assert any(row.endswith(" viewerCount") for row in field["matchedRows"])
    nothing = out["search_nothing"]
    assert nothing["visibleCards"] == [] and nothing["noMatch"] and nothing["visibleCount"]["count"] == 0
    cleared = out["search_cleared"]
    assert len(cleared["visibleCards"]) == listing["count"] and not cleared["noMatch"]
    assert cleared["visibleCount"]["count"] == listing["count"]

    # (3) deep link in a fresh page, then a hash change.
    link = out["deep_link"]
    assert link["isTarget"] and link["inViewport"] and link["focused"], link
    assert link["top"] < link["innerHeight"] / 2, link
    assert out["hash_change"]["isTarget"] and out["hash_change"]["targets"] == ["chat:history~server"]
    assert out["hash_change"]["inViewport"]

    # (4) the console: refused handshake, mint, connect, try-it button, acks, events, JSON errors.
    assert re.fullmatch(r"qa_[a-z0-9]{4}", out["user_id_default"]), out["user_id_default"]
    refused = out["refused"]
    assert "INVALID_TOKEN" in refused["status"], refused
    assert any(e["kind"] == "error" and e["code"] == "INVALID_TOKEN" for e in refused["log"]), refused
    assert out["user_id_default"] in out["token_info"]
    assert out["connected"]["emitEnabled"] and out["connected"]["transport"] in {"websocket", "polling"}
    assert out["connected"]["status"].startswith("Connected via")
    assert out["try_button"]["event"] == "chat:join" and out["try_button"]["focused"] == "try-payload"
    assert json.loads(out["try_button"]["payload"]) == {"roomId": "lobby"}

    log = out["log"]
    kinds = [(e["kind"], e["event"]) for e in log]
    join_emit = kinds.index(("emit", "chat:join"))
    assert '"roomId": "lobby"' in log[join_emit]["text"] and log[join_emit]["text"].count("→") == 1
    join_ack = next(e for e in log if e["kind"] == "ack" and e["event"] == "chat:join")
    assert join_ack["ok"] == "true" and '"ok": true' in join_ack["text"], join_ack
    assert ("event", "chat:history") in kinds and '"roomId": "lobby"' in log[kinds.index(("event", "chat:history"))]["text"]
    message_ack = next(e for e in log if e["kind"] == "ack" and e["event"] == "chat:message")
    assert message_ack["ok"] == "true", message_ack
    assert "hello from the catalogue" in log[kinds.index(("event", "chat:new_message"))]["text"]
    assert all(re.match(r"\d\d:\d\d:\d\d\.\d{3}", e["text"]) for e in log), "every entry has a timestamp"

    invalid = out["invalid_json"]
    assert invalid["error"].startswith("Invalid JSON") and invalid["ariaInvalid"] == "true", invalid
    assert invalid["logAfter"] == invalid["logBefore"], "invalid JSON must not emit"
    failed = [e for e in log if e["kind"] == "ack" and e["ok"] == "false"]
    assert len(failed) == 1 and failed[0]["code"] == "VALIDATION_ERROR" and "roomId" in failed[0]["text"], failed
    assert log[-1] == failed[0], "newest entry last"
    assert out["error_hidden_after_fix"]
    assert out["log_scroll"]["atBottom"], out["log_scroll"]
    assert out["copied"] in ('{\n  "roomId": "lobby"\n}',) or out["copied"].startswith("unreadable"), out["copied"]

    # Phone: the nav link lands on its card, closes the list, "Try it" opens the console.
    assert out["phone_nav_target"]["isTarget"] and out["phone_nav_target"]["inViewport"]
    assert out["phone_nav_closed"]
    assert out["phone_console"]["event"] == "party:join_live" and not out["phone_console"]["overflowX"]
    for path in out["screenshots"]:
        assert Path(path).stat().st_size > 10_000, path


def test_standalone_export_works_from_disk(embedded_server: GunicornProcess, tmp_path: Path) -> None:
    _need_playwright()
    app = create_app({"APP_ENV": "local", "JWT_SECRET": SECRET, "LOG_LEVEL": "WARNING"})
    try:
        target = tmp_path / "catalogue.html"
        result = app.test_cli_runner().invoke(args=["docs", "export", "--format", "html", "-o", str(target)])
        assert result.exit_code == 0, result.output
    finally:
        app.extensions["realtime"].lifecycle.stop()
    token = requests.post(
        f"{embedded_server.url}/dev/token", json={"userId": "qa_standalone"}, headers={"Connection": "close"}, timeout=5
    ).json()["token"]
    out = run_catalogue(
        "standalone",
        {"file": str(target), "baseUrl": embedded_server.url, "token": token, "screenshotDir": str(SCREENSHOT_DIR)},
        timeout=60,
    )
    assert out["problems"] == [], out
    assert all(url.startswith(("file://", "data:")) or embedded_server.url.split("://")[1] in url for url in out["requests"])
    assert all(c["visible"] for c in out["initial"]["cards"]) and out["initial"]["cards"]
    assert out["target"]["isTarget"] and out["target"]["inViewport"]
    assert _visible_events(out["search"]) == {"chat:typing", "chat:user_typing"}
    assert not out["has_mint"]
    ack = next(e for e in out["log"] if e["kind"] == "ack")
    assert ack["event"] == "chat:join" and ack["ok"] == "true", out["log"]
