"""The documentation registry: complete, examples valid against their schemas, nothing undocumented."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from marshmallow import Schema, fields

from realtime.docs.registry import EventRegistry
from realtime.errors import ErrorCode
from realtime.features import BLUEPRINTS
from realtime.sockets.blueprint import EventDoc, EventHandler, SocketBlueprint
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
    assert len(catalog.server_events) == 19


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


class Empty(Schema):
    """A payload without fields, for scratch handlers."""


def _act(ctx: Any, data: Any) -> None:
    return None


def _declared_without_description(blueprint: SocketBlueprint) -> None:
    blueprint.event("rogue:act", "  ", payload=Empty, ack=Empty, examples=[{}], errors=[])(_act)


def _built_without_payload_schema(blueprint: SocketBlueprint) -> None:
    doc = EventDoc(description="Acts for the test, with no schema.", category="rogue", payload=None, ack=None)
    blueprint.handlers.append(EventHandler(event="rogue:act", func=_act, doc=doc, blueprint=blueprint.name))


@pytest.mark.parametrize(
    "declare", [_declared_without_description, _built_without_payload_schema], ids=["no-description", "no-payload"]
)
def test_an_undocumented_handler_stops_the_registry(declare: Any) -> None:
    rogue = SocketBlueprint("rogue")
    declare(rogue)

    with pytest.raises(ValueError, match="'rogue:act' has no description or no payload schema"):
        EventRegistry(EventCatalog([*BLUEPRINTS, rogue]))


def test_an_emitted_event_that_is_not_declared_stops_the_registry() -> None:
    rogue = SocketBlueprint("rogue")
    rogue.event(
        "rogue:act", "Does something for the test.", payload=Empty, ack=Empty, emits=["rogue:done"],
        examples=[{}], errors=[],
    )(_act)

    with pytest.raises(ValueError, match="'rogue:act' emits 'rogue:done', which is not a declared server event"):
        EventRegistry(EventCatalog([*BLUEPRINTS, rogue]))


def test_one_declaration_records_the_handler_and_everything_said_about_it() -> None:
    scratch = SocketBlueprint("scratch")
    scratch.emits("scratch:pong", Empty, "Answers a ping, for the test.", to="the pinging socket", examples=[{}])
    scratch.emits("scratch:echo", Empty, "Echoes a ping, for the test.", to="the pinging socket", examples=[{}])

    @scratch.event(
        "scratch:ping",
        "Pings, for the test.",
        payload={"n": fields.Integer(required=True)},
        wrap="n",
        ack={"seen": fields.Integer()},
        emits=["scratch:pong", "scratch:echo"],
        room_required=True,
        examples=[{"n": 1}, 2],
        errors=[ErrorCode.NOT_IN_ROOM],
    )
    def ping(ctx: Any, data: Any) -> Any:
        return data

    (handler,) = scratch.handlers
    (event,) = [e for e in EventRegistry(EventCatalog([*BLUEPRINTS, scratch])).events() if e.name == "scratch:ping"]

    assert (handler.event, handler.func, handler.blueprint, handler.wrap) == ("scratch:ping", ping, "scratch", "n")
    assert handler.schema is not None and handler.ack is not None
    assert handler.schema.validate({"n": 1}) == {}
    assert "n" in handler.schema.validate({})
    assert handler.ack.dump({"seen": 3}) == {"seen": 3}
    assert (event.direction, event.category, event.description) == ("client_to_server", "scratch", "Pings, for the test.")
    assert (event.room_required, event.examples, event.bare_field) == (True, [{"n": 1}, 2], "n")
    assert event.response_events == ["scratch:pong", "scratch:echo"]
    assert event.errors == [ErrorCode.NOT_IN_ROOM, ErrorCode.VALIDATION_ERROR, ErrorCode.RATE_LIMITED, ErrorCode.INTERNAL]
    assert event.payload == {"$ref": "#/components/schemas/PingPayload"}
    assert event.ack == {"$ref": "#/components/schemas/PingAck"}


def test_an_event_is_declared_once_per_blueprint() -> None:
    scratch = SocketBlueprint("scratch")
    scratch.event("scratch:one", "The first handler.", payload=Empty, ack=Empty, examples=[{}], errors=[])(_act)

    with pytest.raises(ValueError, match="'scratch:one' is already handled in blueprint 'scratch'"):
        scratch.event("scratch:one", "The second handler.", payload=Empty, ack=Empty, examples=[{}], errors=[])


def test_registry_queries(registry: EventRegistry) -> None:
    categories = registry.categories()
    chat = registry.get_events_by_category("chat")
    history = registry.get_event("chat:history")

    assert sum(categories.values()) == 34
    assert categories["chat"] == len(chat) == 11
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
