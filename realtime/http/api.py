"""The HTTP publish API: back-end services push events to sockets (``Authorization: Bearer <API key>``)."""
from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue
from marshmallow import Schema, ValidationError
from werkzeug.exceptions import HTTPException

from realtime.errors import ErrorCode, RealtimeError, failure, ok
from realtime.fanout.broadcaster import Outgoing
from realtime.features.notifications import new_notification, publish_personal
from realtime.http.limits import json_body
from realtime.identifiers import is_identifier
from realtime.schemas.api import (
    EmitRequestSchema,
    NotificationRequestSchema,
    PartyMediaRequestSchema,
    PartyStatusRequestSchema,
)
from realtime.schemas.game import GamePlayersInSchema
from realtime.services.container import Services, current_services
from realtime.services.room_rules import split_room
from realtime.stores.games import turn_of
from realtime.stores.redis.checks import UNAVAILABLE_ERRORS, log_unavailable, unavailable

logger = logging.getLogger(__name__)

bp = Blueprint("api", __name__, url_prefix="/api/v1")

STATUS = {
    ErrorCode.AUTH_REQUIRED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.VALIDATION_ERROR: 400,
    ErrorCode.UNAVAILABLE: 503,
}


@bp.app_errorhandler(404)
@bp.app_errorhandler(405)
def json_errors_under_api(error: HTTPException) -> ResponseReturnValue:
    """API clients get the error envelope for unknown routes and methods; pages keep Flask's HTML."""
    if not request.path.startswith(bp.url_prefix or "/api/"):
        return error
    code = ErrorCode.NOT_FOUND if error.code == 404 else ErrorCode.VALIDATION_ERROR
    return jsonify(failure(RealtimeError(code, error.description or "Not found."))), error.code or 404


def key_matches(candidate: str, keys: tuple[str, ...]) -> bool:
    """Compare against every configured key in constant time (no early exit on the first match)."""
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(candidate.encode(), key.encode())
    return matched


def api_endpoint(func: Callable[..., tuple[Any, int]]) -> Callable[..., ResponseReturnValue]:
    """Check the API key, run ``func``, turn refusals into the error envelope with a status code."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> ResponseReturnValue:
        services = current_services()
        scheme, _, candidate = request.headers.get("Authorization", "").partition(" ")
        try:
            if scheme.lower() != "bearer" or not candidate.strip():
                raise RealtimeError(ErrorCode.AUTH_REQUIRED, "Send Authorization: Bearer <API key>.")
            if not key_matches(candidate.strip(), services.settings.api_keys):
                raise RealtimeError(ErrorCode.FORBIDDEN, "The API key is not valid.")
            data, status = func(services, *args, **kwargs)
            return jsonify(ok(data)), status
        except RealtimeError as err:
            return jsonify(failure(err)), STATUS.get(err.code, 400)
        except UNAVAILABLE_ERRORS as exc:
            log_unavailable(logger, f"serving {request.path}", exc)
            return jsonify(failure(unavailable(exc))), 503

    return wrapper


def body(schema: Schema) -> dict[str, Any]:
    """The JSON body loaded through ``schema``.

    :raises RealtimeError: ``VALIDATION_ERROR`` with per-field messages, or when the body is not JSON or nests
        too deep (see :mod:`realtime.http.limits`, which also answers an oversized body ``413``).
    """
    payload = json_body()
    if not isinstance(payload, dict):
        raise RealtimeError(ErrorCode.VALIDATION_ERROR, "The body must be a JSON object.")
    try:
        loaded: dict[str, Any] = schema.load(payload)
    except ValidationError as err:
        raise RealtimeError(ErrorCode.VALIDATION_ERROR, "The body failed validation.", fields=err.messages) from None
    return loaded


def path_id(value: str, name: str) -> str:
    """A path segment that must be an identifier."""
    if not is_identifier(value):
        raise RealtimeError(ErrorCode.VALIDATION_ERROR, f"{name} must be 1-64 of A-Z a-z 0-9 _ -.", fields={name: ["Malformed id."]})
    return value


@bp.post("/emit")
@api_endpoint
def emit(services: Services) -> tuple[Any, int]:
    """Send one publishable server event to one room."""
    request_body = body(EmitRequestSchema())
    try:
        split_room(request_body["room"])
    except RealtimeError as err:
        raise RealtimeError(ErrorCode.VALIDATION_ERROR, err.message, fields={"room": [err.message]}) from None
    payload = services.catalog.validate_publish(request_body["event"], request_body["data"])
    services.broadcaster.emit(request_body["event"], payload, to=request_body["room"])
    return {"event": request_body["event"], "room": request_body["room"]}, 202


@bp.post("/notifications")
@api_endpoint
def notify(services: Services) -> tuple[Any, int]:
    """Personal (stored, to ``user:{id}``), group (to ``group:{id}``) or system (to ``broadcast:all``)."""
    request_body = body(NotificationRequestSchema())
    content = request_body["notification"]
    if "userIds" in request_body:
        user_ids = list(dict.fromkeys(request_body["userIds"]))
        notification = publish_personal(services, user_ids, content)
        return {"id": notification["id"], "recipients": len(user_ids), "stored": True}, 202
    notification = new_notification(content)
    room = f"group:{request_body['groupId']}" if "groupId" in request_body else "broadcast:all"
    services.broadcaster.emit_many([Outgoing("notification:new", notification, room)])
    return {"id": notification["id"], "room": room, "stored": False}, 202


@bp.post("/parties/<party_id>/status")
@api_endpoint
def party_status(services: Services, party_id: str) -> tuple[Any, int]:
    """Tell the party's viewers its status changed."""
    status = body(PartyStatusRequestSchema())["status"]
    payload = {"partyId": path_id(party_id, "partyId"), "status": status}
    services.broadcaster.emit("party:status_changed", payload, to=f"party:{party_id}")
    return payload, 202


@bp.post("/parties/<party_id>/media")
@api_endpoint
def party_media(services: Services, party_id: str) -> tuple[Any, int]:
    """Show new media to the party's viewers."""
    media = body(PartyMediaRequestSchema())["media"]
    payload = {"partyId": path_id(party_id, "partyId"), "media": media}
    services.broadcaster.emit("party:new_media", payload, to=f"party:{party_id}")
    return services.catalog.shape("party:new_media", payload), 202


@bp.delete("/sessions/<session_id>")
@api_endpoint
def revoke_session(services: Services, session_id: str) -> tuple[Any, int]:
    """Revoke a session: its tokens stop connecting, and its live sockets on every worker get
    ``force_logout`` (reason ``revoked``) and are disconnected at once."""
    if not services.lifecycle.revoke(path_id(session_id, "sessionId")):
        raise RealtimeError(
            ErrorCode.NOT_FOUND, f"No session {session_id!r}: it was never created, or is already revoked or expired."
        )
    return {"sessionId": session_id, "revoked": True}, 200


@bp.post("/games/<game_id>/players")
@api_endpoint
def game_players(services: Services, game_id: str) -> tuple[Any, int]:
    """Create a game or replace its players (turn order); players in the room see the new state, and the
    sockets of players no longer in it leave the room on every worker (``room:removed``)."""
    players = list(dict.fromkeys(body(GamePlayersInSchema())["userIds"]))
    state = services.games.set_players(path_id(game_id, "gameId"), players)
    services.rooms.revalidate_room(f"game:{game_id}")
    snapshot = {"gameId": game_id, "state": state, "turn": turn_of(state)}
    services.broadcaster.emit("game:state", snapshot, to=f"game:{game_id}")
    return services.catalog.shape("game:state", snapshot), 201
