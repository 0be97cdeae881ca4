"""Property tests of the event payloads (hypothesis), on Flask-SocketIO's test client.

(a) Every client→server handler answers any JSON it is sent — arbitrary values, any number of arguments,
    payloads drawn from its documented schema and such payloads with one field replaced — with exactly one
    ack envelope ``{"ok": true, "data": …}`` or ``{"ok": false, "error": {code, message, fields?}}``, never
    ``INTERNAL``, never an exception, and the socket stays connected; without an ack callback, failures come
    as ``error`` events of the same shape. On the embedded default and on Redis.
(b) The documented JSON Schema of each inbound payload (``/ws-docs/events/<name>`` ``payloadResolved``) and
    the marshmallow schema that validates it at runtime agree: objects generated from the JSON Schema are
    accepted by ``schema.load``, and one field set to a value of the wrong JSON type is refused with that
    field named in the error's ``fields``.
(c) Outbound payloads round-trip: every declared example, and objects generated from each server event's
    JSON Schema, are stable under ``dump → load → dump``.

Where the JSON Schema and the runtime disagree, :data:`KNOWN_DISAGREEMENTS` holds a reproduction for each,
run as ``xfail(strict=True)``: fixing the disagreement turns that case into an XPASS, which fails the run
until the entry is removed.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask_socketio import SocketIOTestClient
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import event as note_outcome
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy
from marshmallow import Schema, ValidationError

from realtime.errors import ErrorCode
from realtime.extensions import socketio
from realtime.features import BLUEPRINTS
from realtime.schemas import fields as schema_fields
from tests.conftest import TokenActions

#: Every client→server event, known at collection time from the blueprints (the catalog is built from them).
EVENTS = sorted(handler.event for blueprint in BLUEPRINTS for handler in blueprint.handlers)
SERVER_EVENTS = sorted(declared.name for blueprint in BLUEPRINTS for declared in blueprint.server_events)
APPS = ["app", "redis_app"]
CODES = {code.value for code in ErrorCode}
IDENTIFIER_PATTERN = "^[A-Za-z0-9_-]{1,64}$"
#: Ids the handlers' state knows (alice is in chat room "lobby" and game "g7").
KNOWN_IDS = ["lobby", "g7", "p42", "alice", "bob", "n-1"]
#: Longest text drawn for an unbounded (or very long) string; boundary lengths are drawn separately.
TEXT_CAP = 120

#: No example database: the tests write nothing into the repository (a failure prints its reproduction).
COMMON = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
#: For tests expected to fail (strict xfail): find a counterexample, do not spend time shrinking it.
NO_SHRINK = settings(COMMON, phases=[Phase.explicit, Phase.reuse, Phase.generate])
#: Keys the runtime refuses in free-form objects (``__proto__``…), when the server defines them.
FORBIDDEN_KEYS: frozenset[str] = frozenset(getattr(schema_fields, "FORBIDDEN_KEYS", ()))


# -- JSON values and JSON Schema → strategies -----------------------------------------------------------------

json_scalars: SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),  # the server's JSON parser accepts NaN and Infinity
    st.text(max_size=40),
)
#: Any JSON value, bounded: the (a) payloads.
json_values: SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)
def _plain_json(depth: int) -> SearchStrategy[Any]:
    """JSON the server itself may send: no NaN or Infinity, no prototype keys, at most ``depth`` levels."""
    value: SearchStrategy[Any] = (
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
    )
    keys = st.text(max_size=10).filter(lambda k: k not in FORBIDDEN_KEYS)
    for _ in range(depth):
        value = value | st.lists(value, max_size=4) | st.dictionaries(keys, value, max_size=4)
    return value


plain_json = _plain_json(3)
#: http(s) URLs the runtime's URL validator accepts (a dotted host with a TLD of 2+ letters).
http_urls: SearchStrategy[str] = st.builds(
    "{}://{}.{}{}".format,
    st.sampled_from(["http", "https"]),
    st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?\Z"),
    st.sampled_from(["com", "example", "org", "io", "co.uk"]),
    st.from_regex(r"\A(/[A-Za-z0-9._~-]{0,12}){0,3}\Z"),
)
#: Absolute URIs as RFC 3986 (JSON Schema ``format: uri``) has them: any scheme, any host.
rfc3986_uris: SearchStrategy[str] = st.one_of(
    http_urls,
    st.from_regex(r"\A[a-z][a-z0-9+.-]{0,8}:[A-Za-z0-9/._~%!$&'()*+,;=:@-]{1,40}\Z"),
)
identifiers: SearchStrategy[str] = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=64
)
date_times: SearchStrategy[str] = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(9999, 1, 1)
).map(lambda d: d.replace(tzinfo=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"))


def _text(schema: Mapping[str, Any]) -> SearchStrategy[str]:
    low = int(schema.get("minLength", 0))
    high = schema.get("maxLength")
    drawn = st.text(min_size=low, max_size=max(low, min(TEXT_CAP, high if high is not None else TEXT_CAP)))
    if high is not None and high > TEXT_CAP:
        drawn = drawn | st.characters().map(lambda c: c * high)  # the exact boundary, cheaply
    return drawn


def strategy_for(
    schema: Mapping[str, Any],
    overrides: Mapping[str, SearchStrategy[Any]] | None = None,
    ids: SearchStrategy[str] | None = None,
    uris: SearchStrategy[str] = rfc3986_uris,
    anything: SearchStrategy[Any] = json_values,
) -> SearchStrategy[Any]:
    """Values valid under ``schema`` (the JSON Schema subset apispec emits for our schemas).

    :param overrides: strategies for properties by name, at any depth (narrowing a documented gap).
    :param ids: what to draw for identifier-pattern strings (default: any string of the pattern).
    :param uris: what to draw for ``format: uri``.
    :param anything: what to draw where the schema allows any value (``{}``).
    """
    overrides = overrides or {}

    def build(node: Mapping[str, Any]) -> SearchStrategy[Any]:
        kind = node.get("type")
        if isinstance(kind, list):
            return st.one_of(*(build({**node, "type": one}) for one in kind))
        if kind == "null":
            return st.none()
        if "enum" in node:
            return st.sampled_from(node["enum"])
        if kind == "string":
            if "pattern" in node:
                if node["pattern"] == IDENTIFIER_PATTERN:  # the same language as the regex, much faster
                    drawn = identifiers if ids is None else ids
                else:
                    drawn = st.from_regex(re.compile(node["pattern"], re.ASCII), fullmatch=True)  # ECMA: ASCII
                low, high = node.get("minLength", 0), node.get("maxLength", math.inf)
                return drawn.filter(lambda s: low <= len(s) <= high)
            if node.get("format") == "uri":
                high = node.get("maxLength", math.inf)
                return uris.filter(lambda s: len(s) <= high)
            if node.get("format") == "date-time":
                return date_times
            return _text(node)
        if kind == "integer":
            return st.integers(min_value=node.get("minimum"), max_value=node.get("maximum"))
        if kind == "number":
            return st.integers() | st.floats(allow_nan=False, allow_infinity=False)
        if kind == "boolean":
            return st.booleans()
        if kind == "array":
            items = build(node.get("items", {}))
            low = node.get("minItems", 0)
            return st.lists(items, min_size=low, max_size=max(low, min(node.get("maxItems", 6), 6))) | (
                st.lists(items, min_size=node["maxItems"], max_size=node["maxItems"]) if "maxItems" in node else st.nothing()
            )
        if kind == "object":
            properties: Mapping[str, Any] = node.get("properties", {})
            required = set(node.get("required", []))
            if not properties:
                extra = node.get("additionalProperties", True)
                values = anything if extra in (True, {}) else build(extra)
                return st.dictionaries(st.text(max_size=16), values, max_size=5)
            strategies = {name: overrides[name] if name in overrides else build(sub) for name, sub in properties.items()}
            return st.fixed_dictionaries(
                {name: s for name, s in strategies.items() if name in required},
                optional={name: s for name, s in strategies.items() if name not in required},
            )
        if not node:  # {}: anything
            return anything
        raise NotImplementedError(f"no strategy for JSON Schema {dict(node)}")

    return build(schema)


def wrong_type(schema: Mapping[str, Any]) -> SearchStrategy[Any]:
    """Values whose JSON type ``schema`` does not allow."""
    kinds = schema.get("type")
    allowed = set(kinds) if isinstance(kinds, list) else {kinds}
    options: dict[str, SearchStrategy[Any]] = {
        "string": st.text(max_size=10),
        "integer": st.integers(),
        "number": st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer()),
        "boolean": st.booleans(),
        "null": st.none(),
        "array": st.lists(json_scalars, max_size=3),
        "object": st.dictionaries(st.text(max_size=5), json_scalars, max_size=3),
    }
    if "integer" in allowed or "number" in allowed:
        allowed |= {"integer", "number"} if "number" in allowed else {"integer"}
    return st.one_of(*(s for name, s in options.items() if name not in allowed))


def inbound_schema(app: Flask, event: str) -> dict[str, Any]:
    """The documented JSON Schema of ``event``'s payload, ``$ref``s resolved."""
    (doc,) = [e for e in app.extensions["realtime_docs"].get_event(event) if e["direction"] == "client_to_server"]
    return doc["payloadResolved"]


