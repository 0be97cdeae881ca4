"""The plain-HMAC fast path (realtime.auth.hmac_tokens) never accepts what PyJWT refuses, and answers PyJWT's
claims when it accepts: hand-made hostile tokens, 3,000 random mutations of valid ones, and the plain ones it
must take itself (or it would be no fast path at all)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import sys
import time
from typing import Any

import jwt
import pytest

from realtime.auth.hmac_tokens import PlainHMACTokens
from realtime.auth.tokens import REQUIRED_CLAIMS, TokenService

SECRET = "k" * 64
LEEWAY = 5.0
NOW = time.time()


@pytest.fixture(autouse=True)
def _now(monkeypatch: pytest.MonkeyPatch) -> None:
    """Times are read when each test runs, not when the module was collected: a full suite runs for many
    minutes before it gets here, longer than the tokens' 600 s."""
    monkeypatch.setattr(sys.modules[__name__], "NOW", time.time())


def b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def forge(header: Any, payload: Any, key: str = SECRET, alg: str = "sha256", raw: bool = False) -> str:
    """A token signed by hand, so that headers and payloads PyJWT would never write can be tried."""
    head = header if raw else b64(json.dumps(header).encode())
    body = payload if raw else b64(json.dumps(payload).encode())
    signing_input = head + b"." + body
    signature = hmac.new(key.encode(), signing_input, getattr(hashlib, alg)).digest()
    return (signing_input + b"." + b64(signature)).decode()


def claims(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"sub": "alice", "sid": "s1", "iat": int(NOW), "exp": int(NOW) + 600}
    base.update(extra)
    return {key: value for key, value in base.items() if value is not ...}


def pyjwt(token: str, issuer: str | None) -> dict[str, Any] | None:
    try:
        return jwt.decode(
            token,
            SECRET,
            algorithms=["HS256", "HS384", "HS512"],
            issuer=issuer,
            options={"require": list(REQUIRED_CLAIMS), "verify_aud": False},
            leeway=LEEWAY,
        )
    except jwt.PyJWTError:
        return None


def agrees(token: str, issuer: str | None = None) -> dict[str, Any] | None:
    """The fast path's answer, checked against PyJWT's."""
    fast = PlainHMACTokens(["HS256", "HS384", "HS512"], SECRET.encode(), REQUIRED_CLAIMS, issuer, LEEWAY)
    accepted = fast.claims(token)
    if accepted is not None:
        reference = pyjwt(token, issuer)
        assert reference is not None, f"the fast path accepted a token PyJWT refuses: {token!r}"
        assert accepted == reference, token
    return accepted


def h(**extra: Any) -> dict[str, Any]:
    return {"alg": "HS256", "typ": "JWT", **extra}


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_plain_tokens_are_taken_by_the_fast_path(alg: str) -> None:
    token = jwt.encode(claims(), SECRET, algorithm=alg)
    assert agrees(token) == claims()
    assert agrees(forge(h(kid="key-1"), claims())) is not None
    assert agrees(jwt.encode(claims(iss="login"), SECRET, algorithm=alg), issuer="login") is not None


