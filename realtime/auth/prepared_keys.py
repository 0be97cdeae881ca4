"""Keys that PyJWT prepares once instead of on every token.

PyJWT prepares the key at each decode: for HMAC it checks that the secret is not a PEM, SSH, DER or JWK key
(a JSON parse among them), for RSA, EC or EdDSA it parses the PEM. For HS256 that is a fifth of a decode,
the same work for the same key on every connect. :func:`prepare_once` registers, for the algorithms a
:class:`~realtime.auth.tokens.TokenService` accepts, PyJWT's own algorithm objects wrapped in
:class:`PreparedOnce` (PyJWT's ``register_algorithm`` API): a key given as text or bytes is prepared by the
wrapped algorithm the first time, with its checks and errors, and the prepared key is reused after.
"""
from __future__ import annotations

from typing import Any

import jwt
from jwt.algorithms import Algorithm

#: Distinct keys remembered per algorithm (a deployment has one or two: the current key and the next).
KEYS_KEPT = 8


class PreparedOnce(Algorithm):
    """One of PyJWT's algorithms, preparing each text or bytes key once."""

    def __init__(self, algorithm: Algorithm) -> None:
        self.wrapped = algorithm
        self._prepared: dict[str | bytes, Any] = {}

    def prepare_key(self, key: Any) -> Any:
        if not isinstance(key, (str, bytes)):
            return self.wrapped.prepare_key(key)
        try:
            return self._prepared[key]
        except KeyError:
            prepared = self.wrapped.prepare_key(key)
            if len(self._prepared) < KEYS_KEPT:
                self._prepared[key] = prepared
            return prepared

    def sign(self, msg: bytes, key: Any) -> bytes:
        return self.wrapped.sign(msg, key)

    def verify(self, msg: bytes, key: Any, sig: bytes) -> bool:
        return self.wrapped.verify(msg, key, sig)

    def check_key_length(self, key: Any) -> str | None:
        return self.wrapped.check_key_length(key)

    def compute_hash_digest(self, bytestr: bytes) -> bytes:
        return self.wrapped.compute_hash_digest(bytestr)

    def to_jwk(self, key_obj: Any, as_dict: bool = False) -> Any:  # type: ignore[override]
        return self.wrapped.to_jwk(key_obj, as_dict=as_dict)  # type: ignore[call-overload]

    def from_jwk(self, jwk: str | dict[str, Any]) -> Any:  # type: ignore[override]
        return self.wrapped.from_jwk(jwk)

    def __getattr__(self, name: str) -> Any:
        # Whatever else PyJWT asks of an algorithm (its hash, key-type checks) is the wrapped one's.
        if name == "wrapped":
            raise AttributeError(name)
        return getattr(self.wrapped, name)


def prepare_once(algorithms: list[str]) -> None:
    """Register :class:`PreparedOnce` for each of ``algorithms`` PyJWT knows (idempotent)."""
    for name in algorithms:
        try:
            current = jwt.get_algorithm_by_name(name)
        except NotImplementedError:
            continue  # not available here (e.g. without cryptography): PyJWT refuses such tokens itself
        if isinstance(current, PreparedOnce):
            continue
        jwt.unregister_algorithm(name)
        jwt.register_algorithm(name, PreparedOnce(current))