def outbound_schema(app: Flask, event: str) -> dict[str, Any]:
    (doc,) = [e for e in app.extensions["realtime_docs"].get_event(event) if e["direction"] != "client_to_server"]
    return doc["payloadResolved"]


def runtime_schema(app: Flask, event: str) -> Schema:
    schema = app.extensions["realtime"].catalog.handlers[event].schema
    assert schema is not None, f"{event} has no payload schema"
    return schema


# -- what the runtime rules add to the documented schemas (the narrowing used by the passing tests) --------

valid_moves: SearchStrategy[dict[str, Any]] = st.dictionaries(
    st.text(min_size=1, max_size=32).filter(lambda k: k not in FORBIDDEN_KEYS),
    st.booleans()
    | st.integers(min_value=-(2**53 - 1), max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=64),
    min_size=1,
    max_size=16,
)
#: Per event: (overrides, filter) that turn "valid per the JSON Schema" into "valid per the runtime" for the
#: documented gaps in KNOWN_DISAGREEMENTS.
RUNTIME_RULES: dict[str, tuple[dict[str, SearchStrategy[Any]], Callable[[dict[str, Any]], bool]]] = {
    "chat:message": ({"mediaUrl": http_urls}, lambda d: bool(d.get("content") or d.get("mediaUrl"))),
    "game:move": ({"move": valid_moves}, lambda d: True),
}


