"""Settings: defaults, then the environment, then an explicit mapping (tests).

Everything is read once, in the app factory, and validated there: a misconfigured
process refuses to start with a message that names the variable and the fix.
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

APP_ENVS = ("local", "dev", "prod")
HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
#: Used only outside prod when JWT_SECRET is unset, so that ``make run`` works out of the box.
DEV_JWT_SECRET = "realtime-dev-secret-not-for-production-use-0001"
MIN_HMAC_SECRET_BYTES = 32
#: The only hosts APP_ENV=prod accepts in a plain http:// origin (a developer's page against a prod server).
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
ROOM_TEMPLATE = re.compile(r"^(user|group|game|party|broadcast):(\{userId\}|[A-Za-z0-9_-]{1,64})$")


class ConfigError(ValueError):
    """Raised at start-up when a setting is missing, malformed or unsafe."""


#: name -> default (as the environment would spell it).
DEFAULTS: dict[str, str | None] = {
    "APP_ENV": "local",
    "PORT": "5000",
    "REDIS_URL": None,
    "MESSAGE_QUEUE_URL": None,
    "SOCKETIO_CHANNEL": "realtime",
    "KEY_PREFIX": "rt:",
    "JWT_SECRET": None,
    "JWT_PUBLIC_KEY": None,
    "JWT_PRIVATE_KEY": None,
    "JWT_ALGORITHMS": None,
    "JWT_ISSUER": None,
    "JWT_AUDIENCE": None,
    "TOKEN_TTL": "3600",
    "ALLOWED_ORIGINS": None,
    "SOCKET_DEFAULT_ROOMS": "user:{userId},broadcast:all",
    "SOCKET_TRANSPORTS": "polling,websocket",
    "WS_DOCS_ENABLED": None,
    "API_KEYS": "",
    "PING_INTERVAL": "25",
    "PING_TIMEOUT": "20",
    "HANDSHAKE_TIMEOUT": "20",
    "CONNECT_TIMEOUT": "45",
    "MAX_PAYLOAD_BYTES": "1000000",
    "MAX_ROOMS_PER_SOCKET": "200",
    "SESSION_POLICY": "single",
    "PRESENCE_TTL": "60",
    "CHAT_HISTORY_MAX": "1000",
    "CHAT_JOIN_HISTORY": "50",
    "NOTIFICATIONS_MAX": "200",
    "TYPING_THROTTLE": "2",
    "RECOVERY_WINDOW": "120",
    "RECOVERY_MAX_PACKETS": "10000",
    "SHUTDOWN_TIMEOUT": "10",
    "MAX_CONNECTIONS_PER_USER": "20",
    "MAX_OUTBOUND_QUEUE": "1000",
    "RATE_LIMIT_DISCONNECT": "200",
    "PROBE_INTERVAL": "15",
    "SESSION_CHECK_INTERVAL": "10",
    "REDIS_MAX_CONNECTIONS": "200",
    "MAX_CONCURRENT_HANDSHAKES": "64",
    "EVENT_RATE": "20",
    "EVENT_BURST": "40",
    "USER_CACHE_TTL": "60",
    "PUBLIC_URL": None,
    "LOG_LEVEL": "INFO",
    "LOG_FORMAT": "text",
}


@dataclass(frozen=True)
class Settings:
    """Validated, typed configuration of one process."""

    app_env: str
    port: int
    redis_url: str | None
    message_queue_url: str | None
    socketio_channel: str
    key_prefix: str
    jwt_algorithms: tuple[str, ...]
    jwt_verify_key: str
    jwt_signing_key: str | None
    jwt_issuer: str | None
    jwt_audience: str | None
    token_ttl: int
    allowed_origins: tuple[str, ...] | str
    default_rooms: tuple[str, ...]
    transports: tuple[str, ...]
    ws_docs_enabled: bool
    api_keys: tuple[str, ...] = field(repr=False)
    ping_interval: float
    ping_timeout: float
    handshake_timeout: float
    connect_timeout: float
    max_payload_bytes: int
    max_rooms_per_socket: int
    session_policy: str
    presence_ttl: float
    chat_history_max: int
    chat_join_history: int
    notifications_max: int
    typing_throttle: float
    recovery_window: float
    recovery_max_packets: int
    shutdown_timeout: float
    max_connections_per_user: int
    max_outbound_queue: int
    rate_limit_disconnect: int
    probe_interval: float
    session_check_interval: float
    redis_max_connections: int
    max_concurrent_handshakes: int
    event_rate: float
    event_burst: int
    user_cache_ttl: float
    log_level: str
    log_format: str
    public_url: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def websocket_only(self) -> bool:
        """Whether clients may only use the websocket transport (no sticky sessions needed)."""
        return self.transports == ("websocket",)


def gather(overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Merge defaults, the environment and ``overrides`` (later wins)."""
    env = os.environ if environ is None else environ
    raw: dict[str, Any] = dict(DEFAULTS)
    for name in DEFAULTS:
        if name in env:
            raw[name] = env[name]
    for name, value in (overrides or {}).items():
        raw[name] = value
    return raw


