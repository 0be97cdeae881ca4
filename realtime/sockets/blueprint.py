"""Socket blueprints: record handlers per feature module, register them on the app later."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from marshmallow import Schema

from realtime.auth.sessions import Profile
from realtime.services import Services

HandlerFunc = Callable[["EventContext", Any], Any]


@dataclass(frozen=True)
class EventContext:
    """What a handler knows about the socket that sent the event."""

    sid: str
    user_id: str
    session_id: str
    profile: Profile
    services: Services


@dataclass(frozen=True)
class EventHandler:
    """One client→server event: its name, the schema of its payload and the function."""

    event: str
    func: HandlerFunc
    schema: Schema | None
    blueprint: str


class SocketBlueprint:
    """A feature's client→server handlers, recorded at import and registered by the factory.

    ``@chat.on("chat:message", ChatMessageInSchema)`` validates the payload with the schema and calls
    the function with ``(ctx, data)``; its return value becomes ``{"ok": true, "data": ...}``.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.handlers: list[EventHandler] = []

    def on(self, event: str, schema: type[Schema] | Schema | None = None) -> Callable[[HandlerFunc], HandlerFunc]:
        """Record ``func`` as the handler of ``event``."""
        if any(h.event == event for h in self.handlers):
            raise ValueError(f"{event!r} is already handled in blueprint {self.name!r}.")
        instance = schema() if isinstance(schema, type) else schema

        def decorator(func: HandlerFunc) -> HandlerFunc:
            self.handlers.append(EventHandler(event=event, func=func, schema=instance, blueprint=self.name))
            return func

        return decorator
