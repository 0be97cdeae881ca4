"""The settings table: every environment variable the app reads, declared once.

Each field of :class:`Settings` is one line of the table: the variable, its default (as the environment
would spell it), the parser that types and validates it, and one line of doc; the field's annotation is
the type the rest of the code reads. Rules that involve several settings (the prod guards, the JWT keys,
MESSAGE_QUEUE_URL falling back to REDIS_URL) run after this per-setting parse, in :mod:`realtime.config`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from realtime.setting_parsers import (
    APP_ENV_HINT,
    APP_ENVS,
    ASYMMETRIC_ALGORITHMS,
    HMAC_ALGORITHMS,
    LOG_FORMAT_HINT,
    LOG_LEVEL_HINT,
    LOG_LEVELS,
    POLICY_HINT,
    ConfigError,
    Parser,
    algorithm_list,
    base_url,
    choice,
    flag,
    items,
    number,
    origin_list,
    pem,
    redis_address,
    room_list,
    text,
    transport_list,
    whole,
)

__all__ = ["ASYMMETRIC_ALGORITHMS", "DEFAULTS", "FIELDS", "HMAC_ALGORITHMS", "TABLE", "ConfigError", "Setting", "Settings"]

@dataclass(frozen=True)
class Setting:
    """One environment variable: its name, default, parser and one line of doc."""

    name: str
    #: The default as the environment would spell it; ``None``: unset unless a rule derives it.
    default: str | None
    parse: Parser
    doc: str
    #: What an unset variable means, as the README's default column says it.
    unset: str = "unset"

    @property
    def documented_default(self) -> str:
        """The default as the README's table shows it."""
        if self.default is None:
            return self.unset
        return f"`{self.default}`" if self.default else "empty"

    def read(self, value: Any) -> Any:
        """Type and validate ``value`` (from the defaults, the environment or an override).

        :returns: ``None`` when a variable without default is unset or empty.
        :raises ConfigError: naming the variable and how to fix it.
        """
        stripped = "" if value is None else str(value).strip()
        if stripped or self.default == "":
            return self.parse(self.name, stripped)
        if self.default is None:
            return None
        raise ConfigError(f"{self.name} is empty; unset it to use the default {self.default!r}.")


def env(name: str, default: str | None, parse: Parser, doc: str, *, unset: str = "unset", secret: bool = False) -> Any:
    """Declare the :class:`Settings` field that variable ``name`` fills (kept out of ``repr`` when ``secret``)."""
    return field(repr=not secret, metadata={"setting": Setting(name, default, parse, doc, unset)})


