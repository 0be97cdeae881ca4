"""PyJWT's algorithms wrapped to prepare each key once (realtime.auth.prepared_keys): same answers as PyJWT's
own for good and bad keys and tokens, one preparation per key, registration idempotent."""
from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import HMACAlgorithm

from realtime.auth.prepared_keys import KEYS_KEPT, PreparedOnce, prepare_once
from realtime.auth.tokens import TokenService
from realtime.errors import RealtimeError

SECRET = "s" * 64
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_PUBLIC = RSA_KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
).decode()


def claims() -> dict[str, Any]:
    now = int(time.time())
    return {"sub": "alice", "sid": "s1", "iat": now, "exp": now + 600}


class CountingHMAC(HMACAlgorithm):
    def __init__(self) -> None:
        super().__init__(HMACAlgorithm.SHA256)
        self.prepared = 0

    def prepare_key(self, key: Any) -> Any:
        self.prepared += 1
        return super().prepare_key(key)


def test_a_key_is_prepared_once_and_verifies_like_pyjwt() -> None:
    counting = CountingHMAC()
    wrapped = PreparedOnce(counting)
    message = b"header.payload"
    for _ in range(5):
        signature = wrapped.sign(message, wrapped.prepare_key(SECRET))
        assert wrapped.verify(message, wrapped.prepare_key(SECRET), signature)
    assert counting.prepared == 1
    assert signature == counting.sign(message, counting.prepare_key(SECRET))
    assert not wrapped.verify(message, wrapped.prepare_key("another-secret-" * 4), signature)
    assert counting.prepared == 3  # the new key, and the reference's own call above


def test_a_refused_key_is_refused_every_time_and_never_kept() -> None:
    """PyJWT refuses a PEM public key as an HMAC secret (algorithm confusion); so does the wrapper, each call."""
    wrapped = PreparedOnce(HMACAlgorithm(HMACAlgorithm.SHA256))
    for _ in range(2):
        with pytest.raises(jwt.InvalidKeyError):
            wrapped.prepare_key(RSA_PUBLIC)


def test_keys_kept_are_bounded() -> None:
    counting = CountingHMAC()
    wrapped = PreparedOnce(counting)
    keys = [f"secret-{index:02d}-" + "k" * 40 for index in range(KEYS_KEPT + 3)]
    for key in keys:
        wrapped.prepare_key(key)
    for key in keys:
        wrapped.prepare_key(key)
    assert counting.prepared == KEYS_KEPT + 2 * 3  # the keys past the bound are prepared each time


def test_registration_is_idempotent_and_tokens_answer_as_before() -> None:
    prepare_once(["HS256"])
    prepare_once(["HS256", "RS256"])
    registered = jwt.get_algorithm_by_name("HS256")
    assert isinstance(registered, PreparedOnce) and not isinstance(registered.wrapped, PreparedOnce)
    service = TokenService(["HS256"], SECRET, SECRET)
    assert service.verify(service.issue("alice", "s1", 600)).user_id == "alice"
    refusals = {
        "wrong key": jwt.encode(claims(), "another-secret-of-sufficient-length-000", algorithm="HS256"),
        "none": jwt.encode(claims(), None, algorithm="none"),
        "other algorithm": jwt.encode(claims(), SECRET, algorithm="HS512"),
        "not a token": "not.a.token",
        "garbage": "x",
    }
    for name, token in refusals.items():
        with pytest.raises(RealtimeError) as refused:
            service.verify(token)
        assert refused.value.code.value == "INVALID_TOKEN", name
