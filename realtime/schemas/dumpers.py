"""Schemas dumped without marshmallow's per-field machinery: the same output in a fraction of the time.

Every server event is shaped through its declared schema (:meth:`realtime.sockets.catalog.EventCatalog.shape`)
and every ack through its ack schema. marshmallow spends most of a dump in its generic per-field path
(accessor, missing checks, a method call per field): 32 us for a ``chat:new_message``, on each message's
path. :func:`dumper` turns a schema of plain fields into rows of (key, output name, converter, default)
that reproduce marshmallow's ``dump`` exactly:

- a value is read as marshmallow's ``get_value`` reads a dict (the key, else the dict's attribute);
- missing values take ``dump_default`` or are left out; ``None`` stays ``None``;
- ``String`` (and subclasses that keep its serialisation, ``Url``, ``Email``...) is ``ensure_text_type``,
  ``Integer``/``Float`` the number type (``as_string`` honoured), ``Boolean``, ``Raw`` and fields that
  keep ``Field``'s serialisation pass the value through, ``Dict`` without key or value fields copies it,
  ``List`` and ``Nested`` (``many`` included) apply their inner converter or schema.

Anything else keeps marshmallow's own ``dump``: a schema with dump hooks or an ordered dict class, a field
type or subclass with a serialisation of its own, a dotted ``attribute``, and any object that is not a
``dict`` (marshmallow's accessor reads objects too). ``tests/test_dumpers.py`` holds both equal over every
declared schema's examples and random values.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from marshmallow import Schema, fields, missing
from marshmallow.utils import ensure_text_type

Dump = Callable[..., Any]
Convert = Callable[[Any], Any]
_ABSENT = object()


@functools.cache
def dumper(schema: Schema) -> Dump:
    """``dump(obj, many=None)`` equal to ``schema.dump``: compiled when the schema allows it."""
    compiled = _compile(schema)
    return schema.dump if compiled is None else compiled


def is_compiled(schema: Schema) -> bool:
    """Whether :func:`dumper` compiled ``schema`` (rather than keeping marshmallow's ``dump``)."""
    return dumper(schema) != schema.dump


def _compile(schema: Schema) -> Dump | None:
    hooks = getattr(schema, "_hooks", None)
    if hooks is None or hooks.get("pre_dump") or hooks.get("post_dump") or schema.dict_class is not dict:
        return None
    rows: list[tuple[str, str, Convert, Any]] = []
    for name, field in schema.dump_fields.items():
        convert = _converter(field)
        source = name if field.attribute is None else field.attribute
        if convert is None or "." in source:
            return None
        rows.append((source, field.data_key if field.data_key is not None else name, convert, field.dump_default))
    marshmallow_dump = schema.dump
    default_many = bool(schema.many)

    def one(obj: Any) -> Any:
        if type(obj) is not dict:
            return marshmallow_dump(obj, many=False)
        out = {}
        for source, key, convert, default in rows:
            value = obj[source] if source in obj else getattr(obj, source, _ABSENT)
            if value is _ABSENT:
                if default is missing:
                    continue
                value = default() if callable(default) else default
            out[key] = convert(value)
        return out

    def dump(obj: Any, many: bool | None = None) -> Any:
        if default_many if many is None else many:
            return marshmallow_dump(obj, many=True) if obj is None else [one(item) for item in obj]
        return one(obj)

    return dump


def _text(value: Any) -> Any:
    return value if value is None or type(value) is str else ensure_text_type(value)


def _same(value: Any) -> Any:
    return value


def _converter(field: fields.Field) -> Convert | None:
    """How ``field`` serialises a value, as marshmallow's ``_serialize`` does; None when it cannot say."""
    serialize = type(field)._serialize
    if serialize is fields.String._serialize:
        return _text
    if serialize is fields.Field._serialize:
        return _same
    if serialize is fields.Number._serialize and type(field)._format_num is fields.Number._format_num:
        number, as_string = field.num_type, field.as_string  # type: ignore[attr-defined]
        if as_string:
            return lambda value: None if value is None else str(number(value))
        return lambda value: None if value is None else number(value)
    if serialize is fields.Mapping._serialize:
        if field.key_field is not None or field.value_field is not None:  # type: ignore[attr-defined]
            return None
        mapping = field.mapping_type  # type: ignore[attr-defined]
        return lambda value: None if value is None else mapping(value)
    if serialize is fields.List._serialize:
        inner = _converter(field.inner)  # type: ignore[attr-defined]
        if inner is None:
            return None
        return lambda value: None if value is None else [inner(item) for item in value]
    if serialize is fields.Nested._serialize:
        try:
            nested = field.schema  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - a schema marshmallow cannot resolve now is left to marshmallow
            return None
        dump, many = dumper(nested), bool(nested.many or field.many)  # type: ignore[attr-defined]
        return lambda value: None if value is None else dump(value, many=many)
    return None
