"""Compiled dumps (realtime.schemas.dumpers) equal marshmallow's: every schema of the catalogue over its
examples and random values, the edges of marshmallow's accessor, and what must stay marshmallow's."""
from __future__ import annotations

import random
from typing import Any

import pytest
from flask import Flask
from marshmallow import Schema, fields, post_dump

from realtime.schemas.chat import ChatMessageOutSchema
from realtime.schemas.dumpers import dumper, is_compiled
from realtime.sockets.catalog import EventCatalog

VALUES: list[Any] = [None, "text", "", "é", 0, 7, -3, 2.5, True, False, b"bytes", {"k": "v"}, ["a", 1], [], {}]


def same(left: Any, right: Any) -> bool:
    """Equal with the same types all the way down (``True == 1`` is not the same output)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return list(left) == list(right) and all(same(left[k], right[k]) for k in left)
    if isinstance(left, list):
        return len(left) == len(right) and all(same(a, b) for a, b in zip(left, right, strict=True))
    return bool(left == right)


def outcome(dump: Any, obj: Any, **kwargs: Any) -> tuple[str, Any]:
    try:
        return "ok", dump(obj, **kwargs)
    except Exception as exc:  # noqa: BLE001 - both sides must fail alike
        return "raised", type(exc).__name__


def agree(schema: Schema, obj: Any, **kwargs: Any) -> None:
    compiled, reference = outcome(dumper(schema), obj, **kwargs), outcome(schema.dump, obj, **kwargs)
    assert compiled[0] == reference[0] and same(compiled[1], reference[1]), (type(schema).__name__, obj, compiled, reference)


def random_object(schema: Schema, rng: random.Random, depth: int = 0) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for name, field in schema.dump_fields.items():
        if rng.random() < 0.25:
            continue
        key = field.attribute or name
        nested = getattr(field, "inner", field)
        if isinstance(nested, fields.Nested) and depth < 2 and rng.random() < 0.7:
            one = random_object(nested.schema, rng, depth + 1)
            many = nested.schema.many or nested.many or isinstance(field, fields.List)
            obj[key] = [one, random_object(nested.schema, rng, depth + 1)] if many else one
        else:
            obj[key] = rng.choice(VALUES)
    return obj


def schemas_of(catalog: EventCatalog) -> list[Schema]:
    found = [declared.schema for declared in catalog.server_events.values()]
    for handler in catalog.handlers.values():
        found += [s for s in (handler.ack, handler.schema) if s is not None]
    return found


def test_every_catalogue_schema_dumps_its_examples_as_marshmallow_does(app: Flask) -> None:
    catalog: EventCatalog = app.extensions["realtime"].catalog
    for declared in catalog.server_events.values():
        for example in declared.examples:
            agree(declared.schema, example)
        agree(declared.schema, list(declared.examples), many=True)


def test_random_values_dump_as_marshmallow_does(app: Flask) -> None:
    rng = random.Random(4)
    schemas = schemas_of(app.extensions["realtime"].catalog)
    assert len(schemas) > 40
    for schema in schemas:
        for _ in range(60):
            agree(schema, random_object(schema, rng))


def test_the_message_path_schemas_are_compiled(app: Flask) -> None:
    catalog: EventCatalog = app.extensions["realtime"].catalog
    assert is_compiled(catalog.server_events["chat:new_message"].schema)
    assert is_compiled(ChatMessageOutSchema())
    assert catalog.handlers["chat:message"].ack is not None and is_compiled(catalog.handlers["chat:message"].ack)
    compiled = sum(is_compiled(schema) for schema in schemas_of(catalog))
    assert compiled >= len(schemas_of(catalog)) * 0.9


class Inner(Schema):
    n = fields.Integer()
    label = fields.String(dump_default="none")


class Edges(Schema):
    items = fields.String()  # a dict's attribute too: marshmallow's accessor reads it when the key is absent
    renamed = fields.String(data_key="shown")
    source = fields.String(attribute="elsewhere")
    counted = fields.Integer(as_string=True)
    ratio = fields.Float()
    stamp = fields.String(dump_default=lambda: "now")
    inner = fields.Nested(Inner)
    inners = fields.Nested(Inner, many=True)
    listed = fields.List(fields.Nested(Inner))
    mapping = fields.Dict()
    raw = fields.Raw()
    flag = fields.Boolean()
    secret = fields.String(load_only=True)


class WithHook(Schema):
    a = fields.String()

    @post_dump
    def _mark(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return {**data, "marked": True}


class Keyed(Schema):
    data = fields.Dict(keys=fields.String())


class Thing:
    def __init__(self) -> None:
        self.renamed = "attribute"


class Sub(dict):  # type: ignore[type-arg]
    pass


@pytest.mark.parametrize(
    "obj",
    [
        {},
        {"items": "kept", "renamed": "r", "elsewhere": "e", "counted": 3, "ratio": 1, "flag": 1, "secret": "s"},
        {"inner": {"n": "4"}, "inners": [{"n": 1}, {}], "listed": [{"label": None}], "mapping": {"a": [1]}},
        {"inner": None, "inners": None, "listed": None, "mapping": None, "raw": {"x": object}},
        {"counted": "x"},
        {"inners": [Thing()]},
        Sub(renamed="sub"),
        Thing(),
        None,
    ],
)
def test_edges_dump_as_marshmallow_does(obj: Any) -> None:
    assert is_compiled(Edges())
    agree(Edges(), obj)


def test_schemas_marshmallow_must_dump_are_left_to_it() -> None:
    assert not is_compiled(WithHook()) and dumper(WithHook())({"a": "x"}) == {"a": "x", "marked": True}
    assert not is_compiled(Keyed())
    agree(Edges(many=True), [{"renamed": "a"}, {}])
    agree(Edges(many=True), None)
