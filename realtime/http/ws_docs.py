"""The event catalogue (seed 000 §19): HTML, AsyncAPI JSON, event JSON, TypeScript types and the typed client.

Registered only when ``WS_DOCS_ENABLED`` is true (default outside prod); otherwise every route is 404.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, current_app, jsonify, render_template, request
from flask.typing import ResponseReturnValue

from realtime.docs.client import build_client_dts, build_client_js, react_dts, react_js
from realtime.docs.registry import EventRegistry

bp = Blueprint("ws_docs", __name__, url_prefix="/ws-docs", static_folder="../static", static_url_path="/static")

STATIC = Path(__file__).resolve().parent.parent / "static"
STANDALONE_ASSETS = ("vendor/socket.io.min.js", "ws_docs.css", "ws_docs.js")


def registry() -> EventRegistry:
    """The registry built by the app factory."""
    docs: EventRegistry = current_app.extensions["realtime_docs"]
    return docs


def servers_for(app: Flask, host_url: str | None) -> dict[str, Any]:
    """AsyncAPI ``servers``: ``PUBLIC_URL`` when configured, else the host serving the request."""
    settings = app.extensions["realtime"].settings
    base = settings.public_url or host_url or f"http://127.0.0.1:{settings.port}/"
    parts = urlsplit(base)
    secure = parts.scheme in ("https", "wss")
    return {
        settings.app_env: {
            "url": parts.netloc,
            "protocol": "wss" if secure else "ws",
            "protocolVersion": "5",
            "description": f"Socket.IO endpoint {parts.scheme}://{parts.netloc}/socket.io/ ({settings.app_env}).",
        }
    }


def page_context(app: Flask, standalone: bool) -> dict[str, Any]:
    """Everything the catalogue template renders."""
    docs: EventRegistry = app.extensions["realtime_docs"]
    settings = app.extensions["realtime"].settings
    return {
        "events": docs.get_all_events(),
        "categories": docs.categories(),
        "title": docs.title,
        "version": docs.version,
        "can_mint_tokens": settings.app_env != "prod" and not standalone,
        "standalone": standalone,
        "assets": {name: (STATIC / name).read_text() for name in STANDALONE_ASSETS} if standalone else {},
    }


@bp.get("")
def catalogue() -> ResponseReturnValue:
    """The HTML catalogue with the try-it console."""
    return render_template("ws_docs.html", **page_context(current_app, standalone=False))


@bp.get("/spec")
def spec() -> ResponseReturnValue:
    """The AsyncAPI 2.6.0 document."""
    return jsonify(registry().generate_asyncapi_spec(servers_for(current_app, request.host_url)))


@bp.get("/events")
def events() -> ResponseReturnValue:
    """Every event."""
    docs = registry()
    all_events = docs.get_all_events()
    return jsonify(count=len(all_events), categories=docs.categories(), events=all_events)


@bp.get("/events/category/<category>")
def events_by_category(category: str) -> ResponseReturnValue:
    """The events of one category."""
    found = registry().get_events_by_category(category)
    if not found:
        return _not_found(f"No category {category!r}; see /ws-docs/events for the list.")
    return jsonify(category=category, count=len(found), events=found)


@bp.get("/events/<name>")
def event(name: str) -> ResponseReturnValue:
    """One event name: one entry, or two when the name is used in both directions."""
    found = registry().get_event(name)
    if not found:
        return _not_found(f"No event {name!r}; see /ws-docs/events for the list.")
    return jsonify(name=name, events=found)


@bp.get("/types.ts")
def types() -> ResponseReturnValue:
    """TypeScript interfaces for socket.io-client."""
    return registry().generate_client_types(), 200, {"Content-Type": "text/plain; charset=utf-8"}


@bp.get("/client.js")
def client_js() -> ResponseReturnValue:
    """The typed client as an ES module (it uses ``window.io`` unless given ``io``)."""
    return build_client_js(registry()), 200, {"Content-Type": "text/javascript; charset=utf-8"}


@bp.get("/client.d.ts")
def client_dts() -> ResponseReturnValue:
    """The typed client's declarations."""
    return build_client_dts(registry()), 200, {"Content-Type": "text/plain; charset=utf-8"}


@bp.get("/client-react.js")
def client_react_js() -> ResponseReturnValue:
    """The client's React bindings as an ES module (it imports ``react``: for a bundler or an import map)."""
    return react_js(), 200, {"Content-Type": "text/javascript; charset=utf-8"}


@bp.get("/client-react.d.ts")
def client_react_dts() -> ResponseReturnValue:
    """The React bindings' declarations (they import ``./client.js``: save them beside ``client.d.ts``)."""
    return react_dts(), 200, {"Content-Type": "text/plain; charset=utf-8"}


def _not_found(message: str) -> ResponseReturnValue:
    return jsonify(ok=False, error={"code": "NOT_FOUND", "message": message}), 404
