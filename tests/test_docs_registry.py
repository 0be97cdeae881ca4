"""The documentation registry: complete, examples valid against their schemas, nothing undocumented."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from marshmallow import Schema, fields

from realtime.docs.decorators import ws_event, ws_payload
from realtime.docs.registry import EventRegistry
from realtime.features import BLUEPRINTS
from realtime.sockets.blueprint import SocketBlueprint
from realtime.sockets.catalog import EventCatalog

PACKAGE = Path(__file__).resolve().parent.parent / "realtime"
EMIT_CALL = re.compile(r"""(?:emit|emit_local|emit_many|Outgoing|shape)\(\s*(?:[\w.\[\]]+,\s*)?["']([a-z_]+(?::[a-z_]+)?)["']""")


@pytest.fixture
def registry(app: Flask) -> EventRegistry:
    docs: EventRegistry = app.extensions["realtime_docs"]
    return docs


def test_every_handler_and_declared_event_is_in_the_registry(app: Flask, registry: EventRegistry) -> None:
    catalog = app.extensions["realtime"].catalog
    documented = {(e.name, e.direction == "client_to_server") for e in registry.events()}

    expected = {(name, True) for name in catalog.handlers} | {(name, False) for name in catalog.server_events}

    assert documented == expected
    assert len(catalog.handlers) == 15
    assert len(catalog.server_events) == 18


def test_every_event_has_description_category_and_an_example(registry: EventRegistry) -> None:
    for event in registry.events():
        assert len(event.description) > 20, event.name
        assert event.category in {"chat", "presence", "party", "notifications", "game", "session", "rooms"}, event.name
        assert event.examples, f"{event.name} has no example"
        if event.direction == "client_to_server":
            assert event.ack is not None, f"{event.name} has no ack schema"
            assert event.errors, event.name


def test_client_examples_load_through_the_runtime_payload_schema(app: Flask) -> None:
    for handler in app.extensions["realtime"].catalog.handlers.values():
        for example in handler.doc.examples:
            payload = example if isinstance(example, dict) or handler.wrap is None else {handler.wrap: example}
            assert handler.schema.validate(payload) == {}, (handler.event, example)


def test_server_examples_validate_against_their_declared_schema(app: Flask) -> None:
    for declared in app.extensions["realtime"].catalog.server_events.values():
        for example in declared.examples:
            assert declared.schema.validate(example) == {}, (declared.name, example)


def test_every_event_name_emitted_in_the_code_is_declared(app: Flask) -> None:
    declared = set(app.extensions["realtime"].catalog.server_events)
    emitted: dict[str, str] = {}
    for path in PACKAGE.rglob("*.py"):
        if path.parent.name == "docs":
            continue
        for name in EMIT_CALL.findall(path.read_text()):
            emitted.setdefault(name, str(path.relative_to(PACKAGE)))

    undocumented = {name: where for name, where in emitted.items() if name not in declared}

    assert len(emitted) >= 15, f"the scan found too little to be meaningful: {sorted(emitted)}"
    assert undocumented == {}


def test_emitting_an_undeclared_event_is_refused(app: Flask) -> None:
    with pytest.raises(KeyError, match="not declared"):
        app.extensions["realtime"].broadcaster.emit("chat:secret", {}, to="group:lobby")


def test_an_undocumented_handler_stops_the_registry() -> None:
    rogue = SocketBlueprint("rogue")

    @rogue.on("rogue:act")
    def act(ctx: Any, data: Any) -> None:
        return None

    with pytest.raises(ValueError, match="rogue:act"):
        EventRegistry(EventCatalog([*BLUEPRINTS, rogue]))


def test_a_response_event_that_is_not_declared_stops_the_registry() -> None:
    rogue = SocketBlueprint("rogue")

    class Empty(Schema):
        pass

    @rogue.on("rogue:act")
    @ws_event("rogue:act", "Does something for the test.", examples=[{}])
    @ws_payload(Empty)
    def act(ctx: Any, data: Any) -> None:
        return None

    from realtime.docs.decorators import doc_of

    doc_of(act).responses.append(("rogue:done", None))
    with pytest.raises(ValueError, match="rogue:done"):
        EventRegistry(EventCatalog([*BLUEPRINTS, rogue]))


def test_ws_payload_accepts_a_field_mapping() -> None:
    scratch = SocketBlueprint("scratch")

    @scratch.on("scratch:ping")
    @ws_event("scratch:ping", "A handler documented with inline fields.", examples=[{"n": 1}])
    @ws_payload({"n": fields.Integer(required=True)})
    def ping(ctx: Any, data: Any) -> None:
        return None

    (handler,) = scratch.handlers
    assert handler.schema is not None
    assert handler.schema.validate({"n": 1}) == {}
    assert "n" in handler.schema.validate({})


def test_handler_name_must_match_its_ws_event() -> None:
    scratch = SocketBlueprint("scratch")
    with pytest.raises(ValueError, match="names 'scratch:other'"):

        @scratch.on("scratch:one")
        @ws_event("scratch:other", "Mismatched on purpose.")
        def one(ctx: Any, data: Any) -> None:
            return None


def test_registry_queries(registry: EventRegistry) -> None:
    categories = registry.categories()
    chat = registry.get_events_by_category("chat")
    history = registry.get_event("chat:history")

    assert sum(categories.values()) == 33
    assert categories["chat"] == len(chat) == 10
    assert [e["direction"] for e in history] == ["client_to_server", "server_to_client"]
    assert [e["anchor"] for e in history] == ["chat:history", "chat:history~server"]
    assert registry.get_event("nope:nope") == []
    assert registry.get_events_by_category("nope") == []


def test_payload_json_schema_comes_from_the_marshmallow_schema(registry: EventRegistry) -> None:
    (message,) = registry.get_event("chat:message")
    resolved = message["payloadResolved"]

    assert resolved["required"] == ["roomId"]
    assert resolved["additionalProperties"] is False
    assert resolved["properties"]["content"]["maxLength"] == 4000
    assert resolved["properties"]["type"]["enum"] == ["TEXT", "IMAGE", "VIDEO", "AUDIO"]
    assert resolved["properties"]["roomId"]["pattern"] == "^[A-Za-z0-9_-]{1,64}$"
    assert resolved["properties"]["mediaUrl"]["format"] == "uri"
    (status,) = registry.get_event("presence:status")
    assert status["bareField"] == "status"
    assert status["payload"]["oneOf"][1]["enum"] == ["online", "away", "busy"]
