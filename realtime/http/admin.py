"""The admin view (``ADMIN_ENABLED``): a static page at ``/admin`` and its JSON API under ``/admin/api``.

The page carries no data and no secret: it asks for the admin token, keeps it in ``sessionStorage`` and sends it
as ``Authorization: Bearer`` with each API call. Every API route checks the token in constant time:
``401 AUTH_REQUIRED`` without one, ``403 FORBIDDEN`` with a wrong one. Never registered when disabled, so
``/admin`` is a plain 404 then.
"""
from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Flask,
    current_app,
    jsonify,
    render_template,
    request,
    send_from_directory,
    url_for,
)
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response

from realtime.cluster.admin_view import AdminView
from realtime.errors import ErrorCode, RealtimeError, failure, ok
from realtime.http.api import STATUS, path_id
from realtime.services.container import Services
from realtime.stores.redis.checks import (
    UNAVAILABLE_ERRORS,
    log_unavailable,
    unavailable,
)

logger = logging.getLogger(__name__)

bp = Blueprint("admin", __name__, url_prefix="/admin")

STATIC = Path(__file__).resolve().parent.parent / "static"
#: The only files the page loads; the rest of the static folder is not served under /admin.
ASSETS = frozenset({"admin.js", "admin.css"})
#: Everything from this origin, nothing inline, no framing: the page shows user ids and acts on them.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}
DEFAULT_PAGE = 50


def init_app(app: Flask, services: Services, socketio: Any) -> None:
    """Build the view over this worker's services and serve the page and its API."""
    app.extensions["realtime_admin"] = AdminView.for_services(services, socketio)
    app.register_blueprint(bp)


def view() -> AdminView:
    """The admin view built by :func:`init_app`."""
    admin: AdminView = current_app.extensions["realtime_admin"]
    return admin


def token_matches(candidate: str, token: str) -> bool:
    """Compare in constant time (no early exit on the first differing byte)."""
    return hmac.compare_digest(candidate.encode(), token.encode())


def admin_endpoint(func: Callable[..., tuple[Any, int]]) -> Callable[..., ResponseReturnValue]:
    """Check the admin token, run ``func``, turn refusals into the error envelope with a status code."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> ResponseReturnValue:
        token = current_app.extensions["realtime"].settings.admin_token or ""
        scheme, _, candidate = request.headers.get("Authorization", "").partition(" ")
        try:
            if scheme.lower() != "bearer" or not candidate.strip():
                raise RealtimeError(ErrorCode.AUTH_REQUIRED, "Send Authorization: Bearer <ADMIN_TOKEN>.")
            if not token or not token_matches(candidate.strip(), token):
                logger.warning("admin API: refused a request with a wrong token", extra={"path": request.path})
                raise RealtimeError(ErrorCode.FORBIDDEN, "The admin token is not valid.")
            data, status = func(view(), *args, **kwargs)
            return jsonify(ok(data)), status
        except RealtimeError as err:
            response = jsonify(failure(err))
            if err.code is ErrorCode.AUTH_REQUIRED:
                response.headers["WWW-Authenticate"] = 'Bearer realm="admin"'
            return response, STATUS.get(err.code, 400)
        except UNAVAILABLE_ERRORS as exc:
            log_unavailable(logger, f"serving {request.path}", exc)
            return jsonify(failure(unavailable(exc))), 503

    return wrapper


@bp.after_request
def security_headers(response: Response) -> Response:
    """No caching (answers name users and sockets), no framing, no resource from elsewhere."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


@bp.get("")
@bp.get("/")
def page() -> ResponseReturnValue:
    """The page: a static shell that asks for the token; all data comes from the API."""
    return render_template("admin.html", api_base=url_for("admin.overview").rpartition("/")[0])


@bp.get("/static/<name>")
def asset(name: str) -> ResponseReturnValue:
    """The page's script and style sheet (and nothing else of the static folder)."""
    if name not in ASSETS:
        return jsonify(failure(RealtimeError(ErrorCode.NOT_FOUND, "No such asset."))), 404
    return send_from_directory(STATIC, name, max_age=0)


@bp.get("/api/overview")
@admin_endpoint
def overview(admin: AdminView) -> tuple[Any, int]:
    """Workers with their sockets and rates, cluster totals, the busiest rooms and recent errors."""
    return admin.overview(), 200


@bp.get("/api/users")
@admin_endpoint
def users(admin: AdminView) -> tuple[Any, int]:
    """Users online, a page at a time (``?cursor=&limit=``), or one user (``?userId=``)."""
    user_id = request.args.get("userId", "").strip()
    if user_id:
        return {"users": [admin.user(path_id(user_id, "userId"))], "next": None}, 200
    try:
        limit = int(request.args.get("limit", DEFAULT_PAGE))
    except ValueError:
        raise RealtimeError(ErrorCode.VALIDATION_ERROR, "limit must be a whole number.", fields={"limit": ["Not a number."]}) from None
    return admin.users(request.args.get("cursor", "0"), limit), 200


@bp.post("/api/sockets/<sid>/disconnect")
@admin_endpoint
def disconnect(admin: AdminView, sid: str) -> tuple[Any, int]:
    """Disconnect one socket, on whichever worker holds it."""
    sock = admin.disconnect(path_id(sid, "sid"))
    if sock is None:
        raise RealtimeError(ErrorCode.NOT_FOUND, f"No live socket {sid!r}: it is gone already, or never existed.")
    return {"sid": sock.sid, "userId": sock.user_id, "disconnected": True}, 200


@bp.post("/api/users/<user_id>/logout")
@admin_endpoint
def force_logout(admin: AdminView, user_id: str) -> tuple[Any, int]:
    """Log a user out everywhere: revoke the sessions of all their sockets (``force_logout`` to each)."""
    done = admin.force_logout(path_id(user_id, "userId"))
    if done is None:
        raise RealtimeError(ErrorCode.NOT_FOUND, f"User {user_id!r} has no live socket.")
    return {"userId": done.user_id, "sessions": done.sessions, "sockets": done.sockets}, 200
