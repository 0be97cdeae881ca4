"""The demo chat page and its development token endpoint (never registered when APP_ENV=prod)."""
from __future__ import annotations

from flask import Blueprint, jsonify, render_template
from flask.typing import ResponseReturnValue

from realtime.errors import ErrorCode, RealtimeError, failure
from realtime.http.limits import json_body
from realtime.identifiers import is_identifier
from realtime.services.container import current_services
from realtime.stores.sessions import Profile

bp = Blueprint("demo", __name__, static_folder="../static", static_url_path="/static/realtime")

MAX_USERNAME = 40


@bp.get("/")
def index() -> ResponseReturnValue:
    """The demo chat page."""
    return render_template("index.html")


@bp.post("/dev/token")
def dev_token() -> ResponseReturnValue:
    """Mint a session and token for ``{userId, username?}`` (development and QA only).

    Refusals use the standard error envelope: ``400 VALIDATION_ERROR``, ``503 UNAVAILABLE``.
    """
    services = current_services()
    try:
        body = json_body()
    except RealtimeError as err:
        return jsonify(failure(err)), 400
    user_id = body.get("userId") if isinstance(body, dict) else None
    if not is_identifier(user_id):
        return _refuse(ErrorCode.VALIDATION_ERROR, "userId must be 1-64 of A-Z a-z 0-9 _ -.", 400)
    username = body.get("username") or user_id
    if not isinstance(username, str) or not 0 < len(username) <= MAX_USERNAME:
        return _refuse(ErrorCode.VALIDATION_ERROR, "username must be 1-40 characters.", 400)
    if not services.tokens.can_sign:
        return _refuse(ErrorCode.UNAVAILABLE, "No signing key configured.", 503)
    ttl = services.settings.token_ttl
    (session_id,) = services.sessions.create([user_id], ttl)
    services.sessions.put_profile(Profile(id=user_id, username=username))
    return jsonify(token=services.tokens.issue(user_id, session_id, ttl), userId=user_id, expiresIn=ttl)


def _refuse(code: ErrorCode, message: str, status: int) -> ResponseReturnValue:
    """The error envelope with ``code`` and the HTTP ``status``."""
    return jsonify(failure(RealtimeError(code, message))), status