# -- (a) any JSON in, one envelope out ------------------------------------------------------------------------

@pytest.fixture
def config() -> dict[str, Any]:
    """No rate limit (hypothesis sends hundreds of events per socket); everything else as in conftest."""
    return {
        "APP_ENV": "local",
        "JWT_SECRET": "test-secret-for-realtime-suite-0123456789",
        "LOG_LEVEL": "CRITICAL",
        "ALLOWED_ORIGINS": "*",
        "EVENT_RATE": "1000000",
        "EVENT_BURST": "1000000",
        "RATE_LIMIT_DISCONNECT": "1000000",
    }


@pytest.fixture
def alice(request: pytest.FixtureRequest, app_name: str) -> Iterator[tuple[Flask, SocketIOTestClient]]:
    """alice on ``app_name``, in chat room "lobby" and in game "g7" (its only player: always her turn)."""
    app: Flask = request.getfixturevalue(app_name)
    app.extensions["realtime"].games.set_players("g7", ["alice"])
    client = socketio.test_client(app, auth={"token": TokenActions(app).create("alice")})
    assert client.is_connected()
    assert client.emit("chat:join", {"roomId": "lobby"}, callback=True)["ok"]
    assert client.emit("game:join", {"gameId": "g7"}, callback=True)["ok"]
    client.get_received()
    yield app, client
    if client.is_connected():
        client.disconnect()


