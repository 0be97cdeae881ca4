"""Marshmallow schemas → JSON Schema components, through apispec's MarshmallowPlugin (OpenAPI 3.1 semantics)."""
from __future__ import annotations

import copy
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from apispec.ext.marshmallow.common import resolve_schema_cls
from marshmallow import Schema

REF_PREFIX = "#/components/schemas/"
#: JSON Schema formats; apispec names marshmallow's Url field "url", which validators do not know.
FORMAT_FIXES = {"url": "uri"}


def component_name(schema: Schema | type[Schema]) -> str:
    """``ChatMessageOutSchema`` → ``ChatMessageOut``."""
    cls = resolve_schema_cls(schema)
    name = cls.__name__
    return name[: -len("Schema")] if name.endswith("Schema") and name != "Schema" else name


class SchemaComponents:
    """Registers schemas once each and hands out ``$ref`` snippets to them."""

    def __init__(self) -> None:
        self._spec = APISpec(
            title="realtime",
            version="1",
            openapi_version="3.1.0",
            plugins=[MarshmallowPlugin(schema_name_resolver=component_name)],
        )

    def ref(self, schema: Schema) -> dict[str, Any]:
        """A JSON Schema referencing ``schema``'s component (an array of them for ``many=True``)."""
        name = component_name(schema)
        if name not in self._spec.components.schemas:
            self._spec.components.schema(name, schema=resolve_schema_cls(schema))
        ref = {"$ref": REF_PREFIX + name}
        return {"type": "array", "items": ref} if getattr(schema, "many", False) else ref

    def components(self) -> dict[str, Any]:
        """Every registered (and nested) schema as JSON Schema."""
        schemas = copy.deepcopy(self._spec.to_dict().get("components", {}).get("schemas", {}))
        for schema in schemas.values():
            _fix_formats(schema)
        return dict(sorted(schemas.items()))


def _fix_formats(node: Any) -> None:
    if isinstance(node, dict):
        if node.get("format") in FORMAT_FIXES:
            node["format"] = FORMAT_FIXES[node["format"]]
        for value in node.values():
            _fix_formats(value)
    elif isinstance(node, list):
        for value in node:
            _fix_formats(value)


def dereference(node: Any, components: dict[str, Any], depth: int = 0) -> Any:
    """``node`` with every ``$ref`` replaced by its component (bounded depth: schemas may nest)."""
    if depth > 8:
        return {}
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(REF_PREFIX):
            return dereference(components.get(ref[len(REF_PREFIX):], {}), components, depth + 1)
        return {key: dereference(value, components, depth) for key, value in node.items()}
    if isinstance(node, list):
        return [dereference(value, components, depth) for value in node]
    return node