@dataclass(frozen=True)
class Settings:
    """Validated, typed configuration of one process: one field per environment variable, then derived ones."""

    app_env: str = env("APP_ENV", "local", choice(APP_ENVS, str.lower, APP_ENV_HINT), "local, dev or prod")
    port: int = env("PORT", "5000", whole(1, 65535), "HTTP port")
    redis_url: str | None = env("REDIS_URL", None, redis_address, "Redis for stores, sessions and fan-out")
    message_queue_url: str | None = env(
        "MESSAGE_QUEUE_URL", None, redis_address, "Redis for fan-out; empty disables it", unset="`REDIS_URL`"
    )
    socketio_channel: str = env("SOCKETIO_CHANNEL", "realtime", text, "pub/sub channel name")
    key_prefix: str = env("KEY_PREFIX", "rt:", text, "prefix of every Redis key this server writes")
    jwt_algorithms: tuple[str, ...] = env(
        "JWT_ALGORITHMS",
        None,
        algorithm_list,
        "accepted algorithms, one family",
        unset="`HS256` (or `RS256` with only a public key)",
    )
    # Derived by the JWT rule (realtime.config) from KEY_MATERIAL below: the secret, or the PEM keys.
    jwt_verify_key: str = field(repr=False)
    jwt_signing_key: str | None = field(repr=False)
    jwt_issuer: str | None = env("JWT_ISSUER", None, text, "the `iss` every token must carry")
    jwt_audience: str | None = env("JWT_AUDIENCE", None, text, "the `aud` every token must carry")
    token_ttl: int = env("TOKEN_TTL", "3600", whole(1), "seconds tokens minted by the CLI live")
    allowed_origins: tuple[str, ...] | str = env(
        "ALLOWED_ORIGINS", None, origin_list, "browser origins allowed to connect", unset="`*` outside prod"
    )
    default_rooms: tuple[str, ...] = env(
        "SOCKET_DEFAULT_ROOMS", "user:{userId},broadcast:all", room_list, "rooms every socket joins on connect"
    )
    transports: tuple[str, ...] = env("SOCKET_TRANSPORTS", "polling,websocket", transport_list, "or websocket only")
    ws_docs_enabled: bool = env(
        "WS_DOCS_ENABLED", None, flag, "serve the event catalogue", unset="true in local/dev, false in prod"
    )
    api_keys: tuple[str, ...] = env("API_KEYS", "", items, "keys of the HTTP publish API", secret=True)
    ping_interval: float = env("PING_INTERVAL", "25", number(1), "seconds between Engine.IO pings")
    ping_timeout: float = env("PING_TIMEOUT", "20", number(1), "seconds to wait for a pong")
    handshake_timeout: float = env("HANDSHAKE_TIMEOUT", "20", number(1), "seconds to deliver a request head")
    connect_timeout: float = env("CONNECT_TIMEOUT", "45", number(1), "seconds to join a namespace")
    max_payload_bytes: int = env("MAX_PAYLOAD_BYTES", "1000000", whole(1024), "largest event payload")
    max_rooms_per_socket: int = env("MAX_ROOMS_PER_SOCKET", "200", whole(1), "rooms one socket may be in")
    session_policy: str = env(
        "SESSION_POLICY", "single", choice(("single", "multi"), str.lower, POLICY_HINT), "sessions per user"
    )
    presence_ttl: float = env("PRESENCE_TTL", "60", number(1), "seconds a socket entry lives unrefreshed")
    chat_history_max: int = env("CHAT_HISTORY_MAX", "1000", whole(10), "messages kept per chat room")
    chat_join_history: int = env("CHAT_JOIN_HISTORY", "50", whole(0, 100), "messages in the chat:join ack")
    notifications_max: int = env("NOTIFICATIONS_MAX", "200", whole(1), "notifications kept per user")
    typing_throttle: float = env("TYPING_THROTTLE", "2", number(0), "seconds between repeated typing events")
    recovery_window: float = env("RECOVERY_WINDOW", "120", number(0), "seconds a dropped client may recover")
    recovery_max_packets: int = env("RECOVERY_MAX_PACKETS", "10000", whole(10), "broadcasts kept for recovery")
    shutdown_timeout: float = env("SHUTDOWN_TIMEOUT", "10", number(1), "seconds to drain on SIGTERM")
    max_connections_per_user: int = env("MAX_CONNECTIONS_PER_USER", "20", whole(1), "live sockets per user")
    max_outbound_queue: int = env("MAX_OUTBOUND_QUEUE", "1000", whole(10), "packets queued to one socket")
    rate_limit_disconnect: int = env("RATE_LIMIT_DISCONNECT", "200", whole(1), "refusals before a disconnect")
    probe_interval: float = env("PROBE_INTERVAL", "15", number(1), "seconds between pub/sub self-probes")
    session_check_interval: float = env("SESSION_CHECK_INTERVAL", "10", number(1), "seconds between checks")
    gc_rescan_interval: float = env(
        "GC_RESCAN_INTERVAL", "600", number(10), "seconds between full-heap garbage collections in a worker"
    )
    redis_max_connections: int = env("REDIS_MAX_CONNECTIONS", "200", whole(10), "connections per Redis pool")
    redis_tls_verify: bool = env("REDIS_TLS_VERIFY", "true", flag, "verify a rediss:// server's certificate")
    max_concurrent_handshakes: int = env("MAX_CONCURRENT_HANDSHAKES", "64", whole(1), "handshakes run at once")
    event_rate: float = env("EVENT_RATE", "20", number(0.1), "events per second per socket")
    event_burst: int = env("EVENT_BURST", "40", whole(1), "burst of events per socket")
    user_cache_ttl: float = env("USER_CACHE_TTL", "60", number(0), "seconds a profile stays cached")
    log_level: str = env("LOG_LEVEL", "INFO", choice(LOG_LEVELS, str.upper, LOG_LEVEL_HINT), "root log level")
    log_format: str = env("LOG_FORMAT", "text", choice(("text", "json"), str.lower, LOG_FORMAT_HINT), "log lines")
    public_url: str | None = env("PUBLIC_URL", None, base_url, "public base URL for the AsyncAPI servers")
    metrics_token: str | None = env("METRICS_TOKEN", None, text, "bearer token /metrics requires", secret=True)
    admin_enabled: bool = env("ADMIN_ENABLED", "false", flag, "serve the admin view at /admin")
    admin_token: str | None = env("ADMIN_TOKEN", None, text, "bearer token of the admin view (32+ chars)", secret=True)
    debug_users: tuple[str, ...] = env("DEBUG_USERS", "", items, "user ids whose event flow is logged")
    offline_jobs_max: int = env("OFFLINE_JOBS_MAX", "10000", whole(100), "queued offline-member jobs kept")
    offline_jobs_claim_after: float = env(
        "OFFLINE_JOBS_CLAIM_AFTER", "30", number(0.1), "seconds before a dead worker's offline jobs are taken over"
    )
    # What the rules found worth a log line at start-up (e.g. no Redis, the development secret).
    warnings: tuple[str, ...] = ()

    @property
    def websocket_only(self) -> bool:
        """Whether clients may only use the websocket transport (no sticky sessions needed)."""
        return self.transports == ("websocket",)


#: Variables no field holds as such: the JWT rule turns them into ``jwt_verify_key`` and ``jwt_signing_key``.
KEY_MATERIAL = (
    Setting("JWT_SECRET", None, text, "HMAC secret for HS256/384/512", unset="dev secret outside prod"),
    Setting("JWT_PUBLIC_KEY", None, pem, "PEM public key for RS*/PS*/ES*/EdDSA"),
    Setting("JWT_PRIVATE_KEY", None, pem, "PEM private key for `flask token create` with public-key algorithms"),
)

#: Settings field -> the variable that fills it, in declaration order.
FIELDS: dict[str, Setting] = {f.name: f.metadata["setting"] for f in fields(Settings) if "setting" in f.metadata}
#: Every variable the app reads.
TABLE: tuple[Setting, ...] = (*FIELDS.values(), *KEY_MATERIAL)
#: name -> default (as the environment would spell it).
DEFAULTS: dict[str, str | None] = {setting.name: setting.default for setting in TABLE}
