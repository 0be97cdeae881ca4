"""AsyncAPI 2.6.0: one channel per event, ``publish`` for client→server, ``subscribe`` for the rest."""
from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from realtime.docs.events import DocumentedEvent, EventDocs

ASYNCAPI_VERSION = "2.6.0"
CATEGORY_DESCRIPTIONS = {
    "chat": "Chat rooms (group:{roomId}): history, messages, typing.",
    "presence": "Who is online, cluster-wide.",
    "party": "Party live feeds (party:{partyId}) and viewer counts.",
    "notifications": "Personal, group and system notifications.",
    "game": "Turn-based games (game:{gameId}).",
    "session": "Session control and errors.",
    "rooms": "Room membership the server takes back when a room's hook no longer admits the user.",
}
HANDSHAKE = (
    "Socket.IO v5 over Engine.IO v4 at path /socket.io/ (websocket, or long-polling then upgrade). "
    "Authenticate the handshake with a JWT in the Socket.IO auth payload ({token}), an Authorization: Bearer "
    "header, or a token query parameter. Refusals arrive as connect_error with data {code, message}: "
    "AUTH_REQUIRED, INVALID_TOKEN, TOKEN_EXPIRED, SESSION_REVOKED, UNAVAILABLE. Every client→server event "
    "answers one ack envelope {ok: true, data} or {ok: false, error: {code, message, fields?}}; without an "
    "ack callback, failures arrive as an error event. Connection-state recovery: the CONNECT answer carries a "
    "pid, every broadcast ends with its offset as an extra string argument, and a client reconnecting within "
    "RECOVERY_WINDOW with {pid, offset} in its auth (socket.io-client >= 4.6 does this by itself) gets its "
    "session back and every missed broadcast, once and in order."
)


def message_key(event_name: str) -> str:
    """A components.messages key for an event (``chat:join`` → ``chat_join``)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", event_name)


def _summary(description: str) -> str:
    first = description.split(". ")[0].rstrip(".")
    return first if len(first) <= 120 else first[:117] + "..."


def _examples_keyword(node: Any) -> Any:
    """JSON Schema draft 7 (AsyncAPI 2.x schemas) has ``examples`` (a list), not OpenAPI's ``example``."""
    if isinstance(node, dict):
        converted = {key: _examples_keyword(value) for key, value in node.items() if key != "example"}
        if "example" in node:
            converted["examples"] = [node["example"]]
        return converted
    if isinstance(node, list):
        return [_examples_keyword(value) for value in node]
    return node


def operation_key(event: DocumentedEvent) -> str:
    """Unique per operation: ``chat_join``; ``chat_history_publish`` / ``_subscribe`` for a two-way name."""
    key = message_key(event.name)
    if event.two_way:
        key += "_publish" if event.direction == "client_to_server" else "_subscribe"
    return key


def _operation(event: DocumentedEvent, components: Mapping[str, Any]) -> dict[str, Any]:
    key = operation_key(event)
    operation: dict[str, Any] = {
        "operationId": key,
        "summary": _summary(event.description),
        "description": event.description,
        "tags": [{"name": event.category}],
        "message": {"$ref": f"#/components/messages/{key}"},
        "x-direction": event.direction,
        "x-auth-required": event.auth_required,
        "x-room-required": event.room_required,
        "x-errors": [code.value for code in event.errors],
        "x-ack": _examples_keyword(event.ack) if event.ack is not None else None,
        "x-response-events": event.response_events,
    }
    if event.to:
        operation["x-to"] = event.to
    if event.publishable:
        operation["x-publishable"] = True
    if event.bare_field:
        operation["x-bare-field"] = event.bare_field
    return operation


def _message(event: DocumentedEvent, components: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "messageId": operation_key(event),
        "name": event.name,
        "title": event.name,
        "summary": _summary(event.description),
        "description": event.description,
        "contentType": "application/json",
        "payload": _examples_keyword(copy.deepcopy(event.payload_schema(components))),
        "examples": [
            {"name": f"example{index + 1}", "payload": example} for index, example in enumerate(event.examples)
        ],
        "tags": [{"name": event.category}],
    }


def content_hash(channels: Mapping[str, Any], components: Mapping[str, Any]) -> str:
    """``sha256:`` and 16 hex digits over the canonical JSON of the channels and components.

    Servers and ``info`` are left out, so the hash names the event contract whatever host serves it; it changes
    with any event, schema, example or description.
    """
    canonical = json.dumps(
        {"channels": channels, "components": components}, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def build_asyncapi(registry: EventDocs, servers: Mapping[str, Any]) -> dict[str, Any]:
    """The whole document; ``servers`` maps a name to ``{url, protocol, description?}``.

    ``info.version`` is the hand-bumped :data:`realtime.docs.registry.SCHEMA_VERSION`; ``info.x-schema-hash`` is
    :func:`content_hash`, so two documents with one version and different contents are told apart.
    """
    components = registry.components
    channels: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for event in registry.events():
        action = "publish" if event.direction == "client_to_server" else "subscribe"
        channel = channels.setdefault(event.name, {"description": event.description})
        channel[action] = _operation(event, components)
        messages[operation_key(event)] = _message(event, components)
    security = [{"bearerToken": []}, {"queryToken": []}]
    document_components = {
        "schemas": _examples_keyword(copy.deepcopy(components)),
        "messages": messages,
        "securitySchemes": {
            "bearerToken": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "Authorization: Bearer <JWT> on the handshake request (or auth.token in the "
                "Socket.IO CONNECT packet).",
            },
            "queryToken": {
                "type": "httpApiKey",
                "name": "token",
                "in": "query",
                "description": "?token=<JWT> on the handshake request.",
            },
        },
    }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "id": f"urn:{registry.title}:events",
        "info": {
            "title": f"{registry.title} events",
            "version": registry.version,
            "x-schema-hash": content_hash(channels, document_components),
            "description": HANDSHAKE,
            "contact": {"name": "realtime maintainers"},
            "license": {"name": "MIT", "url": "https://opensource.org/licenses/MIT"},
        },
        "servers": {
            name: {**server, "security": security} for name, server in servers.items()
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "components": document_components,
        "tags": [
            {"name": category, "description": CATEGORY_DESCRIPTIONS.get(category, category)}
            for category in registry.categories()
        ],
    }
