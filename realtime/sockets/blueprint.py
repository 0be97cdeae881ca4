"""Socket blueprints: record handlers per feature module, register them on the app later."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from marshmallow import Schema
from marshmallow import fields as ma_fields

from realtime.errors import ErrorCode
from realtime.fanout.broadcaster import Outgoing
from realtime.services.container import Services
from realtime.stores.sessions import Profile
from realtime.stores.socket_records import ConnectInfo, ReleaseInfo

HandlerFunc = Callable[["EventContext", Any], Any]
SchemaLike = type[Schema] | Schema | Mapping[str, ma_fields.Field]
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


def as_schema(schema: SchemaLike, name: str = "Inline") -> Schema:
    """A schema instance from a class, an instance or a ``{name: field}`` mapping (named ``name``)."""
    if isinstance(schema, Schema):
        return schema
    if isinstance(schema, type) and issubclass(schema, Schema):
        return schema()
    return Schema.from_dict(dict(schema), name=name)()


@dataclass(frozen=True)
class EventDoc:
    """What a handler's declaration says about its client→server event.

    ``payload`` validates what clients send and ``ack`` shapes the ``data`` of a successful ack; with the rest
    they become the catalogue, the AsyncAPI document and the TypeScript types. ``emits`` names the
    server→client events the handler causes, ``errors`` the codes it answers with besides the common ones.
    """

    description: str
    category: str
    payload: Schema | None
    ack: Schema | None
    room_required: bool = False
    examples: tuple[Any, ...] = ()
    errors: tuple[ErrorCode, ...] = ()
    emits: tuple[str, ...] = ()


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
        """The payload schema of the declaration."""
        return self.doc.payload

    @property
    def ack(self) -> Schema | None:
        """The ack ``data`` schema of the declaration."""
        return self.doc.ack


@dataclass(frozen=True)
class ServerEvent:
    """One server→client event: its payload schema, what it means, who receives it and examples.

    ``publishable`` events may be sent from outside (HTTP emit API, :class:`realtime.fanout.emitter.Emitter`).
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

    ``@chat.event("chat:message", "…", payload=ChatMessageInSchema, ack=ChatSentAckSchema, …)`` validates the
    payload with its schema and calls the function with ``(ctx, data)``; its return value, shaped by the ack
    schema, becomes ``{"ok": true, "data": ...}``.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.handlers: list[EventHandler] = []
        self.server_events: list[ServerEvent] = []
        self.connect_hooks: list[ConnectHook] = []
        self.release_hooks: list[ReleaseHook] = []
        self.counted_rooms: list[str] = []

    def on_connect(self, func: ConnectHook) -> ConnectHook:
        """Run ``func(ctx, info)`` after a socket is registered; it returns events to broadcast."""
        self.connect_hooks.append(func)
        return func

    def counts_room(self, template: str) -> None:
        """Count the sockets in room ``template`` (``{userId}`` replaced by the user's id), cluster-wide and
        parked ones included, as a socket of that user registers or is released (same round trip:
        ``ConnectInfo.counted``, ``ReleaseInfo.counted``): a connect or release hook's broadcast to a room
        counted empty is not sent, since nobody would receive it, now or on recovery."""
        self.counted_rooms.append(template)

    def on_release(self, func: ReleaseHook) -> ReleaseHook:
        """Run ``func(info, services)`` when a socket is gone (disconnected, or reaped after its worker died);
        it returns events to broadcast."""
        self.release_hooks.append(func)
        return func

    def event(
        self,
        name: str,
        description: str,
        *,
        payload: SchemaLike,
        ack: SchemaLike,
        examples: Sequence[Any],
        errors: Sequence[ErrorCode],
        emits: Sequence[str] = (),
        room_required: bool = False,
        wrap: str | None = None,
    ) -> Callable[[HandlerFunc], HandlerFunc]:
        """Record ``func`` as the handler of client→server event ``name``, with everything said about it.

        The one declaration of the event: the registry builds its catalogue entry (category: the prefix of
        ``name``) from it, and dispatch validates and shapes with its schemas.

        :param payload: validates what clients send (a schema class, an instance or a ``{name: field}``
            mapping).
        :param ack: shapes the ``data`` of a successful ack, in the same forms.
        :param examples: payloads a client may send; the tests load each through ``payload``.
        :param errors: codes the handler answers with besides the common ones.
        :param emits: the server→client events the handler causes, each declared with :meth:`emits`.
        :param room_required: the socket must have joined the event's room first.
        :param wrap: the field a bare (non-object) payload is put into, for clients written to the seeds'
            shapes (``presence:check ["bob"]`` is ``{"userIds": ["bob"]}``).
        """
        if any(h.event == name for h in self.handlers):
            raise ValueError(f"{name!r} is already handled in blueprint {self.name!r}.")

        def decorator(func: HandlerFunc) -> HandlerFunc:
            title = func.__name__.title()
            doc = EventDoc(
                description=description,
                category=name.partition(":")[0],
                payload=as_schema(payload, name=f"{title}Payload"),
                ack=as_schema(ack, name=f"{title}Ack"),
                room_required=room_required,
                examples=tuple(examples),
                errors=tuple(errors),
                emits=tuple(emits),
            )
            self.handlers.append(EventHandler(event=name, func=func, doc=doc, blueprint=self.name, wrap=wrap))
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