def load_settings(overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from defaults, the environment and ``overrides``.

    :raises ConfigError: naming the variable and how to fix it.
    """
    raw = gather(overrides, environ)
    warnings: list[str] = []

    app_env = _text(raw, "APP_ENV").lower()
    if app_env not in APP_ENVS:
        raise ConfigError(f"APP_ENV is {app_env!r}; expected one of {', '.join(APP_ENVS)}.")
    prod = app_env == "prod"

    redis_url = _optional(raw, "REDIS_URL")
    if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"REDIS_URL is {redis_url!r}; it must start with redis://, rediss:// or unix://.")
    queue_url = raw.get("MESSAGE_QUEUE_URL")
    message_queue_url = redis_url if queue_url is None else (str(queue_url).strip() or None)
    if message_queue_url and not message_queue_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(
            f"MESSAGE_QUEUE_URL is {message_queue_url!r}; it must start with redis://, rediss:// or unix://."
        )
    if redis_url is None and prod:
        raise ConfigError(
            "REDIS_URL is not set; APP_ENV=prod needs Redis: without it the server runs as one process with "
            "in-memory stores and never checks a token's session, so any token signed with the secret passes. "
            "Set REDIS_URL=redis://host:6379/0 (or rediss://...)."
        )
    if redis_url is None:
        warnings.append(
            "REDIS_URL is not set: running as one process with in-memory stores; "
            "JWT sessions are NOT checked against a session store."
        )

    algorithms, verify_key, signing_key = _jwt_keys(raw, prod, warnings)

    origins = _optional(raw, "ALLOWED_ORIGINS")
    if origins is None:
        if prod:
            raise ConfigError(
                "ALLOWED_ORIGINS is not set; with APP_ENV=prod list the browser origins allowed to connect, "
                "comma-separated (e.g. ALLOWED_ORIGINS=https://app.example.com)."
            )
        allowed: tuple[str, ...] | str = "*"
    elif origins.strip() == "*":
        if prod:
            raise ConfigError(
                "ALLOWED_ORIGINS is '*'; APP_ENV=prod refuses any-origin access. "
                "List the exact origins, comma-separated."
            )
        allowed = "*"
    else:
        allowed = tuple(_split(origins))
        for origin in allowed:
            if not re.fullmatch(r"https?://[^/\s]+", origin):
                raise ConfigError(
                    f"ALLOWED_ORIGINS has {origin!r}; each origin is scheme://host[:port] with no path."
                )
            if prod and origin.startswith("http://") and urlsplit(origin).hostname not in LOOPBACK_HOSTS:
                raise ConfigError(
                    f"ALLOWED_ORIGINS has {origin!r}; APP_ENV=prod accepts plain http:// only for localhost, "
                    f"127.0.0.1 and [::1]. Serve that page over HTTPS and list "
                    f"{'https://' + origin.removeprefix('http://')!r} instead."
                )

    transports = tuple(_split(_text(raw, "SOCKET_TRANSPORTS")))
    if not transports or any(t not in ("polling", "websocket") for t in transports):
        raise ConfigError(
            f"SOCKET_TRANSPORTS is {raw['SOCKET_TRANSPORTS']!r}; use 'polling,websocket' or 'websocket'."
        )

    max_rooms = _int(raw, "MAX_ROOMS_PER_SOCKET", minimum=1)
    default_rooms = tuple(_split(_text(raw, "SOCKET_DEFAULT_ROOMS")))
    for template in default_rooms:
        if not ROOM_TEMPLATE.fullmatch(template):
            raise ConfigError(
                f"SOCKET_DEFAULT_ROOMS has {template!r}; each entry is prefix:id with a prefix among "
                "user, group, game, party, broadcast (ids: letters, digits, '_' or '-'; '{userId}' is replaced)."
            )
    if len(default_rooms) > max_rooms:
        raise ConfigError(
            f"SOCKET_DEFAULT_ROOMS lists {len(default_rooms)} rooms but MAX_ROOMS_PER_SOCKET is {max_rooms}."
        )

    docs_raw = _optional(raw, "WS_DOCS_ENABLED")
    ws_docs_enabled = (not prod) if docs_raw is None else _bool("WS_DOCS_ENABLED", docs_raw)
    if prod and ws_docs_enabled:
        warnings.append(
            "WS_DOCS_ENABLED=true with APP_ENV=prod: anyone can read the event catalogue at /ws-docs "
            "(every event, field and error code). Unset WS_DOCS_ENABLED unless that is intended."
        )

    api_keys = tuple(_split(_optional(raw, "API_KEYS") or ""))
    if prod:
        short = [k for k in api_keys if len(k) < 24]
        if short:
            raise ConfigError(
                f"API_KEYS has {len(short)} key(s) shorter than 24 characters; APP_ENV=prod needs long random keys."
            )

    log_format = _text(raw, "LOG_FORMAT").lower()
    if log_format not in ("text", "json"):
        raise ConfigError(f"LOG_FORMAT is {log_format!r}; use 'text' or 'json'.")
    log_level = _text(raw, "LOG_LEVEL").upper()
    if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError(f"LOG_LEVEL is {log_level!r}; use DEBUG, INFO, WARNING, ERROR or CRITICAL.")

    session_policy = _text(raw, "SESSION_POLICY").lower()
    if session_policy not in ("single", "multi"):
        raise ConfigError(
            f"SESSION_POLICY is {session_policy!r}; use 'single' (a new login logs out the old session) or 'multi'."
        )

    public_url = _optional(raw, "PUBLIC_URL")
    if public_url and not re.fullmatch(r"(https?|wss?)://[^/\s]+/?", public_url):
        raise ConfigError(
            f"PUBLIC_URL is {public_url!r}; give the public base URL clients connect to, e.g. https://rt.example.com."
        )

    ping_interval = _float(raw, "PING_INTERVAL", minimum=1)
    ping_timeout = _float(raw, "PING_TIMEOUT", minimum=1)

    return Settings(
        app_env=app_env,
        port=_int(raw, "PORT", minimum=1, maximum=65535),
        redis_url=redis_url,
        message_queue_url=message_queue_url,
        socketio_channel=_text(raw, "SOCKETIO_CHANNEL"),
        key_prefix=_text(raw, "KEY_PREFIX"),
        jwt_algorithms=algorithms,
        jwt_verify_key=verify_key,
        jwt_signing_key=signing_key,
        jwt_issuer=_optional(raw, "JWT_ISSUER"),
        jwt_audience=_optional(raw, "JWT_AUDIENCE"),
        token_ttl=_int(raw, "TOKEN_TTL", minimum=1),
        allowed_origins=allowed,
        default_rooms=default_rooms,
        transports=transports,
        ws_docs_enabled=ws_docs_enabled,
        api_keys=api_keys,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        handshake_timeout=_float(raw, "HANDSHAKE_TIMEOUT", minimum=1),
        connect_timeout=_float(raw, "CONNECT_TIMEOUT", minimum=1),
        max_payload_bytes=_int(raw, "MAX_PAYLOAD_BYTES", minimum=1024),
        max_rooms_per_socket=max_rooms,
        session_policy=session_policy,
        presence_ttl=_float(raw, "PRESENCE_TTL", minimum=1),
        chat_history_max=_int(raw, "CHAT_HISTORY_MAX", minimum=10),
        chat_join_history=_int(raw, "CHAT_JOIN_HISTORY", minimum=0, maximum=100),
        notifications_max=_int(raw, "NOTIFICATIONS_MAX", minimum=1),
        typing_throttle=_float(raw, "TYPING_THROTTLE", minimum=0),
        recovery_window=_float(raw, "RECOVERY_WINDOW", minimum=0),
        recovery_max_packets=_int(raw, "RECOVERY_MAX_PACKETS", minimum=10),
        shutdown_timeout=_float(raw, "SHUTDOWN_TIMEOUT", minimum=1),
        max_connections_per_user=_int(raw, "MAX_CONNECTIONS_PER_USER", minimum=1),
        max_outbound_queue=_int(raw, "MAX_OUTBOUND_QUEUE", minimum=10),
        rate_limit_disconnect=_int(raw, "RATE_LIMIT_DISCONNECT", minimum=1),
        probe_interval=_float(raw, "PROBE_INTERVAL", minimum=1),
        session_check_interval=_float(raw, "SESSION_CHECK_INTERVAL", minimum=1),
        redis_max_connections=_int(raw, "REDIS_MAX_CONNECTIONS", minimum=10),
        max_concurrent_handshakes=_int(raw, "MAX_CONCURRENT_HANDSHAKES", minimum=1),
        event_rate=_float(raw, "EVENT_RATE", minimum=0.1),
        event_burst=_int(raw, "EVENT_BURST", minimum=1),
        user_cache_ttl=_float(raw, "USER_CACHE_TTL", minimum=0),
        log_level=log_level,
        log_format=log_format,
        public_url=public_url,
        warnings=tuple(warnings),
    )


def _jwt_keys(raw: Mapping[str, Any], prod: bool, warnings: list[str]) -> tuple[tuple[str, ...], str, str | None]:
    """Choose the algorithm allow-list and keys; refuse ``none`` and HMAC/asymmetric mixes."""
    secret = _optional(raw, "JWT_SECRET")
    public_key = _optional(raw, "JWT_PUBLIC_KEY")
    private_key = _optional(raw, "JWT_PRIVATE_KEY")
    algs_raw = _optional(raw, "JWT_ALGORITHMS")
    if algs_raw is None:
        algorithms: tuple[str, ...] = ("RS256",) if public_key and not secret else ("HS256",)
    else:
        algorithms = tuple(_split(algs_raw))
    unknown = [a for a in algorithms if a not in HMAC_ALGORITHMS | ASYMMETRIC_ALGORITHMS]
    if unknown or not algorithms:
        raise ConfigError(
            f"JWT_ALGORITHMS has {', '.join(map(repr, unknown)) or 'nothing'}; allowed: "
            f"{', '.join(sorted(HMAC_ALGORITHMS | ASYMMETRIC_ALGORITHMS))} ('none' is never accepted)."
        )
    hmac = [a for a in algorithms if a in HMAC_ALGORITHMS]
    if hmac and len(hmac) != len(algorithms):
        raise ConfigError(
            f"JWT_ALGORITHMS mixes HMAC and public-key algorithms ({', '.join(algorithms)}); "
            "that invites algorithm confusion. Use one family."
        )
    if hmac:
        if secret is None:
            if prod:
                raise ConfigError(
                    "JWT_SECRET is not set; APP_ENV=prod with HS* algorithms needs a random secret of at least "
                    f"{MIN_HMAC_SECRET_BYTES} bytes."
                )
            warnings.append("JWT_SECRET is not set: using the built-in development secret (never do this in prod).")
            secret = DEV_JWT_SECRET
        elif prod and secret == DEV_JWT_SECRET:
            raise ConfigError(
                "JWT_SECRET is the built-in development secret, which is public in realtime/config.py; "
                "APP_ENV=prod refuses it. Set JWT_SECRET to a random "
                f"{MIN_HMAC_SECRET_BYTES}+ byte string (python -c 'import secrets; print(secrets.token_urlsafe(48))')."
            )
        if len(secret.encode()) < MIN_HMAC_SECRET_BYTES and prod:
            raise ConfigError(
                f"JWT_SECRET is {len(secret.encode())} bytes; HS256 needs at least {MIN_HMAC_SECRET_BYTES}. "
                f"Set JWT_SECRET to a random {MIN_HMAC_SECRET_BYTES}+ byte string."
            )
        if len(secret.encode()) < MIN_HMAC_SECRET_BYTES:
            warnings.append(f"JWT_SECRET is shorter than {MIN_HMAC_SECRET_BYTES} bytes; APP_ENV=prod would refuse it.")
        return algorithms, secret, secret
    if public_key is None:
        raise ConfigError(
            f"JWT_ALGORITHMS is {', '.join(algorithms)} but JWT_PUBLIC_KEY is not set; "
            "give the PEM public key that verifies the login service's tokens."
        )
    return algorithms, public_key.replace("\\n", "\n"), private_key.replace("\\n", "\n") if private_key else None


def _optional(raw: Mapping[str, Any], name: str) -> str | None:
    value = raw.get(name)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _text(raw: Mapping[str, Any], name: str) -> str:
    value = _optional(raw, name)
    if value is None:
        raise ConfigError(f"{name} is empty; unset it to use the default {DEFAULTS[name]!r}.")
    return value


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _int(raw: Mapping[str, Any], name: str, minimum: int, maximum: int | None = None) -> int:
    text = _text(raw, name)
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{name} is {text!r}; it must be a whole number.") from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise ConfigError(f"{name} is {value}; it must be {bound}.")
    return value


def _float(raw: Mapping[str, Any], name: str, minimum: float) -> float:
    text = _text(raw, name)
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{name} is {text!r}; it must be a number.") from None
    if value < minimum:
        raise ConfigError(f"{name} is {value}; it must be at least {minimum}.")
    return value


def _bool(name: str, text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} is {text!r}; use true or false.")
