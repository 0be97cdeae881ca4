"""``flask docs diff``: breaking and additive changes between a saved AsyncAPI document and the running one."""
from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from realtime import create_app
from realtime.docs.asyncapi import content_hash
from realtime.docs.registry import SCHEMA_VERSION
from realtime.docs.spec_diff import diff_specs
from tests.conftest import TEST_SECRET

Spec = dict[str, Any]
Mutation = Callable[[Spec], None]


@pytest.fixture(scope="module")
def spec() -> Iterator[Spec]:
    """The running registry's document, built once; tests change deep copies of it."""
    app = create_app({"APP_ENV": "local", "JWT_SECRET": TEST_SECRET, "LOG_LEVEL": "WARNING"})
    yield app.extensions["realtime_docs"].generate_asyncapi_spec()
    app.extensions["realtime"].lifecycle.stop()


def schema(doc: Spec, name: str) -> dict[str, Any]:
    found: dict[str, Any] = doc["components"]["schemas"][name]
    return found


def field(doc: Spec, name: str, prop: str) -> dict[str, Any]:
    found: dict[str, Any] = schema(doc, name)["properties"][prop]
    return found


def publish(doc: Spec, event: str) -> dict[str, Any]:
    found: dict[str, Any] = doc["channels"][event]["publish"]
    return found


def drop_field(name: str, prop: str) -> Mutation:
    def mutate(doc: Spec) -> None:
        del schema(doc, name)["properties"][prop]
        schema(doc, name)["required"] = [r for r in schema(doc, name).get("required", []) if r != prop]
    return mutate


def add_field(name: str, prop: str, required: bool) -> Mutation:
    def mutate(doc: Spec) -> None:
        schema(doc, name)["properties"][prop] = {"type": "string"}
        if required:
            schema(doc, name)["required"].append(prop)
    return mutate


def set_key(name: str, prop: str, key: str, value: Any) -> Mutation:
    def mutate(doc: Spec) -> None:
        field(doc, name, prop)[key] = value
    return mutate


def drop_enum_value(name: str, prop: str, value: str) -> Mutation:
    def mutate(doc: Spec) -> None:
        field(doc, name, prop)["enum"].remove(value)
    return mutate


def require(name: str, prop: str, required: bool) -> Mutation:
    def mutate(doc: Spec) -> None:
        names = [r for r in schema(doc, name)["required"] if r != prop]
        schema(doc, name)["required"] = [*names, prop] if required else names
    return mutate


def drop_channel(event: str) -> Mutation:
    def mutate(doc: Spec) -> None:
        del doc["channels"][event]
    return mutate


def drop_bare_form(doc: Spec) -> None:
    doc["components"]["messages"]["presence_check"]["payload"]["oneOf"].pop(1)


def set_operation(event: str, key: str, value: Any) -> Mutation:
    def mutate(doc: Spec) -> None:
        publish(doc, event)[key] = value
    return mutate


def append_enum_value(name: str, prop: str, value: str) -> Mutation:
    def mutate(doc: Spec) -> None:
        field(doc, name, prop)["enum"].append(value)
    return mutate


