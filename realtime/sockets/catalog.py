"""Every event of the product, built from the registered blueprints; the one place payloads are shaped."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from marshmallow import ValidationError

from realtime.errors import ErrorCode, RealtimeError
from realtime.schemas.dumpers import dumper
from realtime.sockets.blueprint import ConnectHook, EventHandler, ReleaseHook, ServerEvent, SocketBlueprint


class EventCatalog:
    """Client→server handlers and server→client declarations, by name."""

    def __init__(self, blueprints: Iterable[SocketBlueprint]) -> None:
        self.blueprints = list(blueprints)
        self.handlers: dict[str, EventHandler] = {}
        self.server_events: dict[str, ServerEvent] = {}
        self.connect_hooks: list[ConnectHook] = [h for bp in self.blueprints for h in bp.connect_hooks]
        self.release_hooks: list[ReleaseHook] = [h for bp in self.blueprints for h in bp.release_hooks]
        self.counted_rooms: list[str] = [t for bp in self.blueprints for t in bp.counted_rooms]
        for blueprint in self.blueprints:
            for handler in blueprint.handlers:
                if handler.event in self.handlers:
                    raise ValueError(
                        f"{handler.event!r} is handled by both {self.handlers[handler.event].blueprint!r} "
                        f"and {blueprint.name!r}."
                    )
                self.handlers[handler.event] = handler
            for declared in blueprint.server_events:
                if declared.name in self.server_events:
                    raise ValueError(f"{declared.name!r} is declared by two blueprints.")
                self.server_events[declared.name] = declared

    def shape(self, event: str, data: Any) -> Any:
        """Dump ``data`` through the declared schema of ``event``.

        :raises KeyError: for an undeclared event: every emitted event must be documented.
        """
        declared = self.server_events.get(event)
        if declared is None:
            raise KeyError(f"Server event {event!r} is not declared; add it with SocketBlueprint.emits().")
        return dumper(declared.schema)(data)

    def schema_of(self, event: str) -> Any:
        """The declared schema of server event ``event`` (None for an undeclared one)."""
        declared = self.server_events.get(event)
        return None if declared is None else declared.schema

    def validate_publish(self, event: str, data: Any) -> Any:
        """Validate an externally published payload and return it shaped.

        :raises RealtimeError: ``VALIDATION_ERROR`` for an unknown or non-publishable event or a bad payload.
        """
        declared = self.server_events.get(event)
        if declared is None or not declared.publishable:
            publishable = sorted(n for n, e in self.server_events.items() if e.publishable)
            raise RealtimeError(
                ErrorCode.VALIDATION_ERROR,
                f"{event!r} is not a publishable server event; use one of {', '.join(publishable)}.",
                fields={"event": ["Unknown or not publishable."]},
            )
        if not isinstance(data, dict):
            raise RealtimeError(ErrorCode.VALIDATION_ERROR, "data must be a JSON object.", fields={"data": ["Not an object."]})
        try:
            loaded = declared.schema.load(data)
        except ValidationError as err:
            raise RealtimeError(ErrorCode.VALIDATION_ERROR, "data failed validation.", fields={"data": err.messages}) from None
        return dumper(declared.schema)(loaded)