@pytest.fixture(params=APPS)
def app_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def assert_envelope(envelope: Any, context: str) -> None:
    """The one ack envelope, never INTERNAL."""
    assert isinstance(envelope, dict), f"{context}: no envelope: {envelope!r}"
    if envelope.get("ok") is True:
        assert set(envelope) == {"ok", "data"}, f"{context}: {envelope!r}"
        json.dumps(envelope, allow_nan=False)  # the data a client receives is plain JSON
        return
    assert envelope.get("ok") is False and set(envelope) == {"ok", "error"}, f"{context}: {envelope!r}"
    error = envelope["error"]
    assert isinstance(error, dict) and set(error) <= {"code", "message", "fields"}, f"{context}: {envelope!r}"
    assert error.get("code") in CODES, f"{context}: {envelope!r}"
    assert isinstance(error.get("message"), str) and error["message"], f"{context}: {envelope!r}"
    if "fields" in error:
        assert isinstance(error["fields"], dict) and error["fields"], f"{context}: {envelope!r}"
    assert error["code"] != ErrorCode.INTERNAL.value, f"{context}: INTERNAL for {envelope!r}"


def history_cursor_bug(app_name: str, event: str, args: tuple[Any, ...]) -> bool:
    """The one INTERNAL :func:`test_history_cursor_that_redis_refuses_is_a_validation_error` reproduces."""
    if app_name != "redis_app" or event != "chat:history" or len(args) != 1 or not isinstance(args[0], dict):
        return False
    before = args[0].get("before")
    return isinstance(before, str) and re.fullmatch(r"\d{1,20}-\d{1,20}", before.rstrip("\n")) is not None and (
        not before.isascii()
        or before.endswith("\n")
        or any(int(part) >= 2**64 for part in before.rstrip("\n").split("-"))
        or all(int(part) == 0 for part in before.rstrip("\n").split("-"))
    )


_PAYLOADS: dict[str, SearchStrategy[tuple[Any, ...]]] = {}


def payloads_for(app: Flask, event: str) -> SearchStrategy[tuple[Any, ...]]:
    """Argument tuples for ``event``: arbitrary JSON (one or several arguments); documented payloads (as
    documented, and narrowed to the runtime's extra rules so handlers run); documented payloads with one
    property replaced by arbitrary JSON, or with an unknown key."""
    schema = inbound_schema(app, event)
    key = json.dumps([event, schema], sort_keys=True)
    if key not in _PAYLOADS:
        _PAYLOADS[key] = _build_payloads(event, schema)
    return _PAYLOADS[key]


def _build_payloads(event: str, schema: dict[str, Any]) -> SearchStrategy[tuple[Any, ...]]:
    known = st.sampled_from(KNOWN_IDS)
    known_ids = st.one_of(known, known, known, identifiers)  # mostly ids the handlers' state knows
    documented = strategy_for(schema, ids=known_ids)
    if event in RUNTIME_RULES:
        overrides, keep = RUNTIME_RULES[event]
        documented = documented | strategy_for(schema, overrides=overrides, ids=known_ids).filter(keep)
    properties = sorted(schema.get("properties", {}))
    mutated = st.builds(lambda d, k, v: {**d, k: v}, documented, st.sampled_from(properties), json_values)
    extra_key = st.builds(lambda d, k, v: {**d, k: v}, documented, st.text(min_size=1, max_size=12), json_values)
    single = st.one_of(json_values, documented, documented, mutated, extra_key)
    return st.one_of(single.map(lambda p: (p,)), single.map(lambda p: (p,)), st.lists(json_values, max_size=3).map(tuple))


