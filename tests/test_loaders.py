"""The plain-payload fast path (realtime.schemas.loaders) never accepts what marshmallow refuses and loads what
it accepts as marshmallow does: every catalogue payload schema over its examples and random payloads."""
from __future__ import annotations

import random
from typing import Any

import pytest
from flask import Flask
from marshmallow import Schema, ValidationError, fields, pre_load, validate, validates

from realtime.schemas.chat import ChatMessageInSchema
from realtime.schemas.fields import Identifier, StrictBoolean
from realtime.schemas.loaders import loader
from realtime.sockets.catalog import EventCatalog
from tests.test_dumpers import same

STRINGS = ["", "lobby", "bob", "x" * 70, "bad id!", "https://cdn.example/p.jpg", "ftp://x", "TEXT", "IMAGE", "1700000000000-0"]
SCALARS: list[Any] = [None, 0, 1, 20, -5, 10**6, 2.5, True, False, {}, [], {"x": 1}, ["bob"]]


def marshmallow_load(schema: Schema, payload: Any) -> Any:
    try:
        return schema.load(payload)
    except ValidationError:
        return ValidationError


def agree(schema: Schema, payload: Any) -> bool:
    """The fast path's answer checked against marshmallow's; True when the fast path took the payload."""
    fast = loader(schema)
    assert fast is not None
    taken = fast(payload)
    if taken is None:
        return False
    reference = marshmallow_load(schema, payload)
    assert reference is not ValidationError, f"took a payload marshmallow refuses: {type(schema).__name__} {payload!r}"
    assert same(taken, reference), (payload, taken, reference)
    return True


def value_for(field: fields.Field, rng: random.Random, depth: int) -> Any:
    inner = getattr(field, "inner", None)
    if inner is not None and rng.random() < 0.8:
        return [value_for(inner, rng, depth) for _ in range(rng.randint(0, 3))]
    if isinstance(field, fields.Nested) and depth < 2 and rng.random() < 0.8:
        return payload_for(field.schema, rng, depth + 1)
    if isinstance(field, fields.String) and rng.random() < 0.8:
        return rng.choice(STRINGS)
    return rng.choice(SCALARS)


def payload_for(schema: Schema, rng: random.Random, depth: int = 0) -> dict[str, Any]:
    payload: dict[str, Any] = {}
    for name, field in schema.load_fields.items():
        if rng.random() < (0.05 if field.required else 0.4):
            continue
        payload[field.data_key or name] = value_for(field, rng, depth)
    if rng.random() < 0.05:
        payload["unexpected"] = "x"
    return payload


def payload_schemas(app: Flask) -> list[tuple[str, Schema, tuple[Any, ...]]]:
    catalog: EventCatalog = app.extensions["realtime"].catalog
    return [(h.event, h.schema, h.doc.examples) for h in catalog.handlers.values() if h.schema is not None]


def test_examples_are_taken_and_random_payloads_agree(app: Flask) -> None:
    rng = random.Random(11)
    compiled = taken = 0
    for event, schema, examples in payload_schemas(app):
        if loader(schema) is None:
            continue
        compiled += 1
        for example in examples:
            if isinstance(example, dict):
                assert agree(schema, example), f"{event}: its own example is not plainly valid?"
        for _ in range(150):
            taken += agree(schema, payload_for(schema, rng))
    assert compiled >= len(payload_schemas(app)) * 0.7, "most payload schemas compile (BoundedList, with its own deserialisation, does not)"
    assert taken > 200, "random payloads are often plainly valid: the fast path is exercised"


def test_the_message_payload_is_compiled_and_refusals_step_aside() -> None:
    schema = ChatMessageInSchema()
    assert agree(schema, {"roomId": "lobby", "content": "hi"})
    assert agree(schema, {"roomId": "lobby", "mediaUrl": "https://cdn.example/p.jpg", "type": "IMAGE", "clientId": "c-1"})
    for refused in (
        {"roomId": "lobby"},  # neither content nor media: the schema validator
        {"roomId": "lobby", "content": ""},
        {"roomId": "lobby", "content": "x" * 5000},
        {"roomId": "bad id!", "content": "hi"},
        {"roomId": "lobby", "content": "hi", "type": "GIF"},
        {"roomId": "lobby", "content": "hi", "mediaUrl": "ftp://x"},
        {"roomId": "lobby", "content": "hi", "extra": 1},
        {"roomId": "lobby", "content": None},
        {"roomId": 7, "content": "hi"},
        {"content": "hi"},
        ["lobby"],
        "lobby",
        None,
    ):
        assert loader(schema)(refused) is None, refused  # type: ignore[misc]
        assert marshmallow_load(schema, refused) is ValidationError


class Inner(Schema):
    n = fields.Integer(strict=True, validate=validate.Range(min=0))
    on = StrictBoolean(load_default=False)


class Wide(Schema):
    name = Identifier(required=True)
    renamed = fields.String(data_key="shown", attribute="stored", allow_none=True)
    count = fields.Integer()
    flag = fields.Boolean()
    raw = fields.Raw()
    mapping = fields.Dict()
    tags = fields.List(fields.String(validate=validate.Length(max=3)))
    inner = fields.Nested(Inner)
    stamp = fields.String(load_default=lambda: "now")


class Hooked(Schema):
    a = fields.String()

    @pre_load
    def _strip(self, data: Any, **kwargs: Any) -> Any:
        return data


class WithFloat(Schema):
    ratio = fields.Float()


class FieldHook(Schema):
    a = fields.String()

    @validates("a")
    def _check(self, value: str, **kwargs: Any) -> None:
        raise ValidationError("no")


@pytest.mark.parametrize(
    "payload",
    [
        {"name": "a"},
        {"name": "a", "shown": None, "count": 3, "flag": True, "raw": [1, {"x": None}], "mapping": {"k": [1]}},
        {"name": "a", "tags": ["abc", "de"], "inner": {"n": 2}, "stamp": "then"},
        {"name": "a", "count": True},
        {"name": "a", "count": "3"},
        {"name": "a", "flag": "true"},
        {"name": "a", "tags": ["abcd"]},
        {"name": "a", "tags": "abc"},
        {"name": "a", "inner": {"n": -1}},
        {"name": "a", "inner": {"n": 1, "x": 2}},
        {"name": "a", "inner": {"on": 1}},
        {"name": "a", "mapping": []},
        {"name": "a", "renamed": "x"},
    ],
)
def test_field_kinds_agree_with_marshmallow(payload: dict[str, Any]) -> None:
    agree(Wide(), payload)


def test_plain_payloads_of_every_kind_are_taken() -> None:
    assert agree(Wide(), {"name": "a", "shown": None, "count": 3, "flag": True, "raw": [1], "mapping": {"k": 1}})
    assert agree(Wide(), {"name": "a", "tags": ["abc"], "inner": {"n": 2}})


def test_schemas_with_hooks_are_left_to_marshmallow() -> None:
    assert loader(Hooked()) is None
    assert loader(FieldHook()) is None
    assert loader(WithFloat()) is None
    assert loader(Wide(partial=True)) is None
    assert loader(Wide(unknown="exclude")) is None
