"""``GET /metrics``: the Prometheus scrape, behind ``METRICS_TOKEN`` when it is set."""
from __future__ import annotations

import hmac
from collections.abc import Iterable

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from realtime.errors import ErrorCode, RealtimeError, failure
from realtime.metrics.definitions import set_documented_events
from realtime.metrics.exposition import render

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics() -> ResponseReturnValue:
    """Every metric of this process (of every worker of this gunicorn master in multiprocess mode).

    With ``METRICS_TOKEN`` set, a request without ``Authorization: Bearer <token>``, or with another token,
    answers ``401`` and the error envelope; the comparison takes the same time wherever the tokens differ.
    """
    token = current_app.config["REALTIME_SETTINGS"].metrics_token
    if token is not None:
        scheme, _, candidate = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(candidate.strip().encode(), token.encode()):
            refusal = RealtimeError(ErrorCode.AUTH_REQUIRED, "Send Authorization: Bearer <METRICS_TOKEN>.")
            response = jsonify(failure(refusal))
            response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response, 401
    body, content_type = render()
    return Response(body, content_type=content_type)


def init_app(app: Flask, event_names: Iterable[str]) -> None:
    """Serve ``/metrics`` and bound the ``event`` label to ``event_names`` (the catalog's, both directions)."""
    set_documented_events(event_names)
    app.register_blueprint(bp)