@pytest.mark.parametrize("event", EVENTS)
@settings(COMMON, max_examples=20)
@given(data=st.data())
def test_any_json_gets_one_envelope(alice: tuple[Flask, SocketIOTestClient], app_name: str, event: str,
                                    data: st.DataObject) -> None:
    app, client = alice
    assert set(app.extensions["realtime"].catalog.handlers) == set(EVENTS)
    args = data.draw(payloads_for(app, event), label="args")
    context = f"{event} on {app_name} with {args!r}"[:2000]
    envelope = client.emit(event, *args, callback=True)
    assert client.is_connected(), f"{context}: disconnected"
    if history_cursor_bug(app_name, event, args) and isinstance(envelope, dict) and not envelope.get("ok"):
        assume(False)  # known bug, reproduced by test_history_cursor_that_redis_refuses_is_a_validation_error
    assert_envelope(envelope, context)
    note_outcome("ok" if envelope["ok"] else envelope["error"]["code"])  # --hypothesis-show-statistics
    # Without an ack callback a failure arrives as an `error` event: {code, message, fields?, event}.
    client.get_received()
    client.emit(event, *args)
    errors = [m["args"][0] for m in client.get_received() if m["name"] == "error"]
    assert len(errors) <= 1, f"{context}: several error events {errors!r}"
    for error in errors:
        assert set(error) <= {"code", "message", "fields", "event"} and error["event"] == event, f"{context}: {error!r}"
        assert error["code"] in CODES and error["code"] != ErrorCode.INTERNAL.value, f"{context}: {error!r}"
    assert client.is_connected(), f"{context}: disconnected"


# -- (b) the documented JSON Schema and the runtime validator agree -------------------------------------------


def _documented_payloads(app: Flask, event: str, narrow: bool) -> SearchStrategy[dict[str, Any]]:
    schema = inbound_schema(app, event)
    if narrow and event in RUNTIME_RULES:
        overrides, keep = RUNTIME_RULES[event]
        return strategy_for(schema, overrides=overrides).filter(keep)
    return strategy_for(schema)


def _load(schema: Schema, payload: Any) -> Any:
    try:
        return schema.load(payload)
    except ValidationError as err:
        raise AssertionError(f"documented payload {payload!r} refused: {err.messages}") from None


#: Events whose documented schema accepts payloads the runtime refuses (see KNOWN_DISAGREEMENTS).
FAITHFUL_XFAIL = {
    "chat:message": "DISAGREEMENT chat-message-content-or-media, chat-message-media-url (see KNOWN_DISAGREEMENTS)",
    "game:move": "DISAGREEMENT game-move-shape (see KNOWN_DISAGREEMENTS)",
}


@pytest.mark.parametrize("event", [e for e in EVENTS if e not in FAITHFUL_XFAIL])
@settings(COMMON, max_examples=25)
@given(data=st.data())
def test_documented_payloads_are_accepted(app: Flask, event: str, data: st.DataObject) -> None:
    """Exactly as documented (no narrowing): what the JSON Schema accepts, ``schema.load`` accepts."""
    payload = data.draw(_documented_payloads(app, event, narrow=False), label="payload")
    _load(runtime_schema(app, event), payload)


@pytest.mark.parametrize(
    "event", [pytest.param(e, marks=pytest.mark.xfail(strict=True, reason=r)) for e, r in FAITHFUL_XFAIL.items()]
)
@settings(NO_SHRINK, max_examples=100)
@given(data=st.data())
def test_documented_payloads_of_the_known_gaps_are_accepted(app: Flask, event: str, data: st.DataObject) -> None:
    """The same, for the events of FAITHFUL_XFAIL: hypothesis finds a payload the runtime refuses."""
    payload = data.draw(_documented_payloads(app, event, narrow=False), label="payload")
    _load(runtime_schema(app, event), payload)


