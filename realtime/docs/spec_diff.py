"""Breaking changes between two AsyncAPI documents of the event contract (``flask docs diff``).

A change breaks existing clients when it takes away something they rely on, and what they rely on depends on
who reads the payload:

* what a client sends (a client→server payload) is read by the server, so the server may accept more than
  before, never less: an event or field removed, a field newly required, a type narrowed, an enum value
  removed, a bound tightened break; a new optional field, an enum value added, a type widened are additive;
* what a client reads (a server→client payload, an ack's data) is the mirror image: it may narrow, never
  widen: a field removed or no longer always present, a type widened (``string`` → ``string | null``), an enum
  value added break; a new field, a field now always present, a type narrowed are additive.

A changed ``pattern`` breaks both ways, since neither side can tell which strings still match. Schemas are
compared after resolving ``$ref`` into the document (``#/components/...``), so a saved document and a running
one compare by content whatever their components are called.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Role = Literal["sent", "read"]

#: ``publish`` operations are what clients emit; ``subscribe`` ones what they listen for.
ACTIONS = {"publish": ("client→server", "sent"), "subscribe": ("server→client", "read")}
#: Bounds whose growth widens a schema, and those whose growth narrows it.
UPPER_BOUNDS = ("maxLength", "maxItems", "maximum", "maxProperties")
LOWER_BOUNDS = ("minLength", "minItems", "minimum", "minProperties")
NUMERIC = {"integer": "number"}


@dataclass(frozen=True)
class Change:
    """One difference between two documents: which event, where in it, what, and whether it breaks clients."""

    event: str
    direction: str
    path: str
    message: str
    breaking: bool

    def __str__(self) -> str:
        kind = "BREAKING" if self.breaking else "additive"
        where = f" {self.path}" if self.path else ""
        return f"{kind} {self.event} ({self.direction}){where}: {self.message}"


class _Comparison:
    """Walks one event's schemas in both documents, resolving ``$ref`` in each, and records the changes."""

    def __init__(self, old: Mapping[str, Any], new: Mapping[str, Any], event: str, direction: str) -> None:
        self.docs = (old, new)
        self.event = event
        self.direction = direction
        self.changes: list[Change] = []

    def operations(self, old: dict[str, Any], new: dict[str, Any], role: Role) -> None:
        """Compare one operation (``publish`` or ``subscribe``): its payload, its ack's data, its requirements."""
        old_doc, new_doc = self.docs
        old_payload = resolve(old_doc, old.get("message", {})).get("payload", {})
        new_payload = resolve(new_doc, new.get("message", {})).get("payload", {})
        self.schemas(old_payload, new_payload, "payload", role, frozenset())
        for flag, message in (("x-auth-required", "now requires authentication"),
                              ("x-room-required", "now requires the room to be joined first")):
            if new.get(flag) and not old.get(flag):
                self.add("", message, breaking=True)
        if role != "sent":
            return
        old_ack, new_ack = old.get("x-ack"), new.get("x-ack")
        if old_ack is not None and new_ack is None:
            self.add("ack.data", "ack data removed", breaking=True)
        elif old_ack is None and new_ack is not None:
            self.add("ack.data", "ack now carries data", breaking=False)
        elif old_ack is not None:
            self.schemas(old_ack, new_ack, "ack.data", "read", frozenset())

    def add(self, path: str, message: str, breaking: bool) -> None:
        """Record one change at ``path`` (empty for the event itself)."""
        self.changes.append(Change(self.event, self.direction, path, message, breaking))

    def schemas(self, old: Any, new: Any, path: str, role: Role, seen: frozenset[tuple[str, str]]) -> None:
        """Compare two schema nodes read (``read``) or sent (``sent``) by clients."""
        refs = (_ref_of(old), _ref_of(new))
        if refs[0] and refs[1]:
            if refs in seen:
                return
            seen = seen | {refs}
        old, new = resolve(self.docs[0], old), resolve(self.docs[1], new)
        old_options, new_options = _alternatives(old), _alternatives(new)
        if len(old_options) > 1 or len(new_options) > 1:
            for index, (before, after) in enumerate(zip(old_options, new_options, strict=False)):
                self.schemas(before, after, f"{path}.oneOf[{index}]", role, seen)
            for index in range(len(new_options), len(old_options)):
                self._narrowed(f"{path}.oneOf[{index}]", "alternative removed", role)
            for index in range(len(old_options), len(new_options)):
                self._widened(f"{path}.oneOf[{index}]", "alternative added", role)
            return
        self._types(old, new, path, role)
        self._enums(old, new, path, role)
        self._bounds(old, new, path, role)
        self._properties(old, new, path, role, seen)
        if isinstance(old.get("items"), dict) and isinstance(new.get("items"), dict):
            self.schemas(old["items"], new["items"], f"{path}[]", role, seen)
        if isinstance(old.get("additionalProperties"), dict) and isinstance(new.get("additionalProperties"), dict):
            self.schemas(old["additionalProperties"], new["additionalProperties"], f"{path}.*", role, seen)

    def _narrowed(self, path: str, message: str, role: Role) -> None:
        self.add(path, message, breaking=role == "sent")

    def _widened(self, path: str, message: str, role: Role) -> None:
        self.add(path, message, breaking=role == "read")

    def _types(self, old: dict[str, Any], new: dict[str, Any], path: str, role: Role) -> None:
        before, after = _type_set(old), _type_set(new)
        if before == after:
            return
        label = f"{_type_label(before)} → {_type_label(after)}"
        lost = before is None or (after is not None and any(not _covered(kind, after) for kind in before))
        gained = after is None or (before is not None and any(not _covered(kind, before) for kind in after))
        if lost:
            self._narrowed(path, f"type narrowed: {label}", role)
        if gained:
            self._widened(path, f"type widened: {label}", role)

    def _enums(self, old: dict[str, Any], new: dict[str, Any], path: str, role: Role) -> None:
        before, after = old.get("enum"), new.get("enum")
        if before is None and after is None:
            return
        if before is None:
            self._narrowed(path, f"now limited to {_values(after)}", role)
            return
        if after is None:
            self._widened(path, f"no longer limited to {_values(before)}", role)
            return
        for value in before:
            if value not in after:
                self._narrowed(path, f"enum value {json.dumps(value)} removed", role)
        for value in after:
            if value not in before:
                self._widened(path, f"enum value {json.dumps(value)} added", role)

    def _bounds(self, old: dict[str, Any], new: dict[str, Any], path: str, role: Role) -> None:
        for name in (*UPPER_BOUNDS, *LOWER_BOUNDS):
            before, after = old.get(name), new.get(name)
            if before == after:
                continue
            label = f"{name} {_bound(before)} → {_bound(after)}"
            upper = name in UPPER_BOUNDS
            looser = after is None or (before is not None and (after > before if upper else after < before))
            if looser:
                self._widened(path, label, role)
            else:
                self._narrowed(path, label, role)
        before, after = old.get("pattern"), new.get("pattern")
        if before == after:
            return
        label = f"pattern {_bound(before)} → {_bound(after)}"
        if before is None:
            self._narrowed(path, label, role)
        elif after is None:
            self._widened(path, label, role)
        else:
            self.add(path, label, breaking=True)

    def _properties(
        self, old: dict[str, Any], new: dict[str, Any], path: str, role: Role, seen: frozenset[tuple[str, str]]
    ) -> None:
        before, after = old.get("properties") or {}, new.get("properties") or {}
        required_before, required_after = set(old.get("required", ())), set(new.get("required", ()))
        for name, schema in before.items():
            where = f"{path}.{name}"
            if name not in after:
                self.add(where, "field removed", breaking=True)
                continue
            if name in required_after and name not in required_before:
                self._narrowed(where, "now required" if role == "sent" else "now always present", role)
            elif name in required_before and name not in required_after:
                self._widened(where, "now optional" if role == "sent" else "no longer always present", role)
            self.schemas(schema, after[name], where, role, seen)
        for name in after:
            if name in before:
                continue
            if role == "sent" and name in required_after:
                self.add(f"{path}.{name}", "new required field", breaking=True)
            else:
                self.add(f"{path}.{name}", "new optional field" if name not in required_after else "new field", False)