#: (side changed, change, the one line diff_specs reports). "new" changes the running document, "old" the saved.
BREAKING: dict[str, tuple[str, Mutation, str]] = {
    "sent-event-removed": ("new", drop_channel("chat:leave"), "BREAKING chat:leave (client→server): event removed"),
    "read-event-removed": ("new", drop_channel("force_logout"), "BREAKING force_logout (server→client): event removed"),
    "sent-field-removed": (
        "new", drop_field("ChatMessageIn", "mediaUrl"),
        "BREAKING chat:message (client→server) payload.mediaUrl: field removed",
    ),
    "sent-field-newly-required": (
        "new", require("ChatMessageIn", "content", True),
        "BREAKING chat:message (client→server) payload.content: now required",
    ),
    "sent-new-required-field": (
        "new", add_field("ChatTypingIn", "deviceId", required=True),
        "BREAKING chat:typing (client→server) payload.deviceId: new required field",
    ),
    "sent-type-narrowed": (
        "old", set_key("ChatHistoryIn", "limit", "type", "number"),
        "BREAKING chat:history (client→server) payload.limit: type narrowed: number → integer",
    ),
    "sent-enum-value-removed": (
        "new", drop_enum_value("ChatMessageIn", "type", "AUDIO"),
        'BREAKING chat:message (client→server) payload.type: enum value "AUDIO" removed',
    ),
    "sent-now-limited-to-enum": (
        "new", set_key("ChatMessageIn", "clientId", "enum", ["a", "b"]),
        'BREAKING chat:message (client→server) payload.clientId: now limited to "a", "b"',
    ),
    "sent-bound-tightened": (
        "new", set_key("ChatMessageIn", "content", "maxLength", 1000),
        "BREAKING chat:message (client→server) payload.content: maxLength 4000 → 1000",
    ),
    "sent-pattern-changed": (
        "new", set_key("ChatMessageIn", "roomId", "pattern", "^[a-z]{1,64}$"),
        'BREAKING chat:message (client→server) payload.roomId: pattern "^[A-Za-z0-9_-]{1,64}$" → "^[a-z]{1,64}$"',
    ),
    "sent-bare-form-removed": (
        "new", drop_bare_form, "BREAKING presence:check (client→server) payload.oneOf[1]: alternative removed",
    ),
    "now-room-required": (
        "new", set_operation("presence:status", "x-room-required", True),
        "BREAKING presence:status (client→server): now requires the room to be joined first",
    ),
    "read-field-removed": (
        "new", drop_field("ChatTypingOut", "username"),
        "BREAKING chat:user_typing (server→client) payload.username: field removed",
    ),
    "read-field-no-longer-always-present": (
        "new", require("ChatTypingOut", "username", False),
        "BREAKING chat:user_typing (server→client) payload.username: no longer always present",
    ),
    "read-type-widened": (
        "new", set_key("ChatTypingOut", "isTyping", "type", ["boolean", "null"]),
        "BREAKING chat:user_typing (server→client) payload.isTyping: type widened: boolean → boolean | null",
    ),
    "read-enum-value-added": (
        "new", append_enum_value("ForceLogoutOut", "reason", "idle"),
        'BREAKING force_logout (server→client) payload.reason: enum value "idle" added',
    ),
    "ack-field-removed": (
        "new", drop_field("GameMoveAck", "turn"), "BREAKING game:move (client→server) ack.data.turn: field removed",
    ),
    "ack-data-removed": (
        "new", set_operation("game:move", "x-ack", None), "BREAKING game:move (client→server) ack.data: ack data removed",
    ),
}

ADDITIVE: dict[str, tuple[str, Mutation, str]] = {
    "new-event": ("old", drop_channel("chat:leave"), "additive chat:leave (client→server): new event"),
    "sent-new-optional-field": (
        "old", drop_field("ChatMessageIn", "clientId"),
        "additive chat:message (client→server) payload.clientId: new optional field",
    ),
    "sent-enum-value-added": (
        "old", drop_enum_value("ChatMessageIn", "type", "AUDIO"),
        'additive chat:message (client→server) payload.type: enum value "AUDIO" added',
    ),
    "sent-type-widened": (
        "new", set_key("ChatHistoryIn", "limit", "type", ["integer", "null"]),
        "additive chat:history (client→server) payload.limit: type widened: integer → integer | null",
    ),
    "sent-now-optional": (
        "new", require("ChatTypingIn", "isTyping", False),
        "additive chat:typing (client→server) payload.isTyping: now optional",
    ),
    "sent-bound-loosened": (
        "new", set_key("ChatMessageIn", "content", "maxLength", 8000),
        "additive chat:message (client→server) payload.content: maxLength 4000 → 8000",
    ),
    "read-new-field": (
        "new", add_field("ChatTypingOut", "deviceId", required=False),
        "additive chat:user_typing (server→client) payload.deviceId: new optional field",
    ),
    "read-type-narrowed": (
        "old", set_key("ChatTypingOut", "isTyping", "type", ["boolean", "null"]),
        "additive chat:user_typing (server→client) payload.isTyping: type narrowed: boolean | null → boolean",
    ),
    "read-enum-value-removed": (
        "new", drop_enum_value("ForceLogoutOut", "reason", "revoked"),
        'additive force_logout (server→client) payload.reason: enum value "revoked" removed',
    ),
    "ack-now-carries-data": (
        "old", set_operation("game:move", "x-ack", None), "additive game:move (client→server) ack.data: ack now carries data",
    ),
}