@pytest.mark.parametrize("event", sorted(RUNTIME_RULES))
@settings(COMMON, max_examples=30)
@given(data=st.data())
def test_documented_payloads_narrowed_by_the_known_gaps_are_accepted(app: Flask, event: str, data: st.DataObject) -> None:
    """The events of FAITHFUL_XFAIL, generated from their JSON Schema narrowed by the undocumented rules."""
    payload = data.draw(_documented_payloads(app, event, narrow=True), label="payload")
    _load(runtime_schema(app, event), payload)


@pytest.mark.parametrize("event", EVENTS)
@settings(COMMON, max_examples=20)
@given(data=st.data())
def test_a_field_of_the_wrong_type_is_named(app: Flask, event: str, data: st.DataObject) -> None:
    """One property set to a value of a JSON type its schema does not allow: refused, naming that property."""
    schema = inbound_schema(app, event)
    properties: dict[str, Any] = schema["properties"]
    payload = data.draw(_documented_payloads(app, event, narrow=True), label="payload")
    name = data.draw(st.sampled_from(sorted(properties)), label="field")
    payload[name] = data.draw(wrong_type(properties[name]), label="wrong value")
    with pytest.raises(ValidationError) as refused:
        runtime_schema(app, event).load(payload)
    assert name in refused.value.messages, f"{payload!r}: {refused.value.messages}"


# -- known disagreements: each reproduced, strict xfail -------------------------------------------------------


def documented_valid(schema: Mapping[str, Any], payload: Any) -> bool:
    """A JSON Schema check of the subset apispec emits (ECMA-262 regexes approximated by ``re.ASCII`` and ``\\Z``)."""

    def valid(node: Mapping[str, Any], value: Any) -> bool:
        kind = node.get("type")
        if isinstance(kind, list):
            return any(valid({**node, "type": one}, value) for one in kind)
        if "enum" in node and value not in node["enum"]:
            return False
        checks: dict[Any, Callable[[Any], bool]] = {
            "string": lambda v: isinstance(v, str),
            "integer": lambda v: isinstance(v, int | float) and not isinstance(v, bool) and float(v).is_integer(),
            "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
            "boolean": lambda v: isinstance(v, bool),
            "null": lambda v: v is None,
            "array": lambda v: isinstance(v, list),
            "object": lambda v: isinstance(v, dict),
            None: lambda v: True,
        }
        if not checks[kind](value):
            return False
        if kind == "string":
            if "pattern" in node and re.search(node["pattern"].replace("$", r"\Z"), value, re.ASCII) is None:
                return False
            if not node.get("minLength", 0) <= len(value) <= node.get("maxLength", math.inf):
                return False
            if node.get("format") == "uri" and re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$", value) is None:
                return False
        if kind == "integer" and not node.get("minimum", -math.inf) <= value <= node.get("maximum", math.inf):
            return False
        if kind == "array":
            if not node.get("minItems", 0) <= len(value) <= node.get("maxItems", math.inf):
                return False
            return all(valid(node.get("items", {}), item) for item in value)
        if kind == "object":
            properties = node.get("properties", {})
            if any(name not in value for name in node.get("required", [])):
                return False
            extra = node.get("additionalProperties", True)
            for key, item in value.items():
                if key in properties:
                    if not valid(properties[key], item):
                        return False
                elif extra is False or (isinstance(extra, dict) and extra and not valid(extra, item)):
                    return False
        return True

    return valid(schema, payload)


def runtime_accepts(schema: Schema, payload: Any) -> bool:
    try:
        schema.load(payload)
    except ValidationError:
        return False
    return True


