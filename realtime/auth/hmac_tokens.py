"""The common token, accepted in a few microseconds: an HS256/384/512 compact JWS with a plain header.

PyJWT verifies a token in about 85 us, most of it checking each base64url segment character by character
in Python. :class:`PlainHMACTokens` accepts a token only when PyJWT would accept it too, and says nothing
otherwise: every refusal, and every token outside the plain form (other algorithms, headers beyond ``alg``,
``typ`` and ``kid``, an ``aud`` claim, a number that is not an integer, ...), is PyJWT's to decide, with its
errors (:class:`~realtime.auth.tokens.TokenService` falls back to it). What is checked, as PyJWT does:

- three segments of the base64url alphabet without padding, each the canonical encoding of its bytes;
- the header a JSON object whose ``alg`` is an allowed HMAC algorithm, ``kid`` a string if present;
- the HMAC of ``header.payload`` with the key PyJWT prepared (compared in constant time);
- the payload a JSON object with the required claims present (not null); ``exp``, ``iat`` and ``nbf``
  integers (not booleans) with ``exp > now - leeway``, ``iat <= now + leeway``, ``nbf <= now + leeway``;
  ``sub`` and ``jti`` strings when present; ``iss`` equal to the configured issuer when there is one.

``tests/test_hmac_tokens.py`` holds it to PyJWT's answers over valid, tampered and malformed tokens.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson

_SEGMENT = re.compile(rb"[A-Za-z0-9_-]*")
HASHES: dict[str, Callable[..., Any]] = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
_HEADER_KEYS = frozenset(("alg", "typ", "kid"))
_TIMES = ("exp", "iat", "nbf")


def _segment(segment: bytes) -> bytes | None:
    """The bytes of a canonical, unpadded base64url segment; None for anything else."""
    if len(segment) % 4 == 1 or _SEGMENT.fullmatch(segment) is None:
        return None
    try:
        decoded = base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        return None
    if base64.urlsafe_b64encode(decoded).rstrip(b"=") != segment:
        return None
    return decoded


def _object(data: bytes) -> dict[str, Any] | None:
    # orjson accepts less than the standard library (no NaN, BOM or lone surrogate; an integer past 64 bits
    # becomes a float, which no time claim may be): what it refuses, PyJWT decides.
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


class PlainHMACTokens:
    """Accepts plain HMAC tokens for ``algorithms`` (the HMAC ones among them) signed with ``key``, the key
    as PyJWT prepared it (its checks done). Only for a service without an audience."""

    def __init__(
        self,
        algorithms: Sequence[str],
        key: bytes,
        required: Sequence[str],
        issuer: str | None,
        leeway: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._hashes = {name: HASHES[name] for name in algorithms if name in HASHES}
        self._key = key
        self._required = tuple(required)
        self._issuer = issuer
        self._leeway = leeway
        self._clock = clock

    def claims(self, token: str) -> dict[str, Any] | None:
        """The claims of ``token`` when PyJWT would accept it as well; None otherwise (PyJWT decides)."""
        if not self._hashes or not isinstance(token, str) or not token.isascii():
            return None
        parts = token.encode().split(b".")
        if len(parts) != 3:
            return None
        header_data, payload_data, signature = (_segment(part) for part in parts)
        if header_data is None or payload_data is None or signature is None:
            return None
        header = _object(header_data)
        if header is None or not header.keys() <= _HEADER_KEYS or not isinstance(header.get("kid", ""), str):
            return None
        alg = header.get("alg")
        digest = self._hashes.get(alg) if isinstance(alg, str) else None
        if digest is None:
            return None
        expected = hmac.new(self._key, parts[0] + b"." + parts[1], digest).digest()
        if not hmac.compare_digest(expected, signature):
            return None
        payload = _object(payload_data)
        if payload is None or not self._claims_hold(payload):
            return None
        return payload

    def _claims_hold(self, payload: dict[str, Any]) -> bool:
        if any(payload.get(claim) is None for claim in self._required):
            return False
        for claim in _TIMES:
            if claim in payload and type(payload[claim]) is not int:
                return False
        if any(claim in payload and not isinstance(payload[claim], str) for claim in ("sub", "jti")):
            return False
        if self._issuer is not None and payload.get("iss") != self._issuer:
            return False
        now, leeway = self._clock(), self._leeway
        return (
            ("exp" not in payload or payload["exp"] > now - leeway)
            and ("iat" not in payload or payload["iat"] <= now + leeway)
            and ("nbf" not in payload or payload["nbf"] <= now + leeway)
        )