def changed(spec: Spec, side: str, mutate: Mutation) -> list[str]:
    """The lines diff_specs reports when ``mutate`` is applied to a copy of the saved or the running document."""
    old, new = copy.deepcopy(spec), copy.deepcopy(spec)
    mutate(old if side == "old" else new)
    return [str(change) for change in diff_specs(old, new)]


@pytest.mark.parametrize(("side", "mutate", "expected"), BREAKING.values(), ids=BREAKING.keys())
def test_every_breaking_change_is_reported(spec: Spec, side: str, mutate: Mutation, expected: str) -> None:
    assert changed(spec, side, mutate) == [expected]


@pytest.mark.parametrize(("side", "mutate", "expected"), ADDITIVE.values(), ids=ADDITIVE.keys())
def test_additive_changes_are_accepted(spec: Spec, side: str, mutate: Mutation, expected: str) -> None:
    assert changed(spec, side, mutate) == [expected]


def test_a_shared_schema_is_reported_for_every_event_using_it(spec: Spec) -> None:
    lines = changed(spec, "new", drop_field("ChatMessageOut", "clientId"))

    assert lines == [
        "BREAKING chat:history (client→server) ack.data.messages[].clientId: field removed",
        "BREAKING chat:history (server→client) payload.messages[].clientId: field removed",
        "BREAKING chat:join (client→server) ack.data.messages[].clientId: field removed",
        "BREAKING chat:new_message (server→client) payload.clientId: field removed",
    ]


def test_breaking_changes_come_before_additive_ones(spec: Spec) -> None:
    old, new = copy.deepcopy(spec), copy.deepcopy(spec)
    drop_channel("chat:leave")(old)
    drop_channel("force_logout")(new)

    assert [str(change) for change in diff_specs(old, new)] == [
        "BREAKING force_logout (server→client): event removed",
        "additive chat:leave (client→server): new event",
    ]


