"""Socket blueprints: record handlers per feature module, register them on the app later."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from marshmallow import Schema

from realtime.auth.sessions import Profile
from realtime.broadcaster import Outgoing
from realtime.docs.decorators import EventDoc, as_schema, doc_of
from realtime.services import Services
from realtime.socket_state import ConnectInfo, ReleaseInfo

HandlerFunc = Callable[["EventContext", Any], Any]
ConnectHook = Callable[["EventContext", ConnectInfo], "list[Outgoing]"]
ReleaseHook = Callable[[ReleaseInfo, Services], "list[Outgoing]"]


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
    """One client→server event: its name, the function and its documentation (payload and ack schemas).

    ``wrap`` names the field a bare (non-object) payload is put into, for clients written to the
    seeds' shapes (``presence:check ["bob"]`` is ``{"userIds": ["bob"]}``).
    """

    event: str
    func: HandlerFunc
    doc: EventDoc
    blueprint: str
    wrap: str | None = None

    @property
    def schema(self) -> Schema | None:
        """The payload schema from ``@ws_payload``."""
        return self.doc.payload

    @property
    def ack(self) -> Schema | None:
        """The ack ``data`` schema from ``@ws_ack``."""
        return self.doc.ack


@dataclass(frozen=True)
class ServerEvent:
    """One server→client event: its payload schema, what it means, who receives it and examples.

    ``publishable`` events may be sent from outside (HTTP emit API, :class:`realtime.emitter.Emitter`).
    """

    name: str
    schema: Schema
    description: str
    blueprint: str
    to: str
    examples: tuple[Any, ...]
    broadcast: bool = False
    publishable: bool = False


class SocketBlueprint:
    """A feature's client→server handlers, recorded at import and registered by the factory.

    ``@chat.on("chat:message", ChatMessageInSchema)`` validates the payload with the schema and calls
    the function with ``(ctx, data)``; its return value becomes ``{"ok": true, "data": ...}``.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.handlers: list[EventHandler] = []
        self.server_events: list[ServerEvent] = []
        self.connect_hooks: list[ConnectHook] = []
        self.release_hooks: list[ReleaseHook] = []

    def on_connect(self, func: ConnectHook) -> ConnectHook:
        """Run ``func(ctx, info)`` after a socket is registered; it returns events to broadcast."""
        self.connect_hooks.append(func)
        return func

    def on_release(self, func: ReleaseHook) -> ReleaseHook:
        """Run ``func(info, services)`` when a socket is gone (disconnected, or reaped after its worker died);
        it returns events to broadcast."""
        self.release_hooks.append(func)
        return func

    def on(self, event: str, wrap: str | None = None) -> Callable[[HandlerFunc], HandlerFunc]:
        """Record ``func`` as the handler of ``event``; put it above ``@ws_event``/``@ws_payload``/``@ws_ack``."""
        if any(h.event == event for h in self.handlers):
            raise ValueError(f"{event!r} is already handled in blueprint {self.name!r}.")

        def decorator(func: HandlerFunc) -> HandlerFunc:
            doc = doc_of(func)
            if doc.name and doc.name != event:
                raise ValueError(f"{func.__name__} handles {event!r} but @ws_event names {doc.name!r}.")
            self.handlers.append(EventHandler(event=event, func=func, doc=doc, blueprint=self.name, wrap=wrap))
            return func

        return decorator

    def emits(
        self,
        event: str,
        schema: type[Schema] | Schema,
        description: str,
        to: str,
        examples: Sequence[Any],
        broadcast: bool = False,
        publishable: bool = False,
    ) -> None:
        """Declare a server→client event this feature sends: schema, meaning, audience (``to``) and examples."""
        if any(e.name == event for e in self.server_events):
            raise ValueError(f"{event!r} is already declared in blueprint {self.name!r}.")
        self.server_events.append(
            ServerEvent(
                name=event,
                schema=as_schema(schema),
                description=description,
                blueprint=self.name,
                to=to,
                examples=tuple(examples),
                broadcast=broadcast,
                publishable=publishable,
            )
        )
