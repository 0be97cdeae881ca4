"""Client payloads that are plainly valid, loaded without marshmallow's per-field machinery.

Every client event's payload is loaded through its schema before the handler runs: 37 us for a
``chat:message`` in marshmallow, most of it its generic path (error store, partial handling, a getter per
field). :func:`loader` compiles a schema into a function that **accepts or steps aside**: it returns what
``schema.load`` returns when the payload is plainly valid, and ``None`` otherwise, so that marshmallow loads
it and words every error (the caller falls back). Plainly valid, as marshmallow decides it:

- a dict with no key the schema does not know (``unknown=RAISE``), every required field present;
- each value ``None`` only where the field allows it; a ``str`` for ``String`` and its subclasses that keep
  its deserialisation (``Url``, ``Identifier``...), an ``int`` (not a ``bool``) for ``Integer``, a
  ``bool`` for ``Boolean`` (``StrictBoolean`` too), anything for ``Raw``, a ``dict`` for ``Dict`` without
  key or value fields, a ``list`` for ``List`` (each item the same way), a ``dict`` for a ``Nested``
  schema that compiles too;
- every field validator passes (marshmallow runs the same callables), missing fields take
  ``load_default``; then the schema's ``validates_schema`` methods pass, called as marshmallow calls them.

A schema with anything else (load hooks, ``@validates``, another ``unknown``, ``many`` or ``partial``, a
field with its own deserialisation, per-field ``pre_load``/``post_load``, a dotted ``attribute``) is not
compiled: :func:`loader` returns None and marshmallow loads every payload. ``tests/test_loaders.py`` holds
the fast path to marshmallow's answers over every catalogue schema.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from marshmallow import RAISE, Schema, fields, missing

from realtime.schemas.fields import StrictBoolean

Load = Callable[[Any], Any]


class _StepAside(Exception):
    """Not plainly valid: marshmallow decides."""


@functools.cache
def loader(schema: Schema) -> Load | None:
    """``load(payload)``: ``schema.load(payload)`` for a plainly valid payload, else None; None when the
    schema does not compile."""
    load = _compile(schema)
    if load is None:
        return None

    def fast(payload: Any) -> Any:
        try:
            return load(payload)
        except Exception:  # noqa: BLE001 - whatever it is, marshmallow loads the payload and words the errors
            return None

    return fast


@functools.cache
def _compile(schema: Schema) -> Load | None:
    """The schema's load of a plainly valid payload, raising to step aside; None when it does not compile."""
    hooks = getattr(schema, "_hooks", None)
    if (
        hooks is None
        or any(hooks.get(tag) for tag in ("pre_load", "post_load", "validates"))
        or schema.many
        or schema.partial
        or schema.unknown != RAISE
        or schema.dict_class is not dict
    ):
        return None
    checks: list[Callable[..., Any]] = []
    for attr_name, hook_many, options in hooks.get("validates_schema", ()):
        if hook_many or options.get("pass_original"):
            return None
        checks.append(getattr(schema, attr_name))
    rows: list[tuple[str, str, Load, bool, Any]] = []
    for name, field in schema.load_fields.items():
        read = _field_reader(field)
        key = field.attribute or name
        if read is None or "." in key:
            return None
        rows.append((field.data_key if field.data_key is not None else name, key, read, field.required, field.load_default))
    known = frozenset(row[0] for row in rows)
    unknown = schema.unknown

    def load(payload: Any) -> dict[str, Any]:
        if type(payload) is not dict or not known.issuperset(payload):
            raise _StepAside
        out: dict[str, Any] = {}
        for source, key, read, required, default in rows:
            if source in payload:
                out[key] = read(payload[source])
                continue
            if required:
                raise _StepAside
            value = default() if callable(default) else default
            if value is not missing:
                out[key] = value
        for check in checks:
            check(out, partial=None, many=False, unknown=unknown)
        return out

    return load


def _field_reader(field: fields.Field) -> Load | None:
    """Field.deserialize for a present value, as marshmallow runs it, raising to step aside."""
    if field.pre_load or field.post_load:
        return None
    convert = _converter(field)
    if convert is None:
        return None
    allow_none, validators = field.allow_none, list(field.validators)

    def read(value: Any) -> Any:
        if value is None:
            if allow_none:
                return None
            raise _StepAside
        out = convert(value)
        for validate in validators:
            validate(out)
        return out

    return read


def _typed(kind: type) -> Load:
    def convert(value: Any) -> Any:
        if type(value) is not kind:
            raise _StepAside
        return value

    return convert


def _converter(field: fields.Field) -> Load | None:
    cls = type(field)
    deserialize = cls._deserialize
    if deserialize is fields.String._deserialize:
        return _typed(str)
    if deserialize is fields.Field._deserialize:
        return lambda value: value
    if deserialize is StrictBoolean._deserialize or (
        deserialize is fields.Boolean._deserialize and True in field.truthy and False in field.falsy  # type: ignore[attr-defined]
    ):
        return _typed(bool)
    if deserialize is fields.Number._deserialize and cls._validated is fields.Integer._validated:
        return _typed(int)
    if deserialize is fields.Mapping._deserialize:
        if field.key_field is not None or field.value_field is not None:  # type: ignore[attr-defined]
            return None
        mapping, as_dict = field.mapping_type, _typed(dict)  # type: ignore[attr-defined]
        return lambda value: mapping(as_dict(value))
    if deserialize is fields.List._deserialize:
        item = _field_reader(field.inner)  # type: ignore[attr-defined]
        if item is None:
            return None
        as_list = _typed(list)
        return lambda value: [item(each) for each in as_list(value)]
    if deserialize is fields.Nested._deserialize:
        try:
            nested = field.schema  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - a schema marshmallow cannot resolve now is left to marshmallow
            return None
        compiled = _compile(nested)
        if compiled is None or field.many or field.unknown is not None:  # type: ignore[attr-defined]
            return None
        return compiled
    return None