def test_refs_are_compared_by_content_not_by_component_name(spec: Spec) -> None:
    text = json.dumps(spec).replace('"#/components/schemas/ChatTypingOut"', '"#/components/schemas/TypingOut"')
    renamed = json.loads(text)
    renamed["components"]["schemas"]["TypingOut"] = renamed["components"]["schemas"].pop("ChatTypingOut")

    assert diff_specs(spec, renamed) == []
    drop_field("TypingOut", "roomId")(renamed)
    assert [str(c) for c in diff_specs(spec, renamed)] == [
        "BREAKING chat:user_typing (server→client) payload.roomId: field removed"
    ]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"asyncapi": "2.6.0"}, "The saved document has no 'channels' object"),
        ([], "The saved document has no 'channels' object"),
    ],
    ids=["no-channels", "not-an-object"],
)
def test_a_document_that_is_not_asyncapi_is_refused(spec: Spec, document: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        diff_specs(document, spec)


def test_a_dangling_ref_is_refused(spec: Spec) -> None:
    saved = copy.deepcopy(spec)
    del saved["components"]["schemas"]["ChatTypingOut"]

    with pytest.raises(ValueError, match=re.escape("$ref '#/components/schemas/ChatTypingOut' names nothing")):
        diff_specs(saved, spec)


def test_the_spec_carries_the_schema_version_and_a_content_hash(spec: Spec, app: Flask) -> None:
    again = app.extensions["realtime_docs"].generate_asyncapi_spec({"prod": {"url": "x.example", "protocol": "wss"}})
    reworded = copy.deepcopy(spec)
    reworded["channels"]["chat:leave"]["description"] = "Leave a chat room."

    assert spec["info"]["version"] == SCHEMA_VERSION
    assert re.fullmatch(r"sha256:[0-9a-f]{16}", spec["info"]["x-schema-hash"])
    assert again["info"]["x-schema-hash"] == spec["info"]["x-schema-hash"]
    assert content_hash(reworded["channels"], reworded["components"]) != spec["info"]["x-schema-hash"]


def test_the_catalogue_and_the_types_show_the_version(app: Flask, spec: Spec) -> None:
    page = app.test_client().get("/ws-docs").get_data(as_text=True)
    types = app.test_client().get("/ws-docs/types.ts").get_data(as_text=True)

    assert f">v{SCHEMA_VERSION}</span>" in page
    assert f"event schema {SCHEMA_VERSION}" in page
    assert f"Event schema version {SCHEMA_VERSION} (x-schema-hash {spec['info']['x-schema-hash']})" in types


def save(tmp_path: Path, document: Any) -> str:
    path = tmp_path / "saved-spec.json"
    path.write_text(json.dumps(document) if not isinstance(document, str) else document, encoding="utf-8")
    return str(path)


def test_cli_exits_zero_when_nothing_changed(app: Flask, spec: Spec, tmp_path: Path) -> None:
    result = app.test_cli_runner().invoke(args=["docs", "diff", save(tmp_path, spec)])

    digest = spec["info"]["x-schema-hash"]
    assert result.exit_code == 0, result.output
    assert result.output == (
        f"0 breaking, 0 additive: saved {SCHEMA_VERSION} ({digest}) → running {SCHEMA_VERSION} ({digest})\n"
    )


def test_cli_exits_zero_on_additive_changes(app: Flask, spec: Spec, tmp_path: Path) -> None:
    saved = copy.deepcopy(spec)
    drop_channel("chat:leave")(saved)
    saved["info"]["version"] = "0.9.0"

    result = app.test_cli_runner().invoke(args=["docs", "diff", save(tmp_path, saved)])

    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "additive chat:leave (client→server): new event"
    assert "1 additive" in result.output.splitlines()[1]


def test_cli_exits_one_on_a_breaking_change_and_asks_for_a_major_bump(app: Flask, spec: Spec, tmp_path: Path) -> None:
    saved = copy.deepcopy(spec)
    saved["channels"]["chat:archive"] = copy.deepcopy(saved["channels"]["chat:leave"])

    result = app.test_cli_runner().invoke(args=["docs", "diff", save(tmp_path, saved)])

    lines = result.output.splitlines()
    assert result.exit_code == 1
    assert lines[0] == "BREAKING chat:archive (client→server): event removed"
    assert lines[1].startswith("1 breaking, 0 additive: ")
    assert lines[2] == (
        f"note: breaking changes need a new major version (still {SCHEMA_VERSION.split('.')[0]}.x); "
        "bump SCHEMA_VERSION in realtime/docs/registry.py."
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "is not JSON"),
        ({"asyncapi": "2.6.0"}, "has no 'channels' object"),
    ],
    ids=["not-json", "not-asyncapi"],
)
def test_cli_refuses_a_file_that_is_not_a_spec(app: Flask, tmp_path: Path, content: Any, message: str) -> None:
    result = app.test_cli_runner().invoke(args=["docs", "diff", save(tmp_path, content)])

    assert result.exit_code == 2
    assert message in result.output
