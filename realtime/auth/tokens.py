"""Issue and verify the JWTs that open a socket."""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jwt
from jwt.algorithms import HMACAlgorithm

from realtime.auth.hmac_tokens import HASHES, PlainHMACTokens
from realtime.auth.prepared_keys import prepare_once
from realtime.errors import ErrorCode, RealtimeError
from realtime.identifiers import is_identifier

REQUIRED_CLAIMS = ("sub", "sid", "exp", "iat")


@dataclass(frozen=True)
class Claims:
    """What a verified token says."""

    user_id: str
    session_id: str
    expires_at: int


class TokenService:
    """Verifies tokens against an algorithm allow-list; signs them when a signing key is configured."""

    def __init__(
        self,
        algorithms: Sequence[str],
        verify_key: str,
        signing_key: str | None = None,
        issuer: str | None = None,
        audience: str | None = None,
        leeway: float = 5.0,
    ) -> None:
        self._algorithms = list(algorithms)
        prepare_once(self._algorithms)
        #: Plain HMAC tokens in microseconds; PyJWT decides everything else, refusals included.
        self._plain = self._plain_tokens(verify_key, issuer, audience, leeway)
        self._verify_key = verify_key
        self._signing_key = signing_key
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway

    def _plain_tokens(
        self, verify_key: str, issuer: str | None, audience: str | None, leeway: float
    ) -> PlainHMACTokens | None:
        if audience or not any(name in HASHES for name in self._algorithms):
            return None
        try:
            key = HMACAlgorithm(HMACAlgorithm.SHA256).prepare_key(verify_key)
        except jwt.InvalidKeyError:
            return None  # not an HMAC secret: PyJWT refuses HMAC tokens with it, every time
        return PlainHMACTokens(self._algorithms, key, REQUIRED_CLAIMS, issuer or None, leeway)

    @property
    def can_sign(self) -> bool:
        """Whether this process holds a key to mint tokens (HMAC secret or private key)."""
        return self._signing_key is not None

    def issue(self, user_id: str, session_id: str, ttl: int, now: float | None = None) -> str:
        """Sign a token for ``user_id`` naming ``session_id``, valid for ``ttl`` seconds."""
        if self._signing_key is None:
            raise RuntimeError(
                "No signing key: set JWT_SECRET (HS*) or JWT_PRIVATE_KEY (RS*/ES*/PS*/EdDSA) to mint tokens."
            )
        issued = int(now if now is not None else time.time())
        payload: dict[str, Any] = {"sub": user_id, "sid": session_id, "iat": issued, "exp": issued + ttl}
        if self._issuer:
            payload["iss"] = self._issuer
        if self._audience:
            payload["aud"] = self._audience
        return jwt.encode(payload, self._signing_key, algorithm=self._algorithms[0])

    def verify(self, token: str) -> Claims:
        """Check signature, algorithm, expiry, issuer and audience.

        :raises RealtimeError: ``TOKEN_EXPIRED`` or ``INVALID_TOKEN``.
        """
        claims = self._plain.claims(token) if self._plain is not None else None
        if claims is None:
            claims = self._decode(token)
        user_id, session_id = claims.get("sub"), claims.get("sid")
        if not is_identifier(user_id) or not is_identifier(session_id):
            raise RealtimeError(
                ErrorCode.INVALID_TOKEN, "The token's sub and sid claims must be ids of 1-64 letters, digits, '_' or '-'."
            )
        return Claims(user_id=user_id, session_id=session_id, expires_at=int(claims["exp"]))

    def _decode(self, token: str) -> dict[str, Any]:
        """PyJWT's verdict on ``token``: its claims, or the refusal."""
        options: dict[str, Any] = {"require": list(REQUIRED_CLAIMS)}
        try:
            # PyJWT checks the header's algorithm against the allow-list before anything else.
            claims: dict[str, Any] = jwt.decode(
                token,
                self._verify_key,
                algorithms=self._algorithms,
                issuer=self._issuer,
                audience=self._audience,
                options=options if self._audience else {**options, "verify_aud": False},
                leeway=self._leeway,
            )
        except jwt.ExpiredSignatureError:
            raise RealtimeError(ErrorCode.TOKEN_EXPIRED, "The token has expired; log in again.") from None
        except jwt.InvalidAlgorithmError:
            raise RealtimeError(ErrorCode.INVALID_TOKEN, "The token's algorithm is not accepted.") from None
        except jwt.InvalidSignatureError:
            raise RealtimeError(ErrorCode.INVALID_TOKEN, "The token was refused: InvalidSignatureError.") from None
        except jwt.DecodeError:
            raise RealtimeError(ErrorCode.INVALID_TOKEN, "The token is not a well-formed JWT.") from None
        except jwt.PyJWTError as exc:
            raise RealtimeError(ErrorCode.INVALID_TOKEN, f"The token was refused: {type(exc).__name__}.") from None
        return claims