HOSTILE = {
    "wrong key": lambda: jwt.encode(claims(), "another-secret-" * 4, algorithm="HS256"),
    "alg none": lambda: jwt.encode(claims(), None, algorithm="none"),
    "alg not hmac": lambda: forge({"alg": "RS256"}, claims()),
    "alg missing": lambda: forge({"typ": "JWT"}, claims()),
    "alg not a string": lambda: forge({"alg": ["HS256"]}, claims()),
    "alg of another digest": lambda: forge(h(alg="HS512"), claims()),
    "crit header": lambda: forge(h(crit=["exp"]), claims()),
    "unencoded payload": lambda: forge(h(b64=False), claims()),
    "kid not a string": lambda: forge(h(kid=7), claims()),
    "jku header": lambda: forge(h(jku="https://evil.example/keys"), claims()),
    "header not an object": lambda: forge(["HS256"], claims()),
    "payload not an object": lambda: forge(h(), ["alice"]),
    "payload a string": lambda: forge(h(), "alice"),
    "sub missing": lambda: forge(h(), claims(sub=...)),
    "sid null": lambda: forge(h(), claims(sid=None)),
    "exp missing": lambda: forge(h(), claims(exp=...)),
    "expired": lambda: forge(h(), claims(exp=int(NOW) - 60)),
    "expired within the leeway": lambda: forge(h(), claims(exp=int(NOW) - 2)),
    "exp a float": lambda: forge(h(), claims(exp=NOW + 600.5)),
    "exp a string": lambda: forge(h(), claims(exp=str(int(NOW) + 600))),
    "exp a boolean": lambda: forge(h(), claims(exp=True)),
    "exp huge": lambda: forge(h(), claims(exp=10**30)),
    "iat in the future": lambda: forge(h(), claims(iat=int(NOW) + 3600)),
    "iat a string": lambda: forge(h(), claims(iat="yesterday")),
    "nbf in the future": lambda: forge(h(), claims(nbf=int(NOW) + 3600)),
    "nbf passed": lambda: forge(h(), claims(nbf=int(NOW) - 10)),
    "sub a number": lambda: forge(h(), claims(sub=12)),
    "jti a number": lambda: forge(h(), claims(jti=12)),
    "aud present": lambda: forge(h(), claims(aud="other")),
    "duplicate sub": lambda: forge(
        b64(json.dumps(h()).encode()),
        b64(b'{"sub":"mallory","sub":"alice","sid":"s1","iat":%d,"exp":%d}' % (NOW, NOW + 600)), raw=True
    ),
    "padded segments": lambda: jwt.encode(claims(), SECRET, algorithm="HS256").replace(".", "=.", 1),
    "trailing dot": lambda: jwt.encode(claims(), SECRET, algorithm="HS256") + ".",
    "four segments": lambda: jwt.encode(claims(), SECRET, algorithm="HS256") + ".e30",
    "whitespace": lambda: " " + jwt.encode(claims(), SECRET, algorithm="HS256"),
    "not ascii": lambda: jwt.encode(claims(), SECRET, algorithm="HS256") + "é",
    "standard alphabet": lambda: forge(h(), claims()).replace("-", "+").replace("_", "/"),
    "empty": lambda: "",
    "dots": lambda: "..",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_tokens_are_never_taken_where_pyjwt_refuses(name: str) -> None:
    agrees(HOSTILE[name]())
    agrees(HOSTILE[name](), issuer="login")


def test_issuer_and_a_non_canonical_signature() -> None:
    token = jwt.encode(claims(iss="evil"), SECRET, algorithm="HS256")
    assert agrees(token, issuer="login") is None
    assert agrees(jwt.encode(claims(), SECRET, algorithm="HS256"), issuer="login") is None
    head, body, signature = token.split(".")
    # The last character of a 43-character segment carries 2 unused bits: setting them is not canonical.
    last = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".index(signature[-1])
    tweaked = f"{head}.{body}.{signature[:-1]}{'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'[last | 1]}"
    if tweaked != token:
        assert agrees(tweaked) is None


def test_random_mutations_agree_with_pyjwt() -> None:
    rng = random.Random(9)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ "
    valid = [jwt.encode(claims(n=index), SECRET, algorithm=alg) for index, alg in enumerate(["HS256", "HS384", "HS512"] * 3)]
    accepted = 0
    for _ in range(3000):
        token = list(rng.choice(valid))
        for _ in range(rng.randint(1, 3)):
            position = rng.randrange(len(token))
            action = rng.random()
            if action < 0.6:
                token[position] = rng.choice(alphabet)
            elif action < 0.8:
                del token[position]
            else:
                token.insert(position, rng.choice(alphabet))
        if agrees("".join(token)) is not None:
            accepted += 1
    assert accepted < 30, "mutated tokens should almost never verify"


def test_the_service_takes_plain_tokens_fast_and_leaves_the_rest_to_pyjwt(monkeypatch: pytest.MonkeyPatch) -> None:
    service = TokenService(["HS256"], SECRET, SECRET)
    decoded: list[str] = []
    real = jwt.decode
    monkeypatch.setattr(jwt, "decode", lambda token, *a, **k: decoded.append(token) or real(token, *a, **k))
    assert service.verify(service.issue("alice", "s1", 600)).user_id == "alice"
    assert decoded == [], "a plain token went to PyJWT"
    expired = service.issue("alice", "s1", 600, now=NOW - 3600)
    with pytest.raises(Exception, match="expired"):
        service.verify(expired)
    assert decoded == [expired], "a refusal is PyJWT's"
    assert TokenService(["HS256"], SECRET, SECRET, audience="realtime")._plain is None