NOTIFICATION = {"id": "n-1", "type": "mention", "title": "Hi", "createdAt": "2026-01-01T12:00:00.000Z"}
MEDIA = {"id": "m1", "type": "IMAGE", "url": "https://cdn.example/m1.jpg"}

#: (id, event, "in" | "out", payload): the documented JSON Schema and the runtime disagree about each payload.
KNOWN_DISAGREEMENTS: list[tuple[str, str, str, Any]] = [
    # The rule "content, mediaUrl or both" (ChatMessageInSchema._content_or_media) is not in the JSON Schema.
    ("chat-message-content-or-media", "chat:message", "in", {"roomId": "lobby"}),
    ("chat-message-content-or-media-type-only", "chat:message", "in", {"roomId": "lobby", "type": "IMAGE"}),
    # format: uri is any absolute URI; the runtime takes http(s) with a dotted host and a 2+ letter TLD.
    ("chat-message-media-url-ftp", "chat:message", "in", {"roomId": "lobby", "mediaUrl": "ftp://cdn.example/p.jpg"}),
    ("chat-message-media-url-urn", "chat:message", "in", {"roomId": "lobby", "mediaUrl": "urn:isbn:0451450523"}),
    ("chat-message-media-url-one-letter-tld", "chat:message", "in", {"roomId": "lobby", "mediaUrl": "https://a.b/p.jpg"}),
    ("party-media-url-ftp", "party:new_media", "out", {"partyId": "p42", "media": {**MEDIA, "url": "ftp://cdn.example/m1"}}),
    # game:move's move is documented as any object; validate_move wants 1-16 scalar-valued keys.
    ("game-move-shape-empty", "game:move", "in", {"gameId": "g7", "move": {}}),
    ("game-move-shape-nested", "game:move", "in", {"gameId": "g7", "move": {"x": {"y": 1}}}),
    ("game-move-shape-17-keys", "game:move", "in", {"gameId": "g7", "move": {f"k{i}": i for i in range(17)}}),
    ("game-move-shape-long-string", "game:move", "in", {"gameId": "g7", "move": {"x": "s" * 65}}),
    ("game-move-shape-unsafe-integer", "game:move", "in", {"gameId": "g7", "move": {"x": 2**53}}),
    ("game-move-shape-null", "game:move", "in", {"gameId": "g7", "move": {"x": None}}),
    ("game-move-shape-key-33-chars", "game:move", "in", {"gameId": "g7", "move": {"k" * 33: 1}}),
    # JSON Schema's integer is any number with a zero fraction; the runtime wants an integer literal.
    ("integer-written-as-1.0", "chat:history", "in", {"roomId": "lobby", "limit": 20.0}),
]
if FORBIDDEN_KEYS:  # prototype-key guards, where the server has them: not in the JSON Schema either
    KNOWN_DISAGREEMENTS += [
        ("game-move-proto-key", "game:move", "in", {"gameId": "g7", "move": {"__proto__": 1}}),
        ("notification-data-proto-key", "notification:new", "out", {**NOTIFICATION, "data": {"constructor": 1}}),
    ]
if hasattr(schema_fields, "MAX_DATA_DEPTH"):
    _deep: Any = 1
    for _ in range(schema_fields.MAX_DATA_DEPTH + 2):
        _deep = {"a": _deep}
    KNOWN_DISAGREEMENTS.append(("notification-data-depth", "notification:new", "out", {**NOTIFICATION, "data": _deep}))


@pytest.mark.xfail(strict=True, reason="the documented JSON Schema and the runtime validator disagree")
@pytest.mark.parametrize(("event", "direction", "payload"), [case[1:] for case in KNOWN_DISAGREEMENTS],
                         ids=[case[0] for case in KNOWN_DISAGREEMENTS])