def diff_specs(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    """Every difference between the contract in ``old`` and in ``new``, breaking ones first.

    :raises ValueError: a document has no ``channels`` object, or a ``$ref`` that does not resolve.
    """
    old_channels, new_channels = _channels(old, "saved"), _channels(new, "running")
    changes: list[Change] = []
    for event in sorted({*old_channels, *new_channels}):
        for action, (direction, role) in ACTIONS.items():
            before = (old_channels.get(event) or {}).get(action)
            after = (new_channels.get(event) or {}).get(action)
            if before is None and after is None:
                continue
            comparison = _Comparison(old, new, event, direction)
            if after is None:
                comparison.add("", "event removed", breaking=True)
            elif before is None:
                comparison.add("", "new event", breaking=False)
            else:
                comparison.operations(before, after, role)
            changes.extend(comparison.changes)
    return sorted(changes, key=lambda change: not change.breaking)


def resolve(document: Mapping[str, Any], node: Any) -> dict[str, Any]:
    """``node`` with its ``$ref`` (``#/components/schemas/Name`` and the like) followed inside ``document``.

    :raises ValueError: the reference is not local or names nothing in ``document``.
    """
    hops = 0
    while isinstance(node, dict) and "$ref" in node:
        reference = node["$ref"]
        if not isinstance(reference, str) or not reference.startswith("#/"):
            raise ValueError(f"$ref {reference!r} is not a local reference; only '#/...' references are resolved.")
        target: Any = document
        for part in reference[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, Mapping) or part not in target:
                raise ValueError(f"$ref {reference!r} names nothing in the document; is it a complete AsyncAPI file?")
            target = target[part]
        node = target
        hops += 1
        if hops > 64:
            raise ValueError(f"$ref {reference!r} loops; a reference chain must end in a schema.")
    return node if isinstance(node, dict) else {}


def _channels(document: Mapping[str, Any], which: str) -> dict[str, Any]:
    channels = document.get("channels") if isinstance(document, Mapping) else None
    if isinstance(channels, dict):
        return channels
    raise ValueError(
        f"The {which} document has no 'channels' object; pass an AsyncAPI file written by "
        "`flask docs export --format asyncapi` or saved from GET /ws-docs/spec."
    )


def _ref_of(node: Any) -> str:
    return str(node["$ref"]) if isinstance(node, dict) and "$ref" in node else ""


def _alternatives(schema: dict[str, Any]) -> list[Any]:
    options = schema.get("oneOf") or schema.get("anyOf")
    return list(options) if isinstance(options, list) else [schema]


def _type_set(schema: dict[str, Any]) -> frozenset[str] | None:
    kinds = schema.get("type")
    if kinds is None:
        return None
    return frozenset(kinds if isinstance(kinds, list) else [kinds])


def _covered(kind: str, kinds: frozenset[str]) -> bool:
    return kind in kinds or NUMERIC.get(kind) in kinds


def _type_label(kinds: frozenset[str] | None) -> str:
    return "any" if kinds is None else " | ".join(sorted(kinds, key=lambda kind: (kind == "null", kind)))


def _values(values: list[Any]) -> str:
    return ", ".join(json.dumps(value) for value in values)


def _bound(value: Any) -> str:
    return "none" if value is None else json.dumps(value)

