"""Limits on every HTTP request: a body size cap answered ``413`` and a JSON nesting cap answered ``400``.

The size cap is Flask's ``MAX_CONTENT_LENGTH``: a ``Content-Length`` over it is refused before the body is
read, and a chunked body is cut off as soon as it passes it. The nesting cap is checked by a linear scan
before parsing, because Python's JSON parser recurses once per level (a body 100,000 arrays deep raises
``RecursionError``). The Socket.IO endpoint is not a Flask route; Engine.IO caps it (``max_http_buffer_size``).
"""
from __future__ import annotations

import json
import re
from array import array
from itertools import accumulate
from typing import Any

from flask import Flask, current_app, jsonify, request
from flask.json.provider import DefaultJSONProvider
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import RequestEntityTooLarge

from realtime.errors import ErrorCode, RealtimeError, failure

#: An HTTP body may be this many times ``MAX_PAYLOAD_BYTES``: an event payload with its request envelope
#: fits, as on the Socket.IO transport.
BODY_LIMIT_FACTOR = 2
#: The HTTP body limit never goes below this, so a notification to 1000 users (about 70 kB) always fits.
MIN_BODY_LIMIT = 256 * 1024
#: Arrays and objects nested deeper than this (the body itself is level 1) are refused.
MAX_JSON_DEPTH = 32

# Once escaped quotes are gone a string ends at the next quote, or at the end when it has none: the
# pattern always matches where it starts, so it never backtracks.
_STRING = re.compile(r'"[^"]*"?')
# Brackets as signed byte steps (an opener +1, a closer 0x7f, then 0xff = -1); every other ASCII char dropped.
_STEPS = {code: None for code in range(128)} | {ord("["): "\x01", ord("{"): "\x01", ord("]"): "\x7f", ord("}"): "\x7f"}
_SIGNED = bytes.maketrans(b"\x7f", b"\xff")


class JSONDepthError(ValueError):
    """A JSON document nests arrays and objects deeper than :data:`MAX_JSON_DEPTH`."""


def body_limit(max_payload_bytes: int) -> int:
    """The largest HTTP request body, in bytes, for a given ``MAX_PAYLOAD_BYTES``."""
    return max(BODY_LIMIT_FACTOR * max_payload_bytes, MIN_BODY_LIMIT)


def nests_too_deep(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether arrays and objects in the JSON ``text`` nest deeper than ``limit``, found without parsing it.

    Also true when more than ``limit`` brackets are left unclosed, which the parser would descend into
    before failing. Linear, with no recursion: a few C-speed passes and one running sum over the brackets
    (tens of milliseconds for 2 MB of them, less than parsing them).
    """
    # Escapes pair up left to right (doubled backslashes first, then escaped quotes); once they are gone,
    # every quote opens or closes a string, so the brackets inside strings are easy to drop.
    # Text after a syntax error may be misread, but the parser stops there, so it never nests deeper.
    unescaped = text.replace("\\\\", "").replace('\\"', "")
    steps = _STRING.sub("", unescaped).translate(_STEPS).encode("ascii", "ignore")
    if steps.count(1) <= limit:
        return False
    return max(accumulate(array("b", steps.translate(_SIGNED)))) > limit


class DepthLimitedJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider, refusing a document nested deeper than :data:`MAX_JSON_DEPTH` before parsing it.

    Installed as ``app.json``, so every ``request.get_json()`` of the app goes through it.
    """

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        """Parse ``s`` after checking its depth.

        :raises JSONDepthError: when it nests too deep (a :class:`ValueError`, like a syntax error).
        """
        # The decoding json.loads itself applies to bytes (UTF-8, -16 or -32, detected).
        text = s.decode(json.detect_encoding(s), "surrogatepass") if isinstance(s, (bytes, bytearray)) else s
        if nests_too_deep(text):
            raise JSONDepthError(
                f"The JSON body nests arrays and objects deeper than {MAX_JSON_DEPTH} levels (or leaves that many "
                "unclosed); flatten it."
            )
        return super().loads(text, **kwargs)


def json_body() -> Any:
    """The current request's JSON body, size- and depth-checked.

    :raises RealtimeError: ``VALIDATION_ERROR`` when the body is not JSON or nests too deep.
    :raises RequestEntityTooLarge: when the body is over the limit (answered ``413`` by :func:`init_app`).
    """
    if not request.is_json:
        raise RealtimeError(ErrorCode.VALIDATION_ERROR, "Send a JSON body with Content-Type: application/json.")
    data = request.get_data(cache=True)
    limit = request.max_content_length
    # Werkzeug stops reading a body without Content-Length (chunked) at the limit, without telling whether
    # more followed; one byte more from the server's input says so.
    cut_at_limit = request.content_length is None and limit is not None and len(data) >= limit
    if cut_at_limit and request.environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge()
    try:
        return current_app.json.loads(data)
    except JSONDepthError as err:
        raise RealtimeError(ErrorCode.VALIDATION_ERROR, str(err)) from None
    except ValueError:
        raise RealtimeError(ErrorCode.VALIDATION_ERROR, "The body is not valid JSON.") from None


def refuse_oversized_body() -> None:
    """Refuse a request whose ``Content-Length`` is over the limit, before anything reads its body."""
    length = request.content_length
    limit = request.max_content_length
    if length is not None and limit is not None and length > limit:
        raise RequestEntityTooLarge()


def payload_too_large(error: RequestEntityTooLarge) -> ResponseReturnValue:
    """The ``413`` answer: the standard error envelope with ``PAYLOAD_TOO_LARGE``."""
    limit = request.max_content_length
    refusal = RealtimeError(
        ErrorCode.PAYLOAD_TOO_LARGE,
        f"The request body is larger than {limit} bytes ({BODY_LIMIT_FACTOR} x MAX_PAYLOAD_BYTES, at least "
        f"{MIN_BODY_LIMIT}); send less, or raise MAX_PAYLOAD_BYTES.",
    )
    return jsonify(failure(refusal)), 413


def init_app(app: Flask, max_payload_bytes: int) -> None:
    """Cap request bodies at :func:`body_limit` (``413``) and JSON nesting at :data:`MAX_JSON_DEPTH` (``400``).

    Call it before any other ``before_request`` hook is registered, so an oversized request is refused first.
    """
    app.config["MAX_CONTENT_LENGTH"] = body_limit(max_payload_bytes)
    app.json = DepthLimitedJSONProvider(app)
    app.before_request(refuse_oversized_body)
    app.register_error_handler(RequestEntityTooLarge, payload_too_large)