def test_known_disagreement(app: Flask, event: str, direction: str, payload: Any) -> None:
    if direction == "in":
        schema, runtime = inbound_schema(app, event), runtime_schema(app, event)
    else:
        schema, runtime = outbound_schema(app, event), _server_schema(app, event)
    documented, accepted = documented_valid(schema, payload), runtime_accepts(runtime, payload)
    assert documented == accepted, f"JSON Schema says {documented}, schema.load says {accepted} for {payload!r}"


def test_the_checker_agrees_on_the_examples(app: Flask) -> None:
    """documented_valid (used above) accepts every documented example, inbound and outbound."""
    catalog = app.extensions["realtime"].catalog
    for event, handler in catalog.handlers.items():
        for example in handler.doc.examples:
            assert documented_valid(inbound_schema(app, event), example), (event, example)
    for event, declared in catalog.server_events.items():
        for example in declared.examples:
            assert documented_valid(outbound_schema(app, event), example), (event, example)


@pytest.mark.parametrize("before", ["0-0", "00-00", "99999999999999999999-1", "1-18446744073709551616",
                                    "١٧٠٠٠٠٠٠٠٠٠٠٠-٠", "1700000000000-0\n"])
def test_history_cursor_that_redis_refuses_is_a_validation_error(redis_app: Flask, before: str) -> None:
    """Cursors Redis would refuse are refused by the schema (0-0, nothing is older, is an empty page)."""
    client = socketio.test_client(redis_app, auth={"token": TokenActions(redis_app).create("alice")})
    assert client.emit("chat:join", {"roomId": "lobby"}, callback=True)["ok"]
    envelope = client.emit("chat:history", {"roomId": "lobby", "before": before}, callback=True)
    assert envelope["ok"] or envelope["error"]["code"] == "VALIDATION_ERROR", envelope


# -- (c) outbound payloads round-trip -------------------------------------------------------------------------


def _server_schema(app: Flask, event: str) -> Schema:
    return app.extensions["realtime"].catalog.server_events[event].schema


def _round_trip(schema: Schema, payload: Any, documented: Mapping[str, Any]) -> None:
    """dump → (JSON) → load → dump keeps every value; load only adds documented defaults; a second trip
    changes nothing."""

    def trip(value: Any) -> Any:
        wire = json.loads(json.dumps(schema.dump(value), allow_nan=False))
        try:
            return schema.dump(schema.load(wire))
        except ValidationError as err:
            raise AssertionError(f"the dump of {value!r} does not load back: {err.messages}") from None

    dumped = schema.dump(payload)
    once = trip(payload)
    assert trip(once) == once, f"{payload!r}: a second dump→load→dump changed it"
    properties = documented.get("properties", {})
    for key, value in once.items():
        if key in dumped:
            assert value == dumped[key], f"{payload!r}: {key} changed from {dumped[key]!r} to {value!r}"
        else:
            assert properties.get(key, {}).get("default", object()) == value, f"{payload!r}: {key} appeared"
    assert set(dumped) <= set(once), f"{payload!r}: {set(dumped) - set(once)} lost"


@pytest.mark.parametrize("event", SERVER_EVENTS)
def test_outbound_examples_round_trip(app: Flask, event: str) -> None:
    declared = app.extensions["realtime"].catalog.server_events[event]
    assert declared.examples, f"{event} has no example"
    for example in declared.examples:
        _round_trip(declared.schema, example, outbound_schema(app, event))
        assert declared.schema.dump(example) == example, f"{event}: the example is not in its wire shape"


@pytest.mark.parametrize("event", SERVER_EVENTS)
@settings(COMMON, max_examples=20)
@given(data=st.data())
def test_outbound_payloads_round_trip(app: Flask, event: str, data: st.DataObject) -> None:
    """Objects generated from a server event's JSON Schema survive dump → load → dump unchanged."""
    payload = data.draw(strategy_for(outbound_schema(app, event), uris=http_urls, anything=plain_json), label="payload")
    _round_trip(_server_schema(app, event), payload, outbound_schema(app, event))
